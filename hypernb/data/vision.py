"""MNIST, CIFAR-10 and the labelled 4,000/1,000 CIFAR-10 subset, as uint8 tensors in memory."""
from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch

from .files import DataError, missing_message, verify

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # full CIFAR-10 training set (the subset's own are close)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
SUBSET_DIR = "CIFAR10_SUBSET/cifar-10-batches-bin-subset"


def _read_idx(raw: bytes) -> np.ndarray:
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _cached(subdir: str):
    """Decode each dataset once per process (sweeps, notebooks and tests load it many times).
    Keyed by the resolved root and the size and modification time of the dataset's own files, so a
    replaced file is read (and verified) again."""
    def decorate(loader):
        cache = {}

        @functools.wraps(loader)
        def wrapper(root: Path, *args, **kwargs):
            root = Path(root)
            folder = root / subdir
            stamp = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                 for p in folder.rglob("*") if p.is_file())) if folder.is_dir() else None
            key = (str(root.resolve()), stamp, args, tuple(sorted(kwargs.items())))
            if stamp is None or key not in cache:
                result = loader(root, *args, **kwargs)
                cache.clear()  # keep one decoded copy per dataset
                if stamp is not None:
                    cache[key] = result
                return result
            return cache[key]
        return wrapper
    return decorate


@_cached("MNIST")
def load_mnist(root: Path, download_ok: bool = True) -> dict[str, torch.Tensor]:
    """MNIST as uint8 images [N, 1, 28, 28] and int64 labels; md5-checked against torchvision."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    names = [name for name, _ in MNIST.resources]
    if not all((raw / n).exists() for n in names):
        if download_ok:
            try:
                MNIST(str(root), train=True, download=True)
            except Exception as e:  # no network, read-only root, …
                _remove_empty(root / "MNIST")  # torchvision makes the folders before it fails
                raise DataError(missing_message("MNIST", root, [f"MNIST/raw/{n}" for n in names],
                                                f"torchvision could not download it ({e}).")) from e
        else:
            raise DataError(missing_message("MNIST", root, [f"MNIST/raw/{n}" for n in names],
                                            "With network access, hypernb downloads it through torchvision."))
    arrays = {}
    for name, md5 in MNIST.resources:
        verify(raw / name, md5, "md5")
        with gzip.open(raw / name, "rb") as f:
            arrays[name.split("-")[0] + "-" + name.split("-")[1]] = _read_idx(f.read())
    return {
        "train_x": torch.from_numpy(arrays["train-images"].copy()).unsqueeze(1),
        "train_y": torch.from_numpy(arrays["train-labels"].astype(np.int64)),
        "test_x": torch.from_numpy(arrays["t10k-images"].copy()).unsqueeze(1),
        "test_y": torch.from_numpy(arrays["t10k-labels"].astype(np.int64)),
    }


@_cached("cifar-10-batches-py")
def load_cifar10(root: Path, download_ok: bool = True) -> dict[str, torch.Tensor]:
    """The full CIFAR-10 (50,000 / 10,000) through torchvision, uint8 [N, 3, 32, 32]."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = CIFAR10(str(root), train=train, download=False)
        except RuntimeError as e:
            if not download_ok:
                raise DataError(missing_message(
                    "CIFAR-10", root, ["cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch"],
                    "With network access hypernb downloads it through torchvision; offline, the task "
                    "'cifar10subset-resnet20' uses the 4,000/1,000 subset.")) from e
            try:
                ds = CIFAR10(str(root), train=train, download=True)
            except Exception as e2:
                raise DataError(missing_message(
                    "CIFAR-10", root, ["cifar-10-batches-py/"],
                    f"torchvision could not download it ({e2}); offline, use the task 'cifar10subset-resnet20'.")) from e2
        out[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
    return out


@_cached("CIFAR10_SUBSET")
def load_cifar10_subset(root: Path) -> dict[str, torch.Tensor]:
    """The first 4,000 training and first 1,000 test images of CIFAR-10 (binary record format).

    A *subset*: accuracies on it are not comparable with full CIFAR-10 numbers.
    """
    from .files import SHA256

    files = {"train": "train_first4000.bin", "test": "test_first1000.bin"}
    paths = {k: root / SUBSET_DIR / v for k, v in files.items()}
    if not all(p.exists() for p in paths.values()):
        raise DataError(missing_message("The CIFAR-10 subset", root, [f"{SUBSET_DIR}/{v}" for v in files.values()],
                                        "It is not downloadable; copy it from a verified offline copy."))
    out = {}
    for split, path in paths.items():
        verify(path, SHA256[f"{SUBSET_DIR}/{files[split]}"])
        rec = np.fromfile(path, np.uint8).reshape(-1, 3073)
        out[f"{split}_x"] = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy())
        out[f"{split}_y"] = torch.from_numpy(rec[:, 0].astype(np.int64))
    return out


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but empty folders."""
    try:
        for sub in sorted(folder.rglob("*"), reverse=True):
            if sub.is_dir():
                sub.rmdir()
        folder.rmdir()
    except OSError:  # not empty, or not ours to remove: leave it
        pass


def load_images(name: str, root: Path, download_ok: bool = True) -> dict[str, torch.Tensor]:
    """One of the image datasets by name (mnist, cifar10, cifar10subset; the subset is never downloaded)."""
    if name == "mnist":
        return load_mnist(root, download_ok)
    if name == "cifar10":
        return load_cifar10(root, download_ok)
    if name == "cifar10subset":
        return load_cifar10_subset(root)
    raise ValueError(f"unknown image dataset {name!r}")


def available(name: str, root: Path) -> bool:
    """Whether a dataset is present under ``root`` (without downloading or verifying it)."""
    if name == "mnist":
        return (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists()
    if name == "cifar10":
        return (root / "cifar-10-batches-py" / "data_batch_1").exists()
    if name == "cifar10subset":
        return (root / SUBSET_DIR / "train_first4000.bin").exists()
    raise ValueError(f"unknown dataset {name!r}")
