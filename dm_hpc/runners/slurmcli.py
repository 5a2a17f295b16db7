"""Talking to Slurm through its commands (sbatch, squeue, sacct, scontrol, scancel): argv lists,
never a shell. Final states come from ``squeue -t all`` (finished jobs stay for MinJobAge), then
from ``sacct`` where accounting is on, else from the job-completion log; a job whose id is not
known is looked up by its (unique) name in the same sources, in the same order (``jobs_named``)."""
from __future__ import annotations

import functools
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from dm_hpc.runners.states import JobState, from_slurm

_TRANSIENT = ("Socket timed out", "temporarily unavailable", "Resource temporarily",
              "try again", "Unable to contact")


#: Replies that say slurmctld was never reached: nothing was queued, so sbatch may go again.
_UNREACHED = ("Unable to contact slurm controller", "connect failure", "Connection refused")


class SlurmError(RuntimeError):
    """A Slurm command failed (not a transient hiccup)."""


class SchedulerUnavailable(SlurmError):
    """slurmctld could not be reached and nothing was submitted (or learnt, by a look-up): the
    batch stays queued in the runner and goes at a later poll (``Runner._fill`` reads
    ``retry_later``), the campaign goes on."""

    retry_later = True


class SubmissionUnsure(SlurmError):
    """sbatch gave no reply and the job did not show up under its (unique) name within the
    look-up window: slurmctld may still be processing it. It is not submitted again in the same
    breath: the runner keeps the batch, its job id unknown, and asks :meth:`find` at a later poll
    before it submits the batch again (``Runner._settle``)."""

    retry_later = True

    def __init__(self, message: str, job_name: str, since: float) -> None:
        super().__init__(message)
        self.job_name = job_name
        self.since = since  #: when the submission was made (epoch s): sacct is asked from then on

    def find(self) -> str | None:
        """The job's id when some source knows it now, None when they answered that none does;
        SchedulerUnavailable when they cannot tell (asked again later)."""
        try:
            return job_named(self.job_name, self.since)
        except (SlurmError, subprocess.TimeoutExpired) as exc:
            raise SchedulerUnavailable(f"looking up job {self.job_name}: {exc}") from exc


def _not_found(argv: list[str]) -> SlurmError:
    return SlurmError(f"{argv[0]} not found on PATH: the Slurm commands are missing here (load the "
                      f"site's Slurm module, or run on a node where `{argv[0]}` works)")


def call(argv: list[str], timeout_s: float = 60, tries: int = 4) -> str:
    """Run a Slurm command; retries transient controller errors with a growing pause. Never
    use it with ``tries > 1`` for a command that changes something (``sbatch``): a transient
    error can come after the controller already acted."""
    for attempt in range(tries):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except FileNotFoundError:
            raise _not_found(argv) from None
        if proc.returncode == 0:
            return proc.stdout
        if attempt + 1 < tries and _is_transient(proc.stderr):
            time.sleep(0.5 * 2**attempt)
            continue
        raise SlurmError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    raise AssertionError("unreachable")


def _is_transient(text: str) -> bool:
    return any(t.lower() in text.lower() for t in _TRANSIENT)


def unique_job_name(script: Path) -> str | None:
    """The ``#SBATCH --job-name=`` of a job script when it is unique: a dm-hpc name carrying its
    batch id (``<name>--<batch id>``, :func:`sbatch.job_name`). None otherwise: another job may
    share the name, so finding one by it would prove nothing."""
    from dm_hpc.runners.sbatch import batch_of_name

    try:
        text = script.read_text()
    except OSError:
        return None
    m = re.search(r"^#SBATCH\s+--job-name=(\S+)\s*$", text, flags=re.M)
    return m.group(1) if m and batch_of_name(m.group(1)) else None


def job_named(name: str, since: float | None = None) -> str | None:
    """The id of this user's job called ``name`` (see :func:`jobs_named`); None if no source
    knows one. Raises SlurmError when it cannot tell."""
    return jobs_named([name], since).get(name)


#: Job names per squeue/sacct call (dm-hpc names are at most ~150 characters).
NAMES_PER_CALL = 100
#: How far before a submission ``jobs_named`` asks sacct from: slurmctld's clock may differ from ours.
CLOCK_SLACK_S = 60


