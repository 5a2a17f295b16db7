"""Data-parallel training of the large-data surrogate on ``torch.distributed``.

Each rank holds one contiguous slice of the global training set (it reads and featurises only
that slice), and ``DistributedDataParallel`` averages the gradients (gloo on CPU, NCCL on
CUDA). The global minibatch of a step is a pure function of ``(seed, step)``
(``ensemble.global_batch``): every rank trains on the rows of it that it holds, with the loss
scaled so that the averaged gradient equals the gradient of the whole global batch. So N ranks
take the same optimiser steps as one process on the same data, up to float rounding.

Ranks come from the launcher:

- ``srun`` inside a Slurm allocation: ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``;
  the rendezvous host is the first of ``scontrol show hostnames $SLURM_NODELIST``, the port
  ``MASTER_PORT`` or one derived from the job id (so concurrent jobs do not collide);
- ``torchrun``: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``;
- a local spawn (``spawn_local``) for ``dm-hpc train --ranks N`` outside Slurm.

Checkpoints (rank 0, every ``checkpoint_every`` steps, written to a temporary file and renamed:
a kill never leaves half a checkpoint) hold the weights, the optimiser and the scheduler; a
training started again with the same data and settings resumes from the last one and ends with
the same weights as an uninterrupted run. A checkpoint is the training's whose rank 0 holds its
lock (``checkpoint_lock``): two jobs training on the same data at once do not resume from,
overwrite or remove each other's, and what a dead training left is removed only once its lock is
free (``remove_dead_checkpoints``).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor

from dm_hpc.learn.ensemble import (
    EnsembleConfig,
    GaussianMembers,
    Standardiser,
    calibrated_ensemble_class,
    calibration_scale,
    moments,
    train_members,
)


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    launcher: str = "single"

    @property
    def device(self) -> torch.device:
        """CUDA (one GPU per local rank) when present, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    @property
    def grouped(self) -> bool:
        """Whether this process joins a process group (any launched rank, even a world of one)."""
        return self.size > 1 or self.launcher != "single"

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``node[01-04]`` -> ``node01``), via ``scontrol``;
    ``RuntimeError`` saying what failed and what to set instead (every rank of a job meets it)."""
    fix = "set MASTER_ADDR to the first node's host name in the job script"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:  # no scontrol on the node, slurmctld away
        said = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else exc
        raise RuntimeError(f"cannot find the rendezvous host: scontrol show hostnames {nodelist!r}: {said}; "
                           f"{fix}") from None
    if not out:
        raise RuntimeError(f"scontrol show hostnames {nodelist!r} printed no host; {fix}")
    return out[0]


def world_from_env(env: Mapping[str, str] | None = None) -> World | None:
    """The world of a process started by ``srun`` or ``torchrun`` (None: not started by one)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:  # torchrun (also any launcher using its variables)
        return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                     env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", 29500)), "torchrun")
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env["SLURM_NODELIST"]
        port = int(env.get("MASTER_PORT", 0)) or 20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000
        return World(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)),
                     env.get("MASTER_ADDR") or first_slurm_host(nodelist), port, "srun")
    return None


#: Fewest training rows a rank should hold. Below it a rank's share of a global minibatch is a
#: handful of rows (or none), each step costs more in exchange than in compute, and with the
#: calibration and test rows shared out as well some ranks hold none of those.
MIN_ROWS_PER_RANK = 16


