"""Factories for the samples tests (and for the field, sites and plans tests that need samples):
an active site in one line, a scheduled task, a task dispatched through the registration
service with its routine, blank and duplicate samples and their containers.

Sites and tasks are written as rows here (an approved version with its change request), not
through the sites and plans services, so these fixtures stay stable whatever those services
check. Samples and containers always come from `app.samples.registration`.

Stable names: make_site, make_task, dispatch, DispatchedTask; fixtures registrar, sampler,
site, scheduled_task, dispatched_task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.codes import next_code
from app.core.db import Database, utcnow
from app.people.models import User
from app.samples import registration
from app.samples.models import Container, Sample, SampleKind
from app.sites.models import (
    ChangeKind,
    ChangeStatus,
    SamplingTask,
    Site,
    SiteChangeRequest,
    SiteKind,
    SiteStatus,
    SiteVersion,
    SiteVersionParameter,
    TaskStatus,
)

# water temperature, pH and DO are field tests (no container); the rest fill three containers:
# H2SO4 (COD, NH3-N, TP), HNO3 (Cu, Zn), cool and dark (CODMn)
TASK_PARAMETERS = ("WT", "pH", "DO", "COD", "NH3-N", "TP", "Cu", "Zn", "CODMn")


def make_site(db: Database, actor: User, code: str = "WS01", *, name_zh: str = "松花江大桥断面",
              name_en: str = "Songhua River Bridge", kind: SiteKind = SiteKind.SURFACE_WATER,
              latitude: Decimal = Decimal("45.773210"), longitude: Decimal = Decimal("126.617450"),
              status: SiteStatus = SiteStatus.ACTIVE, parameters: Sequence[str] = TASK_PARAMETERS,
              valid_from: datetime | None = None) -> Site:
    """A site with one approved version in force since `valid_from` (a year ago by default)."""
    since = valid_from or utcnow() - timedelta(days=365)
    with db.transaction() as session:
        site = Site(code=code, status=status.value, created_at=since, created_by_id=actor.id)
        session.add(site)
        session.flush()
        request = SiteChangeRequest(
            site_id=site.id, kind=ChangeKind.CREATE.value, status=ChangeStatus.APPROVED.value,
            proposed="{}", reason="test site", submitted_by_id=actor.id, submitted_at=since,
            decided_by_id=actor.id, decided_at=since, decision_ref="环监测〔2025〕1号", effective_from=since)
        session.add(request)
        session.flush()
        version = SiteVersion(
            site_id=site.id, version_no=1, valid_from=since, status=status.value, name_zh=name_zh,
            name_en=name_en, kind=kind.value, latitude=latitude, longitude=longitude, water_body="river",
            basin="松花江", district="道里区", department="市生态环境局", change_request_id=request.id,
            approved_by_id=actor.id, approval_ref="环监测〔2025〕1号", created_at=since)
        session.add(version)
        session.flush()
        session.add_all([SiteVersionParameter(site_version_id=version.id, parameter=p, frequency="monthly")
                         for p in parameters])
        request.resulting_version_id = version.id
        site.current_version_id = version.id
        session.add_all([request, site])
    return site


def make_task(db: Database, actor: User, site: Site, *, sampler: User | None, scheduled_on: date | None = None,
              parameters: Sequence[str] = TASK_PARAMETERS, field_blanks: int = 0, field_duplicates: int = 0,
              status: TaskStatus = TaskStatus.SCHEDULED) -> SamplingTask:
    """A task without a plan, as `schedule_task` would make it."""
    with db.transaction() as session:
        now = utcnow()
        task = SamplingTask(
            code=next_code(session, "TK", now), site_id=site.id, scheduled_on=scheduled_on or db.calendar.today(),
            sampler_id=sampler.id if sampler else None, status=status.value, parameters=json.dumps(list(parameters)),
            field_blanks=field_blanks, field_duplicates=field_duplicates, created_at=now, created_by_id=actor.id)
        session.add(task)
    return task


@dataclass
class DispatchedTask:
    task: SamplingTask
    site: Site
    sampler: User
    samples: list[Sample]  # in number order
    containers: dict[int, list[Container]]  # by sample id, in label order

    def of_kind(self, kind: SampleKind) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind.value]

    @property
    def routine(self) -> Sample:
        return self.of_kind(SampleKind.ROUTINE)[0]

    def barcodes(self, sample: Sample | None = None) -> list[str]:
        return [c.barcode for c in self.containers[(sample or self.routine).id]]


def dispatch(db: Database, actor: User, task: SamplingTask, site: Site, sampler: User) -> DispatchedTask:
    """Dispatch `task` through the service and read back its samples and containers."""
    with db.transaction() as session:
        task = session.get(SamplingTask, task.id)
        registration.dispatch_task(session, actor, task)
    with db.transaction() as session:  # committed, not rolled back: the rows stay loaded
        task = session.get(SamplingTask, task.id)
        samples = list(session.scalars(select(Sample).where(Sample.task_id == task.id).order_by(Sample.sample_no)))
        containers = registration.containers_of(session, [s.id for s in samples])
    return DispatchedTask(task, site, sampler, samples, containers)


@pytest.fixture
def registrar(users) -> User:
    """Registers samples and prints labels (custodian)."""
    return users["custodian"]


@pytest.fixture
def sampler(users) -> User:
    return users["sampler"]


@pytest.fixture
def site(db, users) -> Site:
    return make_site(db, users["technical_manager"])


@pytest.fixture
def scheduled_task(db, users, site, sampler) -> SamplingTask:
    """Today's task at WS01 for the sampler, with one field blank and one field duplicate."""
    return make_task(db, users["technical_manager"], site, sampler=sampler, field_blanks=1, field_duplicates=1)


@pytest.fixture
def dispatched_task(db, registrar, scheduled_task, site, sampler) -> DispatchedTask:
    """Today's task dispatched: a routine sample, a field blank and a field duplicate of it,
    three containers each (H2SO4, HNO3, cool/dark), all issued to the sampler."""
    return dispatch(db, registrar, scheduled_task, site, sampler)
