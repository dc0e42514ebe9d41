"""audit_append: 100,000 events through `audit.append`, 1,000 per transaction.

Ours: `with db.transaction() as s:` and 1,000 `audit.append(...)` calls, per chunk — the full
cost a service pays: session, head lookup under the lock, canonical JSON, hashing, the buffered
executemany in the before_commit hook, commit.

Baseline: the same 100,000 rows (same columns, byte-identical values, real chained hashes, all
precomputed untimed with `bench.workload.chained_rows`) inserted with a bare SQLAlchemy Core
`conn.execute(insert(table), rows)` executemany, same 1,000 rows per transaction, on the same
engine configuration (WAL/synchronous pragmas, BEGIN IMMEDIATE on SQLite).

Why a second fresh database rather than a copy table: the runner gives every side its own
freshly migrated database, so the baseline writes into a real `audit_event` built by the same
migration — same indexes, unique constraint and append-only triggers — with no copied DDL that
could drift from the migration. Because the rows are identical, both databases end with the same
chain head, which the runner checks.
"""

from __future__ import annotations

from sqlalchemy import insert, select

from app.core import audit
from app.core.db import WRITE_OPTION, Database
from bench.registry import BenchContext, Prepared, register
from bench.workload import chained_rows, event_inputs

EVENTS_PER_TRANSACTION = 1_000


def chain_head(db: Database) -> tuple[int, str | None]:
    table = audit.AuditEvent.__table__
    with db.engine.connect() as conn:
        row = conn.execute(
            select(table.c.seq, table.c.hash).order_by(table.c.seq.desc()).limit(1)
        ).first()
    return (row[0], row[1]) if row else (0, None)


def ours(ctx: BenchContext) -> Prepared:
    inputs = event_inputs(ctx.size)
    db = ctx.db
    append = audit.append

    def run() -> None:
        for start in range(0, len(inputs), EVENTS_PER_TRANSACTION):
            with db.transaction() as session:
                for e in inputs[start : start + EVENTS_PER_TRANSACTION]:
                    append(
                        session, e.actor, e.action, e.entity_type, e.entity_id,
                        e.before, e.after, at=e.at,
                    )

    return Prepared(run, lambda _result: chain_head(db))


def baseline(ctx: BenchContext) -> Prepared:
    rows = chained_rows(event_inputs(ctx.size))
    table = audit.AuditEvent.__table__
    engine = ctx.db.engine.execution_options(**{WRITE_OPTION: True})
    statement = insert(table)

    def run() -> None:
        for start in range(0, len(rows), EVENTS_PER_TRANSACTION):
            with engine.begin() as conn:
                conn.execute(statement, rows[start : start + EVENTS_PER_TRANSACTION])

    return Prepared(run, lambda _result: chain_head(ctx.db))


register(
    "audit_append",
    target=3,
    ours=ours,
    baseline=baseline,
    default_size=100_000,
    description="append events via audit.append vs bare Core executemany, 1,000 per txn",
)
