"""Evaluation of results against a standard: the class of each value and of a sample.

The core is pure (`evaluate_value`, `evaluate_sample` over a `LimitTable`); one loader reads a
sample's current results, its site's assigned standards and the version in force on the day the
sample was collected (`evaluate_results_of_sample`), in a fixed number of queries.

Single-factor evaluation (GB 3838-2002; 地表水环境质量评价办法(试行), 环办〔2011〕22号): a value's class is
the best class whose bound it meets (upper bound: value ≤ high; lower bound, DO: value ≥ low;
range, pH: low ≤ value ≤ high); beyond the last class it is the set's `worse_than_all` (劣V). A
sample's class is the worst over the parameters evaluated, and the parameters at that class
determine it. Values are compared whole, never rounded first (DOMAIN.md §4.4, 全数值比较法).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from app.analysis.limits import DIMENSIONLESS, LimitKind, LimitRow, LimitTable, limit_text, table_from
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    BatchState,
    LimitSet,
    LimitValue,
    PositionRole,
    SiteLimitSet,
)
from app.core.errors import DomainError
from app.core.labtime import lab_calendar
from app.core.units import convert

COMPLIES = "complies"
EXCEEDS = "exceeds"
# Routine evaluation of surface water leaves out water temperature, TN and fecal coliforms;
# TN is assessed separately for lakes and reservoirs (环办〔2011〕22号, DOMAIN.md §4.5).
ROUTINE_EXCLUDED: dict[str, frozenset[str]] = {"GB 3838-2002": frozenset({"TN", "FC"})}
ROUTINE_EXCLUDED_SOURCE = "地表水环境质量评价办法(试行) 环办〔2011〕22号"
# A lab sample of ambient air is a daily (24 h) sample: a filter or an absorber run for the day
# (HJ 618-2011, HJ 482-2009: daily means need ≥ 20 h of sampling; verify against the method).
LAB_SAMPLE_AVERAGING = {LimitKind.AMBIENT_AIR: "24h"}
RESULTS_OF_RECORD = (BatchState.SUBMITTED.value, BatchState.CLOSED.value)
WATER_BODY_OF_SITE = {"river": "river", "lake": "lake", "reservoir": "lake"}


class NotEvaluated:
    """Why a value has no class."""

    NO_LIMIT = "no_limit"  # the standard has no limit for this parameter (TN in a river)
    WATER_BODY = "water_body"  # limits differ by water body and the site names none
    AVERAGING = "averaging"  # limits differ by averaging period and none was given
    UNIT = "unit"  # the value's unit cannot be expressed in the limit's unit


@dataclass(frozen=True)
class ValueEvaluation:
    parameter: str
    value: Decimal
    unit: str
    class_label: str  # "II", "劣V"; "complies" / "exceeds" for a permit; "" when not evaluated
    rank: int | None  # 0 for the best class; len(classes) beyond the last
    exceeded_target: bool | None
    limit_text: str  # the target class's limit: "≤ 1.0 mg/L", "≥ 5 mg/L", "6–9"
    not_evaluated: str = ""
    in_overall: bool = True  # False for parameters routine evaluation leaves out

    @property
    def evaluated(self) -> bool:
        return not self.not_evaluated


@dataclass(frozen=True)
class SampleEvaluation:
    limit_set_code: str
    limit_set_version: int
    limit_set_id: int | None
    limit_set_name_zh: str
    limit_set_name_en: str
    target_class: str
    overall_class: str  # "" when nothing could be evaluated
    exceeded_target: bool | None
    determining_parameters: tuple[str, ...]
    per_parameter: tuple[ValueEvaluation, ...]


# ---------------------------------------------------------------- one value


def _same_unit(a: str, b: str) -> bool:
    def spelled(text: str) -> str:
        return (text or "").strip().replace(" ", "").replace("µ", "μ").replace("³", "3").lower()

    left, right = spelled(a), spelled(b)
    return left == right or (left in DIMENSIONLESS and right in DIMENSIONLESS)


def _in_unit(value: Decimal, unit: str, limit_unit: str) -> Decimal | None:
    """`value` expressed in the limit's unit, exactly; None when it cannot be (µg/m³ is not in
    the unit table, mg/kg into mg/L needs a density)."""
    if _same_unit(unit, limit_unit):
        return value
    try:
        return convert(value, unit, limit_unit)
    except DomainError:
        return None


def _meets(row: LimitRow, value: Decimal) -> bool:
    return (row.low is None or value >= row.low) and (row.high is None or value <= row.high)


def _rows_for(limits: LimitTable, parameter: str, water_body: str, averaging: str) -> tuple[list[LimitRow], str]:
    """The rows that apply, or why none do."""
    rows = [r for r in limits.rows if r.parameter == parameter]
    if not rows:
        return [], NotEvaluated.NO_LIMIT
    body = WATER_BODY_OF_SITE.get(water_body, water_body)
    specific = [r for r in rows if body and r.water_body == body]
    rows = specific or [r for r in rows if not r.water_body]
    if not rows:
        return [], NotEvaluated.NO_LIMIT if body else NotEvaluated.WATER_BODY
    if averaging:
        rows = [r for r in rows if r.averaging == averaging] or [r for r in rows if not r.averaging]
    elif len({r.averaging for r in rows}) > 1:
        return [], NotEvaluated.AVERAGING
    if not rows:
        return [], NotEvaluated.AVERAGING
    return rows, ""


def _target_rank(limits: LimitTable, target: str) -> int:
    return limits.classes.index(target) if target in limits.classes else len(limits.classes) - 1


def evaluate_value(limits: LimitTable, parameter: str, value: Decimal, unit: str, water_body: str = "",
                   averaging: str = "", *, target: str = "") -> ValueEvaluation:
    """The class of one value (single factor), whether it misses the target class (default: the
    last class, so only 劣V misses), and the target's limit as text."""
    rows, reason = _rows_for(limits, parameter, water_body, averaging)
    if reason:
        return ValueEvaluation(parameter, value, unit, "", None, None, "", reason)
    by_class = {r.class_label: r for r in rows}
    compared = _in_unit(value, unit, rows[0].unit)
    target_rank = _target_rank(limits, target)
    target_row = by_class.get(limits.classes[target_rank]) or rows[-1]
    if compared is None:
        return ValueEvaluation(parameter, value, unit, "", None, None, limit_text(target_row), NotEvaluated.UNIT)
    rank = next((i for i, label in enumerate(limits.classes)
                 if label in by_class and _meets(by_class[label], compared)), len(limits.classes))
    if limits.pass_fail:
        label = COMPLIES if rank < len(limits.classes) else EXCEEDS
    else:
        label = limits.classes[rank] if rank < len(limits.classes) else limits.worse_than_all
    return ValueEvaluation(parameter, value, unit, label, rank, rank > target_rank, limit_text(target_row))


