"""Helpers for the field-record tests: entries in one line, a field instrument in calibration,
real JPEG and PNG photos made with Pillow (with EXIF time and GPS), a record made complete.

Samples and containers come from `tests/samples/conftest.py` (`dispatched_task`); import the
fixtures here with `from tests.samples.field_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image

from app.core.db import Database, utcnow
from app.core.files import FileStore, file_store
from app.instruments.models import Instrument
from app.people.models import User
from app.samples import field, photos
from app.samples.field import FieldEntryInput, FieldEntryOutcome
from app.samples.models import Sample, SampleKind
from tests.conftest import PASSWORD
from tests.instruments.conftest import calibrate, local_today, make_instrument
from tests.samples.conftest import DispatchedTask

# make_site's default position (WS01, 松花江大桥断面)
SITE_LAT, SITE_LON = Decimal("45.773210"), Decimal("126.617450")
METRES_PER_DEGREE_LAT = Decimal("111195")
FIELD_USES = (("pH", "HJ 1147-2020"), ("WT", "GB 13195-91"), ("DO", "HJ 506-2009"))


def cid() -> str:
    return uuid.uuid4().hex


def north_of_site(metres: int) -> tuple[Decimal, Decimal]:
    """A position `metres` due north of the site."""
    return (SITE_LAT + Decimal(metres) / METRES_PER_DEGREE_LAT).quantize(Decimal("0.0000001")), SITE_LON


def entry(sample: Sample | str, kind: str, *, at: datetime | None = None, client_id: str | None = None,
          **fields: Any) -> FieldEntryInput:
    sample_no = sample if isinstance(sample, str) else sample.sample_no
    return FieldEntryInput(client_id=client_id or cid(), sample_no=sample_no, kind=kind,
                           act_at=at or utcnow() - timedelta(minutes=10), **fields)


def record(db: Database, actor: User, data: FieldEntryInput) -> FieldEntryOutcome:
    with db.transaction() as session:
        return field.record_field_entry(session, actor, data)


def sampling(db: Database, actor: User, sample: Sample, *, metres: int = 20, gps: str = "ok",
             accuracy: str = "8", **fields: Any) -> FieldEntryOutcome:
    if gps == "ok":
        lat, lon = north_of_site(metres)
        fields = {"latitude": lat, "longitude": lon, "accuracy_m": Decimal(accuracy), **fields}
    return record(db, actor, entry(sample, "sampling", gps_status=gps, **fields))


def field_test(db: Database, actor: User, sample: Sample, parameter: str, value: str, unit: str,
               instrument: str = "XC-PH-001", **fields: Any) -> FieldEntryOutcome:
    return record(db, actor, entry(sample, "field_test", parameter=parameter, value=value, unit=unit,
                                   instrument=instrument, **fields))


def scan(db: Database, actor: User, sample: Sample, barcode: str, **fields: Any) -> FieldEntryOutcome:
    return record(db, actor, entry(sample, "container", barcode=barcode, **fields))


# ---------------------------------------------------------------- photos


def jpeg_bytes(*, taken: str | None = "2026:05:01 09:30:00", offset: str | None = "+08:00",
               gps: tuple[Decimal, Decimal] | None = None, size: tuple[int, int] = (640, 480),
               orientation: int | None = None, color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A real JPEG with the EXIF a phone writes: DateTimeOriginal, OffsetTimeOriginal, GPS."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)
    if taken:
        ifd[36867] = taken
    if offset:
        ifd[36881] = offset
    if gps is not None:
        gps_ifd = exif.get_ifd(0x8825)
        for ref_tag, tag, value, signs in ((1, 2, gps[0], "NS"), (3, 4, gps[1], "EW")):
            gps_ifd[ref_tag] = signs[0] if value >= 0 else signs[1]
            gps_ifd[tag] = _dms(abs(value))
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=85)
    return out.getvalue()


def _dms(value: Decimal) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = (minutes_full - minutes) * 60
    return (float(degrees), float(minutes), float(round(seconds, 4)))


def png_bytes(size: tuple[int, int] = (200, 100)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


def upload(db: Database, actor: User, store: FileStore, sample: Sample, content: bytes, *,
           client_id: str | None = None, filename: str = "photo.jpg", **fields: Any) -> photos.PhotoOutcome:
    with db.transaction() as session:
        return photos.add_photo(session, actor, store, sample_no=sample.sample_no, client_id=client_id or cid(),
                                stream=io.BytesIO(content), filename=filename, **fields)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def store(settings) -> FileStore:
    return file_store(settings.ensure_data_dir())


@pytest.fixture
def field_instrument(db, users, store) -> Instrument:
    """A multi-parameter field meter (pH, water temperature, DO) in calibration now; the sampler
    uses it."""
    technical = users["technical_manager"]
    instrument = make_instrument(db, technical, "XC-PH-001", uses=FIELD_USES, kind="field",
                                 name_zh="便携式多参数水质仪")
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=100),
              valid_until=today + timedelta(days=265))
    return instrument


def complete_record(db: Database, dt: DispatchedTask, sample: Sample, store: FileStore, *,
                    metres: int = 20, photo: bool = True) -> None:
    """Everything a sample's record needs to be signed: sampling with GPS, the field tests it
    asks for, every container scanned, a photo."""
    sampler = dt.sampler
    qc = sample.kind in (SampleKind.FIELD_BLANK.value, SampleKind.TRANSPORT_BLANK.value)
    sampling(db, sampler, sample, metres=metres)
    if not qc:
        for parameter, value, unit in (("WT", "18.4", "°C"), ("pH", "7.62", "pH"), ("DO", "8.15", "mg/L")):
            field_test(db, sampler, sample, parameter, value, unit)
    for barcode in dt.barcodes(sample):
        scan(db, sampler, sample, barcode)
    if photo and sample.kind in (SampleKind.ROUTINE.value, SampleKind.CLIENT.value):
        upload(db, sampler, store, sample, jpeg_bytes(gps=north_of_site(metres)))


def sign(db: Database, actor: User, sample: Sample, password: str = PASSWORD):
    with db.transaction() as session:
        return field.sign_field_record(session, actor, session.get(Sample, sample.id), password)


def view(db: Database, sample: Sample) -> field.FieldRecordView:
    with db.reading() as session:
        shown = field.field_record(session, session.get(Sample, sample.id))
        session.expunge_all()  # detached with everything loaded: the rollback would expire them
        return shown


def reload(db: Database, model: type, row_id: int) -> Any:
    with db.reading() as session:
        row = session.get(model, row_id)
        session.expunge(row)
        return row


def make_field_objects(db: Database, users: dict[str, User], data_path: Any) -> dict[str, Any]:
    """For tests/test_permissions.py `make_objects`: a dispatched routine sample at site WS77 (made
    through the sites service, so its pages can show it) with a photo, so
    /api/v1/samples/{sample_no}/photos/{photo_id}, its thumbnail and the field-record routes have
    something to serve (keys: sample_no, photo_id, container_barcode)."""
    from app.sites import service as sites
    from tests.samples.conftest import TASK_PARAMETERS, dispatch, make_task

    technical, sampler = users["technical_manager"], users["sampler"]
    with db.transaction() as session:
        proposal = sites.SiteProposal(
            name_zh="呼兰河口断面", name_en="Hulan River Mouth", kind="surface_water", latitude=SITE_LAT,
            longitude=SITE_LON, water_body="river", parameters=[(p, "monthly") for p in TASK_PARAMETERS])
        request = sites.propose_site(session, technical, code="WS77", proposal=proposal, reason="国控断面")
        sites.decide_change(session, session.get(User, users["quality_manager"].id), request, approve=True,
                            decision_ref="环监测〔2026〕7号")
        site = sites.site_by_code(session, "WS77")
    dt = dispatch(db, users["custodian"], make_task(db, technical, site, sampler=sampler), site, sampler)
    photo = upload(db, sampler, file_store(data_path), dt.routine, jpeg_bytes()).photo
    return {"sample_no": dt.routine.sample_no, "photo_id": photo.id, "container_barcode": dt.barcodes()[0]}
