"""Figures from Results. Every function returns a matplotlib Figure (nothing is shown or saved here)."""
from __future__ import annotations

import math
import textwrap

import numpy as np

PANEL_DPI = 100  # the interactive panel's figures (PNG) and its static preview


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(result, key: str):
    """Step axis and mean / min / max over the seeds that recorded ``key``, up to the longest seed: a
    seed that stopped early (diverged) leaves the statistics there, and never cuts the others' curves.
    A diverged seed's values logged after the step it diverged at are not drawn (a fixed top-level κ
    would otherwise run on past it), and a curve with no finite value is None (nothing to draw)."""
    import warnings

    seeds = [s for s in result.seeds if (s.loss if key == "loss" else s.trajectory.get(key))]
    if not seeds:
        return None
    if key == "loss":
        axes, values = [s.steps for s in seeds], [s.loss for s in seeds]
    else:
        axes, values = [s.trajectory["step"] for s in seeds], [s.trajectory[key] for s in seeds]
    steps = max(axes, key=len)  # every seed logs the same steps; one that stopped has a prefix of them
    arr = np.full((len(values), len(steps)), np.nan)
    for i, (s, v) in enumerate(zip(seeds, values)):
        arr[i, :min(len(v), len(steps))] = np.asarray(v[:len(steps)], dtype=float)
        if getattr(s, "status", None) == "diverged" and getattr(s, "diverged_at_step", None) is not None:
            arr[i, np.asarray(steps) > s.diverged_at_step] = np.nan
    arr[~np.isfinite(arr)] = np.nan  # a diverged value ends the line instead of breaking the axis
    if np.isnan(arr).all():
        return None
    with warnings.catch_warnings():  # a step where every seed is NaN stays NaN (a gap), without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(steps), np.nanmean(arr, 0), np.nanmin(arr, 0), np.nanmax(arr, 0)


def step_size_in_use(result):
    """Like :func:`_mean_curve` for the level-0 step size a run *used* at each logged step: its α (learned
    or fixed) times its schedule's multiplier for that step's epoch (``schedule="cosine"`` or ``"step"``
    multiply α; the recorded α is before it), or a peer's own step size (d·lr, η, lr: already scheduled)."""
    from .train import schedule_multiplier

    if any("step_size" in s.trajectory for s in result.seeds):
        return _mean_curve(result, "step_size")
    c = _mean_curve(result, "alpha")
    schedule = result.config.get("schedule") or "none"
    if c is None or schedule == "none":
        return c
    ends = [e["step"] for e in max((s.epochs for s in result.seeds), key=len)]  # last step of each epoch
    if not ends:
        return c
    epochs = int(result.config.get("epochs") or len(ends))
    # α logged after step s was used in step s (a step updates α first, then the weights with it), which ran in
    # the first epoch whose last step is ≥ s
    epoch = np.minimum(np.searchsorted(ends, c[0], side="left"), epochs - 1)
    factor = np.array([schedule_multiplier(schedule, int(e), epochs) for e in epoch])
    return c[0], c[1] * factor, c[2] * factor, c[3] * factor


CURVE_STYLES = ("-", "--", "-.", (0, (1, 1)))


