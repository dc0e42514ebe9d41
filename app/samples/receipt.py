"""Receipt at the lab door (样品接收; DOMAIN.md §3 in_transit → received / conditionally_received /
rejected; issue 7 item 2).

A `Delivery` is what arrives together: a cooler (a shipment handed over), a sampling task's
samples, or what a sampler brings in by hand. The containers expected are fixed when it is
opened; every scan is kept (once per container), so the page shows at once what is missing and
what came unexpectedly. Per sample the custodian records the checks (temperature on arrival,
preservation such as the pH strip, container intact, volume, label) and decides: accept, accept
with conditions (the deviation and who agreed, with the reference: it reaches the report), or
reject with a reason. Checks are append-only: a change of mind before signing is the next
revision with its reason.

Signing (meaning `received`) binds the delivery, its scans and the checks decided; it then
makes one `SampleReceipt` per sample (unique: a sample is received once), moves the samples'
and containers' states, records ONE custody event (deliverer → custodian; a deliverer who did
not hold the containers is a custody gap, flagged by `record_custody`), starts the holding
clocks (idempotent) and stops those of rejected samples. Samples none of whose containers were
scanned are left out and stay where they were.

Times: the receipt happens at the delivery's arrival time, which may not precede any sample's
sampling time (A09 time travel); scans carry their own time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.codes import check_digit_ok, next_code
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.people.models import User
from app.samples import holding, lab_input, retention, shipments
from app.samples import receipt_errors as errors
from app.samples.custody import Party, record_custody
from app.samples.holding import ClockColour, ClockReading, read_clock
from app.samples.lab_models import (
    CustodyEvent,
    CustodyEventContainer,
    CustodyKind,
    Delivery,
    DeliveryExpected,
    DeliveryScan,
    DeliveryState,
    ReceiptCheck,
    ReceiptDecision,
    SampleReceipt,
    Shipment,
    ShipmentState,
)
from app.samples.models import Container, ContainerKind, ContainerState, Sample, SampleState
from app.samples.registration import CONTAINER_RE, clean_container_barcode, container_by_barcode
from app.sites.models import SamplingTask

PREFIX = "RC"
CODE_RE = re.compile(r"^RC\d{2}-\d{5,9}$")
SHIPMENT_RE = re.compile(r"^SH\d{2}-\d{5,10}$")
TASK_RE = re.compile(r"^TK\d{2}-\d{5,9}$")
SIGNED_ENTITY = "delivery"
RECEIVABLE_SAMPLE_STATES = (SampleState.COLLECTED.value, SampleState.IN_TRANSIT.value)
DONE_SAMPLE_STATES = {
    SampleState.DISPOSED.value: ("处置", "disposed of"),
    SampleState.CANCELLED.value: ("取消", "cancelled"),
}
MAX_EXPECTED = 5000
STATE_AFTER = {
    ReceiptDecision.ACCEPT.value: (SampleState.RECEIVED.value, ContainerState.RECEIVED.value),
    ReceiptDecision.ACCEPT_WITH_CONDITIONS.value: (SampleState.CONDITIONALLY_RECEIVED.value,
                                                  ContainerState.RECEIVED.value),
    ReceiptDecision.REJECT.value: (SampleState.REJECTED.value, ContainerState.REJECTED.value),
}
CHECK_FLAGS = ("preservation_ok", "container_intact", "volume_sufficient", "label_legible")
CHECK_NAMES = {
    "preservation_ok": ("保存条件", "preservation"), "container_intact": ("容器完好", "container intact"),
    "volume_sufficient": ("样品量足够", "volume sufficient"), "label_legible": ("标签清晰", "label legible"),
}


# ---------------------------------------------------------------- inputs


@dataclass
class DeliveryInput:
    """What the custodian says about an arriving delivery. The source is one of: `code` (a
    shipment SH… or a sampling task TK…), or `sampler` (the username of a sampler bringing in
    what they hold). The deliverer is a user (`delivered_by`, a username) or a name typed in
    (`delivered_by_name`: a courier, a client); neither means the shipment's holder or the sampler."""

    code: str = ""
    sampler: str = ""
    delivered_by: str = ""
    delivered_by_name: str = ""
    arrived_at: Any = None
    cooler_temp: Any = None
    cooler_temp_unit: str = "°C"
    seal_no: str = ""
    seal_intact: bool | None = None
    note: str = ""


@dataclass
class CheckInput:
    """The checks of one sample at the door and the decision."""

    decision: str
    arrival_temp: Any = None
    arrival_temp_unit: str = "°C"
    preservation_ok: bool | None = None
    preservation_note: str = ""
    container_intact: bool | None = None
    volume_sufficient: bool | None = None
    label_legible: bool | None = None
    deviation: str = ""
    consent_by: str = ""
    consent_ref: str = ""
    reject_reason: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ScanOutcome:
    scan: DeliveryScan
    container: Container
    sample: Sample
    created: bool  # False: the container was scanned before in this delivery (kept once)

    @property
    def expected(self) -> bool:
        return self.scan.expected


# ---------------------------------------------------------------- lookups


def clean_code(text: str) -> str:
    return re.sub(r"\s+", "", text or "").upper()[:40]


