"""Barcodes and label PDFs: what is printed scans back to the code it was given (Code 128 and QR,
thermal 50x30 labels and A4 24-up sheets, positions skipped on a partly used sheet), label text
prints in Chinese and ASCII, only printable ASCII is accepted as barcode text, and the bars drawn
from python-barcode's modules are exactly those modules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import barcode
import pytest
import segno
import zxingcpp
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.core.barcodes import (
    A4_SHEET,
    InvalidBarcode,
    Label,
    THERMAL_50x30,
    code128_modules,
    code128_svg,
    qr_svg,
    render_labels,
    validate_barcode_text,
)
from app.core.errors import DomainError, InvalidInput

DPI = 300
CODE128 = zxingcpp.BarcodeFormat.Code128
QR = zxingcpp.BarcodeFormat.QRCode
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


# ---------------------------------------------------------------- helpers


def pdf_pages(data: bytes, tmp_path: Path, name: str) -> list[Image.Image]:
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(tmp_path / name)], check=True)
    return [Image.open(path).convert("L") for path in sorted(tmp_path.glob(f"{name}-*.png"))]


def pdf_info(data: bytes, tmp_path: Path) -> tuple[int, tuple[float, float]]:
    path = tmp_path / "info.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)
    return pages, (float(size.group(1)), float(size.group(2)))


def pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "text.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def decoded(image: Image.Image) -> set[tuple[zxingcpp.BarcodeFormat, str]]:
    return {(found.format, found.text) for found in zxingcpp.read_barcodes(image)}


def expected(label: Label) -> set[tuple[zxingcpp.BarcodeFormat, str]]:
    formats = {"code128": {CODE128}, "qr": {QR}, "both": {CODE128, QR}}[label.symbology]
    return {(fmt, label.code) for fmt in formats}


def cell(page: Image.Image, position: int) -> Image.Image:
    """The label at `position` (0-based, left to right, top to bottom) of an A4 24-up sheet."""
    px = DPI / 25.4
    column, row = position % A4_SHEET.columns, position // A4_SHEET.columns
    left = A4_SHEET.margin_left_mm + column * A4_SHEET.label_width_mm
    top = A4_SHEET.margin_top_mm + row * A4_SHEET.label_height_mm
    return page.crop((round(left * px), round(top * px), round((left + A4_SHEET.label_width_mm) * px),
                      round((top + A4_SHEET.label_height_mm) * px)))


def modules_from_svg(svg: str) -> str:
    """The module string drawn by code128_svg: the path's bar rectangles back into '1'/'0',
    quiet zones included."""
    total = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    height = re.search(r'viewBox="0 0 \d+ ([\d.]+)"', svg).group(1)
    modules = ["0"] * total
    path = re.search(r'<path fill="#000" d="([^"]*)"/>', svg).group(1)
    bars = re.findall(r"M(\d+) 0h(\d+)v([\d.]+)h-(\d+)z", path)
    assert "".join(f"M{x} 0h{w}v{h}h-{back}z" for x, w, h, back in bars) == path, "path holds only bars"
    for x, width, bar_height, back in bars:
        assert width == back and bar_height == height, "a bar is a full-height rectangle"
        assert modules[int(x):int(x) + int(width)] == ["0"] * int(width), "bars overlap"
        modules[int(x):int(x) + int(width)] = ["1"] * int(width)
    assert len(bars) == len(re.findall(r"1+", "".join(modules))), "runs not merged"
    return "".join(modules)


def raster(modules: str, module_px: int = 2, height: int = 30) -> Image.Image:
    image = Image.new("L", (len(modules) * module_px, height), 255)
    for match in re.finditer("1+", modules):
        image.paste(0, (match.start() * module_px, 0, match.end() * module_px, height))
    return image


LABELS = [
    Label("RM26-00012", "氨氮标准溶液 GBW(E)081234",
          ("500 mg/L", "有效期至 2027-05-31", "批号 B2305", "开封 2026-03-01")),
    Label("SS26-00005", "Ammonia nitrogen stock", ("1000 mg/L", "有效期至 2027-05-31"), symbology="qr"),
    Label("S26-0412-03", "地表水 W-017 浑河大桥", ("pH<2 H2SO4", "采样 2026-04-12"), symbology="both"),
]


# ---------------------------------------------------------------- printed labels scan back


def test_thermal_labels_are_50x30_mm_pages_that_scan_back_to_their_codes(tmp_path):
    data = render_labels(LABELS, THERMAL_50x30)

    pages, (width, height) = pdf_info(data, tmp_path)
    assert pages == len(LABELS)
    assert (width, height) == pytest.approx((141.73, 85.04), abs=0.01)  # 50 mm x 30 mm
    images = pdf_pages(data, tmp_path, "thermal")
    assert [decoded(image) for image in images] == [expected(label) for label in LABELS]
    text = pdf_text(data, tmp_path)
    for label in LABELS:
        assert label.title in text and label.code in text
        assert all(line in text for line in label.lines)


def test_an_a4_sheet_starts_at_the_first_free_position_and_every_label_scans_back(tmp_path):
    labels = [Label(f"AL26-{n:05d}", f"样品 {n} 号 容器", (f"位置 {n}",), symbology=("code128", "qr", "both")[n % 3])
              for n in range(8)]
    data = render_labels(labels, A4_SHEET, start_at=20)

    pages, size = pdf_info(data, tmp_path)
    assert pages == 2 and size == pytest.approx((595.28, 841.89), abs=0.01)
    images = pdf_pages(data, tmp_path, "sheet")
    placed = {(0, 20 + n) if n < 4 else (1, n - 4): label for n, label in enumerate(labels)}
    for page_no, page in enumerate(images):
        for position in range(A4_SHEET.per_page):
            label_image = cell(page, position)
            label = placed.get((page_no, position))
            if label is None:  # skipped (already used) or after the last label: nothing printed
                assert label_image.getextrema() == (255, 255), (page_no, position)
            else:
                assert decoded(label_image) == expected(label), (page_no, position)
    assert "样品 7 号 容器" in pdf_text(data, tmp_path)


def test_30_labels_fill_two_a4_sheets_and_24_fill_one(tmp_path):
    labels = [Label(f"RM26-{n:05d}", f"标准物质 {n}") for n in range(30)]
    assert pdf_info(render_labels(labels, A4_SHEET), tmp_path)[0] == 2
    assert pdf_info(render_labels(labels[:24], A4_SHEET), tmp_path)[0] == 1


def test_a_start_position_off_the_sheet_is_refused():
    label = Label("RM26-00012", "标准物质")
    for fmt, start_at in ((A4_SHEET, 24), (A4_SHEET, -1), (THERMAL_50x30, 1)):
        with pytest.raises(InvalidInput) as refused:
            render_labels([label], fmt, start_at=start_at)
        assert refused.value.code == "invalid_label_position"
        assert str(fmt.per_page) in refused.value.message("zh_CN")


def test_a_code128_too_long_for_the_label_is_refused_and_fits_as_qr(tmp_path):
    code = "ABCDEFGHIJKLMNOPQRSTUVWXYZABCD"  # 385 modules: under one 0.125 mm dot each in 47 mm
    with pytest.raises(InvalidInput) as refused:
        render_labels([Label(code, "标准溶液", symbology="both")], THERMAL_50x30)
    assert refused.value.code == "barcode_too_wide"
    assert code in refused.value.message("zh_CN") and "50 mm" in refused.value.message("en")
    data = render_labels([Label(code, "标准溶液", symbology="qr")], THERMAL_50x30)
    assert decoded(pdf_pages(data, tmp_path, "qr")[0]) == {(QR, code)}
    assert decoded(pdf_pages(render_labels([Label(code, "标准溶液")], A4_SHEET), tmp_path, "a4")[0]) == {
        (CODE128, code)}


def test_a_label_has_at_most_four_lines_and_a_known_symbology():
    with pytest.raises(ValueError, match="at most 4"):
        Label("RM26-00012", "标准物质", ("1", "2", "3", "4", "5"))
    with pytest.raises(ValueError, match="symbology"):
        Label("RM26-00012", "标准物质", symbology="datamatrix")  # type: ignore[arg-type]
    with pytest.raises(InvalidBarcode):
        Label("样品-1", "标准物质")
    assert Label("  RM26-00012 ", "标准物质", ["a"]).code == "RM26-00012"  # type: ignore[arg-type]


# ---------------------------------------------------------------- barcode text


@pytest.mark.parametrize("text", ["RM26-00012", "SS26-00005", "S26-0412-03/A", "x" * 64, "LOT 7 (B)"])
def test_typical_codes_are_accepted(text):
    assert validate_barcode_text(f"  {text}\n") == text


@pytest.mark.parametrize(("text", "zh", "en"), [
    ("", "为空", "empty"),
    ("   ", "为空", "empty"),
    ("x" * 65, "65", "65 characters"),
    ("样品-1", "样", "U+6837"),
    ("RM26\t00012", "U+0009", "U+0009"),
    ("RM26-0001\x7f2", "U+007F", "U+007F"),
    ("RM26-00012é", "U+00E9", "U+00E9"),
])
def test_unprintable_text_is_refused_with_the_problem_named(text, zh, en):
    with pytest.raises(InvalidBarcode) as refused:
        validate_barcode_text(text)
    error = refused.value
    assert isinstance(error, InvalidInput) and isinstance(error, DomainError)
    assert error.code == "invalid_barcode" and error.http_status == 422
    assert zh in error.message("zh_CN") and en in error.message("en")
    with pytest.raises(InvalidBarcode):
        code128_svg(text)
    with pytest.raises(InvalidBarcode):
        qr_svg(text)


# ---------------------------------------------------------------- drawing


@settings(max_examples=200, deadline=None)
@given(st.text(PRINTABLE, min_size=1, max_size=30).filter(str.strip))
@example("99325")  # python-barcode 0.16.1 drops a leading "99" (its issue #251)
@example("9912345678")
@example("99")
@example("A1234567B")
def test_code128_bars_are_the_modules_of_the_code_and_scan_back(text):
    cleaned = text.strip()
    svg = str(code128_svg(text, module_width=0.5, height=12))
    drawn = modules_from_svg(svg)
    assert drawn == "0" * 10 + code128_modules(cleaned) + "0" * 10
    if not cleaned.startswith("99"):
        library = barcode.get("code128", cleaned).build()[0]
        assert drawn[10:-10] == library
    assert f'width="{len(drawn) * 0.5:g}" height="12"' in svg
    assert 'shape-rendering="crispEdges"' in svg
    assert decoded(raster(drawn)) == {(CODE128, cleaned)}


@settings(max_examples=40, deadline=None)
@given(st.text(PRINTABLE, min_size=1, max_size=64).filter(str.strip))
def test_qr_path_is_the_matrix_of_the_code_and_scans_back(text):
    cleaned = text.strip()
    svg = str(qr_svg(text, scale=2))
    size = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    assert f'width="{size * 2}" height="{size * 2}"' in svg
    assert svg.count("<path") == 1
    drawn = [[0] * size for _ in range(size)]
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", re.search(r' d="([^"]*)"', svg).group(1)):
        for column in range(int(x), int(x) + int(width)):
            assert drawn[int(y)][column] == 0, "runs overlap"
            drawn[int(y)][column] = 1
    matrix = segno.make(cleaned, micro=False, error="m").matrix
    assert [row[4:-4] for row in drawn[4:-4]] == [list(row) for row in matrix]
    assert not any(any(row) for row in drawn[:4] + drawn[-4:])  # the quiet zone is empty
    assert not any(any(row[:4] + row[-4:]) for row in drawn)
    image = Image.new("L", (size * 4, size * 4), 255)
    for y, row in enumerate(drawn):
        for x, dark in enumerate(row):
            if dark:
                image.paste(0, (x * 4, y * 4, x * 4 + 4, y * 4 + 4))
    assert decoded(image) == {(QR, cleaned)}
