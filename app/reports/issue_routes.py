"""Pages of approval (签发), issue, amendment and withdrawal of a report.

The report page includes `reports/_issue_panel.html`, which loads the panel from
`/reports/{no}/issue-panel` and polls it (every second) only while a rendering or signing job
runs; without JavaScript the same address is a page of its own. No request waits on rendering or
signing: the posts queue a job and answer at once. The stored PDFs are served as stored: the one
rendered for approval and the signed one (with its SHA-256 in a header).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.job_queue import latest_job
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.web import attempt, is_htmx, render, see_other
from app.people.models import User
from app.reports import amendments, issue
from app.reports.issue_errors import PreparerNotFound
from app.reports.models import Report, ReportState
from app.reports.report_api import pdf_response

router = APIRouter()

ReportNo = Annotated[str, Path(max_length=40)]
Password = Annotated[str, Form(max_length=200)]
Reason = Annotated[str, Form(max_length=4000)]
PANEL = "reports/_issue_panel.html"


def _report(session: Session, report_no: str) -> Report:
    from app.reports.drafts import report_by_no

    return report_by_no(session, report_no)


def _names() -> dict[str, Any]:
    from app.reports.report_routes import names

    return names()


def _refusal(error: DomainError | None) -> dict[str, Any]:
    from app.core.i18n import current_language

    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language())}


def panel_context(session: Session, report: Report, user: User, permissions: frozenset) -> dict[str, Any]:
    """What the panel shows: the jobs of the report, the rendering, the issued facts, and the
    acts open to the reader now."""
    from app.reports.document import verify_url

    render_job = latest_job(session, "report", report.id, (issue.RENDER_JOB,))
    sign_job = latest_job(session, "report", report.id, (issue.SIGN_JOB,))
    calendar = lab_calendar(session)
    rendered_today = (report.rendered_at is not None and calendar.local_date(report.rendered_at) == calendar.today())
    people = _by_id(session, User, {report.rendered_for_id, report.withdrawn_by_id})
    related = _by_id(session, Report, {report.superseded_by_id, report.amends_id})
    pending = amendments.pending_amendment(session, report) if report.state == ReportState.ISSUED.value else None
    active = next((j for j in (render_job, sign_job) if j is not None and j.active), None)
    can_approve = Permission.REPORTS_APPROVE in permissions
    return {
        "report": report, "render_job": render_job, "sign_job": sign_job, "active_job": active,
        "polling": active is not None, "rendered_for": people.get(report.rendered_for_id),
        "rendered_for_me": bool(report.rendered_pdf_sha256) and report.rendered_for_id == user.id and rendered_today,
        "rendered_today": rendered_today, "can_approve": can_approve,
        "can_retry": Permission.REPORTS_RETRY_ISSUE in permissions,
        "can_amend": Permission.REPORTS_AMEND in permissions,
        "verify_url": verify_url(_public_base(session), report.verify_token) if report.pdf_sha256 else "",
        "superseded_by": related.get(report.superseded_by_id), "amends": related.get(report.amends_id),
        "withdrawn_by": people.get(report.withdrawn_by_id), "pending_amendment": pending,
        "today": calendar.today(), **_names(),
    }


def _by_id(session: Session, model: Any, ids: set[int | None]) -> dict[int, Any]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(wanted)))}


def _public_base(session: Session) -> str:
    from app.config import settings_of

    return settings_of(session).public_base_url


def show_panel(request: Request, session: Session, report_no: str, user: User, *,
               error: DomainError | None = None) -> Response:
    session.expire_all()  # what the act (or a job) wrote, not what the session cached
    report = _report(session, report_no)
    permissions = getattr(request.state, "permissions", frozenset())
    context = {**panel_context(session, report, user, permissions), "standalone": True, **_refusal(error)}
    return render(request, PANEL, context, block="panel", status_code=error.http_status if error else 200)


def _after(request: Request, session: Session, report_no: str, user: User, error: DomainError | None) -> Response:
    """htmx: the panel in place (with the refusal, if any); a plain form: the panel page."""
    if error is not None or is_htmx(request):
        return show_panel(request, session, report_no, user, error=error)
    return see_other(request, f"/reports/{report_no}/issue-panel")


@router.get("/reports/{report_no}/issue-panel", include_in_schema=False)
def issue_panel(request: Request, session: DbSession, report_no: ReportNo,
                seen: Annotated[str, Query(max_length=16)] = "",
                user: User = require(Permission.REPORTS_READ)) -> Response:
    """The approval and issue panel (htmx: the fragment, polled while a job runs). A poll that
    finds the report in another state than the one it `seen` (approved → issued) reloads the
    whole page: its badge, history and forms belong to the old state."""
    if seen and is_htmx(request):
        session.expire_all()
        if _report(session, report_no).state != seen:
            return Response(status_code=200, headers={"HX-Refresh": "true"})
    return show_panel(request, session, report_no, user)


@router.post("/reports/{report_no}/render", include_in_schema=False)
def post_render(request: Request, session: DbSession, report_no: ReportNo,
                user: User = require(Permission.REPORTS_APPROVE)) -> Response:
    """Prepare for signing: queue the PDF the signatory will read and approve."""
    _, error = attempt(session, lambda: issue.request_rendering(session, user, _report(session, report_no)))
    return _after(request, session, report_no, user, error)


@router.post("/reports/{report_no}/approve", include_in_schema=False)
def post_approve(request: Request, session: DbSession, report_no: ReportNo, password: Password = "",
                 user: User = require(Permission.REPORTS_APPROVE)) -> Response:
    """签发 with the password: signs the rendered PDF's hash and the content hash; signing runs as a job."""
    _, error = attempt(session, lambda: issue.approve_report(session, user, _report(session, report_no), password))
    return _after(request, session, report_no, user, error)


