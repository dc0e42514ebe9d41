"""QC too good to be true (DOMAIN.md §7 A01, A02, the lab's A19): each rule on data that must
trigger it, data just inside its threshold, and a scan window that leaves the anomaly out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from app.analysis.models import AnalysisBatch, BatchPosition, MethodVersion
from app.core.db import utcnow
from app.oversight.rules.base import Finding, ScanWindow
from app.people.models import User
from app.samples.models import Sample
from tests.conftest import make_user
from tests.oversight.conftest import *  # noqa: F403
from tests.oversight.conftest import LabRecords, run_rule

D = Decimal


def scan(db, code: str, *, since=None, batch_ids=None, **limits: str) -> list[Finding]:
    return run_rule(db, code, ScanWindow(until=utcnow(), since=since, batch_ids=batch_ids), **limits)

def duplicate_batch(lab: LabRecords, method: MethodVersion, analyst: User, sample: Sample, first: str, second: str,
                    hour: int) -> tuple[AnalysisBatch, BatchPosition]:
    """A signed batch with one duplicate pair (sample `first`, duplicate `second`), started `hour`
    hours into the series."""
    batch = lab.batch(method, analyst, started_at=lab.t(-500 + hour))
    lab.result(batch, sample, "NH3-N", first)
    dup = lab.qc_position(batch, "duplicate", of=lab._position_of(batch, sample))
    lab.result(batch, dup, "NH3-N", second)
    return batch, dup


def duplicate_series(lab: LabRecords, pairs: list[tuple[str, str]], *, analyst: User | None = None,
                     mdl: str = "0.025") -> list[tuple[AnalysisBatch, BatchPosition]]:
    method = lab.method(f"HJ 535-{lab._next()}", ("NH3-N", mdl))  # reports 3 decimals
    samples = lab.samples(len(pairs))
    return [duplicate_batch(lab, method, analyst or lab.users["analyst"], s, a, b, i * 3)
            for i, (s, (a, b)) in enumerate(zip(samples, pairs, strict=True))]


SCATTER = ("0.512", "0.530")


# ---------------------------------------------------------------- A01


def test_a01_three_of_ten_pairs_equal_at_reported_precision(db, lab):
    # pairs 2, 5 and 8 differ at full precision but not once rounded to 3 decimals
    pairs = [SCATTER] * 10
    for i in (1, 4, 7):
        pairs[i] = ("0.5121", "0.5124")
    series = duplicate_series(lab, pairs)
    found = scan(db, "A01")
    assert len(found) == 1
    f = found[0]
    batch, dup = series[7]
    assert f.key == f"NH3-N|p{dup.id}"
    assert f.batch_id == batch.id and f.parameter == "NH3-N"
    assert f.responsible_user_id == lab.users["analyst"].id
    assert len(f.sample_ids) == 1
    assert f.evidence["count"] == 3 and f.evidence["of_last"] == 10 and f.evidence["zero_pairs"] == 3
    assert [p["hit"] for p in f.evidence["pairs"]] == [False, True, False, False, True, False, False, True]
    assert f.evidence["pairs"][-1]["values"] == ["0.512", "0.512"]
    assert batch.batch_no in f.summary_zh and batch.batch_no in f.summary_en
    # a rescan finds the same anomaly under the same key
    assert [x.key for x in scan(db, "A01")] == [f.key]


def test_a01_not_when_the_zeros_are_spread_beyond_the_last_ten(db, lab):
    pairs = [SCATTER] * 11
    for i in (0, 5, 10):  # at the third zero, the last ten pairs (2..11) hold only two
        pairs[i] = ("0.600", "0.600")
    duplicate_series(lab, pairs)
    assert scan(db, "A01") == []
    assert scan(db, "A01", of_last="11") != []  # the same data with a wider window


def test_a01_not_with_two_zeros_and_not_for_pairs_below_the_mdl(db, lab):
    pairs = [SCATTER] * 10
    pairs[2] = pairs[6] = ("0.300", "0.300")
    pairs[8] = pairs[9] = ("0.010", "0.010")  # both below the MDL: not evaluated, counts for nothing
    duplicate_series(lab, pairs)
    assert scan(db, "A01") == []


def test_a01_analysts_are_judged_apart(db, lab):
    zero = ("0.300", "0.300")
    duplicate_series(lab, [zero, SCATTER, zero], analyst=lab.users["analyst"])
    duplicate_series(lab, [zero], analyst=make_user(db, "analyst2", "analyst"))
    assert scan(db, "A01") == []


def test_a01_reads_qc_evaluations_where_no_results_pair(db, lab):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    batches = []
    for i, rd in enumerate(["0", "3.2", "0.00", "1.5", "0"]):
        b = lab.batch(method, started_at=lab.t(-100 + i * 3))
        lab.qc(b, "duplicate", "NH3-N", rd)
        batches.append(b)
    found = scan(db, "A01")
    assert len(found) == 1
    assert found[0].batch_id == batches[4].id
    assert found[0].evidence["pairs"][-1]["values"] == ["RD 0 %"]


def test_a01_the_current_revision_decides(db, lab):
    series = duplicate_series(lab, [("0.300", "0.300"), ("0.300", "0.300"), ("0.400", "0.410")])
    batch, dup = series[2]
    first = lab._position_of(batch, lab_sample(db, batch))
    lab.result(batch, first, "NH3-N", "0.410", revision=2, reason="transcription")
    found = scan(db, "A01")
    assert [f.key for f in found] == [f"NH3-N|p{dup.id}"]


def lab_sample(db, batch: AnalysisBatch) -> Sample:
    with db.reading() as session:
        position = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id,
                                                               BatchPosition.role == "sample")).one()
        sample = session.get(Sample, position.sample_id)
        session.expunge(sample)
        return sample


def test_a01_window(db, lab):
    pairs = [("0.300", "0.300")] * 3
    series = duplicate_series(lab, pairs)
    last_signed = series[-1][0].submitted_at
    assert scan(db, "A01", since=last_signed + timedelta(seconds=1)) == []
    assert len(scan(db, "A01", since=last_signed)) == 1
    assert scan(db, "A01", batch_ids=(series[1][0].id,)) == []  # at the second zero the pattern was not there yet
    assert [f.batch_id for f in scan(db, "A01", batch_ids=(series[2][0].id,))] == [series[2][0].id]


# ---------------------------------------------------------------- A02


def spike_series(lab: LabRecords, recoveries: list[str], *, positions: bool = False) -> list[AnalysisBatch]:
    method = lab.method(f"HJ 535-{lab._next()}", ("NH3-N", "0.025"))
    batches = []
    for i, value in enumerate(recoveries):
        b = lab.batch(method, started_at=lab.t(-1000 + i * 3))
        position = lab.qc_position(b, "spike") if positions else None
        lab.qc(b, "spike", "NH3-N", value, position=position)
        batches.append(b)
    return batches


def test_a02_five_of_ten_recoveries_within_one_percent(db, lab):
    values = ["95.2", "99.0", "104.3", "100.4", "92.8", "101.0", "100.0", "97.5", "99.6", "105.1"]
    batches = spike_series(lab, values, positions=True)
    found = scan(db, "A02")
    assert len(found) == 1
    f = found[0]
    assert f.batch_id == batches[8].id  # the fifth within 100 ± 1 (99.0, 100.4, 101.0, 100.0, 99.6)
    assert f.key.startswith("NH3-N|p")
    assert f.evidence["in_band"] == 5 and f.evidence["count"] == "5" and f.evidence["band"] == "1"
    assert "sd_recent" not in f.evidence
    assert "99.6 %" in f.summary_en


def test_a02_not_with_four_in_the_band(db, lab):
    values = ["95.2", "99.0", "104.3", "100.4", "92.8", "101.1", "100.0", "97.5", "99.6", "105.1"]
    spike_series(lab, values)
    assert scan(db, "A02") == []


def alternating(a: str, b: str, n: int) -> list[str]:
    return [a if i % 2 == 0 else b for i in range(n)]


def test_a02_recent_spread_far_below_the_long_term(db, lab):
    # SD ratio of two alternating series of 20 = ratio of their spans: 13 / 40 = 0.325 < 0.333
    batches = spike_series(lab, alternating("80", "120", 20) + alternating("93.5", "106.5", 20))
    found = scan(db, "A02")
    assert [f.batch_id for f in found] == [batches[39].id]
    f = found[0]
    assert f.key.startswith("NH3-N|e")
    assert "in_band" not in f.evidence
    assert f.evidence["sd_ratio"] == "0.333" and f.evidence["long_n"] == 20 and f.evidence["sd_n"] == 20
    assert D(f.evidence["sd_recent"]) < D(f.evidence["sd_long"]) * D("0.333")


def test_a02_not_when_the_spread_is_just_above_a_third(db, lab):
    spike_series(lab, alternating("80", "120", 20) + alternating("93", "107", 20))  # 14 / 40 = 0.35
    assert scan(db, "A02") == []


def test_a02_needs_twenty_earlier_recoveries(db, lab):
    spike_series(lab, alternating("80", "120", 19) + alternating("97", "103", 20))
    assert scan(db, "A02") == []


def test_a02_window(db, lab):
    batches = spike_series(lab, ["100.2", "99.5", "100.9", "99.1", "100.0"])
    assert scan(db, "A02", since=batches[-1].submitted_at + timedelta(minutes=1)) == []
    assert len(scan(db, "A02", since=batches[-1].submitted_at)) == 1


# ---------------------------------------------------------------- A19


def blank_series(lab: LabRecords, values: list[str]) -> list[tuple[AnalysisBatch, BatchPosition]]:
    method = lab.method(f"HJ 535-{lab._next()}", ("NH3-N", "0.025"))
    out = []
    for i, value in enumerate(values):
        b = lab.batch(method, started_at=lab.t(-300 + i * 3))
        blank = lab.qc_position(b, "method_blank")
        lab.result(b, blank, "NH3-N", value)
        out.append((b, blank))
    return out


def test_a19_five_blanks_exactly_zero(db, lab):
    series = blank_series(lab, ["0.004", "0", "0.000", "0", "0.0", "0.00000"])
    found = scan(db, "A19")
    assert len(found) == 1
    f = found[0]
    batch, blank = series[5]
    assert f.key == f"NH3-N|p{blank.id}" and f.batch_id == batch.id
    assert f.evidence["zero_blanks"] == 5 and f.evidence["count"] == 5 and f.evidence["of_last"] == 5
    assert f.sample_ids == ()
    assert batch.batch_no in f.summary_zh


def test_a19_not_when_one_of_the_last_five_carries_noise(db, lab):
    blank_series(lab, ["0", "0", "0.001", "0", "0", "0.002", "0", "0", "0", "0"])
    assert scan(db, "A19") == []


def test_a19_reads_blank_evaluations_without_results(db, lab):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    for i in range(5):
        b = lab.batch(method, started_at=lab.t(-100 + i * 3))
        lab.qc(b, "blank", "NH3-N", "0")
    assert len(scan(db, "A19")) == 1


def test_a19_window(db, lab):
    series = blank_series(lab, ["0"] * 5)
    assert scan(db, "A19", batch_ids=(series[3][0].id,)) == []
    assert len(scan(db, "A19", batch_ids=(series[4][0].id,))) == 1
    assert scan(db, "A19", since=utcnow() + timedelta(hours=1)) == []
