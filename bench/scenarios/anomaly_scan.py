"""anomaly_scan: `lims anomalies scan` over about 1,000,000 analysis results (size = results) vs
the same rules written as plain SQL aggregates (issue 10 "Performance": ratio ≤ 3, memory < 1 GB).

Setup (untimed, the same on both sides): `bench.anomaly_workload.generate` writes a two-year lab
history (12 analysts, 8 methods, 11 parameters, 50 sites, batches of 20 samples with blanks,
duplicates and spikes, QC evaluations, holding clocks, some corrections) with planted anomalies
for every rule, by COPY on PostgreSQL; ANALYZE. Compared are the rules that are registered
(`app.oversight.rules.base.all_rules()`) AND have SQL for this engine in `bench.anomaly_sql`; the
setup prints which (and which are left out).

Ours: exactly what `lims anomalies scan` does, for the compared rules: in one `db.transaction()`,
`scan(session, None, ScanWindow(until=now), trigger="cli", rules=compared, progress=...)` — every
rule's `find` over the whole history, fingerprints looked up in chunks, alarms, their samples and
one audit event each inserted, the scan row and its audit event, commit. The progress callback
prints one line per rule (findings, seconds inside the rule's `find`: the engine's own work is the
rest). Peak memory of the timed part is read from the kernel (the high-water mark is reset before,
/proc/self/clear_refs, VmHWM after; ru_maxrss where that is missing) and printed.

Baseline: `bench.anomaly_sql.run` on one bare connection: one SQL statement per rule (window
functions, self-joins, array_agg medians), rows turned into the rules' keys; per-rule seconds.

Fingerprint: per compared rule, the number of findings and a digest of their sorted fingerprints
sha256("code|key") — ours read back from anomaly_alarm, the baseline's computed from its keys; the
runner stops with exit 1 when they differ (the keys that differ are printed first).
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.core.db import Database, utcnow
from bench import anomaly_sql
from bench.anomaly_workload import Workload, generate
from bench.registry import BenchContext, Prepared, register

Digest = tuple[tuple[str, int, str], ...]


@dataclass
class Side:
    """What one side found and how long each rule took (for the printed comparison)."""

    keys: dict[str, set[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    peak_mb: float | None = None
    total: float = 0.0  # seconds of the whole timed part
    workload: Workload | None = None


LAST: dict[str, Side] = {}  # the latest run of each side (the baseline prints the comparison)


def fingerprint_of(code: str, key: str) -> str:
    return hashlib.sha256(f"{code}|{key}".encode()).hexdigest()


def digest(fingerprints: dict[str, list[str]]) -> Digest:
    return tuple((code, len(fps), hashlib.sha256("\n".join(sorted(fps)).encode()).hexdigest())
                 for code, fps in sorted(fingerprints.items()))


def compared_rules(db: Database, size: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(compared, registered without SQL here or at this size, SQL without a registered rule)."""
    from app.oversight.rules.base import all_rules

    registered = {rule.code for rule in all_rules()}
    with_sql = set(anomaly_sql.available(db.engine.dialect.name, size))
    return sorted(registered & with_sql), sorted(registered - with_sql), sorted(with_sql - registered)


def limits_in_force(db: Database, codes: list[str]) -> dict[str, dict[str, Any]]:
    """The limits the engine will use (the rule's defaults until the QM sets others)."""
    from app.oversight.anomalies import rule_settings

    with db.reading() as session:
        settings = rule_settings(session)
    return {code: dict(settings[code].limits) for code in codes}


def _prepare(ctx: BenchContext) -> tuple[list[str], Workload]:
    started = time.perf_counter()
    work = generate(ctx.db, ctx.size)
    print(f"\nanomaly_scan: {work.results:,} results, {work.samples:,} samples, {work.batches:,} batches, "
          f"{work.sites} sites written in {time.perf_counter() - started:.1f} s")
    codes, no_sql, no_rule = compared_rules(ctx.db, ctx.size)
    print(f"anomaly_scan: compared rules {', '.join(codes) or '(none)'}"
          + (f"; registered without SQL here (or at this size): {', '.join(no_sql)}" if no_sql else "")
          + (f"; SQL without a rule yet: {', '.join(no_rule)}" if no_rule else ""))
    return codes, work


# ---------------------------------------------------------------- memory


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(reset: bool) -> float:
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- ours


class _TimedFind:
    """Wraps a rule's `find`: the seconds spent inside it (the engine's work excluded) and the
    keys it yields."""

    def __init__(self, rule: Any, side: Side) -> None:
        self.rule, self.side, self.original = rule, side, rule.find

    def __call__(self, session: Any, window: Any, limits: Any) -> Iterator[Any]:
        code = self.rule.code
        keys = self.side.keys.setdefault(code, set())
        started = time.perf_counter()
        found = iter(self.original(session, window, limits))
        spent = time.perf_counter() - started
        try:
            while True:
                started = time.perf_counter()
                try:
                    finding = next(found)
                except StopIteration:
                    return
                finally:
                    spent += time.perf_counter() - started
                    self.side.seconds[code] = spent
                keys.add(finding.key)
                yield finding
        finally:
            self.side.seconds[code] = spent


