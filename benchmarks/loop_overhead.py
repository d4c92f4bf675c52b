"""How much does course_lib's Learner cost over a plain, hand-written PyTorch loop?

Both loops train the same model on the same data from the same seed, in this one process, alternating
(plain, course, course, plain, ...) so that drifts in machine speed hit both equally. The Learner runs as
learners use it: progress bars on, full history of every step and epoch. The plain loop logs the loss with
`loss.item()` each step and evaluates once per epoch, as a careful hand-written loop does.

Prints, per workload, the median wall time of each loop, their ratio (goal: <= 1.03 on CPU) and the final
validation losses (which must agree: same computation).

    python benchmarks/loop_overhead.py                # digits MLP and a small transformers GPT
    python benchmarks/loop_overhead.py --repeats 5 --only gpt
    python benchmarks/loop_overhead.py --device cuda      # the same comparison on a GPU
"""
import argparse, math, os, platform, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from course_lib.core import set_seed, data_path, env_report, get_device
from course_lib.train.learner import to_device
from course_lib.train.learner import Learner
from course_lib.core import load_digits_splits
from course_lib.train.learner import MLP


def digits_workload():
    s = load_digits_splits()
    def make():
        set_seed(0)
        return (MLP(), DataLoader(TensorDataset(*s['train']), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*s['valid']), batch_size=256))
    return make, 'tuple', 20


class CharWindows(torch.utils.data.Dataset):
    "Non-overlapping windows of character ids, as {'input_ids', 'labels'} dicts."
    def __init__(self, ids, block): self.ids, self.block = ids, block
    def __len__(self): return (len(self.ids) - 1) // self.block
    def __getitem__(self, i):
        x = self.ids[i * self.block:(i + 1) * self.block]
        return {'input_ids': x, 'labels': x}


def gpt_workload():
    from transformers import GPT2Config, GPT2LMHeadModel
    text = data_path('shakespeare.txt').read_text(encoding='utf-8')[:200_000]
    vocab = sorted(set(text)); stoi = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([stoi[c] for c in text])
    split = int(0.9 * len(ids)); block = 64
    def make():
        set_seed(0)
        config = GPT2Config(vocab_size=len(vocab), n_positions=block, n_embd=128, n_layer=4, n_head=4)
        model = GPT2LMHeadModel(config)
        return (model, DataLoader(CharWindows(ids[:split], block), batch_size=16, shuffle=True),
                DataLoader(CharWindows(ids[split:], block), batch_size=64))
    return make, 'dict', 1


DEVICE = torch.device('cpu')


def plain_fit(model, train_dl, valid_dl, kind, epochs, lr=1e-3):
    "The hand-written baseline: forward, loss, backward, step; loss.item() logged each step; eval per epoch."
    model.to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for epoch in range(epochs):
        model.train()
        for batch in train_dl:
            batch = to_device(batch, DEVICE)
            if kind == 'dict': loss = model(**batch).loss
            else: loss = F.cross_entropy(model(batch[0]), batch[1])
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        model.eval(); total, count = 0.0, 0
        with torch.no_grad():
            for batch in valid_dl:
                batch = to_device(batch, DEVICE)
                if kind == 'dict': l, n = model(**batch).loss, len(batch['input_ids'])
                else: l, n = F.cross_entropy(model(batch[0]), batch[1]), len(batch[1])
                total += l.item() * n; count += n
        valid_loss = total / count
    return valid_loss


def course_fit(model, train_dl, valid_dl, kind, epochs, lr=1e-3):
    learn = Learner(model, train_dl, valid_dl, None if kind == 'dict' else F.cross_entropy, lr=lr, device=DEVICE,
                    progress=True, precision='fp32')
    learn.fit(epochs)
    assert len(learn.history.steps) == epochs * len(train_dl)
    return learn.history.epochs[-1]['valid_loss']


def measure(name, workload, repeats):
    make, kind, epochs = workload()
    times = {'plain': [], 'course_lib': []}; losses = {}
    order = ['plain', 'course_lib']
    for which in order:   # untimed warm-up of both: first-call costs (allocator, imports, kernels) are not the loop's
        model, train_dl, valid_dl = make()
        (plain_fit if which == 'plain' else course_fit)(model, train_dl, valid_dl, kind, 1)
    for r in range(repeats):
        for which in (order if r % 2 == 0 else order[::-1]):
            model, train_dl, valid_dl = make()
            fit = plain_fit if which == 'plain' else course_fit
            start = time.perf_counter()
            losses[which] = fit(model, train_dl, valid_dl, kind, epochs)
            times[which].append(time.perf_counter() - start)
    p, c = statistics.median(times['plain']), statistics.median(times['course_lib'])
    print(f"\n{name}: plain {p:.2f} s, course_lib {c:.2f} s (medians of {repeats}); ratio course_lib/plain = {c / p:.3f}; "
          f"final valid loss plain {losses['plain']:.4f}, course_lib {losses['course_lib']:.4f}", flush=True)
    return {'workload': name, 'plain_s': p, 'course_s': c, 'ratio': c / p, 'loss_plain': losses['plain'],
            'loss_course': losses['course_lib'], 'repeats': repeats}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--only', choices=['digits', 'gpt'], default=None)
    ap.add_argument('--device', default='cpu', help="'cpu' (default), 'cuda' or 'mps'")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = get_device(args.device)
    os.environ.setdefault('COURSE_PROGRESS', 'text')
    env_report(device=DEVICE)
    results = []
    if args.only in (None, 'digits'): results.append(measure('digits MLP 64-500-10, 20 epochs', digits_workload, args.repeats))
    if args.only in (None, 'gpt'): results.append(measure('GPT2LMHeadModel 4x128, char Shakespeare 180k chars, 1 epoch', gpt_workload, args.repeats))
    print('\n| workload | plain loop (s) | course_lib (s) | ratio | valid loss plain / course_lib |')
    print('|---|---:|---:|---:|---|')
    for r in results:
        print(f"| {r['workload']} | {r['plain_s']:.2f} | {r['course_s']:.2f} | {r['ratio']:.3f} | {r['loss_plain']:.4f} / {r['loss_course']:.4f} |")
    return results


if __name__ == '__main__':
    main()
