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

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import Page, pager_base, render
from app.people.models import User
from app.reports.models import Report, ReportSample, ReportState, ReviewLevel

router = APIRouter()

BASE = "/reports"
PageNo = Annotated[int, Query(ge=1, le=100_000)]

STATE_NAMES = {
    ReportState.DRAFT.value: N_("In preparation"),
    ReportState.SUBMITTED.value: N_("Awaiting check"),
    ReportState.CHECKED.value: N_("Awaiting technical review"),
    ReportState.REVIEWED.value: N_("Awaiting approval"),
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


add_nav(NavItem("reports", N_("Reports"), BASE, Permission.REPORTS_READ, 70))
