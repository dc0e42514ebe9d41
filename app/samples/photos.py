"""Photos as evidence of the sampling act (issue 6 item 5; [HLJ 3] encourages them).

A photo is checked to be a JPEG or PNG by its bytes and decoded in full before anything is kept
(damaged bytes behind a valid header are refused and nothing is stored). Its EXIF time and
position are read and compared with the record: seconds from the sampling time, metres from the
GPS fix. A thumbnail (at most 320 px, EXIF orientation applied) is kept beside it in the
content-addressed store. Photos are append-only: never replaced, only added; after the record is
signed a photo belongs to the next revision and needs a reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core import audit
from app.core.db import utcnow
from app.core.files import FileStore, sniff_media_type, store_upload
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import field_errors as errors
from app.samples.field import (
    _assert_open,
    _assert_sampler,
    _reason,
    _text,
    clean_client_id,
    sample_for_update,
)
from app.samples.models import FieldEntry, FieldEntryKind, Sample, SamplePhoto
from app.sites.geo import distance_m, valid_position
from app.sites.models import SamplingTask

PHOTO_TYPES = ("image/jpeg", "image/png")
THUMBNAIL_PX = 320
MB = 1024 * 1024
MAX_CAPTION = 300
# EXIF tags (CIPA DC-008): the Exif and GPS sub-IFDs, and what is read from them
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 36867, 36881
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
DEGREES = Decimal("0.0000001")  # about 1 cm


@dataclass(frozen=True)
class PhotoOutcome:
    photo: SamplePhoto
    created: bool


@dataclass(frozen=True)
class PhotoFacts:
    """What the image itself says."""

    media_type: str
    width: int  # as displayed (EXIF orientation applied)
    height: int
    taken_at: datetime | None
    latitude: Decimal | None
    longitude: Decimal | None
    thumbnail: bytes


# ---------------------------------------------------------------- reading an image


def _rational(value: Any) -> Decimal | None:
    """An EXIF rational (Pillow's IFDRational, a pair, or a number) as an exact Decimal."""
    try:
        if hasattr(value, "numerator") and hasattr(value, "denominator"):
            numerator, denominator = value.numerator, value.denominator
        elif isinstance(value, tuple) and len(value) == 2:
            numerator, denominator = value
        else:
            return Decimal(str(value))
        if not denominator:
            return None
        return Decimal(int(numerator)) / Decimal(int(denominator))
    except (InvalidOperation, TypeError, ValueError):
        return None


def _degrees(parts: Any, ref: Any) -> Decimal | None:
    if not isinstance(parts, tuple) or len(parts) != 3:
        return None
    values = [_rational(p) for p in parts]
    if any(v is None for v in values):
        return None
    degrees = (values[0] + values[1] / 60 + values[2] / 3600).quantize(DEGREES)
    ref_text = ref.decode(errors="ignore") if isinstance(ref, bytes) else str(ref or "")
    return -degrees if ref_text.strip().upper() in ("S", "W") else degrees


def exif_position(exif: Image.Exif) -> tuple[Decimal | None, Decimal | None]:
    """The GPS IFD's position in decimal degrees (None when absent or implausible)."""
    try:
        gps = exif.get_ifd(GPS_IFD)
    except (KeyError, ValueError, TypeError):
        return None, None
    latitude = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF))
    longitude = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF))
    if latitude is None or longitude is None or not valid_position(latitude, longitude):
        return None, None
    return latitude, longitude


