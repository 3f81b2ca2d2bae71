"""Errors that the command line explains in one line, without a traceback."""
from __future__ import annotations

import difflib
import importlib


class MissingPackage(ImportError):
    """An optional package that a command needs is not installed; the message says how to install it."""


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error in one of its cells; the message names the cell, the error and where
    the notebook as far as it ran was written (its traceback is in that copy)."""


def optional(module: str, needed_for: str, install: str):
    """``import module``, or :class:`MissingPackage` naming what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingPackage(f"{needed_for} needs the package {module!r}, which is not installed: {install}") from e


def did_you_mean(unknown, known) -> str:
    """" ('profle': did you mean 'profile'?)" for the unknown names with a close known one; else ""."""
    hints = [f"{k!r}: did you mean {close[0]!r}?" for k in unknown
             for close in [difflib.get_close_matches(str(k), [str(x) for x in known], n=1, cutoff=0.6)] if close]
    return f" ({'; '.join(hints)})" if hints else ""
