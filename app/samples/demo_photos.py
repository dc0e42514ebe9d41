"""Field photos for the demo: small JPEGs drawn with Pillow that look like what a sampler's phone
takes at a river section — sky, the far bank, the water, the near bank and the section's sign —
with the phone's watermark (time and position) and EXIF DateTimeOriginal, OffsetTimeOriginal and
GPS matching the field record, so the photo checks (EXIF time and position against the record)
have something real to compare. Deterministic: the same site and moment give the same bytes.

Each photo is about 25–45 KB and takes a few milliseconds, so the demo's photos never dominate
its loading time.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.TiffImagePlugin import IFDRational

WIDTH, HEIGHT = 800, 600
QUALITY = 70

# EXIF tags (EXIF 2.32 / CIPA DC-008)
MAKE, MODEL, SOFTWARE, DATE_TIME = 0x010F, 0x0110, 0x0131, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
GPS_VERSION, GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 0x00, 0x01, 0x02, 0x03, 0x04
GPS_TIME, GPS_DATUM, GPS_DATE = 0x07, 0x12, 0x1D

_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
_LATIN_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


@dataclass(frozen=True)
class Scene:
    """What the photo shows; `water` picks the colours (the Yangtze is muddy, lakes are green)."""

    site_code: str
    site_name: str  # on the sign; drawn only when a CJK font is installed
    taken_at: datetime  # aware; EXIF carries it in the lab's local time with its offset
    latitude: Decimal
    longitude: Decimal
    water: str = "river"  # river, muddy_river, lake
    caption: str = ""  # a second line of the watermark, e.g. "采样点 / sampling point"


@lru_cache(maxsize=8)
def _font(size: int, cjk: bool) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """A font for the sign and watermark, and whether it draws Chinese (a CJK font may be
    missing on a server: then only the Latin text is drawn)."""
    if cjk:
        for path in _FONT_FILES:
            if not Path(path).exists():
                continue
            for index in range(6):  # the simplified-Chinese face of a collection
                try:
                    font = ImageFont.truetype(path, size, index=index)
                except OSError:
                    break
                if "SC" in font.getname()[0] or not path.endswith(".ttc"):
                    return font, True
            return ImageFont.truetype(path, size), True
    for path in _LATIN_FONT_FILES:
        if Path(path).exists():
            return ImageFont.truetype(path, size), False
    return ImageFont.load_default(size=size), False


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


WATER_COLOURS = {
    "river": ((96, 118, 112), (62, 84, 80)),
    "muddy_river": ((150, 136, 104), (112, 98, 72)),
    "lake": ((88, 128, 116), (52, 92, 84)),
}


def _draw_scene(draw: ImageDraw.ImageDraw, rng: random.Random, water: str) -> int:
    """Sky, clouds, far bank, water with ripples, near bank; returns the horizon's y."""
    horizon = int(HEIGHT * rng.uniform(0.36, 0.44))
    top, low = (112, 160, 214), (206, 224, 238)
    if rng.random() < 0.35:  # overcast
        top, low = (150, 164, 178), (208, 212, 216)
    for y in range(horizon):
        draw.line([(0, y), (WIDTH, y)], fill=_mix(top, low, y / horizon))
    for _ in range(rng.randint(2, 4)):
        cx, cy = rng.randint(0, WIDTH), rng.randint(20, max(30, horizon - 90))
        for _ in range(4):
            w, h = rng.randint(60, 120), rng.randint(18, 34)
            dx, dy = rng.randint(-60, 60), rng.randint(-10, 10)
            draw.ellipse([cx + dx - w, cy + dy - h, cx + dx + w, cy + dy + h], fill=(240, 243, 246))
    # far bank: trees and a few buildings
    points = [(0, horizon)]
    x = 0
    while x < WIDTH:
        step = rng.randint(14, 40)
        rise = rng.randint(6, 22) if rng.random() < 0.7 else rng.randint(30, 70)
        points += [(x, horizon - rise), (x + step, horizon - rise)]
        x += step
    points += [(WIDTH, horizon)]
    draw.polygon(points, fill=(86, 104, 92))
    draw.rectangle([0, horizon - 4, WIDTH, horizon + 3], fill=(104, 118, 96))
    # water, darker towards the viewer, with ripples
    far, near = WATER_COLOURS.get(water, WATER_COLOURS["river"])
    for y in range(horizon + 3, HEIGHT):
        draw.line([(0, y), (WIDTH, y)], fill=_mix(far, near, (y - horizon) / (HEIGHT - horizon)))
    for _ in range(120):
        y = rng.randint(horizon + 8, HEIGHT - 1)
        depth = (y - horizon) / (HEIGHT - horizon)
        length = int(8 + 40 * depth)
        x = rng.randint(0, WIDTH)
        draw.line([(x, y), (x + length, y)], fill=_mix(far, (230, 236, 236), 0.35), width=1 + int(2 * depth))
    # near bank, bottom left: earth, grass, stones
    bank = [(0, HEIGHT), (0, horizon + 60), (int(WIDTH * 0.30), horizon + 100),
            (int(WIDTH * 0.48), int(HEIGHT * 0.86)), (int(WIDTH * 0.58), HEIGHT)]
    draw.polygon(bank, fill=(112, 124, 70))
    draw.line(bank[1:4], fill=(140, 128, 96), width=6)
    for _ in range(10):
        sx = rng.randint(10, int(WIDTH * 0.45))
        sy = rng.randint(int(HEIGHT * 0.78), HEIGHT - 10)
        r = rng.randint(6, 14)
        draw.ellipse([sx - r, sy - r // 2, sx + r, sy + r // 2], fill=(150, 146, 138))
    return horizon


def _draw_sign(draw: ImageDraw.ImageDraw, scene: Scene, horizon: int) -> None:
    """The section's sign on the near bank: blue board, white text (地表水监测断面 + name + code)."""
    left, top, right, bottom = 40, horizon + 20, 300, horizon + 170
    draw.rectangle([left + 120, bottom, left + 134, HEIGHT - 50], fill=(90, 90, 96))
    draw.rectangle([left, top, right, bottom], fill=(22, 78, 160), outline=(235, 240, 245), width=4)
    heading, cjk = _font(22, True)
    lines: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
    if cjk:
        lines.append(("地表水监测断面", heading))
        lines.append((scene.site_name[:11], heading))
    code_font, _ = _font(30, False)
    lines.append((scene.site_code, code_font))
    y = top + 12
    for text, font in lines:
        draw.text(((left + right) // 2, y), text, font=font, fill=(255, 255, 255), anchor="mt")
        y += 40


def _watermark(draw: ImageDraw.ImageDraw, scene: Scene, local: datetime) -> None:
    """What the phone's camera app prints in the corner: time and position."""
    font, cjk = _font(18, True)
    text = [local.strftime("%Y-%m-%d %H:%M"),
            f"N{scene.latitude:.5f}  E{scene.longitude:.5f}"]
    if scene.caption and cjk:
        text.append(scene.caption)
    y = HEIGHT - 16 - 24 * len(text)
    draw.rectangle([WIDTH - 300, y - 8, WIDTH - 8, HEIGHT - 8], fill=(30, 30, 30))
    for line in text:
        draw.text((WIDTH - 290, y), line, font=font, fill=(255, 214, 64))
        y += 24


def _dms(value: Decimal) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees, minutes and seconds as EXIF rationals (seconds to 1/10000)."""
    value = abs(value)
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = (minutes_full - minutes) * 60
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(round(seconds * 10000), 10000)


def _offset(local: datetime) -> str:
    offset = local.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _exif(scene: Scene, local: datetime) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "EnviroLIMS"
    exif[MODEL] = "demo field camera"
    exif[SOFTWARE] = "EnviroLIMS demo photo generator"
    stamp = local.strftime("%Y:%m:%d %H:%M:%S")
    exif[DATE_TIME] = stamp
    details = exif.get_ifd(EXIF_IFD)
    details[DATE_TIME_ORIGINAL] = stamp
    details[OFFSET_TIME_ORIGINAL] = _offset(local)
    utc = local.astimezone(UTC)
    gps = exif.get_ifd(GPS_IFD)
    gps[GPS_VERSION] = b"\x02\x03\x00\x00"
    gps[GPS_LAT_REF] = "N" if scene.latitude >= 0 else "S"
    gps[GPS_LAT] = _dms(scene.latitude)
    gps[GPS_LON_REF] = "E" if scene.longitude >= 0 else "W"
    gps[GPS_LON] = _dms(scene.longitude)
    gps[GPS_TIME] = (IFDRational(utc.hour, 1), IFDRational(utc.minute, 1), IFDRational(utc.second, 1))
    gps[GPS_DATE] = utc.strftime("%Y:%m:%d")
    gps[GPS_DATUM] = "WGS-84"
    return exif


def field_photo(scene: Scene, *, tz: object | None = None, seed: int = 0) -> bytes:
    """A JPEG of the sampling point at `scene.taken_at` (shown and stamped in `tz`, the lab's
    time zone, or the moment's own zone)."""
    if scene.taken_at.tzinfo is None:
        raise ValueError("taken_at must be aware")
    local = scene.taken_at.astimezone(tz) if tz is not None else scene.taken_at  # type: ignore[arg-type]
    rng = random.Random(f"{scene.site_code}|{local.isoformat()}|{seed}")
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = _draw_scene(draw, rng, scene.water)
    _draw_sign(draw, scene, horizon)
    _watermark(draw, scene, local)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY, optimize=True, exif=_exif(scene, local))
    return out.getvalue()
