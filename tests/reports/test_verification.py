"""Verifying a report file: the lab's signature (intact, whole file, the lab's certificate) and the
record of issued reports decide valid / superseded / withdrawn / unknown / invalid; bad bytes of
any kind are an outcome with a reason, never an exception."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import update

from app.config import Settings
from app.core.db import Database, utcnow
from app.core.files import file_store
from app.core.pdf import render_pdf
from app.people.models import User
from app.reports.models import Report, ReportState
from app.reports.signing import LabSigner, lab_signer, sign_report_pdf
from app.reports.verification import VerificationStatus, verify_report_file
from tests.reports.conftest import make_report

LAB = "市生态环境监测中心"


@dataclass
class Issued:
    report: Report
    pdf: bytes


def signed_pdf(signer: LabSigner, report_no: str, *, text: str = "检测报告") -> bytes:
    return sign_report_pdf(render_pdf(f"<h1>{text} {report_no}</h1><p>氨氮 0.512 mg/L</p>"), signer,
                           report_no=report_no, signatory_name="签字人", language="zh")


def issue_signed(db: Database, settings: Settings, preparer: User, *, state: str = ReportState.ISSUED.value,
                 report_no: str | None = None, **columns) -> Issued:
    """An issued report written straight into its row (the issue pipeline has its own tests): a
    PDF signed by the lab, kept in the file store, its hash and issue time on the report."""
    report = make_report(db, preparer, [], state=state, report_no=report_no)
    pdf = signed_pdf(lab_signer(settings, lab_name=LAB), report.report_no)
    sha256, _ = file_store(settings.ensure_data_dir()).put(io.BytesIO(pdf), max_bytes=50 * 1024 * 1024)
    values = {"pdf_sha256": sha256, "issued_at": utcnow() - timedelta(days=2), "approved_at": utcnow(),
              **columns}
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == report.id).values(**values))
    with db.reading() as session:
        fresh = session.get(Report, report.id)
        session.expunge(fresh)
    return Issued(fresh, pdf)


def supersede(db: Database, old: Report, new: Report) -> None:
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == old.id)
                        .values(state=ReportState.SUPERSEDED.value, superseded_by_id=new.id))
        session.execute(update(Report).where(Report.id == new.id).values(amends_id=old.id, revision=1))


def withdraw(db: Database, report: Report, withdrawer: User, reason: str) -> datetime:
    when = datetime(2026, 12, 3, 17, 30, tzinfo=utcnow().tzinfo)  # 2026-12-04 01:30 in Shanghai
    with db.transaction() as session:
        session.execute(update(Report).where(Report.id == report.id).values(
            state=ReportState.WITHDRAWN.value, withdrawn_at=when, withdrawn_by_id=withdrawer.id,
            withdrawal_reason=reason))
    return when


def verify(db: Database, settings: Settings, data: bytes):
    """The outcome (its reports detached, readable after the session) and the report's number."""
    with db.reading() as session:
        outcome = verify_report_file(session, data, settings)
        for row in (outcome.report, outcome.superseded_by):
            if row is not None:
                session.expunge(row)
        return outcome, (outcome.report.report_no if outcome.report else None)


def test_an_issued_report_file_is_valid_and_matches_its_record(db, settings, users):
    issued = issue_signed(db, settings, users["analyst"])
    outcome, report_no = verify(db, settings, issued.pdf)
    assert outcome.status == VerificationStatus.VALID
    assert report_no == issued.report.report_no and outcome.matches(issued.report)
    assert outcome.reason("en") == f"Matches report {report_no} issued by the lab; the report is in force."
    assert report_no in outcome.reason("zh_CN")
    assert LAB in outcome.signer_subject and outcome.signed_at is not None
    assert outcome.sha256 == issued.report.pdf_sha256


def test_another_reports_file_does_not_match_this_record(db, settings, users):
    first = issue_signed(db, settings, users["analyst"])
    second = issue_signed(db, settings, users["analyst"])
    outcome, report_no = verify(db, settings, second.pdf)
    assert outcome.status == VerificationStatus.VALID and report_no == second.report.report_no
    assert not outcome.matches(first.report)


def test_a_superseded_report_names_its_successor(db, settings, users):
    old = issue_signed(db, settings, users["analyst"], report_no="BG2026-0100")
    new = issue_signed(db, settings, users["analyst"], report_no="BG2026-0100-A1")
    supersede(db, old.report, new.report)
    outcome, report_no = verify(db, settings, old.pdf)
    assert outcome.status == VerificationStatus.SUPERSEDED and report_no == "BG2026-0100"
    assert outcome.superseded_by.report_no == "BG2026-0100-A1"
    assert outcome.reason("en").endswith("superseded by BG2026-0100-A1.")
    assert verify(db, settings, new.pdf)[0].status == VerificationStatus.VALID