# Built once: a scanner station posts one scan per container, and building a statement costs
# more than running it (receive_scan benchmark).
_DELIVERY = select(Delivery).where(Delivery.code == bindparam("code"))
_DELIVERY_LOCKED = _DELIVERY.with_for_update().execution_options(populate_existing=True)
_AT_THE_DOOR = (
    select(Container, Sample, DeliveryScan, DeliveryExpected.id)
    .join(Sample, Sample.id == Container.sample_id)
    .outerjoin(DeliveryScan, and_(DeliveryScan.container_id == Container.id,
                                  DeliveryScan.delivery_id == bindparam("delivery_id")))
    .outerjoin(DeliveryExpected, and_(DeliveryExpected.container_id == Container.id,
                                      DeliveryExpected.delivery_id == bindparam("delivery_id")))
    .where(Container.barcode == bindparam("barcode"))
)


def delivery_by_code(session: Session, code: str, *, for_update: bool = False) -> Delivery:
    wanted = clean_code(code)
    found = None
    if CODE_RE.match(wanted):
        found = session.scalars(_DELIVERY_LOCKED if for_update else _DELIVERY, {"code": wanted}).first()
    if found is None:
        raise errors.DeliveryNotFound(ref=wanted or "—")
    return found


def _user_by_username(session: Session, username: str) -> User | None:
    text = (username or "").strip().lower()
    if not text or len(text) > 64:
        return None
    return session.scalars(select(User).where(User.username == text)).first()


def _when(session: Session, moment: datetime | None) -> str:
    return lab_input.local_text(session, moment) if moment is not None else "—"


# ---------------------------------------------------------------- opening a delivery


def _expected_of_shipment(session: Session, shipment: Shipment) -> list[Container]:
    if shipment.state != ShipmentState.HANDED_OVER.value:
        raise errors.ShipmentNotHandedOver(ref=shipment.code, state=shipment.state)
    return list(session.scalars(select(Container).where(
        Container.shipment_id == shipment.id, Container.state == ContainerState.FILLED.value)
        .order_by(Container.sample_id, Container.position)))


def _expected_of_task(session: Session, task: SamplingTask) -> list[Container]:
    return list(session.scalars(
        select(Container).join(Sample, Sample.id == Container.sample_id)
        .where(Sample.task_id == task.id, Sample.state.in_(RECEIVABLE_SAMPLE_STATES),
               Container.state == ContainerState.FILLED.value, Container.kind == ContainerKind.CONTAINER.value)
        .order_by(Sample.sample_no, Container.position)))


def _expected_of_holder(session: Session, holder: User) -> list[Container]:
    return list(session.scalars(
        select(Container).join(Sample, Sample.id == Container.sample_id)
        .where(Container.holder_id == holder.id, Container.state == ContainerState.FILLED.value,
               Container.kind == ContainerKind.CONTAINER.value, Sample.state.in_(RECEIVABLE_SAMPLE_STATES))
        .order_by(Sample.sample_no, Container.position)))


def _source(session: Session, given: DeliveryInput) -> tuple[Shipment | None, SamplingTask | None, User | None,
                                                              list[Container], str]:
    code = clean_code(given.code)
    sampler_name = (given.sampler or "").strip()
    if code and sampler_name:
        raise errors.DeliverySourceAmbiguous()
    if not code and not sampler_name:
        raise errors.DeliverySourceRequired()
    if sampler_name:
        sampler = _user_by_username(session, sampler_name)
        if sampler is None:
            raise errors.SamplerNotFound(username=sampler_name[:64])
        return None, None, sampler, _expected_of_holder(session, sampler), sampler.username
    if code.startswith("SH"):
        shipment = session.scalars(select(Shipment).where(Shipment.code == code).with_for_update()).first()
        if shipment is None:
            if SHIPMENT_RE.match(code) and not check_digit_ok(code):
                raise errors.DeliverySourceWrongCheckDigit(ref=code)
            raise errors.DeliverySourceUnknown(ref=code)
        return shipment, None, None, _expected_of_shipment(session, shipment), shipment.code
    task = session.scalars(select(SamplingTask).where(SamplingTask.code == code)).first() \
        if TASK_RE.match(code) else None
    if task is None:
        raise errors.DeliverySourceUnknown(ref=code)
    return None, task, None, _expected_of_task(session, task), task.code


def _current_holder(session: Session, shipment: Shipment | None, expected: Sequence[Container]) -> tuple[
        int | None, str]:
    """Who brings the containers when the custodian does not say: whoever holds them now (the
    cooler's holder, or the one person holding them all), or the carrier named in words by the
    last hand-over (a driver or a courier who is not a user)."""
    if shipment is not None:
        holder = shipments.current_holder(session, shipment)
        return holder.user_id, holder.place if holder.user_id is None else ""
    holders = {c.holder_id for c in expected}
    if len(holders) == 1 and None not in holders:
        return holders.pop(), ""
    if holders == {None} and expected:
        last = session.scalars(select(CustodyEvent).join(
            CustodyEventContainer, CustodyEventContainer.event_id == CustodyEvent.id)
            .where(CustodyEventContainer.container_id == expected[0].id)
            .order_by(CustodyEvent.id.desc()).limit(1)).first()
        if last is not None and last.to_user_id is None and last.to_location_id is None:
            return None, last.to_place
    return None, ""


def _deliverer(session: Session, actor: User, given: DeliveryInput, default_id: int | None,
               default_name: str, expected: Sequence[Container]) -> tuple[int | None, str]:
    username = (given.delivered_by or "").strip()
    name = lab_input.text(given.delivered_by_name, "送样人姓名", "The deliverer's name", 120)
    if username and name:
        raise errors.DelivererAmbiguous()
    if username:
        user = _user_by_username(session, username)
        if user is None:
            raise errors.DelivererUnknown(username=username[:64])
        deliverer_id: int | None = user.id
    elif name:
        return None, name
    elif default_id is None and default_name:
        return None, default_name
    else:
        deliverer_id = default_id
    if deliverer_id is None:
        raise lab_input.FieldRequired(field_zh="送样人", field_en="The deliverer")
    if deliverer_id == actor.id and any(c.holder_id != actor.id for c in expected):
        raise errors.DelivererIsReceiver()  # only containers already handed to the custodian come "from" them
    return deliverer_id, ""


