"""Batch commands: executing the notebooks, sweeps and collecting results (filled in by later work)."""


def add_commands(sub) -> None:
    return None
