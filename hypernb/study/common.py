"""What every notebook shares: its validated parameters, its output folder, grids of runs that are
cached by configuration (a re-executed notebook resumes instead of retraining), figures, tables and
the claims it checks."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__, io
from ..config import PROFILES, RunConfig

REPO = Path(__file__).resolve().parents[2]
VERDICTS = ("reproduced", "refuted", "inconclusive")


def resolve_profile(profile: str) -> str:
    """``auto`` → $HYPERNB_PROFILE if set, else ``smoke`` when $CI is set, else ``demo``."""
    if profile == "auto":
        profile = os.environ.get("HYPERNB_PROFILE") or ("smoke" if os.environ.get("CI") else "demo")
    if profile not in PROFILES:
        raise ValueError(f"PROFILE must be one of {('auto',) + PROFILES}, got {profile!r}")
    return profile


def output_root(profile: str) -> Path:
    """$HYPERNB_OUT if set, else outputs/<profile>/ in this checkout."""
    env = os.environ.get("HYPERNB_OUT")
    return Path(env) if env else REPO / "outputs" / profile


@dataclass
class Setup:
    """A notebook's resolved parameters and where its results go."""

    notebook: str
    profile: str
    params: dict
    out_dir: Path
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


def setup(notebook: str, namespace: dict, spec: dict, defaults: dict) -> Setup:
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
    profile = resolve_profile(given["PROFILE"])
    params = dict(given)
    for key, value in defaults[profile].items():
        if params.get(key) is None:
            params[key] = value
    params["PROFILE"] = profile
    out = Path(params["OUT_DIR"]) if params.get("OUT_DIR") else output_root(profile) / notebook
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "parameters.json", params)
    import matplotlib

    if profile == "smoke":
        matplotlib.rcParams["figure.dpi"] = 40  # keep the committed smoke outputs small
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    return Setup(notebook, profile, params, out, quiet=params.get("QUIET", True))


def describe(s: Setup) -> str:
    """A deterministic one-screen summary of what the notebook will run (checked by nbval)."""
    lines = [f"notebook {s.notebook}: profile '{s.profile}'"]
    for k in sorted(s.params):
        if k not in ("OUT_DIR", "RESULTS_DIR", "PROFILE", "QUIET", "INTERACTIVE"):
            lines.append(f"  {k} = {s.params[k]!r}")
    return "\n".join(lines)


def config_key(cfg: RunConfig) -> str:
    d = {k: v for k, v in cfg.to_dict().items() if k not in ("out_dir", "quiet", "data_root", "download")}
    d["_hypernb"] = __version__
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_grid(s: Setup, configs: list, desc: str = "runs") -> list:
    """Run every config (a RunConfig or dict) into ``<out>/runs/<hash>``: finished runs are read back
    instead of retrained, interrupted ones resume. Returns the Results in order."""
    from tqdm.auto import tqdm

    from ..train import run

    results = []
    for cfg in tqdm(configs, desc=desc, disable=s.quiet):
        cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
        cfg = cfg.replace(out_dir=str(s.out_dir / "runs" / config_key(cfg)), quiet=True)
        results.append(run(cfg))
    return results


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


@dataclass
class Claim:
    """One claim of the paper or the report, and what our runs say about it."""

    id: str
    claim: str
    source: str  # paper | report
    paper: str
    report: str
    ours: str
    verdict: str
    evidence: str = ""  # a figure file, relative to the notebook's output folder
    notebook: str = ""
    notes: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def save_claims(s: Setup, claims: list) -> Path:
    for c in claims:
        c.notebook = s.notebook
    path = s.path("claims.json")
    io.write_json(path, [asdict(c) for c in claims])
    return path


CLAIM_COLUMNS = ("id", "claim", "source", "paper", "report", "ours", "verdict", "notes")


def claims_table(claims: list):
    import pandas as pd

    return pd.DataFrame([{k: getattr(c, k) for k in CLAIM_COLUMNS} for c in claims], columns=list(CLAIM_COLUMNS))
