"""Anomaly rule A08 (DOMAIN.md §7): a result implausible against its site's history. A new
result x of a site × parameter is judged against the prior current results of that site and
parameter (collected earlier): robust z = 0.6745·(x − median)/MAD, found when |z| exceeds the
threshold. Median and MAD resist the outliers they look for; a MAD of 0 (a constant history)
gives no scale and the result is not judged. A review prompt, not proof: it does not block issue.
History: current results of sample positions, not flagged below MDL, of samples with a site and
a collection time that are not field or transport blanks, entered by the scan's end, converted to
the unit of the group's first result; results collected at the same moment are not each other's
history. Only results entered inside the window are judged. Key: the result id.

Scale: the results are streamed as narrow tuples ordered by (site, parameter, collection time)
and only the current group's last HISTORY_LIMIT values are kept, in a sorted list: the median is
read in O(1), and a count of the history inside ±0.6745·|x − median|/z tells, in O(log n),
whether the MAD can be small enough for x to be an outlier at all; only those few candidates are
computed exactly with Decimals.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, select, type_coerce
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisResult
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, chunked, register
from app.oversight.rules.chemistry import (
    batches_named,
    current_result,
    entered_in,
    in_unit,
    local_text,
    sample_position,
    samples_named,
    text,
)
from app.samples.models import Sample, SampleKind
from app.sites.models import Site

D = Decimal
HISTORY_LIMIT = 60  # the last results of a site × parameter that make its history
CONSTANT = D("0.6745")
FIELD_BLANKS = (SampleKind.FIELD_BLANK.value, SampleKind.TRANSPORT_BLANK.value)


def median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def robust_z(x: Decimal, history: list[Decimal]) -> tuple[Decimal, Decimal, Decimal | None]:
    """(median, MAD, z) of `x` against `history`; z is None when the MAD is 0."""
    center = median(history)
    mad = median([abs(v - center) for v in history])
    if mad == 0:
        return center, mad, None
    return center, mad, CONSTANT * (x - center) / mad


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


class _History:
    """The last values of one site × parameter: Decimals in order of collection, and their floats
    sorted for the quick screen."""

    def __init__(self, limit: int) -> None:
        self.values: deque[Decimal] = deque()
        self.sorted: list[float] = []
        self.limit = limit

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: Decimal) -> None:
        self.values.append(value)
        bisect.insort(self.sorted, float(value))
        if len(self.values) > self.limit:
            old = float(self.values.popleft())
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def may_be_outlier(self, x: float, z_limit: float) -> bool:
        """False when x certainly is not an outlier: |x − median| is 0, or fewer than half of the
        history lie within 0.6745·|x − median|/z of the median (so the MAD is too large)."""
        a, n = self.sorted, len(self.sorted)
        center = a[n // 2] if n % 2 else (a[n // 2 - 1] + a[n // 2]) / 2
        distance = abs(x - center)
        if distance == 0 or math.isnan(distance):
            return False
        reach = float(CONSTANT) * distance / z_limit * 1.001 + 1e-12  # a little wide: floats round
        within = bisect.bisect_left(a, center + reach) - bisect.bisect_right(a, center - reach)
        return within >= (n + 1) // 2


@register
class SiteHistoryOutlier(AnomalyRule):
    code = "A08"
    title_zh = "与点位历史数据相比异常"
    title_en = "Outlier against the site's history"
    why_zh = "与同一点位历史结果相差悬殊的数值需要复核（提示，不是证据）：可能是录入、换算或样品错误。"
    why_en = ("A value far from the site's history needs a second look (a prompt, not proof): an entry, "
              "conversion or sample mix-up.")
    thresholds = (
        Threshold("min_history", D("10"), D("5"), D("1000"), "最少历史结果数", "Minimum prior results", integer=True),
        Threshold("z", D("3.5"), D("2"), D("10"), "稳健 z 值上限", "Robust z limit"),
    )
    blocks_issue = False  # DOMAIN.md §7: a review prompt, not proof
    on_submission = False  # reads the site's whole history: scheduled and CLI scans

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        min_history = int(limits.get("min_history", D("10")))
        z_limit = limits.get("z", D("3.5"))
        history_limit = max(HISTORY_LIMIT, min_history)
        base = (
            # the times as naive UTC (plain DateTime): a million rows skip the aware conversion
            select(AnalysisResult.id, Sample.site_id, AnalysisResult.parameter,
                   type_coerce(Sample.collected_at, DateTime()), AnalysisResult.value, AnalysisResult.unit,
                   type_coerce(AnalysisResult.entered_at, DateTime()), AnalysisResult.batch_id,
                   AnalysisResult.entered_by_id, AnalysisResult.sample_id)
            .join(Sample, Sample.id == AnalysisResult.sample_id)
            .where(Sample.site_id.is_not(None), Sample.collected_at.is_not(None), Sample.kind.not_in(FIELD_BLANKS),
                   AnalysisResult.below_mdl.is_(False), AnalysisResult.entered_at <= window.until,
                   current_result(), sample_position())
        )
        wanted: set[tuple[int, str]] | None = None
        stmt = base
        if window.since is not None or window.batch_ids is not None:
            # only the site × parameter groups with a result to judge are streamed
            groups = select(Sample.site_id, AnalysisResult.parameter).distinct().select_from(AnalysisResult).join(
                Sample, Sample.id == AnalysisResult.sample_id).where(
                Sample.site_id.is_not(None), entered_in(window), sample_position())
            wanted = {(site, parameter) for site, parameter in session.execute(groups)}
            if not wanted:
                return
            sites = sorted({site for site, _ in wanted})
            parameters = sorted({parameter for _, parameter in wanted})
            if len(sites) <= 500:
                stmt = stmt.where(Sample.site_id.in_(sites))
            if len(parameters) <= 500:
                stmt = stmt.where(AnalysisResult.parameter.in_(parameters))
        stmt = stmt.order_by(Sample.site_id, AnalysisResult.parameter, Sample.collected_at,
                             AnalysisResult.id).execution_options(yield_per=5000)

        hits: list[dict[str, Any]] = []
        z_float = float(z_limit)
        group: tuple[int, str] | None = None
        history = _History(history_limit)
        unit = ""
        factors: dict[str, Decimal | None] = {}
        pending: list[tuple[Any, Decimal]] = []  # results collected at the same moment: judged, then added
        pending_at: datetime | None = None

        def settle() -> None:
            for _, value in pending:
                history.add(value)
            pending.clear()

        until = _naive(window.until)
        since = _naive(window.since) if window.since is not None else None
        batch_ids = set(window.batch_ids) if window.batch_ids is not None else None
        for row in session.connection().execute(stmt):
            rid, site_id, parameter, collected_at, value, row_unit, entered_at, batch_id, user_id, sample_id = row
            if (site_id, parameter) != group:
                settle()
                group, history, unit, factors, pending_at = (site_id, parameter), _History(history_limit), \
                    row_unit, {row_unit: D(1)}, None
            if wanted is not None and group not in wanted:
                continue
            if row_unit not in factors:
                one = in_unit(D(1), row_unit, unit)
                factors[row_unit] = one
            factor = factors[row_unit]
            if factor is None:
                continue  # a unit that cannot be compared with the group's
            x = value if factor == 1 else value * factor
            if collected_at != pending_at:
                settle()
                pending_at = collected_at
            pending.append((rid, x))
            if len(history) < min_history or entered_at > until or (since is not None and entered_at < since) \
                    or (batch_ids is not None and batch_id not in batch_ids):
                continue
            if not history.may_be_outlier(float(x), z_float):
                continue
            prior = list(history.values)
            center, mad, z = robust_z(x, prior)
            if z is None or abs(z) <= z_limit:
                continue
            hits.append({"result_id": rid, "site_id": site_id, "parameter": parameter, "sample_id": sample_id,
                         "value": x, "unit": unit, "median": center, "mad": mad, "z": z, "n": len(prior),
                         "collected_at": collected_at.replace(tzinfo=UTC),
                         "entered_at": entered_at.replace(tzinfo=UTC), "batch_id": batch_id,
                         "user_id": user_id})
        settle()
        yield from self._findings(session, hits, min_history, z_limit)

    def _findings(self, session: Session, hits: list[dict[str, Any]], min_history: int,
                  z_limit: Decimal) -> Iterator[Finding]:
        names = samples_named(session, {h["sample_id"] for h in hits})
        batch_nos = batches_named(session, {h["batch_id"] for h in hits})
        site_codes: dict[int, str] = {}
        for chunk in chunked(sorted({h["site_id"] for h in hits})):
            site_codes.update(session.execute(select(Site.id, Site.code).where(Site.id.in_(chunk))).all())
        for h in hits:
            sample_no = names.get(h["sample_id"], ("—", None))[0]
            site = site_codes.get(h["site_id"], "—")
            z = h["z"].quantize(D("0.01"))
            values = f"{text(h['value'])} {h['unit']}"
            center = f"{text(h['median'])} {h['unit']}"
            yield Finding(
                key=str(h["result_id"]),
                summary_zh=(f"点位 {site} 样品 {sample_no} {h['parameter']} = {values}，与该点位此前 {h['n']} 个结果"
                            f"（中位数 {center}，MAD {text(h['mad'])}）相比稳健 z = {z}，超过 ±{text(z_limit)}"),
                summary_en=(f"Site {site} sample {sample_no} {h['parameter']} = {values}: robust z = {z} against "
                            f"the site's {h['n']} prior results (median {center}, MAD {text(h['mad'])}), "
                            f"beyond ±{text(z_limit)}"),
                evidence={
                    "rule": "robust z = 0.6745·(x − median)/MAD over the prior results of the site and parameter",
                    "result_id": h["result_id"], "value": text(h["value"]), "unit": h["unit"],
                    "median": text(h["median"]), "mad": text(h["mad"]), "z": text(z), "history_n": h["n"],
                    "collected_at": local_text(session, h["collected_at"]), "site": site,
                    "batch_no": batch_nos.get(h["batch_id"], ""),
                    "thresholds": {"min_history": str(min_history), "z": text(z_limit)},
                },
                sample_ids=(h["sample_id"],), batch_id=h["batch_id"], parameter=h["parameter"], site_id=h["site_id"],
                responsible_user_id=h["user_id"], occurred_at=h["entered_at"],
            )
