"""Demo users are hashed cheaply (the demo signs hundreds of records) and upgraded at sign-in."""

from __future__ import annotations

from argon2 import PasswordHasher

from app.core import passwords
from app.people import service
from tests.conftest import PASSWORD


def test_a_demo_hashed_user_is_upgraded_to_production_costs_at_sign_in(db, monkeypatch):
    production = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", production)
    with db.transaction() as session, passwords.demo_hashing():
        user = service.create_user(session, None, "demo-user", "演示", PASSWORD, check_permission=False)
        user_id = user.id
    with db.reading() as session:
        cheap = session.get(type(user), user_id).password_hash
    assert "t=1," in cheap and passwords.needs_rehash(cheap)
    assert passwords._hasher is production  # restored after the block

    with db.transaction() as session:
        service.authenticate(session, "demo-user", PASSWORD)
    with db.reading() as session:
        upgraded = session.get(type(user), user_id).password_hash
    assert upgraded != cheap and "t=2," in upgraded and not passwords.needs_rehash(upgraded)
    assert passwords.verify_password(upgraded, PASSWORD)


def test_a_wrong_password_does_not_upgrade_the_hash(db, monkeypatch):
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    with db.transaction() as session, passwords.demo_hashing():
        user_id = service.create_user(session, None, "demo-user2", "演示", PASSWORD, check_permission=False).id
    from app.core.errors import DomainError
    from app.people.models import User

    try:
        with db.transaction() as session:
            service.authenticate(session, "demo-user2", "wrong-password-123")
    except DomainError:
        pass
    with db.reading() as session:
        assert "t=1," in session.get(User, user_id).password_hash
