"""Barcodes and label PDFs: every printed label (reference-material units, standard solutions,
reagents, samples, containers, aliquots) goes through here.

Code 128 takes its modules from python-barcode (`build()` gives the '1'/'0' string) and QR its
matrix from segno; both are drawn here as inline SVG, one <rect> per bar and one <path> per QR
symbol, in module units with crisp edges. python-barcode's SVG writer builds a DOM per code and
costs ~40x more than drawing the bars from the modules (2-4 ms against 0.05-0.09 ms), which
would make a sheet of labels wait on barcode drawing rather than on WeasyPrint. A QR code's
cost is segno choosing the mask (~2 ms); drawing its path adds little.

Labels are printed in two formats: one 50 mm x 30 mm label per page for thermal label printers,
and A4 sheets of 24 labels (3 x 8, 70 mm x 37 mm, no gaps) for office printers, where `start_at`
skips the positions already used on a partly used sheet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import segno
from barcode.charsets import code128 as code128_charset
from barcode.codex import Code128
from markupsafe import Markup

from app.core import i18n, pdf
from app.core.errors import InvalidInput

MAX_LENGTH = 64
SYMBOLOGIES = ("code128", "qr", "both")
MAX_LINES = 4
CODE128_QUIET_ZONE = 10  # modules each side (ISO/IEC 15417 asks for at least 10 X)
QR_QUIET_ZONE = 4  # modules each side (ISO/IEC 18004)
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_BARS = re.compile(r"1+")


class InvalidBarcode(InvalidInput):
    code = "invalid_barcode"
    message_zh = "条码内容无效：{problem_zh}"
    message_en = "Invalid barcode text: {problem_en}"


def validate_barcode_text(text: str) -> str:
    """The text stripped of surrounding spaces, if a Code 128 B symbol can carry it and a
    label can show it: 1 to 64 printable ASCII characters (0x20-0x7E)."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidBarcode(problem_zh="内容为空。", problem_en="it is empty.")
    if len(cleaned) > MAX_LENGTH:
        raise InvalidBarcode(problem_zh=f"长度 {len(cleaned)} 超过上限 {MAX_LENGTH} 个字符。",
                             problem_en=f"it is {len(cleaned)} characters long, more than {MAX_LENGTH}.")
    if not _PRINTABLE.fullmatch(cleaned):
        bad = next(char for char in cleaned if not " " <= char <= "~")
        shown = f"“{bad}” (U+{ord(bad):04X})" if bad.isprintable() else f"U+{ord(bad):04X}"
        raise InvalidBarcode(
            problem_zh=f"含有不允许的字符 {shown}；只能使用可打印的 ASCII 字符（英文字母、数字、空格和符号）。",
            problem_en=f"it contains {shown}; only printable ASCII (letters, digits, space, symbols) is allowed.")
    return cleaned


# ---------------------------------------------------------------- symbols


class _Code128(Code128):
    """python-barcode's Code 128 encoder, without its leading-"99" bug (python-barcode issue
    #251, fixed upstream by PR #263 after 0.16.1): the encoder starts in charset C and folds
    START_C followed by a switch code into one start code, but tests the second value against
    the switch codes of all three charsets, so the data pair "99" (value 99, also TO_C) was
    taken for a switch and dropped: "99325" scanned as "325". Only a switch to A or B folds."""

    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        if encoded[1] in (code128_charset.C["TO_A"], code128_charset.C["TO_B"]):
            encoded[:2] = [code128_charset.TO[encoded[1]]]
        return encoded


def code128_modules(text: str) -> str:
    """The Code 128 module string of `text` ('1' a dark module, '0' a light one), without the
    quiet zones: start, data, checksum, stop."""
    return _Code128(validate_barcode_text(text)).build()[0]


def code128_svg(text: str, *, module_width: float = 1, height: float = 40) -> Markup:
    """Inline SVG of a Code 128 symbol with its quiet zones; the viewBox is one user unit per
    module, so the symbol may be stretched to any size (bars are vertical: `none` keeps them
    uniform). No human-readable text: the label prints it in its own font."""
    return _bars_svg(code128_modules(text), module_width=module_width, height=height)


def _bars_svg(modules: str, *, module_width: float = 1, height: float = 40) -> Markup:
    """One <path> with a closed rectangle per run of dark modules: a sheet of labels is a few
    SVG nodes per label rather than one per bar, which WeasyPrint styles and draws node by node."""
    total = len(modules) + 2 * CODE128_QUIET_ZONE
    bars = "".join(f"M{match.start() + CODE128_QUIET_ZONE} 0h{match.end() - match.start()}v{height:g}"
                   f"h-{match.end() - match.start()}z" for match in _BARS.finditer(modules))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="code128" width="{total * module_width:g}" '
        f'height="{height:g}" viewBox="0 0 {total} {height:g}" preserveAspectRatio="none" '
        f'shape-rendering="crispEdges"><rect width="{total}" height="{height:g}" fill="#fff"/>'
        f'<path fill="#000" d="{bars}"/></svg>')


