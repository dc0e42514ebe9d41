"""The demo sites and plans: what `lims demo` promises a visitor is in the data, entered through
the services (proposed by the technical manager, approved by the quality manager with the
bureau's reference), with the history the site pages are for.

The demo is loaded once per module and engine (`demo_db`, also used by tests/samples/test_demo.py):
loading it takes seconds, and these tests only read it (or load it again to see nothing added).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from app.config import Settings
from app.core import passwords
from app.core.db import Database, metadata, utcnow
from app.core.files import FileStore, file_store
from app.demo import DEMO_PARTS, load_demo
from app.main import create_app
from app.people.models import User
from app.sites import service
from app.sites.demo import (
    METALS,
    MOVED,
    PENDING,
    PENDING_ADDS,
    SITES,
    SUSPENDED,
    WATER_BASICS,
    plan_titles,
    quarter_of,
)
from app.sites.errors import SiteNotActive
from app.sites.geo import distance_m
from app.sites.models import (
    ChangeKind,
    ChangeStatus,
    MonitoringPlan,
    PlanLine,
    PlanStatus,
    SamplingTask,
    Site,
    SiteChangeRequest,
    SiteKind,
    SiteStatus,
    SiteVersion,
    SiteVersionParameter,
)
from tests.conftest import ENGINES, drop_pg_database, new_pg_database

REFERENCE = re.compile(r"^江环监〔\d{4}〕\d+号$")
CONFLUENCE = (Decimal("30.58"), Decimal("114.28"))


@dataclass
class Demo:
    db: Database
    store: FileStore
    users: dict[str, User]
    through: str = DEMO_PARTS[-1]

    def load_again(self) -> None:
        with self.db.transaction() as session:
            load_demo(session, self.store, through=self.through)


def demo_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  through: str = DEMO_PARTS[-1]) -> Iterator[Demo]:
    """A fresh database of each engine with the demo loaded up to the part `through` (passwords
    hashed cheaply, as the conftest does for every test). A module-scoped fixture in each demo
    test module."""
    folder = tmp_path_factory.mktemp("demo")
    if request.param == "sqlite":
        path = folder / "lims.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = new_pg_database(request.getfixturevalue("pg_template"))
    settings = Settings(data_dir=folder / "var", database_url=url, secret_key="test-secret-key", language="zh_CN")
    app = create_app(settings)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
            demo = Demo(app.state.db, file_store(settings.ensure_data_dir()), {}, through)
            demo.load_again()
            with demo.db.reading() as session:
                demo.users = {u.username: u for u in session.scalars(select(User))}
                session.expunge_all()
            yield demo
    finally:
        app.state.db.dispose()
        if request.param != "sqlite":
            drop_pg_database(url)


def sampling_demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo up to the field (sites, plans, a week of sampling): what these tests look at."""
    yield from demo_database(request, tmp_path_factory, through="sampling")


demo_db = pytest.fixture(scope="module", params=ENGINES, name="demo_db")(sampling_demo)


def row_counts(db: Database, names: list[str] | None = None) -> dict[str, int]:
    with db.reading() as session:
        return {name: session.scalar(select(func.count()).select_from(metadata.tables[name]))
                for name in names or sorted(metadata.tables)}


def versions_by_code(session) -> dict[str, list[SiteVersion]]:
    found: dict[str, list[SiteVersion]] = {}
    rows = session.execute(select(Site.code, SiteVersion).join(SiteVersion, SiteVersion.site_id == Site.id)
                           .order_by(Site.code, SiteVersion.version_no))
    for code, version in rows:
        found.setdefault(code, []).append(version)
    return found


def test_twelve_river_sections_and_three_air_stations_around_the_confluence(demo_db: Demo) -> None:
    with demo_db.db.reading() as session:
        sites = {s.code: s for s in session.scalars(select(Site))}
        assert set(sites) == {d.code for d in SITES}
        first = {code: versions[0] for code, versions in versions_by_code(session).items()}
        kinds = [v.kind for v in first.values()]
        assert kinds.count(SiteKind.SURFACE_WATER.value) == 12 and kinds.count(SiteKind.AMBIENT_AIR.value) == 3
        assert {v.water_body for v in first.values() if v.kind == "surface_water"} == {"river", "lake"}
        assert {v.basin for v in first.values()} >= {"长江", "汉江", "府河", "滠水", "举水", "东湖", "汤逊湖", "梁子湖"}
        for code, version in first.items():
            assert version.department == "江城市生态环境局" and version.district.endswith("区"), code
            for coordinate in (version.latitude, version.longitude):
                assert -coordinate.as_tuple().exponent == 7, (code, coordinate)  # 7 decimals, about 1 cm
            assert distance_m(version.latitude, version.longitude, *CONFLUENCE) < 70_000, code
        parameters: dict[str, dict[str, str]] = {}
        for version_id, parameter, frequency in session.execute(select(
                SiteVersionParameter.site_version_id, SiteVersionParameter.parameter, SiteVersionParameter.frequency)):
            parameters.setdefault(version_id, {})[parameter] = frequency
        with_metals = 0
        for code, version in first.items():
            monitored = parameters[version.id]
            assert set(monitored.values()) == {"monthly"}, code
            if version.kind == "surface_water":
                assert set(WATER_BASICS) <= set(monitored), code
                with_metals += set(METALS) <= set(monitored)
            else:
                assert set(monitored) == {"PM10", "PM2.5", "SO2", "NO2"}, code
        assert with_metals == 3


