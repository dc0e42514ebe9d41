"""Reading instrument exports (pure): the built-in MassHunter ICP-MS and Chromeleon IC parsers on
their sample files, encodings (UTF-8, BOM, UTF-16, GBK) reported, generic CSV and XLSX mappings,
cached formula values used and a formula without one refused naming its cell, "=cmd|..." cells
kept as text, strict Decimal readings (comma decimals, text, NaN, huge exponents refused naming
row and column), unknown layouts refused with a clear message, and the mapping's validation."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from app.analysis import import_errors as errors
from app.analysis.import_parsers import (
    BadCell,
    decode_text,
    parse_chromeleon_ic,
    parse_export,
    parse_generic,
    parse_masshunter_icpms,
    parse_reading,
    validate_mapping,
)

DATA = Path(__file__).parent / "data"
LONG = {"format": "csv", "header_row": 1, "sample_column": "Sample", "parameter_column": "Analyte",
        "value_column": "Result", "unit_column": "Unit", "measured_at_column": "Time",
        "dilution_column": "DF"}


def masshunter() -> bytes:
    return (DATA / "masshunter_batch.csv").read_bytes()


def chromeleon() -> bytes:
    return (DATA / "chromeleon_anions_gbk.csv").read_bytes()


def generic(text: str, mapping: dict | None = None, encoding: str = "utf-8"):
    return parse_generic(text.encode(encoding), validate_mapping(mapping or LONG))


# ---------------------------------------------------------------- built-in parsers


def test_masshunter_batch_table_rows_per_sample_and_element():
    parsed = parse_masshunter_icpms(masshunter())
    assert parsed.encoding == "utf-8" and parsed.layout == "agilent_masshunter_icpms" and not parsed.problems
    assert len(parsed.rows) == 18  # 6 acquisitions × As, Cd, Pb (the In internal standard has no Conc. column)
    sample = [r for r in parsed.rows if r.sample_label == "WS01-261203-001"]
    assert [(r.parameter, r.value_text, str(r.reading), r.unit) for r in sample] == [
        ("As", "1.351", "1.351", "ppb"), ("Cd", "0.0231", "0.0231", "ppb"), ("Pb", "2.637", "2.637", "ppb")]
    assert sample[0].row_no == 6 and sample[0].measured_at == datetime(2026, 3, 4, 9, 43, 33)
    assert sample[0].dilution == D("1") and sample[0].column.startswith("I (As 75")
    diluted = [r for r in parsed.rows if r.sample_label == "ws01-261203-002"]
    assert [r.dilution for r in diluted] == [D("10")] * 3
    assert diluted[1].value_text == "<0.000" and diluted[1].reading is None  # listed later, never a number


def test_masshunter_several_channels_of_an_element_name_their_mass():
    text = masshunter().decode().replace("111  Cd  [ He ]", "206  Pb  [ He ]")
    parameters = {r.parameter for r in parse_masshunter_icpms(text.encode()).rows}
    assert parameters == {"As", "Pb 206", "Pb 208"}


def test_chromeleon_summary_in_gbk_is_read_and_the_encoding_reported():
    parsed = parse_chromeleon_ic(chromeleon())
    assert parsed.encoding == "gb18030" and not parsed.problems
    assert [(r.row_no, r.sample_label, r.parameter, r.value_text, r.unit, r.dilution) for r in parsed.rows] == [
        (9, "BLK1", "氯化物", "n.a.", "mg/L", D("1.0000")),
        (10, "WS01-261203-001", "氯化物", "12.46", "mg/L", D("1.0000")),
        (11, "WS01-261203-002", "氯化物", "17.15", "mg/L", D("5.0000")),
        (16, "BLK1", "硝酸盐", "n.a.", "mg/L", D("1.0000")),
        (17, "WS01-261203-001", "硝酸盐", "3.281", "mg/L", D("1.0000")),
        (18, "WS01-261203-002", "硝酸盐", "2.260", "mg/L", D("5.0000")),
    ]
    assert [str(r.reading) for r in parsed.rows] == ["None", "12.46", "17.15", "None", "3.281", "2.260"]
    assert parsed.rows[1].measured_at == datetime(2026, 3, 4, 10, 18)


def test_chromeleon_in_english_with_a_bom():
    text = chromeleon().decode("gb18030").replace("组分:", "Peak Name:").replace(
        "编号,进样名称,进样日期/时间,稀释因子,保留时间,峰面积,含量",
        "No.,Injection Name,Inj. Date/Time,Dil. Factor,Ret.Time,Area,Amount")
    parsed = parse_chromeleon_ic(text.encode("utf-8-sig"))
    assert parsed.encoding == "utf-8-sig" and len(parsed.rows) == 6 and parsed.rows[1].reading == D("12.46")


def test_a_bom_and_utf16_are_recognised():
    with_bom = parse_masshunter_icpms(b"\xef\xbb\xbf" + masshunter())
    assert with_bom.encoding == "utf-8-sig" and len(with_bom.rows) == 18
    utf16 = parse_masshunter_icpms(masshunter().decode().encode("utf-16"))
    assert utf16.encoding == "utf-16" and [r.reading for r in utf16.rows] == [r.reading for r in with_bom.rows]


def test_a_binary_file_is_not_guessed_into_text():
    with pytest.raises(errors.UnreadableEncoding):
        decode_text(b"\x00\x01\x02binary\xff\xfe\x00")


@pytest.mark.parametrize("parser", [parse_masshunter_icpms, parse_chromeleon_ic])
def test_an_unknown_layout_is_refused_clearly(parser):
    with pytest.raises(errors.UnknownLayout) as refused:
        parser(b"Sample,Result\nA,1\n")
    assert refused.value.code == "import_unknown_layout"
    assert "Sample Name" in refused.value.message("en") or "Peak Name" in refused.value.message("en")
    assert "组分" in refused.value.message("zh") or "表头" in refused.value.message("zh")


def test_a_workbook_given_to_a_csv_profile_is_refused_and_the_reverse():
    with pytest.raises(errors.UnknownLayout, match="Excel"):
        parse_masshunter_icpms(xlsx([["a"]]))
    with pytest.raises(errors.UnknownLayout, match="xlsx"):
        parse_generic(b"Sample,Analyte,Result\n", validate_mapping({**LONG, "format": "xlsx"}))


def test_an_empty_file_is_refused():
    with pytest.raises(errors.ImportFileEmpty):
        parse_export(b"", builtin="agilent_masshunter_icpms", mapping={}, profile="AGILENT-ICPMS")


# ---------------------------------------------------------------- generic CSV


CSV = ("Sample,Analyte,Result,Unit,Time,DF\n"
       "WS01-001,NH3-N,0.512,mg/L,2026-03-04 10:00,1\n"
       "WS01-002,氨氮,1.20,mg/L,2026-03-04 10:05,2\n")


def test_generic_long_csv():
    parsed = generic(CSV)
    assert [(r.row_no, r.sample_label, r.parameter, str(r.reading), r.unit, r.dilution) for r in parsed.rows] == [
        (2, "WS01-001", "NH3-N", "0.512", "mg/L", D("1")), (3, "WS01-002", "氨氮", "1.20", "mg/L", D("2"))]
    assert parsed.rows[0].measured_at == datetime(2026, 3, 4, 10, 0)


def test_generic_gbk_csv():
    parsed = generic(CSV.replace("Sample", "样品编号"), {**LONG, "sample_column": "样品编号"}, "gbk")
    assert parsed.encoding == "gb18030" and parsed.rows[1].parameter == "氨氮"


def test_generic_wide_csv_with_a_fixed_unit_skips_empty_cells():
    text = "样品,氨氮,总磷\nWS01-001,0.512,0.03\nWS01-002,,0.05\n"
    mapping = {"sample_column": "样品", "wide_columns": {"氨氮": "NH3-N", "总磷": "TP"}, "unit": "mg/L"}
    parsed = generic(text, mapping)
    assert [(r.sample_label, r.parameter, r.value_text, r.unit) for r in parsed.rows] == [
        ("WS01-001", "NH3-N", "0.512", "mg/L"), ("WS01-001", "TP", "0.03", "mg/L"), ("WS01-002", "TP", "0.05", "mg/L")]


def test_semicolon_and_tab_separated_files():
    assert len(generic(CSV.replace(",", ";")).rows) == 2
    assert generic(CSV.replace(",", "\t")).rows[1].reading == D("1.20")


@pytest.mark.parametrize(("cell", "code"), [
    ("0,512", "comma_decimal"), ("1,234.5", "comma_decimal"), ("abc", "not_a_number"), ("NaN", "not_a_number"),
    ("inf", "not_a_number"), ("1e999", "exponent"), ("=1+2", "not_a_number"), ("=cmd|' /C calc'!A0", "not_a_number"),
    ("@SUM(A1)", "not_a_number"), ("+cmd", "not_a_number"),
])
def test_bad_value_cells_are_problems_naming_row_and_column(cell, code):
    parsed = generic(CSV.replace("1.20", f'"{cell}"'))
    assert len(parsed.problems) == 1
    problem = parsed.problems[0]
    assert (problem.row_no, problem.column, problem.code) == (3, "C (Result)", code)
    assert "第 3 行 C (Result) 列" in problem.text("zh") and "row 3, column C (Result)" in problem.text("en")


def test_formula_looking_cells_are_kept_as_text_in_label_columns():
    parsed = generic(CSV.replace("WS01-002", '"=cmd|\' /C calc\'!A0"'))
    assert parsed.rows[1].sample_label == "=cmd|' /C calc'!A0" and not parsed.problems


def test_negative_and_signed_numbers_are_numbers():
    parsed = generic(CSV.replace("0.512", "-0.002").replace("1.20", "+1.5E-3"))
    assert [r.reading for r in parsed.rows] == [D("-0.002"), D("0.0015")] and not parsed.problems


def test_bad_time_and_dilution_are_problems():
    parsed = generic(CSV.replace("2026-03-04 10:05", "yesterday").replace(",2\n", ",0\n"))
    assert {(p.row_no, p.column, p.code) for p in parsed.problems} == {
        (3, "E (Time)", "bad_time"), (3, "F (DF)", "bad_dilution")}


def test_a_missing_column_is_an_unknown_layout_naming_it():
    with pytest.raises(errors.UnknownLayout) as refused:
        generic(CSV.replace("Result", "Conc"))
    assert "Result" in refused.value.message("en") and "Conc" in refused.value.message("en")


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=D("-1e15"), max_value=D("1e15"), places=10))
def test_any_plain_decimal_reads_back_exactly(value):
    assert parse_reading(str(value)) == value


@pytest.mark.parametrize("text", ["", " ", "n.a.", "N/A", "ND", "<0.000", "----", "未检出"])
def test_cells_meaning_no_number(text):
    assert parse_reading(text) is None


def test_parse_reading_refuses_text():
    with pytest.raises(BadCell):
        parse_reading("12 mg/L")


# ---------------------------------------------------------------- XLSX


def xlsx(rows, *, formulas: dict[str, str] | None = None, cached: dict[str, object] | None = None,
         sheet: str = "Results") -> bytes:
    """A workbook; `formulas` are written as formulas without cached values (as openpyxl writes
    them); `cached` patches a cached value into a formula cell's XML."""
    book = Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    for ref, formula in (formulas or {}).items():
        ws[ref] = formula
    buffer = io.BytesIO()
    book.save(buffer)
    content = buffer.getvalue()
    if cached:
        content = _with_cached_values(content, cached)
    return content


