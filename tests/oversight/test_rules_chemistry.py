"""Rules A06 (a part exceeds its whole) and A07 (a value below the MDL without qualifier): data
that must trigger them and data just inside the threshold that must not."""

from __future__ import annotations

from decimal import Decimal

from app.core.db import utcnow
from app.oversight.rules.base import Finding, ScanWindow, rule_by_code
from tests.oversight.conftest import run_rule

D = Decimal


def scan(db, code: str, window: ScanWindow | None = None, **limits: str) -> list[Finding]:
    return run_rule(db, code, window, **limits)

def nutrients(lab):
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"), ("TN", "0.05"))
    site = lab.site("WS01")
    return m, site


# ---------------------------------------------------------------- A06


def test_a06_part_above_whole_is_found_with_its_evidence(lab, db):
    m, site = nutrients(lab)
    s1, s2 = lab.samples(2, site=site, parameters=("NH3-N", "TN"))
    batch = lab.batch(m, parameters=("NH3-N", "TN"))
    part = lab.result(batch, s1, "NH3-N", "1.20")
    whole = lab.result(batch, s1, "TN", "1.00")
    # tolerance 10 % + MDL 0.025: 1.00 × 1.1 + 0.025 = 1.125 → 1.12 is inside, not found
    lab.result(batch, s2, "NH3-N", "1.12")
    lab.result(batch, s2, "TN", "1.00")

    found = scan(db, "A06")

    assert [f.key for f in found] == [",".join(str(i) for i in sorted((part.id, whole.id)))]
    f = found[0]
    assert f.sample_ids == (s1.id,) and f.parameter == "NH3-N" and f.site_id == site.id
    assert f.batch_id == batch.id and f.responsible_user_id == lab.users["analyst"].id
    assert f.evidence["part"]["value"] == "1.20" and f.evidence["whole"]["value"] == "1.00"
    assert f.evidence["limit"] == "1.125" and f.evidence["thresholds"] == {"tolerance_pct": "10"}
    assert s1.sample_no in f.summary_zh and s1.sample_no in f.summary_en and "1.20" in f.summary_en


def test_a06_tolerance_is_a_setting(lab, db):
    m, site = nutrients(lab)
    (s1,) = lab.samples(1, site=site, parameters=("NH3-N", "TN"))
    batch = lab.batch(m, parameters=("NH3-N", "TN"))
    lab.result(batch, s1, "NH3-N", "1.12")
    lab.result(batch, s1, "TN", "1.00")

    assert scan(db, "A06") == []
    found = scan(db, "A06", tolerance_pct="5")
    assert len(found) == 1 and found[0].evidence["thresholds"] == {"tolerance_pct": "5"}


def test_a06_pairs_across_batches_and_units_and_revisions(lab, db):
    metals = lab.method("HJ 700-2014", ("Pb", "0.00009"), ("Pb-D", "0.00009"))
    site = lab.site("JC-W01")
    s1, s2 = lab.samples(2, site=site, parameters=("Pb", "Pb-D"))
    total = lab.batch(metals, parameters=("Pb",))
    dissolved = lab.batch(metals, parameters=("Pb-D",), started_at=lab.t(-20))
    # dissolved 0.0050 mg/L = 5.0 μg/L > total 2.0 μg/L (× 1.1 + MDL 0.09 μg/L): another batch, another unit
    lab.result(total, s1, "Pb", "2.0", unit="μg/L")
    part = lab.result(dissolved, s1, "Pb-D", "0.0050")
    # s2: first entry too high, corrected by a revision: only the current result counts
    lab.result(total, s2, "Pb", "2.0", unit="μg/L")
    wrong = lab.result(dissolved, s2, "Pb-D", "5.0", unit="μg/L")
    lab.result(dissolved, lab._position_of(dissolved, s2), "Pb-D", "1.9", unit="μg/L", revision=2,
               supersedes=wrong, reason="transcription error corrected")

    found = scan(db, "A06")

    assert len(found) == 1
    assert found[0].sample_ids == (s1.id,) and str(part.id) in found[0].key.split(",")
    assert found[0].evidence["part"]["unit"] == "μg/L" and D(found[0].evidence["part"]["value"]) == D("5")


