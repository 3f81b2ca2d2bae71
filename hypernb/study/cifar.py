"""Notebook 02: ResNet-20 on CIFAR-10, SGD/SGD learning α and μ over the paper's grid."""
from __future__ import annotations

from .. import data
from . import references as R
from .common import Claim, Setup, run_grid, save_figure, save_table

NAME = "02_resnet20_cifar10"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "EPOCHS": ("int", "none"), "ALPHAS": ("list", "none"),
    "MUS": ("list", "none"), "KAPPA": ("str", "float"), "DATASET": "str", "OUT_DIR": "str",
    "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "EPOCHS": 1, "ALPHAS": [0.1], "MUS": [0.9]},
    "demo": {"SEEDS": [0], "EPOCHS": 2, "ALPHAS": [0.01, 0.1, 1.0], "MUS": [0.9]},
    "full": {"SEEDS": [0, 1, 2], "EPOCHS": 200, "ALPHAS": [0.01, 0.1, 1.0], "MUS": [0.09, 0.9, 0.99]},
}


def task(s: Setup) -> tuple[str, str]:
    """(task, a sentence saying what data this is). DATASET: auto | full | subset."""
    want = s["DATASET"]
    if want not in ("auto", "full", "subset"):
        raise ValueError(f"DATASET must be auto, full or subset, got {want!r}")
    full = want == "full" or (want == "auto" and data.available("cifar10", data.data_root()))
    if full:
        return "cifar10-resnet20", "full CIFAR-10 (50,000 / 10,000)"
    return ("cifar10subset-resnet20", "the CIFAR-10 SUBSET (first 4,000 train / 1,000 test images): full CIFAR-10 "
            "is not available here, so accuracies are far below full-data numbers and not comparable with them")


def hyper_kappa(s: Setup, alpha0: float, mu0: float):
    """The report's (apparently the paper's) per-hyperparameter steps, κ_α = α0²·10⁻³ and
    κ_μ = 10⁻⁶/(1 − μ0), for an SGDPerParam hyperoptimizer; or one shared κ for SGD."""
    if s["KAPPA"] == "report":
        return "sgd/sgdperparam", {"alpha": alpha0 ** 2 * 1e-3, "mu": 1e-6 / (1 - mu0)}
    return "sgd/sgd", float(s["KAPPA"])


def grid(s: Setup):
    t, _ = task(s)
    common = dict(task=t, profile=s.profile, epochs=s["EPOCHS"], seeds=list(s["SEEDS"]), log_every=5)
    points = []
    for a in s["ALPHAS"]:
        for m in s["MUS"]:
            opt, kappa = hyper_kappa(s, a, m)
            points.append(("hyperoptimized", a, m, dict(common, optimizer=opt, alpha=a, mu=m, kappa=kappa)))
            points.append(("fixed", a, m, dict(common, optimizer="sgd", alpha=a, mu=m)))
    points.append(("He et al. schedule", 0.1, 0.9, dict(common, optimizer="sgd", alpha=0.1, mu=0.9, schedule="step")))
    return points


def run_all(s: Setup):
    import pandas as pd

    points = grid(s)
    results = run_grid(s, [p[3] for p in points], desc="ResNet-20 grid")
    rows, by_key = [], {}
    for (kind, a, m, _), r in zip(points, results):
        by_key[(kind, a, m)] = r
        acc = r.summary.get("test_acc")
        final = [sd.final for sd in r.seeds if sd.status == "ok"]
        rows.append({"run": kind, "alpha0": a, "mu0": m,
                     "test_acc_%": None if acc is None else 100 * acc["mean"],
                     "std_%": None if acc is None else 100 * acc["std"],
                     "final_alpha": final[0].get("final_alpha") if final else None,
                     "final_mu": final[0].get("final_mu") if final else None,
                     "diverged": sum(sd.status == "diverged" for sd in r.seeds)})
    table = pd.DataFrame(rows)
    save_table(s, table, "resnet20_grid")
    return table, by_key


