"""Signing a batch (issue 8 item 10): the analyst who ran it signs (meaning `analysed`) and it goes
to review. Signing re-evaluates QC at the time of signing and is refused while a failure of that
run has no corrective action, or while a sample position has no result for a batch parameter (and
no "not analysed" reason). The signature binds the batch's canonical content: positions, current
results, the evaluations of the latest run and every corrective action; a result revised after
signing breaks it wherever it is shown. A wrong password is refused and recorded by
`app.core.signatures.sign` (a RecordedRefusal: nothing else of the act remains).

Samples whose requested parameters all have a submitted result or a "not analysed" reason move from
`in_analysis` to `results_entered` (DOMAIN.md §3), each move audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import qc
from app.analysis import qc_errors as errors
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    BatchState,
    CorrectiveAction,
    NotAnalysed,
    PositionRole,
    QcEvaluation,
)
from app.analysis.results import current_results_of
from app.core import audit
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.permissions import Permission, ensure
from app.core.registry import batch_signed
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.people.models import User
from app.samples.models import Sample, SampleParameter, SampleState

SIGNED_ENTITY = "analysis_batch"
MIN_REASON = 10
MAX_REASON = 500


def _text(value: Any) -> str | None:
    return None if value is None else format(value, "f")


def signed_content(session: Session, batch: AnalysisBatch) -> dict[str, Any]:
    """What the analyst's signature binds (canonical, Decimals as text): the batch, its positions,
    the current result of every position × parameter, the latest run's evaluations and every
    corrective action. Recomputed when the signature is shown, to tell intact from broken."""
    return signed_contents(session, [batch])[batch.id]


def signed_contents(session: Session, batches: Iterable[AnalysisBatch]) -> dict[int, dict[str, Any]]:
    """`signed_content` of many batches (batch id → content) in five queries whatever their number:
    positions, sample numbers, current results, latest-run evaluations and corrective actions are
    each read once for all the batches (a report's checklist verifies every batch's signature)."""
    by_id = {b.id: b for b in batches}
    if not by_id:
        return {}
    ids = sorted(by_id)
    positions: dict[int, list[BatchPosition]] = {i: [] for i in ids}
    for p in session.scalars(select(BatchPosition).where(BatchPosition.batch_id.in_(ids))
                             .order_by(BatchPosition.batch_id, BatchPosition.position)):
        positions[p.batch_id].append(p)
    sample_ids = {p.sample_id for rows in positions.values() for p in rows if p.sample_id}
    sample_nos = dict(session.execute(select(Sample.id, Sample.sample_no).where(Sample.id.in_(sample_ids)))
                      .all()) if sample_ids else {}
    results = current_results_of(session, ids)
    evaluations = qc.latest_evaluations_of(session, ids)
    actions: dict[int, list[CorrectiveAction]] = {i: [] for i in ids}
    for a in session.scalars(select(CorrectiveAction).where(CorrectiveAction.batch_id.in_(ids))
                             .order_by(CorrectiveAction.id)):
        actions[a.batch_id].append(a)
    return {i: _content(by_id[i], positions[i], sample_nos, results[i].values(), evaluations[i], actions[i])
            for i in ids}


def _content(batch: AnalysisBatch, positions: list[BatchPosition], sample_nos: dict[int, str],
             current: Iterable[AnalysisResult], evaluations: list[QcEvaluation],
             actions: list[CorrectiveAction]) -> dict[str, Any]:
    """One batch's signed content from its rows (positions in order, evaluations and actions by id)."""
    number = {p.id: p.position for p in positions}
    results = sorted(current, key=lambda r: (number[r.position_id], r.parameter))
    return {
        "batch_no": batch.batch_no, "method_version_id": batch.method_version_id,
        "parameters": qc.batch_parameters(batch), "instrument_id": batch.instrument_id,
        "analyst_id": batch.analyst_id, "started_at": batch.started_at,
        "positions": [{
            "position": p.position, "role": p.role, "label": p.label, "sample_no": sample_nos.get(p.sample_id),
            "of_position": number.get(p.of_position_id), "rerun_of": number.get(p.rerun_of_id),
            "material_use_id": p.material_use_id, "material_barcode": p.material_barcode,
            "expected_value": _text(p.expected_value), "expected_uncertainty": _text(p.expected_uncertainty),
            "spike_added": _text(p.spike_added),
        } for p in positions],
        "results": [{
            "position": number[r.position_id], "parameter": r.parameter, "revision": r.revision, "result_id": r.id,
            "value": _text(r.value), "unit": r.unit, "reading": _text(r.reading), "reading_unit": r.reading_unit,
            "dilution_factor": _text(r.dilution_factor), "below_mdl": r.below_mdl, "measured_at": r.measured_at,
            "curve_id": r.curve_id, "instrument_id": r.instrument_id,
        } for r in results],
        "qc_run": evaluations[0].run if evaluations else 0,
        "evaluations": [{
            "id": e.id, "kind": e.kind, "parameter": e.parameter, "position": number.get(e.position_id),
            "curve_id": e.curve_id, "value": _text(e.value), "limit_low": _text(e.limit_low),
            "limit_high": _text(e.limit_high), "passed": e.passed, "detail": e.detail,
        } for e in evaluations],
        "corrective_actions": [{
            "evaluation_id": a.evaluation_id, "kind": a.kind, "qualifier": a.qualifier,
            "justification": a.justification, "rerun_position": number.get(a.rerun_position_id),
            "recorded_at": a.recorded_at, "recorded_by_id": a.recorded_by_id,
        } for a in actions],
    }


