"""Instrument registry workload: thousands of instruments with years of metrological history,
written fast as precomputed rows (executemany), for the `instrument_status` bench and the scale
tests. Entering 40,000 records through the services would take many minutes (each locks, audits
and, for checks and acceptances, verifies an argon2 password); the status computation only reads.

The history is what a lab accumulates, deterministic for a seed and a reference day, all in the
past (before the start of that day): per instrument a series of certificates at its interval,
mostly accepted (计量确认), some restricted, some failed and redone days later, some awaiting
acceptance, a few rejected, a few corrected by a new revision (the superseded one carries a wrong
valid-until, so counting it would change the status); intermediate checks filling the rest of
the record budget, about 3% failing, a few failed ones corrected to a pass; maintenance, repairs,
decisions to take out of service, retirements. Ids are explicit, so two databases populated alike
hold identical rows. The cached `service_state` / `due_at` are then set from `statuses_at` now,
as the service would have left them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, text, update

from app.core.canonical import canonical_json
from app.core.db import Database, metadata, utcnow
from app.core.labtime import LabCalendar
from app.instruments.status import cache_state, statuses_at

BENCH_PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YmVuY2gtbm90LWEtaGFzaA$bm90IGEgcmVhbCBoYXNoIGF0IGFsbA"
CHUNK = 5_000

_NAMES = (
    ("紫外可见分光光度计", "UV-Vis spectrophotometer", "UV-2600i", "岛津 Shimadzu", ("NH3-N", "TP", "TN")),
    ("电感耦合等离子体质谱仪", "ICP-MS", "7900", "安捷伦 Agilent", ("Pb", "Cd", "As", "Cu")),
    ("离子色谱仪", "Ion chromatograph", "Dionex Aquion", "赛默飞世尔 Thermo Fisher", ("F-", "Cl-", "NO3-", "SO42-")),
    ("气相色谱-质谱联用仪", "GC-MS", "8890-5977B", "安捷伦 Agilent", ("苯", "甲苯", "二甲苯")),
    ("原子荧光光度计", "Atomic fluorescence spectrometer", "AFS-8520", "北京海光仪器有限公司", ("Hg", "As", "Se")),
    ("COD 恒温加热消解器", "COD digester", "DRB200", "哈希 Hach", ("COD",)),
    ("电子分析天平", "Analytical balance", "XPR205", "梅特勒-托利多 Mettler Toledo", ("称量", "SS")),
    ("实验室 pH 计", "pH meter", "FE28", "梅特勒-托利多 Mettler Toledo", ("pH",)),
    ("便携式多参数水质分析仪", "Portable multiparameter meter", "HQ4300", "哈希 Hach", ("pH", "DO", "电导率")),
)
_PROVIDERS = (("湖北省计量测试技术研究院", "CNAS L0587"), ("武汉市计量测试检定（研究）所", "CNAS L2371"),
              ("中国测试技术研究院", "CNAS L0041"))
TABLES = ("app_user", "stored_file", "instrument", "instrument_use", "instrument_calibration", "e_signature",
          "instrument_calibration_acceptance", "instrument_check", "instrument_maintenance",
          "instrument_service_change")
RECORD_TABLES = ("instrument_calibration", "instrument_check", "instrument_maintenance", "instrument_service_change")


@dataclass
class Populated:
    """What `populate` wrote: row counts per table and the new instruments' ids."""

    counts: dict[str, int]
    instrument_ids: list[int]

    @property
    def records(self) -> int:
        return sum(self.counts[name] for name in RECORD_TABLES)


class _Random(random.Random):
    def randint(self, a: int, b: int) -> int:
        """Uniform in [a, b]; the stdlib's rejection sampling is the slowest part for 200,000 draws."""
        return a + int(self.random() * (b - a + 1))


