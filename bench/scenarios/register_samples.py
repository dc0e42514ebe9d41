"""register_samples: 10,000 client samples with three containers each (size = samples), 1,000
per bulk registration.

Ours: `app.samples.registration.register_adhoc_samples(session, custodian, rows)` in a
`db.transaction()` per 1,000 rows — the full cost the bulk page and the API pay: permission,
validation of every row (preservation rules per parameter set, matrix, place), a block of sample
numbers (insert-on-conflict, row lock, update), a block of container barcodes with their Luhn
digits, the sample, parameter and container rows, one audit event per sample (canonical JSON,
chained hash), commit.

Baseline: the same rows, byte for byte, inserted with bare SQLAlchemy Core `conn.execute(insert
(table), rows)` executemany, 1,000 samples (with their parameters, containers and audit events)
per transaction, plus the two counter rows. The rows are produced untimed by running our service
once in a throwaway SQLite database and reading back what it wrote, so the baseline cannot do
less work than ours (and no second copy of the registration logic can drift from it).

Both sides first create the registrar the same way (untimed). The runner compares the counts of
samples and containers and a digest of every registered row and sample audit event.
"""

from __future__ import annotations

from sqlalchemy import insert

from app.core.audit import AuditEvent
from app.core.db import WRITE_OPTION, Database
from app.samples.models import Container, Sample, SampleParameter
from bench import samples_workload as workload
from bench.databases import scratch_database
from bench.registry import BenchContext, Prepared, register

SAMPLES_PER_TRANSACTION = 1_000


def ours(ctx: BenchContext) -> Prepared:
    actor = workload.make_registrar(ctx.db)
    rows = workload.client_samples(ctx.size)

    def run() -> int:
        return workload.register(ctx.db, actor, rows, SAMPLES_PER_TRANSACTION)

    return Prepared(run, lambda _result: workload.fingerprint(ctx.db))


def _chunks(written: dict[str, list[dict]], size: int) -> list[list[tuple[str, list[dict]]]]:
    """Per transaction: the counters first (one row each, in the first), then `size` samples
    with their parameters, containers and audit events."""
    samples = written[Sample.__tablename__]
    by_sample: dict[str, dict[int, list[dict]]] = {}
    for name, key in ((SampleParameter.__tablename__, "sample_id"), (Container.__tablename__, "sample_id"),
                      (AuditEvent.__tablename__, "entity_id")):
        grouped: dict[int, list[dict]] = {}
        for row in written[name]:
            grouped.setdefault(int(row[key]), []).append(row)
        by_sample[name] = grouped
    chunks = []
    for start in range(0, len(samples), size):
        part = samples[start:start + size]
        ids = [s["id"] for s in part]
        chunk = [(Sample.__tablename__, part)]
        for name in (SampleParameter.__tablename__, Container.__tablename__, AuditEvent.__tablename__):
            chunk.append((name, [row for i in ids for row in by_sample[name].get(i, [])]))
        chunks.append(chunk)
    counters = [("code_counter", written["code_counter"]), ("sample_no_counter", written["sample_no_counter"])]
    if chunks:
        chunks[0] = counters + chunks[0]
    return chunks


def baseline(ctx: BenchContext) -> Prepared:
    workload.make_registrar(ctx.db)
    with scratch_database(None) as url:  # our service, once, untimed: what the rows are
        source = Database(url)
        try:
            workload.register(source, workload.make_registrar(source), workload.client_samples(ctx.size),
                              SAMPLES_PER_TRANSACTION)
            written = workload.rows_of(source)
        finally:
            source.dispose()
    tables = {table.name: table for table in workload.REGISTERED_TABLES}
    tables[AuditEvent.__tablename__] = AuditEvent.__table__
    chunks = _chunks(written, SAMPLES_PER_TRANSACTION)
    engine = ctx.db.engine.execution_options(**{WRITE_OPTION: True})
    statements = {name: insert(table) for name, table in tables.items()}
    seq_offset = _audit_head(ctx.db) - _first_seq(written) + 1

    for chunk in chunks:  # the registrar's own events come first on this side too
        for name, rows in chunk:
            if name == AuditEvent.__tablename__:
                for row in rows:
                    row["seq"] += seq_offset

    def run() -> int:
        for chunk in chunks:
            with engine.begin() as conn:
                for name, rows in chunk:
                    if rows:
                        conn.execute(statements[name], rows)
        return len(written[Sample.__tablename__])

    return Prepared(run, lambda _result: workload.fingerprint(ctx.db))


def _audit_head(db: Database) -> int:
    from app.core import audit

    with db.reading() as session:
        return audit.head(session)[0]


def _first_seq(written: dict[str, list[dict]]) -> int:
    events = written[AuditEvent.__tablename__]
    return events[0]["seq"] if events else 1


register(
    "register_samples",
    target=5,
    ours=ours,
    baseline=baseline,
    default_size=10_000,
    description="10,000 client samples x 3 containers via register_adhoc_samples vs Core executemany",
)
