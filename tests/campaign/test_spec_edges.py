"""Campaign files a user-edge pass found accepted by ``validate`` and failing, or silently
changed, later: each is now refused by ``load_campaign`` / preflight with the field named."""
from __future__ import annotations

import pytest
import yaml

from dm_hpc.campaign import CampaignError, load_campaign
from dm_hpc.campaign.preflight import problems

from tests.conftest import REPO

from .helpers import dm, write_campaign


def _refused(path, *words):
    with pytest.raises(CampaignError) as exc:
        load_campaign(path)
    for w in words:
        assert w in str(exc.value), str(exc.value)


def test_a_process_box_below_absolute_zero_is_refused(tmp_path):
    """It validated, the lab sheet asked for -300 degC, and ingest refused the measured rows."""
    space = {"elements": {"Cu": [0, 1], "Ni": [0, 1]},
             "process": {"annealing_temperature": {"low": -400, "high": -300, "unit": "degC"}}}
    _refused(write_campaign(tmp_path, name="cold", space=space),
             "space.process", "annealing_temperature", "outside the physical range")
    space["process"]["annealing_temperature"].update(low=300, high=900)
    c = load_campaign(write_campaign(tmp_path, name="warm", space=space))
    assert c.space.process["annealing_temperature"].low == pytest.approx(573.15)


def test_excluding_every_element_or_an_unknown_one_is_refused(tmp_path):
    """Every element excluded validated and the lab got a sample of all zeros; ``Qq`` was accepted."""
    base = {"elements": {"Cu": [0, 1], "Ni": [0, 1]}}
    _refused(write_campaign(tmp_path, name="none", space={**base, "excluded": ["Cu", "Ni"]}),
             "every element of the space is excluded")
    _refused(write_campaign(tmp_path, name="qq", space={**base, "excluded": ["Qq"]}), "unknown element 'Qq'")
    assert load_campaign(write_campaign(tmp_path, name="one", space={**base, "excluded": ["Ni"]})).space.excluded == ["Ni"]


def test_a_space_that_max_elements_keeps_from_summing_to_one_names_max_elements(tmp_path):
    """max_elements: 1 with every upper bound 0.5 said only 'upper bounds of the allowed elements
    cannot reach a sum of one', though the bounds reach one and max_elements is what stops them."""
    elements = {"Cu": [0, 0.5], "Ni": [0, 0.5], "Pd": [0, 0.4]}
    _refused(write_campaign(tmp_path, name="one", space={"elements": elements, "max_elements": 1}),
             "max_elements = 1", "upper bound 0.5", "raise max_elements to 2")
    # bounds that reach no sum of one with any number of elements say so, without max_elements
    low = {"Cu": [0, 0.3], "Ni": [0, 0.3]}
    with pytest.raises(CampaignError) as exc:
        load_campaign(write_campaign(tmp_path, name="low", space={"elements": low, "max_elements": 1}))
    said = str(exc.value).split("invalid campaign:")[-1]  # the file's path names the test
    assert "upper bounds of the allowed elements sum to 0.6 < 1" in said and "max_elements" not in said, said


def test_an_objective_target_outside_the_physical_range_is_refused(tmp_path):
    """5000 g/cm3 (a value in kg/m3) validated and the run stopped at once, 'objective targets met'."""
    for target in (5000, -5):
        _refused(write_campaign(tmp_path, name=f"t{target}".replace("-", "m"), objectives=[
            {"property": "density", "goal": "min", "unit": "g/cm3", "target": target}]),
            "objectives.0", "target: density", "outside the physical range")
    ok = write_campaign(tmp_path, name="t5", objectives=[{"property": "density", "goal": "min", "unit": "g/cm3", "target": 5}])
    assert load_campaign(ok).objectives[0].canonical_target == 5


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    """YAML keeps the last of two equal keys: the first element bounds or seed vanished silently."""
    path = write_campaign(tmp_path, name="dup")
    text = path.read_text()
    path.write_text(text.replace("seed: 3\n", "seed: 3\nseed: 4\n", 1))
    _refused(path, "key 'seed' is given twice", "line ")
    data = yaml.safe_load(text)
    assert data["seed"] == 3  # the unchanged file loads
    assert load_campaign(write_campaign(tmp_path, name="fine")).seed == 3


