"""Pages and JSON API of the regulator's inspections (双随机) and of a report's evidence chain.

The inspector's draw form and findings, and the quality manager's responses, are the only posts
here. The inspector-writable ones (INSPECTIONS_RECORD) are a second exception, beside the personal
ones, to "an inspector changes nothing": they write the inspector's own records, never a lab one.
Routes are thin: parse, call one service of app.oversight.inspections / evidence, render.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import attempt, pager_base, render, see_other
from app.oversight import evidence, inspections
from app.oversight.inspection_errors import DrawSizeOutOfRange
from app.oversight.models import FindingSeverity, Inspection, InspectionState, InspectionTarget
from app.people.models import User

router = APIRouter()

BASE = "/oversight/inspections"
API = "/api/v1/inspections"
MAX_PAGE_SIZE = 200
PageNo = Annotated[int, Query(ge=1, le=100_000)]
InspectionNo = Annotated[str, Path(max_length=20)]
ReportNo = Annotated[str, Path(max_length=40)]
Short = Annotated[str, Form(max_length=200)]
ScopeValue = Annotated[str, Form(max_length=60)]
Text = Annotated[str, Form(max_length=inspections.MAX_TEXT + 100)]
STATE_PATTERN = f"^({'|'.join(s.value for s in InspectionState)})?$"

TARGET_NAMES = {InspectionTarget.SAMPLES.value: N_("Samples"), InspectionTarget.BATCHES.value: N_("Analysis batches"),
                InspectionTarget.REPORTS.value: N_("Reports")}
SEVERITY_NAMES = {FindingSeverity.OBSERVATION.value: N_("Observation only"), FindingSeverity.MINOR.value: N_("Minor"),
                  FindingSeverity.MAJOR.value: N_("Major")}
STATE_NAMES = {InspectionState.OPEN.value: N_("Under way"), InspectionState.CLOSED.value: N_("Closed")}
SCOPE_NAMES = {"matrix": N_("Matrix"), "site": N_("Site"), "method": N_("Method"), "state": N_("Record state")}


def names() -> dict[str, Any]:
    return {"target_names": TARGET_NAMES, "severity_names": SEVERITY_NAMES, "state_names": STATE_NAMES,
            "scope_names": SCOPE_NAMES, "targets": inspections.TARGETS, "severities": inspections.SEVERITIES}


def refusal(error: DomainError | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language())}


# ---------------------------------------------------------------- pages


@router.get(BASE, include_in_schema=False)
def inspection_list(request: Request, session: DbSession,
                    state: Annotated[str, Query(max_length=8, pattern=STATE_PATTERN)] = "",
                    page: PageNo = 1, user: User = require(Permission.INSPECTIONS_READ)):
    """Inspections, the newest draw first (htmx: the results only)."""
    params = {"state": state}
    found = inspections.list_inspections(session, user, state=state, page=page,
                                         size=request.app.state.settings.page_size)
    return render(request, "oversight/inspections.html", {
        **names(), "page": found, "filters": params, "pager_base": pager_base(BASE, params),
        "states": [s.value for s in InspectionState]}, block="results")


def _draw_form(request: Request, session: Session, form: dict[str, Any], error: DomainError | None = None) -> Response:
    return render(request, "oversight/inspection_new.html", {
        **names(), **refusal(error), "form": form, "choices": inspections.scope_choices(session),
        "max_draw": inspections.MAX_DRAW}, status_code=error.http_status if error else 200)


def _blank_form(**values: Any) -> dict[str, Any]:
    return {"title": "", "target": InspectionTarget.SAMPLES.value, "period_from": "", "period_to": "", "size": "5",
            "seed": "", "matrix": "", "site": "", "method": "", "state": "", **values}


@router.get(f"{BASE}/new", include_in_schema=False)
def new_inspection(request: Request, session: DbSession, user: User = require(Permission.INSPECTIONS_RECORD)):
    """The draw form (inspectors only)."""
    return _draw_form(request, session, _blank_form())


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(detail=f"{raw.strip() or '-'}: YYYY-MM-DD") from None


def _size(raw: str) -> int:
    text = raw.strip()
    if not text.lstrip("-").isdigit() or len(text) > 9:
        raise DrawSizeOutOfRange(size=text or "-", maximum=inspections.MAX_DRAW)
    return int(text)


@router.post(f"{BASE}/new", include_in_schema=False)
def draw(request: Request, session: DbSession, title: Short = "", target: Annotated[str, Form(max_length=12)] = "",
         period_from: Annotated[str, Form(max_length=10)] = "", period_to: Annotated[str, Form(max_length=10)] = "",
         size: Annotated[str, Form(max_length=9)] = "", seed: Annotated[str, Form(max_length=64)] = "",
         matrix: ScopeValue = "", site: ScopeValue = "", method: ScopeValue = "", state: ScopeValue = "",
         user: User = require(Permission.INSPECTIONS_RECORD)):
    """Draw the records and open the inspection; a refusal shows the form again as typed."""
    scope = {"matrix": matrix, "site": site, "method": method, "state": state}
    inspection, error = attempt(session, lambda: inspections.draw_inspection(
        session, user, title=title, target=target, period_from=_day(period_from), period_to=_day(period_to),
        scope=scope, size=_size(size), seed=seed or None))
    if error is not None:
        session.expire_all()
        form = _blank_form(title=title, target=target, period_from=period_from, period_to=period_to, size=size,
                           seed=seed, **scope)
        return _draw_form(request, session, form, error)
    return see_other(request, f"{BASE}/{inspection.inspection_no}")


def _detail(request: Request, session: Session, user: User, inspection: Inspection,
            error: DomainError | None = None, form: dict[str, Any] | None = None) -> Response:
    view = inspections.inspection_view(session, user, inspection)
    return render(request, "oversight/inspection_detail.html", {
        **names(), **refusal(error), "view": view, "form": form or {}},
        status_code=error.http_status if error else 200)


@router.get(f"{BASE}/{{inspection_no}}", include_in_schema=False)
def inspection_page(request: Request, session: DbSession, inspection_no: InspectionNo,
                    user: User = require(Permission.INSPECTIONS_READ)):
    """The draw (seed, population size and hash, the picks), whether it can be redone, the
    findings with the lab's responses, and the forms the reader may use."""
    return _detail(request, session, user, inspections.get_inspection(session, user, inspection_no))


