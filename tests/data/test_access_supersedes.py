"""A record that supersedes another (a correction, a completion of a lab sample) keeps the level of
what it supersedes: a review found an embargoed portal measurement read at consortium level once
the lab completed the sample through ``dm-hpc ingest`` (the new id took the default level)."""
from datetime import date

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data.access import AccessLevel, AccessMap, AccessRule


def _record(value: float, supersedes: list[str] | None = None) -> MaterialRecord:
    prov = {"source": "experimental", "method": "lab-sheet", **({"supersedes": supersedes} if supersedes else {})}
    return MaterialRecord.model_validate({"composition": {"Cu": 0.5, "Ni": 0.5},
                                          "properties": [{"name": "hardness", "value": value}], "provenance": prov})


def test_a_correction_keeps_the_embargo_of_what_it_corrects(tmp_path):
    embargo = AccessRule(AccessLevel.embargoed, date(2099, 6, 30))
    with Store.open(tmp_path / "s", "a") as store:
        first = store.ingest([_record(3.1)]).ids[0]
        AccessMap(tmp_path / "s").set([first], embargo)
        second = store.ingest([_record(3.2, [first])]).ids[0]
        third = store.ingest([_record(3.3, [second])]).ids[0]  # down a chain of corrections
    rules = AccessMap(tmp_path / "s").rules()
    assert rules[second] == embargo and rules[third] == embargo
    assert not any(AccessMap(tmp_path / "s").readable([second, third], AccessLevel.consortium))


def test_the_stricter_rule_wins_and_an_open_record_stays_open(tmp_path):
    amap = AccessMap(tmp_path / "s")
    with Store.open(tmp_path / "s", "a") as store:
        a, b = store.ingest([_record(1.0), _record(2.0)]).ids
        amap.set([a], AccessRule(AccessLevel.embargoed, date(2099, 1, 1)))
        amap.set([b], AccessRule(AccessLevel.embargoed, date(2100, 1, 1)))
        merged = store.ingest([_record(1.5, [a, b])]).ids[0]
        opened = store.ingest([_record(4.0)]).ids[0]
        amap.set([opened], AccessRule(AccessLevel.public))
        fix = store.ingest([_record(4.1, [opened])]).ids[0]
    rules = amap.rules()
    assert rules[merged] == AccessRule(AccessLevel.embargoed, date(2100, 1, 1))  # the later end
    assert fix not in rules  # nothing stricter to keep: the default level, as any new record


def test_a_completion_through_store_import_keeps_the_embargo(tmp_path):
    """``dm-hpc store import`` resolves a resent row into a completion in column form
    (``Store.ingest_columns``): the new record went in without a label (a second review)."""
    import pandas as pd

    from tests.campaign.helpers import dm

    rec = MaterialRecord.model_validate({"composition": {"Cu": 0.5, "Ni": 0.5}, "sample_id": "S-1",
                                         "properties": [{"name": "hardness", "value": 3.1}],
                                         "provenance": {"source": "experimental", "method": "lab", "campaign": "x"}})
    store = tmp_path / "store"
    with Store.open(store, "a") as s:
        first = s.ingest([rec]).ids[0]
    AccessMap(store).set([first], AccessRule(AccessLevel.embargoed, date(2099, 1, 1)))
    res = dm("store", "export", str(tmp_path / "out.csv"), "--store", str(store), "--access-level", "embargoed")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(tmp_path / "out.csv")
    table["property:density [g/cm^3]"] = 8.9
    table.to_csv(tmp_path / "complete.csv", index=False)
    res = dm("store", "import", str(tmp_path / "complete.csv"), "--store", str(store), "--campaign", "x", "--method", "lab")
    assert res.returncode == 0, res.stderr
    current = list(Store.open(store, "r").to_dataframe()["record_id"])
    assert current and first not in current
    assert not any(AccessMap(store).readable(current, AccessLevel.consortium))


def test_a_record_merging_restricted_and_embargoed_data_stays_restricted_after_the_embargo(tmp_path):
    """It took the embargo (the stricter today), and on the embargo's last day + 1 the restricted
    record's content was public (found by review). The rule now says where an embargo falls to:
    embargoed until its end, restricted after; read by its level's names in the access file."""
    amap = AccessMap(tmp_path / "s")
    with Store.open(tmp_path / "s", "a") as store:
        a, b = store.ingest([_record(1.0), _record(2.0)]).ids
        amap.set([a], AccessRule(AccessLevel.restricted))
        amap.set([b], AccessRule(AccessLevel.embargoed, date(2099, 1, 1)))
        merged = store.ingest([_record(1.5, [a, b])]).ids[0]
    rule = AccessMap(tmp_path / "s").rules()[merged]
    assert rule.effective(date(2098, 12, 31)) is AccessLevel.embargoed
    assert rule.effective(date(2099, 1, 2)) is AccessLevel.restricted
    assert not AccessMap(tmp_path / "s").readable([merged], AccessLevel.consortium, today=date(2100, 1, 1))[0]
    ended = AccessRule(AccessLevel.embargoed, date(2099, 1, 1))
    assert ended.effective(date(2099, 1, 2)) is AccessLevel.public  # a plain embargo opens, as before


def test_a_record_with_its_own_embargo_falls_to_what_it_supersedes(tmp_path):
    """The portal labels a completion with the form's embargo before ``inherit`` runs: a later
    embargo of its own kept ``then`` public, over a restricted record it completed (second review)."""
    amap = AccessMap(tmp_path / "s")
    with Store.open(tmp_path / "s", "a") as store:
        old = store.ingest([_record(1.0)]).ids[0]
        amap.set([old], AccessRule(AccessLevel.restricted))
        new = store.ingest([_record(1.1)]).ids[0]
        amap.set([new], AccessRule(AccessLevel.embargoed, date(2099, 1, 1)))
        assert amap.inherit({new: [old]}) == 1
    rule = AccessMap(tmp_path / "s").rules()[new]
    assert (rule.until, rule.effective(date(2099, 1, 2))) == (date(2099, 1, 1), AccessLevel.restricted)
