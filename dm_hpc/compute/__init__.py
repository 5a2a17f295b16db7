"""Calculations: composition -> structure -> relax -> static -> properties, tagged ``computed``.

Public face (what the campaign and the CLI use)::

    get_method(name) -> Method          registry from configs/calculators.yaml: emt, gpaw, qe, chgnet
        Method.fidelity, .elements, .settings, .supports(composition),
        .unsupported(composition), .cost_core_seconds(n_atoms), .available() -> None | reason
    method_names() -> list[str]
    calculate(composition, method="emt", settings=None, properties=None, seed=0,
              workdir=None, cores=1, task_id=None, campaign=None) -> CalcResult | CalcFailure
        never raises for a calculation that goes wrong; ``outcome.ok`` tells which.
    CalcResult     properties (list[PropertyValue], canonical units), settings, input_hash,
                   structure (pymatgen dict), code/version, host, cores, wall_time_s, ...
    CalcFailure    kind (FailureKind), reason, output_tail, exit_code
    result_to_record(result, campaign=None, task_id=None, job_id=None) -> MaterialRecord
        source=computed; same composition + method + settings + seed -> same record_id
    write_task(workdir, composition, method, settings, properties, seed, cores, task_id,
               campaign) -> Path to task.json
    worker_argv(task_path) -> argv for a runner:  python -m dm_hpc.compute.worker task.json
    read_result(path or run folder) -> CalcResult | CalcFailure   (missing file -> failure)
    DEFAULT_PROPERTIES, CALCULATED_PROPERTIES, ANALYTIC_PROPERTIES
    analytic_properties(composition) -> {name: value}   cost, mixing entropy, delta, VEC

Units: energies eV/atom, lengths angstrom, volumes angstrom**3/atom, density g/cm**3, bulk
modulus GPa, cost USD/kg, entropy J/(mol*K), size mismatch percent (the data vocabulary's).
Computed values are rounded to 8 significant digits so float noise never changes a record id.
"""
from dm_hpc.compute.calculation import (
    CALCULATED_PROPERTIES,
    DEFAULT_PROPERTIES,
    calculate,
    input_hash,
    reference_energy,
)
from dm_hpc.compute.descriptors import ANALYTIC_PROPERTIES, analytic_properties
from dm_hpc.compute.failures import CalcError, CalcFailure, FailureKind
from dm_hpc.compute.methods import Method, UnknownMethodError, get_method, method_names
from dm_hpc.compute.results import (
    RESULT_FILE,
    TASK_FILE,
    CalcResult,
    CalcTask,
    read_result,
    read_task,
    result_to_record,
    worker_argv,
    write_result,
    write_task,
)
from dm_hpc.compute.structures import build_structure

__all__ = [
    "ANALYTIC_PROPERTIES", "CALCULATED_PROPERTIES", "DEFAULT_PROPERTIES", "RESULT_FILE", "TASK_FILE",
    "CalcError", "CalcFailure", "CalcResult", "CalcTask", "FailureKind", "Method", "UnknownMethodError",
    "analytic_properties", "build_structure", "calculate", "get_method", "input_hash", "method_names",
    "read_result", "read_task", "reference_energy", "result_to_record", "worker_argv", "write_result",
    "write_task",
]
