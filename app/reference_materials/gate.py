"""The gate: was a reference material, standard solution or reagent usable at a moment?

Analyses and intermediate checks call `assert_material_usable` with the time of use, not of
entry (DESIGN.md rule 7): a result entered today for a calibration made last month passes if
the standard was valid then. The answer comes from the instants stored on the item (received,
opened, used up, disposed, expiry) and, for CRMs and solutions, the status of the lot at the
end of the chain at that moment (one query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.labtime import lab_calendar
from app.reference_materials import errors
from app.reference_materials.models import (
    LotStatus,
    LotStatusChange,
    MaterialLot,
    ReagentLot,
    StandardSolution,
    StockUnit,
)


def lot_expiry_instant(session: Session, expires_on: date) -> datetime:
    """"有效期至 2027-05-31" means usable through that local day: expiry is the next day's start."""
    return lab_calendar(session).start_of(expires_on + timedelta(days=1))


@dataclass(frozen=True)
class Usability:
    usable: bool
    reason: str | None  # the refusal's reason code (API `reason`)
    expires_at: datetime | None
    refusal: errors.MaterialNotUsable | None = None


def lot_status_at(session: Session, lot_id: int, at: datetime) -> LotStatusChange | None:
    """The status change of the lot in force at `at` (None: active since registration)."""
    return session.scalars(
        select(LotStatusChange)
        .where(LotStatusChange.lot_id == lot_id, LotStatusChange.effective_at <= at)
        .order_by(LotStatusChange.effective_at.desc(), LotStatusChange.id.desc())
        .limit(1)
    ).first()


def check_material(session: Session, item: object, at: datetime) -> Usability:
    """Usability of a lot, unit, solution or reagent at `at`, with the refusal when unusable."""
    calendar = lab_calendar(session)

    def local(moment: datetime) -> str:
        return moment.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")

    label = getattr(item, "barcode", None) or f"{getattr(item, 'lot_no', '')}"
    params = {"barcode": label, "at": local(at)}

    def refuse(error_class: type[errors.MaterialNotUsable], expiry: datetime | None, **extra: str) -> Usability:
        refusal = error_class(**params, **extra)
        return Usability(False, refusal.reason, expiry, refusal)

    lot_id = _lot_of(item)
    if lot_id is not None:
        change = lot_status_at(session, lot_id, at)
        if change is not None and change.status == LotStatus.WITHDRAWN.value:
            return refuse(errors.LotWithdrawnAtUse, None, cause=change.reason)
        if change is not None and change.status == LotStatus.QUARANTINED.value:
            return refuse(errors.LotQuarantined, None, cause=change.reason)

    if isinstance(item, MaterialLot):
        expires = item.expires_at
        if at >= expires:
            return refuse(errors.MaterialExpired, expires, expires=local(expires))
        return Usability(True, None, expires)

    since = item.prepared_at if isinstance(item, StandardSolution) else item.received_at
    if at < since:
        return refuse(errors.MaterialNotYetAvailable, None, since=local(since))
    if item.disposed_at is not None and item.disposed_at <= at:
        return refuse(errors.MaterialDisposed, None)
    if item.used_up_at is not None and item.used_up_at <= at:
        return refuse(errors.MaterialUsedUp, None)
    opened = getattr(item, "opened_at", None)
    sealed_then = isinstance(item, (StockUnit, ReagentLot)) and (opened is None or at < opened)
    expires = sealed_expiry_of(session, item) if sealed_then else item.expires_at
    # expired first: opening, the remedy for "not opened", is refused after the expiry
    if at >= expires:
        return refuse(errors.MaterialExpired, expires, expires=local(expires))
    if sealed_then and isinstance(item, StockUnit):
        return refuse(errors.MaterialNotOpened, None)
    return Usability(True, None, expires)


def sealed_expiry_of(session: Session, item: StockUnit | ReagentLot) -> datetime:
    """The expiry of an unopened unit (its lot's) or reagent (its label's)."""
    if isinstance(item, StockUnit):
        return session.get(MaterialLot, item.lot_id).expires_at
    return lot_expiry_instant(session, item.expires_on)


def _lot_of(item: object) -> int | None:
    if isinstance(item, MaterialLot):
        return item.id
    if isinstance(item, StockUnit):
        return item.lot_id
    if isinstance(item, StandardSolution):
        return item.root_lot_id
    return None


def assert_material_usable(session: Session, item: object, at: datetime) -> Usability:
    """The gate for analyses, QC checks and solution preparation, at the time of use. Raises a
    `MaterialNotUsable` naming the reason; returns the usability (with the expiry) otherwise."""
    usability = check_material(session, item, at)
    if usability.refusal is not None:
        raise usability.refusal
    return usability
