"""The sites JSON API (/api/v1/sites), read-only: the sites with the version in force now
(paginated), and one site with its parameters and the whole version history; `?at=` asks which
version was in force at a moment (what a sample taken then is bound to).

Coordinates travel as strings, exactly as approved (a float cannot carry "30.9543210"); times are
ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.core.auth import DbSession, require
from app.core.moments import parse_moment
from app.core.permissions import Permission
from app.people.models import User
from app.sites import service, views
from app.sites.models import SiteKind, SiteStatus, SiteVersion, SiteVersionParameter

router = APIRouter(tags=["sites"])

BASE = "/api/v1/sites"
MAX_PAGE_SIZE = 200
KINDS = "|".join(k.value for k in SiteKind)
STATUSES = "|".join(s.value for s in SiteStatus)




class ParameterOut(BaseModel):
    parameter: str  # as the preservation table writes it: COD, NH3-N, PM2.5
    frequency: str  # weekly, monthly, bimonthly, quarterly, semiannual, annual


class VersionOut(BaseModel):
    version_no: int
    status: str  # active, suspended, decommissioned
    valid_from: datetime  # in force from (until the next version's valid_from)
    name_zh: str
    name_en: str
    kind: str
    latitude: str  # WGS-84 decimal degrees, as approved
    longitude: str
    water_body: str  # river, lake, reservoir or ""
    basin: str
    district: str
    department: str
    approval_ref: str  # the approving department's reference (文号)
    approved_by: str  # username of the quality manager who approved it
    change_request_id: int
    parameters: list[ParameterOut]


class SiteOut(BaseModel):
    code: str
    status: str  # proposed (no version in force yet), active, suspended, decommissioned
    name_zh: str
    name_en: str
    kind: str | None
    latitude: str | None
    longitude: str | None
    basin: str
    district: str
    version_no: int | None
    valid_from: datetime | None
    change_pending: bool  # a change request awaits decision


class SitePage(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    items: list[SiteOut]


class SiteDetailOut(BaseModel):
    code: str
    status: str  # at `at` (now unless asked)
    at: datetime
    current: VersionOut | None  # the version in force at `at`
    versions: list[VersionOut]  # the whole history, newest first
    open_request_id: int | None




def version_json(version: SiteVersion, parameters: list[SiteVersionParameter], approver: User | None) -> VersionOut:
    return VersionOut(
        version_no=version.version_no, status=version.status, valid_from=version.valid_from,
        name_zh=version.name_zh, name_en=version.name_en, kind=version.kind,
        latitude=views.number(version.latitude), longitude=views.number(version.longitude),
        water_body=version.water_body, basin=version.basin, district=version.district,
        department=version.department, approval_ref=version.approval_ref,
        approved_by=approver.username if approver else "", change_request_id=version.change_request_id,
        parameters=[ParameterOut(parameter=p.parameter, frequency=p.frequency) for p in parameters],
    )


def site_json(row: views.SiteRow) -> SiteOut:
    version = row.version
    return SiteOut(
        code=row.site.code, status=row.status, name_zh=row.name_zh, name_en=row.name_en,
        kind=version.kind if version else None,
        latitude=views.number(version.latitude) if version else None,
        longitude=views.number(version.longitude) if version else None,
        basin=row.get("basin") or "", district=row.get("district") or "",
        version_no=version.version_no if version else None, valid_from=version.valid_from if version else None,
        change_pending=row.pending,
    )


@router.get(BASE, response_model=SitePage)
def api_sites(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    q: str = Query("", max_length=100, description="code, name, basin or district contains"),
    kind: str = Query("", max_length=20, pattern=f"^({KINDS})?$"),
    status: str = Query("", max_length=16, pattern=f"^({STATUSES})?$"),
    user: User = require(Permission.SITES_READ),
) -> SitePage:
    """Sites by code, each with the version in force now (none yet for a proposed site)."""
    per_page = per_page or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    result = views.search_sites(session, q=q, kind=kind, status=status, page=page, size=per_page)
    return SitePage(page=result.page, per_page=result.size, total=result.total, pages=result.pages,
                    items=[site_json(row) for row in result.items])


@router.get(f"{BASE}/{{site_code}}", response_model=SiteDetailOut)
def api_site(
    session: DbSession, site_code: str,
    at: str | None = Query(None, max_length=64, description="ISO 8601 with its offset: which version was in force"),
    user: User = require(Permission.SITES_READ),
) -> SiteDetailOut:
    """The site's version in force (now, or at `at`), its parameters, and every version."""
    moment = parse_moment(at)
    site = service.site_by_code(session, site_code)
    detail = views.site_page(session, site, moment)
    versions = [version_json(e.version, e.parameters, e.approver) for e in detail.history]
    current = next((out for out, e in zip(versions, detail.history, strict=True) if e.in_force), None)
    return SiteDetailOut(
        code=site.code, status=detail.status, at=moment, current=current, versions=versions,
        open_request_id=detail.open_request.id if detail.open_request else None,
    )
