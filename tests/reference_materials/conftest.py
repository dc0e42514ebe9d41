"""Factories for the reference-materials tests: a CRM with a lot in one line, units received
and opened, a standard solution prepared with its glassware."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from app.core.db import Database, utcnow
from app.core.files import FileStore, file_store
from app.instruments.service import Upload
from app.people.models import User
from app.reference_materials import service, solutions
from app.reference_materials.models import MaterialLot, ReferenceMaterial, StandardSolution, StockUnit

# The smallest file that is a PDF by its bytes (the store sniffs "%PDF-").
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

D = Decimal


def pdf_upload(content: bytes = PDF, name: str = "certificate.pdf") -> Upload:
    return Upload(io.BytesIO(content), name)


@pytest.fixture
def store(settings) -> FileStore:
    return file_store(settings.ensure_data_dir())


@pytest.fixture
def technical(users) -> User:
    """The technical manager may manage, use and withdraw materials."""
    return users["technical_manager"]


def ago(**delta: float) -> datetime:
    return utcnow() - timedelta(**delta)


NH3N_VALUES = (service.ValueFacts("NH3-N", D("1000"), "mg/L", D("7"), D("2")),
               service.ValueFacts("pH", D("2.0"), "mg/L", certified=False))


def make_material(db: Database, actor: User, certificate_no: str = "GBW(E)081601", *,
                  opened_shelf_life_days: int | None = 90, min_stock_units: int = 0,
                  name_zh: str = "水中氨氮溶液标准物质") -> ReferenceMaterial:
    with db.transaction() as session:
        return service.register_material(session, actor, service.MaterialFacts(
            certificate_no=certificate_no, name_zh=name_zh, name_en="Ammonia nitrogen in water",
            producer="生态环境部标准样品研究所", matrix="水", storage_conditions="2–8 ℃ 避光",
            opened_shelf_life_days=opened_shelf_life_days, min_stock_units=min_stock_units,
        ))


def make_lot(db: Database, actor: User, store: FileStore, material: ReferenceMaterial, *, lot_no: str = "B2309",
             expires_on: date | None = None, values=NH3N_VALUES) -> MaterialLot:
    with db.transaction() as session:
        material = session.merge(material)
        return service.register_lot(
            session, actor, material, lot_no=lot_no, expires_on=expires_on or date.today() + timedelta(days=400),
            values=values, store=store, certificate=pdf_upload(),
        )


def receive(db: Database, actor: User, lot: MaterialLot, *, count: int = 1, quantity: str = "20",
            unit: str = "mL", received_at: datetime | None = None) -> list[StockUnit]:
    with db.transaction() as session:
        return service.receive_units(session, actor, session.merge(lot), count=count, quantity=D(quantity),
                                     quantity_unit=unit, received_at=received_at or ago(days=30))


def open_unit(db: Database, actor: User, unit: StockUnit, opened_at: datetime | None = None) -> StockUnit:
    with db.transaction() as session:
        return service.open_item(session, actor, session.merge(unit), opened_at or ago(days=20))


PIPETTE_10 = solutions.DeviceFacts("aliquot", "10 mL 单标线吸量管", D("0.020"), "mL", "A")
FLASK_100 = solutions.DeviceFacts("final_volume", "100 mL 单标线容量瓶", D("0.10"), "mL", "A")


def prepare(db: Database, actor: User, parent_barcode: str, *, aliquot: str = "10", final_volume: str = "100",
            prepared_at: datetime | None = None, shelf_life_days: int = 30, name: str = "氨氮标准贮备液",
            devices: tuple[solutions.DeviceFacts, ...] = (PIPETTE_10, FLASK_100), output_unit: str = "mg/L",
            **extra) -> StandardSolution:
    with db.transaction() as session:
        return solutions.prepare_solution(session, actor, solutions.SolutionFacts(
            parent_barcode=parent_barcode, name=name, aliquot=D(aliquot), aliquot_unit="mL",
            final_volume=D(final_volume), final_volume_unit="mL", output_unit=output_unit, solvent="无氨水",
            prepared_at=prepared_at or ago(days=10), shelf_life_days=shelf_life_days, devices=devices, **extra,
        ))


@pytest.fixture
def opened_unit(db, technical, store) -> StockUnit:
    """An opened unit of a GBW(E) ammonia-nitrogen lot (1000 mg/L, U = 7 mg/L, k = 2)."""
    material = make_material(db, technical)
    lot = make_lot(db, technical, store, material)
    unit = receive(db, technical, lot)[0]
    return open_unit(db, technical, unit)
