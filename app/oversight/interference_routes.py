"""Pages and JSON API of the interference log (干预留痕, DOMAIN.md §6): the register, filing a
record (phone-friendly, with letters, recordings and photos), one record with its supplements,
the quality manager's follow-up, exports (XLSX, PDF), and the edit/delete addresses that exist
only to refuse and record the attempt.

Routes are thin: parse, call one service of app.oversight.interference in the unit of work,
render. Who may see which record is decided by the service, never here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, Worklist, add_nav, add_worklist
from app.core.web import attempt, pager_base, render, see_other
from app.instruments.service import Upload
from app.oversight import interference as service
from app.oversight import interference_errors as errors
from app.oversight import interference_export as export
from app.oversight.interference import InterferenceInput, RegisterFilter
from app.oversight.interference_export import (
    CHANNEL_NAMES,
    KIND_NAMES,
    REQUEST_NAMES,
    RESPONSE_NAMES,
    STATE_BADGES,
    STATE_NAMES,
)
from app.people.models import User

router = APIRouter()

BASE = "/oversight/interference"
API = "/api/v1/interference"
RecordNo = Annotated[str, Path(max_length=20, pattern=r"^[A-Za-z0-9-]{1,20}$")]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
MAX_FIELD = 10_000

def names() -> dict[str, Any]:
    return {"channel_names": CHANNEL_NAMES, "request_names": REQUEST_NAMES, "response_names": RESPONSE_NAMES,
            "state_names": STATE_NAMES, "state_badges": STATE_BADGES, "kind_names": KIND_NAMES,
            "channels": service.CHANNELS, "request_kinds": service.REQUEST_KINDS,
            "lab_responses": service.LAB_RESPONSES, "states": service.STATES}


def refusal(error: DomainError | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language())}


# ---------------------------------------------------------------- parsing at the edge

def parse_day(text: str) -> date | None:
    value = (text or "").strip()
    if not value:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
        if not 1900 <= day.year <= 2999:
            raise ValueError(value)
    except ValueError:
        raise errors.InterferenceBadTime(value=value[:32]) from None
    return day


class FilingIn(BaseModel):
    """A record as the API receives it (JSON, or the fields of a multipart form with files)."""

    interferer_name: str = Field("", max_length=MAX_FIELD)
    interferer_position: str = Field("", max_length=MAX_FIELD)
    interferer_organisation: str = Field("", max_length=MAX_FIELD)
    interferer_username: str = Field("", max_length=MAX_FIELD)
    occurred_at: str = Field("", max_length=40, description="ISO 8601; without an offset: the lab's local time")
    channel: str = Field("", max_length=40)
    request_kind: str = Field("", max_length=40)
    what_was_asked: str = Field("", max_length=MAX_FIELD)
    lab_response: str = Field("", max_length=40)
    response_detail: str = Field("", max_length=MAX_FIELD)
    witnesses: str = Field("", max_length=MAX_FIELD)
    restricted: bool = False
    sites: list[str] = Field(default_factory=list, max_length=200)
    samples: list[str] = Field(default_factory=list, max_length=200)
    reports: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("sites", "samples", "reports", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return list(service.split_numbers(value))
        if isinstance(value, list):
            return [n for v in value if isinstance(v, str) for n in service.split_numbers(v)] or value
        return value

    def to_input(self, session: Session) -> InterferenceInput:
        return InterferenceInput(
            interferer_name=self.interferer_name, channel=self.channel, request_kind=self.request_kind,
            what_was_asked=self.what_was_asked, lab_response=self.lab_response,
            occurred_at=_api_time(session, self.occurred_at), interferer_position=self.interferer_position,
            interferer_organisation=self.interferer_organisation, interferer_username=self.interferer_username,
            response_detail=self.response_detail, witnesses=self.witnesses, restricted=self.restricted,
            site_codes=tuple(self.sites), sample_nos=tuple(self.samples), report_nos=tuple(self.reports))


def _api_time(session: Session, text: str) -> datetime | None:
    """ISO 8601 with an offset, or the lab's local time (a form's datetime-local)."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.InterferenceBadTime(value=value[:32]) from None
    if not 1900 <= parsed.year <= 2999:
        raise errors.InterferenceBadTime(value=value[:32])
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=lab_calendar(session).tz)
    return parsed.astimezone(UTC)


class Payload:
    """The fields and files of a post, from JSON or a (multipart) form."""

    def __init__(self, fields: dict[str, Any], files: list[Upload], *, form: bool = False) -> None:
        self.fields = fields
        self.files = files
        self.form = form  # a checkbox arrives as text ("1", "on", "true")

    def text(self, name: str) -> str:
        value = self.fields.get(name, "")
        return value if isinstance(value, str) else ""


