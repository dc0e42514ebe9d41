"""Pages of storage (issue 7 item 4): the locations with their occupancy, one location with its
contents and a scan box to store into it, the moves page (store, take out, give back by scan),
"where is sample X" in one scan, retention rules, and disposal requests (request, decide,
record).

Routes are thin: parse the form, call one service inside `committing(session)`; a refusal the
form can fix renders the same page with the message and what was scanned (nothing saved).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import N_
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import pager_base, see_other
from app.people.models import User
from app.samples import disposal, retention, storage
from app.samples.custody import location_name
from app.samples.lab_models import DisposalState, StorageLocation
from app.samples.registration import MATRICES
from app.samples.routes import attempt, pdf_response, show, shown_in_page

router = APIRouter()

BASE = "/storage"
LocationCode = Annotated[str, Path(max_length=40)]
DisposalCode = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Filter = Annotated[str, Query(max_length=60)]
Small = Annotated[str, Form(max_length=60)]
Short = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=500)]
Scans = Annotated[str, Form(max_length=20_000)]
DISPOSAL_STATES = {state: names[1] for state, names in disposal.STATE_NAMES.items()}


def page_size(request: Request) -> int:
    return request.app.state.settings.page_size


def storage_show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
                 block: str | None = None) -> Response:
    return show(request, template, {"kind_names_custody": storage.CUSTODY_KIND_NAMES, "location_name": location_name,
                                    "temperature_text": storage.temperature_text,
                                    "disposal_states": DISPOSAL_STATES, **context}, error=error, block=block)


# ---------------------------------------------------------------- locations


@router.get(BASE, include_in_schema=False)
def location_list(request: Request, session: DbSession, room: Filter = "", inactive: Filter = "",
                  page: PageNo = 1, user: User = require(Permission.SAMPLES_READ)):
    filters = {"room": room.strip(), "inactive": "1" if inactive else ""}
    found = storage.search_locations(session, room=filters["room"], include_inactive=bool(inactive), page=page,
                                     size=page_size(request))
    return storage_show(request, "storage/list.html", {
        "page": found, "filters": filters, "rooms": storage.rooms(session),
        "pager_base": pager_base(BASE, filters)}, block="results")


def _location_form(form: storage.LocationInput | None = None) -> dict[str, Any]:
    return {"form": form or storage.LocationInput(temp_min="", temp_max="", capacity="")}


@router.get(f"{BASE}/new", include_in_schema=False)
def new_location(request: Request, session: DbSession, user: User = require(Permission.STORAGE_MANAGE)):
    return storage_show(request, "storage/location_new.html", _location_form())


@router.post(f"{BASE}/new", include_in_schema=False)
def create_location(request: Request, session: DbSession, room: Small = "", unit: Small = "", shelf: Small = "",
                    position: Small = "", conditions_zh: Short = "", conditions_en: Short = "",
                    temp_min: Small = "", temp_max: Small = "", temp_unit: Small = "°C", capacity: Small = "",
                    user: User = require(Permission.STORAGE_MANAGE)):
    form = storage.LocationInput(room=room, unit=unit, shelf=shelf, position=position, conditions_zh=conditions_zh,
                                 conditions_en=conditions_en, temp_min=temp_min, temp_max=temp_max,
                                 temp_unit=temp_unit, capacity=capacity)
    location, error = attempt(session, lambda: storage.create_location(session, user, form))
    if error is not None:
        return storage_show(request, "storage/location_new.html", _location_form(form), error=error)
    return see_other(request, f"{BASE}/{location.code}")


@router.get(f"{BASE}/labels.pdf", include_in_schema=False)
def location_labels(session: DbSession, room: Filter = "",
                    format: Annotated[str, Query(pattern="^(thermal|a4)$")] = "a4",  # noqa: A002 - the query's name
                    user: User = require(Permission.STORAGE_MANAGE)):
    found = storage.search_locations(session, room=room.strip(), page=1, size=2000)
    return pdf_response(storage.location_labels_pdf(list(found.items), format), "storage-labels.pdf")


# ---------------------------------------------------------------- where is it


@router.get(f"{BASE}/find", include_in_schema=False)
def find(request: Request, session: DbSession, code: Annotated[str, Query(max_length=128)] = "",
         user: User = require(Permission.SAMPLES_READ)):
    """One scan: a container, aliquot or sample number gives where every container of the sample
    is; a location's code opens the location."""
    text = code.strip()
    if text and storage.is_location_code(text):
        return RedirectResponse(f"{BASE}/{storage.clean_location_code(text)}", status_code=303)
    found, error = None, None
    if text:
        try:
            found = storage.where_is(session, text)
        except DomainError as refusal:
            if not shown_in_page(refusal):
                raise
            error = refusal
    # a miss is an answer, not a broken page: the scan box shows why and waits for the next scan
    response = storage_show(request, "storage/find.html", {"code": text, "found": found}, error=error)
    response.status_code = 200 if error is None or error.http_status == 404 else error.http_status
    return response


