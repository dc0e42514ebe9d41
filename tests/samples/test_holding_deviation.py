"""Holding-time clocks in the database: started, re-timed, stopped; method rows; aliquots on their
sample's clock; the gate; deviations recorded by the quality manager (issue 7 item 3)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.samples import holding
from app.samples.lab_models import HoldingClock, HoldingDeviation
from app.samples.models import Container, ContainerKind, PreservationRule, Sample, SampleState
from tests.samples.field_fixtures import entry, north_of_site, record, reload, sign
from tests.samples.lab_fixtures import *  # noqa: F403


def clocks_of(db, sample) -> dict[str, HoldingClock]:
    with db.reading() as session:
        found = {c.parameter: c for c in session.scalars(select(HoldingClock).where(
            HoldingClock.sample_id == sample.id))}
        session.expunge_all()
    return found


def counts(db) -> tuple[int, int]:
    with db.reading() as session:
        return (session.scalar(select(func.count()).select_from(HoldingDeviation)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def deviate(db, actor, sample, parameters, act="analysis", reason="仪器故障，经客户同意延迟分析", *, at=None):
    with db.transaction() as session:
        return [d.id for d in holding.record_holding_deviation(
            session, actor, session.get(Sample, sample.id), parameters, act, reason, at=at)]


def refused(db, actor, sample, parameters, code, **kwargs):
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        deviate(db, actor, sample, parameters, **kwargs)
    assert caught.value.code == code, caught.value
    assert caught.value.message("zh") != caught.value.message("en")
    assert counts(db) == before  # nothing recorded, no audit event
    return caught.value


def gate(db, sample, parameters, at, act="analysis"):
    with db.reading() as session:
        return [d.id for d in holding.assert_within_holding_time(session, session.get(Sample, sample.id), parameters,
                                                                   at, act)]


# ---------------------------------------------------------------- clocks


def test_a_revised_sampling_time_re_times_the_open_clocks(db, collected_task):
    dt = collected_task
    sample = dt.routine
    before = clocks_of(db, sample)
    corrected = sample.collected_at - timedelta(minutes=40)
    lat, lon = north_of_site(20)
    record(db, dt.sampler, entry(sample, "sampling", at=corrected, gps_status="ok", latitude=lat, longitude=lon,
                                 accuracy_m=5, reason="手表慢了 40 分钟"))
    sign(db, dt.sampler, sample)
    after = clocks_of(db, sample)
    assert set(after) == set(before) and reload(db, Sample, sample.id).collected_at == corrected
    for parameter, clock in after.items():
        assert clock.id == before[parameter].id  # the same clock, moved
        assert clock.started_at == corrected
        assert clock.deadline_at == corrected + timedelta(hours=clock.allowed_hours)


def test_a_stopped_clock_is_not_re_timed_and_leaves_the_worklist(db, collected_task):
    dt = collected_task
    sample = dt.routine
    at = utcnow()
    with db.transaction() as session:
        holding.stop_clocks(session, session.get(Sample, sample.id), "analysed", at, ["COD"])
    stopped = clocks_of(db, sample)["COD"]
    assert not stopped.open and stopped.stopped_by == "analysed" and stopped.stopped_at == at
    with db.transaction() as session:
        holding.start_clocks(session, [session.get(Sample, sample.id)])
    assert clocks_of(db, sample)["COD"].open is False
    with db.reading() as session:
        shown = holding.worklist(session, holding.WorklistFilters(parameter="COD"))
    assert sample.sample_no not in {r.sample_no for r in shown.rows}


def test_a_method_row_prevails_over_the_default_when_the_method_is_known(db, collected_task, users):
    sample = collected_task.routine
    with db.transaction() as session:
        default = session.scalars(select(PreservationRule).where(PreservationRule.parameter == "NH3-N",
                                                                 PreservationRule.method == "")).one()
        session.add(PreservationRule(parameter="NH3-N", method="HJ/T 195-2005", matrix="water", name_zh="氨氮",
                                     name_en="Ammonia nitrogen", group_code=default.group_code,
                                     container_type="P/G", holding_hours=12, source="HJ/T 195-2005 (verify)"))
    assert clocks_of(db, sample)["NH3-N"].allowed_hours == 24
    with db.transaction() as session:
        rules = holding.rules_by_parameter(session, ["NH3-N", "COD"], {"NH3-N": "HJ/T 195-2005"})
        assert rules["NH3-N"].method == "HJ/T 195-2005" and rules["COD"].method == ""
        assert holding.rules_by_parameter(session, ["NH3-N"], {"COD": "HJ/T 195-2005"})["NH3-N"].method == ""
        holding.start_clocks(session, [session.get(Sample, sample.id)], methods={"NH3-N": "HJ/T 195-2005"})
    clock = clocks_of(db, sample)["NH3-N"]
    assert clock.allowed_hours == 12 and clock.deadline_at == sample.collected_at + timedelta(hours=12)


def test_an_aliquot_runs_on_its_sample_clock(db, collected_task, users):
    """Aliquots are containers of the same sample: the gate and the page see the sample's clocks."""
    sample = collected_task.routine
    parent = collected_task.containers[sample.id][0]
    with db.transaction() as session:
        session.add(Container(barcode="CT26-99999990", sample_id=sample.id, position=9, group_code=parent.group_code,
                              container_type="tube", parameters=parent.parameters, state="received",
                              created_at=utcnow(), kind=ContainerKind.ALIQUOT.value, parent_id=parent.id,
                              amount=Decimal("50"), amount_unit="mL", remaining=Decimal("50")))
    clocks = clocks_of(db, sample)
    assert {c.sample_id for c in clocks.values()} == {sample.id}
    late = clocks["COD"].deadline_at + timedelta(minutes=1)
    with pytest.raises(holding.HoldingTimeExceeded):
        gate(db, sample, ["COD"], late, "preparation")
    with db.reading() as session:
        section = holding.clock_section(session, session.get(Sample, sample.id))
        assert {r.clock.parameter for r in section.rows} == set(clocks)


