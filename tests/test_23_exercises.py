"""Chapter 23's exercise checkers: the reference answer passes, each plausible wrong answer is rejected with FAIL."""
import math
import pytest, torch
from course_lib.maths.backprop import (check_sigmoid_layer_backward, check_value_log, check_linear_bias_grad,
                                       linear_backward, Value)


def passes(capsys, checker, answer):
    assert checker('Exercise X', answer) is True
    out = capsys.readouterr().out
    assert 'PASS Exercise X' in out and 'FAIL' not in out


def rejected(capsys, checker, answer):
    assert checker('Exercise X', answer) is False
    out = capsys.readouterr().out
    assert 'FAIL Exercise X' in out and 'hint:' in out


def sig_backward(dz_rule):
    def fn(dY, X, W, b):
        Y = torch.sigmoid(X @ W.T + b)
        return linear_backward(dz_rule(dY, Y), X, W)
    return fn


def test_sigmoid_layer_backward(capsys):
    passes(capsys, check_sigmoid_layer_backward, sig_backward(lambda dY, Y: dY * Y * (1 - Y)))
    rejected(capsys, check_sigmoid_layer_backward, sig_backward(lambda dY, Y: dY))                 # forgot sigma'
    rejected(capsys, check_sigmoid_layer_backward, sig_backward(lambda dY, Y: dY * Y))             # half of sigma'
    rejected(capsys, check_sigmoid_layer_backward, sig_backward(lambda dY, Y: dY * (1 - Y) ** 2))
    def db_mean(dY, X, W, b):                                                                      # mean, not sum, over the batch
        dX, dW, db = sig_backward(lambda dY, Y: dY * Y * (1 - Y))(dY, X, W, b)
        return dX, dW, db / X.shape[0]
    rejected(capsys, check_sigmoid_layer_backward, db_mean)
    def dW_transposed(dY, X, W, b):                                                                # X^T dZ: wrong shape
        Y = torch.sigmoid(X @ W.T + b); dZ = dY * Y * (1 - Y)
        return dZ @ W, X.T @ dZ, dZ.sum(0)
    rejected(capsys, check_sigmoid_layer_backward, dW_transposed)
    rejected(capsys, check_sigmoid_layer_backward, lambda dY, X, W, b: (dY @ W) @ X)               # crashes: FAIL


def test_value_log(capsys):
    passes(capsys, check_value_log, lambda v: Value(math.log(v.data), (v,), (1.0 / v.data,), 'log'))
    rejected(capsys, check_value_log, lambda v: Value(math.log(v.data), (v,), (v.data,), 'log'))         # derivative v, not 1/v
    rejected(capsys, check_value_log, lambda v: Value(math.log(v.data), (v,), (math.log(v.data),), 'log'))  # log as its slope
    rejected(capsys, check_value_log, lambda v: Value(math.log(v.data)))                                   # no parent: no gradient
    rejected(capsys, check_value_log, lambda v: Value(math.log10(v.data), (v,), (1.0 / v.data,), 'log'))  # base 10
    rejected(capsys, check_value_log, lambda v: math.log(v.data))                                          # a float: crashes later


def test_linear_bias_grad(capsys):
    passes(capsys, check_linear_bias_grad, lambda dZ: dZ.reshape(-1, dZ.shape[-1]).sum(0))
    passes(capsys, check_linear_bias_grad, lambda dZ: dZ.sum(dim=tuple(range(dZ.dim() - 1))))
    rejected(capsys, check_linear_bias_grad, lambda dZ: dZ.sum(0))                      # only the batch dim: wrong shape, no crash
    rejected(capsys, check_linear_bias_grad, lambda dZ: dZ.reshape(-1, dZ.shape[-1]).mean(0))   # mean, not sum
    rejected(capsys, check_linear_bias_grad, lambda dZ: dZ.sum(-1))                     # summed the wrong axis
    rejected(capsys, check_linear_bias_grad, lambda dZ: dZ.reshape(-1, dZ.shape[-1])[0])   # one row, not the sum
