"""Pages of reports: the list, preparing a new one (header and the samples to cover), and the
report's page (header, results as they would print, the computed checklist, the history of
review, and the forms the reader may use now).

Routes are thin: parse, call one service of app.reports.drafts / review / checklist in the unit
of work, render. A refusal re-renders the form with what was typed (nothing saved); success
redirects (post/redirect/get). The posts that act on a report live in review_routes.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.analysis.models import LimitSet
from app.analysis.results import reported_text
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import Page, attempt, pager_base, render, see_other, wants_fragment
from app.people.models import User
from app.reports import checklist, drafts, review
from app.reports.content import ReportContent, ReportLine, ReportSampleContent, load_content
from app.reports.models import Report, ReportSample, ReportState, ReviewLevel
from app.samples.models import Sample

router = APIRouter()

BASE = "/reports"
PageNo = Annotated[int, Query(ge=1, le=100_000)]

STATE_NAMES = {
    ReportState.DRAFT.value: N_("Being compiled"),
    ReportState.SUBMITTED.value: N_("Awaiting check"),
    ReportState.CHECKED.value: N_("Awaiting technical review"),
    ReportState.REVIEWED.value: N_("Awaiting approval (签发)"),
    ReportState.APPROVED.value: N_("Approved, being issued"),
    ReportState.ISSUED.value: N_("Report issued"),
    ReportState.SUPERSEDED.value: N_("Superseded"),
    ReportState.WITHDRAWN.value: N_("Withdrawn"),
}
STATE_BADGES = {
    ReportState.DRAFT.value: "muted", ReportState.SUBMITTED.value: "warn", ReportState.CHECKED.value: "warn",
    ReportState.REVIEWED.value: "warn", ReportState.APPROVED.value: "warn", ReportState.ISSUED.value: "good",
    ReportState.SUPERSEDED.value: "muted", ReportState.WITHDRAWN.value: "bad",
}
LEVEL_NAMES = {
    ReviewLevel.COMPILE.value: N_("Compiled (编制)"),
    ReviewLevel.CHECK.value: N_("Check (校核)"),
    ReviewLevel.REVIEW.value: N_("Technical review (审核)"),
    ReviewLevel.APPROVE.value: N_("Approval (签发)"),
}
REPORT_STATES = tuple(s.value for s in ReportState)


def names() -> dict[str, Any]:
    """The names every report page shows states and levels by."""
    return {"state_names": STATE_NAMES, "state_badges": STATE_BADGES, "level_names": LEVEL_NAMES}


def refusal(error: DomainError | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language())}


# ---------------------------------------------------------------- the list


@dataclass(frozen=True)
class ReportRow:
    report: Report
    preparer: User
    samples: int


def _filtered(state: str, number: str, client: str) -> Select:
    samples = (select(func.count(ReportSample.id)).where(ReportSample.report_id == Report.id)
               .correlate(Report).scalar_subquery())
    stmt = (select(Report, User, samples.label("samples")).join(User, User.id == Report.prepared_by_id)
            .order_by(Report.created_at.desc(), Report.id.desc()))
    if state:
        stmt = stmt.where(Report.state == state)
    if number:
        stmt = stmt.where(func.lower(Report.report_no).contains(number.lower(), autoescape=True))
    if client:
        stmt = stmt.where(func.lower(Report.client_name).contains(client.lower(), autoescape=True))
    return stmt


def list_reports(session: Session, *, state: str = "", number: str = "", client: str = "", page: int = 1,
                 size: int = 50) -> Page[ReportRow]:
    """Reports newest first, filtered; two queries whatever the page holds."""
    stmt = _filtered(state, number, client)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(size).offset((page - 1) * size)).all()
    return Page([ReportRow(r, u, n) for r, u, n in rows], page, size, total)


@router.get(BASE, include_in_schema=False)
def report_list(request: Request, session: DbSession,
                state: Annotated[str, Query(max_length=12, pattern=f"^({'|'.join(REPORT_STATES)})?$")] = "",
                number: Annotated[str, Query(max_length=40)] = "", client: Annotated[str, Query(max_length=200)] = "",
                page: PageNo = 1, user: User = require(Permission.REPORTS_READ)):
    """Reports, newest first, by state, number or client (htmx: the results only)."""
    size = request.app.state.settings.page_size
    params = {"state": state, "number": number.strip(), "client": client.strip()}
    found = list_reports(session, state=state, number=params["number"], client=params["client"], page=page,
                         size=size)
    return render(request, "reports/list.html", {
        **names(), "page": found, "filters": params, "pager_base": pager_base(BASE, params),
        "states": REPORT_STATES}, block="results")


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    return render(request, template, {**names(), **context, **refusal(error)}, block=block,
                  status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- preparing a new report


def header_form(**values: Any) -> dict[str, Any]:
    return {"title": "", "client_name": "", "client_contact": "", "language": "zh", "limit_set": "",
            "target_class": "", "remarks": "", **values}


def limit_sets(session: Session) -> list[LimitSet]:
    """The stored limit sets a report may be evaluated against (a short list)."""
    return list(session.scalars(select(LimitSet).order_by(LimitSet.code, LimitSet.version.desc()).limit(200)))


def picker(request: Request, session: Session, filters: dict[str, str], page: int) -> Page[Sample]:
    return drafts.reportable_samples(session, client=filters["client"], site=filters["site"], text=filters["text"],
                                     page=page, size=request.app.state.settings.page_size)


def pick_filters(client: str = "", site: str = "", text: str = "") -> dict[str, str]:
    return {"client": client.strip(), "site": site.strip(), "text": text.strip()}


def _new_page(request: Request, session: Session, form: dict[str, Any], filters: dict[str, str], page: int,
              chosen: list[str], error: DomainError | None = None) -> Response:
    return show(request, "reports/new.html", {
        "form": form, "limit_sets": limit_sets(session), "pick_filters": filters,
        "picker": picker(request, session, filters, page), "chosen": chosen}, error=error)


PickText = Annotated[str, Query(max_length=60)]


@router.get(f"{BASE}/new", include_in_schema=False)
def new_report(request: Request, session: DbSession, pick_client: Annotated[str, Query(max_length=200)] = "",
               pick_site: Annotated[str, Query(max_length=20)] = "", pick_text: PickText = "",
               pick_page: PageNo = 1, user: User = require(Permission.REPORTS_PREPARE)):
    """The header to type and the reportable samples to tick."""
    filters = pick_filters(pick_client, pick_site, pick_text)
    return _new_page(request, session, header_form(), filters, pick_page, [])


Small = Annotated[str, Form(max_length=200)]
Remarks = Annotated[str, Form(max_length=2000)]
Language = Annotated[str, Form(max_length=4)]
LimitSetId = Annotated[str, Form(max_length=10, pattern=r"^\d{0,10}$")]
Many = Annotated[list[str], Form(max_length=500)]


@router.post(f"{BASE}/new", include_in_schema=False)
def prepare_report(request: Request, session: DbSession, title: Small = "", client_name: Small = "",
                  client_contact: Small = "", language: Language = "zh", limit_set: LimitSetId = "",
                  target_class: Annotated[str, Form(max_length=20)] = "", remarks: Remarks = "",
                  samples: Many = [], pick_client: Small = "",  # noqa: B006
                  pick_site: Annotated[str, Form(max_length=20)] = "",
                  pick_text: Annotated[str, Form(max_length=60)] = "",
                  pick_page: Annotated[int | None, Form(ge=1, le=100_000)] = None,
                  user: User = require(Permission.REPORTS_PREPARE)):
    """Create the draft; the picker's filter and page buttons post here too and only re-render
    the form (with what was typed and ticked)."""
    form = header_form(title=title, client_name=client_name, client_contact=client_contact, language=language,
                       limit_set=limit_set, target_class=target_class, remarks=remarks)
    chosen = list(dict.fromkeys(s.strip() for s in samples if s.strip()))
    filters = pick_filters(pick_client, pick_site, pick_text)
    if pick_page is not None:
        return _new_page(request, session, form, filters, pick_page, chosen)
    report, error = attempt(session, lambda: drafts.create_report(
        session, user, title=title, client_name=client_name, client_contact=client_contact, language=language,
        limit_set_id=limit_set or None, target_class=target_class, remarks=remarks, sample_nos=chosen))
    if error is not None:
        session.expire_all()
        return _new_page(request, session, form, filters, 1, chosen, error)
    return see_other(request, f"{BASE}/{report.report_no}")


# ---------------------------------------------------------------- the report's page


LEVEL_PERMISSIONS = {ReviewLevel.CHECK: Permission.REPORTS_CHECK, ReviewLevel.REVIEW: Permission.REPORTS_REVIEW,
                     ReviewLevel.APPROVE: Permission.REPORTS_APPROVE}
SIGN_TITLES = {ReviewLevel.CHECK: N_("Sign as checked (校核)"), ReviewLevel.REVIEW: N_("Sign as reviewed (审核)")}


@dataclass(frozen=True)
class ResultRow:
    """One line of the results table: the sample's facts on its first line only."""

    sample: ReportSampleContent
    line: ReportLine
    text: str  # the value as the report prints it (GB/T 8170 once, below-MDL style)
    first: bool


