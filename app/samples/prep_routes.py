"""Pages of sample preparation: the list of preparation batches, opening one, the batch page where
the analyst scans aliquots, blanks, spikes and materials and closes the batch by signing, and the
aliquot page (scan a parent container, take an amount, print the new aliquot's label).

Routes are thin: parse the form, call one service inside the unit of work; a refusal the analyst
can act on re-renders the page with the message and what was typed (nothing saved). Successful
posts redirect back (post/redirect/get), so a scanner's Enter followed by a reload adds nothing
twice. Every form works without JavaScript; the list filters through htmx.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User
from app.samples import aliquots, preparation
from app.samples.lab_models import PrepKind

router = APIRouter()

BASE = "/prep"
Code = Annotated[str, Path(max_length=40)]
Barcode = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=100)]
Text = Annotated[str, Form(max_length=500)]
Secret = Annotated[str, Form(max_length=200)]

KIND_NAMES = {
    PrepKind.DIGESTION.value: N_("Digestion"), PrepKind.EXTRACTION.value: N_("Extraction"),
    PrepKind.FILTRATION.value: N_("Filtration"), PrepKind.DRYING_SIEVING.value: N_("Drying and sieving"),
    PrepKind.DISTILLATION.value: N_("Distillation"), PrepKind.OTHER.value: N_("Other preparation"),
}
BATCH_STATE_NAMES = {"open": N_("Open, being prepared"), "closed": N_("Closed and signed")}
ROLE_NAMES = {"sample": N_("Sample"), "prep_blank": N_("Preparation blank"), "spike": N_("Spike")}






def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"kind_names": KIND_NAMES, "batch_state_names": BATCH_STATE_NAMES, "role_names": ROLE_NAMES,
            "can_prepare": Permission.SAMPLES_PREPARE in getattr(request.state, "permissions", frozenset()),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()),
                    reason=getattr(error, "reason", ""))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def batch_list(request: Request, session: DbSession, q: Annotated[str, Query(max_length=60)] = "",
               state: Annotated[str, Query(pattern=f"^({'|'.join(preparation.BATCH_STATES)})?$")] = "",
               kind: Annotated[str, Query(pattern=f"^({'|'.join(preparation.BATCH_KINDS)})?$")] = "",
               page: PageNo = 1, user: User = require(Permission.SAMPLES_READ)):
    """Preparation batches, open ones first; filtered by state and kind (htmx: the results only)."""
    size = request.app.state.settings.page_size
    found = preparation.list_batches(session, state=state, kind=kind, q=q, page=page, size=size)
    params = {"q": q.strip(), "state": state, "kind": kind}
    return show(request, "prep/list.html", {"page": found, "filters": params, "pager_base": pager_base(BASE, params),
                                            "states": preparation.BATCH_STATES, "kinds": preparation.BATCH_KINDS},
                block="results")


# ---------------------------------------------------------------- opening a batch


def _new_form(**values: str) -> dict[str, str]:
    return {"kind": "digestion", "method": "", "parameters": "", "note": "", **values}


@router.get(f"{BASE}/new", include_in_schema=False)
def new_batch(request: Request, session: DbSession, user: User = require(Permission.SAMPLES_PREPARE)):
    return show(request, "prep/new.html", {"form": _new_form(), "kinds": preparation.BATCH_KINDS})


@router.post(f"{BASE}/new", include_in_schema=False)
def open_batch(request: Request, session: DbSession, kind: Small = "digestion", method: Small = "",
               parameters: Text = "", note: Text = "", user: User = require(Permission.SAMPLES_PREPARE)):
    form = _new_form(kind=kind, method=method, parameters=parameters, note=note)
    batch, error = attempt(session, lambda: preparation.open_batch(session, user, kind, method, parameters, note=note))
    if error is not None:
        return show(request, "prep/new.html", {"form": form, "kinds": preparation.BATCH_KINDS}, error=error)
    return see_other(request, f"{BASE}/{batch.code}")


# ---------------------------------------------------------------- aliquots


def _aliquot_form(**values: str) -> dict[str, str]:
    return {"parent": "", "amount": "", "unit": "mL", "kind": "aliquot", "at": "", "note": "", **values}


@router.get(f"{BASE}/aliquots/new", include_in_schema=False)
def new_aliquot(request: Request, session: DbSession, made: Annotated[str, Query(max_length=40)] = "",
                user: User = require(Permission.SAMPLES_PREPARE)):
    """Scan a parent container (or aliquot), give the amount: a new aliquot with its label."""
    context: dict[str, Any] = {"form": _aliquot_form()}
    if made:
        with contextlib.suppress(DomainError):  # a stale or edited address shows just the empty form
            context["made"] = aliquots.aliquot_by_barcode(session, made)
            context["made_parent"] = aliquots.parent_of(session, context["made"])
            context["made_sample"] = aliquots.sample_of(session, context["made"])
    return show(request, "prep/aliquot.html", context)


@router.post(f"{BASE}/aliquots/new", include_in_schema=False)
def make_aliquot(request: Request, session: DbSession, parent: Small = "", amount: Small = "", unit: Small = "mL",
                 kind: Small = "aliquot", at: Small = "", note: Text = "",
                 user: User = require(Permission.SAMPLES_PREPARE)):
    form = _aliquot_form(parent=parent, amount=amount, unit=unit, kind=kind, at=at, note=note)
    made, error = attempt(session, lambda: aliquots.make_aliquot(session, user, parent, amount, unit, at or None,
                                                                 kind=kind, note=note))
    if error is not None:
        return show(request, "prep/aliquot.html", {"form": form}, error=error)
    return see_other(request, f"{BASE}/aliquots/new?made={made.barcode}")


@router.get(f"{BASE}/aliquots/{{barcode}}/label.pdf", include_in_schema=False)
def aliquot_label(session: DbSession, barcode: Barcode, user: User = require(Permission.SAMPLES_READ)):
    aliquot = aliquots.aliquot_by_barcode(session, barcode)
    return Response(aliquots.aliquot_label_pdf(session, aliquot), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="label-{aliquot.barcode}.pdf"'})


# ---------------------------------------------------------------- one batch


def _batch_page(request: Request, session: Session, code: str, *, error: DomainError | None = None,
                form: str = "", values: dict[str, str] | None = None) -> Response:
    batch = preparation.batch_by_code(session, code)
    view = preparation.batch_view(session, batch)
    user = getattr(request.state, "user", None)
    return show(request, "prep/batch.html", {
        "view": view, "form_name": form, "values": values or {},
        "is_preparer": user is not None and user.id == batch.opened_by_id,
    }, error=error)


@router.get(f"{BASE}/{{code}}", include_in_schema=False)
def batch_page(request: Request, session: DbSession, code: Code, user: User = require(Permission.SAMPLES_READ)):
    return _batch_page(request, session, code)


def _act_on_batch(request: Request, session: Session, user: User, code: str, form: str, values: dict[str, str],
                  act: Callable[[Any], Any]) -> Response:
    batch = preparation.batch_by_code(session, code)
    _, error = attempt(session, lambda: act(batch))
    if error is not None:
        session.expire_all()
        return _batch_page(request, session, code, error=error, form=form, values=values)
    # back to the page; after a scanned sample without a fragment, since a fragment target keeps
    # the browser from focusing the scan box (HTML autofocus), and the next scan goes there
    return see_other(request, f"{BASE}/{batch.code}" + ("" if form == "sample" else f"#{form}"))


@router.post(f"{BASE}/{{code}}/samples", include_in_schema=False)
def add_sample(request: Request, session: DbSession, code: Code, barcode: Small = "", amount: Small = "",
               unit: Small = "", final_volume: Small = "", at: Small = "",
               user: User = require(Permission.SAMPLES_PREPARE)):
    values = {"barcode": barcode, "amount": amount, "unit": unit, "final_volume": final_volume, "at": at}
    return _act_on_batch(request, session, user, code, "sample", values, lambda batch: preparation.add_sample(
        session, user, batch, barcode, amount, unit, final_volume, at or None))


@router.post(f"{BASE}/{{code}}/blanks", include_in_schema=False)
def add_blank(request: Request, session: DbSession, code: Code, final_volume: Small = "", at: Small = "",
              user: User = require(Permission.SAMPLES_PREPARE)):
    values = {"blank_final_volume": final_volume, "blank_at": at}
    return _act_on_batch(request, session, user, code, "blank", values, lambda batch: preparation.add_blank(
        session, user, batch, final_volume, at or None))


@router.post(f"{BASE}/{{code}}/spikes", include_in_schema=False)
def add_spike(request: Request, session: DbSession, code: Code, barcode: Small = "", standard: Small = "",
              spike_amount: Small = "", spike_unit: Small = "mL", amount: Small = "", unit: Small = "",
              final_volume: Small = "", at: Small = "", user: User = require(Permission.SAMPLES_PREPARE)):
    values = {"spike_barcode": barcode, "standard": standard, "spike_amount": spike_amount,
              "spike_unit": spike_unit, "spike_taken": amount, "spike_final_volume": final_volume, "spike_at": at}
    return _act_on_batch(request, session, user, code, "spike", values, lambda batch: preparation.add_spike(
        session, user, batch, barcode, standard, spike_amount, spike_unit, amount, unit, final_volume, at or None))


@router.post(f"{BASE}/{{code}}/materials", include_in_schema=False)
def add_material(request: Request, session: DbSession, code: Code, barcode: Small = "", quantity: Small = "",
                 unit: Small = "", purpose: Small = "", at: Small = "",
                 user: User = require(Permission.SAMPLES_PREPARE)):
    values = {"material_barcode": barcode, "quantity": quantity, "material_unit": unit, "purpose": purpose,
              "material_at": at}
    return _act_on_batch(request, session, user, code, "material", values, lambda batch: preparation.add_material(
        session, user, batch, barcode, quantity, unit, purpose, at or None))


@router.post(f"{BASE}/{{code}}/close", include_in_schema=False)
def close_batch(request: Request, session: DbSession, code: Code, password: Secret = "",
                user: User = require(Permission.SAMPLES_PREPARE)):
    return _act_on_batch(request, session, user, code, "close", {}, lambda batch: preparation.close_batch(
        session, user, batch, password))


# ---------------------------------------------------------------- navigation and scanning


def _scan_batch(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A scanned preparation-batch code (PB26-000011) opens its page."""
    if Permission.SAMPLES_READ not in permissions:
        return None
    cleaned = preparation.clean_code(code)
    if not preparation.CODE_RE.match(cleaned):
        return None
    try:
        batch = preparation.batch_by_code(session, cleaned)
    except DomainError:
        return None
    return ScanHit(f"{BASE}/{batch.code}", batch.code)


add_nav(NavItem("prep", N_("Preparation"), BASE, Permission.SAMPLES_READ, 50))
add_scan_resolver("prep_batch", _scan_batch)