# ---------------------------------------------------------------- moves


def _move_page(request: Request, session: Session, *, action: str = "", form: dict[str, str] | None = None,
               result: storage.MoveResult | None = None, error: DomainError | None = None) -> Response:
    custodians = custodians_now(session) if Permission.CUSTODY_RECORD in request.state.permissions else []
    return storage_show(request, "storage/move.html", {
        "action": action, "form": form or {}, "result": result, "custodians": custodians[:200]}, error=error)


def custodians_now(session: Session) -> list[User]:
    """Active users holding the custodian role now (one query): who may take samples back."""
    from sqlalchemy import or_

    from app.core.roles import Role
    from app.people.models import RoleGrant

    now = utcnow()
    return list(session.scalars(
        select(User).join(RoleGrant, RoleGrant.user_id == User.id)
        .where(User.active.is_(True), RoleGrant.role == Role.CUSTODIAN.value, RoleGrant.status == "active",
               RoleGrant.valid_from <= now, or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > now))
        .distinct().order_by(User.username).limit(200)))


@router.get(f"{BASE}/move", include_in_schema=False)
def move_page(request: Request, session: DbSession, location: Filter = "",
              user: User = require(Permission.CUSTODY_RECORD)):
    return _move_page(request, session, form={"location_code": location.strip()})


@router.post(f"{BASE}/store", include_in_schema=False)
def store(request: Request, session: DbSession, location_code: Small = "", barcodes: Scans = "", at: Small = "",
          note: Text = "", user: User = require(Permission.STORAGE_MANAGE)):
    form = {"location_code": location_code, "barcodes": barcodes, "at": at, "note": note}
    if location_code.strip() and not barcodes.strip():
        # a wedge scanner's Enter after the location's label: keep it and wait for the containers
        try:
            location = storage.location_by_code(session, location_code)
        except DomainError as error:
            if not shown_in_page(error):
                raise
            return _move_page(request, session, action="store", form=form, error=error)
        return _move_page(request, session, action="store", form={"location_code": location.code})
    result, error = attempt(session, lambda: storage.store(session, user, location_code, barcodes, at or None,
                                                           note=note))
    if error is None:  # the next shelf: keep the location, clear the scans
        form = {"location_code": location_code}
    return _move_page(request, session, action="store", form=form, result=result, error=error)


@router.post(f"{BASE}/take-out", include_in_schema=False)
def take_out(request: Request, session: DbSession, barcodes: Scans = "", at: Small = "", note: Text = "",
             user: User = require(Permission.CUSTODY_RECORD)):
    form = {"barcodes": barcodes, "at": at, "note": note}
    result, error = attempt(session, lambda: storage.take_out(session, user, barcodes, at or None, note=note))
    return _move_page(request, session, action="take_out", form={} if error is None else form, result=result,
                      error=error)


@router.post(f"{BASE}/give-back", include_in_schema=False)
def give_back(request: Request, session: DbSession, barcodes: Scans = "", location_code: Small = "",
              custodian: Small = "", at: Small = "", note: Text = "",
              user: User = require(Permission.CUSTODY_RECORD)):
    form = {"barcodes": barcodes, "back_location": location_code, "custodian": custodian, "at": at, "note": note}
    result, error = attempt(session, lambda: storage.give_back(
        session, user, barcodes, at or None, location_code=location_code, custodian=custodian, note=note))
    return _move_page(request, session, action="give_back", form={} if error is None else form, result=result,
                      error=error)


# ---------------------------------------------------------------- retention


def _retention_page(request: Request, session: Session, *, form: dict[str, str] | None = None,
                    error: DomainError | None = None) -> Response:
    return storage_show(request, "storage/retention.html", {
        "rules": retention.list_rules(session), "default_days": retention.default_days(session),
        "matrices": MATRICES, "form": form or {}}, error=error)


@router.get(f"{BASE}/retention", include_in_schema=False)
def retention_rules(request: Request, session: DbSession, user: User = require(Permission.SAMPLES_READ)):
    return _retention_page(request, session)


