"""Refusals of the anomaly engine: rule settings and alarm dispositions (issue 10 item 2; DOMAIN.md
§3 "Anomaly alarm", §7), each with its code and both languages. Refused acts change nothing; the
ones the issue asks to be audited ("threshold settings out of range", "dispositions without a
reason") are RecordedRefusals, so their trace is written on its own after the rollback.
"""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound, RecordedRefusal


class AlarmNotFound(NotFound):
    code = "alarm_not_found"
    message_zh = "未找到异常报警 {alarm_no}。"
    message_en = "Anomaly alarm {alarm_no} not found."


class UnknownRule(InvalidInput):
    code = "unknown_rule"
    message_zh = "没有编号为 {rule} 的异常规则。"
    message_en = "There is no anomaly rule {rule}."


class UnknownTrigger(InvalidInput):
    code = "unknown_scan_trigger"
    message_zh = "未知的扫描触发方式：{trigger}。"
    message_en = "Unknown scan trigger: {trigger}."


# ---------------------------------------------------------------- rule settings (recorded)


class RuleSettingRefused(RecordedRefusal):
    """A threshold setting the rule does not accept; the attempt is kept in the audit trail."""

    code = "rule_setting_refused"
    http_status = 422


class ThresholdOutOfRange(RuleSettingRefused):
    code = "threshold_out_of_range"
    message_zh = "阈值 {name} = {value} 超出允许范围 [{low}, {high}]。"
    message_en = "Threshold {name} = {value} is outside the allowed range [{low}, {high}]."


class ThresholdNotANumber(RuleSettingRefused):
    code = "threshold_not_a_number"
    message_zh = "阈值 {name} 不是有效数字：{value}。"
    message_en = "Threshold {name} is not a number: {value}."


class ThresholdNotInteger(RuleSettingRefused):
    code = "threshold_not_integer"
    message_zh = "阈值 {name} 必须是整数：{value}。"
    message_en = "Threshold {name} must be a whole number: {value}."


class UnknownThreshold(RuleSettingRefused):
    code = "unknown_threshold"
    message_zh = "规则 {rule} 没有阈值 {name}。"
    message_en = "Rule {rule} has no threshold {name}."


class RuleSettingChanged(RuleSettingRefused):
    code = "rule_setting_changed"
    http_status = 409
    message_zh = "规则 {rule} 的设置在您打开页面后已被修改（现为第 {version} 版），请查看新设置后再提交。"
    message_en = ("The settings of rule {rule} changed after you opened the page (now version {version}): "
                  "look at them and submit again.")


class RuleSettingNeedsReason(RuleSettingRefused):
    code = "rule_setting_needs_reason"
    message_zh = "修改规则设置必须填写原因。"
    message_en = "Changing a rule's settings needs a reason."


class ReasonTooLong(InvalidInput):
    code = "reason_too_long"
    message_zh = "原因过长（最多 {maximum} 字）。"
    message_en = "The reason is too long (at most {maximum} characters)."


# ---------------------------------------------------------------- dispositions


class DispositionNeedsReason(RecordedRefusal):
    code = "disposition_needs_reason"
    http_status = 422
    message_zh = "处置异常报警必须填写原因。"
    message_en = "Disposing of an alarm needs a reason."


class AlarmClosed(DomainError):
    code = "alarm_closed"
    message_zh = "异常报警 {alarm_no} 已处置完毕（{state}），不能再变更。"
    message_en = "Alarm {alarm_no} is already closed ({state}); it cannot move again."


class AlarmTransitionRefused(DomainError):
    code = "alarm_transition_refused"
    message_zh = "异常报警 {alarm_no} 不能从 {from_state} 变为 {to_state}。"
    message_en = "Alarm {alarm_no} cannot move from {from_state} to {to_state}."


class UnknownDisposition(InvalidInput):
    code = "unknown_disposition"
    message_zh = "未知的处置：{to}（可选：investigating、dismissed、confirmed）。"
    message_en = "Unknown disposition {to} (one of investigating, dismissed, confirmed)."


class UnknownAction(InvalidInput):
    code = "unknown_action"
    message_zh = "未知的确认措施：{action}（可选：data_corrected、reanalysed、report_amended、referred）。"
    message_en = "Unknown action taken: {action} (one of data_corrected, reanalysed, report_amended, referred)."


class ConfirmationNeedsAction(InvalidInput):
    code = "confirmation_needs_action"
    message_zh = "确认异常报警须至少选择一项已采取的措施。"
    message_en = "Confirming an alarm needs at least one action taken."


class OwnDataAlarm(DomainError):
    """DOMAIN.md §3: the quality manager disposes of alarms, but not of those on their own data."""

    code = "own_data_alarm"
    http_status = 403
    message_zh = "异常报警 {alarm_no} 涉及您本人的数据，须由他人处置。"
    message_en = "Alarm {alarm_no} concerns your own data; someone else must dispose of it."
