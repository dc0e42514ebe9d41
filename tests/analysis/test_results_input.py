"""Typed and pasted cells: plain decimals are read exactly; commas, text, formulas, NaN and
infinities, too many digits and absurd magnitudes are refused naming the row and the column."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.analysis import result_errors as errors
from app.analysis.result_input import parse_cell, split_block


@pytest.mark.parametrize(("text", "value"), [
    ("1.234", D("1.234")), (" 0.5 ", D("0.5")), ("1e-3", D("0.001")), ("-0.002", D("-0.002")), ("0.500", D("0.500")),
    (".5", D("0.5")), ("１．２５", D("1.25")), ("2E+2", D("200")), ("-0", D("0")), ("\u00a00.25\t", D("0.25")),
])
def test_plain_decimals_are_read_exactly(text, value):
    parsed = parse_cell(text, 3, "NH3-N")
    assert parsed == value and str(parsed) == str(value)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_an_empty_cell_is_nothing(text):
    assert parse_cell(text, 1, "NH3-N") is None


@pytest.mark.parametrize(("text", "error"), [
    ("1,5", errors.CommaDecimal), ("1,234.5", errors.CommaDecimal), ("１，５", errors.CommaDecimal),
    ("=SUM(A1)", errors.FormulaInCell), ("@A1", errors.FormulaInCell), ("+A1*2", errors.FormulaInCell),
    ("abc", errors.NotANumber), ("ND", errors.NotANumber), ("<0.025", errors.NotANumber),
    ("NaN", errors.NotANumber), ("Infinity", errors.NotANumber), ("-inf", errors.FormulaInCell),
    ("1.2.3", errors.NotANumber), ("1e99999", errors.NotANumber), ("0x1F", errors.NotANumber),
    ("1" * 31, errors.TooManyDigits), ("1e-40", errors.NumberOutOfRange), ("9e20", errors.NumberOutOfRange),
])
def test_what_is_not_a_plain_number_is_refused_naming_row_and_column(text, error):
    with pytest.raises(error) as refused:
        parse_cell(text, 7, "NH3-N 读数")
    assert refused.value.params["row"] == 7 and refused.value.params["column"] == "NH3-N 读数"
    zh, en = refused.value.message("zh"), refused.value.message("en")
    assert "第 7 行" in zh and "NH3-N 读数" in zh and "Row 7" in en


def test_the_comma_message_says_use_a_point():
    with pytest.raises(errors.CommaDecimal) as refused:
        parse_cell("1,5", 2, "COD")
    assert "小数点" in refused.value.message("zh") and "point" in refused.value.message("en")


def test_a_spreadsheet_block_splits_by_line_and_tab():
    assert split_block("0.1\t2\r\n0.2\t\r\n\r\n") == [["0.1", "2"], ["0.2", ""]]
    assert split_block("") == []
