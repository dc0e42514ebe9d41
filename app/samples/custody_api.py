"""The custody JSON API: post a hand-over scan (idempotent with an `Idempotency-Key` header: a
retried request answers the first response, a concurrent double submit acts once, the same key
with another body is refused with 409), and read a sample's custody chain with its gaps
(`GET /api/v1/samples/{sample_no}/custody`, an issue contract).

Numbers travel as strings or JSON numbers (read as Decimal, never through a float) and come back
as strings; times are ISO 8601 with their offset. Refusals are problem JSON from the global
handler (wrong check digit, unknown barcode, a time before sampling, a temperature out of any
physical range...).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.core import idempotency
from app.core.auth import DbSession, require
from app.core.errors import InvalidInput
from app.core.permissions import Permission
from app.people.models import User
from app.samples import handover, lab_input
from app.samples.chain import ChainLink, ContainerChain, PartyView, custody_chain
from app.samples.field_api import posted_json
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, Shipment, StorageLocation
from app.samples.models import Container, Sample
from app.samples.registration import sample_by_no

router = APIRouter(tags=["custody"])

SCOPE = "custody.scan"
SampleNo = Annotated[str, Path(max_length=60)]


def text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


# ---------------------------------------------------------------- shapes


class TemperatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Decimal | Annotated[str, Field(max_length=30)] = Field(description="e.g. \"4.5\"; a JSON number is read "
                                                                             "as a Decimal")
    unit: str = Field("°C", max_length=12, description="°C, K or °F (converted to °C)")


class CustodyScanIn(BaseModel):
    """One hand-over of scanned containers."""

    model_config = ConfigDict(extra="forbid")

    barcodes: list[Annotated[str, Field(max_length=60)]] = Field(max_length=handover.MAX_BARCODES)
    taker: str | None = Field(None, max_length=64, description="the taker's username (or taker_place)")
    taker_place: str = Field("", max_length=200, description="a carrier or place taking them, e.g. its waybill")
    giver: str | None = Field(None, max_length=64, description="the giver's username; default: you, unless "
                                                              "giver_place is given")
    giver_place: str = Field("", max_length=200, description="a carrier or place giving them")
    occurred_at: datetime = Field(description="when it happened, ISO 8601 with its offset")
    cooler_temp: TemperatureIn | None = None
    seal_no: str = Field("", max_length=40)
    seal_intact: bool | None = None
    place: str = Field("", max_length=200, description="where a hand-over between people happened")
    note: str = Field("", max_length=500)
    client_id: str | None = Field(None, max_length=64, description="8–64 of A–Z a–z 0–9 _ . : -; made by the "
                                                                   "scanner; default: from the Idempotency-Key")


class ScanNotValid(InvalidInput):
    code = "invalid_custody_scan"
    message_zh = "交接扫描的字段无效：{fields}。"
    message_en = "Invalid fields in the custody scan: {fields}."


class TimeWithoutOffset(InvalidInput):
    code = "custody_time_without_offset"
    message_zh = "occurred_at 须带时区偏移（如 2026-05-01T09:30:00+08:00）：{value}"
    message_en = "occurred_at needs its offset (e.g. 2026-05-01T09:30:00+08:00): {value}"


def parsed_scan(body: Any) -> CustodyScanIn:
    if not isinstance(body, dict):
        raise ScanNotValid(fields="—")
    try:
        scan = CustodyScanIn.model_validate(body)
    except ValidationError as invalid:
        names = sorted({".".join(str(p) for p in e["loc"]) or "—" for e in invalid.errors()})
        raise ScanNotValid(fields=", ".join(names)[:300]) from None
    if scan.occurred_at.tzinfo is None or scan.occurred_at.utcoffset() is None:
        raise TimeWithoutOffset(value=scan.occurred_at.isoformat()[:40])
    return scan


def derived_client_id(user: User, key: str) -> str:
    """The event's client id for a request sent with `key` and none of its own."""
    return "k" + hashlib.sha256(f"custody:{user.id}:{key}".encode()).hexdigest()[:40]


