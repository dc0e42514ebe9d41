"""The lab's digital signature on an issued report: PAdES (pyHanko), with a visible stamp.

A report leaves the lab as a PDF signed with the lab's certificate (issue 9 §4): production loads
the PKCS#12 named in settings (`LIMS_REPORT_PKCS12_FILE` / `_PASSWORD`); without one a
self-signed **demo** certificate is created once in `<data dir>/signing/` so a demo or a test lab
signs like a real one. The signature is an incremental update (the signed file starts with the
rendered PDF's bytes, so the approved rendering stays byte-for-byte inside it) and a certifying
signature that permits no changes: any later edit, even an appended revision, shows as a change.

The stamp on the last page is drawn with one face (Simplified Chinese) extracted from the Noto
CJK collection and saved once in the data dir; pyHanko embeds only the glyphs the stamp uses.

The demo key is stored **unencrypted with mode 0600**: one file written atomically (created
under a temporary name, then linked into place, so two processes starting at once agree on one
certificate); a passphrase kept beside the key in another 0600 file would protect nothing more,
and a second file could disagree with the first after a crash between the two writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.config import Settings
from app.core.errors import DomainError, InvalidInput
from app.core.event_loop import outside_event_loop

SIGNATURE_FIELD = "LabSignature"
DEMO_DIR = "signing"
DEMO_P12 = "demo-lab.p12"
DEMO_PEM = "demo-lab.pem"
DEMO_YEARS = 10
DEFAULT_LAB_NAME = "EnviroLIMS"

# The Noto CJK collection (Debian/Ubuntu fonts-noto-cjk; Fedora; Arch) and the face we draw with.
CJK_COLLECTIONS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),
)
STAMP_FACE = "NotoSansCJKsc-Regular"
STAMP_FONT_SIZE = 8
STAMP_LEADING = 10


class SigningCertificateUnavailable(DomainError):
    """The configured PKCS#12 cannot be used: nothing is signed with a wrong or missing key."""

    code = "signing_certificate_unavailable"
    http_status = 503
    message_zh = "无法使用实验室签名证书：{detail_zh}"
    message_en = "The lab's signing certificate cannot be used: {detail_en}"


class StampFontUnavailable(DomainError):
    code = "stamp_font_unavailable"
    http_status = 503
    message_zh = "找不到签名印章所需的 Noto Sans CJK 字体（请安装 fonts-noto-cjk）。"
    message_en = "The Noto Sans CJK font for the signature stamp is missing (install fonts-noto-cjk)."


class ReportSigningFailed(InvalidInput):
    code = "report_signing_failed"
    message_zh = "报告 PDF 无法签名：{detail}"
    message_en = "The report PDF could not be signed: {detail}"


# ---------------------------------------------------------------- the lab's certificate


