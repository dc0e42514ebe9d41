"""Pages of samples: the worklist (filters by state, day, site, task, kind; search by sample
number or container barcode), one sample with its containers, parameters, QC links and field
record, ad hoc registration one at a time or in bulk (a CSV with a header row, or N samples
alike), and label printing for chosen samples or a task.

Routes are thin: parse the form, call one service inside `committing(session)`; a refusal the
form can fix renders the same page with the message and what was typed (nothing saved).
Registering dispatches nothing: tasks are dispatched from their page (app.sites.plan_routes).
Who sees what a field QC sample is follows the task page: those who plan, register, take or
judge samples; analysts stay blind (DOMAIN.md §3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import pager_base, render, see_other
from app.people.models import User
from app.samples import errors, labels, queries, registration
from app.samples.field import field_record
from app.samples.lab_sections import lab_section_templates, lab_sections
from app.samples.models import PreservationRule, Sample
from app.samples.names import CONTAINER_STATE_NAMES, KIND_NAMES, MATRIX_NAMES, QC_READERS, STATE_NAMES
from app.samples.registration import AdhocSample

router = APIRouter()

BASE = "/samples"
SampleNo = Annotated[str, Path(max_length=60)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Filter = Annotated[str, Query(max_length=60)]
Short = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=500)]
Small = Annotated[str, Form(max_length=40)]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_ALIKE = 500
# the form field a refusal is about, marked in the re-rendered form
ERROR_FIELDS = {
    "no_parameters": "parameters", "unknown_parameter": "parameters", "mixed_matrix": "parameters",
    "site_code_unknown": "site_code", "site_not_active": "site_code", "site_not_yet_active": "site_code",
    "site_not_usable": "site_code", "location_required": "location_text", "sampler_unknown": "sampler",
    "bad_date": "scheduled_on", "invalid_label_position": "start", "sample_not_found": "samples",
    "task_not_found": "task",
}


class BadDate(InvalidInput):
    code = "bad_date"
    message_zh = "采样日期不是有效日期（格式：年-月-日，如 2026-03-12）：{value}"
    message_en = "The sampling day is not a date (year-month-day, e.g. 2026-03-12): {value}"


class BadCount(InvalidInput):
    code = "bad_count"
    message_zh = "样品数量须为 1–{most} 的整数：{value}"
    message_en = "The number of samples must be a whole number from 1 to {most}: {value}"


class CsvRequired(InvalidInput):
    code = "csv_required"
    message_zh = "请选择一个 CSV 文件（UTF-8，第一行为列名），大小不超过 2 MB。"
    message_en = "Choose a CSV file (UTF-8, a header row first) of at most 2 MB."


class NothingToLabel(InvalidInput):
    code = "nothing_to_label"
    message_zh = "请填写样品编号或任务编号。"
    message_en = "Give sample numbers or a task code."


# ---------------------------------------------------------------- helpers


def parse_day(text: str) -> date:
    value = (text or "").strip()
    try:
        if not DATE_RE.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise BadDate(value=value[:20] or "—") from None
    if not registration.EARLIEST_DAY <= day <= registration.LATEST_DAY:
        raise BadDate(value=value)
    return day


def filter_day(text: str) -> date | None:
    """A filter's day: anything not a date is no filter (a list never refuses its query)."""
    value = (text or "").strip()
    if not DATE_RE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def shown_in_page(error: DomainError) -> bool:
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (404, 409, 422)


def attempt(session: Session, act: Callable[[], Any]) -> tuple[Any, DomainError | None]:
    """Run one service call in the unit of work; a refusal the page can show is returned."""
    try:
        with committing(session):
            return act(), None
    except DomainError as error:
        if not shown_in_page(error):
            raise
        return None, error


