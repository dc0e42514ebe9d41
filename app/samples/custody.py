"""The custody primitive: one change of hands or place for a set of containers (DOMAIN.md §3).

Every hand-over, receipt, storage move, take-out, return and disposal goes through
`record_custody`: it appends the `CustodyEvent` and its container links, compares the giver
with each container's holder before (a mismatch is a custody gap, flagged on the link and on the
sample), moves the holder and the location, keeps the locations' occupancy, and appends one
audit event. Callers (hand-over, shipments, receipt, storage, preparation) check their own rules
first and pass who gives and who takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core import audit
from app.core.db import utcnow
from app.core.errors import DomainError, InvalidInput
from app.people.models import User
from app.samples import lab_input
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, CustodyKind, StorageLocation
from app.samples.models import Container, ContainerState, Sample

CLOSED_CONTAINER_STATES = {ContainerState.DISPOSED.value, ContainerState.EMPTIED.value}


class NoContainers(InvalidInput):
    code = "no_containers"
    message_zh = "没有扫描任何容器。"
    message_en = "No containers were scanned."


class ContainerClosed(DomainError):
    code = "container_closed"
    http_status = 409
    message_zh = "容器 {barcode} 已{state_zh}，不能再交接或移动。"
    message_en = "Container {barcode} is {state_en}; it cannot be handed over or moved any more."


class ContainerNotCollected(DomainError):
    code = "container_not_collected"
    http_status = 409
    message_zh = "容器 {barcode} 尚未在现场装样（样品未采集），不能交接。"
    message_en = "Container {barcode} has not been filled in the field (its sample is not collected yet)."


class LocationFull(DomainError):
    code = "location_full"
    http_status = 409
    message_zh = "存放位置 {location} 已满：容量 {capacity} 个，已放 {occupied} 个，本次 {count} 个。"
    message_en = "Storage location {location} is full: room for {capacity}, {occupied} there, {count} more asked."


class LocationInactive(DomainError):
    code = "location_inactive"
    http_status = 409
    message_zh = "存放位置 {location} 已停用。"
    message_en = "Storage location {location} is no longer in use."


class SamePartyBothSides(InvalidInput):
    code = "same_party_both_sides"
    message_zh = "交出方与接收方相同：交接需要两方。"
    message_en = "The giver and the taker are the same: a hand-over needs two parties."


@dataclass(frozen=True)
class Party:
    """One side of a custody event: a person, a storage location, or a place named in words
    (a courier, "field", a client's office). A container is held by a person or a location."""

    user_id: int | None = None
    location_id: int | None = None
    place: str = ""

    @property
    def holds(self) -> tuple[int | None, int | None]:
        return self.user_id, self.location_id


def location_name(location: StorageLocation) -> str:
    return " / ".join(part for part in (location.room, location.unit, location.shelf, location.position) if part)


def record_custody(
    session: Session, actor: User, containers: Sequence[Container], kind: CustodyKind, *,
    giver: Party, taker: Party, occurred_at: datetime, shipment_id: int | None = None,
    cooler_temp_c: Decimal | None = None, seal_no: str = "", seal_intact: bool | None = None, note: str = "",
    client_id: str | None = None, allow_closed: bool = False, new: bool = False,
) -> CustodyEvent:
    """Append one custody event moving `containers` from `giver` to `taker` at `occurred_at`.

    Refuses (changing nothing) when nothing is moved, a container is closed or not yet filled,
    the act predates a sample's sampling time, or the taker's storage location is inactive or
    full. A giver who is not a container's holder before, or an act dated before the container's
    last custody event, is recorded as a gap: custody that cannot be shown is flagged, not hidden.
    `new` containers (an aliquot just poured) start their custody here: the giver is where they
    came from, so there is no gap, and they were never counted in a location.
    """
    if not containers:
        raise NoContainers()
    if giver.holds == taker.holds and giver.holds != (None, None):
        raise SamePartyBothSides()
    unique = list({c.id: c for c in containers}.values())
    samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_({c.sample_id for c in unique})))}
    for container in unique:
        if container.state in CLOSED_CONTAINER_STATES and not allow_closed:
            raise container_closed(container)
        if container.state in (ContainerState.PREPARED.value, ContainerState.ISSUED.value):
            raise ContainerNotCollected(barcode=container.barcode)
        lab_input.not_before_sampling(session, occurred_at, samples[container.sample_id], "交接时间", "The time")
    _check_room(session, taker, unique)
    last_at = dict(session.execute(
        select(CustodyEventContainer.container_id, func.max(CustodyEvent.occurred_at))
        .join(CustodyEvent, CustodyEvent.id == CustodyEventContainer.event_id)
        .where(CustodyEventContainer.container_id.in_([c.id for c in unique]))
        .group_by(CustodyEventContainer.container_id)
    ).all())
    event = CustodyEvent(
        client_id=client_id, kind=kind.value, occurred_at=occurred_at, from_user_id=giver.user_id,
        from_location_id=giver.location_id, from_place=giver.place, to_user_id=taker.user_id,
        to_location_id=taker.location_id, to_place=taker.place, shipment_id=shipment_id,
        cooler_temp_c=cooler_temp_c, seal_no=seal_no, seal_intact=seal_intact, note=note,
        recorded_at=utcnow(), recorded_by_id=actor.id,
    )
    session.add(event)
    session.flush()
    links, gaps, moved_out = [], [], {}
    for container in unique:
        if new:
            container.holder_id, container.location_id = giver.user_id, None
        held_by = (container.holder_id, container.location_id)
        gap = not new and (_is_gap(held_by, giver) or (container.id in last_at and occurred_at < last_at[container.id]))
        links.append(CustodyEventContainer(
            event_id=event.id, container_id=container.id, sample_id=container.sample_id, gap=gap,
            holder_before_id=container.holder_id, location_before_id=container.location_id))
        if container.location_id is not None:
            moved_out[container.location_id] = moved_out.get(container.location_id, 0) + 1
        container.holder_id, container.location_id = taker.user_id, taker.location_id
        if gap:
            gaps.append(container.barcode)
            samples[container.sample_id].custody_gap = True
    session.add_all(links)
    _keep_occupancy(session, moved_out, taker, len(unique))
    session.flush()
    audit.append(session, actor, f"custody.{kind.value}", "custody_event", event.id, None, {
        "kind": kind.value, "occurred_at": occurred_at, "from_user_id": giver.user_id,
        "from_location_id": giver.location_id, "from_place": giver.place, "to_user_id": taker.user_id,
        "to_location_id": taker.location_id, "to_place": taker.place, "shipment_id": shipment_id,
        "cooler_temp_c": cooler_temp_c, "seal_no": seal_no, "seal_intact": seal_intact, "note": note,
        "containers": sorted(c.barcode for c in unique), "gaps": sorted(gaps),
    })
    return event