def open_delivery(session: Session, actor: User, given: DeliveryInput) -> Delivery:
    """Open a delivery for what arrives, with its expected containers fixed now."""
    ensure(session, actor, Permission.SAMPLES_RECEIVE)
    shipment, task, sampler, expected, source = _source(session, given)
    if not expected:
        raise errors.NothingToReceive(source=source)
    if len(expected) > MAX_EXPECTED:
        raise InvalidInput(detail=f"more than {MAX_EXPECTED} containers in one delivery")
    if sampler is not None:
        default_id, default_name = sampler.id, ""
    else:
        default_id, default_name = _current_holder(session, shipment, expected)
        if default_id is None and not default_name and task is not None:
            default_id = task.sampler_id
    deliverer_id, deliverer_name = _deliverer(session, actor, given, default_id, default_name, expected)
    arrived_at = lab_input.act_time(session, given.arrived_at, "到达时间", "The arrival time")
    cooler = lab_input.celsius(given.cooler_temp, given.cooler_temp_unit, "冷藏箱温度", "The cooler temperature")
    seal_no = lab_input.text(given.seal_no, "封条编号", "The seal number", 40)
    note = lab_input.text(given.note, "备注", "The note", 500)
    samples = {s.id: s for s in session.scalars(select(Sample).where(
        Sample.id.in_({c.sample_id for c in expected})).order_by(Sample.sample_no))}
    for sample in samples.values():
        lab_input.not_before_sampling(session, arrived_at, sample, "到达时间", "The arrival time")
    now = utcnow()
    delivery = Delivery(
        code=next_code(session, PREFIX, now), shipment_id=shipment.id if shipment else None,
        task_id=task.id if task else None, delivered_by_id=deliverer_id, delivered_by_name=deliverer_name,
        arrived_at=arrived_at, cooler_temp_c=cooler, seal_no=seal_no, seal_intact=given.seal_intact, note=note,
        opened_at=now, opened_by_id=actor.id)
    session.add(delivery)
    session.flush()
    session.add_all([DeliveryExpected(delivery_id=delivery.id, container_id=c.id) for c in expected])
    if shipment is not None:
        before = {"state": shipment.state}
        shipment.state = ShipmentState.DELIVERED.value
        audit.append(session, actor, "shipment.delivered", "shipment", shipment.id, before,
                     {"state": shipment.state, "delivery": delivery.code})
    session.flush()
    audit.append(session, actor, "delivery.opened", "delivery", delivery.id, None, {
        "code": delivery.code, "source": source, "shipment_id": delivery.shipment_id, "task_id": delivery.task_id,
        "sampler": sampler.username if sampler else None, "delivered_by_id": deliverer_id,
        "delivered_by_name": deliverer_name, "arrived_at": arrived_at, "cooler_temp_c": cooler, "seal_no": seal_no,
        "seal_intact": given.seal_intact, "note": note, "expected": sorted(c.barcode for c in expected)})
    return delivery


# ---------------------------------------------------------------- scanning at the door


def _assert_open(session: Session, delivery: Delivery) -> None:
    if delivery.state != DeliveryState.OPEN.value:
        raise errors.DeliverySigned(ref=delivery.code, when=_when(session, delivery.signed_at))


def _received_already(session: Session, container: Container, sample: Sample) -> errors.ReceivedAlready:
    row = session.execute(
        select(SampleReceipt.received_at, Delivery.code, User.display_name_zh, User.display_name_en)
        .join(Delivery, Delivery.id == SampleReceipt.delivery_id)
        .join(User, User.id == SampleReceipt.received_by_id)
        .where(SampleReceipt.sample_id == sample.id)).first()
    if row is None:  # received outside a delivery (cannot happen today): say what we know
        return errors.ReceivedAlready(sample_no=sample.sample_no, barcode=container.barcode,
                                      when=_when(session, sample.received_at), who_zh="—", who_en="—", delivery="—")
    return errors.ReceivedAlready(sample_no=sample.sample_no, barcode=container.barcode,
                                  when=_when(session, row.received_at), who_zh=row.display_name_zh,
                                  who_en=row.display_name_en or row.display_name_zh, delivery=row.code)


def _rejected(session: Session, container: Container, sample: Sample) -> errors.SampleRejectedScanned:
    row = session.execute(
        select(SampleReceipt.received_at, ReceiptCheck.reject_reason)
        .join(ReceiptCheck, ReceiptCheck.id == SampleReceipt.check_id)
        .where(SampleReceipt.sample_id == sample.id)).first()
    return errors.SampleRejectedScanned(barcode=container.barcode, sample_no=sample.sample_no,
                                        when=_when(session, row.received_at if row else sample.received_at),
                                        reason=row.reject_reason if row else "—")


