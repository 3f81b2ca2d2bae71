"""The study behind the notebooks: each notebook's parameters, runs, tables, figures and claims.

The notebooks stay thin (narrative, parameters, calls into this package, figures); everything that
computes lives here, so it is tested and shared by the batch and interactive paths.
"""
from . import charrnn, cifar, mnist, references, summary, towers
from .common import Claim, Setup, claims_table, describe, output_root, resolve_profile, run_grid, save_claims, setup

NOTEBOOKS = {m.NAME: m for m in (mnist, cifar, charrnn, towers, summary)}


def start(notebook: str, namespace: dict) -> Setup:
    """Validate a notebook's parameters cell and prepare its output folder (first call in each notebook)."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; choose from {sorted(NOTEBOOKS)}")
    m = NOTEBOOKS[notebook]
    return setup(notebook, namespace, m.SPEC, m.DEFAULTS)


__all__ = ["Claim", "Setup", "claims_table", "describe", "output_root", "resolve_profile", "run_grid", "save_claims",
           "setup", "start", "NOTEBOOKS", "references", "mnist", "cifar", "charrnn", "towers", "summary"]
