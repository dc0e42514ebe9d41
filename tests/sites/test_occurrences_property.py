"""The dates a plan line yields (`occurrences`): examples for every frequency, and properties over
any period, frequency and day: every date inside the period, sorted, unique, one per period."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sites.models import Frequency
from app.sites.plans import MAX_DAY_IN_PERIOD, MONTHS_PER_PERIOD, occurrences, period_limit

YEAR_2026 = (date(2026, 1, 1), date(2026, 12, 31))


def test_weekly_every_seven_days_from_the_day_in_the_first_week():
    # 2026-01-01 is a Thursday; day 3 of the period's weeks is the Saturday
    found = occurrences(date(2026, 1, 1), date(2026, 1, 31), Frequency.WEEKLY, 3)
    assert found == [date(2026, 1, 3), date(2026, 1, 10), date(2026, 1, 17), date(2026, 1, 24), date(2026, 1, 31)]
    # the day wraps around the week: day 8 is day 1
    assert occurrences(date(2026, 1, 1), date(2026, 1, 14), Frequency.WEEKLY, 8) == [date(2026, 1, 1),
                                                                                    date(2026, 1, 8)]
    assert len(occurrences(*YEAR_2026, Frequency.WEEKLY, 1)) == 53


def test_monthly_on_that_day_clamped_to_the_end_of_short_months():
    found = occurrences(*YEAR_2026, Frequency.MONTHLY, 31)
    assert len(found) == 12
    assert found[:4] == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert occurrences(date(2028, 2, 1), date(2028, 2, 29), Frequency.MONTHLY, 30) == [date(2028, 2, 29)]


def test_monthly_drops_a_day_before_the_period_starts_or_after_it_ends():
    assert occurrences(date(2026, 1, 15), date(2026, 3, 5), Frequency.MONTHLY, 10) == [date(2026, 2, 10)]
    assert occurrences(date(2026, 1, 10), date(2026, 3, 10), Frequency.MONTHLY, 10) == [
        date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10)]


def test_bimonthly_on_the_first_month_of_each_pair_starting_with_the_period():
    assert occurrences(*YEAR_2026, Frequency.BIMONTHLY, 5) == [date(2026, m, 5) for m in (1, 3, 5, 7, 9, 11)]
    # a day past the first month falls in the second: day 40 of January-February is 9 February
    assert occurrences(date(2026, 1, 1), date(2026, 2, 28), Frequency.BIMONTHLY, 40) == [date(2026, 2, 9)]
    # the pairs start with the period's own month, not January
    assert occurrences(date(2026, 2, 1), date(2026, 5, 31), Frequency.BIMONTHLY, 1) == [date(2026, 2, 1),
                                                                                     date(2026, 4, 1)]


def test_quarterly_counts_the_day_from_the_first_day_of_the_quarter():
    assert occurrences(*YEAR_2026, Frequency.QUARTERLY, 10) == [date(2026, 1, 10), date(2026, 4, 10),
                                                              date(2026, 7, 10), date(2026, 10, 10)]
    # day 45 of a quarter is in its second month
    assert occurrences(*YEAR_2026, Frequency.QUARTERLY, 45) == [date(2026, 2, 14), date(2026, 5, 15),
                                                              date(2026, 8, 14), date(2026, 11, 14)]
    # day 92 of a 90-day quarter is its last day
    assert occurrences(*YEAR_2026, Frequency.QUARTERLY, 92)[0] == date(2026, 3, 31)


def test_semiannual_and_annual():
    assert occurrences(*YEAR_2026, Frequency.SEMIANNUAL, 15) == [date(2026, 1, 15), date(2026, 7, 15)]
    assert occurrences(*YEAR_2026, Frequency.ANNUAL, 100) == [date(2026, 4, 10)]
    assert occurrences(*YEAR_2026, Frequency.ANNUAL, 366) == [date(2026, 12, 31)]
    two_years = (date(2026, 1, 1), date(2027, 12, 31))
    assert occurrences(*two_years, Frequency.ANNUAL, 1) == [date(2026, 1, 1), date(2027, 1, 1)]


def test_an_empty_or_reversed_period_yields_nothing():
    assert occurrences(date(2026, 1, 2), date(2026, 1, 1), Frequency.MONTHLY, 1) == []
    assert occurrences(date(2026, 1, 2), date(2026, 1, 2), Frequency.MONTHLY, 1) == []
    with pytest.raises(ValueError):
        occurrences(*YEAR_2026, Frequency.MONTHLY, 0)


def test_the_longest_period_is_two_years():
    assert period_limit(date(2026, 1, 1)) == date(2028, 1, 1)
    assert period_limit(date(2028, 2, 29)) == date(2030, 2, 28)


# ---------------------------------------------------------------- properties


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month


periods = st.tuples(st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.integers(0, 730)).map(
    lambda p: (p[0], p[0] + timedelta(days=p[1])))


@st.composite
def lines(draw):
    frequency = draw(st.sampled_from(list(Frequency)))
    return frequency, draw(st.integers(1, MAX_DAY_IN_PERIOD[frequency]))


@given(periods, lines())
def test_every_date_lies_in_the_period_sorted_and_unique(period, line):
    start, end = period
    frequency, day = line
    found = occurrences(start, end, frequency, day)
    assert all(start <= d <= end for d in found)
    assert found == sorted(set(found))


@given(periods, lines())
def test_one_date_per_period_of_the_frequency(period, line):
    start, end = period
    frequency, day = line
    found = occurrences(start, end, frequency, day)
    if frequency is Frequency.WEEKLY:
        # exactly one date in every 7 days from the start, the last week perhaps cut short
        assert all(b - a == timedelta(days=7) for a, b in zip(found, found[1:], strict=False))
        whole_weeks = ((end - start).days + 1) // 7
        assert whole_weeks <= len(found) <= whole_weeks + 1
        if found:
            assert (found[0] - start).days == (day - 1) % 7
        return
    months = MONTHS_PER_PERIOD[frequency]
    blocks = [_months_between(start, d) // months for d in found]
    assert blocks == sorted(set(blocks)), "two dates in one period"
    # every block wholly inside the period has its date; at most the block count over all
    spanned = _months_between(start, end) // months + 1
    assert len(found) <= spanned
    inner = [b for b in range(spanned) if _block_inside(start, end, b, months)]
    assert set(inner) <= set(blocks)


def _block_inside(start: date, end: date, block: int, months: int) -> bool:
    index = start.year * 12 + start.month - 1 + block * months
    first = date(index // 12, index % 12 + 1, 1)
    following = index + months
    last = date(following // 12, following % 12 + 1, 1) - timedelta(days=1)
    return start <= first and last <= end


@given(st.dates(date(2000, 1, 1), date(2097, 12, 31)), lines())
def test_a_whole_year_from_a_first_of_month_has_the_frequencys_count(first, line):
    start = first.replace(day=1)
    end = date(start.year + 1, start.month, 1) - timedelta(days=1)
    frequency, day = line
    found = occurrences(start, end, frequency, day)
    if frequency is Frequency.WEEKLY:
        assert len(found) in (52, 53)
    else:
        assert len(found) == 12 // MONTHS_PER_PERIOD[frequency]