def assert_receivable(session: Session, container: Container, sample: Sample) -> None:
    """A container can be received when its sample was collected (or is in transit) and neither
    it nor its sample was received, rejected or closed before."""
    if sample.state == SampleState.REJECTED.value or container.state == ContainerState.REJECTED.value:
        raise _rejected(session, container, sample)
    if sample.state in DONE_SAMPLE_STATES or container.state in (ContainerState.DISPOSED.value,
                                                                 ContainerState.EMPTIED.value):
        zh, en = DONE_SAMPLE_STATES.get(sample.state, ("处置", "disposed of"))
        raise errors.SampleDisposedScanned(barcode=container.barcode, sample_no=sample.sample_no, state_zh=zh,
                                           state_en=en)
    if container.state == ContainerState.RECEIVED.value or sample.received_at is not None:
        raise _received_already(session, container, sample)
    if container.state != ContainerState.FILLED.value or sample.state not in RECEIVABLE_SAMPLE_STATES:
        raise errors.ContainerNotFilled(barcode=container.barcode, sample_no=sample.sample_no)


def _container_at_the_door(session: Session, delivery: Delivery, barcode: str) -> tuple[
        Container, Sample, DeliveryScan | None, bool]:
    """The container a barcode names, its sample, its earlier scan in this delivery and whether it
    is expected: one query for a well-formed code (the scanner's every request); anything else
    goes through `container_by_barcode`, which says precisely what is wrong with it."""
    code = clean_container_barcode(barcode)
    row = None
    if CONTAINER_RE.match(code) and check_digit_ok(code):
        row = session.execute(_AT_THE_DOOR, {"barcode": code, "delivery_id": delivery.id}).first()
    if row is None:
        container_by_barcode(session, barcode)  # raises the refusal that fits
        raise AssertionError("container_by_barcode found what the query did not")  # pragma: no cover
    container, sample, earlier, expected_id = row
    return container, sample, earlier, expected_id is not None


def scan_container(session: Session, actor: User, delivery: Delivery, barcode: str,
                   at: Any = None) -> ScanOutcome:
    """Record one container scanned at the door: expected or not, kept once per delivery."""
    ensure(session, actor, Permission.SAMPLES_RECEIVE)
    _assert_open(session, delivery)
    container, sample, earlier, expected = _container_at_the_door(session, delivery, barcode)
    scanned_at = lab_input.act_time(session, at, "扫描时间", "The scan time")
    if earlier is not None:
        return ScanOutcome(earlier, container, sample, False)
    assert_receivable(session, container, sample)
    lab_input.not_before_sampling(session, delivery.arrived_at, sample, "到达时间", "The arrival time")
    lab_input.not_before_sampling(session, scanned_at, sample, "扫描时间", "The scan time")
    scan = DeliveryScan(delivery_id=delivery.id, container_id=container.id, expected=expected,
                        scanned_at=scanned_at, scanned_by_id=actor.id)
    session.add(scan)
    session.flush()
    audit.append(session, actor, "delivery.scanned", "delivery", delivery.id, None, {
        "code": delivery.code, "barcode": container.barcode, "sample_no": sample.sample_no,
        "expected": scan.expected, "scanned_at": scanned_at})
    return ScanOutcome(scan, container, sample, True)


# ---------------------------------------------------------------- checks and decisions


def _decision(value: str) -> ReceiptDecision:
    try:
        return ReceiptDecision((value or "").strip())
    except ValueError:
        raise errors.UnknownDecision(value=str(value)[:40] or "—") from None


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(detail="a check is true, false or not checked")


def record_check(session: Session, actor: User, delivery: Delivery, sample_no: str,
                 given: CheckInput) -> ReceiptCheck:
    """The checks of one sample and the decision, as revision n + 1 (a change needs a reason)."""
    ensure(session, actor, Permission.SAMPLES_RECEIVE)
    _assert_open(session, delivery)
    from app.samples.registration import sample_by_no

    sample = sample_by_no(session, sample_no)
    scanned = session.scalar(select(func.count()).select_from(DeliveryScan)
                             .join(Container, Container.id == DeliveryScan.container_id)
                             .where(DeliveryScan.delivery_id == delivery.id, Container.sample_id == sample.id))
    if not scanned:
        raise errors.SampleNotInDelivery(sample_no=sample.sample_no, ref=delivery.code)
    decision = _decision(given.decision)
    temp = lab_input.celsius(given.arrival_temp, given.arrival_temp_unit, "到样温度", "The arrival temperature")
    flags = {name: _flag(getattr(given, name)) for name in CHECK_FLAGS}
    preservation_note = lab_input.text(given.preservation_note, "保存检查说明", "The preservation note", 200)
    deviation = lab_input.text(given.deviation, "偏离说明", "The deviation", 500)
    consent_by = lab_input.text(given.consent_by, "同意人", "Who agreed", 120)
    consent_ref = lab_input.text(given.consent_ref, "同意凭据", "The consent reference", 120)
    reject_reason = lab_input.text(given.reject_reason, "拒收理由", "The reason for rejection", 500)
    reason = lab_input.text(given.reason, "修改理由", "The reason for the change", 500)
    failed = [name for name in CHECK_FLAGS if flags[name] is False]
    if decision is ReceiptDecision.ACCEPT and failed:
        raise errors.AcceptWithFailedCheck(sample_no=sample.sample_no,
                                           checks_zh="、".join(CHECK_NAMES[n][0] for n in failed),
                                           checks_en=", ".join(CHECK_NAMES[n][1] for n in failed))
    if decision is ReceiptDecision.ACCEPT:
        _assert_within_holding_time(session, sample, delivery.arrived_at)
    if decision is ReceiptDecision.ACCEPT_WITH_CONDITIONS:
        if not deviation:
            raise errors.DeviationRequired()
        if not consent_by or not consent_ref:
            raise errors.ConsentRequired()
    else:
        deviation = consent_by = consent_ref = ""
    if decision is ReceiptDecision.REJECT:
        if not reject_reason:
            raise errors.RejectReasonRequired()
    else:
        reject_reason = ""
    last = session.scalar(select(func.max(ReceiptCheck.revision)).where(
        ReceiptCheck.delivery_id == delivery.id, ReceiptCheck.sample_id == sample.id)) or 0
    if last and not reason:
        raise errors.RevisionReasonRequired(sample_no=sample.sample_no, revision=last)
    row = ReceiptCheck(
        delivery_id=delivery.id, sample_id=sample.id, revision=last + 1, arrival_temp_c=temp,
        preservation_note=preservation_note, decision=decision.value, deviation=deviation, consent_by=consent_by,
        consent_ref=consent_ref, reject_reason=reject_reason, reason=reason if last else "",
        recorded_at=utcnow(), recorded_by_id=actor.id, **flags)
    session.add(row)
    session.flush()
    audit.append(session, actor, "receipt.checked", "delivery", delivery.id, None, {
        "code": delivery.code, **check_content(row, sample.sample_no)})
    return row


