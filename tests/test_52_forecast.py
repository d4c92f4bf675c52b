"Tests for course_lib.applications.forecasting: data loading, chronological split, windows, baselines, metrics, Holt-Winters, MLP."
import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error
from course_lib.applications.forecasting import (load_co2_monthly, time_split, make_windows, naive_forecast, seasonal_naive_forecast,
                                 mae, rmse, mase, rolling_forecasts, holt_winters_forecaster, WindowScaler,
                                 MLPForecaster, window_model_forecaster)


def seasonal_series(n=120, m=12, slope=0.1, seed=0):
    t = np.arange(n)
    return 10 + slope * t + 2 * np.sin(2 * np.pi * t / m) + np.random.default_rng(seed).normal(0, 0.05, n)


def test_load_co2_monthly():
    co2, missing = load_co2_monthly()
    assert len(co2) == 526 and co2.isna().sum() == 0 and co2.index.freqstr == 'MS'
    assert missing.sum() == 5 and not missing.iloc[-60:].any()
    assert 310 < co2.min() < co2.max() < 380


def test_time_split_is_chronological():
    a, b = time_split(np.arange(10), 3)
    assert a.tolist() == list(range(7)) and b.tolist() == [7, 8, 9]
    with pytest.raises(ValueError): time_split(np.arange(5), 5)


def test_make_windows():
    X, Y = make_windows(np.arange(7), 3, 2)
    assert X.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]] and Y.tolist() == [[3, 4], [4, 5], [5, 6]]
    assert make_windows(np.arange(50), 10, 5)[0].shape == (36, 10)
    with pytest.raises(ValueError): make_windows(np.arange(4), 3, 2)


def test_baselines():
    h = np.array([1., 2., 3., 4., 5., 6.])
    assert naive_forecast(h, 3).tolist() == [6, 6, 6]
    assert seasonal_naive_forecast(h, 5, m=3).tolist() == [4, 5, 6, 4, 5]
    assert seasonal_naive_forecast(h, 2, m=6).tolist() == [1, 2]
    with pytest.raises(ValueError): seasonal_naive_forecast(h, 2, m=7)


def test_metrics_match_sklearn_and_mase_scale():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=30), rng.normal(size=30)
    assert np.isclose(mae(a, b), mean_absolute_error(a, b))
    assert np.isclose(rmse(a, b), np.sqrt(mean_squared_error(a, b)))
    assert mae(a, a) == 0 and rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    y = seasonal_series()
    assert mase(y[12:], y[:-12], y, m=12) == pytest.approx(1.0)        # seasonal naive in-sample has MASE 1
    assert mase([1, 2], [1, 3], [0, 1, 2, 3], m=1) == pytest.approx(0.5)
    with pytest.raises(ValueError): mase([1], [1], [2, 2, 2], m=1)


def test_rolling_forecasts_shapes_and_no_peeking():
    v = np.arange(20.)
    seen = []
    def fn(h):
        seen.append(len(h)); return naive_forecast(h, 3)
    preds, actuals = rolling_forecasts(v, 15, 3, fn)
    assert preds.shape == actuals.shape == (3, 3)
    assert seen == [15, 16, 17]                                      # each forecast sees only values before its origin
    assert actuals[0].tolist() == [15, 16, 17] and preds[0].tolist() == [14, 14, 14]


def test_holt_winters_forecaster_beats_seasonal_naive_on_trend():
    y = seasonal_series(n=144, slope=0.2)
    fc, params = holt_winters_forecaster(y[:120], m=12)
    assert 'smoothing_level' in params
    p_hw, act = rolling_forecasts(y, 120, 12, lambda h: fc(h, 12))
    p_sn, _ = rolling_forecasts(y, 120, 12, lambda h: seasonal_naive_forecast(h, 12, 12))
    assert mae(act, p_hw) < mae(act, p_sn)
    with pytest.raises(ValueError): fc(y[1:121], 12)                 # history must extend the training values


def test_window_scaler_roundtrip_and_train_only_fit():
    X, Y = make_windows(seasonal_series(60), 12, 4)
    sc = WindowScaler().fit(X[:20])
    Xs, Zs = sc.transform(X, Y)
    assert np.allclose(Xs[:, -1], 0)
    assert np.allclose(sc.inverse(Zs, X), Y)
    assert sc.scale == pytest.approx((X[:20] - X[:20, -1:]).std())
    with pytest.raises(ValueError): WindowScaler().fit(np.ones((3, 4)))


def test_mlp_forecaster_and_forecast_fn():
    torch.manual_seed(0)
    model = MLPForecaster(12, 4, hidden=8)
    assert model(torch.zeros(5, 12)).shape == (5, 4)
    y = seasonal_series(60)
    sc = WindowScaler().fit(make_windows(y, 12, 4)[0])
    fn = window_model_forecaster(model, sc, 12)
    out = fn(y)
    with torch.no_grad():
        ref = y[-1] + sc.scale * model(torch.tensor(sc.transform(y[-12:][None]), dtype=torch.float32)).double().numpy()[0]
    assert out.shape == (4,) and np.allclose(out, ref)
    assert not model.training


def test_mase_m1_is_hyndman_koehler_and_differs_from_the_seasonal_scale():
    "Hyndman and Koehler (2006) scale by the in-sample one-step naive MAE; the chapter's MASE uses lag m = 12."
    rng = np.random.default_rng(0)
    t = np.arange(120)
    train = 10 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.2, 120)
    y, yhat = rng.normal(size=12), rng.normal(size=12)
    hk = np.mean(np.abs(y - yhat)) / np.mean(np.abs(np.diff(train)))
    seasonal = np.mean(np.abs(y - yhat)) / np.mean(np.abs(train[12:] - train[:-12]))
    assert mase(y, yhat, train, m=1) == pytest.approx(hk)
    assert mase(y, yhat, train, m=12) == pytest.approx(seasonal)
    assert abs(hk / seasonal - 1) > 0.1
