"Exercise checkers of chapter 60: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
import torch.nn.functional as F
from course_lib.llm import modern_decoder as M
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        M.check_rms_norm('Exercise 1', lambda x, w, eps: x * w)


# -- Exercise 1: RMSNorm -------------------------------------------------------------------------------------------
def test_ex1_rms_norm(capsys):
    passes(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w))
    fails(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps:                      # subtracts the mean (LayerNorm)
                                   (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps) * w))
    fails(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps:                      # sqrt of the sum, not the mean
                                   x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w))
    fails(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps:                      # weight forgotten
                                   x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)))
    fails(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps:                      # over the wrong dimension
                                   x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * w))
    fails(capsys, M.check_rms_norm('Exercise 1', lambda x, w, eps: 1 / 0))              # an exception is a FAIL


# -- Exercise 2: RoPE ----------------------------------------------------------------------------------------------
def rope_ref(x, p, theta, offset=0, interleaved=False, exponent=lambda i, d: 2 * i / d):
    d = x.shape[-1]
    i = torch.arange(d // 2, dtype=torch.float32)
    ang = (p + offset) * theta ** (-exponent(i, d))
    if interleaved:
        a, b = x[0::2], x[1::2]
        return torch.stack((a * ang.cos() - b * ang.sin(), a * ang.sin() + b * ang.cos()), -1).flatten()
    a, b = x[:d // 2], x[d // 2:]
    return torch.cat((a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()))


def test_ex2_rope(capsys):
    passes(capsys, M.check_rope('Exercise 2', rope_ref))
    fails(capsys, M.check_rope('Exercise 2', lambda x, p, th: rope_ref(x, p, th, interleaved=True)))   # wrong pairs
    fails(capsys, M.check_rope('Exercise 2', lambda x, p, th: rope_ref(x, p, th, offset=1)))           # positions from 1
    fails(capsys, M.check_rope('Exercise 2', lambda x, p, th: rope_ref(x, p, th, exponent=lambda i, d: i / d)))  # i/d
    fails(capsys, M.check_rope('Exercise 2', lambda x, p, th: rope_ref(x, -p, th)))                    # rotates backwards
    fails(capsys, M.check_rope('Exercise 2', lambda x, p, th: x))                                      # no rotation


# -- Exercise 3: expand the key/value heads -----------------------------------------------------------------------------
def test_ex3_expand_kv(capsys):
    passes(capsys, M.check_expand_kv('Exercise 3', lambda k, nh: k.repeat_interleave(nh // k.shape[1], dim=1)))
    passes(capsys, M.check_expand_kv('Exercise 3', lambda k, nh: k[:, :, None].expand(
        k.shape[0], k.shape[1], nh // k.shape[1], *k.shape[2:]).reshape(k.shape[0], nh, *k.shape[2:])))
    fails(capsys, M.check_expand_kv('Exercise 3', lambda k, nh: k.repeat(1, nh // k.shape[1], 1, 1)))  # tiles 0,1,0,1
    fails(capsys, M.check_expand_kv('Exercise 3', lambda k, nh: k.repeat_interleave(nh // k.shape[1], dim=2)))  # time axis
    fails(capsys, M.check_expand_kv('Exercise 3', lambda k, nh: k))                                     # not expanded


# -- Exercise 4: SwiGLU -----------------------------------------------------------------------------------------------
def test_ex4_swiglu(capsys):
    passes(capsys, M.check_swiglu('Exercise 4', lambda x, g, u, d: (F.silu(x @ g.T) * (x @ u.T)) @ d.T))
    fails(capsys, M.check_swiglu('Exercise 4', lambda x, g, u, d: ((x @ g.T) * F.silu(x @ u.T)) @ d.T))  # gate on up
    fails(capsys, M.check_swiglu('Exercise 4', lambda x, g, u, d: F.silu((x @ g.T) * (x @ u.T)) @ d.T))  # silu outside
    fails(capsys, M.check_swiglu('Exercise 4', lambda x, g, u, d: (F.gelu(x @ g.T) * (x @ u.T)) @ d.T))  # GELU: GeGLU
    fails(capsys, M.check_swiglu('Exercise 4', lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d))        # untransposed
