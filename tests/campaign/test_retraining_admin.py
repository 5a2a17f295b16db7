"""What a trial as a cluster admin and a periodic retraining job found in the model registry: two
`dm-hpc train` at once, a store that went missing under a registry, a damaged version folder,
version folders no other account could read, a full disk, the ranks of one job reading the store
at different moments, SIGTERM at a time limit, one error printed by every rank. Each test fails
on the code before its fix. Real campaign files, stores and registries."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from dm_hpc.campaign import load_campaign, registry
from dm_hpc.cli import app
from dm_hpc.data import Store

from .helpers import REPO, dm, write_campaign
from .test_registry import _records


def _campaign(tmp_path, n: int = 20):
    path = write_campaign(tmp_path, lab=False)
    campaign = load_campaign(path)
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(n, 0))
    return path, campaign


def _cli(*args: str):
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return res.exit_code, " ".join(res.output.split())


def test_two_trainings_started_together_register_one_version(tmp_path):
    """Two `dm-hpc train` at once (a cron job and an admin's run) each found no version of these
    records and both registered one: v0001 and v0002, the same records and settings, and the later
    one made current over a decision taken against the state before the other. Now the second waits
    for the first to register, then says "unchanged: v0001" (exit 0)."""
    path, campaign = _campaign(tmp_path)
    cmd = [sys.executable, "-m", "dm_hpc", "train", str(path)]
    env = {**os.environ, "COLUMNS": "300"}
    jobs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outs = [j.communicate(timeout=600) for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0], outs
    said = " ".join(" ".join(o) for o in outs)
    assert [v.version for v in registry.versions(campaign)] == ["v0001"], said
    assert said.count("registered v0001") == 1 and "unchanged: v0001" in " ".join(said.split()), said
    assert registry.current(campaign) == "v0001"


def test_a_promotion_during_a_training_is_refused_not_overwritten(tmp_path):
    """An admin's `models --promote v0001` while a training ran was overwritten when the training
    made its own version current, on a comparison taken before the promotion. Now the promotion is
    refused while a training holds the registry (exit 2, saying why), and works once it is done."""
    import fcntl

    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0 and _cli("train", str(path), "--force")[0] == 0
    assert registry.current(campaign) == "v0002"
    fd = os.open(registry.registry_dir(campaign) / registry.TRAIN_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a training of this campaign, running
        code, said = _cli("models", str(path), "--promote", "v0001")
        assert code == 2 and "a training of this campaign is running" in said, said
        assert registry.current(campaign) == "v0002"
    finally:
        os.close(fd)
    code, said = _cli("models", str(path), "--promote", "v0001")
    assert code == 0 and registry.current(campaign) == "v0001", said


def test_a_missing_store_under_a_trained_registry_fails_the_scheduled_job(tmp_path):
    """The store of a campaign with registered versions went missing (its filesystem not mounted, the
    folder moved): `train --if-new-data` said "nothing to train yet" and exited 0, so the nightly job
    reported success every night while nothing was trained. Now it fails (exit 2) with one line that
    names the store and the version trained on it; before any version it is still "nothing yet"."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0
    campaign.store.rename(campaign.store.with_name("store.unmounted"))
    res = dm("train", str(path), "--if-new-data")
    assert res.returncode != 0, res.stdout + res.stderr
    said = " ".join((res.stdout + res.stderr).split())
    assert "no store at" in said and "v0001 was trained on 20 records of it" in said and "mounted" in said, said
    assert "nothing to train yet" not in said and "Traceback" not in res.stderr
    (tmp_path / "new").mkdir()
    fresh = write_campaign(tmp_path / "new", lab=False)  # no version and no store yet: nothing to do
    code, said = _cli("train", str(fresh), "--if-new-data")
    assert code == 0 and "nothing to train yet" in said, said


def test_a_damaged_version_folder_is_named_not_a_traceback(tmp_path):
    """A version folder whose meta.json was lost or cut (a crash before the disk held it: it was not
    fsynced before the folder was renamed into place) made `models`, `train` and `--promote` end in
    a FileNotFoundError / JSONDecodeError traceback, every night. Now `models` lists the intact
    versions and names the damaged one on stderr, `train` registers the next number (never the
    damaged one's), and promoting the damaged one is refused with its reason, CURRENT unchanged."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0
    assert _cli("train", str(path), "--force")[0] == 0
    (registry.registry_dir(campaign) / "v0002" / "meta.json").write_text('{"version": "v0002", "campa')  # cut short
    res = dm("models", str(path), "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert [v["version"] for v in json.loads(res.stdout)] == ["v0001"]
    assert "v0002" in res.stderr and "meta.json is unreadable" in res.stderr, res.stderr
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 9))
    code, said = _cli("train", str(path))
    assert code == 0 and "registered v0003" in said, said
    # CURRENT still names the damaged v0002: the new one is a candidate, and the job says why
    assert "current v0002 cannot be rebuilt" in said and registry.current(campaign) == "v0002", said
    assert _cli("models", str(path), "--promote", "v0003")[0] == 0
    bad = dm("models", str(path), "--promote", "v0002")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    assert "v0002" in bad.stderr and "meta.json" in bad.stderr
    assert registry.current(campaign) == "v0003"


def test_a_version_folder_is_readable_like_the_rest_of_the_run_folder(tmp_path):
    """Versions were registered with mkdtemp's mode 0700: the portal's service account and a
    colleague in the project group could read the run folder but not one model (`Permission
    denied` loading it). Now a version folder takes the umask's mode, like every other folder."""
    path, campaign = _campaign(tmp_path)
    old = os.umask(0o022)
    try:
        v = registry.train(campaign)
    finally:
        os.umask(old)
    assert oct(v.path.stat().st_mode & 0o777) == oct(0o755)


def _in_read_only(folder, *args: str, job: bool = False, code: str | None = None) -> subprocess.CompletedProcess:
    """`dm-hpc ARGS` with ``folder`` read-only: its mode 0555 for a user, a read-only bind mount in a
    mount namespace of its own for root (whom modes do not stop); skipped where neither can be had.
    ``job``: as the two ranks of a torchrun job (``train_ranks``: their JSON is the stdout);
    ``code``: that Python program, with ARGS, in place of the CLI."""
    import shutil

    import pytest

    from . import train_ranks

    cmd = [sys.executable, *((train_ranks.__file__,) if job else ("-c", code) if code else ("-m", "dm_hpc")), *args]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a folder read-only here")
    script = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 99; shift; exec "$@"')
    res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), *cmd], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    if res.returncode == 99 or "unshare failed" in res.stderr:
        pytest.skip(f"no read-only bind mount here: {res.stderr.strip()}")
    return res


