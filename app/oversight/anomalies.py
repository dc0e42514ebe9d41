"""The anomaly engine (issue 10 item 2; DOMAIN.md §3 "Anomaly alarm", §7): rule settings in
versions, scans that turn the rules' findings into alarms, the alarms' disposition workflow and
the review checklist item "open anomaly alarms".

A scan streams each rule's findings in chunks: the fingerprints of a chunk are looked up in one
IN query, the new alarms inserted in bulk (their numbers reserved at once) with their samples,
and the audit events written out per chunk, so a scan over a million results stays within a
bounded memory whatever the number of findings. A fingerprint is sha256("code|key"): a finding
found again is the same alarm (scans are idempotent), and a concurrent scan inserting the same
one first is skipped (ON CONFLICT DO NOTHING), never an error in the submitter's transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import reserve_codes
from app.core.db import Database, utcnow
from app.core.errors import NotFound
from app.core.job_queue import Job, enqueue, handler, report_progress
from app.core.permissions import Permission, ensure
from app.oversight import anomaly_errors as errors
from app.oversight.models import (
    AlarmDisposition,
    AlarmSample,
    AlarmState,
    AnomalyAlarm,
    AnomalyRuleSetting,
    AnomalyScan,
    ConfirmedAction,
)
from app.oversight.rules.base import AnomalyRule, Finding, ScanWindow, Threshold, all_rules, rule_by_code

ALARM_PREFIX = "YC"  # 异常
TRIGGERS = ("cli", "schedule", "submission", "page")
CHUNK = 500  # findings per fingerprint lookup and bulk insert
MAX_REASON = 2000
MAX_SETTING_REASON = 500
log = logging.getLogger(__name__)
OPEN_STATES = (AlarmState.OPEN.value, AlarmState.INVESTIGATING.value)
CLOSED_STATES = (AlarmState.DISMISSED.value, AlarmState.CONFIRMED.value)
SCAN_JOB = "anomaly_scan"
PAGE_SCAN_DAYS = 30

Progress = Callable[[str, int], None]


# ---------------------------------------------------------------- rule settings


@dataclass(frozen=True)
class RuleSetting:
    """A rule's switch and limits in force; version 0 is the code's defaults."""

    code: str
    enabled: bool
    version: int
    limits: dict[str, Decimal]
    reason: str = ""
    set_at: datetime | None = None
    set_by_id: int | None = None


def _defaults(rule: AnomalyRule) -> RuleSetting:
    return RuleSetting(rule.code, True, 0, rule.defaults())


def _from_row(rule: AnomalyRule, row: AnomalyRuleSetting) -> RuleSetting:
    stored = json.loads(row.thresholds or "{}")
    # a threshold added to the rule after the setting was saved keeps its default
    limits = {t.name: Decimal(str(stored[t.name])) if t.name in stored else t.default for t in rule.thresholds}
    return RuleSetting(rule.code, row.enabled, row.version, limits, row.reason, row.set_at, row.set_by_id)


def rule_settings(session: Session) -> dict[str, RuleSetting]:
    """Every rule's setting in force (code → setting): the newest row per rule, in one query."""
    newest = (select(AnomalyRuleSetting.rule_code, func.max(AnomalyRuleSetting.version).label("version"))
              .group_by(AnomalyRuleSetting.rule_code).subquery())
    rows = {r.rule_code: r for r in session.scalars(select(AnomalyRuleSetting).join(
        newest, and_(AnomalyRuleSetting.rule_code == newest.c.rule_code,
                     AnomalyRuleSetting.version == newest.c.version)))}
    return {rule.code: _from_row(rule, rows[rule.code]) if rule.code in rows else _defaults(rule)
            for rule in all_rules()}


def setting_history(session: Session, code: str, limit: int = 50) -> list[AnomalyRuleSetting]:
    return list(session.scalars(select(AnomalyRuleSetting).where(AnomalyRuleSetting.rule_code == code)
                                .order_by(AnomalyRuleSetting.version.desc()).limit(limit)))


