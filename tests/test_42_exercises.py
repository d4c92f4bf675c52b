"Chapter 42's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.projects.risk_scoring import check_auc, check_cost, check_recall_interval, confusion_at
from course_lib.projects.four_points import accuracy_interval


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out


def auc_ref(scores, labels):
    s, y = torch.as_tensor(scores).reshape(-1), torch.as_tensor(labels).reshape(-1) > 0.5
    diff = s[y][:, None] - s[~y][None, :]
    return ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()

def auc_ties_ignored(scores, labels):           # ties count 0
    s, y = torch.as_tensor(scores).reshape(-1), torch.as_tensor(labels).reshape(-1) > 0.5
    return (s[y][:, None] > s[~y][None, :]).double().mean().item()

def auc_ties_full(scores, labels):              # >= : ties count 1
    s, y = torch.as_tensor(scores).reshape(-1), torch.as_tensor(labels).reshape(-1) > 0.5
    return (s[y][:, None] >= s[~y][None, :]).double().mean().item()

def test_auc_checker(capsys):
    assert check_auc('Exercise 1', auc_ref) is True
    for wrong in (auc_ties_ignored, auc_ties_full):
        assert_fails(capsys, check_auc('Exercise 1', wrong))


def cost_ref(probs, labels, t, c_fp, c_fn):
    flag = torch.as_tensor(probs).reshape(-1) >= t
    pos = torch.as_tensor(labels).reshape(-1) > 0.5
    return (c_fp * (flag & ~pos).sum().item() + c_fn * (~flag & pos).sum().item()) / len(pos)

def cost_strict(probs, labels, t, c_fp, c_fn):  # > instead of >=: a case exactly at t is not flagged
    return cost_ref(torch.as_tensor(probs) - 1e-12 * (torch.as_tensor(probs) == t), labels, t, c_fp, c_fn)

def cost_swapped(probs, labels, t, c_fp, c_fn): return cost_ref(probs, labels, t, c_fn, c_fp)

def cost_per_positive(probs, labels, t, c_fp, c_fn):
    return cost_ref(probs, labels, t, c_fp, c_fn) * len(labels) / float(torch.as_tensor(labels).sum())

def test_cost_checker(capsys):
    assert check_cost('Exercise 2', cost_ref) is True
    for wrong in (cost_strict, cost_swapped, cost_per_positive):
        assert_fails(capsys, check_cost('Exercise 2', wrong))


def test_recall_interval_checker(capsys):
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(114, generator=g) < 0.37).float()
    p = (0.35 * y + 0.6 * torch.rand(114, generator=g)).clamp(0, 1)
    cm = confusion_at(p, y, 0.5)
    assert cm['fn'] > 0 and cm['fp'] > 0                                  # the cases tell the mistakes apart
    assert check_recall_interval('Exercise 3', accuracy_interval(cm['tp'], cm['tp'] + cm['fn']), p, y, 0.5) is True
    assert_fails(capsys, check_recall_interval('Exercise 3', accuracy_interval(cm['tp'] + cm['tn'], len(y)), p, y, 0.5))
    assert_fails(capsys, check_recall_interval('Exercise 3', accuracy_interval(cm['tp'], cm['tp'] + cm['fp']), p, y, 0.5))
    assert_fails(capsys, check_recall_interval('Exercise 3', accuracy_interval(cm['tp'], len(y)), p, y, 0.5))
