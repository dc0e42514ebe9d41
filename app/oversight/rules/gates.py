"""Anomaly rules over the gates (DOMAIN.md §7 A14–A17): who entered the data and whether they
were qualified, whether the instrument and the standards were usable when used, and whether the
raw instrument files still hash to what was recorded.

The services refuse these acts at the time they happen; these rules find what slipped through
anyway (records written before a gate existed, an import that bypassed it, a qualification or a
calibration corrected afterwards, a file changed on disk), reading history in a fixed number of
queries per scan: the gate's semantics are replayed in Python over rows read once.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.orm import Session

from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    CalibrationPoint,
    Method,
    MethodVersion,
    PositionRole,
    Qualification,
    ResultImport,
    ResultSource,
)
from app.analysis.results import _current_filter
from app.config import settings_of
from app.core.files import CHUNK, file_store
from app.core.labtime import LabCalendar, lab_calendar
from app.instruments.models import Instrument, InstrumentStatus
from app.instruments.status import RETIRE, effects_in_force, reading_from
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, chunked, jsonable, register
from app.people.models import User
from app.reference_materials.models import MaterialLot, MaterialUse, ReagentLot, StandardSolution, StockUnit
from app.samples.models import Sample

# ---------------------------------------------------------------- shared helpers (A13–A18)


def in_window(column: Any, window: ScanWindow) -> Any:
    """`column` (an act's record time) inside the scan window."""
    conditions = [column <= window.until]
    if window.since is not None:
        conditions.append(column > window.since)
    return and_(*conditions)


def judged(moment: datetime | None, window: ScanWindow) -> bool:
    """The same test in Python."""
    if moment is None:
        return False
    return moment <= window.until and (window.since is None or moment > window.since)


def local(calendar: LabCalendar, moment: datetime | None) -> str:
    return moment.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M") if moment else "—"


def batch_numbers(session: Session, batch_ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """batch id → (batch number, analyst id), chunked IN lists."""
    found: dict[int, tuple[str, int]] = {}
    for ids in chunked(sorted(set(batch_ids))):
        for bid, no, analyst in session.execute(select(AnalysisBatch.id, AnalysisBatch.batch_no,
                                                       AnalysisBatch.analyst_id).where(AnalysisBatch.id.in_(ids))):
            found[bid] = (no, analyst)
    return found


def sample_numbers(session: Session, sample_ids: Iterable[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for ids in chunked(sorted(set(sample_ids))):
        found.update(session.execute(select(Sample.id, Sample.sample_no).where(Sample.id.in_(ids))).all())
    return found


def user_names(session: Session, user_ids: Iterable[int]) -> dict[int, User]:
    found: dict[int, User] = {}
    for ids in chunked(sorted({u for u in user_ids if u is not None})):
        found.update({u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))})
    return found


def samples_of_batches(session: Session, batch_ids: Iterable[int]) -> dict[int, list[int]]:
    """batch id → the samples of its sample positions (for the alarm's review checklists)."""
    found: dict[int, set[int]] = defaultdict(set)
    for ids in chunked(sorted(set(batch_ids))):
        for bid, sid in session.execute(select(BatchPosition.batch_id, BatchPosition.sample_id).where(
                BatchPosition.batch_id.in_(ids), BatchPosition.sample_id.is_not(None),
                BatchPosition.role == PositionRole.SAMPLE.value)):
            found[bid].add(sid)
    return {bid: sorted(s) for bid, s in found.items()}


def _name(user: User | None) -> str:
    return user.printed_name if user else "—"


# ---------------------------------------------------------------- A14


def _covers(q: Qualification, day: date, at: datetime) -> bool:
    """app.analysis.qualifications.covering, in Python: the act's lab-local day inside the period,
    not revoked at or before the act."""
    return q.valid_from <= day <= q.valid_to and (q.revoked_at is None or q.revoked_at > at)


@register
class EnteredByUnqualified(AnomalyRule):
    """The batch analyst held no 上岗证 covering the analysis date, or a result was typed in by
    someone other than the batch analyst (imports and instrument posts by the analyst are fine)."""

    code = "A14"
    title_zh = "非持证人员录入数据"
    title_en = "Entered by an unqualified user"
    why_zh = "无有效上岗证的分析或代他人录入的原始数据不能证明由合格人员完成（持证上岗）"
    why_en = "Without a valid qualification, or typed by someone else, the raw data cannot show who did the work"
    thresholds = ()

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        calendar = lab_calendar(session)
        entered = select(AnalysisResult.batch_id).where(in_window(AnalysisResult.entered_at, window))
        if window.batch_ids is not None:
            entered = entered.where(AnalysisResult.batch_id.in_(window.batch_ids))
        batches = session.execute(
            select(AnalysisBatch.id, AnalysisBatch.batch_no, AnalysisBatch.analyst_id, MethodVersion.method_id,
                   Method.code, func.coalesce(AnalysisBatch.started_at, AnalysisBatch.created_at))
            .join(MethodVersion, MethodVersion.id == AnalysisBatch.method_version_id)
            .join(Method, Method.id == MethodVersion.method_id)
            .where(AnalysisBatch.id.in_(entered.distinct()))).all()
        # enterers other than the batch analyst, typed by hand: one row per batch × enterer
        others = select(AnalysisResult.batch_id, AnalysisResult.entered_by_id, func.count(),
                        func.min(AnalysisResult.entered_at)).join(
            AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id).where(
            in_window(AnalysisResult.entered_at, window), AnalysisResult.source == ResultSource.MANUAL.value,
            AnalysisResult.entered_by_id != AnalysisBatch.analyst_id)
        if window.batch_ids is not None:
            others = others.where(AnalysisResult.batch_id.in_(window.batch_ids))
        foreign = session.execute(others.group_by(AnalysisResult.batch_id, AnalysisResult.entered_by_id)).all()
        if not batches and not foreign:
            return
        pairs = {(analyst, method_id) for _, _, analyst, method_id, _, _ in batches}
        held: dict[tuple[int, int], list[Qualification]] = defaultdict(list)
        for users in chunked(sorted({u for u, _ in pairs})):
            for q in session.scalars(select(Qualification).where(Qualification.user_id.in_(users))):
                held[(q.user_id, q.method_id)].append(q)
        unqualified = []
        for bid, no, analyst, method_id, method_code, at in batches:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            day = calendar.local_date(at)
            if not any(_covers(q, day, at) for q in held[(analyst, method_id)]):
                unqualified.append((bid, no, analyst, method_code, at, held[(analyst, method_id)]))
        meta = batch_numbers(session, [f[0] for f in foreign])
        samples = samples_of_batches(session, [u[0] for u in unqualified] + [f[0] for f in foreign])
        people = user_names(session, [u[2] for u in unqualified] + [f[1] for f in foreign]
                            + [m[1] for m in meta.values()])
        for bid, no, analyst, method_code, at, qualifications in unqualified:
            who = _name(people.get(analyst))
            day = calendar.local_date(at).isoformat()
            yield Finding(
                key=f"unqualified:{bid}",
                summary_zh=f"分析批 {no} 的分析人员 {who} 在分析日期 {day} 没有方法 {method_code} 的有效上岗证",
                summary_en=f"Batch {no}: the analyst {who} held no valid qualification for {method_code} on {day}",
                evidence=jsonable({
                    "issue": "analyst_unqualified", "batch_no": no, "analyst": who, "method": method_code,
                    "analysis_at": at, "analysis_day": day,
                    "qualifications": [{"certificate_no": q.certificate_no, "valid_from": q.valid_from.isoformat(),
                                        "valid_to": q.valid_to.isoformat(), "revoked_at": jsonable(q.revoked_at)}
                                       for q in qualifications],
                    "threshold": "a 上岗证 covering the analysis date, not revoked by then",
                    "rule": "DOMAIN.md §2 rule 3; §7 A14"}),
                sample_ids=tuple(samples.get(bid, ())), batch_id=bid, responsible_user_id=analyst, occurred_at=at)
        for bid, enterer, count, first_at in foreign:
            no, analyst = meta[bid]
            who, owner = _name(people.get(enterer)), _name(people.get(analyst))
            yield Finding(
                key=f"enterer:{bid}:{enterer}",
                summary_zh=f"分析批 {no} 的 {count} 个结果由 {who} 手工录入，而分析人员是 {owner}",
                summary_en=f"Batch {no}: {count} result(s) typed in by {who}, not by the batch analyst {owner}",
                evidence=jsonable({
                    "issue": "entered_by_other", "batch_no": no, "analyst": owner, "entered_by": who,
                    "results": count, "first_entered_at": first_at,
                    "threshold": "manual entries by the batch analyst only", "rule": "DOMAIN.md §7 A14"}),
                sample_ids=tuple(samples.get(bid, ())), batch_id=bid, responsible_user_id=enterer,
                occurred_at=first_at)


# ---------------------------------------------------------------- A15


@dataclass(frozen=True)
class Effect:
    effective_from: datetime
    rank: tuple[int, date, datetime]  # the deciding order of app.instruments.status.deciding_effects
    effect: str
    cause: str | None
    due_at: datetime | None
    calibration_id: int | None
    restriction: tuple[str, tuple[str, ...]] | None


@dataclass(frozen=True)
class Unusable:
    """A span in which the instrument was not usable (for `parameters_ok` only, when restricted)."""

    start: datetime | None
    end: datetime | None
    reason: str
    parameters_ok: tuple[str, ...] | None = None  # a restricted certificate: these stay usable
    due_at: datetime | None = None


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def unusable_spans(effects: list[Effect], commissioned_start: datetime, calendar: LabCalendar) -> list[Unusable]:
    """The instrument's status as a function of time, from its records read once: the status
    only changes where a record takes effect or a certificate runs out, so it is judged once per
    span between those points (with the same deciding order as the gate's SQL)."""
    points = sorted({commissioned_start, *(e.effective_from for e in effects),
                     *(e.due_at for e in effects if e.due_at is not None)})
    ordered = sorted(effects, key=lambda e: e.effective_from)
    starts = [e.effective_from for e in ordered]
    spans: list[Unusable] = []
    bounds: list[datetime | None] = [None, *points]
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else None
        probe = start if start is not None else points[0] - timedelta(days=1)  # before the first point
        in_force = ordered[:bisect.bisect_right(starts, probe)]
        deciding = max(in_force, key=lambda e: e.rank) if in_force else None
        reading = reading_from(
            probe, probe < commissioned_start, deciding.effect if deciding else None,
            deciding.cause if deciding else None, deciding.effective_from if deciding else None,
            deciding.due_at if deciding else None, deciding.calibration_id if deciding else None, calendar,
            deciding.restriction if deciding else None)
        if reading.usable and not reading.restricted:
            continue
        reason = reading.reason or ("restricted" if reading.restricted else reading.status.value)
        if reading.status is InstrumentStatus.OUT_OF_SERVICE and reading.cause:
            reason = f"out_of_service:{reading.cause}"
        span = Unusable(start, end, reason, reading.allowed_parameters if reading.usable else None,
                        reading.due_at)
        if spans and spans[-1].reason == span.reason and spans[-1].end == start \
                and spans[-1].parameters_ok == span.parameters_ok:
            spans[-1] = Unusable(spans[-1].start, end, reason, span.parameters_ok, spans[-1].due_at)
        else:
            spans.append(span)
    return spans


REASON_WORDS = {
    "not_calibrated": ("从未检定/校准", "never calibrated"),
    "overdue": ("检定/校准已过期", "calibration overdue"),
    "not_commissioned": ("尚未投入使用", "not yet commissioned"),
    "retired": ("已报废", "retired"),
    "restricted": ("限用证书不包括该项目", "restricted certificate does not cover the parameter"),
    "out_of_service:failed_calibration": ("检定/校准不合格停用", "out of service: failed calibration"),
    "out_of_service:failed_check": ("期间核查不合格停用", "out of service: failed intermediate check"),
    "out_of_service:repair": ("维修停用", "out of service: under repair"),
    "out_of_service:decision": ("停用", "out of service"),
}


@register
class InstrumentOutOfCalibration(AnomalyRule):
    """A result measured on an instrument that was not usable at the time of measurement: never
    calibrated, calibration run out, out of service, retired, not yet commissioned, or outside
    a restricted certificate's parameters. (A parameter not assigned to the instrument is a set-up
    question the entry gate answers, not a calibration one: not alarmed here.) One finding per
    batch × instrument × reason; the instrument's records are read once per scan."""

    code = "A15"
    title_zh = "测定时仪器不在检定/校准有效期内"
    title_en = "Instrument out of calibration at measurement time"
    why_zh = "未经检定或停用仪器得到的数据不具有溯源性（计量溯源）"
    why_en = "Data from an instrument that was not calibrated or was out of service are not traceable"
    thresholds = ()

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        calendar = lab_calendar(session)
        instruments = dict(session.execute(select(Instrument.id, Instrument.commissioned_on)).all())
        if not instruments:
            return
        effects: dict[int, list[Effect]] = defaultdict(list)
        effects_sq = effects_in_force(window.until)
        for row in session.execute(select(effects_sq)):
            (iid, event_day, recorded_at, effect, cause, effective_from, due_at, calibration_id, restriction,
             allowed) = row
            # the gate's order: a retirement outranks everything, then the latest day, then entry
            effects[iid].append(Effect(
                _aware(effective_from), (1 if effect == RETIRE else 0, event_day, _aware(recorded_at)),
                effect, cause, _aware(due_at), calibration_id,
                None if allowed is None else (restriction, tuple(json.loads(allowed)))))
        conditions = []
        span_of: dict[int, list[Unusable]] = {}
        for iid, commissioned_on in instruments.items():
            spans = unusable_spans(effects.get(iid, []), calendar.start_of(commissioned_on), calendar)
            span_of[iid] = spans
            for span in spans:
                clause = [AnalysisResult.instrument_id == iid]
                if span.start is not None:
                    clause.append(AnalysisResult.measured_at >= span.start)
                if span.end is not None:
                    clause.append(AnalysisResult.measured_at < span.end)
                if span.parameters_ok is not None:
                    allowed = [p.casefold() for p in span.parameters_ok]
                    clause.append(func.lower(AnalysisResult.parameter).not_in(allowed) if allowed
                                  else literal_column("1") == 1)
                conditions.append(and_(*clause))
        if not conditions:
            return
        found: dict[tuple[int, int, str], dict[str, Any]] = {}
        for part in [conditions[i:i + 200] for i in range(0, len(conditions), 200)]:
            stmt = select(AnalysisResult.batch_id, AnalysisResult.instrument_id, AnalysisResult.measured_at,
                          AnalysisResult.sample_id, AnalysisResult.parameter).where(
                or_(*part), in_window(AnalysisResult.entered_at, window), _current_filter())
            if window.batch_ids is not None:
                stmt = stmt.where(AnalysisResult.batch_id.in_(window.batch_ids))
            for bid, iid, measured_at, sid, parameter in session.execute(stmt):
                measured_at = _aware(measured_at)
                span = next(s for s in span_of[iid] if (s.start is None or measured_at >= s.start)
                            and (s.end is None or measured_at < s.end))
                entry = found.setdefault((bid, iid, span.reason), {
                    "first": measured_at, "last": measured_at, "samples": set(), "parameters": set(), "count": 0,
                    "span": span})
                entry["first"], entry["last"] = min(entry["first"], measured_at), max(entry["last"], measured_at)
                entry["count"] += 1
                entry["parameters"].add(parameter)
                if sid:
                    entry["samples"].add(sid)
        if not found:
            return
        meta = batch_numbers(session, [k[0] for k in found])
        assets = dict(session.execute(select(Instrument.id, Instrument.asset_no).where(
            Instrument.id.in_(sorted({k[1] for k in found})))).all())
        for (bid, iid, reason), entry in sorted(found.items()):
            no, analyst = meta[bid]
            zh, en = REASON_WORDS.get(reason, (reason, reason))
            span: Unusable = entry["span"]
            yield Finding(
                key=f"{bid}:{iid}:{reason}",
                summary_zh=f"分析批 {no} 的 {entry['count']} 个结果在仪器 {assets[iid]} {zh}时测定"
                           f"（{local(calendar, entry['first'])}）",
                summary_en=f"Batch {no}: {entry['count']} result(s) measured on {assets[iid]} while {en} "
                           f"({local(calendar, entry['first'])})",
                evidence=jsonable({
                    "batch_no": no, "instrument": assets[iid], "reason": reason, "results": entry["count"],
                    "parameters": sorted(entry["parameters"]), "first_measured_at": entry["first"],
                    "last_measured_at": entry["last"], "unusable_from": span.start, "unusable_until": span.end,
                    "calibration_due_at": span.due_at,
                    "threshold": "instrument usable (calibrated, in service) at the time of measurement",
                    "rule": "DESIGN.md rule 7; DOMAIN.md §7 A15"}),
                sample_ids=tuple(sorted(entry["samples"])), batch_id=bid,
                parameter=next(iter(entry["parameters"])) if len(entry["parameters"]) == 1 else "",
                responsible_user_id=analyst, occurred_at=entry["first"])


# ---------------------------------------------------------------- A16


def _expiry_at(kind: str, item: Any, lot_expiry: datetime | None, reagent_sealed: datetime | None,
               at: datetime) -> datetime:
    """The expiry in force at the use (app.reference_materials.gate.refusal_at): sealed until
    opened (the lot's, or the reagent label's), then the item's own."""
    if kind == "solution":
        return _aware(item.expires_at)
    sealed = lot_expiry if kind == "unit" else reagent_sealed
    opened = _aware(item.opened_at)
    if sealed is not None and (opened is None or at < opened):
        return sealed
    return _aware(item.expires_at)


@register
class ExpiredStandardUsed(AnomalyRule):
    """A CRM unit, standard solution or reagent used for a batch position or a calibration point
    after its expiry at the time of use."""

    code = "A16"
    title_zh = "使用过期标准物质或标准溶液"
    title_en = "Expired CRM or standard solution used"
    why_zh = "过期标准物质的量值不再可信，依其得出的结果失去溯源"
    why_en = "An expired standard's value is no longer certified: results traced to it lose traceability"
    thresholds = ()

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        calendar = lab_calendar(session)
        by_position = select(BatchPosition.batch_id, BatchPosition.material_use_id).where(
            BatchPosition.material_use_id.is_not(None))
        by_curve = select(BatchCurve.batch_id, CalibrationPoint.material_use_id).join(
            CalibrationPoint, CalibrationPoint.curve_id == BatchCurve.curve_id).where(
            CalibrationPoint.material_use_id.is_not(None))
        if window.batch_ids is not None:
            by_position = by_position.where(BatchPosition.batch_id.in_(window.batch_ids))
            by_curve = by_curve.where(BatchCurve.batch_id.in_(window.batch_ids))
        batches_of: dict[int, set[int]] = defaultdict(set)
        for bid, use_id in [*session.execute(by_position), *session.execute(by_curve)]:
            batches_of[use_id].add(bid)
        uses = []
        for ids in chunked(sorted(batches_of)):
            uses.extend(session.scalars(select(MaterialUse).where(MaterialUse.id.in_(ids),
                                                                  in_window(MaterialUse.recorded_at, window))))
        if not uses:
            return
        kinds: dict[str, type] = {"unit": StockUnit, "solution": StandardSolution, "reagent": ReagentLot}
        items: dict[tuple[str, int], Any] = {}
        for kind, model in kinds.items():
            for ids in chunked(sorted({u.item_id for u in uses if u.item_kind == kind})):
                items.update({(kind, i.id): i for i in session.scalars(select(model).where(model.id.in_(ids)))})
        lot_ids = {i.lot_id for (k, _), i in items.items() if k == "unit"}
        lots = {}
        for ids in chunked(sorted(lot_ids)):
            lots.update({lot.id: lot for lot in session.scalars(select(MaterialLot).where(MaterialLot.id.in_(ids)))})
        expired = []
        for use in uses:
            item = items.get((use.item_kind, use.item_id))
            if item is None:
                continue
            at = _aware(use.used_at)
            lot_expiry = _aware(lots[item.lot_id].expires_at) if use.item_kind == "unit" else None
            sealed = (calendar.start_of(item.expires_on + timedelta(days=1))
                      if use.item_kind == "reagent" else None)
            expiry = _expiry_at(use.item_kind, item, lot_expiry, sealed, at)
            if at >= expiry:
                expired.append((use, item, expiry))
        if not expired:
            return
        all_batches = {b for use, _, _ in expired for b in batches_of[use.id]}
        meta = batch_numbers(session, all_batches)
        samples = samples_of_batches(session, all_batches)
        for use, item, expiry in expired:
            bids = sorted(batches_of[use.id])
            numbers = [meta[b][0] for b in bids]
            late = _aware(use.used_at) - expiry
            yield Finding(
                key=f"use:{use.id}",
                summary_zh=f"{item.barcode} 于 {local(calendar, use.used_at)} 使用时已过期"
                           f"（有效至 {local(calendar, expiry)}），用于分析批 {'、'.join(numbers)}",
                summary_en=f"{item.barcode} was used on {local(calendar, use.used_at)} after its expiry "
                           f"({local(calendar, expiry)}) for batch {', '.join(numbers)}",
                evidence=jsonable({
                    "barcode": item.barcode, "item_kind": use.item_kind, "used_at": use.used_at,
                    "expires_at": expiry, "days_past_expiry": str(round(Decimal(late.total_seconds()) / 86400, 2)),
                    "batches": numbers, "purpose": use.purpose,
                    "threshold": "used before its expiry in force at the time of use",
                    "rule": "DOMAIN.md §3; §7 A16"}),
                sample_ids=tuple(sorted({s for b in bids for s in samples.get(b, ())})), batch_id=bids[0],
                responsible_user_id=use.recorded_by_id, occurred_at=use.used_at)


# ---------------------------------------------------------------- A17


def hash_of(path: Any) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@register
class RawFileHashMismatch(AnomalyRule):
    """A raw instrument file (a result import's stored file) whose bytes in the file store no
    longer hash to the SHA-256 recorded at import, or that is gone.

    The other half of DOMAIN.md's A17, "paper vs electronic mismatch", is out of reach: the lab
    keeps no paper records in the system to compare with. Each file is hashed once per scan."""

    code = "A17"
    title_zh = "原始数据文件哈希不符"
    title_en = "Raw-file hash mismatch"
    why_zh = "原始文件在导入后被改动或删除，数据与原始记录不再一致（伪造）"
    why_en = "The raw file was changed or removed after import: the data no longer match the raw record"
    thresholds = ()

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        from app.core.files import StoredFile

        stmt = select(ResultImport.id, ResultImport.code, ResultImport.batch_id, ResultImport.sha256,
                      ResultImport.imported_at, ResultImport.imported_by_id, StoredFile.sha256,
                      StoredFile.filename).join(StoredFile, StoredFile.id == ResultImport.file_id).where(
            in_window(ResultImport.imported_at, window))
        if window.batch_ids is not None:
            stmt = stmt.where(ResultImport.batch_id.in_(window.batch_ids))
        rows = session.execute(stmt.order_by(ResultImport.id)).all()
        if not rows:
            return
        store = file_store(settings_of(session).data_path)
        hashes: dict[str, str | None] = {}
        bad = []
        for row in rows:
            recorded = row[6]
            if recorded not in hashes:
                try:
                    hashes[recorded] = hash_of(store.path(recorded))
                except Exception:  # a malformed recorded hash names no file
                    hashes[recorded] = None
            now = hashes[recorded]
            if now != recorded or row[3] != recorded:
                bad.append((row, now))
        if not bad:
            return
        calendar = lab_calendar(session)
        meta = batch_numbers(session, [r[2] for r, _ in bad])
        samples: dict[int, set[int]] = defaultdict(set)
        for ids in chunked(sorted({r[0] for r, _ in bad})):
            for import_id, sid in session.execute(select(AnalysisResult.import_id, AnalysisResult.sample_id).where(
                    AnalysisResult.import_id.in_(ids), AnalysisResult.sample_id.is_not(None)).distinct()):
                samples[import_id].add(sid)
        for (iid, code, bid, sha, imported_at, by, stored_sha, filename), now in bad:
            no = meta[bid][0]
            state_zh, state_en = ("已不存在", "is missing") if now is None else ("已被改动", "was changed")
            yield Finding(
                key=f"import:{iid}",
                summary_zh=f"导入 {code}（分析批 {no}）的原始文件 {filename} {state_zh}"
                           f"（记录 SHA-256 {sha[:12]}…，导入于 {local(calendar, imported_at)}）",
                summary_en=f"The raw file {filename} of import {code} (batch {no}) {state_en} "
                           f"(recorded SHA-256 {sha[:12]}…, imported {local(calendar, imported_at)})",
                evidence=jsonable({
                    "import": code, "batch_no": no, "filename": filename, "recorded_sha256": sha,
                    "stored_sha256": stored_sha, "sha256_now": now, "imported_at": imported_at,
                    "threshold": "the stored bytes hash to the SHA-256 recorded at import",
                    "rule": "DOMAIN.md §7 A17 [175 伪造]; paper records are not kept, so not compared"}),
                sample_ids=tuple(sorted(samples.get(iid, ()))), batch_id=bid, responsible_user_id=by,
                occurred_at=imported_at)
