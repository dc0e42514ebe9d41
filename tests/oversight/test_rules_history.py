"""Rule A08: a result far from its site's history (robust z from median and MAD)."""

from __future__ import annotations

from decimal import Decimal

from app.core.db import utcnow
from app.oversight.rules.base import Finding, ScanWindow, rule_by_code
from app.oversight.rules.history import robust_z
from tests.oversight.conftest import run_rule

D = Decimal
# median 1.0; deviations 0,0,0,0,.1,.1,.1,.1,.2,.2 → MAD 0.1; z = 0.6745·(x − 1)/0.1
HISTORY = ("1.0", "1.1", "0.9", "1.0", "1.2", "0.8", "1.0", "1.1", "0.9", "1.0")


def scan(db, window: ScanWindow | None = None, **limits: str) -> list[Finding]:
    return run_rule(db, "A08", window, **limits)

def site_with_history(lab, code: str = "WS01", values: tuple[str, ...] = HISTORY, method=None):
    method = method or lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    site = lab.site(code)
    batch = lab.batch(method, started_at=lab.t(-24 * 20))
    for i, value in enumerate(values):
        (sample,) = lab.samples(1, site=site, collected_at=lab.t(-24 * (60 - i)))
        lab.result(batch, sample, "NH3-N", value)
    return method, site


def new_results(lab, method, site, *values: str, unit: str = "mg/L", entered_at=None):
    samples = lab.samples(len(values), site=site, collected_at=lab.t(-48))
    batch = lab.batch(method, started_at=lab.t(-24))
    return samples, [lab.result(batch, s, "NH3-N", v, unit=unit, entered_at=entered_at)
                     for s, v in zip(samples, values, strict=True)]


def test_robust_z():
    center, mad, z = robust_z(D("1.52"), [D(v) for v in HISTORY])
    assert (center, mad) == (D("1.0"), D("0.1")) and z == D("3.50740")
    assert robust_z(D("5"), [D("1")] * 10)[2] is None


def test_a08_outlier_found_and_the_boundary_just_inside_not(lab, db):
    method, site = site_with_history(lab)
    (s_out, s_in), (out, _) = new_results(lab, method, site, "1.52", "1.518")  # z 3.507 / 3.494

    found = scan(db)

    assert [f.key for f in found] == [str(out.id)]
    f = found[0]
    assert f.sample_ids == (s_out.id,) and f.site_id == site.id and f.parameter == "NH3-N"
    assert f.evidence["median"] == "1.0" and f.evidence["mad"] == "0.1" and f.evidence["z"] == "3.51"
    assert f.evidence["history_n"] == 10 and f.evidence["thresholds"] == {"min_history": "10", "z": "3.5"}
    assert s_out.sample_no in f.summary_zh and "WS01" in f.summary_en and "1.52" in f.summary_en
    assert not rule_by_code("A08").blocks_issue and not rule_by_code("A08").on_submission


def test_a08_low_outliers_count_too_and_units_are_converted(lab, db):
    method, site = site_with_history(lab)
    _, (low, high) = new_results(lab, method, site, "400", "1600", unit="μg/L")  # 0.4 and 1.6 mg/L

    assert sorted(f.key for f in scan(db)) == sorted([str(low.id), str(high.id)])


def test_a08_needs_enough_history_and_a_spread(lab, db):
    method, site = site_with_history(lab, "WS01", HISTORY[:9])
    new_results(lab, method, site, "9.0")
    assert scan(db) == []  # 9 prior results < 10
    assert len(scan(db, min_history="9")) == 1

    _, flat = site_with_history(lab, "WS02", ("1.0",) * 12, method=method)
    new_results(lab, method, flat, "9.0")
    # WS02: MAD 0 gives no scale, the result is not judged (no division by zero)
    assert [f.site_id for f in scan(db, min_history="9")] == [site.id]


def test_a08_other_sites_and_later_collections_are_not_history(lab, db):
    method, site = site_with_history(lab, "WS01")
    other = lab.site("WS09")
    _, (r,) = new_results(lab, method, other, "9.0")
    assert scan(db) == []  # WS09 has no history
    # a result collected before the history of WS01 is judged against nothing
    (early,) = lab.samples(1, site=site, collected_at=lab.t(-24 * 90))
    batch = lab.batch(method)
    lab.result(batch, early, "NH3-N", "9.0")
    assert scan(db) == []


def test_a08_window_judges_new_results_against_older_history(lab, db):
    method, site = site_with_history(lab)  # entered 20 days ago
    _, (out,) = new_results(lab, method, site, "3.0", entered_at=lab.t(-2))

    assert [f.key for f in scan(db, ScanWindow(until=utcnow(), since=lab.t(-3)))] == [str(out.id)]
    assert scan(db, ScanWindow(until=utcnow(), since=lab.t(-1))) == []
    assert len(scan(db, ScanWindow(until=utcnow(), batch_ids=(out.batch_id,)))) == 1
    assert scan(db, ScanWindow(until=lab.t(-3))) == []  # entered after the scan's end
