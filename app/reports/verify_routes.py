"""Public verification of issued reports (issue 9 §5): the page a report's QR code opens, its
upload check, and the JSON lookup by hash. No sign-in: whoever holds a report can check it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.core import i18n
from app.core.auth import DbSession, public
from app.core.errors import DomainError
from app.core.i18n import N_
from app.core.web import render
from app.people.service import current_lab
from app.reports.models import Report
from app.reports.verification import (
    MAX_VERIFY_UPLOAD_MB,
    VerificationOutcome,
    VerificationStatus,
    VerifiedReportNotFound,
    published_report_by_token,
    read_pdf_upload,
    record_status,
    report_by_pdf_hash,
    verify_report_file,
)

router = APIRouter(tags=["verification"])
STATUS_NAMES = {
    VerificationStatus.VALID: N_("Report in force"), VerificationStatus.SUPERSEDED: N_("Superseded"),
    VerificationStatus.WITHDRAWN: N_("Withdrawn"), VerificationStatus.INVALID: N_("Invalid"),
    VerificationStatus.UNKNOWN: N_("Not issued in this form"),
}
STATUS_BADGES = {
    VerificationStatus.VALID: "good", VerificationStatus.SUPERSEDED: "warn", VerificationStatus.WITHDRAWN: "bad",
    VerificationStatus.INVALID: "bad", VerificationStatus.UNKNOWN: "warn",
}
# a token is 32 URL-safe characters; anything longer names nothing (a 404, not a validation error)
Token = Annotated[str, Path(max_length=200)]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")]
Upload = Annotated[UploadFile | None, File()]


def _page(request: Request, session: Session, report: Report, *, outcome: VerificationOutcome | None = None,
          error: DomainError | None = None) -> Response:
    standing = record_status(session, report, request.app.state.settings)
    language = i18n.current_language()
    context: dict[str, Any] = {
        "report": report, "status": standing.status.value, "status_text": standing.text(language),
        "successor": standing.successor, "lab": current_lab(session), "max_mb": MAX_VERIFY_UPLOAD_MB,
        "outcome": outcome, "error": error,
        "matches": outcome is not None and outcome.matches(report),
        "outcome_text": outcome.reason(language) if outcome is not None else "",
        "error_text": error.message(language) if error is not None else "",
        "status_names": {status.value: str(name) for status, name in STATUS_NAMES.items()},
        "badge": {status.value: css for status, css in STATUS_BADGES.items()},
    }
    code = error.http_status if error is not None else 200
    return render(request, "reports/verify.html", context, block="result", status_code=code)


def _unknown(request: Request) -> Response:
    return render(request, "reports/verify_unknown.html", {}, status_code=404)


@router.get("/verify/{token}", include_in_schema=False, dependencies=[public()])
def verify_page(request: Request, session: DbSession, token: Token):
    report = published_report_by_token(session, token)
    if report is None:
        return _unknown(request)
    return _page(request, session, report)


@router.post("/verify/{token}", include_in_schema=False, dependencies=[public()])
def verify_upload(request: Request, token: Token, file: Upload = None):
    """Check an uploaded PDF against this record. Read-only: a reading session, so a public
    upload never waits on, or holds, the lab's write lock."""
    with request.app.state.db.reading() as session:
        report = published_report_by_token(session, token)
        if report is None:
            return _unknown(request)
        try:
            data = read_pdf_upload(file.file if file is not None and not isinstance(file, str) else None)
        except DomainError as error:
            return _page(request, session, report, error=error)
        outcome = verify_report_file(session, data, request.app.state.settings)
        return _page(request, session, report, outcome=outcome)


# ---------------------------------------------------------------- JSON


class VerificationOut(BaseModel):
    sha256: str
    status: str  # valid | superseded | withdrawn
    report_no: str
    issued_at: datetime | None
    superseded_by: str | None
    withdrawn_at: datetime | None
    withdrawal_reason: str
    verify_url: str


@router.get("/api/v1/verify/{sha256}", dependencies=[public()], response_model=VerificationOut)
def verify_hash(request: Request, session: DbSession, sha256: Sha256) -> VerificationOut:
    """The standing of the report whose signed PDF has this SHA-256 (the file itself is not
    checked here: upload it on the verify page, or run `lims report verify`)."""
    digest = sha256.lower()
    report = report_by_pdf_hash(session, digest)
    if report is None:
        raise VerifiedReportNotFound(sha256=digest)
    settings = request.app.state.settings
    standing = record_status(session, report, settings)
    successor = standing.successor
    return VerificationOut(
        sha256=digest, status=standing.status.value, report_no=report.report_no, issued_at=report.issued_at,
        superseded_by=successor.report_no if successor else None, withdrawn_at=report.withdrawn_at,
        withdrawal_reason=report.withdrawal_reason,
        verify_url=f"{settings.public_base_url.rstrip('/')}/verify/{report.verify_token}",
    )
