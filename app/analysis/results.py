"""Results: recording readings of a batch as result revisions, the current results, a cell's
history (issue 8 item 5; DOMAIN.md §3 Result).

`record_results` is the one door for typed cells, pasted blocks, instrument files (part F,
source "import") and instrument posts (source "api"). It checks every reading before it writes
any: a refused reading refuses the whole call with every bad row listed, and nothing is saved.
It reads what it needs once (positions, the method's parameters, the batch's curves, the
current results) and inserts in bulk, so thousands of readings cost a handful of queries.

Results are append-only: an existing current result of the same position × parameter is
superseded by a new revision (revision + 1, `supersedes_id`), the first entry stays. After the
batch was submitted (signed by the analyst) a reason is required; the batch stays submitted (the
review decides), and such late revisions stay queryable (`revised_after_submission`, DOMAIN.md
§7 A11).

Gates at the time of measurement (DESIGN.md rule 7): the batch's instrument and, for curve
calculations, the batch's curve. Checking every distinct `measured_at` of a 5,000-row import
would be 5,000 status queries, so the instrument is checked where its status can change: the
status is decided by the records in effect, so between two records taking effect it can only go
from usable to overdue as time passes (the calibration's due instant), never back. Checking the
earliest measurement (commissioning) and the latest measurement before each record that took
effect inside the window covers every measurement. A curve is usable over one interval
[made, valid until], so its earliest and latest use suffice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, insert, select, union
from sqlalchemy.orm import Session, aliased

from app.analysis import calculation
from app.analysis import result_errors as errors
from app.analysis import result_usage as _usage  # noqa: F401  (registers the instrument usage source)
from app.analysis.batch_errors import BatchNotFound
from app.analysis.batches import batch_parameters, locked
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    BatchState,
    CalculationKind,
    CalibrationCurve,
    MethodParameter,
    MethodVersion,
    PositionRole,
    ResultSource,
)
from app.core import audit
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.registry import samples_changed
from app.people.models import User

ACCEPTING = frozenset({BatchState.RUNNING.value, BatchState.IMPORTED.value, BatchState.QC_EVALUATED.value,
                       BatchState.QC_FAILED.value, BatchState.SUBMITTED.value})
MAX_READINGS = 20_000
MAX_REASON = 500
MAX_CLIENT_ID = 64
FUTURE_TOLERANCE = timedelta(minutes=5)  # an instrument's clock may run a little ahead
CURVE_KINDS = frozenset({CalculationKind.CURVE.value, CalculationKind.CURVE_BLANK_CORRECTED.value})


@dataclass(frozen=True)
class ReadingInput:
    position_id: int
    parameter: str
    reading: Decimal
    reading_unit: str = ""  # "" = the method parameter's unit (direct) or the curve's response unit
    dilution_factor: Decimal = Decimal(1)
    measured_at: datetime | None = None  # None = now
    client_id: str = ""  # idempotency of instrument posts (unique per batch when given)


# ---------------------------------------------------------------- lookups


def _current_filter() -> Any:
    newer = aliased(AnalysisResult)
    return ~exists().where(newer.position_id == AnalysisResult.position_id,
                           newer.parameter == AnalysisResult.parameter, newer.revision > AnalysisResult.revision)


def current_results(session: Session, batch_id: int) -> dict[tuple[int, str], AnalysisResult]:
    """The current (highest) revision of every position × parameter of the batch, in one query."""
    rows = session.scalars(select(AnalysisResult).where(AnalysisResult.batch_id == batch_id, _current_filter()))
    return {(r.position_id, r.parameter): r for r in rows}


def current_results_of(session: Session,
                       batch_ids: Iterable[int]) -> dict[int, dict[tuple[int, str], AnalysisResult]]:
    """`current_results` of many batches in one query (a report's checks read all its batches at
    once): batch id → (position, parameter) → the current revision; every batch asked is a key."""
    ids = sorted(set(batch_ids))
    found: dict[int, dict[tuple[int, str], AnalysisResult]] = {i: {} for i in ids}
    if ids:
        for r in session.scalars(select(AnalysisResult).where(AnalysisResult.batch_id.in_(ids), _current_filter())):
            found[r.batch_id][(r.position_id, r.parameter)] = r
    return found


def result_history(session: Session, position_id: int, parameter: str) -> list[AnalysisResult]:
    """Every revision of a cell, the first entry first."""
    return list(session.scalars(select(AnalysisResult).where(
        AnalysisResult.position_id == position_id, AnalysisResult.parameter == parameter)
        .order_by(AnalysisResult.revision)))


def revised_after_submission(session: Session, *, since: datetime | None = None,
                             batch_id: int | None = None) -> list[AnalysisResult]:
    """Results entered after their batch was submitted (DOMAIN.md §7 A11: the oversight issue
    alarms on them), newest first."""
    stmt = (select(AnalysisResult).join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
            .where(AnalysisBatch.submitted_at.is_not(None), AnalysisResult.entered_at > AnalysisBatch.submitted_at)
            .order_by(AnalysisResult.entered_at.desc(), AnalysisResult.id.desc()))
    if since is not None:
        stmt = stmt.where(AnalysisResult.entered_at >= since)
    if batch_id is not None:
        stmt = stmt.where(AnalysisResult.batch_id == batch_id)
    return list(session.scalars(stmt))


# ---------------------------------------------------------------- what a batch's results need


@dataclass
class BatchContext:
    """Everything a batch's readings are checked and calculated against, read once."""

    batch: AnalysisBatch
    version: MethodVersion
    parameters: list[str]
    positions: dict[int, BatchPosition]
    rules: dict[str, MethodParameter]
    curves: dict[str, CalibrationCurve]
    current: dict[tuple[int, str], AnalysisResult]

    def curve_facts(self, parameter: str) -> calculation.CurveFacts | None:
        curve = self.curves.get(parameter)
        if curve is None:
            return None
        return calculation.CurveFacts(curve.id, curve.code, curve.intercept, curve.slope, curve.quadratic,
                                      curve.range_high, curve.concentration_unit, curve.response_unit)

    def rule(self, parameter: str) -> calculation.ParameterRule:
        p = self.rules[parameter]
        return calculation.ParameterRule(self.version.calculation, p.unit, p.mdl, p.upper_limit)


