"""What every notebook shares: its validated parameters, its output folder, grids of runs that are
cached by configuration (a re-executed notebook reads finished runs back instead of retraining, and
resumes unfinished ones), figures and tables.

Where things go. *Run records*: the full and demo profiles keep them in
``evidence/<profile>/<notebook>/runs`` of this checkout — the committed evidence the notebooks are
rendered from — and the smoke profile in ``outputs/smoke`` (or ``$HYPERNB_OUT``). *Outputs* (figures,
tables, verdicts): next to the records, or in ``$HYPERNB_OUT/<notebook>`` when that is set. A
notebook's ``OUT_DIR`` puts both in a folder of its own (start afresh there to retrain everything).
``TRAIN = False`` (or ``$HYPERNB_TRAIN=0``) never trains: a missing record is reported instead — what
``make test`` does when it re-executes the committed notebooks from the committed records.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, io
from ..io import REPO, shown
from ..config import PROFILES, RunConfig

EVIDENCE = REPO / "evidence"


def resolve_profile(profile: str, notebook: str | None = None) -> str:
    """``auto`` → $HYPERNB_PROFILE if set, else the profile whose records this checkout holds for
    the notebook (full, else demo), else ``demo``."""
    if profile == "auto":
        profile = os.environ.get("HYPERNB_PROFILE") or ""
        if not profile and notebook:
            profile = next((p for p in ("full", "demo") if (EVIDENCE / p / notebook / "runs").is_dir()), "")
        profile = profile or "demo"
    if profile not in PROFILES:
        raise ValueError(f"PROFILE must be one of {('auto',) + PROFILES}, got {profile!r}")
    return profile


def output_root(profile: str) -> Path:
    """Where outputs go: $HYPERNB_OUT if set, else where the profile's records are."""
    env = os.environ.get("HYPERNB_OUT")
    return Path(env) if env else records_root(profile)


def records_root(profile: str) -> Path:
    """Where run records live: evidence/<profile>/ (full, demo), else outputs/smoke/ (or $HYPERNB_OUT)."""
    if profile in ("full", "demo"):
        return EVIDENCE / profile
    env = os.environ.get("HYPERNB_OUT")
    return Path(env) if env else REPO / "outputs" / profile


def training_allowed(value: bool = True) -> bool:
    """A notebook's TRAIN parameter, overridden off by $HYPERNB_TRAIN=0."""
    return bool(value) and os.environ.get("HYPERNB_TRAIN", "1") != "0"


class MissingRecords(RuntimeError):
    """Runs a notebook needs whose records are not there, while training is off."""


@dataclass
class Setup:
    """A notebook's resolved parameters and where its results go."""

    notebook: str
    profile: str
    params: dict
    out_dir: Path  # figures, tables, verdicts
    records: Path  # run records (and measurements kept with them)
    quiet: bool = True

    def __getitem__(self, key):
        return self.params[key]

    def path(self, *parts) -> Path:
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _check_type(name, value, expected):
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": (list, tuple), "dict": dict}
    options = expected if isinstance(expected, tuple) else (expected,)
    if value is None and "none" in options:
        return
    for kind in options:
        if kind == "none":
            continue
        if kind == "float" and isinstance(value, bool):
            continue
        if isinstance(value, kinds[kind]):
            return
    raise ValueError(f"parameter {name} must be {' or '.join(options)}, got {value!r}")


def resolved(notebook: str, given: dict, defaults: dict, check=None) -> dict:
    """The parameters a notebook runs with: ``given`` with each ``None`` replaced by its profile's
    default, and the profile resolved; ``check(params)`` (a notebook's rules across parameters, such
    as fresh follow-up seeds) runs on them, so that a clash fails before anything trains."""
    profile = resolve_profile(given["PROFILE"], notebook)
    params = dict(given)
    for key, value in defaults[profile].items():
        if params.get(key) is None:
            params[key] = value
    params["PROFILE"] = profile
    if check is not None:
        check(params)
    return params


def setup(notebook: str, namespace: dict, spec: dict, defaults: dict, check=None) -> Setup:
    """Validate the notebook's parameters (the UPPERCASE names in ``namespace``) against ``spec``.

    A misspelt name (papermill only warns about it) or a value of the wrong kind is an error.
    ``None`` for a grid parameter means "the profile's default", taken from ``defaults``.
    """
    given = {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_")}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; valid parameters: {sorted(spec)}")
    missing = sorted(set(spec) - set(given))
    if missing:
        raise ValueError(f"the parameters cell does not define {missing}")
    for name, kind in spec.items():
        _check_type(name, given[name], kind)
    params = resolved(notebook, given, defaults, check)
    profile = params["PROFILE"]
    out = Path(params["OUT_DIR"]) if params.get("OUT_DIR") else output_root(profile) / notebook
    records = Path(params["OUT_DIR"]) if params.get("OUT_DIR") else records_root(profile) / notebook
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "parameters.json", params)
    import matplotlib

    matplotlib.rcParams["figure.dpi"] = 100
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    return Setup(notebook, profile, params, out, records, quiet=params.get("QUIET", True))


