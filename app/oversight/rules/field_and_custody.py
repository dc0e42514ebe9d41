"""Anomaly rule A18 (DOMAIN.md §7): custody and field QC. A sample whose custody cannot be shown
(a gap in its chain), a field blank whose result is above the method's detection limit (the
whole procedure contaminated it), and a field duplicate whose relative deviation from its
original exceeds the method's duplicate limit. One finding per sample × issue.

Custody gaps are read from the indexed `Sample.custody_gap` flag; field QC from the current
results of field blanks and duplicates only (Sample.kind narrows the scan in SQL).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analysis import numbers
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, MethodParameter, MethodVersion
from app.analysis.results import _current_filter
from app.core.labtime import lab_calendar
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, jsonable, register
from app.oversight.rules.gates import in_window, judged, local, sample_numbers
from app.samples.lab_models import CustodyEvent, CustodyEventContainer
from app.samples.models import Sample, SampleKind

D = Decimal


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _text(value: Decimal) -> str:
    return format(value.normalize() if value == value.to_integral() else value, "f")


@register
class CustodyAndFieldQc(AnomalyRule):
    code = "A18"
    title_zh = "样品流转缺口或现场质控不合格"
    title_en = "Custody gap or field QC failure"
    why_zh = "流转无法证明或现场空白、现场平行不合格，样品的代表性和完整性不能保证"
    why_en = "Unshown custody or failed field blanks and duplicates leave the sample's integrity unproven"
    thresholds = (
        Threshold("blank_mdl_multiple", D("1"), D("1"), D("10"), "现场空白上限（MDL 的倍数）",
                  "Field blank limit (multiple of the MDL)"),
        Threshold("duplicate_rd_pct", D("20"), D("5"), D("100"), "现场平行相对偏差上限 %（方法未规定时）",
                  "Field duplicate RD limit % (when the method sets none)"),
    )

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        yield from self._custody_gaps(session, window)
        yield from self._field_blanks(session, window, limits["blank_mdl_multiple"])
        yield from self._field_duplicates(session, window, limits["duplicate_rd_pct"])

    # ------------------------------------------------------------ custody

    def _custody_gaps(self, session: Session, window: ScanWindow) -> Iterator[Finding]:
        """Judged at the first gap's record time (or receipt, for a flag with no gap link)."""
        first_gap = (select(CustodyEventContainer.sample_id, func.min(CustodyEvent.recorded_at).label("at"),
                            func.count().label("links"))
                     .join(CustodyEvent, CustodyEvent.id == CustodyEventContainer.event_id)
                     .where(CustodyEventContainer.gap.is_(True)).group_by(CustodyEventContainer.sample_id)
                     .subquery())
        stmt = (select(Sample.id, Sample.sample_no, Sample.site_id, Sample.sampler_id, Sample.received_at,
                       Sample.registered_at, first_gap.c.at, first_gap.c.links)
                .outerjoin(first_gap, first_gap.c.sample_id == Sample.id).where(Sample.custody_gap.is_(True)))
        if window.batch_ids is not None:
            stmt = stmt.where(Sample.id.in_(select(BatchPosition.sample_id).where(
                BatchPosition.batch_id.in_(window.batch_ids))))
        calendar = lab_calendar(session)
        for sid, no, site_id, sampler, received_at, registered_at, gap_at, links in session.execute(stmt):
            at = _aware(gap_at or received_at or registered_at)
            if window.batch_ids is None and not judged(at, window):
                continue
            yield Finding(
                key=f"custody_gap:{sid}",
                summary_zh=f"样品 {no} 的流转记录有缺口（{local(calendar, at)}）",
                summary_en=f"Sample {no} has a gap in its custody chain ({local(calendar, at)})",
                evidence=jsonable({"issue": "custody_gap", "sample_no": no, "gap_links": links or 0,
                                   "first_gap_recorded_at": at,
                                   "threshold": "every hand-over given by the holder before",
                                   "rule": "DOMAIN.md §3 custody; §7 A18"}),
                sample_ids=(sid,), site_id=site_id, responsible_user_id=sampler, occurred_at=at)

    # ------------------------------------------------------------ field blanks

    def _results_of_kind(self, session: Session, window: ScanWindow, kind: str, *columns):  # noqa: ANN202
        stmt = (select(AnalysisResult.sample_id, AnalysisResult.parameter, AnalysisResult.value,
                       AnalysisResult.batch_id, AnalysisResult.entered_at, Sample.sampler_id,
                       MethodParameter.mdl, MethodVersion.duplicate_rd_limits, AnalysisResult.unit, *columns)
                .join(Sample, Sample.id == AnalysisResult.sample_id)
                .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
                .join(MethodVersion, MethodVersion.id == AnalysisResult.method_version_id)
                .outerjoin(MethodParameter, (MethodParameter.method_version_id == AnalysisResult.method_version_id)
                           & (MethodParameter.parameter == AnalysisResult.parameter))
                .where(Sample.kind == kind, _current_filter(), in_window(AnalysisResult.entered_at, window)))
        if window.batch_ids is not None:
            stmt = stmt.where(AnalysisResult.batch_id.in_(window.batch_ids))
        return stmt

    def _field_blanks(self, session: Session, window: ScanWindow, multiple: Decimal) -> Iterator[Finding]:
        above: dict[int, list] = defaultdict(list)
        for sid, parameter, value, bid, entered_at, sampler, mdl, _, unit in session.execute(
                self._results_of_kind(session, window, SampleKind.FIELD_BLANK.value)
                .order_by(AnalysisResult.sample_id, AnalysisResult.parameter)):
            if mdl is None or value is None:
                continue
            limit = mdl * multiple
            if value > limit:
                above[sid].append((parameter, value, mdl, limit, unit, bid, _aware(entered_at), sampler))
        if not above:
            return
        names = sample_numbers(session, above)
        sites = dict(session.execute(select(Sample.id, Sample.site_id).where(Sample.id.in_(sorted(above)))).all())
        for sid, rows in sorted(above.items()):
            no = names[sid]
            listed_zh = "；".join(f"{p} {_text(v)} {u} > 检出限 {_text(m)}" for p, v, m, _, u, *_ in rows)
            listed_en = "; ".join(f"{p} {_text(v)} {u} > MDL {_text(m)}" for p, v, m, _, u, *_ in rows)
            first = rows[0]
            yield Finding(
                key=f"field_blank:{sid}",
                summary_zh=f"全程序空白 {no} 检出：{listed_zh}",
                summary_en=f"Field blank {no} above the detection limit: {listed_en}",
                evidence=jsonable({
                    "issue": "field_blank_above_mdl", "sample_no": no,
                    "results": [{"parameter": p, "value": v, "unit": u, "mdl": m, "limit": lim}
                                for p, v, m, lim, u, *_ in rows],
                    "threshold": {"blank_mdl_multiple": multiple}, "rule": "DOMAIN.md §3 field QC; §7 A18"}),
                sample_ids=(sid,), batch_id=first[5], parameter=first[0] if len(rows) == 1 else "",
                site_id=sites.get(sid), responsible_user_id=first[7], occurred_at=first[6])

    # ------------------------------------------------------------ field duplicates

    def _field_duplicates(self, session: Session, window: ScanWindow, default_pct: Decimal) -> Iterator[Finding]:
        rows = session.execute(
            self._results_of_kind(session, window, SampleKind.FIELD_DUPLICATE.value, Sample.duplicate_of_id)
            .where(Sample.duplicate_of_id.is_not(None))
            .order_by(AnalysisResult.sample_id, AnalysisResult.parameter)).all()
        if not rows:
            return
        originals = sorted({r[-1] for r in rows})
        values: dict[tuple[int, str], Decimal] = {}
        for sid, parameter, value in session.execute(
                select(AnalysisResult.sample_id, AnalysisResult.parameter, AnalysisResult.value)
                .where(AnalysisResult.sample_id.in_(originals), _current_filter())
                .order_by(AnalysisResult.entered_at)):
            values[(sid, parameter)] = value  # the latest current result if analysed in several batches
        failed: dict[int, list] = defaultdict(list)
        for sid, parameter, value, bid, entered_at, sampler, mdl, rd_limits, unit, of_id in rows:
            first = values.get((of_id, parameter))
            if first is None or value is None:
                continue
            if mdl is not None and first < mdl and value < mdl:
                continue  # both below the detection limit: no meaningful RD (as the lab duplicate)
            rd = numbers.relative_deviation_pct(first, value)
            if rd is None:
                continue
            limits = [(D(level), D(limit)) for level, limit in json.loads(rd_limits or "[]")]
            level = numbers.mean([first, value])
            limit = numbers.rd_limit_pct(level, limits) if limits else default_pct
            if rd > limit:  # judged on the exact RD; shown to 0.1 %
                shown = rd.quantize(D("0.1"))
                failed[sid].append((parameter, value, first, shown, limit, "method" if limits else "default", unit, bid,
                                    _aware(entered_at), sampler, of_id))
        if not failed:
            return
        names = sample_numbers(session, [*failed, *(r[0][10] for r in failed.values())])
        sites = dict(session.execute(select(Sample.id, Sample.site_id).where(Sample.id.in_(sorted(failed)))).all())
        for sid, found in sorted(failed.items()):
            no, of_no = names[sid], names[found[0][10]]
            listed_zh = "；".join(f"{p} {_text(v)}/{_text(f)} {u}，相对偏差 {_text(rd)}% > {_text(lim)}%"
                                 for p, v, f, rd, lim, _, u, *_ in found)
            listed_en = "; ".join(f"{p} {_text(v)}/{_text(f)} {u}, RD {_text(rd)}% > {_text(lim)}%"
                                  for p, v, f, rd, lim, _, u, *_ in found)
            first = found[0]
            yield Finding(
                key=f"field_duplicate:{sid}",
                summary_zh=f"现场平行 {no}（原样 {of_no}）超差：{listed_zh}",
                summary_en=f"Field duplicate {no} of {of_no} out of limits: {listed_en}",
                evidence=jsonable({
                    "issue": "field_duplicate_rd", "sample_no": no, "original_no": of_no,
                    "results": [{"parameter": p, "duplicate": v, "original": f, "unit": u, "rd_pct": rd,
                                 "limit_pct": lim, "limit_from": src} for p, v, f, rd, lim, src, u, *_ in found],
                    "threshold": {"duplicate_rd_pct": default_pct, "method_limits_first": True},
                    "rule": "DOMAIN.md §3 field QC; §4.2 duplicate RD; §7 A18"}),
                sample_ids=tuple(sorted({sid, first[10]})), batch_id=first[7],
                parameter=first[0] if len(found) == 1 else "", site_id=sites.get(sid),
                responsible_user_id=first[9], occurred_at=first[8])
