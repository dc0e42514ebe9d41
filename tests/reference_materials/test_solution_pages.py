"""Standard solution pages as an analyst uses them: the list, preparing through the form (one and
two steps, a preview that saves nothing, the scanner's Enter, every refusal in the form with
nothing saved), the solution page with its backward chain and budgets, the label, the acts on a
solution, and the forward traceability page and CSV of a lot. Query counts stay fixed."""

from __future__ import annotations

import csv
import html
import io
import re
import subprocess
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.reference_materials import service
from app.reference_materials.dilution import Device, DilutionStep, ParentValue, dilute, expanded_for_display
from app.reference_materials.gate import check_material
from app.reference_materials.models import MaterialUse, SolutionComponent, StandardSolution, StockUnit
from app.reference_materials.solution_routes import usable_now
from tests.conftest import login
from tests.reference_materials.conftest import (
    D,
    ago,
    make_lot,
    make_material,
    open_unit,
    prepare,
    receive,
)

SHANGHAI = "Asia/Shanghai"


def local(moment: datetime, db) -> str:
    return moment.astimezone(db.calendar.tz).strftime("%Y-%m-%dT%H:%M")


def text_of(response) -> str:
    """The page's text with tags dropped and whitespace collapsed (numbers split by markup join)."""
    plain = html.unescape(re.sub(r"<[^>]+>", " ", response.text))
    return re.sub(r"\s+", " ", plain)


def counts(db) -> tuple[int, ...]:
    """Solutions, their components, uses and audit events: what a preparation would add."""
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (StandardSolution, SolutionComponent, MaterialUse, AuditEvent))


def form(token: str, parent: str, db, **changes) -> dict:
    data = {
        "csrf_token": token, "parent_barcode": parent, "name": "氨氮标准贮备液", "aliquot": "10", "aliquot_unit": "mL",
        "final_volume": "100", "final_volume_unit": "mL", "output_unit": "mg/L", "solvent": "无氨水",
        "prepared_at": local(ago(hours=2), db), "shelf_life_days": "30", "density": "", "density_unit": "g/mL",
        "device_role": ["aliquot", "final_volume", "aliquot", "final_volume"],
        "device_name": ["10 mL 单标线吸量管", "100 mL 单标线容量瓶", "", ""],
        "device_class": ["A", "A", "A", "A"], "device_tolerance": ["0.020", "0.10", "", ""],
        "device_unit": ["mL", "mL", "mL", "mL"], "action": "prepare",
    }
    data.update(changes)
    return data


def expected(parent: ParentValue, aliquot: str, final: str, unit: str = "mg/L"):
    """The dilution computed on its own (the page must show exactly this, rounded for display)."""
    step = DilutionStep(D(aliquot), "mL", D(final), "mL",
                        (Device("pipette", D("0.020"), "mL"),), (Device("flask", D("0.10"), "mL"),))
    return dilute(parent, step, unit)


CRM = ParentValue("NH3-N", D("1000"), "mg/L", D("7") / 2 / D("1000"))


def expected_stock() -> tuple[Decimal, Decimal]:
    """(concentration, u_rel) of the conftest's `prepare`: 10 mL of the CRM made up to 100 mL."""
    result = expected(CRM, "10", "100")
    return result.concentration, result.relative_u


@pytest.fixture
def analyst(client, users):
    return login(client, "analyst")


# ---------------------------------------------------------------- preparing through the form


