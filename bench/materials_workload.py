"""Reference-material workload for the `forward_traceability` bench: a CRM lot with a tree of
standard solutions and many results that used them.

The lot, its units and solutions are entered through the real services (a handful of rows: a
material, two lots, units, a tree of dilutions four generations deep, a few recorded uses), as a
technical manager would; the results come from a bench-only table (`bench_analysis_result`, on
its own MetaData so the app's metadata keeps matching the migrations) written with one
executemany, since results are the analysis domain's and only read here. A second lot with its
own tree gets as many results again, so the lot's rows must be picked out of a table twice their
size. Everything is deterministic for a reference moment: two databases populated alike hold the
same rows (the same barcodes, ids and times), which the runner's fingerprint relies on.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, cast, insert, literal, select, text
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.core.db import Database, UTCDateTime
from app.core.files import file_store
from app.core.roles import Role
from app.instruments.service import Upload
from app.people import service as people
from app.reference_materials import service, solutions
from app.reference_materials.models import ItemKind, StandardSolution, StockUnit

SOURCE = "bench_result"
CHUNK = 10_000
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

bench_metadata = MetaData()
bench_result = Table(
    "bench_analysis_result", bench_metadata,
    Column("id", Integer, primary_key=True),
    Column("item_kind", String(16), nullable=False),
    Column("item_id", Integer, nullable=False),
    Column("analysed_at", UTCDateTime(), nullable=False),
    Column("sample_code", String(40), nullable=False),
    Index("ix_bench_analysis_result_item", "item_kind", "item_id"),
)


class ResultSource:
    """The results that used any of the lot's items: one SELECT, a branch of the forward UNION."""

    name = SOURCE

    def usage_select(self, items: CTE) -> Select:
        r = bench_result.c
        return select(
            literal(SOURCE).label("source"), cast(r.id, String).label("record_id"),
            r.analysed_at.label("used_at"), items.c.barcode.label("barcode"), r.sample_code.label("description"),
        ).join(items, (r.item_kind == items.c.item_kind) & (r.item_id == items.c.item_id))


RESULT_SOURCE = ResultSource()

PIPETTE_10 = solutions.DeviceFacts("aliquot", "10 mL 单标线吸量管", Decimal("0.020"), "mL", "A")
PIPETTE_5 = solutions.DeviceFacts("aliquot", "5 mL 单标线吸量管", Decimal("0.015"), "mL", "A")
FLASK_100 = solutions.DeviceFacts("final_volume", "100 mL 单标线容量瓶", Decimal("0.10"), "mL", "A")
FLASK_500 = solutions.DeviceFacts("final_volume", "500 mL 单标线容量瓶", Decimal("0.25"), "mL", "A")

# the tree of one opened unit: (parent index or None for the unit, aliquot, final volume, name);
# generations 1 to 4
TREE = (
    (None, "10", "100", "氨氮标准贮备液 100 mg/L"),
    (0, "10", "100", "氨氮标准中间液 10 mg/L"),
    (0, "5", "500", "氨氮标准使用液 1.00 mg/L"),
    (1, "10", "100", "氨氮标准使用液 1.00 mg/L（中间液稀释）"),
    (3, "10", "100", "氨氮校准点 0.100 mg/L"),
    (1, "5", "500", "氨氮标准使用液 0.100 mg/L"),
)


@dataclass(frozen=True)
class Populated:
    lot_id: int
    other_lot_id: int
    items: int  # units and solutions of the lot
    results: int  # results written for the lot (as many again for the other lot)


def _devices(aliquot: str, final_volume: str) -> tuple[solutions.DeviceFacts, ...]:
    return (PIPETTE_10 if aliquot == "10" else PIPETTE_5, FLASK_100 if final_volume == "100" else FLASK_500)


