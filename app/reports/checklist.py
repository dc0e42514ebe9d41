"""The review checklist: what each level sees before it signs, computed from the records, never
typed (issue 9 item 1). Every item is ok, warn (printed on the report or shown to the reviewer:
a qualifier, a holding-time deviation, a custody gap, a conditional receipt, a revised result) or
fail (a blocking failure: the level cannot sign until it is resolved, usually by returning the
report).

The number of queries grows neither with the samples nor with the batches: the facts are read
once per report (all clocks, deviations, revisions, receipts, QC runs, the batches' signed contents,
qualifications and standards at once). The instrument gate (`check_usability`, which reads the
status and the assigned parameters itself) runs per instrument × parameter at the moments that
decide it: the first and last measurement and the last before each change of its record.

Later domains add items through `add_checklist_source` (the oversight issue registers "open
anomaly alarms"); nothing is shown for a source that is not registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    CorrectiveAction,
    CorrectiveKind,
    QcEvaluation,
    Qualification,
)
from app.analysis.qc import check_key, check_words
from app.analysis.results import check_times
from app.analysis.submission import signature_views
from app.core.i18n import pick
from app.core.labtime import lab_calendar
from app.people.models import User
from app.reports.content import ReportContent
from app.reports.models import Report
from app.samples.lab_models import HoldingClock, HoldingDeviation, ReceiptCheck, ReceiptDecision

OK, WARN, FAIL = "ok", "warn", "fail"
STATUSES = (OK, WARN, FAIL)
MAX_DETAILS = 50  # a long list is cut with a count of the rest

# code → (msgid, Chinese): the title of each item (msgids go through gettext in templates)
TITLES: dict[str, tuple[str, str]] = {
    "completeness": ("Every requested parameter has a result or a reason", "所有检测项目均有结果或未分析原因"),
    "qc": ("Quality control passed or qualified", "质控合格或已加注限定符"),
    "holding": ("Holding times met", "样品在保存期内分析"),
    "instruments": ("Instruments usable at the time of measurement", "测量时仪器处于可用状态"),
    "materials": ("Standards and reference materials usable at the time of use", "使用时标准物质/标准溶液有效"),
    "analysts": ("Analysts qualified at the start of analysis", "分析人员持有效上岗证"),
    "analyst_signatures": ("Analyst signatures intact", "分析人签名有效"),
    "custody": ("Custody without gaps", "样品流转记录完整"),
    "receipt": ("Samples received without conditions", "样品无条件接收"),
    "revisions": ("Differences from earlier result revisions", "结果修改记录"),
}

Detail = tuple[str, str]  # (zh, en)


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the checklist: its code, status, title (a msgid) and the details behind it."""

    code: str
    status: str
    title: str
    title_zh: str
    details: tuple[Detail, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def lines(self, language: str | None = None) -> list[str]:
        return [pick(zh, en, language) for zh, en in self.details]

    def summary(self, language: str) -> str:
        """Title and the first details, for a refusal message."""
        title = pick(self.title_zh, self.title, language)
        shown = self.lines(language)[:3]
        more = "…" if len(self.details) > 3 else ""
        return f"{title}（{'；'.join(shown)}{more}）" if shown and language.startswith("zh") else \
            f"{title} ({'; '.join(shown)}{more})" if shown else title


def item(code: str, status: str, details: Iterable[Detail] = (), *, title: str = "",
         title_zh: str = "") -> ChecklistItem:
    """An item with its standard title (or the one given, for registered sources)."""
    if status not in STATUSES:
        raise ValueError(f"checklist status {status!r}")
    en, zh = TITLES.get(code, (title, title_zh))
    details = list(details)
    if len(details) > MAX_DETAILS:
        rest = len(details) - MAX_DETAILS
        details = details[:MAX_DETAILS] + [(f"……另有 {rest} 条", f"… and {rest} more")]
    return ChecklistItem(code, status, title or en, title_zh or zh or title or en, tuple(details))


@dataclass(frozen=True)
class Checklist:
    items: tuple[ChecklistItem, ...]

    @property
    def blocking(self) -> bool:
        return any(i.failed for i in self.items)

    def failures(self) -> list[ChecklistItem]:
        return [i for i in self.items if i.failed]

    def warnings(self) -> list[ChecklistItem]:
        return [i for i in self.items if i.status == WARN]

    def by_code(self) -> dict[str, ChecklistItem]:
        return {i.code: i for i in self.items}

    def as_record(self) -> dict[str, Any]:
        """What the review act keeps: the checklist as the signer saw it."""
        return {"items": [{"code": i.code, "status": i.status, "title": i.title,
                           "details": [en for _, en in i.details]} for i in self.items]}

    def summary_record(self) -> dict[str, Any]:
        return {status: [i.code for i in self.items if i.status == status] for status in (WARN, FAIL)}


ChecklistSource = Callable[[Session, Report, ReportContent], list[ChecklistItem]]
CHECKLIST_SOURCES: list[ChecklistSource] = []


def add_checklist_source(source: ChecklistSource) -> ChecklistSource:
    """Register a source of further items (usable as a decorator); registered once."""
    if source not in CHECKLIST_SOURCES:
        CHECKLIST_SOURCES.append(source)
    return source


# ---------------------------------------------------------------- the facts, read once


def _local(session: Session, moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def _status(details_fail: list[Detail], details_warn: list[Detail]) -> str:
    return FAIL if details_fail else WARN if details_warn else OK


def _completeness(content: ReportContent) -> ChecklistItem:
    pending = [(f"{s.sample.sample_no} {line.parameter}：无结果", f"{s.sample.sample_no} {line.parameter}: no result")
               for s, line in content.lines() if line.pending]
    excused = [(f"{s.sample.sample_no} {line.parameter}：未分析（{line.not_analysed}）",
                f"{s.sample.sample_no} {line.parameter}: not analysed ({line.not_analysed})")
               for s, line in content.lines() if line.result is None and line.not_analysed]
    if not content.samples:
        pending.append(("报告未包含样品", "the report covers no sample"))
    return item("completeness", FAIL if pending else OK, pending + excused)


def _qc(session: Session, content: ReportContent) -> ChecklistItem:
    batch_ids = list(content.batches)
    if not batch_ids:
        return item("qc", OK)
    latest_run: dict[int, int] = dict(session.execute(
        select(QcEvaluation.batch_id, func.max(QcEvaluation.run)).where(QcEvaluation.batch_id.in_(batch_ids))
        .group_by(QcEvaluation.batch_id)).all())
    evaluations = [e for e in session.scalars(select(QcEvaluation).where(QcEvaluation.batch_id.in_(batch_ids),
                                                                         QcEvaluation.passed.is_(False)))
                   if e.run == latest_run.get(e.batch_id)]
    actions: dict[tuple[int, Any], list[CorrectiveAction]] = {}
    for action, evaluation in session.execute(
            select(CorrectiveAction, QcEvaluation).join(QcEvaluation, QcEvaluation.id == CorrectiveAction.evaluation_id)
            .where(CorrectiveAction.batch_id.in_(batch_ids)).order_by(CorrectiveAction.id)):
        actions.setdefault((action.batch_id, check_key(evaluation)), []).append(action)
    fails: list[Detail] = []
    warns: list[Detail] = []
    notes: list[Detail] = []  # failures a rerun answered: the rerun's result is the one reported
    for batch in sorted(content.batches.values(), key=lambda b: b.batch_no):
        if batch.id not in latest_run:
            fails.append((f"分析批 {batch.batch_no}：未进行质控评价",
                          f"batch {batch.batch_no}: QC was never evaluated"))
    for evaluation in sorted(evaluations, key=lambda e: (content.batches[e.batch_id].batch_no, e.id)):
        batch_no = content.batches[evaluation.batch_id].batch_no
        zh, en = check_words(evaluation)
        answers = actions.get((evaluation.batch_id, check_key(evaluation)), [])
        if not answers:
            fails.append((f"{batch_no} {zh}：不合格且无纠正措施", f"{batch_no} {en}: failed, no corrective action"))
            continue
        answer = answers[-1]
        if answer.kind == CorrectiveKind.QUALIFIER.value:
            warns.append((f"{batch_no} {zh}：不合格，限定符 {answer.qualifier}（将印在报告上）：{answer.justification}",
                          f"{batch_no} {en}: failed, qualifier {answer.qualifier} (printed on the report): "
                          f"{answer.justification}"))
        else:
            notes.append((f"{batch_no} {zh}：不合格，已重新分析：{answer.justification}",
                          f"{batch_no} {en}: failed, rerun: {answer.justification}"))
    return item("qc", _status(fails, warns), fails + warns + notes)


def _analysis_start(line_batch: AnalysisBatch | None, result: AnalysisResult) -> datetime:
    return line_batch.started_at if line_batch is not None and line_batch.started_at else result.measured_at


def _holding(session: Session, content: ReportContent) -> ChecklistItem:
    sample_ids = [s.sample.id for s in content.samples]
    if not sample_ids:
        return item("holding", OK)
    clocks = {(c.sample_id, c.parameter): c for c in session.scalars(
        select(HoldingClock).where(HoldingClock.sample_id.in_(sample_ids)))}
    deviations: dict[tuple[int, str], HoldingDeviation] = {}
    for d in session.scalars(select(HoldingDeviation).where(HoldingDeviation.sample_id.in_(sample_ids))
                             .order_by(HoldingDeviation.id)):
        deviations[(d.sample_id, d.parameter)] = d
    fails: list[Detail] = []
    warns: list[Detail] = []
    for s, line in content.lines():
        if line.result is None:
            continue
        clock = clocks.get((s.sample.id, line.parameter))
        if clock is None or clock.deadline_at is None:
            continue
        start = _analysis_start(line.batch, line.result)
        if start <= clock.deadline_at:
            continue
        where = f"{s.sample.sample_no} {line.parameter}"
        late = f"{_local(session, start)} > {_local(session, clock.deadline_at)}"
        deviation = deviations.get((s.sample.id, line.parameter))
        if deviation is not None:
            warns.append((f"{where}：超过保存期（{late}），已批准偏离：{deviation.reason}",
                           f"{where}: holding time exceeded ({late}), deviation granted: {deviation.reason}"))
        else:
            fails.append((f"{where}：超过保存期（{late}），无偏离批准",
                          f"{where}: holding time exceeded ({late}), no deviation"))
    return item("holding", _status(fails, warns), fails + warns)


def _change_points(session: Session, instrument_ids: list[int], low: datetime,
                   high: datetime) -> dict[int, list[datetime]]:
    """When records that can change each instrument's status took effect inside (low, high]: one query."""
    from app.instruments.models import CalibrationRecord, IntermediateCheck, MaintenanceRecord, ServiceChange

    found: dict[int, list[datetime]] = {i: [] for i in instrument_ids}
    if low == high or not instrument_ids:
        return found
    changes = union(*(select(model.instrument_id.label("instrument_id"), model.effective_from.label("at")).where(
        model.instrument_id.in_(instrument_ids), model.effective_from > low, model.effective_from <= high)
        for model in (CalibrationRecord, IntermediateCheck, MaintenanceRecord, ServiceChange))).subquery()
    for instrument_id, at in session.execute(select(changes.c.instrument_id, changes.c.at)):
        found[instrument_id].append(at)
    return {i: sorted(points) for i, points in found.items()}


def _instruments(session: Session, content: ReportContent) -> ChecklistItem:
    from app.instruments.models import Instrument
    from app.instruments.status import check_usability

    times: dict[tuple[int, str], list[datetime]] = {}
    for _, line in content.lines():
        r = line.result
        if r is None:
            continue
        instrument_id = r.instrument_id or (line.batch.instrument_id if line.batch else None)
        if instrument_id is not None:
            times.setdefault((instrument_id, line.parameter), []).append(r.measured_at)
    if not times:
        return item("instruments", OK)
    instruments = {i.id: i for i in session.scalars(select(Instrument).where(
        Instrument.id.in_(sorted({i for i, _ in times}))))}
    every = [t for moments in times.values() for t in moments]
    points = _change_points(session, list(instruments), min(every), max(every))
    fails: list[Detail] = []
    for (instrument_id, parameter), moments in sorted(times.items()):
        instrument = instruments[instrument_id]
        for moment in check_times(moments, points.get(instrument_id, [])):
            _, refusal = check_usability(session, instrument, moment, parameter)
            if refusal is not None:
                fails.append((f"{parameter}：{refusal.message('zh')}", f"{parameter}: {refusal.message('en')}"))
                break
    return item("instruments", FAIL if fails else OK, fails)


def _materials(session: Session, content: ReportContent) -> ChecklistItem:
    """Each standard at the start of each batch that used it (the time of use otherwise), judged by
    the gate's rule (`refusal_at`) on facts read once for the report: the items by kind, the lots
    of the units, every status change of their lots. A use the rule refuses is put to
    `check_material` for the refusal in the gate's words (one query per refused use)."""
    from app.reference_materials.gate import _lot_of, check_material, refusal_at, stock_facts
    from app.reference_materials.models import ItemKind, LotStatusChange, MaterialLot, MaterialUse, StockUnit
    from app.reference_materials.service import MODEL_OF_KIND

    batch_ids = list(content.batches)
    if not batch_ids:
        return item("materials", OK)
    rows = session.execute(
        select(BatchPosition.batch_id, BatchPosition.label, MaterialUse.item_kind, MaterialUse.item_id,
               MaterialUse.used_at)
        .join(MaterialUse, MaterialUse.id == BatchPosition.material_use_id)
        .where(BatchPosition.batch_id.in_(batch_ids)).order_by(BatchPosition.batch_id, BatchPosition.position)).all()
    uses: list[tuple[AnalysisBatch, str, str, int, datetime]] = []
    seen: set[tuple[str, int, datetime]] = set()
    for batch_id, label, kind, item_id, used_at in rows:
        batch = content.batches[batch_id]
        moment = batch.started_at or used_at
        if (kind, item_id, moment) not in seen:
            seen.add((kind, item_id, moment))
            uses.append((batch, label, kind, item_id, moment))
    items: dict[tuple[str, int], Any] = {}
    for kind in sorted({kind for _, _, kind, _, _ in uses}):
        model = MODEL_OF_KIND[ItemKind(kind)]
        wanted = sorted({item_id for _, _, k, item_id, _ in uses if k == kind})
        items.update(((kind, row.id), row) for row in session.scalars(select(model).where(model.id.in_(wanted))))
    unit_lots = sorted({i.lot_id for i in items.values() if isinstance(i, StockUnit)})
    # held here, so in the identity map: the sealed expiry of a unit reads its lot with session.get
    lots = list(session.scalars(select(MaterialLot).where(MaterialLot.id.in_(unit_lots)))) if unit_lots else []
    lot_ids = sorted({lot for lot in (_lot_of(i) for i in items.values()) if lot is not None})
    changes: dict[int, list[LotStatusChange]] = {}
    if lot_ids:
        for change in session.scalars(select(LotStatusChange).where(LotStatusChange.lot_id.in_(lot_ids))
                                      .order_by(LotStatusChange.effective_at, LotStatusChange.id)):
            changes.setdefault(change.lot_id, []).append(change)
    fails: list[Detail] = []
    for batch, label, kind, item_id, moment in uses:
        found = items.get((kind, item_id))
        if found is None:
            continue
        lot = _lot_of(found)
        # the lot's status change in force at the moment: the latest by effective_at, then id
        change = next((c for c in reversed(changes.get(lot, [])) if c.effective_at <= moment), None)
        refused, _ = refusal_at(stock_facts(session, found), change, moment)
        if refused is None:
            continue
        usability = check_material(session, found, moment)
        if usability.refusal is not None:
            fails.append((f"{batch.batch_no} {label}：{usability.refusal.message('zh')}",
                          f"{batch.batch_no} {label}: {usability.refusal.message('en')}"))
    del lots
    return item("materials", FAIL if fails else OK, fails)


def _covers(qualification: Qualification, at: datetime, day: date) -> bool:
    """The rule of `app.analysis.qualifications.covering`, on a loaded row: the act's lab-local day
    inside the period, and not revoked at or before the act."""
    return (qualification.valid_from <= day <= qualification.valid_to
            and (qualification.revoked_at is None or qualification.revoked_at > at))


def _analysts(session: Session, content: ReportContent) -> ChecklistItem:
    method_of_version = {line.method_version.id: line.method_version.method_id
                         for _, line in content.lines() if line.method_version is not None}
    batches = sorted(content.batches.values(), key=lambda b: b.batch_no)
    analyst_ids = sorted({b.analyst_id for b in batches})
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(analyst_ids)))} if batches else {}
    codes = {line.method_version.method_id: line.method_code for _, line in content.lines() if line.method_version}
    checked = [(b, method_of_version[b.method_version_id]) for b in batches
               if b.method_version_id in method_of_version and b.started_at is not None]
    held: dict[tuple[int, int], list[Qualification]] = {}
    if checked:  # every analyst's qualifications for every method of the report, in one query
        for q in session.scalars(select(Qualification).where(
                Qualification.user_id.in_(sorted({b.analyst_id for b, _ in checked})),
                Qualification.method_id.in_(sorted({m for _, m in checked})))):
            held.setdefault((q.user_id, q.method_id), []).append(q)
    calendar = lab_calendar(session)
    fails: list[Detail] = []
    for batch, method_id in checked:
        at = batch.started_at
        day = calendar.local_date(at)
        if not any(_covers(q, at, day) for q in held.get((batch.analyst_id, method_id), [])):
            who = people[batch.analyst_id].printed_name if batch.analyst_id in people else str(batch.analyst_id)
            fails.append((f"{batch.batch_no}：{who} 在 {_local(session, at)} 无 {codes[method_id]} 有效上岗证",
                          f"{batch.batch_no}: {who} held no valid qualification for {codes[method_id]} at "
                          f"{_local(session, at)}"))
    return item("analysts", FAIL if fails else OK, fails)