def load_context(session: Session, batch: AnalysisBatch) -> BatchContext:
    """Four queries whatever the size of the batch."""
    version = session.get(MethodVersion, batch.method_version_id)
    positions = {p.id: p for p in session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                                 .order_by(BatchPosition.position))}
    rules = {p.parameter: p for p in session.scalars(select(MethodParameter).where(
        MethodParameter.method_version_id == batch.method_version_id))}
    curves = {parameter: curve for parameter, curve in session.execute(
        select(BatchCurve.parameter, CalibrationCurve)
        .join(CalibrationCurve, CalibrationCurve.id == BatchCurve.curve_id).where(BatchCurve.batch_id == batch.id))}
    return BatchContext(batch, version, batch_parameters(batch), positions, rules, curves,
                        current_results(session, batch.id))


def position_name(position: BatchPosition) -> str:
    return position.label or f"#{position.position}"


# ---------------------------------------------------------------- recording


STATE_WORDS = {
    BatchState.OPEN.value: ("尚未开始分析：请先开始分析批。", "the analysis has not started: start the batch first."),
    BatchState.CLOSED.value: ("已关闭，不能再录入结果。", "it is closed; no more results can be entered."),
}


def _assert_accepting(batch: AnalysisBatch) -> None:
    if batch.state in ACCEPTING and batch.started_at is not None:
        return
    why_zh, why_en = STATE_WORDS.get(batch.state, STATE_WORDS[BatchState.OPEN.value])
    raise errors.BatchNotAcceptingResults(batch_no=batch.batch_no, state=batch.state, why_zh=why_zh, why_en=why_en)


def _aware(session: Session, moment: datetime | None, now: datetime) -> datetime:
    if moment is None:
        return now
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=lab_calendar(session).tz)  # lab-local, as a form sends it
    return moment.astimezone(now.tzinfo)


