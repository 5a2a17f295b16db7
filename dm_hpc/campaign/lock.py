"""One manager per campaign: an exclusive ``flock`` on ``RUN_DIR/manager.lock``.

The kernel drops the lock when its holder dies, so a crashed manager never blocks the next one.
``run`` holds it for its whole life; ``journal repair`` takes it for the rewrite, so a journal is
never rewritten under a running manager. Short commands (``suggest``, ``ingest``, ``retract``,
``journal repair``) first queue on ``command.lock`` (``command_turn``), which no manager takes.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dm_hpc.data.integrity import StoreLockedError

LOCK_NAME = "manager.lock"


class CampaignBusyError(RuntimeError):
    """Another manager runs this campaign."""


class RunFolderTakenError(CampaignBusyError, ValueError):
    """The run folder holds another campaign's journal (two campaign files naming one ``workdir``)."""


#: the run folder's owner: the name of the campaign whose journal it holds
OWNER_NAME = "campaign-name"


def _journal_owner(journal: Path) -> str | None:
    """The campaign named by the first start/resume event of a journal written before the owner
    file existed (None when there is none)."""
    import json

    try:
        with open(journal, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"campaign"' in line and ('"start"' in line or '"resume"' in line):
                    try:
                        name = json.loads(line).get("campaign")
                    except ValueError:
                        continue
                    if isinstance(name, str):
                        return name
    except FileNotFoundError:
        pass
    return None


def check_run_folder(run_dir: Path, name: str, claim: bool = True) -> None:
    """Raise ``RunFolderTakenError`` when ``run_dir`` belongs to another campaign than ``name``;
    ``claim``: mark it as ``name``'s when it is unmarked. A second campaign file that named the
    first one's ``workdir`` appended to its journal, took its budget as spent and wrote its
    report over the first one's."""
    marker = run_dir / OWNER_NAME
    owner = marker.read_text(encoding="utf-8").strip() if marker.is_file() else _journal_owner(run_dir / "journal.jsonl")
    if owner and owner != name:
        raise RunFolderTakenError(
            f"the run folder {run_dir} holds campaign {owner!r} (its journal, lab sheets and report); campaign "
            f"{name!r} needs its own: set another workdir in its file (or, if {owner!r} was renamed to {name!r}, "
            f"write {name} into {marker})")
    if claim and not marker.is_file() and run_dir.is_dir():
        tmp = run_dir / f".{OWNER_NAME}.{os.getpid()}"
        tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(tmp, marker)


COMMAND_LOCK = "command.lock"
#: how long a command waits for another one on the same campaign before it gives up
COMMAND_WAIT_S = 900.0


class CommandWaitError(StoreLockedError):
    """Another command held the campaign for longer than ``COMMAND_WAIT_S``."""


@contextmanager
def command_turn(run_dir: Path, name: str) -> Iterator[None]:
    """Hold ``run_dir/command.lock``: wait for another short command on the campaign, saying so."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / COMMAND_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited > COMMAND_WAIT_S:
                    raise CommandWaitError(f"campaign {name!r}: another command (suggest, ingest, retract) has held "
                                           f"it for over {COMMAND_WAIT_S:.0f} s; try again when it has finished") from None
                if not told and waited > 1.0:
                    print(f"waiting for another command on campaign {name!r} to finish ...", file=sys.stderr, flush=True)
                    told = True
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def take_manager_lock(run_dir: Path, busy_message: str) -> int:
    """The open, locked file descriptor of ``run_dir``'s manager lock (close it to release);
    raises ``CampaignBusyError(busy_message)`` when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CampaignBusyError(busy_message) from None
    return fd
