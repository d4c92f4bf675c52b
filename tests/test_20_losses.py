"""Tests for course_lib.maths.losses: every loss against torch.nn.functional, at ordinary and extreme (±100) inputs."""
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from torch.testing import assert_close
from torch.utils.data import TensorDataset, DataLoader
from course_lib.maths.losses import (mse_loss, mae_loss, huber_loss, logsumexp, log_softmax, cross_entropy,
                               binary_cross_entropy, softplus, binary_cross_entropy_with_logits, kl_divergence,
                               perplexity)

REDUCTIONS = ('mean', 'sum', 'none')
EXTREME = torch.tensor([[100., -100., 0.], [-100., -100., -100.], [100., 100., -100.], [0.5, -0.3, 2.0]])


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_regression_losses_match_functional(reduction):
    pred, target = torch.randn(6, 3) * 3, torch.randn(6, 3) * 3
    assert_close(mse_loss(pred, target, reduction), F.mse_loss(pred, target, reduction=reduction))
    assert_close(mae_loss(pred, target, reduction), F.l1_loss(pred, target, reduction=reduction))
    for delta in (0.3, 1.0, 5.0):
        assert_close(huber_loss(pred, target, delta, reduction), F.huber_loss(pred, target, reduction=reduction, delta=delta))


def test_regression_losses_reject_mismatched_shapes_and_bad_arguments():
    for fn in (mse_loss, mae_loss, huber_loss, binary_cross_entropy, binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match='shapes must match'):
            fn(torch.rand(4, 1), torch.rand(4))
    with pytest.raises(ValueError, match='reduction'):
        mse_loss(torch.zeros(2), torch.zeros(2), reduction='avg')
    with pytest.raises(ValueError, match='delta'):
        huber_loss(torch.zeros(2), torch.zeros(2), delta=0)


def test_regression_gradients_follow_the_formulas():
    r = torch.linspace(-3, 3, 13, requires_grad=True)
    zeros = torch.zeros(13)
    g, = torch.autograd.grad(mse_loss(r, zeros, 'sum'), r); assert_close(g, 2 * r.detach())
    g, = torch.autograd.grad(mae_loss(r, zeros, 'sum'), r); assert_close(g, torch.sign(r.detach()))
    g, = torch.autograd.grad(huber_loss(r, zeros, 1.5, 'sum'), r); assert_close(g, r.detach().clamp(-1.5, 1.5))


def test_huber_is_continuous_at_delta():
    d = torch.tensor([2.0 - 1e-4, 2.0 + 1e-4])
    v = huber_loss(d, torch.zeros(2), delta=2.0, reduction='none')
    assert abs(v[0] - v[1]) < 1e-3 and abs(v[0] - 2.0) < 1e-3   # delta**2 / 2


@pytest.mark.parametrize('dim', [-1, 0, 1])
def test_logsumexp_and_log_softmax_match_torch_on_extreme_logits(dim):
    for x in (torch.randn(5, 4) * 10, EXTREME):
        assert_close(logsumexp(x, dim), torch.logsumexp(x, dim))
        assert_close(logsumexp(x, dim, keepdim=True), torch.logsumexp(x, dim, keepdim=True))
        assert_close(log_softmax(x, dim), F.log_softmax(x, dim))
    assert torch.isfinite(log_softmax(EXTREME, dim)).all()


def test_logsumexp_handles_all_minus_inf_and_gradient_is_softmax():
    assert logsumexp(torch.full((3,), float('-inf'))) == float('-inf')
    x = torch.randn(3, 5, requires_grad=True)
    g, = torch.autograd.grad(logsumexp(x, 1).sum(), x)
    assert_close(g, torch.softmax(x.detach(), 1))


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_cross_entropy_matches_functional_with_indices(reduction):
    y = torch.randint(0, 3, (4,))
    for logits in (torch.randn(4, 3), EXTREME, torch.randn(4, 3) * 40):
        assert_close(cross_entropy(logits, y, reduction), F.cross_entropy(logits, y, reduction=reduction))


def test_cross_entropy_soft_targets_ignore_index_and_shapes():
    logits = torch.randn(6, 4) * 5
    soft = torch.softmax(torch.randn(6, 4), 1)
    assert_close(cross_entropy(logits, soft), F.cross_entropy(logits, soft))
    y = torch.tensor([0, -100, 3, 2, -100, 1])
    for red in REDUCTIONS:
        assert_close(cross_entropy(logits, y, red), F.cross_entropy(logits, y, reduction=red))
    seq, seq_y = torch.randn(2, 7, 5), torch.randint(0, 7, (2, 5))       # (batch, classes, time)
    assert_close(cross_entropy(seq, seq_y), F.cross_entropy(seq, seq_y))
    one = torch.tensor([100., -100., 0.])
    assert_close(cross_entropy(one, torch.tensor(1)), F.cross_entropy(one, torch.tensor(1)))
    assert cross_entropy(one, torch.tensor(1), reduction='none').shape == ()
    with pytest.raises(ValueError):
        cross_entropy(logits, torch.rand(6, 3))


