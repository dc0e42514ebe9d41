"""Reading instrument exports into rows (sample label × parameter × reading). Pure: no database.

Files come as CSV or XLSX. CSV bytes are decoded as UTF-8 (with or without BOM), UTF-16 (with its
BOM, as some Windows software writes "Unicode text") or GB18030 (the superset of GBK, which Chinese
instrument software writes); nothing else is tried, and the encoding used is reported with the
rows so the analyst sees it. XLSX is read with openpyxl's cached values (`data_only=True`): a
formula is never evaluated, and a formula cell without a cached value (a workbook written by a
program, never saved by Excel) is a problem naming its cell. A cell that starts with "=", "+",
"-" or "@" in a CSV is data, never a formula: it is read as text, and in a value column a text is
refused naming its row and column.

Readings are parsed strictly as Decimal: "1,5" (a comma decimal) and "1,234.5" (thousands
separators) are refused, as are NaN, infinity and exponents beyond ±20; cells an instrument writes
for "no number" (empty in a long layout, "n.a.", "N/A", "ND", "<0.000", "----") give a row without a
reading, which the import lists — a row is never dropped silently. Every problem names its row
and its column (spreadsheet letter and header).

Layouts: the generic profile's column mapping (see `validate_mapping`), and two built-in parsers
written from the vendors' documented export layouts (see their docstrings).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl.utils import get_column_letter

from app.analysis import import_errors as errors

XLSX_MAGIC = b"PK\x03\x04"
MAX_XLSX_UNCOMPRESSED = 400 * 1024 * 1024  # a zip bomb is refused before openpyxl expands it
MAX_EXPONENT = 20
NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
COMMA_NUMBER_RE = re.compile(r"^[+-]?(?:\d*,\d+|\d{1,3}(?:,\d{3})+(?:\.\d*)?)$")
NO_READING = frozenset({"", "n.a.", "n.a", "na", "n/a", "nd", "n.d.", "-", "--", "---", "----", "-----", "—",
                        "未检出", "not found", "nf", "<lod", "<dl", "###"})
DEFAULT_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M",
)
MAPPING_KEYS = frozenset({"format", "header_row", "sheet", "sample_column", "parameter_column", "value_column",
                          "wide_columns", "unit_column", "unit", "measured_at_column", "measured_at_format",
                          "dilution_column", "dilution_applied", "aliases"})


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class CellProblem:
    """A cell that cannot be read as the layout says."""

    row_no: int
    column: str  # spreadsheet letter with the header: E (Conc. [ ppb ])
    code: str
    cell: str = ""

    WHAT = {
        "comma_decimal": ("“{cell}”使用了逗号作小数点或千位分隔符，请用小数点（如 1.5）",
                          "“{cell}” uses a comma as decimal or thousands separator; write 1.5"),
        "not_a_number": ("“{cell}”不是数值", "“{cell}” is not a number"),
        "exponent": ("“{cell}”的指数超出范围", "“{cell}” has an exponent out of range"),
        "bad_time": ("“{cell}”不是可识别的日期时间", "“{cell}” is not a date and time this profile reads"),
        "bad_dilution": ("稀释倍数“{cell}”应为正数", "the dilution factor “{cell}” must be a positive number"),
        "formula_without_value": ("单元格含公式“{cell}”但没有计算结果（请在 Excel 中打开并保存后再导入）",
                                  "the cell holds the formula “{cell}” without a computed value (open and save "
                                  "the workbook in Excel, then import it)"),
    }

    def text(self, language: str) -> str:
        zh, en = self.WHAT.get(self.code, ("无法读取“{cell}”", "cannot read “{cell}”"))
        cell = self.cell if len(self.cell) <= 40 else self.cell[:40] + "…"
        if language.startswith("zh"):
            return f"第 {self.row_no} 行 {self.column} 列：" + zh.format(cell=cell)
        return f"row {self.row_no}, column {self.column}: " + en.format(cell=cell)


class BadCell(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def parse_reading(text: str) -> Decimal | None:
    """The cell as an exact Decimal; None when the instrument wrote "no number" there. Raises
    BadCell for everything else (comma decimals, text, NaN, huge exponents)."""
    cleaned = (text or "").strip()
    if not cleaned.isascii():
        cleaned = unicodedata.normalize("NFKC", cleaned).strip()  # full-width digits from a Chinese IME
    if cleaned.casefold() in NO_READING or cleaned.startswith("<"):
        return None
    if NUMBER_RE.match(cleaned):
        value = Decimal(cleaned)
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or abs(exponent) > MAX_EXPONENT + 30 or abs(value.adjusted()) > MAX_EXPONENT:
            raise BadCell("exponent")
        return value
    if COMMA_NUMBER_RE.match(cleaned):
        raise BadCell("comma_decimal")
    raise BadCell("not_a_number")


def parse_dilution(text: str) -> Decimal | None:
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    try:
        value = parse_reading(cleaned)
    except BadCell as bad:
        raise BadCell("comma_decimal" if bad.code == "comma_decimal" else "bad_dilution") from None
    if value is None or value <= 0:
        raise BadCell("bad_dilution")
    return value


def parse_time(text: str, formats: tuple[str, ...] = DEFAULT_TIME_FORMATS) -> datetime | None:
    """A lab-local wall-clock time (naive); the import turns it into UTC with the lab's zone."""
    cleaned = re.sub(r"\s+", " ", (text or "").strip())
    if not cleaned:
        return None
    for fmt in formats:
        try:
            return datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
    raise BadCell("bad_time")


