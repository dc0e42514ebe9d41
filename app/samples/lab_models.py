"""Samples between the field and the bench: custody, receipt, holding-time clocks, storage,
retention and disposal, preparation (issue 7; DOMAIN.md §3 and §4.1).

Custody is event-sourced like the field record: every hand-over, receipt, storage move,
preparation take-out and disposal is a `CustodyEvent` (append-only) naming giver and taker
(a person or a place) and the containers it moved. A container's current holder and location
are kept on the container for one-scan answers; the events are the history, and a gap is an
event whose giver is not the container's holder before it.

Receipt is a `Delivery` (one arriving cooler or hand-in) with the expected containers fixed at
opening, every scan, append-only condition checks per sample (a changed mind before signing is
a new revision), and at signing one `SampleReceipt` per sample: unique, so a sample is received
once. Holding-time clocks are materialised per sample × parameter so that the worklist is one
indexed query. Storage locations are places with conditions and a capacity. Disposal is a
request decided by the quality manager; nothing is deleted. Preparation batches hold aliquots
(containers with a parent), preparation blanks and spikes, and the materials used.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


def _flag(nullable: bool = True) -> Column:
    return Column(Boolean, nullable=nullable)


# ---------------------------------------------------------------- custody


class ShipmentState(StrEnum):
    PACKING = "packing"  # containers are being scanned into the cooler
    HANDED_OVER = "handed_over"  # the cooler changed hands in one act
    DELIVERED = "delivered"  # a delivery (receipt) was opened for it
    CANCELLED = "cancelled"  # emptied before hand-over


class Shipment(SQLModel, table=True):
    """A cooler or transport box: containers scanned in, then handed over in one act."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # SH26-00001x: code + check digit, on its label
    state: str = Field(default=ShipmentState.PACKING.value, max_length=16, index=True)
    # who has the cooler now: a person, or a carrier named in words (a driver, a courier)
    holder_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True, index=True))
    holder_place: str = Field(default="", max_length=200)
    seal_no: str = Field(default="", max_length=40)
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class ShipmentScan(SQLModel, table=True):
    """A container scanned into (`in`) or out of (`out`) a packing shipment: append-only."""

    __tablename__ = "shipment_scan"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(sa_column=_fk("shipment.id", index=True))
    container_id: int = Field(sa_column=_fk("sample_container.id", index=True))
    action: str = Field(default="in", max_length=4)
    scanned_at: datetime = Field(sa_type=UTCDateTime)
    scanned_by_id: int = Field(sa_column=_fk("app_user.id"))


class CustodyKind(StrEnum):
    HANDOVER = "handover"  # person to person (or shipment to person)
    RECEIPT = "receipt"  # received at the lab door (signed receipt)
    STORAGE = "storage"  # put into / moved between storage locations
    TAKE_OUT = "take_out"  # taken out of storage by an analyst (preparation, analysis)
    RETURN = "return"  # given back by the analyst to the custodian or storage
    DISPOSAL = "disposal"  # disposed of after approval; terminal


