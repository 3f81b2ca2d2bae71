"""Notebook 04: towers of hyperoptimizers, as the paper ran them and as the report did.

* *The paper's protocol* (arXiv v1 §4.3): the MNIST MLP of its appendix (tanh on the hidden layer *and*
  on the logits), batch 300, one epoch, SGD at every level, every level starting from the same α0;
  heights 0–50 × α0 over ten decades (10⁻⁶…10³, its failure regime α0 > 10² included) × 3 seeds.
  The same grid with free logits (our first run of it) is kept as a robustness check, not a verdict:
  bounded logits change where large step sizes fail.
* *The report's rule*: κ_ℓ = α0 / (100(1 + ℓ)), RMSProp levels (as the report, with γ squashed
  correctly), its ReLU MLP, batch 1024, 20 epochs, on a smaller grid.
* *Cost*: the time of one training step per height, measured side by side with plain SGD in one
  run (paired ratios, a noise-floor row), the memory held between steps, and the training wall clock.

A diverged run is a failure: it counts as 90 % test error wherever runs are compared or spread.
"""
from __future__ import annotations

import statistics
from .. import bench, io
from . import claims as C
from . import followup
from . import sources as S
from .common import Setup, run_grid, save_figure, save_table
from .stats import differences, interval

NAME = "04_towers"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "HEIGHTS": ("list", "none"), "ALPHAS0": ("list", "none"),
    "REPORT_HEIGHTS": ("list", "none"), "REPORT_ALPHAS0": ("list", "none"), "REPORT_EPOCHS": ("int", "none"),
    "REPORT_LEVEL": "str", "COST_HEIGHTS": ("list", "none"), "COST_REPS": ("int", "none"), "TRAIN": "bool",
    "PAPER_OUTPUT_TANH": "bool", "LOGIT_CHECK": ("bool", "none"), "FOLLOW_UP_SEEDS": ("list", "none"),
    "FOLLOW_UP_COST_REPS": ("int", "none"), "FOLLOW_UP_SATURATE_SEEDS": ("list", "none"),
    "FOLLOW_UP_FAIL_SEEDS": ("list", "none"), "OUT_DIR": "str",
    "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "HEIGHTS": [0, 1, 3], "ALPHAS0": [1e-2, 1.0, 1e3], "REPORT_HEIGHTS": [0, 1],
              "REPORT_ALPHAS0": [1.0, 1e-4], "REPORT_EPOCHS": 1, "COST_HEIGHTS": [1, 2, 5], "COST_REPS": 1,
              "LOGIT_CHECK": False, "FOLLOW_UP_SEEDS": [1], "FOLLOW_UP_COST_REPS": 1, "FOLLOW_UP_SATURATE_SEEDS": [1],
              "FOLLOW_UP_FAIL_SEEDS": [2]},
    "demo": {"SEEDS": [0], "HEIGHTS": [0, 1, 2, 3, 5, 10, 50], "ALPHAS0": [1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e3],
             "REPORT_HEIGHTS": [0, 1, 3], "REPORT_ALPHAS0": [1.0, 1e-2, 1e-4, 1e-6], "REPORT_EPOCHS": 2,
             "COST_HEIGHTS": [1, 2, 5, 10, 20, 50], "COST_REPS": 3, "LOGIT_CHECK": False, "FOLLOW_UP_SEEDS": [1],
             "FOLLOW_UP_COST_REPS": 2, "FOLLOW_UP_SATURATE_SEEDS": [1], "FOLLOW_UP_FAIL_SEEDS": [2]},
    "full": {"SEEDS": [0, 1, 2], "HEIGHTS": [0, 1, 2, 3, 4, 5, 10, 20, 50],
             "ALPHAS0": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3],
             "REPORT_HEIGHTS": [0, 1, 2, 3, 5, 10], "REPORT_ALPHAS0": [1.0, 1e-2, 1e-4, 1e-6], "REPORT_EPOCHS": 20,
             "COST_HEIGHTS": [1, 2, 5, 10, 20, 50], "COST_REPS": 9, "LOGIT_CHECK": True,
             # the follow-ups (claims.FOLLOW_UPS): fresh seeds and repetitions, sized by followup.plan
             "FOLLOW_UP_SEEDS": [3, 4, 5, 6, 7], "FOLLOW_UP_COST_REPS": 24,
             # those declared with claims.RULES_AMENDED: SIGN_N fresh seeds each; every tower fails on seeds no
             # run of its grid has used (3-7 ran at heights 0 and 5 for the spread's follow-up)
             "FOLLOW_UP_SATURATE_SEEDS": [3, 4, 5, 6, 7, 8], "FOLLOW_UP_FAIL_SEEDS": [9, 10, 11, 12, 13, 14]},
}
FAILED = 90.0  # the test error % a diverged run counts as
CHECK = "paper, other logits"  # the paper's grid with the logits PAPER_OUTPUT_TANH does not choose


