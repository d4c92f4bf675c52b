"""Distributed training (chapter 04): each rank's device, sharded data, exact evaluation, resume, and the 2-process
gloo check against one process. The sharded (FSDP2 / ZeRO) checks are in test_distributed_sharded.py."""
import types
import pytest
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader, DistributedSampler
import course_lib.train.distributed as D
from course_lib.train.learner import Learner, DeviceMismatchError, CourseError
from course_lib.train.distributed import (setup_distributed, reduce_sums, gather_rows, is_main_process, DistributedCB,
                                          ShardedCB, run_ddp_check, rank_device, ddp_placement, EvalShardSampler,
                                          loopback_interface, torchrun_env)


def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    assert setup_distributed() == (0, 1) and is_main_process() and reduce_sums([1.0, 2.0]) == [1.0, 2.0]
    t = torch.arange(6).view(3, 2)
    assert gather_rows(t) is t
    X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    dl = DataLoader(TensorDataset(X, y), batch_size=8)
    for cb in (DistributedCB(), ShardedCB()):
        learn = Learner(nn.Linear(3, 2), dl, dl, F.cross_entropy, cbs=[cb], progress=False, device='cpu')
        learn.fit(1)
        assert learn._forward_model is learn.model and learn.train_dl is dl and learn.valid_dl is dl and learn.step == 4
        assert learn.reduce_sums is None and learn.gather is None and learn.eval_model is None


# -- bug 1: every rank used device_ids=[0] ---------------------------------------------------------------------
def _fake_gpus(monkeypatch, local_rank, n_gpus=2):
    calls = []
    monkeypatch.setenv('LOCAL_RANK', str(local_rank)); monkeypatch.setenv('COURSE_DEVICE', '')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: n_gpus)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: calls.append(torch.device('cuda', d) if isinstance(d, int) else d))
    return calls


def test_rank_device_is_cuda_local_rank(monkeypatch):
    calls = _fake_gpus(monkeypatch, local_rank=1)
    assert rank_device() == torch.device('cuda', 1) and calls == [torch.device('cuda', 1)]
    _fake_gpus(monkeypatch, local_rank=2)
    with pytest.raises(DeviceMismatchError, match='nproc_per_node=2'): rank_device()
    monkeypatch.setenv('COURSE_DEVICE', 'cpu')            # the CPU runs of the check script
    assert rank_device() == torch.device('cpu')


def test_ddp_placement_per_rank(monkeypatch):
    _fake_gpus(monkeypatch, local_rank=1)
    assert ddp_placement(torch.device('cuda'), 'nccl') == (torch.device('cuda', 1), [1])     # plain 'cuda': corrected
    assert ddp_placement(torch.device('cuda', 1), 'nccl') == (torch.device('cuda', 1), [1])
    with pytest.raises(DeviceMismatchError, match='rank_device'): ddp_placement(torch.device('cuda', 0), 'nccl')
    with pytest.raises(DeviceMismatchError, match='NCCL'): ddp_placement(torch.device('cpu'), 'nccl')
    assert ddp_placement(torch.device('cpu'), 'gloo') == (torch.device('cpu'), None)


def test_distributed_cb_wraps_the_model_on_the_rank_device(monkeypatch):
    "Process LOCAL_RANK=1 of a 2-GPU job, without a GPU: DDP gets device_ids=[1], the model and batches go to cuda:1."
    calls = _fake_gpus(monkeypatch, local_rank=1)
    monkeypatch.setattr(D.dist, 'get_backend', lambda *a: 'nccl')
    made = {}
    class FakeDDP(nn.Module):
        def __init__(self, module, device_ids=None, **kw): super().__init__(); made.update(module=module, device_ids=device_ids)
    monkeypatch.setattr(torch.nn.parallel, 'DistributedDataParallel', FakeDDP)
    moved = []
    model = nn.Linear(2, 2); model.to = lambda d: moved.append(torch.device(d)) or model
    learn = types.SimpleNamespace(device=torch.device('cuda'), model=model, move_to_device=True, _forward_model=model,
                                  eval_model=None)
    cb = DistributedCB(); cb.learn = learn
    cb._wrap(cb._place())
    assert made['device_ids'] == [1] and made['module'] is model and isinstance(learn._forward_model, FakeDDP)
    assert learn.device == torch.device('cuda', 1) and moved == [torch.device('cuda', 1)] and calls[-1] == torch.device('cuda', 1)
    assert learn.eval_model is model                      # evaluation runs the unwrapped model: no collectives
    learn.device = torch.device('cuda', 0)                # a script that hard-codes cuda:0 on every rank
    with pytest.raises(DeviceMismatchError, match='LOCAL_RANK=1'): cb._place()


