"""Notebook 03: the char-LSTM on *War and Peace*, with a contiguous split.

Adam_α (only α learned, as the paper's RNN experiment) with and without an Adam hyperoptimizer for
α0 ∈ {10⁻⁴, 2·10⁻³, 10⁻²}; the sensitivity picture (Adam over α, Adam/SGD over κ, over the same
number of decades); the sign-safe α; and the report's shuffled characters. The full profile (the
whole book, 50 epochs, 3 seeds) needs a GPU.
"""
from __future__ import annotations

from .. import data
from . import claims as C
from . import sources as S
from .common import MissingRecords, Setup, run_grid, save_figure, save_table
from .stats import mean_sd, paired

NAME = "03_char_rnn"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "EPOCHS": ("int", "none"), "ALPHAS0": ("list", "none"),
    "KAPPA": "float", "ALPHA_GRID": ("list", "none"), "KAPPA_GRID": ("list", "none"), "TRAIN_CHARS": ("int", "none"),
    "TRAIN": "bool", "OUT_DIR": "str", "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "EPOCHS": 1, "ALPHAS0": [2e-3], "ALPHA_GRID": [1e-3], "KAPPA_GRID": [1e-5],
              "TRAIN_CHARS": 40_000},
    "demo": {"SEEDS": [0], "EPOCHS": 2, "ALPHAS0": [1e-4, 2e-3], "ALPHA_GRID": [1e-4, 1e-3, 1e-2],
             "KAPPA_GRID": [1e-6, 1e-4, 1e-2], "TRAIN_CHARS": 400_000},
    "full": {"SEEDS": [0, 1, 2], "EPOCHS": 50, "ALPHAS0": [1e-4, 2e-3, 1e-2],
             "ALPHA_GRID": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
             "KAPPA_GRID": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "TRAIN_CHARS": None},
}
EARLY_EPOCH = 5  # the claim "converges faster" is judged on the validation loss after this epoch


def base(s: Setup, **kw) -> dict:
    cfg = dict(task="warpeace-lstm", profile=s.profile, epochs=s["EPOCHS"], seeds=list(s["SEEDS"]), log_every=20,
               train_limit=s["TRAIN_CHARS"], test_limit=None if s.profile == "full" else 100_000)
    if s.profile == "smoke":
        cfg.update(hidden=32, seq_len=50, batch_size=32, test_limit=10_000, log_every=5)
    cfg.update(kw)
    return cfg


