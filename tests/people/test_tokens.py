"""API tokens: Bearer auth, shown once, stored as SHA-256 only, revocable, no CSRF needed."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.people.models import ApiToken
from tests.conftest import login

TOKEN = re.compile(r"lims_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def api(app):
    """A client without cookies: whatever it does, it does with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_own_token(client: TestClient, username: str, name: str = "import script") -> str:
    csrf = login(client, username)
    response = client.post("/account/tokens", data={"name": name, "csrf_token": csrf})
    assert response.status_code == 200
    [token] = set(TOKEN.findall(response.text))
    return token


def test_a_bearer_token_authenticates_on_the_api(client, api, users):
    token = create_own_token(client, "analyst")
    response = api.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["username"] == "analyst" and response.json()["roles"] == ["analyst"]
    assert api.get("/api/v1/me").status_code == 401  # and it is the token that did it


def test_the_token_and_its_user_are_found_in_one_query(client, api, users, count_queries):
    token = create_own_token(client, "analyst")
    with count_queries() as counted:
        assert api.get("/api/v1/me", headers=bearer(token)).status_code == 200
    lookups = [s for s in counted.statements if "api_token" in s]
    assert len(lookups) == 1 and "app_user" in lookups[0], counted.statements
    assert not [s for s in counted.statements if s.lstrip().startswith("SELECT app_user.")
                and "api_token" not in s and "role_grant" not in s], counted.statements


def test_a_token_is_shown_once_and_stored_only_as_its_hash(client, db, users):
    token = create_own_token(client, "analyst")
    account = client.get("/account")
    assert account.status_code == 200 and "import script" in account.text
    assert token not in account.text and token[12:] not in account.text
    with db.reading() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "import script")).one()
        stored = row.model_dump()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(value) for value in stored.values())
    assert token.startswith(stored["prefix"]) and len(stored["prefix"]) < len(token) // 2


def test_an_admin_creates_a_token_for_a_user_shown_once(client, api, db, users):
    csrf = login(client, "admin")
    response = client.post(f"/people/users/{users['analyst'].id}/tokens",
                           data={"name": "ICP-MS import", "csrf_token": csrf})
    assert response.status_code == 200
    [token] = set(TOKEN.findall(response.text))
    page = client.get(f"/people/users/{users['analyst'].id}")
    assert "ICP-MS import" in page.text and token not in page.text
    assert api.get("/api/v1/me", headers=bearer(token)).json()["username"] == "analyst"


def test_a_revoked_token_fails(client, api, db, users):
    token = create_own_token(client, "analyst")
    with db.reading() as session:
        row_id = session.scalars(select(ApiToken.id).where(ApiToken.name == "import script")).one()
    csrf = login(client, "analyst")
    assert client.post(f"/account/tokens/{row_id}/revoke", data={"csrf_token": csrf}).status_code == 303
    response = api.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert "吊销" in response.json()["detail"]


def test_one_cannot_revoke_another_users_token_from_ones_account(client, api, db, users):
    token = create_own_token(client, "analyst")
    with db.reading() as session:
        row_id = session.scalars(select(ApiToken.id).where(ApiToken.name == "import script")).one()
    csrf = login(client, "sampler")
    assert client.post(f"/account/tokens/{row_id}/revoke", data={"csrf_token": csrf}).status_code == 404
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_the_token_of_a_deactivated_user_fails(client, api, users):
    token = create_own_token(client, "analyst")
    csrf = login(client, "admin")
    client.post(f"/people/users/{users['analyst'].id}/active",
                data={"active": "false", "reason": "left", "csrf_token": csrf})
    response = api.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_bearer_requests_need_no_csrf_token(client, api, db, users):
    """A browser never attaches a bearer token on its own, so a request carrying one cannot be
    a cross-site forgery: it is exempt from the CSRF check (and a cookie-only one is not)."""
    token = create_own_token(client, "admin", name="admin script")
    response = api.post(f"/people/users/{users['sampler'].id}/names", headers=bearer(token),
                        data={"display_name_zh": "王采样", "display_name_en": "Wang"})
    assert response.status_code == 303
    assert api.get(f"/people/users/{users['sampler'].id}", headers=bearer(token)).text.count("王采样") >= 1
    # the same post with the session cookie and no CSRF token is refused
    refused = client.post(f"/people/users/{users['sampler'].id}/names",
                          data={"display_name_zh": "李采样"}, headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"


def test_garbage_bearer_tokens_are_refused(api, users):
    for value in ("lims_", "lims_" + "x" * 500, "not-ours", "lims_\u4e2d"):
        response = api.get("/api/v1/me", headers={"Authorization": f"Bearer {value}".encode()})
        assert response.status_code == 401, value
