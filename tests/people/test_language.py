"""The reader's language: remembered per user, a cookie switch for visitors, no open redirect."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PASSWORD, login


def page_language(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.text)
    assert match, response.text[:200]
    return match.group(1)


def test_the_chosen_language_is_remembered_per_user(app, client, users):
    csrf = login(client, "analyst")
    assert page_language(client.get("/dashboard")) == "zh-CN"  # the lab's default
    response = client.post("/account/language", data={"language": "en", "next": "/account",
                                                      "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/account"
    assert page_language(client.get("/account")) == "en"

    # a fresh browser, after signing in, gets the stored language
    with TestClient(app, follow_redirects=False) as fresh:
        assert page_language(fresh.get("/login")) == "zh-CN"
        login(fresh, "analyst")
        assert fresh.cookies.get("lims_lang") == "en"
        assert page_language(fresh.get("/dashboard")) == "en"
    # ...and only for that user
    with TestClient(app, follow_redirects=False) as other:
        login(other, "sampler")
        assert page_language(other.get("/dashboard")) == "zh-CN"


def test_an_unknown_language_is_refused(client, users):
    csrf = login(client, "analyst")
    response = client.post("/account/language", data={"language": "fr", "csrf_token": csrf},
                           headers={"Accept": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert client.get("/api/v1/me").json()["language"] == "zh_CN"


def test_a_visitor_switches_language_with_a_cookie(client):
    response = client.get("/lang/en", params={"next": "/login"})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.cookies.get("lims_lang") == "en"
    assert page_language(client.get("/login")) == "en"
    client.get("/lang/zh_CN", params={"next": "/login"})
    assert page_language(client.get("/login")) == "zh-CN"
    unknown = client.get("/lang/fr", params={"next": "/login"})
    assert unknown.status_code == 303 and "lims_lang" not in unknown.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example/login", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "evil.example", "",
])
def test_the_language_switch_is_not_an_open_redirect(client, users, target):
    response = client.get("/lang/en", params={"next": target})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    csrf = login(client, "analyst")
    response = client.post("/account/language", data={"language": "en", "next": target, "csrf_token": csrf})
    assert response.headers["location"] == "/dashboard"
    client.cookies.clear()
    response = client.post("/login", data={"username": "analyst", "password": PASSWORD,
                                           "next": target, "csrf_token": _anonymous_csrf(client)})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


def _anonymous_csrf(client: TestClient) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
