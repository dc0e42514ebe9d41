"""Storage: locations with their conditions, moves by scan, and "where is sample X" in one scan
(issue 7 item 4; DOMAIN.md §3 received → in_storage).

A location (room / unit / shelf / position) has a scannable code LC26-000013 (a Luhn check digit
catches a misread), its conditions and temperature range, and a capacity in containers. Every
move is a custody event made by `app.samples.custody.record_custody`, which also keeps the
locations' occupancy and refuses a full or inactive one: putting containers into a location
(`store`), an analyst taking them out (`take_out`) and giving them back (`give_back`). The
container row keeps its holder and location, so "where is it" is one read; the custody events
are the history and say since when.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.barcodes import A4_SHEET, Label, THERMAL_50x30, render_labels
from app.core.codes import check_digit_ok, reserve_codes, with_check_digit
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.i18n import N_, pick
from app.core.permissions import Permission, ensure, has_permission
from app.core.web import Page, paginate
from app.people.models import User
from app.samples import errors, lab_input
from app.samples import storage_errors as se
from app.samples.custody import NoContainers, Party, location_name, record_custody
from app.samples.lab_models import CustodyEvent, CustodyEventContainer, CustodyKind, StorageLocation
from app.samples.models import Container, ContainerKind, ContainerState, PreservationRule, Sample, SampleState
from app.samples.registration import CONTAINER_RE, clean_container_barcode, container_by_barcode, sample_by_no

LOCATION_PREFIX = "LC"
LOCATION_RE = re.compile(r"^LC\d{2}-\d{6,9}$")
MAX_SCANS = 500  # containers moved in one act: a full fridge shelf, not a warehouse
MAX_CAPACITY = 100_000
CUSTODY_KIND_NAMES = {
    "handover": N_("Handed over"), "receipt": N_("Received at the lab"), "storage": N_("Stored"),
    "take_out": N_("Taken out"), "return": N_("Given back"), "disposal": N_("Disposed of"),
}
UNRECORDED = "未记录 / not recorded"  # the giver of a container nobody on record holds (left with a courier)
# states from which the first storage makes the sample `in_storage` (DOMAIN.md §3)
STORES_SAMPLE = {SampleState.RECEIVED.value, SampleState.CONDITIONALLY_RECEIVED.value}
NOT_STORABLE = {ContainerState.REJECTED.value: ("在接收时被拒收", "rejected at receipt"),
                ContainerState.DISPOSED.value: ("处置", "disposed of"),
                ContainerState.EMPTIED.value: ("用完", "used up")}
WAITING_STATES = {ContainerState.PREPARED.value: ("已登记，尚未发放", "registered, not yet issued"),
                  ContainerState.ISSUED.value: ("已发放，尚未装样", "issued, not yet filled"),
                  ContainerState.FILLED.value: ("已装样，尚未接收", "filled, not yet received")}
# "0–5 °C", "0-4 °C, dark", "2～5℃": the range a preservation rule keeps samples in
RANGE_RE = re.compile(r"(-?\d+(?:\.\d+)?)\s*[–—~～\-至]\s*(-?\d+(?:\.\d+)?)\s*(?:°\s*C|℃)")


# ---------------------------------------------------------------- locations


@dataclass
class LocationInput:
    """A location as typed in the form (or sent by a script): cleaned by `create_location`."""

    room: str = ""
    unit: str = ""
    shelf: str = ""
    position: str = ""
    conditions_zh: str = ""
    conditions_en: str = ""
    temp_min: Any = None
    temp_max: Any = None
    temp_unit: str = "°C"
    capacity: Any = None


def clean_location_code(text: str | None) -> str:
    return re.sub(r"\s+", "", text or "").upper()


def is_location_code(text: str | None) -> bool:
    return bool(LOCATION_RE.match(clean_location_code(text)))


def location_by_code(session: Session, text: str | None) -> StorageLocation:
    """The location whose label says `text`: a misread check digit and a code of another shape
    are told apart from an unknown location."""
    code = clean_location_code(text)
    if not LOCATION_RE.match(code):
        raise se.NotALocationCode(location_code=code[:40] or "—")
    if not check_digit_ok(code):
        raise se.LocationCheckDigit(location_code=code)
    location = session.scalars(select(StorageLocation).where(StorageLocation.code == code)).first()
    if location is None:
        raise se.LocationNotFound(location_code=code)
    return location


def _capacity(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    shown = str(value).strip()[:20]
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,6}", shown):
        raise se.CapacityInvalid(value=shown)
    number = int(shown)
    if not 1 <= number <= MAX_CAPACITY:
        raise se.CapacityInvalid(value=shown)
    return number


def create_location(session: Session, actor: User, data: LocationInput, at: datetime | None = None) -> StorageLocation:
    """Register a storage location with its code (LC + year + sequence + check digit)."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    now = at or utcnow()
    room = lab_input.text(data.room, "房间", "The room", 60, required=True)
    unit = lab_input.text(data.unit, "存放设备（冰箱、柜）", "The unit (fridge, cabinet)", 60)
    shelf = lab_input.text(data.shelf, "层", "The shelf", 30)
    position = lab_input.text(data.position, "位置", "The position", 30)
    conditions_zh = lab_input.text(data.conditions_zh, "存放条件（中文）", "The conditions (Chinese)", 200)
    conditions_en = lab_input.text(data.conditions_en, "存放条件（英文）", "The conditions (English)", 200)
    low = lab_input.celsius(data.temp_min, data.temp_unit, "温度下限", "The lowest temperature")
    high = lab_input.celsius(data.temp_max, data.temp_unit, "温度上限", "The highest temperature")
    if low is not None and high is not None and low > high:
        raise se.TemperatureRangeInverted(low=f"{low:f}", high=f"{high:f}")
    capacity = _capacity(data.capacity)
    taken = session.scalars(select(StorageLocation).where(
        StorageLocation.room == room, StorageLocation.unit == unit, StorageLocation.shelf == shelf,
        StorageLocation.position == position)).first()
    if taken is not None:
        raise se.LocationPositionTaken(name=location_name(taken), location_code=taken.code)
    code = with_check_digit(reserve_codes(session, LOCATION_PREFIX, now, 1)[0])
    location = StorageLocation(
        code=code, room=room, unit=unit, shelf=shelf, position=position, conditions_zh=conditions_zh,
        conditions_en=conditions_en, temp_min_c=low, temp_max_c=high, capacity=capacity, occupied=0, active=True,
        created_at=now, created_by_id=actor.id)
    session.add(location)
    session.flush()
    audit.append(session, actor, "storage.location_created", "storage_location", location.id, None,
                 _location_facts(location), at=now)
    return location