def _target(raw: str) -> tuple[str, int | None]:
    """"sample:12" → ("sample", 12); "" → the inspection as a whole."""
    kind, _, number = raw.partition(":")
    return (kind, int(number)) if number.isdigit() and len(number) <= 12 else (kind, None)


@router.post(f"{BASE}/{{inspection_no}}/findings", include_in_schema=False)
def add_finding(request: Request, session: DbSession, inspection_no: InspectionNo,
                target: Annotated[str, Form(max_length=30)] = "", severity: Annotated[str, Form(max_length=12)] = "",
                text: Text = "", user: User = require(Permission.INSPECTIONS_RECORD)):
    target_type, target_id = _target(target.strip())

    def act() -> Any:
        inspection = inspections.get_inspection(session, user, inspection_no, for_update=True)
        return inspections.record_finding(session, user, inspection, target_type, target_id, severity, text)

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        inspection = inspections.get_inspection(session, user, inspection_no)
        return _detail(request, session, user, inspection, error,
                       {"target": target, "severity": severity, "text": text})
    return see_other(request, f"{BASE}/{inspection_no}#findings")


@router.post(f"{BASE}/{{inspection_no}}/close", include_in_schema=False)
def close(request: Request, session: DbSession, inspection_no: InspectionNo,
          user: User = require(Permission.INSPECTIONS_RECORD)):
    def act() -> Any:
        inspection = inspections.get_inspection(session, user, inspection_no, for_update=True)
        return inspections.close_inspection(session, user, inspection)

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _detail(request, session, user, inspections.get_inspection(session, user, inspection_no), error)
    return see_other(request, f"{BASE}/{inspection_no}")


@router.post(f"{BASE}/{{inspection_no}}/findings/{{finding_id}}/responses", include_in_schema=False)
def respond(request: Request, session: DbSession, inspection_no: InspectionNo,
            finding_id: Annotated[int, Path(ge=1, le=2**31 - 1)], text: Text = "",
            user: User = require(Permission.INSPECTIONS_RESPOND)):
    def act() -> Any:
        inspection = inspections.get_inspection(session, user, inspection_no)
        finding = inspections.get_finding(session, user, inspection, finding_id)
        return inspections.respond_to_finding(session, user, finding, text)

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _detail(request, session, user, inspections.get_inspection(session, user, inspection_no), error,
                       {"response_to": finding_id, "response": text})
    return see_other(request, f"{BASE}/{inspection_no}#finding-{finding_id}")


@router.get("/oversight/evidence/{report_no}", include_in_schema=False)
def evidence_page(request: Request, session: DbSession, report_no: ReportNo,
                  after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
                  user: User = require(Permission.AUDIT_READ)):
    """The report's full evidence chain: the record package's content, on screen."""
    chain = evidence.evidence_chain(session, user, report_no, events_after=after)
    return render(request, "oversight/evidence.html", {"chain": chain, "after": after})


# ---------------------------------------------------------------- JSON API


class DrawIn(BaseModel):
    title: str = Field(max_length=200)
    target: str = Field(max_length=12, description="samples, batches or reports")
    period_from: date
    period_to: date
    scope: dict[Annotated[str, Field(max_length=20)], Annotated[str, Field(max_length=60)]] = Field(
        default_factory=dict, max_length=10, description="matrix, site (code), method (code), state")
    size: int = Field(ge=-1_000_000, le=1_000_000)
    seed: str | None = Field(None, max_length=64)


