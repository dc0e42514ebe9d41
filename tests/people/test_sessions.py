"""Sessions: a signed cookie, an idle timeout, ended by a password change; CSRF on every form."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from app.config import Settings
from app.core import auth
from app.main import SESSION_COOKIE, create_app
from tests.conftest import PASSWORD, csrf_of, login
from tests.people import signed_in, try_login
from tests.test_permissions import audit_count, endpoints, make_objects, plausible_form

# ---------------------------------------------------------------- the cookie


def forged_cookie(secret: str, payload: dict) -> str:
    data = b64encode(json.dumps(payload).encode())
    return TimestampSigner(secret).sign(data).decode()


def test_the_session_cookie_is_signed(app, client, users):
    """A cookie naming the admin is accepted only when signed with the server's key."""
    payload = {"uid": users["admin"].id, "epoch": 0, "last": int(time.time()), "csrf": "x"}
    client.cookies.set(SESSION_COOKIE, forged_cookie("guessed-key", payload))
    assert not signed_in(client)
    client.cookies.set(SESSION_COOKIE, forged_cookie(app.state.settings.resolved_secret_key, payload))
    assert signed_in(client)  # the same payload, properly signed: so the signature is what counts


def test_a_tampered_cookie_is_ignored(client, users):
    login(client, "analyst")
    cookie = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, ("A" if cookie[0] != "A" else "B") + cookie[1:])
    assert not signed_in(client)


# ---------------------------------------------------------------- idle timeout


class Clock:
    """A stand-in for `time` inside app.core.auth only (the cookie signer keeps real time)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: self.now))

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def short_idle_app(settings: Settings):
    app = create_app(settings.model_copy(update={"session_idle_minutes": 5}))
    yield app
    app.state.db.dispose()


def test_the_default_idle_timeout_is_thirty_minutes(client, users, monkeypatch):
    assert Settings().session_idle_minutes == 30
    clock = Clock(monkeypatch)
    login(client, "analyst")
    clock.advance(29)
    assert signed_in(client)
    clock.advance(31)
    response = client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard&expired=1"


def test_an_idle_session_expires_and_activity_keeps_it_alive(short_idle_app, users, monkeypatch):
    clock = Clock(monkeypatch)
    with TestClient(short_idle_app, follow_redirects=False) as client:
        login(client, "analyst")
        for _ in range(3):  # 4 minutes apart, 12 in all: each request renews the session
            clock.advance(4)
            assert signed_in(client)
        clock.advance(6)
        page = client.get("/people/lab")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/people/lab&expired=1"
        notice = client.get(page.headers["location"])
        assert notice.status_code == 200 and 'class="alert warning"' in notice.text
        assert not signed_in(client)  # the expired session was cleared, not revived

        # htmx: the browser is sent to the sign-in page
        login(client, "analyst")
        clock.advance(6)
        fragment = client.get("/people/lab", headers={"HX-Request": "true"})
        assert fragment.status_code == 204
        assert fragment.headers["HX-Redirect"] == "/login?next=/people/lab&expired=1"

        # the API: 401 problem JSON
        login(client, "analyst")
        clock.advance(6)
        api = client.get("/api/v1/me")
        assert api.status_code == 401
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.json()["code"] == "session_expired"


def test_changing_the_password_ends_the_other_sessions(app, client, db, users):
    with TestClient(app, follow_redirects=False) as other:
        login(other, "analyst")
        token = login(client, "analyst")
        response = client.post("/account/password", data={
            "current_password": PASSWORD, "new_password": "another-Password-99", "csrf_token": token})
        assert response.status_code == 200
        assert signed_in(client)       # this session goes on
        assert not signed_in(other)    # every other one ended
        assert try_login(other, "analyst", PASSWORD).status_code == 401
        assert try_login(other, "analyst", "another-Password-99").status_code == 303


def test_a_wrong_current_password_changes_nothing(app, client, users):
    token = login(client, "analyst")
    response = client.post("/account/password", data={
        "current_password": "wrong-password-1", "new_password": "another-Password-99", "csrf_token": token},
        headers={"Accept": "application/json"})
    assert response.status_code == 403 and response.json()["code"] == "wrong_signing_password"
    client.cookies.clear()
    assert try_login(client, "analyst", PASSWORD).status_code == 303


# ---------------------------------------------------------------- CSRF


@pytest.mark.parametrize("token_kind", ["missing", "wrong"])
def test_every_form_post_needs_the_session_csrf_token(app, client, db, users, token_kind):
    objects = make_objects(db, users)
    login(client, "admin")
    before = audit_count(db)
    wrong = []
    for endpoint in endpoints(app):
        if not endpoint.mutating:
            continue
        form = plausible_form(endpoint)
        if token_kind == "wrong":
            form["csrf_token"] = "not-the-token"
        response = client.request(endpoint.method, endpoint.url(objects), data=form,
                                  headers={"Accept": "application/json"})
        if response.status_code != 403 or response.json().get("code") != "csrf_failed":
            wrong.append((endpoint, response.status_code))
    assert not wrong, wrong
    assert audit_count(db) == before
    assert signed_in(client)  # not even the sign-out went through


def test_a_wrong_csrf_header_is_refused_even_with_a_right_field(client, users):
    token = login(client, "analyst")
    response = client.post("/account/language", data={"language": "en", "csrf_token": token},
                           headers={"X-CSRF-Token": "wrong", "Accept": "application/json"})
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"


def test_the_csrf_header_works_for_htmx(client, users):
    token = login(client, "analyst")
    response = client.post("/account/language", data={"language": "en", "next": "/account"},
                           headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert response.status_code in (204, 303)  # htmx follows HX-Redirect
    assert response.headers["HX-Redirect"] == "/account"
    assert client.get("/api/v1/me").json()["language"] == "en"


def test_the_login_form_needs_the_csrf_token_too(client, users):
    csrf_of(client)
    response = client.post("/login", data={"username": "analyst", "password": PASSWORD})
    assert response.status_code == 403 and 'data-code="csrf_failed"' in response.text
    assert not signed_in(client)


def test_signing_in_starts_a_fresh_session_with_a_new_csrf_token(client, users):
    """No session fixation: the anonymous session's token does not survive the sign-in."""
    before = csrf_of(client)
    after = login(client, "analyst")
    assert before != after
