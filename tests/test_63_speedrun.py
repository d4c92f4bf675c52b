"Chapter 63: Muon against torch, the configurable model against MiniGPT, and the speedrun's measuring tools, on tiny sizes."
import math
import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close
from course_lib.core import set_seed
from course_lib.train.learner import Learner, decay_param_groups
from course_lib.train.checkpoint import CheckpointCB
from course_lib.algorithms.attention import MiniGPT, count_params
from course_lib.llm import speedrun as S

TINY = dict(vocab_size=256, seeds=2, lr=3e-3, muon_lr=0.02, max_grad_norm=1.0, d_model=16, n_layers=1, n_heads=2,
            block=16, batch=4, budget_steps=4, max_steps=6, eval_every=2, warmup_steps=2, valid_windows=4,
            train_bytes_per_source=2_000, valid_bytes_per_source=1_000, timing_rounds=2, timing_steps=1)


def ids(n, seed=0):
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed))


# -- Newton-Schulz -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('shape', [(6, 14), (14, 6), (9, 9)])
def test_newton_schulz_is_the_quintic_on_the_singular_values(shape):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    U, s, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    s = s / G.double().norm()
    a, b, c = S.NS_COEFFICIENTS
    for _ in range(5): s = a * s + b * s ** 3 + c * s ** 5
    out = S.newton_schulz(G)
    assert out.shape == G.shape and out.dtype == G.dtype
    assert_close(out.double(), (U * s) @ Vh, atol=1e-4, rtol=1e-4)
    sv = torch.linalg.svdvals(out)
    assert sv.min() > 0.6 and sv.max() < 1.25


def test_newton_schulz_scale_invariant_and_rejects_vectors():
    G = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    assert_close(S.newton_schulz(G * 1e4), S.newton_schulz(G), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='2-D'): S.newton_schulz(torch.randn(8))


def test_newton_schulz_bfloat16_equals_torchs_iteration():
    torch_ns = pytest.importorskip('torch.optim._muon')._zeropower_via_newtonschulz
    G = torch.randn(12, 20, generator=torch.Generator().manual_seed(3))
    for M in (G, G.T):
        assert_close(S.newton_schulz(M, dtype=torch.bfloat16), torch_ns(M, S.NS_COEFFICIENTS, 5, 1e-7).float())


# -- MuonAdamW -----------------------------------------------------------------------------------------------------
def _pair(ns_dtype, steps=4):
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=g) * 0.1 for s in ((8, 12), (20, 8), (10, 10), (10,))]
    ours, ref = [nn.Parameter(t.clone()) for t in init], [nn.Parameter(t.clone()) for t in init]
    opt = S.MuonAdamW([{'params': ours[:3], 'use_muon': True, 'lr': 0.02, 'weight_decay': 0.1, 'ns_dtype': ns_dtype},
                       {'params': ours[3:], 'lr': 1e-3, 'weight_decay': 0.01}])
    refs = [torch.optim.Muon(ref[:3], lr=0.02, weight_decay=0.1), torch.optim.AdamW(ref[3:], lr=1e-3, weight_decay=0.01)]
    for _ in range(steps):
        for a, b in zip(ours, ref): a.grad = b.grad = torch.randn(a.shape, generator=g)
        opt.step(); [r.step() for r in refs]
    return ours, ref


@pytest.mark.skipif(not hasattr(torch.optim, 'Muon'), reason='torch.optim.Muon needs torch >= 2.9')
def test_muon_adamw_equals_torch_muon_and_adamw():
    ours, ref = _pair('bfloat16')
    for a, b in zip(ours, ref): assert_close(a, b)
    ours, ref = _pair('float32')
    assert max((a - b).abs().max().item() for a, b in zip(ours, ref)) < 2e-3      # bfloat16 rounding only


