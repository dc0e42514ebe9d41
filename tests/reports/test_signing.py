"""The lab's digital signature: the demo certificate made once, a production PKCS#12 loaded (or
refused clearly), and PAdES signing with a visible CJK stamp that validates against the lab's
certificate and keeps the rendered PDF's bytes at the head of the signed file."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.x509.oid import NameOID

from app.config import Settings
from app.core.event_loop import outside_event_loop
from app.core.pdf import render_pdf
from app.reports.document import SIGNATURE_BOX
from app.reports.signing import (
    SIGNATURE_FIELD,
    STAMP_FACE,
    ReportSigningFailed,
    SigningCertificateUnavailable,
    ensure_demo_certificate,
    lab_signer,
    sign_report_pdf,
    stamp_font,
)


def settings_in(folder: Path, **overrides) -> Settings:
    return Settings(data_dir=folder, database_url="sqlite://", secret_key="k", **overrides)


def minimal_pdf() -> bytes:
    """A one-page PDF written by hand (not WeasyPrint): signing must not depend on the producer."""
    stream = b"BT /F1 12 Tf 72 720 Td (hello) Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def validate(signed: bytes, signer):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(signed))
    assert len(reader.embedded_signatures) == 1
    embedded = reader.embedded_signatures[0]
    context = ValidationContext(trust_roots=signer.trust_roots(), allow_fetching=False)
    return embedded, outside_event_loop(validate_pdf_signature, embedded, context)


def make_pkcs12(path: Path, password: bytes, *, organisation: str = "某市生态环境监测站",
                not_after: datetime | None = None) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Report signing"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.LOCALITY_NAME, "哈尔滨")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=400))
                   .not_valid_after(not_after or now + timedelta(days=365)).sign(key, hashes.SHA256()))
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"lab", key, certificate, None,
                                                           BestAvailableEncryption(password)))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signing")


@pytest.fixture(scope="module")
def demo_signer(demo_dir: Path):
    return lab_signer(settings_in(demo_dir), lab_name="市生态环境监测中心")


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    return render_pdf("<h1>检测报告</h1>" + "<p>报告内容 report text</p>" * 120)


# ---------------------------------------------------------------- the certificate


def test_the_demo_certificate_is_made_once_in_the_data_dir(tmp_path):
    settings = settings_in(tmp_path)
    path = ensure_demo_certificate(settings, "市生态环境监测中心")
    assert path == tmp_path / "signing" / "demo-lab.p12"
    assert path.stat().st_mode & 0o777 == 0o600
    key, certificate, _ = pkcs12.load_key_and_certificates(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "市生态环境监测中心 (demo)"
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "市生态环境监测中心"
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3655)
    pem = x509.load_pem_x509_certificate((tmp_path / "signing" / "demo-lab.pem").read_bytes())
    assert pem == certificate
    first = lab_signer(settings).fingerprint
    ensure_demo_certificate(settings, "another name")  # exists: kept, not replaced
    assert lab_signer(settings).fingerprint == first
    assert lab_signer(settings).demo and lab_signer(settings).lab_name == "市生态环境监测中心"


def test_a_pkcs12_from_the_settings_is_loaded_with_its_password(tmp_path):
    make_pkcs12(tmp_path / "lab.p12", b"s3cret")
    signer = lab_signer(settings_in(tmp_path / "var", report_pkcs12_file=tmp_path / "lab.p12",
                                    report_pkcs12_password="s3cret"))
    assert not signer.demo
    assert signer.lab_name == "某市生态环境监测站" and signer.location == "哈尔滨"
    assert not (tmp_path / "var" / "signing").exists()  # no demo certificate beside a real one
    signed = sign_report_pdf(minimal_pdf(), signer, report_no="BG2026-0007", signatory_name="王五", language="zh")
    _, status = validate(signed, signer)
    assert status.bottom_line


@pytest.mark.parametrize("case", ["wrong password", "missing file", "not a PKCS#12", "expired"])
def test_an_unusable_pkcs12_is_a_clear_refusal(tmp_path, case):
    path = tmp_path / "lab.p12"
    password = "s3cret"
    if case == "wrong password":
        make_pkcs12(path, b"s3cret")
        password = "guess"
    elif case == "not a PKCS#12":
        path.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    elif case == "expired":
        make_pkcs12(path, b"s3cret", not_after=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(SigningCertificateUnavailable) as refused:
        lab_signer(settings_in(tmp_path / "var", report_pkcs12_file=path, report_pkcs12_password=password))
    assert refused.value.code == "signing_certificate_unavailable"
    assert str(path) in refused.value.message("en") and "证书" in refused.value.message("zh_CN")


def test_the_stamp_font_is_one_simplified_chinese_face_extracted_once(tmp_path):
    from fontTools.ttLib import TTFont

    settings = settings_in(tmp_path)
    path = stamp_font(settings)
    assert path.parent == tmp_path / "fonts"
    face = TTFont(str(path), lazy=True)
    assert face["name"].getDebugName(6) == STAMP_FACE
    assert ord("签") in face.getBestCmap()
    modified = path.stat().st_mtime_ns
    assert stamp_font(settings) == path and path.stat().st_mtime_ns == modified


# ---------------------------------------------------------------- signing


def test_a_signed_report_validates_against_the_lab_certificate(demo_signer, report_pdf):
    from pyhanko.sign.validation.status import ModificationLevel, SignatureCoverageLevel

    signed = sign_report_pdf(report_pdf, demo_signer, report_no="BG2026-0001", signatory_name="张三",
                             language="zh")
    assert signed.startswith(report_pdf)  # an incremental update: the rendering is kept byte for byte
    embedded, status = validate(signed, demo_signer)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.modification_level == ModificationLevel.NONE
    assert status.md_algorithm == "sha256"
    assert embedded.field_name == SIGNATURE_FIELD
    sig = embedded.sig_object
    assert sig["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    assert "BG2026-0001" in str(sig["/Reason"]) and str(sig["/Name"]) == "张三"
    assert embedded.sig_field.get("/V") is not None
    assert "/DocMDP" in embedded.reader.root["/Perms"]  # certifying: no changes permitted


def _stamp(signed: bytes):
    """The signature widget, the page it sits on, and its appearance stream's decoded bytes."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(signed))
    embedded = reader.embedded_signatures[0]
    widget = embedded.sig_field
    pages = [reader.root["/Pages"]["/Kids"][i] for i in range(len(reader.root["/Pages"]["/Kids"]))]
    appearance = widget["/AP"]["/N"]
    return widget, pages, appearance


