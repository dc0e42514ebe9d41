"""Monitoring plans: drafting (period, lines with a site's monitored parameters and a sampler),
approval generating the tasks (dates per frequency, one task per site and day with the union of
the parameters), field QC per field batch, closing. Each refusal changes nothing and writes no
audit event. Shared helpers for the task and page tests live here too."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import Database
from app.core.errors import DomainError, InspectorReadOnly, PermissionDenied
from app.people import service as people
from app.people.models import RoleGrant, User
from app.sites import errors as site_errors
from app.sites import plan_errors as errors
from app.sites import plans
from app.sites.models import MonitoringPlan, PlanLine, PlanStatus, SamplingTask, Site, TaskStatus
from tests.conftest import make_user
from tests.sites.conftest import change_site, make_site

# WS sites monitor pH, COD, NH3-N monthly and TP quarterly (tests.sites.conftest.DEFAULT_PARAMETERS)
Q1 = (date(2031, 1, 1), date(2031, 3, 31))


# ---------------------------------------------------------------- helpers (shared)


@pytest.fixture
def tm(users) -> User:
    return users["technical_manager"]


@pytest.fixture
def qm(users) -> User:
    return users["quality_manager"]


@pytest.fixture
def sampler(users) -> User:
    return users["sampler"]


def counts(db: Database) -> tuple[int, ...]:
    """Rows of every table a plan or task act may touch, audit events included."""
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(model)) or 0
                     for model in (MonitoringPlan, PlanLine, SamplingTask, AuditEvent))


def task_states(db: Database) -> list[tuple]:
    with db.reading() as session:
        return [tuple(row) for row in session.execute(select(
            SamplingTask.code, SamplingTask.status, SamplingTask.sampler_id, SamplingTask.field_blanks,
            SamplingTask.field_duplicates).order_by(SamplingTask.id))]


def refused(db: Database, error: type[DomainError], act) -> DomainError:
    """`act(session)` is refused with `error`, and nothing at all changed."""
    before, tasks = counts(db), task_states(db)
    with pytest.raises(error) as caught, db.transaction() as session:
        act(session)
    assert counts(db) == before
    assert task_states(db) == tasks
    error = caught.value
    assert error.message("zh_CN") != error.message("en")
    assert "{" not in error.message("zh_CN") + error.message("en"), "a message left a placeholder unfilled"
    assert error.code == type(error).code
    return error


def new_plan(db: Database, actor: User, period: tuple[date, date] = Q1, title: str = "2031 年一季度地表水例行监测"
             ) -> MonitoringPlan:
    with db.transaction() as session:
        return plans.create_plan(session, actor, title=title, period_start=period[0], period_end=period[1])


def add_line(db: Database, actor: User, plan: MonitoringPlan, site: Site, sampler: User | int, *,
             parameters=("COD", "NH3-N"), frequency="monthly", day: int = 10) -> PlanLine:
    with db.transaction() as session:
        return plans.add_plan_line(session, actor, session.get(MonitoringPlan, plan.id),
                                   site=session.get(Site, site.id), parameters=list(parameters),
                                   frequency=frequency, day_in_period=day, sampler=sampler)


def approve(db: Database, actor: User, plan: MonitoringPlan) -> list[SamplingTask]:
    with db.transaction() as session:
        return plans.approve_plan(session, actor, session.get(MonitoringPlan, plan.id))


def all_tasks(db: Database, **where) -> list[SamplingTask]:
    with db.reading() as session:
        stmt = select(SamplingTask).order_by(SamplingTask.scheduled_on, SamplingTask.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(SamplingTask, name) == value)
        found = list(session.scalars(stmt))
        session.expunge_all()
        return found


def events(db: Database, action: str) -> list[AuditEvent]:
    with db.reading() as session:
        found = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))
        session.expunge_all()
        return found


def batch_qc(tasks: list[SamplingTask]) -> tuple[int, int]:
    return sum(t.field_blanks for t in tasks), sum(t.field_duplicates for t in tasks)


# ---------------------------------------------------------------- drafting


def test_a_plan_is_drafted_with_a_code_and_audited(db, tm):
    plan = new_plan(db, tm)
    assert plans.CODE_RE.match(plan.code) and plan.code.startswith("PL")
    assert plan.status == PlanStatus.DRAFT.value
    [event] = events(db, "plan.created")
    assert event.actor_id == tm.id and event.after_data["code"] == plan.code
    assert event.after_data["period_start"] == "2031-01-01"


@pytest.mark.parametrize(("start", "end", "error"), [
    (date(2031, 3, 31), date(2031, 1, 1), errors.BadPeriod),
    (date(2031, 1, 1), date(2033, 1, 1), errors.PeriodTooLong),
    (date(1031, 1, 1), date(1031, 2, 1), errors.ImplausibleDay),
])
def test_a_bad_period_is_refused(db, tm, start, end, error):
    refused(db, error, lambda s: plans.create_plan(s, tm, title="计划", period_start=start, period_end=end))


def test_two_whole_years_are_allowed(db, tm):
    plan = new_plan(db, tm, (date(2031, 1, 1), date(2032, 12, 31)))
    assert plan.period_end == date(2032, 12, 31)


def test_a_plan_needs_a_title_and_the_technical_manager(db, tm, users):
    refused(db, errors.TitleRequired, lambda s: plans.create_plan(s, tm, title="  ", period_start=Q1[0],
                                                                  period_end=Q1[1]))
    refused(db, PermissionDenied, lambda s: plans.create_plan(s, users["sampler"], title="计划",
                                                              period_start=Q1[0], period_end=Q1[1]))
    refused(db, InspectorReadOnly, lambda s: plans.create_plan(s, users["inspector"], title="计划",
                                                               period_start=Q1[0], period_end=Q1[1]))


def test_a_line_takes_the_sites_spelling_and_a_blank_list_means_the_frequencys_parameters(db, tm, qm, sampler):
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    line = add_line(db, tm, plan, site, sampler, parameters=["cod", "nh3-n"])
    assert plans.task_parameters(line) == ["COD", "NH3-N"]
    other = make_site(db, tm, qm, "WS02")
    monthly = add_line(db, tm, plan, other, sampler, parameters=[], frequency="monthly")
    assert plans.task_parameters(monthly) == ["pH", "COD", "NH3-N"]
    quarterly = add_line(db, tm, plan, other, sampler, parameters=[], frequency="quarterly", day=20)
    assert plans.task_parameters(quarterly) == ["TP"]
    [event, *_] = events(db, "plan.line_added")
    assert event.after_data == {"plan": plan.code, "line_id": line.id, "site": "WS01", "parameters": ["COD", "NH3-N"],
                                "frequency": "monthly", "day_in_period": 10, "sampler": "sampler", "dates": 3}


def test_line_refusals_change_nothing(db, tm, qm, users, sampler):
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    add_line(db, tm, plan, site, sampler, parameters=["COD"])

    def line(session, **changes):
        args = {"site": session.get(Site, site.id), "parameters": ["NH3-N"], "frequency": "monthly",
                "day_in_period": 10, "sampler": sampler, **changes}
        return plans.add_plan_line(session, tm, session.get(MonitoringPlan, plan.id), **args)

    # a parameter the site does not monitor needs a site change first (the stronger rule)
    error = refused(db, errors.ParameterNotMonitored, lambda s: line(s, parameters=["NH3-N", "Cu"]))
    assert "Cu" in error.message("en") and "WS01" in error.message("en")
    # a parameter nobody knows: not at the site, nor in the preservation table
    error = refused(db, errors.ParameterNotMonitored, lambda s: line(s, parameters=["Unobtainium"]))
    assert "Unobtainium" in error.message("zh_CN")
    refused(db, errors.ParameterAlreadyPlanned, lambda s: line(s, parameters=["cod"]))
    refused(db, errors.NotASampler, lambda s: line(s, sampler=users["analyst"]))
    refused(db, errors.NotASampler, lambda s: line(s, sampler=424242))
    refused(db, errors.SamplerRequired, lambda s: line(s, sampler=None))
    refused(db, errors.BadFrequency, lambda s: line(s, frequency="hourly"))
    refused(db, errors.BadDayInPeriod, lambda s: line(s, day_in_period=32))
    refused(db, errors.BadDayInPeriod, lambda s: line(s, frequency="weekly", day_in_period=8))
    refused(db, errors.BadDayInPeriod, lambda s: line(s, day_in_period=0))
    refused(db, errors.NoParameters, lambda s: line(s, parameters=[], frequency="weekly", day_in_period=2))
    refused(db, PermissionDenied, lambda s: plans.add_plan_line(
        s, users["sampler"], s.get(MonitoringPlan, plan.id), site=s.get(Site, site.id), parameters=["NH3-N"],
        frequency="monthly", day_in_period=10, sampler=sampler))


def test_a_site_that_is_not_active_cannot_be_planned(db, tm, qm, sampler):
    site = make_site(db, tm, qm)
    change_site(db, tm, qm, site, kind="suspend", reason="桥梁施工")
    plan = new_plan(db, tm)
    refused(db, site_errors.SiteNotActive, lambda s: plans.add_plan_line(
        s, tm, s.get(MonitoringPlan, plan.id), site=s.get(Site, site.id), parameters=["COD"], frequency="monthly",
        day_in_period=10, sampler=sampler))


def test_a_sampler_whose_role_ended_is_refused(db, tm, qm, users):
    former = make_user(db, "former-sampler", "sampler")
    with db.transaction() as session:
        grant = session.scalars(select(RoleGrant).where(RoleGrant.user_id == former.id)).one()
        people.end_role(session, users["admin"], grant.id, "调岗")
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    refused(db, errors.NotASampler, lambda s: plans.add_plan_line(
        s, tm, s.get(MonitoringPlan, plan.id), site=s.get(Site, site.id), parameters=["COD"], frequency="monthly",
        day_in_period=10, sampler=former.id))


def test_lines_are_removed_only_while_draft(db, tm, qm, sampler):
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    first = add_line(db, tm, plan, site, sampler, parameters=["COD"])
    second = add_line(db, tm, plan, site, sampler, parameters=["NH3-N"])
    with db.transaction() as session:
        plans.remove_plan_line(session, tm, session.get(MonitoringPlan, plan.id), session.get(PlanLine, first.id))
    [event] = events(db, "plan.line_removed")
    assert event.before_data["parameters"] == ["COD"] and event.after_data is None
    approve(db, tm, plan)
    refused(db, errors.PlanNotDraft, lambda s: plans.remove_plan_line(
        s, tm, s.get(MonitoringPlan, plan.id), s.get(PlanLine, second.id)))
    error = refused(db, errors.PlanNotDraft, lambda s: plans.add_plan_line(
        s, tm, s.get(MonitoringPlan, plan.id), site=s.get(Site, site.id), parameters=["COD"], frequency="monthly",
        day_in_period=10, sampler=sampler))
    assert "批准" in error.message("zh_CN") and "approved" in error.message("en")
    refused(db, errors.PlanNotDraft, lambda s: plans.approve_plan(s, tm, s.get(MonitoringPlan, plan.id)))


def test_a_line_of_another_plan_is_not_found(db, tm, qm, sampler):
    site = make_site(db, tm, qm)
    plan, other = new_plan(db, tm), new_plan(db, tm, title="另一个计划")
    line = add_line(db, tm, other, site, sampler)
    refused(db, errors.PlanLineNotFound, lambda s: plans.remove_plan_line(
        s, tm, s.get(MonitoringPlan, plan.id), s.get(PlanLine, line.id)))


# ---------------------------------------------------------------- approval


def test_approval_generates_one_task_per_site_and_day_with_the_union_of_parameters(db, tm, qm, sampler, users):
    ws01, ws02 = make_site(db, tm, qm), make_site(db, tm, qm, "WS02")
    second = make_user(db, "sampler-2", "sampler")
    plan = new_plan(db, tm)
    add_line(db, tm, plan, ws01, sampler, parameters=["COD", "NH3-N"], frequency="monthly", day=10)
    add_line(db, tm, plan, ws01, second, parameters=["TP"], frequency="quarterly", day=10)  # merges into Jan 10
    add_line(db, tm, plan, ws01, second, parameters=["pH"], frequency="monthly", day=20)
    add_line(db, tm, plan, ws02, second, parameters=["COD"], frequency="monthly", day=10)
    tasks = approve(db, tm, plan)
    assert len(tasks) == 3 + 3 + 3
    got = {(t.site_id, t.scheduled_on): t for t in all_tasks(db)}
    january = got[(ws01.id, date(2031, 1, 10))]
    assert plans.task_parameters(january) == ["COD", "NH3-N", "TP"]
    assert january.sampler_id == sampler.id  # the first line's sampler
    assert plans.task_parameters(got[(ws01.id, date(2031, 2, 10))]) == ["COD", "NH3-N"]
    assert plans.task_parameters(got[(ws01.id, date(2031, 1, 20))]) == ["pH"]
    assert got[(ws01.id, date(2031, 1, 20))].sampler_id == second.id
    assert plans.task_parameters(got[(ws02.id, date(2031, 3, 10))]) == ["COD"]
    for task in got.values():
        assert task.status == TaskStatus.SCHEDULED.value and task.plan_id == plan.id
        assert task.code.startswith("TK") and plans.CODE_RE.match(task.code)
        assert task.created_by_id == tm.id
    # codes follow the day, then the site
    ordered = sorted(got.values(), key=lambda t: t.code)
    assert [(t.scheduled_on, t.site_id) for t in ordered] == sorted((t.scheduled_on, t.site_id) for t in ordered)
    with db.reading() as session:
        approved = session.get(MonitoringPlan, plan.id)
        session.expunge(approved)
    assert approved.status == PlanStatus.APPROVED.value
    assert approved.approved_by_id == tm.id and approved.approved_at is not None
    [event] = events(db, "plan.approved")
    assert event.before_data["status"] == "draft"
    assert event.after_data["tasks"] == 9 and event.after_data["first_day"] == "2031-01-10"
    scheduled = events(db, "task.scheduled")
    assert len(scheduled) == 9
    assert {e.after_data["plan"] for e in scheduled} == {plan.code}


def test_field_qc_per_sampler_and_day(db, tm, qm, sampler):
    """Each field batch (a sampler's tasks of a day) carries one field blank and one duplicate."""
    ws01, ws02, ws03 = (make_site(db, tm, qm, code) for code in ("WS01", "WS02", "WS03"))
    plan = new_plan(db, tm)
    for site in (ws01, ws02, ws03):
        add_line(db, tm, plan, site, sampler, parameters=["COD"])
    approve(db, tm, plan)
    for day in (date(2031, 1, 10), date(2031, 2, 10), date(2031, 3, 10)):
        batch = all_tasks(db, scheduled_on=day)
        assert len(batch) == 3
        assert batch_qc(batch) == (1, 1)
        assert (batch[0].field_blanks, batch[0].field_duplicates) == (1, 1)  # the first task carries them
    [event] = events(db, "plan.approved")
    assert (event.after_data["field_blanks"], event.after_data["field_duplicates"]) == (3, 3)


def test_a_plan_without_lines_or_dates_cannot_be_approved(db, tm, qm, sampler):
    plan = new_plan(db, tm)
    refused(db, errors.PlanHasNoLines, lambda s: plans.approve_plan(s, tm, s.get(MonitoringPlan, plan.id)))
    short = new_plan(db, tm, (date(2031, 1, 1), date(2031, 1, 5)), title="五天")
    add_line(db, tm, short, make_site(db, tm, qm), sampler, day=10)
    refused(db, errors.PlanGeneratesNoTasks, lambda s: plans.approve_plan(s, tm, s.get(MonitoringPlan, short.id)))


def test_approval_checks_the_site_again(db, tm, qm, sampler):
    """A site suspended after the line was written is refused at approval: nothing generated."""
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    add_line(db, tm, plan, site, sampler)
    change_site(db, tm, qm, site, kind="suspend", reason="桥梁施工")
    refused(db, site_errors.SiteNotActive, lambda s: plans.approve_plan(s, tm, s.get(MonitoringPlan, plan.id)))


def test_approval_refuses_a_parameter_the_site_stopped_monitoring(db, tm, qm, sampler):
    site = make_site(db, tm, qm)
    plan = new_plan(db, tm)
    add_line(db, tm, plan, site, sampler, parameters=["TP"], frequency="quarterly")
    change_site(db, tm, qm, site, parameters=[("pH", "monthly"), ("COD", "monthly")])
    refused(db, errors.ParameterNotMonitored, lambda s: plans.approve_plan(s, tm, s.get(MonitoringPlan, plan.id)))


def test_only_the_technical_manager_approves(db, tm, qm, sampler, users):
    plan = new_plan(db, tm)
    add_line(db, tm, plan, make_site(db, tm, qm), sampler)
    refused(db, PermissionDenied, lambda s: plans.approve_plan(s, qm, s.get(MonitoringPlan, plan.id)))
    refused(db, InspectorReadOnly, lambda s: plans.approve_plan(s, users["inspector"], s.get(MonitoringPlan, plan.id)))


def test_plan_and_task_lookups(db, tm, qm, sampler):
    plan = new_plan(db, tm)
    add_line(db, tm, plan, make_site(db, tm, qm), sampler)
    [task, *_] = approve(db, tm, plan)
    with db.reading() as session:
        assert plans.plan_by_code(session, f" {plan.code.lower()} ").id == plan.id
        assert plans.task_by_code(session, task.code).id == task.id
        for bad in ("", "PL26-99999", "x" * 500, "'; drop table"):
            with pytest.raises(errors.PlanNotFound):
                plans.plan_by_code(session, bad)
            with pytest.raises(errors.TaskNotFound):
                plans.task_by_code(session, bad)


# ---------------------------------------------------------------- closing


def test_closing_cancels_the_tasks_not_yet_dispatched_with_the_reason(db, tm, qm, sampler):
    plan = new_plan(db, tm)
    add_line(db, tm, plan, make_site(db, tm, qm), sampler)
    approve(db, tm, plan)
    refused(db, errors.ReasonRequired, lambda s: plans.close_plan(s, tm, s.get(MonitoringPlan, plan.id), ""))
    with db.transaction() as session:
        plans.close_plan(session, tm, session.get(MonitoringPlan, plan.id), "上级调整监测方案")
    tasks = all_tasks(db)
    assert {t.status for t in tasks} == {"cancelled"}
    assert {t.cancel_reason for t in tasks} == {"上级调整监测方案"}
    assert batch_qc(tasks) == (0, 0)
    [event] = events(db, "plan.closed")
    assert event.after_data["cancelled_tasks"] == [t.code for t in tasks]
    assert len(events(db, "task.cancelled")) == 3
    refused(db, errors.PlanClosed, lambda s: plans.close_plan(s, tm, s.get(MonitoringPlan, plan.id), "again"))


def test_a_draft_closes_without_a_reason(db, tm):
    plan = new_plan(db, tm)
    with db.transaction() as session:
        closed = plans.close_plan(session, tm, session.get(MonitoringPlan, plan.id))
    assert closed.status == "closed" and closed.closed_at is not None


def test_a_plan_with_a_dispatched_task_does_not_close_and_becomes_active(db, tm, qm, sampler):
    from app.samples import registration

    today = db.calendar.today()
    plan = new_plan(db, tm, (today - timedelta(days=1), today + timedelta(days=60)))
    add_line(db, tm, plan, make_site(db, tm, qm), sampler, frequency="weekly", day=7)
    [first, *_] = approve(db, tm, plan)
    with db.transaction() as session:
        registration.dispatch_task(session, tm, session.get(SamplingTask, first.id))
    with db.reading() as session:
        assert session.get(MonitoringPlan, plan.id).status == PlanStatus.ACTIVE.value
    error = refused(db, errors.TasksInProgress,
                    lambda s: plans.close_plan(s, tm, s.get(MonitoringPlan, plan.id), "提前结束"))
    assert first.code in error.message("en")


def test_mark_plan_active_only_moves_an_approved_plan(db, tm, qm, sampler):
    plan = new_plan(db, tm)
    with db.transaction() as session:
        assert plans.mark_plan_active(session, session.get(MonitoringPlan, plan.id), tm) is False
    add_line(db, tm, plan, make_site(db, tm, qm), sampler)
    approve(db, tm, plan)
    with db.transaction() as session:
        assert plans.mark_plan_active(session, session.get(MonitoringPlan, plan.id), tm) is True
        assert plans.mark_plan_active(session, session.get(MonitoringPlan, plan.id), tm) is False
    [event] = events(db, "plan.activated")
    assert json.loads(event.after)["status"] == "active"
