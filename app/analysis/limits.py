"""Evaluation standards as versioned data: GB 3838-2002 surface-water classes, GB 3095-2012
ambient-air grades, discharge limits of a permit (issue 8 item 9; DOMAIN.md §4.5, §4.6).

A limit set is loaded whole, with every row checked first (Decimal bounds, low ≤ high, a class of
the set, a unit); loading a set whose code exists makes the next version, in force from its
`valid_from`, and closes the previous one on that day. Limit rows are append-only, so a sample
evaluated under version 1 (collected while it was in force) keeps being evaluated under version 1.

The built-in standards are CSV files in `app/analysis/data/` (columns parameter, class, low, high,
unit, water_body, averaging, source); `load_builtin_limit_sets` loads each once and makes a new
version only when the file's rows differ from the latest version's.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analysis import limit_errors as errors
from app.analysis.models import LimitSet, LimitValue, SiteLimitSet
from app.core import audit
from app.core.canonical import canonical_json, content_hash
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.sites.models import Site, SiteKind

DATA_DIR = Path(__file__).resolve().parent / "data"
CSV_COLUMNS = ("parameter", "class", "low", "high", "unit", "water_body", "averaging", "source")
PERMIT_COLUMNS = ("parameter", "limit", "unit")
PERMIT_CLASS = "limit"
MAX_ROWS = 2000
MAX_FILE_BYTES = 1024 * 1024
MAX_CLASSES = 10
CODE_RE = re.compile(r"^[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z\u4e00-\u9fff .\-_()（）]{0,59}$")
# a number as a standard prints it: no thousands separators, no comma decimals, no exponent tricks
NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")
FORMULA_START = ("=", "+", "-", "@")
RESERVED_CODES = frozenset({"import", "sites", "builtin"})  # the pages' own addresses under /limits/


class LimitKind:
    SURFACE_WATER = "surface_water"
    AMBIENT_AIR = "ambient_air"
    DISCHARGE = "discharge"


KINDS = (LimitKind.SURFACE_WATER, LimitKind.AMBIENT_AIR, LimitKind.DISCHARGE)
KIND_WORDS = {
    LimitKind.SURFACE_WATER: ("地表水", "surface water"),
    LimitKind.AMBIENT_AIR: ("环境空气", "ambient air"),
    LimitKind.DISCHARGE: ("排放限值", "discharge"),
}
SITE_KIND_WORDS = {
    SiteKind.SURFACE_WATER.value: ("地表水", "surface water"), SiteKind.GROUNDWATER.value: ("地下水", "groundwater"),
    SiteKind.AMBIENT_AIR.value: ("环境空气", "ambient air"), SiteKind.SOURCE_OUTLET.value: ("污染源排口", "outlet"),
    SiteKind.SOIL.value: ("土壤", "soil"), SiteKind.OTHER.value: ("其他", "other"),
}
# which sites a kind of standard evaluates: GB 3838 sections, GB 3095 stations, permits at outlets
SITE_KINDS_OF = {
    LimitKind.SURFACE_WATER: frozenset({SiteKind.SURFACE_WATER.value}),
    LimitKind.AMBIENT_AIR: frozenset({SiteKind.AMBIENT_AIR.value}),
    LimitKind.DISCHARGE: frozenset({SiteKind.SOURCE_OUTLET.value, SiteKind.OTHER.value}),
}
WATER_BODIES = ("", "river", "lake")  # lake: lakes and reservoirs (GB 3838-2002 Table 1, TP and TN)
AVERAGING = ("", "1h", "8h", "24h", "annual")  # GB 3095-2012 Table 1; 8h: daily maximum 8-hour mean


@dataclass(frozen=True)
class Builtin:
    """A standard shipped with the application; its rows are the CSV file, not code."""

    code: str
    kind: str
    name_zh: str
    name_en: str
    classes: tuple[str, ...]
    worse_than_all: str
    valid_from: date  # the standard's own date of entry into force
    source: str
    file: str


BUILTINS = (
    Builtin("GB 3838-2002", LimitKind.SURFACE_WATER, "地表水环境质量标准", "Environmental quality standards for "
            "surface water", ("I", "II", "III", "IV", "V"), "劣V", date(2002, 6, 1), "GB 3838-2002 Table 1",
            "gb3838_2002.csv"),
    Builtin("GB 3095-2012", LimitKind.AMBIENT_AIR, "环境空气质量标准", "Ambient air quality standards", ("1", "2"),
            "超二级", date(2016, 1, 1), "GB 3095-2012 Table 1", "gb3095_2012.csv"),
)


@dataclass(frozen=True)
class LimitRow:
    """One checked row: the bound(s) of one class for one parameter (and water body, averaging)."""

    parameter: str
    class_label: str
    low: Decimal | None
    high: Decimal | None
    unit: str
    water_body: str = ""
    averaging: str = ""

    def key(self) -> tuple[str, str, str, str]:
        return (self.parameter, self.class_label, self.water_body, self.averaging)

    def content(self) -> tuple[Any, ...]:
        return (self.parameter, self.class_label, self.low, self.high, self.unit, self.water_body, self.averaging)


@dataclass(frozen=True)
class LimitTable:
    """A limit set version with its rows, what the pure evaluation works on."""

    code: str
    version: int
    kind: str
    classes: tuple[str, ...]
    worse_than_all: str
    rows: tuple[LimitRow, ...]
    limit_set_id: int | None = None
    name_zh: str = ""
    name_en: str = ""

    @property
    def pass_fail(self) -> bool:
        return not self.worse_than_all


# ---------------------------------------------------------------- checking input


def _bad(row: int, column: str, zh: str, en: str) -> errors.LimitRowInvalid:
    return errors.LimitRowInvalid(row=row, column=column, detail_zh=zh, detail_en=en)


def parse_bound(value: Any, row: int, column: str) -> Decimal | None:
    """A limit as the standard prints it; empty is no bound. Refuses comma decimals, text,
    NaN, infinity and absurd exponents, naming the row and column."""
    if isinstance(value, Decimal):
        text = str(value)
    elif value is None:
        return None
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise _bad(row, column, "须为数字", "a number is expected")
    if not text:
        return None
    if "," in text or "，" in text:
        raise _bad(row, column, f"“{text[:20]}”含逗号：小数点请用英文句点（如 1.5）",
                   f"“{text[:20]}” has a comma: use a point as the decimal mark (1.5)")
    if not NUMBER_RE.match(text):
        raise _bad(row, column, f"“{text[:20]}”不是数字", f"“{text[:20]}” is not a number")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _bad(row, column, f"“{text[:20]}”不是数字", f"“{text[:20]}” is not a number") from None
    if not number.is_finite() or abs(number) >= Decimal("1e12") or (number != 0 and abs(number) < Decimal("1e-12")):
        raise _bad(row, column, f"“{text[:20]}”超出合理范围", f"“{text[:20]}” is out of any plausible range")
    if number < 0:
        raise _bad(row, column, "限值不能为负数", "a limit cannot be negative")
    return number


def _cell(raw: Mapping[str, Any], column: str) -> str:
    value = raw.get(column)
    return "" if value is None else str(value).strip()


def _text_cell(raw: Mapping[str, Any], column: str, row: int, limit: int, *, required: bool = False) -> str:
    text = _cell(raw, column)
    if required and not text:
        raise _bad(row, column, "不能为空", "it is empty")
    if len(text) > limit:
        raise _bad(row, column, f"超过 {limit} 个字符", f"longer than {limit} characters")
    if text.startswith(FORMULA_START):
        raise _bad(row, column, f"“{text[:20]}”以 {text[0]} 开头，像是电子表格公式，不予接受",
                   f"“{text[:20]}” starts with {text[0]} like a spreadsheet formula; it is not accepted")
    if any(ord(c) < 32 for c in text):
        raise _bad(row, column, "含控制字符", "it contains control characters")
    return text


def check_rows(rows: Sequence[Mapping[str, Any]], classes: Sequence[str], *,
               row_numbers: Sequence[int] | None = None) -> list[LimitRow]:
    """Every row checked before anything is written; the first wrong cell is named by its row
    (`row_numbers`: as the lab sees them in its file; otherwise counted from 1)."""
    if not rows:
        raise errors.LimitRowsRequired()
    if len(rows) > MAX_ROWS:
        raise errors.TooManyLimitRows(count=len(rows), limit=MAX_ROWS)
    checked: list[LimitRow] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    units: dict[tuple[str, str, str], tuple[str, int]] = {}
    for index, raw in enumerate(rows):
        row = row_numbers[index] if row_numbers else index + 1
        parameter = _text_cell(raw, "parameter", row, 60, required=True)
        label = _text_cell(raw, "class", row, 20, required=True)
        if label not in classes:
            raise _bad(row, "class", f"“{label}”不是本标准的类别（{'、'.join(classes)}）",
                       f"“{label}” is not a class of this standard ({', '.join(classes)})")
        low, high = parse_bound(raw.get("low"), row, "low"), parse_bound(raw.get("high"), row, "high")
        if low is None and high is None:
            raise _bad(row, "high", "上限和下限至少给出一个", "give a lower or an upper bound (or both)")
        if low is not None and high is not None and low > high:
            raise _bad(row, "low", f"下限 {low} 大于上限 {high}",
                       f"the lower bound {low} is above the upper bound {high}")
        unit = _text_cell(raw, "unit", row, 16, required=True)
        water_body = _text_cell(raw, "water_body", row, 12)
        if water_body not in WATER_BODIES:
            raise _bad(row, "water_body", f"“{water_body}”无效：留空、river（河流）或 lake（湖库）",
                       f"“{water_body}” is not valid: empty, river or lake (lakes and reservoirs)")
        averaging = _text_cell(raw, "averaging", row, 12)
        if averaging not in AVERAGING:
            raise _bad(row, "averaging", f"“{averaging}”无效：留空、1h、8h、24h 或 annual",
                       f"“{averaging}” is not valid: empty, 1h, 8h, 24h or annual")
        _text_cell(raw, "source", row, 200)
        limit = LimitRow(parameter, label, low, high, unit, water_body, averaging)
        if limit.key() in seen:
            raise errors.LimitRowDuplicate(row=row, first=seen[limit.key()], parameter=parameter, class_label=label)
        seen[limit.key()] = row
        group = (parameter, water_body, averaging)
        first_unit = units.setdefault(group, (unit, row))
        if first_unit[0] != unit:
            raise _bad(row, "unit", f"{parameter} 在第 {first_unit[1]} 行用 {first_unit[0]}，同一项目的单位须一致",
                       f"{parameter} is in {first_unit[0]} on row {first_unit[1]}; one parameter keeps one unit")
        checked.append(limit)
    return checked


def _check_classes(classes: Sequence[str], worse_than_all: str) -> tuple[list[str], str]:
    labels = [str(c).strip() for c in classes]
    if not labels or len(labels) > MAX_CLASSES:
        raise errors.LimitSetClassesInvalid(detail_zh=f"须有 1–{MAX_CLASSES} 个类别",
                                            detail_en=f"1 to {MAX_CLASSES} classes are needed")
    if any(not c or len(c) > 20 for c in labels) or len(set(labels)) != len(labels):
        raise errors.LimitSetClassesInvalid(detail_zh="类别名称须为 1–20 个字符且互不相同",
                                            detail_en="class labels are 1–20 characters and all different")
    worse = (worse_than_all or "").strip()
    if len(worse) > 20 or worse in labels:
        raise errors.LimitSetClassesInvalid(detail_zh=f"“劣于所有类别”的名称“{worse[:20]}”无效",
                                            detail_en=f"the label beyond the last class “{worse[:20]}” is not valid")
    return labels, worse


def clean_code(code: Any) -> str:
    text = re.sub(r"\s+", " ", code if isinstance(code, str) else "").strip()
    if not CODE_RE.match(text) or text.lower() in RESERVED_CODES:
        raise errors.LimitSetCodeInvalid(standard=text[:60] or "—")
    return text


# ---------------------------------------------------------------- loading


def _latest(session: Session, code: str, *, lock: bool = False) -> LimitSet | None:
    stmt = select(LimitSet).where(LimitSet.code == code).order_by(LimitSet.version.desc()).limit(1)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def _set_snapshot(limit_set: LimitSet) -> dict[str, Any]:
    return {"code": limit_set.code, "version": limit_set.version, "kind": limit_set.kind,
            "name_zh": limit_set.name_zh, "name_en": limit_set.name_en, "classes": json.loads(limit_set.classes),
            "worse_than_all": limit_set.worse_than_all, "valid_from": limit_set.valid_from,
            "valid_to": limit_set.valid_to, "source": limit_set.source}


def rows_hash(rows: Sequence[LimitRow]) -> str:
    """The content of a version's rows, independent of their order and of how a number was written."""
    return content_hash(sorted([r.parameter, r.class_label, None if r.low is None else r.low.normalize(),
                                None if r.high is None else r.high.normalize(), r.unit, r.water_body, r.averaging]
                               for r in rows))


