"""Field entries: each kind recorded and refused (a refusal changes nothing), idempotent on the
phone's client id (a repeat, a repeat with other content, two identical submissions racing on
PostgreSQL), times, GPS (a fix, denied, never invented), the distance warning, the instrument
gate at the time of measurement, container scans, and the sampler's day."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError, PermissionDenied
from app.samples import field
from app.samples.models import Container, FieldEntry, Sample, SampleKind
from app.sites.models import SamplingTask, TaskStatus
from tests.conftest import make_user, race
from tests.instruments.conftest import calibrate, local_today, make_instrument
from tests.samples.conftest import make_site, make_task
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import (
    complete_record,
    entry,
    field_test,
    north_of_site,
    record,
    reload,
    sampling,
    scan,
    view,
)


def counts(db) -> dict[str, int]:
    with db.reading() as session:
        return {
            "entries": session.scalar(select(func.count()).select_from(FieldEntry)),
            "audit": session.scalar(select(func.count()).select_from(AuditEvent)),
            "filled": session.scalar(select(func.count()).select_from(Container).where(Container.state == "filled")),
        }


def refused(db, actor, data, code: str) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        record(db, actor, data)
    assert caught.value.code == code, caught.value
    assert counts(db) == before  # nothing changed
    return caught.value


# ---------------------------------------------------------------- sampling, GPS, distance


def test_a_sampling_entry_with_a_fix_records_the_distance_and_puts_the_task_in_the_field(db, dispatched_task):
    dt = dispatched_task
    outcome = sampling(db, dt.sampler, dt.routine, metres=20)
    assert outcome.created and outcome.notice is None
    stored = reload(db, FieldEntry, outcome.entry.id)
    assert stored.revision == 1 and stored.entered_by_id == dt.sampler.id
    record_view = view(db, dt.routine)
    assert record_view.gps.status == "ok" and not record_view.gps.warning
    assert Decimal(19) < record_view.gps.distance_m < Decimal(21)
    assert isinstance(record_view.gps.latitude, Decimal)
    assert record_view.sampling_time == stored.act_at
    assert reload(db, SamplingTask, dt.task.id).status == TaskStatus.IN_FIELD.value
    with db.reading() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(2)))
    assert set(actions) == {"field_entry.recorded", "task.in_field"}


def test_gps_denied_is_recorded_as_such_and_never_with_a_position(db, dispatched_task):
    dt = dispatched_task
    outcome = sampling(db, dt.sampler, dt.routine, gps="denied")
    gps = view(db, dt.routine).gps
    assert outcome.created and gps.status == "denied" and gps.latitude is None and gps.distance_m is None
    lat, lon = north_of_site(5)
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="unavailable", latitude=lat, longitude=lon),
            "gps_position_without_fix")
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="ok", latitude=lat), "gps_fix_incomplete")
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="ok", latitude=Decimal(91), longitude=lon,
                                  accuracy_m=Decimal(5)), "position_out_of_range")
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="ok", latitude=lat, longitude=lon,
                                  accuracy_m=Decimal(0)), "gps_accuracy_invalid")
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="guessed"), "gps_status_invalid")
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="ok", latitude=45.77, longitude=lon,
                                  accuracy_m=Decimal(5)), "bad_number")  # a float is never taken


def test_beyond_the_radius_the_entry_is_kept_with_a_warning_and_a_later_justification_counts(db, dispatched_task):
    dt = dispatched_task
    far = sampling(db, dt.sampler, dt.routine, metres=350)
    assert far.created and far.notice.code == "distance_needs_justification"
    shown = view(db, dt.routine)
    assert shown.gps.warning and shown.gps.radius_m == 200
    assert "justification" in [m.code for m in shown.missing]
    sampling(db, dt.sampler, dt.routine, metres=350, justification="桥面施工封闭，改在下游 350 m 的码头采样")
    shown = view(db, dt.routine)
    assert shown.justification.startswith("桥面施工") and "justification" not in [m.code for m in shown.missing]
    # a new far fix needs its own justification (or a later one), not the earlier fix's
    again = sampling(db, dt.sampler, dt.routine, metres=900)
    assert again.notice.code == "distance_needs_justification"
    assert "justification" in [m.code for m in view(db, dt.routine).missing]
    assert "justification" in missing_today(db, dt)
    record(db, dt.sampler, entry(dt.routine, "sampling", justification="上游 900 m 处为唯一可下水点"))
    shown = view(db, dt.routine)
    assert shown.gps.distance_m > 800 and shown.justification.startswith("上游 900 m")
    assert "justification" not in [m.code for m in shown.missing] and "justification" not in missing_today(db, dt)


def missing_today(db, dt) -> list[str]:
    """What the sampler's day says the routine sample still lacks."""
    with db.reading() as session:
        [task] = field.tasks_for_sampler(session, session.get(type(dt.sampler), dt.sampler.id), local_today(db))
        return [m.code for s in task.samples if s.sample.id == dt.routine.id for m in s.missing]


