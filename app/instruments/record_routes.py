"""Pages for an instrument's metrological records and impact assessments: enter a certificate,
an intermediate check or a maintenance record; see a record with all its revisions and
signatures; correct it (a new revision with a reason); 计量确认 by the responsible person; the
quality manager's disposition of an impact assessment.

Plain forms that work without JavaScript. A refused form comes back with the message and what
was typed (never the file), and nothing of the refused act is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing, utcnow
from app.core.errors import DomainError, InvalidInput
from app.core.files import FileStore, file_store
from app.core.i18n import current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.web import render, see_other
from app.instruments import impact, queries, records
from app.instruments.errors import InstrumentNotFound
from app.instruments.models import CalibrationRecord, Instrument, IntermediateCheck, MaintenanceRecord
from app.instruments.record_views import certificate_file, impact_page, record_history
from app.instruments.service import ASSET_NO_RE, Upload, get_instrument, get_record, successor_of, uses_of
from app.instruments.status import status_now
from app.people.models import User

router = APIRouter()

# Asset numbers may contain '/', hence `{asset_no:path}` (this router is included before the
# registry's, whose catch-all detail path would otherwise take these).
AssetNo = Annotated[str, Path(max_length=200)]
# An INTEGER primary key: anything outside its range names nothing (and would overflow the driver).
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Choice = Annotated[str, Form(max_length=16)]
DateText = Annotated[str, Form(max_length=32)]
Name = Annotated[str, Form(max_length=200)]
Short = Annotated[str, Form(max_length=80)]
Note = Annotated[str, Form(max_length=500)]
LongText = Annotated[str, Form(max_length=4000)]
Secret = Annotated[str, Form(max_length=256)]
Parameters = Annotated[list[str] | None, Form()]
Certificate = Annotated[UploadFile | None, File()]

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
# A lab record is dated within a sane span; outside it the UTC conversion would overflow.
YEARS = range(1900, 3000)
MAX_PARAMETERS = 100


# ---------------------------------------------------------------- parsing at the edge


class MalformedDate(InvalidInput):
    code = "malformed_date"
    message_zh = "{label_zh}不是有效的日期（格式：年-月-日，如 2025-03-18）：{value}"
    message_en = "{label_en} is not a valid date (year-month-day, e.g. 2025-03-18): {value}"


class MalformedDateTime(InvalidInput):
    code = "malformed_datetime"
    message_zh = "{label_zh}不是有效的日期时间（如 2025-03-18T09:30）：{value}"
    message_en = "{label_en} is not a valid date and time (e.g. 2025-03-18T09:30): {value}"


class CertificateRequired(InvalidInput):
    code = "certificate_required"
    message_zh = "请上传证书 PDF 文件。"
    message_en = "Upload the certificate as a PDF file."


class UnknownDecision(InvalidInput):
    code = "unknown_decision"
    message_zh = "请选择“确认”或“不予确认”。"
    message_en = "Choose accept or reject."


LABELS = {
    "performed_on": ("检定/校准日期", "The date performed"),
    "valid_until": ("有效期至", "Valid until"),
    "performed_at": ("执行时间", "The time performed"),
}


def parse_date(value: str, field: str, *, required: bool = True) -> date | None:
    text = (value or "").strip()
    if not text and not required:
        return None
    zh, en = LABELS[field]
    try:
        if not DATE_RE.match(text):
            raise ValueError(text)
        parsed = date.fromisoformat(text)
        if parsed.year not in YEARS:
            raise ValueError(text)
    except ValueError:
        raise MalformedDate(label_zh=zh, label_en=en, value=text[:32]) from None
    return parsed


def parse_local_datetime(session: Session, value: str, field: str) -> datetime:
    """A datetime-local field is the lab's wall-clock time; the database keeps UTC."""
    text = (value or "").strip()
    zh, en = LABELS[field]
    try:
        if not DATETIME_RE.match(text):
            raise ValueError(text)
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
        if parsed.year not in YEARS:
            raise ValueError(text)
    except ValueError:
        raise MalformedDateTime(label_zh=zh, label_en=en, value=text[:32]) from None
    return parsed.replace(tzinfo=lab_calendar(session).tz).astimezone(UTC)


