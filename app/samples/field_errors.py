"""Refusals of the field record (entries, photos, signing), each with its code and both languages.

Every refusal changes nothing: the phone keeps what it queued and shows the message.
"""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, PayloadTooLarge


class BadClientId(InvalidInput):
    code = "bad_client_id"
    message_zh = "客户端编号 client_id 无效：需要 8–64 个字母、数字、- 或 _ 字符。"
    message_en = "Invalid client_id: 8–64 letters, digits, - or _ expected."


class ClientIdReused(DomainError):
    code = "client_id_reused"
    http_status = 409
    message_zh = "客户端编号 {client_id} 已用于另一条内容不同的记录；同一编号只能提交同一内容。"
    message_en = "The client id {client_id} was already used for a record with different content."


class UnknownEntryKind(InvalidInput):
    code = "unknown_field_entry_kind"
    message_zh = "现场记录类型无效：{kind}（应为 sampling、observation、field_test 或 container）。"
    message_en = "Unknown field entry kind {kind} (sampling, observation, field_test or container expected)."


class NoSamplerAssigned(DomainError):
    code = "no_sampler_assigned"
    http_status = 409
    message_zh = "样品 {sample_no} 尚未指派采样员，不能填写现场记录；请先指派采样员。"
    message_en = "No sampler is assigned to sample {sample_no}; assign one before recording in the field."


class NotYourSample(DomainError):
    code = "not_your_sample"
    http_status = 403
    message_zh = "样品 {sample_no} 指派给了其他采样员，只有其采样员可以填写或签署现场记录。"
    message_en = "Sample {sample_no} is assigned to another sampler; only its sampler records or signs in the field."


class FieldRecordClosed(DomainError):
    code = "field_record_closed"
    http_status = 409
    message_zh = "样品 {sample_no} 当前状态为“{state}”，现场记录不能再更改。"
    message_en = "Sample {sample_no} is {state}: its field record can no longer be changed."


class TaskNotInField(DomainError):
    code = "task_not_in_field"
    http_status = 409
    message_zh = "采样任务 {task_code} 当前状态为“{state}”，不能填写现场记录（需要已下达的任务）。"
    message_en = "Sampling task {task_code} is {state}: field records need a dispatched task."


class ReasonRequiredAfterSigning(InvalidInput):
    code = "reason_required_after_signing"
    message_zh = "样品 {sample_no} 的现场记录已签署，之后的更改是新的修订，必须填写原因。"
    message_en = "The field record of {sample_no} is signed: a change is a new revision and needs a reason."


class ActTimeNotAware(InvalidInput):
    code = "act_time_without_offset"
    message_zh = "现场时间必须带时区（例如 2026-05-01T09:30:00+08:00）。"
    message_en = "The time of the act needs its time-zone offset (e.g. 2026-05-01T09:30:00+08:00)."


class ActTimeInFuture(InvalidInput):
    code = "act_time_in_future"
    message_zh = "时间 {at} 晚于当前时间 {now}（实验室时间）：现场记录不能填写将来的时间。"
    message_en = "The time {at} is after now ({now}, lab time): a field record cannot be in the future."


class ActTimeTooEarly(InvalidInput):
    code = "act_time_too_early"
    message_zh = "时间 {at} 早于 {earliest}（样品登记日的前一天）：请检查日期。"
    message_en = "The time {at} is before {earliest} (the day before the sample was registered): check the date."


class GpsStatusRequired(InvalidInput):
    code = "gps_status_invalid"
    message_zh = "定位状态无效：{status}（应为 ok、denied、unavailable 或 unsupported）。"
    message_en = "Invalid GPS status {status} (ok, denied, unavailable or unsupported expected)."


class GpsFixIncomplete(InvalidInput):
    code = "gps_fix_incomplete"
    message_zh = "定位成功时需要纬度、经度和精度（米）。"
    message_en = "A GPS fix needs latitude, longitude and accuracy (m)."


class GpsPositionInvented(InvalidInput):
    code = "gps_position_without_fix"
    message_zh = "定位状态为“{status}”时不能填写坐标：位置不能编造。"
    message_en = "GPS status {status} comes without coordinates: a position is never invented."


class PositionOutOfRange(InvalidInput):
    code = "position_out_of_range"
    message_zh = "坐标超出 WGS-84 范围（纬度 −90…90，经度 −180…180）。"
    message_en = "The position is outside WGS-84 ranges (latitude −90…90, longitude −180…180)."


class BadAccuracy(InvalidInput):
    code = "gps_accuracy_invalid"
    message_zh = "定位精度必须大于 0 且不超过 100000 米。"
    message_en = "The GPS accuracy must be above 0 and at most 100000 m."


