"Tests for course_lib.algorithms.continual: drift stream, prequential evaluation, drift alarm, replay buffer, EWC."
import copy
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.train.learner import Learner, Callback
from course_lib.core import tensor_loader
from course_lib.maths.regularization import PenaltyCB
from course_lib.algorithms.continual import (permute_pixels, drift_stream, batch_accuracy, prequential, drift_alarm,
                                  TaskAccuracyCB, ReplayBuffer, ReplayCB, fisher_diagonal, EWCPenalty)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def toy_data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_permute_pixels_and_inverse():
    X = torch.arange(12.).view(3, 2, 2)
    perm = torch.tensor([3, 0, 2, 1])
    P = permute_pixels(X, perm)
    assert P.shape == X.shape
    assert_close(P.flatten(1), X.flatten(1)[:, perm])
    assert_close(permute_pixels(P, perm.argsort()), X)
    with pytest.raises(ValueError, match='permutation'): permute_pixels(X, torch.tensor([0, 0, 1, 2]))
    with pytest.raises(ValueError, match='randperm'): permute_pixels(X, torch.arange(5))


def test_drift_stream_gradual():
    X, y = torch.rand(100, 4), torch.arange(100) % 3
    perm = torch.tensor([1, 2, 3, 0])
    s = drift_stream(X, y, perm, batch_size=10, seed=0)
    assert len(s) == 10 and all(len(b[0]) == 10 for b in s)
    assert not s[0][2].any() and s[-1][2].all()
    assert_close(s[-1][0], permute_pixels(s[-1][0][:, perm.argsort()], perm))
    ys = torch.cat([b[1] for b in s])
    assert sorted(ys.tolist()) == sorted(y.tolist())          # every example used once
    for xb, _, m in s:                                          # unpermuted rows are original rows
        for row in xb[~m]: assert (X == row).all(1).any()
    with pytest.raises(ValueError, match='at least 2 batches'): drift_stream(X[:5], y[:5], perm, batch_size=10)
    with pytest.raises(ValueError, match='batch_size'): drift_stream(X, y, perm, batch_size=0)


def test_batch_accuracy_restores_mode():
    m = small_net(); x, y = toy_data()
    m.train()
    acc = batch_accuracy(m, x, y)
    assert m.training and 0 <= acc <= 1
    assert acc == (m(x).argmax(1) == y).float().mean().item()


def test_prequential_frozen_and_online():
    m = small_net(); x, y = toy_data(40)
    stream = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    before = copy.deepcopy(m.state_dict())
    accs = prequential(m, stream, update=False)
    assert len(accs) == 5 and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert accs == [batch_accuracy(m, a, b) for a, b in stream]
    # test-then-train: the first score is measured before any update
    m2 = small_net()
    accs2 = prequential(m2, stream, torch.optim.SGD(m2.parameters(), lr=0.5))
    assert accs2[0] == accs[0]
    assert not torch.equal(before['2.weight'], m2.state_dict()['2.weight'])
    # many passes over a learnable stream make it fit
    for _ in range(60): prequential(m2, stream, torch.optim.SGD(m2.parameters(), lr=0.3))
    assert sum(prequential(m2, stream, update=False)) / 5 > 0.7
    with pytest.raises(ValueError, match='optimizer'): prequential(m, stream, update=True)


def test_prequential_with_buffer():
    m = small_net(); x, y = toy_data(40)
    stream = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    buf = ReplayBuffer(16)
    prequential(m, stream, torch.optim.SGD(m.parameters(), lr=0.1), buffer=buf, n_replay=4)
    assert len(buf) == 16 and buf.n_seen == 40


def test_drift_alarm():
    assert drift_alarm([0.9] * 10) is None
    assert drift_alarm([0.9] * 5 + [0.5] * 5, window=5, drop=0.15) == 9
    assert drift_alarm([0.9] * 6 + [0.1] * 6, window=3, drop=0.2) == 6
    with pytest.raises(ValueError, match='window'): drift_alarm([0.9] * 10, window=0)
    with pytest.raises(ValueError, match='2 \\* window'): drift_alarm([0.9] * 3, window=5)


def test_replay_buffer_capacity_and_uniformity():
    buf = ReplayBuffer(capacity=5, seed=0)
    buf.add(torch.arange(3.).unsqueeze(1), torch.arange(3))
    assert len(buf) == 3
    buf.add(torch.arange(100.).unsqueeze(1), torch.arange(100))
    assert len(buf) == 5 and buf.n_seen == 103
    x, y = buf.sample(7)
    assert x.shape == (7, 1) and y.shape == (7,)
    counts = torch.zeros(200)
    for s in range(1000):
        b = ReplayBuffer(capacity=20, seed=s); b.add(torch.zeros(200, 1), torch.arange(200))
        assert len(b) == 20
        counts[torch.stack(b.ys)] += 1
    freq = counts / 1000                                 # each item kept with probability 20/200
    assert abs(freq[:100].mean().item() - 0.1) < 0.01 and abs(freq[100:].mean().item() - 0.1) < 0.01


