"""Regression tests for the Learner bugs an expert review found (issue 14). Each failed before its fix."""
import math, warnings
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader, IterableDataset
from course_lib.core import set_seed
from course_lib.train.learner import (Learner, Callback, EarlyStoppingCB, CancelEpochException, CancelFitException,
    ProgressCB, accuracy, set_metric, one_cycle_schedule, make_schedule, decay_param_groups, default_loss_weight, EVENTS)
from course_lib.train.checkpoint import CheckpointCB, latest_checkpoint


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)


def reg_learner(bs=16, n=64, **kw):
    kw.setdefault('progress', False); kw.setdefault('device', 'cpu')
    kw.setdefault('loss_func', F.mse_loss); kw.setdefault('opt_func', torch.optim.SGD); kw.setdefault('lr', 0.1)
    torch.manual_seed(1)
    X, y = data(n)
    dl = DataLoader(TensorDataset(X, y), batch_size=bs)
    return Learner(nn.Linear(3, 1), dl, kw.pop('valid_dl', None), **kw)


class Recorder(Callback):
    "Records the events it sees, with the epoch."
    order = 99
    def __init__(self): self.seen = []
    def __getattr__(self, name):
        if name in EVENTS: return lambda: self.seen.append((name, self.learn.epoch))
        raise AttributeError(name)


# -- 2. the schedule is sized after `prepare` (where DistributedCB shards the loader) ---------------------------
def test_prepare_runs_before_the_schedule_is_sized():
    class Shard(Callback):
        def prepare(self):   # what DistributedCB does with 2 processes: half the batches
            X, y = data(32)
            self.learn.train_dl = DataLoader(TensorDataset(X, y), batch_size=16)
    learn = reg_learner(schedule='cosine', warmup=0.0, lr=1.0, cbs=[Shard()])
    learn.fit(2)          # 2 batches x 2 epochs = 4 steps, not the unsharded 8
    lrs = [r['lr'] for r in learn.history.steps]
    assert len(lrs) == 4 and lrs[-1] == pytest.approx(0.1)      # the schedule ends at its floor on the last step


# -- 3. every fit gets its own schedule -------------------------------------------------------------------------
def test_second_fit_with_onecycle_works_and_cosine_restarts():
    learn = reg_learner(schedule='onecycle')
    learn.fit(1); learn.fit(1)                                    # used to raise ValueError (stepping past the end)
    learn = reg_learner(schedule='cosine', warmup=0.25, lr=1.0)
    learn.fit(2); first = [r['lr'] for r in learn.history.steps]
    learn.fit(2); second = [r['lr'] for r in learn.history.steps][len(first):]
    assert second == pytest.approx(first)                          # used to stay at the floor, 0.1


@pytest.mark.parametrize('total', [1, 2, 3, 4, 5, 10])
def test_one_cycle_with_few_steps_does_not_divide_by_zero(total):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        s = one_cycle_schedule(opt, total)
        for _ in range(total): opt.step(); s.step()
    assert all(math.isfinite(g['lr']) for g in opt.param_groups)


def test_resume_with_more_epochs_under_onecycle(tmp_path):
    learn = reg_learner(schedule='onecycle', cbs=[CheckpointCB(tmp_path)])
    learn.fit(2)
    learn2 = reg_learner(schedule='onecycle', cbs=[CheckpointCB(tmp_path)])
    learn2.fit(4, resume=tmp_path)                                  # used to raise: the saved schedule was 8 steps
    assert learn2.step == 16 and [r['epoch'] for r in learn2.history.epochs] == [0, 1, 2, 3]


# -- 5. evaluation adds up sums and counts ----------------------------------------------------------------------
class TokenModel(nn.Module):
    def __init__(self, vocab=7):
        super().__init__(); self.emb = nn.Embedding(vocab, vocab)
    def forward(self, x): return self.emb(x)

def lm_loss(preds, y): return F.cross_entropy(preds.flatten(0, 1), y.flatten())

def test_validation_loss_is_weighted_by_counted_tokens():
    torch.manual_seed(0)
    x = torch.randint(0, 7, (8, 6)); y = torch.randint(0, 7, (8, 6))
    y[:4, 2:] = -100                    # the first batch is mostly padding
    dl = DataLoader(TensorDataset(x, y), batch_size=4)
    learn = Learner(TokenModel(), dl, dl, lm_loss, progress=False, device='cpu')
    with torch.no_grad(): true = F.cross_entropy(learn.model(x).flatten(0, 1), y.flatten()).item()
    per_batch = sum(lm_loss(learn.model(xb), yb).item() for xb, yb in dl) / 2
    assert abs(per_batch - true) > 1e-3                    # the two really differ here
    assert learn.evaluate()['loss'] == pytest.approx(true, rel=1e-6)


