"""Anomaly rules: copied or made-up results (DOMAIN.md §7 A03 identical results across samples,
A04 copied series, A05 digit preference). Independent samples do not agree to the last digit,
a run of results does not repeat another batch's run (or the same run shifted by a constant), and
measured values do not favour some last digits over others.

A03 groups in SQL and checks the few candidate groups exactly in Python; A04 and A05 stream narrow
tuples in order and keep one batch (A04: plus a dict of window hashes per parameter) or one
analyst × parameter × quarter (A05) in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, MethodParameter, PositionRole
from app.core.labtime import LabCalendar, lab_calendar
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, chunked, jsonable, register
from app.oversight.rules.qc_too_good import (
    NO_RULE,
    STREAM,
    Reporting,
    clip,
    count_of,
    current,
    listed,
    reporting_rules,
    sample_numbers,
    sample_sites,
    shown,
    streaming,
    user_names,
)

D = Decimal


@dataclass(frozen=True)
class BatchFacts:
    batch_no: str
    analyst_id: int
    submitted_at: datetime | None


def batch_facts(session: Session, ids: set[int]) -> dict[int, BatchFacts]:
    found: dict[int, BatchFacts] = {}
    for chunk in chunked(sorted(ids)):
        for bid, no, analyst, submitted in session.execute(
                select(AnalysisBatch.id, AnalysisBatch.batch_no, AnalysisBatch.analyst_id, AnalysisBatch.submitted_at)
                .where(AnalysisBatch.id.in_(chunk))):
            found[bid] = BatchFacts(no, analyst, submitted)
    return found


def one_site(sites: dict[int, int | None], sample_ids: Iterable[int]) -> int | None:
    """The site of the samples when they share one."""
    found = {sites.get(i) for i in sample_ids}
    return found.pop() if len(found) == 1 else None


def _sample_results() -> Any:
    """Current results of sample positions (QC positions are not reported values)."""
    r = AnalysisResult
    return (select().select_from(r)
            .join(BatchPosition, and_(BatchPosition.id == r.position_id,
                                      BatchPosition.role == PositionRole.SAMPLE.value))
            .where(current(r), r.sample_id.is_not(None)))


# ---------------------------------------------------------------- A03 identical results in a batch


A03_WORDING = ("the same full-precision value for ≥ samples different samples in one batch and parameter, results "
               "below the MDL excluded (DOMAIN.md §7 A03)")


@register
class IdenticalResults(AnomalyRule):
    code = "A03"
    title_zh = "不同样品结果完全相同"
    title_en = "Identical results across different samples"
    why_zh = "不同样品的测定值在全精度下完全相同极少见，多为抄写或复制"
    why_en = "different samples rarely agree to full precision; identical values point to copying"
    thresholds = (Threshold("samples", D(3), D(2), D(50), "相同结果的样品数", "samples with the same value",
                            integer=True),)
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        needed = count_of(limits, "samples")
        candidates = self._candidates(session, window, needed)
        if not candidates:
            return
        rules = reporting_rules(session)
        groups: dict[tuple[int, str, Decimal], list[Any]] = {}
        r = AnalysisResult
        for chunk in chunked(sorted({b for b, _ in candidates})):
            for row in session.execute(_sample_results().add_columns(
                    r.batch_id, r.parameter, r.sample_id, r.position_id, r.value, r.below_mdl, r.method_version_id,
                    r.entered_at, r.unit).where(r.batch_id.in_(chunk), r.entered_at <= window.until)):
                if (row.batch_id, row.parameter) not in candidates:
                    continue
                if rules.get((row.method_version_id, row.parameter), NO_RULE).below_mdl(row.value, row.below_mdl):
                    continue
                groups.setdefault((row.batch_id, row.parameter, row.value), []).append(row)
        found = {k: rows for k, rows in groups.items() if len({x.sample_id for x in rows}) >= needed}
        if not found:
            return
        all_samples = {x.sample_id for rows in found.values() for x in rows}
        numbers_ = sample_numbers(session, all_samples)
        sites = sample_sites(session, all_samples)
        batches = batch_facts(session, {b for b, _, _ in found})
        for (batch_id, parameter, value), rows in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            rows.sort(key=lambda x: (numbers_.get(x.sample_id, ""), x.position_id))
            batch = batches[batch_id]
            samples = [numbers_.get(x.sample_id, "") for x in rows]
            text = f"{shown(value)} {rows[0].unit}".strip()
            sample_ids = sorted({x.sample_id for x in rows})
            yield Finding(
                key=f"{batch_id}|{parameter}|{format(value.normalize(), 'f')}",
                summary_zh=clip(f"批次{batch.batch_no} {parameter}：{len(sample_ids)}个不同样品的结果全精度完全相同"
                                f"（{text}）：{listed(samples)}（阈值≥{needed}个样品）"),
                summary_en=clip(f"Batch {batch.batch_no} {parameter}: {len(sample_ids)} different samples have the "
                                f"same full-precision result ({text}): {listed(samples)} (threshold: ≥ {needed})"),
                evidence=jsonable({"rule": A03_WORDING, "samples": needed, "value": value, "unit": rows[0].unit,
                                   "batch_no": batch.batch_no,
                                   "results": [{"sample_no": numbers_.get(x.sample_id, ""), "value": x.value,
                                                "position_id": x.position_id} for x in rows]}),
                sample_ids=tuple(sample_ids), batch_id=batch_id, parameter=parameter,
                site_id=one_site(sites, sample_ids), responsible_user_id=batch.analyst_id,
                occurred_at=max(x.entered_at for x in rows))

    def _candidates(self, session: Session, window: ScanWindow, needed: int) -> set[tuple[int, str]]:
        """Batch × parameter holding one value for ≥ `needed` samples, grouped by the number in
        SQL (0.50 and 0.5 are one value; SQLite's float cast may over-match, never under-match
        at these magnitudes: the Python pass decides)."""
        r, mp = AnalysisResult, MethodParameter
        number = cast(r.value, Numeric)
        stmt = (_sample_results().add_columns(r.batch_id, r.parameter)
                .outerjoin(mp, and_(mp.method_version_id == r.method_version_id, mp.parameter == r.parameter))
                .where(~r.below_mdl, r.entered_at <= window.until,
                       or_(mp.mdl.is_(None), number >= cast(mp.mdl, Numeric)))
                .group_by(r.batch_id, r.parameter, number)
                .having(func.count(func.distinct(r.sample_id)) >= needed))
        if window.since is not None:
            entered = select(AnalysisResult.batch_id).where(AnalysisResult.entered_at >= window.since,
                                                            AnalysisResult.entered_at <= window.until)
            stmt = stmt.where(r.batch_id.in_(entered))
        if window.batch_ids is not None:
            stmt = stmt.where(r.batch_id.in_(window.batch_ids or (-1,)))
        return {(b, p) for b, p in session.execute(stmt)}


# ---------------------------------------------------------------- A04 copied series


A04_WORDING = ("≥ run consecutive results of a batch (sample positions in order, one parameter) equal to, or a "
               "constant non-zero shift of, consecutive results of an earlier batch (any analyst, any site); "
               "results below the MDL break a series, runs of one repeated value are not counted "
               "(DOMAIN.md §7 A04)")

SLOT = 1 << 24  # a window's place stored as batch id × SLOT + index in the batch's series
SCALE = 9  # values compared as integers in units of 10⁻⁹ (exact; a finer value stays a Decimal)


def scaled(text: str) -> int | Decimal:
    """The value of a Decimal text in units of 10⁻⁹, exactly: an int read off the text when it
    has at most 9 decimals (most do; ints hash and subtract far faster than Decimals), else the
    scaled Decimal (equal numbers still compare and hash equal)."""
    if "E" not in text and "e" not in text:
        whole, _, fraction = text.partition(".")
        if len(fraction) <= SCALE:
            return int(whole + fraction.ljust(SCALE, "0"))
    return D(text).scaleb(SCALE)


@dataclass
class Series:
    """One batch's sample results for one parameter, in position order."""

    parameter: str
    batch_id: int
    values: list[Decimal | None] = field(default_factory=list)  # None: below the MDL (breaks the series)
    keys: list[int | Decimal | None] = field(default_factory=list)  # the values `scaled`, as compared
    positions: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Copy:
    """A run of `length` values of `series` from `start` that matches an earlier batch's run."""

    series: Series
    start: int
    length: int
    earlier_batch: int
    earlier_start: int
    kind: str  # equal | shift