# ---------------------------------------------------------------- the event as JSON


def party_json(user: User | None, location: StorageLocation | None, place: str) -> dict[str, Any]:
    if user is not None:
        return {"kind": "person", "username": user.username, "name_zh": user.display_name_zh,
                "name_en": user.display_name_en, "place": place or None}
    if location is not None:
        return {"kind": "location", "location_code": location.code, "place": place or None}
    return {"kind": "place" if place else "nobody", "place": place or None}


def event_json(session: Session, event_id: int) -> dict[str, Any]:
    """One custody event with its containers, in two queries."""
    giver, taker, recorder = aliased(User), aliased(User), aliased(User)
    from_loc, to_loc = aliased(StorageLocation), aliased(StorageLocation)
    event, g, t, r, fl, tl, shipment_code = session.execute(
        select(CustodyEvent, giver, taker, recorder, from_loc, to_loc, Shipment.code)
        .outerjoin(giver, giver.id == CustodyEvent.from_user_id).outerjoin(taker, taker.id == CustodyEvent.to_user_id)
        .outerjoin(recorder, recorder.id == CustodyEvent.recorded_by_id)
        .outerjoin(from_loc, from_loc.id == CustodyEvent.from_location_id)
        .outerjoin(to_loc, to_loc.id == CustodyEvent.to_location_id)
        .outerjoin(Shipment, Shipment.id == CustodyEvent.shipment_id).where(CustodyEvent.id == event_id)).one()
    links = session.execute(
        select(Container.barcode, Sample.sample_no, CustodyEventContainer.gap)
        .join(Container, Container.id == CustodyEventContainer.container_id)
        .join(Sample, Sample.id == CustodyEventContainer.sample_id)
        .where(CustodyEventContainer.event_id == event_id).order_by(Container.barcode)).all()
    return {
        "id": event.id, "client_id": event.client_id, "kind": event.kind, "occurred_at": event.occurred_at,
        "giver": party_json(g, fl, event.from_place), "taker": party_json(t, tl, event.to_place),
        "shipment": shipment_code, "cooler_temp_c": text(event.cooler_temp_c), "seal_no": event.seal_no,
        "seal_intact": event.seal_intact, "note": event.note, "recorded_at": event.recorded_at,
        "recorded_by": r.username if r is not None else None,
        "containers": [{"barcode": b, "sample_no": n, "gap": gap} for b, n, gap in links],
        "gaps": [b for b, _, gap in links if gap],
    }


# ---------------------------------------------------------------- posting a scan


def _user_id(session: Session, username: str | None) -> int | None:
    return handover.user_by_username(session, username).id if username else None


def _record(session: Session, user: User, scan: CustodyScanIn, client_id: str | None) -> CustodyEvent:
    temp = None
    if scan.cooler_temp is not None:
        temp = lab_input.celsius(scan.cooler_temp.value, scan.cooler_temp.unit, "运输箱温度", "The cooler temperature")
    giver_id = _user_id(session, scan.giver) if scan.giver else (None if scan.giver_place else user.id)
    return handover.hand_over(
        session, user, scan.barcodes, giver_id=giver_id, taker_id=_user_id(session, scan.taker),
        giver_place=scan.giver_place, taker_place=scan.taker_place, place=scan.place, occurred_at=scan.occurred_at,
        cooler_temp_c=temp, seal_no=scan.seal_no, seal_intact=scan.seal_intact, note=scan.note,
        client_id=scan.client_id or client_id)


SCAN_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": CustodyScanIn.model_json_schema()}}}}


