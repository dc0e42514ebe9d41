"""The reference-material pages as a custodian, an analyst, a quality manager and an inspector
use them: the lists, registering a material and a lot with its certificate, receiving units,
opening, using, using up and disposing of a unit, quarantining a lot, reagents, labels and the
scan box. Every refusal is shown in its page with what was typed, and saves nothing."""

from __future__ import annotations

import re
import subprocess
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.reference_materials import service
from app.reference_materials.models import (
    CertifiedValue,
    LotStatusChange,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReferenceMaterial,
    StockUnit,
)
from tests.conftest import login, refusals_so_far
from tests.reference_materials.conftest import PDF, ago, make_lot, make_material, open_unit, prepare, receive


def login_en(client, username: str) -> str:
    token = login(client, username)
    client.cookies.set("lims_lang", "en")
    return token


def count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def audit_count(db) -> int:
    return count(db, AuditEvent)


def local(db, moment: datetime) -> str:
    """A datetime-local field's value: the lab's wall-clock time."""
    return moment.astimezone(db.calendar.tz).strftime("%Y-%m-%dT%H:%M")


def fetch(db, stmt) -> list:
    """Rows read and detached, so their attributes outlive the reading session."""
    with db.reading() as session:
        rows = list(session.scalars(stmt))
        for row in rows:
            session.expunge(row)
        return rows


def unit_row(db, barcode: str) -> StockUnit:
    [row] = fetch(db, select(StockUnit).where(StockUnit.barcode == barcode))
    return row


def lot_form(**changes) -> dict:
    """A lot of two certified values and a reference value, then three blank rows."""
    form = {
        "lot_no": "B2309", "expires_on": (date.today() + timedelta(days=500)).isoformat(),
        "analyte": ["NH3-N", "TN", "pH", "", "", ""], "value": ["1000", "500.0", "2.0", "", "", ""],
        "unit": ["mg/L", "mg/L", "mg/L", "", "", ""], "u": ["7", "5.0", "", "", "", ""],
        "k": ["2", "2", "2", "2", "2", "2"], "certified": ["0", "1", "3", "4", "5"],
    }
    form.update(changes)
    return form


def post_lot(client, token: str, material_id: int, form: dict, certificate=("certificate.pdf", PDF, "application/pdf")):
    files = {"certificate": certificate} if certificate else {"certificate": ("", b"", "application/octet-stream")}
    return client.post(f"/reference-materials/m/{material_id}/lots/new", data={**form, "csrf_token": token},
                       files=files)


def main_of(html: str) -> str:
    """The page's own content, without the header's language and sign-out forms."""
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def error_code(response) -> str:
    match = re.search(r'data-code="([a-z_]+)"', response.text)
    return match.group(1) if match else ""


@pytest.fixture
def stocked(db, technical, store, users):
    """A material (minimum stock 3) with a lot, an opened unit and a sealed one, and a reagent."""
    material = make_material(db, technical, min_stock_units=3)
    lot = make_lot(db, technical, store, material)
    units = receive(db, technical, lot, count=2)
    opened = open_unit(db, technical, units[0])
    with db.transaction() as session:
        reagent = service.register_reagent(session, technical, service.ReagentFacts(
            name="重铬酸钾", grade="基准试剂", supplier="国药集团", lot_no="20240301",
            expires_on=date.today() + timedelta(days=700), received_at=ago(days=5),
            quantity=service.to_decimal("500", "q"), quantity_unit="g"))
    return {"material": material, "lot": lot, "opened": opened, "sealed": units[1], "reagent": reagent}


# ---------------------------------------------------------------- every page renders


