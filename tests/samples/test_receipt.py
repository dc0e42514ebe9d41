"""Receipt at the lab door (issue 7 item 2): opening a delivery, scanning against the expected
list, checks and decisions per sample, signing (meaning `received`), receiving twice refused.
Each rule: it passes (with its audit event) and it refuses with its code, changing nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.signatures import ElectronicSignature
from app.people.models import User
from app.samples import receipt
from app.samples.lab_models import (
    CustodyEvent,
    CustodyEventContainer,
    Delivery,
    DeliveryExpected,
    DeliveryScan,
    HoldingClock,
    ReceiptCheck,
    SampleReceipt,
    Shipment,
)
from app.samples.models import Container, Sample
from app.samples.receipt import CheckInput, DeliveryInput
from tests.conftest import PASSWORD
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes, container, refreshed

TABLES = (Delivery, DeliveryExpected, DeliveryScan, ReceiptCheck, SampleReceipt, CustodyEvent,
          CustodyEventContainer, AuditEvent, ElectronicSignature, Shipment)


def counts(db) -> dict[str, object]:
    with db.reading() as session:
        found: dict[str, object] = {t.__name__: session.scalar(select(func.count()).select_from(t)) for t in TABLES}
        found["sample_states"] = sorted(session.scalars(select(Sample.state)))
        found["container_states"] = sorted(session.scalars(select(Container.state)))
        found["holders"] = sorted(str(h) for h in session.scalars(select(Container.holder_id)))
        return found


def refused(db, code: str, act) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, caught.value
    assert counts(db) == before  # nothing changed, no audit event
    return caught.value


def open_(db, actor, **fields) -> Delivery:
    with db.transaction() as session:
        return receipt.open_delivery(session, actor, DeliveryInput(**fields))


def scan(db, actor, delivery: Delivery, barcode: str, **kw) -> receipt.ScanOutcome:
    with db.transaction() as session:
        found = receipt.delivery_by_code(session, delivery.code, for_update=True)
        return receipt.scan_container(session, actor, found, barcode, **kw)


def decide(db, actor, delivery: Delivery, sample: Sample, decision: str = "accept", **fields) -> ReceiptCheck:
    with db.transaction() as session:
        found = receipt.delivery_by_code(session, delivery.code, for_update=True)
        return receipt.record_check(session, actor, found, sample.sample_no, CheckInput(decision=decision, **fields))


def sign(db, actor, delivery: Delivery, password: str = PASSWORD):
    with db.transaction() as session:
        return receipt.sign_delivery(session, actor, delivery, password)


def view(db, delivery: Delivery) -> receipt.DeliveryView:
    with db.reading() as session:
        shown = receipt.delivery_view(session, receipt.delivery_by_code(session, delivery.code))
        session.expunge_all()  # detached as read: the rollback at the end would expire them
        return shown


def last_actions(db, n: int) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(n)))


@pytest.fixture
def custodian(users):
    return users["custodian"]


# ---------------------------------------------------------------- opening


def test_a_delivery_from_a_task_expects_every_filled_container_of_it(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, code=dt.task.code.lower(), cooler_temp="3.5", seal_no="F-0042", seal_intact=True)
    assert delivery.code.startswith("RC") and delivery.state == "open"
    assert delivery.delivered_by_id == dt.sampler.id  # the task's sampler by default
    assert delivery.cooler_temp_c == Decimal("3.5")
    shown = view(db, delivery)
    assert sorted(c.container.barcode for c in shown.expected) == sorted(all_barcodes(dt))
    assert len(shown.missing) == 9 and not shown.unexpected
    assert last_actions(db, 1) == ["delivery.opened"]


def test_a_delivery_from_a_sampler_expects_what_the_sampler_holds(db, collected_task, custodian):
    delivery = open_(db, custodian, sampler=collected_task.sampler.username, delivered_by_name="")
    assert len(view(db, delivery).expected) == 9


def test_a_delivery_from_a_handed_over_shipment_marks_it_delivered(db, collected_task, custodian, users):
    dt = collected_task
    shipment = handed_over_shipment(db, dt, users["analyst"], dt.barcodes())
    delivery = open_(db, custodian, code="sh26-000013")
    assert delivery.delivered_by_id == users["analyst"].id  # who has the cooler now
    assert sorted(c.container.barcode for c in view(db, delivery).expected) == sorted(dt.barcodes())
    with db.reading() as session:
        assert session.get(Shipment, shipment.id).state == "delivered"
    refused(db, "receipt_shipment_not_handed_over",
            lambda s: receipt.open_delivery(s, custodian, DeliveryInput(code="SH26-000013")))


@pytest.mark.parametrize(("fields", "code"), [
    ({}, "delivery_source_required"),
    ({"code": "TK26-99999"}, "delivery_source_unknown"),
    ({"code": "SH26-000014"}, "delivery_source_check_digit"),
    ({"code": "RM26-00001"}, "delivery_source_unknown"),
    ({"code": "TK", "sampler": "sampler"}, "delivery_source_ambiguous"),
    ({"sampler": "nobody"}, "receipt_sampler_unknown"),
    ({"sampler": "sampler", "delivered_by": "ghost"}, "receipt_deliverer_unknown"),
    ({"sampler": "sampler", "delivered_by": "analyst", "delivered_by_name": "顺丰"}, "receipt_deliverer_ambiguous"),
    ({"sampler": "sampler", "delivered_by": "custodian"}, "receipt_deliverer_is_receiver"),
    ({"sampler": "sampler", "cooler_temp": "277", "cooler_temp_unit": "°C"}, "temperature_out_of_range"),
    ({"sampler": "sampler", "cooler_temp": "4", "cooler_temp_unit": "bananas"}, "unknown_temperature_unit"),
    ({"sampler": "sampler", "cooler_temp": "four"}, "not_a_number"),
    ({"sampler": "sampler", "seal_no": "x" * 41}, "field_too_long"),
    ({"sampler": "sampler", "arrived_at": "yesterday"}, "invalid_act_time"),
])
def test_opening_refuses_bad_input(db, collected_task, custodian, fields, code):
    refused(db, code, lambda s: receipt.open_delivery(s, custodian, DeliveryInput(**fields)))


def test_a_temperature_in_kelvin_is_converted(db, collected_task, custodian):
    delivery = open_(db, custodian, sampler="sampler", cooler_temp="277.15", cooler_temp_unit="K")
    assert delivery.cooler_temp_c == Decimal("4.00")


def test_an_arrival_before_the_sampling_time_is_refused(db, collected_task, custodian):
    early = (collected_task.samples[0].collected_at - timedelta(hours=1)).isoformat()
    refused(db, "act_before_sampling",
            lambda s: receipt.open_delivery(s, custodian, DeliveryInput(sampler="sampler", arrived_at=early)))


def test_only_the_custodian_opens_a_delivery(db, collected_task, users):
    refused(db, "permission_denied",
            lambda s: receipt.open_delivery(s, users["analyst"], DeliveryInput(sampler="sampler")))
    refused(db, "inspector_read_only",
            lambda s: receipt.open_delivery(s, users["inspector"], DeliveryInput(sampler="sampler")))


def test_nothing_to_receive_when_the_sampler_holds_nothing(db, collected_task, custodian):
    refused(db, "nothing_to_receive",
            lambda s: receipt.open_delivery(s, custodian, DeliveryInput(sampler="analyst")))


# ---------------------------------------------------------------- scanning


def test_scanning_ticks_expected_containers_and_a_repeat_is_kept_once(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    first = scan(db, custodian, delivery, dt.barcodes()[0].lower() + " ")
    assert first.created and first.expected
    again = scan(db, custodian, delivery, dt.barcodes()[0])
    assert not again.created and again.scan.id == first.scan.id
    shown = view(db, delivery)
    assert shown.scanned_count == 1 and len(shown.missing) == 8
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryScan)) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "delivery.scanned")) == 1


def handed_over_shipment(db, dt, holder, barcodes, code: str = "SH26-000013") -> Shipment:
    """A cooler handed over (as the custody helper's service leaves it), holding `barcodes`."""
    with db.transaction() as session:
        shipment = Shipment(code=code, state="handed_over", holder_id=holder.id, created_at=utcnow(),
                            created_by_id=dt.sampler.id)
        session.add(shipment)
        session.flush()
        session.execute(update(Container).where(Container.barcode.in_(barcodes)).values(shipment_id=shipment.id))
    return shipment


def test_a_known_container_not_expected_is_recorded_as_unexpected(db, collected_task, custodian):
    dt = collected_task
    handed_over_shipment(db, dt, dt.sampler, dt.barcodes())
    delivery = open_(db, custodian, code="SH26-000013")
    other = next(s for s in dt.samples if s.id != dt.routine.id)
    outcome = scan(db, custodian, delivery, dt.barcodes(other)[0])
    assert outcome.created and not outcome.expected
    shown = view(db, delivery)
    assert [c.container.barcode for c in shown.unexpected] == [dt.barcodes(other)[0]]
    assert len(shown.missing) == 3


@pytest.mark.parametrize(("barcode", "code"), [
    ("CT26-00000000", "wrong_check_digit"),
    ("CT26-99999990", "container_not_found"),
    ("hello", "malformed_barcode"),
    ("TK26-00001", "not_a_container"),
])
def test_bad_barcodes_are_refused_clearly(db, collected_task, custodian, barcode, code):
    from app.core.codes import with_check_digit

    if code == "wrong_check_digit":
        good = collected_task.barcodes()[0]
        barcode = good[:-1] + str((int(good[-1]) + 1) % 10)
    if code == "container_not_found":
        barcode = with_check_digit("CT26-9999999")
    delivery = open_(db, custodian, sampler="sampler")
    refused(db, code, lambda s: receipt.scan_container(s, custodian, receipt.delivery_by_code(s, delivery.code),
                                                       barcode))


def test_a_container_received_in_another_delivery_is_refused_with_when_and_who(db, collected_task, custodian):
    dt = collected_task
    first = open_(db, custodian, sampler="sampler")
    for barcode in dt.barcodes():
        scan(db, custodian, first, barcode)
    decide(db, custodian, first, dt.routine)
    sign(db, custodian, first)
    second = open_(db, custodian, code=dt.task.code)
    error = refused(db, "received_already", lambda s: receipt.scan_container(
        s, custodian, receipt.delivery_by_code(s, second.code), dt.barcodes()[1]))
    assert first.code in error.message("en") and "Custodian" in error.message("en")


def test_a_rejected_sample_scanned_again_is_refused_saying_so(db, collected_task, custodian):
    dt = collected_task
    first = open_(db, custodian, sampler="sampler")
    scan(db, custodian, first, dt.barcodes()[0])
    decide(db, custodian, first, dt.routine, "reject", reject_reason="bottle broken, sample lost")
    sign(db, custodian, first)
    assert container(db, dt.barcodes()[0]).state == "rejected"
    second = open_(db, custodian, code=dt.task.code)
    error = refused(db, "receipt_sample_rejected", lambda s: receipt.scan_container(
        s, custodian, receipt.delivery_by_code(s, second.code), dt.barcodes()[1]))
    assert "bottle broken" in error.message("en")


def test_a_disposed_sample_scanned_is_refused(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id == dt.routine.id).values(state="disposed"))
    refused(db, "receipt_sample_disposed", lambda s: receipt.scan_container(
        s, custodian, receipt.delivery_by_code(s, delivery.code), dt.barcodes()[0]))


