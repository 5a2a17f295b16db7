"""Pool-based active-learning benchmark (Liang et al., npj Comput. Mater. 7, 188 (2021)).

The pool is the set of unique inputs (replicate measurements averaged). Each seed starts from
``n_init`` = 2 random pool points and adds one proposal per step until the budget. The top set
is the best 5 % of the pool (``n_top = ceil(0.05 N)``). Reported, as means over seeds:

- ``top_pct[i]``: share of the top set found after ``i`` evaluations;
- ``ef[i] = top_pct[i] / (i / N)``: enhancement factor against random search (whose expected
  ``top_pct`` is ``i / N``); ``ef[0]`` is null;
- ``af[t] = i_random(t) / i_strategy(t)`` with ``i_random(t) = t N`` and ``i_strategy(t)`` the
  first ``i`` with ``top_pct[i] >= t``, for t in 0.5, 0.8, 0.9 (null where not reached).
"""
from __future__ import annotations

import io
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dm_hpc.bench.strategies import Strategy
from dm_hpc.data.composition import Basis, sums_to_total

AF_LEVELS = ("0.5", "0.8", "0.9")


class PoolWarning(UserWarning):
    """The benchmark runs, but on something the user did not ask for or that bends its figures."""


def check_columns(inputs: Sequence[str], objectives: Sequence[str]) -> None:
    """The roles of a pool's columns, checked before its table is read: at least one input, no
    column named twice in a role, none both an input and an objective (pandas would otherwise
    select a column twice and fail deep inside with a message that names neither)."""
    if not inputs:
        raise ValueError("no input columns given: name at least one, comma-separated (e.g. a,b)")
    for role, cols in (("input", inputs), ("objective", objectives)):
        twice = [c for i, c in enumerate(cols) if c in cols[:i]]
        if twice:
            raise ValueError(f"duplicate {role} column {twice[0]!r}: name each column once")
    both = [c for c in inputs if c in objectives]
    if both:
        raise ValueError(f"{both[0]!r} is the objective and cannot also be an input")


