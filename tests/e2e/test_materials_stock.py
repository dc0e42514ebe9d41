"""Reference-material stock in a real browser: the custodian registers a material, then a lot
with its certificate PDF and a reference value, and receives two units; the analyst scans a
unit's barcode into the page's scan field, opens the unit and records a use; a unit of a lot
that has expired since it was opened is refused with its reason, and nothing is recorded.
Screenshots at 1280 px and on a 390 x 844 phone; every page checked for layout problems."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import DESKTOP, ensure_language, sign_in, sign_out
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

PHONE_844 = {"width": 390, "height": 844}
LAB = ZoneInfo("Asia/Shanghai")  # the e2e server's lab time zone (the default)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
CERTIFICATE_NO = "GBW(E)089901"
BARCODE = re.compile(r"RM\d{2}-\d{5,}")


def wall_clock(days_ago: float) -> str:
    """A datetime-local value: the lab's wall-clock time `days_ago` days ago."""
    return (datetime.now(LAB) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M")


class Walk:
    def __init__(self, page, log, screenshots) -> None:
        self.page, self.log, self.screenshots = page, log, screenshots
        self.problems: list[str] = []

    def look(self, name: str, *, phone: bool = False) -> None:
        """Layout checks (overflow only matters on a phone) and a screenshot."""
        width = self.page.viewport_size["width"]
        found = layout_problems(self.page)
        if not phone:
            found = [p for p in found if "horizontal overflow" not in p]
        self.problems += [f"{name} {width}px: {p}" for p in found]
        self.problems += [f"{name}: {e}" for e in self.log.take()]
        self.screenshots(self.page, f"materials-{name}-{width}")

    def submit(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)


def register_lot(walk: Walk, lot_no: str, expires_on: date, *, look: bool = False) -> None:
    page = walk.page
    walk.submit("a[href$='/lots/new']")
    page.fill("input[name=lot_no]", lot_no)
    page.fill("input[name=expires_on]", expires_on.isoformat())
    page.set_input_files("input[name=certificate]", files=[
        {"name": f"{lot_no}.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    rows = page.locator("table.value-rows tbody tr")
    for row, (analyte, value, unit, u, certified) in enumerate(
            (("NH3-N", "1000", "mg/L", "7", True), ("pH", "2.0", "mg/L", "", False))):
        cells = rows.nth(row)
        cells.locator("input[name=analyte]").fill(analyte)
        cells.locator("input[name=value]").fill(value)
        cells.locator("input[name=unit]").fill(unit)
        cells.locator("input[name=u]").fill(u)
        cells.locator("input[name=certified]").set_checked(certified)
    if look:
        walk.look("lot-new")
    walk.submit("#lot-form button[type=submit]")
    assert re.search(r"/reference-materials/lots/\d+$", page.url), page.url


def receive(walk: Walk, count: int, received_at: str | None = None) -> None:
    page = walk.page
    page.click("details#receive > summary")
    page.fill("#receive input[name=count]", str(count))
    page.fill("#receive input[name=quantity]", "20")
    page.fill("#receive input[name=quantity_unit]", "mL")
    if received_at:
        page.fill("#receive input[name=received_at]", received_at)
    walk.submit("#receive button[type=submit]")


def test_custodian_registers_and_receives_analyst_opens_and_uses(new_page, screenshots):
    page, log = new_page(DESKTOP)
    walk = Walk(page, log, screenshots)
    today = datetime.now(LAB).date()

    # ---- the custodian: a material, a lot with its certificate, two units
    sign_in(page, "custodian")
    ensure_language(page, "zh_CN")  # the language is remembered per user; other modules share the server
    page.goto("/reference-materials")
    walk.submit("a[href='/reference-materials/new']")
    page.fill("input[name=certificate_no]", CERTIFICATE_NO)
    page.fill("input[name=producer]", "生态环境部标准样品研究所")
    page.fill("input[name=name_zh]", "水中氨氮成分分析标准物质（e2e）")
    page.fill("input[name=name_en]", "Ammonia nitrogen in water (e2e)")
    page.fill("input[name=matrix]", "水")
    page.fill("input[name=storage_conditions]", "2–8 ℃ 避光")
    page.fill("input[name=opened_shelf_life_days]", "60")
    page.fill("input[name=min_stock_units]", "3")
    walk.look("new")
    walk.submit("#material-form button[type=submit]")
    assert re.search(r"/reference-materials/m/\d+$", page.url), page.url
    material_url = page.url

    register_lot(walk, "E2E-A", today + timedelta(days=400), look=True)
    assert page.locator("table.certified-values").inner_text().count("1000") == 1
    assert "2.0" in page.locator("table.reference-values").inner_text()
    receive(walk, 2)
    barcodes = BARCODE.findall(page.locator("#units table").inner_text())
    assert len(barcodes) == 2, barcodes
    walk.look("lot")

    # a second lot that expired ten days ago: one unit, received two months ago
    page.goto(material_url)
    register_lot(walk, "E2E-OLD", today - timedelta(days=10))
    receive(walk, 1, wall_clock(60))
    [expired] = BARCODE.findall(page.locator("#units table").inner_text())
    page.goto(material_url)
    walk.look("material")

    page.goto(f"/reference-materials?q={CERTIFICATE_NO}")  # other e2e modules share the server
    assert page.locator("#results tbody tr").count() == 1
    page.goto("/reference-materials")
    row = page.locator("#results tbody tr", has_text=CERTIFICATE_NO)
    assert row.locator("[data-usable-units]").get_attribute("data-usable-units") == "2"
    assert row.locator(".badge.warn").count() == 1  # 2 usable of a minimum of 3
    walk.look("list")
    sign_out(page)

    # ---- the analyst scans a unit, opens it and records a use
    sign_in(page, "analyst")
    ensure_language(page, "zh_CN")
    page.goto("/reference-materials/units")
    walk.look("units")
    assert page.evaluate("document.activeElement.name") == "code"  # the scan field has the focus
    page.keyboard.type(barcodes[0])
    with page.expect_navigation():
        page.keyboard.press("Enter")  # a keyboard-wedge scanner ends with Enter
    assert page.url.endswith(f"/reference-materials/items/{barcodes[0]}"), page.url
    assert page.locator(".usability[data-reason=not_opened]").count() == 1
    walk.submit("#open button[type=submit]")
    assert page.locator(".usability[data-usable=yes]").count() == 1
    page.fill("#use input[name=quantity]", "1.5")
    page.fill("#use input[name=purpose]", "氨氮校准曲线（e2e）")
    walk.submit("#use button[type=submit]")
    uses = page.locator("#uses table").inner_text()
    assert "氨氮校准曲线（e2e）" in uses and "1.5 mL" in uses
    assert page.locator(".remaining").inner_text() == "18.5"
    walk.look("item")
    page.set_viewport_size(PHONE_844)
    walk.look("item", phone=True)
    page.evaluate("window.scrollTo(0, 0)")
    screenshots(page, "materials-item-390x844", full_page=False)  # what a phone shows after a scan
    page.set_viewport_size(DESKTOP)

    # ---- the unit of the expired lot: opened while valid, used now → refused with the reason
    page.goto(f"/reference-materials/items/{expired}")
    page.fill("#open input[name=opened_at]", wall_clock(30))
    walk.submit("#open button[type=submit]")
    assert page.locator(".usability[data-reason=expired]").count() == 1
    page.fill("#use input[name=quantity]", "1")
    page.fill("#use input[name=purpose]", "质控样（e2e）")
    walk.submit("#use button[type=submit]")
    # the refusal is a 409 page, which the browser reports on its console; nothing else may be there
    assert [e for e in log.take() if "status of 409" not in e] == []
    alert = page.locator("#messages .alert.error")
    assert alert.get_attribute("data-code") == "material_expired"
    assert expired in alert.inner_text() and "已过有效期" in alert.inner_text()
    assert page.input_value("#use input[name=purpose]") == "质控样（e2e）"  # what was typed is kept
    assert page.locator("#uses table").count() == 0  # nothing recorded
    walk.look("item-refused")
    page.set_viewport_size(PHONE_844)
    walk.look("item-refused", phone=True)

    assert not walk.problems, "\n".join(walk.problems)