def test_sampling_time_in_the_future_or_long_before_registration_is_refused(db, dispatched_task):
    dt = dispatched_task
    error = refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="denied",
                                          at=utcnow() + timedelta(minutes=30)), "act_time_in_future")
    assert "实验室时间" in error.message("zh")
    # a few minutes of phone-clock drift is accepted
    assert record(db, dt.sampler, entry(dt.routine, "sampling", gps_status="denied",
                                        at=utcnow() + timedelta(minutes=3))).created
    refused(db, dt.sampler, entry(dt.routine, "sampling", gps_status="denied", at=utcnow() - timedelta(days=3)),
            "act_time_too_early")
    naive = entry(dt.routine, "sampling", gps_status="denied")
    naive.act_at = naive.act_at.replace(tzinfo=None)
    refused(db, dt.sampler, naive, "act_time_without_offset")


# ---------------------------------------------------------------- idempotency


def test_a_repeated_client_id_is_recorded_once_and_other_content_under_it_is_refused(db, dispatched_task):
    dt = dispatched_task
    first = entry(dt.routine, "observation", weather="Sunny", air_temperature=Decimal("21.5"), observations="水色清")
    assert record(db, dt.sampler, first).created
    before = counts(db)
    again = record(db, dt.sampler, first)
    assert not again.created and counts(db) == before
    shown = view(db, dt.routine)
    assert shown.weather == "sunny" and shown.air_temperature == Decimal("21.5")
    changed = entry(dt.routine, "observation", client_id=first.client_id, weather="rain")
    refused(db, dt.sampler, changed, "client_id_reused")
    refused(db, dt.sampler, entry(dt.routine, "observation", client_id="short", weather="rain"), "bad_client_id")


def test_two_identical_submissions_racing_make_one_entry(pg_db, dispatched_task):
    dt = dispatched_task
    data = entry(dt.routine, "sampling", gps_status="denied")
    results = race(pg_db, lambda s: field.record_field_entry(s, s.merge(dt.sampler), data),
                   lambda s: field.record_field_entry(s, s.merge(dt.sampler), data))
    assert not any(isinstance(r, BaseException) for r in results), results
    assert sorted(r.created for r in results) == [False, True]
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(FieldEntry)) == 1
        events = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "field_entry.recorded"))
    assert events == 1


# ---------------------------------------------------------------- who and when


def test_only_the_assigned_sampler_records_and_only_while_the_record_is_open(db, dispatched_task, users):
    dt = dispatched_task
    other = make_user(db, "sampler-2", "sampler")
    refused(db, other, entry(dt.routine, "sampling", gps_status="denied"), "not_your_sample")
    with pytest.raises(PermissionDenied):
        record(db, users["inspector"], entry(dt.routine, "sampling", gps_status="denied"))
    refused(db, dt.sampler, entry("WS01-000000-999", "sampling", gps_status="denied"), "sample_not_found")
    refused(db, dt.sampler, entry(dt.routine, "weighing"), "unknown_field_entry_kind")


