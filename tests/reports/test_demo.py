"""The demo's reports (app.reports.demo): the lab's CMA certificate with TP left out of scope, the
signatory's scopes, reports in every state entered through the services as the demo users, the
issued ones signed with the demo lab certificate created in the data dir and verifying as the
lab's; loading it twice adds nothing.

The whole demo is loaded once per engine (module-scoped, like tests/analysis/test_demo.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import func, select

from app.config import settings_of
from app.core import job_queue
from app.core.db import utcnow
from app.core.files import StoredFile
from app.core.job_queue import Job
from app.demo import DEMO_PASSWORD
from app.people.models import User
from app.reports import issue, review
from app.reports.content import load_content
from app.reports.demo import CERTIFICATE_NO, ISSUER, OUT_OF_SCOPE
from app.reports.models import AccreditationItem, Report, ReportState, ReviewAct, ReviewLevel, SignatoryScope
from app.reports.scopes import certificate_in_force
from app.reports.signing import DEMO_DIR, DEMO_P12
from app.reports.verification import VerificationStatus, verify_report_file
from tests.conftest import ENGINES
from tests.sites.test_demo import Demo, demo_database, row_counts


@pytest.fixture(scope="module", params=ENGINES)
def reports_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from demo_database(request, tmp_path_factory, through="reports")


def _reports(session) -> dict[str, Report]:
    return {r.report_no: r for r in session.scalars(select(Report).order_by(Report.id))}


def test_certificate_scopes_and_reports_in_every_state(reports_db: Demo) -> None:
    users = reports_db.users
    with reports_db.db.reading() as session:
        cert = certificate_in_force(session, date(2026, 12, 4))
        assert cert is not None and cert.certificate_no == CERTIFICATE_NO and cert.issued_by == ISSUER
        assert (cert.valid_from, cert.valid_to) == (date(2024, 1, 1), date(2029, 12, 31))
        items = set(session.scalars(select(AccreditationItem.parameter).where(AccreditationItem.certificate_id
                                                                               == cert.id)))
        assert "NH3-N" in items and OUT_OF_SCOPE not in items
        scopes = session.scalars(select(SignatoryScope).where(SignatoryScope.user_id == users["signatory"].id)
                                 .order_by(SignatoryScope.id)).all()
        assert [(s.matrix, s.approved_at is not None) for s in scopes] == [("water", True), ("air", False)]
        assert scopes[0].proposed_by_id == users["technical"].id and scopes[0].approved_by_id == users["quality"].id

        reports = _reports(session)
        states = {r.state for r in reports.values()}
        assert {s.value for s in ReportState} - {ReportState.APPROVED.value} <= states
        assert {r.language for r in reports.values()} == {"zh", "en"}
        assert all(r.prepared_by_id == users["analyst"].id for r in reports.values())
        # the amended pair: the original superseded by its -A1, issued with the reason
        (amendment,) = [r for r in reports.values() if r.amends_id is not None]
        original = session.get(Report, amendment.amends_id)
        assert amendment.report_no == f"{original.report_no}-A1" and amendment.state == ReportState.ISSUED.value
        assert original.state == ReportState.SUPERSEDED.value and original.superseded_by_id == amendment.id
        assert amendment.amendment_reason and amendment.client_contact != original.client_contact
        # withdrawn by the quality manager with a reason
        (withdrawn,) = [r for r in reports.values() if r.state == ReportState.WITHDRAWN.value]
        assert withdrawn.withdrawn_by_id == users["quality"].id and withdrawn.withdrawal_reason
        # a zh report with TP (out of the CMA scope) issued without the CMA mark; the zh in-scope ones with it
        issued_zh = [r for r in reports.values() if r.pdf_sha256 and r.language == "zh"]
        assert any(not r.cma_mark for r in issued_zh) and any(r.cma_mark for r in issued_zh)
        # returned by the checker with a reason: a draft again, its history showing the return
        returned = [r for r in reports.values() if r.state == ReportState.DRAFT.value and session.scalar(
            select(ReviewAct.id).where(ReviewAct.report_id == r.id, ReviewAct.outcome == "returned"))]
        assert len(returned) == 1
        history = review.review_history(session, returned[0])
        assert any(v.act.reason for v in history if v.outcome == "returned")
        # the reviewed one awaits the demo signatory today
        (awaiting,) = [r for r in reports.values() if r.state == ReportState.REVIEWED.value]
        content = load_content(session, awaiting)
        assert review.duties_conflict(session, users["signatory"], awaiting, content, ReviewLevel.APPROVE) == []
        assert review.next_level(session, awaiting, content) is ReviewLevel.APPROVE
        assert all(j.state == "done" for j in session.scalars(select(Job)))


def test_issued_pdfs_are_signed_with_the_demo_certificate(reports_db: Demo) -> None:
    with reports_db.db.reading() as session:
        settings = settings_of(session)
        assert (settings.ensure_data_dir() / DEMO_DIR / DEMO_P12).is_file()
        issued = [r for r in _reports(session).values() if r.pdf_sha256]
        assert 6 <= len(issued) <= 8
        expected = {ReportState.ISSUED.value: VerificationStatus.VALID,
                    ReportState.SUPERSEDED.value: VerificationStatus.SUPERSEDED,
                    ReportState.WITHDRAWN.value: VerificationStatus.WITHDRAWN}
        for report in issued:
            assert report.verify_token and report.retain_until and report.issued_at
            outcome = verify_report_file(session, reports_db.store.read(report.pdf_sha256), settings)
            assert outcome.status is expected[report.state], (report.report_no, outcome.reason_code)
            assert outcome.report.id == report.id and "(demo)" in outcome.signer_subject


def test_loading_again_adds_nothing(reports_db: Demo) -> None:
    before = row_counts(reports_db.db)
    with reports_db.db.reading() as session:
        files = session.scalar(select(func.count()).select_from(StoredFile))
    reports_db.load_again()
    assert row_counts(reports_db.db) == before
    with reports_db.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(StoredFile)) == files


def _finish(db, settings, job_id: int) -> str:
    """Run the job here if no runner took it (PostgreSQL without a worker), else wait for the
    runner the commit handed it to (the thread pool on SQLite)."""
    job_queue.run_job(db, settings, job_id)
    for _ in range(600):
        with db.reading() as session:
            job = session.get(Job, job_id)
            if not job.active:
                return job.state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_demo_signatory_approves_the_reviewed_report_live(reports_db: Demo) -> None:
    db, signatory_id = reports_db.db, reports_db.users["signatory"].id
    with db.transaction() as session:
        settings = settings_of(session)
        (report,) = session.scalars(select(Report).where(Report.state == ReportState.REVIEWED.value)).all()
        rendering = issue.request_rendering(session, session.get(User, signatory_id), report)
    assert _finish(db, settings, rendering.id) == "done"
    with db.transaction() as session:
        report = session.get(Report, report.id)
        issue.approve_report(session, session.get(User, signatory_id), report, DEMO_PASSWORD)
        signing = job_queue.latest_job(session, "report", report.id, (issue.SIGN_JOB,))
    assert _finish(db, settings, signing.id) == "done"
    with db.reading() as session:
        report = session.get(Report, report.id)
        assert report.state == ReportState.ISSUED.value and report.issued_at.date() == utcnow().date()
        outcome = verify_report_file(session, reports_db.store.read(report.pdf_sha256), settings)
        assert outcome.status is VerificationStatus.VALID