def local_input(session: Session, moment: datetime | None) -> str:
    """A UTC instant as the value of a datetime-local field, in the lab's time (to the minute,
    or to the second when the recorded time has seconds: a correction must not shift it)."""
    local = (moment or utcnow()).astimezone(lab_calendar(session).tz)
    if moment is None or (local.second == 0 and local.microsecond == 0):
        return local.strftime("%Y-%m-%dT%H:%M")
    return local.strftime("%Y-%m-%dT%H:%M:%S")


def unless_unchanged(moment: datetime, original: datetime) -> datetime:
    """A time sent back as it was shown keeps its full precision (microseconds are not shown)."""
    return original if moment == original.replace(microsecond=0) else moment


def parameter_list(values: list[str] | None) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in values or () if v and v.strip())
    if len(chosen) > MAX_PARAMETERS or any(len(v) > 60 for v in chosen):
        raise InvalidInput(detail=f"allowed_parameters: at most {MAX_PARAMETERS} names of at most 60 characters")
    return chosen


def upload_of(file: UploadFile | None, *, required: bool) -> Upload | None:
    """The uploaded file, or None when the file field was left empty."""
    if file is None or isinstance(file, str) or not (file.filename or "").strip():
        if required:
            raise CertificateRequired()
        return None
    return Upload(file.file, file.filename)


def store_of(request: Request) -> FileStore:
    return file_store(request.app.state.settings.data_path)


def refusal(error: DomainError) -> dict[str, Any]:
    """The context that shows a refusal above a form (see _error.html)."""
    return {"code": error.code, "detail": error.message(current_language()), "refused": True}


def attempt(act: Callable[[], Any]) -> tuple[Any, DomainError | None]:
    """Run a parse-and-write step; a refusal is returned (everything it did rolled back)."""
    try:
        return act(), None
    except DomainError as error:
        return None, error


def instrument_context(session: Session, instrument: Instrument | None) -> dict[str, Any]:
    if instrument is None:
        return {"instrument": None, "status": None, "uses": []}
    return {"instrument": instrument, "status": status_now(instrument, utcnow(), lab_calendar(session)),
            "uses": uses_of(session, instrument)}


def find_instrument(session: Session, asset_no: str) -> Instrument:
    """The instrument a URL names; a malformed asset number names none (no query needed)."""
    cleaned = asset_no.strip()
    if not ASSET_NO_RE.match(cleaned):
        raise InstrumentNotFound(asset_no=cleaned[:40])
    return get_instrument(session, cleaned)


def latest_revision(session: Session, model: type, record: Any) -> Any:
    while (newer := successor_of(session, model, record)) is not None:
        record = newer
    return record


def correction_form(request: Request, session: Session, model: type, record_id: int, path: str,
                    render_form: Callable[..., Any], form_values: Callable[[Session, Any], dict]) -> Any:
    """The correction form of a record, pre-filled; a correction is made on the current revision,
    so an older one redirects to the latest."""
    record = get_record(session, model, record_id)
    latest = latest_revision(session, model, record)
    if latest.id != record.id:
        return see_other(request, f"/instruments/{path}/{latest.id}/correct")
    instrument = session.get(Instrument, record.instrument_id)
    return render_form(request, session, instrument, form_values(session, record),
                       asset_no=instrument.asset_no, record=record)


# ---------------------------------------------------------------- calibration and verification


def calibration_form_values(session: Session, record: CalibrationRecord | None = None) -> dict[str, Any]:
    if record is None:
        return {"kind": "verification", "result": "pass", "performed_on": lab_calendar(session).today().isoformat(),
                "allowed_parameters": []}
    values = {name: getattr(record, name) for name in (
        "kind", "provider", "provider_accreditation_no", "certificate_no", "result", "restriction", "corrections")}
    return {**values, "performed_on": record.performed_on.isoformat(), "valid_until": record.valid_until.isoformat(),
            "allowed_parameters": json.loads(record.allowed_parameters or "[]")}


