"""Automatic-station readings, imported as CSV for now (issue 10: "station data arrive as CSV").

One file, one transaction: all its readings or none. Columns (by header, any order):
site_code, parameter, measured_at, value, unit — or 站点, 项目, 时间, 数值, 单位. Bytes are read as
UTF-8 (with or without BOM), UTF-16 with its BOM, or GBK/GB18030 (what Chinese station software
writes). A time is ISO 8601 (an offset is honoured) or "YYYY-MM-DD HH:MM" in the lab's local time.
Values are exact Decimals read strictly: a cell such as "=1+1" is text, never a formula, and is
refused as not a number. Every bad line is named in one refusal (unknown site, bad number, bad
time, empty cell, a reading repeated in the file or already imported), so the sender fixes the
file once. The same bytes twice are refused by their SHA-256; the raw file is kept in the
content-addressed store; one audit event records the import.

The readings are what the A13 rule compares with manual results of the same site and time.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PureWindowsPath

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.analysis import import_errors
from app.analysis.import_parsers import BadCell, decode_text, normalise, parse_reading
from app.config import settings_of
from app.core import audit
from app.core.db import utcnow
from app.core.files import FileStore, StoredFile, file_store
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.oversight import station_errors as errors
from app.oversight.models import StationImport, StationReading
from app.people.models import User
from app.sites.models import Site

MAX_BYTES = 20 * 1024 * 1024
MEDIA_TYPE = "text/csv"
COLUMNS = ("site_code", "parameter", "measured_at", "value", "unit")
HEADER_NAMES = {
    "site_code": ("site_code", "site", "站点", "站点编码", "站点代码", "点位", "点位编码"),
    "parameter": ("parameter", "项目", "监测项目", "因子", "参数"),
    "measured_at": ("measured_at", "time", "时间", "监测时间", "测定时间"),
    "value": ("value", "数值", "监测值", "浓度"),
    "unit": ("unit", "单位"),
}
COLUMN_WORDS = {"site_code": "site_code/站点", "parameter": "parameter/项目", "measured_at": "measured_at/时间",
                "value": "value/数值", "unit": "unit/单位"}
LOCAL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S")
MAX_PARAMETER, MAX_UNIT = 60, 16
FUTURE_TOLERANCE = timedelta(minutes=5)


# ---------------------------------------------------------------- reading the file (no writes)


@dataclass(frozen=True)
class ParsedReading:
    row_no: int
    site_id: int
    parameter: str
    measured_at: datetime  # UTC
    value: Decimal
    unit: str


def _decode(content: bytes) -> tuple[str, str]:
    try:
        return decode_text(content)
    except import_errors.UnreadableEncoding:
        raise errors.StationFileEncoding() from None


def _header_index(header: Sequence[str]) -> dict[str, int]:
    wanted = {normalise(name): column for column, names in HEADER_NAMES.items() for name in names}
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = wanted.get(normalise(cell))
        if column and column not in found:
            found[column] = index
    missing = [COLUMN_WORDS[c] for c in COLUMNS if c not in found]
    if missing:
        raise errors.StationColumnsMissing(missing=", ".join(missing))
    return found


def parse_time(text: str, tz) -> datetime:  # noqa: ANN001 - a ZoneInfo
    """ISO 8601 (with an offset: that instant) or a lab-local wall time; UTC out. Raises BadCell."""
    cleaned = " ".join(text.split())
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        for fmt in LOCAL_FORMATS:
            try:
                moment = datetime.strptime(cleaned, fmt)
                break
            except ValueError:
                continue
    if moment is None or not 2000 <= moment.year <= 2999:
        raise BadCell("bad_time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def read_rows(session: Session, text: str) -> list[ParsedReading]:
    """Every line read, or StationRowsRefused naming every bad one."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    try:
        grid = [(n, [c.strip() for c in cells])
                for n, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)]
    except csv.Error as error:
        raise errors.StationFileMalformed(detail=str(error)[:200]) from None
    grid = [(n, cells) for n, cells in grid if any(cells)]
    if len(grid) < 2:
        raise errors.StationFileEmpty()
    index = _header_index(grid[0][1])
    header_width = len(grid[0][1])
    sites = {normalise(code): site_id for site_id, code in session.execute(select(Site.id, Site.code))}
    tz = lab_calendar(session).tz
    latest = utcnow() + FUTURE_TOLERANCE
    problems: list[errors.StationRowProblem] = []
    readings: list[ParsedReading] = []
    seen: dict[tuple[int, str, datetime], int] = {}
    for row_no, cells in grid[1:]:
        found = len(problems)

        def cell(column: str) -> str:
            i = index[column]
            return cells[i] if i < len(cells) else ""  # noqa: B023

        def bad(column: str, code: str, text: str = "") -> None:
            problems.append(errors.StationRowProblem(row_no, COLUMN_WORDS[column], code, text))  # noqa: B023

        if len(cells) > header_width and any(cells[header_width:]):
            problems.append(errors.StationRowProblem(row_no, "—", "too_many_cells"))
        for column in COLUMNS:
            if not cell(column):
                bad(column, "empty")
        site_text, parameter, time_text, value_text, unit = (cell(c) for c in COLUMNS)
        site_id = sites.get(normalise(site_text)) if site_text else None
        if site_text and site_id is None:
            bad("site_code", "unknown_site", site_text)
        if len(parameter) > MAX_PARAMETER:
            bad("parameter", "too_long", parameter)
        if len(unit) > MAX_UNIT:
            bad("unit", "too_long", unit)
        measured_at = value = None
        if time_text:
            try:
                measured_at = parse_time(time_text, tz)
                if measured_at > latest:
                    bad("measured_at", "future_time", time_text)
            except BadCell:
                bad("measured_at", "bad_time", time_text)
        if value_text:
            try:
                value = parse_reading(value_text)
                if value is None:  # "ND", "<0.01", "n.a.": a station reading must be a number
                    bad("value", "not_a_number", value_text)
            except BadCell as refused:
                bad("value", refused.code, value_text)
        if len(problems) > found or site_id is None or measured_at is None or value is None:
            continue
        key = (site_id, parameter, measured_at)
        if key in seen:
            bad("measured_at", "repeated_in_file", str(seen[key]))
            continue
        seen[key] = row_no
        readings.append(ParsedReading(row_no, site_id, parameter, measured_at, value, unit))
    problems.extend(_already_recorded(session, readings))
    if problems:
        raise errors.StationRowsRefused(sorted(problems, key=lambda p: p.row_no))
    return readings


