"""Sharded data parallel (chapter 04): FSDP2 where it runs, ZeroRedundancyOptimizer where it does not."""
import sys, types
import pytest
import torch, torch.nn as nn
import course_lib.train.distributed as D
from course_lib.train.learner import CourseError
from course_lib.train.checkpoint import CheckpointCB
from course_lib.train.distributed import ShardedCB, fsdp2_status, run_sharded_check, optimizer_state_bytes


def test_fsdp2_status_says_why_not(monkeypatch):
    assert fsdp2_status() == (False, "FSDP2 needs a process group of 2 or more (start the script with torchrun)")
    monkeypatch.setitem(sys.modules, 'torch.distributed.fsdp', None)      # a torch without FSDP2
    ok, why = fsdp2_status()
    assert not ok and 'fully_shard' in why and 'torch >= 2.6' in why


def test_sharded_cb_falls_back_to_zero_when_fsdp2_does_not_run(monkeypatch):
    monkeypatch.setattr(D, 'fsdp2_status', lambda device=None: (False, 'FSDP2 failed on cpu with gloo: boom'))
    cb = ShardedCB('auto'); cb.learn = types.SimpleNamespace(device=torch.device('cpu'))
    used, why = cb._choose()
    assert used == 'zero' and 'boom' in why and 'ZeroRedundancyOptimizer' in why
    cb = ShardedCB('fsdp'); cb.learn = types.SimpleNamespace(device=torch.device('cpu'))
    with pytest.raises(CourseError, match="ShardedCB\\('auto'\\) falls back"): cb._choose()
    with pytest.raises(ValueError, match="'auto', 'fsdp' or 'zero'"): ShardedCB('fsdp2')


def test_sharded_cb_refuses_checkpoint_cb(monkeypatch, tmp_path):
    monkeypatch.setattr(D, 'is_distributed', lambda: True)
    cb = ShardedCB(); cb.learn = types.SimpleNamespace(cbs=[cb, CheckpointCB(tmp_path)])
    with pytest.raises(CourseError, match='torch.distributed.checkpoint'): cb.prepare()


def test_optimizer_state_bytes_counts_adam_state():
    model = nn.Linear(10, 4)
    opt = torch.optim.AdamW(model.parameters())
    assert optimizer_state_bytes(opt) == 0
    model(torch.ones(2, 10)).sum().backward(); opt.step()
    assert optimizer_state_bytes(opt) == 2 * 44 * 4 + 2 * 4     # exp_avg and exp_avg_sq per weight, a step per tensor


def test_two_gloo_processes_sharded_match_one_process(tmp_path):
    "FSDP2 ('auto' here: it runs on CPU/gloo with this torch) and ZeRO-1 both end with the single-process weights."
    result = run_sharded_check(tmp_path, strategies=('auto', 'zero'))
    single = result['single']
    assert '[sharded] FSDP2 fully_shard on 2 processes' in result['auto_log']
    assert '[sharded] ZeRO-1 ZeroRedundancyOptimizer on 2 processes' in result['zero_log']
    for s in ('auto', 'zero'):
        for name, p in single['state'].items():
            torch.testing.assert_close(result[s]['state'][name], p, rtol=1e-4, atol=1e-5)
        for a, b in zip(single['history']['epochs'], result[s]['history']['epochs']):
            assert b['valid_loss'] == pytest.approx(a['valid_loss'], rel=1e-5) and b['valid_n'] == 63
    full = single['opt_bytes'][0]
    fsdp, zero = result['auto'], result['zero']
    assert all(b < 0.6 * full for b in fsdp['opt_bytes'])                     # each rank: about half the state
    assert all(b < 0.6 * single['param_bytes'][0] for b in fsdp['param_bytes'])   # and about half the weights
    assert sum(zero['opt_bytes']) == full and max(zero['opt_bytes']) < full  # the state split, whole tensors per rank
    assert zero['param_bytes'] == single['param_bytes'] * 2                   # weights replicated under ZeRO-1