def qr_svg(text: str, *, scale: float = 1) -> Markup:
    """Inline SVG of a QR code (error correction M or better, 4-module quiet zone): one <path>
    of merged horizontal runs, one user unit per module."""
    matrix = segno.make(validate_barcode_text(text), micro=False, error="m").matrix
    size = len(matrix) + 2 * QR_QUIET_ZONE
    runs = []
    for y, row in enumerate(matrix, start=QR_QUIET_ZONE):
        line = bytes(row).translate(_DARK)
        runs.extend(f"M{match.start() + QR_QUIET_ZONE} {y}h{match.end() - match.start()}v1"
                    f"h-{match.end() - match.start()}z" for match in _QR_RUN.finditer(line))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="qr" width="{size * scale:g}" height="{size * scale:g}" '
        f'viewBox="0 0 {size} {size}" shape-rendering="crispEdges"><rect width="{size}" height="{size}" '
        f'fill="#fff"/><path fill="#000" d="{"".join(runs)}"/></svg>')


# segno's matrix rows are bytearrays of 0x00 (light) and 0x01 (dark); as b"0"/b"1" the runs are
# one regular-expression scan per row.
_DARK = bytes.maketrans(b"\x00\x01", b"01")
_QR_RUN = re.compile(rb"1+")


# ---------------------------------------------------------------- labels


@dataclass(frozen=True)
class Label:
    """One label: `code` is what the barcode encodes (and prints in plain text), `title` the
    first line (a name), `lines` up to four short lines (concentration, "有效期至 2027-05-31",
    lot); `symbology` is "code128", "qr" or "both"."""

    code: str
    title: str
    lines: tuple[str, ...] = ()
    symbology: Literal["code128", "qr", "both"] = "code128"

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", validate_barcode_text(self.code))
        object.__setattr__(self, "lines", tuple(self.lines))
        if self.symbology not in SYMBOLOGIES:
            raise ValueError(f"symbology must be one of {', '.join(SYMBOLOGIES)}, not {self.symbology!r}")
        if len(self.lines) > MAX_LINES:
            raise ValueError(f"a label has at most {MAX_LINES} lines besides the title, not {len(self.lines)}")


@dataclass(frozen=True)
class LabelFormat:
    """A page of labels in a grid. `dot_mm` is the printer's dot pitch: bar widths are whole
    dots, so every bar of a symbol prints equally wide instead of alternating between rounded
    widths."""

    name: str
    page_width_mm: float
    page_height_mm: float
    label_width_mm: float
    label_height_mm: float
    columns: int = 1
    rows: int = 1
    padding_mm: float = 1.5
    font_size_pt: float = 7
    dot_mm: float = 0.125
    margin_left_mm: float = field(init=False)
    margin_top_mm: float = field(init=False)

    def __post_init__(self) -> None:
        # The grid is centred on the page (an A4 24-up sheet has 0.5 mm above and below).
        object.__setattr__(self, "margin_left_mm",
                           round((self.page_width_mm - self.columns * self.label_width_mm) / 2, 3))
        object.__setattr__(self, "margin_top_mm",
                           round((self.page_height_mm - self.rows * self.label_height_mm) / 2, 3))

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


# 203 dpi thermal printers print 8 dots per millimetre.
THERMAL_50x30 = LabelFormat("thermal_50x30", 50, 30, 50, 30, dot_mm=0.125)
# Avery-type 24-up sheet (e.g. 3475/L7159-style 70 x 37 mm); office printers are 600 dpi.
A4_SHEET = LabelFormat("a4_24up", 210, 297, 70, 37, columns=3, rows=8, padding_mm=3, font_size_pt=8,
                       dot_mm=25.4 / 600)


class InvalidLabelPosition(InvalidInput):
    code = "invalid_label_position"
    message_zh = "起始位置 {position} 不在这张标签纸上（1–{per_page}）。"
    message_en = "Start position {position} is not on this label sheet (1–{per_page})."


class BarcodeTooWide(InvalidInput):
    code = "barcode_too_wide"
    message_zh = "编码 {barcode} 的 Code 128 条码太长，放不进 {label_width} mm 宽的标签；请缩短编码或改用二维码。"
    message_en = ("The Code 128 symbol of {barcode} is too long for a {label_width} mm wide label; "
                  "use a shorter code or a QR code.")


QR_TEXT_GAP_MM = 1.2
BARS_GAP_MM = 0.6  # between the text (or QR) and the bars
# The narrowest bar printed (X-dimension): 5 mil, one dot of a 203-dpi thermal printer and about
# the finest general-purpose scanners resolve.
MIN_MODULE_MM = 0.125
# DejaVu Sans Mono advances 0.602 em per character; the code line adds 0.04 em letter spacing.
_MONO_ADVANCE_EM = 0.642
_MM_PER_PT = 25.4 / 72
MIN_CODE_FONT_PT = 5


