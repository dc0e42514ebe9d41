"""Anomaly rules: quality control too good to be true (DOMAIN.md §7 A01, A02, and the lab's A19
for the issue's "blanks always exactly zero"). Real replicates scatter, real recoveries spread
around 100 %, real blanks carry noise: QC that is perfect again and again was probably never
measured.

Each rule streams one narrow, ordered query (analyst × parameter, in signing order) and keeps
only the analyst's last few QC points in memory. A finding is raised per batch × parameter whose
own QC completes the pattern, so the batch's reviewer sees it in the checklist; the key names the
batch's QC positions, so a rescan finds the same alarm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import Boolean, Integer, and_, cast, exists, func, null, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from app.analysis import numbers
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    MethodParameter,
    PositionRole,
    QcEvaluation,
    QcKind,
)
from app.core.db import DecimalText
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, chunked, jsonable, register
from app.people.models import User
from app.samples.models import Sample

D = Decimal
STREAM = {"yield_per": 5000}
SUMMARY_MAX = 480  # the alarm's summary column holds 500


# ---------------------------------------------------------------- shared by the rule modules


def current(result: Any = AnalysisResult) -> ColumnElement[bool]:
    """The result of record: no newer revision of the same position × parameter (the unique
    index on position, parameter, revision answers it)."""
    newer = aliased(AnalysisResult)
    return ~exists().where(newer.position_id == result.position_id, newer.parameter == result.parameter,
                           newer.revision > result.revision)


@dataclass(frozen=True)
class Reporting:
    """A parameter's MDL and reporting precision in one method version."""

    mdl: Decimal | None = None
    decimals: int | None = None
    significant_figures: int | None = None

    def rounded(self, value: Decimal) -> Decimal:
        """The value as reported (GB/T 8170, once); unchanged where the method sets no precision."""
        if self.decimals is not None:
            return numbers.round_gbt8170(value, decimals=self.decimals)
        if self.significant_figures is not None:
            return numbers.round_gbt8170(value, significant_figures=self.significant_figures)
        return value

    def below_mdl(self, value: Decimal, flagged: bool) -> bool:
        return flagged or (self.mdl is not None and self.mdl > 0 and value < self.mdl)


NO_RULE = Reporting()


def reporting_rules(session: Session) -> dict[tuple[int, str], Reporting]:
    """Every method version's parameters (a small table) by (method version, parameter)."""
    return {(version, parameter): Reporting(mdl, decimals, figures) for version, parameter, mdl, decimals, figures
            in session.execute(select(MethodParameter.method_version_id, MethodParameter.parameter,
                                      MethodParameter.mdl, MethodParameter.decimals,
                                      MethodParameter.significant_figures))}


def lookup(session: Session, key: Any, value: Any, ids: Iterable[int | None]) -> dict[int, Any]:
    """`key` → `value` for the ids asked (findings only), in chunked IN lists."""
    found: dict[int, Any] = {}
    for chunk in chunked(sorted({i for i in ids if i is not None})):
        found.update((k, v) for k, v in session.execute(select(key, value).where(key.in_(chunk))))
    return found


def batch_numbers(session: Session, ids: Iterable[int]) -> dict[int, str]:
    return lookup(session, AnalysisBatch.id, AnalysisBatch.batch_no, ids)


