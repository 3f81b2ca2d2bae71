"""Notebook 01: the paper's MNIST experiments on the report's grid, fair (tuned) baselines,
re-training from the learned values, the sensitivity the report argued about, and the report's Adam/Adam.

Runs, on the paper's MLP (784-128-10 tanh, tanh on the logits, batch 256, 30 epochs in the full profile; the
report's Adam/Adam in its own setting):

1. *the table*: SGD, AdaGrad, RMSProp, Adam alone and with each of 4 hyperoptimizers, at the
   paper's default α and the κ of Huang et al.'s run of the official code (else the report's);
2. *tuning*, on a validation split carved from the training set (never the test set): each X over
   a log grid of α, each X/SGD over a log grid of κ (α0 at its default), same epochs;
3. *tuned comparison*: X at the α and X/SGD at the κ chosen on validation, on fresh seeds;
4. *re-training*: X from the hyperparameters X/SGD learned (its final values, seed by seed), the
   paper's second MNIST experiment.

The model is the paper's (``OUTPUT_TANH``: tanh on the logits too). The claims were first declared and run
on free logits; with ``LOGIT_CHECK`` every run is read (or trained) again on that first model and each
claim judged on it beside the verdict (:func:`first_model`, :func:`by_model`; its tables in ``first_model/``).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

from . import claims as C
from . import followup
from . import sources as S
from .common import Setup, run_grid, save_figure, save_table
from .stats import differences, interval, mean_sd, paired

NAME = "01_mlp_mnist"
SPEC = {
    "PROFILE": "str", "SEEDS": ("list", "none"), "EPOCHS": ("int", "none"), "OPTIMIZERS": "list",
    "HYPEROPTIMIZERS": "list", "TUNE_SEEDS": ("list", "none"), "FRESH_SEEDS": ("list", "none"),
    "ALPHA_GRID": ("list", "none"), "KAPPA_DECADES": ("int", "none"), "VAL_EXAMPLES": ("int", "none"),
    "OUTPUT_TANH": "bool", "LOGIT_CHECK": ("bool", "none"), "FOLLOW_UP_SEEDS": ("list", "none"),
    "FOLLOW_UP_FRESH_SEEDS": ("list", "none"), "FOLLOW_UP_ADAM_ADAM_SEEDS": ("list", "none"), "TRAIN": "bool", "OUT_DIR": "str", "INTERACTIVE": "bool", "QUIET": "bool",
}
DEFAULTS = {
    "smoke": {"SEEDS": [0], "EPOCHS": 1, "TUNE_SEEDS": [0], "FRESH_SEEDS": [100], "ALPHA_GRID": [1e-3, 1e-1],
              "KAPPA_DECADES": 1, "VAL_EXAMPLES": 512, "LOGIT_CHECK": False, "FOLLOW_UP_SEEDS": [1],
              "FOLLOW_UP_FRESH_SEEDS": [101], "FOLLOW_UP_ADAM_ADAM_SEEDS": [1]},
    "demo": {"SEEDS": [0, 1], "EPOCHS": 2, "TUNE_SEEDS": [0], "FRESH_SEEDS": [100, 101],
             "ALPHA_GRID": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "KAPPA_DECADES": 2, "VAL_EXAMPLES": 10_000,
             "LOGIT_CHECK": False, "FOLLOW_UP_SEEDS": [2], "FOLLOW_UP_FRESH_SEEDS": [102],
             "FOLLOW_UP_ADAM_ADAM_SEEDS": [2]},
    "full": {"SEEDS": [0, 1, 2, 3, 4], "EPOCHS": 30, "TUNE_SEEDS": [0, 1, 2], "FRESH_SEEDS": [100, 101, 102, 103, 104],
             "ALPHA_GRID": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0], "KAPPA_DECADES": 3, "VAL_EXAMPLES": 10_000,
             "LOGIT_CHECK": True,  # the follow-ups (claims.FOLLOW_UPS): fresh seeds, sized by followup.plan
             "FOLLOW_UP_SEEDS": list(range(5, 14)), "FOLLOW_UP_FRESH_SEEDS": list(range(105, 134)),
             "FOLLOW_UP_ADAM_ADAM_SEEDS": list(range(5, 25))},
}
NAMES = {"sgd": "SGD", "adagrad": "AdaGrad", "rmsprop": "RMSProp", "adam": "Adam", "none": "–"}
DIVERGED_ERROR = 90.0  # a diverged run counts as chance-level error wherever runs are ranked or spread
LEARNED = {"sgd": ("alpha",), "adagrad": ("alpha",), "rmsprop": ("alpha", "gamma"), "adam": ("alpha", "beta1", "beta2")}


def check(params: dict) -> None:
    """Rules across parameters, checked before anything trains: the follow-ups' seeds are fresh (where
    they run: on the paper's model, see :func:`follow_up_runs`)."""
    if not params["OUTPUT_TANH"]:
        return
    followup.fresh_seeds(params["FOLLOW_UP_SEEDS"], params["SEEDS"], "FOLLOW_UP_SEEDS", "SEEDS")
    followup.fresh_seeds(params["FOLLOW_UP_FRESH_SEEDS"], [*params["FRESH_SEEDS"], *params["TUNE_SEEDS"]],
                         "FOLLOW_UP_FRESH_SEEDS", "FRESH_SEEDS or TUNE_SEEDS")
    followup.fresh_seeds(params["FOLLOW_UP_ADAM_ADAM_SEEDS"], params["SEEDS"], "FOLLOW_UP_ADAM_ADAM_SEEDS", "SEEDS")


