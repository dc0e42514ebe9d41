"""Automatic-station data: the page (imports and the latest readings, filtered by site and
parameter, with the upload form), the upload, and the JSON API. Routes parse and call one service
(app.oversight.stations); a refused upload re-renders the page with every bad line named."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import attempt, pager_base, query_string, render, see_other
from app.oversight import station_errors as errors
from app.oversight import stations
from app.oversight.models import StationImport
from app.people.models import User

router = APIRouter()

PAGE = "/oversight/stations"
API = "/api/v1/station-readings"
MAX_PAGE_SIZE = 200
IMPORTS_SHOWN = 10
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Filter = Annotated[str, Query(max_length=60)]


def _read_upload(upload: UploadFile | None, limit: int) -> tuple[str, bytes]:
    """The file's name and at most the limit plus one byte (the service refuses what is larger)."""
    if upload is None or isinstance(upload, str) or not (upload.filename or "").strip():
        raise errors.StationFileEmpty()
    return upload.filename or "stations.csv", upload.file.read(limit + 1)


def _page(request: Request, session: Session, site: str = "", parameter: str = "", page: int = 1,
          ipage: int = 1, *, error: DomainError | None = None, imported: int | None = None) -> Response:
    size = request.app.state.settings.page_size
    f = stations.ReadingFilter(site_code=site, parameter=parameter)
    params = {"site": site, "parameter": parameter}
    sites, parameters = stations.filter_choices(session)
    context: dict[str, Any] = {
        "readings": stations.list_readings(session, f, page, size),
        "imports": stations.list_imports(session, ipage, IMPORTS_SHOWN),
        "filters": params, "sites": sites, "parameters": parameters,
        "pager_base": pager_base(PAGE, {**params, "ipage": ipage if ipage > 1 else ""}),
        "imports_base": pager_base(PAGE, {**params, "page": page if page > 1 else ""}),
        "max_mb": stations.MAX_BYTES // (1024 * 1024), "imported": imported,
        "query": query_string(params),
    }
    if error is not None:
        language = current_language()
        context.update(refused=True, code=error.code, detail=error.message(language),
                       errors=[{"message": p.text(language)} for p in getattr(error, "problems", [])[:200]])
    return render(request, "oversight/stations.html", context, block="readings",
                  status_code=error.http_status if error else 200)


@router.get(PAGE, include_in_schema=False)
def station_page(request: Request, session: DbSession, site: Filter = "", parameter: Filter = "",
                 page: PageNo = 1, ipage: PageNo = 1, imported: int | None = Query(None, ge=1, le=2**31),
                 user: User = require(Permission.ALARMS_READ)):
    return _page(request, session, site, parameter, page, ipage, imported=imported)


@router.post(f"{PAGE}/import", include_in_schema=False)
def station_upload(request: Request, session: DbSession, file: Annotated[UploadFile | None, File()] = None,
                   user: User = require(Permission.STATION_DATA_IMPORT)):
    def act() -> StationImport:
        filename, content = _read_upload(file, stations.MAX_BYTES)
        return stations.import_station_csv(session, user, filename, content)

    done, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _page(request, session, error=error)
    return see_other(request, f"{PAGE}?imported={done.id}")


# ---------------------------------------------------------------- JSON API


class ReadingOut(BaseModel):
    id: int
    site_code: str
    parameter: str
    measured_at: datetime
    value: str
    unit: str
    import_id: int


class ReadingPage(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    items: list[ReadingOut]


class ImportOut(BaseModel):
    id: int
    sha256: str
    rows: int
    imported_at: datetime
    imported_by: str


@router.get(API, response_model=ReadingPage, tags=["stations"])
def api_readings(request: Request, session: DbSession, site: Filter = "", parameter: Filter = "",
                 since: datetime | None = None, until: datetime | None = None, page: PageNo = 1,
                 per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
                 user: User = require(Permission.ALARMS_READ)) -> ReadingPage:
    """Automatic-station readings, the latest first; filter by site code, parameter and time
    (ISO 8601, `since` included, `until` excluded)."""
    if (since and since.tzinfo is None) or (until and until.tzinfo is None):
        raise InvalidInput(detail="since/until need a time zone offset (e.g. 2026-12-01T08:00:00+08:00)")
    size = per_page or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    found = stations.list_readings(session, stations.ReadingFilter(site, parameter, since, until), page, size)
    return ReadingPage(page=found.page, per_page=found.size, total=found.total, pages=found.pages, items=[
        ReadingOut(id=r.reading.id, site_code=r.site_code, parameter=r.reading.parameter,
                   measured_at=r.reading.measured_at, value=format(r.reading.value, "f"), unit=r.reading.unit,
                   import_id=r.reading.import_id) for r in found.items])


@router.post(f"{API}/import", status_code=201, response_model=ImportOut, tags=["stations"])
def api_import(request: Request, session: DbSession, file: UploadFile = File(description="the CSV, at most 20 MB"),
               user: User = require(Permission.STATION_DATA_IMPORT)) -> Any:
    """Import a CSV of station readings (multipart/form-data): all lines or none. A refusal of
    bad lines lists each one under `errors` (line, column, code, message)."""
    try:
        with committing(session):
            filename, content = _read_upload(file, stations.MAX_BYTES)
            done = stations.import_station_csv(session, user, filename, content)
    except errors.StationRowsRefused as refused:
        language = current_language()
        return JSONResponse({
            "type": f"urn:envirolims:error:{refused.code}", "title": refused.message(language),
            "status": refused.http_status, "detail": refused.message(language), "code": refused.code,
            "instance": request.url.path,
            "errors": [{**p.as_json(), "message": p.text(language)} for p in refused.problems]},
            status_code=refused.http_status, media_type="application/problem+json")
    return ImportOut(id=done.id, sha256=done.sha256, rows=done.rows, imported_at=done.imported_at,
                     imported_by=user.username)


add_nav(NavItem("stations", N_("Automatic stations"), PAGE, Permission.ALARMS_READ, 77))