def render_calibration_form(request: Request, session: Session, instrument: Instrument | None, form: dict,
                            *, asset_no: str, record: CalibrationRecord | None = None,
                            error: DomainError | None = None) -> Response:
    context = {**instrument_context(session, instrument), "form": form, "record": record, "asset_no": asset_no,
               "max_mb": 20, **(refusal(error) if error else {})}
    return render(request, "instruments/calibration_form.html", context,
                  status_code=error.http_status if error else 200)


def calibration_facts(session: Session, kind: str, provider: str, certificate_no: str, performed_on: str,
                      result: str, provider_accreditation_no: str, valid_until: str, restriction: str,
                      allowed_parameters: list[str] | None, corrections: str) -> records.CalibrationFacts:
    return records.CalibrationFacts(
        kind=kind, provider=provider, certificate_no=certificate_no,
        performed_on=parse_date(performed_on, "performed_on"), result=result,
        valid_until=parse_date(valid_until, "valid_until", required=False),
        provider_accreditation_no=provider_accreditation_no, restriction=restriction,
        allowed_parameters=parameter_list(allowed_parameters), corrections=corrections,
    )


@router.get("/instruments/{asset_no:path}/calibrations/new", include_in_schema=False)
def new_calibration(request: Request, session: DbSession, asset_no: AssetNo,
                    user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    return render_calibration_form(request, session, instrument, calibration_form_values(session),
                                   asset_no=instrument.asset_no)


@router.post("/instruments/{asset_no:path}/calibrations", include_in_schema=False)
def create_calibration(
    request: Request, session: DbSession, asset_no: AssetNo, kind: Choice, provider: Name, certificate_no: Short,
    performed_on: DateText, result: Choice, provider_accreditation_no: Short = "", valid_until: DateText = "",
    restriction: LongText = "", allowed_parameters: Parameters = None, corrections: LongText = "",
    certificate: Certificate = None, user: User = require(Permission.INSTRUMENTS_MANAGE),
):
    form = {"kind": kind, "provider": provider, "certificate_no": certificate_no, "performed_on": performed_on,
            "result": result, "provider_accreditation_no": provider_accreditation_no, "valid_until": valid_until,
            "restriction": restriction, "allowed_parameters": allowed_parameters or [], "corrections": corrections}
    instrument = None

    def act() -> CalibrationRecord:
        nonlocal instrument
        instrument = find_instrument(session, asset_no)
        facts = calibration_facts(session, kind, provider, certificate_no, performed_on, result,
                                  provider_accreditation_no, valid_until, restriction, allowed_parameters,
                                  corrections)
        upload = upload_of(certificate, required=True)
        with committing(session):
            return records.record_calibration(session, user, instrument, facts, store=store_of(request),
                                              certificate=upload)

    record, error = attempt(act)
    if error is not None:
        # An unknown asset number still gets its form back, so nothing typed is lost.
        shown = None if isinstance(error, InstrumentNotFound) else instrument
        return render_calibration_form(request, session, shown, form, asset_no=asset_no.strip()[:40], error=error)
    return see_other(request, f"/instruments/calibrations/{record.id}")


@router.get("/instruments/calibrations/{calibration_id}", include_in_schema=False)
def calibration_page(request: Request, session: DbSession, calibration_id: RowId,
                     user: User = require(Permission.INSTRUMENTS_READ)):
    return render_calibration(request, session, calibration_id)


def render_calibration(request: Request, session: Session, calibration_id: int, *, error: DomainError | None = None,
                       form: dict | None = None) -> Response:
    history = record_history(session, CalibrationRecord, calibration_id)
    context = {"history": history, "form": form or {}, **(refusal(error) if error else {})}
    return render(request, "instruments/calibration.html", context, status_code=error.http_status if error else 200)


@router.get("/instruments/calibrations/{calibration_id}/certificate", include_in_schema=False)
def calibration_certificate(request: Request, session: DbSession, calibration_id: RowId,
                            user: User = require(Permission.INSTRUMENTS_READ)):
    """The certificate as stored, shown in the browser; refused when its bytes changed."""
    record = get_record(session, CalibrationRecord, calibration_id)
    store = store_of(request)
    stored = certificate_file(session, store, record)
    return FileResponse(store.path(stored.sha256), media_type=stored.media_type, filename=stored.filename,
                        content_disposition_type="inline", headers={"Cache-Control": "private, no-cache"})


@router.post("/instruments/calibrations/{calibration_id}/acceptance", include_in_schema=False)
def decide_acceptance(request: Request, session: DbSession, calibration_id: RowId, decision: Choice,
                      password: Secret, note: Note = "", user: User = require(Permission.INSTRUMENTS_CONFIRM)):
    """计量确认: an electronic signature, so the password is asked again."""
    record = get_record(session, CalibrationRecord, calibration_id)

    def act() -> None:
        if decision not in ("accept", "reject"):
            raise UnknownDecision()
        with committing(session):
            records.decide_acceptance(session, user, record, password, accept=decision == "accept", note=note)

    _, error = attempt(act)
    if error is not None:
        return render_calibration(request, session, calibration_id, error=error,
                                  form={"decision": decision, "note": note})
    return see_other(request, f"/instruments/calibrations/{calibration_id}")


@router.get("/instruments/calibrations/{calibration_id}/correct", include_in_schema=False)
def correct_calibration_form(request: Request, session: DbSession, calibration_id: RowId,
                             user: User = require(Permission.INSTRUMENTS_MANAGE)):
    return correction_form(request, session, CalibrationRecord, calibration_id, "calibrations",
                           render_calibration_form, calibration_form_values)


@router.post("/instruments/calibrations/{calibration_id}/correct", include_in_schema=False)
def correct_calibration(
    request: Request, session: DbSession, calibration_id: RowId, kind: Choice, provider: Name,
    certificate_no: Short, performed_on: DateText, result: Choice, reason: Note, provider_accreditation_no: Short = "",
    valid_until: DateText = "", restriction: LongText = "", allowed_parameters: Parameters = None,
    corrections: LongText = "", certificate: Certificate = None, user: User = require(Permission.INSTRUMENTS_MANAGE),
):
    record = get_record(session, CalibrationRecord, calibration_id)
    form = {"kind": kind, "provider": provider, "certificate_no": certificate_no, "performed_on": performed_on,
            "result": result, "provider_accreditation_no": provider_accreditation_no, "valid_until": valid_until,
            "restriction": restriction, "allowed_parameters": allowed_parameters or [], "corrections": corrections,
            "reason": reason}

    def act() -> CalibrationRecord:
        facts = calibration_facts(session, kind, provider, certificate_no, performed_on, result,
                                  provider_accreditation_no, valid_until, restriction, allowed_parameters,
                                  corrections)
        upload = upload_of(certificate, required=False)
        with committing(session):
            return records.correct_calibration(session, user, record, facts, reason=reason, store=store_of(request),
                                               certificate=upload)

    corrected, error = attempt(act)
    if error is not None:
        instrument = session.get(Instrument, record.instrument_id)
        return render_calibration_form(request, session, instrument, form, asset_no=instrument.asset_no,
                                       record=record, error=error)
    return see_other(request, f"/instruments/calibrations/{corrected.id}")


@router.get("/instruments/confirmations", include_in_schema=False)
def confirmations(request: Request, session: DbSession, everyone: Annotated[bool, Query(alias="all")] = False,
                  user: User = require(Permission.INSTRUMENTS_CONFIRM)):
    """Certificates waiting for the signed-in user's 计量确认 (the technical manager may see all)."""
    see_all = everyone and Permission.INSTRUMENTS_MANAGE in request.state.permissions
    waiting = queries.awaiting_acceptance(session, None if see_all else user.id)
    people = {}
    if see_all and waiting:
        ids = {i.responsible_id for _, i in waiting}
        people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}
    return render(request, "instruments/confirmations.html",
                  {"waiting": waiting, "see_all": see_all, "people": people,
                   "may_see_all": Permission.INSTRUMENTS_MANAGE in request.state.permissions})


