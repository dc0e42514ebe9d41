"""Refusals of storage, moves, retention and disposal (issue 7 item 4), each with its code and
both languages. Refusals of the custody primitive itself (a full or inactive location, a closed
container) are in app.samples.custody."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- locations


class LocationNotFound(NotFound):
    code = "storage_location_not_found"
    message_zh = "找不到存放位置 {location_code}。"
    message_en = "No storage location has the code {location_code}."


class NotALocationCode(InvalidInput):
    code = "not_a_location_code"
    message_zh = "“{location_code}” 不是存放位置条码（格式如 LC26-000013）；请扫描货架或冰箱上的位置标签。"
    message_en = ("“{location_code}” is not a storage location code (they look like LC26-000013); "
                  "scan the location's label.")


class LocationCheckDigit(InvalidInput):
    code = "location_check_digit"
    message_zh = "位置条码 {location_code} 的校验位不对：可能输错或扫错了一位，请重新扫描。"
    message_en = "Mistyped or misread: the check digit of location {location_code} is wrong. Scan again."


class LocationPositionTaken(DomainError):
    code = "storage_position_taken"
    http_status = 409
    message_zh = "存放位置 {name} 已经登记过（编码 {location_code}）。"
    message_en = "The storage location {name} is already registered (code {location_code})."


class TemperatureRangeInverted(InvalidInput):
    code = "storage_temperature_range_inverted"
    message_zh = "温度范围无效：下限 {low} °C 高于上限 {high} °C。"
    message_en = "The temperature range is inverted: the lower bound {low} °C is above the upper bound {high} °C."


class CapacityInvalid(InvalidInput):
    code = "storage_capacity_invalid"
    message_zh = "容量须为 1–100000 的整数（可以留空表示不限）：{value}"
    message_en = "The capacity must be a whole number from 1 to 100000 (or empty for no limit): {value}"


class LocationNotEmpty(DomainError):
    code = "storage_location_not_empty"
    http_status = 409
    message_zh = "存放位置 {name} 还放着 {count} 个容器，清空后才能停用。"
    message_en = "Storage location {name} still holds {count} containers; empty it before taking it out of use."


class LocationAlreadyInactive(DomainError):
    code = "storage_location_already_inactive"
    http_status = 409
    message_zh = "存放位置 {name} 已经停用。"
    message_en = "Storage location {name} is already out of use."


# ---------------------------------------------------------------- moves


class TooManyScans(InvalidInput):
    code = "storage_too_many_scans"
    message_zh = "一次最多扫描 {limit} 个容器（本次 {count} 个）。"
    message_en = "At most {limit} containers can be moved at once (this was {count})."


class ContainerNotReceived(DomainError):
    code = "container_not_received"
    http_status = 409
    message_zh = "容器 {barcode} 尚未接收（当前：{state_zh}）：请先在接收处扫描并签收，再入库。"
    message_en = "Container {barcode} has not been received (it is {state_en}): receive it first, then store it."


class ContainerNotStorable(DomainError):
    code = "container_not_storable"
    http_status = 409
    message_zh = "容器 {barcode} 已{state_zh}，不能再入库或移动。"
    message_en = "Container {barcode} is {state_en}; it cannot be stored or moved any more."


class ContainerNotInStorage(DomainError):
    code = "container_not_in_storage"
    http_status = 409
    message_zh = "容器 {barcode} 不在任何存放位置中（现在在 {where} 手中），不能从库中取出。"
    message_en = "Container {barcode} is not in a storage location (it is with {where}); it cannot be taken out."


class ContainerNotWithYou(DomainError):
    code = "container_not_with_you"
    http_status = 409
    message_zh = "容器 {barcode} 不在您手中（现在在 {where}），不能由您归还。"
    message_en = "Container {barcode} is not with you (it is with {where}); you cannot give it back."


class ReturnTargetRequired(InvalidInput):
    code = "return_target_required"
    message_zh = "请扫描要放回的存放位置，或选择接收的样品管理员（只能选一个）。"
    message_en = "Scan the storage location to put it back into, or choose the custodian who takes it (one of them)."


class NotACustodian(DomainError):
    code = "return_taker_not_custodian"
    http_status = 422
    message_zh = "{name} 在该时间不是样品管理员，不能接收归还的样品。"
    message_en = "{name} is not a custodian at that time and cannot take samples back."


class UnknownScanCode(NotFound):
    code = "storage_code_unknown"
    message_zh = "“{scanned}” 既不是容器条码，也不是样品编号。"
    message_en = "“{scanned}” is neither a container barcode nor a sample number."


# ---------------------------------------------------------------- retention


class RetentionDaysInvalid(InvalidInput):
    code = "retention_days_invalid"
    message_zh = "留样天数须为 1–36500 的整数：{value}"
    message_en = "The retention must be a whole number of days from 1 to 36500: {value}"


class RetentionRuleScopeRequired(InvalidInput):
    code = "retention_rule_scope_required"
    message_zh = "请填写委托单位或选择样品类型：两者都不填的规则就是默认留样期（系统设置）。"
    message_en = "Give a client or a matrix: a rule for neither is the default retention (a setting)."


class RetentionRuleExists(DomainError):
    code = "retention_rule_exists"
    http_status = 409
    message_zh = "已有相同范围的留样规则（委托单位“{client}”，样品类型“{matrix}”）：请修改那条规则。"
    message_en = "A retention rule for the same client (“{client}”) and matrix (“{matrix}”) exists: change that one."


class RetentionRuleNotFound(NotFound):
    code = "retention_rule_not_found"
    message_zh = "找不到这条留样规则（可能已被删除）。"
    message_en = "This retention rule does not exist (it may have been removed)."


class UnknownMatrix(InvalidInput):
    code = "retention_matrix_unknown"
    message_zh = "样品类型无效：{value}"
    message_en = "Unknown matrix: {value}"


class RetentionOfDisposedSample(DomainError):
    code = "retention_sample_disposed"
    http_status = 409
    message_zh = "样品 {sample_no} 已处置，不能再开始留样期。"
    message_en = "Sample {sample_no} has been disposed of; its retention cannot start again."


# ---------------------------------------------------------------- disposal


class DisposalNotFound(NotFound):
    code = "disposal_not_found"
    message_zh = "找不到处置申请 {request_code}。"
    message_en = "No disposal request has the code {request_code}."


class NothingToDispose(InvalidInput):
    code = "disposal_no_samples"
    message_zh = "请选择或填写要处置的样品编号。"
    message_en = "Choose or type the numbers of the samples to dispose of."


class SampleWithinRetention(DomainError):
    code = "disposal_within_retention"
    http_status = 409
    message_zh = "样品 {sample_no} 的留样期到 {until} 才结束，不能处置。"
    message_en = "Sample {sample_no} is retained until {until}; it cannot be disposed of before."


class SampleNotReported(DomainError):
    code = "disposal_not_reported"
    http_status = 409
    message_zh = "样品 {sample_no} 尚未出具报告（留样期未开始），不能处置。"
    message_en = ("Sample {sample_no} has not been reported yet (its retention has not started); "
                  "it cannot be disposed of.")


class SampleAlreadyDisposed(DomainError):
    code = "disposal_sample_disposed"
    http_status = 409
    message_zh = "样品 {sample_no} 已经处置。"
    message_en = "Sample {sample_no} has already been disposed of."


class SampleInOpenDisposal(DomainError):
    code = "disposal_sample_in_open_request"
    http_status = 409
    message_zh = "样品 {sample_no} 已在处置申请 {request_code} 中（尚未完成）。"
    message_en = "Sample {sample_no} is already in disposal request {request_code}, which is still open."


class DisposalSelfApproval(DomainError):
    code = "disposal_self_approval"
    http_status = 409
    message_zh = "申请人不能批准自己提出的处置申请，须由另一位质量负责人决定。"
    message_en = "Whoever requested a disposal cannot decide it; another quality manager must."


class DisposalNotRequested(DomainError):
    code = "disposal_already_decided"
    http_status = 409
    message_zh = "处置申请 {request_code} 当前为“{state_zh}”，不能再次决定。"
    message_en = "Disposal request {request_code} is {state_en}; it cannot be decided again."


class DisposalNotApproved(DomainError):
    code = "disposal_not_approved"
    http_status = 409
    message_zh = "处置申请 {request_code} 当前为“{state_zh}”：只有经质量负责人批准的申请才能执行处置。"
    message_en = "Disposal request {request_code} is {state_en}: only an approved request can be carried out."


class DisposalBeforeDecision(DomainError):
    code = "disposal_before_approval"
    http_status = 422
    message_zh = "处置时间 {at} 早于批准时间 {approved}：请核对时间。"
    message_en = "The disposal time {at} is before the approval ({approved}): check the time."


class DecisionBeforeRequest(DomainError):
    code = "disposal_decision_before_request"
    http_status = 422
    message_zh = "决定时间 {at} 早于申请时间 {requested}：请核对时间。"
    message_en = "The decision time {at} is before the request ({requested}): check the time."


class TooManyForDisposal(InvalidInput):
    code = "disposal_too_many_samples"
    message_zh = "一次处置申请最多 {limit} 个样品（本次 {count} 个）。"
    message_en = "A disposal request holds at most {limit} samples (this was {count})."
