import json, shutil
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader
import course_lib.train.checkpoint as C
from course_lib.core import set_seed
from course_lib.train.learner import Learner, Callback
from course_lib.train.checkpoint import CheckpointCB, save_checkpoint, load_checkpoint, latest_checkpoint, list_checkpoints, CheckpointError


def make_learner(cbs=(), accum=1, width=16):
    set_seed(0)
    X, y = torch.randn(80, 4), torch.randint(0, 3, (80,))
    model = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Dropout(0.3), nn.Linear(width, 3))
    train_dl = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True)
    valid_dl = DataLoader(TensorDataset(X, y), batch_size=40)
    return Learner(model, train_dl, valid_dl, F.cross_entropy, lr=0.01, schedule='cosine', grad_accum_steps=accum,
                   cbs=cbs, progress=False, device='cpu')


class Crash(Exception): pass


class CrashAt(Callback):
    def __init__(self, step): self.at = step
    def after_step(self):
        if self.learn.step == self.at: raise Crash()


@pytest.mark.parametrize('crash_step,accum,every', [(7, 1, 3), (11, 1, 10), (4, 2, 1), (13, 1, 5)])
def test_resume_matches_uninterrupted_run(tmp_path, crash_step, accum, every):
    a = make_learner(accum=accum); a.fit(3)
    b = make_learner([CheckpointCB(tmp_path, every_steps=every), CrashAt(crash_step)], accum=accum)
    with pytest.raises(Crash):
        b.fit(3)
    c = make_learner([CheckpointCB(tmp_path, every_steps=every)], accum=accum)
    set_seed(999)
    c.fit(3, resume=tmp_path)
    for pa, pc in zip(a.model.state_dict().values(), c.model.state_dict().values()):
        assert torch.equal(pa, pc)
    assert [r['valid_loss'] for r in a.history.epochs] == [r['valid_loss'] for r in c.history.epochs]
    assert [r['loss'] for r in a.history.steps] == [r['loss'] for r in c.history.steps]


def test_keeps_only_the_newest_checkpoints(tmp_path):
    learn = make_learner([CheckpointCB(tmp_path, every_steps=2, keep=2)])
    learn.fit(2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert len(names) == 2 and latest_checkpoint(tmp_path).name == names[-1]
    assert json.loads((tmp_path / 'latest.json').read_text())['step'] == learn.step


def test_crash_while_writing_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    learn = make_learner(); learn.fit(1)
    good = save_checkpoint(learn, tmp_path)
    def failing_save(*args, **kwargs): raise OSError('disk full (simulated)')
    monkeypatch.setattr(C.torch, 'save', failing_save)
    with pytest.raises(OSError):
        save_checkpoint(learn, tmp_path)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == good
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.tmp-')]
    fresh = make_learner(); fresh._setup_optimizer(10)
    load_checkpoint(fresh, tmp_path)
    for p, q in zip(learn.model.parameters(), fresh.model.parameters()): assert torch.equal(p, q)


def test_corrupt_weights_are_reported_with_the_fix(tmp_path):
    learn = make_learner([CheckpointCB(tmp_path, every_steps=3)]); learn.fit(1)
    (latest_checkpoint(tmp_path) / 'model.safetensors').write_bytes(b'garbage')
    with pytest.raises(CheckpointError, match='corrupt.*Fix'):
        make_learner([CheckpointCB(tmp_path)]).fit(2, resume=tmp_path)


def test_incomplete_and_missing_checkpoints(tmp_path):
    learn = make_learner(); learn.fit(1)
    path = save_checkpoint(learn, tmp_path)
    (path / 'state.pt').unlink()
    with pytest.raises(CheckpointError, match='incomplete'):
        load_checkpoint(make_learner(), tmp_path)
    with pytest.raises(CheckpointError, match='No checkpoint'):
        load_checkpoint(make_learner(), tmp_path / 'empty')


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    learn = make_learner(); learn.fit(1)
    save_checkpoint(learn, tmp_path)
    with pytest.raises(CheckpointError, match='does not fit this model'):
        load_checkpoint(make_learner(width=32), tmp_path)


def test_weights_are_safetensors(tmp_path):
    from safetensors.torch import load_file
    learn = make_learner(); learn.fit(1)
    path = save_checkpoint(learn, tmp_path)
    tensors = load_file(str(path / 'model.safetensors'))
    torch.testing.assert_close(tensors['0.weight'], learn.model[0].weight)
