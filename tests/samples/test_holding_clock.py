"""The pure holding-time clock: reading it (unit) and its properties across time zones and daylight
saving (hypothesis; issue 7 item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.i18n import use_language
from app.samples.holding import (
    ClockColour,
    amber_from,
    deadline,
    duration_text,
    lab_time_text,
    parse_lab_time,
    read_clock,
    time_left_text,
)

ZONES = [ZoneInfo(name) for name in ("America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Lord_Howe",
                                     "UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham")]
RANK = {ClockColour.GREEN: 0, ClockColour.AMBER: 1, ClockColour.RED: 2}
START = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)


def _transitions(zone: ZoneInfo, years: range) -> list[datetime]:
    """The UTC instants at which the zone's offset changes (daylight saving switches)."""
    found = []
    moment = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        step = moment + timedelta(minutes=30)
        if step.astimezone(zone).utcoffset() != offset:
            found.append(step)
            offset = step.astimezone(zone).utcoffset()
        moment = step
    return found


SWITCHES = [(zone, switch) for zone in ZONES for switch in _transitions(zone, range(2025, 2028))]


@st.composite
def sampling_times(draw: st.DrawFn) -> datetime:
    """An aware sampling time in some zone: often within two days of a daylight-saving switch."""
    if SWITCHES and draw(st.booleans()):
        zone, switch = draw(st.sampled_from(SWITCHES))
        minutes = draw(st.integers(min_value=-48 * 60, max_value=48 * 60))
        seconds = draw(st.integers(min_value=0, max_value=59))
        return (switch + timedelta(minutes=minutes, seconds=seconds)).astimezone(zone)
    return draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),
                             timezones=st.sampled_from(ZONES), allow_imaginary=False))


HOURS = st.one_of(st.sampled_from([12, 24, 48, 168, 336]), st.integers(min_value=1, max_value=24 * 60))
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_switches_were_found_in_every_zone_that_has_them():
    zones = {zone.key for zone, _ in SWITCHES}
    assert {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe"} <= zones
    assert "Asia/Shanghai" not in zones
    lord_howe = next(s for z, s in SWITCHES if z.key == "Australia/Lord_Howe")
    before = (lord_howe - timedelta(minutes=30)).astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset()
    after = lord_howe.astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset()
    assert abs(after - before) == timedelta(minutes=30)  # the 30-minute shift


# ---------------------------------------------------------------- properties


@PROPERTY
@given(start=sampling_times(), hours=HOURS)
def test_the_deadline_is_exactly_the_allowed_hours_of_elapsed_time_after_sampling(start, hours):
    end = deadline(start, hours)
    assert end.timestamp() - start.timestamp() == hours * 3600
    assert end.utcoffset() == timedelta(0)
    assert read_clock(start, hours, end).remaining == timedelta(0)


@PROPERTY
@given(start=sampling_times(), hours=HOURS,
       first=st.integers(min_value=-10_000, max_value=10**7), later=st.integers(min_value=0, max_value=10**7))
def test_the_colour_only_moves_forward_green_amber_red(start, hours, first, later):
    # elapsed time is counted in UTC: aware arithmetic in a DST zone is wall-clock arithmetic, and
    # a second "later" across a spring-forward gap can be an hour earlier (hypothesis found it)
    t1 = start.astimezone(UTC) + timedelta(seconds=first)
    t2 = t1 + timedelta(seconds=later)
    c1, c2 = read_clock(start, hours, t1).colour, read_clock(start, hours, t2).colour
    assert RANK[c1] <= RANK[c2]


@PROPERTY
@given(start=sampling_times(), hours=HOURS)
def test_amber_begins_at_exactly_75_percent_and_red_right_after_the_deadline(start, hours):
    amber = amber_from(start, hours)
    assert amber.timestamp() - start.timestamp() == hours * 3600 * 0.75
    tick = timedelta(microseconds=1)
    assert read_clock(start, hours, amber - tick).colour == ClockColour.GREEN
    assert read_clock(start, hours, amber).colour == ClockColour.AMBER
    assert read_clock(start, hours, amber).fraction == 0.75
    end = deadline(start, hours)
    assert read_clock(start, hours, end).colour == ClockColour.AMBER
    assert read_clock(start, hours, end + tick).colour == ClockColour.RED


@PROPERTY
@given(start=sampling_times(), hours=HOURS, lab=st.sampled_from(ZONES))
def test_a_deadline_shown_in_lab_time_reads_back_as_the_same_instant(start, hours, lab):
    start = start.replace(second=0, microsecond=0)  # shown to the minute
    end = deadline(start, hours)
    assert parse_lab_time(lab_time_text(end, lab), lab) == end


@PROPERTY
@given(start=sampling_times(), hours=HOURS, seconds=st.integers(min_value=0, max_value=10**7),
       zone_a=st.sampled_from(ZONES), zone_b=st.sampled_from(ZONES))
def test_a_clock_read_in_two_zones_gives_the_same_time_left(start, hours, seconds, zone_a, zone_b):
    at = start + timedelta(seconds=seconds)
    a = read_clock(start.astimezone(zone_a), hours, at.astimezone(zone_b))
    b = read_clock(start.astimezone(zone_b), hours, at.astimezone(zone_a))
    assert a.remaining == b.remaining and a.colour == b.colour and a.deadline_at == b.deadline_at


# ---------------------------------------------------------------- unit


def test_daylight_saving_in_new_york_does_not_stretch_a_24_hour_clock():
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, 12, 0, tzinfo=ny)  # the clocks spring forward that night
    end = deadline(start, 24)
    assert end.astimezone(ny) == datetime(2026, 3, 8, 13, 0, tzinfo=ny)  # 23 wall-clock hours later
    assert end - start == timedelta(hours=24)


