"""An instrument's status at any moment, and the usability gate (DESIGN.md rule 7).

The status follows from the history alone. Of the records in effect at `at`, the latest one
that changes fitness decides ("latest" by the lab's local day, then by entry order, since a
certificate carries a date and no time):

- a retirement → `retired` (terminal, outranks everything);
- a failed calibration, a failed intermediate check, a repair, or a decision to stop → the
  instrument is `out_of_service` until a later passing calibration is accepted (计量确认);
- an accepted passing (or restricted) calibration → in calibration until its due instant:
  `in_service`, `due_soon` within the warning window, then `overdue`;
- nothing at all → `overdue` (never calibrated).

Before its commissioning date an instrument is `out_of_service` (not yet commissioned).
The whole computation is one SQL query for any number of instruments (a window function over
the union of the records in effect), so the list of 2,000 instruments costs one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from app.core.db import UTCDateTime
from app.core.labtime import LabCalendar, lab_calendar
from app.instruments import errors
from app.instruments.models import (
    AcceptanceDecision,
    CalibrationAcceptance,
    CalibrationRecord,
    CheckResult,
    ConfirmationResult,
    Instrument,
    InstrumentStatus,
    InstrumentUse,
    IntermediateCheck,
    MaintenanceKind,
    MaintenanceRecord,
    ServiceAction,
    ServiceChange,
    ServiceState,
)

RESTORE, SUSPEND, RETIRE = "restore", "suspend", "retire"


@dataclass(frozen=True)
class StatusReading:
    """What the history says about one instrument at one moment."""

    status: InstrumentStatus
    at: datetime
    reason: str | None = None  # why it is unusable: overdue, not_calibrated, out_of_service, ...
    cause: str | None = None  # for out_of_service: failed_calibration, failed_check, repair, ...
    since: datetime | None = None  # when the deciding record took effect
    due_at: datetime | None = None  # end of the calibration in force
    calibration_id: int | None = None  # the certificate in force
    restricted: bool = False
    restriction: str = ""
    allowed_parameters: tuple[str, ...] = field(default_factory=tuple)

    @property
    def usable(self) -> bool:
        return self.status in (InstrumentStatus.IN_SERVICE, InstrumentStatus.DUE_SOON)


def not_superseded(model: type) -> ColumnElement[bool]:
    """No later revision points at the record. `SELECT 1`, not `SELECT *`: SQLite then answers
    from the unique index on supersedes_id alone (a covering index)."""
    newer = aliased(model)
    return ~select(literal_column("1")).where(newer.supersedes_id == model.id).exists()


def effects_in_force(at: datetime | BindParameter, instrument_ids: Iterable[int] | BindParameter | None = None):
    """The union of every current record that changes fitness and took effect by `at` (a moment
    or a bound parameter; the ids likewise, an expanding one)."""
    ids = instrument_ids if instrument_ids is None or isinstance(instrument_ids, BindParameter) \
        else list(instrument_ids)

    def only(model: type) -> list[ColumnElement[bool]]:
        return [] if ids is None else [model.instrument_id.in_(ids)]

    cal = CalibrationRecord
    restricted = cal.result == ConfirmationResult.RESTRICTED.value
    calibrations = (
        select(
            cal.instrument_id.label("instrument_id"),
            cal.event_day.label("event_day"),
            cal.recorded_at.label("recorded_at"),
            case((cal.result == ConfirmationResult.FAIL.value, literal(SUSPEND)), else_=literal(RESTORE))
            .label("effect"),
            case((cal.result == ConfirmationResult.FAIL.value, literal("failed_calibration")), else_=null())
            .label("cause"),
            cal.effective_from.label("effective_from"),
            cal.due_at.label("due_at"),
            cal.id.label("calibration_id"),
            # what a restricted certificate still allows travels along: no second query or join
            case((restricted, cal.restriction), else_=null()).label("restriction"),
            case((restricted, cal.allowed_parameters), else_=null()).label("allowed_parameters"),
        )
        .outerjoin(CalibrationAcceptance, CalibrationAcceptance.calibration_id == cal.id)
        .where(
            cal.effective_from <= at,
            not_superseded(cal),
            or_(
                cal.result == ConfirmationResult.FAIL.value,
                CalibrationAcceptance.decision == AcceptanceDecision.ACCEPTED.value,
            ),
            *only(cal),
        )
    )

    def suspensions(model: type, condition: ColumnElement[bool], cause: str, revisable: bool = True):
        return select(
            model.instrument_id, model.event_day, model.recorded_at, literal(SUSPEND),
            literal(cause), model.effective_from,
            null().cast(UTCDateTime), null().cast(Integer), null().cast(Text), null().cast(Text),
        ).where(model.effective_from <= at, condition, *([not_superseded(model)] if revisable else []),
                *only(model))

    checks = suspensions(IntermediateCheck, IntermediateCheck.result == CheckResult.FAIL.value, "failed_check")
    repairs = suspensions(MaintenanceRecord, MaintenanceRecord.kind == MaintenanceKind.REPAIR.value, "repair")
    stops = suspensions(ServiceChange, ServiceChange.action == ServiceAction.OUT_OF_SERVICE.value, "decision",
                        revisable=False)
    retirements = select(
        ServiceChange.instrument_id, ServiceChange.event_day, ServiceChange.recorded_at, literal(RETIRE),
        null().cast(String), ServiceChange.effective_from, null().cast(UTCDateTime), null().cast(Integer),
        null().cast(Text), null().cast(Text),
    ).where(ServiceChange.effective_from <= at, ServiceChange.action == ServiceAction.RETIRED.value,
            *only(ServiceChange))
    return union_all(calibrations, checks, repairs, stops, retirements).subquery("effects")


def deciding_effects(at: datetime | BindParameter,
                     instrument_ids: Iterable[int] | BindParameter | None = None):
    """Per instrument, the one effect that decides its status at `at` (rank 1)."""
    effects = effects_in_force(at, instrument_ids)
    rank = func.row_number().over(
        partition_by=effects.c.instrument_id,
        order_by=(
            case((effects.c.effect == RETIRE, 0), else_=1),
            effects.c.event_day.desc(),
            effects.c.recorded_at.desc(),
        ),
    ).label("rank")
    ranked = select(*effects.c, rank).subquery("ranked")
    return select(ranked).where(ranked.c.rank == 1).subquery("deciding")


def reading_from(
    at: datetime, before_commissioning: bool, effect: str | None, cause: str | None,
    since: datetime | None, due_at: datetime | None, calibration_id: int | None,
    calendar: LabCalendar, restriction: tuple[str, tuple[str, ...]] | None = None,
) -> StatusReading:
    """Turn the deciding effect into a status (pure; called once per instrument of a list, so
    plain positional construction)."""
    if effect == RETIRE:
        return StatusReading(InstrumentStatus.RETIRED, at, "retired", since=since)
    if before_commissioning:
        return StatusReading(InstrumentStatus.OUT_OF_SERVICE, at, "not_commissioned", "not_commissioned")
    if effect == SUSPEND:
        return StatusReading(InstrumentStatus.OUT_OF_SERVICE, at, "out_of_service", cause, since=since)
    if effect != RESTORE or due_at is None:
        return StatusReading(InstrumentStatus.OVERDUE, at, "not_calibrated")
    if at >= due_at:
        status, reason = InstrumentStatus.OVERDUE, "overdue"
    elif at >= due_at - calendar.due_soon:
        status, reason = InstrumentStatus.DUE_SOON, None
    else:
        status, reason = InstrumentStatus.IN_SERVICE, None
    if restriction is None:
        return StatusReading(status, at, reason, None, since, due_at, calibration_id)
    return StatusReading(status, at, reason, None, since, due_at, calibration_id, True, *restriction)


def _status_statement(some: bool) -> Select:
    """The status query with the moment (and the ids) as bound parameters. Built once, at import:
    building the union and its cache key anew on every call cost as much as running it on
    SQLite (bench `instrument_status`)."""
    ids = bindparam("instrument_ids", expanding=True) if some else None
    deciding = deciding_effects(bindparam("at", type_=UTCDateTime()), ids)
    stmt = select(
        Instrument.id, Instrument.commissioned_on, deciding.c.effect, deciding.c.cause,
        deciding.c.effective_from, deciding.c.due_at, deciding.c.calibration_id,
        deciding.c.restriction, deciding.c.allowed_parameters,
    ).outerjoin(deciding, deciding.c.instrument_id == Instrument.id)
    return stmt.where(Instrument.id.in_(ids)) if some else stmt


STATUS_OF_ALL, STATUS_OF_SOME = _status_statement(False), _status_statement(True)


def statuses_at(
    session: Session, at: datetime, instruments: Iterable[Instrument] | None = None
) -> dict[int, StatusReading]:
    """The status of many instruments (all when `instruments` is None) at `at`, in one query:
    the deciding record per instrument, with the restriction of a restricted certificate in force
    (a second query with an IN list of every certificate in force cost more than the status itself
    on PostgreSQL, a join back to the certificate 15% of it; bench `instrument_status`)."""
    calendar = lab_calendar(session)
    params: dict[str, Any] = {"at": at}
    if instruments is not None:
        params["instrument_ids"] = [i.id for i in instruments]
    day = calendar.local_date(at)  # before the commissioning day ⇔ at < start_of(commissioned_on)
    readings = {}
    for iid, commissioned_on, effect, cause, since, due_at, calibration_id, restriction, allowed in session.execute(
        STATUS_OF_ALL if instruments is None else STATUS_OF_SOME, params
    ):
        readings[iid] = reading_from(
            at, day < commissioned_on, effect, cause, since, due_at, calibration_id, calendar,
            None if allowed is None else (restriction, tuple(json.loads(allowed))),
        )
    return readings


def status_at(session: Session, instrument: Instrument, at: datetime) -> StatusReading:
    """The one function that says what state an instrument was (or is) in at `at`."""
    return statuses_at(session, at, [instrument])[instrument.id]


# ---------------------------------------------------------------- status now, from the cache


def status_now(instrument: Instrument, now: datetime, calendar: LabCalendar) -> InstrumentStatus:
    """The status now from the cached columns (equal to `status_at(now)`; tested)."""
    if instrument.service_state == ServiceState.RETIRED.value:
        return InstrumentStatus.RETIRED
    if instrument.service_state == ServiceState.OUT_OF_SERVICE.value:
        return InstrumentStatus.OUT_OF_SERVICE
    if instrument.due_at is None or now >= instrument.due_at:
        return InstrumentStatus.OVERDUE
    if now >= instrument.due_at - calendar.due_soon:
        return InstrumentStatus.DUE_SOON
    return InstrumentStatus.IN_SERVICE


def status_filter(status: InstrumentStatus, now: datetime, calendar: LabCalendar) -> ColumnElement[bool]:
    """A WHERE clause selecting the instruments in `status` now; served by ix_instrument_state_due."""
    state, due = Instrument.service_state, Instrument.due_at
    active = state == ServiceState.ACTIVE.value
    window_end = now + calendar.due_soon
    return {
        InstrumentStatus.RETIRED: state == ServiceState.RETIRED.value,
        InstrumentStatus.OUT_OF_SERVICE: state == ServiceState.OUT_OF_SERVICE.value,
        InstrumentStatus.OVERDUE: and_(active, or_(due.is_(None), due <= now)),
        InstrumentStatus.DUE_SOON: and_(active, due > now, due <= window_end),
        InstrumentStatus.IN_SERVICE: and_(active, due > window_end),
    }[status]


def cache_state(reading: StatusReading) -> tuple[str, datetime | None]:
    """What `instrument.service_state` and `due_at` hold for a reading taken now."""
    if reading.status is InstrumentStatus.RETIRED:
        return ServiceState.RETIRED.value, None
    if reading.status is InstrumentStatus.OUT_OF_SERVICE:
        return ServiceState.OUT_OF_SERVICE.value, None
    return ServiceState.ACTIVE.value, reading.due_at


# ---------------------------------------------------------------- the gate


def assigned_parameters(session: Session, instrument: Instrument) -> dict[str, str]:
    """casefolded parameter → the parameter as registered."""
    rows = session.scalars(select(InstrumentUse.parameter).where(InstrumentUse.instrument_id == instrument.id))
    return {p.casefold(): p for p in rows}


def check_usability(
    session: Session, instrument: Instrument, at: datetime, parameter: str
) -> tuple[StatusReading, errors.InstrumentNotUsable | None]:
    """The reading at `at` and the refusal the gate would raise (None when usable)."""
    reading = status_at(session, instrument, at)
    return reading, _refusal(session, instrument, reading, parameter)


def _refusal(
    session: Session, instrument: Instrument, reading: StatusReading, parameter: str
) -> errors.InstrumentNotUsable | None:
    calendar = lab_calendar(session)
    at = reading.at
    when = at.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")
    common = {"asset_no": instrument.asset_no, "at": when}
    if reading.status is InstrumentStatus.RETIRED:
        return errors.InstrumentRetired(**common)
    if reading.reason == "not_commissioned":
        return errors.InstrumentNotCommissioned(commissioned_on=instrument.commissioned_on.isoformat(), **common)
    if reading.status is InstrumentStatus.OUT_OF_SERVICE:
        zh, en = errors.OUT_OF_SERVICE_CAUSES.get(reading.cause or "decision", ("停用", "out of service"))
        return errors.InstrumentOutOfService(cause_zh=zh, cause_en=en, **common)
    if reading.reason == "not_calibrated":
        return errors.InstrumentNeverCalibrated(**common)
    if reading.status is InstrumentStatus.OVERDUE:
        due = calendar.local_date(reading.due_at).isoformat() if reading.due_at else ""
        return errors.InstrumentOverdue(due=due, **common)
    wanted = parameter.strip().casefold()
    assigned = assigned_parameters(session, instrument)
    if wanted not in assigned:
        return errors.InstrumentNotAssigned(parameter=parameter.strip(), **common)
    if reading.restricted and wanted not in {p.casefold() for p in reading.allowed_parameters}:
        return errors.InstrumentRestricted(restriction=reading.restriction, parameter=assigned[wanted], **common)
    return None


def assert_instrument_usable(
    session: Session, instrument: Instrument, at: datetime, parameter: str
) -> StatusReading:
    """The gate for field tests and analyses, checked at the time of measurement (not of entry).
    Raises an `InstrumentNotUsable` naming the reason; returns the reading when usable."""
    reading, refusal = check_usability(session, instrument, at, parameter)
    if refusal is not None:
        raise refusal
    return reading
