"""The audit explorer (issue 10 item 4): an entity's whole history with what each event changed,
who did what in a time window, and where the hash chain stands now.

The core viewer (service.list_events) lists raw events; here the trail is read as a record of
changes. Diffs are computed on reading, from the events' before/after JSON, so nothing new is
stored and an altered event shows what it says now (the chain status says whether to trust it).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from app.core import audit
from app.core.audit import AuditCheckpoint, AuditEvent
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.permissions import Permission, ensure
from app.oversight.models import AuditReview
from app.people.models import User

MAX_WINDOW = timedelta(days=366)
MAX_LIMIT = 500
# How many events past the newest checkpoint a page verifies; beyond that it says how far it got
# (a full check is `lims audit verify` or a signed review).
VERIFY_BUDGET = 50_000
VERIFY_BATCH = 5_000
ABSENT = object()

ChangeKind = Literal["added", "removed", "changed"]
Baseline = Literal["event", "previous", "none"]


# ---------------------------------------------------------------- differences


@dataclass(frozen=True)
class FieldChange:
    """One leaf that differs: `path` is dotted for nested objects, `[i]` for list items."""

    path: str
    old: Any
    new: Any
    kind: ChangeKind


def _scalar_list(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def _walk(path: str, old: Any, new: Any) -> Iterator[FieldChange]:
    if old is ABSENT and new is ABSENT:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _walk(f"{path}.{key}" if path else str(key), old.get(key, ABSENT), new.get(key, ABSENT))
        return
    if isinstance(old, dict) and new is ABSENT:  # a removed object: each of its leaves
        for key in sorted(old, key=str):
            yield from _walk(f"{path}.{key}" if path else str(key), old[key], ABSENT)
        return
    if isinstance(new, dict) and old is ABSENT:
        for key in sorted(new, key=str):
            yield from _walk(f"{path}.{key}" if path else str(key), ABSENT, new[key])
        return
    if (isinstance(old, list) and isinstance(new, list)
            and not (_scalar_list(old) and _scalar_list(new))):
        # lists of objects: item by item (an added or removed item shows as such)
        for i in range(max(len(old), len(new))):
            yield from _walk(f"{path}[{i}]", old[i] if i < len(old) else ABSENT,
                             new[i] if i < len(new) else ABSENT)
        return
    if old is ABSENT:
        yield FieldChange(path, None, new, "added")
    elif new is ABSENT:
        yield FieldChange(path, old, None, "removed")
    elif old != new or type(old) is not type(new):  # 1 vs "1" vs true is a change in the record
        yield FieldChange(path, old, new, "changed")


def diff_states(before: Any, after: Any) -> list[FieldChange]:
    """What changed from `before` to `after` (audit JSON): nested objects flattened to dotted
    paths; lists of plain values compared as wholes, lists of objects item by item. None (JSON
    null, no state) counts as nothing, so a creation lists every field as added."""
    return list(_walk("", ABSENT if before is None else before, ABSENT if after is None else after))


# ---------------------------------------------------------------- entity history


@dataclass(frozen=True)
class RelatedEntity:
    entity_type: str
    entity_id: str
    events: int


@dataclass(frozen=True)
class HistoryEntry:
    event: AuditEvent
    changes: list[FieldChange]
    baseline: Baseline  # what the diff compares with: the event's before, the previous after, nothing


@dataclass
class EntityHistory:
    entity_type: str
    entity_id: str
    entries: list[HistoryEntry]  # oldest → newest within the page
    older_cursor: int | None  # before_seq of the page of older events, None on the first events
    total: int
    related: list[RelatedEntity] = field(default_factory=list)


def _page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(detail=f"每页条数须在 1–{MAX_LIMIT} 之间 / page size must be 1–{MAX_LIMIT}")
    return limit


# a key naming another entity (sample_id) → the entity type its events are filed under
ENTITY_ALIASES = {"batch": "analysis_batch", "lot": "rm_lot", "unit": "rm_unit", "solution": "rm_solution",
                  "task": "sampling_task", "plan": "monitoring_plan", "curve": "calibration_curve",
                  "scope": "signatory_scope", "grant": "role_grant", "responsible": "user", "analyst": "user"}
RELATED_LIMIT = 40


def _references(data: Any, found: dict[tuple[str, str], None], depth: int = 0) -> None:
    """(entity type, id) pairs named by *_id / *_ids keys anywhere in an event's JSON."""
    if depth > 4 or len(found) >= RELATED_LIMIT * 3:
        return
    if isinstance(data, dict):
        for key, value in data.items():
            name = str(key)
            if name.endswith("_id") and isinstance(value, int | str) and not isinstance(value, bool) and value != "":
                base = name[:-3]
                found[(ENTITY_ALIASES.get(base, base), str(value))] = None
            elif name.endswith("_ids") and isinstance(value, list):
                base = name[:-4]
                for item in value[:RELATED_LIMIT]:
                    if isinstance(item, int | str) and not isinstance(item, bool):
                        found[(ENTITY_ALIASES.get(base, base), str(item))] = None
            else:
                _references(value, found, depth + 1)
    elif isinstance(data, list):
        for item in data[:RELATED_LIMIT]:
            _references(item, found, depth + 1)


