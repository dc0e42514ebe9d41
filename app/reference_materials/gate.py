"""The gate: was a reference material, standard solution or reagent usable at a moment?

Analyses and intermediate checks call `assert_material_usable` with the time of use, not of
entry (DESIGN.md rule 7): a result entered today for a calibration made last month passes if
the standard was valid then. The answer comes from the instants stored on the item (received,
opened, used up, disposed, expiry) and, for CRMs and solutions, the status of the lot at the
end of the chain at that moment (one query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.labtime import LabCalendar, lab_calendar
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


def valid_until_text(calendar: LabCalendar, expires_at: datetime) -> str:
    """How a label says it: an expiry at the start of a lab day is "valid until" the day before
    (2026-11-12 for 2026-11-13 00:00); an expiry during a day (opened + shelf life) keeps its time."""
    local = expires_at.astimezone(calendar.tz)
    if local.time() == time.min:
        return (local.date() - timedelta(days=1)).isoformat()
    return local.strftime("%Y-%m-%d %H:%M")


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


@dataclass(frozen=True)
class StockFacts:
    """What the rule needs of a unit, solution or reagent (from its row or a list's row)."""

    since: datetime  # received or prepared
    expires_at: datetime  # in force once opened (a solution's own)
    sealed_expires_at: datetime | None  # before opening (units and reagents); None for solutions
    opened_at: datetime | None
    used_up_at: datetime | None
    disposed_at: datetime | None
    must_be_opened: bool  # a CRM unit is used only once opened


def refusal_at(facts: StockFacts, change: LotStatusChange | None,
               at: datetime) -> tuple[type[errors.MaterialNotUsable] | None, datetime]:
    """The rule, in its order: lot withdrawn or quarantined, not yet there, disposed, used up,
    expired (first: opening, the remedy for "not opened", is refused after the expiry), not
    opened. Returns the refusal's class (None: usable) and the expiry in force at `at`."""
    sealed_then = facts.sealed_expires_at is not None and (facts.opened_at is None or at < facts.opened_at)
    expires = facts.sealed_expires_at if sealed_then else facts.expires_at
    if change is not None and change.status == LotStatus.WITHDRAWN.value:
        return errors.LotWithdrawnAtUse, expires
    if change is not None and change.status == LotStatus.QUARANTINED.value:
        return errors.LotQuarantined, expires
    if at < facts.since:
        return errors.MaterialNotYetAvailable, expires
    if facts.disposed_at is not None and facts.disposed_at <= at:
        return errors.MaterialDisposed, expires
    if facts.used_up_at is not None and facts.used_up_at <= at:
        return errors.MaterialUsedUp, expires
    if at >= expires:
        return errors.MaterialExpired, expires
    if sealed_then and facts.must_be_opened:
        return errors.MaterialNotOpened, expires
    return None, expires


def stock_facts(session: Session, item: StockUnit | StandardSolution | ReagentLot) -> StockFacts:
    if isinstance(item, StandardSolution):
        return StockFacts(item.prepared_at, item.expires_at, None, None, item.used_up_at, item.disposed_at, False)
    return StockFacts(item.received_at, item.expires_at, sealed_expiry_of(session, item), item.opened_at,
                      item.used_up_at, item.disposed_at, isinstance(item, StockUnit))


def check_material(session: Session, item: object, at: datetime) -> Usability:
    """Usability of a lot, unit, solution or reagent at `at`, with the refusal when unusable."""
    calendar = lab_calendar(session)

    def local(moment: datetime) -> str:
        return moment.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")

    lot_id = _lot_of(item)
    change = lot_status_at(session, lot_id, at) if lot_id is not None else None
    if isinstance(item, MaterialLot):
        # a lot is judged by its status and its expiry only
        facts = StockFacts(datetime.min.replace(tzinfo=UTC), item.expires_at, None, None, None, None, False)
        label = item.lot_no
    else:
        facts = stock_facts(session, item)
        label = item.barcode
    refusal_class, expires = refusal_at(facts, change, at)
    if refusal_class is None:
        return Usability(True, None, expires)
    extra = {
        errors.LotWithdrawnAtUse: lambda: {"cause": change.reason},
        errors.LotQuarantined: lambda: {"cause": change.reason},
        errors.MaterialNotYetAvailable: lambda: {"since": local(facts.since)},
        errors.MaterialExpired: lambda: {"expires": valid_until_text(calendar, expires)},
    }.get(refusal_class, dict)()
    refusal = refusal_class(barcode=label, at=local(at), **extra)
    shown_expiry = expires if refusal_class is errors.MaterialExpired else None
    return Usability(False, refusal.reason, shown_expiry, refusal)


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
