"Chapter 64: parameter and FLOP counts, the power-law fits, Chinchilla's law and a tiny training run."
import math
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from course_lib.algorithms.attention import count_params
from course_lib.concepts.compute_cost import training_flops
from course_lib.llm import scaling_law as S
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


# -- the family and the counts --------------------------------------------------------------------------------------
def test_family_config_shapes_and_errors():
    c = S.family_config(3)
    assert (c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff) == (24, 3, 3, 1, 8, 64)
    assert S.family_config(2, 16, 16, 32).max_seq_len == 32
    with pytest.raises(ValueError, match='positive int'): S.family_config(0)
    with pytest.raises(ValueError, match='multiple of head_dim'): S.family_config(3, width_per_layer=6, head_dim=8)


@pytest.mark.parametrize('cfg', [S.family_config(2), S.family_config(4, 16, 16),
                                 ModernConfig(vocab_size=256, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=88,
                                              tie_embeddings=False)])
def test_param_counts_match_the_model(cfg):
    m, counts = ModernLM(cfg), S.param_counts(cfg)
    assert counts['total'] == count_params(m)
    assert counts['non_embedding'] == S.non_embedding_params(m)
    assert counts['embedding'] == cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)


def test_run_flops_matches_the_flop_counter():
    cfg = S.family_config(2, max_seq_len=16)
    m, x = ModernLM(cfg, use_sdpa=False), torch.randint(0, 256, (3, 16))
    with FlopCounterMode(display=False) as counter:
        m(x, labels=x).loss.backward()
    f = S.run_flops(cfg, x.numel(), 16)
    assert counter.get_total_flops() == pytest.approx(f['counted'], rel=1e-12)
    assert f['kaplan'] == training_flops(S.param_counts(cfg)['non_embedding'], x.numel())
    with pytest.raises(ValueError, match='positive'): S.run_flops(cfg, 0, 16)


# -- fits -------------------------------------------------------------------------------------------------------------
def test_fit_recovers_known_parameters():
    law = S.PowerLaw(1.2, 40.0, 0.15)
    x = np.geomspace(1e10, 4e12, 5)
    fit = S.fit_power_law(x, law(x))
    assert fit.E == pytest.approx(1.2, rel=1e-3) and fit.A == pytest.approx(40, rel=1e-3)
    assert fit.alpha == pytest.approx(0.15, rel=1e-3)
    line = S.fit_power_law(x, 3.0 * x ** -0.2, offset=False)
    assert line.E == 0 and line.A == pytest.approx(3.0, rel=1e-9) and line.alpha == pytest.approx(0.2, rel=1e-9)


def test_fit_with_noise_predicts_and_loo_spreads():
    law = S.PowerLaw(2.0, 10.0, 0.1)
    x = np.geomspace(1e8, 1e11, 6)
    y = law(x) * (1 + 0.002 * np.random.default_rng(1).standard_normal(6))
    fit = S.fit_power_law(x, y)
    assert S.relative_error(fit(4e11), law(4e11)) < 0.02
    fits = S.leave_one_out(x, y)
    assert len(fits) == 6 and all(isinstance(f, S.PowerLaw) and f.alpha > 0 for f in fits)


def test_fit_errors():
    with pytest.raises(ValueError, match='at least 3'): S.fit_power_law([1, 2], [3, 2])
    with pytest.raises(ValueError, match='same length'): S.fit_power_law([1, 2, 3], [3, 2])
    with pytest.raises(ValueError, match='positive'): S.fit_power_law([1, 2, 3], [3, -2, 1])
    with pytest.raises(ValueError, match='does not decrease'): S.fit_power_law([1, 10, 100], [1, 2, 4])
    with pytest.raises(ValueError, match='x > 0'): S.PowerLaw(1, 1, 0.1)(0.0)
    with pytest.raises(ValueError, match='non-zero'): S.relative_error(1.0, 0.0)
    assert S.relative_error(1.02, 1.0) == pytest.approx(0.02)


# -- Chinchilla -------------------------------------------------------------------------------------------------------
def test_chinchilla_constants_and_law():
    c = S.CHINCHILLA
    assert (c['E'], c['A'], c['B'], c['alpha'], c['beta'], c['tokens_per_param']) == (1.69, 406.4, 410.7, 0.34, 0.28, 20)
    assert '2203.15556' in c['source']
    assert S.chinchilla_loss(1e40, 1e40) == pytest.approx(1.69, abs=1e-6)
    assert S.chinchilla_loss(70e9, 1.4e12) == pytest.approx(1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)
    with pytest.raises(ValueError): S.chinchilla_loss(0, 1)


def test_chinchilla_allocation_is_the_constrained_minimum():
    for comp in (1e15, 5.76e23):
        n, d = S.chinchilla_allocation(comp)
        assert 6 * n * d == pytest.approx(comp, rel=1e-9)
        for f in (0.9, 1.1):
            assert S.chinchilla_loss(n, d) < S.chinchilla_loss(n * f, comp / (6 * n * f))
    n1, _ = S.chinchilla_allocation(1e20); n2, _ = S.chinchilla_allocation(1e21)
    assert math.log10(n2 / n1) == pytest.approx(0.28 / 0.62, rel=1e-9)
    with pytest.raises(ValueError): S.chinchilla_allocation(-1)


# -- data and one run -------------------------------------------------------------------------------------------------
def test_byte_loaders_same_order_and_fixed_validation():
    ids, vids = torch.randint(0, 256, (5000,)), torch.randint(0, 256, (3000,))
    a, va = S.byte_loaders(ids, vids, 16, 4, 5, 10, seed=0)
    b, vb = S.byte_loaders(ids, vids, 16, 4, 9, 10, seed=0)
    xa, xb = [x['input_ids'] for x in a], [x['input_ids'] for x in b]
    assert len(xa) == 5 and len(xb) == 9 and all(torch.equal(p, q) for p, q in zip(xa, xb))   # a prefix
    assert sum(x['input_ids'].shape[0] for x in va) == 10
    with pytest.raises(ValueError, match='steps'): S.byte_loaders(ids, vids, 16, 4, 0, 10)


def test_train_run_tiny():
    torch.manual_seed(0)
    ids, vids = torch.randint(0, 64, (4000,)), torch.randint(0, 64, (2000,))
    cfg = S.family_config(1, 16, 8, max_seq_len=16)
    r = S.train_run(cfg, ids, vids, n_tokens=8 * 4 * 16, batch=4, lr=3e-3, valid_windows=8)
    assert r['steps'] == 8 and r['D'] == 8 * 4 * 16 and r['N'] == S.param_counts(cfg)['non_embedding']
    assert r['C'] == 6 * r['N'] * r['D'] and math.isfinite(r['bpb']) and r['bpb'] > 0
    assert r['final_lr_ratio'] == pytest.approx(0.1, abs=0.02)
    long = S.train_run(cfg, ids, vids, n_tokens=8 * 4 * 16, batch=4, lr=3e-3, valid_windows=8, schedule_factor=4)
    assert long['final_lr_ratio'] > 0.5
