"""The demo's field sampling: a week of completed, signed field records with GPS, field tests,
scanned containers and photos (their EXIF matching the record), one record revised after signing,
today's dispatched tasks for the phone, the coming days' tasks; entered through the services, so
the audit chain holds; and loading the demo twice adds nothing anywhere."""

from __future__ import annotations

import io
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import select

from app.core.audit import verify_chain
from app.core.db import utcnow
from app.people.models import User
from app.samples.demo import FIELD_METER, FIELD_TESTS, TODAY, WEEK
from app.samples.demo_photos import GPS_IFD, Scene, field_photo
from app.samples.field import field_record, tasks_for_sampler
from app.samples.models import ContainerState, FieldEntryKind, Sample, SampleKind, SamplePhoto
from app.samples.photos import exif_position, exif_time
from app.sites.demo import MOVED
from app.sites.geo import distance_m
from app.sites.models import SamplingTask, Site, SiteVersion, TaskStatus
from tests.conftest import ENGINES
from tests.sites.test_demo import Demo, row_counts, sampling_demo

demo_db = pytest.fixture(scope="module", params=ENGINES, name="demo_db")(sampling_demo)

PLAUSIBLE = {"WT": (Decimal(2), Decimal(35)), "pH": (Decimal(6), Decimal(9)), "DO": (Decimal(3), Decimal(15)),
             "EC": (Decimal(150), Decimal(800))}


def week_tasks(session, sampler: User, today) -> list[SamplingTask]:
    return list(session.scalars(select(SamplingTask).where(
        SamplingTask.sampler_id == sampler.id, SamplingTask.plan_id.is_(None),
        SamplingTask.scheduled_on.between(today - timedelta(days=7), today - timedelta(days=1)))
        .order_by(SamplingTask.scheduled_on, SamplingTask.id)))


def samples_of(session, tasks: list[SamplingTask]) -> list[Sample]:
    return list(session.scalars(select(Sample).where(Sample.task_id.in_([t.id for t in tasks])).order_by(Sample.id)))


def test_a_week_of_completed_rounds_one_batch_a_day_with_its_field_qc(demo_db: Demo) -> None:
    db, sampler = demo_db.db, demo_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        tasks = week_tasks(session, sampler, today)
        assert {t.scheduled_on for t in tasks} == {today - timedelta(days=n) for n in range(1, 8)}
        assert len(tasks) == len(WEEK) and {t.status for t in tasks} == {TaskStatus.COMPLETED.value}
        samples = samples_of(session, tasks)
        assert all(s.collected_at is not None for s in samples)  # taken; the lab demo carries them on
        assert all(s.signed_revision >= 1 and s.sampler_id == sampler.id and s.site_version_id for s in samples)
        task_day = {t.id: t.scheduled_on for t in tasks}
        per_day = Counter((task_day[s.task_id], s.kind) for s in samples)
        for n in range(1, 8):
            day = today - timedelta(days=n)
            assert per_day[(day, SampleKind.FIELD_BLANK.value)] == 1 and per_day[(day, "field_duplicate")] == 1
        by_id = {s.id: s for s in samples}
        for duplicate in (s for s in samples if s.kind == SampleKind.FIELD_DUPLICATE.value):
            original = by_id[duplicate.duplicate_of_id]
            assert original.kind == SampleKind.ROUTINE.value and original.task_id == duplicate.task_id
            assert abs(original.collected_at - duplicate.collected_at) <= timedelta(minutes=5)  # same time and place
        for sample in samples:  # sampled on the task's day, in working hours, lab time
            local = sample.collected_at.astimezone(db.calendar.tz)
            assert local.date() == task_day[sample.task_id] and 8 <= local.hour <= 17


def test_each_routine_record_has_gps_field_tests_containers_and_photos(demo_db: Demo) -> None:
    db, sampler, store = demo_db.db, demo_db.users["sampler"], demo_db.store
    today = db.calendar.today()
    with db.reading() as session:
        routine = [s for s in samples_of(session, week_tasks(session, sampler, today)) if s.kind == "routine"]
        assert len(routine) == len(WEEK)
        far = []
        for sample in routine:
            record = field_record(session, sample)
            assert not record.missing and record.signed and not record.broken_signatures, sample.sample_no
            assert record.sampling_time == sample.collected_at
            gps = record.gps
            assert gps.status == "ok" and Decimal(0) < gps.accuracy_m <= 10
            if gps.warning:
                far.append((sample, record))
            else:
                assert gps.distance_m <= 30, sample.sample_no
            assert record.weather and record.air_temperature is not None and record.observations
            tests = {t.parameter: t for t in record.field_tests}
            assert set(tests) == set(FIELD_TESTS)
            for parameter, test in tests.items():
                low, high = PLAUSIBLE[parameter]
                assert low <= test.value <= high and test.instrument == FIELD_METER, (sample.sample_no, parameter)
            assert record.containers and {c.state for c in record.containers} <= {
                ContainerState.FILLED.value, ContainerState.RECEIVED.value, ContainerState.REJECTED.value,
                ContainerState.EMPTIED.value}
            assert 1 <= len(record.photos) <= 2
            for view in record.photos:
                assert not view.flagged and abs(view.time_difference_s) <= 30 * 60 and view.distance_m <= 10
                content = store.read(view.photo.sha256)
                assert content[:3] == b"\xff\xd8\xff" and len(content) < 60_000 and view.photo.size == len(content)
                assert store.read(view.photo.thumbnail_sha256)[:3] == b"\xff\xd8\xff"
        (sample, record), = far  # one sample away from the bridge works, justified
        assert 340 <= record.gps.distance_m <= 360 and record.justification == "桥面施工，改在下游 350 m 处采样"
        site = session.get(Site, sample.site_id)
        assert site.code == next(v.site for v in WEEK if v.away_m)