def refusal(error: DomainError | None) -> dict[str, Any]:
    if error is None:
        return {}
    rows = getattr(error, "rows", None)
    zh = current_language().startswith("zh")
    listed = [{"row": n, "message": z if zh else e} for n, z, e in rows] if rows else []
    return {"refused": True, "code": error.code, "detail": error.message(current_language()),
            "error_field": ERROR_FIELDS.get(error.code, ""), "row_errors": listed}


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"kind_names": KIND_NAMES, "state_names": STATE_NAMES, "container_state_names": CONTAINER_STATE_NAMES,
            "matrix_names": MATRIX_NAMES, "sees_qc": sees_qc(request), "container_parameters": container_parameters,
            **context, **refusal(error)}
    status = error.http_status if error else 200
    return render(request, template, full, block=block, status_code=status)


def container_parameters(container: Any) -> list[str]:
    return list(json.loads(container.parameters or "[]"))


def sees_qc(request: Request) -> bool:
    return bool(QC_READERS & getattr(request.state, "permissions", frozenset()))


def pdf_response(data: bytes, filename: str) -> Response:
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})


@dataclass
class AdhocForm:
    """What the ad hoc form holds, as typed."""

    client_name: str = ""
    client_contact: str = ""
    site_code: str = ""
    location_text: str = ""
    matrix: str = "water"
    parameters: str = ""  # space separated codes
    scheduled_on: str = ""
    sampler: str = ""
    note: str = ""
    count: str = "1"

    def sample(self) -> AdhocSample:
        return AdhocSample(
            client_name=self.client_name, client_contact=self.client_contact, site_code=self.site_code,
            location_text=self.location_text, matrix=self.matrix or "water",
            parameters=registration.split_parameters(self.parameters), scheduled_on=parse_day(self.scheduled_on),
            sampler=self.sampler.strip() or None, note=self.note)


def form_choices(session: Session) -> dict[str, Any]:
    """Parameters by matrix (the preservation table's default rows) and the samplers now."""
    from app.sites.plans import samplers_now

    rules = session.scalars(select(PreservationRule).where(PreservationRule.method == "")
                            .order_by(PreservationRule.matrix, PreservationRule.id)).all()
    by_matrix: dict[str, list[PreservationRule]] = {}
    for rule in rules:
        by_matrix.setdefault(rule.matrix, []).append(rule)
    return {"rules_by_matrix": by_matrix, "samplers": samplers_now(session), "matrices": registration.MATRICES}




# ---------------------------------------------------------------- the worklist


@router.get(BASE, include_in_schema=False)
def sample_list(request: Request, session: DbSession, q: Filter = "",
                state: Annotated[str, Query(pattern=f"^({'|'.join(queries.STATES)})?$")] = "",
                kind: Annotated[str, Query(pattern=f"^({'|'.join(queries.KINDS)})?$")] = "",
                day_from: Filter = "", day_to: Filter = "", site: Filter = "", task: Filter = "",
                page: PageNo = 1, user: User = require(Permission.SAMPLES_READ)):
    filters = queries.SampleFilters(q=q.strip(), state=state, kind=kind if sees_qc(request) else "",
                                    day_from=filter_day(day_from), day_to=filter_day(day_to),
                                    site=site.strip(), task=task.strip())
    size = request.app.state.settings.page_size
    result = queries.search_samples(session, filters, page=page, size=size)
    params = filters.as_params()
    return show(request, "samples/list.html", {
        "page": result, "filters": params, "pager_base": pager_base(BASE, params),
        "states": queries.STATES, "kinds": queries.KINDS,
    }, block="results")


# ---------------------------------------------------------------- ad hoc, one


@router.get(f"{BASE}/new", include_in_schema=False)
def new_sample(request: Request, session: DbSession, user: User = require(Permission.SAMPLES_REGISTER)):
    from app.core.labtime import lab_calendar

    form = AdhocForm(scheduled_on=lab_calendar(session).today().isoformat())
    return show(request, "samples/new.html", {"form": form, **form_choices(session)})