def describe(s: Setup) -> str:
    """A deterministic one-screen summary of what the notebook will run (checked by nbval)."""
    head = f"notebook {s.notebook}: profile '{s.profile}'"
    if s.notebook == "05_summary" and not s.params.get("RESULTS_DIR"):  # it trains nothing of its own
        head += " (its own outputs; it reads each notebook's records: full where committed, else demo)"
    lines = [head]
    for k in sorted(s.params):
        if k not in ("OUT_DIR", "RESULTS_DIR", "PROFILE", "QUIET", "INTERACTIVE"):
            value = f"{s.params[k]!r}"
            if k == "TRAIN" and s.params[k] and not training_allowed(True):
                value += " (off here: HYPERNB_TRAIN=0, records are read, nothing trains)"
            lines.append(f"  {k} = {value}")
    return "\n".join(lines)


def config_key(cfg: RunConfig) -> str:
    """The folder name of a configuration's records: a hash of the fields that differ from their
    defaults (so that a field added later, at its default, leaves every existing record's name alone)."""
    defaults = RunConfig().to_dict()
    d = {k: v for k, v in cfg.to_dict().items()
         if k not in ("out_dir", "quiet", "data_root", "download") and v != defaults[k]}
    d["_hypernb"] = __version__
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_grid(s: Setup, configs: list, desc: str = "runs") -> list:
    """Every config (a RunConfig or dict) into ``<out>/runs/<hash>``, trained together in compatible
    batches: finished runs are read back instead of retrained, interrupted ones resume. Returns the
    Results in order. With training off, missing records raise :class:`MissingRecords`."""
    from ..train import Result, finished_record, run

    cfgs = []
    for cfg in configs:
        cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
        cfgs.append(cfg.replace(out_dir=str(s.records / "runs" / config_key(cfg)), quiet=s.quiet))
    if not training_allowed(s.params.get("TRAIN", True)):
        missing = [c for c in cfgs if not finished_record(c.out_dir, c.seeds)]
        if missing:
            raise MissingRecords(f"{len(missing)} of {len(cfgs)} runs of {desc} have no finished record under "
                                 f"{shown(s.records / 'runs')} and training is off (TRAIN = False or "
                                 f"HYPERNB_TRAIN=0); e.g. "
                                 f"{missing[0].optimizer} α={missing[0].alpha} seeds {list(missing[0].seeds)}")
        return [Result.load(c.out_dir, seeds=list(c.seeds)) for c in cfgs]  # (a folder may hold more seeds)
    unique = {}  # a configuration listed twice (two grids can share a point) trains once
    for c in cfgs:
        unique.setdefault(c.out_dir, c)
    if not s.quiet:
        print(f"{desc}: {len(unique)} configurations", flush=True)
    results = dict(zip(unique, run(list(unique.values()))))
    return [results[c.out_dir] for c in cfgs]


def save_figure(s: Setup, fig, name: str) -> Path:
    """Save as PNG and SVG into <out>/figures/ (and leave it for the notebook to show)."""
    png = s.path("figures", f"{name}.png")
    fig.savefig(png, bbox_inches="tight", dpi=110 if s.profile != "smoke" else 60)
    fig.savefig(s.path("figures", f"{name}.svg"), bbox_inches="tight")
    return png


def save_table(s: Setup, df, name: str) -> Path:
    path = s.path("tables", f"{name}.csv")
    io.atomic_write_bytes(path, df.to_csv(index=False).encode())
    return path


def save_verdicts(s: Setup, verdicts: list, name: str = "verdicts.json") -> Path:
    """The notebook's verdicts (and the profile they come from) as ``verdicts.json`` for the summary (its
    follow-ups' as ``follow_ups.json``)."""
    path = s.path(name)
    io.write_json(path, {"notebook": s.notebook, "profile": s.profile, "verdicts": [v.to_dict() for v in verdicts]})
    return path


def verdict_table(verdicts: list, columns=("claim", "claimant", "comparison", "n", "effect", "95 % interval",
                                           "verdict", "why")):
    """One row per claim: what is compared, n, effect, interval, verdict and why (nothing cut short), and
    what was amended in its declaration after runs had started, where anything was."""
    import pandas as pd

    if any(v.claim.amended for v in verdicts):
        columns = (*columns, "amended")
    return pd.DataFrame([{k: v.row()[k] for k in columns} for v in verdicts], columns=list(columns))


_TABLES = itertools.count()


@functools.cache
def _stable_styler():
    from pandas.io.formats.style import Styler

    class StableStyler(Styler):
        def __repr__(self) -> str:
            return self.data.to_string(index=False, max_rows=40, max_colwidth=60)

    return StableStyler


def show_table(df, caption: str = ""):
    """A table whose cells wrap instead of being cut with "…" (for the notebooks). It renders the same
    bytes for the same table: its HTML ids come from its content and its place in the session's order
    (not a random uuid), and its plain-text form is the table (not ``<Styler at 0x…>``), so a notebook
    re-rendered from unchanged records has no diff in its tables."""
    content = f"{next(_TABLES)}:{caption}:" + df.to_json(orient="split", default_handler=str)
    styler = _stable_styler()(df, uuid=hashlib.sha256(content.encode()).hexdigest()[:10])
    styler = styler.hide(axis="index").set_properties(**{"white-space": "pre-wrap", "text-align": "left"})
    return styler.set_caption(caption) if caption else styler

