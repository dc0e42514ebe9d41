"""Smoke test of the receive_scan benchmark (bench/scenarios/receive_scan.py): a tiny size runs both
sides through the app and the bare Starlette handler and writes its row. No timing asserts."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from bench.runner import main

ENGINES = ["sqlite"] + ([os.environ["LIMS_TEST_POSTGRES_URL"]] if os.environ.get("LIMS_TEST_POSTGRES_URL") else [])


@pytest.mark.parametrize("database_url", ENGINES)
def test_receive_scan_runs_and_reports_p95(tmp_path: Path, database_url: str, capsys) -> None:
    output = tmp_path / "bench.json"
    console = Console(file=io.StringIO(), width=120)
    code = main(["--only", "receive_scan", "--size", "7", "--output", str(output), "--database-url", database_url],
                console=console)
    assert code == 0, console.file.getvalue()
    [row] = json.loads(output.read_text(encoding="utf-8"))
    assert row["scenario"] == "receive_scan" and row["target"] == 3
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
    printed = capsys.readouterr().err
    assert "receive_scan ours: 7 requests" in printed and "p95 ratio ours/baseline" in printed
