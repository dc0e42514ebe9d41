"""QC evaluation of an analysis batch (DOMAIN.md §4.2; issue 8 item 7).

An evaluation is a run: every check of the batch judged again from the CURRENT results (the
highest revision per position × parameter) and the method version's rules, written as new
append-only `QcEvaluation` rows numbered `previous run + 1`; nothing earlier is touched. Each row
keeps in `detail` the inputs it was judged on, the rule, and which sample results a failure
affects (a blank, CCV, CRM or curve: every sample of the batch for that parameter; a duplicate or
a spike: its own sample).

A QC position without a result fails ("no result"): QC cannot pass by not being measured. A rerun
position (a corrective action) takes the place of the position it repeats for a parameter once it
has a result for it, or when the rerun was recorded for that parameter's failure.

Decisions (say them where they show):
- CRM, CCV and spike positions carry one expected value (or amount added), so in a batch of
  several parameters such a position is judged for the parameters it has results for; with none at
  all it fails for every parameter. In a one-parameter batch it is always judged.
- CCV tolerance: the method version stores one `ccv_tolerance_pct` and it is used for every
  parameter; a parameter flagged organic is noted in the detail (DOMAIN.md §4.2: 20 % for organics
  is a default the method version sets when its parameters are organic).
- A failure is answered by a corrective action recorded against the same check (kind, parameter,
  position or curve) in any run: a justified qualifier keeps answering it in later runs; a rerun
  replaces the position, so the next run judges the rerun instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analysis import numbers
from app.analysis import qc_errors as errors
from app.analysis.batches import assert_analyst, batch_parameters, locked
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    BatchState,
    CalculationKind,
    CalibrationCurve,
    CorrectiveAction,
    CorrectiveKind,
    MethodParameter,
    MethodVersion,
    PositionRole,
    QcEvaluation,
    QcKind,
)
from app.analysis.results import current_results
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples.models import Sample

EVALUABLE_STATES = frozenset({BatchState.RUNNING.value, BatchState.IMPORTED.value, BatchState.QC_EVALUATED.value,
                              BatchState.QC_FAILED.value})
DONE_STATES = frozenset({BatchState.SUBMITTED.value, BatchState.CLOSED.value})
ROLE_KIND = {
    PositionRole.METHOD_BLANK.value: QcKind.BLANK.value,
    PositionRole.DUPLICATE.value: QcKind.DUPLICATE.value,
    PositionRole.SPIKE.value: QcKind.SPIKE.value,
    PositionRole.CRM.value: QcKind.CRM.value,
    PositionRole.CCV.value: QcKind.CCV.value,
}
# a failure of these affects every sample of the batch for the parameter; the others their own sample
WHOLE_PARAMETER = frozenset({QcKind.BLANK.value, QcKind.CCV.value, QcKind.CRM.value, QcKind.CURVE.value})
# judged for the parameters they have results for when the batch has several (one expected value each)
ONE_VALUE_ROLES = frozenset({PositionRole.CRM.value, PositionRole.CCV.value, PositionRole.SPIKE.value})
KIND_WORDS = {
    QcKind.BLANK.value: ("实验室空白", "method blank"),
    QcKind.DUPLICATE.value: ("平行双样", "lab duplicate"),
    QcKind.SPIKE.value: ("加标回收", "spike recovery"),
    QcKind.CRM.value: ("有证标准物质", "CRM"),
    QcKind.CCV.value: ("校准核查", "CCV"),
    QcKind.CURVE.value: ("校准曲线", "calibration curve"),
}
RULES = {
    QcKind.BLANK.value: "result < MDL (HJ 828-2017 §12; DOMAIN.md §4.2)",
    QcKind.DUPLICATE.value: "RD = |x1 - x2| / (x1 + x2) x 100 <= limit at the pair's mean level; both < MDL: "
                            "not evaluated (DOMAIN.md §4.2)",
    QcKind.SPIKE.value: "P = (spiked - unspiked) / added x 100 within [low, high] (DOMAIN.md §4.2)",
    QcKind.CRM.value: "certified value - U <= result <= certified value + U (HJ 828-2017; DOMAIN.md §4.2)",
    QcKind.CCV.value: "|result - expected| / expected x 100 <= the method version's CCV tolerance (DOMAIN.md §4.2)",
    QcKind.CURVE.value: "curve accepted and r >= the method version's r minimum (DOMAIN.md §4.2)",
}
CURVE_CALCULATIONS = frozenset({CalculationKind.CURVE.value, CalculationKind.CURVE_BLANK_CORRECTED.value})


# ---------------------------------------------------------------- lookups


def assert_evaluable(batch: AnalysisBatch) -> None:
    if batch.state in DONE_STATES:
        raise errors.BatchAlreadySubmitted(batch_no=batch.batch_no)
    if batch.state not in EVALUABLE_STATES:
        raise errors.BatchNotStarted(batch_no=batch.batch_no)


def latest_run(session: Session, batch_id: int) -> int:
    return session.scalar(select(func.max(QcEvaluation.run)).where(QcEvaluation.batch_id == batch_id)) or 0


def latest_evaluations(session: Session, batch_id: int) -> list[QcEvaluation]:
    """The checks of the batch's latest evaluation run (empty before the first), in one query."""
    last = select(func.max(QcEvaluation.run)).where(QcEvaluation.batch_id == batch_id).scalar_subquery()
    return list(session.scalars(select(QcEvaluation).where(QcEvaluation.batch_id == batch_id,
                                                           QcEvaluation.run == last).order_by(QcEvaluation.id)))


