"""Storage locations, moves by scan (store, move between locations, take out, give back) and
"where is sample X" in one scan (issue 7 item 4)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.samples import storage
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, StorageLocation
from app.samples.models import Container, ContainerKind, ContainerState, Sample, SampleState
from tests.samples.lab_fixtures import container
from tests.samples.test_storage_support import *  # noqa: F403
from tests.samples.test_storage_support import (
    audit_actions,
    location_row,
    make_location,
    receive_samples,
    rows,
    sample_row,
)


def refused(db, act, code: str, *models) -> DomainError:
    """Run `act(session)`; it must be refused with `code` and leave the counts of `models` and the
    audit trail as they were."""
    before = [rows(db, m) for m in models]
    trail = len(audit_actions(db))
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, caught.value
    assert [rows(db, m) for m in models] == before
    assert len(audit_actions(db)) == trail
    return caught.value


# ---------------------------------------------------------------- locations


def test_a_location_gets_a_scannable_code_with_check_digit_and_an_audit_event(db, users):
    location = make_location(db, users["custodian"], low="2", high="8", capacity=20)
    assert storage.LOCATION_RE.match(location.code) and location.code.startswith("LC")
    from app.core.codes import check_digit_ok

    assert check_digit_ok(location.code)
    assert (location.temp_min_c, location.temp_max_c, location.capacity) == (Decimal("2"), Decimal("8"), 20)
    assert "storage.location_created" in audit_actions(db)
    with db.reading() as session:
        assert storage.location_by_code(session, location.code.lower()).id == location.id


def test_temperatures_in_kelvin_are_kept_in_celsius(db, users):
    with db.transaction() as session:
        location = storage.create_location(session, users["custodian"], storage.LocationInput(
            room="R1", unit="F", temp_min="275.15", temp_max="277.15", temp_unit="K"))
        assert (location.temp_min_c, location.temp_max_c) == (Decimal("2.00"), Decimal("4.00"))


def test_a_position_registered_twice_is_refused(db, users):
    make_location(db, users["custodian"], unit="冰箱 B", shelf="2")
    refused(db, lambda s: storage.create_location(s, users["custodian"], storage.LocationInput(
        room="样品室 101", unit="冰箱 B", shelf="2")), "storage_position_taken", StorageLocation)


def test_an_inverted_temperature_range_is_refused(db, users):
    refused(db, lambda s: storage.create_location(s, users["custodian"], storage.LocationInput(
        room="R", unit="F", temp_min="8", temp_max="2")), "storage_temperature_range_inverted", StorageLocation)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("capacity", "-1", "storage_capacity_invalid"), ("capacity", "3.5", "storage_capacity_invalid"),
    ("temp_min", "400", "temperature_out_of_range"), ("temp_min", "cold", "not_a_number"),
    ("room", "", "field_required"), ("room", "x" * 61, "field_too_long"),
])
def test_bad_location_input_is_refused(db, users, field, value, code):
    data = storage.LocationInput(room="R", unit="F")
    setattr(data, field, value)
    refused(db, lambda s: storage.create_location(s, users["custodian"], data), code, StorageLocation)


def test_only_a_custodian_creates_locations(db, users):
    with pytest.raises(PermissionDenied), db.transaction() as session:
        storage.create_location(session, users["analyst"], storage.LocationInput(room="R"))


def test_a_location_with_containers_cannot_be_deactivated_an_empty_one_can(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    refused(db, lambda s: storage.deactivate_location(s, users["custodian"], s.get(StorageLocation, fridge.id)),
            "storage_location_not_empty")
    assert location_row(db, fridge.id).active
    empty = make_location(db, users["custodian"], unit="柜 C")
    with db.transaction() as session:
        storage.deactivate_location(session, users["custodian"], session.get(StorageLocation, empty.id))
    assert not location_row(db, empty.id).active
    assert "storage.location_deactivated" in audit_actions(db)
    # and nothing goes into it any more (custody refuses an inactive location)
    refused(db, lambda s: storage.store(s, users["custodian"], empty.code, dt.barcodes(dt.samples[1])),
            "location_inactive", CustodyEvent)


@pytest.mark.parametrize(("code", "error"), [
    ("LC26-000010", "location_check_digit"), ("XX-1", "not_a_location_code"), ("", "not_a_location_code")])
def test_a_bad_location_code_says_what_is_wrong(db, code, error):
    with pytest.raises(DomainError) as caught, db.reading() as session:
        storage.location_by_code(session, code if code != "LC26-000010" else _wrong_digit("LC26-00001"))
    assert caught.value.code == error


def _wrong_digit(code: str) -> str:
    from app.core.codes import with_check_digit

    right = with_check_digit(code)
    return right[:-1] + str((int(right[-1]) + 1) % 10)


# ---------------------------------------------------------------- store and move


def test_storing_received_containers_makes_the_samples_in_storage(db, users, received_task, fridge):
    dt = received_task
    custodian = users["custodian"]
    with db.transaction() as session:
        result = storage.store(session, custodian, fridge.code, dt.barcodes(), note="入库")
        assert len(result.events) == 1 and result.stored_samples == [dt.routine.sample_no]
    for barcode in dt.barcodes():
        moved = container(db, barcode)
        assert (moved.location_id, moved.holder_id) == (fridge.id, None)
    assert location_row(db, fridge.id).occupied == 3
    assert sample_row(db, dt.routine.id).state == SampleState.IN_STORAGE.value
    other = next(s for s in dt.samples if s.id != dt.routine.id)
    assert sample_row(db, other.id).state == SampleState.RECEIVED.value  # not stored: unchanged
    actions = audit_actions(db)
    assert "custody.storage" in actions and "sample.stored" in actions
    with db.reading() as session:
        event = session.scalars(select(CustodyEvent).where(CustodyEvent.kind == "storage")).one()
        assert (event.from_user_id, event.to_location_id) == (custodian.id, fridge.id)
        links = session.scalars(select(CustodyEventContainer).where(CustodyEventContainer.event_id == event.id)).all()
        assert not any(link.gap for link in links)


def test_a_repeated_scan_moves_nothing_again(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    events = rows(db, CustodyEvent)
    with db.transaction() as session:
        result = storage.store(session, users["custodian"], fridge.code, " ".join(dt.barcodes()).lower())
        assert result.events == [] and sorted(result.already_there) == sorted(dt.barcodes())
    assert rows(db, CustodyEvent) == events and location_row(db, fridge.id).occupied == 3


def test_a_container_not_yet_received_is_refused_receive_it_first(db, users, collected_task, fridge):
    dt = collected_task
    error = refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, dt.barcodes()),
                    "container_not_received", CustodyEvent)
    assert "receive it first" in error.message("en") and "先" in error.message("zh_CN")
    assert container(db, dt.barcodes()[0]).holder_id == dt.sampler.id


def test_rejected_and_disposed_containers_are_refused(db, users, received_task, fridge):
    dt = received_task
    for state in (ContainerState.REJECTED, ContainerState.DISPOSED):
        with db.transaction() as session:
            row = session.scalars(select(Container).where(Container.barcode == dt.barcodes()[0])).one()
            row.state = state.value
        refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, dt.barcodes()),
                "container_not_storable", CustodyEvent)


@pytest.mark.parametrize(("scan", "code"), [
    ("CT26-0000000X", "malformed_barcode"), ("NOT A BARCODE", "malformed_barcode"), ("", "no_containers")])
def test_bad_scans_are_refused_with_what_is_wrong(db, users, received_task, fridge, scan, code):
    refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, scan), code, CustodyEvent)


def test_a_misread_check_digit_and_an_unknown_container_are_told_apart(db, users, received_task, fridge):
    good = received_task.barcodes()[0]
    misread = good[:-1] + str((int(good[-1]) + 1) % 10)
    refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, [good, misread]), "wrong_check_digit",
            CustodyEvent)
    from app.core.codes import with_check_digit

    unknown = with_check_digit("CT26-9999999")
    refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, unknown), "container_not_found")


def test_a_full_location_is_refused_before_anything_moves(db, users, received_task):
    dt = received_task
    small = make_location(db, users["custodian"], unit="小冰箱", capacity=4)
    with db.transaction() as session:
        storage.store(session, users["custodian"], small.code, dt.barcodes(dt.samples[0]))
    refused(db, lambda s: storage.store(s, users["custodian"], small.code, dt.barcodes(dt.samples[1])),
            "location_full", CustodyEvent, CustodyEventContainer)
    assert location_row(db, small.id).occupied == 3
    assert container(db, dt.barcodes(dt.samples[1])[0]).holder_id == users["custodian"].id


def test_moving_between_locations_keeps_occupancy_right(db, users, received_task, fridge):
    dt = received_task
    other = make_location(db, users["custodian"], unit="冰箱 B")
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes(dt.samples[0]) + dt.barcodes(dt.samples[1]))
    # two from the fridge and one still in the custodian's hands: two events, one per giver
    mixed = dt.barcodes(dt.samples[0])[:2] + dt.barcodes(dt.samples[2])[:1]
    with db.transaction() as session:
        result = storage.store(session, users["custodian"], other.code, mixed)
        assert len(result.events) == 2
    assert location_row(db, fridge.id).occupied == 4
    assert location_row(db, other.id).occupied == 3
    with db.reading() as session:
        events = session.scalars(select(CustodyEvent).where(CustodyEvent.to_location_id == other.id)).all()
        assert {(e.from_location_id, e.from_user_id) for e in events} == {(fridge.id, None),
                                                                          (None, users["custodian"].id)}
        assert not any(link.gap for link in session.scalars(select(CustodyEventContainer)))


def test_a_cool_sample_put_into_a_room_temperature_cabinet_is_warned_not_refused(db, users, received_task):
    dt = received_task
    cabinet = make_location(db, users["custodian"], unit="柜", low=None, high=None)
    with db.transaction() as session:
        result = storage.store(session, users["custodian"], cabinet.code, dt.barcodes())
        assert result.moved and result.warnings
        assert any("0–5 °C" in en for _, en in result.warnings)
    fridge = make_location(db, users["custodian"], unit="冰箱 Z", low="1", high="4")
    with db.transaction() as session:
        result = storage.store(session, users["custodian"], fridge.code, dt.barcodes(dt.samples[1]))
        assert result.warnings == []


def test_only_a_custodian_stores(db, users, received_task, fridge):
    with pytest.raises(PermissionDenied), db.transaction() as session:
        storage.store(session, users["analyst"], fridge.code, received_task.barcodes())


def test_a_storage_time_before_sampling_or_in_the_future_is_refused(db, users, received_task, fridge):
    dt = received_task
    refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, dt.barcodes(),
                                        at=utcnow() - timedelta(days=2)), "act_before_sampling", CustodyEvent)
    refused(db, lambda s: storage.store(s, users["custodian"], fridge.code, dt.barcodes(),
                                        at=utcnow() + timedelta(hours=2)), "act_in_future", CustodyEvent)


# ---------------------------------------------------------------- take out, give back


def test_an_analyst_takes_out_and_gives_back_into_a_location(db, users, received_task, fridge):
    dt = received_task
    analyst = users["analyst"]
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    with db.transaction() as session:
        result = storage.take_out(session, analyst, dt.barcodes()[:2], note="消解")
        assert len(result.events) == 1
    assert location_row(db, fridge.id).occupied == 1
    assert container(db, dt.barcodes()[0]).holder_id == analyst.id
    with db.transaction() as session:
        storage.give_back(session, analyst, dt.barcodes()[:2], location_code=fridge.code)
    assert location_row(db, fridge.id).occupied == 3
    assert container(db, dt.barcodes()[0]).location_id == fridge.id
    actions = audit_actions(db)
    assert "custody.take_out" in actions and "custody.return" in actions


def test_an_analyst_gives_back_to_a_custodian(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
        storage.take_out(session, users["analyst"], dt.barcodes()[:1])
    with db.transaction() as session:
        storage.give_back(session, users["analyst"], dt.barcodes()[:1], custodian="custodian")
    assert container(db, dt.barcodes()[0]).holder_id == users["custodian"].id
    refused(db, lambda s: storage.give_back(s, users["custodian"], dt.barcodes()[:1], custodian="sampler"),
            "return_taker_not_custodian", CustodyEvent)


def test_take_out_of_a_container_not_in_storage_is_refused(db, users, received_task):
    error = refused(db, lambda s: storage.take_out(s, users["analyst"], received_task.barcodes()),
                    "container_not_in_storage", CustodyEvent)
    assert "用户custodian" in error.message("zh_CN") or "Custodian" in error.message("en")


def test_giving_back_what_you_do_not_hold_is_refused(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    refused(db, lambda s: storage.give_back(s, users["analyst"], dt.barcodes(), location_code=fridge.code),
            "container_not_with_you", CustodyEvent)
    refused(db, lambda s: storage.give_back(s, users["analyst"], dt.barcodes()), "return_target_required")
    refused(db, lambda s: storage.give_back(s, users["analyst"], dt.barcodes(), location_code=fridge.code,
                                            custodian="custodian"), "return_target_required")


def test_a_checker_cannot_take_out(db, users, received_task, fridge):
    with pytest.raises(PermissionDenied), db.transaction() as session:
        storage.take_out(session, users["checker"], received_task.barcodes())


# ---------------------------------------------------------------- where is it


def test_where_is_by_container_barcode_and_by_sample_number(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes()[:2])
    with db.reading() as session:
        for code in (dt.barcodes()[0], dt.routine.sample_no, f" {dt.barcodes()[2].lower()} "):
            found = storage.where_is(session, code)
            assert found.sample.id == dt.routine.id
            assert [w.container.barcode for w in found.containers] == dt.barcodes()
            stored, held = found.containers[0], found.containers[2]
            assert stored.location.id == fridge.id and "冰箱 A" in stored.location_name and stored.since
            assert held.holder.id == users["custodian"].id and held.location is None and held.since
        assert storage.where_is(session, dt.barcodes()[0]).scanned == dt.barcodes()[0]
        assert storage.where_is(session, dt.routine.sample_no).scanned == ""


def test_where_is_by_aliquot_barcode_lists_it_with_its_parent(db, users, received_task, fridge):
    dt = received_task
    from app.core.codes import reserve_codes, with_check_digit

    with db.transaction() as session:
        parent = session.scalars(select(Container).where(Container.barcode == dt.barcodes()[0])).one()
        code = with_check_digit(reserve_codes(session, "CT", utcnow(), 1, width=7)[0])
        aliquot = Container(barcode=code, sample_id=parent.sample_id, position=parent.position,
                            group_code=parent.group_code, container_type="tube", parameters=parent.parameters,
                            state=ContainerState.RECEIVED.value,
                            created_at=utcnow(), kind=ContainerKind.ALIQUOT.value, parent_id=parent.id,
                            amount=Decimal("50"), amount_unit="mL", holder_id=users["analyst"].id)
        session.add(aliquot)
    with db.reading() as session:
        found = storage.where_is(session, code)
        assert found.sample.id == dt.routine.id and found.scanned == code
        row = [w for w in found.containers if w.container.barcode == code][0]
        assert row.parent_barcode == dt.barcodes()[0] and row.holder.id == users["analyst"].id
        assert found.containers[-1].container.barcode == code  # aliquots after the containers


@pytest.mark.parametrize("code", ["nothing-like-this", "", "x" * 80])
def test_where_is_an_unknown_code_says_so(db, received_task, code):
    with pytest.raises(DomainError) as caught, db.reading() as session:
        storage.where_is(session, code)
    assert caught.value.code == "storage_code_unknown" and caught.value.http_status == 404


def test_where_is_a_misread_container_barcode_says_so(db, received_task):
    good = received_task.barcodes()[0]
    with pytest.raises(DomainError) as caught, db.reading() as session:
        storage.where_is(session, good[:-1] + str((int(good[-1]) + 1) % 10))
    assert caught.value.code == "wrong_check_digit"


def test_where_is_costs_the_same_for_one_or_many_containers(db, users, received_task, fridge, count_queries):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes(dt.samples[0]))
    counts = []
    for sample in dt.samples[:2]:
        with db.reading() as session, count_queries() as q:
            storage.where_is(session, sample.sample_no)
        counts.append(q.count)
    assert counts[0] == counts[1]


def test_the_sample_page_section_shows_where_each_container_is(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes()[:1])
    with db.reading() as session:
        section = storage.storage_section(session, session.get(Sample, dt.routine.id))
        assert section["containers"][0].location.id == fridge.id
        assert section["retain_until"] is None and section["disposals"] == []


def test_received_samples_can_be_stored_when_conditionally_received(db, users, collected_task, fridge):
    dt = receive_samples(db, collected_task, users["custodian"], [collected_task.routine],
                         state=SampleState.CONDITIONALLY_RECEIVED)
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    assert sample_row(db, dt.routine.id).state == SampleState.IN_STORAGE.value
