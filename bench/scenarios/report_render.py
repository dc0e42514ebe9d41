"""report_render: the PDF of a test report of 20 samples × 25 parameters (6 A4 pages).

Size: 125 units per sample (default 2,500 = 20 samples), so the size the smoke test shares with
the other scenarios (2,500) is the real report, not a 100-sample one of half a minute.

Setup (untimed, each side): the world of `bench.report_workload` — the lab, the cast, a CMA
certificate covering every item, four river sections, 20 methods with a submitted batch each,
500 results, GB 3838-2002, the report with its compile/check/review signatures and a holding-time
deviation — WeasyPrint's font configuration loaded by rendering a line in each face the report
uses (fontconfig and the CJK faces cost more than a page, and a real process loads them once),
and the report template compiled (the app compiles it once per process).

Ours: in a `db.reading()` session, the report row, `load_content` (the result of record of every
parameter of every sample), and `render_report_pdf`: the CMA scope in force and the mark, the
evaluation against the version of GB 3838-2002 in force on each sampling day, deviations,
signers, every value rounded once (GB/T 8170) with the below-MDL style, the QR code, the Jinja
template, and WeasyPrint writing PDF/A-3b with Noto Sans/Serif CJK subsets (HarfBuzz subsetter).

Baseline: WeasyPrint alone rendering the same HTML as a static string (built untimed by the same
code): `HTML(string=html, base_url=static).write_pdf(font_config=..., pdf_variant="pdf/a-3b")`
with the same font configuration and the same PDF variant. What ours adds is reading the
records and deciding what the report says.

The runner compares the page counts of both PDFs.
"""

from __future__ import annotations

import math
from datetime import date
from io import BytesIO

from app.core import pdf
from app.core.web import STATIC_DIR
from app.reports import document
from app.reports.content import load_content
from app.reports.models import Report
from bench import report_workload as workload
from bench.registry import BenchContext, Prepared, register

SIZE_PER_SAMPLE = 125
APPROVED_ON = date(2026, 12, 4)
AUDIT_SEQ, AUDIT_HASH = 123456, "9f" * 32


# every face the report uses (sans regular and bold, serif bold, mono regular and bold)
WARM_UP = ('<link rel="stylesheet" href="pdf.css"><h1>预热</h1><p>中文 <b>粗体</b> English '
           '<span class="mono">BG2026 <b>0001</b></span></p>')


def pages_of(data: bytes) -> int:
    """The page count from the page tree (PDF/A-3b keeps page objects in compressed streams)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    return int(PdfFileReader(BytesIO(data)).root["/Pages"]["/Count"])


def _prepare(ctx: BenchContext) -> workload.ReportWorld:
    world = workload.make_report_world(ctx.db, samples=max(1, math.ceil(ctx.size / SIZE_PER_SAMPLE)))
    pdf.render_pdf(WARM_UP)
    pdf.print_templates().get_template(document.TEMPLATE)  # compiled once per process, as in the app
    return world


def ours(ctx: BenchContext) -> Prepared:
    world = _prepare(ctx)

    def run() -> bytes:
        with ctx.db.reading() as session:
            report = session.get(Report, world.report_id)
            return document.render_report_pdf(session, report, load_content(session, report),
                                              signatory=world.signatory, approved_on=APPROVED_ON,
                                              audit_seq=AUDIT_SEQ, audit_hash=AUDIT_HASH)

    return Prepared(run, lambda data: pages_of(data))


def baseline(ctx: BenchContext) -> Prepared:
    from weasyprint import HTML

    world = _prepare(ctx)
    with ctx.db.reading() as session:
        report = session.get(Report, world.report_id)
        built = document.build_document(session, report, load_content(session, report), signatory=world.signatory,
                                        approved_on=APPROVED_ON, audit_seq=AUDIT_SEQ, audit_hash=AUDIT_HASH)
        html = document.report_html(built, tz=ctx.db.calendar.tz)
    base = STATIC_DIR.resolve().as_uri() + "/"
    fonts = pdf.font_config()

    def run() -> bytes:
        return HTML(string=html, base_url=base).write_pdf(font_config=fonts, pdf_variant=document.PDF_VARIANT)

    return Prepared(run, lambda data: pages_of(data))


register(
    "report_render",
    target=1.5,
    ours=ours,
    baseline=baseline,
    default_size=2_500,
    description="a 20-sample × 25-parameter report via render_report_pdf vs WeasyPrint on the same HTML",
)