def test_hf_causal_lm_weight_counts_shifted_labels():
    class GPT2LMHeadModel(nn.Module): pass
    labels = torch.tensor([[1, 2, -100], [3, 4, 5]])
    assert default_loss_weight(GPT2LMHeadModel(), None, labels, {'labels': labels}) == 3   # positions 1.. only
    assert default_loss_weight(nn.Linear(1, 1), None, labels, {'labels': labels}) == 5


def test_set_metrics_are_computed_on_the_whole_set():
    from sklearn.metrics import f1_score
    def f1(preds, y): return f1_score(y.numpy(), preds.argmax(1).numpy(), average='macro')
    torch.manual_seed(0)
    X, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    dl = DataLoader(TensorDataset(X, y), batch_size=7)
    learn = Learner(nn.Linear(4, 3), dl, dl, F.cross_entropy, metrics={'f1': set_metric(f1), 'f1_batch': f1},
                    progress=False, device='cpu')
    res = learn.evaluate()
    with torch.no_grad(): whole = f1(learn.model(X), y)
    assert res['f1'] == pytest.approx(whole) and res['f1_batch'] != pytest.approx(whole)


# -- 7. cancel and exception paths ------------------------------------------------------------------------------
def test_early_stopping_lets_later_callbacks_see_the_last_epoch(tmp_path):
    rec = Recorder()
    X, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    dl = DataLoader(TensorDataset(X, y), batch_size=10)
    learn = Learner(nn.Linear(4, 2), dl, dl, F.cross_entropy, lr=0.0, progress=False, device='cpu',
                    cbs=[EarlyStoppingCB(patience=1), CheckpointCB(tmp_path), rec])
    learn.fit(10)
    stopped = learn.cbs[0].stopped_epoch if isinstance(learn.cbs[0], EarlyStoppingCB) else [c for c in learn.cbs if isinstance(c, EarlyStoppingCB)][0].stopped_epoch
    assert stopped == 1 and ('after_epoch', 1) in rec.seen and ('after_fit', 1) in rec.seen
    assert f"step{learn.step}" in latest_checkpoint(tmp_path).name       # the checkpoint has the last epoch too


def test_after_fit_runs_when_fit_raises():
    rec = Recorder()
    class Boom(Callback):
        def after_batch(self): raise RuntimeError('boom')
    learn = reg_learner(cbs=[Boom(), rec])
    with pytest.raises(RuntimeError, match='boom'): learn.fit(1)
    assert ('after_fit', 0) in rec.seen


def test_cancelled_epoch_does_not_leak_gradients():
    grads_at_start = []
    class CancelEarly(Callback):
        def before_epoch(self): grads_at_start.append([p.grad for p in self.learn.model.parameters()])
        def after_batch(self):
            if self.learn.epoch == 0 and self.learn.batch_idx == 1: raise CancelEpochException()
    learn = reg_learner(bs=8, grad_accum_steps=4, cbs=[CancelEarly()])
    learn.fit(2)
    assert all(g is None for g in grads_at_start[1])      # two micro-batches' gradients were left over before


class Batches(IterableDataset):
    "An unsized stream of ready-made batches."
    def __init__(self, X, y, bs): self.X, self.y, self.bs = X, y, bs
    def __iter__(self):
        for i in range(0, len(self.X), self.bs): yield self.X[i:i + self.bs], self.y[i:i + self.bs]

def test_unsized_loader_scales_the_last_partial_group_by_its_size():
    X, y = data(48)              # 6 batches of 8, k=4: a full group, then a group of 2
    def run(dl, max_steps=None):
        torch.manual_seed(1); m = nn.Linear(3, 1)
        Learner(m, dl, loss_func=F.mse_loss, opt_func=torch.optim.SGD, lr=0.1, grad_accum_steps=4,
                progress=False, device='cpu').fit(1, max_steps=max_steps)
        return m.weight.detach().clone()
    sized = run(DataLoader(TensorDataset(X, y), batch_size=8))
    unsized = run(DataLoader(Batches(X, y, 8), batch_size=None), max_steps=10)
    torch.testing.assert_close(unsized, sized)


