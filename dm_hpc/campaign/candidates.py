"""The candidate pool of a pool campaign (``space.pool``), read once per version of the file.

Apart from ``strategy`` so that ``dm-hpc validate`` can list a pool's elements without importing
the acquisition (BoTorch, torch: seconds of CPU).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dm_hpc.campaign.spec import CampaignSpec


def pool_table(path: Path, column_map: Path | None) -> tuple[tuple[tuple[tuple[str, float], ...], ...], tuple[str, ...]]:
    """``(compositions, elements)`` of a pool sheet: unique compositions in sheet order (each
    as sorted ``(element, atomic fraction)`` pairs; property columns are optional and not read)
    and the sorted elements they use. Read once
    per version of the pool and its map: an edited pool is read again (a new model version)."""
    stamps = tuple(_stamp(p) for p in (path, column_map))
    return _pool_table(Path(path), column_map, stamps)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """A file's version as (modification time in ns, size); None for no or a missing file."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:  # read_sheet says what is wrong with it
        return None
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4)
def _pool_table(path: Path, column_map: Path | None, stamps: tuple) -> tuple[tuple[tuple[tuple[str, float], ...], ...], tuple[str, ...]]:
    from dm_hpc.data.sheets import read_candidates

    # every row a candidate, measured or not (read as measurements, rows without a value were left out)
    comps = list(dict.fromkeys(tuple(c.fractions.items())  # unique, in order
                               for c in read_candidates(path, column_map)))
    elements = tuple(sorted({el for c in comps for el, _ in c}))
    return tuple(comps), elements


def pool_compositions(campaign: CampaignSpec) -> list[dict[str, float]]:
    """The unique candidate compositions of a pool campaign (replicates collapse to one)."""
    comps, _ = pool_table(campaign.space.pool, campaign.space.pool_map)
    return [dict(c) for c in comps]
