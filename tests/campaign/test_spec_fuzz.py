"""Fuzzed campaign files: always a ``CampaignError`` that names the file, never a traceback.

Also: the committed ``campaigns/schema.json`` is the schema the model generates.
"""
from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dm_hpc.campaign import CampaignSpec, CampaignError, json_schema, load_campaign, parse_campaign
from dm_hpc.campaign import spec
from tests.conftest import REPO

DEMO = yaml.safe_load((REPO / "campaigns" / "hea-demo.yaml").read_text())
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ORIGIN = "fuzzed/campaign.yaml"
YAML_TRAPS = [
    "name: [", "a: 2001-02-30", "a: !!float abc", "a: !!int x", "a: !!binary xyz", "a: !!python/object foo",
    "[" * 3000 + "]" * 3000, "- " * 3000, "&a [*a]", "? [a, b]\n: c", "name: x\nname: y", "\t- a", "%YAML 9.9\n---\na",
]
UNIT_TRAPS = ["]", "'{:", "?v/0T", "<,Np4", "B0", "(", "1/0", "eV/", "**", "eV/atom/", "%%", "°", "\x00"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "eV/atom", "g/cm3", "furlongs", "Xx", "Unobtainium", "5m",
                                           "-3", "1e400", "nan", "density <= 12 g/cm3", "<= 3", "gp"]),
)
yamlish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10) | st.sampled_from(list(DEMO)), inner, max_size=5),
    max_leaves=20,
)


def check(data) -> CampaignSpec | None:
    """Parse ``data``: a Campaign, or a CampaignError naming the file; anything else fails the test."""
    try:
        return parse_campaign(data, ORIGIN)
    except CampaignError as exc:
        assert str(exc).startswith(ORIGIN), str(exc)
        return None


def at(data, path):
    for p in path[:-1]:
        data = data[p]
    return data, path[-1]


def paths(data, prefix=()):
    """Every key path in a nested mapping/list."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield prefix + (k,)
            yield from paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield prefix + (i,)
            yield from paths(v, prefix + (i,))


ALL_PATHS = list(paths(DEMO))
KNOWN_FIELDS = {name for cls in (spec.CampaignSpec, spec.SpaceSpec, spec.ObjectiveSpec, spec.FidelitySpec,
                                 spec.BudgetSpec, spec.StoppingSpec, spec.RunnerSpec, spec.LearningSpec,
                                 spec.BoundSpec, spec.ConstraintSpec) for name in cls.model_fields}
DICT_PATHS = [()] + [p for p in ALL_PATHS if isinstance(at(DEMO, p)[0][at(DEMO, p)[1]], dict)]


def test_demo_is_valid():
    assert isinstance(parse_campaign(copy.deepcopy(DEMO), ORIGIN), CampaignSpec)


@FUZZ
@given(yamlish)
def test_random_documents(data):
    check(data)


@FUZZ
@given(yamlish.filter(lambda d: isinstance(d, dict)))
def test_random_mappings_over_the_demo(extra):
    check({**copy.deepcopy(DEMO), **extra})


@FUZZ
@given(st.sampled_from(ALL_PATHS))
def test_dropped_field(path):
    data = copy.deepcopy(DEMO)
    parent, key = at(data, path)
    del parent[key]
    check(data)


@FUZZ
@given(st.sampled_from(ALL_PATHS), yamlish)
def test_wrong_value_anywhere(path, value):
    data = copy.deepcopy(DEMO)
    parent, key = at(data, path)
    parent[key] = value
    check(data)


@FUZZ
@given(st.sampled_from(DICT_PATHS), st.text(min_size=1, max_size=12), yamlish)
def test_unknown_key_anywhere(path, key, value):
    data = copy.deepcopy(DEMO)
    target = data
    if path:
        parent, k = at(data, path)
        target = parent[k]
    assume(key not in target and key not in KNOWN_FIELDS)  # an optional field is not unknown
    target[key] = value
    # every model forbids extra fields, except free-form calculator settings
    if "settings" in path:
        return
    assert check(data) is None


@FUZZ
@given(st.sampled_from(["objectives", "constraints"]), st.text(max_size=15) | st.sampled_from(UNIT_TRAPS))
def test_bad_units(where, unit):
    data = copy.deepcopy(DEMO)
    if where == "objectives":
        data["objectives"][0]["unit"] = unit
    else:
        data["constraints"] = [f"density <= 12 {unit}"]
    check(data)


@FUZZ
@given(st.text(min_size=1, max_size=4), st.floats(-2, 2), st.floats(-2, 2))
def test_element_bounds(symbol, low, high):
    data = copy.deepcopy(DEMO)
    data["space"]["elements"][symbol] = [low, high]
    result = check(data)
    if low < 0 or high > 1 or low > high:
        assert result is None  # negative or inverted bounds are refused
    from dm_hpc.data import is_element

    if not is_element(symbol):
        assert result is None  # unknown elements are refused


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_garbage_text_files(tmp_path, text):
    path = tmp_path / "garbage.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_campaign(path)
    except CampaignError as exc:
        assert str(exc).startswith(str(path)), str(exc)


@FUZZ
@given(st.binary(max_size=200))
def test_garbage_bytes_files(tmp_path, blob):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(blob)
    try:
        load_campaign(path)
    except CampaignError as exc:
        assert str(exc).startswith(str(path)), str(exc)


@pytest.mark.parametrize("text", YAML_TRAPS)
def test_yaml_traps(tmp_path, text):
    path = tmp_path / "trap.yaml"
    path.write_text(text)
    with pytest.raises(CampaignError, match=str(path)):
        load_campaign(path)


@pytest.mark.parametrize("unit", UNIT_TRAPS)
def test_unit_traps(unit):
    """Units that make pint's parser raise TokenError, ZeroDivisionError, KeyError, ..."""
    for data in ({**DEMO, "objectives": [{"property": "mixing_energy", "goal": "min", "unit": unit}]},
                 {**DEMO, "constraints": [f"density <= 12 {unit}"]}):
        with pytest.raises(CampaignError, match=ORIGIN):
            parse_campaign(copy.deepcopy(data), ORIGIN)


def test_unreadable_files(tmp_path):
    for path in (tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(CampaignError, match=str(path)):
            load_campaign(path)


@FUZZ
@given(
    seed=st.integers(0, 2**31),
    name=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,47}\Z"),
    hi=st.floats(0.3, 1.0),
    unit=st.sampled_from(["eV/atom", "meV/atom", None]),
    calculations=st.integers(1, 10**6),
    max_in_flight=st.integers(1, 512),
    walltime=st.sampled_from(["90s", "5m", "5 min", "2h", "1d", 600, 3.5]),
)
def test_valid_mutations_load(tmp_path, seed, name, hi, unit, calculations, max_in_flight, walltime):
    data = copy.deepcopy(DEMO)
    data.update(seed=seed, name=name)
    data["space"]["elements"]["Cu"] = [0.0, hi]
    data["objectives"][0]["unit"] = unit
    data["budget"]["calculations"] = calculations
    data["runner"]["max_in_flight"] = max_in_flight
    data["fidelities"][0]["walltime"] = walltime
    data = dict(reversed(list(data.items())))  # key order does not matter
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(data))
    c = load_campaign(path)
    assert c.name == name and c.seed == seed and c.budget.calculations == calculations


def test_committed_schema_is_current():
    committed = (REPO / "campaigns" / "schema.json").read_text()
    assert committed.strip() == json_schema().strip(), "run: python -c \"from dm_hpc.campaign import json_schema; open('campaigns/schema.json','w').write(json_schema()+'\\n')\""