def check(params: dict) -> None:
    """Rules across parameters, checked before anything trains: the follow-ups' seeds are fresh."""
    followup.fresh_seeds(params["FOLLOW_UP_SEEDS"], params["SEEDS"], "FOLLOW_UP_SEEDS", "SEEDS")
    followup.fresh_seeds(params["FOLLOW_UP_SATURATE_SEEDS"], params["SEEDS"], "FOLLOW_UP_SATURATE_SEEDS", "SEEDS")
    # (the paper's grid: every height of a seed ends alike, so a seed the spread's follow-up ran is no longer fresh)
    followup.fresh_seeds(params["FOLLOW_UP_FAIL_SEEDS"], [*params["SEEDS"], *(params["FOLLOW_UP_SEEDS"] or [])],
                         "FOLLOW_UP_FAIL_SEEDS", "SEEDS or FOLLOW_UP_SEEDS")


def _height_axis(ax, heights) -> None:
    """A symmetric-log height axis (so that 0 shows) labelled with the heights themselves."""
    import matplotlib.ticker as mt

    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(sorted(heights))
    ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(mt.NullLocator())
    ax.set_xlabel("tower height (symmetric log)")


def _errors(res) -> dict:
    return {sd.seed: FAILED if sd.status != "ok" else 100 * (1 - sd.final["test_acc"]) for sd in res.seeds}


def _base(s: Setup, **kw) -> dict:
    cfg = dict(task="mnist-mlp", profile=s.profile, seeds=list(s["SEEDS"]), log_every=5)
    if s.profile == "smoke":
        cfg.update(train_limit=3000, test_limit=1000)
    cfg.update(kw)
    return cfg


def paper_config(s: Setup, alpha0: float, height: int, output_tanh: bool | None = None) -> dict:
    """arXiv v1 §4.3: SGD levels, each starting at α0; its appendix's tanh MLP (tanh logits unless
    ``PAPER_OUTPUT_TANH`` is False), batch 300, one epoch."""
    output_tanh = s["PAPER_OUTPUT_TANH"] if output_tanh is None else output_tanh
    cfg = _base(s, optimizer="sgd" if height == 0 else f"sgd/sgd*{height}", alpha=alpha0, epochs=1,
                batch_size=300, activation="tanh", **({"output_tanh": True} if output_tanh else {}))
    if height:
        cfg["kappa"] = "paper"
    return cfg


def report_config(s: Setup, alpha0: float, height: int) -> dict:
    """The report's rule: κ_ℓ = α0/(100(1+ℓ)), its ReLU MLP, batch 1024."""
    level = s["REPORT_LEVEL"]
    cfg = _base(s, optimizer="sgd" if height == 0 else f"sgd/{level}*{height}", alpha=alpha0,
                epochs=s["REPORT_EPOCHS"], batch_size=1024, activation="relu")
    if height:
        cfg["kappa"] = "report"
    return cfg


