"""Errors: whatever a client sends, the answer is a localised 4xx, never a 5xx or a stack trace;
404 and 405 come as a page, an htmx fragment or RFC 9457 problem JSON; bodies over the upload
limit are refused with 413."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.core.auth import require
from app.core.permissions import Permission
from app.main import create_app
from tests.conftest import login
from tests.test_permissions import Endpoint, endpoints, make_objects

CHINESE = re.compile(r"[\u4e00-\u9fff]")
# What must never reach a user: a traceback, a file path of the code, an exception class name,
# the name of a library that failed.
LEAK = re.compile(r"Traceback|File \"|\.py\b|sqlalchemy|psycopg|pydantic|starlette|jinja2", re.IGNORECASE)
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Refusal)\b")
HUGE_ID = "99999999999999999999999"
BAD_IDS = ["abc", HUGE_ID, "2147483648", "-1", "0", "1.5", "%00"]
LONG = "x" * 10_000


@pytest.fixture
def objects(db, users, settings) -> dict[str, int]:
    return make_objects(db, users, settings.ensure_data_dir())


def leak_in(text: str) -> str | None:
    # "validation_error" and similar codes are lowercase snake case, not class names.
    match = LEAK.search(text) or CLASS_NAME.search(text)
    return match.group(0) if match else None


def no_trace(response) -> None:
    found = leak_in(response.text)
    assert found is None, f"error body reveals {found!r}: {response.text[:500]}"


def raw_client(app) -> TestClient:
    """A client that returns a 500 as a response (to inspect it) rather than raising."""
    return TestClient(app, follow_redirects=False, raise_server_exceptions=False)


def malformed_forms(endpoint: Endpoint) -> dict[str, dict]:
    fields = list(endpoint.body) or ["unexpected"]
    return {
        "empty body": {},
        "garbage": {**{f: "garbage ☃ <script>alert(1)</script>' OR '1'='1 --" for f in fields},
                    "unexpected_field": "zzz"},
        "overlong": {f: LONG for f in fields},
        "wrong types": {f: "maybe" for f in fields},  # active=maybe, approve=maybe, ...
        "nul": {f: "a\x00b" for f in fields},
        "control characters": {f: "\x07\x1b[31m\u202e" for f in fields},
        "lists": {f: ["a", "b"] for f in fields},
    }


def send(client: TestClient, endpoint: Endpoint, url: str, token: str, **kwargs):
    return client.request(endpoint.method, url, headers={"X-CSRF-Token": token, **kwargs.pop("headers", {})},
                          **kwargs)


@pytest.mark.parametrize("actor", ["admin", "quality_manager"])
def test_malformed_input_to_every_route_never_gives_a_5xx(app, users, objects, actor):
    """Every mutating route, as an admin and as a quality manager with a valid CSRF token:
    empty, garbage, overlong, wrongly typed, NUL-bearing and list-valued fields, JSON and broken
    multipart bodies, and ids that are not numbers, too large, negative or zero."""
    client = raw_client(app)
    token = login(client, actor.replace("_", "-"))
    failures = []

    def check(endpoint, label, response):
        if response.status_code >= 500:
            failures.append((endpoint, label, response.status_code, response.text[:300]))
        elif response.status_code >= 400 and leak_in(response.text):
            failures.append((endpoint, label, "leak", leak_in(response.text)))

    # Signing out would end the run early; it goes last.
    routes = sorted(endpoints(app), key=lambda e: e.key == ("POST", "/logout"))
    for endpoint in routes:
        url = endpoint.url(objects)
        if endpoint.mutating:
            for label, form in malformed_forms(endpoint).items():
                check(endpoint, label, send(client, endpoint, url, token, data=form))
            check(endpoint, "json body", send(client, endpoint, url, token,
                                              json={f: LONG for f in endpoint.body}))
            check(endpoint, "broken multipart", send(
                client, endpoint, url, token, content=b"--b\r\nContent-Disposition: form-data\r\n",
                headers={"content-type": "multipart/form-data; boundary=b"}))
            check(endpoint, "multipart without boundary", send(
                client, endpoint, url, token, content=b"garbage",
                headers={"content-type": "multipart/form-data"}))
        for bad in BAD_IDS if endpoint.id_params else ():
            response = send(client, endpoint, endpoint.url(default=bad),
                            token, data={f: "x" for f in endpoint.body})
            check(endpoint, f"id {bad}", response)
            if response.status_code < 400 or response.status_code >= 500:
                failures.append((endpoint, f"id {bad} not refused", response.status_code))
        if endpoint.key == ("POST", "/logout"):
            continue
        assert client.get("/api/v1/me").status_code == 200, f"signed out by {endpoint}"
    assert not failures, "\n".join(map(str, failures))


# Query values that are invalid for the parameter they name.
BAD_QUERY = [
    ("page", "-1"), ("page", "abc"), ("page", "0"), ("page", HUGE_ID),
    ("date_from", "notadate"), ("date_to", "2024-13-45"),
    ("before", "0"), ("before", "-5"), ("before", "abc"), ("before", HUGE_ID),
    ("limit", "0"), ("limit", "abc"), ("limit", "100000"),
    ("expired", "abc"), ("q", LONG), ("code", LONG), ("entity_type", LONG), ("actor", "a\x00b"),
]


def test_malformed_query_parameters_on_list_routes_give_a_4xx(app, users, objects):
    client = raw_client(app)
    login(client, "admin")
    failures = []
    checked = 0
    for endpoint in endpoints(app):
        if endpoint.method != "GET":
            continue
        for name, value in BAD_QUERY:
            response = client.get(endpoint.url(objects), params={name: value})
            if response.status_code >= 500 or (response.status_code >= 400 and leak_in(response.text)):
                failures.append((endpoint, name, value[:20], response.status_code, response.text[:200]))
            elif name in endpoint.query:
                checked += 1
                if not 400 <= response.status_code < 500:
                    failures.append((endpoint, name, value[:20], "accepted", response.status_code))
    assert checked >= 20
    assert not failures, "\n".join(map(str, failures))
    # The reader is told what was wrong, in their language.
    response = client.get("/oversight/audit", params={"date_from": "notadate"})
    assert response.status_code == 422
    assert "date_from" in response.text and "格式或取值无效" in response.text


def test_a_refused_form_post_renders_the_error_page_with_the_signed_in_user(app, users, objects):
    """A refusal raised inside the unit of work rolls the transaction back; the error page must
    still render (it used to fail with a bare 500 on the expired user row)."""
    client = raw_client(app)
    token = login(client, "admin")
    # proposing a role the target already has pending: refused by the service (409)
    response = client.post(f"/people/users/{objects['user_id']}/roles",
                           data={"role": "analyst", "csrf_token": token})
    assert response.status_code == 409, response.text[:300]
    assert 'data-code="grant_already_held"' in response.text
    assert "用户admin" in response.text  # the header still shows who is signed in
    no_trace(response)
    response = client.post("/people/users/424242/names",
                           data={"display_name_zh": "x", "csrf_token": token})
    assert response.status_code == 404 and "未找到用户" in response.text


# ---------------------------------------------------------------- 404 and 405, three ways


def _detail(response) -> str:
    match = re.search(r'<div class="alert error"[^>]*>\s*<p>(.*?)</p>', response.text, re.S)
    assert match, response.text[:500]
    return match.group(1)


@pytest.mark.parametrize("signed_in", [False, True])
def test_404_and_405_pages_are_localised(client, users, signed_in):
    if signed_in:
        login(client, "analyst")
    for method, path, status in (("GET", "/no/such/page", 404), ("GET", "/logout", 405)):
        client.cookies.delete("lims_lang")
        zh = client.request(method, path)
        assert zh.status_code == status
        assert zh.headers["content-type"].startswith("text/html")
        assert CHINESE.search(_detail(zh)), _detail(zh)
        assert f'data-code="http_{status}"' in zh.text
        no_trace(zh)
        client.cookies.set("lims_lang", "en")
        en = client.request(method, path)
        assert en.status_code == status
        assert not CHINESE.search(_detail(en))
        assert _detail(en) in ("The page or object does not exist.", "This method is not allowed here.")
        no_trace(en)
    assert "GET" not in client.get("/logout").headers.get("allow", "GET")  # only POST is allowed


def test_404_and_405_as_htmx_fragments(client, users):
    login(client, "analyst")
    for method, path, status in (("GET", "/no/such/fragment", 404), ("GET", "/logout", 405)):
        response = client.request(method, path, headers={"HX-Request": "true"})
        assert response.status_code == status
        assert response.headers["HX-Retarget"] == "#messages"
        assert "<html" not in response.text and "<body" not in response.text
        assert f'data-code="http_{status}"' in response.text
        assert CHINESE.search(response.text)
        no_trace(response)


def test_404_and_405_as_problem_json_for_the_api(client, users):
    for method, path, status in (("GET", "/api/v1/no/such/thing", 404), ("POST", "/api/v1/me", 405),
                                 ("DELETE", "/api/v1/health", 405)):
        client.cookies.delete("lims_lang")
        response = client.request(method, path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert {"type", "title", "status", "detail", "code"} <= set(body)
        assert body["status"] == status and body["code"] == f"http_{status}"
        assert body["type"].startswith("urn:envirolims:error:")
        assert CHINESE.search(body["title"]) and CHINESE.search(body["detail"])
        no_trace(response)
        client.cookies.set("lims_lang", "en")
        english = client.request(method, path).json()
        assert not CHINESE.search(english["title"] + english["detail"])


def test_domain_errors_on_the_api_are_problem_json(client, users):
    """A 401 on the API is problem JSON with its code (and a Bearer challenge)."""
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer lims_not-a-token"})
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_token" and body["status"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unexpected_error_shows_no_stack_trace(settings, users):
    """The last-resort handler: a localised 500 without the exception, for pages and API."""
    app = create_app(settings)

    def explode(user=require(Permission.DASHBOARD_VIEW)):
        raise RuntimeError("secret detail: SELECT password_hash FROM app_user")

    app.add_api_route("/boom", explode, methods=["GET"])
    app.add_api_route("/api/v1/boom", explode, methods=["GET"])
    client = raw_client(app)
    login(client, "analyst")
    page = client.get("/boom")
    assert page.status_code == 500 and 'data-code="internal_error"' in page.text
    api = client.get("/api/v1/boom")
    assert api.status_code == 500 and api.json()["code"] == "internal_error"
    for response in (page, api):
        assert "secret detail" not in response.text and "password_hash" not in response.text
        no_trace(response)
        assert "RuntimeError" not in response.text
    app.state.db.dispose()


# ---------------------------------------------------------------- upload limit


@pytest.fixture
def small_upload_app(settings):
    app = create_app(settings.model_copy(update={"max_upload_mb": 1}))
    yield app
    app.state.db.dispose()


def test_a_body_over_the_upload_limit_is_refused_with_413(small_upload_app, users):
    client = raw_client(small_upload_app)
    token = login(client, "admin")
    over = "x" * (1024 * 1024 + 1)
    response = client.post("/people/lab", data={"name_zh": over}, headers={"X-CSRF-Token": token})
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "payload_too_large" and "1 MB" in body["detail"]
    assert CHINESE.search(body["detail"])
    client.cookies.set("lims_lang", "en")
    english = client.post("/people/lab", data={"name_zh": over}, headers={"X-CSRF-Token": token})
    assert english.json()["detail"] == "The upload is too large (limit 1 MB)."
    # under the limit the same form is accepted
    assert client.post("/people/lab", data={"name_zh": "检测中心"},
                       headers={"X-CSRF-Token": token}).status_code == 303


def test_a_streamed_body_over_the_limit_is_refused_with_413_not_400(small_upload_app, users):
    """Without a Content-Length (chunked), the limit is enforced while reading."""
    client = raw_client(small_upload_app)
    token = login(client, "admin")

    def chunks():
        yield b"name_zh="
        for _ in range(12):
            yield b"x" * 100_000

    response = client.post("/people/lab", content=chunks(),
                           headers={"X-CSRF-Token": token,
                                    "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert 'data-code="payload_too_large"' in response.text and "1 MB" in response.text
    no_trace(response)
