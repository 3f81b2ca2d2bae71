"""Data: the real offline files, the contiguous text split, checksums, and clear errors."""
import shutil

import pytest
import torch

from conftest import require
from hypernb import data


def test_mnist_is_complete(data_root):
    require("mnist")
    d = data.load_mnist(data_root, download_ok=False)
    assert d["train_x"].shape == (60000, 1, 28, 28) and d["test_x"].shape == (10000, 1, 28, 28)
    assert torch.bincount(d["train_y"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert d["train_y"][:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]


def test_cifar_subset_is_labelled_in_original_order(data_root):
    require("cifar10subset")
    d = data.load_cifar10_subset(data_root)
    assert d["train_x"].shape == (4000, 3, 32, 32) and d["test_x"].shape == (1000, 3, 32, 32)
    assert d["train_y"][:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert d["train_x"][0, 0, 0, :5].tolist() == [59, 43, 50, 68, 98]  # the published red plane of image 0


def test_text_split_is_contiguous(data_root):
    """Every validation window is an exact substring of the last 10 % of the text (the report's bug
    was a split by random character positions)."""
    require("warpeace")
    corpus = data.load_corpus("warpeace", data_root, download_ok=False)
    assert len(corpus.text) == 3_196_212 and corpus.vocab_size == 82
    tail = corpus.text[len(corpus.train):]
    assert tail == corpus.text[-len(corpus.val):] and len(corpus.val) == len(corpus.text) - int(len(corpus.text) * 0.9)
    win = data.windows(corpus.val, 100)
    for w in win:
        s = corpus.decode(w)
        assert len(s) == 101 and s in tail
    starts = [tail.find(corpus.decode(w)) for w in win[:50]]
    assert starts == [100 * i for i in range(50)]  # consecutive, non-overlapping windows in order
    assert 3.0 < corpus.unigram_entropy() < 3.2  # where the report's shuffled-character LSTM plateaued


def test_missing_data_names_the_files_and_the_variable(tmp_path):
    with pytest.raises(data.DataError, match=r"(?s)MNIST was not found.*train-images-idx3-ubyte.gz.*HYPERNB_DATA"):
        data.load_mnist(tmp_path, download_ok=False)
    with pytest.raises(data.DataError, match=r"(?s)warpeace.*text/warpeace_input.txt.*cs.stanford.edu"):
        data.load_corpus("warpeace", tmp_path, download_ok=False)
    with pytest.raises(data.DataError, match=r"(?s)CIFAR-10 was not found.*cifar10subset-resnet20"):
        data.load_cifar10(tmp_path, download_ok=False)


def test_corrupt_file_is_named(data_root, tmp_path):
    require("shakespeare")
    dst = tmp_path / data.CORPORA["shakespeare"]
    dst.parent.mkdir(parents=True)
    shutil.copy(data_root / data.CORPORA["shakespeare"], dst)
    raw = bytearray(dst.read_bytes())
    raw[100] ^= 1
    dst.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"corrupt data file .*tinyshakespeare/input.txt: sha256"):
        data.load_corpus("shakespeare", tmp_path, download_ok=False)


def test_corrupt_mnist_is_named(data_root, tmp_path):
    require("mnist")
    shutil.copytree(data_root / "MNIST", tmp_path / "MNIST")
    path = tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"corrupt data file .*t10k-labels-idx1-ubyte.gz: md5"):
        data.load_mnist(tmp_path, download_ok=False)


def test_data_root_resolution(monkeypatch, tmp_path):
    """Explicit argument, then $HYPERNB_DATA, then the first of ./data, the checkout's data/ and
    shared/data next to the checkout that holds a dataset (an empty folder does not count)."""
    from hypernb.data import files

    explicit, env = tmp_path / "explicit", tmp_path / "env"
    monkeypatch.setenv("HYPERNB_DATA", str(env))
    assert data.data_root(explicit) == explicit
    assert data.data_root() == env
    monkeypatch.delenv("HYPERNB_DATA")
    checkout = tmp_path / "checkout"
    monkeypatch.setattr(files, "REPO", checkout)
    monkeypatch.setattr(files, "REPO_DATA", checkout / "data")
    work = tmp_path / "work"
    (work / "data" / "MNIST").mkdir(parents=True)  # an empty dataset folder is not data
    monkeypatch.chdir(work)
    assert data.data_root() == checkout / "data"  # nothing anywhere: where downloads would go
    shared = tmp_path / "shared" / "data" / "text"
    shared.mkdir(parents=True)
    (shared / "warpeace_input.txt").write_text("x")
    assert data.data_root() == (tmp_path / "shared" / "data").resolve()
    (work / "data" / "MNIST" / "raw").mkdir()
    (work / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert data.data_root() == (work / "data").resolve()


def test_device_loader_is_seeded_and_covers_every_example():
    x, y = torch.arange(103).float(), torch.arange(103)
    loader = data.DeviceLoader(x, y, 10, shuffle=True, seed=3)
    first = torch.cat([b for b, _ in loader.epoch(0)])
    assert sorted(first.long().tolist()) == list(range(103))
    assert torch.equal(first, torch.cat([b for b, _ in loader.epoch(0)]))  # same (seed, epoch), same order
    assert not torch.equal(first, torch.cat([b for b, _ in loader.epoch(1)]))


def test_cifar_augment_is_a_padded_crop_or_its_mirror():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = data.cifar_augment(x, gen)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(16):
        crops = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2)) for c in crops)
    flips = sum(not any(torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9))
                for i in range(16))
    assert 0 < flips < 16


def test_environment_yml_lists_what_pyproject_installs():
    """The conda file and pyproject.toml ([dev], which includes every other extra) name the same packages."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # (Python 3.11+)

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]

    def name(spec: str) -> str:
        return re.split(r"[<>=!\[ ;#]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")

    pyproject = {name(d) for d in wanted if not d.startswith("hypernb")}
    text = (root / "environment.yml").read_text().split("dependencies:", 1)[1]  # (not the channels)
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    conda = {name(line[2:]) for line in lines if line.startswith("- ") and line[2:] not in ("pip", "pip:", "-e .")
             and not line[2:].startswith("python=")}
    assert conda == pyproject, (sorted(conda - pyproject), sorted(pyproject - conda))