def test_replay_buffer_errors():
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match='capacity'): ReplayBuffer(capacity=bad)
    with pytest.raises(ValueError, match='ReplayBuffer\\(capacity=200\\)'): ReplayBuffer(0)
    b = ReplayBuffer(4)
    with pytest.raises(ValueError, match='empty'): b.sample(2)
    with pytest.raises(ValueError, match='same number'): b.add(torch.zeros(3, 1), torch.zeros(2))
    b.add(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match='n must be'): b.sample(0)


def test_replay_cb_mixes_batches():
    x, y = toy_data(32)
    buf = ReplayBuffer(10); buf.add(torch.ones(10, 4), torch.zeros(10, dtype=torch.long))
    sizes = []
    class Spy(Callback):
        order = 50
        def before_batch(self): sizes.append(len(self.learn.batch[0]))
    learn = Learner(small_net(), tensor_loader(x, y, 8), None, F.cross_entropy, progress=False,
                    cbs=[ReplayCB(buf, n_replay=3, add_seen=True), Spy()])
    learn.fit(1)
    assert sizes == [11] * 4
    assert buf.n_seen == 10 + 32 and len(buf) == 10
    with pytest.raises(ValueError, match='n_replay'): ReplayCB(buf, n_replay=0)


def test_task_accuracy_cb():
    x, y = toy_data(32)
    cb = TaskAccuracyCB({'a': (x, y), 'b': (x[:8], y[:8])})
    learn = Learner(small_net(), tensor_loader(x, y, 8), None, F.cross_entropy, progress=False, cbs=[cb])
    learn.fit(3)
    assert len(cb.results['a']) == 4 and len(cb.results['b']) == 4
    assert cb.results['a'][-1] == batch_accuracy(learn.model, x, y)
    with pytest.raises(ValueError, match='at least one task'): TaskAccuracyCB({})


def test_fisher_diagonal_matches_per_example_autograd():
    m = small_net(); x, y = toy_data(10)
    fisher = fisher_diagonal(m, tensor_loader(x, y, 4))
    names = [k for k, _ in m.named_parameters()]
    direct = {k: torch.zeros_like(p) for k, p in m.named_parameters()}
    for xi, yi in zip(x, y):
        lp = F.log_softmax(m(xi.unsqueeze(0)), -1)[0, yi]
        for k, g in zip(names, torch.autograd.grad(lp, list(m.parameters()))): direct[k] += g ** 2 / len(y)
    assert set(fisher) == set(names)
    for k in names: assert_close(fisher[k], direct[k], atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match='no examples'): fisher_diagonal(m, [])
    frozen = small_net(); frozen.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable'): fisher_diagonal(frozen, tensor_loader(x, y, 4))


def test_ewc_penalty_value_grad_and_errors():
    old = small_net(0); new = small_net(1)
    fisher = {k: torch.rand_like(p) for k, p in old.named_parameters()}
    pen = EWCPenalty(old, fisher)
    assert pen(old).item() == 0.0
    val = pen(new)
    old_p = dict(old.named_parameters())
    expected = sum((fisher[k] * (p - old_p[k]) ** 2).sum() for k, p in new.named_parameters())
    assert_close(val, expected.detach())
    val.backward()
    assert_close(new[0].weight.grad, 2 * fisher['0.weight'] * (new[0].weight - old[0].weight).detach())
    # the anchor is a copy: training the old model later does not move it
    with torch.no_grad(): old[0].weight.add_(1.0)
    assert_close(pen(new), expected.detach())
    with pytest.raises(ValueError, match='lacks'): EWCPenalty(old, {'nope': torch.zeros(1)})
    with pytest.raises(ValueError, match='shape'): EWCPenalty(old, {'0.weight': torch.zeros(2)})


def test_ewc_with_penaltycb_keeps_weights_close():
    x, y = toy_data(32)
    base = small_net()
    fisher = {k: torch.ones_like(p) for k, p in base.named_parameters()}
    def drift(lam):
        m = copy.deepcopy(base)
        cbs = [PenaltyCB(EWCPenalty(base, fisher), lam)] if lam else []
        Learner(m, tensor_loader(x, 1 - y.clamp(max=1), 8), None, F.cross_entropy, lr=0.05, progress=False, cbs=cbs).fit(5)
        return sum(((p - q) ** 2).sum() for p, q in zip(m.parameters(), base.parameters())).item()
    assert drift(10.0) < drift(0)