def test_a06_below_mdl_parts_never_trigger_and_other_pairs(lab, db):
    m = lab.method("HJ 828-2017", ("COD", "4"), ("CODMn", "0.5"), ("BOD5", "0.5"))
    site = lab.site("WS02")
    s1, s2 = lab.samples(2, site=site, parameters=("COD", "CODMn", "BOD5"))
    batch = lab.batch(m, parameters=("COD", "CODMn", "BOD5"))
    lab.result(batch, s1, "COD", "10")
    lab.result(batch, s1, "CODMn", "30", below_mdl=True)  # flagged below MDL: never judged
    lab.result(batch, s2, "COD", "10")
    bod = lab.result(batch, s2, "BOD5", "12")  # 12 > 10 × 1.1 + 0.5

    found = scan(db, "A06")
    assert len(found) == 1 and found[0].parameter == "BOD5" and str(bod.id) in found[0].key


def test_a06_window_judges_pairs_entered_inside_it(lab, db):
    m, site = nutrients(lab)
    (s1,) = lab.samples(1, site=site, parameters=("NH3-N", "TN"))
    batch = lab.batch(m, parameters=("NH3-N", "TN"), started_at=lab.t(-30))
    lab.result(batch, s1, "NH3-N", "2.0")
    lab.result(batch, s1, "TN", "1.0")

    assert scan(db, "A06", ScanWindow(until=utcnow(), since=lab.t(-10))) == []
    assert len(scan(db, "A06", ScanWindow(until=utcnow(), since=lab.t(-40)))) == 1
    assert len(scan(db, "A06", ScanWindow(until=utcnow(), batch_ids=(batch.id,)))) == 1
    assert scan(db, "A06", ScanWindow(until=utcnow(), batch_ids=(batch.id + 1000,))) == []


# ---------------------------------------------------------------- A07


def test_a07_value_below_mdl_without_qualifier(lab, db):
    m, site = nutrients(lab)
    s1, s2, s3, s4 = lab.samples(4, site=site)
    batch = lab.batch(m)
    bad = lab.result(batch, s1, "NH3-N", "0.012")
    lab.result(batch, s2, "NH3-N", "0.012", below_mdl=True)  # marked: fine
    lab.result(batch, s3, "NH3-N", "0.012", qualifier="Q-BLK")  # carries a qualifier: fine
    lab.result(batch, s4, "NH3-N", "0.025")  # at the MDL, not below

    found = scan(db, "A07")

    assert [f.key for f in found] == [str(bad.id)]
    f = found[0]
    assert f.sample_ids == (s1.id,) and f.evidence["mdl"] == "0.025" and f.evidence["value"] == "0.012"
    assert f.evidence["thresholds"] == {"mdl": "0.025"} and s1.sample_no in f.summary_zh
    assert rule_by_code("A07").blocks_issue


def test_a07_leaves_direct_readings_alone(lab, db):
    """A direct reading has no detection limit (MDL 0): a water temperature of −0.4 ℃ is a value."""
    from tests.analysis.conftest import ParameterSpec, make_method

    m = make_method(db, lab.users["technical_manager"], "GB 13195-1991",
                    parameters=(ParameterSpec("WT", "℃", "0", 1, below_mdl="none"),))
    (s1,) = lab.samples(1, site=lab.site("WS01"))
    lab.result(lab.batch(m), s1, "WT", "-0.4", unit="℃")

    assert scan(db, "A07") == []


def test_a07_converts_units_and_reads_only_current_sample_results(lab, db):
    m, site = nutrients(lab)
    s1, s2 = lab.samples(2, site=site)
    batch = lab.batch(m)
    bad = lab.result(batch, s1, "NH3-N", "20", unit="μg/L")  # 0.020 mg/L < 0.025
    first = lab.result(batch, s2, "NH3-N", "0.010")
    lab.result(batch, lab._position_of(batch, s2), "NH3-N", "0.010", revision=2, supersedes=first,
               below_mdl=True, reason="marked below the detection limit")
    blank = lab.qc_position(batch, "method_blank")
    lab.result(batch, blank, "NH3-N", "0.001")  # QC positions are not sample results

    assert [f.key for f in scan(db, "A07")] == [str(bad.id)]


def test_a07_window(lab, db):
    m, site = nutrients(lab)
    (s1,) = lab.samples(1, site=site)
    batch = lab.batch(m, started_at=lab.t(-30))
    lab.result(batch, s1, "NH3-N", "0.001")

    assert scan(db, "A07", ScanWindow(until=utcnow(), since=lab.t(-5))) == []
    assert len(scan(db, "A07", ScanWindow(until=utcnow(), since=lab.t(-31)))) == 1
