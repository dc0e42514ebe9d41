"""The shell: worklists and navigation by role, the global scan box, and the query cost of the
dashboard and the audit viewer (DESIGN.md rule 10)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.core import audit
from app.core.audit import AuditEvent
from app.people import service
from tests.conftest import PASSWORD, login, make_user


def cards(response) -> dict[str, tuple[int, str]]:
    """Dashboard worklist cards: href -> (count, title)."""
    found = re.findall(
        r'<a class="worklist[^"]*" href="([^"]+)">\s*<span class="count">(\d+)</span>\s*'
        r'<span class="title">([^<]+)</span>', response.text)
    return {href: (int(count), title.strip()) for href, count, title in found}


def propose(db, admin_id: int, user_id: int, role: str) -> int:
    with db.transaction() as session:
        admin = service.get_user(session, admin_id)
        return service.propose_role(session, admin, user_id, role).id


def login_en(client, username: str) -> str:
    """Sign in, then read in English (signing in sets the user's stored language, zh_CN)."""
    token = login(client, username)
    client.cookies.set("lims_lang", "en")
    return token


# ---------------------------------------------------------------- dashboard and navigation


def test_a_quality_manager_sees_the_grants_awaiting_their_approval(db, client, users):
    for username in ("new-1", "new-2", "new-3"):
        propose(db, users["admin"].id, make_user(db, username).id, "analyst")
    propose(db, users["admin"].id, users["quality_manager"].id, "checker")  # their own: not theirs to decide
    login_en(client, "quality-manager")
    page = client.get("/dashboard")
    assert page.status_code == 200
    count, title = cards(page)["/people/roles"]
    assert title == "Role grants awaiting your approval"
    assert count == 3
    # the second quality manager may decide all four
    login(client, "quality-manager-2")
    assert cards(client.get("/dashboard"))["/people/roles"][0] == 4


def test_the_empty_state_and_the_custodians_stock_cards(client, users):
    login_en(client, "inspector")
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert cards(page) == {}
    assert "No open work for you" in page.text
    # the custodian keeps the reference-material stock and the samples: nothing due in an empty lab
    login_en(client, "custodian")
    assert cards(client.get("/dashboard")) == {
        "/reference-materials/due?list=expiring": (0, "Reference materials expiring within 30 days"),
        "/reference-materials/due?list=expired": (0, "Expired reference materials still in stock"),
        "/reference-materials?stock=low": (0, "Reference materials low in stock"),
        "/custodian#expected": (0, "Samples expected at the lab, not yet received"),
        "/custodian#storage-full": (0, "Storage locations full or nearly full"),
        "/holding?colour=due": (0, "Holding times running out"),
        "/storage/disposals?state=approved": (0, "Approved disposals to carry out")}
    # an analyst confirms the certificates of the instruments they are responsible for, and runs
    # batches (issue 8): open ones and those whose QC failure waits for a corrective action
    login_en(client, "analyst")
    assert cards(client.get("/dashboard")) == {
        "/instruments/confirmations": (0, "Certificates awaiting my confirmation"),
        "/holding?colour=due": (0, "Holding times running out"),
        "/batches?mine=1&amp;state=open,running,imported,qc_evaluated,qc_failed": (0, "My open batches"),
        "/batches?mine=1&amp;state=qc_failed": (0, "QC failures waiting for a corrective action")}


def test_navigation_follows_the_role(client, users):
    login(client, "analyst")
    analyst = client.get("/dashboard").text
    assert 'href="/oversight/audit"' not in analyst and 'href="/people/users"' not in analyst
    assert 'href="/people/lab"' in analyst
    login(client, "quality-manager")
    qm = client.get("/dashboard").text
    assert 'href="/oversight/audit"' in qm and 'href="/people/users"' in qm
    login(client, "inspector")
    assert 'href="/oversight/audit"' in client.get("/dashboard").text


# ---------------------------------------------------------------- the scan box


def test_scanning_a_username_opens_the_user_for_someone_who_may_read_users(client, users):
    login(client, "quality-manager")
    for code in ("analyst", "ANALYST", "  analyst  "):
        response = client.get("/scan", params={"code": code})
        assert response.status_code == 303
        assert response.headers["location"] == f"/people/users/{users['analyst'].id}"
    login(client, "sampler")  # no users.read: the same code names nothing they may see
    miss = client.get("/scan", params={"code": "analyst"})
    assert miss.status_code == 404 and "analyst" in miss.text


def test_scanning_an_audit_code_opens_the_event(client, db, users):
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
        seq, digest = event.seq, event.hash
    login(client, "inspector")
    for code in (f"AUD-{seq}", f"aud-{seq}", f"AUD{seq}", digest[:12], digest.upper()):
        response = client.get("/scan", params={"code": code})
        assert response.status_code == 303, code
        assert response.headers["location"] == f"/oversight/audit/{seq}"
    assert client.get(f"/oversight/audit/{seq}").status_code == 200
    login(client, "analyst")  # no audit.read
    assert client.get("/scan", params={"code": f"AUD-{seq}"}).status_code == 404


def test_a_code_that_matches_nothing_gives_a_clear_404(client, users):
    login_en(client, "quality-manager")
    for code in ("SMP-2099-000001", "AUD-999999999", "no-such-person"):
        response = client.get("/scan", params={"code": code})
        assert response.status_code == 404
        assert f"No record you can see matches the code {code}" in response.text


def test_the_scanned_code_is_shown_escaped(client, users):
    login(client, "quality-manager")
    response = client.get("/scan", params={"code": "<script>alert(1)</script>"})
    assert response.status_code == 404
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


@pytest.mark.parametrize("code", ["", "   ", "\x07BEL", "AUD-1\x1b[2J", "A" * 500, "A" * 600, "\x00"])
def test_a_malformed_code_gives_a_clear_422(client, users, code):
    login(client, "quality-manager")
    page = client.get("/scan", params={"code": code})
    assert page.status_code == 422
    assert "data-code=" in page.text
    assert "Traceback" not in page.text
    api_like = client.get("/scan", params={"code": code}, headers={"Accept": "application/json"})
    body = api_like.json()
    assert api_like.status_code == 422 and body["code"] in ("malformed_barcode", "validation_error",
                                                           "nul_in_input")
    client.cookies.set("lims_lang", "en")
    english = client.get("/scan", params={"code": code}, headers={"Accept": "application/json"}).json()
    if english["code"] == "malformed_barcode":
        assert english["detail"] == "Malformed barcode: printable characters only, 1–128 long."


# ---------------------------------------------------------------- query counts


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def test_the_dashboard_costs_the_same_however_much_work_waits(client, db, users, count_queries):
    login(client, "quality-manager")
    few = statements(client, count_queries, "/dashboard")
    with db.transaction() as session:
        admin = service.get_user(session, users["admin"].id)
        for i in range(20):
            person = service.create_user(session, None, f"waiting-{i:02d}", f"新人{i}", PASSWORD,
                                         check_permission=False)
            service.propose_role(session, admin, person.id, "analyst")
    many = statements(client, count_queries, "/dashboard")
    assert cards(client.get("/dashboard"))["/people/roles"][0] == 20
    assert many == few
    assert many <= 2 + len(cards(client.get("/dashboard")))  # the user and roles, then one count per card


def test_the_audit_viewer_costs_the_same_for_few_and_many_events(client, db, users, count_queries):
    login(client, "quality-manager")
    few = statements(client, count_queries, "/oversight/audit")
    with db.transaction() as session:
        for i in range(200):
            audit.append(session, None, "test.event", "thing", i, None, {"i": i})
    many = statements(client, count_queries, "/oversight/audit")
    page = client.get("/oversight/audit")
    assert len(re.findall(r'href="/oversight/audit/\d+"', page.text)) >= 50  # a full page
    assert "before=" in page.text  # and a link to older events
    assert many == few
    assert many <= 5
    older = statements(client, count_queries, re.search(r'href="(/oversight/audit\?[^"]*before=\d+[^"]*)"',
                                                        page.text).group(1).replace("&amp;", "&"))
    assert older == many


def test_the_json_api_is_described_by_openapi_under_api_v1(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/api/v1/health", "/api/v1/me", "/api/v1/users", "/api/v1/audit/events"} <= set(paths)
    assert all(path.startswith("/api/v1/") for path in paths)  # pages stay out of the API docs


def test_a_menu_entry_offered_to_several_roles_is_listed_once(app):
    """Review is offered to checkers, reviewers and signatories (one entry per permission): a
    user holding two of those roles sees it once."""
    from app.core.permissions import Permission
    from app.core.registry import nav_for

    both = nav_for(frozenset({Permission.REPORTS_CHECK, Permission.REPORTS_REVIEW, Permission.REPORTS_READ}))
    hrefs = [item.href for item in both]
    assert hrefs.count("/review") == 1
    assert "/reports" in hrefs
