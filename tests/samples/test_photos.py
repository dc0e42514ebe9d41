"""Photos: a real JPEG's EXIF time and position are read and compared with the record, the
thumbnail is made with the EXIF orientation applied; PNG is accepted; a text file, damaged image
bytes and a photo over the limit are refused with nothing stored; a repeated upload is kept once;
after signing a photo is a revision with a reason."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.files import StoredFile
from app.samples.models import SamplePhoto
from tests.instruments.conftest import files_on_disk
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import (
    complete_record,
    entry,
    jpeg_bytes,
    north_of_site,
    png_bytes,
    record,
    sampling,
    sign,
    upload,
    view,
)

MB = 1024 * 1024


def photo_counts(db) -> dict[str, int]:
    with db.reading() as session:
        return {"photos": session.scalar(select(func.count()).select_from(SamplePhoto)),
                "files": session.scalar(select(func.count()).select_from(StoredFile)),
                "audit": session.scalar(select(func.count()).select_from(AuditEvent))}


def refused_upload(db, dt, store, content: bytes, code: str, **fields) -> DomainError:
    before, on_disk = photo_counts(db), files_on_disk(store)
    with pytest.raises(DomainError) as caught:
        upload(db, dt.sampler, store, dt.routine, content, **fields)
    assert caught.value.code == code, caught.value
    assert photo_counts(db) == before and files_on_disk(store) == on_disk  # nothing stored
    return caught.value


def test_a_jpeg_keeps_its_exif_time_and_position_compared_with_the_record(db, dispatched_task, store):
    dt = dispatched_task
    sampled_at = (utcnow() - timedelta(minutes=30)).replace(second=0, microsecond=0)
    sampling(db, dt.sampler, dt.routine, metres=20, at=sampled_at)
    taken = sampled_at + timedelta(minutes=10)
    local = taken.astimezone(db.calendar.tz)
    content = jpeg_bytes(taken=local.strftime("%Y:%m:%d %H:%M:%S"), offset="+08:00", gps=north_of_site(120))
    outcome = upload(db, dt.sampler, store, dt.routine, content, caption="上游方向")
    photo = outcome.photo
    assert outcome.created and photo.exif_taken_at == taken
    assert abs(photo.exif_latitude - north_of_site(120)[0]) < Decimal("0.000001")
    assert photo.exif_longitude == Decimal("126.6174500")
    assert photo.time_difference_s == 600 and 95 <= photo.distance_m <= 105
    assert (photo.width, photo.height) == (640, 480) and photo.revision == 1
    assert store.read(photo.sha256) == content
    thumbnail = Image.open(io.BytesIO(store.read(photo.thumbnail_sha256)))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 320
    shown = view(db, dt.routine).photos[0]
    assert shown.time_difference_s == 600 and shown.photo.caption == "上游方向" and not shown.flagged
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.added")).one()
        assert event.after_data["sha256"] == photo.sha256


def test_exif_time_without_offset_is_read_in_the_lab_time_zone(db, dispatched_task, store):
    dt = dispatched_task
    photo = upload(db, dt.sampler, store, dt.routine, jpeg_bytes(taken="2026:05:01 09:30:00", offset=None)).photo
    assert photo.exif_taken_at == datetime(2026, 5, 1, 1, 30, tzinfo=UTC)  # Asia/Shanghai
    bare = upload(db, dt.sampler, store, dt.routine, jpeg_bytes(taken=None, color=(1, 2, 3))).photo
    assert bare.exif_taken_at is None and bare.exif_latitude is None and bare.time_difference_s is None


def test_the_thumbnail_applies_the_exif_orientation(db, dispatched_task, store):
    dt = dispatched_task
    photo = upload(db, dt.sampler, store, dt.routine, jpeg_bytes(size=(640, 480), orientation=6)).photo
    assert (photo.width, photo.height) == (480, 640)  # as displayed: turned upright
    assert Image.open(io.BytesIO(store.read(photo.thumbnail_sha256))).size == (240, 320)


def test_a_png_is_accepted(db, dispatched_task, store):
    dt = dispatched_task
    photo = upload(db, dt.sampler, store, dt.routine, png_bytes(), filename="screen.png").photo
    assert (photo.width, photo.height) == (200, 100) and photo.exif_taken_at is None
    with db.reading() as session:
        assert session.get(StoredFile, photo.file_id).media_type == "image/png"


def test_what_is_not_a_photo_is_refused_and_nothing_is_stored(db, dispatched_task, store):
    dt = dispatched_task
    error = refused_upload(db, dt, store, "采样记录：水色清，无异味。".encode(), "photo_not_an_image")
    assert "JPEG" in error.message("zh")
    refused_upload(db, dt, store, b"%PDF-1.4\n%%EOF\n", "photo_not_an_image")
    refused_upload(db, dt, store, b"", "photo_not_an_image")
    refused_upload(db, dt, store, b"\xff\xd8\xff\xe0" + b"\x00garbage" * 100, "photo_corrupt")
    whole = jpeg_bytes()
    refused_upload(db, dt, store, whole[: len(whole) // 2], "photo_corrupt")
    refused_upload(db, dt, store, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "photo_corrupt")


def test_a_photo_cut_off_in_transfer_is_refused_even_after_weasyprint_is_loaded(db, dispatched_task, store):
    """WeasyPrint turns on Pillow's process-wide LOAD_TRUNCATED_IMAGES when imported (the server
    imports it for every PDF); the photo check must not depend on whether a PDF was made first."""
    import weasyprint  # noqa: F401  (the import is the point)
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    dt = dispatched_task
    whole = jpeg_bytes()
    refused_upload(db, dt, store, whole[: len(whole) // 2], "photo_corrupt")
    refused_upload(db, dt, store, whole[:-40], "photo_corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # put back for the documents


def test_a_photo_over_the_limit_is_refused_with_the_limit_in_the_message(db, dispatched_task, store, settings):
    dt = dispatched_task
    error = refused_upload(db, dt, store, b"\xff\xd8\xff" + b"\x00" * (20 * MB), "photo_too_large")
    assert error.http_status == 413
    assert "20 MB" in error.message("zh") and "larger than 20 MB" in error.message("en")
    settings.max_photo_mb = 1
    refused_upload(db, dt, store, jpeg_bytes() + b"\x00" * MB, "photo_too_large")


def test_a_repeated_upload_is_kept_once_and_other_bytes_under_its_id_are_refused(db, dispatched_task, store):
    dt = dispatched_task
    content = jpeg_bytes()
    first = upload(db, dt.sampler, store, dt.routine, content, client_id="photo-0001")
    before = photo_counts(db)
    again = upload(db, dt.sampler, store, dt.routine, content, client_id="photo-0001")
    assert not again.created and again.photo.id == first.photo.id and photo_counts(db) == before
    refused_upload(db, dt, store, jpeg_bytes(color=(9, 9, 9)), "client_id_reused", client_id="photo-0001")


def test_after_signing_a_photo_is_a_revision_with_a_reason(db, dispatched_task, store, field_instrument):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    sign(db, dt.sampler, dt.routine)
    refused_upload(db, dt, store, jpeg_bytes(color=(200, 1, 1)), "reason_required_after_signing")
    later = upload(db, dt.sampler, store, dt.routine, jpeg_bytes(color=(200, 1, 1)), reason="补拍下游方向").photo
    assert later.revision == 2 and later.reason == "补拍下游方向"
    shown = view(db, dt.routine)
    assert [len(r.photos) for r in shown.revisions] == [1, 1] and shown.revisions[1].reasons == ["补拍下游方向"]


def test_only_the_sampler_adds_photos(db, dispatched_task, store, users):
    dt = dispatched_task
    with pytest.raises(DomainError) as caught:
        upload(db, users["custodian"], store, dt.routine, jpeg_bytes())
    assert caught.value.http_status == 403
    record(db, dt.sampler, entry(dt.routine, "sampling", gps_status="denied"))  # still open afterwards