def test_a_scan_before_the_sampling_time_is_refused(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    early = dt.routine.collected_at - timedelta(minutes=5)
    refused(db, "act_before_sampling", lambda s: receipt.scan_container(
        s, custodian, receipt.delivery_by_code(s, delivery.code), dt.barcodes()[0], at=early))


def test_nothing_is_scanned_into_a_signed_delivery(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    decide(db, custodian, delivery, dt.routine)
    sign(db, custodian, delivery)
    refused(db, "delivery_signed", lambda s: receipt.scan_container(
        s, custodian, receipt.delivery_by_code(s, delivery.code), dt.barcodes()[1]))


# ---------------------------------------------------------------- checks and decisions


def test_checks_are_revised_with_a_reason_and_kept(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    first = decide(db, custodian, delivery, dt.routine, arrival_temp="39.2", arrival_temp_unit="°F",
                   preservation_ok=True, preservation_note="pH 1.5 (strip)", container_intact=True,
                   volume_sufficient=True, label_legible=True)
    assert first.revision == 1 and first.arrival_temp_c == Decimal("4.00")
    refused(db, "receipt_revision_reason_required", lambda s: receipt.record_check(
        s, custodian, receipt.delivery_by_code(s, delivery.code), dt.routine.sample_no, CheckInput("reject",
                                                                                                 reject_reason="x")))
    second = decide(db, custodian, delivery, dt.routine, "reject", reject_reason="cap cracked", reason="looked again")
    assert second.revision == 2
    line = next(s for s in view(db, delivery).samples if s.sample.id == dt.routine.id)
    assert [r.revision for r in line.revisions] == [1, 2] and line.check.decision == "reject"
    assert last_actions(db, 1) == ["receipt.checked"]


@pytest.mark.parametrize(("decision", "fields", "code"), [
    ("accept_with_conditions", {"deviation": "arrived at 9 °C"}, "receipt_consent_required"),
    ("accept_with_conditions", {"deviation": "arrived at 9 °C", "consent_by": "client 王"}, "receipt_consent_required"),
    ("accept_with_conditions", {"consent_by": "client", "consent_ref": "call 10:02"}, "receipt_deviation_required"),
    ("reject", {}, "receipt_reject_reason_required"),
    ("reject", {"reject_reason": "   "}, "receipt_reject_reason_required"),
    ("maybe", {}, "receipt_unknown_decision"),
    ("accept", {"container_intact": False}, "receipt_accept_with_failed_check"),
    ("accept", {"arrival_temp": "300", "arrival_temp_unit": "°C"}, "temperature_out_of_range"),
    ("accept", {"arrival_temp": "4", "arrival_temp_unit": "furlongs"}, "unknown_temperature_unit"),
    ("accept", {"preservation_note": "p" * 201}, "field_too_long"),
])
def test_decisions_refuse_what_is_missing(db, collected_task, custodian, decision, fields, code):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    refused(db, code, lambda s: receipt.record_check(s, custodian, receipt.delivery_by_code(s, delivery.code),
                                                     dt.routine.sample_no, CheckInput(decision, **fields)))


def test_a_sample_without_a_scanned_container_gets_no_decision(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    refused(db, "receipt_sample_not_scanned", lambda s: receipt.record_check(
        s, custodian, receipt.delivery_by_code(s, delivery.code), dt.routine.sample_no, CheckInput("accept")))


# ---------------------------------------------------------------- signing


def test_signing_receives_accepts_conditionally_rejects_and_records_one_custody_event(db, collected_task, custodian):
    dt = collected_task
    routine, blank, duplicate = dt.routine, *[s for s in dt.samples if s.id != dt.routine.id]
    delivery = open_(db, custodian, sampler="sampler", cooler_temp="5", seal_no="F-1", seal_intact=True)
    missing = dt.barcodes(duplicate)[2]
    for barcode in all_barcodes(dt):
        if barcode != missing:
            scan(db, custodian, delivery, barcode)
    decide(db, custodian, delivery, routine, "accept", preservation_ok=True)
    decide(db, custodian, delivery, blank, "accept_with_conditions", deviation="arrived at 9 °C",
           consent_by="client 王工", consent_ref="phone 2026-05-01 10:02")
    decide(db, custodian, delivery, duplicate, "reject", reject_reason="cap cracked")
    assert [c.container.barcode for c in view(db, delivery).missing] == [missing]
    signature = sign(db, custodian, delivery)
    assert signature.meaning == "received"
    done = refreshed(db, dt)
    states = {s.id: s.state for s in done.samples}
    assert states == {routine.id: "received", blank.id: "conditionally_received", duplicate.id: "rejected"}
    assert all(s.received_at == delivery.arrived_at for s in done.samples)
    kept = {s.id: s.retain_until for s in done.samples}  # only the rejected sample's retention runs
    assert kept[routine.id] is None and kept[blank.id] is None and kept[duplicate.id] > delivery.arrived_at
    for c in done.containers[routine.id] + done.containers[blank.id]:
        assert c.state == "received" and c.holder_id == custodian.id
    assert [c.state for c in done.containers[duplicate.id]] == ["rejected", "rejected", "filled"]
    assert next(c for c in done.containers[duplicate.id] if c.barcode == missing).holder_id == dt.sampler.id
    with db.reading() as session:
        events = session.scalars(select(CustodyEvent).where(CustodyEvent.kind == "receipt")).all()
        assert len(events) == 1 and events[0].from_user_id == dt.sampler.id and events[0].to_user_id == custodian.id
        assert events[0].cooler_temp_c == Decimal("5") and events[0].seal_no == "F-1"
        links = session.scalars(select(CustodyEventContainer).where(CustodyEventContainer.event_id == events[0].id))
        assert sorted(link.gap for link in links) == [False] * 8  # the sampler held them: no gap
        assert session.scalar(select(func.count()).select_from(SampleReceipt)) == 3
        assert session.get(Delivery, delivery.id).state == "signed"
        clocks = session.scalars(select(HoldingClock).where(HoldingClock.sample_id == duplicate.id)).all()
        assert clocks and all(not c.open and c.stopped_by == "rejected" for c in clocks)
        assert all(c.open for c in session.scalars(select(HoldingClock).where(HoldingClock.sample_id == routine.id)))
        assert receipt.receipt_deviation(session, blank.id) == "arrived at 9 °C"
        assert receipt.receipt_consent(session, blank.id) == ("client 王工", "phone 2026-05-01 10:02")
        assert receipt.receipt_deviation(session, routine.id) is None
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"signature.received", "custody.receipt", "sample.received", "sample.conditionally_received",
            "sample.rejected", "delivery.signed", "sample.retention_started"} <= actions
    shown = view(db, delivery)
    assert shown.signature is not None and shown.signature.intact


def test_a_courier_delivery_is_a_custody_gap(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, code=dt.task.code, delivered_by_name="顺丰快递 SF1234")
    scan(db, custodian, delivery, dt.barcodes()[0])
    decide(db, custodian, delivery, dt.routine)
    sign(db, custodian, delivery)
    with db.reading() as session:
        link = session.scalars(select(CustodyEventContainer)).one()
        assert link.gap and session.get(Sample, dt.routine.id).custody_gap
        event = session.get(CustodyEvent, link.event_id)
        assert event.from_place == "顺丰快递 SF1234" and event.from_user_id is None


def test_a_colleague_who_did_not_hold_the_containers_is_a_custody_gap(db, collected_task, custodian, users):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler", delivered_by="analyst")
    scan(db, custodian, delivery, dt.barcodes()[0])
    decide(db, custodian, delivery, dt.routine)
    sign(db, custodian, delivery)
    with db.reading() as session:
        assert session.scalars(select(CustodyEventContainer)).one().gap


def test_signing_refuses_without_scans_and_without_every_decision(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    refused(db, "receipt_nothing_scanned", lambda s: receipt.sign_delivery(s, custodian, delivery, PASSWORD))
    scan(db, custodian, delivery, dt.barcodes()[0])
    scan(db, custodian, delivery, dt.barcodes(dt.samples[1] if dt.samples[1].id != dt.routine.id
                                              else dt.samples[0])[0])
    decide(db, custodian, delivery, dt.routine)
    error = refused(db, "receipt_decisions_missing",
                    lambda s: receipt.sign_delivery(s, custodian, delivery, PASSWORD))
    assert dt.routine.sample_no not in error.message("en")


def test_a_wrong_password_refuses_and_changes_nothing_but_the_failure_count(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    decide(db, custodian, delivery, dt.routine)
    before = counts(db)
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        receipt.sign_delivery(session, custodian, delivery, "wrong-password")
    assert caught.value.code == "wrong_signing_password"
    after = counts(db)
    assert {k: v for k, v in after.items() if k != "AuditEvent"} == \
        {k: v for k, v in before.items() if k != "AuditEvent"}
    with db.reading() as session:
        new = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc())
                              .limit(after["AuditEvent"] - before["AuditEvent"])).all()
    assert all("received" not in a and "custody" not in a for a in new)  # only the failure is recorded


def test_receiving_twice_is_refused_across_deliveries(db, collected_task, custodian):
    dt = collected_task
    first = open_(db, custodian, sampler="sampler")
    second = open_(db, custodian, code=dt.task.code)
    scan(db, custodian, first, dt.barcodes()[0])
    scan(db, custodian, second, dt.barcodes()[1])  # the other container of the same sample, elsewhere
    decide(db, custodian, first, dt.routine)
    decide(db, custodian, second, dt.routine)
    sign(db, custodian, first)
    refused(db, "received_already", lambda s: receipt.sign_delivery(s, custodian, second, PASSWORD))


def test_signing_twice_is_refused(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    decide(db, custodian, delivery, dt.routine)
    sign(db, custodian, delivery)
    refused(db, "delivery_signed", lambda s: receipt.sign_delivery(s, custodian, delivery, PASSWORD))


def test_samples_all_missing_are_left_out_and_stay_where_they_were(db, collected_task, custodian):
    dt = collected_task
    delivery = open_(db, custodian, sampler="sampler")
    for barcode in dt.barcodes():
        scan(db, custodian, delivery, barcode)
    decide(db, custodian, delivery, dt.routine)
    shown = view(db, delivery)
    assert len(shown.left_out) == 2 and shown.ready_to_sign
    sign(db, custodian, delivery)
    done = refreshed(db, dt)
    assert sorted(s.state for s in done.samples) == ["collected", "collected", "received"]


def test_an_expired_clock_is_shown_red_and_does_not_block(db, collected_task, custodian):
    dt = collected_task
    with db.transaction() as session:
        session.execute(update(HoldingClock).where(HoldingClock.sample_id == dt.routine.id)
                        .values(deadline_at=utcnow() - timedelta(minutes=1), allowed_hours=0))
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    line = next(s for s in view(db, delivery).samples if s.sample.id == dt.routine.id)
    assert line.expired
    decide(db, custodian, delivery, dt.routine, "accept_with_conditions", deviation="holding time exceeded",
           consent_by="quality manager", consent_ref="QM note 12")
    sign(db, custodian, delivery)


def test_the_sample_page_section_shows_the_decision_and_the_signature(db, collected_task, custodian):
    dt = collected_task
    with db.reading() as session:
        assert receipt.receipt_section(session, session.get(Sample, dt.routine.id)) is None
    delivery = open_(db, custodian, sampler="sampler")
    scan(db, custodian, delivery, dt.barcodes()[0])
    with db.reading() as session:
        pending = receipt.receipt_section(session, session.get(Sample, dt.routine.id))
        assert pending.receipt is None and pending.delivery.code == delivery.code
    decide(db, custodian, delivery, dt.routine, "accept_with_conditions", deviation="label smudged",
           consent_by="client", consent_ref="mail 5")
    sign(db, custodian, delivery)
    with db.reading() as session:
        section = receipt.receipt_section(session, session.get(Sample, dt.routine.id))
        session.expunge_all()
    assert section.receipt.decision == "accept_with_conditions" and section.check.deviation == "label smudged"
    assert section.signature.intact and section.person(section.receipt.received_by_id).id == custodian.id


def test_two_deliveries_signed_at_once_receive_a_sample_once(pg_db, collected_task, users):
    from tests.conftest import race

    dt, custodian = collected_task, users["custodian"]
    first = open_(pg_db, custodian, sampler="sampler")
    second = open_(pg_db, custodian, code=dt.task.code)
    scan(pg_db, custodian, first, dt.barcodes()[0])
    scan(pg_db, custodian, second, dt.barcodes()[1])
    decide(pg_db, custodian, first, dt.routine)
    decide(pg_db, custodian, second, dt.routine)
    results = race(pg_db, lambda s: receipt.sign_delivery(s, custodian, first, PASSWORD),
                   lambda s: receipt.sign_delivery(s, custodian, second, PASSWORD))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DomainError) and errors[0].code == "received_already", results
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(SampleReceipt)) == 1


def test_the_same_container_scanned_at_once_is_kept_once(pg_db, collected_task, users):
    from tests.conftest import race

    dt, custodian = collected_task, users["custodian"]
    delivery = open_(pg_db, custodian, sampler="sampler")

    def act(session):
        return receipt.scan_container(session, custodian, receipt.delivery_by_code(session, delivery.code,
                                                                                   for_update=True), dt.barcodes()[0])

    results = race(pg_db, act, act)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(r.created for r in results) == [False, True]
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryScan)) == 1


