"""Notebook 06: hyperoptimizers against today's learning-rate-free optimizers, on the same tasks,
budgets and seeds.

Contenders (same epochs, batch size and seeds for everyone; everything through ``hypernb.run``):
Adam and SGD (μ 0.9) at their α tuned on a validation split, with cosine decay; hypernb Adam/SGD,
SGD/SGD and a height-3 SGD tower at the paper's defaults; Prodigy, D-Adaptation Adam, Schedule-Free
AdamW and DoG at their packages' defaults. For each method's one remaining knob (α, κ, d0, lr,
r_ε), the final test error over seven decades.

HDM-HB (Chu, Gao, Ye & Udell, ICML 2025) is not among them; the notebook says why.
"""
from __future__ import annotations

import statistics

from .. import bench, io
from . import claims as C
from .common import MissingRecords, Setup, run_grid, save_figure, save_table, training_allowed
from .stats import interval, paired

NAME = "06_vs_lr_free"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "EPOCHS": ("int", "none"), "TUNE_SEEDS": ("list", "none"),
    "ALPHA_GRID": ("list", "none"), "VAL_EXAMPLES": ("int", "none"), "TASKS": "list", "TRAIN": "bool",
    "FOLLOW_UP_SEEDS": ("list", "none"), "OUT_DIR": "str", "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "TUNE_SEEDS": [0], "ALPHA_GRID": [1e-3, 1e-1], "FOLLOW_UP_SEEDS": [1]},
    "demo": {"SEEDS": [0], "TUNE_SEEDS": [0], "ALPHA_GRID": [1e-4, 1e-3, 1e-2], "FOLLOW_UP_SEEDS": [1]},
    "full": {"SEEDS": [0, 1, 2, 3, 4], "TUNE_SEEDS": [0, 1, 2],
             "ALPHA_GRID": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
             # the follow-ups of the sensitivity claims (claims.FOLLOW_UPS): claims.SIGN_N fresh seeds
             "FOLLOW_UP_SEEDS": [3, 4, 5, 6, 7, 8]},
}
# Each task's data, size, budget and validation split per profile (EPOCHS = None and VAL_EXAMPLES =
# None take these; the same for every method). "val": examples (characters for text) held out from
# the end of the training data, on which Adam's and SGD's α are chosen.
# The char-LSTM and ResNet-20 full profiles are GPU-sized: on a machine without CUDA they are reported
# as missing instead of being trained for days.
TASK_SETTINGS = {
    "mnist-mlp": {
        "all": dict(batch_size=256, activation="tanh"),
        "smoke": dict(epochs=1, train_limit=2048, test_limit=1024, val=512), "demo": dict(epochs=2, val=10_000),
        "full": dict(epochs=30, val=10_000)},
    "warpeace-lstm": {
        "all": dict(),
        "smoke": dict(epochs=1, hidden=32, seq_len=50, batch_size=32, train_limit=20_000, test_limit=10_000, val=4_000),
        "demo": dict(epochs=1, train_limit=200_000, test_limit=50_000, val=50_000), "full": dict(epochs=20, val=200_000)},
    "cifar10subset-resnet20": {
        "all": dict(weight_decay=1e-4),
        "smoke": dict(epochs=1, train_limit=256, test_limit=256, batch_size=64, val=64), "demo": dict(epochs=2, val=1_000),
        "full": dict(epochs=50, val=1_000)},
    "cifar10-resnet20": {
        "all": dict(weight_decay=1e-4),
        "smoke": dict(epochs=1, train_limit=256, test_limit=256, batch_size=64, val=64),
        "demo": dict(epochs=1, train_limit=10_000, val=2_000), "full": dict(epochs=50, val=5_000)},
}
GPU_SIZED = {"warpeace-lstm", "cifar10subset-resnet20", "cifar10-resnet20"}
DATA_NOTE = {"cifar10subset-resnet20": "the CIFAR-10 SUBSET (first 4,000 train / 1,000 test images), not full "
                                       "CIFAR-10: not comparable with full-data numbers",
             "cifar10-resnet20": "full CIFAR-10", "warpeace-lstm": "War and Peace (contiguous split)",
             "mnist-mlp": "MNIST (60,000 / 10,000)"}
