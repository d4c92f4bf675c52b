"Tests for course_lib.concepts.compute_cost: compute, memory and cost calculator (CPU, tiny models)."
import math
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel
from course_lib.concepts.compute_cost import (PF_DAY_FLOPS, BYTES_PER_DTYPE, OPTIMIZER_STATES, TRAINING_PRECISIONS, training_flops,
                              inference_flops, decoder_params, matmul_params, transformer_flops_per_token, chinchilla_optimal,
                              training_memory_bytes, kv_cache_bytes, inference_memory_bytes, gpu_hours, training_cost,
                              cost_per_1k_requests)


def _tiny_gpt(L=2, d=32, V=50, T=16, heads=4):
    cfg = GPT2Config(vocab_size=V, n_layer=L, n_embd=d, n_head=heads, n_positions=T, bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = 'eager'
    return GPT2LMHeadModel(cfg)


def test_training_and_inference_flops():
    assert training_flops(10, 100) == 6000
    assert inference_flops(10, 100) == 2000
    assert inference_flops(10, 1, n_layer=2, d_model=4, context=8) == 20 + 4 * 2 * 8 * 4
    assert training_flops(175e9, 300e9) / 3.14e23 == pytest.approx(1.0, abs=0.01)   # GPT-3, Table D.1
    assert PF_DAY_FLOPS == 8.64e19
    for bad in [(0, 1), (1, -5)]:
        with pytest.raises(ValueError, match='positive'): training_flops(*bad)
    with pytest.raises(ValueError): inference_flops(1, 1, n_layer=-1)


def test_matmul_params():
    assert matmul_params(2, 32, 50) == 12 * 2 * 32 * 32 + 50 * 32
    model = _tiny_gpt(2, 32, 50, 16)
    n_all = sum(p.numel() for p in model.parameters())
    assert n_all - matmul_params(2, 32, 50) == 2 * 13 * 32 + 16 * 32 + 2 * 32   # biases, layer norms, positions
    with pytest.raises(ValueError): matmul_params(0, 32, 50)


def test_decoder_params_matches_gpt2():
    assert decoder_params(2, 32, 50, 16) == sum(p.numel() for p in _tiny_gpt(2, 32, 50, 16).parameters())
    assert decoder_params(12, 768, 50257, 1024) == 124_439_808
    with pytest.raises(ValueError): decoder_params(2, 32, 50, 0)


def test_transformer_flops_per_token_matches_counter():
    L, d, V, T = 2, 32, 50, 16
    model = _tiny_gpt(L, d, V, T)
    ids = torch.randint(0, V, (2, T))
    with FlopCounterMode(display=False) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    assert c.get_total_flops() / ids.numel() == transformer_flops_per_token(L, d, T, V)
    with FlopCounterMode(display=False) as c:
        with torch.no_grad(): model(input_ids=ids)
    assert c.get_total_flops() / ids.numel() == inference_flops(matmul_params(L, d, V), 1, L, d, T)


def test_chinchilla_optimal():
    n, d = chinchilla_optimal(training_flops(70e9, 1.4e12))
    assert n == pytest.approx(70e9) and d == pytest.approx(1.4e12)
    n, d = chinchilla_optimal(6e6, tokens_per_param=10)
    assert d == pytest.approx(10 * n) and training_flops(n, d) == pytest.approx(6e6)
    with pytest.raises(ValueError): chinchilla_optimal(0)


def test_training_memory_bytes_breakdown_and_errors():
    m = training_memory_bytes(10, 'bf16-mixed', 'adamw')
    assert m == dict(weights=20, gradients=20, master_weights=40, optimizer=80, total=160)
    assert training_memory_bytes(10, 'fp32', 'adamw')['total'] == 160
    assert training_memory_bytes(10, 'bf16', 'adamw')['total'] == 80
    assert training_memory_bytes(10, 'fp32', 'sgd')['total'] == 80
    assert training_memory_bytes(10, 'fp32', 'sgd-momentum')['optimizer'] == 40
    assert training_memory_bytes(1.5e9, 'fp16-mixed')['total'] == 24e9       # ZeRO, Section 3.1
    assert set(OPTIMIZER_STATES) >= {'adamw', 'sgd'} and 'bf16-mixed' in TRAINING_PRECISIONS
    with pytest.raises(ValueError, match='precision'): training_memory_bytes(10, 'fp64')
    with pytest.raises(ValueError, match='optimizer'): training_memory_bytes(10, 'fp32', 'lion')


def test_training_memory_matches_real_adamw_step():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    n = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters())
    nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.tensor([0, 1, 2, 0])).backward(); opt.step()
    nb = lambda t: t.numel() * t.element_size()
    calc = training_memory_bytes(n, 'fp32', 'adamw')
    params = list(model.parameters())
    assert sum(nb(p) for p in params) == calc['weights']
    assert sum(nb(p.grad) for p in params) == calc['gradients']
    assert sum(nb(opt.state[p][k]) for p in params for k in ('exp_avg', 'exp_avg_sq')) == calc['optimizer']


def test_kv_cache_and_inference_memory():
    L, d, V, T, heads = 2, 32, 50, 16, 4
    model = _tiny_gpt(L, d, V, T, heads)
    ids = torch.randint(0, V, (3, T))
    with torch.no_grad(): out = model(input_ids=ids, use_cache=True)
    got = sum(t.numel() * t.element_size() for layer in out.past_key_values.layers for t in (layer.keys, layer.values))
    assert got == kv_cache_bytes(L, heads, d // heads, T, batch=3, dtype='fp32')
    m = inference_memory_bytes(100, 'bf16')
    assert m == dict(weights=200, kv_cache=0, total=200)
    m = inference_memory_bytes(100, 'int8', n_layer=1, n_kv_heads=1, head_dim=2, seq_len=3, batch=2)
    assert m['kv_cache'] == 2 * 1 * 2 * 3 * 1 * 2 * 1 and m['total'] == 100 + m['kv_cache']
    assert BYTES_PER_DTYPE['int4'] == 0.5
    with pytest.raises(ValueError, match='dtype'): inference_memory_bytes(10, 'fp64')
    with pytest.raises(ValueError): kv_cache_bytes(0, 1, 1, 1)


def test_gpu_hours_and_costs():
    assert gpu_hours(3600e15, 1e15, 1.0) == 1.0
    assert gpu_hours(3600e15, 1e15, 0.5) == 2.0
    assert training_cost(2.0, 3.0) == 6.0
    assert cost_per_1k_requests(3.6, 1.0) == pytest.approx(1.0)
    assert cost_per_1k_requests(3.6, 1.0, concurrency=4) == pytest.approx(0.25)
    with pytest.raises(ValueError, match='mfu'): gpu_hours(1, 1, 1.5)
    with pytest.raises(ValueError): gpu_hours(1, 0, 0.5)
    with pytest.raises(ValueError): training_cost(-1, 1)
    with pytest.raises(ValueError): cost_per_1k_requests(0, 1)
