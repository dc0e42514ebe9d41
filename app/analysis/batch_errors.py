"""Refusals of analysis batches (building, standards, starting, curves), each with its code and
both languages. Every one changes nothing: the services raise them before writing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class BatchNotFound(NotFound):
    code = "batch_not_found"
    message_zh = "未找到分析批 {batch_no}。"
    message_en = "Analysis batch {batch_no} not found."




class ParametersRequired(InvalidInput):
    code = "batch_parameters_required"
    message_zh = "请选择本批要测定的检测项目。"
    message_en = "Choose the parameters the batch measures."


class ParameterNotInMethod(DomainError):
    code = "parameter_not_in_method"
    http_status = 422
    message_zh = "方法 {method}（第 {version} 版）不测定 {parameter}；该方法的项目为：{parameters}。"
    message_en = "Method {method} (version {version}) does not measure {parameter}; it measures: {parameters}."


class SamplesRequired(InvalidInput):
    code = "batch_samples_required"
    message_zh = "请至少选择一个样品。"
    message_en = "Choose at least one sample."


class TooManySamples(DomainError):
    code = "batch_too_many_samples"
    http_status = 422
    message_zh = ("方法 {method} 每个质控批最多 {limit} 个样品，现选了 {count} 个：请分成多个批次"
                  "（每批都带各自的质控样）。")
    message_en = ("Method {method} allows at most {limit} samples in one QC batch; {count} were chosen: split them "
                  "into several batches (each with its own QC).")


class SampleNotFound(NotFound):
    code = "batch_sample_not_found"
    message_zh = "未找到样品 {sample_no}。"
    message_en = "Sample {sample_no} not found."


class SampleNotInLab(DomainError):
    code = "batch_sample_not_in_lab"
    http_status = 409
    message_zh = ("样品 {sample_no} 当前状态为“{state}”：只有已接收（含有条件接收）、在库、已制备或分析中的样品"
                  "才能组入分析批。")
    message_en = ("Sample {sample_no} is {state}: only samples received (also conditionally), in storage, prepared "
                  "or in analysis can be put in an analysis batch.")


class SampleNotDue(DomainError):
    code = "batch_sample_not_due"
    http_status = 409
    message_zh = "样品 {sample_no} 没有待分析的 {parameters}（未委托该项目，或该项目已分析）。"
    message_en = "Sample {sample_no} has no {parameters} waiting for analysis (not requested, or already analysed)."


class SampleAlreadyInBatch(DomainError):
    code = "sample_already_in_batch"
    http_status = 409
    message_zh = "样品 {sample_no} 的 {parameter} 已在未提交的分析批 {batch} 中，不能重复组批。"
    message_en = "Sample {sample_no} is already in analysis batch {batch} for {parameter}, not yet submitted."


class InstrumentRequired(InvalidInput):
    code = "batch_instrument_required"
    message_zh = "请选择本批使用的仪器。"
    message_en = "Choose the instrument the batch runs on."




class BatchNotOpen(DomainError):
    code = "batch_not_open"
    http_status = 409
    message_zh = "分析批 {batch} 当前状态为“{state}”：只有未开始的批次才能{act_zh}。"
    message_en = "Analysis batch {batch} is {state}: only a batch not yet started can {act_en}."


class NotTheAnalyst(DomainError):
    """Only who built the batch lays it out, starts it, evaluates its QC, answers its failures and
    signs it."""

    code = "not_the_batch_analyst"
    http_status = 409
    message_zh = "分析批 {batch} 由 {analyst} 组建，只有该分析员可以操作。"
    message_en = "Analysis batch {batch} belongs to {analyst}; only that analyst can act on it."


class ActBeforeBatch(DomainError):
    code = "batch_act_before_creation"
    http_status = 422
    message_zh = "{field_zh} {at} 早于分析批 {batch} 的组建时间 {created}：请核对时间。"
    message_en = "{field_en} {at} is before analysis batch {batch} was built ({created}): check the time."


class ActBeforeSampling(DomainError):
    code = "batch_act_before_sampling"
    http_status = 422
    message_zh = "分析开始时间 {at} 早于样品 {sample_no} 的采样时间 {collected}：请核对时间。"
    message_en = "The start of analysis {at} is before sample {sample_no} was collected ({collected}): check the time."


class QcRoleWithoutStandard(InvalidInput):
    code = "batch_role_takes_no_standard"
    message_zh = "{role} 不使用标准物质：只有有证标准物质（CRM）、连续校准核查（CCV）和加标样需要。"
    message_en = "{role} takes no standard: only CRM, CCV and spike positions do."


class NoPositionAwaitingStandard(DomainError):
    code = "batch_no_position_awaiting_standard"
    http_status = 409
    message_zh = "分析批 {batch} 没有等待标准物质的{what_zh}。"
    message_en = "Analysis batch {batch} has no {what_en} waiting for a standard."


class StandardBarcodeRequired(InvalidInput):
    code = "batch_standard_required"
    message_zh = "请扫描{role_zh}所用标准物质或标准溶液的条码。"
    message_en = "Scan the barcode of the standard used for the {role_en}."


class ValueRequired(InvalidInput):
    code = "batch_value_required"
    message_zh = "请填写{field_zh}。"
    message_en = "{field_en} is required."


class InvalidNumber(InvalidInput):
    code = "batch_number_invalid"
    message_zh = "{field_zh}“{value}”不是有效的数值。"
    message_en = "{field_en} “{value}” is not a valid number."


class CommaDecimal(InvalidInput):
    code = "batch_comma_decimal"
    message_zh = "{field_zh}“{value}”含逗号：小数点请用“.”，不要用千位分隔符。"
    message_en = "{field_en} “{value}” contains a comma: write the decimal point as “.” and no thousands separators."


class NotPositive(InvalidInput):
    code = "batch_number_not_positive"
    message_zh = "{field_zh}必须大于 0（填写的是 {value}）。"
    message_en = "{field_en} must be greater than 0 (got {value})."


class StandardsMissing(DomainError):
    code = "batch_standards_missing"
    http_status = 409
    message_zh = "分析批 {batch} 还缺少标准物质：{labels}。请先扫描所用标准再开始分析。"
    message_en = "Analysis batch {batch} still lacks the standard of {labels}: scan them before starting."


class ParameterNotInBatch(DomainError):
    code = "parameter_not_in_batch"
    http_status = 422
    message_zh = "分析批 {batch} 不测定 {parameter}（本批项目：{parameters}）。"
    message_en = "Analysis batch {batch} does not measure {parameter} (it measures {parameters})."



class CurveNotForBatch(DomainError):
    code = "curve_not_for_batch"
    http_status = 409
    message_zh = "校准曲线 {curve} 不能用于分析批 {batch}：{reason_zh}。"
    message_en = "Calibration curve {curve} cannot serve analysis batch {batch}: {reason_en}."


class CurveInUse(DomainError):
    code = "batch_curve_in_use"
    http_status = 409
    message_zh = "分析批 {batch} 的 {parameter} 已按曲线 {curve} 计算出结果，不能更换曲线。"
    message_en = ("Results of {parameter} in analysis batch {batch} were computed with curve {curve}; it cannot be "
                  "replaced.")


class BatchNotRunning(DomainError):
    code = "batch_curve_state"
    http_status = 409
    message_zh = "分析批 {batch} 当前状态为“{state}”：只有未开始或分析中的批次可以挂接校准曲线。"
    message_en = "Analysis batch {batch} is {state}: a curve is attached only before or during the analysis."