def latest_evaluations_of(session: Session, batch_ids: Iterable[int]) -> dict[int, list[QcEvaluation]]:
    """`latest_evaluations` of many batches in one query: batch id → the checks of its latest run
    by id (empty before the first run); every batch asked is a key."""
    ids = sorted(set(batch_ids))
    found: dict[int, list[QcEvaluation]] = {i: [] for i in ids}
    if not ids:
        return found
    last = (select(QcEvaluation.batch_id.label("batch_id"), func.max(QcEvaluation.run).label("run"))
            .where(QcEvaluation.batch_id.in_(ids)).group_by(QcEvaluation.batch_id).subquery())
    for e in session.scalars(select(QcEvaluation).join(last, (last.c.batch_id == QcEvaluation.batch_id)
                                                       & (last.c.run == QcEvaluation.run)).order_by(QcEvaluation.id)):
        found[e.batch_id].append(e)
    return found


CheckKey = tuple[str, str, int | None, int | None]


def check_key(evaluation: QcEvaluation) -> CheckKey:
    """What a check is about, the same from one run to the next: kind, parameter, position or curve."""
    return (evaluation.kind, evaluation.parameter, evaluation.position_id, evaluation.curve_id)


def actions_by_check(session: Session, batch_id: int) -> dict[CheckKey, list[tuple[CorrectiveAction, QcEvaluation]]]:
    """Every corrective action of the batch with the evaluation it answers, by check, in one query."""
    found: dict[CheckKey, list[tuple[CorrectiveAction, QcEvaluation]]] = {}
    for action, evaluation in session.execute(
        select(CorrectiveAction, QcEvaluation).join(QcEvaluation, QcEvaluation.id == CorrectiveAction.evaluation_id)
        .where(CorrectiveAction.batch_id == batch_id).order_by(CorrectiveAction.id)
    ).all():
        found.setdefault(check_key(evaluation), []).append((action, evaluation))
    return found


def unanswered(evaluations: Iterable[QcEvaluation], answered: dict[CheckKey, Any]) -> list[QcEvaluation]:
    """The failures no corrective action answers yet."""
    return [e for e in evaluations if e.passed is False and check_key(e) not in answered]


def state_after(evaluations: Sequence[QcEvaluation], answered: dict[CheckKey, Any]) -> str:
    """DOMAIN.md §3: qc_evaluated when every check passed or has its corrective action."""
    return BatchState.QC_FAILED.value if unanswered(evaluations, answered) else BatchState.QC_EVALUATED.value


def detail_of(evaluation: QcEvaluation) -> dict[str, Any]:
    return json.loads(evaluation.detail or "{}")