def _assert_within_holding_time(session: Session, sample: Sample, arrived_at: datetime) -> None:
    """A sample is received as it is only with time left on every clock (DOMAIN.md §3: receipt
    needs time left > 0); past a deadline it is accepted with conditions or rejected."""
    late = [clock.parameter for clock in holding.clocks_for(session, [sample.id])[sample.id]
            if clock.deadline_at is not None and clock.deadline_at < arrived_at]
    if late:
        raise errors.AcceptPastHoldingTime(sample_no=sample.sample_no, parameters=", ".join(late))


def check_content(row: ReceiptCheck, sample_no: str) -> dict[str, Any]:
    return {
        "sample_no": sample_no, "revision": row.revision, "arrival_temp_c": row.arrival_temp_c,
        "preservation_ok": row.preservation_ok, "preservation_note": row.preservation_note,
        "container_intact": row.container_intact, "volume_sufficient": row.volume_sufficient,
        "label_legible": row.label_legible, "decision": row.decision, "deviation": row.deviation,
        "consent_by": row.consent_by, "consent_ref": row.consent_ref, "reject_reason": row.reject_reason,
        "reason": row.reason,
    }


# ---------------------------------------------------------------- signing


def delivery_content(session: Session, delivery: Delivery, checks: Sequence[ReceiptCheck]) -> dict[str, Any]:
    """What the `received` signature binds: the delivery as opened, every scan, the expected
    list, and the checks decided (the latest revision of each scanned sample)."""
    expected = session.scalars(select(Container.barcode).join(
        DeliveryExpected, DeliveryExpected.container_id == Container.id)
        .where(DeliveryExpected.delivery_id == delivery.id).order_by(Container.barcode)).all()
    scans = session.execute(select(Container.barcode, DeliveryScan.expected, DeliveryScan.scanned_at,
                                   DeliveryScan.scanned_by_id)
                            .join(Container, Container.id == DeliveryScan.container_id)
                            .where(DeliveryScan.delivery_id == delivery.id).order_by(Container.barcode)).all()
    numbers = dict(session.execute(select(Sample.id, Sample.sample_no).where(
        Sample.id.in_({c.sample_id for c in checks}))).all()) if checks else {}
    shipment = session.get(Shipment, delivery.shipment_id) if delivery.shipment_id else None
    task = session.get(SamplingTask, delivery.task_id) if delivery.task_id else None
    return {
        "delivery": delivery.code, "shipment": shipment.code if shipment else None,
        "task": task.code if task else None, "delivered_by_id": delivery.delivered_by_id,
        "delivered_by_name": delivery.delivered_by_name, "arrived_at": delivery.arrived_at,
        "cooler_temp_c": delivery.cooler_temp_c, "seal_no": delivery.seal_no, "seal_intact": delivery.seal_intact,
        "note": delivery.note, "opened_by_id": delivery.opened_by_id, "expected": list(expected),
        "scans": [{"barcode": b, "expected": e, "scanned_at": at, "scanned_by_id": by} for b, e, at, by in scans],
        "checks": sorted((check_content(c, numbers[c.sample_id]) for c in checks), key=lambda c: c["sample_no"]),
    }


def latest_checks(session: Session, delivery_id: int) -> dict[int, ReceiptCheck]:
    """The latest revision of each sample's checks in a delivery (one query)."""
    latest: dict[int, ReceiptCheck] = {}
    for row in session.scalars(select(ReceiptCheck).where(ReceiptCheck.delivery_id == delivery_id)
                               .order_by(ReceiptCheck.sample_id, ReceiptCheck.revision)):
        latest[row.sample_id] = row
    return latest


