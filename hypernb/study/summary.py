"""Notebook 05: every claim with its verdict, the evidence behind it, and what the report's files
show — read from what notebooks 01–04 and 06 wrote (``verdicts.json``), never retrained here."""
from __future__ import annotations

import os
from pathlib import Path

from .. import io
from . import claims as C
from .common import EVIDENCE, output_root, resolve_profile, show_table

NAME = "05_summary"
SPEC = {"PROFILE": "str", "RESULTS_DIR": "str", "TRAIN": "bool", "OUT_DIR": "str", "INTERACTIVE": "bool",
        "QUIET": "bool"}
DEFAULTS = {"smoke": {}, "demo": {}, "full": {}}
NOTEBOOKS = ("01_mlp_mnist", "02_resnet20_cifar10", "03_char_rnn", "04_towers", "06_vs_lr_free")


def where(s, notebook: str) -> Path:
    """A notebook's results: RESULTS_DIR/<notebook> if given; else $HYPERNB_OUT/<notebook> when that
    notebook already wrote its verdicts there in this session; else where that notebook's own
    ``PROFILE = "auto"`` puts them (the committed full records where present, else demo)."""
    if s["RESULTS_DIR"]:
        return Path(s["RESULTS_DIR"]) / notebook
    if s.profile == "smoke":
        return output_root(s.profile) / notebook
    if os.environ.get("HYPERNB_OUT"):  # this session's outputs where that notebook ran already, else the committed
        here = output_root(s.profile) / notebook
        if (here / "verdicts.json").exists():
            return here
    return EVIDENCE / resolve_profile("auto", notebook) / notebook


def _read(s, notebook: str, path: Path) -> tuple[list, str]:
    """(verdicts, profile) of one saved verdict file; evidence paths made relative to where it lies."""
    from .stats import Interval

    saved = io.read_json(path, what="a notebook's verdicts")
    verdicts = []
    for v in saved["verdicts"]:
        claim = C.Claim(**v.pop("claim"))
        effect = v.pop("effect")
        verdict = C.Verdict(claim, **{k: v[k] for k in ("verdict", "n", "reason", "evidence", "detail")})
        if effect is not None:
            verdict.effect = Interval(**effect)
        if verdict.evidence:
            verdict.evidence = str(where(s, notebook) / verdict.evidence)
        verdicts.append(verdict)
    return verdicts, saved["profile"]


def load(s) -> tuple[list, dict, list]:
    """(verdicts, {notebook: profile}, notebooks with no verdicts.json)."""
    verdicts, profiles, missing = [], {}, []
    for nb in NOTEBOOKS:
        path = where(s, nb) / "verdicts.json"
        if not path.exists():
            missing.append(nb)
            continue
        found, profiles[nb] = _read(s, nb, path)
        verdicts += found
    return verdicts, profiles, missing


def load_follow_ups(s) -> list:
    """The follow-ups' verdicts (``follow_ups.json``) of every notebook that ran them."""
    out = []
    for nb in NOTEBOOKS:
        path = where(s, nb) / "follow_ups.json"
        if path.exists():
            out += _read(s, nb, path)[0]
    return out


def follow_up_plan(verdicts: list):
    """Every inconclusive full-protocol verdict with the size its follow-up plan asks for and the follow-up
    declared for it (see :mod:`followup`)."""
    from . import followup

    return followup.plan_table(verdicts, {c.follows: c for c in C.FOLLOW_UPS})


def follow_up_table(verdicts: list, follow_ups: list):
    """Each follow-up beside its claim's first verdict: n, effect, interval and verdict of both runs."""
    import pandas as pd

    first = {v.claim.id: v for v in verdicts}
    rows = []
    for f in follow_ups:
        a, r = first.get(f.claim.follows), f.row()
        rows.append({"claim": r["claim"], "notebook": f.claim.notebook,
                     "first run": "–" if a is None else f"n = {a.n}: {a.row()['effect']} {a.row()['95 % interval']}, "
                                                        f"{a.verdict}",
                     "follow-up (fresh seeds only)": f"n = {f.n}: {r['effect']} {r['95 % interval']}",
                     "rule": r["rule"], "verdict of the follow-up": f.verdict, "why": r["why"]})
    return pd.DataFrame(rows, columns=["claim", "notebook", "first run", "follow-up (fresh seeds only)", "rule",
                                       "verdict of the follow-up", "why"])


def counts(verdicts: list) -> dict:
    out = {k: 0 for k in (*C.VERDICTS, C.INDICATIVE)}
    for v in verdicts:
        out[v.verdict] += 1
    return out


def overview(verdicts: list, profiles: dict):
    """One row per claim: notebook (and the profile its runs come from), claim, claimant, n, effect,
    interval, verdict, why."""
    import pandas as pd

    rows = []
    for v in verdicts:
        r = v.row()
        rows.append({"notebook": f"{v.claim.notebook} ({profiles.get(v.claim.notebook, '?')})", "claim": r["claim"],
                     "claimant": r["claimant"], "n": r["n"], "effect": r["effect"], "95 % interval": r["95 % interval"],
                     "verdict": r["verdict"], "why": r["why"], "amended": "yes" if v.claim.amended else ""})
    return pd.DataFrame(rows, columns=["notebook", "claim", "claimant", "n", "effect", "95 % interval", "verdict",
                                       "why", "amended"])


def styled(df):
    """Verdicts coloured (green reproduced, red refuted, grey the rest); cells wrap, nothing is cut."""
    colours = {"reproduced": "#d8f3dc", "refuted": "#ffd6d6", "inconclusive": "#eeeeee", C.INDICATIVE: "#fff4cc"}
    return show_table(df).map(lambda v: f"background-color: {colours.get(v, '')}", subset=["verdict"])


def declarations():
    """Every claim as declared now: metric, comparison, rule with δ, minimum n, and what was amended
    after runs had started (and why)."""
    import pandas as pd

    return pd.DataFrame([{"id": c.id, "notebook": c.notebook, "claim": c.statement, "claimant": c.claimant,
                          "source": c.source, "metric": c.metric, "comparison": c.comparison, "rule": c.rule,
                          "min n": c.min_n, "amended after runs had started": c.amended} for c in C.CLAIMS])


def findings():
    import pandas as pd

    return pd.DataFrame([{"finding": f.statement, "where in the report's files": f.where,
                          "consequence": f.consequence, "notebook": f.notebook} for f in C.FINDINGS])


def show_evidence(s, verdicts: list) -> None:
    """Each decided claim's figure, once."""
    from IPython.display import Image, Markdown, display

    shown = set()
    for v in verdicts:
        if not v.evidence or v.evidence in shown or not Path(v.evidence).exists():
            continue
        shown.add(v.evidence)
        display(Markdown(f"**{Path(v.evidence).stem.replace('_', ' ')}** ({v.claim.notebook}) — for: "
                         + "; ".join(x.claim.statement for x in verdicts if x.evidence == v.evidence)))
        display(Image(filename=v.evidence, width=760))
