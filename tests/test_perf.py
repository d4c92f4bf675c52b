"Tests for course_lib.train.performance: FLOPs estimate, MFU, the fast-path switches and the memory tools (CPU)."
import dataclasses
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from course_lib.train.performance import (flops_per_token, gpt2_flops_per_token, peak_flops, mfu, MFUCB, FastPath, pad_to_multiple,
                             saved_activation_bytes, peak_memory_mb, reset_peak_memory, PEAK_BF16_FLOPS)
from course_lib.train.learner import Learner


def test_flops_formula_and_errors():
    assert flops_per_token(100, 2, 8, 4) == 600 + 12 * 2 * 8 * 4
    with pytest.raises(ValueError, match='n_ctx must be positive'):
        flops_per_token(100, 2, 0, 4)


def test_gpt2_flops_close_to_flop_counter():
    model = FastPath.off().gpt2_model(vocab_size=100, n_layer=2, n_embd=64, n_head=4, n_positions=32)
    ids = torch.randint(0, 100, (2, 32))
    with FlopCounterMode(display=False) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    assert abs(c.get_total_flops() / ids.numel() / gpt2_flops_per_token(model) - 1) < 0.06


def test_peak_and_mfu():
    peak, why = peak_flops('cpu')
    assert peak is None and 'cpu' in why
    assert mfu(1000., 1e9, None) is None
    assert mfu(1000., 1e9, 1e13) == pytest.approx(0.1)
    with pytest.raises(ValueError, match='positive'):
        mfu(1., 1., 0.)
    assert PEAK_BF16_FLOPS['H100 SXM'] == 989e12


def test_fastpath_switches_on_cpu():
    eff = FastPath().effective('cpu')
    assert eff['sdpa'][0] and not eff['compile'][0] and not eff['bf16'][0] and not eff['fused_adamw'][0] and not eff['pin_memory'][0]
    assert 'CUDA' in eff['bf16'][1]
    off = FastPath.off().effective('cpu')
    assert not any(on for on, _ in off.values()) and all('switched off' in r for _, r in off.values())
    kw = FastPath().learner_kwargs('cpu')
    assert kw['precision'] == 'fp32' and 'fused' not in kw['opt_func'].keywords
    assert FastPath().loader_kwargs('cpu') == {'pin_memory': False}


def test_fastpath_model_config():
    m = FastPath().gpt2_model(vocab_size=65, n_layer=1, n_embd=32, n_head=2, n_positions=16)
    assert m.config.vocab_size == 64 * 2 and m.config._attn_implementation == 'sdpa'
    m2 = FastPath.off().gpt2_model(vocab_size=65, n_layer=1, n_embd=32, n_head=2, n_positions=16)
    assert m2.config.vocab_size == 65 and m2.config._attn_implementation == 'eager'
    m3 = dataclasses.replace(FastPath.off(), grad_checkpointing=True).gpt2_model(
        vocab_size=65, n_layer=1, n_embd=32, n_head=2, n_positions=16)
    assert getattr(m3, 'is_activation_checkpointing', None) or m3.is_gradient_checkpointing
    assert pad_to_multiple(50257) == 50304 and pad_to_multiple(1, 8) == 8
    with pytest.raises(ValueError):
        pad_to_multiple(0)


def test_saved_activation_bytes_and_checkpointing():
    w = torch.randn(32, 16, requires_grad=True)
    x = torch.randn(8, 32)
    assert saved_activation_bytes(lambda: torch.tanh(x @ w)) == (8 * 32 + 8 * 16) * 4
    kw = dict(vocab_size=64, n_layer=3, n_embd=64, n_head=4, n_positions=64)
    ids = torch.randint(0, 64, (4, 64))
    plain = FastPath.off().gpt2_model(**kw).train()
    ckpt = dataclasses.replace(FastPath.off(), grad_checkpointing=True).gpt2_model(**kw).train()
    assert saved_activation_bytes(lambda: ckpt(input_ids=ids, labels=ids).loss) < \
        0.6 * saved_activation_bytes(lambda: plain(input_ids=ids, labels=ids).loss)


def test_peak_memory_cpu():
    reset_peak_memory('cpu')
    assert peak_memory_mb('cpu') > 10


def test_mfucb_records_in_history():
    model = FastPath().gpt2_model(vocab_size=30, n_layer=1, n_embd=32, n_head=2, n_positions=16)
    rows = [{'input_ids': r, 'labels': r} for r in torch.randint(0, 30, (8, 16))]
    dl = torch.utils.data.DataLoader(rows, batch_size=4)
    learn = Learner(model, dl, device='cpu', progress=False, cbs=[MFUCB(verbose=False)])
    learn.fit(1)
    rec = learn.history.epochs[-1]
    assert rec['mfu'] is None and rec['model_tflops'] > 0
    with pytest.raises(ValueError, match='flops_per_token'):
        Learner(torch.nn.Linear(2, 2), dl, device='cpu', progress=False, cbs=[MFUCB()]).fit(1)
