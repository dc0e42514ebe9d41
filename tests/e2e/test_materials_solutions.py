"""Standard solutions in a real browser: with a CRM lot and an opened unit set up through the
services, the analyst scans the unit (the Enter of a keyboard-wedge scanner loads the parent and
prepares nothing), previews and prepares a stock solution, dilutes it again from its page, opens
its label and traceability PDF, looks at the lot's forward traceability, and is refused with the
reason when the parent is an expired unit. Every page at desk and phone width; screenshots for
the docs at 1280 px."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from app.core.db import utcnow
from app.core.files import file_store
from app.instruments.service import Upload
from app.reference_materials import service
from app.reference_materials.models import StandardSolution
from tests.e2e.conftest import DESKTOP, PHONE, SCREENSHOTS, ensure_language, sign_in, user_named
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
D = Decimal


# ---------------------------------------------------------------- the server's database


@pytest.fixture(scope="module")
def stock(server_db, server_settings) -> dict:
    """An ammonia-nitrogen CRM with an opened unit, and a total-phosphorus CRM whose unit expired
    25 days ago (opened 30 days ago, stable 5 days after opening)."""
    db, settings = server_db, server_settings
    store = file_store(settings.ensure_data_dir())
    with db.transaction() as session:
        custodian = user_named(session, "technical")
        nh3 = service.register_material(session, custodian, service.MaterialFacts(
            certificate_no="GBW(E)081987", name_zh="水中氨氮溶液标准物质（e2e）",
            name_en="Ammonia nitrogen in water (e2e)",
            producer="生态环境部标准样品研究所", matrix="水", opened_shelf_life_days=90))
        lot = service.register_lot(
            session, custodian, nh3, lot_no="E2E-2309", expires_on=date.today() + timedelta(days=400),
            values=[service.ValueFacts("NH3-N", D("1000"), "mg/L", D("7"), D("2"))],
            store=store, certificate=Upload(io.BytesIO(PDF), "GBW(E)081987.pdf"))
        unit = service.receive_units(session, custodian, lot, count=1, quantity=D("20"), quantity_unit="mL",
                                     received_at=utcnow() - timedelta(days=20))[0]
        service.open_item(session, custodian, unit, utcnow() - timedelta(days=10))
        tp = service.register_material(session, custodian, service.MaterialFacts(
            certificate_no="GBW(E)082988", name_zh="水中总磷溶液标准物质（e2e）",
            name_en="Total phosphorus in water (e2e)",
            producer="生态环境部标准样品研究所", opened_shelf_life_days=5))
        tp_lot = service.register_lot(
            session, custodian, tp, lot_no="E2E-TP-17", expires_on=date.today() + timedelta(days=300),
            values=[service.ValueFacts("TP", D("500"), "mg/L", D("5"), D("2"))],
            store=store, certificate=Upload(io.BytesIO(PDF), "GBW(E)082988.pdf"))
        expired = service.receive_units(session, custodian, tp_lot, count=1, quantity=D("20"), quantity_unit="mL",
                                        received_at=utcnow() - timedelta(days=40))[0]
        service.open_item(session, custodian, expired, utcnow() - timedelta(days=30))
        return {"unit": unit.barcode, "lot_id": lot.id, "expired": expired.barcode}


def solution_count(server_db) -> int:
    db = server_db
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(StandardSolution))


# ---------------------------------------------------------------- the walk


class Walk:
    def __init__(self, page, log, screenshots) -> None:
        self.page, self.log, self.screenshots = page, log, screenshots
        self.problems: list[str] = []

    def look(self, name: str) -> None:
        """Layout checks at both widths, screenshots of both (tests/e2e/screenshots; the docs'
        screenshots are taken by hand, never overwritten by a test run)."""
        for viewport in (DESKTOP, PHONE):
            self.page.set_viewport_size(viewport)
            width = viewport["width"]
            found = layout_problems(self.page)
            if width != PHONE["width"]:
                found = [p for p in found if "horizontal overflow" not in p]
            self.problems += [f"{name} {width}px: {p}" for p in found]
            self.screenshots(self.page, f"solutions-{name}-{width}")
        self.page.set_viewport_size(DESKTOP)
        self.problems += [f"{name}: {e}" for e in self.log.take()]

    def fill_preparation(self, name: str, aliquot: str, final: str, pipette: tuple[str, str],
                         flask: tuple[str, str], output_unit: str = "mg/L") -> None:
        page = self.page
        page.fill("input[name=name]", name)
        page.fill("input[name=solvent]", "无氨水")
        page.fill("input[name=aliquot]", aliquot)
        page.fill("input[name=final_volume]", final)
        page.select_option("select[name=output_unit]", output_unit)
        page.fill("input[name=shelf_life_days]", "30")
        names, tolerances = page.locator("input[name=device_name]"), page.locator("input[name=device_tolerance]")
        names.nth(0).fill(pipette[0])
        tolerances.nth(0).fill(pipette[1])
        names.nth(1).fill(flask[0])
        tolerances.nth(1).fill(flask[1])


def decode(pdf: bytes, folder: Path, name: str) -> set[str]:
    path = folder / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(path), str(folder / name)],
                   check=True)
    image = Image.open(next(folder.glob(f"{name}-*.png"))).convert("L")
    return {r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.Code128}


def test_two_step_dilution_label_and_an_expired_unit(new_page, screenshots, server_db, stock, tmp_path):
    page, log = new_page(DESKTOP)
    walk = Walk(page, log, screenshots)
    sign_in(page, "analyst")
    ensure_language(page, "en")

    # ---- scan the unit: the scanner types the code and Enter; the parent loads, nothing is prepared
    before = solution_count(server_db)
    page.goto("/reference-materials/solutions/new")
    assert page.evaluate("document.activeElement && document.activeElement.name") == "parent_barcode"
    page.keyboard.type(stock["unit"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#parent-info input[name=analyte][value='NH3-N']")
    assert page.url.endswith("/reference-materials/solutions/new")
    assert page.locator(".alert.error").count() == 0
    assert "1000 ± 7" in page.inner_text("#parent-info")
    assert solution_count(server_db) == before

    # ---- the stock solution: preview first (nothing saved), then prepare
    walk.fill_preparation("Ammonia nitrogen stock solution 氨氮标准贮备液", "10", "100",
                          ("10 mL one-mark pipette 单标线吸量管", "0.020"), ("100 mL volumetric flask 容量瓶", "0.10"))
    page.locator("input[name=final_volume]").press("Enter")  # Enter in another field: still only a look-up
    page.wait_for_timeout(300)
    assert page.url.endswith("/reference-materials/solutions/new") and solution_count(server_db) == before
    page.click("button[value=preview]")
    page.wait_for_selector("#preview table.budget")
    assert "100.00 ± 0.75" in page.inner_text("#preview")
    assert solution_count(server_db) == before
    page.locator("#preview").scroll_into_view_if_needed()
    walk.look("prepare-preview")
    with page.expect_navigation():
        page.click("button[value=prepare]")
    assert re.search(r"/reference-materials/solutions/SS\d{2}-\d{5}$", page.url), page.url
    first = page.url.rsplit("/", 1)[1]
    assert "100.00 ± 0.75" in page.inner_text(".solution-summary")

    # ---- the working solution, prepared from the stock solution's page
    with page.expect_navigation():
        page.click(f"a[href='/reference-materials/solutions/new?parent={first}']")
    page.wait_for_selector("#parent-info input[name=analyte][value='NH3-N']")
    walk.fill_preparation("Ammonia nitrogen working solution 氨氮标准使用液", "5", "50",
                          ("5 mL one-mark pipette 单标线吸量管", "0.015"), ("50 mL volumetric flask 容量瓶", "0.05"),
                          output_unit="μg/mL")
    with page.expect_navigation():
        page.click("button[value=prepare]")
    second = page.url.rsplit("/", 1)[1]
    assert second != first and second.startswith("SS")
    summary = page.inner_text(".solution-summary")
    assert "10.000 ± 0.083" in summary and "μg/mL" in summary
    chain = page.inner_text("ol.chain")
    for text in ("GBW(E)081987", "E2E-2309", stock["unit"], first, second, "5 mL one-mark pipette"):
        assert text in chain, text
    assert page.locator("ol.chain table.budget").count() == 2
    assert solution_count(server_db) == before + 2
    walk.look("detail")

    # ---- its label: the page's link gives a PDF whose Code 128 scans back to the barcode
    href = page.get_attribute("a[href$='/label.pdf?format=thermal']", "href")
    assert href == f"/reference-materials/solutions/{second}/label.pdf?format=thermal"
    label = page.request.get(href)  # with the browser's session cookie
    assert label.ok and label.headers["content-type"] == "application/pdf"
    assert decode(label.body(), tmp_path, "label") == {second}

    # ---- the traceability PDF, page 1 as a picture for the docs
    trace = page.request.get(f"/reference-materials/solutions/{second}/traceability.pdf")
    assert trace.ok and trace.body().startswith(b"%PDF")
    pdf = tmp_path / "trace.pdf"
    pdf.write_bytes(trace.body())
    subprocess.run(["pdftoppm", "-r", "110", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(tmp_path / "trace")], check=True)
    shutil.copyfile(tmp_path / "trace.png", SCREENSHOTS / "solutions-traceability-pdf.png")
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    for expected in ("GBW(E)081987", "E2E-2309", first, second):
        assert expected in text, expected

    # ---- the lot's forward traceability: both generations
    page.goto(f"/reference-materials/lots/{stock['lot_id']}/forward")
    records = page.locator("table.forward tbody tr[data-source=solution]")
    assert records.count() == 2
    assert {records.nth(i).get_attribute("data-record") for i in range(2)} == {first, second}
    walk.look("forward")
    csv = page.request.get(f"/reference-materials/lots/{stock['lot_id']}/forward.csv")
    assert csv.ok and first in csv.text() and second in csv.text()

    # ---- the list
    page.goto("/reference-materials/solutions")
    assert page.locator(f"tr[data-barcode='{second}']").count() == 1
    walk.look("list")

    # ---- an expired unit: the parent block says so, and preparing is refused with the reason
    before = solution_count(server_db)
    page.goto("/reference-materials/solutions/new")
    page.keyboard.type(stock["expired"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#parent-info [data-reason=expired]")
    walk.fill_preparation("Total phosphorus stock solution", "10", "100", ("10 mL pipette", "0.020"),
                          ("100 mL flask", "0.10"))
    page.click("button[value=prepare]")
    refusal = page.wait_for_selector("#solution-form .alert.error[data-code=material_expired]")
    assert "expired" in refusal.inner_text()
    assert page.locator("#solution-form [data-reason=expired]").count() >= 1
    assert page.input_value("input[name=name]") == "Total phosphorus stock solution"  # input kept
    assert solution_count(server_db) == before
    assert [e for e in log.take() if "409" not in e] == []  # the browser reports the refused post's 409, rightly
    walk.look("refused-expired")

    # ---- the certificate is withdrawn: the forward page says so before anything else
    db = server_db
    with db.transaction() as session:
        lot = service.get_lot(session, stock["lot_id"])
        service.change_lot_status(session, user_named(session, "quality"), lot, "withdrawn",
                                  reason="生产方撤销证书：定值有误 (certificate withdrawn by the producer)")
    page.goto(f"/reference-materials/lots/{stock['lot_id']}/forward")
    banner = page.locator(".alert[data-lot-status=withdrawn]")
    assert "these uses are affected" in banner.inner_text()
    assert banner.bounding_box()["y"] < page.locator("table.forward").bounding_box()["y"]
    walk.look("forward-withdrawn")
    page.goto(f"/reference-materials/solutions/{second}")
    assert page.locator(".alert[data-lot-status=withdrawn]").count() == 1
    assert page.locator("[data-usable=no][data-reason=withdrawn]").count() >= 1

    assert not walk.problems, "\n".join(walk.problems)