FAILED = 90.0  # a diverged image run counts as chance-level error (%)
# the contenders, each with its remaining knob and that knob's grid factors (×10^d, d = −3…3)
HYPERNB = {
    "hypernb Adam/SGD": dict(optimizer="adam/sgd", alpha=1e-3, kappa=1e-5),
    "hypernb SGD/SGD": dict(optimizer="sgd/sgd", alpha=1e-2, kappa=1e-2),
    "hypernb SGD tower, height 3": dict(optimizer="sgd/sgd*3", alpha=1e-2, kappa=[1e-2, 1e-4, 1e-6]),
}
PEERS = {  # at their packages' defaults, and as their packages advise (a schedule; a tuned lr; averaging)
    "Prodigy": dict(optimizer="prodigy"),
    "Prodigy (cosine)": dict(optimizer="prodigy", schedule="cosine"),
    "D-Adaptation Adam": dict(optimizer="dadapt_adam"),
    "D-Adaptation Adam (cosine)": dict(optimizer="dadapt_adam", schedule="cosine"),
    "Schedule-Free AdamW (default lr)": dict(optimizer="schedulefree_adamw"),
    "DoG (averaged iterate)": dict(optimizer="dog"),
}
TUNED_PEER = "Schedule-Free AdamW (lr tuned on validation)"  # its lr chosen like Adam's α, then added
KNOBS = {  # method → (the knob, its config key, its default, one value per decade around it)
    "Adam/SGD": ("κ", "kappa", 1e-5), "Prodigy": ("d0", "d0", 1e-6), "D-Adaptation Adam": ("d0", "d0", 1e-6),
    "DoG": ("r_ε", "d0", 1e-6), "Schedule-Free AdamW": ("lr", "alpha", 2.5e-3),
}
KNOB_CONFIG = {"Adam/SGD": dict(optimizer="adam/sgd", alpha=1e-3), "Prodigy": dict(optimizer="prodigy"),
               "D-Adaptation Adam": dict(optimizer="dadapt_adam"), "DoG": dict(optimizer="dog"),
               "Schedule-Free AdamW": dict(optimizer="schedulefree_adamw")}
TUNED_KNOBS = ("Adam/SGD", "Schedule-Free AdamW")  # on every tuning seed; the others' grids on the first seed
ALPHA0 = "Adam/SGD over α0"  # the grid of Adam/SGD's initial α (κ fixed), on the α grid Adam is tuned on
WITHIN = 1.0  # the sensitivity measure: decades whose test error is within this many pp of the grid's best


SENSITIVITY = {"peers-adam-sgd-less-sensitive": "Adam/SGD", "peers-adam-sgd-spares-choosing-alpha0": ALPHA0}


def check(params: dict) -> None:
    """Rules across parameters, checked before anything trains: the follow-ups' seeds are fresh."""
    from . import followup

    followup.fresh_seeds(params["FOLLOW_UP_SEEDS"], params["TUNE_SEEDS"], "FOLLOW_UP_SEEDS", "TUNE_SEEDS")


def metric(task: str) -> str:
    return "test loss (nats/char)" if task.endswith("lstm") else "test error %"


def base(s: Setup, task: str, **kw) -> dict:
    if task not in TASK_SETTINGS:
        raise ValueError(f"unknown task {task!r} in TASKS; choose from {sorted(TASK_SETTINGS)}")
    settings = {**TASK_SETTINGS[task]["all"], **TASK_SETTINGS[task][s.profile]}
    settings.pop("val")
    cfg = dict(task=task, profile=s.profile, log_every=50 if s.profile == "full" else 10, **settings)
    if s["EPOCHS"] is not None:
        cfg["epochs"] = s["EPOCHS"]
    cfg.update(kw)
    return cfg


def val_examples(s: Setup, task: str) -> int:
    return s["VAL_EXAMPLES"] if s["VAL_EXAMPLES"] is not None else TASK_SETTINGS[task][s.profile]["val"]


def _failed_value(task: str) -> float:
    if task.endswith("lstm"):  # a diverged char model counts as the unigram entropy (knowing only frequencies)
        from .charrnn import entropy

        return entropy()
    return FAILED