@router.post("/reports/{report_no}/retry-issue", include_in_schema=False)
def post_retry(request: Request, session: DbSession, report_no: ReportNo,
               user: User = require(Permission.REPORTS_RETRY_ISSUE)) -> Response:
    """Queue the digital signing again after a failure: the approving signatory or the quality
    manager (the service checks which signatory)."""
    _, error = attempt(session, lambda: issue.retry_issue(session, user, _report(session, report_no)))
    return _after(request, session, report_no, user, error)


@router.get("/reports/{report_no}/rendered.pdf", include_in_schema=False)
def rendered_file(session: DbSession, report_no: ReportNo, user: User = require(Permission.REPORTS_READ)) -> Response:
    """The PDF made for approval, as stored (what the approval signature binds)."""
    report = _report(session, report_no)
    return pdf_response(issue.rendered_pdf(session, report), f"{report.report_no}-for-approval",
                        report.rendered_pdf_sha256, inline=True)


@router.get("/reports/{report_no}/report.pdf", include_in_schema=False)
def issued_file(session: DbSession, report_no: ReportNo, user: User = require(Permission.REPORTS_READ)) -> Response:
    """The signed PDF exactly as issued (never made again)."""
    report = _report(session, report_no)
    return pdf_response(issue.issued_pdf(session, report), report.report_no, report.pdf_sha256, inline=True)


# ---------------------------------------------------------------- amendment and withdrawal


def _form_page(request: Request, session: Session, template: str, report_no: str, values: dict[str, str],
               error: DomainError | None = None) -> Response:
    report = _report(session, report_no)
    context = {"report": report, "values": values, **_names(), **_refusal(error)}
    if template == "reports/amend.html":
        preparer = session.get(User, report.prepared_by_id)
        context["default_preparer"] = preparer
    return render(request, template, context, status_code=error.http_status if error else 200)


@router.get("/reports/{report_no}/amend", include_in_schema=False)
def amend_form(request: Request, session: DbSession, report_no: ReportNo,
               user: User = require(Permission.REPORTS_AMEND)) -> Response:
    return _form_page(request, session, "reports/amend.html", report_no, {"reason": "", "preparer": ""})


@router.post("/reports/{report_no}/amend", include_in_schema=False)
def post_amend(request: Request, session: DbSession, report_no: ReportNo, reason: Reason = "",
               preparer: Annotated[str, Form(max_length=64)] = "",
               user: User = require(Permission.REPORTS_AMEND)) -> Response:
    """Open the amendment (a new draft <no>-A<n>); the named preparer (default: the original's) compiles it."""
    from app.people.service import find_user

    def act() -> Report:
        named = None
        if preparer.strip():
            named = find_user(session, preparer.strip())
            if named is None:
                raise PreparerNotFound(username=preparer.strip())
        return amendments.amend_report(session, user, _report(session, report_no), reason, preparer=named)

    made, error = attempt(session, act)
    if error is not None:
        return _form_page(request, session, "reports/amend.html", report_no,
                          {"reason": reason, "preparer": preparer}, error)
    return see_other(request, f"/reports/{made.report_no}")


@router.get("/reports/{report_no}/withdraw", include_in_schema=False)
def withdraw_form(request: Request, session: DbSession, report_no: ReportNo,
                  user: User = require(Permission.REPORTS_AMEND)) -> Response:
    return _form_page(request, session, "reports/withdraw.html", report_no, {"reason": ""})


@router.post("/reports/{report_no}/withdraw", include_in_schema=False)
def post_withdraw(request: Request, session: DbSession, report_no: ReportNo, reason: Reason = "",
                  password: Password = "", user: User = require(Permission.REPORTS_AMEND)) -> Response:
    """Withdraw an issued report with a reason and the QM's signature."""
    _, error = attempt(session, lambda: amendments.withdraw_report(session, user, _report(session, report_no),
                                                                     reason, password))
    if error is not None:
        return _form_page(request, session, "reports/withdraw.html", report_no, {"reason": reason}, error)
    return see_other(request, f"/reports/{report_no}")

