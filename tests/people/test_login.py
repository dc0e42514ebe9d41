"""Passwords (argon2id, policy), sign-in refusals, the lockout, deactivation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.core.db import utcnow
from app.people.models import User
from tests.conftest import PASSWORD, login, make_user
from tests.people import events_after, head_seq, login_error, signed_in, try_login
from tests.test_permissions import endpoints

WRONG = "not-the-password-1"


def stored_user(db, username: str) -> User:
    with db.reading() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        session.expunge(user)
        return user


# ---------------------------------------------------------------- passwords


def test_passwords_are_stored_as_argon2id_hashes(client, db, users):
    user = stored_user(db, "analyst")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    token = login(client, "analyst")
    client.post("/account/password", data={"current_password": PASSWORD,
                                           "new_password": "another-Password-99", "csrf_token": token})
    changed = stored_user(db, "analyst")
    assert changed.password_hash.startswith("$argon2id$") and changed.password_hash != user.password_hash


def test_password_policy_refuses_short_passwords_and_the_username(client, db, users):
    token = login(client, "admin")
    json = {"X-CSRF-Token": token, "Accept": "application/json"}
    cases = [
        ("sample-officer", "Short-1", "10"),              # under 10 characters
        ("sample-officer", "SAMPLE-OFFICER", "username"),  # the username, case-insensitively
        ("sample-officer", " Sample-Officer ", "username"),
    ]
    for username, password, says in cases:
        response = client.post("/people/users", headers=json, data={
            "username": username, "display_name_zh": "采样员", "password": password})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "weak_password"
        assert says in body["detail"] or (says == "username" and "用户名" in body["detail"])
    with db.reading() as session:
        assert session.scalars(select(User).where(User.username == "sample-officer")).first() is None
    ok = client.post("/people/users", headers=json, data={
        "username": "sample-officer", "display_name_zh": "采样员", "password": "Sample-Officer-2024"})
    assert ok.status_code == 303
    # the same policy on one's own password change
    own = login(client, "analyst")
    response = client.post("/account/password", headers={"X-CSRF-Token": own, "Accept": "application/json"},
                           data={"current_password": PASSWORD, "new_password": "ANALYST"})
    assert response.status_code == 422 and response.json()["code"] == "weak_password"


# ---------------------------------------------------------------- lockout


def test_five_failures_lock_the_account_for_fifteen_minutes(client, db, users):
    start = head_seq(db)
    for attempt in range(5):
        response = try_login(client, "analyst", WRONG)
        assert response.status_code == 401, attempt
    assert [e.action for e in events_after(db, start)] == ["login.failed"] * 5 + ["user.locked"]
    locked = stored_user(db, "analyst")
    assert locked.locked_until is not None
    assert timedelta(minutes=14) < locked.locked_until - utcnow() <= timedelta(minutes=15)

    # the 6th attempt, even with the right password, is refused as locked
    sixth = try_login(client, "analyst", PASSWORD)
    assert sixth.status_code == 423
    assert "锁定" in login_error(sixth)
    refusal = events_after(db, start)[-1]
    assert refusal.action == "login.refused" and refusal.after_data["reason"] == "locked"
    assert not signed_in(client)

    # once the lock has expired, the right password works again
    with db.transaction() as session:
        session.execute(update(User.__table__).where(User.__table__.c.username == "analyst")
                        .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert try_login(client, "analyst", PASSWORD).status_code == 303
    assert signed_in(client)
    assert events_after(db, start)[-1].action == "login.succeeded"


def test_a_success_resets_the_failure_count(client, db, users):
    for _ in range(4):
        try_login(client, "analyst", WRONG)
    assert try_login(client, "analyst", PASSWORD).status_code == 303
    client.cookies.clear()
    for _ in range(4):
        assert try_login(client, "analyst", WRONG).status_code == 401
    assert stored_user(db, "analyst").locked_until is None


def test_an_unknown_username_is_audited_and_answered_like_a_wrong_password(client, db, users):
    start = head_seq(db)
    unknown = try_login(client, "nobody-here", WRONG)
    wrong = try_login(client, "analyst", WRONG)
    assert unknown.status_code == wrong.status_code == 401
    assert login_error(unknown) == login_error(wrong)
    assert "用户名或密码错误" in login_error(unknown)
    [event, failed] = events_after(db, start)
    assert event.action == "login.unknown_user" and event.after_data == {"username": "nobody-here"}
    assert event.actor == "system" and failed.action == "login.failed"


# ---------------------------------------------------------------- deactivation


def test_a_deactivated_user_cannot_sign_in_and_their_sessions_end(app, client, db, users):
    from fastapi.testclient import TestClient

    with TestClient(app, follow_redirects=False) as theirs:
        login(theirs, "sampler")
        assert signed_in(theirs)
        token = login(client, "admin")
        response = client.post(f"/people/users/{users['sampler'].id}/active",
                               data={"active": "false", "reason": "left the lab", "csrf_token": token})
        assert response.status_code == 303
        assert not signed_in(theirs)  # the existing session ended (session epoch)

        refused = try_login(theirs, "sampler", PASSWORD)
        assert refused.status_code == 403 and "停用" in login_error(refused)
        assert not signed_in(theirs)

    # deactivated, not deleted: the row and its history stay
    row = stored_user(db, "sampler")
    assert row.active is False and row.deactivated_at is not None
    start = head_seq(db)
    assert client.get(f"/people/users/{row.id}").status_code == 200
    assert events_after(db, start) == []


def test_a_wrong_password_for_a_deactivated_account_does_not_reveal_the_account(client, db, users):
    """Only someone who knows the password learns that the account is deactivated; anyone
    else gets the answer an unknown username gets."""
    token = login(client, "admin")
    client.post(f"/people/users/{users['sampler'].id}/active",
                data={"active": "false", "reason": "left the lab", "csrf_token": token})
    client.cookies.clear()
    start = head_seq(db)
    guess = try_login(client, "sampler", WRONG)
    unknown = try_login(client, "nobody-here", WRONG)
    assert guess.status_code == unknown.status_code == 401
    assert login_error(guess) == login_error(unknown)
    refusal = events_after(db, start)[0]
    assert refusal.action == "login.refused" and refusal.after_data["reason"] == "inactive"


def test_a_reactivated_user_can_sign_in_again(client, db, users):
    token = login(client, "admin")
    target = users["sampler"].id
    client.post(f"/people/users/{target}/active", data={"active": "false", "reason": "leave", "csrf_token": token})
    client.post(f"/people/users/{target}/active", data={"active": "true", "reason": "back", "csrf_token": token})
    client.cookies.clear()
    assert try_login(client, "sampler", PASSWORD).status_code == 303


def test_users_are_never_deleted(app, db, users):
    """There is no route that deletes anything, and no user route at all but GET and POST. The
    interference log's delete routes exist only to refuse, and to keep the attempt on record
    (issue 10); they are tested in tests/oversight/test_interference*.py."""
    refusing = {("POST", "/oversight/interference/{record_no}/delete"),
                ("DELETE", "/api/v1/interference/{record_no}")}
    for endpoint in endpoints(app):
        if (endpoint.method, endpoint.path) in refusing:
            continue
        assert endpoint.method != "DELETE", endpoint
        assert "delete" not in endpoint.path.lower(), endpoint
    make_user(db, "short-stay")
    with db.reading() as session:
        assert session.scalars(select(User).where(User.username == "short-stay")).one()
