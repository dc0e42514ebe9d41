"""The printed report: the decisions build_document takes (CMA mark, flagged items, rounding,
evaluation, deviations, signers) and the PDF itself (report number and page x of y on every
page, repeated table headers, the QR code, embedded CJK subsets, PDF/A-3b, the stamp area)."""

from __future__ import annotations

import re
import subprocess
from datetime import date, timedelta

import zxingcpp
from PIL import Image
from sqlalchemy import select, update

from app.analysis.models import AnalysisResult, CorrectiveAction, Method, NotAnalysed, QcEvaluation
from app.core.db import utcnow
from app.core.signatures import ElectronicSignature
from app.reports.content import load_content
from app.reports.document import PAGE_HEIGHT, SIGNATURE_BOX, build_document, decide_cma_mark, render_report_pdf
from app.reports.models import AccreditationCertificate, AccreditationItem, Report, ReviewAct
from app.samples.lab_models import Delivery, HoldingDeviation, ReceiptCheck, SampleReceipt
from app.samples.models import SampleParameter
from bench.report_workload import make_report_world
from tests.analysis.qc_fixtures import enter
from tests.reports.conftest import make_report

TODAY = date(2026, 12, 4)
TODAY_IS_FIXED = True  # a fixed day for the rendered documents (tests/reports/conftest.py)
RESULT_ROW = re.compile(r"^\s*(\S+)\s+(mg/L|℃|无量纲|μS/cm|个/L)\s+[\d.]+\s+\S")
PAGE_OF = re.compile(r"(?:第\s*(\d+)\s*页\s*/?\s*共\s*(\d+)\s*页|Page (\d+) of (\d+))")


def _document(db, report, signatory, *, approved_on=TODAY):
    with db.reading() as session:
        row = session.get(Report, report.id if hasattr(report, "id") else report)
        return build_document(session, row, load_content(session, row), signatory=signatory,
                              approved_on=approved_on, audit_seq=42, audit_hash="ab" * 32)


def _render(db, report_id, signatory, *, approved_on=TODAY, audit_seq=42, audit_hash="ab" * 32) -> bytes:
    with db.reading() as session:
        row = session.get(Report, report_id)
        return render_report_pdf(session, row, load_content(session, row), signatory=signatory,
                                 approved_on=approved_on, audit_seq=audit_seq, audit_hash=audit_hash)


def _run(*command) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _pages_text(path) -> list[str]:
    return _run("pdftotext", "-layout", str(path), "-").split("\f")[:-1]


def _certificate(db, actor, items, *, valid_from=TODAY - timedelta(days=300), valid_to=TODAY + timedelta(days=300),
                 number="231512340567"):
    now = utcnow()
    with db.transaction() as session:
        certificate = AccreditationCertificate(certificate_no=number, issued_by="黑龙江省市场监督管理局",
                                               valid_from=valid_from, valid_to=valid_to, recorded_at=now,
                                               recorded_by_id=actor.id)
        session.add(certificate)
        session.flush()
        for parameter, code, matrix in items:
            session.add(AccreditationItem(certificate_id=certificate.id, parameter=parameter, method_code=code,
                                          matrix=matrix, recorded_at=now, recorded_by_id=actor.id))


NH3N = ("NH3-N", "HJ 535-2009", "water")


# ---------------------------------------------------------------- the CMA mark


def test_the_cma_mark_is_printed_when_every_item_is_in_the_scope_in_force(db, reportable, users):
    _certificate(db, users["technical_manager"], [NH3N])
    report = make_report(db, reportable.preparer, reportable.samples)
    document = _document(db, report, reportable.signatory)
    assert document.cma_mark and document.certificate_no == "231512340567"
    assert not document.flagged and not document.out_of_scope


def test_no_cma_mark_when_an_item_is_outside_the_scope(db, reportable, users):
    _certificate(db, users["technical_manager"], [("NH3-N", "HJ 535-2009", "soil"), ("TP", "HJ 535-2009", "water")])
    report = make_report(db, reportable.preparer, reportable.samples)
    document = _document(db, report, reportable.signatory)
    assert not document.cma_mark and document.certificate_no == ""
    assert document.out_of_scope == {NH3N}
    assert document.flagged == {NH3N}  # no mark, and the item says it is outside the scope


def test_no_cma_mark_without_a_certificate_in_force_on_the_issue_day(db, reportable, users):
    _certificate(db, users["technical_manager"], [NH3N], valid_to=TODAY - timedelta(days=1))
    report = make_report(db, reportable.preparer, reportable.samples)
    assert not _document(db, report, reportable.signatory).cma_mark
    assert _document(db, report, reportable.signatory, approved_on=TODAY - timedelta(days=1)).cma_mark


