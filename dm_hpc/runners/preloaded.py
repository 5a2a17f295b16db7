"""A preloaded interpreter for the local runner's worker tasks (forkserver style).

``python -m dm_hpc.compute.worker task.json`` spends ~1.5 s importing ASE, the calculators and
the data layer before an EMT calculation of a fraction of a second: on the local runner most of
a slot's time went to imports. ``PreloadedLauncher`` starts one clean server process that has
imported all of that once (``multiprocessing``'s forkserver, a fresh interpreter, not a fork of
the manager with its threads and torch state) and forks a child per task from it. The child
behaves like the subprocess it replaces: its own session (a timeout kills its process group),
its run folder as working directory (a restarted manager finds it by folder), stdout/stderr in
the run folder's files, the task's environment, and the worker's exit status.

Only the dm-hpc worker argv is run this way; any other argv is started as a plain subprocess.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

from dm_hpc.runners.spec import STDERR_FILE, STDOUT_FILE, TaskSpec, write_started
from dm_hpc.runners.taskexec import start_process, task_environment

#: Modules the server imports once (what every worker task would import again).
PRELOAD = ["dm_hpc.compute.worker", "dm_hpc.compute.calculation", "dm_hpc.compute.results",
           "ase.calculators.emt", "ase.optimize", "ase.build"]
WORKER_MODULE = "dm_hpc.compute.worker"


#: What a task's stderr says when its process died before it became the task: ``multiprocessing``
#: re-imports the manager's main script in every child, so a script (not a notebook, not the
#: ``dm-hpc`` command) that calls ``Campaign.run`` at module level runs the campaign again there,
#: finds it busy and exits 1, and every calculation fails with nothing to read.
_NOT_STARTED = ("the task's process exited before the calculation started, while Python's multiprocessing "
                "imported {main} again in it (its traceback is on the campaign's terminal); a Python script "
                "that drives a campaign must call Campaign.run (and what follows it) under "
                "`if __name__ == \"__main__\":`\n")


#: The same when no script is the main program (the ``dm-hpc`` command, a notebook): the guard is
#: not the cause, so it is not the advice.
_DIED_EARLY = ("the task's process exited before the calculation started (the campaign's terminal, or the "
               "system log if the process was killed, says why)\n")


def not_started_note() -> str:
    """What a task's stderr says until its process becomes the task: the ``__main__`` guard advice
    when a script is the main program (``_NOT_STARTED``), else ``_DIED_EARLY``."""
    main = _main_script()
    return _NOT_STARTED.format(main=main) if main else _DIED_EARLY


def _main_script() -> str | None:
    """The script file the running program was started as (``python nb.py``), else None."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main.__spec__, "name", None) is not None:
        return None
    return getattr(main, "__file__", None)


def _run_worker(args: list[str], workdir: str, env: dict[str, str]) -> None:
    """In the forked child: become the task's process, then run the worker's ``main``."""
    os.setsid()
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(env)
    for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
        target = os.open(Path(workdir) / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 -- the process's own stdout, kept open
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    from dm_hpc.compute.worker import main

    code = main(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))  # skip the server's atexit handlers, as a plain process would have none


class PreloadedProcess:
    """A forked worker with the part of ``subprocess.Popen`` the runners use."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._p = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._p.exitcode  # negative: killed by that signal, as Popen says it

    def poll(self) -> int | None:
        return self._p.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._p.join(timeout)
        return self._p.exitcode


class PreloadedLauncher:
    """``launcher(spec)`` -> a running process: forked from the preloaded server for the
    dm-hpc worker argv, a plain subprocess for anything else."""

    def __init__(self, preload: list[str] | None = None) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(list(preload or PRELOAD))

    @staticmethod
    def runs_in_server(spec: TaskSpec) -> bool:
        argv = list(spec.argv)
        return len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", WORKER_MODULE]

    def __call__(self, spec: TaskSpec):
        if not self.runs_in_server(spec):
            return start_process(spec)
        workdir = Path(spec.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        write_started(workdir)
        env = {**task_environment(), **spec.env}
        # The child truncates this when it becomes the task; until then it is what the failure says
        (workdir / STDERR_FILE).write_text(not_started_note())
        process = self._ctx.Process(target=_run_worker, args=(list(spec.argv[3:]), str(workdir), env),
                                    name=f"dm-hpc {spec.task_id}", daemon=False)
        process.start()
        return PreloadedProcess(process)
