"""Calculation recipes as jobflow Makers (atomate2 style): structure -> relax -> static -> properties.

Each Maker is a dataclass with a ``name`` and a ``make()`` returning a jobflow ``Job`` or
``Flow``; settings are fields, so a recipe is configured by copying it with other fields and
serialises to JSON. The jobs call the same step functions as ``dm_hpc.compute.calculate`` (the
one implementation), so a flow run by any jobflow manager gives the same properties::

    from jobflow import run_locally
    from workflows import AlloyPropertiesMaker
    flow = AlloyPropertiesMaker(method="emt").make({"Al": 0.25, "Cu": 0.25, "Ni": 0.25, "Pd": 0.25})
    responses = run_locally(flow, ensure_success=True)
    props = responses[flow.output.uuid][1].output["properties"]

The built-in recipe does not reuse atomate2's own ``AseRelaxMaker``/``ForceFieldRelaxMaker``:
they relax with other optimiser settings than ``calculate`` (two code paths, two answers) and
atomate2 has no QE or GPAW Makers. A campaign may still run any Maker — these, atomate2's
force-field or VASP Makers — as a calculation fidelity (``maker:`` in the campaign file,
``dm_hpc.compute.makers``); e.g. ``workflows.alloy:RelaxMaker`` with ``kwargs: {method: emt}``.
"""
from workflows.alloy import (
    AlloyPropertiesMaker,
    AlloyStructureMaker,
    CalculatorStepMaker,
    PropertiesMaker,
    RelaxMaker,
    StaticMaker,
)

__all__ = ["AlloyPropertiesMaker", "AlloyStructureMaker", "CalculatorStepMaker", "PropertiesMaker", "RelaxMaker", "StaticMaker"]
