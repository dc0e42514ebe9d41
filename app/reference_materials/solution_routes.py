"""Standard solution pages: the list, preparation (with a preview that saves nothing), the
solution page with its backward traceability and uncertainty budgets, its label and traceability
PDF, the acts on a solution (use, used up, discard), and the forward traceability of a lot (page
and CSV).

The preparation form is built for a keyboard-wedge scanner: the parent's barcode field has the
focus and its Enter goes to the form's first submit button, "look up", which loads the parent's
analytes (htmx GET, or a re-rendered form without JavaScript) instead of preparing anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing, utcnow
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.i18n import current_language, gettext, pick
from app.core.labtime import LabCalendar, lab_calendar
from app.core.permissions import Permission
from app.core.web import Page, paginate, query_string, render, see_other
from app.people.models import User
from app.reference_materials import errors, printing, service, solutions
from app.reference_materials.gate import Usability, check_material, refusal_at, stock_facts
from app.reference_materials.models import (
    CertifiedValue,
    LotStatus,
    MaterialLot,
    MaterialUse,
    ReferenceMaterial,
    SolutionComponent,
    SolutionState,
    StandardSolution,
    StockUnit,
)
from app.reference_materials.queries import lot_changes_at
from app.reference_materials.traceability import count_forward, forward_traceability

router = APIRouter()

RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Short = Annotated[str, Form(max_length=200)]
Amount = Annotated[str, Form(max_length=40)]
UnitText = Annotated[str, Form(max_length=20)]
Rows = Annotated[list[str], Form()]

SOLUTION_BARCODE_RE = re.compile(r"^SS\d{2}-\d{5,}$")
LIST_STATES = ("in_use", "expired", "used_up", "discarded")
ALIQUOT_UNITS = ("mL", "μL", "g", "mg")
FINAL_VOLUME_UNITS = ("mL", "L")
OUTPUT_UNITS = ("mg/L", "μg/mL", "μg/L", "ng/mL", "mg/mL", "g/L", "ng/L")
DENSITY_UNITS = ("g/mL", "g/cm3", "kg/L")
DEVICE_UNITS = ("mL", "μL", "L", "g", "mg")
GLASS_CLASSES = ("A", "B", "")
FORM_DEVICE_ROWS = 4
MAX_DEVICE_ROWS = 12
MAX_FORM_ANALYTES = 60


class InvalidMoment(InvalidInput):
    code = "invalid_moment"
    message_zh = "时间“{value}”无效：请用 YYYY-MM-DDTHH:MM（实验室当地时间）。"
    message_en = "The time “{value}” is invalid: use YYYY-MM-DDTHH:MM (lab local time)."


class NotASolutionParent(InvalidInput):
    code = "not_a_solution_parent"
    message_zh = "{barcode} 是试剂：标准溶液只能由标准物质单元或另一标准溶液配制。"
    message_en = "{barcode} is a reagent: a standard solution is prepared from a CRM unit or another solution."


class ToleranceRequired(InvalidInput):
    code = "tolerance_required"
    message_zh = "量器“{name}”缺少允差。"
    message_en = "The glassware “{name}” needs its tolerance."


class TooManyRows(InvalidInput):
    code = "too_many_rows"
    message_zh = "量器最多 {limit} 行。"
    message_en = "At most {limit} glassware rows."


# ---------------------------------------------------------------- helpers


def find_solution(session: Session, barcode: str) -> StandardSolution:
    """The solution a URL names; anything that is not a solution's code names none."""
    cleaned = barcode.strip().upper()
    if not SOLUTION_BARCODE_RE.match(cleaned):
        raise errors.ItemNotFound(barcode=cleaned[:30] or "—")
    solution = session.scalars(select(StandardSolution).where(StandardSolution.barcode == cleaned)).first()
    if solution is None:
        raise errors.ItemNotFound(barcode=cleaned)
    return solution


def item_href(barcode: str) -> str:
    """Where a barcode's page lives: solutions here, units and reagents on the item page."""
    if barcode.startswith("SS"):
        return f"/reference-materials/solutions/{barcode}"
    return f"/reference-materials/items/{barcode}"


