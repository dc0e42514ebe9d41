"""Refusals of the instruments domain, each with its code and both languages."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class InstrumentNotFound(NotFound):
    code = "instrument_not_found"
    message_zh = "未找到资产编号为 {asset_no} 的仪器。"
    message_en = "No instrument with asset number {asset_no}."


class RecordNotFound(NotFound):
    code = "instrument_record_not_found"
    message_zh = "未找到该仪器记录。"
    message_en = "Instrument record not found."


class AssetNoTaken(DomainError):
    code = "asset_no_taken"
    message_zh = "资产编号 {asset_no} 已被登记。"
    message_en = "Asset number {asset_no} is already registered."


class InvalidAssetNo(InvalidInput):
    code = "invalid_asset_no"
    message_zh = "资产编号只能包含字母、数字和 - _ / .，长度 2–40。"
    message_en = "Asset numbers use letters, digits and - _ / . only, 2–40 long."


class ReservedAssetNo(InvalidInput):
    code = "reserved_asset_no"
    message_zh = "资产编号不能包含保留词“{word}”（它是页面地址的一部分）。"
    message_en = "An asset number cannot contain the reserved word “{word}” (it is part of page addresses)."


class CommissioningInFuture(InvalidInput):
    code = "commissioning_in_future"
    message_zh = "投用日期不能晚于今天：仪器在投用时登记。"
    message_en = "The commissioning date cannot be after today: instruments are registered when commissioned."


class UnknownResponsible(InvalidInput):
    code = "unknown_responsible"
    message_zh = "责任人必须是在用的用户。"
    message_en = "The responsible person must be an active user."


class NoParameters(InvalidInput):
    code = "no_parameters"
    message_zh = "请至少登记一个可用于的检测参数。"
    message_en = "List at least one parameter the instrument may be used for."


class ValidUntilBeforePerformed(InvalidInput):
    code = "valid_until_before_performed"
    message_zh = "有效期至（{valid_until}）不能早于检定/校准日期（{performed_on}）。"
    message_en = "Valid until ({valid_until}) cannot be before the date performed ({performed_on})."


class DateInFuture(InvalidInput):
    code = "date_in_future"
    message_zh = "{what_zh}不能晚于现在。"
    message_en = "{what_en} cannot be in the future."


class DuplicateCertificateNo(DomainError):
    code = "duplicate_certificate_no"
    message_zh = "该仪器已有证书编号为 {certificate_no} 的记录。"
    message_en = "This instrument already has a record with certificate number {certificate_no}."


class RestrictionRequired(InvalidInput):
    code = "restriction_required"
    message_zh = "限制使用时必须写明限制内容，并列出仍可用于的参数。"
    message_en = "Restricted use needs the restriction and the parameters the instrument may still be used for."


class RestrictionOutsideUses(InvalidInput):
    code = "restriction_outside_uses"
    message_zh = "限用范围中的参数 {parameters} 不在该仪器的登记用途中。"
    message_en = "Parameters {parameters} of the restriction are not among the instrument's uses."


class ReasonRequired(InvalidInput):
    code = "reason_required"
    message_zh = "请填写原因。"
    message_en = "A reason is required."


class RecordSuperseded(DomainError):
    code = "record_superseded"
    message_zh = "该记录已被更正（第 {revision} 版），请在最新版本上操作。"
    message_en = "This record has been corrected (revision {revision}); act on the latest revision."


class NothingCorrected(InvalidInput):
    code = "nothing_corrected"
    message_zh = "更正内容与原记录相同。"
    message_en = "The correction changes nothing."


class NotResponsiblePerson(DomainError):
    code = "not_responsible_person"
    http_status = 403
    message_zh = "计量确认须由该仪器的责任人（{responsible}）签署。"
    message_en = "Metrological confirmation must be signed by the instrument's responsible person ({responsible})."


class AlreadyDecided(DomainError):
    code = "already_decided"
    message_zh = "该记录已有决定，不能重复签署。"
    message_en = "This record has already been decided."


class NothingToAccept(DomainError):
    code = "nothing_to_accept"
    message_zh = "不合格的证书无需计量确认：仪器已停用。"
    message_en = "A failed certificate needs no confirmation: the instrument is already out of service."


class InstrumentIsRetired(DomainError):
    code = "instrument_is_retired"
    message_zh = "仪器 {asset_no} 已报废，不能再添加记录。"
    message_en = "Instrument {asset_no} is retired; no further records can be added."


class AlreadyOutOfService(DomainError):
    code = "already_out_of_service"
    message_zh = "仪器 {asset_no} 已处于停用状态。"
    message_en = "Instrument {asset_no} is already out of service."


class InvalidMeasuredValue(InvalidInput):
    code = "invalid_measured_value"
    message_zh = "测得值必须是数字（如 0.502）。"
    message_en = "The measured value must be a number (e.g. 0.502)."


class ImpactAlreadyDecided(DomainError):
    code = "impact_already_decided"
    message_zh = "该影响评估已有处置决定。"
    message_en = "This impact assessment already has a disposition."


class JustificationRequired(InvalidInput):
    code = "justification_required"
    message_zh = "请写明处置理由。"
    message_en = "Write the justification for the disposition."


# ---------------------------------------------------------------- the usability gate


class InstrumentNotUsable(DomainError):
    """The gate's refusal. `reason` is the machine-readable cause (API `reason`)."""

    code = "instrument_not_usable"
    reason = "not_usable"
    message_zh = "仪器 {asset_no} 在 {at} 不可使用。"
    message_en = "Instrument {asset_no} could not be used at {at}."


