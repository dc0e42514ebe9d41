"""forward_traceability: everything that used a CRM lot — 50,000 results (size = results) on the
lot's units and a tree of 18 standard solutions up to four dilutions deep, among as many
results of another lot.

Setup (untimed, once per side): `bench.materials_workload.populate` enters the same two lots
through the services and writes the same results on both sides (same reference moment, explicit
ids; ANALYZE on PostgreSQL). Each side then runs BOTH queries once and stops unless they return
the same rows (so neither side is timed on a query that does less), and runs its own once more
to warm up: what is timed is the steady state, as in instrument_status.

Ours: `app.reference_materials.traceability.forward_traceability(session, lot_id)` in a
`db.reading()` session with the bench's `MaterialUseSource` registered — what the lot page and
its impact PDF use: the statement built from the registered sources (the lot's items found by
`root_lot_id`, no recursion; one UNION ALL branch per source), and a `MaterialUsage` per row.

Baseline: one hand-written SQL statement on a bare connection that walks the solution chain
the textbook way, with a recursive CTE from the lot (its units; the solutions prepared from
them by `parent_unit_id`; then, recursively, the solutions prepared from those by
`parent_solution_id`), and joins the recorded uses and the results to those items; the same
columns, the same order (used_at, source, record_id), used_at decoded by the same column type.

The runner compares a digest of every returned row of both sides.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import String, bindparam, text

from app.core.db import Database, UTCDateTime, utcnow
from app.reference_materials.traceability import (
    forward_traceability,
    register_material_use_source,
    unregister_material_use_source,
)
from bench.materials_workload import RESULT_SOURCE, SOURCE, Populated, populate
from bench.registry import BenchContext, Prepared, register

REFERENCE = (utcnow() - timedelta(hours=1)).replace(microsecond=0)  # fixed once: both sides alike

FORWARD_SQL = text(f"""
WITH RECURSIVE lot_units AS (
    SELECT u.id, u.barcode FROM rm_unit u WHERE u.lot_id = :lot_id
),
chain AS (
    SELECT s.id, s.barcode, s.name, s.prepared_at, p.barcode AS parent_barcode
    FROM rm_solution s JOIN lot_units p ON s.parent_unit_id = p.id
    UNION ALL
    SELECT s.id, s.barcode, s.name, s.prepared_at, c.barcode
    FROM rm_solution s JOIN chain c ON s.parent_solution_id = c.id
),
items AS (
    SELECT 'unit' AS item_kind, id AS item_id, barcode FROM lot_units
    UNION ALL
    SELECT 'solution', id, barcode FROM chain
)
SELECT 'solution' AS source, c.barcode AS record_id, c.prepared_at AS used_at, c.parent_barcode AS barcode,
       c.name AS description
FROM chain c
UNION ALL
SELECT 'use', CAST(m.id AS VARCHAR(20)), m.used_at, i.barcode, m.purpose
FROM rm_use m JOIN items i ON m.item_kind = i.item_kind AND m.item_id = i.item_id
WHERE m.consumer_kind <> 'solution'
UNION ALL
SELECT '{SOURCE}', CAST(r.id AS VARCHAR(20)), r.analysed_at, i.barcode, r.sample_code
FROM bench_analysis_result r JOIN items i ON r.item_kind = i.item_kind AND r.item_id = i.item_id
ORDER BY used_at, source, record_id
""").bindparams(bindparam("lot_id")).columns(
    source=String(), record_id=String(), used_at=UTCDateTime(), barcode=String(), description=String())


def service_rows(db: Database, lot_id: int) -> list[Any]:
    register_material_use_source(RESULT_SOURCE)
    try:
        with db.reading() as session:
            return forward_traceability(session, lot_id)
    finally:
        unregister_material_use_source(RESULT_SOURCE.name)


def baseline_rows(db: Database, lot_id: int) -> list[Any]:
    with db.engine.connect() as conn:
        return conn.execute(FORWARD_SQL, {"lot_id": lot_id}).all()


def digest(rows: list[tuple[str, str, Any, str, str]]) -> tuple[int, tuple[tuple[str, int], ...], str]:
    """How many rows of each source, and a hash of every row in order: equal only if all agree."""
    counts: dict[str, int] = {}
    sha = hashlib.sha256()
    for source, record_id, used_at, barcode, description in rows:
        counts[source] = counts.get(source, 0) + 1
        sha.update(f"{source}|{record_id}|{used_at.isoformat()}|{barcode}|{description or ''}\n".encode())
    return len(rows), tuple(sorted(counts.items())), sha.hexdigest()


def of_usages(usages: list[Any]) -> tuple[int, tuple[tuple[str, int], ...], str]:
    return digest([(u.source, u.record_id, u.used_at, u.barcode, u.description) for u in usages])


def of_rows(rows: list[Any]) -> tuple[int, tuple[tuple[str, int], ...], str]:
    return digest([tuple(row) for row in rows])


def _prepare(ctx: BenchContext) -> Populated:
    """The workload, and both queries agreeing on it before anything is timed."""
    populated = populate(ctx.db, ctx.size, REFERENCE)
    ours_digest = of_usages(service_rows(ctx.db, populated.lot_id))
    baseline_digest = of_rows(baseline_rows(ctx.db, populated.lot_id))
    if ours_digest != baseline_digest:
        raise RuntimeError(f"forward_traceability: the service gave {ours_digest[:2]}, "
                           f"the recursive CTE {baseline_digest[:2]}: not the same rows")
    expected = populated.results + (populated.items - 4) + 3  # results, solutions, one CRM check per opened unit
    if ours_digest[0] != expected:
        raise RuntimeError(f"forward_traceability: {ours_digest[0]} rows, expected {expected}")
    return populated


def ours(ctx: BenchContext) -> Prepared:
    populated = _prepare(ctx)

    def run() -> list[Any]:
        return service_rows(ctx.db, populated.lot_id)

    run()  # warm: see the module docstring
    return Prepared(run, of_usages)


def baseline(ctx: BenchContext) -> Prepared:
    populated = _prepare(ctx)

    def run() -> list[Any]:
        return baseline_rows(ctx.db, populated.lot_id)

    run()  # warm, like ours
    return Prepared(run, of_rows)


register(
    "forward_traceability",
    target=2,
    ours=ours,
    baseline=baseline,
    default_size=50_000,
    description="forward_traceability of a lot used in 50,000 results vs a hand-written recursive CTE",
)
