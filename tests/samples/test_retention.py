"""Retention after reporting: the most specific rule wins (client and matrix, client, matrix, the
default), retention starts at the report (or at rejection), a later report extends it, and the
rules are kept by the custodian."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.config import Settings, settings_of
from app.core.db import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.samples import retention
from app.samples.lab_models import RetentionRule
from app.samples.models import Sample, SampleState
from tests.samples.test_storage import refused
from tests.samples.test_storage_support import *  # noqa: F403
from tests.samples.test_storage_support import audit_actions, report, rows, sample_row


def add_rule(db, user, days, client="", matrix=""):
    with db.transaction() as session:
        rule = retention.create_rule(session, user, client_name=client, matrix=matrix, days=days, note="合同约定")
        session.expunge(rule)
    return rule


def set_client(db, sample, client):
    with db.transaction() as session:
        session.get(Sample, sample.id).client_name = client


def test_without_rules_the_default_applies(db, users, received_task):
    reported = utcnow() - timedelta(days=1)
    sample = report(db, received_task.routine, reported)
    assert sample.reported_at == reported
    assert sample.retain_until == reported + timedelta(days=Settings().retention_days_default)
    assert "sample.retention_started" in audit_actions(db)


def test_client_rule_beats_matrix_rule_beats_default(db, users, received_task):
    dt = received_task
    custodian = users["custodian"]
    first, second, third = dt.samples
    set_client(db, first, "江城化工")
    set_client(db, second, "别的单位")
    add_rule(db, custodian, 60, matrix="water")
    add_rule(db, custodian, 90, client="江城化工")
    add_rule(db, custodian, 10, matrix="soil")
    at = utcnow() - timedelta(hours=1)
    assert report(db, first, at).retain_until == at + timedelta(days=90)  # client
    assert report(db, second, at).retain_until == at + timedelta(days=60)  # matrix (water)
    add_rule(db, custodian, 120, client="江城化工", matrix="water")
    with db.reading() as session:
        days, rule = retention.retention_days(session, session.get(Sample, first.id))
        assert (days, rule.client_name, rule.matrix) == (120, "江城化工", "water")  # client and matrix beat client
        settings_of(session).retention_days_default = 45
        set_third = session.get(Sample, third.id)
        set_third.matrix = "air"
        assert retention.retention_days(session, set_third) == (45, None)  # nothing fits: the setting


def test_a_later_report_extends_and_an_earlier_does_not_shorten(db, received_task):
    sample = received_task.routine
    first = utcnow() - timedelta(days=3)
    report(db, sample, first)
    later = report(db, sample, first + timedelta(days=2))
    assert later.retain_until == first + timedelta(days=2 + Settings().retention_days_default)
    again = report(db, sample, first - timedelta(days=1))
    assert again.retain_until == later.retain_until and again.reported_at == later.reported_at


def test_a_rejected_sample_is_retained_from_its_rejection(db, users, received_task):
    sample = received_task.routine
    at = utcnow() - timedelta(hours=2)
    with db.transaction() as session:
        found = session.get(Sample, sample.id)
        found.state = SampleState.REJECTED.value
        retention.start_retention_at_rejection(session, users["custodian"], found, at)
    row = sample_row(db, sample.id)
    assert row.reported_at is None and row.retain_until == at + timedelta(days=Settings().retention_days_default)


def test_retention_of_a_disposed_sample_is_refused(db, received_task):
    with db.transaction() as session:
        session.get(Sample, received_task.routine.id).state = SampleState.DISPOSED.value
    refused(db, lambda s: retention.start_retention(s, None, s.get(Sample, received_task.routine.id), utcnow()),
            "retention_sample_disposed")
    assert sample_row(db, received_task.routine.id).retain_until is None


def test_rules_are_created_changed_and_removed_with_audit_events(db, users):
    rule = add_rule(db, users["custodian"], 30, client="某某公司")
    with db.transaction() as session:
        retention.change_rule(session, users["custodian"], retention.rule_by_id(session, rule.id), days="45")
    with db.reading() as session:
        assert session.get(RetentionRule, rule.id).days == 45
    with db.transaction() as session:
        retention.remove_rule(session, users["custodian"], retention.rule_by_id(session, str(rule.id)))
    assert rows(db, RetentionRule) == 0
    actions = audit_actions(db)
    assert {"retention.rule_created", "retention.rule_changed", "retention.rule_removed"} <= set(actions)


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"days": "0", "client_name": "A"}, "retention_days_invalid"),
    ({"days": "abc", "client_name": "A"}, "retention_days_invalid"),
    ({"days": "99999", "client_name": "A"}, "retention_days_invalid"),
    ({"days": "30"}, "retention_rule_scope_required"),
    ({"days": "30", "matrix": "lava"}, "retention_matrix_unknown"),
    ({"days": "30", "client_name": "x" * 201}, "field_too_long"),
])
def test_bad_rules_are_refused(db, users, kwargs, code):
    refused(db, lambda s: retention.create_rule(s, users["custodian"], **kwargs), code, RetentionRule)


def test_a_second_rule_for_the_same_scope_is_refused(db, users):
    add_rule(db, users["custodian"], 30, matrix="soil")
    refused(db, lambda s: retention.create_rule(s, users["custodian"], matrix="soil", days=40),
            "retention_rule_exists", RetentionRule)


def test_an_unknown_rule_is_not_found(db):
    with pytest.raises(DomainError) as caught, db.reading() as session:
        retention.rule_by_id(session, "12345")
    assert caught.value.code == "retention_rule_not_found"


def test_only_storage_managers_keep_rules(db, users):
    with pytest.raises(PermissionDenied), db.transaction() as session:
        retention.create_rule(session, users["analyst"], matrix="water", days=30)
    with db.reading() as session:
        assert session.scalars(select(RetentionRule)).all() == []
