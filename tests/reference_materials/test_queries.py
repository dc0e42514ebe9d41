"""Read models: the list over units, solutions and reagents (paginated, usable now as the gate
says), the dashboards (expiring within 30 days, expired but still in stock, low stock) and their
cards. Every item is put on the shelf through the services, with past times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import localcontext

import pytest
from sqlalchemy import select

from app.core.db import Database, utcnow
from app.core.files import FileStore
from app.core.units import PRECISION
from app.people.models import User
from app.reference_materials import queries, service
from app.reference_materials.gate import check_material
from tests.conftest import login
from tests.reference_materials.conftest import D, ago, make_lot, make_material, open_unit, prepare, receive


@dataclass
class Shelf:
    """Barcodes of what the shelf holds, named by what the dashboards should make of them."""

    expiring: set[str]  # stocked, expiring within 30 days
    expired: set[str]  # stocked, expired
    gone: set[str]  # used up, disposed or discarded (in no dashboard, whatever their expiry)
    fresh: set[str]  # stocked and far from expiry
    low_stock: set[str]  # certificate numbers of the materials low in stock
    not_low: set[str]  # materials with a threshold they meet (or none)
    units: dict[str, str]  # a few named barcodes for the API tests

    @property
    def all(self) -> set[str]:
        return self.expiring | self.expired | self.gone | self.fresh


def reagent(db: Database, actor: User, *, expires_in_days: int, received_days_ago: int = 100,
            name: str = "盐酸") -> str:
    today = db.calendar.today()
    with db.transaction() as session:
        return service.register_reagent(session, actor, service.ReagentFacts(
            name=name, grade="优级纯 GR", supplier="国药集团化学试剂有限公司", lot_no=f"R{expires_in_days:+d}",
            expires_on=today + timedelta(days=expires_in_days), received_at=ago(days=received_days_ago),
            quantity=D("500"), quantity_unit="mL", opened_shelf_life_days=180,
        )).barcode


def dispose(db: Database, actor: User, barcode: str, at=None) -> None:
    with db.transaction() as session:
        service.dispose_item(session, actor, service.find_item(session, barcode), reason="破损",
                             at=at or ago(hours=1))


def used_up(db: Database, actor: User, barcode: str, at=None) -> None:
    with db.transaction() as session:
        service.mark_used_up(session, actor, service.find_item(session, barcode), at or ago(hours=1))


def stock_shelf(db: Database, actor: User, store: FileStore) -> Shelf:
    """Units, solutions and reagents in every state the dashboards must tell apart."""
    today = db.calendar.today()
    nh3n = make_material(db, actor, "GBW(E)081601", opened_shelf_life_days=90)  # no threshold
    # a lot expiring in 10 days: its sealed and opened units and a solution of it expire with it
    soon = make_lot(db, actor, store, nh3n, lot_no="B2301", expires_on=today + timedelta(days=10))
    sealed_soon, open_soon, finished, broken = receive(db, actor, soon, count=4, quantity="100",
                                                       received_at=ago(days=60))
    open_unit(db, actor, open_soon, ago(days=5))
    solution_soon = prepare(db, actor, open_soon.barcode, prepared_at=ago(days=2), shelf_life_days=60)
    open_unit(db, actor, finished, ago(days=5))
    used_up(db, actor, finished.barcode)
    dispose(db, actor, broken.barcode)
    # a lot that expired 5 days ago: one unit still sealed on the shelf, one disposed of
    old = make_lot(db, actor, store, nh3n, lot_no="B2201", expires_on=today - timedelta(days=5))
    sealed_old, binned_old = receive(db, actor, old, count=2, received_at=ago(days=200))
    dispose(db, actor, binned_old.barcode)
    # a long-lived lot: an opened unit (70 days left) and solutions with short shelf lives
    long = make_lot(db, actor, store, nh3n, lot_no="B2401", expires_on=today + timedelta(days=400))
    [fresh_unit] = receive(db, actor, long, quantity="100", received_at=ago(days=30))
    open_unit(db, actor, fresh_unit, ago(days=20))
    solution_old = prepare(db, actor, fresh_unit.barcode, prepared_at=ago(days=10), shelf_life_days=3)
    solution_finished = prepare(db, actor, fresh_unit.barcode, prepared_at=ago(days=10), shelf_life_days=3)
    used_up(db, actor, solution_finished.barcode, ago(days=9))
    solution_fresh = prepare(db, actor, fresh_unit.barcode, prepared_at=ago(days=1), shelf_life_days=90,
                             name="氨氮标准使用液")

    # low stock: lead wants 3 usable units and has 2 (a disposed unit and the units of a
    # quarantined and of a withdrawn lot do not count)
    lead = make_material(db, actor, "GBW08619", min_stock_units=3, name_zh="水中铅成分分析标准物质")
    lead_lot = make_lot(db, actor, store, lead, lot_no="P1", expires_on=today + timedelta(days=400))
    lead_a, lead_b, lead_binned = receive(db, actor, lead_lot, count=3, received_at=ago(days=30))
    dispose(db, actor, lead_binned.barcode)
    held = make_lot(db, actor, store, lead, lot_no="P2", expires_on=today + timedelta(days=400))
    held_units = receive(db, actor, held, count=4, received_at=ago(days=30))
    pulled = make_lot(db, actor, store, lead, lot_no="P3", expires_on=today + timedelta(days=400))
    [pulled_unit] = receive(db, actor, pulled, received_at=ago(days=30))
    open_unit(db, actor, pulled_unit, ago(days=3))
    with db.transaction() as session:
        service.change_lot_status(session, actor, service.get_lot(session, held.id), "quarantined",
                                  reason="CRM 核查不合格", effective_at=ago(days=1))
        service.change_lot_status(session, actor, service.get_lot(session, pulled.id), "withdrawn",
                                  reason="生产方撤销证书", effective_at=ago(days=2))
    # copper wants 1 and has 1; cadmium wants 2 and has no lot at all
    copper = make_material(db, actor, "GBW08615", min_stock_units=1, name_zh="水中铜成分分析标准物质")
    [copper_unit] = receive(db, actor, make_lot(db, actor, store, copper, lot_no="C1"), received_at=ago(days=3))
    make_material(db, actor, "GBW08612", min_stock_units=2, name_zh="水中镉成分分析标准物质")

    reagent_soon = reagent(db, actor, expires_in_days=20, received_days_ago=10)
    reagent_old = reagent(db, actor, expires_in_days=-3, name="硫酸")
    reagent_binned = reagent(db, actor, expires_in_days=-3, name="硝酸")
    dispose(db, actor, reagent_binned)
    reagent_fresh = reagent(db, actor, expires_in_days=300, name="氢氧化钠")

    return Shelf(
        expiring={sealed_soon.barcode, open_soon.barcode, solution_soon.barcode, reagent_soon},
        expired={sealed_old.barcode, solution_old.barcode, reagent_old},
        gone={finished.barcode, broken.barcode, binned_old.barcode, solution_finished.barcode,
              lead_binned.barcode, reagent_binned},
        fresh={fresh_unit.barcode, solution_fresh.barcode, lead_a.barcode, lead_b.barcode, pulled_unit.barcode,
               copper_unit.barcode, reagent_fresh, *(u.barcode for u in held_units)},
        low_stock={"GBW08619", "GBW08612"},
        not_low={"GBW08615", "GBW(E)081601"},
        units={"sealed": sealed_soon.barcode, "opened": open_soon.barcode, "used_up": finished.barcode,
               "expired_solution": solution_old.barcode, "solution": solution_fresh.barcode,
               "used_up_solution": solution_finished.barcode,
               "reagent": reagent_fresh, "held": held_units[0].barcode, "withdrawn": pulled_unit.barcode},
    )


@pytest.fixture
def shelf(db, technical, store) -> Shelf:
    return stock_shelf(db, technical, store)


# ---------------------------------------------------------------- dashboards


def test_expiring_within_30_days_lists_stocked_items_soonest_first(db, shelf):
    with db.reading() as session:
        rows = queries.expiring_within(session, 30)
        assert {r.barcode for r in rows} == shelf.expiring
        assert [r.expires_at for r in rows] == sorted(r.expires_at for r in rows)
        assert all(utcnow() < r.expires_at < utcnow() + timedelta(days=30) for r in rows)
        assert queries.count_expiring_within(session, 30) == len(shelf.expiring)
        # a narrower window leaves out the reagent (20 days) but keeps the lot expiring in 10
        assert {r.barcode for r in queries.expiring_within(session, 15)} == shelf.expiring - {
            r.barcode for r in rows if r.kind == "reagent"}
        by_code = {r.barcode: r for r in rows}
    opened = by_code[shelf.units["opened"]]
    assert opened.kind == "unit" and opened.certificate_no == "GBW(E)081601" and opened.lot_no == "B2301"
    assert opened.name == "水中氨氮溶液标准物质" and opened.state == "in_use"
    assert by_code[shelf.units["sealed"]].state == "received"


def test_expired_in_stock_lists_what_is_still_on_the_shelf(db, shelf):
    with db.reading() as session:
        rows = queries.expired_in_stock(session)
        assert {r.barcode for r in rows} == shelf.expired
        assert not {r.barcode for r in rows} & shelf.gone  # used up, disposed, discarded: not in stock
        assert {r.kind for r in rows} == {"unit", "solution", "reagent"}
        assert queries.count_expired_in_stock(session) == len(shelf.expired)


def test_low_stock_counts_usable_units_of_active_lots(db, shelf):
    with db.reading() as session:
        low = queries.low_stock(session)
        assert {line.material.certificate_no for line in low} == shelf.low_stock
        usable = {line.material.certificate_no: (line.usable_units, line.min_stock_units) for line in low}
        assert usable == {"GBW08619": (2, 3), "GBW08612": (0, 2)}
        assert queries.count_low_stock(session) == 2


def test_an_item_expiring_later_is_no_longer_expiring_once_used_up(db, technical, shelf):
    used_up(db, technical, shelf.units["opened"])
    with db.reading() as session:
        assert shelf.units["opened"] not in {r.barcode for r in queries.expiring_within(session)}
        assert queries.count_expiring_within(session) == len(shelf.expiring) - 1


def test_dashboards_cost_one_query_each(db, shelf, count_queries):
    with db.reading() as session:
        for read in (queries.expiring_within, queries.expired_in_stock, queries.low_stock,
                     queries.count_expiring_within, queries.count_expired_in_stock, queries.count_low_stock):
            with count_queries() as counter:
                read(session)
            assert counter.count == 1, (read.__name__, counter.statements)


def test_the_expiry_dashboards_read_the_state_and_expiry_indexes(db, shelf):
    """Each branch of the union finds its rows through its table's (state, expires_at) index."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite (PostgreSQL chooses by table size)")
    now = utcnow()
    with db.engine.connect() as conn:
        for where in (queries._expiring_where(now, 30), queries._expired_where(now)):
            compiled = select(queries._items_union(where)).compile(
                conn, compile_kwargs={"render_postcompile": True})
            values = tuple(None for _ in compiled.positiontup)  # the plan does not depend on them
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values).all()
            plan = " ".join(str(row[-1]) for row in rows)
            for index in ("ix_rm_unit_state_expires", "ix_rm_solution_state_expires",
                          "ix_reagent_lot_state_expires"):
                assert index in plan, plan


