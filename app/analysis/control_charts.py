"""Shewhart control charts (质控图) per method, parameter and QC kind, with Westgard flags.

A chart's points are the QC evaluations of batches the analyst has signed (submitted or closed),
from the latest evaluation run of each batch (a re-evaluation replaces the earlier run's
numbers), across the method's versions: a new version of the same standard does not restart the
lab's history. The limits come from a baseline chosen by a QC-rules holder: at least 20 points,
centre = their mean, s = their sample standard deviation; a newer baseline replaces the older
one (both kept, ControlBaseline is append-only). Flags are computed on the points shown, in run
order (time of evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from app.analysis import curve_errors as errors
from app.analysis import numbers
from app.analysis.models import AnalysisBatch, BatchState, ControlBaseline, Method, QcEvaluation, QcKind
from app.analysis.westgard import westgard_flags
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.people.models import User

MIN_BASELINE_POINTS = 20
MAX_CHART_POINTS = 2000  # a chart page draws at most this many (the newest), whatever the window
CHARTED_STATES = (BatchState.SUBMITTED.value, BatchState.CLOSED.value)
KINDS = tuple(k.value for k in QcKind)


@dataclass(frozen=True)
class ChartPoint:
    evaluation_id: int
    value: Decimal
    evaluated_at: datetime
    batch_no: str
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Limits:
    centre: Decimal
    sd: Decimal

    @property
    def low_2s(self) -> Decimal:
        return self.centre - 2 * self.sd

    @property
    def high_2s(self) -> Decimal:
        return self.centre + 2 * self.sd

    @property
    def low_3s(self) -> Decimal:
        return self.centre - 3 * self.sd

    @property
    def high_3s(self) -> Decimal:
        return self.centre + 3 * self.sd


@dataclass(frozen=True)
class Chart:
    method: Method
    parameter: str
    kind: str
    points: list[ChartPoint]
    baseline: ControlBaseline | None
    limits: Limits | None
    truncated: bool = False  # more points than MAX_CHART_POINTS matched; the newest are shown

    @property
    def flagged(self) -> list[tuple[int, ChartPoint]]:
        return [(i + 1, p) for i, p in enumerate(self.points) if p.flags]


def chart_href(method_code: str, parameter: str, kind: str) -> str:
    """The chart's address: the method code keeps its slash (HJ/T 91-2002), spaces encoded."""
    return f"/charts/{quote(method_code, safe='/')}/{quote(parameter, safe='')}/{quote(kind, safe='')}"


def clean_kind(kind: str) -> str:
    cleaned = (kind or "").strip().lower()
    if cleaned not in KINDS:
        raise errors.ChartKindUnknown(kind=cleaned[:20] or "—")
    return cleaned


def _latest_runs() -> Any:
    return (select(QcEvaluation.batch_id, func.max(QcEvaluation.run).label("run"))
            .group_by(QcEvaluation.batch_id).subquery("latest_run"))


def _points_query(method_id: int, parameter: str, kind: str) -> Select:
    """The chart's points: evaluations with a value, of signed batches, from their latest run."""
    latest = _latest_runs()
    return (select(QcEvaluation.id, QcEvaluation.value, QcEvaluation.evaluated_at, AnalysisBatch.batch_no)
            .join(AnalysisBatch, AnalysisBatch.id == QcEvaluation.batch_id)
            .join(latest, (latest.c.batch_id == QcEvaluation.batch_id) & (latest.c.run == QcEvaluation.run))
            .where(QcEvaluation.method_id == method_id, QcEvaluation.parameter == parameter,
                   QcEvaluation.kind == kind, QcEvaluation.value.is_not(None),
                   AnalysisBatch.state.in_(CHARTED_STATES)))


def current_baseline(session: Session, method_id: int, parameter: str, kind: str) -> ControlBaseline | None:
    return session.scalars(
        select(ControlBaseline).where(ControlBaseline.method_id == method_id, ControlBaseline.parameter == parameter,
                                      ControlBaseline.kind == kind)
        .order_by(ControlBaseline.set_at.desc(), ControlBaseline.id.desc()).limit(1)).first()


def chart(session: Session, method_id: int, parameter: str, kind: str, since: datetime | None = None,
          until: datetime | None = None) -> Chart:
    """The chart between `since` and `until` (evaluation times), in three queries whatever the
    number of points."""
    kind = clean_kind(kind)
    method = session.get(Method, method_id)
    query = _points_query(method_id, parameter, kind)
    if since is not None:
        query = query.where(QcEvaluation.evaluated_at >= since)
    if until is not None:
        query = query.where(QcEvaluation.evaluated_at <= until)
    rows = session.execute(query.order_by(QcEvaluation.evaluated_at.desc(), QcEvaluation.id.desc())
                           .limit(MAX_CHART_POINTS + 1)).all()
    truncated = len(rows) > MAX_CHART_POINTS
    rows = list(reversed(rows[:MAX_CHART_POINTS]))
    baseline = current_baseline(session, method_id, parameter, kind)
    limits = Limits(baseline.centre, baseline.std_dev) if baseline is not None and baseline.std_dev > 0 else None
    flags: list[frozenset[str]] = [frozenset()] * len(rows)
    if limits is not None:
        flags = westgard_flags([r.value for r in rows], limits.centre, limits.sd)
    points = [ChartPoint(r.id, r.value, r.evaluated_at, r.batch_no, f) for r, f in zip(rows, flags, strict=True)]
    return Chart(method, parameter, kind, points, baseline, limits, truncated)


def chart_svg(chart: Chart, *, y_label: str = "", title: str = "") -> Markup:
    """The chart as SVG for pages and PDFs (svg_plot draws it)."""
    from app.analysis import svg_plot

    return svg_plot.chart_svg(chart, y_label=y_label, title=title)


