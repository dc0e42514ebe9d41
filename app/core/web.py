"""Templates, rendering (whole page or htmx fragment) and pagination."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2_fragments import render_block
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core import i18n
from app.core.db import committing
from app.core.errors import DomainError, NotAuthenticated, PermissionDenied
from app.core.registry import nav_for

APP_DIR = Path(__file__).resolve().parents[1]
STATIC_DIR = APP_DIR.parent / "static"
T = TypeVar("T")


def template_dirs() -> list[str]:
    return [str(APP_DIR / "templates"), *sorted(str(p) for p in APP_DIR.glob("*/templates"))]


def build_templates(settings: Settings) -> Environment:
    env = Environment(
        loader=FileSystemLoader(template_dirs()),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]

    def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if value is None:
            return ""
        return value.astimezone(settings.tz).strftime(fmt)

    env.filters["localtime"] = localtime
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    env.globals["pick"] = i18n.pick
    env.globals["settings"] = settings
    return env


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_fragment(request: Request) -> bool:
    """An htmx swap wants a fragment; a history restore (back button) needs the whole page."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def page_context(request: Request) -> dict[str, Any]:
    from app.core.auth import csrf_token

    permissions = getattr(request.state, "permissions", frozenset())
    return {
        "request": request,
        "user": getattr(request.state, "user", None),
        "permissions": permissions,
        "nav": nav_for(permissions),
        "lang": i18n.current_language(),
        "csrf_token": csrf_token(request),
        "path": request.url.path,
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page; with `block`, an htmx request gets just that block of it."""
    env: Environment = request.app.state.templates
    full_context = {**page_context(request), **(context or {})}
    if block and wants_fragment(request):
        html = render_block(env, template, block, full_context)
    else:
        html = env.get_template(template).render(full_context)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def shown_in_page(error: DomainError) -> bool:
    """Refusals a form can show beside what was typed; a missing sign-in or permission, and a
    server fault, go to the error handler instead."""
    return not isinstance(error, PermissionDenied | NotAuthenticated) and error.http_status < 500


def attempt(session: Session, act: Callable[[], Any], *,
            shown: Callable[[DomainError], bool] = shown_in_page) -> tuple[Any, DomainError | None]:
    """Run one service call in the request's unit of work; a refusal the page can show is
    returned (nothing was saved), any other error is raised."""
    try:
        with committing(session):
            return act(), None
    except DomainError as error:
        if not shown(error):
            raise
        return None, error


def see_other(request: Request, url: str) -> Response:
    """After a successful post: a 303 for a plain form; for htmx a 204 with HX-Redirect, since
    the browser would follow a 303 inside the XMLHttpRequest where htmx cannot see it."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@dataclass
class Page(Generic[T]):
    """An offset page, for lists that stay small (users, settings)."""

    items: Sequence[T]
    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def paginate(session: Session, stmt: Select, page: int, size: int) -> Page[Any]:
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = session.scalars(stmt.limit(size).offset((page - 1) * size)).all()
    return Page(items, page, size, total)


@dataclass
class KeysetPage(Generic[T]):
    """A page of a list that grows without bound; `next_cursor` continues after the last item."""

    items: Sequence[T]
    next_cursor: Any | None


def pager_base(path: str, params: dict[str, Any]) -> str:
    """The list's address with its filters, ready for `page=N` to be appended."""
    filters = query_string(params)
    return f"{path}?{filters}&" if filters else f"{path}?"


def query_string(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})