def _printer(label: str, side: Side) -> Callable[[str, int], None]:
    """The progress callback: a line per rule when the next one starts (and at the end)."""
    state: dict[str, Any] = {"code": None, "found": 0}

    def flush() -> None:
        if state["code"] is not None:
            code = state["code"]
            print(f"anomaly_scan {label}: {code} {state['found']:>6} findings  {side.seconds.get(code, 0):8.2f} s")

    def progress(code: str, found: int) -> None:
        if code != state["code"]:
            flush()
            state["code"] = code
        state["found"] = found

    progress.flush = flush  # type: ignore[attr-defined]
    return progress


def ours(ctx: BenchContext) -> Prepared:
    from app.oversight.anomalies import scan
    from app.oversight.models import AnomalyAlarm
    from app.oversight.rules.base import ScanWindow, rule_by_code

    codes, work = _prepare(ctx)
    db = ctx.db
    side = Side(workload=work)
    LAST["ours"] = side

    def run() -> Any:
        wrapped = []
        for code in codes:
            rule = rule_by_code(code)
            rule.find = _TimedFind(rule, side)  # an instance attribute shadows the method
            wrapped.append(rule)
        progress = _printer("ours", side)
        reset = _reset_peak()
        try:
            with db.transaction() as session:
                outcome = scan(session, None, ScanWindow(until=utcnow()), trigger="cli", rules=codes,
                               progress=progress)
        finally:
            for rule in wrapped:
                del rule.find
        progress.flush()  # type: ignore[attr-defined]
        side.peak_mb = _peak_mb(reset)
        return outcome

    def fingerprint(outcome: Any) -> Digest:
        with db.reading() as session:
            rows = session.execute(select(AnomalyAlarm.rule_code, AnomalyAlarm.fingerprint)
                                   .where(AnomalyAlarm.rule_code.in_(codes))).all()
        side.fingerprints = {code: [] for code in codes}
        for code, fp in rows:
            side.fingerprints[code].append(fp)
        expected = {code: sorted(fingerprint_of(code, k) for k in side.keys.get(code, ())) for code in codes}
        if {c: sorted(f) for c, f in side.fingerprints.items()} != expected:
            print("anomaly_scan ours: the alarms raised differ from the findings' keys")
        raised = sum(outcome.raised.values())
        engine = max(0.0, side.total - sum(side.seconds.values()))
        print(f"anomaly_scan ours: {raised:,} alarms raised; peak memory {side.peak_mb:,.0f} MB "
              f"(issue: < 1 GB); rules {sum(side.seconds.values()):.2f} s, engine and commit {engine:.2f} s")
        return digest(side.fingerprints)

    def timed() -> Any:
        started = time.perf_counter()
        try:
            return run()
        finally:
            side.total = time.perf_counter() - started

    return Prepared(timed, fingerprint)


# ---------------------------------------------------------------- baseline


def baseline(ctx: BenchContext) -> Prepared:
    from app.core.labtime import lab_calendar

    codes, work = _prepare(ctx)
    db = ctx.db
    limits = limits_in_force(db, codes)
    with db.reading() as session:
        tz = lab_calendar(session).tz
    offset = int((utcnow().astimezone(tz).utcoffset() or 0).total_seconds() // 3600) if tz else 8
    side = Side(workload=work)
    LAST["baseline"] = side

    def run() -> dict[str, set[str]]:
        context = anomaly_sql.Ctx(db.engine.dialect.name, utcnow(), tz=str(tz), offset_hours=offset)
        with db.engine.connect() as conn:
            keys, seconds = anomaly_sql.run(conn, codes, limits, context)
        side.keys, side.seconds = keys, seconds
        return keys

    def fingerprint(keys: dict[str, set[str]]) -> Digest:
        side.fingerprints = {code: [fingerprint_of(code, k) for k in found] for code, found in keys.items()}
        _compare(codes)
        return digest(side.fingerprints)

    return Prepared(run, fingerprint)


def _compare(codes: list[str]) -> None:
    """Per rule: findings and seconds of both sides; the keys that differ, if any."""
    mine, theirs = LAST.get("ours"), LAST.get("baseline")
    if mine is None or theirs is None:
        return
    print(f"anomaly_scan: {'rule':<5} {'ours':>8} {'sql':>8} {'ours s':>9} {'sql s':>9} {'ratio':>7}")
    for code in codes:
        a, b = mine.seconds.get(code, 0.0), theirs.seconds.get(code, 0.0)
        ratio = f"{a / b:7.2f}" if b > 0 else "      -"
        print(f"anomaly_scan: {code:<5} {len(mine.keys.get(code, ())):>8} {len(theirs.keys.get(code, ())):>8} "
              f"{a:9.2f} {b:9.2f} {ratio}")
    for code in codes:
        only_ours = sorted(mine.keys.get(code, set()) - theirs.keys.get(code, set()))
        only_sql = sorted(theirs.keys.get(code, set()) - mine.keys.get(code, set()))
        if only_ours or only_sql:
            print(f"anomaly_scan: {code} keys only in ours {only_ours[:10]} ({len(only_ours)}), "
                  f"only in the SQL {only_sql[:10]} ({len(only_sql)})")


register(
    "anomaly_scan",
    target=3,
    ours=ours,
    baseline=baseline,
    default_size=1_000_000,
    description="lims anomalies scan over 1,000,000 results vs the rules as plain SQL aggregates",
)
