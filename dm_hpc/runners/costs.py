"""A cost model that learns: run time and peak memory per method and system size, from the
calculations that ran.

Each finished attempt leaves an :class:`Observation` in the campaign's ``costs.jsonl`` (beside
its submissions journal): wall seconds from the task's own ``dm-task.times``, peak memory from
``sacct`` (MaxRSS x tasks of the largest step) where accounting is on, atoms from the run
folder's ``result.json``. A TIMEOUT or OUT_OF_MEMORY attempt is a *censored* observation: the
job needed more than it had, so it counts at least at its request (the retry doubles the request
and the model moves up with it).

The fit, per method (and quantity), is log-normal with a size exponent:
``log y = a + b log(atoms) + e``, ``e ~ N(0, s^2)``. With no runs the prior is the method's
cost model in ``configs/calculators.yaml`` (core-seconds ``c0 + c1 n^power`` over the cores;
memory: the site's request) with a spread of x/÷3; ``b`` is the prior's local exponent until
runs of at least two sizes exist. ``s^2`` pools a prior scatter of x/÷1.5 (weight of 2 runs)
with the residuals. Ranges are 90 % predictive intervals. Requests follow the upper end times a margin.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from dm_hpc.runners.spec import TaskSpec

PRIOR_SPREAD = math.log(3.0)  # log-sd of a prior guess: within x/÷3 about two times in three
SCATTER = math.log(1.5)       # prior run-to-run scatter (log-sd) once runs exist ...
PRIOR_WEIGHT = 2.0            # ... counted as this many runs
Z90 = 1.645                   # 90 % two-sided normal quantile
MARGIN = 1.3                  # requests: upper end of the range times this
MIN_MEMORY_MB = 256
COSTS_FILE = "costs.jsonl"


@dataclass(frozen=True)
class Observation:
    """One finished attempt. Seconds of wall time on ``cores`` cores; memory in MB (peak of
    the whole calculation, None where unknown); ``censored``: the state ran out of time
    (TIMEOUT) or memory (OUT_OF_MEMORY), so the true value is above what is recorded."""

    method: str
    atoms: int
    cores: int
    seconds: float
    memory_mb: float | None
    state: str
    censored: str = ""   # "", "time" or "memory"
    job_id: str = ""
    walltime_s: int = 0          # what was requested
    requested_mb: int | None = None


@dataclass(frozen=True)
class Estimate:
    """A learned (or prior) estimate: median and 90 % range, with the runs behind it."""

    median: float
    low: float
    high: float
    runs: int
    source: str  # "learned" or "prior"

    def request(self, margin: float = MARGIN) -> float:
        """What to ask Slurm for: the upper end of the range times ``margin``."""
        return self.high * margin


class CostBook:
    """The observations of one campaign (append-only JSONL; a torn last line is skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, obs: Observation) -> None:
        from dm_hpc.runners.submissions import append_line

        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.path, json.dumps(asdict(obs)))

    def read(self, method: str | None = None) -> list[Observation]:
        out = []
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for line in lines:
            try:
                obs = Observation(**json.loads(line))
            except (ValueError, TypeError):
                continue
            if method is None or obs.method == method:
                out.append(obs)
        return out