MULTI_FIELDS = ("sites", "samples", "reports")


async def read_payload(request: Request) -> Payload:
    """JSON or form data, whichever came; files only with a multipart form (field `attachments`)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(detail="the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidInput(detail="a JSON object expected")
        return Payload(body, [])
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form()
        except Exception:  # a body that does not parse
            raise InvalidInput(detail="the form could not be read") from None
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in MULTI_FIELDS:
                    fields.setdefault(key, []).append(value)
                else:
                    fields[key] = value
        files = [Upload(f.file, f.filename or "attachment") for f in form.getlist("attachments")
                 if isinstance(f, UploadFile) and (f.filename or "").strip()]
        return Payload(fields, files, form=True)
    if not content_type and not await request.body():
        return Payload({}, [])
    raise InvalidInput(detail="JSON or a form expected")


def filing_of(payload: Payload) -> FilingIn:
    fields = dict(payload.fields)
    if payload.form and isinstance(fields.get("restricted"), str):
        fields["restricted"] = fields["restricted"].strip().lower() in ("1", "true", "on", "yes")
    try:
        return FilingIn.model_validate(fields)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False, include_context=False)) from None


# ---------------------------------------------------------------- the register


def _filters(state: str, channel: str, date_from: str, date_to: str) -> RegisterFilter:
    return RegisterFilter(state.strip(), channel.strip(), parse_day(date_from), parse_day(date_to))


StateQ = Annotated[str, Query(max_length=16)]
ChannelQ = Annotated[str, Query(max_length=16)]
DayQ = Annotated[str, Query(max_length=10)]


@router.get(BASE, include_in_schema=False)
def register_page(request: Request, session: DbSession, state: StateQ = "", channel: ChannelQ = "",
                  date_from: DayQ = "", date_to: DayQ = "", page: PageNo = 1,
                  user: User = require(Permission.INTERFERENCE_READ)):
    """The records the reader may see, newest first (htmx: the results only)."""
    filters = _filters(state, channel, date_from, date_to)
    found = service.list_records(session, user, filters, page, request.app.state.settings.page_size)
    params = filters.params()
    return render(request, "oversight/interference_list.html", {
        **names(), "page": found, "filters": params, "pager_base": pager_base(BASE, params),
        "export_query": "&".join(f"{k}={quote(v)}" for k, v in params.items() if v),
    }, block="results")


def _export_response(data: bytes, media_type: str, name: str) -> Response:
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"})


@router.get(f"{BASE}.xlsx", include_in_schema=False)
def register_xlsx(request: Request, session: DbSession, state: StateQ = "", channel: ChannelQ = "",
                  date_from: DayQ = "", date_to: DayQ = "", user: User = require(Permission.INTERFERENCE_OVERSEE)):
    """The register as a spreadsheet; the export is audited (a write session of its own)."""
    filters = _filters(state, channel, date_from, date_to)
    with request.app.state.db.transaction() as writing:
        data = export.register_xlsx(writing, user, filters)
    stamp = datetime.now(lab_calendar(session).tz).strftime("%Y%m%d-%H%M")
    return _export_response(data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                            f"interference-register-{stamp}.xlsx")


@router.get(f"{BASE}.pdf", include_in_schema=False)
def register_pdf(request: Request, session: DbSession, state: StateQ = "", channel: ChannelQ = "",
                 date_from: DayQ = "", date_to: DayQ = "", user: User = require(Permission.INTERFERENCE_OVERSEE)):
    """The register printed; the export is audited."""
    filters = _filters(state, channel, date_from, date_to)
    with request.app.state.db.transaction() as writing:
        data = export.register_pdf(writing, user, filters, language=current_language())
    stamp = datetime.now(lab_calendar(session).tz).strftime("%Y%m%d-%H%M")
    return _export_response(data, "application/pdf", f"interference-register-{stamp}.pdf")


# ---------------------------------------------------------------- filing


def _blank_form(session: Session) -> dict[str, str]:
    now = datetime.now(lab_calendar(session).tz).strftime("%Y-%m-%dT%H:%M")
    return {"occurred_at": now, "channel": "", "request_kind": "", "lab_response": "", "sites": "", "samples": "",
            "reports": "", "restricted": ""}


def _new_page(request: Request, session: Session, form: dict[str, Any], error: DomainError | None = None):
    max_mb = request.app.state.settings.max_upload_mb
    return render(request, "oversight/interference_new.html", {
        **names(), "form": form, "max_mb": max_mb, "max_files": service.MAX_ATTACHMENTS, **refusal(error),
    }, status_code=error.http_status if error else 200)


@router.get(f"{BASE}/new", include_in_schema=False)
def new_record(request: Request, session: DbSession, user: User = require(Permission.INTERFERENCE_FILE)):
    return _new_page(request, session, _blank_form(session))


@router.post(f"{BASE}/new", include_in_schema=False)
def file_record(request: Request, session: DbSession, user: User = require(Permission.INTERFERENCE_FILE),
                payload: Payload = Depends(read_payload)):
    """File the record (multipart, with attachments); a refusal shows the form again as typed."""
    typed = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in payload.fields.items() if k != "csrf_token"}

    def act() -> str:
        filing = filing_of(payload)
        return service.file_interference(session, user, filing.to_input(session), payload.files).record_no

    try:
        record_no, error = attempt(session, act)
    except RequestValidationError:
        record_no, error = None, InvalidInput(detail="the form is incomplete or too long")
    if error is not None:
        return _new_page(request, session, {**_blank_form(session), **typed}, error)
    return see_other(request, f"{BASE}/{record_no}")


# ---------------------------------------------------------------- one record


def _detail_page(request: Request, session: Session, user: User, record_no: str, *, action: str = "",
                 form: dict[str, str] | None = None, error: DomainError | None = None):
    detail = service.record_detail(session, user, record_no)
    permissions = getattr(request.state, "permissions", frozenset())
    can_follow_up = Permission.INTERFERENCE_FOLLOW_UP in permissions
    return render(request, "oversight/interference_detail.html", {
        **names(), "d": detail, "r": detail.record,
        "can_supplement": Permission.INTERFERENCE_FILE in permissions
        and (detail.record.filed_by_id == user.id or can_follow_up),
        "can_follow_up": can_follow_up, "action": action, "form": form or {},
        "today": lab_calendar(session).today().isoformat(), "max_mb": request.app.state.settings.max_upload_mb,
        **refusal(error),
    }, status_code=error.http_status if error else 200)


@router.get(f"{BASE}/{{record_no}}", include_in_schema=False)
def record_page(request: Request, session: DbSession, record_no: RecordNo,
                user: User = require(Permission.INTERFERENCE_READ)):
    return _detail_page(request, session, user, record_no)


@router.get(f"{BASE}/{{record_no}}/files/{{attachment_id}}", include_in_schema=False)
def download_attachment(request: Request, session: DbSession, record_no: RecordNo,
                        attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                        user: User = require(Permission.INTERFERENCE_READ)):
    """An attachment as stored, only if its bytes still hash to the SHA-256 recorded."""
    attachment, stored = service.attachment_of(session, user, record_no, attachment_id)
    store = service.attachment_store(session)
    if stored.sha256 != attachment.sha256 or not store.verify(stored.sha256):
        raise errors.AttachmentAltered(filename=stored.filename[:80])
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", stored.filename).strip("_") or "attachment"
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(stored.filename, safe='')}"
    return FileResponse(store.path(stored.sha256), media_type=stored.media_type, headers={
        "Content-Disposition": disposition,
        "Cache-Control": "private, no-store", "X-Content-SHA256": stored.sha256})


@router.get(f"{BASE}/{{record_no}}/package.zip", include_in_schema=False)
def record_package(request: Request, session: DbSession, record_no: RecordNo,
                   user: User = require(Permission.INTERFERENCE_OVERSEE)):
    """One record's package for the authority (record, attachments, SHA256SUMS); audited."""
    with request.app.state.db.transaction() as writing:
        name, data = export.record_package(writing, user, record_no)
    return _export_response(data, "application/zip", name)


