"""Anomaly alarms and rules (issue 10 items 2 and 6): pages and the JSON API over the same
services in app.oversight.anomalies.

Pages: `/oversight/alarms` (filters, paginated), `/oversight/alarms/{alarm_no}` (the evidence,
samples, batch, the disposition history and, for the quality manager, the three forms),
`/oversight/anomaly-rules` (thresholds with defaults, ranges and versions; the QM's form, and a
scan of the last 30 days as a job). API: `/api/v1/alarms` (list), `/api/v1/alarms/{alarm_no}`,
`POST /api/v1/alarms/{alarm_no}/disposition`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, PageSection, Worklist, add_nav, add_sample_section, add_worklist
from app.core.web import Page, attempt, pager_base, render, see_other
from app.oversight import anomalies
from app.oversight.anomalies import AlarmFilter
from app.oversight.models import AlarmState, AnomalyAlarm, ConfirmedAction
from app.oversight.rules.base import all_rules
from app.people.models import User

router = APIRouter()

BASE = "/oversight/alarms"
RULES = "/oversight/anomaly-rules"
API = "/api/v1/alarms"
AlarmNo = Annotated[str, Path(max_length=20)]
RuleCode = Annotated[str, Path(max_length=8)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
STATE_PATTERN = f"^(active|{'|'.join(s.value for s in AlarmState)})?$"
RULE_PATTERN = r"^([A-Z][0-9]{2})?$"
MAX_API_PAGE = 200

STATE_NAMES = {"active": N_("open or under investigation"), "open": N_("open"),
               "investigating": N_("under investigation"), "dismissed": N_("dismissed"), "confirmed": N_("confirmed")}
TRIGGER_NAMES = {"cli": N_("command line"), "schedule": N_("scheduled"), "submission": N_("batch signed"),
                 "page": N_("requested on this page")}
ACTION_NAMES = {"data_corrected": N_("data corrected"), "reanalysed": N_("reanalysed"),
                "report_amended": N_("report amended"), "referred": N_("referred")}


def _show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
          block: str | None = None) -> Response:
    permissions = getattr(request.state, "permissions", frozenset())
    full = {"state_names": STATE_NAMES, "action_names": ACTION_NAMES, "actions": [a.value for a in ConfirmedAction],
            "can_dispose": Permission.ALARMS_DISPOSE in permissions,
            "can_set_rules": Permission.ANOMALY_RULES in permissions, **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


def _people(session: Session) -> list[tuple[int, str]]:
    """Whose data alarms name (the analyst filter), in one query."""
    rows = session.execute(select(User.id, User.display_name_zh, User.display_name_en).where(
        User.id.in_(select(AnomalyAlarm.responsible_user_id).distinct())).order_by(User.username))
    return [(i, zh if current_language().startswith("zh") or not en else en) for i, zh, en in rows]


@router.get(BASE, include_in_schema=False)
def alarm_list(request: Request, session: DbSession, state: Annotated[str, Query(pattern=STATE_PATTERN)] = "active",
               rule: Annotated[str, Query(pattern=RULE_PATTERN)] = "",
               analyst: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               parameter: Annotated[str, Query(max_length=60)] = "", page: PageNo = 1,
               user: User = require(Permission.ALARMS_READ)):
    """Alarms, newest first; by default those still open or under investigation."""
    size = request.app.state.settings.page_size
    filters = AlarmFilter(state, rule, analyst, parameter.strip())
    rows, total = anomalies.list_alarms(session, filters, page, size)
    params = {"state": state, "rule": rule, "analyst": analyst or "", "parameter": filters.parameter}
    return _show(request, "oversight/alarm_list.html", {
        "page": Page(rows, page, size, total), "filters": params, "pager_base": pager_base(BASE, params),
        "rules": [(r.code, r.title_zh, r.title_en) for r in all_rules()], "people": _people(session),
        "states": list(STATE_NAMES)}, block="results")


# ---------------------------------------------------------------- one alarm


def _detail_page(request: Request, session: Session, alarm_no: str, *, error: DomainError | None = None,
                 form: dict[str, Any] | None = None) -> Response:
    detail = anomalies.alarm_detail(session, alarm_no)
    return _show(request, "oversight/alarm_detail.html", {
        "d": detail, "evidence_rows": _evidence_rows(detail.evidence, request.app.state.settings.tz),
        "form": form or {},
        "steps": [(s, u, json.loads(s.actions or "[]")) for s, u in detail.dispositions],
        "open": detail.alarm.state in anomalies.OPEN_STATES}, error=error)


@dataclass(frozen=True)
class EvidenceRow:
    """One line of an alarm's evidence: a text, or a small table when the value is a list of
    records (the values a rule compared, one row each) or a mapping (thresholds)."""

    name: str
    text: str = ""
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


ISO_MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)$")


def _cell(value: Any, tz: Any) -> str:
    """A value as read: moments (stored in UTC) in the lab's time zone, the rest as compact JSON."""
    if isinstance(value, str) and ISO_MOMENT.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _evidence_rows(evidence: dict[str, Any], tz: Any) -> list[EvidenceRow]:
    def _cell_of(value: Any) -> str:
        return _cell(value, tz)

    rows = []
    for name in sorted(evidence):
        value = evidence[name]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = tuple(dict.fromkeys(k for v in value for k in v))
            rows.append(EvidenceRow(name, columns=columns,
                                    rows=tuple(tuple(_cell_of(v.get(c, "")) for c in columns) for v in value)))
        elif isinstance(value, dict) and value:
            columns = tuple(value)
            rows.append(EvidenceRow(name, columns=columns, rows=(tuple(_cell_of(value[c]) for c in columns),)))
        else:
            rows.append(EvidenceRow(name, _cell_of(value)))
    return rows


