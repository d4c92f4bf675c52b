import json
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader
from course_lib.train.learner import Learner
from course_lib.train.learner import ProgressCB, LivePlotCB, plot_history, in_notebook
from course_lib.teach.exercises import check, check_close, check_equal, check_true, check_range, ExerciseCheckFailed


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


def test_checks_pass_and_fail_with_expected_and_hint(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv('COURSE_STRICT_CHECKS', raising=False)
    results = tmp_path / 'results.jsonl'
    monkeypatch.setenv('COURSE_EXERCISE_RESULTS', str(results))
    assert check_close('Exercise 1', torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert not check_close('Exercise 2', torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), hint='look again')
    assert not check_close('Exercise 3', torch.zeros(3), torch.zeros(2))
    assert check_equal('Exercise 4', 3, 3) and not check_equal('Exercise 5', torch.tensor([1]), torch.tensor([2]))
    assert check_true('Exercise 6', True, 'it holds') and check_range('Exercise 7', 0.98, low=0.97)
    assert not check_range('Exercise 8', 0.5, low=0.97, what='accuracy')
    out = capsys.readouterr().out
    assert 'PASS Exercise 1' in out and 'FAIL Exercise 2' in out and 'hint:     look again' in out
    assert 'expected: shape (2,)' in out and 'accuracy >= 0.97' in out
    lines = [json.loads(l) for l in results.read_text().splitlines()]
    assert [l['passed'] for l in lines] == [True, False, False, True, False, True, True, False]


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    monkeypatch.delenv('COURSE_EXERCISE_RESULTS', raising=False)
    with pytest.raises(ExerciseCheckFailed, match='Exercise 9'):
        check('Exercise 9', False, 'something')
