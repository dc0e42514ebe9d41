"""The anomaly_scan bench at a tiny size: both sides (the engine's scan and the plain SQL) find
every planted anomaly of every compared rule, and the same findings; no timing asserted."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import select

from app.core.db import Database
from app.oversight.models import AlarmSample, AnomalyAlarm
from bench import anomaly_sql
from bench.databases import resolve_server_url, scratch_database
from bench.registry import BenchContext, discover
from bench.scenarios.anomaly_scan import LAST, compared_rules

SIZE = 2500  # the planted rounds and a few more: every rule has its history
ENGINES = ["sqlite"]
if os.environ.get("LIMS_TEST_POSTGRES_URL"):
    ENGINES.append(os.environ["LIMS_TEST_POSTGRES_URL"])


def _alarms(db: Database) -> list[dict[str, Any]]:
    with db.reading() as session:
        rows = session.execute(select(AnomalyAlarm.id, AnomalyAlarm.rule_code, AnomalyAlarm.batch_id,
                                      AnomalyAlarm.responsible_user_id)).all()
        samples: dict[int, set[int]] = {}
        for alarm_id, sample_id in session.execute(select(AlarmSample.alarm_id, AlarmSample.sample_id)):
            samples.setdefault(alarm_id, set()).add(sample_id)
    return [{"rule": code, "batch_id": batch_id, "user_id": user_id, "samples": samples.get(alarm_id, set())}
            for alarm_id, code, batch_id, user_id in rows]


def _matches(alarm: dict[str, Any], planted: dict[str, Any]) -> bool:
    """The alarm is about the planted anomaly: its samples, batch and analyst, as far as named."""
    wanted = set(planted.get("sample_ids", ())) | ({planted["sample_id"]} if "sample_id" in planted else set())
    if wanted and not wanted & alarm["samples"]:
        return False
    if "batch_id" in planted and alarm["batch_id"] != planted["batch_id"]:
        return False
    return not ("analyst_id" in planted and alarm["user_id"] != planted["analyst_id"])


def _side(label: str, server_url: str | None) -> tuple[Any, list[dict[str, Any]], list[str]]:
    scenario = discover()["anomaly_scan"]
    side = scenario.ours if label == "ours" else scenario.baseline
    with scratch_database(server_url) as url:
        db = Database(url)
        try:
            prepared = side(BenchContext(db=db, size=SIZE))
            digest = prepared.fingerprint(prepared.timed())
            codes, _, _ = compared_rules(db, SIZE)
            return digest, _alarms(db), codes
        finally:
            db.dispose()


@pytest.mark.parametrize("database_url", ENGINES)
def test_both_sides_find_every_planted_anomaly(database_url: str) -> None:
    server_url = resolve_server_url(database_url)
    ours, alarms, codes = _side("ours", server_url)
    baseline, no_alarms, _ = _side("baseline", server_url)

    assert not no_alarms  # the baseline only reads
    assert ours == baseline  # per rule: the same number of findings, the same fingerprints
    work = LAST["ours"].workload
    assert work is not None and work.results >= SIZE
    dialect = "postgresql" if server_url else "sqlite"
    expected = set(anomaly_sql.available(dialect))
    assert set(codes) <= expected
    assert {"A01", "A02", "A03", "A05", "A06", "A07", "A09", "A10", "A12", "A13", "A14", "A18",
            "A19"} <= set(codes)
    if dialect == "postgresql":
        assert {"A04", "A08"} <= set(codes)
    for code in codes:
        for planted in work.planted.get(code, ()):
            assert any(a["rule"] == code and _matches(a, planted) for a in alarms), (code, planted)
            assert LAST["baseline"].keys[code] == LAST["ours"].keys[code]
            assert LAST["baseline"].keys[code], code


def test_sql_keys_follow_the_rules_key_format() -> None:
    """A few key shapes, the contract with the rule modules (fingerprint = sha256("code|key"))."""
    from bench.scenarios.anomaly_scan import fingerprint_of

    assert anomaly_sql._ref(12, None) == "p12" and anomaly_sql._ref(0, 7) == "e7"
    assert anomaly_sql._grouped_keys([("NH3-N", 3, 12, None), ("NH3-N", 3, 9, None)]) == {"NH3-N|p12,p9"}
    assert len(fingerprint_of("A06", "1,2")) == 64
