"""Short-horizon bias: does the one-step hypergradient point the way a longer horizon would?

A hyperoptimizer moves α along the *one-step* hypergradient, ∂L_{t+1}/∂α = −⟨g_{t+1}, g_t⟩ for SGD: the
effect of α on the very next minibatch's loss. What a practitioner wants is the effect of α on the loss
after many steps. Wu, Ren, Liao & Grosse (ICLR 2018, "Understanding Short-Horizon Bias in Stochastic
Meta-Optimization") showed that greedy one-step meta-objectives prefer step sizes that are too small.
Here we measure it on the MNIST MLP (784-128-10 tanh, free logits) in float64: from a point θ_t
reached by ordinary SGD, for α over several decades,

* h₁(α): the one-step hypergradient, what an SGD/SGD hyperoptimizer follows, averaged over 16 pairs of
  minibatches at θ_t (its expectation: a single pair is mostly minibatch noise);
* dF_T/dα: the derivative, by central finite differences, of F_T(α) = the loss on a fixed set of
  2,048 training examples after T steps of SGD at constant α over the same minibatches, for several T.

Where the signs differ, the hyperoptimizer pushes α the wrong way for that horizon. Cheap (seconds to a
minute on a CPU) and deterministic, so it is computed when a notebook needs it and kept in
``horizon.json`` next to the run records.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import io
from .common import Setup, save_figure, training_allowed

SETTINGS = {  # profile → warm-up steps at α = 0.1, horizons T, α grid, seeds
    "smoke": dict(warmup=20, horizons=[1, 10], alphas=[1e-3, 1e-2, 1e-1, 1.0], seeds=[0], train=4096),
    "demo": dict(warmup=200, horizons=[1, 10, 100], alphas=[10.0 ** e for e in range(-4, 2)], seeds=[0, 1, 2],
                 train=20_000),
    "full": dict(warmup=200, horizons=[1, 10, 100, 300],
                 alphas=[10.0 ** (e / 2) for e in range(-8, 3)], seeds=[0, 1, 2, 3, 4], train=60_000),
}
BATCH, EVAL, PAIRS = 256, 2048, 16


def _data(n: int):
    from ..data import data_root, load_mnist

    arrays = load_mnist(data_root(), download_ok=False)
    x = (arrays["train_x"][:n].to(torch.float64) / 255.0 - 0.1307) / 0.3081
    return x.flatten(1), arrays["train_y"][:n]


def _loss(params, x, y):
    w1, b1, w2, b2 = params
    return torch.nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)


def _grad(params, x, y):
    ps = [p.detach().requires_grad_(True) for p in params]
    return [g.detach() for g in torch.autograd.grad(_loss(ps, x, y), ps)]


def _sgd(params, alpha, batches):
    for xb, yb in batches:
        params = [p - alpha * g for p, g in zip(params, _grad(params, xb, yb))]
    return params


def measure(profile: str) -> dict:
    """The one-step hypergradient and dF_T/dα for every seed, α and T (float64, CPU)."""
    cfg = SETTINGS[profile]
    x, y = _data(cfg["train"])
    ex, ey = x[:EVAL], y[:EVAL]
    rows = []
    for seed in cfg["seeds"]:
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        layers = [torch.nn.Linear(784, 128), torch.nn.Linear(128, 10)]
        params = [t.detach().to(torch.float64) for layer in layers for t in (layer.weight, layer.bias)]
        steps = cfg["warmup"] + 1 + max(cfg["horizons"])
        idx = torch.randint(0, len(x), (steps, BATCH), generator=gen)
        batches = [(x[i], y[i]) for i in idx]
        theta = _sgd(params, 0.1, batches[:cfg["warmup"]])  # an ordinary point of training, not the init
        rest = batches[cfg["warmup"]:]
        pair_idx = torch.randint(0, len(x), (PAIRS, 2, BATCH), generator=gen)
        firsts = [_grad(theta, x[i], y[i]) for i in pair_idx[:, 0]]
        for alpha in cfg["alphas"]:
            one_step = 0.0  # −⟨g(θ − α g_a; B_b), g_a⟩, averaged over the pairs (B_a, B_b)
            for g_a, j in zip(firsts, pair_idx[:, 1]):
                g_b = _grad([p - alpha * g for p, g in zip(theta, g_a)], x[j], y[j])
                one_step -= sum(float((a * b).sum()) for a, b in zip(g_b, g_a)) / PAIRS
            row = {"seed": seed, "alpha": alpha, "one_step": one_step}
            for T in cfg["horizons"]:
                h = 1e-4 * alpha
                f = [float(_loss(_sgd(theta, alpha + s * h, rest[:T]), ex, ey)) for s in (1, -1)]
                row[f"T{T}"] = (f[0] - f[1]) / (2 * h) if all(map(math.isfinite, f)) else float("nan")
                row[f"F{T}"] = (f[0] + f[1]) / 2  # the loss itself after T steps (inf/nan: diverged)
            rows.append(row)
    return {"settings": {**cfg, "batch": BATCH, "eval_examples": EVAL, "pairs": PAIRS}, "rows": rows,
            "env": io.environment(torch.device("cpu"))}


def load_or_measure(s: Setup) -> dict | None:
    """Read ``horizon.json`` from the records, or measure it (None when training is off and it is missing)."""
    path = s.records / "horizon.json"
    if path.exists():
        return io.read_json(path, what="the short-horizon measurements")
    if not training_allowed(s.params.get("TRAIN", True)):
        return None
    out = measure(s.profile)
    io.write_json(path, out)
    return out


def agreement_table(h: dict):
    """Per α: the share of seeds whose one-step hypergradient has the sign of dF_T/dα, for each T."""
    import pandas as pd

    df = pd.DataFrame(h["rows"])
    rows = []
    for alpha, g in df.groupby("alpha"):
        row = {"α": f"{alpha:.3g}", "seeds": len(g)}
        for T in h["settings"]["horizons"]:
            ok = g[f"T{T}"].notna()
            same = np.sign(g.loc[ok, "one_step"]) == np.sign(g.loc[ok, f"T{T}"])
            row[f"sign agrees with T = {T}"] = f"{int(same.sum())}/{int(ok.sum())}"
        rows.append(row)
    return pd.DataFrame(rows)


def figure(s: Setup, h: dict):
    """F_T(α); h₁ and dF_T/dα against α (symmetric log: both cross zero); the sign agreement."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(h["rows"])
    horizons = h["settings"]["horizons"]
    fig, (cx, ax, bx) = plt.subplots(1, 3, figsize=(15, 3.8))
    for i, T in enumerate(horizons):
        for seed, g in df.groupby("seed"):
            loss = g[f"F{T}"].where(np.isfinite(g[f"F{T}"]))
            cx.plot(g.alpha, loss, color=f"C{i}", lw=1, alpha=0.8, marker=".",
                    label=f"T = {T}" if seed == df.seed.min() else None)
            bad = g[~np.isfinite(g[f"F{T}"])]  # at the top edge, whatever the axis' range
            cx.scatter(bad.alpha, [0.97] * len(bad), marker="x", color="C3", transform=cx.get_xaxis_transform())
    cx.set_xscale("log")
    cx.set_yscale("log")
    cx.set_xlabel("α")
    cx.set_ylabel(f"loss after T steps ({EVAL} train. examples)")
    cx.set_title("F_T(α) (× diverged)", fontsize=9)
    cx.legend(fontsize=7)
    for seed, g in df.groupby("seed"):
        ax.plot(g.alpha, g.one_step, color="k", lw=1, alpha=0.6, label=f"one-step hypergradient (mean of {PAIRS} "
                "minibatch pairs)"
                if seed == df.seed.min() else None)
        for i, T in enumerate(horizons):
            ax.plot(g.alpha, g[f"T{T}"], color=f"C{i}", lw=1, alpha=0.8, ls="--",
                    label=f"dF/dα after T = {T} steps (finite difference)" if seed == df.seed.min() else None)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    top = max(1.0, float(np.nanmax(np.abs(df[["one_step", *[f"T{T}" for T in horizons]]].to_numpy()))))
    decades = [10.0 ** e for e in range(-2, int(math.log10(top)) + 2, 2)]
    ax.set_yticks([-d for d in reversed(decades)] + [0.0] + decades)
    ax.set_xlabel("α")
    ax.set_ylabel("derivative w.r.t. α (symmetric log)")
    ax.legend(fontsize=7)
    ax.set_title("negative: a larger α would lower the loss", fontsize=9)
    for i, T in enumerate(horizons):
        ok = df[df[f"T{T}"].notna()]
        share = (np.sign(ok.one_step) == np.sign(ok[f"T{T}"])).groupby(ok.alpha).mean()
        bx.plot(share.index, share.values, marker="o", color=f"C{i}", label=f"T = {T}")
    bx.set_xscale("log")
    bx.set_ylim(-0.05, 1.05)
    bx.set_xlabel("α")
    bx.set_ylabel("share of seeds: same sign as dF_T/dα")
    bx.legend(fontsize=7)
    n = df.seed.nunique()
    fig.suptitle(f"Short-horizon bias on the MNIST MLP (float64, batch {BATCH}, after "
                 f"{h['settings']['warmup']} SGD steps at α = 0.1; {n} seed(s))", fontsize=10)
    fig.tight_layout()
    save_figure(s, fig, "short_horizon_bias")
    return fig
