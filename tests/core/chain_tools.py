"""Helpers for the audit-trail tests: tampering through raw SQL with the triggers dropped,
and running the `lims` CLI in-process against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from typer.testing import CliRunner, Result

from app.config import Settings
from app.core import audit, passwords
from app.core.append_only import protect, unprotect
from app.core.db import Database

EVENTS = audit.AuditEvent.__table__
CHECKPOINTS = audit.AuditCheckpoint.__table__
PAYLOAD = ("occurred_at", "actor_id", "actor", "action", "entity_type", "entity_id",
           "before", "after", "prev_hash", "hash")


@contextmanager
def unprotected(db: Database, *tables: str) -> Iterator[Connection]:
    """A raw connection on which `tables` accept UPDATE/DELETE; protection is restored after."""
    tables = tables or ("audit_event",)
    with db.engine.connect() as conn, conn.begin():
        unprotect(conn, *tables)
        yield conn
        protect(conn, *tables)


def add_events(db: Database, n: int, entity_type: str = "sample") -> None:
    """Append `n` events, one transaction each."""
    for i in range(n):
        with db.transaction() as session:
            audit.append(session, None, "test.event", entity_type, i, None, {"i": i})


def rows(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings()]


def tamper_after(db: Database, seq: int, after: str) -> None:
    with unprotected(db) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(after=after))


def delete_event(db: Database, *seqs: int) -> None:
    with unprotected(db) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq.in_(seqs)))


def swap_events(db: Database, a: int, b: int) -> None:
    """Swap everything but seq between events a and b (hash is unique: go through a placeholder)."""
    by_seq = {r["seq"]: r for r in rows(db)}
    with unprotected(db) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == a).values(hash="x" * 64))
        conn.execute(update(EVENTS).where(EVENTS.c.seq == b)
                     .values(**{k: by_seq[a][k] for k in PAYLOAD}))
        conn.execute(update(EVENTS).where(EVENTS.c.seq == a)
                     .values(**{k: by_seq[b][k] for k in PAYLOAD}))


def rewrite_chain(db: Database, seq: int, after: str) -> None:
    """The attack checkpoints exist for: alter one event, then recompute every hash after it so
    that the chain on its own verifies again."""
    prev = audit.GENESIS_HASH
    with unprotected(db) as conn:
        for row in [dict(r) for r in
                    conn.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings()]:
            if row["seq"] == seq:
                row["after"] = after
            canonical = audit.event_canonical(
                row["seq"], row["occurred_at"], row["actor_id"], row["actor"], row["action"],
                row["entity_type"], row["entity_id"], row["before"], row["after"])
            new_hash = audit.chain_hash(prev, canonical)
            conn.execute(update(EVENTS).where(EVENTS.c.seq == row["seq"])
                         .values(after=row["after"], prev_hash=prev, hash=new_hash))
            prev = new_hash


def run_cli(settings: Settings, *args: str, key_file: Path | None = None) -> Result:
    """`lims <args>` in-process, configured by environment like the real command."""
    env = {
        "LIMS_DATABASE_URL": settings.resolved_database_url,
        "LIMS_DATA_DIR": str(settings.data_dir),
        "LIMS_AUDIT_KEY_FILE": str(key_file) if key_file else None,
    }
    from app.cli import app as cli_app

    return CliRunner().invoke(cli_app, list(args), env=env)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import into a test module to hash passwords with small argon2 costs there. Passwords are
    still really hashed and verified; only the work factor (a benchmark concern) is lowered."""
    monkeypatch.setattr(passwords, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
