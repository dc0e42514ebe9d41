"""Pages of analysis batches: the list, building one from the samples due (by holding deadline),
the worksheet (positions, missing standards to scan, a curve per parameter, Start), and the run
sequence as CSV for the instrument's software.

Routes are thin: parse the form, call one service in the unit of work; a refusal the analyst can
act on re-renders the page with the message and what was typed (nothing saved); success
redirects (post/redirect/get). Every form works without JavaScript; the list filters via htmx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import batches, methods, worksheet
from app.analysis.batches import StandardChoice
from app.analysis.codes import clean_code
from app.analysis.models import MethodVersion
from app.analysis.names import BATCH_STATE_NAMES as STATE_NAMES
from app.analysis.names import ROLE_NAMES
from app.core.auth import DbSession, require
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import attempt, pager_base, render, see_other
from app.instruments.models import Instrument, InstrumentUse
from app.instruments.status import check_usability
from app.people.models import User

router = APIRouter()

BASE = "/batches"
BatchNo = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=100)]
Text = Annotated[str, Form(max_length=500)]
Many = Annotated[list[str], Form(max_length=60)]
MY_OPEN = f"{BASE}?mine=1&state={','.join(batches.UNSUBMITTED_STATES)}"







def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"state_names": STATE_NAMES, "role_names": ROLE_NAMES,
            "can_record": Permission.ANALYSIS_RECORD in getattr(request.state, "permissions", frozenset()),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def batch_list(request: Request, session: DbSession, state: Annotated[str, Query(max_length=200)] = "",
               method: Annotated[str, Query(max_length=60)] = "", analyst: Annotated[str, Query(max_length=64)] = "",
               mine: Annotated[str, Query(max_length=1, pattern="^[01]?$")] = "", page: PageNo = 1,
               user: User = require(Permission.ANALYSIS_READ)):
    """Batches, newest first; filtered by state(s), method, analyst or the reader's own (htmx: the results)."""
    size = request.app.state.settings.page_size
    states = batches.clean_states(state)
    found = batches.list_batches(session, states=states, method=method, analyst=analyst,
                                 mine=user if mine == "1" else None, page=page, size=size)
    params = {"state": ",".join(states), "method": method.strip(), "analyst": analyst.strip(), "mine": mine}
    return show(request, "batches/list.html", {
        "page": found, "filters": params, "pager_base": pager_base(BASE, params), "states": batches.BATCH_STATES,
        "methods": methods.active_methods(session)}, block="results")


# ---------------------------------------------------------------- building


def _instrument_choices(session: Session, version: MethodVersion, parameters: list[str]) -> list[dict[str, Any]]:
    """The instruments the version allows (any that measures the parameters when it names none),
    each with whether it is usable now and why not."""
    allowed = methods.allowed_instrument_ids(session, version.id)
    query = select(Instrument).order_by(Instrument.asset_no)
    if allowed:
        query = query.where(Instrument.id.in_(allowed))
    else:
        query = query.where(Instrument.id.in_(select(InstrumentUse.instrument_id)
                                              .where(InstrumentUse.parameter.in_(parameters))))
    now = utcnow()
    choices = []
    for instrument in session.scalars(query.limit(50)):
        refusal = None
        for parameter in parameters:
            _, refusal = check_usability(session, instrument, now, parameter)
            if refusal is not None:
                break
        choices.append({"instrument": instrument, "usable": refusal is None,
                        "reason": refusal.message(current_language()) if refusal else ""})
    return choices


def _new_form(**values: Any) -> dict[str, Any]:
    return {"method": "", "parameters": [], "samples": [], "first_n": "", "instrument": "", "crm_barcode": "",
            "crm_value": "", "crm_u": "", "ccv_barcode": "", "ccv_value": "", "spike_barcode": "", "spike_added": "",
            "at": "", "note": "", **values}


