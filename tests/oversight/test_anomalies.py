"""The anomaly engine (issue 10 item 2): rule settings in versions (out-of-range values refused and
audited), scans turning findings into alarms once (a rescan raises nothing new), disabled rules
not running, the submission hook, and the scheduled scan. The rules are fakes registered here, so
the engine is tested whatever the real rules (app/oversight/rules) find."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal as D
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select

import app.oversight.rules  # noqa: F401  (the real rules register first; the fixture hides them)
from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.core.errors import DomainError, RecordedRefusal
from app.core.registry import batch_signed
from app.oversight import anomalies
from app.oversight.models import AlarmSample, AnomalyAlarm, AnomalyRuleSetting, AnomalyScan
from app.oversight.rules import base
from app.oversight.rules.base import AnomalyRule, Finding, ScanWindow, Threshold


class FakeRule(AnomalyRule):
    """Yields what the test put in `findings`; records each call's window and limits."""

    code: ClassVar[str] = "Z01"
    title_zh = "测试规则"
    title_en = "Test rule"
    why_zh = "测试用"
    why_en = "for tests"
    thresholds = (Threshold("n", D("3"), D("1"), D("10"), "次数", "count", integer=True),
                  Threshold("ratio", D("0.5"), D("0"), D("1"), "比例", "ratio"))

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.calls: list[tuple[ScanWindow, dict[str, D]]] = []

    def find(self, session, window, limits) -> Iterator[Finding]:
        self.calls.append((window, dict(limits)))
        yield from self.findings


class SoftRule(FakeRule):
    """Does not block issue and runs only in history scans."""

    code = "Z02"
    title_en = "Soft test rule"
    blocks_issue = False
    on_submission = False


@pytest.fixture
def fake_rules(monkeypatch) -> dict[str, FakeRule]:
    """Only the fake rules are registered during the test (the real ones come back after)."""
    monkeypatch.setattr(base, "_rules", {})
    base.register(FakeRule)
    base.register(SoftRule)
    return dict(base._rules)  # type: ignore[arg-type]


def finding(key: str, samples: list[Any] = (), **kw: Any) -> Finding:
    values = {"summary_zh": f"发现 {key}", "summary_en": f"found {key}",
              "evidence": {"value": "0.512", "threshold": {"n": "3"}, "key": key}}
    values.update(kw)
    return Finding(key=key, sample_ids=tuple(s.id for s in samples), **values)


def run_scan(db: Database, actor: Any = None, *, trigger: str = "cli", since=None, **kw: Any) -> anomalies.ScanOutcome:
    with db.transaction() as session:
        return anomalies.scan(session, actor, ScanWindow(until=utcnow(), since=since), trigger=trigger, **kw)


def alarms(db: Database) -> list[AnomalyAlarm]:
    with db.reading() as session:
        rows = list(session.scalars(select(AnomalyAlarm).order_by(AnomalyAlarm.id)))
        for row in rows:
            session.expunge(row)
        return rows


def events(db: Database, action: str) -> list[AuditEvent]:
    with db.reading() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))
        for row in rows:
            session.expunge(row)
        return rows


def count(db: Database, model: Any) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def raise_alarm(db: Database, rule: FakeRule, key: str, samples: list[Any] = (), **kw: Any) -> AnomalyAlarm:
    """One alarm of `rule` over `samples`, raised by a scan."""
    rule.findings = [finding(key, samples, **kw)]
    run_scan(db)
    rule.findings = []
    return [a for a in alarms(db) if a.fingerprint == anomalies.fingerprint(rule.code, key)][0]


# ---------------------------------------------------------------- settings


