"""Read models of the site pages: the list, a site with its whole version history, the change
requests, one request set against what it would change, and the map (points laid out on a
longitude/latitude grid server-side, so the map needs neither tiles nor JavaScript).

Each costs a fixed number of queries however many sites, versions, parameters or requests there
are (related rows come in one IN query each; tests assert the counts).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.i18n import N_
from app.core.web import Page
from app.people.models import User
from app.sites import service
from app.sites.geo import distance_m
from app.sites.models import (
    ChangeKind,
    ChangeStatus,
    Frequency,
    Site,
    SiteChangeRequest,
    SiteKind,
    SiteStatus,
    SiteVersion,
    SiteVersionParameter,
    WaterBody,
)

KIND_LABELS = {
    SiteKind.SURFACE_WATER.value: N_("Surface-water section"),
    SiteKind.GROUNDWATER.value: N_("Groundwater well"),
    SiteKind.AMBIENT_AIR.value: N_("Ambient-air station"),
    SiteKind.SOURCE_OUTLET.value: N_("Pollution-source outlet"),
    SiteKind.SOIL.value: N_("Soil point"),
    SiteKind.OTHER.value: N_("Other site"),
}
# one colour per kind on the map (Tableau 10: distinguishable, also in print)
KIND_COLOURS = {
    SiteKind.SURFACE_WATER.value: "#1f77b4",
    SiteKind.GROUNDWATER.value: "#17becf",
    SiteKind.AMBIENT_AIR.value: "#ff7f0e",
    SiteKind.SOURCE_OUTLET.value: "#d62728",
    SiteKind.SOIL.value: "#8c564b",
    SiteKind.OTHER.value: "#7f7f7f",
}
STATUS_LABELS = {
    SiteStatus.PROPOSED.value: N_("Proposed, not yet approved"),
    SiteStatus.ACTIVE.value: N_("Active"),
    SiteStatus.SUSPENDED.value: N_("Suspended"),
    SiteStatus.DECOMMISSIONED.value: N_("Decommissioned"),
}
STATUS_TONES = {"proposed": "warn", "active": "good", "suspended": "warn", "decommissioned": "muted"}
WATER_BODY_LABELS = {
    WaterBody.NONE.value: N_("—"),
    WaterBody.RIVER.value: N_("River"),
    WaterBody.LAKE.value: N_("Lake"),
    WaterBody.RESERVOIR.value: N_("Reservoir"),
}
FREQUENCY_LABELS = {
    Frequency.WEEKLY.value: N_("Weekly"),
    Frequency.MONTHLY.value: N_("Monthly"),
    Frequency.BIMONTHLY.value: N_("Every two months"),
    Frequency.QUARTERLY.value: N_("Quarterly"),
    Frequency.SEMIANNUAL.value: N_("Twice a year"),
    Frequency.ANNUAL.value: N_("Yearly"),
}
CHANGE_KIND_LABELS = {
    ChangeKind.CREATE.value: N_("New site"),
    ChangeKind.CHANGE.value: N_("Change"),
    ChangeKind.SUSPEND.value: N_("Suspension"),
    ChangeKind.REACTIVATE.value: N_("Reactivation"),
    ChangeKind.DECOMMISSION.value: N_("Decommissioning"),
}
CHANGE_STATUS_LABELS = {
    ChangeStatus.SUBMITTED.value: N_("Awaiting decision"),
    ChangeStatus.APPROVED.value: N_("Approved"),
    ChangeStatus.REJECTED.value: N_("Rejected"),
    ChangeStatus.WITHDRAWN.value: N_("Withdrawn by the proposer"),
}
CHANGE_STATUS_TONES = {"submitted": "warn", "approved": "good", "rejected": "bad", "withdrawn": "muted"}
FIELD_LABELS = {
    "status": N_("Status"),
    "name_zh": N_("Name (Chinese)"),
    "name_en": N_("Name (English)"),
    "kind": N_("Kind"),
    "latitude": N_("Latitude"),
    "longitude": N_("Longitude"),
    "water_body": N_("Water body"),
    "basin": N_("Basin or river"),
    "district": N_("District"),
    "department": N_("Responsible department"),
    "parameters": N_("Parameters"),
}
REQUEST_FILTERS = ("submitted", "approved", "rejected", "withdrawn", "all")


def number(value: Decimal | None) -> str:
    """A Decimal as approved, never in exponent notation."""
    return "" if value is None else f"{value:f}"


def containing(text: str) -> str:
    """A LIKE pattern for `text` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _users(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def in_force_id(now: datetime) -> Any:
    """The id of each site's version in force at `now`, correlated to Site."""
    return (
        select(SiteVersion.id)
        .where(SiteVersion.site_id == Site.id, SiteVersion.valid_from <= now)
        .order_by(SiteVersion.valid_from.desc(), SiteVersion.version_no.desc())
        .limit(1)
        .correlate(Site)
        .scalar_subquery()
    )


def _latest_proposals(session: Session, site_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The newest proposal of each site (for sites that have no version yet: their name)."""
    if not site_ids:
        return {}
    newest = (select(func.max(SiteChangeRequest.id)).where(SiteChangeRequest.site_id.in_(site_ids))
              .group_by(SiteChangeRequest.site_id))
    rows = session.scalars(select(SiteChangeRequest).where(SiteChangeRequest.id.in_(newest)))
    return {row.site_id: service.proposal_of(row) for row in rows}


# ---------------------------------------------------------------- the list


@dataclass(frozen=True)
class SiteRow:
    site: Site
    version: SiteVersion | None  # in force now
    proposed: dict[str, Any] | None  # a site without a version: what its newest request proposes
    pending: bool  # a change request awaits decision

    @property
    def status(self) -> str:
        return self.version.status if self.version else SiteStatus.PROPOSED.value

    @property
    def name_zh(self) -> str:
        source = self.version or self.proposed
        return (source.name_zh if isinstance(source, SiteVersion) else (source or {}).get("name_zh", "")) or ""

    @property
    def name_en(self) -> str:
        source = self.version or self.proposed
        return (source.name_en if isinstance(source, SiteVersion) else (source or {}).get("name_en", "")) or ""

    def get(self, name: str) -> Any:
        if self.version is not None:
            return getattr(self.version, name)
        return (self.proposed or {}).get(name, "")


def _search(text: str) -> ColumnElement[bool] | None:
    cleaned = text.strip().lower()
    if not cleaned:
        return None
    pattern = containing(cleaned)
    columns = (Site.code, SiteVersion.name_zh, SiteVersion.name_en, SiteVersion.basin, SiteVersion.district)
    return or_(*(func.lower(column).like(pattern, escape="\\") for column in columns))


def _unapproved_matching(session: Session, text: str) -> list[int]:
    """Sites not yet approved whose newest proposal's name, basin or district contains `text`
    (few such sites: their proposals are read and compared here, two queries)."""
    cleaned = text.strip().lower()
    if not cleaned:
        return []
    unapproved = session.scalars(select(Site.id).where(~exists().where(SiteVersion.site_id == Site.id))).all()
    fields = ("name_zh", "name_en", "basin", "district")
    return [site_id for site_id, content in _latest_proposals(session, list(unapproved)).items()
            if any(cleaned in (content.get(name) or "").lower() for name in fields)]


def search_sites(session: Session, *, q: str = "", kind: str = "", status: str = "", page: int = 1, size: int = 50,
                 now: datetime | None = None) -> Page[SiteRow]:
    """Sites by code, name, basin or district, with their kind and status now: count, rows, the
    proposals of sites not yet approved on the page, and two more to search those."""
    now = now or utcnow()
    pending = exists().where(SiteChangeRequest.site_id == Site.id,
                             SiteChangeRequest.status == ChangeStatus.SUBMITTED.value).correlate(Site)
    where: list[Any] = []
    found = _search(q)
    if found is not None:
        proposed = _unapproved_matching(session, q)
        where.append(or_(found, Site.id.in_(proposed)) if proposed else found)
    if kind:
        where.append(SiteVersion.kind == kind)
    if status:
        where.append(func.coalesce(SiteVersion.status, SiteStatus.PROPOSED.value) == status)
    joined = select(Site).outerjoin(SiteVersion, SiteVersion.id == in_force_id(now)).where(*where)
    total = session.scalar(select(func.count()).select_from(joined.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        select(Site, SiteVersion, pending.label("pending"))
        .outerjoin(SiteVersion, SiteVersion.id == in_force_id(now)).where(*where)
        .order_by(Site.code).limit(size).offset((page - 1) * size)
    ).all()
    proposals = _latest_proposals(session, [site.id for site, version, _ in rows if version is None])
    items = [SiteRow(site, version, proposals.get(site.id), bool(waiting)) for site, version, waiting in rows]
    return Page(items, page, size, total)


# ---------------------------------------------------------------- a site and its history


@dataclass(frozen=True)
class ParameterChange:
    parameter: str
    before: str | None  # frequency, None when not monitored
    after: str | None


@dataclass
class VersionEntry:
    version: SiteVersion
    parameters: list[SiteVersionParameter]
    approver: User | None
    request: SiteChangeRequest | None
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, before, after)
    parameter_changes: list[ParameterChange] = field(default_factory=list)
    in_force: bool = False
    upcoming: bool = False  # approved to take effect later


@dataclass
class SiteDetail:
    site: Site
    current: VersionEntry | None
    history: list[VersionEntry]  # newest first
    requests: list[SiteChangeRequest]  # newest first
    people: dict[int, User]
    open_request: SiteChangeRequest | None
    proposed: dict[str, Any] | None  # no version yet: what the newest request proposes

    @property
    def status(self) -> str:
        return self.current.version.status if self.current else SiteStatus.PROPOSED.value


def _field_value(content: dict[str, Any] | SiteVersion, name: str) -> Any:
    return content.get(name) if isinstance(content, dict) else getattr(content, name)


Content = dict[str, Any] | SiteVersion


def field_changes(before: Content, after: Content) -> list[tuple[str, Any, Any]]:
    """The descriptive fields that differ (coordinates compared as numbers)."""
    changes = []
    for name in service.VERSION_FIELDS:
        old, new = _field_value(before, name), _field_value(after, name)
        same = Decimal(old) == Decimal(new) if name in ("latitude", "longitude") else old == new
        if not same:
            changes.append((name, old, new))
    return changes


def parameter_changes(before: Iterable[tuple[str, str]], after: Iterable[tuple[str, str]]) -> list[ParameterChange]:
    """Parameters added, dropped or monitored at another frequency, in the order they appear."""
    old, new = dict(before), dict(after)
    order = list(new) + [p for p in old if p not in new]
    return [ParameterChange(p, old.get(p), new.get(p)) for p in order if old.get(p) != new.get(p)]


def _pairs(parameters: Iterable[SiteVersionParameter]) -> list[tuple[str, str]]:
    return [(p.parameter, p.frequency) for p in parameters]


def site_page(session: Session, site: Site, now: datetime | None = None) -> SiteDetail:
    """The site now, every version with what it changed, and its requests: four queries."""
    now = now or utcnow()
    versions = list(session.scalars(select(SiteVersion).where(SiteVersion.site_id == site.id)
                                    .order_by(SiteVersion.version_no)))
    parameters = service.parameters_of_versions(session, [v.id for v in versions])
    requests = list(session.scalars(select(SiteChangeRequest).where(SiteChangeRequest.site_id == site.id)
                                    .order_by(SiteChangeRequest.id.desc())))
    people = _users(session, [v.approved_by_id for v in versions]
                    + [r.submitted_by_id for r in requests] + [r.decided_by_id for r in requests])
    by_id = {r.id: r for r in requests}
    in_force = max((v for v in versions if v.valid_from <= now), key=lambda v: (v.valid_from, v.version_no),
                   default=None)
    history: list[VersionEntry] = []
    previous: SiteVersion | None = None
    for version in versions:
        entry = VersionEntry(version, parameters[version.id], people.get(version.approved_by_id),
                             by_id.get(version.change_request_id), in_force=version is in_force,
                             upcoming=version.valid_from > now)
        if previous is not None:
            entry.changed = field_changes(previous, version)
            entry.parameter_changes = parameter_changes(_pairs(parameters[previous.id]), _pairs(parameters[version.id]))
        history.append(entry)
        previous = version
    current = next((e for e in history if e.in_force), None)
    open_request = next((r for r in requests if r.status == ChangeStatus.SUBMITTED.value), None)
    proposed = service.proposal_of(requests[0]) if not versions and requests else None
    return SiteDetail(site, current, history[::-1], requests, people, open_request, proposed)


# ---------------------------------------------------------------- change requests


@dataclass(frozen=True)
class RequestRow:
    request: SiteChangeRequest
    site: Site
    proposer: User | None
    decider: User | None
    proposed: dict[str, Any]


def search_requests(session: Session, *, status: str = "submitted", page: int = 1, size: int = 50) -> Page[RequestRow]:
    """Change requests (open ones first in line: oldest first), with their site and people: three
    queries."""
    where = [] if status == "all" else [SiteChangeRequest.status == status]
    total = session.scalar(select(func.count()).select_from(SiteChangeRequest).where(*where)) or 0
    order = SiteChangeRequest.id if status == "submitted" else SiteChangeRequest.id.desc()
    page = max(1, page)
    rows = session.execute(
        select(SiteChangeRequest, Site).join(Site, Site.id == SiteChangeRequest.site_id).where(*where)
        .order_by(order).limit(size).offset((page - 1) * size)
    ).all()
    people = _users(session, [r.submitted_by_id for r, _ in rows] + [r.decided_by_id for r, _ in rows])
    items = [RequestRow(r, s, people.get(r.submitted_by_id), people.get(r.decided_by_id), service.proposal_of(r))
             for r, s in rows]
    return Page(items, page, size, total)


@dataclass(frozen=True)
class Comparison:
    name: str
    before: Any
    after: Any
    changed: bool


@dataclass
class RequestDetail:
    request: SiteChangeRequest
    site: Site
    baseline: SiteVersion | None  # the version the request was made against
    proposed: dict[str, Any]
    fields: list[Comparison]
    parameters: list[tuple[str, str | None, str | None, bool]]  # parameter, before, after, changed
    moved_m: float | None  # how far the proposal moves the site
    proposer: User | None
    decider: User | None
    resulting: SiteVersion | None


def request_page(session: Session, request: SiteChangeRequest) -> RequestDetail:
    """A request beside the version it would replace: the latest version approved before it was
    submitted (one open request per site, so that is exactly what it was made against)."""
    site = session.get(Site, request.site_id)
    baseline = session.scalars(
        select(SiteVersion).where(SiteVersion.site_id == site.id, SiteVersion.created_at <= request.submitted_at)
        .order_by(SiteVersion.version_no.desc()).limit(1)
    ).first()
    resulting = session.get(SiteVersion, request.resulting_version_id) if request.resulting_version_id else None
    before_params = _pairs(service.parameters_of(session, baseline.id)) if baseline else []
    people = _users(session, [request.submitted_by_id, request.decided_by_id])
    proposed = service.proposal_of(request)
    fields = []
    for name in service.VERSION_FIELDS:
        after = proposed[name]
        before = getattr(baseline, name) if baseline else None
        if name in ("latitude", "longitude"):
            changed = before is None or Decimal(before) != Decimal(after)
        else:
            changed = before != after
        fields.append(Comparison(name, before, after, changed))
    old, new = dict(before_params), dict(proposed["parameters"])
    order = list(new) + [p for p in old if p not in new]
    parameters = [(p, old.get(p), new.get(p), old.get(p) != new.get(p)) for p in order]
    moved = None
    if baseline is not None:
        moved = distance_m(baseline.latitude, baseline.longitude, proposed["latitude"], proposed["longitude"])
    return RequestDetail(request, site, baseline, proposed, fields, parameters, moved,
                         people.get(request.submitted_by_id), people.get(request.decided_by_id), resulting)


# ---------------------------------------------------------------- the map


@dataclass(frozen=True)
class MapPoint:
    code: str
    name_zh: str
    name_en: str
    kind: str
    latitude: Decimal
    longitude: Decimal

    @property
    def colour(self) -> str:
        return KIND_COLOURS.get(self.kind, KIND_COLOURS[SiteKind.OTHER.value])


def active_sites(session: Session, now: datetime | None = None) -> list[MapPoint]:
    """Every site active now, at its approved position: one query."""
    now = now or utcnow()
    rows = session.execute(
        select(Site.code, SiteVersion.name_zh, SiteVersion.name_en, SiteVersion.kind, SiteVersion.latitude,
               SiteVersion.longitude)
        .join(SiteVersion, SiteVersion.id == in_force_id(now))
        .where(SiteVersion.status == SiteStatus.ACTIVE.value)
        .order_by(Site.code)
    ).all()
    return [MapPoint(*row) for row in rows]


def points_json(points: Sequence[MapPoint], pick: Any) -> str:
    """The points for the Leaflet map, coordinates as strings (exactly as approved), safe inside a
    <script type="application/json"> element."""
    return json.dumps([
        {"code": p.code, "name": pick(p.name_zh, p.name_en), "kind": p.kind, "lat": number(p.latitude),
         "lon": number(p.longitude), "colour": p.colour, "url": f"/sites/{p.code}"}
        for p in points
    ], ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")  # never ends its <script>


@dataclass(frozen=True)
class GridLine:
    position: float  # x for a meridian, y for a parallel (SVG units)
    label: str


@dataclass(frozen=True)
class PlacedPoint:
    point: MapPoint
    x: float
    y: float


@dataclass(frozen=True)
class GridMap:
    """Points on an equirectangular longitude/latitude grid, in SVG units."""

    width: float
    height: float
    left: float
    top: float
    plot_width: float
    plot_height: float
    meridians: list[GridLine]
    parallels: list[GridLine]
    points: list[PlacedPoint]


PLOT_WIDTH = 640.0
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70.0, 70.0, 14.0, 30.0
MIN_RATIO, MAX_RATIO = 0.45, 1.1  # plot height / width
MIN_SPAN = 0.01  # degrees: a single site still gets a grid around it


def nice_step(span: float, lines: int = 5) -> float:
    """A grid step of 1, 2 or 5 times a power of ten giving about `lines` lines over `span`."""
    raw = span / lines
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _degrees(value: float, step: float, positive: str, negative: str) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{abs(value):.{decimals}f}"
    hemisphere = positive if value > 0 else negative if value < 0 else ""
    return f"{text}°{hemisphere}"


def _grid(low: float, high: float, step: float) -> list[float]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(n * step, 10) for n in range(first, last + 1)]


def grid_map(points: Sequence[MapPoint]) -> GridMap | None:
    """Lay the points out with the same scale in both directions (longitude shrunk by the cosine
    of the latitude, so distances look right), padded, on round-numbered grid lines."""
    if not points:
        return None
    lats = [float(p.latitude) for p in points]
    lons = [float(p.longitude) for p in points]
    mid_lat = (min(lats) + max(lats)) / 2
    shrink = max(math.cos(math.radians(mid_lat)), 0.05)
    lat_span = max(max(lats) - min(lats), MIN_SPAN) * 1.16
    lon_span = max(max(lons) - min(lons), MIN_SPAN) * 1.16
    # keep the plot between flat and tall: widen the narrower direction around its centre
    if lat_span / (lon_span * shrink) > MAX_RATIO:
        lon_span = lat_span / (MAX_RATIO * shrink)
    elif lat_span / (lon_span * shrink) < MIN_RATIO:
        lat_span = lon_span * shrink * MIN_RATIO
    lat_mid, lon_mid = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    south, north = lat_mid - lat_span / 2, lat_mid + lat_span / 2
    west, east = lon_mid - lon_span / 2, lon_mid + lon_span / 2
    scale = PLOT_WIDTH / (lon_span * shrink)
    plot_height = lat_span * scale

    def x_of(lon: float) -> float:
        return round(MARGIN_LEFT + (lon - west) * shrink * scale, 1)

    def y_of(lat: float) -> float:
        return round(MARGIN_TOP + (north - lat) * scale, 1)

    lat_step, lon_step = nice_step(lat_span, 6), nice_step(lon_span, 8)
    meridians = [GridLine(x_of(lon), _degrees(lon, lon_step, "E", "W")) for lon in _grid(west, east, lon_step)]
    parallels = [GridLine(y_of(lat), _degrees(lat, lat_step, "N", "S")) for lat in _grid(south, north, lat_step)]
    placed = [PlacedPoint(p, x_of(float(p.longitude)), y_of(float(p.latitude))) for p in points]
    return GridMap(
        width=MARGIN_LEFT + PLOT_WIDTH + MARGIN_RIGHT, height=round(MARGIN_TOP + plot_height + MARGIN_BOTTOM, 1),
        left=MARGIN_LEFT, top=MARGIN_TOP, plot_width=PLOT_WIDTH, plot_height=round(plot_height, 1),
        meridians=meridians, parallels=parallels, points=placed,
    )
