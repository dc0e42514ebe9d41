"""Pages of holding times and of the custodian's day (issue 7 items 3 and 6).

`/holding`: the worklist of open clocks, keyset-paged in deadline order, filtered (colour,
parameter, matrix, sample state) through htmx or a plain GET form. `/holding/{sample_no}/deviation`:
the quality manager records that a late preparation or analysis may go ahead, with the reason.
`/custodian`: the custodian's day. Routes are thin: parse, call one service, render.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, NotAuthenticated, PermissionDenied
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, Worklist, add_nav, add_worklist
from app.core.web import query_string, render, see_other
from app.people.models import User
from app.samples import custodian_day, holding, registration
from app.samples.models import Sample
from app.samples.names import KIND_NAMES, MATRIX_NAMES, QC_READERS, STATE_NAMES

router = APIRouter()

BASE = "/holding"
SampleNo = Annotated[str, Path(max_length=60)]
COLOUR_RE = f"^({'|'.join((*holding.COLOURS, 'due'))})?$"
STATE_RE = f"^({'|'.join(holding.CLOCK_STATES)})?$"
MATRIX_RE = f"^({'|'.join(registration.MATRICES)})?$"
COLOUR_NAMES = {
    "red": N_("Expired"), "amber": N_("Running out (over three quarters of the time used)"), "green": N_("In time"),
    "none": N_("As soon as possible"), "due": N_("Expired or running out"), "stopped": N_("Stopped"),
}
ACT_LABELS = {"preparation": N_("Preparation"), "analysis": N_("Analysis")}
ERROR_FIELDS = {
    "field_required": "reason", "field_too_long": "reason", "holding_deviation_act_unknown": "act",
    "holding_deviation_parameters_required": "parameters", "holding_deviation_no_clock": "parameters",
    "holding_deviation_no_deadline": "parameters", "holding_deviation_not_due": "parameters",
    "holding_deviation_exists": "parameters",
}


def sees_qc(request: Request) -> bool:
    return bool(QC_READERS & getattr(request.state, "permissions", frozenset()))


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"kind_names": KIND_NAMES, "state_names": STATE_NAMES, "matrix_names": MATRIX_NAMES,
            "colour_names": COLOUR_NAMES, "act_labels": ACT_LABELS, "sees_qc": sees_qc(request), **context}
    if error is not None:
        full.update({"refused": True, "code": error.code, "detail": error.message(current_language()),
                     "error_field": ERROR_FIELDS.get(error.code, "")})
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the worklist


@router.get(BASE, include_in_schema=False)
def holding_worklist(request: Request, session: DbSession,
                     colour: Annotated[str, Query(pattern=COLOUR_RE)] = "",
                     parameter: Annotated[str, Query(max_length=60)] = "",
                     matrix: Annotated[str, Query(pattern=MATRIX_RE)] = "",
                     state: Annotated[str, Query(pattern=STATE_RE)] = "",
                     after: Annotated[str, Query(max_length=80)] = "",
                     user: User = require(Permission.SAMPLES_READ)):
    filters = holding.WorklistFilters(colour=colour, parameter=parameter.strip(), matrix=matrix, state=state)
    size = request.app.state.settings.page_size
    page = holding.worklist(session, filters, size=size, cursor=after)
    params = filters.as_params()
    next_url = f"{BASE}?{query_string(params, after=page.next_cursor)}" if page.next_cursor else None
    first_url = f"{BASE}?{query_string(params)}" if not page.first else None
    return show(request, "holding/worklist.html", {
        "page": page, "filters": params, "next_url": next_url, "first_url": first_url,
        "parameters": holding.worklist_parameters(session), "states": holding.CLOCK_STATES,
        "matrices": registration.MATRICES, "colours": (*holding.COLOURS, "due"),
    }, block="results")


# ---------------------------------------------------------------- deviations


def _deviation_context(session: Session, sample: Sample, chosen: list[str], act: str, reason: str) -> dict:
    section = holding.clock_section(session, sample)
    untouched = [r.clock.parameter for r in section.rows if r.reading.colour == holding.ClockColour.RED
                 and not r.deviations] if section else []
    return {"sample": sample, "section": section, "chosen": chosen or untouched,
            "act": act, "reason": reason, "acts": holding.ACTS}


@router.get(f"{BASE}/{{sample_no}}/deviation", include_in_schema=False)
def deviation_form(request: Request, session: DbSession, sample_no: SampleNo,
                   parameter: Annotated[str, Query(max_length=60)] = "",
                   act: Annotated[str, Query(pattern="^(preparation|analysis)?$")] = "",
                   user: User = require(Permission.HOLDING_DEVIATION)):
    sample = registration.sample_by_no(session, sample_no)
    chosen = [parameter.strip()] if parameter.strip() else []
    return show(request, "holding/deviation.html", _deviation_context(session, sample, chosen, act or "analysis", ""))


@router.post(f"{BASE}/{{sample_no}}/deviation", include_in_schema=False)
def record_deviation(request: Request, session: DbSession, sample_no: SampleNo,
                     parameters: Annotated[list[str], Form(max_length=60)] = [],  # noqa: B006
                     act: Annotated[str, Form(max_length=20)] = "",
                     reason: Annotated[str, Form(max_length=2000)] = "",
                     user: User = require(Permission.HOLDING_DEVIATION)):
    sample = registration.sample_by_no(session, sample_no)
    try:
        with committing(session):
            holding.record_holding_deviation(session, user, sample, parameters, act, reason)
    except DomainError as error:
        if isinstance(error, PermissionDenied | NotAuthenticated) or error.http_status not in (409, 422):
            raise
        session.refresh(sample)
        context = _deviation_context(session, sample, [p[:60] for p in parameters][:60], act[:20], reason[:2000])
        return show(request, "holding/deviation.html", context, error=error)
    return see_other(request, f"/samples/{sample.sample_no}#clocks")


# ---------------------------------------------------------------- the custodian's day


@router.get("/custodian", include_in_schema=False)
def custodian_page(request: Request, session: DbSession, user: User = require(Permission.SAMPLES_RECEIVE)):
    return show(request, "holding/custodian.html", {"day": custodian_day.custodian_day(session)})


# ---------------------------------------------------------------- shell


def _running_out(session: Session, user: Any) -> int:
    return holding.count_running_out(session)


add_nav(NavItem("custodian", N_("Custodian's day"), "/custodian", Permission.SAMPLES_RECEIVE, 45),
        NavItem("holding", N_("Holding times"), BASE, Permission.SAMPLES_READ, 48))
add_worklist(
    Worklist("holding_running_out", N_("Holding times running out"), Permission.SAMPLES_RECEIVE,
             f"{BASE}?colour=due", _running_out, 46),
    Worklist("holding_running_out_prep", N_("Holding times running out"), Permission.SAMPLES_PREPARE,
             f"{BASE}?colour=due", _running_out, 46),
    Worklist("samples_expected", N_("Samples expected at the lab, not yet received"), Permission.SAMPLES_RECEIVE,
             "/custodian#expected", custodian_day.count_expected, 45),
    Worklist("storage_full", N_("Storage locations full or nearly full"), Permission.STORAGE_MANAGE,
             "/custodian#storage-full", custodian_day.count_storage_full, 47),
)