def normalise(text: str) -> str:
    """For comparing names: NFKC, case-folded, inner whitespace removed."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "")).casefold()


# ---------------------------------------------------------------- the output


@dataclass(frozen=True)
class ParsedRow:
    row_no: int
    sample_label: str
    parameter: str
    value_text: str
    unit: str
    measured_at: datetime | None  # lab-local wall time as the instrument wrote it
    dilution: Decimal | None
    column: str = ""  # the value's column, for messages
    reading: Decimal | None = None  # None: the instrument wrote no number there

    def cells(self) -> dict[str, str]:
        return {"sample": self.sample_label, "parameter": self.parameter, "value": self.value_text,
                "unit": self.unit, "column": self.column}


@dataclass
class ParsedExport:
    rows: list[ParsedRow]
    encoding: str  # utf-8, utf-8-sig, utf-16, gb18030, xlsx
    problems: list[CellProblem] = field(default_factory=list)
    layout: str = ""


# ---------------------------------------------------------------- grids (CSV and XLSX alike)


@dataclass
class Grid:
    """The file's cells as text, each row with its number in the file (1-based)."""

    rows: list[tuple[int, list[str]]]
    encoding: str
    problems: list[CellProblem] = field(default_factory=list)

    def cell(self, cells: list[str], index: int | None) -> str:
        if index is None or index >= len(cells):
            return ""
        return cells[index]


def column_label(index: int, header: str = "") -> str:
    letter = get_column_letter(index + 1)
    header = (header or "").strip()
    return f"{letter} ({header[:40]})" if header else letter


def decode_text(content: bytes) -> tuple[str, str]:
    """The text and the encoding that read it; never a silent guess."""
    if content.startswith(codecs.BOM_UTF8):
        candidates: tuple[tuple[str, str], ...] = (("utf-8-sig", "utf-8-sig"),)
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = (("utf-16", "utf-16"),)
    else:
        candidates = (("utf-8", "utf-8"), ("gb18030", "gb18030"))
    for codec, name in candidates:
        try:
            text = content.decode(codec)
        except UnicodeDecodeError:
            continue
        if _plausible_text(text):
            return text, name
    raise errors.UnreadableEncoding()


def _plausible_text(text: str) -> bool:
    """No control characters besides tab and line ends, no unassigned or private-use code points:
    a binary file or a wrong decoding shows itself here."""
    return not any(
        (unicodedata.category(ch) in ("Cc", "Co", "Cn") and ch not in "\t\r\n") for ch in text
    )


