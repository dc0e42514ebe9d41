"""The sampler's phone pages: today's tasks, one task with its samples and containers, and the
three posts the phone's queue makes (a field entry, a photo, the signature).

The pages use their own slim layout (field/base.html: field.css, field.js, idb-keyval) so a task
page loads in well under 100 KB on a field connection. The phone gives every entry its id before
sending and queues it in IndexedDB; the server records each id once (the service is idempotent on
it), so a queued resend after a lost answer changes nothing. Entries come as JSON from the queue
and as plain form posts from a phone without JavaScript; refusals come back as problem JSON to
the queue (shown beside the entry) and as the task page with the message to a plain form.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from uuid import uuid4

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core.auth import DbSession, require
from app.core.db import committing, utcnow
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.files import FileStore, file_store
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import render, see_other
from app.people.models import User
from app.samples import field
from app.samples.models import ContainerState, FieldEntry, PreservationRule, Sample, SampleKind
from app.samples.names import CONTAINER_STATE_NAMES, KIND_NAMES, QC_READERS, STATE_NAMES
from app.samples.registration import container_by_barcode, sample_by_no
from app.sites import plans
from app.sites.models import SamplingTask
from app.sites.plan_errors import TaskNotFound

router = APIRouter()

BASE = "/field"
TaskCode = Annotated[str, Path(max_length=40)]
SampleNo = Annotated[str, Path(max_length=60)]
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ENTRY_FIELDS = ("client_id", "sample_no", "kind", "act_at", "reason", "gps_status", "latitude", "longitude",
                "accuracy_m", "justification", "weather", "air_temperature", "observations", "parameter",
                "value", "unit", "instrument", "barcode", "task_code")
ENTRY_LIMITS = {"observations": 2000, "justification": 500, "reason": 500}
WEATHER = (("sunny", N_("Sunny")), ("cloudy", N_("Cloudy")), ("overcast", N_("Overcast")), ("rain", N_("Rain")),
           ("snow", N_("Snow")), ("fog", N_("Fog")), ("windy", N_("Windy")))
TASK_STATES = {
    "scheduled": N_("Scheduled"), "dispatched": N_("Dispatched"), "in_field": N_("In the field"),
    "completed": N_("Completed"), "cancelled": N_("Cancelled"),
}
# who may know which samples are field QC (the analyst stays blind, DOMAIN.md §3): as the sample pages
# the sampler works the routine sample first; the QC samples follow it
KIND_ORDER = {"routine": 0, "client": 0, "field_duplicate": 1, "field_blank": 2, "transport_blank": 3}


# ---------------------------------------------------------------- refusals at the edge


class MalformedDay(InvalidInput):
    code = "malformed_day"
    message_zh = "日期无效（格式：年-月-日，如 2026-05-01）：{value}"
    message_en = "Not a valid day (year-month-day, e.g. 2026-05-01): {value}"


class MalformedActTime(InvalidInput):
    code = "malformed_act_time"
    message_zh = "现场时间无效（应为带时区的 ISO 时间，如 2026-05-01T01:30:00Z）：{value}"
    message_en = "Not a valid time of the act (ISO time with its offset, e.g. 2026-05-01T01:30:00Z): {value}"


class MalformedEntry(InvalidInput):
    code = "malformed_field_entry"
    message_zh = "现场记录格式无效：{detail_zh}"
    message_en = "The field entry is malformed: {detail_en}"


# ---------------------------------------------------------------- the pages' read models


@dataclass
class SamplePanel:
    """One sample of the task as the sampler works on it: what it is (routine, blank, duplicate
    — the sampler knows, the analyst will not), its containers and its record so far."""

    sample: Sample
    duplicate_of: str
    record: field.FieldRecordView
    field_tests: list[PreservationRule]
    sees_qc: bool = True

    @property
    def kind(self) -> str:
        """The sample's kind, or "" for a reader who must stay blind to field QC."""
        return self.sample.kind if self.sees_qc else ""

    @property
    def kind_name(self) -> str:
        return str(KIND_NAMES.get(self.kind, N_("Sample")))

    @property
    def is_qc(self) -> bool:
        return self.sample.kind != SampleKind.ROUTINE.value and self.sample.kind != SampleKind.CLIENT.value

    @property
    def filled(self) -> int:
        return sum(1 for c in self.record.containers if c.state not in FILLABLE)


