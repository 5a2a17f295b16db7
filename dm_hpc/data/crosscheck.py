"""Cross-checks between sources: the same material measured by two labs, or computed and
measured, that disagree beyond their uncertainties.

A *material* is a composition (atomic fractions rounded to ``COMPOSITION_DECIMALS``) with its
process parameters (rounded to 4 significant digits); an *origin* is ``source:method`` (the lab's
name is its method), with the institution when a record gives one. For each material, property
and pair of origins, the current records' means are compared::

    z = |a - b| / sqrt(u_a^2 + u_b^2)

with ``u`` the standard uncertainty of the mean of an origin's values (the stated uncertainty,
or the scatter of repeats, or ``DEFAULT_RELATIVE_U`` x |value| when neither is known, so a
calculation without an error bar is not infinitely precise). A pair with ``z > threshold`` is a
disagreement. ``bias_by_origin`` averages the signed differences per origin pair, which the
map draws over composition, so a lab or a method that is off in one corner of the space shows.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

#: Composition rounding that makes two records the same material (0.001 atomic fraction).
COMPOSITION_DECIMALS = 3
#: Relative standard uncertainty assumed for a value with none stated (5 %).
DEFAULT_RELATIVE_U = 0.05
#: Default disagreement threshold in combined standard uncertainties.
Z_THRESHOLD = 3.0


def _material_keys(df: pd.DataFrame) -> pd.Series:
    x_cols = sorted(c for c in df.columns if c.startswith("x_"))
    p_cols = sorted(c for c in df.columns if c.startswith("process."))
    parts = []
    for _, row in df[x_cols + p_cols].iterrows():
        comp = " ".join(f"{c[2:]}{row[c]:.{COMPOSITION_DECIMALS}f}" for c in x_cols if round(row[c], COMPOSITION_DECIMALS) > 0)
        proc = " ".join(f"{c.split(':')[-1]}={float(f'{row[c]:.4g}'):g}" for c in p_cols if row[c] == row[c])
        parts.append(f"{comp} {proc}".strip())
    return pd.Series(parts, index=df.index)


def _origin(df: pd.DataFrame) -> pd.Series:
    base = df["source"].astype(str) + ":" + df["method"].astype(str)
    if "institution" in df.columns:
        inst = df["institution"].fillna("")
        base = base + np.where(inst != "", " @" + inst.astype(str), "")
    return base


def _summary(values: np.ndarray, stds: np.ndarray) -> tuple[float, float]:
    """Mean and its standard uncertainty of one origin's values for a material."""
    mean = float(np.mean(values))
    stated = stds[np.isfinite(stds)]
    if len(values) > 1:
        scatter = float(np.std(values, ddof=1) / math.sqrt(len(values)))
    else:
        scatter = 0.0
    u = float(np.sqrt(np.mean(stated**2)) / math.sqrt(len(values))) if stated.size else 0.0
    u = max(u, scatter)
    return mean, u if u > 0 else DEFAULT_RELATIVE_U * abs(mean)