def test_the_ambiguous_hour_in_berlin_is_shown_with_its_offset():
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 summer time
    second = first + timedelta(hours=1)  # 02:30 winter time
    assert lab_time_text(first, berlin) == "2026-10-25 02:30 UTC+02:00"
    assert lab_time_text(second, berlin) == "2026-10-25 02:30 UTC+01:00"
    assert lab_time_text(datetime(2026, 5, 1, 1, 30, tzinfo=UTC), ZoneInfo("Asia/Shanghai")) == "2026-05-01 09:30"


def test_reading_a_clock_green_amber_red_and_without_deadline():
    assert read_clock(START, 24, START + timedelta(hours=17)).colour == ClockColour.GREEN
    assert read_clock(START, 24, START + timedelta(hours=18)).colour == ClockColour.AMBER
    assert read_clock(START, 24, START + timedelta(hours=25)).colour == ClockColour.RED
    asap = read_clock(START, None, START + timedelta(days=9))
    assert asap.colour == ClockColour.NONE and asap.deadline_at is None and asap.remaining is None


def test_a_stopped_clock_stays_as_it_was_when_it_stopped():
    stopped = read_clock(START, 24, START + timedelta(days=3), stopped_at=START + timedelta(hours=5))
    assert stopped.colour == ClockColour.STOPPED and stopped.elapsed == timedelta(hours=5)
    late = read_clock(START, 24, START + timedelta(days=3), stopped_at=START + timedelta(hours=30))
    assert late.colour == ClockColour.RED  # analysed late stays red


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        deadline(datetime(2026, 5, 1, 9, 30), 24)


def test_time_left_is_written_in_hours_and_minutes():
    with use_language("en"):
        assert duration_text(timedelta(hours=3, minutes=20)) == "3 h 20 min"
        assert duration_text(timedelta(minutes=45)) == "45 min"
        assert duration_text(timedelta(days=2, hours=3, minutes=5)) == "2 d 3 h"
        assert time_left_text(read_clock(START, 24, START + timedelta(hours=20, minutes=40))) == "3 h 20 min left"
        assert time_left_text(read_clock(START, 24, START + timedelta(hours=25))) == "1 h 0 min overdue"
        assert time_left_text(read_clock(START, None, START)) == "as soon as possible"
