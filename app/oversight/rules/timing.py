"""Anomaly rules on time (DOMAIN.md §7): A09 time travel (analysis before sampling or receipt,
receipt before sampling, a signature older than the data it signs), A10 holding time exceeded
without a deviation, A11 a result revised after the sample's report was checked, A12 bulk
entries at unusual hours and back-dated entries. Forged or back-filled times are among the
commonest fabrications [175].

Times are compared in SQL where both engines agree (two timestamp columns); where a rule needs
"n hours later" or the lab's local hour, the SQL narrows the candidates by dialect and Python
decides exactly.

Keys (stable across rescans):
- A09 "analysis:<batch>:<sample>" (a current result measured, or its batch started, before the
  sample's collection or receipt; judged by result entry), "receipt:<sample>" (received_at <
  collected_at; judged by receipt time), "submitted:<batch>" (submitted_at < started_at; judged by
  submission), "signature:<batch>:<signature id or 0>" (current results entered after the
  batch's current signature while that signature still holds, i.e. it covers data younger than
  itself; for a batch submitted without an e-signature row, first entries without a reason
  entered after submitted_at).
- A10 "<sample>:<parameter>:<batch>": analysis start (batch started_at, else measured_at) −
  collection (sample collected_at, else the clock's start) > HoldingClock.allowed_hours, no
  HoldingDeviation of that sample × parameter; clocks without allowed_hours are not judged.
- A11 "<result id>": a revision (revision ≥ 2) entered after a signed `check` act of a report
  covering the sample, unless a level returned that report between the last such check and the
  revision (the revision is then the correction review asked for, and review restarts over it).
- A12 "bulk:<user>:<first result id of the burst>": ≥ bulk_count entries (any revision) by one
  user within bulk_minutes, each outside day_start–day_end or on a Saturday/Sunday, lab time;
  overlapping windows make one burst; "backdate:<batch>:<user>": first entries (revision 1)
  entered more than backdate_hours after their measured_at (corrections keep the measurement
  time and are not back-dating).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, cast, exists, func, literal_column, or_, select, true
from sqlalchemy.orm import Session, aliased

from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, chunked, register
from app.oversight.rules.chemistry import (
    batches_named,
    current_result,
    entered_in,
    inside,
    local_text,
    sample_position,
    samples_named,
)
from app.people.models import User
from app.reports.models import Report, ReportSample, ReviewAct, ReviewLevel, ReviewOutcome
from app.samples.lab_models import HoldingClock, HoldingDeviation, SampleReceipt
from app.samples.models import Sample

D = Decimal


def _hours(delta: timedelta) -> str:
    return format((D(delta.total_seconds()) / 3600).quantize(D("0.1")), "f")


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunked(sorted(i for i in ids if i is not None)):
        for uid, zh, en, username in session.execute(select(User.id, User.display_name_zh, User.display_name_en,
                                                            User.username).where(User.id.in_(chunk))):
            found[uid] = zh or en or username
    return found


def _window_samples(window: ScanWindow) -> Any:
    """SQL condition on Sample: in one of the window's batches (true when the window has none)."""
    if window.batch_ids is None:
        return true()
    return exists().where(BatchPosition.sample_id == Sample.id, BatchPosition.batch_id.in_(window.batch_ids))


# ---------------------------------------------------------------- A09


