"""course_lib against nanoGPT's own train.py: same character-level Shakespeare data, same model size, on the CPU.

nanoGPT is not part of this project: give the path of a local checkout (https://github.com/karpathy/nanoGPT) with
`--nanogpt-dir` or the NANOGPT_DIR environment variable. Without one the benchmark prints how to get one and exits
cleanly (exit code 0). Nothing of nanoGPT is copied into the repository: its train.py runs from the checkout, in a
temporary folder that holds the data in nanoGPT's format (train.bin, val.bin, meta.pkl, made here from the course's
data/shakespeare.txt) and a copy of its configurator.py, which train.py reads from the working directory.

What is compared, in one run of this script:
  1. nanoGPT's train.py for --iters iterations (its own model, AdamW, warmup + cosine schedule, gradient clipping);
     its training throughput from its own per-iteration times, and its wall time for the training iterations.
  2. course_lib's Learner training a transformers GPT2LMHeadModel of the same size with the same optimizer settings
     and schedule, on random windows of the same training data (gathered per batch, as nanoGPT's get_batch does),
     for the same wall time as nanoGPT's training (or the same number of iterations, if it gets there first);
     then the same with the course's own MiniGPT (chapter 31, PyTorch's fused attention), which separates the
     cost of the training loop from the cost of the model implementation.
  3. Validation loss of each after that wall time, on random windows of the same validation split.

Differences that remain, stated rather than hidden: transformers' GPT-2 uses the tanh GELU approximation and has
biases (nanoGPT is run with bias=True to match); nanoGPT puts weight decay on weight matrices only, the Learner on
all parameters; nanoGPT counts block_size targets per window, GPT2LMHeadModel block_size - 1.

    NANOGPT_DIR=~/src/nanoGPT python benchmarks/nanogpt_compare.py            # about 2 minutes on 2 cores
    python benchmarks/nanogpt_compare.py --nanogpt-dir ../nanoGPT --iters 200  # shorter
"""
import argparse, math, os, pickle, re, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch

from course_lib.core import env_report, set_seed, data_path
from course_lib.train.learner import Learner, Callback, CancelFitException


