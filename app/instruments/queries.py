"""Read models for the pages and the API: the list, the detail timeline, the traceability
statement and the reminder lists. Each costs a fixed number of queries, however long the history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, or_, select
from sqlalchemy.orm import Session

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.files import StoredFile
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature, SignatureView, check
from app.core.web import Page
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
    InstrumentAttachment,
    InstrumentStatus,
    InstrumentUse,
    IntermediateCheck,
    MaintenanceRecord,
    ServiceChange,
)
from app.instruments.records import acceptance_content
from app.instruments.service import record_content
from app.instruments.status import StatusReading, not_superseded, status_at, status_filter, status_now
from app.people.models import User


@dataclass(frozen=True)
class InstrumentRow:
    instrument: Instrument
    responsible: User
    status: InstrumentStatus


def search_instruments(
    session: Session, *, q: str = "", status: str = "", kind: str = "", page: int = 1, size: int = 50,
    now: datetime | None = None,
) -> Page[InstrumentRow]:
    """Instruments matching a search and a status now, by asset number: two queries."""
    now = now or utcnow()
    calendar = lab_calendar(session)
    where = []
    text = q.strip()
    if text:
        like, exact = _containing(text.lower()), _containing(text)
        where.append(or_(
            func.lower(Instrument.asset_no).like(like, escape="\\"), Instrument.name_zh.like(exact, escape="\\"),
            *(func.lower(column).like(like, escape="\\") for column in (
                Instrument.name_en, Instrument.model, Instrument.serial_no, Instrument.manufacturer)),
        ))
    if status in InstrumentStatus._value2member_map_:
        where.append(status_filter(InstrumentStatus(status), now, calendar))
    if kind in ("laboratory", "field"):
        where.append(Instrument.kind == kind)
    total = session.scalar(select(func.count()).select_from(Instrument).where(*where)) or 0
    page = max(1, page)
    rows = session.execute(
        select(Instrument, User).join(User, User.id == Instrument.responsible_id).where(*where)
        .order_by(Instrument.asset_no).limit(size).offset((page - 1) * size)
    ).all()
    items = [InstrumentRow(i, u, status_now(i, now, calendar)) for i, u in rows]
    return Page(items, page, size, total)


def _containing(text: str) -> str:
    """A LIKE pattern for `text` taken literally: asset numbers contain '_', which LIKE reads as
    any character ('JC_01' found 'JC-01')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def count_in_status(session: Session, status: InstrumentStatus, now: datetime | None = None) -> int:
    """For the dashboard: one indexed count."""
    where = status_filter(status, now or utcnow(), lab_calendar(session))
    return session.scalar(select(func.count()).select_from(Instrument).where(where)) or 0


def _awaiting_acceptance(responsible_id: int | None) -> list[ColumnElement[bool]]:
    """Current passing (or restricted) certificates without a decision, of instruments in use."""
    newer = select(CalibrationRecord.supersedes_id).where(CalibrationRecord.supersedes_id.is_not(None))
    where = [CalibrationAcceptance.id.is_(None), CalibrationRecord.result != "fail",
             CalibrationRecord.id.not_in(newer), Instrument.service_state != "retired"]
    if responsible_id is not None:
        where.append(Instrument.responsible_id == responsible_id)
    return where


def awaiting_acceptance(
    session: Session, responsible_id: int | None = None
) -> list[tuple[CalibrationRecord, Instrument]]:
    """Current passing certificates nobody has confirmed yet (计量确认 worklist)."""
    stmt = (
        select(CalibrationRecord, Instrument).join(Instrument, Instrument.id == CalibrationRecord.instrument_id)
        .outerjoin(CalibrationAcceptance, CalibrationAcceptance.calibration_id == CalibrationRecord.id)
        .where(*_awaiting_acceptance(responsible_id))
        .order_by(CalibrationRecord.recorded_at).limit(200)
    )
    return [(c, i) for c, i in session.execute(stmt).all()]


def count_awaiting_acceptance(session: Session, responsible_id: int | None = None) -> int:
    """For the dashboard card: the same selection as `awaiting_acceptance`, counted (one query)."""
    stmt = (
        select(func.count()).select_from(CalibrationRecord)
        .join(Instrument, Instrument.id == CalibrationRecord.instrument_id)
        .outerjoin(CalibrationAcceptance, CalibrationAcceptance.calibration_id == CalibrationRecord.id)
        .where(*_awaiting_acceptance(responsible_id))
    )
    return session.scalar(stmt) or 0


# ---------------------------------------------------------------- the detail timeline


