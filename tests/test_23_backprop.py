"Tests for course_lib.maths.backprop: hand-written backward passes, the gradient checker and the scalar autograd engine."
import math
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.maths.backprop import (two_layer_forward, two_layer_backward, linear_backward, relu_backward,
                                 cross_entropy_and_grad, mse_and_grad, numerical_grad, grad_check, Value, ScalarMLP)


def _params(seed=0, n=5, d=4, h=6, c=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(h, d, generator=g, dtype=torch.float64),
            torch.randn(h, generator=g, dtype=torch.float64), torch.randn(c, h, generator=g, dtype=torch.float64),
            torch.randn(c, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g))


def test_two_layer_backward_matches_autograd():
    X, W1, b1, W2, b2, y = _params()
    logits, cache = two_layer_forward(X, W1, b1, W2, b2)
    loss, dZ2 = cross_entropy_and_grad(logits, y)
    ours = two_layer_backward(dZ2, cache)
    leaves = [t.clone().requires_grad_(True) for t in (X, W1, b1, W2, b2)]
    ref_logits = F.relu(leaves[0] @ leaves[1].T + leaves[2]) @ leaves[3].T + leaves[4]
    ref = F.cross_entropy(ref_logits, y)
    assert_close(loss, ref.detach())
    grads = torch.autograd.grad(ref, leaves)
    for name, g in zip(['X', 'W1', 'b1', 'W2', 'b2'], grads):
        assert_close(ours[name], g)


def test_cross_entropy_stable_with_extreme_logits():
    logits = torch.tensor([[100., -100., 0.], [-100., 100., 50.]])
    y = torch.tensor([0, 2])
    loss, grad = cross_entropy_and_grad(logits, y)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert_close(loss, F.cross_entropy(logits, y))


def test_linear_and_relu_backward_shapes():
    dZ, X, W = torch.randn(3, 2), torch.randn(3, 5), torch.randn(2, 5)
    dX, dW, db = linear_backward(dZ, X, W)
    assert dX.shape == X.shape and dW.shape == W.shape and db.shape == (2,)
    Z = torch.tensor([-1., 0., 2.])
    assert relu_backward(torch.ones(3), Z).tolist() == [0., 0., 1.]


def test_mse_and_grad():
    p, t = torch.randn(4, 2, dtype=torch.float64, requires_grad=True), torch.randn(4, 2, dtype=torch.float64)
    loss, g = mse_and_grad(p.detach(), t)
    ref = F.mse_loss(p, t); ref.backward()
    assert_close(loss, ref.detach()); assert_close(g, p.grad)
    with pytest.raises(ValueError, match='same shape'):
        mse_and_grad(torch.zeros(3), torch.zeros(3, 1))


def test_numerical_grad_and_errors():
    x = torch.tensor([1.0, -2.0, 3.0])
    assert_close(numerical_grad(lambda v: (v ** 3).sum(), x), 3 * x.double() ** 2, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='scalar'):
        numerical_grad(lambda v: v * 2, x)


def test_grad_check_passes_and_catches_a_wrong_gradient():
    x = torch.randn(3, dtype=torch.float64)
    ok = grad_check(lambda v: (v.sin() * v).sum(), [x], verbose=False)
    assert ok['passed']
    wrong = grad_check(lambda v: (v.sin() * v).sum(), [x], grads=[x.cos()], verbose=False)
    assert not wrong['passed'] and wrong['max_rel_error'] > 1e-3
    with pytest.raises(ValueError, match='shape'):
        grad_check(lambda v: v.sum(), [x], grads=[torch.zeros(4)], verbose=False)


def test_value_engine_matches_calculus():
    a, b = Value(2.0), Value(-3.0)
    out = (a * b + a ** 2).tanh() + (a / b).exp() - b.relu()
    out.backward()
    ta, tb = torch.tensor(2.0, dtype=torch.float64, requires_grad=True), torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    ref = torch.tanh(ta * tb + ta ** 2) + torch.exp(ta / tb) - torch.relu(tb)
    ref.backward()
    assert math.isclose(out.data, ref.item(), rel_tol=1e-12)
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=1e-9) and math.isclose(b.grad, tb.grad.item(), rel_tol=1e-9)
    with pytest.raises(TypeError):
        a ** b


def test_value_reused_node_accumulates():
    x = Value(3.0)
    y = x * x + x     # dy/dx = 2x + 1 = 7
    y.backward()
    assert x.grad == 7.0


def test_scalar_mlp_trains():
    mlp = ScalarMLP((2, 4, 1), seed=0)
    assert len(mlp.parameters()) == 2 * 4 + 4 + 4 * 1 + 1
    X, y = [[0., 0.], [0., 1.], [1., 0.], [1., 1.]], [-1., 1., 1., -1.]
    def loss():
        return sum(((mlp(x) - t) ** 2 for x, t in zip(X, y)), Value(0.0)) / len(y)
    first = loss().data
    for _ in range(200):
        mlp.zero_grad(); L = loss(); L.backward()
        for p in mlp.parameters(): p.data -= 0.2 * p.grad
    assert loss().data < first * 0.5
    W, b = mlp.weights()[0]
    assert len(W) == 4 and len(W[0]) == 2 and len(b) == 4
