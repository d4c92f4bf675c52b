import json, os, random
import numpy as np, pytest, torch
from course_lib.core import (get_profile, by_profile, get_device, set_seed, env_report, record, data_path, data_dir, Timer,
                             RUN_METRICS, bf16_supported, auto_precision)


def test_profile_from_argument_env_and_auto(monkeypatch):
    monkeypatch.setenv('COURSE_PROFILE', 'smoke')
    assert get_profile() == 'smoke'
    assert get_profile('full') == 'full'
    monkeypatch.setenv('COURSE_PROFILE', 'auto')
    assert get_profile() == ('full' if torch.cuda.is_available() else 'workshop')
    assert by_profile(1, 2, 3, profile='smoke') == 1 and by_profile(1, 2, 3, profile='full') == 3


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match='smoke'):
        get_profile('tiny')


def test_device_override_and_unavailable_device(monkeypatch):
    assert get_device('cpu').type == 'cpu'
    monkeypatch.setenv('COURSE_DEVICE', 'cpu')
    assert get_device().type == 'cpu'
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='not available'):
            get_device('cuda')
        monkeypatch.setenv('COURSE_DEVICE', 'cuda')
        with pytest.raises(RuntimeError, match="device='cpu'"):
            get_device()


def test_seed_makes_python_numpy_torch_repeat():
    set_seed(7); a = (random.random(), np.random.rand(), torch.randn(3))
    set_seed(7); b = (random.random(), np.random.rand(), torch.randn(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError):
        set_seed(-1)


def test_env_report_has_versions_and_device(capsys):
    info = env_report(profile='smoke')
    assert info['torch'] == torch.__version__ and info['device'] == 'cpu' and info['profile'] == 'smoke'
    assert 'torch' in capsys.readouterr().out


def test_record_writes_metrics_file(tmp_path, monkeypatch):
    f = tmp_path / 'm.json'
    monkeypatch.setenv('COURSE_METRICS_FILE', str(f))
    record('unit.a', 0.5); record('unit.b', torch.tensor(2.0))
    assert json.loads(f.read_text()) == {'unit.a': 0.5, 'unit.b': 2.0}
    assert RUN_METRICS['unit.b'] == 2.0
    with pytest.raises(ValueError, match='chapter.metric'):
        record('no_dot', 1)


def test_data_path_finds_shipped_files_and_explains_missing_ones():
    assert data_path('shakespeare.txt').stat().st_size > 1_000_000
    assert (data_dir() / 'README.md').exists()
    with pytest.raises(FileNotFoundError, match='data/README.md'):
        data_path('missing.txt')


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv('COURSE_DATA_DIR', str(tmp_path))
    (tmp_path / 'x.txt').write_text('hi')
    assert data_path('x.txt').read_text() == 'hi'


def test_timer():
    with Timer() as t: sum(range(1000))
    assert t.seconds >= 0


@pytest.mark.parametrize('capability, native, auto', [((7, 0), False, 'fp16'),    # V100
                                                      ((7, 5), False, 'fp16'),    # T4: emulated bf16 does not count
                                                      ((8, 0), True, 'bf16'),     # A100
                                                      ((8, 9), True, 'bf16'),     # L4, L40S
                                                      ((9, 0), True, 'bf16')])    # H100, H200
def test_precision_rule_reads_the_compute_capability(monkeypatch, capability, native, auto):
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)   # what a T4 answers (emulation)
    assert bf16_supported('cuda') is native and bf16_supported(torch.device('cuda:0')) is native
    assert auto_precision('cuda') == auto


def test_precision_rule_on_cpu_and_mps(monkeypatch):
    assert bf16_supported('cpu') and auto_precision('cpu') == 'fp32'
    import course_lib.core as core
    monkeypatch.setitem(core._MPS_BF16, 'ok', False)           # macOS 13: no bf16 on MPS
    assert not bf16_supported('mps') and auto_precision('mps') == 'fp32'
    monkeypatch.setitem(core._MPS_BF16, 'ok', True)
    assert bf16_supported('mps') and auto_precision('mps') == 'fp32'

def test_cpu_budget_reads_cgroup_v2_and_v1_quotas(tmp_path, monkeypatch):
    from course_lib.core import cpu_budget, _cgroup_cpu_quota
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(64)), raising=False)
    (tmp_path / 'cpu.max').write_text('200000 100000\n')        # a CI job: 64 CPUs visible, 2 granted
    assert _cgroup_cpu_quota(str(tmp_path)) == 2.0 and cpu_budget(str(tmp_path)) == 2
    (tmp_path / 'cpu.max').write_text('max 100000\n')
    assert cpu_budget(str(tmp_path)) == 64
    v1 = tmp_path / 'v1'; (v1 / 'cpu').mkdir(parents=True)
    (v1 / 'cpu' / 'cpu.cfs_quota_us').write_text('50000\n'); (v1 / 'cpu' / 'cpu.cfs_period_us').write_text('100000\n')
    assert cpu_budget(str(v1)) == 1                             # half a CPU still gets one thread
    (v1 / 'cpu' / 'cpu.cfs_quota_us').write_text('-1\n')
    assert _cgroup_cpu_quota(str(v1)) is None and cpu_budget(str(tmp_path / 'missing')) == 64

def test_fit_torch_threads_lowers_to_the_budget_unless_omp_says(monkeypatch):
    import course_lib.core as core
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(core, 'cpu_budget', lambda *a: 1)
        monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
        torch.set_num_threads(3)
        assert core.fit_torch_threads() == 1
        monkeypatch.setenv('OMP_NUM_THREADS', '3'); torch.set_num_threads(3)
        assert core.fit_torch_threads() == 3                   # the user's choice stands
    finally: torch.set_num_threads(before)