class CustodyEvent(SQLModel, table=True):
    """One change of hands or place (DOMAIN.md §3 custody event): append-only."""

    __tablename__ = "custody_event"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str | None = Field(default=None, max_length=64, unique=True)  # scanner/phone idempotency
    kind: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    from_user_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    from_location_id: int | None = Field(default=None, sa_column=_fk("storage_location.id", nullable=True))
    from_place: str = Field(default="", max_length=200)  # free text: "field", "courier 顺丰 SF123..."
    to_user_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    to_location_id: int | None = Field(default=None, sa_column=_fk("storage_location.id", nullable=True))
    to_place: str = Field(default="", max_length=200)
    shipment_id: int | None = Field(default=None, sa_column=_fk("shipment.id", nullable=True))
    cooler_temp_c: Decimal | None = Field(default=None, sa_type=DecimalText)
    seal_no: str = Field(default="", max_length=40)
    seal_intact: bool | None = Field(default=None, sa_column=_flag())
    note: str = Field(default="", max_length=500)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class CustodyEventContainer(SQLModel, table=True):
    """The containers an event moved; `sample_id` is kept for the chain of a sample (one index)."""

    __tablename__ = "custody_event_container"
    __table_args__ = (
        UniqueConstraint("event_id", "container_id"),
        Index("ix_custody_event_container_sample", "sample_id", "event_id"),
        Index("ix_custody_event_container_container", "container_id", "event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(sa_column=_fk("custody_event.id"))
    container_id: int = Field(sa_column=_fk("sample_container.id"))
    sample_id: int = Field(sa_column=_fk("sample.id"))
    gap: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    holder_before_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    location_before_id: int | None = Field(default=None, sa_column=_fk("storage_location.id", nullable=True))


# ---------------------------------------------------------------- receipt


class DeliveryState(StrEnum):
    OPEN = "open"
    SIGNED = "signed"


class Delivery(SQLModel, table=True):
    """Containers arriving at the lab door together, checked against the list expected."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # RC26-00001
    state: str = Field(default=DeliveryState.OPEN.value, max_length=12, index=True)
    shipment_id: int | None = Field(default=None, sa_column=_fk("shipment.id", nullable=True, index=True))
    task_id: int | None = Field(default=None, sa_column=_fk("sampling_task.id", nullable=True, index=True))
    delivered_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    delivered_by_name: str = Field(default="", max_length=120)  # courier or client, not a user
    arrived_at: datetime = Field(sa_type=UTCDateTime)
    cooler_temp_c: Decimal | None = Field(default=None, sa_type=DecimalText)
    seal_no: str = Field(default="", max_length=40)
    seal_intact: bool | None = Field(default=None, sa_column=_flag())
    note: str = Field(default="", max_length=500)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    opened_by_id: int = Field(sa_column=_fk("app_user.id"))
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signature_id: int | None = Field(default=None, sa_column=_fk("e_signature.id", nullable=True))


class DeliveryExpected(SQLModel, table=True):
    """The containers expected in a delivery, fixed when it is opened: append-only."""

    __tablename__ = "delivery_expected"
    __table_args__ = (UniqueConstraint("delivery_id", "container_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(sa_column=_fk("delivery.id"))
    container_id: int = Field(sa_column=_fk("sample_container.id"))


class DeliveryScan(SQLModel, table=True):
    """A container scanned at the door: expected or not. Append-only; a repeat scan is kept once."""

    __tablename__ = "delivery_scan"
    __table_args__ = (UniqueConstraint("delivery_id", "container_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(sa_column=_fk("delivery.id"))
    container_id: int = Field(sa_column=_fk("sample_container.id", index=True))
    expected: bool = Field(sa_column=Column(Boolean, nullable=False))
    scanned_at: datetime = Field(sa_type=UTCDateTime)
    scanned_by_id: int = Field(sa_column=_fk("app_user.id"))


class ReceiptDecision(StrEnum):
    ACCEPT = "accept"
    ACCEPT_WITH_CONDITIONS = "accept_with_conditions"  # deviation + consent; printed on the report
    REJECT = "reject"  # terminal, with a reason


class ReceiptCheck(SQLModel, table=True):
    """The custodian's checks of one sample at the door and the decision: append-only; a change
    before signing is the next revision with a reason. The signed revision is the record."""

    __tablename__ = "receipt_check"
    __table_args__ = (UniqueConstraint("delivery_id", "sample_id", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(sa_column=_fk("delivery.id"))
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))
    revision: int = Field(default=1)
    arrival_temp_c: Decimal | None = Field(default=None, sa_type=DecimalText)
    preservation_ok: bool | None = Field(default=None, sa_column=_flag())  # e.g. pH strip < 2
    preservation_note: str = Field(default="", max_length=200)  # "pH 1.5 (strip)"
    container_intact: bool | None = Field(default=None, sa_column=_flag())
    volume_sufficient: bool | None = Field(default=None, sa_column=_flag())
    label_legible: bool | None = Field(default=None, sa_column=_flag())
    decision: str = Field(max_length=24)
    deviation: str = Field(default="", max_length=500)  # accept_with_conditions: what is wrong
    consent_by: str = Field(default="", max_length=120)  # the client (or quality manager) who agreed
    consent_ref: str = Field(default="", max_length=120)  # phone call, mail, letter reference
    reject_reason: str = Field(default="", max_length=500)
    reason: str = Field(default="", max_length=500)  # why revision n > 1 replaced the one before
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class SampleReceipt(SQLModel, table=True):
    """The act of receiving a sample, made when its delivery is signed: one per sample (unique),
    so receiving twice is refused by the database too. Append-only."""

    __tablename__ = "sample_receipt"

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(sa_column=Column(Integer, ForeignKey("sample.id"), nullable=False, unique=True))
    delivery_id: int = Field(sa_column=_fk("delivery.id", index=True))
    check_id: int = Field(sa_column=_fk("receipt_check.id"))
    decision: str = Field(max_length=24)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    received_by_id: int = Field(sa_column=_fk("app_user.id"))
    signature_id: int = Field(sa_column=_fk("e_signature.id"))


# ---------------------------------------------------------------- holding-time clocks


class HoldingClock(SQLModel, table=True):
    """The holding time of one parameter of one sample: from collection to the deadline of the
    preservation rule (DOMAIN.md §4.1). Open until the parameter is analysed (issue 8 stops it)
    or the sample is rejected, cancelled or disposed. Derived from the sample and the rule; the
    worklist reads it with one indexed query ordered by deadline."""

    __tablename__ = "holding_clock"
    __table_args__ = (
        UniqueConstraint("sample_id", "parameter"),
        Index("ix_holding_clock_open_deadline", "open", "deadline_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(sa_column=_fk("sample.id"))
    parameter: str = Field(max_length=60)
    rule_id: int | None = Field(default=None, sa_column=_fk("preservation_rule.id", nullable=True))
    started_at: datetime = Field(sa_type=UTCDateTime)  # the sampling time
    allowed_hours: int | None = Field(default=None)  # None: "as soon as possible", the method sets it
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    open: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_by: str = Field(default="", max_length=24)  # analysed, rejected, cancelled, disposed


class HoldingDeviation(SQLModel, table=True):
    """Permission to prepare or analyse a parameter after its deadline, with the reason, given by
    the quality manager. Append-only; it travels with the result into review and the report."""

    __tablename__ = "holding_deviation"
    __table_args__ = (Index("ix_holding_deviation_sample", "sample_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(sa_column=_fk("sample.id"))
    parameter: str = Field(max_length=60)
    act: str = Field(max_length=16)  # preparation, analysis
    reason: str = Field(max_length=500)
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # the deadline it excuses
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- storage, retention, disposal


class StorageLocation(SQLModel, table=True):
    """A place samples are kept: room, unit (fridge, cabinet), shelf, position, its conditions
    and capacity in containers. Its barcode is scanned to put a container there."""

    __tablename__ = "storage_location"
    __table_args__ = (UniqueConstraint("room", "unit", "shelf", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # LC26-00001x
    room: str = Field(max_length=60)
    unit: str = Field(default="", max_length=60)
    shelf: str = Field(default="", max_length=30)
    position: str = Field(default="", max_length=30)
    conditions_zh: str = Field(default="", max_length=200)
    conditions_en: str = Field(default="", max_length=200)
    temp_min_c: Decimal | None = Field(default=None, sa_type=DecimalText)
    temp_max_c: Decimal | None = Field(default=None, sa_type=DecimalText)
    capacity: int | None = Field(default=None)  # containers; None: not limited
    occupied: int = Field(default=0)  # containers there now, kept by the storage service
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class RetentionRule(SQLModel, table=True):
    """How long samples are kept after reporting: per client, else per matrix, else the setting."""

    __tablename__ = "retention_rule"
    __table_args__ = (UniqueConstraint("client_name", "matrix"),)

    id: int | None = Field(default=None, primary_key=True)
    client_name: str = Field(default="", max_length=200)  # "" = any client
    matrix: str = Field(default="", max_length=16)  # "" = any matrix
    days: int
    note: str = Field(default="", max_length=300)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class DisposalState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"  # the quality manager agreed; the custodian then disposes
    REFUSED = "refused"
    DISPOSED = "disposed"


class DisposalRequest(SQLModel, table=True):
    """Samples whose retention is over, proposed for disposal by the custodian and decided by the
    quality manager (a different person); disposal is then recorded, never a deletion."""

    __tablename__ = "disposal_request"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # DS26-00001
    state: str = Field(default=DisposalState.REQUESTED.value, max_length=12, index=True)
    reason: str = Field(max_length=500)
    requested_at: datetime = Field(sa_type=UTCDateTime)
    requested_by_id: int = Field(sa_column=_fk("app_user.id"))
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    decision_note: str = Field(default="", max_length=500)
    disposed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposed_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    method: str = Field(default="", max_length=200)  # how: neutralised and drained, hazardous waste...


class DisposalRequestSample(SQLModel, table=True):
    __tablename__ = "disposal_request_sample"
    __table_args__ = (UniqueConstraint("request_id", "sample_id"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(sa_column=_fk("disposal_request.id"))
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))


# ---------------------------------------------------------------- preparation


class PrepKind(StrEnum):
    DIGESTION = "digestion"  # 消解
    EXTRACTION = "extraction"  # 萃取
    FILTRATION = "filtration"  # 过滤
    DRYING_SIEVING = "drying_sieving"  # 风干、研磨、过筛 (soil)
    DISTILLATION = "distillation"  # 蒸馏 (NH3-N, phenol, cyanide)
    OTHER = "other"


class PrepBatchState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # signed by the preparer; nothing more is added


class PrepBatch(SQLModel, table=True):
    __tablename__ = "prep_batch"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # PB26-00001
    kind: str = Field(max_length=20)
    method: str = Field(max_length=60)  # the method standard with its year: HJ 677-2013
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    state: str = Field(default=PrepBatchState.OPEN.value, max_length=12, index=True)
    note: str = Field(default="", max_length=500)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    opened_by_id: int = Field(sa_column=_fk("app_user.id", index=True))
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signature_id: int | None = Field(default=None, sa_column=_fk("e_signature.id", nullable=True))


class PrepItemRole(StrEnum):
    SAMPLE = "sample"
    PREP_BLANK = "prep_blank"  # 制备空白 / 消解空白: reagents only, through the whole procedure
    SPIKE = "spike"  # 加标: an aliquot with a known amount of a standard added


class PrepBatchItem(SQLModel, table=True):
    """One position in a preparation batch: an aliquot of a sample, a blank or a spike, with what
    went in and the final volume. Append-only."""

    __tablename__ = "prep_batch_item"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("prep_batch.id", index=True))
    position: int
    role: str = Field(max_length=12)
    container_id: int | None = Field(default=None, sa_column=_fk("sample_container.id", nullable=True, index=True))
    sample_id: int | None = Field(default=None, sa_column=_fk("sample.id", nullable=True, index=True))
    amount: Decimal | None = Field(default=None, sa_type=DecimalText)  # taken into the procedure
    amount_unit: str = Field(default="", max_length=8)  # mL or g
    final_volume_ml: Decimal | None = Field(default=None, sa_type=DecimalText)
    spike_use_id: int | None = Field(default=None, sa_column=_fk("rm_use.id", nullable=True))
    spike_amount: Decimal | None = Field(default=None, sa_type=DecimalText)
    spike_unit: str = Field(default="", max_length=8)
    deviation_id: int | None = Field(default=None, sa_column=_fk("holding_deviation.id", nullable=True))
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(sa_column=_fk("app_user.id"))


class PrepBatchMaterial(SQLModel, table=True):
    """A reagent, reference material or solution used by the batch: the use recorded through the
    reference-materials gate at the time of use. Append-only."""

    __tablename__ = "prep_batch_material"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("prep_batch.id", index=True))
    use_id: int = Field(sa_column=_fk("rm_use.id"))
    barcode: str = Field(max_length=20)
    purpose: str = Field(default="", max_length=200)  # "HNO3 for digestion", "spike standard"
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(sa_column=_fk("app_user.id"))


APPEND_ONLY_TABLES = (
    "shipment_scan", "custody_event", "custody_event_container", "delivery_expected", "delivery_scan",
    "receipt_check", "sample_receipt", "holding_deviation", "disposal_request_sample", "prep_batch_item",
    "prep_batch_material",
)
