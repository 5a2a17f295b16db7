"""Fuzz: injection strings and random text in every user-supplied field that reaches a job
script (site env values, method env, container image, task env, argv, run folder) are rendered
and the script is executed by bash as Slurm would run it: every value arrives literally and
nothing else runs."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dm_hpc.runners import SiteProfile, TaskSpec
from dm_hpc.runners.sbatch import comment, render_tasks

ATTACKS = ["{{TASKS}}", "{{ TASKS }}", "{% raw %}", "{#", "$(touch pwned)", "`touch pwned`",
           "'; touch pwned; '", '"; touch pwned; "', "${IFS}touch${IFS}pwned", "\ntouch pwned\n",
           "$((1+1))", "\\", "'", '"', "*", "~", "!!", "-n", "--", "%s", ";;", "esac", "\x1b[31m"]
text = st.one_of(st.sampled_from(ATTACKS), st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.lists(st.sampled_from(ATTACKS), min_size=2, max_size=4).map("".join))
folder_name = text.map(lambda s: s.replace("/", "_").encode()[:200].decode("utf-8", "ignore") or "x")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(site_value=text, method_value=text, task_value=text, word=text, name=folder_name)
def test_every_value_arrives_literally_and_nothing_runs(site_value, method_value, task_value, word, name):
    root = Path(tempfile.mkdtemp())
    try:
        workdir = root / ("w" + name if name in (".", "..") else name)
        workdir.mkdir()
        (workdir / "task.json").write_text('{"method": "emt"}')
        site = SiteProfile.model_validate({
            "env": {"DM_SITE": site_value},
            "methods": {"emt": {"env": {"DM_METHOD": method_value}}}})
        spec = TaskSpec(task_id="f", argv=["sh", "-c", 'printf "%s\\0" "$DM_SITE" "$DM_METHOD" '
                                           '"$DM_TASK" "$1"', "sh", word],
                        workdir=workdir, walltime_s=60, env={"DM_TASK": task_value})
        script = render_tasks(site, [spec], job_name="fuzz", job_comment=comment("c", "b"), array=None)
        proc = subprocess.run(["bash", "-c", script, "slurm_script"], cwd=root, capture_output=True,
                              env={"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "0"}, timeout=20)
        assert proc.returncode == 0, proc.stderr
        got = (workdir / "dm-task.out").read_bytes().split(b"\0")[:4]
        assert [g.decode() for g in got] == [site_value, method_value, task_value, word]
        assert not [p for p in root.rglob("pwned")]
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
