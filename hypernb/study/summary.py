"""Notebook 05: every claim, paper / report / ours, with a verdict and the figure behind it."""
from __future__ import annotations

from pathlib import Path

from .. import io
from .common import Claim, output_root

NAME = "05_summary"
SPEC = {"PROFILE": "str", "RESULTS_DIR": "str", "SWEEPS": "list", "OUT_DIR": "str", "INTERACTIVE": "bool",
        "QUIET": "bool"}
DEFAULTS = {"smoke": {}, "demo": {}, "full": {}}
NOTEBOOKS = ("01_mlp_mnist", "02_resnet20_cifar10", "03_char_rnn", "04_towers")


def load_claims(results_dir: Path) -> tuple[list[Claim], list[str]]:
    """All claims written by notebooks 01–04 under ``results_dir``, and the notebooks still missing."""
    claims, missing = [], []
    for nb in NOTEBOOKS:
        path = Path(results_dir) / nb / "claims.json"
        if not path.exists():
            missing.append(nb)
            continue
        for c in io.read_json(path):
            claim = Claim(**c)
            if claim.evidence:
                claim.evidence = str(Path(results_dir) / nb / claim.evidence)
            claims.append(claim)
    return claims, missing


def results_dir(s) -> Path:
    return Path(s["RESULTS_DIR"]) if s["RESULTS_DIR"] else output_root(s.profile)


def show_evidence(s, claims: list[Claim]) -> None:
    """One table per claim (paper / report / ours / verdict) and its evidence figure, each figure once
    (paths only on the smoke profile, to keep the committed notebook small)."""
    import pandas as pd
    from IPython.display import Image, Markdown, display

    shown = set()
    for c in claims:
        display(Markdown(f"### {c.claim}\n*{c.source}'s claim · {c.notebook}*"))
        display(pd.DataFrame({"paper": [c.paper], "report": [c.report], "ours": [c.ours],
                              "verdict": [c.verdict]}).style.hide(axis="index"))
        if c.notes:
            display(Markdown(f"note: {c.notes}"))
        if not c.evidence or not Path(c.evidence).exists():
            continue
        if c.evidence in shown:
            display(Markdown(f"(figure above: `{Path(c.evidence).name}`)"))
        elif s.profile == "smoke":
            display(Markdown(f"figure: `{Path(c.evidence).parent.parent.name}/figures/{Path(c.evidence).name}`"))
        else:
            display(Image(filename=c.evidence, width=640))
        shown.add(c.evidence)


def verdict_counts(claims: list[Claim]) -> dict:
    out = {"reproduced": 0, "refuted": 0, "inconclusive": 0}
    for c in claims:
        out[c.verdict] += 1
    return out


def styled(df):
    """Colour the verdict column (green reproduced, red refuted, grey inconclusive)."""
    colours = {"reproduced": "#d8f3dc", "refuted": "#ffd6d6", "inconclusive": "#eeeeee"}
    return df.style.map(lambda v: f"background-color: {colours.get(v, '')}", subset=["verdict"]).hide(axis="index")


def sweep_tables(paths: list, base: Path) -> list:
    """(name, aggregated table) for each sweep folder or collected CSV (``python -m hypernb collect``):
    one row per configuration, test metrics as mean ± std over its seeds."""
    import pandas as pd

    from ..sweep import collect

    out = []
    for p in paths:
        path = Path(p) if Path(p).is_absolute() else base / p
        if not path.exists():
            out.append((str(p), None))
            continue
        df = collect(path) if path.is_dir() else pd.read_csv(path)
        out.append((path.name, aggregate(df)))
    return out


def aggregate(df):
    """Group a tidy sweep table by its varied parameters: test accuracy / error mean ± std and n."""
    import pandas as pd

    if df.empty or "test_acc" not in df:
        return df
    fixed = {"point", "seed", "seeds", "status", "diverged_at_step", "epochs_done", "time_s"}
    params = [c for c in df.columns if c not in fixed and not c.startswith(("test_", "final_", "data_"))
              and df[c].nunique(dropna=False) > 1]
    rows = []
    for key, g in df.groupby(params, dropna=False, sort=False) if params else [((), df)]:
        ok = g[g.status == "ok"]
        err = 100 * (1 - ok.test_acc)
        row = dict(zip(params, key if isinstance(key, tuple) else (key,)))
        row.update({"test error %": f"{err.mean():.2f} ± {err.std(ddof=1) if len(ok) > 1 else 0:.2f}",
                    "seeds ok": f"{len(ok)}/{len(g)}"})
        if "final_alpha" in ok:
            row["learned α"] = f"{ok.final_alpha.mean():.4g}"
        rows.append(row)
    return pd.DataFrame(rows)
