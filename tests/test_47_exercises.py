"Chapter 47's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import math
import pytest
import torch
from course_lib.projects.recommender import check_recall, check_ndcg, check_top_k_unseen, covisit_scores, popularity_scores


def recall_ref(scores, relevant, k):
    top = scores.topk(k, dim=1).indices
    hits = relevant.gather(1, top).sum(1).float()
    n_rel = relevant.sum(1)
    keep = n_rel > 0
    return (hits[keep] / n_rel[keep].clamp(max=k)).mean().item()

def recall_over_all_relevant(scores, relevant, k):         # divides by |R_u|: a perfect list scores < 1
    hits = relevant.gather(1, scores.topk(k, dim=1).indices).sum(1).float()
    n_rel = relevant.sum(1); keep = n_rel > 0
    return (hits[keep] / n_rel[keep]).mean().item()

def recall_counting_empty_users(scores, relevant, k):      # users with nothing to find count as 0
    hits = relevant.gather(1, scores.topk(k, dim=1).indices).sum(1).float()
    return (hits / relevant.sum(1).clamp(min=1, max=k)).mean().item()

def ndcg_ref(hits, n_relevant, k):
    dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits[:k]))
    return dcg / sum(1 / math.log2(j + 2) for j in range(min(n_relevant, k)))

def ndcg_ideal_of_k(hits, n_relevant, k):                   # the classic IDCG bug: assumes k relevant items
    return sum(h / math.log2(j + 2) for j, h in enumerate(hits[:k])) / sum(1 / math.log2(j + 2) for j in range(k))

def ndcg_ideal_of_all_relevant(hits, n_relevant, k):        # forgets the cut at k in the ideal list
    return (sum(h / math.log2(j + 2) for j, h in enumerate(hits[:k]))
            / sum(1 / math.log2(j + 2) for j in range(n_relevant)))

def ndcg_without_the_cut(hits, n_relevant, k):              # sums hits beyond position k
    dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
    return dcg / sum(1 / math.log2(j + 2) for j in range(min(n_relevant, k)))

def top_k_ref(scores, seen, k): return scores.masked_fill(seen, float('-inf')).topk(k, dim=1).indices
def top_k_not_masked(scores, seen, k): return scores.topk(k, dim=1).indices
def top_k_zeroed(scores, seen, k): return scores.masked_fill(seen, 0.0).topk(k, dim=1).indices
def top_k_ascending(scores, seen, k): return scores.masked_fill(seen, float('inf')).topk(k, dim=1, largest=False).indices


def assert_fails(capsys, checker, fn):
    assert checker('Exercise X', fn) is False
    assert 'FAIL' in capsys.readouterr().out

def test_recall_checker(capsys):
    assert check_recall('Exercise 1', recall_ref) is True
    for wrong in (recall_over_all_relevant, recall_counting_empty_users):
        assert_fails(capsys, check_recall, wrong)

def test_ndcg_checker_catches_the_idcg_bug(capsys):
    assert check_ndcg('Exercise 2', ndcg_ref) is True
    for wrong in (ndcg_ideal_of_k, ndcg_ideal_of_all_relevant, ndcg_without_the_cut):
        assert_fails(capsys, check_ndcg, wrong)

def test_top_k_unseen_checker(capsys):
    assert check_top_k_unseen('Exercise 3', top_k_ref) is True
    for wrong in (top_k_not_masked, top_k_zeroed, top_k_ascending):
        assert_fails(capsys, check_top_k_unseen, wrong)

def test_covisit_is_popularity_without_clicks_and_follows_the_neighbourhood():
    train = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 1]]).bool()
    pop = popularity_scores(torch.nonzero(train), 5, 5)[0]
    none = covisit_scores(torch.zeros(1, 5, dtype=torch.bool), train)[0]
    assert torch.equal(none.argsort(descending=True, stable=True), pop.argsort(descending=True, stable=True))
    clicked_0 = covisit_scores(torch.tensor([[True, False, False, False, False]]), train)[0]
    assert clicked_0.argmax() == 1            # item 1 always co-occurs with item 0, although item 4 is the most popular
    assert pop.argmax() == 4
