"""The printed backward traceability of a standard solution: what an assessor reads off the PDF
(pdftotext): the certificate number, lot and certificate SHA-256, both solutions of a two-step
chain with their glassware, preparers and uncertainty budgets; Chinese embedded as text in CJK
fonts (pdffonts); the first page rasterises (pdftoppm)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from app.core.db import Database
from app.people.service import save_lab
from app.reference_materials import printing, service
from app.reference_materials.dilution import expanded_for_display
from app.reference_materials.models import SolutionComponent, StandardSolution
from app.reference_materials.printing import solution_traceability_pdf
from tests.conftest import login, make_user
from tests.reference_materials.conftest import PIPETTE_10, D, ago, prepare, solutions

LAB_ZH = "江城市生态环境监测中心"
CMA_NO = "201912345678"
PIPETTE_5 = solutions.DeviceFacts("aliquot", "5 mL 单标线吸量管", D("0.015"), "mL", "A")
FLASK_50 = solutions.DeviceFacts("final_volume", "50 mL 单标线容量瓶", D("0.05"), "mL", "A")


def run(args: list[str]) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "trace.pdf"
    path.write_bytes(pdf)
    return re.sub(r"\s+", " ", run(["pdftotext", "-enc", "UTF-8", str(path), "-"]))


def printed(db: Database, solution: StandardSolution, language: str = "en") -> bytes:
    with db.transaction() as session:
        return solution_traceability_pdf(session, session.get(StandardSolution, solution.id), language=language)


@pytest.fixture
def chain(db, users, opened_unit) -> tuple[StandardSolution, StandardSolution]:
    """A stock solution (10 mL of the CRM to 100 mL) prepared by 李敏 and a working solution (5 mL
    of it to 50 mL) prepared by 王晓."""
    with db.transaction() as session:
        save_lab(session, None, check_permission=False, name_zh=LAB_ZH,
                 name_en="Jiangcheng Eco-Environmental Monitoring Centre", cma_certificate_no=CMA_NO)
    li = make_user(db, "li-min", "analyst", name_zh="李敏", name_en="Li Min")
    wang = make_user(db, "wang-xiao", "analyst", name_zh="王晓", name_en="Wang Xiao")
    stock = prepare(db, li, opened_unit.barcode, prepared_at=ago(days=10))
    working = prepare(db, wang, stock.barcode, aliquot="5", final_volume="50", prepared_at=ago(days=3),
                      name="氨氮标准使用液", output_unit="μg/mL", devices=(PIPETTE_5, FLASK_50))
    return stock, working


def test_the_record_names_the_certificate_both_steps_and_their_budgets(db, chain, opened_unit, tmp_path):
    stock, working = chain
    pdf = printed(db, working)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    with db.reading() as session:
        lot = service.get_lot(session, opened_unit.lot_id)
        sha256 = lot.certificate_sha256
        view = printing.trace_view(session, session.get(StandardSolution, working.id))
        budgets = [b for step in view.steps for b in step.budgets]
    for expected in ("GBW(E)081601", "B2309", opened_unit.barcode, stock.barcode, working.barcode,
                     "Standard solution traceability record", LAB_ZH, CMA_NO, "Page 1 of",
                     "10 mL 单标线吸量管", "100 mL 单标线容量瓶", "5 mL 单标线吸量管", "50 mL 单标线容量瓶",
                     "Uncertainty budget of NH3-N", "U/k of the certified value",
                     "combined uncertainty of the parent solution"):
        assert expected in text, expected
    # the certificate's SHA-256 (the hash cell may wrap: compare without spaces)
    assert sha256 in text.replace(" ", "")
    # the preparers of both steps
    assert "李敏 (Li Min)" in text and "王晓 (Wang Xiao)" in text
    # every budget row of both steps: component, value, u and u_rel as shown on the page
    assert len(budgets) == 2
    for budget in budgets:
        for row in budget.rows:
            line = f"{row.value} {row.unit} {row.standard_uncertainty} {row.relative_u}"
            assert line in text, line
        combined = f"{budget.result.value} ± {budget.result.expanded} {budget.result.unit}"
        assert combined in text, combined
    # the solution's own concentration ± U (k=2) as the dilution gives it
    with db.reading() as session:
        component = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == working.id)).one()
        value, u = expanded_for_display(component.concentration, component.relative_u)
        assert component.concentration == D("10")
    assert f"{value} ± {u} μg/mL" in text


def test_the_first_page_rasterises_and_chinese_is_embedded(db, chain, tmp_path):
    _, working = chain
    pdf = printed(db, working, language="zh_CN")
    path = tmp_path / "zh.pdf"
    path.write_bytes(pdf)
    fonts = run(["pdffonts", str(path)])
    assert "CJK" in fonts
    text = pdf_text(pdf, tmp_path)
    assert "标准溶液溯源记录" in text or "Standard solution traceability record" in text
    assert working.barcode in text and "氨氮标准使用液" in text
    run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")])
    page = Image.open(next(tmp_path.glob("page-*.png")))
    assert page.size[0] > 600 and page.size[1] > page.size[0]  # A4 portrait
    # not a blank page: a good share of it is ink
    histogram = page.convert("L").histogram()
    assert sum(histogram[:128]) > 2000


def test_a_withdrawn_certificate_is_printed_as_such(db, chain, users, opened_unit, tmp_path):
    _, working = chain
    with db.transaction() as session:
        service.change_lot_status(session, users["quality_manager"], service.get_lot(session, opened_unit.lot_id),
                                  "withdrawn", reason="生产方撤销证书", effective_at=ago(days=1))
    text = pdf_text(printed(db, working), tmp_path)
    assert "The certificate of this lot has been withdrawn." in text and "生产方撤销证书" in text
    assert "not usable" in text


def test_the_route_prints_in_the_readers_language(client, db, chain, users, tmp_path):
    _, working = chain
    login(client, "analyst")
    client.cookies.set("lims_lang", "en")
    response = client.get(f"/reference-materials/solutions/{working.barcode}/traceability.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert "traceability-" in response.headers["content-disposition"]
    text = pdf_text(response.content, tmp_path)
    assert "Standard solution traceability record" in text and working.barcode in text


def test_devices_of_the_first_step_are_the_ones_recorded(db, chain):
    stock, _ = chain
    with db.reading() as session:
        view = printing.trace_view(session, session.get(StandardSolution, stock.id))
        names = [d.name for d in view.steps[0].devices]
    assert names == [PIPETTE_10.name, "100 mL 单标线容量瓶"]