def test_every_site_was_proposed_by_the_technical_and_approved_by_the_quality_manager(demo_db: Demo) -> None:
    users = demo_db.users
    now = utcnow()
    with demo_db.db.reading() as session:
        requests = {r.id: r for r in session.scalars(select(SiteChangeRequest))}
        for code, versions in versions_by_code(session).items():
            for version in versions:
                request = requests[version.change_request_id]
                assert request.status == ChangeStatus.APPROVED.value and request.resulting_version_id == version.id
                assert request.submitted_by_id == users["technical"].id, code
                assert request.decided_by_id == version.approved_by_id == users["quality"].id, code
                assert REFERENCE.match(version.approval_ref) and request.decision_ref == version.approval_ref
                assert request.submitted_at < request.decided_at <= version.valid_from < now
                assert request.reason
            create = requests[versions[0].change_request_id]
            assert create.kind == ChangeKind.CREATE.value and versions[0].valid_from < now - timedelta(days=365)


def test_a_moved_section_a_request_awaiting_the_quality_manager_and_a_suspended_section(demo_db: Demo) -> None:
    now = utcnow()
    with demo_db.db.reading() as session:
        versions = versions_by_code(session)
        assert {code for code, v in versions.items() if len(v) > 1} == {MOVED, SUSPENDED}
        before, after = versions[MOVED]
        assert after.valid_from < now - timedelta(days=30)  # the week's samples there bind to version 2
        assert 79.5 < distance_m(before.latitude, before.longitude, after.latitude, after.longitude) < 80.5
        assert (before.status, after.status) == ("active", "active")
        moved = session.get(SiteChangeRequest, after.change_request_id)
        assert moved.kind == ChangeKind.CHANGE.value and "80 m" in moved.reason

        (waiting,) = session.scalars(select(SiteChangeRequest).where(
            SiteChangeRequest.status == ChangeStatus.SUBMITTED.value)).all()
        assert service.count_open_requests(session) == 1
        site = session.get(Site, waiting.site_id)
        assert site.code == PENDING and site.status == SiteStatus.ACTIVE.value
        proposed = service.proposal_of(waiting)
        in_force = service.parameters_of(session, site.current_version_id)
        assert {p for p, _ in proposed["parameters"]} - {p.parameter for p in in_force} == set(PENDING_ADDS)

        suspended = service.site_by_code(session, SUSPENDED)
        assert suspended.status == SiteStatus.SUSPENDED.value
        assert versions[SUSPENDED][-1].status == "suspended" and versions[SUSPENDED][-1].valid_from < now
        with pytest.raises(SiteNotActive):
            service.assert_site_usable(session, suspended, now)
        assert service.assert_site_usable(session, suspended, versions[SUSPENDED][-1].valid_from - timedelta(days=1))


def test_this_quarters_plan_is_approved_and_the_next_is_a_draft(demo_db: Demo) -> None:
    db = demo_db.db
    today = db.calendar.today()
    current_title, next_title = plan_titles(today)
    start, end = quarter_of(today)
    with db.reading() as session:
        plans = {p.title: p for p in session.scalars(select(MonitoringPlan))}
        assert set(plans) == {current_title, next_title}
        current, following = plans[current_title], plans[next_title]
        assert (current.period_start, current.period_end) == (start, end)
        assert current.status == PlanStatus.APPROVED.value and current.approved_by_id == demo_db.users["technical"].id
        tasks = session.scalars(select(SamplingTask).where(SamplingTask.plan_id == current.id)).all()
        active = session.scalars(select(Site).where(Site.status == SiteStatus.ACTIVE.value)).all()
        assert {t.site_id for t in tasks} == {s.id for s in active} and len(tasks) == len(active)
        assert all(today <= t.scheduled_on <= end and t.status == "scheduled" for t in tasks)  # none in the past
        assert all(t.sampler_id == demo_db.users["sampler"].id for t in tasks)
        assert sum(t.field_blanks for t in tasks) >= 1 and sum(t.field_duplicates for t in tasks) >= 1

        assert following.status == PlanStatus.DRAFT.value and following.period_start == end + timedelta(days=1)
        lines = session.scalars(select(PlanLine).where(PlanLine.plan_id == following.id)).all()
        assert {line.site_id for line in lines} == {s.id for s in active}
        assert {line.frequency for line in lines} == {"monthly"}
        assert session.scalar(select(func.count()).select_from(SamplingTask)
                              .where(SamplingTask.plan_id == following.id)) == 0


def test_sites_and_plans_are_not_entered_twice(demo_db: Demo) -> None:
    names = ["site", "site_version", "site_version_parameter", "site_change_request", "monitoring_plan", "plan_line",
             "sampling_task", "audit_event"]
    before = row_counts(demo_db.db, names)
    demo_db.load_again()
    assert row_counts(demo_db.db, names) == before
