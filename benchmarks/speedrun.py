"""Reproduce a row of the speedrun record table (benchmarks/SPEEDRUN.md): time to the target validation bits per byte.

Everything it runs comes from course_lib.llm.speedrun (chapter 63): the data, the model, the optimizer, the
evaluation callback and the timing loop. Steps:

1. the target: unless --target is given, the baseline (the GPT-2 block) is trained with every seed to its step cap,
   and the target is its mean validation bpb at the profile's step budget;
2. the recipe is trained with the same seeds (same data order), each run stopped at its first evaluation at or
   below the target;
3. seconds per step of the baseline and the recipe, in one interleaved timing loop in this process;
4. time-to-target = steps-to-target x seconds per step (not reached = infinite), mean and min-max over seeds and
   timing rounds, and the speed-up over the baseline.

    python benchmarks/speedrun.py --recipe muon --seeds 3 --profile workshop
    python benchmarks/speedrun.py --recipe swiglu --seeds 3 --profile smoke
    python benchmarks/speedrun.py --recipe muon --seeds 5 --profile workshop --target 2.9   # a fixed target
"""
import argparse, datetime, math, os, platform, sys, time
import torch

from course_lib.core import env_report
from course_lib.llm.speedrun import (LADDER, speedrun_sizes, speedrun_data, ladder_configs, run_recipe, reach_target,
                                     target_from_baseline, seconds_per_step, rung_summary, verdict)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--recipe', default='muon', choices=[name for name, _ in LADDER],
                    help="a rung of the ladder; each includes every technique below it ('muon' = the whole modern recipe)")
    ap.add_argument('--seeds', type=int, default=3, help='number of seeds (0, 1, ...); a record needs at least 3')
    ap.add_argument('--profile', default=os.environ.get('COURSE_PROFILE', 'workshop'), choices=['smoke', 'workshop', 'full'])
    ap.add_argument('--target', type=float, default=None,
                    help="target validation bpb; default: measured from the baseline's seeds (as the notebook does)")
    args = ap.parse_args(argv)
    if args.seeds < 1: ap.error('--seeds must be at least 1 (3 or more for a record)')
    env_report(profile=args.profile)
    sizes = {**speedrun_sizes(args.profile), 'seeds': args.seeds}
    seeds = list(range(args.seeds))
    train_ids, valid_ids = speedrun_data(sizes)
    rungs = ladder_configs(sizes)
    t0 = time.perf_counter()
    histories, target = {}, args.target
    if target is None:
        histories['baseline'] = run_recipe(rungs['baseline'], train_ids, valid_ids, sizes, seeds)
        target = target_from_baseline(histories['baseline'], sizes['budget_steps'])
        print(f"target {target:.4f} bpb: the baseline's mean validation bpb at step {sizes['budget_steps']} over {args.seeds} seeds")
    if args.recipe not in histories:
        histories[args.recipe] = run_recipe(rungs[args.recipe], train_ids, valid_ids, sizes, seeds, target)
    if 'baseline' not in histories and args.recipe != 'baseline':
        histories['baseline'] = run_recipe(rungs['baseline'], train_ids, valid_ids, sizes, seeds, target)
    timed = {name: rungs[name] for name in dict.fromkeys(['baseline', args.recipe])}
    round_seconds = seconds_per_step(timed, train_ids, sizes)
    print(f'trained and timed in {time.perf_counter() - t0:.0f} s')

    summary = {}
    for name in timed:
        steps = [(r or (None,))[0] for r in (reach_target(h, target) for h in histories[name])]
        summary[name] = rung_summary(steps, round_seconds[name])
    fmt = lambda t: 'not reached' if math.isinf(t) else f'{t:.2f}'
    for name, s in summary.items():
        print(f"{name:14} steps-to-target per seed {s['steps']}; {s['sec_per_step'] * 1e3:.1f} ms/step; time-to-target "
              f"mean {fmt(s['time_mean'])} s, min-max {fmt(s['time_min'])}-{fmt(s['time_max'])} s "
              f"({s['reached']}/{s['seeds']} seeds reached)")
    rec, base = summary[args.recipe], summary['baseline']
    if args.recipe != 'baseline':
        print(f"speed-up over the baseline {base['time_mean'] / rec['time_mean']:.2f}x; verdict: "
              f"{verdict(rec['times'], base['times'])}")
    cmd = f'python benchmarks/speedrun.py --recipe {args.recipe} --seeds {args.seeds} --profile {args.profile}'
    if args.target is not None: cmd += f' --target {args.target}'
    machine = f'{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)'
    print('row for benchmarks/SPEEDRUN.md:')
    print(f"| {datetime.date.today()} | {machine} | `{cmd}` | {args.recipe} | {fmt(rec['time_mean'])} "
          f"({fmt(rec['time_min'])}-{fmt(rec['time_max'])}) | {args.seeds} |")


if __name__ == '__main__':
    sys.exit(main())
