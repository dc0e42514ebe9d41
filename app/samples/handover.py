"""Custody by scanning: containers handed from person to person (sampler → driver or colleague →
custodian; custodian → analyst and back), or to and from a place in words (a courier with its
waybill), each hand-over one `CustodyEvent` (DOMAIN.md §3: from whom, to whom, where, when, cooler
temperature, seal number and whether the seal was intact).

The giver or the taker records it, never a third person; the taker must be allowed to hold
samples at the time of the act. Scanning is forgiving where it is safe (a container scanned twice
counts once; case and spaces) and strict where it matters (a wrong check digit, another object's
code, a rejected or disposed sample are refused, nothing recorded). The first custody event of a
collected sample puts it in transit. A phone or scanner that resends the same hand-over with its
`client_id` gets the first event back; the same id with other content is refused.

Shipments (coolers, app.samples.shipments) hand many containers over in one act through the same
checks; `app.samples.custody.record_custody` records the event and flags gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import audit
from app.core.codes import check_digit_ok
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.idempotency import KEY_RE
from app.core.permissions import ROLE_PERMISSIONS, Permission, ensure, has_permission
from app.people.models import RoleGrant, User
from app.samples import custody_errors as errors
from app.samples import lab_input
from app.samples.custody import ContainerNotCollected, NoContainers, Party, SamePartyBothSides, record_custody
from app.samples.errors import ContainerNotFound
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, CustodyKind, Shipment, ShipmentState
from app.samples.models import Container, ContainerState, Sample, SampleState
from app.samples.registration import CONTAINER_RE, clean_container_barcode, container_by_barcode

MAX_BARCODES = 500  # one cooler rarely holds more than a few dozen; a bulk scan stays bounded
PLACE_LIMIT = 200
CLOSED_SAMPLE_STATES = {SampleState.DISPOSED.value, SampleState.CANCELLED.value}


# ---------------------------------------------------------------- scanning


def containers_by_barcodes(session: Session, barcodes: Iterable[str]) -> list[Container]:
    """The containers scanned, in scan order, each once. Well-formed codes are looked up in one
    query; anything else goes through `container_by_barcode`, which says what is wrong with it."""
    codes: dict[str, None] = {}
    for raw in barcodes:
        code = clean_container_barcode(raw if isinstance(raw, str) else "")
        if code:
            codes.setdefault(code)
            if len(codes) > MAX_BARCODES:
                raise errors.TooManyBarcodes(limit=MAX_BARCODES, count=f"> {MAX_BARCODES}")
    if not codes:
        raise NoContainers()
    for code in codes:
        if not (CONTAINER_RE.match(code) and check_digit_ok(code)):
            container_by_barcode(session, code)  # raises the precise refusal
    found = {c.barcode: c for c in session.scalars(select(Container).where(Container.barcode.in_(list(codes))))}
    for code in codes:
        if code not in found:
            raise ContainerNotFound(barcode=code)
    return [found[code] for code in codes]


def samples_of(session: Session, containers: Sequence[Container]) -> dict[int, Sample]:
    ids = {c.sample_id for c in containers}
    return {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(ids)))} if ids else {}


def assert_containers(session: Session, containers: Sequence[Container], at: datetime) -> dict[int, Sample]:
    """Every container may change hands, at a time after its sample was taken; their samples."""
    samples = samples_of(session, containers)
    for container in containers:
        assert_movable(container, samples[container.sample_id])
    for sample in samples.values():
        lab_input.not_before_sampling(session, at, sample, "交接时间", "The time of the hand-over")
    return samples


def assert_movable(container: Container, sample: Sample) -> None:
    """A container changes hands once its sample is collected (the field record signed), and no
    more once the sample was rejected, disposed of or cancelled (a disposed or emptied container
    itself is refused by `record_custody`)."""
    if container.state == ContainerState.REJECTED.value or sample.state == SampleState.REJECTED.value:
        raise errors.ContainerRejectedForCustody(barcode=container.barcode)
    if sample.state == SampleState.REGISTERED.value:
        raise ContainerNotCollected(barcode=container.barcode)  # the sampler signs the field record first
    if sample.state in CLOSED_SAMPLE_STATES:
        raise errors.SampleClosedForCustody(barcode=container.barcode, sample_no=sample.sample_no,
                                            **errors.state_words(sample.state))


# ---------------------------------------------------------------- the parties


def user_party(session: Session, user_id: int | None, place: str, side_zh: str, side_en: str) -> Party:
    """One side of a hand-over: a person (with, optionally, where it happened) or a place in words."""
    if user_id is None:
        if not place:
            raise errors.CustodyPartyRequired(side_zh=side_zh, side_en=side_en)
        return Party(place=place)
    if session.get(User, user_id) is None:
        raise errors.CustodyUserUnknown(user=str(user_id))
    return Party(user_id=user_id, place=place)


def user_by_username(session: Session, username: str) -> User:
    name = (username or "").strip()
    found = session.scalars(select(User).where(User.username == name[:64])).first() if name else None
    if found is None:
        raise errors.CustodyUserUnknown(user=name[:64] or "—")
    return found


def assert_parties(session: Session, actor: User, giver: Party, taker: Party, at: datetime) -> None:
    """Two different parties; the actor is one of them; a person taking samples may hold them then."""
    if giver.holds == taker.holds and (giver.holds != (None, None) or giver.place == taker.place):
        raise SamePartyBothSides()
    if actor.id not in (giver.user_id, taker.user_id):
        raise errors.HandoverActorNotParty()
    if taker.user_id is not None:
        person = session.get(User, taker.user_id)
        if not person.active or not has_permission(session, person.id, Permission.CUSTODY_RECORD, at):
            raise errors.TakerNotAllowed(name=person.printed_name, at=lab_input.local_text(session, at))


# ---------------------------------------------------------------- what a hand-over says


@dataclass(frozen=True)
class HandoverDetails:
    """What is recorded with a hand-over besides who and which containers, cleaned."""

    occurred_at: datetime
    cooler_temp_c: Decimal | None
    seal_no: str
    seal_intact: bool | None
    note: str
    client_id: str | None


def clean_details(session: Session, *, occurred_at: Any, cooler_temp_c: Any, seal_no: Any, seal_intact: Any,
                  note: Any, client_id: Any) -> HandoverDetails:
    at = lab_input.act_time(session, occurred_at, "交接时间", "The time of the hand-over")
    temp = None
    if cooler_temp_c is not None:
        temp = lab_input.celsius(cooler_temp_c, "°C", "运输箱温度", "The cooler temperature")
    seal = lab_input.text(seal_no, "封条编号", "The seal number", 40)
    if seal_intact is not None and not isinstance(seal_intact, bool):
        raise InvalidInput(detail="seal_intact must be true, false or empty")
    key = None
    if client_id is not None and str(client_id).strip():
        key = str(client_id).strip()
        if not KEY_RE.match(key):
            raise errors.BadCustodyClientId()
    return HandoverDetails(at, temp, seal, seal_intact, lab_input.text(note, "备注", "The note", 500), key)


def clean_place(value: Any, side_zh: str, side_en: str) -> str:
    return lab_input.text(value, side_zh, side_en, PLACE_LIMIT)


def event_by_client_id(session: Session, client_id: str | None) -> CustodyEvent | None:
    if not client_id:
        return None
    return session.scalars(select(CustodyEvent).where(CustodyEvent.client_id == client_id[:64])).first()


def fingerprint_of(kind: str, giver: Party, taker: Party, container_ids: Iterable[int], details: HandoverDetails,
                 shipment_id: int | None) -> tuple[Any, ...]:
    temp = None if details.cooler_temp_c is None else details.cooler_temp_c.normalize()
    return (kind, giver.user_id, giver.location_id, giver.place, taker.user_id, taker.location_id, taker.place,
            details.occurred_at, temp, details.seal_no, details.seal_intact, details.note, shipment_id,
            tuple(sorted(container_ids)))


def _event_fingerprint(session: Session, event: CustodyEvent) -> tuple[Any, ...]:
    ids = session.scalars(select(CustodyEventContainer.container_id)
                          .where(CustodyEventContainer.event_id == event.id)).all()
    details = HandoverDetails(event.occurred_at, event.cooler_temp_c, event.seal_no, event.seal_intact, event.note,
                              event.client_id)
    return fingerprint_of(event.kind, Party(event.from_user_id, event.from_location_id, event.from_place),
                        Party(event.to_user_id, event.to_location_id, event.to_place), ids, details,
                        event.shipment_id)


def repeat_of(session: Session, actor: User, details: HandoverDetails,
              fingerprint: tuple[Any, ...]) -> CustodyEvent | None:
    """The event recorded before with this client id, if any: the same content sent again by
    the same person is the repeat it is; anything else under the same id is refused."""
    earlier = event_by_client_id(session, details.client_id)
    if earlier is None:
        return None
    if earlier.recorded_by_id != actor.id or _event_fingerprint(session, earlier) != fingerprint:
        raise errors.CustodyClientIdReused(client_id=details.client_id)
    return earlier


# ---------------------------------------------------------------- the act


def hand_over(
    session: Session, actor: User, barcodes: Iterable[str], *, giver_id: int | None = None,
    taker_id: int | None = None, occurred_at: datetime | str | None = None, place: str = "",
    giver_place: str = "", taker_place: str = "", cooler_temp_c: Decimal | None = None, seal_no: str = "",
    seal_intact: bool | None = None, note: str = "", client_id: str | None = None,
) -> CustodyEvent:
    """Hand the scanned containers from the giver to the taker (a person, or a place in words:
    `giver_place` / `taker_place`); `place` says where a hand-over between people happened.
    `cooler_temp_c` is already in °C (callers convert with `lab_input.celsius`)."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    details = clean_details(session, occurred_at=occurred_at, cooler_temp_c=cooler_temp_c, seal_no=seal_no,
                            seal_intact=seal_intact, note=note, client_id=client_id)
    where = clean_place(place, "交接地点", "The place of the hand-over")
    from_place = clean_place(giver_place, "交出方（地点或承运方）", "The giver (place or carrier)")
    to_place = clean_place(taker_place, "接收方（地点或承运方）", "The taker (place or carrier)")
    for side_zh, side_en, user_id, text in (("交出方", "giver", giver_id, from_place),
                                            ("接收方", "taker", taker_id, to_place)):
        if user_id is not None and text:
            raise errors.CustodyPartyAmbiguous(side_zh=side_zh, side_en=side_en)
    containers = containers_by_barcodes(session, barcodes)
    giver = user_party(session, giver_id, from_place, "交出方", "giver")
    taker = user_party(session, taker_id, where if taker_id is not None else to_place, "接收方", "taker")
    fingerprint = fingerprint_of(CustodyKind.HANDOVER.value, giver, taker, (c.id for c in containers), details, None)
    earlier = repeat_of(session, actor, details, fingerprint)
    if earlier is not None:
        return earlier
    samples = assert_containers(session, containers, details.occurred_at)
    _refuse_packed(session, containers)
    assert_parties(session, actor, giver, taker, details.occurred_at)
    return record_handover(session, actor, containers, samples, giver, taker, details, fingerprint)


