"""Where data live, how they are verified, and how they are fetched.

The data root is found the same way by every entry point (the CLI, notebooks in JupyterLab or
papermill, sweeps, tests): an explicit argument, else ``$HYPERNB_DATA``, else the first of
``./data``, this checkout's ``data/`` and ``shared/data`` next to this checkout that holds a
dataset, else this checkout's ``data/`` (where downloads go). The root may be read-only: nothing
is ever written next to the data unless a download was asked for.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

ENV_VAR = "HYPERNB_DATA"
REPO = Path(__file__).resolve().parents[2]
REPO_DATA = REPO / "data"
# files that mark a folder as holding datasets
MARKERS = ("MNIST/raw/train-images-idx3-ubyte.gz", "CIFAR10_SUBSET/cifar-10-batches-bin-subset/train_first4000.bin",
           "cifar-10-batches-py/data_batch_1", "text/warpeace_input.txt", "text/tinyshakespeare/input.txt")

# sha256 of the files hypernb pins (the same values as shared/data/SHA256SUMS)
SHA256 = {
    "text/warpeace_input.txt": "fb66ba999dafe24017cdd59e04c56d385a9c8466993d374fd4c6f08b2142985e",
    "text/tinyshakespeare/input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    "CIFAR10_SUBSET/cifar-10-batches-bin-subset/train_first4000.bin":
        "0993cf8b8e43bc207603aef9787006995746513f5e3fa5a52e06d1b069926330",
    "CIFAR10_SUBSET/cifar-10-batches-bin-subset/test_first1000.bin":
        "8314c96d7cd65618193bab23acdd5d4c4af15bf6dd00a1781d55beedf3be1ef5",
}
URLS = {
    "text/warpeace_input.txt": "https://cs.stanford.edu/people/karpathy/char-rnn/warpeace_input.txt",
    "text/tinyshakespeare/input.txt":
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}


class DataError(FileNotFoundError):
    """A dataset is missing or corrupt; the message says which file and how to get it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root (see the module docstring for the order)."""
    if root:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for candidate in (Path("data"), REPO_DATA, REPO.parent / "shared" / "data"):
        if any((candidate / m).is_file() for m in MARKERS):
            return candidate.resolve()
    return REPO_DATA


@contextlib.contextmanager
def no_empty_folders_left(root: Path):
    """Around loading data into ``root``: if it fails (offline, say, after torchvision made its folders),
    remove the folders it created, root and its ancestors included, as far as they stayed empty; a
    folder that holds anything is kept."""
    made = []
    path = Path(root).expanduser()
    while not path.exists() and path != path.parent:
        made.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        if made and made[0].is_dir():
            for here, _, _ in os.walk(made[0], topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(here)  # fails unless empty
        for folder in made[1:]:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, expected: str, algorithm: str = "sha256") -> None:
    got = digest(path, algorithm)
    if got != expected:
        raise DataError(
            f"corrupt data file {path}: {algorithm} is {got}, expected {expected}. "
            "Delete it and download it again (or copy a verified copy into the data root)."
        )


def missing_message(what: str, root: Path, files: list[str], how: str) -> str:
    listing = "\n".join(f"  {root / f}" for f in files)
    return (f"{what} was not found under the data root {root}. Expected:\n{listing}\n"
            f"Set ${ENV_VAR} (or pass data_root=...) to a folder that holds them. {how}")


def download(url: str, dest: Path, expected_sha256: str | None = None, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``dest`` atomically (a temporary file, checked, then renamed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        if expected_sha256:
            verify(Path(tmp), expected_sha256)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pinned_file(relative: str, root: Path, download_ok: bool, what: str) -> Path:
    """A sha256-pinned file under ``root``: verified, fetched from its public location if missing."""
    path = root / relative
    if not path.exists():
        url = URLS.get(relative)
        if download_ok and url:
            try:
                download(url, path, SHA256[relative])
            except (OSError, ValueError) as e:  # no network, read-only root, …
                raise DataError(missing_message(what, root, [relative],
                                                f"Downloading {url} failed ({e}).")) from e
        else:
            how = f"It can be fetched from {url}." if url else "It is not downloadable; copy it in."
            raise DataError(missing_message(what, root, [relative], how))
    verify(path, SHA256[relative])
    return path