def base(s: Setup, **kw) -> dict:
    # smoke: a few steps per epoch, so a short interval, or its curves would have no point at all
    cfg = dict(task="mnist-mlp", profile=s.profile, epochs=s["EPOCHS"], batch_size=256, activation="tanh",
               log_every={"full": 50, "demo": 10}.get(s.profile, 2))
    if s.profile == "smoke":
        cfg.update(train_limit=2048, test_limit=1024)
    if s["OUTPUT_TANH"]:  # the paper package's README model: tanh on the logits too
        cfg["output_tanh"] = True
    cfg.update(kw)
    return cfg


def table_kappa(opt: str, hyper: str) -> tuple[float, str]:
    """κ of a table cell and where it comes from: Huang et al.'s run of the official code for X/SGD,
    else the report's κ table."""
    if hyper == "sgd":
        return S.HUANG_KAPPA[opt], S.HUANG.tag
    return S.REPORT_MNIST_KAPPA[opt][hyper], "report's κ table"


def _learned(opt: str, alphas: list) -> str:
    """The mean learned α, saying why an RMSProp α of exactly 0 stays there (it is stored as √α, whose
    gradient vanishes at 0)."""
    mean = statistics.fmean(alphas)
    return f"{mean:.3g}" + (" (exactly 0: stored as √α, it cannot leave 0)" if mean == 0 and opt == "rmsprop" else "")


def _error(res, seed=None, metric="test_acc") -> dict:
    """seed → error % (a diverged seed: DIVERGED_ERROR)."""
    out = {}
    for sd in res.seeds:
        if seed is not None and sd.seed != seed:
            continue
        out[sd.seed] = DIVERGED_ERROR if sd.status != "ok" else 100 * (1 - sd.final[metric])
    return out


# -- 1. the table ------------------------------------------------------------------------------------
def table_configs(s: Setup) -> list[tuple[str, str, dict]]:
    points = []
    for opt in s["OPTIMIZERS"]:
        for hyper in s["HYPEROPTIMIZERS"]:
            cfg = base(s, optimizer=opt if hyper == "none" else f"{opt}/{hyper}", alpha=S.DEFAULT_ALPHA[opt],
                       seeds=list(s["SEEDS"]))
            if hyper != "none":
                cfg["kappa"] = table_kappa(opt, hyper)[0]
            points.append((opt, hyper, cfg))
    return points


def run_table(s: Setup):
    """Train (or read back) the table; return (DataFrame, {(opt, hyper): Result})."""
    import pandas as pd

    points = table_configs(s)
    results = run_grid(s, [cfg for _, _, cfg in points], desc="the MNIST table")
    by_key = {(o, h): r for (o, h, _), r in zip(points, results)}
    rows = []
    for (opt, hyper, cfg), r in zip(points, results):
        err = _error(r)
        ok = [sd for sd in r.seeds if sd.status == "ok"]
        huang = S.HUANG_MNIST_ERROR.get((opt, hyper))
        report = S.REPORT_MNIST_ERROR.get((opt, hyper))
        rows.append({
            "optimizer": NAMES[opt], "hyperoptimizer": NAMES[hyper],
            "κ": "–" if hyper == "none" else f"{cfg['kappa']:g} ({table_kappa(opt, hyper)[1]})",
            "ours: test error % (mean ± sd)": mean_sd([e for sd, e in zip(r.seeds, err.values()) if sd.status == "ok"]),
            "diverged": f"{len(r.seeds) - len(ok)} of {len(r.seeds)}",
            f"{S.HUANG.tag}: test error %": "–" if huang is None else f"{huang} ({huang.setting})",
            f"{S.REPORT_LOGS.tag}: test error %": "–" if report is None else f"{report} (ReLU, 1 seed)",
            "learned α (mean)": "–" if hyper == "none" or not ok else _learned(opt, [sd.final["final_alpha"] for sd in ok]),
        })
    df = pd.DataFrame(rows)
    save_table(s, df, "mnist_table")
    return df, by_key


# -- 2. tuning on the validation split ---------------------------------------------------------------
def kappa_grid(s: Setup, opt: str) -> list[float]:
    """κ over 2·KAPPA_DECADES + 1 decades centred on Huang et al.'s κ for X/SGD."""
    c = S.HUANG_KAPPA[opt]
    return [c * 10.0 ** d for d in range(-s["KAPPA_DECADES"], s["KAPPA_DECADES"] + 1)]


def tuning_configs(s: Setup) -> list[tuple[str, str, float, dict]]:
    points = []
    for opt in s["OPTIMIZERS"]:
        for a in s["ALPHA_GRID"]:
            points.append((opt, "none", a, base(s, optimizer=opt, alpha=a, seeds=list(s["TUNE_SEEDS"]),
                                                val_examples=s["VAL_EXAMPLES"])))
        for k in kappa_grid(s, opt):
            points.append((opt, "sgd", k, base(s, optimizer=f"{opt}/sgd", alpha=S.DEFAULT_ALPHA[opt], kappa=k,
                                               seeds=list(s["TUNE_SEEDS"]), val_examples=s["VAL_EXAMPLES"])))
    return points