def record_handover(session: Session, actor: User, containers: Sequence[Container], samples: dict[int, Sample],
                    giver: Party, taker: Party, details: HandoverDetails, fingerprint: tuple[Any, ...], *,
                    shipment_id: int | None = None) -> CustodyEvent:
    """Record the checked hand-over (a twin with the same client id committing first makes this
    the repeat it is) and put collected samples in transit."""
    try:
        with audit.savepoint(session):
            event = record_custody(
                session, actor, containers, CustodyKind.HANDOVER, giver=giver, taker=taker,
                occurred_at=details.occurred_at, shipment_id=shipment_id, cooler_temp_c=details.cooler_temp_c,
                seal_no=details.seal_no, seal_intact=details.seal_intact, note=details.note,
                client_id=details.client_id)
    except IntegrityError:
        twin = repeat_of(session, actor, details, fingerprint)
        if twin is None:
            raise
        return twin
    mark_in_transit(session, actor, samples.values(), event)
    return event


def mark_in_transit(session: Session, actor: User, samples: Iterable[Sample], event: CustodyEvent) -> None:
    """The first custody event of a collected sample: it is now in transit (DOMAIN.md §3)."""
    for sample in sorted(samples, key=lambda s: s.id):
        if sample.state == SampleState.COLLECTED.value:
            sample.state = SampleState.IN_TRANSIT.value
            audit.append(session, actor, "sample.in_transit", "sample", sample.id,
                         {"state": SampleState.COLLECTED.value},
                         {"sample_no": sample.sample_no, "state": sample.state, "custody_event_id": event.id})
    session.flush()


def _refuse_packed(session: Session, containers: Sequence[Container]) -> None:
    """A container in a cooler still being packed travels with the cooler, not on its own."""
    ids = {c.shipment_id for c in containers if c.shipment_id is not None}
    if not ids:
        return
    packing = dict(session.execute(select(Shipment.id, Shipment.code).where(
        Shipment.id.in_(ids), Shipment.state == ShipmentState.PACKING.value)).all())
    for container in containers:
        if container.shipment_id in packing:
            raise errors.ContainerPacked(barcode=container.barcode, shipment=packing[container.shipment_id])


# ---------------------------------------------------------------- choices for the forms


def custody_people(session: Session) -> list[User]:
    """Active people who may hold samples now (the roles carrying CUSTODY_RECORD): one query."""
    now = utcnow()
    roles = [role.value for role, granted in ROLE_PERMISSIONS.items() if Permission.CUSTODY_RECORD in granted]
    holding = select(RoleGrant.user_id).where(
        RoleGrant.role.in_(roles), RoleGrant.status == "active", RoleGrant.valid_from <= now,
        (RoleGrant.valid_to.is_(None)) | (RoleGrant.valid_to > now))
    return list(session.scalars(select(User).where(User.active, User.id.in_(holding)).order_by(User.username)))
