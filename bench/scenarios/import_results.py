"""import_results: 5,000 results imported from a generic CSV export (size = results, ten metals per
sample row) into a running batch.

Setup (untimed, each side, the same way so ids match): the world of `bench.import_workload` — two
users, the method, a running batch of size/10 positions, the generic wide profile — and the CSV.

Ours: `app.analysis.imports.import_file(session, analyst, batch, "BENCH-WIDE", ...)` in one
`db.transaction()`: permission, size limit, SHA-256 of the file and the check that it was never
imported, decoding (UTF-8 here) and parsing every cell as a Decimal, matching rows to positions by
label and parameters by name, the raw bytes into the content-addressed store with their
`stored_file` row, the `result_import` row, then `record_results` (every reading checked and
calculated with its intermediates, the rows bulk-inserted, one audit event listing them), the
batch state, the import's audit event, commit.

Baseline: the same rows, byte for byte, inserted with bare SQLAlchemy Core executemany in one
transaction: the `stored_file`, `result_import` and 5,000 `analysis_result` rows and the import's
audit events. The rows are produced untimed by running our import once in a throwaway SQLite
database and reading back what it wrote, so the baseline cannot do less work than ours.

The runner compares the number of results and a digest of what each says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from app.analysis import imports
from app.analysis.models import AnalysisBatch, AnalysisResult, ResultImport
from app.core.audit import AuditEvent
from app.core.db import WRITE_OPTION, Database
from app.core.files import StoredFile, file_store
from bench import import_workload as workload
from bench.databases import scratch_database
from bench.registry import BenchContext, Prepared, register

IMPORT_EVENTS = ("file.stored", "results.recorded", "results.imported")


def _import(db: Database, results: int, data_dir: Path) -> tuple[Any, ...]:
    analyst, batch, content = workload.make_world(db, results)
    store = file_store(data_dir)

    def run() -> int:
        with db.transaction() as session:
            done = imports.import_file(session, analyst, batch, workload.PROFILE, "icpms-wide.csv", content, store)
            return done.rows_imported

    return run, content


def ours(ctx: BenchContext) -> Prepared:
    data_dir = Path(tempfile.mkdtemp(prefix="lims_bench_import_"))
    run, _ = _import(ctx.db, ctx.size, data_dir)
    return Prepared(run, lambda _result: workload.fingerprint(ctx.db))


def _written(db: Database, first_seq: int) -> list[tuple[Any, list[dict[str, Any]]]]:
    """What the import wrote, in insert order, by table."""
    with db.engine.connect() as conn:
        def rows(table: Any, *where: Any, order: Any) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(select(table).where(*where).order_by(order))]

        files = StoredFile.__table__
        events = AuditEvent.__table__
        return [
            (files, rows(files, files.c.media_type == imports.CSV_MEDIA_TYPE, order=files.c.id)),
            (ResultImport.__table__, rows(ResultImport.__table__, order=ResultImport.__table__.c.id)),
            (AnalysisResult.__table__, rows(AnalysisResult.__table__, order=AnalysisResult.__table__.c.id)),
            (events, rows(events, events.c.seq >= first_seq, events.c.action.in_(IMPORT_EVENTS),
                          order=events.c.seq)),
        ]


def baseline(ctx: BenchContext) -> Prepared:
    workload.make_world(ctx.db, ctx.size)
    with scratch_database(None) as url, tempfile.TemporaryDirectory(prefix="lims_bench_import_") as tmp:
        source = Database(url)
        try:
            run, _ = _import(source, ctx.size, Path(tmp))
            first_seq = _audit_head(source) + 1
            run()
            written = _written(source, first_seq)
        finally:
            source.dispose()
    offset = _audit_head(ctx.db) + 1 - first_seq
    for table, rows in written:
        if table is AuditEvent.__table__:
            for row in rows:
                row["seq"] += offset
    engine = ctx.db.engine.execution_options(**{WRITE_OPTION: True})
    batch = AnalysisBatch.__table__

    def run_baseline() -> int:
        with engine.begin() as conn:
            for table, rows in written:
                if rows:
                    conn.execute(insert(table), rows)
            conn.execute(batch.update().where(batch.c.batch_no == workload.BATCH_NO).values(state="imported"))
        return len(written[2][1])

    return Prepared(run_baseline, lambda _result: workload.fingerprint(ctx.db))


def _audit_head(db: Database) -> int:
    from app.core import audit

    with db.reading() as session:
        return audit.head(session)[0]


register(
    "import_results",
    target=5,
    ours=ours,
    baseline=baseline,
    default_size=5_000,
    description="5,000 results from a generic CSV via import_file (parse, match, record_results) vs Core executemany",
)