@router.get(f"{BASE}/{{alarm_no}}", include_in_schema=False)
def alarm_page(request: Request, session: DbSession, alarm_no: AlarmNo, user: User = require(Permission.ALARMS_READ)):
    return _detail_page(request, session, alarm_no)


def _dispose_form(request: Request, session: Session, user: User, alarm_no: str, to: str, reason: str,
                  actions: list[str]) -> Response:
    def act() -> Any:
        return anomalies.dispose_alarm(session, user, anomalies.get_alarm(session, alarm_no), to, reason, actions)

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _detail_page(request, session, alarm_no, error=error,
                            form={"to": to, "reason": reason, "actions": actions})
    return see_other(request, f"{BASE}/{alarm_no}")


Reason = Annotated[str, Form(max_length=4000)]


@router.post(f"{BASE}/{{alarm_no}}/investigate", include_in_schema=False)
def investigate(request: Request, session: DbSession, alarm_no: AlarmNo, reason: Reason = "",
                user: User = require(Permission.ALARMS_DISPOSE)):
    return _dispose_form(request, session, user, alarm_no, AlarmState.INVESTIGATING.value, reason, [])


@router.post(f"{BASE}/{{alarm_no}}/dismiss", include_in_schema=False)
def dismiss(request: Request, session: DbSession, alarm_no: AlarmNo, reason: Reason = "",
            user: User = require(Permission.ALARMS_DISPOSE)):
    return _dispose_form(request, session, user, alarm_no, AlarmState.DISMISSED.value, reason, [])


@router.post(f"{BASE}/{{alarm_no}}/confirm", include_in_schema=False)
def confirm(request: Request, session: DbSession, alarm_no: AlarmNo, reason: Reason = "",
            actions: Annotated[list[str], Form(max_length=10)] = [],  # noqa: B006
            user: User = require(Permission.ALARMS_DISPOSE)):
    return _dispose_form(request, session, user, alarm_no, AlarmState.CONFIRMED.value, reason, list(actions))


# ---------------------------------------------------------------- rules


def _rules_page(request: Request, session: Session, *, error: DomainError | None = None,
                form: dict[str, Any] | None = None) -> Response:
    rules = all_rules()
    settings = anomalies.rule_settings(session)
    histories = anomalies.settings_histories(session, [r.code for r in rules])
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(
        {row.set_by_id for rows in histories.values() for row in rows} or {0})))}
    return _show(request, "oversight/anomaly_rules.html", {
        "rules": rules, "settings": settings, "histories": histories, "people": people,
        "scans": anomalies.latest_scans(session), "scan_counts": anomalies.scan_counts,
        "trigger_names": TRIGGER_NAMES, "form": form or {}},
                 error=error)


@router.get(RULES, include_in_schema=False)
def rules_page(request: Request, session: DbSession, user: User = require(Permission.ALARMS_READ)):
    return _rules_page(request, session)


@router.post(f"{RULES}/scan", include_in_schema=False)
def request_scan(request: Request, session: DbSession, user: User = require(Permission.ANOMALY_RULES)):
    """Scan the last 30 days in the background (a job); the latest scans are listed on the page."""
    _, error = attempt(session, lambda: anomalies.request_scan(session, user))
    if error is not None:
        return _rules_page(request, session, error=error)
    return see_other(request, f"{RULES}#scans")


@router.post(f"{RULES}/{{code}}", include_in_schema=False)
def set_rule(request: Request, session: DbSession, code: RuleCode,
             name: Annotated[list[str], Form(max_length=30)] = [],  # noqa: B006
             value: Annotated[list[str], Form(max_length=30)] = [],  # noqa: B006
             enabled: Annotated[str, Form(max_length=5)] = "", reason: Reason = "",
             based_on: Annotated[int | None, Form(ge=0, le=1_000_000)] = None,
             user: User = require(Permission.ANOMALY_RULES)):
    """The QM's form: one (name, value) pair per threshold, the switch and a reason."""
    thresholds = {n[:60]: v[:40] for n, v in zip(name, value, strict=False) if v.strip()}
    _, error = attempt(session, lambda: anomalies.set_rule_settings(
        session, user, code, enabled=enabled in ("on", "true", "1"), thresholds=thresholds, reason=reason,
        based_on=based_on))
    if error is not None:
        session.expire_all()
        return _rules_page(request, session, error=error, form={"code": code, "thresholds": thresholds,
                                                                "reason": reason})
    return see_other(request, f"{RULES}#rule-{code}")


