"""Pages of monitoring sites: the searchable list, the map, a site with its version history,
proposing a site or a change (or a suspension, reactivation, decommissioning), the change
requests awaiting decision and one request beside the version it would replace, with approval
(the approving department's reference), rejection (a note) and withdrawal by its proposer.

Routes are thin: parse the form (times are the lab's wall-clock time), call one service inside
`committing(session)`; a refusal renders the same page with its message and what was typed
(nothing saved); success redirects (see other).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import i18n
from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput, NotAuthenticated, PermissionDenied
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import pager_base, render, see_other
from app.people.models import User
from app.samples.models import PreservationRule
from app.sites import errors, service, views
from app.sites.models import ChangeKind, ChangeStatus, Frequency, Site, SiteKind, SiteStatus, WaterBody

router = APIRouter()

BASE = "/sites"
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
SiteCode = Annotated[str, Path(max_length=64)]
Short = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=1000)]
Coordinate = Annotated[str, Form(max_length=40)]
Choice = Annotated[str, Form(max_length=40)]
Rows = Annotated[list[str], Form(max_length=service.MAX_PARAMETERS + 20)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Search = Annotated[str, Query(max_length=100)]
KINDS = "|".join(k.value for k in SiteKind)
STATUSES = "|".join(s.value for s in SiteStatus)
SPARE_PARAMETER_ROWS = 3
MIN_PARAMETER_ROWS = 6
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


class MalformedMoment(InvalidInput):
    code = "malformed_datetime"
    message_zh = "生效时间不是有效的日期时间（如 2026-03-18T09:30，实验室当地时间）：{value}"
    message_en = "The effective time is not a valid date and time (e.g. 2026-03-18T09:30, lab time): {value}"


# ---------------------------------------------------------------- helpers


def parse_effective(session: Session, text: str) -> datetime | None:
    """A datetime-local field in the lab's time (blank: the decision's own time), as UTC."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        if not DATETIME_RE.match(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
        if not 1900 <= parsed.year <= 2999:
            raise ValueError(value)
    except ValueError:
        raise MalformedMoment(value=value[:32]) from None
    return parsed.replace(tzinfo=lab_calendar(session).tz).astimezone(UTC)


def shown_in_page(error: DomainError) -> bool:
    """Input the form can fix is shown beside it; who-may refusals and unknown objects get the
    error page."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status in (409, 422)


def attempt(act: Callable[[], Any]) -> tuple[Any, DomainError | None]:
    try:
        return act(), None
    except DomainError as error:
        if not shown_in_page(error):
            raise
        return None, error


def labels() -> dict[str, Any]:
    """What templates need to name kinds, statuses, frequencies and fields in the reader's language."""
    return {
        "kind_labels": views.KIND_LABELS, "kind_colours": views.KIND_COLOURS, "status_labels": views.STATUS_LABELS,
        "status_tones": views.STATUS_TONES, "water_body_labels": views.WATER_BODY_LABELS,
        "frequency_labels": views.FREQUENCY_LABELS, "change_kind_labels": views.CHANGE_KIND_LABELS,
        "change_status_labels": views.CHANGE_STATUS_LABELS, "change_status_tones": views.CHANGE_STATUS_TONES,
        "field_labels": views.FIELD_LABELS, "num": views.number,
    }


def page_of(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
            fields: dict[str, str] | None = None, block: str | None = None) -> Response:
    refusal = {}
    if error is not None:
        refusal = {"refused": True, "code": error.code, "detail": error.message(current_language()),
                   "error_field": (fields or {}).get(error.code, "")}
    return render(request, template, {**labels(), **context, **refusal}, block=block,
                  status_code=error.http_status if error else 200)


def site_url(code: str) -> str:
    return f"{BASE}/{code}"


def request_url(request_id: int) -> str:
    return f"{BASE}/requests/{request_id}"