def signature_view(session: Session, batch: AnalysisBatch) -> SignatureView | None:
    """The analyst's signature as it stands now (intact or broken), or None before signing."""
    return signature_views(session, [batch])[batch.id]


def signature_views(session: Session, batches: Iterable[AnalysisBatch]) -> dict[int, SignatureView | None]:
    """`signature_view` of many batches (batch id → view, None when unsigned): the signatures in
    one query, the signed contents through `signed_contents` (a fixed number of queries)."""
    batches = list(batches)
    wanted = {b.signature_id for b in batches if b.signature_id}
    rows = {s.id: s for s in session.scalars(select(ElectronicSignature).where(
        ElectronicSignature.id.in_(wanted)))} if wanted else {}
    contents = signed_contents(session, [b for b in batches if b.signature_id in rows])
    return {b.id: check(rows[b.signature_id], contents[b.id]) if b.signature_id in rows else None for b in batches}


def missing_results(session: Session, batch: AnalysisBatch) -> list[str]:
    """Sample positions × batch parameters without a current result nor a "not analysed" reason,
    as 'S-001 NH3-N' (a position replaced by a rerun counts through its rerun)."""
    facts = qc.load_facts(session, batch)
    sample_ids = {p.sample_id for p in facts.positions if p.sample_id}
    excused = {tuple(row) for row in session.execute(select(NotAnalysed.sample_id, NotAnalysed.parameter).where(
        NotAnalysed.sample_id.in_(sample_ids)))} if sample_ids else set()
    missing = []
    for parameter in facts.parameters:
        for position in facts.active(parameter):
            if position.role != PositionRole.SAMPLE.value or facts.value(position, parameter) is not None:
                continue
            if (position.sample_id, parameter) in excused:
                continue
            missing.append(f"{position.label or facts.sample_no(position) or position.position} {parameter}")
    return missing


def _judge_and_sign(session: Session, analyst: User, batch: AnalysisBatch, password: str,
                    moment: datetime) -> tuple[qc.QcOutcome, ElectronicSignature]:
    """What signing a batch means, at submission and again after a correction: every result
    present, QC judged again (a new run) with each failure answered, then `analysed` over the
    batch's content."""
    missing = missing_results(session, batch)
    if missing:
        raise errors.ResultsMissing(missing="; ".join(missing))
    outcome = qc.run_evaluation(session, analyst, batch, moment)
    if outcome.unanswered:
        named = [qc.check_words(e) for e in outcome.unanswered]
        raise errors.QcFailureUnresolved(failures_zh="；".join(zh for zh, _ in named),
                                         failures_en="; ".join(en for _, en in named))
    signature = sign(session, analyst, password, SignatureMeaning.ANALYSED, SIGNED_ENTITY, batch.id,
                     signed_content(session, batch))
    return outcome, signature


