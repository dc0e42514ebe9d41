"""Registry pages of the instruments domain: the searchable list, registration, the detail page
with the whole history on one timeline, registry changes with a reason, out of service and
retirement, attachments, and the traceability view at a moment (HTML and PDF).

The record pages (calibrations, checks, maintenance, confirmations, impact) are record_routes.py.
Asset numbers may contain '/', so the registry's paths take `{asset_no:path}`; that router is
included after the record pages' so its catch-all detail path cannot shadow theirs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing, utcnow
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.files import StoredFile, file_store
from app.core.i18n import N_, current_language
from app.core.labtime import LabCalendar, lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import pager_base, query_string, render, see_other
from app.instruments import errors, impact, queries, service
from app.instruments.models import Instrument, InstrumentAttachment, InstrumentKind, InstrumentStatus
from app.people.models import User

log = logging.getLogger("lims")
router = APIRouter()

Short = Annotated[str, Form(max_length=200)]
Long = Annotated[str, Form(max_length=4000)]
Reason = Annotated[str, Form(max_length=500)]
# An INTEGER primary key: anything outside its range names nothing (and would overflow the driver).
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
STATUSES = "|".join(s.value for s in InstrumentStatus)
ATTACHMENT_KINDS = ("manual", "acceptance", "other")


class InvalidDate(InvalidInput):
    code = "invalid_date"
    message_zh = "{field_zh}不是有效日期，请按 YYYY-MM-DD 填写。"
    message_en = "{field_en} is not a valid date; use YYYY-MM-DD."


class InvalidMoment(InvalidInput):
    code = "invalid_moment"
    message_zh = "时间“{value}”无效：请用 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM（实验室当地时间）。"
    message_en = "The time “{value}” is invalid: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (lab local time)."


class AttachmentAltered(DomainError):
    """The bytes on disk no longer hash to the SHA-256 recorded at upload: never serve them."""

    code = "attachment_altered"
    message_zh = "附件文件已缺失或被改动（SHA-256 不再一致），不能提供。请联系质量负责人。"
    message_en = ("The attachment file is missing or has been altered (its SHA-256 no longer matches) "
                  "and cannot be served. Tell the quality manager.")


# ---------------------------------------------------------------- helpers


def find_instrument(session: Session, asset_no: str) -> Instrument:
    """The instrument a URL names; a malformed asset number names none (no query needed)."""
    cleaned = asset_no.strip()
    if not service.ASSET_NO_RE.match(cleaned):
        raise errors.InstrumentNotFound(asset_no=cleaned[:40])
    return service.get_instrument(session, cleaned)


def last_valid_day(calendar: LabCalendar):
    """Due instants are the start of the day after 'valid until': show the certificate's date."""

    def day(due_at: datetime | None) -> date | None:
        return None if due_at is None else calendar.local_date(due_at) - timedelta(days=1)

    return day


def active_people(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.active).order_by(User.username)))


def parse_uses(text: str) -> list[tuple[str, str]]:
    """One 'parameter | method' per line (the method may be left out)."""
    uses = []
    for line in text.splitlines():
        parameter, _, method = line.partition("|")
        if parameter.strip():
            uses.append((parameter.strip(), method.strip()))
    return uses


def uses_text(uses: list[tuple[str, str]]) -> str:
    return "\n".join(f"{p} | {m}" if m else p for p, m in uses)