def grid(s: Setup):
    points = []
    for a in s["ALPHAS0"]:
        points.append((("Adam_α", a), base(s, optimizer="adambaydin", alpha=a)))
        points.append((("Adam_α/Adam", a), base(s, optimizer="adambaydin/adam", alpha=a, kappa=s["KAPPA"])))
    for a in s["ALPHA_GRID"]:
        points.append((("Adam, α grid", a), base(s, optimizer="adam", alpha=a)))
    for k in s["KAPPA_GRID"]:
        points.append((("Adam/SGD, κ grid", k), base(s, optimizer="adam/sgd", alpha=1e-3, kappa=k)))
    a_mid = sorted(s["ALPHAS0"])[len(s["ALPHAS0"]) // 2]
    k_big = 1e-2
    points.append((("Adam_α/Adam, κ = 10⁻²", a_mid), base(s, optimizer="adambaydin/adam", alpha=a_mid, kappa=k_big)))
    points.append((("Adam_α/Adam, κ = 10⁻², sign-safe", a_mid),
                   base(s, optimizer="adambaydin/adam", alpha=a_mid, kappa=k_big, sign_safe=True)))
    points.append((("shuffled characters (the report's bug)", a_mid),
                   base(s, optimizer="adambaydin", alpha=a_mid, text_split="shuffled", seeds=[s["SEEDS"][0]],
                        epochs=min(s["EPOCHS"], 2))))
    return points


def run_all(s: Setup):
    points = grid(s)
    results = run_grid(s, [cfg for _, cfg in points], desc="char-LSTM runs")
    return {key: r for (key, _), r in zip(points, results)}


def load_or_missing(s: Setup):
    try:
        return run_all(s), ""
    except MissingRecords as e:
        return None, f"no {s.profile}-profile records: {e}. They need a GPU: python -m hypernb records " \
                     f"--profile {s.profile} --only 03 (see benchmarks/gpu_study.sh)"


def train(s: Setup) -> None:
    """Train (or resume) every run the notebook reads, without Jupyter (``python -m hypernb records``)."""
    run_all(s)


def table(s: Setup, runs: dict):
    import pandas as pd

    rows = []
    for (kind, value), r in runs.items():
        ok = [sd for sd in r.seeds if sd.status == "ok"]
        alphas = [a for sd in r.seeds for a in sd.trajectory.get("alpha", [])]
        rows.append({"run": kind, "α0 or κ": f"{value:g}",
                     "validation nats/char (mean ± sd)": mean_sd([sd.final["test_loss"] for sd in ok]),
                     "diverged": f"{len(r.seeds) - len(ok)} of {len(r.seeds)}",
                     "lowest α reached": "–" if not alphas else f"{min(alphas):.3g}"})
    df = pd.DataFrame(rows)
    save_table(s, df, "char_rnn_runs")
    return df


def figures(s: Setup, runs: dict):
    from ..viz import curves

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    pick = {f"{k} α0={v:g}": r for (k, v), r in runs.items() if k in ("Adam_α", "Adam_α/Adam")}
    curves(pick, "loss", ax=axes[0], title="training loss (nats/char)")
    curves({f"α0={v:g}": r for (k, v), r in runs.items() if k == "Adam_α/Adam"}, "alpha", ax=axes[1],
           title="learned α (Adam_α / Adam, symmetric log)", ylabel="α")
    curves({k: r for (k, v), r in runs.items() if k.startswith("Adam_α/Adam, κ")}, "alpha", ax=axes[2],
           title="α with κ = 10⁻², plain and sign-safe (symmetric log)", ylabel="α")
    for ax in axes[1:]:
        ax.set_yscale("symlog", linthresh=1e-5)
        ax.axhline(0, color="k", lw=0.8)
    fig.suptitle(f"{s.profile} profile, {len(s['SEEDS'])} seed(s)" + ("" if s.profile == "full" else
                 ": indicative, a reduced protocol") + "; the verdicts use validation loss", fontsize=9)
    fig.tight_layout()
    save_figure(s, fig, "char_rnn")
    fig2, ax = plt.subplots(figsize=(6.5, 3.6))
    a_mid = sorted(s["ALPHAS0"])[len(s["ALPHAS0"]) // 2]
    curves({"contiguous split": runs[("Adam_α", a_mid)],
            "shuffled characters (the report's bug)": runs[("shuffled characters (the report's bug)", a_mid)]},
           "loss", ax=ax, title=f"contiguous split vs the report's shuffled characters, Adam_α at α0 = {a_mid:g}\n"
                                f"({s.profile} profile, {len(s['SEEDS'])} seed(s)): shuffled text cannot go below the "
                                "unigram entropy", )
    ax.title.set_fontsize(9)
    ax.axhline(entropy(), color="k", ls="--", lw=1, label="unigram entropy of the training text")
    ax.legend(fontsize=7)
    save_figure(s, fig2, "shuffled_vs_contiguous")
    fig3, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (kind, knob) in zip(axes, (("Adam, α grid", "α (Adam)"), ("Adam/SGD, κ grid", "κ (Adam/SGD, α0 = 10⁻³)"))):
        for (k, v), r in runs.items():
            if k != kind:
                continue
            for sd in r.seeds:
                ok = sd.status == "ok"
                ax.scatter(v, sd.final["test_loss"] if ok else 5.0, marker="o" if ok else "x",
                           color="C0" if ok else "C3", s=18)
        ax.set_xscale("log")
        ax.set_xlabel(knob)
    axes[0].set_ylabel("validation nats/char (× diverged, at 5)")
    fig3.suptitle("One hyperparameter replaced by another? (same number of decades)", fontsize=10)
    fig3.tight_layout()
    save_figure(s, fig3, "sensitivity_alpha_vs_kappa")
    return fig, fig2, fig3


def entropy() -> float:
    return data.load_corpus("warpeace", data.data_root()).unigram_entropy()


REPORT_ALPHA = S.REPORT_RNN_ALPHA.value  # the report's baseline α for the char-LSTM


def verdicts(s: Setup, runs: dict | None, missing: str = "") -> list:
    """The paper's claim (Adam_α/Adam against Adam_α, both from the smallest α0) and the fair baseline
    (Adam_α/Adam from the smallest α0 against Adam_α at the report's baseline α)."""
    claims = [C.BY_ID["rnn-hyper-faster"], C.BY_ID["rnn-hyper-matches-good-alpha"]]
    if runs is None:
        return [C.judge(c, None, s.profile, missing=missing) for c in claims]
    a = min(s["ALPHAS0"])
    epoch = min(EARLY_EPOCH, s["EPOCHS"])

    def early(r):  # a seed that diverged before that epoch counts as the unigram entropy (it is never dropped)
        return {sd.seed: sd.epochs[epoch - 1]["test_loss"] if len(sd.epochs) >= epoch else entropy() for sd in r.seeds}

    def judged(claim, hyper_r, base_r, detail):
        effect = paired(early(hyper_r), early(base_r)) if base_r and hyper_r and \
            set(early(hyper_r)) & set(early(base_r)) else None
        return C.judge(claim, effect, s.profile, missing="" if effect else "no paired runs",
                       evidence="figures/char_rnn.png", detail=f"validation loss after epoch {epoch}, {detail}")

    hyper_r = runs.get(("Adam_α/Adam", a))
    baseline = runs.get(("Adam_α", REPORT_ALPHA))
    if baseline is None or a >= REPORT_ALPHA:  # it needs a smaller α0 to start from
        fair = C.judge(claims[1], None, s.profile, missing=f"needs Adam_α at α = {REPORT_ALPHA:g} and a smaller α0 in "
                                                           f"ALPHAS0, got {list(s['ALPHAS0'])}")
    else:
        fair = judged(claims[1], hyper_r, baseline, f"α0 = {a:g} against α = {REPORT_ALPHA:g}")
    return [judged(claims[0], hyper_r, runs.get(("Adam_α", a)), f"α0 = {a:g}"), fair]
