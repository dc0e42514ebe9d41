"""Samples, their containers, and the field record.

`PreservationRule` is the preservation table (HJ 493-2009 and method standards): reference data
with a `source`, loaded as configurable defaults, never hard-coded in the rules. A `Sample` is
numbered by the lab's pattern; each `Container` has its own barcode (a check digit catches a
mistyped or misread code) and holds one preservation group.

The field record is event-sourced: each act in the field (sampling time and position, weather
and observations, a field test, a container scanned) is a `FieldEntry`, append-only and keyed by
the id the phone generated, so a retried or queued submission is recorded once. The record is
the fold of its entries; the sampler's `sampled` signature binds the fold up to the last entry
signed. Entries and photos after a signature carry a reason and the revision they belong to, so
the record shows the original and every change (DOMAIN.md §3; DESIGN.md rule 4).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


class PreservationRule(SQLModel, table=True):
    """How a parameter's sample is kept: container, volume, preservative, holding time. Rows of
    one `group_code` share a container (same type and preservative). `method` "" is the default
    row of the parameter; a method standard's own row prevails (HJ/T 195-2005 for NH3-N...)."""

    __tablename__ = "preservation_rule"
    __table_args__ = (UniqueConstraint("parameter", "method"),)

    id: int | None = Field(default=None, primary_key=True)
    parameter: str = Field(max_length=60)  # code as the lab writes it: COD, NH3-N, Cr6+, PM2.5
    method: str = Field(default="", max_length=60)
    matrix: str = Field(max_length=16)  # water, air, soil
    name_zh: str = Field(max_length=120)
    name_en: str = Field(max_length=120)
    group_code: str = Field(max_length=30)
    container_type: str = Field(max_length=30)  # P, G, G-brown, G-sterile, DO bottle, filter...
    volume_ml: int = Field(default=0)  # what this parameter needs of the container
    preservative_zh: str = Field(default="", max_length=200)
    preservative_en: str = Field(default="", max_length=200)
    storage_zh: str = Field(default="", max_length=120)
    storage_en: str = Field(default="", max_length=120)
    holding_hours: int | None = Field(default=None)  # None: "as soon as possible" (the method sets it)
    field_test: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    unit: str = Field(default="", max_length=20)  # for field tests: the unit entered
    source: str = Field(max_length=120)  # "HJ 493-2009 Table 1 (verify)"


class SampleKind(StrEnum):
    ROUTINE = "routine"  # from a task at a site
    FIELD_BLANK = "field_blank"  # 全程序空白
    TRANSPORT_BLANK = "transport_blank"  # 运输空白
    FIELD_DUPLICATE = "field_duplicate"  # 现场平行: blind-coded, linked to its original
    CLIENT = "client"  # ad hoc, without a plan


FIELD_QC_KINDS = (SampleKind.FIELD_BLANK, SampleKind.TRANSPORT_BLANK, SampleKind.FIELD_DUPLICATE)


class SampleState(StrEnum):
    """DOMAIN.md §3; the states after `collected` belong to custody, receipt and analysis."""

    REGISTERED = "registered"
    COLLECTED = "collected"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    CONDITIONALLY_RECEIVED = "conditionally_received"
    REJECTED = "rejected"
    IN_STORAGE = "in_storage"
    IN_PREPARATION = "in_preparation"  # an aliquot is in an open preparation batch
    PREPARED = "prepared"  # its preparation batch is closed (signed); ready for analysis
    IN_ANALYSIS = "in_analysis"  # in an analysis batch that has started (issue 8)
    RESULTS_ENTERED = "results_entered"  # every requested parameter has a submitted result or a reason
    DISPOSED = "disposed"  # after retention, approved by the quality manager; terminal
    CANCELLED = "cancelled"  # its task was cancelled before sampling


