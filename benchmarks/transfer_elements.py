"""A campaign's store source with an element the campaign lacks (issue 22 item 1: "different element
sets are normal"): before 2026-12-03 the campaign path left out a source's records holding an
element outside the design space; now the source's prior-mean GP is fitted on its own elements,
all records, and reads a campaign composition with the elements it lacks left out and the rest
renormalised (``campaign.strategy.source_tables``). This script fits both on the campaign path and
scores them on the campaign's held-out candidates.

Usage: python benchmarks/transfer_elements.py [--seeds 5] [--sizes 5,10,20] [--out benchmarks/results/transfer-elements]

Task: ``transfer_bench``'s ``oer-la`` through a campaign (``campaigns/oer-catalyst.yaml`` with its pool
cut to the plates with La and without Ce, overpotential minimised); source: the plates without La
(875 plates; the 589 with Ce lie outside the campaign's space).
Per seed and size n: n plates of the pool drawn at random are the campaign's own data; the model
with sources is fitted by ``learn.transfer.fit_transfer`` (the guard chooses cold, multitask or
prior) with the source read two ways:

- ``inside only``: the records inside the design space (no Ce) on the campaign's features, the
  source GP fitted by ``fit_transfer`` (the campaign path before);
- ``own elements``: ``source_tables`` (today's).

and, beside them, ``cold`` (the campaign's own plates only). Scores on the pool's other plates: RMSE of the predicted overpotential (V), Spearman rank
correlation, and the share of the pool's best 5 % among the model's 30 best predictions; the kind
the guard chose. Rows go to ``OUT/rows.jsonl``; the table is printed, then each reading's top share
against the inside-only one with a 90 % interval over paired seed resamples.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pool_bench import DATA  # noqa: E402


def campaign_on(tmp: Path, **changes):
    """The oer-la campaign in ``tmp`` (its pool and lab the plates with La and without Ce, CSVs written
    there) with the no-La plates as a table source; ``changes``: campaign-file keys set on top
    (``tests/campaign/test_transfer_campaign.py`` runs it with a small budget)."""
    from dm_hpc.campaign import load_campaign

    df = pd.read_csv(DATA / "oer_plate_3496.csv")
    df[(df.la_load > 0) & (df.ce_load == 0)].to_csv(tmp / "la.csv", index=False)
    df[df.la_load == 0].to_csv(tmp / "no-la.csv", index=False)
    data = yaml.safe_load((ROOT / "campaigns" / "oer-catalyst.yaml").read_text())
    sheet_map = str(ROOT / "configs" / "sheets" / "oer_plate_3496.yaml")
    data["space"].update(pool=str(tmp / "la.csv"), pool_map=sheet_map)
    data["fidelities"][0].update(emulate_from=str(tmp / "la.csv"), emulate_map=sheet_map)
    data.update(store=str(tmp / "store"), workdir=str(tmp / "run"),
                transfer={"from": [{"table": str(tmp / "no-la.csv"), "table_map": sheet_map, "label": "no-la"}]}, **changes)
    (tmp / "campaign.yaml").write_text(yaml.safe_dump(data))
    return load_campaign(tmp / "campaign.yaml")


def pool_values(space) -> np.ndarray:
    """Mean overpotential (V) of each pool composition (replicates averaged), in the pool's order."""
    df = pd.read_csv(DATA / "oer_plate_3496.csv")
    df = df[(df.la_load > 0) & (df.ce_load == 0)]
    cols = {"Ni": "ni_load", "Fe": "fe_load", "Co": "co_load", "Mn": "mn_load", "La": "la_load"}
    means = df.groupby([cols[e] for e in space.element_names])["overpotential"].mean()
    frac = space.pool[0]
    return np.array([means[tuple(np.round(row, 6))] for row in np.round(frac, 6)])


def scores(model, Xp, y, rest, sign: float) -> dict:
    import torch
    from scipy.stats import spearmanr

    with torch.no_grad():
        mu = sign * model.posterior(Xp[rest]).mean[:, 0].numpy()
    top = set(np.argsort(y)[: int(np.ceil(0.05 * len(y)))].tolist())  # lowest overpotential
    best30 = set(np.asarray(rest)[np.argsort(mu)[:30]].tolist())
    return {"rmse": float(np.sqrt(np.mean((mu - y[rest]) ** 2))), "spearman": float(spearmanr(mu, y[rest]).statistic),
            "top_in_30": len(top & best30) / len(top)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transfer-elements"))
    args = ap.parse_args()
    import torch

    from dm_hpc.campaign.dataset import source_rows
    from dm_hpc.campaign.strategy import design_space, source_tables
    from dm_hpc.learn.features import composition_matrix
    from dm_hpc.learn.transfer import Source, fit_transfer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        campaign = campaign_on(Path(tmp))
        space = design_space(campaign)
        y = pool_values(space)
        Xp = space.featurize(space.pool[0])
        (src,) = source_rows(campaign, pd.DataFrame())
        sign = 1.0  # the campaign's model learns the property as it is (the acquisition minimises)
        inside = np.array([set(c) <= set(space.element_names) for c in src.compositions])
        Xin = space.featurize(composition_matrix([c for c, ok in zip(src.compositions, inside) if ok], space.element_names))
        old = Source("no-la", Xin, torch.tensor(sign * src.y[inside], dtype=torch.double))
        for n in [int(s) for s in args.sizes.split(",")]:
            for seed in range(args.seeds):
                own = np.random.default_rng(seed).permutation(len(y))[:n]
                rest = np.setdiff1d(np.arange(len(y)), own)
                X, t = Xp[own], torch.tensor(sign * y[own], dtype=torch.double)
                tables, _ = source_tables(campaign, space, X, [src])
                for reading, sources in (("cold", []), ("inside only", [old]), ("own elements", tables)):
                    fit = fit_transfer(X, t, sources, seed=seed)
                    row = {"n": n, "seed": seed, "reading": reading, "kind": fit.kind,
                           "source_records": {"cold": 0, "inside only": int(inside.sum())}.get(reading, len(src.y)),
                           **scores(fit.model, Xp, y, rest, sign)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    df = pd.DataFrame(rows)
    table = df.groupby(["n", "reading"]).agg(seeds=("seed", "count"), rmse=("rmse", "mean"), spearman=("spearman", "mean"),
                                             top_in_30=("top_in_30", "mean"),
                                             prior=("kind", lambda k: f"{(k == 'prior').mean():.0%}"))
    print(table.round(4).to_markdown())
    rng = np.random.default_rng(0)
    for n, part in df.groupby("n"):
        base = part[part.reading == "inside only"].sort_values("seed")["top_in_30"].to_numpy()
        new = part[part.reading == "own elements"].sort_values("seed")["top_in_30"].to_numpy()
        idx = rng.integers(0, len(base), (2000, len(base)))
        ratio = new[idx].mean(1) / np.maximum(base[idx].mean(1), 1e-12)
        print(f"n={n}: top share, own elements / inside only {new.mean() / base.mean():.2f} "
              f"(90 % interval {np.quantile(ratio, 0.05):.2f}-{np.quantile(ratio, 0.95):.2f}, {len(base)} seeds)")


if __name__ == "__main__":
    main()
