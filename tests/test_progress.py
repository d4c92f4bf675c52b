import json
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader
from course_lib.train.learner import Learner
from course_lib.train.learner import ProgressCB, LivePlotCB, plot_history, in_notebook


def small_learner(**kw):
    X, y = torch.randn(40, 2), torch.randint(0, 2, (40,))
    dl = DataLoader(TensorDataset(X, y), batch_size=10)
    return Learner(nn.Linear(2, 2), dl, dl, F.cross_entropy, device='cpu', **kw)


def test_progress_bar_in_a_terminal_prints_epoch_summaries(capsys, monkeypatch):
    monkeypatch.setenv('COURSE_PROGRESS', 'text')
    learn = small_learner()
    assert any(isinstance(cb, ProgressCB) for cb in learn.cbs) and not in_notebook()
    learn.fit(2)
    out = capsys.readouterr().out
    assert 'epoch 1' in out and 'valid_loss' in out


def test_progress_can_be_turned_off(capsys, monkeypatch):
    monkeypatch.setenv('COURSE_PROGRESS', 'off')
    small_learner().fit(1)
    assert 'valid_loss' not in capsys.readouterr().out


def test_live_plot_saves_a_figure_outside_notebooks(tmp_path):
    out = tmp_path / 'loss.png'
    learn = small_learner(progress=False, cbs=[LivePlotCB(save_to=str(out))])
    learn.fit(2)
    assert out.exists() and out.stat().st_size > 1000


def test_plot_history_has_a_panel_per_metric():
    from course_lib.train.learner import accuracy
    learn = small_learner(progress=False, metrics={'accuracy': accuracy})
    learn.fit(2)
    fig = plot_history(learn, show=False)
    assert len(fig.axes) == 2


def test_plotting_without_matplotlib_names_the_fix(monkeypatch):
    import sys
    from course_lib.train.learner import CourseError
    monkeypatch.setitem(sys.modules, 'matplotlib', None); monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', None)
    learn = small_learner(progress=False)
    learn.fit(1)
    with pytest.raises(CourseError, match=r"course_lib\[course\]"): plot_history(learn, show=False)
