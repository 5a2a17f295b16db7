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
