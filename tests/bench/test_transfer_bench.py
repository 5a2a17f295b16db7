"""The BayBE comparison that ``benchmarks/transfer_bench.py --compare`` prints (issue 22 item 5)."""
import json
from pathlib import Path

import numpy as np

from tests.conftest import load_benchmark


def _transfer_bench():
    return load_benchmark("transfer_bench")


def _curves(hits: list[int], n_top: int = 4, budget: int = 20) -> np.ndarray:
    """One seed per entry: ``hits[s]`` of the ``n_top`` top points found, one at each of the last
    evaluations of the budget (so the share at the budget is ``hits[s] / n_top``)."""
    out = np.zeros((len(hits), budget))
    for s, h in enumerate(hits):
        for j in range(h):
            out[s, budget - 1 - j:] += 1.0 / n_top
    return out


def test_mean_over_tasks_averages_the_task_ratios_and_resamples_each_tasks_seeds():
    tb = _transfer_bench()
    level = _curves([2, 3, 2, 4, 1])
    ahead = (_curves([4, 4, 2, 4, 2]), _curves([2, 2, 1, 2, 1]))  # twice BayBE's share on every seed
    mixed = (_curves([4, 1, 3, 1, 4]), _curves([1, 4, 2, 3, 2]))
    same = tb.mean_share_ratio([(level, level), (level, level)], resamples=400)
    assert same["mean"] == 1.0 and same["interval"] == (1.0, 1.0) and same["above_1"] == 1.0
    two = tb.mean_share_ratio([(level, level), ahead], resamples=400)
    assert two["mean"] == 1.5 and two["tasks"] == 2 and two["interval"] == (1.5, 1.5)
    noisy = tb.mean_share_ratio([(level, level), mixed], resamples=400)
    lo, hi = noisy["interval"]
    assert lo < noisy["mean"] < hi and 0 < noisy["above_1"] < 1


def test_a_task_where_baybe_found_nothing_is_left_out_of_the_mean():
    tb = _transfer_bench()
    level = _curves([2, 3, 2])
    m = tb.mean_share_ratio([(level, level), (level, _curves([0, 0, 0]))], resamples=200)
    assert m["tasks"] == 1 and m["mean"] == 1.0


def _save(out: Path, task: str, row: str, found: np.ndarray, first_seed: int = 0) -> None:
    r = {"task": task, "row": row, "first_seed": first_seed, "n_pool": 80, "found": found.tolist(), "seconds": 1.0}
    (out / f"{task}-{row}-s{first_seed:02d}.json").write_text(json.dumps(r))


def test_compare_prints_the_mean_over_tasks_against_baybe_with_each_tasks_seed_count(tmp_path):
    tb = _transfer_bench()
    level, half = _curves([2, 3, 2, 4]), _curves([1, 1, 1, 2])
    _save(tmp_path, "bandgap", "transfer", level)
    _save(tmp_path, "steel", "transfer", level)
    _save(tmp_path, "bandgap", "baybe", level[:3])
    # the unrelated source is the guard's test, not part of the average over related targets
    _save(tmp_path, "unrelated", "transfer", level)
    _save(tmp_path, "unrelated", "baybe", half)
    # a BayBE chunk cut short: only the raw file its subprocess writes after every seed
    raw = {"found": half[:2].tolist(), "best": [[0.0] * 20] * 2, "n_pool": 80, "baybe_version": "0.15.0", "cpu_seconds": 9.0}
    (tmp_path / "steel-baybe-s00.raw").write_text(json.dumps(raw))
    text = tb.compare(tmp_path)
    line = next(row for row in text.splitlines() if row.startswith("Transfer / BayBE"))
    # bandgap: level (1.0 on its 3 common seeds), steel: (2+3)/(1+1) = 2.5 on its 2 -> mean 1.75
    assert "mean over 2 related tasks (seeds: bandgap 3, steel 2): 1.75" in line
    assert "| steel | baybe (2) | 2.50 |" in text and "| unrelated | baybe (4) |" in text


def _baybe_transfer():
    return load_benchmark("baybe_transfer")  # BayBE itself is imported only inside its main()


def test_baybe_parameters_span_the_pool_and_the_sources_with_no_spare_value_unless_a_column_is_constant():
    import pandas as pd

    values = _baybe_transfer().parameter_values
    pool = pd.DataFrame({"a": [0.2, 0.5, 0.8, 0.5], "b": [1.0, 2.0, 3.0, 1.0], "c": [0.3] * 4, "y": [1.0, 2.0, 3.0, 4.0]})
    src1 = pd.DataFrame({"a": [0.0, 0.6], "b": [1.5, 2.5], "y": [0.0, 1.0]})  # no "c": 0 there
    src2 = pd.DataFrame({"a": [0.9, 0.4], "b": [2.0, 4.0], "c": [0.3, 0.3], "y": [0.0, 1.0]})
    got = values(pool, [src1, src2], ["a", "b", "c"])
    # the pool's values and each source's min and max; nothing outside [min, max] of those
    assert got["a"] == (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9)
    assert got["b"] == (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
    assert got["c"] == (0.0, 0.3)  # src1 lacks c: its rows have 0 there
    for c in "abc":
        assert set(pool[c]) <= set(got[c])
        for s in (src1, src2):
            col = s[c] if c in s else pd.Series([0.0] * len(s))
            assert min(got[c]) <= col.min() and col.max() <= max(got[c])
    # without sources the range is the pool's own; a constant column alone gets one spare value
    alone = values(pool, [], ["a", "b", "c"])
    assert alone["a"] == (0.2, 0.5, 0.8) and alone["b"] == (1.0, 2.0, 3.0)
    assert alone["c"] == (0.3, 1.3)
    same = pd.DataFrame({"c": [0.3, 0.3], "y": [0.0, 1.0]})
    assert values(pool, [same], ["c"])["c"] == (0.3, 1.3)