def test_cross_entropy_gradient_is_p_minus_y():
    z = torch.tensor([[100., -100., 0.], [1., 2., 3.]], requires_grad=True)
    y = torch.tensor([1, 0])
    g, = torch.autograd.grad(cross_entropy(z, y, 'sum'), z)
    assert_close(g, torch.softmax(z.detach(), 1) - F.one_hot(y, 3))
    assert torch.isfinite(g).all()


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_binary_cross_entropy_matches_functional_including_edges(reduction):
    p = torch.tensor([0., 1., 0., 1., 0.5, 0.2, 0.9])
    y = torch.tensor([0., 1., 1., 0., 1., 0.3, 1.])
    assert_close(binary_cross_entropy(p, y, reduction), F.binary_cross_entropy(p, y, reduction=reduction))
    assert (binary_cross_entropy(p, y, 'none') >= 0).all()


@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_bce_with_logits_matches_functional_on_extreme_logits(reduction):
    z = torch.tensor([100., -100., 0., 100., -100., 0., 3.5, -2.])
    y = torch.tensor([0., 1., 1., 1., 0., 0., 0.25, 1.])
    assert_close(binary_cross_entropy_with_logits(z, y, reduction),
                 F.binary_cross_entropy_with_logits(z, y, reduction=reduction))


def test_bce_with_logits_gradient_is_sigmoid_minus_y_everywhere():
    z = torch.tensor([100., -100., 0., 1.5], requires_grad=True)
    y = torch.tensor([0., 1., 1., 0.])
    g, = torch.autograd.grad(binary_cross_entropy_with_logits(z, y, 'sum'), z)
    assert_close(g, torch.sigmoid(z.detach()) - y)


def test_softplus_matches_functional_and_has_sigmoid_gradient():
    x = torch.tensor([-200., -100., -1., 0., 1., 100., 200.], requires_grad=True)
    assert_close(softplus(x), F.softplus(x))
    g, = torch.autograd.grad(softplus(x).sum(), x)
    assert_close(g, torch.sigmoid(x.detach()))


def test_kl_divergence_matches_functional_and_properties():
    lp, lq = F.log_softmax(torch.randn(5, 4) * 3, 1), F.log_softmax(torch.randn(5, 4) * 3, 1)
    assert_close(kl_divergence(lp, lq), F.kl_div(lq, lp, reduction='batchmean', log_target=True))
    assert_close(kl_divergence(lp, lq, reduction='sum'), F.kl_div(lq, lp, reduction='sum', log_target=True))
    kl = kl_divergence(lp, lq, reduction='none')
    assert kl.shape == (5,) and (kl >= 0).all()
    assert kl_divergence(lp, lp).abs() < 1e-6
    entropy = -(lp.exp() * lp).sum(1)
    assert_close(cross_entropy(lq, lp.exp(), reduction='none'), entropy + kl)
    ep, eq = F.log_softmax(EXTREME, 1), F.log_softmax(-EXTREME, 1)
    assert_close(kl_divergence(ep, eq), F.kl_div(eq, ep, reduction='batchmean', log_target=True))
    with_zero = torch.tensor([[0.0, float('-inf')]])      # p = (1, 0): the 0 log 0 term counts as 0
    assert_close(kl_divergence(with_zero, torch.log(torch.tensor([[0.5, 0.5]]))), torch.log(torch.tensor(2.)))


def test_perplexity_is_exp_cross_entropy_and_uniform_gives_vocab_size():
    logits, y = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    y[0, -2:] = -100
    assert_close(perplexity(logits, y), torch.exp(F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1))))
    assert_close(perplexity(torch.zeros(7, 13), torch.randint(0, 13, (7,))), torch.tensor(13.))
    perfect = torch.full((4, 6), -100.); perfect[torch.arange(4), torch.tensor([0, 5, 2, 2])] = 100.
    assert_close(perplexity(perfect, torch.tensor([0, 5, 2, 2])), torch.tensor(1.))


def test_learner_training_with_our_cross_entropy_matches_functional():
    from course_lib.train.learner import Learner
    from course_lib.core import set_seed
    X, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    def run(loss_func):
        set_seed(0)
        model = nn.Linear(4, 3)
        learn = Learner(model, DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True), None, loss_func,
                        metrics={}, progress=False, device='cpu')
        learn.fit(2)
        return [r['loss'] for r in learn.history.steps], model.weight.detach()
    (l1, w1), (l2, w2) = run(cross_entropy), run(F.cross_entropy)
    assert_close(torch.tensor(l1), torch.tensor(l2)); assert_close(w1, w2)
