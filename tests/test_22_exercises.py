"""Chapter 22's exercise checkers: the reference answer passes, each plausible wrong answer is rejected with FAIL."""
import math
import pytest, torch
from course_lib.maths.optimizers import check_max_lr, check_momentum_step, check_bias_correction


def passes(capsys, checker, answer):
    assert checker('Exercise X', answer) is True
    out = capsys.readouterr().out
    assert 'PASS Exercise X' in out and 'FAIL' not in out


def rejected(capsys, checker, answer):
    assert checker('Exercise X', answer) is False
    out = capsys.readouterr().out
    assert 'FAIL Exercise X' in out and 'hint:' in out


def test_max_lr(capsys):
    passes(capsys, check_max_lr, 2 / 25)
    rejected(capsys, check_max_lr, 2 / 1)          # the flat direction's limit
    rejected(capsys, check_max_lr, 1 / 25)         # forgot the 2
    rejected(capsys, check_max_lr, 2 / 26)         # added the curvatures
    rejected(capsys, check_max_lr, None)


def momentum(update):
    def step(p, g, buf, lr, mu):
        buf = g.clone() if buf is None else update(buf, g, mu)
        return p - lr * buf, buf
    return step


def test_momentum_step(capsys):
    passes(capsys, check_momentum_step, momentum(lambda b, g, mu: mu * b + g))
    rejected(capsys, check_momentum_step, momentum(lambda b, g, mu: mu * b + (1 - mu) * g))   # dampened (EMA) buffer
    rejected(capsys, check_momentum_step, momentum(lambda b, g, mu: g))                       # no momentum at all
    rejected(capsys, check_momentum_step, momentum(lambda b, g, mu: b + mu * g))              # mu on the wrong term
    rejected(capsys, check_momentum_step, lambda p, g, buf, lr, mu: (p + lr * g, g))          # sign error
    def nesterov(p, g, buf, lr, mu):                                                          # the Nesterov update
        buf = g.clone() if buf is None else mu * buf + g
        return p - lr * (g + mu * buf), buf
    rejected(capsys, check_momentum_step, nesterov)
    rejected(capsys, check_momentum_step, lambda p, g, buf, lr, mu: p - lr * g)               # returns no buffer


def test_bias_correction_covers_both_moments(capsys):
    passes(capsys, check_bias_correction, lambda m, v, t, betas=(0.9, 0.999): (m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)))
    rejected(capsys, check_bias_correction, lambda m, v, t, betas=(0.9, 0.999): (m / (1 - betas[0] ** t), v))   # v not corrected
    rejected(capsys, check_bias_correction, lambda m, v, t, betas=(0.9, 0.999): (m, v / (1 - betas[1] ** t)))   # m not corrected
    rejected(capsys, check_bias_correction,                                                  # beta1 for both moments
             lambda m, v, t, betas=(0.9, 0.999): (m / (1 - betas[0] ** t), v / (1 - betas[0] ** t)))
    rejected(capsys, check_bias_correction,                                                  # multiplied instead of divided
             lambda m, v, t, betas=(0.9, 0.999): (m * (1 - betas[0] ** t), v * (1 - betas[1] ** t)))
    rejected(capsys, check_bias_correction,                                                  # the defaults, ignoring betas
             lambda m, v, t, betas=(0.9, 0.999): (m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)))
    rejected(capsys, check_bias_correction,                                                  # sqrt of v_hat returned
             lambda m, v, t, betas=(0.9, 0.999): (m / (1 - betas[0] ** t), (v / (1 - betas[1] ** t)).sqrt()))


def test_uncorrected_adam_step_is_too_large_early():
    "Issue 15: without bias correction Adam's early steps are too large (3.2x at t=1, 6.5x at t=10), not too small."
    ratio = lambda t, b1=0.9, b2=0.999: (1 - b1 ** t) / math.sqrt(1 - b2 ** t)
    assert ratio(1) == pytest.approx(3.162, abs=1e-3) and ratio(10) == pytest.approx(6.53, abs=0.01)
    # the same from torch's own Adam: the first step on a constant gradient is lr (corrected), not 3.2 * lr
    w = torch.zeros(1, requires_grad=True); opt = torch.optim.Adam([w], lr=0.01)
    w.grad = torch.tensor([0.5]); opt.step()
    assert w.item() == pytest.approx(-0.01, rel=1e-4)
