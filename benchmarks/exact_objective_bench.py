"""A cost objective ranked by the price table vs by the model: hypervolume after a lab campaign.

Two objectives, as the demo's: a measured energy (minimised; a synthetic function of the
composition stands in for the lab: Cu-Ni and Al-Ni pairs and gold lower it, palladium raises it)
and the raw-material cost (minimised; the price table's value for what is made). Each seed runs
one lab campaign through ``dm_hpc.Campaign`` (suggest 4, measure, six batches = 24 experiments;
Cu, Ni, Au <= 0.35, Pd <= 0.35, Al <= 0.3, at most four elements) twice, side by side:

- ``model``: the cost objective ranked by the GP fitted on the measured records' costs (the
  engine before ``strategy.exact_outputs``; switched here by emptying that function);
- ``exact``: the default, the planner computes the cost of every candidate.

Prints the hypervolume of the measured points per seed (energy in eV/atom and cost in USD/kg,
both minimised, reference point 0 eV/atom and 30,000 USD/kg) and the paired mean ratio with a
90 % bootstrap interval. Usage:
    OMP_NUM_THREADS=1 python benchmarks/exact_objective_bench.py [--seeds 8] [--batches 6]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import yaml

ENERGY = "property:mixing_energy [eV/atom]"
ELEMENTS = {"Cu": [0, 1], "Ni": [0, 1], "Au": [0, 0.35], "Pd": [0, 0.35], "Al": [0, 0.3]}
REFERENCE = (0.0, 30000.0)


def energy(c: dict[str, float]) -> float:
    g = c.get
    return (-0.3 * g("Ni", 0) * g("Cu", 0) - 0.2 * g("Au", 0) - 0.4 * g("Al", 0) * g("Ni", 0)
            + 0.05 * g("Pd", 0))


def campaign_file(folder: Path, seed: int) -> Path:
    data = {"name": "exact", "store": str(folder / "store"), "workdir": str(folder / "run"), "seed": seed,
            "space": {"elements": ELEMENTS, "max_elements": 4},
            "objectives": [{"property": "mixing_energy", "goal": "min", "unit": "eV/atom"},
                           {"property": "raw_material_cost", "goal": "min", "unit": "USD/kg"}],
            "fidelities": [{"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 4}],
            "budget": {"lab_experiments": 40}}
    path = folder / "exact.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(seed: int, batches: int) -> float:
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from dm_hpc import Campaign
    from dm_hpc.compute.descriptors import raw_material_cost
    from dm_hpc.data import Composition

    api = Campaign.load(campaign_file(Path(tempfile.mkdtemp(prefix="dm-exact-")), seed))
    made: list[dict[str, float]] = []
    for _ in range(batches):
        sheet = api.suggest(4)
        cols = [c for c in sheet.columns if c.startswith("composition:")]
        comps = [{c.split(":")[1].split(" ")[0]: float(v) for c, v in row.items() if v > 0}
                 for _, row in sheet[cols].iterrows()]
        made += comps
        sheet[ENERGY] = [energy(c) for c in comps]
        api.add_measurements(sheet)
    Y = torch.tensor([[-energy(c), -raw_material_cost(Composition(c))] for c in made], dtype=torch.double)
    hv = Hypervolume(torch.tensor([-REFERENCE[0], -REFERENCE[1]], dtype=torch.double))
    return hv.compute(Y[is_non_dominated(Y)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--batches", type=int, default=6)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import dm_hpc.campaign.strategy as strategy

    exact_outputs = strategy.exact_outputs
    rows = []
    print(f"{'seed':>4} {'model HV':>10} {'exact HV':>10} {'ratio':>6}", flush=True)
    for seed in range(args.seeds):
        got = {}
        for arm in ("model", "exact"):  # side by side, seed by seed
            strategy.exact_outputs = exact_outputs if arm == "exact" else (lambda campaign, space: {})
            got[arm] = run(seed, args.batches)
        strategy.exact_outputs = exact_outputs
        rows.append((got["model"], got["exact"]))
        print(f"{seed:>4} {got['model']:>10.1f} {got['exact']:>10.1f} {got['exact'] / got['model']:>6.3f}", flush=True)
    ratio = np.array([e / m for m, e in rows])
    boot = np.random.default_rng(0).choice(ratio, (2000, len(ratio))).mean(1)
    print(f"exact / model hypervolume: mean {ratio.mean():.3f} (90 % interval {np.quantile(boot, 0.05):.3f}-"
          f"{np.quantile(boot, 0.95):.3f}), exact higher on {(ratio > 1).sum()} of {len(ratio)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
