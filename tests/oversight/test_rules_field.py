"""Anomaly rule A18: custody gap, field blank above the MDL, field duplicate beyond its RD limit;
each on data that must trigger it and data just inside, and outside the window."""

from __future__ import annotations

from app.analysis.models import MethodVersion
from app.oversight.rules.base import ScanWindow
from app.samples.models import Sample
from tests.oversight.conftest import run_rule


def found(db, lab, window: ScanWindow | None = None, **limits):
    return run_rule(db, "A18", window, **limits)

def test_a18_custody_gap_is_one_finding_per_sample(db, lab):
    site = lab.site("WS01")
    gap, fine = lab.samples(2, site=site)
    with db.transaction() as session:
        session.get(Sample, gap.id).custody_gap = True
    findings = found(db, lab)
    assert [f.key for f in findings] == [f"custody_gap:{gap.id}"]
    assert findings[0].sample_ids == (gap.id,) and findings[0].site_id == site.id
    assert findings[0].evidence["issue"] == "custody_gap" and findings[0].evidence["threshold"]
    # received 47 h ago: a scan of the last hour does not judge it
    assert found(db, lab, ScanWindow(until=lab.now, since=lab.t(-1))) == []


def test_a18_field_blank_above_the_mdl_and_at_the_mdl(db, lab):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"), ("TN", "0.05"))
    dirty, clean = lab.samples(2, kind="field_blank", parameters=("NH3-N", "TN"))
    batch = lab.batch(method, parameters=("NH3-N", "TN"))
    lab.result(batch, dirty, "NH3-N", "0.031")
    lab.result(batch, dirty, "TN", "0.04")  # below its MDL
    lab.result(batch, clean, "NH3-N", "0.025")  # at the MDL: not above
    findings = found(db, lab)
    assert [f.key for f in findings] == [f"field_blank:{dirty.id}"]
    f = findings[0]
    assert [r["parameter"] for r in f.evidence["results"]] == ["NH3-N"]
    assert f.evidence["results"][0]["value"] == "0.031" and f.evidence["results"][0]["mdl"] == "0.025"
    assert f.evidence["threshold"] == {"blank_mdl_multiple": "1"} and dirty.sample_no in f.summary_zh
    # a looser setting (2 × MDL) lets it pass
    assert found(db, lab, blank_mdl_multiple="2") == []


def test_a18_a_revised_blank_result_is_judged_on_its_current_revision(db, lab):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (blank,) = lab.samples(1, kind="field_blank")
    batch = lab.batch(method)
    first = lab.result(batch, blank, "NH3-N", "0.050")
    position = lab._position_of(batch, blank)
    lab.result(batch, position, "NH3-N", "0.010", revision=2, supersedes=first, reason="transcription error")
    assert found(db, lab) == []


def _duplicate(db, lab, original_value: str, duplicate_value: str, limits: str = "[]"):
    method = lab.method(f"HJ {lab._next()}", ("NH3-N", "0.025"))
    with db.transaction() as session:
        session.get(MethodVersion, method.id).duplicate_rd_limits = limits
    (original,) = lab.samples(1)
    (dup,) = lab.samples(1, kind="field_duplicate")
    with db.transaction() as session:
        session.get(Sample, dup.id).duplicate_of_id = original.id
    batch = lab.batch(method)
    lab.result(batch, original, "NH3-N", original_value)
    lab.result(batch, dup, "NH3-N", duplicate_value)
    return original, dup


def test_a18_field_duplicate_beyond_the_default_20_percent(db, lab):
    original, dup = _duplicate(db, lab, "1.00", "1.60")  # RD = 0.6 / 2.6 = 23.08 %
    findings = found(db, lab)
    assert [f.key for f in findings] == [f"field_duplicate:{dup.id}"]
    f = findings[0]
    assert set(f.sample_ids) == {original.id, dup.id}
    result = f.evidence["results"][0]
    assert result["limit_pct"] == "20" and result["limit_from"] == "default"
    assert result["rd_pct"] == "23.1"  # judged on the exact RD, shown to 0.1 %


def test_a18_field_duplicate_just_inside_the_limit(db, lab):
    _duplicate(db, lab, "1.00", "1.50")  # RD 20 %: not beyond
    assert found(db, lab) == []


def test_a18_field_duplicate_uses_the_methods_rd_limits_first(db, lab):
    _, dup = _duplicate(db, lab, "1.00", "1.30", limits='[["0", "10"]]')  # RD 13 % > the method's 10 %
    findings = found(db, lab)
    assert [f.key for f in findings] == [f"field_duplicate:{dup.id}"]
    assert findings[0].evidence["results"][0]["limit_from"] == "method"


def test_a18_field_duplicate_both_below_mdl_is_not_judged(db, lab):
    _duplicate(db, lab, "0.010", "0.020")
    assert found(db, lab) == []
