"""Preparation batches: opening, positions (samples, blanks, spikes), materials through the
reference-material gate, the holding-time gate with the quality manager's deviation, closing and
signing by the preparer, and the samples' states. Every refusal changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.codes import check_digit_ok
from app.core.errors import DomainError, PermissionDenied
from app.core.signatures import ElectronicSignature
from app.reference_materials.models import MaterialUse, StandardSolution
from app.samples import preparation
from app.samples.lab_models import PrepBatch, PrepBatchItem, PrepBatchMaterial
from app.samples.models import Container, SampleState
from tests.conftest import PASSWORD, make_user
from tests.samples.test_prep_fixtures import *  # noqa: F403
from tests.samples.test_prep_fixtures import (
    act,
    aliquot,
    counts,
    expire_clocks,
    hno3_container,
    open_batch,
    received,
    record_deviation,
    remaining,
    states,
)

D = Decimal


def refused(db, call, code: str, *, audit_may_grow: bool = False) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code == code, caught.value
    after = counts(db)
    if audit_may_grow:  # a wrong signing password leaves its own record, nothing else
        before.pop("AuditEvent"), after.pop("AuditEvent")
    assert after == before
    return caught.value


def batch_of(db, batch) -> PrepBatch:
    with db.reading() as session:
        found = session.get(PrepBatch, batch.id)
        session.expunge(found)
        return found


def aliquots_of(db, dt, analyst, amount: str = "50") -> dict[str, str]:
    """One aliquot of each sample's HNO3 container: {sample_no: barcode}."""
    return {s.sample_no: aliquot(db, analyst, hno3_container(dt, s).barcode, amount).barcode for s in dt.samples}


# ---------------------------------------------------------------- opening


def test_opening_a_batch(db, analyst):
    batch = open_batch(db, analyst, "digestion", " HJ 677-2013 ", "Cu, Zn Pb；Cd cu")
    assert batch.code.startswith("PB") and check_digit_ok(batch.code) and preparation.CODE_RE.match(batch.code)
    assert (batch.kind, batch.method, batch.state) == ("digestion", "HJ 677-2013", "open")
    assert json.loads(batch.parameters) == ["Cu", "Zn", "Pb", "Cd"]
    assert batch.opened_by_id == analyst.id
    with db.reading() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "prep.batch_opened")).one()
        assert preparation.batch_by_code(session, batch.code.lower()).id == batch.id


@pytest.mark.parametrize("kind, method, parameters, code", [
    ("boiling", "HJ 677-2013", "Cu", "prep_kind_unknown"),
    ("digestion", "HJ 677", "Cu", "prep_method_without_year"),
    ("digestion", "", "Cu", "field_required"),
    ("digestion", "HJ 677-2013", " , ", "prep_parameters_required"),
    ("digestion", "HJ 677-2013", "Cu Unobtainium", "unknown_parameter"),
    ("digestion", "H" * 61 + "-2013", "Cu", "field_too_long"),
])
def test_opening_refusals(db, analyst, kind, method, parameters, code):
    refused(db, lambda: open_batch(db, analyst, kind, method, parameters), code)


def test_a_method_with_a_two_digit_year_is_accepted(db, analyst):
    assert open_batch(db, analyst, "other", "GB 7467-87", "Cu").method == "GB 7467-87"


def test_only_analysts_prepare(db, users):
    with pytest.raises(PermissionDenied):
        open_batch(db, users["custodian"])
    with pytest.raises(PermissionDenied):
        open_batch(db, users["inspector"])


def test_unknown_batch_code(db):
    with db.reading() as session, pytest.raises(DomainError) as caught:
        preparation.batch_by_code(session, "PB26-999999")
    assert caught.value.code == "prep_batch_not_found" and caught.value.http_status == 404


# ---------------------------------------------------------------- the whole flow