def run_tuning(s: Setup):
    """Train the α and κ grids; return a tidy DataFrame (one row per run and seed)."""
    import pandas as pd

    points = tuning_configs(s)
    results = run_grid(s, [cfg for *_, cfg in points], desc="tuning on the validation split")
    rows = []
    for (opt, hyper, value, _), r in zip(points, results):
        val, test = _error(r, metric="val_acc"), _error(r)
        for sd in r.seeds:
            rows.append({"optimizer": opt, "hyperoptimizer": hyper, "knob": "α" if hyper == "none" else "κ",
                         "value": value, "seed": sd.seed, "status": sd.status, "val_error": val[sd.seed],
                         "test_error": test[sd.seed]})
    df = pd.DataFrame(rows)
    save_table(s, df, "tuning")
    return df


def chosen(tuning) -> dict:
    """(opt, hyper) → the α (or κ) with the lowest mean validation error (diverged counted as 90 %)."""
    out = {}
    for (opt, hyper), g in tuning.groupby(["optimizer", "hyperoptimizer"]):
        means = g.groupby("value").val_error.mean()
        out[(opt, hyper)] = float(means.idxmin())
    return out


# -- 3. the tuned comparison on fresh seeds --------------------------------------------------------------
def tuned_configs(s: Setup, opt: str, best: dict, seeds: list) -> list[tuple[str, str, dict]]:
    """X at the α and X/SGD at the κ chosen on validation (``best``, from :func:`chosen`), on ``seeds``."""
    return [(opt, "none", base(s, optimizer=opt, alpha=best[(opt, "none")], seeds=list(seeds),
                               val_examples=s["VAL_EXAMPLES"])),
            (opt, "sgd", base(s, optimizer=f"{opt}/sgd", alpha=S.DEFAULT_ALPHA[opt], kappa=best[(opt, "sgd")],
                              seeds=list(seeds), val_examples=s["VAL_EXAMPLES"]))]


def run_tuned(s: Setup, tuning):
    best = chosen(tuning)
    points = [p for opt in s["OPTIMIZERS"] for p in tuned_configs(s, opt, best, s["FRESH_SEEDS"])]
    results = run_grid(s, [cfg for *_, cfg in points], desc="tuned comparison (fresh seeds)")
    return {(o, h): r for (o, h, _), r in zip(points, results)}, best


def logit_check(s: Setup, table: dict):
    """The table's X/SGD − X comparison again with the other logits, beside Huang et al.'s numbers: the
    paper's MLP (arXiv v1's appendix, the paper package's README) squashes the logits with tanh
    (``OUTPUT_TANH``, the default), the first runs used free logits (the usual model); notebook 04 shows
    that bounded logits can change a verdict. A robustness check, added after the runs: no verdict.
    None unless ``LOGIT_CHECK``."""
    import pandas as pd

    if not s["LOGIT_CHECK"]:
        return None
    main, other = ("tanh", "free") if s["OUTPUT_TANH"] else ("free", "tanh")
    points = [(opt, hyper, {**cfg, "output_tanh": other == "tanh"}) for opt, hyper, cfg in table_configs(s)
              if hyper in ("none", "sgd")]
    results = dict(zip([(o, h) for o, h, _ in points],
                       run_grid(s, [cfg for *_, cfg in points], desc=f"the table's X/SGD − X, {other} logits")))
    rows = []
    for opt in s["OPTIMIZERS"]:
        if (opt, "sgd") not in table or (opt, "none") not in table:
            continue
        row = {"comparison": f"{NAMES[opt]}/SGD − {NAMES[opt]}"}
        for label, runs in ((f"{main} logits (the verdicts)", table), (f"{other} logits", results)):
            e = paired(_error(runs[(opt, "sgd")]), _error(runs[(opt, "none")]))
            row[f"{label}: pp"] = e.short()
        row["n"] = e.n
        # beside the official code's numbers (Huang et al.), at their horizon: which model reproduces them?
        huang = [S.HUANG_MNIST_ERROR.get((opt, h)) for h in ("none", "sgd")]
        T = int(huang[0].setting.split(" epochs")[0]) if huang[0] else s["EPOCHS"]
        for label, runs in ((main, table), (other, results)):
            if T > s["EPOCHS"]:  # these runs are shorter than the source's
                row[f"{label} logits: X, X/SGD % at the source's horizon"] = "–"
                continue
            x, xs = (statistics.fmean(at_epoch(runs[(opt, h)], T).values()) for h in ("none", "sgd"))
            row[f"{label} logits: X, X/SGD % at the source's horizon"] = f"{x:.2f}, {xs:.2f}"
        row[f"{S.HUANG.tag}: X, X/SGD %"] = (", ".join(f"{c.value:.2f}" for c in huang) + f" ({T} epochs)"
                                             if all(huang) else "–")
        rows.append(row)
    return pd.DataFrame(rows)


def tuned_table(s: Setup, tuned: dict, best: dict):
    """What each tuned pair compares: α chosen for X, κ chosen for X/SGD, and how far X/SGD moved its α
    (mean final α over the fresh seeds / α0). Where validation chose a κ so small that α hardly moves,
    "X/SGD matches tuned X" compares X with itself, and says nothing for hyperoptimization. A value chosen
    at the end of its grid says so: the best may lie beyond it, so the tuned run is a bound, not an optimum."""
    import pandas as pd

    rows = []
    for opt in s["OPTIMIZERS"]:
        h = tuned.get((opt, "sgd"))
        finals = [sd.final["final_alpha"] for sd in h.seeds if sd.status == "ok"] if h is not None else []
        rows.append({"X": NAMES[opt], "α chosen for X": _on_grid(best[(opt, "none")], s["ALPHA_GRID"]),
                     "κ chosen for X/SGD": _on_grid(best[(opt, "sgd")], kappa_grid(s, opt)),
                     "X/SGD's α0": f"{S.DEFAULT_ALPHA[opt]:g}",
                     "learned α / α0 (mean over fresh seeds)":
                         f"{statistics.fmean(finals) / S.DEFAULT_ALPHA[opt]:.3g}" if finals else "–"})
    return pd.DataFrame(rows)