class Sample(SQLModel, table=True):
    __tablename__ = "sample"
    __table_args__ = (Index("ix_sample_state_day", "state", "scheduled_on"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_no: str = Field(max_length=40, unique=True)
    kind: str = Field(max_length=20)
    matrix: str = Field(max_length=16)
    task_id: int | None = Field(default=None, sa_column=_fk("sampling_task.id", nullable=True, index=True))
    site_id: int | None = Field(default=None, sa_column=_fk("site.id", nullable=True, index=True))
    # the site version in force at the sampling time: bound when the field record is signed
    site_version_id: int | None = Field(default=None, sa_column=_fk("site_version.id", nullable=True))
    duplicate_of_id: int | None = Field(default=None, sa_column=_fk("sample.id", nullable=True))
    client_name: str = Field(default="", max_length=200)
    client_contact: str = Field(default="", max_length=200)
    location_text: str = Field(default="", max_length=300)  # ad hoc samples without a site
    scheduled_on: date = Field(sa_column=Column(Date, nullable=False))
    state: str = Field(default=SampleState.REGISTERED.value, max_length=24)
    sampler_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True, index=True))
    collected_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signed_revision: int = Field(default=0)  # how many times the field record was signed
    note: str = Field(default="", max_length=500)
    registered_at: datetime = Field(sa_type=UTCDateTime)
    registered_by_id: int = Field(sa_column=_fk("app_user.id"))
    # custody, receipt and retention (issue 7)
    custody_gap: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0",
                                                               index=True))
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    reported_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # retention runs from here
    retain_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SampleParameter(SQLModel, table=True):
    """A parameter requested for a sample."""

    __tablename__ = "sample_parameter"
    __table_args__ = (UniqueConstraint("sample_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(sa_column=_fk("sample.id"))
    parameter: str = Field(max_length=60)


class ContainerState(StrEnum):
    PREPARED = "prepared"  # registered, label printable
    ISSUED = "issued"  # handed to the sampler with the task
    FILLED = "filled"  # scanned in the field
    RECEIVED = "received"
    REJECTED = "rejected"  # its sample was rejected at receipt
    EMPTIED = "emptied"
    DISPOSED = "disposed"


class ContainerKind(StrEnum):
    CONTAINER = "container"  # filled in the field
    ALIQUOT = "aliquot"  # 分取: part of a container (or of an aliquot) taken in the lab
    SUB_SAMPLE = "sub_sample"  # 子样: e.g. a dried, sieved soil fraction


class Container(SQLModel, table=True):
    __tablename__ = "sample_container"

    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(max_length=20, unique=True)  # CT26-00001238: code + Luhn check digit
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))
    position: int = Field(default=1)  # 1, 2, 3... within the sample
    group_code: str = Field(max_length=30)
    container_type: str = Field(max_length=30)
    volume_ml: int = Field(default=0)
    preservative_zh: str = Field(default="", max_length=200)
    preservative_en: str = Field(default="", max_length=200)
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    state: str = Field(default=ContainerState.PREPARED.value, max_length=16)
    filled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    # the lab part (issue 7): aliquots are containers with a parent; the holder and the location
    # are kept here for one-scan answers, the custody events are their history
    kind: str = Field(default=ContainerKind.CONTAINER.value, max_length=12)
    parent_id: int | None = Field(default=None, sa_column=_fk("sample_container.id", nullable=True, index=True))
    amount: Decimal | None = Field(default=None, sa_type=DecimalText)  # an aliquot: what was taken
    amount_unit: str = Field(default="", max_length=8)  # mL or g
    remaining: Decimal | None = Field(default=None, sa_type=DecimalText)  # in amount_unit (mL for containers)
    holder_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True, index=True))
    location_id: int | None = Field(default=None, sa_column=_fk("storage_location.id", nullable=True,
                                                                    index=True))
    shipment_id: int | None = Field(default=None, sa_column=_fk("shipment.id", nullable=True, index=True))


class SampleNumberCounter(SQLModel, table=True):
    """The last sequence handed out for one rendering of the number pattern without its
    sequence (a site and a day): locked for the transaction, so numbers are unique and a rolled
    back registration leaves no gap."""

    __tablename__ = "sample_no_counter"

    key: str = Field(primary_key=True, max_length=60)
    last: int = Field(default=0)


class FieldEntryKind(StrEnum):
    SAMPLING = "sampling"  # sampling time, GPS fix (or why there is none), distance to the site
    OBSERVATION = "observation"  # weather, field observations
    FIELD_TEST = "field_test"  # a measurement on site with a field instrument
    CONTAINER = "container"  # a container scanned as filled


class GpsStatus(StrEnum):
    """What the browser gave; a position is never invented."""

    OK = "ok"
    DENIED = "denied"  # the user refused
    UNAVAILABLE = "unavailable"  # no fix (indoors, no signal, timeout)
    UNSUPPORTED = "unsupported"  # the browser has no geolocation


class FieldEntry(SQLModel, table=True):
    """One act in the field. Append-only. `payload` keeps the act's details as canonical JSON
    (GPS fix, weather, the scanned text as typed...); the columns are what queries need."""

    __tablename__ = "field_entry"
    __table_args__ = (Index("ix_field_entry_instrument_time", "instrument_id", "act_at"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)  # generated by the phone: idempotency key
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))
    kind: str = Field(max_length=16)
    act_at: datetime = Field(sa_type=UTCDateTime)  # when it happened in the field (UTC)
    parameter: str = Field(default="", max_length=60)
    value: Decimal | None = Field(default=None, sa_type=DecimalText)
    unit: str = Field(default="", max_length=20)
    instrument_id: int | None = Field(default=None, sa_column=_fk("instrument.id", nullable=True))
    container_id: int | None = Field(default=None, sa_column=_fk("sample_container.id", nullable=True))
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    revision: int = Field(default=1)  # 1: the original record; n + 1: after the n-th signature
    reason: str = Field(default="", max_length=500)  # required from revision 2 on
    entered_by_id: int = Field(sa_column=_fk("app_user.id"))
    entered_at: datetime = Field(sa_type=UTCDateTime)


class SamplePhoto(SQLModel, table=True):
    """A photo as evidence of the sampling act. Append-only: never replaced, only added."""

    __tablename__ = "sample_photo"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))
    file_id: int = Field(sa_column=_fk("stored_file.id"))
    sha256: str = Field(max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    thumbnail_sha256: str = Field(max_length=64)
    width: int
    height: int
    caption: str = Field(default="", max_length=300)
    exif_taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    exif_latitude: Decimal | None = Field(default=None, sa_type=DecimalText)
    exif_longitude: Decimal | None = Field(default=None, sa_type=DecimalText)
    # against the record: seconds between EXIF time and sampling time, metres to the GPS fix
    time_difference_s: int | None = Field(default=None)
    distance_m: int | None = Field(default=None)
    revision: int = Field(default=1)
    reason: str = Field(default="", max_length=500)
    taken_by_id: int = Field(sa_column=_fk("app_user.id"))
    uploaded_at: datetime = Field(sa_type=UTCDateTime)