def submit_batch(session: Session, actor: User, batch: AnalysisBatch, password: str,
                 at: datetime | None = None) -> AnalysisBatch:
    """The analyst signs the batch (`analysed`) at `at` after QC is judged again; it goes to review."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    batch = qc.locked(session, batch)
    qc.assert_evaluable(batch)
    qc.assert_analyst(session, actor, batch)
    moment = at or utcnow()
    outcome, signature = _judge_and_sign(session, actor, batch, password, moment)
    state_before = batch.state
    batch.state, batch.submitted_at, batch.signature_id = BatchState.SUBMITTED.value, moment, signature.id
    session.flush()
    moved = _mark_results_entered(session, actor, _sample_ids(session, batch.id))
    audit.append(session, actor, "analysis.batch_submitted", "analysis_batch", batch.id, {"state": state_before}, {
        "batch_no": batch.batch_no, "state": batch.state, "submitted_at": moment, "signature_id": signature.id,
        "content_hash": signature.content_hash, "qc_run": outcome.run, "qc_passed": batch.qc_passed,
        "samples_results_entered": moved})
    batch_signed(session, actor, batch.id)
    return batch


def _sample_ids(session: Session, batch_id: int) -> set[int]:
    return set(session.scalars(select(BatchPosition.sample_id).where(
        BatchPosition.batch_id == batch_id, BatchPosition.role == PositionRole.SAMPLE.value,
        BatchPosition.sample_id.is_not(None))))


def _mark_results_entered(session: Session, actor: User, sample_ids: Iterable[int]) -> list[str]:
    """Samples in analysis whose every requested parameter has a submitted result (a sample
    position of a submitted batch), a reading in the sampler's signed field record (pH, DO...:
    measured on site, printed on the report as they stand) or a "not analysed" reason →
    results_entered (audited)."""
    from app.samples.field import signed_field_readings

    wanted = set(sample_ids)
    if not wanted:
        return []
    requested: dict[int, set[str]] = {}
    for sample_id, parameter in session.execute(select(SampleParameter.sample_id, SampleParameter.parameter)
                                                .where(SampleParameter.sample_id.in_(wanted))).all():
        requested.setdefault(sample_id, set()).add(parameter)
    done = {tuple(row) for row in session.execute(
        select(AnalysisResult.sample_id, AnalysisResult.parameter)
        .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
        .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
        .where(AnalysisResult.sample_id.in_(wanted), BatchPosition.role == PositionRole.SAMPLE.value,
               AnalysisBatch.state.in_([BatchState.SUBMITTED.value, BatchState.CLOSED.value])))}
    done |= {tuple(row) for row in session.execute(select(NotAnalysed.sample_id, NotAnalysed.parameter)
                                                   .where(NotAnalysed.sample_id.in_(wanted)))}
    done |= set(signed_field_readings(session, wanted))
    moved = []
    for sample in session.scalars(select(Sample).where(Sample.id.in_(wanted)).order_by(Sample.sample_no)):
        if sample.state != SampleState.IN_ANALYSIS.value:
            continue
        if all((sample.id, p) in done for p in requested.get(sample.id, set())):
            sample.state = SampleState.RESULTS_ENTERED.value
            session.flush()
            audit.append(session, actor, "sample.results_entered", "sample", sample.id,
                         {"state": SampleState.IN_ANALYSIS.value},
                         {"sample_no": sample.sample_no, "state": sample.state})
            moved.append(sample.sample_no)
    return moved


def record_not_analysed(session: Session, actor: User, sample: Sample, parameter: str, reason: str) -> NotAnalysed:
    """A requested parameter of a sample that will have no result, with the reason (DOMAIN.md §3);
    the sample moves on to results_entered if that was all it waited for."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    sample = session.execute(select(Sample).where(Sample.id == sample.id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one()
    code = (parameter or "").strip()
    requested = session.scalar(select(SampleParameter.id).where(SampleParameter.sample_id == sample.id,
                                                                SampleParameter.parameter == code))
    if requested is None:
        raise errors.ParameterNotRequested(sample_no=sample.sample_no, parameter=code[:60] or "—")
    text = " ".join((reason or "").split())
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise errors.NotAnalysedReasonRequired(minimum=MIN_REASON, maximum=MAX_REASON)
    if session.scalar(select(NotAnalysed.id).where(NotAnalysed.sample_id == sample.id,
                                                   NotAnalysed.parameter == code)) is not None:
        raise errors.NotAnalysedExists(sample_no=sample.sample_no, parameter=code)
    submitted = session.scalar(
        select(AnalysisResult.id).join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
        .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
        .where(AnalysisResult.sample_id == sample.id, AnalysisResult.parameter == code,
               BatchPosition.role == PositionRole.SAMPLE.value,
               AnalysisBatch.state.in_([BatchState.SUBMITTED.value, BatchState.CLOSED.value])).limit(1))
    if submitted is not None:
        raise errors.ResultAlreadySubmitted(sample_no=sample.sample_no, parameter=code)
    moment = utcnow()
    row = NotAnalysed(sample_id=sample.id, parameter=code, reason=text, recorded_at=moment, recorded_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "analysis.not_analysed", "sample", sample.id, None, {
        "sample_no": sample.sample_no, "parameter": code, "reason": text, "recorded_at": moment})
    _mark_results_entered(session, actor, [sample.id])
    return row