def _on_grid(value: float, grid: list) -> str:
    """A chosen value, marked where it is the smallest or largest of its grid."""
    lo, hi = min(grid), max(grid)
    if math.isclose(value, lo):
        return f"{value:g} (the grid's smallest)"
    return f"{value:g} (the grid's largest)" if math.isclose(value, hi) else f"{value:g}"


# -- 4. re-training from the learned values -------------------------------------------------------------
def retrain_configs(s: Setup, table: dict) -> list[tuple[str, int, dict]]:
    """X from the final values X/SGD learned with the same seed (the paper's second experiment)."""
    points = []
    for opt in s["OPTIMIZERS"]:
        hyper = table.get((opt, "sgd"))
        if hyper is None:
            continue
        for sd in hyper.seeds:
            if sd.status != "ok":
                continue
            values = {name: sd.final[f"final_{name}"] for name in LEARNED[opt]}
            if values["alpha"] <= 0 or not all(math.isfinite(v) for v in values.values()):
                continue  # a learned α ≤ 0 cannot be a plain optimizer's step size
            cfg = base(s, optimizer=opt, seeds=[sd.seed], **values)
            points.append((opt, sd.seed, cfg))
    return points


def run_retrain(s: Setup, table: dict) -> dict:
    points = retrain_configs(s, table)
    results = run_grid(s, [cfg for *_, cfg in points], desc="re-training from the learned values")
    out: dict = {}
    for (opt, seed, _), r in zip(points, results):
        out.setdefault(opt, {}).update(_error(r))
    return out


# -- the Adam/Adam demonstration ------------------------------------------------------------------------
def adam_adam_demo(s: Setup):
    """The report's Adam/Adam setting (ReLU MLP, κ = 1e-3, β2 = 0.99), with and without the β squashing."""
    epochs = 1 if s.profile == "smoke" else 3
    cfgs = [base(s, optimizer=opt, kappa=1e-3, beta2=0.99, epochs=epochs, activation="relu", seeds=[0], log_every=1,
                 output_tanh=False) for opt in ("adam/adam", "adamunclamped/adam")]
    clamped, unclamped = run_grid(s, cfgs, desc="Adam/Adam")
    return {"Adam/Adam, β squashed (the paper's code)": clamped,
            "Adam/Adam, β stored raw (the report's change)": unclamped}


@dataclass
class AdamAdam:
    """Adam/Adam in the report's own setting, every seed for the whole horizon: without the β clamp (the
    report's code), the runs that decide its claim, and with it (the paper's code), the contrast."""

    unclamped: object  # Result
    clamped: object  # Result


def adam_adam_report_setting(s: Setup) -> AdamAdam:
    """Adam/Adam in the report's own setting (its ReLU MLP with free logits, κ = 10⁻³, β2 = 0.99), with
    β stored raw as the report's code did and with the paper's squashing, on the same seeds."""
    cfgs = [report_setting(s, opt, s["SEEDS"]) for opt in ("adamunclamped/adam", "adam/adam")]
    unclamped, clamped = run_grid(s, cfgs, desc="Adam/Adam, the report's setting")
    return AdamAdam(unclamped, clamped)


def report_setting(s: Setup, optimizer: str, seeds) -> dict:
    """Adam/Adam's configuration in the report's own setting (ReLU MLP, free logits, κ = 10⁻³, β2 = 0.99)."""
    return base(s, optimizer=optimizer, kappa=1e-3, beta2=0.99, activation="relu", seeds=list(seeds),
                output_tanh=False)


# -- 7. follow-ups of the claims the first run left inconclusive ----------------------------------------------
FOLLOW_UP_RETRAIN = "adagrad"  # mnist-adagrad-learned-beats-initial-follow-up
FOLLOW_UP_TUNED = "rmsprop"  # mnist-rmsprop-sgd-matches-tuned-rmsprop-follow-up


def follow_up_runs(s: Setup, tuning) -> dict:
    """The follow-ups' runs, on their own seeds: AdaGrad and AdaGrad/SGD as in the table and AdaGrad re-trained
    from what AdaGrad/SGD learned (``FOLLOW_UP_SEEDS``), and RMSProp and RMSProp/SGD at the α and κ validation
    chose for the first run (``FOLLOW_UP_FRESH_SEEDS``; the tuning grids are not run again); each where its
    optimizer is among ``OPTIMIZERS``. None with free logits (``OUTPUT_TANH`` False): the follow-ups are declared
    on the paper's model, as the claims they follow. Returns {follow-up id: seed → difference}."""
    if not s["OUTPUT_TANH"]:
        return {}
    check(s.params)  # (as at the notebook's start)
    seeds, fresh = list(s["FOLLOW_UP_SEEDS"] or []), list(s["FOLLOW_UP_FRESH_SEEDS"] or [])
    out = {}
    if seeds and FOLLOW_UP_RETRAIN in s["OPTIMIZERS"] and {"none", "sgd"} <= set(s["HYPEROPTIMIZERS"]):
        opt = FOLLOW_UP_RETRAIN
        points = [(o, h, {**cfg, "seeds": seeds}) for o, h, cfg in table_configs(s)
                  if o == opt and h in ("none", "sgd")]
        table = dict(zip([(o, h) for o, h, _ in points],
                         run_grid(s, [cfg for *_, cfg in points], desc=f"follow-up: {NAMES[opt]} re-trained")))
        retrained = run_retrain(s, table)
        out[f"mnist-{opt}-learned-beats-initial-follow-up"] = differences(retrained.get(opt, {}),
                                                                           _error(table[(opt, "none")]))
    if fresh and FOLLOW_UP_TUNED in s["OPTIMIZERS"]:
        opt = FOLLOW_UP_TUNED
        points = tuned_configs(s, opt, chosen(tuning), fresh)  # the first run's configurations, other seeds
        plain, hyper = run_grid(s, [cfg for *_, cfg in points], desc=f"follow-up: {NAMES[opt]}/SGD vs tuned {NAMES[opt]}")
        out[f"mnist-{opt}-sgd-matches-tuned-{opt}-follow-up"] = differences(_error(hyper), _error(plain))
    adam_seeds = list(s["FOLLOW_UP_ADAM_ADAM_SEEDS"] or [])
    if adam_seeds:  # the report's Adam/Adam without the clamp, on fresh seeds (the claim needs no contrast)
        (res,) = run_grid(s, [report_setting(s, "adamunclamped/adam", adam_seeds)],
                          desc="follow-up: Adam/Adam without the clamp")
        out["report-adam-adam-fails-follow-up"] = _failed_per_seed(res)
    return out