# ---------------------------------------------------------------- the list


def test_items_page_lists_every_kind_by_barcode_with_a_total(db, shelf):
    with db.reading() as session:
        first = queries.items_page(session, page=1, per_page=7)
        assert first.total == len(shelf.all) and first.pages == -(-len(shelf.all) // 7)
        seen = []
        for page in range(1, first.pages + 1):
            seen += [item.row.barcode for item in queries.items_page(session, page=page, per_page=7).items]
        assert seen == sorted(shelf.all)
        reagents = queries.items_page(session, page=1, per_page=50, kind="reagent")
        assert {i.row.barcode[:2] for i in reagents.items} == {"RG"} and reagents.total == 4
        disposed = queries.items_page(session, page=1, per_page=50, state="disposed")
        assert {i.row.barcode for i in disposed.items} == shelf.gone - {
            shelf.units["used_up"], shelf.units["used_up_solution"]}


def test_usable_now_in_the_list_is_what_the_gate_says(db, shelf):
    """The list judges a page of items without a query per item; it must agree with the gate for
    every kind and every refusal on the shelf."""
    with db.reading() as session:
        listed = queries.items_page(session, page=1, per_page=200).items
        reasons = set()
        now = utcnow()
        for item in listed:
            gate = check_material(session, service.find_item(session, item.row.barcode), now)
            assert (item.usable_now, item.reason) == (gate.usable, gate.reason), item.row.barcode
            reasons.add(item.reason)
    assert reasons == {None, "not_opened", "expired", "used_up", "disposed", "quarantined", "withdrawn"}


# ---------------------------------------------------------------- one item


def test_item_summary_of_a_solution_gives_full_and_rounded_uncertainty(db, shelf):
    with db.reading() as session:
        solution = service.find_item(session, shelf.units["solution"])
        summary = queries.item_summary(session, solution, utcnow())
    assert summary.kind == "solution" and summary.usability.usable
    assert summary.certificate_no == "GBW(E)081601" and summary.lot_no == "B2401"
    [component] = summary.components
    assert component.concentration == D("100") and component.unit == "mg/L"
    # u_rel = √((3.5/1000)² + (0.020/√3/10)² + (0.10/√3/100)²) = 0.0037305; U = 2 × 100 × u_rel = 0.746
    assert abs(component.relative_u - D("0.0037305049")) < D("1e-10")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        assert component.standard_uncertainty == component.concentration * component.relative_u
        assert component.expanded_uncertainty == 2 * component.standard_uncertainty
    assert component.shown_concentration == "100.00" and component.shown_expanded_uncertainty == "0.75"


# ---------------------------------------------------------------- the dashboard cards


def test_the_custodian_sees_the_three_cards_with_their_counts(client, db, users, store):
    technical = users["technical_manager"]
    shelf = stock_shelf(db, technical, store)

    def cards(response) -> dict[str, int]:
        found = re.findall(r'<a class="worklist[^"]*" href="([^"]+)">\s*<span class="count">(\d+)</span>',
                           response.text)
        return {href.replace("&amp;", "&"): int(n) for href, n in found}

    login(client, "custodian")
    mine = {href: n for href, n in cards(client.get("/dashboard")).items() if href.startswith("/reference-materials")}
    assert mine == {"/reference-materials/due?list=expiring": len(shelf.expiring),
                    "/reference-materials/due?list=expired": len(shelf.expired),
                    "/reference-materials?stock=low": len(shelf.low_stock)}
    for role in ("analyst", "inspector"):
        login(client, role)
        assert not any(href.startswith("/reference-materials") for href in cards(client.get("/dashboard")))