def test_a_sample_past_its_holding_time_is_not_accepted_as_it_is(db, collected_task, custodian):
    """DOMAIN.md §3: received needs time left; past a deadline, accept with conditions or reject."""
    from tests.samples.test_prep_fixtures import expire_clocks

    dt = collected_task
    expire_clocks(db, dt.routine, ("Cu",))
    delivery = open_(db, custodian, sampler="sampler")
    for barcode in dt.barcodes():
        scan(db, custodian, delivery, barcode)
    found = receipt.delivery_by_code

    def accept(session):
        receipt.record_check(session, custodian, found(session, delivery.code), dt.routine.sample_no,
                             CheckInput(decision="accept"))

    error = refused(db, "receipt_accept_past_holding_time", accept)
    assert "Cu" in error.message("en") and "有条件接收" in error.message("zh")
    row = decide(db, custodian, delivery, dt.routine, "accept_with_conditions", deviation="Cu 超过保存期",
                 consent_by="委托方 王工", consent_ref="电话 2026-05-01")
    assert row.decision == "accept_with_conditions"


def _cooler(db, dt, **handover) -> str:
    """The task's containers packed by the sampler into a sealed cooler handed over as given."""
    from app.samples import shipments

    with db.transaction() as session:
        sampler = session.get(User, dt.sampler.id)
        cooler = shipments.create_shipment(session, sampler)
        shipments.pack(session, sampler, cooler, all_barcodes(dt))
        shipments.seal_shipment(session, sampler, cooler, "F-77")
        shipments.hand_over_shipment(session, sampler, cooler, **handover)
        return cooler.code


