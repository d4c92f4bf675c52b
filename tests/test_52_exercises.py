"Every exercise checker of chapter 52 passes the reference answer and rejects the mistakes the exercise is about."
import numpy as np
import pytest
from course_lib.applications.forecasting import (check_drift_forecast, check_n_windows, check_recursive_forecast,
                                                 check_drift_mase, mase, load_co2_monthly, time_split, rolling_forecasts,
                                                 seasonal_naive_forecast)


def verdict(capsys, result):
    out = capsys.readouterr().out
    if result is True and out.startswith('PASS'): return 'pass'
    if result is False and 'FAIL' in out and 'hint' in out: return 'fail'
    return f'unclear: {result!r} {out!r}'


def drift_forecast(history, horizon):
    h = np.asarray(history, dtype=np.float64)
    return h[-1] + (h[-1] - h[0]) / (len(h) - 1) * np.arange(1, horizon + 1)


def test_ex1_drift(capsys):
    assert verdict(capsys, check_drift_forecast('Exercise 1', drift_forecast)) == 'pass'
    wrong = {'divides by len': lambda h, n: np.asarray(h)[-1] + (np.asarray(h)[-1] - np.asarray(h)[0]) / len(h) * np.arange(1, n + 1),
             'last step as slope': lambda h, n: np.asarray(h)[-1] + (np.asarray(h)[-1] - np.asarray(h)[-2]) * np.arange(1, n + 1),
             'steps from 0': lambda h, n: np.asarray(h)[-1] + (np.asarray(h)[-1] - np.asarray(h)[0]) / (len(h) - 1) * np.arange(n),
             'naive': lambda h, n: np.repeat(np.asarray(h)[-1], n), 'crashes': lambda h, n: 1 / 0}
    for name, fn in wrong.items():
        assert verdict(capsys, check_drift_forecast('Exercise 1', fn)) == 'fail', name


def test_ex2_n_windows(capsys):
    n = 526
    assert verdict(capsys, check_n_windows('Exercise 2', n - 36 - 6 + 1, n)) == 'pass'
    for wrong in (n - 36 - 6, n - 36 + 1, n // 42, n - 36):
        assert verdict(capsys, check_n_windows('Exercise 2', wrong, n)) == 'fail', wrong


def recursive_forecast(one_step, history, horizon):
    h, out = list(np.asarray(history, dtype=np.float64)), []
    for _ in range(horizon):
        nxt = float(one_step(np.array(h))); out.append(nxt); h.append(nxt)
    return np.array(out)


def test_ex3_recursive(capsys):
    history = 400 + np.sin(np.arange(120) * 2 * np.pi / 12) * 3 + np.arange(120) * 0.1
    assert verdict(capsys, check_recursive_forecast('Exercise 3', recursive_forecast, history)) == 'pass'
    np.testing.assert_allclose(recursive_forecast(lambda h: h[-12], history, 30), seasonal_naive_forecast(history, 30, 12))
    def no_feedback(one_step, history, horizon):                 # never appends its forecasts
        return np.array([float(one_step(np.asarray(history))) for _ in range(horizon)])
    def mutates_and_skips(one_step, history, horizon):           # appends the true last value instead of the forecast
        h = list(history); out = []
        for _ in range(horizon): out.append(float(one_step(np.array(h)))); h.append(h[-1])
        return np.array(out)
    def off_by_one(one_step, history, horizon):
        return recursive_forecast(one_step, history, horizon + 1)[1:]
    for fn in (no_feedback, mutates_and_skips, off_by_one):
        assert verdict(capsys, check_recursive_forecast('Exercise 3', fn, history)) == 'fail', fn.__name__


def test_ex4_drift_mase(capsys):
    co2, _ = load_co2_monthly()
    values = np.asarray(co2, dtype=np.float64)
    n_train, horizon, m = len(values) - 60, 12, 12
    preds, actuals = rolling_forecasts(values, n_train, horizon, lambda h: drift_forecast(h, horizon))
    ok = mase(actuals, preds, values[:n_train], m)
    assert verdict(capsys, check_drift_mase('Exercise 4', ok, values, n_train, horizon, len(actuals), m)) == 'pass'
    mae_only = float(np.mean(np.abs(actuals - preds)))
    test_scaled = mase(actuals, preds, values[n_train:], m)       # scale from the test period: leakage
    one_step_scale = mase(actuals, preds, values[:n_train], 1)   # Hyndman-Koehler's scale, not the chapter's
    snaive_p, _ = rolling_forecasts(values, n_train, horizon, lambda h: seasonal_naive_forecast(h, horizon, m))
    reused = mase(actuals, snaive_p, values[:n_train], m)        # the seasonal-naive MASE reused
    for name, wrong in {'MAE': mae_only, 'test-period scale': test_scaled, 'one-step scale': one_step_scale,
                        'seasonal naive reused': reused, 'zero': 0.0}.items():
        assert verdict(capsys, check_drift_mase('Exercise 4', wrong, values, n_train, horizon, len(actuals), m)) == 'fail', name
