"""Run the benchmark scenarios, print a table and write var/bench.json.

Each side of each scenario runs on its own freshly migrated scratch database; only the callable
a side returns after its setup is timed (time.perf_counter). `--repeat N` keeps the best of N,
with fresh databases every time. A ratio over target is reported, not failed: exit code 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.core.db import Database
from bench.databases import engine_label, resolve_server_url, scratch_database
from bench.registry import BenchContext, Scenario, Side, discover

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "var" / "bench.json"


@dataclass
class Measurement:
    scenario: Scenario
    ours_s: float
    baseline_s: float

    @property
    def ratio(self) -> float:
        return self.ours_s / self.baseline_s if self.baseline_s > 0 else math.inf

    @property
    def over(self) -> bool:
        return self.ratio > self.scenario.target

    def as_row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "ours_s": round(self.ours_s, 6),
            "baseline_s": round(self.baseline_s, 6),
            "ratio": round(self.ratio, 2) if math.isfinite(self.ratio) else None,
            "target": self.scenario.target,
        }


class FingerprintMismatch(RuntimeError):
    """Ours and the baseline did not end in the same state: the comparison is not fair."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", metavar="SCENARIO", help="run just this scenario")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each side N times, keep the best (default 1)")
    parser.add_argument("--size", type=int, metavar="N",
                        default=int(os.environ["LIMS_BENCH_SIZE"])
                        if os.environ.get("LIMS_BENCH_SIZE") else None,
                        help="items per scenario (default: each scenario's own, e.g. 100000; "
                             "env LIMS_BENCH_SIZE)")
    parser.add_argument("--database-url", metavar="URL",
                        default=os.environ.get("LIMS_BENCH_DATABASE_URL"),
                        help="'sqlite' (default, temp dir) or a PostgreSQL server URL such as "
                             "postgresql://postgres@127.0.0.1/postgres ('postgresql' for that); "
                             "a scratch database lims_bench_<random> is created and dropped. "
                             "env LIMS_BENCH_DATABASE_URL")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="PATH",
                        help="where to write the JSON rows (default var/bench.json)")
    return parser


def time_side(side: Side, server_url: str | None, size: int) -> tuple[float, Any]:
    with scratch_database(server_url) as url:
        db = Database(url)
        try:
            prepared = side(BenchContext(db=db, size=size))
            gc.collect()
            started = time.perf_counter()
            result = prepared.timed()
            elapsed = time.perf_counter() - started
            return elapsed, prepared.fingerprint(result)
        finally:
            db.dispose()


def measure(
    scenario: Scenario, server_url: str | None, size: int | None, repeat: int, console: Console
) -> Measurement:
    size = size or scenario.default_size
    best = {"ours": math.inf, "baseline": math.inf}
    for attempt in range(1, repeat + 1):
        fingerprints = {}
        for label in ("ours", "baseline"):
            side = scenario.ours if label == "ours" else scenario.baseline
            with console.status(f"{scenario.name}: {label} ({size:,} items, run {attempt})"):
                elapsed, fingerprints[label] = time_side(side, server_url, size)
            console.log(f"{scenario.name} {label}: {elapsed:.3f} s")
            best[label] = min(best[label], elapsed)
        if fingerprints["ours"] != fingerprints["baseline"]:
            raise FingerprintMismatch(
                f"{scenario.name}: ours ended with {fingerprints['ours']!r}, "
                f"baseline with {fingerprints['baseline']!r}"
            )
    return Measurement(scenario, best["ours"], best["baseline"])


def render(measurements: list[Measurement], engine: str, console: Console) -> None:
    table = Table(title=f"EnviroLIMS benchmarks — {engine}")
    table.add_column("scenario")
    table.add_column("ours (s)", justify="right")
    table.add_column("baseline (s)", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result", justify="center")
    for m in measurements:
        mark = "[red]✗ over[/red]" if m.over else "[green]✓ pass[/green]"
        table.add_row(
            m.scenario.name, f"{m.ours_s:.3f}", f"{m.baseline_s:.3f}", f"{m.ratio:.2f}",
            f"≤ {m.scenario.target:g}", mark,
        )
    console.print(table)
    overs = [m for m in measurements if m.over]
    for m in overs:
        console.print(
            f"[bold red]OVER TARGET[/bold red] {m.scenario.name}: ratio {m.ratio:.2f} "
            f"> {m.scenario.target:g}"
        )
    if not overs:
        console.print("[green]All scenarios within target.[/green]")


def write_rows(path: Path, measurements: list[Measurement]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [m.as_row() for m in measurements]
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = _parser().parse_args(argv)
    console = console or Console()
    scenarios = discover()
    if args.only is not None:
        if args.only not in scenarios:
            names = ", ".join(scenarios)
            print(f"error: unknown scenario {args.only!r}; known scenarios: {names}",
                  file=sys.stderr)
            return 2
        scenarios = {args.only: scenarios[args.only]}
    if args.repeat < 1 or (args.size is not None and args.size < 1):
        print("error: --repeat and --size must be at least 1", file=sys.stderr)
        return 2
    try:
        server_url = resolve_server_url(args.database_url)
    except Exception as exc:  # a malformed URL: say so plainly
        print(f"error: bad --database-url: {exc}", file=sys.stderr)
        return 2
    engine = engine_label(server_url)
    measurements = []
    try:
        for scenario in scenarios.values():
            measurements.append(measure(scenario, server_url, args.size, args.repeat, console))
    except FingerprintMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    render(measurements, engine, console)
    write_rows(args.output, measurements)
    console.print(f"Wrote {args.output}")
    return 0