def refusal_shown_in_form(error: DomainError) -> bool:
    """Input the form can fix is shown beside it, with the values entered; who-may refusals are not."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (404, 409, 422)


MOMENT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")


def parse_local_moment(raw: str, calendar: LabCalendar) -> datetime:
    """A datetime-local value (the lab's wall clock) as a UTC instant; blank is now."""
    text = raw.strip()
    if not text:
        return utcnow()
    match = MOMENT_RE.match(text)
    if not match:
        raise InvalidMoment(value=text[:40])
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        local = datetime.combine(date(year, month, day), time(hour, minute, second), tzinfo=calendar.tz)
    except ValueError:
        raise InvalidMoment(value=text) from None
    if not 1900 <= year <= 2999:
        raise InvalidMoment(value=text)
    return local.astimezone(UTC)


def local_input(moment: datetime, calendar: LabCalendar) -> str:
    return moment.astimezone(calendar.tz).strftime("%Y-%m-%dT%H:%M")


def usable_now(session: Session, rows: list[StandardSolution], now: datetime) -> dict[int, Usability]:
    """The gate's answer for a page of solutions at `now`: the lots' status in force in one query,
    then the gate's own rule (`gate.refusal_at`) for each row."""
    in_force = lot_changes_at(session, {s.root_lot_id for s in rows}, now)
    answers = {}
    for s in rows:
        refusal_class, expires = refusal_at(stock_facts(session, s), in_force.get(s.root_lot_id), now)
        answers[s.id] = Usability(refusal_class is None, refusal_class.reason if refusal_class else None, expires)
    return answers


def components_of(session: Session, ids: list[int]) -> dict[int, list[SolutionComponent]]:
    """The components of many solutions in one IN query."""
    found: dict[int, list[SolutionComponent]] = {i: [] for i in ids}
    if ids:
        for c in session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id.in_(ids))
                                 .order_by(SolutionComponent.solution_id, SolutionComponent.id)):
            found[c.solution_id].append(c)
    return found


def display_context(session: Session) -> dict[str, Any]:
    tz = lab_calendar(session).tz
    return {"expiry_text": lambda moment: printing.expiry_text(moment, tz)}


# ---------------------------------------------------------------- the list


@dataclass(frozen=True)
class SolutionRow:
    solution: StandardSolution
    concentrations: list[printing.Concentration]
    preparer: User | None
    usability: Usability


@router.get("/reference-materials/solutions", include_in_schema=False)
def solution_list(request: Request, session: DbSession, q: str = Query("", max_length=100),
                  state: str = Query("", pattern=f"^({'|'.join(LIST_STATES)})?$"),
                  page: int = Query(1, ge=1, le=100_000), user: User = require(Permission.MATERIALS_READ)):
    now = utcnow()
    stmt = select(StandardSolution)
    if state == "expired":
        stmt = stmt.where(StandardSolution.state == SolutionState.IN_USE.value, StandardSolution.expires_at <= now)
    elif state == "in_use":
        stmt = stmt.where(StandardSolution.state == SolutionState.IN_USE.value, StandardSolution.expires_at > now)
    elif state:
        stmt = stmt.where(StandardSolution.state == state)
    text = q.strip()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(StandardSolution.barcode.ilike(pattern, escape="\\"),
                              StandardSolution.name.ilike(pattern, escape="\\")))
    stmt = stmt.order_by(StandardSolution.prepared_at.desc(), StandardSolution.id.desc())
    result: Page[Any] = paginate(session, stmt, page, request.app.state.settings.page_size)
    items = list(result.items)
    components = components_of(session, [s.id for s in items])
    people = printing.people_by_id(session, [s.prepared_by_id for s in items])
    usable = usable_now(session, items, now)
    result.items = [SolutionRow(s, printing.concentrations(components[s.id]), people.get(s.prepared_by_id),
                                usable[s.id]) for s in items]
    params = {"q": text, "state": state}
    filters = query_string(params)
    return render(request, "reference_materials/solution_list.html", {
        "page": result, "filters": params, "states": LIST_STATES,
        "pager_base": f"/reference-materials/solutions?{filters}&" if filters else "/reference-materials/solutions?",
        **display_context(session),
    }, block="results")


# ---------------------------------------------------------------- preparation


@dataclass
class DeviceRow:
    role: str = "aliquot"
    name: str = ""
    glass_class: str = "A"
    tolerance: str = ""
    unit: str = "mL"

    @property
    def blank(self) -> bool:
        return not self.name.strip() and not self.tolerance.strip()


def default_devices() -> list[DeviceRow]:
    return [DeviceRow("aliquot"), DeviceRow("final_volume"), DeviceRow("aliquot"), DeviceRow("final_volume")]


