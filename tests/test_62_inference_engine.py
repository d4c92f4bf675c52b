"The inference engine of chapter 62: cache = no cache = chapter 44 = transformers, padding, stops, streaming, int8."
import codecs
import pytest
import torch
from course_lib.llm import inference_engine as E
from course_lib.llm.modern_decoder import ModernConfig, ModernLM, to_hf
from course_lib.projects.text_generation import greedy_decode


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = ModernLM(ModernConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=40))
    with torch.no_grad():                              # larger weights than the init: varied, non-repeating output
        for p in m.parameters(): p.mul_(4)
    return m.eval()


PROMPTS = [[1, 5, 9, 2], [7], [3, 3, 8]]


def test_prefill_and_decode_match_the_full_forward(model):
    seq = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(1))
    logits, past, mask = E.prefill(model, seq[:, :5])
    for t in range(5, 20):
        torch.testing.assert_close(logits, model(seq[:, :t]).logits[:, -1], atol=1e-5, rtol=1e-5)
        logits, past, mask = E.decode_step(model, seq[:, t], past, mask)
    assert past[0][0].shape[2] == 20 and mask.shape == (2, 20)
    with pytest.raises(ValueError, match='batch'):
        E.prefill(model, seq[0])


def test_left_pad_and_its_errors():
    ids, mask = E.left_pad([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match='at least one token'):
        E.left_pad([[1], []], 0)


def test_greedy_is_identical_cached_uncached_ch44_and_transformers(model):
    cached = E.generate(model, PROMPTS, 12, pad_id=0)
    uncached = E.generate(model, PROMPTS, 12, pad_id=0, use_cache=False)
    hf = to_hf(model)
    for p, c, u in zip(PROMPTS, cached, uncached):
        ref = greedy_decode(model, torch.tensor([p]), 12)[0, len(p):].tolist()
        ref_hf = hf.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), max_new_tokens=12,
                             do_sample=False, pad_token_id=0)[0, len(p):].tolist()
        assert c.tokens == u.tokens == ref == ref_hf and c.finish_reason == 'length'
    assert len(set(tuple(c.tokens) for c in cached)) > 1            # the rows really differ


def test_batched_rows_equal_solo_rows_and_sampling_repeats(model):
    batch = E.generate(model, PROMPTS, 10, pad_id=0, temperature=0.9, top_k=20, top_p=0.9, seed=3)
    again = E.generate(model, PROMPTS, 10, pad_id=0, temperature=0.9, top_k=20, top_p=0.9, seed=3, use_cache=False)
    assert [c.tokens for c in batch] == [c.tokens for c in again]
    greedy = E.generate(model, PROMPTS, 10, pad_id=0)
    for p, c in zip(PROMPTS, greedy):
        assert E.generate(model, [p], 10, pad_id=0)[0].tokens == c.tokens


def test_stop_tokens_end_rows_independently(model):
    full = E.generate(model, PROMPTS, 15, pad_id=0)
    stop = full[0].tokens[3]
    out = E.generate(model, PROMPTS, 15, pad_id=0, stop_ids={stop})
    for f, o in zip(full, out):
        if stop in f.tokens:
            assert o.tokens == f.tokens[:f.tokens.index(stop)] and o.finish_reason == 'stop'
        else:
            assert o.tokens == f.tokens and o.finish_reason == 'length'


def test_iter_tokens_reports_none_after_a_row_stopped(model):
    first = E.generate(model, [[1, 5]], 1, pad_id=0)[0].tokens[0]
    steps = list(E.iter_tokens(model, [[1, 5], [7]], 6, stop_ids={first}, pad_id=0))
    assert steps[0][0] == first and all(s[0] is None for s in steps[1:])


def test_generation_errors_name_the_fix(model):
    with pytest.raises(ValueError, match='context'):
        E.generate(model, [[1] * 30], 20)
    with pytest.raises(ValueError, match='max_new_tokens'):
        E.generate(model, [[1]], 0)
    with pytest.raises(ValueError, match='temperature'):
        E.generate(model, [[1]], 3, temperature=-1)


