import matplotlib
matplotlib.use('Agg')
import pytest, torch
from statsmodels.stats.proportion import proportion_confint
from course_lib.projects.four_points import four_point_data, predict_proba_fn, plot_decision_boundary, accuracy_interval


def test_four_point_data_is_the_articles():
    d = four_point_data()
    (Xtr, ytr), (Xte, yte) = d['train'], d['test']
    assert Xtr.shape == (4, 2) and ytr.shape == (4, 1) and Xte.shape == (2, 2) and yte.shape == (2, 1)
    assert ytr.flatten().tolist() == [1., 0., 1., 0.]
    assert (Xtr == Xte[0]).all(1).any()            # the article's test set contains a training point


def test_predict_proba_fn_matches_sigmoid_and_restores_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    model.train()
    X = torch.randn(7, 2)
    p = predict_proba_fn(model)(X)
    model.eval()
    torch.testing.assert_close(p, torch.sigmoid(model(X)).detach().flatten())
    model.train(); predict_proba_fn(model)(X)
    assert model.training and p.shape == (7,) and ((p > 0) & (p < 1)).all()


def test_plot_decision_boundary_draws_and_rejects_bad_shapes():
    X = torch.tensor([[0., 0.], [1., 1.], [0., 1.]]); y = torch.tensor([0., 1., 1.])
    seen = {}
    def proba(G):
        seen['n'] = len(G); return torch.sigmoid(G.sum(1) - 1)
    ax = plot_decision_boundary(proba, X, y, resolution=20, title='t', marked=[[0.5, 0.5]])
    assert seen['n'] == 400 and ax.get_title() == 't'
    with pytest.raises(ValueError, match='2 features'):
        plot_decision_boundary(proba, torch.zeros(3, 3), y)


@pytest.mark.parametrize('k,n', [(0, 1), (1, 2), (2, 2), (7, 10), (90, 114), (999, 1000)])
def test_accuracy_interval_is_wilson(k, n):
    lo, hi = accuracy_interval(k, n)
    elo, ehi = proportion_confint(k, n, method='wilson')
    assert lo == pytest.approx(elo, abs=1e-9) and hi == pytest.approx(ehi, abs=1e-9)
    assert 0 <= lo <= k / n <= hi <= 1


def test_accuracy_interval_narrows_and_rejects_bad_input():
    w = lambda n: (lambda iv: iv[1] - iv[0])(accuracy_interval(int(0.9 * n), n))
    assert w(1000) < w(100) < w(10)
    with pytest.raises(ValueError, match='at least one'): accuracy_interval(0, 0)
    with pytest.raises(ValueError, match='between 0 and n'): accuracy_interval(5, 3)
