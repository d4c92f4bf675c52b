import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import ndcg_score
from course_lib.projects.recommender import (simulate_interactions, split_interactions, interaction_matrix, recall_at_k, ndcg_at_k,
                               mask_seen, popularity_scores, MatrixFactorization, bpr_loss, sample_negatives,
                               NegativeSampler, recommend, fold_in_users)
from course_lib.train.learner import Learner
from course_lib.core import set_seed


@pytest.fixture(scope='module')
def data():
    return simulate_interactions(n_users=40, n_items=30, dim=4, mean_per_user=8, seed=0)


def test_simulate_shapes_uniqueness_and_seed(data):
    pairs = data['pairs']
    assert pairs.dtype == torch.long and pairs.shape[1] == 2
    assert pairs[:, 0].max() < 40 and pairs[:, 1].max() < 30 and pairs.min() >= 0
    assert len(torch.unique(pairs[:, 0] * 30 + pairs[:, 1])) == len(pairs)
    assert (torch.bincount(pairs[:, 0], minlength=40) >= 3).all()
    torch.testing.assert_close(data['popularity'].sum(), torch.tensor(1.0))
    assert data['logits'].shape == (40, 30)
    again = simulate_interactions(n_users=40, n_items=30, dim=4, mean_per_user=8, seed=0)
    assert torch.equal(again['pairs'], pairs)
    assert not torch.equal(simulate_interactions(n_users=40, n_items=30, dim=4, mean_per_user=8, seed=1)['pairs'], pairs)


def test_simulated_popularity_is_long_tailed():
    d = simulate_interactions(n_users=400, n_items=100, taste_strength=0.0, seed=0)
    counts = torch.bincount(d['pairs'][:, 1], minlength=100).float()
    top = torch.argsort(d['popularity'], descending=True)
    assert counts[top[:10]].sum() > 3 * counts[top[-10:]].sum()


def test_split_is_a_partition_per_user(data):
    pairs = data['pairs']
    train, held = split_interactions(pairs, 40, frac=0.25, seed=0)
    assert len(train) + len(held) == len(pairs)
    tm, hm = interaction_matrix(train, 40, 30), interaction_matrix(held, 40, 30)
    assert not (tm & hm).any() and (tm | hm).sum() == len(pairs)
    counts = torch.bincount(pairs[:, 0], minlength=40)
    assert (tm.sum(1) >= 1).all() and (hm.sum(1)[counts >= 2] >= 1).all()
    assert torch.equal(split_interactions(pairs, 40, 0.25, seed=0)[1], held)


def test_split_never_holds_out_a_single_interaction():
    pairs = torch.tensor([[0, 1], [1, 2], [1, 3]])
    train, held = split_interactions(pairs, 2, frac=0.9, seed=0)
    assert [0, 1] in train.tolist() and len(held) == 1 and held[0, 0] == 1


def test_interaction_matrix():
    m = interaction_matrix(torch.tensor([[0, 2], [1, 0]]), 2, 3)
    assert m.tolist() == [[False, False, True], [True, False, False]]


def test_recall_and_ndcg_by_hand():
    scores = torch.tensor([[0.5, 0.2, -1.0, 0.9], [1.0, 2.0, 3.0, 4.0]])
    rel = torch.tensor([[False, True, False, True], [False, False, False, False]])
    assert recall_at_k(scores, rel, k=2) == 0.5
    per_user = recall_at_k(scores, rel, k=2, reduce=False)
    assert per_user[0] == 0.5 and torch.isnan(per_user[1])
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert math.isclose(ndcg_at_k(scores, rel, k=3), expected, rel_tol=1e-6)
    perfect = torch.tensor([[0., 1., 0., 1.]])
    assert recall_at_k(perfect, rel[:1], 2) == 1.0 and math.isclose(ndcg_at_k(perfect, rel[:1], 2), 1.0, rel_tol=1e-6)


def test_recall_denominator_is_min_of_relevant_and_k():
    rel = torch.ones(1, 20, dtype=torch.bool)
    assert recall_at_k(torch.randn(1, 20), rel, k=10) == 1.0


def test_ndcg_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(25, 40, generator=g)
    rel = torch.rand(25, 40, generator=g) < 0.15
    rel[:, 0] = True                                   # every user has at least one relevant item
    for k in (1, 5, 10):
        ours = ndcg_at_k(scores, rel, k=k)
        assert math.isclose(ours, ndcg_score(rel.numpy().astype(float), scores.numpy(), k=k), rel_tol=1e-5)


