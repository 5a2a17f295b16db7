"""Who may write a campaign's journal and store: the manager, or a command while none runs.

``exclusive(campaign)`` takes the manager's lock and the store for writing; it yields
``(store, journal)``, or ``None`` when a manager holds them (the caller then hands its work to
that manager through the campaign's ``inbox/``, written whole with ``drop_in_inbox``).

Short commands (``suggest``, ``ingest``, ``retract``) first queue on a lock of their own,
``command.lock`` (``lock.command_turn``), which no manager takes: two of them at once run one after the other, and the
second does not mistake the first for a running manager (it used to hand its work to an inbox
nobody read, wait 300 s and write an empty sheet).
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.lock import check_run_folder, command_turn
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import Store, StoreLockedError


@contextmanager
def exclusive(campaign: CampaignSpec) -> Iterator[tuple[Store, jn.Journal] | None]:
    run_dir = campaign.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with command_turn(run_dir, campaign.name):
        # before the manager's lock: when a manager holds it the work goes to its inbox, and
        # another campaign's request must never reach it
        check_run_folder(run_dir, campaign.name, claim=False)
        with _exclusive(campaign, run_dir) as held:
            yield held


@contextmanager
def _exclusive(campaign: CampaignSpec, run_dir: Path) -> Iterator[tuple[Store, jn.Journal] | None]:
    fd = os.open(run_dir / "manager.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            check_run_folder(run_dir, campaign.name)
            store = Store.open(campaign.store, "a")
        except (BlockingIOError, StoreLockedError):
            yield None
            return
        journal = jn.Journal(run_dir / "journal.jsonl")
        try:
            yield store, journal
        finally:
            journal.close()
            store.close()
    finally:
        os.close(fd)


def manager_running(run_dir: Path) -> bool:
    """Does a manager hold the campaign in ``run_dir`` now (its lock is taken)?"""
    lock = run_dir / "manager.lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def drop_in_inbox(run_dir: Path, text: str, name: str | None = None) -> Path:
    """Write ``text`` to ``run_dir/inbox/<name>`` atomically (the manager sees all or nothing)."""
    inbox = run_dir / "inbox"
    inbox.mkdir(exist_ok=True)
    tmp = inbox / f".{time.time_ns()}.tmp"
    tmp.write_text(text)
    path = inbox / (name or f"{time.time_ns()}.json")
    os.replace(tmp, path)
    return path