def _signatures(session: Session, content: ReportContent) -> ChecklistItem:
    fails: list[Detail] = []
    batches = sorted(content.batches.values(), key=lambda b: b.batch_no)
    views = signature_views(session, batches)
    for batch in batches:
        view = views[batch.id]
        if view is None:
            fails.append((f"{batch.batch_no}：分析人未签名", f"{batch.batch_no}: not signed by the analyst"))
        elif view.broken:
            fails.append((f"{batch.batch_no}：签名后结果被修改，签名已失效——须重新签署修改后的分析批",
                          f"{batch.batch_no}: results revised after signing, the signature is broken — re-sign the "
                          "corrected batch"))
    return item("analyst_signatures", FAIL if fails else OK, fails)


def _custody(content: ReportContent) -> ChecklistItem:
    # a gap is a fact that cannot be undone: the reviewer weighs it and it prints as a deviation;
    # its alarm (DOMAIN.md §7 A18) is what blocks, through the oversight source, once disposed
    gaps = [(f"{s.sample.sample_no}：流转记录有间断", f"{s.sample.sample_no}: gap in the chain of custody")
            for s in content.samples if s.sample.custody_gap]
    return item("custody", WARN if gaps else OK, gaps)


def _receipt(session: Session, content: ReportContent) -> ChecklistItem:
    conditional = [s for s in content.samples
                   if s.receipt is not None and s.receipt.decision == ReceiptDecision.ACCEPT_WITH_CONDITIONS.value]
    if not conditional:
        return item("receipt", OK)
    checks = {c.id: c for c in session.scalars(select(ReceiptCheck).where(
        ReceiptCheck.id.in_([s.receipt.check_id for s in conditional])))}
    warns: list[Detail] = []
    for s in conditional:
        check = checks.get(s.receipt.check_id)
        deviation = check.deviation if check else ""
        consent = f"（{check.consent_by}）" if check and check.consent_by else ""
        warns.append((f"{s.sample.sample_no}：有条件接收：{deviation}{consent}",
                      f"{s.sample.sample_no}: received with conditions: {deviation}"
                      f"{f' (agreed by {check.consent_by})' if check and check.consent_by else ''}"))
    return item("receipt", WARN, warns)