def test_one_step_preparation_through_the_form(client, db, opened_unit, analyst):
    before = counts(db)
    response = client.post("/reference-materials/solutions/new", data=form(analyst, opened_unit.barcode, db))
    assert response.status_code == 303, text_of(response)[:500]
    location = response.headers["location"]
    assert re.fullmatch(r"/reference-materials/solutions/SS\d{2}-\d{5}", location)
    barcode = location.rsplit("/", 1)[1]
    with db.reading() as session:
        solution = session.scalars(select(StandardSolution).where(StandardSolution.barcode == barcode)).one()
        component = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == solution.id)).one()
        assert solution.generation == 1 and solution.parent_unit_id == opened_unit.id
        assert solution.name == "氨氮标准贮备液" and solution.solvent == "无氨水"
        stored = (component.concentration, component.relative_u)
    result = expected(CRM, "10", "100")
    assert stored == (result.concentration, result.relative_u) and stored[0] == D("100")
    assert counts(db)[0] == before[0] + 1

    page = client.get(location)
    assert page.status_code == 200
    value, u = expanded_for_display(result.concentration, result.relative_u)
    shown = text_of(page)
    assert f"{value} ± {u} mg/L" in shown
    assert "GBW(E)081601" in shown and "B2309" in shown and opened_unit.barcode in shown
    assert f'href="/reference-materials/lots/{opened_unit.lot_id}/certificate"' in page.text
    assert f'href="/reference-materials/items/{opened_unit.barcode}"' in page.text
    # the budget of the step: parent (U/k), aliquot and final volume (tolerance/√3)
    assert [m for m in re.findall(r'data-component="(\w+)"', page.text)] == ["parent", "aliquot", "final_volume"]
    assert "0.00350" in shown  # u_rel of the certified value: 7/2/1000, three significant figures


def test_two_step_preparation_through_the_form(client, db, opened_unit, analyst):
    first = client.post("/reference-materials/solutions/new", data=form(analyst, opened_unit.barcode, db))
    stock = first.headers["location"].rsplit("/", 1)[1]
    second = client.post("/reference-materials/solutions/new", data=form(
        analyst, stock.lower(), db, name="氨氮标准使用液", output_unit="μg/mL", aliquot="5", final_volume="50",
        prepared_at=local(ago(hours=1), db),
        device_name=["5 mL 单标线吸量管", "50 mL 单标线容量瓶", "", ""], device_tolerance=["0.015", "0.05", "", ""]))
    assert second.status_code == 303, text_of(second)[:500]
    working = second.headers["location"].rsplit("/", 1)[1]
    with db.reading() as session:
        solution = session.scalars(select(StandardSolution).where(StandardSolution.barcode == working)).one()
        component = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == solution.id)).one()
        assert solution.generation == 2 and solution.root_lot_id == opened_unit.lot_id
        stored = (component.concentration, component.unit, component.relative_u)
    step1 = expected(CRM, "10", "100")
    step2 = dilute(ParentValue("NH3-N", step1.concentration, "mg/L", step1.relative_u),
                   DilutionStep(D("5"), "mL", D("50"), "mL", (Device("p", D("0.015"), "mL"),),
                                (Device("f", D("0.05"), "mL"),)), "μg/mL")
    assert stored == (step2.concentration, "μg/mL", step2.relative_u) and stored[0] == D("10")

    page = client.get(f"/reference-materials/solutions/{working}")
    shown = text_of(page)
    value, u = expanded_for_display(step2.concentration, step2.relative_u)
    assert f"{value} ± {u} μg/mL" in shown
    # the chain: the CRM, step 1 (the stock solution), step 2 (this one), each with its budget
    assert re.findall(r'data-step="(\d)"', page.text) == ["1", "2"]
    assert page.text.count('<table class="budget"') == 2
    assert stock in shown and "5 mL 单标线吸量管" in shown and "10 mL 单标线吸量管" in shown
    assert f'href="/reference-materials/solutions/{stock}"' in page.text
    first_value, first_u = expanded_for_display(step1.concentration, step1.relative_u)
    assert f"{first_value} ± {first_u} mg/L" in shown


