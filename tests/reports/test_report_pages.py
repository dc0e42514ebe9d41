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
from tests.analysis.conftest import samples_in_lab
from tests.analysis.qc_fixtures import PASSING, STANDARD_LAYOUT, enter, running_batch, submit
from tests.conftest import PASSWORD, login
from tests.reports.conftest import make_report

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ROW = re.compile(r'data-report="([^"]+)"')


def ten_sample_batch(db, users, method, instrument) -> list:
    """Ten samples analysed in one QC-passed batch signed by users['analyst']."""
    samples = samples_in_lab(db, users["custodian"], count=10, prefix="WS03-261204")
    layout = STANDARD_LAYOUT + tuple((f"S-{i:03d}", "sample", i - 1, None, {}) for i in range(3, 11))
    bench = running_batch(db, users["analyst"], method, samples, instrument=instrument, layout=layout)
    enter(db, bench, {**PASSING, **{f"S-{i:03d}": f"0.{i + 30}" for i in range(3, 11)}})
    submit(db, bench, PASSWORD)
    return samples


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


# ---------------------------------------------------------------- preparing a new report


def test_preparing_a_report_through_the_form(db, reportable, client):
    token = login(client, reportable.preparer.username)
    page = client.get("/reports/new")
    assert page.status_code == 200 and 'id="new-report"' in page.text
    assert re.findall(r'<tr data-sample="([^"]+)"', page.text) == [s.sample_no for s in reportable.samples]
    narrowed = client.get(f"/reports/new?pick_text={reportable.samples[1].sample_no[-3:]}")
    assert re.findall(r'<tr data-sample="([^"]+)"', narrowed.text) == [reportable.samples[1].sample_no]
    answer = client.post("/reports/new", data={
        "csrf_token": token, "title": "江城河断面监测报告", "language": "zh", "client_name": "",
        "samples": [s.sample_no for s in reportable.samples]})
    assert answer.status_code == 303, answer.text
    number = answer.headers["location"].removeprefix("/reports/")
    shown = client.get(answer.headers["location"])
    assert shown.status_code == 200 and "江城河断面监测报告" in shown.text
    assert re.findall(r'<tr data-sample="([^"]+)" data-parameter="NH3-N"', shown.text) == [
        s.sample_no for s in reportable.samples]
    assert 'id="submit-form"' in shown.text  # the preparer signs it
    with db.reading() as session:
        report = session.scalars(select(Report).where(Report.report_no == number)).one()
        assert report.prepared_by_id == reportable.preparer.id and report.state == "draft"
    # on a live report now, the samples are no longer offered
    assert re.findall(r'<tr data-sample="', client.get("/reports/new").text) == []


def test_a_refused_new_report_keeps_what_was_typed_and_saves_nothing(db, reportable, client):
    token = login(client, reportable.preparer.username)
    before = counts(db)
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "只有标题的报告", "language": "zh",
                                               "client_contact": "王工 138"})
    assert answer.status_code == 422 and 'data-code="report_needs_samples"' in answer.text
    assert 'value="只有标题的报告"' in answer.text and 'value="王工 138"' in answer.text
    chosen = reportable.samples[0].sample_no
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "", "language": "zh",
                                               "samples": [chosen]})
    assert answer.status_code == 422 and 'data-code="report_field_invalid"' in answer.text
    assert re.search(rf'value="{chosen}" aria-label="{chosen}" checked', answer.text)  # the tick is kept
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "报告", "language": "fr",
                                               "samples": [chosen]})
    assert answer.status_code == 422 and 'data-code="invalid_report_language"' in answer.text
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "报告", "limit_set": "99999",
                                               "samples": [chosen]})
    assert answer.status_code == 404 and 'data-code="limit_set_not_found"' in answer.text
    assert client.post("/reports/new", data={"csrf_token": token, "title": "报告", "limit_set": "x1",
                                             "samples": [chosen]}).status_code == 422
    assert client.post("/reports/new", data={"csrf_token": token, "title": "x" * 201,
                                             "samples": [chosen]}).status_code == 422
    assert counts(db) == before


def test_the_picker_filters_and_turns_pages_keeping_the_form(db, reportable, client):
    token = login(client, reportable.preparer.username)
    before = counts(db)
    first, second = (s.sample_no for s in reportable.samples)
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "筛选时保留的标题", "samples": [first],
                                               "pick_text": second[-3:], "pick_page": "1"})
    assert answer.status_code == 200 and 'value="筛选时保留的标题"' in answer.text
    assert re.findall(r'<tr data-sample="([^"]+)"', answer.text) == [second]
    assert f'<input type="hidden" name="samples" value="{first}">' in answer.text  # ticked elsewhere, kept
    assert counts(db) == before


def test_only_preparers_open_the_form(client, users):
    login(client, users["checker"].username)
    assert client.get("/reports/new").status_code == 403
    login(client, users["inspector"].username)
    assert client.get("/reports/new").status_code == 403


# ---------------------------------------------------------------- the report's page


