"Exercise checkers of chapter 33: the reference answer passes, the mistake each exercise is about is rejected."
import math
import pytest
import torch
import torch.nn.functional as F
from course_lib.algorithms import pretraining_gpt as P


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


def test_ex1_perplexity_bits(capsys):
    passes(capsys, P.check_perplexity_bits('Exercise 1', math.exp, lambda l: l / math.log(2)))
    fails(capsys, P.check_perplexity_bits('Exercise 1', lambda l: 2 ** l, lambda l: l / math.log(2)))    # base 2 for nats
    fails(capsys, P.check_perplexity_bits('Exercise 1', math.exp, lambda l: l * math.log(2)))            # multiplied
    fails(capsys, P.check_perplexity_bits('Exercise 1', math.exp, lambda l: l / math.log(10)))           # wrong log


def ref_loss(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)


def test_ex2_lm_loss(capsys):
    passes(capsys, P.check_lm_loss('Exercise 2', ref_loss))
    V = lambda lg: lg.size(-1)
    fails(capsys, P.check_lm_loss('Exercise 2', lambda lg, lb: F.cross_entropy(lg.reshape(-1, V(lg)), lb.reshape(-1))))  # no shift
    fails(capsys, P.check_lm_loss('Exercise 2', lambda lg, lb: F.cross_entropy(lg[:, 1:].reshape(-1, V(lg)),              # shifted the wrong way
                                                                              lb[:, :-1].reshape(-1))))
    def counts_ignored(lg, lb):                                                                        # -100 positions averaged in
        per = F.cross_entropy(lg[:, :-1].reshape(-1, V(lg)), lb[:, 1:].reshape(-1), reduction='none')
        return per.mean()
    fails(capsys, P.check_lm_loss('Exercise 2', counts_ignored))


def test_ex3_gpt2_param_count(capsys):
    def ref(V, T, d, L): return V * d + T * d + L * (12 * d * d + 13 * d) + 2 * d
    passes(capsys, P.check_gpt2_param_count('Exercise 3', ref))
    fails(capsys, P.check_gpt2_param_count('Exercise 3', lambda V, T, d, L: ref(V, T, d, L) + V * d))   # untied output layer
    fails(capsys, P.check_gpt2_param_count('Exercise 3', lambda V, T, d, L: ref(V, T, d, L) - 2 * d))   # final LayerNorm forgotten