def test_adamw_groups_equal_torch_adamw():
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(6, 4, generator=g), torch.randn(4, generator=g)]
    ours, ref = [nn.Parameter(t.clone()) for t in init], [nn.Parameter(t.clone()) for t in init]
    opt, r = S.MuonAdamW(ours, lr=1e-2, weight_decay=0.05), torch.optim.AdamW(ref, lr=1e-2, weight_decay=0.05)
    for _ in range(5):
        for a, b in zip(ours, ref): a.grad = b.grad = torch.randn(a.shape, generator=g)
        opt.step(); r.step()
    for a, b in zip(ours, ref): assert_close(a, b)


def test_muon_step_by_hand():
    "One step from zero momentum: m = (1-mu) g, u = (1-mu) g + mu m, W -= lr sqrt(max(1, A/B)) NS(u), after decay."
    W0, grad = torch.randn(12, 4), torch.randn(12, 4)
    p = nn.Parameter(W0.clone()); p.grad = grad.clone()
    S.MuonAdamW([{'params': [p], 'use_muon': True}], lr=0.1, weight_decay=0.5).step()
    u = 0.05 * grad + 0.95 * (0.05 * grad)
    assert_close(p.detach(), W0 * (1 - 0.1 * 0.5) - 0.1 * math.sqrt(3) * S.newton_schulz(u))


def test_muon_adamw_errors():
    with pytest.raises(ValueError, match='1-D'):
        S.MuonAdamW([{'params': [nn.Parameter(torch.zeros(4))], 'use_muon': True}])
    with pytest.raises(ValueError, match='ns_dtype'):
        S.MuonAdamW([nn.Parameter(torch.zeros(2, 2))], ns_dtype='float16')


def test_muon_param_names_split():
    gpt = MiniGPT(256, 8, 16, 2, 2)
    names = S.muon_param_names(gpt)
    assert names == [f'blocks.{i}.{n}.weight' for i in range(2) for n in ('attn.qkv', 'attn.proj', 'mlp.0', 'mlp.2')]
    untied = S.SpeedrunGPT(S.SpeedrunConfig(n_ctx=8, d_model=16, n_layers=1, n_heads=2, untied_head=True, qk_norm=True,
                                            swiglu=True, rmsnorm=True))
    names = S.muon_param_names(untied)
    assert 'lm_head.weight' not in names and 'wte.weight' not in names and 'wpe.weight' not in names
    assert all(untied.get_parameter(n).ndim == 2 for n in names) and 'blocks.0.mlp.gate_proj.weight' in names


def _lm_loader(n_batches=6, seed=0):
    data = ids(4000, seed)
    return S.speedrun_train_loader(data, {**TINY, 'max_steps': n_batches}, seed)


def test_opt_func_splits_learner_groups_and_resumes_from_a_checkpoint(tmp_path):
    def learner(cbs=()):
        set_seed(0)
        model = S.SpeedrunGPT(S.SpeedrunConfig(n_ctx=16, d_model=16, n_layers=1, n_heads=2, untied_head=True))
        return Learner(model, _lm_loader(), None, opt_func=S.muon_opt_func(model, muon_lr=0.05), lr=1e-3,
                       weight_decay=0.01, progress=False, cbs=cbs, device='cpu')
    a = learner(); a.fit(1)
    kinds = {(g['use_muon'], g['weight_decay'], g['lr']) for g in a.opt.param_groups}
    assert kinds == {(True, 0.01, 0.05), (False, 0.01, 1e-3), (False, 0.0, 1e-3)}   # the untied head: AdamW, decayed
    muon_names = {n for g in a.opt.param_groups if g['use_muon'] for n in g['names']}
    assert muon_names == set(S.muon_param_names(a.model))

    class StopAt3(S.Callback):
        def after_step(self):
            if self.learn.step == 3: raise S.CancelFitException()
    b = learner([CheckpointCB(tmp_path, every_steps=1), StopAt3()]); b.fit(1)
    c = learner([CheckpointCB(tmp_path, every_steps=1)]); c.fit(1, resume=tmp_path)
    assert c.step == a.step == 6
    for pa, pc in zip(a.model.state_dict().values(), c.model.state_dict().values()): assert_close(pa, pc)