def test_every_page_renders_for_a_reader_without_any_action(client, db, stocked):
    material, lot = stocked["material"], stocked["lot"]
    login(client, "inspector")
    pages = [
        "/reference-materials", "/reference-materials?q=gbw", "/reference-materials?stock=low",
        "/reference-materials/units", "/reference-materials/units?state=in_use",
        "/reference-materials/units?due=expiring", "/reference-materials/units?due=expired",
        "/reference-materials/reagents", "/reference-materials/reagents?due=expiring&q=重铬",
        f"/reference-materials/m/{material.id}", f"/reference-materials/lots/{lot.id}",
        *(f"/reference-materials/items/{stocked[key].barcode}" for key in ("opened", "sealed", "reagent")),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        assert 'method="post"' not in main_of(response.text), url  # no act offered to a reader
    assert 'href="/reference-materials"' in client.get("/dashboard").text  # the nav entry
    listing = client.get("/reference-materials").text
    assert "GBW(E)081601" in listing and 'data-grade="gbw_e"' in listing
    assert 'data-usable-units="2"' in listing and "badge warn" in listing  # 2 usable of 3: low stock
    assert 'href="/reference-materials/new"' not in listing
    assert "GBW(E)081601" not in client.get("/reference-materials?q=nothing-like-it").text
    units = client.get("/reference-materials/units?state=in_use").text
    assert stocked["opened"].barcode in units and stocked["sealed"].barcode not in units
    assert client.get("/reference-materials/units?due=expired").text.count("/reference-materials/items/RM") == 0
    certificate = client.get(f"/reference-materials/lots/{lot.id}/certificate")
    assert certificate.status_code == 200 and certificate.content == PDF
    assert certificate.headers["content-type"] == "application/pdf"
    assert certificate.headers["content-disposition"].startswith("inline")


def test_list_results_answer_htmx_with_the_fragment(client, db, stocked):
    login(client, "analyst")
    for url in ("/reference-materials?q=081601", "/reference-materials/units?q=RM", "/reference-materials/reagents"):
        whole = client.get(url)
        fragment = client.get(url, headers={"HX-Request": "true"})
        assert fragment.status_code == 200
        assert fragment.text.lstrip().startswith('<div id="results">'), url
        assert "<html" not in fragment.text and len(fragment.text) < len(whole.text)


def test_the_lists_are_paginated(client, db, technical, store, app):
    app.state.settings.page_size = 2
    for n in range(3):
        make_material(db, technical, f"GBW0860{n}", name_zh=f"标准物质{n}")
    login(client, "analyst")
    first, second = client.get("/reference-materials").text, client.get("/reference-materials?page=2").text
    assert first.count('<a href="/reference-materials/m/') == 4 and "page=2" in first
    assert second.count('<a href="/reference-materials/m/') == 2


def test_the_material_page_shows_lots_with_certified_and_reference_values_apart(client, db, stocked):
    login_en(client, "analyst")
    page = client.get(f"/reference-materials/m/{stocked['material'].id}").text
    certified = page.split('class="certified-values"')[1].split("</table>")[0]
    reference = page.split('class="reference-values"')[1].split("</table>")[0]
    assert "NH3-N" in certified and "1000</strong> ± 7" in certified and "pH" not in certified
    assert "pH" in reference and "2.0" in reference and "reference value" in reference
    assert f'href="/reference-materials/lots/{stocked["lot"].id}/certificate"' in page
    assert 'data-status="active"' in page and "B2309" in page


# ---------------------------------------------------------------- register a material


def material_form(**changes) -> dict:
    form = {"certificate_no": "GBW08608", "name_zh": "水中铅成分分析标准物质", "name_en": "Lead in water",
            "producer": "中国计量科学研究院", "matrix": "水", "storage_conditions": "常温避光",
            "hazard_notes": "含硝酸", "opened_shelf_life_days": "180", "min_stock_units": "2"}
    form.update(changes)
    return form


def test_a_custodian_registers_a_material_and_edits_it_with_a_reason(client, db, users):
    token = login_en(client, "custodian")
    assert client.get("/reference-materials/new").status_code == 200
    response = client.post("/reference-materials/new", data={**material_form(), "csrf_token": token})
    assert response.status_code == 303
    [material] = fetch(db, select(ReferenceMaterial))
    assert (material.grade, material.opened_shelf_life_days, material.min_stock_units) == ("gbw", 180, 2)
    assert response.headers["location"] == f"/reference-materials/m/{material.id}"
    page = client.get(response.headers["location"]).text
    assert "水中铅成分分析标准物质" in page and 'data-grade="gbw"' in page

    assert client.get(f"/reference-materials/m/{material.id}/edit").status_code == 200
    edit = {**material_form(producer="NIM 中国计量院"), "csrf_token": token}
    refused = client.post(f"/reference-materials/m/{material.id}/edit", data={**edit, "reason": " "})
    assert refused.status_code == 422 and error_code(refused) == "reason_required"
    assert 'value="NIM 中国计量院"' in refused.text
    done = client.post(f"/reference-materials/m/{material.id}/edit", data={**edit, "reason": "证书更新"})
    assert done.status_code == 303
    [material] = fetch(db, select(ReferenceMaterial))
    assert material.producer == "NIM 中国计量院"
    with db.reading() as session:
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc())).first() == "material.updated"


