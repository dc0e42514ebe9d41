"""Approval (签发) and issue: the signatory reads a PDF rendered for them, approves it with an
e-signature binding its hash and the content hash, and the report is PAdES-signed and issued by a
job; every refusal changes nothing; a failed signing leaves the report approved and can be
retried."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.canonical import content_hash
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.event_loop import outside_event_loop
from app.core.files import file_store
from app.core.job_queue import Job
from app.core.signatures import ElectronicSignature, SignatureMeaning, sign
from app.reports import issue, review
from app.reports.content import load_content
from app.reports.models import Report, ReviewAct, ReviewLevel
from app.samples.models import Sample
from tests.analysis.qc_fixtures import enter
from tests.conftest import PASSWORD, make_user
from tests.reports.conftest import grant_signatory_scope, make_report

LEVELS = ((ReviewLevel.COMPILE, "preparer", SignatureMeaning.COMPILED),
          (ReviewLevel.CHECK, "checker", SignatureMeaning.CHECKED),
          (ReviewLevel.REVIEW, "reviewer", SignatureMeaning.REVIEWED))


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.job_queue = "inline"


def reviewed_report(db, cast, samples=None, **kwargs) -> Report:
    """A report whose compile, check and review signatures hold (written straight into the tables)."""
    return sign_levels(db, cast, make_report(db, cast.preparer, samples or cast.samples, **kwargs))


def sign_levels(db, cast, report: Report) -> Report:
    """Compile, check and review signed by the cast over the content now; the report awaits 签发."""
    with db.transaction() as session:
        row = session.get(Report, report.id)
        row.state = "reviewed"
        content = load_content(session, row)
        for level, who, meaning in LEVELS:
            person = getattr(cast, who)
            signature = sign(session, person, PASSWORD, meaning, "report", row.id, content.signed_content())
            session.add(ReviewAct(report_id=row.id, level=level.value, outcome="signed",
                                  content_sha256=content.content_sha256, signature_id=signature.id,
                                  acted_at=utcnow(), actor_id=person.id))
    return fresh(db, report)


def fresh(db, report: Report) -> Report:
    with db.reading() as session:
        row = session.get(Report, report.id)
        session.expunge(row)
        return row


def render(db, signatory, report) -> Report:
    with db.transaction() as session:
        issue.request_rendering(session, signatory, session.get(Report, report.id))
    return fresh(db, report)


def approve(db, signatory, report, password=PASSWORD) -> Report:
    with db.transaction() as session:
        issue.approve_report(session, signatory, session.get(Report, report.id), password)
    return fresh(db, report)


def counts(db) -> tuple[int, ...]:
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(model)) for model in
                     (AuditEvent, ElectronicSignature, ReviewAct, Job))


def validate(signed: bytes, settings):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from app.reports.signing import lab_signer

    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    context = ValidationContext(trust_roots=lab_signer(settings).trust_roots(), allow_fetching=False)
    return outside_event_loop(validate_pdf_signature, embedded, context)


def refused(db, code: str, fn, actor, report, *extra) -> None:
    """`fn(session, actor, report, *extra)` is refused with `code`, and nothing was written."""
    before = counts(db)
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        fn(session, actor, session.get(Report, report.id), *extra)
    assert caught.value.code == code, caught.value
    assert counts(db) == before


def test_reviewed_report_is_rendered_approved_signed_and_issued(db, settings, reportable):
    cast = reportable
    report = reviewed_report(db, cast)
    rendered = render(db, cast.signatory, report)
    assert rendered.state == "reviewed" and rendered.rendered_for_id == cast.signatory.id
    assert len(rendered.rendered_pdf_sha256) == 64 and rendered.audit_seq and len(rendered.audit_hash) == 64
    store = file_store(settings.data_path)
    rendered_bytes = store.read(rendered.rendered_pdf_sha256)
    assert rendered_bytes.startswith(b"%PDF-")
    with db.reading() as session:
        assert rendered.rendered_content_sha256 == load_content(session, session.get(Report, report.id)).content_sha256
        job = session.scalars(select(Job).where(Job.kind == "report.render")).one()
        assert (job.state, job.progress) == ("done", 100)

    issued = approve(db, cast.signatory, report)
    assert issued.state == "issued" and issued.issue_attempts == 1 and issued.issue_error == ""
    signed = store.read(issued.pdf_sha256)
    assert signed.startswith(rendered_bytes)  # incremental: the approved bytes are inside unchanged
    status = validate(signed, settings)
    assert status.intact and status.valid
    assert issued.content_sha256 == rendered.rendered_content_sha256 and issued.cma_mark is not None
    issued_on = issued.issued_at.astimezone(settings.tz).date()
    assert issued.retain_until == issue.years_after(issued_on, 6)
    with db.reading() as session:
        signature = session.scalars(select(ElectronicSignature).where(ElectronicSignature.meaning == "approved")).one()
        assert signature.signer_id == cast.signatory.id
        assert signature.content_hash == content_hash({"content_sha256": issued.content_sha256,
                                                       "pdf_sha256": rendered.rendered_pdf_sha256})
        act_row = session.scalars(select(ReviewAct).where(ReviewAct.level == "approve")).one()
        assert act_row.signature_id == signature.id and act_row.actor_id == cast.signatory.id
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "report")
                                       .order_by(AuditEvent.seq)))
        assert actions[-4:] == ["reports.rendered", "signature.approved", "reports.approved", "reports.issued"]
        retained = session.scalars(select(Sample).where(Sample.id.in_([s.id for s in cast.samples]))).all()
        assert all(s.reported_at == issued.issued_at and s.retain_until for s in retained)
    with db.reading() as session:
        assert issue.issued_pdf(session, session.get(Report, report.id)) == signed
        history = review.review_history(session, session.get(Report, report.id))
        approval = [v for v in history if v.level == ReviewLevel.APPROVE]
        assert len(approval) == 1 and approval[0].intact and approval[0].holds  # not shown as broken


def test_wrong_password_refuses_approval_and_changes_nothing_else(db, reportable):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        approve(db, cast.signatory, report, password="wrong-password")
    assert caught.value.code == "wrong_signing_password"
    after = fresh(db, report)
    assert after.state == "reviewed" and after.approved_at is None
    audit_before, *rest = before
    audit_after, *rest_after = counts(db)
    assert rest_after == rest and audit_after == audit_before + 1  # only the refusal's record
    with db.reading() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
        assert (last.action, last.entity_id) == ("signature.failed", str(cast.signatory.id))


def test_signatory_without_scope_is_refused_before_rendering(db, reportable, users):
    cast = reportable
    report = reviewed_report(db, cast)
    stranger = make_user(db, "signatory-2", "signatory")
    refused(db, "signatory_out_of_scope", issue.request_rendering, stranger, report)


def test_data_changed_since_rendering_is_refused(db, reportable):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    enter(db, cast.bench, {"S-001": "0.515"}, reason="transcription error corrected")
    refused(db, "content_changed_since_rendering", issue.approve_report, cast.signatory, report, PASSWORD)
    assert fresh(db, report).state == "reviewed"


def test_rendering_is_personal_and_of_the_day(db, reportable, users):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    other = make_user(db, "signatory-3", "signatory")
    grant_signatory_scope(db, other, method_id=cast.method.method_id, approver=users["quality_manager"])
    refused(db, "rendering_missing", issue.approve_report, other, report, PASSWORD)
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == report.id)
                        .values(rendered_at=utcnow() - timedelta(days=1, hours=1)))
    refused(db, "rendering_out_of_date", issue.approve_report, cast.signatory, report, PASSWORD)


def test_only_a_reviewed_report_is_rendered_or_approved(db, reportable):
    cast = reportable
    report = make_report(db, cast.preparer, cast.samples, state="checked")
    refused(db, "report_not_awaiting_approval", issue.request_rendering, cast.signatory, report)
    refused(db, "report_not_awaiting_approval", issue.approve_report, cast.signatory, report, PASSWORD)


def test_reviewer_cannot_approve_what_they_reviewed(db, reportable, users):
    cast = reportable
    report = reviewed_report(db, cast)
    grant_signatory_scope(db, cast.reviewer, method_id=cast.method.method_id, approver=users["quality_manager"])
    with db.transaction() as session:
        from app.core.roles import Role
        from app.people import service

        service.grant_role_as_system(session, session.get(type(cast.reviewer), cast.reviewer.id),
                                     Role.SIGNATORY.value, "test", valid_from=utcnow() - timedelta(days=1))
    refused(db, "self_review_forbidden", issue.request_rendering, cast.reviewer, report)


def test_failed_signing_keeps_the_report_approved_and_can_be_retried(db, settings, reportable, tmp_path: Path):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    settings.report_pkcs12_file = tmp_path / "missing.p12"  # a real failure: the certificate cannot be read
    failed = approve(db, cast.signatory, report)
    assert failed.state == "approved" and failed.pdf_sha256 == "" and failed.issued_at is None
    assert failed.issue_attempts == 1 and "missing.p12" in failed.issue_error
    with db.reading() as session:
        job = session.scalars(select(Job).where(Job.kind == "report.sign")).one()
        assert job.state == "failed" and "missing.p12" in job.error
    refused(db, "retry_not_allowed", issue.retry_issue, cast.reviewer, report)
    settings.report_pkcs12_file = None
    with db.transaction() as session:
        issue.retry_issue(session, cast.signatory, session.get(Report, report.id))
    issued = fresh(db, report)
    assert issued.state == "issued" and issued.issue_attempts == 2 and issued.issue_error == ""
    refused(db, "report_not_awaiting_issue", issue.retry_issue, cast.signatory, report)
    with db.reading() as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "report")))
    assert {"reports.issue_failed", "reports.issue_retried", "reports.issued"} <= actions