# ---------------------------------------------------------------- intermediate checks


def check_form_values(session: Session, record: IntermediateCheck | None = None) -> dict[str, Any]:
    if record is None:
        return {"performed_at": local_input(session, None), "result": "pass"}
    values = {name: getattr(record, name) for name in (
        "check_standard", "method", "criterion", "measured_value", "unit", "result", "remarks", "standard_barcode")}
    return {**values, "performed_at": local_input(session, record.effective_from)}


def render_check_form(request: Request, session: Session, instrument: Instrument | None, form: dict, *,
                      asset_no: str, record: IntermediateCheck | None = None,
                      error: DomainError | None = None) -> Response:
    context = {**instrument_context(session, instrument), "form": form, "record": record, "asset_no": asset_no,
               **(refusal(error) if error else {})}
    return render(request, "instruments/check_form.html", context, status_code=error.http_status if error else 200)


def check_facts(session: Session, performed_at: str, check_standard: str, criterion: str, measured_value: str,
                result: str, method: str, unit: str, remarks: str, standard_barcode: str = "",
                original: IntermediateCheck | None = None) -> records.CheckFacts:
    moment = parse_local_datetime(session, performed_at, "performed_at")
    if original is not None:
        moment = unless_unchanged(moment, original.effective_from)
    return records.CheckFacts(
        performed_at=moment, check_standard=check_standard,
        criterion=criterion, measured_value=measured_value, result=result, method=method, unit=unit,
        remarks=remarks, standard_barcode=standard_barcode,
    )