def test_mask_seen_and_popularity():
    s = mask_seen(torch.zeros(2, 3), torch.tensor([[True, False, False], [False, False, True]]))
    assert s[0, 0] == float('-inf') and s[1, 2] == float('-inf') and s[0, 1] == 0
    pop = popularity_scores(torch.tensor([[0, 1], [1, 1], [1, 2]]), 3, 4)
    assert pop.shape == (3, 4) and pop[2].tolist() == [0., 2., 1., 0.]


def test_matrix_factorization_formula():
    torch.manual_seed(0)
    mf = MatrixFactorization(5, 7, dim=3, init_std=0.5)
    with torch.no_grad(): mf.user_bias.weight.normal_(); mf.item_bias.weight.normal_(); mf.global_bias.fill_(0.3)
    u, i = torch.tensor([0, 4]), torch.tensor([6, 1])
    manual = 0.3 + mf.user_bias.weight[u, 0] + mf.item_bias.weight[i, 0] + (mf.user_emb.weight[u] * mf.item_emb.weight[i]).sum(1)
    torch.testing.assert_close(mf(u, i), manual)
    torch.testing.assert_close(mf.score_all(u)[torch.arange(2), i], manual)
    two = mf(u, torch.stack([i, i], 1))
    assert two.shape == (2, 2)
    torch.testing.assert_close(two[:, 1], manual)


def test_bpr_loss_equals_softplus():
    a, b = torch.randn(9), torch.randn(9)
    torch.testing.assert_close(bpr_loss(a, b), F.softplus(b - a).mean())
    torch.testing.assert_close(bpr_loss(a, b), -torch.log(torch.sigmoid(a - b)).mean())


def test_sample_negatives_avoid_seen():
    seen = torch.zeros(3, 6, dtype=torch.bool); seen[0, :5] = True; seen[1, ::2] = True
    negs = sample_negatives(torch.tensor([0, 1, 2, 0]), seen, n_neg=7, generator=torch.Generator().manual_seed(0))
    assert negs.shape == (4, 7)
    assert (negs[[0, 3]] == 5).all() and (negs[1] % 2 == 1).all()


def test_negative_sampler_batches(data):
    pairs = data['pairs']; seen = interaction_matrix(pairs, 40, 30)
    dl = NegativeSampler(pairs, seen, n_neg=3, batch_size=50)
    batches = list(dl)
    assert len(batches) == len(dl) == math.ceil(len(pairs) * 4 / 50)
    u, i, y = (torch.cat(t) for t in zip(*batches))
    assert y.sum() == len(pairs) and len(y) == 4 * len(pairs) and y.dtype == torch.float32
    assert seen[u[y == 1], i[y == 1]].all() and not seen[u[y == 0], i[y == 0]].any()
    fixed = NegativeSampler(pairs, seen, n_neg=3, batch_size=50, seed=1)
    assert all(torch.equal(a, b) for x, z in zip(fixed, fixed) for a, b in zip(x, z))


def test_learner_trains_mf_and_recommend_excludes_seen(data):
    pairs = data['pairs']
    train, held = split_interactions(pairs, 40, 0.2, seed=0)
    tm = interaction_matrix(train, 40, 30)
    set_seed(0)
    mf = MatrixFactorization(40, 30, dim=8)
    learn = Learner(mf, NegativeSampler(train, tm, n_neg=2, batch_size=64), None, F.binary_cross_entropy_with_logits,
                    lr=2e-2, metrics={}, progress=False)
    learn.fit(8)
    assert learn.history.epochs[-1]['train_loss'] < learn.history.epochs[0]['train_loss']
    recs = recommend(mf, torch.arange(40), k=5, exclude=tm)
    assert recs.shape == (40, 5) and not tm.gather(1, recs).any()
    assert all(len(set(r)) == 5 for r in recs.tolist())
    scores = mf.score_all(torch.arange(40)).detach()
    assert torch.equal(recommend(scores, torch.arange(40), k=5, exclude=tm), recs)
    assert mf.training                                    # recommend restores the mode


def test_recommend_refuses_when_too_few_items_left():
    exclude = torch.ones(1, 4, dtype=torch.bool); exclude[0, 0] = False
    with pytest.raises(ValueError):
        recommend(torch.randn(1, 4), torch.tensor([0]), k=2, exclude=exclude)


def test_fold_in_users():
    torch.manual_seed(0)
    mf = MatrixFactorization(3, 12, dim=4, init_std=0.5)
    known = torch.zeros(2, 12, dtype=torch.bool); known[1, [2, 5]] = True
    scores = fold_in_users(mf, known, steps=100)
    assert scores.shape == (2, 12)
    base = (mf.item_bias.weight.T + mf.global_bias).detach()[0]
    torch.testing.assert_close(scores[0], base)           # nothing known: item-bias ranking only
    assert scores[1, [2, 5]].min() > scores[1].median()   # the known items move up