@dataclass
class SolutionForm:
    """The preparation as entered (strings), so a refused form comes back as it was."""

    parent_barcode: str = ""
    name: str = ""
    analytes: list[str] = field(default_factory=list)
    aliquot: str = ""
    aliquot_unit: str = "mL"
    density: str = ""
    density_unit: str = "g/mL"
    final_volume: str = ""
    final_volume_unit: str = "mL"
    output_unit: str = "mg/L"
    solvent: str = ""
    prepared_at: str = ""
    shelf_life_days: str = ""
    notes: str = ""
    devices: list[DeviceRow] = field(default_factory=default_devices)

    def only_barcode(self) -> bool:
        """What a scanner's Enter sends: the barcode and nothing typed yet."""
        typed = (self.name, self.aliquot, self.final_volume, self.solvent, self.shelf_life_days, self.density,
                 self.notes)
        return not any(v.strip() for v in typed) and all(d.blank for d in self.devices)

    def padded(self) -> SolutionForm:
        """At least four glassware rows to fill in."""
        rows = list(self.devices)
        while len(rows) < FORM_DEVICE_ROWS:
            rows.append(DeviceRow("aliquot" if len(rows) % 2 == 0 else "final_volume"))
        self.devices = rows
        return self

    def facts(self, calendar: LabCalendar, *, preview: bool = False) -> solutions.SolutionFacts:
        """Parsed values for the service (raises a DomainError the form shows). A preview needs
        no name, solvent or shelf life."""
        devices = []
        filled = [d for d in self.devices if not d.blank]
        if len(filled) > MAX_DEVICE_ROWS:
            raise TooManyRows(limit=MAX_DEVICE_ROWS)
        for row in filled:
            if not row.tolerance.strip():
                raise ToleranceRequired(name=row.name.strip()[:60] or "—")
            tolerance = service.to_decimal(row.tolerance, gettext("Tolerance"))
            devices.append(solutions.DeviceFacts(row.role, row.name, tolerance, row.unit, row.glass_class))
        shelf_life = self.shelf_life_days.strip()
        if shelf_life and not shelf_life.isdigit():
            raise errors.BadDecimal(field=gettext("Shelf life (days)"), value=shelf_life[:30])
        density = service.to_decimal(self.density, gettext("Density"), required=False)
        return solutions.SolutionFacts(
            parent_barcode=self.parent_barcode, name=self.name or ("—" if preview else ""),
            aliquot=service.to_decimal(self.aliquot, gettext("Aliquot")), aliquot_unit=self.aliquot_unit,
            final_volume=service.to_decimal(self.final_volume, gettext("Final volume")),
            final_volume_unit=self.final_volume_unit, output_unit=self.output_unit,
            solvent=self.solvent or ("—" if preview else ""),
            prepared_at=parse_local_moment(self.prepared_at, calendar),
            shelf_life_days=int(shelf_life) if shelf_life else (1 if preview else None),
            devices=tuple(devices), analytes=tuple(self.analytes[:MAX_FORM_ANALYTES]),
            density=density, density_unit=self.density_unit if density is not None else "g/mL", notes=self.notes,
        )


def solution_form(
    parent_barcode: Annotated[str, Form(max_length=100)] = "", name: Short = "",
    analyte: Rows = [], aliquot: Amount = "", aliquot_unit: UnitText = "mL",  # noqa: B006 (FastAPI copies defaults)
    density: Amount = "", density_unit: UnitText = "g/mL", final_volume: Amount = "",
    final_volume_unit: UnitText = "mL", output_unit: UnitText = "mg/L", solvent: Short = "",
    prepared_at: Amount = "", shelf_life_days: Amount = "", notes: Annotated[str, Form(max_length=2000)] = "",
    device_role: Rows = [], device_name: Rows = [], device_class: Rows = [],  # noqa: B006
    device_tolerance: Rows = [], device_unit: Rows = [],  # noqa: B006
) -> SolutionForm:
    """The posted preparation form; glassware rows come as parallel lists, one entry per row."""
    count = min(max(len(device_role), len(device_name), len(device_tolerance)), MAX_DEVICE_ROWS + 1)

    def at(values: list[str], i: int, default: str) -> str:
        return values[i][:120] if i < len(values) else default

    devices = [DeviceRow(at(device_role, i, "aliquot"), at(device_name, i, ""), at(device_class, i, ""),
                         at(device_tolerance, i, ""), at(device_unit, i, "mL")) for i in range(count)]
    return SolutionForm(
        parent_barcode=parent_barcode.strip(), name=name, analytes=[a[:60] for a in analyte[:MAX_FORM_ANALYTES]],
        aliquot=aliquot, aliquot_unit=aliquot_unit, density=density, density_unit=density_unit,
        final_volume=final_volume, final_volume_unit=final_volume_unit, output_unit=output_unit, solvent=solvent,
        prepared_at=prepared_at, shelf_life_days=shelf_life_days, notes=notes, devices=devices,
    )


