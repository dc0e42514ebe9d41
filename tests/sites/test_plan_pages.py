"""The plan and task pages as the technical manager, the custodian and the inspector use them:
drafting a plan, adding and removing lines (a refused line comes back with its message and what
was typed), approving, closing; the task worklist with its filters; scheduling, dispatching,
reassigning and cancelling a task; the dashboard card and the scan box. The lists and detail
pages cost a fixed number of SQL statements however many rows there are."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.sites.models import MonitoringPlan, SamplingTask
from tests.conftest import login, make_user, refusals_so_far
from tests.sites.conftest import make_site
from tests.sites.test_plans import add_line, all_tasks, approve, new_plan, qm, sampler, tm

__all__ = ["qm", "sampler", "tm"]  # fixtures shared with test_plans


def post(client, url: str, token: str, **data):
    return client.post(url, data={"csrf_token": token, **data})


def audit_count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up (role cache, templates)
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


@pytest.fixture
def site(db, tm, qm):
    return make_site(db, tm, qm)


# ---------------------------------------------------------------- a plan through its pages


def test_the_technical_manager_drafts_fills_and_approves_a_plan(client, db, tm, qm, sampler, site):
    make_site(db, tm, qm, "WS02", name_zh="汉江入江口断面")
    token = login(client, "technical-manager")
    form = client.get("/plans/new")
    assert form.status_code == 200 and 'name="period_start"' in form.text
    response = post(client, "/plans", token, title="2031 年一季度地表水例行监测", period_start="2031-01-01",
                    period_end="2031-03-31", note="按年度方案")
    assert response.status_code == 303
    url = response.headers["location"]
    code = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"PL\d{2}-\d{5}", code)
    page = client.get(url)
    assert page.status_code == 200 and "2031 年一季度地表水例行监测" in page.text
    assert f'action="/plans/{code}/lines"' in page.text and "WS02" in page.text  # the site choices

    response = post(client, f"{url}/lines", token, site="ws01", parameters="COD，NH3-N", frequency="monthly",
                    day_in_period="10", sampler_id=str(sampler.id))
    assert response.status_code == 303
    response = post(client, f"{url}/lines", token, site="WS02", parameters="", frequency="quarterly",
                    day_in_period="20", sampler_id=str(sampler.id))
    assert response.status_code == 303
    page = client.get(url).text
    assert "COD, NH3-N" in page and "TP" in page
    assert "Approve" in page or "批准" in page

    response = post(client, f"{url}/approve", token)
    assert response.status_code == 303
    page = client.get(url).text
    assert 'data-count="scheduled"' in page
    assert re.search(rf'data-count="scheduled"><a href="/tasks\?plan={code}&amp;status=scheduled&amp;date_from=">4<',
                     page)
    assert f'action="/plans/{code}/lines"' not in page  # no more lines once approved
    listing = client.get(f"/tasks?plan={code}&date_from=").text
    assert listing.count('<a href="/tasks/TK') == 4
    assert client.get("/plans").text.count(f'<a href="/plans/{code}"') == 2


def test_a_refused_line_comes_back_with_its_message_and_what_was_typed(client, db, tm, sampler, site):
    plan = new_plan(db, tm)
    token = login(client, "technical-manager")
    before = audit_count(db)
    response = post(client, f"/plans/{plan.code}/lines", token, site="WS01", parameters="COD, Hg",
                    frequency="monthly", day_in_period="10", sampler_id=str(sampler.id))
    assert response.status_code == 422
    assert 'data-code="parameter_not_monitored"' in response.text
    assert "Hg" in response.text and 'value="COD, Hg"' in response.text
    assert 'aria-invalid="true"' in response.text
    for data, code in (({"site": "NOPE9"}, "site_not_found"), ({"site": ""}, "site_not_found"),
                       ({"day_in_period": "abc"}, "bad_day_in_period"), ({"frequency": "hourly"}, "bad_frequency"),
                       ({"sampler_id": "x1"}, "not_a_sampler"), ({"sampler_id": ""}, "sampler_required")):
        fields = {"site": "WS01", "parameters": "COD", "frequency": "monthly", "day_in_period": "10",
                  "sampler_id": str(sampler.id), **data}
        response = post(client, f"/plans/{plan.code}/lines", token, **fields)
        assert response.status_code in (404, 422), (data, response.status_code)
        assert f'data-code="{code}"' in response.text, (data, response.text[:500])
    assert audit_count(db) == before
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(MonitoringPlan)) == 1


def test_refused_plan_forms_keep_what_was_typed(client, db, tm):
    token = login(client, "technical-manager")
    response = post(client, "/plans", token, title="计划", period_start="2031-03-01", period_end="2031-01-01")
    assert response.status_code == 422 and 'data-code="bad_plan_period"' in response.text
    assert 'value="2031-03-01"' in response.text and 'value="计划"' in response.text
    response = post(client, "/plans", token, title="计划", period_start="2031-02-30", period_end="2031-03-01")
    assert response.status_code == 422 and 'data-code="bad_date"' in response.text


def test_lines_are_removed_and_an_approved_plan_is_closed(client, db, tm, sampler, site):
    plan = new_plan(db, tm)
    line = add_line(db, tm, plan, site, sampler, parameters=["COD"])
    add_line(db, tm, plan, site, sampler, parameters=["pH"])
    token = login(client, "technical-manager")
    assert post(client, f"/plans/{plan.code}/lines/{line.id}/remove", token).status_code == 303
    assert post(client, f"/plans/{plan.code}/lines/424242/remove", token).status_code == 404
    approve(db, tm, plan)
    response = post(client, f"/plans/{plan.code}/close", token, reason="")
    assert response.status_code == 422 and 'data-code="reason_required"' in response.text
    assert post(client, f"/plans/{plan.code}/close", token, reason="方案调整").status_code == 303
    page = client.get(f"/plans/{plan.code}").text
    assert 'data-status="closed"' in page and f'action="/plans/{plan.code}/close"' not in page
    response = post(client, f"/plans/{plan.code}/approve", token)
    assert response.status_code == 409 and 'data-code="plan_not_draft"' in response.text


# ---------------------------------------------------------------- tasks through their pages


def test_the_worklist_starts_today_and_filters(client, db, tm, sampler, site):
    today = db.calendar.today()
    plan = new_plan(db, tm, (today - timedelta(days=14), today + timedelta(days=20)))
    add_line(db, tm, plan, site, sampler, parameters=["COD"], frequency="weekly", day=1)
    tasks = approve(db, tm, plan)
    upcoming = [t for t in tasks if t.scheduled_on >= today]
    other = make_user(db, "sampler-2", "sampler")
    login(client, "analyst")
    page = client.get("/tasks").text
    assert page.count('<a href="/tasks/TK') == len(upcoming)
    assert client.get("/tasks?date_from=").text.count('<a href="/tasks/TK') == len(tasks)
    assert client.get(f"/tasks?date_from=&sampler={other.id}").text.count('<a href="/tasks/TK') == 0
    assert client.get("/tasks?date_from=&site=ws01&status=scheduled").text.count('<a href="/tasks/TK') == len(tasks)
    assert client.get("/tasks?date_from=&site=WS99").text.count('<a href="/tasks/TK') == 0
    day = upcoming[0].scheduled_on.isoformat()
    narrowed = client.get(f"/tasks?date_from={day}&date_to={day}").text
    assert narrowed.count('<a href="/tasks/TK') == 1
    days = re.findall(r'<td><a href="/tasks/TK[\d-]+"><time>(\d{4}-\d{2}-\d{2})</time></a></td>',
                      client.get("/tasks?date_from=").text)
    assert len(days) == len(tasks)
    assert days == sorted(days)
    for url in ("/tasks", "/plans?q=a"):
        fragment = client.get(url, headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    for bad in ("date_from=2024-13-45", "date_to=notadate", "sampler=abc", "status=lost", "plan=XX", "next_days=0"):
        assert client.get(f"/tasks?{bad}").status_code == 422, bad


def test_scheduling_dispatching_and_cancelling_a_task(client, db, tm, sampler, site, users):
    day = db.calendar.today() + timedelta(days=2)
    token = login(client, "technical-manager")
    assert client.get("/tasks/new?site=ws01").status_code == 200
    response = post(client, "/tasks", token, site="WS01", scheduled_on=day.isoformat(), sampler_id=str(sampler.id),
                    parameters="pH COD NH3-N")
    assert response.status_code == 303
    url = response.headers["location"]
    page = client.get(url).text
    assert 'data-group="h2so4"' in page and "H2SO4" in page  # COD and NH3-N share the acid bottle
    assert "pH" in page and 'id="field-tests"' in page
    assert 'data-qc="blank"' in page and 'data-qc="duplicate"' in page
    assert f'action="{url}/dispatch"' in page  # the technical manager may register samples

    response = post(client, f"{url}/dispatch", token)
    assert response.status_code == 303
    page = client.get(url).text
    barcodes = re.findall(r'data-barcode="(CT\d{2}-\d{8})"', page)
    assert len(barcodes) == 3  # routine, field blank, field duplicate: one acid bottle each
    assert 'data-status="dispatched"' in page and f'action="{url}/dispatch"' not in page
    again = post(client, f"{url}/dispatch", token)
    assert again.status_code == 409

    response = post(client, f"{url}/cancel", token, reason="")
    assert response.status_code == 422 and 'data-code="reason_required"' in response.text
    assert post(client, f"{url}/cancel", token, reason="暴雨预警").status_code == 303
    page = client.get(url).text
    assert "暴雨预警" in page and page.count('data-state="cancelled"') == 3
    assert re.findall(r'data-barcode="(CT\d{2}-\d{8})"', page) == barcodes


def test_a_refused_extra_task_keeps_the_form(client, db, tm, sampler, site):
    token = login(client, "technical-manager")
    yesterday = (db.calendar.today() - timedelta(days=1)).isoformat()
    response = post(client, "/tasks", token, site="WS01", scheduled_on=yesterday, sampler_id=str(sampler.id),
                    parameters="COD")
    assert response.status_code == 422 and 'data-code="task_day_in_past"' in response.text
    assert f'value="{yesterday}"' in response.text
    response = post(client, "/tasks", token, site="WS01", scheduled_on="tomorrow", sampler_id=str(sampler.id))
    assert response.status_code == 422 and 'data-code="bad_date"' in response.text
    assert all_tasks(db) == []


def test_reassigning_on_the_task_page(client, db, tm, sampler, site):
    plan = new_plan(db, tm)
    add_line(db, tm, plan, site, sampler)
    [first, *_] = approve(db, tm, plan)
    other = make_user(db, "sampler-2", "sampler", name_zh="李四")
    token = login(client, "technical-manager")
    page = client.get(f"/tasks/{first.code}").text
    assert "李四" in page and f'action="/tasks/{first.code}/reassign"' in page
    response = post(client, f"/tasks/{first.code}/reassign", token, sampler_id=str(sampler.id))
    assert response.status_code == 422 and 'data-code="same_sampler"' in response.text
    assert post(client, f"/tasks/{first.code}/reassign", token, sampler_id=str(other.id)).status_code == 303
    with db.reading() as session:
        assert session.get(SamplingTask, first.id).sampler_id == other.id


def test_the_custodian_dispatches_but_does_not_plan(client, db, tm, sampler, site):
    today = db.calendar.today()
    plan = new_plan(db, tm, (today, today + timedelta(days=40)))
    add_line(db, tm, plan, site, sampler, frequency="weekly", day=7)
    [first, *_] = approve(db, tm, plan)
    token = login(client, "custodian")
    page = client.get(f"/tasks/{first.code}").text
    assert f'action="/tasks/{first.code}/dispatch"' in page
    assert f'action="/tasks/{first.code}/cancel"' not in page
    assert post(client, f"/tasks/{first.code}/dispatch", token).status_code == 303
    assert post(client, f"/tasks/{first.code}/cancel", token, reason="x").status_code == 403
    assert client.get("/plans/new").status_code == 403


def test_the_inspector_reads_everything_and_changes_nothing(client, db, tm, sampler, site):
    plan = new_plan(db, tm)
    line = add_line(db, tm, plan, site, sampler)
    draft = new_plan(db, tm, title="草稿")
    add_line(db, tm, draft, site, sampler)
    [first, *_] = approve(db, tm, plan)
    token = login(client, "inspector")
    for url in ("/plans", f"/plans/{plan.code}", f"/plans/{draft.code}", "/tasks", "/tasks?date_from=",
                f"/tasks/{first.code}"):
        response = client.get(url)
        assert response.status_code == 200, url
        main = response.text.split("<main", 1)[1].split("</main>")[0]
        assert 'method="post"' not in main, url  # no act is offered
    before, mark = audit_count(db), refusals_so_far(db)
    for url, data in ((f"/plans/{draft.code}/lines", {"site": "WS01"}),
                      (f"/plans/{draft.code}/lines/{line.id}/remove", {}), (f"/plans/{draft.code}/approve", {}),
                      (f"/plans/{plan.code}/close", {"reason": "x"}), ("/plans", {"title": "x"}),
                      ("/tasks", {"site": "WS01"}), (f"/tasks/{first.code}/dispatch", {}),
                      (f"/tasks/{first.code}/cancel", {"reason": "x"}),
                      (f"/tasks/{first.code}/reassign", {"sampler_id": str(sampler.id)})):
        response = client.post(url, data={"csrf_token": token, **data}, headers={"Accept": "application/json"})
        assert response.status_code == 403 and response.json()["code"] == "inspector_read_only", url
    for url in ("/plans/new", "/tasks/new"):
        assert client.get(url).status_code == 403
    assert audit_count(db) - before == refusals_so_far(db) - mark == 11  # each attempt kept as a refusal


def test_the_analyst_stays_blind_to_which_samples_are_field_qc(client, db, tm, sampler, site):
    today = db.calendar.today()
    plan = new_plan(db, tm, (today, today + timedelta(days=30)))
    add_line(db, tm, plan, site, sampler, frequency="weekly", day=7)
    [first, *_] = approve(db, tm, plan)
    from app.samples import registration

    with db.transaction() as session:
        registration.dispatch_task(session, tm, session.get(SamplingTask, first.id))
    login(client, "analyst")
    page = client.get(f"/tasks/{first.code}").text
    assert page.count("data-barcode=") == 3  # COD and NH3-N: one acid bottle per sample
    assert "data-kind=" not in page
    client.cookies.clear()
    login(client, "quality-manager")
    page = client.get(f"/tasks/{first.code}").text
    assert sorted(re.findall(r'data-kind="(\w+)"', page)) == ["field_blank", "field_duplicate", "routine"]


def test_the_dashboard_card_and_the_scan_box(client, db, tm, sampler, site):
    today = db.calendar.today()
    plan = new_plan(db, tm, (today, today + timedelta(days=30)))
    add_line(db, tm, plan, site, sampler, frequency="weekly", day=2)
    tasks = approve(db, tm, plan)
    due = [t for t in tasks if t.scheduled_on < today + timedelta(days=7)]
    login(client, "technical-manager")
    dashboard = client.get("/dashboard").text
    card = re.search(r'<a class="worklist[^"]*" href="/tasks\?status=scheduled&amp;next_days=7">\s*'
                     r'<span class="count">(\d+)</span>', dashboard)
    assert card and int(card.group(1)) == len(due) == 1
    listing = client.get("/tasks?status=scheduled&next_days=7").text
    assert listing.count('<a href="/tasks/TK') == 1
    response = client.get("/scan", params={"code": tasks[0].code.lower()})
    assert response.status_code == 303 and response.headers["location"] == f"/tasks/{tasks[0].code}"
    response = client.get("/scan", params={"code": plan.code})
    assert response.status_code == 303 and response.headers["location"] == f"/plans/{plan.code}"
    assert client.get("/tasks/TK99-99999").status_code == 404
    assert client.get("/plans/nonsense").status_code == 404


# ---------------------------------------------------------------- query counts


def _plans_with_tasks(db, tm, sampler, sites, first: int, n: int) -> list[MonitoringPlan]:
    made = []
    for i in range(first, first + n):
        plan = new_plan(db, tm, (date(2031, 1, 1), date(2031, 3, 31)), title=f"计划 {i}")
        for site in sites:
            add_line(db, tm, plan, site, sampler, parameters=["COD"], day=1 + i % 28)
        approve(db, tm, plan)
        made.append(plan)
    return made


def test_the_lists_cost_the_same_for_2_and_20_plans(client, db, tm, qm, sampler, count_queries):
    sites = [make_site(db, tm, qm, code) for code in ("WS01", "WS02")]
    _plans_with_tasks(db, tm, sampler, sites, 0, 2)
    login(client, "technical-manager")
    urls = ("/plans", "/plans?q=计划&status=approved", "/tasks?date_from=", "/tasks?date_from=2031-01-01&site=WS01",
            f"/tasks?sampler={sampler.id}&date_from=&status=scheduled")
    few = {url: statements(client, count_queries, url) for url in urls}
    _plans_with_tasks(db, tm, sampler, sites, 2, 18)
    assert client.get("/plans").text.count('<a href="/plans/PL') == 2 * 20
    assert client.get("/tasks?date_from=").text.count('<a href="/tasks/TK') == 50  # a full page
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert max(many.values()) <= 6


def test_the_plan_and_task_pages_cost_the_same_for_few_and_many_rows(client, db, tm, qm, sampler, count_queries):
    from app.samples import registration

    codes = [f"WS{i:02d}" for i in range(1, 13)]
    sites = [make_site(db, tm, qm, code) for code in codes]
    today = db.calendar.today()
    small = new_plan(db, tm, (today, today + timedelta(days=6)), title="小")
    other = make_user(db, "sampler-2", "sampler")  # a field batch of its own
    add_line(db, tm, small, sites[0], other, parameters=["COD"], frequency="weekly", day=7)
    [small_task] = approve(db, tm, small)
    big = new_plan(db, tm, (today, today + timedelta(days=6)), title="大")
    for site in sites:
        add_line(db, tm, big, site, sampler, parameters=["pH", "COD", "NH3-N", "TP"], frequency="weekly", day=7)
    big_tasks = approve(db, tm, big)
    with db.transaction() as session:
        for task in (small_task, big_tasks[0]):
            registration.dispatch_task(session, tm, session.get(SamplingTask, task.id))
    login(client, "technical-manager")
    plan_few = statements(client, count_queries, f"/plans/{small.code}")
    plan_many = statements(client, count_queries, f"/plans/{big.code}")
    assert plan_few == plan_many and plan_many <= 8
    task_few = statements(client, count_queries, f"/tasks/{small_task.code}")
    carrier = big_tasks[0]  # the task carrying the batch's blank and a duplicate: 3 samples
    assert (carrier.field_blanks, carrier.field_duplicates) == (1, 1)
    task_many = statements(client, count_queries, f"/tasks/{carrier.code}")
    assert task_few == task_many and task_many <= 12
