"""Refusals at the lab door: opening a delivery, scanning against the expected list, the checks
and decisions per sample, and signing the receipt (DOMAIN.md §3 in_transit → received /
conditionally_received / rejected). Each changes nothing; the scanner shows the message."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    message_zh = "未找到接收单 {ref}。"
    message_en = "Delivery {ref} not found."


class DeliverySourceRequired(InvalidInput):
    code = "delivery_source_required"
    message_zh = "请扫描或填写运输箱编号（SH…）或采样任务编号（TK…），或选择送样的采样员。"
    message_en = "Scan or type a shipment code (SH…) or a sampling task code (TK…), or choose the sampler."


class DeliverySourceAmbiguous(InvalidInput):
    code = "delivery_source_ambiguous"
    message_zh = "一个接收单只能来自一个来源：运输箱、采样任务或采样员，三者选一。"
    message_en = "A delivery comes from one source: a shipment, a sampling task or a sampler, not several."


class DeliverySourceUnknown(NotFound):
    code = "delivery_source_unknown"
    message_zh = "未找到 {ref}：既不是已登记的运输箱，也不是采样任务。"
    message_en = "{ref} is neither a known shipment nor a sampling task."


class DeliverySourceWrongCheckDigit(InvalidInput):
    code = "delivery_source_check_digit"
    message_zh = "运输箱编号 {ref} 的校验位不对：可能输错或扫错，请重新扫描。"
    message_en = "The check digit of shipment code {ref} is wrong: mistyped or misread, scan it again."


class ShipmentNotHandedOver(DomainError):
    code = "receipt_shipment_not_handed_over"
    http_status = 409
    message_zh = "运输箱 {ref} 当前状态为“{state}”：只有已交接（在途）的运输箱才能开始接收。"
    message_en = "Shipment {ref} is {state}: only a shipment that was handed over (in transit) can be received."


class DelivererUnknown(InvalidInput):
    code = "receipt_deliverer_unknown"
    message_zh = "送样人 {username} 不是本系统的用户：如为快递员或委托方，请填写其姓名。"
    message_en = "The deliverer {username} is not a user here: for a courier or a client, type their name instead."


class DelivererAmbiguous(InvalidInput):
    code = "receipt_deliverer_ambiguous"
    message_zh = "送样人只能是一位：系统用户或填写的姓名（快递员、委托方），二者选一。"
    message_en = "Give one deliverer: a user of the lab, or a name typed in (courier, client), not both."


class DelivererIsReceiver(InvalidInput):
    code = "receipt_deliverer_is_receiver"
    message_zh = "送样人与接收人是同一人：接收需要交出方与接收方两方。"
    message_en = "The deliverer is the person receiving: a receipt needs someone who hands over and someone who takes."


class SamplerNotFound(InvalidInput):
    code = "receipt_sampler_unknown"
    message_zh = "未找到采样员 {username}。"
    message_en = "Sampler {username} not found."


class NothingToReceive(DomainError):
    code = "nothing_to_receive"
    http_status = 409
    message_zh = "{source} 没有待接收的容器：已全部接收，或尚未在现场装样。"
    message_en = "{source} has no containers waiting to be received: all were received already, or none was filled yet."


class DeliverySigned(DomainError):
    code = "delivery_signed"
    http_status = 409
    message_zh = "接收单 {ref} 已于 {when} 签字，不能再扫描或修改。"
    message_en = "Delivery {ref} was signed on {when}; nothing can be scanned or changed any more."


class ContainerNotFilled(DomainError):
    code = "receipt_container_not_filled"
    http_status = 409
    message_zh = "容器 {barcode} 尚未在现场装样（样品 {sample_no} 未采集），不能接收。"
    message_en = ("Container {barcode} was never filled in the field (sample {sample_no} not collected): it cannot "
                  "be received.")


class SampleRejectedScanned(DomainError):
    code = "receipt_sample_rejected"
    http_status = 409
    message_zh = "容器 {barcode} 属于样品 {sample_no}，该样品已于 {when} 在接收时被拒收（{reason}）：不能再次接收。"
    message_en = ("Container {barcode} belongs to sample {sample_no}, which was rejected at receipt on {when} "
                  "({reason}): it cannot be received again.")


class SampleDisposedScanned(DomainError):
    code = "receipt_sample_disposed"
    http_status = 409
    message_zh = "容器 {barcode} 属于样品 {sample_no}，该样品已{state_zh}：不能接收。"
    message_en = "Container {barcode} belongs to sample {sample_no}, which is {state_en}: it cannot be received."


class ReceivedAlready(DomainError):
    code = "received_already"
    http_status = 409
    message_zh = "样品 {sample_no}（容器 {barcode}）已于 {when} 由 {who_zh} 接收（接收单 {delivery}）：不能重复接收。"
    message_en = ("Sample {sample_no} (container {barcode}) was received already on {when} by {who_en} "
                  "(delivery {delivery}): it cannot be received twice.")


class SampleNotInDelivery(DomainError):
    code = "receipt_sample_not_scanned"
    http_status = 409
    message_zh = "样品 {sample_no} 在接收单 {ref} 中没有扫描到任何容器：请先扫描容器，再记录检查结果。"
    message_en = ("No container of sample {sample_no} was scanned in delivery {ref}: scan its containers before "
                  "recording the checks.")


class UnknownDecision(InvalidInput):
    code = "receipt_unknown_decision"
    message_zh = "接收决定无效：{value}。请选择接收、有条件接收或拒收。"
    message_en = "Unknown receipt decision {value}: choose accept, accept with conditions or reject."


class DeviationRequired(InvalidInput):
    code = "receipt_deviation_required"
    message_zh = "有条件接收须写明偏离情况（例如：到样温度 9 °C，高于 0–4 °C）。"
    message_en = "Accepting with conditions needs the deviation written down (e.g. arrived at 9 °C, above 0–4 °C)."


class ConsentRequired(InvalidInput):
    code = "receipt_consent_required"
    message_zh = "有条件接收须记录同意人（委托方或质量负责人）及凭据（电话记录、邮件、函件编号）。"
    message_en = ("Accepting with conditions needs the consent: who agreed (the client or the quality manager) and "
                  "the reference (call note, e-mail, letter number).")


class RejectReasonRequired(InvalidInput):
    code = "receipt_reject_reason_required"
    message_zh = "拒收须写明理由。"
    message_en = "A rejection needs its reason."


class RevisionReasonRequired(InvalidInput):
    code = "receipt_revision_reason_required"
    message_zh = "样品 {sample_no} 的检查结果已记录过（第 {revision} 版）：修改须写明理由。"
    message_en = "The checks of sample {sample_no} were recorded already (revision {revision}): say why they change."


class NothingScanned(DomainError):
    code = "receipt_nothing_scanned"
    http_status = 409
    message_zh = "接收单 {ref} 还没有扫描任何容器：没有可签收的内容。"
    message_en = "No container was scanned in delivery {ref}: there is nothing to sign for."


class DecisionsMissing(DomainError):
    code = "receipt_decisions_missing"
    http_status = 409
    message_zh = "以下样品已扫描但尚未作出接收决定：{samples}。请先逐个记录检查结果与决定，再签字。"
    message_en = ("These samples were scanned but have no decision yet: {samples}. Record each one's checks and "
                  "decision, then sign.")


class SampleNotReceivable(DomainError):
    code = "receipt_sample_not_receivable"
    http_status = 409
    message_zh = "样品 {sample_no} 当前状态为“{state}”：只有已采集或在途的样品可以接收。"
    message_en = "Sample {sample_no} is {state}: only collected samples or samples in transit can be received."


class AcceptWithFailedCheck(DomainError):
    code = "receipt_accept_with_failed_check"
    http_status = 409
    message_zh = ("样品 {sample_no} 有检查未通过（{checks_zh}）：不能直接接收，请选择有条件接收（记录偏离及同意）"
                  "或拒收。")
    message_en = ("A check of sample {sample_no} failed ({checks_en}): it cannot be accepted as it is; accept it "
                  "with conditions (deviation and consent) or reject it.")


class AcceptPastHoldingTime(DomainError):
    code = "receipt_accept_past_holding_time"
    http_status = 409
    message_zh = ("样品 {sample_no} 到样时已超过保存期（{parameters}）：不能直接接收，请选择有条件接收"
                  "（记录偏离及同意）或拒收。")
    message_en = ("Sample {sample_no} arrived past its holding time ({parameters}): it cannot be accepted as it is; "
                  "accept it with conditions (deviation and consent) or reject it.")