PostedSolution = Annotated[SolutionForm, Depends(solution_form)]


@dataclass(frozen=True)
class ParentValueRow:
    analyte: str
    value: str
    expanded: str
    unit: str
    note: str  # "k=2" of a certificate; "u_rel 0.00450" of a solution


@dataclass(frozen=True)
class ParentView:
    """What the form shows about the parent a barcode names."""

    item: StockUnit | StandardSolution
    title: str
    values: list[ParentValueRow]
    analytes: list[str]
    usability: Usability
    lot: MaterialLot | None = None
    material: ReferenceMaterial | None = None


def parent_view(session: Session, barcode: str) -> ParentView:
    """The unit (its lot's certified values) or solution (its components) a barcode names."""
    item = service.find_item(session, barcode)
    if not isinstance(item, StockUnit | StandardSolution):
        raise NotASolutionParent(barcode=item.barcode)
    usability = check_material(session, item, utcnow())
    if isinstance(item, StandardSolution):
        components = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == item.id)
                                     .order_by(SolutionComponent.id)).all()
        shown = [ParentValueRow(c.analyte, c.value, c.expanded, c.unit, f"u_rel {c.relative_u}")
                 for c in printing.concentrations(components)]
        return ParentView(item, item.name, shown, [c.analyte for c in components], usability)
    lot = session.get(MaterialLot, item.lot_id)
    material = session.get(ReferenceMaterial, lot.material_id)
    values = session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id, CertifiedValue.certified)
                             .order_by(CertifiedValue.id)).all()
    shown = [ParentValueRow(v.analyte, printing.recorded(v.value), printing.recorded(v.expanded_uncertainty), v.unit,
                            f"k={printing.recorded(v.coverage_factor)}") for v in values]
    return ParentView(item, pick(material.name_zh, material.name_en), shown, [v.analyte for v in values], usability,
                      lot, material)


@dataclass(frozen=True)
class Preview:
    """A computed preparation, saved nowhere."""

    budgets: list[printing.AnalyteBudget]
    usability: Usability
    expires_at: datetime | None


# The field a refusal is about, marked aria-invalid in the re-rendered form.
ERROR_FIELDS = {
    "item_not_found": "parent_barcode", "not_a_solution_parent": "parent_barcode",
    "aliquot_exceeds_final_volume": "aliquot", "insufficient_quantity": "aliquot",
    "density_required": "density", "glassware_required": "devices", "tolerance_required": "devices",
    "too_many_rows": "devices", "analyte_not_in_parent": "analytes", "invalid_moment": "prepared_at",
    "date_in_future": "prepared_at", "unknown_unit": "", "incompatible_units": "output_unit",
}


def _form_page(request: Request, session: Session, form: SolutionForm, *, error: DomainError | None = None,
               preview: Preview | None = None, preview_error: DomainError | None = None,
               block: str | None = "form", looked_up: bool = True):
    calendar = lab_calendar(session)
    parent = parent_error = None
    if form.parent_barcode and looked_up:
        try:
            parent = parent_view(session, form.parent_barcode)
        except DomainError as refusal:
            parent_error = refusal.message(current_language())
    if not form.prepared_at:
        form.prepared_at = local_input(utcnow(), calendar)
    context: dict[str, Any] = {
        "form": form.padded(), "parent": parent, "parent_error": parent_error, "preview": preview,
        "aliquot_units": ALIQUOT_UNITS, "final_volume_units": FINAL_VOLUME_UNITS, "output_units": OUTPUT_UNITS,
        "density_units": DENSITY_UNITS, "device_units": DEVICE_UNITS, "glass_classes": GLASS_CLASSES,
        "now_local": local_input(utcnow(), calendar), **display_context(session),
    }
    status = 200
    if error is not None:
        status = error.http_status
        context.update(error=error.message(current_language()), error_code=error.code,
                       error_reason=getattr(error, "reason", None) if isinstance(error, errors.MaterialNotUsable)
                       else None, error_field=ERROR_FIELDS.get(error.code, ""))
    if preview_error is not None:
        status = preview_error.http_status
        context.update(preview_error=preview_error.message(current_language()), preview_error_code=preview_error.code)
    return render(request, "reference_materials/solution_new.html", context, block=block, status_code=status)