def fit(points: list[tuple[float, float, bool]], prior_at, atoms: float) -> Estimate:
    """Log-normal fit of ``(size, value, censored)`` points, predicted at ``atoms``.

    ``prior_at(n)``: the prior's median at size n (its local exponent is used until runs of two
    sizes exist). A censored value is a lower bound: it enters as the larger of itself and the
    current prediction's upper end (one pass)."""
    prior = max(prior_at(atoms), 1e-9)
    if not points:
        return Estimate(prior, prior * math.exp(-Z90 * PRIOR_SPREAD), prior * math.exp(Z90 * PRIOR_SPREAD),
                        0, "prior")
    b_prior = math.log(max(prior_at(2 * atoms), 1e-9) / prior) / math.log(2)
    sizes = {round(n) for n, _, _ in points}
    xs = [math.log(max(n, 1)) for n, _, _ in points]
    ys = [math.log(max(v, 1e-9)) for _, v, _ in points]

    def solve(ys: list[float]) -> tuple[float, float, float]:
        if len(sizes) >= 2:
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
            b = min(max(b, 0.0), 4.0)  # physical: no code gets faster on bigger cells
        else:
            b = b_prior
        a = statistics.fmean(y - b * x for x, y in zip(xs, ys))
        ssr = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
        s2 = (PRIOR_WEIGHT * SCATTER ** 2 + ssr) / (PRIOR_WEIGHT + len(ys) - 1)
        return a, b, math.sqrt(s2)

    a, b, s = solve(ys)
    if any(c for _, _, c in points):  # censored: at least the bound, at least the upper end
        ys = [max(y, a + b * x + Z90 * s) if c else y for x, y, (_, _, c) in zip(xs, ys, points)]
        a, b, s = solve(ys)
    x0 = math.log(max(atoms, 1))
    mean = a + b * x0
    half = Z90 * s * math.sqrt(1 + 1 / len(ys))
    return Estimate(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(ys), "learned")


def prior_seconds(method: str, cores: int):
    """The prior run time (s) on ``cores`` cores at n atoms: calculators.yaml's core-seconds
    over the cores (None when the method is unknown)."""
    from dm_hpc.compute.methods import UnknownMethodError, get_method

    try:
        m = get_method(method)
    except UnknownMethodError:
        return None
    return lambda n: m.cost_core_seconds(max(1, round(n))) / max(1, cores)


def runtime(book: CostBook, method: str, cores: int, atoms: float,
            fallback_s: float | None = None) -> Estimate | None:
    """Wall seconds of ``method`` on ``cores`` cores at ``atoms`` atoms. Runs on other core
    counts are scaled to these cores (core-seconds kept)."""
    prior = prior_seconds(method, cores)
    if prior is None:
        if not fallback_s:
            return None
        prior = lambda n: fallback_s  # noqa: E731 -- the task's own walltime as the guess
    points = [(o.atoms, o.seconds * o.cores / max(1, cores), o.censored == "time")
              for o in book.read(method) if o.seconds > 0]
    return fit(points, prior, atoms)


def memory(book: CostBook, method: str, atoms: float, prior_mb: float | None) -> Estimate | None:
    """Peak memory (MB) of ``method`` at ``atoms`` atoms (prior: the site's request)."""
    points = [(o.atoms, o.memory_mb, o.censored == "memory") for o in book.read(method)
              if o.memory_mb]
    if not points and not prior_mb:
        return None
    base = prior_mb or statistics.fmean(v for _, v, _ in points)
    return fit(points, lambda n: base, atoms)


def sized(spec: TaskSpec, book: CostBook, method: str, atoms: float, *, cores: int,
          default_memory_mb: int | None, max_walltime_s: int, max_memory_mb: int | None) -> TaskSpec:
    """``spec`` (its job: ``cores`` cores in all) with walltime and memory requests that follow
    the learned estimates (upper end of the 90 % range times MARGIN; Slurm's minute
    granularity: at least 60 s), once runs exist; unchanged while only the prior speaks."""
    update: dict[str, object] = {}
    t = runtime(book, method, cores, atoms)
    if t is not None and t.source == "learned":
        update["walltime_s"] = int(min(max_walltime_s, max(60, math.ceil(t.request()))))
        update["expected_s"] = t.median
    m = memory(book, method, atoms, spec.memory_mb or default_memory_mb)
    if m is not None and m.source == "learned":
        want = max(MIN_MEMORY_MB, math.ceil(m.request()))
        update["memory_mb"] = min(max_memory_mb, want) if max_memory_mb else want
    return spec.model_copy(update=update) if update else spec