def parameter_choices(session: Session) -> list[tuple[str, list[PreservationRule]]]:
    """The preservation table's parameters, grouped by matrix, for the parameter selects."""
    rules = session.scalars(select(PreservationRule).where(PreservationRule.method == "")
                            .order_by(PreservationRule.matrix.desc(), PreservationRule.id)).all()
    groups: dict[str, list[PreservationRule]] = {}
    for rule in rules:
        groups.setdefault(rule.matrix, []).append(rule)
    return list(groups.items())


# ---------------------------------------------------------------- the site form


@dataclass
class SiteForm:
    """A proposal as typed (strings), so a refused form comes back as it was."""

    code: str = ""
    name_zh: str = ""
    name_en: str = ""
    kind: str = SiteKind.SURFACE_WATER.value
    latitude: str = ""
    longitude: str = ""
    water_body: str = ""
    basin: str = ""
    district: str = ""
    department: str = ""
    parameters: list[tuple[str, str]] = field(default_factory=list)

    def proposal(self) -> service.SiteProposal:
        return service.SiteProposal(
            name_zh=self.name_zh, name_en=self.name_en, kind=self.kind,
            latitude=service.parse_coordinate(self.latitude, "latitude"),
            longitude=service.parse_coordinate(self.longitude, "longitude"),
            water_body=self.water_body, basin=self.basin, district=self.district, department=self.department,
            parameters=[(p, f) for p, f in self.parameters if p.strip()],
        )

    def rows(self) -> list[tuple[str, str]]:
        """The parameter rows as typed, then blank rows (a few spare ones at least)."""
        kept = [(p, f) for p, f in self.parameters if p.strip() or f.strip()]
        spare = max(SPARE_PARAMETER_ROWS, MIN_PARAMETER_ROWS - len(kept))
        return kept + [("", Frequency.MONTHLY.value)] * spare

    @classmethod
    def of(cls, content: dict[str, Any], code: str = "") -> SiteForm:
        return cls(code, content["name_zh"], content["name_en"], content["kind"], views.number(content["latitude"]),
                   views.number(content["longitude"]), content["water_body"], content["basin"], content["district"],
                   content["department"], [(p, f) for p, f in content["parameters"]])


def site_form(code: str, name_zh: str, name_en: str, kind: str, latitude: str, longitude: str, water_body: str,
              basin: str, district: str, department: str, parameter: list[str], frequency: list[str]) -> SiteForm:
    pairs = [(p, frequency[i] if i < len(frequency) else "") for i, p in enumerate(parameter)]
    return SiteForm(code, name_zh, name_en, kind, latitude, longitude, water_body, basin, district, department, pairs)


FORM_FIELDS = {
    "malformed_site_code": "code", "reserved_site_code": "code", "duplicate_site_code": "code",
    "bad_coordinate": "coordinates", "coordinate_out_of_range": "coordinates", "coordinate_too_precise": "coordinates",
    "unknown_parameter": "parameters", "duplicate_site_parameter": "parameters", "parameter_not_for_kind": "parameters",
    "too_many_site_parameters": "parameters", "site_reason_required": "reason", "site_nothing_changed": "parameters",
}


def _form_page(request: Request, session: Session, form: SiteForm, *, site: Site | None = None,
               detail: views.SiteDetail | None = None, request_kind: str = "change", reason: str = "",
               error: DomainError | None = None) -> Response:
    status = detail.status if detail else SiteStatus.PROPOSED.value
    allowed = [k for k, froms in service.ALLOWED_FROM.items() if SiteStatus(status) in froms]
    return page_of(request, "sites/form.html", {
        "form": form, "site": site, "detail": detail, "reason": reason, "request_kind": request_kind,
        "allowed_kinds": [k.value for k in allowed], "choices": parameter_choices(session),
        "kinds": [k.value for k in SiteKind], "water_bodies": [w.value for w in WaterBody],
        "frequencies": [f.value for f in Frequency], "tab": "sites",
    }, error=error, fields=FORM_FIELDS)


