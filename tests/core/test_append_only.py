"""The database itself refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the audit trail,
its checkpoints, signatures and reviews: raw SQL, not the application, is what is tested."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.core import audit
from app.oversight import service
from tests.conftest import PASSWORD, make_user
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401

TABLES = {"audit_event": "actor", "audit_checkpoint": "created_by", "e_signature": "printed_name",
          "audit_review": "note"}


@pytest.fixture
def filled(db, settings):
    """At least one row in each protected table (row triggers only fire on existing rows)."""
    qm = make_user(db, "qmgr", "quality_manager")
    with db.transaction() as session:
        audit.create_checkpoint(session, qm, b"k" * 32)
        service.review_trail(session, session.merge(qm), PASSWORD, "monthly", settings)
    with db.reading() as session:
        counts = {t: session.scalar(select(func.count()).select_from(text(t))) for t in TABLES}
    assert all(counts.values()), counts
    return counts


def snapshot(db, table: str) -> list[tuple]:
    with db.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")))


def refused(db, sql: str) -> None:
    forbidden = r"append-only table \w+: (UPDATE|DELETE|TRUNCATE) is forbidden"
    with pytest.raises(DBAPIError, match=forbidden), db.engine.connect() as conn, conn.begin():
        conn.execute(text(sql))


def test_update_is_refused(db, filled):
    for table, column in TABLES.items():
        before = snapshot(db, table)
        refused(db, f"UPDATE {table} SET {column} = 'forged'")
        assert snapshot(db, table) == before


def test_delete_is_refused(db, filled):
    for table in TABLES:
        before = snapshot(db, table)
        refused(db, f"DELETE FROM {table} WHERE 1 = 1")
        refused(db, f"DELETE FROM {table}")  # SQLite's truncate optimisation must not bypass it
        assert snapshot(db, table) == before


def test_truncate_is_refused_on_postgresql(database_url, request):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no TRUNCATE (DELETE without WHERE is tested above)")
    db = request.getfixturevalue("db")
    request.getfixturevalue("filled")
    for table in TABLES:
        before = snapshot(db, table)
        refused(db, f"TRUNCATE {table} CASCADE")
        assert snapshot(db, table) == before


def test_overwriting_through_an_insert_conflict_is_refused(db, filled):
    """INSERT OR REPLACE (SQLite) deletes the old row without firing DELETE triggers unless
    recursive triggers are on; ON CONFLICT DO UPDATE (both engines) is an UPDATE."""
    before = snapshot(db, "audit_event")
    columns = ("seq, occurred_at, actor_id, actor, action, entity_type, entity_id, before, "
               "after, prev_hash, hash")
    values = ("SELECT seq, occurred_at, actor_id, actor, action, entity_type, entity_id, before, "
              "'[\"forged\"]', prev_hash, hash FROM audit_event WHERE seq = 1")
    upsert = (f"INSERT INTO audit_event ({columns}) {values} "
              f"ON CONFLICT (seq) DO UPDATE SET after = excluded.after")
    if db.dialect == "sqlite":
        refused(db, f"INSERT OR REPLACE INTO audit_event ({columns}) {values}")
        refused(db, f"REPLACE INTO audit_event ({columns}) {values}")
    refused(db, upsert)
    assert snapshot(db, "audit_event") == before


def test_inserts_still_work(db, filled):
    with db.transaction() as session:
        audit.append(session, None, "x.made", "x", 1, None, {"ok": True})
    with db.reading() as session:
        assert audit.verify_chain(session, None).ok