def _related(session: Session, events: Sequence[AuditEvent], entity_type: str,
             entity_id: str) -> list[RelatedEntity]:
    """Entities the events name that have a history of their own: one grouped query."""
    found: dict[tuple[str, str], None] = {}
    for event in events:
        _references(event.before_data, found)
        _references(event.after_data, found)
    found.pop((entity_type, entity_id), None)
    pairs = [p for p in found if len(p[0]) <= 64 and len(p[1]) <= 64][: RELATED_LIMIT * 3]
    if not pairs:
        return []
    rows = session.execute(
        select(AuditEvent.entity_type, AuditEvent.entity_id, func.count())
        .where(tuple_(AuditEvent.entity_type, AuditEvent.entity_id).in_(pairs))
        .group_by(AuditEvent.entity_type, AuditEvent.entity_id)
    ).all()
    order = {pair: i for i, pair in enumerate(pairs)}
    related = sorted((RelatedEntity(t, i, n) for t, i, n in rows), key=lambda r: order[(r.entity_type, r.entity_id)])
    return related[:RELATED_LIMIT]


def _as_state(data: Any) -> dict[str, Any]:
    """An event's after as fields; a non-object after is kept under '' (the whole value)."""
    return dict(data) if isinstance(data, dict) else {"": data}


def entity_history(session: Session, actor: User, entity_type: str, entity_id: str, *,
                   before_seq: int | None = None, limit: int = 50) -> EntityHistory:
    """Every event of one entity, oldest → newest, each with what it changed. The page holds the
    newest `limit` events before `before_seq` (the newest ones at first); one event more is read
    so the oldest event of the page can be compared with the one before it. An event that
    recorded no before is compared, field by field, with the latest value earlier events of the
    entity recorded for the fields it records (so no field is shown removed). Three queries."""
    ensure(session, actor, Permission.AUDIT_READ)
    entity_type, entity_id = entity_type.strip(), entity_id.strip()
    if not entity_type or not entity_id or len(entity_type) > 64 or len(entity_id) > 64:
        raise InvalidInput(detail="实体类型与编号须为 1–64 个字符 / entity type and id must be 1–64 characters")
    limit = _page_limit(limit)
    audit.flush_pending(session)
    where = (AuditEvent.entity_type == entity_type, AuditEvent.entity_id == entity_id)
    stmt = select(AuditEvent).where(*where).order_by(AuditEvent.seq.desc()).limit(limit + 1)
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    rows = list(session.scalars(stmt))
    events, previous = list(reversed(rows[:limit])), rows[limit] if len(rows) > limit else None
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    entries = []
    # what earlier events said each top-level field was (events often record only what they touch)
    known: dict[str, Any] | None = _as_state(previous.after_data) if previous is not None else None
    for event in events:
        before, after = event.before_data, event.after_data
        if before is not None:
            entries.append(HistoryEntry(event, diff_states(before, after), "event"))
        elif known is not None and isinstance(after, dict):
            earlier = {k: known[k] for k in after if k in known}
            entries.append(HistoryEntry(event, diff_states(earlier, after), "previous"))
        elif known is not None:
            entries.append(HistoryEntry(event, diff_states(known.get("", None), after), "previous"))
        else:
            entries.append(HistoryEntry(event, diff_states(None, after), "none"))
        if after is not None:
            known = {**(known or {}), **_as_state(after)}
    return EntityHistory(entity_type, entity_id, entries,
                         events[0].seq if previous is not None and events else None, total,
                         _related(session, events, entity_type, entity_id))


