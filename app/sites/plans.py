"""Monitoring plans (采样计划) and the sampling tasks they generate (DOMAIN.md §1 step 2, §3).

A plan covers a period of at most two years; its lines say: sample this site for these parameters
at this frequency, on this day of each period, by this sampler. Lines change only while the plan
is a draft. Approving it (technical manager) turns every line into dates (`occurrences`), merges
the lines of one site on one date into one task (union of the parameters, the first line's
sampler), and spreads the field QC over each field batch: a sampler's tasks of one day get one
field blank and field duplicates for at least 10 % of their samples (app.samples.field_qc).

Which parameters a line may ask for: only those the site's version in force monitors. The site's
approved parameter list is the stronger rule (every one of them is in the preservation table):
sampling a parameter the site does not monitor needs an approved site change first, so the plan
can never quietly widen what a site is for. A blank parameter list means every parameter the
site monitors at the line's frequency.

The plan becomes `active` when its first task is dispatched: app.samples.registration's
dispatch_task sets it (or calls `mark_plan_active`). Every act is audited in its transaction.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import next_code, reserve_codes
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, roles_at
from app.core.roles import Role
from app.core.web import Page
from app.people.models import RoleGrant, User
from app.samples.field_qc import FieldQc, field_qc_for_batch
from app.samples.models import Container, PreservationRule, Sample, SampleState
from app.samples.preservation import (
    ConflictingContainers,
    ContainerNeed,
    UnknownParameter,
    clean_parameters,
    containers_for,
    field_tests_of,
    rules_for,
)
from app.sites import plan_errors as errors
from app.sites.models import (
    Frequency,
    MonitoringPlan,
    PlanLine,
    PlanStatus,
    SamplingTask,
    Site,
    SiteVersion,
    TaskStatus,
)
from app.sites.service import assert_site_usable, parameters_of

PLAN_PREFIX, TASK_PREFIX = "PL", "TK"
CODE_RE = re.compile(r"^(PL|TK)\d{2}-\d{5,9}$")
MAX_PERIOD_MONTHS = 24  # a plan covers at most two years
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)
# the months one period of each frequency spans; weekly periods are 7 days
MONTHS_PER_PERIOD = {Frequency.MONTHLY: 1, Frequency.BIMONTHLY: 2, Frequency.QUARTERLY: 3,
                     Frequency.SEMIANNUAL: 6, Frequency.ANNUAL: 12}
# the longest period of each frequency, in days: the largest meaningful "day in the period"
MAX_DAY_IN_PERIOD = {Frequency.WEEKLY: 7, Frequency.MONTHLY: 31, Frequency.BIMONTHLY: 62,
                     Frequency.QUARTERLY: 92, Frequency.SEMIANNUAL: 184, Frequency.ANNUAL: 366}
FREQUENCY_NAMES = {  # (zh, en) for messages
    Frequency.WEEKLY: ("每周", "weekly"), Frequency.MONTHLY: ("每月", "monthly"),
    Frequency.BIMONTHLY: ("每两月", "every two months"), Frequency.QUARTERLY: ("每季度", "quarterly"),
    Frequency.SEMIANNUAL: ("每半年", "every six months"), Frequency.ANNUAL: ("每年", "yearly"),
}
PLAN_STATUS_NAMES = {
    PlanStatus.DRAFT: ("草稿", "a draft"), PlanStatus.APPROVED: ("批准", "approved"),
    PlanStatus.ACTIVE: ("执行中", "active"), PlanStatus.CLOSED: ("关闭", "closed"),
}
TASK_STATUS_NAMES = {
    TaskStatus.SCHEDULED: ("计划", "scheduled"), TaskStatus.DISPATCHED: ("派发", "dispatched"),
    TaskStatus.IN_FIELD: ("在现场采样", "in the field"), TaskStatus.COMPLETED: ("完成", "completed"),
    TaskStatus.CANCELLED: ("取消", "cancelled"),
}
# tasks whose samples exist: their field QC is registered and no longer moves
QC_FIXED_STATUSES = (TaskStatus.DISPATCHED.value, TaskStatus.IN_FIELD.value, TaskStatus.COMPLETED.value)
PG_FIELD_QC_LOCK_KEY = 7_243_061  # arbitrary constant naming the advisory locks of field batches
PARAMETER_SPLIT_RE = re.compile(r"[\s,，、;；]+")


# ---------------------------------------------------------------- the calendar of a frequency


def _add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def occurrences(period_start: date, period_end: date, frequency: Frequency | str, day_in_period: int) -> list[date]:
    """The sampling dates of one plan line inside [period_start, period_end], sorted.

    weekly: every 7 days from period_start + (day_in_period - 1) % 7.
    monthly, bimonthly, quarterly, semiannual, annual: the period is cut into blocks of 1, 2, 3, 6
    or 12 calendar months starting with the month of period_start (a plan from 1 January has
    calendar quarters and halves); the date is day N of each block counted from the first day of
    its first month (day 10 of a quarter is the 10th of its first month, day 40 the 9th or 10th of
    its second), clamped to the block's last day (day 31 of a monthly line in February is the
    28th or 29th). Dates of a block that fall outside the period are dropped.
    """
    if day_in_period < 1:
        raise ValueError("day_in_period counts from 1")
    frequency = Frequency(frequency)
    if period_end < period_start:
        return []
    if frequency is Frequency.WEEKLY:
        first = period_start + timedelta(days=(day_in_period - 1) % 7)
        count = 0 if first > period_end else (period_end - first).days // 7 + 1
        return [first + timedelta(days=7 * i) for i in range(count)]
    months = MONTHS_PER_PERIOD[frequency]
    found = []
    block = date(period_start.year, period_start.month, 1)
    while block <= period_end:
        following = _add_months(block, months)
        day = min(block + timedelta(days=day_in_period - 1), following - timedelta(days=1))
        if period_start <= day <= period_end:
            found.append(day)
        block = following
    return found


def period_limit(period_start: date) -> date:
    """The first day after the longest period a plan starting on `period_start` may cover."""
    year, month = period_start.year + MAX_PERIOD_MONTHS // 12, period_start.month
    return date(year, month, min(period_start.day, calendar.monthrange(year, month)[1]))


def split_parameters(text: str) -> list[str]:
    """Parameters as typed in a form: separated by commas (also Chinese ，、), semicolons or spaces."""
    return clean_parameters(PARAMETER_SPLIT_RE.split(text or ""))


# ---------------------------------------------------------------- lookups


def _code(text: str) -> str:
    return (text or "").strip().upper()[:40]


def plan_by_code(session: Session, code: str) -> MonitoringPlan:
    wanted = _code(code)
    plan = None
    if CODE_RE.match(wanted):
        plan = session.scalars(select(MonitoringPlan).where(MonitoringPlan.code == wanted)).first()
    if plan is None:
        raise errors.PlanNotFound(plan=wanted or "—")
    return plan


def task_by_code(session: Session, code: str) -> SamplingTask:
    wanted = _code(code)
    task = None
    if CODE_RE.match(wanted):
        task = session.scalars(select(SamplingTask).where(SamplingTask.code == wanted)).first()
    if task is None:
        raise errors.TaskNotFound(task=wanted or "—")
    return task


def plan_line(session: Session, plan: MonitoringPlan, line_id: int) -> PlanLine:
    line = session.get(PlanLine, line_id)
    if line is None or line.plan_id != plan.id:
        raise errors.PlanLineNotFound(plan=plan.code)
    return line


def task_parameters(task: SamplingTask | PlanLine) -> list[str]:
    return list(json.loads(task.parameters or "[]"))


# ---------------------------------------------------------------- the rules of a line or task


def _names(mapping: dict[Any, tuple[str, str]], key: Any) -> dict[str, str]:
    zh, en = mapping.get(key, (str(key), str(key)))
    return {"zh": zh, "en": en}


def _lock(session: Session, row: Any) -> None:
    """Serialise acts on one plan or task (a row lock on PostgreSQL; SQLite's writer is single)."""
    session.refresh(row, with_for_update=True)


def _frequency(value: Frequency | str) -> Frequency:
    try:
        return Frequency(value)
    except ValueError:
        raise errors.BadFrequency(frequency=str(value)[:20]) from None


def _day_in_period(frequency: Frequency, day: int) -> int:
    most = MAX_DAY_IN_PERIOD[frequency]
    if not isinstance(day, int) or not 1 <= day <= most:
        raise errors.BadDayInPeriod(day=str(day)[:10], most=most, frequency=FREQUENCY_NAMES[frequency][1])
    return day


def _sampler(session: Session, sampler: User | int | None) -> User:
    """An active user holding the sampler role now."""
    if sampler is None:
        raise errors.SamplerRequired()
    user_id = sampler.id if isinstance(sampler, User) else sampler
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None:
        raise errors.NotASampler(name=f"#{user_id}")
    if not user.active or Role.SAMPLER not in roles_at(session, user.id):
        raise errors.NotASampler(name=user.printed_name)
    return user


def _plan_parameters(session: Session, site: Site, version: SiteVersion, parameters: Iterable[str],
                     frequency: Frequency | None) -> list[str]:
    """The parameters asked for, spelled as the site's version lists them; blank: every parameter
    the site monitors (at `frequency`, when given). Refuses parameters the site does not monitor."""
    monitored = parameters_of(session, version.id)
    by_fold = {p.parameter.casefold(): p.parameter for p in monitored}
    wanted = clean_parameters(parameters)
    if not wanted:
        wanted = [p.parameter for p in monitored if frequency is None or p.frequency == frequency.value]
        if not wanted:
            zh, en = FREQUENCY_NAMES[frequency] if frequency else ("—", "—")
            raise errors.NoParameters(site=site.code, frequency_zh=zh, frequency_en=en)
    missing = [p for p in wanted if p.casefold() not in by_fold]
    if missing:
        raise errors.ParameterNotMonitored(site=site.code, version=version.version_no, parameters="、".join(missing))
    names = [by_fold[p.casefold()] for p in wanted]
    rules_for(session, names)  # the containers can be worked out: each is in the preservation table
    return names


def _check_day(day: date) -> date:
    if not isinstance(day, date) or not EARLIEST_DAY <= day <= LATEST_DAY:
        raise errors.ImplausibleDay(day=str(day)[:20], earliest=EARLIEST_DAY.isoformat(),
                                    latest=LATEST_DAY.isoformat())
    return day


def _check_period(period_start: date, period_end: date) -> None:
    _check_day(period_start)
    _check_day(period_end)
    if period_end < period_start:
        raise errors.BadPeriod(start=period_start.isoformat(), end=period_end.isoformat())
    if period_end >= period_limit(period_start):
        raise errors.PeriodTooLong(start=period_start.isoformat(), end=period_end.isoformat())


def _require_draft(plan: MonitoringPlan) -> None:
    if plan.status != PlanStatus.DRAFT.value:
        names = _names(PLAN_STATUS_NAMES, PlanStatus(plan.status))
        raise errors.PlanNotDraft(plan=plan.code, status_zh=names["zh"], status_en=names["en"])


def _reason(reason: str, limit: int = 500) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise errors.ReasonRequired()
    return cleaned[:limit]


# ---------------------------------------------------------------- snapshots for the audit trail


def plan_snapshot(plan: MonitoringPlan) -> dict[str, Any]:
    return {"code": plan.code, "title": plan.title, "period_start": plan.period_start,
            "period_end": plan.period_end, "status": plan.status, "note": plan.note}


def line_snapshot(session: Session, line: PlanLine, plan: MonitoringPlan) -> dict[str, Any]:
    site = session.get(Site, line.site_id)
    sampler = session.get(User, line.sampler_id) if line.sampler_id else None
    return {"plan": plan.code, "line_id": line.id, "site": site.code if site else line.site_id,
            "parameters": task_parameters(line), "frequency": line.frequency,
            "day_in_period": line.day_in_period, "sampler": sampler.username if sampler else None}


def task_snapshot(task: SamplingTask, site_code: str, sampler: str | None, plan_code: str | None) -> dict[str, Any]:
    return {"code": task.code, "plan": plan_code, "site": site_code, "scheduled_on": task.scheduled_on,
            "sampler": sampler, "status": task.status, "parameters": task_parameters(task),
            "field_blanks": task.field_blanks, "field_duplicates": task.field_duplicates,
            "cancel_reason": task.cancel_reason}


def _qc(task: SamplingTask) -> dict[str, int]:
    return {"field_blanks": task.field_blanks, "field_duplicates": task.field_duplicates}


# ---------------------------------------------------------------- field QC per field batch


@dataclass(frozen=True)
class QcChange:
    task: SamplingTask
    before: FieldQc


def _spread_field_qc(session: Session, batches: Iterable[tuple[int | None, date]]) -> list[QcChange]:
    """Give each field batch (a sampler's tasks of one day) its field QC: the blank and the
    duplicates the batch needs, less what its dispatched tasks already carry (their QC samples
    are registered), spread over its tasks not yet dispatched in the order they were created.
    One query for any number of batches; the tasks are locked."""
    wanted = {(s, d) for s, d in batches if s is not None}
    if not wanted:
        return []
    samplers = sorted({s for s, _ in wanted})
    days = [d for _, d in wanted]
    if session.get_bind().dialect.name == "postgresql":
        # a task moving into a batch is not among the rows a concurrent act locks: serialise the
        # spreading per sampler (in id order, so two acts never wait on each other in a cycle)
        for sampler_id in samplers:
            session.execute(select(func.pg_advisory_xact_lock(PG_FIELD_QC_LOCK_KEY, sampler_id)))
    rows = session.scalars(
        select(SamplingTask)
        .where(SamplingTask.sampler_id.in_(samplers), SamplingTask.scheduled_on.between(min(days), max(days)),
               SamplingTask.status != TaskStatus.CANCELLED.value)
        .order_by(SamplingTask.id).with_for_update()
    ).all()
    grouped: dict[tuple[int, date], list[SamplingTask]] = {}
    for task in rows:
        key = (task.sampler_id, task.scheduled_on)
        if key in wanted:
            grouped.setdefault(key, []).append(task)
    changes = []
    for batch in grouped.values():
        need = field_qc_for_batch(len(batch))
        fixed = [t for t in batch if t.status in QC_FIXED_STATUSES]
        blanks = max(0, need.blanks - sum(t.field_blanks for t in fixed))
        duplicates = max(0, need.duplicates - sum(t.field_duplicates for t in fixed))
        # each task yields one routine sample, so it carries at most one duplicate of it
        for i, task in enumerate(t for t in batch if t.status == TaskStatus.SCHEDULED.value):
            after = FieldQc(blanks=1 if i < blanks else 0, duplicates=1 if i < duplicates else 0)
            before = FieldQc(task.field_blanks, task.field_duplicates)
            if after != before:
                task.field_blanks, task.field_duplicates = after.blanks, after.duplicates
                changes.append(QcChange(task, before))
    session.flush()
    return changes


def _audit_qc_changes(session: Session, actor: Any, changes: Sequence[QcChange], cause: str,
                      skip: Iterable[int] = ()) -> None:
    skipped = set(skip)
    for change in changes:
        if change.task.id in skipped:
            continue
        audit.append(session, actor, "task.field_qc_changed", "sampling_task", change.task.id,
                     {"field_blanks": change.before.blanks, "field_duplicates": change.before.duplicates},
                     {"code": change.task.code, **_qc(change.task), "cause": cause})


def recompute_field_qc(session: Session, sampler_id: int | None, day: date, actor: Any = None) -> list[SamplingTask]:
    """Re-spread the field QC of one field batch after a task joined or left it (reassigned,
    cancelled, scheduled); only tasks not yet dispatched change. Returns the changed tasks."""
    changes = _spread_field_qc(session, [(sampler_id, day)])
    _audit_qc_changes(session, actor, changes, "recomputed")
    return [c.task for c in changes]


# ---------------------------------------------------------------- plans


def create_plan(session: Session, actor: User, *, title: str, period_start: date, period_end: date,
                note: str = "") -> MonitoringPlan:
    """A draft plan for a period of at most two years."""
    ensure(session, actor, Permission.SITES_MANAGE)
    cleaned = (title or "").strip()
    if not cleaned:
        raise errors.TitleRequired()
    _check_period(period_start, period_end)
    now = utcnow()
    plan = MonitoringPlan(code=next_code(session, PLAN_PREFIX, now), title=cleaned[:200], period_start=period_start,
                          period_end=period_end, note=(note or "").strip()[:1000], created_by_id=actor.id,
                          created_at=now)
    session.add(plan)
    session.flush()
    audit.append(session, actor, "plan.created", "monitoring_plan", plan.id, None, plan_snapshot(plan))
    return plan


def add_plan_line(session: Session, actor: User, plan: MonitoringPlan, *, site: Site,
                  parameters: Iterable[str], frequency: Frequency | str, day_in_period: int,
                  sampler: User | int | None) -> PlanLine:
    """Sample `site` for `parameters` (blank: all it monitors at `frequency`) on `day_in_period`
    of each period, by `sampler`. Only while the plan is a draft; a parameter of a site appears
    in one line of a plan only."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _lock(session, plan)
    _require_draft(plan)
    freq = _frequency(frequency)
    day = _day_in_period(freq, day_in_period)
    version = assert_site_usable(session, site, utcnow())
    person = _sampler(session, sampler)
    names = _plan_parameters(session, site, version, parameters, freq)
    planned = session.scalars(select(PlanLine.parameters).where(PlanLine.plan_id == plan.id,
                                                                  PlanLine.site_id == site.id)).all()
    taken = {p.casefold() for text in planned for p in json.loads(text)}
    again = [p for p in names if p.casefold() in taken]
    if again:
        raise errors.ParameterAlreadyPlanned(site=site.code, parameters="、".join(again))
    line = PlanLine(plan_id=plan.id, site_id=site.id, parameters=canonical_json(names), frequency=freq.value,
                    day_in_period=day, sampler_id=person.id)
    session.add(line)
    session.flush()
    snapshot = line_snapshot(session, line, plan)
    snapshot["dates"] = len(occurrences(plan.period_start, plan.period_end, freq, day))
    audit.append(session, actor, "plan.line_added", "plan_line", line.id, None, snapshot)
    return line


def remove_plan_line(session: Session, actor: User, plan: MonitoringPlan, line: PlanLine) -> None:
    """Only while the plan is a draft (nothing has been generated from it)."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _lock(session, plan)
    _require_draft(plan)
    if line.plan_id != plan.id:
        raise errors.PlanLineNotFound(plan=plan.code)
    before = line_snapshot(session, line, plan)
    session.delete(line)
    session.flush()
    audit.append(session, actor, "plan.line_removed", "plan_line", before["line_id"], before, None)


@dataclass
class _Visit:
    site: Site
    day: date
    parameters: list[str]
    sampler_id: int


def approve_plan(session: Session, actor: User, plan: MonitoringPlan) -> list[SamplingTask]:
    """Approve a draft plan and generate its tasks: each line's dates, lines of one site on one
    date merged into one task, field QC spread over each sampler's day. Sites, samplers and
    parameters are checked again now: the site may have changed since the line was written."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _lock(session, plan)
    _require_draft(plan)
    lines = session.scalars(select(PlanLine).where(PlanLine.plan_id == plan.id).order_by(PlanLine.id)).all()
    if not lines:
        raise errors.PlanHasNoLines(plan=plan.code)
    now = utcnow()
    sites = {s.id: s for s in session.scalars(select(Site).where(Site.id.in_({ln.site_id for ln in lines})))}
    versions = {site_id: assert_site_usable(session, site, now) for site_id, site in sites.items()}
    samplers = {ln.sampler_id: _sampler(session, ln.sampler_id) for ln in lines}
    visits: dict[tuple[int, date], _Visit] = {}
    for line in lines:
        site = sites[line.site_id]
        names = _plan_parameters(session, site, versions[site.id], task_parameters(line), None)
        for day in occurrences(plan.period_start, plan.period_end, line.frequency, line.day_in_period):
            visit = visits.setdefault((site.id, day), _Visit(site, day, [], line.sampler_id))
            visit.parameters = clean_parameters([*visit.parameters, *names])
    if not visits:
        raise errors.PlanGeneratesNoTasks(plan=plan.code)
    ordered = sorted(visits.values(), key=lambda v: (v.day, v.site.code))
    codes = reserve_codes(session, TASK_PREFIX, now, len(ordered))
    tasks = [SamplingTask(code=code, plan_id=plan.id, site_id=v.site.id, scheduled_on=v.day, sampler_id=v.sampler_id,
                          status=TaskStatus.SCHEDULED.value, parameters=canonical_json(v.parameters),
                          created_at=now, created_by_id=actor.id)
             for code, v in zip(codes, ordered, strict=True)]
    session.add_all(tasks)
    session.flush()
    before = plan_snapshot(plan)
    plan.status = PlanStatus.APPROVED.value
    plan.approved_by_id, plan.approved_at = actor.id, now
    changes = _spread_field_qc(session, {(t.sampler_id, t.scheduled_on) for t in tasks})
    new_ids = {t.id for t in tasks}
    _audit_qc_changes(session, actor, changes, f"plan {plan.code} approved", skip=new_ids)
    for task in tasks:
        audit.append(session, actor, "task.scheduled", "sampling_task", task.id, None,
                     task_snapshot(task, sites[task.site_id].code, samplers[task.sampler_id].username, plan.code))
    audit.append(session, actor, "plan.approved", "monitoring_plan", plan.id, before, {
        **plan_snapshot(plan), "tasks": len(tasks), "first_day": ordered[0].day, "last_day": ordered[-1].day,
        "field_blanks": sum(t.field_blanks for t in tasks), "field_duplicates": sum(t.field_duplicates for t in tasks)})
    session.flush()
    return tasks


def mark_plan_active(session: Session, plan: MonitoringPlan, actor: Any = None) -> bool:
    """An approved plan becomes active when its first task is dispatched; True if it changed."""
    if plan.status != PlanStatus.APPROVED.value:
        return False
    plan.status = PlanStatus.ACTIVE.value
    session.add(plan)
    audit.append(session, actor, "plan.activated", "monitoring_plan", plan.id,
                 {"status": PlanStatus.APPROVED.value}, {"code": plan.code, "status": plan.status})
    return True


def close_plan(session: Session, actor: User, plan: MonitoringPlan, reason: str = "") -> MonitoringPlan:
    """Close a plan. Its tasks not yet dispatched are cancelled with `reason` (required then);
    tasks dispatched or in the field must be completed or cancelled first."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _lock(session, plan)
    if plan.status == PlanStatus.CLOSED.value:
        raise errors.PlanClosed(plan=plan.code)
    open_tasks = session.scalars(
        select(SamplingTask).where(SamplingTask.plan_id == plan.id, SamplingTask.status.in_(
            (TaskStatus.SCHEDULED.value, TaskStatus.DISPATCHED.value, TaskStatus.IN_FIELD.value)))
        .order_by(SamplingTask.id).with_for_update()).all()
    busy = [t.code for t in open_tasks if t.status != TaskStatus.SCHEDULED.value]
    if busy:
        raise errors.TasksInProgress(plan=plan.code, tasks="、".join(busy[:10]) + ("…" if len(busy) > 10 else ""))
    cleaned = _reason(reason) if open_tasks else (reason or "").strip()[:500]
    before = plan_snapshot(plan)
    for task in open_tasks:
        task_before = {"status": task.status, **_qc(task)}
        task.status, task.cancel_reason = TaskStatus.CANCELLED.value, cleaned
        task.field_blanks = task.field_duplicates = 0
        audit.append(session, actor, "task.cancelled", "sampling_task", task.id, task_before,
                     {"code": task.code, "status": task.status, "cancel_reason": cleaned, "samples": [],
                      "cause": f"plan {plan.code} closed"})
    session.flush()
    changes = _spread_field_qc(session, {(t.sampler_id, t.scheduled_on) for t in open_tasks})
    _audit_qc_changes(session, actor, changes, f"plan {plan.code} closed")
    plan.status, plan.closed_at = PlanStatus.CLOSED.value, utcnow()
    audit.append(session, actor, "plan.closed", "monitoring_plan", plan.id, before,
                 {**plan_snapshot(plan), "reason": cleaned, "cancelled_tasks": [t.code for t in open_tasks]})
    session.flush()
    return plan


# ---------------------------------------------------------------- tasks


def schedule_task(session: Session, actor: User, *, site: Site, scheduled_on: date, sampler: User | int | None,
                  parameters: Iterable[str]) -> SamplingTask:
    """An extra task outside any plan (blank parameters: everything the site monitors), from today
    on; it joins the sampler's field batch of that day."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _check_day(scheduled_on)
    today = lab_calendar(session).today()
    if scheduled_on < today:
        raise errors.DayInPast(day=scheduled_on.isoformat())
    if scheduled_on >= period_limit(today):
        raise errors.ImplausibleDay(day=scheduled_on.isoformat(), earliest=today.isoformat(),
                                    latest=(period_limit(today) - timedelta(days=1)).isoformat())
    now = utcnow()
    version = assert_site_usable(session, site, now)
    person = _sampler(session, sampler)
    names = _plan_parameters(session, site, version, parameters, None)
    task = SamplingTask(code=next_code(session, TASK_PREFIX, now), plan_id=None, site_id=site.id,
                        scheduled_on=scheduled_on, sampler_id=person.id, status=TaskStatus.SCHEDULED.value,
                        parameters=canonical_json(names), created_at=now, created_by_id=actor.id)
    session.add(task)
    session.flush()
    changes = _spread_field_qc(session, [(person.id, scheduled_on)])
    _audit_qc_changes(session, actor, changes, f"task {task.code} scheduled", skip=[task.id])
    audit.append(session, actor, "task.scheduled", "sampling_task", task.id, None,
                 task_snapshot(task, site.code, person.username, None))
    return task


def _status_names(task: SamplingTask) -> dict[str, str]:
    names = _names(TASK_STATUS_NAMES, TaskStatus(task.status))
    return {"status_zh": names["zh"], "status_en": names["en"]}


def cancel_task(session: Session, actor: User, task: SamplingTask, reason: str) -> SamplingTask:
    """Cancel a task before sampling, with a reason. A dispatched task's registered samples become
    `cancelled`; their containers stay on record. The field batch's QC is spread again."""
    ensure(session, actor, Permission.SITES_MANAGE)
    cleaned = _reason(reason)
    _lock(session, task)
    if task.status not in (TaskStatus.SCHEDULED.value, TaskStatus.DISPATCHED.value):
        raise errors.TaskNotCancellable(task=task.code, **_status_names(task))
    samples = session.scalars(select(Sample).where(Sample.task_id == task.id).order_by(Sample.id)
                              .with_for_update()).all()
    if any(s.state not in (SampleState.REGISTERED.value, SampleState.CANCELLED.value) for s in samples):
        raise errors.TaskNotCancellable(task=task.code, status_zh="开始采样", status_en="being sampled")
    before = {"status": task.status, **_qc(task)}
    for sample in samples:
        sample.state = SampleState.CANCELLED.value
    task.status, task.cancel_reason = TaskStatus.CANCELLED.value, cleaned
    task.field_blanks = task.field_duplicates = 0
    session.flush()
    changes = _spread_field_qc(session, [(task.sampler_id, task.scheduled_on)])
    _audit_qc_changes(session, actor, changes, f"task {task.code} cancelled")
    audit.append(session, actor, "task.cancelled", "sampling_task", task.id, before,
                 {"code": task.code, "status": task.status, "cancel_reason": cleaned,
                  "samples": [s.sample_no for s in samples]})
    return task


def reassign_task(session: Session, actor: User, task: SamplingTask, sampler: User | int | None) -> SamplingTask:
    """Give a task not yet dispatched to another sampler; both field batches get their QC again."""
    ensure(session, actor, Permission.SITES_MANAGE)
    _lock(session, task)
    if task.status != TaskStatus.SCHEDULED.value:
        raise errors.TaskNotReassignable(task=task.code, **_status_names(task))
    person = _sampler(session, sampler)
    if person.id == task.sampler_id:
        raise errors.SameSampler(task=task.code, name=person.printed_name)
    previous = session.get(User, task.sampler_id) if task.sampler_id else None
    before = {"sampler": previous.username if previous else None, **_qc(task)}
    old_batch = (task.sampler_id, task.scheduled_on)
    task.sampler_id = person.id
    task.field_blanks = task.field_duplicates = 0
    session.flush()
    changes = _spread_field_qc(session, [old_batch, (person.id, task.scheduled_on)])
    _audit_qc_changes(session, actor, changes, f"task {task.code} reassigned", skip=[task.id])
    audit.append(session, actor, "task.reassigned", "sampling_task", task.id, before,
                 {"code": task.code, "sampler": person.username, **_qc(task)})
    return task


# ---------------------------------------------------------------- read models for the pages


def samplers_now(session: Session) -> list[User]:
    """Active users holding the sampler role now (one query), for the forms' choices."""
    now = utcnow()
    granted = (select(RoleGrant.user_id).where(
        RoleGrant.role == Role.SAMPLER.value, RoleGrant.status == "active", RoleGrant.valid_from <= now,
        (RoleGrant.valid_to.is_(None)) | (RoleGrant.valid_to > now)))
    return list(session.scalars(select(User).where(User.active, User.id.in_(granted)).order_by(User.username)))


@dataclass(frozen=True)
class SiteChoice:
    code: str
    name_zh: str
    name_en: str


def plannable_sites(session: Session) -> list[SiteChoice]:
    """Active sites with their current names (one query), for the forms' choices."""
    rows = session.execute(
        select(Site.code, SiteVersion.name_zh, SiteVersion.name_en)
        .join(SiteVersion, SiteVersion.id == Site.current_version_id)
        .where(Site.status == "active").order_by(Site.code)).all()
    return [SiteChoice(*row) for row in rows]


@dataclass(frozen=True)
class PlanRow:
    plan: MonitoringPlan
    lines: int
    tasks: int
    done: int


def search_plans(session: Session, *, q: str = "", status: str = "", page: int = 1, size: int = 50) -> Page[PlanRow]:
    """Plans newest first, each with its line and task counts: two queries."""
    where = []
    text = (q or "").strip().lower()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(func.lower(MonitoringPlan.code).like(pattern, escape="\\")
                     | func.lower(MonitoringPlan.title).like(pattern, escape="\\"))
    if status:
        where.append(MonitoringPlan.status == status)
    lines = select(func.count()).where(PlanLine.plan_id == MonitoringPlan.id).correlate(MonitoringPlan)
    tasks = select(func.count()).where(SamplingTask.plan_id == MonitoringPlan.id).correlate(MonitoringPlan)
    done = tasks.where(SamplingTask.status == TaskStatus.COMPLETED.value)
    total = session.scalar(select(func.count()).select_from(MonitoringPlan).where(*where)) or 0
    page = max(1, page)
    rows = session.execute(
        select(MonitoringPlan, lines.scalar_subquery(), tasks.scalar_subquery(), done.scalar_subquery())
        .where(*where).order_by(MonitoringPlan.period_start.desc(), MonitoringPlan.id.desc())
        .limit(size).offset((page - 1) * size)).all()
    return Page([PlanRow(*row) for row in rows], page, size, total)


@dataclass(frozen=True)
class LineRow:
    line: PlanLine
    site_code: str
    site_name_zh: str
    site_name_en: str
    sampler: User | None
    dates: int

    @property
    def parameters(self) -> list[str]:
        return task_parameters(self.line)


@dataclass
class PlanView:
    plan: MonitoringPlan
    lines: list[LineRow]
    task_counts: dict[str, int]
    created_by: User | None
    approved_by: User | None

    @property
    def task_total(self) -> int:
        return sum(self.task_counts.values())

    @property
    def planned_dates(self) -> int:
        return sum(row.dates for row in self.lines)


def plan_view(session: Session, plan: MonitoringPlan) -> PlanView:
    """The plan page: lines with their site and sampler, task counts per status, who drafted and
    approved it; three queries however many lines and tasks."""
    sampler = aliased(User)
    rows = session.execute(
        select(PlanLine, Site.code, SiteVersion.name_zh, SiteVersion.name_en, sampler)
        .join(Site, Site.id == PlanLine.site_id)
        .outerjoin(SiteVersion, SiteVersion.id == Site.current_version_id)
        .outerjoin(sampler, sampler.id == PlanLine.sampler_id)
        .where(PlanLine.plan_id == plan.id).order_by(Site.code, PlanLine.id)).all()
    lines = [LineRow(line, code, zh or "", en or "", person,
                     len(occurrences(plan.period_start, plan.period_end, line.frequency, line.day_in_period)))
             for line, code, zh, en, person in rows]
    counts = dict(session.execute(
        select(SamplingTask.status, func.count()).where(SamplingTask.plan_id == plan.id)
        .group_by(SamplingTask.status)).all())
    people = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_({plan.created_by_id, plan.approved_by_id or plan.created_by_id})))}
    return PlanView(plan, lines, {s.value: counts.get(s.value, 0) for s in TaskStatus},
                    people.get(plan.created_by_id), people.get(plan.approved_by_id))


