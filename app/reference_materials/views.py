"""Read models for the reference-material pages: the lists, a material with its lots, a lot with
its units, and the page of one unit or reagent. Each costs a fixed number of queries however
many lots, units, values or uses there are (related rows come in one IN query each; tests
assert the count)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.files import StoredFile
from app.core.labtime import lab_calendar
from app.core.web import Page
from app.people.models import User
from app.reference_materials.gate import Usability, check_material
from app.reference_materials.models import (
    STOCKED_STATES,
    CertifiedValue,
    ItemKind,
    LotStatus,
    LotStatusChange,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReferenceMaterial,
    StockUnit,
)
from app.reference_materials.service import Item, item_kind_of

UNIT_STOCKED = STOCKED_STATES[ItemKind.UNIT]
REAGENT_STOCKED = STOCKED_STATES[ItemKind.REAGENT]
DUE_FILTERS = ("expiring", "expired")


def containing(text: str) -> str:
    """A LIKE pattern for `text` taken literally (certificate numbers may contain '_' or '%')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search(text: str, *columns: Any) -> ColumnElement[bool] | None:
    cleaned = text.strip()
    if not cleaned:
        return None
    pattern = containing(cleaned.lower())
    return or_(*(func.lower(column).like(pattern, escape="\\") for column in columns))


def _users(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def _page(session: Session, stmt: Any, where: list[Any], count_from: Any, page: int, size: int) -> tuple[int, Any]:
    total = session.scalar(select(func.count()).select_from(count_from).where(*where)) or 0
    rows = session.execute(stmt.where(*where).limit(size).offset((max(1, page) - 1) * size)).all()
    return total, rows


def _due(column: Any, due: str, now: datetime, window: timedelta) -> list[ColumnElement[bool]]:
    """'expiring': still valid, expiring within the window; 'expired': expired (the caller
    limits both to items still in stock)."""
    if due == "expiring":
        return [column > now, column <= now + window]
    if due == "expired":
        return [column <= now]
    return []


# ---------------------------------------------------------------- the material list


@dataclass(frozen=True)
class MaterialRow:
    material: ReferenceMaterial
    usable_units: int

    @property
    def low_stock(self) -> bool:
        return self.material.min_stock_units > 0 and self.usable_units < self.material.min_stock_units


def usable_units_of_material(now: datetime) -> Any:
    """Units in stock, unexpired, of an active lot: a correlated count per material."""
    return (
        select(func.count(StockUnit.id))
        .join(MaterialLot, MaterialLot.id == StockUnit.lot_id)
        .where(MaterialLot.material_id == ReferenceMaterial.id, MaterialLot.status == LotStatus.ACTIVE.value,
               StockUnit.state.in_(UNIT_STOCKED), StockUnit.expires_at > now)
        .correlate(ReferenceMaterial)
        .scalar_subquery()
    )


def search_materials(session: Session, *, q: str = "", stock: str = "", page: int = 1, size: int = 50,
                     now: datetime | None = None) -> Page[MaterialRow]:
    """Materials by certificate number, name or producer, each with its usable units: two queries."""
    now = now or utcnow()
    usable = usable_units_of_material(now)
    where = []
    found = _search(q, ReferenceMaterial.certificate_no, ReferenceMaterial.name_zh, ReferenceMaterial.name_en,
                    ReferenceMaterial.producer)
    if found is not None:
        where.append(found)
    if stock == "low":
        where += [ReferenceMaterial.min_stock_units > 0, usable < ReferenceMaterial.min_stock_units]
    stmt = select(ReferenceMaterial, usable).order_by(ReferenceMaterial.certificate_no)
    total, rows = _page(session, stmt, where, ReferenceMaterial, page, size)
    return Page([MaterialRow(m, n) for m, n in rows], max(1, page), size, total)


# ---------------------------------------------------------------- the unit list


@dataclass(frozen=True)
class UnitRow:
    unit: StockUnit
    lot: MaterialLot
    material: ReferenceMaterial


def search_units(session: Session, *, q: str = "", state: str = "", due: str = "", page: int = 1,
                 size: int = 50, now: datetime | None = None) -> Page[UnitRow]:
    """Units with their lot and material, filtered by state and expiry: two queries."""
    now = now or utcnow()
    where: list[Any] = []
    found = _search(q, StockUnit.barcode, ReferenceMaterial.certificate_no, ReferenceMaterial.name_zh,
                    ReferenceMaterial.name_en, MaterialLot.lot_no)
    if found is not None:
        where.append(found)
    if state:
        where.append(StockUnit.state == state)
    if due in DUE_FILTERS:
        where += [StockUnit.state.in_(UNIT_STOCKED),
                  *_due(StockUnit.expires_at, due, now, lab_calendar(session).due_soon)]
    joined = (StockUnit.__table__.join(MaterialLot.__table__, MaterialLot.id == StockUnit.lot_id)
              .join(ReferenceMaterial.__table__, ReferenceMaterial.id == MaterialLot.material_id))
    order = (StockUnit.expires_at, StockUnit.barcode) if due else (StockUnit.barcode.desc(),)
    stmt = (select(StockUnit, MaterialLot, ReferenceMaterial)
            .join(MaterialLot, MaterialLot.id == StockUnit.lot_id)
            .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id).order_by(*order))
    total, rows = _page(session, stmt, where, joined, page, size)
    return Page([UnitRow(u, lot, m) for u, lot, m in rows], max(1, page), size, total)


