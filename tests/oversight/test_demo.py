"""The demo's oversight part (app.oversight.demo): station data, planted anomalies found by the
engine (with the organic ones), the quality manager's dispositions, the interference record with
its attachment and follow-ups, the inspector's reproducible draw; nothing of it blocks the report
the demo signatory approves live; loading it twice adds nothing.

The whole demo is loaded once per engine (module-scoped, like tests/reports/test_demo.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.analysis.models import AnalysisBatch, AnalysisResult
from app.core.audit import AuditEvent, verify_chain
from app.core.db import utcnow
from app.core.files import StoredFile
from app.oversight import interference
from app.oversight.demo import (
    INSPECTION_SEED,
    OFFICIAL,
    REPORTED_TO,
    STATION_FILE,
    STATION_PARAMETERS,
    STATION_SITES,
    inspection_period,
)
from app.oversight.inspections import picked_ids, verify_draw
from app.oversight.models import (
    AlarmDisposition,
    AlarmSample,
    AnomalyAlarm,
    AnomalyScan,
    FindingResponse,
    Inspection,
    InspectionFinding,
    InterferenceAttachment,
    InterferenceRecord,
    InterferenceSupplement,
    InterferenceTarget,
    StationImport,
    StationReading,
)
from app.reports.checklist import compute_checklist
from app.reports.content import load_content
from app.reports.models import Report, ReportSample, ReportState
from app.samples.models import Sample
from app.sites.models import Site
from tests.conftest import ENGINES
from tests.sites.test_demo import Demo, demo_database, row_counts


@pytest.fixture(scope="module", params=ENGINES)
def oversight_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from demo_database(request, tmp_path_factory, through="oversight")


def _alarms(session) -> list[AnomalyAlarm]:
    return list(session.scalars(select(AnomalyAlarm).order_by(AnomalyAlarm.alarm_no)))


def _samples_of(session, alarm: AnomalyAlarm) -> list[Sample]:
    return list(session.scalars(select(Sample).join(AlarmSample, AlarmSample.sample_id == Sample.id)
                                .where(AlarmSample.alarm_id == alarm.id).order_by(Sample.sample_no)))


def test_the_engine_finds_the_planted_anomalies_of_several_rules(oversight_db: Demo) -> None:
    users = oversight_db.users
    with oversight_db.db.reading() as session:
        alarms = _alarms(session)
        codes = {a.rule_code for a in alarms}
        assert {"A03", "A12", "A13"} <= codes and len(codes) >= 3
        # A03: one full-precision NH3-N value for the three routine samples of the Saturday round
        (copied,) = [a for a in alarms if a.rule_code == "A03"]
        samples = _samples_of(session, copied)
        assert len(samples) == 3 and {s.kind for s in samples} == {"routine"}
        values = set(session.scalars(select(AnalysisResult.value).where(
            AnalysisResult.batch_id == copied.batch_id, AnalysisResult.parameter == "NH3-N",
            AnalysisResult.sample_id.in_([s.id for s in samples]))))
        assert len(values) == 1 and json.loads(copied.evidence)["samples"] == 3
        assert copied.responsible_user_id == users["analyst"].id
        # A12: the TP batch typed in more than 24 h after it was measured
        (late,) = [a for a in alarms if a.rule_code == "A12"]
        evidence = json.loads(late.evidence)
        assert evidence["kind"] == "backdated" and float(evidence["max_lag_hours"]) > 24
        lags = [r.entered_at - r.measured_at for r in session.scalars(
            select(AnalysisResult).where(AnalysisResult.batch_id == late.batch_id))]
        assert lags and min(lag.total_seconds() for lag in lags) > 24 * 3600
        # A13: the JC-W08 station read far high at a manual sampling time
        station = [a for a in alarms if a.rule_code == "A13"]
        assert station and all(json.loads(a.evidence)["site"] == "JC-W08" for a in station)
        worst = json.loads(station[0].evidence)
        assert float(worst["deviation"]) > 100 and worst["criterion"] == "relative"
        # the scan ran as `lims anomalies scan` does, with every rule
        scans = session.scalars(select(AnomalyScan).where(AnomalyScan.trigger == "cli")).all()
        assert len(scans) == 1 and scans[0].finished_at is not None
        assert session.scalars(select(AuditEvent.seq).where(AuditEvent.action == "oversight.scan_finished",
                                                             AuditEvent.entity_id == str(scans[0].id))).first()


def test_station_readings_agree_with_the_manual_results_but_once(oversight_db: Demo) -> None:
    users = oversight_db.users
    with oversight_db.db.reading() as session:
        (imported,) = session.scalars(select(StationImport)).all()
        assert imported.imported_by_id == users["technical"].id and imported.rows > 3000
        assert session.get(StoredFile, imported.file_id).filename == STATION_FILE
        pairs = set(session.execute(select(Site.code, StationReading.parameter).distinct()
                                    .join(Site, Site.id == StationReading.site_id)).all())
        assert pairs == {(site, parameter) for site in STATION_SITES for parameter in STATION_PARAMETERS}
        assert {"NH3-N", "TP"} <= set(STATION_PARAMETERS)
        a13 = [a for a in _alarms(session) if a.rule_code == "A13"]
        moments = {json.loads(a.evidence)["reading_at"] for a in a13}
        assert len(moments) == 1  # one sampling time, its routine sample and field duplicate


def test_dispositions_by_the_quality_manager(oversight_db: Demo) -> None:
    quality = oversight_db.users["quality"].id
    with oversight_db.db.reading() as session:
        alarms = {a.id: a for a in _alarms(session)}
        # the digit screen (A05), when the demo's random readings trip it, is dismissed as checked
        screens = {a.id for a in alarms.values() if a.rule_code == "A05"}
        assert all(alarms[i].state == "dismissed" for i in screens)
        states = [a.state for a in alarms.values() if a.id not in screens]
        assert states.count("dismissed") == 1 and states.count("confirmed") == 1
        assert states.count("investigating") == 1 and states.count("open") >= 1
        steps = session.scalars(select(AlarmDisposition).order_by(AlarmDisposition.id)).all()
        assert steps and all(s.actor_id == quality and len(s.reason) > 20 for s in steps)
        final = {s.alarm_id: s for s in steps}
        (confirmed,) = [s for s in final.values() if s.to_state == "confirmed"]
        assert alarms[confirmed.alarm_id].rule_code == "A03" and json.loads(confirmed.actions) == ["referred"]
        assert [s.to_state for s in steps if s.alarm_id == confirmed.alarm_id] == ["investigating", "confirmed"]
        (dismissed,) = [s for s in final.values() if s.to_state == "dismissed" and s.alarm_id not in screens]
        assert alarms[dismissed.alarm_id].rule_code == "A18"
        (investigating,) = [a for a in alarms.values() if a.state == "investigating"]
        assert investigating.rule_code == "A13"
        for step in steps:  # each a little after the alarm was raised, before now
            assert alarms[step.alarm_id].raised_at < step.acted_at < utcnow()


def test_the_interference_record_its_attachment_and_follow_ups(oversight_db: Demo) -> None:
    users = oversight_db.users
    with oversight_db.db.reading() as session:
        (record,) = session.scalars(select(InterferenceRecord)).all()
        assert record.interferer_name == OFFICIAL and record.interferer_position and record.interferer_organisation
        assert (record.channel, record.request_kind, record.lab_response) == ("phone", "alter_data", "refused")
        assert record.filed_by_id == users["analyst"].id and record.occurred_at < record.filed_at < utcnow()
        targets = {(t.target_type, t.label) for t in session.scalars(
            select(InterferenceTarget).where(InterferenceTarget.record_id == record.id))}
        kinds = {kind for kind, _ in targets}
        assert kinds == {"site", "sample"} and ("site", "JC-W07") in targets
        (attachment,) = session.scalars(select(InterferenceAttachment).where(
            InterferenceAttachment.record_id == record.id)).all()
        stored = session.get(StoredFile, attachment.file_id)
        content = oversight_db.store.read(attachment.sha256)
        assert stored.media_type == "image/png" and content.startswith(b"\x89PNG")
        assert hashlib.sha256(content).hexdigest() == attachment.sha256 == stored.sha256
        supplements = session.scalars(select(InterferenceSupplement).where(
            InterferenceSupplement.record_id == record.id).order_by(InterferenceSupplement.id)).all()
        assert [s.kind for s in supplements] == ["acknowledged", "reported"]
        assert all(s.recorded_by_id == users["quality"].id for s in supplements)
        assert supplements[1].reported_to == REPORTED_TO and supplements[1].reported_on is not None
        assert interference.current_state(session, record) == "reported"


def test_the_inspection_draw_verifies_and_has_a_finding_with_a_response(oversight_db: Demo) -> None:
    users = oversight_db.users
    with oversight_db.db.reading() as session:
        (inspection,) = session.scalars(select(Inspection)).all()
        assert inspection.inspector_id == users["inspector"].id and inspection.seed == INSPECTION_SEED
        assert inspection.target == "reports" and inspection.draw_size == 3
        assert (inspection.period_from, inspection.period_to) == inspection_period(
            inspection.period_to + timedelta(days=3))
        assert inspection.period_to < inspection.drawn_at.date()
        picks = picked_ids(inspection)
        assert len(picks) == 3 and all(session.get(Report, i).issued_at is not None for i in picks)
        check = verify_draw(session, inspection)
        assert check.ok and inspection.population_size >= 3
        (finding,) = session.scalars(select(InspectionFinding)).all()
        assert finding.target_type == "report" and finding.target_id in picks and finding.severity == "observation"
        assert finding.recorded_by_id == users["inspector"].id
        (response,) = session.scalars(select(FindingResponse)).all()
        assert response.finding_id == finding.id and response.responded_by_id == users["quality"].id


def test_no_alarm_touches_the_reports_under_way_and_the_reviewed_one_can_be_approved(oversight_db: Demo) -> None:
    with oversight_db.db.reading() as session:
        under_way = [r for r in session.scalars(select(Report).order_by(Report.id))
                     if r.state in (ReportState.SUBMITTED.value, ReportState.CHECKED.value,
                                    ReportState.REVIEWED.value)]
        assert {r.state for r in under_way} == {"submitted", "checked", "reviewed"}
        # a dismissed alarm is listed with its reason and holds nothing (the digit screen, A05, may
        # flag the analyst's quarter on some days of loading: app.oversight.demo dismisses it)
        touched = set(session.scalars(select(AlarmSample.sample_id).join(
            AnomalyAlarm, AnomalyAlarm.id == AlarmSample.alarm_id).where(AnomalyAlarm.state != "dismissed")))
        for report in under_way:
            covered = set(session.scalars(select(ReportSample.sample_id).where(ReportSample.report_id == report.id)))
            assert not covered & touched, report.report_no
        (reviewed,) = [r for r in under_way if r.state == ReportState.REVIEWED.value]
        checklist = compute_checklist(session, reviewed, load_content(session, reviewed))
        assert checklist.failures() == [], [(i.code, i.details) for i in checklist.failures()]
        assert any(i.code == "alarms" and i.status == "ok" for i in checklist.items)


def test_every_act_is_in_the_past_and_the_audit_chain_holds(oversight_db: Demo) -> None:
    now = utcnow()
    with oversight_db.db.reading() as session:
        moments = list(session.scalars(select(AnomalyAlarm.raised_at)))
        moments += list(session.scalars(select(AlarmDisposition.acted_at)))
        moments += list(session.scalars(select(StationReading.measured_at)))
        moments += list(session.scalars(select(AnalysisBatch.submitted_at).where(AnalysisBatch.submitted_at.is_not(
            None))))
        assert moments and all(m < now for m in moments)
        result = verify_chain(session, None)
    assert result.ok, result.reason


def test_loading_again_adds_nothing(oversight_db: Demo) -> None:
    before = row_counts(oversight_db.db)
    assert before["anomaly_alarm"] >= 5 and before["interference_record"] == 1
    oversight_db.load_again()
    assert row_counts(oversight_db.db) == before