def check_out(out: str | Path) -> Path:
    """``out`` as the folder a benchmark writes into, checked before the run (which can take
    hours) instead of after it: ``out``, or the nearest of its parents that exists, is a folder."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ValueError(f"output folder {out}: {p} is a file, not a folder" if p != out
                                 else f"output folder {out} is an existing file, not a folder")
            break
    return out


#: EF peak is taken over i >= EF_FROM evaluations (as ``reference_bo.py`` does): at i < 10 one
#: lucky hit among the random starting points dominates it (10.0 from the 2nd point of 5,000).
EF_FROM = 10


def ef_peak(ef: Sequence[float | None], n_init: int = 2) -> float:
    """The largest enrichment factor from the ``EF_FROM``-th evaluation on (``ef[k]``: after ``k``
    evaluations, ``metrics``); in a shorter run, over the picks after the ``n_init`` random points
    (0 when there are none)."""
    late = [v for v in ef[EF_FROM:] if v is not None] or [v for v in ef[n_init + 1:] if v is not None]
    return max(late or [0.0])


def cap_budget(budget: int, n: int) -> int:
    """Evaluations per campaign on a pool of ``n`` points: at most ``n``, as each point is evaluated
    once; a ``PoolWarning`` when that cuts ``budget``, as the figures then end earlier than asked."""
    if budget > n:
        warnings.warn(PoolWarning(f"budget {budget} is more than the {n} points of the pool: cut to {n}"), stacklevel=3)
    return min(budget, n)


def load_pool(path: str | Path, inputs: Sequence[str], objectives: Sequence[str], hint: str = "") -> pd.DataFrame:
    """Read a CSV, keep ``inputs`` + ``objectives``, average replicates of identical inputs. Rows
    with a missing value in them are left out; a cell that is not a number is an error naming it
    (``numeric_columns``; ``hint``: what to do about such an input, for the message), and so is a
    table with no complete row, and columns in roles that ``check_columns`` refuses."""
    check_columns(inputs, objectives)
    df = read_table(path)
    missing = [c for c in [*inputs, *objectives] if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in {path}: {missing}; available: {list(df.columns)}")
    df = numeric_columns(df[list(inputs) + list(objectives)], inputs, str(path), hint)
    df = numeric_columns(df, objectives, str(path))
    filled = ~df.isna().all(axis=1)  # an empty line is no row
    complete = df.notna().all(axis=1)
    if (gaps := int((filled & ~complete).sum())):
        # said, not silent: a composition table that writes 0 as a blank shrank from 94 points to 53
        counts = df[filled & ~complete].isna().sum()
        where = ", ".join(f"{c!r} ({int(k)})" for c, k in counts.items() if k)
        warnings.warn(PoolWarning(f"{path}: {gaps} of {int(filled.sum())} rows left out for an empty cell in "
                                  f"{where}; write 0 where a blank means none"), stacklevel=3)
    df = df[complete]
    if df.empty:
        raise ValueError(f"{path}: no row has a number in every one of {[*inputs, *objectives]}")
    return df.groupby(list(inputs), as_index=False)[list(objectives)].mean()


def read_table(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """A CSV with blank lines kept as empty rows, so that row ``i`` is line ``i + 2`` of the file
    (the header is line 1) in ``numeric_columns``' messages; the callers leave empty rows out.
    An ``.xlsx`` sheet's first worksheet (row ``i`` is its row ``i + 2``). Raises ValueError for a
    file that is not UTF-8 text, and for a header that names one column twice (pandas would read
    the second as "y.1": the objective or an input silently another column).

    The file is read once: a CSV's bytes (``_FileBytes``), a workbook as one ``ExcelFile``; the
    table and its header row as written are parsed from that (the header apart, as a row of its
    own: pandas types a column over its data rows only, which the table's numbers rely on)."""
    path = Path(path)
    excel = path.suffix.lower() in (".xlsx", ".xlsm")
    try:
        if excel:
            with pd.ExcelFile(path) as book:
                df = pd.read_excel(book, nrows=nrows)
                head = pd.read_excel(book, header=None, nrows=1)
        else:
            data = _FileBytes(path)
            df = pd.read_csv(data.start(), skip_blank_lines=False, nrows=nrows)
            _one_column_check(path, df)
            if not df.index.equals(pd.RangeIndex(len(df))):  # row names 1, 2, ... make a RangeIndex too
                # data rows of one field more than the header: pandas took the first field for an
                # index. A trailing comma (an empty last field) is read as written; row names (R's
                # write.table) would shift every column if the last field were dropped: refused
                last = df.iloc[:, -1] if len(df.columns) else df.index.get_level_values(-1)  # a header of no field
                if not last.isna().all():
                    raise ValueError(f"{path}: the data rows hold one field more than the header (row names, as R "
                                     "writes a table?): name that first column in the header, or write the table "
                                     "without row names")
                df = pd.read_csv(data.start(), skip_blank_lines=False, nrows=nrows, index_col=False)
            head = pd.read_csv(data.start(), header=None, nrows=1)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text{_where_not_utf8(data.getvalue())}: save the table as CSV UTF-8 or "
                         "as .xlsx") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: an empty file") from None
    head = list(head.iloc[0]) if len(head) else list(df.columns)  # as written: pandas renames a repeat "y.1"
    names = [str(h).strip() for h in head if not (isinstance(h, float) and np.isnan(h))]  # a blank header: "Unnamed"
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{path}: the header names {', '.join(map(repr, twice))} more than once; give each column its own name")
    _one_column_check(path, df)
    return df


