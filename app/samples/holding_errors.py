"""Refusals of the holding-time part: recording a deviation (DOMAIN.md §4.1; issue 7 item 3).
The gate's own refusal, `HoldingTimeExceeded`, lives in app.samples.holding (helpers import it there)."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput


class DeviationActUnknown(InvalidInput):
    code = "holding_deviation_act_unknown"
    message_zh = "偏离所针对的操作无效：{act}。请选择“制备”或“分析”。"
    message_en = "Unknown act for a deviation: {act}. Choose preparation or analysis."


class DeviationParametersRequired(InvalidInput):
    code = "holding_deviation_parameters_required"
    message_zh = "请选择至少一个已超过保存期的项目。"
    message_en = "Choose at least one parameter that is past its holding time."


class DeviationNoClock(InvalidInput):
    code = "holding_deviation_no_clock"
    message_zh = "样品 {sample_no} 的 {parameters} 没有保存期时钟（现场测定或未要求该项目）：无需记录偏离。"
    message_en = ("Sample {sample_no} has no holding-time clock for {parameters} (measured on site or not "
                  "requested): no deviation is needed.")


class DeviationNoDeadline(DomainError):
    code = "holding_deviation_no_deadline"
    http_status = 409
    message_zh = ("样品 {sample_no} 的 {parameters} 没有固定保存期（尽快分析，由方法规定）：保存期闸门不会拦截，"
                  "无需记录偏离。")
    message_en = ("Sample {sample_no} has no fixed holding time for {parameters} (analyse as soon as possible, "
                  "the method sets the limit): the gate does not stop it, no deviation is needed.")


class DeviationNotDue(DomainError):
    code = "holding_deviation_not_due"
    http_status = 409
    message_zh = ("样品 {sample_no} 的 {parameters} 尚未超过保存期（截止 {deadlines}）：偏离只能在保存期届满后、"
                  "确需延迟{act_zh}时记录。")
    message_en = ("Sample {sample_no} is not yet past its holding time for {parameters} (deadline {deadlines}): a "
                  "deviation is recorded once the deadline has passed and the late {act_en} is needed.")


class DeviationExists(DomainError):
    code = "holding_deviation_exists"
    http_status = 409
    message_zh = "样品 {sample_no} 的 {parameters} 已记录过{act_zh}偏离，不必重复记录。"
    message_en = "A deviation for {act_en} of {parameters} of sample {sample_no} is already recorded."


class DeviationSampleClosed(DomainError):
    code = "holding_deviation_sample_closed"
    http_status = 409
    message_zh = "样品 {sample_no} 处于“{state}”状态，不再制备或分析：不能记录保存期偏离。"
    message_en = "Sample {sample_no} is {state}: it is no longer prepared or analysed, no deviation can be recorded."