def sign_delivery(session: Session, actor: User, delivery: Delivery, password: str) -> ElectronicSignature:
    """Sign the receipt (meaning `received`): every sample with a scanned container must have a
    decision. Then the samples are received, conditionally received or rejected, in one act."""
    ensure(session, actor, Permission.SAMPLES_RECEIVE)
    delivery = delivery_by_code(session, delivery.code, for_update=True)
    _assert_open(session, delivery)
    scanned = list(session.scalars(select(Container).join(DeliveryScan, DeliveryScan.container_id == Container.id)
                                   .where(DeliveryScan.delivery_id == delivery.id).order_by(Container.barcode)))
    if not scanned:
        raise errors.NothingScanned(ref=delivery.code)
    samples = {s.id: s for s in session.scalars(select(Sample).where(
        Sample.id.in_({c.sample_id for c in scanned})).order_by(Sample.sample_no).with_for_update())}
    checks = latest_checks(session, delivery.id)
    undecided = [s.sample_no for s in samples.values() if s.id not in checks]
    if undecided:
        raise errors.DecisionsMissing(samples=", ".join(sorted(undecided)))
    for container in scanned:
        assert_receivable(session, container, samples[container.sample_id])
    for sample in samples.values():
        lab_input.not_before_sampling(session, delivery.arrived_at, sample, "接收时间", "The receipt time")
    signed = [checks[sample_id] for sample_id in samples]
    content = delivery_content(session, delivery, signed)
    signature = sign(session, actor, password, SignatureMeaning.RECEIVED, SIGNED_ENTITY, delivery.id, content)
    giver = Party(user_id=delivery.delivered_by_id) if delivery.delivered_by_id is not None else \
        Party(place=delivery.delivered_by_name)
    # containers handed to the custodian before (a recorded hand-over) are in her hands already
    arriving = [c for c in scanned if c.holder_id != actor.id or c.location_id is not None]
    if arriving:
        record_custody(session, actor, arriving, CustodyKind.RECEIPT, giver=giver, taker=Party(user_id=actor.id),
                       occurred_at=delivery.arrived_at, shipment_id=delivery.shipment_id,
                       cooler_temp_c=delivery.cooler_temp_c, seal_no=delivery.seal_no,
                       seal_intact=delivery.seal_intact, note=f"{delivery.code}")
    for container in scanned:
        container.state = STATE_AFTER[checks[container.sample_id].decision][1]
    session.add_all([SampleReceipt(
        sample_id=sample.id, delivery_id=delivery.id, check_id=checks[sample.id].id,
        decision=checks[sample.id].decision, received_at=delivery.arrived_at, received_by_id=actor.id,
        signature_id=signature.id) for sample in samples.values()])
    for sample in samples.values():
        check_row = checks[sample.id]
        before = {"state": sample.state, "received_at": sample.received_at}
        sample.state = STATE_AFTER[check_row.decision][0]
        sample.received_at = delivery.arrived_at
        audit.append(session, actor, f"sample.{sample.state}", "sample", sample.id, before, {
            "sample_no": sample.sample_no, "state": sample.state, "received_at": sample.received_at,
            "delivery": delivery.code, "check_revision": check_row.revision, "decision": check_row.decision,
            "deviation": check_row.deviation, "reject_reason": check_row.reject_reason,
            "signature_id": signature.id})
    holding.start_clocks(session, list(samples.values()))
    for sample in samples.values():
        if sample.state == SampleState.REJECTED.value:
            holding.stop_clocks(session, sample, "rejected", signature.signed_at)
            retention.start_retention_at_rejection(session, actor, sample, delivery.arrived_at)  # never reported
    before = {"state": delivery.state}
    delivery.state, delivery.signed_at, delivery.signature_id = (DeliveryState.SIGNED.value, signature.signed_at,
                                                                 signature.id)
    session.flush()
    audit.append(session, actor, "delivery.signed", "delivery", delivery.id, before, {
        "code": delivery.code, "state": delivery.state, "signature_id": signature.id,
        "decisions": {s.sample_no: checks[s.id].decision for s in samples.values()},
        "received": sorted(c.barcode for c in scanned)})
    return signature


# ---------------------------------------------------------------- for the report


def receipt_deviation(session: Session, sample_id: int) -> str | None:
    """The deviation of a sample accepted with conditions, as signed (None otherwise): it
    prints on the report with the consent (see `receipt_consent`)."""
    row = session.execute(select(ReceiptCheck.deviation).join(SampleReceipt, SampleReceipt.check_id == ReceiptCheck.id)
                          .where(SampleReceipt.sample_id == sample_id,
                                 SampleReceipt.decision == ReceiptDecision.ACCEPT_WITH_CONDITIONS.value)).first()
    return row.deviation if row is not None else None


def receipt_consent(session: Session, sample_id: int) -> tuple[str, str] | None:
    """Who agreed to a conditional acceptance and the reference, as signed (None otherwise)."""
    row = session.execute(select(ReceiptCheck.consent_by, ReceiptCheck.consent_ref)
                          .join(SampleReceipt, SampleReceipt.check_id == ReceiptCheck.id)
                          .where(SampleReceipt.sample_id == sample_id,
                                 SampleReceipt.decision == ReceiptDecision.ACCEPT_WITH_CONDITIONS.value)).first()
    return (row.consent_by, row.consent_ref) if row is not None else None


# ---------------------------------------------------------------- read models


@dataclass
class ContainerLine:
    container: Container
    sample_no: str
    expected: bool
    scan: DeliveryScan | None = None

    @property
    def scanned(self) -> bool:
        return self.scan is not None


@dataclass
class ClockLine:
    parameter: str
    reading: ClockReading

    @property
    def colour(self) -> str:
        return self.reading.colour.value


@dataclass
class SampleLine:
    sample: Sample
    containers: list[ContainerLine] = field(default_factory=list)
    check: ReceiptCheck | None = None  # the latest revision
    revisions: list[ReceiptCheck] = field(default_factory=list)
    clocks: list[ClockLine] = field(default_factory=list)
    receipt: SampleReceipt | None = None

    @property
    def scanned(self) -> bool:
        return any(c.scanned for c in self.containers)

    @property
    def missing(self) -> list[ContainerLine]:
        return [c for c in self.containers if c.expected and not c.scanned]

    @property
    def expired(self) -> bool:
        return any(c.reading.colour is ClockColour.RED for c in self.clocks)

    @property
    def failed_checks(self) -> list[str]:
        return [name for name in CHECK_FLAGS if self.check is not None and getattr(self.check, name) is False]