def _revisions(session: Session, content: ReportContent) -> ChecklistItem:
    revised = {(line.result.position_id, line.parameter): (s, line) for s, line in content.lines()
               if line.result is not None and line.result.revision > 1}
    if not revised:
        return item("revisions", OK)
    history: dict[tuple[int, str], list[AnalysisResult]] = {}
    for r in session.scalars(select(AnalysisResult).where(
            AnalysisResult.position_id.in_(sorted({p for p, _ in revised}))).order_by(AnalysisResult.revision)):
        if (r.position_id, r.parameter) in revised:
            history.setdefault((r.position_id, r.parameter), []).append(r)
    people = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_(sorted({r.entered_by_id for rows in history.values() for r in rows}))))}
    warns: list[Detail] = []
    for key, (s, line) in sorted(revised.items(), key=lambda kv: (kv[1][0].sample.sample_no, kv[1][1].parameter)):
        rows = history.get(key, [])
        if not rows:
            continue
        first, current = rows[0], line.result
        who = people[current.entered_by_id].printed_name if current.entered_by_id in people else "—"
        where = f"{s.sample.sample_no} {line.parameter}"
        change = f"{format(first.value, 'f')} → {format(current.value, 'f')} {current.unit}"
        warns.append((f"{where}：{change}（第 {current.revision} 版），原因：{current.reason}；{who}，"
                       f"{_local(session, current.entered_at)}",
                       f"{where}: {change} (revision {current.revision}), reason: {current.reason}; {who}, "
                       f"{_local(session, current.entered_at)}"))
    return item("revisions", WARN if warns else OK, warns)


def compute_checklist(session: Session, report: Report, content: ReportContent) -> Checklist:
    """The checklist of a report as the records stand now, in a fixed order; registered sources
    last. The query count depends on the instruments (and their changes) and on refused standards,
    never on samples or batches."""
    items = [
        _completeness(content), _qc(session, content), _holding(session, content), _instruments(session, content),
        _materials(session, content), _analysts(session, content), _signatures(session, content),
        _custody(content), _receipt(session, content), _revisions(session, content),
    ]
    for source in CHECKLIST_SOURCES:
        items.extend(source(session, report, content))
    return Checklist(tuple(items))

