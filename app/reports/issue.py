"""Approval (签发) and issue of a reviewed report (issue 9; DOMAIN.md §2 rule 2, §5).

The approval e-signature binds what the signatory read: (1) `request_rendering` checks up front
that the signatory may approve (separation of duties, the level awaited, scope on the day) and
queues the "report.render" job, which renders the report as it would be issued (PDF/A-3b, the
audit head of that moment printed), stores the file and notes its hash, the content hash it was
made from, when and for whom; (2) `approve_report` signs `approved` over that content hash and
that PDF's hash, refusing if the data moved since or the rendering is not this signatory's of
today, and queues "report.sign"; (3) the sign job signs the stored PDF with the lab's certificate
(PAdES) and issues the report in one transaction: signed file stored, hashes, CMA mark, retention,
samples' retention, an amended report superseded. A failed signing leaves the report approved,
with the attempt and its error recorded; `retry_issue` queues it again. Nothing is half-issued,
and neither the rendered nor the issued file is ever made again once approved.
"""

from __future__ import annotations

import io
import logging
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core import audit
from app.core.db import Database, utcnow
from app.core.errors import DomainError, InspectorReadOnly
from app.core.files import FileStore, StoredFile, file_store, store_upload
from app.core.job_queue import Job, enqueue, handler, latest_job, report_progress
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, has_permission, roles_at
from app.core.roles import Role
from app.core.signatures import SignatureMeaning, sign
from app.people.models import User
from app.reports import issue_errors as errors
from app.reports.content import ReportContent, load_content, report_samples
from app.reports.models import Report, ReportState, ReviewAct, ReviewLevel, ReviewOutcome

log = logging.getLogger("lims.reports.issue")

RENDER_JOB = "report.render"
SIGN_JOB = "report.sign"
PDF_MEDIA_TYPE = "application/pdf"
MAX_PDF_BYTES = 512 * 1024 * 1024


def scope_items(content: ReportContent) -> list[tuple[str, int, str]]:
    """(parameter, method id, matrix) of every reported result or field reading: what the
    signatory's scope must cover."""
    return list(dict.fromkeys((line.parameter, line.method.id, s.sample.matrix)
                              for s, line in content.lines() if line.reported and line.method))


def _store(session: Session) -> FileStore:
    return file_store(settings_of(session).ensure_data_dir())