def run_all(s: Setup):
    """Both grids (and the paper's with the other logits, for ``LOGIT_CHECK``); a tidy DataFrame with one
    row per (protocol, α0, height, seed)."""
    import pandas as pd

    points = [("paper", a, h, paper_config(s, a, h)) for h in s["HEIGHTS"] for a in s["ALPHAS0"]]
    if s["LOGIT_CHECK"]:
        other = not s["PAPER_OUTPUT_TANH"]
        points += [(CHECK, a, h, paper_config(s, a, h, output_tanh=other)) for h in s["HEIGHTS"] for a in s["ALPHAS0"]]
    points += [("report", a, h, report_config(s, a, h)) for h in s["REPORT_HEIGHTS"] for a in s["REPORT_ALPHAS0"]]
    df = _tidy(points, run_grid(s, [cfg for *_, cfg in points], desc="towers"))
    save_table(s, df, "towers")
    return df


def _tidy(points: list, results: list):
    """One row per (protocol, α0, height, seed) of the runs of ``points`` = [(protocol, α0, height, config)]."""
    import pandas as pd

    rows = []
    for (protocol, a, h, _), r in zip(points, results):
        for sd in r.seeds:
            rows.append({"protocol": protocol, "alpha0": a, "height": h, "seed": sd.seed, "status": sd.status,
                         "test_error": _errors(r)[sd.seed],
                         "final_alpha": sd.final.get("final_alpha") if sd.status == "ok" else None,
                         "reason": sd.reason or ""})
    return pd.DataFrame(rows)


def error_table(df, protocol: str):
    """Mean test error % (× n diverged) per α0 and height, with the report's numbers beside its rule."""
    import pandas as pd

    sub = df[df.protocol == protocol]
    rows = []
    for a in sorted(sub.alpha0.unique()):
        row = {"α0": f"{a:g}"}
        for h in sorted(sub.height.unique()):
            cell = sub[(sub.alpha0 == a) & (sub.height == h)]
            bad = int((cell.status != "ok").sum())
            row[f"h={h}"] = f"{cell.test_error.mean():.1f}" + (f" ({bad}× div.)" if bad else "")
        if protocol == "report":
            cited = [S.report_tower_acc(a, h) for h in sorted(sub.height.unique())]
            row["report .out (error %, 1 seed)"] = ", ".join("–" if c is None else f"{100 - c.value:.1f}"
                                                             for c in cited)
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity(df, protocol: str = "paper"):
    """Per height and seed: the sd over α0 of the test error (a diverged run counts as 90 %)."""
    import pandas as pd

    sub = df[df.protocol == protocol]
    rows = [{"height": h, "seed": seed, "sd_over_alpha0": float(g.test_error.std(ddof=0))}
            for (h, seed), g in sub.groupby(["height", "seed"])]
    return pd.DataFrame(rows)


def _spread_differences(df, protocol: str, top: float | None = None) -> tuple[dict, int]:
    """(seed → the sd over α0 at height 5 (or the tallest) − at height 0, that height); α0 ≤ ``top`` only, if
    given; no seeds where height 0 or a taller one is missing."""
    sub = df[(df.protocol == protocol) & (df.alpha0 <= (top if top is not None else float("inf")))]
    sens = sensitivity(sub, protocol)
    heights = sorted(sens.height.unique())
    tall = 5 if 5 in heights else max(heights)
    by = {h: dict(zip(g.seed, g.sd_over_alpha0)) for h, g in sens.groupby("height")}
    return (differences(by[tall], by[0]) if 0 in by and tall != 0 else {}), tall


def _spread_change(df, protocol: str, top: float | None = None):
    """The interval of :func:`_spread_differences` (None without both heights), and the taller height."""
    d, tall = _spread_differences(df, protocol, top)
    return (interval(d.values()) if d else None), tall


