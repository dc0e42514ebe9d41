"""Tests of the people domain: sign-in, sessions, CSRF, API tokens, role grants, language."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.audit import AuditEvent
from tests.conftest import csrf_of


def events_after(db, seq: int) -> list[AuditEvent]:
    """Audit events appended after `seq`, oldest first."""
    with db.reading() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)).all()
        session.expunge_all()
        return list(rows)


def head_seq(db) -> int:
    with db.reading() as session:
        return session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def try_login(client: TestClient, username: str, password: str):
    """One attempt through the real form; returns the response (303 on success)."""
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(client), "next": "/dashboard"})


def login_error(response) -> str:
    match = re.search(r'role="alert"[^>]*>(.*?)<', response.text, re.S)
    assert match, response.text[:500]
    return match.group(1).strip()


def signed_in(client: TestClient) -> bool:
    """Whether the client's session still authenticates (pages redirect to /login if not)."""
    response = client.get("/dashboard")
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200