@register
class TimeTravel(AnomalyRule):
    code = "A09"
    title_zh = "时间倒置"
    title_en = "Time travel"
    why_zh = "分析早于采样或接收、接收早于采样、签名早于所签数据：时间被伪造或补录。"
    why_en = ("Analysis before sampling or receipt, receipt before sampling, a signature older than the data it "
              "signs: the times were forged or back-filled.")
    thresholds = ()
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        yield from self._analysis_before_sample(session, window)
        yield from self._receipt_before_collection(session, window)
        yield from self._signed_before_analysis(session, window)
        yield from self._data_after_signature(session, window)

    def _analysis_before_sample(self, session: Session, window: ScanWindow) -> Iterator[Finding]:
        r, b, s = AnalysisResult, AnalysisBatch, Sample
        stmt = (
            select(r.id, r.batch_id, r.sample_id, r.parameter, r.measured_at, r.entered_at, b.started_at,
                   b.analyst_id, s.collected_at, s.received_at, s.sample_no, s.site_id, b.batch_no)
            .join(b, b.id == r.batch_id).join(s, s.id == r.sample_id)
            .where(entered_in(window), current_result(), sample_position(),
                   or_(r.measured_at < s.collected_at, r.measured_at < s.received_at,
                       b.started_at < s.collected_at, b.started_at < s.received_at))
            .order_by(r.batch_id, r.sample_id, r.id)
        )
        groups: dict[tuple[int, int], list[Any]] = {}
        for row in session.execute(stmt):
            groups.setdefault((row.batch_id, row.sample_id), []).append(row)
        for (batch_id, sample_id), rows in groups.items():
            first = rows[0]
            analysed = min([x.measured_at for x in rows] + ([first.started_at] if first.started_at else []))
            before = []
            if first.collected_at is not None and analysed < first.collected_at:
                before.append(("采样", "collection", first.collected_at))
            if first.received_at is not None and analysed < first.received_at:
                before.append(("接收", "receipt", first.received_at))
            if not before:
                continue
            at = local_text(session, analysed)
            what_zh = "、".join(f"{zh}（{local_text(session, t)}）" for zh, _, t in before)
            what_en = " and ".join(f"{en} ({local_text(session, t)})" for _, en, t in before)
            yield Finding(
                key=f"analysis:{batch_id}:{sample_id}",
                summary_zh=f"样品 {first.sample_no} 在分析批 {first.batch_no} 中于 {at} 分析，早于{what_zh}",
                summary_en=f"Sample {first.sample_no} was analysed in batch {first.batch_no} at {at}, before {what_en}",
                evidence={
                    "rule": "analysis (batch start / measurement) before collection or receipt",
                    "kind": "analysis_before_" + "_and_".join(en for _, en, _ in before),
                    "analysed_at": analysed.isoformat(), "batch_started_at": _iso(first.started_at),
                    "measured_at": {x.parameter: x.measured_at.isoformat() for x in rows},
                    "collected_at": _iso(first.collected_at), "received_at": _iso(first.received_at),
                    "result_ids": [x.id for x in rows], "batch_no": first.batch_no, "thresholds": {},
                },
                sample_ids=(sample_id,), batch_id=batch_id, parameter=rows[0].parameter, site_id=first.site_id,
                responsible_user_id=first.analyst_id, occurred_at=analysed,
            )

    def _receipt_before_collection(self, session: Session, window: ScanWindow) -> Iterator[Finding]:
        s = Sample
        conditions = [s.received_at < s.collected_at, s.received_at <= window.until, _window_samples(window)]
        if window.since is not None:
            conditions.append(s.received_at >= window.since)
        stmt = (select(s.id, s.sample_no, s.site_id, s.collected_at, s.received_at, s.sampler_id,
                       SampleReceipt.received_by_id)
                .outerjoin(SampleReceipt, SampleReceipt.sample_id == s.id).where(*conditions).order_by(s.id))
        for sid, no, site_id, collected, received, sampler, receiver in session.execute(stmt):
            yield Finding(
                key=f"receipt:{sid}",
                summary_zh=(f"样品 {no} 的接收时间 {local_text(session, received)} 早于采样时间 "
                            f"{local_text(session, collected)}"),
                summary_en=(f"Sample {no} was received at {local_text(session, received)}, before it was collected "
                            f"at {local_text(session, collected)}"),
                evidence={"rule": "receipt before collection", "kind": "receipt_before_collection",
                          "collected_at": _iso(collected), "received_at": _iso(received), "thresholds": {}},
                sample_ids=(sid,), site_id=site_id, responsible_user_id=receiver or sampler, occurred_at=received,
            )

    def _signed_before_analysis(self, session: Session, window: ScanWindow) -> Iterator[Finding]:
        """A batch submitted (signed) before its analysis started."""
        b = AnalysisBatch
        conditions = [b.submitted_at < b.started_at, b.submitted_at <= window.until]
        if window.since is not None:
            conditions.append(b.submitted_at >= window.since)
        if window.batch_ids is not None:
            conditions.append(b.id.in_(window.batch_ids))
        rows = session.execute(select(b.id, b.batch_no, b.started_at, b.submitted_at, b.analyst_id)
                               .where(*conditions).order_by(b.id)).all()
        for batch_id, batch_no, started, submitted, analyst in rows:
            samples = _batch_samples(session, batch_id)
            yield Finding(
                key=f"submitted:{batch_id}",
                summary_zh=(f"分析批 {batch_no} 的提交签名时间 {local_text(session, submitted)} 早于分析开始时间 "
                            f"{local_text(session, started)}"),
                summary_en=(f"Batch {batch_no} was signed at {local_text(session, submitted)}, before its analysis "
                            f"started at {local_text(session, started)}"),
                evidence={"rule": "signature before the data it signs", "kind": "signed_before_analysis",
                          "submitted_at": _iso(submitted), "started_at": _iso(started), "thresholds": {}},
                sample_ids=samples, batch_id=batch_id, responsible_user_id=analyst, occurred_at=submitted,
            )

    def _data_after_signature(self, session: Session, window: ScanWindow) -> Iterator[Finding]:
        """Current results entered after the batch's current signature. A correction after the
        signature breaks it and waits for the re-signature (normal, and A11's business once
        reviewed); a signature that still holds over data entered after it had a forged time.
        A batch submitted without an e-signature row: a first entry (no correction reason)
        after the submission time."""
        r, b, sig = AnalysisResult, AnalysisBatch, ElectronicSignature
        signed = session.execute(
            select(r.id, r.batch_id, r.entered_at, sig.signed_at, b.signature_id)
            .join(b, b.id == r.batch_id).join(sig, sig.id == b.signature_id)
            .where(entered_in(window), current_result(), r.entered_at > sig.signed_at)
            .order_by(r.batch_id, r.id)).all()
        unsigned = session.execute(
            select(r.id, r.batch_id, r.entered_at, b.submitted_at, b.signature_id)
            .join(b, b.id == r.batch_id)
            .where(entered_in(window), current_result(), b.signature_id.is_(None), b.submitted_at.is_not(None),
                   r.entered_at > b.submitted_at, or_(r.revision == 1, r.reason == ""))
            .order_by(r.batch_id, r.id)).all()
        late: dict[int, list[Any]] = {}
        for row in signed:
            late.setdefault(row.batch_id, []).append(row)
        if late:
            from app.analysis.submission import signature_views

            batches = list(session.scalars(select(AnalysisBatch).where(AnalysisBatch.id.in_(sorted(late)))))
            views = signature_views(session, batches)
            late = {i: rows for i, rows in late.items() if views.get(i) is not None and views[i].intact}
        for row in unsigned:
            late.setdefault(row.batch_id, []).append(row)
        if not late:
            return
        info = {i: (no, analyst) for i, no, analyst in session.execute(
            select(b.id, b.batch_no, b.analyst_id).where(b.id.in_(sorted(late))))}
        for batch_id, rows in sorted(late.items()):
            batch_no, analyst = info[batch_id]
            signed_at = rows[0][3]
            last = max(x.entered_at for x in rows)
            yield Finding(
                key=f"signature:{batch_id}:{rows[0][4] or 0}",
                summary_zh=(f"分析批 {batch_no} 的签名时间 {local_text(session, signed_at)} 早于其所签的 {len(rows)} "
                            f"个结果的录入时间（最晚 {local_text(session, last)}）"),
                summary_en=(f"Batch {batch_no} was signed at {local_text(session, signed_at)}, before {len(rows)} "
                            f"result(s) it signs were entered (last at {local_text(session, last)})"),
                evidence={"rule": "signature before the data it signs", "kind": "signed_before_data",
                          "signed_at": _iso(signed_at), "last_entered_at": _iso(last),
                          "result_ids": [x.id for x in rows][:50], "results": len(rows), "thresholds": {}},
                sample_ids=_batch_samples(session, batch_id), batch_id=batch_id, responsible_user_id=analyst,
                occurred_at=signed_at,
            )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _batch_samples(session: Session, batch_id: int) -> tuple[int, ...]:
    return tuple(sorted(set(session.scalars(select(BatchPosition.sample_id).where(
        BatchPosition.batch_id == batch_id, BatchPosition.sample_id.is_not(None))))))


