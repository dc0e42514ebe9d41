"""The demo's lab part (app.samples.lab_demo): the week's coolers received and signed with the
intended decisions, the bottles in the fridges (one shelf nearly full), a custody gap on exactly
the day the hand-over was not recorded, a courier without one, yesterday's cooler in transit, a
signed digestion batch, an open distillation with the quality manager's deviation, a disposal
request awaiting the quality manager, the custodian's day filled; entered through the services
at the times of the acts, so the audit chain holds; and loading it twice adds nothing.

The whole demo is loaded once per engine (module-scoped, like tests/samples/test_demo.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import verify_chain
from app.core.db import utcnow
from app.core.signatures import ElectronicSignature, check
from app.people.models import User
from app.samples import chain, custodian_day, holding, preparation, receipt
from app.samples.lab_demo import (
    CABINET,
    CONDITIONAL,
    COURIER,
    DAYS,
    DIGESTED,
    DIGESTION_METHOD,
    DRIVER,
    FRIDGE_1,
    FRIDGE_2,
    LATE,
    METALS,
    OLD_VISIT,
    REJECTED,
    ROOM,
    SPIKED,
    load_lab_demo,
)
from app.samples.lab_models import (
    CustodyEvent,
    Delivery,
    DeliveryScan,
    DisposalRequest,
    DisposalRequestSample,
    HoldingClock,
    HoldingDeviation,
    PrepBatch,
    PrepBatchItem,
    PrepBatchMaterial,
    ReceiptCheck,
    SampleReceipt,
    Shipment,
    StorageLocation,
)
from app.samples.models import Container, ContainerKind, Sample, SampleKind, SampleState
from app.sites.models import SamplingTask, Site
from tests.conftest import ENGINES
from tests.sites.test_demo import Demo, demo_database, row_counts


def _load_lab(demo: Demo) -> None:
    """What app.demo.load_demo will do once the lab demo is wired in (a no-op then)."""
    with demo.db.transaction() as session:
        users = {u.username: u for u in session.scalars(select(User))}
        load_lab_demo(session, users, demo.store)


@pytest.fixture(scope="module", params=ENGINES)
def lab_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    loaded = demo_database(request, tmp_path_factory, through="lab")
    demo = next(loaded)
    try:
        _load_lab(demo)
        yield demo
    finally:
        loaded.close()


def on_day(session, sampler: User, today: date, days_ago: int) -> list[Sample]:
    tasks = select(SamplingTask.id).where(SamplingTask.sampler_id == sampler.id, SamplingTask.plan_id.is_(None),
                                          SamplingTask.scheduled_on == today - timedelta(days=days_ago))
    return list(session.scalars(select(Sample).where(Sample.task_id.in_(tasks)).order_by(Sample.sample_no)))


def sample_of(session, sampler: User, today: date, days_ago: int, site: str,
              kind: str = SampleKind.ROUTINE.value) -> Sample:
    site_id = session.scalar(select(Site.id).where(Site.code == site))
    (found,) = [s for s in on_day(session, sampler, today, days_ago) if s.site_id == site_id and s.kind == kind]
    return found


def test_every_cooler_but_yesterdays_was_received_signed_with_the_decisions_intended(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        received_days = [d for d in DAYS if d.arrival is not None]
        # the lab demo's week only: the analysis demo receives a month of rounds before it
        first = db.calendar.start_of(today - timedelta(days=max(d.days_ago for d in DAYS)))
        deliveries = session.scalars(select(Delivery).where(Delivery.arrived_at >= first)
                                     .order_by(Delivery.arrived_at)).all()
        assert len(deliveries) == len(received_days)
        assert {d.state for d in deliveries} == {"signed"}
        for delivery, day in zip(deliveries, received_days, strict=True):
            local = delivery.arrived_at.astimezone(db.calendar.tz)
            assert local.date() == today - timedelta(days=day.days_ago) and 15 <= local.hour <= 18
            assert (local.hour, local.minute) == day.arrival
            signature = session.get(ElectronicSignature, delivery.signature_id)
            assert signature.meaning == "received" and signature.signer_id == lab_db.users["custodian"].id
            # signed at the door that afternoon, not when the demo was loaded
            assert timedelta(0) < signature.signed_at - delivery.arrived_at < timedelta(hours=1)
            expected = session.scalar(select(func.count()).select_from(DeliveryScan)
                                      .where(DeliveryScan.delivery_id == delivery.id, DeliveryScan.expected))
            assert expected and not delivery_missing(session, delivery)
            assert (delivery.shipment_id is None) == (day.route == "unrecorded")
            if day.warm:
                assert delivery.cooler_temp_c > 10
            else:
                assert 3 <= delivery.cooler_temp_c <= 5
            content = receipt.delivery_content(session, delivery, list(receipt.latest_checks(session,
                                                                                             delivery.id).values()))
            assert not check(signature, content).broken

        decisions = Counter(session.scalars(select(SampleReceipt.decision)))
        old = on_day(session, sampler, today, OLD_VISIT[1])
        assert decisions["reject"] == 1 + len(old) and decisions["accept_with_conditions"] == 1
        assert decisions["accept"] == session.scalar(select(func.count()).select_from(SampleReceipt)) - 2 - len(old)

        conditional = sample_of(session, sampler, today, CONDITIONAL[0], CONDITIONAL[1], CONDITIONAL[2])
        deviation = receipt.receipt_deviation(session, conditional.id)
        assert deviation and "pH 3" in deviation
        who, reference = receipt.receipt_consent(session, conditional.id)
        assert "质量负责人" in who and reference
        check_row = session.scalars(select(ReceiptCheck).join(SampleReceipt, SampleReceipt.check_id == ReceiptCheck.id)
                                    .where(SampleReceipt.sample_id == conditional.id)).one()
        assert check_row.preservation_ok is False and "3" in check_row.preservation_note

        rejected = sample_of(session, sampler, today, REJECTED[0], REJECTED[1], REJECTED[2])
        check_row = session.scalars(select(ReceiptCheck).join(SampleReceipt, SampleReceipt.check_id == ReceiptCheck.id)
                                    .where(SampleReceipt.sample_id == rejected.id)).one()
        assert check_row.decision == "reject" and check_row.container_intact is False
        assert "裂纹" in check_row.reject_reason
        assert rejected.state == SampleState.REJECTED.value
        assert rejected.retain_until == rejected.received_at + timedelta(days=30)  # from the rejection
        assert {s.state for s in old} == {SampleState.REJECTED.value}


def delivery_missing(session, delivery: Delivery) -> list[str]:
    return [line.container.barcode for line in receipt.delivery_view(session, delivery).missing]


def test_sample_states_after_the_week(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        yesterday = on_day(session, sampler, today, 1)
        assert yesterday and {s.state for s in yesterday} == {SampleState.IN_TRANSIT.value}
        assert all(s.received_at is None for s in yesterday)
        digested = {sample_of(session, sampler, today, d, site).id for d, site in DIGESTED}
        late = sample_of(session, sampler, today, *LATE)
        rejected = sample_of(session, sampler, today, *REJECTED)
        for day in DAYS:
            if day.arrival is None or day.warm:
                continue
            for sample in on_day(session, sampler, today, day.days_ago):
                if sample.id in digested:
                    assert sample.state == SampleState.PREPARED.value, sample.sample_no
                elif sample.id == late.id:
                    assert sample.state == SampleState.IN_PREPARATION.value
                elif sample.id == rejected.id:
                    assert sample.state == SampleState.REJECTED.value
                else:  # the conditionally received one too: received (with conditions), then stored
                    assert sample.state == SampleState.IN_STORAGE.value, sample.sample_no
        assert session.get(Sample, sample_of(session, sampler, today, CONDITIONAL[0], CONDITIONAL[1]).id).state \
            == SampleState.IN_STORAGE.value
        coolers = session.scalars(select(Shipment).order_by(Shipment.created_at)).all()
        assert [c.state for c in coolers] == ["delivered"] * (len(coolers) - 2) + ["handed_over"] * 2
        assert all(c.seal_no.startswith("F-") for c in coolers)
        # yesterday's cooler and this morning's are what the custodian can receive now, newest first
        waiting = receipt.candidates(session)
        assert [s.code for s, _ in waiting.shipments] == [coolers[-1].code, coolers[-2].code]
        assert all(DRIVER in c.note and c.holder_place == DRIVER for c in coolers[-2:])
        fresh = session.scalars(select(Container.sample_id).where(Container.shipment_id == coolers[-1].id)).all()
        clocks = session.scalars(select(HoldingClock).where(HoldingClock.sample_id.in_(fresh))).all()
        assert len(set(fresh)) == 3 and clocks  # this morning's three rounds, all still in time
        assert all(c.deadline_at is None or c.deadline_at > utcnow() for c in clocks)


def test_a_custody_gap_on_exactly_the_day_the_hand_over_was_not_recorded(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    (unrecorded,) = [d for d in DAYS if d.route == "unrecorded"]
    (courier,) = [d for d in DAYS if d.route == "courier"]
    with db.reading() as session:
        gap_day = {s.id for s in on_day(session, sampler, today, unrecorded.days_ago)}
        flagged = set(session.scalars(select(Sample.id).where(Sample.custody_gap.is_(True))))
        assert flagged == gap_day
        listed = chain.samples_with_custody_gaps(session)
        assert {row.sample.id for row in listed.items} == gap_day
        for sample in session.scalars(select(Sample).where(Sample.id.in_(gap_day))):
            view = chain.custody_chain(session, sample)
            assert view.has_gap and len(view.gaps) == len(view.containers)  # each bottle, at its receipt
            assert {(g.link.kind, g.link.giver.name_zh) for g in view.gaps} == {("receipt", DRIVER)}
        for sample in on_day(session, sampler, today, courier.days_ago):
            view = chain.custody_chain(session, sample)
            assert not view.has_gap
            kinds = [(link.kind, link.taker.name_zh) for link in view.containers[0].links][:2]
            assert kinds == [("handover", COURIER), ("receipt", lab_db.users["custodian"].display_name_zh)]


def test_the_bottles_are_in_the_sample_room_and_one_shelf_is_nearly_full(lab_db: Demo) -> None:
    db = lab_db.db
    with db.reading() as session:
        locations = {(loc.unit, loc.shelf): loc for loc in session.scalars(
            select(StorageLocation).where(StorageLocation.room == ROOM))}
        held = dict(session.execute(select(Container.location_id, func.count()).where(
            Container.location_id.is_not(None)).group_by(Container.location_id)).all())
        for location in locations.values():
            assert location.occupied == held.get(location.id, 0), location.code  # occupancy is the truth
        assert all(locations[(FRIDGE_1, shelf)].occupied for shelf in "ABC")
        assert locations[(CABINET, "")].occupied
        nearly = locations[(FRIDGE_2, "A")]
        assert 90 <= nearly.occupied * 100 / nearly.capacity < 100
        full = custodian_day.storage_full(session)
        assert [loc.code for loc in full.rows] == [nearly.code]
        # only received, accepted bottles were stored; the cold ones in a fridge
        stored = session.scalars(select(Container).where(Container.location_id.is_not(None))).all()
        assert {c.state for c in stored} == {"received"}
        by_id = {loc.id: loc for loc in locations.values()}
        assert all(by_id[c.location_id].unit in (FRIDGE_1, FRIDGE_2) for c in stored
                   if c.group_code in ("h2so4", "cool_dark"))


def test_the_digestion_batch_is_closed_and_signed_with_a_blank_a_spike_and_the_acid(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        (batch,) = session.scalars(select(PrepBatch).where(PrepBatch.state == "closed")).all()
        assert batch.kind == "digestion" and batch.method == DIGESTION_METHOD
        assert preparation.batch_parameters(batch) == list(METALS)
        view = preparation.batch_view(session, batch)
        assert view.signature is not None and not view.signature.broken
        assert view.signature.signature.meaning == "prepared"
        items = session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)
                                .order_by(PrepBatchItem.position)).all()
        assert Counter(i.role for i in items) == {"sample": len(DIGESTED), "spike": 1, "prep_blank": 1}
        digested = {sample_of(session, sampler, today, d, site).id for d, site in DIGESTED}
        assert {i.sample_id for i in items if i.role == "sample"} == digested
        (spike,) = [i for i in items if i.role == "spike"]
        assert spike.sample_id == sample_of(session, sampler, today, *SPIKED).id and spike.spike_amount is not None
        for item in items:
            if item.container_id:
                aliquot = session.get(Container, item.container_id)
                assert aliquot.kind == ContainerKind.ALIQUOT.value and aliquot.parent_id and aliquot.state == "emptied"
                assert item.amount == 50 and item.amount_unit == "mL"
        materials = session.scalars(select(PrepBatchMaterial).where(PrepBatchMaterial.batch_id == batch.id)).all()
        assert {m.barcode[:2] for m in materials} == {"RG", "SS"}  # the nitric acid and the spike standard
        local = batch.closed_at.astimezone(db.calendar.tz)
        assert local.date() == today - timedelta(days=3)


def test_an_open_distillation_holds_one_late_aliquot_with_the_quality_managers_deviation(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        (batch,) = session.scalars(select(PrepBatch).where(PrepBatch.state == "open")).all()
        assert batch.kind == "distillation" and preparation.batch_parameters(batch) == ["NH3-N"]
        (item,) = session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)).all()
        late = sample_of(session, sampler, today, *LATE)
        assert item.sample_id == late.id and item.deviation_id is not None
        deviation = session.get(HoldingDeviation, item.deviation_id)
        assert (deviation.parameter, deviation.act) == ("NH3-N", "preparation")
        assert deviation.recorded_by_id == lab_db.users["quality"].id and deviation.reason
        assert deviation.deadline_at < deviation.recorded_at <= item.added_at  # past the deadline, then used
        assert session.scalar(select(func.count()).select_from(HoldingDeviation)) == 1


def test_the_disposal_request_awaits_the_quality_manager(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        (request,) = session.scalars(select(DisposalRequest)).all()
        assert request.state == "requested" and request.requested_by_id == lab_db.users["custodian"].id
        ids = set(session.scalars(select(DisposalRequestSample.sample_id)
                                  .where(DisposalRequestSample.request_id == request.id)))
        old = on_day(session, sampler, today, OLD_VISIT[1])
        assert ids == {s.id for s in old}
        assert all(s.retain_until is not None and s.retain_until <= request.requested_at for s in old)


def test_the_custodians_day_and_the_holding_worklist(lab_db: Demo) -> None:
    db, sampler = lab_db.db, lab_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        day = custodian_day.custodian_day(session)
        yesterday = {s.sample_no for s in on_day(session, sampler, today, 1)}
        assert yesterday <= {row.sample_no for row in custodian_day.expected_today(session, today, 50).rows}
        assert day.expected.count >= len(yesterday)
        (unrecorded,) = [d for d in DAYS if d.route == "unrecorded"]
        assert day.gaps.count == len(on_day(session, sampler, today, unrecorded.days_ago)) > 0
        assert day.running_out.count > 0 and day.storage_full.count == 1
        page = holding.worklist(session, holding.WorklistFilters(), size=1000)
        colours = Counter(row.reading.colour.value for row in page.rows)
        assert colours["red"] > 0 and colours["amber"] > 0  # the metals round twelve days ago is amber all day


def test_every_lab_act_is_in_the_past_and_the_audit_chain_holds(lab_db: Demo) -> None:
    now = utcnow()
    with lab_db.db.reading() as session:
        moments = list(session.scalars(select(CustodyEvent.occurred_at)))
        moments += list(session.scalars(select(ElectronicSignature.signed_at)))
        moments += list(session.scalars(select(PrepBatchItem.added_at)))
        assert moments and all(m < now for m in moments)
        result = verify_chain(session, None)
    assert result.ok, result.reason


def test_loading_the_lab_demo_twice_adds_nothing_anywhere(lab_db: Demo) -> None:
    before = row_counts(lab_db.db)
    assert before["custody_event"] > 20 and before["delivery"] >= len([d for d in DAYS if d.arrival])

    lab_db.load_again()
    _load_lab(lab_db)

    assert row_counts(lab_db.db) == before