@router.get("/reference-materials/solutions/new", include_in_schema=False)
def new_solution(request: Request, session: DbSession, parent: str = Query("", max_length=100),
                 user: User = require(Permission.MATERIALS_USE)):
    return _form_page(request, session, SolutionForm(parent_barcode=parent.strip()), block=None)


@router.get("/reference-materials/solutions/parent", include_in_schema=False)
def parent_info(request: Request, session: DbSession, barcode: str = Query("", max_length=100),
                parent_barcode: str = Query("", max_length=100), user: User = require(Permission.MATERIALS_USE)):
    """The parent's analytes, values and expiry (htmx swaps it into the form; without JavaScript
    the whole form comes back with the barcode filled in). The form's own field sends
    `parent_barcode`; `barcode` is the short name for a link."""
    code = (barcode or parent_barcode).strip()
    return _form_page(request, session, SolutionForm(parent_barcode=code), block="parent")


def _preview(session: Session, form: SolutionForm) -> Preview:
    calendar = lab_calendar(session)
    facts = form.facts(calendar, preview=True)
    parent = service.find_item(session, facts.parent_barcode)
    if not isinstance(parent, StockUnit | StandardSolution):
        raise NotASolutionParent(barcode=parent.barcode)
    results = solutions.compute_solution(session, parent, facts)
    usability = check_material(session, parent, facts.prepared_at)
    expires = None
    if usability.expires_at is not None and form.shelf_life_days.strip():
        expires = min(usability.expires_at, facts.prepared_at + timedelta(days=facts.shelf_life_days))
    return Preview([printing.analyte_budget(r) for r in results], usability, expires)


@router.post("/reference-materials/solutions/preview", include_in_schema=False)
def preview_solution(request: Request, session: DbSession, form: PostedSolution,
                     user: User = require(Permission.MATERIALS_USE)):
    """The concentrations and budgets the preparation would give; nothing is saved."""
    try:
        preview = _preview(session, form)
    except DomainError as error:
        if not refusal_shown_in_form(error):
            raise
        return _form_page(request, session, form, preview_error=error, block="preview")
    return _form_page(request, session, form, preview=preview, block="preview")


@router.post("/reference-materials/solutions/new", include_in_schema=False)
def prepare_solution(request: Request, session: DbSession, form: PostedSolution,
                     action: Annotated[str, Form(max_length=20)] = "prepare",
                     user: User = require(Permission.MATERIALS_USE)):
    if action == "lookup" or form.only_barcode():
        return _form_page(request, session, form)
    if action == "preview":
        return preview_solution(request, session, form, user)
    try:
        with committing(session):
            solution = solutions.prepare_solution(session, user, form.facts(lab_calendar(session)))
            barcode = solution.barcode
    except DomainError as error:
        if not refusal_shown_in_form(error):
            raise
        return _form_page(request, session, form, error=error)
    return see_other(request, f"/reference-materials/solutions/{barcode}")


# ---------------------------------------------------------------- one solution


@router.get("/reference-materials/solutions/{barcode}/label.pdf", include_in_schema=False)
def solution_label(request: Request, session: DbSession, barcode: str,
                   fmt: str = Query("thermal", alias="format", pattern="^(thermal|a4)$"),
                   user: User = require(Permission.MATERIALS_READ)):
    solution = find_solution(session, barcode)
    pdf = printing.solution_label_pdf(session, solution, fmt)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="label-{solution.barcode}-{fmt}.pdf"',
        "Cache-Control": "private, no-store"})


@router.get("/reference-materials/solutions/{barcode}/traceability.pdf", include_in_schema=False)
def solution_traceability(request: Request, session: DbSession, barcode: str,
                          user: User = require(Permission.MATERIALS_READ)):
    solution = find_solution(session, barcode)
    pdf = printing.solution_traceability_pdf(session, solution, language=current_language())
    day = lab_calendar(session).today().isoformat()
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="traceability-{solution.barcode}-{day}.pdf"',
        "Cache-Control": "private, no-store"})