def check_words(evaluation: QcEvaluation) -> tuple[str, str]:
    """A failure named for a message: 'BLK1 NH3-N 实验室空白' / 'BLK1 NH3-N method blank'."""
    zh, en = KIND_WORDS.get(evaluation.kind, (evaluation.kind, evaluation.kind))
    where = detail_of(evaluation).get("label") or ""
    prefix = f"{where} " if where else ""
    return f"{prefix}{evaluation.parameter} {zh}", f"{prefix}{evaluation.parameter} {en}"


# ---------------------------------------------------------------- computing the checks


@dataclass
class Check:
    kind: str
    parameter: str
    position: BatchPosition | None = None
    curve_id: int | None = None
    value: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    passed: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchFacts:
    """Everything a run is judged on, loaded in a fixed number of queries."""

    batch: AnalysisBatch
    version: MethodVersion
    parameters: list[str]
    method_parameters: dict[str, MethodParameter]
    positions: list[BatchPosition]
    results: dict[tuple[int, str], AnalysisResult]
    curves: dict[str, CalibrationCurve]
    sample_numbers: dict[int, str]
    rerun_for: dict[int, set[str]]  # rerun position id → the parameters its corrective action was for

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.positions}
        self.replaced: dict[tuple[int, str], BatchPosition] = {}
        self.standing: set[tuple[int, str]] = set()  # reruns that stand in for their original
        for parameter in self.parameters:
            for rerun in sorted((p for p in self.positions if p.rerun_of_id), key=lambda p: p.position):
                if (rerun.id, parameter) in self.results or parameter in self.rerun_for.get(rerun.id, set()):
                    self.replaced[(rerun.rerun_of_id, parameter)] = rerun
                    self.standing.add((rerun.id, parameter))

    def effective(self, position_id: int | None, parameter: str) -> BatchPosition | None:
        """The position that stands for `position_id` for `parameter`: its latest rerun, if any."""
        position = self.by_id.get(position_id) if position_id else None
        seen = 0
        while position is not None and (position.id, parameter) in self.replaced and seen < len(self.positions):
            position, seen = self.replaced[(position.id, parameter)], seen + 1
        return position

    def active(self, parameter: str) -> list[BatchPosition]:
        """The positions judged for `parameter`: not replaced by a rerun, and a rerun only where it
        stands in for its original (a blank rerun for NH3-N says nothing about TP)."""
        return [p for p in self.positions if (p.id, parameter) not in self.replaced
                and (not p.rerun_of_id or (p.id, parameter) in self.standing)]

    def value(self, position: BatchPosition | None, parameter: str) -> AnalysisResult | None:
        return self.results.get((position.id, parameter)) if position is not None else None

    def sample_no(self, position: BatchPosition | None) -> str:
        if position is None or position.sample_id is None:
            return ""
        return self.sample_numbers.get(position.sample_id, "")

    def samples_of(self, parameter: str) -> list[str]:
        return sorted({self.sample_no(p) for p in self.active(parameter)
                       if p.role == PositionRole.SAMPLE.value and p.sample_id})


def load_facts(session: Session, batch: AnalysisBatch) -> BatchFacts:
    version = session.get(MethodVersion, batch.method_version_id)
    parameters = batch_parameters(batch)
    method_parameters = {p.parameter: p for p in session.scalars(
        select(MethodParameter).where(MethodParameter.method_version_id == batch.method_version_id))}
    positions = list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                     .order_by(BatchPosition.position)))
    results = current_results(session, batch.id)
    curves = {parameter: curve for parameter, curve in session.execute(
        select(BatchCurve.parameter, CalibrationCurve)
        .join(CalibrationCurve, CalibrationCurve.id == BatchCurve.curve_id)
        .where(BatchCurve.batch_id == batch.id)).all()}
    sample_ids = {p.sample_id for p in positions if p.sample_id}
    numbers_ = dict(session.execute(select(Sample.id, Sample.sample_no).where(Sample.id.in_(sample_ids))).all()) \
        if sample_ids else {}
    rerun_for: dict[int, set[str]] = {}
    for position_id, parameter in session.execute(
        select(CorrectiveAction.rerun_position_id, QcEvaluation.parameter)
        .join(QcEvaluation, QcEvaluation.id == CorrectiveAction.evaluation_id)
        .where(CorrectiveAction.batch_id == batch.id, CorrectiveAction.kind == CorrectiveKind.RERUN.value)
    ).all():
        if position_id:
            rerun_for.setdefault(position_id, set()).add(parameter)
    return BatchFacts(batch, version, parameters, method_parameters, positions, results, curves, numbers_, rerun_for)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _result_detail(result: AnalysisResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"value": _text(result.value), "unit": result.unit, "revision": result.revision,
            "result_id": result.id}


