"Chapter 60: every part of the modern decoder against PyTorch and transformers, on tiny configurations."
import copy, math
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3ForCausalLM, GPT2Config
from transformers.models.llama.modeling_llama import (LlamaRMSNorm, LlamaRotaryEmbedding, LlamaMLP,
                                                      apply_rotary_pos_emb, repeat_kv as hf_repeat_kv)
from course_lib.algorithms.attention import count_params
from course_lib.concepts.compute_cost import kv_cache_bytes
from course_lib.llm import modern_decoder as M


def small(**kw):
    base = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    return M.ModernConfig(**{**base, **kw})


def randomised(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.copy_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim > 1 else 0.2) + (p.ndim == 1))
    return model.eval()


# -- configuration ----------------------------------------------------------------------------------------------
def test_config_head_dim_and_errors():
    assert small().head_dim == 8
    assert small(head_dim=12).head_dim == 12
    with pytest.raises(ValueError, match='multiple of n_kv_heads'): small(n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match='divisible by n_heads'): small(d_model=30)
    with pytest.raises(ValueError, match='even'): small(d_model=36, n_heads=4)        # head_dim 9


# -- RMSNorm ----------------------------------------------------------------------------------------------------
def test_rms_norm_matches_torch_and_transformers():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 2 + 1
    ours, theirs, hf = M.RMSNorm(16, 1e-5), nn.RMSNorm(16, eps=1e-5), LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        w = torch.rand(16) + 0.5
        for m in (ours, theirs, hf): m.weight.copy_(w)
    assert_close(ours(x), theirs(x)); assert_close(ours(x), hf(x))
    xb = x.bfloat16()                                           # computed in float32, cast back like transformers
    ob, hb = copy.deepcopy(ours).bfloat16(), copy.deepcopy(hf).bfloat16()
    assert ob(xb).dtype == torch.bfloat16 and torch.equal(ob(xb), hb(xb))
    assert torch.equal(ours(xb), hf(xb))
    with pytest.raises(ValueError, match='last dimension'): ours(torch.randn(2, 8))


# -- RoPE -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('theta', [10000.0, 500000.0])
def test_rope_matches_transformers(theta):
    torch.manual_seed(0)
    hd = 16
    rot = LlamaRotaryEmbedding(LlamaConfig(hidden_size=64, num_attention_heads=4,
                                           rope_parameters={'rope_type': 'default', 'rope_theta': theta}))
    pos = torch.arange(20)[None].repeat(2, 1) + torch.tensor([[0], [37]])
    q, k = torch.randn(2, 4, 20, hd), torch.randn(2, 2, 20, hd)
    cos, sin = M.rope_cos_sin(pos, hd, theta)
    hc, hs = rot(q, pos)
    assert_close(cos, hc); assert_close(sin, hs)
    hq, hk = apply_rotary_pos_emb(q, k, hc, hs)
    assert_close(M.apply_rope(q, cos, sin), hq); assert_close(M.apply_rope(k, cos, sin), hk)
    assert_close(M.rotate_half(M.rotate_half(q)), -q)
    with pytest.raises(ValueError, match='even'): M.rope_inv_freq(15)


def test_rope_score_depends_only_on_offset():
    torch.manual_seed(0)
    hd = 32
    q, k = torch.randn(hd), torch.randn(hd)
    def score(m, n):
        r = lambda v, p: M.apply_rope(v[None, None, None], *M.rope_cos_sin(torch.tensor([p]), hd))[0, 0, 0]
        return (r(q, m) @ r(k, n)).item()
    assert abs(score(3, 1) - score(10, 8)) < 1e-4
    assert abs(score(50, 20) - score(31, 1)) < 1e-4
    assert abs(score(3, 1) - score(3, 2)) > 1e-3                # a different offset gives a different score


# -- SwiGLU -----------------------------------------------------------------------------------------------------
def test_swiglu_matches_llama_mlp():
    torch.manual_seed(0)
    ours = M.SwiGLU(24, 40)
    hf = LlamaMLP(LlamaConfig(hidden_size=24, num_attention_heads=4, intermediate_size=40, hidden_act='silu'))
    hf.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 24)
    assert_close(ours(x), hf(x))
    assert count_params(ours) == 3 * 24 * 40


