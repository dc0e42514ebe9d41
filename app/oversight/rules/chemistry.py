"""Anomaly rules on chemistry (DOMAIN.md §7 A06, A07): a part can never exceed its whole
(dissolved metal ≤ total, NH3-N ≤ TN, CODMn and BOD5 ≤ COD, PO4-P ≤ TP, Cr(VI) ≤ Cr), and a
numeric value below the method's detection limit must carry its qualifier. Both are judged on
the current results of samples, filtered in SQL (a text-to-number CAST narrows the candidates on
either engine) and confirmed in Python with exact Decimals.

A06: part > whole × (1 + tolerance_pct/100) + MDL of the part, both converted to the whole's
unit (app.core.units); the part's current result must not be flagged below MDL; the whole and
the part may come from different batches. Judged when either half was entered in the window.
Key: the two result ids, smaller first ("812,815").
A07: a current sample result whose value < its method parameter's MDL (same unit basis), with
below_mdl false and no qualifier. Key: the result id.

Also the small helpers the other rule modules of this family share (history, timing): the
"current sample result" filter, the window test, and names for the findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, exists, false, or_, select, true
from sqlalchemy.orm import Session, aliased

from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, MethodParameter, PositionRole
from app.core.errors import InvalidInput
from app.core.labtime import lab_calendar
from app.core.units import convert
from app.oversight.rules.base import AnomalyRule, Finding, Limits, ScanWindow, Threshold, chunked, register
from app.samples.models import Sample

D = Decimal

# (part, whole) parameter codes: a part measured in the same sample can never exceed its whole.
# Dissolved metals are the metal's code with "-D" (Pb-D ≤ Pb); Cr(VI) is spelled as the lab
# writes it (the preservation table says Cr6+).
METALS = ("Cu", "Zn", "Pb", "Cd", "Hg", "As", "Ni", "Cr", "Mn", "Fe", "Se", "Sb", "Co", "Ba", "Be", "Mo", "V", "Tl")
PART_WHOLE_PAIRS: tuple[tuple[str, str], ...] = (
    *((f"{metal}-D", metal) for metal in METALS),
    ("NH3-N", "TN"),
    ("NO3-N", "TN"),
    ("CODMn", "COD"),
    ("BOD5", "COD"),
    ("PO4-P", "TP"),
    ("Cr6", "Cr"),
    ("Cr6+", "Cr"),
    ("Cr(VI)", "Cr"),
)


# ---------------------------------------------------------------- shared by the family


def current_result() -> Any:
    """The result of record: no newer revision of the same position × parameter (as in
    app.analysis.results._current_filter, on the AnalysisResult entity itself)."""
    return current_of(AnalysisResult)


def current_of(result: Any) -> Any:
    newer = aliased(AnalysisResult)
    return ~exists().where(newer.position_id == result.position_id, newer.parameter == result.parameter,
                           newer.revision > result.revision)


def sample_position(result: Any = AnalysisResult) -> Any:
    """A result of a sample (not of a QC position): its position's role is `sample`."""
    return exists().where(BatchPosition.id == result.position_id, BatchPosition.role == PositionRole.SAMPLE.value)


def entered_in(window: ScanWindow, result: Any = AnalysisResult) -> Any:
    """SQL condition: the result was entered inside the window (and belongs to its batches)."""
    conditions = [result.entered_at <= window.until]
    if window.since is not None:
        conditions.append(result.entered_at >= window.since)
    if window.batch_ids is not None:
        conditions.append(result.batch_id.in_(window.batch_ids) if window.batch_ids else false())
    return and_(*conditions) if conditions else true()


def inside(window: ScanWindow, moment: datetime | None, batch_id: int | None = None) -> bool:
    """Whether an act recorded at `moment` (of `batch_id`) is one this scan judges."""
    if moment is None or moment > window.until:
        return False
    if window.since is not None and moment < window.since:
        return False
    return window.batch_ids is None or batch_id in window.batch_ids


