"""Printable documents: HTML rendered to PDF by WeasyPrint.

Every printout (traceability statements, labels, original records, signed reports) is a Jinja
template extending `pdf_base.html` (A4, the lab's name and CMA number at the top of every page,
page X of Y and the printing time at the bottom), rendered with `render_document` into bytes.

Printed labels are bilingual, Chinese first, as Chinese certificates are laid out: in these
templates `_()` prints the label in the document's language and, for a Chinese document whose
catalogue has the translation, the English source after it (`<span class="en">`). `gettext()`
prints the document's language only: use it for the <title>, attributes and the page footer.

Fonts: the Noto CJK fonts (scripts/setup.sh installs fonts-noto-cjk) are named first in the
print stylesheet, so Chinese is embedded as text, never as tofu. WeasyPrint's font configuration
(fontconfig + Pango font map) is built once per process; rendering is serialised by a lock since
fontconfig and the shared font map are not thread-safe and routes run in a thread pool.
Resources are only read from the static directory or data: URIs, never from the network.
"""

from __future__ import annotations

import threading
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup
from sqlalchemy.orm import Session

from app.core import i18n
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.web import STATIC_DIR, template_dirs

# The stacks the print stylesheet uses (static/pdf.css); exported for documents with own CSS.
SANS_FONTS = '"Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans", "DejaVu Sans", sans-serif'
SERIF_FONTS = '"Noto Serif CJK SC", "Source Han Serif SC", "Noto Serif", "DejaVu Serif", serif'
MONO_FONTS = '"DejaVu Sans Mono", "Noto Sans Mono CJK SC", monospace'

_render_lock = threading.Lock()


@cache
def font_config() -> Any:
    """WeasyPrint's FontConfiguration, created once: loading fontconfig costs more than a page."""
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


@cache
def _url_fetcher() -> Any:
    from weasyprint.urls import URLFetcher

    static_root = STATIC_DIR.resolve()

    class StaticOnlyFetcher(URLFetcher):
        """data: URIs and files under static/ only: a printout never reaches out to a network or
        reads the data directory, whatever a template or a value in it says."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            parts = urlsplit(url)
            if parts.scheme == "file":
                path = Path(unquote(parts.path)).resolve()
                if not path.is_relative_to(static_root):
                    raise ValueError(f"not a static file: {url}")
            elif parts.scheme != "data":
                raise ValueError(f"refused to fetch {url}")
            return super().fetch(url, headers)

    return StaticOnlyFetcher(allowed_protocols=("file", "data"), timeout=5)


def render_pdf(html: str, *, base_url: str | None = None, pdf_variant: str | None = None) -> bytes:
    """The PDF of an HTML document. Relative URLs resolve against `base_url`, by default the
    static directory (so `href="pdf.css"` finds static/pdf.css). `pdf_variant` names one of
    WeasyPrint's variants, e.g. "pdf/a-3b" for an archival report (sRGB output intent, XMP
    metadata with the PDF/A identification, file identifier)."""
    from weasyprint import HTML

    base = base_url or STATIC_DIR.resolve().as_uri() + "/"
    with _render_lock:
        document = HTML(string=html, base_url=base, url_fetcher=_url_fetcher())
        return document.write_pdf(font_config=font_config(), pdf_variant=pdf_variant)


# ---------------------------------------------------------------- templates for print


@pass_context
def _bilingual(context: Context, message: str, **variables: Any) -> Markup:
    """`_()` in printouts: the document's language, and the English source after a Chinese
    translation (labels stay readable to both the lab and a foreign client or assessor)."""
    local = context.call(context.resolve("gettext"), message, **variables)
    if not i18n.is_chinese():
        return local
    english = Markup(message) % variables
    if str(english) == str(local):
        return local
    return Markup('{}<span class="en">{}</span>').format(local, english)


@pass_context
def _localtime(context: Context, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """The lab's local time (the document's `tz`, from `print_context`)."""
    if value is None:
        return ""
    tz = context.get("tz") or ZoneInfo("Asia/Shanghai")
    return value.astimezone(tz).strftime(fmt)


@cache
def print_templates() -> Environment:
    """The Jinja environment for printouts: the app's template folders, gettext as in
    app.core.web.build_templates, `_()` bilingual, `|localtime` in the lab's time zone."""
    env = Environment(
        loader=FileSystemLoader(template_dirs()),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = _bilingual
    env.globals["pick"] = i18n.pick
    env.filters["localtime"] = _localtime
    return env


def print_context(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """What pdf_base.html needs: the lab (name, CMA number), the time zone, the printing time."""
    from app.people.service import current_lab

    calendar = lab_calendar(session)
    return {
        "lab": current_lab(session),
        "tz": calendar.tz,
        "printed_at": now or utcnow(),
        "lang": i18n.current_language(),
    }


def render_document(template: str, context: dict[str, Any], *, language: str) -> bytes:
    """Render a template extending pdf_base.html in `language` and print it to PDF."""
    with i18n.use_language(language):
        html = print_templates().get_template(template).render({**context, "lang": i18n.current_language()})
    return render_pdf(html)