def ranks_for(n_rows: int, requested: int) -> int:
    """Ranks (1 to ``requested``) that ``n_rows`` training rows can keep busy: ``MIN_ROWS_PER_RANK`` each."""
    return max(1, min(requested, n_rows // MIN_ROWS_PER_RANK))


def row_slice(n: int, world: World) -> tuple[int, int]:
    """Contiguous ``[lo, hi)`` share of ``n`` rows for ``world.rank`` (sizes differ by at most one)."""
    return n * world.rank // world.size, n * (world.rank + 1) // world.size


@dataclass
class RankData:
    """What one rank holds: its slice of the training rows (``offset`` into ``n_total``), and its
    share of the calibration and test rows. Shapes ``k x d`` (inputs) and ``k x m`` (outcomes)."""

    X: Tensor
    Y: Tensor
    offset: int
    n_total: int
    X_cal: Tensor
    Y_cal: Tensor
    X_test: Tensor
    Y_test: Tensor


@dataclass
class TrainResult:
    """A trained ensemble (a BoTorch ``Model``) and how its training went."""

    model: Any
    steps: int
    resumed_from: int
    world_size: int
    device: str
    test: dict[str, Any]
    train_seconds: float = 0.0
    samples: int = 0


def _all_sum(t: Tensor, world: World) -> Tensor:
    if world.size > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
    return t


def _all_cat(t: Tensor, world: World) -> Tensor:
    """Rows of ``t`` from every rank, in rank order (any row count per rank)."""
    if world.size == 1:
        return t
    import torch.distributed as dist

    parts: list = [None] * world.size
    dist.all_gather_object(parts, t.cpu())
    return torch.cat(parts)


#: Gradient buckets up to this size (bytes, all ranks together) are exchanged by an all-gather.
GATHER_MAX_BYTES = 64 * 2**20


def _shares_cores() -> bool:
    """Whether this rank's compute threads fill all its cores, so gloo's I/O thread must share one.

    Only then does waiting by yielding pay (see ``gather_mean_hook``); a rank with a spare core
    waits in ``Work.wait`` rather than spinning a core per rank through every exchange.
    """
    return len(os.sched_getaffinity(0)) <= torch.get_num_threads()


def gather_mean_hook(shares_cores, bucket):  # unannotated: DDP checks annotations against dist.GradBucket
    """DDP communication hook: the mean gradient by an all-gather and a local sum (gloo, small models).

    Two measurements on the 2-core machine (issue 12, 2 ranks, the ensemble's ~100 KB of
    gradients): gloo's all-reduce took 1.1-1.4 ms against 0.36 ms for an all-gather of the same
    tensor (the exchange is latency-bound and the all-gather is one round); and a rank whose
    compute threads fill its cores, if it sleeps while it waits, loses its core to the idle loop
    and wakes late (0.9-1.8 ms per exchange) where one that yields to gloo's I/O thread waits
    0.6-1.0 ms. So the hook gathers, waits by yielding when this rank has no spare core
    (its state, ``_shares_cores()`` taken once when it is registered; else in ``Work.wait``),
    and returns a completed future. Every rank sums
    the gathered rows in rank order, so all ranks get bit-identical gradients, as with the
    all-reduce. Buckets larger than
    ``GATHER_MAX_BYTES`` (over all ranks) go to DDP's own all-reduce.
    """
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    grad = bucket.buffer()
    world = dist.get_world_size()
    if world * grad.numel() * grad.element_size() > GATHER_MAX_BYTES:
        return allreduce_hook(None, bucket)
    rows = torch.empty(world * grad.numel(), dtype=grad.dtype, device=grad.device)  # gloo: flat output
    work = dist.all_gather_single(rows, grad, async_op=True)
    if shares_cores:
        while not work.is_completed():
            os.sched_yield()
    work.wait()  # raises what the exchange raised
    done: torch.futures.Future = torch.futures.Future()
    done.set_result(rows.view(world, -1).sum(0).div_(world))
    return done


def fingerprint(config: EnsembleConfig, data_id: str, n_total: int) -> str:
    """Identity of a training run: a checkpoint resumes only the same data and settings."""
    text = json.dumps({"config": asdict(config), "data": data_id, "n": n_total}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_atomic(obj: dict, path: Path) -> None:
    """Write ``obj`` to ``path`` by a temporary file and a rename. A failed write (a full disk, a
    spent quota) raises the ``OSError`` with ``path`` named: the file object's error carries no
    name. The temporary file goes with any failure, and with SIGTERM (a time limit lands mid-write
    as readily as anywhere); one a kill -9 left is removed by the next owner of ``path``."""
    tmp = _temporary(path, str(os.getpid()))
    try:
        with _removed_on_sigterm(tmp) as removed:
            with open(tmp, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.replace(tmp, path)
            except FileNotFoundError:
                if not removed:
                    raise
                # SIGTERM took the file and the process's handler let it go on: this write is given
                # up (the file at ``path`` is the one before it), the next one is made whole
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


@contextmanager
def _removed_on_sigterm(path: Path) -> Iterator[list[int]]:
    """While it runs, SIGTERM removes ``path`` before the process's own handling of it (``dm-hpc
    train``'s line and exit, or death by the signal) ends the process, which runs no ``finally``.
    Yields a list that holds the signal once it removed ``path`` (a handler that returns lets the
    process go on without the file)."""
    before = signal.getsignal(signal.SIGTERM)
    removed: list[int] = []
    # only the main thread may set a handler; an ignored signal, or a handler not set from Python
    # (None), ends nothing
    if threading.current_thread() is not threading.main_thread() or before in (signal.SIG_IGN, None):
        yield removed
        return

    def remove(signum, frame) -> None:
        path.unlink(missing_ok=True)
        removed.append(signum)
        signal.signal(signal.SIGTERM, before)
        if callable(before):
            before(signum, frame)
        else:  # SIG_DFL: die by the signal, as without this handler
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, remove)
    try:
        yield removed
    finally:
        signal.signal(signal.SIGTERM, before)


def checkpoint_lock(checkpoint: Path) -> Path:
    """The file whose ``flock`` the training that owns ``checkpoint`` holds while it trains (its rank
    0): the checkpoint and its temporary files are that training's alone (``_own_checkpoint``)."""
    return checkpoint.with_name(f"{checkpoint.name}.lock")


def _temporary(path: Path, writer: str) -> Path:
    """The file through which the process ``writer`` (its pid; "*": any) writes ``path`` (``_save_atomic``)."""
    return path.with_name(f".{path.name}.{writer}.tmp")


def _lock_free(path: Path) -> int | None:
    """A descriptor holding the ``flock`` of the file ``path`` (made when missing), or None when
    another process holds it. The lock is on the file at ``path`` now: a holder removes it before
    it lets go (``_release_checkpoint``), and one locked after that is removed is locked again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _own_checkpoint(checkpoint: Path) -> int | None:
    """Take ``checkpoint`` for this training: the descriptor holding its lock, or None while another
    live training holds it (two jobs on the same data: this one then trains without checkpoints), or
    the folder cannot be written (a read-only mount: a `--no-register` trial trains without them;
    rank 0 failing here would leave the other ranks waiting in its broadcast). Temporary files found
    beside it are a dead writer's (no one else may write it) and go."""
    try:
        fd = _lock_free(checkpoint_lock(checkpoint))
    except OSError:
        return None
    if fd is not None:
        for tmp in checkpoint.parent.glob(_temporary(checkpoint, "*").name):
            tmp.unlink(missing_ok=True)
    return fd


def _release_checkpoint(checkpoint: Path, fd: int, done: bool) -> None:
    """Let go of ``checkpoint`` (``fd`` holds its lock): ``done``, it goes with its temporary files.
    The lock file goes when no checkpoint is left to guard, before the lock is let go."""
    if done:
        for f in [checkpoint, *checkpoint.parent.glob(_temporary(checkpoint, "*").name)]:
            f.unlink(missing_ok=True)
    try:
        if not checkpoint.exists():
            checkpoint_lock(checkpoint).unlink(missing_ok=True)
    finally:
        os.close(fd)


def remove_dead_checkpoints(folder: Path, pattern: str) -> None:
    """Remove the checkpoints in ``folder`` named by the glob ``pattern`` whose training is dead (their
    lock free), with their temporary files and lock files; a live training's stay."""
    names = {p.name for p in folder.glob(pattern)}
    names |= {p.name[:-len(".lock")] for p in folder.glob(f"{pattern}.lock")}
    # a training killed in its first write left only a temporary file: ``_temporary``'s name, read back
    names |= {p.name[1:].rsplit(".", 2)[0] for p in folder.glob(_temporary(folder / pattern, "*").name)}
    for name in sorted(names):
        fd = _lock_free(checkpoint_lock(folder / name))
        if fd is not None:
            _release_checkpoint(folder / name, fd, done=True)


#: How long a rank waits for the others to meet (rendezvous, ``all_gather_text``, collectives).
RENDEZVOUS_TIMEOUT = timedelta(minutes=10)
# The job's key-value store, by (address, port): one connection per process, kept until it exits,
# so that what the ranks exchange before training (``all_gather_text``) and the process group meet
# on one server (rank 0's, or the parent's of ``spawn_local``, or torchrun's agent's)
_job_stores: dict[tuple[str, int], Any] = {}
_groups_joined = 0


def job_store(world: World):
    """The rendezvous key-value store (``torch.distributed.TCPStore``) of ``world``'s job.

    ``spawn_local``'s parent hosts it; under srun rank 0 does; under torchrun its agent does when it
    says so (``TORCHELASTIC_USE_AGENT_STORE``), else rank 0. A client waits up to
    ``RENDEZVOUS_TIMEOUT`` for the server.
    """
    import torch.distributed as dist

    key = (world.master_addr, world.master_port)
    if key not in _job_stores:
        hosts = (world.launcher != "spawn" and world.rank == 0
                 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True")
        _job_stores[key] = dist.TCPStore(world.master_addr, world.master_port, world.size, is_master=hosts,
                                         timeout=RENDEZVOUS_TIMEOUT, wait_for_workers=False)
    return _job_stores[key]


def all_gather_text(world: World, name: str, text: str) -> list[str]:
    """Every rank's ``text`` in rank order (all ranks of ``world`` call it with the same ``name``,
    once per ``name``), exchanged through ``job_store``: no process group, so ranks that then go
    separate ways (some train, some leave) can first agree on what they read.
    Rank 0 (the store's host under srun) returns only once every rank has its answer: it may leave
    right after. Raises TimeoutError when ranks do not answer, or read, within ``RENDEZVOUS_TIMEOUT``."""
    store = job_store(world)
    prefix = f"dm-hpc/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{name}/"
    store.set(f"{prefix}{world.rank}", text)
    _wait(store, world, name, "answer", [f"{prefix}{r}" for r in range(world.size)])
    out = [store.get(f"{prefix}{r}").decode() for r in range(world.size)]
    store.set(f"{prefix}read/{world.rank}", "")
    if world.rank == 0:
        _wait(store, world, name, "read the answers", [f"{prefix}read/{r}" for r in range(world.size)])
    return out


def _wait(store, world: World, name: str, what: str, keys: list[str]) -> None:
    """Wait for ``keys`` (one a rank, the rank last in each) to be in ``store``; a TimeoutError that
    names the ranks whose key is not there after ``RENDEZVOUS_TIMEOUT``."""
    import torch.distributed as dist

    try:
        store.wait(keys, RENDEZVOUS_TIMEOUT)
    except dist.DistStoreError:
        missing = [k.rsplit("/", 1)[1] for k in keys if not store.check([k])]
        ranks = f"rank{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        raise TimeoutError(f"{ranks} of {world.size} did not {what} in the exchange {name!r} within "
                           f"{RENDEZVOUS_TIMEOUT.total_seconds():.0f} s (stopped? their log says why)") from None


def join_group(world: World) -> None:
    """Create this rank's process group for ``world`` (nothing for a world of one), on ``job_store``.
    CUDA ranks select their device first."""
    import torch.distributed as dist

    global _groups_joined
    if not world.grouped:
        return
    if world.device.type == "cuda":
        torch.cuda.set_device(world.device)
    _groups_joined += 1  # every rank joins as many groups: the same prefix on each, none reused
    store = dist.PrefixStore(f"dm-hpc-group-{_groups_joined}", job_store(world))
    dist.init_process_group(world.backend, store=store, rank=world.rank, world_size=world.size,
                            timeout=RENDEZVOUS_TIMEOUT)


def data_parallel(net: torch.nn.Module, world: World) -> torch.nn.Module:
    """``net`` wrapped for ``world``: DDP (with ``gather_mean_hook`` on gloo) for two or more ranks.

    A world of one has nothing to exchange and gets ``net`` itself: DDP would only add its work
    per slice (a 2,250-row step at 100,000 records: 9.3 ms with it, 8.0 ms without,
    docs/measurements/distrib.md).
    """
    from torch.nn.parallel import DistributedDataParallel

    if world.size == 1:
        return net
    dev = world.device
    wrapped = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    if world.backend == "gloo":
        wrapped.register_comm_hook(_shares_cores(), gather_mean_hook)
    return wrapped


def train_ensemble(
    data: RankData,
    config: EnsembleConfig,
    world: World | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 200,
    data_id: str = "",
    fixed_columns: Tensor | None = None,
) -> TrainResult:
    """Train, calibrate and test the ensemble with this process as one rank of ``world``.

    Every rank calls this with its own ``data``; all return the same model. The process group
    is created here and destroyed before returning (the caller's ranks may then exit).

    Args:
        checkpoint: file for checkpoints (rank 0 writes; every rank resumes from it when its
            fingerprint, ``config`` + ``data_id`` + ``n_total``, matches); removed on success.
            While another live training holds it (``checkpoint_lock``) this one trains without.
        data_id: identity of the data (e.g. the hash of the record ids).
    """
    import torch.distributed as dist

    world = world or World()
    dev = world.device
    join_group(world)
    owner = None  # rank 0's hold on ``checkpoint`` (``_own_checkpoint``)
    try:
        if checkpoint is not None and world.rank == 0:
            owner = _own_checkpoint(checkpoint)
        # every rank resumes from it, or none: only rank 0 can tell whether it is this training's
        said = [owner is not None]
        if world.size > 1:
            dist.broadcast_object_list(said, src=0)
        owned = said[0]
        d, m = data.X.shape[-1], data.Y.shape[-1]
        moments_sum = torch.cat([data.X.sum(0), (data.X**2).sum(0), data.Y.sum(0), (data.Y**2).sum(0)]).double()
        moments_sum = _all_sum(moments_sum.to(dev), world).cpu()
        std = Standardiser.from_moments(data.n_total, *moments_sum.split([d, d, m, m]))
        xs = std.inputs(data.X).float().to(dev)
        ys = ((data.Y - std.y_mean) / std.y_std).float().to(dev)
        net = GaussianMembers(d, m, config.members, config.width, config.seed).to(dev)
        tag = fingerprint(config, data_id, data.n_total)
        start, opt_state = 0, None
        if owned and checkpoint.exists():
            saved = torch.load(checkpoint, map_location=dev, weights_only=True)
            if saved.get("fingerprint") == tag:
                net.load_state_dict(saved["net"])
                start, opt_state = int(saved["step"]), {k: saved[k] for k in ("optimizer", "scheduler")}
        wrapped = data_parallel(net, world)

        def save(step: int, _net, opt, sched) -> None:
            if owner is not None and (step % checkpoint_every == 0):
                _save_atomic({"fingerprint": tag, "step": step, "net": net.state_dict(),
                              "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, checkpoint)

        if world.grouped:
            dist.barrier()  # the clock starts together on every rank
        t0 = time.perf_counter()
        train_members(wrapped, xs, ys, config, n_total=data.n_total, offset=data.offset, world=world.size,
                      start_step=start, optimizer_state=opt_state, on_step=save)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        train_s = time.perf_counter() - t0
        net.eval().requires_grad_(False)
        cpu_net = net.cpu()
        with torch.no_grad():
            mu, epi, ale = moments(cpu_net, std, data.X_cal.double())
        cal = _all_cat(torch.cat([data.Y_cal.double(), mu, epi + ale], dim=-1), world)
        scale = calibration_scale(*cal.split([m, m, m], dim=-1))
        cls = calibrated_ensemble_class()
        train_inputs = data.X.double()  # this rank's slice: used only as a baseline by acquisitions
        model = cls(cpu_net, std, scale, train_inputs, config, fixed_columns)
        from dm_hpc.learn.quality import Z90

        with torch.no_grad():
            mu_t, _, var_t = model.variances(data.X_test.double())
        test = _all_cat(torch.cat([data.Y_test.double(), mu_t, var_t], dim=-1), world)
        y, mu_t, var_t = test.split([m, m, m], dim=-1)
        metrics = {"n": len(y)}
        if len(y):
            metrics["rmse"] = [round(v, 6) for v in ((mu_t - y) ** 2).mean(0).sqrt().tolist()]
            metrics["coverage90"] = round(((y - mu_t).abs() <= Z90 * var_t.sqrt()).double().mean().item(), 4)
        steps = config.steps(data.n_total)
        if world.grouped:
            dist.barrier()
        if owner is not None:
            _release_checkpoint(checkpoint, owner, done=True)
            owner = None
        samples = (steps - start) * config.members * config.batch(data.n_total)  # global rows seen
        return TrainResult(model, steps, start, world.size, str(dev), metrics, train_s, samples)
    finally:
        if owner is not None:  # a failure: the checkpoint stays for the next training to resume from
            _release_checkpoint(checkpoint, owner, done=False)
        if world.grouped and dist.is_initialized():
            dist.destroy_process_group()


def exit_rank(code: int = 0) -> NoReturn:
    """End a rank's process now, without interpreter finalisation (call it when all is written).

    ``destroy_process_group`` does not end gloo's threads once a ``DistributedDataParallel``
    has used the group: after training, a rank still runs ``gloo_tcp_loop`` and two
    ``pt_gloo_runloop`` threads (torch 2.13; without DDP they end). Python's finalisation with
    those threads alive aborted a rank, rarely ("terminate called without an active exception",
    SIGABRT: the CI run of 2026-11-29 under ``srun``, after rank 0 had registered the model;
    twice in benchmark runs). A rank therefore flushes its output and leaves by ``os._exit``;
    the HDF5 store and the registry files are closed and renamed into place before this.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def spawn_local(fn: Callable[..., Any], ranks: int, *args: Any) -> None:
    """Run ``fn(world, *args)`` in ``ranks`` fresh local processes (gloo or NCCL) and wait.

    ``fn`` must be importable by name (a module-level function): the children are spawned, not
    forked, so that no torch thread pool is copied mid-use.
    """
    import torch.distributed as dist
    import torch.multiprocessing as mp

    # The parent hosts the rendezvous store on a port the system picks and keeps it bound until
    # the ranks are done: no free port is looked up, released and taken again by the first rank,
    # which another process could take in between.
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    mp.start_processes(_spawned, args=(fn, ranks, store.port, args), nprocs=ranks, start_method="spawn", join=True)


def _spawned(rank: int, fn, ranks: int, port: int, args: tuple) -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    cpus = sorted(os.sched_getaffinity(0))
    if ranks * threads <= len(cpus):  # one core (set) per rank, as srun --cpu-bind does on a cluster
        os.sched_setaffinity(0, cpus[rank * threads:(rank + 1) * threads])
    fn(World(rank, ranks, rank, "127.0.0.1", port, "spawn"), *args)
    exit_rank(0)  # an exception above reaches ``torch.multiprocessing``'s error queue instead
