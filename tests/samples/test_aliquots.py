"""Aliquots and sub-samples: taken from a received container by an analyst, with their own
barcode of the container series, linked to the parent; what is left goes down in Decimals under a
row lock; refusals (too much, zero, wrong unit, not received, rejected, disposed, unknown barcode)
change nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.core.audit import AuditEvent
from app.core.codes import check_digit_ok
from app.core.db import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.samples import aliquots
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, StorageLocation
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.conftest import race
from tests.samples.test_prep_fixtures import *  # noqa: F403
from tests.samples.test_prep_fixtures import aliquot, counts, hno3_container, received, remaining

D = Decimal


def refused(db, call, code: str) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert counts(db) == before
    return caught.value


def test_an_aliquot_has_its_own_barcode_and_its_parent(db, in_lab, analyst, users):
    parent = hno3_container(in_lab)
    made = aliquot(db, analyst, parent.barcode, "50", "mL")
    assert made.barcode.startswith("CT") and check_digit_ok(made.barcode) and made.barcode != parent.barcode
    assert made.kind == "aliquot" and made.parent_id == parent.id and made.sample_id == parent.sample_id
    assert made.amount == D("50") and made.remaining == D("50") and made.amount_unit == "mL"
    assert made.state == ContainerState.RECEIVED.value
    assert json.loads(made.parameters) == json.loads(parent.parameters)
    assert (made.group_code, made.preservative_zh) == (parent.group_code, parent.preservative_zh)
    assert made.holder_id == analyst.id
    assert remaining(db, parent.barcode) == D(parent.volume_ml) - 50
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "sample.aliquot_made")).one()
        assert event.entity_id == str(made.id)
        link = session.scalars(select(CustodyEventContainer).where(CustodyEventContainer.container_id == made.id)).one()
        custody = session.get(CustodyEvent, link.event_id)
        # taken out of the custodian's hands, and that is no gap
        assert custody.kind == "take_out" and custody.from_user_id == users["custodian"].id
        assert custody.to_user_id == analyst.id and not link.gap


def test_remaining_is_exact_decimal_arithmetic(db, in_lab, analyst):
    parent = hno3_container(in_lab)
    first = aliquot(db, analyst, parent.barcode, "0.1")
    aliquot(db, analyst, parent.barcode, "0.2")
    assert remaining(db, parent.barcode) == D(parent.volume_ml) - D("0.3")
    # an aliquot of an aliquot: its own remaining, in its unit
    aliquot(db, analyst, first.barcode, "0.05")
    assert remaining(db, first.barcode) == D("0.05")


def test_taking_all_that_is_left_empties_the_parent(db, in_lab, analyst):
    parent = hno3_container(in_lab)
    made = aliquot(db, analyst, parent.barcode, "10")
    aliquot(db, analyst, made.barcode, "10")
    with db.reading() as session:
        assert session.get(Container, made.id).state == ContainerState.EMPTIED.value
    refused(db, lambda: aliquot(db, analyst, made.barcode, "1"), "prep_container_unusable")


def test_a_sub_sample_and_an_aliquot_of_the_held_parent(db, in_lab, analyst):
    parent = hno3_container(in_lab)
    first = aliquot(db, analyst, parent.barcode, "100", kind="sub_sample")
    assert first.kind == "sub_sample"
    # the analyst already holds the sub-sample: its aliquot comes from it, no gap, no "same party"
    second = aliquot(db, analyst, first.barcode, "20")
    with db.reading() as session:
        link = session.scalars(select(CustodyEventContainer).where(
            CustodyEventContainer.container_id == second.id)).one()
        assert not link.gap
        assert "aliquot of" in session.get(CustodyEvent, link.event_id).from_place
        assert not session.get(Sample, second.sample_id).custody_gap


def test_an_aliquot_from_a_storage_location_keeps_its_occupancy(db, in_lab, analyst, users):
    parent = hno3_container(in_lab)
    with db.transaction() as session:
        place = StorageLocation(code="LC26-000011", room="样品间", unit="冰箱 1", occupied=1,
                                created_at=parent.created_at, created_by_id=users["custodian"].id)
        session.add(place)
        session.flush()
        session.execute(update(Container).where(Container.id == parent.id).values(holder_id=None,
                                                                                 location_id=place.id))
        place_id = place.id
    made = aliquot(db, analyst, parent.barcode, "25")
    with db.reading() as session:
        assert session.get(StorageLocation, place_id).occupied == 1  # the parent is still there
        link = session.scalars(select(CustodyEventContainer).where(CustodyEventContainer.container_id == made.id)).one()
        assert session.get(CustodyEvent, link.event_id).from_location_id == place_id and not link.gap


def test_an_aliquot_label_pdf(db, in_lab, analyst):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50")
    with db.reading() as session:
        pdf = aliquots.aliquot_label_pdf(session, session.get(Container, made.id))
        label = aliquots.aliquot_label(session, session.get(Container, made.id))
    assert pdf.startswith(b"%PDF")
    assert label.code == made.barcode and hno3_container(in_lab).barcode in label.lines[0]


@pytest.mark.parametrize("amount, unit, code", [
    ("100000", "mL", "aliquot_exceeds_remaining"),
    ("0", "mL", "not_positive"),
    ("-5", "mL", "not_positive"),
    ("abc", "mL", "not_a_number"),
    ("", "mL", "field_required"),
    ("5", "g", "aliquot_unit_mismatch"),
    ("5", "L", "aliquot_unit_unknown"),
])
def test_bad_amounts_are_refused(db, in_lab, analyst, amount, unit, code):
    parent = hno3_container(in_lab)
    refused(db, lambda: aliquot(db, analyst, parent.barcode, amount, unit), code)
    assert remaining(db, parent.barcode) == D(parent.volume_ml)


def test_more_than_left_names_what_is_left(db, in_lab, analyst):
    parent = hno3_container(in_lab)
    aliquot(db, analyst, parent.barcode, str(parent.volume_ml - 20))
    error = refused(db, lambda: aliquot(db, analyst, parent.barcode, "20.5"), "aliquot_exceeds_remaining")
    assert "20 mL" in error.message("en") and "20.5" in error.message("en")


@pytest.mark.parametrize("barcode, code", [
    ("CT26-99999997", "container_not_found"),
    ("CT26-99999998", "wrong_check_digit"),
    ("hello", "malformed_barcode"),
    ("x" * 5000, "malformed_barcode"),
])
def test_unknown_or_malformed_barcodes_are_refused(db, in_lab, analyst, barcode, code):
    refused(db, lambda: aliquot(db, analyst, barcode, "5"), code)


def test_a_sample_not_received_is_refused(db, collected_task, analyst):
    error = refused(db, lambda: aliquot(db, analyst, hno3_container(collected_task).barcode, "5"),
                    "prep_sample_not_in_lab")
    assert "collected" in error.message("en")


@pytest.mark.parametrize("state, code", [(SampleState.REJECTED.value, "prep_sample_rejected"),
                                         (SampleState.DISPOSED.value, "prep_sample_disposed")])
def test_rejected_and_disposed_samples_are_refused(db, collected_task, users, analyst, state, code):
    dt = received(db, collected_task, users["custodian"], state=state)
    refused(db, lambda: aliquot(db, analyst, hno3_container(dt).barcode, "5"), code)


def test_conditionally_received_and_stored_samples_may_be_divided(db, collected_task, users, analyst):
    dt = received(db, collected_task, users["custodian"], state=SampleState.CONDITIONALLY_RECEIVED.value)
    aliquot(db, analyst, hno3_container(dt).barcode, "5")
    dt = received(db, collected_task, users["custodian"], state=SampleState.IN_STORAGE.value)
    aliquot(db, analyst, hno3_container(dt).barcode, "5")


def test_an_aliquot_before_receipt_is_refused(db, collected_task, users, analyst):
    dt = received(db, collected_task, users["custodian"], minutes_ago=1)
    refused(db, lambda: aliquot(db, analyst, hno3_container(dt).barcode, "5", at=utcnow() - timedelta(minutes=3)),
            "prep_act_before_receipt")
    refused(db, lambda: aliquot(db, analyst, hno3_container(dt).barcode, "5", at=utcnow() + timedelta(hours=3)),
            "act_in_future")


def test_only_an_analyst_takes_aliquots(db, in_lab, users):
    with pytest.raises(PermissionDenied):
        aliquot(db, users["custodian"], hno3_container(in_lab).barcode, "5")


def test_concurrent_aliquots_cannot_overdraw(pg_db, in_lab, analyst):
    """Two analysts take 60 % each of a bottle at the same moment: one waits for the other's
    lock, reads what is left and is refused."""
    parent = hno3_container(in_lab)
    share = parent.volume_ml * 6 // 10

    def take(session):
        return aliquots.make_aliquot(session, analyst, parent.barcode, str(share), "mL").barcode

    results = race(pg_db, take, take)
    made = [r for r in results if isinstance(r, str)]
    failed = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 1 and len(failed) == 1, results
    assert failed[0].code == "aliquot_exceeds_remaining"
    assert remaining(pg_db, parent.barcode) == D(parent.volume_ml) - share
    with pg_db.reading() as session:
        assert len(session.scalars(select(Container).where(Container.parent_id == parent.id)).all()) == 1


def test_an_aliquot_leaves_the_signed_field_record_as_it_was(db, in_lab, analyst):
    """The field record holds the containers filled in the field; an aliquot made later is the
    lab's, so the sampler's signature over the record stays intact."""
    from app.samples.field import field_record

    dt = in_lab
    with db.reading() as session:
        before = field_record(session, session.get(Sample, dt.routine.id))
        barcodes = [c.barcode for c in before.containers]
    aliquot(db, analyst, hno3_container(dt).barcode)
    with db.reading() as session:
        after = field_record(session, session.get(Sample, dt.routine.id))
        assert [c.barcode for c in after.containers] == barcodes
        assert after.signatures and not after.broken_signatures
