"""Throughput of many configurations at once: configuration-steps per second, K configurations
trained as one batched model against the same K trained one after the other.

    python benchmarks/throughput.py                       # CPU: MNIST MLP K=20, ResNet-20 K=9, char-LSTM K=6
    python benchmarks/throughput.py --device cuda --mlp-k 60
    python benchmarks/throughput.py --quick               # a smoke run of every row
    python benchmarks/throughput.py --compiled            # CPU: both arms with compiled=True

Each configuration is Adam/SGD (the pair of the paper's MNIST table, on the MLP with free logits; SGD/SGD with momentum for ResNet-20)
with its own α0 and κ and its own initialisation, on its own random batch of the task's shape
(data already on the device, as in ``hypernb.run``); a step is zero_grad, forward, backward and the
optimizer step. Both arms are measured in one process, interleaved repetition by repetition; the
row "sequential again" times the sequential arm against itself (the noise floor of the ratio).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from hypernb import models, optim
from hypernb.bench import device_name, median_ci, sync
from hypernb.io import git_commit

TASKS = {
    "mnist-mlp": dict(make=lambda: models.MLP(), x=(256, 1, 28, 28), classes=10, spec="adam/sgd", alpha=1e-3,
                      kappa=1e-5),
    "resnet20": dict(make=lambda: models.ResNet20(), x=(128, 3, 32, 32), classes=10, spec="sgd/sgd", alpha=0.1,
                     kappa=1e-6, mu=0.9),
    "char-lstm": dict(make=lambda: models.CharLSTM(82, hidden=128), x=(128, 100), classes=82, spec="adam/sgd",
                      alpha=2e-3, kappa=1e-5),
}


def _configs(task: dict, K: int, device):
    """K (model, α0, κ) with their own initialisation; α0 and κ spread over a factor of 4."""
    out = []
    for k in range(K):
        torch.manual_seed(k)
        f = 2.0 ** (2 * k / max(K - 1, 1) - 1)
        out.append((task["make"]().to(device), task["alpha"] * f, task["kappa"] * f))
    return out


def _data(task: dict, K: int, device, lstm: bool):
    gen = torch.Generator().manual_seed(0)
    if lstm:
        x = torch.randint(0, task["classes"], (K, *task["x"]), generator=gen)
        return x.to(device), None
    return (torch.rand(K, *task["x"], generator=gen).to(device),
            torch.randint(0, task["classes"], (K, task["x"][0]), generator=gen).to(device))


def _loss(out, y, lstm):
    if lstm:  # next-character prediction: the model saw the window without its last character
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y[..., 1:].reshape(-1))
    return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def sequential_steps(task, K, device, lstm, compiled=False):
    """One step function per configuration (its own model and optimizer), run one after the other."""
    x, y = _data(task, K, device, lstm)
    steps = []
    for k, (model, alpha, kappa) in enumerate(_configs(task, K, device)):
        kw = {"mu": task["mu"]} if "mu" in task else {}
        opt = optim.tower(task["spec"], model.parameters(), alpha=alpha, kappa=kappa, compiled=compiled, **kw)

        def step(model=model, opt=opt, xk=x[k], yk=(x[k] if lstm else y[k])):
            opt.zero_grad()
            _loss(model(xk[:, :-1] if lstm else xk), yk, lstm).backward()
            opt.step()
        steps.append(step)

    def all_steps():
        for s in steps:
            s()
    return all_steps


def batched_step(task, K, device, lstm, compiled=False):
    """One batched model and one optimizer with batch=K."""
    x, y = _data(task, K, device, lstm)
    cfgs = _configs(task, K, device)
    model = models.batched([m for m, _, _ in cfgs]).to(device)
    kw = {"mu": [task["mu"]] * K} if "mu" in task else {}
    opt = optim.tower(task["spec"], model.parameters(), alpha=[a for _, a, _ in cfgs],
                      kappa=[[kk for _, _, kk in cfgs]], batch=K, compiled=compiled, **kw)

    def step():
        opt.zero_grad()
        out = model(x[:, :, :-1] if lstm else x)
        n = out.shape[0]
        losses = [_loss(out[k], x[k] if lstm else y[k], lstm) for k in range(n)]
        sum(losses).backward()
        opt.step()
    return step


def measure(fn, device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


def run_task(name: str, K: int, device, steps: int, warmup: int, reps: int, compiled: bool = False) -> dict:
    task = TASKS[name]
    lstm = name == "char-lstm"
    seq, seq2, bat = (sequential_steps(task, K, device, lstm, compiled), sequential_steps(task, K, device, lstm, compiled),
                      batched_step(task, K, device, lstm, compiled))
    times = {"sequential": [], "sequential again": [], "batched": []}
    for _ in range(reps):  # interleaved: the machine's drift hits every arm alike
        times["sequential"].append(measure(seq, device, steps, warmup))
        times["batched"].append(measure(bat, device, steps, warmup))
        times["sequential again"].append(measure(seq2, device, steps, warmup))
    row = {"task": name, "K": K, "device": str(device), "compiled": compiled}
    for arm, ts in times.items():
        row[arm] = {"s_per_step": statistics.median(ts), "config_steps_per_s": K / statistics.median(ts)}
    ratios = [s / b for s, b in zip(times["sequential"], times["batched"])]
    noise = [s / s2 for s, s2 in zip(times["sequential"], times["sequential again"])]
    for key, rs in (("speedup", ratios), ("noise_floor", noise)):
        med, lo, hi = median_ci(rs)
        row[key] = {"median": med, "ci95": None if lo is None else [lo, hi], "min": min(rs), "max": max(rs),
                    "all": rs}
    return row


def _cell(r: dict) -> str:
    """median [95 % CI] (min–max); the interval needs 6 repetitions or more."""
    ci = f" [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]" if r.get("ci95") else ""
    return f"{r['median']:.2f}{ci} ({r['min']:.2f}–{r['max']:.2f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--mlp-k", type=int, default=20)
    p.add_argument("--resnet-k", type=int, default=9)
    p.add_argument("--lstm-k", type=int, default=6)
    p.add_argument("--tasks", default="mnist-mlp,resnet20,char-lstm")
    p.add_argument("--steps", type=int, default=None, help="timed steps per repetition (default per task)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: the per-core figure)")
    p.add_argument("--quick", action="store_true", help="K=2, 2 steps, 1 repetition: does every row run?")
    p.add_argument("--compiled", action="store_true", help="both arms with compiled=True (CPU)")
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    if args.quick:
        print("--quick: a smoke run that checks every row runs; its numbers are noise, not a measurement", flush=True)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ks = {"mnist-mlp": args.mlp_k, "resnet20": args.resnet_k, "char-lstm": args.lstm_k}
    default_steps = {"mnist-mlp": 20, "resnet20": 3, "char-lstm": 3} if device.type == "cpu" else \
        {"mnist-mlp": 50, "resnet20": 20, "char-lstm": 10}
    rows = []
    print(f"torch {torch.__version__}, {platform.python_version()}, {device}"
          + f" ({device_name(device)})" + ("" if device.type == "cuda" else f", {torch.get_num_threads()} thread(s)"))
    print("| task | K | sequential config-steps/s | batched config-steps/s | speedup [95 % CI] (min–max) "
          "| noise floor [95 % CI] (min–max) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.tasks.split(","):
        K = 2 if args.quick else ks[name]
        steps = 2 if args.quick else (args.steps or default_steps[name])
        row = run_task(name, K, device, steps, warmup=(1 if args.quick else 2) + args.compiled,
                       reps=1 if args.quick else args.reps, compiled=args.compiled)
        rows.append(row)
        s, n = row["speedup"], row["noise_floor"]
        print(f"| {name} | {K} | {row['sequential']['config_steps_per_s']:.1f} | {row['batched']['config_steps_per_s']:.1f} "
              f"| {_cell(s)} | {_cell(n)} |",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
                       "device_name": device_name(device),
                       "threads": torch.get_num_threads(), "commit": git_commit(), "settings": vars(args) | {"json": None},
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
