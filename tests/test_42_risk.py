import matplotlib
matplotlib.use('Agg')
import numpy as np, pytest, torch
from sklearn.metrics import roc_auc_score, roc_curve
from course_lib.projects.risk_scoring import (load_risk_dataset, RISK_DATASETS, RiskMLP, roc_auc, roc_points, calibration_bins,
                             plot_calibration, confusion_at, expected_cost, best_threshold)


def test_load_risk_dataset_splits_and_scales_on_train_only():
    d = load_risk_dataset()
    (Xtr, ytr), (Xva, yva), (Xte, yte) = d['train'], d['valid'], d['test']
    assert len(ytr) + len(yva) + len(yte) == 569 and Xtr.shape[1] == 30 == len(d['features'])
    assert ytr.shape == (len(ytr), 1) and set(torch.unique(ytr).tolist()) == {0.0, 1.0}
    torch.testing.assert_close(Xtr.mean(0), torch.zeros(30), atol=1e-5, rtol=0)
    assert abs(ytr.mean() - yte.mean()) < 0.02 and d['positive'] == 'malignant'     # stratified
    with pytest.raises(ValueError, match='available'):
        load_risk_dataset('credit_cards')


def test_registry_accepts_a_new_dataset_and_checks_labels(monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setitem(RISK_DATASETS, 'toy', lambda: (rng.normal(size=(100, 3)), np.arange(100) % 2, ['a', 'b', 'c'], 'bad'))
    d = load_risk_dataset('toy')
    assert d['features'] == ['a', 'b', 'c'] and len(d['test'][1]) == 20
    monkeypatch.setitem(RISK_DATASETS, 'bad', lambda: (rng.normal(size=(10, 2)), np.arange(10) % 3, ['a', 'b'], 'x'))
    with pytest.raises(ValueError, match='0/1'):
        load_risk_dataset('bad')


def test_risk_mlp_shape_and_parameter_count():
    m = RiskMLP(30)
    assert m(torch.randn(5, 30)).shape == (5, 1)
    assert sum(p.numel() for p in m.parameters()) == 30 * 128 + 128 + 128 * 64 + 64 + 64 + 1
    assert sum(isinstance(x, torch.nn.Dropout) for x in m.modules()) == 2


def test_roc_auc_and_points_match_sklearn_with_ties():
    g = torch.Generator().manual_seed(1)
    s = torch.randint(0, 6, (200,), generator=g).float(); y = torch.randint(0, 2, (200,), generator=g)
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y.numpy(), s.numpy()), abs=1e-12)
    fpr, tpr, thr = roc_points(s, y)
    f2, t2, _ = roc_curve(y.numpy(), s.numpy(), drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), f2); np.testing.assert_allclose(tpr.numpy(), t2)
    assert roc_auc(torch.tensor([0.1, 0.9]), torch.tensor([0, 1])) == 1.0
    with pytest.raises(ValueError, match='both classes'):
        roc_auc(torch.rand(4), torch.ones(4))
    with pytest.raises(ValueError, match='one entry per case'):
        roc_auc(torch.rand(4), torch.ones(5))


def test_calibration_bins_and_plot():
    p = torch.tensor([0.05, 0.15, 0.15, 0.95, 1.0]); y = torch.tensor([0., 0., 1., 1., 1.])
    cb = calibration_bins(p, y, n_bins=10)
    assert cb['count'].tolist() == [1, 2, 2]
    torch.testing.assert_close(cb['observed'], torch.tensor([0., 0.5, 1.], dtype=torch.float64))
    expected_ece = (1 * 0.05 + 2 * abs(0.15 - 0.5) + 2 * abs(0.975 - 1.0)) / 5
    assert cb['ece'] == pytest.approx(expected_ece)
    with pytest.raises(ValueError, match='sigmoid'):
        calibration_bins(torch.tensor([-2.0, 3.0]), torch.tensor([0., 1.]))
    ax = plot_calibration({'m': (p, y)}, n_bins=5)
    assert len(ax.lines) == 2


def test_confusion_cost_and_best_threshold():
    p = torch.tensor([0.1, 0.4, 0.35, 0.8]); y = torch.tensor([0., 0., 1., 1.])
    c = confusion_at(p, y, 0.5)
    assert (c['tp'], c['fp'], c['tn'], c['fn']) == (1, 0, 2, 1) and c['recall'] == 0.5 and c['precision'] == 1.0
    assert expected_cost(p, y, 0.5, cost_fp=1, cost_fn=10) == pytest.approx(10 / 4)
    assert expected_cost(p, y, 0.3, cost_fp=1, cost_fn=10) == pytest.approx(1 / 4)
    t = best_threshold(p, y, cost_fp=1, cost_fn=10)
    assert expected_cost(p, y, t, 1, 10) == pytest.approx(1 / 4) and t <= 0.35
    # separable scores: every threshold between the classes costs 0; the tie goes to the one nearest the calibrated rule
    t_sep = best_threshold(torch.tensor([0.1, 0.2, 0.7, 0.9]), torch.tensor([0., 0., 1., 1.]), 1, 1)
    assert expected_cost(torch.tensor([0.1, 0.2, 0.7, 0.9]), torch.tensor([0., 0., 1., 1.]), t_sep) == 0 and 0.2 < t_sep <= 0.7
    assert abs(t_sep - 0.5) <= abs(0.45 - 0.5) + 1e-12
