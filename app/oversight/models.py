"""Oversight: signed reviews of the audit trail, the interference log (干预留痕), anomaly rules
and alarms, automatic-station readings, and the regulator's inspections (issue 10)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


class AuditReview(SQLModel, table=True):
    """A quality manager's signed review of the trail up to one event (Part 11 style review).

    The signature covers (seq, head_hash, outcome); if the chain is later rewritten the hash at
    that seq changes and the signature shows as broken.
    """

    __tablename__ = "audit_review"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(max_length=64)
    chain_ok: bool
    events: int = Field(sa_column=Column(BigInteger, nullable=False))
    note: str = Field(default="", sa_column=Column(String(1000), nullable=False))
    reviewed_at: datetime = Field(sa_type=UTCDateTime)
    reviewer_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    signature_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("e_signature.id"), nullable=True)
    )

    def signed_content(self, head_hash_now: str | None) -> dict[str, object]:
        """What the signature binds, with the hash the chain holds at `seq` today."""
        return {
            "seq": self.seq,
            "head_hash": head_hash_now,
            "chain_ok": self.chain_ok,
            "events": self.events,
            "note": self.note,
        }


# ---------------------------------------------------------------- issue 10: oversight
# Interference log (干预留痕, DOMAIN.md §6), anomaly alarms (§7), automatic-station readings,
# inspections (双随机). Interference records, their targets, supplements and attachments, alarm
# dispositions, rule settings, station readings and inspection findings/responses are
# append-only (database triggers); an alarm's and an inspection's `state` is the one mutable
# column, changed only by their services with an audit event and an appended row saying why.


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


def _text(default: str = "") -> Column:
    return Column(Text, nullable=False, server_default=default)


class InterferenceChannel(StrEnum):
    INSTRUCTION = "instruction"  # 批示
    LETTER = "letter"  # 函文
    ORAL = "oral"  # 口头意见
    HINT = "hint"  # 暗示
    PHONE = "phone"
    MESSAGE = "message"
    OTHER = "other"


class InterferenceRequest(StrEnum):
    ALTER_DATA = "alter_data"
    MOVE_SITE = "move_site"
    STOP_SITE = "stop_site"
    SKIP_SAMPLING = "skip_sampling"
    DELAY_SAMPLING = "delay_sampling"
    WITHHOLD_REPORT = "withhold_report"
    ALTER_REPORT = "alter_report"
    SET_TARGETS = "set_targets"
    OTHER = "other"


class LabResponse(StrEnum):
    REFUSED = "refused"
    COMPLIED = "complied"
    ESCALATED = "escalated"


class SupplementKind(StrEnum):
    SUPPLEMENT = "supplement"  # more facts, a correction of the filer's own record
    ACKNOWLEDGED = "acknowledged"  # the quality manager has read it (filed → acknowledged)
    REPORTED = "reported"  # reported to an authority (→ reported): to whom, when, by whom


class InterferenceRecord(SQLModel, table=True):
    """One attempt to influence monitoring, as filed. Never updated: its state (filed,
    acknowledged, reported) is read from its supplements."""

    __tablename__ = "interference_record"

    id: int | None = Field(default=None, primary_key=True)
    record_no: str = Field(max_length=20, unique=True)  # GY26-00001 (干预)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    interferer_name: str = Field(max_length=100)
    interferer_position: str = Field(default="", max_length=100)
    interferer_organisation: str = Field(default="", max_length=200)
    # when the interferer is a lab user: that user never sees the record
    interferer_user_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    channel: str = Field(max_length=12)
    request_kind: str = Field(max_length=20)
    what_was_asked: str = Field(sa_column=_text())
    lab_response: str = Field(max_length=12)
    response_detail: str = Field(default="", sa_column=_text())
    witnesses: str = Field(default="", max_length=500)
    restricted: bool = Field(default=False)  # shown to the quality manager and inspectors only
    filed_at: datetime = Field(sa_type=UTCDateTime, index=True)
    filed_by_id: int = Field(sa_column=_fk("app_user.id", index=True))


class InterferenceTarget(SQLModel, table=True):
    """A site, sample or report the interference concerns (the number as typed is kept)."""

    __tablename__ = "interference_target"

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(sa_column=_fk("interference_record.id", index=True))
    target_type: str = Field(max_length=12)  # site, sample, report
    target_id: int | None = Field(default=None)
    label: str = Field(max_length=60)  # WS01, WS01-261203-01, BG2026-0002


class InterferenceSupplement(SQLModel, table=True):
    __tablename__ = "interference_supplement"

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(sa_column=_fk("interference_record.id", index=True))
    kind: str = Field(max_length=12)
    text: str = Field(sa_column=_text())
    reported_to: str = Field(default="", max_length=200)  # the authority (kind = reported)
    reported_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class InterferenceAttachment(SQLModel, table=True):
    """A letter, recording or photo, in the content-addressed store (SHA-256)."""

    __tablename__ = "interference_attachment"

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(sa_column=_fk("interference_record.id", index=True))
    supplement_id: int | None = Field(default=None, sa_column=_fk("interference_supplement.id", nullable=True))
    file_id: int = Field(sa_column=_fk("stored_file.id"))
    sha256: str = Field(max_length=64)
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(sa_column=_fk("app_user.id"))


class AlarmState(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"  # DOMAIN.md: under_investigation
    DISMISSED = "dismissed"
    CONFIRMED = "confirmed"


class ConfirmedAction(StrEnum):
    DATA_CORRECTED = "data_corrected"
    REANALYSED = "reanalysed"
    REPORT_AMENDED = "report_amended"
    REFERRED = "referred"


class AnomalyRuleSetting(SQLModel, table=True):
    """A version of one rule's thresholds and switch, set by the quality manager with a reason.
    The rule's code defaults are version 0; the newest row per rule is in force."""

    __tablename__ = "anomaly_rule_setting"
    __table_args__ = (UniqueConstraint("rule_code", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_code: str = Field(max_length=8)
    version: int
    enabled: bool = Field(default=True)
    thresholds: str = Field(sa_column=_text("{}"))  # canonical JSON {name: "decimal string"}
    reason: str = Field(max_length=500)
    set_at: datetime = Field(sa_type=UTCDateTime)
    set_by_id: int = Field(sa_column=_fk("app_user.id"))


class AnomalyAlarm(SQLModel, table=True):
    """What a rule found, with its evidence (the values, the rule, the threshold) as found.
    `fingerprint` makes a finding found again the same alarm (scans are idempotent)."""

    __tablename__ = "anomaly_alarm"
    __table_args__ = (Index("ix_anomaly_alarm_state_rule", "state", "rule_code"),
                      Index("ix_anomaly_alarm_responsible", "responsible_user_id", "state"))

    id: int | None = Field(default=None, primary_key=True)
    alarm_no: str = Field(max_length=20, unique=True)  # YC26-00001 (异常)
    rule_code: str = Field(max_length=8)
    rule_version: int  # the setting version in force when found (0: the code's defaults)
    fingerprint: str = Field(max_length=64, unique=True)
    summary_zh: str = Field(max_length=500)
    summary_en: str = Field(max_length=500)
    evidence: str = Field(sa_column=_text("{}"))  # canonical JSON
    parameter: str = Field(default="", max_length=60)
    batch_id: int | None = Field(default=None, sa_column=_fk("analysis_batch.id", nullable=True, index=True))
    site_id: int | None = Field(default=None, sa_column=_fk("site.id", nullable=True, index=True))
    responsible_user_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    occurred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # when the anomalous act happened
    raised_at: datetime = Field(sa_type=UTCDateTime, index=True)
    scan_id: int | None = Field(default=None, sa_column=_fk("anomaly_scan.id", nullable=True))
    state: str = Field(default=AlarmState.OPEN.value, max_length=16)


class AlarmSample(SQLModel, table=True):
    """A sample an alarm touches: its reports' checklists show the alarm."""

    __tablename__ = "anomaly_alarm_sample"
    __table_args__ = (UniqueConstraint("alarm_id", "sample_id"),)

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(sa_column=_fk("anomaly_alarm.id", index=True))
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))


