"""audit_verify: `verify_chain` (what `lims audit verify` runs) over a 100,000-event trail.

Setup (untimed, once per side): the trail is written as precomputed chained rows, with a real
`create_checkpoint` half-way and another at the end, so there are two checkpoints to check and
exactly `size` events in all.

Ours: `audit.verify_chain(session, key, progress=no-op)` in a `db.reading()` session.

Baseline: a plain DBAPI cursor, `SELECT ... FROM audit_event ORDER BY seq`, and for each row
rebuilds the canonical text from the stored columns exactly as `event_canonical` defines it
(JSON head array + stored before/after) and checks sha256(prev_hash + canonical) with plain
hashlib, plus the links, gapless seq and the checkpoints (hash at seq and HMAC).

The fairer reading of "the same bytes": the baseline builds the canonical text from what it
reads, timed. Precomputing the strings untimed would leave the baseline only hashing, which no
verifier can do — it must derive the bytes from the database rows — so the ratio would then
measure reading and formatting against nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from app.core import audit
from app.core.canonical import ISO_UTC
from bench.registry import BenchContext, Prepared, register
from bench.workload import ACTORS, CHECKPOINT_KEY, bulk_insert, chained_rows, event_inputs

_SELECT = (
    "SELECT seq, occurred_at, actor_id, actor, action, entity_type, entity_id, "
    "before, after, prev_hash, hash FROM audit_event ORDER BY seq"
)


def prepare_trail(ctx: BenchContext) -> str:
    """`ctx.size` events (min 2) with a checkpoint half-way and one at the end; returns the head.

    Checkpoints carry their creation time, so each side's trail ends in a different head hash:
    the runner compares (ok, events, checkpoints, reported head == stored head) instead.
    """
    db = ctx.db
    inputs = event_inputs(max(ctx.size - 2, 0))
    half = len(inputs) // 2
    bulk_insert(db.engine, chained_rows(inputs[:half]))
    with db.transaction() as session:
        audit.create_checkpoint(session, ACTORS[0], CHECKPOINT_KEY)
    with db.reading() as session:
        seq, head_hash = audit.head(session)
    bulk_insert(db.engine, chained_rows(inputs[half:], seq + 1, head_hash))
    with db.transaction() as session:
        audit.create_checkpoint(session, ACTORS[0], CHECKPOINT_KEY)
    with db.reading() as session:
        return audit.head(session)[1]


def _no_progress(_done: int) -> None:
    pass


def ours(ctx: BenchContext) -> Prepared:
    stored_head = prepare_trail(ctx)
    db = ctx.db

    def run() -> audit.VerifyResult:
        with db.reading() as session:
            return audit.verify_chain(session, CHECKPOINT_KEY, _no_progress)

    return Prepared(run, lambda r: (r.ok, r.events, r.checkpoints, r.head_hash == stored_head))


def _iso_utc(value: Any) -> str:
    # SQLite hands back SQLAlchemy's stored text 'YYYY-MM-DD HH:MM:SS.ffffff'; psycopg a datetime
    if isinstance(value, str):
        return value.replace(" ", "T", 1) + "Z"
    return value.strftime(ISO_UTC)


def plain_verify(raw_connection: Any) -> tuple[bool, int, str, int]:
    cursor = raw_connection.cursor()
    cursor.execute("SELECT seq, head_hash, created_at, signature FROM audit_checkpoint")
    checkpoints = cursor.fetchall()
    wanted = {row[0] for row in checkpoints}
    hashes_at: dict[int, str] = {}
    sha256, dumps = hashlib.sha256, json.dumps
    ok, prev, expected = True, audit.GENESIS_HASH, 1
    cursor.execute(_SELECT)
    while ok and (rows := cursor.fetchmany(5000)):
        for seq, at, actor_id, actor, action, etype, eid, before, after, prev_hash, h in rows:
            head = dumps(
                [seq, _iso_utc(at), actor_id, actor, action, etype, eid],
                ensure_ascii=False,
                separators=(",", ":"),
            )
            text = f"{prev}{head[:-1]},{before},{after}]"
            if seq != expected or prev_hash != prev or sha256(text.encode()).hexdigest() != h:
                ok = False
                break
            if seq in wanted:
                hashes_at[seq] = h
            prev, expected = h, expected + 1
    for seq, head_hash, created_at, signature in checkpoints:
        message = f"{seq}:{head_hash}:{_iso_utc(created_at)}".encode("ascii")
        genuine = hmac.new(CHECKPOINT_KEY, message, hashlib.sha256).hexdigest()
        if genuine != signature or (seq and hashes_at.get(seq) != head_hash):
            ok = False
    cursor.close()
    return ok, expected - 1, prev, len(checkpoints)


def baseline(ctx: BenchContext) -> Prepared:
    stored_head = prepare_trail(ctx)
    engine = ctx.db.engine

    def run() -> tuple[bool, int, str, int]:
        raw = engine.raw_connection()
        try:
            return plain_verify(raw)
        finally:
            raw.close()

    return Prepared(run, lambda r: (r[0], r[1], r[3], r[2] == stored_head))


register(
    "audit_verify",
    target=3,
    ours=ours,
    baseline=baseline,
    default_size=100_000,
    description="verify_chain vs DBAPI cursor + hashlib over the same trail",
)