@router.get("/instruments/{asset_no:path}/checks/new", include_in_schema=False)
def new_check(request: Request, session: DbSession, asset_no: AssetNo,
              user: User = require(Permission.INSTRUMENTS_RECORD)):
    instrument = find_instrument(session, asset_no)
    return render_check_form(request, session, instrument, check_form_values(session), asset_no=instrument.asset_no)


@router.post("/instruments/{asset_no:path}/checks", include_in_schema=False)
def create_check(
    request: Request, session: DbSession, asset_no: AssetNo, performed_at: DateText, check_standard: Name,
    criterion: Name, measured_value: Annotated[str, Form(max_length=60)], result: Choice, password: Secret,
    method: Name = "", unit: Annotated[str, Form(max_length=30)] = "", remarks: Note = "",
    standard_barcode: Annotated[str, Form(max_length=40)] = "", user: User = require(Permission.INSTRUMENTS_RECORD),
):
    """期间核查, signed by whoever performed it (password again)."""
    form = {"performed_at": performed_at, "check_standard": check_standard, "criterion": criterion,
            "measured_value": measured_value, "result": result, "method": method, "unit": unit, "remarks": remarks,
            "standard_barcode": standard_barcode}
    instrument = None

    def act() -> IntermediateCheck:
        nonlocal instrument
        instrument = find_instrument(session, asset_no)
        facts = check_facts(session, performed_at, check_standard, criterion, measured_value, result, method, unit,
                            remarks, standard_barcode)
        with committing(session):
            return records.record_check(session, user, instrument, facts, password)

    record, error = attempt(act)
    if error is not None:
        shown = None if isinstance(error, InstrumentNotFound) else instrument
        return render_check_form(request, session, shown, form, asset_no=asset_no.strip()[:40], error=error)
    return see_other(request, f"/instruments/checks/{record.id}")


@router.get("/instruments/checks/{check_id}", include_in_schema=False)
def check_page(request: Request, session: DbSession, check_id: RowId,
               user: User = require(Permission.INSTRUMENTS_READ)):
    return render(request, "instruments/check.html", {"history": record_history(session, IntermediateCheck, check_id)})


@router.get("/instruments/checks/{check_id}/correct", include_in_schema=False)
def correct_check_form(request: Request, session: DbSession, check_id: RowId,
                       user: User = require(Permission.INSTRUMENTS_RECORD)):
    return correction_form(request, session, IntermediateCheck, check_id, "checks", render_check_form,
                           check_form_values)