# ---------------------------------------------------------------- who did what


@dataclass(frozen=True)
class ActionCount:
    action: str
    count: int


@dataclass
class UserActivity:
    actor: str
    total: int
    actions: list[ActionCount]


@dataclass
class Activity:
    start: datetime
    end: datetime
    who: str
    action_prefix: str
    users: list[UserActivity]
    events: list[AuditEvent]  # newest first
    next_cursor: int | None

    @property
    def total(self) -> int:
        return sum(u.total for u in self.users)


def check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput(detail="时间须带时区 / times must carry a time zone")
    if start > end:
        raise InvalidInput(detail="起始时间晚于结束时间 / the start is after the end")
    if end - start > MAX_WINDOW + timedelta(minutes=1):  # a page's "to" includes its minute
        raise InvalidInput(detail="时间窗口不得超过 366 天 / the window may not exceed 366 days")


def actor_activity(session: Session, actor: User, *, who: str, start: datetime, end: datetime,
                   action_prefix: str = "", before_seq: int | None = None, limit: int = 100) -> Activity:
    """Who did what across entities in [start, end): counts per user and action (one grouped
    query), then the events themselves, newest first, keyset-paginated on seq (one query)."""
    ensure(session, actor, Permission.AUDIT_READ)
    check_window(start, end)
    limit = _page_limit(limit)
    who, action_prefix = who.strip().lower(), action_prefix.strip()
    if len(who) > 100 or len(action_prefix) > 100:
        raise InvalidInput(detail="筛选条件过长 / filter too long")
    audit.flush_pending(session)
    conditions = [AuditEvent.occurred_at >= start, AuditEvent.occurred_at < end]
    if who:
        conditions.append(AuditEvent.actor == who)
    if action_prefix:
        conditions.append(AuditEvent.action.startswith(action_prefix, autoescape=True))
    grouped = session.execute(
        select(AuditEvent.actor, AuditEvent.action, func.count())
        .where(*conditions).group_by(AuditEvent.actor, AuditEvent.action)
    ).all()
    by_user: dict[str, list[ActionCount]] = {}
    for name, action, count in grouped:
        by_user.setdefault(name, []).append(ActionCount(action, count))
    users = [UserActivity(name, sum(a.count for a in actions),
                          sorted(actions, key=lambda a: (-a.count, a.action)))
             for name, actions in by_user.items()]
    users.sort(key=lambda u: (-u.total, u.actor))
    stmt = select(AuditEvent).where(*conditions).order_by(AuditEvent.seq.desc()).limit(limit + 1)
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    rows = list(session.scalars(stmt)) if users else []
    more = len(rows) > limit
    rows = rows[:limit]
    return Activity(start, end, who, action_prefix, users, rows, rows[-1].seq if more and rows else None)


# ---------------------------------------------------------------- chain status


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str
    expected_hash: str | None = None
    stored_hash: str | None = None


