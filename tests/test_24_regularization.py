"Tests for course_lib.maths.regularization: penalties, PenaltyCB, sparsity, dropout, batch norm, shifts and AugmentCB."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.train.learner import Learner
from course_lib.core import tensor_loader
from course_lib.maths.regularization import (l2_penalty, l1_penalty, PenaltyCB, sparsity, dropout, DropoutScratch,
                                       BatchNormScratch, shift_images, random_shift, AugmentCB)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_penalties_cover_weights_not_biases():
    m = small_net()
    w = [m[0].weight, m[2].weight]
    assert_close(l2_penalty(m), sum((p ** 2).sum() for p in w))
    assert_close(l1_penalty(m), sum(p.abs().sum() for p in w))
    l2_penalty(m).backward()
    assert_close(m[0].weight.grad, 2 * m[0].weight.detach())
    assert m[0].bias.grad is None and m[2].bias.grad is None          # biases are not penalised
    for fn in (l2_penalty, l1_penalty, sparsity):
        with pytest.raises(ValueError, match='no weight matrices'): fn(nn.BatchNorm1d(3))


def test_l2_in_loss_equals_sgd_weight_decay():
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    a, b = small_net(), small_net()
    oa = torch.optim.SGD([a[0].weight, a[2].weight], lr=0.1)
    ob = torch.optim.SGD([b[0].weight, b[2].weight], lr=0.1, weight_decay=0.3)
    for _ in range(5):
        oa.zero_grad(); (F.cross_entropy(a(x), y) + 0.3 / 2 * l2_penalty(a)).backward(); oa.step()
        ob.zero_grad(); F.cross_entropy(b(x), y).backward(); ob.step()
    for p, q in zip(a.parameters(), b.parameters()): assert_close(p, q)


def test_penalty_cb_adds_to_training_loss_only_and_logs_data_loss():
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    dl = tensor_loader(x, y, batch_size=32)
    plain = Learner(small_net(), dl, dl, F.cross_entropy, opt_func=torch.optim.SGD, lr=0.1, device='cpu', progress=False)
    pen = Learner(small_net(), dl, dl, F.cross_entropy, opt_func=torch.optim.SGD, lr=0.1, device='cpu', progress=False,
                  cbs=[PenaltyCB(l2_penalty, 0.5)])
    plain.fit(1); pen.fit(1)
    assert plain.history.epochs[0]['train_loss'] == pytest.approx(pen.history.epochs[0]['train_loss'])   # data loss logged
    assert not torch.allclose(plain.model[0].weight, pen.model[0].weight)                                # but the step differs
    assert l2_penalty(pen.model) < l2_penalty(plain.model)
    with pytest.raises(ValueError, match='lam'): PenaltyCB(l1_penalty, -1.0)


def test_sparsity():
    m = small_net()
    with torch.no_grad(): m[0].weight.zero_()
    assert sparsity(m) == pytest.approx(12 / 18)
    assert sparsity(small_net(), tol=10.0) == 1.0


def test_dropout_matches_torch_and_eval_is_identity():
    x = torch.randn(50, 40)
    torch.manual_seed(3); ours = dropout(x, 0.4)
    torch.manual_seed(3); theirs = F.dropout(x, 0.4, training=True)
    assert_close(ours, theirs)
    assert torch.equal(dropout(x, 0.4, training=False), x) and torch.equal(dropout(x, 0.0), x)
    d = DropoutScratch(0.2)
    assert 'p=0.2' in repr(d)
    assert torch.equal(d.eval()(x), x)
    kept = d.train()(x) != 0
    assert_close(d.train()(torch.ones(10000)).mean(), torch.tensor(1.0), atol=0.05, rtol=0)
    assert kept.any()
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r'\[0, 1\)'): dropout(x, bad)
        with pytest.raises(ValueError, match=r'\[0, 1\)'): DropoutScratch(bad)


