"""Sampling tasks: an extra task without a plan, field QC per field batch as tasks join and leave
it (10 tasks: one blank, one duplicate; 11: two duplicates), reassigning before dispatch,
cancelling with a reason before sampling (a dispatched task's samples are cancelled, their
containers stay recorded). Each refusal changes nothing and writes no audit event."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.core.errors import InspectorReadOnly, PermissionDenied
from app.samples import registration
from app.samples.models import Container, Sample, SampleKind
from app.sites import errors as site_errors
from app.sites import plan_errors as errors
from app.sites import plans
from app.sites.models import MonitoringPlan, SamplingTask, Site, TaskStatus
from tests.conftest import make_user, race
from tests.sites.conftest import change_site, make_site
from tests.sites.test_plans import add_line, all_tasks, approve, batch_qc, events, new_plan, qm, refused, sampler, tm

__all__ = ["qm", "sampler", "tm"]  # fixtures shared with test_plans


@pytest.fixture
def day(db) -> date:
    return db.calendar.today() + timedelta(days=3)


def schedule(db, actor, site, sampler, day, parameters=("COD",)) -> SamplingTask:
    with db.transaction() as session:
        return plans.schedule_task(session, actor, site=session.get(Site, site.id), scheduled_on=day,
                                   sampler=sampler, parameters=list(parameters))


def task(db, code: str) -> SamplingTask:
    with db.reading() as session:
        found = plans.task_by_code(session, code)
        session.expunge(found)
        return found


def test_an_extra_task_without_a_plan(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    extra = schedule(db, tm, site, sampler, day, parameters=["cod", "tp"])
    assert extra.plan_id is None and extra.status == "scheduled" and extra.code.startswith("TK")
    assert plans.task_parameters(extra) == ["COD", "TP"]
    assert (extra.field_blanks, extra.field_duplicates) == (1, 1)  # a batch of one
    everything = schedule(db, tm, site, sampler, day, parameters=[])
    assert plans.task_parameters(everything) == ["pH", "COD", "NH3-N", "TP"]
    [first, second] = events(db, "task.scheduled")
    assert first.after_data["plan"] is None and first.after_data["site"] == "WS01"
    assert first.after_data["scheduled_on"] == day.isoformat() and first.after_data["sampler"] == "sampler"


def test_extra_task_refusals_change_nothing(db, tm, qm, sampler, users, day):
    site = make_site(db, tm, qm)
    today = db.calendar.today()

    def extra(session, actor=tm, **changes):
        args = {"site": session.get(Site, site.id), "scheduled_on": day, "sampler": sampler, "parameters": ["COD"],
                **changes}
        return plans.schedule_task(session, actor, **args)

    refused(db, errors.DayInPast, lambda s: extra(s, scheduled_on=today - timedelta(days=1)))
    refused(db, errors.ImplausibleDay, lambda s: extra(s, scheduled_on=today + timedelta(days=3 * 365)))
    refused(db, errors.ParameterNotMonitored, lambda s: extra(s, parameters=["Hg"]))
    refused(db, errors.NotASampler, lambda s: extra(s, sampler=users["custodian"]))
    refused(db, PermissionDenied, lambda s: extra(s, actor=users["custodian"]))
    refused(db, InspectorReadOnly, lambda s: extra(s, actor=users["inspector"]))
    change_site(db, tm, qm, site, kind="decommission", reason="断面撤销")
    refused(db, site_errors.SiteNotActive, lambda s: extra(s))


def test_today_is_not_in_the_past(db, tm, qm, sampler):
    today = db.calendar.today()
    assert schedule(db, tm, make_site(db, tm, qm), sampler, today).scheduled_on == today


def test_ten_tasks_carry_one_blank_and_one_duplicate_eleven_two_duplicates(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    for _ in range(10):
        schedule(db, tm, site, sampler, day)
    batch = all_tasks(db)
    assert batch_qc(batch) == (1, 1)
    assert (batch[0].field_blanks, batch[0].field_duplicates) == (1, 1)
    schedule(db, tm, site, sampler, day)
    batch = all_tasks(db)
    assert batch_qc(batch) == (1, 2)
    assert [t.field_duplicates for t in batch] == [1, 1] + [0] * 9
    # the second duplicate moved onto a task that existed: audited as a field QC change
    [change] = events(db, "task.field_qc_changed")
    assert change.entity_id == str(batch[1].id)
    assert change.before_data == {"field_blanks": 0, "field_duplicates": 0}
    assert change.after_data["field_duplicates"] == 1


def test_batches_are_per_sampler_and_day(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    other = make_user(db, "sampler-2", "sampler")
    for person, when in ((sampler, day), (sampler, day), (other, day), (sampler, day + timedelta(days=1))):
        schedule(db, tm, site, person, when)
    assert batch_qc(all_tasks(db, sampler_id=sampler.id, scheduled_on=day)) == (1, 1)
    assert batch_qc(all_tasks(db, sampler_id=other.id)) == (1, 1)
    assert batch_qc(all_tasks(db, scheduled_on=day + timedelta(days=1))) == (1, 1)


def test_reassigning_moves_the_task_and_its_qc_between_batches(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    other = make_user(db, "sampler-2", "sampler")
    first = schedule(db, tm, site, sampler, day)
    second = schedule(db, tm, site, sampler, day)
    with db.transaction() as session:
        plans.reassign_task(session, tm, session.get(SamplingTask, first.id), other)
    moved, stayed = task(db, first.code), task(db, second.code)
    assert moved.sampler_id == other.id
    # each batch of one carries its own blank and duplicate now
    assert (moved.field_blanks, moved.field_duplicates) == (1, 1)
    assert (stayed.field_blanks, stayed.field_duplicates) == (1, 1)
    [event] = events(db, "task.reassigned")
    assert event.before_data["sampler"] == "sampler" and event.after_data["sampler"] == "sampler-2"
    refused(db, errors.SameSampler, lambda s: plans.reassign_task(s, tm, s.get(SamplingTask, first.id), other))
    refused(db, errors.NotASampler, lambda s: plans.reassign_task(s, tm, s.get(SamplingTask, first.id), tm))
    refused(db, PermissionDenied, lambda s: plans.reassign_task(s, sampler, s.get(SamplingTask, first.id), sampler))


def test_a_dispatched_task_is_not_reassigned(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    extra = schedule(db, tm, site, sampler, day)
    with db.transaction() as session:
        registration.dispatch_task(session, tm, session.get(SamplingTask, extra.id))
    other = make_user(db, "sampler-2", "sampler")
    error = refused(db, errors.TaskNotReassignable,
                    lambda s: plans.reassign_task(s, tm, s.get(SamplingTask, extra.id), other))
    assert "派发" in error.message("zh_CN") and "dispatched" in error.message("en")


def test_cancelling_a_scheduled_task_needs_a_reason_and_hands_its_qc_on(db, tm, qm, sampler, users, day):
    site = make_site(db, tm, qm)
    first = schedule(db, tm, site, sampler, day)
    second = schedule(db, tm, site, sampler, day)
    refused(db, errors.ReasonRequired, lambda s: plans.cancel_task(s, tm, s.get(SamplingTask, first.id), "  "))
    refused(db, InspectorReadOnly, lambda s: plans.cancel_task(s, users["inspector"], s.get(SamplingTask, first.id),
                                                               "x"))
    with db.transaction() as session:
        plans.cancel_task(session, tm, session.get(SamplingTask, first.id), "暴雨，道路封闭")
    cancelled, remaining = task(db, first.code), task(db, second.code)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "暴雨，道路封闭"
    assert (cancelled.field_blanks, cancelled.field_duplicates) == (0, 0)
    assert (remaining.field_blanks, remaining.field_duplicates) == (1, 1)
    [event] = events(db, "task.cancelled")
    assert event.before_data == {"status": "scheduled", "field_blanks": 1, "field_duplicates": 1}
    assert event.after_data["cancel_reason"] == "暴雨，道路封闭" and event.after_data["samples"] == []
    error = refused(db, errors.TaskNotCancellable,
                    lambda s: plans.cancel_task(s, tm, s.get(SamplingTask, first.id), "again"))
    assert "取消" in error.message("zh_CN")


def test_cancelling_a_dispatched_task_cancels_its_samples_and_keeps_the_containers(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    extra = schedule(db, tm, site, sampler, day, parameters=["COD", "pH"])
    with db.transaction() as session:
        samples = registration.dispatch_task(session, tm, session.get(SamplingTask, extra.id))
        numbers = sorted(s.sample_no for s in samples)
    assert len(numbers) == 3  # routine, field blank, field duplicate
    with db.reading() as session:
        containers_before = session.scalars(select(Container.barcode).order_by(Container.id)).all()
    assert containers_before
    with db.transaction() as session:
        plans.cancel_task(session, tm, session.get(SamplingTask, extra.id), "委托方取消监测")
    with db.reading() as session:
        states = set(session.scalars(select(Sample.state).where(Sample.task_id == extra.id)))
        containers_after = session.scalars(select(Container.barcode).order_by(Container.id)).all()
        kinds = set(session.scalars(select(Sample.kind).where(Sample.task_id == extra.id)))
    assert states == {"cancelled"}
    assert kinds == {SampleKind.ROUTINE.value, SampleKind.FIELD_BLANK.value, SampleKind.FIELD_DUPLICATE.value}
    assert containers_after == containers_before
    [event] = events(db, "task.cancelled")
    assert sorted(event.after_data["samples"]) == numbers and event.before_data["status"] == "dispatched"


def test_a_task_being_sampled_is_not_cancelled(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    extra = schedule(db, tm, site, sampler, day)
    with db.transaction() as session:
        registration.dispatch_task(session, tm, session.get(SamplingTask, extra.id))
        session.get(SamplingTask, extra.id).status = TaskStatus.IN_FIELD.value
    refused(db, errors.TaskNotCancellable, lambda s: plans.cancel_task(s, tm, s.get(SamplingTask, extra.id), "x"))
    with db.transaction() as session:  # dispatched, but one sample already collected
        session.get(SamplingTask, extra.id).status = TaskStatus.DISPATCHED.value
        session.scalars(select(Sample).where(Sample.task_id == extra.id)).first().state = "collected"
    refused(db, errors.TaskNotCancellable, lambda s: plans.cancel_task(s, tm, s.get(SamplingTask, extra.id), "x"))


def test_dispatched_tasks_keep_their_qc_and_the_rest_of_the_batch_gets_the_difference(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm)
    first = schedule(db, tm, site, sampler, day)
    with db.transaction() as session:
        registration.dispatch_task(session, tm, session.get(SamplingTask, first.id))
    later = [schedule(db, tm, site, sampler, day) for _ in range(10)]
    # 11 tasks: one blank (already registered with the first), two duplicates (one registered)
    assert (task(db, first.code).field_blanks, task(db, first.code).field_duplicates) == (1, 1)
    assert batch_qc([task(db, t.code) for t in later]) == (0, 1)
    with db.transaction() as session:
        plans.cancel_task(session, tm, session.get(SamplingTask, later[0].id), "重复安排")
    # back to 10 tasks: the registered QC covers the batch; nothing left to carry
    assert batch_qc([task(db, t.code) for t in later]) == (0, 0)
    with db.transaction() as session:
        changed = plans.recompute_field_qc(session, sampler.id, day, tm)
    assert changed == []


def test_a_plan_task_cancelled_leaves_the_plan_approved(db, tm, qm, sampler):
    plan = new_plan(db, tm)
    add_line(db, tm, plan, make_site(db, tm, qm), sampler)
    [first, *_] = approve(db, tm, plan)
    with db.transaction() as session:
        plans.cancel_task(session, tm, session.get(SamplingTask, first.id), "冰封无法采样")
        assert session.get(MonitoringPlan, plan.id).status == "approved"


def test_the_containers_and_field_tests_of_a_task(db, tm, qm, sampler, day):
    site = make_site(db, tm, qm, parameters=[("pH", "monthly"), ("COD", "monthly"), ("NH3-N", "monthly"),
                                             ("Cu", "monthly"), ("CODMn", "monthly")])
    extra = schedule(db, tm, site, sampler, day, parameters=[])
    with db.reading() as session:
        view = plans.task_view(session, session.get(SamplingTask, extra.id))
        assert [c.group_code for c in view.containers] == ["h2so4", "hno3", "cool_dark"]
        assert view.containers[0].parameters == ("COD", "NH3-N") and view.containers[0].container_type == "G"
        assert [r.parameter for r in view.field_tests] == ["pH"]
        assert view.samples_to_register == 3 and view.containers_to_issue == 9
        assert view.samples == []


def test_two_tasks_moving_into_an_empty_batch_at_once_share_one_blank(pg_db, tm, qm, day):
    """Neither act's row locks cover the other's task: the batch's spreading is serialised per
    sampler, so the second sees the first's task and the batch carries one blank, one duplicate."""
    site = make_site(pg_db, tm, qm)
    samplers = [make_user(pg_db, f"sampler-{n}", "sampler") for n in "abc"]
    first = schedule(pg_db, tm, site, samplers[0], day)
    second = schedule(pg_db, tm, site, samplers[1], day)
    target = samplers[2]

    def move(task_id: int):
        return lambda session: plans.reassign_task(session, tm, session.get(SamplingTask, task_id), target.id)

    results = race(pg_db, move(first.id), move(second.id))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert batch_qc(all_tasks(pg_db, sampler_id=target.id)) == (1, 1)
