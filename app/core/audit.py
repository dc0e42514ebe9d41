"""The hash-chained audit trail (DESIGN.md rule 5).

Every state change appends an event in the same transaction as the change. Each event's hash
is SHA-256(prev_hash + canonical), so changing, deleting or reordering any row breaks the chain
from that row on. Database triggers forbid UPDATE and DELETE. Because someone with database
access could still rewrite the whole chain consistently, checkpoints anchor it: the seq and head
hash signed with an HMAC key kept outside the database.

Appends are buffered per transaction and written with one executemany just before commit; the
chain head is read once per transaction under a lock (PostgreSQL advisory lock; SQLite's
BEGIN IMMEDIATE), so concurrent writers can never fork the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, event, insert, select
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core.canonical import ISO_UTC, canonical_json
from app.core.db import UTCDateTime, utcnow

GENESIS_HASH = "0" * 64
PG_AUDIT_LOCK_KEY = 7_243_001  # arbitrary constant naming the audit-append advisory lock
_STATE_KEY = "lims_audit_state"


class Actor(Protocol):
    id: int | None
    username: str


@dataclass(frozen=True)
class SystemActor:
    """Acts done by the system itself (migrations, scheduled jobs, the CLI bootstrap)."""

    id: int | None = None
    username: str = "system"


SYSTEM = SystemActor()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_entity", "entity_type", "entity_id", "seq"),
        Index("ix_audit_event_actor", "actor_id", "seq"),
        Index("ix_audit_event_occurred_at", "occurred_at"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    actor: str = Field(sa_column=Column(String(100), nullable=False))
    action: str = Field(sa_column=Column(String(100), nullable=False))
    entity_type: str = Field(sa_column=Column(String(64), nullable=False))
    entity_id: str = Field(sa_column=Column(String(64), nullable=False))
    before: str = Field(sa_column=Column(Text, nullable=False))
    after: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))

    @property
    def before_data(self) -> Any:
        return json.loads(self.before)

    @property
    def after_data(self) -> Any:
        return json.loads(self.after)


class AuditCheckpoint(SQLModel, table=True):
    """An anchor: (seq, head hash) signed with a key that is not in the database."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    head_hash: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_column=Column(String(100), nullable=False))
    signature: str = Field(sa_column=Column(String(64), nullable=False))


def event_canonical(
    seq: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: str,
    after: str,
) -> str:
    """The canonical text of an event: a JSON array; before/after are already canonical."""
    head = json.dumps(
        [seq, occurred_at.strftime(ISO_UTC), actor_id, actor, action, entity_type, entity_id],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return f"{head[:-1]},{before},{after}]"


def chain_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


@dataclass
class _TransactionState:
    head_seq: int
    head_hash: str
    pending: list[dict[str, Any]] = field(default_factory=list)


def _state(session: Session) -> _TransactionState:
    state = session.info.get(_STATE_KEY)
    if state is None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select_advisory_lock())
        row = session.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
        state = _TransactionState(row[0], row[1]) if row else _TransactionState(0, GENESIS_HASH)
        session.info[_STATE_KEY] = state
    return state


def select_advisory_lock() -> Any:
    from sqlalchemy import func

    return select(func.pg_advisory_xact_lock(PG_AUDIT_LOCK_KEY))