def parse_day(value: str, field_zh: str, field_en: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidDate(field_zh=field_zh, field_en=field_en) from None


def parse_person(value: str) -> int:
    try:
        person = int(value.strip())
    except ValueError:
        raise errors.UnknownResponsible() from None
    if not 1 <= person <= 2_147_483_647:
        raise errors.UnknownResponsible()
    return person


MOMENT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$")


def parse_moment(raw: str, calendar: LabCalendar) -> datetime:
    """`at` as the lab's wall-clock time: a date means the end of that day (now, for today)."""
    text = raw.strip()
    if not text:
        return utcnow()
    match = MOMENT_RE.match(text)
    if not match:
        raise InvalidMoment(value=text[:40])
    year, month, day, hour, minute, second = match.groups()
    try:
        local_day = date(int(year), int(month), int(day))
        clock = time.max if hour is None else time(int(hour), int(minute), int(second or 0))
    except ValueError:
        raise InvalidMoment(value=text) from None
    if not 1900 <= local_day.year <= 2999:
        raise InvalidMoment(value=text)
    moment = datetime.combine(local_day, clock, tzinfo=calendar.tz).astimezone(UTC)
    if hour is None and local_day == calendar.today():
        return utcnow()
    return moment


def refusal_shown_in_form(error: DomainError) -> bool:
    """Input the form can fix is shown beside it, with the values entered; who-may refusals are not."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (409, 422)


# ---------------------------------------------------------------- the list


@router.get("/instruments", include_in_schema=False)
def instrument_list(request: Request, session: DbSession, q: str = Query("", max_length=100),
                    status: str = Query("", pattern=f"^({STATUSES})?$"),
                    kind: str = Query("", pattern="^(laboratory|field)?$"),
                    page: int = Query(1, ge=1, le=100_000), user: User = require(Permission.INSTRUMENTS_READ)):
    settings = request.app.state.settings
    result = queries.search_instruments(session, q=q, status=status, kind=kind, page=page, size=settings.page_size)
    params = {"q": q.strip(), "status": status, "kind": kind}
    return render(request, "instruments/list.html", {
        "page": result, "filters": params, "pager_base": pager_base("/instruments", params),
        "statuses": list(InstrumentStatus), "valid_until": last_valid_day(lab_calendar(session)),
    }, block="results")


# ---------------------------------------------------------------- registration


@dataclass
class RegistryForm:
    """The registry fields as entered (strings), so a refused form comes back as it was."""

    asset_no: str = ""
    name_zh: str = ""
    name_en: str = ""
    model: str = ""
    manufacturer: str = ""
    serial_no: str = ""
    location: str = ""
    kind: str = InstrumentKind.LABORATORY.value
    commissioned_on: str = ""
    responsible_id: str = ""
    uses: str = ""
    notes: str = ""

    def changes(self) -> dict[str, Any]:
        """Parsed values for the service (raises a DomainError the form shows)."""
        return {
            "name_zh": self.name_zh, "name_en": self.name_en, "model": self.model,
            "manufacturer": self.manufacturer, "serial_no": self.serial_no, "location": self.location,
            "kind": self.kind, "notes": self.notes,
            "commissioned_on": parse_day(self.commissioned_on, "投用日期", "The commissioning date"),
            "responsible_id": parse_person(self.responsible_id),
        }

    @classmethod
    def of(cls, instrument: Instrument, uses: list[tuple[str, str]]) -> RegistryForm:
        return cls(asset_no=instrument.asset_no, name_zh=instrument.name_zh, name_en=instrument.name_en,
                   model=instrument.model, manufacturer=instrument.manufacturer, serial_no=instrument.serial_no,
                   location=instrument.location, kind=instrument.kind,
                   commissioned_on=instrument.commissioned_on.isoformat(),
                   responsible_id=str(instrument.responsible_id), uses=uses_text(uses), notes=instrument.notes)


# The field a refusal is about, marked in the re-rendered form.
ERROR_FIELDS = {
    "asset_no_taken": "asset_no", "invalid_asset_no": "asset_no", "commissioning_in_future": "commissioned_on",
    "invalid_date": "commissioned_on", "unknown_responsible": "responsible_id", "no_parameters": "uses",
    "reason_required": "reason",
}


def _form_page(request: Request, session: Session, template: str, form: RegistryForm, *,
               error: DomainError | None = None, **extra: Any):
    context = {"form": form, "people": active_people(session), "kinds": list(InstrumentKind), **extra}
    if error is not None:
        context.update(error=error.message(current_language()), error_code=error.code,
                       error_field=ERROR_FIELDS.get(error.code, ""))
    return render(request, template, context, block="form",
                  status_code=error.http_status if error is not None else 200)


@router.get("/instruments/new", include_in_schema=False)
def new_instrument(request: Request, session: DbSession, user: User = require(Permission.INSTRUMENTS_MANAGE)):
    form = RegistryForm(responsible_id=str(user.id), commissioned_on=lab_calendar(session).today().isoformat())
    return _form_page(request, session, "instruments/new.html", form)


@router.post("/instruments", include_in_schema=False)
def register_instrument(request: Request, session: DbSession, asset_no: str = Form("", max_length=100),
                        name_zh: Short = "", name_en: Short = "", model: Short = "", manufacturer: Short = "",
                        serial_no: Short = "", location: Short = "",
                        kind: Annotated[str, Form(max_length=20)] = InstrumentKind.LABORATORY.value,
                        commissioned_on: Annotated[str, Form(max_length=20)] = "",
                        responsible_id: Annotated[str, Form(max_length=20)] = "", uses: Long = "",
                        notes: Long = "", user: User = require(Permission.INSTRUMENTS_MANAGE)):
    form = RegistryForm(asset_no, name_zh, name_en, model, manufacturer, serial_no, location, kind,
                        commissioned_on, responsible_id, uses, notes)
    try:
        with committing(session):
            instrument = service.register_instrument(
                session, user, asset_no=form.asset_no, uses=parse_uses(form.uses), **form.changes())
            asset = instrument.asset_no
    except IntegrityError:  # registered by someone else between the check and the insert
        return _form_page(request, session, "instruments/new.html", form,
                          error=errors.AssetNoTaken(asset_no=form.asset_no.strip()))
    except DomainError as error:
        if not refusal_shown_in_form(error):
            raise
        return _form_page(request, session, "instruments/new.html", form, error=error)
    return see_other(request, f"/instruments/{asset}")


# ---------------------------------------------------------------- attachments (by id)


def _download_name(filename: str) -> str:
    """Content-Disposition with an ASCII fallback and the real (perhaps Chinese) name."""
    fallback = re.sub(r'[^A-Za-z0-9._-]+', "_", filename).strip("_") or "attachment"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/instruments/attachments/{attachment_id}", include_in_schema=False)
def download_attachment(request: Request, session: DbSession, attachment_id: RowId,
                        user: User = require(Permission.INSTRUMENTS_READ)):
    row = session.execute(
        select(InstrumentAttachment, StoredFile).join(StoredFile, StoredFile.id == InstrumentAttachment.file_id)
        .where(InstrumentAttachment.id == attachment_id)
    ).first()
    if row is None:
        raise errors.RecordNotFound()
    attachment, stored = row
    store = file_store(request.app.state.settings.data_path)
    if not store.verify(stored.sha256):
        log.error("instrument attachment %s: stored file %s fails its SHA-256", attachment.id, stored.sha256)
        raise AttachmentAltered()
    return FileResponse(store.path(stored.sha256), media_type=stored.media_type,
                        headers={"Content-Disposition": _download_name(stored.filename),
                                 "Cache-Control": "private, no-store"})


# ---------------------------------------------------------------- one instrument


def _detail_page(request: Request, session: Session, instrument: Instrument, **extra: Any):
    detail = queries.instrument_detail(session, instrument)
    return render(request, "instruments/detail.html", {
        "detail": detail, "instrument": instrument, "reading": detail.reading,
        "valid_until": last_valid_day(lab_calendar(session)), "attachment_kinds": ATTACHMENT_KINDS, **extra,
    })


@router.get("/instruments/{asset_no:path}/edit", include_in_schema=False)
def edit_instrument(request: Request, session: DbSession, asset_no: str,
                    user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    form = RegistryForm.of(instrument, service.uses_of(session, instrument))
    return _form_page(request, session, "instruments/edit.html", form, instrument=instrument, reason="")


@router.post("/instruments/{asset_no:path}/edit", include_in_schema=False)
def update_instrument(request: Request, session: DbSession, asset_no: str, name_zh: Short = "",
                      name_en: Short = "", model: Short = "", manufacturer: Short = "", serial_no: Short = "",
                      location: Short = "", kind: Annotated[str, Form(max_length=20)] = InstrumentKind.LABORATORY.value,
                      commissioned_on: Annotated[str, Form(max_length=20)] = "",
                      responsible_id: Annotated[str, Form(max_length=20)] = "", uses: Long = "", notes: Long = "",
                      reason: Reason = "", user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    form = RegistryForm(instrument.asset_no, name_zh, name_en, model, manufacturer, serial_no, location, kind,
                        commissioned_on, responsible_id, uses, notes)
    try:
        with committing(session):
            service.update_instrument(session, user, instrument, reason=reason, uses=parse_uses(form.uses),
                                      **form.changes())
    except DomainError as error:
        if not refusal_shown_in_form(error):
            raise
        instrument = find_instrument(session, asset_no)
        return _form_page(request, session, "instruments/edit.html", form, error=error, instrument=instrument,
                          reason=reason)
    return see_other(request, f"/instruments/{instrument.asset_no}")


@router.post("/instruments/{asset_no:path}/out-of-service", include_in_schema=False)
def take_out_of_service(request: Request, session: DbSession, asset_no: str, reason: Reason = "",
                        user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    with committing(session):
        service.take_out_of_service(session, user, instrument, reason)
    return see_other(request, f"/instruments/{instrument.asset_no}")


@router.post("/instruments/{asset_no:path}/retire", include_in_schema=False)
def retire_instrument(request: Request, session: DbSession, asset_no: str, reason: Reason = "",
                      user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    with committing(session):
        service.retire_instrument(session, user, instrument, reason)
    return see_other(request, f"/instruments/{instrument.asset_no}")


@router.post("/instruments/{asset_no:path}/attachments", include_in_schema=False)
def add_attachment(request: Request, session: DbSession, asset_no: str, file: Annotated[UploadFile, File()],
                   title: Short = "", kind: Annotated[str, Form(max_length=20)] = "other",
                   user: User = require(Permission.INSTRUMENTS_MANAGE)):
    instrument = find_instrument(session, asset_no)
    settings = request.app.state.settings
    with committing(session):
        service.add_attachment(session, user, instrument, file_store(settings.ensure_data_dir()),
                               service.Upload(file.file, file.filename or "attachment"), title=title, kind=kind,
                               max_bytes=settings.max_upload_mb * 1024 * 1024)
    return see_other(request, f"/instruments/{instrument.asset_no}")  # no #fragment: htmx would not reload


@router.get("/instruments/{asset_no:path}/traceability.pdf", include_in_schema=False)
def traceability_pdf(request: Request, session: DbSession, asset_no: str, at: str = Query("", max_length=32),
                     user: User = require(Permission.INSTRUMENTS_READ)):
    from app.instruments.printing import traceability_pdf as print_traceability

    instrument = find_instrument(session, asset_no)
    calendar = lab_calendar(session)
    moment = parse_moment(at, calendar)
    pdf = print_traceability(session, instrument, moment, language=current_language())
    name = f"traceability-{re.sub(r'[^A-Za-z0-9._-]+', '-', instrument.asset_no)}-{calendar.local_date(moment)}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, no-store"})


@router.get("/instruments/{asset_no:path}/traceability", include_in_schema=False)
def traceability(request: Request, session: DbSession, asset_no: str, at: str = Query("", max_length=32),
                 user: User = require(Permission.INSTRUMENTS_READ)):
    instrument = find_instrument(session, asset_no)
    calendar = lab_calendar(session)
    moment = parse_moment(at, calendar)
    trace = queries.traceability_at(session, instrument, moment)
    local = moment.astimezone(calendar.tz)
    return render(request, "instruments/traceability.html", {
        "trace": trace, "instrument": instrument, "at_value": local.strftime("%Y-%m-%dT%H:%M"),
        "at_query": query_string({"at": local.strftime("%Y-%m-%dT%H:%M")}),
        "valid_until": last_valid_day(calendar),
    })


@router.get("/instruments/{asset_no:path}", include_in_schema=False)
def instrument_page(request: Request, session: DbSession, asset_no: str,
                    user: User = require(Permission.INSTRUMENTS_READ)):
    return _detail_page(request, session, find_instrument(session, asset_no))


# ---------------------------------------------------------------- shell contributions


def _count(status: InstrumentStatus):
    def count(session: Session, user: User) -> int:
        return queries.count_in_status(session, status)

    return count


def _awaiting_my_confirmation(session: Session, user: User) -> int:
    return queries.count_awaiting_acceptance(session, user.id)


def _open_impacts(session: Session, user: User) -> int:
    return impact.open_count(session)


def _scan_asset_no(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned asset label opens the instrument (a label printed in upper case matches either way)."""
    if Permission.INSTRUMENTS_READ not in permissions or not service.ASSET_NO_RE.match(code):
        return None
    found = list(session.scalars(select(Instrument.asset_no).where(
        func.lower(Instrument.asset_no) == code.lower()).limit(5)))
    if not found:
        return None
    asset_no = code if code in found else found[0]
    return ScanHit(f"/instruments/{asset_no}", asset_no)


add_nav(NavItem("instruments", N_("Instruments"), "/instruments", Permission.INSTRUMENTS_READ, 30))
add_worklist(
    Worklist("instruments_overdue", N_("Instruments overdue"), Permission.INSTRUMENTS_MANAGE,
             "/instruments?status=overdue", _count(InstrumentStatus.OVERDUE), 30),
    Worklist("instruments_due_soon", N_("Instruments due soon"), Permission.INSTRUMENTS_MANAGE,
             "/instruments?status=due_soon", _count(InstrumentStatus.DUE_SOON), 31),
    Worklist("instrument_confirmations", N_("Certificates awaiting my confirmation"), Permission.INSTRUMENTS_CONFIRM,
             "/instruments/confirmations", _awaiting_my_confirmation, 32),
    Worklist("instrument_impacts", N_("Impact assessments awaiting disposition"), Permission.INSTRUMENTS_DISPOSE,
             "/instruments/impact?status=open", _open_impacts, 33),
)
add_scan_resolver("asset_no", _scan_asset_no)
