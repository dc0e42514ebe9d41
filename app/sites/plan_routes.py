"""Pages of monitoring plans and sampling tasks: the plan list, drafting a plan, the plan page
(lines added and removed while draft, approval, closing, task counts per status), the task
worklist (by day, sampler, site, status, plan), scheduling an extra task, and the task page
(site and position, containers per preservation group, field tests, field QC, the samples and
container barcodes once dispatched; dispatch, cancel, reassign).

Routes are thin: parse the form, call one service inside `committing(session)`; a refusal the
form can fix renders the same page with the message and what was typed (nothing saved); on
success, see other. Dispatching calls app.samples.registration.dispatch_task, imported inside
the route so this module loads whatever the samples domain has built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.errors import DomainError, NotAuthenticated, PermissionDenied
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User
from app.samples.names import KIND_NAMES, QC_READERS, STATE_NAMES
from app.sites import plan_errors as errors
from app.sites import plans
from app.sites.errors import SiteNotFound
from app.sites.models import Frequency, PlanStatus, TaskStatus
from app.sites.service import site_by_code

router = APIRouter()

PlanCode = Annotated[str, Path(max_length=40)]
TaskCode = Annotated[str, Path(max_length=40)]
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Short = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=1000)]
Small = Annotated[str, Form(max_length=40)]
PLAN_STATUSES = "|".join(s.value for s in PlanStatus)
TASK_STATUSES = "|".join(s.value for s in TaskStatus)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WHOLE_RE = re.compile(r"^\d{1,9}$")
DUE_WINDOW_DAYS = 7
# who may see which samples of a task are field QC: those who plan, register, take or judge them;
# analysts stay blind (DOMAIN.md §3: QC samples are coded like the others)
LABELS = {
    "period_start": ("计划开始日期", "The start of the period"),
    "period_end": ("计划结束日期", "The end of the period"),
    "scheduled_on": ("采样日期", "The sampling day"),
    "date_from": ("起始日期", "The first day"),
    "date_to": ("截止日期", "The last day"),
}
# the form field a refusal is about, marked in the re-rendered form
ERROR_FIELDS = {
    "plan_title_required": "title", "bad_plan_period": "period_end", "plan_period_too_long": "period_end",
    "implausible_day": "period_start", "bad_date": "", "site_not_found": "site", "site_not_active": "site",
    "site_not_yet_active": "site", "parameter_not_monitored": "parameters", "unknown_parameter": "parameters",
    "parameter_already_planned": "parameters", "no_parameters": "parameters", "not_a_sampler": "sampler_id",
    "sampler_required": "sampler_id", "bad_frequency": "frequency", "bad_day_in_period": "day_in_period",
    "task_day_in_past": "scheduled_on", "reason_required": "reason", "same_sampler": "sampler_id",
}


# ---------------------------------------------------------------- parsing at the edge


def parse_day(text: str, field: str, *, blank: date | None = None) -> date | None:
    value = (text or "").strip()
    if not value:
        if blank is None:
            zh, en = LABELS[field]
            raise errors.BadDate(label_zh=zh, label_en=en, value="—")
        return blank
    try:
        if not DATE_RE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        zh, en = LABELS[field]
        raise errors.BadDate(label_zh=zh, label_en=en, value=value[:20]) from None


def parse_person(text: str) -> int | None:
    value = (text or "").strip()
    if not value:
        return None
    if not WHOLE_RE.match(value):
        raise errors.NotASampler(name=value[:20])
    return int(value)


def parse_day_in_period(text: str, frequency: str) -> int:
    value = (text or "").strip()
    if not WHOLE_RE.match(value):
        try:
            most = plans.MAX_DAY_IN_PERIOD[Frequency(frequency)]
            name = plans.FREQUENCY_NAMES[Frequency(frequency)][1]
        except ValueError:
            raise errors.BadFrequency(frequency=frequency[:20]) from None
        raise errors.BadDayInPeriod(day=value[:10] or "—", most=most, frequency=name)
    return int(value)


def find_site(session: Session, code: str):
    if not (code or "").strip():
        raise SiteNotFound(site_code="—")
    return site_by_code(session, code)


def shown_in_page(error: DomainError) -> bool:
    """Input the form can fix is shown beside it, with the values entered (a mistyped site code
    too); who-may refusals and unknown plans or tasks get the error page."""
    if isinstance(error, SiteNotFound):
        return True
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (409, 422)




def refusal(error: DomainError | None, action: str = "") -> dict[str, Any]:
    if error is None:
        return {}
    return {"refused": True, "code": error.code, "detail": error.message(current_language()),
            "error_field": ERROR_FIELDS.get(error.code, ""), "action": action}


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         action: str = "", block: str | None = None) -> Response:
    return render(request, template, {**context, **refusal(error, action)}, block=block,
                  status_code=error.http_status if error else 200)


def next_quarter(today: date) -> tuple[date, date]:
    """The calendar quarter after today's: what a plan is usually drafted for."""
    index = today.year * 12 + (today.month - 1) // 3 * 3 + 3
    start = date(index // 12, index % 12 + 1, 1)
    index += 3
    return start, date(index // 12, index % 12 + 1, 1) - timedelta(days=1)




def _choices(session: Session) -> dict[str, Any]:
    return {"samplers": plans.samplers_now(session), "sites": plans.plannable_sites(session),
            "frequencies": list(Frequency)}


# ---------------------------------------------------------------- plans


@router.get("/plans", include_in_schema=False)
def plan_list(request: Request, session: DbSession, q: Annotated[str, Query(max_length=100)] = "",
              status: Annotated[str, Query(pattern=f"^({PLAN_STATUSES})?$")] = "", page: PageNo = 1,
              user: User = require(Permission.SITES_READ)):
    size = request.app.state.settings.page_size
    result = plans.search_plans(session, q=q, status=status, page=page, size=size)
    params = {"q": q.strip(), "status": status}
    return render(request, "plans/list.html", {
        "page": result, "filters": params, "pager_base": pager_base("/plans", params),
        "statuses": list(PlanStatus),
    }, block="results")


@dataclass
class PlanForm:
    title: str = ""
    period_start: str = ""
    period_end: str = ""
    note: str = ""


def _new_plan_page(request: Request, form: PlanForm, error: DomainError | None = None) -> Response:
    return show(request, "plans/new.html", {"form": form}, error=error)


@router.get("/plans/new", include_in_schema=False)
def new_plan(request: Request, session: DbSession, user: User = require(Permission.SITES_MANAGE)):
    start, end = next_quarter(lab_calendar(session).today())
    return _new_plan_page(request, PlanForm(period_start=start.isoformat(), period_end=end.isoformat()))


@router.post("/plans", include_in_schema=False)
def create_plan(request: Request, session: DbSession, title: Short = "", period_start: Small = "",
                period_end: Small = "", note: Text = "", user: User = require(Permission.SITES_MANAGE)):
    form = PlanForm(title, period_start, period_end, note)
    plan, error = attempt(session, shown=shown_in_page, act=lambda: plans.create_plan(
        session, user, title=title, period_start=parse_day(period_start, "period_start"),
        period_end=parse_day(period_end, "period_end"), note=note))
    if error:
        return _new_plan_page(request, form, error)
    return see_other(request, f"/plans/{plan.code}")


@dataclass
class LineForm:
    site: str = ""
    parameters: str = ""
    frequency: str = Frequency.MONTHLY.value
    day_in_period: str = "10"
    sampler_id: str = ""


def _plan_page(request: Request, session: Session, code: str, *, error: DomainError | None = None,
               action: str = "", line_form: LineForm | None = None, reason: str = "") -> Response:
    plan = plans.plan_by_code(session, code)
    view = plans.plan_view(session, plan)
    editable = plan.status == PlanStatus.DRAFT.value and Permission.SITES_MANAGE in request.state.permissions
    context = {"view": view, "plan": plan, "editable": editable, "line_form": line_form or LineForm(),
               "reason": reason, "task_statuses": list(TaskStatus), **(_choices(session) if editable else {})}
    return show(request, "plans/detail.html", context, error=error, action=action)


@router.get("/plans/{plan_code}", include_in_schema=False)
def plan_page(request: Request, session: DbSession, plan_code: PlanCode,
              user: User = require(Permission.SITES_READ)):
    return _plan_page(request, session, plan_code)


@router.post("/plans/{plan_code}/lines", include_in_schema=False)
def add_plan_line(request: Request, session: DbSession, plan_code: PlanCode, site: Small = "",
                  parameters: Short = "", frequency: Small = Frequency.MONTHLY.value, day_in_period: Small = "",
                  sampler_id: Small = "", user: User = require(Permission.SITES_MANAGE)):
    plan = plans.plan_by_code(session, plan_code)
    form = LineForm(site, parameters, frequency, day_in_period, sampler_id)
    _, error = attempt(session, shown=shown_in_page, act=lambda: plans.add_plan_line(
        session, user, plan, site=find_site(session, site), parameters=plans.split_parameters(parameters),
        frequency=frequency, day_in_period=parse_day_in_period(day_in_period, frequency),
        sampler=parse_person(sampler_id)))
    if error:
        return _plan_page(request, session, plan_code, error=error, action="line", line_form=form)
    return see_other(request, f"/plans/{plan.code}#lines")


@router.post("/plans/{plan_code}/lines/{line_id}/remove", include_in_schema=False)
def remove_plan_line(request: Request, session: DbSession, plan_code: PlanCode, line_id: RowId,
                     user: User = require(Permission.SITES_MANAGE)):
    plan = plans.plan_by_code(session, plan_code)
    line = plans.plan_line(session, plan, line_id)
    _, error = attempt(session, shown=shown_in_page, act=lambda: plans.remove_plan_line(session, user, plan, line))
    if error:
        return _plan_page(request, session, plan_code, error=error, action="remove")
    return see_other(request, f"/plans/{plan.code}#lines")


@router.post("/plans/{plan_code}/approve", include_in_schema=False)
def approve_plan(request: Request, session: DbSession, plan_code: PlanCode,
                 user: User = require(Permission.SITES_MANAGE)):
    plan = plans.plan_by_code(session, plan_code)
    _, error = attempt(session, shown=shown_in_page, act=lambda: plans.approve_plan(session, user, plan))
    if error:
        return _plan_page(request, session, plan_code, error=error, action="approve")
    return see_other(request, f"/plans/{plan.code}")


@router.post("/plans/{plan_code}/close", include_in_schema=False)
def close_plan(request: Request, session: DbSession, plan_code: PlanCode,
               reason: Annotated[str, Form(max_length=500)] = "", user: User = require(Permission.SITES_MANAGE)):
    plan = plans.plan_by_code(session, plan_code)
    _, error = attempt(session, shown=shown_in_page, act=lambda: plans.close_plan(session, user, plan, reason))
    if error:
        return _plan_page(request, session, plan_code, error=error, action="close", reason=reason)
    return see_other(request, f"/plans/{plan.code}")


# ---------------------------------------------------------------- tasks


DayQuery = Annotated[str | None, Query(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]


@router.get("/tasks", include_in_schema=False)
def task_list(request: Request, session: DbSession, date_from: DayQuery = None, date_to: DayQuery = None,
              sampler: Annotated[str, Query(max_length=10, pattern=r"^\d{0,9}$")] = "",
              site: Annotated[str, Query(max_length=20, pattern=r"^[A-Za-z0-9-]{0,20}$")] = "",
              status: Annotated[str, Query(pattern=f"^({TASK_STATUSES})?$")] = "",
              plan: Annotated[str, Query(max_length=20, pattern=r"^([A-Za-z]{2}\d{2}-\d{5,9})?$")] = "",
              next_days: Annotated[int | None, Query(ge=1, le=366)] = None,
              page: PageNo = 1, user: User = require(Permission.SITES_READ)):
    """The worklist: from today by default (an empty `date_from` lists every day); `next_days`
    is the dashboard card's window (today and the days after it)."""
    today = lab_calendar(session).today()
    first = today if date_from is None else parse_day(date_from, "date_from", blank=date.min)
    last = parse_day(date_to or "", "date_to", blank=date.max)
    if next_days:
        first, last = today, today + timedelta(days=next_days - 1)
    filters = plans.TaskFilters(date_from=None if first == date.min else first,
                                date_to=None if last == date.max else last,
                                sampler_id=int(sampler) if sampler else None, site=site, status=status, plan=plan)
    result = plans.search_tasks(session, filters, page=page, size=request.app.state.settings.page_size)
    params = {"date_from": filters.date_from.isoformat() if filters.date_from else "",
              "date_to": filters.date_to.isoformat() if filters.date_to else "",
              "sampler": sampler, "site": site.strip().upper(), "status": status, "plan": plan.strip().upper()}
    return render(request, "tasks/list.html", {
        "page": result, "filters": params, "pager_base": pager_base("/tasks", params), "today": today,
        "statuses": list(TaskStatus), "samplers": plans.samplers_now(session),
    }, block="results")


@dataclass
class TaskForm:
    site: str = ""
    scheduled_on: str = ""
    sampler_id: str = ""
    parameters: str = ""


def _new_task_page(request: Request, session: Session, form: TaskForm, error: DomainError | None = None) -> Response:
    return show(request, "tasks/new.html", {"form": form, **_choices(session)}, error=error)


@router.get("/tasks/new", include_in_schema=False)
def new_task(request: Request, session: DbSession, site: Annotated[str, Query(max_length=20)] = "",
             user: User = require(Permission.SITES_MANAGE)):
    form = TaskForm(site=site.strip().upper(), scheduled_on=lab_calendar(session).today().isoformat())
    return _new_task_page(request, session, form)


@router.post("/tasks", include_in_schema=False)
def schedule_task(request: Request, session: DbSession, site: Small = "", scheduled_on: Small = "",
                  sampler_id: Small = "", parameters: Short = "", user: User = require(Permission.SITES_MANAGE)):
    form = TaskForm(site, scheduled_on, sampler_id, parameters)
    task, error = attempt(session, shown=shown_in_page, act=lambda: plans.schedule_task(
        session, user, site=find_site(session, site), scheduled_on=parse_day(scheduled_on, "scheduled_on"),
        sampler=parse_person(sampler_id), parameters=plans.split_parameters(parameters)))
    if error:
        return _new_task_page(request, session, form, error)
    return see_other(request, f"/tasks/{task.code}")


def _task_page(request: Request, session: Session, code: str, *, error: DomainError | None = None,
               action: str = "", reason: str = "") -> Response:
    task = plans.task_by_code(session, code)
    view = plans.task_view(session, task)
    manage = Permission.SITES_MANAGE in request.state.permissions
    reassignable = manage and task.status == TaskStatus.SCHEDULED.value
    return show(request, "tasks/detail.html", {
        "view": view, "task": task, "manage": manage, "reason": reason,
        "sees_qc": bool(QC_READERS & request.state.permissions),
        "kind_names": KIND_NAMES, "state_names": STATE_NAMES,
        "samplers": plans.samplers_now(session) if reassignable else [], "reassignable": reassignable,
        "cancellable": manage and task.status in (TaskStatus.SCHEDULED.value, TaskStatus.DISPATCHED.value),
        "dispatchable": Permission.SAMPLES_REGISTER in request.state.permissions
        and task.status == TaskStatus.SCHEDULED.value,
    }, error=error, action=action)


@router.get("/tasks/{task_code}", include_in_schema=False)
def task_page(request: Request, session: DbSession, task_code: TaskCode,
              user: User = require(Permission.SITES_READ)):
    return _task_page(request, session, task_code)


@router.post("/tasks/{task_code}/dispatch", include_in_schema=False)
def dispatch_task(request: Request, session: DbSession, task_code: TaskCode,
                  user: User = require(Permission.SAMPLES_REGISTER)):
    from app.samples.registration import dispatch_task as dispatch

    task = plans.task_by_code(session, task_code)
    _, error = attempt(session, shown=shown_in_page, act=lambda: dispatch(session, user, task))
    if error:
        return _task_page(request, session, task_code, error=error, action="dispatch")
    return see_other(request, f"/tasks/{task.code}#samples")


@router.post("/tasks/{task_code}/cancel", include_in_schema=False)
def cancel_task(request: Request, session: DbSession, task_code: TaskCode,
                reason: Annotated[str, Form(max_length=500)] = "", user: User = require(Permission.SITES_MANAGE)):
    task = plans.task_by_code(session, task_code)
    _, error = attempt(session, shown=shown_in_page, act=lambda: plans.cancel_task(session, user, task, reason))
    if error:
        return _task_page(request, session, task_code, error=error, action="cancel", reason=reason)
    return see_other(request, f"/tasks/{task.code}")


@router.post("/tasks/{task_code}/reassign", include_in_schema=False)
def reassign_task(request: Request, session: DbSession, task_code: TaskCode, sampler_id: Small = "",
                  user: User = require(Permission.SITES_MANAGE)):
    task = plans.task_by_code(session, task_code)
    _, error = attempt(session, shown=shown_in_page,
                       act=lambda: plans.reassign_task(session, user, task, parse_person(sampler_id)))
    if error:
        return _task_page(request, session, task_code, error=error, action="reassign")
    return see_other(request, f"/tasks/{task.code}")


# ---------------------------------------------------------------- shell contributions


def _tasks_due(session: Session, user: User) -> int:
    return plans.count_tasks_due(session, DUE_WINDOW_DAYS)


def _scan_plan_or_task(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A task or plan code (TK26-00042, PL26-00003) typed or scanned opens its page."""
    wanted = code.strip().upper()
    if Permission.SITES_READ not in permissions or not plans.CODE_RE.match(wanted):
        return None
    try:
        found = plans.task_by_code(session, wanted) if wanted.startswith("TK") else plans.plan_by_code(session, wanted)
    except DomainError:
        return None
    return ScanHit(f"/{'tasks' if wanted.startswith('TK') else 'plans'}/{found.code}", found.code)


add_nav(NavItem("plans", N_("Plans & tasks"), "/tasks", Permission.SITES_READ, 42))
add_worklist(Worklist("tasks_due", N_("Tasks in the next 7 days not yet dispatched"), Permission.SITES_MANAGE,
                      f"/tasks?status=scheduled&next_days={DUE_WINDOW_DAYS}", _tasks_due, 42))
add_scan_resolver("plan_or_task_code", _scan_plan_or_task)
