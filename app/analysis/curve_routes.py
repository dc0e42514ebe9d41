"""Pages of calibration curves: the list, recording one from standards (preview the fit, then
save), and a curve's page with its points, fit, acceptance, validity, plot and the standards used.

Routes are thin: parse the form, call one service inside the unit of work; a refusal the analyst
can act on re-renders the form with the message and what was typed (nothing saved). Saving
redirects to the curve's page (post/redirect/get). Every form works without JavaScript; the list
filters through htmx.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import curves, svg_plot
from app.analysis.codes import clean_code
from app.analysis.models import CurveKind
from app.analysis.numbers import round_gbt8170
from app.core.auth import DbSession, require
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import attempt, pager_base, render, see_other
from app.instruments.models import Instrument
from app.people.models import User

router = APIRouter()

BASE = "/curves"
Code = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=100)]
Cells = Annotated[list[str], Form(max_length=60)]
FORM_ROWS = 8
KIND_NAMES = {CurveKind.LINEAR.value: N_("Linear"), CurveKind.QUADRATIC.value: N_("Quadratic")}
ITEM_PAGES = {"solution": "/reference-materials/solutions/", "unit": "/reference-materials/items/",
              "reagent": "/reference-materials/items/"}


def r_text(r: Decimal) -> str:
    """r to five decimals (GB/T 8170), as curve acceptance is read."""
    return format(round_gbt8170(r, decimals=5), "f")




def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"code": "", "reason": "", "kind_names": KIND_NAMES, "item_pages": ITEM_PAGES,
            "equation": curves.equation, "r_text": r_text,
            "can_record": Permission.ANALYSIS_RECORD in getattr(request.state, "permissions", frozenset()),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()),
                    reason=getattr(error, "reason", ""))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def curve_list(request: Request, session: DbSession, method: Annotated[str, Query(max_length=60)] = "",
               parameter: Annotated[str, Query(max_length=60)] = "",
               instrument: Annotated[str, Query(max_length=40)] = "",
               accepted: Annotated[str, Query(pattern="^(yes|no)?$")] = "", page: PageNo = 1,
               user: User = require(Permission.ANALYSIS_READ)):
    """Curves, newest first; filtered by method, parameter, instrument and acceptance (htmx: the results only)."""
    size = request.app.state.settings.page_size
    found = curves.list_curves(session, method=method, parameter=parameter, instrument=instrument,
                               accepted=accepted, page=page, size=size)
    params = {"method": method.strip(), "parameter": parameter.strip(), "instrument": instrument.strip(),
              "accepted": accepted}
    return show(request, "curves/list.html", {"page": found, "filters": params, "now": utcnow(),
                                              "pager_base": pager_base(BASE, params)}, block="results")


# ---------------------------------------------------------------- recording a curve


def _local_now(session: Session) -> str:
    return utcnow().astimezone(lab_calendar(session).tz).strftime("%Y-%m-%dT%H:%M")


def _form_context(session: Session, form: dict[str, Any]) -> dict[str, Any]:
    instruments = list(session.scalars(select(Instrument.asset_no).order_by(Instrument.asset_no).limit(500)))
    choices = curves.curve_choices(session)
    parameters = sorted({p for _, params in choices for p in params})
    return {"form": form, "choices": choices, "parameters": parameters, "instruments": instruments,
            "kinds": list(KIND_NAMES)}


def _blank_form(session: Session) -> dict[str, Any]:
    rows = [{"level": str(i), "concentration": "", "response": "", "barcode": ""} for i in range(FORM_ROWS)]
    return {"method": "", "parameter": "", "instrument": "", "kind": CurveKind.LINEAR.value,
            "measured_at": _local_now(session), "response_unit": "", "rows": rows}


@router.get(f"{BASE}/new", include_in_schema=False)
def new_curve(request: Request, session: DbSession, user: User = require(Permission.ANALYSIS_RECORD)):
    return show(request, "curves/new.html", _form_context(session, _blank_form(session)))


def _typed_rows(level: list[str], concentration: list[str], response: list[str],
                barcode: list[str]) -> list[dict[str, str]]:
    count = max(len(level), len(concentration), len(response), len(barcode), 0)

    def cell(cells: list[str], i: int) -> str:
        return cells[i] if i < len(cells) else ""

    return [{"level": cell(level, i), "concentration": cell(concentration, i), "response": cell(response, i),
             "barcode": cell(barcode, i)} for i in range(min(count, curves.MAX_POINTS + FORM_ROWS))]


@router.post(f"{BASE}/new", include_in_schema=False)
def record_curve(request: Request, session: DbSession, method: Small = "", parameter: Small = "",
                 instrument: Small = "", kind: Small = "linear", measured_at: Small = "", response_unit: Small = "",
                 action: Small = "save", level: Cells = [], concentration: Cells = [],  # noqa: B006
                 response: Cells = [], barcode: Cells = [],  # noqa: B006
                 user: User = require(Permission.ANALYSIS_RECORD)):
    """Preview the fit (nothing saved) or save the curve as measured."""
    rows = _typed_rows(level, concentration, response, barcode)
    form = {"method": method, "parameter": parameter, "instrument": instrument, "kind": kind,
            "measured_at": measured_at, "response_unit": response_unit, "rows": rows}
    facts = curves.CurveFacts(
        method_code=method, parameter=parameter, instrument=instrument, measured_at=measured_at, kind=kind,
        response_unit=response_unit,
        points=[curves.PointFacts(r["level"], r["concentration"], r["response"], r["barcode"]) for r in rows])
    if action == "preview":
        checked, error = attempt(session, lambda: curves.preview_curve(session, user, facts))
        context = _form_context(session, form)
        if checked is not None:
            context["preview"] = checked
            context["preview_svg"] = svg_plot.fit_svg(
                checked.fit, [(p.concentration, p.response) for p in checked.points],
                x_label=checked.parameter.unit, y_label=checked.response_unit)
        return show(request, "curves/new.html", context, error=error)
    curve, error = attempt(session, lambda: curves.record_curve(session, user, facts))
    if error is not None:
        return show(request, "curves/new.html", _form_context(session, form), error=error)
    return see_other(request, f"{BASE}/{curve.code}")


# ---------------------------------------------------------------- one curve


@router.get(f"{BASE}/{{code}}", include_in_schema=False)
def curve_page(request: Request, session: DbSession, code: Code, user: User = require(Permission.ANALYSIS_READ)):
    curve = curves.curve_by_code(session, code)
    view = curves.curve_view(session, curve)
    now = utcnow()
    state = "rejected" if not curve.accepted else "expired" if now > curve.valid_until else "valid"
    plot = svg_plot.curve_svg(curve, view.points, x_label=f"{curve.parameter} ({curve.concentration_unit})",
                              y_label=curve.response_unit)
    return show(request, "curves/curve.html", {"view": view, "curve": curve, "state": state, "plot": plot})


# ---------------------------------------------------------------- navigation and scanning


def _scan_curve(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned or typed curve code (CC26-00001) opens its page."""
    if Permission.ANALYSIS_READ not in permissions:
        return None
    cleaned = clean_code(code)
    if not curves.CODE_RE.match(cleaned):
        return None
    with contextlib.suppress(DomainError):
        curve = curves.curve_by_code(session, cleaned)
        return ScanHit(f"{BASE}/{curve.code}", curve.code)
    return None


add_nav(NavItem("curves", N_("Calibration curves"), BASE, Permission.ANALYSIS_READ, 55))
add_scan_resolver("calibration_curve", _scan_curve)