@dataclass(frozen=True)
class TaskRow:
    task: SamplingTask
    site_code: str
    site_name_zh: str
    site_name_en: str
    sampler: User | None
    plan_code: str | None

    @property
    def parameters(self) -> list[str]:
        return task_parameters(self.task)


@dataclass(frozen=True)
class TaskFilters:
    date_from: date | None = None
    date_to: date | None = None
    sampler_id: int | None = None
    site: str = ""
    status: str = ""
    plan: str = ""


def search_tasks(session: Session, filters: TaskFilters, *, page: int = 1, size: int = 50) -> Page[TaskRow]:
    """The task worklist by day, then site: two queries (count and page, joined to the site's
    current name, the sampler and the plan)."""
    sampler = aliased(User)
    where: list[Any] = []
    if filters.date_from:
        where.append(SamplingTask.scheduled_on >= filters.date_from)
    if filters.date_to:
        where.append(SamplingTask.scheduled_on <= filters.date_to)
    if filters.sampler_id:
        where.append(SamplingTask.sampler_id == filters.sampler_id)
    if filters.status:
        where.append(SamplingTask.status == filters.status)
    if filters.site:
        where.append(Site.code == filters.site.strip().upper())
    if filters.plan:
        where.append(MonitoringPlan.code == filters.plan.strip().upper())
    base = (select(SamplingTask.id).join(Site, Site.id == SamplingTask.site_id)
            .outerjoin(MonitoringPlan, MonitoringPlan.id == SamplingTask.plan_id).where(*where))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        select(SamplingTask, Site.code, SiteVersion.name_zh, SiteVersion.name_en, sampler, MonitoringPlan.code)
        .join(Site, Site.id == SamplingTask.site_id)
        .outerjoin(SiteVersion, SiteVersion.id == Site.current_version_id)
        .outerjoin(sampler, sampler.id == SamplingTask.sampler_id)
        .outerjoin(MonitoringPlan, MonitoringPlan.id == SamplingTask.plan_id)
        .where(*where).order_by(SamplingTask.scheduled_on, Site.code, SamplingTask.id)
        .limit(size).offset((page - 1) * size)).all()
    return Page([TaskRow(task, code, zh or "", en or "", person, plan_code)
                 for task, code, zh, en, person, plan_code in rows], page, size, total)


