"""Read models of the stock for the API, the dashboards and the reminders.

Units, standard solutions and reagents live in three tables; a list over all of them is one
UNION ALL (ordered by barcode), so a page costs a fixed number of queries however many items it
shows. The dashboards select stocked items by (state, expires_at), the indexes each table has;
low stock is one grouped query over the materials with a threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import Date, Integer, String, and_, cast, func, literal_column, null, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from app.core.db import UTCDateTime, utcnow
from app.core.units import PRECISION
from app.core.web import Page
from app.reference_materials.dilution import expanded_for_display
from app.reference_materials.gate import StockFacts, Usability, check_material, lot_expiry_instant, refusal_at
from app.reference_materials.models import (
    STOCKED_STATES,
    CertifiedValue,
    ItemKind,
    LotStatus,
    LotStatusChange,
    MaterialLot,
    ReagentLot,
    ReferenceMaterial,
    SolutionComponent,
    StandardSolution,
    StockUnit,
    UnitState,
)

COVERAGE_FACTOR = Decimal(2)  # expanded uncertainties of solutions are given for k = 2 (≈95 %)
DASHBOARD_LIMIT = 500
USABLE_UNIT_STATES = (UnitState.RECEIVED.value, UnitState.IN_USE.value)

# ---------------------------------------------------------------- one row per item, any kind


@dataclass(frozen=True)
class ItemRow:
    """What a list shows of a unit, solution or reagent (and what its usability needs)."""

    kind: ItemKind
    id: int
    barcode: str
    name: str  # the material's name (zh) for a unit, the solution's or the reagent's name
    name_en: str
    certificate_no: str  # of the lot (units) or the lot at the end of the chain (solutions); "" for reagents
    lot_no: str
    state: str
    expires_at: datetime  # in force now: sealed or opened expiry
    remaining: Decimal | None
    quantity_unit: str
    since: datetime  # received or prepared
    opened_at: datetime | None
    used_up_at: datetime | None
    disposed_at: datetime | None
    lot_id: int | None  # the certified lot whose status the gate reads (None for reagents)
    lot_expires_at: datetime | None  # the certified lot's expiry (a unit's while sealed)
    sealed_expires_on: date | None  # a reagent's label expiry (its expiry while sealed)


def _typed_null(type_: Any) -> ColumnElement:
    return cast(null(), type_)


def _text(value: str) -> ColumnElement:
    return literal_column("'" + value.replace("'", "''") + "'", String)


ROW_COLUMNS = ("kind", "id", "barcode", "name", "name_en", "certificate_no", "lot_no", "state", "expires_at",
               "remaining", "quantity_unit", "since", "opened_at", "used_up_at", "disposed_at", "lot_id",
               "lot_expires_at", "sealed_expires_on")


def _labelled(*columns: ColumnElement) -> Select:
    """A branch of the union, its columns named like ItemRow's fields (any branch may come first)."""
    return select(*(column.label(name) for name, column in zip(ROW_COLUMNS, columns, strict=True)))


def _unit_branch(*where: ColumnElement[bool]) -> Select:
    return (
        _labelled(
            _text(ItemKind.UNIT.value), StockUnit.id, StockUnit.barcode, ReferenceMaterial.name_zh,
            ReferenceMaterial.name_en, ReferenceMaterial.certificate_no, MaterialLot.lot_no, StockUnit.state,
            StockUnit.expires_at, StockUnit.remaining, StockUnit.quantity_unit, StockUnit.received_at,
            StockUnit.opened_at, StockUnit.used_up_at, StockUnit.disposed_at, StockUnit.lot_id,
            MaterialLot.expires_at, _typed_null(Date),
        )
        .join(MaterialLot, MaterialLot.id == StockUnit.lot_id)
        .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id)
        .where(*where)
    )


def _solution_branch(*where: ColumnElement[bool]) -> Select:
    return (
        _labelled(
            _text(ItemKind.SOLUTION.value), StandardSolution.id, StandardSolution.barcode, StandardSolution.name,
            _text(""), ReferenceMaterial.certificate_no, MaterialLot.lot_no, StandardSolution.state,
            StandardSolution.expires_at, StandardSolution.remaining, StandardSolution.quantity_unit,
            StandardSolution.prepared_at, _typed_null(UTCDateTime), StandardSolution.used_up_at,
            StandardSolution.disposed_at, StandardSolution.root_lot_id, MaterialLot.expires_at, _typed_null(Date),
        )
        .join(MaterialLot, MaterialLot.id == StandardSolution.root_lot_id)
        .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id)
        .where(*where)
    )