@dataclass
class TaskPage:
    view: plans.TaskView
    panels: list[SamplePanel]
    can_record: bool
    radius_m: int
    weather: tuple[tuple[str, Any], ...] = WEATHER

    @property
    def containers_total(self) -> int:
        return sum(len(p.record.containers) for p in self.panels)

    @property
    def containers_filled(self) -> int:
        return sum(p.filled for p in self.panels)

    @property
    def default_sample(self) -> str:
        routine = [p for p in self.panels if not p.is_qc]
        return (routine or self.panels)[0].sample.sample_no if self.panels else ""

    @property
    def open_panels(self) -> list[SamplePanel]:
        """Samples that still take entries (not closed by custody or cancelled)."""
        return [p for p in self.panels if p.sample.state in ("registered", "collected")]

    @property
    def tested_panels(self) -> list[SamplePanel]:
        return [p for p in self.open_panels if p.field_tests]

    @property
    def any_signed(self) -> bool:
        return any(p.record.signed for p in self.panels)


@dataclass
class TaskCard:
    """A task on the day's list: the big card the sampler taps."""

    item: field.SamplerTask

    @property
    def parameters(self) -> list[str]:
        return plans.task_parameters(self.item.task)

    @property
    def containers_total(self) -> int:
        return sum(len(s.containers) for s in self.item.samples)

    @property
    def containers_filled(self) -> int:
        return sum(1 for s in self.item.samples for c in s.containers if c.state not in FILLABLE)

    @property
    def signed(self) -> int:
        return sum(1 for s in self.item.samples if s.signed)


FILLABLE = (ContainerState.PREPARED.value, ContainerState.ISSUED.value)


def task_page(session: Session, user: User, code: str, permissions: frozenset[Permission]) -> TaskPage:
    """The task, its site, and per sample its containers and field record. The frame is one
    read (plans.task_view); the records are the field service's fold, read for all the samples
    at once (a fixed number of queries however many samples the task has)."""
    task = plans.task_by_code(session, code)
    view = plans.task_view(session, task)
    tests = {rule.parameter: rule for rule in view.field_tests}
    numbers = {line.sample.id: line.sample.sample_no for line in view.samples}
    sees_qc = bool(QC_READERS & permissions)
    records = field.field_records(session, [line.sample for line in view.samples])
    panels = []
    for line in view.samples:
        sample = line.sample
        record = records[sample.id]
        panels.append(SamplePanel(sample, numbers.get(sample.duplicate_of_id or 0, "") if sees_qc else "", record,
                                  [tests[p] for p in record.requested_field_tests if p in tests], sees_qc))
    panels.sort(key=lambda p: (KIND_ORDER.get(p.kind, 0), p.sample.sample_no))
    can_record = task.sampler_id == user.id and Permission.FIELD_RECORD in permissions
    return TaskPage(view, panels, can_record, settings_of(session).gps_warning_radius_m)


def parse_day(session: Session, text: str) -> date:
    value = (text or "").strip()
    if not value:
        return lab_calendar(session).today()
    try:
        if not DAY_RE.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
        if not 2000 <= day.year <= 2999:
            raise ValueError(value)
    except ValueError:
        raise MalformedDay(value=value[:20]) from None
    return day


# ---------------------------------------------------------------- pages


def shown_in_page(error: DomainError) -> bool:
    """A refusal the sampler can act on (a wrong password, a missing item, a bad scan) is shown
    on the task page, with everything else they entered still there; who-may refusals get the
    error page."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and 400 <= error.http_status < 500


def _page(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None) -> Response:
    if error is not None:
        context = {**context, "refused": True, "code": error.code, "detail": error.message(current_language())}
    return render(request, template, context, status_code=error.http_status if error else 200)


@router.get(BASE, include_in_schema=False)
def today(request: Request, session: DbSession,
          day: Annotated[str, Query(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "",
          user: User = require(Permission.SAMPLES_READ)):
    """The signed-in sampler's tasks of one lab-local day (today unless asked), open ones first."""
    shown = parse_day(session, day)
    today_ = lab_calendar(session).today()
    tasks = [TaskCard(item) for item in field.tasks_for_sampler(session, user, shown)]
    return _page(request, "field/today.html", {
        "tasks": tasks, "day": shown, "today": today_, "yesterday": shown - timedelta(days=1),
        "tomorrow": shown + timedelta(days=1), "can_record": Permission.FIELD_RECORD in request.state.permissions,
        "state_name": state_name, "container_state_name": container_state_name,
    })


