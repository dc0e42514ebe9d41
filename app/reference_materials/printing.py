"""Standard solutions on paper and on screen: the backward traceability read model shown by the
solution page and printed as a PDF, the solution's label, and the forward-traceability CSV.

Every number keeps its full precision in the database; this module only rounds for display: a
concentration with its expanded uncertainty as `dilution.expanded_for_display` gives it (U to two
significant figures, the value to the same place), standard uncertainties and relative standard
uncertainties to three significant figures, and recorded amounts as they were entered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.barcodes import A4_SHEET, Label, LabelFormat, THERMAL_50x30, render_labels
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.pdf import print_context, render_document
from app.core.units import PRECISION
from app.people.models import User
from app.reference_materials.dilution import DilutionResult, expanded_for_display, relative_u_certified
from app.reference_materials.gate import check_material
from app.reference_materials.models import (
    CertifiedValue,
    LotStatusChange,
    MaterialLot,
    SolutionComponent,
    SolutionDevice,
    StandardSolution,
)
from app.reference_materials.traceability import BackwardTrace, MaterialUsage, backward_trace, forward_traceability

TRACEABILITY_TEMPLATE = "reference_materials/traceability_pdf.html"
VALUE_DIGITS = 6  # a computed value (a parent's concentration) is shown to six significant figures
UNCERTAINTY_DIGITS = 3  # standard and relative standard uncertainties: three
LABEL_FORMATS: dict[str, LabelFormat] = {"thermal": THERMAL_50x30, "a4": A4_SHEET}

# ---------------------------------------------------------------- numbers for display


def significant(value: Decimal, digits: int) -> str:
    """`value` to `digits` significant figures, rounded half to even (GB/T 8170), never in
    exponent notation."""
    if value == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = PRECISION
        quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
        shown = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
        if shown.adjusted() > value.adjusted():  # 9.996 → 10.0: still `digits` figures
            shown = value.quantize(quantum.scaleb(1), rounding=ROUND_HALF_EVEN)
    return f"{shown:f}"


def recorded(value: Decimal | None) -> str:
    """An amount or value as recorded ("10", "1.0000"); a computed one with more figures than a
    reading has is cut to six significant figures and its trailing zeros dropped."""
    if value is None:
        return ""
    if len(value.as_tuple().digits) <= VALUE_DIGITS:
        return f"{value:f}"
    shown = significant(value, VALUE_DIGITS)
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


def uncertainty(value: Decimal) -> str:
    return significant(value, UNCERTAINTY_DIGITS)


@dataclass(frozen=True)
class Concentration:
    """One analyte's concentration as shown: value ± U (k=2) and the relative standard
    uncertainty."""

    analyte: str
    value: str
    expanded: str
    unit: str
    relative_u: str

    @property
    def text(self) -> str:
        return f"{self.value} ± {self.expanded} {self.unit}"


def concentration(analyte: str, value: Decimal, relative_u: Decimal, unit: str) -> Concentration:
    shown_value, shown_u = expanded_for_display(value, relative_u)
    return Concentration(analyte, shown_value, shown_u, unit, uncertainty(relative_u))


def concentrations(components: Iterable[SolutionComponent]) -> list[Concentration]:
    return [concentration(c.analyte, c.concentration, c.relative_u, c.unit) for c in components]


def expiry_text(expires_at: datetime | None, tz: ZoneInfo) -> str:
    """"有效期至" as a lab writes it: an expiry at the start of a local day means usable through
    the day before (a certificate's date); any other instant is given to the minute."""
    if expires_at is None:
        return ""
    local = expires_at.astimezone(tz)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return (local.date() - timedelta(days=1)).isoformat()
    return local.strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- the backward chain


@dataclass(frozen=True)
class BudgetRow:
    component: str  # parent | aliquot | final_volume | density
    value: str
    unit: str
    standard_uncertainty: str
    relative_u: str
    note: str


@dataclass(frozen=True)
class AnalyteBudget:
    """The uncertainty budget (不确定度分量表) of one analyte in one preparation."""

    result: Concentration
    rows: tuple[BudgetRow, ...]


def analyte_budget(result: DilutionResult) -> AnalyteBudget:
    rows = tuple(BudgetRow(line.component, recorded(line.value), line.unit, uncertainty(line.standard_uncertainty),
                           uncertainty(line.relative_u), line.note) for line in result.budget)
    return AnalyteBudget(concentration(result.analyte, result.concentration, result.relative_u, result.unit), rows)


@dataclass(frozen=True)
class CertifiedRow:
    value: CertifiedValue
    relative_u: str  # "" for a reference value


@dataclass(frozen=True)
class StepView:
    """One preparation of the chain, CRM side first (number 1)."""

    number: int
    solution: StandardSolution
    parent_barcode: str
    from_unit: bool  # prepared from the CRM unit (else from the solution before it)
    devices: tuple[SolutionDevice, ...]
    budgets: tuple[AnalyteBudget, ...]

    @property
    def dilution_factor(self) -> str:
        """Final volume over aliquot when both are volumes in one unit (as a lab says "1:10")."""
        solution = self.solution
        if solution.aliquot_unit != solution.final_volume_unit or solution.aliquot <= 0:
            return ""
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return recorded((solution.final_volume / solution.aliquot).normalize())


@dataclass(frozen=True)
class TraceView:
    """Everything the solution page and the traceability PDF show about a solution's origin."""

    trace: BackwardTrace
    certified: tuple[CertifiedRow, ...]
    reference_values: tuple[CertifiedValue, ...]
    steps: tuple[StepView, ...]
    people: dict[int, User]
    lot_change: LotStatusChange | None  # the latest status change of the lot, if any

    @property
    def solution(self) -> StandardSolution:
        return self.steps[-1].solution

    def person(self, user_id: int | None) -> User | None:
        return self.people.get(user_id) if user_id is not None else None


def people_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    """Users by id in one query (preparers, openers)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def latest_lot_change(session: Session, lot: MaterialLot) -> LotStatusChange | None:
    """The status change that put the lot in its present status (None if never changed)."""
    return session.scalars(
        select(LotStatusChange).where(LotStatusChange.lot_id == lot.id)
        .order_by(LotStatusChange.recorded_at.desc(), LotStatusChange.id.desc()).limit(1)
    ).first()


def certified_rows(values: Sequence[CertifiedValue]) -> tuple[tuple[CertifiedRow, ...], tuple[CertifiedValue, ...]]:
    """Certified values with their u_rel (U/k/value); reference values apart."""
    certified = []
    for v in values:
        if v.certified:
            u_rel = relative_u_certified(v.analyte, v.value, v.expanded_uncertainty, v.coverage_factor)
            certified.append(CertifiedRow(v, uncertainty(u_rel)))
    return tuple(certified), tuple(v for v in values if not v.certified)


def trace_view(session: Session, solution: StandardSolution, *, more_people: Iterable[int] = ()) -> TraceView:
    """The backward chain of `solution` with its budgets, in a fixed number of queries however
    long the chain is. `more_people`: other user ids the caller shows, loaded in the same query."""
    trace = backward_trace(session, solution)
    steps = tuple(
        StepView(n, step.solution, step.parent_barcode, step.solution.parent_unit_id is not None, step.devices,
                 tuple(analyte_budget(result) for result in step.results))
        for n, step in enumerate(trace.steps, start=1)
    )
    people = people_by_id(session, [s.solution.prepared_by_id for s in steps]
                          + [trace.unit.received_by_id, trace.unit.opened_by_id, *more_people])
    certified, reference = certified_rows(trace.certified_values)
    change = latest_lot_change(session, trace.lot) if trace.lot.status != "active" else None
    return TraceView(trace, certified, reference, steps, people, change)


# ---------------------------------------------------------------- the traceability PDF


def traceability_context(session: Session, solution: StandardSolution) -> dict:
    view = trace_view(session, solution)
    now = utcnow()
    components = session.scalars(
        select(SolutionComponent).where(SolutionComponent.solution_id == solution.id).order_by(SolutionComponent.id)
    ).all()
    seq, head_hash = audit.head(session)
    context = print_context(session, now=now)
    return {
        **context,
        "view": view,
        "solution": solution,
        "concentrations": concentrations(components),
        "usability": check_material(session, solution, now),
        "expiry": expiry_text(solution.expires_at, context["tz"]),
        "lot_expiry": view.trace.lot.expires_on.isoformat(),
        "audit_seq": seq,
        "audit_head": head_hash,
    }


def solution_traceability_pdf(session: Session, solution: StandardSolution, *, language: str) -> bytes:
    """The printed backward traceability of a solution: the CRM and its certificate (SHA-256),
    each dilution with its glassware, preparer and uncertainty budget, down to this solution."""
    return render_document(TRACEABILITY_TEMPLATE, traceability_context(session, solution), language=language)


# ---------------------------------------------------------------- the label


def solution_label(solution: StandardSolution, components: Sequence[SolutionComponent], preparer: User | None,
                   tz: ZoneInfo) -> Label:
    """Title the solution's name; then "c = 1.000 ± 0.010 mg/L (k=2)" for the first analyte
    (with "+n" when there are more), "配制 <date> <preparer>", "有效期至 <date>"."""
    lines = []
    if components:
        first = concentration(components[0].analyte, components[0].concentration, components[0].relative_u,
                              components[0].unit)
        more = f" +{len(components) - 1}" if len(components) > 1 else ""
        lines.append(f"c = {first.text} (k=2){more}")
    prepared = solution.prepared_at.astimezone(tz).date().isoformat()
    who = preparer.display_name_zh if preparer is not None else ""
    lines.append(f"配制 {prepared} {who}".rstrip())
    lines.append(f"有效期至 {expiry_text(solution.expires_at, tz)}")
    return Label(code=solution.barcode, title=solution.name, lines=tuple(lines))


def solution_label_pdf(session: Session, solution: StandardSolution, fmt: str = "thermal") -> bytes:
    components = session.scalars(
        select(SolutionComponent).where(SolutionComponent.solution_id == solution.id).order_by(SolutionComponent.id)
    ).all()
    preparer = session.get(User, solution.prepared_by_id)
    label = solution_label(solution, components, preparer, lab_calendar(session).tz)
    return render_labels([label], LABEL_FORMATS[fmt])


# ---------------------------------------------------------------- forward traceability as CSV

FORWARD_CSV_HEADER = ("certificate_no", "lot_no", "source", "record_id", "used_at_local", "barcode", "description")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """A cell starting with = + - @ (or a tab or CR) would run as a formula in a spreadsheet
    (CSV injection): record ids, barcodes and descriptions come from other records."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def forward_csv(session: Session, lot: MaterialLot, certificate_no: str,
                usages: Sequence[MaterialUsage] | None = None) -> str:
    """Everything that used the lot (one query), for the quality manager's spreadsheet: UTF-8
    with a BOM so that Excel reads the Chinese."""
    tz = lab_calendar(session).tz
    rows = forward_traceability(session, lot.id) if usages is None else usages
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(FORWARD_CSV_HEADER)
    for usage in rows:
        writer.writerow([
            csv_safe(certificate_no), csv_safe(lot.lot_no), csv_safe(usage.source), csv_safe(usage.record_id),
            usage.used_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), csv_safe(usage.barcode),
            csv_safe(usage.description),
        ])
    return out.getvalue()
