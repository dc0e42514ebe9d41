"""Standard solutions: prepared from a CRM unit or from another solution.

The preparation records the aliquot, the final volume, the solvent, the glassware (class and
tolerance) and who prepared it when; the service computes each analyte's concentration and
combined relative standard uncertainty (app.reference_materials.dilution), the expiry (the
earlier of the parent's and the solution's own shelf life), takes the aliquot off the parent's
stock and gives the solution its barcode (SSyy-nnnnn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.codes import next_code
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.permissions import Permission, ensure
from app.core.units import IncompatibleUnits, convert, parse_unit
from app.instruments.service import clean_text, refuse_future, row_columns
from app.people.models import User
from app.reference_materials import errors
from app.reference_materials.dilution import (
    Device,
    DilutionResult,
    DilutionStep,
    ParentValue,
    dilute,
    relative_u_certified,
)
from app.reference_materials.gate import assert_material_usable
from app.reference_materials.models import (
    CODE_PREFIXES,
    CertifiedValue,
    ItemKind,
    MaterialLot,
    SolutionComponent,
    SolutionDevice,
    SolutionState,
    StandardSolution,
    StockUnit,
)
from app.reference_materials.service import clean_days, find_item, lock, record_use

DEVICE_ROLES = ("aliquot", "final_volume")
MAX_ANALYTES = 60


@dataclass(frozen=True)
class DeviceFacts:
    role: str  # aliquot | final_volume
    name: str
    tolerance: Decimal
    unit: str
    glass_class: str = ""


@dataclass(frozen=True)
class SolutionFacts:
    parent_barcode: str
    name: str
    aliquot: Decimal
    aliquot_unit: str
    final_volume: Decimal
    final_volume_unit: str
    output_unit: str
    solvent: str
    prepared_at: datetime
    shelf_life_days: int
    devices: tuple[DeviceFacts, ...]
    analytes: tuple[str, ...] = ()  # empty: every certified analyte of the parent
    density: Decimal | None = None
    density_unit: str = "g/mL"
    notes: str = ""


def parent_values(session: Session, parent: StockUnit | StandardSolution) -> list[ParentValue]:
    """What a parent holds: a CRM unit its lot's certified values (u_rel = U/k/value); a
    solution its components. Reference (uncertified) values are never a parent."""
    if isinstance(parent, StockUnit):
        rows = session.scalars(
            select(CertifiedValue).where(CertifiedValue.lot_id == parent.lot_id, CertifiedValue.certified.is_(True))
            .order_by(CertifiedValue.id)
        ).all()
        return [ParentValue(v.analyte, v.value, v.unit,
                            relative_u_certified(v.analyte, v.value, v.expanded_uncertainty, v.coverage_factor))
                for v in rows]
    rows = session.scalars(
        select(SolutionComponent).where(SolutionComponent.solution_id == parent.id).order_by(SolutionComponent.id)
    ).all()
    return [ParentValue(c.analyte, c.concentration, c.unit, c.relative_u) for c in rows]


def _devices(facts: SolutionFacts) -> tuple[tuple[Device, ...], tuple[Device, ...]]:
    by_role: dict[str, list[Device]] = {role: [] for role in DEVICE_ROLES}
    for device in facts.devices:
        if device.role not in by_role:
            raise InvalidInput(detail="device role must be aliquot or final_volume")
        unit = parse_unit(device.unit).symbol
        by_role[device.role].append(Device(clean_text(device.name, "device name", 120), device.tolerance, unit,
                                           clean_text(device.glass_class, "glass class", 8, required=False)))
    return tuple(by_role["aliquot"]), tuple(by_role["final_volume"])


def compute_solution(session: Session, parent: StockUnit | StandardSolution,
                     facts: SolutionFacts) -> list[DilutionResult]:
    """Concentrations and budgets of the analytes asked for (pure given the parent's values)."""
    available = {v.analyte.casefold(): v for v in parent_values(session, parent)}
    wanted = [a.strip() for a in facts.analytes if a.strip()] or [v.analyte for v in available.values()]
    if len(wanted) > MAX_ANALYTES:
        raise InvalidInput(detail=f"at most {MAX_ANALYTES} analytes")
    aliquot_devices, final_devices = _devices(facts)
    step = DilutionStep(
        aliquot=facts.aliquot, aliquot_unit=facts.aliquot_unit, final_volume=facts.final_volume,
        final_volume_unit=facts.final_volume_unit, aliquot_devices=aliquot_devices,
        final_devices=final_devices, density=facts.density, density_unit=facts.density_unit or "g/mL",
    )
    results = []
    for analyte in dict.fromkeys(wanted):
        value = available.get(analyte.casefold())
        if value is None:
            raise errors.AnalyteNotInParent(barcode=parent.barcode, analyte=analyte[:60])
        results.append(dilute(value, step, facts.output_unit))
    return results


def prepare_solution(session: Session, actor: User, facts: SolutionFacts) -> StandardSolution:
    """Record a preparation. The parent must be usable at the preparation time (gate); the
    aliquot is recorded as a use of the parent and comes off its stock where the units convert."""
    ensure(session, actor, Permission.MATERIALS_USE)
    parent = find_item(session, facts.parent_barcode)
    if not isinstance(parent, (StockUnit, StandardSolution)):
        raise InvalidInput(detail="a standard solution is prepared from a CRM unit or another solution")
    lock(session, parent)
    refuse_future(facts.prepared_at, "配制时间", "The time of preparation")
    shelf_life = clean_days(facts.shelf_life_days, "shelf_life_days", required=True)
    name = clean_text(facts.name, "name", 200)
    solvent = clean_text(facts.solvent, "solvent", 120)
    results = compute_solution(session, parent, facts)
    usability = assert_material_usable(session, parent, facts.prepared_at)
    own_expiry = facts.prepared_at + timedelta(days=shelf_life)
    final_volume_unit = parse_unit(facts.final_volume_unit).symbol
    solution = StandardSolution(
        barcode=next_code(session, CODE_PREFIXES[ItemKind.SOLUTION], facts.prepared_at),
        name=name,
        parent_unit_id=parent.id if isinstance(parent, StockUnit) else None,
        parent_solution_id=parent.id if isinstance(parent, StandardSolution) else None,
        root_lot_id=parent.lot_id if isinstance(parent, StockUnit) else parent.root_lot_id,
        generation=1 if isinstance(parent, StockUnit) else parent.generation + 1,
        aliquot=facts.aliquot, aliquot_unit=parse_unit(facts.aliquot_unit).symbol,
        density=facts.density, density_unit=(facts.density_unit or "") if facts.density is not None else "",
        final_volume=facts.final_volume, final_volume_unit=final_volume_unit, solvent=solvent,
        shelf_life_days=shelf_life, prepared_at=facts.prepared_at, prepared_by_id=actor.id,
        notes=clean_text(facts.notes, "notes", 2000, required=False),
        quantity=facts.final_volume, quantity_unit=final_volume_unit, remaining=facts.final_volume,
        state=SolutionState.IN_USE.value, expires_at=min(usability.expires_at, own_expiry), created_at=utcnow(),
    )
    session.add(solution)
    session.flush()
    components = [
        SolutionComponent(solution_id=solution.id, analyte=r.analyte, concentration=r.concentration, unit=r.unit,
                          relative_u=r.relative_u, parent_value=r.budget[0].value, parent_unit=r.budget[0].unit,
                          parent_relative_u=r.budget[0].relative_u)
        for r in results
    ]
    devices = [SolutionDevice(solution_id=solution.id, role=d.role, name=d.name.strip(),
                              glass_class=d.glass_class.strip(), tolerance=d.tolerance, unit=parse_unit(d.unit).symbol)
               for d in facts.devices]
    session.add_all(components + devices)
    session.flush()
    taken = _aliquot_in_stock(parent, facts)
    record_use(session, actor, parent, facts.prepared_at, quantity=taken,
               quantity_unit=parent.quantity_unit if taken is not None else "",
               purpose=f"{solution.barcode} {name}"[:300], consumer=("solution", str(solution.id)))
    audit.append(session, actor, "material.solution_prepared", "rm_solution", solution.id, None,
                 solution_content(solution, components, devices, parent.barcode))
    return solution


def _aliquot_in_stock(parent: StockUnit | StandardSolution, facts: SolutionFacts) -> Decimal | None:
    """The aliquot in the parent's stock unit, when the two convert (mL from mL, g from g)."""
    if not parent.quantity_unit:
        return None
    try:
        return convert(facts.aliquot, facts.aliquot_unit, parent.quantity_unit)
    except IncompatibleUnits:
        return None


def solution_content(solution: StandardSolution, components: Sequence[SolutionComponent],
                     devices: Sequence[SolutionDevice], parent_barcode: str) -> dict[str, Any]:
    """The canonical content of a preparation (its audit event binds it)."""
    return {
        **row_columns(solution), "parent_barcode": parent_barcode,
        "components": [row_columns(c, skip=("id", "solution_id")) for c in components],
        "devices": [row_columns(d, skip=("id", "solution_id")) for d in devices],
    }


def lot_of_solution(session: Session, solution: StandardSolution) -> MaterialLot:
    return session.get(MaterialLot, solution.root_lot_id)
