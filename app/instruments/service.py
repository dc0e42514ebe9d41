"""Rules for the instrument registry and its metrological records.

Every function takes the session and the acting user, checks permission and rules, appends the
records and their audit events, refreshes the instrument's cached status, and never commits:
the caller's unit of work does. Records are append-only; `correct_*` writes a new revision.
Each change locks the instrument row first, so concurrent submissions for one instrument queue
up and the second sees what the first did (duplicate certificate, already decided, superseded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.audit import Actor
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.files import FileStore, store_upload
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, has_permission
from app.instruments import errors
from app.instruments.models import (
    Instrument,
    InstrumentAttachment,
    InstrumentKind,
    InstrumentUse,
    ServiceAction,
    ServiceChange,
    ServiceState,
)
from app.instruments.status import cache_state, status_at
from app.people.models import User

ASSET_NO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{1,39}$")
# Path segments of the instrument pages and API (/instruments/{asset_no}/status, /instruments/impact
# ...): an asset number made of one would be shadowed by the page of that name.
RESERVED_ASSET_SEGMENTS = frozenset({
    "new", "impact", "confirmations", "calibrations", "checks", "maintenance", "attachments", "status",
    "edit", "traceability", "traceability.pdf", "out-of-service", "retire", "acceptance", "correct",
    "certificate",
})
CERTIFICATE_MAX_BYTES = 20 * 1024 * 1024  # certificates are scanned PDFs; 20 MB is plenty
CERTIFICATE_TYPES = ("application/pdf",)
ATTACHMENT_TYPES = ("application/pdf", "image/png", "image/jpeg")


@dataclass(frozen=True)
class Upload:
    """A file arriving with a form: its bytes and the name the client gave it."""

    stream: BinaryIO
    filename: str


# ---------------------------------------------------------------- lookups


def get_instrument(session: Session, asset_no: str) -> Instrument:
    instrument = session.scalars(select(Instrument).where(Instrument.asset_no == asset_no.strip())).first()
    if instrument is None:
        raise errors.InstrumentNotFound(asset_no=asset_no.strip()[:40])
    return instrument


def get_record(session: Session, model: type, record_id: int) -> Any:
    record = session.get(model, record_id)
    if record is None:
        raise errors.RecordNotFound()
    return record


def successor_of(session: Session, model: type, record: Any) -> Any | None:
    return session.scalars(select(model).where(model.supersedes_id == record.id)).first()


def lock_instrument(session: Session, instrument: Instrument) -> None:
    """Serialise changes to one instrument (row lock on PostgreSQL; SQLite's writer is single)."""
    session.refresh(instrument, with_for_update=True)


# ---------------------------------------------------------------- snapshots (audit, signatures)


def row_columns(row: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in row.__table__.columns if c.name not in skip}


def instrument_snapshot(instrument: Instrument, uses: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    data = row_columns(instrument, skip=("created_at", "created_by_id"))
    if uses is not None:
        data["uses"] = [list(u) for u in uses]
    return data


def record_content(instrument: Instrument, record: Any) -> dict[str, Any]:
    """The canonical content of a record: what its audit event and any signature bind."""
    return {"asset_no": instrument.asset_no, "table": record.__tablename__, **row_columns(record)}


# ---------------------------------------------------------------- validation helpers


def clean_text(value: str, field: str, max_length: int, *, required: bool = True) -> str:
    cleaned = (value or "").strip()
    if required and not cleaned:
        raise InvalidInput(detail=f"{field} is required")
    if len(cleaned) > max_length:
        raise InvalidInput(detail=f"{field} is longer than {max_length}")
    return cleaned


def clean_choice(value: str, choices: type, field: str) -> str:
    try:
        return choices(value).value
    except ValueError:
        raise InvalidInput(detail=f"{field} must be one of {', '.join(c.value for c in choices)}") from None


def clean_reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise errors.ReasonRequired()
    return clean_text(cleaned, "reason", 500)


EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2999, 12, 31)


def refuse_future(moment: datetime, what_zh: str, what_en: str) -> None:
    """A record's moment: not in the future, nor before 1900 (a typo such as year 1 overflows in UTC)."""
    if moment > utcnow():
        raise errors.DateInFuture(what_zh=what_zh, what_en=what_en)
    if moment < datetime(EARLIEST_DAY.year, 1, 1, tzinfo=UTC):
        raise InvalidInput(detail=f"{what_en} cannot be before {EARLIEST_DAY.isoformat()}")


def refuse_implausible_day(day: date, field: str) -> None:
    """Dates the forms accept (a typo like 0001-01-01 made every status computation of the
    instrument overflow, and valid-until 9999-12-31 had no next day to fall due on)."""
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise InvalidInput(detail=f"{field} must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}")


def _normalise_uses(uses: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for parameter, method in uses:
        name = clean_text(parameter, "parameter", 60, required=False)
        if name and name.casefold() not in seen:
            seen[name.casefold()] = (name, clean_text(method, "method", 120, required=False))
    if not seen:
        raise errors.NoParameters()
    return list(seen.values())


def _responsible(session: Session, user_id: int) -> User:
    """An active user who may sign the instrument's 计量确认: anyone else would leave every
    certificate of the instrument unaccepted, and the instrument unusable, for good."""
    person = session.get(User, user_id)
    if person is None or not person.active:
        raise errors.UnknownResponsible()
    if not has_permission(session, person.id, Permission.INSTRUMENTS_CONFIRM):
        raise errors.UnknownResponsible(
            "责任人须能签署计量确认：{name} 没有该权限。",
            "The responsible person must be allowed to sign metrological confirmations; {name} is not.",
            name=person.printed_name)
    return person


def refuse_if_retired(instrument: Instrument) -> None:
    if instrument.service_state == ServiceState.RETIRED.value:
        raise errors.InstrumentIsRetired(asset_no=instrument.asset_no)


def uses_of(session: Session, instrument: Instrument) -> list[tuple[str, str]]:
    rows = session.execute(
        select(InstrumentUse.parameter, InstrumentUse.method)
        .where(InstrumentUse.instrument_id == instrument.id).order_by(InstrumentUse.id)
    ).all()
    return [(r.parameter, r.method) for r in rows]


# ---------------------------------------------------------------- the cached status


def refresh_state(session: Session, actor: Actor | None, instrument: Instrument) -> None:
    """Recompute `service_state` / `due_at` from the history as of now; audit any change."""
    session.flush()
    reading = status_at(session, instrument, utcnow())
    state, due_at = cache_state(reading)
    before = {"service_state": instrument.service_state, "due_at": instrument.due_at}
    if (state, due_at) == (before["service_state"], before["due_at"]):
        return
    instrument.service_state, instrument.due_at = state, due_at
    session.flush()
    audit.append(session, actor, "instrument.state_changed", "instrument", instrument.id, before,
                 {"service_state": state, "due_at": due_at, "status": reading.status.value,
                  "reason": reading.reason, "cause": reading.cause})


# ---------------------------------------------------------------- registry


def register_instrument(
    session: Session, actor: User, *, asset_no: str, name_zh: str, commissioned_on: date,
    responsible_id: int, uses: Iterable[tuple[str, str]], name_en: str = "", model: str = "",
    manufacturer: str = "", serial_no: str = "", location: str = "",
    kind: str = InstrumentKind.LABORATORY.value, notes: str = "",
) -> Instrument:
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    asset_no = (asset_no or "").strip()
    if not ASSET_NO_RE.match(asset_no):
        raise errors.InvalidAssetNo()
    reserved = [part for part in asset_no.lower().split("/") if part in RESERVED_ASSET_SEGMENTS]
    if reserved:
        raise errors.ReservedAssetNo(word=reserved[0])
    refuse_implausible_day(commissioned_on, "commissioned_on")
    if commissioned_on > lab_calendar(session).today():
        raise errors.CommissioningInFuture()
    _responsible(session, responsible_id)
    cleaned_uses = _normalise_uses(uses)
    if session.scalar(select(func.count()).where(Instrument.asset_no == asset_no)):
        raise errors.AssetNoTaken(asset_no=asset_no)
    instrument = Instrument(
        asset_no=asset_no, name_zh=clean_text(name_zh, "name_zh", 120),
        name_en=clean_text(name_en, "name_en", 120, required=False),
        model=clean_text(model, "model", 120, required=False),
        manufacturer=clean_text(manufacturer, "manufacturer", 120, required=False),
        serial_no=clean_text(serial_no, "serial_no", 80, required=False),
        location=clean_text(location, "location", 120, required=False),
        kind=clean_choice(kind, InstrumentKind, "kind"), commissioned_on=commissioned_on,
        responsible_id=responsible_id, notes=clean_text(notes, "notes", 4000, required=False),
        service_state=ServiceState.ACTIVE.value, due_at=None, created_at=utcnow(), created_by_id=actor.id,
    )
    session.add(instrument)
    session.flush()
    session.add_all(InstrumentUse(instrument_id=instrument.id, parameter=p, method=m) for p, m in cleaned_uses)
    session.flush()
    audit.append(session, actor, "instrument.registered", "instrument", instrument.id, None,
                 instrument_snapshot(instrument, cleaned_uses))
    return instrument


REGISTRY_FIELDS = {
    "name_zh": 120, "name_en": 120, "model": 120, "manufacturer": 120, "serial_no": 80, "location": 120,
    "notes": 4000,
}


def update_instrument(
    session: Session, actor: User, instrument: Instrument, *, reason: str,
    uses: Iterable[tuple[str, str]] | None = None, **changes: Any,
) -> Instrument:
    """Change registry data (location, responsible person, uses ...) with a reason, audited.
    The asset number and the history never change."""
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    reason = clean_reason(reason)
    lock_instrument(session, instrument)
    old_uses = uses_of(session, instrument)
    before = instrument_snapshot(instrument, old_uses)
    for name, value in changes.items():
        if name in REGISTRY_FIELDS:
            setattr(instrument, name, clean_text(value, name, REGISTRY_FIELDS[name], required=name == "name_zh"))
        elif name == "kind":
            instrument.kind = clean_choice(value, InstrumentKind, "kind")
        elif name == "responsible_id":
            instrument.responsible_id = _responsible(session, int(value)).id
        elif name == "commissioned_on":
            refuse_implausible_day(value, "commissioned_on")
            if value > lab_calendar(session).today():
                raise errors.CommissioningInFuture()
            instrument.commissioned_on = value
        else:
            raise InvalidInput(detail=f"{name} cannot be changed")
    new_uses = old_uses
    if uses is not None:
        new_uses = _normalise_uses(uses)
        if new_uses != old_uses:
            _replace_uses(session, instrument, old_uses, new_uses)
    after = instrument_snapshot(instrument, new_uses)
    if after == before:
        raise errors.NothingCorrected()
    session.flush()
    audit.append(session, actor, "instrument.updated", "instrument", instrument.id, before,
                 {**after, "reason": reason})
    refresh_state(session, actor, instrument)
    return instrument


def _replace_uses(session: Session, instrument: Instrument, old: list[tuple[str, str]],
                  new: list[tuple[str, str]]) -> None:
    """The assignment list is registry data (its history is in the audit trail)."""
    keep = {p.casefold(): (p, m) for p, m in new}
    rows = session.scalars(select(InstrumentUse).where(InstrumentUse.instrument_id == instrument.id)).all()
    for row in rows:
        wanted = keep.pop(row.parameter.casefold(), None)
        if wanted is None:
            session.delete(row)
        else:
            row.parameter, row.method = wanted
    session.flush()
    session.add_all(InstrumentUse(instrument_id=instrument.id, parameter=p, method=m) for p, m in keep.values())


def take_out_of_service(session: Session, actor: User, instrument: Instrument, reason: str) -> ServiceChange:
    """A decision to stop using an instrument (damage, move, doubt). Only a later accepted
    passing calibration brings it back (DOMAIN.md: instrument states)."""
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    reason = clean_reason(reason)
    lock_instrument(session, instrument)
    refuse_if_retired(instrument)
    if instrument.service_state == ServiceState.OUT_OF_SERVICE.value:
        raise errors.AlreadyOutOfService(asset_no=instrument.asset_no)
    return _service_change(session, actor, instrument, ServiceAction.OUT_OF_SERVICE, reason)


def retire_instrument(session: Session, actor: User, instrument: Instrument, reason: str) -> ServiceChange:
    """Retirement is terminal; the instrument and its history stay (lifetime responsibility)."""
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    reason = clean_reason(reason)
    lock_instrument(session, instrument)
    refuse_if_retired(instrument)
    return _service_change(session, actor, instrument, ServiceAction.RETIRED, reason)


def _service_change(session: Session, actor: User, instrument: Instrument, action: ServiceAction,
                    reason: str) -> ServiceChange:
    now = utcnow()
    change = ServiceChange(
        instrument_id=instrument.id, action=action.value, reason=reason, effective_from=now,
        event_day=lab_calendar(session).local_date(now), recorded_at=now, recorded_by_id=actor.id,
    )
    session.add(change)
    session.flush()
    audit.append(session, actor, f"instrument.{action.value}", "instrument_service_change", change.id, None,
                 record_content(instrument, change))
    refresh_state(session, actor, instrument)
    return change


def add_attachment(
    session: Session, actor: User, instrument: Instrument, store: FileStore, upload: Upload, *,
    title: str, kind: str = "other", max_bytes: int,
) -> InstrumentAttachment:
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    title = clean_text(title, "title", 200)
    if kind not in ("manual", "acceptance", "other"):
        raise InvalidInput(detail="kind must be manual, acceptance or other")
    stored = store_upload(session, actor, store, upload.stream, upload.filename,
                          allowed_types=ATTACHMENT_TYPES, max_bytes=max_bytes)
    attachment = InstrumentAttachment(instrument_id=instrument.id, file_id=stored.id, title=title, kind=kind,
                                      added_at=utcnow(), added_by_id=actor.id)
    session.add(attachment)
    session.flush()
    audit.append(session, actor, "instrument.attachment_added", "instrument_attachment", attachment.id, None,
                 {**record_content(instrument, attachment), "sha256": stored.sha256})
    return attachment
