"Every exercise checker of chapter 55 passes the reference answer and rejects the mistakes the exercise is about."
import pytest, torch
import torch.nn as nn
from course_lib.applications.trust import (check_clip_norms, check_smallest_sigma, check_completeness_errors,
                                           check_shifted_accuracy, integrated_gradients, dp_epsilon, shift_right)


def verdict(capsys, result):
    out = capsys.readouterr().out
    if result is True and out.startswith('PASS'): return 'pass'
    if result is False and 'FAIL' in out and 'hint' in out: return 'fail'
    return f'unclear: {result!r} {out!r}'


def test_ex1_clip_norms(capsys):
    assert verdict(capsys, check_clip_norms('Exercise 1', lambda n, C: torch.minimum(n, torch.full_like(n, C)))) == 'pass'
    wrong = {'everything set to C': lambda n, C: torch.full_like(n, C),
             'the scale factor, not the norm': lambda n, C: torch.clamp(C / n, max=1.0),
             'rescaled by the largest norm': lambda n, C: n * C / n.max(),
             'max instead of min': lambda n, C: torch.maximum(n, torch.full_like(n, C)),
             'crashes': lambda n, C: 1 / 0}
    for name, fn in wrong.items():
        assert verdict(capsys, check_clip_norms('Exercise 1', fn)) == 'fail', name


def bisect(target_eps, steps, q, delta, lo=0.3, hi=20.0, keep='hi', flip=False):
    for _ in range(50):
        mid = (lo + hi) / 2
        ok = dp_epsilon(mid, steps, delta, q=q) <= target_eps
        if ok != flip: hi = mid
        else: lo = mid
    return hi if keep == 'hi' else lo


def test_ex2_smallest_sigma(capsys):
    assert verdict(capsys, check_smallest_sigma('Exercise 2', bisect)) == 'pass'
    wrong = {'returns the lower end': lambda *a: bisect(*a, keep='lo'),
             'bisection direction flipped': lambda *a: bisect(*a, flip=True),
             'any sigma that works': lambda *a: 20.0,
             'sigma for q = 1 (no subsampling credit)': lambda e, s, q, d: bisect(e, s, 1.0, d)}
    for name, fn in wrong.items():
        assert verdict(capsys, check_smallest_sigma('Exercise 2', fn)) == 'fail', name


def test_ex3_completeness_errors(capsys):
    torch.manual_seed(0)
    W = torch.randn(6, 4)
    f = lambda x: torch.tanh(x @ W).pow(2).sum((1, 2))            # a nonlinear score of a (B, T, d) input
    x = torch.randn(5, 3, 6)
    delta = f(x) - f(torch.zeros_like(x))
    err = lambda n: float((integrated_gradients(f, x, steps=n).sum((1, 2)) - delta).abs().max())
    e1, e64 = err(1), err(64)
    assert e1 > 10 * e64                                          # the fixture shows the effect
    assert verdict(capsys, check_completeness_errors('Exercise 3', e1, e64, f, x, delta)) == 'pass'
    signed = lambda n: float((integrated_gradients(f, x, steps=n).sum((1, 2)) - delta).max())
    mean_err = lambda n: float((integrated_gradients(f, x, steps=n).sum((1, 2)) - delta).abs().mean())
    no_delta = lambda n: float(integrated_gradients(f, x, steps=n).sum((1, 2)).abs().max())
    for name, (a, b) in {'signed max': (signed(1), signed(64)), 'mean, not max': (mean_err(1), mean_err(64)),
                         'delta not subtracted': (no_delta(1), no_delta(64)), 'always zero': (0.0, 0.0),
                         'swapped': (e64, e1)}.items():
        if name == 'signed max' and abs(a - e1) < 1e-9 and abs(b - e64) < 1e-9: continue
        assert verdict(capsys, check_completeness_errors('Exercise 3', a, b, f, x, delta)) == 'fail', name


def test_ex4_shifted_accuracy(capsys):
    torch.manual_seed(0)
    model = nn.Linear(64, 10)
    X = torch.rand(300, 64)
    with torch.no_grad(): y = model(X).argmax(1)                  # right on the unshifted images
    acc = lambda Z: (model(Z).argmax(1) == y).float().mean().item()
    with torch.no_grad():
        ok = acc(shift_right(X))
        imgs = X.view(-1, 8, 8)
        left = acc(torch.cat([imgs[:, :, 1:], torch.zeros(len(X), 8, 1)], 2).flatten(1))
        rolled = acc(torch.roll(imgs, 1, dims=2).flatten(1))
        down = acc(torch.cat([torch.zeros(len(X), 1, 8), imgs[:, :-1, :]], 1).flatten(1))
    assert verdict(capsys, check_shifted_accuracy('Exercise 4', ok, model, X, y)) == 'pass'
    for name, wrong in {'shifted left': left, 'torch.roll wraps around': rolled, 'shifted down': down,
                        'not shifted': 1.0}.items():
        assert verdict(capsys, check_shifted_accuracy('Exercise 4', wrong, model, X, y)) == 'fail', name


def test_ex4_flat_shift_is_caught_by_the_images(capsys):
    "A shift along the flat 64-pixel row wraps pixels into the next row: same accuracy here, different images."
    torch.manual_seed(0)
    model = nn.Linear(64, 10)
    X = torch.rand(50, 64)
    with torch.no_grad(): y = model(X).argmax(1)
    right = shift_right(X)
    flat = torch.cat([torch.zeros(len(X), 1), X[:, :-1]], 1)               # the wrapping mistake
    with torch.no_grad(): acc = (model(right).argmax(1) == y).float().mean().item()
    assert verdict(capsys, check_shifted_accuracy('Exercise 4', acc, model, X, y, right.view(-1, 8, 8))) == 'pass'
    assert verdict(capsys, check_shifted_accuracy('Exercise 4', acc, model, X, y, flat)) == 'fail'