def _write(session: Session, actor: Any, created_by_id: int, code: str, kind: str, name_zh: str, name_en: str,
           classes: Sequence[str], worse_than_all: str, valid_from: date, source: str,
           rows: list[LimitRow]) -> LimitSet:
    previous = _latest(session, code, lock=True)
    if previous is not None and valid_from < previous.valid_from:
        raise errors.LimitSetBackdated(standard=code, version=previous.version,
                                       valid_from=previous.valid_from.isoformat(), new_from=valid_from.isoformat())
    now = utcnow()
    limit_set = LimitSet(code=code, version=(previous.version + 1) if previous else 1, kind=kind, name_zh=name_zh,
                         name_en=name_en, classes=canonical_json(list(classes)), worse_than_all=worse_than_all,
                         valid_from=valid_from, source=source, created_at=now, created_by_id=created_by_id)
    session.add(limit_set)
    if previous is not None and (previous.valid_to is None or previous.valid_to > valid_from):
        before = _set_snapshot(previous)
        previous.valid_to = valid_from
        session.flush()
        audit.append(session, actor, "limit_set.superseded", "limit_set", previous.id, before, _set_snapshot(previous))
    session.flush()
    session.add_all([LimitValue(limit_set_id=limit_set.id, parameter=r.parameter, class_label=r.class_label, low=r.low,
                                high=r.high, unit=r.unit, water_body=r.water_body, averaging=r.averaging)
                     for r in rows])
    session.flush()
    audit.append(session, actor, "limit_set.loaded", "limit_set", limit_set.id, None,
                 {**_set_snapshot(limit_set), "rows": len(rows), "rows_hash": rows_hash(rows)})
    return limit_set


