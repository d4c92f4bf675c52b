import math, warnings
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader
from course_lib.core import set_seed
from course_lib.train.learner import (Learner, Callback, EarlyStoppingCB, accuracy, check_loss_inputs, check_devices,
    resolve_precision, maybe_compile, warmup_cosine_schedule, make_schedule, NonFiniteLossError, LossInputError,
    DeviceMismatchError, EmptyDataError, CourseError)


def regression_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.01 * torch.randn(n, 1, generator=g)


def classification_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def learner(model, X, y, bs=16, valid=True, **kw):
    kw.setdefault('progress', False); kw.setdefault('device', 'cpu')
    dl = DataLoader(TensorDataset(X, y), batch_size=bs)
    return Learner(model, dl, dl if valid else None, **kw)


def test_fit_trains_and_records_history():
    X, y = classification_data()
    set_seed(0)
    learn = learner(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), X, y, loss_func=F.cross_entropy,
                    lr=0.05, metrics={'accuracy': accuracy})
    history = learn.fit(5)
    assert len(history.steps) == 5 * 6 and [r['step'] for r in history.steps] == list(range(1, 31))
    last = history.epochs[-1]
    for key in ('train_loss', 'valid_loss', 'valid_accuracy', 'seconds', 'samples_per_s'):
        assert key in last
    assert last['valid_accuracy'] > 0.9 and history.epochs[-1]['valid_loss'] < history.epochs[0]['valid_loss']


def test_grad_accumulation_equals_one_big_batch():
    X, y = regression_data(64)
    def run(bs, k):
        torch.manual_seed(1); model = nn.Linear(3, 1)
        learner(model, X, y, bs=bs, valid=False, loss_func=F.mse_loss, opt_func=torch.optim.SGD, lr=0.1,
                grad_accum_steps=k).fit(1)
        return model.weight.detach().clone(), model.bias.detach().clone()
    for a, b in zip(run(64, 1), run(16, 4)):
        torch.testing.assert_close(a, b)


def test_grad_accumulation_uneven_last_group_uses_its_real_size():
    X, y = regression_data(48)
    torch.manual_seed(1); m1 = nn.Linear(3, 1)
    learn = learner(m1, X, y, bs=16, valid=False, loss_func=F.mse_loss, opt_func=torch.optim.SGD, lr=0.1, grad_accum_steps=2)
    learn.fit(1)
    assert learn.step == 2          # batches {0,1} then {2}
    torch.manual_seed(1); m2 = nn.Linear(3, 1); opt = torch.optim.SGD(m2.parameters(), lr=0.1)
    for sl in (slice(0, 32), slice(32, 48)):
        opt.zero_grad(); F.mse_loss(m2(X[sl]), y[sl]).backward(); opt.step()
    torch.testing.assert_close(m1.weight, m2.weight)


class NormRecordingSGD(torch.optim.SGD):
    norms = []
    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g['params'] if p.grad is not None]
        NormRecordingSGD.norms.append(torch.norm(torch.stack([g.norm() for g in grads])).item())
        return super().step(closure)


def test_gradient_clipping_bounds_the_norm():
    X, y = regression_data()
    NormRecordingSGD.norms = []
    learn = learner(nn.Linear(3, 1), X * 100, y * 100, valid=False, loss_func=F.mse_loss, opt_func=NormRecordingSGD,
                    lr=1e-6, max_grad_norm=0.5)
    learn.fit(1)
    assert NormRecordingSGD.norms and max(NormRecordingSGD.norms) <= 0.5 + 1e-4
    assert learn.history.steps[0]['grad_norm'] > 0.5     # the raw norm was larger, so clipping did act


def test_nan_loss_stops_with_step_and_causes():
    X, y = regression_data(); X[20, 1] = float('nan')
    learn = learner(nn.Linear(3, 1), X, y, valid=False, loss_func=F.mse_loss)
    with pytest.raises(NonFiniteLossError, match=r'step 1 .*learning rate'):
        learn.fit(1)


def test_exploding_lr_is_caught_as_non_finite():
    X, y = regression_data()
    learn = learner(nn.Linear(3, 1), X * 1e3, y * 1e3, valid=False, loss_func=F.mse_loss, opt_func=torch.optim.SGD, lr=10.0)
    with pytest.raises(NonFiniteLossError):
        learn.fit(20)