def test_the_visible_stamp_is_drawn_on_the_last_page_with_an_embedded_cjk_subset(demo_signer, report_pdf):
    signed = sign_report_pdf(report_pdf, demo_signer, report_no="BG2026-0002", signatory_name="张三",
                             language="zh")
    widget, pages, appearance = _stamp(signed)
    assert len(pages) > 1
    assert [float(v) for v in widget["/Rect"]] == [float(v) for v in SIGNATURE_BOX]  # left free by the report
    assert widget["/P"].get_object() == pages[-1].get_object()
    assert any(a.get_object() == widget for a in pages[-1].get_object()["/Annots"])
    found = []

    def walk(stream, depth=0):
        resources = stream.get("/Resources", {})
        for font in resources.get("/Font", {}).values():
            found.append(font.get_object())
        for inner in resources.get("/XObject", {}).values():
            if depth < 4:
                walk(inner.get_object(), depth + 1)

    walk(appearance)
    assert found
    font = found[0]
    assert font["/Subtype"] == "/Type0"
    descendant = font["/DescendantFonts"][0].get_object()
    assert str(descendant["/BaseFont"]).endswith("+" + STAMP_FACE)  # a subset (XXXXXX+ prefix)
    embedded_program = descendant["/FontDescriptor"]["/FontFile3"].get_object().data
    assert len(embedded_program) < 200_000  # the glyphs used, not the 16 MB face
    lines = stamp_lines(appearance)  # ActualText: the stamp reads as text
    assert lines[:4] == ["电子签名 / Digitally signed", "市生态环境监测中心", "签发 / Approved: 张三",
                         "报告编号 / Report: BG2026-0002"]


def stamp_lines(appearance) -> list[str]:
    """The stamp's lines, read from the /ActualText of each shaped line (PDF literal strings)."""
    escapes = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}

    def literal(raw: bytes) -> bytes:
        return re.sub(rb"\\([0-7]{1,3}|.)",
                      lambda m: bytes([int(m[1], 8)]) if m[1][:1].isdigit() else escapes.get(m[1], m[1]),
                      raw, flags=re.S)

    raw_strings = re.findall(rb"/ActualText \((.*?)\)\n>>", appearance.data, flags=re.S)
    decoded = [literal(raw) for raw in raw_strings]  # UTF-16 with its BOM, or PDFDocEncoding (ASCII here)
    return [d.decode("utf-16") if d.startswith(b"\xfe\xff") else d.decode("latin-1") for d in decoded]