@router.post(f"{BASE}/{{record_no}}/supplements", include_in_schema=False)
def supplement_record(request: Request, session: DbSession, record_no: RecordNo,
                      user: User = require(Permission.INTERFERENCE_FILE), payload: Payload = Depends(read_payload)):
    def act() -> None:
        record = service.get_record(session, user, record_no)
        service.add_supplement(session, user, record, payload.text("text"), payload.files)

    _, error = attempt(session, act)
    if error is not None:
        return _detail_page(request, session, user, record_no, action="supplement",
                            form={"text": payload.text("text")}, error=error)
    return see_other(request, f"{BASE}/{record_no}")


@router.post(f"{BASE}/{{record_no}}/acknowledge", include_in_schema=False)
def acknowledge_record(request: Request, session: DbSession, record_no: RecordNo,
                       user: User = require(Permission.INTERFERENCE_FOLLOW_UP),
                       payload: Payload = Depends(read_payload)):
    def act() -> None:
        record = service.get_record(session, user, record_no)
        service.acknowledge(session, user, record, payload.text("text"))

    _, error = attempt(session, act)
    if error is not None:
        return _detail_page(request, session, user, record_no, action="acknowledge",
                            form={"ack_text": payload.text("text")}, error=error)
    return see_other(request, f"{BASE}/{record_no}")