def settings_histories(session: Session, codes: Sequence[str],
                       per_rule: int = 20) -> dict[str, list[AnomalyRuleSetting]]:
    """The version history of several rules in one query (newest first)."""
    found: dict[str, list[AnomalyRuleSetting]] = {c: [] for c in codes}
    if not codes:
        return found
    for row in session.scalars(select(AnomalyRuleSetting).where(AnomalyRuleSetting.rule_code.in_(list(codes)))
                               .order_by(AnomalyRuleSetting.rule_code, AnomalyRuleSetting.version.desc())):
        if len(found[row.rule_code]) < per_rule:
            found[row.rule_code].append(row)
    return found


def _get_rule(code: str) -> AnomalyRule:
    rule = rule_by_code((code or "").strip().upper())
    if rule is None:
        raise errors.UnknownRule(rule=(code or "")[:20])
    return rule


def _parse_threshold(threshold: Threshold, raw: Any, refuse: Callable[[type[errors.RuleSettingRefused], dict], Any]
                     ) -> Decimal:
    text = str(raw).strip()[:40]
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise refuse(errors.ThresholdNotANumber, {"name": threshold.name, "value": text}) from None
    if not value.is_finite():
        raise refuse(errors.ThresholdNotANumber, {"name": threshold.name, "value": text})
    if threshold.integer and value != value.to_integral_value():
        raise refuse(errors.ThresholdNotInteger, {"name": threshold.name, "value": text})
    if not threshold.low <= value <= threshold.high:
        bounds = {"low": format(threshold.low, "f"), "high": format(threshold.high, "f")}
        raise refuse(errors.ThresholdOutOfRange, {"name": threshold.name, "value": text, **bounds})
    return value.to_integral_value() if threshold.integer else value


def set_rule_settings(session: Session, actor: Any, code: str, *, enabled: bool, thresholds: dict[str, str],
                      reason: str, based_on: int | None = None) -> AnomalyRuleSetting:
    """The quality manager sets a rule's switch and thresholds: a new version, with a reason.
    Values outside the rule's ranges (or not numbers, or unknown names, or no reason) are refused,
    and the refusal is audited. `based_on` is the version the form showed: if another quality
    manager saved a version since (or saves one at the same moment), the change is refused rather
    than silently replacing theirs."""
    ensure(session, actor, Permission.ANOMALY_RULES)
    rule = _get_rule(code)
    text = (reason or "").strip()
    attempted = {"rule": rule.code, "enabled": bool(enabled), "reason": text[:MAX_SETTING_REASON],
                 "thresholds": {str(k)[:60]: str(v)[:40] for k, v in (thresholds or {}).items()}}

    def refuse(kind: type[errors.RuleSettingRefused], params: dict) -> errors.RuleSettingRefused:
        def record(s: Session) -> None:
            audit.append(s, actor, "oversight.rule_settings_refused", "anomaly_rule", rule.code, None,
                         {**attempted, "refusal": kind.code, **{k: str(v) for k, v in params.items()}})
        return kind(record=record, **params)

    if len(text) > MAX_SETTING_REASON:
        raise errors.ReasonTooLong(maximum=MAX_SETTING_REASON)
    if not text:
        raise refuse(errors.RuleSettingNeedsReason, {})
    known = {t.name: t for t in rule.thresholds}
    for name in thresholds or {}:
        if name not in known:
            raise refuse(errors.UnknownThreshold, {"rule": rule.code, "name": str(name)[:60]})
    current = rule_settings(session)[rule.code]
    if based_on is not None and based_on != current.version:
        raise refuse(errors.RuleSettingChanged, {"rule": rule.code, "version": current.version})
    limits = dict(current.limits)
    for name, raw in (thresholds or {}).items():
        limits[name] = _parse_threshold(known[name], raw, refuse)
    version = (session.scalar(select(func.max(AnomalyRuleSetting.version))
                              .where(AnomalyRuleSetting.rule_code == rule.code)) or 0) + 1
    row = AnomalyRuleSetting(rule_code=rule.code, version=version, enabled=bool(enabled),
                             thresholds=canonical_json({k: format(v, "f") for k, v in limits.items()}),
                             reason=text, set_at=utcnow(), set_by_id=actor.id)
    try:
        with audit.savepoint(session):
            session.add(row)
            session.flush()
    except IntegrityError:  # the same version saved by someone else between the read and the insert
        raise refuse(errors.RuleSettingChanged, {"rule": rule.code, "version": version}) from None
    audit.append(session, actor, "oversight.rule_settings_set", "anomaly_rule", rule.code,
                 {"version": current.version, "enabled": current.enabled,
                  "thresholds": {k: format(v, "f") for k, v in current.limits.items()}},
                 {"version": version, "enabled": row.enabled, "thresholds": json.loads(row.thresholds),
                  "reason": text})
    return row