# ---------------------------------------------------------------- the list and the map


@router.get(BASE, include_in_schema=False)
def site_list(request: Request, session: DbSession, q: Search = "",
              kind: Annotated[str, Query(pattern=f"^({KINDS})?$")] = "",
              status: Annotated[str, Query(pattern=f"^({STATUSES})?$")] = "", page: PageNo = 1,
              user: User = require(Permission.SITES_READ)):
    size = request.app.state.settings.page_size
    result = views.search_sites(session, q=q, kind=kind, status=status, page=page, size=size)
    params = {"q": q.strip(), "kind": kind, "status": status}
    return page_of(request, "sites/list.html", {
        "page": result, "filters": params, "pager_base": pager_base(BASE, params), "tab": "sites",
        "kinds": [k.value for k in SiteKind], "statuses": [s.value for s in SiteStatus],
    }, block="results")


@router.get(f"{BASE}/map", include_in_schema=False)
def site_map(request: Request, session: DbSession, user: User = require(Permission.SITES_READ)):
    """Every active site: on tiles with Leaflet when a tile server is configured, else drawn
    server-side on a longitude/latitude grid (labs often run offline; works without JavaScript)."""
    settings = request.app.state.settings
    points = views.active_sites(session)
    tiles = settings.map_tile_url.strip()
    kinds_shown = sorted({p.kind for p in points}, key=[k.value for k in SiteKind].index)
    return page_of(request, "sites/map.html", {
        "points": points, "tile_url": tiles, "attribution": settings.map_tile_attribution,
        "grid": None if tiles else views.grid_map(points), "tab": "map", "kinds_shown": kinds_shown,
        "points_json": views.points_json(points, i18n.pick) if tiles else "",
    })


# ---------------------------------------------------------------- proposing a site


@router.get(f"{BASE}/new", include_in_schema=False)
def new_site(request: Request, session: DbSession, user: User = require(Permission.SITES_MANAGE)):
    return _form_page(request, session, SiteForm(), request_kind="create")


@router.post(f"{BASE}/new", include_in_schema=False)
def propose_site(request: Request, session: DbSession, code: Choice = "", name_zh: Short = "", name_en: Short = "",
                 kind: Choice = "", latitude: Coordinate = "", longitude: Coordinate = "", water_body: Choice = "",
                 basin: Short = "", district: Short = "", department: Short = "", parameter: Rows = [],  # noqa: B006
                 frequency: Rows = [], reason: Text = "", user: User = require(Permission.SITES_MANAGE)):  # noqa: B006
    form = site_form(code, name_zh, name_en, kind, latitude, longitude, water_body, basin, district, department,
                     parameter, frequency)

    def act() -> str:
        try:
            with committing(session):
                change = service.propose_site(session, user, code=form.code, proposal=form.proposal(), reason=reason)
                return session.get(Site, change.site_id).code
        except IntegrityError:  # proposed by someone else between the check and the insert
            raise errors.DuplicateSiteCode(site_code=form.code.strip().upper()) from None

    site_code, error = attempt(act)
    if error is not None:
        return _form_page(request, session, form, request_kind="create", reason=reason, error=error)
    return see_other(request, site_url(site_code))


# ---------------------------------------------------------------- change requests


@router.get(f"{BASE}/requests", include_in_schema=False)
def request_list(request: Request, session: DbSession,
                 status: Annotated[str, Query(pattern=f"^({'|'.join(views.REQUEST_FILTERS)})?$")] = "",
                 page: PageNo = 1, user: User = require(Permission.SITES_READ)):
    """Open requests, oldest first: the quality manager's worklist; decided ones on request."""
    size = request.app.state.settings.page_size
    shown = status or ChangeStatus.SUBMITTED.value
    result = views.search_requests(session, status=shown, page=page, size=size)
    params = {"status": status}
    return page_of(request, "sites/requests.html", {
        "page": result, "filters": {"status": shown}, "pager_base": pager_base(f"{BASE}/requests", params),
        "tab": "requests", "request_filters": views.REQUEST_FILTERS,
    }, block="results")


