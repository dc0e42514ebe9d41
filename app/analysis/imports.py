"""Importing an instrument's export into an analysis batch (issue 8 item 6).

One file, one transaction: the raw bytes are kept in the content-addressed store by SHA-256, the
rows are read by the chosen profile (`import_parsers`), matched to the batch's positions and
parameters, and the matched readings go through the same door as typed ones
(`results.record_results`, source "import"), which checks every one (units, dilution, times,
the instrument and the curve at the time of measurement) and refuses all of them if one is bad.
Any refusal leaves nothing behind: no results, no `ResultImport` row.

The same bytes imported twice (into any batch) are recognised by their SHA-256 and refused naming
the earlier import. Rows that match no position or parameter, or carry no number ("n.a."), are
kept on the import and listed on its page with the reason — never dropped silently. A file in
which nothing matches is refused.

Matching a row to a position: the position's label (what the instrument's sequence calls it,
e.g. BLK1, S-003D) first, then the sample number for sample positions (a rerun replaces the
position it repeats); case, blanks and full-width characters do not matter. Parameters match by
code, then through the profile's aliases ("氨氮" → NH3-N, "Pb 208" → Pb). Times in the file are
the lab's wall-clock times; a file without them is taken as measured now.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PureWindowsPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import import_errors as errors
from app.analysis import import_profiles as profiles
from app.analysis import result_errors
from app.analysis.batches import batch_parameters
from app.analysis.codes import clean_code
from app.analysis.import_parsers import ParsedExport, ParsedRow, normalise, parse_export
from app.analysis.models import AnalysisBatch, BatchPosition, BatchState, ImportProfile, PositionRole, ResultImport
from app.analysis.results import ReadingInput, record_results
from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import next_code
from app.core.db import utcnow
from app.core.files import FileStore, StoredFile
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples.models import Sample

CODE_PREFIX = "IM"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv"
# Instrument software writes mass ratios of aqueous solutions (density 1): ppb is μg/L, ppm mg/L.
INSTRUMENT_UNITS = {"ppb": "μg/L", "ppm": "mg/L", "ppt": "ng/L", "ug/l": "μg/L"}
UNMATCHED_REASONS = ("no_sample_label", "position_not_found", "ambiguous_position", "parameter_not_in_batch",
                     "no_reading")
NOT_IMPORTABLE = frozenset({BatchState.SUBMITTED.value, BatchState.CLOSED.value})
STATE_WORDS = {BatchState.SUBMITTED.value: ("提交", "submitted"), BatchState.CLOSED.value: ("关闭", "closed")}


@dataclass(frozen=True)
class Unmatched:
    row: int
    reason: str
    cells: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "reason": self.reason, "cells": self.cells}


@dataclass(frozen=True)
class Matched:
    row: ParsedRow
    position: BatchPosition
    parameter: str


@dataclass
class Matching:
    matched: list[Matched]
    unmatched: list[Unmatched]


# ---------------------------------------------------------------- lookups


def import_by_code(session: Session, code: str) -> ResultImport:
    cleaned = clean_code(code)
    found = session.scalars(select(ResultImport).where(ResultImport.code == cleaned)).first() if cleaned else None
    if found is None:
        raise errors.ImportNotFound(which=cleaned[:20] or "—")
    return found


def unmatched_of(result_import: ResultImport) -> list[dict[str, Any]]:
    return list(json.loads(result_import.unmatched or "[]"))


@dataclass(frozen=True)
class ImportView:
    result_import: ResultImport
    batch: AnalysisBatch
    profile: ImportProfile
    file: StoredFile
    imported_by: User | None
    unmatched: list[dict[str, Any]]
    encoding: str


def import_view(session: Session, result_import: ResultImport) -> ImportView:
    """The outcome page's facts in two queries (the encoding read is kept in the audit event)."""
    batch, profile, stored, user = session.execute(
        select(AnalysisBatch, ImportProfile, StoredFile, User).select_from(ResultImport)
        .join(ImportProfile, ImportProfile.id == ResultImport.profile_id)
        .join(StoredFile, StoredFile.id == ResultImport.file_id)
        .join(AnalysisBatch, AnalysisBatch.id == ResultImport.batch_id)
        .outerjoin(User, User.id == ResultImport.imported_by_id)
        .where(ResultImport.id == result_import.id)).one()
    event = session.scalars(select(audit.AuditEvent.after).where(
        audit.AuditEvent.entity_type == "result_import", audit.AuditEvent.entity_id == str(result_import.id),
        audit.AuditEvent.action == "results.imported").limit(1)).first()
    encoding = json.loads(event).get("encoding", "") if event else ""
    return ImportView(result_import, batch, profile, stored, user, unmatched_of(result_import), encoding)


def imports_of_batch(session: Session, batch: AnalysisBatch) -> list[ResultImport]:
    return list(session.scalars(select(ResultImport).where(ResultImport.batch_id == batch.id)
                                .order_by(ResultImport.imported_at.desc(), ResultImport.id.desc())))