def test_a_task_not_dispatched_takes_no_entries(db, users, sampler):
    site = make_site(db, users["technical_manager"], "WS09")
    task = make_task(db, users["technical_manager"], site, sampler=sampler)
    with db.transaction() as session:  # a sample left over on a cancelled task
        session.get(SamplingTask, task.id).status = TaskStatus.CANCELLED.value
        sample = Sample(sample_no="WS09-260101-001", kind="routine", matrix="water", task_id=task.id,
                        site_id=site.id, scheduled_on=local_today(db), sampler_id=sampler.id,
                        registered_at=utcnow(), registered_by_id=users["custodian"].id)
        session.add(sample)
    refused(db, sampler, entry(sample, "sampling", gps_status="denied"), "task_not_in_field")


# ---------------------------------------------------------------- observations


def test_observations_are_checked(db, dispatched_task):
    dt = dispatched_task
    refused(db, dt.sampler, entry(dt.routine, "observation"), "empty_observation")
    refused(db, dt.sampler, entry(dt.routine, "observation", air_temperature=Decimal("61")),
            "air_temperature_out_of_range")
    refused(db, dt.sampler, entry(dt.routine, "observation", air_temperature="warm"), "bad_number")
    refused(db, dt.sampler, entry(dt.routine, "observation", observations="x" * 2001), "text_too_long")
    assert record(db, dt.sampler, entry(dt.routine, "observation", weather="阵雨转多云")).created
    assert view(db, dt.routine).weather == "阵雨转多云"


# ---------------------------------------------------------------- field tests


def test_a_field_test_is_recorded_in_the_rules_unit_with_its_instrument(db, dispatched_task, field_instrument):
    dt = dispatched_task
    outcome = field_test(db, dt.sampler, dt.routine, "ph", "7.62", "")
    stored = reload(db, FieldEntry, outcome.entry.id)
    assert stored.parameter == "pH" and stored.value == Decimal("7.62") and stored.instrument_id == field_instrument.id
    # a convertible unit is converted exactly; the reading as entered stays in the payload
    field_test(db, dt.sampler, dt.routine, "DO", "8150", "µg/L")
    field_test(db, dt.sampler, dt.routine, "WT", "18.4", "℃")
    tests = {t.parameter: t for t in view(db, dt.routine).field_tests}
    assert tests["DO"].value == Decimal("8.150") and tests["DO"].unit == "mg/L"
    assert tests["DO"].entered_value == "8150" and tests["DO"].entered_unit == "µg/L"
    assert tests["WT"].unit == "°C" and tests["pH"].instrument == "XC-PH-001"


def test_field_tests_are_refused_with_a_clear_reason(db, dispatched_task, field_instrument):
    dt = dispatched_task
    refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="COD", value="12", unit="mg/L",
                                  instrument="XC-PH-001"), "not_a_field_test")
    error = refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="15", unit="pH",
                                          instrument="XC-PH-001"), "field_value_out_of_range")
    assert "0…14" in error.message("en")
    error = refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="DO", value="95", unit="%",
                                          instrument="XC-PH-001"), "wrong_field_unit")
    assert "mg/L" in error.message("en")
    refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7.1e", unit="pH",
                                  instrument="XC-PH-001"), "bad_number")
    refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7." + "1" * 80, unit="pH",
                                  instrument="XC-PH-001"), "bad_number")  # no column overflows
    refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7.1", unit="pH"),
            "field_instrument_required")
    refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7.1", unit="pH",
                                  instrument="XC-NOPE-9"), "instrument_not_found")
    blank = dt.of_kind(SampleKind.FIELD_BLANK)[0]  # a blank is not tested on site
    refused(db, dt.sampler, entry(blank, "field_test", parameter="pH", value="7.1", unit="pH",
                                  instrument="XC-PH-001"), "field_test_not_requested")


