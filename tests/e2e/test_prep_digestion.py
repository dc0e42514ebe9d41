"""Preparing a digestion batch in a real browser, as the analyst does it: two demo samples kept in
the sample room (received and stored by the lab demo), a Cu standard
solution and a bottle of nitric acid are set up through the reference-materials services; then
in Chromium the analyst takes aliquots on a phone-sized page (scanner types the barcode), opens a
digestion batch (HJ 677-2013, Cu/Zn/Pb/Cd), scans the aliquots in, is told about a mistyped
barcode, adds a preparation blank, a spike with the standard and the acid, and closes the batch
by signing. Layout checks at desk and phone width; screenshots in tests/e2e/screenshots."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.core.files import file_store
from app.instruments.service import Upload
from app.reference_materials import service as rm
from app.reference_materials import solutions
from app.samples.lab_models import PrepBatch, PrepBatchItem
from app.samples.models import Container, Sample, SampleState
from tests.e2e.conftest import DEMO_PASSWORD, DESKTOP, PHONE, sign_in, user_named
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

D = Decimal
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PIPETTE = solutions.DeviceFacts("aliquot", "10 mL 单标线吸量管", D("0.020"), "mL", "A")
FLASK = solutions.DeviceFacts("final_volume", "100 mL 单标线容量瓶", D("0.10"), "mL", "A")


@pytest.fixture(scope="module")
def bench(server_db, server_settings) -> dict:
    """Two samples of recent rounds kept in the sample room (the lab demo received and stored
    them; their metals keep 14 days), a Cu standard solution and HNO3."""
    db, settings = server_db, server_settings
    store = file_store(settings.ensure_data_dir())
    with db.transaction() as session:
        since = utcnow() - timedelta(days=10)  # Cu, Zn, Pb, Cd keep 14 days (HJ 493-2009)
        with_metals = select(Container.sample_id).where(Container.parameters.contains('"Cu"'),
                                                        Container.state == "received")
        samples = list(session.scalars(
            select(Sample).where(Sample.state == SampleState.IN_STORAGE.value, Sample.collected_at >= since,
                                 Sample.id.in_(with_metals))
            .order_by(Sample.collected_at.desc()).limit(2)))  # two stored rounds: two samples in the batch
        assert len(samples) == 2, "the demo has no stored samples of the last ten days (app/samples/lab_demo.py)"
        containers = list(session.scalars(select(Container).where(
            Container.sample_id.in_([s.id for s in samples]), Container.kind == "container",
            Container.state == "received").order_by(Container.barcode)))
        metals = [c.barcode for c in containers if '"Cu"' in c.parameters]

        technical = user_named(session, "technical")
        material = rm.register_material(session, technical, rm.MaterialFacts(
            certificate_no="GBW(E)080122", name_zh="水中铜成分分析标准物质（e2e）", name_en="Copper in water (e2e)",
            producer="生态环境部标准样品研究所", matrix="水", opened_shelf_life_days=90))
        lot = rm.register_lot(session, technical, material, lot_no="E2E-CU-24",
                              expires_on=date.today() + timedelta(days=400),
                              values=[rm.ValueFacts("Cu", D("1000"), "mg/L", D("5"), D("2"))], store=store,
                              certificate=Upload(io.BytesIO(PDF), "GBW(E)080122.pdf"))
        unit = rm.receive_units(session, technical, lot, count=1, quantity=D("20"), quantity_unit="mL",
                                received_at=utcnow() - timedelta(days=20))[0]
        rm.open_item(session, technical, unit, utcnow() - timedelta(days=10))
        solution = solutions.prepare_solution(session, technical, solutions.SolutionFacts(
            parent_barcode=unit.barcode, name="铜标准使用液 100 mg/L", aliquot=D("10"), aliquot_unit="mL",
            final_volume=D("100"), final_volume_unit="mL", output_unit="mg/L", solvent="1% 硝酸",
            prepared_at=utcnow() - timedelta(days=2), shelf_life_days=30, devices=(PIPETTE, FLASK)))
        acid = rm.register_reagent(session, technical, rm.ReagentFacts(
            name="硝酸 HNO3（优级纯）", grade="GR", supplier="国药集团化学试剂有限公司", lot_no="E2E-N2405",
            expires_on=date.today() + timedelta(days=300), received_at=utcnow() - timedelta(days=20),
            quantity=D("500"), quantity_unit="mL", opened_shelf_life_days=180))
        return {"metals": metals, "samples": [s.sample_no for s in samples], "standard": solution.barcode,
                "acid": acid.barcode}


def look(page, log, screenshots, name: str, problems: list[str], *, widths=(DESKTOP, PHONE)) -> None:
    for viewport in widths:
        page.set_viewport_size(viewport)
        found = layout_problems(page)
        if viewport["width"] != PHONE["width"]:
            found = [p for p in found if "horizontal overflow" not in p]
        problems += [f"{name} {viewport['width']}px: {p}" for p in found]
    problems += [f"{name}: {e}" for e in log.take()]


def test_an_analyst_prepares_a_digestion_batch(new_page, screenshots, server_db, bench):
    db = server_db
    problems: list[str] = []
    page, log = new_page(PHONE)
    sign_in(page, "analyst")

    # ---- aliquots on the phone: the scanner types the barcode into the focused field
    made = []
    for barcode in (bench["metals"] * 2)[:2] + bench["metals"][:1]:
        page.goto("/prep/aliquots/new")
        assert page.evaluate("document.activeElement && document.activeElement.name") == "parent"
        page.keyboard.type(barcode)
        page.fill("input[name=amount]", "50")
        with page.expect_navigation():
            page.click("#aliquot-form button[type=submit]")
        made.append(page.get_attribute("#made", "data-barcode"))
        assert barcode in page.inner_text("#made")
    screenshots(page, "prep-aliquot-360")
    look(page, log, screenshots, "aliquot", problems, widths=(PHONE,))
    label = page.request.get(f"/prep/aliquots/{made[0]}/label.pdf")
    assert label.ok and label.body().startswith(b"%PDF")

    # a mistyped amount is refused at the scanner, nothing made
    page.goto("/prep/aliquots/new")
    page.keyboard.type(bench["metals"][0])
    page.fill("input[name=amount]", "99999")
    with page.expect_navigation():
        page.click("#aliquot-form button[type=submit]")
    assert page.get_attribute(".alert.error", "data-code") == "aliquot_exceeds_remaining"
    errors = log.take()
    assert all("409" in e for e in errors), errors  # the refusal's status, as expected

    # ---- the batch at the desk
    page.set_viewport_size(DESKTOP)
    page.goto("/prep/new")
    page.select_option("select[name=kind]", "digestion")
    page.fill("input[name=method]", "HJ 677-2013")
    page.fill("input[name=parameters]", "Cu Zn Pb Cd")
    with page.expect_navigation():
        page.click("#batch-form button[type=submit]")
    code = page.url.rstrip("/").split("/")[-1].split("#")[0]
    assert code.startswith("PB")

    for barcode in made[:2]:
        assert page.evaluate("document.activeElement && document.activeElement.id") == "scan-sample"
        page.keyboard.type(barcode)  # the focus is back on the scan box after each reload
        page.fill("#sample input[name=final_volume]", "50")
        with page.expect_navigation():
            page.press("#sample input[name=final_volume]", "Enter")
    # a misread barcode: told at once, nothing added
    page.keyboard.type("CT26-0000001")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_attribute(".alert.error", "data-code") in ("wrong_check_digit", "malformed_barcode")
    errors = log.take()
    assert all("422" in e for e in errors), errors

    page.fill("#blank input[name=final_volume]", "50")
    with page.expect_navigation():
        page.click("#blank button[type=submit]")
    page.fill("#spike input[name=barcode]", made[2])
    page.fill("#spike input[name=standard]", bench["standard"])
    page.fill("#spike input[name=spike_amount]", "0.50")
    page.fill("#spike input[name=final_volume]", "50")
    with page.expect_navigation():
        page.click("#spike button[type=submit]")
    page.fill("#material input[name=barcode]", bench["acid"])
    page.fill("#material input[name=quantity]", "5")
    page.fill("#material input[name=purpose]", "硝酸消解 HNO3 digestion")
    with page.expect_navigation():
        page.click("#material button[type=submit]")
    assert page.locator(".alert.error").count() == 0, page.inner_text(".alert.error")
    assert page.locator("table.prep-items tbody tr[data-role]").count() == 4
    assert page.locator("#missing-qc").count() == 0
    screenshots(page, "prep-batch-1280")
    look(page, log, screenshots, "batch", problems)

    # ---- close and sign
    page.set_viewport_size(DESKTOP)
    page.fill("#close input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("#close button[type=submit]")
    page.wait_for_selector("#signature .signature.intact")
    assert page.locator("#scan-sample").count() == 0
    screenshots(page, "prep-signed-1280")
    look(page, log, screenshots, "signed", problems)

    # the list shows it, and the sample page shows the batch
    page.goto("/prep")
    assert page.locator(f"tr[data-batch='{code}'] [data-state='closed']").count() == 1
    page.goto(f"/samples/{bench['samples'][0]}")
    assert page.locator(f"#prep a[href='/prep/{code}']").count() >= 1
    problems += [f"pages: {e}" for e in log.take()]

    with db.reading() as session:
        batch = session.scalars(select(PrepBatch).where(PrepBatch.code == code)).one()
        assert batch.state == "closed" and batch.signature_id is not None
        items = session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)).all()
        prepared = {session.get(Sample, i.sample_id).state for i in items if i.sample_id}
        assert prepared == {SampleState.PREPARED.value}
    assert not problems, "\n".join(problems)
