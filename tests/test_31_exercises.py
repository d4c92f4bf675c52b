"Exercise checkers of chapter 31: the reference answer passes, the mistake each exercise is about is rejected."
import math
import pytest
import torch
from course_lib.algorithms import attention as A


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


q1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
k1 = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, -1.0]])


def test_ex1_attention_weights(capsys):
    passes(capsys, A.check_attention_weights('Exercise 1', torch.softmax(q1 @ k1.T / math.sqrt(2), dim=-1)))
    fails(capsys, A.check_attention_weights('Exercise 1', torch.softmax(q1 @ k1.T, dim=-1)))             # no 1/sqrt(d)
    fails(capsys, A.check_attention_weights('Exercise 1', torch.softmax(q1 @ k1.T / math.sqrt(2), dim=0)))  # wrong axis


def test_ex2_mha_mask(capsys):
    passes(capsys, A.check_mha_mask('Exercise 2', lambda m: ~m))
    fails(capsys, A.check_mha_mask('Exercise 2', lambda m: (~m).float()))   # a float mask is ADDED: the future leaks
    fails(capsys, A.check_mha_mask('Exercise 2', lambda m: m))              # not flipped
    fails(capsys, A.check_mha_mask('Exercise 2', lambda m: torch.ones(4, 4, dtype=torch.bool).triu(1)))  # one case only


def test_ex2_float_mask_really_leaks():
    "Why the float answer is wrong: nn.MultiheadAttention adds it, so the output at position 0 depends on the future."
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(1, 4, 8); x2 = x.clone(); x2[0, -1] += 1
    fl = (~A.causal_mask(4)).float()
    with torch.no_grad(): a, b = mha(x, x, x, attn_mask=fl)[0], mha(x2, x2, x2, attn_mask=fl)[0]
    assert not torch.allclose(a[0, 0], b[0, 0])


def test_ex3_pe_value(capsys):
    def ref(p, j, d):
        wi = 10000 ** (-(2 * (j // 2)) / d)
        return math.sin(p * wi) if j % 2 == 0 else math.cos(p * wi)
    passes(capsys, A.check_pe_value('Exercise 3', ref))
    fails(capsys, A.check_pe_value('Exercise 3', lambda p, j, d: ref(p, j, d) if j % 2 == 0
                                   else math.cos(p * 10000 ** (-j / d))))                  # frequency from j, not j // 2
    fails(capsys, A.check_pe_value('Exercise 3', lambda p, j, d: ref(p, j + 1 if j % 2 == 0 else j - 1, d)))  # sin/cos swapped


def test_ex4_block_params(capsys):
    passes(capsys, A.check_block_params('Exercise 4', lambda d: 12 * d * d + 13 * d))
    fails(capsys, A.check_block_params('Exercise 4', lambda d: 12 * d * d + 9 * d))      # LayerNorms forgotten
    fails(capsys, A.check_block_params('Exercise 4', lambda d: 12 * d * d))              # biases forgotten
