"""Data-parallel training with a hyperoptimizer: ordinary DistributedDataParallel, nothing special.

    torchrun --standalone --nproc_per_node=4 examples/ddp_train.py                 # GPUs (nccl)
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --backend gloo  # CPU

Why it works: hypernb computes every hypergradient from ``p.grad``, which DDP has already averaged
over the ranks, and the hyperoptimizer's step is deterministic, so every rank learns exactly the
same α (and κ, β, …) without any extra communication. Each rank sees a different slice of every
batch; together they see the whole batch, as a single process would.
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from hypernb import optim
from hypernb.models import MLP


def train(rank: int, world: int, steps: int, batch: int, dtype=torch.float32, device="cpu", log=True):
    """Train the paper's MNIST-shaped MLP with Adam/SGD for ``steps`` steps on synthetic images whose
    labels a fixed random linear teacher gives (learnable, and no data needed); returns (weights, α
    trajectory). On random labels there would be nothing to learn, and α would rightly fall below 0."""
    torch.manual_seed(0)
    model = MLP().to(device=device, dtype=dtype)
    if world > 1:
        model = DDP(model, device_ids=[device] if str(device).startswith("cuda") else None)
    opt = optim.Adam(model.parameters(), alpha=1e-3, hyper=optim.SGD(alpha=1e-5))  # built after DDP wraps the model
    gen = torch.Generator().manual_seed(1)  # every rank draws the same global batches…
    teacher = torch.randn(784, 10, generator=gen, dtype=dtype)
    alphas = []
    for step in range(steps):
        x = torch.rand(batch, 1, 28, 28, generator=gen, dtype=dtype)
        y = ((x.reshape(batch, -1) - 0.5) @ teacher).argmax(dim=1)
        shard = slice(rank * batch // world, (rank + 1) * batch // world)  # …and trains on its slice
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[shard].to(device)), y[shard].to(device)).backward()
        opt.step()
        alphas.append(opt.hyperparameters()["alpha"].item())
        if log and rank == 0 and step % 10 == 0:
            print(f"step {step}: α = {alphas[-1]:.6f}")
    module = model.module if world > 1 else model
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).cpu(), alphas


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="nccl" if torch.cuda.is_available() else "gloo")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=256, help="global batch size (split over the ranks)")
    args = p.parse_args()
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if args.backend == "nccl" else "cpu"
    if args.backend == "nccl":
        torch.cuda.set_device(device)
    weights, alphas = train(rank, world, args.steps, args.batch, device=device)
    gathered = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(gathered, torch.tensor([alphas[-1]]))
    if rank == 0:
        print(f"final α on every rank: {[round(float(a), 8) for a in gathered]}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
