"""Slots never wait for the model: queued calculations are dispatched while the planner refits.

The demo once had no calculation in flight for 27 s of a 40 s run while its planner thread was
stuck in a refit plan (BoTorch's kernel compiled again: ``acquire/kernels.py``). The loop must keep
submitting the points already queued whatever the planner is doing; only an empty queue may
leave a slot free.
"""
from __future__ import annotations

import threading

import dm_hpc.campaign.manager as manager_module
import dm_hpc.campaign.planning as planning
from dm_hpc.campaign import parse_campaign
from dm_hpc.campaign.manager import CampaignManager

from .simulation import EmulatedCluster

#: Seconds a held refit waits for a dispatch before it gives up (a hang guard, not a timing check).
HOLD_LIMIT_S = 60.0


def test_queued_points_are_dispatched_while_a_refit_holds_the_planner(tmp_path, monkeypatch):
    """The first refit that starts with points queued is held until the runner receives another
    task (a slow fit, a kernel build): the loop keeps filling freed slots from the queue meanwhile."""
    monkeypatch.setattr(manager_module, "POLL_S", 0.005)
    campaign = parse_campaign({
        "name": "held", "store": str(tmp_path / "store"), "workdir": str(tmp_path / "run"), "seed": 3,
        "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 1], "Au": [0, 1]}},
        "objectives": [{"property": "mixing_energy", "goal": "min"}],
        "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m",
                        "settings": {"n_atoms": 4}}],
        "budget": {"calculations": 14},
        "runner": {"kind": "local", "max_in_flight": 2},
        "learning": {"initial_points": 4, "refit_every": 2, "batch_size": 2},
    }, "held")
    cluster = EmulatedCluster(seed=3)
    manager = CampaignManager(campaign, quiet=True, runner=cluster)
    held: list[tuple[int, bool]] = []  # (points queued when the refit began, dispatched while it was held)
    real_plan = planning.CampaignPlanner.plan

    def plan(self, snap):
        queued = len(manager.queue)
        if snap.data is not None and queued and not held:
            before = len(cluster.submitted)
            dispatched = threading.Event()
            for _ in range(int(HOLD_LIMIT_S / 0.01)):
                if len(cluster.submitted) > before:
                    dispatched.set()
                    break
                dispatched.wait(0.01)
            held.append((queued, dispatched.is_set()))
        return real_plan(self, snap)

    monkeypatch.setattr(planning.CampaignPlanner, "plan", plan)
    summary = manager.run(max_seconds=300)
    assert held, "no refit began with points queued"
    queued, dispatched = held[0]
    assert dispatched, f"{queued} queued point(s) waited for the refit while a slot was free"
    assert summary.reason.startswith("calculation budget reached")