def _already_recorded(session: Session, readings: Sequence[ParsedReading]) -> list[errors.StationRowProblem]:
    """Readings of the same site, parameter and time imported before (from another file): one
    query over the file's sites and time span, compared in Python."""
    if not readings:
        return []
    wanted = {(r.site_id, r.parameter, r.measured_at): r.row_no for r in readings}
    sites = sorted({r.site_id for r in readings})
    low, high = min(r.measured_at for r in readings), max(r.measured_at for r in readings)
    problems = []
    rows = session.execute(select(StationReading.site_id, StationReading.parameter, StationReading.measured_at,
                                  StationReading.import_id)
                           .where(StationReading.site_id.in_(sites), StationReading.measured_at >= low,
                                  StationReading.measured_at <= high))
    for site_id, parameter, measured_at, import_id in rows:
        row_no = wanted.get((site_id, parameter, measured_at))
        if row_no is not None:
            problems.append(errors.StationRowProblem(row_no, COLUMN_WORDS["measured_at"], "already_recorded",
                                                     f"#{import_id}"))
    return problems


# ---------------------------------------------------------------- the import


def _assert_new_file(session: Session, sha256: str) -> None:
    earlier = session.execute(select(StationImport, User).outerjoin(User, User.id == StationImport.imported_by_id)
                              .where(StationImport.sha256 == sha256).order_by(StationImport.id).limit(1)).first()
    if earlier is not None:
        done, user = earlier
        at = done.imported_at.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")
        raise errors.StationFileAlreadyImported(sha_short=sha256[:12], at=at, rows=done.rows,
                                                who=user.printed_name if user else "—")


