"""Amendments and withdrawal of issued reports (DOMAIN.md §3 Report, §5 "Amendment").

An issued report is never changed. An amendment is a new report numbered `<base>-A<n>` that
states what changed and why, covers the same samples under the same header, and goes through the
three levels again; the report it amends stays issued (and valid on the verify page) until the
amendment is issued, when the sign job marks it superseded. Its PDF stays retrievable.

The quality manager opens the amendment but does not prepare it: 编制 needs REPORTS_PREPARE,
which the QM does not hold, and the preparer must be able to correct data. The QM names the
preparer; by default the original's preparer, who knows the report.

Withdrawal is the quality manager's signed act with a reason; the report is then shown as
withdrawn wherever it is looked up, the verify page included.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.db import utcnow
from app.core.permissions import Permission, ensure, has_permission
from app.core.signatures import SignatureMeaning, sign
from app.people.models import User
from app.reports import issue_errors as errors
from app.reports.models import Report, ReportSample, ReportState

STATE_WORDS = {"amend": ("更正", "amended"), "withdraw": ("撤回", "withdrawn")}


def clean_reason(reason: Any) -> str:
    text = str(reason or "").strip()
    if len(text) < errors.REASON_MIN:
        raise errors.ReasonTooShort(minimum=errors.REASON_MIN)
    if len(text) > errors.REASON_MAX:
        raise errors.ReasonTooLong(limit=errors.REASON_MAX)
    return text


def _assert_issued(report: Report, act: str) -> None:
    if report.state != ReportState.ISSUED.value:
        zh, en = STATE_WORDS[act]
        raise errors.ReportNotIssued(report_no=report.report_no, state=report.state, act_zh=zh, act_en=en)


def pending_amendment(session: Session, report: Report) -> Report | None:
    """The amendment of `report` not yet issued (there is at most one)."""
    return session.scalars(select(Report).where(Report.amends_id == report.id)
                           .where(Report.state.not_in((ReportState.ISSUED.value, ReportState.SUPERSEDED.value,
                                                       ReportState.WITHDRAWN.value)))
                           .order_by(Report.id.desc()).limit(1)).first()


def amend_report(session: Session, qm: User, report: Report, reason: Any, *,
                 preparer: User | None = None) -> Report:
    """Open the amendment of an issued report: a new draft `<base>-A<n>` over the same samples."""
    ensure(session, qm, Permission.REPORTS_AMEND)
    reason = clean_reason(reason)
    _assert_issued(report, "amend")
    pending = pending_amendment(session, report)
    if pending is not None:
        raise errors.AmendmentPending(report_no=report.report_no, amendment_no=pending.report_no)
    preparer = preparer or session.get(User, report.prepared_by_id)
    if preparer is None or not preparer.active or not has_permission(session, preparer.id,
                                                                        Permission.REPORTS_PREPARE):
        name = getattr(preparer, "printed_name", None) or getattr(preparer, "username", "?")
        raise errors.PreparerNotAllowed(person=name)
    revision = (session.scalar(select(func.max(Report.revision)).where(Report.base_no == report.base_no)) or 0) + 1
    amendment = Report(
        report_no=f"{report.base_no}-A{revision}", base_no=report.base_no, revision=revision, amends_id=report.id,
        amendment_reason=reason, title=report.title, client_name=report.client_name,
        client_contact=report.client_contact, language=report.language, limit_set_id=report.limit_set_id,
        target_class=report.target_class, remarks=report.remarks, state=ReportState.DRAFT.value,
        prepared_by_id=preparer.id, created_at=utcnow(), verify_token=secrets.token_urlsafe(24))
    session.add(amendment)
    session.flush()
    samples = session.scalars(select(ReportSample).where(ReportSample.report_id == report.id)
                              .order_by(ReportSample.position)).all()
    for row in samples:
        session.add(ReportSample(report_id=amendment.id, sample_id=row.sample_id, position=row.position))
    session.flush()
    audit.append(session, qm, "reports.amendment_opened", "report", amendment.id, None,
                 {"report_no": amendment.report_no, "amends": report.report_no, "revision": revision,
                  "reason": reason, "preparer_id": preparer.id, "samples": [r.sample_id for r in samples]})
    return amendment


def withdraw_report(session: Session, qm: User, report: Report, reason: Any, password: str) -> Report:
    """The quality manager withdraws an issued report (signed `confirmed` over the report's
    number, its signed PDF's hash and the reason): it is no longer valid anywhere."""
    ensure(session, qm, Permission.REPORTS_AMEND)
    reason = clean_reason(reason)
    _assert_issued(report, "withdraw")
    signature = sign(session, qm, password, SignatureMeaning.CONFIRMED, "report", report.id,
                     {"act": "withdraw", "report_no": report.report_no, "pdf_sha256": report.pdf_sha256,
                      "reason": reason})
    before = {"state": report.state}
    report.state = ReportState.WITHDRAWN.value
    report.withdrawn_at, report.withdrawn_by_id, report.withdrawal_reason = signature.signed_at, qm.id, reason
    session.flush()
    audit.append(session, qm, "reports.withdrawn", "report", report.id, before,
                 {"state": report.state, "report_no": report.report_no, "reason": reason,
                  "signature_id": signature.id})
    return report
