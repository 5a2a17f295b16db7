"""Calculations: composition -> structure -> relax -> static -> properties, tagged ``computed``.

Public face (what the campaign and the CLI use)::

    get_method(name) -> Method          registry from configs/calculators.yaml: emt, gpaw, qe, chgnet
        Method.fidelity, .elements, .settings, .supports(composition),
        .unsupported(composition), .cost_core_seconds(n_atoms)
    unavailable_reason(method) -> None | why its code cannot run here
    method_names() -> list[str]
    calculate(composition, method="emt", settings=None, properties=None, seed=0,
              workdir=None, cores=1, task_id=None, campaign=None) -> CalcResult | CalcFailure
        never raises for a calculation that goes wrong; ``outcome.ok`` tells which.
    CalcResult     properties (list[PropertyValue], canonical units), settings, input_hash,
                   structure (pymatgen dict), code/version, host, cores, wall_time_s, ...
    CalcFailure    kind (FailureKind), reason, output_tail, exit_code
    result_to_record(result, campaign=None, task_id=None, job_id=None, material_class=None) -> MaterialRecord
        source=computed; same composition + method + settings + seed -> same record_id
    write_task(workdir, composition, method, settings, properties, seed, cores, task_id,
               campaign) -> Path to task.json
    worker_argv(task_path) -> argv for a runner:  python -m dm_hpc.compute.worker task.json
    read_result(path or run folder) -> CalcResult | CalcFailure   (missing file -> failure)
    DEFAULT_PROPERTIES, CALCULATED_PROPERTIES, ANALYTIC_PROPERTIES
    analytic_properties(composition) -> {name: value}   cost, mixing entropy, delta, VEC

Units: energies eV/atom, lengths angstrom, volumes angstrom**3/atom, density g/cm**3, bulk
modulus GPa, cost USD/kg, entropy J/(mol K), size mismatch percent (the data vocabulary's).
Computed values are rounded to 8 significant digits so float noise never changes a record id.
"""
from __future__ import annotations

from dm_hpc._lazy import lazy_exports

#: Public name -> the module that defines it. Imported on first use (PEP 562): the calculation
#: side (ASE's builders, scipy) is heavy, and `dm-hpc validate` needs only the method registry.
_WHERE = {
    "CALCULATED_PROPERTIES": "dm_hpc.compute.methods",
    "DEFAULT_PROPERTIES": "dm_hpc.compute.calculation",
    "calculate": "dm_hpc.compute.calculation",
    "input_hash": "dm_hpc.compute.calculation",
    "reference_energy": "dm_hpc.compute.calculation",
    "ANALYTIC_PROPERTIES": "dm_hpc.compute.descriptors",
    "analytic_properties": "dm_hpc.compute.descriptors",
    "CalcError": "dm_hpc.compute.failures",
    "CalcFailure": "dm_hpc.compute.failures",
    "FailureKind": "dm_hpc.compute.failures",
    "Method": "dm_hpc.compute.methods",
    "UnknownMethodError": "dm_hpc.compute.methods",
    "get_method": "dm_hpc.compute.methods",
    "method_names": "dm_hpc.compute.methods",
    "CalcResult": "dm_hpc.compute.results",
    "CalcTask": "dm_hpc.compute.results",
    "RESULT_FILE": "dm_hpc.compute.results",
    "TASK_FILE": "dm_hpc.compute.results",
    "read_result": "dm_hpc.compute.results",
    "read_task": "dm_hpc.compute.results",
    "result_to_record": "dm_hpc.compute.results",
    "worker_argv": "dm_hpc.compute.results",
    "write_result": "dm_hpc.compute.results",
    "write_task": "dm_hpc.compute.results",
    "build_structure": "dm_hpc.compute.structures",
    "unavailable_reason": "dm_hpc.compute.backends",
}

__all__ = [
    "ANALYTIC_PROPERTIES", "CALCULATED_PROPERTIES", "DEFAULT_PROPERTIES", "RESULT_FILE", "TASK_FILE",
    "CalcError", "CalcFailure", "CalcResult", "CalcTask", "FailureKind", "Method", "UnknownMethodError",
    "analytic_properties", "build_structure", "calculate", "get_method", "input_hash", "method_names",
    "read_result", "read_task", "reference_energy", "result_to_record", "worker_argv", "write_result",
    "unavailable_reason", "write_task",
]


__getattr__, __dir__ = lazy_exports(globals(), _WHERE, __all__)
