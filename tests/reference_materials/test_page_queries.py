"""The reference-material pages cost a fixed number of SQL statements, however many materials,
lots, units or uses there are (DESIGN.md rule 10): related rows come in one IN query each."""

from __future__ import annotations

from app.reference_materials import service
from tests.conftest import login
from tests.reference_materials.conftest import D, ago, make_lot, make_material, open_unit, receive


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up (role cache, templates)
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def stock(db, actor, store, n: int, *, first: int = 0) -> None:
    """Materials n..: each with a lot, two units (one opened) and a low-stock threshold."""
    for i in range(first, n):
        material = make_material(db, actor, f"GBW(E)08{i:04d}", name_zh=f"标准物质 {i}", min_stock_units=3)
        lot = make_lot(db, actor, store, material, lot_no=f"L{i}")
        units = receive(db, actor, lot, count=2)
        open_unit(db, actor, units[0])


def test_the_material_and_unit_lists_cost_the_same_for_2_and_20_rows(client, db, technical, store, count_queries):
    stock(db, technical, store, 2)
    login(client, "analyst")
    urls = ("/reference-materials", "/reference-materials?q=gbw&stock=low", "/reference-materials/units",
            "/reference-materials/units?state=in_use&due=expiring", "/reference-materials/reagents")
    few = {url: statements(client, count_queries, url) for url in urls}
    stock(db, technical, store, 20, first=2)
    assert client.get("/reference-materials").text.count('<a href="/reference-materials/m/') == 2 * 20
    assert client.get("/reference-materials/units").text.count('<a href="/reference-materials/items/RM') == 40
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert max(many.values()) <= 6


def test_the_lot_and_item_pages_cost_the_same_for_2_and_20_units_and_uses(client, db, users, technical, store,
                                                                         count_queries):
    material = make_material(db, technical)
    lot = make_lot(db, technical, store, material)
    units = receive(db, technical, lot, count=2, received_at=ago(days=40))
    first = open_unit(db, technical, units[0], ago(days=30))

    def use(times: int) -> None:
        with db.transaction() as session:
            unit = session.merge(first)
            for n in range(times):
                service.record_use(session, users["analyst"], unit, ago(days=20 - n * 0.5), quantity=D("0.1"),
                                   quantity_unit="mL", purpose=f"校准 {n}")

    use(2)
    login(client, "analyst")
    urls = (f"/reference-materials/lots/{lot.id}", f"/reference-materials/items/{first.barcode}",
            f"/reference-materials/m/{material.id}")
    few = {url: statements(client, count_queries, url) for url in urls}

    more = receive(db, users["custodian"], lot, count=18, received_at=ago(days=35))
    for unit in more[:9]:
        open_unit(db, users["analyst"], unit, ago(days=25))
    use(18)
    for n in range(3):  # more lots of the material
        extra = make_lot(db, technical, store, material, lot_no=f"B24{n}")
        receive(db, technical, extra, count=2)
    page = client.get(f"/reference-materials/lots/{lot.id}").text
    assert page.count('<a href="/reference-materials/items/RM') == 20
    assert client.get(f"/reference-materials/items/{first.barcode}").text.count("校准 ") == 20
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert many[f"/reference-materials/lots/{lot.id}"] <= 10
