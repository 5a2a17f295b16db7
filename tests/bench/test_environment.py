"""Benchmark results record the environment they ran in, and a comparison names rows from two."""
import json

import numpy as np

from dm_hpc.bench.environment import PACKAGES, differences, environment


def test_the_environment_names_every_library_the_numbers_depend_on(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    env = environment()
    assert set(PACKAGES) <= set(env) and env["torch"].startswith("2.")
    assert env["MKL_CBWR"] == "COMPATIBLE" and int(env["cores"]) >= 1 and env["cpu"]
    assert differences(env, dict(env)) == []
    assert differences(env, {**env, "gpytorch": "0.0"}) == [f"gpytorch: {env['gpytorch']} vs 0.0"]
    assert differences(env, None) == []  # older result files carry no environment


def test_a_saved_run_records_it_and_compare_names_mixed_environments(tmp_path, pool_bench):
    found = np.array([[0.0] * 5 + [0.5] * 5 + [1.0] * 5, [0.0] * 8 + [1.0] * 7])  # 2 seeds, budget 15
    suite = tmp_path / "suite" / "default"
    run = pool_bench.save_run(suite, "s", "default", "default", found, 0.1, 40)
    assert run["environment"] == json.loads((suite / "s-default.json").read_text())["environment"]
    for ref in ("reference-gp-ei", "reference-gp-lcb"):
        pool_bench.save_run(suite, "s", ref, "default", found, 0.1, 40)
    assert "Environment differs" not in pool_bench.compare(suite)
    # a reference from another build: the comparison says which library differs
    path = suite / "s-reference-gp-lcb.json"
    r = json.loads(path.read_text())
    r["environment"]["linear_operator"] = "0.1.0"
    path.write_text(json.dumps(r))
    table = pool_bench.compare(suite)
    assert "Environment differs, s: default vs reference-gp-lcb (linear_operator:" in table
    assert "reference-gp-ei (" not in table


def test_the_project_pins_every_library_the_numbers_depend_on():
    """`make venv` installs with constraints.txt: each package whose version moves the decisions is
    pinned there, and the environment the tests run in has the pinned version."""
    from pathlib import Path

    pins = {}
    for line in (Path(__file__).resolve().parents[2] / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("-", "_")] = version.strip()
    assert set(PACKAGES) <= set(pins), f"not pinned: {sorted(set(PACKAGES) - set(pins))}"
    env = environment()
    for name in PACKAGES:
        assert env[name].split("+")[0] == pins[name], f"{name} {env[name]} installed, {pins[name]} pinned"
