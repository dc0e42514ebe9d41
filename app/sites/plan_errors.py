"""Refusals of monitoring plans and sampling tasks, each with its code and both languages.

Site refusals (unknown site, a site not active) belong to the sites service; these are the plan's
and the task's own rules."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class PlanNotFound(NotFound):
    code = "plan_not_found"
    message_zh = "找不到监测计划 {plan}。"
    message_en = "No monitoring plan {plan}."


class PlanLineNotFound(NotFound):
    code = "plan_line_not_found"
    message_zh = "计划 {plan} 中没有这一行。"
    message_en = "Plan {plan} has no such line."


class TaskNotFound(NotFound):
    code = "task_not_found"
    message_zh = "找不到采样任务 {task}。"
    message_en = "No sampling task {task}."


class TitleRequired(InvalidInput):
    code = "plan_title_required"
    message_zh = "请填写计划名称。"
    message_en = "Give the plan a title."


class BadPeriod(InvalidInput):
    code = "bad_plan_period"
    message_zh = "计划期的结束日期（{end}）不能早于开始日期（{start}）。"
    message_en = "The plan period ends ({end}) before it starts ({start})."


class PeriodTooLong(InvalidInput):
    code = "plan_period_too_long"
    message_zh = "计划期最长两年：{start} 至 {end} 超出了。"
    message_en = "A plan covers at most two years: {start} to {end} is longer."


class ImplausibleDay(InvalidInput):
    code = "implausible_day"
    message_zh = "日期 {day} 不在合理范围内（{earliest} 至 {latest}）。"
    message_en = "The date {day} is outside the plausible range ({earliest} to {latest})."


class PlanNotDraft(DomainError):
    code = "plan_not_draft"
    message_zh = "计划 {plan} 已{status_zh}：只有草稿状态的计划可以增删行或批准。"
    message_en = ("Plan {plan} is {status_en}: lines can be added or removed, and the plan approved, "
                  "only while it is a draft.")


class PlanHasNoLines(DomainError):
    code = "plan_has_no_lines"
    message_zh = "计划 {plan} 还没有任何点位行，不能批准。"
    message_en = "Plan {plan} has no lines yet and cannot be approved."


class PlanGeneratesNoTasks(DomainError):
    code = "plan_generates_no_tasks"
    message_zh = "按计划 {plan} 的频次和日期，计划期内不会产生任何采样任务；请检查计划期与“期内第几天”。"
    message_en = ("Plan {plan} yields no sampling task within its period at the frequencies and days given; "
                  "check the period and the day in each period.")


class PlanClosed(DomainError):
    code = "plan_closed"
    message_zh = "计划 {plan} 已关闭。"
    message_en = "Plan {plan} is already closed."


class TasksInProgress(DomainError):
    code = "plan_tasks_in_progress"
    message_zh = "计划 {plan} 还有已派发或正在现场的任务（{tasks}）：先完成或取消它们再关闭计划。"
    message_en = ("Plan {plan} still has tasks dispatched or in the field ({tasks}): "
                  "complete or cancel them before closing it.")


class NotASampler(InvalidInput):
    code = "not_a_sampler"
    message_zh = "{name} 现在不是在岗的采样员，不能分配采样任务。"
    message_en = "{name} does not hold the sampler role now and cannot be assigned sampling tasks."


class SamplerRequired(InvalidInput):
    code = "sampler_required"
    message_zh = "请选择采样员。"
    message_en = "Choose the sampler."


class BadFrequency(InvalidInput):
    code = "bad_frequency"
    message_zh = "监测频次 “{frequency}” 无效。"
    message_en = "“{frequency}” is not a monitoring frequency."


class BadDayInPeriod(InvalidInput):
    code = "bad_day_in_period"
    message_zh = "“期内第几天”须在 1 至 {most} 之间（{frequency}）：{day}。"
    message_en = "The day in the period must be 1 to {most} for {frequency}: {day}."


class NoParameters(InvalidInput):
    code = "no_parameters"
    message_zh = "点位 {site} 没有按该频次（{frequency_zh}）监测的项目：请列出要采的项目。"
    message_en = "Site {site} monitors no parameter at this frequency ({frequency_en}): list the parameters to sample."


class ParameterNotMonitored(InvalidInput):
    """The site's approved version is the stronger rule: sampling a parameter the site does not
    monitor needs a site change request first."""

    code = "parameter_not_monitored"
    message_zh = "点位 {site} 现行版本（第 {version} 版）不监测 {parameters}：请先提交点位变更申请。"
    message_en = ("Site {site} (version {version} in force) does not monitor {parameters}: "
                  "propose a site change first.")


class ParameterAlreadyPlanned(InvalidInput):
    code = "parameter_already_planned"
    message_zh = "点位 {site} 的 {parameters} 已在本计划的另一行中。"
    message_en = "{parameters} at site {site} is already in another line of this plan."


class SiteNotPlannable(DomainError):
    code = "site_not_plannable"
    message_zh = "点位 {site} 当前状态为{status_zh}，不能安排采样。"
    message_en = "Site {site} is {status_en} and cannot be scheduled for sampling."


class DayInPast(InvalidInput):
    code = "task_day_in_past"
    message_zh = "采样日期 {day} 已经过去，不能再安排任务。"
    message_en = "The sampling day {day} has passed; a task cannot be scheduled for it."


class ReasonRequired(InvalidInput):
    code = "reason_required"
    message_zh = "请填写原因。"
    message_en = "A reason is required."


class TaskNotCancellable(DomainError):
    code = "task_not_cancellable"
    message_zh = "任务 {task} 已{status_zh}：只有采样前（已计划或已派发）的任务可以取消。"
    message_en = "Task {task} is {status_en}: only a task not yet sampled (scheduled or dispatched) can be cancelled."


class TaskNotReassignable(DomainError):
    code = "task_not_reassignable"
    message_zh = "任务 {task} 已{status_zh}：只有派发前的任务可以改派采样员。"
    message_en = "Task {task} is {status_en}: the sampler can be changed only before the task is dispatched."


class SameSampler(InvalidInput):
    code = "same_sampler"
    message_zh = "任务 {task} 已经分配给 {name}。"
    message_en = "Task {task} is already assigned to {name}."


class BadDate(InvalidInput):
    code = "bad_date"
    message_zh = "{label_zh}不是有效的日期（格式：年-月-日，如 2026-04-10）：{value}"
    message_en = "{label_en} is not a valid date (year-month-day, e.g. 2026-04-10): {value}"
