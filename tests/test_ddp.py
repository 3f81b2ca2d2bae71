"""DDP: two gloo ranks on half batches learn exactly what one process learns on the full batch."""
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from ddp_train import train  # noqa: E402  (the same code as the torchrun example)

STEPS, BATCH = 12, 64


def _rank(rank, world, rendezvous, out):
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        weights, alphas = train(rank, world, STEPS, BATCH, dtype=torch.float64, log=False)
        torch.save({"weights": weights, "alphas": alphas}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process_on_the_full_batch(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "rank")), nprocs=2, join=True)
    single_weights, single_alphas = train(0, 1, STEPS, BATCH, dtype=torch.float64, log=False)
    ranks = [torch.load(tmp_path / f"rank.{r}") for r in range(2)]
    assert ranks[0]["alphas"] == ranks[1]["alphas"]  # every rank learns the same α, bit for bit
    assert abs(single_alphas[-1] - single_alphas[0]) > 1e-6  # α really moved
    for r in ranks:
        torch.testing.assert_close(torch.tensor(r["alphas"]), torch.tensor(single_alphas), rtol=1e-10, atol=0)
        torch.testing.assert_close(r["weights"], single_weights, rtol=1e-9, atol=1e-12)