# -- GQA and masks ----------------------------------------------------------------------------------------------
def test_repeat_kv_and_gqa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 6, 5, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    assert_close(M.repeat_kv(k, 2), hf_repeat_kv(k, 2))
    assert M.repeat_kv(k, 1) is k
    ref = M.grouped_query_attention(q, k, v, use_sdpa=False)
    assert_close(M.grouped_query_attention(q, k, v), ref)
    assert_close(ref, F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    with pytest.raises(ValueError, match='multiple of n_kv_heads'): M.grouped_query_attention(q, k[:, :2].repeat(1, 2, 1, 1), v[:, :2].repeat(1, 2, 1, 1))


def test_decoder_mask_end_aligned_and_padding():
    assert torch.equal(M.decoder_mask(3), torch.ones(3, 3, dtype=torch.bool).tril())
    m = M.decoder_mask(2, 5)                                  # 2 new queries after 3 cached keys
    assert m.tolist() == [[True, True, True, True, False], [True] * 5]
    am = torch.tensor([[0, 1, 1, 1, 1]])
    mp = M.decoder_mask(2, 5, am)
    assert mp.shape == (1, 1, 2, 5) and not mp[..., 0].any()
    with pytest.raises(ValueError, match='covering the cached'): M.decoder_mask(2, 5, torch.ones(1, 2))
    with pytest.raises(ValueError, match='t_k'): M.decoder_mask(5, 2)


def test_left_padding_no_nan_both_paths():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    am = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    mask = M.decoder_mask(6, 6, am)
    a, b = M.grouped_query_attention(q, k, v, mask, use_sdpa=False), M.grouped_query_attention(q, k, v, mask)
    assert not a.isnan().any() and not b.isnan().any()
    assert_close(a, b)


def test_position_ids_from_mask():
    am = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    assert M.position_ids_from_mask(am).tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]


# -- the model ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('qk_norm', [False, True])
def test_cached_decoding_equals_full_forward(qk_norm):
    torch.manual_seed(0)
    model = randomised(M.ModernLM(small(qk_norm=qk_norm)))
    ids = torch.randint(0, 64, (2, 14))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :5], use_cache=True); steps, past = [out.logits], out.past_kv
        for t in range(5, 14):
            out = model(ids[:, t:t + 1], past_kv=past, use_cache=True); steps.append(out.logits); past = out.past_kv
    assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert model(ids).past_kv is None
    assert past[0][0].shape == (2, 2, 14, 8)


def test_cached_decoding_with_left_padding():
    torch.manual_seed(0)
    model = randomised(M.ModernLM(small()))
    ids = torch.randint(0, 64, (2, 10))
    am = torch.tensor([[1] * 10, [0] * 4 + [1] * 6])
    pos = M.position_ids_from_mask(am)
    with torch.no_grad():
        full = model(ids, attention_mask=am, position_ids=pos).logits
        pre = model(ids[:, :7], attention_mask=am[:, :7], position_ids=pos[:, :7], use_cache=True)
        step = model(ids[:, 7:], attention_mask=am, position_ids=pos[:, 7:], past_kv=pre.past_kv).logits
    assert not full.isnan().any()
    assert_close(step, full[:, 7:], atol=1e-5, rtol=1e-5)
    alone = model(ids[1:, 4:]).logits                          # the padded row == the same tokens without padding
    assert_close(full[1, 4:], alone[0], atol=1e-5, rtol=1e-5)