def test_preview_computes_and_saves_nothing(client, db, opened_unit, analyst):
    before = counts(db)
    data = form(analyst, opened_unit.barcode, db, action="preview")
    fragment = client.post("/reference-materials/solutions/preview", data=data, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="preview"')
    result = expected(CRM, "10", "100")
    value, u = expanded_for_display(result.concentration, result.relative_u)
    assert f"{value} ± {u}" in text_of(fragment)
    assert re.findall(r'data-component="(\w+)"', fragment.text) == ["parent", "aliquot", "final_volume"]
    # without JavaScript the preview button posts the form: the whole page comes back with the preview
    page = client.post("/reference-materials/solutions/new", data=data)
    assert page.status_code == 200 and "<html" in page.text and f"{value} ± {u}" in text_of(page)
    assert 'value="氨氮标准贮备液"' in page.text
    # a refused preview says why, in the preview
    refused = client.post("/reference-materials/solutions/preview", data={**data, "final_volume": "5"},
                          headers={"HX-Request": "true"})
    assert refused.status_code == 422 and 'data-code="aliquot_exceeds_final_volume"' in refused.text
    assert counts(db) == before


def test_a_scanners_enter_looks_the_parent_up_and_prepares_nothing(client, db, opened_unit, analyst):
    before = counts(db)
    # the form's first submit button is "look up": what Enter in any field triggers
    blank = client.get("/reference-materials/solutions/new")
    assert blank.status_code == 200
    buttons = re.findall(r'<button type="submit" name="action" value="(\w+)"', blank.text)
    assert buttons[0] == "lookup" and "prepare" in buttons
    assert re.search(r'<input id="parent_barcode" name="parent_barcode"[^>]*autofocus', blank.text)
    looked_up = client.post("/reference-materials/solutions/new", data={
        "csrf_token": analyst, "parent_barcode": opened_unit.barcode.lower(), "action": "lookup"})
    assert looked_up.status_code == 200
    assert 'class="alert error"' not in looked_up.text
    assert 'name="analyte" value="NH3-N"' in looked_up.text and "1000 ± 7" in text_of(looked_up)
    assert 'name="analyte" value="pH"' not in looked_up.text  # a reference value is never diluted
    # only the barcode filled and "prepare" sent (a browser whose default button was prepare): the same
    only_barcode = client.post("/reference-materials/solutions/new", data={
        "csrf_token": analyst, "parent_barcode": opened_unit.barcode})
    assert only_barcode.status_code == 200 and 'class="alert error"' not in only_barcode.text
    assert 'name="analyte" value="NH3-N"' in only_barcode.text
    # htmx: the parent's block alone, by GET
    fragment = client.get(f"/reference-materials/solutions/parent?barcode={opened_unit.barcode}",
                          headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="parent-info"')
    assert "GBW(E)081601" in fragment.text and 'data-usable="yes"' in fragment.text
    unknown = client.get("/reference-materials/solutions/parent?parent_barcode=RM26-99999",
                         headers={"HX-Request": "true"})
    assert unknown.status_code == 200 and "RM26-99999" in unknown.text and 'class="alert error"' in unknown.text
    assert counts(db) == before


def test_analytes_ticked_are_the_ones_carried(client, db, technical, store, analyst):
    material = make_material(db, technical, "GBW(E)080001", name_zh="水中铜铅锌")
    lot = make_lot(db, technical, store, material, lot_no="M1", values=(
        service.ValueFacts("Cu", D("100.0"), "mg/L", D("0.8"), D("2")),
        service.ValueFacts("Pb", D("100.0"), "mg/L", D("0.8"), D("2")),
        service.ValueFacts("Zn", D("100.0"), "mg/L", D("1.0"), D("2"))))
    unit = open_unit(db, technical, receive(db, technical, lot)[0])
    response = client.post("/reference-materials/solutions/new", data=form(
        analyst, unit.barcode, db, name="铜锌混合标准", analyte=["Cu", "Zn"]))
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert [a for a in re.findall(r'<li data-analyte="([^"]+)"', page.text)] == ["Cu", "Zn"]


# ---------------------------------------------------------------- refusals in the form, nothing saved


@pytest.fixture
def expired_unit(db, technical, store) -> StockUnit:
    """Opened 30 days ago with a 5-day stability after opening: expired 25 days ago."""
    material = make_material(db, technical, "GBW(E)082001", opened_shelf_life_days=5, name_zh="水中总磷")
    lot = make_lot(db, technical, store, material, lot_no="TP-17",
                   values=(service.ValueFacts("TP", D("500"), "mg/L", D("5"), D("2")),))
    return open_unit(db, technical, receive(db, technical, lot, received_at=ago(days=40))[0], ago(days=30))


@pytest.fixture
def sealed_unit(db, technical, store) -> StockUnit:
    material = make_material(db, technical, "GBW(E)083001", name_zh="水中化学需氧量")
    lot = make_lot(db, technical, store, material, lot_no="COD-5",
                   values=(service.ValueFacts("COD", D("1000"), "mg/L", D("20"), D("2")),))
    return receive(db, technical, lot)[0]


@pytest.fixture
def mass_fraction_unit(db, technical, store) -> StockUnit:
    material = make_material(db, technical, "SRM 1640a", name_zh="天然水中痕量元素")
    lot = make_lot(db, technical, store, material, lot_no="1640a-07",
                   values=(service.ValueFacts("As", D("8.010"), "μg/kg", D("0.067"), D("2")),))
    return open_unit(db, technical, receive(db, technical, lot, quantity="250")[0])


REFUSALS = [
    # (case, changes, code, a phrase of the message, the field marked)
    ("zero aliquot", {"aliquot": "0"}, "non_positive_amount", "移取量必须大于零", None),
    ("negative final volume", {"final_volume": "-100"}, "non_positive_amount", "定容体积必须大于零", None),
    ("aliquot larger than the final volume", {"aliquot": "10", "final_volume": "5"},
     "aliquot_exceeds_final_volume", "移取量（10 mL）大于定容体积（5 mL）", "aliquot"),
    ("unknown barcode", {"parent_barcode": "RM26-99999"}, "item_not_found", "RM26-99999", "parent_barcode"),
    ("not a barcode", {"parent_barcode": "hello"}, "item_not_found", "HELLO", "parent_barcode"),
    ("no glassware", {"device_name": ["", "", "", ""], "device_tolerance": ["", "", "", ""]},
     "glassware_required", "量器", "devices"),
    ("a number that is none", {"aliquot": "1O"}, "bad_number", "1O", None),
]


@pytest.mark.parametrize(("case", "changes", "code", "phrase", "field"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_input_is_refused_in_the_form_and_nothing_is_saved(client, db, opened_unit, analyst, case, changes,
                                                               code, phrase, field):
    before = counts(db)
    data = form(analyst, opened_unit.barcode, db, **changes)
    response = client.post("/reference-materials/solutions/new", data=data)
    assert response.status_code in (404, 409, 422), response.status_code
    assert f'data-code="{code}"' in response.text, text_of(response)[:600]
    assert phrase in text_of(response)
    assert 'value="氨氮标准贮备液"' in response.text  # the input is kept
    if field:
        assert re.search(rf'name="{field}[^"]*"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*name="{field}',
                         response.text) or (field == "devices" and 'aria-invalid="true"' in response.text)
    assert counts(db) == before


def test_mass_fraction_parent_without_density_is_refused(client, db, mass_fraction_unit, analyst):
    before = counts(db)
    data = form(analyst, mass_fraction_unit.barcode, db, output_unit="μg/L", name="砷标准溶液")
    response = client.post("/reference-materials/solutions/new", data=data)
    assert response.status_code == 422 and 'data-code="density_required"' in response.text
    assert "μg/kg" in text_of(response) and "密度" in text_of(response)
    assert counts(db) == before
    done = client.post("/reference-materials/solutions/new", data={**data, "density": "1.0000"})
    assert done.status_code == 303
    with db.reading() as session:
        component = session.scalars(select(SolutionComponent)).one()
        assert component.concentration == D("0.801")


def test_expired_and_unopened_parents_are_refused_with_the_reason(client, db, expired_unit, sealed_unit, analyst):
    before = counts(db)
    expired = client.post("/reference-materials/solutions/new", data=form(analyst, expired_unit.barcode, db))
    assert expired.status_code == 409
    assert 'data-code="material_expired"' in expired.text and 'data-reason="expired"' in expired.text
    assert f"{expired_unit.barcode} 在" in text_of(expired) and "已过有效期" in text_of(expired)
    sealed = client.post("/reference-materials/solutions/new", data=form(analyst, sealed_unit.barcode, db))
    assert sealed.status_code == 409
    assert 'data-code="material_not_opened"' in sealed.text and 'data-reason="not_opened"' in sealed.text
    assert "尚未开封" in text_of(sealed)
    assert counts(db) == before
    # the parent's block already says so when it is looked up
    fragment = client.get(f"/reference-materials/solutions/parent?barcode={expired_unit.barcode}",
                          headers={"HX-Request": "true"})
    assert 'data-reason="expired"' in fragment.text


def test_only_users_who_use_materials_prepare(client, db, users, opened_unit):
    login(client, "custodian")  # manages stock, does not prepare
    assert client.get("/reference-materials/solutions/new").status_code == 403
    assert client.get("/reference-materials/solutions").status_code == 200


# ---------------------------------------------------------------- the list


def test_the_list_shows_concentrations_state_and_usability(client, db, technical, opened_unit, analyst):
    stock = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=10))
    working = prepare(db, technical, stock.barcode, name="氨氮标准使用液", prepared_at=ago(days=9),
                      shelf_life_days=5)  # expired 4 days ago
    listing = client.get("/reference-materials/solutions")
    assert listing.status_code == 200
    rows = dict(re.findall(r'<tr data-barcode="([^"]+)">(.*?)</tr>', listing.text, re.S))
    assert set(rows) == {stock.barcode, working.barcode}
    value, u = expanded_for_display(*expected_stock())
    assert f"NH3-N {value} ± {u} mg/L" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", rows[stock.barcode]))
    assert 'data-usable="yes"' in rows[stock.barcode]
    assert 'data-reason="expired"' in rows[working.barcode]
    expired = client.get("/reference-materials/solutions?state=expired", headers={"HX-Request": "true"})
    assert expired.text.lstrip().startswith('<div id="results"')
    assert working.barcode in expired.text and stock.barcode not in expired.text
    in_use = client.get("/reference-materials/solutions?state=in_use")
    assert stock.barcode in in_use.text and working.barcode not in in_use.text
    found = client.get("/reference-materials/solutions?q=使用液")
    assert working.barcode in found.text and stock.barcode not in found.text


def test_the_lists_usable_now_agrees_with_the_gate(db, technical, users, store):
    material = make_material(db, technical, opened_shelf_life_days=None)
    lot = make_lot(db, technical, store, material)
    other_lot = make_lot(db, technical, store, material, lot_no="B2310")
    unit = open_unit(db, technical, receive(db, technical, lot, quantity="100")[0], ago(days=20))
    other = open_unit(db, technical, receive(db, technical, other_lot, quantity="100")[0], ago(days=20))
    fresh = prepare(db, technical, unit.barcode, prepared_at=ago(days=10))
    expired = prepare(db, technical, unit.barcode, prepared_at=ago(days=10), shelf_life_days=2)
    used_up = prepare(db, technical, unit.barcode, prepared_at=ago(days=10))
    discarded = prepare(db, technical, unit.barcode, prepared_at=ago(days=10))
    withdrawn = prepare(db, technical, other.barcode, prepared_at=ago(days=10))
    with db.transaction() as session:
        service.mark_used_up(session, technical, session.get(StandardSolution, used_up.id), ago(days=1))
        service.dispose_item(session, technical, session.get(StandardSolution, discarded.id), reason="污染",
                             at=ago(days=1))
        service.change_lot_status(session, users["quality_manager"], service.get_lot(session, other_lot.id),
                                  "withdrawn", reason="证书撤销", effective_at=ago(days=2))
    with db.reading() as session:
        rows = list(session.scalars(select(StandardSolution).order_by(StandardSolution.id)))
        now = ago(seconds=1)
        batch = usable_now(session, rows, now)
        for row in rows:
            gate = check_material(session, row, now)
            assert (batch[row.id].usable, batch[row.id].reason) == (gate.usable, gate.reason), row.barcode
        assert [batch[s.id].reason for s in (fresh, expired, used_up, discarded, withdrawn)] == [
            None, "expired", "used_up", "disposed", "withdrawn"]


# ---------------------------------------------------------------- acts on a solution


def test_record_use_mark_used_up_and_discard(client, db, technical, opened_unit, analyst):
    solution = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=2))
    base = f"/reference-materials/solutions/{solution.barcode}"
    page = client.get(base)
    for action in ("use", "used-up", "discard"):
        assert f'action="{base}/{action}"' in page.text
    used = client.post(f"{base}/use", data={"csrf_token": analyst, "quantity": "20", "quantity_unit": "mL",
                                            "purpose": "校准曲线 NH3-N", "used_at": local(ago(hours=1), db)})
    assert used.status_code == 303
    with db.reading() as session:
        row = session.get(StandardSolution, solution.id)
        assert row.remaining == D("80")
    assert "校准曲线 NH3-N" in client.get(base).text
    # discarding needs a reason: refused, nothing changes
    refused = client.post(f"{base}/discard", data={"csrf_token": analyst, "reason": " "})
    assert refused.status_code == 422
    with db.reading() as session:
        assert session.get(StandardSolution, solution.id).state == "in_use"
    assert client.post(f"{base}/used-up", data={"csrf_token": analyst}).status_code == 303
    with db.reading() as session:
        assert session.get(StandardSolution, solution.id).state == "used_up"
    discarded = client.post(f"{base}/discard", data={"csrf_token": analyst, "reason": "已用完，清洗容量瓶"})
    assert discarded.status_code == 303
    with db.reading() as session:
        row = session.get(StandardSolution, solution.id)
        assert row.state == "discarded" and row.disposal_reason == "已用完，清洗容量瓶"
    page = client.get(base)
    assert f'action="{base}/use"' not in page.text and f'action="{base}/discard"' not in page.text
    assert "已用完，清洗容量瓶" in page.text