def _new_context(request: Request, session: Session, form: dict[str, Any], page: int = 1) -> dict[str, Any]:
    context: dict[str, Any] = {"form": form, "methods": methods.active_methods(session), "version": None}
    if not form["method"]:
        return context
    try:
        method = methods.get_method(session, form["method"])
        version = methods.version_in_force(session, method.id, utcnow())
    except DomainError as error:
        context["method_problem"] = error.message(current_language())
        return context
    measured = list(methods.parameters_of(session, version.id))
    chosen = [p for p in form["parameters"] if p in measured] or measured
    size = request.app.state.settings.page_size
    context.update(
        method=method, version=version, measured=measured, chosen=chosen,
        due=batches.due_samples(session, version, chosen, limit=size, offset=(page - 1) * size),
        due_total=batches.count_due(session, chosen), page_no=page, page_size=size, now=utcnow(),
        instruments=_instrument_choices(session, version, chosen),
        needs={"crm": version.crm_per_batch > 0, "ccv": version.ccv_every > 0, "spike": version.spike_rate_pct > 0})
    return context


@router.get(f"{BASE}/new", include_in_schema=False)
def new_batch(request: Request, session: DbSession, method: Annotated[str, Query(max_length=60)] = "",
              parameters: Annotated[list[str], Query(max_length=60)] = [],  # noqa: B006
              page: PageNo = 1, user: User = require(Permission.ANALYSIS_RECORD)):
    """Choose the method (its version in force is shown) and parameters; then the samples due,
    earliest holding deadline first, the instrument and the standards."""
    form = _new_form(method=method.strip(), parameters=[p.strip() for p in parameters if p.strip()])
    return show(request, "batches/new.html", _new_context(request, session, form, page))


def _standards(form: dict[str, Any]) -> dict[str, StandardChoice]:
    return {
        "crm": StandardChoice(form["crm_barcode"], form["crm_value"], form["crm_u"]),
        "ccv": StandardChoice(form["ccv_barcode"], form["ccv_value"]),
        "spike": StandardChoice(form["spike_barcode"], spike_added=form["spike_added"]),
    }


def _first_due(session: Session, form: dict[str, Any]) -> list[str]:
    """The samples ticked, or else the first N due (N as typed; a bad N takes none)."""
    if form["samples"]:
        return form["samples"]
    text = str(form["first_n"]).strip()
    if not text.isdigit() or int(text) < 1:
        return []
    method = methods.get_method(session, form["method"])
    version = methods.version_in_force(session, method.id, utcnow())
    wanted = [p for p in form["parameters"] if p in methods.parameters_of(session, version.id)]
    return [d.sample.sample_no for d in batches.due_samples(session, version, wanted, limit=min(int(text), 500))]


@router.post(f"{BASE}/new", include_in_schema=False)
def build_batch(request: Request, session: DbSession, method: Small = "", parameters: Many = [],  # noqa: B006
                samples: Many = [], first_n: Small = "", instrument: Small = "",  # noqa: B006
                crm_barcode: Small = "", crm_value: Small = "", crm_u: Small = "", ccv_barcode: Small = "",
                ccv_value: Small = "", spike_barcode: Small = "", spike_added: Small = "", at: Small = "",
                note: Text = "", user: User = require(Permission.ANALYSIS_RECORD)):
    form = _new_form(method=method.strip(), parameters=[p.strip() for p in parameters if p.strip()],
                     samples=[s.strip() for s in samples if s.strip()], first_n=first_n, instrument=instrument,
                     crm_barcode=crm_barcode, crm_value=crm_value, crm_u=crm_u, ccv_barcode=ccv_barcode,
                     ccv_value=ccv_value, spike_barcode=spike_barcode, spike_added=spike_added, at=at, note=note)
    batch, error = attempt(session, lambda: batches.build_batch(
        session, user, form["method"], form["parameters"], _first_due(session, form), form["instrument"],
        at or None, standards=_standards(form), note=note))
    if error is not None:
        session.expire_all()
        return show(request, "batches/new.html", _new_context(request, session, form), error=error)
    return see_other(request, f"{BASE}/{batch.batch_no}")


# ---------------------------------------------------------------- the worksheet


