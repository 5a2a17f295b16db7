"""Data-parallel training of the large-data surrogate (issue 12 §4): ranks, checkpoints, resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dm_hpc.learn.distributed import World, spawn_local, world_from_env
from dm_hpc.learn.ensemble import CPU_SLICE_ROWS

from . import distributed_worker as worker

HERE = Path(__file__).parent


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("config", [worker.CONFIG, worker.SLICED], ids=["one-slice", "sliced"])
def test_two_gloo_ranks_train_to_the_same_weights_as_one(tmp_path, config):
    if config is worker.SLICED:  # the case of the large data: several slices a step on each rank
        assert config.batch(1600) // 2 > CPU_SLICE_ROWS
    worker.train_and_save(World(), 2000, str(tmp_path / "one.pt"), None, 50, config)
    spawn_local(worker.train_and_save, 2, 2000, str(tmp_path / "two.pt"), None, 50, config)
    one, two = _weights(tmp_path / "one.pt"), _weights(tmp_path / "two.pt")
    assert two["world_size"] == 2
    for key, value in one["net"].items():
        assert torch.allclose(value, two["net"][key], atol=2e-4, rtol=1e-3), key
    # same global batches, so the same held-out quality
    assert abs(one["test"]["rmse"][0] - two["test"]["rmse"][0]) < 1e-3
    assert one["test"]["n"] == two["test"]["n"] == 200


def test_a_killed_training_resumes_from_its_checkpoint(tmp_path):
    n, ckpt = 16000, tmp_path / "ckpt.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "distributed_worker.py"), str(n), str(ckpt),
                             str(tmp_path / "killed.pt")], env=env)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "killed.pt").exists(), "killed before the first checkpoint"
    saved_step = torch.load(ckpt, weights_only=True)["step"]
    worker.train_and_save(World(), n, str(tmp_path / "resumed.pt"), str(ckpt))
    worker.train_and_save(World(), n, str(tmp_path / "straight.pt"))
    resumed, straight = _weights(tmp_path / "resumed.pt"), _weights(tmp_path / "straight.pt")
    assert resumed["resumed_from"] == saved_step > 0
    assert straight["resumed_from"] == 0
    assert not ckpt.exists()  # a finished training removes its checkpoint
    for key, value in straight["net"].items():
        assert torch.allclose(value, resumed["net"][key], atol=1e-6), key


def test_world_from_slurm_and_torchrun_variables(monkeypatch):
    assert world_from_env({}) is None
    tr = world_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"})
    assert (tr.rank, tr.size, tr.master_addr, tr.master_port, tr.launcher) == (1, 4, "n1", 1234, "torchrun")
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
           "SLURM_JOB_ID": "77", "SLURM_NODELIST": "localhost", "MASTER_ADDR": "localhost"}
    sl = world_from_env(env)
    assert (sl.rank, sl.size, sl.local_rank, sl.master_port, sl.launcher) == (1, 2, 1, 20077, "srun")
    assert sl.backend == ("nccl" if torch.cuda.is_available() else "gloo")
    # an allocation with one task, or a batch script outside a step, is not a distributed world
    assert world_from_env({**env, "SLURM_NTASKS": "1"}) is None


@pytest.mark.slurm
def test_first_host_of_a_slurm_node_list():
    from shutil import which

    if which("scontrol") is None:
        pytest.skip("no Slurm client on this machine")
    from dm_hpc.learn.distributed import first_slurm_host

    assert first_slurm_host("node[03-05]") == "node03"


def test_a_checkpoint_held_by_a_live_training_is_left_to_it(tmp_path):
    """Two trainings of the same data (two jobs started together) shared one checkpoint file: each
    resumed from, overwrote and at its end removed the other's. Now the checkpoint is the training's
    that holds its lock (``checkpoint_lock``): another one, meanwhile, trains without checkpoints
    and leaves the file and its temporary files alone; once the holder is gone (its lock free), the
    next training takes the checkpoint over and clears what it left."""
    import fcntl

    from dm_hpc.learn.distributed import checkpoint_lock

    ckpt, out = tmp_path / "ckpt.pt", str(tmp_path / "out.pt")
    torch.save({"fingerprint": "another training's", "step": 7}, ckpt)
    writing = ckpt.with_name(f".{ckpt.name}.4242.tmp")  # that training's next checkpoint, half written
    writing.write_bytes(b"half a checkpoint")
    before = ckpt.read_bytes()
    fd = os.open(checkpoint_lock(ckpt), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # that training, alive
        worker.train_and_save(World(), 2000, out, str(ckpt), 10)
        assert ckpt.read_bytes() == before and writing.exists()
        assert _weights(Path(out))["resumed_from"] == 0
    finally:
        os.close(fd)
    worker.train_and_save(World(), 2000, out, str(ckpt), 10)  # it is dead now: its files go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pt"]


_WRITER = ("import signal, sys, time\n"
           "from pathlib import Path\n"
           "from dm_hpc.learn.distributed import _save_atomic\n"
           "class Slow:  # pickled slowly: a large model on a slow file system\n"
           "    def __reduce__(self):\n"
           "        Path(sys.argv[2]).touch()\n"
           "        time.sleep(300)\n"
           "        return (int, ())\n"
           "if sys.argv[3] == 'cli':  # under `dm-hpc train`'s own SIGTERM handler\n"
           "    from dm_hpc.cli.models import _said_on_sigterm\n"
           "    held = _said_on_sigterm('t', True)\n"
           "    held.__enter__()\n"
           "_save_atomic({'net': Slow()}, Path(sys.argv[1]))\n")


def _stopped_mid_write(tmp_path, handler: str, how: signal.Signals) -> tuple[int, list[str]]:
    """A checkpoint write (``_save_atomic``) in its own process, sent ``how`` once its temporary file
    is open; its exit status and the names left in its folder."""
    folder = tmp_path / handler
    folder.mkdir()
    started = tmp_path / f"{handler}-started"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder / "ckpt.pt"), str(started), handler],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    assert [p.name for p in folder.iterdir()] == [".ckpt.pt.{}.tmp".format(proc.pid)]
    proc.send_signal(how)
    proc.communicate(timeout=60)
    return proc.returncode, sorted(p.name for p in folder.iterdir())


def test_a_checkpoint_write_stopped_by_sigterm_leaves_no_temporary_file(tmp_path):
    """Slurm's time limit (SIGTERM) during a checkpoint write left `..checkpoint-*.pt.PID.tmp` in the
    registry for ever. Now the writer removes it, then the signal ends the process as it would have
    (`dm-hpc train`'s handler: exit 143; none: killed by the signal). A kill -9 leaves it: the next
    training that takes the checkpoint removes it, as no one writes it then."""
    assert _stopped_mid_write(tmp_path, "cli", signal.SIGTERM) == (128 + signal.SIGTERM, [])
    assert _stopped_mid_write(tmp_path, "default", signal.SIGTERM) == (-signal.SIGTERM, [])
    code, left = _stopped_mid_write(tmp_path, "killed", signal.SIGKILL)
    assert code == -signal.SIGKILL and len(left) == 1, left
    ckpt = tmp_path / "killed" / "ckpt.pt"
    worker.train_and_save(World(), 2000, str(tmp_path / "out.pt"), str(ckpt), 10)
    assert list(ckpt.parent.iterdir()) == []


def test_a_checkpoint_write_that_fails_leaves_no_temporary_file(tmp_path):
    """A checkpoint write that failed other than by an OSError (an object that cannot be saved, an
    interrupt) left its temporary file. Now any failure removes it, and is raised as it was."""
    from dm_hpc.learn.distributed import _save_atomic

    class Unsaveable:
        def __reduce__(self):
            raise TypeError("cannot be saved")

    with pytest.raises(TypeError, match="cannot be saved"):
        _save_atomic({"net": Unsaveable()}, tmp_path / "ckpt.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_sigterm_handler_that_lets_the_process_go_on_gives_up_that_write_alone(tmp_path):
    """SIGTERM during a checkpoint write removes the temporary file before the process's own
    handler runs (it may end the process, which runs no ``finally``). A handler that returns (a
    notebook's, a scheduler's that only sets a flag) let the write go on without its file, and
    the rename then failed: training died of "No such file or directory" naming the checkpoint.
    Now that write is given up, the checkpoint before it stays, and the next write is whole."""
    from dm_hpc.learn.distributed import _save_atomic

    path = tmp_path / "ckpt.pt"
    _save_atomic({"step": 1}, path)
    seen = []

    class SignalledWhileSaved:  # SIGTERM arrives while torch.save pickles the checkpoint
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            return (int, (7,))

    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        _save_atomic({"step": 2, "x": SignalledWhileSaved()}, path)
        assert seen == [signal.SIGTERM] and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
        assert torch.load(path)["step"] == 1  # the one before it
        _save_atomic({"step": 3}, path)
        assert torch.load(path)["step"] == 3 and signal.getsignal(signal.SIGTERM) is not None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_checkpoint_in_a_folder_it_cannot_write_is_trained_without(tmp_path):
    """Rank 0 taking the checkpoint's lock in a folder it may not write (a `--no-register` trial on
    a read-only mount) raised there, while the other ranks waited in its broadcast."""
    from dm_hpc.learn.distributed import _own_checkpoint

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert _own_checkpoint(blocked / "ckpt.pt") is None  # ENOTDIR, as EROFS or EACCES would be


def test_a_rank_that_never_answers_ends_the_exchange_in_a_clear_error(monkeypatch):
    """A rank that did not come to ``all_gather_text`` (dead before it) left the others in torch's
    'wait timeout after 600000ms, keys: /dm-hpc/0/snapshot-0/1' (a DistStoreError) after the
    rendezvous timeout, and rank 0, waiting for every rank to have read, gave up in silence and
    went on. Now the exchange waits on the store (``wait``) and ends in a TimeoutError that names
    the exchange and the ranks that did not answer."""
    import socket
    from datetime import timedelta

    from dm_hpc.learn import distributed

    monkeypatch.setattr(distributed, "RENDEZVOUS_TIMEOUT", timedelta(seconds=2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = World(0, 3, 0, "127.0.0.1", port, "torchrun")  # ranks 1 and 2 never come
    with pytest.raises(TimeoutError, match=r"ranks 1, 2 of 3 did not answer .*snapshot-0.* 2 s"):
        distributed.all_gather_text(world, "snapshot-0", "what rank 0 read")
