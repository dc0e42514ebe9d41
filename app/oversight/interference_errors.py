"""Refusals of the interference log (干预留痕, DOMAIN.md §6), each with its code and both
languages. A record that the reader may not see is answered exactly like one that does not
exist, so a refusal never reveals that a record is there."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound, RecordedRefusal


class InterferenceNotFound(NotFound):
    code = "interference_not_found"
    message_zh = "未找到干预记录 {record_no}。"
    message_en = "Interference record {record_no} not found."


class InterferenceImmutable(RecordedRefusal):
    """No one edits or deletes an interference record (§6: additions only); the attempt is kept
    in the audit trail."""

    code = "interference_immutable"
    http_status = 409
    message_zh = "干预记录 {record_no} 不可修改或删除，只能追加补充说明。此次尝试已记入审计追踪。"
    message_en = ("Interference record {record_no} can never be edited or deleted; add a supplement instead. "
                  "This attempt has been recorded in the audit trail.")


class HiddenInterferenceRefused(RecordedRefusal):
    """An attempt to change a record the actor may not see: recorded, answered as not found."""

    code = InterferenceNotFound.code
    http_status = 404
    message_zh = InterferenceNotFound.message_zh
    message_en = InterferenceNotFound.message_en


class InterferenceFieldRequired(InvalidInput):
    code = "interference_field_required"
    message_zh = "请填写：{label_zh}。"
    message_en = "Required: {label_en}."


class InterferenceFieldTooLong(InvalidInput):
    code = "interference_field_too_long"
    message_zh = "{label_zh}过长（最多 {limit} 个字符）。"
    message_en = "{label_en} is too long (at most {limit} characters)."


class InterferenceBadChoice(InvalidInput):
    code = "interference_bad_choice"
    message_zh = "{label_zh}的取值无效：{value}。"
    message_en = "Invalid {label_en}: {value}."


class InterferenceInFuture(InvalidInput):
    code = "interference_in_future"
    message_zh = "干预发生时间不能晚于现在。"
    message_en = "The interference cannot have happened in the future."


class InterferenceBadTime(InvalidInput):
    code = "interference_bad_time"
    message_zh = "时间格式无效：{value}（应为 YYYY-MM-DD HH:MM）。"
    message_en = "Invalid time: {value} (expected YYYY-MM-DD HH:MM)."


class UnknownTargets(InvalidInput):
    """Typed numbers that name no site, sample or report: all of them are listed at once."""

    code = "interference_unknown_targets"
    message_zh = "以下编号不存在：{numbers}。"
    message_en = "These numbers do not exist: {numbers}."


class TooManyTargets(InvalidInput):
    code = "interference_too_many_targets"
    message_zh = "涉及对象过多（最多 {limit} 个）。"
    message_en = "Too many affected objects (at most {limit})."


class UnknownInterfererUser(InvalidInput):
    code = "interference_unknown_user"
    message_zh = "没有用户名为 {username} 的用户。"
    message_en = "No user with the username {username}."


class AttachmentTypeRefused(InvalidInput):
    code = "interference_attachment_type"
    message_zh = "附件 {filename} 的类型不允许：只接受 PDF、JPEG、PNG、MP3、M4A、WAV、AMR 和 DOCX 文件。"
    message_en = "Attachment {filename} is of a type not accepted: PDF, JPEG, PNG, MP3, M4A, WAV, AMR and DOCX only."


class AttachmentEmpty(InvalidInput):
    code = "interference_attachment_empty"
    message_zh = "附件 {filename} 为空。"
    message_en = "Attachment {filename} is empty."


class TooManyAttachments(InvalidInput):
    code = "interference_too_many_attachments"
    message_zh = "附件过多（一次最多 {limit} 个）。"
    message_en = "Too many attachments (at most {limit} at once)."


class AttachmentAltered(DomainError):
    """The bytes in the store no longer hash to what was recorded: never handed out as evidence."""

    code = "interference_attachment_altered"
    message_zh = "附件 {filename} 的内容与登记的 SHA-256 不符。"
    message_en = "Attachment {filename} no longer matches its recorded SHA-256."


class AlreadyAcknowledged(DomainError):
    code = "interference_already_acknowledged"
    message_zh = "干预记录 {record_no} 已被确认阅知。"
    message_en = "Interference record {record_no} has already been acknowledged."


class NotTheFiler(DomainError):
    """Supplements come from the filer or the quality manager, no one else."""

    code = "interference_not_filer"
    http_status = 403
    message_zh = "只有记录人或质量负责人可以补充干预记录。"
    message_en = "Only the person who filed the record or the quality manager may add to it."