def logit_check(s: Setup, df):
    """The paper's grid with tanh logits (arXiv v1's appendix model) and with free logits, side by side:
    what the declared verdicts would have been with the other model, and where towers start to fail.
    A robustness check, not a verdict (the split at α0 ≤ 1 was chosen after seeing the runs)."""
    import pandas as pd

    if not (df.protocol == CHECK).any():
        return None
    main = "tanh" if s["PAPER_OUTPUT_TANH"] else "free"
    names = {"paper": f"{main} logits" + (" (arXiv v1's appendix model; the verdicts)" if main == "tanh" else ""),
             CHECK: ("free" if main == "tanh" else "tanh") + " logits"}
    rows = []
    for protocol, label in names.items():
        row = {"model": label}
        for top, col in ((None, "spread over all α0"), (1.0, "spread over α0 ≤ 1 (post hoc)")):
            e, tall = _spread_change(df, protocol, top)
            row[f"{col}: height {tall} − 0 (pp)"] = "–" if e is None else e.short()
        towers = df[(df.protocol == protocol) & (df.height >= 1)]
        failed = towers.assign(bad=_failed(towers)).groupby("alpha0").bad.all()
        fails_from = [a for a in sorted(failed.index) if failed[a] and all(failed[b] for b in failed.index if b >= a)]
        row["every tower run fails (error > 50 % or diverged) from α0"] = f"{fails_from[0]:g}" if fails_from else "–"
        huge = towers[towers.alpha0 > 1e2]
        row["failed at α0 > 10²"] = f"{int(_failed(huge).sum())} of {len(huge)}"
        rows.append(row)
    return pd.DataFrame(rows)


def as_first_declared(s: Setup, df):
    """The two claims on the paper's grid judged as first run, on the free-logit grid (None without it)."""
    import pandas as pd

    if not (df.protocol == CHECK).any() or not s["PAPER_OUTPUT_TANH"]:
        return None
    effect, _ = _spread_change(df, CHECK)
    top = df[(df.protocol == CHECK) & (df.alpha0 > 1e2) & (df.height >= 1)]
    failed = int(_failed(top).sum())
    rows = [C.judge(C.FIRST_DECLARED["towers-less-sensitive"], effect, s.profile),
            C.judge(C.FIRST_DECLARED["towers-fail-above-100"], None, s.profile, failures=(failed, len(top)))]
    return pd.DataFrame([v.row() for v in rows])[["claim", "comparison", "n", "effect", "95 % interval", "verdict"]]


def _failed(df):
    """Per run: it failed (diverged, or ended above 50 % test error, where a tower run at a huge α0 ends)."""
    return (df.status != "ok") | (df.test_error > 50)


def _failed_seeds(top) -> dict:
    """Per seed: 1.0 if every tower run of it (α0 > 10², heights ≥ 1) failed, else 0.0; a seed's runs are one
    outcome (every height of a seed ended at the same error), so the claim counts seeds, not runs. A seed
    without a run at every height of the grid is left out."""
    heights = top.height.nunique()
    return {int(seed): float(_failed(g).all()) for seed, g in top.groupby("seed") if g.height.nunique() == heights}


def _failure_context(top, plain) -> str:
    """What a count of failed tower runs is worth: runs of one seed that end at the same error at every
    height are one outcome, not several; and whether plain SGD (height 0) at the same α0 fails too."""
    outcomes = sum(g.test_error.round(6).nunique() for _, g in top.groupby(["alpha0", "seed"]))
    text = f"; these are {outcomes} distinct outcomes (runs of one seed that end at the same error are one)"
    if len(plain):
        bad = int(_failed(plain).sum())
        text += f", and plain SGD (height 0) at the same α0 fails in {bad} of {len(plain)}"
    return text