def test_settings_start_at_the_code_defaults_and_a_new_version_wins(db, users, fake_rules):
    qm = users["quality_manager"]
    with db.reading() as session:
        first = anomalies.rule_settings(session)
    assert set(first) == {"Z01", "Z02"}
    assert first["Z01"].version == 0 and first["Z01"].enabled and first["Z01"].limits == {"n": D(3), "ratio": D("0.5")}
    with db.transaction() as session:
        anomalies.set_rule_settings(session, qm, "Z01", enabled=True, thresholds={"n": "5"}, reason="十对中五对才报警")
    with db.transaction() as session:
        anomalies.set_rule_settings(session, qm, "z01", enabled=False, thresholds={"ratio": "0.25"},
                                    reason="暂停，待复核")
    with db.reading() as session:
        now = anomalies.rule_settings(session)
    assert now["Z01"].version == 2 and not now["Z01"].enabled
    assert now["Z01"].limits == {"n": D(5), "ratio": D("0.25")}  # the earlier change is kept
    assert now["Z02"].version == 0
    set_events = events(db, "oversight.rule_settings_set")
    assert len(set_events) == 2
    after = json.loads(set_events[1].after)
    assert after == {"version": 2, "enabled": False, "thresholds": {"n": "5", "ratio": "0.25"},
                     "reason": "暂停，待复核"}
    assert json.loads(set_events[1].before)["version"] == 1


def test_a_form_older_than_the_setting_in_force_is_refused(db, users, fake_rules):
    """Two quality managers open the page at version 0; the second to save would silently undo
    the first one's change: refused, audited, and nothing replaced."""
    with db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "Z01", enabled=True, thresholds={"n": "5"},
                                    reason="五对才报警", based_on=0)
    with pytest.raises(RecordedRefusal) as caught, db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager_2"], "Z01", enabled=False, thresholds={},
                                    reason="暂停", based_on=0)
    assert caught.value.code == "rule_setting_changed" and caught.value.http_status == 409
    assert "now version 1" in caught.value.message("en") and "第 1 版" in caught.value.message("zh")
    with db.reading() as session:
        now = anomalies.rule_settings(session)["Z01"]
    assert (now.version, now.enabled, now.limits["n"]) == (1, True, D(5))
    refused = events(db, "oversight.rule_settings_refused")
    assert [json.loads(e.after)["refusal"] for e in refused] == ["rule_setting_changed"]
    assert refused[0].actor_id == users["quality_manager_2"].id


def test_simultaneous_saves_never_collide_into_an_error(db, users, fake_rules):
    """Several saves at the same moment: each is a version of its own or a clear refusal, never a
    database error (PostgreSQL lets two transactions read the same last version)."""
    import threading

    start = threading.Barrier(4)
    outcomes: list[str] = []

    def save(n: int) -> None:
        try:
            start.wait()
            with db.transaction() as session:
                anomalies.set_rule_settings(session, users["quality_manager"], "Z01", enabled=True,
                                            thresholds={"n": str(n + 2)}, reason=f"第 {n} 次")
            outcomes.append("saved")
        except DomainError as error:
            outcomes.append(error.code)
        except BaseException as error:  # reported in the test's thread
            outcomes.append(repr(error))

    pool = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert set(outcomes) <= {"saved", "rule_setting_changed"} and "saved" in outcomes, outcomes
    with db.reading() as session:
        versions = sorted(session.scalars(select(AnomalyRuleSetting.version)))
    assert versions == list(range(1, outcomes.count("saved") + 1))
    assert len(events(db, "oversight.rule_settings_set")) == len(versions)


