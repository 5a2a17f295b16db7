"""An emulated lab for offline benchmarks: answers lab batches from a table of measurements.

Beside the lab hand-off (``lab.py``) because it plays the lab's part of it: a suggested sample
gets the table's measurement of that composition (replicates averaged, as the benchmark protocol
does), as an ``experimental`` record under the sample's id; a composition the table never
measured is a sample the lab "could not make".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from dm_hpc.acquire.points import point_key
from dm_hpc.data import MaterialRecord


class EmulatedLab:
    """Measurements of ``table`` (read with ``column_map``), by composition."""

    def __init__(self, lab_name: str, campaign: str, table: Path, column_map: Path | None = None,
                 material_class: str = "metal") -> None:
        from dm_hpc.data.sheets import read_sheet

        self.lab_name, self.campaign, self.table = lab_name, campaign, table
        self.material_class = material_class  # the campaign's: its answers are its measurements
        #: one line per sample whose table value its class's range refuses (a computed ceramic
        #: table answering for a metal campaign): not answered, as a real lab's impossible value is
        self.refused: list[str] = []
        self._by_key: dict[tuple, list[MaterialRecord]] = {}
        records = read_sheet(table, column_map=column_map)
        # a table of computed and measured rows (band gaps: DFT and experiment) answers as a lab
        # does, with its measurements only; a table without measured rows answers with all
        measured = [r for r in records if r.provenance.source.value == "experimental"]
        for rec in measured or records:
            if rec.composition is not None:
                self._by_key.setdefault(point_key(rec.composition.fractions, {})[0], []).append(rec)

    def answer(self, samples: list[dict[str, Any]]) -> list[MaterialRecord]:
        """Records for the samples the table measured (``sample_id``, ``composition`` each)."""
        out = []
        for sample in samples:
            hits = self._by_key.get(point_key(sample["composition"], {})[0], [])
            if not hits:
                continue
            props: dict[str, list[float]] = {}
            for rec in hits:
                for p in rec.properties:
                    props.setdefault(p.name, []).append(p.value)
            try:
                out.append(MaterialRecord.model_validate({
                    "material_class": self.material_class,
                    "composition": sample["composition"], "sample_id": sample["sample_id"],
                    "properties": [{"name": k, "value": float(np.mean(v))} for k, v in props.items()],
                    "provenance": {"source": "experimental", "method": self.lab_name, "campaign": self.campaign,
                                   "extra": {"emulated_from": str(self.table)}},
                }))
            except ValidationError as exc:
                why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                self.refused.append(f"warning: emulated lab: sample {sample['sample_id']!r} not answered: {why}")
        return out