# -- bug 5 (DDP part): padded duplicates in validation --------------------------------------------------------
@pytest.mark.parametrize('n,world,bs', [(63, 2, 8), (17, 2, 8), (10, 4, 2), (5, 4, 2), (100, 3, 16)])
def test_eval_shards_cover_every_item_once(n, world, bs):
    shards = [list(EvalShardSampler(n, bs, r, world)) for r in range(world)]
    items = sorted(i for s in shards for b in s for i in b)
    assert items == list(range(n))                                    # no padding, nothing missing
    assert len({len(s) for s in shards}) == 1 and all(b for s in shards for b in s)   # same batch count, none empty
    assert all(len(b) <= bs for s in shards for b in s)
    padded = sum(len(list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False))) for r in range(world))
    assert padded == world * -(-n // world)                           # what DistributedSampler would have evaluated


def test_eval_shards_refuse_a_set_smaller_than_the_ranks():
    with pytest.raises(CourseError, match='too few'): EvalShardSampler(3, 2, 3, 4)


# -- bug 8 (GLOO part): the loopback interface per platform --------------------------------------------------
@pytest.mark.parametrize('system,names,expected', [
    ('Linux', [(1, 'lo'), (2, 'eth0')], 'lo'),
    ('Darwin', [(1, 'lo0'), (4, 'en0')], 'lo0'),
    ('Darwin', OSError, 'lo0'),                      # no interface list: the platform's usual name
    ('Linux', [(1, 'lo1'), (2, 'eth0')], 'lo1'),     # an unusual name, found by looking
    ('Windows', [(1, 'loopback_0')], None),          # gloo chooses on Windows: leave the variable unset
])
def test_loopback_interface_per_platform(monkeypatch, system, names, expected):
    monkeypatch.setattr(D.platform, 'system', lambda: system)
    def if_nameindex():
        if names is OSError: raise OSError('not supported')
        return names
    monkeypatch.setattr(D.socket, 'if_nameindex', if_nameindex)
    monkeypatch.delenv('GLOO_SOCKET_IFNAME', raising=False)
    assert loopback_interface() == expected
    assert torchrun_env().get('GLOO_SOCKET_IFNAME') == expected
    monkeypatch.setenv('GLOO_SOCKET_IFNAME', 'mine')                 # a user's own choice wins
    assert torchrun_env()['GLOO_SOCKET_IFNAME'] == 'mine'


# -- bugs 2, 5, 6: the 2-process gloo check ---------------------------------------------------------------------
def test_two_gloo_processes_with_half_batches_match_one_process(tmp_path):
    """torchrun --nproc_per_node=2 on the CPU, cosine schedule, accumulation over 2 micro-batches, 63 validation items:
    same weights, per-step lr, per-epoch records and predictions as one process with the same global batch; a crash
    at step 5 resumes from the step-4 checkpoint with history epochs [0, 1]."""
    result = run_ddp_check(tmp_path, nproc=2, global_batch=16, resume=True, schedule='cosine', accum=2, n_valid=63)
    single, ddp = result['single'], result['ddp']
    assert single['steps'] == ddp['steps'] == 8
    for name, p in single['state'].items():
        torch.testing.assert_close(ddp['state'][name], p, rtol=1e-5, atol=1e-6)
    # bug 2: the schedule is sized from the sharded loader (the last lr was 0.275 instead of 0.05)
    lrs = lambda run: [s['lr'] for s in run['history']['steps']]
    assert lrs(ddp) == pytest.approx(lrs(single), abs=1e-12) and lrs(ddp)[-1] == pytest.approx(0.05)
    # bug 5: exact evaluation (no padded duplicate among the 63), set-level metrics on all predictions
    assert len(single['history']['epochs']) == len(ddp['history']['epochs']) == 2
    for a, b in zip(single['history']['epochs'], ddp['history']['epochs']):
        assert (a['epoch'], a['step']) == (b['epoch'], b['step'])
        for k in ('train_loss', 'valid_loss', 'valid_acc', 'valid_f1'): assert b[k] == pytest.approx(a[k], rel=1e-6), k
        assert a['valid_n'] == b['valid_n'] == 63
    torch.testing.assert_close(ddp['preds'], single['preds'], rtol=1e-4, atol=1e-5)    # gathered, in dataset order
    assert torch.equal(ddp['labels'], single['labels'])
    assert result['log'].count('valid_loss') == 2                      # only rank 0 printed its 2 epoch lines
    # bug 6: resumed from the step-4 (end of epoch 0) checkpoint, epoch 0 recorded once
    resumed = result['resumed']
    assert resumed['start_step'] == 4 and 'resumed from ckpt-000002-step4' in result['resume_log']
    assert [r['epoch'] for r in resumed['history']['epochs']] == [0, 1] and resumed['steps'] == 8
    for name, p in ddp['state'].items():
        assert torch.equal(resumed['state'][name], p)


def test_gather_only_for_sharded_evaluation(monkeypatch):
    "Predictions are gathered from all ranks for the sharded validation loader, not for a loader each rank read whole."
    monkeypatch.setattr(D, 'gather_rows', lambda t: torch.cat([t, t]))          # what 2 ranks would return
    ds = TensorDataset(torch.arange(5.))
    cb = DistributedCB(); t = torch.ones(3, 2)
    cb.learn = types.SimpleNamespace(eval_dl=DataLoader(ds, batch_size=2))
    assert cb.gather(t) is t
    cb.learn.eval_dl = DataLoader(ds, batch_sampler=EvalShardSampler(5, 2, 0, 2))
    assert cb.gather(t).shape == (6, 2)