def deactivate_location(session: Session, actor: User, location: StorageLocation) -> StorageLocation:
    """Take an empty location out of use; its history stays (a location is never deleted)."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    location = session.execute(select(StorageLocation).where(StorageLocation.id == location.id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one()
    if not location.active:
        raise se.LocationAlreadyInactive(name=location_name(location))
    if location.occupied:
        raise se.LocationNotEmpty(name=location_name(location), count=location.occupied)
    location.active = False
    session.flush()
    audit.append(session, actor, "storage.location_deactivated", "storage_location", location.id,
                 {"code": location.code, "active": True}, {"code": location.code, "active": False})
    return location


def _location_facts(location: StorageLocation) -> dict[str, Any]:
    return {"code": location.code, "room": location.room, "unit": location.unit, "shelf": location.shelf,
            "position": location.position, "conditions_zh": location.conditions_zh,
            "conditions_en": location.conditions_en, "temp_min_c": location.temp_min_c,
            "temp_max_c": location.temp_max_c, "capacity": location.capacity}


def temperature_text(location: StorageLocation) -> str:
    low, high = location.temp_min_c, location.temp_max_c
    if low is None and high is None:
        return ""
    if low is not None and high is not None:
        return f"{low:f}–{high:f} °C"
    return f"≥ {low:f} °C" if low is not None else f"≤ {high:f} °C"


def search_locations(session: Session, *, room: str = "", include_inactive: bool = False, page: int = 1,
                     size: int = 50) -> Page[StorageLocation]:
    """Locations in room / unit / shelf / position order (two queries)."""
    query = select(StorageLocation)
    if room:
        query = query.where(StorageLocation.room == room)
    if not include_inactive:
        query = query.where(StorageLocation.active.is_(True))
    query = query.order_by(StorageLocation.room, StorageLocation.unit, StorageLocation.shelf,
                           StorageLocation.position, StorageLocation.id)
    return paginate(session, query, page, size)


def rooms(session: Session) -> list[str]:
    return list(session.scalars(select(StorageLocation.room).distinct().order_by(StorageLocation.room)))


def location_label(location: StorageLocation) -> Label:
    conditions = pick(location.conditions_zh, location.conditions_en)
    name = location_name(location)
    # the room and unit again only when the title had to be cut (looked at on the printed label)
    where = f"{location.room} {location.unit}".strip() if len(name) > 40 else ""
    lines = tuple(line[:48] for line in (conditions, temperature_text(location), where) if line)
    return Label(code=location.code, title=name[:40], lines=lines)


def location_labels_pdf(locations: Sequence[StorageLocation], fmt: str = "thermal") -> bytes:
    """The labels of storage locations (barcode, name, conditions): stuck on the shelf or fridge."""
    if not locations:
        raise InvalidInput(detail="no storage locations to label")
    layout = {"thermal": THERMAL_50x30, "a4": A4_SHEET}.get(fmt)
    if layout is None:
        raise InvalidInput(detail="format must be thermal or a4")
    return render_labels([location_label(location) for location in locations[:2000]], layout)


# ---------------------------------------------------------------- scanning containers


def split_scans(barcodes: str | Iterable[str]) -> list[str]:
    """The codes of a scan box (one per line, or separated by spaces or commas), cleaned, once each."""
    texts = [barcodes] if isinstance(barcodes, str) else list(barcodes)
    codes = [clean_container_barcode(part) for text in texts for part in re.split(r"[\s,;，；]+", text or "") if part]
    return list(dict.fromkeys(code for code in codes if code))


def scanned_containers(session: Session, barcodes: str | Iterable[str]) -> list[Container]:
    """The containers scanned, in scan order; an unknown, misread or foreign code is refused with
    what is wrong with it (two queries when all are known)."""
    codes = split_scans(barcodes)
    if not codes:
        raise NoContainers()
    if len(codes) > MAX_SCANS:
        raise se.TooManyScans(limit=MAX_SCANS, count=len(codes))
    found = {c.barcode: c for c in session.scalars(select(Container).where(Container.barcode.in_(codes)))}
    for code in codes:
        if code not in found:
            container_by_barcode(session, code)  # raises the refusal that says what is wrong
            raise errors.ContainerNotFound(barcode=code)
    return [found[code] for code in codes]


def _giver(container: Container) -> Party:
    if container.holder_id is not None:
        return Party(user_id=container.holder_id)
    if container.location_id is not None:
        return Party(location_id=container.location_id)
    return Party(place=UNRECORDED)


def _by_giver(containers: Sequence[Container]) -> dict[Party, list[Container]]:
    groups: dict[Party, list[Container]] = {}
    for container in containers:
        groups.setdefault(_giver(container), []).append(container)
    return groups


def _storable(container: Container) -> None:
    if container.state in NOT_STORABLE:
        zh, en = NOT_STORABLE[container.state]
        raise se.ContainerNotStorable(barcode=container.barcode, state_zh=zh, state_en=en)
    received = container.state == ContainerState.RECEIVED.value or (
        container.kind != ContainerKind.CONTAINER.value and container.state == ContainerState.FILLED.value)
    if not received:
        zh, en = WAITING_STATES.get(container.state, (container.state, container.state))
        raise se.ContainerNotReceived(barcode=container.barcode, state_zh=zh, state_en=en)


def _who(session: Session, container: Container) -> str:
    if container.holder_id is not None:
        user = session.get(User, container.holder_id)
        return pick(user.display_name_zh, user.display_name_en) if user else "—"
    if container.location_id is not None:
        return location_name(session.get(StorageLocation, container.location_id))
    return UNRECORDED


@dataclass
class MoveResult:
    """What one scan act did: the custody events, the containers moved, the ones that were
    already there (a repeated scan), warnings (conditions) and samples that became `in_storage`."""

    events: list[CustodyEvent] = field(default_factory=list)
    moved: list[Container] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (zh, en)
    stored_samples: list[str] = field(default_factory=list)
    location: StorageLocation | None = None


def _move(session: Session, actor: User, groups: dict[Party, list[Container]], kind: CustodyKind, taker: Party,
          at: datetime, note: str, client_id: str | None) -> list[CustodyEvent]:
    """One custody event per giver; `client_id` (an idempotency key) goes to the first."""
    events = []
    for n, (giver, group) in enumerate(groups.items()):
        if taker.location_id is not None:
            # custody reads the taker's occupancy through the identity map: make it read the row
            location = session.get(StorageLocation, taker.location_id)
            if location is not None:
                session.expire(location, ["occupied"])
        events.append(record_custody(session, actor, group, kind, giver=giver, taker=taker, occurred_at=at,
                                     note=note, client_id=client_id if n == 0 else None))
    return events


def store(session: Session, actor: User, location_code: str, barcodes: str | Iterable[str], at: Any = None, *,
          note: str = "", client_id: str | None = None) -> MoveResult:
    """Put scanned containers into a location, from whoever or wherever holds them now: one
    custody event per present holder. The first storage of a received sample makes it
    `in_storage`. Containers not received (or rejected, disposed) are refused; a container
    already there is reported, not moved again."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    moment = lab_input.act_time(session, at, "入库时间", "The storage time")
    note = lab_input.text(note, "备注", "The note", 500)
    location = location_by_code(session, location_code)
    containers = scanned_containers(session, barcodes)
    for container in containers:
        _storable(container)
    result = MoveResult(location=location)
    arriving = [c for c in containers if c.location_id != location.id]
    result.already_there = [c.barcode for c in containers if c.location_id == location.id]
    if not arriving:
        return result
    _check_room_for_all(session, location, len(arriving))
    result.warnings = condition_warnings(session, location, arriving)
    result.events = _move(session, actor, _by_giver(arriving), CustodyKind.STORAGE,
                          Party(location_id=location.id), moment, note, client_id)
    result.moved = arriving
    result.stored_samples = _mark_stored(session, actor, arriving, location, moment)
    session.refresh(location)
    return result