@router.post("/api/v1/custody/scans", status_code=201, openapi_extra=SCAN_SCHEMA)
def api_custody_scan(
    request: Request, session: DbSession, user: User = require(Permission.CUSTODY_RECORD),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    body: Any = Depends(posted_json),  # after the permission: a stranger learns nothing of the body's shape
) -> Any:
    """Record one hand-over of scanned containers: 201 with the event. With an `Idempotency-Key`
    a retry answers the first response again (header `Idempotent-Replay: true`), a concurrent
    twin acts once, and the key with another body is refused (409 idempotency_conflict)."""
    key = idempotency.clean_key(idempotency_key) if idempotency_key is not None else None
    scan = parsed_scan(body)

    def record() -> tuple[int, Any]:
        event = _record(session, user, scan, derived_client_id(user, key) if key is not None else None)
        return 201, jsonable(event_json(session, event.id))

    return idempotency.respond_once(request, session, SCOPE, key, user.id, scan.model_dump(mode="json"), record)


def jsonable(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)


# ---------------------------------------------------------------- reading a chain


class PartyOut(BaseModel):
    kind: str  # person, location, place, nobody
    name_zh: str
    name_en: str
    username: str | None
    location_code: str | None
    place: str | None


class LinkOut(BaseModel):
    event_id: int
    kind: str
    occurred_at: datetime
    giver: PartyOut
    taker: PartyOut
    holder_before: PartyOut
    cooler_temp_c: str | None
    seal_no: str
    seal_intact: bool | None
    note: str
    shipment: str | None
    recorded_by: str | None
    recorded_at: datetime
    gap: bool
    gap_reasons: list[str]


class ContainerChainOut(BaseModel):
    barcode: str
    kind: str
    parent: str | None
    state: str
    filled_at: datetime | None
    start: PartyOut
    current: PartyOut
    disposed: bool
    links: list[LinkOut]


class GapOut(BaseModel):
    barcode: str
    event_id: int
    occurred_at: datetime
    kind: str
    reasons: list[str]
    giver: PartyOut
    holder_before: PartyOut


class CustodyOut(BaseModel):
    sample_no: str
    state: str
    custody_gap: bool
    containers: list[ContainerChainOut]
    gaps: list[GapOut]


def party_out(party: PartyView) -> PartyOut:
    return PartyOut(**party.as_json())


def link_out(link: ChainLink) -> LinkOut:
    return LinkOut(
        event_id=link.event_id, kind=link.kind, occurred_at=link.occurred_at, giver=party_out(link.giver),
        taker=party_out(link.taker), holder_before=party_out(link.holder_before),
        cooler_temp_c=text(link.cooler_temp_c), seal_no=link.seal_no, seal_intact=link.seal_intact, note=link.note,
        shipment=link.shipment_code or None, recorded_by=link.recorded_by.username or None,
        recorded_at=link.recorded_at, gap=link.gap, gap_reasons=list(link.gap_reasons))


def container_out(chain: ContainerChain) -> ContainerChainOut:
    c = chain.container
    return ContainerChainOut(
        barcode=c.barcode, kind=c.kind, parent=chain.parent_barcode or None, state=c.state, filled_at=c.filled_at,
        start=party_out(chain.start), current=party_out(chain.current), disposed=chain.disposed,
        links=[link_out(link) for link in chain.links])


@router.get("/api/v1/samples/{sample_no}/custody", response_model=CustodyOut)
def api_sample_custody(session: DbSession, sample_no: SampleNo,
                       user: User = require(Permission.SAMPLES_READ)) -> CustodyOut:
    """The sample's custody chain per container (aliquots included), from the sampler who filled
    it through every event, and its gaps."""
    sample = sample_by_no(session, sample_no)
    chain = custody_chain(session, sample)
    return CustodyOut(
        sample_no=sample.sample_no, state=sample.state, custody_gap=chain.has_gap,
        containers=[container_out(c) for c in chain.containers],
        gaps=[GapOut(barcode=g.barcode, event_id=g.link.event_id, occurred_at=g.link.occurred_at, kind=g.link.kind,
                     reasons=list(g.link.gap_reasons), giver=party_out(g.link.giver),
                     holder_before=party_out(g.link.holder_before)) for g in chain.gaps])