def test_refused_material_forms_keep_what_was_typed_and_save_nothing(client, db, technical):
    make_material(db, technical, "GBW08608")
    token = login_en(client, "custodian")
    before = audit_count(db)
    duplicate = client.post("/reference-materials/new", data={**material_form(name_zh="重复的"), "csrf_token": token})
    assert duplicate.status_code == 409 and error_code(duplicate) == "duplicate_material"
    assert "GBW08608" in duplicate.text and 'value="重复的"' in duplicate.text
    assert 'name="certificate_no" required maxlength="40" value="GBW08608" aria-invalid="true"' in duplicate.text
    bad_days = client.post("/reference-materials/new", data={
        **material_form(certificate_no="GBW08609", opened_shelf_life_days="half a year"), "csrf_token": token})
    assert bad_days.status_code == 422 and error_code(bad_days) == "not_a_whole_number"
    assert "half a year" in bad_days.text
    assert count(db, ReferenceMaterial) == 1 and audit_count(db) == before


# ---------------------------------------------------------------- register a lot with its certificate


def test_a_lot_with_its_certificate_and_values(client, db, technical, store):
    material = make_material(db, technical)
    token = login_en(client, "custodian")
    form = client.get(f"/reference-materials/m/{material.id}/lots/new").text
    assert form.count('name="analyte"') == 6 and 'enctype="multipart/form-data"' in form
    response = post_lot(client, token, material.id, lot_form())
    assert response.status_code == 303, response.text[:500]
    [lot] = fetch(db, select(MaterialLot))
    values = {v.analyte: v for v in fetch(db, select(CertifiedValue))}
    assert response.headers["location"] == f"/reference-materials/lots/{lot.id}"
    assert set(values) == {"NH3-N", "TN", "pH"}  # the blank rows are ignored
    assert values["TN"].value == service.to_decimal("500.0", "v") and str(values["TN"].value) == "500.0"
    assert values["pH"].certified is False and values["pH"].expanded_uncertainty is None
    assert values["NH3-N"].certified and values["NH3-N"].coverage_factor == 2
    page = client.get(response.headers["location"]).text
    assert "500.0</strong> ± 5.0" in page and 'class="reference-values"' in page
    assert f'href="/reference-materials/lots/{lot.id}/forward"' in page
    certificate = client.get(f"/reference-materials/lots/{lot.id}/certificate")
    assert certificate.content == PDF and lot.certificate_sha256 in page


