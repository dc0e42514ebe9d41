"""The reference-materials JSON API (/api/v1/reference-materials): every unit, standard solution
and reagent by its barcode, with its values and uncertainty, expiry and whether it is usable.

Thin like the pages: the read models are in `queries`, the answer to "usable?" is the gate's.
Values, uncertainties and amounts travel as strings, never as JSON numbers: a float cannot carry
"0.500" or a 40-digit propagated uncertainty exactly. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.core.auth import DbSession, require
from app.core.i18n import current_language
from app.core.moments import parse_moment
from app.core.permissions import Permission
from app.people.models import User
from app.reference_materials import queries, reminders, service
from app.reference_materials.models import (
    ItemKind,
    ReagentLot,
    ReagentState,
    SolutionState,
    StandardSolution,
    StockUnit,
    UnitState,
)

router = APIRouter(tags=["reference materials"])

BASE = "/api/v1/reference-materials"
MAX_PAGE_SIZE = 200
ALL_STATES = sorted({state.value for states in (UnitState, SolutionState, ReagentState) for state in states})

reminders.register_worklists()




# ---------------------------------------------------------------- answers


def text(value: Decimal | None) -> str | None:
    """A Decimal as a plain string with all its digits (no exponent, no float)."""
    return None if value is None else f"{value:f}"


class ItemOut(BaseModel):
    barcode: str
    kind: ItemKind  # unit (of a CRM lot), solution (standard solution), reagent
    name: str  # the material's (units), the solution's or the reagent's name
    name_en: str
    certificate_no: str  # units and solutions (the CRM at the end of the chain); "" for reagents
    lot_no: str
    state: str
    expires_at: datetime  # the expiry in force: sealed, or after opening
    remaining: str | None
    quantity_unit: str
    usable_now: bool
    reason: str | None  # the gate's reason code when not usable now: expired, not_opened, used_up ...


class ItemPage(BaseModel):
    page: int
    per_page: int
    size: int  # the same as per_page (the instruments list calls it size)
    total: int
    pages: int
    items: list[ItemOut]


class CertifiedValueOut(BaseModel):
    analyte: str
    value: str
    unit: str
    expanded_uncertainty: str | None  # U as on the certificate
    coverage_factor: str | None  # k
    certified: bool  # false: a reference value (not certified), never a parent of a solution


class ComponentOut(BaseModel):
    """One analyte of a standard solution: full-precision values and the values as printed."""

    analyte: str
    concentration: str
    unit: str
    relative_standard_uncertainty: str
    standard_uncertainty: str
    expanded_uncertainty: str
    coverage_factor: str
    concentration_display: str  # rounded to the place of U (GB/T 8170, half to even)
    expanded_uncertainty_display: str  # two significant figures


class ItemDetailOut(BaseModel):
    barcode: str
    kind: ItemKind
    name: str
    name_en: str
    certificate_no: str
    lot_no: str
    lot_status: str | None  # active / quarantined / withdrawn; null for reagents
    state: str
    expires_at: datetime
    quantity: str | None
    remaining: str | None
    quantity_unit: str
    received_at: datetime | None
    opened_at: datetime | None
    prepared_at: datetime | None  # solutions
    parent_barcode: str | None  # solutions: the unit or solution it was prepared from
    grade: str | None  # reagents: 优级纯 GR, 分析纯 AR ...
    supplier: str | None  # reagents
    certified_values: list[CertifiedValueOut]  # units: the lot's certificate
    components: list[ComponentOut]  # solutions: concentration with U (k = 2) per analyte
    at: datetime  # the moment usable_now answers for: now, or the ?at= asked
    usable_now: bool
    reason: str | None  # the gate's reason code when not usable at `at`
    message: str | None  # the gate's refusal in the request's language


# ---------------------------------------------------------------- shaping


def item_json(listed: queries.ListedItem) -> ItemOut:
    row = listed.row
    return ItemOut(
        barcode=row.barcode, kind=row.kind, name=row.name, name_en=row.name_en, certificate_no=row.certificate_no,
        lot_no=row.lot_no, state=row.state, expires_at=row.expires_at, remaining=text(row.remaining),
        quantity_unit=row.quantity_unit, usable_now=listed.usable_now, reason=listed.reason,
    )


def detail_json(summary: queries.ItemSummary) -> ItemDetailOut:
    item, usability = summary.item, summary.usability
    refusal = usability.refusal
    return ItemDetailOut(
        barcode=summary.barcode, kind=summary.kind, name=summary.name, name_en=summary.name_en,
        certificate_no=summary.certificate_no, lot_no=summary.lot_no, lot_status=summary.lot_status,
        state=summary.state, expires_at=summary.expires_at, quantity=text(summary.quantity),
        remaining=text(summary.remaining), quantity_unit=summary.quantity_unit,
        received_at=item.received_at if isinstance(item, StockUnit | ReagentLot) else None,
        opened_at=item.opened_at if isinstance(item, StockUnit | ReagentLot) else None,
        prepared_at=item.prepared_at if isinstance(item, StandardSolution) else None,
        parent_barcode=summary.parent_barcode,
        grade=item.grade if isinstance(item, ReagentLot) else None,
        supplier=item.supplier if isinstance(item, ReagentLot) else None,
        certified_values=[
            CertifiedValueOut(analyte=v.analyte, value=text(v.value), unit=v.unit,
                              expanded_uncertainty=text(v.expanded_uncertainty),
                              coverage_factor=text(v.coverage_factor), certified=v.certified)
            for v in summary.certified_values
        ],
        components=[
            ComponentOut(analyte=c.analyte, concentration=text(c.concentration), unit=c.unit,
                         relative_standard_uncertainty=text(c.relative_u),
                         standard_uncertainty=text(c.standard_uncertainty),
                         expanded_uncertainty=text(c.expanded_uncertainty), coverage_factor=text(c.coverage_factor),
                         concentration_display=c.shown_concentration,
                         expanded_uncertainty_display=c.shown_expanded_uncertainty)
            for c in summary.components
        ],
        at=summary.at, usable_now=usability.usable, reason=usability.reason,
        message=refusal.message(current_language()) if refusal is not None else None,
    )




# ---------------------------------------------------------------- reading


@router.get(f"{BASE}/items", response_model=ItemPage)
def api_items(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    size: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE, description="the same as per_page"),
    kind: str = Query("", max_length=16, pattern="^(|unit|solution|reagent)$"),
    state: str = Query("", max_length=16, pattern=f"^(|{'|'.join(ALL_STATES)})$"),
    user: User = require(Permission.MATERIALS_READ),
) -> ItemPage:
    """CRM units, standard solutions and reagents by barcode, each usable now or not (and why)."""
    per_page = per_page or size or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    result = queries.items_page(session, page=page, per_page=per_page, kind=kind or None, state=state or None)
    return ItemPage(page=result.page, per_page=result.size, size=result.size, total=result.total,
                    pages=result.pages, items=[item_json(listed) for listed in result.items])


# The barcode takes the rest of the path, so "RM26/1" or "a/b" are unknown barcodes (item_not_found)
# rather than unknown routes.
@router.get(f"{BASE}/items/{{barcode:path}}", response_model=ItemDetailOut)
def api_item(
    session: DbSession, barcode: str,
    at: str | None = Query(None, max_length=64,
                           description="ISO 8601 with its offset: the moment of use the gate is asked about"),
    user: User = require(Permission.MATERIALS_READ),
) -> ItemDetailOut:
    """Kind, values with their uncertainty and unit, expiry, stock, and whether the item is usable
    now or at `at` (the gate at the time of use), with the reason when it is not."""
    moment = parse_moment(at)
    item = service.find_item(session, barcode)
    return detail_json(queries.item_summary(session, item, moment))
