"""Pages of receipt at the lab door: the deliveries (open first), opening one for a cooler, a task
or a sampler, and the working page of a delivery: a scan box for keyboard-wedge scanners (text +
Enter), the expected list with ticks, the missing and unexpected containers, a check form per
sample with its holding-time clocks, and the signature.

With htmx each scan, check and signature swaps the working block (`work`) in place and the scan
box takes the focus back; without JavaScript the same forms post and the page comes back (after
a scan, with what was scanned). Refusals are shown where they happened (beside the scan box or
in the sample's card) with what was typed; nothing is saved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import N_, current_language, gettext
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, add_nav, add_scan_resolver
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User
from app.samples import receipt
from app.samples import receipt_errors as errors
from app.samples.holding import ClockReading, duration_text
from app.samples.lab_models import Delivery, ReceiptDecision
from app.samples.names import CONTAINER_STATE_NAMES, KIND_NAMES, QC_READERS, STATE_NAMES

router = APIRouter()

BASE = "/receipts"
Code = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Filter = Annotated[str, Query(max_length=60)]
Short = Annotated[str, Form(max_length=200)]
Small = Annotated[str, Form(max_length=40)]
Text = Annotated[str, Form(max_length=1000)]
Flag = Annotated[str, Form(max_length=5, pattern="^(|yes|no)$")]
DECISIONS = (
    (ReceiptDecision.ACCEPT.value, N_("Accept")),
    (ReceiptDecision.ACCEPT_WITH_CONDITIONS.value, N_("Accept with conditions")),
    (ReceiptDecision.REJECT.value, N_("Reject the sample")),
)
DECISION_NAMES = {
    ReceiptDecision.ACCEPT.value: N_("Accepted"),
    ReceiptDecision.ACCEPT_WITH_CONDITIONS.value: N_("Accepted with conditions"),
    ReceiptDecision.REJECT.value: N_("Rejected at receipt"),
}
CHECKS = (
    ("preservation_ok", N_("Preservation verified")),
    ("container_intact", N_("Container intact")),
    ("volume_sufficient", N_("Volume sufficient")),
    ("label_legible", N_("Label legible")),
)
TEMP_UNITS = ("°C", "K", "°F")
DELIVERY_STATES = {"open": N_("Open"), "signed": N_("Signed")}


# ---------------------------------------------------------------- helpers






def flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def remaining_text(reading: ClockReading) -> str:
    """Time left on a holding clock ("5 h 20 min left", "over by 2 h"), for the custodian."""
    if reading.remaining is None:
        return gettext("no fixed limit")
    late = reading.remaining < timedelta(0)
    left = -reading.remaining if late else reading.remaining
    span = duration_text(left)
    return gettext("over by %(span)s") % {"span": span} if late else gettext("%(span)s left") % {"span": span}


def person_name(user: User | None) -> str:
    if user is None:
        return ""
    zh = current_language().startswith("zh")
    return user.display_name_zh if zh or not user.display_name_en else user.display_name_en


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None, status: int | None = None) -> Response:
    full = {
        "kind_names": KIND_NAMES, "state_names": STATE_NAMES, "container_state_names": CONTAINER_STATE_NAMES,
        "sees_qc": bool(QC_READERS & getattr(request.state, "permissions", frozenset())),
        "decisions": DECISIONS, "decision_names": DECISION_NAMES, "decision_verbs": dict(DECISIONS),
        "checks": CHECKS, "temp_units": TEMP_UNITS,
        "delivery_states": DELIVERY_STATES, "remaining_text": remaining_text, "person_name": person_name,
        **context,
    }
    if error is not None:
        full.update(refused=True, error_code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block,
                  status_code=status or (error.http_status if error is not None else 200))


def now_local(session: Session) -> str:
    from app.core.labtime import lab_calendar

    return utcnow().astimezone(lab_calendar(session).tz).strftime("%Y-%m-%dT%H:%M")


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def receipt_list(request: Request, session: DbSession, q: Filter = "",
                 state: Annotated[str, Query(pattern="^(|open|signed)$")] = "", page: PageNo = 1,
                 user: User = require(Permission.SAMPLES_READ)):
    size = request.app.state.settings.page_size
    result = receipt.search_deliveries(session, q, state, page, size)
    params = {"q": q.strip(), "state": state}
    return show(request, "receipt/list.html", {"page": result, "filters": params,
                                               "pager_base": pager_base(BASE, params)}, block="results")


# ---------------------------------------------------------------- opening a delivery


def _new_page(request: Request, session: Session, form: dict[str, Any],
              error: DomainError | None = None) -> Response:
    return show(request, "receipt/new.html", {"form": form, "candidates": receipt.candidates(session),
                                              "now_local": now_local(session)}, error=error)


@router.get(f"{BASE}/new", include_in_schema=False)
def new_delivery(request: Request, session: DbSession, code: Filter = "", sampler: Filter = "",
                 user: User = require(Permission.SAMPLES_RECEIVE)):
    form = {"code": code.strip(), "sampler": sampler.strip(), "delivered_by": "", "delivered_by_name": "",
            "arrived_at": now_local(session), "cooler_temp": "", "cooler_temp_unit": "°C", "seal_no": "",
            "seal_intact": "", "note": ""}
    return _new_page(request, session, form)


@router.post(f"{BASE}/new", include_in_schema=False)
def open_delivery(request: Request, session: DbSession, code: Small = "", sampler: Small = "",
                  delivered_by: Small = "", delivered_by_name: Short = "", arrived_at: Small = "",
                  cooler_temp: Small = "", cooler_temp_unit: Small = "°C", seal_no: Small = "", seal_intact: Flag = "",
                  note: Text = "", user: User = require(Permission.SAMPLES_RECEIVE)):
    form = {"code": code, "sampler": sampler, "delivered_by": delivered_by, "delivered_by_name": delivered_by_name,
            "arrived_at": arrived_at, "cooler_temp": cooler_temp, "cooler_temp_unit": cooler_temp_unit,
            "seal_no": seal_no, "seal_intact": seal_intact, "note": note}
    given = receipt.DeliveryInput(code=code, sampler=sampler, delivered_by=delivered_by,
                                  delivered_by_name=delivered_by_name, arrived_at=arrived_at, cooler_temp=cooler_temp,
                                  cooler_temp_unit=cooler_temp_unit, seal_no=seal_no, seal_intact=flag(seal_intact),
                                  note=note)
    delivery, error = attempt(session, lambda: receipt.open_delivery(session, user, given))
    if error is not None:
        return _new_page(request, session, form, error)
    return see_other(request, f"{BASE}/{delivery.code}")


# ---------------------------------------------------------------- the working page


def _work(request: Request, session: Session, user_permissions: frozenset[Permission], code: str, *,
          error: DomainError | None = None, scanned: str = "", created: bool | None = None,
          check_form: dict[str, Any] | None = None, error_sample: str = "", block: str | None = "work",
          status: int | None = None) -> Response:
    delivery = receipt.delivery_by_code(session, code)
    view = receipt.delivery_view(session, delivery)
    last = None
    if scanned:
        last = next((c for c in view.containers if c.container.barcode == scanned), None)
    error_at = "sample" if error_sample else ("sign" if error is not None and error.code in SIGN_ERRORS else "scan")
    return show(request, "receipt/detail.html", {
        "view": view, "d": view.delivery, "last": last, "created": created,
        "can_receive": Permission.SAMPLES_RECEIVE in user_permissions and view.open,
        "check_form": check_form or {}, "error_sample": error_sample, "error_at": error_at,
    }, error=error, block=block, status=status)


SIGN_ERRORS = {"wrong_signing_password", "receipt_nothing_scanned", "receipt_decisions_missing", "received_already",
               "receipt_sample_not_receivable", "account_locked", "account_inactive", "act_before_sampling",
               "same_party_both_sides", "container_closed", "container_not_collected"}


def permissions_of(request: Request) -> frozenset[Permission]:
    return getattr(request.state, "permissions", frozenset())


@router.get(f"{BASE}/{{code}}", include_in_schema=False)
def delivery_page(request: Request, session: DbSession, code: Code,
                  scanned: Annotated[str, Query(max_length=40)] = "",
                  user: User = require(Permission.SAMPLES_READ)):
    delivery = receipt.delivery_by_code(session, code)
    if delivery.code != code:
        return see_other(request, f"{BASE}/{delivery.code}")
    return _work(request, session, permissions_of(request), delivery.code, scanned=scanned.strip().upper())


@router.post(f"{BASE}/{{code}}/scans", include_in_schema=False)
def scan_container(request: Request, session: DbSession, code: Code,
                   barcode: Annotated[str, Form(max_length=200)] = "",
                   user: User = require(Permission.SAMPLES_RECEIVE)):
    def act() -> receipt.ScanOutcome:
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        return receipt.scan_container(session, user, delivery, barcode)

    outcome, error = attempt(session, act)
    wanted = receipt.delivery_by_code(session, code).code
    if error is not None:
        if isinstance(error, errors.DeliveryNotFound):
            raise error
        return _work(request, session, permissions_of(request), wanted, error=error)
    if request.headers.get("hx-request") != "true":
        return see_other(request, f"{BASE}/{wanted}?scanned={quote(outcome.container.barcode)}")
    return _work(request, session, permissions_of(request), wanted, scanned=outcome.container.barcode,
                 created=outcome.created)


@router.post(f"{BASE}/{{code}}/checks", include_in_schema=False)
def record_check(request: Request, session: DbSession, code: Code, sample_no: Annotated[str, Form(max_length=60)],
                 decision: Small = "", arrival_temp: Small = "", arrival_temp_unit: Small = "°C",
                 preservation_ok: Flag = "", preservation_note: Short = "", container_intact: Flag = "",
                 volume_sufficient: Flag = "", label_legible: Flag = "", deviation: Text = "",
                 consent_by: Short = "", consent_ref: Short = "", reject_reason: Text = "", reason: Text = "",
                 user: User = require(Permission.SAMPLES_RECEIVE)):
    form = {"decision": decision, "arrival_temp": arrival_temp, "arrival_temp_unit": arrival_temp_unit,
            "preservation_ok": preservation_ok, "preservation_note": preservation_note,
            "container_intact": container_intact, "volume_sufficient": volume_sufficient,
            "label_legible": label_legible, "deviation": deviation, "consent_by": consent_by,
            "consent_ref": consent_ref, "reject_reason": reject_reason, "reason": reason}
    given = receipt.CheckInput(
        decision=decision, arrival_temp=arrival_temp, arrival_temp_unit=arrival_temp_unit,
        preservation_ok=flag(preservation_ok), preservation_note=preservation_note,
        container_intact=flag(container_intact), volume_sufficient=flag(volume_sufficient),
        label_legible=flag(label_legible), deviation=deviation, consent_by=consent_by, consent_ref=consent_ref,
        reject_reason=reject_reason, reason=reason)

    def act() -> Any:
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        return receipt.record_check(session, user, delivery, sample_no, given)

    row, error = attempt(session, act)
    wanted = receipt.delivery_by_code(session, code).code
    if error is not None:
        if isinstance(error, errors.DeliveryNotFound):
            raise error
        return _work(request, session, permissions_of(request), wanted, error=error, check_form=form,
                     error_sample=sample_no.strip())
    if request.headers.get("hx-request") != "true":
        return see_other(request, f"{BASE}/{wanted}#sample-{quote(sample_no.strip())}")
    return _work(request, session, permissions_of(request), wanted)


@router.post(f"{BASE}/{{code}}/sign", include_in_schema=False)
def sign_delivery(request: Request, session: DbSession, code: Code,
                  password: Annotated[str, Form(max_length=200)] = "",
                  user: User = require(Permission.SAMPLES_RECEIVE)):
    def act() -> Any:
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        return receipt.sign_delivery(session, user, delivery, password)

    _, error = attempt(session, act)
    wanted = receipt.delivery_by_code(session, code).code
    if error is not None:
        if isinstance(error, errors.DeliveryNotFound):
            raise error
        return _work(request, session, permissions_of(request), wanted, error=error)
    return see_other(request, f"{BASE}/{wanted}")


# ---------------------------------------------------------------- navigation and scanning


def _scan_delivery(session: Session, user: Any, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A delivery's code (on its receipt slip) opens its working page."""
    if Permission.SAMPLES_READ not in permissions:
        return None
    cleaned = receipt.clean_code(code)
    if not receipt.CODE_RE.match(cleaned):
        return None
    found = session.scalar(select(Delivery.code).where(Delivery.code == cleaned))
    return ScanHit(f"{BASE}/{found}", found) if found else None


add_nav(NavItem("receipts", N_("Receipt"), BASE, Permission.SAMPLES_RECEIVE, 47))
add_scan_resolver("delivery", _scan_delivery)