@dataclass
class DeliveryView:
    delivery: Delivery
    shipment_code: str
    task_code: str
    people: dict[int, User]
    samples: list[SampleLine]
    signature: SignatureView | None = None

    def person(self, user_id: int | None) -> User | None:
        return self.people.get(user_id) if user_id is not None else None

    @property
    def open(self) -> bool:
        return self.delivery.state == DeliveryState.OPEN.value

    @property
    def containers(self) -> list[ContainerLine]:
        return [c for s in self.samples for c in s.containers]

    @property
    def expected(self) -> list[ContainerLine]:
        return [c for c in self.containers if c.expected]

    @property
    def missing(self) -> list[ContainerLine]:
        return [c for c in self.containers if c.expected and not c.scanned]

    @property
    def unexpected(self) -> list[ContainerLine]:
        return [c for c in self.containers if not c.expected]

    @property
    def scanned_count(self) -> int:
        return sum(1 for c in self.containers if c.scanned)

    @property
    def to_decide(self) -> list[SampleLine]:
        return [s for s in self.samples if s.scanned]

    @property
    def left_out(self) -> list[SampleLine]:
        """Samples none of whose containers were scanned: not received, they stay in transit."""
        return [s for s in self.samples if not s.scanned]

    @property
    def undecided(self) -> list[SampleLine]:
        return [s for s in self.samples if s.scanned and s.check is None]

    @property
    def ready_to_sign(self) -> bool:
        return self.open and bool(self.to_decide) and not self.undecided


def delivery_view(session: Session, delivery: Delivery, at: datetime | None = None) -> DeliveryView:
    """The working page of a delivery: a fixed number of queries however many containers."""
    at = at or utcnow()
    expected_ids = set(session.scalars(select(DeliveryExpected.container_id)
                                       .where(DeliveryExpected.delivery_id == delivery.id)))
    scans = {s.container_id: s for s in session.scalars(select(DeliveryScan)
                                                        .where(DeliveryScan.delivery_id == delivery.id))}
    ids = expected_ids | set(scans)
    containers = list(session.scalars(select(Container).where(Container.id.in_(ids))
                                      .order_by(Container.sample_id, Container.position))) if ids else []
    sample_ids = {c.sample_id for c in containers}
    samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(sample_ids)))} \
        if sample_ids else {}
    lines = {sid: SampleLine(sample) for sid, sample in samples.items()}
    for container in containers:
        lines[container.sample_id].containers.append(ContainerLine(
            container, samples[container.sample_id].sample_no, container.id in expected_ids,
            scans.get(container.id)))
    for row in session.scalars(select(ReceiptCheck).where(ReceiptCheck.delivery_id == delivery.id)
                               .order_by(ReceiptCheck.sample_id, ReceiptCheck.revision)):
        if row.sample_id in lines:
            lines[row.sample_id].revisions.append(row)
            lines[row.sample_id].check = row
    if delivery.state == DeliveryState.SIGNED.value and sample_ids:
        for receipt in session.scalars(select(SampleReceipt).where(SampleReceipt.delivery_id == delivery.id)):
            if receipt.sample_id in lines:
                lines[receipt.sample_id].receipt = receipt
    for sample_id, clocks in holding.clocks_for(session, sample_ids).items():
        lines[sample_id].clocks = [ClockLine(c.parameter, read_clock(c.started_at, c.allowed_hours, at,
                                                                     stopped_at=c.stopped_at)) for c in clocks]
    people_ids = {delivery.delivered_by_id, delivery.opened_by_id} | {r.recorded_by_id for line in lines.values()
                                                                      for r in line.revisions}
    signature = None
    if delivery.signature_id is not None:
        signature_row = session.get(ElectronicSignature, delivery.signature_id)
        people_ids.add(signature_row.signer_id)
        signed = [next(r for r in line.revisions if r.id == line.receipt.check_id)
                  for line in lines.values() if line.receipt is not None]
        signature = check(signature_row, delivery_content(session, delivery, signed))
    people_ids.discard(None)
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(people_ids)))} if people_ids else {}
    shipment_code = session.scalar(select(Shipment.code).where(Shipment.id == delivery.shipment_id)) \
        if delivery.shipment_id else ""
    task_code = session.scalar(select(SamplingTask.code).where(SamplingTask.id == delivery.task_id)) \
        if delivery.task_id else ""
    ordered = sorted(lines.values(), key=lambda line: line.sample.sample_no)
    return DeliveryView(delivery, shipment_code or "", task_code or "", people, ordered, signature)


@dataclass
class DeliveryRow:
    delivery: Delivery
    expected: int
    scanned: int
    deliverer: User | None
    source: str


STATES = tuple(s.value for s in DeliveryState)


