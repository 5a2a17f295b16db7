"""The data standard and the HDF5 store (imports none of dm-hpc's other packages).

Public face::

    Composition, Basis                     compositions on any basis, canonical atomic fractions
    MaterialRecord, PropertyValue, ProcessStep, RawMaterial, Provenance, Source, MaterialClass
    Store, open_store, IngestResult, CheckReport, StoreError, StoreLockedError, StoreCorruptError
    canonical_unit, to_canonical, with_unit, property_names, UnitError, UnknownPropertyError, RangeError
    readable_unit                          the one form a unit is shown to people in (g/cm^3)
    ELEMENTS, is_element, unknown_element  element symbols; the refusal of one (with the symbol meant: pt -> Pt)
    descriptors.composition_descriptors      alloy descriptors (entropy, size mismatch, VEC...), one definition
    read_sheet, write_sheet, SheetError      lab sheets (CSV/XLSX) in the standard template
    Verdict, Decision                        per-cell/row decisions on a returned sheet (accepted/held/refused)
"""
from __future__ import annotations

from dm_hpc._lazy import lazy_exports

#: Public name -> the module that defines it. Imported on first use (PEP 562): importing
#: the package must stay cheap, because small commands (``dm-hpc status``) touch it.
_WHERE = {
    "Basis": "dm_hpc.data.composition",
    "Composition": "dm_hpc.data.composition",
    "CompositionError": "dm_hpc.data.composition",
    "ELEMENTS": "dm_hpc.data.elements",
    "atomic_mass": "dm_hpc.data.elements",
    "is_element": "dm_hpc.data.elements",
    "unknown_element": "dm_hpc.data.elements",
    "MaterialClass": "dm_hpc.data.records",
    "MaterialRecord": "dm_hpc.data.records",
    "ProcessStep": "dm_hpc.data.records",
    "PropertyValue": "dm_hpc.data.records",
    "Provenance": "dm_hpc.data.records",
    "Quantity": "dm_hpc.data.records",
    "RawMaterial": "dm_hpc.data.records",
    "Source": "dm_hpc.data.records",
    "CheckReport": "dm_hpc.data.recovery",
    "IngestResult": "dm_hpc.data.store",
    "Store": "dm_hpc.data.store",
    "StoreCorruptError": "dm_hpc.data.store",
    "StoreError": "dm_hpc.data.store",
    "StoreLockedError": "dm_hpc.data.store",
    "open_store": "dm_hpc.data.store",
    "RangeError": "dm_hpc.data.vocabulary",
    "UnitError": "dm_hpc.data.vocabulary",
    "UnknownPropertyError": "dm_hpc.data.vocabulary",
    "canonical_unit": "dm_hpc.data.vocabulary",
    "process_parameter_names": "dm_hpc.data.vocabulary",
    "property_names": "dm_hpc.data.vocabulary",
    "to_canonical": "dm_hpc.data.vocabulary",
    "with_unit": "dm_hpc.data.vocabulary",
    "readable_unit": "dm_hpc.data.units",
    "Decision": "dm_hpc.data.verdicts",
    "Verdict": "dm_hpc.data.verdicts",
}

__all__ = [
    "ELEMENTS", "Basis", "CheckReport", "Composition", "CompositionError", "Decision", "IngestResult",
    "MaterialClass", "MaterialRecord", "ProcessStep", "PropertyValue", "Provenance", "Quantity",
    "RangeError", "RawMaterial", "Source", "Store", "StoreCorruptError", "StoreError", "StoreLockedError",
    "UnitError", "UnknownPropertyError", "Verdict", "atomic_mass", "canonical_unit", "is_element",
    "open_store", "process_parameter_names", "property_names", "readable_unit", "to_canonical", "unknown_element", "with_unit",
]


__getattr__, __dir__ = lazy_exports(globals(), _WHERE, __all__)