# -- the model -----------------------------------------------------------------------------------------------------
def test_all_flags_off_is_minigpt():
    cfg = S.SpeedrunConfig(n_ctx=16, d_model=32, n_layers=2, n_heads=4)
    set_seed(3); ours = S.SpeedrunGPT(cfg)
    set_seed(3); ref = MiniGPT(256, 16, 32, 2, 4, use_sdpa=True)
    assert list(ours.state_dict()) == list(ref.state_dict()) and count_params(ours) == count_params(ref)
    for k, v in ref.state_dict().items(): assert_close(ours.state_dict()[k], v)
    x = ids(32).view(2, 16)
    with torch.no_grad():
        assert_close(ours(x, labels=x).loss, ref(x, labels=x).loss)


def test_each_flag_switches_its_technique():
    base = S.SpeedrunConfig(n_ctx=16, d_model=32, n_layers=2, n_heads=4)
    make = lambda **kw: S.SpeedrunGPT(S.SpeedrunConfig(**{**base.__dict__, **kw}))
    m0 = make()
    assert make(rope=True).wpe is None and m0.wpe is not None
    assert isinstance(make(rmsnorm=True).blocks[0].ln1, nn.RMSNorm) and isinstance(m0.blocks[0].ln1, nn.LayerNorm)
    sw = make(swiglu=True)
    mlp_params = lambda m: sum(p.numel() for p in m.blocks[0].mlp.parameters())
    assert abs(mlp_params(sw) / mlp_params(m0) - 1) < 0.05
    assert make(qk_norm=True).blocks[0].attn.q_norm is not None and m0.blocks[0].attn.q_norm is None
    un = make(untied_head=True)
    assert un.lm_head.weight is not un.wte.weight and m0.lm_head.weight is m0.wte.weight
    assert count_params(un) == count_params(m0) + 256 * 32
    z = make(zero_init_out=True, untied_head=True)
    for b in z.blocks:
        assert all((m.weight == 0).all() for m in b.out_projections())
    x = ids(32).view(2, 16)
    with torch.no_grad(): assert_close(z(x, labels=x).loss, torch.tensor(math.log(256)))   # zero head: uniform
    assert make(muon=True).state_dict().keys() == m0.state_dict().keys()    # the optimizer flag changes no weight


def test_config_and_forward_errors():
    with pytest.raises(ValueError, match='divisible'): S.SpeedrunConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match='even'): S.SpeedrunConfig(d_model=12, n_heads=4, rope=True)
    m = S.SpeedrunGPT(S.SpeedrunConfig(n_ctx=8, d_model=16, n_layers=1, n_heads=2, rope=True))
    with pytest.raises(ValueError, match='n_ctx'): m(torch.zeros(1, 9, dtype=torch.long))
    assert m(torch.zeros(1, 8, dtype=torch.long)).logits.shape == (1, 8, 256)


def test_ladder_is_cumulative():
    rungs = S.ladder_configs(TINY)
    assert list(rungs) == [n for n, _ in S.LADDER]
    flags = ('rope', 'rmsnorm', 'swiglu', 'qk_norm', 'untied_head', 'zero_init_out', 'muon')
    for k, cfg in enumerate(rungs.values()):
        assert [getattr(cfg, f) for f in flags] == [i < k for i in range(len(flags))]
    assert rungs['baseline'].d_model == TINY['d_model'] and rungs['baseline'].n_ctx == TINY['block']


# -- measuring -----------------------------------------------------------------------------------------------------
def test_loaders_fix_the_data_order_and_the_validation_windows():
    data = ids(3000)
    first = lambda seed: next(iter(S.speedrun_train_loader(data, TINY, seed)))['input_ids']
    assert torch.equal(first(0), first(0)) and not torch.equal(first(0), first(1))
    assert len(S.speedrun_train_loader(data, TINY, 0)) == TINY['max_steps']
    v = S.speedrun_valid_loader(data, TINY)
    assert sum(b['input_ids'].shape[0] for b in v) == TINY['valid_windows']