def test_a_withdrawn_report_says_when_and_why(db, settings, users):
    issued = issue_signed(db, settings, users["analyst"])
    withdraw(db, issued.report, users["quality_manager"], "样品编号错误")
    outcome, _ = verify(db, settings, issued.pdf)
    assert outcome.status == VerificationStatus.WITHDRAWN and outcome.matches(issued.report)
    assert outcome.reason("zh_CN").endswith("已于 2026-12-04 撤回：样品编号错误")  # the lab's date


def test_a_lab_signed_file_the_lab_never_issued_is_unknown(db, settings, users):
    issue_signed(db, settings, users["analyst"])
    trial = signed_pdf(lab_signer(settings), "BG2026-0999", text="试印")
    outcome, report_no = verify(db, settings, trial)
    assert outcome.status == VerificationStatus.UNKNOWN and report_no is None
    assert outcome.reason("en") == "The digital signature is the lab's, but the lab issued no report in this form."


def test_a_hash_on_a_report_not_yet_issued_is_unknown(db, settings, users):
    approved = issue_signed(db, settings, users["analyst"], state=ReportState.APPROVED.value, issued_at=None)
    outcome, report_no = verify(db, settings, approved.pdf)
    assert outcome.status == VerificationStatus.UNKNOWN and report_no is None


def test_a_changed_byte_is_invalid_changed_after_signing(db, settings, users):
    issued = issue_signed(db, settings, users["analyst"])
    tampered = bytearray(issued.pdf)
    where = issued.pdf.index(b"stream\n") + 30  # inside the first page's compressed content
    tampered[where] ^= 0x20
    outcome, report_no = verify(db, settings, bytes(tampered))
    assert outcome.status == VerificationStatus.INVALID and outcome.reason_code == "changed"
    assert outcome.reason("en") == "The file was changed after signing." and report_no is None
    assert not outcome.matches(issued.report)


def test_a_revision_appended_after_signing_is_invalid(db, settings, users):
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    issued = issue_signed(db, settings, users["analyst"])
    writer = IncrementalPdfFileWriter(io.BytesIO(issued.pdf))
    info = generic.DictionaryObject({generic.pdf_name("/Title"): generic.pdf_string("改过的报告")})
    writer.trailer["/Info"] = writer.add_object(info)
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().startswith(issued.pdf)
    outcome, _ = verify(db, settings, out.getvalue())
    assert outcome.status == VerificationStatus.INVALID and outcome.reason_code == "changed"


def test_a_signature_by_another_certificate_is_invalid(db, settings, users, tmp_path):
    issue_signed(db, settings, users["analyst"])
    forger = lab_signer(Settings(data_dir=tmp_path / "elsewhere", database_url="sqlite://", secret_key="k"),
                        lab_name=LAB)
    outcome, _ = verify(db, settings, signed_pdf(forger, "BG2026-0001"))
    assert outcome.status == VerificationStatus.INVALID and outcome.reason_code == "untrusted"
    assert "certificate" in outcome.reason("en")


def test_an_earlier_certificate_kept_as_trusted_still_vouches(db, settings, users, tmp_path):
    old_settings = Settings(data_dir=tmp_path / "old", database_url="sqlite://", secret_key="k")
    old_pdf = signed_pdf(lab_signer(old_settings, lab_name=LAB), "BG2025-0001")
    issue_signed(db, settings, users["analyst"])  # the current certificate exists
    assert verify(db, settings, old_pdf)[0].reason_code == "untrusted"
    trusted = settings.data_path / "signing" / "trusted"
    trusted.mkdir()
    (trusted / "2025.pem").write_bytes((old_settings.data_path / "signing" / "demo-lab.pem").read_bytes())
    (trusted / "junk.pem").write_text("not a certificate")
    assert verify(db, settings, old_pdf)[0].status == VerificationStatus.UNKNOWN  # genuine, not recorded


def test_without_any_lab_certificate_nothing_verifies_and_none_is_made(db, settings, tmp_path):
    other = lab_signer(Settings(data_dir=tmp_path / "other", database_url="sqlite://", secret_key="k"))
    outcome, _ = verify(db, settings, signed_pdf(other, "BG2026-0001"))
    assert outcome.reason_code == "untrusted"
    assert not (settings.data_path / "signing").exists()


@pytest.mark.parametrize(("data", "code"), [
    (b"", "not_pdf"),
    (b"PK\x03\x04 a zip, not a PDF", "not_pdf"),
    (b"hello %PDF-1.7", "not_pdf"),
    (b"%PDF-1.7\n garbage \x00\xff", "unreadable"),
])
def test_what_is_not_a_pdf_or_not_readable_is_invalid(db, settings, data, code):
    outcome, _ = verify(db, settings, data)
    assert outcome.status == VerificationStatus.INVALID and outcome.reason_code == code


def test_an_unsigned_pdf_is_invalid(db, settings):
    outcome, _ = verify(db, settings, render_pdf("<p>报告</p>"))
    assert outcome.status == VerificationStatus.INVALID and outcome.reason_code == "unsigned"
    assert outcome.reason("zh_CN") == "文件没有数字签名。"


