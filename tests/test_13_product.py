"Tests for course_lib.concepts.model_to_product: business metrics, the routing decision and A/B test sizing (CPU, tiny inputs)."
import math
import pytest
import torch
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest
from course_lib.concepts.model_to_product import (cost_weighted_error, min_cost_decision, routing_cost, sample_size_two_proportions,
                                two_proportion_ztest)


def test_cost_weighted_error():
    cost = torch.tensor([[0., 1., 5.], [1., 0., 1.], [2., 1., 0.]])
    labels = torch.tensor([0, 0, 1, 2])
    preds = torch.tensor([0, 2, 1, 0])
    assert cost_weighted_error(preds, labels, cost) == pytest.approx((0 + 5 + 0 + 2) / 4)
    assert cost_weighted_error(labels, labels, cost) == 0
    with pytest.raises(ValueError, match='square'): cost_weighted_error(preds, labels, torch.ones(3, 2))


def test_min_cost_decision():
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.88, 0.02], [0.5, 0.1, 0.4]])
    equal = torch.ones(3, 3) - torch.eye(3)
    assert min_cost_decision(probs, equal).tolist() == probs.argmax(-1).tolist()
    heavy = equal.clone(); heavy[2] *= 10              # missing class 2 costs 10
    # row 0: deciding 0 costs 0.3 + 0.1*10 = 1.3, deciding 2 costs 0.6 + 0.3 = 0.9 -> 2
    # row 1: deciding 1 costs 0.1 + 0.02*10 = 0.3, deciding 2 costs 0.98 -> 1
    # row 2: deciding 0 costs 0.1 + 0.4*10 = 4.1, deciding 2 costs 0.5 + 0.1 = 0.6 -> 2
    assert min_cost_decision(probs, heavy).tolist() == [2, 1, 2]
    with pytest.raises(ValueError): min_cost_decision(probs, torch.ones(2, 2))


def test_routing_cost():
    probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 1])
    cost = torch.tensor([[0., 1.], [3., 0.]])
    r = routing_cost(probs, labels, cost)
    assert r['cost'] == pytest.approx(3 / 3) and r['auto_rate'] == 1 and r['auto_accuracy'] == pytest.approx(2 / 3)
    r = routing_cost(probs, labels, cost, threshold=0.6, escalation_cost=0.5)
    assert r['cost'] == pytest.approx(0.5 / 3) and r['auto_rate'] == pytest.approx(2 / 3) and r['auto_accuracy'] == 1
    r = routing_cost(probs, labels, cost, preds=torch.tensor([0, 1, 1]))
    assert r['cost'] == 0
    assert math.isnan(routing_cost(probs, labels, cost, threshold=1.1)['auto_accuracy'])


def test_sample_size_matches_statsmodels():
    for p1, p2 in [(0.6, 0.62), (0.1, 0.12), (0.5, 0.45)]:
        sm = NormalIndPower().solve_power(effect_size=proportion_effectsize(p2, p1), alpha=0.05, power=0.8)
        assert sample_size_two_proportions(p1, p2, method='arcsine') == pytest.approx(sm, rel=1e-4)
        assert sample_size_two_proportions(p1, p2) == pytest.approx(sm, rel=0.02)
    assert sample_size_two_proportions(0.6, 0.61) > 3.9 * sample_size_two_proportions(0.6, 0.62)
    with pytest.raises(ValueError, match='equal'): sample_size_two_proportions(0.5, 0.5)
    with pytest.raises(ValueError): sample_size_two_proportions(0.5, 1.0)
    with pytest.raises(ValueError, match='method'): sample_size_two_proportions(0.5, 0.6, method='exact')


def test_two_proportion_ztest_matches_statsmodels():
    z, p = two_proportion_ztest(600, 1000, 640, 1000)
    z_sm, p_sm = proportions_ztest([640, 600], [1000, 1000])
    assert z == pytest.approx(z_sm) and p == pytest.approx(p_sm)
    assert two_proportion_ztest(0, 10, 0, 10) == (0.0, 1.0)
    with pytest.raises(ValueError): two_proportion_ztest(1, 0, 1, 10)


# --- issue 15: the chapter's own metrics, and the common-mistake demonstration ---------------------------------------
import json
from pathlib import Path
from sklearn.metrics import f1_score, top_k_accuracy_score, confusion_matrix as sk_confusion
from course_lib.concepts.model_to_product import confusion_matrix, macro_f1, recall_at_k

NB13 = Path(__file__).resolve().parent.parent / 'nbs' / '13_model_to_product.ipynb'


def test_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(300, 5, generator=g), -1)
    labels = torch.randint(0, 5, (300,), generator=g)
    preds = probs.argmax(-1)
    assert confusion_matrix(preds, labels, 5).tolist() == sk_confusion(labels, preds, labels=range(5)).tolist()
    assert macro_f1(preds, labels, 5) == pytest.approx(f1_score(labels, preds, average='macro'))
    for k in (1, 2, 3):
        assert recall_at_k(probs, labels, k) == pytest.approx(top_k_accuracy_score(labels, probs.numpy(), k=k))
    assert macro_f1(torch.tensor([0, 0]), torch.tensor([0, 0]), 3) == pytest.approx(1 / 3)   # absent classes score 0
    with pytest.raises(ValueError, match='labels'): confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)


def test_common_mistake_is_asserted_to_show():
    "The box used to print 'the two rules agree on this run' in smoke; now it must disagree, by an asserted margin."
    src = '\n'.join(''.join(c['source']) for c in json.loads(NB13.read_text(encoding='utf-8'))['cells'])
    assert 'assert by_accuracy != by_cost and extra > 0.1' in src
    assert 'the two rules agree' not in src
    assert 'test=150' not in src                       # smoke tests on the whole test split (enough legal messages)


def test_min_cost_rule_beats_argmax_on_cost_when_calibrated():
    "What the box relies on: with calibrated probabilities, the min-cost rule has a lower expected cost than the arg-max."
    g = torch.Generator().manual_seed(1)
    C = 4
    probs = torch.softmax(1.5 * torch.randn(20000, C, generator=g), -1)
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)        # labels drawn from the probabilities
    cost = torch.ones(C, C) - torch.eye(C); cost[3] *= 20
    argmax, mincost = probs.argmax(-1), min_cost_decision(probs, cost)
    assert (argmax == labels).float().mean() > (mincost == labels).float().mean()
    assert cost_weighted_error(mincost, labels, cost) < 0.9 * cost_weighted_error(argmax, labels, cost)
