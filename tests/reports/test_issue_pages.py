"""The approval and issue pages: the panel by state (prepare for signing, the rendered PDF and the
approve form, signing progress polled only while a job runs, failure with retry, the issued facts
with download, verify link and hashes), the PDFs served as stored, amendment and withdrawal
forms, refusals shown in place, the inspector refused."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import update

from app.core.db import utcnow
from app.core.job_queue import Job
from app.reports.models import Report
from tests.conftest import PASSWORD, login
from tests.reports.conftest import make_report
from tests.reports.test_issue import approve, fresh, render, reviewed_report

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.job_queue = "inline"


def test_signatory_prepares_reads_and_approves_in_the_panel(db, client, reportable, settings):
    cast = reportable
    report = reviewed_report(db, cast)
    no = report.report_no
    token = login(client, cast.signatory.username)
    page = client.get(f"/reports/{no}/issue-panel")
    assert page.status_code == 200 and 'id="render-form"' in page.text and 'id="approve-form"' not in page.text
    assert "every 1s" not in page.text

    answer = client.post(f"/reports/{no}/render", data={"csrf_token": token}, headers=HTMX)
    assert answer.status_code == 200 and 'id="approve-form"' in answer.text
    rendered = fresh(db, report)
    assert rendered.rendered_pdf_sha256[:16] in answer.text
    pdf = client.get(f"/reports/{no}/rendered.pdf")
    assert pdf.status_code == 200 and hashlib.sha256(pdf.content).hexdigest() == rendered.rendered_pdf_sha256

    wrong = client.post(f"/reports/{no}/approve", data={"csrf_token": token, "password": "nope"}, headers=HTMX)
    assert wrong.status_code == 403 and 'data-code="wrong_signing_password"' in wrong.text
    assert 'id="approve-form"' in wrong.text and fresh(db, report).state == "reviewed"

    done = client.post(f"/reports/{no}/approve", data={"csrf_token": token, "password": PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == f"/reports/{no}/issue-panel"
    issued = fresh(db, report)
    assert issued.state == "issued"
    panel = client.get(f"/reports/{no}/issue-panel", headers=HTMX).text
    assert issued.pdf_sha256 in panel and f"/verify/{issued.verify_token}" in panel
    assert issued.retain_until.isoformat() in panel and issued.audit_hash in panel
    assert 'id="amend-link"' not in panel  # the signatory may not amend
    download = client.get(f"/reports/{no}/report.pdf")
    assert download.headers["x-content-sha256"] == issued.pdf_sha256
    assert hashlib.sha256(download.content).hexdigest() == issued.pdf_sha256


def test_panel_polls_only_while_a_job_runs(db, client, reportable, users):
    cast = reportable
    report = reviewed_report(db, cast)
    with db.transaction() as session:
        session.add(Job(kind="report.render", entity_type="report", entity_id=str(report.id), state="running",
                        progress=30, step="rendering", created_at=utcnow()))
    login(client, cast.signatory.username)
    panel = client.get(f"/reports/{report.report_no}/issue-panel", headers=HTMX).text
    assert 'hx-trigger="every 1s"' in panel and 'value="30"' in panel and 'id="render-form"' not in panel
    assert 'issue-panel?seen=reviewed"' in panel
    with db.transaction() as session:
        session.execute(update(Job).values(state="failed", error="WeasyPrint ran out of memory"))
    panel = client.get(f"/reports/{report.report_no}/issue-panel", headers=HTMX).text
    assert "every 1s" not in panel and "WeasyPrint ran out of memory" in panel and 'id="render-form"' in panel


def test_a_poll_that_finds_the_state_moved_on_reloads_the_page(db, client, reportable):
    """The panel polls with the state it showed; once the signing job has issued the report, the
    badge, history and forms around the panel are stale: the poll asks htmx to reload the page."""
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    login(client, cast.signatory.username)
    url = f"/reports/{report.report_no}/issue-panel"
    same = client.get(url, params={"seen": "reviewed"}, headers=HTMX)
    assert same.status_code == 200 and "HX-Refresh" not in same.headers and 'id="approve-form"' in same.text
    approve(db, cast.signatory, report)  # the job issues it (inline here)
    moved = client.get(url, params={"seen": "approved"}, headers=HTMX)
    assert moved.status_code == 200 and moved.headers["HX-Refresh"] == "true"
    plain = client.get(url, params={"seen": "approved"})  # without JavaScript: the panel page
    assert plain.status_code == 200 and 'id="issued"' in plain.text


def test_failed_signing_shows_the_reason_and_retry(db, client, reportable, settings, tmp_path):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    settings.report_pkcs12_file = tmp_path / "gone.p12"
    approve(db, cast.signatory, report)
    token = login(client, cast.signatory.username)
    panel = client.get(f"/reports/{report.report_no}/issue-panel").text
    assert 'id="issue-failed"' in panel and "gone.p12" in panel and 'id="retry-form"' in panel
    settings.report_pkcs12_file = None
    answer = client.post(f"/reports/{report.report_no}/retry-issue", data={"csrf_token": token}, headers=HTMX)
    assert answer.status_code == 200 and fresh(db, report).state == "issued" and 'id="issued"' in answer.text


def test_the_quality_manager_retries_from_the_page_and_a_reviewer_is_refused(db, client, reportable, settings,
                                                                             users, tmp_path):
    cast = reportable
    report = render(db, cast.signatory, reviewed_report(db, cast))
    settings.report_pkcs12_file = tmp_path / "gone.p12"
    approve(db, cast.signatory, report)
    token = login(client, cast.reviewer.username)
    assert 'id="retry-form"' not in client.get(f"/reports/{report.report_no}/issue-panel").text
    refused = client.post(f"/reports/{report.report_no}/retry-issue", data={"csrf_token": token}, headers=HTMX)
    assert refused.status_code == 403 and fresh(db, report).state == "approved"
    client.cookies.clear()
    token = login(client, users["quality_manager"].username)
    assert 'id="retry-form"' in client.get(f"/reports/{report.report_no}/issue-panel").text
    settings.report_pkcs12_file = None
    answer = client.post(f"/reports/{report.report_no}/retry-issue", data={"csrf_token": token}, headers=HTMX)
    assert answer.status_code == 200 and fresh(db, report).state == "issued"


def test_amend_and_withdraw_forms(db, client, reportable, users):
    cast = reportable
    report = make_report(db, cast.preparer, cast.samples, state="issued")
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == report.id).values(
            pdf_sha256="a" * 64, issued_at=utcnow(), audit_seq=1, audit_hash="b" * 64))
    token = login(client, users["quality_manager"].username)
    panel = client.get(f"/reports/{report.report_no}/issue-panel").text
    assert 'id="amend-link"' in panel and 'id="withdraw-link"' in panel
    assert client.get(f"/reports/{report.report_no}/amend").status_code == 200

    short = client.post(f"/reports/{report.report_no}/amend", data={"csrf_token": token, "reason": "typo"})
    assert short.status_code == 422 and 'data-code="reason_too_short"' in short.text
    assert ">typo</textarea>" in short.text
    nobody = client.post(f"/reports/{report.report_no}/amend",
                         data={"csrf_token": token, "reason": "Site code corrected on request", "preparer": "ghost"})
    assert nobody.status_code == 404 and 'data-code="preparer_not_found"' in nobody.text
    made = client.post(f"/reports/{report.report_no}/amend",
                       data={"csrf_token": token, "reason": "Site code corrected on request"})
    assert made.status_code == 303 and made.headers["location"] == f"/reports/{report.report_no}-A1"
    panel = client.get(f"/reports/{report.report_no}/issue-panel").text
    assert 'id="pending-amendment"' in panel and 'id="amend-link"' not in panel

    assert client.get(f"/reports/{report.report_no}/withdraw").status_code == 200
    wrong = client.post(f"/reports/{report.report_no}/withdraw",
                        data={"csrf_token": token, "reason": "Issued for the wrong client", "password": "nope"})
    assert wrong.status_code == 403 and 'data-code="wrong_signing_password"' in wrong.text
    done = client.post(f"/reports/{report.report_no}/withdraw",
                       data={"csrf_token": token, "reason": "Issued for the wrong client", "password": PASSWORD})
    assert done.status_code == 303 and fresh(db, report).state == "withdrawn"
    panel = client.get(f"/reports/{report.report_no}/issue-panel").text
    assert 'id="withdrawn"' in panel and "Issued for the wrong client" in panel


def test_the_inspector_reads_the_panel_and_changes_nothing(db, client, reportable, users):
    cast = reportable
    report = reviewed_report(db, cast)
    token = login(client, users["inspector"].username)
    assert client.get(f"/reports/{report.report_no}/issue-panel").status_code == 200
    answer = client.post(f"/reports/{report.report_no}/render", data={"csrf_token": token})
    assert answer.status_code == 403 and "inspector_read_only" in answer.text
    assert fresh(db, report).rendered_pdf_sha256 == ""
    assert client.get(f"/reports/{report.report_no}/report.pdf").status_code == 404


def test_the_panel_runs_in_a_fixed_number_of_queries(db, client, reportable, users, count_queries):
    cast = reportable
    report = reviewed_report(db, cast)
    login(client, users["quality_manager"].username)
    with count_queries() as counted:
        page = client.get(f"/reports/{report.report_no}/issue-panel")
    assert page.status_code == 200 and re.search(r'data-state="reviewed"', page.text)
    assert counted.count <= 14
