"""Notebook 05: every claim, paper / report / ours, with a verdict and the figure behind it."""
from __future__ import annotations

from pathlib import Path

from .. import io
from .common import Claim, output_root

NAME = "05_summary"
SPEC = {"PROFILE": "str", "RESULTS_DIR": "str", "OUT_DIR": "str", "INTERACTIVE": "bool", "QUIET": "bool"}
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
    """Each claim with its verdict, and each evidence figure once (paths only on the smoke profile,
    to keep the committed notebook small)."""
    from IPython.display import Image, Markdown, display

    shown = set()
    for c in claims:
        display(Markdown(f"**{c.claim}** ({c.source}) — *{c.verdict}*  \nours: {c.ours}"))
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