def append(
    session: Session,
    actor: Actor | None,
    action: str,
    entity_type: str,
    entity_id: Any,
    before: Any = None,
    after: Any = None,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Append one event to the chain in the caller's transaction; returns the row as a dict."""
    actor = actor or SYSTEM
    state = _state(session)
    seq = state.head_seq + 1
    occurred_at = (at or utcnow()).astimezone(UTC)
    before_json, after_json = canonical_json(before), canonical_json(after)
    row = {
        "seq": seq,
        "occurred_at": occurred_at,
        "actor_id": actor.id,
        "actor": actor.username,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "before": before_json,
        "after": after_json,
        "prev_hash": state.head_hash,
    }
    row["hash"] = chain_hash(
        state.head_hash,
        event_canonical(
            seq, occurred_at, actor.id, actor.username, action, entity_type, row["entity_id"],
            before_json, after_json,
        ),
    )
    state.pending.append(row)
    state.head_seq, state.head_hash = seq, row["hash"]
    return row


def flush_pending(session: Session) -> None:
    """Write buffered events now (called before commit and before reading the trail)."""
    state: _TransactionState | None = session.info.get(_STATE_KEY)
    if state and state.pending:
        rows, state.pending = state.pending, []
        session.execute(insert(AuditEvent.__table__), rows)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    flush_pending(session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_head(session: Session) -> None:
    session.info.pop(_STATE_KEY, None)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A savepoint the chain survives: if the block fails, its rows and the events it appended
    are undone together, and the next event chains to the last one that stays."""
    flush_pending(session)
    state = _state(session)
    mark = (state.head_seq, state.head_hash)
    try:
        with session.begin_nested():
            yield
            flush_pending(session)
    except BaseException:
        state.head_seq, state.head_hash = mark
        state.pending = []
        raise


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest event, (0, GENESIS_HASH) on an empty trail."""
    flush_pending(session)
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


# ---------------------------------------------------------------- checkpoints (anchors)


def read_or_create_audit_key(path: Path) -> bytes:
    from app.config import read_or_create_key

    return read_or_create_key(path).encode("ascii")


def checkpoint_signature(key: bytes, seq: int, head_hash: str, created_at: datetime) -> str:
    message = f"{seq}:{head_hash}:{created_at.strftime(ISO_UTC)}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


_ANCHORS_KEY = "lims_audit_anchor_lines"  # (path, line) written after commit; see read_anchors


def _anchor_line(checkpoint: AuditCheckpoint) -> str:
    return (f"{checkpoint.seq} {checkpoint.head_hash} "
            f"{checkpoint.created_at.strftime(ISO_UTC)} {checkpoint.signature}\n")


@event.listens_for(Session, "after_commit")
def _write_anchors(session: Session) -> None:
    for path, line in session.info.pop(_ANCHORS_KEY, []):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="ascii") as handle:
            handle.write(line)


@event.listens_for(Session, "after_rollback")
def _drop_anchors(session: Session) -> None:
    session.info.pop(_ANCHORS_KEY, None)


def read_anchors(path: Path) -> list[AuditCheckpoint]:
    """The checkpoints recorded outside the database; a damaged line becomes an anchor whose
    signature cannot verify, so it is reported rather than skipped."""
    if not path.exists():
        return []
    anchors = []
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        parts = line.split()
        try:
            seq, head_hash, created, signature = int(parts[0]), parts[1], parts[2], parts[3]
            created_at = datetime.strptime(created, ISO_UTC).replace(tzinfo=UTC)
        except (IndexError, ValueError):
            seq, head_hash, created_at, signature = 0, f"damaged line {number}", utcnow(), ""
        anchors.append(AuditCheckpoint(seq=seq, head_hash=head_hash, created_at=created_at,
                                       created_by="anchor file", signature=signature))
    return anchors


def create_checkpoint(
    session: Session, actor: Actor | None, key: bytes, anchor_file: Path | None = None
) -> AuditCheckpoint:
    """Anchor the current head (in the database and, after commit, in `anchor_file`); the
    checkpoint itself is then recorded in the trail."""
    actor = actor or SYSTEM
    seq, head_hash = head(session)
    created_at = utcnow()
    checkpoint = AuditCheckpoint(
        seq=seq,
        head_hash=head_hash,
        created_at=created_at,
        created_by=actor.username,
        signature=checkpoint_signature(key, seq, head_hash, created_at),
    )
    session.add(checkpoint)
    session.flush()
    if anchor_file is not None:
        session.info.setdefault(_ANCHORS_KEY, []).append((anchor_file, _anchor_line(checkpoint)))
    append(
        session, actor, "audit.checkpoint", "audit_checkpoint", checkpoint.id,
        None, {"seq": seq, "head_hash": head_hash},
    )
    return checkpoint


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
    ).first()