@router.post(f"{BASE}/{{record_no}}/reported", include_in_schema=False)
def report_record(request: Request, session: DbSession, record_no: RecordNo,
                  user: User = require(Permission.INTERFERENCE_FOLLOW_UP), payload: Payload = Depends(read_payload)):
    def act() -> None:
        record = service.get_record(session, user, record_no)
        service.record_reported(session, user, record, payload.text("reported_to"),
                                parse_day(payload.text("reported_on")), payload.text("text"))

    _, error = attempt(session, act)
    if error is not None:
        return _detail_page(request, session, user, record_no, action="reported", form={
            "reported_to": payload.text("reported_to"), "reported_on": payload.text("reported_on"),
            "report_text": payload.text("text")}, error=error)
    return see_other(request, f"{BASE}/{record_no}")


# Every lab user reaches these (they change nothing; the attempt is recorded by the service). An
# inspector's and an admin's attempts are refused by the kernel before (the inspector's recorded
# there as security.inspector_refused).
@router.post(f"{BASE}/{{record_no}}/edit", include_in_schema=False)
def edit_record(session: DbSession, record_no: RecordNo, user: User = require(Permission.INTERFERENCE_FILE)):
    with committing(session):
        service.refuse_change(session, user, record_no, "edit")


@router.post(f"{BASE}/{{record_no}}/delete", include_in_schema=False)
def delete_record(session: DbSession, record_no: RecordNo, user: User = require(Permission.INTERFERENCE_FILE)):
    with committing(session):
        service.refuse_change(session, user, record_no, "delete")


# ---------------------------------------------------------------- JSON API


class TargetOut(BaseModel):
    type: str
    number: str


class AttachmentOut(BaseModel):
    id: int
    filename: str
    media_type: str
    size: int
    sha256: str
    added_at: datetime


class SupplementOut(BaseModel):
    kind: str
    text: str
    reported_to: str
    reported_on: date | None
    recorded_at: datetime
    recorded_by: str


class RecordOut(BaseModel):
    record_no: str
    state: str
    occurred_at: datetime
    interferer_name: str
    interferer_position: str
    interferer_organisation: str
    channel: str
    request_kind: str
    lab_response: str
    restricted: bool
    filed_at: datetime
    filed_by: str
    attachments: int


class RecordDetailOut(RecordOut):
    what_was_asked: str
    response_detail: str
    witnesses: str
    interferer_username: str | None
    targets: list[TargetOut]
    supplements: list[SupplementOut]
    attachment_files: list[AttachmentOut]