@pytest.mark.parametrize(("thresholds", "reason", "code"), [
    ({"n": "11"}, "太多", "threshold_out_of_range"),
    ({"n": "0"}, "太少", "threshold_out_of_range"),
    ({"ratio": "-0.1"}, "负数", "threshold_out_of_range"),
    ({"n": "3.5"}, "小数", "threshold_not_integer"),
    ({"n": "三"}, "汉字", "threshold_not_a_number"),
    ({"n": "NaN"}, "非数", "threshold_not_a_number"),
    ({"n": "Infinity"}, "无穷", "threshold_not_a_number"),
    ({"nope": "1"}, "未知", "unknown_threshold"),
    ({"n": "4"}, "   ", "rule_setting_needs_reason"),
])
def test_bad_settings_are_refused_and_the_refusal_audited(db, users, fake_rules, thresholds, reason, code):
    qm = users["quality_manager"]
    with pytest.raises(RecordedRefusal) as caught, db.transaction() as session:
        anomalies.set_rule_settings(session, qm, "Z01", enabled=True, thresholds=thresholds, reason=reason)
    assert caught.value.code == code and caught.value.http_status == 422
    assert count(db, AnomalyRuleSetting) == 0
    refusals = events(db, "oversight.rule_settings_refused")
    assert len(refusals) == 1 and refusals[0].actor_id == qm.id
    recorded = json.loads(refusals[0].after)
    assert recorded["refusal"] == code and recorded["rule"] == "Z01"
    assert recorded["thresholds"] == {k: v for k, v in thresholds.items()}


@pytest.mark.parametrize(("role", "code"), [("analyst", "permission_denied"), ("inspector", "inspector_read_only")])
def test_only_the_quality_manager_sets_rules(db, users, fake_rules, role, code):
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        anomalies.set_rule_settings(session, users[role], "Z01", enabled=True, thresholds={"n": "4"}, reason="试")
    assert caught.value.code == code
    assert count(db, AnomalyRuleSetting) == 0


def test_an_unknown_rule_is_refused(db, users, fake_rules):
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "A99", enabled=True, thresholds={}, reason="x")
    assert caught.value.code == "unknown_rule" and caught.value.http_status == 422


# ---------------------------------------------------------------- scans


def test_a_scan_raises_one_alarm_per_finding_with_evidence_samples_and_audit(db, users, lab, fake_rules):
    site = lab.site("WS01")
    s1, s2 = lab.samples(2, site=site)
    analyst = users["analyst"]
    fake_rules["Z01"].findings = [
        finding("a", [s1, s2], parameter="NH3-N", site_id=site.id, responsible_user_id=analyst.id,
                occurred_at=lab.t(-24)),
        finding("b", [s2]),
        finding("b", [s2]),  # the same finding twice in one scan is one alarm
    ]
    outcome = run_scan(db, trigger="cli")
    assert outcome.raised == {"Z01": 2, "Z02": 0} and outcome.seen == {"Z01": 1, "Z02": 0}
    rows = alarms(db)
    assert [a.alarm_no[:2] for a in rows] == ["YC", "YC"] and len({a.alarm_no for a in rows}) == 2
    first = rows[0]
    assert (first.rule_code, first.rule_version, first.state) == ("Z01", 0, "open")
    assert first.fingerprint == anomalies.fingerprint("Z01", "a")
    assert json.loads(first.evidence) == {"value": "0.512", "threshold": {"n": "3"}, "key": "a"}
    assert first.evidence == '{"key":"a","threshold":{"n":"3"},"value":"0.512"}'  # canonical
    assert (first.parameter, first.site_id, first.responsible_user_id) == ("NH3-N", site.id, analyst.id)
    assert first.scan_id == outcome.scan_id
    with db.reading() as session:
        links = {(a, s) for a, s in session.execute(select(AlarmSample.alarm_id, AlarmSample.sample_id))}
        record = session.get(AnomalyScan, outcome.scan_id)
        session.expunge(record)
    assert links == {(first.id, s1.id), (first.id, s2.id), (rows[1].id, s2.id)}
    assert record.trigger == "cli" and record.finished_at is not None and json.loads(record.counts) == outcome.raised
    raised = events(db, "oversight.alarm_raised")
    assert [e.entity_id for e in raised] == [str(first.id), str(rows[1].id)]
    after = json.loads(raised[0].after)
    assert after["rule"] == "Z01" and after["version"] == 0 and after["evidence"]["value"] == "0.512"
    assert after["alarm_no"] == first.alarm_no and after["sample_ids"] == sorted([s1.id, s2.id])
    finished = events(db, "oversight.scan_finished")
    assert len(finished) == 1 and json.loads(finished[0].after)["raised"] == {"Z01": 2, "Z02": 0}


