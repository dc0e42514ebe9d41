"""Smoke test of the `import_results` bench scenario: a tiny size on each engine, both sides write
the same results (the runner's fingerprint check), no timing assertions."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from bench.runner import main

ENGINES = ["sqlite"]
if os.environ.get("LIMS_TEST_POSTGRES_URL"):
    ENGINES.append(os.environ["LIMS_TEST_POSTGRES_URL"])


@pytest.mark.parametrize("database_url", ENGINES)
def test_import_results_runs_and_both_sides_agree(tmp_path: Path, database_url: str) -> None:
    output = tmp_path / "bench.json"
    console = Console(file=io.StringIO(), width=120)
    code = main(["--only", "import_results", "--size", "200", "--output", str(output),
                 "--database-url", database_url], console=console)
    assert code == 0, console.file.getvalue()
    [row] = json.loads(output.read_text(encoding="utf-8"))
    assert row["scenario"] == "import_results" and row["target"] == 5
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
