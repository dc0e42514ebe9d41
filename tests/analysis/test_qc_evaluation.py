"""QC evaluation: each check passes and fails on hand-computed numbers (DOMAIN.md §4.2), a QC
position without a result fails, a duplicate pair below the MDL is not evaluated, what a failure
affects, runs that only ever append, the batch's state and qc_passed, who may evaluate; and the
arithmetic it stands on, as properties (RD, recovery, GB/T 8170 rounding)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.analysis import numbers, qc
from app.analysis.models import QcEvaluation
from tests.analysis.conftest import make_method
from tests.analysis.qc_fixtures import *  # noqa: F403
from tests.analysis.qc_fixtures import PASSING, batch_of, call, counts, enter, evaluate, find, refused, running_batch

amounts = st.decimals(min_value=D("0"), max_value=D("10000"), places=4, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------- properties of the arithmetic


@given(amounts, amounts)
def test_rd_is_symmetric_and_between_0_and_100_for_non_negative_values(x1: Decimal, x2: Decimal):
    rd = numbers.relative_deviation_pct(x1, x2)
    assert rd == numbers.relative_deviation_pct(x2, x1)
    if x1 + x2 == 0:
        assert rd is None
    else:
        assert D(0) <= rd <= D(100)
        assert (rd == 0) == (x1 == x2)


@given(amounts, st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=4))
def test_the_recovery_of_an_exact_spike_is_100(unspiked: Decimal, added: Decimal):
    assert numbers.recovery_pct(unspiked + added, unspiked, added) == 100
    assert numbers.recovery_pct(unspiked, unspiked, added) == 0


@given(st.decimals(min_value=D("-1000"), max_value=D("1000"), places=6), st.integers(min_value=0, max_value=4))
def test_gbt8170_rounds_once_half_to_even(value: Decimal, decimals: int):
    rounded = numbers.round_gbt8170(value, decimals=decimals)
    step = D(1).scaleb(-decimals)
    assert rounded == value.quantize(step, rounding=ROUND_HALF_EVEN)
    assert abs(rounded - value) <= step / 2
    assert numbers.round_gbt8170(-value, decimals=decimals) == -rounded  # rule 5: by the absolute value


# ---------------------------------------------------------------- every check, pass and fail


def test_all_checks_pass_on_good_numbers(db, bench):
    enter(db, bench, PASSING)
    rows = evaluate(db, bench)
    assert {e.kind for e in rows} == {"blank", "duplicate", "spike", "crm", "ccv", "curve"}
    assert all(e.passed for e in rows) and len(rows) == 6
    batch = batch_of(db, bench)
    assert batch.qc_passed is True and batch.state == "qc_evaluated"
    assert all(e.run == 1 and e.method_id == bench.method.method_id for e in rows)


def test_blank_below_the_mdl_passes_and_at_or_above_fails(db, bench):
    enter(db, bench, {**PASSING, "BLK1": "0.020"})
    blank = find(evaluate(db, bench), "blank")
    assert blank.passed is True and blank.value == D("0.020") and blank.limit_high == D("0.025")
    enter(db, bench, {"BLK1": "0.030"})
    blank = find(evaluate(db, bench), "blank")
    assert blank.passed is False and blank.value == D("0.030") and blank.run == 2
    detail = qc.detail_of(blank)
    assert detail["mdl"] == "0.025" and detail["result"]["value"] == "0.030" and detail["result"]["revision"] == 2
    assert "MDL" in detail["rule"]
    # a blank affects every sample of the batch for the parameter
    assert detail["scope"] == "parameter" and detail["affects"] == [s.sample_no for s in bench.samples]
    batch = batch_of(db, bench)
    assert batch.qc_passed is False and batch.state == "qc_failed"


def test_duplicate_rd_within_the_limit_for_its_level(db, bench):
    enter(db, bench, PASSING)  # 0.512 / 0.498: RD = 0.014 / 1.010 × 100 = 1.386 %
    duplicate = find(evaluate(db, bench), "duplicate", "S-001D")
    assert duplicate.passed is True
    assert numbers.round_gbt8170(duplicate.value, decimals=2) == D("1.39")
    assert duplicate.limit_high == D("10")  # mean 0.505 mg/L: the method's 0.1 mg/L step
    assert qc.detail_of(duplicate)["level"] == "0.505"
    enter(db, bench, {"S-001D": "0.400"})  # RD = 0.112 / 0.912 = 12.28 % > 10 %
    duplicate = find(evaluate(db, bench), "duplicate", "S-001D")
    assert duplicate.passed is False and numbers.round_gbt8170(duplicate.value, decimals=2) == D("12.28")
    assert qc.detail_of(duplicate)["affects"] == [bench.samples[0].sample_no]


def test_a_duplicate_pair_below_the_mdl_is_not_evaluated(db, bench):
    enter(db, bench, {**PASSING, "S-001": "0.010", "S-001D": "0.020"})
    duplicate = find(evaluate(db, bench), "duplicate")
    assert duplicate.passed is None and duplicate.value is None
    assert qc.detail_of(duplicate)["reason"] == "both_below_mdl"
    assert batch_of(db, bench).qc_passed is True  # not evaluated is not a failure


def test_spike_recovery_outside_80_to_120_fails(db, bench):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})  # (0.590 − 0.200) / 0.500 = 78 %
    spike = find(evaluate(db, bench), "spike")
    assert spike.passed is False and spike.value == D("78")
    assert (spike.limit_low, spike.limit_high) == (D("80"), D("120"))
    assert qc.detail_of(spike)["affects"] == [bench.samples[1].sample_no]
    enter(db, bench, {"S-002SP": "0.650"})  # 90 %
    assert find(evaluate(db, bench), "spike").value == D("90")


def test_crm_within_and_outside_its_certified_range(db, bench):
    enter(db, bench, PASSING)  # 1.03 within 1.00 ± 0.05
    crm = find(evaluate(db, bench), "crm")
    assert crm.passed is True and (crm.limit_low, crm.limit_high) == (D("0.95"), D("1.05"))
    enter(db, bench, {"CRM1": "1.06"})
    crm = find(evaluate(db, bench), "crm")
    assert crm.passed is False and crm.value == D("1.06")
    assert qc.detail_of(crm)["scope"] == "parameter"


def test_ccv_deviation_against_the_tolerance(db, bench):
    enter(db, bench, PASSING)  # 0.545 vs 0.500: 9 %
    ccv = find(evaluate(db, bench), "ccv")
    assert ccv.passed is True and ccv.value == D("9") and ccv.limit_high == D("10")
    enter(db, bench, {"CCV1": "0.445"})  # −11 %
    ccv = find(evaluate(db, bench), "ccv")
    assert ccv.passed is False and ccv.value == D("11")
    assert D(qc.detail_of(ccv)["signed_deviation"]) == D("-11")


def test_a_curve_below_r_min_fails(db, analyst, nh3n_method, two_samples, uv):
    bench = running_batch(db, analyst, nh3n_method, two_samples, instrument=uv, curve_r="0.9989")
    enter(db, bench, PASSING)
    curve = find(evaluate(db, bench), "curve")
    assert curve.passed is False and curve.value == D("0.9989") and curve.limit_low == D("0.999")
    assert curve.curve_id is not None and curve.position_id is None


def test_a_curve_method_without_a_curve_fails(db, analyst, nh3n_method, two_samples, uv):
    bench = running_batch(db, analyst, nh3n_method, two_samples, instrument=uv, curve_r=None)
    enter(db, bench, PASSING)
    curve = find(evaluate(db, bench), "curve")
    assert curve.passed is False and qc.detail_of(curve)["reason"] == "no_curve"


def test_a_direct_method_has_no_curve_check(db, technical, analyst, two_samples, uv):
    direct = make_method(db, technical, "HJ 1147-2020", calculation="direct")
    bench = running_batch(db, analyst, direct, two_samples, curve_r=None)
    enter(db, bench, PASSING)
    assert not [e for e in evaluate(db, bench) if e.kind == "curve"]


def test_a_qc_position_without_a_result_fails(db, bench):
    enter(db, bench, {k: v for k, v in PASSING.items() if k != "CRM1"})
    crm = find(evaluate(db, bench), "crm")
    assert crm.passed is False and crm.value is None and qc.detail_of(crm)["reason"] == "no_result"
    assert batch_of(db, bench).state == "qc_failed"


def test_a_duplicate_without_its_sample_result_fails(db, bench):
    enter(db, bench, {k: v for k, v in PASSING.items() if k != "S-001"})
    duplicate = find(evaluate(db, bench), "duplicate")
    assert duplicate.passed is False and qc.detail_of(duplicate)["reason"] == "no_result_for_original"


def test_runs_append_and_latest_evaluations_is_one_query(db, bench, count_queries):
    enter(db, bench, PASSING)
    evaluate(db, bench)
    evaluate(db, bench)
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(QcEvaluation)) == 12
        with count_queries() as counted:
            rows = qc.latest_evaluations(session, bench.batch.id)
        assert counted.count == 1 and {e.run for e in rows} == {2} and len(rows) == 6


def test_a_multi_parameter_standard_is_judged_for_the_parameter_it_was_measured_for(
        db, technical, analyst, two_samples, uv):
    from tests.analysis.conftest import NH3N, ParameterSpec

    method = make_method(db, technical, "HJ 9999-2020", calculation="direct",
                         parameters=(NH3N, ParameterSpec("TP", "mg/L", "0.01", 2)))
    bench = running_batch(db, analyst, method, two_samples, parameters=("NH3-N", "TP"), curve_r=None)
    enter(db, bench, PASSING)
    enter(db, bench, {"BLK1": "0.005", "S-001": "0.10", "S-001D": "0.10", "S-002": "0.10"}, "TP")
    rows = evaluate(db, bench)
    tp = [e for e in rows if e.parameter == "TP"]
    # the spike, CRM and CCV were measured for NH3-N only: their one expected value is NH3-N's
    assert sorted(e.kind for e in tp) == ["blank", "duplicate"] and all(e.passed for e in tp)
    assert all(e.passed for e in rows if e.parameter == "NH3-N")


# ---------------------------------------------------------------- who and when


def test_an_open_batch_is_not_evaluated(db, analyst, nh3n_method, two_samples, uv):
    bench = running_batch(db, analyst, nh3n_method, two_samples, instrument=uv, state="open")
    refused(db, lambda: call(db, qc.evaluate_batch, analyst, bench.batch), "qc_batch_not_started")


def test_a_submitted_batch_is_not_evaluated_again(db, analyst, nh3n_method, two_samples, uv):
    bench = running_batch(db, analyst, nh3n_method, two_samples, instrument=uv, state="submitted")
    refused(db, lambda: call(db, qc.evaluate_batch, analyst, bench.batch), "batch_already_submitted")


def test_only_the_batch_analyst_evaluates(db, bench, users):
    from tests.conftest import make_user

    enter(db, bench, PASSING)
    other = make_user(db, "analyst-2", "analyst")
    refused(db, lambda: call(db, qc.evaluate_batch, other, bench.batch), "not_the_batch_analyst")
    refused(db, lambda: call(db, qc.evaluate_batch, users["inspector"], bench.batch), "inspector_read_only")
    refused(db, lambda: call(db, qc.evaluate_batch, users["checker"], bench.batch), "permission_denied")
    assert counts(db)["QcEvaluation"] == 0