def _receipt_links(db) -> list[CustodyEventContainer]:
    with db.reading() as session:
        links = list(session.scalars(select(CustodyEventContainer).join(
            CustodyEvent, CustodyEvent.id == CustodyEventContainer.event_id).where(CustodyEvent.kind == "receipt")))
        session.expunge_all()
        return links


def _receive_everything(db, dt, custodian, delivery) -> None:
    for barcode in all_barcodes(dt):
        scan(db, custodian, delivery, barcode)
    for sample in dt.samples:
        decide(db, custodian, delivery, sample, "accept")
    sign(db, custodian, delivery)


def test_a_cooler_with_a_driver_who_is_not_a_user_comes_from_that_driver(db, collected_task, custodian):
    dt = collected_task
    code = _cooler(db, dt, taker_place="采样车司机 老周")
    delivery = open_(db, custodian, code=code)
    assert (delivery.delivered_by_id, delivery.delivered_by_name) == (None, "采样车司机 老周")
    _receive_everything(db, dt, custodian, delivery)
    links = _receipt_links(db)
    assert len(links) == 9 and not any(link.gap for link in links)  # the driver held the cooler: no gap


def test_a_cooler_already_handed_to_the_custodian_is_received_without_a_second_hand_over(db, collected_task,
                                                                                          custodian):
    dt = collected_task
    code = _cooler(db, dt, taker_id=custodian.id)
    delivery = open_(db, custodian, code=code)
    assert delivery.delivered_by_id == custodian.id  # the hand-over recorded who gave it to her
    _receive_everything(db, dt, custodian, delivery)
    assert _receipt_links(db) == []  # custody moved at the hand-over; the receipt adds the checks
    done = refreshed(db, dt)
    assert {s.state for s in done.samples} == {"received"} and not any(s.custody_gap for s in done.samples)
