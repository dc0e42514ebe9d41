"""Workload of the `anomaly_scan` bench: a realistic lab history of about `n_results` analysis
results, with a known set of planted anomalies, written fast with bulk inserts into the real
(migrated) tables.

The history: 12 analysts, 8 methods measuring 11 water parameters (NH3-N, TN, COD, CODMn, BOD5,
TP, PO4-P and, by ICP-MS, Pb, Pb-D, Cd, Cd-D), up to 50 sites. Work comes in *rounds*: 20 samples
from 20 sites collected one weekday morning and analysed the same morning in one batch per
method (one QC unit: two method blanks, the 20 samples, two lab duplicates, two matrix spikes,
laid out as app.analysis.batches.plan_layout does), 286 results a round, with QC evaluations
(blank value, duplicate RD %, spike recovery %) and their holding-time clocks; one sample result
in 200 has a second revision (a transcription corrected before submission). Values scatter
around each site's own levels (log-normal between sites, 12 % within), parts below their wholes
(NH3-N < TN, CODMn and BOD5 < COD, PO4-P < TP, dissolved < total metal), stored at two digits
beyond the reporting precision (never a tie at the reporting precision: GB/T 8170 and half-up
rounding agree). Every entry is made on a weekday between 08:00 and 18:00 lab time (UTC+8).

The last `PLANTED_ROUNDS` rounds (the three last weekdays) carry the planted anomalies, at any
size, so every rule has something to find (`Workload.planted`): see `_plant`.

Rows are generated per block of rounds from a seeded generator per round (the same on every
database and independent of the block size) and written with COPY (psycopg 3) on PostgreSQL, DBAPI
executemany on SQLite; ids are explicit, sequences are moved past them, tables ANALYZEd.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text

from app.analysis.models import Method, MethodParameter, MethodVersion, Qualification
from app.core.db import Database
from app.core.files import StoredFile
from app.oversight.models import StationImport
from app.people.models import User
from app.sites.models import Site

D = Decimal
END_DAY = date(2026, 11, 27)  # a Friday: the last planted day (the scan runs until now)
SAMPLES_PER_ROUND = 20
PLANTED_ROUNDS = 6
ROUNDS_PER_DAY = 7
ANALYSTS = 12
BLOCK_ROUNDS = 150  # rounds generated and written per transaction (~43,000 results)
REVISION_EVERY = 200  # about one sample result in 200 is corrected once
DUPLICATE_AFTER = (5, 15)  # sample indices followed by a lab duplicate (plan_layout's spread)
SPIKE_AFTER = (9, 19)  # ... by a matrix spike

# user ids (explicit): 1 technical manager, 2 custodian, 3 sampler, 4 quality manager, 5.. analysts
TECHNICAL, CUSTODIAN, SAMPLER, QUALITY = 1, 2, 3, 4
FIRST_ANALYST = 5


@dataclass(frozen=True)
class Param:
    code: str
    unit: str
    mdl: str
    decimals: int
    level: float  # a typical site's level (wholes) or the part's share of its whole
    holding_hours: int
    whole: str = ""  # the parameter this one is a part of (NH3-N of TN...)


PARAMS: dict[str, Param] = {p.code: p for p in (
    Param("TN", "mg/L", "0.05", 2, 2.2, 24),
    Param("NH3-N", "mg/L", "0.025", 3, 0.30, 24, whole="TN"),
    Param("COD", "mg/L", "4", 1, 22.0, 48),
    Param("CODMn", "mg/L", "0.5", 2, 0.22, 48, whole="COD"),
    Param("BOD5", "mg/L", "0.5", 2, 0.16, 12, whole="COD"),
    Param("TP", "mg/L", "0.01", 3, 0.14, 24),
    Param("PO4-P", "mg/L", "0.01", 4, 0.45, 48, whole="TP"),
    Param("Pb", "mg/L", "0.00009", 5, 0.0042, 336),
    Param("Pb-D", "mg/L", "0.00009", 5, 0.45, 336, whole="Pb"),
    Param("Cd", "mg/L", "0.00005", 5, 0.0021, 336),
    Param("Cd-D", "mg/L", "0.00005", 5, 0.45, 336, whole="Cd"),
)}
# method id -> (standard, name, parameters); one batch per method per round
METHODS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    1: ("HJ 535-2009", "水质 氨氮的测定 纳氏试剂分光光度法", ("NH3-N",)),
    2: ("HJ 636-2012", "水质 总氮的测定 碱性过硫酸钾消解紫外分光光度法", ("TN",)),
    3: ("HJ 828-2017", "水质 化学需氧量的测定 重铬酸盐法", ("COD",)),
    4: ("GB 11892-1989", "水质 高锰酸盐指数的测定", ("CODMn",)),
    5: ("HJ 505-2009", "水质 五日生化需氧量（BOD5）的测定 稀释与接种法", ("BOD5",)),
    6: ("GB 11893-1989", "水质 总磷的测定 钼酸铵分光光度法", ("TP",)),
    7: ("HJ 669-2013", "水质 磷酸盐的测定 离子色谱法", ("PO4-P",)),
    8: ("HJ 700-2014", "水质 65种元素的测定 电感耦合等离子体质谱法", ("Pb", "Pb-D", "Cd", "Cd-D")),
}
METHOD_OF = {p: m for m, (_, _, ps) in METHODS.items() for p in ps}
RESULTS_PER_ROUND = len(PARAMS) * (SAMPLES_PER_ROUND + 2 + len(DUPLICATE_AFTER) + len(SPIKE_AFTER))
# analysts kept away from a method in the normal rounds (so the planted batches stand out)
UNQUALIFIED = {(FIRST_ANALYST + 11, 1)}  # analyst 12 has no 上岗证 for HJ 535-2009
NORMALLY_NOT = {(FIRST_ANALYST + 11, 1), (FIRST_ANALYST + 6, 6)}  # ... nor analyst 7 for TP


@dataclass
class Workload:
    """What was written, and what was planted (rule code -> what each planted anomaly is)."""

    results: int = 0
    samples: int = 0
    batches: int = 0
    sites: int = 0
    rounds: int = 0
    planted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def plant(self, code: str, **what: Any) -> None:
        self.planted.setdefault(code, []).append(what)


# ---------------------------------------------------------------- columns written in bulk

COLUMNS: dict[str, tuple[str, ...]] = {
    "sample": ("id", "sample_no", "kind", "matrix", "site_id", "duplicate_of_id", "client_name", "client_contact",
               "location_text", "scheduled_on", "state", "sampler_id", "collected_at", "signed_revision", "note",
               "registered_at", "registered_by_id", "custody_gap", "received_at"),
    "holding_clock": ("id", "sample_id", "parameter", "started_at", "allowed_hours", "deadline_at", "open",
                      "stopped_at", "stopped_by"),
    "holding_deviation": ("id", "sample_id", "parameter", "act", "reason", "deadline_at", "recorded_at",
                          "recorded_by_id"),
    "analysis_batch": ("id", "batch_no", "method_version_id", "parameters", "state", "analyst_id", "created_at",
                       "started_at", "submitted_at", "qc_passed", "note"),
    "batch_position": ("id", "batch_id", "position", "role", "sample_id", "of_position_id", "label",
                       "material_barcode", "spike_added", "added_at", "added_by_id"),
    "analysis_result": ("id", "batch_id", "position_id", "sample_id", "parameter", "revision", "supersedes_id",
                        "reason", "method_version_id", "reading", "reading_unit", "dilution_factor", "value", "unit",
                        "intermediates", "below_mdl", "qualifier", "measured_at", "source", "client_id", "entered_at",
                        "entered_by_id"),
    "qc_evaluation": ("id", "batch_id", "run", "method_id", "parameter", "kind", "position_id", "value", "limit_low",
                      "limit_high", "passed", "detail", "evaluated_at"),
    "station_reading": ("id", "import_id", "site_id", "parameter", "measured_at", "value", "unit"),
}
TABLE_ORDER = tuple(COLUMNS)


class Rows:
    """One block's rows per table, as tuples in COLUMNS order."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}

    def add(self, table: str, *row: Any) -> None:
        self.tables[table].append(row)


