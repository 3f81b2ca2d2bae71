import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _training_allowed(monkeypatch):
    """``make test`` sets HYPERNB_TRAIN=0 so that nbval renders the committed notebooks from the
    committed records only; the tests themselves (including the smoke execution of every notebook)
    train."""
    monkeypatch.delenv("HYPERNB_TRAIN", raising=False)


@pytest.fixture(scope="session")
def data_root():
    """The data root the tests read (read-only: tests copy before modifying anything)."""
    from hypernb.data import data_root as resolve

    return resolve()


def require(dataset: str):
    """Skip (with the reason) when a dataset is neither present nor downloadable here."""
    from hypernb import data

    root = data.data_root()
    present = {
        "mnist": lambda: data.available("mnist", root),
        "cifar10subset": lambda: data.available("cifar10subset", root),
        "warpeace": lambda: (root / data.CORPORA["warpeace"]).exists(),
        "shakespeare": lambda: (root / data.CORPORA["shakespeare"]).exists(),
    }[dataset]()
    if not present:
        pytest.skip(f"{dataset} is not under the data root {root}; set HYPERNB_DATA to a folder that holds it")


def require_cxx():
    """Skip (with the reason) when there is no C++ compiler, which torch.compile's CPU backend needs
    for compiled=True (.ci/run installs g++)."""
    import os
    import shutil

    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        pytest.skip(f"compiled=True needs a C++ compiler and {compiler!r} is not on PATH (apt-get install g++)")