# ---------------------------------------------------------------- the reagent list


def search_reagents(session: Session, *, q: str = "", state: str = "", due: str = "", page: int = 1,
                    size: int = 50, now: datetime | None = None) -> Page[ReagentLot]:
    now = now or utcnow()
    where: list[Any] = []
    found = _search(q, ReagentLot.barcode, ReagentLot.name, ReagentLot.supplier, ReagentLot.lot_no,
                    ReagentLot.grade)
    if found is not None:
        where.append(found)
    if state:
        where.append(ReagentLot.state == state)
    if due in DUE_FILTERS:
        where += [ReagentLot.state.in_(REAGENT_STOCKED),
                  *_due(ReagentLot.expires_at, due, now, lab_calendar(session).due_soon)]
    order = (ReagentLot.expires_at, ReagentLot.barcode) if due else (ReagentLot.barcode.desc(),)
    total, rows = _page(session, select(ReagentLot).order_by(*order), where, ReagentLot, page, size)
    return Page([r for (r,) in rows], max(1, page), size, total)


# ---------------------------------------------------------------- one material with its lots


@dataclass(frozen=True)
class LotSummary:
    lot: MaterialLot
    certified: list[CertifiedValue]
    reference: list[CertifiedValue]
    file: StoredFile | None
    in_stock: int
    usable: int

    @property
    def expired(self) -> bool:
        return self.lot.expires_at <= utcnow()


def split_values(values: Iterable[CertifiedValue]) -> tuple[list[CertifiedValue], list[CertifiedValue]]:
    """Certified values and reference values (not certified) are shown apart."""
    ordered = sorted(values, key=lambda v: v.id)
    return [v for v in ordered if v.certified], [v for v in ordered if not v.certified]


def _files(session: Session, ids: Iterable[int]) -> dict[int, StoredFile]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {f.id: f for f in session.scalars(select(StoredFile).where(StoredFile.id.in_(wanted)))}


@dataclass(frozen=True)
class MaterialPage:
    material: ReferenceMaterial
    lots: list[LotSummary]
    created_by: User | None

    @property
    def usable_units(self) -> int:
        return sum(s.usable for s in self.lots)

    @property
    def low_stock(self) -> bool:
        return MaterialRow(self.material, self.usable_units).low_stock


def material_page(session: Session, material: ReferenceMaterial, now: datetime | None = None) -> MaterialPage:
    """A material and all its lots (newest expiry first) with values, certificates and stock:
    five queries whatever the number of lots."""
    now = now or utcnow()
    lots = list(session.scalars(select(MaterialLot).where(MaterialLot.material_id == material.id)
                                .order_by(MaterialLot.expires_on.desc(), MaterialLot.id.desc())))
    ids = [lot.id for lot in lots]
    values: dict[int, list[CertifiedValue]] = {i: [] for i in ids}
    stock: dict[int, tuple[int, int]] = {}
    if ids:
        for value in session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id.in_(ids))):
            values[value.lot_id].append(value)
        usable = func.sum(case((StockUnit.expires_at > now, 1), else_=0))
        for lot_id, in_stock, fresh in session.execute(
            select(StockUnit.lot_id, func.count(StockUnit.id), usable)
            .where(StockUnit.lot_id.in_(ids), StockUnit.state.in_(UNIT_STOCKED)).group_by(StockUnit.lot_id)
        ):
            stock[lot_id] = (in_stock, int(fresh or 0))
    files = _files(session, (lot.certificate_file_id for lot in lots))
    summaries = []
    for lot in lots:
        certified, reference = split_values(values.get(lot.id, []))
        in_stock, fresh = stock.get(lot.id, (0, 0))
        usable_now = fresh if lot.status == LotStatus.ACTIVE.value else 0
        summaries.append(LotSummary(lot, certified, reference, files.get(lot.certificate_file_id), in_stock,
                                    usable_now))
    created_by = session.get(User, material.created_by_id)
    return MaterialPage(material, summaries, created_by)


