"""Westgard rules: each rule with a series that triggers it and one that just misses it, and
properties over random series (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.analysis.westgard import RULE_1_3S, RULE_2_2S, RULE_4_1S, RULE_10_X, RULE_R_4S, westgard_flags

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CENTRE, SD = D("100"), D("2")


def series(*z: str) -> list[D]:
    """Values at `z` standard deviations from the centre."""
    return [CENTRE + D(k) * SD for k in z]


def flagged(values: list[D], rule: str) -> list[int]:
    return [i for i, f in enumerate(westgard_flags(values, CENTRE, SD)) if rule in f]


def test_1_3s_beyond_three_sd_either_side_but_not_on_it():
    assert flagged(series("0", "3.01", "-0.5", "-3.2"), RULE_1_3S) == [1, 3]
    assert flagged(series("3", "-3", "2.99"), RULE_1_3S) == []


def test_2_2s_two_consecutive_beyond_two_sd_on_the_same_side():
    assert flagged(series("0", "2.1", "2.5"), RULE_2_2S) == [2]
    assert flagged(series("-2.1", "-2.2", "-2.3"), RULE_2_2S) == [1, 2]
    assert flagged(series("2.1", "0", "2.5"), RULE_2_2S) == []  # not consecutive
    assert flagged(series("2.1", "-2.5"), RULE_2_2S) == []  # opposite sides
    assert flagged(series("2", "2.5"), RULE_2_2S) == []  # exactly on 2s is not beyond


def test_r_4s_a_consecutive_pair_spanning_more_than_four_sd():
    assert flagged(series("2.1", "-2.1"), RULE_R_4S) == [1]
    assert flagged(series("0", "-1.5", "2.6"), RULE_R_4S) == [2]
    assert flagged(series("2", "-2"), RULE_R_4S) == []  # exactly 4s
    assert flagged(series("2.5", "0", "-2.5"), RULE_R_4S) == []  # not neighbours


def test_4_1s_four_consecutive_beyond_one_sd_on_the_same_side():
    assert flagged(series("1.1", "1.5", "1.2", "1.9"), RULE_4_1S) == [3]
    assert flagged(series("-1.1", "-1.5", "-1.2", "-1.9", "-1.3"), RULE_4_1S) == [3, 4]
    assert flagged(series("1.1", "1.5", "0.9", "1.9"), RULE_4_1S) == []
    assert flagged(series("1.1", "1.5", "-1.2", "1.9"), RULE_4_1S) == []


def test_10_x_ten_consecutive_on_the_same_side_of_the_mean():
    assert flagged(series(*["0.1"] * 10), RULE_10_X) == [9]
    assert flagged(series(*["-0.3"] * 11), RULE_10_X) == [9, 10]
    assert flagged(series(*["0.1"] * 9), RULE_10_X) == []
    assert flagged(series(*["0.1"] * 5, "0", *["0.1"] * 5), RULE_10_X) == []  # on the mean breaks the run
    assert flagged(series(*["0.1"] * 5, "-0.1", *["0.1"] * 5), RULE_10_X) == []


def test_a_calm_series_has_no_flags_and_an_empty_one_is_fine():
    assert westgard_flags(series("0.5", "-0.5", "0.9", "-1.2", "0.3"), CENTRE, SD) == [frozenset()] * 5
    assert westgard_flags([], CENTRE, SD) == []


def test_a_chart_without_spread_is_refused():
    with pytest.raises(ValueError):
        westgard_flags(series("0"), CENTRE, D("0"))


z_within_one = st.decimals(min_value=D("-1"), max_value=D("1"), places=3)


@PROPERTY
@given(st.lists(z_within_one, max_size=40), st.decimals(min_value=D("-1000"), max_value=D("1000"), places=2),
       st.decimals(min_value=D("0.001"), max_value=D("100"), places=3))
def test_a_series_within_one_sd_never_flags_1_3s_2_2s_r_4s_or_4_1s(z, centre, sd):
    flags = westgard_flags([centre + k * sd for k in z], centre, sd)
    assert len(flags) == len(z)
    assert all(not (f & {RULE_1_3S, RULE_2_2S, RULE_R_4S, RULE_4_1S}) for f in flags)


@PROPERTY
@given(st.lists(z_within_one, min_size=1, max_size=30),
       st.decimals(min_value=D("0.001"), max_value=D("100"), places=3))
def test_shifting_every_value_by_3_1_sd_flags_1_3s_on_each(z, sd):
    centre = D("50")
    shifted = [centre + (k * D("0.02") + D("3.1")) * sd for k in z]  # 3.08 to 3.12 s above
    flags = westgard_flags(shifted, centre, sd)
    assert all(RULE_1_3S in f for f in flags)
    assert all(RULE_2_2S in f for f in flags[1:]) and RULE_2_2S not in flags[0]
    assert all(RULE_R_4S not in f for f in flags)


@PROPERTY
@given(st.lists(st.decimals(min_value=D("-6"), max_value=D("6"), places=2), max_size=30))
def test_the_flags_do_not_depend_on_scale_or_centre(z):
    """The rules speak in standard deviations: the same z-series flags alike at any centre and s."""
    a = westgard_flags([D(0) + k * D(1) for k in z], D(0), D(1))
    b = westgard_flags([D("250.5") + k * D("0.37") for k in z], D("250.5"), D("0.37"))
    assert a == b


@PROPERTY
@given(st.lists(st.decimals(min_value=D("-6"), max_value=D("6"), places=2), max_size=30))
def test_mirroring_the_series_keeps_every_flag(z):
    up = westgard_flags([k for k in z], D(0), D(1))
    down = westgard_flags([-k for k in z], D(0), D(1))
    assert up == down
