import math
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from course_lib.train.learner import Learner
from course_lib.applications.trust import (per_example_grads, clip_per_example, privatize_grads, PoissonSampler, DPSGDCB,
                              gaussian_rdp, sampled_gaussian_rdp, rdp_to_epsilon, dp_epsilon, per_example_losses,
                              membership_advantage, AttentionPoolClassifier, gradient_x_input, integrated_gradients,
                              token_attributions, per_class_recall, text_logprob, DEFAULT_ORDERS)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def test_per_example_grads_match_loop():
    m = _model(); x = torch.randn(6, 5); y = torch.randint(0, 3, (6,))
    pe = per_example_grads(m, F.cross_entropy, x, y)
    for i in range(6):
        m.zero_grad(); F.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in m.named_parameters(): torch.testing.assert_close(pe[n][i], p.grad)


def test_per_example_grads_skip_frozen():
    m = _model(); m[0].weight.requires_grad_(False)
    pe = per_example_grads(m, F.cross_entropy, torch.randn(3, 5), torch.tensor([0, 1, 2]))
    assert '0.weight' not in pe and pe['2.weight'].shape == (3, 3, 7)


def test_clip_per_example():
    g = {'a': torch.tensor([[3.0, 0.0], [0.1, 0.0]]), 'b': torch.tensor([[4.0], [0.0]])}
    clipped, norms = clip_per_example(g, 1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.1]))
    torch.testing.assert_close(clipped['a'][0], torch.tensor([0.6, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(clipped['b'][0], torch.tensor([0.8]), atol=1e-5, rtol=0)
    torch.testing.assert_close(clipped['a'][1], g['a'][1])


def test_privatize_grads_no_noise_and_noise_scale():
    g = {'w': torch.ones(4, 3)}
    out = privatize_grads(g, max_norm=10.0, noise_multiplier=0.0, expected_batch_size=2)
    torch.testing.assert_close(out['w'], torch.full((3,), 2.0))
    z = privatize_grads({'w': torch.zeros(2, 50000)}, 1.0, 2.0, 4, torch.Generator().manual_seed(0))['w']
    assert abs(z.std().item() - 0.5) < 0.02
    a = privatize_grads({'w': torch.zeros(2, 5)}, 1.0, 1.0, 1, torch.Generator().manual_seed(1))['w']
    b = privatize_grads({'w': torch.zeros(2, 5)}, 1.0, 1.0, 1, torch.Generator().manual_seed(1))['w']
    torch.testing.assert_close(a, b)


def test_poisson_sampler():
    s = PoissonSampler(1000, 0.05, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 20
    sizes = [len(b) for b in batches]
    assert 30 < np.mean(sizes) < 70 and len(set(sizes)) > 1
    assert all(0 <= i < 1000 for b in batches for i in b)
    with pytest.raises(ValueError): PoissonSampler(10, 0.0)
    with pytest.raises(RuntimeError): list(PoissonSampler(3, 1e-9, steps=1))


def test_dpsgd_callback_step_matches_formula():
    m1, m2 = _model(), _model()
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    learn = Learner(m1, [(x, y)], loss_func=F.cross_entropy, opt_func=torch.optim.SGD, lr=0.2, progress=False,
                    metrics={}, cbs=[DPSGDCB(max_norm=0.5, noise_multiplier=0.7, expected_batch_size=10, seed=5)])
    learn.fit(1)
    want = privatize_grads(per_example_grads(m2, F.cross_entropy, x, y), 0.5, 0.7, 10, torch.Generator().manual_seed(5))
    p1 = dict(m1.named_parameters())
    for n, p in m2.named_parameters(): torch.testing.assert_close(p1[n], p - 0.2 * want[n])


def test_dpsgd_callback_rejects_grad_clipping():
    learn = Learner(_model(), [(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))], loss_func=F.cross_entropy,
                    max_grad_norm=1.0, progress=False, metrics={}, cbs=[DPSGDCB()])
    with pytest.raises(ValueError): learn.fit(1)


def test_dpsgd_trains_with_poisson_loader():
    torch.manual_seed(0)
    X = torch.randn(200, 5); y = (X[:, 0] > 0).long()
    dl = DataLoader(TensorDataset(X, y), batch_sampler=PoissonSampler(200, 0.2, seed=0))
    m = _model()
    learn = Learner(m, dl, loss_func=F.cross_entropy, lr=0.05, progress=False, metrics={},
                    cbs=[DPSGDCB(1.0, 0.5, expected_batch_size=40)])
    learn.fit(5)
    cb = [c for c in learn.cbs if isinstance(c, DPSGDCB)][0]
    assert cb.steps == 25 and len(cb.clipped_fraction) == 25
    assert all(math.isfinite(p.sum().item()) for p in m.parameters())


def test_rdp_formulas():
    torch.testing.assert_close(gaussian_rdp(2.0, (2, 4)), torch.tensor([0.25, 0.5], dtype=torch.float64))
    torch.testing.assert_close(sampled_gaussian_rdp(1.0, 1.5, (2, 3)), gaussian_rdp(1.5, (2, 3)))
    # alpha = 2 closed form: A_2 = (1-q)^2 + 2q(1-q) + q^2 e^{1/sigma^2} = 1 + q^2 (e^{1/sigma^2} - 1)
    q, s = 0.1, 1.0
    torch.testing.assert_close(sampled_gaussian_rdp(q, s, (2,))[0],
                               torch.tensor(math.log(1 + q * q * (math.exp(1 / s ** 2) - 1)), dtype=torch.float64))
    assert (sampled_gaussian_rdp(0.01, 1.0, (2, 8, 32)) < gaussian_rdp(1.0, (2, 8, 32))).all()
    with pytest.raises(ValueError): sampled_gaussian_rdp(0.1, 1.0, (1.5,))


def test_rdp_to_epsilon_and_dp_epsilon():
    eps, order = rdp_to_epsilon(torch.tensor([1.0, 0.5], dtype=torch.float64), 1e-5, orders=(2, 3))
    assert order == 3 and abs(eps - (0.5 + math.log(1e5) / 2)) < 1e-12
    e_full = dp_epsilon(1.0, 100, 1e-5); e_sub = dp_epsilon(1.0, 100, 1e-5, q=0.01)
    best = min(100 * a / 2 + math.log(1e5) / (a - 1) for a in DEFAULT_ORDERS)
    assert abs(e_full - best) < 1e-9 and e_sub < e_full
    assert dp_epsilon(2.0, 100, 1e-5, q=0.01) < e_sub
    assert dp_epsilon(0.0, 10, 1e-5) == math.inf


def test_per_example_losses_and_mode():
    m = _model().train(); x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    l = per_example_losses(m, x, y, batch_size=3)
    torch.testing.assert_close(l, F.cross_entropy(m(x), y, reduction='none'))
    assert m.training


def test_membership_advantage():
    assert membership_advantage([0.1, 0.2], [0.5, 0.6]) == 1.0
    assert membership_advantage([0.5, 0.6], [0.1, 0.2]) == 0.0
    assert abs(membership_advantage([0.1, 0.5], [0.3, 0.7]) - 0.5) < 1e-12


def test_attention_pool_classifier():
    torch.manual_seed(0)
    m = AttentionPoolClassifier(20, 4, d_model=16, n_head=2, max_len=8).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    out = m(ids, torch.tensor([3, 5]))
    assert out.shape == (2, 4)
    torch.testing.assert_close(m.pool_weights.sum(1), torch.ones(2))
    assert (m.pool_weights[0, 3:] == 0).all()
    # padding does not change the logits of the shorter text
    torch.testing.assert_close(m(ids[:1, :3]), out[:1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError): m(torch.ones(1, 9, dtype=torch.long))


def test_gradient_x_input_linear_completeness():
    lin = nn.Linear(6, 2); x = torch.randn(4, 6)
    f = lambda v: lin(v)[:, 1]
    torch.testing.assert_close(gradient_x_input(f, x).sum(1), f(x) - f(torch.zeros_like(x)))


def test_integrated_gradients_completeness_nonlinear():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    f = lambda v: net(v)[:, 0]
    x, base = torch.randn(3, 4), torch.randn(3, 4)
    ig = integrated_gradients(f, x, base, steps=200)
    with torch.no_grad(): torch.testing.assert_close(ig.sum(1), f(x) - f(base), atol=1e-3, rtol=1e-3)


def test_token_attributions():
    torch.manual_seed(0)
    m = AttentionPoolClassifier(20, 3, d_model=16, n_head=2, max_len=8).train()
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]])
    attr, target = token_attributions(m, ids, steps=100)
    assert attr.shape == ids.shape and (attr[0, 3:] == 0).all() and m.training
    with torch.no_grad():
        m.eval(); full = m(ids).gather(1, target[:, None])[:, 0]
        zero = m.forward_embeddings(torch.zeros(2, 4, 16), ids).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(attr.sum(1), full - zero, atol=2e-3, rtol=1e-2)


def test_per_class_recall():
    r = per_class_recall(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]), 3)
    torch.testing.assert_close(r[:2], torch.tensor([0.5, 2 / 3], dtype=torch.float64))
    assert math.isnan(r[2].item())


class _CharTok:
    vocab_size = 5
    def encode(self, s): return [ord(c) % 5 for c in s]


class _UniformLM(nn.Module):
    class config: n_positions = 16
    def forward(self, input_ids):
        return type('O', (), {'logits': torch.zeros(*input_ids.shape, 5)})()


def test_text_logprob_uniform_model():
    lp = text_logprob(_UniformLM(), _CharTok(), 'abcdefghij' * 3, context='\n')
    assert abs(lp - 30 * math.log(1 / 5)) < 1e-4
