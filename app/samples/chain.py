"""A sample's custody chain: for each of its containers (aliquots included), the sequence from
the sampler who filled it through every custody event to disposal, each link from whom to whom
(a person, a storage location or a place in words), when (shown in lab time), the cooler
temperature and seal, who recorded it, and gaps flagged: a giver who was not the holder before
(custody that cannot be shown, e.g. a container received without a hand-over from its sampler)
or an act dated before the one recorded before it (DOMAIN.md §3).

Two queries whatever the number of events: the containers with their holders now, and the links
with both sides, the recorder and the shipment. The custodian's list of samples with gaps reads
the indexed `Sample.custody_gap` flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.core.web import Page
from app.people.models import User
from app.samples.custody import location_name
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, CustodyKind, Shipment, StorageLocation
from app.samples.models import Container, Sample, SampleState

NOT_FROM_HOLDER = "not_from_holder"  # the giver was not who (or where) held the container
OUT_OF_ORDER = "out_of_order"  # dated before the container's event recorded before it


@dataclass(frozen=True)
class PartyView:
    """One side of a link as people read it: a person, a storage location, a place in words, or
    nobody on record (a container in a courier's hands is held by nobody the lab knows)."""

    kind: str  # person, location, place, nobody
    name_zh: str = ""
    name_en: str = ""
    username: str = ""
    code: str = ""  # a location's code
    place: str = ""  # a place in words, or where a hand-over between people happened

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name_zh": self.name_zh, "name_en": self.name_en,
                "username": self.username or None, "location_code": self.code or None, "place": self.place or None}


NOBODY = PartyView("nobody")


def _party(user: User | None, location: StorageLocation | None, place: str = "") -> PartyView:
    if user is not None:
        return PartyView("person", user.display_name_zh, user.display_name_en or user.display_name_zh,
                         username=user.username, place=place)
    if location is not None:
        name = location_name(location)
        return PartyView("location", name, name, code=location.code, place=place)
    if place:
        return PartyView("place", place, place, place=place)
    return NOBODY


@dataclass(frozen=True)
class ChainLink:
    event_id: int
    kind: str
    occurred_at: datetime
    giver: PartyView
    taker: PartyView
    holder_before: PartyView
    cooler_temp_c: Decimal | None
    seal_no: str
    seal_intact: bool | None
    note: str
    shipment_code: str
    recorded_by: PartyView
    recorded_at: datetime
    gap: bool
    gap_reasons: tuple[str, ...]


@dataclass
class ContainerChain:
    container: Container
    parent_barcode: str
    start: PartyView  # who filled it (the first holder): the chain starts at sampling
    current: PartyView  # who or where holds it now
    links: list[ChainLink] = field(default_factory=list)

    @property
    def barcode(self) -> str:
        return self.container.barcode

    @property
    def gaps(self) -> list[ChainLink]:
        return [link for link in self.links if link.gap]

    @property
    def disposed(self) -> bool:
        return bool(self.links) and self.links[-1].kind == CustodyKind.DISPOSAL.value


@dataclass(frozen=True)
class Gap:
    barcode: str
    link: ChainLink


@dataclass
class ChainView:
    sample: Sample
    containers: list[ContainerChain]

    @property
    def gaps(self) -> list[Gap]:
        return [Gap(chain.barcode, link) for chain in self.containers for link in chain.gaps]

    @property
    def has_gap(self) -> bool:
        return self.sample.custody_gap or bool(self.gaps)

    @property
    def events(self) -> int:
        return sum(len(chain.links) for chain in self.containers)


def _gap_reasons(link: CustodyEventContainer, event: CustodyEvent, latest: datetime | None) -> tuple[str, ...]:
    if not link.gap:
        return ()
    reasons = []
    held = (link.holder_before_id, link.location_before_id)
    gave = (event.from_user_id, event.from_location_id)
    if (held == (None, None) and gave != (None, None)) or (held != (None, None) and held != gave):
        reasons.append(NOT_FROM_HOLDER)
    if latest is not None and event.occurred_at < latest:
        reasons.append(OUT_OF_ORDER)
    return tuple(reasons) or (NOT_FROM_HOLDER,)