def result_rows(content: ReportContent, language: str) -> list[ResultRow]:
    rows = []
    for sample in content.samples:
        for i, line in enumerate(sample.lines):
            text = reported_text(line.result, line.rule, language) if line.result is not None else ""
            rows.append(ResultRow(sample, line, text, i == 0))
        if not sample.lines:
            rows.append(ResultRow(sample, ReportLine(""), "", True))
    return rows


def level_form(session: Session, user: User, permissions: frozenset[Permission], report: Report,
               content: ReportContent, level: ReviewLevel | None) -> dict[str, Any] | None:
    """The form of the level the report awaits, for a reader holding that level's permission;
    with the reason the service would refuse this reader (asked, not decided, here)."""
    if level not in LEVEL_PERMISSIONS or LEVEL_PERMISSIONS[level] not in permissions:
        return None
    form: dict[str, Any] = {"level": level.value, "sign": SIGN_TITLES.get(level), "refusal": "", "refusal_code": ""}
    try:
        review.assert_may_act(session, user, report, content, level)
    except DomainError as error:
        form.update(refusal=error.message(current_language()), refusal_code=error.code)
    return form


def report_page(request: Request, session: Session, report_no: str, *, error: DomainError | None = None,
                form_name: str = "", values: dict[str, Any] | None = None, header: dict[str, Any] | None = None,
                filters: dict[str, str] | None = None, pick_page: int = 1, block: str | None = None) -> Response:
    """The report as the records stand now, with the forms this reader may use."""
    report = drafts.report_by_no(session, report_no)
    content = load_content(session, report)
    user: User = request.state.user
    permissions: frozenset[Permission] = request.state.permissions
    in_review = report.state in review.REVIEW_STATES
    awaited = review.next_level(session, report, content) if in_review else None
    # the state the signatures say: data corrected since signing break them all, and the report
    # waits for its preparer again although its row still says where it was (the next act syncs it)
    effective = review.state_for(awaited) if in_review else report.state
    prepares = Permission.REPORTS_PREPARE in permissions
    can_edit = report.state == ReportState.DRAFT.value and prepares
    history = review.review_history(session, report, content)
    people = {u.id: u for u in session.scalars(select(User).where(User.id == report.prepared_by_id))}
    filters = filters or pick_filters()
    context: dict[str, Any] = {
        "report": report, "content": content, "content_sha256": content.content_sha256,
        "rows": result_rows(content, report.language), "people": people, "history": history,
        "checklist": checklist.compute_checklist(session, report, content),
        "superseded_by": session.get(Report, report.superseded_by_id) if report.superseded_by_id else None,
        "can_edit": can_edit, "stale": effective != report.state,
        "can_submit": effective == ReportState.DRAFT.value and prepares and user.id == report.prepared_by_id,
        "can_review": bool(permissions & set(LEVEL_PERMISSIONS.values())),
        "level_form": level_form(session, user, permissions, report, content, awaited),
        "form_name": form_name, "values": values or {}, "fragment": wants_fragment(request),
    }
    if can_edit:
        context.update(
            form=header or header_form(
                title=report.title, client_name=report.client_name, client_contact=report.client_contact,
                language=report.language, limit_set=str(report.limit_set_id or ""),
                target_class=report.target_class, remarks=report.remarks),
            limit_sets=limit_sets(session), pick_filters=filters, chosen=(values or {}).get("samples", []),
            picker=picker(request, session, filters, pick_page), pick_open=any(filters.values()) or pick_page > 1,
            pick_base=pager_base(f"{BASE}/{report.report_no}", {f"pick_{k}": v for k, v in filters.items()}))
    return show(request, "reports/detail.html", context, error=error, block=block)


ReportNo = Annotated[str, Path(max_length=40)]


@router.get(f"{BASE}/{{report_no}}", include_in_schema=False)
def report_detail(request: Request, session: DbSession, report_no: ReportNo,
                  pick_client: Annotated[str, Query(max_length=200)] = "",
                  pick_site: Annotated[str, Query(max_length=20)] = "", pick_text: PickText = "",
                  pick_page: PageNo = 1, user: User = require(Permission.REPORTS_READ)):
    return report_page(request, session, report_no, filters=pick_filters(pick_client, pick_site, pick_text),
                       pick_page=pick_page)


add_nav(NavItem("reports", N_("Reports"), BASE, Permission.REPORTS_READ, 70))