def _locked(session: Session, report: Report) -> Report:
    """The report row locked for this transaction: acts on one report go one at a time."""
    return session.execute(select(Report).where(Report.id == report.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _active(session: Session, report: Report, kind: str) -> Job | None:
    job = latest_job(session, "report", report.id, (kind,))
    return job if job is not None and job.active else None


def _assert_awaiting_approval(report: Report) -> None:
    if report.state != ReportState.REVIEWED.value:
        raise errors.ReportNotAwaitingApproval(report_no=report.report_no, state=report.state)


def _assert_may_approve(session: Session, signatory: User, report: Report, content: ReportContent,
                        today: date) -> None:
    from app.reports import review, scopes

    review.assert_may_act(session, signatory, report, content, ReviewLevel.APPROVE)
    scopes.assert_signatory_in_scope(session, signatory, scope_items(content), today)


# ---------------------------------------------------------------- rendering for approval


def request_rendering(session: Session, signatory: User, report: Report) -> Job:
    """Queue the rendering of the PDF the signatory will read and approve (checks first: a
    signatory who may not approve is told now, not after the rendering)."""
    ensure(session, signatory, Permission.REPORTS_APPROVE)
    report = _locked(session, report)
    _assert_awaiting_approval(report)
    if _active(session, report, RENDER_JOB) is not None:
        raise errors.RenderingInProgress(report_no=report.report_no)
    content = load_content(session, report)
    _assert_may_approve(session, signatory, report, content, lab_calendar(session).today())
    job = enqueue(session, RENDER_JOB, "report", report.id,
                  {"signatory_id": signatory.id, "content_sha256": content.content_sha256}, signatory)
    audit.append(session, signatory, "reports.rendering_requested", "report", report.id, None,
                 {"report_no": report.report_no, "job_id": job.id, "content_sha256": content.content_sha256})
    return job


@handler(RENDER_JOB)
def render_for_approval(db: Database, settings: Any, job_id: int) -> None:
    """Render from a read snapshot (no write lock held while WeasyPrint works), then record the
    file in a short transaction if the report still awaits approval."""
    from app.reports.document import render_report_pdf

    with db.reading() as session:
        job = session.get(Job, job_id)
        report_id, signatory_id = int(job.entity_id), int(job.data["signatory_id"])
        report, signatory = session.get(Report, report_id), session.get(User, signatory_id)
        _assert_awaiting_approval(report)
        report_progress(db, job_id, 10, "loading")
        content = load_content(session, report)
        seq, head_hash = audit.head(session)
        approved_on = lab_calendar(session).today()
        report_progress(db, job_id, 30, "rendering")
        pdf = render_report_pdf(session, report, content, signatory=signatory, approved_on=approved_on,
                                audit_seq=seq, audit_hash=head_hash)
        content_sha256 = content.content_sha256
    report_progress(db, job_id, 90, "storing")
    with db.transaction() as session:
        report = _locked(session, session.get(Report, report_id))
        _assert_awaiting_approval(report)
        signatory = session.get(User, signatory_id)
        stored = store_upload(session, signatory, _store(session), io.BytesIO(pdf),
                              f"{report.report_no}-for-approval.pdf", allowed_types=(PDF_MEDIA_TYPE,),
                              max_bytes=MAX_PDF_BYTES)
        before = {"rendered_pdf_sha256": report.rendered_pdf_sha256 or None}
        report.rendered_pdf_sha256, report.rendered_content_sha256 = stored.sha256, content_sha256
        report.rendered_at, report.rendered_for_id = utcnow(), signatory_id
        report.audit_seq, report.audit_hash = seq, head_hash
        session.flush()
        audit.append(session, signatory, "reports.rendered", "report", report.id, before, {
            "report_no": report.report_no, "rendered_pdf_sha256": stored.sha256, "content_sha256": content_sha256,
            "audit_seq": seq, "audit_hash": head_hash, "approved_on": approved_on, "job_id": job_id})


def rendered_pdf(session: Session, report: Report) -> bytes:
    """The PDF made for approval, as stored (never made again)."""
    if not report.rendered_pdf_sha256:
        raise errors.ReportPdfNotAvailable(report_no=report.report_no, what_zh="签发稿",
                                           what_en="PDF made for approval")
    return _read(session, report, report.rendered_pdf_sha256)


def issued_pdf(session: Session, report: Report) -> bytes:
    """The signed PDF of an issued (or later superseded or withdrawn) report, as stored."""
    if not report.pdf_sha256:
        raise errors.ReportPdfNotAvailable(report_no=report.report_no, what_zh="已发出的报告文件",
                                           what_en="issued PDF")
    return _read(session, report, report.pdf_sha256)


def _read(session: Session, report: Report, sha256: str) -> bytes:
    store = _store(session)
    if not store.verify(sha256):
        raise errors.RenderedPdfMissing(report_no=report.report_no)
    return store.read(sha256)


# ---------------------------------------------------------------- approval


def approve_report(session: Session, signatory: User, report: Report, password: str) -> Report:
    """签发: sign `approved` over the content hash and the rendered PDF's hash, then queue the
    digital signing and issue."""
    from app.reports import review
    from app.reports.checklist import compute_checklist
    from app.reports.review_errors import ChecklistBlocks

    ensure(session, signatory, Permission.REPORTS_APPROVE)
    report = _locked(session, report)
    _assert_awaiting_approval(report)
    if _active(session, report, RENDER_JOB) is not None:
        raise errors.RenderingInProgress(report_no=report.report_no)
    if not report.rendered_pdf_sha256 or report.rendered_for_id != signatory.id or report.rendered_at is None:
        raise errors.RenderingMissing(report_no=report.report_no)
    calendar = lab_calendar(session)
    today, rendered_on = calendar.today(), calendar.local_date(report.rendered_at)
    if rendered_on != today:
        raise errors.RenderingOutOfDate(report_no=report.report_no, rendered_on=rendered_on.isoformat(),
                                        today=today.isoformat())
    content = load_content(session, report)
    if content.content_sha256 != report.rendered_content_sha256:
        raise errors.ContentChangedSinceRendering(report_no=report.report_no)
    _assert_may_approve(session, signatory, report, content, today)
    checklist = compute_checklist(session, report, content)
    if checklist.blocking:
        failing = checklist.failures()
        raise ChecklistBlocks(items_zh="；".join(item.summary("zh") for item in failing),
                              items_en="; ".join(item.summary("en") for item in failing))
    if not _store(session).verify(report.rendered_pdf_sha256):
        raise errors.RenderedPdfMissing(report_no=report.report_no)
    signature = sign(session, signatory, password, SignatureMeaning.APPROVED, "report", report.id,
                     review.approval_content(content.content_sha256, report.rendered_pdf_sha256))
    act = review.record_act(session, signatory, report, content, ReviewLevel.APPROVE, ReviewOutcome.SIGNED,
                            signature=signature, checklist=checklist.as_record())
    before = {"state": report.state}
    report.state, report.approved_at = ReportState.APPROVED.value, signature.signed_at
    report.content_sha256, report.issue_error = content.content_sha256, ""
    session.flush()
    job = enqueue(session, SIGN_JOB, "report", report.id, {"signatory_id": signatory.id}, signatory)
    audit.append(session, signatory, "reports.approved", "report", report.id, before, {
        "report_no": report.report_no, "state": report.state, "signature_id": signature.id,
        "review_act_id": act.id, "content_sha256": content.content_sha256,
        "pdf_sha256": report.rendered_pdf_sha256, "job_id": job.id})
    return report


def approver(session: Session, report: Report) -> User | None:
    """Who approved (签发) the report: the latest signed act at the approve level."""
    return session.scalars(select(User).join(ReviewAct, ReviewAct.actor_id == User.id).where(
        ReviewAct.report_id == report.id, ReviewAct.level == ReviewLevel.APPROVE.value,
        ReviewAct.outcome == ReviewOutcome.SIGNED.value).order_by(ReviewAct.id.desc()).limit(1)).first()


# ---------------------------------------------------------------- digital signature and issue


def years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@handler(SIGN_JOB)
def sign_and_issue(db: Database, settings: Any, job_id: int) -> None:
    """PAdES-sign the approved PDF and issue the report; on failure record the attempt and keep
    the report approved (the job fails with the reason)."""
    with db.reading() as session:
        report_id = int(session.get(Job, job_id).entity_id)
        if session.get(Report, report_id).state != ReportState.APPROVED.value:
            return  # issued meanwhile by another run
    try:
        _sign_and_issue(db, settings, job_id, report_id)
    except Exception as exc:
        reason = exc.message(settings.language) if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        _record_failure(db, report_id, reason)
        raise


def _sign_and_issue(db: Database, settings: Any, job_id: int, report_id: int) -> None:
    from app.reports.document import build_document
    from app.reports.signing import lab_signer, sign_report_pdf

    report_progress(db, job_id, 10, "loading")
    with db.reading() as session:
        report = session.get(Report, report_id)
        signatory = approver(session, report)
        calendar = lab_calendar(session)
        content = load_content(session, report)
        document = build_document(session, report, content, signatory=signatory,
                                  approved_on=calendar.local_date(report.rendered_at),
                                  audit_seq=report.audit_seq or 0, audit_hash=report.audit_hash)
        rendered = _read(session, report, report.rendered_pdf_sha256)
        lab_name = document.lab.name_zh if document.lab is not None else None
        report_no, language = report.report_no, report.language
        name, signatory_id = signatory.printed_name, signatory.id
    report_progress(db, job_id, 40, "signing")
    signer = lab_signer(settings, lab_name=lab_name) if lab_name else lab_signer(settings)
    signed = sign_report_pdf(rendered, signer, report_no=report_no, signatory_name=name, language=language)
    report_progress(db, job_id, 80, "issuing")
    with db.transaction() as session:
        report = _locked(session, session.get(Report, report_id))
        if report.state != ReportState.APPROVED.value:
            return
        signatory = session.get(User, signatory_id)
        stored = store_upload(session, signatory, _store(session), io.BytesIO(signed), f"{report.report_no}.pdf",
                              allowed_types=(PDF_MEDIA_TYPE,), max_bytes=MAX_PDF_BYTES)
        now = utcnow()
        issued_on = lab_calendar(session).local_date(now)
        before = {"state": report.state}
        report.state, report.issued_at, report.pdf_sha256 = ReportState.ISSUED.value, now, stored.sha256
        report.cma_mark = document.cma_mark
        report.retain_until = years_after(issued_on, settings.report_retention_years)
        report.issue_attempts, report.issue_error = report.issue_attempts + 1, ""
        session.flush()
        _start_retention(session, signatory, report, now)
        superseded = _supersede(session, signatory, report)
        audit.append(session, signatory, "reports.issued", "report", report.id, before, {
            "report_no": report.report_no, "state": report.state, "pdf_sha256": report.pdf_sha256,
            "rendered_pdf_sha256": report.rendered_pdf_sha256, "content_sha256": report.content_sha256,
            "audit_seq": report.audit_seq, "audit_hash": report.audit_hash, "cma_mark": report.cma_mark,
            "retain_until": report.retain_until, "verify_token": report.verify_token,
            "certificate": signer.fingerprint, "supersedes": superseded, "job_id": job_id})


def _start_retention(session: Session, actor: User, report: Report, issued_at: Any) -> None:
    from app.samples.retention import start_retention

    for sample in report_samples(session, report.id):
        start_retention(session, actor, sample, issued_at)


def _supersede(session: Session, actor: User, report: Report) -> str | None:
    """The report an issued amendment replaces becomes superseded (if still issued)."""
    if report.amends_id is None:
        return None
    old = _locked(session, session.get(Report, report.amends_id))
    if old.state != ReportState.ISSUED.value:
        return None
    old.state, old.superseded_by_id = ReportState.SUPERSEDED.value, report.id
    session.flush()
    audit.append(session, actor, "reports.superseded", "report", old.id, {"state": ReportState.ISSUED.value},
                 {"state": old.state, "report_no": old.report_no, "superseded_by": report.report_no})
    return old.report_no


def _record_failure(db: Database, report_id: int, reason: str) -> None:
    with db.transaction() as session:
        report = _locked(session, session.get(Report, report_id))
        if report.state != ReportState.APPROVED.value:
            return
        report.issue_attempts, report.issue_error = report.issue_attempts + 1, reason[:4000]
        session.flush()
        audit.append(session, None, "reports.issue_failed", "report", report.id, None,
                     {"report_no": report.report_no, "attempt": report.issue_attempts, "error": report.issue_error})


def retry_issue(session: Session, actor: User, report: Report) -> Job:
    """Queue the signing again after a failure: the signatory who approved it, or the QM."""
    report = _locked(session, report)
    signatory = approver(session, report)
    if not ((signatory is not None and signatory.id == actor.id
             and has_permission(session, actor.id, Permission.REPORTS_APPROVE))
            or has_permission(session, actor.id, Permission.REPORTS_AMEND)):
        if Role.INSPECTOR in roles_at(session, actor.id):
            raise InspectorReadOnly(permission=Permission.REPORTS_AMEND.value)
        raise errors.RetryNotAllowed(permission=Permission.REPORTS_AMEND.value)
    if report.state != ReportState.APPROVED.value:
        raise errors.ReportNotAwaitingIssue(report_no=report.report_no, state=report.state)
    if _active(session, report, SIGN_JOB) is not None:
        raise errors.IssueInProgress(report_no=report.report_no)
    job = enqueue(session, SIGN_JOB, "report", report.id, {"signatory_id": signatory.id if signatory else None},
                  actor)
    audit.append(session, actor, "reports.issue_retried", "report", report.id, None,
                 {"report_no": report.report_no, "attempts": report.issue_attempts,
                  "last_error": report.issue_error, "job_id": job.id})
    return job


def stored_file(session: Session, sha256: str) -> StoredFile | None:
    return session.scalars(select(StoredFile).where(StoredFile.sha256 == sha256).order_by(StoredFile.id)
                           .limit(1)).first()