@dataclass
class TimelineEntry:
    when: datetime
    kind: str  # calibration / check / maintenance / repair / out_of_service / retired / attachment /
    #            impact / instrument.registered / instrument.updated / instrument.state_changed
    record: Any
    actor: User | None = None
    superseded: bool = False
    signature: SignatureView | None = None
    acceptance: CalibrationAcceptance | None = None
    acceptance_signature: SignatureView | None = None
    file: StoredFile | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class InstrumentDetail:
    instrument: Instrument
    responsible: User
    uses: list[InstrumentUse]
    reading: StatusReading
    timeline: list[TimelineEntry]
    open_impacts: list[ImpactAssessment]
    attachments: list[tuple[InstrumentAttachment, StoredFile]]


def _superseded_ids(records: Iterable[Any]) -> set[int]:
    return {r.supersedes_id for r in records if r.supersedes_id}


def _signatures(session: Session, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, str], ElectronicSignature]:
    if not keys:
        return {}
    types = {t for t, _ in keys}
    ids = {str(i) for _, i in keys}
    rows = session.scalars(select(ElectronicSignature).where(
        ElectronicSignature.entity_type.in_(types), ElectronicSignature.entity_id.in_(ids)
    )).all()
    return {(s.entity_type, s.entity_id): s for s in rows if (s.entity_type, int(s.entity_id)) in set(keys)}


def instrument_detail(session: Session, instrument: Instrument) -> InstrumentDetail:
    iid = instrument.id
    uses = list(session.scalars(select(InstrumentUse).where(InstrumentUse.instrument_id == iid)
                                .order_by(InstrumentUse.id)))
    calibrations = list(session.scalars(select(CalibrationRecord).where(CalibrationRecord.instrument_id == iid)))
    acceptances = {a.calibration_id: a for a in session.scalars(
        select(CalibrationAcceptance)
        .join(CalibrationRecord, CalibrationRecord.id == CalibrationAcceptance.calibration_id)
        .where(CalibrationRecord.instrument_id == iid))}
    checks = list(session.scalars(select(IntermediateCheck).where(IntermediateCheck.instrument_id == iid)))
    maintenance = list(session.scalars(select(MaintenanceRecord).where(MaintenanceRecord.instrument_id == iid)))
    changes = list(session.scalars(select(ServiceChange).where(ServiceChange.instrument_id == iid)))
    attachments = [(a, f) for a, f in session.execute(
        select(InstrumentAttachment, StoredFile).join(StoredFile, StoredFile.id == InstrumentAttachment.file_id)
        .where(InstrumentAttachment.instrument_id == iid).order_by(InstrumentAttachment.id)).all()]
    impacts = list(session.scalars(select(ImpactAssessment).where(ImpactAssessment.instrument_id == iid)))
    events = list(session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "instrument", AuditEvent.entity_id == cast(iid, String)).order_by(AuditEvent.seq)))
    signatures = _signatures(session, [("instrument_check", c.id) for c in checks]
                             + [("instrument_calibration", c.id) for c in calibrations]
                             + [("instrument_impact", i.id) for i in impacts])
    files = {f.id: f for f in session.scalars(select(StoredFile).where(
        StoredFile.id.in_({c.certificate_file_id for c in calibrations})))} if calibrations else {}
    people_ids = ({instrument.responsible_id} | {c.recorded_by_id for c in calibrations}
                  | {c.recorded_by_id for c in checks} | {m.recorded_by_id for m in maintenance}
                  | {s.recorded_by_id for s in changes} | {a.added_by_id for a, _ in attachments}
                  | {a.decided_by_id for a in acceptances.values()} | {i.decided_by_id for i in impacts}
                  | {e.actor_id for e in events})
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_({i for i in people_ids if i})))}

    timeline: list[TimelineEntry] = []
    gone = _superseded_ids(calibrations)
    for record in calibrations:
        acceptance = acceptances.get(record.id)
        signed = signatures.get(("instrument_calibration", str(record.id)))
        timeline.append(TimelineEntry(
            record.effective_from, "calibration", record, people.get(record.recorded_by_id),
            superseded=record.id in gone, acceptance=acceptance,
            acceptance_signature=check(signed, acceptance_content(instrument, record, acceptance))
            if acceptance and signed else None,
            file=files.get(record.certificate_file_id),
        ))
    gone = _superseded_ids(checks)
    for record in checks:
        signed = signatures.get(("instrument_check", str(record.id)))
        timeline.append(TimelineEntry(
            record.effective_from, "check", record, people.get(record.recorded_by_id), superseded=record.id in gone,
            signature=check(signed, record_content(instrument, record)) if signed else None,
        ))
    gone = _superseded_ids(maintenance)
    timeline += [TimelineEntry(m.effective_from, m.kind, m, people.get(m.recorded_by_id), superseded=m.id in gone)
                 for m in maintenance]
    timeline += [TimelineEntry(s.effective_from, s.action, s, people.get(s.recorded_by_id)) for s in changes]
    timeline += [TimelineEntry(a.added_at, "attachment", a, people.get(a.added_by_id), file=f)
                 for a, f in attachments]
    timeline += [TimelineEntry(i.opened_at, "impact", i, people.get(i.decided_by_id)) for i in impacts]
    timeline += [TimelineEntry(e.occurred_at, e.action, e, people.get(e.actor_id), extra={"after": e.after_data})
                 for e in events]
    timeline.sort(key=lambda e: (e.when, getattr(e.record, "recorded_at", e.when)), reverse=True)
    return InstrumentDetail(
        instrument=instrument, responsible=people[instrument.responsible_id], uses=uses,
        reading=status_at(session, instrument, utcnow()), timeline=timeline,
        open_impacts=[i for i in impacts if i.status == "open"], attachments=attachments,
    )


