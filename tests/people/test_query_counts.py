"""Queries are planned (DESIGN.md rule 10): the main people pages send a fixed, small number of
SQL statements however many rows they show."""

from __future__ import annotations

import re

from app.core.db import utcnow
from app.core.passwords import hash_password
from app.people import service
from app.people.models import User
from tests.conftest import PASSWORD, login


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up: first-use caches are not the page's cost
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def add_users(db, count: int, prefix: str) -> None:
    """`count` users, each holding a role, in one transaction (sharing one password hash: the
    page's cost is the point here, not sixty argon2 computations)."""
    password_hash = hash_password(PASSWORD)
    with db.transaction() as session:
        for i in range(count):
            user = User(username=f"{prefix}-{i:03d}", display_name_zh=f"同事{i}",
                        password_hash=password_hash, created_at=utcnow())
            session.add(user)
            session.flush()
            service.grant_role_as_system(session, user, "analyst", "test")


def test_the_user_list_costs_the_same_for_a_few_users_and_a_full_page(client, db, users, count_queries):
    login(client, "admin")
    few = statements(client, count_queries, "/people/users")
    add_users(db, 60, "staff")
    many = statements(client, count_queries, "/people/users")
    page = client.get("/people/users")
    assert len(re.findall(r'href="/people/users/\d+"', page.text)) == 50  # a full first page
    assert "page=2" in page.text
    assert many == few
    assert many <= 6


def test_the_user_api_costs_the_same_for_a_few_users_and_a_full_page(client, db, users, count_queries):
    login(client, "admin")
    few = statements(client, count_queries, "/api/v1/users")
    add_users(db, 60, "staff")
    many = statements(client, count_queries, "/api/v1/users")
    assert len(client.get("/api/v1/users").json()["items"]) == 50
    assert many == few <= 6


def add_grants_and_tokens(db, person_id: int, roles: list[str], tag: str) -> None:
    """A grant per role, each proposed by its own admin and decided by its own quality
    manager, and a token per role: every row names other people the page must show."""
    with db.transaction() as session:
        for i, role in enumerate(roles):
            admin = service.create_user(session, None, f"admin-{tag}{i}", f"管理员{i}", PASSWORD,
                                        check_permission=False)
            qm = service.create_user(session, None, f"qm-{tag}{i}", f"质量{i}", PASSWORD,
                                     check_permission=False)
            service.grant_role_as_system(session, admin, "admin", "test")
            service.grant_role_as_system(session, qm, "quality_manager", "test")
            grant = service.propose_role(session, admin, person_id, role)
            service.decide_role(session, qm, grant.id, approve=i % 2 == 0, note="reason")
            service.create_token(session, admin, person_id, f"token {tag}{i}", check_permission=False)


def test_a_user_page_costs_the_same_with_many_grants_and_tokens(client, db, users, count_queries):
    person = users["analyst"].id
    login(client, "admin")
    add_grants_and_tokens(db, person, ["sampler"], "a")
    few = statements(client, count_queries, f"/people/users/{person}")
    add_grants_and_tokens(db, person, ["custodian", "checker", "reviewer", "signatory", "technical_manager"], "b")
    many = statements(client, count_queries, f"/people/users/{person}")
    page = client.get(f"/people/users/{person}")
    assert all(f"admin-b{i}" in page.text and f"qm-b{i}" in page.text for i in range(5))
    assert page.text.count("token b") == 5
    assert many == few
    assert many <= 8