def test_an_english_only_report_never_carries_the_cma_mark(db, reportable, users):
    _certificate(db, users["technical_manager"], [NH3N])
    report = make_report(db, reportable.preparer, reportable.samples, language="en")
    document = _document(db, report, reportable.signatory)
    assert not document.cma_mark and not document.flagged


def test_a_method_no_longer_current_is_outside_the_scope(db, reportable, users):
    _certificate(db, users["technical_manager"], [NH3N])
    with db.transaction() as session:
        session.execute(update(Method).where(Method.code == "HJ 535-2009").values(state="superseded"))
    report = make_report(db, reportable.preparer, reportable.samples)
    document = _document(db, report, reportable.signatory)
    assert not document.cma_mark and document.out_of_scope == {NH3N}


def test_with_the_lab_setting_out_of_scope_items_are_flagged_under_the_mark(db, settings):
    world = make_report_world(db, samples=4, out_of_scope=("Hg", "FC"))
    default = _document(db, world.report_id, world.signatory)
    assert not default.cma_mark and {item[0] for item in default.out_of_scope} == {"Hg", "FC"}

    settings.cma_mark_with_flagged_items = True
    document = _document(db, world.report_id, world.signatory)
    assert document.cma_mark
    assert document.flagged == {("Hg", "HJ 694-2014", "water"), ("FC", "HJ 347.2-2018", "water")}
    flagged_rows = {row.parameter for table in document.tables for row in table.rows if row.flagged}
    assert flagged_rows == {"Hg", "FC"}
    assert {m.parameter for m in document.methods if m.flagged} == {"Hg", "FC"}


def test_the_flagged_mode_still_needs_one_item_in_scope():
    items = {NH3N}
    assert not decide_cma_mark(language="zh", items=items, out_of_scope=items, with_flagged_items=True,
                               certificate=AccreditationCertificate())
    assert decide_cma_mark(language="zh", items=items, out_of_scope=set(), with_flagged_items=False,
                           certificate=AccreditationCertificate())
    assert not decide_cma_mark(language="zh", items=set(), out_of_scope=set(), with_flagged_items=True,
                               certificate=AccreditationCertificate())


# ---------------------------------------------------------------- values, evaluation, deviations, people


def test_values_are_rounded_once_by_gbt_8170_and_below_the_mdl_print_the_mdl_with_l(db, reportable):
    enter(db, reportable.bench, {"S-001": "0.51250", "S-002": "0.0100"}, reason="re-read")
    report = make_report(db, reportable.preparer, reportable.samples)
    document = _document(db, report, reportable.signatory)
    (table,) = document.tables
    (row,) = table.rows
    assert (row.parameter, row.method_code, row.unit, row.mdl) == ("NH3-N", "HJ 535-2009", "mg/L", "0.025")
    assert [v.text for v in row.values] == ["0.512", "0.025L"]  # 0.5125 → 0.512 (five, even: kept)
    enter(db, reportable.bench, {"S-001": "0.51350"}, reason="re-read")
    document = _document(db, report, reportable.signatory)
    assert document.tables[0].rows[0].values[0].text == "0.514"  # five after an odd digit: up


def test_a_parameter_not_analysed_keeps_its_row_and_says_so(db, reportable, users):
    first, second = reportable.samples
    with db.transaction() as session:
        session.add(SampleParameter(sample_id=first.id, parameter="TP"))
        session.add(NotAnalysed(sample_id=first.id, parameter="TP", reason="样品量不足", recorded_at=utcnow(),
                                recorded_by_id=reportable.analyst.id))
    report = make_report(db, reportable.preparer, reportable.samples)
    (table,) = _document(db, report, reportable.signatory).tables
    tp = next(row for row in table.rows if row.parameter == "TP")
    assert tp.values[0].not_analysed == "样品量不足" and tp.values[0].text == ""
    assert tp.values[1] is None  # not requested for the second sample: "/"


def test_each_sample_is_evaluated_against_the_reports_standard_and_target_class(db):
    world = make_report_world(db, samples=4)
    document = _document(db, world.report_id, world.signatory)
    assert document.evaluation.code == "GB 3838-2002" and document.evaluation.target_class == "III"
    assert document.plans == ("PL26-00012 2026年12月松花江哈尔滨段例行监测计划",)
    by_no = {s.sample_no: s for s in document.samples}
    fourth = document.samples[3]  # NH3-N of every fourth sample is 4.15 × typical: 1.297 mg/L, class IV
    assert "NH3-N" in fourth.exceedances and fourth.exceeds_target
    assert fourth.class_label in ("IV", "V", "劣V")
    assert not by_no[document.samples[0].sample_no].exceedances
    nh3n = next(r for r in document.tables[0].rows if r.parameter == "NH3-N")
    assert [v.exceeds_target for v in nh3n.values] == [False, False, False, True]
    assert nh3n.values[3].class_label == "IV"


