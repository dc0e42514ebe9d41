"""Copied or made-up results (DOMAIN.md §7 A03, A04, A05): each rule on data that must trigger it,
data just inside its threshold, and a scan window that leaves the anomaly out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.analysis.models import AnalysisBatch, MethodVersion
from app.core.db import utcnow
from app.oversight.rules.base import Finding, ScanWindow
from app.people.models import User
from tests.conftest import make_user
from tests.oversight.conftest import *  # noqa: F403
from tests.oversight.conftest import LabRecords, run_rule

D = Decimal


def scan(db, code: str, *, since=None, batch_ids=None, **limits: str) -> list[Finding]:
    return run_rule(db, code, ScanWindow(until=utcnow(), since=since, batch_ids=batch_ids), **limits)

def method(lab: LabRecords) -> MethodVersion:
    return lab.method(f"HJ 535-{lab._next()}", ("NH3-N", "0.025"), ("TN", "0.05"))  # 3 decimals


def batch_of(lab: LabRecords, m: MethodVersion, values: list[str], *, parameter: str = "NH3-N", hour: float = -100,
             analyst: User | None = None, entered_at: list[datetime] | None = None,
             below: set[int] = frozenset()) -> tuple[AnalysisBatch, list]:  # type: ignore[assignment]
    """A signed batch with one new sample per value, in position order."""
    batch = lab.batch(m, analyst, started_at=lab.t(hour), parameters=(parameter,))
    samples = lab.samples(len(values), parameters=(parameter,))
    for i, (s, v) in enumerate(zip(samples, values, strict=True)):
        lab.result(batch, s, parameter, v, below_mdl=i in below,
                   entered_at=entered_at[i] if entered_at else None)
    return batch, samples


# ---------------------------------------------------------------- A03


def test_a03_three_samples_with_one_full_precision_value(db, lab):
    m = method(lab)
    batch, samples = batch_of(lab, m, ["0.512", "0.5120", "0.601", "0.512", "0.733"])
    found = scan(db, "A03")
    assert len(found) == 1
    f = found[0]
    assert f.key == f"{batch.id}|NH3-N|0.512"
    assert f.sample_ids == tuple(sorted(s.id for s in (samples[0], samples[1], samples[3])))
    assert f.batch_id == batch.id and f.parameter == "NH3-N" and f.responsible_user_id == batch.analyst_id
    assert f.evidence["samples"] == 3 and f.evidence["value"] == "0.512"
    assert [r["sample_no"] for r in f.evidence["results"]] == sorted(
        s.sample_no for s in (samples[0], samples[1], samples[3]))
    assert batch.batch_no in f.summary_zh and samples[0].sample_no in f.summary_en
    assert [x.key for x in scan(db, "A03")] == [f.key]  # a rescan finds the same anomaly


def test_a03_not_for_two_samples_other_batches_or_qc(db, lab):
    m = method(lab)
    batch, samples = batch_of(lab, m, ["0.512", "0.512", "0.601"])
    batch_of(lab, m, ["0.512", "0.700"])  # the third 0.512 is in another batch
    lab.result(batch, lab.qc_position(batch, "duplicate"), "NH3-N", "0.512")  # a QC position is no sample
    batch_of(lab, m, ["0.512", "0.513", "0.514"], parameter="TN")
    assert scan(db, "A03") == []
    assert len(scan(db, "A03", samples="2")) == 1


def test_a03_not_below_the_mdl(db, lab):
    m = method(lab)
    batch_of(lab, m, ["0.010", "0.010", "0.010", "0.030", "0.030", "0.030"], below={3, 4, 5})
    assert scan(db, "A03") == []


def test_a03_the_current_revision_decides(db, lab):
    m = method(lab)
    batch, samples = batch_of(lab, m, ["0.512", "0.512", "0.600"])
    assert scan(db, "A03") == []
    position = lab._position_of(batch, samples[2])
    lab.result(batch, position, "NH3-N", "0.512", revision=2, reason="copied")
    assert len(scan(db, "A03")) == 1


def test_a03_window(db, lab):
    m = method(lab)
    batch, _ = batch_of(lab, m, ["0.512"] * 3)
    other, _ = batch_of(lab, m, ["0.3", "0.4"])
    assert scan(db, "A03", since=utcnow() + timedelta(minutes=1)) == []
    assert len(scan(db, "A03", since=lab.t(-200))) == 1
    assert scan(db, "A03", batch_ids=(other.id,)) == []
    assert [f.batch_id for f in scan(db, "A03", batch_ids=(batch.id,))] == [batch.id]


# ---------------------------------------------------------------- A04


SOURCE = ["0.512", "0.634", "0.221", "0.887", "0.405", "0.760"]


def test_a04_five_consecutive_results_equal_to_an_earlier_series(db, lab):
    m = method(lab)
    earlier, earlier_samples = batch_of(lab, m, SOURCE, hour=-200)
    later, later_samples = batch_of(lab, m, ["0.900", *SOURCE[1:], "0.100"], hour=-100,
                                    analyst=make_user(db, "analyst2", "analyst"))
    found = scan(db, "A04")
    assert len(found) == 1
    f = found[0]
    assert f.batch_id == later.id and f.parameter == "NH3-N"
    assert f.responsible_user_id == later.analyst_id
    assert f.sample_ids == tuple(sorted(s.id for s in later_samples[1:6]))
    assert f.evidence["kind"] == "equal" and f.evidence["length"] == 5 and f.evidence["run"] == 5
    assert f.evidence["values"] == SOURCE[1:] and f.evidence["earlier_values"] == SOURCE[1:]
    assert f.evidence["earlier_batch_no"] == earlier.batch_no
    assert f.evidence["earlier_samples"] == [s.sample_no for s in earlier_samples[1:]]
    assert earlier.batch_no in f.summary_zh and later.batch_no in f.summary_en
    assert [x.key for x in scan(db, "A04")] == [f.key]


def test_a04_a_constant_shift_of_an_earlier_series(db, lab):
    m = method(lab)
    batch_of(lab, m, SOURCE, hour=-200)
    shifted = [str(D(v) + D("0.150")) for v in SOURCE]
    later, _ = batch_of(lab, m, shifted, hour=-100)
    found = scan(db, "A04")
    assert len(found) == 1
    f = found[0]
    assert f.batch_id == later.id
    assert f.evidence["kind"] == "shift" and f.evidence["shift"] == "0.150" and f.evidence["length"] == 6
    assert "0.15" in f.summary_en


def test_a04_not_for_four_equal_results(db, lab):
    m = method(lab)
    batch_of(lab, m, SOURCE, hour=-200)
    batch_of(lab, m, ["0.900", *SOURCE[1:5], "0.100", SOURCE[5]], hour=-100)  # four, then broken
    assert scan(db, "A04") == []
    assert len(scan(db, "A04", run="4")) == 1


def test_a04_not_across_a_result_below_the_mdl_nor_for_repeated_values(db, lab):
    m = method(lab)
    batch_of(lab, m, SOURCE, hour=-300)
    batch_of(lab, m, [*SOURCE[:3], "0.010", *SOURCE[3:]], hour=-250, below={3})  # broken by a non-detect
    batch_of(lab, m, ["0.300"] * 5, hour=-200)
    batch_of(lab, m, ["0.300"] * 5, hour=-150)  # one repeated value: A03's case, no series
    batch_of(lab, m, ["0.400"] * 5, hour=-100)  # nor a "shift" of it
    batch_of(lab, m, SOURCE, parameter="TN", hour=-50)  # another parameter
    assert scan(db, "A04") == []


def test_a04_window(db, lab):
    m = method(lab)
    earlier, _ = batch_of(lab, m, SOURCE, hour=-200)
    later, _ = batch_of(lab, m, SOURCE, hour=-100)
    assert scan(db, "A04", since=later.submitted_at + timedelta(seconds=1)) == []
    assert [f.batch_id for f in scan(db, "A04", since=later.submitted_at)] == [later.id]
    assert scan(db, "A04", batch_ids=(earlier.id,)) == []
    assert [f.batch_id for f in scan(db, "A04", batch_ids=(later.id,))] == [later.id]


# ---------------------------------------------------------------- A05


MAY = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)


def digits_batch(lab: LabRecords, values: list[str], *, at: datetime = MAY, analyst: User | None = None,
                 step: timedelta = timedelta(minutes=5)) -> tuple[AnalysisBatch, list]:
    return batch_of(lab, method(lab), values, analyst=analyst, entered_at=[at + i * step for i in range(len(values))])


def with_digits(counts: list[int]) -> list[str]:
    """Values ≥ the MDL whose third decimal is digit d counts[d] times."""
    return [f"0.{100 + 10 * i + d}" for d, c in enumerate(counts) for i in range(c)]


def test_a05_values_ending_in_0_or_5(db, lab):
    values = [f"{D('0.1') + D('0.005') * i}" for i in range(60)]
    values[0] = "0.1004"  # rounded to 0.100 (GB/T 8170) before its last digit is read
    batch, samples = digits_batch(lab, values)
    found = scan(db, "A05")
    assert len(found) == 1
    f = found[0]
    assert f.key == f"{batch.analyst_id}|NH3-N|2026Q2"
    assert f.evidence["n"] == 60 and f.evidence["chi2"] == "240.00"
    assert f.evidence["chi2_threshold"] == "21.67" and f.evidence["min_n"] == 50 and f.evidence["df"] == 9
    assert f.evidence["digit_counts"] == {"0": 30, "1": 0, "2": 0, "3": 0, "4": 0, "5": 30, "6": 0, "7": 0,
                                          "8": 0, "9": 0}
    assert f.sample_ids == tuple(sorted(s.id for s in samples))
    assert f.responsible_user_id == batch.analyst_id and f.batch_id is None
    assert "240.00" in f.summary_zh and "2026Q2" in f.summary_en


def test_a05_not_for_uniform_digits(db, lab):
    digits_batch(lab, with_digits([6] * 10))
    assert scan(db, "A05") == []


def test_a05_chi2_boundary(db, lab):
    digits_batch(lab, with_digits([12, 10, 5, 4, 4, 3, 3, 3, 3, 3]))  # χ² = 19.2
    assert scan(db, "A05") == []
    assert len(scan(db, "A05", chi2="19")) == 1


def test_a05_chi2_just_above(db, lab):
    digits_batch(lab, with_digits([12, 11, 5, 4, 3, 3, 3, 3, 3, 3]))  # χ² = 22
    [f] = scan(db, "A05")
    assert f.evidence["chi2"] == "22.00"


def test_a05_needs_fifty_values_of_one_analyst_quarter(db, lab):
    values = [f"{D('0.1') + D('0.005') * i}" for i in range(49)]
    digits_batch(lab, values)
    assert scan(db, "A05") == []
    assert len(scan(db, "A05", min_n="49")) == 1
    digits_batch(lab, ["0.300"], analyst=make_user(db, "analyst2", "analyst"))
    assert scan(db, "A05") == []


def test_a05_quarters_are_the_labs(db, lab):
    # 30 results before midnight of 30 June in Shanghai (Q2), 30 after it (Q3): both in June in UTC
    values = [f"{D('0.1') + D('0.005') * i}" for i in range(60)]
    digits_batch(lab, values[:30], at=datetime(2026, 6, 30, 13, 0, tzinfo=UTC), step=timedelta(minutes=1))
    digits_batch(lab, values[30:], at=datetime(2026, 6, 30, 16, 30, tzinfo=UTC), step=timedelta(minutes=1))
    assert scan(db, "A05") == []
    assert sorted(f.key.rsplit("|", 1)[1] for f in scan(db, "A05", min_n="30")) == ["2026Q2", "2026Q3"]


def test_a05_not_below_the_mdl(db, lab):
    digits_batch(lab, ["0.010"] * 60)
    assert scan(db, "A05") == []


def test_a05_window_judges_whole_quarters_touched(db, lab):
    values = [f"{D('0.1') + D('0.005') * i}" for i in range(60)]
    batch, _ = digits_batch(lab, values)
    last = MAY + 59 * timedelta(minutes=5)
    assert scan(db, "A05", since=last + timedelta(seconds=1)) == []
    assert len(scan(db, "A05", since=last)) == 1  # one result in the window: its quarter is judged
    assert len(scan(db, "A05", batch_ids=(batch.id,))) == 1
    other, _ = digits_batch(lab, ["0.300"], at=datetime(2026, 8, 1, tzinfo=UTC))
    assert scan(db, "A05", batch_ids=(other.id,)) == []


def test_a04_compares_numbers_not_texts(db, lab):
    m = method(lab)
    batch_of(lab, m, SOURCE, hour=-200)
    later, _ = batch_of(lab, m, [v + "0" for v in SOURCE], hour=-100)  # 0.5120 is 0.512
    [f] = scan(db, "A04")
    assert f.batch_id == later.id and f.evidence["kind"] == "equal"


def test_scaled_values_compare_exactly():
    from app.oversight.rules.copying import scaled

    assert scaled("0.5") == scaled("0.50") == scaled("5E-1") and hash(scaled("0.5")) == hash(scaled("5E-1"))
    assert scaled("-0.125") == -125_000_000 and scaled("12") == 12_000_000_000
    assert scaled("0.0000000001") != scaled("0.0000000002") and scaled("0.0000000001") != 0
    assert scaled("0.634") - scaled("0.512") == scaled("0.784") - scaled("0.662")
