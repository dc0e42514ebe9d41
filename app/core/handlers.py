"""One place that turns every error into the right answer for who asked: an htmx fragment, a
page for a browser, or RFC 9457 problem JSON for the API. No stack trace reaches a user."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import inspect
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import i18n
from app.core.errors import DomainError, InspectorReadOnly, NotAuthenticated, PayloadTooLarge
from app.core.web import is_htmx, render

log = logging.getLogger("lims")

HTTP_TEXT = {
    400: ("请求无效。", "Bad request."),
    401: ("请先登录。", "Please sign in."),
    403: ("没有权限。", "Forbidden."),
    404: ("页面或对象不存在。", "The page or object does not exist."),
    405: ("不支持该请求方法。", "This method is not allowed here."),
    413: ("请求内容过大。", "The request is too large."),
    422: ("输入有误。", "The input is invalid."),
    500: ("服务器内部错误，已记录。请稍后重试或联系管理员。",
          "Internal error; it has been logged. Try again later or contact the administrator."),
}


def wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _problem(request: Request, status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    zh, en = HTTP_TEXT.get(status, HTTP_TEXT[400] if status < 500 else HTTP_TEXT[500])
    body = {
        "type": f"urn:envirolims:error:{code}",
        "title": zh if i18n.is_chinese() else en,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _reload_signed_in_user(request: Request) -> None:
    """A refused act rolls its transaction back, which expires the signed-in user's row, and the
    request's session is closed by the time the error is rendered: reload the user so the page
    header can still say who is signed in (else rendering the error would itself fail)."""
    user = getattr(request.state, "user", None)
    if user is None or not inspect(user).unloaded:
        return
    fresh = None
    try:
        with request.app.state.db.session(write=False) as session:
            fresh = session.get(type(user), inspect(user).identity)
            if fresh is not None:
                session.expunge(fresh)
    except Exception:  # the page is rendered without the header's user rather than not at all
        log.exception("could not reload the signed-in user for an error page")
    request.state.user = fresh


def error_response(
    request: Request, status: int, code: str, detail: str, errors: list[dict] | None = None
) -> Response:
    if wants_json(request):
        return _problem(request, status, code, detail, **({"errors": errors} if errors else {}))
    _reload_signed_in_user(request)
    context = {"status": status, "code": code, "detail": detail, "errors": errors or []}
    if is_htmx(request):
        return render(
            request, "_error.html", context, status_code=status,
            headers={"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"},
        )
    return render(request, "error.html", context, status_code=status)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, NotAuthenticated) and not wants_json(request):
        target = "/login?next=" + quote(request.url.path)
        if exc.code == "session_expired":
            target += "&expired=1"
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if isinstance(exc, InspectorReadOnly):
        record_inspector_refusal(request, exc)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    response = error_response(request, exc.http_status, exc.code, exc.message(i18n.current_language()))
    if headers:
        response.headers.update(headers)
    return response


def record_inspector_refusal(request: Request, exc: InspectorReadOnly) -> None:
    """An inspector's attempt to change something is refused and kept in the audit trail (issue
    10: "refused, audited"): who, which act, where. The request's own transaction has already
    been rolled back, so this is the only thing written."""
    from app.core import audit

    user = getattr(request.state, "user", None)
    try:
        with request.app.state.db.transaction() as session:
            actor = session.get(type(user), inspect(user).identity) if user is not None else None
            audit.append(session, actor, "security.inspector_refused", "app_user", actor.id if actor else None, None,
                         {"permission": exc.params.get("permission", ""), "method": request.method,
                          "path": request.url.path})
    except Exception:  # the refusal is still answered; the failure to record it is logged
        log.exception("could not record an inspector's refused attempt")


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "-"


def _validation_message(error: dict) -> str:
    field = _field_name(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    if i18n.is_chinese():
        if kind == "missing":
            return f"{field}：必填"
        return f"{field}：格式或取值无效"
    if kind == "missing":
        return f"{field}: required"
    return f"{field}: {error.get('msg', 'invalid')}"


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    messages = [_validation_message(e) for e in exc.errors()]
    errors = [{"field": _field_name(tuple(e.get("loc", ()))), "message": m}
              for e, m in zip(exc.errors(), messages, strict=True)]
    detail = "；".join(messages) if i18n.is_chinese() else "; ".join(messages)
    return error_response(request, 422, "validation_error", detail, errors)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    zh, en = HTTP_TEXT.get(exc.status_code, (str(exc.detail), str(exc.detail)))
    detail = zh if i18n.is_chinese() else en
    code = f"http_{exc.status_code}"
    if exc.status_code == 413:  # a streamed body over the limit (BodySizeLimitMiddleware)
        limit = PayloadTooLarge(limit_mb=request.app.state.settings.max_upload_mb)
        code, detail = limit.code, limit.message(i18n.current_language())
    response = error_response(request, exc.status_code, code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    zh, en = HTTP_TEXT[500]
    return error_response(request, 500, "internal_error", zh if i18n.is_chinese() else en)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
