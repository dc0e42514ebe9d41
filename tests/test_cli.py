"""The `lims` command line: schema, users, tokens, demo data, audit verification, serve."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from app.cli import app as cli_app
from app.config import Settings
from app.core.db import Database, make_engine, utcnow
from app.core.migrate import current_revision, head_revision
from app.core.passwords import verify_password
from app.core.permissions import roles_at
from app.core.roles import Role
from app.demo import DEMO_PASSWORD, DEMO_USERS
from app.main import create_app
from app.people import service
from tests.conftest import ENGINES, PG_URL, pg_execute

PASSWORD = "a-good-password-7"


pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


def lims(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli_app, list(args), env={"COLUMNS": "200", **env}, input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def squash(text_: str) -> str:
    return re.sub(r"\s+", "", text_)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """LIMS_* for the test's migrated database (SQLite, and PostgreSQL when configured)."""
    return {"LIMS_DATA_DIR": str(settings.data_dir), "LIMS_DATABASE_URL": settings.database_url}


@pytest.fixture(params=ENGINES)
def empty_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A new data dir and an empty database: SQLite's default lims.db inside the data dir, or a
    new PostgreSQL database with no tables."""
    env = {"LIMS_DATA_DIR": str(tmp_path / "var")}
    if request.param == "sqlite":
        yield env
        return
    name = f"lims_cli_{uuid.uuid4().hex[:12]}"
    pg_execute(f'CREATE DATABASE "{name}"')
    env["LIMS_DATABASE_URL"] = make_url(PG_URL).set(database=name).render_as_string(
        hide_password=False)
    try:
        yield env
    finally:
        pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database(env: dict[str, str]) -> Database:
    settings = Settings(data_dir=Path(env["LIMS_DATA_DIR"]),
                        database_url=env.get("LIMS_DATABASE_URL"))
    return Database(settings.resolved_database_url)


# ---------------------------------------------------------------- db upgrade


def test_db_upgrade_creates_the_database_at_head(empty_env: dict[str, str]) -> None:
    result = lims(empty_env, "db", "upgrade")

    assert result.exit_code == 0, result.output
    assert f"database at revision {head_revision()}" in result.stdout
    if "LIMS_DATABASE_URL" not in empty_env:
        assert (Path(empty_env["LIMS_DATA_DIR"]) / "lims.db").is_file()
    db = database(empty_env)
    try:
        assert current_revision(db.engine) == head_revision()
    finally:
        db.dispose()
    assert lims(empty_env, "db", "upgrade").exit_code == 0  # a second run is a no-op


# ---------------------------------------------------------------- users


def test_user_add_with_two_roles(env: dict[str, str]) -> None:
    result = lims(env, "user", "add", "alice", "--role", "analyst", "--role", "checker",
                  "--password-stdin", input=f"{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    db = database(env)
    try:
        with db.reading() as session:
            alice = service.find_user(session, "alice")
            assert alice is not None
            assert roles_at(session, alice.id) == {Role.ANALYST, Role.CHECKER}
            assert verify_password(alice.password_hash, PASSWORD)
    finally:
        db.dispose()


def test_user_add_rejects_an_unknown_role(env: dict[str, str]) -> None:
    result = lims(env, "user", "add", "alice", "--role", "analyst", "--role", "wizard",
                  "--password-stdin", input=f"{PASSWORD}\n")

    assert result.exit_code == 2
    assert "Unknown role(s): wizard" in result.output
    assert_no_user(env, "alice")


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", "short-pw", "at least 10 characters"),
        ("alexandria", "Alexandria", "must not be the username"),
    ],
)
def test_user_add_rejects_a_weak_password(
    env: dict[str, str], username: str, password: str, message: str
) -> None:
    result = lims(env, "user", "add", username, "--role", "analyst", "--password-stdin",
                  input=f"{password}\n")

    assert result.exit_code == 1
    assert squash(message) in squash(result.output)
    assert "Traceback" not in result.output
    assert_no_user(env, username)


def test_user_add_rejects_a_duplicate_username(env: dict[str, str]) -> None:
    first = lims(env, "user", "add", "alice", "--role", "analyst", "--password-stdin",
                 input=f"{PASSWORD}\n")
    assert first.exit_code == 0, first.output

    again = lims(env, "user", "add", "Alice", "--role", "checker", "--password-stdin",
                 input="another-password-9\n")

    assert again.exit_code == 1
    assert squash("The username alice is already taken") in squash(again.output)
    db = database(env)
    try:
        with db.reading() as session:
            alice = service.find_user(session, "alice")
            assert roles_at(session, alice.id) == {Role.ANALYST}
            assert verify_password(alice.password_hash, PASSWORD)
    finally:
        db.dispose()


def assert_no_user(env: dict[str, str], username: str) -> None:
    db = database(env)
    try:
        with db.reading() as session:
            assert service.find_user(session, username) is None
    finally:
        db.dispose()


def test_user_passwd_changes_the_password_and_unlocks(env: dict[str, str]) -> None:
    assert lims(env, "user", "add", "alice", "--role", "analyst", "--password-stdin",
                input=f"{PASSWORD}\n").exit_code == 0
    db = database(env)
    try:
        with db.transaction() as session:
            alice = service.find_user(session, "alice")
            alice.failed_logins, alice.locked_until = 3, utcnow() + timedelta(minutes=15)

        result = lims(env, "user", "passwd", "alice", "--password-stdin",
                      input="brand-new-password-2\n")

        assert result.exit_code == 0, result.output
        with db.transaction() as session:
            alice = service.find_user(session, "alice")
            assert alice.locked_until is None and alice.failed_logins == 0
            assert not verify_password(alice.password_hash, PASSWORD)
            assert service.authenticate(session, "alice", "brand-new-password-2").id == alice.id
    finally:
        db.dispose()
    unknown = lims(env, "user", "passwd", "nobody", "--password-stdin", input=f"{PASSWORD}\n")
    assert unknown.exit_code == 1
    assert "No user nobody" in unknown.output


# ---------------------------------------------------------------- tokens


def test_token_create_prints_a_token_that_authenticates_the_api(env: dict[str, str]) -> None:
    assert lims(env, "user", "add", "alice", "--role", "analyst", "--role", "checker",
                "--password-stdin", input=f"{PASSWORD}\n").exit_code == 0

    result = lims(env, "token", "create", "alice", "--name", "x")

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lims_")
    token = lines[0]
    assert result.output.count(token) == 1

    settings = Settings(data_dir=Path(env["LIMS_DATA_DIR"]), database_url=env["LIMS_DATABASE_URL"],
                        secret_key="test-secret-key")
    application = create_app(settings)
    try:
        with TestClient(application) as client:
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"
            assert me.json()["roles"] == ["analyst", "checker"]
            stranger = client.get("/api/v1/me", headers={"Authorization": "Bearer lims_wrong"})
            assert stranger.status_code == 401
    finally:
        application.state.db.dispose()


# ---------------------------------------------------------------- demo


def test_demo_is_idempotent_with_one_user_per_role_and_wal(empty_env: dict[str, str]) -> None:
    first = lims(empty_env, "demo", "--no-serve")
    assert first.exit_code == 0, first.output
    db = database(empty_env)
    try:
        snapshot = demo_users(db)
        second = lims(empty_env, "demo", "--no-serve")
        assert second.exit_code == 0, second.output
        assert demo_users(db) == snapshot
    finally:
        db.dispose()

    if "LIMS_DATABASE_URL" not in empty_env:  # SQLite, in the data dir
        assert_wal_and_foreign_keys(Path(empty_env["LIMS_DATA_DIR"]) / "lims.db")
    assert sorted(role for _, role in snapshot.values()) == sorted(Role)
    assert {username for username in snapshot} == {u.username for u in DEMO_USERS}
    for output in (first.stdout, second.stdout):
        assert DEMO_PASSWORD in output
        for demo in DEMO_USERS:
            assert re.search(rf"\b{demo.username}\b.*\b{demo.role.value}\b", output), demo


def demo_users(db: Database) -> dict[str, tuple[int, Role]]:
    with db.reading() as session:
        result = {}
        for demo in DEMO_USERS:
            user = service.find_user(session, demo.username)
            assert user is not None
            (role,) = roles_at(session, user.id)  # exactly one role each (the rest is pending)
            result[demo.username] = (user.id, role)
        return result


def assert_wal_and_foreign_keys(db_path: Path) -> None:
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
    with sqlite3.connect(db_path) as plain:  # WAL is a property of the file, not the connection
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()


# ---------------------------------------------------------------- audit verify


def make_history(env: dict[str, str]) -> None:
    assert lims(env, "user", "add", "alice", "--role", "analyst", "--password-stdin",
                input=f"{PASSWORD}\n").exit_code == 0
    assert lims(env, "token", "create", "alice", "--name", "x").exit_code == 0
    assert lims(env, "audit", "checkpoint").exit_code == 0


def test_audit_verify_prints_ok_with_the_head(env: dict[str, str]) -> None:
    make_history(env)

    result = lims(env, "audit", "verify")

    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"OK (\d+) events, head ([0-9a-f]{64})", result.stdout.strip())
    assert match, result.stdout
    db = database(env)
    try:
        from app.core import audit

        with db.reading() as session:
            assert (int(match.group(1)), match.group(2)) == audit.head(session)
            assert int(match.group(1)) > 0
    finally:
        db.dispose()


def test_audit_verify_fails_on_an_altered_event(env: dict[str, str]) -> None:
    from app.core.append_only import protect, unprotect

    make_history(env)
    db = database(env)
    try:
        with db.engine.connect() as conn, conn.begin():
            unprotect(conn, "audit_event")
            conn.execute(text("UPDATE audit_event SET after = '{}' WHERE seq = 2"))
            protect(conn, "audit_event")
    finally:
        db.dispose()

    result = lims(env, "audit", "verify")

    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL at seq 2:")


# ---------------------------------------------------------------- serve


def test_serve_help_lists_host_and_port() -> None:
    result = lims({}, "serve", "--help")

    assert result.exit_code == 0, result.output
    assert "--host" in result.output and "--port" in result.output