# ---------------------------------------------------------------- reading and matching (no writes)


def read_export(profile: ImportProfile, content: bytes) -> ParsedExport:
    """The file read by the profile; unreadable cells refuse it, each named by row and column."""
    parsed = parse_export(content, builtin=profile.builtin, mapping=profiles.mapping_of(profile),
                          profile=profile.code)
    if parsed.problems:
        raise errors.CellProblems(parsed.problems)
    return parsed


def _positions(session: Session, batch: AnalysisBatch) -> tuple[dict[str, list[BatchPosition]],
                                                                dict[str, list[BatchPosition]]]:
    """Positions by normalised label, and the sample positions awaiting a reading by sample number
    (a rerun stands for the position it repeats)."""
    rows = session.execute(select(BatchPosition, Sample.sample_no)
                           .outerjoin(Sample, Sample.id == BatchPosition.sample_id)
                           .where(BatchPosition.batch_id == batch.id).order_by(BatchPosition.position)).all()
    repeated = {position.rerun_of_id for position, _ in rows if position.rerun_of_id}
    by_label: dict[str, list[BatchPosition]] = {}
    by_sample: dict[str, list[BatchPosition]] = {}
    for position, sample_no in rows:
        if position.label:
            by_label.setdefault(normalise(position.label), []).append(position)
        if sample_no and position.role == PositionRole.SAMPLE.value and position.id not in repeated:
            by_sample.setdefault(normalise(sample_no), []).append(position)
    return by_label, by_sample


def match_rows(session: Session, batch: AnalysisBatch, profile: ImportProfile, rows: Sequence[ParsedRow]) -> Matching:
    """Each row to a position and a batch parameter, or to the list of unmatched rows with why."""
    by_label, by_sample = _positions(session, batch)
    parameters = {normalise(p): p for p in batch_parameters(batch)}
    aliases = profiles.aliases_of(profile)
    matched: list[Matched] = []
    unmatched: list[Unmatched] = []
    for row in rows:
        def miss(reason: str) -> None:
            unmatched.append(Unmatched(row.row_no, reason, row.cells()))  # noqa: B023

        label = normalise(row.sample_label)
        if not label:
            miss("no_sample_label")
            continue
        candidates = by_label.get(label) or by_sample.get(label) or []
        if not candidates:
            miss("position_not_found")
            continue
        if len(candidates) > 1:
            miss("ambiguous_position")
            continue
        name = normalise(row.parameter)
        parameter = parameters.get(name) or parameters.get(normalise(aliases.get(name, "")))
        if parameter is None:
            miss("parameter_not_in_batch")
            continue
        if row.reading is None:
            miss("no_reading")
            continue
        matched.append(Matched(row, candidates[0], parameter))
    return Matching(matched, unmatched)


def reading_unit(unit: str) -> str:
    """The file's unit in the lab's spelling (ppb → μg/L); the calculation checks it."""
    cleaned = (unit or "").strip()
    return INSTRUMENT_UNITS.get(normalise(cleaned), cleaned)


# ---------------------------------------------------------------- the import


def _store(session: Session, actor: User, store: FileStore, content: bytes, filename: str, media_type: str,
           max_bytes: int) -> StoredFile:
    """The raw bytes kept as they came (CSV has no signature `store_upload` could sniff); the name
    without the folders a Windows browser may send."""
    sha256, size = store.put(io.BytesIO(content), max_bytes)
    row = StoredFile(sha256=sha256, size=size, media_type=media_type,
                     filename=PureWindowsPath(filename or "import").name[:255] or "import", uploaded_at=utcnow(),
                     uploaded_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "file.stored", "stored_file", row.id, None,
                 {"sha256": sha256, "size": size, "media_type": media_type, "filename": row.filename})
    return row


def _assert_new_file(session: Session, sha256: str) -> None:
    earlier = session.execute(select(ResultImport, AnalysisBatch.batch_no, User)
                              .join(AnalysisBatch, AnalysisBatch.id == ResultImport.batch_id)
                              .outerjoin(User, User.id == ResultImport.imported_by_id)
                              .where(ResultImport.sha256 == sha256).order_by(ResultImport.id).limit(1)).first()
    if earlier is not None:
        done, batch_no, user = earlier
        at = done.imported_at.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")
        raise errors.ImportAlreadyDone(sha_short=sha256[:12], at=at, who=user.printed_name if user else "—",
                                       batch_no=batch_no, which=done.code)


def _refused_by_results(refused: Any, matching: Matching) -> errors.CellProblems:
    """record_results numbers readings from 1; the analyst needs the file's row and column."""
    from app.analysis.import_parsers import CellProblem

    problems = []
    for problem in refused.problems:
        source = matching.matched[problem.row - 1].row if 0 < problem.row <= len(matching.matched) else None
        problems.append(_ResultProblem(
            CellProblem(source.row_no if source else problem.row, source.column if source else "—", problem.code),
            problem))
    return errors.CellProblems(problems)