def curves(results: dict, key: str = "loss", ax=None, logy: bool = False, title: str = "", ylabel: str = "",
           symlog: bool = False, minus: dict | None = None):
    """One line per labelled Result (mean over seeds, band = min..max). ``key``: "loss" or a
    hyperparameter name from the trajectory ("alpha", "mu", "hyper.alpha", …). ``symlog``: a
    symmetric-log y axis (for values that may cross zero, such as a learned α); a curve of one or
    two points is drawn with markers, so it never leaves the axes empty. ``minus``: label → a value
    subtracted from that curve (e.g. its starting value, to show a change too small for the value's axis)."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, result) in enumerate(results.items()):
        c = _mean_curve(result, key)
        if c is None:
            continue
        x, mean, lo, hi = c
        shift = (minus or {}).get(label, 0.0)
        mean, lo, hi = mean - shift, lo - shift, hi - shift
        # a line style per curve as well as a colour: two curves that coincide stay visible as two
        (line,) = ax.plot(x, mean, label=label, lw=1.4, ls=CURVE_STYLES[i % len(CURVE_STYLES)],
                          marker="o" if len(x) <= 2 else None, ms=4)
        if len(result.seeds) > 1:
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        for s in result.seeds:
            if s.status == "diverged" and s.diverged_at_step:
                ax.axvline(s.diverged_at_step, color=line.get_color(), ls=":", lw=1)
    if symlog:
        symlog_axis(ax, [line.get_ydata() for line in ax.lines])
    elif logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or ("training loss" if key == "loss" else key))
    if title:
        ax.set_title(title)
    if not ax.lines:  # say why the panel is empty rather than leave a blank axis
        unlogged = any(r.seeds and not any(s.steps for s in r.seeds) for r in results.values())
        why = "\n(a run shorter than log_every steps logs nothing)" if unlogged else ""
        ax.text(0.5, 0.5, f"nothing logged for {key!r}{why}", transform=ax.transAxes, ha="center", va="center",
                fontsize=8, color="0.4")
    elif len(results) > 1:
        several = any(len(r.seeds) > 1 for r in results.values())
        ax.legend(fontsize=7, title="line: mean over seeds; band: min–max" if several else None, title_fontsize=7)
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
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=PANEL_DPI)
    curves({result.config["optimizer"]: result}, "loss", ax=a, title="training loss")
    curves({"α": result}, "alpha", ax=b, symlog=True, title="learned step size α (symmetric log: α may cross 0)",
           ylabel="α")
    fig.tight_layout()
    return fig


# -- the interactive panel's figures ----------------------------------------------------------------------
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_METRICS = {"test_acc": ("test accuracy (%)", 100.0), "test_bits": ("test bits per character", 1.0),
            "test_loss": ("test loss", 1.0)}


def level_name(key: str) -> str:
    """A trajectory key as the panel writes it: "alpha" → "α", "hyper.alpha" → "κ₁" (the step size
    of hyper level 1), "hyper.hyper.alpha" → "κ₂", "beta1" → "β₁", "hyper.mu" → "μ (level 1)"."""
    level = key.count("hyper.")
    name = key.rsplit(".", 1)[-1]
    if name == "alpha":
        return "α" if level == 0 else f"κ{str(level).translate(_SUB)}"
    pretty = {"mu": "μ", "beta1": "β₁", "beta2": "β₂", "gamma": "γ", "eps": "ε"}.get(name, name)
    return pretty if level == 0 else f"{pretty} (level {level})"


def _sci(v: float) -> str:
    if v == 0:
        return "0"
    e = int(round(math.log10(abs(v))))
    return f"${'-' if v < 0 else ''}10^{{{e}}}$"


def symlog_axis(ax, arrays) -> None:
    """A symmetric-log y axis whose linear part ends at the smallest non-zero |value| plotted, so
    values that span many decades and cross zero (a learned α can go negative) all stay visible;
    at most about six decades are labelled on each side."""
    arrays = [np.asarray(a, dtype=float).ravel() for a in arrays]
    vals = np.concatenate(arrays) if arrays else np.array([])
    mags = np.abs(vals[np.isfinite(vals)])
    mags = mags[mags > 0]
    if not mags.size:
        ax.set_yscale("symlog", linthresh=1e-8)
        return
    lo, hi = math.floor(math.log10(mags.min())), math.ceil(math.log10(mags.max()))
    ax.set_yscale("symlog", linthresh=10.0 ** lo, linscale=0.3)
    step = max(1, math.ceil((hi - lo) / 5))
    ticks = [10.0 ** e for e in range(hi, lo - 1, -step)]
    if any((a[np.isfinite(a)] < 0).any() for a in arrays):
        # ±10^lo sit just beside 0 (the linear part is short): labelled, the three would overlap
        ticks = [t for t in ticks if t > 10.0 ** lo] or ticks
        ticks += [-t for t in ticks]
    ticks = sorted(set(ticks + [0.0]))
    ax.set_yticks(ticks, [_sci(t) for t in ticks])
    from matplotlib.ticker import NullLocator

    ax.yaxis.set_minor_locator(NullLocator())


def _levels(result) -> list[str]:
    """The hyper levels' step-size keys a Result recorded: ["hyper.alpha", "hyper.hyper.alpha", …]."""
    keys = set()
    for s in result.seeds:
        keys.update(k for k in s.trajectory if k.endswith("alpha") and k.startswith("hyper."))
    return sorted(keys, key=lambda k: k.count("hyper."))


def learned_momenta(result) -> list[str]:
    """The μ, γ and β keys of level 0 that a hyper level learned in this Result: those whose recorded
    value moved (Adam_α records β₁, β₂ that it never learns; SGD records μ = 0 without momentum)."""
    if not _levels(result):
        return []
    keys = []
    for key in ("mu", "gamma", "beta1", "beta2"):
        values = [v for s in result.seeds for v in s.trajectory.get(key, [])]
        if values and any(v != values[0] for v in values):
            keys.append(key)
    return keys


# the panel's colours: tab10, then the dark and middle shades of tab20b's five hues (20 before one repeats)
PANEL_COLORS = [f"C{i}" for i in range(10)] + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
                                               "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b", "#ce6dbd"]


