"Exercise checkers of chapter 68: the reference answer passes, the mistake each exercise is about is rejected."
import math
import pytest
import torch
from course_lib.llm import rl as R
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        R.check_pass_at_k('Exercise 2', lambda n, c, k: c / n)


def test_ex1_group_advantages(capsys):
    def good(rewards, group_size):
        g = rewards.view(-1, group_size)
        return ((g - g.mean(1, keepdim=True)) / (g.std(1, correction=0, keepdim=True) + 1e-6)).flatten()
    passes(capsys, R.check_group_advantages('Exercise 1', good))
    passes(capsys, R.check_group_advantages('Exercise 1', lambda r, g: R.group_advantages(r, g)))
    def sample_std(rewards, group_size):                                                 # the other std convention is fine
        g = rewards.view(-1, group_size)
        return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-6)).flatten()
    passes(capsys, R.check_group_advantages('Exercise 1', sample_std))
    fails(capsys, R.check_group_advantages('Exercise 1', lambda r, g: (r - r.mean()) / (r.std(correction=0) + 1e-6)))  # whole batch
    fails(capsys, R.check_group_advantages('Exercise 1', lambda r, g: r))                                              # no baseline
    fails(capsys, R.check_group_advantages('Exercise 1', lambda r, g: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True)).flatten() * 0 + 1))
    fails(capsys, R.check_group_advantages('Exercise 1', lambda r, g: 1 / 0))


def test_ex2_pass_at_k(capsys):
    passes(capsys, R.check_pass_at_k('Exercise 2', lambda n, c, k: 1 - math.comb(n - c, k) / math.comb(n, k)))
    passes(capsys, R.check_pass_at_k('Exercise 2', R.pass_at_k_estimate))
    fails(capsys, R.check_pass_at_k('Exercise 2', lambda n, c, k: 1 - (1 - c / n) ** k))      # the biased plug-in
    fails(capsys, R.check_pass_at_k('Exercise 2', lambda n, c, k: c / n))                     # pass@1, whatever k
    fails(capsys, R.check_pass_at_k('Exercise 2', lambda n, c, k: 'high'))
    fails(capsys, R.check_pass_at_k('Exercise 2', lambda n, c, k: math.comb(-1, 2)))


def test_ex3_policy_gradient_loss(capsys):
    passes(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: -(a * (lp * m).sum(-1)).mean()))
    passes(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: R.grpo_loss(lp, lp, a, m, 0.0)[0].item()))
    fails(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: -(a * lp.sum(-1)).mean()))          # prompt unmasked
    fails(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: (a * (lp * m).sum(-1)).mean()))     # sign
    fails(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: -(lp * m).sum(-1).mean()))          # no advantage
    fails(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: torch.zeros(2)))
    fails(capsys, R.check_policy_gradient_loss('Exercise 3', lambda lp, a, m: lp @ a))
