"Tests for course_lib.algorithms.attention: attention and masks vs PyTorch, multi-head attention, positions, MiniGPT == GPT-2."
import math
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from transformers import GPT2LMHeadModel
from course_lib.algorithms.pretraining_gpt import gpt_config
from course_lib.algorithms.attention import (causal_mask, padding_mask, scaled_dot_product_attention, MultiHeadAttention,
                                  sinusoidal_positions, TransformerBlock, LMOutput, MiniGPT, minigpt_from_config,
                                  load_gpt2_weights, count_params)


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(2, 4).shape == (2, 4) and causal_mask(2, 4)[0].tolist() == [True, False, False, False]
    pm = padding_mask(torch.tensor([[1, 1, 0]]))
    assert pm.shape == (1, 1, 1, 3) and pm.dtype == torch.bool and pm.flatten().tolist() == [True, True, False]
    with pytest.raises(ValueError, match='batch, seq_len'): padding_mask(torch.ones(3))


def test_attention_matches_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    for kw in ({}, {'is_causal': True}):
        out, w = scaled_dot_product_attention(q, k, v, **kw)
        assert_close(out, F.scaled_dot_product_attention(q, k, v, **kw))
        assert_close(w.sum(-1), torch.ones(2, 2, 6))
    bias = torch.randn(6, 6)                                   # float masks are added
    assert_close(scaled_dot_product_attention(q, k, v, attn_mask=bias)[0], F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    m = causal_mask(6) & padding_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]))
    out, w = scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    assert (w[1, ..., 4:] == 0).all()
    with pytest.raises(ValueError, match='shapes do not fit'): scaled_dot_product_attention(q, k[..., :3], v)


def test_multihead_matches_torch_and_sdpa():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    plain = MultiHeadAttention(16, 4).load_from_torch(mha).eval()
    assert_close(plain(x), mha(x, x, x, need_weights=False)[0])
    causal = MultiHeadAttention(16, 4, causal=True).load_from_torch(mha).eval()
    assert_close(causal(x), mha(x, x, x, attn_mask=~causal_mask(5), need_weights=False)[0])
    assert causal.last_weights.shape == (2, 4, 5, 5) and (causal.last_weights.triu(1) == 0).all()
    fast = MultiHeadAttention(16, 4, causal=True, use_sdpa=True).load_from_torch(mha).eval()
    pm = padding_mask(torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]))
    assert_close(fast(x), causal(x))
    assert fast.last_weights is None
    assert_close(fast(x, pm), causal(x, pm))
    with pytest.raises(ValueError, match='divisible'): MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match='expected'): plain(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match='same embed_dim'): MultiHeadAttention(16, 2).load_from_torch(mha)


def test_attention_dropout_only_in_training():
    m = MultiHeadAttention(8, 2, causal=True, dropout=0.5)
    x = torch.randn(1, 4, 8)
    m.eval(); assert torch.equal(m(x), m(x))
    m.train(); torch.manual_seed(0); a = m(x); torch.manual_seed(1); b = m(x)
    assert not torch.equal(a, b)


def test_sinusoidal_positions():
    pe = sinusoidal_positions(10, 6)
    assert pe.shape == (10, 6)
    assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    assert_close(pe[3, 2], torch.tensor(math.sin(3 * 10000 ** (-2 / 6))))
    assert_close(pe[3, 5], torch.tensor(math.cos(3 * 10000 ** (-4 / 6))))
    with pytest.raises(ValueError, match='even'): sinusoidal_positions(4, 5)


def test_block_param_count_and_residual_shape():
    b = TransformerBlock(32, 4)
    assert count_params(b) == 12 * 32 * 32 + 13 * 32
    x = torch.randn(2, 7, 32)
    assert b(x).shape == x.shape


def test_minigpt_equals_gpt2_and_errors():
    cfg = gpt_config(30, n_layer=2, n_head=2, n_embd=16, block_size=12)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(cfg).eval()
    mini = load_gpt2_weights(minigpt_from_config(cfg), hf).eval()
    ids = torch.randint(0, 30, (2, 12))
    assert count_params(mini) == count_params(hf)
    assert mini.lm_head.weight is mini.wte.weight
    assert_close(mini(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
    out = mini(ids, labels=ids)
    assert isinstance(out, LMOutput) and mini(ids).loss is None
    assert_close(out.loss, hf(ids, labels=ids).loss, atol=1e-5, rtol=1e-5)
    fast = load_gpt2_weights(minigpt_from_config(cfg, use_sdpa=True), hf).eval()
    assert_close(fast(ids).logits, mini(ids).logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='context'): mini(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match='different sizes'): load_gpt2_weights(MiniGPT(30, 12, 16, 1, 2), hf)


def test_minigpt_trains_with_learner():
    from course_lib.train.learner import Learner
    from course_lib.algorithms.pretraining_gpt import lm_dataloaders
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 2, 3] * 200)
    tr, va = lm_dataloaders(ids, 8, 16, steps_per_epoch=20, valid_windows=8)
    learn = Learner(MiniGPT(4, 8, 16, 1, 2, use_sdpa=True), tr, va, lr=1e-2, device='cpu', progress=False)
    learn.fit(2)
    assert learn.history.epochs[-1]['valid_loss'] < 0.5 * math.log(4)


def test_fully_masked_rows_are_finite_and_match_sdpa():
    "A query with no allowed key (left padding under a causal mask) gets zero output, not NaN, as in PyTorch's SDPA."
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    m = causal_mask(5) & padding_mask(torch.tensor([[1] * 5, [0, 0, 1, 1, 1]]))
    out, w = scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert not out.isnan().any() and not w.isnan().any()
    assert (out[1, :, :2] == 0).all() and (w[1, :, 2:, :2] == 0).all()
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    assert_close(w[1, :, 2:].sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize('use_sdpa', [False, True])
def test_minigpt_left_padding_matches_gpt2(use_sdpa):
    cfg = gpt_config(30, n_layer=2, n_head=2, n_embd=16, block_size=12)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(cfg).eval()
    mini = load_gpt2_weights(minigpt_from_config(cfg, use_sdpa=use_sdpa), hf).eval()
    ids = torch.randint(0, 30, (3, 12))
    am = torch.ones(3, 12, dtype=torch.long); am[1, :5] = 0; am[2, :1] = 0          # left padding
    with torch.no_grad(): a, b = mini(ids, attention_mask=am).logits, hf(ids, attention_mask=am).logits
    assert not a.isnan().any()
    assert_close(a[am.bool()], b[am.bool()], atol=1e-4, rtol=1e-4)


def test_minigpt_init_scales_residual_projections_like_gpt2():
    torch.manual_seed(0)
    m = MiniGPT(50, 16, 64, n_layer=8, n_head=4)
    target = 0.02 / math.sqrt(2 * 8)
    for b in m.blocks:
        for w in (b.attn.proj.weight, b.mlp[2].weight): assert abs(w.std().item() - target) < 0.2 * target
        assert abs(b.attn.qkv.weight.std().item() - 0.02) < 0.002 and (b.attn.qkv.bias == 0).all()
    assert abs(m.wte.weight.std().item() - 0.02) < 0.002
