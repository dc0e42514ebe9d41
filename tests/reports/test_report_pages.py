"""The report pages: the list (filters, htmx fragment, constant queries), preparing a report
through the form (a refusal keeps what was typed and saves nothing), the report's page (results
as printed, checklist, history, the forms the reader may use; constant queries), who sees what
(the inspector reads and never posts), and the navigation."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.reports.models import Report, ReportSample
from tests.conftest import login
from tests.reports.conftest import make_report

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ROW = re.compile(r'data-report="([^"]+)"')


def counts(db) -> tuple[int, int, int]:
    """(reports, report samples, audit events): a refusal leaves all three as they were."""
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (Report, ReportSample, AuditEvent))


# ---------------------------------------------------------------- the list


def test_the_list_filters_pages_and_answers_htmx_with_its_results(db, users, reportable, client, count_queries):
    first = make_report(db, reportable.preparer, reportable.samples[:1], client_name="江城市生态环境局")
    second = make_report(db, reportable.preparer, reportable.samples[1:], state="submitted", client_name="河口水务")
    login(client, "inspector")
    with count_queries() as few:
        page = client.get("/reports")
    assert page.status_code == 200 and "<html" in page.text and CHINESE.search(page.text)
    assert ROW.findall(page.text) == [second.report_no, first.report_no]  # newest first
    assert 'href="/reports/new"' not in page.text  # the inspector prepares nothing
    fragment = client.get("/reports?state=submitted", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    assert ROW.findall(fragment.text) == [second.report_no]
    assert ROW.findall(client.get("/reports?client=江城").text) == [first.report_no]
    assert ROW.findall(client.get(f"/reports?number={first.report_no.lower()}").text) == [first.report_no]
    assert ROW.findall(client.get("/reports?number=%25").text) == []  # a wildcard is a character
    assert client.get("/reports?state=bogus").status_code == 422
    assert client.get("/reports?page=0").status_code == 422
    for _ in range(28):
        make_report(db, reportable.preparer, reportable.samples[:1])
    with count_queries() as many:
        crowded = client.get("/reports")
    assert many.count == few.count
    assert len(ROW.findall(crowded.text)) == 30 and "?page=2" not in crowded.text


def test_the_list_pages_by_the_settings_size(db, reportable, client, settings):
    for _ in range(settings.page_size + 1):
        make_report(db, reportable.preparer, reportable.samples[:1])
    login(client, "checker")
    page = client.get("/reports")
    assert len(ROW.findall(page.text)) == settings.page_size and "page=2" in page.text
    assert len(ROW.findall(client.get("/reports?page=2").text)) == 1


@pytest.mark.parametrize("role", ["analyst", "checker", "reviewer", "signatory", "quality_manager", "inspector",
                                  "sampler", "admin"])
def test_every_signed_in_user_reads_the_list(client, users, role):
    login(client, users[role].username)
    assert client.get("/reports").status_code == 200


def test_the_list_needs_a_sign_in(client):
    assert client.get("/reports").status_code in (303, 401)


def test_the_nav_names_reports(client, users):
    login(client, "analyst")
    assert 'href="/reports"' in client.get("/dashboard").text
