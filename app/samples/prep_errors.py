"""Refusals of sample preparation (aliquots, preparation batches, signing), each with its code and
both languages. Every one changes nothing: services raise them before writing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- aliquots


class SampleNotInLab(DomainError):
    """The sample is not (or no longer) at the bench: not received yet, or past preparation."""

    code = "prep_sample_not_in_lab"
    http_status = 409
    message_zh = ("样品 {sample_no} 当前状态为“{state_zh}”：只有已接收（含有条件接收）、在库或制备中的样品"
                  "才能分取和制备。")
    message_en = ("Sample {sample_no} is {state_en}: only samples received (also conditionally), in storage or "
                  "in preparation can be divided and prepared.")


class SampleRejected(DomainError):
    code = "prep_sample_rejected"
    http_status = 409
    message_zh = "样品 {sample_no} 在接收时已被拒收，不能分取或制备。"
    message_en = "Sample {sample_no} was rejected at receipt; it cannot be divided or prepared."


class SampleDisposed(DomainError):
    code = "prep_sample_disposed"
    http_status = 409
    message_zh = "样品 {sample_no} 已处置，不能分取或制备。"
    message_en = "Sample {sample_no} has been disposed of; it cannot be divided or prepared."


class ContainerUnusable(DomainError):
    code = "prep_container_unusable"
    http_status = 409
    message_zh = "容器 {barcode} 已{state_zh}，不能再分取或制备。"
    message_en = "Container {barcode} is {state_en}; nothing more can be taken from it."


class AliquotUnitUnknown(InvalidInput):
    code = "aliquot_unit_unknown"
    message_zh = "单位 {unit} 无效：分取量请用 mL（体积）或 g（质量）。"
    message_en = "Unknown unit {unit}: give the amount in mL (volume) or g (mass)."


class AliquotUnitMismatch(InvalidInput):
    code = "aliquot_unit_mismatch"
    message_zh = "容器 {barcode} 按 {parent_unit} 计量，不能以 {unit} 分取：请用 {parent_unit}。"
    message_en = "Container {barcode} is measured in {parent_unit}; an amount in {unit} cannot be taken from it."


class AliquotExceedsRemaining(DomainError):
    code = "aliquot_exceeds_remaining"
    http_status = 409
    message_zh = "容器 {barcode} 仅剩 {remaining} {unit}，不够分取 {amount} {unit}。"
    message_en = "Container {barcode} has {remaining} {unit} left, less than the {amount} {unit} asked."


class AliquotKindUnknown(InvalidInput):
    code = "aliquot_kind_unknown"
    message_zh = "分样类型无效：{kind}（应为 aliquot 分取样或 sub_sample 子样）。"
    message_en = "Unknown kind {kind}: an aliquot or a sub-sample."


class ActBeforeReceipt(DomainError):
    code = "prep_act_before_receipt"
    http_status = 422
    message_zh = "{field_zh} {at} 早于样品 {sample_no} 的接收时间 {received}：请核对时间。"
    message_en = "{field_en} {at} is before sample {sample_no} was received ({received}): check the time."


class NotAnAliquot(NotFound):
    code = "not_an_aliquot"
    message_zh = "{barcode} 不是分取样或子样，没有分样标签。"
    message_en = "{barcode} is not an aliquot or a sub-sample; it has no aliquot label."


# ---------------------------------------------------------------- batches


class PrepBatchNotFound(NotFound):
    code = "prep_batch_not_found"
    message_zh = "找不到制备批次 {batch}。"
    message_en = "No preparation batch {batch}."


class PrepKindUnknown(InvalidInput):
    code = "prep_kind_unknown"
    message_zh = "制备类型无效：{kind}。"
    message_en = "Unknown kind of preparation: {kind}."


class PrepMethodWithoutYear(InvalidInput):
    code = "prep_method_without_year"
    message_zh = "方法须写明标准编号及年号，例如 HJ 677-2013：{method}"
    message_en = "Give the method standard with its year, e.g. HJ 677-2013: {method}"


class PrepParametersRequired(InvalidInput):
    code = "prep_parameters_required"
    message_zh = "请填写本批次制备所针对的检测项目（如 Cu Zn Pb Cd）。"
    message_en = "Give the parameters the batch is prepared for (e.g. Cu Zn Pb Cd)."


class PrepBatchClosed(DomainError):
    code = "prep_batch_closed"
    http_status = 409
    message_zh = "制备批次 {batch} 已签名关闭，不能再添加或更改。"
    message_en = "Preparation batch {batch} is closed and signed; nothing can be added or changed."


class ContainerAlreadyInBatch(DomainError):
    code = "prep_container_already_in_batch"
    http_status = 409
    message_zh = "容器 {barcode} 已在制备批次 {batch} 中（第 {position} 位），同一份样品不能再用一次。"
    message_en = ("Container {barcode} is already in preparation batch {batch} (position {position}); it cannot be "
                  "used twice.")


class ContainerNotForBatch(DomainError):
    code = "prep_container_not_for_batch"
    http_status = 409
    message_zh = "容器 {barcode} 所装样品用于 {container_parameters}，不含本批次的检测项目 {batch_parameters}。"
    message_en = ("Container {barcode} holds sample for {container_parameters}, none of the batch's parameters "
                  "{batch_parameters}.")


class PrepActBeforeOpening(DomainError):
    code = "prep_act_before_opening"
    http_status = 422
    message_zh = "{field_zh} {at} 早于制备批次 {batch} 的开始时间 {opened}。"
    message_en = "{field_en} {at} is before preparation batch {batch} was opened ({opened})."


class StandardRequired(InvalidInput):
    code = "prep_spike_standard_required"
    message_zh = "加标样须扫描所用标准溶液或标准物质的条码，并填写加入量。"
    message_en = "A spike needs the barcode of the standard solution or reference material added and the amount."


class NotThePreparer(DomainError):
    code = "prep_not_the_preparer"
    http_status = 403
    message_zh = "制备批次 {batch} 由 {preparer} 开始，只能由其本人签名关闭。"
    message_en = "Preparation batch {batch} was opened by {preparer}; only they can close and sign it."


class PrepBatchIncomplete(DomainError):
    code = "prep_batch_incomplete"
    http_status = 409
    message_zh = "制备批次 {batch} 还不能关闭，缺少：{missing_zh}。"
    message_en = "Preparation batch {batch} cannot be closed yet; it lacks {missing_en}."
