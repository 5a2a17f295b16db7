"""Who may write a campaign's journal and store: the manager, or a command while none runs.

``exclusive(campaign)`` takes the manager's lock and the store for writing; it yields
``(store, journal)``, or ``None`` when a manager holds them (the caller then hands its work to
that manager through the campaign's ``inbox/``, written whole with ``drop_in_inbox``).
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dm_hpc.campaign import journal as jn
from dm_hpc.campaign.spec import CampaignSpec
from dm_hpc.data import Store, StoreLockedError


@contextmanager
def exclusive(campaign: CampaignSpec) -> Iterator[tuple[Store, jn.Journal] | None]:
    run_dir = campaign.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "manager.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
