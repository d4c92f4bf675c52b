"Exercise checkers of chapter 35: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
from course_lib.algorithms import continual as C


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


def test_ex1_keep_probability(capsys):
    passes(capsys, C.check_keep_probability('Exercise 1', lambda k, n: 1.0 if n <= k else k / n))
    fails(capsys, C.check_keep_probability('Exercise 1', lambda k, n: k / n))              # buffer not full yet forgotten
    fails(capsys, C.check_keep_probability('Exercise 1', lambda k, n: 1.0 if n <= k else k / (n + 1)))   # off by one


def test_ex2_ewc_penalty(capsys):
    passes(capsys, C.check_ewc_penalty('Exercise 2', lambda ps, a, f: sum((fi * (p - ai) ** 2).sum() for p, ai, fi in zip(ps, a, f))))
    fails(capsys, C.check_ewc_penalty('Exercise 2', lambda ps, a, f: sum(((p - ai) ** 2).sum() for p, ai, fi in zip(ps, a, f))))  # no Fisher
    fails(capsys, C.check_ewc_penalty('Exercise 2', lambda ps, a, f: sum((fi * (p - ai) ** 2).mean() for p, ai, fi in zip(ps, a, f))))  # mean
    fails(capsys, C.check_ewc_penalty('Exercise 2', lambda ps, a, f: sum((fi * (p - ai)).sum() for p, ai, fi in zip(ps, a, f)) ** 2))  # square outside


def test_ex3_forgetting(capsys):
    passes(capsys, C.check_forgetting('Exercise 3', lambda a: max(0.0, max(a[:-1]) - a[-1]) if len(a) > 1 else 0.0))
    fails(capsys, C.check_forgetting('Exercise 3', lambda a: max(0.0, a[0] - a[-1])))       # first, not best, earlier value
    fails(capsys, C.check_forgetting('Exercise 3', lambda a: max(a[:-1]) - a[-1] if len(a) > 1 else 0.0))   # can go negative


def test_drift_alarm_fires_on_a_rising_error_rate():
    acc = [0.9] * 5 + [0.9] * 3 + [0.4] * 5                  # accuracy falls = error rate rises
    assert C.drift_alarm(acc) is not None
    assert C.drift_alarm([0.5] * 5 + [0.95] * 8) is None     # error rate falls: no alarm