@dataclass
class _Rows:
    calendar: LabCalendar
    today: date
    next_id: dict[str, int]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {name: [] for name in TABLES})
    serial: int = 0
    _starts: dict[date, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last_entry = self.start_of(self.today) - timedelta(hours=2)

    def add(self, table: str, **row: Any) -> int:
        row_id = self.next_id[table]
        self.next_id[table] += 1
        row["id"] = row_id
        self.rows[table].append(row)
        return row_id

    def start_of(self, day: date) -> datetime:
        start = self._starts.get(day)
        if start is None:
            start = self._starts[day] = self.calendar.start_of(day)
        return start

    def moment(self, day: date, rng: random.Random) -> datetime:
        """A working-hours instant of the lab's `day`."""
        return self.start_of(day) + timedelta(seconds=rng.randint(8 * 3600, 18 * 3600 - 1))

    def entered(self, happened: datetime, rng: random.Random) -> datetime:
        """Entered some hours later, but before the reference day begins; never at the same
        instant as another record (the service stamps microseconds, so a tie on the day and the
        entry time cannot happen, and an order between tied rows would be arbitrary)."""
        self.serial += 1
        moment = min(happened + timedelta(seconds=rng.randint(3600, 73 * 3600)), self.last_entry)
        return moment + timedelta(microseconds=self.serial)


def _max_ids(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {name: (conn.scalar(select(func.max(metadata.tables[name].c.id))) or 0) + 1 for name in TABLES}


def _users(out: _Rows, count: int) -> list[int]:
    created = out.start_of(out.today) - timedelta(days=4000)
    return [out.add("app_user", username=f"bench-{out.next_id['app_user']}", display_name_zh=f"仪器管理员{i + 1}",
                    display_name_en=f"Instrument officer {i + 1}", password_hash=BENCH_PASSWORD_HASH, active=True,
                    language="zh_CN", failed_logins=0, locked_until=None, session_epoch=0, created_at=created,
                    deactivated_at=None)
            for i in range(count)]


def _certificate_file(out: _Rows, user_id: int) -> tuple[int, str]:
    sha = hashlib.sha256(b"bench certificate").hexdigest()
    file_id = out.add("stored_file", sha256=sha, size=4096, media_type="application/pdf",
                      filename="certificate.pdf", uploaded_at=out.start_of(out.today - timedelta(days=4000)),
                      uploaded_by_id=user_id)
    return file_id, sha


def _budgets(instruments: int, records: int) -> list[int]:
    base, extra = divmod(records, instruments)
    return [base + (1 if i < extra else 0) for i in range(instruments)]


def _instrument(out: _Rows, rng: random.Random, budget: int, people: Sequence[int], file: tuple[int, str]) -> int:
    today = out.today
    name_zh, name_en, model, maker, parameters = rng.choice(_NAMES)
    commissioned = today - timedelta(days=rng.randint(400, 3650))
    responsible = rng.choice(people)
    iid = out.next_id["instrument"]
    out.add("instrument", asset_no=f"BN-{iid:06d}", name_zh=name_zh, name_en=name_en, model=model,
            manufacturer=maker, serial_no=f"SN{rng.randrange(10**9):09d}", location=f"分析室 A{rng.randint(101, 420)}",
            kind="field" if name_en.startswith("Portable") else "laboratory", commissioned_on=commissioned,
            responsible_id=responsible, notes="", service_state="active", due_at=None,
            created_at=out.start_of(commissioned), created_by_id=people[0])
    uses = rng.sample(parameters, rng.randint(1, len(parameters)))
    for parameter in uses:
        out.add("instrument_use", instrument_id=iid, parameter=parameter, method="HJ 000-2000")

    spent = 0

    def calibration(performed: date, result: str, interval: int, *, supersedes: int | None = None,
                    revision: int = 1, valid_until: date | None = None, decision: str | None = "accepted") -> int:
        nonlocal spent
        provider, accreditation = rng.choice(_PROVIDERS)
        start = out.start_of(performed)
        until = valid_until or (performed if result == "fail" else performed + timedelta(days=interval - 1))
        allowed = sorted(rng.sample(uses, max(1, len(uses) - 1))) if result == "restricted" else []
        recorded = out.entered(start, rng)
        cid = out.add(
            "instrument_calibration", instrument_id=iid, supersedes_id=supersedes, revision=revision,
            correction_reason="有效期录入错误" if supersedes else "", effective_from=start, event_day=performed,
            recorded_at=recorded, kind=rng.choice(("verification", "calibration")), provider=provider,
            provider_accreditation_no=accreditation, certificate_no=f"JD{performed:%Y%m%d}-{iid}-{revision}",
            performed_on=performed, valid_until=until,
            due_at=out.start_of(until + timedelta(days=1)), result=result,
            restriction="部分通道不满足要求，限用于所列参数" if allowed else "",
            allowed_parameters=canonical_json(allowed) if allowed else "[]", corrections="",
            certificate_file_id=file[0], certificate_sha256=file[1], recorded_by_id=people[0],
        )
        spent += 1
        if result != "fail" and decision is not None:
            decided = max(recorded, min(recorded + timedelta(hours=rng.randint(1, 48)), out.last_entry))
            sid = out.add("e_signature", signer_id=responsible, printed_name=f"user {responsible}",
                          meaning="confirmed", signed_at=decided, entity_type="instrument_calibration",
                          entity_id=str(cid), content_hash=hashlib.sha256(f"cal{cid}".encode()).hexdigest())
            out.add("instrument_calibration_acceptance", calibration_id=cid, decision=decision,
                    note="" if decision == "accepted" else "不满足要求", signature_id=sid,
                    decided_by_id=responsible, decided_at=decided)
        return cid

    # certificates at the instrument's interval, the latest one somewhere around its due date
    interval = rng.choice((365, 365, 365, 180, 730))
    last = today - timedelta(days=rng.randint(1, interval + 60))
    series = []
    performed = last
    while performed >= commissioned and len(series) < max(1, budget // 4):
        series.append(performed)
        performed -= timedelta(days=interval)
    series.reverse()
    for n, performed in enumerate(series):
        latest = n == len(series) - 1
        roll = rng.random()
        if roll < 0.05 and spent + 2 <= budget:  # failed, redone days later
            calibration(performed, "fail", interval)
            redo = performed + timedelta(days=rng.randint(2, 20))
            if redo < today:
                calibration(redo, "pass", interval)
        elif roll < 0.09:
            calibration(performed, "restricted", interval)
        elif roll < 0.12 and spent + 2 <= budget:  # corrected: the first revision's date was wrong
            wrong = calibration(performed, "pass", interval, valid_until=performed + timedelta(days=interval + 364))
            calibration(performed, "pass", interval, supersedes=wrong, revision=2)
        elif latest and roll < 0.15:
            calibration(performed, "pass", interval, decision=None)  # awaiting 计量确认
        elif roll < 0.16:
            calibration(performed, "pass", interval, decision="rejected")
        else:
            calibration(performed, "pass", interval)

    first_day = min(series[0], today - timedelta(days=1)) if series else commissioned

    def day_between(start: date) -> date:
        span = max((today - start).days - 1, 0)
        return start + timedelta(days=rng.randint(0, span))

    def upkeep(table: str, **row: Any) -> None:
        nonlocal spent
        day = day_between(first_day)
        happened = out.moment(day, rng)
        if table == "instrument_service_change":
            out.add(table, instrument_id=iid, effective_from=happened, event_day=day,
                    recorded_at=out.entered(happened, rng), recorded_by_id=people[0], **row)
        else:
            out.add(table, instrument_id=iid, revision=1, correction_reason="", effective_from=happened, event_day=day,
                    recorded_at=out.entered(happened, rng), supersedes_id=None, recorded_by_id=people[0], **row)
        spent += 1

    if spent < budget and rng.random() < 0.6:
        upkeep("instrument_maintenance", kind="maintenance", description="清洁、更换易耗件", performed_by="厂家工程师")
    if spent < budget and rng.random() < 0.12:
        upkeep("instrument_maintenance", kind="repair", description="故障维修，更换主板", performed_by="厂家工程师")
    if spent < budget and rng.random() < 0.02:
        upkeep("instrument_service_change", action="out_of_service", reason="搬迁，暂停使用")
    if spent < budget and rng.random() < 0.02:
        upkeep("instrument_service_change", action="retired", reason="报废")

    while spent < budget:  # intermediate checks fill the rest
        day = day_between(first_day)
        happened = out.moment(day, rng)
        failed = rng.random() < 0.03
        corrected = spent + 2 <= budget and rng.random() < 0.02
        common = dict(instrument_id=iid, effective_from=happened, event_day=day, check_standard="标准溶液",
                      method="", criterion="± 5%", unit="%", remarks="", recorded_by_id=responsible)
        recorded = out.entered(happened, rng)
        kid = out.add("instrument_check", supersedes_id=None, revision=1, correction_reason="",
                      recorded_at=recorded, measured_value="9.8" if corrected or failed else "1.2",
                      result="fail" if corrected or failed else "pass", **common)
        spent += 1
        if corrected:  # the failure was a typo: 9.8 was 0.98
            out.add("instrument_check", supersedes_id=kid, revision=2, correction_reason="小数点录入错误",
                    recorded_at=recorded + timedelta(minutes=30), measured_value="0.98",
                    result="pass", **common)
            spent += 1
    return iid


def _insert(db: Database, out: _Rows) -> None:
    with db.engine.begin() as conn:
        for name in TABLES:
            table: Table = metadata.tables[name]
            rows = out.rows[name]
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[start : start + CHUNK])
        if db.dialect == "postgresql":  # explicit ids: move the sequences past them
            for name in TABLES:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"))


def refresh_cached_states(db: Database, instrument_ids: Sequence[int]) -> None:
    """Set `service_state` / `due_at` from the history as of now (what the service keeps)."""
    table = metadata.tables["instrument"]
    with db.reading() as session:
        readings = statuses_at(session, utcnow())
    wanted = set(instrument_ids)
    rows = []
    for iid, reading in readings.items():
        if iid in wanted:
            state, due_at = cache_state(reading)
            rows.append({"b_id": iid, "b_state": state, "b_due": due_at})
    statement = (update(table).where(table.c.id == bindparam("b_id"))
                 .values(service_state=bindparam("b_state"), due_at=bindparam("b_due")))
    with db.engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(statement, rows[start : start + CHUNK])


def populate(db: Database, instruments: int, records: int, *, today: date | None = None, seed: int = 20261123,
             responsible_ids: Sequence[int] = ()) -> Populated:
    """Add `instruments` instruments with exactly `records` records (calibrations, checks,
    maintenance, service changes; acceptances come with the calibrations) to a migrated database.
    The responsible people are `responsible_ids`, or five bench users created here."""
    if instruments < 1 or records < instruments:
        raise ValueError("need at least one instrument and one record per instrument")
    today = today or db.calendar.today()
    out = _Rows(db.calendar, today, _max_ids(db))
    rng = _Random(seed)
    people = list(responsible_ids) or _users(out, 5)
    file = _certificate_file(out, people[0])
    ids = [_instrument(out, rng, budget, people, file) for budget in _budgets(instruments, records)]
    _insert(db, out)
    refresh_cached_states(db, ids)
    if db.dialect == "postgresql":  # fresh statistics, as autovacuum would soon give a real database
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return Populated({name: len(rows) for name, rows in out.rows.items()}, ids)


def reference_moment(calendar: LabCalendar, today: date) -> datetime:
    """Noon of the reference day in the lab: the moment the bench asks about."""
    return (calendar.start_of(today) + timedelta(hours=12)).astimezone(UTC)
