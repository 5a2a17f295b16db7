"""Typed calculation failures: a failure is data (kind, reason, output tail), never a crash.

Each kind has its own worker exit code (AiiDA-style), so a runner or a person reading a job's
exit status knows what went wrong without opening the run folder.
"""
from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: How much of a code's output a failure keeps.
TAIL_LINES = 40
TAIL_CHARS = 4000


class FailureKind(str, enum.Enum):
    """Why a calculation did not give a result."""

    invalid_task = "invalid_task"                    # bad composition, unknown method, bad settings
    unsupported_element = "unsupported_element"      # the method cannot describe an element
    missing_pseudopotential = "missing_pseudopotential"
    code_unavailable = "code_unavailable"            # the code is not installed here
    scf_not_converged = "scf_not_converged"
    relax_step_limit = "relax_step_limit"            # relaxation did not converge within its steps
    code_died = "code_died"                          # the external code exited non-zero / was killed
    internal_error = "internal_error"                # a bug in dm-hpc or a library: see the tail

    @property
    def exit_code(self) -> int:
        """Worker exit status for this kind (0 is success; 1 is left to Python itself)."""
        return _EXIT_CODES[self]

    @property
    def retryable(self) -> bool:
        """True where running the same task again might succeed (not a property of the input)."""
        return self in (FailureKind.code_died, FailureKind.internal_error)


_EXIT_CODES = {
    FailureKind.invalid_task: 2,
    FailureKind.unsupported_element: 10,
    FailureKind.missing_pseudopotential: 11,
    FailureKind.code_unavailable: 12,
    FailureKind.scf_not_converged: 20,
    FailureKind.relax_step_limit: 21,
    FailureKind.code_died: 30,
    FailureKind.internal_error: 40,
}


def tail_text(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines (at most ``chars`` characters) of ``text``."""
    out = "\n".join(text.rstrip().splitlines()[-lines:])
    return out[-chars:]


def tail_file(path: Any, lines: int = TAIL_LINES) -> str:
    """Tail of a text file ('' when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return tail_text(fh.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


class CalcFailure(BaseModel):
    """A calculation that ended without a result: what, why, and the code's last words."""

    model_config = ConfigDict(frozen=True)
    kind: FailureKind
    reason: str
    output_tail: str = ""
    method: str | None = None
    composition: dict[str, float] | None = None
    input_hash: str | None = None
    task_id: str | None = None
    campaign: str | None = None
    host: str | None = None
    wall_time_s: float | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))

    ok: bool = False  # lets callers write `if outcome.ok:` for results and failures alike

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code


class CalcError(Exception):
    """Raised inside a calculation step; ``calculate`` turns it into a :class:`CalcFailure`."""

    def __init__(self, kind: FailureKind, reason: str, output_tail: str = "") -> None:
        super().__init__(f"{kind.value}: {reason}")
        self.kind = kind
        self.reason = reason
        self.output_tail = output_tail
