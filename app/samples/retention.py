"""Retention after reporting (留样): how long a sample is kept once its report is issued (or, for
a rejected sample, once it was rejected), then disposal may be proposed (app.samples.disposal).

The period comes from the most specific rule: client and matrix, then client, then matrix, else
the lab's default. Retention is fixed when it starts (the rule in force at reporting); changing a
rule later does not move the dates of samples already reported. A later report (an amendment)
extends the retention; nothing shortens it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core import audit
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import lab_input
from app.samples import storage_errors as se
from app.samples.lab_models import RetentionRule
from app.samples.models import Sample, SampleState
from app.samples.registration import MATRICES

# Days a sample is kept after its report when no rule names its client or matrix. It becomes the
# setting `retention_days_default` (LIMS_RETENTION_DAYS_DEFAULT); until then this is the default.
MAX_DAYS = 36_500


def default_days(session: Session) -> int:
    """The lab's default retention (setting LIMS_RETENTION_DAYS_DEFAULT)."""
    return settings_of(session).retention_days_default


def _rank(rule: RetentionRule) -> int:
    return (2 if rule.client_name else 0) + (1 if rule.matrix else 0)


def rules_for(session: Session, samples: Sequence[Sample]) -> dict[int, RetentionRule | None]:
    """The rule that applies to each sample (None: the default), in one query."""
    if not samples:
        return {}
    clients = {s.client_name for s in samples if s.client_name}
    matrices = {s.matrix for s in samples}
    rules = session.scalars(select(RetentionRule).where(
        or_(RetentionRule.client_name == "", RetentionRule.client_name.in_(clients)),
        or_(RetentionRule.matrix == "", RetentionRule.matrix.in_(matrices)))).all()
    chosen: dict[int, RetentionRule | None] = {}
    for sample in samples:
        fitting = [r for r in rules if r.client_name in ("", sample.client_name) and r.matrix in ("", sample.matrix)
                   and (r.client_name or r.matrix)]
        chosen[sample.id] = max(fitting, key=_rank) if fitting else None
    return chosen


def retention_days(session: Session, sample: Sample) -> tuple[int, RetentionRule | None]:
    """How many days `sample` is kept after reporting, and the rule that says so (None: default)."""
    rule = rules_for(session, [sample])[sample.id]
    return (rule.days, rule) if rule is not None else (default_days(session), None)


def _start(session: Session, actor: Any, sample: Sample, start: datetime, action: str,
           reported: bool) -> Sample:
    if sample.state == SampleState.DISPOSED.value:
        raise se.RetentionOfDisposedSample(sample_no=sample.sample_no)
    days, rule = retention_days(session, sample)
    until = start + timedelta(days=days)
    before = {"reported_at": sample.reported_at, "retain_until": sample.retain_until}
    if reported and (sample.reported_at is None or start > sample.reported_at):
        sample.reported_at = start
    if sample.retain_until is None or until > sample.retain_until:
        sample.retain_until = until
    after = {"reported_at": sample.reported_at, "retain_until": sample.retain_until}
    if after != before:
        session.flush()
        audit.append(session, actor, action, "sample", sample.id, {"sample_no": sample.sample_no, **before},
                     {"sample_no": sample.sample_no, **after, "days": days, "rule_id": rule.id if rule else None})
    return sample


def start_retention(session: Session, actor: Any, sample: Sample, reported_at: datetime) -> Sample:
    """Retention runs from the report's issue: called by the report service when it issues a report
    with this sample (the issuing act is authorised there). Sets reported_at and retain_until."""
    return _start(session, actor, sample, reported_at, "sample.retention_started", True)


def start_retention_at_rejection(session: Session, actor: Any, sample: Sample, rejected_at: datetime) -> Sample:
    """A sample rejected at receipt is never reported: its retention runs from the rejection."""
    return _start(session, actor, sample, rejected_at, "sample.retention_started", False)


# ---------------------------------------------------------------- rules


def _days(value: Any) -> int:
    shown = str(value if value is not None else "").strip()[:20]
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,5}", shown) or not 1 <= int(shown) <= MAX_DAYS:
        raise se.RetentionDaysInvalid(value=shown or "—")
    return int(shown)


def _scope(client_name: Any, matrix: Any) -> tuple[str, str]:
    client = lab_input.text(client_name, "委托单位", "The client", 200)
    chosen = lab_input.text(matrix, "样品类型", "The matrix", 16)
    if chosen and chosen not in MATRICES:
        raise se.UnknownMatrix(value=chosen)
    if not client and not chosen:
        raise se.RetentionRuleScopeRequired()
    return client, chosen


def _rule_facts(rule: RetentionRule) -> dict[str, Any]:
    return {"client_name": rule.client_name, "matrix": rule.matrix, "days": rule.days, "note": rule.note}


def list_rules(session: Session) -> list[RetentionRule]:
    return list(session.scalars(select(RetentionRule).order_by(RetentionRule.client_name, RetentionRule.matrix)))


def create_rule(session: Session, actor: User, *, client_name: Any = "", matrix: Any = "", days: Any,
                note: Any = "") -> RetentionRule:
    ensure(session, actor, Permission.STORAGE_MANAGE)
    client, chosen = _scope(client_name, matrix)
    number = _days(days)
    text = lab_input.text(note, "说明", "The note", 300)
    if session.scalars(select(RetentionRule.id).where(RetentionRule.client_name == client,
                                                      RetentionRule.matrix == chosen)).first() is not None:
        raise se.RetentionRuleExists(client=client or "—", matrix=chosen or "—")
    rule = RetentionRule(client_name=client, matrix=chosen, days=number, note=text, created_at=utcnow(),
                         created_by_id=actor.id)
    session.add(rule)
    session.flush()
    audit.append(session, actor, "retention.rule_created", "retention_rule", rule.id, None, _rule_facts(rule))
    return rule


def rule_by_id(session: Session, rule_id: Any) -> RetentionRule:
    text = str(rule_id or "").strip()
    rule = session.get(RetentionRule, int(text)) if re.fullmatch(r"\d{1,9}", text) else None
    if rule is None:
        raise se.RetentionRuleNotFound()
    return rule


def change_rule(session: Session, actor: User, rule: RetentionRule, *, days: Any, note: Any = "") -> RetentionRule:
    """A new period for later reports; samples already reported keep their dates."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    number = _days(days)
    text = lab_input.text(note, "说明", "The note", 300)
    before = _rule_facts(rule)
    rule.days, rule.note = number, text
    session.flush()
    audit.append(session, actor, "retention.rule_changed", "retention_rule", rule.id, before, _rule_facts(rule))
    return rule


def remove_rule(session: Session, actor: User, rule: RetentionRule) -> None:
    """A rule is configuration, not a record: removed with its audit event (the samples' dates,
    fixed at reporting, do not change)."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    before = _rule_facts(rule)
    rule_id = rule.id
    session.delete(rule)
    session.flush()
    audit.append(session, actor, "retention.rule_removed", "retention_rule", rule_id, before, None)