# ---------------------------------------------------------------- a sample


def evaluate_sample(limits: LimitTable, values: Iterable[tuple[str, Decimal, str]], water_body: str = "",
                    averaging: str = "", *, target: str = "", routine: bool = True) -> SampleEvaluation:
    """The worst class over the parameters evaluated, and the parameters at that class (none when
    every one meets the best class). `routine` leaves out what routine evaluation excludes."""
    excluded = ROUTINE_EXCLUDED.get(limits.code, frozenset()) if routine else frozenset()
    per_parameter = []
    for parameter, value, unit in values:
        one = evaluate_value(limits, parameter, value, unit, water_body, averaging, target=target)
        if parameter in excluded:
            one = replace(one, in_overall=False)
        per_parameter.append(one)
    counted = [v for v in per_parameter if v.evaluated and v.in_overall]
    if not counted:
        return SampleEvaluation(limits.code, limits.version, limits.limit_set_id, limits.name_zh, limits.name_en,
                                target, "", None, (), tuple(per_parameter))
    worst = max(v.rank or 0 for v in counted)
    overall = counted[[v.rank for v in counted].index(worst)].class_label
    determining = tuple(v.parameter for v in counted if v.rank == worst) if worst > 0 else ()
    return SampleEvaluation(limits.code, limits.version, limits.limit_set_id, limits.name_zh, limits.name_en,
                            target, overall, worst > _target_rank(limits, target), determining, tuple(per_parameter))


# ---------------------------------------------------------------- from the database


@dataclass(frozen=True)
class SampleResults:
    """What a sample's evaluation reads: its current results of record and where it was taken."""

    results: tuple[AnalysisResult, ...]
    site_id: int | None
    water_body: str
    on: date


