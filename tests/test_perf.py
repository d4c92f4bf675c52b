"Tests for course_lib.train.performance: FLOPs estimate, MFU, the fast-path switches and the memory tools (CPU)."
import dataclasses, os, subprocess, sys, textwrap, warnings
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from course_lib.train.performance import (flops_per_token, gpt2_flops_per_token, peak_flops, mfu, MFUCB, FastPath, pad_to_multiple,
                             saved_activation_bytes, peak_memory_mb, reset_peak_memory, PEAK_BF16_FLOPS, PEAK_FP16_FLOPS,
                             gpu_model, batch_seq_len)
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
    assert abs(c.get_total_flops() / ids.numel() / gpt2_flops_per_token(model, seq_len=32) - 1) < 0.06


def test_gpt2_flops_use_the_trained_sequence_length_not_n_positions():
    model = FastPath.off().gpt2_model(vocab_size=100, n_layer=2, n_embd=64, n_head=4, n_positions=256)
    ids = torch.randint(0, 100, (2, 16))          # trained on 16-token sequences, the model accepts 256
    with FlopCounterMode(display=False) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    measured = c.get_total_flops() / ids.numel()
    assert abs(measured / gpt2_flops_per_token(model, seq_len=ids.shape[-1]) - 1) < 0.06
    with pytest.raises(ValueError, match='seq_len'):
        gpt2_flops_per_token(model)                # the config's maximum would be 1.56x too high here
    with pytest.raises(ValueError, match='n_positions=256'):
        gpt2_flops_per_token(model, seq_len=512)
    assert batch_seq_len({'input_ids': ids}) == 16 and batch_seq_len((ids, ids)) == 16
    assert batch_seq_len((torch.randn(4, 3), torch.zeros(4))) is None


def test_peak_and_mfu():
    peak, why = peak_flops('cpu')
    assert peak is None and 'cpu' in why
    assert mfu(1000., 1e9, None) is None
    assert mfu(1000., 1e9, 1e13) == pytest.approx(0.1)
    with pytest.raises(ValueError, match='positive'):
        mfu(1., 1., 0.)
    assert PEAK_BF16_FLOPS['H100 SXM'] == 989e12


def _fake_gpu(monkeypatch, name, capability=(9, 0)):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: name)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)


@pytest.mark.parametrize('name, peak', [
    ('NVIDIA H100 80GB HBM3', 989e12), ('NVIDIA H100 PCIe', 756e12), ('NVIDIA H100 NVL', 835e12),
    ('NVIDIA H200', 989e12), ('NVIDIA H200 NVL', 835e12),              # NVL is not the SXM part
    ('NVIDIA L4', 121e12), ('NVIDIA L40S', 362e12), ('NVIDIA L40', 181e12),   # 'L4' must not match 'L40S'
    ('NVIDIA A100-SXM4-80GB', 312e12), ('NVIDIA A100 80GB PCIe', 312e12), ('NVIDIA A100-PCIE-40GB', 312e12),
    ('Tesla T4', 65e12), ('Tesla V100-SXM2-16GB', 125e12),               # pre-Ampere: the fp16 peak
    ('NVIDIA GeForce RTX 4090', None), ('NVIDIA L4X', None), ('NVIDIA H100', None), ('NVIDIA RTX A6000', None),
])
def test_peak_flops_matches_exact_gpu_names(monkeypatch, name, peak):
    _fake_gpu(monkeypatch, name)
    got, why = peak_flops('cuda')
    assert got == peak
    if peak is None: assert why.startswith('unknown') and name in why and 'peak_flops=' in why
    else: assert name in why


def test_gpu_model_normalises_reported_names():
    assert gpu_model('NVIDIA  L40S ') == 'L40S' and gpu_model('nvidia h200 nvl') == 'H200 NVL'
    assert gpu_model('L4') == 'L4' and gpu_model('Tesla T4') == 'T4' and gpu_model('NVIDIA L4 (MIG 1g)') is None
    assert set(PEAK_BF16_FLOPS).isdisjoint(PEAK_FP16_FLOPS)


@pytest.mark.parametrize('capability, precision', [((7, 0), 'fp16'), ((7, 5), 'fp16'), ((8, 0), 'bf16'), ((9, 0), 'bf16')])
def test_fastpath_precision_follows_the_core_rule(monkeypatch, capability, precision):
    _fake_gpu(monkeypatch, 'NVIDIA Test GPU', capability)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)   # emulated bf16 must not count
    eff = FastPath().effective('cuda')
    assert eff['bf16'][0] and eff['tf32'][0] == (precision == 'bf16')
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32   # learner_kwargs sets them
    try:
        assert FastPath().learner_kwargs('cuda')['precision'] == precision
        assert FastPath.off().learner_kwargs('cuda')['precision'] == 'fp32'
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if precision == 'fp16': assert 'no native bf16' in eff['bf16'][1]


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


def test_peak_memory_without_the_resource_module():
    # Windows has no `resource` module: mask it (and psutil) in a fresh interpreter, import the modules that used it
    # at module level, and ask for the CPU peak with platform.system() faked to 'Windows'.
    code = textwrap.dedent('''
        import sys, warnings, platform
        sys.modules['resource'] = None; sys.modules['psutil'] = None
        platform.system = lambda: 'Windows'
        import course_lib.train.performance as perf
        import course_lib.concepts.compute_cost
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            assert perf.peak_memory_mb('cpu') is None
        assert 'not available on Windows' in str(w[0].message) and 'psutil' in str(w[0].message), w
        print('ok')
    ''')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-2000:]


def test_mfucb_uses_the_sequence_length_of_the_batches():
    model = FastPath().gpt2_model(vocab_size=30, n_layer=2, n_embd=32, n_head=2, n_positions=128)
    short = [{'input_ids': r, 'labels': r} for r in torch.randint(0, 30, (4, 16))]
    long = [{'input_ids': r, 'labels': r} for r in torch.randint(0, 30, (4, 48))]
    dl = [torch.utils.data.default_collate(short[:2]), torch.utils.data.default_collate(short[2:]),
          torch.utils.data.default_collate(long[:2])]
    cb = MFUCB(verbose=False)
    learn = Learner(model, dl, device='cpu', progress=False, cbs=[cb])
    learn.fit(1)
    rec = learn.history.epochs[-1]
    f16, f48 = gpt2_flops_per_token(model, 16), gpt2_flops_per_token(model, 48)
    expected = (64 * f16 + 96 * f48) / 160                 # token-weighted over the batches trained on
    assert cb.fpt == pytest.approx(expected) and cb.fpt < gpt2_flops_per_token(model, 128)
    assert rec['model_tflops'] == pytest.approx(rec['tokens_per_s'] * expected / 1e12)
    assert MFUCB(flops_per_token=1e6).fixed_fpt == 1e6


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