@router.post(f"{BASE}/retention", include_in_schema=False)
def create_retention_rule(request: Request, session: DbSession, client_name: Short = "", matrix: Small = "",
                          days: Small = "", note: Short = "", user: User = require(Permission.STORAGE_MANAGE)):
    form = {"client_name": client_name, "matrix": matrix, "days": days, "note": note}
    _, error = attempt(session, lambda: retention.create_rule(session, user, client_name=client_name, matrix=matrix,
                                                               days=days, note=note))
    if error is not None:
        return _retention_page(request, session, form=form, error=error)
    return see_other(request, f"{BASE}/retention")


@router.post(f"{BASE}/retention/change", include_in_schema=False)
def change_retention_rule(request: Request, session: DbSession, rule: Small = "", days: Small = "",
                          note: Short = "", user: User = require(Permission.STORAGE_MANAGE)):
    _, error = attempt(session, lambda: retention.change_rule(session, user, retention.rule_by_id(session, rule),
                                                               days=days, note=note))
    if error is not None:
        return _retention_page(request, session, error=error)
    return see_other(request, f"{BASE}/retention")


@router.post(f"{BASE}/retention/remove", include_in_schema=False)
def remove_retention_rule(request: Request, session: DbSession, rule: Small = "",
                          user: User = require(Permission.STORAGE_MANAGE)):
    _, error = attempt(session, lambda: retention.remove_rule(session, user, retention.rule_by_id(session, rule)))
    if error is not None:
        return _retention_page(request, session, error=error)
    return see_other(request, f"{BASE}/retention")


# ---------------------------------------------------------------- disposal


@router.get(f"{BASE}/disposals", include_in_schema=False)
def disposal_list(request: Request, session: DbSession,
                  state: Annotated[str, Query(pattern=f"^({'|'.join(s.value for s in DisposalState)})?$")] = "",
                  page: PageNo = 1, user: User = require(Permission.SAMPLES_READ)):
    filters = {"state": state}
    found = disposal.search_disposals(session, state=state, page=page, size=page_size(request))
    return storage_show(request, "storage/disposals.html", {
        "page": found, "filters": filters, "pager_base": pager_base(f"{BASE}/disposals", filters)}, block="results")


def _new_disposal_page(request: Request, session: Session, page: int = 1, *, form: dict[str, Any] | None = None,
                       error: DomainError | None = None) -> Response:
    due = disposal.due_for_disposal(session, utcnow(), page=page, size=page_size(request))
    return storage_show(request, "storage/disposal_new.html", {
        "due": due, "form": form or {"chosen": [], "more": "", "reason": ""},
        "pager_base": pager_base(f"{BASE}/disposals/new", {})}, error=error)


@router.get(f"{BASE}/disposals/new", include_in_schema=False)
def new_disposal(request: Request, session: DbSession, page: PageNo = 1,
                 user: User = require(Permission.STORAGE_MANAGE)):
    return _new_disposal_page(request, session, page)


@router.post(f"{BASE}/disposals/new", include_in_schema=False)
def request_disposal(request: Request, session: DbSession,
                     samples: Annotated[list[str], Form(max_length=1000)] = [],  # noqa: B006
                     more: Annotated[str, Form(max_length=40_000)] = "", reason: Text = "",
                     user: User = require(Permission.STORAGE_MANAGE)):
    import re

    numbers = [n[:60] for n in samples] + [n for n in re.split(r"[\s,;，；]+", more) if n]
    created, error = attempt(session, lambda: disposal.request_disposal(session, user, numbers, reason))
    if error is not None:
        return _new_disposal_page(request, session, form={"chosen": samples, "more": more, "reason": reason},
                                  error=error)
    return see_other(request, f"{BASE}/disposals/{created.code}")


def _disposal_page(request: Request, session: Session, request_row: Any, *, error: DomainError | None = None,
                   form: dict[str, str] | None = None) -> Response:
    return storage_show(request, "storage/disposal.html", {
        "d": request_row, "samples": disposal.samples_of(session, request_row),
        "people": disposal.people_of(session, request_row), "form": form or {},
        "user_id": request.state.user.id}, error=error)


@router.get(f"{BASE}/disposals/{{code}}", include_in_schema=False)
def disposal_page(request: Request, session: DbSession, code: DisposalCode,
                  user: User = require(Permission.SAMPLES_READ)):
    return _disposal_page(request, session, disposal.disposal_by_code(session, code))


