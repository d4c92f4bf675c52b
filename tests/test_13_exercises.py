"""Chapter 13's exercise checkers (course_lib.concepts.model_to_product.check_*): each passes the reference answer and
rejects the mistakes the exercise is about, printing FAIL with a hint and returning False when checks are not strict."""
import pytest
import torch
from course_lib.concepts.model_to_product import (LIFTS, sample_size_two_proportions, routing_cost, check_sample_sizes,
                                                  check_break_even, check_threshold, check_extra_cost)


def rejected(capsys, result):
    out = capsys.readouterr().out
    return result is False and 'FAIL' in out and 'hint' in out


def test_ex1_sample_sizes(capsys):
    assert check_sample_sizes('Exercise 1', [sample_size_two_proportions(0.60, 0.60 + d) for d in LIFTS]) is True
    assert 'PASS' in capsys.readouterr().out
    for wrong in ([sample_size_two_proportions(0.60, 0.60 * (1 + d)) for d in LIFTS],     # relative lift, not points
                  [2 * sample_size_two_proportions(0.60, 0.60 + d) for d in LIFTS],      # both groups together
                  [sample_size_two_proportions(0.60, 0.60 + d, power=0.5) for d in LIFTS],   # power left at 50 %
                  [sample_size_two_proportions(0.60, 0.60 + d) for d in reversed(LIFTS)]):   # lifts in the wrong order
        assert rejected(capsys, check_sample_sizes('Exercise 1', wrong))


def test_ex2_break_even(capsys):
    assert check_break_even('Exercise 2', lambda sec, budget: budget / (1000 * sec / 3600)) is True
    for wrong in (lambda sec, budget: budget / (1000 * sec),          # forgets seconds -> hours
                  lambda sec, budget: budget / (sec / 3600),          # per request, not per 1,000
                  lambda sec, budget: (1000 * sec / 3600) / budget):  # upside down
        assert rejected(capsys, check_break_even('Exercise 2', wrong))


def _split(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(200, 3, generator=g), -1)
    labels = torch.where(torch.rand(200, generator=g) < 0.6, probs.argmax(-1), torch.randint(0, 3, (200,), generator=g))
    return probs, labels


def test_ex3_threshold_chosen_on_validation(capsys):
    cost, esc = torch.tensor([[0., 1., 1.], [1., 0., 1.], [4., 4., 0.]]), 0.3
    grid = torch.linspace(0, 1, 51).tolist()
    costs = lambda p, y: [routing_cost(p, y, cost, t, esc, preds=p.argmax(-1))['cost'] for t in grid]
    for seed in range(20):                     # a pair of splits on which validation and test choose differently
        (pv, yv), (pt, yt) = _split(2 * seed), _split(2 * seed + 1)
        cv, ct = costs(pv, yv), costs(pt, yt)
        t_valid, t_test = grid[min(range(51), key=cv.__getitem__)], grid[min(range(51), key=ct.__getitem__)]
        if cv[grid.index(t_test)] > min(cv) + 1e-9: break
    else: pytest.fail('no seed where the test-set choice differs from the validation choice')
    assert check_threshold('Exercise 3', t_valid, pv, yv, cost, esc, grid, pv.argmax(-1)) is True
    assert rejected(capsys, check_threshold('Exercise 3', t_test, pv, yv, cost, esc, grid, pv.argmax(-1)))   # chosen on test
    t_worst = grid[max(range(51), key=cv.__getitem__)]
    assert rejected(capsys, check_threshold('Exercise 3', t_worst, pv, yv, cost, esc, grid, pv.argmax(-1)))  # arg-max
    assert rejected(capsys, check_threshold('Exercise 3', 0.333, pv, yv, cost, esc, grid, pv.argmax(-1)))    # not in grid


def test_ex4_extra_cost(capsys):
    table = {'a': {'macro-F1': 0.50, 'cost/message': 0.40}, 'b': {'macro-F1': 0.70, 'cost/message': 0.25},
             'c': {'macro-F1': 0.60, 'cost/message': 0.20}}
    assert check_extra_cost('Exercise 4', 1000 * (0.40 - 0.25), table) is True
    for wrong in (1000 * (0.25 - 0.40),        # sign flipped: highest minus lowest
                  0.40 - 0.25,                 # per message, not per 1,000
                  1000 * (0.40 - 0.20)):       # ranked by cost, not by macro-F1
        assert rejected(capsys, check_extra_cost('Exercise 4', wrong, table))