def _windows(values: list[int | Decimal | None], k: int) -> Iterator[tuple[int, int, int]]:
    """(start, hash of the k values, hash of their k − 1 differences) of each window without a
    value below the MDL and not one value repeated. Each value and difference is hashed once
    (scaled: equal numbers such as 0.5 and 0.50 hash equal)."""
    diffs = [None if a is None or b is None else b - a for a, b in zip(values, values[1:], strict=False)]
    present = 0  # values since the last one below the MDL
    for end, value in enumerate(values):
        present = present + 1 if value is not None else 0
        if present >= k:
            start = end - k + 1
            steps = tuple(diffs[start:end])
            if any(steps):
                yield start, hash(tuple(values[start:end + 1])), hash(steps)


def _runs(matches: list[tuple[int, int]], k: int) -> list[tuple[int, int, int]]:
    """Maximal runs of aligned window matches: (start, earlier slot, length in values)."""
    runs: list[tuple[int, int, int]] = []
    prev: tuple[int, int] | None = None
    for start, slot in matches:
        if prev is not None and start == prev[0] + 1 and slot == prev[1] + 1:
            s, e, n = runs[-1]
            runs[-1] = (s, e, n + 1)
        else:
            runs.append((start, slot, k))
        prev = (start, slot)
    return runs