def jobs_named(names: Iterable[str], since: float | None = None) -> dict[str, str]:
    """Job name -> job id (an array's own id) of this user's jobs called one of ``names`` that
    slurmctld holds (any state: a short job may have finished already) or, once purged from it
    (MinJobAge; a job that finished while the manager was away), that sacct knows where
    accounting is on, else the job-completion log: the sources of :func:`states`, in its order.
    Names no source knows are left out. The one look-up by name: after a lost sbatch
    reply (:func:`sbatch`, :meth:`SubmissionUnsure.find`) and for a restart's batches missing from
    the submissions journal. ``since``: when the jobs were submitted at the earliest (epoch s;
    sacct looks no further back than ``CLOCK_SLACK_S`` before it, a day when None: without ``-S``
    it looks from midnight only).
    Raises SlurmError (or TimeoutExpired) when a source cannot tell."""
    wanted = sorted(set(names))
    got: dict[str, str] = {}

    def ask(names: list[str], argv) -> None:  # ``argv(comma-separated names)``, NAMES_PER_CALL at a time
        for i in range(0, len(names), NAMES_PER_CALL):
            got.update(_named(call(argv(",".join(names[i:i + NAMES_PER_CALL])), timeout_s=30, tries=1), got))

    # -o: fields without a size are printed whole (-O cuts them at 20 characters by default)
    ask(wanted, lambda chunk: ["squeue", "--me", "-h", "-t", "all", "-n", chunk, "-o", "%i|%j"])
    missing = [n for n in wanted if n not in got]
    if missing and accounting_enabled():
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - CLOCK_SLACK_S)) \
            if since is not None else "now-1days"
        ask(missing, lambda chunk: ["sacct", "-X", "-n", "-P", "--name", chunk, "-S", start, "-o", "JobID,JobName"])
    elif missing:  # no accounting: the job-completion log, as for a job's final state (``states``)
        got.update(parse_jobcomp_names(_jobcomp_lines(), set(missing)))
    return {n: j for n, j in got.items() if n in wanted}


def _named(out: str, known: dict[str, str]) -> dict[str, str]:
    """``JOBID|NAME`` lines -> name -> the array's own id (``123`` of ``123_4``, ``123_[0-3]``);
    the first line of a name wins, and a name already in ``known`` keeps its id."""
    got: dict[str, str] = {}
    for line in out.splitlines():
        job, sep, name = line.partition("|")
        name = name.strip().rstrip("|").strip()
        if sep and job.strip() and name and name not in known and name not in got:
            got[name] = job.strip().split("_")[0]
    return got


#: Pauses (s) before each look-up of a job whose sbatch reply was lost: slurmctld may still be
#: processing the submission, and one early "not there" is no proof that it will not appear.
LOOKUP_PAUSES_S = (0.5, 1.0, 2.0, 4.0)


def sbatch(script: Path, options: list[str], job_name: str | None = None, tries: int = 4,
           timeout_s: float = 60) -> str:
    """Submit ``script``; returns the job id (the array's id for an array).

    sbatch is never retried blindly: a "Socket timed out" reply (or an sbatch that hangs) can
    come after slurmctld queued the job, and a second sbatch would run the tasks twice. After
    such an error the job is looked up by ``job_name`` (unique: dm-hpc names carry their batch
    id; by default read from the script) over ``LOOKUP_PAUSES_S``; SubmissionUnsure when it
    did not show up (the runner looks again later before it submits again), SlurmError when
    there is no unique name to look it up by, SchedulerUnavailable when sbatch never reached
    slurmctld ``tries`` times."""
    if job_name is None:
        job_name = unique_job_name(script)
    # on the command line too: a SBATCH_JOB_NAME in the user's environment overrides the script's
    # directive, and the lookup after a lost reply would then find nothing and submit again
    named = [f"--job-name={job_name}"] if job_name else []
    argv = ["sbatch", "--parsable", *named, *options, str(script)]
    last, since = "", time.time()
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        try:
            return call(argv, timeout_s=timeout_s, tries=1).strip().split(";")[0]
        except subprocess.TimeoutExpired:
            last = f"sbatch gave no answer within {timeout_s:g} s"
        except SlurmError as exc:
            if not _is_transient(str(exc)):
                raise
            last = str(exc)
            if any(t.lower() in last.lower() for t in _UNREACHED):
                continue  # a connect failure queued nothing: go again
        # any other transient reply may have come after slurmctld queued the job
        if not job_name:
            raise SlurmError(f"{last}; slurmctld may have queued {script} all the same (check `squeue "
                             f"--me` before submitting it again); it was not submitted again, so that "
                             f"it cannot run twice")
        return _await_job(job_name, last, since)
    raise SchedulerUnavailable(f"{last} (sbatch tried {tries} times; nothing was queued)")


def _await_job(job_name: str, why: str, since: float) -> str:
    """The id of the job ``job_name`` (submitted at ``since``, epoch s) once it shows up within
    ``LOOKUP_PAUSES_S``; SubmissionUnsure when it does not (or nobody answers)."""
    for pause in LOOKUP_PAUSES_S:
        time.sleep(pause)
        try:
            found = job_named(job_name, since)
        except (SlurmError, subprocess.TimeoutExpired):
            continue  # no answer yet: ask again, never submit on a guess
        if found:
            return found
    raise SubmissionUnsure(
        f"{why}; `squeue --me -n {job_name}` (nor sacct, where accounting is on) did not show the job "
        f"within {sum(LOOKUP_PAUSES_S):g} s, "
        f"but slurmctld may have queued it: not submitted again until a look-up says it is not there",
        job_name, since)


