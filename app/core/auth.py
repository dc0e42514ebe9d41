"""Who is asking: signed-cookie sessions with an idle timeout, bearer tokens, CSRF, and the
`require(permission)` / `public()` declarations every route carries."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.core.errors import CsrfFailed, InvalidInput, NotAuthenticated, SessionExpired
from app.core.permissions import Permission, ensure, permissions_of, roles_at
from app.people.models import User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = "public"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def db_session(request: Request) -> Iterator[Session]:
    """One session per request: a write session (BEGIN IMMEDIATE on SQLite) for mutating
    methods. Routes commit through `committing(session)`; anything uncommitted rolls back."""
    db = request.app.state.db
    with db.session(write=request.method not in SAFE_METHODS) as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_guard(request: Request) -> None:
    """Every form post and htmx request carries the session's CSRF token (header or field).
    Bearer-token clients are exempt: browsers never attach that header by themselves."""
    if request.method in SAFE_METHODS or bearer_token(request):
        return
    expected = request.session.get("csrf")
    supplied = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if not supplied and (
        content_type.startswith("application/x-www-form-urlencoded")
        or content_type.startswith("multipart/form-data")
    ):
        try:
            form = await request.form()
        except Exception:  # malformed body: refuse as a CSRF failure, not a 500
            raise CsrfFailed() from None
        value = form.get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else None
    if not expected or not supplied or not hmac.compare_digest(expected, supplied):
        raise CsrfFailed()


class NulInInput(InvalidInput):
    code = "nul_in_input"
    message_zh = "输入中含有不允许的空字符（NUL）。"
    message_en = "The input contains a NUL character, which is not allowed."


async def nul_guard(request: Request) -> None:
    """No text reaching the database may hold a NUL: PostgreSQL refuses it at bind time, which
    would surface as a 500. Checked once here for the query, path, form fields and JSON body."""
    values = [*request.query_params.values(), *map(str, request.path_params.values())]
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form()
        except Exception:  # a body that does not parse is refused by FastAPI itself
            form = None
        if form is not None:
            values += [v for v in form.values() if isinstance(v, str)]
    elif content_type.startswith("application/json") and b"\\u0000" in await request.body():
        raise NulInInput()
    if any("\x00" in value for value in values):
        raise NulInInput()


def start_session(request: Request, user: User) -> None:
    """After a successful sign-in: a fresh session (new CSRF token) bound to the user's epoch."""
    request.session.clear()
    request.session.update(
        uid=user.id, epoch=user.session_epoch, last=int(time.time()),
        csrf=secrets.token_urlsafe(32),
    )


def end_session(request: Request) -> None:
    request.session.clear()


def current_user(request: Request, session: Session) -> User:
    """The authenticated user of this request, or NotAuthenticated / SessionExpired."""
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    from app.people.service import user_for_token

    token = bearer_token(request)
    if token is not None:
        user = user_for_token(session, token)
        if user is None:
            raise NotAuthenticated(
                "API 令牌无效或已吊销。", "The API token is invalid or revoked.",
                code="invalid_token",
            )
        request.state.auth_method = "token"
    else:
        user = _user_from_cookie(request, session)
        request.state.auth_method = "session"
    request.state.user = user
    request.state.permissions = permissions_of(roles_at(session, user.id))
    return user


def _user_from_cookie(request: Request, session: Session) -> User:
    uid = request.session.get("uid")
    if not uid:
        raise NotAuthenticated()
    settings = request.app.state.settings
    now = int(time.time())
    if now - int(request.session.get("last", 0)) > settings.session_idle_minutes * 60:
        end_session(request)
        raise SessionExpired()
    user = session.get(User, uid)
    if user is None or not user.active or user.session_epoch != request.session.get("epoch"):
        end_session(request)
        raise NotAuthenticated()
    request.session["last"] = now
    return user


def optional_user(request: Request, session: Session) -> User | None:
    try:
        return current_user(request, session)
    except NotAuthenticated:
        return None


def require(permission: Permission) -> Any:
    """Declare (and enforce) the permission a route needs; yields the acting user."""

    def dependency(
        request: Request, session: DbSession, _csrf: None = Depends(csrf_guard),
        _nul: None = Depends(nul_guard),
    ) -> User:
        user = current_user(request, session)
        ensure(session, user, permission)
        return user

    dependency.lims_permission = permission  # type: ignore[attr-defined]
    return Depends(dependency)


def public() -> Any:
    """Declare a route open to anyone (login, health, verification); forms still need CSRF."""

    def dependency(_csrf: None = Depends(csrf_guard), _nul: None = Depends(nul_guard)) -> None:
        return None

    dependency.lims_permission = PUBLIC  # type: ignore[attr-defined]
    return Depends(dependency)


def declared_permission(dependant: Any) -> str | None:
    """The permission a route declared (searching its dependency tree), for the route walker."""
    for dep in dependant.dependencies:
        found = getattr(dep.call, "lims_permission", None)
        if found is not None:
            return str(found)
        nested = declared_permission(dep)
        if nested is not None:
            return nested
    return None


def iter_api_routes(routes: list[Any]) -> Iterator[Any]:
    """Every APIRoute of an app, descending into included routers. A route of an included
    router is yielded as it is served: with the include's prefix in `path` and the include's
    dependencies in `dependant` (so a permission declared on `include_router` counts)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            for served in route.effective_route_contexts():
                if isinstance(served.original_route, APIRoute):
                    yield served
