"""Corrective actions for failed QC checks (issue 8 item 7): a rerun, or a justified qualifier.

Only a failure of the latest evaluation run can be answered, only by the batch's analyst, with a
justification of at least ten characters; each failed check is answered once (a qualifier keeps
answering the same check in later runs; see `app.analysis.qc`).

- A rerun appends a NEW batch position (the next position number) with the same role, sample and
  original (`of_position`), `rerun_of_id` pointing to the failed one. A rerun of a CRM, CCV or
  spike re-measures the same prepared QC solution: it reuses the original position's material use,
  expected value, uncertainty and amount added instead of drawing the standard again (the
  reference-materials gate was passed when that solution was taken, and no new material is used).
  A fresh standard is a new QC position through the batch service. The batch goes back to
  `running` so the rerun's result can be entered like any other (DOMAIN.md §3: qc_failed → rerun).
- A qualifier is a code from a small fixed table that travels to the report with every sample
  result the failed check affects (`qualifiers_for`).

Qualifier letters are the lab's own, one per QC kind, after the category letters laboratory
data-qualifier lists use (Arizona Data Qualifiers rev. 2.0, 2003: B method blank, D dilution, M
matrix spike, R RPD; US EPA CLP: B analyte found in the blank, J estimated). "L" is never used: in
Chinese water reports it already means "below the detection limit" (0.025L, HJ/T 91-2002). Each code
is printed with its meaning on the report.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from app.analysis import qc
from app.analysis import qc_errors as errors
from app.analysis.models import (
    AnalysisBatch,
    BatchPosition,
    BatchState,
    CorrectiveAction,
    CorrectiveKind,
    PositionRole,
    QcEvaluation,
    QcKind,
)
from app.core import audit
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.people.models import User

MIN_JUSTIFICATION = 10
MAX_JUSTIFICATION = 1000

QUALIFIERS: dict[str, tuple[str, str]] = {
    "B": ("实验室空白超过检出限，结果可能偏高", "method blank at or above the MDL; the result may be biased high"),
    "D": ("平行双样相对偏差超出方法限值", "lab duplicate relative deviation outside the method's limit"),
    "S": ("加标回收率超出方法规定范围", "spike recovery outside the method's range"),
    "C": ("有证标准物质测定值超出保证值范围", "CRM result outside its certified value ± uncertainty"),
    "V": ("校准核查偏差超出允许范围", "continuing calibration check outside its tolerance"),
    "K": ("校准曲线未满足方法验收要求", "calibration curve did not meet the method's acceptance"),
    "J": ("估计值：质控未满足要求，结果仅供参考", "estimated value: QC not met, the result is indicative"),
}
KIND_QUALIFIER = {QcKind.BLANK.value: "B", QcKind.DUPLICATE.value: "D", QcKind.SPIKE.value: "S",
                  QcKind.CRM.value: "C", QcKind.CCV.value: "V", QcKind.CURVE.value: "K"}
GENERAL_QUALIFIER = "J"
KINDS = (CorrectiveKind.RERUN.value, CorrectiveKind.QUALIFIER.value)


def allowed_qualifiers(kind: str) -> tuple[str, ...]:
    """The qualifiers that can answer a failure of `kind`: its own letter, or J (estimated)."""
    own = KIND_QUALIFIER.get(kind)
    return (own, GENERAL_QUALIFIER) if own else (GENERAL_QUALIFIER,)


def _evaluation(session: Session, evaluation_id: int,
                batch: AnalysisBatch | None) -> tuple[QcEvaluation, AnalysisBatch]:
    evaluation = session.get(QcEvaluation, evaluation_id) if isinstance(evaluation_id, int) else None
    if evaluation is None or (batch is not None and evaluation.batch_id != batch.id):
        raise errors.EvaluationNotFound(evaluation_id=evaluation_id,
                                        of_batch_zh=f"（分析批 {batch.batch_no}）" if batch else "",
                                        of_batch_en=f" of batch {batch.batch_no}" if batch else "")
    return evaluation, session.get(AnalysisBatch, evaluation.batch_id)


def _justification(text: str) -> str:
    cleaned = " ".join((text or "").split())
    if len(cleaned) < MIN_JUSTIFICATION:
        raise errors.JustificationTooShort(minimum=MIN_JUSTIFICATION)
    if len(cleaned) > MAX_JUSTIFICATION:
        raise errors.JustificationTooLong(maximum=MAX_JUSTIFICATION)
    return cleaned


def _rerun_label(session: Session, failed: BatchPosition) -> str:
    """S-001D → S-001D-R1; a rerun of a rerun counts on (S-001D-R2)."""
    root, depth = failed, 1
    while root.rerun_of_id:
        root, depth = session.get(BatchPosition, root.rerun_of_id), depth + 1
    base = root.label or f"#{root.position}"
    return f"{base[:54]}-R{depth}"


def _append_rerun(session: Session, actor: User, batch: AnalysisBatch, failed: BatchPosition,
                  at: datetime) -> BatchPosition:
    last = session.scalar(select(BatchPosition.position).where(BatchPosition.batch_id == batch.id)
                          .order_by(BatchPosition.position.desc()).limit(1)) or 0
    rerun = BatchPosition(
        batch_id=batch.id, position=last + 1, role=failed.role, sample_id=failed.sample_id,
        container_id=failed.container_id, of_position_id=failed.of_position_id, rerun_of_id=failed.id,
        label=_rerun_label(session, failed), material_use_id=failed.material_use_id,
        material_barcode=failed.material_barcode, expected_value=failed.expected_value,
        expected_uncertainty=failed.expected_uncertainty, spike_added=failed.spike_added, added_at=at,
        added_by_id=actor.id)
    session.add(rerun)
    session.flush()
    return rerun


def record_corrective_action(session: Session, actor: User, evaluation_id: int, kind: str, justification: str,
                             qualifier: str = "", at: datetime | None = None,
                             batch: AnalysisBatch | None = None) -> CorrectiveAction:
    """Answer a failed QC check of the latest run with a rerun or a justified qualifier (`batch`:
    the batch the form was on; an evaluation of another batch is not found)."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    evaluation, batch = _evaluation(session, evaluation_id, batch)
    batch = qc.locked(session, batch)
    if batch.state in qc.DONE_STATES:
        raise errors.BatchAlreadySubmitted(batch_no=batch.batch_no)
    qc.assert_analyst(session, actor, batch)
    latest = qc.latest_run(session, batch.id)
    if evaluation.run != latest:
        raise errors.EvaluationSuperseded(run=evaluation.run, latest=latest)
    words_zh, words_en = qc.check_words(evaluation)
    if evaluation.passed is not False:
        raise errors.EvaluationNotFailed(check_zh=words_zh, check_en=words_en)
    answered = qc.actions_by_check(session, batch.id)
    if qc.check_key(evaluation) in answered:
        raise errors.CorrectiveActionExists(check_zh=words_zh, check_en=words_en)
    kind_value = str(kind or "").strip().lower()
    if kind_value not in KINDS:
        raise errors.CorrectiveKindUnknown(kind=kind_value[:20] or "—")
    text = _justification(justification)
    moment = at or utcnow()
    code, rerun = "", None
    state_before = batch.state
    if kind_value == CorrectiveKind.RERUN.value:
        if evaluation.position_id is None:
            raise errors.RerunNotPossible()
        rerun = _append_rerun(session, actor, batch, session.get(BatchPosition, evaluation.position_id), moment)
        batch.state = BatchState.RUNNING.value
    else:
        allowed = allowed_qualifiers(evaluation.kind)
        code = (qualifier or "").strip().upper() or allowed[0]
        if code not in allowed:
            raise errors.QualifierNotAllowed(qualifier=code[:20], check_zh=words_zh, check_en=words_en,
                                                 allowed="/".join(allowed))
    action = CorrectiveAction(batch_id=batch.id, evaluation_id=evaluation.id, kind=kind_value, qualifier=code,
                              justification=text, rerun_position_id=rerun.id if rerun else None, recorded_at=moment,
                              recorded_by_id=actor.id)
    session.add(action)
    session.flush()
    if rerun is None:
        answered = qc.actions_by_check(session, batch.id)
        batch.state = qc.state_after(qc.latest_evaluations(session, batch.id), answered)
    session.flush()
    audit.append(session, actor, "analysis.corrective_action", "analysis_batch", batch.id,
                 {"state": state_before}, {
                     "batch_no": batch.batch_no, "evaluation_id": evaluation.id, "run": evaluation.run,
                     "check": {"kind": evaluation.kind, "parameter": evaluation.parameter,
                               "label": qc.detail_of(evaluation).get("label")},
                     "kind": kind_value, "qualifier": code, "justification": text,
                     "rerun_position": rerun.position if rerun else None,
                     "rerun_label": rerun.label if rerun else None, "recorded_at": moment, "state": batch.state})
    return action


