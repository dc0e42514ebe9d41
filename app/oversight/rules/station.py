"""Anomaly rule A13 (DOMAIN.md §7): an automatic station's reading against the manual result of
the same site, parameter and time. Manual comparison of automatic monitoring is required [HLJ 12;
LN 十]; a large difference means the analyser or the manual sample is wrong. Not blocking: a
prompt to compare (the criteria of HJ 915-2017 / HJ 355-2019 are app defaults to verify).

The scan reads the (site, parameter) pairs that have readings, then per pair the manual results
collected at that site (current revisions, with the method's MDL) and the readings over their time
span, and matches each result with the reading closest to its collection time by bisection.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisBatch, AnalysisResult, MethodParameter
from app.analysis.results import _current_filter
from app.core.labtime import lab_calendar
from app.oversight.models import StationImport, StationReading
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, jsonable, register
from app.oversight.rules.gates import in_window, judged, local
from app.samples.models import Sample, SampleKind
from app.sites.models import Site

D = Decimal
BLANK_KINDS = (SampleKind.FIELD_BLANK.value, SampleKind.TRANSPORT_BLANK.value)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _shown(value: Decimal) -> str:
    """A computed value as a reader reads it (four decimals at most); judged at full precision."""
    exponent = value.as_tuple().exponent
    return format(value.quantize(D("0.0001")) if isinstance(exponent, int) and exponent < -4 else value, "f")


def _text(value: Decimal) -> str:
    return format(value, "f")


def discrepancy(manual: Decimal, automatic: Decimal, mdl: Decimal, limits: Limits) -> tuple[bool, str, Decimal]:
    """(beyond the allowed deviation, which criterion, the measure compared): relative above
    `mdl_factor` × MDL, absolute in MDLs below it."""
    difference = abs(automatic - manual)
    if manual > limits["mdl_factor"] * mdl and manual > 0:
        relative = difference / manual * 100
        return relative > limits["rel_pct"], "relative", relative.quantize(D("0.01"))
    return difference > limits["abs_mdl_multiple"] * mdl, "absolute", difference


@register
class StationVersusManual(AnomalyRule):
    code = "A13"
    title_zh = "自动监测与手工监测结果偏差过大"
    title_en = "Automatic station vs manual result discrepancy"
    why_zh = "同点位同时段自动站与手工结果偏差超限，说明仪器或手工样品之一有误"
    why_en = "A station reading far from the manual result at the same site and time means one of them is wrong"
    blocks_issue = False
    thresholds = (
        Threshold("window_minutes", D("60"), D("5"), D("360"), "时间窗（分钟，±）", "Time window (minutes, ±)",
                  integer=True),
        Threshold("rel_pct", D("20"), D("5"), D("100"), "相对偏差上限 %", "Relative deviation limit %"),
        Threshold("mdl_factor", D("4"), D("1"), D("20"), "用相对偏差的下限（MDL 的倍数）",
                  "Relative criterion above (multiple of the MDL)"),
        Threshold("abs_mdl_multiple", D("2"), D("1"), D("20"), "低浓度绝对偏差上限（MDL 的倍数）",
                  "Absolute deviation limit at low levels (multiple of the MDL)"),
    )

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        calendar = lab_calendar(session)
        span = timedelta(minutes=int(limits["window_minutes"]))
        pairs = session.execute(select(StationReading.site_id, StationReading.parameter).distinct()
                                .order_by(StationReading.site_id, StationReading.parameter)).all()
        if window.batch_ids is not None and pairs:  # a submission: only the batch's sites and parameters
            wanted = set(session.execute(select(Sample.site_id, AnalysisResult.parameter).distinct()
                                         .join(Sample, Sample.id == AnalysisResult.sample_id)
                                         .where(AnalysisResult.batch_id.in_(window.batch_ids))).all())
            pairs = [p for p in pairs if tuple(p) in wanted]
        codes = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_(sorted({p[0] for p in pairs}))))
                     .all()) if pairs else {}
        for site_id, parameter in pairs:
            fresh_imports = session.scalar(select(func.count()).select_from(StationReading).join(
                StationImport, StationImport.id == StationReading.import_id).where(
                StationReading.site_id == site_id, StationReading.parameter == parameter,
                in_window(StationImport.imported_at, window))) if window.batch_ids is None else 0
            stmt = (select(AnalysisResult.sample_id, AnalysisResult.value, AnalysisResult.unit,
                           AnalysisResult.batch_id, AnalysisResult.entered_at, AnalysisBatch.analyst_id,
                           Sample.sample_no, Sample.collected_at, MethodParameter.mdl)
                    .join(Sample, Sample.id == AnalysisResult.sample_id)
                    .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
                    .join(MethodParameter, (MethodParameter.method_version_id == AnalysisResult.method_version_id)
                          & (MethodParameter.parameter == AnalysisResult.parameter))
                    .where(Sample.site_id == site_id, AnalysisResult.parameter == parameter,
                           Sample.collected_at.is_not(None), Sample.kind.not_in(BLANK_KINDS), _current_filter()))
            if window.batch_ids is not None:
                stmt = stmt.where(AnalysisResult.batch_id.in_(window.batch_ids))
            elif not fresh_imports:
                stmt = stmt.where(in_window(AnalysisResult.entered_at, window))
            results = session.execute(stmt.order_by(Sample.collected_at)).all()
            if not results:
                continue
            low = _aware(results[0].collected_at) - span
            high = _aware(results[-1].collected_at) + span
            readings = session.execute(
                select(StationReading.id, StationReading.measured_at, StationReading.value, StationReading.unit,
                       StationImport.imported_at)
                .join(StationImport, StationImport.id == StationReading.import_id)
                .where(StationReading.site_id == site_id, StationReading.parameter == parameter,
                       StationReading.measured_at >= low, StationReading.measured_at <= high)
                .order_by(StationReading.measured_at, StationReading.id)).all()
            times = [_aware(r.measured_at) for r in readings]
            for sid, value, unit, bid, entered_at, analyst, sample_no, collected_at, mdl in results:
                collected = _aware(collected_at)
                i = bisect.bisect_left(times, collected)
                near = [j for j in (i - 1, i) if 0 <= j < len(times) and abs(times[j] - collected) <= span]
                if not near:
                    continue
                j = min(near, key=lambda k: (abs(times[k] - collected), times[k]))
                reading = readings[j]
                if window.batch_ids is None and not (judged(_aware(entered_at), window)
                                                     or judged(_aware(reading.imported_at), window)):
                    continue
                if reading.unit.strip().casefold() != (unit or "").strip().casefold():
                    continue  # different units: not compared (a station reporting µg/L against mg/L)
                beyond, criterion, measure = discrepancy(value, reading.value, mdl, limits)
                if not beyond:
                    continue
                code = codes.get(site_id, str(site_id))
                minutes = int(abs(times[j] - collected).total_seconds() // 60)
                yield Finding(
                    key=f"{sid}:{parameter}:{reading.id}",
                    summary_zh=f"点位 {code} 样品 {sample_no} 的 {parameter} 手工结果 {_shown(value)} {unit} 与自动站 "
                               f"{_text(reading.value)} {reading.unit}（{local(calendar, times[j])}）偏差超限",
                    summary_en=f"Site {code}, sample {sample_no}: manual {parameter} {_shown(value)} {unit} vs "
                               f"station {_text(reading.value)} {reading.unit} ({local(calendar, times[j])}) beyond "
                               f"the allowed deviation",
                    evidence=jsonable({
                        "site": code, "sample_no": sample_no, "parameter": parameter, "manual": value,
                        "automatic": reading.value, "unit": unit, "mdl": mdl, "collected_at": collected,
                        "reading_at": times[j], "minutes_apart": minutes, "criterion": criterion,
                        "deviation": _shown(measure),
                        "threshold": {name: limits[name] for name in
                                      ("window_minutes", "rel_pct", "mdl_factor", "abs_mdl_multiple")},
                        "rule": "|a − m|/m > rel_pct % when m > mdl_factor × MDL, else |a − m| > "
                                "abs_mdl_multiple × MDL (DOMAIN.md §7 A13)"}),
                    sample_ids=(sid,), batch_id=bid, parameter=parameter, site_id=site_id,
                    responsible_user_id=analyst, occurred_at=collected)