def comparison(table):
    import pandas as pd

    rows = []
    for _, row in table[table.run != "He et al. schedule"].iterrows():
        key = (row.alpha0, row.mu0)
        ref = R.REPORT_CNN_HYPER if row.run == "hyperoptimized" else R.REPORT_CNN_FIXED
        rows.append({"run": row.run, "α0": row.alpha0, "μ0": row.mu0,
                     "report (no augmentation)": ref.get(key, "–"),
                     "ours": "diverged" if row["test_acc_%"] is None else f"{row['test_acc_%']:.2f}",
                     "learned α": "–" if row.final_alpha is None else f"{row.final_alpha:.4g}",
                     "learned μ": "–" if row.final_mu is None else f"{row.final_mu:.4g}"})
    return pd.DataFrame(rows)


def trajectory_figure(s: Setup, by_key: dict):
    from ..viz import grid_of_curves

    hyper = {f"α0={a:g}, μ0={m:g}": r for (kind, a, m), r in by_key.items() if kind == "hyperoptimized"}
    fig = grid_of_curves({"learned α": hyper, "learned μ": hyper}, key="alpha", ncols=2)
    from ..viz import curves

    curves(hyper, "mu", ax=fig.axes[1], title="learned μ", ylabel="μ")
    fig.axes[0].set_yscale("log")
    save_figure(s, fig, "alpha_mu_trajectories")
    return fig


def accuracy_figure(s: Setup, table):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    grid_rows = table[table.run != "He et al. schedule"]
    for kind, marker in (("fixed", "o"), ("hyperoptimized", "s")):
        sub = grid_rows[grid_rows.run == kind]
        for m in sorted(sub.mu0.unique()):
            pts = sub[sub.mu0 == m]
            ax.plot(pts.alpha0, pts["test_acc_%"], marker=marker, ls="-" if kind == "hyperoptimized" else "--",
                    label=f"{kind}, μ0={m:g}")
    he = table[table.run == "He et al. schedule"]["test_acc_%"]
    if len(he) and he.notna().all():
        ax.axhline(float(he.iloc[0]), color="k", lw=1, ls=":", label="He et al. step schedule")
    ax.set_xscale("log")
    ax.set_xlabel("initial α0")
    ax.set_ylabel("test accuracy %")
    ax.legend(fontsize=7)
    save_figure(s, fig, "accuracy_vs_alpha0")
    return fig


def claims(s: Setup, table) -> list[Claim]:
    t, note = task(s)
    limited = s.profile == "smoke" or t == "cifar10subset-resnet20" or s["EPOCHS"] < 20
    hyper = table[table.run == "hyperoptimized"]["test_acc_%"]
    fixed = table[table.run == "fixed"]["test_acc_%"]
    he = table[table.run == "He et al. schedule"]["test_acc_%"]
    best_h = hyper.max() if hyper.notna().any() else None
    he_v = float(he.iloc[0]) if len(he) and he.notna().all() else None
    ours = f"best hyperoptimized {best_h:.2f} % vs He et al. schedule {he_v:.2f} %" if best_h is not None and he_v \
        else "a run diverged"
    verdict = "inconclusive" if limited or best_h is None or he_v is None else (
        "reproduced" if best_h >= he_v - 1.0 else "refuted")
    out = [Claim("cnn-matches-schedule", "SGD/SGD learning α and μ matches He et al.'s hand-engineered step schedule",
                 "paper", "comparable accuracy (figure only; NeurIPS numbers not retrieved)",
                 "83.73 % best hyperoptimized vs 82.76 % baseline (uncommitted runs, no augmentation)",
                 ours + f" on {note.split(':')[0]}, {s['EPOCHS']} epochs", verdict,
                 "figures/accuracy_vs_alpha0.png")]
    pairs = [(h, f) for h, f in zip(hyper, fixed) if h is not None and f is not None]
    better = sum(h > f for h, f in pairs)
    out.append(Claim("cnn-report-was-kappa0", "The report's committed CNN logs measure hyperoptimization",
                     "report", "–", "its logs show κ = 0: plain SGD, identical to its baseline",
                     f"with κ > 0, hyperoptimized beats fixed at {better} of {len(pairs)} grid points",
                     "refuted", "figures/alpha_mu_trajectories.png",
                     notes="refuted from the report's own logs (kappa: 0.0); our runs are the first real check"))
    return out