def test_unknown_solution_pages_are_not_found(client, db, users, analyst):
    for url in ("/reference-materials/solutions/SS26-99999", "/reference-materials/solutions/RM26-00001",
                "/reference-materials/solutions/SS26-99999/label.pdf",
                "/reference-materials/solutions/SS26-99999/traceability.pdf",
                "/reference-materials/lots/999999/forward", "/reference-materials/lots/999999/forward.csv"):
        assert client.get(url).status_code == 404, url


# ---------------------------------------------------------------- the label


def test_the_label_scans_back_to_the_barcode(client, db, technical, opened_unit, analyst, tmp_path: Path):
    solution = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=2))
    for fmt in ("thermal", "a4"):
        response = client.get(f"/reference-materials/solutions/{solution.barcode}/label.pdf?format={fmt}")
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        pdf = tmp_path / f"{fmt}.pdf"
        pdf.write_bytes(response.content)
        subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / fmt)],
                       check=True)
        image = Image.open(next(tmp_path.glob(f"{fmt}-*.png"))).convert("L")
        found = {(r.format, r.text) for r in zxingcpp.read_barcodes(image)}
        assert (zxingcpp.BarcodeFormat.Code128, solution.barcode) in found, (fmt, found)
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                              text=True).stdout
        value, u = expanded_for_display(*expected_stock())
        assert f"c = {value} ± {u} mg/L (k=2)" in text, text
        assert "配制" in text and "有效期至" in text and "氨氮标准贮备液" in text
    assert client.get(f"/reference-materials/solutions/{solution.barcode}/label.pdf?format=roll").status_code == 422


