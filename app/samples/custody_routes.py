"""Custody pages: hand-over by scanning (phone-friendly: a scan box with autofocus for a
keyboard-wedge scanner, the scanned list growing by htmx, or a plain form with a list of barcodes
without JavaScript), coolers (list, new, one cooler: scan in and out, seal, hand over, label) and
the custodian's list of samples with custody gaps.

Routes are thin: parse the form, call one service in the unit of work; a refusal the person can
fix comes back on the same page with what they typed (nothing recorded).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, NotAuthenticated, PermissionDenied
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import is_htmx, pager_base, render, see_other
from app.people.models import User
from app.samples import handover, lab_input, shipments
from app.samples.chain import samples_with_custody_gaps
from app.samples.custody_errors import ShipmentNotFound
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, ShipmentState
from app.samples.models import Sample
from app.samples.names import STATE_NAMES

router = APIRouter()

BASE = "/custody"
ShipmentCode = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Short = Annotated[str, Form(max_length=200)]
Small = Annotated[str, Form(max_length=64)]
Note = Annotated[str, Form(max_length=500)]
Many = Annotated[str, Form(max_length=20_000)]
BarcodeList = Annotated[list[str], Form(max_length=handover.MAX_BARCODES)]
TEMPERATURE_UNITS = ("°C", "K", "°F")
SHIPMENT_STATE_NAMES = {
    ShipmentState.PACKING.value: N_("Being packed"),
    ShipmentState.HANDED_OVER.value: N_("Handed over"),
    ShipmentState.DELIVERED.value: N_("Delivered"),
    ShipmentState.CANCELLED.value: N_("Cancelled"),
}
KIND_NAMES = {
    "handover": N_("Hand-over"), "receipt": N_("Receipt"), "storage": N_("Into storage"),
    "take_out": N_("Taken out"), "return": N_("Returned"), "disposal": N_("Disposal"),
}
GAP_NAMES = {
    "not_from_holder": N_("not given by the holder on record"),
    "out_of_order": N_("dated before the event recorded before it"),
}


# ---------------------------------------------------------------- helpers


def shown_in_page(error: DomainError) -> bool:
    return not isinstance(error, PermissionDenied | NotAuthenticated) and 400 <= error.http_status < 500


def attempt(session: Session, act: Callable[[], Any]) -> tuple[Any, DomainError | None]:
    """One service call in the unit of work; a refusal the page can show is returned."""
    try:
        with committing(session):
            return act(), None
    except DomainError as error:
        if not shown_in_page(error):
            raise
        return None, error


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None, status: int | None = None) -> Response:
    full = {"shipment_state_names": SHIPMENT_STATE_NAMES, "kind_names": KIND_NAMES, "gap_names": GAP_NAMES,
            "state_names": STATE_NAMES, "temperature_units": TEMPERATURE_UNITS, **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block,
                  status_code=status or (error.http_status if error is not None else 200))


def split_barcodes(text: str, listed: list[str]) -> list[str]:
    """Barcodes from the scanned list and the text box (one per line, or separated by spaces)."""
    return [b for b in listed if b.strip()] + [b for b in re.split(r"[\s,;，；]+", text or "") if b]


@dataclass
class HandoverForm:
    """What a hand-over form holds, as typed."""

    barcodes: str = ""
    listed: list[str] = field(default_factory=list)
    giver: str = ""
    giver_place: str = ""
    taker: str = ""
    taker_place: str = ""
    place: str = ""
    occurred_at: str = ""
    temp_value: str = ""
    temp_unit: str = "°C"
    seal_no: str = ""
    seal_intact: str = "1"  # ticked until someone unticks it: a broken seal is said, not assumed
    note: str = ""
    client_id: str = ""

    def user_id(self, session: Session, username: str) -> int | None:
        return handover.user_by_username(session, username).id if username.strip() else None

    def occurred(self, session: Session) -> Any:
        """The time typed; blank is now, and a resent form (a double tap) takes the first time."""
        if self.occurred_at.strip():
            return self.occurred_at
        earlier = handover.event_by_client_id(session, self.client_id)
        return earlier.occurred_at if earlier is not None else None

    def temperature(self) -> Any:
        return lab_input.celsius(self.temp_value, self.temp_unit, "运输箱温度", "The cooler temperature")

    def intact(self) -> bool | None:
        return bool(self.seal_intact) if self.seal_no.strip() else None


def _handover_form(barcodes: str, barcode: list[str], giver: str, giver_place: str, taker: str, taker_place: str,
                   place: str, occurred_at: str, temp_value: str, temp_unit: str, seal_no: str, seal_intact: str,
                   note: str, client_id: str) -> HandoverForm:
    return HandoverForm(barcodes=barcodes, listed=[b.strip()[:60] for b in barcode if b.strip()], giver=giver,
                        giver_place=giver_place, taker=taker, taker_place=taker_place, place=place,
                        occurred_at=occurred_at, temp_value=temp_value, temp_unit=temp_unit, seal_no=seal_no,
                        seal_intact=seal_intact, note=note, client_id=client_id)


def new_client_id() -> str:
    return f"web-{uuid.uuid4().hex}"


# ---------------------------------------------------------------- hand-over by scanning


@dataclass(frozen=True)
class DoneSummary:
    event: CustodyEvent
    taker: User | None
    count: int


def _done(session: Session, user: User, event_id: int | None) -> DoneSummary | None:
    if not event_id:
        return None
    row = session.execute(select(CustodyEvent, User).outerjoin(User, User.id == CustodyEvent.to_user_id)
                          .where(CustodyEvent.id == event_id, CustodyEvent.recorded_by_id == user.id)).first()
    if row is None:
        return None
    count = session.scalar(select(func.count()).select_from(CustodyEventContainer)
                           .where(CustodyEventContainer.event_id == event_id)) or 0
    return DoneSummary(row[0], row[1], count)


def _handover_page(request: Request, session: Session, user: User, form: HandoverForm, *,
                   error: DomainError | None = None, done: DoneSummary | None = None) -> Response:
    return show(request, "custody/handover.html", {
        "form": form, "people": handover.custody_people(session), "done": done, "scanned": form.listed,
    }, error=error)


@router.get(f"{BASE}/handover", include_in_schema=False)
def handover_form(request: Request, session: DbSession, done: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                  user: User = require(Permission.CUSTODY_RECORD)):
    form = HandoverForm(giver=user.username, client_id=new_client_id())
    return _handover_page(request, session, user, form, done=_done(session, user, done))


@router.post(f"{BASE}/handover", include_in_schema=False)
def record_handover(
    request: Request, session: DbSession, barcodes: Many = "", barcode: BarcodeList = [],  # noqa: B006
    giver: Small = "", giver_place: Short = "", taker: Small = "", taker_place: Short = "", place: Short = "",
    occurred_at: Small = "", temp_value: Small = "", temp_unit: Small = "°C", seal_no: Small = "",
    seal_intact: Small = "", note: Note = "", client_id: Small = "", user: User = require(Permission.CUSTODY_RECORD),
):
    """Record one hand-over of the scanned containers; back to an empty form saying what was done."""
    form = _handover_form(barcodes, barcode, giver, giver_place, taker, taker_place, place, occurred_at, temp_value,
                          temp_unit, seal_no, seal_intact, note, client_id)

    def act() -> CustodyEvent:
        return handover.hand_over(
            session, user, split_barcodes(form.barcodes, form.listed), giver_id=form.user_id(session, form.giver),
            taker_id=form.user_id(session, form.taker), giver_place=form.giver_place, taker_place=form.taker_place,
            place=form.place, occurred_at=form.occurred(session), cooler_temp_c=form.temperature(),
            seal_no=form.seal_no, seal_intact=form.intact(), note=form.note, client_id=form.client_id or None)

    event, error = attempt(session, act)
    if error is not None:
        return _handover_page(request, session, user, form, error=error)
    return see_other(request, f"{BASE}/handover?done={event.id}")


@dataclass(frozen=True)
class ScannedRow:
    barcode: str
    sample_no: str


@router.post(f"{BASE}/handover/scan", include_in_schema=False)
def scan_for_handover(request: Request, session: DbSession, code: Small = "",
                      user: User = require(Permission.CUSTODY_RECORD)):
    """One scan into the hand-over list: the row (htmx) after checking the barcode and that the
    container may change hands; a bad scan is said at once, nothing is recorded."""
    try:
        [found] = handover.containers_by_barcodes(session, [code])
        sample = session.get(Sample, found.sample_id)
        handover.assert_movable(found, sample)
    except DomainError as error:
        if not shown_in_page(error):
            raise
        if is_htmx(request):
            return _scan_refusal(request, error)
        form = HandoverForm(giver=user.username, client_id=new_client_id())
        return _handover_page(request, session, user, form, error=error)
    row = ScannedRow(found.barcode, sample.sample_no)
    if is_htmx(request):
        return show(request, "custody/_scan_result.html", {"row": row})
    form = HandoverForm(giver=user.username, client_id=new_client_id(), listed=[found.barcode])
    return _handover_page(request, session, user, form)


def _scan_refusal(request: Request, error: DomainError) -> Response:
    response = show(request, "custody/_scan_result.html", {"row": None}, error=error)
    response.headers["HX-Retarget"] = "#scan-message"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


# ---------------------------------------------------------------- coolers


@router.get(f"{BASE}/shipments", include_in_schema=False)
def shipment_list(request: Request, session: DbSession,
                  state: Annotated[str, Query(pattern=f"^({'|'.join(shipments.STATES)})?$")] = "",
                  q: Annotated[str, Query(max_length=40)] = "", page: PageNo = 1,
                  user: User = require(Permission.SAMPLES_READ)):
    size = request.app.state.settings.page_size
    result = shipments.shipments_page(session, state=state, q=q, page=page, size=size)
    filters = {"state": state, "q": q.strip()}
    return show(request, "custody/shipments.html", {
        "page": result, "filters": filters, "pager_base": pager_base(f"{BASE}/shipments", filters),
        "states": shipments.STATES,
    }, block="results")


@router.get(f"{BASE}/shipments/new", include_in_schema=False)
def shipment_form(request: Request, session: DbSession, user: User = require(Permission.CUSTODY_RECORD)):
    return show(request, "custody/shipment_new.html", {"note": ""})


@router.post(f"{BASE}/shipments/new", include_in_schema=False)
def create_shipment(request: Request, session: DbSession, note: Note = "",
                    user: User = require(Permission.CUSTODY_RECORD)):
    made, error = attempt(session, lambda: shipments.create_shipment(session, user, note=note))
    if error is not None:
        return show(request, "custody/shipment_new.html", {"note": note}, error=error)
    return see_other(request, f"{BASE}/shipments/{made.code}")


def _shipment_page(request: Request, session: Session, user: User, code: str, *, error: DomainError | None = None,
                   form: HandoverForm | None = None, block: str | None = None) -> Response:
    shipment = shipments.shipment_by_code(session, code)
    view = shipments.shipment_view(session, shipment)
    can_act = Permission.CUSTODY_RECORD in getattr(request.state, "permissions", frozenset())
    return show(request, "custody/shipment.html", {
        "view": view, "s": shipment, "can_act": can_act,
        "form": form or HandoverForm(client_id=new_client_id(), seal_no=shipment.seal_no),
        "people": handover.custody_people(session) if can_act and view.can_hand_over else [],
    }, error=error, block=block)


@router.get(f"{BASE}/shipments/{{code}}", include_in_schema=False)
def shipment_page(request: Request, session: DbSession, code: ShipmentCode,
                  user: User = require(Permission.SAMPLES_READ)):
    return _shipment_page(request, session, user, code)


def _shipment_act(request: Request, session: Session, user: User, code: str,
                  act: Callable[[Any], Any], form: HandoverForm | None = None) -> Response:
    """Run one act on the cooler: htmx gets the cooler's contents again, a plain form is sent
    back to the cooler's page; a refusal shows there with what was typed."""
    shipment = shipments.shipment_by_code(session, code)
    _, error = attempt(session, lambda: act(shipment))
    if error is not None:
        return _shipment_page(request, session, user, code, error=error, form=form, block="packed")
    if is_htmx(request):
        return _shipment_page(request, session, user, code, block="packed")
    return see_other(request, f"{BASE}/shipments/{shipment.code}")


