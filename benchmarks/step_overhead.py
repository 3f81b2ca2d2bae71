"""Step overhead of hyperoptimizers: plain torch.optim vs hypernb vs the paper's package (gdtuo).

    python benchmarks/step_overhead.py                      # CPU, 1 thread, MLP + small CNN
    python benchmarks/step_overhead.py --device cuda        # adds CUDA-graph-captured rows
    python benchmarks/step_overhead.py --quick              # a fast smoke run of every row

Every number is the median time of one whole training step (zero_grad, forward, backward, step),
and every ratio is taken against the plain torch.optim baseline timed right before it, in the same
process and repetition (Adam-based rows against torch Adam, SGD-based rows against torch SGD); the
table shows the median ratio over repetitions and its range. Memory is the peak of live tensor
storage held between steps by the model, its gradients and the optimizer, counted exactly (including
tensors saved in autograd graphs, where gdtuo keeps its state); on CUDA also the allocator's peak
during one step. gdtuo is run exactly as its README says
(begin, forward, zero_grad, backward(create_graph=True), step).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import warnings

import torch

HEIGHTS = (1, 2, 5, 10, 20)


from hypernb.bench import WORKLOADS, device_name, held_memory, hypernb_step, median_ci, time_step, torch_step, \
    training_step  # noqa: E402

def compiled_torch_step(cls, **kw):
    """torch.optim's own recipe for a faster step: ``torch.compile(opt.step)``."""
    def build(model):
        opt = cls(model.parameters(), **kw)
        # a fresh optimizer's step is the same code object as the last one's: without a reset, dynamo
        # stops compiling it after 8 optimizers (its recompile limit) and the row would time eager steps
        torch.compiler.reset()
        opt.step = torch.compile(opt.step)
        return training_step(model, opt), opt
    return build


def tensors_only(build):
    """The same optimizer with its few numbers (hyperparameters, the levels above the first) as small
    tensors instead of NumPy numbers: what the engine's host mode buys, measured."""
    def wrapped(model):
        from hypernb.optim import engine

        engine.HOST_MODE = False
        try:
            return build(model)
        finally:
            engine.HOST_MODE = True
    return wrapped


def gdtuo_opt(make_opt):
    def build(model):
        from gradient_descent_the_ultimate_optimizer import gdtuo

        mw = gdtuo.ModuleWrapper(model, optimizer=make_opt(gdtuo))
        mw.initialize()

        def step(x, y):
            mw.begin()
            loss = torch.nn.functional.cross_entropy(mw.forward(x), y)
            mw.zero_grad()
            loss.backward(create_graph=True)
            mw.step()
        return step, mw
    return build


def gdtuo_sgd_tower(height):
    def make(g):
        opt = g.NoOpOptimizer()
        for _ in range(height):
            opt = g.SGD(1e-5, optimizer=opt)
        return g.SGD(0.01, optimizer=opt)
    return make


def configs(with_gdtuo: bool, cuda: bool):
    c = {
        "torch SGD": (None, torch_step(torch.optim.SGD, lr=0.01)),
        "torch Adam": (None, torch_step(torch.optim.Adam, lr=1e-3)),
        # the same configuration against itself: how far a ratio moves by noise alone
        "torch Adam again (noise floor)": ("torch Adam", torch_step(torch.optim.Adam, lr=1e-3)),
        "hypernb Adam": ("torch Adam", hypernb_step("adam")),
        "hypernb Adam/SGD": ("torch Adam", hypernb_step("adam/sgd", kappa=1e-5)),
    }
    for h in HEIGHTS:
        c[f"hypernb SGD tower h={h}"] = ("torch SGD", hypernb_step("sgd/sgd*%d" % h, alpha=0.01, kappa=1e-5))
    if not cuda:  # ablation: host mode (a CPU-only path) off, each against the same optimizer with it on
        c["hypernb Adam/SGD (tensors only)"] = ("hypernb Adam/SGD", tensors_only(hypernb_step("adam/sgd", kappa=1e-5)))
        c["hypernb SGD tower h=10 (tensors only)"] = ("hypernb SGD tower h=10", tensors_only(
            hypernb_step("sgd/sgd*10", alpha=0.01, kappa=1e-5)))
    if with_gdtuo:
        c["gdtuo Adam/SGD"] = ("torch Adam", gdtuo_opt(lambda g: g.Adam(optimizer=g.SGD(1e-5))))
        for h in HEIGHTS:
            c[f"gdtuo SGD tower h={h}"] = ("torch SGD", gdtuo_opt(gdtuo_sgd_tower(h)))
    if not cuda:  # the CPU step compiled by torch.compile, and torch's own step compiled the same way
        c["torch Adam (torch.compile)"] = ("torch Adam", compiled_torch_step(torch.optim.Adam, lr=1e-3))
        c["hypernb Adam/SGD (compiled=True)"] = ("torch Adam", hypernb_step("adam/sgd", kappa=1e-5, compiled=True))
    if cuda:
        c["torch Adam capturable, CUDA graph"] = ("torch Adam", torch_step(torch.optim.Adam, lr=1e-3, capturable=True))
        c["hypernb Adam/SGD, no internal CUDA graph"] = ("torch Adam", hypernb_step("adam/sgd", kappa=1e-5,
                                                                                 cuda_graph=False))
        c["hypernb Adam/SGD, CUDA graph"] = ("torch Adam", hypernb_step("adam/sgd", kappa=1e-5))
    return c


