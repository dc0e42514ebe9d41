"""Amendments and withdrawal: an issued report is never changed; its amendment is a new report
`<base>-A<n>` over the same samples that supersedes it only when issued (the old PDF stays
retrievable); the quality manager withdraws with a reason and a signature. Every refusal
changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.errors import DomainError
from app.core.signatures import ElectronicSignature
from app.reports import amendments, issue
from app.reports.models import Report, ReportSample
from tests.conftest import PASSWORD
from tests.reports.conftest import make_report
from tests.reports.test_issue import approve, counts, fresh, refused, render, reviewed_report, sign_levels

REASON = "NH3-N of S-001 re-entered: transcription error 0.512 → 0.515"


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.job_queue = "inline"


def issued_report(db, cast) -> Report:
    report = reviewed_report(db, cast)
    render(db, cast.signatory, report)
    issued = approve(db, cast.signatory, report)
    assert issued.state == "issued"
    return issued


def amend(db, qm, report, reason=REASON, **kwargs) -> Report:
    with db.transaction() as session:
        made = amendments.amend_report(session, qm, session.get(Report, report.id), reason, **kwargs)
    return fresh(db, made)


def test_amendment_round_trip(db, users, reportable):
    cast, qm = reportable, users["quality_manager"]
    original = issued_report(db, cast)
    amendment = amend(db, qm, original)
    assert (amendment.report_no, amendment.base_no, amendment.revision) == (
        f"{original.report_no}-A1", original.report_no, 1)
    assert amendment.amends_id == original.id and amendment.amendment_reason == REASON
    assert amendment.state == "draft" and amendment.prepared_by_id == cast.preparer.id
    assert (amendment.title, amendment.client_name, amendment.language) == (
        original.title, original.client_name, original.language)
    assert amendment.verify_token != original.verify_token
    with db.reading() as session:
        samples = lambda r: list(session.scalars(select(ReportSample.sample_id).where(  # noqa: E731
            ReportSample.report_id == r.id).order_by(ReportSample.position)))
        assert samples(amendment) == samples(original) == [s.id for s in cast.samples]
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "reports.amendment_opened")).one()
        assert event.entity_id == str(amendment.id) and event.actor_id == qm.id
    assert fresh(db, original).state == "issued"  # valid until the amendment is issued
    refused(db, "amendment_pending", amendments.amend_report, qm, original, REASON)

    sign_levels(db, cast, amendment)
    render(db, cast.signatory, amendment)
    assert fresh(db, original).state == "issued"
    issued = approve(db, cast.signatory, amendment)
    assert issued.state == "issued"
    old = fresh(db, original)
    assert (old.state, old.superseded_by_id) == ("superseded", amendment.id)
    with db.reading() as session:  # the old signed PDF is still served, unchanged
        assert issue.issued_pdf(session, session.get(Report, original.id)).startswith(b"%PDF-")
        assert session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "report",
                                                               AuditEvent.entity_id == str(original.id))
                               .order_by(AuditEvent.seq.desc()).limit(1)).one() == "reports.superseded"
    refused(db, "report_not_issued", amendments.amend_report, qm, original, REASON)
    assert amend(db, qm, issued).report_no == f"{original.report_no}-A2"


def test_amendment_refusals(db, users, reportable):
    cast, qm = reportable, users["quality_manager"]
    draft = make_report(db, cast.preparer, cast.samples)
    issued = make_report(db, cast.preparer, cast.samples, state="issued")
    refused(db, "report_not_issued", amendments.amend_report, qm, draft, REASON)
    refused(db, "reason_too_short", amendments.amend_report, qm, issued, " typo  ")
    refused(db, "reason_too_long", amendments.amend_report, qm, issued, "x" * 2001)
    refused(db, "permission_denied", amendments.amend_report, cast.signatory, issued, REASON)
    refused(db, "inspector_read_only", amendments.amend_report, users["inspector"], issued, REASON)
    assert fresh(db, issued).state == "issued"


def test_qm_names_the_preparer(db, users, reportable):
    cast, qm = reportable, users["quality_manager"]
    issued = make_report(db, cast.preparer, cast.samples, state="issued")
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        amendments.amend_report(session, qm, session.get(Report, issued.id), REASON, preparer=qm)
    assert caught.value.code == "preparer_not_allowed"
    made = amend(db, qm, issued, preparer=users["technical_manager"])
    assert made.prepared_by_id == users["technical_manager"].id


def withdraw(db, qm, report, reason=REASON, password=PASSWORD) -> Report:
    with db.transaction() as session:
        amendments.withdraw_report(session, qm, session.get(Report, report.id), reason, password)
    return fresh(db, report)


def test_withdrawal(db, users, reportable):
    cast, qm = reportable, users["quality_manager"]
    report = make_report(db, cast.preparer, cast.samples, state="issued")
    withdrawn = withdraw(db, qm, report, reason="Client named the wrong site; report no longer valid")
    assert withdrawn.state == "withdrawn" and withdrawn.withdrawn_by_id == qm.id and withdrawn.withdrawn_at
    assert withdrawn.withdrawal_reason == "Client named the wrong site; report no longer valid"
    with db.reading() as session:
        signature = session.scalars(select(ElectronicSignature).where(
            ElectronicSignature.entity_type == "report", ElectronicSignature.entity_id == str(report.id))).one()
        assert (signature.meaning, signature.signer_id) == ("confirmed", qm.id)
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "reports.withdrawn")).one()
        assert event.entity_id == str(report.id)
    refused(db, "report_not_issued", amendments.withdraw_report, qm, report, REASON, PASSWORD)
    refused(db, "report_not_issued", amendments.amend_report, qm, report, REASON)


def test_withdrawal_refusals(db, users, reportable):
    cast, qm = reportable, users["quality_manager"]
    report = make_report(db, cast.preparer, cast.samples, state="issued")
    refused(db, "reason_too_short", amendments.withdraw_report, qm, report, "wrong", PASSWORD)
    refused(db, "permission_denied", amendments.withdraw_report, cast.signatory, report, REASON, PASSWORD)
    refused(db, "report_not_issued", amendments.withdraw_report, qm,
            make_report(db, cast.preparer, cast.samples, state="approved"), REASON, PASSWORD)
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        withdraw(db, qm, report, password="not-the-password")
    assert caught.value.code == "wrong_signing_password"
    assert fresh(db, report).state == "issued"
    assert counts(db)[1:] == before[1:] and counts(db)[0] == before[0] + 1  # only the refusal's record