def _local(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


@dataclass
class _Accepted:
    row: int
    reading: ReadingInput
    position: BatchPosition
    measured_at: datetime
    calculated: calculation.Calculated


def _blank_responses(context: BatchContext, readings: Sequence[ReadingInput]) -> dict[str, list[Decimal]]:
    """Per parameter, the responses of the method blanks: this call's readings over the current
    results (a blank read again now replaces its earlier reading)."""
    blanks = {pid for pid, p in context.positions.items() if p.role == PositionRole.METHOD_BLANK.value}
    found: dict[tuple[int, str], Decimal] = {key: r.reading for key, r in context.current.items()
                                             if key[0] in blanks}
    for r in readings:
        if r.position_id in blanks:
            found[(r.position_id, r.parameter)] = r.reading
    by_parameter: dict[str, list[Decimal]] = {}
    for (_position, parameter), value in sorted(found.items()):
        by_parameter.setdefault(parameter, []).append(value)
    return by_parameter


def _foreign_positions(session: Session, ids: set[int]) -> dict[int, str]:
    """Positions named by id that are not the batch's: where they belong, for the message."""
    if not ids:
        return {}
    rows = session.execute(select(BatchPosition.id, BatchPosition.position, BatchPosition.label,
                                  AnalysisBatch.batch_no)
                           .join(AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id)
                           .where(BatchPosition.id.in_(ids)))
    return {pid: f"{batch_no} {label or f'#{number}'}" for pid, number, label, batch_no in rows}


def _earlier_by_client_id(session: Session, batch: AnalysisBatch,
                          readings: Sequence[ReadingInput]) -> dict[str, AnalysisResult]:
    ids = {r.client_id for r in readings if r.client_id}
    if not ids:
        return {}
    return {r.client_id: r for r in session.scalars(select(AnalysisResult).where(
        AnalysisResult.batch_id == batch.id, AnalysisResult.client_id.in_(ids)))}


def _same_reading(earlier: AnalysisResult, reading: ReadingInput) -> bool:
    return (earlier.position_id, earlier.parameter, earlier.reading, earlier.dilution_factor) == (
        reading.position_id, reading.parameter, reading.reading, reading.dilution_factor)


def _check(session: Session, context: BatchContext, readings: Sequence[ReadingInput], now: datetime,
           replayed: dict[str, AnalysisResult]) -> tuple[list[_Accepted], list[errors.RowProblem]]:
    """Every reading checked and calculated; the accepted ones and the problems of the others."""
    batch = context.batch
    foreign = _foreign_positions(session, {r.position_id for r in readings} - set(context.positions))
    blanks = _blank_responses(context, readings) if context.version.calculation == \
        CalculationKind.CURVE_BLANK_CORRECTED.value else {}
    accepted: list[_Accepted] = []
    problems: list[errors.RowProblem] = []
    seen: dict[tuple[int, str], int] = {}
    for row, reading in enumerate(readings, start=1):
        position = context.positions.get(reading.position_id)
        where = position_name(position) if position else foreign.get(reading.position_id,
                                                                     f"id {reading.position_id}")
        parameter = (reading.parameter or "").strip()

        def refuse(code: str, **params: Any) -> None:
            problems.append(errors.row_problem(row, where, parameter or "—", code, **params))  # noqa: B023

        if reading.client_id and reading.client_id in replayed:
            earlier = replayed[reading.client_id]
            if not _same_reading(earlier, reading):
                refuse("client_id_reused", client_id=reading.client_id,
                       other=f"{earlier.parameter} rev. {earlier.revision}")
            continue
        if position is None:
            refuse("position_not_in_batch", other=foreign.get(reading.position_id, f"id {reading.position_id}"))
            continue
        if parameter not in context.parameters or parameter not in context.rules:
            refuse("parameter_not_in_batch", parameters=" ".join(context.parameters))
            continue
        if len(reading.client_id or "") > MAX_CLIENT_ID:
            refuse("client_id_too_long")
            continue
        key = (position.id, parameter)
        if key in seen:
            refuse("same_cell_twice", other_row=seen[key])
            continue
        seen[key] = row
        if not isinstance(reading.reading, Decimal) or not reading.reading.is_finite():
            refuse("not_a_number", detail=f"{reading.reading!s:.30}")
            continue
        dilution = reading.dilution_factor
        if not isinstance(dilution, Decimal) or not dilution.is_finite() or dilution < 1:
            refuse("dilution_below_one", dilution=f"{dilution!s:.30}")
            continue
        measured_at = _aware(session, reading.measured_at, now)
        if measured_at > now + FUTURE_TOLERANCE:
            refuse("measured_in_future", at=_local(session, measured_at))
            continue
        if batch.started_at is not None and measured_at < batch.started_at:
            refuse("measured_before_start", at=_local(session, measured_at), started=_local(session, batch.started_at))
            continue
        curve = context.curve_facts(parameter)
        if context.version.calculation in CURVE_KINDS and curve is None:
            raise errors.CurveMissing(batch_no=batch.batch_no, parameter=parameter)
        try:
            calculated = calculation.calculate(
                context.rule(parameter), reading.reading, (reading.reading_unit or "").strip(), dilution,
                role=position.role, curve=curve, blank_responses=blanks.get(parameter, ()))
        except calculation.Refusal as refusal:
            refuse(refusal.code, **refusal.params)
            continue
        accepted.append(_Accepted(row, reading, position, measured_at, calculated))
    return accepted, problems


# ---------------------------------------------------------------- gates at the time of measurement


def _change_points(session: Session, instrument_id: int, low: datetime, high: datetime) -> list[datetime]:
    """When records that can change the instrument's status took effect inside (low, high]."""
    from app.instruments.models import CalibrationRecord, IntermediateCheck, MaintenanceRecord, ServiceChange

    if low == high:
        return []
    changes = union(*(select(model.effective_from.label("at")).where(
        model.instrument_id == instrument_id, model.effective_from > low, model.effective_from <= high)
        for model in (CalibrationRecord, IntermediateCheck, MaintenanceRecord, ServiceChange))).subquery()
    return sorted(session.scalars(select(changes.c.at)))


def check_times(times: Sequence[datetime], change_points: Sequence[datetime]) -> list[datetime]:
    """The moments whose status decides every one of `times` (see the module docstring): the
    earliest, the latest, and the last one before each change point."""
    ordered = sorted(set(times))
    chosen = {ordered[0], ordered[-1]}
    for point in change_points:
        before = [t for t in ordered if t < point]
        if before:
            chosen.add(before[-1])
    return sorted(chosen)


def _assert_gates(session: Session, context: BatchContext, accepted: list[_Accepted]) -> None:
    from app.instruments.models import Instrument
    from app.instruments.status import assert_instrument_usable

    by_parameter: dict[str, list[datetime]] = {}
    for a in accepted:
        by_parameter.setdefault(a.reading.parameter.strip(), []).append(a.measured_at)
    instrument = session.get(Instrument, context.batch.instrument_id) if context.batch.instrument_id else None
    if instrument is not None:
        every = [t for times in by_parameter.values() for t in times]
        points = _change_points(session, instrument.id, min(every), max(every))
        for parameter, times in by_parameter.items():
            for moment in check_times(times, points):
                assert_instrument_usable(session, instrument, moment, parameter)
    if context.version.calculation in CURVE_KINDS:
        from app.analysis.curves import assert_curve_usable

        for parameter, times in by_parameter.items():
            curve = context.curves[parameter]
            for moment in sorted({min(times), max(times)}):
                assert_curve_usable(session, curve, moment, context.version.id, parameter)


# ---------------------------------------------------------------- the door


def record_results(session: Session, actor: User, batch: AnalysisBatch, readings: Sequence[ReadingInput], *,
                   source: str = ResultSource.MANUAL.value, import_id: int | None = None,
                   reason: str = "") -> list[AnalysisResult]:
    """Record `readings` of `batch` as results (new ones, or revisions of the current ones); all
    or nothing. Returns the results in the order of `readings` (for a replayed client id, the
    result recorded the first time)."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    if source not in {s.value for s in ResultSource}:
        raise ValueError(f"unknown result source {source!r}")
    if not readings:
        raise errors.NoReadings()
    if len(readings) > MAX_READINGS:
        raise errors.TooManyReadings(limit=MAX_READINGS, count=len(readings))
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise errors.ReasonTooLong(limit=MAX_REASON)
    batch = locked(session, batch)
    _assert_accepting(batch)
    submitted = batch.state == BatchState.SUBMITTED.value
    if submitted and not reason:
        raise errors.ReasonRequired(batch_no=batch.batch_no)
    now = utcnow()
    context = load_context(session, batch)
    replayed = _earlier_by_client_id(session, batch, readings)
    accepted, problems = _check(session, context, readings, now, replayed)
    if problems:
        raise errors.ResultsRefused(problems)
    if accepted:
        _assert_gates(session, context, accepted)
    rows = []
    for a in accepted:
        parameter = a.reading.parameter.strip()
        earlier = context.current.get((a.position.id, parameter))
        calc = a.calculated
        rows.append({
            "batch_id": batch.id, "position_id": a.position.id, "sample_id": a.position.sample_id,
            "parameter": parameter, "revision": earlier.revision + 1 if earlier else 1,
            "supersedes_id": earlier.id if earlier else None, "reason": reason,
            "method_version_id": batch.method_version_id, "instrument_id": batch.instrument_id,
            "curve_id": calc.curve_id, "reading": a.reading.reading,
            "reading_unit": calc.intermediates.get("reading_unit", ""), "dilution_factor": a.reading.dilution_factor,
            "value": calc.value, "unit": calc.unit, "intermediates": _canonical(calc.intermediates),
            "below_mdl": calc.below_mdl, "qualifier": "", "measured_at": a.measured_at, "source": source,
            "import_id": import_id, "client_id": a.reading.client_id or "", "entered_at": now,
            "entered_by_id": actor.id,
        })
    # a bulk RETURNING need not come back in the rows' order (SQLite would then insert row by row):
    # each result meets its reading by position × parameter, unique within a call
    written = list(session.scalars(insert(AnalysisResult).returning(AnalysisResult), rows)) if rows else []
    by_cell = {(r.position_id, r.parameter): r for r in written}
    by_row = {a.row: by_cell[(a.position.id, a.reading.parameter.strip())] for a in accepted}
    if written:
        _audit(session, actor, batch, context, sorted(written, key=lambda r: r.id), source, import_id, reason,
               submitted)
        if submitted:  # signed data changed under whatever was built on it (reports in review)
            samples_changed(session, actor, [r.sample_id for r in written])
    return [by_row[row] if row in by_row else replayed[r.client_id] for row, r in enumerate(readings, start=1)]


def _canonical(value: dict[str, Any]) -> str:
    from app.core.canonical import canonical_json

    return canonical_json(value)


def _audit(session: Session, actor: User, batch: AnalysisBatch, context: BatchContext,
           written: list[AnalysisResult], source: str, import_id: int | None, reason: str, submitted: bool) -> None:
    """One event per call (an import of 5,000 readings is one act), listing every result."""
    action = "results.revised_after_submission" if submitted else "results.recorded"
    audit.append(session, actor, action, "analysis_batch", batch.id, None, {
        "batch_no": batch.batch_no, "source": source, "import_id": import_id, "reason": reason,
        "columns": ["id", "position", "parameter", "revision", "supersedes_id", "reading", "reading_unit",
                    "dilution_factor", "value", "unit", "below_mdl", "measured_at"],
        "results": [[r.id, context.positions[r.position_id].position, r.parameter, r.revision, r.supersedes_id,
                     r.reading, r.reading_unit, r.dilution_factor, r.value, r.unit, r.below_mdl, r.measured_at]
                    for r in written],
    })



# ---------------------------------------------------------------- the entry grid (read model)


@dataclass(frozen=True)
class GridCell:
    """What a cell of the entry grid shows: the current result, if any, and its reported text."""

    position_id: int
    column: int
    parameter: str
    result: AnalysisResult | None
    reported: str = ""

    @property
    def reading(self) -> str:
        return "" if self.result is None else str(self.result.reading)

    @property
    def dilution(self) -> str:
        return "" if self.result is None or self.result.dilution_factor == 1 else str(self.result.dilution_factor)


@dataclass(frozen=True)
class GridRow:
    position: BatchPosition
    sample_no: str
    cells: list[GridCell]


@dataclass(frozen=True)
class Grid:
    batch: AnalysisBatch
    method_code: str
    version: MethodVersion
    parameters: list[str]
    rules: dict[str, MethodParameter]
    rows: list[GridRow]

    @property
    def submitted(self) -> bool:
        return self.batch.state == BatchState.SUBMITTED.value

    @property
    def accepting(self) -> bool:
        return self.batch.state in ACCEPTING and self.batch.started_at is not None

    def unit_of(self, parameter: str) -> str:
        rule = self.rules.get(parameter)
        return rule.unit if rule else ""

    def row_of(self, position_id: int) -> GridRow | None:
        return next((r for r in self.rows if r.position.id == position_id), None)


def reported_text(result: AnalysisResult, rule: MethodParameter | None, language: str) -> str:
    """The text a report would print (GB/T 8170 once, below-MDL style of the method)."""
    from app.analysis.numbers import report_value

    if rule is None:
        return str(result.value)
    decimals = rule.decimals
    figures = rule.significant_figures if decimals is None else None
    return report_value(result.value, mdl=rule.mdl, style=rule.below_mdl, decimals=decimals,
                        significant_figures=figures, language=language)


def entry_grid(session: Session, batch: AnalysisBatch, language: str = "zh") -> Grid:
    """The batch's positions × parameters with the current results, in four queries whatever
    the size of the batch."""
    from app.analysis.models import Method
    from app.samples.models import Sample

    version, method_code = session.execute(
        select(MethodVersion, Method.code).join(Method, Method.id == MethodVersion.method_id)
        .where(MethodVersion.id == batch.method_version_id)).one()
    parameters = batch_parameters(batch)
    rules = {p.parameter: p for p in session.scalars(select(MethodParameter).where(
        MethodParameter.method_version_id == batch.method_version_id))}
    current = current_results(session, batch.id)
    rows = []
    for position, sample_no in session.execute(
            select(BatchPosition, Sample.sample_no).outerjoin(Sample, Sample.id == BatchPosition.sample_id)
            .where(BatchPosition.batch_id == batch.id).order_by(BatchPosition.position)):
        cells = []
        for k, parameter in enumerate(parameters):
            result = current.get((position.id, parameter))
            shown = reported_text(result, rules.get(parameter), language) if result else ""
            cells.append(GridCell(position.id, k, parameter, result, shown))
        rows.append(GridRow(position, sample_no or "", cells))
    return Grid(batch, method_code, version, parameters, rules, rows)


@dataclass(frozen=True)
class HistoryEntry:
    result: AnalysisResult
    entered_by: str
    reported: str


@dataclass(frozen=True)
class CellHistory:
    position: BatchPosition
    parameter: str
    entries: list[HistoryEntry]


def cell_history(session: Session, batch: AnalysisBatch, position_id: int, parameter: str,
                 language: str = "zh") -> CellHistory:
    """Every revision of one cell of the batch with who entered it (three queries)."""
    position = session.get(BatchPosition, position_id)
    if position is None or position.batch_id != batch.id:
        raise BatchNotFound(batch_no=f"{batch.batch_no} #{position_id}")
    rule = session.scalars(select(MethodParameter).where(
        MethodParameter.method_version_id == batch.method_version_id, MethodParameter.parameter == parameter)).first()
    rows = session.execute(select(AnalysisResult, User).join(User, User.id == AnalysisResult.entered_by_id)
                           .where(AnalysisResult.position_id == position_id, AnalysisResult.parameter == parameter)
                           .order_by(AnalysisResult.revision))
    entries = [HistoryEntry(r, (u.display_name_zh if language.startswith("zh") else u.display_name_en)
                            or u.username, reported_text(r, rule, language)) for r, u in rows]
    return CellHistory(position, parameter, entries)


def batch_corrections(session: Session, batch: AnalysisBatch, language: str = "zh") -> list[HistoryEntry]:
    """Every revision after the first of the batch's cells, newest first, with who entered it
    (the reviewer's view of what was corrected, and why); one query."""
    rows = session.execute(select(AnalysisResult, User).join(User, User.id == AnalysisResult.entered_by_id)
                           .where(AnalysisResult.batch_id == batch.id, AnalysisResult.revision > 1)
                           .order_by(AnalysisResult.entered_at.desc(), AnalysisResult.id.desc()))
    return [HistoryEntry(r, (u.display_name_zh if language.startswith("zh") else u.display_name_en) or u.username,
                         str(r.value)) for r, u in rows]