def accuracy_figure(s: Setup, df):
    """Test error against height (symmetric-log axis, so height 0 shows), one line per α0; a diverged
    seed is an × at 90 %."""
    import matplotlib.pyplot as plt

    protocols = [p for p in ("paper", "report") if (df.protocol == p).any()]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6.2 * len(protocols), 4.2), squeeze=False)
    logits = "tanh logits" if s["PAPER_OUTPUT_TANH"] else "free logits"
    titles = {"paper": f"the paper's protocol: SGD levels, every level at α0\n(batch 300, 1 epoch, tanh, {logits})",
              "report": f"the report's rule κ_ℓ = α0/(100(1+ℓ)), {s['REPORT_LEVEL']} levels\n"
                        f"(batch 1024, {s['REPORT_EPOCHS']} epochs, ReLU)"}
    for ax, protocol in zip(axes[0], protocols):
        sub = df[df.protocol == protocol]
        alphas = sorted(sub.alpha0.unique())
        cmap = plt.get_cmap("viridis")  # ordered colours for ordered α0 (10 categorical ones had near-twins)
        for i, a in enumerate(alphas):
            color = cmap(i / max(1, len(alphas) - 1) * 0.92)
            g = sub[sub.alpha0 == a]
            means = g.groupby("height").test_error.mean()
            ax.plot(means.index, means.values, marker="os^D"[i % 4], ms=3, color=color, label=f"α0 = {a:g}")
            bad = g[g.status != "ok"]
            if len(bad):
                ax.scatter(bad.height, [FAILED] * len(bad), marker="x", color=color, s=30)
            if protocol == "report":
                cited = [(h, S.report_tower_acc(a, h)) for h in means.index]
                pts = [(h, 100 - c.value) for h, c in cited if c is not None]
                if pts:
                    ax.plot(*zip(*pts), ls=":", color=color, lw=1)
        _height_axis(ax, sub.height.unique())
        ax.set_yscale("log")
        ax.set_ylim(0.8, 100)
        ax.set_ylabel("test error % (× diverged, counted as 90 %)")
        ax.set_title(titles[protocol] + (";  dotted: the report's numbers" if protocol == "report" else ""),
                     fontsize=9)
        ax.legend(fontsize=7, ncol=2)
        ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    save_figure(s, fig, "error_vs_height")
    return fig