@router.post(f"{BASE}/disposals/{{code}}/decide", include_in_schema=False)
def decide_disposal(request: Request, session: DbSession, code: DisposalCode,
                    decision: Annotated[str, Form(pattern="^(approve|refuse)$")] = "approve", note: Text = "",
                    user: User = require(Permission.DISPOSAL_APPROVE)):
    found = disposal.disposal_by_code(session, code)
    _, error = attempt(session, lambda: disposal.decide_disposal(session, user, found, approve=decision == "approve",
                                                                  note=note))
    if error is not None:
        return _disposal_page(request, session, disposal.disposal_by_code(session, code), error=error,
                              form={"note": note})
    return see_other(request, f"{BASE}/disposals/{found.code}")


@router.post(f"{BASE}/disposals/{{code}}/record", include_in_schema=False)
def record_disposal(request: Request, session: DbSession, code: DisposalCode, method: Short = "", at: Small = "",
                    user: User = require(Permission.STORAGE_MANAGE)):
    found = disposal.disposal_by_code(session, code)
    _, error = attempt(session, lambda: disposal.record_disposal(session, user, found, method=method, at=at or None))
    if error is not None:
        return _disposal_page(request, session, disposal.disposal_by_code(session, code), error=error,
                              form={"method": method, "at": at})
    return see_other(request, f"{BASE}/disposals/{found.code}")


# ---------------------------------------------------------------- one location (after the fixed paths)


def _location_page(request: Request, session: Session, location: StorageLocation, page: int = 1, *,
                   result: storage.MoveResult | None = None, form: dict[str, str] | None = None,
                   error: DomainError | None = None) -> Response:
    contents = storage.location_contents(session, location, page=page, size=page_size(request))
    return storage_show(request, "storage/location.html", {
        "location": location, "contents": contents, "result": result, "form": form or {},
        "pager_base": pager_base(f"{BASE}/{location.code}", {})}, error=error, block="contents")


@router.get(f"{BASE}/{{location_code}}", include_in_schema=False)
def location_page(request: Request, session: DbSession, location_code: LocationCode, page: PageNo = 1,
                  user: User = require(Permission.SAMPLES_READ)):
    return _location_page(request, session, storage.location_by_code(session, location_code), page)


@router.post(f"{BASE}/{{location_code}}/store", include_in_schema=False)
def store_here(request: Request, session: DbSession, location_code: LocationCode, barcodes: Scans = "",
               at: Small = "", note: Text = "", user: User = require(Permission.STORAGE_MANAGE)):
    location = storage.location_by_code(session, location_code)
    code = location.code
    result, error = attempt(session, lambda: storage.store(session, user, code, barcodes, at or None, note=note))
    form = {"barcodes": barcodes, "at": at, "note": note} if error is not None else {}
    return _location_page(request, session, storage.location_by_code(session, code), result=result, form=form,
                          error=error)


@router.post(f"{BASE}/{{location_code}}/deactivate", include_in_schema=False)
def deactivate(request: Request, session: DbSession, location_code: LocationCode,
               user: User = require(Permission.STORAGE_MANAGE)):
    location = storage.location_by_code(session, location_code)
    _, error = attempt(session, lambda: storage.deactivate_location(session, user, location))
    if error is not None:
        return _location_page(request, session, storage.location_by_code(session, location_code), error=error)
    return see_other(request, f"{BASE}/{location.code}")


@router.get(f"{BASE}/{{location_code}}/label.pdf", include_in_schema=False)
def location_label(session: DbSession, location_code: LocationCode,
                   format: Annotated[str, Query(pattern="^(thermal|a4)$")] = "thermal",  # noqa: A002
                   user: User = require(Permission.STORAGE_MANAGE)):
    location = storage.location_by_code(session, location_code)
    return pdf_response(storage.location_labels_pdf([location], format), f"label-{location.code}.pdf")


# ---------------------------------------------------------------- shell: nav, scans, worklists


def _scan_location(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A location's label scanned in the top box opens the location with its contents."""
    if Permission.SAMPLES_READ not in permissions or not storage.is_location_code(code):
        return None
    try:
        location = storage.location_by_code(session, code)
    except DomainError:
        return None
    return ScanHit(f"{BASE}/{location.code}", location_name(location))


add_nav(NavItem("storage", N_("Storage"), BASE, Permission.SAMPLES_READ, 49))
add_scan_resolver("storage_location", _scan_location)
add_worklist(
    Worklist("disposals_to_decide", N_("Disposals awaiting your decision"), Permission.DISPOSAL_APPROVE,
             f"{BASE}/disposals?state=requested",
             lambda session, user: disposal.open_count(session, DisposalState.REQUESTED.value), 60),
    Worklist("disposals_to_record", N_("Approved disposals to carry out"), Permission.STORAGE_MANAGE,
             f"{BASE}/disposals?state=approved",
             lambda session, user: disposal.open_count(session, DisposalState.APPROVED.value), 61),
)
