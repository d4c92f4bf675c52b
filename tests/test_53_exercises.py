"Every exercise checker of chapter 53 passes the reference answer and rejects the mistakes the exercise is about."
import numpy as np
import pytest
from course_lib.projects.four_points import accuracy_interval
from course_lib.applications.risk_fairness import check_rates_by_hand, check_fpr_identity, check_fpr_intervals


def verdict(capsys, result):
    out = capsys.readouterr().out
    if result is True and out.startswith('PASS'): return 'pass'
    if result is False and 'FAIL' in out and 'hint' in out: return 'fail'
    return f'unclear: {result!r} {out!r}'


def rates_by_hand(probs, labels, groups, value, t):
    m = np.asarray(groups) == value
    flag, pos = np.asarray(probs)[m] >= t, np.asarray(labels)[m] == 1
    fp, tn = (flag & ~pos).sum(), (~flag & ~pos).sum()
    fn, tp = (~flag & pos).sum(), (flag & pos).sum()
    return fp / (fp + tn), fn / (fn + tp)


def test_ex1_rates_by_hand(capsys):
    assert verdict(capsys, check_rates_by_hand('Exercise 1', rates_by_hand)) == 'pass'
    def strict(probs, labels, groups, value, t):                 # p > t: the score exactly at t is not flagged
        return rates_by_hand(probs, labels, groups, value, np.nextafter(t, 1))
    def fdr(probs, labels, groups, value, t):                    # FP / (FP + TP): the share of flags that are wrong
        m = np.asarray(groups) == value; f, p = np.asarray(probs)[m] >= t, np.asarray(labels)[m] == 1
        return (f & ~p).sum() / max(1, f.sum()), (~f & p).sum() / (p.sum())
    def over_everyone(probs, labels, groups, value, t):          # rates over the whole group, not per class
        m = np.asarray(groups) == value; f, p = np.asarray(probs)[m] >= t, np.asarray(labels)[m] == 1
        return (f & ~p).sum() / m.sum(), (~f & p).sum() / m.sum()
    def no_group_mask(probs, labels, groups, value, t):
        return rates_by_hand(probs, labels, np.full(len(groups), value), value, t)
    for fn in (strict, fdr, over_everyone, no_group_mask):
        assert verdict(capsys, check_rates_by_hand('Exercise 1', fn)) == 'fail', fn.__name__


def test_ex2_fpr_identity(capsys):
    ok = lambda p, ppv, fnr: p / (1 - p) * (1 - ppv) / ppv * (1 - fnr)
    assert verdict(capsys, check_fpr_identity('Exercise 2', ok)) == 'pass'
    wrong = {'PPV ratio inverted': lambda p, ppv, fnr: p / (1 - p) * ppv / (1 - ppv) * (1 - fnr),
             'base-rate odds forgotten': lambda p, ppv, fnr: (1 - ppv) / ppv * (1 - fnr),
             'FNR instead of TPR': lambda p, ppv, fnr: p / (1 - p) * (1 - ppv) / ppv * fnr,
             'base rate instead of odds': lambda p, ppv, fnr: p * (1 - ppv) / ppv * (1 - fnr)}
    for name, fn in wrong.items():
        assert verdict(capsys, check_fpr_identity('Exercise 2', fn)) == 'fail', name


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    g = (rng.random(300) < 0.2).astype(int)
    y = (rng.random(300) < 0.3).astype(int)
    p = np.clip(0.25 + 0.3 * y + 0.1 * g + rng.normal(0, 0.15, 300), 0, 1)
    return p, y, g


def intervals(p, y, g, t, trials_all=False):
    out = {}
    for v in (0, 1):
        m = (g == v) & ((y == 0) | trials_all)
        out[v] = accuracy_interval(int(((p >= t) & (g == v) & (y == 0)).sum()), int(m.sum()))
    return out


def test_ex3_fpr_intervals(capsys, scores):
    p, y, g = scores
    ok = intervals(p, y, g, 1 / 3)
    overlap = ok[0][0] <= ok[1][1] and ok[1][0] <= ok[0][1]
    assert verdict(capsys, check_fpr_intervals('Exercise 3', ok, overlap, p, y, g, 1 / 3)) == 'pass'
    everyone = intervals(p, y, g, 1 / 3, trials_all=True)           # trials: the whole group, not its non-arrested
    assert verdict(capsys, check_fpr_intervals('Exercise 3', everyone, overlap, p, y, g, 1 / 3)) == 'fail'
    z = {v: (max(0, r - 1.96 * np.sqrt(r * (1 - r) / n)), min(1, r + 1.96 * np.sqrt(r * (1 - r) / n)))
         for v in (0, 1) for n, r in [(((g == v) & (y == 0)).sum(), ((p >= 1 / 3) & (g == v) & (y == 0)).sum() / ((g == v) & (y == 0)).sum())]}
    assert verdict(capsys, check_fpr_intervals('Exercise 3', z, overlap, p, y, g, 1 / 3)) == 'fail'        # normal approximation
    assert verdict(capsys, check_fpr_intervals('Exercise 3', ok, not overlap, p, y, g, 1 / 3)) == 'fail'   # overlap wrong
    assert verdict(capsys, check_fpr_intervals('Exercise 3', ok, 'yes', p, y, g, 1 / 3)) == 'fail'
    assert verdict(capsys, check_fpr_intervals('Exercise 3', {1: ok[1]}, overlap, p, y, g, 1 / 3)) == 'fail'  # a group missing