# ---------------------------------------------------------------- A10


@register
class HoldingTimeExceeded(AnomalyRule):
    code = "A10"
    title_zh = "超过保存期分析且无偏离批准"
    title_en = "Analysed after the holding time without a deviation"
    why_zh = "超过保存期的样品结果不再代表采样时的状况；没有质量负责人批准的偏离就不能报出。"
    why_en = ("A result analysed after the holding time no longer represents the sample as collected; without "
              "the quality manager's deviation it cannot be reported.")
    thresholds = ()
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        r, b, s, clock = AnalysisResult, AnalysisBatch, Sample, HoldingClock
        start = func.coalesce(b.started_at, r.measured_at)
        deviation = exists().where(HoldingDeviation.sample_id == r.sample_id,
                                   HoldingDeviation.parameter == r.parameter)
        stmt = (
            select(r.id, r.batch_id, r.sample_id, r.parameter, r.measured_at, r.entered_at, b.started_at,
                   b.analyst_id, b.batch_no, s.sample_no, s.site_id, s.collected_at,
                   clock.started_at.label("clock_started_at"), clock.allowed_hours)
            .join(b, b.id == r.batch_id).join(s, s.id == r.sample_id)
            .join(clock, and_(clock.sample_id == r.sample_id, clock.parameter == r.parameter))
            .where(entered_in(window), current_result(), sample_position(), clock.allowed_hours.is_not(None),
                   ~deviation,
                   or_(clock.deadline_at.is_(None), start > clock.deadline_at,
                       s.collected_at != clock.started_at))
            .order_by(r.sample_id, r.parameter, r.batch_id, r.id)
        )
        seen: set[tuple[int, str, int]] = set()
        for row in session.execute(stmt):
            key = (row.sample_id, row.parameter, row.batch_id)
            if key in seen:
                continue
            collected = row.collected_at or row.clock_started_at
            analysed = row.started_at or row.measured_at
            allowed = timedelta(hours=row.allowed_hours)
            if analysed - collected <= allowed:
                continue
            seen.add(key)
            elapsed = _hours(analysed - collected)
            yield Finding(
                key=f"{row.sample_id}:{row.parameter}:{row.batch_id}",
                summary_zh=(f"样品 {row.sample_no} {row.parameter} 于 {local_text(session, analysed)} 开始分析"
                            f"（分析批 {row.batch_no}），距采样 {elapsed} h，超过保存期 {row.allowed_hours} h，"
                            f"且无偏离批准"),
                summary_en=(f"Sample {row.sample_no} {row.parameter} analysed at {local_text(session, analysed)} "
                            f"(batch {row.batch_no}), {elapsed} h after collection, beyond the holding time of "
                            f"{row.allowed_hours} h, without a deviation"),
                evidence={"rule": "analysis start − collection > holding time, no deviation",
                          "collected_at": _iso(collected), "analysis_started_at": _iso(analysed),
                          "elapsed_hours": elapsed, "allowed_hours": row.allowed_hours, "batch_no": row.batch_no,
                          "result_id": row.id, "thresholds": {"allowed_hours": row.allowed_hours}},
                sample_ids=(row.sample_id,), batch_id=row.batch_id, parameter=row.parameter, site_id=row.site_id,
                responsible_user_id=row.analyst_id, occurred_at=analysed,
            )


