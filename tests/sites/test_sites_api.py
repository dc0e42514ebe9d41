"""The sites JSON API with real API tokens: the paginated list (the version in force now, a
proposed site without one), a site with its parameters and version history, the version in force
at a moment (`?at=`), coordinates as strings, and refusals as problem JSON."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.core.db import utcnow
from app.people import service as people
from app.people.models import User
from app.sites import service
from app.sites.models import Site
from tests.conftest import make_user
from tests.sites.conftest import D, change_site, make_site, proposal

BASE = "/api/v1/sites"


@pytest.fixture
def api(app):
    """A client without cookies: whatever it does, it does with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def users(db) -> dict[str, User]:
    return {role: make_user(db, role.replace("_", "-"), role)
            for role in ("technical_manager", "quality_manager", "sampler")}


@pytest.fixture
def token(db, users) -> dict[str, str]:
    """The sampler's Authorization header (SITES_READ, as every user)."""
    with db.transaction() as session:
        secret = people.create_token(session, None, users["sampler"].id, "field app", check_permission=False)[1]
    return {"Authorization": f"Bearer {secret}"}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def test_the_list_pages_through_sites_with_the_version_in_force(api, db, users, token):
    tm, qm = users["technical_manager"], users["quality_manager"]
    for n in range(5):
        make_site(db, tm, qm, f"WS{n:02d}", latitude=D(f"31.{n}000001"))
    with db.transaction() as session:
        service.propose_site(session, tm, code="GW01", proposal=proposal(kind="groundwater", name_zh="青浦地下水井"),
                             reason="新设")
    response = api.get(BASE, params={"per_page": 4}, headers=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 4, 6, 2)
    first = body["items"][0]
    assert first["code"] == "GW01" and first["status"] == "proposed" and first["version_no"] is None
    assert first["name_zh"] == "青浦地下水井" and first["latitude"] is None
    second = body["items"][1]
    assert second == {**second, "code": "WS00", "status": "active", "kind": "surface_water",
                      "latitude": "31.0000001", "longitude": "121.4567890", "version_no": 1,
                      "change_pending": False}
    page2 = api.get(BASE, params={"per_page": 4, "page": 2}, headers=token).json()
    assert [i["code"] for i in page2["items"]] == ["WS03", "WS04"]
    only = api.get(BASE, params={"status": "proposed"}, headers=token).json()
    assert [i["code"] for i in only["items"]] == ["GW01"]
    assert [i["code"] for i in api.get(BASE, params={"q": "ws04"}, headers=token).json()["items"]] == ["WS04"]


def test_a_site_with_its_parameters_and_history_and_the_version_at_a_moment(api, db, users, token):
    tm, qm = users["technical_manager"], users["quality_manager"]
    t0 = utcnow() - timedelta(days=100)
    site = make_site(db, tm, qm, since=t0)
    t1 = t0 + timedelta(days=50)
    change_site(db, tm, qm, site, at=t1, latitude=D("30.96"), parameters=[("pH", "weekly")])
    with db.transaction() as session:
        service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None, reason="施工")
    body = api.get(f"{BASE}/ws01", headers=token).json()
    assert body["code"] == "WS01" and body["status"] == "active" and body["open_request_id"] is not None
    current = body["current"]
    assert current["version_no"] == 2 and current["latitude"] == "30.96" and current["approved_by"] == "quality-manager"
    assert current["parameters"] == [{"parameter": "pH", "frequency": "weekly"}]
    assert current["approval_ref"] == "环监字〔2026〕30号"
    assert [v["version_no"] for v in body["versions"]] == [2, 1]
    assert body["versions"][1]["latitude"] == "30.9543210" and len(body["versions"][1]["parameters"]) == 4

    before = (t1 - timedelta(days=1)).isoformat()
    earlier = api.get(f"{BASE}/WS01", params={"at": before}, headers=token).json()
    assert earlier["current"]["version_no"] == 1 and earlier["status"] == "active"
    ancient = api.get(f"{BASE}/WS01?at={quote((t0 - timedelta(days=1)).isoformat())}", headers=token).json()
    assert ancient["current"] is None and ancient["status"] == "proposed"


def test_refusals_are_problem_json(api, db, users, token):
    problem(api.get(f"{BASE}/NOPE", headers=token), 404, "site_not_found")
    problem(api.get(f"{BASE}/WS01", params={"at": "2026-05-01T09:30"}, headers=token), 422, "invalid_time")
    problem(api.get(f"{BASE}/WS01", params={"at": "yesterday"}, headers=token), 422, "invalid_time")
    problem(api.get(BASE, params={"kind": "volcano"}, headers=token), 422, "validation_error")
    problem(api.get(BASE), 401, "not_authenticated")
    problem(api.get(BASE, headers={"Authorization": "Bearer nope"}), 401, "invalid_token")


def test_the_list_costs_the_same_for_3_and_30_sites(api, db, users, token, count_queries):
    tm, qm = users["technical_manager"], users["quality_manager"]

    def sites(first: int, last: int) -> list[Site]:
        return [make_site(db, tm, qm, f"WS{n:02d}") for n in range(first, last)]

    first = sites(0, 3)[0]

    def statements(url: str) -> int:
        api.get(url, headers=token)
        with count_queries() as counter:
            assert api.get(url, headers=token).status_code == 200
        return counter.count

    few = statements(f"{BASE}?per_page=100"), statements(f"{BASE}/WS00")
    sites(3, 30)
    for n in range(5):
        change_site(db, tm, qm, first, basin=f"河 {n}")
    many = statements(f"{BASE}?per_page=100"), statements(f"{BASE}/WS00")
    assert many == few