def test_a_store_path_holding_something_else_is_refused_at_validate(tmp_path):
    """A file, or a folder of other files, as the store validated and ``run`` then failed with a
    StoreError traceback; a missing or empty folder is a store the first run creates."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    got = {name: problems(load_campaign(write_campaign(tmp_path, name=name.replace("a", "b"), store=str(tmp_path / name))))
           for name in ("afile", "other", "empty", "missing")}
    assert len(got["afile"]) == 1
    assert got["afile"][0].startswith(f"store: {tmp_path / 'afile'} is a file, not a store folder: a store is a folder")
    assert len(got["other"]) == 1 and "holds other files and no store" in got["other"][0]
    assert got["empty"] == [] and got["missing"] == []


def test_every_campaign_command_refuses_a_store_path_that_is_a_file(tmp_path):
    """First-hour review: `report` and `suggest` wrote their output (exit 0) where `validate`,
    `run` and `train` refused such a store."""
    (tmp_path / "afile").write_text("x")
    path = str(write_campaign(tmp_path, name="f", store=str(tmp_path / "afile")))
    said = f"store: {tmp_path / 'afile'} is a file, not a store folder"
    for args in (["validate", path], ["report", path], ["suggest", path], ["suggest", path, "-n", "1"]):
        res = dm(*args)
        assert res.returncode == 2 and said in res.stderr, (args, res.stdout, res.stderr)
    assert not [p for p in (tmp_path / "run").rglob("*") if p.suffix in (".md", ".xlsx")]  # no report, no sheet


def test_store_compact_on_a_mistyped_path_creates_nothing(tmp_path):
    """It printed 'compacted TYPO', exit 0, and left a new empty store there."""
    res = dm("store", "compact", "--store", str(tmp_path / "TYPO"))
    assert res.returncode == 2 and "no store at" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "TYPO").exists()


def test_contradictory_constraints_are_refused(tmp_path):
    """``density <= 12`` and ``density >= 13`` validated (the guide says such constraints are refused)."""
    _refused(write_campaign(tmp_path, name="both", constraints=["density <= 12 g/cm3", "density >= 13 g/cm3"]),
             "constraints on density cannot all be met: >= 13 and <= 12")
    c = load_campaign(write_campaign(tmp_path, name="band", constraints=["density <= 12 g/cm3", "density >= 8 g/cm3"]))
    assert len(c.constraints) == 2


def test_transfer_on_a_campaign_it_cannot_inform_is_refused(tmp_path):
    """A transfer block on a campaign of two properties validated; its sources were never used (the
    model with sources is one of one property). Several fidelities stay allowed: the sources inform
    the model while the records come from one of them."""
    transfer = {"from": [{"campaign": "older"}]}
    _refused(write_campaign(tmp_path, name="props", lab=False, transfer=transfer, constraints=["density <= 12"]),
             "transfer: sources inform a campaign of one property", "2 (mixing_energy, density)")
    assert load_campaign(write_campaign(tmp_path, name="one", lab=False, transfer=transfer)).transfer is not None
    assert load_campaign(write_campaign(tmp_path, name="two", transfer=transfer)).transfer is not None


def test_messages_name_what_is_missing_in_words(tmp_path):
    """A missing site profile was reported twice, once as ``PosixPath('nosuch')``; a pool campaign
    validated as "0 elements"; exporting before any model was registered said "no model version None"."""
    c = load_campaign(write_campaign(tmp_path, name="site", runner={"kind": "slurm", "site": "nosuch"}))
    found = [p for p in problems(c) if p.startswith("runner.site")]
    assert len(found) == 1 and "no site profile 'nosuch'" in found[0] and "PosixPath" not in found[0]
    res = dm("validate", str(REPO / "campaigns" / "bandgap-transfer.yaml"))
    assert res.returncode == 0 and "candidates from bandgap_dft_vs_expt.csv" in res.stdout, res.stderr
    res = dm("models", str(write_campaign(tmp_path, name="untrained")), "--export", str(tmp_path / "m.pt"))
    assert res.returncode != 0 and "no model version is registered yet" in res.stderr + res.stdout
    assert "None" not in res.stderr + res.stdout and not (tmp_path / "m.pt").exists()


def test_merge_keys_load_and_may_be_overridden(tmp_path):
    """The duplicate-key check must not break YAML's merge key (review): ``<<: *defaults`` with a
    key of the defaults given again is an override, not a key given twice."""
    path = write_campaign(tmp_path, name="merge")
    text = path.read_text()
    block = "runner:\n  cores: 2\n  kind: local\n  max_in_flight: 2\n"
    assert block in text
    text = text.replace(block, "runner:\n  <<: &site {kind: local, cores: 2, max_in_flight: 2}\n  cores: 1\n")
    path.write_text(text)
    c = load_campaign(path)
    assert (c.runner.kind.value, c.runner.cores, c.runner.max_in_flight) == ("local", 1, 2)
    path.write_text(text.replace("  cores: 1\n", "  cores: 1\n  cores: 3\n"))
    _refused(path, "key 'cores' is given twice")


def test_a_pool_that_cannot_be_read_is_refused_at_validate(tmp_path):
    """Found by a user-edge pass: a pool table without its pool_map validated and `run` failed on
    it, with some 140 unrecognised column names in one line."""
    from tests.conftest import DATASETS

    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}
    c = load_campaign(write_campaign(tmp_path, name="nomap", space={"pool": str(DATASETS / "bandgap_dft_vs_expt.csv")},
                                     fidelities=[lab], objectives=[{"property": "bandgap", "goal": "max"}],
                                     budget={"lab_experiments": 4}))
    [why] = problems(c)
    assert why.startswith("space.pool: ") and why.endswith("(no pool_map given: name a column map for this table)")
    assert "did you mean 'property:bandgap [eV]'" in why and len(why) < 1200
    from dm_hpc.data.sheets import SheetError, read_sheet

    with pytest.raises(SheetError) as err:
        read_sheet(DATASETS / "bandgap_dft_vs_expt.csv")
    assert " more" in str(err.value) and str(err.value).count("MagpieData") <= 12


def test_init_hints_a_command_that_can_be_pasted(tmp_path):
    """Found by a user-edge pass: for a path with a space the printed `validate` hint was not quoted."""
    out = tmp_path / "my campaigns" / "c.yaml"
    out.parent.mkdir()
    res = dm("init", "alloys", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"`dm-hpc validate '{out}'`" in res.stdout


def test_a_fidelity_cost_is_a_positive_number_without_a_unit(tmp_path):
    """``cost: 0`` and ``cost: -1`` validated, and the fidelity choice divides information gain by
    the cost (0: infinite, or nan where the gain is 0; below 0: never chosen). ``cost: 2 h`` (a
    unit, which the kind fixes) came back as pydantic's two union errors ('cost.float: Input
    should be a valid number', "cost.literal['auto']: Input should be 'auto'")."""
    def lab(cost):
        return [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m"},
                {"name": "lab", "kind": "experiment", "cost": cost, "batch_size": 2}]

    for i, cost in enumerate((0, -1, ".inf")):
        path = write_campaign(tmp_path, name=f"c{i}", lab=False, fidelities=lab(cost))
        path.write_text(path.read_text().replace("'.inf'", ".inf"))  # YAML's infinity, not the text
        _refused(path, "fidelities.1.cost: a number > 0", "lab-days per experiment", "or 'auto'")
    with pytest.raises(CampaignError) as exc:
        load_campaign(write_campaign(tmp_path, name="unit", lab=False, fidelities=lab("2 h")))
    said = str(exc.value)
    assert "fidelities.1.cost: a number > 0 without a unit (lab-days per experiment) or 'auto', not '2 h'" in said
    assert "literal" not in said and "cost.float" not in said, said
    calc = [{"name": "emt", "kind": "calculation", "method": "emt", "walltime": "5m", "cost": "0.5 core-h"}]
    _refused(write_campaign(tmp_path, name="calc", lab=False, fidelities=calc),
             "fidelities.0.cost: a number > 0 without a unit (core-hours per calculation) or 'auto'")
    fine = load_campaign(write_campaign(tmp_path, name="fine", lab=False, fidelities=lab("2")))
    assert fine.fidelities[1].cost == 2.0 and fine.fidelities[1].lab_days == 2.0