# -- measurement ---------------------------------------------------------------------------------
def capture(step, x, y):
    """Record one whole training step in a CUDA graph (after warm-up on a side stream)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(5):
            step(x, y)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(x, y)
    return lambda x_, y_: graph.replay()


def time_config(name, build, make_model, shape, device, steps, warmup):
    return time_step(build, make_model, shape, device, steps, warmup,
                     wrap=capture if name.endswith(", CUDA graph") else None)


def run(args):
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    try:
        import gradient_descent_the_ultimate_optimizer  # noqa: F401
        with_gdtuo = True
    except ImportError:
        with_gdtuo = False
    cfgs = configs(with_gdtuo, device.type == "cuda")
    if args.only:
        keep = set(args.only.split(","))
        unknown = sorted(keep - set(cfgs))
        if unknown:
            raise SystemExit(f"--only: unknown configuration(s) {unknown}; choose from {sorted(cfgs)}")
        keep |= {cfgs[k][0] for k in keep if cfgs[k][0]}  # a row is timed against its baseline: keep that too
        cfgs = {k: v for k, v in cfgs.items()
                if k in keep or k in ("torch SGD", "torch Adam", "torch Adam again (noise floor)")}
    # the settings that shape the numbers; where the file went is not one of them (and names a machine)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    results = {"machine": machine(device, args.threads), "args": settings, "models": {}}
    for model_name in args.models.split(","):
        make_model, shape = WORKLOADS[model_name]
        steps = args.steps if model_name == "mlp" else max(5, args.steps // 8)
        warmup = args.warmup if model_name == "mlp" else max(3, args.warmup // 6)
        ratios, times = {k: [] for k in cfgs}, {k: [] for k in cfgs}
        names = list(cfgs)
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                base, build = cfgs[name]
                if base is None:
                    times[name].append(time_config(name, build, make_model, shape, device, steps, warmup))
                    continue
                b = time_config(base, cfgs[base][1], make_model, shape, device, steps, warmup)
                t = time_config(name, build, make_model, shape, device, steps, warmup)
                times[name].append(t)
                ratios[name].append(t / b)
            print(f"[{model_name}] repetition {rep + 1}/{args.reps} done", flush=True)
        mem = {name: held_memory(build, make_model, shape, device) for name, (_, build) in cfgs.items()
               if not name.endswith(", CUDA graph")}
        rows = {}
        for name in names:
            r = ratios[name]
            _, lo, hi = median_ci(r) if r else (1.0, None, None)
            rows[name] = {
                "baseline": cfgs[name][0],
                "ms": statistics.median(times[name]),
                "ratios": r,
                "ratio": statistics.median(r) if r else 1.0,
                "ratio_ci95": None if lo is None else [lo, hi],
                "ratio_min": min(r) if r else 1.0,
                "ratio_max": max(r) if r else 1.0,
                "held_mb": mem[name][0] if name in mem else None,
                "peak_mb": mem[name][1] if name in mem else None,
            }
        results["models"][model_name] = {"rows": rows, "per_level": per_level(times), "steps": steps}
        for ours in ("hypernb Adam/SGD", "hypernb Adam/SGD (compiled=True)"):  # per repetition: it gets an interval
            if "gdtuo Adam/SGD" in times and ours in times:
                results["models"][model_name].setdefault("vs_gdtuo", {})[ours] = [
                    g / h for g, h in zip(times["gdtuo Adam/SGD"], times[ours])]
        print(markdown({**results, "models": {model_name: results["models"][model_name]}}), flush=True)
    return results


def _slope(pts):
    """Least-squares slope of (height, ms) points."""
    mh = sum(h for h, _ in pts) / len(pts)
    mt = sum(t for _, t in pts) / len(pts)
    return sum((h - mh) * (t - mt) for h, t in pts) / sum((h - mh) ** 2 for h, _ in pts)


def per_level(times):
    """Cost of one more tower level: the least-squares slope of step time over height within each
    repetition, as % of that repetition's height-1 step; the median over repetitions and its 95 %
    interval."""
    out = {}
    for lib in ("hypernb", "gdtuo"):
        names = [(h, f"{lib} SGD tower h={h}") for h in HEIGHTS if f"{lib} SGD tower h={h}" in times]
        if len(names) < 2:
            continue
        reps = len(times[names[0][1]])
        slopes = [_slope([(h, times[n][i]) for h, n in names]) for i in range(reps)]
        percents = [100 * s / times[names[0][1]][i] for i, s in enumerate(slopes)]
        med, lo, hi = median_ci(percents)
        out[lib] = {"ms_per_level": statistics.median(slopes), "percent_of_step": med,
                    "percent_ci95": None if lo is None else [lo, hi], "percent_all": percents}
    return out


def machine(device, threads):
    from hypernb.io import git_commit

    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": threads, "commit": git_commit(),
            "processor": platform.processor() or platform.machine(), "platform": platform.platform()}
    if device.type == "cpu":
        info["cpu"] = device_name(device)
    if device.type == "cuda":
        info["gpu"] = device_name(device)
    try:
        import gradient_descent_the_ultimate_optimizer as g  # noqa: F401
        from importlib.metadata import version
        info["gdtuo"] = version("gradient-descent-the-ultimate-optimizer")
    except ImportError:
        pass
    return info


def markdown(results) -> str:
    m = results["machine"]
    lines = [f"Machine: {m.get('gpu') or m.get('cpu', m['processor'])}; torch {m['torch']}, Python {m['python']}, "
             f"{m['threads']} thread(s); gdtuo {m.get('gdtuo', 'not installed')}. Ratios: median over repetitions, "
             "its distribution-free 95 % confidence interval in brackets (given 6 repetitions or more), min–max in parentheses.",
             ""]
    for model, res in results["models"].items():
        lines += [f"**{model}** (median step, {results['args']['reps']} repetitions × {res['steps']} steps)", "",
                  "| configuration | ms / step | ratio to baseline [95 % CI] (min–max) | baseline "
                  "| MB held between steps | peak MB in a step |", "|---|---:|---:|---|---:|---:|"]
        for name, r in res["rows"].items():
            held = "–" if r["held_mb"] is None else f"{r['held_mb']:.2f}"
            peak = "–" if r["peak_mb"] is None else f"{r['peak_mb']:.2f}"
            ci = r.get("ratio_ci95")
            ratio = "1.00" if r["baseline"] is None else (
                f"{r['ratio']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
                + f" ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})")
            lines.append(f"| {name} | {r['ms']:.3f} | {ratio} | {r['baseline'] or '–'} | {held} | {peak} |")
        for ours, ratios in res.get("vs_gdtuo", {}).items():
            med, lo, hi = median_ci(ratios)
            how = f"{med:.2f}× faster" if med >= 1 else f"{1 / med:.2f}× slower"
            ci = f", 95 % CI [{lo:.2f}, {hi:.2f}]" if lo is not None else ""
            lines += ["", f"{ours} is {how} than gdtuo Adam/SGD (median over repetitions of the ratio "
                          f"of their step times{ci})."]
        for lib, pl in res["per_level"].items():
            ci = pl.get("percent_ci95")
            lines.append(f"{lib}: each extra SGD level adds {pl['ms_per_level'] * 1e3:.1f} µs "
                         f"= {pl['percent_of_step']:.2f} %" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
                         + " of the height-1 step (median over repetitions of the slope over heights).")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--steps", type=int, default=200, help="timed steps per block (CNN: steps/8)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--only", default="", help="comma-separated configuration names")
    p.add_argument("--json", default="", help="write the raw results here")
    p.add_argument("--quick", action="store_true", help="2 repetitions of 20 steps (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.reps, args.steps, args.warmup = 2, 20, 5
        print("--quick: a smoke run that checks every row runs; its numbers are noise, not a measurement", flush=True)
    warnings.filterwarnings("ignore")  # gdtuo's create_graph=True warns about reference cycles
    results = run(args)  # prints each model's table as soon as it is measured
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
