"""The reports JSON API: the paginated list with its status filter (a bad status is a 422),
verification by hash, one report, the issued PDF as stored (404 before issue), a sign-in needed,
and the list in a constant number of queries."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import update

from app.core.db import utcnow
from app.reports.models import Report
from tests.conftest import login
from tests.reports.conftest import make_report
from tests.reports.test_issue import approve, render, reviewed_report


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.job_queue = "inline"


def mark_issued(db, report: Report, **values) -> str:
    sha = hashlib.sha256(report.report_no.encode()).hexdigest()
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == report.id).values(
            state="issued", pdf_sha256=sha, issued_at=utcnow(), **values))
    return sha


def test_list_filters_paginates_and_names_amendments(db, users, reportable, client, settings):
    cast = reportable
    original = make_report(db, cast.preparer, cast.samples, report_no="BG2026-0101")
    mark_issued(db, original)
    amendment = make_report(db, cast.preparer, cast.samples, report_no="BG2026-0101-A1")
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == amendment.id).values(amends_id=original.id))
    sha = mark_issued(db, amendment)
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == original.id).values(
            state="superseded", superseded_by_id=amendment.id))
    make_report(db, cast.preparer, cast.samples, report_no="BG2026-0102")  # a draft
    login(client, users["inspector"].username)

    body = client.get("/api/v1/reports?status=issued").json()
    assert body["total"] == 1
    item = body["items"][0]
    assert item["report_no"] == "BG2026-0101-A1" and item["status"] == "issued" and item["supersedes"] == "BG2026-0101"
    assert item["pdf_sha256"] == sha and item["issued_at"] and item["superseded_by"] is None
    with db.reading() as session:
        token = session.get(Report, amendment.id).verify_token
    assert item["verify_url"] == f"{settings.public_base_url}/verify/{token}"
    old = client.get("/api/v1/reports?status=superseded").json()["items"][0]
    assert old["report_no"] == "BG2026-0101" and old["superseded_by"] == "BG2026-0101-A1"

    everything = client.get("/api/v1/reports?per_page=2").json()
    assert (everything["total"], everything["pages"], len(everything["items"])) == (3, 2, 2)
    assert len(client.get("/api/v1/reports?per_page=2&page=2").json()["items"]) == 1
    draft = next(i for i in client.get("/api/v1/reports").json()["items"] if i["status"] == "draft")
    assert draft["pdf_sha256"] is None and draft["verify_url"] is None

    by_hash = client.get(f"/api/v1/reports?sha256={sha.upper()}").json()
    assert [i["report_no"] for i in by_hash["items"]] == ["BG2026-0101-A1"]
    assert client.get(f"/api/v1/reports?sha256={'0' * 64}").json()["total"] == 0
    for bad in ("status=published", "sha256=abc", "per_page=0", "page=0"):
        answer = client.get(f"/api/v1/reports?{bad}")
        assert answer.status_code == 422, bad


def test_one_report_and_its_pdf(db, users, reportable, client, settings):
    cast = reportable
    report = reviewed_report(db, cast)
    login(client, users["inspector"].username)
    assert client.get(f"/api/v1/reports/{report.report_no}").json()["status"] == "reviewed"
    answer = client.get(f"/api/v1/reports/{report.report_no}/pdf")
    assert answer.status_code == 404 and answer.json()["code"] == "report_pdf_not_available"
    render(db, cast.signatory, report)
    issued = approve(db, cast.signatory, report)
    body = client.get(f"/api/v1/reports/ {report.report_no} ").json()
    assert body["status"] == "issued" and body["pdf_sha256"] == issued.pdf_sha256
    assert body["audit_seq"] == issued.audit_seq and body["audit_hash"] == issued.audit_hash
    assert body["retain_until"] == issued.retain_until.isoformat() and body["cma_mark"] == issued.cma_mark
    answer = client.get(f"/api/v1/reports/{report.report_no}/pdf")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(answer.content).hexdigest() == issued.pdf_sha256 == answer.headers["x-content-sha256"]
    missing = client.get("/api/v1/reports/BG2099-9999")
    assert missing.status_code == 404 and missing.json()["code"] == "report_not_found"


def test_the_api_needs_a_sign_in(db, client):
    assert client.get("/api/v1/reports").status_code == 401
    assert client.get("/api/v1/reports/BG2026-0001/pdf").status_code == 401


def test_the_list_runs_in_constant_queries(db, users, reportable, client, count_queries):
    cast = reportable
    login(client, users["analyst"].username)

    def listed() -> int:
        with count_queries() as counted:
            assert client.get("/api/v1/reports?per_page=50").status_code == 200
        return counted.count

    first = make_report(db, cast.preparer, cast.samples)
    mark_issued(db, first)

    def add_amendment() -> None:
        amendment = make_report(db, cast.preparer, cast.samples)
        with db.transaction() as session:
            session.execute(update(Report).where(Report.id == amendment.id).values(amends_id=first.id))
        mark_issued(db, amendment)

    add_amendment()
    few = listed()
    for _ in range(5):
        add_amendment()
    assert listed() == few
