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
