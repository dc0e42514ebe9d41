"""Pages of evaluation standards (limit sets) and the evaluation of results and samples.

`/limits` lists the standards with their versions (htmx filter by kind); `/limits/{code}` shows a
version's table (parameters × classes) with its source; the technical manager loads the built-in
standards, imports a discharge permit's limits from a CSV file and assigns sites their standard
and target class (`/limits/sites`). Routes parse, call one service, render; a refusal re-renders
the form with its message and what was typed (nothing saved); a success redirects (post/redirect/get).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import evaluation, limits
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import NavItem, PageSection, add_nav, add_sample_section
from app.core.web import Page, attempt, pager_base, render, see_other
from app.people.models import User

router = APIRouter()

BASE = "/limits"
Code = Annotated[str, Path(max_length=60)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=200)]

KIND_NAMES = {limits.LimitKind.SURFACE_WATER: N_("Surface water"), limits.LimitKind.AMBIENT_AIR: N_("Ambient air"),
              limits.LimitKind.DISCHARGE: N_("Discharge permit")}
WATER_BODY_NAMES = {"river": N_("rivers"), "lake": N_("lakes and reservoirs")}
AVERAGING_NAMES = {"1h": N_("1-hour mean"), "8h": N_("daily maximum 8-hour mean"), "24h": N_("24-hour mean"),
                   "annual": N_("annual mean")}
KIND_PATTERN = f"^({'|'.join(limits.KINDS)})?$"




def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    permissions = getattr(request.state, "permissions", frozenset())
    full = {"kind_names": KIND_NAMES, "water_body_names": WATER_BODY_NAMES, "averaging_names": AVERAGING_NAMES,
            "can_manage": Permission.METHODS_MANAGE in permissions, "quote": lambda code: quote(code, safe=""),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def limit_set_list(request: Request, session: DbSession, kind: Annotated[str, Query(pattern=KIND_PATTERN)] = "",
                   page: PageNo = 1, user: User = require(Permission.ANALYSIS_READ)):
    """The standards with their versions; filtered by kind (htmx: the results only)."""
    size = request.app.state.settings.page_size
    lines, total = limits.list_limit_sets(session, kind=kind, page=page, size=size)
    params = {"kind": kind}
    can_manage = Permission.METHODS_MANAGE in getattr(request.state, "permissions", frozenset())
    return show(request, "limits/list.html", {
        "page": Page(lines, page, size, total), "filters": params, "pager_base": pager_base(BASE, params),
        "kinds": limits.KINDS, "builtin_changes": limits.builtin_changes(session) if can_manage else []},
        block="results")


@router.post(f"{BASE}/builtin", include_in_schema=False)
def load_builtins(request: Request, session: DbSession, user: User = require(Permission.METHODS_MANAGE)):
    """Load the standards shipped with the application (once; a changed file is a new version)."""
    _, error = attempt(session, lambda: limits.load_builtin_limit_sets(session, user))
    if error is not None:
        session.expire_all()
        size = request.app.state.settings.page_size
        lines, total = limits.list_limit_sets(session, size=size)
        return show(request, "limits/list.html", {
            "page": Page(lines, 1, size, total), "filters": {"kind": ""}, "pager_base": pager_base(BASE, {}),
            "kinds": limits.KINDS, "builtin_changes": limits.builtin_changes(session)}, error=error)
    return see_other(request, BASE)


# ---------------------------------------------------------------- a permit's limits


def _import_form(**values: str) -> dict[str, str]:
    return {"code": "", "name": "", "valid_from": "", "source": "", **values}


@router.get(f"{BASE}/import", include_in_schema=False)
def import_form(request: Request, session: DbSession, user: User = require(Permission.METHODS_MANAGE)):
    return show(request, "limits/import.html", {"form": _import_form(), "max_kb": limits.MAX_FILE_BYTES // 1024})


@router.post(f"{BASE}/import", include_in_schema=False)
def import_permit(request: Request, session: DbSession, code: Small = "", name: Small = "", valid_from: Small = "",
                  source: Small = "", file: Annotated[UploadFile | None, File()] = None,
                  user: User = require(Permission.METHODS_MANAGE)):
    form = _import_form(code=code, name=name, valid_from=valid_from, source=source)
    data = b""
    if file is not None and not isinstance(file, str):
        data = file.file.read(limits.MAX_FILE_BYTES + 1)
    loaded, error = attempt(session, lambda: limits.import_permit_limits(session, user, code, name, data,
                                                                         valid_from=valid_from, source=source))
    if error is not None:
        return show(request, "limits/import.html", {"form": form, "max_kb": limits.MAX_FILE_BYTES // 1024},
                    error=error)
    return see_other(request, f"{BASE}/{quote(loaded.code, safe='')}")


# ---------------------------------------------------------------- sites


def _sites_page(request: Request, session: Session, *, form: dict[str, str] | None = None,
                error: DomainError | None = None) -> Response:
    lines, _ = limits.list_limit_sets(session, size=200)
    return show(request, "limits/sites.html", {
        "assignments": limits.site_assignments(session), "sites": limits.assignable_sites(session),
        "sets": [line.latest for line in lines], "classes": {line.code: json.loads(line.latest.classes)
                                                             for line in lines},
        "form": form or {"site": "", "limit_set_code": "", "target_class": ""}}, error=error)


@router.get(f"{BASE}/sites", include_in_schema=False)
def site_list(request: Request, session: DbSession, user: User = require(Permission.ANALYSIS_READ)):
    """Which standard evaluates each site, and the class it should meet."""
    return _sites_page(request, session)


@router.post(f"{BASE}/sites", include_in_schema=False)
def assign_site(request: Request, session: DbSession, site: Small = "", limit_set_code: Small = "",
                target_class: Small = "", user: User = require(Permission.METHODS_MANAGE)):
    form = {"site": site, "limit_set_code": limit_set_code, "target_class": target_class}
    _, error = attempt(session, lambda: limits.assign_site(session, user, site, limit_set_code, target_class))
    if error is not None:
        session.expire_all()
        return _sites_page(request, session, form=form, error=error)
    return see_other(request, f"{BASE}/sites")


# ---------------------------------------------------------------- one standard


@router.get(f"{BASE}/{{code}}", include_in_schema=False)
def limit_set_page(request: Request, session: DbSession, code: Code,
                   version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
                   user: User = require(Permission.ANALYSIS_READ)):
    """A version of a standard (the latest unless asked): its table, source and the other versions."""
    shown = limits.limit_set_version(session, code.strip(), version)
    table = limits.table_of(session, shown)
    return show(request, "limits/detail.html", {
        "limit_set": shown, "table": table, "lines": limits.table_lines(table),
        "versions": limits.versions_of(session, shown.code),
        "assignments": limits.site_assignments(session, shown.code)})


add_nav(NavItem("limits", N_("Evaluation standards"), BASE, Permission.ANALYSIS_READ, 59))
# the sample page shows each parameter's class and the sample's overall class (issue 8 item 9)
add_sample_section(PageSection("evaluation", "evaluation/_sample_section.html", evaluation.evaluation_section, 60))
