"""instrument_status: the status of every instrument at a moment — 2,000 instruments with 40,000
records (size = records; one instrument per 20 records).

Setup (untimed, once per side): `bench.instrument_workload.populate` writes the same history on
both sides (same seed, same reference day, explicit ids; ANALYZE on PostgreSQL), then each side
runs its query once: what is timed is the steady state a page sees — a single ~50 ms call would
otherwise also time SQLAlchemy compiling the service's statement for the new engine (once per
process in the app) against the baseline's plain text.

Ours: `app.instruments.status.statuses_at(session, at)` in a `db.reading()` session — what the
list page, the API and the reminders use: the SQL built by the service (union of the records in
force, a window function picking the deciding one), the restrictions of restricted certificates,
and a `StatusReading` per instrument (status, reason, cause, since, due, certificate).

Baseline: one hand-written SQL statement on a bare connection that computes the status string
per instrument in the database (the same rules: current revisions only, accepted or failed
certificates, failed checks, repairs, decisions, retirement outranking everything, then the due
instant against the moment and the warning window) and returns (id, status) rows.

The runner checks both gave every instrument the same status (a digest of all of them).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import Date, bindparam, text

from app.core.db import UTCDateTime
from app.core.labtime import DEFAULT_CALENDAR
from app.instruments.status import statuses_at
from bench.instrument_workload import populate, reference_moment
from bench.registry import BenchContext, Prepared, register

RECORDS_PER_INSTRUMENT = 20
REFERENCE_DAY: date = DEFAULT_CALENDAR.today()  # fixed once, so both sides get identical rows

STATUS_SQL = text("""
WITH effects AS (
    SELECT c.instrument_id, c.event_day, c.recorded_at, c.due_at, 0 AS retire,
           CASE WHEN c.result = 'fail' THEN 1 ELSE 0 END AS suspend
    FROM instrument_calibration c
    LEFT JOIN instrument_calibration_acceptance a ON a.calibration_id = c.id
    WHERE c.effective_from <= :at
      AND (c.result = 'fail' OR a.decision = 'accepted')
      AND NOT EXISTS (SELECT 1 FROM instrument_calibration n WHERE n.supersedes_id = c.id)
    UNION ALL
    SELECT k.instrument_id, k.event_day, k.recorded_at, NULL, 0, 1
    FROM instrument_check k
    WHERE k.effective_from <= :at AND k.result = 'fail'
      AND NOT EXISTS (SELECT 1 FROM instrument_check n WHERE n.supersedes_id = k.id)
    UNION ALL
    SELECT m.instrument_id, m.event_day, m.recorded_at, NULL, 0, 1
    FROM instrument_maintenance m
    WHERE m.effective_from <= :at AND m.kind = 'repair'
      AND NOT EXISTS (SELECT 1 FROM instrument_maintenance n WHERE n.supersedes_id = m.id)
    UNION ALL
    SELECT s.instrument_id, s.event_day, s.recorded_at, NULL,
           CASE WHEN s.action = 'retired' THEN 1 ELSE 0 END,
           CASE WHEN s.action = 'out_of_service' THEN 1 ELSE 0 END
    FROM instrument_service_change s
    WHERE s.effective_from <= :at
),
ranked AS (
    SELECT e.*, ROW_NUMBER() OVER (
        PARTITION BY e.instrument_id ORDER BY e.retire DESC, e.event_day DESC, e.recorded_at DESC) AS rn
    FROM effects e
)
SELECT i.id,
       CASE
           WHEN r.retire = 1 THEN 'retired'
           WHEN i.commissioned_on > :local_day THEN 'out_of_service'
           WHEN r.suspend = 1 THEN 'out_of_service'
           WHEN r.due_at IS NULL OR r.due_at <= :at THEN 'overdue'
           WHEN r.due_at <= :window_end THEN 'due_soon'
           ELSE 'in_service'
       END AS status
FROM instrument i
LEFT JOIN ranked r ON r.instrument_id = i.id AND r.rn = 1
""").bindparams(bindparam("at", type_=UTCDateTime()), bindparam("window_end", type_=UTCDateTime()),
                bindparam("local_day", type_=Date()))


def instruments_for(size: int) -> int:
    return max(1, size // RECORDS_PER_INSTRUMENT)


def _prepare(ctx: BenchContext) -> None:
    populate(ctx.db, instruments_for(ctx.size), max(ctx.size, instruments_for(ctx.size)), today=REFERENCE_DAY)


def digest(statuses: dict[int, str]) -> tuple[tuple[tuple[str, int], ...], str]:
    """How many in each status, and a hash of every (id, status): equal only if all agree."""
    lines = "\n".join(f"{iid}:{status}" for iid, status in sorted(statuses.items()))
    return tuple(sorted(Counter(statuses.values()).items())), hashlib.sha256(lines.encode()).hexdigest()


def ours(ctx: BenchContext) -> Prepared:
    _prepare(ctx)
    db = ctx.db
    at = reference_moment(db.calendar, REFERENCE_DAY)

    def run() -> dict[int, Any]:
        with db.reading() as session:
            return statuses_at(session, at)

    run()  # warm: see the module docstring
    return Prepared(run, lambda readings: digest({iid: r.status.value for iid, r in readings.items()}))


def baseline(ctx: BenchContext) -> Prepared:
    _prepare(ctx)
    db = ctx.db
    calendar = db.calendar
    at = reference_moment(calendar, REFERENCE_DAY)
    params = {"at": at, "window_end": at + calendar.due_soon, "local_day": calendar.local_date(at)}

    def run() -> list[Any]:
        with db.engine.connect() as conn:
            return conn.execute(STATUS_SQL, params).all()

    run()  # warm, like ours
    return Prepared(run, lambda rows: digest({row[0]: row[1] for row in rows}))


register(
    "instrument_status",
    target=2,
    ours=ours,
    baseline=baseline,
    default_size=2_000 * RECORDS_PER_INSTRUMENT,
    description="statuses_at for all instruments vs one hand-written SQL query",
)