def import_station_csv(session: Session, actor: User, filename: str, content: bytes, *,
                       store: FileStore | None = None, max_bytes: int = MAX_BYTES) -> StationImport:
    """Import a CSV of automatic-station readings: every line, or nothing."""
    ensure(session, actor, Permission.STATION_DATA_IMPORT)
    if len(content) > max_bytes:
        raise errors.StationFileTooLarge(size_mb=f"{len(content) / 1024 / 1024:.1f}",
                                         limit_mb=max_bytes // (1024 * 1024))
    if not content.strip():
        raise errors.StationFileEmpty()
    sha256 = hashlib.sha256(content).hexdigest()
    _assert_new_file(session, sha256)
    text, encoding = _decode(content)
    readings = read_rows(session, text)
    store = store or file_store(settings_of(session).ensure_data_dir())
    stored_sha, size = store.put(io.BytesIO(content), max_bytes)
    now = utcnow()
    stored = StoredFile(sha256=stored_sha, size=size, media_type=MEDIA_TYPE,
                        filename=PureWindowsPath(filename or "stations.csv").name[:255] or "stations.csv",
                        uploaded_at=now, uploaded_by_id=actor.id)
    session.add(stored)
    session.flush()
    row = StationImport(file_id=stored.id, sha256=sha256, rows=len(readings), imported_at=now,
                        imported_by_id=actor.id)
    session.add(row)
    session.flush()
    session.execute(insert(StationReading), [
        {"import_id": row.id, "site_id": r.site_id, "parameter": r.parameter, "measured_at": r.measured_at,
         "value": r.value, "unit": r.unit} for r in readings])
    site_codes = dict(session.execute(select(Site.id, Site.code).where(
        Site.id.in_(sorted({r.site_id for r in readings})))).all())
    audit.append(session, actor, "station.imported", "station_import", row.id, None, {
        "sha256": sha256, "file_id": stored.id, "filename": stored.filename, "size": size, "encoding": encoding,
        "rows": len(readings), "sites": sorted(site_codes.values()),
        "parameters": sorted({r.parameter for r in readings}),
        "first": min(r.measured_at for r in readings), "last": max(r.measured_at for r in readings)})
    return row


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class ImportRow:
    station_import: StationImport
    filename: str
    imported_by: User | None


@dataclass(frozen=True)
class ReadingRow:
    reading: StationReading
    site_code: str


def list_imports(session: Session, page: int, size: int) -> Page[ImportRow]:
    """The imports, newest first, with their file's name and who imported (two queries)."""
    stmt = (select(StationImport, StoredFile.filename, User)
            .join(StoredFile, StoredFile.id == StationImport.file_id)
            .outerjoin(User, User.id == StationImport.imported_by_id)
            .order_by(StationImport.imported_at.desc(), StationImport.id.desc()))
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(StationImport)) or 0
    rows = session.execute(stmt.limit(size).offset((page - 1) * size)).all()
    return Page([ImportRow(i, name, user) for i, name, user in rows], page, size, total)


@dataclass(frozen=True)
class ReadingFilter:
    site_code: str = ""
    parameter: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _reading_query(f: ReadingFilter):  # noqa: ANN202
    stmt = select(StationReading, Site.code).join(Site, Site.id == StationReading.site_id)
    if f.site_code:
        stmt = stmt.where(func.upper(Site.code) == f.site_code.strip().upper())
    if f.parameter:
        stmt = stmt.where(StationReading.parameter == f.parameter.strip())
    if f.since:
        stmt = stmt.where(StationReading.measured_at >= f.since)
    if f.until:
        stmt = stmt.where(StationReading.measured_at < f.until)
    return stmt


def list_readings(session: Session, f: ReadingFilter, page: int, size: int) -> Page[ReadingRow]:
    """Readings, the latest first, filtered by site and parameter (two queries)."""
    stmt = _reading_query(f)
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.order_by(StationReading.measured_at.desc(), StationReading.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    return Page([ReadingRow(r, code) for r, code in rows], page, size, total)


def filter_choices(session: Session) -> tuple[list[str], list[str]]:
    """The site codes and parameters that have readings (for the filters; two small queries)."""
    sites = list(session.scalars(select(Site.code).where(
        Site.id.in_(select(StationReading.site_id).distinct())).order_by(Site.code)))
    parameters = list(session.scalars(select(StationReading.parameter).distinct().order_by(StationReading.parameter)))
    return sites, parameters

