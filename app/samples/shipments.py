"""Shipments (coolers, transport boxes): containers scanned in and out while the cooler is
packed, a seal put on, then the whole cooler handed over in one act, possibly over several hops
(sampler → driver → custodian, or through a courier).

A shipment has its own scannable code (SH + year + 5 digits + a Luhn check digit, SH26-000013)
printed on a label. `Container.shipment_id` is the shipment a container is in now: set when it is
scanned in, cleared when it is scanned out, kept after hand-over (the receipt opens a delivery
from a handed-over shipment and reads it). Every scan in or out is a `ShipmentScan` (append-only);
a hand-over of the cooler is one `CustodyEvent` naming all its containers, through the same checks
as a hand-over by hand (app.samples.handover).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.core import audit, i18n
from app.core.barcodes import Label, THERMAL_50x30, render_labels
from app.core.codes import check_digit_ok, reserve_codes, with_check_digit
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.people.models import User
from app.samples import custody_errors as errors
from app.samples import handover, lab_input
from app.samples.custody import ContainerNotCollected, Party, container_closed
from app.samples.lab_models import CustodyEvent, CustodyKind, Shipment, ShipmentScan, ShipmentState
from app.samples.models import Container, ContainerState, Sample

SHIPMENT_PREFIX = "SH"
SHIPMENT_RE = re.compile(r"^SH\d{2}-\d{6}$")
PACKABLE = (ContainerState.FILLED.value, ContainerState.RECEIVED.value)
HANDABLE = (ShipmentState.PACKING.value, ShipmentState.HANDED_OVER.value)
STATES = tuple(s.value for s in ShipmentState)


# ---------------------------------------------------------------- finding


def clean_code(text: str) -> str:
    return re.sub(r"\s+", "", text or "").upper()


def shipment_by_code(session: Session, text: str) -> Shipment:
    """The shipment whose label says `text`; a wrong check digit is said as such."""
    code = clean_code(text)
    if SHIPMENT_RE.match(code) and not check_digit_ok(code):
        raise errors.ShipmentWrongCheckDigit(shipment=code)
    found = session.scalars(select(Shipment).where(Shipment.code == code[:20])).first() if code else None
    if found is None:
        raise errors.ShipmentNotFound(shipment=code[:40] or "—")
    return found


def containers_in(session: Session, shipment: Shipment) -> list[Container]:
    return list(session.scalars(select(Container).where(Container.shipment_id == shipment.id)
                                .order_by(Container.barcode)))


# ---------------------------------------------------------------- packing


def create_shipment(session: Session, actor: User, *, note: str = "", at: datetime | None = None) -> Shipment:
    """A new, empty cooler held by whoever makes it, with its code."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    now = at or utcnow()
    text = lab_input.text(note, "备注", "The note", 500)
    code = with_check_digit(reserve_codes(session, SHIPMENT_PREFIX, now, 1)[0])
    shipment = Shipment(code=code, holder_id=actor.id, note=text, created_at=now, created_by_id=actor.id)
    session.add(shipment)
    session.flush()
    audit.append(session, actor, "shipment.created", "shipment", shipment.id, None,
                 {"code": code, "holder_id": actor.id, "note": text})
    return shipment


def _assert_packing(shipment: Shipment) -> None:
    if shipment.state != ShipmentState.PACKING.value:
        raise errors.ShipmentNotPacking(shipment=shipment.code, **errors.state_words(shipment.state))


def _assert_packer(actor: User, shipment: Shipment, container: Container) -> None:
    if actor.id not in (container.holder_id, shipment.holder_id):
        raise errors.PackerNotHolder(barcode=container.barcode, shipment=shipment.code)


def pack(session: Session, actor: User, shipment: Shipment, barcodes: Iterable[str]) -> list[Container]:
    """Scan containers into a cooler being packed; returns those newly put in (one already in
    this cooler counts once). A container in another cooler still being packed is refused."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    _assert_packing(shipment)
    containers = handover.containers_by_barcodes(session, barcodes)
    samples = handover.samples_of(session, containers)
    others = {c.shipment_id for c in containers if c.shipment_id not in (None, shipment.id)}
    packing_elsewhere = dict(session.execute(select(Shipment.id, Shipment.code).where(
        Shipment.id.in_(others), Shipment.state == ShipmentState.PACKING.value)).all()) if others else {}
    added = []
    for container in containers:
        if container.shipment_id == shipment.id:
            continue
        if container.shipment_id in packing_elsewhere:
            raise errors.ContainerInOtherShipment(barcode=container.barcode,
                                                  shipment=packing_elsewhere[container.shipment_id])
        handover.assert_movable(container, samples[container.sample_id])
        _assert_packable(container)
        _assert_packer(actor, shipment, container)
        added.append(container)
    _scan(session, actor, shipment, added, "in")
    return added


def unpack(session: Session, actor: User, shipment: Shipment, barcodes: Iterable[str]) -> list[Container]:
    """Scan containers out of a cooler being packed."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    _assert_packing(shipment)
    containers = handover.containers_by_barcodes(session, barcodes)
    for container in containers:
        if container.shipment_id != shipment.id:
            raise errors.ContainerNotInShipment(barcode=container.barcode, shipment=shipment.code)
        _assert_packer(actor, shipment, container)
    _scan(session, actor, shipment, containers, "out")
    return containers


