"""Is this PDF a report the lab issued, and is it still in force? (issue 9 §5)

Anyone holding a report can check it: on the public page `/verify/{token}` (the QR code), through
`GET /api/v1/verify/{sha256}`, or offline with `lims report verify FILE.pdf`. Two facts decide:

1. the embedded PAdES signature is intact, covers the whole file (nothing appended after it) and
   chains to the lab's certificate: otherwise the file is **invalid** (not a PDF, unreadable,
   unsigned, changed after signing, or signed by someone else);
2. the file's SHA-256 is the `pdf_sha256` of an issued report: then its status is that report's
   (**valid**, **superseded** by a later revision, or **withdrawn**); a lab signature over a file
   the lab never issued in this form (a trial rendering, another installation) is **unknown**.

Checking never raises on bad input: whatever the bytes, the answer is an outcome with a reason.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.errors import NotFound, PayloadTooLarge
from app.core.event_loop import outside_event_loop
from app.core.files import EmptyFile, UnsupportedFileType
from app.reports.models import Report, ReportState
from app.reports.signing import DEMO_DIR, DEMO_PEM, lab_signer

log = logging.getLogger("lims")

PDF_MAGIC = b"%PDF-"
MAX_VERIFY_UPLOAD_MB = 20
TRUSTED_DIR = "trusted"  # <data dir>/signing/trusted/*.pem: earlier lab certificates still vouched for
PUBLISHED_STATES = (ReportState.ISSUED.value, ReportState.SUPERSEDED.value, ReportState.WITHDRAWN.value)


class VerificationStatus(StrEnum):
    VALID = "valid"  # issued by the lab and in force
    SUPERSEDED = "superseded"  # issued, then replaced by an amendment
    WITHDRAWN = "withdrawn"  # issued, then withdrawn by the quality manager
    INVALID = "invalid"  # not a genuine, unchanged lab-signed PDF
    UNKNOWN = "unknown"  # signed by the lab, but not a report it issued in this form


# reason code -> (zh, en); placeholders from the outcome's `params`
REASONS: dict[str, tuple[str, str]] = {
    "not_pdf": ("文件不是 PDF。", "The file is not a PDF."),
    "unreadable": ("文件不是可读取的 PDF。", "The file is not a readable PDF."),
    "unsigned": ("文件没有数字签名。", "The file carries no digital signature."),
    "changed": ("文件在签名后被修改过。", "The file was changed after signing."),
    "untrusted": ("数字签名不是本实验室的证书所签。", "The digital signature is not made with this lab's certificate."),
    "not_issued": ("数字签名有效，但本实验室没有以此形式签发过该文件。",
                   "The digital signature is the lab's, but the lab issued no report in this form."),
    "issued": ("与本实验室签发的报告 {report_no} 一致，报告有效。",
               "Matches report {report_no} issued by the lab; the report is in force."),
    "superseded": ("与本实验室签发的报告 {report_no} 一致，但该报告已被 {superseded_by} 替代。",
                   "Matches report {report_no} issued by the lab, but it was superseded by {superseded_by}."),
    "withdrawn": ("与本实验室签发的报告 {report_no} 一致，但该报告已于 {withdrawn_on} 撤回：{withdrawal_reason}",
                  "Matches report {report_no} issued by the lab, but it was withdrawn on {withdrawn_on}: "
                  "{withdrawal_reason}"),
}


@dataclass
class VerificationOutcome:
    """What a check found: the status, why, and the report the file is (if the lab issued it)."""

    status: VerificationStatus
    reason_code: str
    sha256: str
    report: Report | None = None
    superseded_by: Report | None = None
    signer_subject: str = ""
    signed_at: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def reason(self, language: str) -> str:
        zh, en = REASONS[self.reason_code]
        template = zh if language.startswith("zh") else en
        return template.format(**self.params)

    @property
    def genuine(self) -> bool:
        """The lab issued exactly this file (whatever its report's status now)."""
        return self.report is not None and self.status in (
            VerificationStatus.VALID, VerificationStatus.SUPERSEDED, VerificationStatus.WITHDRAWN)

    def matches(self, report: Report) -> bool:
        """The file is the one issued as `report` (the record a verify page shows)."""
        return self.genuine and self.report is not None and self.report.id == report.id


class VerifyUploadTooLarge(PayloadTooLarge):
    code = "verify_upload_too_large"
    message_zh = "文件过大：待验证的报告 PDF 最大 {limit_mb} MB。"
    message_en = "The file is too large: a report PDF to verify may be at most {limit_mb} MB."


class NotAPdf(UnsupportedFileType):
    code = "not_a_pdf"
    message_zh = "上传的文件不是 PDF：请选择本实验室出具的报告 PDF 文件。"
    message_en = "The uploaded file is not a PDF: choose the report PDF issued by the lab."


class VerifiedReportNotFound(NotFound):
    code = "verified_report_not_found"
    message_zh = "本实验室没有签发过 SHA-256 为 {sha256} 的报告文件。"
    message_en = "The lab issued no report file with SHA-256 {sha256}."


# ---------------------------------------------------------------- the lab's certificates


def trusted_certificates(settings: Settings) -> list[bytes]:
    """The certificates (DER) a report signature must chain to: the lab's signing certificate
    (the PKCS#12 of the settings, or the demo certificate if one was made), and any earlier
    certificate kept as PEM in `<data dir>/signing/trusted/` after a renewal, so reports
    signed before it still verify. No certificate is created here."""
    found: list[bytes] = []
    signing_dir = settings.data_path / DEMO_DIR
    if settings.report_pkcs12_file is not None:
        signer = lab_signer(settings)
        found += [signer.certificate_der, *signer.chain_der]
    elif (signing_dir / DEMO_PEM).is_file():
        found += _pem_certificates(signing_dir / DEMO_PEM)
    folder = signing_dir / TRUSTED_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("*.pem")):
            found += _pem_certificates(path)
    unique: list[bytes] = []
    for der in found:
        if der not in unique:
            unique.append(der)
    return unique


