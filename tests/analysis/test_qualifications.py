"""Qualifications (上岗证): granting with its rules, revoking, and the gate at the time of the act
(valid yesterday but not today, expired, not yet valid, revoked before or after the act, another
method), and the list of qualifications about to expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.analysis import methods, qualifications
from app.analysis.method_errors import AnalystNotQualified
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from tests.analysis.conftest import make_method, qualify
from tests.analysis.methods_fixtures import act, counts, local_noon
from tests.conftest import make_user


@pytest.fixture
def method(db, technical):
    make_method(db, technical)
    return fetch(db, "HJ 535-2009")


def fetch(db, code):
    with db.reading() as session:
        found = methods.get_method(session, code)
        session.expunge(found)
        return found


def grant(db, actor, user, method, valid_from, valid_to, **kw):
    return act(db, qualifications.grant_qualification, actor, user, method, kw.pop("certificate_no", "HJSG-2026-017"),
               kw.pop("issued_by", "黑龙江省生态环境监测中心"), valid_from, valid_to, **kw)


def gate(db, user, method_id, at):
    with db.reading() as session:
        found = qualifications.assert_analyst_qualified(session, user, method_id, at)
        session.expunge(found)
        return found


def test_granting_a_qualification(db, technical, analyst, method):
    today = db.calendar.today()
    row = grant(db, technical, analyst, method, (today - timedelta(days=1)).isoformat(),
                (today + timedelta(days=700)).isoformat())
    assert row.user_id == analyst.id and row.method_id == method.id and row.granted_by_id == technical.id
    assert gate(db, analyst, method.id, utcnow()).id == row.id
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "qualification.granted")).one()
        assert event.after_data["method"] == "HJ 535-2009" and event.after_data["certificate_no"] == "HJSG-2026-017"


def test_granting_refusals_change_nothing(db, technical, users, method):
    today = db.calendar.today()
    start, end = today, today + timedelta(days=365)
    other_tm = make_user(db, "technical-2", "technical_manager", "analyst")
    withdrawn = make_method(db, technical, "GB 7479-87")
    withdrawn_method = fetch(db, "GB 7479-87")
    act(db, methods.withdraw_method, technical, withdrawn_method, "停用")
    before = counts(db)
    cases = [
        (other_tm, other_tm, method, start, end, {}, "qualification_to_self"),
        (technical, users["analyst"], method, end, start, {}, "qualification_dates_invalid"),
        (technical, users["analyst"], method, start, start, {}, "qualification_dates_invalid"),
        (technical, users["analyst"], method, "2026-13-01", end, {}, "invalid_act_time"),
        (technical, users["analyst"], method, "", end, {}, "field_required"),
        (technical, users["analyst"], method, start, end, {"certificate_no": " "}, "field_required"),
        (technical, users["analyst"], method, start, end, {"issued_by": ""}, "field_required"),
        (technical, users["custodian"], method, start, end, {}, "qualification_needs_bench_role"),
        (technical, users["analyst"], withdrawn_method, start, end, {}, "method_not_active"),
        (users["quality_manager"], users["analyst"], method, start, end, {}, "permission_denied"),
        (users["inspector"], users["analyst"], method, start, end, {}, "inspector_read_only"),
    ]
    for actor, user, m, valid_from, valid_to, kw, code in cases:
        with pytest.raises(DomainError) as refused:
            grant(db, actor, user, m, valid_from, valid_to, **kw)
        assert refused.value.code == code, (code, refused.value.code)
    assert counts(db) == before and withdrawn is not None


def test_checkers_and_reviewers_may_hold_one(db, technical, users, method):
    today = db.calendar.today()
    for role in ("checker", "reviewer", "sampler"):
        grant(db, technical, users[role], method, today, today + timedelta(days=10))


def test_the_gate_is_checked_at_the_time_of_the_act(db, technical, analyst, method):
    today = db.calendar.today()
    # valid until yesterday (lab-local dates, both ends included)
    qualify(db, analyst, method.id, valid_from=today - timedelta(days=400), valid_to=today - timedelta(days=1),
            granted_by=technical)
    assert gate(db, analyst, method.id, local_noon(db, 1)).valid_to == today - timedelta(days=1)
    assert gate(db, analyst, method.id, db.calendar.start_of(today) - timedelta(seconds=1))
    with pytest.raises(AnalystNotQualified) as refused:
        gate(db, analyst, method.id, db.calendar.start_of(today))
    assert refused.value.code == "analyst_not_qualified"
    assert "HJ 535-2009" in refused.value.message("zh") and today.isoformat() in refused.value.message("en")
    with pytest.raises(AnalystNotQualified):
        gate(db, analyst, method.id, local_noon(db, 500))  # before it began


def test_a_qualification_not_yet_valid_does_not_cover_today(db, technical, analyst, method):
    today = db.calendar.today()
    qualify(db, analyst, method.id, valid_from=today + timedelta(days=1), valid_to=today + timedelta(days=300))
    with pytest.raises(AnalystNotQualified):
        gate(db, analyst, method.id, utcnow())
    assert gate(db, analyst, method.id, local_noon(db, -1))


def test_another_method_or_another_person_is_not_covered(db, technical, analyst, users, method):
    qualify(db, analyst, method.id)
    other = make_method(db, technical, "HJ 700-2014")
    with pytest.raises(AnalystNotQualified):
        gate(db, analyst, other.method_id, utcnow())
    with pytest.raises(AnalystNotQualified):
        gate(db, users["checker"], method.id, utcnow())


def test_a_revocation_covers_acts_before_it_and_refuses_acts_after(db, technical, analyst, method):
    row = qualify(db, analyst, method.id)
    hour_ago = utcnow() - timedelta(hours=1)
    revoked = act(db, qualifications.revoke_qualification, technical, row, "考核不合格")
    assert revoked.revoked_by_id == technical.id and revoked.revoke_reason == "考核不合格"
    assert gate(db, analyst, method.id, hour_ago).id == row.id
    for at in (revoked.revoked_at, utcnow() + timedelta(seconds=1)):
        with pytest.raises(AnalystNotQualified):
            gate(db, analyst, method.id, at)
    before = counts(db)
    with pytest.raises(DomainError) as refused:
        act(db, qualifications.revoke_qualification, technical, row, "again")
    assert refused.value.code == "qualification_already_revoked"
    assert counts(db) == before


def test_revoking_needs_a_reason_and_the_technical_manager(db, technical, analyst, users, method):
    row = qualify(db, analyst, method.id)
    before = counts(db)
    for actor, reason, code in ((technical, "  ", "field_required"), (analyst, "x", "permission_denied"),
                                (users["inspector"], "x", "inspector_read_only")):
        with pytest.raises(DomainError) as refused:
            act(db, qualifications.revoke_qualification, actor, row, reason)
        assert refused.value.code == code
    assert counts(db) == before
    assert gate(db, analyst, method.id, utcnow()).id == row.id


def test_qualifications_expiring_within_days(db, technical, analyst, users, method):
    today = db.calendar.today()
    soon = qualify(db, analyst, method.id, valid_to=today + timedelta(days=30))
    qualify(db, users["checker"], method.id, valid_to=today + timedelta(days=90))
    qualify(db, users["reviewer"], method.id, valid_to=today - timedelta(days=1))  # already expired
    revoked = qualify(db, users["sampler"], method.id, valid_to=today + timedelta(days=10))
    act(db, qualifications.revoke_qualification, technical, revoked, "调岗")
    with db.reading() as session:
        assert [q.id for q in qualifications.qualifications_expiring(session, 60)] == [soon.id]
        assert qualifications.count_expiring(session, 60) == 1
        assert len(qualifications.qualifications_expiring(session, 120)) == 2