def find_disagreements(df: pd.DataFrame, properties: list[str] | None = None, threshold: float = Z_THRESHOLD,
                       ) -> pd.DataFrame:
    """Every material/property/origin pair of ``df`` (``Store.to_dataframe()`` form) with
    ``z > threshold``; columns: material, property, origin_a, value_a, u_a, n_a, origin_b,
    value_b, u_b, n_b, difference (b - a), z, settle (the experiment that would decide)."""
    cols = ["material", "property", "origin_a", "value_a", "u_a", "n_a", "origin_b", "value_b", "u_b", "n_b",
            "difference", "z", "settle"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.assign(material=_material_keys(df), origin=_origin(df))
    fixed = {"record_id", "source", "method", "campaign", "task_id", "sample_id", "time", "material", "origin",
             "institution"}
    props = properties or [c for c in df.columns if c not in fixed and not c.startswith(("x_", "process.", "raw."))
                           and not c.endswith("_std") and pd.api.types.is_numeric_dtype(df[c])]
    rows = []
    for (material, group) in df.groupby("material", sort=True):
        if group["origin"].nunique() < 2:
            continue
        for prop in props:
            have = group[group[prop].notna()] if prop in group else group.iloc[0:0]
            stats = {}
            for origin, g in have.groupby("origin", sort=True):
                std = g[f"{prop}_std"].to_numpy(float) if f"{prop}_std" in g else np.full(len(g), np.nan)
                stats[origin] = (*_summary(g[prop].to_numpy(float), std), len(g), g["source"].iloc[0])
            for a, b in itertools.combinations(sorted(stats), 2):
                (va, ua, na, sa), (vb, ub, nb, sb) = stats[a], stats[b]
                z = abs(vb - va) / math.hypot(ua, ub) if math.hypot(ua, ub) > 0 else math.inf
                if z > threshold:
                    rows.append([material, prop, a, va, ua, na, b, vb, ub, nb, vb - va, z,
                                 settle(material, prop, a, sa, b, sb)])
    return pd.DataFrame(rows, columns=cols).sort_values("z", ascending=False, ignore_index=True)


def settle(material: str, prop: str, a: str, source_a: str, b: str, source_b: str) -> str:
    """The experiment that would settle one disagreement, in words."""
    labs = [o for o, s in ((a, source_a), (b, source_b)) if s == "experimental"]
    if len(labs) == 2:
        return (f"measure {prop} of {material} at a third lab (and exchange the two labs' specimens); "
                f"repeats at {labs[0]} and {labs[1]} show whether one is biased or the samples differ")
    if len(labs) == 1:
        calc = b if labs[0] == a else a
        return (f"measure {prop} of {material} again at {labs[0]} with a stated uncertainty; if it holds, "
                f"{calc} is off here: compute it at a higher fidelity")
    return f"compute {prop} of {material} with a higher-fidelity method; the two calculations disagree"


def bias_by_origin(found: pd.DataFrame) -> pd.DataFrame:
    """Mean signed difference (b - a) and count per origin pair and property."""
    if found.empty:
        return pd.DataFrame(columns=["origin_a", "origin_b", "property", "mean_difference", "n"])
    return (found.groupby(["origin_a", "origin_b", "property"])["difference"].agg(["mean", "size"])
            .rename(columns={"mean": "mean_difference", "size": "n"}).reset_index())


def draw_map(df: pd.DataFrame, found: pd.DataFrame, out: str | Path) -> Path:
    """A PNG of where each origin pair disagrees: one panel per (origin pair, property), the
    materials over the two elements that vary most, coloured by the signed z of b - a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    panels = list(found.groupby(["origin_a", "origin_b", "property"], sort=True)) if not found.empty else []
    n = max(1, min(len(panels), 6))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    x_cols = [c for c in df.columns if c.startswith("x_")]
    spread = df[x_cols].var().sort_values(ascending=False) if x_cols else pd.Series(dtype=float)
    ex, ey = (list(spread.index) + [None, None])[:2]
    if not panels:
        axes[0][0].text(0.5, 0.5, "no disagreements beyond the uncertainties", ha="center", va="center")
        axes[0][0].set_axis_off()
    for ax, ((oa, ob, prop), g) in zip(axes[0], panels[:n]):
        xs = [_fraction(m, ex) for m in g["material"]]
        ys = [_fraction(m, ey) for m in g["material"]]
        signed = np.sign(g["difference"]) * g["z"].clip(upper=10)
        sc = ax.scatter(xs, ys, c=signed, cmap="coolwarm", vmin=-10, vmax=10, s=60, edgecolors="k")
        ax.set_xlabel(f"{ex[2:] if ex else '-'} (at. frac.)")
        ax.set_ylabel(f"{ey[2:] if ey else '-'} (at. frac.)")
        ax.set_title(f"{prop}: {ob}\nminus {oa}", fontsize=8)
        fig.colorbar(sc, ax=ax, label="signed z (b - a)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _fraction(material: str, column: str | None) -> float:
    if column is None:
        return 0.0
    el = column[2:]
    for token in material.split():
        if token.startswith(el) and token[len(el):].replace(".", "", 1).isdigit():
            return float(token[len(el):])
    return 0.0
