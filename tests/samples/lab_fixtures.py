"""Samples ready for the lab part (issue 7): a task whose samples were all taken and signed in
the field, so every container is filled and held by its sampler, and the samples are collected.

Use with `from tests.samples.lab_fixtures import *  # noqa: F403` (it brings the field fixtures).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.db import Database
from app.samples import registration
from app.samples.models import Container, Sample, SampleState
from tests.samples.conftest import DispatchedTask
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import complete_record, sign


def refreshed(db: Database, dt: DispatchedTask) -> DispatchedTask:
    """The task's samples and containers as they are now in the database."""
    with db.transaction() as session:
        samples = list(session.scalars(select(Sample).where(Sample.task_id == dt.task.id).order_by(Sample.sample_no)))
        containers = registration.containers_of(session, [s.id for s in samples])
    return DispatchedTask(dt.task, dt.site, dt.sampler, samples, containers)


def all_barcodes(dt: DispatchedTask) -> list[str]:
    return [c.barcode for s in dt.samples for c in dt.containers[s.id]]


def container(db: Database, barcode: str) -> Container:
    with db.reading() as session:
        found = session.scalars(select(Container).where(Container.barcode == barcode)).one()
        session.expunge(found)
        return found


@pytest.fixture
def collected_task(db, dispatched_task, store, field_instrument) -> DispatchedTask:
    """Today's task (a routine sample, a field blank, a field duplicate; three containers each)
    sampled 10 minutes ago and signed: samples `collected`, containers `filled`, held by the sampler."""
    dt = dispatched_task
    for sample in dt.samples:
        complete_record(db, dt, sample, store)
        sign(db, dt.sampler, sample)
    done = refreshed(db, dt)
    assert all(s.state == SampleState.COLLECTED.value for s in done.samples)
    return done
