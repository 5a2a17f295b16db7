"""Cells a lab types that the reader answered with a bare "not a number" (s36): a typographic
minus (Word's and Excel's autocorrect writes U+2212), a value with its spread ("1.2 ± 0.1"), and
the words labs write for "no value" ("n/a", "-", "nd"). Real files, through every door (CLI
ingest, ``Campaign.add_measurements``, the portal) and ``dm-hpc store import``."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dm_hpc.cli import app
from dm_hpc.data import Store
from dm_hpc.data.sheetfiles import parse_number
from dm_hpc.data.sheets import read_sheet_contents
from tests.data.sheet_doors import Doors
from tests.data.test_sheet_reader import HEADER, every_door, rows, write_csv, write_xlsx

#: The dash-minus forms a lab's software writes in front of a number, with the one typed.
MINUSES = {"\u2212": "minus sign", "\u2012": "figure dash", "\u2013": "en dash", "\ufe63": "small hyphen-minus",
           "\uff0d": "fullwidth hyphen-minus", "\u2010": "hyphen", "\u2011": "non-breaking hyphen"}
ENERGY = ["sample_id", "composition:Cu [at_frac]", "composition:Ni [at_frac]", "property:mixing_energy [eV/atom]",
          "uncertainty:mixing_energy [eV/atom]"]


@pytest.fixture(scope="module")
def doors(tmp_path_factory):
    d = Doors(tmp_path_factory.mktemp("doors"))
    yield d
    d.close()


@pytest.mark.parametrize("dash", MINUSES)
def test_a_typographic_minus_parses_as_a_negative_number(dash):
    assert parse_number(f"{dash}0.05") == -0.05
    assert parse_number(f" {dash}1.5e{dash}3 ") == -1.5e-3
    assert parse_number(f"{dash}0,05", ",") == -0.05
    with pytest.raises(ValueError):
        parse_number("\u20140.05")  # an em dash is a "no value" mark, not a minus


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_sheet_written_with_unicode_minus_signs_is_stored_negative(tmp_path, suffix):
    """On main: line 2: ... value '−0.05': not a number, for a value Word had autocorrected."""
    body = [[f"S{i}", 0.5, 0.5, f"{dash}0.0{i + 1}", f"0.00{i + 1}"] for i, dash in enumerate(MINUSES)]
    body.append(["S-exp", 0.5, 0.5, "\u22121.5e\u22122", None])
    write = write_csv if suffix == ".csv" else write_xlsx
    contents = read_sheet_contents(write(tmp_path / f"minus{suffix}", ENERGY, body))
    got = {r.sample_id: r.get_property("mixing_energy").value for r in contents.records}
    assert got == {**{f"S{i}": -0.01 * (i + 1) for i in range(len(MINUSES))}, "S-exp": -0.015}
    result = CliRunner().invoke(app, ["store", "import", str(tmp_path / f"minus{suffix}"), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0 and f"ingested {len(body)} records" in result.output, result.output
    with Store.open(tmp_path / "s") as s:
        assert (s.to_dataframe()["mixing_energy"] < 0).all()


def test_a_decimal_comma_sheet_with_unicode_minus_signs_reads_its_commas(tmp_path):
    """A semicolon CSV from a decimal-comma locale whose numbers all carry U+2212."""
    path = tmp_path / "comma.csv"
    path.write_text(";".join(ENERGY[:4]) + "\nA;0,5;0,5;\u22120,05\nB;0,5;0,5;\u22120,25\n", encoding="utf-8")
    got = {r.sample_id: r.get_property("mixing_energy").value for r in read_sheet_contents(path).records}
    assert got == {"A": -0.05, "B": -0.25}


@pytest.mark.parametrize("cell", ["1.2 \u00b1 0.1", "1.2 +/- 0.1", "1.2\u00b10.1", "1.2e+0 \u00b1 0.1"])
def test_a_value_with_its_spread_is_refused_naming_the_uncertainty_column(doors, tmp_path, cell):
    """On main: 'not a number', and the lab did not know where the spread goes."""
    header = HEADER + ["uncertainty:hardness [GPa]"]
    body = [r + [None] for r in rows()]
    body[1][4] = cell
    o = every_door(doors, write_csv(tmp_path / "spread.csv", header, body))
    assert o.refused and not o.stored  # all or nothing
    ((line, msg),) = o.problems
    assert line == 3 and "sample 'A1', column 'property:hardness [GPa]'" in msg, msg
    # the value as typed (an exponent's sign is the value's: review of ef45c54..a4a2680 found '1.2e+0 ± 0.1'
    # answered 'not a number')
    assert f"write {cell.split()[0].split(chr(0xb1))[0]} here and 0.1 in its 'uncertainty:hardness [GPa]' cell" in msg, msg
    # a sheet without the uncertainty column is told to add it, in the value's unit
    o = every_door(doors, write_xlsx(tmp_path / "spread.xlsx", HEADER, [r[:4] + [cell if r[0] == "A1" else r[4], r[5]]
                                                                      for r in rows()]))
    assert o.refused and not o.stored
    assert "add a column 'uncertainty:hardness [GPa]'" in o.problems[0][1], o.problems


@pytest.mark.parametrize("cell", ["n/a", "NA", "-", "\u2014", "nd", "N.D."])
def test_no_value_words_are_refused_saying_leave_it_blank_or_not_made(doors, tmp_path, cell):
    """On main: 'not a number'; the lab had no way to tell what the engine wanted instead."""
    body = rows()
    body[2][5] = cell
    o = every_door(doors, write_csv(tmp_path / "na.csv", HEADER, body))
    assert o.refused and not o.stored and o.pending == ("A0", "A1", "A2", "A3")  # nothing stored, nothing marked
    ((line, msg),) = o.problems
    assert line == 4 and "column 'property:density [g/cm^3]'" in msg, msg
    assert "leave the cell blank while it is not measured yet" in msg and "write 'not made'" in msg, msg


@pytest.mark.parametrize("cell", ["failed", "not  made", "cracked"])
def test_a_word_in_a_value_cell_is_told_about_not_made(doors, tmp_path, cell):
    """A user trial: 'failed' or a misspelt 'not  made' got only 'not a number'; the lab did not
    learn that the sheet has a word for a sample it could not make."""
    body = rows()
    body[2][5] = cell
    o = every_door(doors, write_csv(tmp_path / "word.csv", HEADER, body))
    assert o.refused and not o.stored
    ((line, msg),) = o.problems
    assert line == 4 and "type the measured value, or write 'not made'" in msg, msg


def test_no_value_words_in_an_uncertainty_cell_say_leave_it_blank(doors, tmp_path):
    header = HEADER + ["uncertainty:hardness [GPa]"]
    body = [r + [None] for r in rows()]
    body[0][6] = "n/a"
    body[3][6] = "\u00b10.05"
    o = every_door(doors, write_csv(tmp_path / "una.csv", header, body))
    assert o.refused and not o.stored
    (_, first), (_, second) = o.problems
    assert "leave the cell blank when the uncertainty is not known" in first, first
    assert "write the spread without '\u00b1' (0.05)" in second, second


@pytest.mark.parametrize("cell", ["1.2 \u00b1 5 %", "1.2 +/- 0.1 GPa"])
def test_a_relative_or_unit_bearing_spread_gets_the_same_advice(doors, tmp_path, cell):
    header = HEADER + ["uncertainty:hardness [GPa]"]
    body = [r + [None] for r in rows()]
    body[0][4] = cell
    o = every_door(doors, write_csv(tmp_path / "rel.csv", header, body))
    assert o.refused and not o.stored
    assert "write the value here and the spread in its 'uncertainty:hardness [GPa]' cell" in o.problems[0][1], o.problems
