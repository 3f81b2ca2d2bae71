"""Device-resident batches: each split is moved to the training device once, and every batch is
drawn by index from a seeded permutation, so an epoch does no per-batch host work (as airbench)."""
from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The RNG of one epoch, a function of (seed, epoch) only: resuming at epoch e reproduces it."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + epoch)
    return gen


class DeviceLoader:
    """Batches of (x, y) drawn from tensors that already live on the device.

    ``transform(x_batch, generator)`` runs on the device on whole batches (e.g. CIFAR augmentation).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, shuffle: bool,
                 seed: int = 0, transform=None, drop_last: bool = False):
        if len(x) == 0:
            raise ValueError("empty dataset")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.shuffle, self.seed, self.transform, self.drop_last = shuffle, seed, transform, drop_last

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0):
        device = self.x.device
        gen = epoch_generator(self.seed, epoch, device)
        n = len(self.x)
        order = torch.randperm(n, generator=gen, device=device) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min((i + 1) * self.batch_size, n))
            idx = order[sl] if order is not None else None
            xb = self.x[idx] if idx is not None else self.x[sl]
            yb = None if self.y is None else (self.y[idx] if idx is not None else self.y[sl])
            if self.transform is not None:
                xb = self.transform(xb, gen)
            yield xb, yb

    def __iter__(self):
        return self.epoch(0)


def cifar_augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """He et al. (2016): zero-pad by 4, take a random 32×32 crop, flip horizontally with p = 1/2.

    Whole batch at once on the device: two gathers for the crops, one ``where`` for the flips.
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [b, h]
    cols = dx[:, None] + torch.arange(w, device=x.device)  # [b, w]
    picked = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
    cropped = picked.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    flip = torch.rand(b, generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)