def _position_check(facts: BatchFacts, position: BatchPosition, parameter: str) -> Check | None:
    kind = ROLE_KIND[position.role]
    check = Check(kind, parameter, position)
    own = facts.value(position, parameter)
    check.detail = {"rule": RULES[kind], "label": position.label or f"#{position.position}",
                    "position": position.position, "result": _result_detail(own)}
    if kind in WHOLE_PARAMETER:
        check.detail.update(scope="parameter", affects=facts.samples_of(parameter))
    else:
        original = facts.effective(position.of_position_id, parameter)
        sample_no = facts.sample_no(original) or facts.sample_no(position)
        check.detail.update(scope="sample", affects=[sample_no] if sample_no else [])
    if own is None:
        check.passed = False
        check.detail["reason"] = "no_result"
        return check
    judge = {QcKind.BLANK.value: _blank, QcKind.DUPLICATE.value: _duplicate, QcKind.SPIKE.value: _spike,
             QcKind.CRM.value: _crm, QcKind.CCV.value: _ccv}[kind]
    judge(facts, check, own)
    return check


def _blank(facts: BatchFacts, check: Check, own: AnalysisResult) -> None:
    parameter = facts.method_parameters.get(check.parameter)
    if parameter is None:
        check.passed, check.detail["reason"] = False, "parameter_not_in_method"
        return
    check.value, check.high = own.value, parameter.mdl
    check.passed = own.value < parameter.mdl
    check.detail["mdl"] = _text(parameter.mdl)


def _duplicate(facts: BatchFacts, check: Check, own: AnalysisResult) -> None:
    original = facts.effective(check.position.of_position_id, check.parameter)
    first = facts.value(original, check.parameter)
    check.detail["original"] = {"label": original.label if original else None, "result": _result_detail(first)}
    if first is None:
        check.passed, check.detail["reason"] = False, "no_result_for_original"
        return
    parameter = facts.method_parameters.get(check.parameter)
    mdl = parameter.mdl if parameter else None
    check.detail["mdl"] = _text(mdl)
    if mdl is not None and first.value < mdl and own.value < mdl:
        check.passed, check.detail["reason"] = None, "both_below_mdl"
        return
    rd = numbers.relative_deviation_pct(first.value, own.value)
    if rd is None:
        check.passed, check.detail["reason"] = False, "rd_undefined"
        return
    limits = [(Decimal(level), Decimal(limit))
              for level, limit in json.loads(facts.version.duplicate_rd_limits or "[]")]
    level = numbers.mean([first.value, own.value])
    check.value, check.high = rd, numbers.rd_limit_pct(level, limits)
    check.passed = rd <= check.high
    check.detail.update(level=_text(level), limits="method" if limits else "generic")


def _spike(facts: BatchFacts, check: Check, own: AnalysisResult) -> None:
    original = facts.effective(check.position.of_position_id, check.parameter)
    unspiked = facts.value(original, check.parameter)
    added = check.position.spike_added
    check.detail.update(original={"label": original.label if original else None, "result": _result_detail(unspiked)},
                        added=_text(added))
    if unspiked is None:
        check.passed, check.detail["reason"] = False, "no_result_for_original"
        return
    if added is None or added <= 0:
        check.passed, check.detail["reason"] = False, "no_spike_amount"
        return
    check.value = numbers.recovery_pct(own.value, unspiked.value, added)
    check.low, check.high = facts.version.spike_recovery_low, facts.version.spike_recovery_high
    check.passed = check.low <= check.value <= check.high


def _crm(facts: BatchFacts, check: Check, own: AnalysisResult) -> None:
    expected, uncertainty = check.position.expected_value, check.position.expected_uncertainty
    check.value = own.value
    check.detail.update(expected=_text(expected), uncertainty=_text(uncertainty))
    if expected is None or uncertainty is None:
        check.passed, check.detail["reason"] = False, "no_certified_value"
        return
    check.low, check.high = expected - uncertainty, expected + uncertainty
    check.passed = check.low <= own.value <= check.high


