"""Hand-over by scanning (issue 7 item 1): person to person, to and from a courier, who may record
it, who may take samples, bad scans, bad times and temperatures, the first custody event putting
a collected sample in transit, gaps, and resends by client id. Every refusal changes nothing."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.codes import with_check_digit
from app.core.db import utcnow
from app.core.errors import DomainError
from app.samples import handover, lab_input
from app.samples.chain import NOT_FROM_HOLDER, OUT_OF_ORDER, custody_chain
from app.samples.custody import Party, record_custody
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, CustodyKind
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.conftest import make_user
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes, container, refreshed


@pytest.fixture(autouse=True)
def roles_held_for_a_while(db, users):
    """Roles are evaluated at the time of the act (DOMAIN.md §2 rule 5): acts dated minutes ago
    need roles granted before them."""
    backdate_roles(db)


def backdate_roles(db) -> None:
    from sqlalchemy import update

    from app.people.models import RoleGrant

    with db.transaction() as session:
        session.execute(update(RoleGrant).values(valid_from=utcnow() - timedelta(days=30)))


def state(db) -> dict:
    """What a refused act must leave as it was."""
    with db.reading() as session:
        return {
            "events": session.scalar(select(func.count()).select_from(CustodyEvent)),
            "links": session.scalar(select(func.count()).select_from(CustodyEventContainer)),
            "audit": session.scalar(select(func.count()).select_from(AuditEvent)),
            "holders": sorted(session.execute(select(Container.id, Container.holder_id)).all()),
            "samples": sorted(session.execute(select(Sample.id, Sample.state, Sample.custody_gap)).all()),
        }


def act(db, actor, barcodes, **kwargs):
    with db.transaction() as session:
        event = handover.hand_over(session, session.merge(actor), barcodes, **kwargs)
        return event.id


def refused(db, code: str, actor, barcodes, **kwargs) -> DomainError:
    before = state(db)
    with pytest.raises(DomainError) as caught:
        act(db, actor, barcodes, **kwargs)
    assert caught.value.code == code, caught.value
    assert state(db) == before
    return caught.value


def audit_actions(db, n: int) -> list[str]:
    with db.reading() as session:
        return list(reversed(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(n)).all()))


@contextmanager
def chain_of(db, sample):
    with db.reading() as session:
        yield custody_chain(session, session.get(Sample, sample.id))


def ago(minutes: int):
    return utcnow() - timedelta(minutes=minutes)


# ---------------------------------------------------------------- passing


def test_sampler_hands_containers_to_the_custodian_and_samples_go_in_transit(db, users, collected_task):
    dt = collected_task
    sampler, custodian = dt.sampler, users["custodian"]
    barcodes = all_barcodes(dt)
    event_id = act(db, sampler, barcodes + [barcodes[0].lower(), f" {barcodes[1]} "], giver_id=sampler.id,
                   taker_id=custodian.id, occurred_at=ago(5), place="松花江大桥", cooler_temp_c=Decimal("4.5"),
                   seal_no="F-0001", seal_intact=True, note="冷藏箱 1")
    with db.reading() as session:
        event = session.get(CustodyEvent, event_id)
        assert (event.kind, event.from_user_id, event.to_user_id, event.to_place) == (
            "handover", sampler.id, custodian.id, "松花江大桥")
        assert (event.cooler_temp_c, event.seal_no, event.seal_intact) == (Decimal("4.5"), "F-0001", True)
        links = session.scalars(select(CustodyEventContainer).where(CustodyEventContainer.event_id == event_id)).all()
        assert len(links) == len(barcodes)  # each container once, however often scanned
        assert not any(link.gap for link in links)
    for barcode in barcodes:
        assert container(db, barcode).holder_id == custodian.id
    now = refreshed(db, dt)
    assert {s.state for s in now.samples} == {SampleState.IN_TRANSIT.value}
    assert audit_actions(db, 4) == ["custody.handover", "sample.in_transit", "sample.in_transit", "sample.in_transit"]


def test_the_taker_may_record_it_and_only_the_first_event_puts_a_sample_in_transit(db, users, collected_task):
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    custodian = users["custodian"]
    mine = dt.barcodes()
    act(db, driver, mine, giver_id=dt.sampler.id, taker_id=driver.id, occurred_at=ago(8))  # the taker records
    assert audit_actions(db, 2) == ["custody.handover", "sample.in_transit"]
    act(db, driver, mine, giver_id=driver.id, taker_id=custodian.id, occurred_at=ago(4))
    assert audit_actions(db, 1) == ["custody.handover"]
    assert refreshed(db, dt).routine.state == SampleState.IN_TRANSIT.value
    assert all(container(db, b).holder_id == custodian.id for b in mine)


def test_through_a_courier_with_its_waybill_the_chain_shows_no_gap(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    mine = dt.barcodes()
    act(db, dt.sampler, mine, giver_id=dt.sampler.id, taker_place="顺丰 SF1234567890", occurred_at=ago(9))
    assert all(container(db, b).holder_id is None for b in mine)
    act(db, custodian, mine, giver_place="顺丰 SF1234567890", taker_id=custodian.id, occurred_at=ago(3))
    with chain_of(db, dt.routine) as chain:
        assert not chain.gaps and not chain.has_gap
        first = chain.containers[0]
        assert first.start.username == "sampler"
        assert [(link.giver.kind, link.taker.kind) for link in first.links] == [("person", "place"),
                                                                                ("place", "person")]
        assert first.links[0].taker.place == "顺丰 SF1234567890"
        assert first.current.username == "custodian"


def test_a_resend_with_the_same_client_id_is_the_same_event_and_other_content_is_refused(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    at = ago(5)
    kwargs = dict(giver_id=dt.sampler.id, taker_id=custodian.id, occurred_at=at, cooler_temp_c=Decimal("4.0"),
                  client_id="phone-0001-abc")
    first = act(db, dt.sampler, dt.barcodes(), **kwargs)
    before = state(db)
    again = act(db, dt.sampler, list(reversed(dt.barcodes())), **{**kwargs, "cooler_temp_c": Decimal("4.00")})
    assert again == first
    assert state(db) == before
    error = refused(db, "custody_client_id_reused", dt.sampler, dt.barcodes(), **{**kwargs, "note": "other"})
    assert "phone-0001-abc" in error.message("zh")
    refused(db, "bad_custody_client_id", dt.sampler, dt.barcodes(), **{**kwargs, "client_id": "短"})


# ---------------------------------------------------------------- refusals


def test_who_records_and_who_takes(db, users, collected_task):
    dt = collected_task
    custodian, analyst = users["custodian"], users["analyst"]
    mine = dt.barcodes()
    error = refused(db, "handover_actor_not_party", analyst, mine, giver_id=dt.sampler.id, taker_id=custodian.id,
                    occurred_at=ago(5))
    assert error.http_status == 403
    refused(db, "same_party_both_sides", dt.sampler, mine, giver_id=dt.sampler.id, taker_id=dt.sampler.id,
            occurred_at=ago(5))
    refused(db, "custody_taker_not_allowed", dt.sampler, mine, giver_id=dt.sampler.id,
            taker_id=users["checker"].id, occurred_at=ago(5))
    with db.transaction() as session:
        people_user = session.merge(analyst)
        people_user.active = False
    refused(db, "custody_taker_not_allowed", dt.sampler, mine, giver_id=dt.sampler.id, taker_id=analyst.id,
            occurred_at=ago(5))
    refused(db, "custody_party_required", dt.sampler, mine, giver_id=dt.sampler.id, occurred_at=ago(5))
    refused(db, "custody_party_ambiguous", dt.sampler, mine, giver_id=dt.sampler.id, taker_id=custodian.id,
            taker_place="顺丰", occurred_at=ago(5))
    refused(db, "custody_user_unknown", dt.sampler, mine, giver_id=dt.sampler.id, taker_id=999_999,
            occurred_at=ago(5))
    refused(db, "permission_denied", users["checker"], mine, giver_id=users["checker"].id, taker_id=custodian.id,
            occurred_at=ago(5))
    refused(db, "inspector_read_only", users["inspector"], mine, giver_id=users["inspector"].id,
            taker_id=custodian.id, occurred_at=ago(5))


def test_a_taker_whose_role_ended_before_the_act_is_refused(db, users, collected_task):
    dt = collected_task
    temp = make_user(db, "temp-driver", "sampler")
    with db.transaction() as session:
        from app.people.models import RoleGrant

        grant = session.scalars(select(RoleGrant).where(RoleGrant.user_id == temp.id)).one()
        grant.valid_from = ago(600)
        grant.valid_to = ago(60)
    refused(db, "custody_taker_not_allowed", dt.sampler, dt.barcodes(), giver_id=dt.sampler.id, taker_id=temp.id,
            occurred_at=ago(5))


def test_bad_scans_are_refused_by_name(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    good = dt.barcodes()[0]
    wrong_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    common = dict(giver_id=dt.sampler.id, taker_id=custodian.id, occurred_at=ago(5))
    refused(db, "wrong_check_digit", dt.sampler, [good, wrong_digit], **common)
    refused(db, "container_not_found", dt.sampler, [good, with_check_digit("CT26-9999999")], **common)
    refused(db, "malformed_barcode", dt.sampler, [good, "hello world!"], **common)
    refused(db, "not_a_container", dt.sampler, [good, "RM26-00001"], **common)
    refused(db, "no_containers", dt.sampler, ["", "  "], **common)
    refused(db, "too_many_barcodes", dt.sampler, [f"X{i}" for i in range(handover.MAX_BARCODES + 1)], **common)


def test_disposed_and_rejected_containers_are_refused(db, users, collected_task):
    dt = collected_task
    custodian = users["custodian"]
    first, second = dt.barcodes()[:2]
    with db.transaction() as session:
        session.scalars(select(Container).where(Container.barcode == first)).one().state = ContainerState.DISPOSED.value
    common = dict(giver_id=dt.sampler.id, taker_id=custodian.id, occurred_at=ago(5))
    refused(db, "container_closed", dt.sampler, [second, first], **common)
    with db.transaction() as session:
        session.scalars(select(Container).where(Container.barcode == first)).one().state = ContainerState.FILLED.value
        session.get(Sample, dt.routine.id).state = SampleState.REJECTED.value
    refused(db, "container_rejected_no_custody", dt.sampler, [second], **common)


def test_times_before_sampling_or_in_the_future_are_refused(db, users, collected_task):
    dt = collected_task
    common = dict(giver_id=dt.sampler.id, taker_id=users["custodian"].id)
    refused(db, "act_before_sampling", dt.sampler, dt.barcodes(), occurred_at=ago(60 * 24), **common)
    refused(db, "act_in_future", dt.sampler, dt.barcodes(), occurred_at=utcnow() + timedelta(hours=1), **common)
    refused(db, "invalid_act_time", dt.sampler, dt.barcodes(), occurred_at="yesterday", **common)


def test_temperatures_are_celsius_in_a_plausible_range(db, users, collected_task):
    dt = collected_task
    assert lab_input.celsius("277.15", "K", "t", "t") == Decimal("4.00")
    common = dict(giver_id=dt.sampler.id, taker_id=users["custodian"].id, occurred_at=ago(5))
    refused(db, "temperature_out_of_range", dt.sampler, dt.barcodes(), cooler_temp_c=Decimal("4000"), **common)
    refused(db, "not_a_number", dt.sampler, dt.barcodes(), cooler_temp_c=0.5, **common)


def test_long_texts_are_refused(db, users, collected_task):
    dt = collected_task
    common = dict(giver_id=dt.sampler.id, taker_id=users["custodian"].id, occurred_at=ago(5))
    refused(db, "field_too_long", dt.sampler, dt.barcodes(), note="x" * 501, **common)
    refused(db, "field_too_long", dt.sampler, dt.barcodes(), seal_no="S" * 41, **common)
    refused(db, "field_too_long", dt.sampler, dt.barcodes(), place="p" * 201, **common)


# ---------------------------------------------------------------- gaps


def test_a_container_taken_from_someone_who_did_not_hold_it_is_a_gap(db, users, collected_task):
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    custodian = users["custodian"]
    mine = dt.barcodes()
    act(db, dt.sampler, mine, giver_id=dt.sampler.id, taker_id=driver.id, occurred_at=ago(8))
    # the custodian writes that the sampler gave them, but the driver had them
    act(db, custodian, mine[:1], giver_id=dt.sampler.id, taker_id=custodian.id, occurred_at=ago(4))
    now = refreshed(db, dt)
    assert now.routine.custody_gap is True
    assert not any(s.custody_gap for s in now.samples if s.id != now.routine.id)
    with chain_of(db, dt.routine) as chain:
        [gap] = chain.gaps
        assert gap.barcode == mine[0]
        assert gap.link.gap_reasons == (NOT_FROM_HOLDER,)
        assert gap.link.holder_before.username == "driver" and gap.link.giver.username == "sampler"


def test_received_at_the_door_from_someone_else_than_the_holder_is_a_gap(db, users, collected_task):
    """The receipt's custody event (helper B records it through record_custody) with a giver
    who is not the holder: the sampler still holds the container, the driver brought it."""
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    custodian = users["custodian"]
    with db.transaction() as session:
        containers = session.scalars(select(Container).where(Container.barcode.in_(dt.barcodes()))).all()
        record_custody(session, session.merge(custodian), containers, CustodyKind.RECEIPT,
                       giver=Party(user_id=driver.id), taker=Party(user_id=custodian.id), occurred_at=ago(2))
    with chain_of(db, dt.routine) as chain:
        assert chain.has_gap and len(chain.gaps) == 3
        assert {g.link.kind for g in chain.gaps} == {"receipt"}
        assert all(g.link.holder_before.username == "sampler" for g in chain.gaps)


def test_an_act_dated_before_the_one_recorded_before_it_is_a_gap(db, users, collected_task):
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    mine = dt.barcodes()[:1]
    act(db, dt.sampler, mine, giver_id=dt.sampler.id, taker_id=driver.id, occurred_at=ago(3))
    act(db, driver, mine, giver_id=driver.id, taker_id=users["custodian"].id, occurred_at=ago(6))
    with chain_of(db, dt.routine) as chain:
        [gap] = chain.gaps
        assert gap.link.gap_reasons == (OUT_OF_ORDER,)


def test_a_sample_not_yet_signed_in_the_field_does_not_change_hands(db, users, collected_task, count_queries):
    dt = collected_task
    with db.transaction() as session:
        session.get(Sample, dt.routine.id).state = SampleState.REGISTERED.value
    refused(db, "container_not_collected", dt.sampler, dt.barcodes(), giver_id=dt.sampler.id,
            taker_id=users["custodian"].id, occurred_at=ago(5))
    from app.samples.chain import custody_section

    with db.reading() as session:
        sample = session.get(Sample, dt.routine.id)
        with count_queries() as q:
            assert custody_section(session, sample) is None
        assert q.count == 0


def test_aliquots_have_their_own_chain_linked_to_the_parent(db, users, collected_task):
    """An aliquot is a container of the same sample with a parent (app.samples.aliquots makes
    them); its chain starts with whoever took it and is shown beside its parent's."""
    dt = collected_task
    analyst, custodian = users["analyst"], users["custodian"]
    parent = dt.barcodes()[0]
    act(db, dt.sampler, dt.barcodes(), giver_id=dt.sampler.id, taker_id=custodian.id, occurred_at=ago(6))
    with db.transaction() as session:
        source = session.scalars(select(Container).where(Container.barcode == parent)).one()
        aliquot = Container(
            barcode=with_check_digit("CT26-8000001"), sample_id=source.sample_id, position=9,
            group_code=source.group_code, container_type="G", parameters=source.parameters,
            state=ContainerState.FILLED.value, filled_at=ago(4), created_at=ago(4), kind="aliquot",
            parent_id=source.id, amount=Decimal("50"), amount_unit="mL", holder_id=analyst.id)
        session.add(aliquot)
    act(db, analyst, [aliquot.barcode], giver_id=analyst.id, taker_id=custodian.id, occurred_at=ago(2))
    with chain_of(db, dt.routine) as chain:
        by_barcode = {c.barcode: c for c in chain.containers}
        assert list(by_barcode)[-1] == aliquot.barcode  # after the containers filled in the field
        mine = by_barcode[aliquot.barcode]
        assert mine.parent_barcode == parent
        assert mine.start.username == "analyst" and mine.current.username == "custodian"
        assert len(mine.links) == 1 and not chain.gaps