def csv_grid(content: bytes) -> Grid:
    text, encoding = decode_text(content)
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    sample = "\n".join(lines)
    counts = {d: sample.count(d) for d in (",", "\t", ";")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    rows: list[tuple[int, list[str]]] = []
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            rows.append((number, [c.strip() for c in cells]))
    except csv.Error as error:
        raise errors.UnknownLayout(profile="CSV", detail_zh=f"CSV 结构错误：{error}",
                                   detail_en=f"malformed CSV: {error}") from None
    return Grid(rows, encoding)


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back to the stored double
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def xlsx_grid(content: bytes, sheet: str = "") -> Grid:
    """Cached values only; formulas are read (to name a cell without a cached value), never run."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_XLSX_UNCOMPRESSED:
                raise errors.NotAnXlsx(detail="too large when unpacked")
        values_book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        formulas_book = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    except errors.NotAnXlsx:
        raise
    except Exception as error:  # openpyxl raises many kinds for a damaged or foreign file
        raise errors.NotAnXlsx(detail=type(error).__name__) from None
    try:
        names = values_book.sheetnames
        if sheet and sheet not in names:
            raise errors.SheetMissing(sheet=sheet, sheets="、".join(names))
        name = sheet or names[0]
        values, formulas = values_book[name], formulas_book[name]
        rows: list[tuple[int, list[str]]] = []
        problems: list[CellProblem] = []
        for number, (value_row, formula_row) in enumerate(
                zip(values.iter_rows(), formulas.iter_rows(), strict=False), start=1):
            cells: list[str] = []
            for index, (cell, formula) in enumerate(zip(value_row, formula_row, strict=False)):
                if getattr(formula, "data_type", "") == "f" and cell.value is None:
                    problems.append(CellProblem(number, column_label(index), "formula_without_value",
                                                str(formula.value)))
                cells.append(_xlsx_text(cell.value))
            rows.append((number, cells))
        return Grid(rows, "xlsx", problems)
    finally:
        values_book.close()
        formulas_book.close()


def read_grid(content: bytes, file_format: str, sheet: str = "", *, profile: str) -> Grid:
    is_zip = content.startswith(XLSX_MAGIC)
    if file_format == "xlsx":
        if not is_zip:
            raise errors.UnknownLayout(profile=profile,
                                       detail_zh="此配置读取 Excel 工作簿（.xlsx），上传的不是工作簿。",
                                       detail_en="this profile reads Excel workbooks (.xlsx); the file is not one.")
        return xlsx_grid(content, sheet)
    if is_zip:
        raise errors.UnknownLayout(profile=profile, detail_zh="此配置读取 CSV 文件，上传的是 Excel 工作簿或压缩包。",
                                   detail_en="this profile reads CSV files; the file is an Excel workbook or archive.")
    return csv_grid(content)


# ---------------------------------------------------------------- building rows


class RowBuilder:
    """Collects rows and cell problems while a layout walks its grid."""

    def __init__(self, grid: Grid, layout: str) -> None:
        self.grid = grid
        self.rows: list[ParsedRow] = []
        self.problems: list[CellProblem] = list(grid.problems)
        self.layout = layout

    def reading(self, row_no: int, column: str, text: str) -> Decimal | None:
        try:
            return parse_reading(text)
        except BadCell as bad:
            self.problems.append(CellProblem(row_no, column, bad.code, text))
            return None

    def dilution(self, row_no: int, column: str, text: str) -> Decimal | None:
        try:
            return parse_dilution(text)
        except BadCell as bad:
            self.problems.append(CellProblem(row_no, column, bad.code, text))
            return None

    def time(self, row_no: int, column: str, text: str, formats: tuple[str, ...] = DEFAULT_TIME_FORMATS
             ) -> datetime | None:
        try:
            return parse_time(text, formats)
        except BadCell as bad:
            self.problems.append(CellProblem(row_no, column, bad.code, text))
            return None

    def add(self, row_no: int, sample: str, parameter: str, value_text: str, unit: str, measured_at: datetime | None,
            dilution: Decimal | None, column: str) -> None:
        reading = self.reading(row_no, column, value_text)
        self.rows.append(ParsedRow(row_no, sample.strip(), parameter.strip(), value_text, unit.strip(), measured_at,
                                   dilution, column, reading))

    def result(self) -> ParsedExport:
        return ParsedExport(self.rows, self.grid.encoding, self.problems, self.layout)


def _find(headers: list[str], *names: str) -> int | None:
    wanted = {normalise(n) for n in names}
    for index, header in enumerate(headers):
        if normalise(header) in wanted:
            return index
    return None


def _data_rows(grid: Grid, after: int) -> Iterator[tuple[int, list[str]]]:
    for row_no, cells in grid.rows[after:]:
        if any(cells):
            yield row_no, cells


# ---------------------------------------------------------------- generic profiles


def validate_mapping(raw: dict[str, Any]) -> dict[str, Any]:
    """A generic profile's mapping, checked and normalised; InvalidMapping names the field.

    {format: csv|xlsx, header_row: n (1-based), sheet, sample_column,
     parameter_column + value_column (long: one reading per row) OR wide_columns {column: parameter},
     unit_column or unit (fixed), measured_at_column + measured_at_format (strptime, optional),
     dilution_column, dilution_applied (the results already include the dilution),
     aliases {name in the file: parameter}}"""

    def bad(name: str, zh: str, en: str) -> errors.InvalidMapping:
        return errors.InvalidMapping(field=name, detail_zh=zh, detail_en=en)

    if not isinstance(raw, dict):
        raise bad("mapping", "应为 JSON 对象", "must be a JSON object")
    unknown = sorted(set(raw) - MAPPING_KEYS)
    if unknown:
        raise bad(unknown[0], "未知的键", "unknown key")

    def text(name: str, limit: int = 100) -> str:
        value = raw.get(name, "")
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > limit:
            raise bad(name, f"应为不超过 {limit} 个字符的文本", f"must be text of at most {limit} characters")
        return value.strip()

    file_format = text("format") or "csv"
    if file_format not in ("csv", "xlsx"):
        raise bad("format", "应为 csv 或 xlsx", "must be csv or xlsx")
    header_row = raw.get("header_row", 1)
    if isinstance(header_row, str) and header_row.strip().isdigit():
        header_row = int(header_row)
    if not isinstance(header_row, int) or isinstance(header_row, bool) or not 1 <= header_row <= 100:
        raise bad("header_row", "应为 1–100 的整数", "must be a whole number from 1 to 100")
    mapping: dict[str, Any] = {"format": file_format, "header_row": header_row}
    for name in ("sheet", "sample_column", "parameter_column", "value_column", "unit_column", "unit",
                 "measured_at_column", "measured_at_format", "dilution_column"):
        value = text(name)
        if value:
            mapping[name] = value
    if "sample_column" not in mapping:
        raise bad("sample_column", "请指定样品编号所在的列", "name the column holding the sample label")
    wide = raw.get("wide_columns") or {}
    if not isinstance(wide, dict) or not all(isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
                                             for k, v in wide.items()) or len(wide) > 200:
        raise bad("wide_columns", "应为“列名: 检测项目”的对应表", "must map column headers to parameters")
    long_layout = "parameter_column" in mapping or "value_column" in mapping
    if wide and long_layout:
        raise bad("wide_columns", "宽表（每项目一列）与长表（项目列 + 数值列）只能选一种",
                  "choose either a wide layout (one column per parameter) or a long one (parameter and value columns)")
    if not wide and not ("parameter_column" in mapping and "value_column" in mapping):
        raise bad("value_column", "长表需要项目列和数值列；宽表需要“列名: 检测项目”对应表",
                  "a long layout needs a parameter and a value column; a wide one needs its columns mapped")
    if wide:
        mapping["wide_columns"] = {k.strip(): v.strip() for k, v in sorted(wide.items())}
    if "unit_column" in mapping and "unit" in mapping:
        raise bad("unit", "单位列与固定单位只能选一种", "give either a unit column or a fixed unit")
    if "measured_at_format" in mapping:
        if "measured_at_column" not in mapping:
            raise bad("measured_at_format", "请同时指定测定时间所在的列", "name the measured-at column too")
        try:
            datetime(2026, 1, 2, 3, 4, 5).strftime(mapping["measured_at_format"])
        except ValueError:
            raise bad("measured_at_format", "日期格式无效", "not a valid date format") from None
        if "%" not in mapping["measured_at_format"]:
            raise bad("measured_at_format", "日期格式应含 %Y、%m 等占位符", "the format needs %Y, %m... directives")
    applied = raw.get("dilution_applied", False)
    if not isinstance(applied, bool):
        raise bad("dilution_applied", "应为 true 或 false", "must be true or false")
    if applied:
        mapping["dilution_applied"] = True  # the instrument already multiplied its results by the dilution
    aliases = raw.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
                                                for k, v in aliases.items()) or len(aliases) > 200:
        raise bad("aliases", "应为“文件中的名称: 检测项目”的对应表", "must map names in the file to parameters")
    if aliases:
        mapping["aliases"] = {k.strip(): v.strip() for k, v in sorted(aliases.items())}
    return mapping


def parse_generic(content: bytes, mapping: dict[str, Any], *, profile: str = "generic") -> ParsedExport:
    """A CSV or XLSX laid out as the mapping says (validate it first with `validate_mapping`)."""
    grid = read_grid(content, mapping["format"], mapping.get("sheet", ""), profile=profile)
    header_at = mapping["header_row"]
    if len(grid.rows) < header_at:
        raise errors.UnknownLayout(profile=profile, detail_zh=f"文件不足 {header_at} 行，找不到表头。",
                                   detail_en=f"the file has fewer than {header_at} rows; no header row.")
    headers = grid.rows[header_at - 1][1]

    def column(name: str) -> int | None:
        wanted = mapping.get(name)
        return column_from(headers, wanted, header_at, profile) if wanted else None

    sample_at, unit_at, time_at, dilution_at = (column(n) for n in (
        "sample_column", "unit_column", "measured_at_column", "dilution_column"))
    formats = (mapping["measured_at_format"],) if mapping.get("measured_at_format") else DEFAULT_TIME_FORMATS
    if mapping.get("wide_columns"):
        value_columns = sorted((column_from(headers, header, header_at, profile), parameter)
                               for header, parameter in mapping["wide_columns"].items())  # the file's order
        parameter_at = value_at = None
    else:
        parameter_at, value_at = column("parameter_column"), column("value_column")
        value_columns = []
    builder = RowBuilder(grid, "generic")
    for row_no, cells in _data_rows(grid, header_at):
        sample = grid.cell(cells, sample_at)
        unit = grid.cell(cells, unit_at) if unit_at is not None else mapping.get("unit", "")
        measured = builder.time(row_no, column_label(time_at, headers[time_at]), grid.cell(cells, time_at),
                                formats) if time_at is not None else None
        dilution = builder.dilution(row_no, column_label(dilution_at, headers[dilution_at]),
                                    grid.cell(cells, dilution_at)) if dilution_at is not None else None
        if value_at is not None:
            builder.add(row_no, sample, grid.cell(cells, parameter_at), grid.cell(cells, value_at), unit, measured,
                        dilution, column_label(value_at, headers[value_at]))
            continue
        for index, parameter in value_columns:
            text = grid.cell(cells, index)
            if text:  # an empty cell of a wide table: that parameter was not measured on this row
                builder.add(row_no, sample, parameter, text, unit, measured, dilution,
                            column_label(index, headers[index]))
    return builder.result()


def column_from(headers: list[str], wanted: str, header_at: int, profile: str) -> int:
    index = _find(headers, wanted)
    if index is None:
        shown = "、".join(h for h in headers if h)[:200] or "—"
        raise errors.UnknownLayout(
            profile=profile, detail_zh=f"第 {header_at} 行表头中没有“{wanted}”列（表头为：{shown}）。",
            detail_en=f"row {header_at} has no column “{wanted}” (its headers: {shown}).")
    return index


# ---------------------------------------------------------------- Agilent MassHunter (ICP-MS)

ELEMENT_RE = re.compile(r"^(\d{1,3})\s*(?:->\s*(\d{1,3})\s*)?([A-Z][a-z]?)\s*(?:\[\s*([^\]]*?)\s*\])?$")
CONC_RE = re.compile(r"^conc\.?\s*\[\s*([^\]]+?)\s*\]$", re.I)


def parse_masshunter_icpms(content: bytes, *, profile: str = "Agilent MassHunter ICP-MS") -> ParsedExport:
    """Agilent ICP-MS MassHunter 4.x, Batch Table exported as CSV (Batch at a Glance → Export).

    Layout (MassHunter ICP-MS Data Analysis help, "Exporting the batch table"): a wide table with
    two header rows. The first row names the column groups: "Sample" over the sample columns, then
    one group per measured channel written as mass, element and tune mode — "208  Pb  [ No Gas ]",
    "75  As  [ He ]", or "75 -> 91  As  [ O2 ]" in MS/MS mass-shift mode — in the group's first
    cell. The second row names each column: the sample columns ("Data File", "Acq. Date-Time",
    "Type", "Level", "Sample Name", "Dil.") and, in each channel group, "CPS", "CPS RSD",
    "Conc. [ ppb ]" (the unit in brackets) and "Conc. RSD". Then one row per acquisition.

    Rows: one per sample row × channel with a concentration (an empty cell: not measured). The
    parameter is the element ("Pb"), or element and mass ("Pb 208") when the file carries several
    channels of the element, so the profile's aliases choose which channel is the result. Internal
    standard channels (Sc, Ge, Rh, In, Tb, Bi usually) come out like any other element and are
    listed as unmatched unless the batch measures them.
    """
    grid = read_grid(content, "csv", profile=profile)
    second = None
    for position, (_, cells) in enumerate(grid.rows[:40]):
        if _find(cells, "Sample Name") is not None and any(CONC_RE.match(c) for c in cells):
            second = position
            break
    if second is None or second == 0:
        raise errors.UnknownLayout(
            profile=profile,
            detail_zh="找不到 MassHunter 批处理表的两行表头（含“Sample Name”与“Conc. [ 单位 ]”的行及其上方的元素行）。",
            detail_en="no MassHunter batch-table header (a row with “Sample Name” and “Conc. [ unit ]” columns under "
                      "a row of element channels).")
    groups, columns = grid.rows[second - 1][1], grid.rows[second][1]
    sample_at = _find(columns, "Sample Name")
    time_at = _find(columns, "Acq. Date-Time", "Acq. Date Time", "Acquisition Time")
    dilution_at = _find(columns, "Dil.", "Dil", "Dilution", "Dil. Factor")
    channels: list[tuple[int, str, str, str, str]] = []  # column, element, mass, mode, unit
    current: tuple[str, str, str] | None = None
    for index, header in enumerate(columns):
        group = groups[index] if index < len(groups) else ""
        if group:
            match = ELEMENT_RE.match(re.sub(r"\s+", " ", group))
            current = (match.group(3), match.group(2) or match.group(1), match.group(4) or "") if match else None
        conc = CONC_RE.match(header)
        if conc and current:
            channels.append((index, *current, conc.group(1)))
    if not channels:
        raise errors.UnknownLayout(profile=profile, detail_zh="表头中没有任何元素通道的“Conc. [ 单位 ]”列。",
                                   detail_en="no element channel with a “Conc. [ unit ]” column in the header.")
    per_element = Counter(element for _, element, _, _, _ in channels)
    per_mass = Counter((element, mass) for _, element, mass, _, _ in channels)

    def parameter_of(element: str, mass: str, mode: str) -> str:
        if per_element[element] == 1:
            return element
        if per_mass[(element, mass)] == 1:
            return f"{element} {mass}"
        return f"{element} {mass} [{mode}]"

    builder = RowBuilder(grid, "agilent_masshunter_icpms")
    for row_no, cells in _data_rows(grid, second + 1):
        sample = grid.cell(cells, sample_at)
        measured = builder.time(row_no, column_label(time_at, columns[time_at]), grid.cell(cells, time_at)) \
            if time_at is not None else None
        dilution = builder.dilution(row_no, column_label(dilution_at, columns[dilution_at]),
                                    grid.cell(cells, dilution_at)) if dilution_at is not None else None
        for index, element, mass, mode, unit in channels:
            text = grid.cell(cells, index)
            if text:
                header = f"{element} {mass} {columns[index]}"
                builder.add(row_no, sample, parameter_of(element, mass, mode), text, unit, measured, dilution,
                            column_label(index, header))
    return builder.result()


# ---------------------------------------------------------------- Thermo Chromeleon (ion chromatography)

COMPONENT_HEADS = ("Peak Name", "Component", "组分", "组分名称", "峰名称")
NO_HEADS = ("No.", "No", "编号", "序号")
INJECTION_HEADS = ("Injection Name", "进样名称")
AMOUNT_HEADS = ("Amount", "含量", "浓度")
INJECTED_AT_HEADS = ("Inj. Date/Time", "Injection Date/Time", "进样日期/时间", "进样时间")
DILUTION_HEADS = ("Dil. Factor", "Dilution Factor", "稀释因子", "稀释倍数")


def _component_of(cells: list[str]) -> str | None:
    if not cells:
        return None
    head = re.sub(r"[:：]\s*$", "", cells[0].strip())
    if normalise(head) in {normalise(h) for h in COMPONENT_HEADS}:
        rest = [c for c in cells[1:] if c]
        return rest[0] if rest else ""
    return None


def parse_chromeleon_ic(content: bytes, *, profile: str = "Thermo Chromeleon IC") -> ParsedExport:
    """Thermo Scientific Chromeleon 7 summary report, exported as CSV (Report → Export, "Summary"
    sheet), as ion chromatographs of anions (HJ 84-2016) are usually reported.

    Layout (Chromeleon 7 Reporting help and Technical Note 70 "Data Reporting in Chromeleon": a
    summary table per component listing every injection of the sequence): header lines of the
    sequence (name, instrument, operator) are skipped; each component's table starts with a line
    "Peak Name:" (Chinese interface: "组分:") and the component's name, then the column titles
    "No.", "Injection Name", "Inj. Date/Time", "Dil. Factor", "Ret.Time", "Area", "Amount"
    (Chinese: 编号, 进样名称, 进样日期/时间, 稀释因子, 保留时间, 峰面积, 含量), then a line of units
    under them (min, µS*min, mg/L), then one line per injection; "n.a." where the peak was not
    found. A table ends at an empty line or the next component.

    Rows: one per injection × component; the parameter is the component's name as the
    chromatography method calls it (Chloride, 氯化物...), which the profile's aliases map to the
    lab's codes (Cl-, NO3-...); the unit is the one under "Amount".
    """
    grid = read_grid(content, "csv", profile=profile)
    builder = RowBuilder(grid, "thermo_chromeleon_ic")
    tables = 0
    position = 0
    rows = grid.rows
    while position < len(rows):
        component = _component_of(rows[position][1])
        if component is None:
            position += 1
            continue
        header_at = position + 1
        if header_at >= len(rows):
            break
        columns = rows[header_at][1]
        injection_at, amount_at = _find(columns, *INJECTION_HEADS), _find(columns, *AMOUNT_HEADS)
        if injection_at is None or amount_at is None or _find(columns, *NO_HEADS) is None:
            raise errors.UnknownLayout(
                profile=profile, detail_zh=f"第 {rows[header_at][0]} 行应为表头（No.、Injection Name、Amount）。",
                detail_en=f"row {rows[header_at][0]} should be the column titles (No., Injection Name, Amount).")
        time_at, dilution_at = _find(columns, *INJECTED_AT_HEADS), _find(columns, *DILUTION_HEADS)
        units = rows[header_at + 1][1] if header_at + 1 < len(rows) else []
        unit = grid.cell(units, amount_at)
        tables += 1
        position = header_at + 2
        while position < len(rows):
            row_no, cells = rows[position]
            if not any(cells) or _component_of(cells) is not None:
                break
            measured = builder.time(row_no, column_label(time_at, columns[time_at]), grid.cell(cells, time_at)) \
                if time_at is not None else None
            dilution = builder.dilution(row_no, column_label(dilution_at, columns[dilution_at]),
                                        grid.cell(cells, dilution_at)) if dilution_at is not None else None
            builder.add(row_no, grid.cell(cells, injection_at), component, grid.cell(cells, amount_at), unit,
                        measured, dilution, column_label(amount_at, f"{component} {columns[amount_at]}"))
            position += 1
    if not tables:
        raise errors.UnknownLayout(
            profile=profile, detail_zh="找不到 Chromeleon 汇总表（以“Peak Name:”或“组分:”开头的行）。",
            detail_en="no Chromeleon summary table (a line starting with “Peak Name:” or “组分:”).")
    return builder.result()


BUILTIN_PARSERS: dict[str, Callable[..., ParsedExport]] = {
    "agilent_masshunter_icpms": parse_masshunter_icpms,
    "thermo_chromeleon_ic": parse_chromeleon_ic,
}


def parse_export(content: bytes, *, builtin: str, mapping: dict[str, Any], profile: str) -> ParsedExport:
    """The rows of `content` read by a built-in parser or a generic mapping."""
    if not content:
        raise errors.ImportFileEmpty()
    if builtin:
        return BUILTIN_PARSERS[builtin](content, profile=profile)
    return parse_generic(content, mapping, profile=profile)