def test_bf16_autocast_on_cpu():
    X, y = classification_data()
    seen = []
    class Spy(Callback):
        def after_loss(self): seen.append(self.learn.preds.dtype)
    set_seed(0)
    learn = learner(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), X, y, loss_func=F.cross_entropy,
                    precision='bf16', lr=0.05, cbs=[Spy()], metrics={'accuracy': accuracy})
    learn.fit(3)
    assert learn.precision == 'bf16' and seen[0] == torch.bfloat16
    assert learn.history.epochs[-1]['valid_loss'] < learn.history.epochs[0]['train_loss']
    assert next(learn.model.parameters()).dtype == torch.float32      # master weights stay fp32


def test_precision_choices():
    cpu = torch.device('cpu')
    assert resolve_precision('auto', cpu) == 'fp32'
    with pytest.raises(ValueError, match="bf16"):
        resolve_precision('fp16', cpu)
    with pytest.raises(ValueError):
        resolve_precision('int3', cpu)


def test_compile_failure_falls_back_to_eager():
    def broken_backend(gm, example_inputs):
        raise RuntimeError('this backend always fails')
    X, y = regression_data()
    def run(**kw):
        torch.manual_seed(0); model = nn.Linear(3, 1)
        learner(model, X, y, valid=False, loss_func=F.mse_loss, opt_func=torch.optim.SGD, lr=0.1, **kw).fit(2)
        return model.weight.detach().clone()
    eager = run()
    with pytest.warns(UserWarning, match='eager'):
        fallback = run(compile=True, compile_backend=broken_backend)
    torch.testing.assert_close(fallback, eager)


def test_compile_unavailable_warns_and_returns_model(monkeypatch):
    import course_lib.train.learner as L
    monkeypatch.setattr(L, 'compile_supported', lambda: (False, 'no Triton on this Windows machine'))
    model = nn.Linear(2, 2)
    with pytest.warns(UserWarning, match='Triton'):
        assert maybe_compile(model) is model


def test_compile_with_working_backend_trains():
    X, y = regression_data()
    torch.manual_seed(0)
    learn = learner(nn.Linear(3, 1), X, y, valid=False, loss_func=F.mse_loss, compile=True, compile_backend='eager')
    learn.fit(1)
    assert learn._forward_model is not learn.model and learn.step == 4


def test_float_one_hot_labels_for_cross_entropy_get_a_fix():
    with pytest.raises(LossInputError, match=r'y\.long\(\)'):
        check_loss_inputs(F.cross_entropy, torch.randn(4, 3), torch.tensor([0., 1., 2., 1.]))
    X, _ = classification_data()
    learn = learner(nn.Linear(4, 2), X, torch.zeros(len(X)), loss_func=nn.CrossEntropyLoss())
    with pytest.raises(LossInputError, match='class indices'):
        learn.fit(1)


def test_label_out_of_range_and_wrong_shape():
    with pytest.raises(LossInputError, match='outside 0..2'):
        check_loss_inputs(F.cross_entropy, torch.randn(4, 3), torch.tensor([0, 1, 5, 1]))
    with pytest.raises(LossInputError, match='shape'):
        check_loss_inputs(F.cross_entropy, torch.randn(4, 3), torch.tensor([[0], [1], [2], [1]]))


def test_mse_shape_mismatch_is_caught_before_silent_broadcasting():
    with pytest.raises(LossInputError, match='Broadcasting'):
        check_loss_inputs(F.mse_loss, torch.randn(8, 1), torch.randn(8))
    with pytest.raises(LossInputError, match=r'y\.float\(\)'):
        check_loss_inputs(nn.BCEWithLogitsLoss(), torch.randn(8), torch.ones(8, dtype=torch.long))


def test_empty_dataloader_is_a_clear_error():
    learn = learner(nn.Linear(3, 1), torch.zeros(0, 3), torch.zeros(0, 1), loss_func=F.mse_loss)
    with pytest.raises(EmptyDataError, match='no batches'):
        learn.fit(1)


def test_device_mismatch_is_a_clear_error():
    with pytest.raises(DeviceMismatchError, match='Fix'):
        check_devices(nn.Linear(3, 1, device='meta'), torch.zeros(2, 3))
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1, device='meta'))
    learn = learner(model, *regression_data(), loss_func=F.mse_loss, move_to_device=False)
    with pytest.raises(DeviceMismatchError, match='spread over devices'):
        learn.fit(1)


def test_missing_loss_func_is_explained():
    learn = learner(nn.Linear(3, 1), *regression_data())
    with pytest.raises(LossInputError, match='loss_func'):
        learn.fit(1)