def test_a_rescan_raises_nothing_new(db, users, lab, fake_rules):
    (s1,) = lab.samples(1)
    fake_rules["Z01"].findings = [finding("a", [s1]), finding("b", [s1])]
    run_scan(db)
    fake_rules["Z01"].findings.append(finding("c", [s1]))
    again = run_scan(db)
    assert again.raised["Z01"] == 1 and again.seen["Z01"] == 2
    third = run_scan(db)
    assert third.raised == {"Z01": 0, "Z02": 0} and third.seen["Z01"] == 3
    assert count(db, AnomalyAlarm) == 3 and count(db, AnomalyScan) == 3
    assert len(events(db, "oversight.alarm_raised")) == 3


def test_a_disabled_rule_does_not_run(db, users, fake_rules):
    fake_rules["Z01"].findings = [finding("a")]
    with db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "Z01", enabled=False, thresholds={},
                                    reason="误报太多，暂停")
    outcome = run_scan(db)
    assert fake_rules["Z01"].calls == [] and "Z01" not in outcome.raised
    assert len(fake_rules["Z02"].calls) == 1
    named = run_scan(db, rules=["Z01"])  # naming it does not switch it on
    assert named.raised == {} and fake_rules["Z01"].calls == []
    assert count(db, AnomalyAlarm) == 0


def test_named_rules_run_alone_with_the_limits_in_force(db, users, fake_rules):
    with db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "Z02", enabled=True,
                                    thresholds={"ratio": "0.75"}, reason="收紧")
    since = utcnow() - timedelta(days=3)
    seen: list[tuple[str, int]] = []
    outcome = run_scan(db, rules=["Z02"], since=since, progress=lambda code, n: seen.append((code, n)))
    assert list(outcome.raised) == ["Z02"] and fake_rules["Z01"].calls == []
    window, limits = fake_rules["Z02"].calls[0]
    assert window.since == since and limits == {"n": D(3), "ratio": D("0.75")}
    assert seen == [("Z02", 0)]
    with pytest.raises(DomainError) as caught:
        run_scan(db, rules=["Q42"])
    assert caught.value.code == "unknown_rule"
    with pytest.raises(DomainError) as caught:
        run_scan(db, trigger="cron")
    assert caught.value.code == "unknown_scan_trigger"


def test_many_findings_are_stored_in_chunks(db, users, lab, fake_rules, monkeypatch):
    monkeypatch.setattr(anomalies, "CHUNK", 7)
    (s1,) = lab.samples(1)
    fake_rules["Z01"].findings = [finding(f"k{i}", [s1]) for i in range(30)]
    progress: list[int] = []
    outcome = run_scan(db, progress=lambda code, n: progress.append(n) if code == "Z01" else None)
    assert outcome.raised["Z01"] == 30 and count(db, AnomalyAlarm) == 30
    assert progress == [0, 7, 14, 21, 28, 30]
    numbers = sorted(a.alarm_no for a in alarms(db))
    assert len(set(numbers)) == 30
    fake_rules["Z01"].findings.append(finding("k30", [s1]))
    assert run_scan(db).raised["Z01"] == 1


def test_a_signed_batch_is_scanned_in_the_submitters_transaction(db, users, lab, fake_rules):
    import app.oversight  # noqa: F401  (registers the hook)

    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1,) = lab.samples(1)
    batch = lab.batch(m, users["analyst"])
    fake_rules["Z01"].findings = [finding("batch", [s1], batch_id=batch.id)]
    fake_rules["Z02"].findings = [finding("soft", [s1])]
    with db.transaction() as session:
        batch_signed(session, users["analyst"], batch.id)
    window, _ = fake_rules["Z01"].calls[0]
    assert window.batch_ids == (batch.id,) and window.since is None
    assert fake_rules["Z02"].calls == []  # history-heavy rules wait for the scheduled scan
    with db.reading() as session:
        record = session.scalars(select(AnomalyScan)).one()
        session.expunge(record)
    assert (record.trigger, record.batch_id, record.started_by_id) == ("submission", batch.id, users["analyst"].id)
    assert [a.batch_id for a in alarms(db)] == [batch.id]
    # a refused submission takes its alarms with it
    fake_rules["Z01"].findings = [finding("rolled back", [s1])]
    with pytest.raises(RuntimeError), db.transaction() as session:
        batch_signed(session, users["analyst"], batch.id)
        raise RuntimeError("the signature failed")
    assert count(db, AnomalyAlarm) == 1


