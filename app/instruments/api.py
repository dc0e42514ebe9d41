"""The instruments JSON API (/api/v1/instruments): the registry, its history, status at a moment,
and posting certificates, acceptance (计量确认), checks and maintenance with an API token.

Thin like the pages: parse with Pydantic (lengths capped), call one service, shape the answer.
Measured values travel as strings, never as JSON numbers: a float cannot carry "0.500" exactly.
Times are ISO 8601; answers give them in UTC, naive times in a query are read as lab time.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, field_validator
from sqlalchemy import select

from app.core.auth import DbSession, require
from app.core.db import committing, utcnow
from app.core.errors import InvalidInput
from app.core.files import StoredFile, file_store
from app.core.i18n import current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.instruments import errors, queries, records, service
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    CheckResult,
    ConfirmationKind,
    ConfirmationResult,
    ImpactAssessment,
    InstrumentStatus,
    IntermediateCheck,
    MaintenanceKind,
    MaintenanceRecord,
    ServiceChange,
)
from app.instruments.status import check_usability
from app.people.models import User

router = APIRouter(tags=["instruments"])

# Asset numbers may hold "/" (JC/UV/001), so the path converter takes the rest of the path; the
# routes below the detail are declared before it.
AssetNo = Annotated[str, Path(min_length=1, max_length=40)]
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
MAX_PAGE_SIZE = 200
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, tzinfo=UTC)


def _sane_date(value: date) -> date:
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError("must fall between 1900-01-01 and 2999-12-31")
    return value


def _sane_moment(value: datetime) -> datetime:
    if not EARLIEST.replace(tzinfo=None) <= value.replace(tzinfo=None) <= LATEST.replace(tzinfo=None):
        raise ValueError("must fall between the years 1900 and 2999")
    return value


# Far dates would overflow the lab-calendar conversions (a 500), so they are refused as input.
SaneDate = Annotated[date, AfterValidator(_sane_date)]
SaneMoment = Annotated[AwareDatetime, AfterValidator(_sane_moment)]


class MomentOutOfRange(InvalidInput):
    code = "invalid_time"
    message_zh = "时间无效：须在 1900 年至 2999 年之间。"
    message_en = "Invalid time: it must fall between the years 1900 and 2999."


# ---------------------------------------------------------------- answers


class PersonOut(BaseModel):
    id: int
    username: str
    name: str  # as printed beside a signature: 张三 (Zhang San)


class InstrumentItem(BaseModel):
    asset_no: str
    name_zh: str
    name_en: str
    kind: str
    model: str
    manufacturer: str
    serial_no: str
    location: str
    responsible: PersonOut
    status: InstrumentStatus  # now
    due_at: datetime | None  # when the calibration in force ends (UTC); null when none is in force


class InstrumentPage(BaseModel):
    page: int
    size: int
    total: int
    pages: int
    items: list[InstrumentItem]


class UseOut(BaseModel):
    parameter: str
    method: str


class AcceptanceOut(BaseModel):
    decision: str  # accepted / rejected
    note: str
    decided_at: datetime
    decided_by: PersonOut | None
    signature_intact: bool | None  # the signed content still matches the record


class CalibrationOut(BaseModel):
    id: int
    revision: int
    supersedes_id: int | None
    current: bool  # not superseded by a correction
    correction_reason: str
    kind: str
    provider: str
    provider_accreditation_no: str
    certificate_no: str
    performed_on: date
    valid_until: date
    due_at: datetime
    result: str
    restriction: str
    allowed_parameters: list[str]
    corrections: str
    certificate_sha256: str
    certificate_filename: str | None
    recorded_at: datetime
    recorded_by: PersonOut | None
    acceptance: AcceptanceOut | None


class CheckOut(BaseModel):
    id: int
    revision: int
    supersedes_id: int | None
    current: bool
    correction_reason: str
    performed_at: datetime
    check_standard: str
    method: str
    criterion: str
    measured_value: str  # a decimal as entered, never a float
    unit: str
    result: str
    remarks: str
    standard_barcode: str  # the RM unit or standard solution used, when scanned
    recorded_at: datetime
    recorded_by: PersonOut | None
    signed_by: str | None
    signature_intact: bool | None


class MaintenanceOut(BaseModel):
    id: int
    revision: int
    supersedes_id: int | None
    current: bool
    correction_reason: str
    kind: str
    performed_at: datetime
    description: str
    performed_by: str
    recorded_at: datetime
    recorded_by: PersonOut | None


class ServiceChangeOut(BaseModel):
    id: int
    action: str
    reason: str
    effective_from: datetime
    recorded_at: datetime
    recorded_by: PersonOut | None


class ImpactOut(BaseModel):
    id: int
    trigger_type: str
    trigger_id: int
    since: datetime | None
    until: datetime
    status: str
    disposition: str | None


class AttachmentOut(BaseModel):
    id: int
    title: str
    kind: str
    filename: str
    media_type: str
    size: int
    sha256: str
    added_at: datetime


class InstrumentDetailOut(InstrumentItem):
    commissioned_on: date
    notes: str
    uses: list[UseOut]
    usable: bool
    reason: str | None  # why it is unusable now: overdue, not_calibrated, out_of_service, retired ...
    cause: str | None  # for out_of_service: failed_calibration, failed_check, repair, decision
    status_since: datetime | None
    calibration_id: int | None  # the certificate in force now
    restricted: bool
    restriction: str
    allowed_parameters: list[str]
    calibrations: list[CalibrationOut]
    checks: list[CheckOut]
    maintenance: list[MaintenanceOut]
    service_changes: list[ServiceChangeOut]
    impacts: list[ImpactOut]
    attachments: list[AttachmentOut]


class StatusOut(BaseModel):
    asset_no: str
    at: datetime
    parameter: str | None
    status: InstrumentStatus
    usable: bool
    reason: str | None  # the gate's reason code when unusable, null when usable
    message: str | None  # the gate's refusal in the request's language
    due_at: datetime | None
    calibration: str | None  # the certificate number in force, or null


# ---------------------------------------------------------------- requests


class CalibrationForm(BaseModel):
    """The certificate's facts, sent as multipart/form-data beside the PDF (`certificate`)."""

    kind: ConfirmationKind
    provider: str = Field(max_length=200)
    provider_accreditation_no: str = Field("", max_length=60)
    certificate_no: str = Field(max_length=80)
    performed_on: SaneDate
    valid_until: SaneDate | None = None  # required unless the result is a fail
    result: ConfirmationResult
    restriction: str = Field("", max_length=2000)
    allowed_parameters: list[Annotated[str, Field(max_length=60)]] = Field(default_factory=list, max_length=50)
    corrections: str = Field("", max_length=4000)

    def facts(self) -> records.CalibrationFacts:
        return records.CalibrationFacts(
            kind=self.kind.value, provider=self.provider, certificate_no=self.certificate_no,
            performed_on=self.performed_on, result=self.result.value, valid_until=self.valid_until,
            provider_accreditation_no=self.provider_accreditation_no, restriction=self.restriction,
            allowed_parameters=tuple(self.allowed_parameters), corrections=self.corrections,
        )


class AcceptanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accept: StrictBool
    note: str = Field("", max_length=500)  # required when rejecting
    password: str = Field(max_length=256)  # 计量确认 is a signed act


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    performed_at: SaneMoment  # ISO 8601 with its offset
    check_standard: str = Field(max_length=200)
    method: str = Field("", max_length=200)
    criterion: str = Field(max_length=200)
    measured_value: str = Field(max_length=60)
    unit: str = Field("", max_length=30)
    result: CheckResult
    remarks: str = Field("", max_length=500)
    standard_barcode: str = Field("", max_length=20)  # the RM unit or standard solution used
    password: str = Field(max_length=256)  # the check is signed by whoever performed it

    @field_validator("measured_value", mode="before")
    @classmethod
    def _text_not_number(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError('send the measured value as a string, e.g. "0.502": a JSON number loses its digits')
        return value

    def facts(self) -> records.CheckFacts:
        return records.CheckFacts(
            performed_at=self.performed_at, check_standard=self.check_standard, criterion=self.criterion,
            measured_value=self.measured_value, result=self.result.value, method=self.method, unit=self.unit,
            remarks=self.remarks, standard_barcode=self.standard_barcode,
        )


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MaintenanceKind  # a repair takes the instrument out of service until recalibrated
    performed_at: SaneMoment
    description: str = Field(max_length=4000)
    performed_by: str = Field("", max_length=200)

    def facts(self) -> records.MaintenanceFacts:
        return records.MaintenanceFacts(kind=self.kind.value, performed_at=self.performed_at,
                                        description=self.description, performed_by=self.performed_by)


# ---------------------------------------------------------------- shaping


def person(user: User | None) -> PersonOut | None:
    return PersonOut(id=user.id, username=user.username, name=user.printed_name) if user else None


def item_json(row: queries.InstrumentRow) -> InstrumentItem:
    i = row.instrument
    return InstrumentItem(
        asset_no=i.asset_no, name_zh=i.name_zh, name_en=i.name_en, kind=i.kind, model=i.model,
        manufacturer=i.manufacturer, serial_no=i.serial_no, location=i.location,
        responsible=person(row.responsible), status=row.status, due_at=i.due_at,
    )


def calibration_json(record: CalibrationRecord, *, current: bool, recorded_by: User | None,
                     filename: str | None = None, acceptance: AcceptanceOut | None = None) -> CalibrationOut:
    return CalibrationOut(
        id=record.id, revision=record.revision, supersedes_id=record.supersedes_id, current=current,
        correction_reason=record.correction_reason, kind=record.kind, provider=record.provider,
        provider_accreditation_no=record.provider_accreditation_no, certificate_no=record.certificate_no,
        performed_on=record.performed_on, valid_until=record.valid_until, due_at=record.due_at,
        result=record.result, restriction=record.restriction,
        allowed_parameters=json.loads(record.allowed_parameters or "[]"), corrections=record.corrections,
        certificate_sha256=record.certificate_sha256, certificate_filename=filename,
        recorded_at=record.recorded_at, recorded_by=person(recorded_by), acceptance=acceptance,
    )


def acceptance_json(acceptance: CalibrationAcceptance, decided_by: User | None,
                    intact: bool | None) -> AcceptanceOut:
    return AcceptanceOut(decision=acceptance.decision, note=acceptance.note, decided_at=acceptance.decided_at,
                         decided_by=person(decided_by), signature_intact=intact)


def check_json(record: IntermediateCheck, *, current: bool, recorded_by: User | None, signed_by: str | None,
               intact: bool | None) -> CheckOut:
    return CheckOut(
        id=record.id, revision=record.revision, supersedes_id=record.supersedes_id, current=current,
        correction_reason=record.correction_reason, performed_at=record.effective_from,
        check_standard=record.check_standard, method=record.method, criterion=record.criterion,
        measured_value=record.measured_value, unit=record.unit, result=record.result, remarks=record.remarks,
        standard_barcode=record.standard_barcode, recorded_at=record.recorded_at, recorded_by=person(recorded_by),
        signed_by=signed_by, signature_intact=intact,
    )


def maintenance_json(record: MaintenanceRecord, *, current: bool, recorded_by: User | None) -> MaintenanceOut:
    return MaintenanceOut(
        id=record.id, revision=record.revision, supersedes_id=record.supersedes_id, current=current,
        correction_reason=record.correction_reason, kind=record.kind, performed_at=record.effective_from,
        description=record.description, performed_by=record.performed_by, recorded_at=record.recorded_at,
        recorded_by=person(recorded_by),
    )


def detail_json(session, detail: queries.InstrumentDetail) -> InstrumentDetailOut:
    """The detail read model as JSON: one more query at most (who decided the acceptances)."""
    instrument, reading = detail.instrument, detail.reading
    entries = detail.timeline  # newest first
    decider_ids = {e.acceptance.decided_by_id for e in entries if e.acceptance is not None}
    deciders = {u.id: u for u in session.scalars(select(User).where(User.id.in_(decider_ids)))} \
        if decider_ids else {}
    calibrations, checks, maintenance, changes, impacts = [], [], [], [], []
    for entry in entries:
        record = entry.record
        if isinstance(record, CalibrationRecord):
            acceptance = None
            if entry.acceptance is not None:
                intact = entry.acceptance_signature.intact if entry.acceptance_signature else None
                acceptance = acceptance_json(entry.acceptance, deciders.get(entry.acceptance.decided_by_id), intact)
            calibrations.append(calibration_json(
                record, current=not entry.superseded, recorded_by=entry.actor,
                filename=entry.file.filename if entry.file else None, acceptance=acceptance))
        elif isinstance(record, IntermediateCheck):
            signature = entry.signature
            checks.append(check_json(
                record, current=not entry.superseded, recorded_by=entry.actor,
                signed_by=signature.signature.printed_name if signature else None,
                intact=signature.intact if signature else None))
        elif isinstance(record, MaintenanceRecord):
            maintenance.append(maintenance_json(record, current=not entry.superseded, recorded_by=entry.actor))
        elif isinstance(record, ServiceChange):
            changes.append(ServiceChangeOut(
                id=record.id, action=record.action, reason=record.reason, effective_from=record.effective_from,
                recorded_at=record.recorded_at, recorded_by=person(entry.actor)))
        elif isinstance(record, ImpactAssessment):
            impacts.append(ImpactOut(
                id=record.id, trigger_type=record.trigger_type, trigger_id=record.trigger_id, since=record.since,
                until=record.until, status=record.status, disposition=record.disposition))
    attachments = [
        AttachmentOut(id=a.id, title=a.title, kind=a.kind, filename=f.filename, media_type=f.media_type,
                      size=f.size, sha256=f.sha256, added_at=a.added_at)
        for a, f in detail.attachments
    ]
    return InstrumentDetailOut(
        asset_no=instrument.asset_no, name_zh=instrument.name_zh, name_en=instrument.name_en, kind=instrument.kind,
        model=instrument.model, manufacturer=instrument.manufacturer, serial_no=instrument.serial_no,
        location=instrument.location, responsible=person(detail.responsible), status=reading.status,
        due_at=reading.due_at, commissioned_on=instrument.commissioned_on, notes=instrument.notes,
        uses=[UseOut(parameter=u.parameter, method=u.method) for u in detail.uses],
        usable=reading.usable, reason=reading.reason, cause=reading.cause, status_since=reading.since,
        calibration_id=reading.calibration_id, restricted=reading.restricted, restriction=reading.restriction,
        allowed_parameters=list(reading.allowed_parameters), calibrations=calibrations, checks=checks,
        maintenance=maintenance, service_changes=changes, impacts=impacts, attachments=attachments,
    )


def _moment(session, at: datetime | None) -> datetime:
    """`at` as an aware UTC instant: now when absent, lab time when naive."""
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        at = at.replace(tzinfo=lab_calendar(session).tz)
    try:
        _sane_moment(at)
    except ValueError:
        raise MomentOutOfRange() from None
    return at.astimezone(UTC)


# ---------------------------------------------------------------- reading


@router.get("/api/v1/instruments", response_model=InstrumentPage)
def api_instruments(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    size: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    q: str = Query("", max_length=100),
    status: str = Query("", max_length=16, pattern="^(|in_service|due_soon|overdue|out_of_service|retired)$"),
    kind: str = Query("", max_length=16, pattern="^(|laboratory|field)$"),
    user: User = require(Permission.INSTRUMENTS_READ),
) -> InstrumentPage:
    """Instruments by asset number, each with its status now; `status` filters on it."""
    size = size or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    result = queries.search_instruments(session, q=q, status=status, kind=kind, page=page, size=size)
    return InstrumentPage(page=result.page, size=result.size, total=result.total, pages=result.pages,
                          items=[item_json(row) for row in result.items])


@router.get("/api/v1/instruments/{asset_no:path}/status", response_model=StatusOut)
def api_instrument_status(
    session: DbSession, asset_no: AssetNo,
    at: datetime | None = Query(None, description="ISO 8601; naive times are lab time; default now"),
    parameter: str = Query("", max_length=60),
    user: User = require(Permission.INSTRUMENTS_READ),
) -> StatusOut:
    """The status at a moment; with `parameter`, whether the gate lets the instrument be used
    for it then (not_assigned and restricted refusals too)."""
    instrument = service.get_instrument(session, asset_no)
    moment = _moment(session, at)
    reading, refusal = check_usability(session, instrument, moment, parameter)
    if not parameter.strip() and reading.usable:
        refusal = None  # without a parameter only the state counts
    certificate = None
    if reading.calibration_id and reading.usable:  # an overdue certificate is no longer in force
        certificate = session.scalar(select(CalibrationRecord.certificate_no)
                                     .where(CalibrationRecord.id == reading.calibration_id))
    return StatusOut(
        asset_no=instrument.asset_no, at=moment, parameter=parameter.strip() or None, status=reading.status,
        usable=refusal is None, reason=refusal.reason if refusal else None,
        message=refusal.message(current_language()) if refusal else None,
        due_at=reading.due_at, calibration=certificate,
    )


# ---------------------------------------------------------------- writing


def _calibration_of(session, asset_no: str, calibration_id: int) -> tuple:
    instrument = service.get_instrument(session, asset_no)
    record = service.get_record(session, CalibrationRecord, calibration_id)
    if record.instrument_id != instrument.id:
        raise errors.RecordNotFound()
    return instrument, record


@router.post("/api/v1/instruments/{asset_no:path}/calibrations/{calibration_id}/acceptance",
             status_code=201, response_model=CalibrationOut)
def api_decide_acceptance(
    session: DbSession, asset_no: AssetNo, calibration_id: RowId, body: AcceptanceIn,
    user: User = require(Permission.INSTRUMENTS_CONFIRM),
) -> CalibrationOut:
    """计量确认 by the instrument's responsible person, signed with their password."""
    with committing(session):
        _, record = _calibration_of(session, asset_no, calibration_id)
        acceptance = records.decide_acceptance(session, user, record, body.password, accept=body.accept,
                                               note=body.note)
    recorded_by = session.get(User, record.recorded_by_id) if record.recorded_by_id else None
    stored = session.get(StoredFile, record.certificate_file_id)
    return calibration_json(record, current=True, recorded_by=recorded_by, filename=stored.filename if stored else None,
                            acceptance=acceptance_json(acceptance, user, True))


@router.post("/api/v1/instruments/{asset_no:path}/calibrations", status_code=201, response_model=CalibrationOut)
def api_record_calibration(
    request: Request, session: DbSession, asset_no: AssetNo, form: Annotated[CalibrationForm, Form()],
    certificate: UploadFile = File(description="the certificate, a PDF of at most 20 MB"),
    user: User = require(Permission.INSTRUMENTS_MANAGE),
) -> CalibrationOut:
    """Enter a verification or calibration certificate (multipart/form-data)."""
    store = file_store(request.app.state.settings.data_path)
    upload = service.Upload(certificate.file, certificate.filename or "certificate.pdf")
    with committing(session):
        instrument = service.get_instrument(session, asset_no)
        record = records.record_calibration(session, user, instrument, form.facts(), store=store,
                                            certificate=upload)
    stored = session.get(StoredFile, record.certificate_file_id)
    return calibration_json(record, current=True, recorded_by=user, filename=stored.filename if stored else None)


@router.post("/api/v1/instruments/{asset_no:path}/checks", status_code=201, response_model=CheckOut)
def api_record_check(
    session: DbSession, asset_no: AssetNo, body: CheckIn, user: User = require(Permission.INSTRUMENTS_RECORD),
) -> CheckOut:
    """期间核查, signed: the token's user re-enters their password."""
    with committing(session):
        instrument = service.get_instrument(session, asset_no)
        record = records.record_check(session, user, instrument, body.facts(), body.password)
    return check_json(record, current=True, recorded_by=user, signed_by=user.printed_name, intact=True)


@router.post("/api/v1/instruments/{asset_no:path}/maintenance", status_code=201, response_model=MaintenanceOut)
def api_record_maintenance(
    session: DbSession, asset_no: AssetNo, body: MaintenanceIn, user: User = require(Permission.INSTRUMENTS_RECORD),
) -> MaintenanceOut:
    """Maintenance, or a repair (which takes the instrument out of service until recalibrated)."""
    with committing(session):
        instrument = service.get_instrument(session, asset_no)
        record = records.record_maintenance(session, user, instrument, body.facts())
    return maintenance_json(record, current=True, recorded_by=user)


# The detail comes last: its path converter would otherwise swallow the routes above.
@router.get("/api/v1/instruments/{asset_no:path}", response_model=InstrumentDetailOut)
def api_instrument(session: DbSession, asset_no: AssetNo,
                   user: User = require(Permission.INSTRUMENTS_READ)) -> InstrumentDetailOut:
    """Registry fields, uses, status now with its reason, and the whole history (every revision)."""
    instrument = service.get_instrument(session, asset_no)
    return detail_json(session, queries.instrument_detail(session, instrument))