class AlarmDisposition(SQLModel, table=True):
    """One step of an alarm's workflow (open → investigating → dismissed / confirmed)."""

    __tablename__ = "anomaly_disposition"

    id: int | None = Field(default=None, primary_key=True)
    alarm_id: int = Field(sa_column=_fk("anomaly_alarm.id", index=True))
    from_state: str = Field(max_length=16)
    to_state: str = Field(max_length=16)
    reason: str = Field(sa_column=_text())
    actions: str = Field(default="[]", sa_column=_text("[]"))  # confirmed: ConfirmedAction values
    acted_at: datetime = Field(sa_type=UTCDateTime)
    actor_id: int = Field(sa_column=_fk("app_user.id"))


class AnomalyScan(SQLModel, table=True):
    """One run of the rules: over history (CLI, scheduled job) or over a submitted batch."""

    __tablename__ = "anomaly_scan"

    id: int | None = Field(default=None, primary_key=True)
    trigger: str = Field(max_length=12)  # cli, schedule, submission, page
    since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    batch_id: int | None = Field(default=None, sa_column=_fk("analysis_batch.id", nullable=True))
    started_at: datetime = Field(sa_type=UTCDateTime, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    counts: str = Field(default="{}", sa_column=_text("{}"))  # {rule code: alarms raised}
    started_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))


