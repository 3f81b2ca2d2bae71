"""Figures from Results. Every function returns a matplotlib Figure (nothing is shown or saved here)."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(result, key: str):
    """Step axis and mean / min / max over the seeds that recorded ``key``."""
    seeds = [s for s in result.seeds if (s.loss if key == "loss" else s.trajectory.get(key))]
    if not seeds:
        return None
    if key == "loss":
        steps = seeds[0].steps
        values = [s.loss for s in seeds]
    else:
        steps = seeds[0].trajectory["step"]
        values = [s.trajectory[key] for s in seeds]
    n = min(len(v) for v in values)
    arr = np.array([v[:n] for v in values], dtype=float)
    return np.asarray(steps[:n]), arr.mean(0), arr.min(0), arr.max(0)


def curves(results: dict, key: str = "loss", ax=None, logy: bool = False, title: str = "", ylabel: str = ""):
    """One line per labelled Result (mean over seeds, band = min..max). ``key``: "loss" or a
    hyperparameter name from the trajectory ("alpha", "mu", "hyper.alpha", …)."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, result in results.items():
        c = _mean_curve(result, key)
        if c is None:
            continue
        x, mean, lo, hi = c
        (line,) = ax.plot(x, mean, label=label, lw=1.4)
        if len(result.seeds) > 1:
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        for s in result.seeds:
            if s.status == "diverged" and s.diverged_at_step:
                ax.axvline(s.diverged_at_step, color=line.get_color(), ls=":", lw=1)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or ("training loss" if key == "loss" else key))
    if title:
        ax.set_title(title)
    if len(results) > 1:
        ax.legend(fontsize=7)
    return fig if fig is not None else ax.figure


def grid_of_curves(groups: dict, key: str = "loss", ncols: int = 2, logy: bool = False, ylabel: str = "",
                   sharey: bool = False):
    """``groups``: panel title → {label: Result}; one panel each."""
    plt = _plt()
    n = len(groups)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.3 * nrows), squeeze=False, sharey=sharey)
    for ax, (title, results) in zip(axes.flat, groups.items()):
        curves(results, key, ax=ax, logy=logy, title=title, ylabel=ylabel)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def run_summary(result):
    """Loss and learned α of one Result (what the interactive panel shows)."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    curves({result.config["optimizer"]: result}, "loss", ax=a, title="training loss")
    curves({"α": result}, "alpha", ax=b, logy=True, title="learned step size α", ylabel="α")
    fig.tight_layout()
    return fig
