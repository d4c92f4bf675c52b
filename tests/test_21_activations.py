"Tests for course_lib.maths.activations: functions match PyTorch, derivatives match autograd, softmax, deep stacks, dead units."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.maths.activations import (sigmoid, sigmoid_grad, tanh, tanh_grad, relu, relu_grad, leaky_relu,
                                    leaky_relu_grad, gelu, gelu_grad, silu, silu_grad, autograd_derivative,
                                    ACTIVATIONS, get_activation, softmax, softmax_jacobian, softmax_backward,
                                    deep_stack, layer_grad_norms, dead_units)

XS = torch.cat([torch.linspace(-15, 15, 601), torch.tensor([-1e4, -90.0, 0.0, 90.0, 1e4])])


@pytest.mark.parametrize('name', list(ACTIVATIONS))
def test_function_and_derivative_match_torch(name):
    f, df, tf = ACTIVATIONS[name]
    assert_close(f(XS), tf(XS), atol=1e-6, rtol=1e-5)
    assert_close(df(XS), autograd_derivative(tf, XS), atol=2e-6, rtol=1e-5)
    assert torch.isfinite(f(XS)).all() and torch.isfinite(df(XS)).all()


def test_named_functions_directly():
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert relu(x).tolist() == [0.0, 0.0, 3.0] and relu_grad(x).tolist() == [0.0, 0.0, 1.0]
    assert_close(leaky_relu(x, 0.1), torch.tensor([-0.2, 0.0, 3.0]))
    assert_close(leaky_relu_grad(x, 0.1), torch.tensor([0.1, 0.1, 1.0]))          # x = 0 takes the negative slope, like torch
    assert_close(leaky_relu_grad(x, 0.1), autograd_derivative(lambda t: F.leaky_relu(t, 0.1), x))
    assert sigmoid_grad(torch.tensor(0.0)).item() == 0.25 and tanh_grad(torch.tensor(0.0)).item() == 1.0
    assert_close(tanh(x), torch.tanh(x)); assert_close(sigmoid(x), torch.sigmoid(x))
    assert_close(silu(x), F.silu(x)); assert_close(silu_grad(x), autograd_derivative(F.silu, x))
    assert_close(gelu(x, 'tanh'), F.gelu(x, approximate='tanh'))
    assert_close(gelu_grad(x), autograd_derivative(F.gelu, x))
    assert sigmoid(torch.tensor(-1000.0)).item() == 0.0 and sigmoid(torch.tensor(1000.0)).item() == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match='negative_slope'): leaky_relu(torch.ones(2), 1.5)
    with pytest.raises(ValueError, match='approximate'): gelu(torch.ones(2), 'fast')
    with pytest.raises(KeyError, match='choose one of'): get_activation('swish2')
    with pytest.raises(ValueError, match='elementwise'): autograd_derivative(lambda t: t.sum(), torch.ones(3))
    assert get_activation('relu')[0] is relu


def test_softmax_stable_jacobian_backward():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [0.1, 0.2, 0.3]])
    assert_close(softmax(z), torch.softmax(z, -1))
    assert_close(softmax(z, dim=0), torch.softmax(z, 0))
    v = torch.randn(6)
    assert_close(softmax_jacobian(softmax(v)), torch.autograd.functional.jacobian(lambda t: torch.softmax(t, -1), v))
    zb, g = torch.randn(3, 5, requires_grad=True), torch.randn(3, 5)
    (torch.softmax(zb, -1) * g).sum().backward()
    assert_close(softmax_backward(g, softmax(zb.detach())), zb.grad)
    with pytest.raises(ValueError, match='1-D'): softmax_jacobian(torch.ones(2, 2) / 2)
    with pytest.raises(ValueError, match='same shape'): softmax_backward(torch.ones(3), torch.ones(4) / 4)


def test_deep_stack_shapes_inits_and_errors():
    m = deep_stack('tanh', 3, 16, 8, 4, 'xavier')
    assert sum(isinstance(l, nn.Linear) for l in m) == 4 and sum(isinstance(l, nn.Tanh) for l in m) == 3
    assert m(torch.randn(5, 8)).shape == (5, 4) and (m[0].bias == 0).all()
    k = deep_stack('relu', 2, 512, 512, 2, 'kaiming')
    assert abs(k[2].weight.std().item() - (2 / 512) ** 0.5) < 0.01                # Kaiming: variance 2 / fan_in
    assert torch.equal(deep_stack('relu', 2, 8, 4, 2, seed=3)[0].weight, deep_stack('relu', 2, 8, 4, 2, seed=3)[0].weight)
    with pytest.raises(KeyError, match='choose one of'): deep_stack('softmax', 2, 8, 4, 2)
    with pytest.raises(ValueError, match='init'): deep_stack('relu', 2, 8, 4, 2, init='he')
    with pytest.raises(ValueError, match='depth'): deep_stack('relu', 0, 8, 4, 2)


def test_sigmoid_gradients_vanish_relu_kaiming_do_not():
    x, y = torch.rand(128, 32), torch.randint(0, 10, (128,))
    sig = layer_grad_norms(deep_stack('sigmoid', 12, 64, 32, 10), x, y)
    rel = layer_grad_norms(deep_stack('relu', 12, 64, 32, 10, 'kaiming'), x, y)
    assert len(sig) == 13 and all(v >= 0 for v in sig)
    assert sig[0] / sig[-2] < 1e-3
    assert 0.05 < rel[0] / rel[-2] < 20
    mse = layer_grad_norms(deep_stack('relu', 1, 4, 3, 1), torch.randn(5, 3), torch.randn(5, 1), F.mse_loss)
    assert len(mse) == 2


def test_dead_units_counts_and_restores_model():
    m = deep_stack('relu', 2, 6, 3, 2, seed=0)
    with torch.no_grad():
        m[0].bias[:2] = -100.0                       # units 0 and 1 of layer 1 can never be positive for inputs in [0, 1]
        m[0].bias[2:] = 100.0
    x = torch.rand(20, 3)
    frac = dead_units(m, x)
    assert len(frac) == 2 and frac[0] == pytest.approx(2 / 6)
    assert all(not mod._forward_hooks for mod in m.modules())              # hooks removed
    leaky = deep_stack('leaky_relu', 1, 4, 3, 2)
    with torch.no_grad(): leaky[0].bias.fill_(-100.0)
    assert dead_units(leaky, x) == [1.0]
    with pytest.raises(ValueError, match='no nn.ReLU'): dead_units(nn.Linear(3, 2), x)
