"""GPT-2 124M training throughput, MFU and peak memory with course_lib's fast path, each switch on and off.

Runs the course's Learner on the GPT-2 small configuration (12 layers, 12 heads, 768 wide, context 1024,
vocabulary 50257 padded to 50304 when `pad_vocab` is on) with `course_lib.train.performance.FastPath`: first every switch on,
then each switch off in turn, then every switch off. For each configuration it prints tokens/s (timed after a
few warm-up steps, which include compilation), model TFLOP/s (for the trained sequence length T), MFU against the
GPU's dense bf16 peak (unknown on a GPU whose exact name is not in `course_lib.train.performance.GPU_MODELS`, and on a
CPU), the CUDA allocator's peak memory, and
the ratio to the all-on configuration, all measured in this one process. Gradient checkpointing is off in
"all on" and measured as its own row (it trades time for memory).

Token ids are drawn at random: throughput does not depend on which tokens the model sees.

    python benchmarks/gpt_fastpath.py                    # on a GPU: the GPT-2 124M measurement
    python benchmarks/gpt_fastpath.py --tiny --steps 6   # a small model: checks the script on a CPU
"""
import argparse, dataclasses, gc, os, time
import torch

from course_lib.core import env_report, get_device, set_seed
from course_lib.train.learner import Learner, Callback, CancelFitException
from course_lib.train.performance import FastPath, MFUCB, peak_flops, peak_memory_mb, reset_peak_memory, gpt2_flops_per_token


class Windows(torch.utils.data.Dataset):
    "Random token windows as {'input_ids', 'labels'} dicts (a fixed generator: every configuration sees the same)."
    def __init__(self, n, T, vocab, seed=0):
        self.ids = torch.randint(0, vocab, (n, T), generator=torch.Generator().manual_seed(seed))
    def __len__(self): return len(self.ids)
    def __getitem__(self, i): return {'input_ids': self.ids[i], 'labels': self.ids[i]}


class StepTimer(Callback):
    "Time the optimizer steps after `warmup` steps (CUDA synchronised), then stop after `steps` timed steps."
    order = -20
    def __init__(self, warmup, steps, tokens_per_step, device):
        self.warmup, self.steps, self.tps, self.device = warmup, steps, tokens_per_step, device
    def _sync(self):
        if self.device.type == 'cuda': torch.cuda.synchronize(self.device)
    def before_fit(self): self.n, self.start = 0, None
    def after_step(self):
        self.n += 1
        if self.n == self.warmup: self._sync(); self.start = time.perf_counter()
        if self.n == self.warmup + self.steps:
            self._sync(); self.seconds = time.perf_counter() - self.start
            raise CancelFitException()
    @property
    def tokens_per_s(self): return self.steps * self.tps / self.seconds


def run_config(name, fp, args, device, sizes):
    set_seed(0)
    gc.collect()
    if device.type == 'cuda': torch.cuda.empty_cache()
    reset_peak_memory(device)
    model = fp.gpt2_model(vocab_size=sizes['vocab'], n_layer=sizes['n_layer'], n_head=sizes['n_head'],
                          n_embd=sizes['n_embd'], n_positions=sizes['T'], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    n_steps = args.warmup + args.steps
    ds = Windows(n_steps * args.batch_size, sizes['T'], sizes['vocab'])
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=False, **fp.loader_kwargs(device))
    timer = StepTimer(args.warmup, args.steps, args.batch_size * sizes['T'], device)
    learn = Learner(model, dl, None, lr=6e-4, weight_decay=0.1, metrics={}, cbs=[timer], device=device,
                    progress=False, max_grad_norm=1.0, **fp.learner_kwargs(device))
    learn.fit(1)
    fpt = gpt2_flops_per_token(model, seq_len=sizes['T'])      # the length trained on, not n_positions
    peak, _ = peak_flops(device)
    tps = timer.tokens_per_s
    row = dict(config=name, tokens_per_s=tps, tflops=tps * fpt / 1e12, mfu=None if peak is None else tps * fpt / peak,
               peak_mib=peak_memory_mb(device) if device.type == 'cuda' else None,
               compiled=learn._forward_model is not learn.model)
    del learn, model
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default=None, help='default: CUDA, then MPS, then CPU')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--warmup', type=int, default=10, help='untimed steps first (compilation happens here)')
    ap.add_argument('--steps', type=int, default=30, help='timed steps')
    ap.add_argument('--tiny', action='store_true', help='a 2-layer, 128-wide model with context 128 (for CPU checks)')
    ap.add_argument('--only', nargs='*', default=None, help='configuration names to run (default: all)')
    args = ap.parse_args(argv)
    device = get_device(args.device)
    env_report(device=device)
    sizes = (dict(vocab=50257, n_layer=2, n_head=4, n_embd=128, T=128) if args.tiny else
             dict(vocab=50257, n_layer=12, n_head=12, n_embd=768, T=1024))
    print(f"model: {sizes}, batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps")
    on = FastPath()
    configs = [('all on', on)]
    for f in dataclasses.fields(FastPath):
        if f.name != 'grad_checkpointing': configs.append((f'{f.name} off', dataclasses.replace(on, **{f.name: False})))
    configs += [('all on + grad_checkpointing', dataclasses.replace(on, grad_checkpointing=True)),
                ('all off', FastPath.off())]
    if args.only: configs = [c for c in configs if c[0] in args.only]
    print('switches on this device:'); on.describe(device)
    rows = []
    for name, fp in configs:
        try:
            rows.append(run_config(name, fp, args, device, sizes))
        except torch.OutOfMemoryError:
            rows.append(dict(config=name, error='out of memory: lower --batch-size'))
        r = rows[-1]
        print(f"  {name:<28} " + (r['error'] if 'error' in r else
              f"{r['tokens_per_s']:>10,.0f} tokens/s  {r['tflops']:8.2f} TFLOP/s  "
              f"MFU {'unknown' if r['mfu'] is None else format(r['mfu'], '.1%')}  "
              f"peak {'n/a' if r['peak_mib'] is None else format(r['peak_mib'], ',.0f') + ' MiB'}"), flush=True)
    base = rows[0].get('tokens_per_s')
    print('\n| configuration | tokens/s | model TFLOP/s | MFU | peak memory (MiB) | throughput vs all on |')
    print('|---|---:|---:|---:|---:|---:|')
    for r in rows:
        if 'error' in r: print(f"| {r['config']} | {r['error']} | | | | |"); continue
        print(f"| {r['config']} | {r['tokens_per_s']:,.0f} | {r['tflops']:.2f} | "
              f"{'unknown' if r['mfu'] is None else format(r['mfu'], '.1%')} | "
              f"{'n/a (CPU)' if r['peak_mib'] is None else format(r['peak_mib'], ',.0f')} | "
              f"{r['tokens_per_s'] / base:.3f} |")
    return rows


if __name__ == '__main__':
    main()
