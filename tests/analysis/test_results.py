"""record_results: readings become results with their intermediates; revisions keep the first
entry; after submission a reason is required; every refusal lists its rows, has its code and
saves nothing (all or nothing); gates at the time of measurement (instrument, curve); instrument
client ids are idempotent; the batch's current results in one query."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import result_errors as errors
from app.analysis import results
from app.analysis.models import AnalysisResult
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.instruments.errors import InstrumentNotUsable
from tests.analysis.conftest import calibrated_instrument, make_method, samples_in_lab
from tests.analysis.result_fixtures import *  # noqa: F403
from tests.analysis.result_fixtures import (
    attach_curve,
    counts,
    reading,
    record,
    running_batch,
    set_state,
    submit,
)
from tests.instruments.conftest import calibrate, check, local_today, make_instrument


@pytest.fixture
def direct_method(db, technical, uv):
    return make_method(db, technical, "HJ 700-2014", calculation="direct", instruments=(uv,))


def refused(db, actor, running, readings, **options) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        record(db, actor, running, readings, **options)
    assert counts(db) == before
    return caught.value


def test_readings_become_results_with_their_intermediates(db, analyst, batch):
    s1 = batch.at("S-001")
    [result] = record(db, analyst, batch, [reading(s1, "0.205", dilution="2")])
    assert result.value == D("2.0") and result.unit == "mg/L" and result.revision == 1 and result.supersedes_id is None
    assert result.reading == D("0.205") and result.reading_unit == "Abs" and result.dilution_factor == D("2")
    assert result.sample_id == s1.sample_id and result.source == "manual" and result.entered_by_id == analyst.id
    assert result.curve_id is not None and result.instrument_id == batch.batch.instrument_id
    steps = json.loads(result.intermediates)
    assert D(steps["concentration_on_curve"]) == D("1.0") and steps["curve"]["intercept"] == "0.005"
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert event.action == "results.recorded" and event.entity_id == str(batch.batch.id)
        assert json.loads(event.after)["results"][0][0] == result.id


def test_below_mdl_keeps_the_raw_value(db, analyst, batch):
    [result] = record(db, analyst, batch, [reading(batch.at("S-002"), "0.009")])
    assert result.below_mdl and result.value == D("0.02")


def test_a_correction_is_a_new_revision_and_the_first_entry_stays(db, analyst, batch):
    s1 = batch.at("S-001")
    [first] = record(db, analyst, batch, [reading(s1, "0.205")])
    [second] = record(db, analyst, batch, [reading(s1, "0.215")])
    assert second.revision == 2 and second.supersedes_id == first.id and second.value == D("1.05")
    with db.reading() as session:
        history = results.result_history(session, s1.id, "NH3-N")
        assert [(r.revision, r.value) for r in history] == [(1, D("1.0")), (2, D("1.05"))]
        current = results.current_results(session, batch.batch.id)
        assert current[(s1.id, "NH3-N")].id == second.id and len(current) == 1


def test_after_submission_a_reason_is_required_and_the_revision_stays_queryable(db, analyst, batch):
    s1 = batch.at("S-001")
    [first] = record(db, analyst, batch, [reading(s1, "0.205")])
    submit(db, batch)
    error = refused(db, analyst, batch, [reading(s1, "0.215")])
    assert error.code == "reason_required"
    error = refused(db, analyst, batch, [reading(s1, "0.215")], reason="   ")
    assert error.code == "reason_required"
    [second] = record(db, analyst, batch, [reading(s1, "0.215")], reason="比色皿未擦净，重新测定")
    assert second.revision == 2 and second.reason == "比色皿未擦净，重新测定"
    with db.reading() as session:
        late = results.revised_after_submission(session)
        assert [r.id for r in late] == [second.id]
        assert session.scalar(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(1)) == \
            "results.revised_after_submission"
        batch_state = session.get(type(batch.batch), batch.batch.id).state
        assert batch_state == "submitted"  # left for review
    assert first.revision == 1


def test_one_bad_row_refuses_all_and_names_every_bad_row(db, analyst, batch, samples):
    other_sample = samples_in_lab(db, analyst, prefix="WS02-261203", count=1)
    other = running_batch(db, analyst, batch_version(db, batch), other_sample, instrument=None)
    error = refused(db, analyst, batch, [
        reading(batch.at("S-001"), "0.205"),
        reading(other.at("S-001"), "0.205"),
        reading(batch.at("S-002"), "0.505"),
        reading(batch.at("S-003"), "0.2", unit="mg/L"),
        reading(batch.at("BLK1"), "0.010", dilution="0.5"),
        reading(batch.at("BLK2"), "0.010", parameter="COD"),
    ])
    assert isinstance(error, errors.ResultsRefused)
    assert error.codes == ["position_not_in_batch", "above_calibration_range", "wrong_unit", "dilution_below_one",
                           "parameter_not_in_batch"]
    assert [p.row for p in error.problems] == [2, 3, 4, 5, 6]
    assert other.batch.batch_no in error.problems[0].message_en and "not in the batch" in error.problems[0].message_en
    assert "第 3 行" in error.message("zh") and "dilute and re-measure" in error.message("en")


def batch_version(db, running):
    from app.analysis.models import MethodVersion

    with db.reading() as session:
        version = session.get(MethodVersion, running.batch.method_version_id)
        session.expunge(version)
        return version


def test_the_same_cell_twice_and_times_out_of_the_batch_are_refused(db, analyst, batch):
    s1 = batch.at("S-001")
    error = refused(db, analyst, batch, [
        reading(s1, "0.205"), reading(s1, "0.206"),
        reading(batch.at("S-002"), "0.205", at=utcnow() + timedelta(hours=1)),
        reading(batch.at("S-003"), "0.205", at=utcnow() - timedelta(hours=3)),
    ])
    assert error.codes == ["same_cell_twice", "measured_in_future", "measured_before_start"]


def test_the_batch_must_be_started_and_not_closed(db, analyst, batch):
    for state in ("open", "closed"):
        set_state(db, batch, state)
        assert refused(db, analyst, batch, [reading(batch.at("S-001"), "0.205")]).code == "batch_not_running"
    set_state(db, batch, "qc_failed")  # a rerun's reading after a QC failure is welcome
    assert record(db, analyst, batch, [reading(batch.at("S-001"), "0.205")])[0].revision == 1


def test_only_who_records_analyses_may(db, users, batch):
    error = refused(db, users["inspector"], batch, [reading(batch.at("S-001"), "0.205")])
    assert isinstance(error, PermissionDenied)
    assert isinstance(refused(db, users["checker"], batch, [reading(batch.at("S-001"), "0.205")]), PermissionDenied)


def test_the_curve_gate_is_checked_at_the_time_of_measurement(db, analyst, nh3n_method, uv, samples):
    running = running_batch(db, analyst, nh3n_method, samples, instrument=uv, started_ago=timedelta(hours=30))
    attach_curve(db, analyst, running, uv, made_ago=timedelta(hours=31), valid_hours=24)  # expired 7 h ago
    s1 = running.at("S-001")
    early = utcnow() - timedelta(hours=29)
    assert record(db, analyst, running, [reading(s1, "0.205", at=early)])[0].measured_at == early
    error = refused(db, analyst, running, [reading(running.at("S-002"), "0.205", at=early),
                                           reading(running.at("S-003"), "0.205")])
    assert error.code == "curve_not_usable" and "valid" in error.message("en").lower()


def test_a_curve_method_without_a_curve_says_so(db, analyst, nh3n_method, uv, samples):
    running = running_batch(db, analyst, nh3n_method, samples, instrument=uv)
    assert refused(db, analyst, running, [reading(running.at("S-001"), "0.205")]).code == "curve_missing"


def test_blank_corrected_uses_the_batchs_blanks(db, analyst, technical, uv, samples):
    version = make_method(db, technical, "HJ 536-2009", calculation="curve_blank_corrected", instruments=(uv,))
    running = running_batch(db, analyst, version, samples, instrument=uv)
    attach_curve(db, analyst, running, uv)
    s1 = running.at("S-001")
    assert refused(db, analyst, running, [reading(s1, "0.211")]).codes == ["blank_missing"]
    written = record(db, analyst, running, [reading(running.at("BLK1"), "0.010"), reading(s1, "0.211"),
                                            reading(running.at("BLK2"), "0.012")])
    assert written[1].value == D("0.975") and written[0].value == D("0.025")
    [later] = record(db, analyst, running, [reading(running.at("S-002"), "0.111")])
    assert json.loads(later.intermediates)["blank_responses"] == ["0.010", "0.012"]


def test_direct_readings_in_a_convertible_unit(db, analyst, direct_method, uv, samples):
    running = running_batch(db, analyst, direct_method, samples, instrument=uv)
    [result] = record(db, analyst, running, [reading(running.at("S-001"), "512", unit="μg/L")])
    assert result.value == D("0.512") and result.unit == "mg/L" and result.reading_unit == "μg/L"
    assert refused(db, analyst, running, [reading(running.at("S-002"), "1", unit="mg/kg")]).codes == ["wrong_unit"]


def test_the_instrument_gate_at_the_time_of_measurement(db, analyst, technical, store, direct_method, samples):
    lapsed = make_instrument(db, technical, "JC-UV-009", uses=(("NH3-N", "HJ 700-2014"),))
    today = local_today(db)
    calibrate(db, technical, store, lapsed, performed_on=today - timedelta(days=400),
              valid_until=today - timedelta(days=1))
    running = running_batch(db, analyst, direct_method, samples, instrument=lapsed, started_ago=timedelta(days=3))
    in_time = utcnow() - timedelta(days=2, hours=12)
    assert record(db, analyst, running, [reading(running.at("S-001"), "0.5", at=in_time)])
    error = refused(db, analyst, running, [reading(running.at("S-002"), "0.5", at=in_time),
                                           reading(running.at("S-003"), "0.5")])
    assert isinstance(error, InstrumentNotUsable) and error.code == "instrument_overdue"


def test_an_out_of_service_spell_inside_the_window_is_caught(db, analyst, technical, store, direct_method, samples):
    """Usable at the first and at the last measurement, out of service in between (a failed
    check, then a new calibration): the gate finds the measurement in the gap."""
    meter = calibrated_instrument(db, technical, store, "JC-UV-010", uses=(("NH3-N", "HJ 700-2014"),))
    running = running_batch(db, analyst, direct_method, samples, instrument=meter, started_ago=timedelta(days=3))
    now = utcnow()
    check(db, technical, meter, performed_at=now - timedelta(days=2), result="fail")
    calibrate(db, technical, store, meter, performed_on=local_today(db),
              valid_until=local_today(db) + timedelta(days=300), certificate_no="JD-RESTORED")
    first, gap, last = now - timedelta(days=2, hours=12), now - timedelta(days=1, hours=12), now
    assert record(db, analyst, running, [reading(running.at("S-001"), "0.5", at=first),
                                         reading(running.at("S-003"), "0.5", at=last)])
    error = refused(db, analyst, running, [reading(running.at("S-001"), "0.6", at=first),
                                           reading(running.at("S-002"), "0.5", at=gap),
                                           reading(running.at("S-003"), "0.6", at=last)])
    assert error.code == "instrument_out_of_service"


def test_check_times_cover_each_span_between_changes():
    now = utcnow()
    times = [now - timedelta(hours=h) for h in (10, 8, 6, 4, 2)]
    assert results.check_times(times, []) == [times[0], times[-1]]
    change = now - timedelta(hours=5)  # between 6 h and 4 h ago
    assert results.check_times(times, [change]) == [times[0], times[2], times[-1]]


def test_a_client_id_posted_twice_records_once(db, analyst, batch):
    s1 = batch.at("S-001")
    [first] = record(db, analyst, batch, [reading(s1, "0.205", client_id="uv-run-17-pos-3")], source="api")
    before = counts(db)
    [again] = record(db, analyst, batch, [reading(s1, "0.205", client_id="uv-run-17-pos-3")], source="api")
    assert again.id == first.id and counts(db) == before
    error = refused(db, analyst, batch, [reading(s1, "0.300", client_id="uv-run-17-pos-3")], source="api")
    assert error.codes == ["client_id_reused"]


def test_many_readings_take_a_few_queries(db, analyst, nh3n_method, uv, users, count_queries):
    """The import path: the queries do not grow with the number of readings."""
    def run(n: int) -> int:
        samples = samples_in_lab(db, users["custodian"], count=n, prefix=f"WS{n:02d}-261203")
        running = running_batch(db, analyst, nh3n_method, samples, instrument=uv)
        attach_curve(db, analyst, running, uv)
        positions = [p for p in running.positions if p.role == "sample"]
        with count_queries() as counter:
            record(db, analyst, running, [reading(p, "0.205") for p in positions])
        with db.reading() as session:
            assert len(results.current_results(session, running.batch.id)) == n
        return counter.count

    assert run(60) == run(5)


def test_nothing_to_record_and_a_too_long_reason(db, analyst, batch):
    assert refused(db, analyst, batch, []).code == "no_readings"
    assert refused(db, analyst, batch, [reading(batch.at("S-001"), "0.205")], reason="x" * 501).code == \
        "reason_too_long"
    with db.reading() as session:
        assert session.scalar(select(AnalysisResult.id)) is None
