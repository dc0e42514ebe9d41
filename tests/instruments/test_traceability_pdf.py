"""The printed traceability statement: what an assessor reads off the PDF (pdftotext), that
Chinese is embedded as text in CJK fonts (pdffonts), and that the first page rasterises."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.core.db import Database, utcnow
from app.core.signatures import SignatureView
from app.instruments import printing, records
from app.instruments.models import Instrument
from app.instruments.printing import traceability_pdf
from app.people.models import User
from app.people.service import save_lab
from tests.instruments.conftest import calibrate, check, local_today, make_instrument, start_of

LAB_ZH = "江城市生态环境监测中心"
CMA_NO = "201912345678"


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "statement.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout
    return re.sub(r"\s+", " ", text)


def statement(db: Database, instrument: Instrument, at: datetime, language: str = "en") -> bytes:
    with db.transaction() as session:
        return traceability_pdf(session, session.get(Instrument, instrument.id), at, language=language)


def with_lab(db: Database) -> None:
    with db.transaction() as session:
        save_lab(session, None, check_permission=False, name_zh=LAB_ZH,
                 name_en="Jiangcheng Eco-Environmental Monitoring Centre", cma_certificate_no=CMA_NO)


def maintain(db: Database, actor: User, instrument: Instrument, performed_at: datetime, description: str,
             kind: str = "maintenance") -> None:
    facts = records.MaintenanceFacts(kind=kind, performed_at=performed_at, description=description,
                                     performed_by="岛津售后 Shimadzu service")
    with db.transaction() as session:
        records.record_maintenance(session, actor, session.get(Instrument, instrument.id), facts)


@pytest.fixture
def history(db: Database, technical: User, store) -> Instrument:
    """Verified 100 days ago (accepted), maintained before and after, checked 20 days ago."""
    with_lab(db)
    instrument = make_instrument(db, technical)
    today = local_today(db)
    maintain(db, technical, instrument, start_of(db, today - timedelta(days=150)), "旧的保养 before the certificate")
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=100),
              valid_until=today + timedelta(days=265), certificate_no="JD2026-0417")
    check(db, technical, instrument, performed_at=utcnow() - timedelta(days=40), measured_value="0.497")
    check(db, technical, instrument, performed_at=utcnow() - timedelta(days=20), measured_value="0.503")
    maintain(db, technical, instrument, utcnow() - timedelta(days=10), "更换氘灯 replaced the deuterium lamp")
    return instrument


def test_statement_names_certificate_confirmation_check_and_maintenance(db, technical, history, tmp_path):
    pdf = statement(db, history, utcnow())
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    for expected in ("JC-UV-001", "UV-2600", "A116-5501", "理化室 201", "NH3-N", "HJ 535-2009",
                     "JD2026-0417", "江城市计量测试研究院", "CNAS L1234", "In service",
                     LAB_ZH, CMA_NO, "Page 1 of"):
        assert expected in text, expected
    # the 计量确认 signature: the responsible person's printed name, intact
    assert technical.printed_name.split(" ")[0] in text
    assert "Intact" in text and "BROKEN" not in text
    assert "Confirmed after the moment" not in text
    # the last check before the moment, not the one before it
    assert "0.503" in text and "0.497" not in text
    # maintenance since the certificate only
    assert "更换氘灯" in text and "旧的保养" not in text
    # tied back to the audit trail
    with db.transaction() as session:
        from app.core.audit import head
        seq, head_hash = head(session)
    assert f"#{seq}" in text
    assert head_hash[:16] in text.replace(" ", "")


def test_statement_at_a_past_moment_shows_what_held_then(db, technical, history, tmp_path):
    """Before the second check and the lamp change: the first check, no maintenance since."""
    text = pdf_text(statement(db, history, utcnow() - timedelta(days=30)), tmp_path)
    assert "0.497" in text and "0.503" not in text
    assert "更换氘灯" not in text
    assert "No maintenance or repair was recorded since the certificate" in text
    # the certificate was entered and confirmed today, after that moment: the statement says so
    assert "Confirmed after the moment of this statement" in text


def test_statement_when_overdue_says_so(db, technical, store, tmp_path):
    with_lab(db)
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=500),
              valid_until=today - timedelta(days=300), certificate_no="JD-OLD-01")
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=100),
              valid_until=today + timedelta(days=265), certificate_no="JD-NEW-02")
    then = start_of(db, today - timedelta(days=200))
    text = pdf_text(statement(db, instrument, then), tmp_path)
    assert "Overdue" in text and "not usable" in text
    assert "JD-OLD-01" in text and "JD-NEW-02" not in text
    assert f"valid until {(today - timedelta(days=300)).isoformat()}" in text
    assert "expired" in text
    now_text = pdf_text(statement(db, instrument, utcnow()), tmp_path)
    assert "JD-NEW-02" in now_text and "Overdue" not in now_text


def test_statement_out_of_service_gives_the_cause(db, technical, calibrated, tmp_path):
    check(db, technical, calibrated, performed_at=utcnow() - timedelta(hours=2), result="fail",
          measured_value="0.530")
    text = pdf_text(statement(db, calibrated, utcnow()), tmp_path)
    assert "Out of service" in text and "an intermediate check failed" in text
    assert "0.53" in text


def test_statement_of_a_restricted_certificate_names_the_restriction(db, technical, store, tmp_path):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=10),
              valid_until=today + timedelta(days=355), result="restricted",
              restriction="220 nm 以下波长不准 wavelengths below 220 nm out of tolerance",
              allowed_parameters=("NH3-N",))
    text = pdf_text(statement(db, instrument, utcnow()), tmp_path)
    assert "Restricted use: 220 nm 以下波长不准" in text
    assert "May be used for: NH3-N" in text


def test_statement_without_any_certificate(db, technical, tmp_path):
    instrument = make_instrument(db, technical)
    text = pdf_text(statement(db, instrument, utcnow()), tmp_path)
    assert "No verification or calibration certificate was recorded before this moment" in text
    assert "No accepted verification or calibration before this moment" in text
    assert "Laboratory profile not set" in text


def test_a_broken_acceptance_signature_prints_as_broken(db, technical, history, tmp_path, monkeypatch):
    real = printing.traceability_at

    def tampered(session, instrument, at):
        trace = real(session, instrument, at)
        return replace(trace, acceptance_signature=SignatureView(trace.acceptance_signature.signature, False))

    monkeypatch.setattr(printing, "traceability_at", tampered)
    text = pdf_text(statement(db, history, utcnow()), tmp_path)
    assert "BROKEN" in text


def test_chinese_is_text_in_embedded_cjk_fonts_and_page_one_rasterises(db, technical, history, tmp_path):
    pdf = statement(db, history, utcnow(), language="zh_CN")
    path = tmp_path / "statement.pdf"
    path.write_bytes(pdf)
    text = pdf_text(pdf, tmp_path)
    for chinese in ("紫外可见分光光度计", "江城市计量测试研究院", LAB_ZH, "理化室"):
        assert chinese in text, chinese
    fonts = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    cjk = [line for line in fonts.splitlines() if "CJK" in line]
    assert cjk, fonts
    assert all(line.split()[-5] == "yes" for line in cjk), fonts  # the "emb" column
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                   check=True, capture_output=True)
    png = next(tmp_path.glob("page*.png"))
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
