"""Refusals of sample registration, numbering and container lookup, each with its code and both
languages. Other helpers of the samples domain (field record, photos) keep theirs in their own
modules."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound
from app.core.registry import MalformedBarcode as MalformedScan


class SampleNotFound(NotFound):
    code = "sample_not_found"
    message_zh = "找不到样品编号 {sample_no}。"
    message_en = "No sample numbered {sample_no}."


class ContainerNotFound(NotFound):
    code = "container_not_found"
    message_zh = "条码 {barcode} 格式正确，但没有登记过这个样品容器。"
    message_en = "The barcode {barcode} is well formed, but no sample container carries it."


class MalformedBarcode(MalformedScan):
    """Not a container barcode of any shape (CT26-00012348)."""

    code = "malformed_barcode"
    message_zh = "“{barcode}” 不是样品容器条码（格式如 CT26-00012348）。"
    message_en = "“{barcode}” is not a container barcode (they look like CT26-00012348)."


class WrongCheckDigit(InvalidInput):
    """A container barcode whose Luhn digit does not match: a digit was mistyped or misread."""

    code = "wrong_check_digit"
    message_zh = "条码 {barcode} 的校验位不对：可能输错或扫错了一位，请重新扫描或核对标签。"
    message_en = "Mistyped or misread: the check digit of {barcode} is wrong. Scan again or check the label."


class NotAContainer(InvalidInput):
    """A barcode of another kind of object scanned where a container was expected."""

    code = "not_a_container"
    message_zh = "{barcode} 是{what_zh}的编码，不是样品容器条码；请扫描容器上的标签。"
    message_en = "{barcode} is the code of {what_en}, not a sample container; scan the container's label."


class InvalidNumberPattern(InvalidInput):
    code = "invalid_sample_no_pattern"
    message_zh = "样品编号规则 “{pattern}” 无效：{problem_zh}"
    message_en = "The sample number pattern “{pattern}” is invalid: {problem_en}"


class InvalidSampleNumber(InvalidInput):
    code = "invalid_sample_no"
    message_zh = "生成的样品编号 “{sample_no}” 无效：{problem_zh}"
    message_en = "The sample number “{sample_no}” would be invalid: {problem_en}"


class TaskNotScheduled(DomainError):
    code = "task_not_scheduled"
    message_zh = "任务 {task} 当前状态为“{status}”，只有“已计划”的任务才能下达。"
    message_en = "Task {task} is {status}; only a scheduled task can be dispatched."


class TaskWithoutSampler(DomainError):
    code = "task_without_sampler"
    message_zh = "任务 {task} 还没有指定采样员，不能下达。"
    message_en = "Task {task} has no sampler assigned; it cannot be dispatched."


class TaskWithoutParameters(InvalidInput):
    code = "task_without_parameters"
    message_zh = "任务 {task} 没有监测项目。"
    message_en = "Task {task} has no parameters."


class SiteNotUsable(DomainError):
    """Used only until app.sites.service.assert_site_usable exists."""

    code = "site_not_usable"
    message_zh = "点位 {site} 在 {day} 不是启用状态（{status}），不能登记样品。"
    message_en = "Site {site} was not active on {day} ({status}); no samples can be registered for it."


class SiteCodeUnknown(InvalidInput):
    code = "site_code_unknown"
    message_zh = "找不到点位 {site}。"
    message_en = "No site with the code {site}."


class SamplerUnknown(InvalidInput):
    code = "sampler_unknown"
    message_zh = "找不到采样员 {username}。"
    message_en = "No active user {username} to take the sample."


class NoParameters(InvalidInput):
    code = "no_parameters"
    message_zh = "请至少选择一个监测项目。"
    message_en = "Choose at least one parameter."


class MixedMatrix(InvalidInput):
    code = "mixed_matrix"
    message_zh = "项目 {parameters} 不属于样品介质“{matrix}”。"
    message_en = "The parameters {parameters} do not belong to the matrix {matrix}."


class LocationRequired(InvalidInput):
    code = "location_required"
    message_zh = "委托样品请填写点位编号或采样地点。"
    message_en = "A client sample needs a site code or a description of where it is taken."


class TooManySamples(InvalidInput):
    code = "too_many_samples"
    message_zh = "一次最多登记 {limit} 个样品（本次 {count} 个）。"
    message_en = "At most {limit} samples can be registered at once (this was {count})."


class BulkRowsInvalid(InvalidInput):
    """Bulk registration is all or nothing: every bad row is listed, none is registered."""

    code = "bulk_rows_invalid"
    message_zh = "有 {count} 行有错误，未登记任何样品：{summary}"
    message_en = "{count} rows have errors; no sample was registered: {summary}"

    def __init__(self, rows: list[tuple[int, str, str]]) -> None:
        self.rows = rows  # (row number, message zh, message en)
        super().__init__(
            count=len(rows),
            summary="; ".join(f"row {n}: {en}" for n, _zh, en in rows[:5]) + (" …" if len(rows) > 5 else ""))

    def message(self, language: str) -> str:
        zh = language.startswith("zh")
        shown = "；".join(f"第 {n} 行：{z}" for n, z, _e in self.rows[:5]) if zh else \
            "; ".join(f"row {n}: {e}" for n, _z, e in self.rows[:5])
        more = " …" if len(self.rows) > 5 else ""
        if zh:
            return f"有 {len(self.rows)} 行有错误，未登记任何样品：{shown}{more}"
        return f"{len(self.rows)} rows have errors; no sample was registered: {shown}{more}"