def _reagent_branch(*where: ColumnElement[bool]) -> Select:
    return _labelled(
        _text(ItemKind.REAGENT.value), ReagentLot.id, ReagentLot.barcode, ReagentLot.name, _text(""), _text(""),
        ReagentLot.lot_no, ReagentLot.state, ReagentLot.expires_at, ReagentLot.remaining, ReagentLot.quantity_unit,
        ReagentLot.received_at, ReagentLot.opened_at, ReagentLot.used_up_at, ReagentLot.disposed_at,
        _typed_null(Integer), _typed_null(UTCDateTime), ReagentLot.expires_on,
    ).where(*where)


BRANCHES = {ItemKind.UNIT: (StockUnit, _unit_branch), ItemKind.SOLUTION: (StandardSolution, _solution_branch),
            ItemKind.REAGENT: (ReagentLot, _reagent_branch)}


def _items_union(where_of: Any, kinds: Iterable[ItemKind] = tuple(ItemKind)):
    """The UNION ALL of the branches of `kinds`, each filtered by `where_of(model, kind)`."""
    selects = [branch(*where_of(model, kind)) for kind, (model, branch) in BRANCHES.items() if kind in kinds]
    return union_all(*selects).subquery("items")


def _rows(session: Session, stmt: Select) -> list[ItemRow]:
    return [ItemRow(**{**row, "kind": ItemKind(row["kind"])}) for row in session.execute(stmt).mappings()]


# ---------------------------------------------------------------- the list


@dataclass(frozen=True)
class ListedItem:
    row: ItemRow
    usable_now: bool
    reason: str | None


def items_page(session: Session, *, page: int, per_page: int, kind: str | None = None, state: str | None = None,
               now: datetime | None = None) -> Page[ListedItem]:
    """Units, solutions and reagents together by barcode, each with whether it is usable now:
    three queries (count, page, status of the lots on the page) for any page size."""
    now = now or utcnow()
    kinds = [ItemKind(kind)] if kind else list(ItemKind)

    def where(model: Any, _kind: ItemKind) -> list[ColumnElement[bool]]:
        return [model.state == state] if state else []

    items = _items_union(where, kinds)
    total = session.scalar(select(func.count()).select_from(items)) or 0
    page = max(1, page)
    rows = _rows(session, select(items).order_by(items.c.barcode).limit(per_page).offset((page - 1) * per_page))
    changes = lot_changes_at(session, {r.lot_id for r in rows if r.lot_id is not None}, now)
    listed = []
    for row in rows:
        reason = usability_reason(session, row, changes.get(row.lot_id), now)
        listed.append(ListedItem(row, reason is None, reason))
    return Page(listed, page, per_page, total)


def lot_changes_at(session: Session, lot_ids: set[int], at: datetime) -> dict[int, LotStatusChange]:
    """The status change in force at `at` of each lot (lots without one are active): one query."""
    if not lot_ids:
        return {}
    found: dict[int, LotStatusChange] = {}
    for change in session.scalars(
        select(LotStatusChange).where(LotStatusChange.lot_id.in_(lot_ids), LotStatusChange.effective_at <= at)
        .order_by(LotStatusChange.lot_id, LotStatusChange.effective_at, LotStatusChange.id)
    ):
        found[change.lot_id] = change  # the latest wins
    return found


def usability_reason(session: Session, row: ItemRow, change: LotStatusChange | None, at: datetime) -> str | None:
    """The gate's reason code for a listed item at `at` (None: usable), from the row and its lot's
    status change in force: the gate's own rule (`gate.refusal_at`), without a query per item."""
    sealed_expires_at = None
    if row.kind is ItemKind.UNIT:
        sealed_expires_at = row.lot_expires_at
    elif row.kind is ItemKind.REAGENT:
        sealed_expires_at = lot_expiry_instant(session, row.sealed_expires_on)
    facts = StockFacts(row.since, row.expires_at, sealed_expires_at, row.opened_at, row.used_up_at, row.disposed_at,
                       row.kind is ItemKind.UNIT)
    refusal_class, _ = refusal_at(facts, change, at)
    return None if refusal_class is None else refusal_class.reason