def current_results_of_samples(session: Session, sample_ids: Sequence[int]) -> dict[int, list[AnalysisResult]]:
    """The result of record per sample and parameter: the highest revision of each sample
    position in a submitted (or closed) batch, leaving out positions that were rerun; of several
    positions, the latest measured. One query for any number of samples."""
    if not sample_ids:
        return {}
    newer = aliased(AnalysisResult)
    rerun = aliased(BatchPosition)
    rows = session.scalars(
        select(AnalysisResult)
        .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
        .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
        .where(AnalysisResult.sample_id.in_(list(sample_ids)), BatchPosition.role == PositionRole.SAMPLE.value,
               AnalysisBatch.state.in_(RESULTS_OF_RECORD),
               ~exists().where(newer.position_id == AnalysisResult.position_id,
                               newer.parameter == AnalysisResult.parameter, newer.revision > AnalysisResult.revision),
               ~exists().where(rerun.rerun_of_id == BatchPosition.id))
        .order_by(AnalysisResult.measured_at, AnalysisResult.id)).all()
    latest: dict[int, dict[str, AnalysisResult]] = {}
    for result in rows:
        latest.setdefault(result.sample_id, {})[result.parameter] = result  # by time: the last one wins
    return {sample_id: sorted(by_parameter.values(), key=lambda r: r.id) for sample_id, by_parameter in latest.items()}


def current_results_of_sample(session: Session, sample_id: int) -> list[AnalysisResult]:
    """The results of record of one sample (see current_results_of_samples)."""
    return current_results_of_samples(session, [sample_id]).get(sample_id, [])


def _site_facts(session: Session, sample: Any) -> tuple[str, date]:
    from app.sites.models import SiteVersion
    from app.sites.service import version_at

    calendar = lab_calendar(session)
    on = calendar.local_date(sample.collected_at) if sample.collected_at else calendar.today()
    version = None
    if sample.site_version_id:
        version = session.get(SiteVersion, sample.site_version_id)
    elif sample.site_id:
        version = version_at(session, sample.site_id, sample.collected_at or calendar.start_of(on))
    return (version.water_body if version is not None else ""), on


def _tables_in_force(session: Session, codes: Sequence[str], on: date) -> dict[str, LimitTable]:
    """The version of each code in force on `on`, with its rows: two queries."""
    sets: dict[str, LimitSet] = {}
    for row in session.scalars(select(LimitSet).where(
            LimitSet.code.in_(codes), LimitSet.valid_from <= on,
            LimitSet.valid_to.is_(None) | (LimitSet.valid_to > on)).order_by(LimitSet.version)):
        sets[row.code] = row  # the highest version in force wins
    if not sets:
        return {}
    values: dict[int, list[LimitValue]] = {}
    for value in session.scalars(select(LimitValue).where(LimitValue.limit_set_id.in_([s.id for s in sets.values()]))
                                 .order_by(LimitValue.id)):
        values.setdefault(value.limit_set_id, []).append(value)
    return {code: table_from(s, values.get(s.id, [])) for code, s in sets.items()}


def evaluate_results_of_sample(session: Session, sample_id: int) -> list[SampleEvaluation]:
    """The sample's current results against each standard assigned to its site, in the version
    in force on the day it was collected (so an evaluation keeps naming the version it was made
    under). One evaluation per assigned standard; none without results or an assignment."""
    from app.samples.models import Sample

    sample = session.get(Sample, sample_id)
    if sample is None or sample.site_id is None:
        return []
    results = current_results_of_sample(session, sample_id)
    if not results:
        return []
    return _evaluate(session, sample, results)


def _evaluate(session: Session, sample: Any, results: Sequence[AnalysisResult]) -> list[SampleEvaluation]:
    assigned = list(session.scalars(select(SiteLimitSet).where(SiteLimitSet.site_id == sample.site_id)
                                    .order_by(SiteLimitSet.limit_set_code)))
    if not assigned:
        return []
    water_body, on = _site_facts(session, sample)
    tables = _tables_in_force(session, [a.limit_set_code for a in assigned], on)
    values = [(r.parameter, r.value, r.unit) for r in results]
    return [evaluate_sample(tables[a.limit_set_code], values, water_body,
                            LAB_SAMPLE_AVERAGING.get(tables[a.limit_set_code].kind, ""), target=a.target_class)
            for a in assigned if a.limit_set_code in tables]


# ---------------------------------------------------------------- the sample page


@dataclass(frozen=True)
class EvaluationSection:
    """What the sample page shows: an evaluation per assigned standard, or that the site has none."""

    evaluations: tuple[SampleEvaluation, ...]
    results: int
    unassigned: bool


def evaluation_section(session: Session, sample: Any) -> EvaluationSection | None:
    """None (say nothing) while the sample has no results of record."""
    if sample.site_id is None:
        return None
    results = current_results_of_sample(session, sample.id)
    if not results:
        return None
    evaluations = _evaluate(session, sample, results)
    return EvaluationSection(tuple(evaluations), len(results), not evaluations)


def classes_of(limit_set: LimitSet) -> list[str]:
    return list(json.loads(limit_set.classes))