# ---------------------------------------------------------------- scans


@dataclass
class ScanOutcome:
    scan_id: int
    raised: dict[str, int] = field(default_factory=dict)  # rule code → new alarms
    seen: dict[str, int] = field(default_factory=dict)  # rule code → findings that were alarms already
    failed: dict[str, str] = field(default_factory=dict)  # rule code → the error (submission scans only)


def fingerprint(code: str, key: str) -> str:
    return hashlib.sha256(f"{code}|{key}".encode()).hexdigest()


def _chunks(findings: Iterable[Finding], size: int | None = None) -> Iterator[list[Finding]]:
    size = size or CHUNK
    chunk: list[Finding] = []
    for finding in findings:
        chunk.append(finding)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert(session: Session) -> Any:
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _store_chunk(session: Session, actor: Any, scan: AnomalyScan, rule: AnomalyRule, version: int,
                 chunk: list[Finding], now: datetime) -> tuple[int, int]:
    """New alarms of one chunk of findings; returns (raised, seen)."""
    by_print: dict[str, Finding] = {}
    for finding in chunk:
        by_print.setdefault(fingerprint(rule.code, finding.key), finding)
    existing = set(session.scalars(select(AnomalyAlarm.fingerprint)
                                   .where(AnomalyAlarm.fingerprint.in_(list(by_print)))))
    new = [(fp, f) for fp, f in by_print.items() if fp not in existing]
    if not new:
        return 0, len(chunk)
    numbers = reserve_codes(session, ALARM_PREFIX, now, len(new))
    rows = [{"alarm_no": no, "rule_code": rule.code, "rule_version": version, "fingerprint": fp,
             "summary_zh": f.summary_zh[:500], "summary_en": f.summary_en[:500],
             "evidence": canonical_json(f.evidence), "parameter": (f.parameter or "")[:60],
             "batch_id": f.batch_id, "site_id": f.site_id, "responsible_user_id": f.responsible_user_id,
             "occurred_at": f.occurred_at, "raised_at": now, "scan_id": scan.id,
             "state": AlarmState.OPEN.value} for no, (fp, f) in zip(numbers, new, strict=True)]
    table = AnomalyAlarm.__table__
    stmt = (_insert(session)(table).on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(table.c.id, table.c.fingerprint, table.c.alarm_no))
    inserted = session.execute(stmt, rows).all()
    links = [{"alarm_id": alarm_id, "sample_id": sample_id} for alarm_id, fp, _ in inserted
             for sample_id in sorted(set(by_print[fp].sample_ids))]
    if links:
        session.execute(_insert(session)(AlarmSample.__table__).on_conflict_do_nothing(), links)
    for alarm_id, fp, alarm_no in inserted:
        f = by_print[fp]
        audit.append(session, actor, "oversight.alarm_raised", "anomaly_alarm", alarm_id, None, {
            "alarm_no": alarm_no, "rule": rule.code, "version": version, "scan_id": scan.id,
            "key": f.key, "evidence": json.loads(canonical_json(f.evidence)),
            "sample_ids": sorted(set(f.sample_ids)), "batch_id": f.batch_id,
            "responsible_user_id": f.responsible_user_id, "summary": f.summary_en[:500]}, at=now)
    audit.flush_pending(session)  # the events of this chunk leave memory now
    return len(inserted), len(chunk) - len(inserted)