@router.get("/reference-materials/solutions/{barcode}", include_in_schema=False)
def solution_page(request: Request, session: DbSession, barcode: str,
                  user: User = require(Permission.MATERIALS_READ)):
    solution = find_solution(session, barcode)
    uses = session.scalars(
        select(MaterialUse).where(MaterialUse.item_kind == "solution", MaterialUse.item_id == solution.id)
        .order_by(MaterialUse.used_at.desc(), MaterialUse.id.desc()).limit(50)
    ).all()
    view = printing.trace_view(session, solution, more_people=[u.recorded_by_id for u in uses])
    components = components_of(session, [solution.id])[solution.id]
    children = session.scalars(
        select(StandardSolution).where(StandardSolution.parent_solution_id == solution.id)
        .order_by(StandardSolution.prepared_at, StandardSolution.id).limit(50)
    ).all()
    calendar = lab_calendar(session)
    may_use = Permission.MATERIALS_USE in getattr(request.state, "permissions", frozenset())
    return render(request, "reference_materials/solution_detail.html", {
        "solution": solution, "view": view, "concentrations": printing.concentrations(components),
        "usability": check_material(session, solution, utcnow()), "uses": uses, "children": children,
        "people": view.people, "item_href": item_href, "now_local": local_input(utcnow(), calendar),
        "can_use": may_use and solution.state == SolutionState.IN_USE.value,
        "can_discard": may_use and solution.state in (SolutionState.IN_USE.value, SolutionState.USED_UP.value),
        **display_context(session),
    })


def _act(request: Request, session: Session, barcode: str, act) -> Response:
    solution = find_solution(session, barcode)
    with committing(session):
        act(solution)
    return see_other(request, f"/reference-materials/solutions/{solution.barcode}")


@router.post("/reference-materials/solutions/{barcode}/use", include_in_schema=False)
def record_use(request: Request, session: DbSession, barcode: str, quantity: Amount = "",
               quantity_unit: UnitText = "mL", purpose: Short = "", used_at: Amount = "",
               user: User = require(Permission.MATERIALS_USE)):
    calendar = lab_calendar(session)

    def act(solution: StandardSolution) -> None:
        amount: Decimal | None = service.to_decimal(quantity, gettext("Amount used"), required=False)
        service.record_use(session, user, solution, parse_local_moment(used_at, calendar), quantity=amount,
                           quantity_unit=quantity_unit if amount is not None else "", purpose=purpose)

    return _act(request, session, barcode, act)


@router.post("/reference-materials/solutions/{barcode}/used-up", include_in_schema=False)
def mark_used_up(request: Request, session: DbSession, barcode: str, at: Amount = "",
                 user: User = require(Permission.MATERIALS_USE)):
    calendar = lab_calendar(session)
    return _act(request, session, barcode,
                lambda solution: service.mark_used_up(session, user, solution, parse_local_moment(at, calendar)))


@router.post("/reference-materials/solutions/{barcode}/discard", include_in_schema=False)
def discard_solution(request: Request, session: DbSession, barcode: str,
                     reason: Annotated[str, Form(max_length=500)] = "", at: Amount = "",
                     user: User = require(Permission.MATERIALS_USE)):
    calendar = lab_calendar(session)
    return _act(request, session, barcode, lambda solution: service.dispose_item(
        session, user, solution, reason=reason, at=parse_local_moment(at, calendar)))


# ---------------------------------------------------------------- forward traceability of a lot


FORWARD_PAGE_SIZE = 50


@router.get("/reference-materials/lots/{lot_id}/forward.csv", include_in_schema=False)
def forward_export(request: Request, session: DbSession, lot_id: RowId,
                   user: User = require(Permission.MATERIALS_READ)):
    lot = service.get_lot(session, lot_id)
    material = session.get(ReferenceMaterial, lot.material_id)
    body = printing.forward_csv(session, lot, material.certificate_no)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"forward-{material.certificate_no}-{lot.lot_no}.csv")
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/reference-materials/lots/{lot_id}/forward", include_in_schema=False)
def forward_page(request: Request, session: DbSession, lot_id: RowId, page: int = Query(1, ge=1, le=100_000),
                 user: User = require(Permission.MATERIALS_READ)):
    lot = service.get_lot(session, lot_id)
    material = session.get(ReferenceMaterial, lot.material_id)
    total = count_forward(session, lot.id)
    usages = forward_traceability(session, lot.id, limit=FORWARD_PAGE_SIZE, offset=(page - 1) * FORWARD_PAGE_SIZE)
    change = printing.latest_lot_change(session, lot) if lot.status != LotStatus.ACTIVE.value else None
    return render(request, "reference_materials/forward.html", {
        "lot": lot, "material": material, "change": change, "item_href": item_href,
        "page": Page(usages, page, FORWARD_PAGE_SIZE, total),
        "pager_base": f"/reference-materials/lots/{lot.id}/forward?",
        "affected_since": change.effective_at if change is not None else None,
    }, block="results")