def _form_of(client_name: str, client_contact: str, site_code: str, location_text: str, matrix: str,
             parameters: list[str], scheduled_on: str, sampler: str, note: str, count: str = "1") -> AdhocForm:
    return AdhocForm(client_name=client_name, client_contact=client_contact, site_code=site_code,
                     location_text=location_text, matrix=matrix, parameters=" ".join(parameters)[:2000],
                     scheduled_on=scheduled_on, sampler=sampler, note=note, count=count)


ParameterList = Annotated[list[str], Form(max_length=80)]


@router.post(f"{BASE}/new", include_in_schema=False)
def register_sample(request: Request, session: DbSession, client_name: Short = "", client_contact: Short = "",
                    site_code: Small = "", location_text: Text = "", matrix: Small = "water",
                    parameters: ParameterList = [], scheduled_on: Small = "", sampler: Small = "",  # noqa: B006
                    note: Text = "", user: User = require(Permission.SAMPLES_REGISTER)):
    form = _form_of(client_name, client_contact, site_code, location_text, matrix, parameters, scheduled_on,
                    sampler, note)
    sample, error = attempt(session, lambda: registration.register_adhoc_sample(session, user, form.sample()))
    if error is not None:
        return show(request, "samples/new.html", {"form": form, **form_choices(session)}, error=error)
    return see_other(request, f"{BASE}/{sample.sample_no}")


# ---------------------------------------------------------------- ad hoc, many


@router.get(f"{BASE}/bulk", include_in_schema=False)
def bulk_form(request: Request, session: DbSession, user: User = require(Permission.SAMPLES_REGISTER)):
    from app.core.labtime import lab_calendar

    form = AdhocForm(scheduled_on=lab_calendar(session).today().isoformat(), count="10")
    return show(request, "samples/bulk.html", {"form": form, "columns": registration.CSV_COLUMNS,
                                               **form_choices(session)})


def _count(text: str) -> int:
    value = (text or "").strip()
    if not re.fullmatch(r"\d{1,4}", value) or not 1 <= int(value) <= MAX_ALIKE:
        raise BadCount(most=MAX_ALIKE, value=value[:10] or "—")
    return int(value)


async def _read_csv(upload: UploadFile | None) -> str:
    if upload is None or not upload.filename:
        raise CsvRequired()
    data = await upload.read(MAX_CSV_BYTES + 1)
    if not data or len(data) > MAX_CSV_BYTES:
        raise CsvRequired()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in a Chinese locale saves CSV as GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise CsvRequired()


@router.post(f"{BASE}/bulk", include_in_schema=False)
async def register_bulk(request: Request, session: DbSession,
                        mode: Annotated[str, Form(pattern="^(csv|alike)$")] = "alike",
                        csv_file: UploadFile | None = File(None), count: Small = "1", client_name: Short = "",
                        client_contact: Short = "", site_code: Small = "", location_text: Text = "",
                        matrix: Small = "water", parameters: ParameterList = [],  # noqa: B006
                        scheduled_on: Small = "", sampler: Small = "", note: Text = "",
                        user: User = require(Permission.SAMPLES_REGISTER)):
    """Hundreds at once, all or nothing: from a CSV (row errors listed by row number) or as N
    samples alike."""
    form = _form_of(client_name, client_contact, site_code, location_text, matrix, parameters, scheduled_on,
                    sampler, note, count)
    text = ""
    if mode == "csv":
        try:
            text = await _read_csv(csv_file)
        except DomainError as error:
            return _bulk_page(request, session, form, mode, error)

    def act() -> list[Sample]:
        if mode == "csv":
            rows, numbers = registration.parse_adhoc_csv(text)
            if not rows:
                raise CsvRequired()
            return registration.register_adhoc_samples(session, user, rows, row_numbers=numbers)
        return registration.register_adhoc_samples(session, user, [form.sample()] * _count(count))

    samples, error = attempt(session, act)
    if error is not None:
        return _bulk_page(request, session, form, mode, error)
    return show(request, "samples/bulk_done.html", {"samples": samples})


def _bulk_page(request: Request, session: Session, form: AdhocForm, mode: str, error: DomainError) -> Response:
    return show(request, "samples/bulk.html", {"form": form, "mode": mode, "columns": registration.CSV_COLUMNS,
                                               **form_choices(session)}, error=error)


