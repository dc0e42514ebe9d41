"""Fixtures: a fresh, migrated database per test on SQLite, and on PostgreSQL too when
LIMS_TEST_POSTGRES_URL is set; an app and client on it; factories; a SQL query counter."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from app.config import Settings
from app.core.db import Database, utcnow
from app.core.migrate import upgrade
from app.main import create_app
from app.people import service
from app.people.models import User

PG_URL = os.environ.get("LIMS_TEST_POSTGRES_URL", "").strip()
ENGINES = ["sqlite"] + (["postgresql"] if PG_URL else [])
PASSWORD = "correct-horse-42"
_counter = itertools.count()


def pytest_report_header(config: pytest.Config) -> str:
    return f"EnviroLIMS test engines: {', '.join(ENGINES)}"


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    Database(f"sqlite:///{path}").engine.dispose()
    return path


def _pg_admin_url() -> str:
    return make_url(PG_URL).set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def pg_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """The migrated database each test's database is copied from. Under pytest-xdist each worker
    migrates its own copy (named after the worker): two workers upgrading one database at once
    collide on the same CREATE TABLEs."""
    if not PG_URL:
        yield None
        return
    name = make_url(PG_URL).database
    assert name and re.match(r"^[A-Za-z0-9_]+$", name)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker:
        assert re.match(r"^gw\d+$", worker)
        name = f"{name}_{worker}"
        pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    Database(url).engine.dispose()
    yield name
    if worker:
        pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_pg_database(template: str) -> str:
    name = f"{template}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "lims.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = new_pg_database(request.getfixturevalue("pg_template"))
        try:
            yield url
        finally:
            drop_pg_database(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var", database_url=database_url, secret_key="test-secret-key",
        language="zh_CN", job_queue="inline",  # a job runs right after the commit that queued it
    )


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture
def db(app) -> Database:
    return app.state.db


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


# ---------------------------------------------------------------- password hashing


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash passwords with small argon2 costs in every test: passwords are still really hashed
    and verified; only the work factor (a deployment concern, ~0.1 s a hash) is lowered, which
    made user-heavy tests spend most of their time in argon2."""
    from argon2 import PasswordHasher

    from app.core import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


# ---------------------------------------------------------------- factories


def make_user(db: Database, username: str, *roles: str, password: str = PASSWORD,
              name_zh: str | None = None, name_en: str = "") -> User:
    """A user holding `roles` since a year ago (granted as the system, like `lims user add`), so
    acts dated earlier today pass the checks made at the time of the act."""
    with db.transaction() as session:
        user = service.create_user(session, None, username, name_zh or f"用户{username}",
                                   password, display_name_en=name_en or username.title(),
                                   check_permission=False)
        for role in roles:
            service.grant_role_as_system(session, user, role, "test", valid_from=utcnow() - timedelta(days=365))
    return user


@pytest.fixture
def users(db: Database) -> dict[str, User]:
    """One user per role, named after the role's key (e.g. users['quality_manager'])."""
    from app.core.roles import Role

    made = {role.value: make_user(db, role.value.replace("_", "-"), role.value) for role in Role}
    made["quality_manager_2"] = make_user(db, "quality-manager-2", "quality_manager")
    return made


def csrf_of(client: TestClient) -> str:
    """The CSRF token of the client's session (renders the login page if it has none)."""
    page = client.get("/login")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    if match:
        return match.group(1)
    page = client.get("/account")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the session's CSRF token."""
    token = csrf_of(client)
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token, "next": "/dashboard"})
    assert response.status_code == 303, response.text
    return csrf_of(client)


# ---------------------------------------------------------------- query counting


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(db: Database):
    """`with count_queries() as q: ...; assert q.count <= N` counts SQL sent to the database
    (transaction control statements excluded)."""

    @contextmanager
    def counting() -> Iterator[QueryCounter]:
        counter = QueryCounter()

        def before(conn, cursor, statement, parameters, context, executemany):
            if not re.match(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)", statement, re.I):
                counter.statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield counter
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return counting


# ---------------------------------------------------------------- races (PostgreSQL)


@pytest.fixture
def pg_db(database_url: str, request: pytest.FixtureRequest) -> Database:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers by BEGIN IMMEDIATE: two writers cannot interleave")
    return request.getfixturevalue("db")


def race(db: Database, *acts: Callable[[Any], Any]) -> list[Any]:
    """Each act in its own thread and transaction, released together; results or errors (the
    errors as values, for the test to look at)."""
    start = threading.Barrier(len(acts))
    results: list[Any] = [None] * len(acts)

    def run(i: int, act: Callable[[Any], Any]) -> None:
        try:
            with db.transaction() as session:
                session.execute(select(1))  # the transaction has begun before the race starts
                start.wait(timeout=30)
                results[i] = act(session)
        except BaseException as exc:  # reported to the test thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, act)) for i, act in enumerate(acts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck (deadlock?)"
    return results


# ---------------------------------------------------------------- refused attempts kept


def refusals_so_far(db: Database) -> int:
    """How many refused inspector attempts the audit trail keeps (issue 10: refused, audited)."""
    from sqlalchemy import func, select

    from app.core.audit import AuditEvent

    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "security.inspector_refused")) or 0


def discount_refusals(db: Database, counts: dict, key: str, since: int) -> dict:
    """`counts` without the refusals kept since `since` in its audit count `key`: what is left is
    what the attempts changed (nothing, for a read-only role)."""
    return {**counts, key: counts[key] - (refusals_so_far(db) - since)}


@pytest.fixture
def no_lims_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LIMS_ variable of the shell running the tests reaches a command under test: CLI tests
    give their settings explicitly."""
    for name in list(os.environ):
        if name.startswith("LIMS_"):
            monkeypatch.delenv(name)
