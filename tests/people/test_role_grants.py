"""Role grants need two people (DOMAIN.md §2 rule 6) and carry validity dates (rule 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import utcnow
from app.core.permissions import roles_at
from app.core.roles import Role
from app.people import service
from app.people.models import RoleGrant
from tests.conftest import login, make_user
from tests.people import events_after, head_seq

JSON = {"Accept": "application/json"}


@pytest.fixture
def newcomer(db):
    """A person with no role yet."""
    return make_user(db, "new-analyst")


def grants_of(db, user_id: int) -> list[dict]:
    with db.reading() as session:
        return [g.model_dump() for g in session.scalars(
            select(RoleGrant).where(RoleGrant.user_id == user_id).order_by(RoleGrant.id))]


def roles_now(db, user_id: int, at=None) -> set[str]:
    with db.reading() as session:
        return {r.value for r in roles_at(session, user_id, at)}


def propose(client: TestClient, csrf: str, user_id: int, role: str, note: str = ""):
    return client.post(f"/people/users/{user_id}/roles", headers={"X-CSRF-Token": csrf, **JSON},
                       data={"role": role, "note": note})


def decide(client: TestClient, csrf: str, grant_id: int, approve: bool, note: str = ""):
    return client.post(f"/people/roles/{grant_id}/decision", headers={"X-CSRF-Token": csrf, **JSON},
                       data={"approve": "true" if approve else "false", "note": note})


def test_a_proposed_role_takes_effect_only_when_a_quality_manager_approves(app, client, db, users, newcomer):
    start = head_seq(db)
    csrf = login(client, "admin")
    assert propose(client, csrf, newcomer.id, "analyst", "training record 12").status_code == 303
    [grant] = grants_of(db, newcomer.id)
    assert grant["status"] == "proposed" and grant["proposed_by_id"] == users["admin"].id
    assert roles_now(db, newcomer.id) == set()
    with TestClient(app, follow_redirects=False) as theirs:
        login(theirs, "new-analyst")
        assert theirs.get("/api/v1/me").status_code == 403  # no role, no permission at all

        qm = login(client, "quality-manager")
        assert decide(client, qm, grant["id"], True).status_code == 303
        assert roles_now(db, newcomer.id) == {"analyst"}
        assert theirs.get("/api/v1/me").json()["roles"] == ["analyst"]  # at their next request
    [approved] = grants_of(db, newcomer.id)
    assert approved["status"] == "active" and approved["decided_by_id"] == users["quality_manager"].id
    # in force from the approval, not from the proposal: between the two the role was not held
    assert approved["valid_from"] == approved["decided_at"] > grant["proposed_at"]
    assert roles_now(db, newcomer.id, at=grant["proposed_at"]) == set()
    assert [e.action for e in events_after(db, start) if e.entity_type == "role_grant"] == [
        "role.proposed", "role.approved"]


def test_an_admin_cannot_propose_a_role_for_themselves(client, db, users):
    csrf = login(client, "admin")
    response = propose(client, csrf, users["admin"].id, "signatory")
    assert response.status_code == 403 and response.json()["code"] == "self_grant_forbidden"
    assert [g["role"] for g in grants_of(db, users["admin"].id)] == ["admin"]


def test_a_quality_manager_cannot_approve_their_own_grant(client, db, users):
    csrf = login(client, "admin")
    propose(client, csrf, users["quality_manager"].id, "checker")
    grant = grants_of(db, users["quality_manager"].id)[-1]
    qm = login(client, "quality-manager")
    response = decide(client, qm, grant["id"], True)
    assert response.status_code == 403 and response.json()["code"] == "self_grant_forbidden"
    assert grants_of(db, users["quality_manager"].id)[-1]["status"] == "proposed"
    other = login(client, "quality-manager-2")
    assert decide(client, other, grant["id"], True).status_code == 303
    assert "checker" in roles_now(db, users["quality_manager"].id)


def test_the_proposer_cannot_approve_even_holding_both_roles(client, db, users, newcomer):
    make_user(db, "admin-and-qm", "admin", "quality_manager")
    csrf = login(client, "admin-and-qm")
    assert propose(client, csrf, newcomer.id, "analyst").status_code == 303
    [grant] = grants_of(db, newcomer.id)
    response = decide(client, csrf, grant["id"], True)
    assert response.status_code == 403 and response.json()["code"] == "self_grant_forbidden"
    assert roles_now(db, newcomer.id) == set()


def test_only_a_quality_manager_decides(client, db, users, newcomer):
    csrf = login(client, "admin")
    propose(client, csrf, newcomer.id, "analyst")
    [grant] = grants_of(db, newcomer.id)
    response = decide(client, csrf, grant["id"], True)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    tm = login(client, "technical-manager")
    assert decide(client, tm, grant["id"], True).status_code == 403


def test_a_refusal_needs_a_reason(client, db, users, newcomer):
    csrf = login(client, "admin")
    propose(client, csrf, newcomer.id, "analyst")
    [grant] = grants_of(db, newcomer.id)
    qm = login(client, "quality-manager")
    for blank in ("", "   "):
        response = decide(client, qm, grant["id"], False, blank)
        assert response.status_code == 422 and response.json()["code"] == "invalid_input"
    assert grants_of(db, newcomer.id)[0]["status"] == "proposed"
    assert decide(client, qm, grant["id"], False, "no 上岗证 for the method yet").status_code == 303
    [grant] = grants_of(db, newcomer.id)
    assert grant["status"] == "rejected" and "上岗证" in grant["note"]
    assert roles_now(db, newcomer.id) == set()
    # a decided grant cannot be decided again
    again = decide(client, qm, grant["id"], True)
    assert again.status_code == 409 and again.json()["code"] == "grant_not_pending"


def test_an_ended_grant_stops_giving_permissions(app, client, db, users, newcomer):
    csrf = login(client, "admin")
    propose(client, csrf, newcomer.id, "technical_manager")
    [grant] = grants_of(db, newcomer.id)
    qm = login(client, "quality-manager")
    decide(client, qm, grant["id"], True)
    with TestClient(app, follow_redirects=False) as theirs:
        login(theirs, "new-analyst")
        assert theirs.get("/people/users").status_code == 200  # users.read via technical_manager
        csrf = login(client, "admin")
        response = client.post(f"/people/roles/{grant['id']}/end", headers={"X-CSRF-Token": csrf, **JSON},
                               data={"reason": ""})
        assert response.status_code == 422  # ending needs a reason too
        response = client.post(f"/people/roles/{grant['id']}/end", headers={"X-CSRF-Token": csrf},
                               data={"reason": "moved to another lab"})
        assert response.status_code == 303
        assert theirs.get("/people/users").status_code == 403
    [ended] = grants_of(db, newcomer.id)
    assert ended["status"] == "active" and ended["valid_to"] is not None  # kept as the record
    assert roles_now(db, newcomer.id) == set()
    middle = ended["valid_from"] + (ended["valid_to"] - ended["valid_from"]) / 2
    assert roles_now(db, newcomer.id, at=middle) == {"technical_manager"}  # the record of the period


def test_a_grant_valid_from_the_future_gives_nothing_now(app, client, db, users, newcomer):
    starts = utcnow() + timedelta(days=7)
    with db.transaction() as session:
        admin = service.get_user(session, users["admin"].id)
        grant = service.propose_role(session, admin, newcomer.id, "technical_manager", valid_from=starts)
        grant_id = grant.id
    qm = login(client, "quality-manager")
    assert decide(client, qm, grant_id, True).status_code == 303
    assert roles_now(db, newcomer.id) == set()
    assert roles_now(db, newcomer.id, at=starts + timedelta(minutes=1)) == {"technical_manager"}
    with TestClient(app, follow_redirects=False) as theirs:
        login(theirs, "new-analyst")
        assert theirs.get("/people/users").status_code == 403
        assert theirs.get("/api/v1/me").status_code == 403


def test_a_grant_with_an_end_date_lapses_by_itself(client, db, users, newcomer):
    with db.transaction() as session:
        admin = service.get_user(session, users["admin"].id)
        grant = service.propose_role(session, admin, newcomer.id, "sampler",
                                     valid_to=utcnow() + timedelta(days=30))
        grant_id = grant.id
    qm = login(client, "quality-manager")
    decide(client, qm, grant_id, True)
    assert roles_now(db, newcomer.id) == {"sampler"}
    assert roles_now(db, newcomer.id, at=utcnow() + timedelta(days=31)) == set()


def test_the_user_list_shows_the_roles_held_now(client, db, users, newcomer):
    """The Roles column shows what is in force today: a grant that ends next month counts, one
    that starts next week does not yet."""
    with db.transaction() as session:
        admin = service.get_user(session, users["admin"].id)
        later = service.propose_role(session, admin, newcomer.id, "signatory",
                                     valid_from=utcnow() + timedelta(days=7))
        temporary = service.propose_role(session, admin, newcomer.id, "sampler",
                                         valid_to=utcnow() + timedelta(days=30))
        qm = service.get_user(session, users["quality_manager"].id)
        service.decide_role(session, qm, later.id, True)
        service.decide_role(session, qm, temporary.id, True)
    login(client, "admin")
    client.cookies.set("lims_lang", "en")
    page = client.get("/people/users", params={"q": "new-analyst"})
    link = f'href="/people/users/{newcomer.id}"'
    row = page.text[page.text.index(link):]
    row = row[: row.index("</tr>")]
    assert Role.SAMPLER.value in row or "Sampler" in row
    assert Role.SIGNATORY.value not in row and "Signatory" not in row
    api = client.get("/api/v1/users").json()["items"]
    assert [u["roles"] for u in api if u["username"] == "new-analyst"] == [["sampler"]]


def test_unknown_roles_and_duplicate_grants_are_refused(client, db, users, newcomer):
    csrf = login(client, "admin")
    response = propose(client, csrf, newcomer.id, "superuser")
    assert response.status_code == 422 and response.json()["code"] == "unknown_role"
    assert propose(client, csrf, newcomer.id, "analyst").status_code == 303
    again = propose(client, csrf, newcomer.id, "analyst")
    assert again.status_code == 409 and again.json()["code"] == "grant_already_held"
    assert len(grants_of(db, newcomer.id)) == 1
