"Tests for course_lib.applications.language: lead-k, centrality scores (centroid, TextRank), extractive summaries, ROUGE-1."
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.applications.language import lead_k, centroid_scores, textrank_scores, extractive_summary, rouge1


def test_lead_k():
    assert lead_k(['a', 'b', 'c'], 2) == ['a', 'b']
    assert lead_k(['a'], 3) == ['a']


def test_centroid_scores_formula_and_scale_invariance():
    torch.manual_seed(0)
    e = torch.randn(5, 8)
    s = centroid_scores(e)
    u = F.normalize(e, dim=1); c = u.mean(0)
    assert_close(s, (u @ c) / c.norm())
    assert_close(centroid_scores(3 * e), s)                    # only directions matter
    # a sentence equal to the centroid direction is the most central
    e2 = torch.cat([torch.eye(3), F.normalize(torch.ones(1, 3), dim=1)])
    assert centroid_scores(e2).argmax().item() == 3


def test_textrank_fixed_point_and_hub():
    torch.manual_seed(1)
    e = F.normalize(torch.randn(7, 10), dim=1).double()
    r = textrank_scores(e).double()
    w = (e @ e.T).clamp(min=0).fill_diagonal_(0); P = w / w.sum(1, keepdim=True)
    assert_close(r, 0.15 / 7 + 0.85 * P.T @ r, atol=1e-6, rtol=1e-5)
    assert abs(r.sum().item() - 1) < 1e-5 and (r > 0).all()
    # star graph: a vector similar to three orthogonal ones is the hub
    hub = torch.cat([torch.eye(3), torch.ones(1, 3)])
    assert textrank_scores(hub).argmax().item() == 3


def test_textrank_isolated_sentences_do_not_crash():
    r = textrank_scores(torch.eye(3))                           # no positive similarities at all
    assert_close(r, torch.full((3,), 1 / 3))


def test_extractive_summary_keeps_original_order():
    sents = ['s0', 's1', 's2', 's3', 's4']
    assert extractive_summary(sents, [0.1, 0.5, 0.0, 0.9, 0.3], 2) == ['s1', 's3']
    assert extractive_summary(sents, torch.tensor([5., 4, 3, 2, 1]), 3) == ['s0', 's1', 's2']


def test_rouge1_hand_example_and_clipping():
    r = rouge1('The cat lay on a mat.', 'the cat sat on the mat')
    assert r['recall'] == pytest.approx(4 / 6) and r['precision'] == pytest.approx(4 / 6) and r['f1'] == pytest.approx(4 / 6)
    assert rouge1('the the the', 'the cat')['recall'] == 0.5
    assert rouge1('the the the', 'the cat')['precision'] == pytest.approx(1 / 3)
    assert rouge1('', 'anything') == {'precision': 0.0, 'recall': 0.0, 'f1': 0.0}
    assert rouge1('Same words, here!', 'same words here')['f1'] == pytest.approx(1.0)   # case and punctuation ignored
