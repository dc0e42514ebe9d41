"""The printed report: the decisions build_document takes (CMA mark, flagged items, rounding,
evaluation, deviations, signers) and the PDF itself (report number and page x of y on every
page, repeated table headers, the QR code, embedded CJK subsets, PDF/A-3b, the stamp area)."""

from __future__ import annotations

import subprocess
from datetime import date

from app.reports.content import load_content
from app.reports.document import build_document, render_report_pdf
from app.reports.models import Report
from tests.reports.conftest import make_report

TODAY = date(2026, 12, 4)


def _document(db, report, signatory, *, approved_on=TODAY):
    with db.reading() as session:
        row = session.get(Report, report.id)
        return build_document(session, row, load_content(session, row), signatory=signatory,
                              approved_on=approved_on, audit_seq=42, audit_hash="ab" * 32)


def _render(db, report, signatory, *, approved_on=TODAY, audit_seq=42, audit_hash="ab" * 32):
    with db.reading() as session:
        row = session.get(Report, report.id)
        return render_report_pdf(session, row, load_content(session, row), signatory=signatory,
                                 approved_on=approved_on, audit_seq=audit_seq, audit_hash=audit_hash)


def _pages_text(path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return text.split("\f")[:-1]


def test_a_report_prints_its_number_values_and_people(db, reportable, tmp_path):
    report = make_report(db, reportable.preparer, reportable.samples)
    path = tmp_path / "report.pdf"
    path.write_bytes(_render(db, report, reportable.signatory))
    pages = _pages_text(path)
    assert len(pages) >= 2
    assert all(report.report_no in page for page in pages)
    everything = "\n".join(pages)
    for text in ("0.512", "0.200", "HJ 535-2009", reportable.samples[0].sample_no, "0.025",
                 reportable.signatory.display_name_zh, reportable.preparer.display_name_zh, "ab" * 32):
        assert text in everything