def samples_named(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """sample id → (sample number, site id), in chunked IN queries (findings only)."""
    found: dict[int, tuple[str, int | None]] = {}
    for chunk in chunked(sorted(set(ids))):
        for sid, no, site in session.execute(select(Sample.id, Sample.sample_no, Sample.site_id)
                                             .where(Sample.id.in_(chunk))):
            found[sid] = (no, site)
    return found


def batches_named(session: Session, ids: Iterable[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunked(sorted(set(ids))):
        found.update(session.execute(select(AnalysisBatch.id, AnalysisBatch.batch_no)
                                     .where(AnalysisBatch.id.in_(chunk))).all())
    return found


def local_text(session: Session, moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def text(value: Decimal) -> str:
    """A Decimal as plain text (no exponent)."""
    return format(value, "f")


def in_unit(value: Decimal, unit: str, target: str) -> Decimal | None:
    """`value` expressed in `target`, or None when the units cannot be compared."""
    if unit == target:
        return value
    try:
        return convert(value, unit, target)
    except InvalidInput:
        return None


def as_number(column: Any) -> Any:
    """A DecimalText column as a number in SQL, to narrow candidates (confirmed in Python)."""
    return cast(column, Numeric)


# ---------------------------------------------------------------- A06


@register
class ImpossibleRelation(AnomalyRule):
    code = "A06"
    title_zh = "不可能的量值关系"
    title_en = "Impossible relation between results"
    why_zh = "溶解态不可能超过总量、氨氮不可能超过总氮：分量大于总量说明数据有误或被改动。"
    why_en = "A part cannot exceed its whole (dissolved > total, NH3-N > TN): the data are wrong or were altered."
    thresholds = (
        Threshold("tolerance_pct", D("10"), D("0"), D("100"), "容差（%）", "Tolerance (%)"),
    )
    blocks_issue = True
    on_submission = True

    pairs: tuple[tuple[str, str], ...] = PART_WHOLE_PAIRS

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        tolerance = limits.get("tolerance_pct", D("10"))
        factor = 1 + tolerance / 100
        part, whole = aliased(AnalysisResult), aliased(AnalysisResult)
        mdl = aliased(MethodParameter)
        # each part has one whole: the join matches the whole's code to the part's mapped code
        whole_of = case(dict(self.pairs), value=part.parameter)
        in_window = and_(part.entered_at <= window.until, whole.entered_at <= window.until,
                         or_(entered_in(window, part), entered_in(window, whole)))
        stmt = (
            select(part.id, part.sample_id, part.parameter, part.value, part.unit, part.entered_at, part.batch_id,
                   part.entered_by_id, whole.id, whole.parameter, whole.value, whole.unit, whole.entered_at,
                   whole.batch_id, whole.entered_by_id, mdl.mdl, mdl.unit)
            .join(whole, and_(whole.sample_id == part.sample_id, whole.parameter == whole_of))
            .outerjoin(mdl, and_(mdl.method_version_id == part.method_version_id, mdl.parameter == part.parameter))
            .where(part.parameter.in_(sorted({p for p, _ in self.pairs})),
                   whole.parameter.in_(sorted({w for _, w in self.pairs})),
                   part.sample_id.is_not(None), part.below_mdl.is_(False), in_window,
                   or_(part.unit != whole.unit, as_number(part.value) > as_number(whole.value) * factor),
                   current_of(part), current_of(whole), sample_position(part), sample_position(whole))
            .order_by(part.sample_id, part.id, whole.id)
        )
        hits = []
        for row in session.execute(stmt):
            (pid, sample_id, p_code, p_value, p_unit, p_at, p_batch, p_user,
             wid, w_code, w_value, w_unit, w_at, w_batch, w_user, p_mdl, mdl_unit) = row
            later_at, _, later_user = max((p_at, p_batch, p_user), (w_at, w_batch, w_user), key=lambda x: x[0])
            # the pair is judged when one of its halves was entered inside the window
            if later_at > window.until or not (inside(window, p_at, p_batch) or inside(window, w_at, w_batch)):
                continue
            part_value = in_unit(D(p_value), p_unit, w_unit)
            part_mdl = in_unit(D(p_mdl), mdl_unit, w_unit) if p_mdl is not None and mdl_unit else D(0)
            if part_value is None or part_mdl is None:
                continue
            limit = D(w_value) * factor + part_mdl
            if part_value > limit:
                hits.append((pid, sample_id, p_code, part_value, p_batch, wid, w_code, D(w_value), w_unit, w_batch,
                             part_mdl, limit, later_at, later_user))
        names = samples_named(session, {h[1] for h in hits})
        batch_nos = batches_named(session, {h[4] for h in hits} | {h[9] for h in hits})
        for (pid, sample_id, p_code, part_value, p_batch, wid, w_code, whole_value, unit, w_batch, part_mdl,
             limit, at, user) in hits:
            sample_no, site_id = names.get(sample_id, ("—", None))
            yield Finding(
                key=",".join(str(i) for i in sorted((pid, wid))),
                summary_zh=(f"样品 {sample_no}：{p_code} = {text(part_value)} {unit} 大于 {w_code} = "
                            f"{text(whole_value)} {unit}（允许上限 {text(limit)}，容差 {text(tolerance)}% + 检出限）"),
                summary_en=(f"Sample {sample_no}: {p_code} = {text(part_value)} {unit} exceeds {w_code} = "
                            f"{text(whole_value)} {unit} (allowed up to {text(limit)}: tolerance {text(tolerance)}% "
                            f"+ MDL)"),
                evidence={
                    "rule": "part > whole × (1 + tolerance) + MDL(part)",
                    "part": {"parameter": p_code, "result_id": pid, "value": text(part_value), "unit": unit,
                             "mdl": text(part_mdl), "batch_no": batch_nos.get(p_batch, "")},
                    "whole": {"parameter": w_code, "result_id": wid, "value": text(whole_value), "unit": unit,
                              "batch_no": batch_nos.get(w_batch, "")},
                    "limit": text(limit),
                    "thresholds": {"tolerance_pct": text(tolerance)},
                },
                sample_ids=(sample_id,), batch_id=p_batch, parameter=p_code, site_id=site_id,
                responsible_user_id=user, occurred_at=at,
            )


# ---------------------------------------------------------------- A07


@register
class BelowMdlWithoutQualifier(AnomalyRule):
    code = "A07"
    title_zh = "低于检出限的数值未标注"
    title_en = "Value below the MDL without qualifier"
    why_zh = "低于方法检出限的数值不能作为数值报出（HJ 168-2020）：未标注即会被误报。"
    why_en = "A number below the method detection limit must never be reported as a value (HJ 168-2020)."
    thresholds = ()
    blocks_issue = True
    on_submission = True

    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterator[Finding]:
        mp = MethodParameter
        stmt = (
            select(AnalysisResult.id, AnalysisResult.sample_id, AnalysisResult.parameter, AnalysisResult.value,
                   AnalysisResult.unit, AnalysisResult.batch_id, AnalysisResult.entered_at,
                   AnalysisResult.entered_by_id, mp.mdl, mp.unit)
            .join(mp, and_(mp.method_version_id == AnalysisResult.method_version_id,
                           mp.parameter == AnalysisResult.parameter))
            .where(AnalysisResult.sample_id.is_not(None), AnalysisResult.below_mdl.is_(False),
                   AnalysisResult.qualifier == "", entered_in(window),
                   as_number(mp.mdl) > 0,  # a direct reading (MDL 0) has nothing below it
                   or_(AnalysisResult.unit != mp.unit, as_number(AnalysisResult.value) <= as_number(mp.mdl)),
                   current_result(), sample_position())
            .order_by(AnalysisResult.id)
        )
        hits = []
        for rid, sample_id, parameter, value, unit, batch_id, at, user, mdl, mdl_unit in session.execute(stmt):
            limit = in_unit(D(mdl), mdl_unit, unit)
            if limit is not None and D(value) < limit:
                hits.append((rid, sample_id, parameter, D(value), unit, batch_id, at, user, limit))
        names = samples_named(session, {h[1] for h in hits})
        batch_nos = batches_named(session, {h[5] for h in hits})
        for rid, sample_id, parameter, value, unit, batch_id, at, user, limit in hits:
            sample_no, site_id = names.get(sample_id, ("—", None))
            batch_no = batch_nos.get(batch_id, "")
            yield Finding(
                key=str(rid),
                summary_zh=(f"样品 {sample_no} {parameter} = {text(value)} {unit} 低于检出限 {text(limit)} {unit}，"
                            f"但未标注低于检出限（分析批 {batch_no}）"),
                summary_en=(f"Sample {sample_no} {parameter} = {text(value)} {unit} is below the MDL "
                            f"{text(limit)} {unit} but not marked below MDL (batch {batch_no})"),
                evidence={"rule": "value < MDL, below_mdl false, no qualifier", "result_id": rid,
                          "value": text(value), "unit": unit, "mdl": text(limit), "batch_no": batch_no,
                          "thresholds": {"mdl": text(limit)}},
                sample_ids=(sample_id,), batch_id=batch_id, parameter=parameter, site_id=site_id,
                responsible_user_id=user, occurred_at=at,
            )