def _task_page(request: Request, session: Session, user: User, code: str, *,
               error: DomainError | None = None, signed: str = "") -> Response:
    page = task_page(session, user, code, getattr(request.state, "permissions", frozenset()))
    return _page(request, "field/task.html", {
        "page": page, "view": page.view, "signed": signed, "new_client_id": uuid4().hex,
        "params_of": container_parameters, "weather_name": weather_name, "thumb_of": thumbnail_url,
        "state_name": state_name, "container_state_name": container_state_name,
    }, error=error)


def container_parameters(container: Any) -> list[str]:
    try:
        found = json.loads(container.parameters or "[]")
    except ValueError:
        return []
    return [str(p) for p in found] if isinstance(found, list) else []


def weather_name(code: str) -> str:
    return str(dict(WEATHER).get(code, code))


def state_name(state: str) -> str:
    """A task's or a sample's state in the reader's words."""
    return str(TASK_STATES.get(state) or STATE_NAMES.get(state) or state)


def container_state_name(state: str) -> str:
    return str(CONTAINER_STATE_NAMES.get(state, state))


@router.get(f"{BASE}/tasks/{{task_code}}", include_in_schema=False)
def task(request: Request, session: DbSession, task_code: TaskCode,
         signed: Annotated[str, Query(max_length=60)] = "", user: User = require(Permission.SAMPLES_READ)):
    return _task_page(request, session, user, task_code, signed=signed)


# ---------------------------------------------------------------- a field entry


@dataclass
class SentEntry:
    """What the phone sent: the entry's fields, whether as JSON (the queue) or as a plain form,
    and, for a plain form, every sample it ticked."""

    fields: dict[str, Any]
    as_json: bool
    samples: list[str]


