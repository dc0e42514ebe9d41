"""Monitoring sites (点位), their approved versions, change requests, plans and sampling tasks.

A `Site` is the identity (its code); what it is and where it lies lives in `SiteVersion` rows,
append-only: position, kind and parameters change only by an approved `SiteChangeRequest`, which
adds the next version with the approving department's reference (no approval, no change; an
unapproved site change counts as tampering: DOMAIN.md §3, [HLJ 4], [175]). A sample is bound to
the version in force when it was taken.

A `MonitoringPlan` (sites x parameters x frequency over a period) generates `SamplingTask`s: one
visit of one site on one day by a sampler. A sampler's tasks of one day form the field batch that
field QC (blanks, duplicates) is counted over.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


class SiteKind(StrEnum):
    SURFACE_WATER = "surface_water"  # 地表水断面
    GROUNDWATER = "groundwater"  # 地下水井
    AMBIENT_AIR = "ambient_air"  # 环境空气站
    SOURCE_OUTLET = "source_outlet"  # 污染源排口
    SOIL = "soil"  # 土壤点位
    OTHER = "other"


# what a site of each kind yields; preservation rules and sample numbers follow the matrix
MATRIX_OF_KIND = {
    SiteKind.SURFACE_WATER: "water",
    SiteKind.GROUNDWATER: "water",
    SiteKind.SOURCE_OUTLET: "water",
    SiteKind.AMBIENT_AIR: "air",
    SiteKind.SOIL: "soil",
    SiteKind.OTHER: "other",
}


class SiteStatus(StrEnum):
    PROPOSED = "proposed"  # requested, not yet approved: no samples
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DECOMMISSIONED = "decommissioned"  # terminal


class WaterBody(StrEnum):
    """GB 3838-2002 evaluates TP by the water body (river vs lake/reservoir)."""

    NONE = ""
    RIVER = "river"
    LAKE = "lake"
    RESERVOIR = "reservoir"


class Frequency(StrEnum):
    """How often a parameter is monitored; `TIMES_PER_YEAR` turns it into tasks."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    BIMONTHLY = "bimonthly"
    QUARTERLY = "quarterly"
    SEMIANNUAL = "semiannual"
    ANNUAL = "annual"


class ChangeKind(StrEnum):
    CREATE = "create"  # a new site: approval makes version 1 and the site active
    CHANGE = "change"  # position, kind, parameters or descriptive fields
    SUSPEND = "suspend"
    REACTIVATE = "reactivate"
    DECOMMISSION = "decommission"


class ChangeStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # by its proposer, before a decision


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


class Site(SQLModel, table=True):
    __tablename__ = "site"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # WS01: also the {site} of sample numbers
    status: str = Field(default=SiteStatus.PROPOSED.value, max_length=16, index=True)
    # the version in force now (no foreign key: the version refers back to the site)
    current_version_id: int | None = Field(default=None)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class SiteVersion(SQLModel, table=True):
    """One approved state of a site, in force from `valid_from` until the next version's.
    Append-only."""

    __tablename__ = "site_version"
    __table_args__ = (UniqueConstraint("site_id", "version_no"),
                      Index("ix_site_version_site_valid", "site_id", "valid_from"))

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(sa_column=_fk("site.id"))
    version_no: int
    valid_from: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(max_length=16)
    name_zh: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    kind: str = Field(max_length=20)
    # WGS-84 decimal degrees, exactly as approved
    latitude: Decimal = Field(sa_type=DecimalText)
    longitude: Decimal = Field(sa_type=DecimalText)
    water_body: str = Field(default="", max_length=16)
    basin: str = Field(default="", max_length=120)  # 流域 / river
    district: str = Field(default="", max_length=120)  # 行政区
    department: str = Field(default="", max_length=200)  # responsible department
    change_request_id: int = Field(sa_column=_fk("site_change_request.id"))
    approved_by_id: int = Field(sa_column=_fk("app_user.id"))
    approval_ref: str = Field(max_length=120)  # the approving department's reference (文号)
    created_at: datetime = Field(sa_type=UTCDateTime)


class SiteVersionParameter(SQLModel, table=True):
    """A parameter monitored at a site version, with its frequency. Append-only."""

    __tablename__ = "site_version_parameter"
    __table_args__ = (UniqueConstraint("site_version_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    site_version_id: int = Field(sa_column=_fk("site_version.id", index=True))
    parameter: str = Field(max_length=60)  # a preservation rule's parameter code
    frequency: str = Field(max_length=16)


class SiteChangeRequest(SQLModel, table=True):
    """A proposal to create, change, suspend, reactivate or decommission a site. `proposed` is
    the canonical JSON of the complete version asked for (parameters included), so the decision
    signs off exactly what becomes the next version."""

    __tablename__ = "site_change_request"

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(sa_column=_fk("site.id", index=True))
    kind: str = Field(max_length=16)
    status: str = Field(default=ChangeStatus.SUBMITTED.value, max_length=16, index=True)
    proposed: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(max_length=1000)
    submitted_by_id: int = Field(sa_column=_fk("app_user.id"))
    submitted_at: datetime = Field(sa_type=UTCDateTime)
    decided_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_ref: str = Field(default="", max_length=120)
    decision_note: str = Field(default="", max_length=1000)
    effective_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resulting_version_id: int | None = Field(default=None)


class PlanStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"  # tasks generated
    ACTIVE = "active"  # its first task dispatched
    CLOSED = "closed"


class MonitoringPlan(SQLModel, table=True):
    __tablename__ = "monitoring_plan"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # PL26-00003
    title: str = Field(max_length=200)
    period_start: date = Field(sa_column=Column(Date, nullable=False))
    period_end: date = Field(sa_column=Column(Date, nullable=False))
    status: str = Field(default=PlanStatus.DRAFT.value, max_length=16, index=True)
    note: str = Field(default="", max_length=1000)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))
    created_at: datetime = Field(sa_type=UTCDateTime)
    approved_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PlanLine(SQLModel, table=True):
    """Sample `site` for `parameters` at `frequency`, by `sampler`, on `day_in_period` of each
    period (the 10th of the month, the 10th day of the quarter...)."""

    __tablename__ = "plan_line"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(sa_column=_fk("monitoring_plan.id", index=True))
    site_id: int = Field(sa_column=_fk("site.id"))
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    frequency: str = Field(max_length=16)
    day_in_period: int = Field(default=10)
    sampler_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))


class TaskStatus(StrEnum):
    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"  # samples registered, containers and labels ready
    IN_FIELD = "in_field"  # the first field entry arrived
    COMPLETED = "completed"  # every sample's field record signed
    CANCELLED = "cancelled"  # with a reason


class SamplingTask(SQLModel, table=True):
    __tablename__ = "sampling_task"
    __table_args__ = (Index("ix_sampling_task_sampler_day", "sampler_id", "scheduled_on"),
                      Index("ix_sampling_task_day_status", "scheduled_on", "status"))

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # TK26-00042
    plan_id: int | None = Field(default=None, sa_column=_fk("monitoring_plan.id", nullable=True, index=True))
    site_id: int = Field(sa_column=_fk("site.id", index=True))
    scheduled_on: date = Field(sa_column=Column(Date, nullable=False))
    sampler_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    status: str = Field(default=TaskStatus.SCHEDULED.value, max_length=16)
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    # field QC this task carries for its batch (the sampler's tasks of the day)
    field_blanks: int = Field(default=0)
    field_duplicates: int = Field(default=0)
    cancel_reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
