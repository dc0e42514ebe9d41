"""Impact assessment: a failure opens one assessment whose window starts at the last passing
evidence; the usages in it come from the registered sources; the quality manager's disposition is
signed over the list; the CSV is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.core.signatures import ElectronicSignature
from app.instruments import impact
from app.instruments.models import ImpactAssessment, Instrument, IntermediateCheck
from app.instruments.records import CheckFacts, correct_check
from app.instruments.usage import InstrumentUsage, register_usage_source, unregister_usage_source
from app.people.models import User
from tests.conftest import PASSWORD
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401
from tests.instruments.conftest import (
    audit_actions,
    audit_head_seq,
    calibrate,
    chain_ok,
    check,
    local_moment,
    local_today,
    make_instrument,
    reload,
    row_counts,
    start_of,
)


def days(n: int) -> timedelta:
    return timedelta(days=n)


def assessments(db: Database, instrument: Instrument) -> list[ImpactAssessment]:
    with db.reading() as session:
        rows = list(session.scalars(select(ImpactAssessment).where(ImpactAssessment.instrument_id == instrument.id)
                                    .order_by(ImpactAssessment.id)))
        session.expunge_all()
    return rows


def only_assessment(db: Database, instrument: Instrument) -> ImpactAssessment:
    found = assessments(db, instrument)
    assert len(found) == 1, found
    return found[0]


def view(db: Database, assessment: ImpactAssessment) -> impact.ImpactView:
    with db.reading() as session:
        shown = impact.view_assessment(session, session.get(ImpactAssessment, assessment.id))
        session.expunge_all()  # keep what was loaded readable after the session ends
    return shown


def decide(db: Database, actor: User, assessment: ImpactAssessment, *, password: str = PASSWORD,
           disposition: str = "retest", justification: str = "复测留样，结果在允许差内") -> ImpactAssessment:
    with db.transaction() as session:
        return impact.decide_impact(session, actor, session.get(ImpactAssessment, assessment.id), password,
                                    disposition=disposition, justification=justification)


def refused(db: Database, code: str, act) -> DomainError:
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, caught.value
    return caught.value


@pytest.fixture
def history(db, technical, store):
    """Verified 200 days ago (accepted), a passing check 30 days ago, a failed check 5 days ago."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    passed = check(db, technical, instrument, performed_at=local_moment(db, today - days(30), 10))
    failed = check(db, technical, instrument, performed_at=local_moment(db, today - days(5), 16), result="fail")
    return instrument, passed, failed


# ---------------------------------------------------------------- opening


def test_a_failed_check_opens_one_assessment(db, technical, history):
    instrument, passed, failed = history
    found = only_assessment(db, instrument)
    assert (found.trigger_type, found.trigger_id, found.status) == ("check", failed.id, "open")
    assert found.since == passed.effective_from
    assert found.until == failed.effective_from
    assert found.disposition is None and found.signature_id is None
    with db.reading() as session:
        opened = session.scalars(select(AuditEvent).where(AuditEvent.action == "instrument.impact_opened")).one()
        assert opened.entity_id == str(found.id)
        assert opened.after_data["asset_no"] == instrument.asset_no
        assert opened.after_data["since"] is not None


def test_a_passing_check_or_maintenance_opens_none(db, technical, calibrated):
    check(db, technical, calibrated, performed_at=utcnow() - timedelta(hours=1))
    assert assessments(db, calibrated) == []


def test_a_failed_certificate_opens_one_assessment(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(300), valid_until=today + days(65))
    failed = calibrate(db, technical, store, instrument, performed_on=today - days(2), valid_until=None,
                       result="fail")
    found = only_assessment(db, instrument)
    assert (found.trigger_type, found.trigger_id) == ("calibration", failed.id)
    assert found.since == start_of(db, today - days(300))
    assert found.until == start_of(db, today - days(2))
    assert row_counts(db, "instrument_impact") == {"instrument_impact": 1}


