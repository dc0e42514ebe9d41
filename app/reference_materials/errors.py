"""Refusals of the reference-materials domain, each with its code and both languages."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class MaterialNotFound(NotFound):
    code = "material_not_found"
    message_zh = "找不到标准物质 {certificate_no}。"
    message_en = "No reference material {certificate_no}."


class ItemNotFound(NotFound):
    code = "item_not_found"
    message_zh = "找不到条码为 {barcode} 的标准物质、标准溶液或试剂。"
    message_en = "No reference material unit, standard solution or reagent has the barcode {barcode}."


class LotNotFound(NotFound):
    code = "lot_not_found"
    message_zh = "找不到该标准物质批次。"
    message_en = "No such lot."


class DuplicateMaterial(DomainError):
    code = "duplicate_material"
    message_zh = "证书编号 {certificate_no} 的标准物质已登记。"
    message_en = "A reference material with certificate number {certificate_no} is already registered."


class DuplicateLot(DomainError):
    code = "duplicate_lot"
    message_zh = "{certificate_no} 的批号 {lot_no} 已登记。"
    message_en = "Lot {lot_no} of {certificate_no} is already registered."


class NoCertifiedValue(InvalidInput):
    code = "no_certified_value"
    message_zh = "批次至少要有一个带不确定度的认定值。"
    message_en = "A lot needs at least one certified value with its uncertainty."


class DuplicateAnalyte(InvalidInput):
    code = "duplicate_analyte"
    message_zh = "组分 {analyte} 重复填写。"
    message_en = "The analyte {analyte} is given twice."


class BadDecimal(InvalidInput):
    code = "bad_number"
    message_zh = "{field} 不是有效数值：{value}。"
    message_en = "{field} is not a number: {value}."


class ReasonRequired(InvalidInput):
    code = "reason_required"
    message_zh = "请填写原因。"
    message_en = "A reason is required."


class WrongState(DomainError):
    code = "material_wrong_state"
    message_zh = "{barcode} 当前状态为“{state_zh}”，不能{act_zh}。"
    message_en = "{barcode} is {state_en}: it cannot be {act_en}."


class LotWithdrawn(DomainError):
    code = "lot_withdrawn"
    message_zh = "该批次已撤销，状态不能再更改。"
    message_en = "The lot has been withdrawn; its status cannot change any more."


class InsufficientQuantity(DomainError):
    code = "insufficient_quantity"
    message_zh = "{barcode} 剩余 {remaining}，不够本次用量 {quantity}。"
    message_en = "{barcode} has {remaining} left, less than the {quantity} to be used."


class QuantityUnitMismatch(InvalidInput):
    code = "quantity_unit_mismatch"
    message_zh = "用量单位 {unit} 与库存单位 {stock_unit} 不能换算。"
    message_en = "The amount's unit {unit} does not convert into the stock unit {stock_unit}."


class AnalyteNotInParent(InvalidInput):
    code = "analyte_not_in_parent"
    message_zh = "母液 {barcode} 没有组分 {analyte} 的认定值或浓度。"
    message_en = "The parent {barcode} has no certified value or concentration of {analyte}."


class MaterialNotUsable(DomainError):
    """The gate's refusal. `reason` is the machine-readable cause (API `reason`)."""

    code = "material_not_usable"
    reason = "not_usable"
    message_zh = "{barcode} 在 {at} 不可使用。"
    message_en = "{barcode} could not be used at {at}."


class MaterialExpired(MaterialNotUsable):
    code = "material_expired"
    reason = "expired"
    message_zh = "{barcode} 在 {at} 已过有效期（有效期至 {expires}），不能使用。"
    message_en = "{barcode} had expired at {at} (valid until {expires}) and cannot be used."


class MaterialUsedUp(MaterialNotUsable):
    code = "material_used_up"
    reason = "used_up"
    message_zh = "{barcode} 在 {at} 已用完。"
    message_en = "{barcode} was used up at {at}."


class MaterialDisposed(MaterialNotUsable):
    code = "material_disposed"
    reason = "disposed"
    message_zh = "{barcode} 在 {at} 已处置（报废），不能使用。"
    message_en = "{barcode} had been disposed of at {at} and cannot be used."


class MaterialNotOpened(MaterialNotUsable):
    code = "material_not_opened"
    reason = "not_opened"
    message_zh = "{barcode} 在 {at} 尚未开封：请先登记开封（开封人与时间）。"
    message_en = "{barcode} had not been opened at {at}: record its opening (who and when) first."


class MaterialNotYetAvailable(MaterialNotUsable):
    code = "material_not_yet_available"
    reason = "not_received"
    message_zh = "{barcode} 在 {at} 尚未入库或配制（{since}）。"
    message_en = "{barcode} did not exist in the lab yet at {at} (received or prepared {since})."


class LotQuarantined(MaterialNotUsable):
    code = "material_lot_quarantined"
    reason = "quarantined"
    message_zh = "{barcode} 所属批次在 {at} 处于隔离（暂停使用）状态：{cause}"
    message_en = "The lot of {barcode} was quarantined at {at}: {cause}"


class LotWithdrawnAtUse(MaterialNotUsable):
    code = "material_lot_withdrawn"
    reason = "withdrawn"
    message_zh = "{barcode} 所属批次在 {at} 已撤销：{cause}"
    message_en = "The lot of {barcode} had been withdrawn at {at}: {cause}"
