"""Instruments and their metrological history.

The registry row (`instrument`) is master data, changed only through the service with a reason
and an audit event. Everything that happened to an instrument is an append-only record:
calibrations and verifications (检定/校准), their acceptance by the responsible person
(计量确认), intermediate checks (期间核查), maintenance and repair, service changes (out of
service, retired). A correction is a new row that `supersedes` the old one; a record can be
superseded once (unique), so two concurrent corrections cannot fork its history.

`instrument.service_state` and `instrument.due_at` cache what the history means *now*, so
worklists filter with an index; they are recomputed from the history by the service after every
record, and a test checks they always agree with `status_at`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class InstrumentKind(StrEnum):
    LABORATORY = "laboratory"
    FIELD = "field"


class ServiceState(StrEnum):
    """The stored part of an instrument's status; due dates supply the rest."""

    ACTIVE = "active"
    OUT_OF_SERVICE = "out_of_service"
    RETIRED = "retired"


class InstrumentStatus(StrEnum):
    IN_SERVICE = "in_service"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    OUT_OF_SERVICE = "out_of_service"
    RETIRED = "retired"


class ConfirmationKind(StrEnum):
    VERIFICATION = "verification"  # 检定: legal verification
    CALIBRATION = "calibration"  # 校准: calibration + the lab's 计量确认


class ConfirmationResult(StrEnum):
    PASS = "pass"
    RESTRICTED = "restricted"
    FAIL = "fail"


class CheckResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"


class MaintenanceKind(StrEnum):
    MAINTENANCE = "maintenance"
    REPAIR = "repair"  # a repair takes the instrument out of service until recalibrated


class AcceptanceDecision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ServiceAction(StrEnum):
    OUT_OF_SERVICE = "out_of_service"
    RETIRED = "retired"


class Disposition(StrEnum):
    NO_EFFECT = "no_effect"  # results shown to be unaffected (with the justification)
    RETEST = "retest"  # affected samples re-analysed where still possible
    NOTIFY_CLIENTS = "notify_clients"  # reports recalled or amended, clients told


def _user_fk(nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey("app_user.id"), nullable=nullable, index=index)


class Instrument(SQLModel, table=True):
    __tablename__ = "instrument"
    __table_args__ = (
        # the status worklists: state equality, then a range on the due instant
        Index("ix_instrument_state_due", "service_state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    asset_no: str = Field(max_length=40, unique=True)
    name_zh: str = Field(max_length=120)
    name_en: str = Field(default="", max_length=120)
    model: str = Field(default="", max_length=120)
    manufacturer: str = Field(default="", max_length=120)
    serial_no: str = Field(default="", max_length=80)
    location: str = Field(default="", max_length=120)
    kind: str = Field(default=InstrumentKind.LABORATORY.value, max_length=16)
    commissioned_on: date = Field(sa_column=Column(Date, nullable=False))
    responsible_id: int = Field(sa_column=_user_fk(index=True))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    service_state: str = Field(default=ServiceState.ACTIVE.value, max_length=16)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, sa_column=_user_fk(nullable=True))


class InstrumentUse(SQLModel, table=True):
    """A parameter (and the method) the instrument may be used for."""

    __tablename__ = "instrument_use"
    __table_args__ = (UniqueConstraint("instrument_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(
        sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False, index=True)
    )
    parameter: str = Field(max_length=60)  # normalised: stripped, case kept, compared casefolded
    method: str = Field(default="", max_length=120)  # e.g. HJ 535-2009


class _Revisable(SQLModel):
    """Columns every append-only record of an instrument carries."""

    id: int | None = Field(default=None, primary_key=True)
    revision: int = Field(default=1)
    correction_reason: str = Field(default="", max_length=500)
    effective_from: datetime = Field(sa_type=UTCDateTime)  # when it takes effect (UTC)
    event_day: date = Field(sa_type=Date)  # the lab's local day of it
    recorded_at: datetime = Field(sa_type=UTCDateTime)


class CalibrationRecord(_Revisable, table=True):
    """A verification (检定) or calibration (校准) certificate and what it says."""

    __tablename__ = "instrument_calibration"
    __table_args__ = (Index("ix_instrument_calibration_instrument", "instrument_id", "effective_from"),)

    instrument_id: int = Field(sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False))
    supersedes_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("instrument_calibration.id"), nullable=True, unique=True),
    )
    kind: str = Field(max_length=16)
    provider: str = Field(max_length=200)
    provider_accreditation_no: str = Field(default="", max_length=60)
    certificate_no: str = Field(max_length=80)
    performed_on: date = Field(sa_column=Column(Date, nullable=False))
    valid_until: date = Field(sa_column=Column(Date, nullable=False))
    due_at: datetime = Field(sa_type=UTCDateTime)  # start of the day after valid_until
    result: str = Field(max_length=16)
    restriction: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # restricted use: the parameters it may still serve (canonical JSON list); empty otherwise
    allowed_parameters: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    corrections: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    certificate_file_id: int = Field(sa_column=Column(Integer, ForeignKey("stored_file.id"), nullable=False))
    certificate_sha256: str = Field(max_length=64)
    recorded_by_id: int | None = Field(default=None, sa_column=_user_fk(nullable=True))