# ---------------------------------------------------------------- query counts


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up (role cache, templates)
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def test_the_list_costs_the_same_for_2_and_10_solutions(client, db, technical, opened_unit, analyst, count_queries):
    stock = prepare(db, technical, opened_unit.barcode, aliquot="1", prepared_at=ago(days=10))
    prepare(db, technical, stock.barcode, aliquot="1", prepared_at=ago(days=9))
    urls = ("/reference-materials/solutions", "/reference-materials/solutions?state=in_use&q=SS")
    few = {url: statements(client, count_queries, url) for url in urls}
    for n in range(8):
        prepare(db, technical, stock.barcode if n % 2 else opened_unit.barcode, aliquot="1",
                prepared_at=ago(days=8 - n * 0.5))
    listing = client.get("/reference-materials/solutions").text
    assert listing.count('<tr data-barcode="SS') == 10
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert max(many.values()) <= 8


def test_the_solution_page_costs_the_same_for_1_and_3_steps(client, db, technical, opened_unit, analyst,
                                                           count_queries):
    first = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=10))
    second = prepare(db, technical, first.barcode, prepared_at=ago(days=9))
    third = prepare(db, technical, second.barcode, prepared_at=ago(days=8), aliquot="5", final_volume="50")
    with db.transaction() as session:  # a few uses on each
        for solution in (first, third):
            for n in range(3):
                service.record_use(session, technical, session.get(StandardSolution, solution.id),
                                   ago(days=7 - n), quantity=D("1"), quantity_unit="mL", purpose=f"use {n}")
    one = statements(client, count_queries, f"/reference-materials/solutions/{first.barcode}")
    three = statements(client, count_queries, f"/reference-materials/solutions/{third.barcode}")
    assert one == three
    assert three <= 15
    page = client.get(f"/reference-materials/solutions/{third.barcode}").text
    assert re.findall(r'data-step="(\d)"', page) == ["1", "2", "3"]