def sample_numbers(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    return lookup(session, Sample.id, Sample.sample_no, ids)


def sample_sites(session: Session, ids: Iterable[int]) -> dict[int, int | None]:
    return lookup(session, Sample.id, Sample.site_id, ids)


def user_names(session: Session, ids: Iterable[int | None]) -> dict[int, tuple[str, str]]:
    """User id → (Chinese name, English name or the Chinese one)."""
    found: dict[int, tuple[str, str]] = {}
    for chunk in chunked(sorted({i for i in ids if i is not None})):
        for uid, zh, en in session.execute(select(User.id, User.display_name_zh, User.display_name_en)
                                           .where(User.id.in_(chunk))):
            found[uid] = (zh, en or zh)
    return found


def in_window(window: ScanWindow, at: datetime | None, batch_id: int) -> bool:
    """Whether an act recorded at `at` in batch `batch_id` is one the scan judges."""
    if at is None or at > window.until:
        return False
    if window.since is not None and at < window.since:
        return False
    return window.batch_ids is None or batch_id in window.batch_ids


def streaming(session: Session) -> Session:
    """Plan streamed scans for their total time: PostgreSQL plans a cursor for its first rows
    (cursor_tuple_fraction 0.1: nested loops over a million rows); for this transaction only."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    return session


def judged_analysts(session: Session, window: ScanWindow) -> list[int] | None:
    """The analysts whose batches the window holds (None: every analyst, a full-history scan):
    only their history needs reading."""
    if window.since is None and window.batch_ids is None:
        return None
    stmt = select(AnalysisBatch.analyst_id).distinct().where(AnalysisBatch.submitted_at.is_not(None),
                                                              AnalysisBatch.submitted_at <= window.until)
    if window.since is not None:
        stmt = stmt.where(AnalysisBatch.submitted_at >= window.since)
    if window.batch_ids is not None:
        stmt = stmt.where(AnalysisBatch.id.in_(window.batch_ids or (-1,)))
    return list(session.scalars(stmt))


def shown(value: Decimal | None) -> str:
    return "" if value is None else numbers.format_decimal(value)


def listed(items: Iterable[str], limit: int = 8) -> str:
    items = list(items)
    return "、".join(items[:limit]) + ("…" if len(items) > limit else "")


def clip(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1] + "…"


def count_of(limits: Limits, name: str) -> int:
    return int(limits[name])


# ---------------------------------------------------------------- QC points


@dataclass(slots=True)
class QcPoint:
    """One QC check as the rules see it: a duplicate pair, a spike recovery, a blank."""

    analyst_id: int
    parameter: str
    at: datetime
    batch_id: int
    ref: str  # "p<position id>" (stable across evaluation runs) or "e<evaluation id>"
    sample_id: int | None
    values: tuple[str, ...]  # as judged, for the evidence
    hit: bool  # the "too good" property (RD 0, recovery in the band, blank exactly 0)
    judged: bool  # inside the scan window
    value: Decimal | None = None


@dataclass
class Trigger:
    """The QC of one batch × parameter that completed a pattern, and the history it completed."""

    point: QcPoint
    refs: list[str] = field(default_factory=list)
    sample_ids: set[int] = field(default_factory=set)
    recent: list[QcPoint] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _latest_runs() -> Any:
    return (select(QcEvaluation.batch_id.label("batch_id"), func.max(QcEvaluation.run).label("run"))
            .group_by(QcEvaluation.batch_id).subquery())


def _evaluations(kind: str, until: datetime, *, without_results: bool) -> Any:
    """The checks of each signed batch's latest QC run; with `without_results`, only those whose
    position has no result to judge (the position's results are read instead)."""
    e, b = QcEvaluation, AnalysisBatch
    last = _latest_runs()
    position = aliased(BatchPosition)
    of = aliased(BatchPosition)
    stmt = (select(b.analyst_id.label("analyst_id"), e.parameter.label("parameter"), b.submitted_at.label("at"),
                   e.batch_id.label("batch_id"), func.coalesce(e.position_id, 0).label("position_id"),
                   e.id.label("evaluation_id"), func.coalesce(position.sample_id, of.sample_id).label("sample_id"),
                   e.value.label("qc_value"))
            .select_from(e).join(last, and_(last.c.batch_id == e.batch_id, last.c.run == e.run))
            .join(b, b.id == e.batch_id)
            .outerjoin(position, position.id == e.position_id).outerjoin(of, of.id == position.of_position_id)
            .where(e.kind == kind, e.value.is_not(None), b.submitted_at.is_not(None), b.submitted_at <= until))
    if without_results:
        has_result = exists().where(AnalysisResult.position_id == e.position_id,
                                    AnalysisResult.parameter == e.parameter)
        stmt = stmt.where(or_(e.position_id.is_(None), ~has_result))
    return stmt


def _stream(session: Session, union: Any, analysts: list[int] | None) -> Iterator[Any]:
    u = union.subquery()
    stmt = select(u).order_by(u.c.analyst_id, u.c.parameter, u.c.at, u.c.batch_id, u.c.position_id,
                              u.c.evaluation_id)
    if analysts is not None:
        stmt = stmt.where(u.c.analyst_id.in_(analysts or [-1]))
    yield from streaming(session).connection().execute(stmt, execution_options=STREAM)


def _ref(position_id: int, evaluation_id: int | None) -> str:
    return f"p{position_id}" if evaluation_id is None or position_id else f"e{evaluation_id}"


Hit = tuple[QcPoint, list[QcPoint], dict[str, Any]]  # the point, its trailing history, what it crossed


def _trailing_hits(points: Iterable[QcPoint], of_last: int, count: int) -> Iterator[Hit]:
    """Each judged hit whose analyst's last `of_last` points (itself included) hold ≥ `count`
    hits. `points` come grouped by analyst × parameter, in signing order."""
    group: tuple[int, str] | None = None
    recent: deque[QcPoint] = deque(maxlen=of_last)
    hits = 0
    for p in points:
        if (p.analyst_id, p.parameter) != group:
            group, recent, hits = (p.analyst_id, p.parameter), deque(maxlen=of_last), 0
        if len(recent) == of_last and recent[0].hit:
            hits -= 1
        recent.append(p)
        hits += p.hit
        if p.hit and p.judged and hits >= count:
            yield p, list(recent), {"hits": hits}


def _by_batch(found: Iterable[Hit]) -> dict[tuple[int, str], Trigger]:
    """One trigger per batch × parameter (its last triggering point's history as evidence)."""
    triggers: dict[tuple[int, str], Trigger] = {}
    for p, recent, crossed in found:
        t = triggers.setdefault((p.batch_id, p.parameter), Trigger(p))
        t.point, t.recent = p, recent
        t.extra.update(crossed)
        t.refs.append(p.ref)
        if p.sample_id is not None:
            t.sample_ids.add(p.sample_id)
    return triggers


@dataclass
class Names:
    batches: dict[int, str]
    samples: dict[int, str]
    users: dict[int, tuple[str, str]]

    @classmethod
    def of(cls, session: Session, triggers: Iterable[Trigger]) -> Names:
        triggers = list(triggers)
        points = [q for t in triggers for q in t.recent]
        return cls(batch_numbers(session, (q.batch_id for q in points)),
                   sample_numbers(session, (q.sample_id for q in points)),
                   user_names(session, (t.point.analyst_id for t in triggers)))

    def point(self, q: QcPoint) -> dict[str, Any]:
        return {"batch_no": self.batches.get(q.batch_id, ""), "sample_no": self.samples.get(q.sample_id or 0, ""),
                "values": list(q.values), "hit": q.hit, "ref": q.ref}

    def user(self, uid: int) -> tuple[str, str]:
        return self.users.get(uid, (f"#{uid}", f"#{uid}"))


@dataclass(frozen=True)
class Told:
    """A batch's trigger with what its messages name: the batch number and the analyst."""

    t: Trigger
    names: Names
    batch_no: str
    zh_name: str
    en_name: str


def _told(session: Session, found: Iterable[Hit]) -> Iterator[Told]:
    """One trigger per batch × parameter, the names of all of them read at once."""
    triggers = _by_batch(found)
    if not triggers:
        return
    names = Names.of(session, triggers.values())
    for t in triggers.values():
        zh_name, en_name = names.user(t.point.analyst_id)
        yield Told(t, names, names.batches.get(t.point.batch_id, ""), zh_name, en_name)


def _finding(names: Names, t: Trigger, evidence: dict[str, Any], zh: str, en: str) -> Finding:
    p = t.point
    return Finding(key=f"{p.parameter}|{','.join(sorted(set(t.refs)))}", summary_zh=clip(zh), summary_en=clip(en),
                   evidence=jsonable(evidence), sample_ids=tuple(sorted(t.sample_ids)), batch_id=p.batch_id,
                   parameter=p.parameter, responsible_user_id=p.analyst_id, occurred_at=p.at)


# ---------------------------------------------------------------- A01 duplicates with RD exactly 0


A01_WORDING = ("≥ count of the analyst's last of_last duplicate pairs (per parameter) have RD exactly 0 when both "
               "values are rounded to the reporting precision (GB/T 8170); pairs with both values below the MDL "
               "are not counted (DOMAIN.md §7 A01)")


@register
class DuplicatesExactlyEqual(AnomalyRule):
    code = "A01"
    title_zh = "平行双样相对偏差按报告精度恰为0"
    title_en = "Duplicate RD exactly 0 at reported precision"
    why_zh = "真实的平行样总有离散，反复完全一致说明数据可能是抄写或编造的"
    why_en = "real replicates scatter; pairs that agree exactly again and again were probably not measured twice"
    thresholds = (
        Threshold("count", D(3), D(2), D(50), "RD为0的组数", "pairs with RD 0", integer=True),
        Threshold("of_last", D(10), D(3), D(100), "最近平行样组数", "of the last pairs", integer=True),
    )
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        count, of_last = count_of(limits, "count"), count_of(limits, "of_last")
        for told in _told(session, _trailing_hits(self._pairs(session, window), of_last, count)):
            t, p, names = told.t, told.t.point, told.names
            batch_no, zh_name, en_name = told.batch_no, told.zh_name, told.en_name
            zeros = t.extra["hits"]
            mine = [q for q in t.recent if q.batch_id == p.batch_id and q.hit]
            pairs = listed(f"{names.samples.get(q.sample_id or 0, q.ref)} {'/'.join(q.values)}" for q in mine)
            yield _finding(names, t, {
                "rule": A01_WORDING, "count": count, "of_last": of_last, "zero_pairs": zeros,
                "pairs": [names.point(q) for q in t.recent]},
                f"批次{batch_no} {p.parameter} 平行双样按报告精度完全一致（{pairs}）；"
                f"分析员{zh_name}最近{len(t.recent)}组平行样中{zeros}组相对偏差为0（阈值：最近{of_last}组中≥{count}组）",
                f"Batch {batch_no} {p.parameter}: duplicate pair identical at reported precision ({pairs}); "
                f"{zeros} of analyst {en_name}'s last {len(t.recent)} pairs have RD 0 "
                f"(threshold: ≥ {count} of the last {of_last})")

    def _pairs(self, session: Session, window: ScanWindow) -> Iterator[QcPoint]:
        b = AnalysisBatch
        dup = aliased(BatchPosition)
        own = aliased(AnalysisResult)
        first = aliased(AnalysisResult)
        from_results = (
            select(b.analyst_id.label("analyst_id"), own.parameter.label("parameter"), b.submitted_at.label("at"),
                   own.batch_id.label("batch_id"), dup.id.label("position_id"),
                   cast(null(), Integer).label("evaluation_id"),
                   func.coalesce(dup.sample_id, first.sample_id).label("sample_id"),
                   cast(null(), DecimalText).label("qc_value"), first.value.label("first"),
                   first.below_mdl.label("first_below"), own.value.label("own"), own.below_mdl.label("own_below"),
                   own.method_version_id.label("method_version_id"))
            .select_from(own)
            .join(dup, and_(dup.id == own.position_id, dup.role == PositionRole.DUPLICATE.value))
            .join(first, and_(first.position_id == dup.of_position_id, first.parameter == own.parameter))
            .join(b, b.id == own.batch_id)
            .where(current(own), current(first), b.submitted_at.is_not(None), b.submitted_at <= window.until))
        from_evaluations = _evaluations(QcKind.DUPLICATE.value, window.until, without_results=True).add_columns(
            cast(null(), DecimalText).label("first"), cast(null(), Boolean).label("first_below"),
            cast(null(), DecimalText).label("own"), cast(null(), Boolean).label("own_below"),
            cast(null(), Integer).label("method_version_id"))
        rules = reporting_rules(session)
        for row in _stream(session, union_all(from_results, from_evaluations), judged_analysts(session, window)):
            if row.evaluation_id is None:
                rule = rules.get((row.method_version_id, row.parameter), NO_RULE)
                if rule.below_mdl(row.first, row.first_below) and rule.below_mdl(row.own, row.own_below):
                    continue  # both below the MDL: not evaluated (DOMAIN.md §4.2), says nothing
                a, c = rule.rounded(row.first), rule.rounded(row.own)
                values, hit = (shown(a), shown(c)), a == c
            else:
                values, hit = (f"RD {shown(row.qc_value)} %",), row.qc_value == 0
            yield QcPoint(row.analyst_id, row.parameter, row.at, row.batch_id,
                          _ref(row.position_id, row.evaluation_id), row.sample_id, values, hit,
                          in_window(window, row.at, row.batch_id))


# ---------------------------------------------------------------- A02 spike recoveries at 100 %


A02_WORDING = ("≥ count of the analyst's last of_last spike recoveries (per parameter) within 100 ± band %; or the "
               "SD of the last sd_window recoveries < sd_ratio × the SD of all earlier ones (at least sd_window "
               "earlier) (DOMAIN.md §7 A02)")


def _sd(n: int, total: Decimal, squares: Decimal) -> Decimal | None:
    """Sample SD from running sums (n − 1)."""
    if n < 2:
        return None
    with localcontext() as context:
        context.prec = numbers.WORK_PRECISION
        variance = (squares - total * total / n) / (n - 1)
        return max(variance, D(0)).sqrt()


@register
class RecoveriesAtHundred(AnomalyRule):
    code = "A02"
    title_zh = "加标回收率聚集于100%"
    title_en = "Spike recoveries clustered at 100 %"
    why_zh = "真实的加标回收率围绕100%波动，过于集中或离散度骤降说明质控数据可能是编造的"
    why_en = ("real recoveries spread around 100 %; recoveries bunched at 100 % or suddenly far tighter suggest "
              "invented QC")
    thresholds = (
        Threshold("count", D(5), D(2), D(50), "落在100±带宽内的个数", "recoveries in the band", integer=True),
        Threshold("of_last", D(10), D(3), D(100), "最近加标个数", "of the last recoveries", integer=True),
        Threshold("band", D(1), D("0.1"), D(10), "带宽（%）", "band around 100 (%)"),
        Threshold("sd_window", D(20), D(5), D(200), "近期标准偏差的个数", "recent SD window", integer=True),
        Threshold("sd_ratio", D("0.333"), D("0.05"), D(1), "近期/长期标准偏差比", "recent / long-term SD ratio"),
    )
    blocks_issue = True
    on_submission = False  # the long-term SD reads the analyst's whole history

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        count, of_last, band = count_of(limits, "count"), count_of(limits, "of_last"), limits["band"]
        for told in _told(session, self._triggers(session, window, limits)):
            t, p, names = told.t, told.t.point, told.names
            batch_no, zh_name, en_name = told.batch_no, told.zh_name, told.en_name
            mine = listed(f"{names.samples.get(q.sample_id or 0, q.ref)} {q.values[0]}"
                          for q in t.recent if q.batch_id == p.batch_id)
            reasons_zh, reasons_en = [], []
            if "in_band" in t.extra:
                reasons_zh.append(f"最近{len(t.recent)}个中{t.extra['in_band']}个在100±{shown(band)}%内"
                                  f"（阈值：最近{of_last}个中≥{count}个）")
                reasons_en.append(f"{t.extra['in_band']} of the last {len(t.recent)} within 100 ± {shown(band)} % "
                                  f"(threshold: ≥ {count} of the last {of_last})")
            if "sd_recent" in t.extra:
                reasons_zh.append(f"最近{t.extra['sd_n']}个的标准偏差{t.extra['sd_recent']}低于长期标准偏差"
                                  f"{t.extra['sd_long']}的{t.extra['sd_ratio']}倍")
                reasons_en.append(f"SD of the last {t.extra['sd_n']} {t.extra['sd_recent']} below "
                                  f"{t.extra['sd_ratio']} × the long-term SD {t.extra['sd_long']}")
            evidence = {"rule": A02_WORDING, **{k: limits[k] for k in ("count", "of_last", "band", "sd_window",
                                                                        "sd_ratio")},
                        "recoveries": [names.point(q) for q in t.recent], **t.extra}
            yield _finding(names, t, evidence,
                           f"批次{batch_no} {p.parameter} 加标回收率（{mine}）：分析员{zh_name}"
                           + "；".join(reasons_zh),
                           f"Batch {batch_no} {p.parameter} spike recoveries ({mine}): analyst {en_name}, "
                           + "; ".join(reasons_en))

    def _triggers(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Hit]:
        count, of_last, band = count_of(limits, "count"), count_of(limits, "of_last"), limits["band"]
        sd_window, ratio = count_of(limits, "sd_window"), limits["sd_ratio"]
        group: tuple[int, str] | None = None
        recent: deque[QcPoint] = deque(maxlen=of_last)
        last: deque[Decimal] = deque(maxlen=sd_window)
        earlier_n, earlier_sum, earlier_squares = 0, D(0), D(0)
        for p in self._recoveries(session, window, band):
            if (p.analyst_id, p.parameter) != group:
                group, recent, last = (p.analyst_id, p.parameter), deque(maxlen=of_last), deque(maxlen=sd_window)
                earlier_n, earlier_sum, earlier_squares = 0, D(0), D(0)
            assert p.value is not None
            if len(last) == sd_window:
                old = last[0]
                earlier_n, earlier_sum, earlier_squares = earlier_n + 1, earlier_sum + old, earlier_squares + old * old
            recent.append(p)
            last.append(p.value)
            if not p.judged:
                continue
            extra: dict[str, Any] = {}
            in_band = sum(q.hit for q in recent)
            if p.hit and in_band >= count:
                extra["in_band"] = in_band
            if len(last) == sd_window and earlier_n >= sd_window:
                sd_long = _sd(earlier_n, earlier_sum, earlier_squares)
                sd_recent = numbers.std_dev(list(last))
                if sd_long and sd_recent < ratio * sd_long:
                    extra.update(sd_recent=numbers.round_gbt8170(sd_recent, significant_figures=3),
                                 sd_long=numbers.round_gbt8170(sd_long, significant_figures=3),
                                 sd_n=sd_window, long_n=earlier_n, sd_ratio=ratio)
            if extra:
                yield p, list(recent), extra

    def _recoveries(self, session: Session, window: ScanWindow, band: Decimal) -> Iterator[QcPoint]:
        stmt = _evaluations(QcKind.SPIKE.value, window.until, without_results=False)
        for row in _stream(session, stmt, judged_analysts(session, window)):
            yield QcPoint(row.analyst_id, row.parameter, row.at, row.batch_id,
                          _ref(row.position_id, row.evaluation_id), row.sample_id, (f"{shown(row.qc_value)} %",),
                          abs(row.qc_value - 100) <= band, in_window(window, row.at, row.batch_id), row.qc_value)


# ---------------------------------------------------------------- A19 blanks always exactly zero


A19_WORDING = ("≥ count of the analyst's last of_last method blanks (per parameter) exactly 0 at full precision "
               "(the issue's \"blanks always exactly zero\"; a lab extension of DOMAIN.md §7 A01–A02)")


@register
class BlanksAlwaysZero(AnomalyRule):
    code = "A19"
    title_zh = "实验室空白总是恰为0"
    title_en = "Method blanks always exactly zero"
    why_zh = "真实的空白总有本底噪声，全精度下连续恰为0说明空白可能未测而直接填写"
    why_en = ("real blanks carry noise; blanks exactly 0 at full precision time after time were probably typed, "
              "not measured")
    thresholds = (
        Threshold("count", D(5), D(2), D(50), "恰为0的空白个数", "blanks exactly 0", integer=True),
        Threshold("of_last", D(5), D(2), D(100), "最近空白个数", "of the last blanks", integer=True),
    )
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        count, of_last = count_of(limits, "count"), count_of(limits, "of_last")
        for told in _told(session, _trailing_hits(self._blanks(session, window), of_last, count)):
            t, p, names = told.t, told.t.point, told.names
            batch_no, zh_name, en_name = told.batch_no, told.zh_name, told.en_name
            zeros = t.extra["hits"]
            batches = listed(dict.fromkeys(names.batches.get(q.batch_id, "") for q in t.recent))
            yield _finding(names, t, {
                "rule": A19_WORDING, "count": count, "of_last": of_last, "zero_blanks": zeros,
                "blanks": [names.point(q) for q in t.recent]},
                f"批次{batch_no} {p.parameter} 实验室空白为0；分析员{zh_name}最近{len(t.recent)}个空白中{zeros}个恰为0"
                f"（批次{batches}；阈值：最近{of_last}个中≥{count}个）",
                f"Batch {batch_no} {p.parameter}: method blank exactly 0; {zeros} of analyst {en_name}'s last "
                f"{len(t.recent)} blanks are exactly 0 (batches {batches}; threshold: ≥ {count} of the last {of_last})")

    def _blanks(self, session: Session, window: ScanWindow) -> Iterator[QcPoint]:
        b = AnalysisBatch
        r = AnalysisResult
        from_results = (
            select(b.analyst_id.label("analyst_id"), r.parameter.label("parameter"), b.submitted_at.label("at"),
                   r.batch_id.label("batch_id"), r.position_id.label("position_id"),
                   cast(null(), Integer).label("evaluation_id"), r.sample_id.label("sample_id"),
                   r.value.label("qc_value"))
            .select_from(r)
            .join(BatchPosition, and_(BatchPosition.id == r.position_id,
                                      BatchPosition.role == PositionRole.METHOD_BLANK.value))
            .join(b, b.id == r.batch_id)
            .where(current(r), b.submitted_at.is_not(None), b.submitted_at <= window.until))
        from_evaluations = _evaluations(QcKind.BLANK.value, window.until, without_results=True)
        for row in _stream(session, union_all(from_results, from_evaluations), judged_analysts(session, window)):
            yield QcPoint(row.analyst_id, row.parameter, row.at, row.batch_id,
                          _ref(row.position_id, row.evaluation_id), row.sample_id, (shown(row.qc_value),),
                          row.qc_value == 0, in_window(window, row.at, row.batch_id), row.qc_value)
