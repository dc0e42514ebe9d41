"""Reference materials (有证标准物质), their stock, standard solutions and reagents.

A `ReferenceMaterial` is the certified product (GBW08608, SRM 1640a); a `MaterialLot` is one
batch with its own certificate PDF and certified values; a `StockUnit` is one bottle or ampoule
of a lot, with its barcode. A `StandardSolution` is prepared from one unit or from another
solution; `root_lot_id` names the lot at the end of its chain so forward traceability needs no
recursion. Values, volumes and masses are Decimals stored exactly (`DecimalText`).

Append-only: certified values, lot status changes, solution components and glassware, and every
use of an item (`MaterialUse`). The stock rows (unit, solution, reagent) carry a state with the
instant of each transition (opened, used up, disposed), so the gate can answer "was it usable
then" without a history table; each transition writes an audit event with before and after.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


class ItemKind(StrEnum):
    """What a barcode names; the prefix of the code says which."""

    UNIT = "unit"  # RM26-00012: a unit of a CRM lot
    SOLUTION = "solution"  # SS26-00005: a standard solution
    REAGENT = "reagent"  # RG26-00003: a reagent lot


CODE_PREFIXES = {ItemKind.UNIT: "RM", ItemKind.SOLUTION: "SS", ItemKind.REAGENT: "RG"}


class MaterialGrade(StrEnum):
    """From the certificate number (DOMAIN.md §1, CRMs)."""

    GBW_PRIMARY = "gbw"  # GBW + 5 digits: 一级
    GBW_SECONDARY = "gbw_e"  # GBW(E) + 6 digits: 二级
    GSB = "gsb"  # national standard sample (国家实物标准), ungraded
    FOREIGN = "foreign"  # NIST SRM, ERM, ... traceable certificates
    OTHER = "other"


class LotStatus(StrEnum):
    ACTIVE = "active"
    QUARANTINED = "quarantined"  # suspected: not to be used until released
    WITHDRAWN = "withdrawn"  # certificate withdrawn or values wrong: terminal


class UnitState(StrEnum):
    RECEIVED = "received"  # sealed in stock
    IN_USE = "in_use"  # opened
    USED_UP = "used_up"
    DISPOSED = "disposed"


class SolutionState(StrEnum):
    IN_USE = "in_use"
    USED_UP = "used_up"
    DISCARDED = "discarded"


class ReagentState(StrEnum):
    IN_STOCK = "in_stock"
    IN_USE = "in_use"
    USED_UP = "used_up"
    DISPOSED = "disposed"


# states in which an item still sits on a shelf (expiry dashboards look at these)
STOCKED_STATES = {
    ItemKind.UNIT: (UnitState.RECEIVED.value, UnitState.IN_USE.value),
    ItemKind.SOLUTION: (SolutionState.IN_USE.value,),
    ItemKind.REAGENT: (ReagentState.IN_STOCK.value, ReagentState.IN_USE.value),
}


def _fk(target: str, *, nullable: bool = False, index: bool = False, unique: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index, unique=unique)


def _text() -> Column:
    return Column(Text, nullable=False, server_default="")


class ReferenceMaterial(SQLModel, table=True):
    __tablename__ = "reference_material"

    id: int | None = Field(default=None, primary_key=True)
    certificate_no: str = Field(max_length=40, unique=True)  # GBW08608, GBW(E)080264, SRM 1640a
    grade: str = Field(max_length=16)
    name_zh: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    producer: str = Field(max_length=200)
    matrix: str = Field(default="", max_length=120)
    storage_conditions: str = Field(default="", max_length=300)
    hazard_notes: str = Field(default="", max_length=500)
    opened_shelf_life_days: int | None = Field(default=None)  # stability after opening
    min_stock_units: int = Field(default=0)  # low-stock threshold (usable units)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class MaterialLot(SQLModel, table=True):
    __tablename__ = "rm_lot"
    __table_args__ = (UniqueConstraint("material_id", "lot_no"),)

    id: int | None = Field(default=None, primary_key=True)
    material_id: int = Field(sa_column=_fk("reference_material.id", index=True))
    lot_no: str = Field(max_length=60)
    expires_on: date = Field(sa_column=Column(Date, nullable=False))  # unopened, from the certificate
    expires_at: datetime = Field(sa_type=UTCDateTime)  # start of the lab's day after expires_on
    certificate_file_id: int = Field(sa_column=_fk("stored_file.id"))
    certificate_sha256: str = Field(max_length=64)
    status: str = Field(default=LotStatus.ACTIVE.value, max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class CertifiedValue(SQLModel, table=True):
    """One analyte of a lot: certified (with U and k) or a reference value (not certified)."""

    __tablename__ = "rm_certified_value"
    __table_args__ = (UniqueConstraint("lot_id", "analyte"),)

    id: int | None = Field(default=None, primary_key=True)
    lot_id: int = Field(sa_column=_fk("rm_lot.id", index=True))
    analyte: str = Field(max_length=60)
    value: Decimal = Field(sa_type=DecimalText)
    unit: str = Field(max_length=20)
    expanded_uncertainty: Decimal | None = Field(default=None, sa_type=DecimalText)
    coverage_factor: Decimal | None = Field(default=None, sa_type=DecimalText)
    certified: bool = Field(sa_column=Column(Boolean, nullable=False))


class LotStatusChange(SQLModel, table=True):
    """Quarantine, release, withdrawal of a lot: when, who, why (the gate reads the one in force)."""

    __tablename__ = "rm_lot_status_change"
    __table_args__ = (Index("ix_rm_lot_status_change_lot", "lot_id", "effective_at"),)

    id: int | None = Field(default=None, primary_key=True)
    lot_id: int = Field(sa_column=_fk("rm_lot.id"))
    status: str = Field(max_length=16)
    reason: str = Field(max_length=500)
    effective_at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class _Stocked(SQLModel):
    """What every stock item carries: its code, amount and the instants of its transitions."""

    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(max_length=20, unique=True)
    quantity: Decimal | None = Field(default=None, sa_type=DecimalText)
    quantity_unit: str = Field(default="", max_length=20)
    remaining: Decimal | None = Field(default=None, sa_type=DecimalText)
    state: str = Field(max_length=16)
    expires_at: datetime = Field(sa_type=UTCDateTime)  # in force now: sealed or opened expiry
    used_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposal_reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)


class StockUnit(_Stocked, table=True):
    __tablename__ = "rm_unit"
    __table_args__ = (Index("ix_rm_unit_state_expires", "state", "expires_at"),)

    lot_id: int = Field(sa_column=_fk("rm_lot.id", index=True))
    received_at: datetime = Field(sa_type=UTCDateTime)
    received_by_id: int = Field(sa_column=_fk("app_user.id"))
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opened_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))


class StandardSolution(_Stocked, table=True):
    __tablename__ = "rm_solution"
    __table_args__ = (
        Index("ix_rm_solution_state_expires", "state", "expires_at"),
        CheckConstraint("(parent_unit_id IS NULL) <> (parent_solution_id IS NULL)", name="one_parent"),
    )

    name: str = Field(max_length=200)
    parent_unit_id: int | None = Field(default=None, sa_column=_fk("rm_unit.id", nullable=True, index=True))
    parent_solution_id: int | None = Field(default=None, sa_column=_fk("rm_solution.id", nullable=True, index=True))
    root_lot_id: int = Field(sa_column=_fk("rm_lot.id", index=True))
    generation: int = Field(default=1)  # dilution steps from the CRM
    aliquot: Decimal = Field(sa_type=DecimalText)
    aliquot_unit: str = Field(max_length=20)
    density: Decimal | None = Field(default=None, sa_type=DecimalText)
    density_unit: str = Field(default="", max_length=20)
    final_volume: Decimal = Field(sa_type=DecimalText)
    final_volume_unit: str = Field(max_length=20)
    solvent: str = Field(max_length=120)
    shelf_life_days: int
    prepared_at: datetime = Field(sa_type=UTCDateTime)
    prepared_by_id: int = Field(sa_column=_fk("app_user.id"))
    notes: str = Field(default="", sa_column=_text())


class SolutionComponent(SQLModel, table=True):
    """The concentration of one analyte in a solution, with its combined relative standard
    uncertainty and the parent's (the budget of the step is recomputed from the inputs)."""

    __tablename__ = "rm_solution_component"
    __table_args__ = (UniqueConstraint("solution_id", "analyte"),)

    id: int | None = Field(default=None, primary_key=True)
    solution_id: int = Field(sa_column=_fk("rm_solution.id", index=True))
    analyte: str = Field(max_length=60)
    concentration: Decimal = Field(sa_type=DecimalText)
    unit: str = Field(max_length=20)
    relative_u: Decimal = Field(sa_type=DecimalText)
    parent_value: Decimal = Field(sa_type=DecimalText)
    parent_unit: str = Field(max_length=20)
    parent_relative_u: Decimal = Field(sa_type=DecimalText)


