"""Character corpora with a contiguous train/validation split.

The COMP6258 report split War and Peace by *random character positions*, so its LSTM saw shuffled
characters and could do no better than the unigram entropy (3.12 nats). Here the first 90 % of the
text trains and the last 10 % validates, and every example is a window of consecutive characters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .files import pinned_file

CORPORA = {"warpeace": "text/warpeace_input.txt", "shakespeare": "text/tinyshakespeare/input.txt"}


@dataclass
class CharCorpus:
    """A text, its vocabulary, and the encoded contiguous split."""

    text: str
    vocab: list[str]
    train: torch.Tensor  # int64 codes of the first 90 %
    val: torch.Tensor  # int64 codes of the last 10 %

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, codes) -> str:
        return "".join(self.vocab[int(c)] for c in codes)

    def unigram_entropy(self) -> float:
        """Entropy (nats/char) of the training characters' frequencies: what a model that ignores
        context achieves, and where the report's shuffled-character LSTM plateaued."""
        counts = torch.bincount(self.train, minlength=self.vocab_size).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())


def load_corpus(name: str, root: Path, download_ok: bool = True, val_fraction: float = 0.1) -> CharCorpus:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose from {sorted(CORPORA)}")
    path = pinned_file(CORPORA[name], root, download_ok, f"The corpus '{name}'")
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    codes = torch.tensor([index[c] for c in text], dtype=torch.int64)
    cut = int(len(codes) * (1.0 - val_fraction))
    return CharCorpus(text, vocab, codes[:cut], codes[cut:])


def windows(codes: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` consecutive characters, as a [n, seq_len + 1] view:
    column 0..seq_len-1 is the input and 1..seq_len the target."""
    n = (len(codes) - 1) // seq_len
    if n < 1:
        raise ValueError(f"text of {len(codes)} characters is too short for windows of {seq_len + 1}")
    return codes[: n * seq_len + 1].unfold(0, seq_len + 1, seq_len)


def bits(nats: float) -> float:
    return nats / math.log(2.0)
