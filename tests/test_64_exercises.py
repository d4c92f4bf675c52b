"Exercise checkers of chapter 64: the reference answer passes, the mistake each exercise is about is rejected."
import math
import numpy as np
import pytest
from course_lib.llm import scaling_law as S
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: A * C ** -alpha)


# -- Exercise 1: 6ND ----------------------------------------------------------------------------------------------
def n_all(model): return sum(p.numel() for p in model.parameters())


def test_ex1_training_compute(capsys):
    passes(capsys, S.check_training_compute('Exercise 1', lambda m, d: 6 * (n_all(m) - m.embed.weight.numel()) * d))
    fails(capsys, S.check_training_compute('Exercise 1', lambda m, d: 6 * n_all(m) * d))          # counts the embedding
    fails(capsys, S.check_training_compute('Exercise 1', lambda m, d: 2 * (n_all(m) - m.embed.weight.numel()) * d))  # forward only
    fails(capsys, S.check_training_compute('Exercise 1',                                         # untied thinking: embedding twice
                                           lambda m, d: 6 * (n_all(m) - 2 * m.embed.weight.numel()) * d))
    fails(capsys, S.check_training_compute('Exercise 1', lambda m, d: 1 / 0))                    # an exception is a FAIL


# -- Exercise 2: the straight line in log-log space ----------------------------------------------------------------
def loglog(x, y, E, log_x=np.log, log_y=np.log, minus=True, subtract=True):
    slope, intercept = np.polyfit(log_x(x), log_y(y - E if subtract else y), 1)
    return math.exp(intercept), -slope if minus else slope


def test_ex2_loglog_fit(capsys):
    passes(capsys, S.check_loglog_fit('Exercise 2', loglog))
    fails(capsys, S.check_loglog_fit('Exercise 2', lambda x, y, E: loglog(x, y, E, subtract=False)))   # log L, not log(L - E)
    fails(capsys, S.check_loglog_fit('Exercise 2', lambda x, y, E: loglog(x, y, E, log_x=np.log10)))   # log10 x, ln y
    fails(capsys, S.check_loglog_fit('Exercise 2', lambda x, y, E: loglog(x, y, E, minus=False)))      # the slope, not -slope
    fails(capsys, S.check_loglog_fit('Exercise 2', lambda x, y, E: 1.0))                               # not a pair
    fails(capsys, S.check_loglog_fit('Exercise 2', lambda x, y, E: [][0]))                             # an exception


# -- Exercise 3: extrapolation -------------------------------------------------------------------------------------
def test_ex3_extrapolation(capsys):
    passes(capsys, S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: E + A * C ** (-alpha)))
    fails(capsys, S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: E + A * C ** alpha))      # wrong sign
    fails(capsys, S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: A * C ** (-alpha)))       # E forgotten
    fails(capsys, S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: E + A * math.log10(C) ** (-alpha)))
    fails(capsys, S.check_extrapolation('Exercise 3', lambda E, A, alpha, C: None))                    # no answer