def prepare(workdir: Path, dataset: str):
    "nanoGPT's char-level format: uint16 ids in train.bin / val.bin (90/10 split), vocabulary in meta.pkl."
    text = data_path('shakespeare.txt').read_text(encoding='utf-8')
    chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(ids))
    d = workdir / 'data' / dataset; d.mkdir(parents=True)
    ids[:n].tofile(d / 'train.bin'); ids[n:].tofile(d / 'val.bin')
    with open(d / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': len(chars), 'itos': dict(enumerate(chars)), 'stoi': stoi}, f)
    return torch.from_numpy(ids[:n].astype(np.int64)), torch.from_numpy(ids[n:].astype(np.int64)), len(chars)


def run_nanogpt(nanogpt: Path, workdir: Path, dataset: str, a):
    shutil.copy(nanogpt / 'configurator.py', workdir / 'configurator.py')
    cmd = [sys.executable, str(nanogpt / 'train.py'), f'--dataset={dataset}', '--device=cpu', '--compile=False',
           '--dtype=float32', f'--n_layer={a.n_layer}', f'--n_head={a.n_head}', f'--n_embd={a.n_embd}',
           f'--block_size={a.block_size}', f'--batch_size={a.batch_size}', '--gradient_accumulation_steps=1',
           '--dropout=0.0', '--bias=True', f'--learning_rate={a.lr}', f'--min_lr={a.lr / 10}', f'--max_iters={a.iters}',
           f'--lr_decay_iters={a.iters}', f'--warmup_iters={a.warmup}', '--beta2=0.99', '--weight_decay=0.1',
           f'--eval_interval={a.iters}', f'--eval_iters={a.eval_iters}', '--log_interval=1',
           '--always_save_checkpoint=False', '--out_dir=out', '--wandb_log=False']
    print('nanoGPT:', ' '.join(cmd[1:]), flush=True)
    env = dict(os.environ, PYTHONPATH=str(nanogpt))
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        raise SystemExit(f'nanoGPT train.py failed (exit {proc.returncode}); its output is above')
    times = [float(m) / 1000 for m in re.findall(r'^iter \d+: loss [\d.]+, time ([\d.]+)ms', proc.stdout, re.M)]
    vals = re.findall(r'^step (\d+): train loss ([\d.]+), val loss ([\d.]+)', proc.stdout, re.M)
    if len(times) < 10 or not vals:
        raise SystemExit('could not read iteration times and validation losses from nanoGPT output:\n' + proc.stdout[-2000:])
    # iteration 0's time includes the first evaluation; skip the first 5, as nanoGPT does for its MFU
    steady = statistics.median(times[5:])
    train_seconds = sum(times[1:])          # the training iterations (the first logged time includes start-up)
    return dict(tokens_per_s=a.batch_size * a.block_size / steady, train_seconds=train_seconds,
                val_loss=float(vals[-1][2]), iters=len(times))


class RandomBatches(torch.utils.data.IterableDataset):
    "Endless batches of random windows of the ids, gathered at once like nanoGPT's get_batch, as dict batches."
    def __init__(self, ids, T, batch_size, seed): self.ids, self.T, self.bs, self.seed = ids, T, batch_size, seed
    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        offsets = torch.arange(self.T)
        while True:
            x = self.ids[torch.randint(len(self.ids) - self.T, (self.bs, 1), generator=g) + offsets]
            yield {'input_ids': x, 'labels': x}


class TimeLimit(Callback):
    "Stop training after `seconds` of wall time, counted from the first step; count the steps."
    def __init__(self, seconds): self.seconds = seconds
    def before_fit(self): self.start, self.steps = time.perf_counter(), 0
    def after_step(self):
        self.steps += 1
        if time.perf_counter() - self.start >= self.seconds: self.elapsed = time.perf_counter() - self.start; raise CancelFitException()


def run_course(train_ids, val_ids, vocab, seconds, a, model_name='gpt2'):
    "model_name 'gpt2': transformers' GPT2LMHeadModel; 'minigpt': the course's own MiniGPT (chapter 31) with SDPA."
    set_seed(0)
    if model_name == 'gpt2':
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=vocab, n_positions=a.block_size, n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(cfg)
    else:
        from course_lib.algorithms.attention import MiniGPT
        model = MiniGPT(vocab, a.block_size, a.n_embd, a.n_layer, a.n_head, use_sdpa=True)
    train_dl = torch.utils.data.DataLoader(RandomBatches(train_ids, a.block_size, a.batch_size, 0), batch_size=None)
    limit = TimeLimit(seconds)
    import functools
    learn = Learner(model, train_dl, None, lr=a.lr, weight_decay=0.1, metrics={}, device='cpu', precision='fp32',
                    opt_func=functools.partial(torch.optim.AdamW, betas=(0.9, 0.99)), schedule='cosine',
                    warmup=a.warmup / a.iters, max_grad_norm=1.0, cbs=[limit], progress=False)
    # the schedule spans nanoGPT's iteration count; training stops at nanoGPT's wall time or after as many iterations
    learn.fit(1, max_steps=a.iters)
    elapsed = getattr(limit, 'elapsed', time.perf_counter() - limit.start)
    val_dl = torch.utils.data.DataLoader(RandomBatches(val_ids, a.block_size, a.batch_size, 1), batch_size=None)
    batches = [b for b, _ in zip(val_dl, range(a.eval_iters))]
    val_loss = learn.evaluate(batches)['loss']
    return dict(tokens_per_s=limit.steps * a.batch_size * a.block_size / elapsed, train_seconds=elapsed,
                val_loss=val_loss, iters=limit.steps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--nanogpt-dir', default=os.environ.get('NANOGPT_DIR'))
    ap.add_argument('--iters', type=int, default=1000)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--batch-size', type=int, default=12)
    ap.add_argument('--block-size', type=int, default=64)
    ap.add_argument('--n-layer', type=int, default=4)
    ap.add_argument('--n-head', type=int, default=4)
    ap.add_argument('--n-embd', type=int, default=128)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--eval-iters', type=int, default=50)
    a = ap.parse_args(argv)
    nanogpt = Path(a.nanogpt_dir).expanduser() if a.nanogpt_dir else None
    if nanogpt is None or not (nanogpt / 'train.py').exists() or not (nanogpt / 'model.py').exists():
        print('nanoGPT comparison skipped: no nanoGPT checkout given. Clone https://github.com/karpathy/nanoGPT '
              'somewhere outside this repository and run again with NANOGPT_DIR=/path/to/nanoGPT '
              f'(given: {a.nanogpt_dir!r}).')
        return None
    env_report(device='cpu')
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        train_ids, val_ids, vocab = prepare(workdir, 'course_shakespeare_char')
        ng = run_nanogpt(nanogpt, workdir, 'course_shakespeare_char', a)
    print(f"nanoGPT:    {ng['iters']} iterations, {ng['tokens_per_s']:,.0f} tokens/s, "
          f"{ng['train_seconds']:.1f} s of training, val loss {ng['val_loss']:.4f}", flush=True)
    rows = [('nanoGPT train.py', ng)]
    for model_name, label in (('gpt2', 'course_lib Learner + transformers GPT2LMHeadModel'),
                              ('minigpt', 'course_lib Learner + course_lib MiniGPT (SDPA)')):
        cl = run_course(train_ids, val_ids, vocab, ng['train_seconds'], a, model_name)
        print(f"{label}: {cl['iters']} iterations, {cl['tokens_per_s']:,.0f} tokens/s, "
              f"{cl['train_seconds']:.1f} s of training, val loss {cl['val_loss']:.4f}", flush=True)
        rows.append((label, cl))
    print('\n| | iterations | tokens/s | training time (s) | val loss | tokens/s vs nanoGPT | val loss - nanoGPT |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    for name, r in rows:
        print(f"| {name} | {r['iters']} | {r['tokens_per_s']:,.0f} | {r['train_seconds']:.1f} | {r['val_loss']:.4f} | "
              f"{r['tokens_per_s'] / ng['tokens_per_s']:.3f} | {r['val_loss'] - ng['val_loss']:+.4f} |")
    return rows


if __name__ == '__main__':
    main()
