"""Traceability both ways.

Backward: from a standard solution up its chain of dilutions to the CRM unit, its lot and the
certificate, with the uncertainty budget of every step (recomputed from the stored inputs, so
the table always agrees with what was recorded). Forward: everything that used a lot, through
any number of dilutions, so a withdrawn certificate shows its impact.

Forward traceability asks every registered `MaterialUseSource`: solutions and recorded uses are
built in; calibration curves, QC checks and results (analysis) register their own source. Each
source contributes one SELECT over the lot's items; all of them run as ONE statement (UNION ALL),
so a lot used in 50,000 results is still one query. `root_lot_id` on each solution makes the
lot's items a plain indexed lookup instead of a recursive walk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import String, cast, func, literal, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.reference_materials.dilution import Device, DilutionResult, DilutionStep, ParentValue, dilute
from app.reference_materials.models import (
    CertifiedValue,
    ItemKind,
    MaterialLot,
    MaterialUse,
    ReferenceMaterial,
    SolutionComponent,
    SolutionDevice,
    StandardSolution,
    StockUnit,
)

# ---------------------------------------------------------------- backward


@dataclass(frozen=True)
class ChainStep:
    """One preparation in the chain with the budgets of its analytes."""

    solution: StandardSolution
    parent_barcode: str
    devices: tuple[SolutionDevice, ...]
    results: tuple[DilutionResult, ...]


@dataclass(frozen=True)
class BackwardTrace:
    material: ReferenceMaterial
    lot: MaterialLot
    unit: StockUnit
    certified_values: tuple[CertifiedValue, ...]
    steps: tuple[ChainStep, ...]  # from the CRM unit down to the solution asked about


def ancestors_of(session: Session, solution_id: int) -> list[StandardSolution]:
    """The solution and every solution above it, in one recursive query, CRM side first."""
    chain = (
        select(StandardSolution.id, StandardSolution.parent_solution_id)
        .where(StandardSolution.id == solution_id)
        .cte("chain", recursive=True)
    )
    parent = select(StandardSolution.id, StandardSolution.parent_solution_id).join(
        chain, StandardSolution.id == chain.c.parent_solution_id
    )
    chain = chain.union_all(parent)
    rows = session.scalars(select(StandardSolution).where(StandardSolution.id.in_(select(chain.c.id)))).all()
    return sorted(rows, key=lambda s: s.generation)


def backward_trace(session: Session, solution: StandardSolution) -> BackwardTrace:
    """The chain of a solution to its certificate, in a fixed number of queries."""
    chain = ancestors_of(session, solution.id)
    ids = [s.id for s in chain]
    components = session.scalars(
        select(SolutionComponent).where(SolutionComponent.solution_id.in_(ids)).order_by(SolutionComponent.id)
    ).all()
    devices = session.scalars(
        select(SolutionDevice).where(SolutionDevice.solution_id.in_(ids)).order_by(SolutionDevice.id)
    ).all()
    unit = session.get(StockUnit, chain[0].parent_unit_id)
    lot = session.get(MaterialLot, unit.lot_id)
    material = session.get(ReferenceMaterial, lot.material_id)
    values = session.scalars(
        select(CertifiedValue).where(CertifiedValue.lot_id == lot.id).order_by(CertifiedValue.id)
    ).all()
    barcode_of = {s.id: s.barcode for s in chain}
    steps = []
    for step_solution in chain:
        own_devices = tuple(d for d in devices if d.solution_id == step_solution.id)
        own_components = [c for c in components if c.solution_id == step_solution.id]
        parent_barcode = unit.barcode if step_solution.parent_unit_id else barcode_of[step_solution.parent_solution_id]
        steps.append(ChainStep(step_solution, parent_barcode, own_devices,
                               tuple(step_budget(step_solution, own_devices, c) for c in own_components)))
    return BackwardTrace(material, lot, unit, tuple(values), tuple(steps))


def step_budget(solution: StandardSolution, devices: Sequence[SolutionDevice],
                component: SolutionComponent) -> DilutionResult:
    """The uncertainty budget of one analyte in one preparation, from what was recorded."""
    def as_devices(role: str) -> tuple[Device, ...]:
        return tuple(Device(d.name, d.tolerance, d.unit, d.glass_class) for d in devices if d.role == role)

    step = DilutionStep(
        aliquot=solution.aliquot, aliquot_unit=solution.aliquot_unit, final_volume=solution.final_volume,
        final_volume_unit=solution.final_volume_unit, aliquot_devices=as_devices("aliquot"),
        final_devices=as_devices("final_volume"), density=solution.density,
        density_unit=solution.density_unit or "g/mL",
    )
    parent = ParentValue(component.analyte, component.parent_value, component.parent_unit,
                         component.parent_relative_u)
    return dilute(parent, step, component.unit)


# ---------------------------------------------------------------- forward


@dataclass(frozen=True)
class MaterialUsage:
    """One record that used the lot, directly or through a solution."""

    source: str  # "solution", "use", or a registered source ("calibration_curve", "qc_check", ...)
    record_id: str
    used_at: datetime
    barcode: str  # the unit or solution used
    description: str = ""
    title: Any = ""  # what the record is, for people (a registered source's title)
    url: str = ""  # where the record is shown, when its source says


class MaterialUseSource(Protocol):
    """`name` labels its rows; a source may also have `title` (a lazy translation shown for its
    rows), `href(record_id) -> str` (the record's page) and `consumer_kind` (the
    `MaterialUse.consumer_kind` its acts record: those plain uses are then not listed twice)."""

    name: str

    def usage_select(self, items: CTE) -> Select:
        """A SELECT of (source, record_id, used_at, barcode, description) over the records that
        used any of `items` (columns item_kind, item_id, barcode): the lot's units and every
        solution descending from it. It becomes one branch of the forward UNION ALL."""
        ...


_sources: dict[str, MaterialUseSource] = {}


def register_material_use_source(source: MaterialUseSource) -> None:
    _sources[source.name] = source


def unregister_material_use_source(name: str) -> None:
    _sources.pop(name, None)


def lot_items(lot_id: int) -> CTE:
    """The lot's units and all solutions descending from it (by `root_lot_id`, no recursion)."""
    units = select(literal(ItemKind.UNIT.value).label("item_kind"), StockUnit.id.label("item_id"),
                   StockUnit.barcode.label("barcode")).where(StockUnit.lot_id == lot_id)
    solutions = select(literal(ItemKind.SOLUTION.value).label("item_kind"), StandardSolution.id.label("item_id"),
                       StandardSolution.barcode.label("barcode")).where(StandardSolution.root_lot_id == lot_id)
    return union_all(units, solutions).cte("lot_items")


