"""Notebook 03: the char-LSTM on War and Peace, with a contiguous split."""
from __future__ import annotations

from .. import data
from . import references as R
from .common import Claim, Setup, run_grid, save_figure, save_table

NAME = "03_char_rnn"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "EPOCHS": ("int", "none"), "ALPHAS0": ("list", "none"),
    "KAPPAS": ("list", "none"), "KAPPA": "float", "TRAIN_CHARS": ("int", "none"), "OUT_DIR": "str",
    "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "EPOCHS": 1, "ALPHAS0": [2e-3], "KAPPAS": [1e-3], "TRAIN_CHARS": 40_000},
    "demo": {"SEEDS": [0], "EPOCHS": 2, "ALPHAS0": [1e-4, 2e-3, 1e-2], "KAPPAS": [1e-4, 1e-3, 1e-2],
             "TRAIN_CHARS": 600_000},
    "full": {"SEEDS": [0, 1, 2], "EPOCHS": 50, "ALPHAS0": [1e-4, 2e-3, 1e-2], "KAPPAS": [1e-4, 1e-3, 1e-2],
             "TRAIN_CHARS": None},
}


def middle_alpha(s: Setup) -> float:
    """The α0 used for the κ, sign-safe and shuffled comparisons (the report's baseline 2e-3 by default)."""
    return sorted(s["ALPHAS0"])[len(s["ALPHAS0"]) // 2]


def base(s: Setup, **kw) -> dict:
    cfg = dict(task="warpeace-lstm", profile=s.profile, epochs=s["EPOCHS"], seeds=list(s["SEEDS"]), log_every=10,
               train_limit=s["TRAIN_CHARS"], test_limit=None if s.profile == "full" else 100_000)
    if s.profile == "smoke":
        cfg.update(hidden=32, seq_len=50, batch_size=32, test_limit=10_000)
    cfg.update(kw)
    return cfg


def run_all(s: Setup):
    """Adam_α baselines and Adam_α/Adam for each α0; κ sensitivity; sign-safe α; shuffled characters."""
    points = []
    for a in s["ALPHAS0"]:
        points.append((("baseline", a), base(s, optimizer="adambaydin", alpha=a)))
        points.append((("hyperoptimized", a), base(s, optimizer="adambaydin/adam", alpha=a, kappa=s["KAPPA"])))
    a_mid = middle_alpha(s)
    for k in s["KAPPAS"]:
        points.append((("kappa", k), base(s, optimizer="adambaydin/adam", alpha=a_mid, kappa=k)))
    k_big = max(s["KAPPAS"])
    points.append((("sign-safe", k_big), base(s, optimizer="adambaydin/adam", alpha=a_mid, kappa=k_big,
                                              sign_safe=True)))
    points.append((("shuffled", a_mid), base(s, optimizer="adambaydin", alpha=a_mid, text_split="shuffled")))
    results = run_grid(s, [p[1] for p in points], desc="char-LSTM runs")
    return {key: r for (key, _), r in zip(points, results)}


def table(s: Setup, runs: dict):
    import pandas as pd

    rows = []
    for (kind, value), r in runs.items():
        seeds = [sd for sd in r.seeds if sd.status == "ok"]
        alphas = [a for sd in r.seeds for a in sd.trajectory.get("alpha", [])]
        rows.append({"run": kind, "value": value,
                     "val_nats": r.mean("test_loss"), "val_bits": r.mean("test_bits"),
                     "final_alpha": seeds[0].final.get("final_alpha") if seeds else None,
                     "min_alpha": min(alphas) if alphas else None,
                     "status": ",".join(sd.status for sd in r.seeds)})
    df = pd.DataFrame(rows)
    save_table(s, df, "char_rnn_runs")
    return df


def figures(s: Setup, runs: dict):
    from ..viz import curves

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    pick = {f"{k} α0={v:g}": r for (k, v), r in runs.items() if k in ("baseline", "hyperoptimized")}
    curves(pick, "loss", ax=axes[0], title="training loss (nats/char)")
    curves({f"α0={v:g}": r for (k, v), r in runs.items() if k == "hyperoptimized"}, "alpha", ax=axes[1],
           title="learned α (Adam_α / Adam)", ylabel="α")
    curves({f"κ={v:g}": r for (k, v), r in runs.items() if k in ("kappa",)}
           | {f"κ={v:g}, sign-safe": r for (k, v), r in runs.items() if k == "sign-safe"},
           "alpha", ax=axes[2], title="α for each κ (and sign-safe)", ylabel="α")
    axes[2].axhline(0, color="k", lw=0.8)
    fig.tight_layout()
    save_figure(s, fig, "char_rnn")
    fig2, ax = plt.subplots(figsize=(6, 3.4))
    mid = middle_alpha(s)
    curves({"contiguous split": runs[("baseline", mid)],
            "shuffled characters (the report's bug)": runs[("shuffled", mid)]},
           "loss", ax=ax, title="why the report's LSTM stopped at 3.12 nats")
    ax.axhline(entropy(), color="k", ls="--", lw=1, label="unigram entropy")
    ax.legend(fontsize=7)
    save_figure(s, fig2, "shuffled_vs_contiguous")
    return fig, fig2


def entropy() -> float:
    return data.load_corpus("warpeace", data.data_root()).unigram_entropy()


def claims(s: Setup, runs: dict, df) -> list[Claim]:
    smoke = s.profile == "smoke"
    h = entropy()
    shuffled = runs[("shuffled", middle_alpha(s))]
    contiguous = [r for (k, _), r in runs.items() if k == "baseline"]
    best_cont = min(r.mean("test_loss") for r in contiguous if r.mean("test_loss") is not None)
    sh = shuffled.mean("test_loss")
    out = [Claim("rnn-plateau", "The char-RNN's loss plateaus at ≈3.12 nats", "report", "–",
                 f"{R.REPORT_RNN_LOSS} nats, 16 % accuracy", f"shuffled characters: {sh:.3f} nats (unigram entropy "
                 f"{h:.3f}); contiguous split: {best_cont:.3f} nats", "refuted" if best_cont < h - 0.3 and not smoke
                 else "inconclusive", "figures/shuffled_vs_contiguous.png",
                 notes="the plateau is the unigram entropy of shuffled characters: a data bug, not the method")]
    pairs = [(runs[("baseline", a)].mean("test_loss"), runs[("hyperoptimized", a)].mean("test_loss"), a)
             for a in s["ALPHAS0"]]
    wins = sum(1 for b, hh, _ in pairs if b is not None and hh is not None and hh < b)
    ours = "; ".join(f"α0={a:g}: {b:.3f} → {hh:.3f}" for b, hh, a in pairs if b is not None and hh is not None)
    out.append(Claim("rnn-hyper-helps", "Hyperoptimizing α speeds up char-RNN training, most for a poor α0",
                     "paper", "loss \"converges so much faster\" (figure only)",
                     "none of its hyperoptimized runs beat the baseline (on shuffled data)",
                     f"validation nats, baseline → hyperoptimized: {ours}",
                     "inconclusive" if smoke else ("reproduced" if wins >= max(1, len(pairs) - 1) else "refuted"),
                     "figures/char_rnn.png"))
    plain = df[(df.run == "kappa") & (df.value == max(s["KAPPAS"]))]
    safe = df[df.run == "sign-safe"]
    crossed = bool(len(plain) and plain.min_alpha.iloc[0] is not None and plain.min_alpha.iloc[0] < 0)
    out.append(Claim("rnn-alpha-negative", "With a large κ the learned α oscillates around 0 and goes negative",
                     "report", "–", "α oscillated around 0 after ~10 epochs (±κ sign steps)",
                     f"plain α minimum {plain.min_alpha.iloc[0]:.3g}; sign-safe α minimum "
                     f"{safe.min_alpha.iloc[0]:.3g} (stays > 0 by construction)" if len(plain) and len(safe)
                     and plain.min_alpha.iloc[0] is not None and safe.min_alpha.iloc[0] is not None else "–",
                     "reproduced" if crossed else ("refuted" if s.profile == "full" else "inconclusive"),
                     "figures/char_rnn.png",
                     notes="the report's hyper-Adam used β ≈ 0 (sign steps of κ) for 50 epochs; "
                           "short runs rarely reach α ≈ 0"))
    return out