# ---------------------------------------------------------------- JSON API


class AlarmOut(BaseModel):
    alarm_no: str
    rule: str
    rule_version: int
    state: str
    summary_zh: str
    summary_en: str
    parameter: str
    responsible: str | None
    occurred_at: datetime | None
    raised_at: datetime


class AlarmPageOut(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    next_page: int | None
    items: list[AlarmOut]


class DispositionOut(BaseModel):
    from_state: str
    to_state: str
    reason: str
    actions: list[str]
    acted_at: datetime
    actor: str


class AlarmDetailOut(AlarmOut):
    rule_title_zh: str
    rule_title_en: str
    blocks_issue: bool
    evidence: dict[str, Any]
    samples: list[str]
    batch_no: str | None
    site: str | None
    dispositions: list[DispositionOut]


class DispositionIn(BaseModel):
    to: str = Field(max_length=20)
    reason: str = Field(default="", max_length=4000)
    actions: list[str] = Field(default_factory=list, max_length=10)


def _alarm_json(alarm: AnomalyAlarm, person: Any) -> AlarmOut:
    return AlarmOut(alarm_no=alarm.alarm_no, rule=alarm.rule_code, rule_version=alarm.rule_version, state=alarm.state,
                    summary_zh=alarm.summary_zh, summary_en=alarm.summary_en, parameter=alarm.parameter,
                    responsible=person.username if person else None, occurred_at=alarm.occurred_at,
                    raised_at=alarm.raised_at)


def _detail_json(d: anomalies.AlarmDetail) -> AlarmDetailOut:
    base = _alarm_json(d.alarm, d.responsible).model_dump()
    return AlarmDetailOut(
        **base, rule_title_zh=d.rule.title_zh if d.rule else "", rule_title_en=d.rule.title_en if d.rule else "",
        blocks_issue=d.rule.blocks_issue if d.rule else True, evidence=d.evidence, samples=[no for _, no in d.samples],
        batch_no=d.batch_no, site=d.site_code,
        dispositions=[DispositionOut(from_state=s.from_state, to_state=s.to_state, reason=s.reason,
                                     actions=json.loads(s.actions or "[]"), acted_at=s.acted_at, actor=u.username)
                      for s, u in d.dispositions])


@router.get(API, response_model=AlarmPageOut, tags=["oversight"])
def api_alarms(session: DbSession, state: Annotated[str, Query(pattern=STATE_PATTERN)] = "",
               rule: Annotated[str, Query(pattern=RULE_PATTERN)] = "",
               analyst: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               parameter: Annotated[str, Query(max_length=60)] = "", page: PageNo = 1,
               per_page: Annotated[int, Query(ge=1, le=MAX_API_PAGE)] = 50,
               user: User = require(Permission.ALARMS_READ)) -> AlarmPageOut:
    """Alarms, newest first (state `active`: open or under investigation)."""
    rows, total = anomalies.list_alarms(session, AlarmFilter(state, rule, analyst, parameter.strip()), page, per_page)
    pages = max(1, -(-total // per_page))
    return AlarmPageOut(page=page, per_page=per_page, total=total, pages=pages,
                        next_page=page + 1 if page < pages else None,
                        items=[_alarm_json(r.alarm, r.responsible) for r in rows])


@router.get(f"{API}/{{alarm_no}}", response_model=AlarmDetailOut, tags=["oversight"])
def api_alarm(session: DbSession, alarm_no: AlarmNo, user: User = require(Permission.ALARMS_READ)) -> AlarmDetailOut:
    return _detail_json(anomalies.alarm_detail(session, alarm_no))


@router.post(f"{API}/{{alarm_no}}/disposition", response_model=AlarmDetailOut, tags=["oversight"])
def api_dispose(session: DbSession, alarm_no: AlarmNo, body: DispositionIn,
                user: User = require(Permission.ALARMS_DISPOSE)) -> AlarmDetailOut:
    """Move the alarm: investigating, dismissed (reason) or confirmed (reason and actions)."""
    with committing(session):
        anomalies.dispose_alarm(session, user, anomalies.get_alarm(session, alarm_no), body.to, body.reason,
                                body.actions)
    return _detail_json(anomalies.alarm_detail(session, alarm_no))


# ---------------------------------------------------------------- the shell


def alarm_sample_section(session: Session, sample: Any) -> Any:
    """The alarms touching a sample (one query), or None when there are none; built only for
    readers who hold ALARMS_READ."""
    alarms = anomalies.alarms_of_sample(session, sample.id)
    return {"alarms": alarms} if alarms else None


add_nav(NavItem("alarms", N_("Alarms"), BASE, Permission.ALARMS_READ, 72))
add_worklist(Worklist("alarms", N_("Open alarms"), Permission.ALARMS_DISPOSE, f"{BASE}?state=active",
                      anomalies.count_active_alarms, 40))
add_sample_section(PageSection("alarms", "oversight/alarm_sample_section.html", alarm_sample_section, 80,
                               Permission.ALARMS_READ))
