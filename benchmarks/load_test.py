"""Load test of the portal: 50 concurrent clients on 127.0.0.1 mixing status reads, predictions
and lab uploads for 60 s against a real `dm-hpc serve` (uvicorn) on a real campaign.

    python benchmarks/load_test.py [--clients 50] [--seconds 60] [--workdir DIR]

It runs a small EMT campaign first (about 10 s) so that the lab has pending experiments and the
surrogate has data, starts the server, asks one untimed prediction (the first fit), and lets
every client loop: 60 % status, 30 % predictions
(1-5 random compositions, atomic fractions summing to 1), 10 % uploads of a random subset of the
pending experiments. Uploads
of one sample always carry the same measured value, so concurrent and repeated uploads must
store each sample exactly once. Prints p50/p95/max latency per kind, the error count (any
non-2xx answer or failed connection), and the exactly-once check; exits 1 when either fails.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = "loadtest"
PROP = "property:mixing_energy [eV/atom]"
MIX = (("status", 0.6), ("predict", 0.3), ("upload", 0.1))


def build_campaign(work: Path) -> Path:
    """A small real campaign (EMT, local runner) leaving experiments for the lab; returns its folder."""
    from dm_hpc.campaign import load_campaign
    from dm_hpc.campaign.manager import CampaignManager

    folder = work / "campaigns"
    folder.mkdir(parents=True)
    data = {
        "name": CAMPAIGN, "store": str(work / "store"), "workdir": str(work / "run"), "seed": 3,
        "space": {"elements": {"Cu": [0, 1], "Ni": [0, 1], "Pd": [0, 0.5]}, "max_elements": 3},
        "objectives": [{"property": "mixing_energy", "goal": "min"}],
        "fidelities": [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"},
                       {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 6}],
        "budget": {"calculations": 8, "lab_experiments": 12, "core_hours_per_lab_day": 0.5},
        "runner": {"kind": "local", "cores": 2, "max_in_flight": 2},
        "learning": {"initial_points": 4, "refit_every": 2, "batch_size": 2},
    }
    path = folder / f"{CAMPAIGN}.yaml"
    path.write_text(yaml.safe_dump(data))
    summary = CampaignManager(load_campaign(path), quiet=True).run()
    print(f"campaign: {summary.reason}; {summary.lab_suggested} experiments pending for the lab")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measured(sample_id: str) -> float:
    """The one value the 'lab' reports for a sample (same for every upload of it), eV/atom."""
    return -0.01 - int(hashlib.sha256(sample_id.encode()).hexdigest()[:6], 16) / 16**6 * 0.05


def fractions(rng: random.Random) -> dict[str, float]:
    """A random Cu-Ni-Pd composition as atomic fractions summing to 1 (/predict refuses any other
    sum, as a lab sheet does, rather than rescale it)."""
    amounts = {el: rng.random() for el in ("Cu", "Ni", "Pd")}
    total = sum(amounts.values())
    return {el: v / total for el, v in amounts.items()}


async def client_loop(i: int, url: str, tokens: dict[str, str], sheet: pd.DataFrame, until: float,
                      latencies: dict[str, list[float]], errors: list[str], uploaded: set[str]) -> None:
    rng = random.Random(i)
    kinds, weights = zip(*MIX)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            t0 = time.perf_counter()
            try:
                if kind == "status":
                    r = await http.get(f"/api/v1/campaigns/{CAMPAIGN}", headers=tokens["scientist"])
                elif kind == "predict":
                    comps = [fractions(rng) for _ in range(rng.randint(1, 5))]
                    r = await http.post(f"/api/v1/campaigns/{CAMPAIGN}/predict", headers=tokens["scientist"],
                                        json={"compositions": comps})
                else:
                    rows = sheet.sample(n=rng.randint(1, len(sheet)), random_state=rng.randrange(2**32)).copy()
                    rows[PROP] = [measured(s) for s in rows["sample_id"]]
                    r = await http.post(f"/api/v1/campaigns/{CAMPAIGN}/lab/results", headers=tokens["lab"],
                                        files={"file": ("results.csv", rows.to_csv(index=False).encode(), "text/csv")})
                    if r.status_code == 200:
                        uploaded.update(rows["sample_id"])
            except httpx.HTTPError as exc:
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            latencies[kind].append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(f"{kind}: HTTP {r.status_code}: {r.text[:200]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp folder)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dm-hpc-load-"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    campaigns = build_campaign(work)

    from dm_hpc.data import Store
    from dm_hpc.service import Role, ServiceState

    state = ServiceState(work / "state")
    tokens = {name: {"Authorization": f"Bearer {state.add_user(name, role, [CAMPAIGN])}"}
              for name, role in (("scientist", Role.scientist), ("lab", Role.lab))}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dm_hpc", "serve", "--campaigns", str(campaigns),
                               "--state-dir", str(work / "state"), "--port", str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                sheet_csv = httpx.get(f"{url}/api/v1/campaigns/{CAMPAIGN}/lab/sheet?format=csv",
                                      headers=tokens["lab"], timeout=30)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        sheet = pd.read_csv(io.BytesIO(sheet_csv.content))
        # warm-up, not timed: the first prediction fits the surrogate (seconds on 2 cores)
        httpx.post(f"{url}/api/v1/campaigns/{CAMPAIGN}/predict", headers=tokens["scientist"],
                   json={"compositions": [{"Cu": 1.0}]}, timeout=300).raise_for_status()
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: list[str] = []
        uploaded: set[str] = set()
        t0 = time.monotonic()

        async def run_all() -> None:
            until = time.monotonic() + args.seconds
            await asyncio.gather(*(client_loop(i, url, tokens, sheet, until, latencies, errors, uploaded)
                                   for i in range(args.clients)))

        asyncio.run(run_all())
        wall = time.monotonic() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)

    with Store.open(work / "store") as store:
        exp = store.to_dataframe(source="experimental")
    per_sample = exp["sample_id"].value_counts().to_dict() if len(exp) else {}
    once = set(per_sample) == uploaded and all(n == 1 for n in per_sample.values())

    print(f"\n{args.clients} clients, {wall:.1f} s wall, {sum(map(len, latencies.values()))} requests "
          f"({sum(map(len, latencies.values())) / wall:.1f}/s); pending experiments: {len(sheet)}")
    print(f"{'kind':<10}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for kind, _ in MIX:
        lat = np.array(latencies[kind]) * 1000
        if lat.size:
            print(f"{kind:<10}{lat.size:>9}{np.percentile(lat, 50):>9.0f}{np.percentile(lat, 95):>9.0f}{lat.max():>9.0f}")
    allat = np.concatenate([np.array(v) for v in latencies.values()]) * 1000
    print(f"{'all':<10}{allat.size:>9}{np.percentile(allat, 50):>9.0f}{np.percentile(allat, 95):>9.0f}{allat.max():>9.0f}")
    print(f"errors: {len(errors)}" + ("".join(f"\n  {e}" for e in errors[:10])))
    print(f"samples uploaded: {len(uploaded)}; experimental records: {len(exp)}; "
          f"each stored exactly once: {'yes' if once else 'NO ' + str(per_sample)}")
    return 0 if once and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