@pytest.mark.parametrize(("changes", "certificate", "code", "status"), [
    ({}, ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"), "unsupported_file_type", 422),
    ({}, ("certificate.pdf", b"this is no pdf", "application/pdf"), "unsupported_file_type", 422),
    ({}, None, "certificate_required", 422),
    ({"u": ["", "5.0", "", "", "", ""]}, ("c.pdf", PDF, "application/pdf"), "uncertainty_required", 422),
    ({"value": ["1000", "five hundred", "2.0", "", "", ""]}, ("c.pdf", PDF, "application/pdf"), "bad_number", 422),
    ({"unit": ["mg/L", "furlongs", "mg/L", "", "", ""]}, ("c.pdf", PDF, "application/pdf"), "unknown_unit", 422),
    ({"certified": []}, ("c.pdf", PDF, "application/pdf"), "no_certified_value", 422),
    ({"analyte": [""] * 6, "value": [""] * 6, "unit": [""] * 6, "u": [""] * 6}, ("c.pdf", PDF, "application/pdf"),
     "no_value_rows", 422),
    ({"expires_on": "31.05.2027"}, ("c.pdf", PDF, "application/pdf"), "malformed_date", 422),
])
def test_refused_lots_are_shown_with_their_reason_and_save_nothing(client, db, technical, changes, certificate, code,
                                                                   status):
    material = make_material(db, technical)
    token = login_en(client, "custodian")
    before = audit_count(db)
    response = post_lot(client, token, material.id, lot_form(**changes), certificate)
    assert response.status_code == status, response.text[:500]
    assert error_code(response) == code
    assert 'value="B2309"' in response.text  # what was typed comes back
    assert count(db, MaterialLot) == 0 and count(db, CertifiedValue) == 0 and audit_count(db) == before


def test_a_duplicate_lot_is_refused(client, db, technical, store):
    material = make_material(db, technical)
    make_lot(db, technical, store, material, lot_no="B2309")
    token = login_en(client, "custodian")
    response = post_lot(client, token, material.id, lot_form())
    assert response.status_code == 409 and error_code(response) == "duplicate_lot"
    assert "Lot B2309 of GBW(E)081601 is already registered." in response.text
    assert 'value="NH3-N"' in response.text and 'value="500.0"' in response.text
    assert count(db, MaterialLot) == 1


# ---------------------------------------------------------------- receive, open, use, used up, dispose


def test_receiving_units_on_the_lot_page(client, db, technical, store):
    lot = make_lot(db, technical, store, make_material(db, technical))
    token = login_en(client, "custodian")
    received_at = utcnow() - timedelta(days=2)
    form = {"count": "2", "quantity": "20", "quantity_unit": "mL", "received_at": local(db, received_at),
            "csrf_token": token}
    response = client.post(f"/reference-materials/lots/{lot.id}/receive", data=form)
    assert response.status_code == 303 and response.headers["location"] == f"/reference-materials/lots/{lot.id}"
    units = fetch(db, select(StockUnit).order_by(StockUnit.barcode))
    assert len(units) == 2 and all(u.state == "received" for u in units)
    # the lab's wall-clock minute, stored in UTC
    assert units[0].received_at == received_at.replace(second=0, microsecond=0)
    page = client.get(f"/reference-materials/lots/{lot.id}").text
    assert all(f'href="/reference-materials/items/{u.barcode}"' in page for u in units)

    before = audit_count(db)
    refused = client.post(f"/reference-materials/lots/{lot.id}/receive", data={**form, "count": "two"})
    assert refused.status_code == 422 and error_code(refused) == "not_a_whole_number"
    assert '<details class="action-panel" id="receive" open>' in refused.text and 'value="two"' in refused.text
    future = client.post(f"/reference-materials/lots/{lot.id}/receive",
                         data={**form, "received_at": local(db, utcnow() + timedelta(days=3))})
    assert future.status_code == 422 and error_code(future) == "date_in_future"
    assert count(db, StockUnit) == 2 and audit_count(db) == before


def test_an_analyst_opens_a_unit_uses_it_and_marks_it_used_up(client, db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=30)
    unit = receive(db, technical, make_lot(db, technical, store, material), received_at=ago(days=10))[0]
    token = login_en(client, "analyst")
    url = f"/reference-materials/items/{unit.barcode}"
    page = client.get(url).text
    assert 'data-usable="no"' in page and "had not been opened" in page  # the gate's reason
    assert f'action="/reference-materials/items/{unit.barcode}/open"' in page

    opened_at = utcnow() - timedelta(days=1)
    response = client.post(f"{url}/open", data={"opened_at": local(db, opened_at), "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == url
    row = unit_row(db, unit.barcode)
    assert row.state == "in_use" and row.opened_at == opened_at.replace(second=0, microsecond=0)
    assert row.expires_at == row.opened_at + timedelta(days=30)
    page = client.get(url).text
    assert 'data-usable="yes"' in page

    used = client.post(f"{url}/use", data={"used_at": local(db, utcnow()), "quantity": "1.5", "quantity_unit": "mL",
                                           "purpose": "NH3-N 校准曲线", "csrf_token": token})
    assert used.status_code == 303
    assert unit_row(db, unit.barcode).remaining == service.to_decimal("18.5", "r")
    page = client.get(url).text
    assert "NH3-N 校准曲线" in page and "1.5 mL" in page and "18.5" in page

    # too much, and a unit that does not convert: refused, nothing saved
    before = audit_count(db)
    for quantity, unit_text, code in (("25", "mL", "insufficient_quantity"), ("1", "g", "quantity_unit_mismatch"),
                                      ("-1", "mL", "non_positive_amount")):
        refused = client.post(f"{url}/use", data={"used_at": "", "quantity": quantity, "quantity_unit": unit_text,
                                                  "purpose": "再用一次", "csrf_token": token})
        assert refused.status_code in (409, 422) and error_code(refused) == code, refused.text[:300]
        assert 'value="再用一次"' in refused.text and '<details class="action-panel" id="use" open>' in refused.text
    assert count(db, MaterialUse) == 1 and audit_count(db) == before

    done = client.post(f"{url}/used-up", data={"at": "", "csrf_token": token})
    assert done.status_code == 303 and unit_row(db, unit.barcode).state == "used_up"
    again = client.post(f"{url}/use", data={"used_at": "", "csrf_token": token})
    assert again.status_code == 409 and error_code(again) == "material_used_up"


def test_using_an_expired_unit_is_refused_with_its_reason(client, db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=None)
    lot = make_lot(db, technical, store, material, expires_on=date.today() - timedelta(days=10))
    unit = receive(db, technical, lot, received_at=ago(days=60))[0]
    open_unit(db, technical, unit, ago(days=30))
    token = login(client, "analyst")  # Chinese, the lab's default
    url = f"/reference-materials/items/{unit.barcode}"
    assert 'data-reason="expired"' in client.get(url).text
    before = audit_count(db)
    refused = client.post(f"{url}/use", data={"used_at": "", "quantity": "1", "quantity_unit": "mL",
                                              "purpose": "质控", "csrf_token": token})
    assert refused.status_code == 409 and error_code(refused) == "material_expired"
    assert f"{unit.barcode} 在" in refused.text and "已过有效期" in refused.text
    assert count(db, MaterialUse) == 0 and audit_count(db) == before
    # a use dated while it was valid passes (the gate is checked at the time of use)
    earlier = client.post(f"{url}/use", data={"used_at": local(db, ago(days=20)), "csrf_token": token})
    assert earlier.status_code == 303 and count(db, MaterialUse) == 1


def test_disposing_of_a_unit_needs_a_reason_and_the_custodian(client, db, technical, store):
    unit = receive(db, technical, make_lot(db, technical, store, make_material(db, technical)))[0]
    url = f"/reference-materials/items/{unit.barcode}"
    token = login_en(client, "analyst")
    assert f'action="{url}/dispose"' not in client.get(url).text
    assert client.post(f"{url}/dispose", data={"reason": "瓶子破损", "csrf_token": token}).status_code == 403
    client.cookies.clear()
    token = login_en(client, "custodian")
    refused = client.post(f"{url}/dispose", data={"reason": "", "at": "", "csrf_token": token})
    assert refused.status_code == 422 and error_code(refused) == "reason_required"
    assert unit_row(db, unit.barcode).state == "received"
    done = client.post(f"{url}/dispose", data={"reason": "瓶子破损", "at": "", "csrf_token": token})
    assert done.status_code == 303
    row = unit_row(db, unit.barcode)
    assert row.state == "disposed" and row.disposal_reason == "瓶子破损"
    page = client.get(url).text
    assert 'data-reason="disposed"' in page and "瓶子破损" in page and 'method="post"' not in main_of(page)


def test_quarantine_and_withdrawal_on_the_lot_page(client, db, technical, store):
    lot = make_lot(db, technical, store, make_material(db, technical))
    unit = open_unit(db, technical, receive(db, technical, lot)[0])
    token = login_en(client, "custodian")
    assert 'id="change-status"' not in client.get(f"/reference-materials/lots/{lot.id}").text
    assert client.post(f"/reference-materials/lots/{lot.id}/status", data={
        "status": "quarantined", "reason": "x", "csrf_token": token}).status_code == 403
    client.cookies.clear()
    token = login_en(client, "quality-manager")
    url = f"/reference-materials/lots/{lot.id}/status"
    refused = client.post(url, data={"status": "quarantined", "reason": "", "effective_at": "", "csrf_token": token})
    assert refused.status_code == 422 and error_code(refused) == "reason_required"
    assert '<details class="action-panel" id="change-status" open>' in refused.text
    effective = utcnow() - timedelta(days=2)
    done = client.post(url, data={"status": "quarantined", "reason": "期间核查结果偏高",
                                  "effective_at": local(db, effective), "csrf_token": token})
    assert done.status_code == 303
    assert fetch(db, select(MaterialLot))[0].status == "quarantined"
    [change] = fetch(db, select(LotStatusChange))
    assert change.effective_at == effective.replace(second=0, microsecond=0)
    page = client.get(f"/reference-materials/lots/{lot.id}").text
    assert 'data-status="quarantined"' in page and "期间核查结果偏高" in page
    item = client.get(f"/reference-materials/items/{unit.barcode}").text
    assert 'data-reason="quarantined"' in item and "期间核查结果偏高" in item
    assert client.post(url, data={"status": "withdrawn", "reason": "生产者撤销证书", "effective_at": "",
                                  "csrf_token": token}).status_code == 303
    final = client.post(url, data={"status": "active", "reason": "再启用", "effective_at": "", "csrf_token": token})
    assert final.status_code == 409 and error_code(final) == "lot_withdrawn"


# ---------------------------------------------------------------- reagents


def test_receiving_a_reagent_and_its_item_page(client, db, users):
    token = login_en(client, "custodian")
    assert client.get("/reference-materials/reagents/new").status_code == 200
    form = {"name": "硫酸银", "grade": "分析纯 AR", "supplier": "国药集团", "lot_no": "20250101",
            "expires_on": (date.today() + timedelta(days=400)).isoformat(), "received_at": "",
            "quantity": "100", "quantity_unit": "g", "opened_shelf_life_days": "180", "storage_conditions": "避光",
            "csrf_token": token}
    refused = client.post("/reference-materials/reagents/new", data={**form, "expires_on": "next year"})
    assert refused.status_code == 422 and error_code(refused) == "malformed_date" and 'value="硫酸银"' in refused.text
    assert count(db, ReagentLot) == 0
    response = client.post("/reference-materials/reagents/new", data=form)
    assert response.status_code == 303
    [reagent] = fetch(db, select(ReagentLot))
    assert response.headers["location"] == f"/reference-materials/items/{reagent.barcode}"
    assert reagent.barcode.startswith("RG") and reagent.state == "in_stock"
    listing = client.get("/reference-materials/reagents").text
    assert reagent.barcode in listing and "硫酸银" in listing and "20250101" in listing
    client.cookies.clear()
    token = login_en(client, "analyst")
    url = f"/reference-materials/items/{reagent.barcode}"
    assert client.post(f"{url}/open", data={"opened_at": "", "csrf_token": token}).status_code == 303
    assert client.post(f"{url}/use", data={"used_at": "", "quantity": "2.5", "quantity_unit": "g",
                                           "csrf_token": token}).status_code == 303
    page = client.get(url).text
    assert 'data-usable="yes"' in page and "97.5" in page


# ---------------------------------------------------------------- barcodes: unknown, scan, solution


@pytest.mark.parametrize("barcode", ["RM26-99999", "RG26-99999", "SS26-99999", "rm26", "NOT-A-CODE", "RM26-1"])
def test_an_unknown_or_malformed_barcode_is_a_404_page(client, users, barcode):
    login_en(client, "analyst")
    for url in (f"/reference-materials/items/{barcode}", f"/reference-materials/items/{barcode}/label.pdf"):
        response = client.get(url)
        assert response.status_code == 404 and error_code(response) == "item_not_found", url


def test_scanning_a_label_opens_the_item_page(client, db, stocked, technical):
    solution = prepare(db, technical, stocked["opened"].barcode, shelf_life_days=10)
    login(client, "sampler")
    for item in (stocked["opened"], stocked["reagent"]):
        for code in (item.barcode, f" {item.barcode.lower()} "):
            response = client.get("/scan", params={"code": code})
            assert response.status_code == 303 and response.headers["location"] == \
                f"/reference-materials/items/{item.barcode}"
    scanned = client.get("/scan", params={"code": solution.barcode})
    assert scanned.headers["location"] == f"/reference-materials/solutions/{solution.barcode}"
    assert client.get("/scan", params={"code": "RM26-99999"}).status_code == 404
    # a solution's barcode on the item page goes to the solution page
    redirected = client.get(f"/reference-materials/items/{solution.barcode}")
    assert redirected.status_code == 303
    assert redirected.headers["location"] == f"/reference-materials/solutions/{solution.barcode}"


# ---------------------------------------------------------------- who may act


def test_the_inspector_cannot_post_anything(client, db, stocked):
    token = login(client, "inspector")
    lot, unit = stocked["lot"], stocked["opened"]
    before, mark = audit_count(db), refusals_so_far(db)
    posts = {
        "/reference-materials/new": material_form(),
        f"/reference-materials/m/{stocked['material'].id}/edit": {**material_form(), "reason": "x"},
        f"/reference-materials/lots/{lot.id}/receive": {"count": "1", "quantity": "20", "quantity_unit": "mL"},
        f"/reference-materials/lots/{lot.id}/status": {"status": "quarantined", "reason": "x"},
        "/reference-materials/reagents/new": {"name": "x"},
        f"/reference-materials/items/{unit.barcode}/open": {},
        f"/reference-materials/items/{unit.barcode}/use": {"quantity": "1", "quantity_unit": "mL"},
        f"/reference-materials/items/{unit.barcode}/used-up": {},
        f"/reference-materials/items/{unit.barcode}/dispose": {"reason": "x"},
    }
    for url, form in posts.items():
        response = client.post(url, data={**form, "csrf_token": token})
        assert response.status_code == 403 and error_code(response) == "inspector_read_only", url
    lot_post = post_lot(client, token, stocked["material"].id, lot_form(lot_no="B9999"))
    assert lot_post.status_code == 403
    for url in ("/reference-materials/new", "/reference-materials/reagents/new",
                f"/reference-materials/m/{stocked['material'].id}/lots/new"):
        assert client.get(url).status_code == 403, url
    kept = refusals_so_far(db) - mark  # each attempt kept in the audit trail as a refusal (issue 10)
    assert kept == len(posts) + 4 and audit_count(db) - before == kept and count(db, MaterialLot) == 1


# ---------------------------------------------------------------- labels


def decoded_codes(data: bytes, tmp_path: Path) -> set[str]:
    import zxingcpp
    from PIL import Image

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    pdf = folder / "label.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(pdf), str(folder / "label")], check=True)
    found = set()
    for path in sorted(folder.glob("label-*.png")):
        found |= {r.text for r in zxingcpp.read_barcodes(Image.open(path).convert("L"))}
    return found


def pdf_text(data: bytes, tmp_path: Path) -> str:
    pdf = tmp_path / "text.pdf"
    pdf.write_bytes(data)
    return subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout


def test_a_unit_label_is_a_pdf_whose_barcode_scans(client, db, stocked, tmp_path):
    login(client, "analyst")
    unit = stocked["opened"]
    response = client.get(f"/reference-materials/items/{unit.barcode}/label.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.content.startswith(b"%PDF-")
    assert decoded_codes(response.content, tmp_path) == {unit.barcode}
    text = pdf_text(response.content, tmp_path)
    assert "GBW(E)081601" in text and "B2309" in text and "NH3-N 1000±7 mg/L" in text
    sheet = client.get(f"/reference-materials/items/{stocked['reagent'].barcode}/label.pdf",
                       params={"format": "a4", "start_at": "5"})
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    assert decoded_codes(sheet.content, tmp_path) == {stocked["reagent"].barcode}
    assert "重铬酸钾" in pdf_text(sheet.content, tmp_path)
    assert client.get(f"/reference-materials/items/{unit.barcode}/label.pdf",
                      params={"format": "a4", "start_at": "25"}).status_code == 422


def test_the_labels_of_a_lot_are_one_sheet_of_its_units_in_stock(client, db, technical, store, tmp_path):
    lot = make_lot(db, technical, store, make_material(db, technical))
    login(client, "custodian")
    empty = client.get(f"/reference-materials/lots/{lot.id}/labels.pdf")
    assert empty.status_code == 409 and error_code(empty) == "no_units_to_label"
    units = receive(db, technical, lot, count=3)
    with db.transaction() as session:
        service.dispose_item(session, technical, session.merge(units[2]), reason="破损", at=utcnow())
    sheet = client.get(f"/reference-materials/lots/{lot.id}/labels.pdf", params={"start_at": "23"})
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "application/pdf"
    assert decoded_codes(sheet.content, tmp_path) == {units[0].barcode, units[1].barcode}
    thermal = client.get(f"/reference-materials/lots/{lot.id}/labels.pdf", params={"format": "thermal"})
    assert decoded_codes(thermal.content, tmp_path) == {units[0].barcode, units[1].barcode}


def test_the_dashboard_cards_lead_to_lists_that_agree_with_their_counts(client, db, users, store):
    """Expiring and expired-in-stock cards count units, solutions and reagents together; their
    page lists the same items."""
    from app.core.permissions import ROLE_PERMISSIONS
    from app.core.registry import worklists_for
    from app.core.roles import Role
    from tests.conftest import login
    from tests.reference_materials.conftest import ago, make_lot, make_material, open_unit, prepare, receive

    technical = users["technical_manager"]
    material = make_material(db, technical, opened_shelf_life_days=40)
    lot = make_lot(db, technical, store, material)
    unit = open_unit(db, technical, receive(db, technical, lot)[0], ago(days=30))  # expires in 10 days
    solution = prepare(db, technical, unit.barcode, prepared_at=ago(days=29),
                       shelf_life_days=20)  # expired 9 days ago
    login(client, "technical-manager")
    cards = {w.key: w for w in worklists_for(ROLE_PERMISSIONS[Role.TECHNICAL_MANAGER])}
    hrefs = {w.href for w in cards.values()}
    assert "/reference-materials/due?list=expiring" in hrefs and "/reference-materials/due?list=expired" in hrefs
    expiring = client.get("/reference-materials/due?list=expiring")
    expired = client.get("/reference-materials/due?list=expired")
    assert expiring.status_code == expired.status_code == 200
    assert unit.barcode in expiring.text and solution.barcode not in expiring.text
    assert solution.barcode in expired.text and unit.barcode not in expired.text
    assert client.get("/reference-materials/due?list=other").status_code == 422
