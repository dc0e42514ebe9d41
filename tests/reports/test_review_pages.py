"""The review pages: a report taken through 编制 → 校核 → 审核 as three people in the browser's
way (forms, redirects, htmx fragments), returning with a reason, separation of duties as the
page shows it, the /review worklist (constant queries, only what the user may take up), the
dashboard card, and who may post what (the inspector reads and never posts)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.signatures import ElectronicSignature
from app.people import service as people
from app.people.models import User
from app.reports import drafts, review
from app.reports.models import Report, ReportSample, ReviewAct
from tests.analysis.conftest import qualify
from tests.conftest import PASSWORD, login, make_user
from tests.reports.conftest import make_report

ROW = re.compile(r'<tr data-report="([^"]+)" data-level="([^"]+)"')


def state_of(db, report) -> str:
    with db.reading() as session:
        return session.get(Report, report.id).state


def counts(db) -> dict[str, int]:
    """Rows an act on a report writes: a refusal leaves them as they were."""
    with db.reading() as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m))
                for m in (Report, ReportSample, ReviewAct, ElectronicSignature, AuditEvent)}


def act(db, service, user, report, *args):
    with db.transaction() as session:
        return service(session, session.get(User, user.id), session.get(Report, report.id), *args)


def submitted(db, reportable) -> Report:
    report = make_report(db, reportable.preparer, reportable.samples)
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    return report


def grant(db, user, role: str) -> None:
    with db.transaction() as session:
        people.grant_role_as_system(session, session.get(User, user.id), role, "test",
                                    valid_from=utcnow() - timedelta(days=365))


# ---------------------------------------------------------------- the three levels, end to end


def test_a_report_goes_through_the_levels_as_three_people(db, reportable, client):
    token = login(client, reportable.preparer.username)
    answer = client.post("/reports/new", data={"csrf_token": token, "title": "江城河十二月监测报告", "language": "zh",
                                               "samples": [s.sample_no for s in reportable.samples]})
    assert answer.status_code == 303
    url = answer.headers["location"]
    number = url.removeprefix("/reports/")
    report = Report(id=None, report_no=number)
    with db.reading() as session:
        report.id = session.scalars(select(Report.id).where(Report.report_no == number)).one()

    before = counts(db)
    wrong = client.post(f"{url}/submit", data={"csrf_token": token, "password": "not-my-password"})
    assert wrong.status_code == 403 and 'data-code="wrong_signing_password"' in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    after = counts(db)
    assert state_of(db, report) == "draft" and after["ReviewAct"] == before["ReviewAct"]
    assert after["ElectronicSignature"] == before["ElectronicSignature"]
    assert after["AuditEvent"] > before["AuditEvent"]  # the refusal is recorded, nothing else
    answer = client.post(f"{url}/submit", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 303 and state_of(db, report) == "submitted"

    token = login(client, reportable.checker.username)
    assert ROW.findall(client.get("/review").text) == [(number, "check")]
    page = client.get(url)
    assert 'id="sign-form"' in page.text and f'action="{url}/check"' in page.text
    assert 'id="submit-form"' not in page.text
    answer = client.post(f"{url}/check", data={"csrf_token": token, "password": PASSWORD, "comment": "原始记录已核对"})
    assert answer.status_code == 303 and state_of(db, report) == "checked"
    assert ROW.findall(client.get("/review").text) == []

    token = login(client, reportable.reviewer.username)
    assert ROW.findall(client.get("/review").text) == [(number, "review")]
    answer = client.post(f"{url}/review", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 303 and state_of(db, report) == "reviewed"

    login(client, reportable.signatory.username)
    assert ROW.findall(client.get("/review").text) == [(number, "approve")]
    page = client.get(url)
    assert 'id="return-form"' in page.text and f'action="{url}/approve/return"' in page.text
    assert 'id="sign-form"' not in page.text  # approval is the issue panel's
    history = re.findall(r'data-level="(\w+)" data-outcome="(\w+)" data-holds="(\w+)"', page.text)
    assert history == [("compile", "signed", "yes"), ("check", "signed", "yes"), ("review", "signed", "yes")]
    assert "原始记录已核对" in page.text


def test_a_level_is_signed_from_the_fragment_too(db, reportable, client):
    """htmx: a refusal swaps the actions section; success asks the browser to reload the page."""
    report = submitted(db, reportable)
    token = login(client, reportable.checker.username)
    headers = {"HX-Request": "true"}
    wrong = client.post(f"/reports/{report.report_no}/check", headers=headers,
                        data={"csrf_token": token, "password": "wrong", "comment": "看过了"})
    assert wrong.status_code == 403 and "<html" not in wrong.text and wrong.text.lstrip().startswith(
        '<section id="actions">')
    assert 'data-code="wrong_signing_password"' in wrong.text and "看过了" in wrong.text
    answer = client.post(f"/reports/{report.report_no}/check", headers=headers,
                         data={"csrf_token": token, "password": PASSWORD})
    # the page itself, reloaded (an anchor on the same address would only scroll, showing the old state)
    assert answer.status_code == 204 and answer.headers["HX-Redirect"] == f"/reports/{report.report_no}"
    assert state_of(db, report) == "checked"


# ---------------------------------------------------------------- returning


def test_returning_needs_a_reason_and_sends_the_report_back(db, reportable, client):
    report = submitted(db, reportable)
    token = login(client, reportable.checker.username)
    url = f"/reports/{report.report_no}"
    before = counts(db)
    short = client.post(f"{url}/check/return", data={"csrf_token": token, "reason": "不对"})
    assert short.status_code == 422 and 'data-code="return_reason_required"' in short.text
    assert ">不对</textarea>" in short.text
    assert counts(db) == before and state_of(db, report) == "submitted"
    assert client.post(f"{url}/check/return", data={"csrf_token": token, "reason": "x" * 2001}).status_code == 422
    reason = "S-001 的稀释倍数与原始记录不一致，请核对后重新录入"
    answer = client.post(f"{url}/check/return", data={"csrf_token": token, "reason": reason})
    assert answer.status_code == 303 and state_of(db, report) == "draft"
    page = client.get(url)
    assert re.search(r'data-level="check" data-outcome="returned"', page.text) and reason in page.text
    assert 'data-signature="cancelled"' in page.text  # the preparer's signature no longer counts
    # nothing awaits the checker now; the preparer may edit again
    assert ROW.findall(client.get("/review").text) == []
    login(client, reportable.preparer.username)
    assert 'id="submit-form"' in client.get(url).text


def test_a_level_the_user_does_not_hold_is_refused(db, reportable, users, client):
    report = submitted(db, reportable)
    url = f"/reports/{report.report_no}"
    token = login(client, reportable.reviewer.username)
    before = counts(db)
    assert client.post(f"{url}/check", data={"csrf_token": token, "password": PASSWORD}).status_code == 403
    assert client.post(f"{url}/check/return", data={"csrf_token": token, "reason": "a reason long enough"}
                       ).status_code == 403
    answer = client.post(f"{url}/review", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 409 and 'data-code="review_out_of_order"' in answer.text
    answer = client.post(f"{url}/review/return", data={"csrf_token": token, "reason": "a reason long enough"})
    assert answer.status_code == 403  # the awaited level is the check: a reviewer may not return it
    assert counts(db) == before
    token = login(client, users["analyst"].username)
    before = counts(db)
    assert client.post(f"{url}/header", data={"csrf_token": token, "title": "改标题"}).status_code == 409
    assert counts(db) == before


# ---------------------------------------------------------------- separation of duties as the page shows it


def test_the_page_says_why_a_producer_may_not_check_and_the_worklist_leaves_it_out(db, reportable, client):
    report = submitted(db, reportable)
    grant(db, reportable.analyst, "checker")  # the analyst who produced the data now also checks
    token = login(client, reportable.analyst.username)
    assert ROW.findall(client.get("/review").text) == []
    page = client.get(f"/reports/{report.report_no}")
    assert 'data-may-act="no" data-code="self_review_forbidden"' in page.text and 'id="sign-form"' not in page.text
    before = counts(db)
    answer = client.post(f"/reports/{report.report_no}/check", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 409 and 'data-code="self_review_forbidden"' in answer.text
    assert counts(db) == before and state_of(db, report) == "submitted"


def test_one_person_at_two_levels_is_left_out_of_the_worklist(db, reportable, client):
    both = make_user(db, "check-and-review", "checker", "reviewer")
    qualify(db, both, reportable.method.method_id)
    report = submitted(db, reportable)
    login(client, both.username)
    assert ROW.findall(client.get("/review").text) == [(report.report_no, "check")]
    act(db, review.check_report, both, report, PASSWORD)
    assert state_of(db, report) == "checked"
    assert ROW.findall(client.get("/review").text) == []
    page = client.get(f"/reports/{report.report_no}")
    assert 'data-code="self_review_forbidden"' in page.text


# ---------------------------------------------------------------- the worklist and the dashboard


def test_the_worklist_runs_in_constant_queries(db, reportable, users, client, count_queries):
    for _ in range(3):
        make_report(db, reportable.preparer, reportable.samples, state="submitted")
    make_report(db, reportable.preparer, reportable.samples, state="checked")  # not the checker's level
    make_report(db, users["checker"], reportable.samples, state="submitted")  # prepared by the checker
    login(client, users["checker"].username)
    with count_queries() as few:
        page = client.get("/review")
    assert page.status_code == 200 and len(ROW.findall(page.text)) == 3
    assert {level for _, level in ROW.findall(page.text)} == {"check"}
    for _ in range(17):
        make_report(db, reportable.preparer, reportable.samples, state="submitted")
    with count_queries() as many:
        page = client.get("/review")
    assert len(ROW.findall(page.text)) == 20
    assert many.count == few.count, (few.count, many.count)
    fragment = client.get("/review", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="results"' in fragment.text
    assert client.get("/review?page=0").status_code == 422


def test_the_dashboard_card_counts_what_awaits_the_user(db, reportable, users, client):
    make_report(db, reportable.preparer, reportable.samples, state="submitted")
    make_report(db, reportable.preparer, reportable.samples, state="submitted")
    login(client, users["checker"].username)
    dashboard = client.get("/dashboard").text
    assert 'href="/review"' in dashboard and re.search(r">\s*2\s*<", dashboard)
    login(client, users["analyst"].username)
    dashboard = client.get("/dashboard").text
    assert "/review" not in dashboard  # no level, no card, no nav entry
    assert client.get("/review").status_code == 200


# ---------------------------------------------------------------- who may post


POSTS = (("submit", {"password": PASSWORD}), ("check", {"password": PASSWORD}), ("review", {"password": PASSWORD}),
         ("check/return", {"reason": "a reason long enough"}), ("review/return", {"reason": "a reason long enough"}),
         ("approve/return", {"reason": "a reason long enough"}), ("header", {"title": "改"}),
         ("samples", {"samples": "WS01-261203-001"}), ("samples/WS01-261203-001/remove", {}))


def test_the_inspector_reads_everything_and_posts_nothing(db, reportable, users, client):
    report = make_report(db, reportable.preparer, reportable.samples)
    waiting = make_report(db, reportable.preparer, [], state="submitted")
    token = login(client, users["inspector"].username)
    for target in (report, waiting):
        page = client.get(f"/reports/{target.report_no}")
        assert page.status_code == 200 and f'action="/reports/{target.report_no}/' not in page.text
    assert client.get("/review").status_code == 200
    before = counts(db)
    for path, data in POSTS:
        answer = client.post(f"/reports/{report.report_no}/{path}", data={"csrf_token": token, **data})
        assert answer.status_code == 403, path
    assert client.post("/reports/new", data={"csrf_token": token, "title": "t", "samples": "x"}).status_code == 403
    after = counts(db)
    # each attempt is kept as a refusal in the audit trail (issue 10), and nothing else changed
    assert after.pop("AuditEvent") - before.pop("AuditEvent") == len(POSTS) + 1
    assert after == before


@pytest.mark.parametrize("role", ["sampler", "custodian", "admin"])
def test_roles_without_a_report_permission_post_nothing(db, reportable, users, client, role):
    report = make_report(db, reportable.preparer, reportable.samples)
    token = login(client, users[role].username)
    for path, data in POSTS:
        assert client.post(f"/reports/{report.report_no}/{path}",
                           data={"csrf_token": token, **data}).status_code == 403, path
    assert client.get("/reports/new").status_code == 403
    assert client.get(f"/reports/{report.report_no}").status_code == 200


# ---------------------------------------------------------------- a data correction after signing


def test_after_a_correction_the_page_takes_the_report_back_to_its_preparer(db, reportable, client):
    from app.analysis import submission
    from app.analysis.models import AnalysisBatch
    from tests.analysis.qc_fixtures import enter

    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.return_report, reportable.reviewer, report, "S-001 的读数抄错，请分析人更正")
    enter(db, reportable.bench, {"S-001": "0.515"}, reason="transcription error corrected")
    url = f"/reports/{report.report_no}"
    token = login(client, reportable.preparer.username)
    page = client.get(url)
    assert 'data-signature="broken"' in page.text and 'id="submit-form"' in page.text
    before = counts(db)
    answer = client.post(f"{url}/submit", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 409 and 'data-code="batch_signature_broken"' in answer.text
    assert counts(db) == before
    with db.transaction() as session:
        submission.resign_batch(session, session.get(User, reportable.analyst.id),
                                session.get(AnalysisBatch, reportable.bench.batch.id), PASSWORD)
    assert client.post(f"{url}/submit", data={"csrf_token": token, "password": PASSWORD}).status_code == 303
    assert state_of(db, report) == "submitted"  # review restarts at the check
    login(client, reportable.checker.username)
    assert ROW.findall(client.get("/review").text) == [(report.report_no, "check")]


def test_a_report_whose_data_moved_under_a_signature_says_so(db, reportable, client):
    """The row still says `checked`, the signatures say the preparer must sign again."""
    from tests.analysis.qc_fixtures import enter

    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    enter(db, reportable.bench, {"S-002": "0.201"}, reason="dilution corrected")
    login(client, reportable.preparer.username)
    page = client.get(f"/reports/{report.report_no}")
    assert 'data-state="checked"' in page.text and 'data-stale="yes"' in page.text
    assert 'id="submit-form"' in page.text and 'id="header-form"' not in page.text
    login(client, reportable.reviewer.username)
    page = client.get(f"/reports/{report.report_no}")
    assert 'id="sign-form"' not in page.text and 'id="return-form"' not in page.text