@dataclass(frozen=True)
class LabSigner:
    """The key and certificate the lab signs reports with, and what the stamp and the
    verification need to know about them."""

    signer: object  # pyhanko SimpleSigner
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    lab_name: str
    location: str
    demo: bool
    source: Path
    data_dir: Path
    tz: ZoneInfo

    @property
    def font_file(self) -> Path:
        """The stamp's font, extracted on the first signature (verification never needs it)."""
        return _stamp_font_in(self.data_dir)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (what a client compares with the lab's published one)."""
        return hashlib.sha256(self.certificate_der).hexdigest()

    @property
    def subject(self) -> str:
        from cryptography import x509

        return x509.load_der_x509_certificate(self.certificate_der).subject.rfc4514_string()

    def trust_roots(self) -> list[object]:
        """The lab's certificate and the chain it came with, as asn1crypto certificates: a
        report is genuine when its signature chains to one of these (not to any public CA)."""
        from asn1crypto import x509 as asn1_x509

        return [asn1_x509.Certificate.load(der) for der in (self.certificate_der, *self.chain_der)]


def _unavailable(zh: str, en: str) -> SigningCertificateUnavailable:
    return SigningCertificateUnavailable(detail_zh=zh, detail_en=en)


def lab_signer(settings: Settings, *, lab_name: str | None = None) -> LabSigner:
    """The lab's signer: the PKCS#12 of the settings, else the demo certificate in the data dir
    (created on first use, named after `lab_name`)."""
    if settings.report_pkcs12_file is not None:
        path = settings.report_pkcs12_file.expanduser()
        try:
            data = path.read_bytes()
        except OSError:
            raise _unavailable(f"无法读取 PKCS#12 文件 {path}。", f"the PKCS#12 file {path} cannot be read.") from None
        password = settings.report_pkcs12_password.encode("utf-8") or None
        return _signer_from_pkcs12(settings, data, password, source=path, demo=False)
    path = ensure_demo_certificate(settings, lab_name or DEFAULT_LAB_NAME)
    return _signer_from_pkcs12(settings, path.read_bytes(), None, source=path, demo=True)


def _signer_from_pkcs12(settings: Settings, data: bytes, password: bytes | None, *,
                        source: Path, demo: bool) -> LabSigner:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
    from cryptography.x509.oid import NameOID
    from pyhanko.sign.signers import SimpleSigner

    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise _unavailable(f"PKCS#12 文件 {source} 无法打开（密码错误或文件损坏）。",
                           f"the PKCS#12 file {source} cannot be opened (wrong password or damaged file).") from None
    if key is None or certificate is None:
        raise _unavailable(f"PKCS#12 文件 {source} 中没有私钥和证书。",
                           f"the PKCS#12 file {source} holds no key with its certificate.")
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise _unavailable(f"{source} 中的证书有效期为 {certificate.not_valid_before_utc:%Y-%m-%d} 至 "
                           f"{certificate.not_valid_after_utc:%Y-%m-%d}，当前不在有效期内。",
                           f"the certificate in {source} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} "
                           f"to {certificate.not_valid_after_utc:%Y-%m-%d}, not now.")
    try:
        signer = SimpleSigner.load_pkcs12_data(data, [], passphrase=password)
    except ValueError:
        raise _unavailable(f"PKCS#12 文件 {source} 的密钥类型不受支持。",
                           f"the key in the PKCS#12 file {source} is of an unsupported type.") from None

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = certificate.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    lab = attribute(NameOID.ORGANIZATION_NAME) or attribute(NameOID.COMMON_NAME) or DEFAULT_LAB_NAME
    location = ", ".join(v for v in (attribute(NameOID.LOCALITY_NAME), attribute(NameOID.STATE_OR_PROVINCE_NAME)) if v)
    return LabSigner(
        signer=signer,
        certificate_der=certificate.public_bytes(Encoding.DER),
        chain_der=tuple(c.public_bytes(Encoding.DER) for c in chain),
        lab_name=lab, location=location, demo=demo, source=source,
        data_dir=settings.ensure_data_dir(), tz=settings.tz,
    )


def ensure_demo_certificate(settings: Settings, lab_name: str) -> Path:
    """`<data dir>/signing/demo-lab.p12` (and the certificate as `demo-lab.pem` to hand to
    whoever verifies offline), created once: EC P-256, self-signed, CN "<lab> (demo)", O the
    lab, valid 10 years, digitalSignature + nonRepudiation."""
    folder = settings.ensure_data_dir() / DEMO_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    p12 = folder / DEMO_P12
    if not p12.exists():
        _create_demo_pkcs12(p12, lab_name)
    pem = folder / DEMO_PEM
    if not pem.exists():
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

        _, certificate, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), None)
        assert certificate is not None
        _write_new(pem, certificate.public_bytes(Encoding.PEM), mode=0o644)
    return p12


def _create_demo_pkcs12(target: Path, lab_name: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12
    from cryptography.x509.oid import NameOID

    lab = (lab_name or DEFAULT_LAB_NAME).strip()[:50] or DEFAULT_LAB_NAME  # X.520 ub-common-name 64
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{lab} (demo)"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, lab),
    ])
    now = datetime.now(UTC).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * DEMO_YEARS + DEMO_YEARS // 4))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    data = pkcs12.serialize_key_and_certificates(b"demo-lab", key, certificate, None, NoEncryption())
    _write_new(target, data, mode=0o600)


def _write_new(target: Path, data: bytes, *, mode: int) -> None:
    """Write `target` once: a complete file under a temporary name, then linked into place; if
    another process got there first, theirs is kept (both would do)."""
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".new-")
    temp = Path(temp_name)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process got there first: theirs
            os.link(temp, target)
    finally:
        temp.unlink(missing_ok=True)


# ---------------------------------------------------------------- the stamp's font


def _cjk_collection() -> Path:
    for candidate in CJK_COLLECTIONS:
        if candidate.is_file():
            return candidate
    try:  # elsewhere: ask fontconfig where the collection is
        found = subprocess.run(["fc-match", "-f", "%{file}", "Noto Sans CJK SC"], capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found.endswith((".ttc", ".otc", ".otf")) and "CJK" in found and Path(found).is_file():
        return Path(found)
    raise StampFontUnavailable()


def stamp_font(settings: Settings) -> Path:
    """The Simplified Chinese face of Noto Sans CJK as a single-face OpenType file in the data
    dir (pyHanko subsets one face, not a collection), extracted on first use."""
    return _stamp_font_in(settings.ensure_data_dir())


def _stamp_font_in(data_dir: Path) -> Path:
    target = data_dir / "fonts" / f"{STAMP_FACE}.otf"
    if target.is_file():
        return target
    source = _cjk_collection()
    target.parent.mkdir(exist_ok=True)
    if source.suffix.lower() == ".otf":
        _write_new(target, source.read_bytes(), mode=0o644)
        return target
    from fontTools.ttLib import TTCollection

    collection = TTCollection(str(source), lazy=True)
    faces = [face for face in collection.fonts if face["name"].getDebugName(6) == STAMP_FACE]
    if not faces:
        raise StampFontUnavailable()
    buffer = io.BytesIO()
    faces[0].save(buffer)
    _write_new(target, buffer.getvalue(), mode=0o644)
    return target


# ---------------------------------------------------------------- signing


def stamp_style(font_file: Path) -> object:
    """The stamp: a thin frame, the text left-aligned, shrunk to fit the box if a name is long."""
    from pyhanko.pdf_utils import layout
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    return TextStampStyle(
        stamp_text="%(text)s",
        text_box_style=TextBoxStyle(
            font=GlyphAccumulatorFactory(str(font_file), font_size=STAMP_FONT_SIZE),
            font_size=STAMP_FONT_SIZE, leading=STAMP_LEADING,
            box_layout_rule=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MIN, y_align=layout.AxisAlignment.ALIGN_MID,
                margins=layout.Margins.uniform(0),
            ),
        ),
        border_width=1,
        border_color=(0.6, 0.1, 0.1),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN, y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(8),
        ),
    )