def _worksheet_page(request: Request, session: Session, batch_no: str, *, error: DomainError | None = None,
                    form: str = "", values: dict[str, str] | None = None) -> Response:
    batch = batches.batch_by_no(session, batch_no)
    sheet = worksheet.worksheet(session, batch)
    user = getattr(request.state, "user", None)
    return show(request, "batches/worksheet.html", {
        "sheet": sheet, "form_name": form, "values": values or {},
        "is_analyst": user is not None and user.id == batch.analyst_id}, error=error)


@router.get(f"{BASE}/{{batch_no}}", include_in_schema=False)
def batch_page(request: Request, session: DbSession, batch_no: BatchNo,
               user: User = require(Permission.ANALYSIS_READ)):
    return _worksheet_page(request, session, batch_no)


@router.get(f"{BASE}/{{batch_no}}/sequence.csv", include_in_schema=False)
def sequence(session: DbSession, batch_no: BatchNo, user: User = require(Permission.ANALYSIS_READ)):
    """The run sequence for the instrument's software; no cell can start a formula."""
    batch = batches.batch_by_no(session, batch_no)
    body = worksheet.sequence_csv(worksheet.worksheet(session, batch))
    return Response("\ufeff" + body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{batch.batch_no}-sequence.csv"'})


def _act_on_batch(request: Request, session: Session, batch_no: str, form: str, values: dict[str, str],
                  act: Callable[[Any], Any]) -> Response:
    batch = batches.batch_by_no(session, batch_no)
    _, error = attempt(session, lambda: act(batch))
    if error is not None:
        session.expire_all()
        return _worksheet_page(request, session, batch_no, error=error, form=form, values=values)
    return see_other(request, f"{BASE}/{batch.batch_no}#{form}")


@router.post(f"{BASE}/{{batch_no}}/standards", include_in_schema=False)
def add_standard(request: Request, session: DbSession, batch_no: BatchNo, target: Small = "", barcode: Small = "",
                 expected_value: Small = "", expected_uncertainty: Small = "", spike_added: Small = "",
                 at: Small = "", user: User = require(Permission.ANALYSIS_RECORD)):
    values = {"target": target, "barcode": barcode, "expected_value": expected_value,
              "expected_uncertainty": expected_uncertainty, "spike_added": spike_added, "at": at}
    choice = StandardChoice(barcode, expected_value, expected_uncertainty, spike_added)
    return _act_on_batch(request, session, batch_no, "standards", values, lambda batch: batches.add_standard(
        session, user, batch, target, choice, at or None))


@router.post(f"{BASE}/{{batch_no}}/curves", include_in_schema=False)
def attach_curve(request: Request, session: DbSession, batch_no: BatchNo, parameter: Small = "", curve: Small = "",
                 at: Small = "", user: User = require(Permission.ANALYSIS_RECORD)):
    values = {"parameter": parameter, "curve": curve, "at": at}
    return _act_on_batch(request, session, batch_no, "curves", values, lambda batch: batches.attach_curve(
        session, user, batch, parameter, curve, at or None))


@router.post(f"{BASE}/{{batch_no}}/start", include_in_schema=False)
def start_batch(request: Request, session: DbSession, batch_no: BatchNo, at: Small = "",
                user: User = require(Permission.ANALYSIS_RECORD)):
    return _act_on_batch(request, session, batch_no, "start", {"start_at": at}, lambda batch: batches.start_batch(
        session, user, batch, at or None))


# ---------------------------------------------------------------- navigation, dashboard, scanning


def _scan_batch(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned analysis-batch number (AB26-00001) opens its worksheet."""
    if Permission.ANALYSIS_READ not in permissions:
        return None
    cleaned = clean_code(code)
    if not batches.CODE_RE.match(cleaned):
        return None
    try:
        batch = batches.batch_by_no(session, cleaned)
    except DomainError:
        return None
    return ScanHit(f"{BASE}/{batch.batch_no}", batch.batch_no)


add_nav(NavItem("batches", N_("Batches"), BASE, Permission.ANALYSIS_READ, 54))
add_worklist(Worklist("my_open_batches", N_("My open batches"), Permission.ANALYSIS_RECORD, MY_OPEN,
                      batches.count_my_open, 54))
add_scan_resolver("analysis_batch", _scan_batch)