# ---------------------------------------------------------------- A11


@register
class ChangedAfterReview(AnomalyRule):
    code = "A11"
    title_zh = "审核开始后修改结果"
    title_en = "Result changed after review"
    why_zh = "校核签字后修改结果，校核和审核所见已不是报出的数据：必须说明并处置。"
    why_en = "A result revised after the check was signed is no longer what the checker and reviewer saw."
    thresholds = ()
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        r = AnalysisResult
        # the last check signed on a report covering the sample before the revision was entered...
        check, covered = aliased(ReviewAct), aliased(ReportSample)
        checked_at = (
            select(func.max(check.acted_at))
            .join(covered, covered.report_id == check.report_id)
            .where(covered.sample_id == r.sample_id, check.level == ReviewLevel.CHECK.value,
                   check.outcome == ReviewOutcome.SIGNED.value, check.acted_at < r.entered_at)
            .correlate(r).scalar_subquery()
        )
        # ...unless a level returned that report afterwards: the revision answers the return (the
        # correction review asked for, with its reason), and review restarts over the new data
        returned, returned_covers = aliased(ReviewAct), aliased(ReportSample)
        answered = (
            exists().where(returned_covers.report_id == returned.report_id, returned_covers.sample_id == r.sample_id,
                           returned.outcome == ReviewOutcome.RETURNED.value, returned.acted_at > checked_at,
                           returned.acted_at <= r.entered_at)
            .correlate(r)
        )
        candidates = (
            select(r.id, r.batch_id, r.sample_id, r.parameter, r.revision, r.reason, r.entered_at, r.entered_by_id,
                   checked_at.label("checked_at"))
            .where(r.revision > 1, r.sample_id.is_not(None), entered_in(window))
            .subquery()
        )
        rows = [x for x in session.execute(
            select(candidates).where(candidates.c.checked_at.is_not(None)).order_by(candidates.c.id)).all()]
        if rows:
            kept = set(session.scalars(
                select(r.id).where(r.id.in_([x.id for x in rows]), ~answered)))
            rows = [x for x in rows if x.id in kept]
        if not rows:
            return
        names = samples_named(session, {x.sample_id for x in rows})
        batch_nos = batches_named(session, {x.batch_id for x in rows})
        reports = self._first_checked_reports(session, {x.sample_id for x in rows})
        for x in rows:
            sample_no, site_id = names.get(x.sample_id, ("—", None))
            report_no = reports.get(x.sample_id, "")
            yield Finding(
                key=str(x.id),
                summary_zh=(f"样品 {sample_no} {x.parameter} 在报告 {report_no} 校核签字"
                            f"（{local_text(session, x.checked_at)}）后于 {local_text(session, x.entered_at)} "
                            f"被修改为第 {x.revision} 版：{x.reason}"),
                summary_en=(f"Sample {sample_no} {x.parameter} was revised (revision {x.revision}) at "
                            f"{local_text(session, x.entered_at)}, after report {report_no} was checked at "
                            f"{local_text(session, x.checked_at)}: {x.reason}"),
                evidence={"rule": "a result revision entered after the check of a report covering the sample",
                          "result_id": x.id, "revision": x.revision, "reason": x.reason,
                          "entered_at": _iso(x.entered_at), "checked_at": _iso(x.checked_at), "report_no": report_no,
                          "batch_no": batch_nos.get(x.batch_id, ""), "thresholds": {}},
                sample_ids=(x.sample_id,), batch_id=x.batch_id, parameter=x.parameter, site_id=site_id,
                responsible_user_id=x.entered_by_id, occurred_at=x.entered_at,
            )

    @staticmethod
    def _first_checked_reports(session: Session, sample_ids: set[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in chunked(sorted(sample_ids)):
            for sample_id, report_no in session.execute(
                    select(ReportSample.sample_id, Report.report_no)
                    .join(ReviewAct, ReviewAct.report_id == ReportSample.report_id)
                    .join(Report, Report.id == ReportSample.report_id)
                    .where(ReportSample.sample_id.in_(chunk), ReviewAct.level == ReviewLevel.CHECK.value,
                           ReviewAct.outcome == ReviewOutcome.SIGNED.value)
                    .order_by(ReviewAct.acted_at.desc(), ReviewAct.id.desc())):
                found[sample_id] = report_no  # the earliest check is read last
        return found


# ---------------------------------------------------------------- A12


@dataclass
class _Entry:
    seq: int  # order of the user's off-hours entries
    at: datetime
    result_id: int
    batch_id: int
    sample_id: int | None


@dataclass
class _Burst:
    user_id: int
    entries: list[_Entry] = field(default_factory=list)


@register
class BulkOrBackdatedEntry(AnomalyRule):
    code = "A12"
    title_zh = "非工作时间批量录入或补录"
    title_en = "Bulk off-hours or back-dated entry"
    why_zh = "深夜或周末短时间内大量录入、测定时间远早于录入时间：常见于事后补造数据。"
    why_en = "Many results typed in minutes at night or on a weekend, or long after the measurement: back-filling."
    thresholds = (
        Threshold("bulk_count", D("20"), D("5"), D("1000"), "批量条数", "Results in a burst", integer=True),
        Threshold("bulk_minutes", D("30"), D("5"), D("1440"), "时间窗（分钟）", "Within (minutes)", integer=True),
        Threshold("day_start", D("8"), D("0"), D("23"), "工作时间开始（时）", "Working day starts (hour)",
                  integer=True),
        Threshold("day_end", D("18"), D("1"), D("24"), "工作时间结束（时）", "Working day ends (hour)", integer=True),
        Threshold("backdate_hours", D("24"), D("1"), D("720"), "补录间隔（小时）", "Back-dated after (hours)"),
    )
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        yield from self._bulk(session, window, limits)
        yield from self._backdated(session, window, limits)

    # ------------------------------------------------------------ bulk

    def _bulk(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        count = int(limits.get("bulk_count", D("20")))
        span = timedelta(minutes=int(limits.get("bulk_minutes", D("30"))))
        day_start, day_end = int(limits.get("day_start", D("8"))), int(limits.get("day_end", D("18")))
        tz = lab_calendar(session).tz
        r = AnalysisResult
        conditions = [r.entered_at <= window.until]
        if window.batch_ids is not None:
            # the batches' enterers around the time they entered them
            bounds = session.execute(select(r.entered_by_id, func.min(r.entered_at), func.max(r.entered_at))
                                     .where(r.batch_id.in_(window.batch_ids)).group_by(r.entered_by_id)).all()
            if not bounds:
                return
            conditions.append(or_(*(and_(r.entered_by_id == user, r.entered_at >= low - span,
                                         r.entered_at <= high + span) for user, low, high in bounds)))
        elif window.since is not None:
            conditions.append(r.entered_at >= window.since - span)
        off_hours = _off_hours_sql(session, r.entered_at, tz, day_start, day_end)
        if off_hours is not None:
            conditions.append(off_hours)
        stmt = (select(r.entered_by_id, r.entered_at, r.id, r.batch_id, r.sample_id).where(*conditions)
                .order_by(r.entered_by_id, r.entered_at, r.id).execution_options(yield_per=5000))

        bursts: list[_Burst] = []
        user: int | None = None
        recent: deque[_Entry] = deque()
        current: _Burst | None = None
        seq = 0
        for user_id, at, rid, batch_id, sample_id in session.execute(stmt):
            local = at.astimezone(tz)
            if not (local.weekday() >= 5 or local.hour < day_start or local.hour >= day_end):
                continue
            if user_id != user:
                user, recent, current, seq = user_id, deque(), None, 0
            seq += 1
            entry = _Entry(seq, at, rid, batch_id, sample_id)
            recent.append(entry)
            while at - recent[0].at > span:
                recent.popleft()
            if len(recent) < count:
                continue
            if current is not None and recent[0].seq <= current.entries[-1].seq:
                # overlaps the burst found so far: it grows
                current.entries.extend(e for e in recent if e.seq > current.entries[-1].seq)
            else:
                current = _Burst(user_id, list(recent))
                bursts.append(current)
        judged = [b for b in bursts if any(inside(window, e.at, e.batch_id) for e in b.entries)]
        if not judged:
            return
        names = _names(session, {b.user_id for b in judged})
        batch_nos = batches_named(session, {e.batch_id for b in judged for e in b.entries})
        for burst in judged:
            first, last = burst.entries[0], burst.entries[-1]
            who = names.get(burst.user_id, str(burst.user_id))
            n = len(burst.entries)
            minutes = int(span.total_seconds()) // 60
            batches = sorted({batch_nos.get(e.batch_id, "") for e in burst.entries})
            period = f"{local_text(session, first.at)}–{local_text(session, last.at)}"
            yield Finding(
                key=f"bulk:{burst.user_id}:{first.result_id}",
                summary_zh=(f"{who} 在非工作时间 {period} 录入 {n} 个结果（{minutes} 分钟内 ≥ {count} 个），"
                            f"分析批 {', '.join(batches)}"),
                summary_en=(f"{who} entered {n} results off hours, {period} (≥ {count} within "
                            f"{minutes} min), batches {', '.join(batches)}"),
                evidence={"rule": "≥ bulk_count results by one user within bulk_minutes outside the working day "
                                  "(day_start–day_end, Monday–Friday, lab time)",
                          "kind": "bulk_off_hours", "results": n, "first_entered_at": _iso(first.at),
                          "last_entered_at": _iso(last.at), "batch_nos": batches,
                          "result_ids": [e.result_id for e in burst.entries][:100],
                          "thresholds": {"bulk_count": str(count), "bulk_minutes": str(minutes),
                                         "day_start": str(day_start), "day_end": str(day_end)}},
                sample_ids=tuple(sorted({e.sample_id for e in burst.entries if e.sample_id is not None})),
                batch_id=first.batch_id, responsible_user_id=burst.user_id, occurred_at=first.at,
            )

    # ------------------------------------------------------------ back-dated

    def _backdated(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        hours = limits.get("backdate_hours", D("24"))
        lag = timedelta(seconds=float(hours * 3600))
        r = AnalysisResult
        stmt = (select(r.id, r.batch_id, r.sample_id, r.measured_at, r.entered_at, r.entered_by_id)
                .where(r.revision == 1, entered_in(window),
                       r.measured_at < _minus_seconds(session, r.entered_at, int(lag.total_seconds()) - 1))
                .order_by(r.batch_id, r.entered_by_id, r.id))
        groups: dict[tuple[int, int], list[Any]] = {}
        for row in session.execute(stmt):
            if row.entered_at - row.measured_at > lag:
                groups.setdefault((row.batch_id, row.entered_by_id), []).append(row)
        if not groups:
            return
        names = _names(session, {u for _, u in groups})
        batch_nos = batches_named(session, {b for b, _ in groups})
        for (batch_id, user_id), rows in groups.items():
            worst = max(rows, key=lambda x: x.entered_at - x.measured_at)
            late = _hours(worst.entered_at - worst.measured_at)
            who, batch_no = names.get(user_id, str(user_id)), batch_nos.get(batch_id, "")
            yield Finding(
                key=f"backdate:{batch_id}:{user_id}",
                summary_zh=(f"{who} 在分析批 {batch_no} 中录入的 {len(rows)} 个结果的测定时间早于录入时间超过 "
                            f"{format(hours, 'f')} h（最多 {late} h：测定 {local_text(session, worst.measured_at)}，"
                            f"录入 {local_text(session, worst.entered_at)}）"),
                summary_en=(f"{who} entered {len(rows)} result(s) of batch {batch_no} more than "
                            f"{format(hours, 'f')} h after their measurement (up to {late} h: measured "
                            f"{local_text(session, worst.measured_at)}, "
                            f"entered {local_text(session, worst.entered_at)})"),
                evidence={"rule": "entered_at − measured_at > backdate_hours (first entries, not corrections)",
                          "kind": "backdated", "results": len(rows), "max_lag_hours": late,
                          "result_ids": [x.id for x in rows][:100], "batch_no": batch_no,
                          "thresholds": {"backdate_hours": format(hours, "f")}},
                sample_ids=tuple(sorted({x.sample_id for x in rows if x.sample_id is not None})), batch_id=batch_id,
                responsible_user_id=user_id, occurred_at=worst.entered_at,
            )


def _minus_seconds(session: Session, column: Any, seconds: int) -> Any:
    """`column` − `seconds` as an SQL expression comparable with the timestamp columns."""
    if session.get_bind().dialect.name == "postgresql":
        return column - literal_column(f"interval '{int(seconds)} seconds'")
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff'; %f gives seconds with milliseconds
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"{-int(seconds):+d} seconds")


def _off_hours_sql(session: Session, column: Any, tz: ZoneInfo, day_start: int, day_end: int) -> Any | None:
    """SQL condition: the UTC `column` falls outside the lab's working day (a weekend, or before
    day_start, or from day_end on, lab time). None when the engine cannot say (SQLite in a zone
    with daylight saving): Python then decides alone."""
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone(tz.key, func.timezone("UTC", column))
        hour, dow = func.extract("hour", local), func.extract("dow", local)
    else:
        offsets = {tz.utcoffset(datetime(year, month, 1)) for year in (2020, 2026) for month in (1, 7)}
        if len(offsets) != 1:
            return None
        shift = f"{int(offsets.pop().total_seconds()):+d} seconds"
        hour = cast(func.strftime("%H", column, shift), Integer)
        dow = cast(func.strftime("%w", column, shift), Integer)
    return or_(dow.in_((0, 6)), hour < day_start, hour >= day_end)