# ---------------------------------------------------------------- one item


@dataclass(frozen=True)
class ComponentLine:
    """One analyte of a solution: full-precision Decimals and the values as printed (k = 2)."""

    analyte: str
    concentration: Decimal
    unit: str
    relative_u: Decimal  # combined relative standard uncertainty
    standard_uncertainty: Decimal  # concentration × relative_u
    expanded_uncertainty: Decimal  # k × standard uncertainty
    coverage_factor: Decimal
    shown_concentration: str  # rounded like U (two significant figures), half to even
    shown_expanded_uncertainty: str


@dataclass(frozen=True)
class CertifiedLine:
    analyte: str
    value: Decimal
    unit: str
    expanded_uncertainty: Decimal | None
    coverage_factor: Decimal | None
    certified: bool  # False: a reference value, not certified


@dataclass(frozen=True)
class ItemSummary:
    kind: ItemKind
    item: StockUnit | StandardSolution | ReagentLot
    barcode: str
    name: str
    name_en: str
    certificate_no: str  # units and solutions (the lot at the end of the chain); "" for reagents
    lot_no: str
    lot_status: str | None  # of the certified lot now (None for reagents)
    parent_barcode: str | None  # solutions: what they were prepared from
    state: str
    expires_at: datetime
    remaining: Decimal | None
    quantity: Decimal | None
    quantity_unit: str
    certified_values: tuple[CertifiedLine, ...]  # units
    components: tuple[ComponentLine, ...]  # solutions
    at: datetime
    usability: Usability  # the gate at `at`


def component_line(component: SolutionComponent, k: Decimal = COVERAGE_FACTOR) -> ComponentLine:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        standard = component.concentration * component.relative_u
        expanded = standard * k
    shown_value, shown_u = expanded_for_display(component.concentration, component.relative_u, k)
    return ComponentLine(component.analyte, component.concentration, component.unit, component.relative_u,
                         standard, expanded, k, shown_value, shown_u)


def item_summary(session: Session, item: StockUnit | StandardSolution | ReagentLot, at: datetime) -> ItemSummary:
    """Kind, name, values with their uncertainty, expiry, stock and the gate's answer at `at`
    (a fixed number of queries for each kind)."""
    certified: tuple[CertifiedLine, ...] = ()
    components: tuple[ComponentLine, ...] = ()
    parent_barcode = None
    if isinstance(item, ReagentLot):
        kind, name, name_en, certificate_no, lot_no, lot_status = (
            ItemKind.REAGENT, item.name, "", "", item.lot_no, None)
    else:
        lot_id = item.lot_id if isinstance(item, StockUnit) else item.root_lot_id
        lot, material = session.execute(
            select(MaterialLot, ReferenceMaterial)
            .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id).where(MaterialLot.id == lot_id)
        ).one()
        certificate_no, lot_no, lot_status = material.certificate_no, lot.lot_no, lot.status
        if isinstance(item, StockUnit):
            kind, name, name_en = ItemKind.UNIT, material.name_zh, material.name_en
            certified = tuple(
                CertifiedLine(v.analyte, v.value, v.unit, v.expanded_uncertainty, v.coverage_factor, v.certified)
                for v in session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id)
                                         .order_by(CertifiedValue.certified.desc(), CertifiedValue.id))
            )
        else:
            kind, name, name_en = ItemKind.SOLUTION, item.name, ""
            components = tuple(component_line(c) for c in session.scalars(
                select(SolutionComponent).where(SolutionComponent.solution_id == item.id)
                .order_by(SolutionComponent.id)))
            parent_barcode = _parent_barcode(session, item)
    return ItemSummary(
        kind=kind, item=item, barcode=item.barcode, name=name, name_en=name_en, certificate_no=certificate_no,
        lot_no=lot_no, lot_status=lot_status, parent_barcode=parent_barcode, state=item.state,
        expires_at=item.expires_at, remaining=item.remaining, quantity=item.quantity,
        quantity_unit=item.quantity_unit, certified_values=certified, components=components, at=at,
        usability=check_material(session, item, at),
    )