def _chosen_rules(settings: dict[str, RuleSetting], rules: Sequence[str] | None, trigger: str) -> list[AnomalyRule]:
    chosen = sorted({_get_rule(code).code for code in rules}) if rules else sorted(settings)
    picked = [rule_by_code(code) for code in chosen if settings[code].enabled]
    if trigger == "submission":
        picked = [r for r in picked if r is not None and r.on_submission]
    return [r for r in picked if r is not None]


def scan(session: Session, actor: Any, window: ScanWindow, *, trigger: str, rules: Sequence[str] | None = None,
         progress: Progress | None = None) -> ScanOutcome:
    """Run the enabled rules (or the enabled ones of those named) over the window and raise an
    alarm per new finding. Detection is the system's own act, run on behalf of whoever triggered
    it (the submitting analyst, the scheduler, the CLI, the QM's page): it needs no permission of
    its own; the page that asks for a scan checks ANOMALY_RULES."""
    if trigger not in TRIGGERS:
        raise errors.UnknownTrigger(trigger=str(trigger)[:20])
    settings = rule_settings(session)
    chosen = _chosen_rules(settings, rules, trigger)
    now = utcnow()
    batch_id = window.batch_ids[0] if window.batch_ids and len(window.batch_ids) == 1 else None
    record = AnomalyScan(trigger=trigger, since=window.since, batch_id=batch_id, started_at=now,
                         started_by_id=getattr(actor, "id", None))
    session.add(record)
    session.flush()
    outcome = ScanOutcome(record.id)
    for rule in chosen:
        if trigger != "submission":
            _run_rule(session, actor, record, rule, settings[rule.code], window, now, outcome, progress)
            continue
        # a rule that breaks must not stop an analyst signing their batch: its part is undone,
        # the failure is kept with the scan, and the next scheduled scan reads the batch again
        try:
            with audit.savepoint(session):
                _run_rule(session, actor, record, rule, settings[rule.code], window, now, outcome, progress)
        except Exception as error:  # noqa: BLE001 (any failure of detection code)
            log.exception("anomaly rule %s failed in the submission scan %s", rule.code, record.id)
            outcome.raised.pop(rule.code, None)
            outcome.seen.pop(rule.code, None)
            outcome.failed[rule.code] = f"{type(error).__name__}: {error}"[:300]
    record.finished_at = utcnow()
    record.counts = canonical_json({**outcome.raised, **({"failed": sorted(outcome.failed)} if outcome.failed
                                                         else {})})
    session.flush()
    audit.append(session, actor, "oversight.scan_finished", "anomaly_scan", record.id, None, {
        "trigger": trigger, "since": window.since, "until": window.until,
        "batch_ids": list(window.batch_ids or ()), "rules": [r.code for r in chosen],
        "versions": {r.code: settings[r.code].version for r in chosen},
        "raised": outcome.raised, "seen": outcome.seen, **({"failed": outcome.failed} if outcome.failed else {})})
    return outcome


def _run_rule(session: Session, actor: Any, record: AnomalyScan, rule: AnomalyRule, setting: RuleSetting,
              window: ScanWindow, now: datetime, outcome: ScanOutcome, progress: Progress | None) -> None:
    raised = seen = 0
    if progress:
        progress(rule.code, 0)
    for chunk in _chunks(rule.find(session, window, dict(setting.limits))):
        new, old = _store_chunk(session, actor, record, rule, setting.version, chunk, now)
        raised, seen = raised + new, seen + old
        if progress:
            progress(rule.code, raised + seen)
    outcome.raised[rule.code], outcome.seen[rule.code] = raised, seen