def test_element_space_fields_beside_a_pool_are_refused(tmp_path):
    """Found by the semantic campaign fuzz: an oer-catalyst pool with ``excluded: [Ni]`` and an
    annealing_temperature box validated, and ``suggest`` sent the lab Ni-bearing samples and a
    sheet without the temperature: a pool's rows are the candidates as they are, and every field
    of an element space was silently dropped."""
    lab = {"name": "lab", "kind": "experiment", "cost": 1, "batch_size": 2}
    pool = {"pool": str(tmp_path / "pool.csv")}
    for field, value in (("excluded", ["Ni"]), ("max_elements", 3), ("min_elements", 2),
                         ("elements", {"Cu": [0, 1], "Ni": [0, 1]}),
                         ("process", {"annealing_temperature": {"low": 300, "high": 600, "unit": "degC"}})):
        _refused(write_campaign(tmp_path, name=f"pool-{field}", space={**pool, field: value}, fidelities=[lab],
                                objectives=[{"property": "hardness", "goal": "max"}], budget={"lab_experiments": 4}),
                 f"space: {field}: a candidate pool")
    assert load_campaign(write_campaign(tmp_path, name="pool", space=pool, fidelities=[lab],
                                        objectives=[{"property": "hardness", "goal": "max"}],
                                        budget={"lab_experiments": 4})).space.pool is not None
