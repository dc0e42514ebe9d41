"""holding_worklist: the first page of the holding-time worklist over 100,000 open sample ×
parameter clocks (size = clocks; four parameters per sample, so 25,000 samples).

Setup (untimed, the same on both sides): a registrar, then samples and their clocks written with
Core executemany in blocks of 5,000 — sampled over the last 17 days, holding times from the
preservation table (12 h to 14 d), one clock in 5,000 without a deadline ("as soon as possible"),
one sample in 50 rejected (its clocks must not be listed); ANALYZE on PostgreSQL. Each side runs
its page once to warm up (statement compilation, plan caches), then the timed run reads the first
page `REPEAT` times: the steady state a busy lab's worklist sees.

Ours: `app.samples.holding.worklist(session, WorklistFilters(), at=AT, size=50)` in a
`db.reading()` session: the as-soon-as-possible group, then the deadline group, each an index
range on ix_holding_clock_open_deadline (open, deadline_at, id) joined to the sample, and a
`ClockReading` (colour, time left) per row. The setup prints how many queries one page costs and
the database's plan of the deadline-group query (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on
SQLite), which shows the index scan.

Baseline: the same two SELECTs written by hand (the bare indexed `... ORDER BY deadline_at, id
LIMIT 51` plus the small group without deadline) on a bare connection, rows as tuples. The runner
checks that both returned the same clock ids in the same order.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, insert, select, text

from app.samples import holding
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample
from bench.registry import BenchContext, Prepared, register
from bench.samples_workload import make_registrar

AT = datetime(2026, 3, 12, 1, 30, tzinfo=UTC)  # when the worklist is read
PAGE = 50
REPEAT = 200
PER_SAMPLE = 4
CHUNK = 5_000
# parameter and its holding time (hours) in the preservation table; None: as soon as possible
PARAMETERS = (("COD", 48), ("NH3-N", 24), ("Cu", 336), ("CODMn", 48), ("TN", 168), ("BOD5", 12), ("TP", 24))
CLOSED = ("rejected", "disposed", "cancelled")

BASELINE_ASAP = text("""
SELECT c.id, c.parameter, c.started_at, c.allowed_hours, c.deadline_at, s.sample_no, s.kind, s.state, s.matrix
FROM holding_clock c JOIN sample s ON s.id = c.sample_id
WHERE c.open = true AND s.state NOT IN ('rejected', 'disposed', 'cancelled') AND c.deadline_at IS NULL
ORDER BY c.id LIMIT :n
""")
BASELINE_DEADLINE = text("""
SELECT c.id, c.parameter, c.started_at, c.allowed_hours, c.deadline_at, s.sample_no, s.kind, s.state, s.matrix
FROM holding_clock c JOIN sample s ON s.id = c.sample_id
WHERE c.open = true AND s.state NOT IN ('rejected', 'disposed', 'cancelled') AND c.deadline_at IS NOT NULL
ORDER BY c.deadline_at, c.id LIMIT :n
""")


def populate(ctx: BenchContext) -> None:
    db = ctx.db
    registrar = make_registrar(db)
    samples = max(1, ctx.size // PER_SAMPLE)
    for first in range(0, samples, CHUNK):
        block = range(first, min(samples, first + CHUNK))
        rows = []
        for i in block:
            sampled = AT - timedelta(minutes=(i * 37) % (17 * 24 * 60))
            rows.append({"id": i + 1, "sample_no": f"BH26-{i + 1:07d}", "kind": "routine", "matrix": "water",
                         "scheduled_on": sampled.date(), "state": "rejected" if i % 50 == 49 else "received",
                         "collected_at": sampled, "registered_at": sampled - timedelta(hours=1),
                         "registered_by_id": registrar.id, "signed_revision": 1})
        clocks = []
        for i in block:
            started = rows[i - first]["collected_at"]
            for k in range(PER_SAMPLE):
                number = i * PER_SAMPLE + k
                parameter, hours = PARAMETERS[(i + k) % len(PARAMETERS)]
                if number % 5000 == 7:
                    parameter, hours = "FC", None
                clocks.append({"id": number + 1, "sample_id": i + 1, "parameter": parameter, "started_at": started,
                               "allowed_hours": hours, "open": True,
                               "deadline_at": None if hours is None else started + timedelta(hours=hours)})
        with db.transaction() as session:
            session.execute(insert(Sample), rows)
            session.execute(insert(HoldingClock), clocks)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('sample', 'id'), (SELECT max(id) FROM sample))"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('holding_clock', 'id'), "
                              "(SELECT max(id) FROM holding_clock))"))
            conn.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE sample"))
            conn.execute(text("ANALYZE holding_clock"))


def digest(ids: list[int]) -> tuple[int, str]:
    return len(ids), hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def explain(ctx: BenchContext, statement: str, parameters: Any) -> list[str]:
    prefix = "EXPLAIN " if ctx.db.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with ctx.db.engine.connect() as conn:
        return [" ".join(str(v) for v in row) for row in conn.exec_driver_sql(prefix + statement, parameters)]


def ours(ctx: BenchContext) -> Prepared:
    populate(ctx)
    db = ctx.db
    filters = holding.WorklistFilters()

    def page() -> list[int]:
        with db.reading() as session:
            return [row.clock_id for row in holding.worklist(session, filters, at=AT, size=PAGE).rows]

    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        first = page()
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    main = next((s for s in statements if "deadline_at IS NOT NULL" in s[0]), statements[-1])
    with db.reading() as session:
        total = session.scalar(select(func.count()).select_from(HoldingClock)) or 0
    print(f"\nholding_worklist: {total:,} open clocks; the first page ({len(first)} rows) took "
          f"{len(statements)} queries")
    print("holding_worklist: plan of the deadline-group query:")
    for line in explain(ctx, *main):
        print(f"    {line}")

    def run() -> list[int]:
        ids: list[int] = []
        for _ in range(REPEAT):
            ids = page()
        return ids

    return Prepared(run, digest)


def baseline(ctx: BenchContext) -> Prepared:
    populate(ctx)
    db = ctx.db

    def page() -> list[int]:
        with db.engine.connect() as conn:
            rows = conn.execute(BASELINE_ASAP, {"n": PAGE + 1}).all()
            rows += conn.execute(BASELINE_DEADLINE, {"n": max(1, PAGE + 1 - len(rows))}).all()
        return [row[0] for row in rows[:PAGE]]

    page()  # warm, like ours

    def run() -> list[int]:
        ids: list[int] = []
        for _ in range(REPEAT):
            ids = page()
        return ids

    return Prepared(run, digest)


register(
    "holding_worklist",
    target=3,
    ours=ours,
    baseline=baseline,
    default_size=100_000,
    description="first page of the holding-time worklist over 100,000 open clocks vs the bare indexed SELECTs",
)
