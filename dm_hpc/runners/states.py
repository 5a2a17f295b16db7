"""Job states: the single source of truth for every runner (and for whoever reads outcomes)."""
from __future__ import annotations

import enum


class JobState(enum.Enum):
    """State of one task's job, whatever the backend (local process, Slurm job, pilot task)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # non-zero exit code (kept in Outcome.exit_code)
    TIMEOUT = "TIMEOUT"  # walltime reached
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    CANCELLED = "CANCELLED"
    LOST = "LOST"  # vanished from the queue with no record of how it ended

    @property
    def is_final(self) -> bool:
        """True for every state a job cannot leave (all but PENDING and RUNNING)."""
        return self not in (JobState.PENDING, JobState.RUNNING)


# Slurm's state names (squeue/scontrol/sacct/jobcomp) -> JobState. Transitional states that
# still hold the job (COMPLETING, requeue holds) count as not final.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
}


def from_slurm(text: str) -> JobState:
    """Map a Slurm state string (``CANCELLED by 0``, ``OUT_OF_ME+`` are accepted) to a JobState."""
    word = text.strip().split(" ")[0].rstrip("+").upper()
    if word in SLURM_STATES:
        return SLURM_STATES[word]
    for name, state in SLURM_STATES.items():  # sacct truncates long names with '+'
        if name.startswith(word) and word:
            return state
    return JobState.LOST


#: What slurmstepd writes to a job's output when it kills a step for its memory (cgroup OOM
#: killer, or jobacct_gather's OverMemoryKill): some sites report such jobs FAILED/CANCELLED.
OOM_MARKERS = ("Exceeded job memory limit", "Exceeded step memory limit", "oom-kill event",
               "oom_kill event", "out-of-memory handler")


def refine_oom(state: JobState, slurm_output: str) -> JobState:
    """OUT_OF_MEMORY for a FAILED/CANCELLED job whose Slurm output shows a memory kill."""
    if state in (JobState.FAILED, JobState.CANCELLED) and any(m in slurm_output for m in OOM_MARKERS):
        return JobState.OUT_OF_MEMORY
    return state
