"""Refusals of QC evaluation, corrective actions, "not analysed" reasons and signing a batch, each
with its code and both languages. Services raise them before writing anything."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- the batch


class BatchNotStarted(DomainError):
    code = "qc_batch_not_started"
    http_status = 409
    message_zh = "分析批 {batch_no} 尚未开始分析，还没有可评价的质控结果。"
    message_en = "Analysis batch {batch_no} has not been started; there is no QC to evaluate yet."


class BatchAlreadySubmitted(DomainError):
    code = "batch_already_submitted"
    http_status = 409
    message_zh = "分析批 {batch_no} 已由分析人签名提交，质控评价和纠正措施不能再更改。"
    message_en = "Analysis batch {batch_no} has been signed and submitted; its QC can no longer change."


# ---------------------------------------------------------------- corrective actions


class EvaluationNotFound(NotFound):
    code = "qc_evaluation_not_found"
    message_zh = "未找到质控评价 {evaluation_id}{of_batch_zh}。"
    message_en = "QC evaluation {evaluation_id}{of_batch_en} not found."


class EvaluationSuperseded(DomainError):
    code = "qc_evaluation_superseded"
    http_status = 409
    message_zh = "该质控评价属于第 {run} 次评价，已被第 {latest} 次评价取代：请针对最新一次评价的不合格项采取纠正措施。"
    message_en = ("This QC evaluation belongs to run {run}, superseded by run {latest}: record corrective actions "
                  "against the failures of the latest run.")


class EvaluationNotFailed(DomainError):
    code = "qc_evaluation_not_failed"
    http_status = 409
    message_zh = "该质控项（{check_zh}）未判为不合格，无需纠正措施。"
    message_en = "This QC check ({check_en}) did not fail; it needs no corrective action."


class CorrectiveActionExists(DomainError):
    code = "corrective_action_exists"
    http_status = 409
    message_zh = "该不合格质控项（{check_zh}）已记录纠正措施。"
    message_en = "A corrective action is already recorded for this failed QC check ({check_en})."


class CorrectiveKindUnknown(InvalidInput):
    code = "corrective_kind_unknown"
    message_zh = "纠正措施类型 {kind} 无效：请选择“重新测定”或“数据限定符”。"
    message_en = "Unknown corrective action {kind}: choose a rerun or a qualifier."


class JustificationTooShort(InvalidInput):
    code = "justification_too_short"
    message_zh = "请说明理由（至少 {minimum} 个字）。"
    message_en = "Give the justification (at least {minimum} characters)."


class JustificationTooLong(InvalidInput):
    code = "justification_too_long"
    message_zh = "理由过长（最多 {maximum} 个字）。"
    message_en = "The justification is too long (at most {maximum} characters)."


class QualifierNotAllowed(InvalidInput):
    code = "qualifier_not_allowed"
    message_zh = "限定符 {qualifier} 不适用于该质控项（{check_zh}）：可用 {allowed}。"
    message_en = "Qualifier {qualifier} does not fit this QC check ({check_en}): use {allowed}."


class RerunNotPossible(DomainError):
    """A calibration curve is not a position of the run: it cannot be repeated inside the batch."""

    code = "rerun_not_possible"
    http_status = 409
    message_zh = ("校准曲线不合格不能以“重新测定”纠正（曲线不是批中的测定位置）：请重新绘制曲线并另建分析批，"
                  "或记录有理由的数据限定符。")
    message_en = ("A failed calibration curve cannot be corrected by a rerun (a curve is not a position of the run): "
                  "make a new curve in a new batch, or record a justified qualifier.")


# ---------------------------------------------------------------- signing


class QcFailureUnresolved(DomainError):
    code = "qc_failure_unresolved"
    http_status = 409
    message_zh = "以下质控不合格尚无纠正措施，不能签名提交：{failures_zh}。"
    message_en = "These QC failures have no corrective action yet, so the batch cannot be signed: {failures_en}."


class ResultsMissing(DomainError):
    code = "results_missing"
    http_status = 409
    message_zh = "以下样品项目尚无结果（也未记录不分析原因），不能签名提交：{missing}。"
    message_en = "These sample parameters have no result (and no reason for not analysing), so the batch " \
                 "cannot be signed: {missing}."


# ---------------------------------------------------------------- not analysed


class NotAnalysedReasonRequired(InvalidInput):
    code = "not_analysed_reason_required"
    message_zh = "请说明不分析的原因（至少 {minimum} 个字，最多 {maximum} 个字）。"
    message_en = "Give the reason the parameter is not analysed ({minimum} to {maximum} characters)."


class ParameterNotRequested(DomainError):
    code = "parameter_not_requested"
    http_status = 409
    message_zh = "样品 {sample_no} 未委托检测项目 {parameter}。"
    message_en = "Sample {sample_no} does not request {parameter}."


class NotAnalysedExists(DomainError):
    code = "not_analysed_exists"
    http_status = 409
    message_zh = "样品 {sample_no} 的 {parameter} 已记录不分析原因。"
    message_en = "A reason for not analysing {parameter} of sample {sample_no} is already recorded."


class ResultAlreadySubmitted(DomainError):
    code = "result_already_submitted"
    http_status = 409
    message_zh = "样品 {sample_no} 的 {parameter} 已有签名提交的结果，不能再记录为不分析。"
    message_en = "Sample {sample_no} already has a submitted result for {parameter}; it cannot be marked not analysed."
