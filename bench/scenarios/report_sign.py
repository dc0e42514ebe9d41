"""report_sign: the lab's PAdES signature with its visible CJK stamp on a ~6-page report PDF.

Size: samples on the report (default 20; at most 40, so the smoke test's shared 2,500 stays a
report of about a dozen pages). The PDF is a static report-shaped document rendered by WeasyPrint
in the setup: results tables of five sample columns × 25 parameters with Chinese headings, about
six A4 pages for 20 samples. Signing cost hardly depends on the content; it is the stamp's font
subset, the signature and hashing the file.

Setup (untimed, shared by both sides): one demo lab certificate (EC P-256) and the Noto Sans CJK
SC face extracted from the collection into a scratch data dir; the PDF rendered once.

Ours: `sign_report_pdf(pdf, signer, report_no=..., signatory_name=..., language="zh")` — the
stamp text, the PAdES metadata (certifying, no changes), the stamp style, pyHanko's signing.

Baseline: pyHanko alone with the same key: `PdfSigner(PdfSignatureMetadata(...same...),
SimpleSigner, stamp_style=TextStampStyle(...same font and text...)).sign_pdf(...)`. The stamp is
part of what we sign, so the fair baseline draws the same stamp with the same font (a bare sign
without a stamp would leave out the CJK subsetting both sides must do).

The runner compares: both outputs start with the rendered PDF, carry one signature in the same
field, on the same page, with the same stamp text (the time is fixed).
"""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from app.config import Settings
from app.core.pdf import render_pdf
from app.reports.signing import (
    SIGNATURE_FIELD,
    LabSigner,
    lab_signer,
    sign_report_pdf,
    signature_box,
    signature_metadata,
    stamp_style,
    stamp_text,
)
from bench.registry import BenchContext, Prepared, register

MAX_SAMPLES = 40
SAMPLES_PER_TABLE = 5
PARAMETERS = [
    "水温", "pH", "溶解氧", "高锰酸盐指数", "化学需氧量", "五日生化需氧量", "氨氮", "总磷", "总氮", "铜",
    "锌", "氟化物", "硒", "砷", "汞", "镉", "六价铬", "铅", "氰化物", "挥发酚", "石油类", "阴离子表面活性剂",
    "硫化物", "粪大肠菌群", "电导率",
]
REPORT_NO = "BG2026-0042"
SIGNATORY = "王签发"
SIGNED_AT = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


@cache
def _signer() -> LabSigner:
    """One certificate and font for both sides (a process signs with one lab key)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-report-sign-"))
    signer = lab_signer(Settings(data_dir=folder, database_url="sqlite://", secret_key="bench"),
                        lab_name="市生态环境监测中心")
    signer.font_file  # noqa: B018 — extract the stamp face now, not in the timed part
    return signer


@cache
def _report_pdf(samples: int) -> bytes:
    tables = []
    for first in range(0, samples, SAMPLES_PER_TABLE):
        numbers = [f"WS{(n % 4) + 1:02d}-261203-{n + 1:03d}" for n in range(first, min(first + SAMPLES_PER_TABLE,
                                                                                      samples))]
        head = "".join(f"<th>{no}</th>" for no in numbers)
        rows = "".join(
            f"<tr><th>{parameter}</th><td>HJ {500 + i}-2009</td>"
            + "".join(f"<td>{(i + 1) * 0.0137 * (k + 1):.3f}</td>" for k in range(len(numbers))) + "</tr>"
            for i, parameter in enumerate(PARAMETERS)
        )
        tables.append(f"<table><thead><tr><th>项目 Parameter</th><th>方法 Method</th>{head}</tr></thead>"
                      f"<tbody>{rows}</tbody></table>")
    html = ("<html><head><meta charset='utf-8'><link rel='stylesheet' href='pdf.css'>"
            "<style>table{width:100%;border-collapse:collapse;margin-bottom:2em;font-size:9pt}"
            "td,th{border:1px solid #444;padding:3pt}</style></head><body>"
            f"<h1>检验检测报告 {REPORT_NO}</h1><p>地表水例行监测 · 市生态环境局</p>"
            + "".join(tables) + "<p>检测结果仅对所检样品负责。</p></body></html>")
    return render_pdf(html)


def _prepare(ctx: BenchContext) -> tuple[LabSigner, bytes]:
    return _signer(), _report_pdf(max(1, min(ctx.size, MAX_SAMPLES)))


def _fingerprint(pdf: bytes):
    def fingerprint(signed: bytes) -> Any:
        from pyhanko.pdf_utils.reader import PdfFileReader

        reader = PdfFileReader(io.BytesIO(signed))
        signatures = reader.embedded_signatures
        widget = signatures[0].sig_field
        pages = reader.root["/Pages"]["/Kids"]
        on_last = widget["/P"].get_object() == pages[len(pages) - 1].get_object()
        return (signed.startswith(pdf), len(signatures), signatures[0].field_name, on_last,
                [float(v) for v in widget["/Rect"]], widget["/AP"]["/N"].data.count(b"/ActualText"))

    return fingerprint


def ours(ctx: BenchContext) -> Prepared:
    signer, pdf = _prepare(ctx)

    def run() -> bytes:
        return sign_report_pdf(pdf, signer, report_no=REPORT_NO, signatory_name=SIGNATORY, language="zh",
                               signed_at=SIGNED_AT)

    return Prepared(run, _fingerprint(pdf))


def baseline(ctx: BenchContext) -> Prepared:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec
    from pyhanko.sign.signers import PdfSigner

    signer, pdf = _prepare(ctx)
    metadata = signature_metadata(signer, report_no=REPORT_NO, signatory_name=SIGNATORY, language="zh")
    style = stamp_style(signer.font_file)
    text = stamp_text(lab_name=signer.lab_name, report_no=REPORT_NO, signatory_name=SIGNATORY, language="zh",
                      signed_at=SIGNED_AT, tz=signer.tz)

    def run() -> bytes:
        pdf_signer = PdfSigner(metadata, signer.signer, stamp_style=style,  # type: ignore[arg-type]
                               new_field_spec=SigFieldSpec(SIGNATURE_FIELD, on_page=-1, box=signature_box()))
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        return pdf_signer.sign_pdf(writer, appearance_text_params={"text": text}).getvalue()

    return Prepared(run, _fingerprint(pdf))


register(
    "report_sign",
    target=1.2,
    ours=ours,
    baseline=baseline,
    default_size=20,
    description="PAdES signing with the CJK stamp via sign_report_pdf vs pyHanko alone with the same key and stamp",
)