def sensitivity_figure(s: Setup, df):
    import matplotlib.pyplot as plt

    sens = sensitivity(df)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for seed, g in sens.groupby("seed"):
        ax.plot(g.height, g.sd_over_alpha0, marker="o", ms=3, alpha=0.6, label=f"seed {seed}")
    mean = sens.groupby("height").sd_over_alpha0.mean()
    logits = "tanh" if s["PAPER_OUTPUT_TANH"] else "free"
    ax.plot(mean.index, mean.values, color="k", lw=2, label=f"mean ({logits} logits)")
    if (df.protocol == CHECK).any():
        other = sensitivity(df, CHECK).groupby("height").sd_over_alpha0.mean()
        ax.plot(other.index, other.values, color="k", lw=1.5, ls="--",
                label=f"mean, {'free' if logits == 'tanh' else 'tanh'} logits (robustness check)")
    _height_axis(ax, sens.height.unique())
    ax.set_ylabel("sd over α0 of test error (pp)")
    ax.set_title("Sensitivity to α0 (the paper's protocol)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(s, fig, "sensitivity_vs_height")
    return fig


# -- cost ---------------------------------------------------------------------------------------------
def costs(s: Setup, repetitions: int | None = None, name: str = "cost.json") -> dict | None:
    """Step time of SGD towers of each height next to plain torch.optim.SGD, repetition by repetition
    in one process (paired), the noise floor (torch against itself), and the memory held. Measured once
    per output folder and kept in ``cost.json`` (a re-executed notebook shows the same numbers); not on
    the smoke profile, whose outputs must not depend on the machine's load (None). ``repetitions`` and ``name``:
    another measurement (the follow-up's, ``cost_follow_up.json``), COST_REPS repetitions by default."""
    from .common import training_allowed

    if s.profile == "smoke":
        return None
    path = s.records / name
    if path.exists():
        return io.read_json(path, what="the measured tower costs")
    if not training_allowed(s.params.get("TRAIN", True)):  # measuring is off with training: report it missing
        return None
    import os
    import platform

    import torch

    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None  # other work on the machine skews timings
    with bench.one_thread():  # timings are per core; the thread count is restored after
        steps, warmup = (20, 5) if s.profile == "smoke" else (100, 20)
        base = bench.torch_step(torch.optim.SGD, lr=0.01)
        reps = []
        for _ in range(s["COST_REPS"] if repetitions is None else repetitions):
            row = {"torch SGD": bench.time_step(base, steps=steps, warmup=warmup),
                   "torch SGD again": bench.time_step(base, steps=steps, warmup=warmup)}
            for h in s["COST_HEIGHTS"]:
                row[h] = bench.time_step(bench.hypernb_step(f"sgd/sgd*{h}", alpha=0.01, kappa=1e-5), steps=steps,
                                         warmup=warmup)
            reps.append(row)
        memory = {h: bench.held_memory(bench.hypernb_step(f"sgd/sgd*{h}", alpha=0.01, kappa=1e-5))[0]
                  for h in s["COST_HEIGHTS"]}
        env = io.environment(torch.device("cpu"))  # threads: 1, as measured
    out = {"heights": list(s["COST_HEIGHTS"]), "reps": [{str(k): v for k, v in r.items()} for r in reps],
           "held_mb": {str(h): m for h, m in memory.items()}, "env": env,
           "setting": f"MNIST MLP batch 256, CPU, 1 thread, {steps} steps per measurement, {platform.machine()}",
           "load_average_before": load}
    if training_allowed(s.params.get("TRAIN", True)):
        io.write_json(path, out)
    return out


def per_level_percent(cost: dict) -> list[float]:
    """Per repetition: least-squares slope of step time over height, % of that repetition's height-1 step."""
    out = []
    hs = cost["heights"]
    for rep in cost["reps"]:
        ts = [rep[str(h)] for h in hs]
        mh, mt = statistics.fmean(hs), statistics.fmean(ts)
        slope = sum((h - mh) * (t - mt) for h, t in zip(hs, ts)) / sum((h - mh) ** 2 for h in hs)
        out.append(100 * slope / ts[0])
    return out


def cost_table(cost: dict | None):
    import pandas as pd

    if cost is None:
        return pd.DataFrame({"cost": ["measured on the demo and full profiles only (timings vary with the machine)"]})
    rows = []
    for h in ["torch SGD again"] + [str(h) for h in cost["heights"]]:
        ratios = [rep[h] / rep["torch SGD"] for rep in cost["reps"]]
        rows.append({"configuration": "torch SGD again (noise floor)" if h == "torch SGD again" else f"SGD tower h={h}",
                     "ms per step (median)": f"{statistics.median(rep[h] for rep in cost['reps']):.3f}",
                     "ratio to torch SGD (median, min–max)": f"{statistics.median(ratios):.2f} "
                                                             f"({min(ratios):.2f}–{max(ratios):.2f})",
                     "MB held between steps": "–" if h not in cost["held_mb"] else f"{cost['held_mb'][h]:.3f}"})
    return pd.DataFrame(rows)


def cost_figure(s: Setup, cost: dict | None, wall=None):
    import matplotlib.pyplot as plt

    if cost is None:
        return None
    hs = cost["heights"]
    fig, axes = plt.subplots(1, 3 if wall is not None else 2, figsize=(14 if wall is not None else 10, 3.6))
    for rep in cost["reps"]:
        axes[0].plot(hs, [rep[str(h)] / rep["torch SGD"] for h in hs], color="C0", alpha=0.4, marker=".")
    axes[0].axhline(1.0, color="k", lw=0.8, ls="--")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("tower height")
    axes[0].set_ylabel("step time / torch SGD (each line a repetition)")
    axes[1].plot(hs, [cost["held_mb"][str(h)] for h in hs], marker="o")
    axes[1].set_xscale("log")
    axes[1].set_ylim(0, max(cost["held_mb"].values()) * 1.3)
    axes[1].set_xlabel("tower height")
    axes[1].set_ylabel("MB held between steps (exact)")
    if wall is not None:
        axes[2].plot(wall.height, wall.seconds_per_epoch, marker="o")
        _height_axis(axes[2], wall.height)
        axes[2].set_ylim(0, None)
        axes[2].set_ylabel("training wall clock, s per epoch")
    fig.tight_layout()
    save_figure(s, fig, "cost_per_height")
    return fig


def wall_clock(s: Setup):
    """Training wall clock per height: one seed of the paper's protocol at α0 = 10⁻², trained alone
    (batch=1, so that each run's time is its own); measured once and kept in ``wall_clock.json``."""
    import pandas as pd

    from ..train import run
    from .common import training_allowed

    if s.profile == "smoke":
        return None
    path = s.records / "wall_clock.json"
    if path.exists():
        return pd.DataFrame(io.read_json(path, what="the measured training wall clock"))
    if not training_allowed(s.params.get("TRAIN", True)):
        return None
    rows = []
    for h in sorted(set(s["COST_HEIGHTS"]) | {0}):
        cfg = {**paper_config(s, 1e-2, h), "seeds": [s["SEEDS"][0]], "quiet": True}
        r = run(cfg, batch=1)
        rows.append({"height": h, "seconds_per_epoch": r.seeds[0].time_s / max(1, len(r.seeds[0].epochs))})
    io.write_json(path, rows)
    return pd.DataFrame(rows)


# -- follow-ups of the claims the first run left inconclusive ---------------------------------------------------
def follow_up_runs(s: Setup) -> dict:
    """The follow-ups' runs: the paper's grid at heights 0 and 5 (the two the claim compares) on
    ``FOLLOW_UP_SEEDS``, and ``FOLLOW_UP_COST_REPS`` new repetitions of the cost measurement (kept in
    ``cost_follow_up.json``; not on the smoke profile); the grid only on the paper's model (``PAPER_OUTPUT_TANH``),
    on which its claim is declared. Returns {follow-up id: seed (or repetition) →
    difference}."""
    out = {}
    check(s.params)  # (as at the notebook's start)
    seeds = list(s["FOLLOW_UP_SEEDS"] or [])
    if seeds and s["PAPER_OUTPUT_TANH"]:  # declared on arXiv v1's model, as the claim it follows
        tall = 5 if 5 in s["HEIGHTS"] else max(s["HEIGHTS"])
        points = [("paper", a, h, {**paper_config(s, a, h), "seeds": seeds}) for h in (0, tall) for a in s["ALPHAS0"]]
        df = _tidy(points, run_grid(s, [cfg for *_, cfg in points], desc="follow-up: towers' spread over α0"))
        out["towers-less-sensitive-follow-up"] = _spread_differences(df, "paper")[0]
    if s["FOLLOW_UP_COST_REPS"] and s.profile != "smoke":
        cost = costs(s, repetitions=s["FOLLOW_UP_COST_REPS"], name="cost_follow_up.json")  # None: not measured, training off
        out["towers-level-cost-follow-up"] = {} if cost is None else dict(enumerate(per_level_percent(cost)))
    seeds = list(s["FOLLOW_UP_FAIL_SEEDS"] or [])
    top = [a for a in s["ALPHAS0"] if a > 1e2]
    if seeds and s["PAPER_OUTPUT_TANH"] and top:  # every tower fails: the paper's grid at α0 > 10², heights ≥ 1
        points = [("paper", a, h, {**paper_config(s, a, h), "seeds": seeds}) for h in s["HEIGHTS"] if h >= 1
                  for a in top]
        df = _tidy(points, run_grid(s, [cfg for *_, cfg in points], desc="follow-up: every tower fails"))
        out["towers-fail-above-100-follow-up"] = _failed_seeds(df)
    seeds = list(s["FOLLOW_UP_SATURATE_SEEDS"] or [])
    if seeds and {3, 10} <= set(s["REPORT_HEIGHTS"]):  # gains saturate: the report's grid, α0 = 10⁻⁴, heights 3, 10
        points = [("report", 1e-4, h, {**report_config(s, 1e-4, h), "seeds": seeds}) for h in (3, 10)]
        df = _tidy(points, run_grid(s, [cfg for *_, cfg in points], desc="follow-up: gains saturate"))
        out["report-towers-saturate-follow-up"] = _height_differences(df, 1e-4, 3, 10)
    return out


def _height_differences(df, alpha0: float, h1: int, h0: int) -> dict:
    """Per seed: test error at height h1 − at height h0, on the report's grid at ``alpha0``."""
    rep = df[(df.protocol == "report") & (df.alpha0 == alpha0)]

    def err(h):
        return dict(zip(rep[rep.height == h].seed, rep[rep.height == h].test_error))

    return differences(err(h1), err(h0))


def first_differences(df, cost: dict | None) -> dict:
    """The first run's per-seed (per-repetition) differences of the claims followed up (for a rate, per seed
    1.0 where the failure happened)."""
    out = {"towers-less-sensitive-follow-up": _spread_differences(df, "paper")[0]}
    if cost is not None:
        out["towers-level-cost-follow-up"] = dict(enumerate(per_level_percent(cost)))
    paper = df[df.protocol == "paper"]
    out["towers-fail-above-100-follow-up"] = _failed_seeds(paper[(paper.alpha0 > 1e2) & (paper.height >= 1)])
    out["report-towers-saturate-follow-up"] = _height_differences(df, 1e-4, 3, 10)
    return out


def train(s: Setup) -> None:
    """Train (or resume) the grids and take the measurements the notebook reads, without Jupyter
    (``python -m hypernb records``)."""
    run_all(s)
    costs(s)
    wall_clock(s)
    follow_up_runs(s)


# -- verdicts ---------------------------------------------------------------------------------------------
def verdicts(s: Setup, df, cost: dict) -> list:
    out = []
    effect, tall = _spread_change(df, "paper")
    out.append(C.judge(C.BY_ID["towers-less-sensitive"], effect, s.profile, evidence="figures/sensitivity_vs_height.png",
                       detail=f"height {tall} vs 0"))
    paper = df[df.protocol == "paper"]
    top = paper[(paper.alpha0 > 1e2) & (paper.height >= 1)]
    seeds = _failed_seeds(top)
    v = C.judge(C.BY_ID["towers-fail-above-100"], None, s.profile, failures=(int(sum(seeds.values())), len(seeds)),
                missing="" if len(top) else "no run with α0 > 10² and height ≥ 1", evidence="figures/error_vs_height.png")
    if len(top):
        v.reason += (f" (a seed fails if every tower of it does); of the runs, {int(_failed(top).sum())} of {len(top)} "
                     "failed"
                     + _failure_context(top, paper[(paper.alpha0 > 1e2) & (paper.height == 0)]))
    out.append(v)
    if cost is None:
        why = "not measured on the smoke profile"
        out += [C.judge(C.BY_ID["towers-level-cost"], None, s.profile, missing=why),
                C.judge(C.BY_ID["report-towers-memory"], None, s.profile, missing=why)]
    else:
        pct = per_level_percent(cost)
        out.append(C.judge(C.BY_ID["towers-level-cost"], interval(pct), s.profile,
                           evidence="figures/cost_per_height.png"))
        mem = cost["held_mb"]
        hs = cost["heights"]
        growth = (mem[str(hs[-1])] - mem[str(hs[0])]) / (hs[-1] - hs[0]) / mem[str(hs[0])] * 100
        out.append(C.judge(C.BY_ID["report-towers-memory"], interval([growth]), s.profile,
                           evidence="figures/cost_per_height.png", detail="exact bytes, no noise"))
    def pair(claim_id, a, h1, h0):
        d = _height_differences(df, a, h1, h0)
        effect = interval(d.values()) if d else None
        v = C.judge(C.BY_ID[claim_id], effect, s.profile, values=list(d.values()),
                    missing="" if effect is not None else f"no runs at α0 = {a:g}, heights {h0} and {h1}",
                    evidence="figures/error_vs_height.png")
        if effect is not None and all(round(x, 6) == 0 for x in d.values()):
            v.reason += (f"; every seed ends at the same error at heights {h1} and {h0}: the levels between change "
                         "nothing measurable at these κ")
        out.append(v)

    pair("report-towers-hurt-good-alpha", 1.0, 3, 0)
    pair("report-towers-help-small-alpha", 1e-4, 3, 0)
    pair("report-towers-saturate", 1e-4, 3, 10)
    return out