def _chosen_points(session: Session, method: Method, parameter: str, kind: str,
                   evaluation_ids: Sequence[int]) -> list[Any]:
    wanted = sorted({int(i) for i in evaluation_ids})
    if len(wanted) < MIN_BASELINE_POINTS:
        raise errors.BaselineTooFewPoints(minimum=MIN_BASELINE_POINTS, count=len(wanted))
    rows = session.execute(_points_query(method.id, parameter, kind).where(QcEvaluation.id.in_(wanted))
                           .order_by(QcEvaluation.evaluated_at, QcEvaluation.id)).all()
    missing = sorted(set(wanted) - {r.id for r in rows})
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise errors.BaselinePointNotInChart(ids=shown, method=method.code, parameter=parameter, kind=kind)
    return rows


def set_baseline(session: Session, actor: User, method: Method, parameter: str, kind: str,
                 evaluation_ids: Sequence[int]) -> ControlBaseline:
    """A new baseline from ≥ 20 chosen points of the chart: centre = mean, s = sample SD."""
    ensure(session, actor, Permission.QC_RULES)
    kind = clean_kind(kind)
    rows = _chosen_points(session, method, parameter, kind, evaluation_ids)
    values = [r.value for r in rows]
    sd = numbers.std_dev(values)
    if sd == 0:
        raise errors.BaselineNoSpread()
    baseline = ControlBaseline(
        method_id=method.id, parameter=parameter, kind=kind, centre=numbers.mean(values), std_dev=sd, n=len(rows),
        first_at=rows[0].evaluated_at, last_at=rows[-1].evaluated_at,
        evaluation_ids=canonical_json([r.id for r in rows]), set_at=utcnow(), set_by_id=actor.id)
    session.add(baseline)
    session.flush()
    audit.append(session, actor, "control_chart.baseline_set", "control_baseline", baseline.id, None, {
        "method": method.code, "parameter": parameter, "kind": kind, "centre": baseline.centre,
        "std_dev": baseline.std_dev, "n": baseline.n, "first_at": baseline.first_at, "last_at": baseline.last_at,
        "evaluation_ids": [r.id for r in rows]})
    return baseline


def set_baseline_from(session: Session, actor: User, method: Method, parameter: str, kind: str, *,
                      first: int | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> ControlBaseline:
    """A baseline from the chart's first `first` points, or from its points between two times
    (what the chart page offers)."""
    ensure(session, actor, Permission.QC_RULES)
    kind = clean_kind(kind)
    if first is None and since is None and until is None:
        raise errors.BaselineChoiceInvalid(minimum=MIN_BASELINE_POINTS, detail="")
    query = _points_query(method.id, parameter, kind)
    if first is None:
        if since is not None:
            query = query.where(QcEvaluation.evaluated_at >= since)
        if until is not None:
            query = query.where(QcEvaluation.evaluated_at <= until)
    query = query.order_by(QcEvaluation.evaluated_at, QcEvaluation.id)
    if first is not None:
        query = query.limit(max(0, first))
    ids = [r.id for r in session.execute(query)]
    if first is not None and len(ids) < first:
        raise errors.BaselineTooFewPoints(minimum=first, count=len(ids))
    return set_baseline(session, actor, method, parameter, kind, ids)


# ---------------------------------------------------------------- the list of charts


@dataclass(frozen=True)
class ChartSummary:
    method_id: int
    method_code: str
    parameter: str
    kind: str
    count: int
    last_at: datetime
    baseline: ControlBaseline | None

    @property
    def href(self) -> str:
        return chart_href(self.method_code, self.parameter, self.kind)


def list_charts(session: Session, *, method: str = "", kind: str = "", page: int = 1,
                size: int = 25) -> Page[ChartSummary]:
    """Every chart that has points, by method, parameter and kind; three queries a page."""
    latest = _latest_runs()
    query = (select(QcEvaluation.method_id, Method.code, QcEvaluation.parameter, QcEvaluation.kind,
                    func.count().label("n"), func.max(QcEvaluation.evaluated_at).label("last_at"))
             .join(AnalysisBatch, AnalysisBatch.id == QcEvaluation.batch_id)
             .join(latest, (latest.c.batch_id == QcEvaluation.batch_id) & (latest.c.run == QcEvaluation.run))
             .join(Method, Method.id == QcEvaluation.method_id)
             .where(QcEvaluation.value.is_not(None), AnalysisBatch.state.in_(CHARTED_STATES))
             .group_by(QcEvaluation.method_id, Method.code, QcEvaluation.parameter, QcEvaluation.kind))
    text = " ".join((method or "").split()).upper()[:60]
    if text:
        query = query.where(func.upper(Method.code).contains(text, autoescape=True))
    if kind in KINDS:
        query = query.where(QcEvaluation.kind == kind)
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Method.code, QcEvaluation.parameter, QcEvaluation.kind)
                           .limit(size).offset((page - 1) * size)).all()
    method_ids = {r.method_id for r in rows}
    newest: dict[tuple[int, str, str], ControlBaseline] = {}
    if method_ids:
        for b in session.scalars(select(ControlBaseline).where(ControlBaseline.method_id.in_(method_ids))
                                 .order_by(ControlBaseline.set_at, ControlBaseline.id)):
            newest[(b.method_id, b.parameter, b.kind)] = b
    items = [ChartSummary(r.method_id, r.code, r.parameter, r.kind, r.n, r.last_at,
                          newest.get((r.method_id, r.parameter, r.kind))) for r in rows]
    return Page(items, page, size, total)


def method_by_code(session: Session, code: str) -> Method:
    from app.analysis import methods

    return methods.get_method(session, code)