def _epoch_metric(result, metric: str):
    seeds = [s for s in result.seeds if s.epochs]
    if not seeds:
        return None
    n = min(len(s.epochs) for s in seeds)
    x = np.array([seeds[0].epochs[i]["epoch"] for i in range(n)], dtype=float)
    y = np.array([[s.epochs[i].get(metric, np.nan) for i in range(n)] for s in seeds], dtype=float).mean(0)
    return x, y * _METRICS.get(metric, ("", 1.0))[1]


def panel_figure(entries, metric: str = "test_acc", header: str | None = None,
                 note: str = "press Run: each run adds its curves here"):
    """The panel's comparison: training loss per step, the test metric per epoch, the learned α,
    the hyper levels' step sizes κ₁, κ₂, … (symmetric-log axes) and learned μ/β, with one colour
    per run and a legend of full labels. ``entries``: ``(number, label, result, highlight)`` tuples,
    where ``result`` has ``.seeds`` (SeedResults, possibly still training). A matplotlib Figure
    without pyplot (nothing is shown)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    wrapped = [textwrap.fill(label, 32, subsequent_indent="   ") for _, label, _, _ in entries]
    rows = sum(label.count("\n") + 1 for label in wrapped)  # the runs' legend: one column, never cut
    size = 8.5 if rows <= 16 else 7.5
    # the key is one of six cells (about 37 % of the figure's height): a longer legend makes the figure taller
    height = max(6.9, rows * size * 1.45 / 72 / 0.37 + 0.6)
    fig = Figure(figsize=(11.5, height), dpi=PANEL_DPI)  # fixed margins: a constrained layout doubles the time
    top = 0.95
    if header:
        fig.text(0.01, 0.995, header, fontsize=9.5, ha="left", va="top", wrap=True)
        top = 0.95 - 0.028 * (header.count("\n") + 1)
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 0.85], left=0.07, right=0.99, bottom=0.07, top=top,
                            wspace=0.3, hspace=0.38)
    ax_loss, ax_metric, ax_key = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2])
    ax_alpha, ax_kappa, ax_mom = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[1, 2])
    palette = PANEL_COLORS
    styles = ["-", "--", ":", "-."]
    handles, labels, losses, alphas, kappas, moms = [], [], [], [], [], []
    early = []  # runs that diverged before their first logged loss
    max_levels = 0
    for shown, (number, label, result, highlight) in zip(wrapped, entries):
        color = palette[(number - 1) % len(palette)]
        lw = 2.6 if highlight else 1.4
        diverged = [s for s in result.seeds if s.status == "diverged"]
        c = _mean_curve(result, "loss")
        if c is None and diverged:  # stopped before its first logged loss: say so where the curve would be
            first = min(s.diverged_at_step or 0 for s in diverged)
            ax_loss.text(0.02, 0.97 - 0.07 * len(early), f"#{number} diverged at step {first}, before its first "
                         "logged loss", transform=ax_loss.transAxes, va="top", fontsize=8, color=color)
            early.append(number)
        if c is not None:
            x, y = c[0], c[1]
            losses.append(y)
            ax_loss.plot(x, y, color=color, lw=lw, marker="o" if len(x) <= 2 else None, ms=4)
            finite = np.isfinite(y)
            if diverged and finite.any():
                ax_loss.plot(x[finite][-1], y[finite][-1], "x", color=color, ms=9, mew=2)
        m = _epoch_metric(result, metric)
        if m is not None:
            ax_metric.plot(m[0], m[1], color=color, lw=lw, marker="o", ms=5)
        a = step_size_in_use(result)
        if a is not None:
            ax_alpha.plot(a[0], a[1], color=color, lw=lw, marker="o" if len(a[0]) <= 2 else None, ms=4)
            alphas.append(a[1])
            finite = np.isfinite(a[1])
            if diverged and finite.any():
                ax_alpha.plot(a[0][finite][-1], a[1][finite][-1], "x", color=color, ms=9, mew=2)
        levels = _levels(result)
        max_levels = max(max_levels, len(levels))
        for i, key in enumerate(levels):
            k = _mean_curve(result, key)
            if k is not None:
                ax_kappa.plot(k[0], k[1], color=color, lw=lw * (1 if i == 0 else 0.8), ls=styles[i % len(styles)],
                              marker="o" if len(k[0]) <= 2 else None, ms=3)
                kappas.append(k[1])
        for key in learned_momenta(result):
            ls = "--" if key == "beta2" else "-"
            mm = _mean_curve(result, key)
            if mm is not None:
                ax_mom.plot(mm[0], mm[1], color=color, lw=lw, ls=ls, marker="o" if len(mm[0]) <= 2 else None, ms=3)
                moms.append(key)
        for s in diverged:
            if s.diverged_at_step:
                for ax in (ax_loss, ax_alpha, ax_kappa):
                    ax.axvline(s.diverged_at_step, color=color, ls=":", lw=1)
        handles.append(Line2D([], [], color=color, lw=lw))
        labels.append(shown)
    metric_label = _METRICS.get(metric, (metric.replace("_", " "), 1.0))[0]
    for ax, title, ylabel in ((ax_loss, "training loss (mean over the logged steps)", "training loss"),
                              (ax_metric, f"{metric_label} after each epoch", metric_label),
                              (ax_alpha, "step size α in use (level 0, × schedule; symmetric log)", "α"),
                              (ax_kappa, "hyper levels' step sizes κ₁, κ₂, … (symmetric log)", "κ"),
                              (ax_mom, "learned μ, γ or β (level 0)", "value")):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_xlabel("epoch" if ax is ax_metric else "step", fontsize=9)
        ax.tick_params(labelsize=8)
        if not ax.lines and not (ax is ax_loss and early):
            empty = note if not entries else "nothing recorded yet"
            if entries and ax is ax_kappa:
                empty = "no hyper level in these runs (height 0)"
            if entries and ax is ax_mom:
                empty = ("no μ, γ or β learned in these runs (SGD's μ is learned when μ ≠ 0, RMSProp's γ and "
                         "Adam's β₁, β₂ whenever the height is ≥ 1; Adam_α learns α only)")
            ax.text(0.5, 0.5, textwrap.fill(empty, 36), transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="0.45")
    finite = np.concatenate([v[np.isfinite(v)] for v in losses]) if losses else np.array([])
    if finite.size and (finite > 0).all() and finite.max() > 10 * finite.min():  # log only over a decade or more
        ax_loss.set_yscale("log")
    if alphas:
        symlog_axis(ax_alpha, alphas)
        ax_alpha.axhline(0, color="k", lw=0.5)
    if kappas:
        symlog_axis(ax_kappa, kappas)
        ax_kappa.axhline(0, color="k", lw=0.5)
    epochs = sorted({float(x) for line in ax_metric.lines for x in line.get_xdata()})
    if 0 < len(epochs) <= 12:
        ax_metric.set_xticks(epochs, [f"{e:g}" for e in epochs])
    elif epochs:
        from matplotlib.ticker import MaxNLocator

        ax_metric.xaxis.set_major_locator(MaxNLocator(integer=True))
    # the step axes share one range, from 0 to the last step any of them drew (a lone marker at step 0
    # would otherwise centre its axis on itself)
    last = max([float(np.max(line.get_xdata())) for ax in (ax_loss, ax_alpha, ax_kappa, ax_mom)
                for line in ax.lines if len(line.get_xdata())] + [1.0])
    for ax in (ax_loss, ax_metric, ax_alpha, ax_kappa, ax_mom):
        if not ax.lines and not (ax is ax_loss and early):
            ax.set_xticks([])
            ax.set_yticks([])
        elif ax is not ax_metric:
            ax.set_xlim(0, last * 1.02)
    ax_key.axis("off")
    if handles:
        extra_h, extra_l = [], []
        if max_levels > 1:
            for i in range(min(max_levels, len(styles))):
                extra_h.append(Line2D([], [], color="0.3", ls=styles[i]))
                extra_l.append(f"κ{str(i + 1).translate(_SUB)}" + (" (and every 4th above)" if max_levels > 4 else ""))
        if moms:
            for key, ls in zip(("μ, γ or β₁", "β₂"), ("-", "--")):
                extra_h.append(Line2D([], [], color="0.3", ls=ls))
                extra_l.append(key)
        # each axis keys its own line styles; the key holds the runs alone, smaller as they grow
        if extra_h[:len(extra_h) - 2 * bool(moms)]:
            ax_kappa.legend(extra_h[:len(extra_h) - 2 * bool(moms)], extra_l[:len(extra_l) - 2 * bool(moms)],
                            fontsize=7.5, loc="best", framealpha=0.8)
        if moms:
            ax_mom.legend(extra_h[-2:], extra_l[-2:], fontsize=7.5, loc="best", framealpha=0.8)
        ax_key.legend(handles, labels, loc="upper left", fontsize=size, frameon=False, title="runs",
                      title_fontsize=9, borderaxespad=0, alignment="left")
    else:
        ax_key.text(0, 1, textwrap.fill(note, 36), va="top", fontsize=9, color="0.45", transform=ax_key.transAxes)
    return fig


def figure_png(fig, dpi: int = PANEL_DPI) -> bytes:
    """A Figure as PNG bytes (what the panel and its static preview display)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