def _final(r, split: str) -> dict:
    """seed → the task's final metric on ``split`` (error %, or loss for the char-LSTM); diverged → failed value."""
    task = r.config["task"]
    failed = _failed_value(task)
    if task.endswith("lstm"):
        return {sd.seed: failed if sd.status != "ok" else sd.final[f"{split}_loss"] for sd in r.seeds}
    return {sd.seed: failed if sd.status != "ok" else 100 * (1 - sd.final[f"{split}_acc"]) for sd in r.seeds}


def _err(r) -> dict:
    return _final(r, "test")


def _val(r) -> dict:
    return _final(r, "val")


def _run(s: Setup, task: str, cfgs: list, desc: str):
    import dataclasses

    import torch

    if task in GPU_SIZED and s.profile == "full" and not torch.cuda.is_available():
        s = dataclasses.replace(s, params={**s.params, "TRAIN": False})  # read records only; never days on a CPU
    try:
        return run_grid(s, cfgs, desc=desc), ""
    except MissingRecords as e:
        why = f"no {s.profile}-profile records for {task}: {e}"
        if task in GPU_SIZED:
            why += (". They need a GPU: python -m hypernb records --profile full --only 06 on a CUDA machine "
                    "(see benchmarks/gpu_study.sh)")
        return None, why


def run_task(s: Setup, task: str) -> dict:
    """Tuning, the comparison and the sensitivity grids of one task: a dict of Results and tables,
    or {"missing": why}."""
    val = val_examples(s, task)
    seeds = list(s["TUNE_SEEDS"])
    tune = _alpha_grid(s, task, "Adam", seeds, val)
    tune += [("SGD", a, base(s, task, optimizer="sgd", alpha=a, mu=0.9, schedule="cosine",
                             seeds=seeds, val_examples=val)) for a in s["ALPHA_GRID"]]
    sens = []
    for method in KNOBS:
        sens += _knob_grid(s, task, method, seeds if method in TUNED_KNOBS else seeds[:1], val)
    # Adam/SGD over its initial α0 (κ at its default), on Adam's own α grid: does learning α spare choosing it?
    # (MNIST only, where the claim is judged; its α0 = 10⁻³ point is the κ sweep's middle one, trained once)
    if task == "mnist-mlp":
        sens += _alpha_grid(s, task, ALPHA0, seeds, val)
    results, missing = _run(s, task, [c for *_, c in tune] + [c for *_, c in sens], f"{task}: tuning and sensitivity")
    if results is None:
        return {"missing": missing}
    grid = _grid_table(tune + sens, results)
    best = {m: float(g.groupby("value").val_error.mean().idxmin())
            for m, g in grid[grid.method.isin(["Adam", "SGD", "Schedule-Free AdamW"])].groupby("method")}
    contenders = {"Adam (tuned α, cosine)": base(s, task, optimizer="adam", alpha=best["Adam"], schedule="cosine"),
                  "SGD μ 0.9 (tuned α, cosine)": base(s, task, optimizer="sgd", alpha=best["SGD"], mu=0.9,
                                                      schedule="cosine")}
    contenders.update({k: base(s, task, **v) for k, v in {**HYPERNB, **PEERS}.items()})
    contenders[TUNED_PEER] = base(s, task, optimizer="schedulefree_adamw", alpha=best["Schedule-Free AdamW"])
    names = list(contenders)
    results, missing = _run(s, task, [{**contenders[n], "seeds": list(s["SEEDS"])} for n in names],
                            f"{task}: comparison")
    if results is None:
        return {"missing": missing}
    save_table(s, grid, f"{task}_grids")
    return {"grid": grid, "best": best, "runs": dict(zip(names, results))}


def _alpha_grid(s: Setup, task: str, method: str, seeds: list, val: int) -> list:
    """(method, α, config) over ALPHA_GRID: Adam's (cosine), on which it is tuned, or Adam/SGD's α0 (``ALPHA0``)."""
    cfg = dict(optimizer="adam", schedule="cosine") if method == "Adam" else HYPERNB["hypernb Adam/SGD"]
    return [(method, a, base(s, task, **{**cfg, "alpha": a}, seeds=list(seeds), val_examples=val))
            for a in s["ALPHA_GRID"]]


