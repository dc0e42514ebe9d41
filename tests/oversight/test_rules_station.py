"""Anomaly rule A13: an automatic station's reading vs the manual result of the same site,
parameter and time (± 1 h, the closest reading): relative above 4 × MDL, absolute below."""

from __future__ import annotations

from datetime import timedelta

from app.oversight.rules.base import ScanWindow, rule_by_code
from app.oversight.stations import import_station_csv
from tests.oversight.conftest import run_rule


def found(db, lab, window: ScanWindow | None = None):
    return run_rule(db, "A13", window)

def readings(db, users, *rows: tuple[str, str, object, str]) -> None:
    """Import (site, parameter, time, value) rows through the station import service."""
    lines = ["site_code,parameter,measured_at,value,unit"]
    lines += [f"{site},{parameter},{at.isoformat()},{value},mg/L" for site, parameter, at, value in rows]
    with db.transaction() as session:
        import_station_csv(session, users["technical_manager"], "stations.csv", ("\n".join(lines) + "\n").encode())


def _manual(lab, site_code: str, value: str, method):
    site = lab.site(site_code)
    (sample,) = lab.samples(1, site=site, collected_at=lab.t(-48))
    batch = lab.batch(method)
    lab.result(batch, sample, "NH3-N", value)
    return site, sample, batch


def test_a13_relative_deviation_above_four_mdl(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    far_site, far, batch = _manual(lab, "WS01", "1.00", method)
    near_site, near, _ = _manual(lab, "WS02", "1.00", method)
    collected = lab.t(-48)
    readings(db, users,
             ("WS01", "NH3-N", collected + timedelta(minutes=30), "1.25"),   # 25 % off
             ("WS01", "NH3-N", collected + timedelta(minutes=50), "1.00"),   # farther: not the one compared
             ("WS02", "NH3-N", collected - timedelta(minutes=20), "1.20"))   # exactly 20 %: allowed
    findings = found(db, lab)
    assert len(findings) == 1
    f = findings[0]
    assert f.key.startswith(f"{far.id}:NH3-N:") and f.sample_ids == (far.id,) and f.site_id == far_site.id
    assert f.batch_id == batch.id and f.evidence["criterion"] == "relative" and f.evidence["deviation"] == "25.00"
    assert f.evidence["automatic"] == "1.25" and f.evidence["manual"] == "1.00"
    assert f.evidence["threshold"] == {"window_minutes": "60", "rel_pct": "20", "mdl_factor": "4",
                                       "abs_mdl_multiple": "2"}
    assert "WS01" in f.summary_zh and not rule_by_code("A13").blocks_issue
    assert [x.key for x in found(db, lab)] == [f.key]  # a rescan finds the same key


def test_a13_absolute_deviation_at_low_levels(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    _, low, _ = _manual(lab, "WS03", "0.050", method)  # below 4 × MDL = 0.100
    _, edge, _ = _manual(lab, "WS04", "0.050", method)
    collected = lab.t(-48)
    readings(db, users, ("WS03", "NH3-N", collected, "0.110"),   # |a − m| = 0.060 > 2 × MDL
             ("WS04", "NH3-N", collected, "0.100"))              # 0.050 = 2 × MDL: allowed
    findings = found(db, lab)
    assert [f.sample_ids for f in findings] == [(low.id,)]
    assert findings[0].evidence["criterion"] == "absolute" and findings[0].evidence["deviation"] == "0.060"


def test_a13_readings_more_than_an_hour_away_are_not_compared(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    _manual(lab, "WS05", "1.00", method)
    readings(db, users, ("WS05", "NH3-N", lab.t(-48) + timedelta(minutes=61), "5.00"),
             ("WS05", "NH3-N", lab.t(-48) - timedelta(minutes=61), "5.00"))
    assert found(db, lab) == []


def test_a13_window_judges_new_results_or_new_station_data(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    _manual(lab, "WS06", "1.00", method)  # entered about 23 h ago
    readings(db, users, ("WS06", "NH3-N", lab.t(-48), "2.00"))  # imported now
    assert len(found(db, lab, ScanWindow(until=lab.now + timedelta(minutes=5), since=lab.t(-20)))) == 1
    assert found(db, lab, ScanWindow(until=lab.t(-10), since=lab.t(-20))) == []
    assert len(found(db, lab, ScanWindow(until=lab.t(-10), since=lab.t(-30)))) == 1