def qualifiers_for(session: Session, batch_id: int) -> dict[tuple[int, str], list[str]]:
    """The qualifier codes each sample result of the batch carries to the report, by (sample
    position id, parameter), in one query: a whole-parameter check (blank, CCV, CRM, curve) flags
    every sample position of the batch for that parameter; a duplicate or spike flags its own sample."""
    checked = aliased(BatchPosition)
    sample = aliased(BatchPosition)
    rows = session.execute(
        select(sample.id, QcEvaluation.parameter, CorrectiveAction.qualifier)
        .join(QcEvaluation, QcEvaluation.id == CorrectiveAction.evaluation_id)
        .outerjoin(checked, checked.id == QcEvaluation.position_id)
        .join(sample, (sample.batch_id == CorrectiveAction.batch_id) & (sample.role == PositionRole.SAMPLE.value)
              & or_(QcEvaluation.kind.in_(sorted(qc.WHOLE_PARAMETER)), sample.id == checked.of_position_id))
        .where(CorrectiveAction.batch_id == batch_id, CorrectiveAction.kind == CorrectiveKind.QUALIFIER.value)
    ).all()
    found: dict[tuple[int, str], set[str]] = {}
    for position_id, parameter, code in rows:
        found.setdefault((position_id, parameter), set()).add(code)
    return {key: sorted(codes) for key, codes in found.items()}