def _check_room_for_all(session: Session, location: StorageLocation, count: int) -> None:
    """Custody checks each event; the whole scan is checked first so a scan that does not fit is
    refused before anything is written, with the full count."""
    from app.samples.custody import LocationFull, LocationInactive

    fresh = session.execute(select(StorageLocation).where(StorageLocation.id == location.id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one()
    if not fresh.active:
        raise LocationInactive(location=location_name(fresh))
    if fresh.capacity is not None and fresh.occupied + count > fresh.capacity:
        raise LocationFull(location=location_name(fresh), capacity=fresh.capacity, occupied=fresh.occupied,
                           count=count)


def _mark_stored(session: Session, actor: User, containers: Sequence[Container], location: StorageLocation,
                 at: datetime) -> list[str]:
    sample_ids = {c.sample_id for c in containers}
    samples = session.scalars(select(Sample).where(Sample.id.in_(sample_ids), Sample.state.in_(STORES_SAMPLE))
                              .order_by(Sample.sample_no)).all()
    for sample in samples:
        before = sample.state
        sample.state = SampleState.IN_STORAGE.value
        audit.append(session, actor, "sample.stored", "sample", sample.id,
                     {"sample_no": sample.sample_no, "state": before},
                     {"sample_no": sample.sample_no, "state": sample.state, "location": location.code,
                      "stored_at": at})
    session.flush()
    return [s.sample_no for s in samples]


def storage_range(text: str) -> tuple[Decimal, Decimal] | None:
    """The temperature range a preservation rule's storage text names ("0–5 °C, dark"), if any."""
    match = RANGE_RE.search(text or "")
    if not match:
        return None
    low, high = Decimal(match.group(1)), Decimal(match.group(2))
    return (low, high) if low <= high else (high, low)


def condition_warnings(session: Session, location: StorageLocation,
                       containers: Sequence[Container]) -> list[tuple[str, str]]:
    """Containers whose preservation rule keeps them in a temperature range the location does not
    guarantee ("0–5 °C" needs a fridge): a warning at the scanner, not a refusal."""
    groups = {c.group_code for c in containers}
    rules = session.execute(select(PreservationRule.group_code, PreservationRule.storage_en)
                            .where(PreservationRule.group_code.in_(groups), PreservationRule.method == "")).all()
    needs: dict[str, tuple[Decimal, Decimal]] = {}
    for group_code, storage_en in rules:
        found = storage_range(storage_en)
        if found is not None:
            needs.setdefault(group_code, found)
    warnings = []
    for container in containers:
        need = needs.get(container.group_code)
        if need is None:
            continue
        low, high = need
        ok = (location.temp_min_c is not None and location.temp_max_c is not None
              and low <= location.temp_min_c and location.temp_max_c <= high)
        if not ok:
            kept = temperature_text(location) or "未记录温度"
            kept_en = temperature_text(location) or "no temperature recorded"
            warnings.append((
                f"容器 {container.barcode} 需在 {low:f}–{high:f} °C 保存，而 {location_name(location)} 为 {kept}。",
                f"Container {container.barcode} is to be kept at {low:f}–{high:f} °C; "
                f"{location_name(location)} keeps {kept_en}."))
    return warnings


def take_out(session: Session, actor: User, barcodes: str | Iterable[str], at: Any = None, *, note: str = "",
             client_id: str | None = None) -> MoveResult:
    """An analyst takes containers out of storage (for preparation or analysis): one custody
    event per location, from the location to the analyst."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    moment = lab_input.act_time(session, at, "取出时间", "The time taken out")
    note = lab_input.text(note, "备注（用途）", "The note (purpose)", 500)
    containers = scanned_containers(session, barcodes)
    for container in containers:
        if container.location_id is None:
            raise se.ContainerNotInStorage(barcode=container.barcode, where=_who(session, container))
    result = MoveResult()
    result.events = _move(session, actor, _by_giver(containers), CustodyKind.TAKE_OUT, Party(user_id=actor.id),
                          moment, note, client_id)
    result.moved = containers
    return result


def give_back(session: Session, actor: User, barcodes: str | Iterable[str], at: Any = None, *,
              location_code: str = "", custodian: str = "", note: str = "",
              client_id: str | None = None) -> MoveResult:
    """The analyst gives containers back: straight into a storage location, or to a custodian
    (named by username). Only containers the analyst holds."""
    ensure(session, actor, Permission.CUSTODY_RECORD)
    moment = lab_input.act_time(session, at, "归还时间", "The time given back")
    note = lab_input.text(note, "备注", "The note", 500)
    location_code, custodian = (location_code or "").strip(), (custodian or "").strip()
    if bool(location_code) == bool(custodian):
        raise se.ReturnTargetRequired()
    result = MoveResult()
    if location_code:
        location = location_by_code(session, location_code)
        taker = Party(location_id=location.id)
        result.location = location
    else:
        taker_user = session.scalars(select(User).where(User.username == custodian[:64])).first()
        if taker_user is None or not has_permission(session, taker_user.id, Permission.STORAGE_MANAGE, moment):
            raise se.NotACustodian(name=custodian[:64])
        taker = Party(user_id=taker_user.id)
    containers = scanned_containers(session, barcodes)
    for container in containers:
        if container.holder_id != actor.id:
            raise se.ContainerNotWithYou(barcode=container.barcode, where=_who(session, container))
    if result.location is not None:
        _check_room_for_all(session, result.location, len(containers))
        result.warnings = condition_warnings(session, result.location, containers)
    result.events = _move(session, actor, {Party(user_id=actor.id): containers}, CustodyKind.RETURN, taker, moment,
                          note, client_id)
    result.moved = containers
    if result.location is not None:
        session.refresh(result.location)
    return result


# ---------------------------------------------------------------- where is it


@dataclass
class Whereabouts:
    """Where one container is now and since when (its last custody event; the filling time
    when it has none yet)."""

    container: Container
    location: StorageLocation | None = None
    holder: User | None = None
    place: str = ""
    since: datetime | None = None
    last_kind: str = ""
    parent_barcode: str = ""
    sample: Sample | None = None

    @property
    def location_name(self) -> str:
        return location_name(self.location) if self.location is not None else ""


def whereabouts(session: Session, containers: Sequence[Container], *,
                samples: dict[int, Sample] | None = None) -> list[Whereabouts]:
    """Where each container is: four queries whatever their number (last events, holders,
    locations, parents)."""
    if not containers:
        return []
    ids = [c.id for c in containers]
    latest = (select(CustodyEventContainer.container_id, func.max(CustodyEventContainer.event_id).label("event_id"))
              .where(CustodyEventContainer.container_id.in_(ids)).group_by(CustodyEventContainer.container_id)
              .subquery())
    last = {container_id: event for container_id, event in session.execute(
        select(latest.c.container_id, CustodyEvent).join(CustodyEvent, CustodyEvent.id == latest.c.event_id))}
    holder_ids = {c.holder_id for c in containers if c.holder_id is not None}
    holders = {u.id: u for u in session.scalars(select(User).where(User.id.in_(holder_ids)))} if holder_ids else {}
    location_ids = {c.location_id for c in containers if c.location_id is not None}
    locations = ({loc.id: loc for loc in session.scalars(
        select(StorageLocation).where(StorageLocation.id.in_(location_ids)))} if location_ids else {})
    parent_ids = {c.parent_id for c in containers if c.parent_id is not None}
    parents = (dict(session.execute(select(Container.id, Container.barcode).where(Container.id.in_(parent_ids))).all())
               if parent_ids else {})
    found = []
    for container in containers:
        event = last.get(container.id)
        place = ""
        if container.holder_id is None and container.location_id is None:
            place = event.to_place if event is not None else ""
        found.append(Whereabouts(
            container=container, location=locations.get(container.location_id),
            holder=holders.get(container.holder_id), place=place,
            since=event.occurred_at if event is not None else container.filled_at,
            last_kind=event.kind if event is not None else "",
            parent_barcode=parents.get(container.parent_id, ""),
            sample=(samples or {}).get(container.sample_id)))
    return found


@dataclass
class WhereIs:
    sample: Sample
    scanned: str  # the container barcode scanned ("" when a sample number was given)
    containers: list[Whereabouts]


def containers_of_sample(session: Session, sample: Sample) -> list[Container]:
    """Every container of a sample, aliquots and sub-samples included, in label order."""
    return list(session.scalars(select(Container).where(Container.sample_id == sample.id)
                                .order_by(Container.parent_id.is_not(None), Container.position, Container.id)))


def where_is(session: Session, code: str) -> WhereIs:
    """"Where is sample X" in one scan: a container or aliquot barcode, or a sample number, gives
    every container of the sample with its location or holder and since when."""
    text = (code or "").strip()
    if not text or len(text) > 60:
        raise se.UnknownScanCode(scanned=text[:60] or "—")
    cleaned = clean_container_barcode(text)
    scanned = ""
    if CONTAINER_RE.match(cleaned):
        container = container_by_barcode(session, cleaned)
        sample = session.get(Sample, container.sample_id)
        scanned = container.barcode
    else:
        try:
            sample = sample_by_no(session, text)
        except errors.SampleNotFound:
            raise se.UnknownScanCode(scanned=text) from None
    containers = containers_of_sample(session, sample)
    return WhereIs(sample=sample, scanned=scanned, containers=whereabouts(session, containers))


def location_contents(session: Session, location: StorageLocation, *, page: int = 1,
                      size: int = 50) -> Page[Whereabouts]:
    """The containers in a location with their samples and since when (five queries)."""
    found = paginate(session, select(Container).where(Container.location_id == location.id)
                     .order_by(Container.barcode), page, size)
    samples = ({s.id: s for s in session.scalars(select(Sample).where(
        Sample.id.in_({c.sample_id for c in found.items})))} if found.items else {})
    return Page(whereabouts(session, list(found.items), samples=samples), found.page, found.size, found.total)


# ---------------------------------------------------------------- the sample page


def storage_section(session: Session, sample: Sample) -> Any:
    """What the sample's page shows of this part (None: nothing to show): where each container
    is now, the retention and any disposal request."""
    if sample.state in (SampleState.REGISTERED.value, SampleState.CANCELLED.value):
        return None
    from app.samples.disposal import STATE_NAMES, requests_of_sample

    return {
        "custody_kinds": CUSTODY_KIND_NAMES,
        "disposal_states": {state: names[1] for state, names in STATE_NAMES.items()},
        "containers": whereabouts(session, containers_of_sample(session, sample)),
        "reported_at": sample.reported_at,
        "retain_until": sample.retain_until,
        "disposed_at": sample.disposed_at,
        "disposals": requests_of_sample(session, sample),
    }