def _with_cached_values(content: bytes, cached: dict[str, object]) -> bytes:
    import re
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                for ref, value in cached.items():
                    text = re.sub(rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f><v\s*/?>(</v>)?',
                                  rf"\1<f>\2</f><v>{value}</v>", text)
                    text = re.sub(rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f>(?!<v>)', rf"\1<f>\2</f><v>{value}</v>", text)
                data = text.encode()
            target.writestr(item, data)
    return out.getvalue()


XLSX_MAPPING = {**LONG, "format": "xlsx", "sheet": "Results"}
HEAD = ["Sample", "Analyte", "Result", "Unit", "Time", "DF"]


def test_xlsx_values_dates_and_numbers():
    content = xlsx([HEAD, ["WS01-001", "NH3-N", 0.512, "mg/L", datetime(2026, 3, 4, 10, 0), 1],
                    ["WS01-002", "NH3-N", "1.20", "mg/L", "2026-03-04 10:05", 2]])
    parsed = parse_generic(content, validate_mapping(XLSX_MAPPING))
    assert parsed.encoding == "xlsx" and not parsed.problems
    assert [(r.row_no, str(r.reading), r.measured_at, r.dilution) for r in parsed.rows] == [
        (2, "0.512", datetime(2026, 3, 4, 10, 0), D("1")), (3, "1.20", datetime(2026, 3, 4, 10, 5), D("2"))]


def test_xlsx_formula_uses_its_cached_value():
    content = xlsx([HEAD, ["WS01-001", "NH3-N", None, "mg/L", "", 1]], formulas={"C2": "=0.5+0.012"},
                   cached={"C2": "0.512"})
    parsed = parse_generic(content, validate_mapping(XLSX_MAPPING))
    assert not parsed.problems and parsed.rows[0].reading == D("0.512")


def test_xlsx_formula_without_a_cached_value_is_refused_naming_the_cell():
    content = xlsx([HEAD, ["WS01-001", "NH3-N", None, "mg/L", "", 1]], formulas={"C2": "=A1*2"})
    parsed = parse_generic(content, validate_mapping(XLSX_MAPPING))
    assert [(p.row_no, p.column, p.code) for p in parsed.problems] == [(2, "C", "formula_without_value")]
    assert "=A1*2" in parsed.problems[0].text("en") and "第 2 行 C 列" in parsed.problems[0].text("zh")


def test_xlsx_text_cell_starting_with_equals_is_text_never_a_formula():
    book = Workbook()
    ws = book.active
    ws.title = "Results"
    ws.append(HEAD)
    ws.append(["", "NH3-N", "0.5", "mg/L", "", 1])
    ws["A2"] = "=cmd|' /C calc'!A0"
    ws["A2"].data_type = "s"  # a text cell, as a spreadsheet keeps a typed '=... string
    buffer = io.BytesIO()
    book.save(buffer)
    parsed = parse_generic(buffer.getvalue(), validate_mapping(XLSX_MAPPING))
    assert not parsed.problems and parsed.rows[0].sample_label == "=cmd|' /C calc'!A0"


def test_xlsx_missing_sheet_and_a_broken_workbook():
    with pytest.raises(errors.SheetMissing, match="Results"):
        parse_generic(xlsx([HEAD], sheet="Sheet9"), validate_mapping(XLSX_MAPPING))
    with pytest.raises(errors.NotAnXlsx):
        parse_generic(b"PK\x03\x04garbage", validate_mapping(XLSX_MAPPING))


# ---------------------------------------------------------------- mapping validation


@pytest.mark.parametrize(("mapping", "field"), [
    ({"sample_column": "S"}, "value_column"),
    ({"parameter_column": "P", "value_column": "V"}, "sample_column"),
    ({**LONG, "wide_columns": {"A": "NH3-N"}}, "wide_columns"),
    ({**LONG, "unit": "mg/L"}, "unit"),
    ({**LONG, "format": "pdf"}, "format"),
    ({**LONG, "header_row": 0}, "header_row"),
    ({**LONG, "measured_at_format": "yyyy"}, "measured_at_format"),
    ({**LONG, "bogus": 1}, "bogus"),
    ({**LONG, "aliases": ["氨氮"]}, "aliases"),
    ({**LONG, "dilution_applied": "yes"}, "dilution_applied"),
])
def test_invalid_mappings_name_the_field(mapping, field):
    with pytest.raises(errors.InvalidMapping) as refused:
        validate_mapping(mapping)
    assert refused.value.code == "import_mapping_invalid" and field in refused.value.message("en")


def test_a_valid_mapping_is_normalised():
    checked = validate_mapping({**LONG, "header_row": "2", "aliases": {" 氨氮 ": "NH3-N"}, "dilution_applied": True})
    assert checked["header_row"] == 2 and checked["aliases"] == {"氨氮": "NH3-N"} and checked["dilution_applied"]