def test_a_truncated_signed_file_is_invalid(db, settings, users):
    issued = issue_signed(db, settings, users["analyst"])
    for cut in (len(issued.pdf) // 2, len(issued.pdf) - 200, 20):
        outcome, _ = verify(db, settings, issued.pdf[:cut])
        assert outcome.status == VerificationStatus.INVALID, cut


@pytest.fixture
def one_issued(db, settings, users) -> tuple[Issued, Path]:
    return issue_signed(db, settings, users["analyst"]), settings.data_path


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(min_value=0, max_value=1, exclude_max=True), flip=st.integers(min_value=1, max_value=255))
def test_no_changed_byte_anywhere_passes_or_raises(db, settings, one_issued, position, flip):
    issued, _ = one_issued
    tampered = bytearray(issued.pdf)
    tampered[int(position * len(tampered))] ^= flip
    outcome, _ = verify(db, settings, bytes(tampered))
    assert outcome.status != VerificationStatus.VALID and not outcome.matches(issued.report)


# ---------------------------------------------------------------- through the real issue pipeline


def test_a_report_issued_by_the_pipeline_verifies_then_shows_superseded_after_its_amendment(
        db, settings, users, reportable, client):
    """Render (PDF/A-3b) → approve → the signing job → issued; the public page says it matches;
    an amendment issued later makes the same file verify as superseded by it."""
    from app.core.files import file_store
    from tests.conftest import csrf_of
    from tests.reports.test_amendments import amend, issued_report
    from tests.reports.test_issue import approve, render, sign_levels

    original = issued_report(db, reportable)
    pdf = file_store(settings.data_path).read(original.pdf_sha256)
    outcome, report_no = verify(db, settings, pdf)
    assert outcome.status == VerificationStatus.VALID and report_no == original.report_no

    def upload() -> str:
        return client.post(f"/verify/{original.verify_token}", files={"file": ("r.pdf", pdf, "application/pdf")},
                           data={"csrf_token": csrf_of(client)}).text

    assert 'data-outcome="match"' in upload()

    amendment = amend(db, users["quality_manager"], original)
    sign_levels(db, reportable, amendment)
    render(db, reportable.signatory, amendment)
    approve(db, reportable.signatory, amendment)
    outcome, report_no = verify(db, settings, pdf)
    assert outcome.status == VerificationStatus.SUPERSEDED and report_no == original.report_no
    assert outcome.superseded_by.report_no == f"{original.report_no}-A1"
    page = client.get(f"/verify/{original.verify_token}").text
    assert 'data-status="superseded"' in page and f"{original.report_no}-A1" in page
    assert 'data-outcome="match"' in upload()  # still the file the lab issued, now superseded


def test_a_report_signed_while_an_expired_certificate_was_valid_still_verifies(db, settings, users, tmp_path,
                                                                                  monkeypatch):
    """Reports are checked for years after issue: a certificate that expired since (renewed, the
    old one kept in signing/trusted/) still vouches for what it signed while valid; a signature
    made after it expired does not."""
    from datetime import UTC

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, pkcs12
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko.sign.signers import pdf_signer as pyhanko_pdf_signer

    from tests.reports.test_signing import make_pkcs12

    make_pkcs12(tmp_path / "old.p12", b"pw", organisation=LAB, not_after=datetime.now(UTC) - timedelta(days=1))
    key, certificate, _ = pkcs12.load_key_and_certificates((tmp_path / "old.p12").read_bytes(), b"pw")
    data = pkcs12.serialize_key_and_certificates(b"old", key, certificate, None, NoEncryption())
    current = lab_signer(settings, lab_name=LAB)
    old = LabSigner(signer=SimpleSigner.load_pkcs12_data(data, []), certificate_der=certificate.public_bytes(
        Encoding.DER), chain_der=(), lab_name=LAB, location="", demo=False, source=tmp_path / "old.p12",
        data_dir=current.data_dir, tz=current.tz)
    trusted = settings.data_path / "signing" / "trusted"
    trusted.mkdir()
    (trusted / "2025.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    assert x509.load_pem_x509_certificate((trusted / "2025.pem").read_bytes()).not_valid_after_utc < datetime.now(UTC)

    late = signed_pdf(old, "BG2026-0500")  # signed today, after the certificate expired
    assert verify(db, settings, late)[0].reason_code == "untrusted"

    class Then(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)

    monkeypatch.setattr(pyhanko_pdf_signer, "datetime", Then)
    in_time = signed_pdf(old, "BG2025-0500")  # signed a month ago, while it was valid
    monkeypatch.undo()
    outcome, _ = verify(db, settings, in_time)
    assert outcome.status == VerificationStatus.UNKNOWN and outcome.reason_code == "not_issued"
    assert outcome.signed_at < datetime.now(UTC) - timedelta(days=29)