def test_a_digestion_batch_from_aliquots_to_signature(db, in_lab, analyst, standards):
    made = aliquots_of(db, in_lab, analyst)
    spike_aliquot = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    numbers = sorted(made)
    act(db, "add_sample", analyst, batch, made[numbers[0]], "50", "mL", "50")
    assert states(db, in_lab)[numbers[0]] == SampleState.IN_PREPARATION.value
    assert states(db, in_lab)[numbers[1]] == SampleState.RECEIVED.value
    act(db, "add_sample", analyst, batch, made[numbers[1]], "25", "mL", "50")
    act(db, "add_sample", analyst, batch, made[numbers[2]], "", "", "50")  # all that is left
    act(db, "add_blank", analyst, batch, "50")
    act(db, "add_spike", analyst, batch, spike_aliquot, standards["cu"], "0.500", "mL", "50", "mL", "50")
    act(db, "add_material", analyst, batch, standards["hno3"], "5", "mL", "硝酸消解")
    assert remaining(db, made[numbers[1]]) == D("25") and remaining(db, made[numbers[2]]) == D("0")
    assert set(states(db, in_lab).values()) == {SampleState.IN_PREPARATION.value}
    with db.reading() as session:
        items = session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)
                                .order_by(PrepBatchItem.position)).all()
        assert [i.position for i in items] == [1, 2, 3, 4, 5]
        assert [i.role for i in items] == ["sample", "sample", "sample", "prep_blank", "spike"]
        assert items[3].container_id is None and items[3].sample_id is None
        spike = items[4]
        assert (spike.spike_amount, spike.spike_unit) == (D("0.500"), "mL")
        use = session.get(MaterialUse, spike.spike_use_id)
        assert (use.consumer_kind, use.consumer_id) == ("prep_batch", batch.code)
        solution = session.scalars(select(StandardSolution).where(StandardSolution.barcode == standards["cu"])).one()
        assert use.item_id == solution.id
        materials = session.scalars(select(PrepBatchMaterial).where(PrepBatchMaterial.batch_id == batch.id)).all()
        assert sorted(m.barcode for m in materials) == sorted([standards["cu"], standards["hno3"]])
    act(db, "close_batch", analyst, batch, PASSWORD)
    closed = batch_of(db, batch)
    assert closed.state == "closed" and closed.closed_at is not None and closed.signature_id is not None
    assert set(states(db, in_lab).values()) == {SampleState.PREPARED.value}
    with db.reading() as session:
        signature = session.get(ElectronicSignature, closed.signature_id)
        assert (signature.meaning, signature.entity_type, signature.signer_id) == ("prepared", "prep_batch",
                                                                                    analyst.id)
        view = preparation.batch_view(session, session.get(PrepBatch, batch.id))
        assert view.signature is not None and view.signature.intact
        assert len(view.items) == 5 and len(view.materials) == 2 and view.items[4].standard == standards["cu"]
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "prep.batch_closed")).one()
        assert sorted(json.loads(event.after)["samples_prepared"]) == numbers
        # the sample page's section: its aliquots and the signed batch
        sample = in_lab.routine
        section = preparation.prep_section(session, sample)
        assert {a.parent_barcode for a in section.aliquots} == {hno3_container(in_lab).barcode}
        assert section.batches and all(line.batch.code == batch.code for line in section.batches)
        assert all(line.signature is not None for line in section.batches)


def test_a_whole_container_may_be_prepared(db, in_lab, analyst):
    batch = open_batch(db, analyst)
    bottle = hno3_container(in_lab)
    act(db, "add_sample", analyst, batch, bottle.barcode, "100", "mL", "100")
    assert remaining(db, bottle.barcode) == D(bottle.volume_ml) - 100
    with db.reading() as session:  # taken out of the custodian's hands
        assert session.get(Container, bottle.id).holder_id == analyst.id


def test_a_sample_is_prepared_when_all_its_batches_are_closed(db, in_lab, analyst, standards):
    first_aliquot = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    second_aliquot = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    metals, filtered = open_batch(db, analyst), open_batch(db, analyst, "filtration", "HJ 700-2014", "Cu")
    act(db, "add_sample", analyst, metals, first_aliquot)
    act(db, "add_sample", analyst, filtered, second_aliquot)
    act(db, "add_blank", analyst, filtered)
    act(db, "close_batch", analyst, filtered, PASSWORD)  # filtration needs no spike
    routine = in_lab.routine.sample_no
    assert states(db, in_lab)[routine] == SampleState.IN_PREPARATION.value
    act(db, "add_blank", analyst, metals)
    refused(db, lambda: act(db, "close_batch", analyst, metals, PASSWORD), "prep_batch_incomplete")
    spike = aliquot(db, analyst, hno3_container(in_lab).barcode, "20").barcode
    act(db, "add_spike", analyst, metals, spike, standards["cu"], "0.1", "mL")
    act(db, "close_batch", analyst, metals, PASSWORD)
    assert states(db, in_lab)[routine] == SampleState.PREPARED.value


