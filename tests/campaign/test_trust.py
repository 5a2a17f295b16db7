"""Issue 9, "Why": each trust bug reproduced on the real manager (real EMT, store, BoTorch)."""
from __future__ import annotations

import os
import subprocess
from collections import Counter

import yaml

from dm_hpc.acquire.planner import PlanRequest, RandomStart, fresh_points
from dm_hpc.acquire.points import ProposedPoint, point_key
from dm_hpc.campaign import journal as jn
from dm_hpc.campaign import load_campaign, parse_campaign
from dm_hpc.campaign.manager import CampaignManager
from dm_hpc.campaign.realise import realiser
from dm_hpc.campaign.strategy import design_space
from dm_hpc.data import Store

from .helpers import dm, write_campaign

CELL4 = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "settings": {"n_atoms": 4}}


def _tiny_space_campaign(tmp, **over):
    """Cu-Ni on a 4-atom cell: five realisable cells only (Cu4 ... Ni4)."""
    return write_campaign(tmp, lab=False, calculations=20, fidelities=[CELL4],
                          space={"elements": {"Cu": [0, 1], "Ni": [0, 1]}},
                          learning={"initial_points": 2, "refit_every": 1, "batch_size": 2}, **over)


def _realised_keys(campaign):
    state = jn.replay(campaign.run_dir / "journal.jsonl")
    return [(t.fidelity, point_key(t.composition, t.process)) for t in state.tasks.values()]


def test_two_compositions_of_one_cell_realise_to_one_point(tmp_path):
    c = load_campaign(write_campaign(tmp_path, lab=False))
    realise = realiser(c)
    a = realise(ProposedPoint("emt", {"Cu": 0.26, "Ni": 0.74}))
    b = realise(ProposedPoint("emt", {"Cu": 0.24, "Ni": 0.76}))
    assert a.key == b.key and a.composition == {"Cu": 0.25, "Ni": 0.75}
    assert realise(a).key == a.key  # a realised point is its own realisation (fixed point)


def test_planner_never_returns_a_seen_point_and_says_when_the_space_is_exhausted(tmp_path):
    c = load_campaign(_tiny_space_campaign(tmp_path))
    realise, planner = realiser(c), RandomStart(design_space(c))
    seen: dict = {"emt": set()}
    found = []
    for seed in range(6):
        out = fresh_points(planner, PlanRequest(2, None, [], ["emt"], seed), realise, seen, fallback=planner)
        assert not {p.key for p in out.points} & seen["emt"]
        seen["emt"] |= {p.key for p in out.points}
        found += out.points
    assert len(found) == len({p.key for p in found}) <= 5
    assert out.points == [] and out.shortfall.startswith("no new point found")


def test_no_livelock_when_the_space_runs_out(tmp_path):
    """Issue 9: the planner re-proposed one computed composition 271 times in 60 s."""
    c = load_campaign(_tiny_space_campaign(tmp_path))
    summary = CampaignManager(c, quiet=True).run(max_seconds=240)
    # a livelock ends on the time limit, not on this reason; no wall-time assertion needed
    assert summary.reason.startswith("no new point found"), summary.reason
    keys = _realised_keys(c)
    assert len(keys) == len(set(keys)) <= 5
    # the budget is raised: the loop stops again at once with the same reason, proposing nothing
    raised = parse_campaign({**yaml.safe_load(open(tmp_path / "t.yaml")), "budget": {"calculations": 24}})
    again = CampaignManager(raised, quiet=True).run(max_seconds=120)
    assert again.reason.startswith("no new point found") and _realised_keys(c) == keys


def test_no_repeated_realised_point_in_a_campaign_whose_proposals_collide(tmp_path):
    """Issue 9: the demo stored 7 records whose cell repeats an earlier one."""
    c = load_campaign(write_campaign(tmp_path, lab=False, calculations=14,
                                     space={"elements": {"Cu": [0, 1], "Ni": [0, 1]}}))
    CampaignManager(c, quiet=True).run(max_seconds=400)
    keys = _realised_keys(c)
    assert len(keys) == len(set(keys))
    df = Store.open(c.store).to_dataframe(campaign=c.name)
    cells = Counter(tuple(round(v, 6) for v in row) for row in df[["x_Cu", "x_Ni"]].fillna(0).to_numpy())
    assert max(cells.values()) == 1


def test_no_improvement_rule_fires_in_the_live_run(tmp_path):
    """Issue 9: refits were journalled but not applied, so the rule fired only after a resume."""
    c = load_campaign(write_campaign(tmp_path, lab=False, calculations=30, stopping={"no_improvement_rounds": 1},
                                     learning={"initial_points": 2, "refit_every": 1, "batch_size": 2}))
    summary = CampaignManager(c, quiet=True).run(max_seconds=400)
    assert summary.reason == "no improvement in 1 refits"
    events = list(jn.Journal.events(c.run_dir / "journal.jsonl"))
    assert [e["event"] for e in events].count("resume") == 0 and summary.ingested < 30


def test_circuit_breaker_stops_a_fidelity_that_always_fails(tmp_path):
    """Issue 9: Fe with method emt burnt the whole budget, and `run` exited 0."""
    path = write_campaign(tmp_path, lab=False, calculations=12, space={"elements": {"Fe": [0, 1], "Ni": [0, 1]}})
    c = load_campaign(path)
    summary = CampaignManager(c, quiet=True).run(max_seconds=300)  # the manager itself does no preflight
    assert summary.reason.startswith("circuit breaker: fidelity 'emt' stopped after 3 consecutive failures")
    assert summary.failed >= 3 and summary.failed + summary.ingested < 12  # stopped before the budget
    res = dm("status", str(path))
    assert "circuit breaker" in res.stdout
    from dm_hpc.campaign.report import write_report

    assert "circuit breaker: fidelity 'emt'" in write_report(c).read_text()


