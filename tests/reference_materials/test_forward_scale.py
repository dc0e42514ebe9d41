"""Forward traceability at scale: a lot used in 50,000 results is still ONE query.

The results come from a fixture `MaterialUseSource` over a test-only table (its own MetaData,
created on the test's engine only: the global metadata must keep matching the migrations),
filled with one bulk insert. Each result names the unit or solution it used (item_kind,
item_id), as the analysis domain's results will."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, cast, insert, literal, select
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.core.db import Database, UTCDateTime
from app.reference_materials import service
from app.reference_materials.models import ItemKind, StandardSolution, StockUnit
from app.reference_materials.traceability import (
    count_forward,
    forward_traceability,
    register_material_use_source,
    unregister_material_use_source,
)
from tests.reference_materials.conftest import D, ago, make_lot, make_material, open_unit, prepare, receive

RESULTS = 50_000
SOURCE = "test_result"

results_metadata = MetaData()
test_result = Table(
    "test_analysis_result", results_metadata,
    Column("id", Integer, primary_key=True),
    Column("item_kind", String(16), nullable=False),
    Column("item_id", Integer, nullable=False),
    Column("analysed_at", UTCDateTime(), nullable=False),
    Column("sample_code", String(40), nullable=False),
    Index("ix_test_analysis_result_item", "item_kind", "item_id"),
)


class ResultSource:
    """Results that used a unit or a solution of the lot: one SELECT over the lot's items."""

    name = SOURCE

    def usage_select(self, items: CTE) -> Select:
        r = test_result.c
        return select(
            literal(SOURCE).label("source"), cast(r.id, String).label("record_id"),
            r.analysed_at.label("used_at"), items.c.barcode.label("barcode"), r.sample_code.label("description"),
        ).join(items, (r.item_kind == items.c.item_kind) & (r.item_id == items.c.item_id))


@pytest.fixture
def result_source(db: Database) -> Iterator[ResultSource]:
    results_metadata.create_all(db.engine)
    source = ResultSource()
    register_material_use_source(source)
    try:
        yield source
    finally:
        unregister_material_use_source(SOURCE)


def insert_results(db: Database, used: list[tuple[str, int]], count: int, *, first_id: int = 1) -> None:
    """`count` results cycling over the `used` items (kind, id), five seconds apart."""
    start = ago(days=4)
    rows = [{"id": first_id + i, "item_kind": used[i % len(used)][0], "item_id": used[i % len(used)][1],
             "analysed_at": start + timedelta(seconds=5 * i), "sample_code": f"W{(first_id + i):07d}"}
            for i in range(count)]
    with db.engine.begin() as conn:
        conn.execute(insert(test_result), rows)


def chain(db, technical, store, certificate_no: str = "GBW(E)081601"):
    """A lot with three units (two opened), a stock solution from one unit, a working solution
    from the stock (generation 2) and a second stock solution from the other opened unit."""
    material = make_material(db, technical, certificate_no)
    lot = make_lot(db, technical, store, material)
    units = receive(db, technical, lot, count=3, received_at=ago(days=40))
    first, second = open_unit(db, technical, units[0], ago(days=30)), open_unit(db, technical, units[1], ago(days=29))
    stock = prepare(db, technical, first.barcode, prepared_at=ago(days=20))
    working = prepare(db, technical, stock.barcode, aliquot="10", final_volume="100", prepared_at=ago(days=10),
                      name="氨氮标准使用液")
    other_stock = prepare(db, technical, second.barcode, prepared_at=ago(days=9))
    return lot, units, [stock, working, other_stock]


def test_a_lot_used_in_50000_results_is_one_query(db, technical, store, result_source, count_queries):
    lot, units, solutions = chain(db, technical, store)
    with db.transaction() as session:  # one recorded use besides the preparations
        service.record_use(session, technical, session.get(StockUnit, units[1].id), ago(days=8),
                           quantity=D("1"), quantity_unit="mL", purpose="CRM 核查 / CRM check")
    # another lot, used too: none of its results may show up
    other_lot, other_units, other_solutions = chain(db, technical, store, "GBW(E)081602")
    used = [(ItemKind.UNIT.value, units[0].id), (ItemKind.UNIT.value, units[1].id)] + [
        (ItemKind.SOLUTION.value, s.id) for s in solutions]
    insert_results(db, used, RESULTS)
    noise = [(ItemKind.SOLUTION.value, s.id) for s in other_solutions] + [
        (ItemKind.REAGENT.value, units[0].id),  # the same id in another table is another item
        (ItemKind.UNIT.value, other_units[0].id)]
    insert_results(db, noise, 1_000, first_id=RESULTS + 1)

    expected = RESULTS + len(solutions) + 1
    with db.reading() as session:
        with count_queries() as counted:
            assert count_forward(session, lot.id) == expected
        assert counted.count == 1
        with count_queries() as counted:
            everything = forward_traceability(session, lot.id)
        assert counted.count == 1, counted.statements
        with count_queries() as counted:
            page = forward_traceability(session, lot.id, limit=50, offset=25_000)
        assert counted.count == 1

    assert len(everything) == expected
    assert page == everything[25_000:25_050]
    by_source = Counter(u.source for u in everything)
    assert by_source == {SOURCE: RESULTS, "solution": len(solutions), "use": 1}
    barcode_of = {(ItemKind.UNIT.value, u.id): u.barcode for u in units} | {
        (ItemKind.SOLUTION.value, s.id): s.barcode for s in solutions}
    per_barcode = Counter(u.barcode for u in everything if u.source == SOURCE)
    assert per_barcode == {barcode_of[item]: RESULTS // len(used) for item in used}
    assert [u.used_at for u in everything] == sorted(u.used_at for u in everything)
    assert {u.record_id for u in everything if u.source == "solution"} == {s.barcode for s in solutions}
    assert all(int(u.record_id) <= RESULTS for u in everything if u.source == SOURCE)
    with db.reading() as session:
        assert count_forward(session, other_lot.id) == 1_000 - 1_000 // len(noise) + len(other_solutions)


def test_a_result_on_a_second_generation_solution_traces_to_the_root_lot(db, technical, store, result_source):
    lot, units, (stock, working, other_stock) = chain(db, technical, store)
    other_lot, _, other_solutions = chain(db, technical, store, "GBW(E)081602")
    with db.reading() as session:
        assert session.get(StandardSolution, working.id).generation == 2
    insert_results(db, [(ItemKind.SOLUTION.value, working.id)], 1)
    insert_results(db, [(ItemKind.SOLUTION.value, other_solutions[1].id)], 1, first_id=2)

    with db.reading() as session:
        usages = forward_traceability(session, lot.id)
        results = [u for u in usages if u.source == SOURCE]
        assert [(u.record_id, u.barcode, u.description) for u in results] == [("1", working.barcode, "W0000001")]
        # the chain itself: the stock from the unit, the working solution from the stock
        solutions = {u.record_id: u.barcode for u in usages if u.source == "solution"}
        assert solutions == {stock.barcode: units[0].barcode, working.barcode: stock.barcode,
                             other_stock.barcode: units[1].barcode}
        assert [u.record_id for u in forward_traceability(session, other_lot.id) if u.source == SOURCE] == ["2"]


def test_the_source_is_gone_after_unregistering(db, technical, store):
    """Without the fixture's source the test table is not queried (and need not exist)."""
    lot, _, solutions = chain(db, technical, store)
    with db.reading() as session:
        assert {u.source for u in forward_traceability(session, lot.id)} == {"solution"}
        assert count_forward(session, lot.id) == len(solutions)
