"""Factories for the analysis tests: a method version in one line, samples waiting in the lab
with their holding clocks, a qualification, a calibrated instrument, an opened standard.

Methods and qualifications are written straight into their tables here (the factories must not
depend on the services under test); the services' own tests go through the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import insert, select

from app.analysis.models import Method, MethodInstrument, MethodParameter, MethodVersion, Qualification
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.core.files import FileStore, file_store
from app.instruments.models import Instrument
from app.people.models import User
from app.reference_materials.models import StandardSolution, StockUnit
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample, SampleParameter, SampleState
from tests.instruments.conftest import calibrate, local_today, make_instrument
from tests.reference_materials.conftest import make_lot, make_material, open_unit, prepare, receive


@dataclass(frozen=True)
class ParameterSpec:
    parameter: str
    unit: str = "mg/L"
    mdl: str = "0.025"
    decimals: int | None = 3
    significant_figures: int | None = None
    below_mdl: str = "mdl_l"
    lower_limit: str | None = None
    upper_limit: str | None = None


NH3N = ParameterSpec("NH3-N", "mg/L", "0.025", 3)


def make_method(db: Database, actor: User, code: str = "HJ 535-2009", *,
                parameters: tuple[ParameterSpec, ...] = (NH3N,), name_zh: str = "水质 氨氮的测定 纳氏试剂分光光度法",
                matrix: str = "water", valid_from: datetime | None = None, instruments: tuple[Instrument, ...] = (),
                **version: object) -> MethodVersion:
    """Method `code` with one version in force since a year ago (or `valid_from`); `version`
    overrides the version's columns (calculation, blanks_per_batch, spike_recovery_low...)."""
    now = utcnow()
    with db.transaction() as session:
        method = Method(code=code, name_zh=name_zh, name_en=code, matrix=matrix, created_at=now,
                        created_by_id=actor.id)
        session.add(method)
        session.flush()
        row = MethodVersion(method_id=method.id, version=1, valid_from=valid_from or now - timedelta(days=365),
                            created_at=now, created_by_id=actor.id, **version)
        session.add(row)
        session.flush()
        for p in parameters:
            session.add(MethodParameter(
                method_version_id=row.id, parameter=p.parameter, unit=p.unit, mdl=D(p.mdl), decimals=p.decimals,
                significant_figures=p.significant_figures, below_mdl=p.below_mdl,
                lower_limit=None if p.lower_limit is None else D(p.lower_limit),
                upper_limit=None if p.upper_limit is None else D(p.upper_limit)))
        for instrument in instruments:
            session.add(MethodInstrument(method_version_id=row.id, instrument_id=instrument.id))
        session.flush()
        session.expunge(row)
        return row


def qualify(db: Database, user: User, method_id: int, *, valid_from: date | None = None,
            valid_to: date | None = None, granted_by: User | None = None) -> Qualification:
    """上岗证 for `user` and the method, valid from a year ago for two years unless given."""
    today = date.today()
    with db.transaction() as session:
        row = Qualification(user_id=user.id, method_id=method_id, certificate_no=f"HJSG-{user.id:04d}-{method_id:03d}",
                            issued_by="省生态环境监测中心", valid_from=valid_from or today - timedelta(days=365),
                            valid_to=valid_to or today + timedelta(days=365), granted_at=utcnow(),
                            granted_by_id=(granted_by or user).id)
        session.add(row)
        session.flush()
        session.expunge(row)
        return row


def samples_in_lab(db: Database, registrar: User, parameters: tuple[tuple[str, int | None], ...] = (("NH3-N", 24),),
                   *, count: int = 3, prefix: str = "WS01-261203", state: str = SampleState.RECEIVED.value,
                   ages: tuple[timedelta, ...] | None = None, matrix: str = "water", kind: str = "routine",
                   site_id: int | None = None) -> list[Sample]:
    """`count` samples received in the lab, each requesting `parameters` (code, holding hours)
    with their clocks open; sample i was collected `ages[i]` ago (default 2 h + i hours)."""
    now = utcnow()
    ages = ages or tuple(timedelta(hours=2 + i) for i in range(count))
    numbers = [f"{prefix}-{i + 1:03d}" for i in range(count)]
    with db.transaction() as session:
        session.execute(insert(Sample), [
            {"sample_no": no, "kind": kind, "matrix": matrix, "scheduled_on": (now - age).date(), "state": state,
             "collected_at": now - age, "received_at": now - age + timedelta(minutes=30),
             "registered_at": now - age - timedelta(hours=1), "registered_by_id": registrar.id,
             "signed_revision": 1, "site_id": site_id}
            for no, age in zip(numbers, ages, strict=True)])
        rows = list(session.scalars(select(Sample).where(Sample.sample_no.in_(numbers)).order_by(Sample.sample_no)))
        session.execute(insert(SampleParameter), [
            {"sample_id": s.id, "parameter": p} for s in rows for p, _ in parameters])
        session.execute(insert(HoldingClock), [
            {"sample_id": s.id, "parameter": p, "started_at": s.collected_at, "allowed_hours": hours,
             "deadline_at": None if hours is None else s.collected_at + timedelta(hours=hours), "open": True}
            for s in rows for p, hours in parameters])
        for s in rows:
            session.expunge(s)
        return rows


@pytest.fixture
def store(settings) -> FileStore:
    return file_store(settings.ensure_data_dir())


@pytest.fixture
def technical(users) -> User:
    return users["technical_manager"]


@pytest.fixture
def analyst(users) -> User:
    return users["analyst"]


def calibrated_instrument(db: Database, technical: User, store: FileStore, asset_no: str = "JC-UV-001",
                          uses: tuple[tuple[str, str], ...] = (("NH3-N", "HJ 535-2009"),)) -> Instrument:
    """An instrument in service: verified 100 days ago, valid another 265 days."""
    instrument = make_instrument(db, technical, asset_no, uses=uses)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=100),
              valid_until=today + timedelta(days=265))
    return instrument


@pytest.fixture
def uv(db, technical, store) -> Instrument:
    return calibrated_instrument(db, technical, store)


@pytest.fixture
def nh3n_method(db, technical, uv) -> MethodVersion:
    """HJ 535-2009 (NH3-N, mg/L, MDL 0.025, 3 decimals) by curve, on the UV instrument."""
    return make_method(db, technical, calculation="curve", instruments=(uv,),
                       duplicate_rd_limits=canonical_json([["1", "5"], ["0.1", "10"], ["0", "20"]]))


@dataclass(frozen=True)
class Standards:
    unit: StockUnit
    stock: StandardSolution  # 100 mg/L from the 1000 mg/L CRM
    working: StandardSolution  # 10 mg/L from the stock


@pytest.fixture
def standards(db, technical, store) -> Standards:
    """An opened GBW(E) NH3-N unit (1000 mg/L), a 100 mg/L stock and a 10 mg/L working solution."""
    material = make_material(db, technical)
    lot = make_lot(db, technical, store, material)
    unit = open_unit(db, technical, receive(db, technical, lot)[0])
    stock = prepare(db, technical, unit.barcode)
    working = prepare(db, technical, stock.barcode, name="氨氮标准使用液")
    return Standards(unit, stock, working)