def test_progress_bar_starts_each_epoch_at_zero(monkeypatch):
    starts = []
    class Bar:
        def __init__(self, total=None, **kw): self.n = 0
        def update(self, k): self.n += k
        def set_postfix(self, **kw): pass
        def close(self): pass
    import course_lib.train.learner as L
    monkeypatch.setattr(L, '_tqdm', lambda: Bar)
    class Spy(Callback):
        order = 95
        def before_epoch(self): starts.append(self.learn.cbs[0].bar.n)
    learn = reg_learner(progress=True, cbs=[Spy()])
    learn.cbs[0].before_fit = lambda: setattr(learn.cbs[0], 'show_bars', True)
    learn.fit(3)
    assert starts == [0, 0, 0]                  # the second epoch used to start at 3 of 4


def test_checkpoint_with_an_iterable_dataset(tmp_path):
    X, y = data(32)
    def make():
        torch.manual_seed(1)
        return Learner(nn.Linear(3, 1), DataLoader(Batches(X, y, 8), batch_size=None), loss_func=F.mse_loss,
                       opt_func=torch.optim.SGD, lr=0.1, progress=False, device='cpu', cbs=[CheckpointCB(tmp_path)])
    a = make(); a.fit(2, max_steps=8)            # CheckpointCB used to call len() on the IterableDataset
    b = make(); b.fit(3, max_steps=12, resume=tmp_path)
    assert [r['epoch'] for r in b.history.epochs] == [0, 1, 2] and b.step == 12
    assert not b.history.epochs[1].get('partial')      # the resumed epoch was finished, not recorded twice


def test_history_records_the_lr_each_step_used():
    learn = reg_learner(schedule=lambda opt, n: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (s + 1)), lr=1.0)
    learn.fit(1)
    assert [r['lr'] for r in learn.history.steps] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])


# -- new events, callback state ---------------------------------------------------------------------------------
def test_after_backward_and_before_step_events():
    seen = []
    class Grads(Callback):
        def after_backward(self): seen.append(('backward', self.learn.model.weight.grad is not None))
        def before_step(self): seen.append(('step', self.learn._in_group))
    learn = reg_learner(bs=8, grad_accum_steps=2, cbs=[Grads()])
    learn.fit(1)                        # 8 micro-batches, 4 steps
    assert seen.count(('backward', True)) == 8 and seen.count(('step', 2)) == 4


def test_early_stopping_state_survives_a_resume(tmp_path):
    X, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    dl = DataLoader(TensorDataset(X, y), batch_size=10)
    def make():
        return Learner(nn.Linear(4, 2), dl, dl, F.cross_entropy, lr=0.0, progress=False, device='cpu',
                       cbs=[EarlyStoppingCB(patience=3), CheckpointCB(tmp_path)])
    a = make(); a.fit(2)                           # lr 0: no improvement after epoch 0, wait = 1
    b = make(); b.fit(10, resume=tmp_path)
    es = [c for c in b.cbs if isinstance(c, EarlyStoppingCB)][0]
    assert es.stopped_epoch == 3                   # patience counted across the interruption (not 0 + 3 more)


# -- 10. predict on unlabelled data -----------------------------------------------------------------------------
def test_predict_on_unlabelled_batches():
    learn = reg_learner()
    X, _ = data(20)
    out = learn.predict(DataLoader(TensorDataset(X), batch_size=8))
    torch.testing.assert_close(out, learn.model(X).detach())
    class KW(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(3, 2)
        def forward(self, features): return self.lin(features)
    learn = Learner(KW(), DataLoader(TensorDataset(X, X)), loss_func=F.mse_loss, progress=False, device='cpu')
    dicts = [{'features': X[:10]}, {'features': X[10:]}]
    assert learn.predict(dicts).shape == (20, 2)
    with pytest.raises(Exception, match='predict'): learn.get_preds(DataLoader(TensorDataset(X), batch_size=8))


# -- 11. weight decay skips biases, norm gains and embeddings by default ----------------------------------------
def test_weight_decay_groups():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    groups = decay_param_groups(model, 0.1)
    by_decay = {g['weight_decay']: set(g['names']) for g in groups}
    assert by_decay[0.1] == {'1.weight', '3.weight'}
    assert by_decay[0.0] == {'0.weight', '1.bias', '2.weight', '2.bias', '3.bias'}
    assert len(decay_param_groups(model, 0.1, no_decay=None)) == 1
    learn = Learner(model, [(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))], loss_func=F.cross_entropy,
                    weight_decay=0.1, progress=False, device='cpu')
    learn.fit(1)
    assert sorted(g['weight_decay'] for g in learn.opt.param_groups) == [0.0, 0.1]
    with pytest.raises(ValueError, match='no_decay'): decay_param_groups(model, 0.1, no_decay='all')