# ---------------------------------------------------------------- signing a corrected batch again


class BatchNotResignable(DomainError):
    code = "batch_not_resignable"
    message_zh = "分析批 {batch_no} 当前状态为“{state}”：只有已提交（分析人已签名）的分析批可以重新签署。"
    message_en = "Batch {batch_no} is {state}: only a submitted batch (signed by the analyst) is signed again."


class BatchSignatureIntact(DomainError):
    code = "batch_signature_intact"
    message_zh = "分析批 {batch_no} 的分析人签名仍然有效，无需重新签署。"
    message_en = "The analyst's signature of batch {batch_no} still holds; there is nothing to sign again."


def resign_batch(session: Session, analyst: User, batch: AnalysisBatch, password: str) -> AnalysisBatch:
    """The analyst signs a submitted batch again after correcting results (a report was returned,
    the revisions broke the first signature): QC is judged again as at submission, a new
    `analysed` signature binds the corrected content and replaces the batch's signature; the old
    one stays on record, broken. Refused while the signature still holds."""
    ensure(session, analyst, Permission.ANALYSIS_RECORD)
    batch = qc.locked(session, batch)
    if batch.state != BatchState.SUBMITTED.value:
        raise BatchNotResignable(batch_no=batch.batch_no, state=batch.state)
    qc.assert_analyst(session, analyst, batch)
    view = signature_view(session, batch)
    if view is not None and view.intact:
        raise BatchSignatureIntact(batch_no=batch.batch_no)
    moment = utcnow()
    outcome, signature = _judge_and_sign(session, analyst, batch, password, moment)
    previous = batch.signature_id
    batch.state, batch.signature_id = BatchState.SUBMITTED.value, signature.id
    session.flush()
    audit.append(session, analyst, "analysis.batch_resigned", "analysis_batch", batch.id,
                 {"signature_id": previous, "content_hash": view.signature.content_hash if view else None}, {
                     "batch_no": batch.batch_no, "state": batch.state, "signature_id": signature.id,
                     "content_hash": signature.content_hash, "qc_run": outcome.run, "qc_passed": batch.qc_passed})
    batch_signed(session, analyst, batch.id)
    return batch