def test_course_errors_share_a_base_class():
    assert issubclass(NonFiniteLossError, CourseError) and issubclass(LossInputError, ValueError)


def test_warmup_cosine_and_onecycle_schedules():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine_schedule(opt, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    lrs = []
    for _ in range(100): lrs.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    s = make_schedule('onecycle', opt, 50); lrs = []
    for _ in range(50): lrs.append(opt.param_groups[0]['lr']); opt.step(); s.step()
    assert max(lrs) == pytest.approx(1.0, rel=1e-3) and lrs[0] < 0.1 and lrs[-1] < 0.01
    with pytest.raises(ValueError):
        make_schedule('zigzag', opt, 10)


def test_learner_steps_the_schedule_per_optimizer_step():
    X, y = regression_data(64)
    learn = learner(nn.Linear(3, 1), X, y, valid=False, loss_func=F.mse_loss, schedule='cosine', warmup=0.25, lr=1.0,
                    opt_func=torch.optim.SGD)
    learn.fit(2)      # 8 steps, 2 warmup
    lrs = [r['lr'] for r in learn.history.steps]   # the lr each step used (it used to record the next step's)
    assert lrs[:2] == pytest.approx([0.5, 1.0]) and lrs[-1] == pytest.approx(0.1)


def test_early_stopping_stops_and_restores_best():
    X, y = classification_data()
    learn = learner(nn.Linear(4, 2), X, y, loss_func=F.cross_entropy, lr=0.0, cbs=[EarlyStoppingCB(patience=2)])
    learn.fit(20)
    assert len(learn.history.epochs) == 3     # best at epoch 0, no improvement for 2 more epochs


def test_max_steps_stops_mid_epoch_and_still_records_the_epoch():
    X, y = regression_data(64)
    learn = learner(nn.Linear(3, 1), X, y, loss_func=F.mse_loss)
    learn.fit(10, max_steps=6)
    assert learn.step == 6 and len(learn.history.epochs) == 2


def test_transformers_model_with_dict_batches_and_tokens_per_second():
    from transformers import GPT2Config, GPT2LMHeadModel
    set_seed(0)
    tokens = torch.randint(0, 20, (32, 8)); tokens[:, 1::2] = tokens[:, ::2]      # learnable: repeat each token
    ds = [{'input_ids': t, 'labels': t} for t in tokens]
    dl = DataLoader(ds, batch_size=8)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=32, n_layer=1, n_head=2))
    learn = Learner(model, dl, dl, lr=3e-3, progress=False, device='cpu')
    learn.fit(4)
    e = learn.history.epochs
    assert e[-1]['valid_loss'] < e[0]['valid_loss'] and e[-1]['tokens_per_s'] > 0


def test_get_preds_and_evaluate_agree():
    X, y = classification_data()
    learn = learner(nn.Linear(4, 2), X, y, loss_func=F.cross_entropy, metrics={'accuracy': accuracy})
    learn.fit(1)
    preds, labels = learn.get_preds()
    assert preds.shape == (96, 2) and torch.equal(labels, y)
    assert learn.evaluate()['accuracy'] == pytest.approx(accuracy(preds, labels))


def test_accuracy_variants():
    assert accuracy(torch.tensor([[2., 1], [0, 3]]), torch.tensor([0, 0])) == 0.5
    assert accuracy(torch.tensor([[2.], [-1]]), torch.tensor([[1.], [1]])) == 0.5
    logits = torch.zeros(1, 3, 4); logits[0, :, 1] = 1
    assert accuracy(logits, torch.tensor([[1, 1, -100]])) == 1.0       # ignored positions do not count


def test_unsized_loader_needs_max_steps():
    "An IterableDataset has no length: fit works with max_steps, and without it says what to do."
    import pytest, torch
    from course_lib.train.learner import Learner, batch_count
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            while True:
                x = torch.randn(4, generator=g); yield x, (x.sum() > 0).long()
    dl = torch.utils.data.DataLoader(Stream(), batch_size=8)
    assert batch_count(dl) is None and batch_count([1, 2]) == 2
    learn = Learner(torch.nn.Linear(4, 2), dl, loss_func=torch.nn.functional.cross_entropy, device='cpu', progress=False)
    learn.fit(1, max_steps=5)
    assert learn.step == 5 and len(learn.history.steps) == 5
    with pytest.raises(ValueError, match='max_steps'):
        Learner(torch.nn.Linear(4, 2), dl, loss_func=torch.nn.functional.cross_entropy, device='cpu', progress=False).fit(1)