class BadFieldNumber(InvalidInput):
    code = "bad_number"
    message_zh = "{field} 不是有效数值：{value}。"
    message_en = "{field} is not a number: {value}."


class AirTemperatureOutOfRange(InvalidInput):
    code = "air_temperature_out_of_range"
    message_zh = "气温 {value} °C 超出 −50…60 °C。"
    message_en = "Air temperature {value} °C is outside −50…60 °C."


class TextTooLong(InvalidInput):
    code = "text_too_long"
    message_zh = "{field} 超过 {limit} 个字符。"
    message_en = "{field} is longer than {limit} characters."


class EmptyObservation(InvalidInput):
    code = "empty_observation"
    message_zh = "请填写天气、气温或现场情况中的至少一项。"
    message_en = "Give the weather, the air temperature or an observation."


class NotAFieldTest(InvalidInput):
    code = "not_a_field_test"
    message_zh = "{parameter} 不是样品保存表中的现场测试项目。"
    message_en = "{parameter} is not a field test in the preservation table."


class FieldTestNotRequested(InvalidInput):
    code = "field_test_not_requested"
    message_zh = "样品 {sample_no} 未要求测定 {parameter}。"
    message_en = "{parameter} was not requested for sample {sample_no}."


class WrongFieldUnit(InvalidInput):
    code = "wrong_field_unit"
    message_zh = "{parameter} 的单位不能是 {unit}：请以 {expected} 填写。"
    message_en = "{parameter} cannot be entered in {unit}: enter it in {expected}."


class FieldValueOutOfRange(InvalidInput):
    code = "field_value_out_of_range"
    message_zh = "{parameter} = {value} {unit} 超出物理范围 {low}…{high} {unit}：请检查读数。"
    message_en = "{parameter} = {value} {unit} is outside the physical range {low}…{high} {unit}: check the reading."


class FieldInstrumentRequired(InvalidInput):
    code = "field_instrument_required"
    message_zh = "现场测试需要扫描所用仪器的资产编号。"
    message_en = "A field test needs the asset number of the instrument used (scan it)."


class BarcodeRequired(InvalidInput):
    code = "barcode_required"
    message_zh = "请扫描或输入容器条码。"
    message_en = "Scan or type the container barcode."


class ContainerOfAnotherSample(DomainError):
    code = "container_of_another_sample"
    http_status = 409
    message_zh = "容器 {barcode} 属于样品 {owner_sample}（任务 {owner_task}），不属于样品 {sample_no}。"
    message_en = "Container {barcode} belongs to sample {owner_sample} (task {owner_task}), not to sample {sample_no}."


class ContainerOfAnotherTask(DomainError):
    code = "container_of_another_task"
    http_status = 409
    message_zh = "容器 {barcode} 属于样品 {owner_sample}（任务 {owner_task}），不属于任务 {task_code}。"
    message_en = "Container {barcode} belongs to sample {owner_sample} (task {owner_task}), not to task {task_code}."


class ContainerWrongState(DomainError):
    code = "container_wrong_state"
    http_status = 409
    message_zh = "容器 {barcode} 当前状态为“{state}”，不能在现场装样。"
    message_en = "Container {barcode} is {state}: it cannot be filled in the field."


class FieldRecordIncomplete(DomainError):
    code = "field_record_incomplete"
    http_status = 409
    message_zh = "样品 {sample_no} 的现场记录尚不完整，不能签署：{missing_zh}。"
    message_en = "The field record of {sample_no} is not complete and cannot be signed: {missing_en}."


class NothingNewToSign(DomainError):
    code = "nothing_new_to_sign"
    http_status = 409
    message_zh = "样品 {sample_no} 的现场记录自上次签署后没有新的修订，无需再次签署。"
    message_en = "The field record of {sample_no} has no new revision since it was last signed."


class PhotoTooLarge(PayloadTooLarge):
    code = "photo_too_large"
    message_zh = "照片大于 {limit_mb} MB，请降低相机分辨率后重拍或压缩后上传。"
    message_en = "The photo is larger than {limit_mb} MB; lower the camera resolution or compress it."


class PhotoNotAnImage(InvalidInput):
    code = "photo_not_an_image"
    message_zh = "上传的文件不是 JPEG 或 PNG 图片。"
    message_en = "The upload is not a JPEG or PNG image."


class PhotoCorrupt(InvalidInput):
    code = "photo_corrupt"
    message_zh = "照片文件已损坏，无法读取，请重新拍摄或上传。"
    message_en = "The photo is damaged and cannot be read; take or upload it again."


class PhotoNotFound(DomainError):
    code = "photo_not_found"
    http_status = 404
    message_zh = "找不到该照片。"
    message_en = "No such photo."