def test_deviations_list_holding_time_conditional_receipt_and_qc_qualifiers(db, reportable, users):
    quality, custodian = users["quality_manager"], users["custodian"]
    first, second = reportable.samples
    now = utcnow()
    with db.transaction() as session:
        session.add(HoldingDeviation(sample_id=first.id, parameter="NH3-N", act="analysis",
                                     reason="仪器故障延误 2 小时", recorded_at=now, recorded_by_id=quality.id))
        session.add(HoldingDeviation(sample_id=first.id, parameter="TP", act="analysis",  # not on the report
                                     reason="not reported", recorded_at=now, recorded_by_id=quality.id))
        signature = ElectronicSignature(signer_id=custodian.id, printed_name=custodian.printed_name,
                                        meaning="received", signed_at=now, entity_type="delivery", entity_id="1",
                                        content_hash="0" * 64)
        session.add(signature)
        session.flush()
        delivery = Delivery(code="RC26-09999", state="signed", arrived_at=now, opened_at=now,
                            opened_by_id=custodian.id)
        session.add(delivery)
        session.flush()
        check = ReceiptCheck(delivery_id=delivery.id, sample_id=second.id, decision="accept_with_conditions",
                             deviation="温度 9 ℃，超出 0–4 ℃", consent_by="委托方 刘女士",
                             consent_ref="电话 2026-12-03",
                             recorded_at=now, recorded_by_id=custodian.id)
        session.add(check)
        session.flush()
        session.add(SampleReceipt(sample_id=second.id, delivery_id=delivery.id, check_id=check.id,
                                  decision="accept_with_conditions", received_at=now, received_by_id=custodian.id,
                                  signature_id=signature.id))
        evaluation = session.scalars(select(QcEvaluation).where(
            QcEvaluation.batch_id == reportable.bench.batch.id)).first()
        session.add(CorrectiveAction(batch_id=reportable.bench.batch.id, evaluation_id=evaluation.id,
                                     kind="qualifier", qualifier="Q-SPK", justification="加标回收率 78 %，基体干扰",
                                     recorded_at=now, recorded_by_id=quality.id))
        last = session.scalars(select(AnalysisResult).where(AnalysisResult.sample_id == first.id)
                               .order_by(AnalysisResult.revision.desc())).first()
        session.add(AnalysisResult(**{**last.model_dump(exclude={"id", "revision", "supersedes_id", "reason",
                                                                 "qualifier"}),
                                      "revision": last.revision + 1, "supersedes_id": last.id,
                                      "reason": "qualified", "qualifier": "Q-SPK"}))
    report = make_report(db, reportable.preparer, reportable.samples)
    document = _document(db, report, reportable.signatory)
    kinds = {d.kind: d for d in document.deviations}
    assert set(kinds) == {"holding_time", "conditional_receipt", "qc_qualifier"} and len(document.deviations) == 3
    assert kinds["holding_time"].samples == (first.sample_no,) and kinds["holding_time"].parameter == "NH3-N"
    assert kinds["holding_time"].by == quality.printed_name
    assert kinds["conditional_receipt"].samples == (second.sample_no,)
    assert kinds["conditional_receipt"].text == "温度 9 ℃，超出 0–4 ℃" and "刘女士" in kinds["conditional_receipt"].by
    assert kinds["qc_qualifier"].qualifier == "Q-SPK" and kinds["qc_qualifier"].text == "加标回收率 78 %，基体干扰"
    assert document.samples[1].condition == "accept_with_conditions"
    assert document.tables[0].rows[0].values[0].qualifier == "Q-SPK"


def test_the_people_of_the_levels_print_only_while_their_signatures_hold(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.reading() as session:
        current = load_content(session, session.get(Report, report.id)).content_sha256
    now = utcnow()
    with db.transaction() as session:
        for level, meaning, user, content in (("compile", "compiled", reportable.preparer, current),
                                              ("check", "checked", reportable.checker, current),
                                              ("review", "reviewed", reportable.reviewer, "f" * 64)):
            signature = ElectronicSignature(signer_id=user.id, printed_name=user.printed_name, meaning=meaning,
                                            signed_at=now, entity_type="report", entity_id=str(report.id),
                                            content_hash=content)
            session.add(signature)
            session.flush()
            session.add(ReviewAct(report_id=report.id, level=level, outcome="signed", content_sha256=content,
                                  signature_id=signature.id, acted_at=now, actor_id=user.id))
    document = _document(db, report, reportable.signatory)
    names = {s.level: (s.name, s.on) for s in document.signers}
    assert names["compile"][0] == reportable.preparer.printed_name and names["compile"][1] is not None
    assert names["check"][0] == reportable.checker.printed_name
    assert names["review"] == ("", None)  # signed over other content: it does not vouch for this one
    assert names["approve"] == (reportable.signatory.printed_name, TODAY)


def test_an_amendment_names_the_report_it_replaces_and_why(db, reportable):
    original = make_report(db, reportable.preparer, reportable.samples)
    amendment = make_report(db, reportable.preparer, reportable.samples, report_no=original.report_no + "-A1")
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == amendment.id).values(
            amends_id=original.id, revision=1, amendment_reason="样品编号 WS01 更正"))
    document = _document(db, amendment, reportable.signatory)
    assert document.amends_no == original.report_no and document.amendment_reason == "样品编号 WS01 更正"


