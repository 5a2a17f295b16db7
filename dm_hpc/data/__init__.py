"""The data standard and the HDF5 store (imports none of dm-hpc's other packages).

Public face::

    Composition, Basis                     compositions on any basis, canonical atomic fractions
    MaterialRecord, PropertyValue, ProcessStep, RawMaterial, Provenance, Source, MaterialClass
    Store, open_store, IngestResult, CheckReport, StoreError, StoreLockedError, StoreCorruptError
    canonical_unit, to_canonical, property_names, UnitError, UnknownPropertyError, RangeError
    ELEMENTS, is_element
    descriptors.composition_descriptors      alloy descriptors (entropy, size mismatch, VEC...), one definition
    read_sheet, write_sheet, SheetError      lab sheets (CSV/XLSX) in the standard template
"""
from dm_hpc.data.composition import Basis, Composition, CompositionError
from dm_hpc.data.elements import ELEMENTS, atomic_mass, is_element
from dm_hpc.data.records import (
    MaterialClass,
    MaterialRecord,
    ProcessStep,
    PropertyValue,
    Provenance,
    Quantity,
    RawMaterial,
    Source,
)
from dm_hpc.data.store import (
    CheckReport,
    IngestResult,
    Store,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    open_store,
)
from dm_hpc.data.vocabulary import (
    RangeError,
    UnitError,
    UnknownPropertyError,
    canonical_unit,
    process_parameter_names,
    property_names,
    to_canonical,
)

__all__ = [
    "ELEMENTS", "Basis", "CheckReport", "Composition", "CompositionError", "IngestResult",
    "MaterialClass", "MaterialRecord", "ProcessStep", "PropertyValue", "Provenance", "Quantity",
    "RangeError", "RawMaterial", "Source", "Store", "StoreCorruptError", "StoreError", "StoreLockedError",
    "UnitError", "UnknownPropertyError", "atomic_mass", "canonical_unit", "is_element",
    "open_store", "process_parameter_names", "property_names", "to_canonical",
]
