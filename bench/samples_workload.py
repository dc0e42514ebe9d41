"""Workload of the sample benches: a registrar, client samples with three containers each, and
the rows registration leaves behind, for the register_samples and label_pdf scenarios.

Everything is deterministic given a fresh database: one registrar created the same way on every
side, the same rows, one fixed registration moment (`AT`), so two databases registering the same
samples end with the same ids, numbers, barcodes and audit contents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table, select

from app.core.audit import AuditEvent
from app.core.codes import CodeCounter
from app.core.db import Database
from app.people import service as people
from app.people.models import User
from app.samples import registration
from app.samples.models import Container, Sample, SampleNumberCounter, SampleParameter
from app.samples.registration import AdhocSample

AT = datetime(2026, 3, 12, 1, 30, tzinfo=UTC)
DAY = date(2026, 3, 12)
# three preservation groups: H2SO4 (COD, NH3-N), HNO3 (Cu), cool and dark (CODMn)
THREE_CONTAINERS = ("COD", "NH3-N", "Cu", "CODMn")
REGISTERED_TABLES: tuple[Table, ...] = (
    CodeCounter.__table__, SampleNumberCounter.__table__, Sample.__table__, SampleParameter.__table__,
    Container.__table__,
)
SAMPLE_EVENT = "sample.registered"


def make_registrar(db: Database) -> User:
    """The custodian who registers (with the audit events of creating and granting)."""
    with db.transaction() as session:
        user = people.create_user(session, None, "bench-custodian", "样品管理员", "bench-password-42",
                                  display_name_en="Bench Custodian", check_permission=False)
        people.grant_role_as_system(session, user, "custodian", "bench")
    return user


def client_samples(count: int, parameters: Iterable[str] = THREE_CONTAINERS) -> list[AdhocSample]:
    """`count` client samples of seven clients at their outlets, on one day."""
    wanted = list(parameters)
    return [AdhocSample(client_name=f"江城化工有限公司 {i % 7 + 1} 号厂", client_contact="王工 13800000000",
                        location_text=f"{i % 7 + 1} 号厂总排口", parameters=wanted, scheduled_on=DAY)
            for i in range(count)]


def register(db: Database, actor: User, rows: list[AdhocSample], chunk: int) -> int:
    """Through the service, `chunk` samples per transaction (a bulk registration each)."""
    done = 0
    for start in range(0, len(rows), chunk):
        with db.transaction() as session:
            done += len(registration.register_adhoc_samples(session, actor, rows[start:start + chunk], at=AT))
    return done


def rows_of(db: Database) -> dict[str, list[dict[str, Any]]]:
    """What registration wrote: the rows of its tables and its audit events, by table name."""
    found: dict[str, list[dict[str, Any]]] = {}
    with db.engine.connect() as conn:
        for table in REGISTERED_TABLES:
            key = list(table.primary_key.columns)
            found[table.name] = [dict(r._mapping) for r in conn.execute(select(table).order_by(*key))]
        events = AuditEvent.__table__
        found[events.name] = [dict(r._mapping) for r in conn.execute(
            select(events).where(events.c.action == SAMPLE_EVENT).order_by(events.c.seq))]
    return found


def fingerprint(db: Database) -> tuple[int, int, str]:
    """Samples, containers, and a digest of every registered row and sample event (without the
    chain's seq and hashes: the registrar's own events differ in time between databases)."""
    digest = hashlib.sha256()
    rows = rows_of(db)
    for name in sorted(rows):
        for row in rows[name]:
            if name == AuditEvent.__tablename__:
                row = {k: v for k, v in row.items() if k not in ("seq", "prev_hash", "hash")}
            digest.update(repr(sorted((k, str(v)) for k, v in row.items())).encode())
    return len(rows[Sample.__tablename__]), len(rows[Container.__tablename__]), digest.hexdigest()