def test_reach_target_and_target_from_baseline():
    ev = [{'step': 2, 'bpb': 5.0, 'train_seconds': 0.1}, {'step': 4, 'bpb': 4.0, 'train_seconds': 0.2},
          {'step': 6, 'bpb': 3.9, 'train_seconds': 0.3}]
    assert S.reach_target(ev, 4.0) == (4, 0.2) and S.reach_target(ev, 3.95) == (6, 0.3) and S.reach_target(ev, 1) is None
    assert S.target_from_baseline([ev, [{**e, 'bpb': e['bpb'] + 1} for e in ev]], 4) == 4.5
    with pytest.raises(ValueError, match='multiple of eval_every'): S.target_from_baseline([ev], 5)


def test_rung_summary_and_verdict():
    s = S.rung_summary([10, 20, None], [0.1, 0.2])
    assert s['reached'] == 2 and math.isinf(s['time_mean']) and math.isinf(s['steps_mean']) and math.isinf(s['time_max'])
    s = S.rung_summary([10, 20], [0.1, 0.3, 0.2])
    assert s['sec_per_step'] == 0.2 and abs(s['time_mean'] - 3.0) < 1e-9 and s['time_min'] == 1.0 and abs(s['time_max'] - 6) < 1e-9
    assert S.verdict([1, 2], [3, 4]) == 'helps' and S.verdict([5, 6], [3, 4]) == 'hurts at this scale'
    assert S.verdict([1, 3.5], [3, 4]) == 'no clear effect' and S.verdict([math.inf], [math.inf]) == 'no clear effect'


def test_train_speedrun_evaluates_every_k_and_stops_at_the_target():
    data = ids(4000)
    cfg = S.ladder_configs(TINY)['baseline']
    ev = S.train_speedrun(cfg, data, ids(1000, 1), TINY, seed=0)
    assert [e['step'] for e in ev] == [2, 4, 6]
    assert all(0 < e['train_seconds'] <= e['wall_seconds'] for e in ev) and all(0 < e['bpb'] < 9 for e in ev)
    again = S.train_speedrun(cfg, data, ids(1000, 1), TINY, seed=0)
    assert [e['bpb'] for e in again] == [e['bpb'] for e in ev]                 # same seed, same run
    stopped = S.train_speedrun(cfg, data, ids(1000, 1), TINY, seed=0, target=ev[1]['bpb'])
    assert [e['step'] for e in stopped] == [2, 4]
    muon = S.train_speedrun(S.ladder_configs(TINY)['muon'], data, ids(1000, 1), TINY, seed=0)
    assert len(muon) == 3
    with pytest.raises(ValueError, match='every'): S.EvalEveryCB(None, 0)


def test_seconds_per_step_times_every_config_each_round():
    rungs = S.ladder_configs(TINY)
    t = S.seconds_per_step({k: rungs[k] for k in ('baseline', 'muon')}, ids(3000), TINY)
    assert set(t) == {'baseline', 'muon'} and all(len(v) == TINY['timing_rounds'] and min(v) > 0 for v in t.values())


def test_warmup_then_constant_and_sizes():
    p = nn.Parameter(torch.zeros(1)); opt = torch.optim.SGD([p], lr=1.0)
    sch = S.warmup_then_constant(4)(opt, 100)
    lrs = []
    for _ in range(6): lrs.append(opt.param_groups[0]['lr']); opt.step(); sch.step()
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    for profile in ('smoke', 'workshop', 'full'):
        sz = S.speedrun_sizes(profile)
        assert sz['budget_steps'] % sz['eval_every'] == 0 and sz['max_steps'] >= sz['budget_steps'] and sz['seeds'] >= 3
