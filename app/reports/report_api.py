"""JSON API of reports (/api/v1/reports): the list (paginated like the other /api/v1 lists,
filtered by status or by the SHA-256 of a signed PDF: verification by hash), one report, and the
issued PDF as stored. Read-only (REPORTS_READ). Times are ISO 8601 in UTC."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core.auth import DbSession, require
from app.core.permissions import Permission
from app.core.web import paginate
from app.people.models import User
from app.reports import issue
from app.reports.models import Report, ReportState

router = APIRouter(tags=["reports"])

BASE = "/api/v1/reports"
MAX_PAGE_SIZE = 200
STATUS_PATTERN = f"^({'|'.join(s.value for s in ReportState)})?$"


class ReportOut(BaseModel):
    report_no: str
    status: str
    title: str
    client_name: str
    language: str
    revision: int
    issued_at: datetime | None
    pdf_sha256: str | None  # the signed PDF (null before issue)
    verify_url: str | None  # printed as the QR code (null before issue)
    supersedes: str | None  # the report this amendment replaces
    superseded_by: str | None


class ReportPage(BaseModel):
    page: int
    per_page: int
    size: int
    total: int
    pages: int
    items: list[ReportOut]


class ReportDetailOut(ReportOut):
    amendment_reason: str
    approved_at: datetime | None
    content_sha256: str | None
    audit_seq: int | None  # the audit head printed on the report
    audit_hash: str | None
    cma_mark: bool | None
    retain_until: date | None
    withdrawn_at: datetime | None
    withdrawal_reason: str | None


def _numbers(session: Session, reports: list[Report]) -> dict[int, str]:
    """Report numbers of the reports these amend or are superseded by, in one query."""
    ids = {r.amends_id for r in reports if r.amends_id} | {r.superseded_by_id for r in reports if r.superseded_by_id}
    if not ids:
        return {}
    return {i: n for i, n in session.execute(select(Report.id, Report.report_no).where(Report.id.in_(ids)))}


def report_json(report: Report, numbers: dict[int, str], base_url: str) -> ReportOut:
    from app.reports.document import verify_url

    issued = bool(report.pdf_sha256)
    return ReportOut(
        report_no=report.report_no, status=report.state, title=report.title, client_name=report.client_name,
        language=report.language, revision=report.revision, issued_at=report.issued_at,
        pdf_sha256=report.pdf_sha256 or None,
        verify_url=verify_url(base_url, report.verify_token) if issued else None,
        supersedes=numbers.get(report.amends_id) if report.amends_id else None,
        superseded_by=numbers.get(report.superseded_by_id) if report.superseded_by_id else None)


@router.get(BASE, response_model=ReportPage)
def api_reports(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    size: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE, description="the same as per_page"),
    status: str = Query("", max_length=12, pattern=STATUS_PATTERN),
    sha256: str = Query("", pattern="^([0-9a-fA-F]{64})?$", description="the SHA-256 of a signed PDF"),
    user: User = require(Permission.REPORTS_READ),
) -> ReportPage:
    """Reports, the latest issued first (then the newest drafts)."""
    per_page = per_page or size or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    stmt = select(Report)
    if status:
        stmt = stmt.where(Report.state == status)
    if sha256:
        stmt = stmt.where(Report.pdf_sha256 == sha256.lower())
    stmt = stmt.order_by(Report.issued_at.desc().nulls_last(), Report.created_at.desc(), Report.id.desc())
    found = paginate(session, stmt, page, per_page)
    numbers = _numbers(session, list(found.items))
    base_url = settings_of(session).public_base_url
    return ReportPage(page=found.page, per_page=found.size, size=found.size, total=found.total, pages=found.pages,
                      items=[report_json(r, numbers, base_url) for r in found.items])


def _report(session: Session, report_no: str) -> Report:
    from app.reports.drafts import report_by_no

    return report_by_no(session, report_no)


@router.get(f"{BASE}/{{report_no}}", response_model=ReportDetailOut)
def api_report(session: DbSession, report_no: str = Path(max_length=40),
               user: User = require(Permission.REPORTS_READ)) -> ReportDetailOut:
    """One report: its state, hashes, the audit head it printed, retention, amendment or withdrawal."""
    report = _report(session, report_no)
    numbers = _numbers(session, [report])
    out = report_json(report, numbers, settings_of(session).public_base_url)
    return ReportDetailOut(
        **out.model_dump(), amendment_reason=report.amendment_reason, approved_at=report.approved_at,
        content_sha256=report.content_sha256 or None, audit_seq=report.audit_seq if report.pdf_sha256 else None,
        audit_hash=(report.audit_hash or None) if report.pdf_sha256 else None, cma_mark=report.cma_mark,
        retain_until=report.retain_until, withdrawn_at=report.withdrawn_at,
        withdrawal_reason=report.withdrawal_reason or None)


@router.get(f"{BASE}/{{report_no}}/pdf")
def api_report_pdf(session: DbSession, report_no: str = Path(max_length=40),
                   user: User = require(Permission.REPORTS_READ)) -> Response:
    """The signed PDF exactly as issued (404 before issue); superseded and withdrawn reports too."""
    report = _report(session, report_no)
    data = issue.issued_pdf(session, report)
    return pdf_response(data, report.report_no, report.pdf_sha256)


def pdf_response(data: bytes, report_no: str, sha256: str, *, inline: bool = False) -> Response:
    """A stored PDF with its SHA-256 in a header (the receiver can compare it with the record)."""
    disposition = "inline" if inline else "attachment"
    safe = "".join(c for c in report_no if c.isalnum() or c in "-_") or "report"
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'{disposition}; filename="{safe}.pdf"', "X-Content-SHA256": sha256,
        "Cache-Control": "private, no-store"})