# ---------------------------------------------------------------- refusals


def test_closing_needs_a_blank_and_a_spike(db, in_lab, analyst, standards):
    made = aliquots_of(db, in_lab, analyst)
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "close_batch", analyst, batch, PASSWORD), "prep_batch_incomplete")
    act(db, "add_sample", analyst, batch, next(iter(made.values())))
    error = refused(db, lambda: act(db, "close_batch", analyst, batch, PASSWORD), "prep_batch_incomplete")
    assert "preparation blanks" in error.message("en") and "spikes" in error.message("en")
    assert "制备空白" in error.message("zh_CN") and "加标样" in error.message("zh_CN")
    act(db, "add_blank", analyst, batch)
    error = refused(db, lambda: act(db, "close_batch", analyst, batch, PASSWORD), "prep_batch_incomplete")
    assert "blanks" not in error.message("en") and "spikes" in error.message("en")
    spike_aliquot = aliquot(db, analyst, hno3_container(in_lab).barcode, "30").barcode
    act(db, "add_spike", analyst, batch, spike_aliquot, standards["cu"], "0.2", "mL")
    act(db, "close_batch", analyst, batch, PASSWORD)


def test_a_blank_only_batch_closes_without_a_spike(db, analyst):
    batch = open_batch(db, analyst)
    act(db, "add_blank", analyst, batch)
    act(db, "close_batch", analyst, batch, PASSWORD)
    assert batch_of(db, batch).state == "closed"


def test_only_the_preparer_closes(db, analyst, users):
    other = make_user(db, "analyst-2", "analyst")
    batch = open_batch(db, analyst)
    act(db, "add_blank", analyst, batch)
    error = refused(db, lambda: act(db, "close_batch", other, batch, PASSWORD), "prep_not_the_preparer")
    assert error.http_status == 403
    assert batch_of(db, batch).state == "open"


def test_a_wrong_password_closes_nothing(db, analyst):
    batch = open_batch(db, analyst)
    act(db, "add_blank", analyst, batch)
    refused(db, lambda: act(db, "close_batch", analyst, batch, "wrong-password"), "wrong_signing_password",
            audit_may_grow=True)
    closed = batch_of(db, batch)
    assert closed.state == "open" and closed.signature_id is None
    with db.reading() as session:
        assert not session.scalars(select(ElectronicSignature)).all()


def test_nothing_is_added_to_a_closed_batch(db, in_lab, analyst, standards):
    batch = open_batch(db, analyst)
    act(db, "add_blank", analyst, batch)
    act(db, "close_batch", analyst, batch, PASSWORD)
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    refused(db, lambda: act(db, "add_sample", analyst, batch, made), "prep_batch_closed")
    refused(db, lambda: act(db, "add_blank", analyst, batch), "prep_batch_closed")
    refused(db, lambda: act(db, "add_material", analyst, batch, standards["hno3"], "1", "mL"), "prep_batch_closed")
    refused(db, lambda: act(db, "close_batch", analyst, batch, PASSWORD), "prep_batch_closed")


def test_an_aliquot_is_used_once(db, in_lab, analyst):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch, other = open_batch(db, analyst), open_batch(db, analyst)
    act(db, "add_sample", analyst, batch, made, "10")
    error = refused(db, lambda: act(db, "add_sample", analyst, batch, made, "10"), "prep_container_already_in_batch")
    assert batch.code in error.message("en")
    refused(db, lambda: act(db, "add_sample", analyst, other, made, "10"), "prep_container_already_in_batch")


def test_a_container_for_other_parameters_is_refused(db, in_lab, analyst):
    cod = next(c for c in in_lab.containers[in_lab.routine.id] if "COD" in c.parameters)
    made = aliquot(db, analyst, cod.barcode, "50").barcode
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_sample", analyst, batch, made), "prep_container_not_for_batch")


def test_an_aliquot_of_a_rejected_or_disposed_sample_is_refused(db, in_lab, analyst, users):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    received(db, in_lab, users["custodian"], state=SampleState.REJECTED.value)
    refused(db, lambda: act(db, "add_sample", analyst, batch, made), "prep_sample_rejected")
    received(db, in_lab, users["custodian"], state=SampleState.DISPOSED.value)
    refused(db, lambda: act(db, "add_sample", analyst, batch, made), "prep_sample_disposed")