def search_deliveries(session: Session, q: str, state: str, page: int, size: int) -> Any:
    """Deliveries, open ones first, newest first; by code (of the delivery, its shipment or task)."""
    from app.core.web import Page

    query = select(Delivery)
    text = clean_code(q)
    if text:
        like = f"%{text}%"
        query = query.outerjoin(Shipment, Shipment.id == Delivery.shipment_id) \
            .outerjoin(SamplingTask, SamplingTask.id == Delivery.task_id) \
            .where(or_(Delivery.code.like(like), Shipment.code.like(like), SamplingTask.code.like(like),
                       Delivery.delivered_by_name.like(f"%{(q or '').strip()[:60]}%")))
    if state in STATES:
        query = query.where(Delivery.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, min(page, max(1, -(-total // size))))
    rows = list(session.scalars(query.order_by(case((Delivery.state == DeliveryState.OPEN.value, 0), else_=1),
                                               Delivery.opened_at.desc(), Delivery.id.desc())
                                .limit(size).offset((page - 1) * size)))
    ids = [d.id for d in rows]
    expected = dict(session.execute(select(DeliveryExpected.delivery_id, func.count()).where(
        DeliveryExpected.delivery_id.in_(ids)).group_by(DeliveryExpected.delivery_id)).all()) if ids else {}
    scanned = dict(session.execute(select(DeliveryScan.delivery_id, func.count()).where(
        DeliveryScan.delivery_id.in_(ids)).group_by(DeliveryScan.delivery_id)).all()) if ids else {}
    people_ids = {d.delivered_by_id for d in rows if d.delivered_by_id}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(people_ids)))} if people_ids else {}
    shipments = dict(session.execute(select(Shipment.id, Shipment.code).where(
        Shipment.id.in_({d.shipment_id for d in rows if d.shipment_id}))).all()) if ids else {}
    tasks = dict(session.execute(select(SamplingTask.id, SamplingTask.code).where(
        SamplingTask.id.in_({d.task_id for d in rows if d.task_id}))).all()) if ids else {}
    items = [DeliveryRow(d, expected.get(d.id, 0), scanned.get(d.id, 0), people.get(d.delivered_by_id),
                         shipments.get(d.shipment_id, "") or tasks.get(d.task_id, "")) for d in rows]
    return Page(items, page, size, total)


@dataclass
class Candidates:
    """What may be arriving: coolers handed over, tasks and samplers with filled containers."""

    shipments: list[tuple[Shipment, User | None]]
    tasks: list[tuple[SamplingTask, int]]
    samplers: list[tuple[User, int]]


def candidates(session: Session, limit: int = 30) -> Candidates:
    shipments = session.execute(
        select(Shipment, User).outerjoin(User, User.id == Shipment.holder_id)
        .where(Shipment.state == ShipmentState.HANDED_OVER.value).order_by(Shipment.id.desc()).limit(limit)).all()
    waiting = (select(Container.id, Sample.task_id, Container.holder_id)
               .join(Sample, Sample.id == Container.sample_id)
               .where(Container.state == ContainerState.FILLED.value,
                      Container.kind == ContainerKind.CONTAINER.value,
                      Sample.state.in_(RECEIVABLE_SAMPLE_STATES)).subquery())
    tasks = session.execute(
        select(SamplingTask, func.count(waiting.c.id)).join(waiting, waiting.c.task_id == SamplingTask.id)
        .group_by(SamplingTask.id).order_by(SamplingTask.scheduled_on.desc(), SamplingTask.id.desc())
        .limit(limit)).all()
    samplers = session.execute(
        select(User, func.count(waiting.c.id)).join(waiting, waiting.c.holder_id == User.id)
        .group_by(User.id).order_by(User.username).limit(limit)).all()
    return Candidates([(s, u) for s, u in shipments], [(t, n) for t, n in tasks], [(u, n) for u, n in samplers])


# ---------------------------------------------------------------- the sample's page


@dataclass
class SampleReceiptView:
    """The receipt part of a sample's page: its decision, the checks, who signed and when; or
    the open delivery it is being received in."""

    sample: Sample
    delivery: Delivery
    receipt: SampleReceipt | None
    check: ReceiptCheck | None
    revisions: list[ReceiptCheck]
    signature: SignatureView | None
    people: dict[int, User]

    def person(self, user_id: int | None) -> User | None:
        return self.people.get(user_id) if user_id is not None else None


def receipt_section(session: Session, sample: Sample) -> Any:
    """What the sample's page shows of this part (None: nothing to show)."""
    scanned_in = (select(DeliveryScan.delivery_id).join(Container, Container.id == DeliveryScan.container_id)
                  .where(Container.sample_id == sample.id))
    found = session.execute(  # one query: its receipt's delivery, else an open delivery that scanned it
        select(Delivery, SampleReceipt)
        .outerjoin(SampleReceipt, and_(SampleReceipt.delivery_id == Delivery.id, SampleReceipt.sample_id == sample.id))
        .where(or_(SampleReceipt.id.is_not(None),
                   and_(Delivery.state == DeliveryState.OPEN.value, Delivery.id.in_(scanned_in))))
        .order_by(SampleReceipt.id.is_(None), Delivery.id.desc()).limit(1)).first()
    if found is None:
        return None
    delivery, receipt = found
    revisions = list(session.scalars(select(ReceiptCheck).where(
        ReceiptCheck.delivery_id == delivery.id, ReceiptCheck.sample_id == sample.id)
        .order_by(ReceiptCheck.revision)))
    check_row = next((r for r in revisions if receipt is not None and r.id == receipt.check_id),
                     revisions[-1] if revisions else None)
    signature = None
    people_ids = {r.recorded_by_id for r in revisions} | {delivery.delivered_by_id}
    if receipt is not None:
        people_ids.add(receipt.received_by_id)
        row = session.get(ElectronicSignature, receipt.signature_id)
        signed = list(session.scalars(select(ReceiptCheck)
                                      .join(SampleReceipt, SampleReceipt.check_id == ReceiptCheck.id)
                                      .where(SampleReceipt.delivery_id == delivery.id)))
        signature = check(row, delivery_content(session, delivery, signed))
    people_ids.discard(None)
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(people_ids)))} if people_ids else {}
    return SampleReceiptView(sample, delivery, receipt, check_row, revisions, signature, people)