def _knob_grid(s: Setup, task: str, method: str, seeds: list, val: int) -> list:
    """(method, knob value, config), one value per decade around the knob's default (7 on the full profile)."""
    _, key, default = KNOBS[method]
    decades = range(-3, 4) if s.profile == "full" else (-1, 0, 1) if s.profile == "demo" else (0,)
    return [(method, default * 10.0 ** d, base(s, task, **{**KNOB_CONFIG[method], key: default * 10.0 ** d},
                                               seeds=list(seeds), val_examples=val)) for d in decades]


def _grid_table(points: list, results: list):
    """One row per (method, value, seed) of a grid's runs: status, validation and test metric."""
    import pandas as pd

    return pd.DataFrame([{"method": m, "value": v, "seed": sd.seed, "status": sd.status,
                          "val_error": _val(r)[sd.seed], "test_error": _err(r)[sd.seed]}
                         for (m, v, _), r in zip(points, results) for sd in r.seeds])


def decade_differences(grid, method: str, seeds) -> dict:
    """seed → decades of ``method``'s knob within 1 pp of its best − decades of Adam's α (the sensitivity
    claims' per-seed difference), over the seeds with both grids."""
    out = {}
    for seed in seeds:
        a, k = decades_within(grid, "Adam", seed), decades_within(grid, method, seed)
        if a is not None and k is not None:
            out[seed] = float(k - a)
    return out


def follow_up_runs(s: Setup) -> dict:
    """The sensitivity claims' follow-ups (``claims.FOLLOW_UPS``), on MNIST and ``FOLLOW_UP_SEEDS`` only: Adam's
    α grid (cosine), Adam/SGD's κ grid and its α0 grid, as the first run's. Returns {follow-up id: seed →
    difference in decades}; empty without those seeds or MNIST."""
    check(s.params)  # (as at the notebook's start)
    seeds = list(s["FOLLOW_UP_SEEDS"] or [])
    task = "mnist-mlp"
    if not seeds or task not in s["TASKS"]:
        return {}
    val = val_examples(s, task)
    points = _alpha_grid(s, task, "Adam", seeds, val) + _knob_grid(s, task, "Adam/SGD", seeds, val)
    points += _alpha_grid(s, task, ALPHA0, seeds, val)
    results, _ = _run(s, task, [c for *_, c in points], f"{task}: follow-up of the sensitivity claims")
    if results is None:
        return {f"{i}-follow-up": {} for i in SENSITIVITY}
    grid = _grid_table(points, results)
    return {f"{i}-follow-up": decade_differences(grid, method, seeds) for i, method in SENSITIVITY.items()}


def first_differences(s: Setup, tasks: dict) -> dict:
    """The first run's per-seed differences of the claims followed up."""
    mnist = tasks.get("mnist-mlp", {})
    if "grid" not in mnist:
        return {}
    return {f"{i}-follow-up": decade_differences(mnist["grid"], method, s["TUNE_SEEDS"])
            for i, method in SENSITIVITY.items()}


def decades_within(grid, method: str, seed: int, within: float = WITHIN) -> int | None:
    """How many of a method's grid values (one per decade) end within ``within`` of that seed's best
    test metric on the grid (a diverged run never does); None without a grid for that seed."""
    g = grid[(grid.method == method) & (grid.seed == seed)]
    if len(g) < 2:
        return None
    ok = g[g.status == "ok"]
    if ok.empty:
        return 0
    return int((ok.test_error <= ok.test_error.min() + within).sum())


