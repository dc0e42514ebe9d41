"""Audit-trail workload shared by the audit scenarios: realistic events and their chained rows.

Inputs are deterministic (seeded), carry an explicit `at` so that ours and the baseline write
byte-identical rows, and look like what services append: a state change of a result, sample,
calibration... with ~6 fields including a Decimal value and an aware datetime.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from app.core.audit import GENESIS_HASH, AuditEvent, chain_hash, event_canonical
from app.core.canonical import canonical_json

CHECKPOINT_KEY = b"bench-audit-checkpoint-key-not-a-secret"

_ACTIONS = (
    ("sample.receive", "sample", ("registered", "received")),
    ("sample.store", "sample", ("received", "stored")),
    ("result.record", "result", ("pending", "recorded")),
    ("result.review", "result", ("recorded", "reviewed")),
    ("calibration.record", "calibration", ("due", "calibrated")),
    ("report.issue", "report", ("approved", "issued")),
)
_UNITS = ("mg/L", "μg/L", "mg/m³", "pH", "dB(A)", "mg/kg")
_REMARKS = ("", "复测", "平行样", "空白加标", "re-run after QC failure", "现场记录已核对")


@dataclass(frozen=True)
class BenchActor:
    id: int
    username: str


ACTORS = tuple(BenchActor(i, f"analyst{i:02d}") for i in range(1, 9))


@dataclass(frozen=True)
class EventInput:
    actor: BenchActor
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    at: datetime


def _decimal(rng: random.Random) -> Decimal:
    raw = rng.randrange(0, 10**7)
    return Decimal(f"{raw // 10_000}.{raw % 10_000:04d}")


def _state(rng: random.Random, status: str, measured_at: datetime, revision: int) -> dict:
    return {
        "status": status,
        "value": _decimal(rng),
        "unit": rng.choice(_UNITS),
        "measured_at": measured_at,
        "revision": revision,
        "remark": rng.choice(_REMARKS),
    }


def event_inputs(n: int, *, seed: int = 20261123) -> list[EventInput]:
    """`n` events: varying actors, actions and entity ids; about 1 in 6 creates (before=None)."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    entities = max(1, n // 4)
    events = []
    for i in range(n):
        action, entity_type, (old, new) = _ACTIONS[rng.randrange(len(_ACTIONS))]
        at = start + timedelta(microseconds=i * 37_019)
        measured_at = at - timedelta(minutes=rng.randrange(5, 600))
        revision = rng.randrange(1, 4)
        creates = rng.randrange(6) == 0
        events.append(
            EventInput(
                actor=ACTORS[rng.randrange(len(ACTORS))],
                action=action,
                entity_type=entity_type,
                entity_id=f"{entity_type[0].upper()}{rng.randrange(1, entities + 1):08d}",
                before=None if creates else _state(rng, old, measured_at, revision),
                after=_state(rng, new, measured_at, revision + (0 if creates else 1)),
                at=at,
            )
        )
    return events


def chained_rows(
    inputs: list[EventInput], start_seq: int = 1, start_hash: str = GENESIS_HASH
) -> list[dict[str, Any]]:
    """The rows `audit.append` would write for `inputs`, built with the trail's own functions."""
    rows = []
    prev = start_hash
    for seq, e in enumerate(inputs, start=start_seq):
        before, after = canonical_json(e.before), canonical_json(e.after)
        at = e.at.astimezone(UTC)
        h = chain_hash(
            prev,
            event_canonical(
                seq, at, e.actor.id, e.actor.username, e.action, e.entity_type, e.entity_id,
                before, after,
            ),
        )
        rows.append({
            "seq": seq, "occurred_at": at, "actor_id": e.actor.id, "actor": e.actor.username,
            "action": e.action, "entity_type": e.entity_type, "entity_id": e.entity_id,
            "before": before, "after": after, "prev_hash": prev, "hash": h,
        })
        prev = h
    return rows


def bulk_insert(engine: Engine, rows: list[dict[str, Any]], chunk: int = 10_000) -> None:
    """Untimed setup helper: write precomputed rows straight into audit_event."""
    with engine.begin() as conn:
        for start in range(0, len(rows), chunk):
            conn.execute(insert(AuditEvent.__table__), rows[start : start + chunk])