@dataclass(frozen=True)
class _ResultProblem:
    """A reading refused by the results service, named by the file's row and column."""

    cell: Any
    problem: Any

    @property
    def row_no(self) -> int:
        return self.cell.row_no

    @property
    def column(self) -> str:
        return self.cell.column

    @property
    def code(self) -> str:
        return self.problem.code

    def text(self, language: str) -> str:
        zh = language.startswith("zh")
        where = f"第 {self.row_no} 行 {self.column} 列" if zh else f"row {self.row_no}, column {self.column}"
        what = self.problem.message_zh if zh else self.problem.message_en
        return f"{where}（{self.problem.where}，{self.problem.parameter}）：{what}" if zh else \
            f"{where} ({self.problem.where}, {self.problem.parameter}): {what}"


def import_file(session: Session, actor: User, batch: AnalysisBatch, profile_code: str, filename: str,
                content: bytes, store: FileStore, *, max_bytes: int | None = None) -> ResultImport:
    """Import an instrument's export into `batch`: all of its matched rows, or nothing."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    limit = max_bytes if max_bytes is not None else _max_bytes(session)
    if len(content) > limit:
        raise errors.ImportTooLarge(size_mb=f"{len(content) / 1024 / 1024:.1f}", limit_mb=limit // (1024 * 1024))
    if not content:
        raise errors.ImportFileEmpty()
    batch = session.get(AnalysisBatch, batch.id) or batch  # the session's row (the caller's may be detached)
    if batch.state in NOT_IMPORTABLE:
        zh, en = STATE_WORDS[batch.state]
        raise errors.BatchNotOpenForImport(batch_no=batch.batch_no, state_zh=zh, state_en=en)
    sha256 = hashlib.sha256(content).hexdigest()
    _assert_new_file(session, sha256)
    profile = profiles.usable_profile(session, actor, profile_code)
    parsed = read_export(profile, content)
    matching = match_rows(session, batch, profile, parsed.rows)
    if not matching.matched:
        first = matching.unmatched[0] if matching.unmatched else None
        zh, en = REASON_WORDS.get(first.reason if first else "", ("文件中没有数据行", "the file has no data rows"))
        raise errors.NothingMatched(total=len(parsed.rows), row=first.row if first else "—", reason_zh=zh,
                                    reason_en=en)
    now = utcnow()
    media_type = XLSX_MEDIA_TYPE if parsed.encoding == "xlsx" else CSV_MEDIA_TYPE
    stored = _store(session, actor, store, content, filename, media_type, limit)
    result_import = ResultImport(
        code=next_code(session, CODE_PREFIX, now), batch_id=batch.id, profile_id=profile.id, file_id=stored.id,
        sha256=sha256, filename=stored.filename, rows_total=len(parsed.rows), rows_imported=len(matching.matched),
        unmatched=canonical_json([u.as_json() for u in matching.unmatched]), imported_at=now,
        imported_by_id=actor.id)
    session.add(result_import)
    session.flush()
    applied = profiles.dilution_applied(profile)
    readings = [ReadingInput(
        position_id=m.position.id, parameter=m.parameter, reading=m.row.reading or Decimal(0),
        reading_unit=reading_unit(m.row.unit),
        dilution_factor=Decimal(1) if applied else (m.row.dilution or Decimal(1)),
        measured_at=m.row.measured_at, client_id="") for m in matching.matched]
    try:
        record_results(session, actor, batch, readings, source="import", import_id=result_import.id)
    except result_errors.ResultsRefused as refused:
        raise _refused_by_results(refused, matching) from None
    state_before = batch.state
    batch.state = BatchState.IMPORTED.value
    session.flush()
    audit.append(session, actor, "results.imported", "result_import", result_import.id, None, {
        "code": result_import.code, "batch_no": batch.batch_no, "profile": profile.code, "sha256": sha256,
        "filename": result_import.filename, "encoding": parsed.encoding, "rows_total": result_import.rows_total,
        "rows_imported": result_import.rows_imported, "unmatched": len(matching.unmatched),
        "batch_state": [state_before, batch.state]})
    return result_import


def _max_bytes(session: Session) -> int:
    from app.config import settings_of

    return settings_of(session).max_upload_mb * 1024 * 1024


REASON_WORDS = {
    "no_sample_label": ("没有样品编号", "no sample label"),
    "position_not_found": ("本批没有此样品或位置", "no such sample or position in this batch"),
    "ambiguous_position": ("对应本批多个位置，请用位置标签区分", "matches several positions; use the position label"),
    "parameter_not_in_batch": ("本批不测此项目", "the batch does not measure this parameter"),
    "no_reading": ("没有数值（如 n.a.、<0.000）", "no number (such as n.a. or <0.000)"),
}


def preview(profile: ImportProfile, content: bytes, *, limit: int = 30) -> tuple[ParsedExport, list[ParsedRow]]:
    """Read a file with a profile and save nothing (the profile form's "try with a file")."""
    parsed = parse_export(content, builtin=profile.builtin, mapping=profiles.mapping_of(profile),
                          profile=profile.code or "preview")
    return parsed, parsed.rows[:limit]