def _local_time(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]}"


def stamp_text(*, lab_name: str, report_no: str, signatory_name: str, language: str, signed_at: datetime,
               tz: ZoneInfo) -> str:
    """What the stamp says: Chinese reports bilingual (as their labels are), English ones English."""
    when = _local_time(signed_at, tz)
    if language == "en":
        return "\n".join(["Digitally signed", lab_name, f"Approved by: {signatory_name}",
                          f"Report: {report_no}", when])
    return "\n".join(["电子签名 / Digitally signed", lab_name, f"签发 / Approved: {signatory_name}",
                      f"报告编号 / Report: {report_no}", when])


def signature_metadata(signer: LabSigner, *, report_no: str, signatory_name: str, language: str) -> object:
    """PAdES baseline, SHA-256, certifying with no changes permitted after it."""
    from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
    from pyhanko.sign.signers import PdfSignatureMetadata

    reason = f"Test report {report_no} issued" if language == "en" else f"检验检测报告 {report_no} 签发"
    return PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256",
        reason=reason, location=signer.location or signer.lab_name, name=signatory_name,
        certify=True, docmdp_permissions=MDPPerm.NO_CHANGES,
    )


def _agree_on_producer(writer: Any) -> None:
    """PDF/A wants each Info entry equal to its XMP counterpart. pyHanko's update writes its own
    name as the XMP producer but appends it to the Info producer ("WeasyPrint 70.0; pyHanko
    ..."): name the producer alike in both when the document carries XMP."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.metadata.model import VENDOR

    if "/Metadata" not in writer.root:
        return
    try:
        info_ref = writer.trailer.raw_get("/Info")
    except KeyError:
        return
    if isinstance(info_ref, generic.IndirectObject):
        info_ref.get_object()["/Producer"] = generic.TextStringObject(VENDOR)
        writer.mark_update(info_ref)


def signature_box() -> tuple[int, int, int, int]:
    """Where the stamp goes on the last page (x1, y1, x2, y2 in points from the bottom left):
    the corner the printed report leaves free for it."""
    from app.reports.document import SIGNATURE_BOX

    return SIGNATURE_BOX


def sign_report_pdf(pdf: bytes, signer: LabSigner, *, report_no: str, signatory_name: str, language: str,
                    signed_at: datetime | None = None, box: tuple[int, int, int, int] | None = None) -> bytes:
    """The PDF signed by the lab (PAdES, visible stamp on the last page at `box`, by default the
    printed report's `SIGNATURE_BOX`); the result begins with `pdf`'s bytes unchanged."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.fields import SigFieldSpec
    from pyhanko.sign.general import SigningError
    from pyhanko.sign.signers import PdfSigner

    if not pdf.startswith(b"%PDF-"):
        raise ReportSigningFailed(detail="not a PDF")
    text = stamp_text(lab_name=signer.lab_name, report_no=report_no, signatory_name=signatory_name,
                      language=language, signed_at=signed_at or datetime.now(UTC), tz=signer.tz)
    pdf_signer = PdfSigner(
        signature_metadata(signer, report_no=report_no, signatory_name=signatory_name, language=language),
        signer.signer,  # type: ignore[arg-type]
        stamp_style=stamp_style(signer.font_file),  # type: ignore[arg-type]
        new_field_spec=SigFieldSpec(SIGNATURE_FIELD, on_page=-1, box=box or signature_box()),
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        if writer.prev.encrypted:
            raise ReportSigningFailed(detail="the PDF is encrypted")
        _agree_on_producer(writer)
        output = outside_event_loop(pdf_signer.sign_pdf, writer, appearance_text_params={"text": text})
    except (PdfError, SigningError, ValueError, KeyError, IndexError) as exc:
        raise ReportSigningFailed(detail=type(exc).__name__ + ": " + str(exc)[:200]) from None
    return output.getvalue()
