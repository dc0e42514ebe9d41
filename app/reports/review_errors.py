"""Refusals of report drafting and of the three review levels (issue 9; DOMAIN.md §2, §3 Report),
each with its code and both languages. Every one is raised before anything is written, so a
refused act changes nothing.
"""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- finding things


class ReportNotFound(NotFound):
    code = "report_not_found"
    message_zh = "未找到报告 {report_no}。"
    message_en = "Report {report_no} not found."


class ReportSampleNotFound(NotFound):
    code = "sample_not_found"
    message_zh = "未找到样品 {sample_no}。"
    message_en = "Sample {sample_no} not found."


class LimitSetNotFound(NotFound):
    code = "limit_set_not_found"
    message_zh = "未找到评价标准（限值集）{limit_set}。"
    message_en = "Limit set {limit_set} not found."


# ---------------------------------------------------------------- drafting


class ReportNeedsSamples(InvalidInput):
    code = "report_needs_samples"
    message_zh = "报告至少要包含一个样品。"
    message_en = "A report covers at least one sample."


class TooManySamples(InvalidInput):
    code = "report_too_many_samples"
    message_zh = "一份报告最多包含 {limit} 个样品（本次 {count} 个）。"
    message_en = "A report covers at most {limit} samples ({count} given)."


class SampleNotReportable(DomainError):
    """Only samples whose every requested parameter has a result of record or a "not analysed"
    reason can be reported (DOMAIN.md §3: results_entered)."""

    code = "sample_not_reportable"
    message_zh = "样品 {sample_no} 不能编入报告：当前状态为“{state}”，须所有检测项目都已有结果或“未分析”原因。"
    message_en = ("Sample {sample_no} cannot be reported: it is {state}; every requested parameter needs a "
                  "result or a “not analysed” reason first.")


class SampleAlreadyReported(DomainError):
    code = "sample_already_reported"
    message_zh = "样品 {sample_no} 已在报告 {report_no} 中（该报告未被替代或撤回）。"
    message_en = "Sample {sample_no} is already on report {report_no} (neither superseded nor withdrawn)."


class SampleNotOnReport(DomainError):
    code = "sample_not_on_report"
    message_zh = "样品 {sample_no} 不在报告 {report_no} 中。"
    message_en = "Sample {sample_no} is not on report {report_no}."


class InvalidReportLanguage(InvalidInput):
    code = "invalid_report_language"
    message_zh = "报告语言只能是 zh（中文）或 en（英文），而不是“{language}”。"
    message_en = "The report language is zh (Chinese) or en (English), not “{language}”."


class ReportFieldInvalid(InvalidInput):
    code = "report_field_invalid"
    message_zh = "{field_zh}无效：{problem_zh}"
    message_en = "{field_en} is invalid: {problem_en}"


class ReportNotEditable(DomainError):
    """DOMAIN.md §3 Report: editable only in draft."""

    code = "report_not_editable"
    message_zh = "报告 {report_no} 当前状态为“{state}”：只有草稿可以修改或提交。"
    message_en = "Report {report_no} is {state}: only a draft can be changed or submitted."


class NotThePreparer(DomainError):
    code = "not_the_preparer"
    message_zh = "只有编制人 {preparer} 可以签名提交报告 {report_no}。"
    message_en = "Only the preparer, {preparer}, can sign and submit report {report_no}."


class InvalidReportNumberPattern(InvalidInput):
    code = "invalid_report_no_pattern"
    message_zh = "报告编号规则“{pattern}”无效：{problem_zh}"
    message_en = "The report number pattern “{pattern}” is invalid: {problem_en}"


# ---------------------------------------------------------------- submitting


class ReportIncomplete(DomainError):
    code = "report_incomplete"
    message_zh = "报告内容不完整，以下检测项目既无结果也无“未分析”原因：{pending}"
    message_en = "The report is incomplete; these have neither a result nor a “not analysed” reason: {pending}"


class BatchSignatureBroken(DomainError):
    """A result was revised after the analyst signed the batch: the analyst answers for the data
    first (谁出数谁负责), so the corrected batch is signed again before the report goes on."""

    code = "batch_signature_broken"
    message_zh = "分析批 {batches} 的分析人签名已失效（签名后结果被修改）：分析人须先重新签署修改后的分析批。"
    message_en = ("The analyst's signature of batch {batches} no longer holds (a result was revised after "
                  "signing): the analyst must sign the corrected batch again first.")


# ---------------------------------------------------------------- the levels


class SelfReviewForbidden(DomainError):
    """DOMAIN.md §2 rule 1: whoever produced the data, prepared the report or acted at another
    level may not check, review or approve it."""

    code = "self_review_forbidden"
    message_zh = ("{person} 不能在报告 {report_no} 的{level_zh}环节签名：{did_zh}"
                  "（不能审核自己的数据，三级审核须由三个不同的人完成）。")
    message_en = ("{person} may not act at the {level_en} level of report {report_no}: {did_en} (no one reviews "
                  "their own data, and the three levels are three different people).")


class ReviewOutOfOrder(DomainError):
    code = "review_out_of_order"
    message_zh = "报告 {report_no} 当前等待{awaited_zh}，不能进行{level_zh}。"
    message_en = "Report {report_no} awaits {awaited_en}; it cannot take {level_en} now."


class ReportNotInReview(DomainError):
    code = "report_not_in_review"
    message_zh = "报告 {report_no} 当前状态为“{state}”，不在审核流程中。"
    message_en = "Report {report_no} is {state}; it is not in review."


class ChecklistBlocks(DomainError):
    code = "checklist_blocks"
    message_zh = "审核清单有未解决的问题，不能签名：{items_zh}"
    message_en = "The review checklist has unresolved failures; signing is refused: {items_en}"


class ReturnReasonRequired(InvalidInput):
    code = "return_reason_required"
    message_zh = "退回须写明原因（{minimum}–{maximum} 个字符）。"
    message_en = "A return needs a reason ({minimum}–{maximum} characters)."


class CommentTooLong(InvalidInput):
    code = "review_comment_too_long"
    message_zh = "意见过长（最多 {maximum} 个字符）。"
    message_en = "The comment is too long (at most {maximum} characters)."