# ---------------------------------------------------------------- verification


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head_hash: str
    checkpoints: int = 0
    first_bad_seq: int | None = None
    reason: str = ""


_VERIFY_COLUMNS = (
    "seq", "occurred_at", "actor_id", "actor", "action", "entity_type", "entity_id",
    "before", "after", "prev_hash", "hash",
)


def _iter_rows(session: Session, batch: int = 5000) -> Iterator[Any]:
    """Stream the trail in seq order in keyset batches (constant memory on both engines)."""
    table = AuditEvent.__table__
    stmt = select(*[table.c[name] for name in _VERIFY_COLUMNS]).order_by(table.c.seq).limit(batch)
    last: int | None = None  # no lower bound at first: a row renumbered below 1 must be seen
    while True:
        rows = session.execute(stmt if last is None else stmt.where(table.c.seq > last)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def verify_chain(
    session: Session,
    key: bytes | None,
    progress: Callable[[int], None] | None = None,
    anchors: Sequence[AuditCheckpoint] = (),
) -> VerifyResult:
    """Recompute the whole chain, then check every checkpoint (rows in the database and
    `anchors` kept outside it) lies on it and is genuine."""
    flush_pending(session)
    expected_seq, prev = 1, GENESIS_HASH
    hashes_at: dict[int, str] = {}
    checkpoints = sorted(
        [*session.scalars(select(AuditCheckpoint)).all(), *anchors], key=lambda c: c.seq
    )
    wanted = {c.seq for c in checkpoints}
    bad: tuple[int, str] | None = None
    stray: int | None = None
    count = 0
    for seq, at, actor_id, actor, action, etype, eid, before, after, prev_hash, h in _iter_rows(
        session
    ):
        if seq < 1:  # outside the chain; such rows sort first, so keep checking the chain itself
            stray = seq if stray is None else stray
            continue
        if seq != expected_seq:
            bad = (expected_seq, f"event {expected_seq} is missing (next found: {seq})")
            break
        if prev_hash != prev:
            bad = (seq, f"event {seq} does not link to event {seq - 1}")
            break
        canonical = event_canonical(seq, at, actor_id, actor, action, etype, eid, before, after)
        if chain_hash(prev, canonical) != h:
            bad = (seq, f"event {seq} was altered (hash mismatch)")
            break
        if seq in wanted:
            hashes_at[seq] = h
        prev, expected_seq, count = h, seq + 1, count + 1
        if progress and count % 1000 == 0:
            progress(1000)
    if progress:
        progress(count % 1000)
    if bad is None and stray is not None:
        bad = (expected_seq, f"a row numbered {stray} lies outside the chain "
                             f"(the chain ends at event {expected_seq - 1})")
    for checkpoint in checkpoints:
        problem = _checkpoint_problem(checkpoint, key, hashes_at, count)
        if problem and (bad is None or checkpoint.seq < bad[0]):
            bad = (max(checkpoint.seq, 1), problem)
            break
    if bad:
        return VerifyResult(False, count, prev, len(checkpoints), bad[0], bad[1])
    return VerifyResult(True, count, prev, len(checkpoints))


def _checkpoint_problem(
    checkpoint: AuditCheckpoint, key: bytes | None, hashes_at: dict[int, str], count: int
) -> str | None:
    if key is not None:
        expected = checkpoint_signature(
            key, checkpoint.seq, checkpoint.head_hash, checkpoint.created_at
        )
        if not hmac.compare_digest(expected, checkpoint.signature):
            return f"checkpoint at event {checkpoint.seq} has an invalid signature"
    if checkpoint.seq == 0:
        return None
    if checkpoint.seq > count:
        return f"checkpoint at event {checkpoint.seq} lies beyond the end of the chain"
    if hashes_at.get(checkpoint.seq) != checkpoint.head_hash:
        return f"chain was rewritten: event {checkpoint.seq} no longer matches its checkpoint"
    return None


def count_events(session: Session) -> int:
    """Number of events: seq is gapless, so the head seq is the count (no table scan)."""
    return head(session)[0]