class _Bytes:
    "A stand-in tokenizer whose tokens are the bytes 0-255, plus specials 256 (eos), 257 (end), 258 (pad), 259 (bos)."
    special_ids = {'<|eos|>': 256, '<|end|>': 257, '<|pad|>': 258, '<|bos|>': 259}
    pad_id, bos_id = 258, 259
    def encode(self, text): return list(text.encode())
    def decode_bytes(self, ids): return bytes(i for i in ids if i < 256)


def test_stream_text_never_shows_half_a_character(model):
    torch.manual_seed(0)
    m = ModernLM(ModernConfig(vocab_size=260, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=64)).eval()
    target = '知者不言'.encode()                          # make the model spell this, one byte per step
    with torch.no_grad():
        m.lm_head.weight.zero_()
    calls = {'n': 0}
    orig = m.forward
    def forced(*a, **k):
        out = orig(*a, **k)
        i = min(calls['n'], len(target))
        calls['n'] += 1
        out.logits[:, -1] = -1e9
        out.logits[:, -1, target[i] if i < len(target) else 256] = 0
        return out
    m.forward = forced
    pieces = list(E.stream_text(m, _Bytes(), 'a', 20))
    assert ''.join(pieces) == '知者不言' and all('\ufffd' not in p for p in pieces) and len(pieces) == 4


def test_time_generation_reports_consistent_numbers(model):
    r = E.time_generation(model, [1, 2, 3], 5)
    assert r['new_tokens'] == 5 and 0 < r['ttft_s'] <= r['total_s'] and r['decode_tok_s'] > 0
    assert r['prefill_tok_s'] == pytest.approx(3 / r['ttft_s'])


def test_quantize_per_channel_bound_and_errors():
    w = torch.randn(5, 12) * torch.tensor([1e-3, 0.1, 1.0, 10.0, 0.0])[:, None]
    q, s = E.quantize_per_channel(w)
    assert q.dtype == torch.int8 and s.shape == (5,) and int(q.abs().max()) <= 127
    assert ((q.float() * s[:, None] - w).abs() <= s[:, None] / 2 + 1e-7).all()
    with pytest.raises(ValueError, match='2-D'):
        E.quantize_per_channel(torch.randn(3))


def test_int8_linear_kernel_and_fallback_agree():
    lin = torch.nn.Linear(24, 10, bias=False)
    layer = E.Int8Linear.from_linear(lin)
    x = torch.randn(3, 4, 24)
    ref = x @ (layer.q.float() * layer.scale[:, None]).T
    torch.testing.assert_close(layer(x), ref, atol=1e-4, rtol=1e-4)
    layer.use_kernel = False
    torch.testing.assert_close(layer(x), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='bias'):
        E.Int8Linear.from_linear(torch.nn.Linear(4, 4))


def test_quantize_int8_copies_the_model_and_keeps_its_outputs_close(model):
    q = E.int8_weight_only(model)
    assert any(isinstance(m, E.Int8Linear) for m in q.modules())
    assert not any(isinstance(m, E.Int8Linear) for m in model.modules())            # the original is untouched
    x = torch.tensor([[1, 2, 3, 4, 5]])
    torch.testing.assert_close(q(x).logits, model(x).logits, atol=0.3, rtol=0.05)
    assert E.model_bytes(q) < E.model_bytes(model)


def test_model_bytes_counts_tied_weights_once(model):
    n = sum(p.numel() for p in model.parameters()) * 4             # parameters() already yields a tied tensor once
    assert E.model_bytes(model) == n


def test_eval_bpb_matches_the_formula_and_rejects_bad_shapes(model):
    import math
    tok = _Bytes()
    w = torch.randint(0, 60, (3, 8), generator=torch.Generator().manual_seed(0))
    bpb = E.eval_bpb(model, tok, w)
    loss = torch.nn.functional.cross_entropy(model(w).logits[:, :-1].reshape(-1, 64), w[:, 1:].reshape(-1)).item()
    assert bpb == pytest.approx(loss / math.log(2), rel=1e-5)     # byte tokens: bpb = nats per token / ln 2
    with pytest.raises(ValueError, match='windows'):
        E.eval_bpb(model, tok, w[0])