DECISION_FIELDS = {"site_decision_ref_required": "decision_ref", "site_rejection_note_required": "note",
                   "site_change_retroactive": "effective_from", "site_change_before_latest": "effective_from",
                   "malformed_datetime": "effective_from", "site_field_too_long": "note"}


def _request_page(request: Request, session: Session, request_id: int, *, action: str = "",
                  form: dict[str, str] | None = None, error: DomainError | None = None) -> Response:
    change = service.request_by_id(session, request_id)
    detail = views.request_page(session, change)
    user = request.state.user
    permissions = request.state.permissions
    is_open = change.status == ChangeStatus.SUBMITTED.value
    return page_of(request, "sites/request.html", {
        "view": detail, "change": change, "action": action, "form": form or {}, "tab": "requests",
        "can_decide": is_open and Permission.SITES_APPROVE in permissions and change.submitted_by_id != user.id,
        "own_request": change.submitted_by_id == user.id,
        "can_withdraw": is_open and Permission.SITES_MANAGE in permissions and change.submitted_by_id == user.id,
    }, error=error, fields=DECISION_FIELDS)


@router.get(f"{BASE}/requests/{{site_request_id}}", include_in_schema=False)
def request_page(request: Request, session: DbSession, site_request_id: RowId,
                 user: User = require(Permission.SITES_READ)):
    return _request_page(request, session, site_request_id)


def _decide(request: Request, session: Session, request_id: int, action: str, form: dict[str, str],
            act: Callable[[Any], None]) -> Response:
    change = service.request_by_id(session, request_id)

    def run() -> None:
        act(change)

    _, error = attempt(run)
    if error is not None:
        return _request_page(request, session, request_id, action=action, form=form, error=error)
    return see_other(request, request_url(request_id))


@router.post(f"{BASE}/requests/{{site_request_id}}/approve", include_in_schema=False)
def approve_request(request: Request, session: DbSession, site_request_id: RowId, decision_ref: Short = "",
                    note: Text = "", effective_from: Choice = "", user: User = require(Permission.SITES_APPROVE)):
    def act(change: Any) -> None:
        when = parse_effective(session, effective_from)
        with committing(session):
            service.decide_change(session, user, change, approve=True, decision_ref=decision_ref, note=note,
                                  effective_from=when)

    form = {"decision_ref": decision_ref, "note": note, "effective_from": effective_from}
    return _decide(request, session, site_request_id, "approve", form, act)


@router.post(f"{BASE}/requests/{{site_request_id}}/reject", include_in_schema=False)
def reject_request(request: Request, session: DbSession, site_request_id: RowId, decision_ref: Short = "",
                   note: Text = "", user: User = require(Permission.SITES_APPROVE)):
    def act(change: Any) -> None:
        with committing(session):
            service.decide_change(session, user, change, approve=False, decision_ref=decision_ref, note=note)

    return _decide(request, session, site_request_id, "reject", {"decision_ref": decision_ref, "note": note}, act)


@router.post(f"{BASE}/requests/{{site_request_id}}/withdraw", include_in_schema=False)
def withdraw_request(request: Request, session: DbSession, site_request_id: RowId, note: Text = "",
                     user: User = require(Permission.SITES_MANAGE)):
    def act(change: Any) -> None:
        with committing(session):
            service.withdraw_change(session, user, change, note)

    return _decide(request, session, site_request_id, "withdraw", {"note": note}, act)


# ---------------------------------------------------------------- one site


