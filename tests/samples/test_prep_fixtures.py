"""Fixtures and helpers for the preparation tests (aliquots, batches): received samples, a spike
standard, an expired one, and nitric acid. Use with
`from tests.samples.test_prep_fixtures import *  # noqa: F403`. Holds no tests itself."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.people.models import User
from app.reference_materials import service as rm
from app.samples import aliquots, preparation
from app.samples.lab_models import HoldingClock, PrepBatch, PrepBatchItem, PrepBatchMaterial
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.conftest import PASSWORD
from tests.reference_materials.conftest import make_lot, make_material, open_unit, prepare, receive
from tests.samples.conftest import DispatchedTask
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import refreshed

D = Decimal
CU_VALUES = (rm.ValueFacts("Cu", D("1000"), "mg/L", D("5"), D("2")),)


def received(db: Database, dt: DispatchedTask, custodian: User, *, state: str = SampleState.RECEIVED.value,
             minutes_ago: int = 5) -> DispatchedTask:
    """The task's samples put in `state` as if received `minutes_ago` by the custodian, set
    directly: for the states receipt does not give (disposed) and for moving a received sample to
    another state; the preparation rules only read the sample's state, its receipt time and the
    containers' holder. Ordinary receipt goes through the service (`receive_all`)."""
    at = utcnow() - timedelta(minutes=minutes_ago)
    with db.transaction() as session:
        ids = [s.id for s in dt.samples]
        session.execute(update(Sample).where(Sample.id.in_(ids)).values(state=state, received_at=at))
        session.execute(update(Container).where(Container.sample_id.in_(ids)).values(
            state=ContainerState.RECEIVED.value, holder_id=custodian.id))
    return refreshed(db, dt)


def hno3_container(dt: DispatchedTask, sample: Sample | None = None) -> Container:
    """The sample's HNO3 container (Cu, Zn), 500 mL as registered."""
    return next(c for c in dt.containers[(sample or dt.routine).id] if "Cu" in c.parameters)


def aliquot(db: Database, actor: User, barcode: str, amount: str = "50", unit: str = "mL", **kw: Any) -> Container:
    with db.transaction() as session:
        made = aliquots.make_aliquot(session, actor, barcode, amount, unit, **kw)
        session.flush()
        session.expunge(made)
        return made


def open_batch(db: Database, actor: User, kind: str = "digestion", method: str = "HJ 677-2013",
               parameters: str = "Cu Zn Pb Cd") -> PrepBatch:
    with db.transaction() as session:
        batch = preparation.open_batch(session, actor, kind, method, parameters)
        session.flush()
        session.expunge(batch)
        return batch


def act(db: Database, name: str, actor: User, batch: PrepBatch, *args: Any, **kw: Any) -> Any:
    """Run preparation.<name>(session, actor, batch, ...) in its own committed transaction."""
    with db.transaction() as session:
        fresh = session.get(PrepBatch, batch.id)
        return getattr(preparation, name)(session, actor, fresh, *args, **kw)


def counts(db: Database) -> dict[str, int]:
    """Rows that any preparation act writes: nothing may change when an act is refused."""
    from app.reference_materials.models import MaterialUse
    from app.samples.lab_models import CustodyEvent

    with db.reading() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) for model in
                (Container, PrepBatch, PrepBatchItem, PrepBatchMaterial, MaterialUse, CustodyEvent, AuditEvent)}


def states(db: Database, dt: DispatchedTask) -> dict[str, str]:
    with db.reading() as session:
        return {s.sample_no: s.state for s in session.scalars(select(Sample).where(
            Sample.id.in_([x.id for x in dt.samples])))}


def remaining(db: Database, barcode: str) -> Decimal:
    with db.reading() as session:
        return session.scalars(select(Container.remaining).where(Container.barcode == barcode)).one()


def expire_clocks(db: Database, sample: Sample, parameters: tuple[str, ...] = ("Cu", "Zn")) -> None:
    """Make the sample's clocks for `parameters` run out a minute after sampling (derived rows)."""
    with db.transaction() as session:
        session.execute(update(HoldingClock).where(
            HoldingClock.sample_id == sample.id, HoldingClock.parameter.in_(parameters)).values(
            deadline_at=sample.collected_at + timedelta(minutes=1), allowed_hours=0))


def record_deviation(db: Database, qm: User, sample: Sample, parameters: tuple[str, ...] = ("Cu", "Zn"),
                     act_name: str = "preparation") -> list[int]:
    """The quality manager's deviations allowing the late act (helper C's holding service)."""
    from app.samples import holding

    with db.transaction() as session:
        made = holding.record_holding_deviation(session, qm, session.get(Sample, sample.id), parameters, act_name,
                                                "样品已超过保存期，客户同意继续分析并在报告中注明")
        return [d.id for d in made]


@pytest.fixture
def analyst(users) -> User:
    return users["analyst"]


def receive_all(db: Database, dt: DispatchedTask, custodian: User) -> DispatchedTask:
    """Receive every container of the task at the door through the receipt service (open a
    delivery for the task, scan, accept each sample, sign `received`)."""
    from app.samples import receipt

    with db.transaction() as session:
        delivery = receipt.open_delivery(session, custodian, receipt.DeliveryInput(
            code=dt.task.code, cooler_temp="4.0", seal_no="F0001", seal_intact=True))
        for sample in dt.samples:
            for container in dt.containers[sample.id]:
                receipt.scan_container(session, custodian, delivery, container.barcode)
            receipt.record_check(session, custodian, delivery, sample.sample_no, receipt.CheckInput(
                decision="accept", arrival_temp="4.0", preservation_ok=True, container_intact=True,
                volume_sufficient=True, label_legible=True))
        receipt.sign_delivery(session, custodian, delivery, PASSWORD)
    return refreshed(db, dt)


@pytest.fixture
def in_lab(db, collected_task, users) -> DispatchedTask:
    """The collected task's three samples received at the lab (signed receipt), held by the custodian."""
    return receive_all(db, collected_task, users["custodian"])


@pytest.fixture
def standards(db, users, store) -> dict[str, str]:
    """Barcodes: `cu` a usable Cu standard solution (100 mg/L), `expired` one that expired five
    days ago, `hno3` a bottle of nitric acid (500 mL)."""
    tm = users["technical_manager"]
    material = make_material(db, tm, "GBW(E)080122", name_zh="水中铜成分分析标准物质")
    lot = make_lot(db, tm, store, material, lot_no="C2401", values=CU_VALUES)
    unit = open_unit(db, tm, receive(db, tm, lot)[0])
    cu = prepare(db, tm, unit.barcode, name="铜标准使用液", output_unit="mg/L")
    old = prepare(db, tm, unit.barcode, name="铜标准使用液（旧）", output_unit="mg/L",
                  prepared_at=utcnow() - timedelta(days=12), shelf_life_days=7)
    with db.transaction() as session:
        acid = rm.register_reagent(session, tm, rm.ReagentFacts(
            name="硝酸 HNO3", grade="优级纯 GR", supplier="国药集团化学试剂有限公司", lot_no="N2405",
            expires_on=db.calendar.today() + timedelta(days=300), received_at=utcnow() - timedelta(days=20),
            quantity=D("500"), quantity_unit="mL", opened_shelf_life_days=180))
    return {"cu": cu.barcode, "expired": old.barcode, "hno3": acid.barcode}
