"Exercise checkers of chapter 34: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
from course_lib.algorithms import finetuning as FT


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]])
mask = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_ex1_mean_pool(capsys):
    passes(capsys, FT.check_mean_pool('Exercise 1', torch.stack([h[i][mask[i].bool()].mean(0) for i in range(2)])))
    fails(capsys, FT.check_mean_pool('Exercise 1', h.mean(1)))                                   # padding averaged in
    fails(capsys, FT.check_mean_pool('Exercise 1', (h * mask[..., None]).sum(1) / 3))            # masked sum / full length


def test_ex2_lora_params(capsys):
    passes(capsys, FT.check_lora_params('Exercise 2', lambda i, o, r: r * (i + o)))
    fails(capsys, FT.check_lora_params('Exercise 2', lambda i, o, r: 2 * r * i))                  # assumes a square layer
    fails(capsys, FT.check_lora_params('Exercise 2', lambda i, o, r: i * o + r * (i + o)))        # counts the frozen W


def majority_train(train_labels, test_labels):
    top = torch.bincount(torch.as_tensor(train_labels)).argmax()
    return (torch.as_tensor(test_labels) == top).float().mean().item()


def majority_test(train_labels, test_labels):                        # leakage: the majority of the TEST labels
    top = torch.bincount(torch.as_tensor(test_labels)).argmax()
    return (torch.as_tensor(test_labels) == top).float().mean().item()


def test_ex3_majority_baseline(capsys):
    tr, te = torch.tensor([0] * 30 + [1] * 20 + [2] * 10), torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    passes(capsys, FT.check_majority_baseline('Exercise 3', majority_train, tr, te))
    passes(capsys, FT.check_majority_baseline('Exercise 3', majority_train))
    fails(capsys, FT.check_majority_baseline('Exercise 3', majority_test, tr, te))
    fails(capsys, FT.check_majority_baseline('Exercise 3', lambda tr, te: 1 / len(torch.unique(torch.as_tensor(tr)))))  # "chance"
