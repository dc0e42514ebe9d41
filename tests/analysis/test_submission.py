"""Signing a batch (analysed): a QC failure without corrective action blocks it with its code and
nothing changes; missing results block it; a qualifier unblocks it; a wrong password is refused
and recorded; the signature binds the results (a revision after signing breaks it); samples move
to results_entered when every requested parameter has a submitted result or a reason."""

from __future__ import annotations

from sqlalchemy import select

from app.analysis import submission
from app.analysis.batches import batch_by_no
from app.core.audit import AuditEvent
from app.samples.models import Sample
from tests.analysis.conftest import samples_in_lab
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
    submit,
)
from tests.conftest import PASSWORD, make_user


def states(db, samples) -> dict[str, str]:
    with db.reading() as session:
        return {s.sample_no: s.state for s in session.scalars(
            select(Sample).where(Sample.id.in_([x.id for x in samples])))}


def test_a_qc_failure_without_corrective_action_blocks_signing(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    evaluate(db, bench)
    before = batch_of(db, bench)
    error = refused(db, lambda: submit(db, bench, PASSWORD), "qc_failure_unresolved")
    assert "S-002SP NH3-N" in error.message("en") and "加标回收" in error.message("zh")
    after = batch_of(db, bench)
    assert (after.state, after.signature_id, after.submitted_at) == (before.state, None, None)
    assert set(states(db, bench.samples).values()) == {"in_analysis"}


def test_signing_re_evaluates_first(db, bench):
    enter(db, bench, PASSING)
    evaluate(db, bench)  # passes now
    enter(db, bench, {"CCV1": "0.600"})  # then the CCV is corrected to 20 % off
    refused(db, lambda: submit(db, bench, PASSWORD), "qc_failure_unresolved")


def test_missing_sample_results_block_signing_unless_not_analysed(db, bench):
    enter(db, bench, {k: v for k, v in PASSING.items() if k != "S-002"})
    error = refused(db, lambda: submit(db, bench, PASSWORD), "results_missing")
    assert "S-002 NH3-N" in error.message("en")
    call(db, submission.record_not_analysed, bench.analyst, bench.samples[1], "NH3-N",
         "sample bottle broke in the centrifuge")
    # the spike of S-002 has no unspiked value now: a QC failure, answered with a qualifier
    spike = find(evaluate(db, bench), "spike")
    assert spike.passed is False
    act_corrective(db, bench.analyst, spike, "qualifier", "no unspiked result: the sample bottle broke", "J")
    submit(db, bench, PASSWORD)
    assert batch_of(db, bench).state == "submitted"


def test_a_qualifier_unblocks_signing_and_the_batch_goes_to_review(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    act_corrective(db, bench.analyst, spike, "qualifier", "matrix interference confirmed by dilution")
    submit(db, bench, PASSWORD)
    batch = batch_of(db, bench)
    assert batch.state == "submitted" and batch.submitted_at is not None and batch.signature_id is not None
    assert batch.qc_passed is False  # QC did not pass; it was answered
    with db.reading() as session:
        view = submission.signature_view(session, session.get(type(batch), batch.id))
        assert view.intact and view.signature.meaning == "analysed"
        assert view.signature.signer_id == bench.analyst.id
        assert session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "analysis.batch_submitted")).all()
    assert set(states(db, bench.samples).values()) == {"results_entered"}
    refused(db, lambda: submit(db, bench, PASSWORD), "batch_already_submitted")


def test_a_wrong_password_is_refused_and_recorded(db, bench):
    enter(db, bench, PASSING)
    refused(db, lambda: submit(db, bench, "not-my-password"), "wrong_signing_password", audit_may_grow=True)
    batch = batch_of(db, bench)
    assert batch.state == "running" and batch.signature_id is None
    with db.reading() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "signature.failed")).all()


def test_only_the_batch_analyst_signs(db, bench, users):
    enter(db, bench, PASSING)
    other = make_user(db, "analyst-2", "analyst")
    refused(db, lambda: submit(db, bench, PASSWORD, other), "not_the_batch_analyst")
    refused(db, lambda: submit(db, bench, PASSWORD, users["inspector"]), "inspector_read_only")


def test_a_result_revised_after_signing_breaks_the_signature(db, bench):
    enter(db, bench, PASSING)
    submit(db, bench, PASSWORD)
    with db.reading() as session:
        batch = batch_by_no(session, bench.batch.batch_no)
        assert submission.signature_view(session, batch).intact
    enter(db, bench, {"S-001": "0.513"}, reason="transcription error corrected")
    with db.reading() as session:
        batch = batch_by_no(session, bench.batch.batch_no)
        assert submission.signature_view(session, batch).broken


def test_a_sample_waiting_for_another_parameter_stays_in_analysis(db, analyst, nh3n_method, users, uv):
    samples = samples_in_lab(db, users["custodian"], (("NH3-N", 24), ("COD", 48)), count=2, prefix="WS03")
    bench = running_batch(db, analyst, nh3n_method, samples, instrument=uv)
    enter(db, bench, PASSING)
    submit(db, bench, PASSWORD)
    assert set(states(db, samples).values()) == {"in_analysis"}  # COD has no result yet
    call(db, submission.record_not_analysed, analyst, samples[0], "COD", "client withdrew COD for this point")
    assert states(db, samples) == {samples[0].sample_no: "results_entered", samples[1].sample_no: "in_analysis"}


def test_not_analysed_refusals(db, bench):
    enter(db, bench, PASSING)
    sample = bench.samples[0]
    refused(db, lambda: call(db, submission.record_not_analysed, bench.analyst, sample, "TP", "not requested at all"),
            "parameter_not_requested")
    refused(db, lambda: call(db, submission.record_not_analysed, bench.analyst, sample, "NH3-N", "short"),
            "not_analysed_reason_required")
    submit(db, bench, PASSWORD)
    refused(db, lambda: call(db, submission.record_not_analysed, bench.analyst, sample, "NH3-N",
                             "bottle broke after analysis"), "result_already_submitted")
    before = counts(db)
    assert before["NotAnalysed"] == 0