def test_preflight_in_validate_and_run(tmp_path):
    cases = {
        "fe": ({"space": {"elements": {"Fe": [0, 1], "Ni": [0, 1]}}}, "cannot calculate Fe"),
        "nosuch": ({"fidelities": [{**CELL4, "method": "nosuch", "settings": {}}]}, "unknown method 'nosuch'"),
        "nan": ({"fidelities": [{**CELL4, "walltime": float("nan")}]}, "finite"),
        "site": ({"runner": {"kind": "slurm", "site": str(tmp_path / "nosite.yaml")}}, "no such file"),
        "pool": ({"space": {"pool": str(tmp_path / "nopool.csv")}}, "no such file"),
    }
    for name, (over, message) in cases.items():
        path = write_campaign(tmp_path, name=name, lab=False, **over)
        for cmd in ("validate", "run"):
            res = dm(cmd, str(path))
            assert res.returncode == 2, (name, cmd, res.stdout)
            assert message in res.stderr and "Traceback" not in res.stderr, (name, cmd, res.stderr)
        assert not (tmp_path / "store").exists()  # nothing was started


def test_an_adopted_orphan_that_dies_without_a_result_is_retried(tmp_path):
    """Issue 9: an orphan that died after a restarted manager adopted it was FAILED forever."""
    c = load_campaign(write_campaign(tmp_path, lab=False, calculations=1))
    journal = jn.Journal(c.run_dir / "journal.jsonl")
    journal.write("start", campaign=c.name)
    journal.write("planned", task_id="t-c00001", fidelity="emt", composition={"Cu": 0.5, "Ni": 0.5}, process={})
    journal.write("submitted", task_id="t-c00001")
    journal.close()
    workdir = (c.run_dir / "tasks" / "t-c00001").absolute()
    workdir.mkdir(parents=True)
    orphan = subprocess.Popen(["sleep", "2"], cwd=workdir)  # the old worker, still running
    try:
        summary = CampaignManager(c, quiet=True).run(max_seconds=200)
    finally:
        orphan.kill()
        orphan.wait()
    state = jn.replay(c.run_dir / "journal.jsonl")
    task = state.tasks["t-c00001"]
    assert task.status == jn.INGESTED and task.submissions == 2, (task, summary)
    assert os.path.exists(workdir / "result.json")


def test_run_exits_non_zero_when_every_calculation_failed(tmp_path):
    """A failure preflight cannot foresee (no relaxation converges): the breaker stops the
    fidelity, status and exit code say so."""
    never = {"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m",
             "settings": {"relax_steps": 1, "relax_fmax": 1e-9}}
    path = write_campaign(tmp_path, lab=False, calculations=10, fidelities=[never])
    res = dm("run", str(path), "--quiet")
    assert res.returncode == 1 and "every calculation failed" in res.stderr, res.stdout + res.stderr
    assert "circuit breaker" in res.stdout and "relax_step_limit" in res.stdout
    assert "Traceback" not in res.stderr


def test_a_best_journalled_before_the_constraints_applied_does_not_stop_a_resumed_campaign(tmp_path):
    """Review: refits journalled before best values kept to the constraints may hold an
    out-of-limit best that no new (constrained) best can beat; after `no_improvement_rounds` refits
    a resumed campaign would have stopped "with no improvement". The two kinds are not compared."""
    from dm_hpc.campaign.stopping import no_improvement

    data = yaml.safe_load(write_campaign(tmp_path, lab=False).read_text())
    c = parse_campaign({**data, "constraints": ["density <= 9 g/cm3"], "stopping": {"no_improvement_rounds": 2}})
    state = jn.State()
    state.best = [{"n": 4, "mixing_energy": -0.2}]  # old rule: an alloy over the density limit
    state.best += [{"n": n, "constrained": True, "mixing_energy": v} for n, v in ((6, -0.05), (8, -0.06), (10, -0.07))]
    assert not no_improvement(c, state)  # improving among the comparable values
    state.best += [{"n": n, "constrained": True, "mixing_energy": -0.07} for n in (12, 14)]
    assert no_improvement(c, state)  # and the rule still fires when they stop improving


def test_a_point_whose_cell_or_lab_step_drops_an_element_below_min_elements_is_not_made(tmp_path):
    """A 4-atom cell cannot hold a ternary with 10 % Pd, nor a lab working to 0.05 a fraction of
    0.02: realised, such a point had fewer elements than ``space.min_elements`` asked for. It now
    cannot be made as asked (None), as a cell that cannot be built."""
    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 1]}, "min_elements": 3}
    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2, "precision": 0.05}
    c = load_campaign(write_campaign(tmp_path, fidelities=[CELL4, lab], space=space))
    realise = realiser(c)
    assert realise(ProposedPoint("emt", {"Cu": 0.45, "Ni": 0.45, "Pd": 0.1})) is None
    assert realise(ProposedPoint("emt", {"Cu": 0.5, "Ni": 0.25, "Pd": 0.25})).composition == {"Cu": 0.5, "Ni": 0.25, "Pd": 0.25}
    assert realise(ProposedPoint("lab", {"Cu": 0.49, "Ni": 0.49, "Pd": 0.02})) is None
    assert realise(ProposedPoint("lab", {"Cu": 0.44, "Ni": 0.46, "Pd": 0.1})).composition == {"Cu": 0.45, "Ni": 0.45, "Pd": 0.1}