def first_differences(table: dict, tuned: dict, retrained: dict, adam_adam: AdamAdam | None = None) -> dict:
    """The first run's per-seed differences of the claims followed up: {follow-up id: seed → difference}
    (for the Adam/Adam rate, seed → 1.0 where the run failed)."""
    a, r = FOLLOW_UP_RETRAIN, FOLLOW_UP_TUNED
    out = {}
    if adam_adam is not None:
        out["report-adam-adam-fails-follow-up"] = _failed_per_seed(adam_adam.unclamped)
    if a in retrained and (a, "none") in table:
        out[f"mnist-{a}-learned-beats-initial-follow-up"] = differences(retrained[a], _error(table[(a, "none")]))
    if (r, "sgd") in tuned:
        out[f"mnist-{r}-sgd-matches-tuned-{r}-follow-up"] = differences(_error(tuned[(r, "sgd")]),
                                                                         _error(tuned[(r, "none")]))
    return out


def train(s: Setup) -> None:
    """Train (or resume) every run and measurement the notebook reads, without Jupyter
    (``python -m hypernb records``)."""
    from . import horizon

    # the paper's and the report's claims first (the table and the re-training), the costly tuning grids
    # after them, so that an interrupted run leaves whole claims behind; last, the first model's runs (LOGIT_CHECK)
    _, table = run_table(s)
    run_retrain(s, table)
    adam_adam_demo(s)
    adam_adam_report_setting(s)
    logit_check(s, table)
    horizon.load_or_measure(s)
    tuning = run_tuning(s)
    run_tuned(s, tuning)
    first_model(s)
    follow_up_runs(s, tuning)


# -- figures ----------------------------------------------------------------------------------------------
def loss_figure(s: Setup, table: dict):
    from ..viz import grid_of_curves

    groups = {}
    for (opt, hyper), r in table.items():
        groups.setdefault(NAMES[opt], {})[f"{NAMES[opt]}/{NAMES[hyper]}" if hyper != "none" else
                                          f"{NAMES[opt]} alone"] = r
    fig = grid_of_curves(groups, "loss", ncols=2, logy=True, ylabel="training loss")
    save_figure(s, fig, "loss_curves")
    return fig


def alpha_figure(s: Setup, table: dict):
    """Learned α over training (symmetric-log axis: α can cross zero)."""
    from ..viz import grid_of_curves

    groups = {}
    for (opt, hyper), r in table.items():
        if hyper != "none":
            groups.setdefault(f"{NAMES[opt]}: learned α", {})[f"/{NAMES[hyper]}"] = r
    fig = grid_of_curves(groups, "alpha", ncols=2, ylabel="α")
    for ax in fig.axes:
        if ax.lines:
            ax.set_yscale("symlog", linthresh=1e-5)
            ax.axhline(0, color="k", lw=0.6)
    save_figure(s, fig, "alpha_trajectories")
    return fig


def sensitivity_figure(s: Setup, tuning):
    """Test error against α for X and against κ for X/SGD over the same number of decades; a
    diverged seed is drawn as an × at the top (counted as 90 %); the value validation chose, dashed."""
    import matplotlib.pyplot as plt

    opts = list(s["OPTIMIZERS"])
    best = chosen(tuning)
    fig, axes = plt.subplots(2, len(opts), figsize=(3.4 * len(opts), 5.6), squeeze=False)
    for j, opt in enumerate(opts):
        for i, (hyper, knob) in enumerate((("none", "α"), ("sgd", "κ"))):
            ax = axes[i][j]
            g = tuning[(tuning.optimizer == opt) & (tuning.hyperoptimizer == hyper)]
            if (opt, hyper) in best:  # the value validation chose (the tuned comparison's), as a vertical line
                ax.axvline(best[(opt, hyper)], color="C2", ls="--", lw=1,
                           label=f"chosen on validation: {best[(opt, hyper)]:g}")
                ax.legend(fontsize=6, loc="upper center")
            for value, sub in g.groupby("value"):
                ok = sub[sub.status == "ok"]
                ax.scatter([value] * len(ok), ok.test_error, s=10, color="C0", alpha=0.6)
                bad = sub[sub.status != "ok"]
                if len(bad):
                    ax.scatter([value] * len(bad), [DIVERGED_ERROR] * len(bad), marker="x", color="C3", s=30)
            means = g.groupby("value").test_error.mean()
            ax.plot(means.index, means.values, color="C0")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(1, 100)
            ax.set_xlabel(knob if hyper == "none" else f"κ ({NAMES[opt]}/SGD, α0 = {S.DEFAULT_ALPHA[opt]:g})")
            if j == 0:
                ax.set_ylabel("test error % (× diverged)")
            ax.set_title(f"{NAMES[opt]}" + (" alone: α" if hyper == "none" else "/SGD: κ"), fontsize=10)
            ax.grid(True, which="both", lw=0.3)
            ax.set_yticks([1, 2, 5, 10, 20, 50, 90])
            ax.set_yticklabels(["1", "2", "5", "10", "20", "50", "90"])
    fig.suptitle("One hyperparameter replaced by another? Final test error over the same number of decades",
                 fontsize=11)
    fig.tight_layout()
    save_figure(s, fig, "sensitivity_alpha_vs_kappa")
    return fig


