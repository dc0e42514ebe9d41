"""Smoke test for `python -m bench`: tiny sizes, no timing assertions (timing lives in bench/)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench.runner import main

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"scenario", "ours_s", "baseline_s", "ratio", "target"}
SIZE = "2500"  # > 2 transactions of 1,000 appends, 125 instruments; a second or two per engine
TARGETS = {"anomaly_scan": 3, "audit_append": 3, "audit_verify": 3, "forward_traceability": 2, "holding_worklist": 3,
           "import_results": 5, "instrument_status": 2, "label_pdf": 1.5, "receive_scan": 3, "register_samples": 5,
           "report_render": 1.5, "report_sign": 1.2}

ENGINES = ["sqlite"]
if os.environ.get("LIMS_TEST_POSTGRES_URL"):
    ENGINES.append(os.environ["LIMS_TEST_POSTGRES_URL"])


@pytest.mark.parametrize("database_url", ENGINES)
def test_every_scenario_writes_a_row(tmp_path: Path, database_url: str) -> None:
    output = tmp_path / "bench.json"
    console = Console(file=io.StringIO(), width=120)

    code = main(
        ["--size", SIZE, "--output", str(output), "--database-url", database_url],
        console=console,
    )

    assert code == 0, console.file.getvalue()
    rows = json.loads(output.read_text(encoding="utf-8"))
    assert [row["scenario"] for row in rows] == list(TARGETS)
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["ours_s"] > 0 and row["baseline_s"] > 0
        assert isinstance(row["ratio"], float)
        assert row["target"] == TARGETS[row["scenario"]]


def test_only_runs_one_scenario(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    code = main(["--only", "audit_verify", "--size", "10", "--output", str(output)],
                console=Console(file=io.StringIO()))
    assert code == 0
    assert [row["scenario"] for row in json.loads(output.read_text())] == ["audit_verify"]


def test_unknown_scenario_exits_2_and_lists_the_names(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "unknown", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert all(name in done.stderr for name in TARGETS)
    assert not output.exists()

