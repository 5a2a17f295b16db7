"""What a synchronous data-parallel step can gain on this machine: the ceiling under train_bench.

Usage: OMP_NUM_THREADS=1 python benchmarks/sync_ceiling.py [--records 100000] [--repeat 3] [--batch 0]

``train_bench.py`` measures the whole training; this script runs its optimiser steps (the
ensemble, global batches, slices of ``CPU_SLICE_ROWS`` rows, AdamW; 90 % of ``--records`` rows,
train_bench's 8-element compositions, the default step count) in five ways, interleaved in one run:

- ``1 rank``: one process, the whole global batch (the speed-up's denominator);
- ``2 ranks, no exchange``: each rank its half and nothing shared; the ranks never wait for
  each other, so this is the most two cores can give to any data-parallel training;
- ``2 ranks, 4-byte all-reduce``: the same, in lockstep: one all-reduce of one float per step,
  so a step ends when the slower rank's ends (the price of synchrony alone);
- ``2 ranks, gradient all-gather``: the gradients exchanged as ``gather_mean_hook`` does
  (the price of synchrony plus the bytes);
- ``2 ranks, DDP (train_members)``: the engine's own loop, wrapped as ``train_ensemble`` wraps
  it (``data_parallel``; its per-rank compute is not split out).

Printed per way: ms per step (fastest of ``--repeat`` interleaved runs), speed-up over one rank,
and each rank's compute time per step (forward and backward), with the mean over steps of the
slower rank's, which a lockstep step has to wait for.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_bench import synthetic  # noqa: E402

from dm_hpc.learn.distributed import World, data_parallel, join_group, row_slice, spawn_local  # noqa: E402
from dm_hpc.learn.ensemble import (CPU_SLICE_ROWS, EnsembleConfig, GaussianMembers, adamw, global_batch,
                                   local_batch, nll_step_loss, train_members)  # noqa: E402

WAYS = {"alone": (1, "1 rank"), "none": (2, "2 ranks, no exchange"), "sync": (2, "2 ranks, 4-byte all-reduce"),
        "gather": (2, "2 ranks, gradient all-gather"), "ddp": (2, "2 ranks, DDP (train_members)")}


def rank(world: World, way: str, n_total: int, config: EnsembleConfig, out: str) -> None:
    join_group(world)
    batch, members, steps = config.batch(n_total), config.members, config.steps(n_total)
    lo, hi = row_slice(n_total, world)
    X, Y = synthetic(n_total, seed=0)  # train_bench's records, standardised as train_ensemble does
    X, Y = ((X - X.mean(0)) / X.std(0)).float(), ((Y - Y.mean(0)) / Y.std(0)).float()
    xs, ys = X[lo:hi].contiguous(), Y[lo:hi].contiguous()
    net = GaussianMembers(xs.shape[1], 1, members)
    params = list(net.parameters())
    opt = adamw(params, config)
    scale = world.size / (members * batch)
    one = torch.zeros(1)
    compute = torch.empty(steps, dtype=torch.float64)
    if world.grouped:
        dist.barrier()
    start = time.perf_counter()
    if way == "ddp":
        train_members(data_parallel(net, world), xs, ys, config, n_total, lo, world.size)
        compute.fill_(float("nan"))
    for step in range(0 if way == "ddp" else steps):
        rows, weight = local_batch(global_batch(step, config.seed, members, batch, n_total), lo, hi - lo)
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter()
        for r, w in zip(rows.split(CPU_SLICE_ROWS, 1), weight.split(CPU_SLICE_ROWS, 1)):
            nll_step_loss(net, xs, ys, r, w, scale).backward()
        compute[step] = time.perf_counter() - t
        if way == "sync":
            dist.all_reduce(one)
        elif way == "gather":
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            gathered = torch.empty(world.size * flat.numel())
            dist.all_gather_single(gathered, flat)
            torch.nn.utils.vector_to_parameters(gathered.view(world.size, -1).sum(0).div_(world.size),
                                                [p.grad for p in params])
        opt.step()
    if world.grouped:
        dist.barrier()
    seconds = time.perf_counter() - start
    if world.grouped:
        every = [torch.empty_like(compute) for _ in range(world.size)]
        dist.all_gather(every, compute)
        dist.destroy_process_group()
    else:
        every = [compute]
    if world.rank == 0:
        torch.save({"seconds": seconds, "compute": torch.stack(every)}, out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="global minibatch per member (0: the default)")
    a = ap.parse_args()
    n_total = int(0.9 * a.records)
    config = EnsembleConfig(batch_size=a.batch) if a.batch else EnsembleConfig()
    steps = config.steps(n_total)
    print(f"# {n_total:,} training rows, global batch {config.batch(n_total)}, {steps} steps; "
          f"torch {torch.__version__}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}")
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeat):  # ways interleaved: the shared machine's speed drifts over minutes
            for way, (ranks, _label) in WAYS.items():
                out = str(Path(tmp) / f"{way}.pt")
                spawn_local(rank, ranks, way, n_total, config, out)
                got = torch.load(out)
                if way not in best or got["seconds"] < best[way]["seconds"]:
                    best[way] = got
    base = best["alone"]["seconds"]
    print("| way | ms / step | speed-up | compute per rank (ms / step) | slower rank's compute (ms / step) |")
    print("|---|---|---|---|---|")
    for way, (_ranks, label) in WAYS.items():
        b = best[way]
        per_rank = " / ".join(f"{1000 * c.mean():.2f}" for c in b["compute"])
        slower = f"{1000 * b['compute'].max(0).values.mean():.2f}"
        if way == "ddp":
            per_rank = slower = "-"
        print(f"| {label} | {1000 * b['seconds'] / steps:.2f} | {base / b['seconds']:.2f}x | {per_rank} "
              f"| {slower} |", flush=True)


if __name__ == "__main__":
    main()
