"""Reference materials and reagents: registry, lots with their certificates, stock and use.

Every act checks its permission and rules, changes rows and appends an audit event in the
caller's transaction. A lot's certified values and status changes and every use of an item are
append-only; the stock rows keep their state and the instant of each transition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.codes import next_code
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.files import FileStore, store_upload
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.units import Dimension, IncompatibleUnits, convert, parse_unit
from app.instruments.service import (
    CERTIFICATE_MAX_BYTES,
    CERTIFICATE_TYPES,
    Upload,
    clean_reason,
    clean_text,
    refuse_future,
    refuse_implausible_day,
    row_columns,
)
from app.instruments.usage import register_check_standard_use
from app.people.models import User
from app.reference_materials import errors
from app.reference_materials.gate import (
    assert_material_usable,
    lot_expiry_instant,
    sealed_expiry_of,
    valid_until_text,
)
from app.reference_materials.models import (
    CODE_PREFIXES,
    CertifiedValue,
    ItemKind,
    LotStatus,
    LotStatusChange,
    MaterialGrade,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReagentState,
    ReferenceMaterial,
    SolutionState,
    StandardSolution,
    StockUnit,
    UnitState,
)

Item = StockUnit | StandardSolution | ReagentLot
BARCODE_RE = re.compile(r"^(RM|SS|RG)\d{2}-\d{5,}$")
KIND_OF_PREFIX = {prefix: kind for kind, prefix in CODE_PREFIXES.items()}
MAX_SHELF_LIFE_DAYS = 36500
MAX_UNITS_PER_RECEIPT = 200

# ---------------------------------------------------------------- parsing helpers (forms, API)


def to_decimal(text: str | Decimal | None, field: str, *, required: bool = True) -> Decimal | None:
    """A number as the lab typed it, exactly (no float on the way); blank is None unless required."""
    if isinstance(text, Decimal):
        value = text
    else:
        raw = (text or "").strip().replace(",", "")
        if not raw:
            if required:
                raise InvalidInput(detail=f"{field} is required")
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise errors.BadDecimal(field=field, value=raw[:30]) from None
    if not value.is_finite() or abs(value.adjusted()) > 30:
        raise errors.BadDecimal(field=field, value=str(text)[:30])
    return value


def positive(value: Decimal | None, what_zh: str, what_en: str) -> Decimal:
    from app.reference_materials.dilution import NonPositiveAmount

    if value is None or value <= 0:
        raise NonPositiveAmount(what_zh=what_zh, what_en=what_en)
    return value


def clean_days(days: int | None, field: str, *, required: bool = False) -> int | None:
    if days is None:
        if required:
            raise InvalidInput(detail=f"{field} is required")
        return None
    if not 1 <= days <= MAX_SHELF_LIFE_DAYS:
        raise InvalidInput(detail=f"{field} must be between 1 and {MAX_SHELF_LIFE_DAYS} days")
    return days


def stock_unit_of(text: str) -> str:
    """Stock is counted in a volume or a mass unit."""
    unit = parse_unit(text)
    if unit.dimension not in (Dimension.VOLUME, Dimension.MASS):
        raise IncompatibleUnits(from_unit=unit.symbol, to_unit="mL / g", hint_zh="", hint_en="")
    return unit.symbol


def _moment(session: Session, moment: datetime, what_zh: str, what_en: str) -> datetime:
    refuse_future(moment, what_zh, what_en)
    return moment


def _snapshot(row: Any) -> dict[str, Any]:
    return row_columns(row)


# ---------------------------------------------------------------- lookups


def item_kind_of(item: Item) -> ItemKind:
    if isinstance(item, StockUnit):
        return ItemKind.UNIT
    if isinstance(item, StandardSolution):
        return ItemKind.SOLUTION
    return ItemKind.REAGENT


MODEL_OF_KIND: dict[ItemKind, type] = {
    ItemKind.UNIT: StockUnit, ItemKind.SOLUTION: StandardSolution, ItemKind.REAGENT: ReagentLot,
}


def clean_barcode(barcode: str) -> str:
    cleaned = (barcode or "").strip().upper()
    if not BARCODE_RE.match(cleaned):
        raise errors.ItemNotFound(barcode=cleaned[:30] or "—")
    return cleaned


def find_item(session: Session, barcode: str) -> Item:
    """The unit, solution or reagent a scanned barcode names (the prefix says which table)."""
    cleaned = clean_barcode(barcode)
    model = MODEL_OF_KIND[KIND_OF_PREFIX[cleaned[:2]]]
    item = session.scalars(select(model).where(model.barcode == cleaned)).first()
    if item is None:
        raise errors.ItemNotFound(barcode=cleaned)
    return item


def get_material(session: Session, certificate_no: str) -> ReferenceMaterial:
    cleaned = (certificate_no or "").strip()
    material = session.scalars(
        select(ReferenceMaterial).where(ReferenceMaterial.certificate_no == cleaned)
    ).first()
    if material is None:
        raise errors.MaterialNotFound(certificate_no=cleaned[:40] or "—")
    return material


def get_lot(session: Session, lot_id: int) -> MaterialLot:
    lot = session.get(MaterialLot, lot_id)
    if lot is None:
        raise errors.LotNotFound()
    return lot


def lock(session: Session, row: Any) -> None:
    """Serialise changes to one row (row lock on PostgreSQL; SQLite's writer is single)."""
    session.refresh(row, with_for_update=True)


# ---------------------------------------------------------------- materials


GRADE_PATTERNS = (
    (re.compile(r"^GBW\s?\d{5}[a-z]?$"), MaterialGrade.GBW_PRIMARY),
    (re.compile(r"^GBW\s?\(E\)\s?\d{6}$", re.IGNORECASE), MaterialGrade.GBW_SECONDARY),
    (re.compile(r"^GSB\b", re.IGNORECASE), MaterialGrade.GSB),
    (re.compile(r"^(NIST\s+)?(SRM|RM|ERM|BCR|IRMM|CRM|NMIJ|BAM)\b", re.IGNORECASE), MaterialGrade.FOREIGN),
)


def grade_of(certificate_no: str) -> MaterialGrade:
    """一级 GBW + 5 digits, 二级 GBW(E) + 6 digits, GSB, or a foreign certified material."""
    for pattern, grade in GRADE_PATTERNS:
        if pattern.match(certificate_no):
            return grade
    return MaterialGrade.OTHER


@dataclass(frozen=True)
class MaterialFacts:
    certificate_no: str
    name_zh: str
    producer: str
    name_en: str = ""
    matrix: str = ""
    storage_conditions: str = ""
    hazard_notes: str = ""
    opened_shelf_life_days: int | None = None
    min_stock_units: int = 0


def _checked_material(facts: MaterialFacts) -> dict[str, Any]:
    certificate_no = clean_text(facts.certificate_no, "certificate_no", 40)
    if facts.min_stock_units < 0 or facts.min_stock_units > 10000:
        raise InvalidInput(detail="min_stock_units must be between 0 and 10000")
    return {
        "certificate_no": certificate_no,
        "grade": grade_of(certificate_no).value,
        "name_zh": clean_text(facts.name_zh, "name_zh", 200),
        "name_en": clean_text(facts.name_en, "name_en", 200, required=False),
        "producer": clean_text(facts.producer, "producer", 200),
        "matrix": clean_text(facts.matrix, "matrix", 120, required=False),
        "storage_conditions": clean_text(facts.storage_conditions, "storage_conditions", 300, required=False),
        "hazard_notes": clean_text(facts.hazard_notes, "hazard_notes", 500, required=False),
        "opened_shelf_life_days": clean_days(facts.opened_shelf_life_days, "opened_shelf_life_days"),
        "min_stock_units": facts.min_stock_units,
    }


def register_material(session: Session, actor: User, facts: MaterialFacts) -> ReferenceMaterial:
    ensure(session, actor, Permission.MATERIALS_MANAGE)
    checked = _checked_material(facts)
    _refuse_duplicate_material(session, checked["certificate_no"], None)
    material = ReferenceMaterial(created_at=utcnow(), created_by_id=actor.id, **checked)
    session.add(material)
    session.flush()
    audit.append(session, actor, "material.registered", "reference_material", material.id, None, _snapshot(material))
    return material


def update_material(session: Session, actor: User, material: ReferenceMaterial, facts: MaterialFacts, *,
                    reason: str) -> ReferenceMaterial:
    """Master data changes with a reason; the audit event keeps before and after."""
    ensure(session, actor, Permission.MATERIALS_MANAGE)
    reason = clean_reason(reason)
    lock(session, material)
    checked = _checked_material(facts)
    _refuse_duplicate_material(session, checked["certificate_no"], material.id)
    before = _snapshot(material)
    for key, value in checked.items():
        setattr(material, key, value)
    session.flush()
    audit.append(session, actor, "material.updated", "reference_material", material.id, before,
                 {**_snapshot(material), "reason": reason})
    return material


def _refuse_duplicate_material(session: Session, certificate_no: str, own_id: int | None) -> None:
    other = session.scalars(
        select(ReferenceMaterial.id).where(ReferenceMaterial.certificate_no == certificate_no)
    ).first()
    if other is not None and other != own_id:
        raise errors.DuplicateMaterial(certificate_no=certificate_no)


# ---------------------------------------------------------------- lots and certified values


@dataclass(frozen=True)
class ValueFacts:
    analyte: str
    value: Decimal
    unit: str
    expanded_uncertainty: Decimal | None = None
    coverage_factor: Decimal | None = None
    certified: bool = True


def _checked_values(values: Sequence[ValueFacts]) -> list[dict[str, Any]]:
    from app.reference_materials.dilution import relative_u_certified

    checked, seen = [], set()
    for facts in values:
        analyte = clean_text(facts.analyte, "analyte", 60)
        if analyte.casefold() in seen:
            raise errors.DuplicateAnalyte(analyte=analyte)
        seen.add(analyte.casefold())
        unit = parse_unit(facts.unit)
        if unit.dimension not in (Dimension.MASS_CONCENTRATION, Dimension.MASS_FRACTION):
            raise IncompatibleUnits(from_unit=unit.symbol, to_unit="mg/L / mg/kg", hint_zh="", hint_en="")
        positive(facts.value, f"{analyte} 的量值", f"The value of {analyte}")
        if facts.certified:
            relative_u_certified(analyte, facts.value, facts.expanded_uncertainty, facts.coverage_factor)
        checked.append({
            "analyte": analyte, "value": facts.value, "unit": unit.symbol, "certified": facts.certified,
            "expanded_uncertainty": facts.expanded_uncertainty, "coverage_factor": facts.coverage_factor,
        })
    if not any(v["certified"] for v in checked):
        raise errors.NoCertifiedValue()
    return checked


def register_lot(
    session: Session, actor: User, material: ReferenceMaterial, *, lot_no: str, expires_on: date,
    values: Sequence[ValueFacts], store: FileStore, certificate: Upload,
) -> MaterialLot:
    """A lot with its certificate (PDF ≤ 20 MB, kept by SHA-256) and its certified values, each
    with U and k; reference values (not certified) are kept apart by their flag."""
    ensure(session, actor, Permission.MATERIALS_MANAGE)
    lot_no = clean_text(lot_no, "lot_no", 60)
    refuse_implausible_day(expires_on, "expires_on")
    checked_values = _checked_values(values)
    exists = session.scalars(
        select(MaterialLot.id).where(MaterialLot.material_id == material.id, MaterialLot.lot_no == lot_no)
    ).first()
    if exists is not None:
        raise errors.DuplicateLot(certificate_no=material.certificate_no, lot_no=lot_no)
    stored = store_upload(session, actor, store, certificate.stream, certificate.filename,
                          allowed_types=CERTIFICATE_TYPES, max_bytes=CERTIFICATE_MAX_BYTES)
    lot = MaterialLot(
        material_id=material.id, lot_no=lot_no, expires_on=expires_on,
        expires_at=lot_expiry_instant(session, expires_on), certificate_file_id=stored.id,
        certificate_sha256=stored.sha256, created_at=utcnow(), created_by_id=actor.id,
    )
    session.add(lot)
    session.flush()
    rows = [CertifiedValue(lot_id=lot.id, **v) for v in checked_values]
    session.add_all(rows)
    session.flush()
    audit.append(session, actor, "material.lot_registered", "rm_lot", lot.id, None,
                 {**_snapshot(lot), "certificate_no": material.certificate_no,
                  "values": [_snapshot(v) for v in rows]})
    return lot


LOT_TRANSITIONS = {
    LotStatus.ACTIVE.value: {LotStatus.QUARANTINED.value, LotStatus.WITHDRAWN.value},
    LotStatus.QUARANTINED.value: {LotStatus.ACTIVE.value, LotStatus.WITHDRAWN.value},
}


def change_lot_status(session: Session, actor: User, lot: MaterialLot, status: str, *, reason: str,
                      effective_at: datetime | None = None) -> LotStatusChange:
    """Quarantine (suspected, e.g. a failed CRM check), release, or withdraw (certificate
    withdrawn by the producer: terminal). `effective_at` may lie in the past when the problem is
    known to date from then: uses after it are refused by the gate and listed by the forward
    traceability."""
    ensure(session, actor, Permission.MATERIALS_WITHDRAW)
    reason = clean_reason(reason)
    lock(session, lot)
    if lot.status == LotStatus.WITHDRAWN.value:
        raise errors.LotWithdrawn()
    try:
        target = LotStatus(status).value
    except ValueError:
        raise InvalidInput(detail="status must be active, quarantined or withdrawn") from None
    if target not in LOT_TRANSITIONS[lot.status]:
        raise InvalidInput(detail=f"the lot is already {lot.status}")
    now = utcnow()
    effective = _moment(session, effective_at or now, "生效时间", "The effective time")
    change = LotStatusChange(lot_id=lot.id, status=target, reason=reason, effective_at=effective,
                             recorded_at=now, recorded_by_id=actor.id)
    before = {"status": lot.status}
    lot.status = target
    session.add(change)
    session.flush()
    audit.append(session, actor, f"material.lot_{target}", "rm_lot", lot.id, before, _snapshot(change))
    return change


# ---------------------------------------------------------------- stock units


def receive_units(
    session: Session, actor: User, lot: MaterialLot, *, count: int, quantity: Decimal, quantity_unit: str,
    received_at: datetime,
) -> list[StockUnit]:
    """Units of a lot arrive: each gets a barcode (RMyy-nnnnn) and sits sealed until opened."""
    ensure(session, actor, Permission.MATERIALS_MANAGE)
    if not 1 <= count <= MAX_UNITS_PER_RECEIPT:
        raise InvalidInput(detail=f"count must be between 1 and {MAX_UNITS_PER_RECEIPT}")
    positive(quantity, "每单元的量", "The quantity of a unit")
    unit_symbol = stock_unit_of(quantity_unit)
    received_at = _moment(session, received_at, "接收时间", "The time of receipt")
    if lot.status == LotStatus.WITHDRAWN.value:
        raise errors.LotWithdrawn()
    units = []
    for _ in range(count):
        unit = StockUnit(
            lot_id=lot.id, barcode=next_code(session, CODE_PREFIXES[ItemKind.UNIT], received_at),
            quantity=quantity, quantity_unit=unit_symbol, remaining=quantity, state=UnitState.RECEIVED.value,
            expires_at=lot.expires_at, received_at=received_at, received_by_id=actor.id, created_at=utcnow(),
        )
        session.add(unit)
        units.append(unit)
    session.flush()
    for unit in units:
        audit.append(session, actor, "material.unit_received", "rm_unit", unit.id, None, _snapshot(unit))
    return units


def open_item(session: Session, actor: User, item: StockUnit | ReagentLot, opened_at: datetime) -> Item:
    """Opening (who, when) starts the in-use shelf life: the expiry becomes the earlier of the
    certificate's (or label's) expiry and opening + the stability after opening."""
    ensure(session, actor, Permission.MATERIALS_USE)
    lock(session, item)
    sealed = UnitState.RECEIVED.value if isinstance(item, StockUnit) else ReagentState.IN_STOCK.value
    if item.state != sealed:
        raise _wrong_state(item, "开封", "opened")
    opened_at = _moment(session, opened_at, "开封时间", "The time of opening")
    received = item.received_at
    if opened_at < received:
        raise errors.MaterialNotYetAvailable(barcode=item.barcode, at=_local(session, opened_at),
                                             since=_local(session, received))
    sealed_expiry = sealed_expiry_of(session, item)
    if opened_at >= sealed_expiry:
        raise errors.MaterialExpired(barcode=item.barcode, at=_local(session, opened_at),
                                     expires=valid_until_text(lab_calendar(session), sealed_expiry))
    shelf_life = _opened_shelf_life(session, item)
    before = _snapshot(item)
    item.opened_at, item.opened_by_id = opened_at, actor.id
    item.state = UnitState.IN_USE.value if isinstance(item, StockUnit) else ReagentState.IN_USE.value
    item.expires_at = min(sealed_expiry, opened_at + timedelta(days=shelf_life)) if shelf_life else sealed_expiry
    session.flush()
    audit.append(session, actor, f"material.{item_kind_of(item).value}_opened", item.__tablename__, item.id,
                 before, _snapshot(item))
    return item


def _opened_shelf_life(session: Session, item: StockUnit | ReagentLot) -> int | None:
    if isinstance(item, StockUnit):
        lot = session.get(MaterialLot, item.lot_id)
        return session.get(ReferenceMaterial, lot.material_id).opened_shelf_life_days
    return item.opened_shelf_life_days


def record_use(
    session: Session, actor: User, item: Item, used_at: datetime, *, quantity: Decimal | None = None,
    quantity_unit: str = "", purpose: str = "", consumer: tuple[str, str] = ("", ""),
) -> MaterialUse:
    """One use of an item at the time of use (not of entry): the gate first, then the amount
    comes off the stock; an item whose stock reaches zero is used up."""
    ensure(session, actor, Permission.MATERIALS_USE)
    lock(session, item)
    used_at = _moment(session, used_at, "使用时间", "The time of use")
    assert_material_usable(session, item, used_at)
    amount = None
    if quantity is not None:
        positive(quantity, "用量", "The amount used")
        amount = _in_stock_unit(item, quantity, quantity_unit)
        if item.remaining is not None and amount > item.remaining:
            raise errors.InsufficientQuantity(barcode=item.barcode, remaining=f"{item.remaining} {item.quantity_unit}",
                                              quantity=f"{quantity} {quantity_unit}")
    use = MaterialUse(
        item_kind=item_kind_of(item).value, item_id=item.id, used_at=used_at, quantity=quantity,
        quantity_unit=parse_unit(quantity_unit).symbol if quantity is not None else "",
        purpose=clean_text(purpose, "purpose", 300, required=False),
        consumer_kind=clean_text(consumer[0], "consumer_kind", 40, required=False),
        consumer_id=clean_text(str(consumer[1]), "consumer_id", 40, required=False),
        recorded_at=utcnow(), recorded_by_id=actor.id,
    )
    session.add(use)
    before = _snapshot(item)
    if amount is not None and item.remaining is not None:
        item.remaining = item.remaining - amount
        if item.remaining == 0:
            item.state, item.used_up_at = _used_up_state(item), used_at
    session.flush()
    audit.append(session, actor, "material.used", "rm_use", use.id, before,
                 {**_snapshot(use), "barcode": item.barcode, "remaining": item.remaining, "state": item.state})
    return use


def _in_stock_unit(item: Item, quantity: Decimal, quantity_unit: str) -> Decimal:
    if not item.quantity_unit:
        return quantity
    try:
        return convert(quantity, quantity_unit, item.quantity_unit)
    except IncompatibleUnits:
        raise errors.QuantityUnitMismatch(unit=quantity_unit, stock_unit=item.quantity_unit) from None


def _used_up_state(item: Item) -> str:
    return {ItemKind.UNIT: UnitState.USED_UP, ItemKind.SOLUTION: SolutionState.USED_UP,
            ItemKind.REAGENT: ReagentState.USED_UP}[item_kind_of(item)].value


LIVE_STATES = {
    ItemKind.UNIT: {UnitState.RECEIVED.value, UnitState.IN_USE.value},
    ItemKind.SOLUTION: {SolutionState.IN_USE.value},
    ItemKind.REAGENT: {ReagentState.IN_STOCK.value, ReagentState.IN_USE.value},
}


def mark_used_up(session: Session, actor: User, item: Item, at: datetime) -> Item:
    """The last of it is gone (whatever the book says is left)."""
    ensure(session, actor, Permission.MATERIALS_USE)
    lock(session, item)
    if item.state != UnitState.IN_USE.value:  # "in_use" in every kind: opened, or a solution
        raise _wrong_state(item, "登记用完", "marked used up")
    at = _moment(session, at, "用完时间", "The time")
    before = _snapshot(item)
    item.state, item.used_up_at = _used_up_state(item), at
    session.flush()
    audit.append(session, actor, f"material.{item_kind_of(item).value}_used_up", item.__tablename__, item.id,
                 before, _snapshot(item))
    return item


def dispose_item(session: Session, actor: User, item: Item, *, reason: str, at: datetime) -> Item:
    """Disposal (报废) of a unit or reagent, discarding of a solution: with a reason, terminal."""
    kind = item_kind_of(item)
    ensure(session, actor, Permission.MATERIALS_USE if kind == ItemKind.SOLUTION else Permission.MATERIALS_MANAGE)
    reason = clean_reason(reason)
    lock(session, item)
    if item.state not in LIVE_STATES[kind] | {_used_up_state(item)}:
        raise _wrong_state(item, "处置", "disposed of")
    at = _moment(session, at, "处置时间", "The time of disposal")
    before = _snapshot(item)
    item.state = SolutionState.DISCARDED.value if kind == ItemKind.SOLUTION else UnitState.DISPOSED.value
    item.disposed_at, item.disposal_reason = at, reason
    session.flush()
    audit.append(session, actor, f"material.{kind.value}_disposed", item.__tablename__, item.id, before,
                 _snapshot(item))
    return item


STATE_LABELS = {
    "received": ("未开封", "sealed"), "in_stock": ("未开封", "sealed"), "in_use": ("使用中", "in use"),
    "used_up": ("已用完", "used up"), "disposed": ("已处置", "disposed of"), "discarded": ("已废弃", "discarded"),
}


def _wrong_state(item: Item, act_zh: str, act_en: str) -> errors.WrongState:
    state_zh, state_en = STATE_LABELS.get(item.state, (item.state, item.state))
    return errors.WrongState(barcode=item.barcode, state_zh=state_zh, state_en=state_en, act_zh=act_zh, act_en=act_en)


def _local(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- reagents


@dataclass(frozen=True)
class ReagentFacts:
    name: str
    grade: str
    supplier: str
    lot_no: str
    expires_on: date
    received_at: datetime
    quantity: Decimal | None = None
    quantity_unit: str = ""
    opened_shelf_life_days: int | None = None
    storage_conditions: str = ""


def register_reagent(session: Session, actor: User, facts: ReagentFacts) -> ReagentLot:
    """An ordinary reagent lot on receipt, with its barcode (RGyy-nnnnn)."""
    ensure(session, actor, Permission.MATERIALS_MANAGE)
    refuse_implausible_day(facts.expires_on, "expires_on")
    received_at = _moment(session, facts.received_at, "接收时间", "The time of receipt")
    quantity = positive(facts.quantity, "数量", "The quantity") if facts.quantity is not None else None
    unit = stock_unit_of(facts.quantity_unit) if quantity is not None else ""
    reagent = ReagentLot(
        barcode=next_code(session, CODE_PREFIXES[ItemKind.REAGENT], received_at),
        name=clean_text(facts.name, "name", 200), grade=clean_text(facts.grade, "grade", 40),
        supplier=clean_text(facts.supplier, "supplier", 200), lot_no=clean_text(facts.lot_no, "lot_no", 60),
        expires_on=facts.expires_on, expires_at=lot_expiry_instant(session, facts.expires_on),
        opened_shelf_life_days=clean_days(facts.opened_shelf_life_days, "opened_shelf_life_days"),
        storage_conditions=clean_text(facts.storage_conditions, "storage_conditions", 300, required=False),
        quantity=quantity, quantity_unit=unit, remaining=quantity, state=ReagentState.IN_STOCK.value,
        received_at=received_at, received_by_id=actor.id, created_at=utcnow(),
    )
    session.add(reagent)
    session.flush()
    audit.append(session, actor, "material.reagent_received", "reagent_lot", reagent.id, None, _snapshot(reagent))
    return reagent


# ---------------------------------------------------------------- intermediate checks of instruments


def use_for_instrument_check(session: Session, actor: User, barcode: str, at: datetime, check_id: int) -> str:
    """期间核查 with a scanned standard: the standard must have been usable at the time of the
    check; its use is recorded against the check (forward traceability lists it)."""
    item = find_item(session, barcode)
    record_use(session, actor, item, at, purpose="期间核查 intermediate check",
               consumer=("instrument_check", str(check_id)))
    return item.barcode


register_check_standard_use(use_for_instrument_check)