def _pem_certificates(path: Path) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes())]
    except (OSError, ValueError):
        log.warning("not a PEM certificate, ignored for report verification: %s", path)
        return []


# ---------------------------------------------------------------- checking a file


@dataclass(frozen=True)
class SignatureCheck:
    reason_code: str  # "" when the signature is the lab's, intact and covers the whole file
    signer_subject: str = ""
    signed_at: datetime | None = None


def check_signature(data: bytes, trusted: list[bytes]) -> SignatureCheck:
    """The file's lab signature: intact, over the entire file, no later revision, chained to
    one of `trusted`. Malformed files of every kind come back as a reason, not an exception."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    if not data.startswith(PDF_MAGIC):
        return SignatureCheck("not_pdf")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except Exception:  # a damaged PDF fails in many ways inside the parser; all mean "unreadable"
        return SignatureCheck("unreadable")
    if not signatures:
        return SignatureCheck("unsigned")
    try:
        return _validate(signatures, trusted)
    except Exception:  # the signature dictionary or CMS blob is itself damaged
        log.info("report verification: a signature could not be evaluated", exc_info=True)
        return SignatureCheck("changed")


def _validate(signatures: list[Any], trusted: list[bytes]) -> SignatureCheck:
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko.sign.validation.status import ModificationLevel, SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    embedded = signatures[0]  # the lab's; any later one is itself a change after signing
    roots = [asn1_x509.Certificate.load(der) for der in trusted]
    # A report is kept and checked for years, longer than a certificate lives: the certificate
    # must have been valid when the report was signed, not today (the signing time is the
    # signer's own claim; forging one still needs the lab's key, and the file's hash must
    # still be on record for the report to count as issued).
    signed_on = embedded.self_reported_timestamp
    context = ValidationContext(trust_roots=roots, allow_fetching=False, moment=signed_on) if signed_on \
        else ValidationContext(trust_roots=roots, allow_fetching=False)
    status = outside_event_loop(
        validate_pdf_signature, embedded, context,
        key_usage_settings=KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}),
    )
    subject = status.signing_cert.subject.human_friendly if status.signing_cert is not None else ""
    signed_at = status.signer_reported_dt
    if not (status.intact and status.valid):
        return SignatureCheck("changed", subject, signed_at)
    if (len(signatures) > 1 or status.coverage != SignatureCoverageLevel.ENTIRE_FILE
            or status.modification_level != ModificationLevel.NONE or status.docmdp_ok is False):
        return SignatureCheck("changed", subject, signed_at)
    if not roots or not status.trusted or not _valid_when_signed(status.signing_cert, signed_on):
        return SignatureCheck("untrusted", subject, signed_at)
    return SignatureCheck("", subject, signed_at)


def _valid_when_signed(certificate: Any, signed_on: datetime | None) -> bool:
    """The signing certificate was within its validity when it signed. Path validation checks
    this for a certificate issued by a CA, but not for a trust anchor itself, which the lab's
    own (demo or self-signed) certificate is."""
    if certificate is None or signed_on is None:
        return False
    return certificate.not_valid_before <= signed_on <= certificate.not_valid_after


def report_by_pdf_hash(session: Session, sha256: str) -> Report | None:
    """The issued (or since superseded / withdrawn) report whose signed PDF has this hash."""
    return session.scalars(
        select(Report).where(Report.pdf_sha256 == sha256, Report.state.in_(PUBLISHED_STATES))
        .order_by(Report.id).limit(1)
    ).first()


# what a published report's record says now, without a file: status -> (zh, en)
STANDINGS: dict[VerificationStatus, tuple[str, str]] = {
    VerificationStatus.VALID: ("报告 {report_no} 有效。", "Report {report_no} is in force."),
    VerificationStatus.SUPERSEDED: ("报告 {report_no} 已被 {superseded_by} 替代。",
                                    "Report {report_no} was superseded by {superseded_by}."),
    VerificationStatus.WITHDRAWN: ("报告 {report_no} 已于 {withdrawn_on} 撤回：{withdrawal_reason}",
                                   "Report {report_no} was withdrawn on {withdrawn_on}: {withdrawal_reason}"),
}


@dataclass
class Standing:
    """A published report's standing now: in force, superseded (by which), or withdrawn."""

    status: VerificationStatus
    reason_code: str  # the REASONS entry for a file that matches this report
    successor: Report | None
    params: dict[str, Any]

    def text(self, language: str) -> str:
        zh, en = STANDINGS[self.status]
        return (zh if language.startswith("zh") else en).format(**self.params)