def cancel(job_ids: Iterable[str]) -> None:
    ids = sorted(set(job_ids))
    if ids:
        call(["scancel", *ids])


def wait_status_to_exit(status: int) -> int:
    """Slurm's raw wait status (squeue exit_code) -> shell exit code (128 + signal if killed)."""
    return 128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


def pair_to_exit(text: str) -> int | None:
    """``EXIT:SIGNAL`` (scontrol, sacct, jobcomp) -> shell exit code."""
    try:
        code, sig = (int(x) for x in text.split(":"))
    except ValueError:
        return None
    return 128 + sig if sig else code


#: squeue: no header, every state (finished jobs stay for MinJobAge), array elements one per line.
SQUEUE_ARGS = ("-h", "-t", "all", "-r", "-O", "JobArrayID:|,State:|,exit_code:|,Comment:")
MAX_JOB_LIST = 500  # longer --jobs lists: one --me query filtered here instead


def _bases(job_ids: Iterable[str]) -> list[str]:
    return sorted({j.split("_")[0] for j in job_ids})


def squeue(job_ids: Iterable[str]) -> dict[str, tuple[JobState, int | None, str]]:
    """(state, exit code, comment) of jobs and array elements (``123`` or ``123_4``) that
    slurmctld still holds; array ids expand to all their elements."""
    bases = _bases(job_ids)
    if len(bases) > MAX_JOB_LIST:  # one call for all of this user's jobs beats many long lists
        wanted = set(bases)
        return {j: v for j, v in parse_squeue(call(["squeue", "--me", *SQUEUE_ARGS])).items()
                if j.split("_")[0] in wanted}
    try:
        return parse_squeue(call(["squeue", "-j", ",".join(bases), *SQUEUE_ARGS])) if bases else {}
    except SlurmError as exc:
        if "Invalid job id" in str(exc):  # all of them purged already
            return {}
        raise


def squeue_all() -> dict[str, tuple[JobState, int | None, str]]:
    """Every job of this user that slurmctld holds (finished ones for MinJobAge), with comments.
    ``--me``: a campaign's comment is no proof of ownership (another user may run the same
    shipped campaign file), and their jobs are not ours to list or cancel."""
    return parse_squeue(call(["squeue", "--me", *SQUEUE_ARGS]))


def parse_squeue(out: str) -> dict[str, tuple[JobState, int | None, str]]:
    got = {}
    for line in out.splitlines():
        parts = line.split("|", 3)
        if len(parts) < 3:
            continue
        job, state, status = parts[0].strip(), parts[1].strip(), parts[2].strip()
        state_ = from_slurm(state)
        rc = wait_status_to_exit(int(status)) if status.isdigit() and state_.is_final else None
        got[job] = (state_, rc, parts[3].strip() if len(parts) > 3 else "")
    return got


@functools.lru_cache(maxsize=1)
def config() -> dict[str, str]:
    """``scontrol show config`` as a dict (cached: it does not change while we run)."""
    pairs = {}
    for line in call(["scontrol", "show", "config"]).splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def accounting_enabled() -> bool:
    return config().get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"


def sacct(job_ids: Iterable[str]) -> dict[str, tuple[JobState, int | None]]:
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    return parse_sacct(call(["sacct", "-X", "-n", "-P", "-j", ",".join(_bases(ids)),
                             "-o", "JobID,State,ExitCode"]))


def peak_memory_mb(job_ids: Iterable[str]) -> dict[str, float]:
    """Peak memory in MB of finished jobs (or array elements) from ``sacct``: the largest step's
    MaxRSS times its task count (MaxRSS is per task: an upper bound for MPI steps). {} without
    accounting; jobs without a sampled step are left out."""
    ids = sorted(set(job_ids))
    if not ids or not accounting_enabled():
        return {}
    try:
        out = call(["sacct", "-n", "-P", "-j", ",".join(ids), "-o", "JobID,MaxRSS,NTasks"], tries=2)
    except (SlurmError, subprocess.TimeoutExpired):
        return {}
    return parse_peak_memory(out)


_SIZE = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def parse_peak_memory(out: str) -> dict[str, float]:
    """``sacct -n -P -o JobID,MaxRSS,NTasks`` lines -> peak MB by job id (steps folded in)."""
    got: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split("|")
        m = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", parts[1].strip()) if len(parts) == 3 else None
        if not m:
            continue
        tasks = int(parts[2]) if parts[2].strip().isdigit() else 1
        job = parts[0].split(".")[0]
        got[job] = max(got.get(job, 0.0), float(m.group(1)) * _SIZE[m.group(2)] * tasks)
    return got


