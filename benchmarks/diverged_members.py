"""What leaving diverged runs behind buys on a CPU: one batched group of MNIST MLP runs, most of which
diverge in the first epoch, trained by ``hypernb.run`` with the runs still training leaving the
diverged ones behind (the default) against the same group computing every member to the end.

    python benchmarks/diverged_members.py                 # 8 Adam/Adam runs, 6 diverge (κ = 10³), 7 repetitions
    python benchmarks/diverged_members.py --quick         # a smoke run

Both arms run in one process, interleaved repetition by repetition, each the whole ``run()`` (data
loading, training, evaluation, records in memory); the row "kept again" times the baseline against
itself (the noise floor of the ratio). Both arms give the same results (``tests/test_batch.py``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from hypernb import run, train
from hypernb.bench import median_ci
from hypernb.io import git_commit


def _group(args) -> list[dict]:
    base = dict(task="mnist-mlp", profile="smoke", train_limit=args.train_limit, test_limit=2000, batch_size=128,
                epochs=args.epochs, quiet=True, log_every=10, optimizer="adam/adam", device="cpu")
    return [dict(base, kappa=1e3 if i < args.diverging else 1e-4, seeds=[i]) for i in range(args.runs)]


def _timed(configs, leave: bool) -> tuple[float, list]:
    train.LEAVE_DIVERGED_ON_CPU = leave
    try:
        t0 = time.perf_counter()
        results = run(configs)
        return time.perf_counter() - t0, results
    finally:
        train.LEAVE_DIVERGED_ON_CPU = True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--diverging", type=int, default=6)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-limit", type=int, default=20000)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    if args.quick:
        args.reps, args.epochs, args.train_limit, args.runs, args.diverging = 1, 2, 1280, 3, 2
    torch.set_num_threads(1)
    configs = _group(args)
    _timed(configs, True)  # warm-up: data loaded and cached, kernels initialised
    times = {"kept": [], "left behind": [], "kept again": []}
    for _ in range(args.reps):
        t_kept, kept = _timed(configs, False)
        t_left, left = _timed(configs, True)
        t_again, _ = _timed(configs, False)
        times["kept"].append(t_kept)
        times["left behind"].append(t_left)
        times["kept again"].append(t_again)
        statuses = [[s.status for s in r.seeds] for r in kept]
        assert statuses == [[s.status for s in r.seeds] for r in left], "the arms must train the same runs"
    diverged = sum(s == ["diverged"] for s in statuses)
    out = {"commit": git_commit(), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": 1, "runs": args.runs, "diverged": diverged, "epochs": args.epochs, "reps": args.reps,
           "seconds": {k: statistics.median(v) for k, v in times.items()}, "rows": []}
    print(f"{args.runs} MNIST MLP runs (Adam/Adam, {args.epochs} epochs of {args.train_limit} examples), "
          f"{diverged} diverged; {args.reps} repetitions at {out['commit']}")
    for name, base in (("left behind", "kept"), ("kept again", "kept")):
        speedup = [b / a for a, b in zip(times[name], times[base])]
        med, low, high = median_ci(speedup)
        ci = "" if low is None else f" [{low:.2f}, {high:.2f}]"
        print(f"  {name:12s} {statistics.median(times[name]):6.2f} s   {med:.2f}×{ci} faster than kept "
              f"({statistics.median(times[base]):.2f} s)")
        out["rows"].append({"arm": name, "speedup": med, "ci": [low, high]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