class StationImport(SQLModel, table=True):
    """A CSV of automatic-station readings as uploaded (the raw file by SHA-256)."""

    __tablename__ = "station_import"

    id: int | None = Field(default=None, primary_key=True)
    file_id: int = Field(sa_column=_fk("stored_file.id"))
    sha256: str = Field(max_length=64, index=True)
    rows: int
    imported_at: datetime = Field(sa_type=UTCDateTime)
    imported_by_id: int = Field(sa_column=_fk("app_user.id"))


class StationReading(SQLModel, table=True):
    """One reading of an automatic monitoring station at a site (compared with manual results)."""

    __tablename__ = "station_reading"
    __table_args__ = (Index("ix_station_reading_site_param_time", "site_id", "parameter", "measured_at"),)

    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(sa_column=_fk("station_import.id", index=True))
    site_id: int = Field(sa_column=_fk("site.id"))
    parameter: str = Field(max_length=60)
    measured_at: datetime = Field(sa_type=UTCDateTime)
    value: Decimal = Field(sa_type=DecimalText)
    unit: str = Field(max_length=16)


class InspectionState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class InspectionTarget(StrEnum):
    SAMPLES = "samples"
    BATCHES = "batches"
    REPORTS = "reports"


class Inspection(SQLModel, table=True):
    """A regulator's inspection, starting from a random draw (双随机) of records: the seed, the
    population (its ids in order and their SHA-256) and the picks are kept so anyone can redo
    the draw and see it was random."""

    __tablename__ = "inspection"

    id: int | None = Field(default=None, primary_key=True)
    inspection_no: str = Field(max_length=20, unique=True)  # JC26-00001 (检查)
    title: str = Field(max_length=200)
    target: str = Field(max_length=12)  # InspectionTarget
    period_from: date = Field(sa_column=Column(Date, nullable=False))
    period_to: date = Field(sa_column=Column(Date, nullable=False))
    scope: str = Field(default="{}", sa_column=_text("{}"))  # canonical JSON: matrix, site, method...
    seed: str = Field(max_length=64)
    population_size: int
    population_sha256: str = Field(max_length=64)
    draw_size: int
    picked: str = Field(sa_column=_text("[]"))  # canonical JSON list of ids, in draw order
    state: str = Field(default=InspectionState.OPEN.value, max_length=8)
    drawn_at: datetime = Field(sa_type=UTCDateTime, index=True)
    inspector_id: int = Field(sa_column=_fk("app_user.id", index=True))
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FindingSeverity(StrEnum):
    OBSERVATION = "observation"
    MINOR = "minor"
    MAJOR = "major"


class InspectionFinding(SQLModel, table=True):
    __tablename__ = "inspection_finding"

    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(sa_column=_fk("inspection.id", index=True))
    target_type: str = Field(default="", max_length=12)  # sample, batch, report ('' = the whole)
    target_id: int | None = Field(default=None)
    severity: str = Field(max_length=12)
    text: str = Field(sa_column=_text())
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class FindingResponse(SQLModel, table=True):
    """The lab's response to a finding (the quality manager)."""

    __tablename__ = "inspection_response"

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(sa_column=_fk("inspection_finding.id", index=True))
    text: str = Field(sa_column=_text())
    responded_at: datetime = Field(sa_type=UTCDateTime)
    responded_by_id: int = Field(sa_column=_fk("app_user.id"))