def test_each_failure_opens_its_own_assessment(db, technical, history):
    instrument, _, failed = history
    facts = CheckFacts(performed_at=failed.effective_from, check_standard="GBW(E)080218 氨氮标准溶液",
                       criterion="0.500 ± 0.010 mg/L", measured_value="0.540", result="fail", unit="mg/L")
    with db.transaction() as session:
        corrected = correct_check(session, technical, session.get(IntermediateCheck, failed.id), facts, PASSWORD,
                                  reason="读数抄错")
    assert [(a.trigger_type, a.trigger_id) for a in assessments(db, instrument)] == [
        ("check", failed.id), ("check", corrected.id)]


def test_the_window_starts_at_the_later_accepted_certificate(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(400), valid_until=today - days(50))
    check(db, technical, instrument, performed_at=local_moment(db, today - days(60), 10))
    certificate = calibrate(db, technical, store, instrument, performed_on=today - days(20),
                            valid_until=today + days(345), certificate_no="JD-NEW")
    # evidence that does not count: a certificate not accepted, one rejected, a failing check's own time
    calibrate(db, technical, store, instrument, performed_on=today - days(10), valid_until=today + days(355),
              certificate_no="JD-PENDING", accept=None)
    calibrate(db, technical, store, instrument, performed_on=today - days(8), valid_until=today + days(357),
              certificate_no="JD-REJECTED", accept=False)
    check(db, technical, instrument, performed_at=local_moment(db, today - days(3), 10), result="fail")
    found = only_assessment(db, instrument)
    assert found.since == certificate.effective_from == start_of(db, today - days(20))