def test_the_instrument_is_checked_at_the_time_of_measurement(db, dispatched_task, users, store):
    """A meter whose calibration ran out yesterday is refused for a reading taken now, and a
    reading taken before it ran out is accepted (gate at the date of the act)."""
    dt = dispatched_task
    technical = users["technical_manager"]
    meter = make_instrument(db, technical, "XC-PH-002", uses=(("pH", "HJ 1147-2020"),), kind="field")
    today = local_today(db)
    calibrate(db, technical, store, meter, performed_on=today - timedelta(days=365),
              valid_until=today - timedelta(days=1))
    error = refused(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7.1", unit="pH",
                                          instrument="XC-PH-002"), "instrument_overdue")
    assert "XC-PH-002" in error.message("zh")
    earlier = db.calendar.start_of(today) - timedelta(hours=2)  # yesterday evening, lab time
    with db.transaction() as session:  # registered the day before: a reading last evening is plausible
        session.get(Sample, dt.routine.id).registered_at = earlier - timedelta(hours=1)
    assert record(db, dt.sampler, entry(dt.routine, "field_test", parameter="pH", value="7.1", unit="pH",
                                        instrument="XC-PH-002", at=earlier)).created


# ---------------------------------------------------------------- containers


def test_scanning_a_container_fills_it_and_a_second_scan_is_a_friendly_no_op(db, dispatched_task):
    dt = dispatched_task
    barcode = dt.barcodes()[0]
    first = scan(db, dt.sampler, dt.routine, f"  {barcode.lower()} ", task_code=dt.task.code)
    container = reload(db, Container, first.entry.container_id)
    assert first.created and container.state == "filled" and container.filled_at == first.entry.act_at
    before = counts(db)
    second = scan(db, dt.sampler, dt.routine, barcode)
    assert not second.created and second.entry.id == first.entry.id
    assert second.notice.code == "container_already_filled" and counts(db) == before


def test_a_container_of_another_sample_or_task_or_a_bad_barcode_is_refused(db, dispatched_task, users):
    dt = dispatched_task
    duplicate = dt.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    error = refused(db, dt.sampler, entry(dt.routine, "container", barcode=dt.barcodes(duplicate)[0]),
                    "container_of_another_sample")
    assert duplicate.sample_no in error.message("en") and dt.task.code in error.message("en")
    refused(db, dt.sampler, entry(dt.routine, "container", barcode=dt.barcodes()[0], task_code="TK26-99999"),
            "container_of_another_task")
    wrong_digit = dt.barcodes()[0][:-1] + str((int(dt.barcodes()[0][-1]) + 1) % 10)
    refused(db, dt.sampler, entry(dt.routine, "container", barcode=wrong_digit), "wrong_check_digit")
    refused(db, dt.sampler, entry(dt.routine, "container", barcode="RM26-00012"), "not_a_container")
    refused(db, dt.sampler, entry(dt.routine, "container", barcode="hello"), "malformed_barcode")
    refused(db, dt.sampler, entry(dt.routine, "container", barcode=""), "barcode_required")


# ---------------------------------------------------------------- the sampler's day


def test_the_samplers_day_lists_open_tasks_with_what_is_missing_in_two_queries(
        db, dispatched_task, field_instrument, store, count_queries):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    with db.reading() as session:
        sampler = session.get(type(dt.sampler), dt.sampler.id)
        with count_queries() as queries:
            day = field.tasks_for_sampler(session, sampler, local_today(db))
        assert queries.count <= 2
        [task] = day
        assert task.task.code == dt.task.code and task.site_code == "WS01" and task.site_name_zh == "松花江大桥断面"
        by_kind = {s.sample.kind: s for s in task.samples}
        assert by_kind["routine"].missing == []
        assert len(by_kind["routine"].containers) == 3
        blank = by_kind["field_blank"]
        assert [m.code for m in blank.missing] == ["sampling_time", "containers"]
        duplicate = by_kind["field_duplicate"]
        assert {m.code for m in duplicate.missing} == {"sampling_time", "containers", "field_tests"}
        assert field.tasks_for_sampler(session, sampler, local_today(db) + timedelta(days=1)) == []