def test_the_report_page_shows_what_the_report_says(db, users, reportable, uv, client, count_queries):
    report = make_report(db, reportable.preparer, reportable.samples, client_name="江城市生态环境局")
    login(client, users["checker"].username)
    with count_queries() as few:
        page = client.get(f"/reports/{report.report_no}")
    assert page.status_code == 200 and CHINESE.search(page.text)
    assert "江城市生态环境局" in page.text and 'data-state="draft"' in page.text
    rows = re.findall(r'<tr data-sample="([^"]+)" data-parameter="([^"]+)"', page.text)
    assert rows == [(s.sample_no, "NH3-N") for s in reportable.samples]
    assert "0.512" in page.text and "HJ 535-2009" in page.text
    assert 'id="checklist"' in page.text and 'data-check=' in page.text
    assert 'id="history"' in page.text
    assert 'id="submit-form"' not in page.text and 'id="header-form"' not in page.text  # a checker prepares nothing
    assert client.get("/reports/BG1999-9999").status_code == 404
    assert client.get("/reports/" + "X" * 41).status_code == 422
    # ten samples (in one batch, as the two are): the same number of queries
    big = make_report(db, reportable.preparer, ten_sample_batch(db, users, reportable.method, uv))
    with count_queries() as many:
        page = client.get(f"/reports/{big.report_no}")
    assert len(re.findall(r'<tr data-sample="', page.text)) == 10
    assert many.count == few.count, (few.count, many.count)


# ---------------------------------------------------------------- editing the draft from its page


def _samples_of(db, report) -> list[str]:
    from app.samples.models import Sample
    with db.reading() as session:
        return list(session.scalars(select(Sample.sample_no).join(ReportSample, ReportSample.sample_id == Sample.id)
                                    .where(ReportSample.report_id == report.id).order_by(ReportSample.position)))


def test_the_draft_is_edited_from_its_page(db, reportable, client):
    first, second = (s.sample_no for s in reportable.samples)
    report = make_report(db, reportable.preparer, reportable.samples[:1])
    url = f"/reports/{report.report_no}"
    token = login(client, reportable.preparer.username)
    page = client.get(url)
    assert 'id="header-form"' in page.text and 'id="add-samples"' in page.text and 'id="submit-form"' in page.text
    assert re.findall(r'<tr data-sample="([^"]+)">', page.text) == [second]  # the picker offers the other one
    assert re.findall(r'<tr data-sample="([^"]+)">', client.get(f"{url}?pick_text=NOPE").text) == []

    header = {"csrf_token": token, "title": "改过的标题", "client_name": "河口水务", "client_contact": "",
              "language": "en", "limit_set": "", "target_class": "", "remarks": "第二页附图"}
    assert client.post(f"{url}/header", data=header).status_code == 303
    with db.reading() as session:
        saved = session.get(Report, report.id)
        assert (saved.title, saved.client_name, saved.language, saved.remarks) == (
            "改过的标题", "河口水务", "en", "第二页附图")
    before = counts(db)
    answer = client.post(f"{url}/header", data={**header, "title": "又改了", "language": "de"})
    assert answer.status_code == 422 and 'data-code="invalid_report_language"' in answer.text
    assert 'value="又改了"' in answer.text and "<details class=\"panel\" id=\"header-form\" open>" in answer.text
    fragment = client.post(f"{url}/header", data={**header, "language": "de"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 422 and "<html" not in fragment.text and 'id="actions"' in fragment.text
    assert 'data-code="invalid_report_language"' in fragment.text
    assert counts(db) == before

    assert client.post(f"{url}/samples", data={"csrf_token": token, "samples": [second]}).status_code == 303
    assert _samples_of(db, report) == [first, second]
    before = counts(db)
    answer = client.post(f"{url}/samples", data={"csrf_token": token, "samples": ["WS99-000000-001"]})
    assert answer.status_code == 404 and 'data-code="sample_not_found"' in answer.text
    answer = client.post(f"{url}/samples", data={"csrf_token": token})
    assert answer.status_code == 422 and 'data-code="report_needs_samples"' in answer.text
    assert counts(db) == before

    assert client.post(f"{url}/samples/{first}/remove", data={"csrf_token": token}).status_code == 303
    assert _samples_of(db, report) == [second]
    before = counts(db)
    answer = client.post(f"{url}/samples/{second}/remove", data={"csrf_token": token})
    assert answer.status_code == 422 and 'data-code="report_needs_samples"' in answer.text
    answer = client.post(f"{url}/samples/{first}/remove", data={"csrf_token": token})
    assert answer.status_code == 409 and 'data-code="sample_not_on_report"' in answer.text
    assert client.post(f"{url}/samples/{'X' * 41}/remove", data={"csrf_token": token}).status_code == 422
    assert counts(db) == before


def test_a_submitted_report_is_no_longer_edited(db, reportable, client):
    from app.people.models import User
    from app.reports import drafts

    report = make_report(db, reportable.preparer, reportable.samples)
    with db.transaction() as session:
        drafts.submit_report(session, session.get(User, reportable.preparer.id), session.get(Report, report.id),
                             PASSWORD)
    token = login(client, reportable.preparer.username)
    page = client.get(f"/reports/{report.report_no}")
    assert 'data-state="submitted"' in page.text and 'id="header-form"' not in page.text
    assert 'class="remove-sample"' not in page.text
    before = counts(db)
    answer = client.post(f"/reports/{report.report_no}/header", data={"csrf_token": token, "title": "晚了"})
    assert answer.status_code == 409 and 'data-code="report_not_editable"' in answer.text
    assert counts(db) == before