class PickOut(BaseModel):
    id: int
    label: str


class DrawCheckOut(BaseModel):
    ok: bool
    population_matches: bool
    picks_match: bool
    population_size: int
    population_sha256: str
    picks: list[int]


class ResponseOut(BaseModel):
    text: str
    responded_at: str
    responded_by: str


class FindingOut(BaseModel):
    id: int
    target_type: str
    target_id: int | None
    severity: str
    text: str
    recorded_at: str
    recorded_by: str
    responses: list[ResponseOut]


class InspectionOut(BaseModel):
    inspection_no: str
    title: str
    target: str
    period_from: date
    period_to: date
    scope: dict[str, str]
    state: str
    drawn_at: str
    closed_at: str | None
    inspector: str
    seed: str
    population_size: int
    population_sha256: str
    draw_size: int
    picked: list[int]


class InspectionDetailOut(InspectionOut):
    picks: list[PickOut]
    verify: DrawCheckOut
    findings: list[FindingOut]


class InspectionPage(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    items: list[InspectionOut]


def inspection_json(inspection: Inspection, inspector: User | None) -> dict[str, Any]:
    return {"inspection_no": inspection.inspection_no, "title": inspection.title, "target": inspection.target,
            "period_from": inspection.period_from, "period_to": inspection.period_to,
            "scope": inspections.scope_of(inspection), "state": inspection.state,
            "drawn_at": inspection.drawn_at.isoformat(),
            "closed_at": inspection.closed_at.isoformat() if inspection.closed_at else None,
            "inspector": inspector.username if inspector else "", "seed": inspection.seed,
            "population_size": inspection.population_size, "population_sha256": inspection.population_sha256,
            "draw_size": inspection.draw_size, "picked": inspections.picked_ids(inspection)}


def detail_json(view: inspections.InspectionView) -> InspectionDetailOut:
    check = view.check
    return InspectionDetailOut(
        **inspection_json(view.inspection, view.inspector),
        picks=[PickOut(id=p.id, label=p.label) for p in view.picks],
        verify=DrawCheckOut(ok=check.ok, population_matches=check.population_matches, picks_match=check.picks_match,
                            population_size=check.population_size, population_sha256=check.population_sha256,
                            picks=check.picks),
        findings=[FindingOut(
            id=f.finding.id, target_type=f.finding.target_type, target_id=f.finding.target_id,
            severity=f.finding.severity, text=f.finding.text, recorded_at=f.finding.recorded_at.isoformat(),
            recorded_by=f.recorded_by.username if f.recorded_by else "",
            responses=[ResponseOut(text=r.text, responded_at=r.responded_at.isoformat(),
                                   responded_by=u.username if u else "") for r, u in f.responses])
            for f in view.findings])


@router.post(API, status_code=201, response_model=InspectionDetailOut, tags=["inspections"])
def api_draw(session: DbSession, body: DrawIn,
             user: User = require(Permission.INSPECTIONS_RECORD)) -> InspectionDetailOut:
    """Draw records at random (双随机) and open an inspection on them; the seed is fresh randomness
    unless given. The answer carries everything needed to redo the draw."""
    with committing(session):
        inspection = inspections.draw_inspection(
            session, user, title=body.title, target=body.target, period_from=body.period_from,
            period_to=body.period_to, scope=body.scope, size=body.size, seed=body.seed)
    return detail_json(inspections.inspection_view(session, user, inspection))


@router.get(API, response_model=InspectionPage, tags=["inspections"])
def api_inspections(request: Request, session: DbSession, page: PageNo = 1,
                    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
                    state: str = Query("", max_length=8, pattern=STATE_PATTERN),
                    user: User = require(Permission.INSPECTIONS_READ)) -> InspectionPage:
    """Inspections, the newest draw first."""
    per_page = per_page or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    found = inspections.list_inspections(session, user, state=state, page=page, size=per_page)
    return InspectionPage(page=found.page, per_page=per_page, total=found.total, pages=found.pages,
                          items=[InspectionOut(**inspection_json(r.inspection, r.inspector)) for r in found.items])


@router.get(f"{API}/{{inspection_no}}", response_model=InspectionDetailOut, tags=["inspections"])
def api_inspection(session: DbSession, inspection_no: InspectionNo,
                   user: User = require(Permission.INSPECTIONS_READ)) -> InspectionDetailOut:
    """One inspection: the seed, the population's size and hash, the picks, the draw redone now
    (`verify`) and the findings with the lab's responses."""
    inspection = inspections.get_inspection(session, user, inspection_no)
    return detail_json(inspections.inspection_view(session, user, inspection))


add_nav(NavItem("inspections", N_("Inspections"), BASE, Permission.INSPECTIONS_READ, 74))