def sensitivity_table(task: str, out: dict):
    """Per method and seed: decades of its knob within 1 pp (or 0.01 nats) of its best on the grid."""
    import pandas as pd

    grid, within = out["grid"], 0.01 if task.endswith("lstm") else WITHIN
    unit = " nats" if task.endswith("lstm") else " pp"
    rows = []
    for method in ["Adam", "SGD", *KNOBS, ALPHA0]:
        knob = "α (cosine)" if method in ("Adam", "SGD") else "α0 (κ 10⁻⁵)" if method == ALPHA0 else KNOBS[method][0]
        seeds = sorted(grid[grid.method == method].seed.unique())
        counts = [decades_within(grid, method, sd, within) for sd in seeds]
        n = grid[(grid.method == method) & (grid.seed == seeds[0])].value.nunique() if seeds else 0
        rows.append({"method": method, "knob": knob, "grid": f"{n} decades", "seeds": len(seeds),
                     f"decades within {within:g}{unit} of the best, per seed": ", ".join(str(c) for c in counts),
                     "diverged runs": int((grid[grid.method == method].status != "ok").sum())})
    return pd.DataFrame(rows)


def final_table(task: str, out: dict):
    """The final metric per method (test error %, or test loss for the char-LSTM): mean and 95 %
    interval over seeds, a diverged seed counted as failed (90 % error; the unigram entropy for text)."""
    import pandas as pd

    rows = []
    digits = 3 if task.endswith("lstm") else 2
    for name, r in out["runs"].items():
        err = list(_err(r).values())
        iv = interval(err)
        rows.append({"task": task, "data": DATA_NOTE[task].split(" (")[0].split(":")[0], "method": name, "n": iv.n,
                     f"{metric(task)} (mean)": f"{iv.mean:.{digits}f}",
                     "95 % interval": "–" if iv.n < 2 else f"[{iv.lo:.{digits}f}, {iv.hi:.{digits}f}]",
                     "median": f"{statistics.median(err):.{digits}f}",
                     "diverged": sum(sd.status != "ok" for sd in r.seeds),
                     "settings": _settings(r.config)})
    return pd.DataFrame(rows)


def _settings(cfg: dict) -> str:
    parts = [cfg["optimizer"]]
    if cfg.get("alpha") is not None:
        parts.append(f"α {cfg['alpha']:g}")
    if cfg["optimizer"].count("/"):
        k = cfg["kappa"]
        parts.append("κ " + (", ".join(f"{x:g}" for x in k) if isinstance(k, list) else f"{k:g}"))
    if cfg.get("d0") is not None:
        parts.append(f"{'reps_rel' if cfg['optimizer'] == 'dog' else 'd0'} {cfg['d0']:g}")
    if cfg.get("schedule", "none") != "none":
        parts.append(cfg["schedule"])
    return ", ".join(parts)


def final_figure(s: Setup, tables: list):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    fig, axes = plt.subplots(1, len(tables), figsize=(7.5 * len(tables), 4.4), squeeze=False)
    for ax, (task, out) in zip(axes[0], tables):
        names = list(out["runs"])
        for i, name in enumerate(names):
            err = list(_err(out["runs"][name]).values())
            iv = interval(err)
            ax.errorbar(iv.mean, i, xerr=[[iv.mean - iv.lo], [iv.hi - iv.mean]] if iv.n > 1 else None, fmt="o",
                        color="C0" if "hypernb" in name else "C1" if name in PEERS or name == TUNED_PEER else "C2",
                        capsize=3)
            ax.scatter(err, [i] * len(err), s=8, color="k", alpha=0.4)
            failed = [e for e, sd in zip(err, out["runs"][name].seeds) if sd.status != "ok"]
            if failed:
                ax.scatter(failed, [i] * len(failed), marker="x", color="C3", s=40, zorder=3)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        if not task.endswith("lstm"):  # symmetric log: an interval reaching below 0 (a diverged seed) still shows
            ax.set_xscale("symlog", linthresh=1.0)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=8))  # symlog's own ticks (1, 10) miss a 2–5 % range
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel(f"{metric(task)} (mean, 95 % interval; dots: seeds; ×: diverged)")
        ax.set_title(f"{task}: {DATA_NOTE[task]}", fontsize=9, wrap=True)
    fig.tight_layout()
    save_figure(s, fig, "final_error")
    return fig