@router.post(f"{BASE}/shipments/{{code}}/pack", include_in_schema=False)
def pack(request: Request, session: DbSession, code: ShipmentCode, barcodes: Many = "",
         user: User = require(Permission.CUSTODY_RECORD)):
    return _shipment_act(request, session, user, code,
                         lambda s: shipments.pack(session, user, s, split_barcodes(barcodes, [])))


@router.post(f"{BASE}/shipments/{{code}}/unpack", include_in_schema=False)
def unpack(request: Request, session: DbSession, code: ShipmentCode, barcodes: Many = "",
           user: User = require(Permission.CUSTODY_RECORD)):
    return _shipment_act(request, session, user, code,
                         lambda s: shipments.unpack(session, user, s, split_barcodes(barcodes, [])))


@router.post(f"{BASE}/shipments/{{code}}/seal", include_in_schema=False)
def seal(request: Request, session: DbSession, code: ShipmentCode, seal_no: Small = "",
         user: User = require(Permission.CUSTODY_RECORD)):
    return _shipment_act(request, session, user, code, lambda s: shipments.seal_shipment(session, user, s, seal_no))


@router.post(f"{BASE}/shipments/{{code}}/handover", include_in_schema=False)
def hand_over_shipment(
    request: Request, session: DbSession, code: ShipmentCode, taker: Small = "", taker_place: Short = "",
    place: Short = "", occurred_at: Small = "", temp_value: Small = "", temp_unit: Small = "°C", seal_no: Small = "",
    seal_intact: Small = "", note: Note = "", client_id: Small = "", user: User = require(Permission.CUSTODY_RECORD),
):
    """Hand the whole cooler over in one act."""
    form = _handover_form("", [], "", "", taker, taker_place, place, occurred_at, temp_value, temp_unit, seal_no,
                          seal_intact, note, client_id)

    def act(shipment: Any) -> CustodyEvent:
        return shipments.hand_over_shipment(
            session, user, shipment, taker_id=form.user_id(session, form.taker), taker_place=form.taker_place,
            place=form.place, occurred_at=form.occurred(session), cooler_temp_c=form.temperature(),
            seal_no=form.seal_no, seal_intact=form.intact(), note=form.note, client_id=form.client_id or None)

    return _shipment_act(request, session, user, code, act, form)