def exif_time(exif: Image.Exif, tz: ZoneInfo) -> datetime | None:
    """DateTimeOriginal with OffsetTimeOriginal, else read in the lab's time zone; as UTC."""
    try:
        ifd = exif.get_ifd(EXIF_IFD)
    except (KeyError, ValueError, TypeError):
        return None
    raw, offset = ifd.get(DATETIME_ORIGINAL), ifd.get(OFFSET_TIME_ORIGINAL)
    if not isinstance(raw, str):
        return None
    try:
        local = datetime.strptime(raw.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if not 1990 <= local.year <= 2999:
        return None
    if isinstance(offset, str) and offset.strip():
        try:
            return datetime.fromisoformat(f"{local.isoformat()}{offset.strip().rstrip(chr(0))}").astimezone(UTC)
        except ValueError:
            pass
    return local.replace(tzinfo=tz).astimezone(UTC)


_STRICT_DECODING = threading.Lock()


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Make Pillow refuse truncated images while we decode a photo.

    WeasyPrint sets Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` when it is
    imported (it renders what it can of a damaged picture); with it set, a photo cut off in
    transfer decodes "successfully" with its lower half grey. Evidence must be whole, so the flag
    is switched off for the decode, under a lock, and put back. Documents rendered meanwhile only
    embed our own images, which are whole, so the brief switch does not affect them.
    """
    with _STRICT_DECODING:
        tolerant = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = tolerant


def read_photo(data: bytes, tz: ZoneInfo) -> PhotoFacts:
    """Decode the whole image (refusing damaged bytes), read its EXIF, make the thumbnail."""
    media_type = sniff_media_type(data[:16])
    if media_type not in PHOTO_TYPES:
        raise errors.PhotoNotAnImage()
    with _strict_decoding():
        return _decode(data, media_type, tz)


def _decode(data: bytes, media_type: str, tz: ZoneInfo) -> PhotoFacts:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise errors.PhotoNotAnImage()
            exif = image.getexif()
            image.load()
            oriented = ImageOps.exif_transpose(image)
            width, height = oriented.size
            thumb = oriented.convert("RGB")
            thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=80)
    except errors.PhotoNotAnImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, IndexError,
            Image.DecompressionBombError, EOFError):
        raise errors.PhotoCorrupt() from None
    latitude, longitude = exif_position(exif)
    return PhotoFacts(media_type, width, height, exif_time(exif, tz), latitude, longitude, out.getvalue())


# ---------------------------------------------------------------- adding a photo


def _current_fix(session: Session, sample_id: int) -> tuple[datetime | None, dict[str, Any] | None]:
    """The record's sampling time and GPS fix as they stand (the latest of each)."""
    rows = session.execute(select(FieldEntry.act_at, FieldEntry.payload).where(
        FieldEntry.sample_id == sample_id, FieldEntry.kind == FieldEntryKind.SAMPLING.value).order_by(FieldEntry.id)
    ).all()
    sampling_time = rows[-1][0] if rows else None
    fixes = [json.loads(p) for _, p in rows]
    fix = next((f for f in reversed(fixes) if f.get("gps_status")), None)
    return sampling_time, fix


def _same(session: Session, existing: SamplePhoto, sample_no: str, sha256: str, actor: User) -> PhotoOutcome:
    """A repeat: the same bytes by the same sampler for the same sample, or a client bug."""
    numbered = session.scalar(select(Sample.sample_no).where(Sample.id == existing.sample_id))
    asked = (sample_no or "").strip() if isinstance(sample_no, str) else ""
    if existing.sha256 != sha256 or existing.taken_by_id != actor.id or numbered not in (asked, asked.upper()):
        raise errors.ClientIdReused(client_id=existing.client_id)
    return PhotoOutcome(existing, False)


def photo_by_client_id(session: Session, client_id: str) -> SamplePhoto | None:
    return session.scalars(select(SamplePhoto).where(SamplePhoto.client_id == client_id)).first()


def add_photo(session: Session, actor: User, store: FileStore, *, sample_no: str, client_id: str,
              stream: BinaryIO, filename: str, caption: str = "", reason: str = "") -> PhotoOutcome:
    """Keep a photo of the sampling act, once per client id (a repeat with the same bytes returns
    the first, created False; other bytes under the same id are refused)."""
    ensure(session, actor, Permission.FIELD_RECORD)
    client_id = clean_client_id(client_id)
    caption = _text(caption, "caption", MAX_CAPTION)
    limit_mb = settings_of(session).max_photo_mb
    data = stream.read(limit_mb * MB + 1)
    if len(data) > limit_mb * MB:
        raise errors.PhotoTooLarge(limit_mb=limit_mb)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = photo_by_client_id(session, client_id)
    if existing is not None:
        return _same(session, existing, sample_no, sha256, actor)

    sample = sample_for_update(session, sample_no)
    existing = photo_by_client_id(session, client_id)  # a twin that held the lock before us
    if existing is not None:
        return _same(session, existing, sample_no, sha256, actor)
    task = session.get(SamplingTask, sample.task_id) if sample.task_id else None
    _assert_sampler(sample, task, actor)
    _assert_open(sample, task)
    reason = _reason(sample, reason)
    facts = read_photo(data, lab_calendar(session).tz)
    stored = store_upload(session, actor, store, io.BytesIO(data), filename or "photo",
                          allowed_types=PHOTO_TYPES, max_bytes=limit_mb * MB)
    thumbnail_sha256, _ = store.put(io.BytesIO(facts.thumbnail), limit_mb * MB)
    sampling_time, fix = _current_fix(session, sample.id)
    seconds = metres = None
    if facts.taken_at is not None and sampling_time is not None:
        seconds = int((facts.taken_at - sampling_time).total_seconds())
    if facts.latitude is not None and fix is not None and fix.get("latitude") is not None:
        metres = round(distance_m(facts.latitude, facts.longitude, Decimal(fix["latitude"]),
                                  Decimal(fix["longitude"])))
    photo = SamplePhoto(
        client_id=client_id, sample_id=sample.id, file_id=stored.id, sha256=stored.sha256, size=stored.size,
        thumbnail_sha256=thumbnail_sha256, width=facts.width, height=facts.height, caption=caption,
        exif_taken_at=facts.taken_at, exif_latitude=facts.latitude, exif_longitude=facts.longitude,
        time_difference_s=seconds, distance_m=metres, revision=sample.signed_revision + 1, reason=reason,
        taken_by_id=actor.id, uploaded_at=utcnow(),
    )
    session.add(photo)
    try:
        session.flush()
    except IntegrityError:  # the same client id on another sample, sent at the same moment
        raise errors.ClientIdReused(client_id=client_id) from None
    audit.append(session, actor, "photo.added", "sample", sample.id, None, {
        "sample_no": sample.sample_no, "photo_id": photo.id, "client_id": client_id, "sha256": photo.sha256,
        "thumbnail_sha256": thumbnail_sha256, "media_type": facts.media_type, "size": photo.size,
        "exif_taken_at": facts.taken_at, "exif_latitude": facts.latitude, "exif_longitude": facts.longitude,
        "time_difference_s": seconds, "distance_m": metres, "revision": photo.revision, "reason": reason,
        "caption": caption,
    })
    return PhotoOutcome(photo, True)
