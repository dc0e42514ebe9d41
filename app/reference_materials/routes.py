"""Pages of reference materials, their lots and stock, and reagents: the searchable lists,
registration of a material and of a lot with its certificate, the lot page (units, receipt,
quarantine and withdrawal), and the page of one unit or reagent, reached by scanning its label,
with its acts (open, use, used up, dispose) and its label PDF.

Routes are thin: parse the form (times are the lab's wall-clock time), call one service inside
`committing(session)`, and on a refusal render the same page with the message and what was
typed (nothing saved); on success, see other. Standard-solution pages and the forward
traceability page are solution_routes.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import zip_longest
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import i18n
from app.core.auth import DbSession, require
from app.core.barcodes import A4_SHEET, Label, THERMAL_50x30, render_labels
from app.core.db import committing, utcnow
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.files import FileStore, StoredFile, file_store
from app.core.i18n import N_, current_language, gettext
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import pager_base, render, see_other
from app.instruments.service import Upload
from app.people.models import User
from app.reference_materials import errors, service, views
from app.reference_materials.models import (
    CertifiedValue,
    ItemKind,
    MaterialLot,
    ReagentLot,
    ReagentState,
    ReferenceMaterial,
    StockUnit,
    UnitState,
)

router = APIRouter()

BASE = "/reference-materials"
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Barcode = Annotated[str, Path(max_length=64)]
Short = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=500)]
Moment = Annotated[str, Form(max_length=32)]
Rows = Annotated[list[str], Form(max_length=200)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Search = Annotated[str, Query(max_length=100)]
UNIT_STATES = "|".join(s.value for s in UnitState)
REAGENT_STATES = "|".join(s.value for s in ReagentState)
BLANK_VALUE_ROWS = 6
MAX_VALUE_ROWS = 40


# ---------------------------------------------------------------- refusals of the forms


class MalformedDate(InvalidInput):
    code = "malformed_date"
    message_zh = "{label_zh}不是有效的日期（格式：年-月-日，如 2027-05-31）：{value}"
    message_en = "{label_en} is not a valid date (year-month-day, e.g. 2027-05-31): {value}"


class MalformedDateTime(InvalidInput):
    code = "malformed_datetime"
    message_zh = "{label_zh}不是有效的日期时间（如 2025-03-18T09:30，实验室当地时间）：{value}"
    message_en = "{label_en} is not a valid date and time (e.g. 2025-03-18T09:30, lab time): {value}"


class NotAWholeNumber(InvalidInput):
    code = "not_a_whole_number"
    message_zh = "{label_zh}必须是整数：{value}"
    message_en = "{label_en} must be a whole number: {value}"


class CertificateRequired(InvalidInput):
    code = "certificate_required"
    message_zh = "请上传标准物质证书 PDF 文件。"
    message_en = "Upload the certificate of the lot as a PDF file."


class NoValueRows(InvalidInput):
    code = "no_value_rows"
    message_zh = "请至少填写一行认定值（组分、量值、单位、U 与 k）。"
    message_en = "Enter at least one certified value (analyte, value, unit, U and k)."


class TooManyValueRows(InvalidInput):
    code = "too_many_value_rows"
    message_zh = "一个批次最多填写 {limit} 行量值。"
    message_en = "A lot takes at most {limit} rows of values."


LABELS = {
    "expires_on": ("有效期至", "The expiry date"),
    "received_at": ("接收时间", "The time of receipt"),
    "opened_at": ("开封时间", "The time of opening"),
    "used_at": ("使用时间", "The time of use"),
    "at": ("时间", "The time"),
    "effective_at": ("生效时间", "The effective time"),
    "opened_shelf_life_days": ("开封后有效天数", "The shelf life after opening"),
    "min_stock_units": ("最低库存", "The minimum stock"),
    "count": ("单元数", "The number of units"),
}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


# ---------------------------------------------------------------- parsing at the edge


def parse_day(text: str, field_name: str) -> date:
    value = (text or "").strip()
    zh, en = LABELS[field_name]
    try:
        if not DATE_RE.match(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
        if not 1900 <= day.year <= 2999:
            raise ValueError(value)
    except ValueError:
        raise MalformedDate(label_zh=zh, label_en=en, value=value[:32] or "—") from None
    return day


def parse_moment(session: Session, text: str, field_name: str) -> datetime:
    """A datetime-local field is the lab's wall-clock time (blank: now); the database keeps UTC."""
    value = (text or "").strip()
    if not value:
        return utcnow()
    zh, en = LABELS[field_name]
    try:
        if not DATETIME_RE.match(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
        if not 1900 <= parsed.year <= 2999:
            raise ValueError(value)
    except ValueError:
        raise MalformedDateTime(label_zh=zh, label_en=en, value=value[:32]) from None
    return parsed.replace(tzinfo=lab_calendar(session).tz).astimezone(UTC)


def parse_whole(text: str, field_name: str, *, blank: int | None = None) -> int | None:
    value = (text or "").strip()
    if not value:
        return blank
    zh, en = LABELS[field_name]
    if not re.fullmatch(r"\d{1,6}", value):
        raise NotAWholeNumber(label_zh=zh, label_en=en, value=value[:20])
    return int(value)


def local_input(session: Session, moment: datetime | None = None) -> str:
    """A UTC instant as the value of a datetime-local field, in the lab's time, to the minute."""
    return (moment or utcnow()).astimezone(lab_calendar(session).tz).strftime("%Y-%m-%dT%H:%M")


def store_of(request: Request) -> FileStore:
    return file_store(request.app.state.settings.ensure_data_dir())


def shown_in_page(error: DomainError) -> bool:
    """Input the form can fix is shown beside it, with the values entered; who-may refusals and
    unknown objects get the error page."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (409, 422)


def attempt(act: Callable[[], Any]) -> tuple[Any, DomainError | None]:
    """Run a parse-and-write step; a refusal the form can show is returned (all rolled back)."""
    try:
        return act(), None
    except DomainError as error:
        if not shown_in_page(error):
            raise
        return None, error


def refusal(error: DomainError | None, fields: dict[str, str]) -> dict[str, Any]:
    """The context that shows a refusal above the form (_error.html) and marks its field."""
    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language()),
            "error_field": fields.get(error.code, "")}


def display_helpers(session: Session) -> dict[str, Any]:
    tz = lab_calendar(session).tz
    return {"num": views.number, "expiry": lambda moment: views.expiry_text(moment, tz)}


def page_of(request: Request, session: Session, template: str, context: dict[str, Any], *,
            error: DomainError | None = None, fields: dict[str, str] | None = None,
            block: str | None = None) -> Response:
    full = {**display_helpers(session), **context, **refusal(error, fields or {})}
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


def get_material(session: Session, material_id: int) -> ReferenceMaterial:
    material = session.get(ReferenceMaterial, material_id)
    if material is None:
        raise errors.MaterialNotFound(certificate_no=f"#{material_id}")
    return material


def solution_url(barcode: str) -> str:
    return f"{BASE}/solutions/{barcode}"


def item_url(barcode: str) -> str:
    return f"{BASE}/items/{barcode}"


# ---------------------------------------------------------------- the lists




@router.get(BASE, include_in_schema=False)
def material_list(request: Request, session: DbSession, q: Search = "",
                  stock: Annotated[str, Query(pattern="^(low)?$")] = "", page: PageNo = 1,
                  user: User = require(Permission.MATERIALS_READ)):
    size = request.app.state.settings.page_size
    result = views.search_materials(session, q=q, stock=stock, page=page, size=size)
    params = {"q": q.strip(), "stock": stock}
    return page_of(request, session, "reference_materials/list.html", {
        "page": result, "filters": params, "pager_base": pager_base(BASE, params), "tab": "materials",
    }, block="results")


@router.get(f"{BASE}/units", include_in_schema=False)
def unit_list(request: Request, session: DbSession, q: Search = "",
              state: Annotated[str, Query(pattern=f"^({UNIT_STATES})?$")] = "",
              due: Annotated[str, Query(pattern="^(expiring|expired)?$")] = "", page: PageNo = 1,
              user: User = require(Permission.MATERIALS_READ)):
    size = request.app.state.settings.page_size
    result = views.search_units(session, q=q, state=state, due=due, page=page, size=size)
    params = {"q": q.strip(), "state": state, "due": due}
    return page_of(request, session, "reference_materials/units.html", {
        "page": result, "filters": params, "pager_base": pager_base(f"{BASE}/units", params), "tab": "units",
        "states": [s.value for s in UnitState], "window_days": lab_calendar(session).due_soon.days,
    }, block="results")


@router.get(f"{BASE}/reagents", include_in_schema=False)
def reagent_list(request: Request, session: DbSession, q: Search = "",
                 state: Annotated[str, Query(pattern=f"^({REAGENT_STATES})?$")] = "",
                 due: Annotated[str, Query(pattern="^(expiring|expired)?$")] = "", page: PageNo = 1,
                 user: User = require(Permission.MATERIALS_READ)):
    size = request.app.state.settings.page_size
    result = views.search_reagents(session, q=q, state=state, due=due, page=page, size=size)
    params = {"q": q.strip(), "state": state, "due": due}
    return page_of(request, session, "reference_materials/reagents.html", {
        "page": result, "filters": params, "pager_base": pager_base(f"{BASE}/reagents", params),
        "tab": "reagents", "states": [s.value for s in ReagentState],
        "window_days": lab_calendar(session).due_soon.days,
    }, block="results")


DUE_LISTS = {"expiring": N_("Expiring within %(days)d days"), "expired": N_("Expired, still in stock")}


@router.get(f"{BASE}/due", include_in_schema=False)
def due_list(request: Request, session: DbSession,
             which: Annotated[str, Query(alias="list", pattern="^(expiring|expired)$")] = "expiring",
             page: PageNo = 1, user: User = require(Permission.MATERIALS_READ)):
    """What the dashboard cards count: units, solutions and reagents on the shelf that expire
    within the window, or have expired and wait to be disposed of, soonest expiry first."""
    from app.core.web import Page
    from app.reference_materials import queries

    size = request.app.state.settings.page_size
    days = lab_calendar(session).due_soon.days
    offset = (page - 1) * size
    if which == "expiring":
        rows = queries.expiring_within(session, days, limit=size, offset=offset)
        total = queries.count_expiring_within(session, days)
    else:
        rows = queries.expired_in_stock(session, limit=size, offset=offset)
        total = queries.count_expired_in_stock(session)
    return page_of(request, session, "reference_materials/due.html", {
        "page": Page(rows, page, size, total), "list": which, "title": str(DUE_LISTS[which]) % {"days": days},
        "pager_base": pager_base(f"{BASE}/due", {"list": which}), "tab": "due", "window_days": days,
    }, block="results")


# ---------------------------------------------------------------- a material: register, view, edit


@dataclass
class MaterialForm:
    """The master data as typed (strings), so a refused form comes back as it was."""

    certificate_no: str = ""
    name_zh: str = ""
    name_en: str = ""
    producer: str = ""
    matrix: str = ""
    storage_conditions: str = ""
    hazard_notes: str = ""
    opened_shelf_life_days: str = ""
    min_stock_units: str = ""

    def facts(self) -> service.MaterialFacts:
        return service.MaterialFacts(
            certificate_no=self.certificate_no, name_zh=self.name_zh, name_en=self.name_en, producer=self.producer,
            matrix=self.matrix, storage_conditions=self.storage_conditions, hazard_notes=self.hazard_notes,
            opened_shelf_life_days=parse_whole(self.opened_shelf_life_days, "opened_shelf_life_days"),
            min_stock_units=parse_whole(self.min_stock_units, "min_stock_units", blank=0),
        )

    @classmethod
    def of(cls, material: ReferenceMaterial) -> MaterialForm:
        days = material.opened_shelf_life_days
        return cls(material.certificate_no, material.name_zh, material.name_en, material.producer, material.matrix,
                   material.storage_conditions, material.hazard_notes, "" if days is None else str(days),
                   str(material.min_stock_units))


MATERIAL_FIELDS = {"duplicate_material": "certificate_no", "reason_required": "reason"}


def _material_form(request: Request, session: Session, form: MaterialForm, *, material: ReferenceMaterial | None = None,
                   reason: str = "", error: DomainError | None = None) -> Response:
    return page_of(request, session, "reference_materials/material_form.html",
                   {"form": form, "material": material, "reason": reason}, error=error, fields=MATERIAL_FIELDS)


def material_form_fields(certificate_no: Short = "", name_zh: Short = "", name_en: Short = "", producer: Short = "",
                         matrix: Short = "", storage_conditions: Text = "", hazard_notes: Text = "",
                         opened_shelf_life_days: Annotated[str, Form(max_length=20)] = "",
                         min_stock_units: Annotated[str, Form(max_length=20)] = "") -> MaterialForm:
    return MaterialForm(certificate_no, name_zh, name_en, producer, matrix, storage_conditions, hazard_notes,
                        opened_shelf_life_days, min_stock_units)


@router.get(f"{BASE}/new", include_in_schema=False)
def new_material(request: Request, session: DbSession, user: User = require(Permission.MATERIALS_MANAGE)):
    return _material_form(request, session, MaterialForm(min_stock_units="0"))


@router.post(f"{BASE}/new", include_in_schema=False)
def register_material(request: Request, session: DbSession, certificate_no: Short = "", name_zh: Short = "",
                      name_en: Short = "", producer: Short = "", matrix: Short = "", storage_conditions: Text = "",
                      hazard_notes: Text = "", opened_shelf_life_days: Annotated[str, Form(max_length=20)] = "",
                      min_stock_units: Annotated[str, Form(max_length=20)] = "",
                      user: User = require(Permission.MATERIALS_MANAGE)):
    form = material_form_fields(certificate_no, name_zh, name_en, producer, matrix, storage_conditions,
                                hazard_notes, opened_shelf_life_days, min_stock_units)

    def act() -> int:
        try:
            with committing(session):
                return service.register_material(session, user, form.facts()).id
        except IntegrityError:  # registered by someone else between the check and the insert
            raise errors.DuplicateMaterial(certificate_no=form.certificate_no.strip()) from None

    material_id, error = attempt(act)
    if error is not None:
        return _material_form(request, session, form, error=error)
    return see_other(request, f"{BASE}/m/{material_id}")


@router.get(f"{BASE}/m/{{material_id}}", include_in_schema=False)
def material_page(request: Request, session: DbSession, material_id: RowId,
                  user: User = require(Permission.MATERIALS_READ)):
    detail = views.material_page(session, get_material(session, material_id))
    return page_of(request, session, "reference_materials/material.html", {"view": detail, "tab": "materials"})


@router.get(f"{BASE}/m/{{material_id}}/edit", include_in_schema=False)
def edit_material(request: Request, session: DbSession, material_id: RowId,
                  user: User = require(Permission.MATERIALS_MANAGE)):
    material = get_material(session, material_id)
    return _material_form(request, session, MaterialForm.of(material), material=material)


@router.post(f"{BASE}/m/{{material_id}}/edit", include_in_schema=False)
def update_material(request: Request, session: DbSession, material_id: RowId, certificate_no: Short = "",
                    name_zh: Short = "", name_en: Short = "", producer: Short = "", matrix: Short = "",
                    storage_conditions: Text = "", hazard_notes: Text = "",
                    opened_shelf_life_days: Annotated[str, Form(max_length=20)] = "",
                    min_stock_units: Annotated[str, Form(max_length=20)] = "", reason: Text = "",
                    user: User = require(Permission.MATERIALS_MANAGE)):
    form = material_form_fields(certificate_no, name_zh, name_en, producer, matrix, storage_conditions,
                                hazard_notes, opened_shelf_life_days, min_stock_units)

    def act() -> None:
        material = get_material(session, material_id)
        try:
            with committing(session):
                service.update_material(session, user, material, form.facts(), reason=reason)
        except IntegrityError:
            raise errors.DuplicateMaterial(certificate_no=form.certificate_no.strip()) from None

    _, error = attempt(act)
    if error is not None:
        return _material_form(request, session, form, material=get_material(session, material_id), reason=reason,
                              error=error)
    return see_other(request, f"{BASE}/m/{material_id}")


# ---------------------------------------------------------------- a lot: register with its certificate


@dataclass
class ValueRow:
    analyte: str = ""
    value: str = ""
    unit: str = ""
    u: str = ""
    k: str = "2"
    certified: bool = True

    @property
    def blank(self) -> bool:
        return not any(text.strip() for text in (self.analyte, self.value, self.unit, self.u))

    def facts(self) -> service.ValueFacts:
        name = self.analyte.strip() or "—"
        return service.ValueFacts(
            analyte=self.analyte, value=service.to_decimal(self.value, _label(name, "value")), unit=self.unit,
            expanded_uncertainty=service.to_decimal(self.u, _label(name, "U"), required=False),
            coverage_factor=service.to_decimal(self.k, _label(name, "k"), required=False),
            certified=self.certified,
        )


def _label(analyte: str, what: str) -> str:
    if what == "value":
        return f"{analyte} 的量值" if i18n.is_chinese() else f"The value of {analyte}"
    return f"{analyte} 的 {what}" if i18n.is_chinese() else f"{what} of {analyte}"


@dataclass
class LotForm:
    lot_no: str = ""
    expires_on: str = ""
    rows: list[ValueRow] = field(default_factory=lambda: [ValueRow() for _ in range(BLANK_VALUE_ROWS)])

    def values(self) -> list[service.ValueFacts]:
        if len(self.rows) > MAX_VALUE_ROWS:
            raise TooManyValueRows(limit=MAX_VALUE_ROWS)
        filled = [row.facts() for row in self.rows if not row.blank]
        if not filled:
            raise NoValueRows()
        return filled

    def padded(self) -> LotForm:
        """The rows as typed, then blank rows up to the usual count (one spare at least)."""
        kept = [row for row in self.rows if not row.blank]
        spare = max(1, BLANK_VALUE_ROWS - len(kept))
        return LotForm(self.lot_no, self.expires_on, kept + [ValueRow() for _ in range(spare)])


LOT_FIELDS = {
    "duplicate_lot": "lot_no", "malformed_date": "expires_on", "implausible_date": "expires_on",
    "certificate_required": "certificate", "unsupported_file_type": "certificate", "empty_file": "certificate",
    "payload_too_large": "certificate", "uncertainty_required": "values", "bad_number": "values",
    "no_certified_value": "values", "no_value_rows": "values", "duplicate_analyte": "values",
    "unknown_unit": "values", "incompatible_units": "values", "non_positive_amount": "values",
    "too_many_value_rows": "values",
}


def _lot_form(request: Request, session: Session, material: ReferenceMaterial, form: LotForm, *,
              error: DomainError | None = None) -> Response:
    return page_of(request, session, "reference_materials/lot_form.html",
                   {"material": material, "form": form, "max_mb": 20}, error=error, fields=LOT_FIELDS)


def upload_of(file: UploadFile | None) -> Upload:
    if file is None or isinstance(file, str) or not (file.filename or "").strip():
        raise CertificateRequired()
    return Upload(file.file, file.filename)


@router.get(f"{BASE}/m/{{material_id}}/lots/new", include_in_schema=False)
def new_lot(request: Request, session: DbSession, material_id: RowId,
            user: User = require(Permission.MATERIALS_MANAGE)):
    return _lot_form(request, session, get_material(session, material_id), LotForm())


@router.post(f"{BASE}/m/{{material_id}}/lots/new", include_in_schema=False)
def register_lot(
    request: Request, session: DbSession, material_id: RowId, lot_no: Short = "",
    expires_on: Annotated[str, Form(max_length=32)] = "", analyte: Rows = [], value: Rows = [],  # noqa: B006
    unit: Rows = [], u: Rows = [], k: Rows = [], certified: Rows = [],  # noqa: B006
    certificate: Annotated[UploadFile | None, File()] = None, user: User = require(Permission.MATERIALS_MANAGE),
):
    material = get_material(session, material_id)
    checked = {c.strip() for c in certified}
    rows = [ValueRow(a, v, un, uu, kk, str(i) in checked)
            for i, (a, v, un, uu, kk) in enumerate(zip_longest(analyte, value, unit, u, k, fillvalue=""))]
    form = LotForm(lot_no, expires_on, rows)

    def act() -> int:
        facts = {"lot_no": lot_no, "expires_on": parse_day(expires_on, "expires_on"), "values": form.values()}
        upload = upload_of(certificate)
        try:
            with committing(session):
                return service.register_lot(session, user, material, store=store_of(request),
                                            certificate=upload, **facts).id
        except IntegrityError:
            raise errors.DuplicateLot(certificate_no=material.certificate_no, lot_no=lot_no.strip()) from None

    lot_id, error = attempt(act)
    if error is not None:
        return _lot_form(request, session, get_material(session, material_id), form.padded(), error=error)
    return see_other(request, f"{BASE}/lots/{lot_id}")


# ---------------------------------------------------------------- a lot: its page, certificate, receipt, status


def get_lot(session: Session, lot_id: int) -> MaterialLot:
    return service.get_lot(session, lot_id)


LOT_PAGE_FIELDS = {"reason_required": "reason", "malformed_datetime": "when", "date_in_future": "when",
                   "not_a_whole_number": "count"}


def _lot_page(request: Request, session: Session, lot_id: int, *, action: str = "", form: dict | None = None,
              error: DomainError | None = None) -> Response:
    detail = views.lot_page(session, get_lot(session, lot_id))
    defaults = {"received_at": local_input(session), "effective_at": local_input(session), "count": "1",
                "quantity_unit": "mL"}
    return page_of(request, session, "reference_materials/lot.html", {
        "view": detail, "action": action, "form": {**defaults, **(form or {})}, "tab": "materials",
    }, error=error, fields=LOT_PAGE_FIELDS)


@router.get(f"{BASE}/lots/{{lot_id}}", include_in_schema=False)
def lot_page(request: Request, session: DbSession, lot_id: RowId, user: User = require(Permission.MATERIALS_READ)):
    return _lot_page(request, session, lot_id)


def certificate_file(session: Session, store: FileStore, lot: MaterialLot) -> StoredFile:
    """The certificate's stored file, after checking its bytes still hash to what was stored."""
    from app.instruments.record_views import CertificateAltered

    stored = session.get(StoredFile, lot.certificate_file_id)
    if stored is None or stored.sha256 != lot.certificate_sha256 or not store.verify(stored.sha256):
        raise CertificateAltered()
    return stored


@router.get(f"{BASE}/lots/{{lot_id}}/certificate", include_in_schema=False)
def lot_certificate(request: Request, session: DbSession, lot_id: RowId,
                    user: User = require(Permission.MATERIALS_READ)):
    """The certificate as stored, shown in the browser; refused when its bytes changed."""
    store = store_of(request)
    stored = certificate_file(session, store, get_lot(session, lot_id))
    return FileResponse(store.path(stored.sha256), media_type=stored.media_type, filename=stored.filename,
                        content_disposition_type="inline", headers={"Cache-Control": "private, no-cache"})


@router.post(f"{BASE}/lots/{{lot_id}}/receive", include_in_schema=False)
def receive_units(request: Request, session: DbSession, lot_id: RowId,
                  count: Annotated[str, Form(max_length=20)] = "", quantity: Annotated[str, Form(max_length=40)] = "",
                  quantity_unit: Annotated[str, Form(max_length=20)] = "", received_at: Moment = "",
                  user: User = require(Permission.MATERIALS_MANAGE)):
    form = {"count": count, "quantity": quantity, "quantity_unit": quantity_unit, "received_at": received_at}

    def act() -> None:
        lot = get_lot(session, lot_id)
        how_many = parse_whole(count, "count", blank=1)
        amount = service.to_decimal(quantity, gettext("Quantity per unit"))
        when = parse_moment(session, received_at, "received_at")
        with committing(session):
            service.receive_units(session, user, lot, count=how_many, quantity=amount, quantity_unit=quantity_unit,
                                  received_at=when)

    _, error = attempt(act)
    if error is not None:
        return _lot_page(request, session, lot_id, action="receive", form=form, error=error)
    return see_other(request, f"{BASE}/lots/{lot_id}")


@router.post(f"{BASE}/lots/{{lot_id}}/status", include_in_schema=False)
def change_lot_status(request: Request, session: DbSession, lot_id: RowId,
                      status: Annotated[str, Form(max_length=16)] = "", reason: Text = "",
                      effective_at: Moment = "", user: User = require(Permission.MATERIALS_WITHDRAW)):
    form = {"status": status, "reason": reason, "effective_at": effective_at}

    def act() -> None:
        lot = get_lot(session, lot_id)
        when = parse_moment(session, effective_at, "effective_at")
        with committing(session):
            service.change_lot_status(session, user, lot, status, reason=reason, effective_at=when)

    _, error = attempt(act)
    if error is not None:
        return _lot_page(request, session, lot_id, action="status", form=form, error=error)
    return see_other(request, f"{BASE}/lots/{lot_id}")


# ---------------------------------------------------------------- reagents


@dataclass
class ReagentForm:
    name: str = ""
    grade: str = ""
    supplier: str = ""
    lot_no: str = ""
    expires_on: str = ""
    received_at: str = ""
    quantity: str = ""
    quantity_unit: str = ""
    opened_shelf_life_days: str = ""
    storage_conditions: str = ""

    def facts(self, session: Session) -> service.ReagentFacts:
        quantity = service.to_decimal(self.quantity, gettext("Quantity"), required=False)
        return service.ReagentFacts(
            name=self.name, grade=self.grade, supplier=self.supplier, lot_no=self.lot_no,
            expires_on=parse_day(self.expires_on, "expires_on"),
            received_at=parse_moment(session, self.received_at, "received_at"), quantity=quantity,
            quantity_unit=self.quantity_unit, storage_conditions=self.storage_conditions,
            opened_shelf_life_days=parse_whole(self.opened_shelf_life_days, "opened_shelf_life_days"),
        )


REAGENT_FIELDS = {"malformed_date": "expires_on", "implausible_date": "expires_on",
                  "malformed_datetime": "received_at", "date_in_future": "received_at", "bad_number": "quantity",
                  "non_positive_amount": "quantity", "unknown_unit": "quantity_unit",
                  "incompatible_units": "quantity_unit", "not_a_whole_number": "opened_shelf_life_days"}


def _reagent_form(request: Request, session: Session, form: ReagentForm, *, error: DomainError | None = None):
    return page_of(request, session, "reference_materials/reagent_form.html", {"form": form, "tab": "reagents"},
                   error=error, fields=REAGENT_FIELDS)


@router.get(f"{BASE}/reagents/new", include_in_schema=False)
def new_reagent(request: Request, session: DbSession, user: User = require(Permission.MATERIALS_MANAGE)):
    return _reagent_form(request, session, ReagentForm(received_at=local_input(session), quantity_unit="mL"))


@router.post(f"{BASE}/reagents/new", include_in_schema=False)
def register_reagent(request: Request, session: DbSession, name: Short = "", grade: Short = "", supplier: Short = "",
                     lot_no: Short = "", expires_on: Moment = "", received_at: Moment = "",
                     quantity: Annotated[str, Form(max_length=40)] = "",
                     quantity_unit: Annotated[str, Form(max_length=20)] = "",
                     opened_shelf_life_days: Annotated[str, Form(max_length=20)] = "", storage_conditions: Text = "",
                     user: User = require(Permission.MATERIALS_MANAGE)):
    form = ReagentForm(name, grade, supplier, lot_no, expires_on, received_at, quantity, quantity_unit,
                       opened_shelf_life_days, storage_conditions)

    def act() -> str:
        facts = form.facts(session)
        with committing(session):
            return service.register_reagent(session, user, facts).barcode

    barcode, error = attempt(act)
    if error is not None:
        return _reagent_form(request, session, form, error=error)
    return see_other(request, item_url(barcode))


# ---------------------------------------------------------------- one unit or reagent (scanned)


ITEM_FIELDS = {"reason_required": "reason", "malformed_datetime": "when", "date_in_future": "when",
               "bad_number": "quantity", "non_positive_amount": "quantity", "insufficient_quantity": "quantity",
               "quantity_unit_mismatch": "quantity_unit", "unknown_unit": "quantity_unit",
               "incompatible_units": "quantity_unit"}


def find_item(session: Session, barcode: str) -> service.Item:
    return service.find_item(session, barcode)


def _item_page(request: Request, session: Session, item: service.Item, *, page: int = 1, action: str = "",
               form: dict | None = None, error: DomainError | None = None) -> Response:
    size = request.app.state.settings.page_size
    detail = views.item_page(session, item, page=page, size=size)
    now = local_input(session)
    defaults = {"opened_at": now, "used_at": now, "at": now, "dispose_at": now, "quantity_unit": item.quantity_unit}
    return page_of(request, session, "reference_materials/item.html", {
        "view": detail, "item": item, "action": action, "form": {**defaults, **(form or {})},
        "tab": "reagents" if detail.kind == ItemKind.REAGENT else "units",
        "pager_base": f"{item_url(item.barcode)}?",
    }, error=error, fields=ITEM_FIELDS)


@router.get(f"{BASE}/items/{{barcode}}", include_in_schema=False)
def item_page(request: Request, session: DbSession, barcode: Barcode, page: PageNo = 1,
              user: User = require(Permission.MATERIALS_READ)):
    item = find_item(session, barcode)
    if service.item_kind_of(item) == ItemKind.SOLUTION:
        return see_other(request, solution_url(item.barcode))
    return _item_page(request, session, item, page=page)


def _item_act(request: Request, session: Session, barcode: str, action: str, form: dict[str, str],
              act: Callable[[service.Item], None]) -> Response:
    """Parse and write one act on a unit or reagent; a refusal renders the item page again."""
    item = find_item(session, barcode)
    if service.item_kind_of(item) == ItemKind.SOLUTION:
        return see_other(request, solution_url(item.barcode))
    code = item.barcode

    def run() -> None:
        act(item)

    _, error = attempt(run)
    if error is not None:
        return _item_page(request, session, find_item(session, code), action=action, form=form, error=error)
    return see_other(request, item_url(code))


@router.post(f"{BASE}/items/{{barcode}}/open", include_in_schema=False)
def open_item(request: Request, session: DbSession, barcode: Barcode, opened_at: Moment = "",
              user: User = require(Permission.MATERIALS_USE)):
    def act(item: service.Item) -> None:
        when = parse_moment(session, opened_at, "opened_at")
        with committing(session):
            service.open_item(session, user, item, when)

    return _item_act(request, session, barcode, "open", {"opened_at": opened_at}, act)


@router.post(f"{BASE}/items/{{barcode}}/use", include_in_schema=False)
def record_use(request: Request, session: DbSession, barcode: Barcode, used_at: Moment = "",
               quantity: Annotated[str, Form(max_length=40)] = "",
               quantity_unit: Annotated[str, Form(max_length=20)] = "",
               purpose: Annotated[str, Form(max_length=300)] = "",
               user: User = require(Permission.MATERIALS_USE)):
    form = {"used_at": used_at, "quantity": quantity, "quantity_unit": quantity_unit, "purpose": purpose}

    def act(item: service.Item) -> None:
        when = parse_moment(session, used_at, "used_at")
        amount = service.to_decimal(quantity, gettext("Amount used"), required=False)
        with committing(session):
            service.record_use(session, user, item, when, quantity=amount,
                               quantity_unit=quantity_unit if amount is not None else "", purpose=purpose)

    return _item_act(request, session, barcode, "use", form, act)


@router.post(f"{BASE}/items/{{barcode}}/used-up", include_in_schema=False)
def mark_used_up(request: Request, session: DbSession, barcode: Barcode, at: Moment = "",
                 user: User = require(Permission.MATERIALS_USE)):
    def act(item: service.Item) -> None:
        when = parse_moment(session, at, "at")
        with committing(session):
            service.mark_used_up(session, user, item, when)

    return _item_act(request, session, barcode, "used_up", {"at": at}, act)


@router.post(f"{BASE}/items/{{barcode}}/dispose", include_in_schema=False)
def dispose_item(request: Request, session: DbSession, barcode: Barcode, reason: Text = "", at: Moment = "",
                 user: User = require(Permission.MATERIALS_MANAGE)):
    def act(item: service.Item) -> None:
        when = parse_moment(session, at, "at")
        with committing(session):
            service.dispose_item(session, user, item, reason=reason, at=when)

    return _item_act(request, session, barcode, "dispose", {"reason": reason, "dispose_at": at}, act)


# ---------------------------------------------------------------- labels


class NoUnitsToLabel(DomainError):
    code = "no_units_to_label"
    message_zh = "该批次没有在库的单元，无需打印标签。"
    message_en = "The lot has no units in stock to label."


def unit_labels(session: Session, lot: MaterialLot, units: list[StockUnit]) -> list[Label]:
    """Title: the material's name; then certificate and lot, the certified values, and the
    expiry in force (a label is reprinted after opening)."""
    tz = lab_calendar(session).tz
    material = session.get(ReferenceMaterial, lot.material_id)
    certified, _ = views.split_values(session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id)))
    values = "; ".join(f"{v.analyte} {views.number(v.value)}±{views.number(v.expanded_uncertainty)} {v.unit}"
                       for v in certified)
    first = f"{material.certificate_no} · {gettext('Lot')} {lot.lot_no}"
    title = i18n.pick(material.name_zh, material.name_en)
    return [Label(unit.barcode, title, (first, values, _valid_until(unit, tz))) for unit in units]