@register
class CopiedSeries(AnomalyRule):
    code = "A04"
    title_zh = "结果序列被复制"
    title_en = "Copied series"
    why_zh = "一批连续结果与更早批次的一串结果相同或仅差一个常数，说明数据是复用的"
    why_en = "a run of results that repeats an earlier batch's run, or shifts it by a constant, is reused data"
    thresholds = (Threshold("run", D(5), D(4), D(50), "连续相同（或恒定差值）的结果数",
                            "consecutive results equal or shifted", integer=True),)
    blocks_issue = True
    on_submission = False  # compares with every earlier series

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        k = count_of(limits, "run")
        copies = list(self._copies(session, window, k))
        if copies:
            yield from self._verified(session, copies, k)

    def _stream(self, session: Session, window: ScanWindow) -> Iterator[Series]:
        """Every signed batch's series, parameter by parameter, batches in signing order (narrow
        Core rows: the value as text, no per-row datetime)."""
        r, b = AnalysisResult, AnalysisBatch
        stmt = (_sample_results().add_columns(r.parameter, r.batch_id, BatchPosition.id, r.sample_id,
                                              type_coerce(r.value, String), r.below_mdl, r.method_version_id)
                .join(b, b.id == r.batch_id)
                .where(b.submitted_at.is_not(None), b.submitted_at <= window.until)
                .order_by(r.parameter, b.submitted_at, r.batch_id, BatchPosition.position))
        if window.batch_ids is not None:
            params = select(AnalysisResult.parameter).where(AnalysisResult.batch_id.in_(window.batch_ids or (-1,)))
            stmt = stmt.where(r.parameter.in_(params))
        rules = reporting_rules(session)
        series: Series | None = None
        mdl: int | Decimal | None = None
        rule_of = None
        rows = streaming(session).connection().execute(stmt, execution_options=STREAM)
        for parameter, batch_id, position_id, sample_id, text, below, version in rows:
            if series is None or series.batch_id != batch_id or series.parameter != parameter:
                if series is not None:
                    yield series
                series = Series(parameter, batch_id)
            if rule_of != (version, parameter):
                rule_of = (version, parameter)
                limit = rules.get(rule_of, NO_RULE).mdl
                mdl = None if limit is None else scaled(str(limit))
            key = scaled(text)
            if below or (mdl is not None and key < mdl):
                series.values.append(None)
                series.keys.append(None)
            else:
                series.values.append(D(text))
                series.keys.append(key)
            series.positions.append(position_id)
            series.samples.append(sample_id)
        if series is not None:
            yield series

    def _judged(self, session: Session, window: ScanWindow) -> set[int] | None:
        """The batches whose series the scan judges (None: every one)."""
        if window.since is None and window.batch_ids is None:
            return None
        stmt = select(AnalysisBatch.id).where(AnalysisBatch.submitted_at.is_not(None),
                                              AnalysisBatch.submitted_at <= window.until)
        if window.since is not None:
            stmt = stmt.where(AnalysisBatch.submitted_at >= window.since)
        if window.batch_ids is not None:
            stmt = stmt.where(AnalysisBatch.id.in_(window.batch_ids or (-1,)))
        return set(session.scalars(stmt))

    def _copies(self, session: Session, window: ScanWindow, k: int) -> Iterator[Copy]:
        parameter = None
        equal: dict[int, int] = {}
        shifted: dict[int, int] = {}
        judged_batches = self._judged(session, window)
        for series in self._stream(session, window):
            if series.parameter != parameter:
                parameter, equal, shifted = series.parameter, {}, {}
            windows = list(_windows(series.keys, k))
            if judged_batches is None or series.batch_id in judged_batches:
                equal_runs = _runs([(s, equal[h]) for s, h, _ in windows if h in equal], k)
                covered = {i for s, _, n in equal_runs for i in range(s, s + n)}
                shift_runs = [run for run in _runs([(s, shifted[d]) for s, _, d in windows if d in shifted], k)
                              if not set(range(run[0], run[0] + run[2])) <= covered]
                for kind, runs in (("equal", equal_runs), ("shift", shift_runs)):
                    for start, slot, length in runs:
                        yield Copy(series, start, length, slot // SLOT, slot % SLOT, kind)
            for start, h, d in windows:
                slot = series.batch_id * SLOT + start
                equal.setdefault(h, slot)
                shifted.setdefault(d, slot)

    def _verified(self, session: Session, copies: list[Copy], k: int) -> Iterator[Finding]:
        """Check each match on the earlier batch's values (a hash can collide), then describe it."""
        r = AnalysisResult
        earlier: dict[tuple[int, str], Series] = {}
        wanted = {(c.earlier_batch, c.series.parameter) for c in copies}
        for chunk in chunked(sorted({b for b, _ in wanted})):
            for batch_id, parameter, position_id, sample_id, value in session.execute(
                    _sample_results().add_columns(r.batch_id, r.parameter, BatchPosition.id, r.sample_id, r.value)
                    .where(r.batch_id.in_(chunk)).order_by(r.batch_id, r.parameter, BatchPosition.position)):
                if (batch_id, parameter) in wanted:
                    s = earlier.setdefault((batch_id, parameter), Series(parameter, batch_id))
                    s.values.append(value)
                    s.positions.append(position_id)
                    s.samples.append(sample_id)
        checked: list[tuple[Copy, Series, Decimal]] = []
        for c in copies:
            e = earlier.get((c.earlier_batch, c.series.parameter))
            if e is None or c.earlier_start + c.length > len(e.values):
                continue
            mine = c.series.values[c.start:c.start + c.length]
            theirs = e.values[c.earlier_start:c.earlier_start + c.length]
            if any(v is None or w is None for v, w in zip(mine, theirs, strict=True)):
                continue
            shift = mine[0] - theirs[0]  # type: ignore[operator]
            if all(v - w == shift for v, w in zip(mine, theirs, strict=True)):  # type: ignore[operator]
                checked.append((c, e, shift))
        if not checked:
            return
        samples = {i for c, e, _ in checked for i in c.series.samples[c.start:c.start + c.length]
                   + e.samples[c.earlier_start:c.earlier_start + c.length]}
        numbers_ = sample_numbers(session, samples)
        sites = sample_sites(session, samples)
        batches = batch_facts(session, {c.series.batch_id for c, _, _ in checked} | {e.batch_id for _, e, _ in checked})
        for c, e, shift in checked:
            yield self._finding(c, e, shift, k, numbers_, sites, batches)

    def _finding(self, c: Copy, e: Series, shift: Decimal, k: int, numbers_: dict[int, str],
                 sites: dict[int, int | None], batches: dict[int, BatchFacts]) -> Finding:
        b = c.series
        span, earlier_span = slice(c.start, c.start + c.length), slice(c.earlier_start, c.earlier_start + c.length)
        mine, theirs = b.values[span], e.values[earlier_span]
        my_samples, their_samples = b.samples[span], e.samples[earlier_span]
        batch, source = batches[b.batch_id], batches[e.batch_id]
        kind = "equal" if shift == 0 else "shift"
        values = listed([shown(v) for v in mine], 6)
        if kind == "equal":
            how_zh, how_en = "完全相同", "equal to"
        else:
            how_zh, how_en = f"恒差{shown(shift)}", f"shifted by {shown(shift)} from"
        ids, earlier_ids = ",".join(map(str, b.positions[span])), ",".join(map(str, e.positions[earlier_span]))
        return Finding(
            key=f"{b.parameter}|{ids}|{earlier_ids}",
            summary_zh=clip(f"批次{batch.batch_no} {b.parameter} 连续{c.length}个结果（{values}；样品"
                            f"{listed([numbers_.get(i, '') for i in my_samples], 4)}）与更早批次{source.batch_no}"
                            f"的结果（样品{listed([numbers_.get(i, '') for i in their_samples], 4)}）{how_zh}"
                            f"（阈值≥{k}个）"),
            summary_en=clip(f"Batch {batch.batch_no} {b.parameter}: {c.length} consecutive results ({values}; samples "
                            f"{listed([numbers_.get(i, '') for i in my_samples], 4)}) {how_en} earlier batch "
                            f"{source.batch_no} (samples {listed([numbers_.get(i, '') for i in their_samples], 4)}) "
                            f"(threshold: ≥ {k})"),
            evidence=jsonable({
                "rule": A04_WORDING, "run": k, "length": c.length, "kind": kind, "shift": shift,
                "batch_no": batch.batch_no, "earlier_batch_no": source.batch_no,
                "earlier_analyst_id": source.analyst_id,
                "values": list(mine), "earlier_values": list(theirs),
                "samples": [numbers_.get(i, "") for i in my_samples],
                "earlier_samples": [numbers_.get(i, "") for i in their_samples]}),
            sample_ids=tuple(sorted(set(my_samples))), batch_id=b.batch_id, parameter=b.parameter,
            site_id=one_site(sites, my_samples), responsible_user_id=batch.analyst_id,
            occurred_at=batch.submitted_at)


# ---------------------------------------------------------------- A05 digit preference


A05_WORDING = ("last significant digit of the reported value (rounded to the reporting precision, GB/T 8170; "
               "below-MDL results excluded) per analyst × parameter × quarter: χ² against uniform (df 9) > chi2 "
               "when n ≥ min_n (DOMAIN.md §7 A05)")


@dataclass
class Quarter:
    analyst_id: int
    parameter: str
    label: str
    start: datetime
    end: datetime
    counts: list[int] = field(default_factory=lambda: [0] * 10)
    judged: bool = False

    @property
    def n(self) -> int:
        return sum(self.counts)

    def chi2(self) -> Decimal:
        """Σ (O − n/10)² / (n/10) = 10 Σ O² / n − n, exactly."""
        n = self.n
        return D(10 * sum(c * c for c in self.counts)) / D(n) - n


def last_digit(text: str, rule: Reporting) -> int:
    """The last digit of the value as reported. Most values already carry the reporting decimals
    (or fewer: padded with zeros), read off the text; the rest are rounded (GB/T 8170)."""
    places = rule.decimals
    if places is not None and places >= 0 and "E" not in text and "e" not in text:
        dot = text.find(".")
        given = 0 if dot < 0 else len(text) - dot - 1
        if given == places:
            return int(text[-1])
        if given < places:
            return 0
    return rule.rounded(D(text)).as_tuple().digits[-1]


def lab_quarters(calendar: LabCalendar, first: datetime, last: datetime) -> list[tuple[str, datetime, datetime]]:
    """The lab's calendar quarters (label, UTC start, UTC end) from the one holding `first` to
    the one holding `last`."""
    local = calendar.local_date(first)
    year, month = local.year, (local.month - 1) // 3 * 3 + 1
    found: list[tuple[str, datetime, datetime]] = []
    while True:
        start = calendar.start_of(date(year, month, 1))
        if start > last:
            return found
        next_year, next_month = (year + 1, 1) if month == 10 else (year, month + 3)
        found.append((f"{year}Q{(month - 1) // 3 + 1}", start, calendar.start_of(date(next_year, next_month, 1))))
        year, month = next_year, next_month


@register
class DigitPreference(AnomalyRule):
    code = "A05"
    title_zh = "末位数字偏好"
    title_en = "Digit preference"
    why_zh = "测得值的末位数字应近似均匀分布，明显偏好某些数字说明数据可能是编造的"
    why_en = ("measured values end in every digit about equally often; a preference for some digits suggests "
              "invented numbers")
    thresholds = (
        Threshold("chi2", D("21.67"), D(10), D(100), "χ²阈值（自由度9）", "χ² threshold (df 9)"),
        Threshold("min_n", D(50), D(20), D(10000), "最少结果数", "minimum results", integer=True),
    )
    # a pattern over a quarter's work, not an error in one result: reviewers see it in the
    # checklist, the reports are not held for it
    blocks_issue = False
    on_submission = False

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        threshold, min_n = limits["chi2"], count_of(limits, "min_n")
        found = [q for q in self._quarters(session, window) if q.judged and q.n >= min_n and q.chi2() > threshold]
        if not found:
            return
        names = user_names(session, (q.analyst_id for q in found))
        for q in sorted(found, key=lambda q: (q.analyst_id, q.parameter, q.start)):
            sample_ids, last_at = self._samples_and_last(session, q, window)
            chi2 = q.chi2().quantize(D("0.01"))
            zh_name, en_name = names.get(q.analyst_id, (f"#{q.analyst_id}", f"#{q.analyst_id}"))
            top = sorted(range(10), key=lambda d: (-q.counts[d], d))[:3]
            common = "、".join(f"{d}（{q.counts[d]}次）" for d in top)
            common_en = ", ".join(f"{d} ({q.counts[d]}×)" for d in top)
            yield Finding(
                key=f"{q.analyst_id}|{q.parameter}|{q.label}",
                summary_zh=clip(f"分析员{zh_name} {q.label} {q.parameter} 报告值末位数字分布χ²={chi2}"
                                f"（n={q.n}，阈值>{shown(threshold)}，自由度9）；最常见末位：{common}"),
                summary_en=clip(f"Analyst {en_name} {q.label} {q.parameter}: last digits of reported values "
                                f"χ² = {chi2} (n = {q.n}, threshold > {shown(threshold)}, df 9); most frequent: "
                                f"{common_en}"),
                evidence=jsonable({"rule": A05_WORDING, "chi2_threshold": threshold, "min_n": min_n, "df": 9,
                                   "chi2": chi2, "n": q.n, "quarter": q.label,
                                   "digit_counts": {str(d): q.counts[d] for d in range(10)}}),
                sample_ids=tuple(sample_ids), parameter=q.parameter, responsible_user_id=q.analyst_id,
                occurred_at=last_at)

    def _quarters(self, session: Session, window: ScanWindow) -> Iterator[Quarter]:
        """Digit counts per analyst × parameter × lab quarter. SQL groups the results by quarter
        (a CASE over the quarters' UTC bounds) and by value text, so Python reads each distinct
        value of a quarter once, without a datetime per row."""
        r, b = AnalysisResult, AnalysisBatch
        scope = (_sample_results().join(b, b.id == r.batch_id).where(r.entered_at <= window.until))
        first = window.since
        if window.batch_ids is not None:
            ids = window.batch_ids or (-1,)
            first = session.scalar(select(func.min(AnalysisResult.entered_at)).where(AnalysisResult.batch_id.in_(ids)))
            if first is None:
                return
            scope = scope.where(b.analyst_id.in_(select(AnalysisBatch.analyst_id).where(AnalysisBatch.id.in_(ids))))
        calendar = lab_calendar(session)
        if first is None:
            first = session.scalar(select(func.min(AnalysisResult.entered_at)))
            if first is None:
                return
        quarters = lab_quarters(calendar, first, window.until)
        if not quarters:
            return
        scope = scope.where(r.entered_at >= quarters[0][1])
        which = case(*((r.entered_at < end, i) for i, (_, _, end) in enumerate(quarters)), else_=len(quarters))
        in_scan = [r.entered_at >= window.since] if window.since is not None else []
        if window.batch_ids is not None:
            in_scan.append(r.batch_id.in_(window.batch_ids or (-1,)))
        judged = case((and_(*in_scan), 1), else_=0) if in_scan else literal(1)
        rows = scope.add_columns(b.analyst_id, r.parameter, r.method_version_id, which.label("quarter"),
                                 type_coerce(r.value, String).label("value"), r.below_mdl,
                                 judged.label("judged")).subquery()
        stmt = (select(rows.c.analyst_id, rows.c.parameter, rows.c.method_version_id, rows.c.quarter, rows.c.value,
                       rows.c.below_mdl, func.count(), func.max(rows.c.judged))
                .group_by(rows.c.analyst_id, rows.c.parameter, rows.c.method_version_id, rows.c.quarter,
                          rows.c.value, rows.c.below_mdl))
        rules = reporting_rules(session)
        found: dict[tuple[int, str, int], Quarter] = {}
        rows = streaming(session).connection().execute(stmt, execution_options=STREAM)
        for analyst_id, parameter, version, index, value, below, n, in_window_ in rows:
            rule = rules.get((version, parameter), NO_RULE)
            if index >= len(quarters) or rule.below_mdl(D(value), below):
                continue
            quarter = found.get((analyst_id, parameter, index))
            if quarter is None:
                label, start, end = quarters[index]
                quarter = found[(analyst_id, parameter, index)] = Quarter(analyst_id, parameter, label, start, end)
            quarter.counts[last_digit(value, rule)] += n
            quarter.judged = quarter.judged or bool(in_window_)
        yield from found.values()

    def _samples_and_last(self, session: Session, q: Quarter, window: ScanWindow) -> tuple[list[int], datetime | None]:
        """The samples of a flagged quarter (for the review checklists) and its last entry."""
        r, b = AnalysisResult, AnalysisBatch
        rows = session.execute(_sample_results().add_columns(r.sample_id, r.entered_at).join(b, b.id == r.batch_id)
                               .where(b.analyst_id == q.analyst_id, r.parameter == q.parameter,
                                      r.entered_at >= q.start, r.entered_at < q.end,
                                      r.entered_at <= window.until, ~r.below_mdl)).all()
        return sorted({sample for sample, _ in rows}), max((at for _, at in rows), default=None)