def sensitivity_figure(s: Setup, task: str, out: dict):
    import matplotlib.pyplot as plt

    grid = out["grid"]
    methods = [m for m in ["Adam", ALPHA0, "Adam/SGD", "Prodigy", "D-Adaptation Adam", "Schedule-Free AdamW", "DoG"]
               if (grid.method == m).any()]
    cols = min(4, len(methods))  # rows of at most 4 panels: 7 in one row had unreadable tick labels
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    axes = list(axes.flat)
    within = 0.01 if task.endswith("lstm") else WITHIN
    for ax, m in zip(axes, methods):
        g = grid[grid.method == m]
        for v, sub in g.groupby("value"):
            ok = sub[sub.status == "ok"]
            ax.scatter([v] * len(ok), ok.test_error, s=12, color="C0")
            bad = sub[sub.status != "ok"]
            if len(bad):
                ax.scatter([v] * len(bad), bad.test_error, marker="x", color="C3", s=30)
        means = g.groupby("value").test_error.mean()
        ax.plot(means.index, means.values, color="C0")
        best = g[g.status == "ok"].groupby("value").test_error.mean().min()
        if best == best:  # (NaN: every run diverged)
            ax.axhline(best + within, color="C2", lw=0.8, ls="--",
                       label=f"best mean + {within:g}{' nats' if task.endswith('lstm') else ' pp'}")
        knob = "α (cosine)" if m == "Adam" else "α0 (κ 10⁻⁵)" if m == ALPHA0 else KNOBS[m][0]
        seeds = g.seed.nunique()
        ax.set_xscale("log")
        if not task.endswith("lstm"):
            from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

            ax.set_yscale("log")
            ax.yaxis.set_major_locator(FixedLocator([1, 2, 3, 5, 10, 20, 50, 90]))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(knob)
        ax.set_title(f"{m} ({seeds} seed{'s' if seeds != 1 else ''})", fontsize=9)
    failed = "the unigram entropy" if task.endswith("lstm") else f"{FAILED:g} %"
    for r in range(rows):
        axes[r * cols].set_ylabel(f"{metric(task)}\n(× diverged, counted as {failed})")
    axes[0].legend(fontsize=7, loc="upper center")
    n = grid[grid.method == "Adam/SGD"].value.nunique()
    fig.suptitle(f"{task} ({DATA_NOTE[task]}): each method against its one remaining knob, {n} value(s), one per "
                 "decade",
                 fontsize=10)
    fig.tight_layout()
    save_figure(s, fig, f"{task}_sensitivity")
    return fig


def _step_size_label(name: str, key: str) -> str:
    """What the step-size figure draws for a method: the learned α, or a peer's own step size."""
    if key == "alpha":
        return f"{name}: α (learned)"
    if name.startswith(("Prodigy", "D-Adaptation")):
        return f"{name}: d·lr"
    if name.startswith("DoG"):
        return f"{name}: η"
    return f"{name}: lr"


def _same_numbers_label(names: list) -> str:
    """One legend entry for methods whose curves are the same numbers: ``Schedule-Free AdamW (default lr
    = lr tuned on validation, the same numbers): lr``."""
    family = {name.split(" (")[0] for name, _ in names}
    if len(family) == 1 and all(" (" in name for name, _ in names):
        variants = " = ".join(name.split(" (", 1)[1][:-1] if name.endswith(")") else name.split(" (", 1)[1]
                              for name, _ in names)
        return _step_size_label(f"{family.pop()} ({variants}, the same numbers)", names[0][1])
    return " = ".join(_step_size_label(*n) for n in names) + " (the same numbers)"