@dataclass
class ChainStatus:
    """Where the chain stands: verified from the newest checkpoint to `verified_seq` just now."""

    head_seq: int
    head_hash: str
    checkpoint: AuditCheckpoint | None
    checkpoint_signature_ok: bool | None  # None: the key file is not readable here
    verified_from: int
    verified_seq: int
    checked_at: datetime
    complete: bool  # reached the head within the budget
    broken: ChainBreak | None = None
    last_review: AuditReview | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None and self.checkpoint_signature_ok is not False


def read_audit_key(path: Path | None) -> bytes | None:
    """The checkpoint key, if present: a page never creates one."""
    if path is None or not path.exists():
        return None
    return path.read_text().strip().encode("ascii")


def _verify_from(session: Session, start_seq: int, start_hash: str,
                 budget: int) -> tuple[int, ChainBreak | None, bool]:
    """Recompute the hashes after `start_seq` in keyset batches; (last seq verified, break, done)."""
    table = AuditEvent.__table__
    columns = [table.c[n] for n in ("seq", "occurred_at", "actor_id", "actor", "action", "entity_type",
                                    "entity_id", "before", "after", "prev_hash", "hash")]
    last, prev, seen = start_seq, start_hash, 0
    while seen < budget:
        size = min(VERIFY_BATCH, budget - seen)
        rows = session.execute(select(*columns).where(table.c.seq > last).order_by(table.c.seq).limit(size)).all()
        for seq, at, actor_id, actor, action, etype, eid, before, after, prev_hash, stored in rows:
            if seq != last + 1:
                return last, ChainBreak(last + 1, f"event {last + 1} is missing (next found: {seq})"), True
            if prev_hash != prev:
                return last, ChainBreak(seq, f"event {seq} does not link to event {seq - 1}", prev, prev_hash), True
            expected = audit.chain_hash(prev, audit.event_canonical(seq, at, actor_id, actor, action, etype, eid,
                                                                    before, after))
            if expected != stored:
                return last, ChainBreak(seq, f"event {seq} was altered (hash mismatch)", expected, stored), True
            last, prev, seen = seq, stored, seen + 1
        if len(rows) < size:
            return last, None, True
    return last, None, False


def chain_status(session: Session, key: bytes | None = None, *, budget: int = VERIFY_BUDGET) -> ChainStatus:
    """The newest checkpoint (its signature checked when `key` is given), whether the event it
    anchors still carries its hash, and the chain recomputed from there to the head. Events
    before the checkpoint are covered by the checkpoint and the signed reviews (a full
    recomputation is `lims audit verify`). A few queries plus one per 5,000 new events."""
    audit.flush_pending(session)
    head_seq, head_hash = audit.head(session)
    checkpoint = audit.latest_checkpoint(session)
    review = session.scalars(select(AuditReview).order_by(AuditReview.id.desc()).limit(1)).first()
    signature_ok: bool | None = None
    start_seq, start_hash = 0, audit.GENESIS_HASH
    broken: ChainBreak | None = None
    if checkpoint is not None:
        if key is not None:
            expected = audit.checkpoint_signature(key, checkpoint.seq, checkpoint.head_hash, checkpoint.created_at)
            signature_ok = hmac.compare_digest(expected, checkpoint.signature)
        if checkpoint.seq > 0:
            stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.seq))
            if stored != checkpoint.head_hash:
                broken = ChainBreak(checkpoint.seq, f"event {checkpoint.seq} no longer matches its checkpoint",
                                    checkpoint.head_hash, stored)
        start_seq, start_hash = checkpoint.seq, checkpoint.head_hash
    if broken is None:
        verified, broken, complete = _verify_from(session, start_seq, start_hash, budget)
    else:
        verified, complete = start_seq, True
    return ChainStatus(head_seq, head_hash, checkpoint, signature_ok, start_seq,
                       verified if broken is None else broken.seq - 1,
                       utcnow(), complete, broken, review)


def chain_status_for(session: Session, actor: User, key: bytes | None = None) -> ChainStatus:
    ensure(session, actor, Permission.AUDIT_READ)
    return chain_status(session, key)


def json_text(value: Any) -> str:
    """A diff cell: strings as they are (Chinese reads as text), everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
