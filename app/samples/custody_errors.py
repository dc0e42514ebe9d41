"""Refusals of custody by scanning: hand-overs, shipments (coolers), the custody API.

Each names what is wrong in both languages and changes nothing (the unit of work rolls back).
The refusals shared with receipt and storage (a closed container, the same party on both sides,
a full location) are in app.samples.custody; the input ones (times, temperatures) in lab_input.
"""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class HandoverActorNotParty(DomainError):
    code = "handover_actor_not_party"
    http_status = 403
    message_zh = "只有交出方或接收方本人可以记录这次交接（您既不是交出方也不是接收方）。"
    message_en = "Only the giver or the taker may record this hand-over (you are neither)."


class CustodyPartyRequired(InvalidInput):
    code = "custody_party_required"
    message_zh = "请指定{side_zh}：一位人员，或一个地点/承运方（如“顺丰 SF1234567890”）。"
    message_en = "Name the {side_en}: a person, or a place or carrier (e.g. \"SF Express SF1234567890\")."


class CustodyPartyAmbiguous(InvalidInput):
    code = "custody_party_ambiguous"
    message_zh = "{side_zh}只能是一位人员或一个地点，不能同时填写。"
    message_en = "The {side_en} is either a person or a place, not both."


class CustodyUserUnknown(InvalidInput):
    code = "custody_user_unknown"
    message_zh = "未找到用户 {user}。"
    message_en = "No user {user}."


class TakerNotAllowed(DomainError):
    code = "custody_taker_not_allowed"
    http_status = 409
    message_zh = "{name} 在 {at} 不能接收样品：该用户已停用或没有样品交接权限。"
    message_en = "{name} cannot take samples at {at}: the account is inactive or holds no custody permission."


class ContainerRejectedForCustody(DomainError):
    code = "container_rejected_no_custody"
    http_status = 409
    message_zh = "容器 {barcode} 的样品已在接收时被拒收，不能再交接或装箱。"
    message_en = "Container {barcode} belongs to a sample rejected at receipt; it cannot be handed over or packed."


class SampleClosedForCustody(DomainError):
    code = "sample_closed_for_custody"
    http_status = 409
    message_zh = "容器 {barcode} 的样品 {sample_no} 已{state_zh}，不能再交接。"
    message_en = "Container {barcode} belongs to sample {sample_no}, which is {state_en}; it cannot be handed over."


class ContainerPacked(DomainError):
    code = "container_packed_in_shipment"
    http_status = 409
    message_zh = "容器 {barcode} 已装入正在装箱的运输箱 {shipment}：请随箱交接，或先从箱中取出。"
    message_en = ("Container {barcode} is packed in shipment {shipment}, which is still being packed: hand the "
                  "shipment over, or scan the container out first.")


class TooManyBarcodes(InvalidInput):
    code = "too_many_barcodes"
    message_zh = "一次最多扫描 {limit} 个条码（本次 {count} 个）。"
    message_en = "At most {limit} barcodes can be scanned at once (this was {count})."


class CustodyClientIdReused(DomainError):
    code = "custody_client_id_reused"
    http_status = 409
    message_zh = "编号 {client_id} 已用于另一内容不同的交接记录：同一次交接的重发须内容完全相同。"
    message_en = ("The id {client_id} was already used for a different hand-over: a resend of the same hand-over "
                  "must be identical.")


class BadCustodyClientId(InvalidInput):
    code = "bad_custody_client_id"
    message_zh = "交接记录编号无效：需要 8–64 个字母、数字或 _ . : - 字符。"
    message_en = "Invalid hand-over id: 8–64 letters, digits or _ . : - expected."


# ---------------------------------------------------------------- shipments


class ShipmentNotFound(NotFound):
    code = "shipment_not_found"
    message_zh = "未找到运输箱 {shipment}。"
    message_en = "Shipment {shipment} not found."


class ShipmentWrongCheckDigit(InvalidInput):
    code = "shipment_wrong_check_digit"
    message_zh = "运输箱编号 {shipment} 的校验位不对：可能输错或扫错，请重新扫描。"
    message_en = "The check digit of shipment code {shipment} is wrong: mistyped or misread, scan it again."


class ShipmentNotPacking(DomainError):
    code = "shipment_not_packing"
    http_status = 409
    message_zh = "运输箱 {shipment} 已{state_zh}，不能再装入或取出容器。"
    message_en = "Shipment {shipment} is {state_en}; containers can no longer be scanned in or out."


class ShipmentClosed(DomainError):
    code = "shipment_closed"
    http_status = 409
    message_zh = "运输箱 {shipment} 已{state_zh}，不能再交接。"
    message_en = "Shipment {shipment} is {state_en}; it cannot be handed over any more."


class ContainerInOtherShipment(DomainError):
    code = "container_in_other_shipment"
    http_status = 409
    message_zh = "容器 {barcode} 已装在运输箱 {shipment} 中：请先从那个箱子取出。"
    message_en = "Container {barcode} is already in shipment {shipment}: scan it out of that one first."


class ContainerNotInShipment(DomainError):
    code = "container_not_in_shipment"
    http_status = 409
    message_zh = "容器 {barcode} 不在运输箱 {shipment} 中。"
    message_en = "Container {barcode} is not in shipment {shipment}."


class PackerNotHolder(DomainError):
    code = "shipment_packer_not_holder"
    http_status = 403
    message_zh = "只有容器 {barcode} 的持有人或运输箱 {shipment} 的持有人可以装箱或取出。"
    message_en = "Only the holder of container {barcode} or of shipment {shipment} may pack it or take it out."


class ShipmentEmpty(DomainError):
    code = "shipment_empty"
    http_status = 409
    message_zh = "运输箱 {shipment} 是空的：先扫描装入容器再交接。"
    message_en = "Shipment {shipment} is empty: scan containers in before handing it over."


STATE_WORDS = {
    "packing": ("正在装箱", "being packed"),
    "handed_over": ("交接", "handed over"),
    "delivered": ("送达并开始接收", "delivered"),
    "cancelled": ("取消", "cancelled"),
    "rejected": ("拒收", "rejected"),
    "disposed": ("处置", "disposed of"),
}


def state_words(state: str) -> dict[str, str]:
    zh, en = STATE_WORDS.get(state, (state, state))
    return {"state_zh": zh, "state_en": en}