def reagent_label(session: Session, reagent: ReagentLot) -> Label:
    lines = (f"{reagent.grade} · {reagent.supplier}", f"{gettext('Lot')} {reagent.lot_no}",
             _valid_until(reagent, lab_calendar(session).tz))
    return Label(reagent.barcode, reagent.name, lines)


def _valid_until(item: service.Item, tz: Any) -> str:
    return gettext("Valid until %(date)s") % {"date": views.expiry_text(item.expires_at, tz)}


LabelFormat = Annotated[str, Query(pattern="^(thermal|a4)$")]
StartAt = Annotated[int, Query(ge=1, le=A4_SHEET.per_page)]


def label_pdf(labels: list[Label], format: str, start_at: int, name: str) -> Response:
    """Labels on 50 x 30 mm thermal stock, or on an A4 sheet from position `start_at` (1-24)."""
    fmt = A4_SHEET if format == "a4" else THERMAL_50x30
    pdf = render_labels(labels, fmt, start_at=start_at - 1 if format == "a4" else 0)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{name}.pdf"', "Cache-Control": "private, no-store"})


@router.get(f"{BASE}/items/{{barcode}}/label.pdf", include_in_schema=False)
def item_label(request: Request, session: DbSession, barcode: Barcode, format: LabelFormat = "thermal",
               start_at: StartAt = 1, user: User = require(Permission.MATERIALS_READ)):
    """The label of one unit or reagent."""
    item = find_item(session, barcode)
    if isinstance(item, StockUnit):
        label = unit_labels(session, get_lot(session, item.lot_id), [item])[0]
    elif isinstance(item, ReagentLot):
        label = reagent_label(session, item)
    else:
        return see_other(request, solution_url(item.barcode))
    return label_pdf([label], format, start_at, f"label-{item.barcode}")


