"""The receipt JSON API (/api/v1/receipts): open a delivery, post one scan at a time (what a
scanner station or the receive_scan benchmark does), record a sample's checks and decision, sign
with the password, and read a delivery: expected, scanned, missing, unexpected, decisions.

Writes take an `Idempotency-Key` header: a retried request (lost answer, double submit) gets the
first answer again (header `Idempotent-Replay: true`), the same key with another body is
refused (409). Refusals are problem JSON with the error's code. Temperatures travel as strings
(or JSON numbers) and come back as strings; times are ISO 8601 with their offset.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.permissions import Permission
from app.people.models import User
from app.samples import receipt

router = APIRouter(tags=["receipt"])

BASE = "/api/v1/receipts"
Code = Annotated[str, Path(max_length=40)]
Key = Annotated[str | None, Header(max_length=200)]
Number = Decimal | Annotated[str, Field(max_length=30)] | None


def text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _number(value: Number) -> str | None:
    return value if isinstance(value, str) or value is None else f"{value:f}"


# ---------------------------------------------------------------- shapes


class DeliveryIn(BaseModel):
    """A delivery arriving: from a shipment or a task (`code`), or what a sampler brings (`sampler`)."""

    code: str = Field("", max_length=40, description="a shipment (SH…) or sampling task (TK…) code")
    sampler: str = Field("", max_length=64, description="the username of the sampler bringing what they hold")
    delivered_by: str = Field("", max_length=64, description="username of the deliverer, if a user")
    delivered_by_name: str = Field("", max_length=120, description="a courier or client, if not a user")
    arrived_at: datetime | None = Field(None, description="ISO 8601 with offset; default now")
    cooler_temp: Number = None
    cooler_temp_unit: str = Field("°C", max_length=12, description="°C, K or °F")
    seal_no: str = Field("", max_length=40)
    seal_intact: bool | None = None
    note: str = Field("", max_length=500)

    def given(self) -> receipt.DeliveryInput:
        return receipt.DeliveryInput(
            code=self.code, sampler=self.sampler, delivered_by=self.delivered_by,
            delivered_by_name=self.delivered_by_name, arrived_at=self.arrived_at,
            cooler_temp=_number(self.cooler_temp), cooler_temp_unit=self.cooler_temp_unit, seal_no=self.seal_no,
            seal_intact=self.seal_intact, note=self.note)


class ScanIn(BaseModel):
    barcode: str = Field(max_length=60)
    scanned_at: datetime | None = Field(None, description="when it was scanned (ISO 8601 with offset); default now")


class CheckIn(BaseModel):
    sample_no: str = Field(max_length=60)
    decision: str = Field(max_length=30, description="accept, accept_with_conditions or reject")
    arrival_temp: Number = None
    arrival_temp_unit: str = Field("°C", max_length=12)
    preservation_ok: bool | None = None
    preservation_note: str = Field("", max_length=200, description='e.g. "pH 1.5 (strip)"')
    container_intact: bool | None = None
    volume_sufficient: bool | None = None
    label_legible: bool | None = None
    deviation: str = Field("", max_length=500)
    consent_by: str = Field("", max_length=120, description="the client or quality manager who agreed")
    consent_ref: str = Field("", max_length=120, description="call note, e-mail, letter reference")
    reject_reason: str = Field("", max_length=500)
    reason: str = Field("", max_length=500, description="required when the checks were recorded before")

    def given(self) -> receipt.CheckInput:
        return receipt.CheckInput(
            decision=self.decision, arrival_temp=_number(self.arrival_temp), arrival_temp_unit=self.arrival_temp_unit,
            preservation_ok=self.preservation_ok, preservation_note=self.preservation_note,
            container_intact=self.container_intact, volume_sufficient=self.volume_sufficient,
            label_legible=self.label_legible, deviation=self.deviation, consent_by=self.consent_by,
            consent_ref=self.consent_ref, reject_reason=self.reject_reason, reason=self.reason)


class SignIn(BaseModel):
    password: str = Field(max_length=200)


class ContainerOut(BaseModel):
    barcode: str
    sample_no: str
    expected: bool
    scanned: bool
    scanned_at: datetime | None


class CheckOut(BaseModel):
    sample_no: str
    revision: int
    decision: str
    arrival_temp_c: str | None
    preservation_ok: bool | None
    preservation_note: str
    container_intact: bool | None
    volume_sufficient: bool | None
    label_legible: bool | None
    deviation: str
    consent_by: str
    consent_ref: str
    reject_reason: str
    reason: str
    recorded_at: datetime


class SampleOut(BaseModel):
    sample_no: str
    state: str
    scanned: bool
    decision: CheckOut | None


class DeliveryOut(BaseModel):
    code: str
    state: str
    shipment: str | None
    task: str | None
    delivered_by: str | None  # username
    delivered_by_name: str
    arrived_at: datetime
    cooler_temp_c: str | None
    seal_no: str
    seal_intact: bool | None
    note: str
    opened_at: datetime
    signed_at: datetime | None
    expected: list[ContainerOut]
    missing: list[str]
    unexpected: list[str]
    scanned: int
    samples: list[SampleOut]


class ScanOut(BaseModel):
    delivery: str
    barcode: str
    sample_no: str
    expected: bool
    created: bool  # false: scanned before in this delivery, kept once
    scanned_at: datetime


def check_json(row: Any, sample_no: str) -> CheckOut:
    return CheckOut(
        sample_no=sample_no, revision=row.revision, decision=row.decision, arrival_temp_c=text(row.arrival_temp_c),
        preservation_ok=row.preservation_ok, preservation_note=row.preservation_note,
        container_intact=row.container_intact, volume_sufficient=row.volume_sufficient,
        label_legible=row.label_legible, deviation=row.deviation, consent_by=row.consent_by,
        consent_ref=row.consent_ref, reject_reason=row.reject_reason, reason=row.reason, recorded_at=row.recorded_at)


def delivery_json(session: Session, delivery: Any) -> DeliveryOut:
    view = receipt.delivery_view(session, delivery)
    d = view.delivery
    deliverer = view.person(d.delivered_by_id)
    containers = view.containers
    return DeliveryOut(
        code=d.code, state=d.state, shipment=view.shipment_code or None, task=view.task_code or None,
        delivered_by=deliverer.username if deliverer else None, delivered_by_name=d.delivered_by_name,
        arrived_at=d.arrived_at, cooler_temp_c=text(d.cooler_temp_c), seal_no=d.seal_no, seal_intact=d.seal_intact,
        note=d.note, opened_at=d.opened_at, signed_at=d.signed_at,
        expected=[ContainerOut(barcode=c.container.barcode, sample_no=c.sample_no, expected=c.expected,
                               scanned=c.scanned, scanned_at=c.scan.scanned_at if c.scan else None)
                  for c in containers if c.expected],
        missing=[c.container.barcode for c in view.missing], unexpected=[c.container.barcode for c in view.unexpected],
        scanned=view.scanned_count,
        samples=[SampleOut(sample_no=line.sample.sample_no, state=line.sample.state, scanned=line.scanned,
                           decision=check_json(line.check, line.sample.sample_no) if line.check else None)
                 for line in view.samples])


# ---------------------------------------------------------------- idempotent writes


# ---------------------------------------------------------------- routes


@router.post(BASE, status_code=201, response_model=DeliveryOut)
def api_open_delivery(request: Request, session: DbSession, body: DeliveryIn, idempotency_key: Key = None,
                      user: User = require(Permission.SAMPLES_RECEIVE)) -> Any:
    """Open a delivery; its expected containers are fixed now."""
    def act() -> tuple[int, Any]:
        delivery = receipt.open_delivery(session, user, body.given())
        session.flush()
        return 201, delivery_json(session, delivery).model_dump(mode="json")

    return idempotency.respond_once(request, session, "receipts.open", idempotency_key, user.id,
                                    body.model_dump(mode="json"), act)


@router.post(f"{BASE}/{{code}}/scans", status_code=201, response_model=ScanOut)
def api_scan(request: Request, session: DbSession, code: Code, body: ScanIn, idempotency_key: Key = None,
             user: User = require(Permission.SAMPLES_RECEIVE)) -> Any:
    """One container scanned at the door: 201 recorded (expected or not), 200 scanned before.
    422 wrong_check_digit / malformed_barcode / not_a_container, 404 container_not_found,
    409 received_already / receipt_sample_rejected / receipt_sample_disposed / delivery_signed."""
    def act() -> tuple[int, Any]:
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        outcome = receipt.scan_container(session, user, delivery, body.barcode, body.scanned_at)
        answer = ScanOut(delivery=delivery.code, barcode=outcome.container.barcode, sample_no=outcome.sample.sample_no,
                         expected=outcome.expected, created=outcome.created, scanned_at=outcome.scan.scanned_at)
        return (201 if outcome.created else 200), answer.model_dump(mode="json")

    payload = {"code": code, **body.model_dump(mode="json")}
    return idempotency.respond_once(request, session, "receipts.scan", idempotency_key, user.id, payload, act)


@router.post(f"{BASE}/{{code}}/checks", status_code=201, response_model=CheckOut)
def api_check(request: Request, session: DbSession, code: Code, body: CheckIn, idempotency_key: Key = None,
              user: User = require(Permission.SAMPLES_RECEIVE)) -> Any:
    """A sample's checks and decision (a later post is the next revision and needs `reason`)."""
    def act() -> tuple[int, Any]:
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        row = receipt.record_check(session, user, delivery, body.sample_no, body.given())
        from app.samples.registration import sample_by_no

        return 201, check_json(row, sample_by_no(session, body.sample_no).sample_no).model_dump(mode="json")

    payload = {"code": code, **body.model_dump(mode="json")}
    return idempotency.respond_once(request, session, "receipts.check", idempotency_key, user.id, payload, act)


@router.post(f"{BASE}/{{code}}/sign", response_model=DeliveryOut)
def api_sign(session: DbSession, code: Code, body: SignIn,
             user: User = require(Permission.SAMPLES_RECEIVE)) -> Any:
    """Sign the receipt (meaning `received`) with the password: 403 wrong_signing_password,
    409 receipt_decisions_missing / receipt_nothing_scanned / received_already / delivery_signed."""
    with committing(session):
        delivery = receipt.delivery_by_code(session, code, for_update=True)
        receipt.sign_delivery(session, user, delivery, body.password)
        answer = delivery_json(session, delivery).model_dump(mode="json")
    return JSONResponse(answer)


@router.get(f"{BASE}/{{code}}", response_model=DeliveryOut)
def api_delivery(session: DbSession, code: Code, user: User = require(Permission.SAMPLES_READ)) -> DeliveryOut:
    """A delivery: expected containers (scanned or not), missing, unexpected, each sample's decision."""
    return delivery_json(session, receipt.delivery_by_code(session, code))