def test_a_read_only_run_folder_is_named_not_a_traceback(tmp_path):
    """A run folder on a file system mounted read-only (or another account's, or a full disk) ended
    `train`, `models --promote`, `run` and `journal repair` in an OSError traceback. Now each says in
    one line which file it could not write and why (exit 2), and the registry is as it was."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0 and _cli("train", str(path), "--force")[0] == 0
    for args in (("train", str(path), "--force"), ("models", str(path), "--promote", "v0001"),
                 ("run", str(path), "--quiet"), ("journal", "repair", str(path))):
        res = _in_read_only(campaign.run_dir, *args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        said = " ".join(res.stderr.split())
        assert said.startswith("error: ") and str(campaign.run_dir) in said, (args, said)
        assert "Read-only file system" in said or "Permission denied" in said, (args, said)
    assert [v.version for v in registry.versions(campaign)] == ["v0001", "v0002"]
    assert registry.current(campaign) == "v0002"


def _killed_training(path, at: str) -> None:
    """`registry.train` of the campaign file ``path`` in a process that dies at ``at`` as by kill -9
    (``os._exit``: nothing after it runs, no ``finally``): "rename" (before the version folder is
    renamed into place) or "CURRENT" (after it, before CURRENT is written)."""
    code = ("import os, sys\n"
            "from pathlib import Path\n"
            "from dm_hpc.campaign import load_campaign, registry\n"
            "at, write, rename = sys.argv[2], registry._atomic_write, os.rename\n"
            "def dying_write(p, text):\n"
            "    if at == 'CURRENT' and p.name == 'CURRENT':\n"
            "        os._exit(9)\n"
            "    write(p, text)\n"
            "def dying_rename(src, dst):\n"
            "    if at == 'rename' and Path(dst).name.startswith('v0'):\n"
            "        os._exit(9)\n"
            "    rename(src, dst)\n"
            "registry._atomic_write, os.rename = dying_write, dying_rename\n"
            "registry.train(load_campaign(sys.argv[1]))\n")
    res = subprocess.run([sys.executable, "-c", code, str(path), at], cwd=REPO, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 9, res.stdout + res.stderr  # it died there, not before


def test_a_training_killed_while_registering_leaves_no_temporary_folder_for_ever(tmp_path):
    """A training killed (kill -9) inside the registration left its `models/.new-version.XXXX`
    folder (mkdtemp's, a whole model in it) for ever: nothing removed it, a folder per kill. Now
    the next training removes such folders once it holds the registry's turn (no live training is
    registering then), and no listing shows one."""
    path, campaign = _campaign(tmp_path)
    root = registry.registry_dir(campaign)
    root.mkdir(parents=True)
    left = root / ".new-version.k9x2p1"  # as a kill between mkdtemp and the rename leaves it
    left.mkdir()
    (left / "model.pt").write_bytes(b"\0" * 64)
    code, said = _cli("models", str(path))
    assert code == 0 and "new-version" not in said, said
    assert registry.versions(campaign) == [] and registry.damaged(campaign) == []
    code, said = _cli("train", str(path))
    assert code == 0 and "registered v0001" in said, said
    assert not list(root.glob(".new-version.*"))
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 9))
    _killed_training(path, "rename")  # a real kill, one step before the version is in place
    assert len(list(root.glob(".new-version.*"))) == 1
    code, said = _cli("models", str(path))
    assert code == 0 and "new-version" not in said and "v0002" not in said, said
    code, said = _cli("train", str(path), "--if-new-data")
    assert code == 0 and "registered v0002" in said and "interrupted" not in said, said
    assert not list(root.glob(".new-version.*")) and registry.current(campaign) == "v0002"


def test_a_training_killed_before_it_made_its_version_current_is_finished_or_named(tmp_path):
    """A training killed between renaming its version into place and writing CURRENT left a whole
    version that its comparison had made current, and the older CURRENT, without a word: `models`
    listed it as any other version, and the campaign went on with the older model. Now `models`
    names it (registered, not made current: its training was interrupted) with the command that
    makes it current, and the next training makes it current and says so; a promotion or a
    rollback by hand before that is the user's choice, and stays."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 9))
    _killed_training(path, "CURRENT")
    assert [v.version for v in registry.versions(campaign)] == ["v0001", "v0002"]
    assert registry.current(campaign) == "v0001"
    code, said = _cli("models", str(path))
    assert code == 0 and "not made current" in said and "training was interrupted" in said, said
    assert f"dm-hpc models {path} --promote v0002" in said, said
    rows = json.loads(dm("models", str(path), "--json").stdout)  # a dashboard reads the same
    assert [(r["version"], r["current"], r["interrupted"]) for r in rows] == [("v0001", True, False),
                                                                                ("v0002", False, True)]
    code, said = _cli("train", str(path), "--if-new-data")  # the nightly job: no new records
    assert code == 0 and "v0002 is now the current model version" in said, said
    assert registry.current(campaign) == "v0002"
    assert "not made current" not in _cli("models", str(path))[1]
    with Store.open(campaign.store, "a") as store:
        store.ingest(_records(6, 10))
    _killed_training(path, "CURRENT")
    assert "v0003" in _cli("models", str(path))[1]
    code, said = _cli("models", str(path), "--rollback", "v0001")
    assert code == 0 and "not made current" not in said, said
    code, said = _cli("train", str(path), "--if-new-data")
    assert code == 0 and "current model version" not in said and registry.current(campaign) == "v0001", said