async def entry_fields(request: Request) -> SentEntry:
    """The entry as sent: a JSON object from the phone's queue, or a plain form (no JavaScript)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise MalformedEntry(detail_zh="不是有效的 JSON", detail_en="not valid JSON") from None
        if not isinstance(data, dict):
            raise MalformedEntry(detail_zh="应为一个 JSON 对象", detail_en="a JSON object expected")
        return SentEntry(data, True, [])
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form()
        except Exception:  # a broken multipart body
            raise MalformedEntry(detail_zh="表单无法解析", detail_en="the form cannot be read") from None
        samples = [v.strip() for v in form.getlist("sample_no") if isinstance(v, str) and v.strip()]
        return SentEntry({name: form.get(name) for name in form}, False, samples)
    raise MalformedEntry(detail_zh="应为 JSON 或表单", detail_en="JSON or a form expected")


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedEntry(detail_zh=f"{name} 应为文本", detail_en=f"{name} must be text")
    if len(value) > ENTRY_LIMITS.get(name, 200):
        raise MalformedEntry(detail_zh=f"{name} 过长", detail_en=f"{name} is too long")
    return value.strip()


def parse_act_time(text: str) -> datetime:
    """The phone's clock in UTC ISO form (`2026-05-01T01:30:00.000Z`); a plain form without a
    time means now."""
    if not text:
        return utcnow()
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        if not 2000 <= moment.year <= 2999:
            raise ValueError(text)
    except ValueError:
        raise MalformedActTime(value=text[:40]) from None
    return moment


def entry_input(data: dict[str, Any]) -> field.FieldEntryInput:
    """The service's input from what was sent. Numbers stay text (the service reads them as
    Decimal, never float); a JSON number is refused by the service for the same reason."""
    values = {name: _text(data, name) for name in ENTRY_FIELDS if name != "act_at"}
    for name in ("latitude", "longitude", "accuracy_m", "air_temperature", "gps_status"):
        values[name] = values[name] or None  # blank: not given
    return field.FieldEntryInput(**{**values, "act_at": parse_act_time(_text(data, "act_at"))})


def problem(request: Request, error: DomainError) -> JSONResponse:
    """A refusal as RFC 9457 problem JSON in the reader's language, with both texts for a phone
    that switches language later."""
    language = current_language()
    body = {
        "type": f"urn:envirolims:error:{error.code}", "title": error.message(language), "status": error.http_status,
        "code": error.code, "detail": error.message(language), "instance": request.url.path,
        "message_zh": error.message("zh"), "message_en": error.message("en"),
    }
    return JSONResponse(body, status_code=error.http_status, media_type="application/problem+json")


def _record(request: Request, session: Session, user: User, entry: field.FieldEntryInput) -> field.FieldEntryOutcome:
    try:
        with committing(session):
            return field.record_field_entry(session, user, entry)
    except IntegrityError:
        # a concurrent twin with the same client id won: answer as the repeat it is
        with request.app.state.db.transaction() as fresh:
            return field.record_field_entry(fresh, fresh.merge(user), entry)


def outcome_json(outcome: field.FieldEntryOutcome, entry: field.FieldEntryInput) -> dict[str, Any]:
    row = outcome.entry
    payload = json.loads(row.payload or "{}")
    body: dict[str, Any] = {
        "status": "recorded" if outcome.created else "duplicate", "client_id": row.client_id,
        "entry_id": row.id, "kind": row.kind, "sample_no": entry.sample_no, "revision": row.revision,
    }
    for key in ("distance_m", "radius_m", "warning", "gps_status"):
        if key in payload:
            body[key] = payload[key]
    if outcome.notice is not None:
        body["notice"] = {"code": outcome.notice.code, "message": outcome.notice.message(current_language())}
    return body


@router.post(f"{BASE}/entries", include_in_schema=False)
def record_entry(request: Request, session: DbSession, user: User = require(Permission.FIELD_RECORD),
                 sent: SentEntry = Depends(entry_fields)):
    """One act in the field. From the queue (JSON): {status: recorded|duplicate, ...} or problem
    JSON. From a plain form: back to the task page, or the page with the refusal."""
    data = sent.fields
    try:
        entry = entry_input(data)
        if entry.kind == "container" and not entry.sample_no and entry.barcode:
            # a scan from a page without JavaScript: the container says whose it is
            entry.sample_no = sample_of_container(session, entry.barcode)
        form_id, now = entry.client_id, entry.act_at
        for n, sample_no in enumerate(sent.samples or [entry.sample_no]):
            if len(sent.samples) > 1:  # a plain form ticking several samples: one entry each
                entry.sample_no, entry.client_id = sample_no[:60], f"{form_id[:56]}-{n}"
            if not sent.as_json and not _text(data, "act_at"):
                entry.act_at = _first_submission_time(session, entry.client_id) or now
            outcome = _record(request, session, user, entry)
    except DomainError as error:
        if sent.as_json:
            return problem(request, error)
        if not shown_in_page(error):
            raise
        return _back_with_refusal(request, session, user, data, error)
    if sent.as_json:
        return JSONResponse(outcome_json(outcome, entry), status_code=201 if outcome.created else 200)
    return see_other(request, _back_url(session, data, entry.sample_no))


def _first_submission_time(session: Session, client_id: str) -> datetime | None:
    """A plain form has no time of its own (the server's clock stands in): a second submission
    of the same form (a double tap) takes the first one's time, so it is the repeat it is."""
    return session.scalars(select(FieldEntry.act_at).where(FieldEntry.client_id == client_id[:64])).first()


def sample_of_container(session: Session, barcode: str) -> str:
    """The number of the sample a scanned container belongs to (its clear refusals pass on)."""
    container = container_by_barcode(session, barcode)
    return session.get(Sample, container.sample_id).sample_no


def _task_code_of(session: Session, data: dict[str, Any], sample_no: str) -> str:
    code = data.get("task_code") if isinstance(data.get("task_code"), str) else ""
    if code:
        return code.strip()
    sample = session.scalars(_sample_query(sample_no)).first() if sample_no else None
    if sample is not None and sample.task_id:
        task = session.get(SamplingTask, sample.task_id)
        return task.code if task else ""
    return ""


def _sample_query(sample_no: str) -> Any:
    return select(Sample).where(Sample.sample_no == sample_no.strip()[:60])


def _back_url(session: Session, data: dict[str, Any], sample_no: str) -> str:
    code = _task_code_of(session, data, sample_no)
    return f"{BASE}/tasks/{code}#sample-{sample_no}" if code else BASE


def _back_with_refusal(request: Request, session: Session, user: User, data: dict[str, Any],
                       error: DomainError) -> Response:
    """A plain form's refusal: the task page with the message (nothing was recorded)."""
    sample_no = data.get("sample_no") if isinstance(data.get("sample_no"), str) else ""
    code = _task_code_of(session, data, sample_no or "")
    if not code:
        raise error
    try:
        return _task_page(request, session, user, code, error=error)
    except TaskNotFound:
        raise error from None


# ---------------------------------------------------------------- a photo


def store_of(request: Request) -> FileStore:
    return file_store(request.app.state.settings.ensure_data_dir())


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


@router.post(f"{BASE}/photos", include_in_schema=False)
def upload_photo(request: Request, session: DbSession, photo: Annotated[UploadFile, File()],
                 sample_no: Annotated[str, Form(max_length=60)], client_id: Annotated[str, Form(max_length=64)],
                 caption: Annotated[str, Form(max_length=300)] = "", reason: Annotated[str, Form(max_length=500)] = "",
                 task_code: Annotated[str, Form(max_length=40)] = "",
                 user: User = require(Permission.FIELD_RECORD)):
    """A photo from the queue (multipart, with the phone's client id): stored once by its id."""
    from app.samples import photos

    as_json = wants_json(request)
    try:
        with committing(session):
            outcome = photos.add_photo(session, user, store_of(request), sample_no=sample_no, client_id=client_id,
                                       stream=photo.file, filename=photo.filename or "photo", caption=caption,
                                       reason=reason)
    except IntegrityError:  # a concurrent twin with the same client id won: the repeat it is
        photo.file.seek(0)
        with request.app.state.db.transaction() as fresh:
            outcome = photos.add_photo(fresh, fresh.merge(user), store_of(request), sample_no=sample_no,
                                       client_id=client_id, stream=photo.file, filename=photo.filename or "photo",
                                       caption=caption, reason=reason)
    except DomainError as error:
        if as_json:
            return problem(request, error)
        if not shown_in_page(error):
            raise
        return _back_with_refusal(request, session, user, {"sample_no": sample_no, "task_code": task_code}, error)
    if as_json:
        saved = outcome.photo
        return JSONResponse({
            "status": "recorded" if outcome.created else "duplicate", "client_id": saved.client_id,
            "photo_id": saved.id, "sample_no": sample_no, "sha256": saved.sha256,
            "thumbnail_url": thumbnail_url(sample_no, saved),
        }, status_code=201 if outcome.created else 200)
    return see_other(request, _back_url(session, {"task_code": task_code}, sample_no))


def thumbnail_url(sample_no: str, photo: Any) -> str:
    """Where the field-record API serves a photo's thumbnail (the phone's session may read it)."""
    return f"/api/v1/samples/{quote(sample_no, safe='')}/photos/{photo.id}/thumbnail"


# ---------------------------------------------------------------- signing


@router.post(f"{BASE}/samples/{{sample_no}}/sign", include_in_schema=False)
def sign(request: Request, session: DbSession, sample_no: SampleNo,
         password: Annotated[str, Form(max_length=200)] = "", user: User = require(Permission.FIELD_RECORD)):
    """The sampler signs the sample's field record (meaning `sampled`) with the password again.
    A plain form post: it needs the network anyway, and works without JavaScript."""
    sample = sample_by_no(session, sample_no)
    code = _task_code_of(session, {}, sample.sample_no)
    try:
        with committing(session):
            field.sign_field_record(session, user, sample, password)
    except DomainError as error:
        if not shown_in_page(error) or not code:
            raise
        return _task_page(request, session, user, code, error=error)
    if not code:
        return see_other(request, f"/samples/{sample.sample_no}")
    return see_other(request, f"{BASE}/tasks/{code}?signed={sample.sample_no}#sample-{sample.sample_no}")


add_nav(NavItem("field", N_("Field (phone)"), BASE, Permission.FIELD_RECORD, 45))