def sensitivity_table(tuning):
    """Per optimizer: how many grid points (of the same number of decades) land within 1 point of the
    best mean test error, for α (X alone) and κ (X/SGD)."""
    import pandas as pd

    rows = []
    for opt in tuning.optimizer.unique():
        row = {"optimizer": NAMES[opt]}
        for hyper, knob in (("none", "α"), ("sgd", "κ")):
            g = tuning[(tuning.optimizer == opt) & (tuning.hyperoptimizer == hyper)]
            means = g.groupby("value").test_error.mean()
            row[f"{knob}: grid points within 1 pp of the best"] = f"{int((means <= means.min() + 1).sum())} of {len(means)}"
            row[f"{knob}: range of mean error (pp)"] = f"{means.min():.2f} … {means.max():.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def retrain_figure(s: Setup, table: dict, retrained: dict):
    import matplotlib.pyplot as plt

    opts = [o for o in s["OPTIMIZERS"] if o in retrained]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, opt in enumerate(opts):
        series = {"X, α0 default": _error(table[(opt, "none")]), "X/SGD": _error(table[(opt, "sgd")]),
                  "X from the learned values": retrained[opt]}
        for j, (label, err) in enumerate(series.items()):
            xs = [i + (j - 1) * 0.25] * len(err)
            ax.scatter(xs, list(err.values()), color=f"C{j}", s=14, label=label if i == 0 else None)
            if err:
                ax.hlines(statistics.fmean(err.values()), xs[0] - 0.1, xs[0] + 0.1, color=f"C{j}")
    ax.set_xticks(range(len(opts)))
    ax.set_xticklabels([NAMES[o] for o in opts])
    ax.set_yscale("log")
    ax.set_ylabel("test error % (each dot a seed)")
    ax.legend(fontsize=8)
    ax.set_title("Re-training plain X from the values X/SGD learned (the paper's second experiment)", fontsize=10)
    fig.tight_layout()
    save_figure(s, fig, "retrain")
    return fig


def adam_figure(s: Setup, demo: dict):
    from ..viz import curves

    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    curves(demo, "loss", ax=a, logy=True, title="training loss (ReLU MLP, κ = 10⁻³)")
    curves(demo, "beta2", ax=b, title="β2 learned by the hyper-Adam", ylabel="β2")
    b.axhline(1.0, color="k", lw=0.8, ls="--")
    fig.tight_layout()
    save_figure(s, fig, "adam_adam")
    return fig


# -- the verdicts --------------------------------------------------------------------------------------
def _claims(s: Setup) -> dict:
    """The claims by id; with free logits (``OUTPUT_TANH`` False) each one declared on the paper's model says
    in its metric that it was judged on the first model instead."""
    if s["OUTPUT_TANH"]:
        return C.BY_ID
    return {k: replace(c, metric=f"{c.metric} — judged on free logits (OUTPUT_TANH = False), the first model, not "
                                "the amended declaration's")
            if c.notebook == NAME and C.MNIST_MODEL in c.amended else c for k, c in C.BY_ID.items()}


def verdicts(s: Setup, table: dict, tuned: dict, retrained: dict, adam_adam) -> list:
    """Every MNIST claim of claims.py, judged by its pre-declared rule."""
    claims = _claims(s)
    out = []
    for opt in s["OPTIMIZERS"]:
        if (opt, "sgd") in table and (opt, "none") in table:
            effect = paired(_error(table[(opt, "sgd")]), _error(table[(opt, "none")]))
            out.append(C.judge(claims[f"mnist-{opt}-sgd-beats-{opt}"], effect, s.profile,
                               evidence="figures/loss_curves.png"))
        if opt in retrained and (opt, "none") in table:
            effect = paired(retrained[opt], _error(table[(opt, "none")]))
            out.append(C.judge(claims[f"mnist-{opt}-learned-beats-initial"], effect, s.profile,
                               evidence="figures/retrain.png"))
        if (opt, "sgd") in tuned:
            effect = paired(_error(tuned[(opt, "sgd")]), _error(tuned[(opt, "none")]))
            out.append(C.judge(claims[f"mnist-{opt}-sgd-matches-tuned-{opt}"], effect, s.profile,
                               evidence="figures/sensitivity_alpha_vs_kappa.png"))
    # the report's claims, one per optimizer (paired by seed)
    for opt, (early, late) in _report_pairs(s, table).items():
        out.append(C.judge(claims[f"report-mnist-faster-early-{opt}"], paired(*early) if early[0] else None,
                           s.profile, evidence="figures/loss_curves.png"))
        out.append(C.judge(claims[f"report-mnist-baselines-catch-up-{opt}"], paired(*late) if late[0] else None,
                           s.profile, evidence="figures/loss_curves.png"))
    out.append(_depends_on_optimizer(s, table))
    failed, n = _failures(adam_adam.clamped)
    out.append(C.judge(claims["report-adam-adam-fails"], None, s.profile, failures=_failures(adam_adam.unclamped),
                       evidence="figures/adam_adam.png",
                       detail=f"without the clamp: {outcomes(adam_adam.unclamped)}; with the clamp (the paper's code), "
                              f"on the same seeds: {failed} of {n} runs failed"))
    return out