def _ccv(facts: BatchFacts, check: Check, own: AnalysisResult) -> None:
    expected = check.position.expected_value
    parameter = facts.method_parameters.get(check.parameter)
    check.detail.update(expected=_text(expected), organic=bool(parameter and parameter.organic),
                        tolerance_source="method version ccv_tolerance_pct")
    if expected is None or expected <= 0:
        check.passed, check.detail["reason"] = False, "no_expected_value"
        return
    deviation = (own.value - expected) / expected * 100
    check.value, check.high = abs(deviation), facts.version.ccv_tolerance_pct
    check.passed = check.value <= check.high
    check.detail["signed_deviation"] = _text(deviation)


def _curve_check(facts: BatchFacts, parameter: str) -> Check | None:
    curve = facts.curves.get(parameter)
    if curve is None and facts.version.calculation not in CURVE_CALCULATIONS:
        return None
    check = Check(QcKind.CURVE.value, parameter, curve_id=curve.id if curve else None,
                  detail={"rule": RULES[QcKind.CURVE.value], "scope": "parameter",
                          "affects": facts.samples_of(parameter), "label": curve.code if curve else ""})
    check.low = facts.version.curve_r_min
    if curve is None:
        check.passed, check.detail["reason"] = False, "no_curve"
        return check
    check.value = curve.r
    check.passed = bool(curve.accepted) and curve.r >= check.low
    check.detail.update(accepted=bool(curve.accepted), rejection=curve.rejection, kind=curve.kind,
                        measured_at=curve.measured_at)
    if not curve.accepted:
        check.detail["reason"] = "curve_not_accepted"
    return check


def compute_checks(facts: BatchFacts) -> list[Check]:
    """Every check of the batch for its current results, in run order (positions, then curves)."""
    checks: list[Check] = []
    several = len(facts.parameters) > 1
    for parameter in facts.parameters:
        for position in facts.active(parameter):
            if position.role not in ROLE_KIND:
                continue
            if several and position.role in ONE_VALUE_ROLES and facts.value(position, parameter) is None \
                    and any((position.id, p) in facts.results for p in facts.parameters):
                continue  # this standard serves another parameter of the batch
            checks.append(_position_check(facts, position, parameter))
    for parameter in facts.parameters:
        curve = _curve_check(facts, parameter)
        if curve is not None:
            checks.append(curve)
    return checks


# ---------------------------------------------------------------- the service


@dataclass
class QcOutcome:
    batch: AnalysisBatch
    run: int
    evaluations: list[QcEvaluation]
    failures: list[QcEvaluation]
    unanswered: list[QcEvaluation]

    @property
    def passed(self) -> bool:
        return not self.failures


def evaluate_batch(session: Session, actor: User, batch: AnalysisBatch, at: datetime | None = None) -> QcOutcome:
    """Judge every QC check of the batch again, as a new run, at `at` (default now)."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    batch = locked(session, batch)
    assert_evaluable(batch)
    assert_analyst(session, actor, batch)
    return run_evaluation(session, actor, batch, at or utcnow())


def run_evaluation(session: Session, actor: User, batch: AnalysisBatch, at: datetime) -> QcOutcome:
    """The run itself, for a batch already locked and checked (submission re-evaluates through it)."""
    facts = load_facts(session, batch)
    run = latest_run(session, batch.id) + 1
    rows = [QcEvaluation(batch_id=batch.id, run=run, method_id=facts.version.method_id, parameter=c.parameter,
                         kind=c.kind, position_id=c.position.id if c.position else None, curve_id=c.curve_id,
                         value=c.value, limit_low=c.low, limit_high=c.high, passed=c.passed,
                         detail=canonical_json(c.detail), evaluated_at=at)
            for c in compute_checks(facts)]
    session.add_all(rows)
    session.flush()
    answered = actions_by_check(session, batch.id)
    failures = [e for e in rows if e.passed is False]
    waiting = unanswered(rows, answered)
    before = {"state": batch.state, "qc_passed": batch.qc_passed}
    batch.qc_passed = not failures
    batch.state = state_after(rows, answered)
    session.flush()
    audit.append(session, actor, "analysis.qc_evaluated", "analysis_batch", batch.id, before, {
        "batch_no": batch.batch_no, "run": run, "evaluated_at": at, "checks": len(rows),
        "not_evaluated": sum(1 for e in rows if e.passed is None), "state": batch.state, "qc_passed": batch.qc_passed,
        "failures": [{"kind": e.kind, "parameter": e.parameter, "label": detail_of(e).get("label"),
                      "evaluation_id": e.id, "answered": check_key(e) in answered} for e in failures],
    })
    return QcOutcome(batch, run, rows, failures, waiting)


def waiting_batches(session: Session, analyst_id: int) -> int:
    """The analyst's batches with a QC failure waiting for a corrective action (the dashboard card)."""
    return session.scalar(select(func.count()).select_from(AnalysisBatch).where(
        AnalysisBatch.analyst_id == analyst_id, AnalysisBatch.state == BatchState.QC_FAILED.value)) or 0


