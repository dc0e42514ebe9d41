"""Shipments (coolers): made with a checked code, containers scanned in and out while packing
(append-only scans, a container in one packing cooler at a time, only holders pack), a seal, the
whole cooler handed over in one act over several hops (people and a courier), its label, and the
refusals (empty, not packing, delivered, a packed container handed over on its own)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.people.models import RoleGrant
from app.samples import handover, shipments
from app.samples.chain import custody_chain
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, Shipment, ShipmentScan, ShipmentState
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.conftest import make_user
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes, container, refreshed


@pytest.fixture(autouse=True)
def roles_held_for_a_while(db, users):
    backdate_roles(db)


def backdate_roles(db) -> None:
    with db.transaction() as session:
        session.execute(update(RoleGrant).values(valid_from=utcnow() - timedelta(days=30)))


def ago(minutes: int):
    return utcnow() - timedelta(minutes=minutes)


def state(db) -> dict:
    with db.reading() as session:
        return {
            "events": session.scalar(select(func.count()).select_from(CustodyEvent)),
            "links": session.scalar(select(func.count()).select_from(CustodyEventContainer)),
            "scans": session.scalar(select(func.count()).select_from(ShipmentScan)),
            "audit": session.scalar(select(func.count()).select_from(AuditEvent)),
            "containers": sorted(session.execute(select(Container.id, Container.holder_id, Container.shipment_id,
                                                        Container.state)).all()),
            "shipments": sorted(session.execute(select(Shipment.id, Shipment.state, Shipment.holder_id,
                                                       Shipment.seal_no)).all()),
            "samples": sorted(session.execute(select(Sample.id, Sample.state)).all()),
        }


def new(db, actor) -> str:
    with db.transaction() as session:
        return shipments.create_shipment(session, session.merge(actor), note="冷藏箱 A").code


def do(db, actor, code: str, verb: str, *args, **kwargs):
    with db.transaction() as session:
        shipment = shipments.shipment_by_code(session, code)
        result = getattr(shipments, verb)(session, session.merge(actor), shipment, *args, **kwargs)
        if isinstance(result, list):
            return [c.barcode for c in result]
        return getattr(result, "id", None)


def refused(db, error_code: str, actor, code: str, verb: str, *args, **kwargs) -> DomainError:
    before = state(db)
    with pytest.raises(DomainError) as caught:
        do(db, actor, code, verb, *args, **kwargs)
    assert caught.value.code == error_code, caught.value
    assert state(db) == before
    return caught.value


def shipment(db, code: str) -> Shipment:
    with db.reading() as session:
        found = shipments.shipment_by_code(session, code)
        session.expunge(found)
        return found


# ---------------------------------------------------------------- packing


def test_a_shipment_has_a_checked_code_and_is_found_by_it(db, users, collected_task):
    code = new(db, collected_task.sampler)
    assert re.fullmatch(r"SH\d{2}-\d{6}", code)
    made = shipment(db, code)
    assert (made.state, made.holder_id, made.note) == ("packing", collected_task.sampler.id, "冷藏箱 A")
    assert shipment(db, f" {code.lower()} ").id == made.id
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    with db.reading() as session, pytest.raises(DomainError) as caught:
        shipments.shipment_by_code(session, wrong)
    assert caught.value.code == "shipment_wrong_check_digit"
    with db.reading() as session, pytest.raises(DomainError) as caught:
        shipments.shipment_by_code(session, "SH26-9999")
    assert caught.value.code == "shipment_not_found" and caught.value.http_status == 404
    with db.reading() as session:
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc())).first() == "shipment.created"


def test_containers_are_scanned_in_and_out_while_packing(db, users, collected_task):
    dt = collected_task
    code = new(db, dt.sampler)
    barcodes = all_barcodes(dt)
    assert do(db, dt.sampler, code, "pack", barcodes + barcodes[:2]) == barcodes
    assert do(db, dt.sampler, code, "pack", barcodes[:1]) == []  # already in: counts once
    made = shipment(db, code)
    assert all(container(db, b).shipment_id == made.id for b in barcodes)
    assert do(db, dt.sampler, code, "unpack", [barcodes[0]]) == [barcodes[0]]
    assert container(db, barcodes[0]).shipment_id is None
    with db.reading() as session:
        scans = session.execute(select(ShipmentScan.action, func.count()).group_by(ShipmentScan.action)).all()
        assert dict(scans) == {"in": len(barcodes), "out": 1}
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(2)).all()
        assert actions == ["shipment.unpacked", "shipment.packed"]


def test_packing_refusals(db, users, collected_task):
    dt = collected_task
    code = new(db, dt.sampler)
    other = new(db, dt.sampler)
    first, second, third = dt.barcodes()
    do(db, dt.sampler, code, "pack", [first])
    error = refused(db, "container_in_other_shipment", dt.sampler, other, "pack", [second, first])
    assert code in error.message("zh")
    refused(db, "container_not_in_shipment", dt.sampler, other, "unpack", [first])
    refused(db, "shipment_packer_not_holder", users["analyst"], code, "pack", [second])
    refused(db, "shipment_packer_not_holder", users["analyst"], code, "unpack", [first])
    refused(db, "wrong_check_digit", dt.sampler, code, "pack", [second[:-1] + str((int(second[-1]) + 1) % 10)])
    refused(db, "inspector_read_only", users["inspector"], code, "pack", [second])
    with db.transaction() as session:
        session.scalars(select(Container).where(Container.barcode == third)).one().state = ContainerState.ISSUED.value
    refused(db, "container_not_collected", dt.sampler, code, "pack", [third])
    with db.transaction() as session:
        row = session.scalars(select(Container).where(Container.barcode == third)).one()
        row.state = ContainerState.DISPOSED.value
    refused(db, "container_closed", dt.sampler, code, "pack", [third])
    # the custodian holding the cooler may pack what someone else holds (a gap shows at hand-over)
    custodians = new(db, users["custodian"])
    assert do(db, users["custodian"], custodians, "pack", [second]) == [second]


def test_a_packed_container_travels_with_its_cooler_not_on_its_own(db, users, collected_task):
    dt = collected_task
    code = new(db, dt.sampler)
    do(db, dt.sampler, code, "pack", dt.barcodes()[:1])
    before = state(db)
    with db.transaction() as session, pytest.raises(DomainError) as caught:
        handover.hand_over(session, session.merge(dt.sampler), dt.barcodes(), giver_id=dt.sampler.id,
                           taker_id=users["custodian"].id, occurred_at=ago(5))
    assert caught.value.code == "container_packed_in_shipment"
    assert state(db) == before


# ---------------------------------------------------------------- handing over


def test_the_whole_cooler_is_handed_over_in_one_act_over_two_hops(db, users, collected_task):
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    custodian = users["custodian"]
    code = new(db, dt.sampler)
    barcodes = all_barcodes(dt)
    do(db, dt.sampler, code, "pack", barcodes)
    do(db, dt.sampler, code, "seal_shipment", "F-778899")
    first = do(db, dt.sampler, code, "hand_over_shipment", taker_id=driver.id, occurred_at=ago(8),
               cooler_temp_c=Decimal("3.5"), seal_intact=True, place="采样点")
    made = shipment(db, code)
    assert (made.state, made.holder_id, made.seal_no) == ("handed_over", driver.id, "F-778899")
    assert {s.state for s in refreshed(db, dt).samples} == {SampleState.IN_TRANSIT.value}
    refused(db, "shipment_not_packing", driver, code, "pack", barcodes[:1])
    refused(db, "handover_actor_not_party", users["analyst"], code, "hand_over_shipment", taker_id=custodian.id,
            occurred_at=ago(4))
    second = do(db, custodian, code, "hand_over_shipment", taker_id=custodian.id, occurred_at=ago(4),
                cooler_temp_c=Decimal("5"), seal_intact=True)  # the custodian takes it from the driver
    with db.reading() as session:
        events = session.scalars(select(CustodyEvent).where(CustodyEvent.shipment_id == made.id)
                                 .order_by(CustodyEvent.id)).all()
        assert [e.id for e in events] == [first, second]
        assert [(e.from_user_id, e.to_user_id) for e in events] == [(dt.sampler.id, driver.id),
                                                                    (driver.id, custodian.id)]
        assert [e.seal_no for e in events] == ["F-778899", "F-778899"]
        assert events[0].cooler_temp_c == Decimal("3.5")
        for event in events:
            count = session.scalar(select(func.count()).select_from(CustodyEventContainer)
                                   .where(CustodyEventContainer.event_id == event.id))
            assert count == len(barcodes)
        chain = custody_chain(session, session.get(Sample, dt.routine.id))
        assert not chain.gaps
        assert [link.shipment_code for link in chain.containers[0].links] == [code, code]
    assert all(container(db, b).holder_id == custodian.id and container(db, b).shipment_id == made.id
               for b in barcodes)
    assert shipment(db, code).holder_id == custodian.id


def test_a_cooler_through_a_courier(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    code = new(db, dt.sampler)
    do(db, dt.sampler, code, "pack", dt.barcodes())
    do(db, dt.sampler, code, "hand_over_shipment", taker_place="顺丰 SF1234567890", occurred_at=ago(8),
       seal_no="F-1", seal_intact=True)
    found = shipment(db, code)
    assert (found.holder_id, found.holder_place) == (None, "顺丰 SF1234567890")  # the courier has it now
    # only the custodian taking it from the courier can record the next hop
    refused(db, "handover_actor_not_party", dt.sampler, code, "hand_over_shipment", taker_id=custodian.id,
            occurred_at=ago(3))
    do(db, custodian, code, "hand_over_shipment", taker_id=custodian.id, occurred_at=ago(3), seal_intact=False,
       note="封条破损")
    with db.reading() as session:
        last = session.scalars(select(CustodyEvent).order_by(CustodyEvent.id.desc())).first()
        assert (last.from_place, last.from_user_id, last.to_user_id, last.seal_intact, last.seal_no) == (
            "顺丰 SF1234567890", None, custodian.id, False, "F-1")
        chain = custody_chain(session, session.get(Sample, dt.routine.id))
        assert not chain.gaps


def test_an_empty_delivered_or_repeated_cooler(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    code = new(db, dt.sampler)
    refused(db, "shipment_empty", dt.sampler, code, "hand_over_shipment", taker_id=custodian.id, occurred_at=ago(3))
    do(db, dt.sampler, code, "pack", dt.barcodes())
    refused(db, "same_party_both_sides", dt.sampler, code, "hand_over_shipment", taker_id=dt.sampler.id,
            occurred_at=ago(3))
    refused(db, "temperature_out_of_range", dt.sampler, code, "hand_over_shipment", taker_id=custodian.id,
            occurred_at=ago(3), cooler_temp_c=Decimal("277.15"))
    kwargs = dict(taker_id=custodian.id, occurred_at=ago(3), client_id="cooler-hop-0001")
    first = do(db, dt.sampler, code, "hand_over_shipment", **kwargs)
    before = state(db)
    assert do(db, dt.sampler, code, "hand_over_shipment", **kwargs) == first
    assert state(db) == before
    with db.transaction() as session:
        session.scalars(select(Shipment).where(Shipment.code == code)).one().state = ShipmentState.DELIVERED.value
    refused(db, "shipment_closed", custodian, code, "hand_over_shipment", taker_id=users["analyst"].id,
            occurred_at=ago(1))
    refused(db, "shipment_closed", custodian, code, "seal_shipment", "F-2")


def test_the_label_is_a_pdf_with_the_code(db, users, collected_task):
    code = new(db, collected_task.sampler)
    with db.reading() as session:
        data = shipments.shipment_label_pdf(session, shipments.shipment_by_code(session, code))
    assert data.startswith(b"%PDF")
