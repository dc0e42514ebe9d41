"""ASGI middleware: the reader's language, a request-size limit, and security headers."""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import SUPPORTED_LANGUAGES
from app.core import i18n

LANGUAGE_COOKIE = "lims_lang"


class LanguageMiddleware:
    """Sets the translation language for the request from the `lims_lang` cookie (written at
    sign-in from the user's stored choice, and by the language switch), else the lab default."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app, self.default = app, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            i18n.set_language(language_of(scope, self.default))
        await self.app(scope, receive, send)


def language_of(scope: Scope, default: str) -> str:
    """The reader's language from the `lims_lang` cookie, else `default`."""
    language = default
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header falls back to the default
                continue
            if LANGUAGE_COOKIE in cookie and cookie[LANGUAGE_COOKIE].value in SUPPORTED_LANGUAGES:
                language = cookie[LANGUAGE_COOKIE].value
    return language


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413 problem JSON before anything reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        """Runs outside LanguageMiddleware, so it reads the reader's language itself."""
        limit_mb = self.max_bytes // (1024 * 1024)
        zh = i18n.is_chinese(language_of(scope, i18n.current_language()))
        body = {
            "type": "urn:envirolims:error:payload_too_large",
            "title": "请求内容过大。" if zh else "The request is too large.",
            "status": 413,
            "code": "payload_too_large",
            "detail": f"上传内容过大（上限 {limit_mb} MB）。" if zh
            else f"The upload is too large (limit {limit_mb} MB).",
        }
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": payload})


class _TooLarge(HTTPException):
    """Raised from `receive` when a body without a (truthful) Content-Length outgrows the limit.
    An HTTPException, because FastAPI turns any other error while reading a body into a 400;
    this one reaches the error handlers as the 413 it is."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def security_headers(extra_img_sources: tuple[str, ...] = ()) -> list[tuple[bytes, bytes]]:
    img_src = " ".join(("'self'", "data:", "blob:", *extra_img_sources))
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"content-security-policy",
         f"default-src 'self'; img-src {img_src}; style-src 'self' 'unsafe-inline'; "
         "script-src 'self'; frame-ancestors 'none'; form-action 'self'".encode()),
    ]


SECURITY_HEADERS = security_headers()
_TILE_ORIGIN = re.compile(r"^(https?)://([A-Za-z0-9.*-]+(?::\d{1,5})?)(?:/|$)")


def tile_image_source(tile_url: str) -> str | None:
    """The CSP source that lets the site map load its tiles: the origin of the tile URL, with a
    Leaflet subdomain placeholder as a wildcard (https://{s}.tile.example.org -> https://*.tile.example.org).
    None for an empty or same-origin (relative) URL or one that is not http(s)."""
    url = tile_url.strip().replace("{s}", "*")
    match = _TILE_ORIGIN.match(url)
    if not match:
        return None
    host = match.group(2)
    if "*" in host and not host.startswith("*."):
        return None
    return f"{match.group(1)}://{host}"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, extra_img_sources: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = security_headers(extra_img_sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