def _parent_barcode(session: Session, solution: StandardSolution) -> str | None:
    if solution.parent_unit_id is not None:
        return session.scalar(select(StockUnit.barcode).where(StockUnit.id == solution.parent_unit_id))
    return session.scalar(select(StandardSolution.barcode).where(StandardSolution.id == solution.parent_solution_id))


# ---------------------------------------------------------------- dashboards


def _stocked(model: Any, kind: ItemKind) -> ColumnElement[bool]:
    return model.state.in_(STOCKED_STATES[kind])


def _expiring_where(now: datetime, days: int):
    horizon = now + timedelta(days=days)

    def where(model: Any, kind: ItemKind) -> list[ColumnElement[bool]]:
        # strictly after now: an item whose expiry is this very instant is already expired (gate)
        return [_stocked(model, kind), model.expires_at > now, model.expires_at < horizon]

    return where


def _expired_where(now: datetime):
    def where(model: Any, kind: ItemKind) -> list[ColumnElement[bool]]:
        return [_stocked(model, kind), model.expires_at <= now]

    return where


def _listed(session: Session, where: Any, limit: int, offset: int = 0) -> list[ItemRow]:
    items = _items_union(where)
    return _rows(session, select(items).order_by(items.c.expires_at, items.c.barcode).limit(limit).offset(offset))


def _counted(session: Session, where: Any) -> int:
    return session.scalar(select(func.count()).select_from(_items_union(where))) or 0


def expiring_within(session: Session, days: int = 30, *, now: datetime | None = None,
                    limit: int = DASHBOARD_LIMIT, offset: int = 0) -> list[ItemRow]:
    """Stocked items (sealed or in use) whose expiry falls within `days`, soonest first: one query."""
    return _listed(session, _expiring_where(now or utcnow(), days), limit, offset)


def count_expiring_within(session: Session, days: int = 30, *, now: datetime | None = None) -> int:
    return _counted(session, _expiring_where(now or utcnow(), days))


def expired_in_stock(session: Session, *, now: datetime | None = None, limit: int = DASHBOARD_LIMIT,
                     offset: int = 0) -> list[ItemRow]:
    """Items past their expiry that are still on the shelf (not used up, disposed or discarded):
    to be disposed of. Longest expired first; one query."""
    return _listed(session, _expired_where(now or utcnow()), limit, offset)


def count_expired_in_stock(session: Session, *, now: datetime | None = None) -> int:
    return _counted(session, _expired_where(now or utcnow()))


@dataclass(frozen=True)
class LowStock:
    material: ReferenceMaterial
    usable_units: int
    min_stock_units: int


def _low_stock_statement(now: datetime) -> Select:
    """Materials with a threshold and fewer usable units (sealed or opened, not expired, of an
    active lot) than it, counted in one grouped query."""
    usable_unit = and_(StockUnit.lot_id == MaterialLot.id, StockUnit.state.in_(USABLE_UNIT_STATES),
                       StockUnit.expires_at > now)
    usable = func.count(StockUnit.id)
    return (
        select(ReferenceMaterial, usable.label("usable_units"))
        .outerjoin(MaterialLot, and_(MaterialLot.material_id == ReferenceMaterial.id,
                                     MaterialLot.status == LotStatus.ACTIVE.value))
        .outerjoin(StockUnit, usable_unit)
        .where(ReferenceMaterial.min_stock_units > 0)
        .group_by(ReferenceMaterial.id)
        .having(usable < ReferenceMaterial.min_stock_units)
    )


def low_stock(session: Session, *, now: datetime | None = None, limit: int = DASHBOARD_LIMIT) -> list[LowStock]:
    stmt = _low_stock_statement(now or utcnow()).order_by(ReferenceMaterial.certificate_no).limit(limit)
    return [LowStock(material, usable, material.min_stock_units) for material, usable in session.execute(stmt)]


def count_low_stock(session: Session, *, now: datetime | None = None) -> int:
    grouped = _low_stock_statement(now or utcnow()).subquery()
    return session.scalar(select(func.count()).select_from(grouped)) or 0