def test_batchnorm_matches_torch_train_and_eval():
    ours, theirs = BatchNormScratch(5, momentum=0.2), nn.BatchNorm1d(5, momentum=0.2)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2); ours.bias.normal_()
        theirs.weight.copy_(ours.weight); theirs.bias.copy_(ours.bias)
    for _ in range(4):
        xb = torch.randn(16, 5) * 2 + 3
        assert_close(ours(xb), theirs(xb))
    assert_close(ours.running_mean, theirs.running_mean); assert_close(ours.running_var, theirs.running_var)
    ours.eval(); theirs.eval()
    xe = torch.randn(3, 5)
    assert_close(ours(xe), theirs(xe))
    assert set(dict(ours.named_buffers())) == {'running_mean', 'running_var'}
    with pytest.raises(ValueError, match='expects'): ours(torch.randn(3, 4))
    ours.train()
    with pytest.raises(ValueError, match='at least 2'): ours(torch.randn(1, 5))


def test_shift_images():
    img = torch.arange(1.0, 10.0).view(1, 9)                  # a 3x3 image 1..9
    right = shift_images(img, 1, 0, side=3).view(3, 3)
    assert right.tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]
    up = shift_images(img, 0, -1, side=3).view(3, 3)
    assert up.tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]
    two = shift_images(torch.cat([img, img]), torch.tensor([1, 0]), torch.tensor([0, 1]), side=3).view(2, 3, 3)
    assert torch.equal(two[0], right) and two[1].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert torch.equal(shift_images(img, 0, 0, side=3), img)
    with pytest.raises(ValueError, match='flattened'): shift_images(torch.ones(2, 10), 1, 1, side=3)


def test_random_shift_is_a_shift_and_seeded():
    x = torch.rand(20, 64)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = random_shift(x, generator=g1), random_shift(x, generator=g2)
    assert torch.equal(a, b) and a.shape == x.shape
    candidates = [shift_images(x, dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    assert all(any(torch.equal(a[i], c[i]) for c in candidates) for i in range(20))


def test_augment_cb_changes_training_batches_only():
    seen = []
    class Spy(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 2)
        def forward(self, x): seen.append((self.training, x.clone())); return self.lin(x)
    x, y = torch.ones(8, 4), torch.zeros(8, dtype=torch.long)
    dl = tensor_loader(x, y, batch_size=8)
    Learner(Spy(), dl, dl, F.cross_entropy, device='cpu', progress=False, cbs=[AugmentCB(lambda t: t * 2)]).fit(1)
    assert any(tr and torch.equal(t, x * 2) for tr, t in seen)
    assert any(not tr and torch.equal(t, x) for tr, t in seen)


def test_penalties_cover_what_the_learner_decays_not_embeddings_or_norm_gains():
    "Chapter 24 and the Learner (chapter 02) agree: weight matrices only; no biases, norm gains or embeddings."
    from course_lib.train.learner import decay_param_groups
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    assert_close(l2_penalty(m), (m[1].weight ** 2).sum() + (m[3].weight ** 2).sum())
    assert_close(l1_penalty(m), m[1].weight.abs().sum() + m[3].weight.abs().sum())
    decayed = {id(p) for g in decay_param_groups(m, 0.1) if g['weight_decay'] > 0 for p in g['params']}
    assert decayed == {id(m[1].weight), id(m[3].weight)}
    with torch.no_grad(): m[0].weight.zero_()                      # zeroed embedding: not counted by sparsity either
    assert sparsity(m) == 0.0


def test_l1_with_sgd_depends_on_lambda_but_adam_does_not():
    "Issue 15: L1's pull is eta*lambda per step under SGD; Adam normalises it away (so lambda 1000x smaller zeroes too)."
    torch.manual_seed(0)
    def dead_weights(lam, opt_cls, lr, steps=150):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = opt_cls(m.parameters(), lr=lr)
        x = torch.randn(32, 4); x[:, 0] = 0                         # input 0 is always zero: no data gradient
        y = torch.randint(0, 2, (32,))
        for _ in range(steps):
            loss = F.cross_entropy(m(x), y) + lam * l1_penalty(m)
            opt.zero_grad(); loss.backward(); opt.step()
        return m[0].weight.detach()[:, 0]
    assert (dead_weights(1e-2, torch.optim.SGD, 0.5).abs() <= 0.5 * 1e-2 + 1e-7).all()      # reached 0 (|w0| <= 0.5)
    assert (dead_weights(1e-5, torch.optim.SGD, 0.5).abs() > 0.5 * 1e-2).float().mean() > 0.5   # 1000x smaller: not
    for lam in (1e-2, 1e-5):
        assert (dead_weights(lam, torch.optim.Adam, 1e-2).abs() <= 2e-2).all()              # Adam: both reach 0