class CalibrationAcceptance(SQLModel, table=True):
    """计量确认: the responsible person's signed decision that a certificate meets the lab's
    requirements. Until accepted, a passing certificate does not put the instrument in service."""

    __tablename__ = "instrument_calibration_acceptance"

    id: int | None = Field(default=None, primary_key=True)
    calibration_id: int = Field(
        sa_column=Column(Integer, ForeignKey("instrument_calibration.id"), nullable=False, unique=True)
    )
    decision: str = Field(max_length=16)
    note: str = Field(default="", max_length=500)
    signature_id: int = Field(sa_column=Column(Integer, ForeignKey("e_signature.id"), nullable=False))
    decided_by_id: int = Field(sa_column=_user_fk())
    decided_at: datetime = Field(sa_type=UTCDateTime)


class IntermediateCheck(_Revisable, table=True):
    """期间核查: a check between calibrations, signed by whoever performed it."""

    __tablename__ = "instrument_check"
    __table_args__ = (Index("ix_instrument_check_instrument", "instrument_id", "effective_from"),)

    instrument_id: int = Field(sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False))
    supersedes_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("instrument_check.id"), nullable=True, unique=True)
    )
    check_standard: str = Field(max_length=200)  # as written: "GBW(E)080218 氨氮标准溶液"
    # the barcode of the reference-material unit or standard solution used, when scanned: the
    # material's gate is checked at the time of the check and the use recorded against it
    standard_barcode: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    method: str = Field(default="", max_length=200)
    criterion: str = Field(max_length=200)
    measured_value: str = Field(max_length=60)  # a Decimal, kept as entered
    unit: str = Field(default="", max_length=30)
    result: str = Field(max_length=8)
    remarks: str = Field(default="", max_length=500)
    recorded_by_id: int = Field(sa_column=_user_fk())  # and signer: e_signature ("instrument_check", id)


class MaintenanceRecord(_Revisable, table=True):
    __tablename__ = "instrument_maintenance"
    __table_args__ = (Index("ix_instrument_maintenance_instrument", "instrument_id", "effective_from"),)

    instrument_id: int = Field(sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False))
    supersedes_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("instrument_maintenance.id"), nullable=True, unique=True),
    )
    kind: str = Field(max_length=16)
    description: str = Field(sa_column=Column(Text, nullable=False))
    performed_by: str = Field(default="", max_length=200)  # engineer or service company
    recorded_by_id: int = Field(sa_column=_user_fk())


class ServiceChange(SQLModel, table=True):
    """Taking an instrument out of service by decision, or retiring it (terminal)."""

    __tablename__ = "instrument_service_change"
    __table_args__ = (Index("ix_instrument_service_change_instrument", "instrument_id", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False))
    action: str = Field(max_length=16)
    reason: str = Field(max_length=500)
    effective_from: datetime = Field(sa_type=UTCDateTime)
    event_day: date = Field(sa_column=Column(Date, nullable=False))
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_user_fk())


class InstrumentAttachment(SQLModel, table=True):
    """Manuals, acceptance (验收) records, photos of the nameplate."""

    __tablename__ = "instrument_attachment"

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(
        sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False, index=True)
    )
    file_id: int = Field(sa_column=Column(Integer, ForeignKey("stored_file.id"), nullable=False))
    title: str = Field(max_length=200)
    kind: str = Field(default="other", max_length=16)  # manual / acceptance / other
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(sa_column=_user_fk())


class ImpactAssessment(SQLModel, table=True):
    """Opened when a calibration or check fails: what was measured with the instrument since it
    was last shown fit, and the quality manager's signed disposition."""

    __tablename__ = "instrument_impact"
    __table_args__ = (
        Index("ix_instrument_impact_status", "status", "opened_at"),
        UniqueConstraint("trigger_type", "trigger_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(
        sa_column=Column(Integer, ForeignKey("instrument.id"), nullable=False, index=True)
    )
    trigger_type: str = Field(max_length=16)  # calibration / check
    trigger_id: int
    since: datetime | None = Field(default=None, sa_type=UTCDateTime)  # last shown fit
    until: datetime = Field(sa_type=UTCDateTime)  # the failure
    status: str = Field(default="open", max_length=8)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    disposition: str | None = Field(default=None, max_length=16)
    justification: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    signature_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("e_signature.id"), nullable=True)
    )
    decided_by_id: int | None = Field(default=None, sa_column=_user_fk(nullable=True))
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


APPEND_ONLY_TABLES = (
    "instrument_calibration",
    "instrument_calibration_acceptance",
    "instrument_check",
    "instrument_maintenance",
    "instrument_service_change",
    "instrument_attachment",
)