# ---------------------------------------------------------------- numbers


def fmt(x: float, decimals: int) -> str:
    """A full-precision value: two digits beyond the reporting precision, never a tie there."""
    x = max(x, 10.0 ** -(decimals + 2))
    s = f"{x:.{decimals + 2}f}"
    return s[:-2] + "49" if s.endswith("50") else s


def with_last_digit(value: str, decimals: int, digit: int) -> str:
    """The value moved so that, rounded to `decimals`, its last digit is `digit` (digit preference)."""
    reported = D(value).quantize(D(1).scaleb(-decimals))
    step = D(1).scaleb(-decimals)
    last = int(reported.scaleb(decimals)) % 10
    moved = reported + (digit - last) * step
    if moved <= 0:
        moved += 10 * step
    return format(moved, "f") + "12"


def rd_pct(a: str, b: str) -> str:
    x, y = D(a), D(b)
    return format((abs(x - y) / (x + y) * 100).quantize(D("0.01")), "f")


def recovery(spiked: str, unspiked: str, added: str) -> str:
    return format(((D(spiked) - D(unspiked)) / D(added) * 100).quantize(D("0.01")), "f")


# ---------------------------------------------------------------- the plan of the history


@dataclass(frozen=True)
class Plan:
    rounds: int
    normal: int
    sites: int
    days: tuple[date, ...]  # the weekday of each round

    def site_of(self, round_no: int, index: int) -> int:
        return (round_no * SAMPLES_PER_ROUND + index) % self.sites + 1


