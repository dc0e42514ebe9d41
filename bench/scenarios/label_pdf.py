"""label_pdf: an A4 PDF of 1,000 container labels, 24 to a sheet.

Size: ten units per label (default 10,000 = 1,000 labels), rounded up to whole samples of three
containers. A label costs WeasyPrint tens of milliseconds (layout and drawing), so a
size shared with the other scenarios (the smoke test's 2,500) stays a PDF of 250 labels rather
than a quarter of an hour of rendering.

Setup (untimed, each side): the registrar registers the client samples (three containers each)
through the service, and WeasyPrint's font configuration is loaded by rendering a one-line page
(fontconfig costs more than a page, and a real process loads it once).

Ours: `app.samples.labels.labels_pdf(session, samples, "a4")` in a `db.reading()` session — the
containers and site names in two queries, a `Label` per container, the Code 128 modules drawn as
inline SVG, the label-sheet template, and WeasyPrint.

Baseline: WeasyPrint alone rendering the same HTML as a static string (captured untimed from the
same call with the PDF step replaced): `HTML(string=html, base_url=static).write_pdf()` with the
same font configuration. What ours adds is reading the rows and building the labels and symbols.

The runner compares the number of pages and of labels of both PDFs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import select

from app.core import pdf
from app.core.web import STATIC_DIR
from app.samples import labels
from app.samples.models import Sample
from bench import samples_workload as workload
from bench.registry import BenchContext, Prepared, register

CONTAINERS_PER_SAMPLE = 3
SIZE_PER_LABEL = 10
_PAGE = re.compile(rb"/Type\s*/Page[^s]")


def _prepare(ctx: BenchContext) -> None:
    actor = workload.make_registrar(ctx.db)
    count = math.ceil(math.ceil(ctx.size / SIZE_PER_LABEL) / CONTAINERS_PER_SAMPLE)
    workload.register(ctx.db, actor, workload.client_samples(count), 1_000)
    pdf.render_pdf("<p>warm-up</p>")


def _samples(ctx: BenchContext) -> list[Sample]:
    with ctx.db.transaction() as session:  # committed, not rolled back: the rows stay loaded
        return list(session.scalars(select(Sample).order_by(Sample.id)))


def pages_of(data: bytes) -> int:
    return len(_PAGE.findall(data))


def ours(ctx: BenchContext) -> Prepared:
    _prepare(ctx)
    samples = _samples(ctx)

    def run() -> bytes:
        with ctx.db.reading() as session:
            return labels.labels_pdf(session, samples, "a4")

    return Prepared(run, lambda data: (pages_of(data), len(samples) * CONTAINERS_PER_SAMPLE))


def _captured_html(ctx: BenchContext, samples: list[Sample]) -> str:
    captured: list[str] = []
    original = pdf.render_pdf

    def capture(html: str, **_kwargs: Any) -> bytes:
        captured.append(html)
        return b""

    pdf.render_pdf = capture
    try:
        with ctx.db.reading() as session:
            labels.labels_pdf(session, samples, "a4")
    finally:
        pdf.render_pdf = original
    return captured[0]


def baseline(ctx: BenchContext) -> Prepared:
    from weasyprint import HTML

    _prepare(ctx)
    samples = _samples(ctx)
    html = _captured_html(ctx, samples)
    base = STATIC_DIR.resolve().as_uri() + "/"
    fonts = pdf.font_config()

    def run() -> bytes:
        return HTML(string=html, base_url=base).write_pdf(font_config=fonts)

    return Prepared(run, lambda data: (pages_of(data), html.count('<div class="label ')))


register(
    "label_pdf",
    target=1.5,
    ours=ours,
    baseline=baseline,
    default_size=10_000,
    description="1,000 container labels on A4 sheets via labels.labels_pdf vs WeasyPrint on the same HTML",
)
