"""Sample numbers: the pattern parser (pure), counters in the database (no gaps, per key, blocks,
overflow, rollback leaves no gap), the pattern setting and the ad hoc site code."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.config import SESSION_SETTINGS_KEY, settings_of
from app.samples import errors, numbering, registration
from app.samples.models import SampleNumberCounter
from app.samples.numbering import Token, parse_pattern, reserve_number_blocks, reserve_numbers

DAY = date(2026, 3, 2)


# ---------------------------------------------------------------- the parser (pure)


def test_default_pattern_renders_site_day_and_padded_sequence():
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:03}")
    assert pattern.parts == (Token("site"), "-", Token("yyMMdd"), "-", Token("seq", 3))
    assert pattern.render("WS01", DAY, 7) == "WS01-260302-007"
    assert pattern.key("WS01", DAY) == "WS01-260302-{seq}"


@pytest.mark.parametrize("text, expected", [
    ("{site}-{yyyy}{MM}{dd}-{seq:04}", "WS01-20260302-0012"),
    ("{yy}{site}-{seq}", "26WS01-12"),
    ("S{yyyyMMdd}{seq:03}", "S20260302012"),
    ("{site}.{yy}_{MM}{dd}.{seq:02}", "WS01.26_0302.12"),
])
def test_every_token(text, expected):
    assert parse_pattern(text).render("WS01", DAY, 12) == expected


def test_a_sequence_outgrowing_its_width_keeps_counting_with_more_digits():
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:03}")
    assert pattern.render("WS01", DAY, 999) == "WS01-260302-999"
    assert pattern.render("WS01", DAY, 1000) == "WS01-260302-1000"


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("{site}-{yyMMdd}", "exactly one sequence"),
    ("{site}-{seq}-{seq:02}", "exactly one sequence"),
    ("{site}-{date}-{seq}", "unknown token {date}"),
    ("{site}-{SEQ}", "unknown token"),
    ("{site}-{seq:3}", "unknown token {seq:3}"),
    ("{site}-{seq:00}", "unknown token"),
    ("{site-{seq}", "braces"),
    ("{site}}-{seq}", "braces"),
    ("{site}-{seq}{", "braces"),
    ("{site} {seq}", "U+0020"),
    ("{site}—{seq}", "U+2014"),
    ("样品{seq}", "U+6837"),
    ("{site}{seq}", "separator"),
    ("{site}/{seq}", "“/”"),
    ("{site}-{seq}#", "“#”"),
    ("{seq:03}{site}", "separator"),
])
def test_parser_refuses_bad_patterns_clearly(text, fragment):
    with pytest.raises(errors.InvalidNumberPattern) as caught:
        parse_pattern(text)
    assert fragment in caught.value.message("en")
    assert caught.value.message("zh_CN") != caught.value.message("en")


@given(st.text(min_size=0, max_size=30))
def test_parser_never_crashes_and_accepted_patterns_render_printable_ascii(text):
    try:
        pattern = parse_pattern(text)
    except errors.InvalidNumberPattern:
        return
    rendered = pattern.render("WS01", DAY, 12345)
    assert rendered.isascii() and rendered.isprintable() and " " not in rendered
    assert "12345" in rendered


def test_site_codes_that_cannot_go_into_a_number_are_refused():
    with pytest.raises(errors.InvalidSampleNumber):
        numbering.check_site_code("WS 01")
    with pytest.raises(errors.InvalidSampleNumber):
        numbering.check_site_code("断面1")


# ---------------------------------------------------------------- counters in the database


def test_numbers_count_per_key_without_gaps(db):
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:03}")
    with db.transaction() as session:
        assert reserve_numbers(session, pattern, "WS01", DAY, 2) == ["WS01-260302-001", "WS01-260302-002"]
        assert reserve_numbers(session, pattern, "WS02", DAY, 1) == ["WS02-260302-001"]
        assert reserve_numbers(session, pattern, "WS01", date(2026, 3, 3), 1) == ["WS01-260303-001"]
    with db.transaction() as session:
        assert reserve_numbers(session, pattern, "WS01", DAY, 3) == [f"WS01-260302-{n:03d}" for n in (3, 4, 5)]
        keys = dict(session.execute(select(SampleNumberCounter.key, SampleNumberCounter.last)).all())
    assert keys == {"WS01-260302-{seq}": 5, "WS02-260302-{seq}": 1, "WS01-260303-{seq}": 1}


def test_a_rolled_back_registration_leaves_no_gap(db):
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:03}")
    with pytest.raises(RuntimeError), db.transaction() as session:
        reserve_numbers(session, pattern, "WS01", DAY, 10)
        raise RuntimeError("the registration failed after numbering")
    with db.transaction() as session:
        assert reserve_numbers(session, pattern, "WS01", DAY, 1) == ["WS01-260302-001"]


def test_blocks_take_one_update_per_key(db, count_queries):
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:03}")
    with count_queries() as q, db.transaction() as session:
        blocks = reserve_number_blocks(session, [("WS01", DAY, 200), ("WS02", DAY, 3), ("WS01", DAY, 50)], pattern)
    assert blocks[("WS01", DAY)][0] == "WS01-260302-001" and blocks[("WS01", DAY)][-1] == "WS01-260302-250"
    assert len(blocks[("WS02", DAY)]) == 3
    assert q.count == 6  # per key: insert-if-missing, lock, update


def test_overflow_in_the_database(db):
    pattern = parse_pattern("{site}-{yyMMdd}-{seq:01}")
    with db.transaction() as session:
        numbers = reserve_numbers(session, pattern, "WS01", DAY, 12)
    assert numbers[8:] == ["WS01-260302-9", "WS01-260302-10", "WS01-260302-11", "WS01-260302-12"]


def test_a_number_too_long_for_its_column_is_refused(db):
    pattern = parse_pattern("{site}-{yyyyMMdd}-{yyyyMMdd}-{seq:09}")
    with pytest.raises(errors.InvalidSampleNumber), db.transaction() as session:
        reserve_numbers(session, pattern, "ABCDEFGHIJKLM", DAY, 1)


def test_the_lab_pattern_setting_and_the_adhoc_site_code(db, registrar):
    row = registration.AdhocSample(client_name="甲公司", parameters=["COD"], scheduled_on=DAY, location_text="排口")
    with db.transaction() as session:
        custom = settings_of(session).model_copy(update={"sample_no_pattern": "{yyyy}{MM}{dd}-{site}-{seq:04}",
                                                         "adhoc_site_code": "KH"})
        session.info[SESSION_SETTINGS_KEY] = custom
        sample = registration.register_adhoc_sample(session, registrar, row)
    assert sample.sample_no == "20260302-KH-0001"


def test_a_bad_pattern_setting_refuses_registration_and_changes_nothing(db, registrar):
    row = registration.AdhocSample(client_name="甲公司", parameters=["COD"], scheduled_on=DAY, location_text="排口")
    with pytest.raises(errors.InvalidNumberPattern), db.transaction() as session:
        session.info[SESSION_SETTINGS_KEY] = settings_of(session).model_copy(update={"sample_no_pattern": "{site}"})
        registration.register_adhoc_sample(session, registrar, row)
    with db.reading() as session:
        assert session.scalars(select(SampleNumberCounter)).all() == []