@pytest.mark.parametrize("amount, unit, volume, code", [
    ("60", "mL", "", "aliquot_exceeds_remaining"),
    ("0", "mL", "", "not_positive"),
    ("10", "g", "", "aliquot_unit_mismatch"),
    ("10", "mL", "-1", "not_positive"),
    ("10", "mL", "1e99", "not_a_number"),
])
def test_bad_amounts_in_a_batch(db, in_lab, analyst, amount, unit, volume, code):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_sample", analyst, batch, made, amount, unit, volume), code)
    assert remaining(db, made) == D("50")


def test_an_act_before_the_batch_was_opened_is_refused(db, in_lab, analyst):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_sample", analyst, batch, made, at=batch.opened_at - timedelta(minutes=1)),
            "prep_act_before_opening")


def test_unknown_barcodes_in_a_batch(db, analyst, standards):
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_sample", analyst, batch, "nonsense"), "malformed_barcode")
    refused(db, lambda: act(db, "add_sample", analyst, batch, standards["hno3"]), "not_a_container")
    refused(db, lambda: act(db, "add_material", analyst, batch, "RG26-99999", "1", "mL"), "item_not_found")
    refused(db, lambda: act(db, "add_material", analyst, batch, "CT26-00000018", "1", "mL"), "item_not_found")


# ---------------------------------------------------------------- the reference-material gate


def test_a_spike_with_an_expired_standard_is_refused_with_its_reason(db, in_lab, analyst, standards):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    error = refused(db, lambda: act(db, "add_spike", analyst, batch, made, standards["expired"], "0.5", "mL"),
                    "material_expired")
    assert error.reason == "expired" and standards["expired"] in error.message("en")
    assert remaining(db, made) == D("50")
    assert states(db, in_lab)[in_lab.routine.sample_no] == SampleState.RECEIVED.value


def test_a_spike_needs_its_standard_and_amount(db, in_lab, analyst, standards):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_spike", analyst, batch, made, "", "0.5", "mL"), "prep_spike_standard_required")
    refused(db, lambda: act(db, "add_spike", analyst, batch, made, standards["cu"], "", "mL"),
            "prep_spike_standard_required")
    refused(db, lambda: act(db, "add_spike", analyst, batch, made, standards["cu"], "0.5", "kg"),
            "quantity_unit_mismatch")


def test_more_acid_than_the_bottle_holds_is_refused(db, analyst, standards):
    batch = open_batch(db, analyst)
    refused(db, lambda: act(db, "add_material", analyst, batch, standards["hno3"], "600", "mL"),
            "insufficient_quantity")


# ---------------------------------------------------------------- the holding-time gate


def test_past_the_holding_time_only_with_the_quality_managers_deviation(db, in_lab, analyst, users):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    expire_clocks(db, in_lab.routine)
    error = refused(db, lambda: act(db, "add_sample", analyst, batch, made), "holding_time_exceeded")
    assert "Cu" in error.message("en")
    assert states(db, in_lab)[in_lab.routine.sample_no] == SampleState.RECEIVED.value
    deviation_ids = record_deviation(db, users["quality_manager"], in_lab.routine)
    item = act(db, "add_sample", analyst, batch, made)
    assert item.deviation_id in deviation_ids
    with db.reading() as session:
        view = preparation.batch_view(session, session.get(PrepBatch, batch.id))
        assert view.items[0].deviation is not None and view.items[0].deviation.reason
        assert [c.parameter for c, _ in view.holding[0].clocks] == ["Cu", "Zn"]
        assert view.holding[0].clocks[0][1].colour == "red"


def test_a_deviation_for_analysis_does_not_allow_preparation(db, in_lab, analyst, users):
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst)
    expire_clocks(db, in_lab.routine)
    record_deviation(db, users["quality_manager"], in_lab.routine, act_name="analysis")
    refused(db, lambda: act(db, "add_sample", analyst, batch, made), "holding_time_exceeded")


def test_the_batch_only_checks_its_own_parameters(db, in_lab, analyst):
    """Zn ran out but the batch prepares for Cu only: its Cu clock is what counts."""
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    batch = open_batch(db, analyst, parameters="Cu")
    expire_clocks(db, in_lab.routine, ("Zn",))
    assert act(db, "add_sample", analyst, batch, made).deviation_id is None