@router.get(f"{BASE}/shipments/{{code}}/label.pdf", include_in_schema=False)
def shipment_label(session: DbSession, code: ShipmentCode, user: User = require(Permission.CUSTODY_RECORD)):
    shipment = shipments.shipment_by_code(session, code)
    return Response(shipments.shipment_label_pdf(session, shipment), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="label-{shipment.code}.pdf"'})


# ---------------------------------------------------------------- gaps


@router.get(f"{BASE}/gaps", include_in_schema=False)
def gap_list(request: Request, session: DbSession, page: PageNo = 1, user: User = require(Permission.SAMPLES_READ)):
    """Samples whose custody cannot be shown without a gap: the custodian follows them up."""
    result = samples_with_custody_gaps(session, page, request.app.state.settings.page_size)
    return show(request, "custody/gaps.html", {"page": result, "pager_base": pager_base(f"{BASE}/gaps", {})},
                block="results")


# ---------------------------------------------------------------- scanning in the header


def _scan_shipment(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A cooler's label scanned in the top box opens the cooler."""
    if Permission.SAMPLES_READ not in permissions or not shipments.clean_code(code).startswith("SH"):
        return None
    try:
        shipment = shipments.shipment_by_code(session, code)
    except ShipmentNotFound:
        return None  # a wrong check digit is said as such
    return ScanHit(f"{BASE}/shipments/{shipment.code}", shipment.code)


add_nav(NavItem("custody", N_("Custody"), f"{BASE}/handover", Permission.CUSTODY_RECORD, 46))
add_scan_resolver("shipment", _scan_shipment)
