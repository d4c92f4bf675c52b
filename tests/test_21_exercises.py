"""Chapter 21's exercise checkers: the reference answer passes, each plausible wrong answer is rejected with FAIL."""
import pytest, torch
from course_lib.maths.activations import (check_softplus_grad, check_softmax_temperature, check_sigmoid_depth_factor,
                                          check_dead_mask, sigmoid, sigmoid_grad, relu_grad, softmax)


def passes(capsys, checker, answer):
    assert checker('Exercise X', answer) is True
    out = capsys.readouterr().out
    assert 'PASS Exercise X' in out and 'FAIL' not in out


def rejected(capsys, checker, answer, hint_part='hint:'):
    assert checker('Exercise X', answer) is False
    out = capsys.readouterr().out
    assert 'FAIL Exercise X' in out and hint_part in out
    return out


def test_softplus_grad(capsys):
    passes(capsys, check_softplus_grad, sigmoid)
    rejected(capsys, check_softplus_grad, sigmoid_grad)                      # the slope of sigmoid, one derivative too far
    rejected(capsys, check_softplus_grad, relu_grad)                         # the step function: wrong near 0
    rejected(capsys, check_softplus_grad, lambda x: torch.exp(x))            # forgot the 1 + e^x denominator


def temperature(fn):
    def f(z, T=1.0):
        if T <= 0: raise ValueError('T must be positive')
        return fn(z, T)
    return f


def test_softmax_temperature(capsys):
    passes(capsys, check_softmax_temperature, temperature(lambda z, T: softmax(z / T, -1)))
    naive = temperature(lambda z, T: torch.exp(z / T) / torch.exp(z / T).sum(-1, keepdim=True))   # overflows: nan
    rejected(capsys, check_softmax_temperature, naive)
    rejected(capsys, check_softmax_temperature, temperature(lambda z, T: softmax(z * T, -1)))      # multiplies by T
    rejected(capsys, check_softmax_temperature, lambda z, T=1.0: softmax(z / T, -1) if T else softmax(z, -1))  # no ValueError
    rejected(capsys, check_softmax_temperature, temperature(lambda z, T: softmax(z / T, 0)))       # wrong axis


def test_sigmoid_depth_factor(capsys):
    passes(capsys, check_sigmoid_depth_factor, sigmoid_grad(torch.tensor(0.0)).item() ** 10)
    passes(capsys, check_sigmoid_depth_factor, 0.25 ** 10)
    out = rejected(capsys, check_sigmoid_depth_factor, 4.0 ** 10)            # how many times smaller, not the multiplier
    assert 'not the multiplier' in out
    rejected(capsys, check_sigmoid_depth_factor, 0.25)                       # one layer
    rejected(capsys, check_sigmoid_depth_factor, 0.25 * 10)                  # added instead of multiplied
    rejected(capsys, check_sigmoid_depth_factor, sigmoid(torch.tensor(0.0)).item() ** 10)   # sigma(0) = 1/2, not the slope
    rejected(capsys, check_sigmoid_depth_factor, 'a lot')


def test_dead_mask(capsys):
    passes(capsys, check_dead_mask, lambda h: (h <= 0).all(dim=0))
    passes(capsys, check_dead_mask, lambda h: (h == 0).all(0))
    rejected(capsys, check_dead_mask, lambda h: (h <= 0).all(dim=1))         # wrong axis: one entry per example
    rejected(capsys, check_dead_mask, lambda h: (h == 0).any(dim=0))         # zero on some row is not dead
    rejected(capsys, check_dead_mask, lambda h: (h < 0).all(dim=0))          # ReLU outputs are never < 0