@router.get(f"{BASE}/{{site_code}}", include_in_schema=False)
def site_page(request: Request, session: DbSession, site_code: SiteCode,
              user: User = require(Permission.SITES_READ)):
    site = service.site_by_code(session, site_code)
    if site.code != site_code:  # typed in lower case: the canonical address
        return see_other(request, site_url(site.code))
    detail = views.site_page(session, site)
    return page_of(request, "sites/detail.html", {"view": detail, "site": site, "tab": "sites"})


def _change_form(request: Request, session: Session, site: Site, *, form: SiteForm | None = None,
                 request_kind: str = "", reason: str = "", error: DomainError | None = None) -> Response:
    detail = views.site_page(session, site)
    if form is None:
        latest = detail.history[0] if detail.history else None
        content = service.version_content(latest.version, latest.parameters) if latest else detail.proposed
        form = SiteForm.of(content, site.code) if content else SiteForm(code=site.code)
    if not request_kind:
        request_kind = ChangeKind.CHANGE.value if detail.history else ChangeKind.CREATE.value
    return _form_page(request, session, form, site=site, detail=detail, request_kind=request_kind, reason=reason,
                      error=error)


@router.get(f"{BASE}/{{site_code}}/change", include_in_schema=False)
def change_form(request: Request, session: DbSession, site_code: SiteCode,
                kind: Annotated[str, Query(pattern=f"^({'|'.join(k.value for k in ChangeKind)})?$")] = "",
                user: User = require(Permission.SITES_MANAGE)):
    """The form pre-filled with the latest approved version (or the last proposal of a site that
    has none yet)."""
    return _change_form(request, session, service.site_by_code(session, site_code), request_kind=kind)


@router.post(f"{BASE}/{{site_code}}/change", include_in_schema=False)
def propose_change(request: Request, session: DbSession, site_code: SiteCode, request_kind: Choice = "",
                   name_zh: Short = "", name_en: Short = "", kind: Choice = "", latitude: Coordinate = "",
                   longitude: Coordinate = "", water_body: Choice = "", basin: Short = "", district: Short = "",
                   department: Short = "", parameter: Rows = [], frequency: Rows = [],  # noqa: B006
                   reason: Text = "", user: User = require(Permission.SITES_MANAGE)):
    site = service.site_by_code(session, site_code)
    site_code = site.code
    form = site_form(site_code, name_zh, name_en, kind, latitude, longitude, water_body, basin, district, department,
                     parameter, frequency)

    def act() -> int:
        with_data = request_kind in (ChangeKind.CHANGE.value, ChangeKind.CREATE.value)
        with committing(session):
            change = service.propose_change(session, user, site, kind=request_kind,
                                            proposal=form.proposal() if with_data else None, reason=reason)
            return change.id

    request_id, error = attempt(act)
    if error is not None:
        site = service.site_by_code(session, site_code)
        shown = form if request_kind in (ChangeKind.CHANGE.value, ChangeKind.CREATE.value) else None
        return _change_form(request, session, site, form=shown, request_kind=request_kind, reason=reason,
                            error=error)
    return see_other(request, request_url(request_id))


# ---------------------------------------------------------------- shell contributions


def _scan_site(session: Session, user: User, permissions: frozenset[Permission], code: str) -> ScanHit | None:
    """A site code typed or scanned into the scan box opens the site."""
    text = code.strip().upper()
    if Permission.SITES_READ not in permissions or not service.SITE_CODE_RE.match(text):
        return None
    found = session.scalar(select(Site.code).where(Site.code == text))
    return ScanHit(site_url(found), found) if found else None


def _open_requests(session: Session, user: User) -> int:
    return service.count_open_requests(session)


add_nav(NavItem("sites", N_("Sites"), BASE, Permission.SITES_READ, 20))
add_worklist(Worklist("site_requests", N_("Site change requests awaiting decision"), Permission.SITES_APPROVE,
                      f"{BASE}/requests", _open_requests, 20))
add_scan_resolver("site_code", _scan_site)
