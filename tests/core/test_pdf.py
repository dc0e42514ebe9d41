"""The shared PDF machinery: Chinese comes out as text in embedded CJK fonts, every page carries
the lab header and "page X of Y", labels are bilingual under Chinese, nothing is fetched from
outside the static directory."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core import i18n, pdf
from app.core.web import STATIC_DIR
from app.people.models import Laboratory

LAB = Laboratory(name_zh="江城市生态环境监测中心", name_en="Jiangcheng Eco-Environmental Monitoring Centre",
                 cma_certificate_no="201912345678")
CHILD = """{% extends "pdf_base.html" %}
{% block title %}{{ gettext('Title') }}{% endblock %}
{% block doc_ref %}DOC-7{% endblock %}
{% block content %}<h1>{{ _('Dashboard') }}</h1>
{% for n in range(rows) %}<p>第 {{ n }} 行：氨氮 NH3-N 0.502 mg/L</p>{% endfor %}{% endblock %}"""


def text_of(data: bytes, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", *args, str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def document(rows: int, language: str = "en") -> bytes:
    with i18n.use_language(language):
        html = pdf.print_templates().from_string(CHILD).render(
            lab=LAB, tz=ZoneInfo("Asia/Shanghai"), printed_at=datetime(2026, 3, 1, 2, 5, tzinfo=UTC),
            lang=language, rows=rows)
    return pdf.render_pdf(html)


def test_render_pdf_embeds_cjk_fonts_and_keeps_chinese_as_text(tmp_path):
    data = pdf.render_pdf('<html><body style="font-family: \'Noto Sans CJK SC\'">'
                          "<p>紫外可见分光光度计 检定证书</p></body></html>")
    assert data.startswith(b"%PDF")
    assert "紫外可见分光光度计 检定证书" in text_of(data, tmp_path)
    fonts = subprocess.run(["pdffonts", str(tmp_path / "doc.pdf")], check=True, capture_output=True,
                           text=True).stdout
    assert re.search(r"Noto-Sans-CJK-SC.*\byes\s+yes\s+yes\b", fonts), fonts


def test_every_page_has_the_lab_header_page_x_of_y_and_the_local_printing_time(tmp_path):
    data = document(rows=160)
    pages = text_of(data, tmp_path).split("\f")
    pages = [page for page in pages if page.strip()]
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert LAB.name_zh in page and "201912345678" in page
        assert "Printed 2026-03-01 10:05 (Asia/Shanghai)" in page  # 02:05 UTC in the lab's time
        assert "DOC-7" in page


def test_a4_pages(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_bytes(document(rows=3))
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert "(A4)" in info


def test_labels_are_bilingual_in_a_chinese_document_only(monkeypatch):
    class Catalogue:
        def gettext(self, message: str) -> str:
            return {"Dashboard": "工作台"}.get(message, message)

        def ngettext(self, singular: str, plural: str, n: int) -> str:
            return singular if n == 1 else plural

    monkeypatch.setattr(i18n, "translations", lambda language: Catalogue())
    template = pdf.print_templates().from_string(
        "{{ _('Dashboard') }}|{{ gettext('Dashboard') }}|{{ _('Untranslated') }}")
    with i18n.use_language("zh_CN"):
        assert template.render() == '工作台<span class="en">Dashboard</span>|工作台|Untranslated'
    with i18n.use_language("en"):
        assert template.render() == "工作台|工作台|Untranslated"  # the catalogue stub answers for any language


def test_bilingual_labels_escape_their_values():
    template = pdf.print_templates().from_string("{{ _('Restricted use: %(restriction)s', restriction=r) }}")
    with i18n.use_language("zh_CN"):
        assert "&lt;b&gt;" in template.render(r="<b>")


def test_resources_come_from_the_static_directory_only():
    fetcher = pdf._url_fetcher()
    with pytest.raises(ValueError):
        fetcher.fetch("http://127.0.0.1:9/logo.png")
    with pytest.raises(ValueError):
        fetcher.fetch("file:///etc/passwd")
    with pytest.raises(ValueError):
        fetcher.fetch((STATIC_DIR / ".." / "pyproject.toml").as_uri())
    response = fetcher.fetch((STATIC_DIR / "pdf.css").resolve().as_uri())
    try:
        assert b"@page" in response.read()
    finally:
        response.close()


def test_font_configuration_is_made_once():
    assert pdf.font_config() is pdf.font_config()