# ---------------------------------------------------------------- the QC page's read model

PERCENT_KINDS = frozenset({QcKind.DUPLICATE.value, QcKind.SPIKE.value, QcKind.CCV.value})


def shown(value: Decimal | None, kind: str) -> str:
    """A QC number as the page shows it: percentages rounded once to 0.01 (GB/T 8170), other
    values in full; the stored value keeps every digit."""
    if value is None:
        return ""
    if kind in PERCENT_KINDS:
        return numbers.format_decimal(numbers.round_gbt8170(value, decimals=2))
    return numbers.format_decimal(value)


def limits_text(evaluation: QcEvaluation) -> str:
    low, high = evaluation.limit_low, evaluation.limit_high
    unit = " %" if evaluation.kind in PERCENT_KINDS else ""
    if low is not None and high is not None:
        return f"{numbers.format_decimal(low)}–{numbers.format_decimal(high)}{unit}"
    if high is not None:
        return f"{'<' if evaluation.kind == QcKind.BLANK.value else '≤'} {numbers.format_decimal(high)}{unit}"
    if low is not None:
        return f"≥ {numbers.format_decimal(low)}{unit}"
    return ""


@dataclass
class EvaluationLine:
    evaluation: QcEvaluation
    detail: dict[str, Any]
    value: str
    limits: str
    actions: list[CorrectiveAction]

    @property
    def label(self) -> str:
        return self.detail.get("label") or ""

    @property
    def waiting(self) -> bool:
        return self.evaluation.passed is False and not self.actions


@dataclass
class QcView:
    batch: AnalysisBatch
    method_code: str
    parameters: list[str]
    run: int
    evaluated_at: datetime | None
    lines: list[EvaluationLine]
    actions: list[tuple[CorrectiveAction, QcEvaluation]]
    people: dict[int, User]

    @property
    def done(self) -> bool:
        return self.batch.state in DONE_STATES

    @property
    def can_evaluate(self) -> bool:
        return self.batch.state in EVALUABLE_STATES

    @property
    def waiting(self) -> list[EvaluationLine]:
        return [line for line in self.lines if line.waiting]

    @property
    def failures(self) -> list[EvaluationLine]:
        return [line for line in self.lines if line.evaluation.passed is False]


def qc_view(session: Session, batch: AnalysisBatch) -> QcView:
    """The QC page in a fixed number of queries, however many checks and actions."""
    from app.analysis.models import Method

    method_code = session.scalar(select(Method.code).join(MethodVersion, MethodVersion.method_id == Method.id)
                                 .where(MethodVersion.id == batch.method_version_id)) or ""
    evaluations = latest_evaluations(session, batch.id)
    answered = actions_by_check(session, batch.id)
    lines = [EvaluationLine(e, detail_of(e), shown(e.value, e.kind), limits_text(e),
                            [a for a, _ in answered.get(check_key(e), [])]) for e in evaluations]
    actions = [pair for pairs in answered.values() for pair in pairs]
    actions.sort(key=lambda pair: pair[0].id)
    wanted = {a.recorded_by_id for a, _ in actions} | {batch.analyst_id}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}
    return QcView(batch, method_code, batch_parameters(batch), evaluations[0].run if evaluations else 0,
                  evaluations[0].evaluated_at if evaluations else None, lines, actions, people)