# ---------------------------------------------------------------- traceability at a date


@dataclass
class Traceability:
    """For an instrument at a moment: the certificate in force and what followed it."""

    instrument: Instrument
    responsible: User
    at: datetime
    reading: StatusReading
    calibration: CalibrationRecord | None  # in force at `at` (or the last one before, when none is)
    calibration_in_force: bool
    acceptance: CalibrationAcceptance | None
    acceptance_signature: SignatureView | None
    acceptance_by: User | None
    last_check: IntermediateCheck | None
    check_signature: SignatureView | None
    maintenance_since: list[MaintenanceRecord]
    uses: list[InstrumentUse]


def traceability_at(session: Session, instrument: Instrument, at: datetime) -> Traceability:


    reading = status_at(session, instrument, at)
    calibration = None
    if reading.calibration_id:
        calibration = session.get(CalibrationRecord, reading.calibration_id)
    else:
        calibration = session.scalars(
            select(CalibrationRecord).where(CalibrationRecord.instrument_id == instrument.id,
                                            CalibrationRecord.effective_from <= at, not_superseded(CalibrationRecord))
            .order_by(CalibrationRecord.effective_from.desc(), CalibrationRecord.recorded_at.desc()).limit(1)
        ).first()
    acceptance = signature = by = None
    if calibration is not None:
        acceptance = session.scalars(select(CalibrationAcceptance).where(
            CalibrationAcceptance.calibration_id == calibration.id)).first()
        if acceptance is not None:
            row = session.get(ElectronicSignature, acceptance.signature_id)
            signature = check(row, acceptance_content(instrument, calibration, acceptance))
            by = session.get(User, acceptance.decided_by_id)
    last_check = session.scalars(
        select(IntermediateCheck).where(IntermediateCheck.instrument_id == instrument.id,
                                        IntermediateCheck.effective_from <= at, not_superseded(IntermediateCheck))
        .order_by(IntermediateCheck.effective_from.desc()).limit(1)
    ).first()
    check_signature = None
    if last_check is not None:
        key = ("instrument_check", last_check.id)
        signed = _signatures(session, [key]).get((key[0], str(key[1])))
        check_signature = check(signed, record_content(instrument, last_check)) if signed else None
    since = calibration.effective_from if calibration is not None else None
    maintenance = list(session.scalars(
        select(MaintenanceRecord).where(
            MaintenanceRecord.instrument_id == instrument.id, MaintenanceRecord.effective_from <= at,
            *([MaintenanceRecord.effective_from >= since] if since else []), not_superseded(MaintenanceRecord))
        .order_by(MaintenanceRecord.effective_from)
    ))
    uses = list(session.scalars(select(InstrumentUse).where(InstrumentUse.instrument_id == instrument.id)
                                .order_by(InstrumentUse.id)))
    return Traceability(
        instrument=instrument, responsible=session.get(User, instrument.responsible_id), at=at, reading=reading,
        calibration=calibration, calibration_in_force=reading.calibration_id is not None,
        acceptance=acceptance, acceptance_signature=signature, acceptance_by=by, last_check=last_check,
        check_signature=check_signature, maintenance_since=maintenance, uses=uses,
    )


# ---------------------------------------------------------------- reminders


@dataclass(frozen=True)
class Reminder:
    instrument: Instrument
    responsible: User
    status: InstrumentStatus


def reminders(session: Session, now: datetime | None = None, limit: int = 500) -> list[Reminder]:
    """Overdue and due-soon instruments, soonest due first (two indexed range scans in one query)."""
    now = now or utcnow()
    calendar = lab_calendar(session)
    rows = session.execute(
        select(Instrument, User).join(User, User.id == Instrument.responsible_id)
        .where(or_(status_filter(InstrumentStatus.OVERDUE, now, calendar),
                   status_filter(InstrumentStatus.DUE_SOON, now, calendar)))
        .order_by(Instrument.due_at.is_not(None), Instrument.due_at, Instrument.asset_no).limit(limit)
    ).all()
    return [Reminder(i, u, status_now(i, now, calendar)) for i, u in rows]
