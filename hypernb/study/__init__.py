"""The study behind the notebooks: each notebook's parameters, runs, tables, figures and claims.

The notebooks stay thin (narrative, parameters, calls into this package, figures); everything that
computes lives here, so it is tested and shared by the batch and interactive paths.
"""
from . import charrnn, cifar, claims, followup, horizon, lrfree, mnist, sources, stats, summary, towers
from .common import (MissingRecords, Setup, describe, output_root, resolve_profile, resolved, run_grid, save_verdicts,
                     setup, show_table, verdict_table)

NOTEBOOKS = {m.NAME: m for m in (mnist, cifar, charrnn, towers, lrfree, summary)}


def start(notebook: str, namespace: dict) -> Setup:
    """Validate a notebook's parameters cell and prepare its output folder (first call in each notebook)."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; choose from {sorted(NOTEBOOKS)}")
    m = NOTEBOOKS[notebook]
    return setup(notebook, namespace, m.SPEC, m.DEFAULTS, getattr(m, "check", None))


__all__ = ["MissingRecords", "Setup", "describe", "output_root", "resolve_profile", "resolved", "run_grid",
           "save_verdicts", "setup", "show_table", "verdict_table", "start", "NOTEBOOKS", "claims", "sources",
           "stats", "mnist", "cifar", "charrnn", "towers", "lrfree", "horizon", "summary", "followup"]