def test_the_window_ignores_evidence_after_the_failure(db, technical, store):
    """A failure entered late: passing records dated after it are not 'before' it."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(100), valid_until=today + days(265))
    check(db, technical, instrument, performed_at=local_moment(db, today - days(2), 10))
    failed = check(db, technical, instrument, performed_at=local_moment(db, today - days(6), 10), result="fail")
    found = only_assessment(db, instrument)
    assert found.since == start_of(db, today - days(100))
    assert found.until == failed.effective_from


def test_no_passing_evidence_opens_from_the_beginning(db, technical):
    instrument = make_instrument(db, technical)
    check(db, technical, instrument, performed_at=utcnow() - timedelta(hours=5), result="fail")
    assert only_assessment(db, instrument).since is None


def test_usages_in_the_window_are_listed(db, technical, history, usage_source):
    instrument, passed, failed = history
    other = make_instrument(db, technical, "JC-UV-002")
    today = local_today(db)
    usage_source.add(instrument, passed.effective_from - timedelta(minutes=1), sample_no="BEFORE")
    at_start = usage_source.add(instrument, passed.effective_from, sample_no="AT-START")
    inside = usage_source.add(instrument, local_moment(db, today - days(10), 9), parameter="TP", sample_no="INSIDE")
    after = usage_source.add(instrument, failed.effective_from + timedelta(hours=3), sample_no="AFTER-FAILURE")
    usage_source.add(other, local_moment(db, today - days(10), 9), sample_no="OTHER-INSTRUMENT")
    found = view(db, only_assessment(db, instrument))
    assert found.usages == [at_start, inside, after]  # everything since it was last shown fit, in time order
    assert found.instrument.asset_no == instrument.asset_no
    assert found.signature is None
    assert usage_source.calls == 1  # one call per source


def test_no_source_registered_lists_nothing(db, history):
    instrument, _, _ = history
    assert view(db, only_assessment(db, instrument)).usages == []


# ---------------------------------------------------------------- the disposition


def test_the_quality_manager_decides_with_a_signature(db, users, history, usage_source):
    instrument, _, failed = history
    qm = users["quality_manager"]
    usage_source.add(instrument, failed.effective_from - days(2))
    assessment = only_assessment(db, instrument)
    seq = audit_head_seq(db)
    decide(db, qm, assessment, disposition="notify_clients", justification="已通知委托方，报告更正")
    decided = reload(db, ImpactAssessment, assessment.id)
    assert (decided.status, decided.disposition) == ("closed", "notify_clients")
    assert decided.justification == "已通知委托方，报告更正"
    assert decided.decided_by_id == qm.id and decided.decided_at is not None
    assert audit_actions(db, seq) == ["signature.reviewed", "instrument.impact_decided"]
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "instrument.impact_decided")).one()
        signature = session.get(ElectronicSignature, decided.signature_id)
        assert event.before_data == {"status": "open"}
        assert event.after_data["usages"] == 1 and event.after_data["disposition"] == "notify_clients"
        assert (signature.signer_id, signature.meaning) == (qm.id, "reviewed")
        assert (signature.entity_type, signature.entity_id) == ("instrument_impact", str(assessment.id))
    shown = view(db, assessment)
    assert shown.signature is not None and shown.signature.intact
    chain_ok(db)


def test_a_decision_cannot_be_made_twice(db, users, history):
    instrument, _, _ = history
    assessment = only_assessment(db, instrument)
    decide(db, users["quality_manager"], assessment)
    before = row_counts(db, "e_signature", "audit_event")
    refused(db, "impact_already_decided", lambda s: impact.decide_impact(
        s, users["quality_manager_2"], s.get(ImpactAssessment, assessment.id), PASSWORD, disposition="no_effect",
        justification="另一种意见"))
    assert row_counts(db, "e_signature", "audit_event") == before
    assert reload(db, ImpactAssessment, assessment.id).disposition == "retest"


@pytest.mark.parametrize("disposition,justification,code", [
    ("retest", "", "justification_required"),
    ("retest", "  \n ", "justification_required"),
    ("ignore", "没有影响", "invalid_input"),
    ("", "没有影响", "invalid_input"),
])
def test_a_decision_needs_a_known_disposition_and_a_justification(db, users, history, disposition, justification,
                                                                   code):
    instrument, _, _ = history
    assessment = only_assessment(db, instrument)
    before = row_counts(db, "e_signature", "audit_event")
    refused(db, code, lambda s: impact.decide_impact(
        s, users["quality_manager"], s.get(ImpactAssessment, assessment.id), PASSWORD, disposition=disposition,
        justification=justification))
    assert row_counts(db, "e_signature", "audit_event") == before
    assert reload(db, ImpactAssessment, assessment.id).status == "open"


@pytest.mark.parametrize("role,code", [("technical_manager", "permission_denied"), ("analyst", "permission_denied"),
                                       ("inspector", "inspector_read_only")])
def test_only_the_quality_manager_decides(db, users, history, role, code):
    instrument, _, _ = history
    assessment = only_assessment(db, instrument)
    refused(db, code, lambda s: impact.decide_impact(
        s, users[role], s.get(ImpactAssessment, assessment.id), PASSWORD, disposition="no_effect",
        justification="无影响"))
    assert reload(db, ImpactAssessment, assessment.id).status == "open"


def test_a_wrong_password_decides_nothing(db, users, history):
    instrument, _, _ = history
    assessment = only_assessment(db, instrument)
    seq = audit_head_seq(db)
    refused(db, "wrong_signing_password", lambda s: impact.decide_impact(
        s, users["quality_manager"], s.get(ImpactAssessment, assessment.id), "guess", disposition="no_effect",
        justification="无影响"))
    assert audit_actions(db, seq) == ["signature.failed"]
    fresh = reload(db, ImpactAssessment, assessment.id)
    assert (fresh.status, fresh.disposition, fresh.signature_id) == ("open", None, None)


def test_a_usage_appearing_in_the_window_after_the_decision_breaks_the_signature(db, users, history, usage_source):
    instrument, passed, failed = history
    usage_source.add(instrument, failed.effective_from - days(1))
    assessment = only_assessment(db, instrument)
    decide(db, users["quality_manager"], assessment)
    decided = reload(db, ImpactAssessment, assessment.id)
    # after the decision: outside the window, the decision still holds
    usage_source.add(instrument, decided.decided_at + timedelta(seconds=1))
    assert view(db, assessment).signature.intact
    assert len(view(db, assessment).usages) == 1
    # a measurement inside the window entered late (a field record synchronised afterwards)
    usage_source.add(instrument, passed.effective_from + days(3), sample_no="LATE-ENTRY")
    shown = view(db, assessment)
    assert len(shown.usages) == 2
    assert shown.signature.broken


# ---------------------------------------------------------------- CSV


class ScriptedSource:
    """A source returning given usages for one instrument (descriptions are free text here)."""

    name = "scripted"

    def __init__(self, instrument_id: int, usages: list[InstrumentUsage]) -> None:
        self.instrument_id, self.listed = instrument_id, usages

    def usages(self, session, instrument_id, since, until):  # noqa: ANN001
        return [u for u in self.listed if instrument_id == self.instrument_id
                and (since is None or u.measured_at >= since) and u.measured_at <= until]


@pytest.fixture
def scripted():
    registered: list[str] = []

    def register(instrument: Instrument, usages: list[InstrumentUsage]) -> None:
        source = ScriptedSource(instrument.id, usages)
        register_usage_source(source)
        registered.append(source.name)

    yield register
    for name in registered:
        unregister_usage_source(name)


def csv_rows(db: Database, assessment: ImpactAssessment) -> tuple[str, list[list[str]]]:
    with db.reading() as session:
        text = impact.impact_csv(session, impact.view_assessment(session, session.get(ImpactAssessment, assessment.id)))
    assert text.startswith("\ufeff")
    return text, list(csv.reader(io.StringIO(text[1:])))


def test_the_csv_lists_each_usage_in_lab_time(db, history, usage_source):
    instrument, _, failed = history
    today = local_today(db)
    first = usage_source.add(instrument, local_moment(db, today - days(10), 23, 30), sample_no="JC01-261101-001")
    second = usage_source.add(instrument, local_moment(db, today - days(4), 8, 5, 9), parameter="TP",
                              sample_no="JC01-261107-014")
    assessment = only_assessment(db, instrument)
    text, rows = csv_rows(db, assessment)
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    assert rows[0] == list(impact.CSV_HEADER)
    assert len(rows) == 3
    local = (today - days(10)).isoformat() + " 23:30:00"  # 15:30 UTC: the lab's day, not UTC's
    assert rows[1] == [instrument.asset_no, str(assessment.id), "fake_analysis", first.record_id, local, "NH3-N",
                       "JC01-261101-001", first.description]
    assert rows[2][4] == (today - days(4)).isoformat() + " 08:05:09"
    assert rows[2][5:7] == ["TP", second.sample_no]


def test_the_csv_of_an_assessment_without_usages_has_the_header_only(db, history):
    instrument, _, _ = history
    _, rows = csv_rows(db, only_assessment(db, instrument))
    assert rows == [list(impact.CSV_HEADER)]


@pytest.mark.parametrize("payload", ["=HYPERLINK(\"http://evil.example\",\"点击\")", "+1+cmd|' /C calc'!A0",
                                     "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"])
def test_the_csv_neutralises_formulas(db, history, scripted, payload):
    instrument, _, failed = history
    measured_at: datetime = failed.effective_from - timedelta(hours=1)
    scripted(instrument, [InstrumentUsage("scripted", "7", measured_at, payload, payload, payload)])
    _, rows = csv_rows(db, only_assessment(db, instrument))
    assert len(rows) == 2
    for cell in rows[1]:
        assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), rows[1]
    assert rows[1][5:8] == ["'" + payload] * 3  # kept, visibly, as text
