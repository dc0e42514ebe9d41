"""The quality manager's dashboard (issue 10 item 5): what needs the quality manager's eye in one
place (open alarms by rule and by analyst, interference records by state, overdue instruments,
expiring materials, inspection findings awaiting the lab's answer) and monthly trends.

The page reads in a fixed number of queries however busy the lab is: every count is grouped in
SQL, every trend series is one grouped query. Months are the lab's calendar months (its time
zone, from the session's calendar): each month's start is computed in Python as a UTC instant
and the query buckets rows with a CASE over those bounds, which reads the same on SQLite and
PostgreSQL, follows daylight saving where a zone has it, and keeps the range condition indexable
(strftime/date_trunc would group by UTC months, or by a fixed offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.analysis.models import AnalysisBatch, AnalysisResult, QcEvaluation
from app.core.db import utcnow
from app.core.labtime import LabCalendar, lab_calendar
from app.core.permissions import Permission, ensure
from app.instruments import reminders as instrument_reminders
from app.instruments.models import InstrumentStatus
from app.oversight.interference import visible_clause
from app.oversight.models import (
    AlarmState,
    AnomalyAlarm,
    FindingResponse,
    Inspection,
    InspectionFinding,
    InspectionState,
    InterferenceRecord,
    InterferenceSupplement,
    SupplementKind,
)
from app.people.models import User
from app.reference_materials import reminders as material_reminders

OPEN_STATES = (AlarmState.OPEN.value, AlarmState.INVESTIGATING.value)
MONTHS = 12
SHOWN = 10  # rows of a list shown on the page; the card links to the full list


# ---------------------------------------------------------------- months in the lab's calendar


def month_starts(calendar: LabCalendar, now: datetime, months: int = MONTHS) -> list[datetime]:
    """months + 1 UTC instants: the start of each of the last `months` lab months (this one
    last), then the start of the next month."""
    today = calendar.local_date(now)
    year, month = today.year, today.month
    firsts: list[date] = []
    for back in range(months - 1, -2, -1):  # months-1 back … this month … next month
        y, m = divmod(year * 12 + (month - 1) - back, 12)
        firsts.append(date(y, m + 1, 1))
    return [calendar.start_of(day) for day in firsts]


def month_bucket(column: Any, bounds: list[datetime]) -> ColumnElement[int]:
    """0 … len(bounds)-2: which month `column` falls in (rows outside are filtered by the caller)."""
    return case(*[(column < bound, i) for i, bound in enumerate(bounds[1:-1])], else_=len(bounds) - 2)


def _monthly(session: Session, column: Any, bounds: list[datetime], *conditions: Any,
             extra: tuple[Any, ...] = (), join: tuple[Any, Any] | None = None) -> list[list[int]]:
    """One grouped query: per month, the row count and a sum for each `extra` 0/1 expression.
    Grouped over a subquery, so PostgreSQL sees one CASE (its bound values are not repeated)."""
    inner = select(month_bucket(column, bounds).label("month"),
                   *[e.label(f"x{i}") for i, e in enumerate(extra)])
    if join is not None:
        inner = inner.select_from(join[0]).join(*join[1])
    inner = inner.where(column >= bounds[0], column < bounds[-1], *conditions).subquery()
    stmt = select(inner.c.month, func.count(), *[func.sum(inner.c[f"x{i}"]) for i in range(len(extra))]) \
        .group_by(inner.c.month)
    series = [[0] * (len(bounds) - 1) for _ in range(1 + len(extra))]
    for row in session.execute(stmt):
        for i, value in enumerate(row[1:]):
            series[i][int(row[0])] = int(value or 0)
    return series


# ---------------------------------------------------------------- what the page shows


@dataclass(frozen=True)
class RuleCount:
    code: str
    title_zh: str
    title_en: str
    open: int
    investigating: int

    @property
    def total(self) -> int:
        return self.open + self.investigating


@dataclass(frozen=True)
class AnalystCount:
    user_id: int | None  # None: no responsible user
    username: str
    name: str
    count: int


@dataclass(frozen=True)
class InterferenceCounts:
    filed: int = 0
    acknowledged: int = 0
    reported: int = 0

    @property
    def total(self) -> int:
        return self.filed + self.acknowledged + self.reported


@dataclass(frozen=True)
class OpenInspection:
    inspection_no: str
    title: str
    drawn_at: datetime
    findings: int
    awaiting: int  # findings without a response


@dataclass(frozen=True)
class Series:
    key: str
    label: Any  # a lazy translation
    counts: list[int]


@dataclass(frozen=True)
class Trend:
    key: str
    title: Any
    series: list[Series]


@dataclass
class QualityDashboard:
    alarms_by_rule: list[RuleCount]
    alarms_by_analyst: list[AnalystCount]
    interference: InterferenceCounts
    instruments: list[instrument_reminders.ReminderLine]
    materials: material_reminders.MaterialReminders
    inspections: list[OpenInspection]
    months: list[date]  # the first lab day of each month of the trends
    trends: list[Trend] = field(default_factory=list)

    @property
    def open_alarms(self) -> int:
        return sum(r.total for r in self.alarms_by_rule)

    @property
    def instruments_overdue(self) -> int:
        return sum(1 for line in self.instruments if line.status is InstrumentStatus.OVERDUE)

    @property
    def instruments_due_soon(self) -> int:
        return sum(1 for line in self.instruments if line.status is InstrumentStatus.DUE_SOON)

    @property
    def findings_awaiting(self) -> int:
        return sum(i.awaiting for i in self.inspections)


def alarms_by_rule(session: Session) -> list[RuleCount]:
    """Open and investigating alarms per rule (one grouped query), titles from the rules."""
    from app.oversight.rules.base import rule_by_code

    counts: dict[str, dict[str, int]] = {}
    for code, state, n in session.execute(
        select(AnomalyAlarm.rule_code, AnomalyAlarm.state, func.count())
        .where(AnomalyAlarm.state.in_(OPEN_STATES)).group_by(AnomalyAlarm.rule_code, AnomalyAlarm.state)
    ):
        counts.setdefault(code, {})[state] = n
    rows = []
    for code in sorted(counts):
        rule = rule_by_code(code)
        rows.append(RuleCount(code, rule.title_zh if rule else code, rule.title_en if rule else code,
                              counts[code].get(AlarmState.OPEN.value, 0),
                              counts[code].get(AlarmState.INVESTIGATING.value, 0)))
    return rows


def alarms_by_analyst(session: Session) -> list[AnalystCount]:
    """Open and investigating alarms per responsible user, most first (one grouped query)."""
    rows = session.execute(
        select(AnomalyAlarm.responsible_user_id, User.username, User.display_name_zh, User.display_name_en,
               func.count())
        .outerjoin(User, User.id == AnomalyAlarm.responsible_user_id)
        .where(AnomalyAlarm.state.in_(OPEN_STATES))
        .group_by(AnomalyAlarm.responsible_user_id, User.username, User.display_name_zh, User.display_name_en)
    ).all()
    found = [AnalystCount(uid, username or "", (zh or "") + (f" ({en})" if en and en != zh else ""), n)
             for uid, username, zh, en, n in rows]
    return sorted(found, key=lambda a: (-a.count, a.user_id is None, a.username))


def interference_counts(session: Session, actor: User) -> InterferenceCounts:
    """Records by state, read from their supplements (reported > acknowledged > filed), in one
    query; only the records the reader may see (a record naming them as the interferer is not)."""
    level = func.max(case((InterferenceSupplement.kind == SupplementKind.REPORTED.value, 2),
                          (InterferenceSupplement.kind == SupplementKind.ACKNOWLEDGED.value, 1), else_=0))
    per_record = (
        select(InterferenceRecord.id, func.coalesce(level, 0).label("level"))
        .outerjoin(InterferenceSupplement, InterferenceSupplement.record_id == InterferenceRecord.id)
        .where(visible_clause(session, actor))
        .group_by(InterferenceRecord.id).subquery()
    )
    counts = dict(session.execute(select(per_record.c.level, func.count()).group_by(per_record.c.level)).all())
    return InterferenceCounts(counts.get(0, 0), counts.get(1, 0), counts.get(2, 0))


def open_inspections(session: Session) -> list[OpenInspection]:
    """Open inspections with their findings and how many await the lab's response (one query)."""
    answered = select(FindingResponse.id).where(FindingResponse.finding_id == InspectionFinding.id).exists()
    rows = session.execute(
        select(Inspection.inspection_no, Inspection.title, Inspection.drawn_at, func.count(InspectionFinding.id),
               func.coalesce(func.sum(case((and_(InspectionFinding.id.is_not(None), ~answered), 1), else_=0)), 0))
        .outerjoin(InspectionFinding, InspectionFinding.inspection_id == Inspection.id)
        .where(Inspection.state == InspectionState.OPEN.value)
        .group_by(Inspection.id, Inspection.inspection_no, Inspection.title, Inspection.drawn_at)
        .order_by(Inspection.drawn_at.desc()).limit(50)
    ).all()
    return [OpenInspection(no, title, drawn, int(findings), int(awaiting))
            for no, title, drawn, findings, awaiting in rows]