def test_an_english_report_gets_an_english_stamp(demo_signer):
    signed = sign_report_pdf(minimal_pdf(), demo_signer, report_no="BG2026-0003", signatory_name="Li Si",
                             language="en", signed_at=datetime(2026, 12, 4, 2, 0, tzinfo=UTC))
    _, _, appearance = _stamp(signed)
    assert stamp_lines(appearance) == ["Digitally signed", "市生态环境监测中心", "Approved by: Li Si",
                                       "Report: BG2026-0003", "2026-12-04 10:00:00 UTC+08:00"]  # lab time


def test_a_hand_written_pdf_is_signed_too(demo_signer):
    pdf = minimal_pdf()
    signed = sign_report_pdf(pdf, demo_signer, report_no="BG2026-0004", signatory_name="张三", language="zh")
    assert signed.startswith(pdf)
    _, status = validate(signed, demo_signer)
    assert status.bottom_line


def test_another_labs_certificate_does_not_vouch_for_our_signature(demo_signer, tmp_path):
    other = lab_signer(settings_in(tmp_path), lab_name="别的实验室")
    signed = sign_report_pdf(minimal_pdf(), other, report_no="BG2026-0005", signatory_name="张三", language="zh")
    _, status = validate(signed, demo_signer)
    assert status.intact and not status.trusted and not status.bottom_line


@pytest.mark.parametrize("data", [b"", b"hello", b"PK\x03\x04zip", b"%PDF-1.7\ngarbage"])
def test_what_is_not_a_readable_pdf_is_refused(demo_signer, data):
    with pytest.raises(ReportSigningFailed) as refused:
        sign_report_pdf(data, demo_signer, report_no="BG2026-0006", signatory_name="张三", language="zh")
    assert refused.value.code == "report_signing_failed"


def test_a_changed_byte_breaks_the_signature(demo_signer, report_pdf):
    signed = bytearray(sign_report_pdf(report_pdf, demo_signer, report_no="BG2026-0008",
                                       signatory_name="张三", language="zh"))
    start = report_pdf.index(b"stream\n") + 20  # inside the first compressed stream
    signed[start] ^= 0x01
    _, status = validate(bytes(signed), demo_signer)
    assert not status.intact and not status.bottom_line



def test_a_pdfa_report_keeps_its_pdfa_identification_when_signed(demo_signer):
    """The signature is an incremental update that keeps the XMP's PDF/A-3b identification and
    updates the XMP with the Info dictionary (PDF/A wants the two to agree)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    pdf = render_pdf("<h1>检测报告</h1><p>氨氮 0.512 mg/L</p>", pdf_variant="pdf/a-3b")
    signed = sign_report_pdf(pdf, demo_signer, report_no="BG2026-0009", signatory_name="张三", language="zh")
    reader = PdfFileReader(io.BytesIO(signed))
    xmp = reader.root["/Metadata"].data.decode("utf-8")
    assert re.search(r'pdfaid:part(="|>)3', xmp) and re.search(r'pdfaid:conformance(="|>)B', xmp)
    producer = str(reader.trailer_view["/Info"]["/Producer"])
    xmp_producer = re.search(r'pdf:Producer(?:="([^"]*)"|>([^<]*)<)', xmp)
    assert "pyHanko" in producer and producer in xmp_producer.groups()
    _, status = validate(signed, demo_signer)
    assert status.bottom_line


def test_signing_works_where_an_event_loop_already_runs(demo_signer):
    """pyHanko's sync API starts its own loop: called from a coroutine (a worker, or a process
    where Playwright keeps a loop) it would refuse; the call moves to a thread of its own."""
    import asyncio

    pdf = minimal_pdf()

    async def inside_a_loop() -> bytes:
        return sign_report_pdf(pdf, demo_signer, report_no="BG2026-0005", signatory_name="张三", language="zh")

    # a loop of the test's own, in a thread of its own: this worker may already hold Playwright's
    # running loop from an earlier browser test, where asyncio.run itself would refuse
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        signed = pool.submit(asyncio.run, inside_a_loop()).result(timeout=120)
    assert signed.startswith(pdf)
    _, status = validate(signed, demo_signer)
    assert status.intact and status.valid
