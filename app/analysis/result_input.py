"""Reading a typed or pasted cell of the entry grid as an exact decimal, or refusing it with a
message that names the row and the column.

A cell holds the instrument's raw reading: "1.234", " 0.5 ", "1e-3", "-0.002" (a blank-corrected
absorbance may be negative). Refused: a comma ("1,5" may be 1.5 or 15 depending on whose
spreadsheet it came from, so the analyst says which), text ("ND", "<0.025": below-MDL reporting is
the method's, from the raw value), anything that looks like a formula ("=SUM(A1)": never run),
NaN and infinities, more than 30 digits, and magnitudes no instrument reads. Full-width digits
and points typed with a Chinese input method are read as their ASCII twins (NFKC)."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation, localcontext

from app.analysis import result_errors as errors

MAX_DIGITS = 30
MAX_CELL_CHARS = 60
LOWEST_EXPONENT, HIGHEST_EXPONENT = -30, 15  # 1e-30 … 1e15: beyond any instrument's reading
NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$")
FORMULA_START = ("=", "@")
SPACES = re.compile(r"[\s\u00a0\u2000-\u200b\u3000\ufeff]+")


def _shown(text: str) -> str:
    return text if len(text) <= 30 else text[:29] + "…"


def parse_cell(value: str | None, row: int | str, column: str) -> Decimal | None:
    """The decimal in a cell; None for an empty cell (nothing entered there)."""
    if value is None:
        return None
    text = SPACES.sub("", unicodedata.normalize("NFKC", str(value)))
    if not text:
        return None
    shown = _shown(text)
    where = {"row": row, "column": column, "value": shown}
    if text.startswith(FORMULA_START) or (text[0] in "+-" and len(text) > 1 and not NUMBER_RE.match(text)):
        raise errors.FormulaInCell(**where)
    if "," in text:
        raise errors.CommaDecimal(**where)
    if len(text) > MAX_CELL_CHARS or not NUMBER_RE.match(text):
        raise errors.NotANumber(**where)
    mantissa = text.lower().split("e")[0]
    if sum(ch.isdigit() for ch in mantissa) > MAX_DIGITS:
        raise errors.TooManyDigits(limit=MAX_DIGITS, **where)
    try:
        number = Decimal(text)
    except InvalidOperation:  # the pattern admits only what Decimal reads; kept as a guard
        raise errors.NotANumber(**where) from None
    if not number.is_zero() and not LOWEST_EXPONENT <= number.adjusted() <= HIGHEST_EXPONENT:
        raise errors.NumberOutOfRange(**where)
    if number.is_zero():
        number = abs(number)  # "-0" is 0
    if number.as_tuple().exponent > 0:  # type: ignore[operator]
        with localcontext() as context:  # "2E+2" is written 200
            context.prec = 60
            number = number.quantize(Decimal(1))
    return number


def split_block(text: str) -> list[list[str]]:
    """A block copied from a spreadsheet: rows by line, cells by tab (Excel, WPS, LibreOffice)."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # the spreadsheet's trailing newline
    return [line.split("\t") for line in lines]