def parse_sacct(out: str) -> dict[str, tuple[JobState, int | None]]:
    """``sacct -X -n -P -o JobID,State,ExitCode`` output -> (state, exit code) by job id."""
    got = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            got[parts[0]] = (from_slurm(parts[1]), pair_to_exit(parts[2]))
    return got


def jobcomp(job_ids: Iterable[str]) -> dict[str, tuple[JobState, int | None]]:
    """Final states from the job-completion log (``JobCompType=jobcomp/filetxt``)."""
    wanted = set(job_ids)
    return parse_jobcomp(_jobcomp_lines(), wanted) if wanted else {}


def _jobcomp_lines() -> list[str]:
    """The lines of the job-completion log; [] where there is none (``jobcomp/filetxt`` only)."""
    cfg = config()
    if cfg.get("JobCompType") != "jobcomp/filetxt":
        return []
    try:
        return Path(cfg.get("JobCompLoc", "")).read_text(errors="replace").splitlines()
    except OSError:
        return []


def _jobcomp_fields(line: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def parse_jobcomp_names(lines: Iterable[str], names: set[str]) -> dict[str, str]:
    """Lines of a ``jobcomp/filetxt`` log -> job name -> job id (an array's own id) of the jobs
    called one of ``names`` (the first record of a name wins)."""
    got: dict[str, str] = {}
    for line in lines:
        fields = _jobcomp_fields(line)
        name = fields.get("Name", "")
        if name in names and name not in got:
            got[name] = fields.get("ArrayJobId") or fields.get("JobId", "")
    return {n: j for n, j in got.items() if j}


def parse_jobcomp(lines: Iterable[str], wanted: set[str]) -> dict[str, tuple[JobState, int | None]]:
    """Lines of a ``jobcomp/filetxt`` log -> (state, exit code) of the ``wanted`` job ids."""
    got = {}
    for line in lines:
        fields = _jobcomp_fields(line)
        job = fields.get("JobId", "")
        if fields.get("ArrayJobId") and fields.get("ArrayTaskId"):
            job = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
        if job in wanted:
            got[job] = (from_slurm(fields.get("JobState", "")), pair_to_exit(fields.get("ExitCode", "")))
    return got


def states(job_ids: Iterable[str]) -> dict[str, tuple[JobState, int | None]]:
    """State and exit code for each job id; jobs no source knows come back as LOST."""
    ids = set(job_ids)
    got = {j: (s, rc) for j, (s, rc, _) in squeue(ids).items() if j in ids}
    missing = ids - got.keys()
    if missing:
        got.update(sacct(missing) if accounting_enabled() else jobcomp(missing))
    for job in ids - got.keys():
        got[job] = (JobState.LOST, None)
    return got


def set_node_state(node: str, state: str, reason: str = "") -> None:
    """``scontrol update nodename=NODE state=STATE [reason=...]`` (tests inject failures so)."""
    argv = ["scontrol", "update", f"nodename={node}", f"state={state}"]
    try:
        call(argv + ([f"reason={reason}"] if reason else []))
    except SlurmError as exc:  # resuming a node that is already up is not an error
        if not (state.lower() == "resume" and "Invalid node state" in str(exc)):
            raise


def remaining_core_hours(account: str) -> tuple[float | None, str]:
    """The account's remaining CPU allocation in core-hours, from ``sacctmgr`` (the
    association's ``GrpTRESMins`` cpu limit) minus ``sshare`` (its raw usage in cpu-seconds).
    Returns (core-hours or None, how it was found or why it is unknown)."""
    if not account:
        return None, "unknown (no account in the site profile)"
    try:
        limits = call(["sacctmgr", "-n", "-P", "show", "assoc", f"account={account}",
                       "format=GrpTRESMins"], timeout_s=20, tries=1)
        usage = call(["sshare", "-n", "-P", "-A", account, "-o", "RawUsage"], timeout_s=20, tries=1)
    except (OSError, SlurmError, subprocess.TimeoutExpired):
        return None, "unknown (sshare unavailable)"
    minutes = [int(m.group(1)) for m in re.finditer(r"cpu=(\d+)", limits)]
    used = [float(x) for x in usage.split() if x.replace(".", "", 1).isdigit()]
    if not minutes:
        return None, f"no cpu limit on account {account} (sacctmgr GrpTRESMins)"
    left = min(minutes) / 60 - (max(used) if used else 0.0) / 3600
    return left, f"{left:,.0f} core-h left on {account} (sacctmgr limit - sshare usage)"
