"""Chapter 24's exercise checkers: the reference answer passes, each plausible wrong answer is rejected with FAIL."""
import pytest, torch
import torch.nn as nn
from course_lib.maths.regularization import check_l2_weight_decay, check_dropout, check_bn_eval, check_flip_ok


def passes(capsys, checker, *answer):
    assert checker('Exercise X', *answer) is True
    out = capsys.readouterr().out
    assert 'PASS Exercise X' in out and 'FAIL' not in out


def rejected(capsys, checker, *answer):
    assert checker('Exercise X', *answer) is False
    out = capsys.readouterr().out
    assert 'FAIL Exercise X' in out and 'hint:' in out


def test_l2_weight_decay(capsys):
    passes(capsys, check_l2_weight_decay, 2 * 0.05)
    rejected(capsys, check_l2_weight_decay, 0.05)          # forgot the 2 from differentiating w^2 (the exercise's point)
    rejected(capsys, check_l2_weight_decay, 0.05 / 2)      # halved instead of doubled
    rejected(capsys, check_l2_weight_decay, 'lambda')


def dropout_with(keep_rule, scale):
    def fn(x, p):
        keep = keep_rule(torch.rand_like(x), p).to(x.dtype)
        return x * keep * scale(p)
    return fn


def test_dropout(capsys):
    passes(capsys, check_dropout, dropout_with(lambda r, p: r >= p, lambda p: 1 / (1 - p)))
    rejected(capsys, check_dropout, dropout_with(lambda r, p: r >= p, lambda p: 1.0))          # no inverted scaling
    rejected(capsys, check_dropout, dropout_with(lambda r, p: r >= p, lambda p: 1 / p))        # scaled by 1/p
    rejected(capsys, check_dropout, dropout_with(lambda r, p: r < p, lambda p: 1 / (1 - p)))   # keeps a fraction p
    rejected(capsys, check_dropout, lambda x, p: x * (1 - p))                                  # the eval-time expectation
    rejected(capsys, check_dropout, lambda x, p: x[: len(x) // 2])                             # wrong shape


@pytest.fixture
def trained_bn():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(16)
    with torch.no_grad(): bn.weight.uniform_(0.5, 2); bn.bias.normal_()
    for _ in range(10): bn(torch.randn(64, 16) * 2 - 1)
    bn.eval()
    return bn, torch.randn(8, 16) * 3 + 1


def test_bn_eval(capsys, trained_bn):
    bn, x = trained_bn
    ref = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    passes(capsys, check_bn_eval, bn, x, ref.detach())
    batch = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps) * bn.weight + bn.bias   # batch statistics
    rejected(capsys, check_bn_eval, bn, x, batch.detach())
    no_sqrt = (x - bn.running_mean) / (bn.running_var + bn.eps) * bn.weight + bn.bias               # divided by the variance
    rejected(capsys, check_bn_eval, bn, x, no_sqrt.detach())
    no_affine = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)                        # forgot weight and bias
    rejected(capsys, check_bn_eval, bn, x, no_affine.detach())
    assert not bn.training                                                                          # the checker left it in eval


def test_flip_ok(capsys):
    passes(capsys, check_flip_ok, lambda d: d in (0, 1, 8))
    rejected(capsys, check_flip_ok, lambda d: d in (0, 8))            # forgot 1
    rejected(capsys, check_flip_ok, lambda d: True)                   # every digit
    rejected(capsys, check_flip_ok, lambda d: d in (0, 1, 8, 3))      # a mirrored 3 is an epsilon
    rejected(capsys, check_flip_ok, lambda d: 1 / (d - 5) > -10)      # crashes at 5: FAIL, not an error