# ---------------------------------------------------------------- forward traceability


def test_forward_page_and_csv_list_both_generations(client, db, technical, users, opened_unit, analyst):
    stock = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=10))
    working = prepare(db, technical, stock.barcode, prepared_at=ago(days=5), name="=HYPERLINK(\"x\")")
    with db.transaction() as session:
        service.record_use(session, technical, session.get(StandardSolution, working.id), ago(days=4),
                           quantity=D("5"), quantity_unit="mL", purpose="+校准曲线")
    lot_id = opened_unit.lot_id
    page = client.get(f"/reference-materials/lots/{lot_id}/forward")
    assert page.status_code == 200
    records = re.findall(r'<tr data-source="(\w+)" data-record="([^"]+)"', page.text)
    assert records[:2] == [("solution", stock.barcode), ("solution", working.barcode)]
    assert records[2][0] == "use" and len(records) == 3
    assert f'href="/reference-materials/lots/{lot_id}/forward.csv"' in page.text
    assert 'data-lot-status' not in page.text

    export = client.get(f"/reference-materials/lots/{lot_id}/forward.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0] == ["certificate_no", "lot_no", "source", "record_id", "used_at_local", "barcode", "description"]
    assert [(r[2], r[3]) for r in rows[1:3]] == [("solution", stock.barcode), ("solution", working.barcode)]
    assert rows[1][0] == "GBW(E)081601" and rows[1][1] == "B2309" and rows[1][5] == opened_unit.barcode
    assert rows[2][6] == "'=HYPERLINK(\"x\")" and rows[3][6] == "'+校准曲线"  # no formula runs

    # the lot's certificate is withdrawn: the page says so prominently
    with db.transaction() as session:
        service.change_lot_status(session, users["quality_manager"], service.get_lot(session, lot_id), "withdrawn",
                                  reason="生产方撤销证书：定值有误", effective_at=ago(days=6))
    page = client.get(f"/reference-materials/lots/{lot_id}/forward")
    assert 'data-lot-status="withdrawn"' in page.text
    assert "生产方撤销证书：定值有误" in page.text
    # uses after the effective time are marked; the stock solution was prepared before it
    assert len(re.findall(r'<tr data-source="\w+" data-record="[^"]+" class="affected"', page.text)) == 2
    solution_page = client.get(f"/reference-materials/solutions/{working.barcode}")
    assert 'data-lot-status="withdrawn"' in solution_page.text


def test_forward_page_pages_with_a_fixed_number_of_queries(client, db, technical, opened_unit, analyst,
                                                           count_queries, monkeypatch):
    from app.reference_materials import solution_routes

    monkeypatch.setattr(solution_routes, "FORWARD_PAGE_SIZE", 3)
    stock = prepare(db, technical, opened_unit.barcode, aliquot="1", prepared_at=ago(days=10))
    url = f"/reference-materials/lots/{opened_unit.lot_id}/forward"
    few = statements(client, count_queries, url)
    for n in range(6):
        prepare(db, technical, stock.barcode, aliquot="1", prepared_at=ago(days=9 - n))
    assert statements(client, count_queries, url) == few
    second = client.get(url + "?page=2").text
    assert len(re.findall(r'<tr data-source="solution"', second)) == 3
    assert "2 / 3" in second
