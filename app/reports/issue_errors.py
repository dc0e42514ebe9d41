"""Refusals of approval (签发), issue, amendment and withdrawal (issue 9; DOMAIN.md §3 Report, §5),
each with its code and both languages. Every one is raised before anything is written, so a
refused act changes nothing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound, PermissionDenied

REASON_MIN = 10
REASON_MAX = 2000


class ReasonTooShort(InvalidInput):
    code = "reason_too_short"
    message_zh = "请写明原因（至少 {minimum} 个字符）：改了什么、为什么。"
    message_en = "Give the reason (at least {minimum} characters): what changed and why."


class ReasonTooLong(InvalidInput):
    code = "reason_too_long"
    message_zh = "原因过长（最多 {limit} 个字符）。"
    message_en = "The reason is too long (at most {limit} characters)."


class ReportNotAwaitingApproval(DomainError):
    code = "report_not_awaiting_approval"
    message_zh = "报告 {report_no} 当前状态为“{state}”：只有已审核（待签发）的报告才能准备签发或签发。"
    message_en = "Report {report_no} is {state}: only a reviewed report awaiting approval can be prepared or approved."


class RenderingInProgress(DomainError):
    code = "rendering_in_progress"
    message_zh = "报告 {report_no} 的签发稿正在生成，请稍候。"
    message_en = "The PDF of report {report_no} for approval is being made; wait a moment."


class RenderingMissing(DomainError):
    code = "rendering_missing"
    message_zh = "报告 {report_no} 还没有为您生成签发稿：请先“准备签发”，阅读生成的 PDF 后再签发。"
    message_en = ("Report {report_no} has no PDF made for you to approve: prepare it for signing, read the "
                  "PDF, then approve.")


class RenderingOutOfDate(DomainError):
    code = "rendering_out_of_date"
    message_zh = "报告 {report_no} 的签发稿生成于 {rendered_on}，签发日期为 {today}：请重新准备签发。"
    message_en = "The PDF of report {report_no} was made on {rendered_on}, not today ({today}): prepare it again."


class ContentChangedSinceRendering(DomainError):
    """The approval signature binds the content hash the PDF was made from; a result revised since
    (the content hash moved) means the signatory would sign what they did not read."""

    code = "content_changed_since_rendering"
    message_zh = "报告 {report_no} 的数据在审核、生成签发稿之后已被修改（内容哈希已变化）：不能签发。"
    message_en = ("The data of report {report_no} changed since it was reviewed and its PDF made (the "
                  "content hash moved): it cannot be approved.")


class RenderedPdfMissing(DomainError):
    code = "rendered_pdf_missing"
    http_status = 500
    message_zh = "报告 {report_no} 的签发稿文件在文件库中缺失或已损坏。"
    message_en = "The approved PDF of report {report_no} is missing from the file store or damaged."


class ReportNotAwaitingIssue(DomainError):
    code = "report_not_awaiting_issue"
    message_zh = "报告 {report_no} 当前状态为“{state}”：只有已签发、尚未发出的报告可以重试发出。"
    message_en = "Report {report_no} is {state}: only an approved report not yet issued can be retried."


class IssueInProgress(DomainError):
    code = "issue_in_progress"
    message_zh = "报告 {report_no} 正在进行数字签名，请稍候。"
    message_en = "Report {report_no} is being digitally signed; wait a moment."


class RetryNotAllowed(PermissionDenied):
    code = "retry_not_allowed"
    message_zh = "只有签发该报告的授权签字人或质量负责人可以重试发出。"
    message_en = "Only the signatory who approved the report or the quality manager may retry its issue."


class ReportNotIssued(DomainError):
    code = "report_not_issued"
    message_zh = "报告 {report_no} 当前状态为“{state}”：只有已发出的报告可以{act_zh}。"
    message_en = "Report {report_no} is {state}: only an issued report can be {act_en}."


class AmendmentPending(DomainError):
    code = "amendment_pending"
    message_zh = "报告 {report_no} 已有未发出的更正报告 {amendment_no}。"
    message_en = "Report {report_no} already has an amendment in progress: {amendment_no}."


class PreparerNotAllowed(DomainError):
    code = "preparer_not_allowed"
    message_zh = "{person} 当前没有编制报告的权限，不能编制更正报告。"
    message_en = "{person} may not prepare reports now and cannot prepare the amendment."


class PreparerNotFound(NotFound):
    code = "preparer_not_found"
    message_zh = "未找到编制人 {username}。"
    message_en = "Preparer {username} not found."


class ReportPdfNotAvailable(NotFound):
    code = "report_pdf_not_available"
    message_zh = "报告 {report_no} 没有{what_zh}。"
    message_en = "Report {report_no} has no {what_en}."