class BrokenRule(FakeRule):
    """Stores its first findings, then breaks (a bug in detection code)."""

    code = "Z00"  # runs first: what the signing buffered is still unwritten when it breaks
    title_en = "Broken test rule"

    def find(self, session, window, limits) -> Iterator[Finding]:
        self.calls.append((window, dict(limits)))
        yield from self.findings
        raise ZeroDivisionError("a bug in the rule")


def test_a_rule_that_breaks_does_not_stop_the_analyst_signing(db, users, lab, fake_rules, monkeypatch):
    """The broken rule's part is undone (its alarms and their audit events), the other rules'
    alarms stay, the failure is kept with the scan, and the audit chain stays whole. A history
    scan (CLI, schedule) still fails loudly."""
    import app.oversight  # noqa: F401  (registers the hook)
    from app.core import audit

    base.register(BrokenRule)
    monkeypatch.setattr(anomalies, "CHUNK", 2)  # the broken rule stores a chunk before it breaks
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1,) = lab.samples(1)
    batch = lab.batch(m, users["analyst"])
    fake_rules["Z01"].findings = [finding("kept", [s1], batch_id=batch.id)]
    broken = base._rules["Z00"]
    broken.findings = [finding(f"lost {n}", [s1], batch_id=batch.id) for n in range(3)]
    with db.transaction() as session:
        audit.append(session, users["analyst"], "test.batch_signed", "analysis_batch", batch.id)  # the signing's own
        batch_signed(session, users["analyst"], batch.id)
    assert [a.fingerprint for a in alarms(db)] == [anomalies.fingerprint("Z01", "kept")]
    assert len(events(db, "test.batch_signed")) == 1
    with db.reading() as session:
        record = session.scalars(select(AnomalyScan)).one()
        assert json.loads(record.counts) == {"Z01": 1, "failed": ["Z00"]}
        assert audit.verify_chain(session, None).ok
    finished = events(db, "oversight.scan_finished")
    assert json.loads(finished[-1].after)["failed"] == {"Z00": "ZeroDivisionError: a bug in the rule"}
    assert len(events(db, "oversight.alarm_raised")) == 1
    with pytest.raises(ZeroDivisionError):
        run_scan(db, rules=["Z00"])


def test_the_scheduled_scan_runs_once_a_day_since_the_last(db, settings, fake_rules):
    from app.core.jobs import JOBS, anomaly_scan_if_due

    assert anomaly_scan_if_due in JOBS
    fake_rules["Z01"].findings = [finding("a")]
    first = anomaly_scan_if_due(db, settings)
    assert first is not None and first.raised["Z01"] == 1
    window, _ = fake_rules["Z01"].calls[0]
    assert timedelta(days=29, hours=23) < window.until - window.since <= timedelta(days=30, seconds=5)
    assert anomaly_scan_if_due(db, settings) is None  # not due again within 24 h
    with db.transaction() as session:
        record = session.scalars(select(AnomalyScan)).one()
        assert record.trigger == "schedule"
        record.started_at = record.started_at - timedelta(days=1, minutes=1)
        started = record.started_at
    again = anomaly_scan_if_due(db, settings)
    assert again is not None and again.seen["Z01"] == 1 and again.raised["Z01"] == 0
    assert fake_rules["Z01"].calls[-1][0].since == started