# ---------------------------------------------------------------- one lot with its units


@dataclass(frozen=True)
class UnitLine:
    unit: StockUnit
    opened_by: User | None
    received_by: User | None


@dataclass(frozen=True)
class StatusLine:
    change: LotStatusChange
    recorded_by: User | None


@dataclass(frozen=True)
class LotPage:
    lot: MaterialLot
    material: ReferenceMaterial
    certified: list[CertifiedValue]
    reference: list[CertifiedValue]
    file: StoredFile | None
    units: list[UnitLine]
    changes: list[StatusLine]  # newest first
    created_by: User | None

    @property
    def expired(self) -> bool:
        return self.lot.expires_at <= utcnow()


def lot_page(session: Session, lot: MaterialLot) -> LotPage:
    """A lot with its values, certificate, units and status history: a fixed number of
    queries however many units (the people come in one IN query)."""
    material = session.get(ReferenceMaterial, lot.material_id)
    certified, reference = split_values(
        session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id)))
    units = list(session.scalars(select(StockUnit).where(StockUnit.lot_id == lot.id).order_by(StockUnit.barcode)))
    changes = list(session.scalars(
        select(LotStatusChange).where(LotStatusChange.lot_id == lot.id)
        .order_by(LotStatusChange.effective_at.desc(), LotStatusChange.id.desc())))
    people = _users(session, [lot.created_by_id, *(u.opened_by_id for u in units),
                              *(u.received_by_id for u in units), *(c.recorded_by_id for c in changes)])
    file = _files(session, [lot.certificate_file_id]).get(lot.certificate_file_id)
    return LotPage(
        lot, material, certified, reference, file,
        [UnitLine(u, people.get(u.opened_by_id), people.get(u.received_by_id)) for u in units],
        [StatusLine(c, people.get(c.recorded_by_id)) for c in changes], people.get(lot.created_by_id),
    )


# ---------------------------------------------------------------- one unit or reagent


@dataclass(frozen=True)
class UseLine:
    use: MaterialUse
    recorded_by: User


@dataclass(frozen=True)
class ItemPage:
    item: Item
    kind: ItemKind
    usability: Usability
    uses: Page[UseLine]
    received_by: User | None
    opened_by: User | None
    lot: MaterialLot | None = None
    material: ReferenceMaterial | None = None
    certified: tuple[CertifiedValue, ...] = ()
    reference: tuple[CertifiedValue, ...] = ()

    @property
    def sealed(self) -> bool:
        return self.item.state in ("received", "in_stock")

    @property
    def live(self) -> bool:
        return self.item.state in STOCKED_STATES[self.kind]

    @property
    def lot_expired(self) -> bool:
        return self.lot is not None and self.lot.expires_at <= utcnow()


def item_page(session: Session, item: Item, *, page: int = 1, size: int = 50,
              now: datetime | None = None) -> ItemPage:
    """A unit or reagent: the gate's answer now, its uses (paginated) and, for a unit, its lot,
    material and values."""
    now = now or utcnow()
    kind = item_kind_of(item)
    usability = check_material(session, item, now)
    where = [MaterialUse.item_kind == kind.value, MaterialUse.item_id == item.id]
    total, rows = _page(
        session,
        select(MaterialUse, User).join(User, User.id == MaterialUse.recorded_by_id)
        .order_by(MaterialUse.used_at.desc(), MaterialUse.id.desc()),
        where, MaterialUse, page, size)
    uses = Page([UseLine(use, user) for use, user in rows], max(1, page), size, total)
    people = _users(session, [item.received_by_id, item.opened_by_id])
    extra: dict[str, Any] = {}
    if isinstance(item, StockUnit):
        lot = session.get(MaterialLot, item.lot_id)
        certified, reference = split_values(
            session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id)))
        extra = {"lot": lot, "material": session.get(ReferenceMaterial, lot.material_id),
                 "certified": tuple(certified), "reference": tuple(reference)}
    return ItemPage(item, kind, usability, uses, people.get(item.received_by_id), people.get(item.opened_by_id),
                    **extra)


# ---------------------------------------------------------------- display helpers


def number(value: Decimal | None) -> str:
    """A Decimal as entered, never in exponent notation ('1E+3' shows as 1000)."""
    if value is None:
        return ""
    return f"{value:f}"


def expiry_text(moment: datetime | None, tz: Any) -> str:
    """An expiry instant as the lab reads it: a certificate's 'valid until' day (the instant is
    the start of the next local day) as that date, an opened item's expiry to the minute."""
    if moment is None:
        return ""
    local = moment.astimezone(tz)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return (local.date() - timedelta(days=1)).isoformat()
    return local.strftime("%Y-%m-%d %H:%M")