class InstrumentOverdue(InstrumentNotUsable):
    code = "instrument_overdue"
    reason = "overdue"
    message_zh = "仪器 {asset_no} 在 {at} 已超过检定/校准有效期（到期 {due}），不能使用。"
    message_en = "Instrument {asset_no} was past its calibration due date ({due}) at {at} and cannot be used."


class InstrumentNeverCalibrated(InstrumentNotUsable):
    code = "instrument_not_calibrated"
    reason = "not_calibrated"
    message_zh = "仪器 {asset_no} 在 {at} 没有经确认的有效检定/校准证书，不能使用。"
    message_en = "Instrument {asset_no} had no accepted, valid calibration certificate at {at} and cannot be used."


class InstrumentOutOfService(InstrumentNotUsable):
    code = "instrument_out_of_service"
    reason = "out_of_service"
    message_zh = "仪器 {asset_no} 在 {at} 处于停用状态（{cause_zh}），不能使用。"
    message_en = "Instrument {asset_no} was out of service at {at} ({cause_en}) and cannot be used."


class InstrumentRetired(InstrumentNotUsable):
    code = "instrument_retired"
    reason = "retired"
    message_zh = "仪器 {asset_no} 在 {at} 已报废，不能使用。"
    message_en = "Instrument {asset_no} was retired at {at} and cannot be used."


class InstrumentNotCommissioned(InstrumentNotUsable):
    code = "instrument_not_commissioned"
    reason = "not_commissioned"
    message_zh = "仪器 {asset_no} 在 {at} 尚未投用（投用日期 {commissioned_on}）。"
    message_en = "Instrument {asset_no} was not yet commissioned at {at} (commissioned {commissioned_on})."


class InstrumentRestricted(InstrumentNotUsable):
    code = "instrument_restricted"
    reason = "restricted"
    message_zh = "仪器 {asset_no} 在 {at} 为限制使用（{restriction}），不能用于 {parameter}。"
    message_en = "Instrument {asset_no} was restricted at {at} ({restriction}) and cannot be used for {parameter}."


class InstrumentNotAssigned(InstrumentNotUsable):
    code = "instrument_not_assigned"
    reason = "not_assigned"
    message_zh = "仪器 {asset_no} 未登记用于参数 {parameter}。"
    message_en = "Instrument {asset_no} is not assigned to parameter {parameter}."


OUT_OF_SERVICE_CAUSES = {
    "failed_calibration": ("检定/校准不合格", "failed calibration"),
    "failed_check": ("期间核查不合格", "failed intermediate check"),
    "repair": ("维修后未重新检定/校准", "repaired, not yet recalibrated"),
    "decision": ("已决定停用", "taken out of service"),
}