@router.post("/instruments/checks/{check_id}/correct", include_in_schema=False)
def correct_check(
    request: Request, session: DbSession, check_id: RowId, performed_at: DateText, check_standard: Name,
    criterion: Name, measured_value: Annotated[str, Form(max_length=60)], result: Choice, reason: Note,
    password: Secret, method: Name = "", unit: Annotated[str, Form(max_length=30)] = "", remarks: Note = "",
    standard_barcode: Annotated[str, Form(max_length=40)] = "", user: User = require(Permission.INSTRUMENTS_RECORD),
):
    record = get_record(session, IntermediateCheck, check_id)
    form = {"performed_at": performed_at, "check_standard": check_standard, "criterion": criterion,
            "measured_value": measured_value, "result": result, "method": method, "unit": unit, "remarks": remarks,
            "standard_barcode": standard_barcode, "reason": reason}

    def act() -> IntermediateCheck:
        facts = check_facts(session, performed_at, check_standard, criterion, measured_value, result, method, unit,
                            remarks, standard_barcode, original=record)
        with committing(session):
            return records.correct_check(session, user, record, facts, password, reason=reason)

    corrected, error = attempt(act)
    if error is not None:
        instrument = session.get(Instrument, record.instrument_id)
        return render_check_form(request, session, instrument, form, asset_no=instrument.asset_no, record=record,
                                 error=error)
    return see_other(request, f"/instruments/checks/{corrected.id}")


# ---------------------------------------------------------------- maintenance and repair


def maintenance_form_values(session: Session, record: MaintenanceRecord | None = None) -> dict[str, Any]:
    if record is None:
        return {"performed_at": local_input(session, None), "kind": "maintenance"}
    return {"kind": record.kind, "description": record.description, "performed_by": record.performed_by,
            "performed_at": local_input(session, record.effective_from)}


def render_maintenance_form(request: Request, session: Session, instrument: Instrument | None, form: dict, *,
                            asset_no: str, record: MaintenanceRecord | None = None,
                            error: DomainError | None = None) -> Response:
    context = {**instrument_context(session, instrument), "form": form, "record": record, "asset_no": asset_no,
               **(refusal(error) if error else {})}
    return render(request, "instruments/maintenance_form.html", context,
                  status_code=error.http_status if error else 200)


def maintenance_facts(session: Session, kind: str, performed_at: str, description: str, performed_by: str,
                      original: MaintenanceRecord | None = None) -> records.MaintenanceFacts:
    moment = parse_local_datetime(session, performed_at, "performed_at")
    if original is not None:
        moment = unless_unchanged(moment, original.effective_from)
    return records.MaintenanceFacts(kind=kind, performed_at=moment, description=description,
                                    performed_by=performed_by)


@router.get("/instruments/{asset_no:path}/maintenance/new", include_in_schema=False)
def new_maintenance(request: Request, session: DbSession, asset_no: AssetNo,
                    user: User = require(Permission.INSTRUMENTS_RECORD)):
    instrument = find_instrument(session, asset_no)
    return render_maintenance_form(request, session, instrument, maintenance_form_values(session),
                                   asset_no=instrument.asset_no)


@router.post("/instruments/{asset_no:path}/maintenance", include_in_schema=False)
def create_maintenance(
    request: Request, session: DbSession, asset_no: AssetNo, kind: Choice, performed_at: DateText,
    description: LongText, performed_by: Name = "", user: User = require(Permission.INSTRUMENTS_RECORD),
):
    form = {"kind": kind, "performed_at": performed_at, "description": description, "performed_by": performed_by}
    instrument = None

    def act() -> MaintenanceRecord:
        nonlocal instrument
        instrument = find_instrument(session, asset_no)
        facts = maintenance_facts(session, kind, performed_at, description, performed_by)
        with committing(session):
            return records.record_maintenance(session, user, instrument, facts)

    record, error = attempt(act)
    if error is not None:
        shown = None if isinstance(error, InstrumentNotFound) else instrument
        return render_maintenance_form(request, session, shown, form, asset_no=asset_no.strip()[:40], error=error)
    return see_other(request, f"/instruments/maintenance/{record.id}")


@router.get("/instruments/maintenance/{maintenance_id}", include_in_schema=False)
def maintenance_page(request: Request, session: DbSession, maintenance_id: RowId,
                     user: User = require(Permission.INSTRUMENTS_READ)):
    return render(request, "instruments/maintenance.html",
                  {"history": record_history(session, MaintenanceRecord, maintenance_id)})


