"""The worksheet of an analysis batch: every position in run order (the places still waiting for
their standard too), the sample's holding deadline, the standard and its expected value, the
curve per parameter, and the current result of each position × parameter (the highest
revision). A fixed number of queries whatever the size: 200 samples × 10 parameters included."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.analysis import batches, methods
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    BatchState,
    CalibrationCurve,
    Method,
    MethodParameter,
    MethodVersion,
    PositionRole,
)
from app.core.db import utcnow
from app.instruments.models import Instrument
from app.people.models import User
from app.samples import holding
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample


@dataclass
class WorksheetLine:
    position: int
    role: str
    label: str
    row: BatchPosition | None  # None: a planned CRM, CCV or spike whose standard is missing
    sample: Sample | None = None
    clock: HoldingClock | None = None  # the sample's clock that runs out first
    of_label: str = ""  # the sample a duplicate or spike belongs to
    results: dict[str, AnalysisResult] = field(default_factory=dict)

    @property
    def missing_standard(self) -> bool:
        return self.row is None

    @property
    def is_qc(self) -> bool:
        return self.role != PositionRole.SAMPLE.value

    @property
    def deadline(self) -> datetime | None:
        return self.clock.deadline_at if self.clock else None

    @property
    def standard(self) -> str:
        return self.row.material_barcode if self.row else ""

    @property
    def expected_value(self) -> Decimal | None:
        return self.row.expected_value if self.row else None


@dataclass
class CurveLine:
    parameter: str
    curve: CalibrationCurve | None


@dataclass
class Worksheet:
    batch: AnalysisBatch
    method: Method
    version: MethodVersion
    parameters: list[str]
    method_parameters: dict[str, MethodParameter]
    instrument: Instrument | None
    analyst: User | None
    lines: list[WorksheetLine]
    curves: list[CurveLine]
    at: datetime

    @property
    def is_open(self) -> bool:
        return self.batch.state == BatchState.OPEN.value

    @property
    def missing(self) -> list[WorksheetLine]:
        return [line for line in self.lines if line.missing_standard]

    @property
    def missing_roles(self) -> list[str]:
        return list(dict.fromkeys(line.role for line in self.missing))

    @property
    def samples(self) -> int:
        return sum(1 for line in self.lines if line.role == PositionRole.SAMPLE.value)

    def reading(self, line: WorksheetLine) -> holding.ClockReading | None:
        return holding.read(line.clock, self.at) if line.clock else None


def current_results(session: Session, batch_id: int) -> dict[tuple[int, str], AnalysisResult]:
    """The highest revision of each position × parameter of the batch, in one query."""
    latest = (select(AnalysisResult.position_id, AnalysisResult.parameter,
                     func.max(AnalysisResult.revision).label("revision"))
              .where(AnalysisResult.batch_id == batch_id)
              .group_by(AnalysisResult.position_id, AnalysisResult.parameter).subquery("latest"))
    rows = session.scalars(select(AnalysisResult).join(latest, and_(
        AnalysisResult.position_id == latest.c.position_id, AnalysisResult.parameter == latest.c.parameter,
        AnalysisResult.revision == latest.c.revision)).where(AnalysisResult.batch_id == batch_id))
    return {(r.position_id, r.parameter): r for r in rows}


def worksheet(session: Session, batch: AnalysisBatch, at: datetime | None = None) -> Worksheet:
    """The batch's read model in ten queries, however many positions and parameters."""
    now = at or utcnow()
    parameters = batches.batch_parameters(batch)
    positions = list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                     .order_by(BatchPosition.position)))
    version, method = session.execute(select(MethodVersion, Method).join(Method, Method.id == MethodVersion.method_id)
                                      .where(MethodVersion.id == batch.method_version_id)).one()
    method_parameters = methods.parameters_of(session, version.id)
    sample_ids = {p.sample_id for p in positions if p.sample_id}
    samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(sample_ids)))} \
        if sample_ids else {}
    first_clock: dict[int, HoldingClock] = {}
    if sample_ids:
        for clock in session.scalars(select(HoldingClock).where(
                HoldingClock.sample_id.in_(sample_ids), HoldingClock.parameter.in_(parameters))
                .order_by(HoldingClock.sample_id, HoldingClock.deadline_at.is_(None), HoldingClock.deadline_at)):
            first_clock.setdefault(clock.sample_id, clock)
    results = current_results(session, batch.id)
    curves = dict(session.execute(select(BatchCurve.parameter, CalibrationCurve)
                                  .join(CalibrationCurve, CalibrationCurve.id == BatchCurve.curve_id)
                                  .where(BatchCurve.batch_id == batch.id)).all())
    analyst = session.scalars(select(User).where(User.id == batch.analyst_id)).first()
    instrument = session.scalars(select(Instrument).where(Instrument.id == batch.instrument_id)).first() \
        if batch.instrument_id else None

    by_id = {p.id: p for p in positions}
    written = {p.position: p for p in positions}
    lines = []
    for p in positions:
        lines.append(WorksheetLine(
            p.position, p.role, p.label, p, samples.get(p.sample_id), first_clock.get(p.sample_id),
            by_id[p.of_position_id].label if p.of_position_id in by_id else "",
            {name: results[(p.id, name)] for name in parameters if (p.id, name) in results}))
    if batch.state == BatchState.OPEN.value:
        for slot in batches.awaiting_standard(batches.plan_of(session, batch, positions, version), positions):
            of = written.get(slot.of_position) if slot.of_position else None
            lines.append(WorksheetLine(slot.position, slot.role, slot.label, None,
                                       samples.get(of.sample_id) if of else None, None, of.label if of else ""))
        lines.sort(key=lambda line: line.position)
    return Worksheet(batch, method, version, parameters, method_parameters, instrument, analyst, lines,
                     [CurveLine(p, curves.get(p)) for p in parameters], now)


# ---------------------------------------------------------------- the run sequence for the instrument


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A CSV cell no spreadsheet will run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def sequence_csv(sheet: Worksheet) -> str:
    """The run sequence as the instrument's software imports it: position, label, role, sample."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["position", "label", "role", "sample_no", "standard", "expected_value"])
    for line in sheet.lines:
        writer.writerow([safe_cell(c) for c in (
            line.position, line.label, line.role, line.sample.sample_no if line.sample else "", line.standard,
            "" if line.expected_value is None else f"{line.expected_value:f}")])
    return out.getvalue()
