"""`lims anomalies scan [--since] [--rule]` ends with one line per rule run, in code order, giving
the alarms raised (a rescan raises none); a bad --since exits 2; `lims anomalies rules` lists the
rules with their settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from app.cli import app as cli_app
from app.config import Settings
from app.oversight import anomalies
from app.oversight.models import AnomalyScan
from tests.oversight.test_anomalies import count, fake_rules, finding  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"LIMS_DATA_DIR": str(settings.data_dir), "LIMS_DATABASE_URL": settings.database_url,
            "LIMS_LANGUAGE": "en", "COLUMNS": "200"}


def lims(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(cli_app, ["anomalies", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_scan_ends_with_one_line_per_rule(env, db, lab, fake_rules):  # noqa: F811
    (s1,) = lab.samples(1)
    fake_rules["Z01"].findings = [finding("a", [s1]), finding("b", [s1])]
    result = lims(env, "scan")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-2:] == ["Z01 Test rule: 2 alarms raised", "Z02 Soft test rule: 0 alarms raised"]
    again = lims(env, "scan", "--since", "2026-11-01")
    assert again.output.strip().splitlines()[-2:] == ["Z01 Test rule: 0 alarms raised",
                                                      "Z02 Soft test rule: 0 alarms raised"]
    window, _ = fake_rules["Z01"].calls[-1]
    assert window.since.isoformat() == "2026-10-31T16:00:00+00:00"  # midnight in the lab's zone (UTC+8)
    with db.reading() as session:
        assert [s.trigger for s in session.scalars(select(AnomalyScan))] == ["cli", "cli"]


def test_named_rules_and_iso_times(env, db, fake_rules):  # noqa: F811
    fake_rules["Z02"].findings = [finding("soft")]
    result = lims(env, "scan", "--rule", "z02", "--since", "2026-11-01T08:30:00+08:00")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == ["Z02 Soft test rule: 1 alarms raised"]
    assert fake_rules["Z01"].calls == []
    assert fake_rules["Z02"].calls[0][0].since.isoformat() == "2026-11-01T00:30:00+00:00"


@pytest.mark.parametrize("args", [("--since", "yesterday"), ("--since", "2026-13-01"),
                                  ("--since", "2026-11-01T25:00"), ("--rule", "A99")])
def test_bad_options_exit_2(env, db, fake_rules, args):  # noqa: F811
    result = lims(env, "scan", *args)
    assert result.exit_code == 2, result.output
    assert count(db, AnomalyScan) == 0


def test_rules_lists_the_settings(env, db, users, fake_rules):  # noqa: F811
    with db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "Z02", enabled=False,
                                    thresholds={"n": "7"}, reason="停用")
    result = lims(env, "rules")
    assert result.exit_code == 0, result.output
    z01 = [line for line in result.output.splitlines() if "Z01" in line][0]
    z02 = [line for line in result.output.splitlines() if "Z02" in line][0]
    assert "yes" in z01 and "n=3" in z01 and "ratio=0.5" in z01
    assert "no" in z02 and "n=7" in z02 and " 1 " in z02
    disabled = lims(env, "scan", "--rule", "Z02")
    assert disabled.exit_code == 0 and "Z02 is disabled" in disabled.output
