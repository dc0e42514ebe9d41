"""Factories for the storage, retention and disposal tests (no tests here): samples received at
the lab (the receipt itself is another module's: here it is one custody event sampler → custodian
and the states it leaves), storage locations, reported samples, and the objects the permission
walker needs (`make_storage_objects`).

Use with `from tests.samples.test_storage_support import *  # noqa: F403`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.people.models import User
from app.samples import retention, storage
from app.samples.custody import Party, record_custody
from app.samples.lab_models import CustodyKind, StorageLocation
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.samples.conftest import DispatchedTask
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import refreshed


def receive_samples(db: Database, dt: DispatchedTask, custodian: User, samples: list[Sample] | None = None,
                    *, state: SampleState = SampleState.RECEIVED) -> DispatchedTask:
    """What a signed receipt leaves: the containers handed from the sampler to the custodian
    (one custody event), containers `received`, samples `received` (or conditionally)."""
    chosen = samples or dt.samples
    with db.transaction() as session:
        ids = [s.id for s in chosen]
        containers = list(session.scalars(select(Container).where(Container.sample_id.in_(ids))))
        at = utcnow() - timedelta(minutes=5)
        record_custody(session, custodian, containers, CustodyKind.RECEIPT, giver=Party(user_id=dt.sampler.id),
                       taker=Party(user_id=custodian.id), occurred_at=at)
        for container in containers:
            container.state = ContainerState.RECEIVED.value
        for sample in session.scalars(select(Sample).where(Sample.id.in_(ids))):
            sample.state, sample.received_at = state.value, at
    return refreshed(db, dt)


def make_location(db: Database, custodian: User, room: str = "样品室 101", unit: str = "冰箱 A", shelf: str = "1",
                  position: str = "", *, low: str | None = "0", high: str | None = "4",
                  capacity: int | None = None) -> StorageLocation:
    with db.transaction() as session:
        location = storage.create_location(session, custodian, storage.LocationInput(
            room=room, unit=unit, shelf=shelf, position=position, conditions_zh="冷藏 0–4 °C 避光",
            conditions_en="cooled 0–4 °C, dark", temp_min=low, temp_max=high, capacity=capacity))
        session.expunge(location)
    return location


def report(db: Database, sample: Sample, reported_at: datetime) -> Sample:
    """The report service's call: retention starts at the issue."""
    with db.transaction() as session:
        found = session.get(Sample, sample.id)
        retention.start_retention(session, None, found, reported_at)
        session.flush()
        session.expunge(found)
    return found


def rows(db: Database, model: Any) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def audit_actions(db: Database) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def location_row(db: Database, location_id: int) -> StorageLocation:
    with db.reading() as session:
        found = session.get(StorageLocation, location_id)
        session.expunge(found)
        return found


def sample_row(db: Database, sample_id: int) -> Sample:
    with db.reading() as session:
        found = session.get(Sample, sample_id)
        session.expunge(found)
        return found


@pytest.fixture
def received_task(db, users, collected_task) -> DispatchedTask:
    """The collected task's three samples received by the custodian: 9 containers in hand."""
    return receive_samples(db, collected_task, users["custodian"])


@pytest.fixture
def fridge(db, users) -> StorageLocation:
    return make_location(db, users["custodian"])


def make_storage_objects(db: Database, users: dict[str, User]) -> dict[str, Any]:
    """For the permission walkers, on their own (no task needed): two client samples delivered
    by the client and received an hour ago; one stored in a new location (`location_code`, its
    sample `sample_no` and a container `barcode`), the other rejected and in an open disposal
    request (`code`, DS26-...)."""
    from app.samples import disposal, registration

    custodian = users["custodian"]
    with db.transaction() as session:
        row = registration.AdhocSample(client_name="权限检查委托单位", parameters=["COD"],
                                       scheduled_on=db.calendar.today(), location_text="厂区总排口")
        samples = registration.register_adhoc_samples(session, custodian, [row, row])
        at = utcnow() - timedelta(hours=1)
        for sample in samples:
            sample.collected_at, sample.received_at = at - timedelta(hours=1), at
            sample.state = SampleState.RECEIVED.value
        containers = list(session.scalars(select(Container).where(
            Container.sample_id.in_([s.id for s in samples])).order_by(Container.id)))
        for container in containers:
            container.state, container.filled_at = ContainerState.FILLED.value, at - timedelta(hours=1)
        session.flush()
        record_custody(session, custodian, containers, CustodyKind.RECEIPT, giver=Party(place="委托单位送样"),
                       taker=Party(user_id=custodian.id), occurred_at=at)
        for container in containers:
            container.state = ContainerState.RECEIVED.value
        location = storage.create_location(session, custodian, storage.LocationInput(
            room="权限检查室", unit="冰箱", temp_min="0", temp_max="4"))
        stored, rejected = samples
        mine = [c.barcode for c in containers if c.sample_id == stored.id]
        storage.store(session, custodian, location.code, mine)
        rejected.state = SampleState.REJECTED.value
        request = disposal.request_disposal(session, custodian, [rejected.sample_no], "拒收样品处置")
        return {"location_code": location.code, "code": request.code, "sample_no": stored.sample_no,
                "barcode": mine[0]}
