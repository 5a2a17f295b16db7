"""Rank functions for the distributed-training tests (importable by spawned ranks, and runnable
as a script: ``python distributed_worker.py N CHECKPOINT OUT`` trains in one process)."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from dm_hpc.learn.distributed import RankData, World, row_slice, train_ensemble
from dm_hpc.learn.ensemble import EnsembleConfig

CONFIG = EnsembleConfig(members=3, width=32, epochs=8, batch_size=128, seed=5)
#: a global batch of 1,200 rows: each step's rows go through forward/backward in several slices of
#: ``CPU_SLICE_ROWS`` on one rank and on each of two (the early ones outside the DDP wrapper)
SLICED = replace(CONFIG, batch_size=1200, epochs=1)


def synthetic(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    X = torch.rand(n, 3, generator=g, dtype=torch.double)
    Y = (torch.sin(4 * X[:, :1]) + X[:, 1:2] * X[:, 2:3]) + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.double)
    return X, Y


def rank_data(n: int, world: World) -> RankData:
    """Rows 0..0.8n train (sliced by rank), then calibration and test rows (also sliced)."""
    X, Y = synthetic(n)
    a, b = int(0.8 * n), int(0.9 * n)

    def part(lo_all, hi_all):
        lo, hi = row_slice(hi_all - lo_all, world)
        return X[lo_all + lo:lo_all + hi], Y[lo_all + lo:lo_all + hi], lo

    Xt, Yt, off = part(0, a)
    Xc, Yc, _ = part(a, b)
    Xs, Ys, _ = part(b, n)
    return RankData(Xt, Yt, off, a, Xc, Yc, Xs, Ys)


def train_and_save(world: World, n: int, out: str, checkpoint: str | None = None, every: int = 50,
                   config: EnsembleConfig = CONFIG) -> None:
    result = train_ensemble(rank_data(n, world), config, world, Path(checkpoint) if checkpoint else None,
                            checkpoint_every=every, data_id="synthetic")
    if world.rank == 0:
        torch.save({"net": result.model.net.state_dict(), "resumed_from": result.resumed_from,
                    "test": result.test, "world_size": result.world_size}, out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    train_and_save(World(), int(sys.argv[1]), sys.argv[3], sys.argv[2])