def test_one_signed_record_was_revised_with_a_reason_and_signed_again(demo_db: Demo) -> None:
    db = demo_db.db
    with db.reading() as session:
        (sample,) = session.scalars(select(Sample).where(Sample.signed_revision > 1)).all()
        assert sample.signed_revision == 2 and sample.collected_at is not None
        record = field_record(session, sample)
        assert [r.number for r in record.revisions] == [1, 2]
        assert len(record.signatures) == 2 and not record.broken_signatures
        (corrected,) = record.revisions[1].entries
        assert corrected.entry.kind == FieldEntryKind.FIELD_TEST.value and corrected.entry.reason
        original = next(e for e in record.revisions[0].entries
                        if e.entry.kind == FieldEntryKind.FIELD_TEST.value
                        and e.entry.parameter == corrected.entry.parameter)
        assert original.entry.value != corrected.entry.value
        assert f"{corrected.entry.value}" in corrected.entry.reason
        assert f"{original.entry.value}" in corrected.entry.reason
        shown = next(t for t in record.field_tests if t.parameter == corrected.entry.parameter)
        assert shown.value == corrected.entry.value and shown.revision == 2 and shown.readings == 2


def test_samples_are_bound_to_the_site_version_in_force_when_taken(demo_db: Demo) -> None:
    db, sampler = demo_db.db, demo_db.users["sampler"]
    with db.reading() as session:
        for sample in samples_of(session, week_tasks(session, sampler, db.calendar.today())):
            version = session.get(SiteVersion, sample.site_version_id)
            site = session.get(Site, sample.site_id)
            assert version.site_id == site.id and version.valid_from <= sample.collected_at
            assert version.version_no == (2 if site.code == MOVED else 1), site.code


def test_today_the_phone_has_dispatched_tasks_with_unfilled_containers(demo_db: Demo) -> None:
    db, sampler = demo_db.db, demo_db.users["sampler"]
    today = db.calendar.today()
    with db.reading() as session:
        tasks = [t for t in tasks_for_sampler(session, sampler, today)  # the lab demo's morning rounds are done
                 if t.task.status != TaskStatus.COMPLETED.value]
        assert len(tasks) == len(TODAY) and {t.task.status for t in tasks} == {TaskStatus.DISPATCHED.value}
        untouched = [t for t in tasks if any(
            s.sample.kind == "routine" and s.containers and all(c.state == ContainerState.ISSUED.value
                                                                for c in s.containers) for s in t.samples)]
        assert len(untouched) >= 2
        assert all(s.missing for t in tasks for s in t.samples)  # nothing recorded yet
        coming = session.scalars(select(SamplingTask).where(
            SamplingTask.sampler_id == sampler.id, SamplingTask.plan_id.is_(None),
            SamplingTask.scheduled_on > today)).all()
        assert coming and {t.status for t in coming} == {TaskStatus.SCHEDULED.value}
        assert all(t.scheduled_on <= today + timedelta(days=3) for t in coming)


def test_the_demo_photos_carry_exif_matching_the_scene() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    taken = datetime(2026, 3, 12, 9, 41, 27, tzinfo=tz)
    data = field_photo(Scene("JC-W03", "长江江城关断面", taken, Decimal("30.5736152"), Decimal("114.3049827")), tz=tz)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (800, 600)
        exif = image.getexif()
        assert exif_time(exif, tz) == taken.astimezone(tz) and exif.get_ifd(GPS_IFD)[0x12] == "WGS-84"
        latitude, longitude = exif_position(exif)
        assert distance_m(latitude, longitude, Decimal("30.5736152"), Decimal("114.3049827")) < 0.01
        colours = image.convert("RGB").resize((8, 8)).getcolors()
    assert len(colours) > 10  # a scene, not a blank
    assert data == field_photo(Scene("JC-W03", "长江江城关断面", taken, Decimal("30.5736152"),
                                     Decimal("114.3049827")), tz=tz)  # deterministic


def test_every_demo_act_is_in_the_past_and_the_audit_chain_holds(demo_db: Demo) -> None:
    db = demo_db.db
    now = utcnow()
    with db.reading() as session:
        moments = list(session.scalars(select(Sample.collected_at).where(Sample.collected_at.is_not(None))))
        moments += list(session.scalars(select(SamplePhoto.exif_taken_at)))
        assert moments and all(m < now for m in moments)
        result = verify_chain(session, None)
    assert result.ok, result.reason


def test_loading_the_demo_twice_adds_nothing_anywhere(demo_db: Demo) -> None:
    before = row_counts(demo_db.db)
    assert before["field_entry"] > 100 and before["sample_photo"] >= len(WEEK)

    demo_db.load_again()

    assert row_counts(demo_db.db) == before
