"""The shell: dashboard with worklists, the global scan box, language switch, health."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from app.config import SUPPORTED_LANGUAGES
from app.core import audit
from app.core.auth import DbSession, public, require
from app.core.middleware import LANGUAGE_COOKIE
from app.core.migrate import current_revision
from app.core.permissions import Permission
from app.core.registry import resolve_scan, worklists_for
from app.core.web import render
from app.people.models import User

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(user: User = require(Permission.DASHBOARD_VIEW)) -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard", include_in_schema=False)
def dashboard(request: Request, session: DbSession,
              user: User = require(Permission.DASHBOARD_VIEW)):
    cards = [
        (worklist, worklist.count(session, user))
        for worklist in worklists_for(request.state.permissions)
    ]
    return render(request, "shell/dashboard.html", {"cards": cards})


@router.get("/scan", include_in_schema=False)
def scan(request: Request, session: DbSession, code: str = Query("", max_length=512),
         user: User = require(Permission.DASHBOARD_VIEW)):
    """Keyboard-wedge scanners type the code and press Enter: open what it names."""
    hit = resolve_scan(session, user, request.state.permissions, code)
    if hit is None:
        return render(request, "shell/scan_miss.html", {"code": code.strip()}, status_code=404)
    return RedirectResponse(hit.url, status_code=303)


def _safe_back(target: str | None) -> str:
    """Only same-site relative paths, so the switch cannot be used as an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


@router.get("/lang/{language}", include_in_schema=False, dependencies=[public()])
def switch_language_cookie(language: str, next: str | None = None) -> RedirectResponse:
    """The language switch for a visitor who is not signed in (login page)."""
    response = RedirectResponse(_safe_back(next), status_code=303)
    if language in SUPPORTED_LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/api/v1/health", tags=["system"], dependencies=[public()])
def health(request: Request, session: DbSession) -> dict:
    """Liveness and version: database engine, migration revision, audit trail length."""
    db = request.app.state.db
    return {
        "status": "ok",
        "database": db.dialect,
        "migration": current_revision(db.engine) or "",
        "audit_events": audit.count_events(session),
    }
