"""Idempotency keys for JSON API writes: a retried request (lost response, double submit) gets
the first response instead of acting twice.

The key row is inserted in the same transaction as the act, before the act: a concurrent
duplicate blocks on the primary key until the first commits and then fails on it, so exactly
one act happens; the caller answers the loser with `replay` after the first has committed.
A key reused with a different body is refused: it is a client bug, not a retry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Column, ForeignKey, Integer, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, committing, utcnow
from app.core.errors import DomainError, InvalidInput

KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_key"

    scope: str = Field(primary_key=True, max_length=40)  # e.g. "samples.register"
    key: str = Field(primary_key=True, max_length=64)
    actor_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    request_sha256: str = Field(max_length=64)
    response_status: int = Field(default=0)
    response_body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(sa_type=UTCDateTime)


class BadIdempotencyKey(InvalidInput):
    code = "bad_idempotency_key"
    message_zh = "Idempotency-Key 无效：需要 8–64 个字母、数字或 _ . : - 字符。"
    message_en = "Invalid Idempotency-Key: 8–64 letters, digits or _ . : - expected."


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    http_status = 409
    message_zh = "该 Idempotency-Key 已用于另一内容不同的请求。"
    message_en = "This Idempotency-Key was already used for a request with a different body."


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def clean_key(key: str) -> str:
    key = (key or "").strip()
    if not KEY_RE.match(key):
        raise BadIdempotencyKey()
    return key


def replay(session: Session, scope: str, key: str, actor_id: int, body_hash: str) -> Replay | None:
    """The stored response of an earlier request with this key, or None if there is none."""
    row = session.execute(
        select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key,
                                        IdempotencyRecord.actor_id == actor_id)
    ).scalar_one_or_none()
    if row is None or row.response_status == 0:
        return None
    if row.request_sha256 != body_hash:
        raise IdempotencyConflict()
    return Replay(row.response_status, json.loads(row.response_body))


def claim(session: Session, scope: str, key: str, actor_id: int, body_hash: str) -> IdempotencyRecord:
    """Insert the key before acting (flushed now, so a concurrent twin waits on it)."""
    row = IdempotencyRecord(scope=scope, key=key, actor_id=actor_id, request_sha256=body_hash,
                            created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def remember(session: Session, row: IdempotencyRecord, status: int, body: Any) -> None:
    """Store the response the act produced, in the act's transaction."""
    row.response_status = status
    row.response_body = json.dumps(body, sort_keys=True, default=str, ensure_ascii=False)
    session.flush()


def respond_once(request: Request, session: Session, scope: str, key_header: str | None, actor_id: int,
                 payload: Any, act: Callable[[], tuple[int, Any]]) -> JSONResponse:
    """Run `act` (returning status and JSON body) in one committed unit of work, once per
    `Idempotency-Key` when one is given: a retry, or a concurrent twin that lost the race on the
    key, is answered with the first response (header `Idempotent-Replay: true`)."""
    key = clean_key(key_header) if key_header is not None else None
    body_hash = request_hash(payload)
    if key is not None:
        earlier = replay(session, scope, key, actor_id, body_hash)
        if earlier is not None:
            return _replayed(earlier)
    try:
        with committing(session):
            claimed = claim(session, scope, key, actor_id, body_hash) if key is not None else None
            status, body = act()
            if claimed is not None:
                remember(session, claimed, status, body)
    except IntegrityError:
        session.rollback()  # a concurrent twin with the same key committed first: answer what it answered
        if key is None:
            raise
        with request.app.state.db.reading() as fresh:
            earlier = replay(fresh, scope, key, actor_id, body_hash)
        if earlier is None:
            raise
        return _replayed(earlier)
    return JSONResponse(body, status_code=status)


def _replayed(earlier: Replay) -> JSONResponse:
    return JSONResponse(earlier.body, status_code=earlier.status, headers={"Idempotent-Replay": "true"})