@dataclass
class FirstModel:
    """The notebook's runs on the first-declared model (free logits): its Setup (outputs in a subfolder),
    the table, the tuned comparison and the re-training."""

    s: Setup
    table: dict
    tuned: dict
    retrained: dict


def first_model(s: Setup) -> FirstModel | None:
    """Every run again on the model the claims were first declared on (free logits), when the notebook's
    model is the paper's (``OUTPUT_TANH``) and ``LOGIT_CHECK`` asks for the comparison (full profile);
    else None. Its tables go to ``first_model/`` beside the notebook's."""
    if not (s["OUTPUT_TANH"] and s["LOGIT_CHECK"]):
        return None
    s0 = replace(s, params={**s.params, "OUTPUT_TANH": False}, out_dir=s.out_dir / "first_model")
    _, table = run_table(s0)
    tuned, _ = run_tuned(s0, run_tuning(s0))
    return FirstModel(s0, table, tuned, run_retrain(s0, table))


def first_model_verdicts(first: FirstModel, adam_adam) -> list:
    """Every claim's rule applied to the first model's runs (its figures are not drawn: no evidence path)."""
    out = verdicts(first.s, first.table, first.tuned, first.retrained, adam_adam)
    for v in out:
        v.evidence = ""
    return out


def by_model(main: list, first: list):
    """Each claim's verdict on the paper's model (tanh logits: the verdicts) beside the same rule applied to
    the first model's runs (free logits), joined by claim, so that a reader sees what the model changed; a
    claim judged on one model only says so."""
    import pandas as pd

    def cell(v):
        if v is None:
            return "not judged on this model"
        if v.effect is None:
            return f"{v.reason}: {v.verdict}" if v.reason else v.verdict
        r = v.row()  # the verdict table's own effect and interval cells
        interval = "" if r["95 % interval"] == "–" else f" {r['95 % interval']}"
        return f"{r['effect']}{interval}, n = {v.n}: {v.verdict}"

    now, before = {v.claim.id: v for v in main}, {v.claim.id: v for v in first}
    ids = list(now) + [i for i in before if i not in now]
    rows = []
    for i in ids:
        a, b = now.get(i), before.get(i)
        rows.append({"claim": (a or b).claim.statement, "tanh logits, the paper's model (the verdict)": cell(a),
                     "free logits, the first model": cell(b),
                     "changed": "yes" if a is None or b is None or a.verdict != b.verdict else ""})
    return pd.DataFrame(rows)


def first_declared(s: Setup, table: dict, first: FirstModel | None):
    """The amended declarations judged as first declared, on the runs they were declared on: the first
    model's (free logits). None where those runs are not at hand (the paper's model without
    ``LOGIT_CHECK``): judging them on tanh-logit runs would be neither declaration."""
    if first is not None:
        return as_first_declared(first.s, first.table)
    return None if s["OUTPUT_TANH"] else as_first_declared(s, table)


def outcomes(res) -> str:
    """Per seed, where a run stopped or how it ended, e.g. 'seed 0 diverged at step 326, after 1 complete
    epoch(s)'."""
    out = []
    for sd in res.seeds:
        if sd.status == "diverged" and sd.diverged_at_step is not None:
            out.append(f"seed {sd.seed} diverged at step {sd.diverged_at_step}, after {len(sd.epochs)} complete "
                       "epoch(s)")
        elif sd.status == "ok":
            out.append(f"seed {sd.seed} ended at {100 * sd.final['test_acc']:.1f} % accuracy")
        else:
            out.append(f"seed {sd.seed}: {sd.status}")
    return ", ".join(out)


def _failures(res) -> tuple[int, int]:
    """(runs that diverged or ended at chance, runs)."""
    failed = _failed_per_seed(res)
    return int(sum(failed.values())), len(failed)


def _failed_per_seed(res) -> dict:
    """seed → 1.0 if its run diverged or ended at chance (≤ 11 % accuracy), else 0.0; a seed still running (or
    stopped) has no outcome yet and is left out."""
    return {sd.seed: float(sd.status == "diverged" or sd.final["test_acc"] <= 0.11) for sd in res.seeds
            if sd.status in ("ok", "diverged")}


def _report_pairs(s: Setup, table: dict) -> dict:
    """Per optimizer X, the report's two comparisons as (a, b) per-seed dicts for ``paired(a, b)``:
    early = (log training loss after epoch 1 of X/SGD, of X); late = (test error of X, of X/SGD) after
    the last epoch. A seed that diverged within epoch 1 counts as a model at chance there (loss ln 10),
    and as 90 % error in late: never dropped."""
    pairs = {}
    for opt in s["OPTIMIZERS"]:
        h, b = table.get((opt, "sgd")), table.get((opt, "none"))
        if h is None or b is None:
            continue
        first = lambda r: {sd.seed: math.log(sd.epochs[0]["train_loss"] if sd.epochs else math.log(10))  # noqa: E731
                           for sd in r.seeds}
        pairs[opt] = ((first(h), first(b)), (_error(b), _error(h)))
    return pairs