def scan_signed_batch(session: Session, actor: Any, batch_id: int) -> ScanOutcome:
    """The rules that judge one batch, on its submission (or re-signing), in the submitter's
    transaction: the alarms land with the signature or not at all."""
    return scan(session, actor, ScanWindow(until=utcnow(), batch_ids=(batch_id,)), trigger="submission")


def scan_counts(counts: str) -> tuple[list[tuple[str, int]], list[str]]:
    """A scan's stored counts as a page shows them: the rules that raised alarms (with how many)
    and the rules that failed."""
    try:
        data = json.loads(counts or "{}")
    except ValueError:
        return [], []
    failed = [str(code) for code in data.pop("failed", [])] if isinstance(data, dict) else []
    raised = sorted((str(code), int(n)) for code, n in data.items() if isinstance(n, int) and n) \
        if isinstance(data, dict) else []
    return raised, failed


def latest_scans(session: Session, limit: int = 10) -> list[AnomalyScan]:
    return list(session.scalars(select(AnomalyScan).order_by(AnomalyScan.started_at.desc(), AnomalyScan.id.desc())
                                .limit(limit)))


def request_scan(session: Session, actor: Any, days: int = PAGE_SCAN_DAYS) -> Job:
    """The quality manager asks for a scan of the last `days` from the rules page: a job, run
    after the commit (on the app's threads or `lims worker`)."""
    ensure(session, actor, Permission.ANOMALY_RULES)
    job = enqueue(session, SCAN_JOB, "anomaly_scan", "page", {"days": days}, actor)
    audit.append(session, actor, "oversight.scan_requested", "anomaly_scan", "page", None,
                 {"job_id": job.id, "days": days})
    return job


@handler(SCAN_JOB)
def run_scan_job(db: Database, settings: Any, job_id: int) -> None:
    """The scan in one transaction. Progress is reported before it starts only: on SQLite the
    scan holds the write lock, and a progress update in a transaction of its own would wait on it."""
    from app.people.models import User

    report_progress(db, job_id, 10, "scanning")
    with db.transaction() as session:
        job = session.get(Job, job_id)
        days = int(job.data.get("days", PAGE_SCAN_DAYS))
        actor = session.get(User, job.created_by_id) if job.created_by_id else None
        now = utcnow()
        scan(session, actor, ScanWindow(until=now, since=now - timedelta(days=days)), trigger="page")


# ---------------------------------------------------------------- dispositions

ALLOWED_FROM = {
    AlarmState.INVESTIGATING.value: (AlarmState.OPEN.value,),
    AlarmState.DISMISSED.value: OPEN_STATES,
    AlarmState.CONFIRMED.value: OPEN_STATES,
}
ACTIONS = tuple(a.value for a in ConfirmedAction)


def get_alarm(session: Session, alarm_no: str) -> AnomalyAlarm:
    alarm = session.scalars(select(AnomalyAlarm).where(AnomalyAlarm.alarm_no == (alarm_no or "").strip()[:20])).first()
    if alarm is None:
        raise errors.AlarmNotFound(alarm_no=(alarm_no or "")[:20])
    return alarm


def _own_data(session: Session, actor: Any, alarm: AnomalyAlarm) -> bool:
    """The actor is the one the alarm names, or entered a result of its samples or its batch."""
    if alarm.responsible_user_id is not None and alarm.responsible_user_id == actor.id:
        return True
    from app.analysis.models import AnalysisResult

    touched = AnalysisResult.sample_id.in_(select(AlarmSample.sample_id).where(AlarmSample.alarm_id == alarm.id))
    where = or_(touched, AnalysisResult.batch_id == alarm.batch_id) if alarm.batch_id else touched
    return bool(session.scalar(select(exists().where(AnalysisResult.entered_by_id == actor.id, where))))


