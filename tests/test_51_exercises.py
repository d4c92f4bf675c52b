"Every exercise checker of chapter 51 passes the reference answer and rejects the mistakes the exercise is about."
import pytest, torch
import torch.nn as nn
from course_lib.algorithms.cnn_rnn import DigitsCNN
from course_lib.applications.vision import (check_receptive_field, check_per_class_recall, check_rotate_back,
                                            check_trainable_count, rotate_images, measured_receptive_field)


def verdict(capsys, result):
    out = capsys.readouterr().out
    if result is True and out.startswith('PASS'): return 'pass'
    if result is False and 'FAIL' in out and 'hint' in out: return 'fail'
    return f'unclear: {result!r} {out!r}'


def test_ex1_receptive_field(capsys):
    assert measured_receptive_field() == 8
    assert verdict(capsys, check_receptive_field('Exercise 1', 3 + (2 - 1) * 1 + (3 - 1) * 2)) == 'pass'
    for wrong in (3 + 3,          # strides ignored, pool forgotten: 3x3 then 3x3
                  3 + 1 + 2,      # the pool counted, its stride not
                  3 + 2 * 2,      # the stride counted, the pool's own window forgotten
                  16):            # the whole input
        assert verdict(capsys, check_receptive_field('Exercise 1', wrong)) == 'fail', wrong


def per_class_recall(cm):
    cm = cm.double()
    return cm.diag() / cm.sum(1).clamp(min=1)


def test_ex2_per_class_recall(capsys):
    assert verdict(capsys, check_per_class_recall('Exercise 2', per_class_recall)) == 'pass'
    wrong = {'columns (precision)': lambda cm: cm.double().diag() / cm.double().sum(0).clamp(min=1),
             'overall accuracy': lambda cm: cm.double().diag() / cm.double().sum(),
             'no clamp (nan for an absent class)': lambda cm: cm.double().diag() / cm.double().sum(1),
             'integer division': lambda cm: cm.diag() // cm.sum(1).clamp(min=1)}
    for name, fn in wrong.items():
        assert verdict(capsys, check_per_class_recall('Exercise 2', fn)) == 'fail', name


class PositionModel(nn.Module):
    "A fixed linear model on flat 8x8 images: it depends on where the ink is, so a rotation changes its answers."
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 5)
        with torch.no_grad(): self.lin.weight.copy_(torch.randn(5, 64, generator=torch.Generator().manual_seed(0)))
    def forward(self, x): return self.lin(x)


def accuracy_under(model, X, y, transform=lambda x: x):
    model.eval()
    with torch.no_grad(): return (model(transform(X)).argmax(1) == y).float().mean().item()


def test_ex3_rotate_back(capsys):
    model = PositionModel()
    X = torch.rand(200, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): y = model(X).argmax(1)                 # the upright images are all right
    ref = lambda m, X, y: accuracy_under(m, X, y, lambda x: rotate_images(x, k=3))
    assert verdict(capsys, check_rotate_back('Exercise 3', ref, model, X, y)) == 'pass'
    wrong = {'one more quarter turn (k=1)': lambda m, X, y: accuracy_under(m, X, y, lambda x: rotate_images(x, k=1)),
             'half a turn (k=2)': lambda m, X, y: accuracy_under(m, X, y, lambda x: rotate_images(x, k=2)),
             'not rotated back': lambda m, X, y: accuracy_under(m, X, y),
             'transposed instead of rotated': lambda m, X, y: accuracy_under(m, X, y, lambda x: x.view(-1, 8, 8).transpose(1, 2).reshape(-1, 64))}
    for name, fn in wrong.items():
        assert verdict(capsys, check_rotate_back('Exercise 3', fn, model, X, y)) == 'fail', name


def test_ex4_trainable_count(capsys):
    torch.manual_seed(0)
    pretrained = DigitsCNN(n_classes=5)
    assert verdict(capsys, check_trainable_count('Exercise 4', 32 * 2 * 2 * 5 + 5, pretrained)) == 'pass'
    total = sum(p.numel() for p in pretrained.parameters())
    for wrong in (32 * 2 * 2 * 5,     # the biases forgotten
                  32 * 5 + 5,         # the 2x2 positions forgotten
                  total):             # every parameter, as if nothing were frozen
        assert verdict(capsys, check_trainable_count('Exercise 4', wrong, pretrained)) == 'fail', wrong
