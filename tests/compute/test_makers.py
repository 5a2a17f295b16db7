"""Bring your own Maker (issue 20 item 5): a jobflow Maker as a calculation, through the worker."""
from __future__ import annotations

import importlib.metadata
import subprocess

import pytest

from dm_hpc.compute import FailureKind, calculate, read_result, result_to_record, worker_argv, write_task

# the project's own relax recipe as a Maker: its output is {"structure", "energy" (eV, cell), "steps"}
OWN_RELAX = {"maker": "workflows.alloy:RelaxMaker", "kwargs": {"method": "emt"}, "energy": "energy",
             "outputs": {"energy_per_atom": {"path": "energy", "unit": "eV/atom", "per_atom": True},
                         "volume_per_atom": {"path": "structure.lattice.volume", "unit": "angstrom**3/atom",
                                             "per_atom": True}}}


def _run(tmp_path, maker, composition=None, **task):
    path = write_task(tmp_path, composition or {"Cu": 0.5, "Ni": 0.5}, method=task.pop("method", "emt"),
                      settings={"n_atoms": 4}, properties=["energy_per_atom", "volume_per_atom"], seed=1,
                      task_id="m1", maker=maker)
    proc = subprocess.run(worker_argv(path), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_result(tmp_path)


def test_the_projects_relax_recipe_as_a_maker_gives_the_recipes_numbers(tmp_path):
    result = _run(tmp_path, OWN_RELAX)
    assert result.ok, result
    builtin = calculate({"Cu": 0.5, "Ni": 0.5}, "emt", {"n_atoms": 4}, ["energy_per_atom", "volume_per_atom"], seed=1)
    got, want = result.property_dict(), builtin.property_dict()
    # the same cell (same seed) relaxed by the same step function: the same energy and volume
    assert got["energy_per_atom"] == pytest.approx(want["energy_per_atom"], abs=1e-6)
    assert got["volume_per_atom"] == pytest.approx(want["volume_per_atom"], rel=1e-6)
    record = result_to_record(result)
    assert record.provenance.method == "maker:RelaxMaker@emt"  # never mixed with the recipe's own records
    assert record.provenance.code == "workflows.alloy:RelaxMaker"
    assert record.provenance.extra["versions"]["jobflow"] == importlib.metadata.version("jobflow")
    assert record.provenance.extra["settings"]["maker_kwargs"] == {"method": "emt"}


@pytest.mark.parametrize("change, kind, words", [
    ({"maker": "workflows.alloy:NoSuchMaker"}, FailureKind.invalid_task, "workflows.alloy has no NoSuchMaker"),
    ({"maker": "no_such_package.jobs:X"}, FailureKind.invalid_task, "cannot import no_such_package.jobs"),
    ({"kwargs": {"methd": "emt"}}, FailureKind.invalid_task, "bad keyword arguments ['methd']"),
    ({"outputs": {"energy_per_atom": {"path": "output.energy"}}}, FailureKind.invalid_task,
     "no 'output' at the top of the output document"),
    ({"kwargs": {"method": "emt", "settings": {"relax_steps": 1}}}, FailureKind.code_died, "relax_step_limit"),
])
def test_a_maker_that_cannot_run_or_be_read_is_a_typed_failure_that_says_why(tmp_path, change, kind, words):
    out = _run(tmp_path, {**OWN_RELAX, **change})
    assert not out.ok and out.kind is kind, out
    assert words in out.reason, out.reason


def test_an_element_outside_the_cell_recipe_is_refused_before_the_maker_runs(tmp_path):
    out = _run(tmp_path, OWN_RELAX, composition={"Fe": 0.5, "Ni": 0.5})
    assert not out.ok and out.kind is FailureKind.unsupported_element and "Fe" in out.reason


def test_object_keyword_arguments_are_written_as_mson_dicts():
    """A VASP input-set generator or a sub-Maker is a dict with "@module"/"@class" in the campaign file."""
    from dm_hpc.compute.makers import MakerSpec, load_maker
    from workflows import AlloyPropertiesMaker, RelaxMaker

    spec = MakerSpec(maker="workflows.alloy:AlloyPropertiesMaker", outputs={"energy_per_atom": "energy"},
                     kwargs={"relax_maker": {"@module": "workflows.alloy", "@class": "RelaxMaker",
                                             "name": "loose relax", "settings": {"relax_fmax": 0.5}}})
    maker = load_maker(spec)
    assert isinstance(maker, AlloyPropertiesMaker) and isinstance(maker.relax_maker, RelaxMaker)
    assert maker.relax_maker.settings == {"relax_fmax": 0.5} and maker.relax_maker.name == "loose relax"