def _assert_packable(container: Container) -> None:
    if container.state in (ContainerState.PREPARED.value, ContainerState.ISSUED.value):
        raise ContainerNotCollected(barcode=container.barcode)
    if container.state not in PACKABLE:
        raise container_closed(container)


def _scan(session: Session, actor: User, shipment: Shipment, containers: Sequence[Container], action: str) -> None:
    if not containers:
        return
    now = utcnow()
    for container in containers:
        container.shipment_id = shipment.id if action == "in" else None
    session.add_all([ShipmentScan(shipment_id=shipment.id, container_id=c.id, action=action, scanned_at=now,
                                  scanned_by_id=actor.id) for c in containers])
    session.flush()
    audit.append(session, actor, "shipment.packed" if action == "in" else "shipment.unpacked", "shipment",
                 shipment.id, None, {"code": shipment.code, "containers": sorted(c.barcode for c in containers)})


def seal_shipment(session: Session, actor: User, shipment: Shipment, seal_no: str) -> Shipment:
    """The seal number put on the cooler (it is checked at every hand-over)."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    if shipment.state not in HANDABLE:
        raise errors.ShipmentClosed(shipment=shipment.code, **errors.state_words(shipment.state))
    seal = lab_input.text(seal_no, "封条编号", "The seal number", 40, required=True)
    holder = current_holder(session, shipment)
    if actor.id != holder.user_id:
        raise errors.PackerNotHolder(barcode="—", shipment=shipment.code)
    before = shipment.seal_no
    shipment.seal_no = seal
    session.flush()
    audit.append(session, actor, "shipment.sealed", "shipment", shipment.id, {"seal_no": before},
                 {"code": shipment.code, "seal_no": seal})
    return shipment


# ---------------------------------------------------------------- handing over


def current_holder(session: Session, shipment: Shipment) -> Party:
    """Who has the cooler now: a person, or a carrier named in words."""
    if shipment.holder_id is not None:
        return Party(user_id=shipment.holder_id)
    return Party(place=shipment.holder_place)


def hand_over_shipment(
    session: Session, actor: User, shipment: Shipment, *, taker_id: int | None = None, taker_place: str = "",
    place: str = "", occurred_at: datetime | str | None = None, cooler_temp_c: Decimal | None = None,
    seal_no: str | None = None, seal_intact: bool | None = None, note: str = "", client_id: str | None = None,
) -> CustodyEvent:
    """Hand the whole cooler over in one act: one custody event with all its containers, the
    cooler temperature and the seal (its number from the cooler unless given, and whether it
    was intact). The giver is whoever has the cooler now."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    if shipment.state not in HANDABLE:
        raise errors.ShipmentClosed(shipment=shipment.code, **errors.state_words(shipment.state))
    details = handover.clean_details(session, occurred_at=occurred_at, cooler_temp_c=cooler_temp_c,
                                     seal_no=shipment.seal_no if seal_no is None else seal_no,
                                     seal_intact=seal_intact, note=note, client_id=client_id)
    where = handover.clean_place(place, "交接地点", "The place of the hand-over")
    to_place = handover.clean_place(taker_place, "接收方（地点或承运方）", "The taker (place or carrier)")
    if taker_id is not None and to_place:
        raise errors.CustodyPartyAmbiguous(side_zh="接收方", side_en="taker")
    taker = handover.user_party(session, taker_id, where if taker_id is not None else to_place, "接收方", "taker")
    earlier = handover.event_by_client_id(session, details.client_id)
    if earlier is not None and earlier.shipment_id == shipment.id:
        # a resend: the cooler has moved on since, so the giver is who gave it then
        giver = Party(earlier.from_user_id, earlier.from_location_id, earlier.from_place)
    else:
        giver = current_holder(session, shipment)
    containers = containers_in(session, shipment)
    fingerprint = handover.fingerprint_of(CustodyKind.HANDOVER.value, giver, taker, (c.id for c in containers),
                                        details, shipment.id)
    earlier = handover.repeat_of(session, actor, details, fingerprint)
    if earlier is not None:
        return earlier
    if not containers:
        raise errors.ShipmentEmpty(shipment=shipment.code)
    samples = handover.assert_containers(session, containers, details.occurred_at)
    handover.assert_parties(session, actor, giver, taker, details.occurred_at)
    before = {"state": shipment.state, "holder_id": shipment.holder_id, "holder_place": shipment.holder_place,
              "seal_no": shipment.seal_no}
    event = handover.record_handover(session, actor, containers, samples, giver, taker, details, fingerprint,
                                     shipment_id=shipment.id)
    shipment.holder_id, shipment.holder_place = taker.user_id, taker.place if taker.user_id is None else ""
    shipment.state = ShipmentState.HANDED_OVER.value
    shipment.seal_no = details.seal_no
    session.flush()
    audit.append(session, actor, "shipment.handed_over", "shipment", shipment.id, before, {
        "code": shipment.code, "state": shipment.state, "holder_id": shipment.holder_id,
        "holder_place": shipment.holder_place,
        "seal_no": shipment.seal_no, "custody_event_id": event.id, "to_place": taker.place})
    return event