@router.get(f"{BASE}/lots/{{lot_id}}/labels.pdf", include_in_schema=False)
def lot_labels(request: Request, session: DbSession, lot_id: RowId, format: LabelFormat = "a4",
               start_at: StartAt = 1, user: User = require(Permission.MATERIALS_READ)):
    """The labels of every unit of the lot still in stock, in barcode order (after receipt)."""
    lot = get_lot(session, lot_id)
    units = list(session.scalars(select(StockUnit).where(
        StockUnit.lot_id == lot.id, StockUnit.state.in_(views.UNIT_STOCKED)).order_by(StockUnit.barcode)))
    if not units:
        raise NoUnitsToLabel()
    return label_pdf(unit_labels(session, lot, units), format, start_at, f"labels-lot-{lot.id}")


# ---------------------------------------------------------------- shell contributions


def _scan_item(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned RM/SS/RG label opens the unit, solution or reagent it names."""
    if Permission.MATERIALS_READ not in permissions or not service.BARCODE_RE.match(code.strip().upper()):
        return None
    try:
        item = service.find_item(session, code)
    except errors.ItemNotFound:
        return None
    if service.item_kind_of(item) == ItemKind.SOLUTION:
        return ScanHit(solution_url(item.barcode), item.barcode)
    return ScanHit(item_url(item.barcode), item.barcode)


add_nav(NavItem("reference_materials", N_("Reference materials"), BASE, Permission.MATERIALS_READ, 40))
add_scan_resolver("material_item", _scan_item)