SolutionParent = StandardSolution.__table__.alias("parent_solution")


def _solutions_branch(lot_id: int) -> Select:
    """Each solution descending from the lot, as used by its preparation from its parent."""
    return (
        select(
            literal("solution").label("source"), StandardSolution.barcode.label("record_id"),
            StandardSolution.prepared_at.label("used_at"),
            func.coalesce(StockUnit.barcode, SolutionParent.c.barcode).label("barcode"),
            StandardSolution.name.label("description"),
        )
        .outerjoin(StockUnit, StockUnit.id == StandardSolution.parent_unit_id)
        .outerjoin(SolutionParent, SolutionParent.c.id == StandardSolution.parent_solution_id)
        .where(StandardSolution.root_lot_id == lot_id)
    )


def _uses_branch(items: CTE) -> Select:
    """Recorded uses other than the preparation of a solution (those appear as the solution) and
    those a registered source lists itself (a curve's standards appear as the curve)."""
    listed = ["solution", *(kind for s in _sources.values() if (kind := getattr(s, "consumer_kind", "")))]
    return select(
        literal("use").label("source"), cast(MaterialUse.id, String).label("record_id"),
        MaterialUse.used_at.label("used_at"), items.c.barcode.label("barcode"),
        MaterialUse.purpose.label("description"),
    ).join(items, (MaterialUse.item_kind == items.c.item_kind) & (MaterialUse.item_id == items.c.item_id)).where(
        MaterialUse.consumer_kind.notin_(listed)
    )


def forward_statement(lot_id: int) -> Select:
    items = lot_items(lot_id)
    branches = [_solutions_branch(lot_id), _uses_branch(items)]
    branches += [source.usage_select(items) for source in _sources.values()]
    everything = union_all(*branches).subquery("forward")
    return select(everything).order_by(everything.c.used_at, everything.c.source, everything.c.record_id)


def forward_traceability(session: Session, lot_id: int, *, limit: int | None = None,
                         offset: int = 0) -> list[MaterialUsage]:
    """Everything that used the lot, oldest first, in one query (a page of it with `limit`)."""
    statement = forward_statement(lot_id)
    if limit is not None:
        statement = statement.limit(limit).offset(offset)
    return [_usage(r) for r in session.execute(statement)]


def _usage(row: Any) -> MaterialUsage:
    source, record_id = _sources.get(row.source), str(row.record_id)
    href = getattr(source, "href", None)
    return MaterialUsage(row.source, record_id, row.used_at, row.barcode, row.description or "",
                         title=getattr(source, "title", ""), url=href(record_id) if href else "")


def count_forward(session: Session, lot_id: int) -> int:
    return session.scalar(select(func.count()).select_from(forward_statement(lot_id).order_by(None).subquery()))