def custody_chain(session: Session, sample: Sample) -> ChainView:
    """The custody chain of every container of `sample`, in the order the events were recorded."""
    holder, location = aliased(User), aliased(StorageLocation)
    rows = session.execute(
        select(Container, holder, location).outerjoin(holder, holder.id == Container.holder_id)
        .outerjoin(location, location.id == Container.location_id)
        .where(Container.sample_id == sample.id).order_by(Container.parent_id.is_not(None), Container.position,
                                                          Container.id)).all()
    barcodes = {c.id: c.barcode for c, _, _ in rows}
    chains = {c.id: ContainerChain(c, barcodes.get(c.parent_id or 0, ""), NOBODY, _party(u, loc))
              for c, u, loc in rows}
    giver, taker, before, recorder = aliased(User), aliased(User), aliased(User), aliased(User)
    from_loc, to_loc, before_loc = aliased(StorageLocation), aliased(StorageLocation), aliased(StorageLocation)
    links = session.execute(
        select(CustodyEventContainer, CustodyEvent, giver, taker, before, recorder, from_loc, to_loc, before_loc,
               Shipment.code)
        .join(CustodyEvent, CustodyEvent.id == CustodyEventContainer.event_id)
        .outerjoin(giver, giver.id == CustodyEvent.from_user_id)
        .outerjoin(taker, taker.id == CustodyEvent.to_user_id)
        .outerjoin(before, before.id == CustodyEventContainer.holder_before_id)
        .outerjoin(recorder, recorder.id == CustodyEvent.recorded_by_id)
        .outerjoin(from_loc, from_loc.id == CustodyEvent.from_location_id)
        .outerjoin(to_loc, to_loc.id == CustodyEvent.to_location_id)
        .outerjoin(before_loc, before_loc.id == CustodyEventContainer.location_before_id)
        .outerjoin(Shipment, Shipment.id == CustodyEvent.shipment_id)
        .where(CustodyEventContainer.sample_id == sample.id)
        .order_by(CustodyEvent.id, CustodyEventContainer.container_id)).all()
    latest: dict[int, datetime] = {}
    for link, event, g, t, b, r, fl, tl, bl, shipment_code in links:
        chain = chains.get(link.container_id)
        if chain is None:  # an aliquot moved to another sample's record: not this chain
            continue
        held_before = _party(b, bl)
        if not chain.links:
            chain.start = held_before
        chain.links.append(ChainLink(
            event_id=event.id, kind=event.kind, occurred_at=event.occurred_at,
            giver=_party(g, fl, event.from_place), taker=_party(t, tl, event.to_place), holder_before=held_before,
            cooler_temp_c=event.cooler_temp_c, seal_no=event.seal_no, seal_intact=event.seal_intact,
            note=event.note, shipment_code=shipment_code or "", recorded_by=_party(r, None),
            recorded_at=event.recorded_at, gap=link.gap,
            gap_reasons=_gap_reasons(link, event, latest.get(link.container_id))))
        if link.container_id not in latest or event.occurred_at > latest[link.container_id]:
            latest[link.container_id] = event.occurred_at
    for chain in chains.values():
        if not chain.links:
            chain.start = chain.current if chain.container.filled_at is not None else NOBODY
    return ChainView(sample, list(chains.values()))


def custody_section(session: Session, sample: Sample) -> ChainView | None:
    """What the sample's page shows of custody: the chain, once the sample was collected (no
    query before: custody starts at the sampler's signature)."""
    if sample.state in (SampleState.REGISTERED.value, SampleState.CANCELLED.value) and not sample.custody_gap:
        return None
    view = custody_chain(session, sample)
    if not any(c.container.filled_at is not None or c.links for c in view.containers):
        return None
    return view


# ---------------------------------------------------------------- the custodian's list of gaps


@dataclass(frozen=True)
class GapSample:
    sample: Sample
    gaps: int  # links flagged
    last_gap_at: datetime | None


def samples_with_custody_gaps(session: Session, page: int = 1, size: int = 25) -> Page[GapSample]:
    """Samples whose custody has a gap, newest samples first, with how many links are flagged and
    the latest: three queries whatever the page holds (Sample.custody_gap is indexed)."""
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(Sample).where(Sample.custody_gap.is_(True))) or 0
    samples = session.scalars(select(Sample).where(Sample.custody_gap.is_(True)).order_by(Sample.id.desc())
                              .limit(size).offset((page - 1) * size)).all()
    ids = [s.id for s in samples]
    stats = {row[0]: (row[1], row[2]) for row in session.execute(
        select(CustodyEventContainer.sample_id, func.count(), func.max(CustodyEvent.occurred_at))
        .join(CustodyEvent, CustodyEvent.id == CustodyEventContainer.event_id)
        .where(CustodyEventContainer.sample_id.in_(ids), CustodyEventContainer.gap.is_(True))
        .group_by(CustodyEventContainer.sample_id))} if ids else {}
    items = [GapSample(s, *stats.get(s.id, (0, None))) for s in samples]
    return Page(items, page, size, total)