def trends(session: Session, actor: User, bounds: list[datetime]) -> list[Trend]:
    """Four monthly series, one grouped query each; interference records as the reader may see them."""
    from app.core.i18n import N_

    confirmed = case((AnomalyAlarm.state == AlarmState.CONFIRMED.value, 1), else_=0)
    alarms, alarms_confirmed = _monthly(session, AnomalyAlarm.raised_at, bounds, extra=(confirmed,))
    (interference,) = _monthly(session, InterferenceRecord.filed_at, bounds, visible_clause(session, actor))
    (qc_failures,) = _monthly(session, QcEvaluation.evaluated_at, bounds, QcEvaluation.passed.is_(False))
    (revised,) = _monthly(session, AnalysisResult.entered_at, bounds,
                          AnalysisBatch.submitted_at.is_not(None),
                          AnalysisResult.entered_at > AnalysisBatch.submitted_at,
                          join=(AnalysisResult, (AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)))
    return [
        Trend("alarms", N_("Alarms raised per month"),
              [Series("raised", N_("raised"), alarms), Series("confirmed", N_("confirmed"), alarms_confirmed)]),
        Trend("interference", N_("Interference records per month"),
              [Series("filed", N_("filed"), interference)]),
        Trend("qc_failures", N_("QC failures per month"), [Series("failed", N_("failed"), qc_failures)]),
        Trend("revised", N_("Results revised after submission per month"),
              [Series("revised", N_("revised"), revised)]),
    ]


def quality_dashboard(session: Session, actor: User, *, now: datetime | None = None) -> QualityDashboard:
    """Everything on the page, in a fixed number of queries."""
    ensure(session, actor, Permission.QUALITY_DASHBOARD)
    now = now or utcnow()
    calendar = lab_calendar(session)
    bounds = month_starts(calendar, now)
    return QualityDashboard(
        alarms_by_rule=alarms_by_rule(session),
        alarms_by_analyst=alarms_by_analyst(session),
        interference=interference_counts(session, actor),
        instruments=instrument_reminders.reminder_lines(session, now),
        materials=material_reminders.material_reminder_lines(session, now),
        inspections=open_inspections(session),
        months=[calendar.local_date(b) for b in bounds[:-1]],
        trends=trends(session, actor, bounds),
    )
