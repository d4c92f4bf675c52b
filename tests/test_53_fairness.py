import matplotlib
matplotlib.use('Agg')
import numpy as np, pandas as pd, pytest, torch
from sklearn.metrics import confusion_matrix, roc_auc_score
from course_lib.applications.risk_fairness import (ROSSI_FEATURES, load_rossi, load_rossi_split, out_of_fold_probs, group_metrics,
                                 demographic_parity_difference, equalized_odds_difference, threshold_per_group)
from course_lib.projects.risk_scoring import RISK_DATASETS, load_risk_dataset
from course_lib.projects.four_points import accuracy_interval


def test_load_rossi_columns_and_size():
    df = load_rossi()
    assert df.shape == (432, 9) and set(ROSSI_FEATURES) <= set(df.columns)
    assert set(df['arrest'].unique()) == {0, 1} and (df.loc[df.arrest == 0, 'week'] == 52).all()
    assert 'week' not in ROSSI_FEATURES                     # the leaky column is not a feature


def test_registered_in_risk_registry_and_same_split():
    assert 'rossi' in RISK_DATASETS
    ref, d = load_risk_dataset('rossi'), load_rossi_split('race')
    for s in ('train', 'valid', 'test'):
        torch.testing.assert_close(ref[s][0], d[s][0]); torch.testing.assert_close(ref[s][1], d[s][1])
        assert len(d['groups'][s]) == len(d[s][1]) and set(np.unique(d['groups'][s])) <= {0, 1}
    assert sum(len(d[s][1]) for s in ('train', 'valid', 'test')) == 432
    nr = load_rossi_split('race', drop=('race',))
    assert 'race' not in nr['features'] and nr['train'][0].shape[1] == 6
    np.testing.assert_array_equal(nr['groups']['test'], d['groups']['test'])
    with pytest.raises(ValueError, match='group column'):
        load_rossi_split('colour')


def test_out_of_fold_scores_every_row_once_with_held_out_models():
    X = np.arange(40, dtype=float)[:, None]; y = np.arange(40) % 2
    seen = []
    def fp(Xa, ya, Xb):
        assert not set(Xa.ravel()) & set(Xb.ravel())         # never scores a training row
        seen.extend(Xb.ravel().tolist()); return Xb.ravel() / 100
    out = out_of_fold_probs(fp, X, y, n_splits=4)
    assert sorted(seen) == list(range(40)) and np.allclose(out, np.arange(40) / 100)


def _toy():
    rng = np.random.default_rng(0)
    g = np.array(['a'] * 60 + ['b'] * 40)
    y = (rng.random(100) < np.where(g == 'a', 0.3, 0.5)).astype(int)
    p = np.clip(0.3 * y + rng.random(100) * 0.7, 0, 1)
    return p, y, g


def test_group_metrics_match_sklearn_confusion_matrix():
    p, y, g = _toy()
    gm = group_metrics(p, y, g, 0.5)
    assert list(gm.index) == ['a', 'b'] and gm['n'].sum() == 100
    for v in ('a', 'b'):
        m = g == v
        tn, fp, fn, tp = confusion_matrix(y[m], p[m] >= 0.5, labels=[0, 1]).ravel()
        r = gm.loc[v]
        assert r.fpr == pytest.approx(fp / (fp + tn)) and r.fnr == pytest.approx(fn / (fn + tp))
        assert r.tpr == pytest.approx(1 - r.fnr) and r.ppv == pytest.approx(tp / (tp + fp))
        assert r.selection_rate == pytest.approx((p[m] >= 0.5).mean()) and r.base_rate == pytest.approx(y[m].mean())
        assert r.auc == pytest.approx(roc_auc_score(y[m], p[m]))
        assert (r.fpr_lo, r.fpr_hi) == pytest.approx(accuracy_interval(int(fp), int(fp + tn)))
    # torch tensors work too, and a per-group threshold dict equals thresholding group by group
    gm_t = group_metrics(torch.tensor(p), torch.tensor(y)[:, None], g, 0.5)
    pd.testing.assert_frame_equal(gm, gm_t)
    gd = group_metrics(p, y, g, {'a': 0.4, 'b': 0.6})
    assert gd.loc['a', 'fpr'] == pytest.approx(group_metrics(p, y, g, 0.4).loc['a', 'fpr'])
    assert gd.loc['b', 'fpr'] == pytest.approx(group_metrics(p, y, g, 0.6).loc['b', 'fpr'])
    with pytest.raises(ValueError, match='no entry'):
        group_metrics(p, y, g, {'a': 0.5})
    with pytest.raises(ValueError, match='one entry per person'):
        group_metrics(p[:5], y, g, 0.5)


def test_one_class_group_gives_nan_auc():
    gm = group_metrics([0.2, 0.8, 0.6, 0.1], [0, 1, 1, 1], ['x', 'x', 'y', 'y'], 0.5)
    assert np.isnan(gm.loc['y', 'auc']) and np.isnan(gm.loc['y', 'fpr']) and gm.loc['x', 'auc'] == 1.0


def test_demographic_parity_and_equalized_odds():
    p = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert demographic_parity_difference(p, g, 0.5) == pytest.approx(0.5 - 0.25)
    # group 0: TPR 1/2, FPR 1/2; group 1: TPR 1/2, FPR 0 -> EO difference 1/2
    assert equalized_odds_difference(p, y, g, 0.5) == pytest.approx(0.5)
    assert demographic_parity_difference(p, np.zeros(8), 0.5) == 0.0


def test_threshold_per_group_meets_target_fpr():
    p, y, g = _toy()
    thr = threshold_per_group(p, y, g, target_fpr=0.2)
    assert set(thr) == {'a', 'b'}
    gm = group_metrics(p, y, g, thr)
    assert (gm['fpr'] <= 0.2 + 1e-12).all()
    for v in ('a', 'b'):                                   # lowest such threshold: the next lower score breaks the target
        pm, ym = p[g == v], y[g == v] == 1
        lower = pm[pm < thr[v]]
        if len(lower): assert ((pm >= lower.max()) & ~ym).sum() / (~ym).sum() > 0.2
    assert all(v == float(np.inf) or v <= 1 for v in threshold_per_group(p, y, g, 0.0).values())
    with pytest.raises(ValueError):
        threshold_per_group(p, y, g, 1.5)
