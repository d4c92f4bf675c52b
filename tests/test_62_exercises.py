"Exercise checkers of chapter 62: the reference answer passes, the mistake each exercise is about is rejected."
import codecs
import pytest
import torch
from course_lib.llm import inference_engine as E
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: L * kv * hd * b)


# -- Exercise 1: KV-cache bytes per token ------------------------------------------------------------------------
def test_ex1_kv_bytes(capsys):
    passes(capsys, E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: 2 * L * kv * hd * b))
    fails(capsys, E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: L * kv * hd * b))          # keys only
    fails(capsys, E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: 2 * L * h * hd * b))       # query heads
    fails(capsys, E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: 2 * L * kv * hd))          # bytes forgotten
    fails(capsys, E.check_kv_bytes('Exercise 1', lambda L, h, kv, hd, b: 1 / 0))


# -- Exercise 2: left padding ------------------------------------------------------------------------------------
def _pad(prompts, pad, left=True):
    T = max(map(len, prompts))
    rows = [([pad] * (T - len(p)) + p) if left else (p + [pad] * (T - len(p))) for p in prompts]
    masks = [([0] * (T - len(p)) + [1] * len(p)) if left else ([1] * len(p) + [0] * (T - len(p))) for p in prompts]
    return torch.tensor(rows), torch.tensor(masks)


def test_ex2_left_pad(capsys):
    passes(capsys, E.check_left_pad('Exercise 2', _pad))
    fails(capsys, E.check_left_pad('Exercise 2', lambda p, pad: _pad(p, pad, left=False)))          # right padding
    fails(capsys, E.check_left_pad('Exercise 2', lambda p, pad: (_pad(p, pad)[0], 1 - _pad(p, pad)[1])))  # mask inverted
    fails(capsys, E.check_left_pad('Exercise 2', lambda p, pad: _pad(p, 0)))                        # ignores pad_id
    fails(capsys, E.check_left_pad('Exercise 2', lambda p, pad: _pad(p, pad)[0]))                   # no mask returned


# -- Exercise 3: streaming decode --------------------------------------------------------------------------------
def _incremental(chunks):
    dec = codecs.getincrementaldecoder('utf-8')()
    return [p for p in [dec.decode(c) for c in chunks] + [dec.decode(b'', final=True)] if p]


def test_ex3_stream_decode(capsys):
    passes(capsys, E.check_stream_decode('Exercise 3', _incremental))
    fails(capsys, E.check_stream_decode('Exercise 3', lambda cs: [c.decode('utf-8', errors='replace') for c in cs]))  # per chunk
    fails(capsys, E.check_stream_decode('Exercise 3', lambda cs: [c.decode('utf-8', errors='ignore') for c in cs]))   # drops halves
    def no_flush(chunks):                                   # never flushes: a trailing incomplete char would be lost
        dec = codecs.getincrementaldecoder('utf-8')()
        return [p for p in (dec.decode(c) for c in chunks[:-1]) if p]
    fails(capsys, E.check_stream_decode('Exercise 3', no_flush))
    fails(capsys, E.check_stream_decode('Exercise 3', lambda cs: b''.join(cs)))                    # bytes, not text


# -- Exercise 4: per-channel int8 --------------------------------------------------------------------------------
def _rows(w):
    s = w.abs().amax(dim=1) / 127
    return torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8), s


def test_ex4_int8_quantize(capsys):
    passes(capsys, E.check_int8_quantize('Exercise 4', _rows))
    def per_tensor(w):
        s = w.abs().max() / 127
        return torch.round(w / s).to(torch.int8), s
    fails(capsys, E.check_int8_quantize('Exercise 4', per_tensor))
    def per_tensor_broadcast(w):                            # one scale repeated per row: still per-tensor precision
        s = (w.abs().max() / 127).repeat(w.shape[0])
        return torch.round(w / s[:, None]).to(torch.int8), s
    fails(capsys, E.check_int8_quantize('Exercise 4', per_tensor_broadcast))
    def truncating(w):
        s = w.abs().amax(dim=1) / 127
        return (w / s[:, None]).to(torch.int8), s
    fails(capsys, E.check_int8_quantize('Exercise 4', truncating))
    def unclamped_255(w):                                   # scale by max/255: values up to 255 do not fit int8
        s = w.abs().amax(dim=1) / 255
        return torch.round(w / s[:, None]), s
    fails(capsys, E.check_int8_quantize('Exercise 4', unclamped_255))
    fails(capsys, E.check_int8_quantize('Exercise 4', lambda w: 1 / 0))