def step_size_figure(s: Setup, task: str, out: dict):
    """The step size each method uses over training, on one axis (symmetric log: α can cross 0).
    Curves that are the same numbers (Schedule-Free's tuned lr can be its default) are drawn once and
    named together, so that no method is hidden under another."""
    import matplotlib.pyplot as plt

    from ..viz import CURVE_STYLES, PANEL_COLORS

    curves: dict = {}  # (steps, values) → the labels of the methods that drew exactly these
    for name, r in out["runs"].items():
        traj = r.seeds[0].trajectory
        key = "alpha" if "alpha" in traj else "step_size" if "step_size" in traj else None
        if key is None or name.startswith(("Adam (", "SGD μ")):  # (a fixed α times the cosine multiplier)
            continue
        curves.setdefault((tuple(traj["step"]), tuple(traj[key])), []).append((name, key))
    fig, ax = plt.subplots(figsize=(9, 5.2))
    for i, ((steps, values), names) in enumerate(curves.items()):
        label = _step_size_label(*names[0]) if len(names) == 1 else _same_numbers_label(names)
        ax.plot(steps, values, label=label, lw=1.4, ls=CURVE_STYLES[i % len(CURVE_STYLES)],
                color=PANEL_COLORS[i % len(PANEL_COLORS)],  # (20 colours before one repeats; tab10 has 10)
                marker="o" if len(values) < 5 else None)  # a short run logs a point or two: show them
    ax.set_yscale("symlog", linthresh=1e-9)  # Prodigy, D-Adaptation and DoG start near 1e-6
    ax.set_xlabel("step")
    ax.set_ylabel("step size (symmetric log)")
    ax.set_title(f"{task}: the step size each method learns or estimates (seed {s['SEEDS'][0]})", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    save_figure(s, fig, f"{task}_step_size")
    return fig


def costs(s: Setup) -> dict | None:
    """Step time and memory held of every method, as ratios to torch.optim.Adam timed alongside (one
    process, repetition by repetition; torch Adam against itself is the noise floor). Measured once
    and kept with the records (``cost.json``); not on the smoke profile."""
    import torch

    from .. import peers

    if s.profile == "smoke":
        return None
    path = s.records / "cost.json"
    if path.exists():
        return io.read_json(path, what="the measured step costs")
    if not training_allowed(s.params.get("TRAIN", True)):
        return None
    with bench.one_thread():  # timings are per core; the thread count is restored after

        def peer(name):
            def build(model):
                opt = peers.build(name, model.parameters())
                return bench.training_step(model, opt), opt
            return build

        builds = {"torch Adam again (noise floor)": bench.torch_step(torch.optim.Adam, lr=1e-3),
                  "hypernb Adam/SGD": bench.hypernb_step("adam/sgd", kappa=1e-5),
                  "hypernb SGD/SGD": bench.hypernb_step("sgd/sgd", alpha=1e-2, kappa=1e-2),
                  "hypernb SGD tower, height 3": bench.hypernb_step("sgd/sgd*3", alpha=1e-2,
                                                                    kappa=[1e-2, 1e-4, 1e-6])}
        builds.update({name: peer(opt) for name, opt in (
            ("Prodigy", "prodigy"), ("D-Adaptation Adam", "dadapt_adam"),
            ("Schedule-Free AdamW", "schedulefree_adamw"), ("DoG (with its averaging)", "dog"))})
        base = bench.torch_step(torch.optim.Adam, lr=1e-3)
        reps = []
        for _ in range(3 if s.profile == "demo" else 7):
            row = {"torch Adam": bench.time_step(base, steps=100, warmup=20)}
            for name, build in builds.items():
                row[name] = bench.time_step(build, steps=100, warmup=20)
            reps.append(row)
        held = {name: bench.held_memory(build)[0] for name, build in [("torch Adam", base), *builds.items()]}
        env = io.environment(torch.device("cpu"))  # threads: 1, as measured
    out = {"reps": reps, "held_mb": held, "env": env,
           "setting": "MNIST MLP batch 256, CPU, 1 thread, median of 100 steps per repetition"}
    io.write_json(path, out)
    return out


def cost_table(cost: dict | None):
    import pandas as pd

    if cost is None:
        return pd.DataFrame({"cost": ["measured on the demo and full profiles only (timings vary with the machine)"]})
    rows = []
    for name in [k for k in cost["reps"][0] if k != "torch Adam"]:
        ratios = [rep[name] / rep["torch Adam"] for rep in cost["reps"]]
        rows.append({"method": name, "step time / torch Adam (median, min–max)":
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})",
                     "memory held / torch Adam": f"{cost['held_mb'][name] / cost['held_mb']['torch Adam']:.2f}"})
    return pd.DataFrame(rows)