def _check_set(code: Any, kind: Any, name_zh: Any, name_en: Any, classes: Sequence[str], worse_than_all: str,
               valid_from: Any, source: Any) -> tuple[str, str, str, str, list[str], str, date, str]:
    code_text = clean_code(code)
    kind_text = str(kind or "").strip()
    if kind_text not in KINDS:
        raise errors.LimitSetKindUnknown(kind=kind_text[:30] or "—")
    zh = str(name_zh or "").strip()
    if not zh or len(zh) > 200:
        raise errors.LimitSetNameRequired()
    en = str(name_en or "").strip()[:200]
    labels, worse = _check_classes(classes, worse_than_all)
    if not isinstance(valid_from, date):
        raise errors.LimitSetClassesInvalid(detail_zh="执行日期须为日期", detail_en="the date in force must be a date")
    source_text = str(source or "").strip()
    if len(source_text) > 200:
        raise errors.LimitSetClassesInvalid(detail_zh="来源超过 200 个字符",
                                            detail_en="the source is over 200 characters")
    return code_text, kind_text, zh, en, labels, worse, valid_from, source_text


def load_limit_set(session: Session, actor: User, code: str, kind: str, name_zh: str, name_en: str,
                   classes: Sequence[str], worse_than_all: str, valid_from: date, source: str,
                   rows: Sequence[Mapping[str, Any]]) -> LimitSet:
    """Load a limit set (technical manager): version 1, or the next version of `code` in force
    from `valid_from`. Every row is checked before anything is written."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    code, kind, name_zh, name_en, labels, worse, valid_from, source = _check_set(
        code, kind, name_zh, name_en, classes, worse_than_all, valid_from, source)
    checked = check_rows(rows, labels)
    return _write(session, actor, actor.id, code, kind, name_zh, name_en, labels, worse, valid_from, source, checked)


def read_csv(data: bytes, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV as dicts (UTF-8 with or without BOM, or GB 18030 as Excel saves it in
    China); the header must name `columns`."""
    if len(data) > MAX_FILE_BYTES:
        raise errors.LimitFileInvalid(detail_zh=f"文件超过 {MAX_FILE_BYTES // 1024} KB",
                                      detail_en=f"the file is larger than {MAX_FILE_BYTES // 1024} KB")
    if not data.strip():
        raise errors.LimitFileInvalid(detail_zh="文件为空", detail_en="the file is empty")
    if b"\x00" in data:
        raise errors.LimitFileInvalid(detail_zh="不是文本文件", detail_en="it is not a text file")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise errors.LimitFileInvalid(detail_zh="无法识别文件编码", detail_en="unknown text encoding")
    try:
        reader = csv.reader(io.StringIO(text))
        lines = [line for line in reader]
    except csv.Error as error:
        raise errors.LimitFileInvalid(detail_zh=f"CSV 格式错误：{error}", detail_en=f"malformed CSV: {error}") from None
    header = [h.strip().lower() for h in (lines[0] if lines else [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise errors.LimitFileInvalid(detail_zh=f"第 1 行须为表头，缺少列：{', '.join(missing)}",
                                      detail_en=f"row 1 must be the header; missing columns: {', '.join(missing)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) > len(header) and any(cell.strip() for cell in line[len(header):]):
            raise _bad(number, str(len(header) + 1),
                       f"本行有 {len(line)} 个单元格而表头只有 {len(header)} 列；"
                       "逗号作小数点（1,5）会把数字拆开，请写 1.5",
                       f"the row has {len(line)} cells but the header {len(header)}; a comma as decimal mark (1,5) "
                       "splits the number: write 1.5")
        if not any(cell.strip() for cell in line):
            rows.append({})  # an empty line keeps the row numbers as the lab sees them; skipped below
            continue
        rows.append({name: (line[i] if i < len(line) else "") for i, name in enumerate(header)})
    return rows


def _check_file_rows(rows: list[dict[str, str]], classes: Sequence[str]) -> list[LimitRow]:
    """The rows of a file (empty lines skipped), named by their line in the file (header = 1)."""
    numbers = [index + 2 for index, row in enumerate(rows) if row]
    return check_rows([row for row in rows if row], classes, row_numbers=numbers)


def builtin_rows(builtin: Builtin) -> list[LimitRow]:
    return _check_file_rows(read_csv((DATA_DIR / builtin.file).read_bytes(), CSV_COLUMNS), builtin.classes)


def _system_person(session: Session) -> int:
    """Whom a set loaded by the system is recorded under: the server operator's first account
    (the one `lims user add` made), since a limit set names a person; the trail says `system`."""
    first = session.scalar(select(func.min(User.id)))
    if first is None:
        raise errors.LimitNeedsAPerson()
    return first


def load_builtin_limit_sets(session: Session, actor: User | None = None) -> list[LimitSet]:
    """Load the shipped standards once each (idempotent); a file whose rows changed since the
    latest version becomes the next version, in force from today (lab time), so evaluations
    of samples collected earlier keep the version they were made under. Returns what was loaded."""
    if actor is not None:
        ensure(session, actor, Permission.METHODS_MANAGE)
    loaded: list[LimitSet] = []
    for builtin in BUILTINS:
        rows = builtin_rows(builtin)
        latest = _latest(session, builtin.code)
        if latest is not None and rows_hash(rows) == rows_hash(table_of(session, latest).rows):
            continue
        valid_from = builtin.valid_from if latest is None else max(builtin.valid_from, lab_calendar(session).today(),
                                                                   latest.valid_from)
        person = actor.id if actor is not None else _system_person(session)
        loaded.append(_write(session, actor, person, builtin.code, builtin.kind, builtin.name_zh, builtin.name_en,
                             builtin.classes, builtin.worse_than_all, valid_from, builtin.source, rows))
    return loaded


def builtin_changes(session: Session) -> list[str]:
    """Codes of built-in standards missing or differing from their file (the page offers to load them)."""
    codes = [b.code for b in BUILTINS]
    latest = {s.code: s for s in session.scalars(
        select(LimitSet).where(LimitSet.code.in_(codes)).order_by(LimitSet.code, LimitSet.version))}
    changed = []
    for builtin in BUILTINS:
        found = latest.get(builtin.code)
        if found is None or rows_hash(builtin_rows(builtin)) != rows_hash(table_of(session, found).rows):
            changed.append(builtin.code)
    return changed


def parse_day(value: date | str | None, default: date) -> date:
    if isinstance(value, date):
        return value
    text = (value or "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise errors.LimitDateInvalid(value=text[:20]) from None


def import_permit_limits(session: Session, actor: User, code: str, name: str, csv_bytes: bytes, *,
                         valid_from: date | str | None = None, source: str = "") -> LimitSet:
    """A discharge permit's limits from a CSV upload (parameter, limit, unit): one class, pass or
    fail. A limit written as a range ("6-9", "6~9") is a range (pH); otherwise an upper bound."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    code_text = clean_code(code)
    rows = read_csv(csv_bytes, PERMIT_COLUMNS)
    converted: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        if not row:
            converted.append({})
            continue
        number = index + 2
        limit = _text_cell(row, "limit", number, 40, required=True)
        low, high = "", limit
        if match := re.fullmatch(r"\s*([0-9.]+)\s*[~～\-–—]\s*([0-9.]+)\s*", limit):
            low, high = match.group(1), match.group(2)
        converted.append({"parameter": row.get("parameter", ""), "class": PERMIT_CLASS, "low": low, "high": high,
                          "unit": row.get("unit", ""), "source": row.get("source", "")})
    checked = _check_file_rows(converted, [PERMIT_CLASS])
    _, kind, name_zh, name_en, labels, worse, day, source_text = _check_set(
        code_text, LimitKind.DISCHARGE, name, name, [PERMIT_CLASS], "",
        parse_day(valid_from, lab_calendar(session).today()), source or code_text)
    return _write(session, actor, actor.id, code_text, kind, name_zh, name_en, labels, worse, day, source_text, checked)


# ---------------------------------------------------------------- reading

DIMENSIONLESS = frozenset({"", "无量纲", "dimensionless", "ph", "-", "无"})


def limit_text(row: LimitRow) -> str:
    """A limit as a report prints it: "≤ 1.0 mg/L", "≥ 5 mg/L", "6–9"."""
    unit = "" if row.unit.strip().lower() in DIMENSIONLESS else f" {row.unit}"
    if row.low is not None and row.high is not None:
        return f"{row.low}–{row.high}{unit}"
    if row.low is not None:
        return f"≥ {row.low}{unit}"
    return f"≤ {row.high}{unit}"


@dataclass(frozen=True)
class TableLine:
    """One line of a standard's table: a parameter (for a water body, an averaging period) and
    its limit in each class, "" where the class has none."""

    parameter: str
    water_body: str
    averaging: str
    unit: str
    cells: tuple[str, ...]


def table_lines(table: LimitTable) -> list[TableLine]:
    """The table as the standard prints it: parameters in file order × classes."""
    groups: dict[tuple[str, str, str], dict[str, LimitRow]] = {}
    for row in table.rows:
        groups.setdefault((row.parameter, row.water_body, row.averaging), {})[row.class_label] = row
    lines = []
    for (parameter, water_body, averaging), by_class in groups.items():
        unit = next(iter(by_class.values())).unit
        cells = tuple(limit_text(LimitRow(r.parameter, r.class_label, r.low, r.high, "", "", ""))
                      if (r := by_class.get(label)) else "" for label in table.classes)
        lines.append(TableLine(parameter, water_body, averaging, unit, cells))
    return lines



def table_of(session: Session, limit_set: LimitSet) -> LimitTable:
    values = session.scalars(select(LimitValue).where(LimitValue.limit_set_id == limit_set.id)
                             .order_by(LimitValue.id)).all()
    return table_from(limit_set, values)


def table_from(limit_set: LimitSet, values: Sequence[LimitValue]) -> LimitTable:
    return LimitTable(limit_set.code, limit_set.version, limit_set.kind, tuple(json.loads(limit_set.classes)),
                      limit_set.worse_than_all,
                      tuple(LimitRow(v.parameter, v.class_label, v.low, v.high, v.unit, v.water_body, v.averaging)
                            for v in values), limit_set.id, limit_set.name_zh, limit_set.name_en)


def _in_force(on: date) -> tuple[Any, ...]:
    return (LimitSet.valid_from <= on, (LimitSet.valid_to.is_(None)) | (LimitSet.valid_to > on))


def limit_set_in_force(session: Session, code: str, on: date) -> LimitSet:
    """The version of `code` in force on the lab-local day `on` (the latest one if several)."""
    found = session.scalars(select(LimitSet).where(LimitSet.code == code, *_in_force(on))
                            .order_by(LimitSet.version.desc()).limit(1)).first()
    if found is None:
        if _latest(session, code) is None:
            raise errors.LimitSetNotFound(standard=code[:60] or "—")
        raise errors.LimitSetNotInForce(standard=code, on=on.isoformat())
    return found


def limit_set_version(session: Session, code: str, version: int | None = None) -> LimitSet:
    stmt = select(LimitSet).where(LimitSet.code == code)
    stmt = stmt.where(LimitSet.version == version) if version else stmt.order_by(LimitSet.version.desc()).limit(1)
    found = session.scalars(stmt).first()
    if found is None:
        raise errors.LimitSetNotFound(standard=f"{code[:60]} v{version}" if version else code[:60] or "—")
    return found


def versions_of(session: Session, code: str) -> list[LimitSet]:
    return list(session.scalars(select(LimitSet).where(LimitSet.code == code).order_by(LimitSet.version.desc())))


# ---------------------------------------------------------------- sites


def _site(session: Session, site: Site | str) -> Site:
    if isinstance(site, Site):
        return site
    text = str(site or "").strip().upper()
    found = session.scalars(select(Site).where(Site.code == text)).first() if text else None
    if found is None:
        raise errors.SiteNotFound(site=text[:30] or "—")
    return found


def _site_kind(session: Session, site: Site) -> str:
    from app.sites.models import SiteVersion

    version = session.get(SiteVersion, site.current_version_id) if site.current_version_id else None
    if version is None:
        version = session.scalars(select(SiteVersion).where(SiteVersion.site_id == site.id)
                                  .order_by(SiteVersion.version_no.desc()).limit(1)).first()
    return version.kind if version is not None else ""


def _assignment_snapshot(row: SiteLimitSet) -> dict[str, Any]:
    return {"site_id": row.site_id, "limit_set_code": row.limit_set_code, "target_class": row.target_class,
            "assigned_at": row.assigned_at, "assigned_by_id": row.assigned_by_id}


def assign_site(session: Session, actor: User, site: Site | str, limit_set_code: str,
                target_class: str = "") -> SiteLimitSet:
    """Say which standard evaluates a site's results and the class (or grade) it should meet;
    assigning the same standard again changes the target class."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    found = _site(session, site)
    code = clean_code(limit_set_code)
    latest = _latest(session, code)
    if latest is None:
        raise errors.LimitSetNotFound(standard=code)
    classes = json.loads(latest.classes)
    target = (target_class or "").strip()
    if target and target not in classes:
        raise errors.TargetClassUnknown(target=target[:20], standard=code, classes="、".join(classes))
    site_kind = _site_kind(session, found)
    if site_kind not in SITE_KINDS_OF.get(latest.kind, frozenset()):
        site_words = SITE_KIND_WORDS.get(site_kind, (site_kind or "—", site_kind or "—"))
        set_words = KIND_WORDS.get(latest.kind, (latest.kind, latest.kind))
        raise errors.LimitSetWrongKindForSite(site=found.code, standard=code, site_kind_zh=site_words[0],
                                              site_kind_en=site_words[1], set_kind_zh=set_words[0],
                                              set_kind_en=set_words[1])
    row = session.scalars(select(SiteLimitSet).where(SiteLimitSet.site_id == found.id,
                                                     SiteLimitSet.limit_set_code == code).with_for_update()).first()
    now = utcnow()
    if row is None:
        row = SiteLimitSet(site_id=found.id, limit_set_code=code, target_class=target, assigned_at=now,
                           assigned_by_id=actor.id)
        session.add(row)
        session.flush()
        audit.append(session, actor, "limit_set.site_assigned", "site_limit_set", row.id, None,
                     {**_assignment_snapshot(row), "site": found.code})
        return row
    before = _assignment_snapshot(row)
    row.target_class, row.assigned_at, row.assigned_by_id = target, now, actor.id
    session.flush()
    audit.append(session, actor, "limit_set.site_assigned", "site_limit_set", row.id, before,
                 {**_assignment_snapshot(row), "site": found.code})
    return row


@dataclass(frozen=True)
class LimitSetLine:
    code: str
    latest: LimitSet
    versions: list[LimitSet]
    sites: int

    @property
    def classes(self) -> list[str]:
        return list(json.loads(self.latest.classes))


def list_limit_sets(session: Session, *, kind: str = "", page: int = 1,
                    size: int = 50) -> tuple[list[LimitSetLine], int]:
    """The standards (one line per code, its versions newest first) and how many: three queries."""
    codes_stmt = select(LimitSet.code).group_by(LimitSet.code)
    if kind:
        codes_stmt = codes_stmt.where(LimitSet.kind == kind)
    total = session.scalar(select(func.count()).select_from(codes_stmt.subquery())) or 0
    codes = list(session.scalars(codes_stmt.order_by(LimitSet.code).limit(size).offset((max(1, page) - 1) * size)))
    if not codes:
        return [], total
    versions: dict[str, list[LimitSet]] = {}
    for row in session.scalars(select(LimitSet).where(LimitSet.code.in_(codes))
                               .order_by(LimitSet.code, LimitSet.version.desc())):
        versions.setdefault(row.code, []).append(row)
    sites = dict(session.execute(select(SiteLimitSet.limit_set_code, func.count()).where(
        SiteLimitSet.limit_set_code.in_(codes)).group_by(SiteLimitSet.limit_set_code)).all())
    return [LimitSetLine(c, versions[c][0], versions[c], sites.get(c, 0)) for c in codes], total


@dataclass(frozen=True)
class Assignment:
    row: SiteLimitSet
    site: Site
    name_zh: str
    name_en: str


def site_assignments(session: Session, code: str | None = None) -> list[Assignment]:
    """Sites with the standard they are evaluated against (two queries)."""
    from app.sites.models import SiteVersion

    stmt = select(SiteLimitSet, Site).join(Site, Site.id == SiteLimitSet.site_id)
    if code:
        stmt = stmt.where(SiteLimitSet.limit_set_code == code)
    pairs = session.execute(stmt.order_by(Site.code, SiteLimitSet.limit_set_code)).all()
    version_ids = {s.current_version_id for _, s in pairs if s.current_version_id}
    names = {v.id: v for v in session.scalars(select(SiteVersion).where(SiteVersion.id.in_(version_ids)))} \
        if version_ids else {}
    result = []
    for row, site in pairs:
        version = names.get(site.current_version_id)
        result.append(Assignment(row, site, version.name_zh if version else "", version.name_en if version else ""))
    return result


def assignable_sites(session: Session) -> list[tuple[Site, str, str]]:
    """Sites that can be assigned a standard: code, current name and kind (two queries)."""
    from app.sites.models import SiteVersion

    sites = list(session.scalars(select(Site).order_by(Site.code)))
    ids = {s.current_version_id for s in sites if s.current_version_id}
    versions = {v.id: v for v in session.scalars(select(SiteVersion).where(SiteVersion.id.in_(ids)))} if ids else {}
    return [(s, versions[s.current_version_id].name_zh, versions[s.current_version_id].kind)
            for s in sites if s.current_version_id in versions]
