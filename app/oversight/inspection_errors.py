"""Refusals of the regulator's inspections (issue 10 item 3): a draw that cannot be made fairly
(no population, a size out of range, a period backwards, a scope naming nothing the lab knows)
and findings or responses that do not fit the inspection. Each is raised before anything is
written, so a refused act changes nothing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class InspectionNotFound(NotFound):
    code = "inspection_not_found"
    message_zh = "未找到检查 {inspection_no}。"
    message_en = "Inspection {inspection_no} not found."


class FindingNotFound(NotFound):
    code = "finding_not_found"
    message_zh = "未找到检查发现 {finding_id}。"
    message_en = "Finding {finding_id} not found."


class EvidenceReportNotFound(NotFound):
    code = "report_not_found"
    message_zh = "未找到报告 {report_no}。"
    message_en = "Report {report_no} not found."


# ---------------------------------------------------------------- the draw


class DrawTargetUnknown(InvalidInput):
    code = "draw_target_unknown"
    message_zh = "抽查对象“{target}”无效：只能是样品、批次或报告。"
    message_en = "Unknown draw target {target!r}: samples, batches or reports."


class DrawSizeOutOfRange(InvalidInput):
    code = "draw_size_out_of_range"
    message_zh = "抽取数量必须在 1 到 {maximum} 之间（收到 {size}）。"
    message_en = "The number to draw must be between 1 and {maximum} (got {size})."


class DrawPeriodReversed(InvalidInput):
    code = "draw_period_reversed"
    message_zh = "抽查期间的开始日期 {period_from} 晚于结束日期 {period_to}。"
    message_en = "The period starts ({period_from}) after it ends ({period_to})."


class DrawScopeUnknown(InvalidInput):
    code = "draw_scope_unknown"
    message_zh = "抽查范围“{key}”的取值“{value}”无效（{known_zh}）。"
    message_en = "Scope {key} = {value!r} is not known ({known_en})."


class DrawSeedInvalid(InvalidInput):
    code = "draw_seed_invalid"
    message_zh = "随机种子须为 1–64 个字母、数字或 - _ . 字符。"
    message_en = "The seed must be 1–64 letters, digits or - _ . characters."


class DrawTitleRequired(InvalidInput):
    code = "draw_title_required"
    message_zh = "请填写检查名称（最多 200 字）。"
    message_en = "Give the inspection a title (at most 200 characters)."


class EmptyPopulation(DomainError):
    code = "draw_population_empty"
    http_status = 422
    message_zh = "在 {period_from} 至 {period_to} 期间、所选范围内没有可抽取的记录。"
    message_en = "No records to draw from in {period_from} – {period_to} within that scope."


# ---------------------------------------------------------------- findings and responses


class InspectionClosed(DomainError):
    code = "inspection_closed"
    message_zh = "检查 {inspection_no} 已结束，不能再记录发现或结束。"
    message_en = "Inspection {inspection_no} is closed: no further findings, and it cannot be closed again."


class FindingTargetNotPicked(InvalidInput):
    code = "finding_target_not_picked"
    message_zh = "检查发现只能针对本次抽中的记录（或整个检查）：{target_type} {target_id} 未被抽中。"
    message_en = ("A finding concerns a record picked in this draw (or the inspection as a whole): "
                  "{target_type} {target_id} was not picked.")


class FindingSeverityUnknown(InvalidInput):
    code = "finding_severity_unknown"
    message_zh = "严重程度“{severity}”无效：观察项、一般或严重。"
    message_en = "Unknown severity {severity!r}: observation, minor or major."


class FindingTextRequired(InvalidInput):
    code = "finding_text_required"
    message_zh = "请填写内容（1–{maximum} 字）。"
    message_en = "Write the text (1–{maximum} characters)."