class RecordPage(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    items: list[RecordOut]


class SupplementIn(BaseModel):
    text: str = Field("", max_length=MAX_FIELD)


class ReportedIn(BaseModel):
    reported_to: str = Field("", max_length=MAX_FIELD)
    reported_on: date | None = None
    text: str = Field("", max_length=MAX_FIELD)


def _detail_json(detail: service.RecordDetail) -> RecordDetailOut:
    r = detail.record
    return RecordDetailOut(
        record_no=r.record_no, state=detail.state, occurred_at=r.occurred_at, interferer_name=r.interferer_name,
        interferer_position=r.interferer_position, interferer_organisation=r.interferer_organisation,
        channel=r.channel, request_kind=r.request_kind, lab_response=r.lab_response, restricted=r.restricted,
        filed_at=r.filed_at, filed_by=detail.filer.username, attachments=len(detail.attachments),
        what_was_asked=r.what_was_asked, response_detail=r.response_detail, witnesses=r.witnesses,
        interferer_username=detail.interferer_user.username if detail.interferer_user else None,
        targets=[TargetOut(type=t.target_type, number=t.label) for t in detail.targets],
        supplements=[SupplementOut(kind=s.kind, text=s.text, reported_to=s.reported_to, reported_on=s.reported_on,
                                   recorded_at=s.recorded_at, recorded_by=u.username) for s, u in detail.supplements],
        attachment_files=[AttachmentOut(id=a.id, filename=f.filename, media_type=f.media_type, size=f.size,
                                        sha256=a.sha256, added_at=a.added_at) for a, f, _ in detail.attachments])


@router.post(API, tags=["interference"], status_code=201)
def api_file(session: DbSession, user: User = require(Permission.INTERFERENCE_FILE),
             payload: Payload = Depends(read_payload)) -> RecordDetailOut:
    """File a record: JSON, or a multipart form with the same fields and files in `attachments`
    (sites, samples and reports as lists or comma-separated numbers)."""
    filing = filing_of(payload)
    with committing(session):
        record = service.file_interference(session, user, filing.to_input(session), payload.files)
        record_no = record.record_no
    return _detail_json(service.record_detail(session, user, record_no))


@router.get(API, tags=["interference"])
def api_list(request: Request, session: DbSession, state: StateQ = "", channel: ChannelQ = "",
             date_from: DayQ = "", date_to: DayQ = "", page: PageNo = 1,
             per_page: Annotated[int, Query(ge=1, le=200)] = 50,
             user: User = require(Permission.INTERFERENCE_READ)) -> RecordPage:
    """The records the caller may see, newest first."""
    found = service.list_records(session, user, _filters(state, channel, date_from, date_to), page, per_page)
    return RecordPage(page=found.page, per_page=found.size, total=found.total, pages=found.pages, items=[
        RecordOut(record_no=row.record.record_no, state=row.state, occurred_at=row.record.occurred_at,
                  interferer_name=row.record.interferer_name, interferer_position=row.record.interferer_position,
                  interferer_organisation=row.record.interferer_organisation, channel=row.record.channel,
                  request_kind=row.record.request_kind, lab_response=row.record.lab_response,
                  restricted=row.record.restricted, filed_at=row.record.filed_at, filed_by=row.filer.username,
                  attachments=row.attachments)
        for row in found.items])


@router.get(f"{API}/{{record_no}}", tags=["interference"])
def api_record(session: DbSession, record_no: RecordNo,
               user: User = require(Permission.INTERFERENCE_READ)) -> RecordDetailOut:
    """One record, if the caller may see it (404 otherwise, as for a record that does not exist)."""
    return _detail_json(service.record_detail(session, user, record_no))


@router.post(f"{API}/{{record_no}}/supplements", tags=["interference"], status_code=201)
def api_supplement(session: DbSession, record_no: RecordNo, user: User = require(Permission.INTERFERENCE_FILE),
                   payload: Payload = Depends(read_payload)) -> RecordDetailOut:
    """Add to a record (its filer, or the quality manager): JSON {"text"} or a form with files."""
    with committing(session):
        record = service.get_record(session, user, record_no)
        service.add_supplement(session, user, record, payload.text("text"), payload.files)
    return _detail_json(service.record_detail(session, user, record_no))


@router.post(f"{API}/{{record_no}}/acknowledge", tags=["interference"], status_code=201)
def api_acknowledge(session: DbSession, record_no: RecordNo, body: SupplementIn,
                    user: User = require(Permission.INTERFERENCE_FOLLOW_UP)) -> RecordDetailOut:
    with committing(session):
        service.acknowledge(session, user, service.get_record(session, user, record_no), body.text)
    return _detail_json(service.record_detail(session, user, record_no))


@router.post(f"{API}/{{record_no}}/reported", tags=["interference"], status_code=201)
def api_reported(session: DbSession, record_no: RecordNo, body: ReportedIn,
                 user: User = require(Permission.INTERFERENCE_FOLLOW_UP)) -> RecordDetailOut:
    with committing(session):
        service.record_reported(session, user, service.get_record(session, user, record_no), body.reported_to,
                                body.reported_on, body.text)
    return _detail_json(service.record_detail(session, user, record_no))


@router.put(f"{API}/{{record_no}}", tags=["interference"])
def api_edit(session: DbSession, record_no: RecordNo, user: User = require(Permission.INTERFERENCE_FILE)) -> None:
    """Always refused (409 interference_immutable) and recorded: records are never edited."""
    with committing(session):
        service.refuse_change(session, user, record_no, "edit")


@router.delete(f"{API}/{{record_no}}", tags=["interference"])
def api_delete(session: DbSession, record_no: RecordNo, user: User = require(Permission.INTERFERENCE_FILE)) -> None:
    """Always refused (409 interference_immutable) and recorded: records are never deleted."""
    with committing(session):
        service.refuse_change(session, user, record_no, "delete")


# ---------------------------------------------------------------- shell


add_nav(NavItem("interference", N_("Interference log"), BASE, Permission.INTERFERENCE_READ, 65))
add_worklist(Worklist("interference_to_acknowledge", N_("Interference records to acknowledge"),
                      Permission.INTERFERENCE_FOLLOW_UP, f"{BASE}?state=filed", service.to_acknowledge, 15))
