"""One manager per campaign: an exclusive ``flock`` on ``RUN_DIR/manager.lock``.

The kernel drops the lock when its holder dies, so a crashed manager never blocks the next one.
``run`` holds it for its whole life; ``journal repair`` takes it for the rewrite, so a journal is
never rewritten under a running manager.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "manager.lock"


class CampaignBusyError(RuntimeError):
    """Another manager runs this campaign."""


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
