"""Refusals of the sites domain, each with its code and both languages. Nothing changes when one
is raised: the unit of work rolls back whatever the act had begun."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class SiteNotFound(NotFound):
    code = "site_not_found"
    message_zh = "找不到点位 {site_code}。"
    message_en = "No monitoring site {site_code}."


class ChangeRequestNotFound(NotFound):
    code = "site_request_not_found"
    message_zh = "找不到该点位变更申请。"
    message_en = "No such site change request."


class MalformedSiteCode(InvalidInput):
    code = "malformed_site_code"
    message_zh = "点位编码“{site_code}”无效：2–20 个大写字母、数字或连字符，以字母或数字开头和结尾。"
    message_en = ("The site code “{site_code}” is invalid: 2–20 capital letters, digits or dashes, "
                  "starting and ending with a letter or digit.")


class ReservedSiteCode(InvalidInput):
    code = "reserved_site_code"
    message_zh = "“{site_code}”是系统保留字（页面名、委托样品编号或标签条码的格式），不能作为点位编码。"
    message_en = ("“{site_code}” is reserved (a page name, the code of client samples or the form of a label "
                  "barcode) and cannot be a site code.")


class DuplicateSiteCode(DomainError):
    code = "duplicate_site_code"
    message_zh = "点位编码 {site_code} 已被使用。"
    message_en = "The site code {site_code} is already in use."


class FieldRequired(InvalidInput):
    code = "site_field_required"
    message_zh = "请填写{label_zh}。"
    message_en = "{label_en} is required."


class FieldTooLong(InvalidInput):
    code = "site_field_too_long"
    message_zh = "{label_zh}过长（最多 {limit} 个字符）。"
    message_en = "{label_en} is too long (at most {limit} characters)."


class UnknownChoice(InvalidInput):
    code = "unknown_choice"
    message_zh = "{label_zh}的取值“{value}”无效。"
    message_en = "“{value}” is not a valid {label_en}."


class BadCoordinate(InvalidInput):
    code = "bad_coordinate"
    message_zh = "{label_zh}“{value}”不是有效的十进制度数值（WGS-84，如 31.2304567）。"
    message_en = "The {label_en} “{value}” is not a decimal-degree number (WGS-84, e.g. 31.2304567)."


class CoordinateOutOfRange(InvalidInput):
    code = "coordinate_out_of_range"
    message_zh = "{label_zh} {value} 超出 WGS-84 范围（纬度 −90～90，经度 −180～180）。"
    message_en = "The {label_en} {value} is outside the WGS-84 range (latitude −90 to 90, longitude −180 to 180)."


class TooManyDecimals(InvalidInput):
    code = "coordinate_too_precise"
    message_zh = "{label_zh} {value} 的小数位超过 7 位（7 位约为 1 厘米）。"
    message_en = "The {label_en} {value} has more than 7 decimals (7 decimals are about 1 cm)."


class DuplicateParameter(InvalidInput):
    code = "duplicate_site_parameter"
    message_zh = "监测项目 {parameter} 重复填写。"
    message_en = "The parameter {parameter} is given twice."


class ParameterNotForKind(InvalidInput):
    code = "parameter_not_for_kind"
    message_zh = "监测项目 {parameters} 不适用于该类型点位（保存表中为{matrix_zh}参数）。"
    message_en = "The parameters {parameters} do not belong at a site of this kind (they are {matrix_en} parameters)."


class TooManyParameters(InvalidInput):
    code = "too_many_site_parameters"
    message_zh = "一个点位最多登记 {limit} 个监测项目。"
    message_en = "A site takes at most {limit} parameters."


class ReasonRequired(InvalidInput):
    code = "site_reason_required"
    message_zh = "请填写申请理由。"
    message_en = "Give the reason for the request."


class ProposalRequired(InvalidInput):
    code = "site_proposal_required"
    message_zh = "变更申请须附带完整的点位信息。"
    message_en = "A change request needs the complete site data it proposes."


class NothingChanged(InvalidInput):
    code = "site_nothing_changed"
    message_zh = "提出的点位信息与当前批准版本相同，无需申请变更。"
    message_en = "The proposal is the same as the approved version: there is nothing to change."


class ChangeNotAllowed(DomainError):
    code = "site_change_not_allowed"
    message_zh = "点位 {site_code} 当前状态为“{status_zh}”，不能申请“{kind_zh}”。"
    message_en = "Site {site_code} is {status_en}: a “{kind_en}” request is not possible."


class RequestAlreadyOpen(DomainError):
    code = "site_request_open"
    message_zh = "点位 {site_code} 已有一份待决定的变更申请（#{request_id}），请先等待决定或撤回。"
    message_en = ("Site {site_code} already has a change request awaiting decision (#{request_id}); "
                  "wait for it or withdraw it.")


class RequestAlreadyDecided(DomainError):
    code = "site_request_decided"
    message_zh = "该申请已是“{status_zh}”状态，不能再次决定或撤回。"
    message_en = "This request is already {status_en}; it cannot be decided or withdrawn again."


class DeciderIsProposer(DomainError):
    code = "site_self_approval"
    message_zh = "申请人不能决定自己提出的点位变更申请，须由另一位质量负责人决定。"
    message_en = "The proposer of a site change cannot decide it; another quality manager must."


class NotTheProposer(DomainError):
    code = "site_request_not_yours"
    http_status = 403
    message_zh = "只有申请人本人可以撤回该申请。"
    message_en = "Only the proposer may withdraw this request."


class DecisionRefRequired(InvalidInput):
    code = "site_decision_ref_required"
    message_zh = "批准须填写批准部门的文号（如 环监字〔2026〕12号）。"
    message_en = "An approval needs the approving department's reference (e.g. 环监字〔2026〕12号)."


class RejectionNoteRequired(InvalidInput):
    code = "site_rejection_note_required"
    message_zh = "驳回须填写说明。"
    message_en = "A rejection needs a note saying why."


class RetroactiveChange(InvalidInput):
    code = "site_change_retroactive"
    message_zh = "生效时间不能早于决定时间（{now}）：已采集的样品仍对应当时有效的点位版本，不得追溯变更。"
    message_en = ("The change cannot take effect before the decision ({now}): samples already taken stay "
                  "bound to the version in force then, so no change is retroactive.")


class EffectiveBeforeLatest(InvalidInput):
    code = "site_change_before_latest"
    message_zh = "生效时间不能早于点位最新版本 v{version_no} 的生效时间（{valid_from}）。"
    message_en = "The change cannot take effect before the latest version v{version_no} does ({valid_from})."


class SiteNotYetActive(DomainError):
    code = "site_not_yet_active"
    message_zh = "点位 {site_code} 在 {at} 尚无批准的版本（未生效），不能在此点位采样。"
    message_en = "Site {site_code} had no approved version in force at {at}: no samples can be taken there."


class SiteNotActive(DomainError):
    code = "site_not_active"
    message_zh = "点位 {site_code} 在 {at} 的状态为“{status_zh}”（版本 v{version_no}），不能在此点位采样。"
    message_en = "Site {site_code} was {status_en} at {at} (version v{version_no}): no samples can be taken there."