def verdicts(s: Setup, tasks: dict) -> list:
    out = []
    mnist = tasks.get("mnist-mlp", {})
    ids = {"peers-adam-sgd-matches-tuned-adam": "hypernb Adam/SGD",
           "peers-prodigy-matches-tuned-adam": "Prodigy (cosine)",
           "peers-schedulefree-matches-tuned-adam": TUNED_PEER}
    if "missing" in mnist or not mnist:
        why = mnist.get("missing", "no MNIST runs")
        return [C.judge(C.BY_ID[i], None, s.profile, missing=why) for i in
                (*ids, "peers-adam-sgd-less-sensitive", "peers-adam-sgd-spares-choosing-alpha0")]
    runs = mnist["runs"]
    adam = _err(runs["Adam (tuned α, cosine)"])
    for claim_id, name in ids.items():
        out.append(C.judge(C.BY_ID[claim_id], paired(_err(runs[name]), adam), s.profile,
                           evidence="figures/final_error.png"))
    grid = mnist["grid"]
    for claim_id, method in SENSITIVITY.items():
        per_seed = decade_differences(grid, method, s["TUNE_SEEDS"])
        out.append(C.judge(C.BY_ID[claim_id], interval(per_seed.values()) if per_seed else None, s.profile,
                           values=list(per_seed.values()), missing="" if per_seed else "no paired grids", evidence="figures/mnist-mlp_sensitivity.png",
                           detail="per seed (decades of Adam/SGD − of Adam): " + ", ".join(
                               f"{seed}: {d:+g}" for seed, d in per_seed.items())))
    return out


def as_first_declared(s: Setup, tasks: dict):
    """The MNIST claims amended after runs had started, judged as first declared (see ``Claim.amended``):
    the sensitivity as the sd of test error over the 7 decades (a diverged run counted as 90 %; the
    Adam grid is the cosine one, the only one run), Prodigy at its defaults without a schedule, and
    the three "matches tuned Adam" claims at the first δ, 0.1 pp (Schedule-Free's default lr is the
    one validation chose, so its runs are the same)."""
    import pandas as pd

    mnist = tasks.get("mnist-mlp", {})
    if "missing" in mnist or not mnist:
        return None
    grid, runs = mnist["grid"], mnist["runs"]
    sd = {m: {seed: float(g.test_error.std()) for seed, g in grid[grid.method == m].groupby("seed") if len(g) > 1}
          for m in ("Adam", "Adam/SGD")}
    rows = [C.judge(C.FIRST_DECLARED["peers-adam-sgd-less-sensitive"], paired(sd["Adam/SGD"], sd["Adam"])
                    if set(sd["Adam/SGD"]) & set(sd["Adam"]) else None, s.profile),
            C.judge(C.FIRST_DECLARED["peers-prodigy-matches-tuned-adam"],
                    paired(_err(runs["Prodigy"]), _err(runs["Adam (tuned α, cosine)"])), s.profile)]
    for claim_id, name in (("peers-adam-sgd-matches-tuned-adam", "hypernb Adam/SGD"),
                           ("peers-schedulefree-matches-tuned-adam", TUNED_PEER)):
        rows.append(C.judge(C.FIRST_DECLARED[claim_id], paired(_err(runs[name]), _err(runs["Adam (tuned α, cosine)"])),
                            s.profile))
    return pd.DataFrame([v.row() for v in rows])[["claim", "comparison", "n", "effect", "95 % interval", "verdict"]]


def run_all(s: Setup) -> dict:
    """task → run_task(s, task), for every task in TASKS (an unknown name is an error before any run)."""
    unknown = [t for t in s["TASKS"] if t not in TASK_SETTINGS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown} in TASKS; choose from {sorted(TASK_SETTINGS)}")
    return {task: run_task(s, task) for task in s["TASKS"]}


def train(s: Setup) -> None:
    """Train (or resume) every task's runs and measure the step costs, without Jupyter (``python -m
    hypernb records``); a task that cannot train here (a GPU-sized one on a CPU) says so."""
    for task, out in run_all(s).items():
        if "missing" in out:
            print(f"{task}: {out['missing']}", flush=True)
    costs(s)
    follow_up_runs(s)


def examples(tasks: dict, task: str = "mnist-mlp") -> dict:
    """The comparison's runs of one task, for the panel to show beside what you train there."""
    out = tasks.get(task, {})
    return dict(out.get("runs", {}))