@dataclass(frozen=True)
class _Placed:
    """A label with its drawn symbols and their sizes, as the template lays it out."""

    label: Label
    bars: Markup | None
    bars_width_mm: float
    bars_left_mm: float
    qr: Markup | None
    qr_size_mm: float
    text_width_mm: float
    code_font_pt: float
    text_top_mm: float = 0  # from the padding edge; the text block beside a QR is centred on it
    bars_top_mm: float = 0  # from the padding edge to the top of the bars
    code_height_mm: float = 0  # the code line under the bars


def _bars_width_mm(label: Label, modules: int, available_mm: float, fmt: LabelFormat) -> float:
    """The symbol width: each module a whole number of the format's printer dots, as wide as
    fits. Bars of a fractional number of dots print unevenly (each edge rounds on its own): at
    203 dpi a 14-character code stretched to 1.3 dots per module no longer scans, at exactly one
    dot it does."""
    dots_per_module = math.floor(available_mm / modules / fmt.dot_mm + 1e-9)
    if dots_per_module * fmt.dot_mm < MIN_MODULE_MM - 1e-9:
        raise BarcodeTooWide(barcode=label.code, label_width=f"{fmt.label_width_mm:g}")
    return modules * dots_per_module * fmt.dot_mm


def _place(label: Label, fmt: LabelFormat) -> _Placed:
    """Sizes: Code 128 spans the width under the text, starting on a printer dot; a QR alone sits
    left of the text, a QR with Code 128 left of the text above the bars. The code line shrinks
    (to 5 pt) before its end is cut."""
    inner_width = fmt.label_width_mm - 2 * fmt.padding_mm
    inner_height = fmt.label_height_mm - 2 * fmt.padding_mm
    bars = qr = None
    bars_width = bars_left = qr_size = 0.0
    if label.symbology in ("code128", "both"):
        modules = code128_modules(label.code)
        bars = _bars_svg(modules)
        bars_width = _bars_width_mm(label, len(modules) + 2 * CODE128_QUIET_ZONE, inner_width, fmt)
        bars_left = math.floor((inner_width - bars_width) / 2 / fmt.dot_mm) * fmt.dot_mm
    if label.symbology in ("qr", "both"):
        qr = qr_svg(label.code)
        qr_size = inner_height * 0.55 if label.symbology == "both" else min(inner_height, inner_width * 0.45)
    text_width = inner_width - qr_size - QR_TEXT_GAP_MM if qr else inner_width
    code_width = inner_width if bars else text_width
    fitting_pt = code_width / (len(label.code) * _MONO_ADVANCE_EM * _MM_PER_PT)
    code_font = max(MIN_CODE_FONT_PT, min(fmt.font_size_pt, fitting_pt))
    # Positions are computed here rather than by flex layout, which WeasyPrint runs per label at
    # several times the cost of absolute boxes. Line boxes are line-height 1.2 em (the template's).
    em_mm = fmt.font_size_pt * _MM_PER_PT
    text_height = (1.1 + len(label.lines) + (0 if bars or not qr else code_font / fmt.font_size_pt)) * 1.2 * em_mm
    head_height = max(qr_size, text_height)
    text_top = max(0.0, (qr_size - text_height) / 2) if qr else 0.0
    code_height = code_font * _MM_PER_PT * 1.2 if bars else 0.0
    return _Placed(label, bars, round(bars_width, 3), round(bars_left, 3), qr, round(qr_size, 3),
                   round(text_width, 3), round(code_font, 2), round(text_top, 3),
                   round(head_height + BARS_GAP_MM, 3), round(code_height, 3))


def render_labels(labels: Sequence[Label], fmt: LabelFormat = THERMAL_50x30, *, start_at: int = 0) -> bytes:
    """The PDF of `labels` in `fmt`, in order, starting `start_at` positions into the first page
    (positions count from 0, left to right, then top to bottom)."""
    if not 0 <= start_at < fmt.per_page:
        raise InvalidLabelPosition(position=start_at + 1, per_page=fmt.per_page)
    if not labels:
        raise ValueError("no labels to print")
    cells: list[_Placed | None] = [None] * start_at + [_place(label, fmt) for label in labels]
    pages = [cells[i:i + fmt.per_page] for i in range(0, len(cells), fmt.per_page)]
    html = pdf.print_templates().get_template("labels/label_sheet.html").render(
        fmt=fmt, pages=pages, qr_gap_mm=QR_TEXT_GAP_MM, lang=i18n.current_language(),
        sans_fonts=Markup(pdf.SANS_FONTS), mono_fonts=Markup(pdf.MONO_FONTS))
    return pdf.render_pdf(html)
