"Exercise checkers of chapter 63: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
import torch.nn as nn
from course_lib.llm import speedrun as S
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        S.check_reach_target('Exercise 2', lambda evals, target: None)


# -- Exercise 1: Newton-Schulz -------------------------------------------------------------------------------------
A, B, C = 3.4445, -4.775, 2.0315

def ns(G, steps, normalize=True, transpose_back=True):
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G
    if normalize: X = X / X.norm().clamp(min=1e-7)
    for _ in range(steps):
        M = X @ X.T
        X = A * X + (B * M + C * M @ M) @ X
    return X.T if tall and transpose_back else X


def test_ex1_newton_schulz(capsys):
    passes(capsys, S.check_newton_schulz('Exercise 1', ns))
    passes(capsys, S.check_newton_schulz('Exercise 1', lambda G, steps: ns(G.T, steps).T))    # any orientation is fine
    fails(capsys, S.check_newton_schulz('Exercise 1', lambda G, steps: ns(G, steps, normalize=False)))   # no Frobenius norm
    fails(capsys, S.check_newton_schulz('Exercise 1', lambda G, steps: ns(G, steps, transpose_back=False)))  # tall: not transposed back
    fails(capsys, S.check_newton_schulz('Exercise 1',                                        # divided by the largest entry
                                        lambda G, steps: ns(G / G.abs().max(), steps, normalize=False)))
    fails(capsys, S.check_newton_schulz('Exercise 1', lambda G, steps: ns(G, steps - 1)))     # one iteration short
    fails(capsys, S.check_newton_schulz('Exercise 1', lambda G, steps: 1 / 0))               # an exception is a FAIL


# -- Exercise 2: first evaluation at or below the target -------------------------------------------------------------
def reach(evals, target):
    for e in evals:
        if e['bpb'] <= target: return e['step'], e['train_seconds']
    return None


def test_ex2_reach_target(capsys):
    passes(capsys, S.check_reach_target('Exercise 2', reach))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t:                            # strictly below
                                       next(((e['step'], e['train_seconds']) for e in ev if e['bpb'] < t), None)))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t:                            # wall clock: counts evaluation
                                       next(((e['step'], e['wall_seconds']) for e in ev if e['bpb'] <= t), None)))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t:                            # index, not step
                                       next(((i, e['train_seconds']) for i, e in enumerate(ev) if e['bpb'] <= t), None)))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t:                            # off by one evaluation
                                       next(((i * 10, e['train_seconds']) for i, e in enumerate(ev, 1) if e['bpb'] <= t), None)))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t:                            # last, not first
                                       ([(e['step'], e['train_seconds']) for e in ev if e['bpb'] <= t] or [None])[-1]))
    fails(capsys, S.check_reach_target('Exercise 2', lambda ev, t: ev[0]['missing']))         # an exception is a FAIL


# -- Exercise 3: which parameters go to Muon -----------------------------------------------------------------------
def muon_names(model):
    skip = {id(m.weight) for name, m in model.named_modules() if isinstance(m, nn.Embedding) or name == 'lm_head'}
    return [n for n, p in model.named_parameters() if p.ndim == 2 and id(p) not in skip]


def test_ex3_muon_params(capsys):
    passes(capsys, S.check_muon_params('Exercise 3', muon_names))
    fails(capsys, S.check_muon_params('Exercise 3', lambda m:                                 # every 2-D tensor
                                      [n for n, p in m.named_parameters() if p.ndim == 2]))
    fails(capsys, S.check_muon_params('Exercise 3', lambda m:                                 # forgets the untied head
                                      [n for n, p in m.named_parameters() if p.ndim == 2 and not n.startswith(('wte', 'wpe'))]))
    fails(capsys, S.check_muon_params('Exercise 3', lambda m:                                 # gains and biases too
                                      [n for n, p in m.named_parameters() if not n.startswith(('wte', 'wpe', 'lm_head'))]))
    fails(capsys, S.check_muon_params('Exercise 3', lambda m: 1 / 0))                         # an exception is a FAIL