# ---------------------------------------------------------------- the gate


def test_the_gate_lets_an_act_through_before_the_deadline_and_refuses_it_after(db, collected_task):
    sample = collected_task.routine
    cod = clocks_of(db, sample)["COD"]
    assert gate(db, sample, ["COD", "NH3-N"], cod.started_at + timedelta(hours=20)) == []
    assert gate(db, sample, ["COD"], cod.deadline_at) == []  # at the deadline itself: still in time
    with pytest.raises(holding.HoldingTimeExceeded) as caught:
        gate(db, sample, ["COD", "Cu"], cod.deadline_at + timedelta(seconds=1))
    assert caught.value.code == "holding_time_exceeded" and "COD" in caught.value.message("en")
    assert "Cu" not in caught.value.message("en")  # 14 days


def test_a_deviation_recorded_by_the_quality_manager_lets_the_late_act_through(db, collected_task, users):
    sample = collected_task.routine
    clocks = clocks_of(db, sample)
    at = clocks["NH3-N"].deadline_at + timedelta(hours=1)
    audit_before = counts(db)[1]
    made = deviate(db, users["quality_manager"], sample, ["NH3-N", "TP"], at=at)
    assert len(made) == 2
    with db.reading() as session:
        rows = session.scalars(select(HoldingDeviation).order_by(HoldingDeviation.parameter)).all()
        assert [(d.parameter, d.act, d.deadline_at, d.recorded_at) for d in rows] == [
            ("NH3-N", "analysis", clocks["NH3-N"].deadline_at, at), ("TP", "analysis", clocks["TP"].deadline_at, at)]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "holding.deviation_recorded")).all()
        assert sorted(str(e.entity_id) for e in events) == sorted(str(i) for i in made)
    assert counts(db)[1] == audit_before + 2
    assert sorted(gate(db, sample, ["NH3-N", "TP"], at)) == sorted(made)
    with pytest.raises(holding.HoldingTimeExceeded):  # a deviation for analysis does not cover preparation
        gate(db, sample, ["NH3-N"], at, "preparation")
    with db.reading() as session:
        views = holding.deviations_of_sample(session, sample.id)
        assert [v.deviation.parameter for v in views] == ["NH3-N", "TP"]
        assert views[0].recorded_by_zh == users["quality_manager"].display_name_zh


def test_an_analyst_cannot_record_a_deviation(db, collected_task, users):
    sample = collected_task.routine
    at = clocks_of(db, sample)["COD"].deadline_at + timedelta(hours=1)
    refused(db, users["analyst"], sample, ["COD"], "permission_denied", at=at)
    refused(db, users["custodian"], sample, ["COD"], "permission_denied", at=at)


def test_a_deviation_needs_a_reason(db, collected_task, users):
    sample = collected_task.routine
    at = clocks_of(db, sample)["COD"].deadline_at + timedelta(hours=1)
    refused(db, users["quality_manager"], sample, ["COD"], "field_required", reason="   ", at=at)
    refused(db, users["quality_manager"], sample, ["COD"], "field_too_long", reason="长" * 501, at=at)


def test_a_deviation_is_refused_before_the_deadline(db, collected_task, users):
    sample = collected_task.routine
    error = refused(db, users["quality_manager"], sample, ["COD"], "holding_deviation_not_due")
    assert "COD" in error.message("zh")
    deadline = clocks_of(db, sample)["COD"].deadline_at
    refused(db, users["quality_manager"], sample, ["COD"], "holding_deviation_not_due", at=deadline)


def test_deviation_refusals_for_bad_parameters_acts_and_repeats(db, collected_task, users):
    sample = collected_task.routine
    qm = users["quality_manager"]
    at = clocks_of(db, sample)["Cu"].deadline_at + timedelta(hours=1)
    refused(db, qm, sample, ["pH"], "holding_deviation_no_clock", at=at)  # measured on site
    refused(db, qm, sample, ["NOPE"], "holding_deviation_no_clock", at=at)
    refused(db, qm, sample, [], "holding_deviation_parameters_required", at=at)
    refused(db, qm, sample, ["  "], "holding_deviation_parameters_required", at=at)
    refused(db, qm, sample, ["X" * 61], "holding_deviation_parameters_required", at=at)
    refused(db, qm, sample, ["COD"], "holding_deviation_act_unknown", act="shipping", at=at)
    deviate(db, qm, sample, ["COD"], at=at)
    refused(db, qm, sample, ["COD"], "holding_deviation_exists", at=at)
    deviate(db, qm, sample, ["COD"], act="preparation", at=at)  # the other act is its own deviation


def test_no_deviation_for_a_clock_without_deadline_or_a_closed_sample(db, collected_task, users):
    sample = collected_task.routine
    qm = users["quality_manager"]
    at = utcnow() + timedelta(days=30)
    with db.transaction() as session:
        session.add(HoldingClock(sample_id=sample.id, parameter="FC", started_at=sample.collected_at,
                                 allowed_hours=None, deadline_at=None))
    refused(db, qm, sample, ["FC"], "holding_deviation_no_deadline", at=at)
    assert gate(db, sample, ["FC"], at) == []  # as soon as possible: the method sets the limit, not the gate
    with db.transaction() as session:
        session.get(Sample, sample.id).state = SampleState.REJECTED.value
    refused(db, qm, sample, ["COD"], "holding_deviation_sample_closed", at=at)