def _dispose(session: Session, actor: Any, alarm: AnomalyAlarm, to: str, reason: str,
             actions: Sequence[str] = ()) -> AnomalyAlarm:
    ensure(session, actor, Permission.ALARMS_DISPOSE)
    alarm = session.execute(select(AnomalyAlarm).where(AnomalyAlarm.id == alarm.id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one()
    if alarm.state in CLOSED_STATES:
        raise errors.AlarmClosed(alarm_no=alarm.alarm_no, state=alarm.state)
    if alarm.state not in ALLOWED_FROM[to]:
        raise errors.AlarmTransitionRefused(alarm_no=alarm.alarm_no, from_state=alarm.state, to_state=to)
    text = (reason or "").strip()
    if len(text) > MAX_REASON:
        raise errors.ReasonTooLong(maximum=MAX_REASON)
    if not text:
        attempt = {"alarm_no": alarm.alarm_no, "from": alarm.state, "to": to, "actions": [str(a)[:40] for a in actions]}
        raise errors.DispositionNeedsReason(record=lambda s: audit.append(
            s, actor, "oversight.disposition_refused", "anomaly_alarm", alarm.id, None,
            {**attempt, "refusal": errors.DispositionNeedsReason.code}))
    chosen: list[str] = []
    if to == AlarmState.CONFIRMED.value:
        for action in actions:
            if action not in ACTIONS:
                raise errors.UnknownAction(action=str(action)[:40])
            if action not in chosen:
                chosen.append(action)
        if not chosen:
            raise errors.ConfirmationNeedsAction()
    if _own_data(session, actor, alarm):
        raise errors.OwnDataAlarm(alarm_no=alarm.alarm_no)
    before = alarm.state
    step = AlarmDisposition(alarm_id=alarm.id, from_state=before, to_state=to, reason=text,
                            actions=canonical_json(chosen), acted_at=utcnow(), actor_id=actor.id)
    session.add(step)
    alarm.state = to
    session.flush()
    audit.append(session, actor, f"oversight.alarm_{to}", "anomaly_alarm", alarm.id, {"state": before},
                 {"alarm_no": alarm.alarm_no, "rule": alarm.rule_code, "state": to, "reason": text,
                  "actions": chosen, "disposition_id": step.id})
    return alarm


def investigate_alarm(session: Session, actor: Any, alarm: AnomalyAlarm, reason: str) -> AnomalyAlarm:
    """open → investigating: the QM looks into it (the alarm keeps blocking issue)."""
    return _dispose(session, actor, alarm, AlarmState.INVESTIGATING.value, reason)


def dismiss_alarm(session: Session, actor: Any, alarm: AnomalyAlarm, reason: str) -> AnomalyAlarm:
    """open/investigating → dismissed, with the reason it is not a problem."""
    return _dispose(session, actor, alarm, AlarmState.DISMISSED.value, reason)


def confirm_alarm(session: Session, actor: Any, alarm: AnomalyAlarm, reason: str,
                  actions: list[str]) -> AnomalyAlarm:
    """open/investigating → confirmed, with the actions taken (at least one)."""
    return _dispose(session, actor, alarm, AlarmState.CONFIRMED.value, reason, actions)


def dispose_alarm(session: Session, actor: Any, alarm: AnomalyAlarm, to: str, reason: str,
                  actions: Sequence[str] = ()) -> AnomalyAlarm:
    """One entry for the routes: the disposition named by `to`."""
    if to == AlarmState.INVESTIGATING.value:
        return investigate_alarm(session, actor, alarm, reason)
    if to == AlarmState.DISMISSED.value:
        return dismiss_alarm(session, actor, alarm, reason)
    if to == AlarmState.CONFIRMED.value:
        return confirm_alarm(session, actor, alarm, reason, list(actions))
    raise errors.UnknownDisposition(to=str(to)[:20])


# ---------------------------------------------------------------- reading alarms


@dataclass(frozen=True)
class AlarmFilter:
    state: str = ""
    rule: str = ""
    analyst_id: int | None = None
    parameter: str = ""


def alarm_query(filters: AlarmFilter) -> Any:
    stmt = select(AnomalyAlarm)
    if filters.state == "active":
        stmt = stmt.where(AnomalyAlarm.state.in_(OPEN_STATES))
    elif filters.state:
        stmt = stmt.where(AnomalyAlarm.state == filters.state)
    if filters.rule:
        stmt = stmt.where(AnomalyAlarm.rule_code == filters.rule)
    if filters.analyst_id:
        stmt = stmt.where(AnomalyAlarm.responsible_user_id == filters.analyst_id)
    if filters.parameter:
        stmt = stmt.where(AnomalyAlarm.parameter == filters.parameter)
    return stmt.order_by(AnomalyAlarm.raised_at.desc(), AnomalyAlarm.id.desc())


@dataclass(frozen=True)
class AlarmRow:
    alarm: AnomalyAlarm
    responsible: Any | None  # User


def list_alarms(session: Session, filters: AlarmFilter, page: int, size: int) -> tuple[list[AlarmRow], int]:
    """A page of alarms with the people they name: one query for the count, one for the rows."""
    from app.people.models import User

    page = max(1, page)
    base = alarm_query(filters)
    total = session.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    rows = session.execute(base.add_columns(User).outerjoin(User, User.id == AnomalyAlarm.responsible_user_id)
                           .limit(size).offset((page - 1) * size)).all()
    return [AlarmRow(alarm, person) for alarm, person in rows], total


@dataclass(frozen=True)
class AlarmDetail:
    alarm: AnomalyAlarm
    rule: AnomalyRule | None
    evidence: dict[str, Any]
    samples: list[tuple[int, str]]  # (id, sample_no)
    batch_no: str | None
    site_code: str | None
    responsible: Any | None
    dispositions: list[tuple[AlarmDisposition, Any]]  # (step, actor)


def alarm_detail(session: Session, alarm_no: str) -> AlarmDetail:
    """Everything the alarm page shows, in a fixed number of queries."""
    from app.analysis.models import AnalysisBatch
    from app.people.models import User
    from app.samples.models import Sample
    from app.sites.models import Site

    row = session.execute(
        select(AnomalyAlarm, User, AnalysisBatch.batch_no, Site.code)
        .outerjoin(User, User.id == AnomalyAlarm.responsible_user_id)
        .outerjoin(AnalysisBatch, AnalysisBatch.id == AnomalyAlarm.batch_id)
        .outerjoin(Site, Site.id == AnomalyAlarm.site_id)
        .where(AnomalyAlarm.alarm_no == (alarm_no or "").strip()[:20])).first()
    if row is None:
        raise errors.AlarmNotFound(alarm_no=(alarm_no or "")[:20])
    alarm, responsible, batch_no, site_code = row
    samples = [(i, no) for i, no in session.execute(
        select(Sample.id, Sample.sample_no).join(AlarmSample, AlarmSample.sample_id == Sample.id)
        .where(AlarmSample.alarm_id == alarm.id).order_by(Sample.sample_no))]
    steps = [(d, u) for d, u in session.execute(
        select(AlarmDisposition, User).join(User, User.id == AlarmDisposition.actor_id)
        .where(AlarmDisposition.alarm_id == alarm.id).order_by(AlarmDisposition.id))]
    return AlarmDetail(alarm, rule_by_code(alarm.rule_code), json.loads(alarm.evidence or "{}"), samples,
                       batch_no, site_code, responsible, steps)


def count_active_alarms(session: Session, user: Any = None) -> int:
    return session.scalar(select(func.count()).select_from(AnomalyAlarm)
                          .where(AnomalyAlarm.state.in_(OPEN_STATES))) or 0


def alarms_of_sample(session: Session, sample_id: int) -> list[AnomalyAlarm]:
    return list(session.scalars(select(AnomalyAlarm).join(AlarmSample, AlarmSample.alarm_id == AnomalyAlarm.id)
                                .where(AlarmSample.sample_id == sample_id)
                                .order_by(AnomalyAlarm.raised_at.desc(), AnomalyAlarm.id.desc()).limit(100)))


def not_found(alarm_no: str) -> NotFound:
    return errors.AlarmNotFound(alarm_no=alarm_no[:20])


# ---------------------------------------------------------------- the review checklist


def alarm_checklist(session: Session, report: Any, content: Any) -> list[Any]:
    """"Open anomaly alarms" of the report's samples. An open (or investigating) alarm of a blocking
    rule must be disposed of before issue (DOMAIN.md §7): it fails the checklist at approval (签发)
    and warns, saying so, at check and review, so 校核 and 审核 go on while the quality manager
    investigates. Non-blocking open alarms and confirmed ones (with what was done) warn; dismissed
    ones are listed with their reason. Two queries, whatever the number of samples."""
    from app.reports.checklist import FAIL, OK, WARN, item
    from app.reports.models import ReportSample
    from app.samples.models import Sample

    rows = session.execute(
        select(AnomalyAlarm, Sample.sample_no)
        .join(AlarmSample, AlarmSample.alarm_id == AnomalyAlarm.id)
        .join(ReportSample, ReportSample.sample_id == AlarmSample.sample_id)
        .join(Sample, Sample.id == AlarmSample.sample_id)
        .where(ReportSample.report_id == report.id)
        .order_by(AnomalyAlarm.alarm_no, Sample.sample_no)).all()
    alarms: dict[int, AnomalyAlarm] = {}
    samples: dict[int, list[str]] = {}
    for alarm, sample_no in rows:
        alarms.setdefault(alarm.id, alarm)
        samples.setdefault(alarm.id, []).append(sample_no)
    closed = [a.id for a in alarms.values() if a.state in CLOSED_STATES]
    last_step: dict[int, AlarmDisposition] = {}
    if closed:
        for step in session.scalars(select(AlarmDisposition).where(AlarmDisposition.alarm_id.in_(closed))
                                    .order_by(AlarmDisposition.id)):
            last_step[step.alarm_id] = step
    fails, warns, notes = [], [], []
    for alarm in alarms.values():
        rule = rule_by_code(alarm.rule_code)
        where = "、".join(samples[alarm.id])
        head_zh = f"{alarm.alarm_no} {alarm.rule_code} {alarm.summary_zh}（{where}）"
        head_en = f"{alarm.alarm_no} {alarm.rule_code} {alarm.summary_en} ({', '.join(samples[alarm.id])})"
        step = last_step.get(alarm.id)
        if alarm.state in OPEN_STATES:
            state_zh = "待处置" if alarm.state == AlarmState.OPEN.value else "调查中"
            line = (f"{head_zh}：{state_zh}", f"{head_en}: {alarm.state}")
            (fails if rule is None or rule.blocks_issue else warns).append(line)
        elif alarm.state == AlarmState.CONFIRMED.value:
            actions = ", ".join(json.loads(step.actions)) if step else ""
            reason = step.reason if step else ""
            warns.append((f"{head_zh}：已确认（措施：{actions}；{reason}）",
                          f"{head_en}: confirmed (actions: {actions}; {reason})"))
        else:
            reason = step.reason if step else ""
            notes.append((f"{head_zh}：已排除（{reason}）", f"{head_en}: dismissed ({reason})"))
    from app.reports.models import ReportState

    if fails and report.state not in (ReportState.REVIEWED.value, ReportState.APPROVED.value):
        warns = [(f"{zh}（签发前须处置）", f"{en} (to be disposed of before issue)") for zh, en in fails] + warns
        fails = []
    status = FAIL if fails else WARN if warns else OK
    return [item("alarms", status, fails + warns + notes, title="Open anomaly alarms", title_zh="无未处置的异常报警")]


def _register_checklist() -> None:
    from app.reports.checklist import add_checklist_source

    add_checklist_source(alarm_checklist)


_register_checklist()