def test_model_errors_and_loss():
    model = M.ModernLM(small())
    with pytest.raises(ValueError, match='max_seq_len'): model(torch.zeros(1, 33, dtype=torch.long))
    out = model(torch.zeros(1, 4, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match='layers'): model(torch.zeros(1, 1, dtype=torch.long), past_kv=out.past_kv[:1])
    ids = torch.randint(0, 64, (2, 9))
    o = model(ids, labels=ids)
    assert_close(o.loss, F.cross_entropy(o.logits[:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1)))
    assert abs(o.loss.item() - math.log(64)) < 0.1           # small init: close to a uniform guess


def test_tied_and_untied_embeddings():
    tied, untied = M.ModernLM(small()), M.ModernLM(small(tie_embeddings=False))
    assert tied.lm_head.weight is tied.embed.weight and untied.lm_head.weight is not untied.embed.weight
    assert count_params(untied) - count_params(tied) == 64 * 32


def test_kv_cache_bytes_measured_against_chapter_11():
    ids = torch.randint(0, 64, (3, 10))
    for n_kv in (4, 2, 1):
        model = M.ModernLM(small(n_kv_heads=n_kv))
        past = model(ids, use_cache=True).past_kv
        assert M.past_kv_bytes(past) == kv_cache_bytes(2, n_kv, 8, seq_len=10, batch=3, dtype='fp32')


# -- transformers equivalence --------------------------------------------------------------------------------------
LLAMA = dict(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=56, rope_theta=500000.0,
             norm_eps=1e-5, max_seq_len=40)
QWEN = dict(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=1, head_dim=16, d_ff=56, rope_theta=1e6,
            qk_norm=True, tie_embeddings=False, max_seq_len=40)


@pytest.mark.parametrize('kw, cls', [(LLAMA, LlamaForCausalLM), (QWEN, Qwen3ForCausalLM)])
def test_same_logits_as_transformers(kw, cls):
    cfg = M.ModernConfig(**kw)
    hf_cfg = M.to_hf_config(cfg)
    assert type(hf_cfg).__name__ == ('Qwen3Config' if cfg.qk_norm else 'LlamaConfig')
    assert hf_cfg.rope_parameters['rope_theta'] == cfg.rope_theta
    hf = randomised(cls(hf_cfg), seed=1)
    ours = M.from_hf(hf).eval()
    assert ours.config == cfg and count_params(ours) == count_params(hf)
    torch.manual_seed(0)
    ids = torch.randint(0, 61, (2, 17))
    am = torch.ones(2, 17, dtype=torch.long); am[1, :6] = 0
    pos = M.position_ids_from_mask(am)
    with torch.no_grad():
        assert_close(ours(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
        lo, lh = ours(ids, attention_mask=am, position_ids=pos).logits, hf(ids, attention_mask=am, position_ids=pos).logits
        assert_close(lo[am.bool()], lh[am.bool()], atol=1e-4, rtol=1e-4)
        assert_close(ours(ids, labels=ids).loss, hf(ids, labels=ids).loss, atol=1e-5, rtol=1e-5)
        back = M.to_hf(ours)
        assert type(back) is cls
        assert_close(back(ids).logits, hf(ids).logits)
        ref = M.from_hf(hf, use_sdpa=False).eval()
        assert_close(ref(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-5)


def test_from_hf_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match='Llama and Qwen3'): M.config_from_hf(GPT2Config())
    bad = M.to_hf_config(M.ModernConfig(**LLAMA)); bad.attention_bias = True
    with pytest.raises(ValueError, match='biases'): M.config_from_hf(bad)
    scaled = M.to_hf_config(M.ModernConfig(**LLAMA))
    scaled.rope_parameters = {'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 2.0}
    with pytest.raises(ValueError, match='rope_type'): M.config_from_hf(scaled)


# -- bits per byte ------------------------------------------------------------------------------------------------
def test_bits_per_byte():
    assert abs(M.bits_per_byte(math.log(256)) - 8.0) < 1e-12             # uniform over bytes: 8 bits
    assert abs(M.bits_per_byte(2.0, n_tokens=100, n_bytes=400) - 2.0 * 100 / (400 * math.log(2))) < 1e-12
    with pytest.raises(ValueError): M.bits_per_byte(1.0, 0, 10)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = M.ModernLM(small(vocab_size=16, max_seq_len=16))
    ids = torch.arange(16).repeat(4, 1)                        # a pattern the model can learn: i -> i + 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model(ids, labels=ids).loss
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.5 * first