@router.get("/instruments/maintenance/{maintenance_id}/correct", include_in_schema=False)
def correct_maintenance_form(request: Request, session: DbSession, maintenance_id: RowId,
                             user: User = require(Permission.INSTRUMENTS_RECORD)):
    return correction_form(request, session, MaintenanceRecord, maintenance_id, "maintenance",
                           render_maintenance_form, maintenance_form_values)


@router.post("/instruments/maintenance/{maintenance_id}/correct", include_in_schema=False)
def correct_maintenance(
    request: Request, session: DbSession, maintenance_id: RowId, kind: Choice, performed_at: DateText,
    description: LongText, reason: Note, performed_by: Name = "", user: User = require(Permission.INSTRUMENTS_RECORD),
):
    record = get_record(session, MaintenanceRecord, maintenance_id)
    form = {"kind": kind, "performed_at": performed_at, "description": description, "performed_by": performed_by,
            "reason": reason}

    def act() -> MaintenanceRecord:
        facts = maintenance_facts(session, kind, performed_at, description, performed_by, original=record)
        with committing(session):
            return records.correct_maintenance(session, user, record, facts, reason=reason)

    corrected, error = attempt(act)
    if error is not None:
        instrument = session.get(Instrument, record.instrument_id)
        return render_maintenance_form(request, session, instrument, form, asset_no=instrument.asset_no,
                                       record=record, error=error)
    return see_other(request, f"/instruments/maintenance/{corrected.id}")


# ---------------------------------------------------------------- impact assessments


@router.get("/instruments/impact", include_in_schema=False)
def impact_list(request: Request, session: DbSession,
                status: Annotated[str, Query(pattern="^(open|closed|all)$")] = "open",
                page: Annotated[int, Query(ge=1, le=100000)] = 1, user: User = require(Permission.INSTRUMENTS_READ)):
    result = impact.list_assessments(session, status=status, page=page, size=request.app.state.settings.page_size)
    return render(request, "instruments/impact_list.html", {"page": result, "status": status}, block="results")


@router.get("/instruments/impact/{assessment_id}.csv", include_in_schema=False)
def impact_export(request: Request, session: DbSession, assessment_id: RowId,
                  user: User = require(Permission.INSTRUMENTS_READ)):
    view = impact.view_assessment(session, impact.get_assessment(session, assessment_id))
    name = f"impact-{view.instrument.asset_no}-{assessment_id}.csv"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return Response(impact.impact_csv(session, view).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"'})


@router.get("/instruments/impact/{assessment_id}", include_in_schema=False)
def impact_assessment(request: Request, session: DbSession, assessment_id: RowId,
                      user: User = require(Permission.INSTRUMENTS_READ)):
    return render_impact(request, session, assessment_id)


def render_impact(request: Request, session: Session, assessment_id: int, *, error: DomainError | None = None,
                  form: dict | None = None) -> Response:
    view = impact.view_assessment(session, impact.get_assessment(session, assessment_id))
    context = {"view": view, "page": impact_page(session, view.assessment), "form": form or {},
               "status": status_now(view.instrument, utcnow(), lab_calendar(session)),
               **(refusal(error) if error else {})}
    return render(request, "instruments/impact.html", context, status_code=error.http_status if error else 200)


@router.post("/instruments/impact/{assessment_id}/disposition", include_in_schema=False)
def decide_impact(request: Request, session: DbSession, assessment_id: RowId, disposition: Choice,
                  justification: LongText, password: Secret, user: User = require(Permission.INSTRUMENTS_DISPOSE)):
    """The quality manager's signed disposition over the assessment and the affected list."""
    assessment = impact.get_assessment(session, assessment_id)

    def act() -> None:
        with committing(session):
            impact.decide_impact(session, user, assessment, password, disposition=disposition,
                                 justification=justification)

    _, error = attempt(act)
    if error is not None:
        return render_impact(request, session, assessment_id, error=error,
                             form={"disposition": disposition, "justification": justification})
    return see_other(request, f"/instruments/impact/{assessment_id}")