def weekdays_back(last: date, count: int) -> list[date]:
    days, day = [], last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def make_plan(n_results: int) -> Plan:
    rounds = max(PLANTED_ROUNDS, math.ceil(n_results / RESULTS_PER_ROUND))
    normal = rounds - PLANTED_ROUNDS
    sites = min(50, max(4, rounds * SAMPLES_PER_ROUND // 30))
    planted_days = weekdays_back(END_DAY, PLANTED_ROUNDS // 2)
    normal_days = weekdays_back(planted_days[0] - timedelta(days=1), max(1, math.ceil(normal / ROUNDS_PER_DAY)))
    days = [normal_days[r // ROUNDS_PER_DAY] for r in range(normal)]
    days += [planted_days[k // 2] for k in range(PLANTED_ROUNDS)]
    return Plan(rounds, normal, sites, tuple(days))


def analyst_of(plan: Plan, round_no: int, method_id: int) -> int:
    k = round_no - plan.normal
    if k >= 0:  # planted rounds: who did what is part of the plant
        if method_id == 1:
            return FIRST_ANALYST + (11 if k == 5 else 2)  # analyst 3 (A01); analyst 12 unqualified (A14)
        special = {3: 4, 5: 8, 6: 6}  # COD analyst 5 (A02), BOD5 analyst 9 (A19), TP analyst 7 (A05)
        if method_id in special:
            return FIRST_ANALYST + special[method_id]
    analyst = FIRST_ANALYST + (round_no + 3 * method_id) % ANALYSTS
    while (analyst, method_id) in NORMALLY_NOT or (k >= 0 and analyst - FIRST_ANALYST in (2, 4, 6, 8, 11)):
        analyst = FIRST_ANALYST + (analyst - FIRST_ANALYST + 1) % ANALYSTS
    return analyst


def site_levels(seed: int, sites: int) -> dict[tuple[int, str], float]:
    """Each site's own level of every whole, and its share for every part."""
    rng = random.Random(f"{seed}-sites")
    levels = {}
    for site in range(1, sites + 1):
        for p in PARAMS.values():
            if p.whole:
                levels[(site, p.code)] = p.level * rng.uniform(0.7, 1.3)
            else:
                levels[(site, p.code)] = p.level * math.exp(0.35 * rng.gauss(0, 1))
    return levels


# ---------------------------------------------------------------- reference data


def _reference(db: Database, plan: Plan) -> None:
    at = datetime.combine(plan.days[0], datetime.min.time(), UTC) - timedelta(days=400)
    users = [{"id": TECHNICAL, "username": "bench-tm", "display_name_zh": "技术负责人"},
             {"id": CUSTODIAN, "username": "bench-custodian", "display_name_zh": "样品管理员"},
             {"id": SAMPLER, "username": "bench-sampler", "display_name_zh": "采样员"},
             {"id": QUALITY, "username": "bench-qm", "display_name_zh": "质量负责人"}]
    users += [{"id": FIRST_ANALYST + i, "username": f"bench-analyst-{i + 1:02d}",
               "display_name_zh": f"分析员{i + 1:02d}"} for i in range(ANALYSTS)]
    with db.transaction() as session:
        session.execute(insert(User), [{**u, "display_name_en": u["username"], "password_hash": "!bench",
                                        "created_at": at} for u in users])
        session.execute(insert(Method), [
            {"id": m, "code": code, "name_zh": name, "name_en": code, "matrix": "water", "created_at": at,
             "created_by_id": TECHNICAL} for m, (code, name, _) in METHODS.items()])
        session.execute(insert(MethodVersion), [
            {"id": m, "method_id": m, "version": 1, "valid_from": at, "created_at": at, "created_by_id": TECHNICAL,
             "calculation": "direct"} for m in METHODS])
        session.execute(insert(MethodParameter), [
            {"method_version_id": METHOD_OF[p.code], "parameter": p.code, "unit": p.unit, "mdl": D(p.mdl),
             "decimals": p.decimals} for p in PARAMS.values()])
        session.execute(insert(Qualification), [
            {"user_id": a, "method_id": m, "certificate_no": f"HJSG-{a:03d}-{m:02d}", "issued_by": "省生态环境监测中心",
             "valid_from": at.date(), "valid_to": END_DAY + timedelta(days=730), "granted_at": at,
             "granted_by_id": TECHNICAL}
            for a in range(FIRST_ANALYST, FIRST_ANALYST + ANALYSTS) for m in METHODS if (a, m) not in UNQUALIFIED])
        session.execute(insert(Site), [{"id": s, "code": f"BS{s:02d}", "status": "active", "created_at": at,
                                        "created_by_id": TECHNICAL} for s in range(1, plan.sites + 1)])
        content = b"site_code,parameter,measured_at,value,unit\n"
        session.execute(insert(StoredFile), [{"id": 1, "sha256": hashlib.sha256(content).hexdigest(),
                                              "size": len(content), "media_type": "text/csv",
                                              "filename": "station.csv", "uploaded_at": at,
                                              "uploaded_by_id": QUALITY}])
        session.execute(insert(StationImport), [{"id": 1, "file_id": 1, "sha256": hashlib.sha256(content).hexdigest(),
                                                 "rows": 0, "imported_at": at, "imported_by_id": QUALITY}])


# ---------------------------------------------------------------- one round


@dataclass
class Ids:
    sample: int = 0
    clock: int = 0
    deviation: int = 0
    batch: int = 0
    position: int = 0
    result: int = 0
    qc: int = 0
    reading: int = 0


@dataclass
class RoundSample:
    id: int
    index: int
    site_id: int | None
    collected_at: datetime
    received_at: datetime
    kind: str = "routine"
    duplicate_of_id: int | None = None
    custody_gap: bool = False
    values: dict[str, str] = field(default_factory=dict)
    below: set[str] = field(default_factory=set)  # parameters reported below the MDL
    unflagged: set[str] = field(default_factory=set)  # below the MDL, entered without the flag (A07)


def _round(plan: Plan, round_no: int, seed: int, levels: dict[tuple[int, str], float], ids: Ids, rows: Rows,
           work: Workload, history: dict[tuple[int, str], list[str]]) -> None:
    rng = random.Random(f"{seed}-{round_no}")
    day = plan.days[round_no]
    slot = (round_no - plan.normal) % 2 if round_no >= plan.normal else round_no % ROUNDS_PER_DAY
    midnight = datetime.combine(day, datetime.min.time())  # naive UTC: 08:00 lab time
    samples: list[RoundSample] = []
    for i in range(SAMPLES_PER_ROUND):
        ids.sample += 1
        collected = midnight + timedelta(minutes=slot * SAMPLES_PER_ROUND + i)
        sample = RoundSample(ids.sample, i, plan.site_of(round_no, i), collected, collected + timedelta(minutes=30))
        for code, p in PARAMS.items():
            if p.whole:
                continue
            whole = levels[(sample.site_id, code)] * max(0.3, 1 + 0.12 * rng.gauss(0, 1))
            sample.values[code] = fmt(whole, p.decimals)
        for code, p in PARAMS.items():
            if p.whole:
                share = levels[(sample.site_id, code)] * max(0.5, 1 + 0.08 * rng.gauss(0, 1))
                sample.values[code] = fmt(float(sample.values[p.whole]) * share, p.decimals)
        samples.append(sample)
    if round_no >= plan.normal:
        _plant(plan, round_no - plan.normal, samples, rng, work, history, midnight)
    # samples, their clocks
    starts = {m: midnight + timedelta(hours=3, minutes=5 * (m - 1) + 2 * slot) for m in METHODS}
    for s in samples:
        rows.add("sample", s.id, f"BS-{s.id:07d}", s.kind, "water", s.site_id, s.duplicate_of_id, "", "", "",
                 s.collected_at.date(), "results_entered", SAMPLER, s.collected_at, 1, "",
                 s.collected_at - timedelta(days=1), CUSTODIAN, s.custody_gap, s.received_at)
        for code, p in PARAMS.items():
            ids.clock += 1
            rows.add("holding_clock", ids.clock, s.id, code, s.collected_at, p.holding_hours,
                     s.collected_at + timedelta(hours=p.holding_hours), False, starts[METHOD_OF[code]], "analysed")
    k = round_no - plan.normal
    if k == 4:  # A10: sample 11 has the QM's deviation for NH3-N (not for its other parameters)
        ids.deviation += 1
        s = samples[11]
        rows.add("holding_deviation", ids.deviation, s.id, "NH3-N", "analysis", "样品运输延误，质量负责人批准",
                 s.collected_at + timedelta(hours=24), starts[1] - timedelta(hours=1), QUALITY)
    for method_id, (_, _, parameters) in METHODS.items():
        _batch(plan, round_no, method_id, parameters, samples, starts[method_id], rng, ids, rows, work)
    for s in samples:  # the current values (after corrections): a later round may copy them
        for code in PARAMS:
            history.setdefault((round_no, code), []).append(s.values[code])
    if k == 5:  # A13: station readings around two samples' collection; the closest one far off, or close
        for s, factor in ((samples[4], 1.6), (samples[5], 1.05)):
            for minutes, f in ((-50, 1.0), (-10, factor), (40, 1.0)):
                ids.reading += 1
                rows.add("station_reading", ids.reading, 1, s.site_id, "NH3-N",
                         s.collected_at + timedelta(minutes=minutes), fmt(float(s.values["NH3-N"]) * f, 3), "mg/L")
        work.plant("A13", sample_id=samples[4].id, parameter="NH3-N", note="station reading 60 % above the manual")


def _batch(plan: Plan, round_no: int, method_id: int, parameters: Sequence[str], samples: list[RoundSample],
           started: datetime, rng: random.Random, ids: Ids, rows: Rows, work: Workload) -> None:
    k = round_no - plan.normal
    analyst = analyst_of(plan, round_no, method_id)
    ids.batch += 1
    batch_id = ids.batch
    submitted = started + timedelta(hours=2, minutes=30)
    entered_override: dict[tuple[int, str], tuple[datetime, int]] = {}  # (sample index, parameter) -> (at, by)
    night = None
    if k == 3 and method_id == 2:  # A12: the whole TN batch typed in at 20:00 lab time
        night = datetime.combine(plan.days[round_no], datetime.min.time()) + timedelta(hours=12)
        submitted = night + timedelta(hours=1)
        work.plant("A12", batch_id=batch_id, analyst_id=analyst, note="26 results entered at 20:00 lab time")
    if k == 1 and method_id == 4:  # A12: two CODMn results entered three days after measurement
        late = datetime.combine(plan.days[round_no], datetime.min.time()) + timedelta(days=3, hours=2)
        for i in (0, 1):
            entered_override[(i, "CODMn")] = (late + timedelta(minutes=i), analyst)
        submitted = late + timedelta(hours=1)
        work.plant("A12", batch_id=batch_id, sample_ids=[samples[0].id, samples[1].id], note="back-dated entries")
    if k == 4 and method_id == 2:  # A14: three TN results entered by another analyst
        other = FIRST_ANALYST if analyst != FIRST_ANALYST else FIRST_ANALYST + 1
        for i in (2, 3, 4):
            entered_override[(i, "TN")] = (started + timedelta(minutes=60 + i), other)
        work.plant("A14", batch_id=batch_id, sample_ids=[samples[i].id for i in (2, 3, 4)],
                   note="entered by someone else than the batch analyst")
    if k == 5 and method_id == 4:  # A09: a CODMn result entered after the batch was signed
        entered_override[(0, "CODMn")] = (submitted + timedelta(hours=1), analyst)
        work.plant("A09", batch_id=batch_id, sample_id=samples[0].id, note="result entered after the signature")
    if k == 5 and method_id == 1:
        work.plant("A14", batch_id=batch_id, analyst_id=analyst, note="analyst without a qualification")
    rows.add("analysis_batch", batch_id, f"BA-{batch_id:07d}", method_id, "[" + ",".join(f'"{p}"' for p in parameters)
             + "]", "submitted", analyst, started - timedelta(hours=1), started, submitted, True, "")
    # the run order (plan_layout): blanks, then each sample followed by its duplicate or spike
    layout: list[tuple[str, int | None, str]] = [("method_blank", None, "BLK1"), ("method_blank", None, "BLK2")]
    for s in samples:
        layout.append(("sample", s.index, f"S{s.index + 1:02d}"))
        if s.index in DUPLICATE_AFTER:
            layout.append(("duplicate", s.index, f"S{s.index + 1:02d}D"))
        if s.index in SPIKE_AFTER:
            layout.append(("spike", s.index, f"S{s.index + 1:02d}SP"))
    position_of_sample: dict[int, int] = {}
    blank_no = 0
    qc_no = 0
    for number, (role, index, label) in enumerate(layout, start=1):
        ids.position += 1
        position_id = ids.position
        sample = samples[index] if index is not None else None
        of_position = position_of_sample.get(index) if role in ("duplicate", "spike") else None
        if role == "sample":
            position_of_sample[index] = position_id
        added = None
        if role == "spike":
            added = {p: fmt(levels_nominal(p), PARAMS[p].decimals) for p in parameters}
        rows.add("batch_position", position_id, batch_id, number, role, sample.id if sample else None, of_position,
                 label, "", added[parameters[0]] if added else None, started - timedelta(minutes=30), analyst)
        measured = started + timedelta(minutes=2 * number)
        if role == "method_blank":
            blank_no += 1
        for p in parameters:
            param = PARAMS[p]
            mdl = D(param.mdl)
            if role == "method_blank":
                value = "0" if (k >= 2 and method_id == 5) else fmt(float(mdl) * rng.uniform(0.05, 0.5), param.decimals)
            elif role == "sample":
                value = sample.values[p]
            elif role == "duplicate":
                original = sample.values[p]
                zero = k in (2, 3) and method_id == 1  # A01: analyst 3's duplicates agree exactly
                value = original if zero else fmt(float(original) * (1 + 0.05 * rng.gauss(0, 1)), param.decimals)
            else:  # spike
                original = sample.values[p]
                clustered = k >= 1 and method_id == 3 and not (k == 3 and index == 9)  # A02
                rec = 100 + (rng.uniform(-0.9, 0.9) if clustered else 8 * rng.gauss(0, 1))
                value = fmt(float(original) + float(added[p]) * rec / 100, param.decimals)
            below = D(value) < mdl
            if role == "sample":
                below = (below or p in sample.below) and p not in sample.unflagged
            at, by = entered_override.get((index, p), (measured + timedelta(minutes=10), analyst)) \
                if role == "sample" else (measured + timedelta(minutes=10), analyst)
            if night is not None:
                at = night + timedelta(seconds=30 * number)
            ids.result += 1
            result_id = ids.result
            rows.add("analysis_result", result_id, batch_id, position_id, sample.id if sample else None, p, 1, None,
                     "", method_id, value, "", "1", value, param.unit, "{}", below, "", measured, "manual", "", at, by)
            work.results += 1
            if role == "sample" and k < 0 and result_id % REVISION_EVERY == 0:
                ids.result += 1
                revised = fmt(float(value) * (1 + 0.02 * rng.gauss(0, 1)), param.decimals)
                rows.add("analysis_result", ids.result, batch_id, position_id, sample.id, p, 2, result_id,
                         "抄写错误，按原始记录更正", method_id, revised, "", "1", revised, param.unit, "{}",
                         D(revised) < mdl, "", measured, "manual", "", at + timedelta(minutes=20), by)
                sample.values[p] = revised
                work.results += 1
            # QC evaluations of this position
            if role in ("method_blank", "duplicate", "spike"):
                ids.qc += 1
                qc_no += 1
                evaluated = submitted + timedelta(seconds=qc_no)
                if role == "method_blank":
                    rows.add("qc_evaluation", ids.qc, batch_id, 1, method_id, p, "blank", position_id, value, None,
                             param.mdl, True, "{}", evaluated)
                elif role == "duplicate":
                    rows.add("qc_evaluation", ids.qc, batch_id, 1, method_id, p, "duplicate", position_id,
                             rd_pct(sample.values[p], value), None, "20", True, "{}", evaluated)
                else:
                    rows.add("qc_evaluation", ids.qc, batch_id, 1, method_id, p, "spike", position_id,
                             recovery(value, sample.values[p], added[p]), "80", "120", True, "{}", evaluated)
    work.batches += 1


def levels_nominal(parameter: str) -> float:
    p = PARAMS[parameter]
    return p.level * (PARAMS[p.whole].level if p.whole else 1)


def _plant(plan: Plan, k: int, samples: list[RoundSample], rng: random.Random, work: Workload,
           history: dict[tuple[int, str], list[str]], midnight: datetime) -> None:
    """The planted anomalies of planted round k (0..5). Batches' own plants (QC too good, entries)
    are made in `_batch`; what changes the samples' values or times is made here."""
    p = PARAMS
    if k == 0:  # A18: a field blank above the MDL (and one clean), at positions without lab QC
        for s, dirty in ((samples[17], True), (samples[18], False)):
            s.kind, s.site_id = "field_blank", None
            for code, param in p.items():
                s.values[code] = fmt(float(param.mdl) * 0.3, param.decimals)
                s.below.add(code)
            if dirty:
                s.values["COD"] = "6.212"
                s.below.discard("COD")
        work.plant("A18", sample_id=samples[17].id, note="field blank COD 6.2 > MDL 4")
    if k == 1:  # A18: a field duplicate 80 % off its original (and one that agrees)
        for dup, original, factor in ((samples[13], samples[12], 1.8), (samples[17], samples[16], 1.0)):
            dup.kind, dup.duplicate_of_id, dup.site_id = "field_duplicate", original.id, original.site_id
            for code, param in p.items():
                dup.values[code] = fmt(float(original.values[code]) * (1 + 0.01 * rng.gauss(0, 1)), param.decimals)
            dup.values["NH3-N"] = fmt(float(original.values["NH3-N"]) * factor, 3)
            dup.values["TN"] = fmt(float(original.values["TN"]) * factor, 2)
        work.plant("A18", sample_id=samples[13].id, note="field duplicate RD > 20 %")
        # A03: four samples with the same full-precision COD (the highest of them: no impossible relation)
        same = max((samples[i].values["COD"] for i in (2, 3, 4, 6)), key=D)
        for i in (2, 3, 4, 6):
            samples[i].values["COD"] = same
        work.plant("A03", sample_ids=[samples[i].id for i in (2, 3, 4, 6)], parameter="COD", value=same)
    if k == 2:  # A06: impossible relations (and one within the 10 % tolerance)
        pairs = ((1, "NH3-N", 1.6), (3, "CODMn", 1.3), (5, "PO4-P", 1.4), (7, "Pb-D", 1.5), (8, "BOD5", 1.25),
                 (9, "NH3-N", 1.05))
        for i, part, factor in pairs:
            whole = p[part].whole
            samples[i].values[part] = fmt(float(samples[i].values[whole]) * factor, p[part].decimals)
            if factor > 1.1:
                work.plant("A06", sample_id=samples[i].id, parameter=part, whole=whole)
        samples[12].custody_gap = True
        work.plant("A18", sample_id=samples[12].id, note="custody gap")
    if k == 3:  # A04: a copied COD series and a TN series shifted by a constant
        source = history.get((plan.normal - 1, "COD")) or history[(plan.normal, "COD")]
        for i in range(6):
            samples[i].values["COD"] = source[10 + i]
        work.plant("A04", sample_ids=[samples[i].id for i in range(6)], parameter="COD", note="copied series")
        # A07: a value below the MDL without the below-MDL flag (and one flagged)
        samples[4].values["Cd-D"] = "0.0000312"
        samples[4].unflagged.add("Cd-D")
        samples[6].values["Cd-D"] = "0.0000312"
        work.plant("A07", sample_id=samples[4].id, parameter="Cd-D")
    if k == 4:
        source = history[(plan.normal + 2, "TN")]
        for i in range(2, 8):
            samples[i].values["TN"] = format(D(source[9 + i]) + D("0.3700"), "f")
        work.plant("A04", sample_ids=[samples[i].id for i in range(2, 8)], parameter="TN", note="shifted series")
        # A10: two samples collected two days before the round (held too long; one NH3-N excused)
        for i in (10, 11):
            samples[i].collected_at -= timedelta(hours=50)
            samples[i].received_at = samples[i].collected_at + timedelta(minutes=30)
        work.plant("A10", sample_id=samples[10].id, parameter="NH3-N")
        work.plant("A10", sample_id=samples[11].id, parameter="COD", note="NH3-N excused by a deviation")
    if k == 5:
        # A08: an outlier against the site's history
        samples[0].values["COD"] = fmt(float(samples[0].values["COD"]) * 6, p["COD"].decimals)
        work.plant("A08", sample_id=samples[0].id, parameter="COD")
        # A09: collected after the analysis started; received before it was collected
        samples[2].collected_at = midnight + timedelta(hours=5)
        samples[2].received_at = samples[2].collected_at + timedelta(minutes=30)
        samples[3].received_at = samples[3].collected_at - timedelta(hours=2)
        work.plant("A09", sample_id=samples[2].id, note="analysed before collection")
        work.plant("A09", sample_id=samples[3].id, note="received before collection")
    if k == 2:
        work.plant("A01", analyst_id=FIRST_ANALYST + 2, parameter="NH3-N")
    if k == 1:
        work.plant("A02", analyst_id=FIRST_ANALYST + 4, parameter="COD")
        work.plant("A19", analyst_id=FIRST_ANALYST + 8, parameter="BOD5")
        work.plant("A05", analyst_id=FIRST_ANALYST + 6, parameter="TP")
    # A05: analyst 7's TP values all end in 0 or 5 (120 values in the planted quarter)
    for s in samples:
        if s.kind != "field_blank":
            s.values["TP"] = with_last_digit(s.values["TP"], p["TP"].decimals, rng.choice((0, 5)))


# ---------------------------------------------------------------- writing


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _write(raw: Any, postgres: bool, rows: Rows) -> None:
    for table in TABLE_ORDER:
        data = rows.tables[table]
        if not data:
            continue
        columns = COLUMNS[table]
        if postgres:
            with raw.driver_connection.cursor() as cursor, \
                    cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        else:
            cursor = raw.cursor()
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               [tuple(_sqlite_value(v) for v in row) for row in data])
            cursor.close()
    raw.commit()


def _after(db: Database) -> None:
    tables = ("app_user", "analysis_method", "method_version", "method_parameter", "qualification", "site",
              "stored_file", "station_import") + TABLE_ORDER
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            for table in tables:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"))
            conn.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(text(f"ANALYZE {table}"))
    else:
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()


def generate(db: Database, n_results: int, seed: int = 20261127) -> Workload:
    """Write about `n_results` analysis results (at least the planted rounds') into the migrated,
    empty database `db`; returns the counts and what was planted."""
    plan = make_plan(n_results)
    work = Workload(sites=plan.sites, rounds=plan.rounds)
    _reference(db, plan)
    levels = site_levels(seed, plan.sites)
    ids = Ids()
    history: dict[tuple[int, str], list[str]] = {}  # the values of recent rounds (the copied series' source)
    postgres = db.engine.dialect.name == "postgresql"
    raw = db.engine.raw_connection()
    try:
        for first in range(0, plan.rounds, BLOCK_ROUNDS):
            rows = Rows()
            for round_no in range(first, min(plan.rounds, first + BLOCK_ROUNDS)):
                _round(plan, round_no, seed, levels, ids, rows, work, history)
                for key in [key for key in history if key[0] < round_no - 3 and key[0] != plan.normal - 1]:
                    del history[key]
            _write(raw, postgres, rows)
    finally:
        raw.close()
    work.samples, work.batches = ids.sample, ids.batch
    _after(db)
    return work
