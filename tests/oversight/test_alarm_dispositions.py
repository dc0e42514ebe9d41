"""An alarm's disposition (DOMAIN.md §3 "Anomaly alarm"): open → investigating → dismissed with a
reason or confirmed with the actions taken, each step a row and an audit event; refused without a
reason (audited), once closed, with an unknown action, by an inspector, and by the quality
manager on their own data; two quality managers at once move it once."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.core.db import Database
from app.core.errors import DomainError, RecordedRefusal
from app.oversight import anomalies
from app.oversight.models import AlarmDisposition, AnomalyAlarm
from tests.conftest import make_user, race
from tests.oversight.test_anomalies import count, events, fake_rules, raise_alarm  # noqa: F401

__all__ = ["fake_rules"]


def dispose(db: Database, actor, alarm: AnomalyAlarm, to: str, reason: str, actions=()) -> AnomalyAlarm:
    with db.transaction() as session:
        row = anomalies.dispose_alarm(session, actor, session.get(AnomalyAlarm, alarm.id), to, reason, actions)
        session.flush()
        session.expunge(row)
        return row


def state_of(db: Database, alarm: AnomalyAlarm) -> str:
    with db.reading() as session:
        return session.get(AnomalyAlarm, alarm.id).state


def steps(db: Database, alarm: AnomalyAlarm) -> list[tuple[str, str, str, list[str]]]:
    with db.reading() as session:
        return [(d.from_state, d.to_state, d.reason, json.loads(d.actions)) for d in session.scalars(
            select(AlarmDisposition).where(AlarmDisposition.alarm_id == alarm.id).order_by(AlarmDisposition.id))]


def refused(db: Database, do, code: str) -> DomainError:
    before = (count(db, AlarmDisposition), len(events(db, "oversight.alarm_investigating")))
    with pytest.raises(DomainError) as caught:
        do()
    assert caught.value.code == code, caught.value.message("en")
    assert (count(db, AlarmDisposition), len(events(db, "oversight.alarm_investigating"))) == before
    return caught.value


@pytest.fixture
def alarm(db, users, lab, fake_rules):  # noqa: F811
    (s1,) = lab.samples(1)
    return raise_alarm(db, fake_rules["Z01"], "a", [s1], responsible_user_id=users["analyst"].id)


def test_investigate_then_dismiss_with_reasons(db, users, alarm):
    qm = users["quality_manager"]
    assert dispose(db, qm, alarm, "investigating", "  核对原始记录  ").state == "investigating"
    assert dispose(db, qm, alarm, "dismissed", "原始记录一致，平行样确为同一读数").state == "dismissed"
    assert steps(db, alarm) == [("open", "investigating", "核对原始记录", []),
                                ("investigating", "dismissed", "原始记录一致，平行样确为同一读数", [])]
    investigating = events(db, "oversight.alarm_investigating")
    dismissed = events(db, "oversight.alarm_dismissed")
    assert len(investigating) == len(dismissed) == 1
    assert json.loads(dismissed[0].before) == {"state": "investigating"}
    after = json.loads(dismissed[0].after)
    assert after["state"] == "dismissed" and after["reason"] == "原始记录一致，平行样确为同一读数"
    assert dismissed[0].actor_id == qm.id and dismissed[0].entity_id == str(alarm.id)


def test_confirm_needs_known_actions(db, users, alarm):
    qm = users["quality_manager"]
    refused(db, lambda: dispose(db, qm, alarm, "confirmed", "伪造", []), "confirmation_needs_action")
    refused(db, lambda: dispose(db, qm, alarm, "confirmed", "伪造", ["deleted"]), "unknown_action")
    confirmed = dispose(db, qm, alarm, "confirmed", "分析员承认抄录", ["reanalysed", "referred", "reanalysed"])
    assert confirmed.state == "confirmed"
    assert steps(db, alarm) == [("open", "confirmed", "分析员承认抄录", ["reanalysed", "referred"])]
    assert json.loads(events(db, "oversight.alarm_confirmed")[0].after)["actions"] == ["reanalysed", "referred"]


@pytest.mark.parametrize("to", ["investigating", "dismissed", "confirmed"])
def test_a_disposition_without_a_reason_is_refused_and_audited(db, users, alarm, to):
    qm = users["quality_manager"]
    with pytest.raises(RecordedRefusal) as caught:
        dispose(db, qm, alarm, to, "   ", ["reanalysed"])
    assert caught.value.code == "disposition_needs_reason" and caught.value.http_status == 422
    assert state_of(db, alarm) == "open" and steps(db, alarm) == []
    recorded = events(db, "oversight.disposition_refused")
    assert len(recorded) == 1 and recorded[0].actor_id == qm.id
    assert json.loads(recorded[0].after)["to"] == to


def test_a_closed_alarm_does_not_move_again(db, users, alarm):
    qm = users["quality_manager"]
    dispose(db, qm, alarm, "dismissed", "仪器读数正常")
    for to in ("investigating", "dismissed", "confirmed"):
        refused(db, lambda to=to: dispose(db, qm, alarm, to, "再看看", ["referred"]), "alarm_closed")
    assert state_of(db, alarm) == "dismissed"


def test_investigating_twice_and_unknown_steps_are_refused(db, users, alarm):
    qm = users["quality_manager"]
    dispose(db, qm, alarm, "investigating", "调查")
    refused(db, lambda: dispose(db, qm, alarm, "investigating", "再调查"), "alarm_transition_refused")
    refused(db, lambda: dispose(db, qm, alarm, "open", "重开"), "unknown_disposition")


@pytest.mark.parametrize(("role", "code"), [("inspector", "inspector_read_only"), ("reviewer", "permission_denied"),
                                            ("analyst", "permission_denied")])
def test_only_the_quality_manager_disposes(db, users, alarm, role, code):
    refused(db, lambda: dispose(db, users[role], alarm, "dismissed", "无问题"), code)
    assert state_of(db, alarm) == "open"


def test_not_on_the_quality_managers_own_data(db, users, lab, fake_rules):  # noqa: F811
    qm = users["quality_manager"]
    (s1,) = lab.samples(1)
    theirs = raise_alarm(db, fake_rules["Z01"], "own", [s1], responsible_user_id=qm.id)
    error = refused(db, lambda: dispose(db, qm, theirs, "dismissed", "没问题"), "own_data_alarm")
    assert error.http_status == 403 and theirs.alarm_no in error.message("en")
    # the QM entered a result of the alarm's sample (the alarm names the analyst)
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s2,) = lab.samples(1)
    batch = lab.batch(m, users["analyst"])
    lab.result(batch, s2, "NH3-N", "0.512", entered_by=qm)
    entered = raise_alarm(db, fake_rules["Z01"], "entered", [s2], responsible_user_id=users["analyst"].id)
    refused(db, lambda: dispose(db, qm, entered, "investigating", "查"), "own_data_alarm")
    # another quality manager may
    other = make_user(db, "qm2", "quality_manager")
    assert dispose(db, other, entered, "investigating", "由另一位质量负责人调查").state == "investigating"


def test_two_quality_managers_at_once_move_it_once(pg_db, users, alarm):
    first, second = users["quality_manager"], make_user(pg_db, "qm2", "quality_manager")

    def act(actor, to, reason):
        def run(session):
            row = session.get(AnomalyAlarm, alarm.id)
            return anomalies.dispose_alarm(session, actor, row, to, reason, ["referred"]).state
        return run

    outcomes = race(pg_db, act(first, "dismissed", "无问题"), act(second, "confirmed", "确有问题"))
    states = [o for o in outcomes if isinstance(o, str)]
    errors = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(states) == 1 and len(errors) == 1 and errors[0].code == "alarm_closed", outcomes
    assert len(steps(pg_db, alarm)) == 1 and state_of(pg_db, alarm) == states[0]