def test_build_document_reads_a_fixed_number_of_queries(db, count_queries):
    world = make_report_world(db, samples=8)
    with db.reading() as session:
        report = session.get(Report, world.report_id)
        content = load_content(session, report)
        with count_queries() as counted:
            build_document(session, report, content, signatory=world.signatory, approved_on=TODAY,
                           audit_seq=1, audit_hash="0" * 64)
    assert counted.count <= 12


# ---------------------------------------------------------------- the PDF


def test_a_multi_page_chinese_report(db, tmp_path):
    world = make_report_world(db, samples=12)
    path = tmp_path / "report.pdf"
    path.write_bytes(_render(db, world.report_id, world.signatory, audit_seq=123456, audit_hash="9f" * 32))
    pages = _pages_text(path)
    assert len(pages) >= 4

    # the report number and "第 x 页 共 y 页" on every page
    for number, page in enumerate(pages, start=1):
        assert world.report_no in page
        (found,) = [m for m in PAGE_OF.finditer(page)]
        assert (int(found.group(1)), int(found.group(2))) == (number, len(pages))

    # a results table continued on the next page repeats its header row there
    headers = 0
    for page in pages:
        lines = page.splitlines()
        header_at = [i for i, line in enumerate(lines) if "检出限" in line and re.search(r"WS0\d-\d{6}-\d{3}", line)]
        rows_at = [i for i, line in enumerate(lines) if RESULT_ROW.match(line)]
        if rows_at:
            assert header_at and header_at[0] < rows_at[0]
        headers += len(header_at)
    tables = -(-12 // 5)
    assert headers > tables  # at least one table printed its header again on a following page

    assert "CMA" in pages[0] and "231512340567" in pages[0]  # the mark on the cover: all in scope
    everything = "\n".join(pages)
    assert "9f" * 32 in everything and "123456" in everything
    assert "1.297" in everything and "0.00005L" in everything

    # Noto CJK embedded, as subsets
    fonts = _run("pdffonts", str(path)).splitlines()[2:]
    cjk = [line for line in fonts if "CJK" in line]
    assert cjk and all(re.match(r"^[A-Z]{6}\+", line) for line in fonts)
    assert all(line.split()[-5:-2] == ["yes", "yes", "yes"] for line in cjk)  # emb, sub, uni

    # PDF/A-3b identification in the XMP metadata
    meta = _run("pdfinfo", "-meta", str(path))
    assert re.search(r"pdfaid:part(>|=\")3", meta) and re.search(r"pdfaid:conformance(>|=\")B", meta)

    # the QR code decodes to the verification address
    _run("pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "cover"))
    (image,) = tmp_path.glob("cover*.png")
    decoded = {b.text for b in zxingcpp.read_barcodes(Image.open(image))}
    with db.reading() as session:
        token = session.get(Report, world.report_id).verify_token
    assert decoded == {f"http://127.0.0.1:8000/verify/{token}"}

    # nothing printed where the PAdES stamp goes on the last page
    bbox = _run("pdftotext", "-bbox", "-f", str(len(pages)), "-l", str(len(pages)), str(path), "-")
    x1, y1, x2, y2 = SIGNATURE_BOX
    top, bottom = PAGE_HEIGHT - y2, PAGE_HEIGHT - y1
    words = [tuple(float(v) for v in m.groups()) for m in re.finditer(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', bbox)]
    assert words
    assert not [w for w in words if w[0] < x2 and w[2] > x1 and w[1] < bottom and w[3] > top]


def test_an_english_report_prints_no_chinese_labels_and_no_cma_mark(db, tmp_path):
    world = make_report_world(db, samples=3, language="en")
    path = tmp_path / "report.pdf"
    path.write_bytes(_render(db, world.report_id, world.signatory))
    pages = _pages_text(path)
    everything = "\n".join(pages)
    for number, page in enumerate(pages, start=1):
        assert world.report_no in page and f"Page {number} of {len(pages)}" in page
    for label in ("Test report", "End of report", "Results", "Methods"):
        assert label in everything
    flat = " ".join(everything.split())
    assert "The results relate only to the samples tested" in flat
    assert "shall not be reproduced except in full without the written approval" in flat
    for chinese in ("检测报告", "以下空白", "检出限", "第 1 页"):
        assert chinese not in everything
    assert "CMA" not in everything