def test_the_rank_0_of_an_externally_launched_training_registers_in_its_turn(tmp_path):
    """The ranks of a training launched by srun or torchrun took no turn: rank 0 looked at the
    latest version and registered while another training of the campaign held the registry, so two
    jobs started together registered the same model twice, and a promotion by hand could be
    overwritten. Now rank 0 takes the turn once the ranks have trained (the other ranks never take
    it: they are done, nothing waits for them), and registers when the other training has."""
    import fcntl
    import socket
    import time

    path, campaign = _campaign(tmp_path, 60)
    root = registry.registry_dir(campaign)
    root.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = [tmp_path / f"rank{r}.log" for r in (0, 1)]
    fd = os.open(root / registry.TRAIN_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another training of this campaign, running
        procs = [subprocess.Popen([sys.executable, "-m", "dm_hpc", "train", str(path), "--surrogate", "ensemble",
                                   "--epochs", "2"], cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(r),
                                       "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                                       "MASTER_PORT": str(port), "COLUMNS": "300"})
                 for r, log in zip((0, 1), logs)]
        assert procs[1].wait(timeout=300) == 0, logs[1].read_text()  # rank 1 is not held up
        deadline = time.monotonic() + 120
        while "waiting for another training" not in logs[0].read_text() and procs[0].poll() is None:
            assert time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.2)
        assert procs[0].poll() is None and registry.versions(campaign) == [], logs[0].read_text()
    finally:
        os.close(fd)
    assert procs[0].wait(timeout=300) == 0, logs[0].read_text()
    said = " ".join(logs[0].read_text().split())
    assert "2 rank(s) on cpu" in said and "registered v0001" in said, said
    assert [v.version for v in registry.versions(campaign)] == ["v0001"]


def test_a_registration_that_cannot_put_its_version_in_place_fails_once(tmp_path, monkeypatch):
    """The rename that puts a version in place was retried under the next number on any OSError,
    meant for a number another training took: a full disk or a folder removed under it retried
    for ever. Now any other error ends the training with one line naming it, and leaves neither
    its temporary folder nor an intent to make a missing version current."""
    import errno

    path, campaign = _campaign(tmp_path)
    real = os.rename

    def no_space(src, dst, *a, **k):
        if ".new-version." in str(src):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(registry.os, "rename", no_space)
    code, said = _cli("train", str(path))
    assert code != 0 and "could not be put in place" in said and "No space left" in said, said
    assert "Traceback" not in said
    root = registry.registry_dir(campaign)
    assert not list(root.glob(".new-version.*")) and not (root / registry.PENDING_CURRENT).exists()
    assert registry.versions(campaign) == [] and registry.current(campaign) is None


def _on_full_disk(folder, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`dm-hpc ARGS` with ``folder`` on a full file system (a 256 KiB tmpfs filled up, in a mount
    namespace of its own), and the names left in ``folder`` after it; skipped where no tmpfs can be
    mounted (not root, no unshare)."""
    import shutil

    import pytest

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a full file system needs root (a tmpfs in a mount namespace of its own)")
    folder.mkdir(parents=True, exist_ok=True)
    script = ('mount -t tmpfs -o size=256k tmpfs "$1" || exit 99; '
              'dd if=/dev/zero of="$1/filler" bs=4k >/dev/null 2>&1; folder=$1; shift; '
              '"$@"; rc=$?; echo "left: $(ls -A "$folder" | tr "\\n" " ")" >&2; exit $rc')
    res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), sys.executable, "-m", "dm_hpc",
                          *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "300"})
    if res.returncode == 99 or "unshare failed" in res.stderr:
        pytest.skip(f"no tmpfs here: {res.stderr.strip()}")
    said, _, left = res.stderr.rpartition("left: ")
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout, said), left.split()


def test_a_full_disk_ends_the_training_in_one_line_and_leaves_nothing_behind(tmp_path):
    """On a full disk (or a spent quota) a training ended in a traceback (exit 1): torch.save wrote
    the model through its own C++ stream, whose failure is a RuntimeError ('unexpected pos 64 vs 0'),
    not the OSError the command turns into a line; its `.new-version.*` folder stayed until the next
    training. An ensemble's checkpoint said only 'No space left on device', without the file, and
    left its `..checkpoint-*.tmp` for ever. Now each is one line naming the folder or the file and
    the reason (exit 2), and the registry holds nothing new: no version, no temporary file."""
    path, campaign = _campaign(tmp_path)
    root = registry.registry_dir(campaign)
    for args in (("train", str(path)),
                 ("train", str(path), "--surrogate", "ensemble", "--epochs", "2", "--checkpoint-every", "1")):
        res, left = _on_full_disk(root, *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.stderr, (args, lines)
        assert "No space left on device" in lines[0] and str(root) in lines[0], (args, lines)
        assert sorted(left) == [registry.TRAIN_LOCK, "filler"], (args, left)


def test_ranks_that_read_the_store_at_different_moments_train_on_one_snapshot(tmp_path):
    """Each rank of an srun or torchrun job read the store itself. A campaign writing records beside
    the nightly job (which the registry allows: training only reads) could land between two ranks'
    reads: rank 0 found the records of the latest version and left ("no new records"), rank 1 found
    new ones and waited for rank 0 in the rendezvous until its timeout (10 minutes, then a traceback);
    or both trained, one model on slices of two different snapshots. Now the ranks compare what they
    read and read again until they agree: here both train on the 80 records, rank 0 registers."""
    import socket
    import time

    path, campaign = _campaign(tmp_path, 60)
    registry.train(campaign, registry.TrainOptions(kind="ensemble", epochs=2))  # v0001: the 60 records
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    read, go = tmp_path / "rank0-read", tmp_path / "go"
    # rank 0 reads the store, then waits (its first read only) until the campaign has written more
    rank0 = ("import sys, time\n"
             "from pathlib import Path\n"
             "from dm_hpc.campaign import registry\n"
             "from dm_hpc.cli import main\n"
             "real, calls = registry.snapshot, []\n"
             "def snapshot(*a, **k):\n"
             "    snap = real(*a, **k)\n"
             "    calls.append(1)\n"
             "    if len(calls) == 1:\n"
             f"        Path({str(read)!r}).touch()\n"
             f"        while not Path({str(go)!r}).exists():\n"
             "            time.sleep(0.05)\n"
             "    return snap\n"
             "registry.snapshot = snapshot\n"
             "sys.argv = ['dm-hpc', *sys.argv[1:]]\n"
             "main()\n")
    args = ["train", str(path), "--if-new-data", "--surrogate", "ensemble", "--epochs", "2"]
    logs = [tmp_path / f"rank{r}.log" for r in (0, 1)]

    def start(rank: int, argv: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "COLUMNS": "300"}
        return subprocess.Popen(argv, cwd=REPO, stdout=logs[rank].open("w"), stderr=subprocess.STDOUT, env=env)

    procs = [start(0, [sys.executable, "-c", rank0, *args])]
    try:
        deadline = time.monotonic() + 120
        while not read.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.1)
        with Store.open(campaign.store, "a") as store:  # the campaign ingests 20 records meanwhile
            store.ingest(_records(20, 1))
        go.touch()
        procs.append(start(1, [sys.executable, "-m", "dm_hpc", *args]))
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    said = [" ".join(log.read_text().split()) for log in logs]
    assert codes == [0, 0], said
    assert "registered v0002" in said[0] and "of 80 records" in said[0], said
    assert said[1] == "", said  # rank 0 speaks for the job
    assert [v.version for v in registry.versions(campaign)] == ["v0001", "v0002"]
    assert registry.versions(campaign)[-1].meta["records"] == 80


def test_a_training_stopped_by_sigterm_says_so_and_the_next_one_resumes(tmp_path):
    """Slurm ends a job at its time limit with SIGTERM (so do scancel and `timeout`): the training
    died without a word, so the job's log ended after its last line of the previous night's kind and
    the admin read nothing. Now it says in one line that SIGTERM stopped it and what the next run
    does (exit 143, as a shell reports SIGTERM); nothing half-written is left, and the next
    training resumes from the checkpoint and registers."""
    import signal
    import time

    path, campaign = _campaign(tmp_path, 60)
    root = registry.registry_dir(campaign)
    args = [sys.executable, "-m", "dm_hpc", "train", str(path), "--if-new-data", "--surrogate", "ensemble",
            "--epochs", "400", "--checkpoint-every", "20"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    deadline = time.monotonic() + 300
    while not list(root.glob(".checkpoint-*.pt")):  # training is under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "SIGTERM" in lines[0], err
    assert registry.versions(campaign) == [] and registry.current(campaign) is None
    assert not list(root.glob(f"{registry.NEW_VERSION}*"))
    code, said = _cli("train", str(path), "--if-new-data", "--surrogate", "ensemble", "--epochs", "400",
                      "--checkpoint-every", "20")
    assert code == 0 and "resumed at step" in said and "registered v0001" in said, said


def test_a_failure_every_rank_meets_is_one_line_in_the_jobs_log(tmp_path):
    """Every rank of the nightly job printed the same error: `--ntasks=4` wrote four identical lines
    into the job's log for one missing store. Now rank 0 says it and the others only exit with it."""
    import socket

    path, campaign = _campaign(tmp_path)
    registry.train(campaign)
    os.rename(campaign.store, tmp_path / "store-elsewhere")  # its file system not mounted tonight
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-m", "dm_hpc", "train", str(path), "--if-new-data"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(r),
                                   "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port), "COLUMNS": "300"})
             for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [2, 2], outs
    said = [" ".join((o + e).split()) for o, e in outs]
    assert said[0].startswith("error: ") and said[0].count("error: ") == 1 and "no store at" in said[0], said
    assert said[1] == "", said


def test_a_registration_removes_only_the_checkpoints_of_dead_trainings(tmp_path):
    """`train` removed every `.checkpoint-*.pt` of the registry once it had registered, that of
    another srun job training beside it too (the ranks of a job train outside the registry's turn):
    stopped at its time limit later, that job started again from step 0. Now a registration removes
    the checkpoints whose training is dead (their lock free: ``distributed.checkpoint_lock``), with
    their temporary files and one left by a training killed in its first write; a live one's stay."""
    import fcntl

    from dm_hpc.learn.distributed import checkpoint_lock

    path, campaign = _campaign(tmp_path)
    root = registry.registry_dir(campaign)
    root.mkdir(parents=True)
    live, dead = root / ".checkpoint-1111111111111111.pt", root / ".checkpoint-2222222222222222.pt"
    for ckpt in (live, dead):
        ckpt.write_bytes(b"a checkpoint")
        ckpt.with_name(f".{ckpt.name}.4242.tmp").write_bytes(b"the next one, half written")
    (root / "..checkpoint-3333333333333333.pt.4343.tmp").write_bytes(b"a first one, half written")
    fd = os.open(checkpoint_lock(live), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the other job, training
        code, said = _cli("train", str(path))
        assert code == 0 and "registered v0001" in said, said
        left = sorted(p.name for p in root.glob("*checkpoint*"))
        assert left == sorted([live.name, f".{live.name}.4242.tmp", checkpoint_lock(live).name]), left
    finally:
        os.close(fd)


def test_rank_0_alone_says_why_a_job_ended_and_every_rank_leaves_by_exit_rank(tmp_path):
    """Every rank of the job printed an error in its campaign file or options (`--ntasks=4`: four
    lines), and a rank that ended with an exit status (an error, nothing to train) left through
    Python's finalisation beside gloo's threads, which `exit_rank` is there to avoid. Now rank 0
    says it once, and every rank leaves by `exit_rank` with the job's status."""
    from .train_ranks import FINALISED, run

    path, campaign = _campaign(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("seed: 3", "seed: three"))
    (tmp_path / "new").mkdir()
    empty = write_campaign(tmp_path / "new", lab=False)  # no store yet
    for args, code in ((("train", str(bad)), 2), (("train", str(tmp_path / "missing.yaml")), 2),
                       (("train", str(path), "--surrogate", "nosuch"), 2), (("train", str(empty)), 2),
                       (("train", str(empty), "--if-new-data"), 0)):
        ranks = run(list(args))
        assert [r[0] for r in ranks] == [code, code], (args, ranks)
        assert not any(FINALISED in out for _, out, _ in ranks), (args, ranks)
        said = " ".join((ranks[0][1] + ranks[0][2]).split())
        assert said.count("error: ") == (code != 0) and "Traceback" not in said and said, (args, said)
        assert ranks[1][1:] == ("", ""), (args, ranks)


def test_a_read_only_run_folder_with_nothing_new_is_no_error_in_one_process_or_a_job(tmp_path):
    """A read-only run folder (a read-only mount, another account's folder) and no new records: one
    `dm-hpc train` process failed (exit 2: it opens models/.train.lock for writing, to look at the
    latest version in its turn), the ranks of an srun job answered "unchanged" (exit 0: they look
    without the turn). Now a process that cannot take the turn looks as the ranks do: nothing to
    write, no error, either way; what must be written (--force) is one line and exit 2 either way."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0
    for args, answer in ((("train", str(path)), "unchanged: v0001"),
                         (("train", str(path), "--if-new-data"), "no new records since v0001")):
        one = _in_read_only(campaign.run_dir, *args)
        assert one.returncode == 0 and answer in " ".join(one.stdout.split()) and one.stderr == "", (args, one)
        job = _in_read_only(campaign.run_dir, *args, job=True)
        ranks = json.loads(job.stdout)
        assert [r[0] for r in ranks] == [0, 0] and answer in " ".join(ranks[0][1].split()), (args, ranks)
        assert ranks[0][2] == "" and ranks[1][1:] == ["", ""], (args, ranks)
    one = _in_read_only(campaign.run_dir, "train", str(path), "--force")
    job = json.loads(_in_read_only(campaign.run_dir, "train", str(path), "--force", job=True).stdout)
    for code, err in ((one.returncode, one.stderr), (max(r[0] for r in job), job[0][2])):
        said = err.strip().splitlines()
        assert code == 2 and len(said) == 1 and said[0].startswith("error: "), (code, err)
        assert "Read-only file system" in said[0] or "Permission denied" in said[0], said
    assert [v.version for v in registry.versions(campaign)] == ["v0001"]


def test_a_notebooks_train_in_a_read_only_run_folder_is_one_line_and_registers_nothing(tmp_path):
    """``Campaign.train`` where the registry cannot be written ended in a PermissionError (or
    EROFS) traceback from the training lock, where its docstring promises one CampaignError line."""
    path, campaign = _campaign(tmp_path)
    assert _cli("train", str(path))[0] == 0
    code = ("import sys\n"
            "from dm_hpc import Campaign\n"
            "from dm_hpc.campaign import CampaignError\n"
            "try:\n"
            "    Campaign.load(sys.argv[1]).train(force=True)\n"
            "except CampaignError as exc:\n"
            "    print(exc)\n"
            "    sys.exit(3)\n")
    res = _in_read_only(campaign.run_dir, str(path), code=code)
    said = res.stdout.strip().splitlines()
    assert res.returncode == 3 and "Traceback" not in res.stderr and len(said) == 1, (res.stdout, res.stderr)
    assert said[0].startswith(f"campaign {campaign.name!r}: nothing registered: "), said
    assert "Read-only file system" in said[0] or "Permission denied" in said[0], said
    assert [v.version for v in registry.versions(campaign)] == ["v0001"]


def test_rank_0_says_in_one_line_that_the_other_ranks_did_not_come(tmp_path):
    """Rank 0 of a job whose other rank never came (it died at start) waited the rendezvous timeout,
    then ended in a traceback of torch's DistStoreError. Now it says in one line that it stopped
    and which ranks did not answer (exit 1): the other ranks' logs say why. The timeout is cut to
    3 s here (the job's is 10 minutes)."""
    import socket

    path, campaign = _campaign(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys\n"
            "from datetime import timedelta\n"
            "from dm_hpc.cli import main\n"
            "from dm_hpc.learn import distributed\n"
            "distributed.RENDEZVOUS_TIMEOUT = timedelta(seconds=3)\n"
            "sys.argv = ['dm-hpc', *sys.argv[1:]]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, "train", str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "RANK": "0", "WORLD_SIZE": "2",
                                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "COLUMNS": "300"})
    said = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert res.returncode == 1 and "Traceback" not in res.stderr and len(said) == 1, res.stderr
    assert "rank 0 of 2 stopped: TimeoutError: rank 1 of 2 did not answer" in said[0], said
    assert registry.versions(campaign) == []


def test_a_job_whose_node_has_no_scontrol_is_one_line_from_rank_0(tmp_path):
    """Under srun every rank asks `scontrol show hostnames` for the rendezvous host; on a node
    without scontrol each rank printed a FileNotFoundError traceback. Now rank 0 says in one line
    what failed and what to set (MASTER_ADDR), the other ranks nothing, and all exit 2."""
    path, campaign = _campaign(tmp_path)
    bare = tmp_path / "bin"  # a PATH with python and no scontrol
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare), "COLUMNS": "300", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2",
           "SLURM_NODELIST": "vm", "SLURM_JOB_ID": "7"}
    env.pop("MASTER_ADDR", None)
    said = {}
    for rank in ("0", "1"):
        res = subprocess.run([sys.executable, "-m", "dm_hpc", "train", str(path)], cwd=REPO, capture_output=True,
                             text=True, timeout=600, env={**env, "SLURM_PROCID": rank})
        said[rank] = (res.returncode, res.stdout + res.stderr)
    code, text = said["0"]
    assert code == 2 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "cannot find the rendezvous host: scontrol show hostnames 'vm'" in text and "set MASTER_ADDR" in text, text
    assert said["1"] == (2, ""), said["1"]
    assert registry.versions(campaign) == []
