"""The preloaded worker launcher (issue 9 §7): forked from one server that imported the worker
once, yet behaving like the subprocess it replaces. Real EMT calculations."""
from __future__ import annotations

import os
import time

from dm_hpc.compute import read_result, worker_argv, write_task
from dm_hpc.runners import LocalRunner, RetryPolicy, TaskSpec
from dm_hpc.runners.preloaded import PreloadedLauncher
from dm_hpc.runners.states import JobState


def _spec(tmp_path, name, comp, walltime=120, argv=None):
    workdir = tmp_path / name
    path = write_task(workdir, comp, method="emt", properties=["mixing_energy"], task_id=name)
    return TaskSpec(task_id=name, name=name, argv=argv or worker_argv(path), workdir=workdir, cores=1,
                    walltime_s=walltime, env={"OMP_NUM_THREADS": "1", "DM_HPC_PRELOAD_TEST": name})


def _run_all(runner, specs, timeout=180):
    runner.submit(specs)
    got, t0 = {}, time.time()
    while len(got) < len(specs) and time.time() - t0 < timeout:
        for o in runner.poll():
            got[o.task_id] = o
        time.sleep(0.05)
    return got


def test_worker_tasks_run_forked_from_the_preloaded_server(tmp_path):
    launcher = PreloadedLauncher()
    runner = LocalRunner(cores=2, retry=RetryPolicy(max_failed=0), launcher=launcher)
    specs = [_spec(tmp_path, f"t{k}", comp) for k, comp in enumerate(({"Cu": 0.5, "Ni": 0.5}, {"Cu": 1.0},
                                                                      {"Ni": 0.75, "Pd": 0.25}))]
    assert all(launcher.runs_in_server(s) for s in specs)
    t0 = time.time()
    got = _run_all(runner, specs)
    elapsed = time.time() - t0
    assert {o.state for o in got.values()} == {JobState.COMPLETED}
    for s in specs:
        result = read_result(s.workdir)
        assert result.ok and result.property_dict()["mixing_energy"] < 1.0
    print(f"3 EMT tasks on 2 slots through the preloaded server: {elapsed:.2f} s")


def test_a_preloaded_task_obeys_walltime_session_and_folder(tmp_path):
    runner = LocalRunner(cores=1, retry=RetryPolicy(max_failed=0, max_timeout=0), launcher=PreloadedLauncher())
    spec = _spec(tmp_path, "slow", {"Cu": 0.5, "Ni": 0.5}, walltime=1)
    # a worker that cannot finish in 1 s: a 256-atom cell
    path = write_task(spec.workdir, {"Cu": 0.5, "Ni": 0.5}, method="emt", settings={"n_atoms": 256},
                      properties=["mixing_energy", "bulk_modulus"], task_id="slow")
    spec = spec.model_copy(update={"argv": worker_argv(path)})
    runner.submit([spec])
    time.sleep(0.5)
    handle = next(iter(runner._active.values())).handle
    assert os.getpgid(handle.pid) == handle.pid  # its own session: a timeout kills the group
    assert os.readlink(f"/proc/{handle.pid}/cwd") == str(spec.workdir.resolve())  # found by folder
    t0 = time.time()
    outcome = None
    while outcome is None and time.time() - t0 < 60:
        for o in runner.poll():
            outcome = o
        time.sleep(0.05)
    assert outcome is not None and outcome.state is JobState.TIMEOUT


def test_other_argv_runs_as_a_plain_subprocess(tmp_path):
    launcher = PreloadedLauncher()
    spec = _spec(tmp_path, "echo", {"Cu": 1.0}, argv=["/bin/sh", "-c", "echo hi"])
    assert not launcher.runs_in_server(spec)
    got = _run_all(LocalRunner(cores=1, launcher=launcher), [spec])
    assert got["echo"].state is JobState.COMPLETED and "hi" in got["echo"].stdout_tail


def test_a_script_without_a_main_guard_is_told_why_its_calculations_fail(tmp_path):
    """A user trial's notebook-like script called ``Campaign.run`` at module level: multiprocessing
    imported the script again in every preloaded child, which ran the campaign again, found it busy
    and exited 1; every calculation failed as 'FAILED (exit 1): ' with nothing to read. The guarded
    script runs them."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    from dm_hpc.campaign import journal as jn

    campaign = {"name": "script", "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1]}},
                "objectives": [{"property": "mixing_energy", "goal": "min"}],
                "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt"}],
                "budget": {"calculations": 2}, "runner": {"kind": "local", "cores": 2},
                "stopping": {"max_consecutive_failures": 2}, "learning": {"initial_points": 2}}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    body = 'camp = Campaign.load("c.yaml")\ncamp.run()\n'
    for folder, script in (("bare", "from dm_hpc import Campaign\n" + body),
                           ("guarded", "from dm_hpc import Campaign\nif __name__ == '__main__':\n"
                                       + "".join("    " + line + "\n" for line in body.splitlines()))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "c.yaml").write_text(yaml.safe_dump(campaign))
        (tmp_path / folder / "nb.py").write_text(script)
        subprocess.run([sys.executable, "nb.py"], cwd=tmp_path / folder, env=env, capture_output=True, timeout=300)
    bare = jn.replay(tmp_path / "bare" / "runs" / "script" / "journal.jsonl")
    errors = [t.error for t in bare.tasks.values() if t.error]
    assert errors and all('under `if __name__ == "__main__":`' in e and "nb.py" in e for e in errors), errors
    guarded = jn.replay(tmp_path / "guarded" / "runs" / "script" / "journal.jsonl")
    assert len(guarded.tasks) == 2 and not [t for t in guarded.tasks.values() if t.error]


def test_the_main_guard_advice_is_given_only_when_a_script_is_the_main_program(monkeypatch):
    """A worker that dies early under the ``dm-hpc`` command (no script is ``__main__``) is not
    told to add a ``__main__`` guard: that is not the cause there (a review finding)."""
    import sys
    import types

    from dm_hpc.runners import preloaded

    command = types.ModuleType("__main__")
    command.__spec__ = types.SimpleNamespace(name="dm_hpc")  # python -m dm_hpc / the dm-hpc entry point
    monkeypatch.setitem(sys.modules, "__main__", command)
    assert "__main__" not in preloaded.not_started_note() and "exited before" in preloaded.not_started_note()
    script = types.ModuleType("__main__")
    script.__spec__, script.__file__ = None, "/tmp/nb.py"
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert 'if __name__ == "__main__":' in preloaded.not_started_note() and "/tmp/nb.py" in preloaded.not_started_note()
