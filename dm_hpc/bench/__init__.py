"""Offline benchmarks of the active-learning loop.

Public interface:

- ``bench_pool(data, inputs, objective, goal, budget, seeds, strategy, out) -> dict``: the
  Liang et al. pool protocol; writes ``out/summary.json`` (keys ``n_pool``, ``n_top``,
  ``top_pct``, ``ef``, ``af`` {"0.5","0.8","0.9"}, ``seconds_per_step``, plus ``ef_peak`` and the
  run settings) and ``out/top_pct.png``.
- ``bench_pool_multiobjective(...)``: hypervolume vs evaluations.
- ``bench_pool_multifidelity(...)``: experimental evaluations needed, multi-fidelity vs single.
- ``PoolWarning``: a run that goes on but not quite as asked (a budget cut to the pool, a source
  that holds the pool's rows, a tie at the top set's boundary); errors are ``ValueError``.
- ``STRATEGIES``: names and descriptions (random, gp-ei, gp-lcb, ensemble, default).
- ``dm_hpc.bench.suite``: the dev suite on which defaults are chosen (``DEV_SUITE``, ``materialise``).
"""
from dm_hpc.bench.pool import PoolWarning, bench_pool, load_pool, metrics, run_pool, top_set
from dm_hpc.bench.strategies import STRATEGIES

__all__ = ["STRATEGIES", "PoolWarning", "bench_pool", "load_pool", "metrics", "run_pool", "top_set"]
