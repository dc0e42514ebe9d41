"""`lims report verify FILE.pdf`: the same check as the public page, offline against the local
database and certificate; exit 0 valid, 1 invalid or unknown (with the reason), also 1 for a
genuine report that was superseded or withdrawn."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.cli import app as cli_app
from app.config import Settings
from app.core.pdf import render_pdf
from app.reports.signing import lab_signer
from tests.reports.test_verification import issue_signed, signed_pdf, supersede, withdraw

pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"LIMS_DATA_DIR": str(settings.data_dir), "LIMS_DATABASE_URL": settings.database_url,
            "LIMS_LANGUAGE": "en"}


def lims_verify(env: dict[str, str], path: Path) -> Result:
    result = CliRunner().invoke(cli_app, ["report", "verify", str(path)], env={"COLUMNS": "200", **env})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def written(tmp_path: Path, data: bytes, name: str = "report.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_an_issued_report_exits_0(env, db, settings, users, tmp_path):
    issued = issue_signed(db, settings, users["analyst"])
    result = lims_verify(env, written(tmp_path, issued.pdf))
    assert result.exit_code == 0, result.output
    assert f"valid: Matches report {issued.report.report_no} issued by the lab" in result.output
    assert issued.report.pdf_sha256 in result.output and "signed by:" in result.output


def test_chinese_when_the_lab_works_in_chinese(env, db, settings, users, tmp_path):
    issued = issue_signed(db, settings, users["analyst"])
    result = lims_verify({**env, "LIMS_LANGUAGE": "zh_CN"}, written(tmp_path, issued.pdf))
    assert result.exit_code == 0 and f"与本实验室签发的报告 {issued.report.report_no} 一致" in result.output


def test_a_superseded_or_withdrawn_report_exits_1_with_why(env, db, settings, users, tmp_path):
    old = issue_signed(db, settings, users["analyst"], report_no="BG2026-0400")
    new = issue_signed(db, settings, users["analyst"], report_no="BG2026-0400-A1")
    supersede(db, old.report, new.report)
    result = lims_verify(env, written(tmp_path, old.pdf, "old.pdf"))
    assert result.exit_code == 1 and "superseded by BG2026-0400-A1" in result.output
    withdraw(db, new.report, users["quality_manager"], "wrong client address")
    result = lims_verify(env, written(tmp_path, new.pdf, "new.pdf"))
    assert result.exit_code == 1 and "withdrawn on 2026-12-04: wrong client address" in result.output


@pytest.mark.parametrize(("case", "reason"), [
    ("missing", "cannot read"),
    ("not a PDF", "The file is not a PDF."),
    ("unreadable", "The file is not a readable PDF."),
    ("unsigned", "The file carries no digital signature."),
    ("tampered", "The file was changed after signing."),
    ("unknown", "the lab issued no report in this form"),
    ("foreign", "not made with this lab's certificate"),
])
def test_invalid_or_unknown_exits_1_with_the_reason(env, db, settings, users, tmp_path, case, reason):
    issued = issue_signed(db, settings, users["analyst"])
    if case == "missing":
        path = tmp_path / "nowhere.pdf"
    elif case == "not a PDF":
        path = written(tmp_path, b"PK\x03\x04 a zip")
    elif case == "unreadable":
        path = written(tmp_path, b"%PDF-1.7\n\x00\x01 broken")
    elif case == "unsigned":
        path = written(tmp_path, render_pdf("<p>报告</p>"))
    elif case == "tampered":
        tampered = bytearray(issued.pdf)
        tampered[issued.pdf.index(b"stream\n") + 30] ^= 0x20
        path = written(tmp_path, bytes(tampered))
    elif case == "unknown":
        path = written(tmp_path, signed_pdf(lab_signer(settings), "BG2026-0999"))
    else:
        other = Settings(data_dir=tmp_path / "other", database_url="sqlite://", secret_key="k")
        path = written(tmp_path, signed_pdf(lab_signer(other), issued.report.report_no))
    result = lims_verify(env, path)
    assert result.exit_code == 1, result.output
    assert reason in result.output
    assert "Traceback" not in result.output


def test_a_misconfigured_lab_certificate_is_said_plainly(env, db, settings, users, tmp_path):
    issued = issue_signed(db, settings, users["analyst"])
    result = lims_verify({**env, "LIMS_REPORT_PKCS12_FILE": str(tmp_path / "missing.p12")},
                         written(tmp_path, issued.pdf))
    assert result.exit_code == 1 and "missing.p12 cannot be read" in result.output
    assert "Traceback" not in result.output