class SolutionDevice(SQLModel, table=True):
    """A vessel or balance used to measure the aliquot or the final volume of a solution."""

    __tablename__ = "rm_solution_device"

    id: int | None = Field(default=None, primary_key=True)
    solution_id: int = Field(sa_column=_fk("rm_solution.id", index=True))
    role: str = Field(max_length=16)  # aliquot | final_volume
    name: str = Field(max_length=120)  # 10 mL 单标线吸量管
    glass_class: str = Field(default="", max_length=8)  # A, B
    tolerance: Decimal = Field(sa_type=DecimalText)
    unit: str = Field(max_length=20)


class ReagentLot(_Stocked, table=True):
    """An ordinary reagent (not certified): the same expiry gate, no uncertainty."""

    __tablename__ = "reagent_lot"
    __table_args__ = (Index("ix_reagent_lot_state_expires", "state", "expires_at"),)

    name: str = Field(max_length=200)
    grade: str = Field(max_length=40)  # 优级纯 GR, 分析纯 AR, 色谱纯 ...
    supplier: str = Field(max_length=200)
    lot_no: str = Field(max_length=60)
    expires_on: date = Field(sa_column=Column(Date, nullable=False))
    opened_shelf_life_days: int | None = Field(default=None)
    storage_conditions: str = Field(default="", max_length=300)
    received_at: datetime = Field(sa_type=UTCDateTime)
    received_by_id: int = Field(sa_column=_fk("app_user.id"))
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opened_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))


class MaterialUse(SQLModel, table=True):
    """One use of an item at a moment: what for, how much, and by which record (the consumer,
    e.g. a standard solution now; calibration curves and QC checks later)."""

    __tablename__ = "rm_use"
    __table_args__ = (Index("ix_rm_use_item", "item_kind", "item_id", "used_at"),)

    id: int | None = Field(default=None, primary_key=True)
    item_kind: str = Field(max_length=16)
    item_id: int
    used_at: datetime = Field(sa_type=UTCDateTime)
    quantity: Decimal | None = Field(default=None, sa_type=DecimalText)
    quantity_unit: str = Field(default="", max_length=20)
    purpose: str = Field(default="", max_length=300)
    consumer_kind: str = Field(default="", max_length=40)
    consumer_id: str = Field(default="", max_length=40)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))