def record_status(session: Session, report: Report, settings: Settings) -> Standing:
    params: dict[str, Any] = {"report_no": report.report_no}
    if report.state == ReportState.WITHDRAWN.value:
        params.update(withdrawn_on=report.withdrawn_at.astimezone(settings.tz).date().isoformat()
                      if report.withdrawn_at else "", withdrawal_reason=report.withdrawal_reason)
        return Standing(VerificationStatus.WITHDRAWN, "withdrawn", None, params)
    if report.state == ReportState.SUPERSEDED.value:
        successor = session.get(Report, report.superseded_by_id) if report.superseded_by_id else None
        params["superseded_by"] = successor.report_no if successor else "?"
        return Standing(VerificationStatus.SUPERSEDED, "superseded", successor, params)
    return Standing(VerificationStatus.VALID, "issued", None, params)


def published_report_by_token(session: Session, token: str) -> Report | None:
    """The report a QR code names, once issued (a draft's token names nothing in public)."""
    if not token or len(token) > 40:
        return None
    return session.scalars(
        select(Report).where(Report.verify_token == token, Report.state.in_(PUBLISHED_STATES)).limit(1)
    ).first()


def read_pdf_upload(stream: BinaryIO | None, max_bytes: int = MAX_VERIFY_UPLOAD_MB * 1024 * 1024) -> bytes:
    """An uploaded file to verify, read up to the limit: a PDF by its first bytes, not its name."""
    if stream is None:
        raise EmptyFile()
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise VerifyUploadTooLarge(limit_mb=max_bytes // (1024 * 1024))
    if not data:
        raise EmptyFile()
    if not data.startswith(PDF_MAGIC):
        raise NotAPdf()
    return data


def verify_report_file(session: Session, data: bytes, settings: Settings) -> VerificationOutcome:
    """Check a PDF against the lab's certificate and its record of issued reports. Whatever the
    bytes, the answer is an outcome; only a misconfigured lab certificate (the PKCS#12 of the
    settings unreadable) is an error, `SigningCertificateUnavailable`, since no file can be
    judged then."""
    sha256 = hashlib.sha256(data).hexdigest()
    check = check_signature(data, trusted_certificates(settings))
    if check.reason_code:
        return VerificationOutcome(VerificationStatus.INVALID, check.reason_code, sha256,
                                   signer_subject=check.signer_subject, signed_at=check.signed_at)
    report = report_by_pdf_hash(session, sha256)
    if report is None:
        return VerificationOutcome(VerificationStatus.UNKNOWN, "not_issued", sha256,
                                   signer_subject=check.signer_subject, signed_at=check.signed_at)
    standing = record_status(session, report, settings)
    return VerificationOutcome(standing.status, standing.reason_code, sha256, report=report,
                               superseded_by=standing.successor, signer_subject=check.signer_subject,
                               signed_at=check.signed_at, params=standing.params)