def count_tasks_due(session: Session, days: int = 7) -> int:
    """Tasks in the next `days` days (today included) not yet dispatched: the dashboard card."""
    today = lab_calendar(session).today()
    return session.scalar(select(func.count()).select_from(SamplingTask).where(
        SamplingTask.scheduled_on >= today, SamplingTask.scheduled_on < today + timedelta(days=days),
        SamplingTask.status == TaskStatus.SCHEDULED.value)) or 0


@dataclass(frozen=True)
class SampleLine:
    sample: Sample
    containers: list[Container]


@dataclass
class TaskView:
    task: SamplingTask
    site: Site
    version: SiteVersion | None
    sampler: User | None
    plan: MonitoringPlan | None
    rules: dict[str, PreservationRule]
    containers: list[ContainerNeed]
    field_tests: list[PreservationRule]
    samples: list[SampleLine]

    @property
    def parameters(self) -> list[str]:
        return task_parameters(self.task)

    @property
    def samples_to_register(self) -> int:
        """The routine sample and the field QC samples this task carries."""
        return 1 + self.task.field_blanks + self.task.field_duplicates

    @property
    def containers_to_issue(self) -> int:
        return len(self.containers) * self.samples_to_register


def task_view(session: Session, task: SamplingTask) -> TaskView:
    """The task page: site and version in force, sampler, plan, containers per preservation group,
    field tests, and once dispatched its samples with their containers; a fixed number of queries."""
    site = session.get(Site, task.site_id)
    version = session.get(SiteVersion, site.current_version_id) if site.current_version_id else None
    people = {u.id: u for u in session.scalars(select(User).where(User.id == task.sampler_id))} \
        if task.sampler_id else {}
    plan = session.get(MonitoringPlan, task.plan_id) if task.plan_id else None
    try:
        rules = rules_for(session, task_parameters(task))
        needs = containers_for(rules.values())
    except (UnknownParameter, ConflictingContainers):  # the table changed since: show the task anyway
        rules, needs = {}, []
    samples = session.scalars(select(Sample).where(Sample.task_id == task.id).order_by(Sample.sample_no)).all()
    by_sample: dict[int, list[Container]] = {s.id: [] for s in samples}
    if samples:
        for container in session.scalars(select(Container).where(Container.sample_id.in_(by_sample))
                                         .order_by(Container.sample_id, Container.position)):
            by_sample[container.sample_id].append(container)
    return TaskView(task, site, version, people.get(task.sampler_id), plan, rules, needs,
                    field_tests_of(rules.values()),
                    [SampleLine(s, by_sample[s.id]) for s in samples])