def _is_gap(held_by: tuple[int | None, int | None], giver: Party) -> bool:
    """Custody is shown when the giver is who (or where) held the container. A container last
    given to a place in words (a courier) is held by nobody on record: any place may give it."""
    if held_by == (None, None):
        return giver.holds != (None, None)
    return giver.holds != held_by


def _check_room(session: Session, taker: Party, containers: Sequence[Container]) -> None:
    if taker.location_id is None:
        return
    location = session.execute(
        select(StorageLocation).where(StorageLocation.id == taker.location_id).with_for_update()
        .execution_options(populate_existing=True)  # occupancy is counted by UPDATE statements
    ).scalar_one()
    if not location.active:
        raise LocationInactive(location=location_name(location))
    arriving = sum(1 for c in containers if c.location_id != location.id)
    if location.capacity is not None and location.occupied + arriving > location.capacity:
        raise LocationFull(location=location_name(location), capacity=location.capacity,
                           occupied=location.occupied, count=arriving)


def _keep_occupancy(session: Session, moved_out: dict[int, int], taker: Party, count: int) -> None:
    """Occupancy is kept by counting in one statement per location, so concurrent moves add up."""
    if taker.location_id is not None:
        staying = moved_out.pop(taker.location_id, 0)
        if count - staying:
            session.execute(update(StorageLocation).where(StorageLocation.id == taker.location_id)
                            .values(occupied=StorageLocation.occupied + (count - staying)))
    for location_id, leaving in moved_out.items():
        session.execute(update(StorageLocation).where(StorageLocation.id == location_id)
                        .values(occupied=StorageLocation.occupied - leaving))


def container_closed(container: Container) -> ContainerClosed:
    """The refusal for a container that was disposed of or used up."""
    names = {ContainerState.DISPOSED.value: ("处置", "disposed of"),
             ContainerState.EMPTIED.value: ("用完", "used up")}
    zh, en = names.get(container.state, (container.state, container.state))
    return ContainerClosed(barcode=container.barcode, state_zh=zh, state_en=en)