def _lot(db: Database, actor, store, certificate_no: str, reference: datetime) -> tuple[int, list[tuple[str, int]]]:
    """A lot with four units (three opened), each opened unit with the TREE below it."""
    received, opened = reference - timedelta(days=60), reference - timedelta(days=50)
    with db.transaction() as session:
        material = service.register_material(session, actor, service.MaterialFacts(
            certificate_no=certificate_no, name_zh="水中氨氮溶液标准物质", name_en="Ammonia nitrogen in water",
            producer="生态环境部标准样品研究所", matrix="水", opened_shelf_life_days=180,
        ))
        lot = service.register_lot(
            session, actor, material, lot_no="B2309", expires_on=reference.date() + timedelta(days=365),
            values=(service.ValueFacts("NH3-N", Decimal("1000"), "mg/L", Decimal("7"), Decimal("2")),),
            store=store, certificate=Upload(io.BytesIO(PDF), "certificate.pdf"),
        )
        units = service.receive_units(session, actor, lot, count=4, quantity=Decimal("50"), quantity_unit="mL",
                                      received_at=received)
        for unit in units[:3]:
            service.open_item(session, actor, unit, opened)
        lot_id, unit_rows = lot.id, [(u.id, u.barcode) for u in units]
    items = [(ItemKind.UNIT.value, unit_id) for unit_id, _ in unit_rows]
    for n, (_, barcode) in enumerate(unit_rows[:3]):
        made: list[str] = []
        for step, (parent, aliquot, final_volume, name) in enumerate(TREE):
            with db.transaction() as session:
                solution = solutions.prepare_solution(session, actor, solutions.SolutionFacts(
                    parent_barcode=barcode if parent is None else made[parent], name=name,
                    aliquot=Decimal(aliquot), aliquot_unit="mL", final_volume=Decimal(final_volume),
                    final_volume_unit="mL", output_unit="mg/L", solvent="无氨水",
                    prepared_at=opened + timedelta(days=n, hours=step + 1), shelf_life_days=90,
                    devices=_devices(aliquot, final_volume),
                ))
                made.append(solution.barcode)
                items.append((ItemKind.SOLUTION.value, solution.id))
        with db.transaction() as session:  # a CRM check straight from the unit
            unit = session.get(StockUnit, unit_rows[n][0])
            service.record_use(session, actor, unit, opened + timedelta(days=n, hours=10), quantity=Decimal("1"),
                               quantity_unit="mL", purpose="CRM 核查 / CRM check")
    return lot_id, items


def _results(db: Database, items: list[tuple[str, int]], count: int, first_id: int, reference: datetime) -> None:
    start = reference - timedelta(days=40)
    with db.engine.begin() as conn:
        for offset in range(0, count, CHUNK):
            rows = []
            for i in range(offset, min(count, offset + CHUNK)):
                kind, item_id = items[i % len(items)]
                rows.append({"id": first_id + i, "item_kind": kind, "item_id": item_id,
                             "analysed_at": start + timedelta(seconds=60 * i), "sample_code": f"W{first_id + i:08d}"})
            conn.execute(insert(bench_result), rows)


def populate(db: Database, results: int, reference: datetime) -> Populated:
    """Two lots with their trees; `results` results on the first lot's items and as many on the
    second's. All times lie before `reference`."""
    bench_metadata.create_all(db.engine)
    with db.transaction() as session:
        actor = people.create_user(session, None, "bench-technical", "王磊", "bench-password-42",
                                   display_name_en="Wang Lei", check_permission=False)
        people.grant_role_as_system(session, actor, Role.TECHNICAL_MANAGER, "bench")
    with tempfile.TemporaryDirectory(prefix="lims_bench_files_") as tmp:
        store = file_store(Path(tmp))
        lot_id, items = _lot(db, actor, store, "GBW(E)081601", reference)
        other_lot_id, other_items = _lot(db, actor, store, "GBW(E)081602", reference)
    _results(db, items, results, 1, reference)
    _results(db, other_items, results, results + 1, reference)
    if db.dialect == "postgresql":  # fresh statistics, as autovacuum would soon give a real database
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    with db.reading() as session:
        generations = session.scalars(select(StandardSolution.generation)
                                      .where(StandardSolution.root_lot_id == lot_id)).all()
    assert max(generations) == 4, generations
    return Populated(lot_id, other_lot_id, len(items), results)
