"""Migrations build the schema the models describe, from an empty database, on both engines;
and the health endpoint reports engine, revision and trail length without a login."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

import app.models  # noqa: F401  (registers every table in the metadata)
from app.core import audit
from app.core.db import make_engine, metadata
from app.core.migrate import current_revision, head_revision, upgrade
from tests.conftest import ENGINES, PG_URL, drop_pg_database, pg_execute
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401

APPEND_ONLY = ("audit_event", "audit_checkpoint", "e_signature", "audit_review")


@pytest.fixture(params=ENGINES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database (not the migrated test template)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"lims_empty_{uuid.uuid4().hex[:10]}"
    pg_execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_upgrade_an_empty_database_matches_the_models(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        assert inspect(engine).get_table_names() == []
        upgrade(empty_database_url)
        assert current_revision(engine) == head_revision() != ""
        with engine.connect() as conn:
            # The same options as migrations/env.py, so autogenerate would write an empty migration.
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
            tables = set(inspect(conn).get_table_names())
        assert differences == []
        assert tables == set(metadata.tables) | {"alembic_version"}
        assert _trigger_names(engine) >= {f"{t}_no_{op}" for t in APPEND_ONLY for op in (
            ("update", "delete") if engine.dialect.name == "sqlite" else ("change", "truncate"))}
    finally:
        engine.dispose()


def test_compare_metadata_does_notice_a_difference(empty_database_url):
    """Guards the test above against passing vacuously (e.g. with an empty metadata)."""
    from sqlalchemy import Column, Integer, MetaData, Table

    engine = make_engine(empty_database_url)
    try:
        upgrade(empty_database_url)
        extra = MetaData()
        for table in metadata.tables.values():
            table.to_metadata(extra)
        Table("not_migrated", extra, Column("id", Integer, primary_key=True))
        with engine.connect() as conn:
            differences = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), extra)
        assert [d[0] for d in differences] == ["add_table"]
    finally:
        engine.dispose()


def _trigger_names(engine) -> set[str]:
    from sqlalchemy import text

    sql = ("SELECT name FROM sqlite_master WHERE type = 'trigger'" if engine.dialect.name == "sqlite"
           else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    with engine.connect() as conn:
        return set(conn.execute(text(sql)).scalars())


def test_health_reports_engine_revision_and_the_real_event_count(client, db, users):
    response = client.get("/api/v1/health")  # no login
    assert response.status_code == 200, response.text
    with db.reading() as session:
        events = session.scalar(select(func.count()).select_from(audit.AuditEvent))
    assert events > 0
    assert response.json() == {
        "status": "ok",
        "database": db.dialect,
        "migration": head_revision(),
        "audit_events": events,
    }
    assert db.dialect in ("sqlite", "postgresql")

    with db.transaction() as session:
        audit.append(session, None, "x.made", "x", 1, None, None)
    assert client.get("/api/v1/health").json()["audit_events"] == events + 1


def test_health_needs_no_session_cookie(app, settings):
    from fastapi.testclient import TestClient

    with TestClient(app) as fresh:
        response = fresh.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database"] == make_url(settings.resolved_database_url).get_backend_name()