def at_epoch(res, epoch: int) -> dict:
    """seed → test error % after ``epoch`` (a seed that diverged before it: DIVERGED_ERROR)."""
    return {sd.seed: 100 * (1 - sd.epochs[epoch - 1]["test_acc"]) if len(sd.epochs) >= epoch else DIVERGED_ERROR
            for sd in res.seeds}


def horizon_table(s: Setup, table: dict, epoch: int = 5):
    """X/SGD − X after ``epoch`` epochs, from the same runs (no schedule: nothing in a run depends on its
    horizon, so the first epochs of a 30-epoch run are a shorter run): Huang et al. trained Adam/SGD and RMSProp/SGD for 5 epochs, and which horizon
    the paper's table used is not settled (see the sources). Descriptive, chosen after the runs: no verdict."""
    import pandas as pd

    rows = []
    for opt in s["OPTIMIZERS"]:
        h, b = table.get((opt, "sgd")), table.get((opt, "none"))
        if h is None or b is None or s["EPOCHS"] < epoch:
            continue
        row = {"comparison": f"{NAMES[opt]}/SGD − {NAMES[opt]}"}
        for T in (epoch, s["EPOCHS"]):
            e = paired(at_epoch(h, T), at_epoch(b, T))
            row[f"after {T} epochs (pp)"] = e.short()
        row["n"] = e.n
        rows.append(row)
    return pd.DataFrame(rows) if rows else None


def as_first_declared(s: Setup, table: dict):
    """The claims whose declaration was amended after runs had started, judged as first declared: the
    report's two MNIST claims pooled the 4 optimizers' (optimizer, seed) pairs into one interval,
    Adam/Adam was judged on the table's Adam/Adam runs (β2 = 0.999), and the learned-α spread left out the
    cells whose α collapsed to 0 or below. ``table``: the first model's (see :func:`first_declared`)."""
    import pandas as pd

    rows = []
    pairs = _report_pairs(s, table)
    for key, claim in (("early", C.FIRST_DECLARED["report-mnist-faster-early"]),
                       ("late", C.FIRST_DECLARED["report-mnist-baselines-catch-up"])):
        diffs = []
        for early, late in pairs.values():
            a, b = early if key == "early" else late
            diffs += [a[k] - b[k] for k in sorted(set(a) & set(b))]
        rows.append(C.judge(claim, interval(diffs) if diffs else None, s.profile).row())
    if ("adam", "adam") in table:
        rows.append(C.judge(C.FIRST_DECLARED["report-adam-adam-fails"], None, s.profile,
                            failures=_failures(table[("adam", "adam")])).row())
    rows.append(_depends_on_optimizer(s, table, C.FIRST_DECLARED["report-mnist-learned-depend-on-optimizer"],
                                      drop_collapsed=True).row())
    return pd.DataFrame(rows)[["claim", "comparison", "n", "effect", "95 % interval", "verdict"]] if rows else None


COLLAPSED = -3.0  # decades: a learned α ≤ 10⁻³·α0 (α ≤ 0 and a diverged run included) counts as collapsed


def _depends_on_optimizer(s: Setup, table: dict, claim=None, drop_collapsed: bool = False):
    """Per seed: sd of the mean log10(α_final/α0) between optimizers minus between hyperoptimizers,
    over every hyperoptimized cell; log10(α_final/α0) is clipped at COLLAPSED, so that a cell whose α
    ended at 0 or below (RMSProp's α, stored as √α, sticks at 0), or that diverged, counts as collapsed
    instead of dropping out. ``drop_collapsed``: the first declaration's computation, which left such
    cells out."""
    hypers = [h for h in s["HYPEROPTIMIZERS"] if h != "none"]
    per_seed, cells = {}, []
    for seed in s["SEEDS"]:
        grid = {}
        for opt in s["OPTIMIZERS"]:
            for h in hypers:
                r = table.get((opt, h))
                sd = next((x for x in (r.seeds if r else []) if x.seed == seed), None)
                if sd is None:
                    continue
                alpha = sd.final.get("final_alpha", 0.0) if sd.status == "ok" else 0.0
                if alpha > 0:
                    decades = math.log10(alpha / S.DEFAULT_ALPHA[opt])
                    grid[(opt, h)] = decades if drop_collapsed else max(COLLAPSED, decades)
                elif not drop_collapsed:
                    grid[(opt, h)] = COLLAPSED
        if len({o for o, _ in grid}) < 2 or len({h for _, h in grid}) < 2:
            continue
        by_opt = [statistics.fmean(v for (o, _), v in grid.items() if o == opt) for opt in {o for o, _ in grid}]
        by_hyp = [statistics.fmean(v for (_, h), v in grid.items() if h == hyp) for hyp in {h for _, h in grid}]
        per_seed[seed] = statistics.pstdev(by_opt) - statistics.pstdev(by_hyp)
        cells.append(len(grid))
    claim = claim or _claims(s)["report-mnist-learned-depend-on-optimizer"]
    return C.judge(claim, interval(per_seed.values()) if per_seed else None, s.profile,
                   evidence="figures/alpha_trajectories.png",
                   detail=f"cells per seed: {', '.join(map(str, cells))} of {len(s['OPTIMIZERS']) * len(hypers)}")