# ---------------------------------------------------------------- label


def shipment_label_pdf(session: Session, shipment: Shipment) -> bytes:
    """The cooler's label (50 x 30 mm): its code as a barcode, made by whom and when."""
    maker = session.get(User, shipment.created_by_id)
    zh = i18n.is_chinese()
    day = lab_input.local_text(session, shipment.created_at)[:10]
    lines = (
        ("样品运输箱" if zh else "Sample shipment"),
        (f"{'装箱' if zh else 'Packed by'} {i18n.pick(maker.display_name_zh, maker.display_name_en)}")[:40],
        day,
    )
    label = Label(code=shipment.code, title=shipment.code, lines=lines)
    return render_labels([label], THERMAL_50x30)


# ---------------------------------------------------------------- read models


@dataclass(frozen=True)
class ShipmentRow:
    shipment: Shipment
    holder: User | None
    containers: int


def shipments_page(session: Session, *, state: str = "", q: str = "", page: int = 1, size: int = 25) -> Page[Any]:
    """Coolers, newest first, each with its holder and how many containers are in it: three
    queries whatever the page holds."""
    stmt = select(Shipment)
    if state in STATES:
        stmt = stmt.where(Shipment.state == state)
    code = clean_code(q)
    if code:
        stmt = stmt.where(Shipment.code.like(f"{code[:20]}%"))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        stmt.add_columns(User).outerjoin(User, User.id == Shipment.holder_id)
        .order_by(Shipment.id.desc()).limit(size).offset((page - 1) * size)).all()
    ids = [row[0].id for row in rows]
    counts = dict(session.execute(select(Container.shipment_id, func.count()).where(Container.shipment_id.in_(ids))
                                  .group_by(Container.shipment_id)).all()) if ids else {}
    items = [ShipmentRow(shipment, holder, counts.get(shipment.id, 0)) for shipment, holder in rows]
    return Page(items, page, size, total)


@dataclass(frozen=True)
class PackedContainer:
    container: Container
    sample_no: str
    holder: User | None


@dataclass(frozen=True)
class Hop:
    event: CustodyEvent
    giver: User | None
    taker: User | None
    recorded_by: User | None
    containers: int


@dataclass
class ShipmentView:
    shipment: Shipment
    holder: Party
    holder_user: User | None
    maker: User | None
    containers: list[PackedContainer]
    hops: list[Hop]

    @property
    def packing(self) -> bool:
        return self.shipment.state == ShipmentState.PACKING.value

    @property
    def can_hand_over(self) -> bool:
        return self.shipment.state in HANDABLE and bool(self.containers)


def shipment_view(session: Session, shipment: Shipment) -> ShipmentView:
    """The cooler's page: what is in it (with samples and holders), and each hand-over of it.
    A fixed number of queries whatever it holds."""
    holder_user = aliased(User)
    packed = session.execute(
        select(Container, Sample.sample_no, holder_user).join(Sample, Sample.id == Container.sample_id)
        .outerjoin(holder_user, holder_user.id == Container.holder_id)
        .where(Container.shipment_id == shipment.id).order_by(Sample.sample_no, Container.position)).all()
    giver, taker, recorder = aliased(User), aliased(User), aliased(User)
    from app.samples.lab_models import CustodyEventContainer

    count = (select(func.count()).where(CustodyEventContainer.event_id == CustodyEvent.id)
             .correlate(CustodyEvent).scalar_subquery())
    hops = session.execute(
        select(CustodyEvent, giver, taker, recorder, count)
        .outerjoin(giver, giver.id == CustodyEvent.from_user_id).outerjoin(taker, taker.id == CustodyEvent.to_user_id)
        .outerjoin(recorder, recorder.id == CustodyEvent.recorded_by_id)
        .where(CustodyEvent.shipment_id == shipment.id).order_by(CustodyEvent.id)).all()
    users = dict(session.execute(select(User.id, User).where(
        User.id.in_({shipment.holder_id, shipment.created_by_id}))).all())
    holder = current_holder(session, shipment)
    return ShipmentView(
        shipment=shipment, holder=holder,
        holder_user=users.get(holder.user_id) if holder.user_id is not None else None,
        maker=users.get(shipment.created_by_id),
        containers=[PackedContainer(c, no, u) for c, no, u in packed],
        hops=[Hop(e, g, t, r, n) for e, g, t, r, n in hops],
    )
