"""Corrective actions: a rerun appends a position that the next evaluation judges instead of the
failed one; a justified qualifier answers the failure, keeps answering it in later runs and
travels to the report through qualifiers_for; every refusal changes nothing."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import select

from app.analysis import corrective
from app.analysis.models import BatchPosition
from tests.analysis.qc_fixtures import *  # noqa: F403
from tests.analysis.qc_fixtures import (
    PASSING,
    act_corrective,
    batch_of,
    call,
    counts,
    enter,
    evaluate,
    find,
    refused,
    running_batch,
)
from tests.conftest import make_user

WHY = "spike recovery low: matrix interference suspected, re-measured"


def test_a_rerun_appends_a_position_and_its_passing_result_clears_the_failure(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    assert spike.passed is False and batch_of(db, bench).state == "qc_failed"
    action = act_corrective(db, bench.analyst, spike, "rerun", WHY)
    with db.reading() as session:
        rerun = session.get(BatchPosition, action.rerun_position_id)
        session.expunge(rerun)
    original = bench.at("S-002SP")
    assert rerun.position == len(bench.positions) + 1 and rerun.rerun_of_id == original.id
    assert (rerun.role, rerun.sample_id, rerun.of_position_id) == (original.role, original.sample_id,
                                                                   original.of_position_id)
    # the same prepared standard is re-measured: its use, barcode and amount added are the original's
    assert (rerun.material_barcode, rerun.spike_added) == ("SS26-00001", D("0.500")) and rerun.label == "S-002SP-R1"
    assert batch_of(db, bench).state == "running"  # results of the rerun can be entered
    # before the rerun is measured it stands in for the spike and has no result: it fails
    pending = find(evaluate(db, bench), "spike")
    assert pending.passed is False and pending.position_id == rerun.id
    enter(db, bench, {"S-002SP-R1": "0.650"})
    rows = evaluate(db, bench)
    spike = find(rows, "spike")
    assert spike.passed is True and spike.position_id == rerun.id and spike.value == D("90")
    assert batch_of(db, bench).state == "qc_evaluated" and batch_of(db, bench).qc_passed is True


def test_a_qualifier_answers_the_failure_and_travels_to_the_report(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    action = act_corrective(db, bench.analyst, spike, "qualifier", "matrix interference confirmed by dilution")
    assert action.qualifier == "S"  # the spike's own letter by default
    batch = batch_of(db, bench)
    assert batch.state == "qc_evaluated" and batch.qc_passed is False
    with db.reading() as session:
        flags = corrective.qualifiers_for(session, bench.batch.id)
    assert flags == {(bench.at("S-002").id, "NH3-N"): ["S"]}  # only the spiked sample
    # the next run fails the same check again, and the qualifier still answers it
    rows = evaluate(db, bench)
    assert find(rows, "spike").passed is False and batch_of(db, bench).state == "qc_evaluated"


def test_a_whole_parameter_qualifier_flags_every_sample(db, bench, count_queries):
    enter(db, bench, {**PASSING, "BLK1": "0.030"})
    blank = find(evaluate(db, bench), "blank")
    act_corrective(db, bench.analyst, blank, "qualifier", "blank contamination from the reagent water", "J")
    with db.reading() as session, count_queries() as counted:
        flags = corrective.qualifiers_for(session, bench.batch.id)
    assert counted.count == 1
    assert flags == {(bench.at("S-001").id, "NH3-N"): ["J"], (bench.at("S-002").id, "NH3-N"): ["J"]}


def test_refusals_change_nothing(db, bench, users):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    rows = evaluate(db, bench)
    spike, blank = find(rows, "spike"), find(rows, "blank")
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "rerun", "too short"), "justification_too_short")
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "shrug", WHY), "corrective_kind_unknown")
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "qualifier", WHY, "B"), "qualifier_not_allowed")
    refused(db, lambda: act_corrective(db, bench.analyst, blank, "qualifier", WHY), "qc_evaluation_not_failed")
    other = make_user(db, "analyst-2", "analyst")
    refused(db, lambda: act_corrective(db, other, spike, "rerun", WHY), "not_the_batch_analyst")
    refused(db, lambda: act_corrective(db, users["inspector"], spike, "rerun", WHY), "inspector_read_only")
    act_corrective(db, bench.analyst, spike, "qualifier", WHY)
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "rerun", WHY), "corrective_action_exists")
    evaluate(db, bench)  # run 2: run 1's failures are history
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "qualifier", WHY), "qc_evaluation_superseded")
    with db.reading() as session:
        assert len(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == bench.batch.id)).all()) == 7


def test_a_failed_curve_takes_a_qualifier_not_a_rerun(db, analyst, nh3n_method, two_samples, uv):
    bench = running_batch(db, analyst, nh3n_method, two_samples, instrument=uv, curve_r="0.9989")
    enter(db, bench, PASSING)
    curve = find(evaluate(db, bench), "curve")
    refused(db, lambda: act_corrective(db, analyst, curve, "rerun", WHY), "rerun_not_possible")
    assert act_corrective(db, analyst, curve, "qualifier", "curve r 0.9989, CCV and CRM within limits").qualifier == "K"


def test_nothing_is_answered_after_submission(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    from sqlalchemy import update

    from app.analysis.models import AnalysisBatch

    with db.transaction() as session:
        session.execute(update(AnalysisBatch).where(AnalysisBatch.id == bench.batch.id).values(state="submitted"))
    refused(db, lambda: act_corrective(db, bench.analyst, spike, "qualifier", WHY), "batch_already_submitted")


def test_the_evaluation_must_belong_to_the_batch_given(db, bench, analyst, nh3n_method, users, uv):
    from tests.analysis.conftest import samples_in_lab

    other = running_batch(db, analyst, nh3n_method, samples_in_lab(db, users["custodian"], count=2, prefix="WS02"),
                          instrument=uv)
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    before = counts(db)
    refused(db, lambda: call(db, corrective.record_corrective_action, analyst, spike.id, "rerun", WHY,
                             batch=other.batch), "qc_evaluation_not_found")
    assert counts(db) == before
