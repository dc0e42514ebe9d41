"""Analysis batches: the QC layout the method version asks for, the samples due in deadline
order, building (and every refusal, with nothing changed), standards added into their planned
places, starting (gates at the time of the act, clocks stopped, samples in analysis), and the
forward trace of a standard to the batch positions that used it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.analysis import batches
from app.analysis.batches import StandardChoice, plan_layout
from app.analysis.models import AnalysisBatch, BatchPosition, MethodInstrument, MethodVersion, PositionRole
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.reference_materials.traceability import forward_traceability
from app.samples import holding
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample
from tests.analysis.batch_fixtures import *  # noqa: F403
from tests.analysis.batch_fixtures import build, lab_samples, positions_of, refused, run, standards_for
from tests.analysis.conftest import calibrated_instrument, make_method, qualify
from tests.instruments.conftest import calibrate, local_today, make_instrument


def version(**qc: int) -> MethodVersion:
    return MethodVersion(method_id=1, version=1, valid_from=datetime(2020, 1, 1, tzinfo=UTC),
                         created_at=datetime(2020, 1, 1, tzinfo=UTC), created_by_id=1, **qc)


def roles(slots) -> dict[str, int]:
    counted: dict[str, int] = {}
    for slot in slots:
        counted[slot.role] = counted.get(slot.role, 0) + 1
    return counted


def labels(n: int) -> list[str]:
    return [f"S-{i + 1:03d}" for i in range(n)]


# ---------------------------------------------------------------- the layout


@pytest.mark.parametrize(("n", "duplicates", "spikes", "ccvs"), [(1, 1, 1, 1), (7, 1, 1, 1), (20, 2, 2, 1)])
def test_the_default_layout_carries_the_qc_of_domain_4_2(n, duplicates, spikes, ccvs):
    slots = plan_layout(version(), labels(n))
    assert roles(slots) == {"calibration_blank": 1, "method_blank": 2, "crm": 1, "sample": n,
                            "duplicate": duplicates, "spike": spikes, "ccv": ccvs}
    assert [s.position for s in slots] == list(range(1, len(slots) + 1))
    assert [s.label for s in slots[:4]] == ["CB1", "BLK1", "BLK2", "CRM1"]
    assert slots[-1].role == "ccv"
    by_position = {s.position: s for s in slots}
    for slot in slots:
        if slot.role in ("duplicate", "spike"):
            sample = by_position[slot.of_position]
            assert sample.role == "sample" and slot.label.startswith(sample.label)
            assert slot.position > sample.position
            between = [by_position[p].role for p in range(sample.position + 1, slot.position)]
            assert set(between) <= {"duplicate", "spike"}  # right after its sample


def test_the_version_s_numbers_change_the_layout():
    slots = plan_layout(version(blanks_per_batch=1, ccv_every=0, crm_per_batch=0, spike_rate_pct=0), labels(7))
    assert roles(slots) == {"calibration_blank": 1, "method_blank": 1, "sample": 7, "duplicate": 1}
    slots = plan_layout(version(ccv_every=5, duplicate_rate_pct=20, spike_rate_pct=20, crm_per_batch=2), labels(12))
    counted = roles(slots)
    assert counted["ccv"] == 3 and counted["duplicate"] == 3 and counted["spike"] == 3 and counted["crm"] == 2
    samples_seen = 0
    for slot in slots:
        samples_seen += slot.role == "sample"
        if slot.role == "ccv":
            assert samples_seen in (5, 10, 12)
    ten = plan_layout(version(ccv_every=10), labels(20))
    assert [s.label for s in ten if s.role == "ccv"] == ["CCV1", "CCV2"]


def test_duplicates_and_spikes_are_spread_not_the_first_samples():
    slots = plan_layout(version(duplicate_rate_pct=10, spike_rate_pct=10), labels(20))
    duplicated = [s.sample_index for s in slots if s.role == "duplicate"]
    spiked = [s.sample_index for s in slots if s.role == "spike"]
    assert duplicated == [5, 15] and spiked == [9, 19]
    assert plan_layout(version(), labels(7)) == plan_layout(version(), labels(7))  # deterministic


# ---------------------------------------------------------------- samples due


def test_due_samples_come_earliest_deadline_first(db, users, bench, analyst, count_queries):
    late = lab_samples(db, users, 3, prefix="WS01-A", ages=(timedelta(hours=2), timedelta(hours=20),
                                                             timedelta(hours=10)))
    endless = lab_samples(db, users, 1, prefix="WS01-B", parameters=(("NH3-N", None),))
    lab_samples(db, users, 1, prefix="WS01-C", state="in_preparation")
    lab_samples(db, users, 1, prefix="WS01-D", parameters=(("COD", 48),))
    with db.reading() as session:
        with count_queries() as counted:
            due = batches.due_samples(session, None, ["NH3-N"], limit=10)
        assert counted.count == 1
        assert [d.sample.sample_no for d in due] == [late[1].sample_no, late[2].sample_no, late[0].sample_no,
                                                     endless[0].sample_no]
        assert due[0].parameters == ["NH3-N"] and due[-1].first_deadline is None
    with db.reading() as session:
        assert [d.sample.sample_no for d in batches.due_samples(session, bench, ["NH3-N"], limit=2, offset=1)] == \
            [late[2].sample_no, late[0].sample_no]
        assert batches.count_due(session, ["NH3-N"]) == 4
    build(db, analyst, [late[1]])
    with db.reading() as session:
        assert late[1].sample_no not in [d.sample.sample_no for d in batches.due_samples(session, bench, ["NH3-N"])]
        assert batches.count_due(session, ["NH3-N"]) == 3


# ---------------------------------------------------------------- building


def test_a_batch_is_built_with_its_qc_and_standards(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 7, ages=tuple(timedelta(hours=2 + (i * 5) % 7) for i in range(7)))
    batch = build(db, analyst, samples, standards=standards_for(standards))
    assert batch.batch_no.startswith("AB") and batch.state == "open" and batch.parameters == '["NH3-N"]'
    rows = positions_of(db, batch)
    assert len(rows) == 14 and [r.position for r in rows] == list(range(1, 15))
    with db.reading() as session:
        collected = dict(session.execute(select(Sample.id, Sample.collected_at)).all())
    in_run = [collected[r.sample_id] for r in rows if r.role == "sample"]
    assert in_run == sorted(in_run)  # the oldest sample (earliest deadline) first
    crm = next(r for r in rows if r.role == "crm")
    assert crm.material_barcode == standards.unit.barcode and str(crm.expected_value) == "1.00"
    assert str(crm.expected_uncertainty) == "0.05" and crm.material_use_id
    spike = next(r for r in rows if r.role == "spike")
    assert str(spike.spike_added) == "0.200" and spike.of_position_id
    of = next(r for r in rows if r.id == spike.of_position_id)
    assert of.role == "sample" and spike.label == f"{of.label}SP" and spike.sample_id == of.sample_id
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "analysis.batch_built")).one()
        assert batch.batch_no in event.after and '"awaiting_standard":[]' in event.after


def test_without_standards_the_places_wait_and_start_is_refused(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 3)
    batch = build(db, analyst, samples)
    rows = positions_of(db, batch)
    assert {r.role for r in rows} == {"calibration_blank", "method_blank", "sample", "duplicate"}
    with db.reading() as session:
        missing = batches.awaiting_standard(batches.plan_of(session, batch), rows)
    assert [s.label for s in missing] == ["CRM1", f"{samples[0].sample_no}SP", "CCV1"]  # the last in the run
    refused(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id)), "batch_standards_missing")
    choice = StandardChoice(standards.working.barcode, spike_added="0.2")
    added = run(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "spike", choice))
    assert [p.position for p in added] == [missing[1].position] and added[0].of_position_id
    refused(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "spike", choice),
            "batch_no_position_awaiting_standard")
    refused(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "crm",
                                               StandardChoice(standards.unit.barcode, "1,00")), "batch_comma_decimal")
    refused(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "crm",
                                               StandardChoice(standards.unit.barcode, "NaN")), "batch_number_invalid")
    refused(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "sample",
                                               StandardChoice(standards.unit.barcode, "1")),
            "batch_role_takes_no_standard")
    run(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), str(missing[0].position),
                                           StandardChoice(standards.unit.barcode, "1.00", "0.05")))
    run(db, lambda s: batches.add_standard(s, analyst, s.get(AnalysisBatch, batch.id), "ccv",
                                           StandardChoice(standards.working.barcode, "0.5")))
    rows = positions_of(db, batch)
    assert [r.position for r in rows] == list(range(1, len(rows) + 1))
    assert [r.label for r in rows if r.role in ("crm", "ccv", "spike")] == [s.label for s in missing]
    started = run(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id)))
    assert started.state == "running"


def test_refusals_of_building_change_nothing(db, users, bench, analyst, technical, store, standards):
    samples = lab_samples(db, users, 3)
    numbers = [s.sample_no for s in samples]

    def attempt(sample_nos=numbers, parameters=("NH3-N",), instrument="JC-UV-001", method="HJ 535-2009", at=None):
        return lambda s: batches.build_batch(s, analyst, method, parameters, sample_nos, instrument, at)

    refused(db, attempt(parameters=("COD",)), "parameter_not_in_method")
    refused(db, attempt(parameters=()), "batch_parameters_required")
    refused(db, attempt(sample_nos=[]), "batch_samples_required")
    refused(db, attempt(sample_nos=["WS99-000000-001"]), "batch_sample_not_found")
    refused(db, attempt(method="HJ 999-2020"), "method_not_found")
    refused(db, attempt(instrument=""), "batch_instrument_required")
    refused(db, attempt(instrument="JC-NONE-001"), "instrument_not_found")
    preparing = lab_samples(db, users, 1, prefix="WS01-P", state="in_preparation")
    refused(db, attempt(sample_nos=[*numbers, preparing[0].sample_no]), "batch_sample_not_in_lab")
    cod = lab_samples(db, users, 1, prefix="WS01-Q", parameters=(("COD", 48),))
    refused(db, attempt(sample_nos=[cod[0].sample_no]), "batch_sample_not_due")
    # another instrument, calibrated but not named by the method
    calibrated_instrument(db, technical, store, "JC-UV-002")
    refused(db, attempt(instrument="JC-UV-002"), "instrument_not_allowed_for_method")
    # an instrument the method names, overdue for calibration at the time of the act
    overdue = make_instrument(db, technical, "JC-UV-003", uses=(("NH3-N", "HJ 535-2009"),))
    today = local_today(db)
    calibrate(db, technical, store, overdue, performed_on=today - timedelta(days=400),
              valid_until=today - timedelta(days=20))
    with db.transaction() as session:
        session.add(MethodInstrument(method_version_id=bench.id, instrument_id=overdue.id))
    refused(db, attempt(instrument="JC-UV-003"), "instrument_overdue")
    build(db, analyst, samples[:1], at=utcnow() - timedelta(days=30), instrument="JC-UV-003")  # in calibration then
    refused(db, attempt(), "sample_already_in_batch")


def test_too_many_samples_are_refused_with_a_request_to_split(db, users, analyst, technical, uv):
    small = make_method(db, technical, "HJ 536-2009", instruments=(uv,), max_samples_per_batch=3)
    qualify(db, analyst, small.method_id)
    samples = lab_samples(db, users, 4)
    error = refused(db, lambda s: batches.build_batch(s, analyst, "HJ 536-2009", ["NH3-N"],
                                                      [x.sample_no for x in samples], "JC-UV-001"),
                    "batch_too_many_samples")
    assert "split" in error.message("en") and "分成" in error.message("zh")
    assert build(db, analyst, samples[:3], method="HJ 536-2009").state == "open"


def test_an_analyst_not_qualified_at_the_time_is_refused(db, users, nh3n_method, analyst, technical):
    samples = lab_samples(db, users, 1)
    qualify(db, analyst, nh3n_method.method_id, valid_from=local_today(db) - timedelta(days=5))
    refused(db, lambda s: batches.build_batch(s, analyst, "HJ 535-2009", ["NH3-N"], [samples[0].sample_no],
                                              "JC-UV-001", utcnow() - timedelta(days=10)), "analyst_not_qualified")
    refused(db, lambda s: batches.build_batch(s, technical, "HJ 535-2009", ["NH3-N"], [samples[0].sample_no],
                                              "JC-UV-001"), "permission_denied")
    assert build(db, analyst, samples).state == "open"


# ---------------------------------------------------------------- starting


def test_start_stops_the_clocks_and_puts_the_samples_in_analysis(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 3, parameters=(("NH3-N", 24), ("COD", 48)))
    batch = build(db, analyst, samples, standards=standards_for(standards))
    at = utcnow() - timedelta(minutes=5)
    started = run(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id), at))
    assert started.state == "running" and started.started_at == at
    with db.reading() as session:
        clocks = {(c.sample_id, c.parameter): c for c in session.scalars(select(HoldingClock))}
        for sample in samples:
            assert not clocks[(sample.id, "NH3-N")].open and clocks[(sample.id, "NH3-N")].stopped_at == at
            assert clocks[(sample.id, "NH3-N")].stopped_by == "analysed"
            assert clocks[(sample.id, "COD")].open  # another method's parameter still waits
            assert session.get(Sample, sample.id).state == "in_analysis"
        events = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("%analysis%"))).all()
        assert events.count("sample.analysis_started") == 3 and "analysis.batch_started" in events
    refused(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id)), "batch_not_open")


def test_start_refuses_past_the_holding_time_until_a_deviation(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 2, ages=(timedelta(hours=2), timedelta(hours=30)))
    batch = build(db, analyst, samples, standards=standards_for(standards))
    error = refused(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id)),
                    "holding_time_exceeded")
    assert samples[1].sample_no in error.message("en")
    run(db, lambda s: holding.record_holding_deviation(s, users["quality_manager"], s.get(Sample, samples[1].id),
                                                       ["NH3-N"], "analysis", "仪器故障修复后补测，客户同意"))
    assert run(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id))).state == "running"


def test_start_checks_the_gates_at_the_time_of_the_act(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 1, ages=(timedelta(hours=1),))
    batch = build(db, analyst, samples, standards=standards_for(standards), at=utcnow() - timedelta(hours=3))
    refused(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id),
                                              utcnow() - timedelta(hours=4)), "batch_act_before_creation")
    refused(db, lambda s: batches.start_batch(s, analyst, s.get(AnalysisBatch, batch.id),
                                              utcnow() - timedelta(hours=2)), "batch_act_before_sampling")
    other = make_user_analyst(db)
    refused(db, lambda s: batches.start_batch(s, other, s.get(AnalysisBatch, batch.id)), "not_the_batch_analyst")


def make_user_analyst(db):
    from tests.conftest import make_user

    return make_user(db, "analyst-2", "analyst")


def test_forward_trace_of_a_standard_names_the_batch_positions(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 2)
    batch = build(db, analyst, samples, standards=standards_for(standards))
    with db.reading() as session:
        lot_id = standards.unit.lot_id
        found = [u for u in forward_traceability(session, lot_id) if u.source == "analysis_batch_position"]
        rows = session.execute(select(BatchPosition.position, BatchPosition.role).where(
            BatchPosition.batch_id == batch.id, BatchPosition.material_use_id.is_not(None))).all()
    assert sorted(u.record_id for u in found) == sorted(f"{batch.batch_no}#{r.position}" for r in rows)
    assert {u.description for u in found} >= {"CRM1", "CCV1"}
    assert PositionRole.SPIKE.value in {r.role for r in rows}


# ---------------------------------------------------------------- curves


def make_curve(db, technical, version_id: int, instrument_id: int, code: str, *, accepted: bool = True,
               parameter: str = "NH3-N", measured_hours_ago: int = 2):
    from decimal import Decimal as D

    from app.analysis.models import CalibrationCurve

    made = utcnow() - timedelta(hours=measured_hours_ago)
    with db.transaction() as session:
        curve = CalibrationCurve(code=code, method_version_id=version_id, parameter=parameter,
                                 instrument_id=instrument_id, concentration_unit="mg/L", response_unit="Abs",
                                 intercept=D("0.002"), slope=D("0.301"), r=D("0.9995") if accepted else D("0.990"),
                                 range_low=D("0.05"), range_high=D("2.0"), accepted=accepted,
                                 rejection="" if accepted else "r < 0.999", measured_at=made,
                                 valid_until=made + timedelta(hours=24), made_by_id=technical.id, recorded_at=made)
        session.add(curve)
    return code


def test_a_curve_is_attached_through_its_gate_and_kept_once_used(db, users, bench, analyst, technical, store, uv,
                                                                 standards):
    from decimal import Decimal as D

    from app.analysis.models import AnalysisResult, BatchCurve

    batch = build(db, analyst, lab_samples(db, users, 1), standards=standards_for(standards))
    good = make_curve(db, technical, bench.id, uv.id, "CC26-00001")
    rejected = make_curve(db, technical, bench.id, uv.id, "CC26-00002", accepted=False)
    other = calibrated_instrument(db, technical, store, "JC-UV-009")
    elsewhere = make_curve(db, technical, bench.id, other.id, "CC26-00003")
    later = make_curve(db, technical, bench.id, uv.id, "CC26-00004", measured_hours_ago=0)

    def attach(code, parameter="NH3-N", at=None):
        return lambda s: batches.attach_curve(s, analyst, s.get(AnalysisBatch, batch.id), parameter, code, at)

    refused(db, attach(rejected), "curve_not_usable")
    refused(db, attach(elsewhere), "curve_not_for_batch")
    refused(db, attach(good, parameter="COD"), "parameter_not_in_batch")
    refused(db, attach("CC26-09999"), "curve_not_found")
    refused(db, attach(later, at=utcnow() - timedelta(minutes=20)), "curve_not_usable")  # made after the act
    run(db, attach(good))
    run(db, attach(later))  # replaced: nothing was computed with the first
    with db.transaction() as session:
        row = session.scalars(select(BatchCurve)).one()
        position = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id,
                                                               BatchPosition.role == "sample")).first()
        now = utcnow()
        session.add(AnalysisResult(batch_id=batch.id, position_id=position.id, sample_id=position.sample_id,
                                   parameter="NH3-N", method_version_id=bench.id, curve_id=row.curve_id,
                                   reading=D("0.3"), value=D("0.99"), unit="mg/L", measured_at=now, entered_at=now,
                                   entered_by_id=analyst.id))
    refused(db, attach(good), "batch_curve_in_use")