# ---------------------------------------------------------------- labels


@router.get(f"{BASE}/labels", include_in_schema=False)
def label_form(request: Request, session: DbSession, task: Filter = "",
               samples: Annotated[str, Query(max_length=20_000)] = "",
               user: User = require(Permission.SAMPLES_REGISTER)):
    return show(request, "samples/labels.html", {"form": {"task": task.strip(), "samples": samples,
                                                          "format": "thermal", "start": "1"}})


@router.post(f"{BASE}/labels", include_in_schema=False)
def print_labels(request: Request, session: DbSession, task: Small = "",
                 samples: Annotated[str, Form(max_length=40_000)] = "",
                 format: Annotated[str, Form(max_length=10)] = "thermal",  # noqa: A002 - the form's name
                 start: Small = "1", user: User = require(Permission.SAMPLES_REGISTER)):
    """The label PDF of the samples named (one per line, or separated by spaces) or of a task."""
    form = {"task": task, "samples": samples, "format": format, "start": start}
    try:
        numbers = [n for n in re.split(r"[\s,;，；]+", samples) if n]
        if not numbers and not task.strip():
            raise NothingToLabel()
        chosen = labels.samples_by_numbers(session, numbers) if numbers else \
            labels.samples_of_task_code(session, task)
        position = int(start) if re.fullmatch(r"\d{1,3}", start.strip()) else 0
        data = labels.labels_pdf(session, chosen, format, start=position)
    except DomainError as error:
        if not shown_in_page(error):
            raise
        return show(request, "samples/labels.html", {"form": form}, error=error)
    name = (task.strip().upper() or chosen[0].sample_no) if chosen else "labels"
    return pdf_response(data, f"labels-{name}.pdf")


# ---------------------------------------------------------------- one sample


@router.get(f"{BASE}/{{sample_no}}", include_in_schema=False)
def sample_page(request: Request, session: DbSession, sample_no: SampleNo,
                user: User = require(Permission.SAMPLES_READ)):
    sample = registration.sample_by_no(session, sample_no)
    detail = queries.sample_detail(session, sample)
    return show(request, "samples/detail.html", {"view": detail, "record": field_record(session, sample),
                                                  "lab": lab_sections(session, sample, user),
                                                  "lab_templates": lab_section_templates()})


@router.get(f"{BASE}/{{sample_no}}/labels.pdf", include_in_schema=False)
def sample_labels(session: DbSession, sample_no: SampleNo,
                  format: Annotated[str, Query(pattern="^(thermal|a4)$")] = "thermal",  # noqa: A002
                  start: Annotated[int, Query(ge=1, le=24)] = 1,
                  user: User = require(Permission.SAMPLES_REGISTER)):
    sample = registration.sample_by_no(session, sample_no)
    return pdf_response(labels.labels_pdf(session, [sample], format, start=start), f"labels-{sample.sample_no}.pdf")


# ---------------------------------------------------------------- scanning


def _scan_sample(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned container label or a typed sample number opens the sample's page; a container
    barcode with a wrong check digit says so instead of "not found"."""
    if Permission.SAMPLES_READ not in permissions:
        return None
    cleaned = registration.clean_container_barcode(code)
    if registration.CONTAINER_RE.match(cleaned):
        try:
            container = registration.container_by_barcode(session, cleaned)
        except errors.ContainerNotFound:
            return None
        sample = session.get(Sample, container.sample_id)
        return ScanHit(f"{BASE}/{sample.sample_no}#container-{container.barcode}", container.barcode)
    try:
        sample = registration.sample_by_no(session, code)
    except errors.SampleNotFound:
        return None
    return ScanHit(f"{BASE}/{sample.sample_no}", sample.sample_no)


add_nav(NavItem("samples", N_("Samples"), BASE, Permission.SAMPLES_READ, 44))
add_scan_resolver("sample", _scan_sample)