def _where_not_utf8(raw: bytes) -> str:
    """`` (line L, byte B)``: where ``raw`` first fails to decode, counted in the file (pandas'
    own error counts in the chunk it was decoding); empty for a compressed file, whose bytes on disk
    are not the text."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f" (line {line}, byte {exc.start})"
    return ""


class _FileBytes(io.BytesIO):
    """A CSV file's bytes, read once, for each of ``read_table``'s parses of it (``start``).
    Path-like (``os.fspath`` is the file's path) so that pandas infers a compression from the
    suffix (``t.csv.gz``), as it does when given the path, and decodes the text as it does then."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.read_bytes())
        self._path = str(path)

    def __fspath__(self) -> str:
        return self._path

    def start(self) -> _FileBytes:
        """This buffer, rewound for one more parse (pandas leaves it open after one)."""
        self.seek(0)
        return self


def _one_column_check(path: Path, df: pd.DataFrame) -> None:
    """A header read as one column that holds ';' or tabs: another separator than ','."""
    if len(df.columns) == 1 and any(sep in str(df.columns[0]) for sep in (";", "\t")):
        sep = "';'" if ";" in str(df.columns[0]) else "tabs"
        raise ValueError(f"{path}: one column {str(df.columns[0])[:60]!r}: the file separates its columns with {sep}; "
                         "save it with commas (and '.' as the decimal mark)")


def numeric_columns(df: pd.DataFrame, columns: Sequence[str], where: str, hint: str = "") -> pd.DataFrame:
    """``df`` with ``columns`` read as numbers. A cell that holds something other than a number (a
    sample name, "high", "1,5") is an error naming the file, column, line and value (lines as
    ``read_table`` keeps them; a quoted cell over several lines shifts the count); an empty cell
    stays missing (NaN) for the caller to leave out."""
    out = df.copy()
    for c in columns:
        num = pd.to_numeric(df[c], errors="coerce")
        # "inf" reads as a number to pandas: an infinite input broke the GP fit with a traceback, an
        # infinite objective became the whole top set
        bad = ((num.isna() & df[c].notna()) | np.isinf(num)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = df[c].iloc[i]
            what = "not a finite number" if np.isinf(num.iloc[i]) else "not a number"
            raise ValueError(f"{where}: column {c!r} holds {cell if isinstance(cell, float) else repr(cell)} on line "
                             f"{i + 2}, {what} "
                             f"({int(bad.sum())} such cell{'s' if bad.sum() > 1 else ''} in it){'; ' + hint if hint else ''}")
        out[c] = num
    return out


def load_sources(paths: Sequence[str | Path], inputs: Sequence[str], objective: str, goal: str) -> tuple[list[str], list]:
    """Related tables for transfer: each CSV's columns other than ``objective`` are its inputs
    (columns matched by name). Returns the union of ``inputs`` and the sources' inputs (target's
    first) and one ``learn.transfer.Source`` per file on those columns (an input a table lacks is
    0 there; replicates averaged; outcomes negated for ``goal="min"``, as the target's). A table whose
    inputs are all fractions in [0, 1] summing to 1 in every row is a composition (``Source.simplex``:
    its model reads a target row's shares of its elements, renormalised)."""
    from dm_hpc.learn.transfer import Source, on_columns, union_columns

    tables = []
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names):  # two src.csv in two folders: told apart by their paths
        names = [str(p) for p in paths]
    for name, path in zip(names, paths):
        head = read_table(path, nrows=0).columns
        if objective not in head:
            raise ValueError(f"source {path}: no column {objective!r} (the objective); columns: {list(head)}")
        index = [c for c in head if str(c).startswith("Unnamed: ")]
        if index:  # a DataFrame saved with its index: a row number is no input
            warnings.warn(PoolWarning(f"source {path}: column(s) {index} have no name (a saved row index?): left out"),
                          stacklevel=3)
        cols = [c for c in head if c != objective and c not in index]
        if not cols:
            raise ValueError(f"source {path}: no input columns besides {objective!r}")
        if not set(cols) & set(inputs):
            raise ValueError(f"source {path}: none of its columns {cols} is an input of the target {list(inputs)}; "
                             "columns are matched by name (case and spaces count)")
        table = load_pool(path, cols, [objective], hint=(
            "a source's columns other than the objective are its inputs: leave a column that is not one "
            "(a sample name, a date) out of the table"))
        extra = [c for c in cols if c not in inputs]
        if extra and not _is_shares(table[cols].to_numpy(float)):
            # the union is the rule (a composition's other elements are normal); a measured output
            # among a table's columns (yield strength beside tensile strength) is a common slip
            warnings.warn(PoolWarning(f"source {path}: {len(extra)} column(s) the target does not have enter as inputs "
                                      f"(0 on the target's rows): {extra}; leave out any that is not an input "
                                      "(another measured property, a sample name)"), stacklevel=3)
        tables.append((name, cols, table))
    columns = union_columns(inputs, [cols for _, cols, _ in tables])
    sign = 1.0 if goal == "max" else -1.0
    sources = []
    for name, cols, df in tables:
        measured = tuple(columns.index(c) for c in cols)
        sources.append(Source(name, torch.tensor(on_columns(df, columns), dtype=torch.double),
                              torch.tensor(sign * df[objective].to_numpy(float), dtype=torch.double),
                              measured, measured if _is_composition(df[cols].to_numpy(float)) else ()))
    return columns, sources


def _is_composition(X: np.ndarray, basis: Basis = Basis.atomic_fraction) -> bool:
    """``n x c`` table inputs are shares of one whole on ``basis``: each in [0, total] and each row
    summing to the total (1, or 100 in percent) as a lab sheet's composition must: within
    ``COMPOSITION_TOLERANCE`` (``sums_to_total``), so that a table rounded as sheets round
    (0.333 x 3) is the composition it is."""
    return X.shape[1] > 1 and bool(np.all((X >= 0) & (X <= basis.scale)) and np.all(sums_to_total(X.sum(1), basis)))


def _is_shares(X: np.ndarray) -> bool:
    """``_is_composition`` in fractions or in percent (rows summing to 100)."""
    return _is_composition(X) or _is_composition(X, Basis.atomic_percent)


def source_overlap(X: np.ndarray, sources: Sequence) -> tuple[np.ndarray, dict[str, int]]:
    """Which rows of the target pool (``X``: ``N x d`` on the union columns) a source holds with
    the same inputs (its measurement of the very point the benchmark hides): an ``N`` mask over all
    ``sources`` and the count per source name."""
    rows = [tuple(r) for r in np.asarray(X, float).tolist()]
    held = np.zeros(len(rows), dtype=bool)
    per: dict[str, int] = {}
    for s in sources:
        own = {tuple(r) for r in s.X.tolist()}
        hit = np.array([r in own for r in rows], dtype=bool)
        per[s.name] = int(hit.sum())
        held |= hit
    return held, per


def top_set(y: np.ndarray, top_frac: float = 0.05) -> np.ndarray:
    """Indices of the best ``ceil(top_frac N)`` values of ``y`` (``N``, to maximise).

    The benchmark counts finds of these rows, so which rows they are must follow from ``y``: an
    error when it does not at all (fewer than 2 distinct values, or every place in the set tied
    with a row outside it), a ``PoolWarning`` when some places are a pick among rows tied at the
    set's boundary value (finding a tied row that was not picked does not count).
    """
    n_top = math.ceil(top_frac * len(y))
    order = np.argsort(-y, kind="stable")
    if len(np.unique(y)) < 2:
        raise ValueError(f"the objective has fewer than 2 distinct values over the pool of {len(y)} rows: "
                         "there is no top set to find, so it cannot be benchmarked")
    if n_top < len(y) and y[order[n_top]] == y[order[n_top - 1]]:
        edge = y[order[n_top - 1]]
        picked, tied = int(np.sum(y[order[:n_top]] == edge)), int(np.sum(y == edge))
        if picked == n_top:
            raise ValueError(f"the top {100 * top_frac:g} % of the pool ({n_top} of {len(y)} rows) cannot be told apart "
                             f"from the rest: its places are a pick among {tied} rows of equal value, so which count "
                             "as top is arbitrary and the figures would measure that pick")
        warnings.warn(PoolWarning(
            f"{picked} of the {n_top} top-set places {'is' if picked == 1 else 'are'} a pick among {tied} rows tied at "
            "the set's boundary value: finding one of the others does not count"), stacklevel=2)
    return order[:n_top]


def metrics(orders: np.ndarray, top: np.ndarray, n_pool: int) -> dict:
    """Top%, EF and AF from ``seeds x budget`` evaluation orders (pool indices)."""
    is_top = np.isin(orders, top)
    found = np.concatenate([np.zeros((orders.shape[0], 1)), np.cumsum(is_top, axis=1)], axis=1) / len(top)
    top_pct = found.mean(axis=0)
    i = np.arange(len(top_pct))
    ef = [None] + [float(top_pct[k] / (k / n_pool)) for k in i[1:]]
    af = {}
    for t in AF_LEVELS:
        hit = np.nonzero(top_pct >= float(t) - 1e-12)[0]
        af[t] = float(float(t) * n_pool / hit[0]) if len(hit) else None
    return {"top_pct": [float(v) for v in top_pct], "ef": ef, "af": af}


def run_pool(
    X: np.ndarray,
    y: np.ndarray,
    strategy: str | Callable[[Tensor, int], Strategy],
    budget: int,
    seeds: int,
    n_init: int = 2,
    progress=None,
    on_seed: Callable[[np.ndarray], None] | None = None,
    first_seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Run ``seeds`` campaigns on the pool ``X`` (``N x d``) with outcomes ``y`` (``N``, maximised).

    ``strategy``: a name of ``STRATEGIES``, or a factory ``(X, seed) -> Strategy`` (ablations).
    Returns (``seeds x budget`` pool indices in evaluation order, mean seconds per proposal).
    Seed s draws its initial points from ``numpy.random.default_rng(s)``, the same for every strategy.
    ``on_seed``: called with the orders of the seeds done so far (``done x budget``) after each seed,
    so that a long run keeps what it has. ``first_seed``: run seeds ``first_seed .. first_seed + seeds - 1``
    (row k of the orders is seed ``first_seed + k``), so that a long benchmark can run in chunks.
    """
    Xt = torch.tensor(np.array(X, dtype=float), dtype=torch.double)
    yt = torch.tensor(np.array(y, dtype=float), dtype=torch.double)
    n = Xt.shape[0]
    budget = cap_budget(budget, n)
    orders = np.zeros((seeds, budget), dtype=int)
    spent, steps = 0.0, 0
    for k in range(seeds):
        s = first_seed + k
        rng = np.random.default_rng(s)
        observed = list(rng.choice(n, size=min(n_init, budget), replace=False))
        strat = strategy(Xt, s) if callable(strategy) else Strategy(strategy, Xt, seed=s)
        while len(observed) < budget:
            t0 = time.perf_counter()
            nxt = strat.select(observed, yt[observed])
            spent += time.perf_counter() - t0
            steps += 1
            observed.append(nxt)
            if progress is not None:
                progress()
        orders[k] = observed
        if on_seed is not None:
            on_seed(orders[: k + 1])
    return orders, spent / max(steps, 1)


def transfer_summary(columns: Sequence[str], sources: Sequence, histories: Sequence[Sequence[tuple[str, dict]]]) -> dict:
    """Columns, source sizes, the share of steps each model kind was chosen, and each source's final
    weight averaged over seeds, from the per-seed ``Strategy.history``."""
    kinds = [k for h in histories for k, _ in h]
    finals = [h[-1][1] for h in histories if h]
    return {"columns": list(columns), "sources": {s.name: len(s.y) for s in sources},
            "kind_share": {k: kinds.count(k) / len(kinds) for k in sorted(set(kinds))} if kinds else {},
            "final_weight": {s.name: float(np.mean([w[s.name] for w in finals])) for s in sources} if finals else {}}


def plot_top(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = np.asarray(summary["top_pct"])
    i = np.arange(len(top))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(i, 100 * top, label=summary["strategy"])
    ax.plot(i, 100 * np.minimum(i / summary["n_pool"], 1.0), "k--", label="random (expected)")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"Top% (of best {summary['n_top']})")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bench_pool(
    data: str | Path,
    inputs: Sequence[str],
    objective: str,
    goal: str,
    budget: int,
    seeds: int,
    strategy: str,
    out: str | Path,
    n_init: int = 2,
    progress=None,
    sources: Sequence[str | Path] = (),
) -> dict:
    """Single-objective pool benchmark; writes ``out/summary.json`` and ``out/top_pct.png``.

    ``sources``: related CSV tables (``load_sources``); the default strategy then works on the union
    of the pool's and the sources' inputs and transfers from them (``learn.transfer``); the summary's
    ``transfer`` key gives the columns, the share of steps each model kind was chosen and the mean
    final weight of each source; a ``PoolWarning`` says how many pool rows a source holds with the
    same inputs (the answers leak in; a source may share some points legitimately).
    """
    from dm_hpc.learn.transfer import on_columns

    out = check_out(out)
    if goal not in ("max", "min"):
        raise ValueError(f"goal must be 'max' or 'min', got {goal!r}")
    if sources and strategy != "default":
        raise ValueError(f"sources are used by the default strategy only, not {strategy!r}")
    pool = load_pool(data, inputs, [objective])
    y = pool[objective].to_numpy(float) * (1.0 if goal == "max" else -1.0)
    columns, srcs = load_sources(sources, inputs, objective, goal) if sources else (list(inputs), [])
    X = on_columns(pool, columns)
    _warn_leak(X, srcs)
    top = top_set(y)
    made: list[Strategy] = []

    def make(Xt, seed):
        made.append(Strategy(strategy, Xt, seed, sources=srcs))
        return made[-1]

    orders, sps = run_pool(X, y, make, budget, seeds, n_init=n_init, progress=progress)
    summary = {
        "data": str(data),
        "strategy": strategy,
        "objective": objective,
        "goal": goal,
        "budget": int(orders.shape[1]),
        "seeds": seeds,
        "n_pool": int(len(y)),
        "n_top": int(len(top)),
        **metrics(orders, top, len(y)),
        "seconds_per_step": sps,
    }
    summary["ef_peak"] = ef_peak(summary["ef"], n_init)
    if srcs:
        summary["transfer"] = transfer_summary(columns, srcs, [m.history for m in made])
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    np.savetxt(out / "orders.csv", orders, fmt="%d", delimiter=",")
    plot_top(summary, out / "top_pct.png", f"{Path(data).name}: {objective} ({goal}), {seeds} seeds")
    return summary


def _warn_leak(X: np.ndarray, sources: Sequence) -> None:
    """A ``PoolWarning`` when ``sources`` hold rows of the pool ``X`` (``source_overlap``)."""
    held, per = source_overlap(X, sources)
    if not held.any():
        return
    which = ", ".join(f"{name}: {k}" for name, k in per.items() if k)
    n, k = len(held), int(held.sum())
    head = (f"every one of the {n} target rows is in a source with the same inputs ({which}): the benchmark can look "
            "the answers up" if k == n else f"{k} of the {n} target rows appear in a source with the same inputs ({which})")
    warnings.warn(PoolWarning(f"{head}; the AF/EF figures then overstate what transfer gains"), stacklevel=3)
