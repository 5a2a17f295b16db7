"""A level or a clearance as a user types it: one parser (``data.access.parse_level``) behind the
rules that the portal and `dm-hpc access set` take and the store commands' ``--access-level``."""
import pytest
import typer

from dm_hpc.cli.store import _clearance
from dm_hpc.data.access import AccessError, AccessLevel, parse_level, parse_rule


def test_every_level_is_a_clearance_embargoed_too_though_no_rule_without_its_end():
    assert [parse_level(a.value) for a in AccessLevel] == list(AccessLevel)
    assert [_clearance(a.value) for a in AccessLevel] == list(AccessLevel)
    with pytest.raises(AccessError, match="an embargo needs its end date"):
        parse_rule("embargoed")  # why --access-level embargoed cannot go through parse_rule


def test_a_bad_level_is_named_with_the_levels_at_each_door(capsys):
    for parse in (parse_level, parse_rule):
        with pytest.raises(AccessError, match="access level 'secret': expected one of public, consortium, restricted, embargoed"):
            parse("secret")
    with pytest.raises(typer.Exit) as stop:
        _clearance("Public")
    assert stop.value.exit_code == 2
    err = capsys.readouterr().err
    assert "--access-level must be one of public, consortium, restricted, embargoed, not 'Public'" in err
    assert "Traceback" not in err
