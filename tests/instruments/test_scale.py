"""At the size of a large lab — 2,000 instruments, 40,000 records, written by the bench's bulk
generator — the status is still right, the list costs the same queries as with 20 instruments,
and the status filter is served by ix_instrument_state_due (on SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from app.core.db import Database, utcnow
from app.core.labtime import LabCalendar
from app.instruments import queries
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    Instrument,
    InstrumentStatus,
    IntermediateCheck,
    MaintenanceRecord,
    ServiceChange,
)
from app.instruments.status import statuses_at
from bench.instrument_workload import populate
from bench.scenarios.instrument_status import STATUS_SQL
from tests.conftest import ENGINES, drop_pg_database, login, new_pg_database
from tests.instruments.conftest import calibrate, make_instrument

INSTRUMENTS, RECORDS = 2_000, 40_000
INDEX = "ix_instrument_state_due"


@pytest.fixture(scope="module", params=ENGINES)
def big_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database per engine with the whole workload, shared by the read-only tests here."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("scale") / "lims.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = new_pg_database(request.getfixturevalue("pg_template"))
    db = Database(url, calendar=LabCalendar())
    try:
        populated = populate(db, INSTRUMENTS, RECORDS)
        assert populated.records == RECORDS and len(populated.instrument_ids) == INSTRUMENTS
        yield db
    finally:
        db.dispose()
        if request.param != "sqlite":
            drop_pg_database(url)


# ---------------------------------------------------------------- (a) the status is right


@dataclass
class History:
    instrument: Instrument
    calibrations: list[CalibrationRecord]
    decisions: dict[int, str]
    checks: list[IntermediateCheck]
    maintenance: list[MaintenanceRecord]
    changes: list[ServiceChange]


def current(records: list[Any]) -> list[Any]:
    replaced = {r.supersedes_id for r in records}
    return [r for r in records if r.id not in replaced]


def naive_status(history: History, at: datetime, calendar: LabCalendar) -> tuple[InstrumentStatus, datetime | None]:
    """DOMAIN.md's rules, one instrument at a time, straight from its rows."""
    if any(c.action == "retired" and c.effective_from <= at for c in history.changes):
        return InstrumentStatus.RETIRED, None
    if at < calendar.start_of(history.instrument.commissioned_on):
        return InstrumentStatus.OUT_OF_SERVICE, None
    events = []  # (lab day, entry time, suspends?, due instant)
    for c in current(history.calibrations):
        if c.effective_from <= at and (c.result == "fail" or history.decisions.get(c.id) == "accepted"):
            events.append((c.event_day, c.recorded_at, c.result == "fail", c.due_at))
    events += [(k.event_day, k.recorded_at, True, None) for k in current(history.checks)
               if k.effective_from <= at and k.result == "fail"]
    events += [(m.event_day, m.recorded_at, True, None) for m in current(history.maintenance)
               if m.effective_from <= at and m.kind == "repair"]
    events += [(s.event_day, s.recorded_at, True, None) for s in history.changes
               if s.effective_from <= at and s.action == "out_of_service"]
    if not events:
        return InstrumentStatus.OVERDUE, None
    _, _, suspends, due_at = max(events, key=lambda e: (e[0], e[1]))
    if suspends:
        return InstrumentStatus.OUT_OF_SERVICE, None
    if at >= due_at:
        return InstrumentStatus.OVERDUE, due_at
    if at >= due_at - calendar.due_soon:
        return InstrumentStatus.DUE_SOON, due_at
    return InstrumentStatus.IN_SERVICE, due_at


def histories(db: Database, ids: list[int]) -> dict[int, History]:
    with db.reading() as session:
        found = {i.id: History(i, [], {}, [], [], []) for i in session.scalars(
            select(Instrument).where(Instrument.id.in_(ids)))}
        for model, attribute in ((CalibrationRecord, "calibrations"), (IntermediateCheck, "checks"),
                                 (MaintenanceRecord, "maintenance"), (ServiceChange, "changes")):
            for record in session.scalars(select(model).where(model.instrument_id.in_(ids))):
                getattr(found[record.instrument_id], attribute).append(record)
        for calibration_id, instrument_id, decision in session.execute(
            select(CalibrationAcceptance.calibration_id, CalibrationRecord.instrument_id,
                   CalibrationAcceptance.decision)
            .join(CalibrationRecord, CalibrationRecord.id == CalibrationAcceptance.calibration_id)
            .where(CalibrationRecord.instrument_id.in_(ids))
        ):
            found[instrument_id].decisions[calibration_id] = decision
        session.expunge_all()  # keep the loaded rows as they are when the reading session ends
    return found


def test_statuses_of_2000_instruments_agree_with_a_naive_recomputation(big_db: Database) -> None:
    db, calendar = big_db, big_db.calendar
    rng = random.Random(7)
    with db.reading() as session:
        all_ids = sorted(session.scalars(select(Instrument.id)))
        rare = [iid for state in ("retired", "out_of_service") for iid in session.scalars(
            select(Instrument.id).where(Instrument.service_state == state).order_by(Instrument.id).limit(5))]
    sample = histories(db, sorted(set(rng.sample(all_ids, 80)) | set(rare)))
    now, today = utcnow(), calendar.today()
    moments = [now, now + timedelta(days=45), calendar.start_of(today - timedelta(days=200)),
               calendar.start_of(today - timedelta(days=800)) + timedelta(hours=10)]
    for history in sample.values():  # the edges: a due instant, the start of the warning window
        due = max((c.due_at for c in history.calibrations), default=None)
        if due is not None and len(moments) < 12:
            moments += [due - timedelta(microseconds=1), due, due - calendar.due_soon]

    seen: dict[InstrumentStatus, int] = defaultdict(int)
    for at in moments:
        with db.reading() as session:
            readings = statuses_at(session, at)
        assert len(readings) == INSTRUMENTS
        for iid, history in sample.items():
            expected = naive_status(history, at, calendar)
            assert (readings[iid].status, readings[iid].due_at) == expected, (iid, at)
            seen[expected[0]] += 1
        # the bench's hand-written SQL says the same of every instrument
        with db.engine.connect() as conn:
            plain = dict(conn.execute(STATUS_SQL, {"at": at, "window_end": at + calendar.due_soon,
                                                  "local_day": calendar.local_date(at)}).all())
        assert plain == {iid: r.status.value for iid, r in readings.items()}, at
    assert set(seen) == set(InstrumentStatus)  # the sample met every status


def test_the_cached_state_is_the_status_now(big_db: Database) -> None:
    """What the list and the worklists filter on (written by the generator as the service would)."""
    now = utcnow()
    with big_db.reading() as session:
        readings = statuses_at(session, now)
        by_status = defaultdict(int)
        for reading in readings.values():
            by_status[reading.status] += 1
        for status in InstrumentStatus:
            assert queries.count_in_status(session, status, now) == by_status[status], status


# ---------------------------------------------------------------- (c) the filter uses the index


def explain(db: Database, statement: str, parameters: Any) -> str:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.dialect == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")  # what could use the index must
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


def statements_of(db: Database, work) -> list[tuple[str, Any]]:  # noqa: ANN001
    captured: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.reading() as session:
            work(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return [(s, p) for s, p in captured if "service_state" in s]


def uses_index(plan: str, dialect: str) -> bool:
    if dialect == "sqlite":
        return re.search(rf"\bUSING (COVERING )?INDEX {INDEX}\b", plan) is not None
    return re.search(rf"(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) {INDEX}\b", plan) is not None


@pytest.mark.parametrize("status", [s.value for s in InstrumentStatus])
def test_the_status_filter_is_served_by_the_state_due_index(big_db: Database, status: str) -> None:
    """The count of the list page and of the dashboard worklists, and the reminder list, for each
    status: EXPLAIN names ix_instrument_state_due. On SQLite the page of rows uses it too; on
    PostgreSQL the planner may rather walk the asset-number index for a first page in order."""
    db = big_db
    now = utcnow()
    counts = statements_of(db, lambda s: (queries.search_instruments(s, status=status, now=now),
                                          queries.count_in_status(s, InstrumentStatus(status), now)))
    filters = [c for c in counts if "count(" in c[0]]
    (page,) = [c for c in counts if "count(" not in c[0]]
    assert len(filters) == 2
    for statement, parameters in filters + ([page] if db.dialect == "sqlite" else []):
        plan = explain(db, statement, parameters)
        assert uses_index(plan, db.dialect), f"{statement}\n{plan}"

    (reminders,) = statements_of(db, lambda s: queries.reminders(s, now))
    plan = explain(db, *reminders)
    assert uses_index(plan, db.dialect), plan


# ---------------------------------------------------------------- (b) constant number of queries


PAGES = ("/instruments", "/instruments?status=overdue", "/instruments?status=due_soon")


def query_counts(client, db: Database, count_queries) -> dict[str, int]:  # noqa: ANN001
    counts = {}
    for url in PAGES:
        with count_queries() as counter:
            response = client.get(url)
        assert response.status_code == 200, response.text
        counts[url] = counter.count
    for status in ("", "overdue", "due_soon"):
        with db.reading() as session, count_queries() as counter:
            found = queries.search_instruments(session, status=status)
        assert found.items, status  # a page with rows, not an empty one that would cost less
        counts[f"search {status}"] = counter.count
    return counts


def test_the_list_costs_the_same_queries_for_20_and_2000_instruments(db: Database, client, users, store,
                                                                    count_queries) -> None:
    technical = users["technical_manager"]
    people = [technical.id, users["analyst"].id]
    today = db.calendar.today()
    # two through the services, so both filtered pages surely have rows already with 20
    for asset_no, days_left in (("JC-SOON-01", 10), ("JC-LATE-01", -5)):
        calibrate(db, technical, store, make_instrument(db, technical, asset_no),
                  performed_on=today - timedelta(days=300), valid_until=today + timedelta(days=days_left))
    populate(db, 18, 20 * RECORDS // INSTRUMENTS - 2, responsible_ids=people)
    login(client, "inspector")
    few = query_counts(client, db, count_queries)

    populate(db, INSTRUMENTS - 20, RECORDS - 20 * RECORDS // INSTRUMENTS, responsible_ids=people, seed=99)
    many = query_counts(client, db, count_queries)

    assert many == few
    with db.reading() as session:
        assert queries.search_instruments(session).total == INSTRUMENTS
    page = client.get("/instruments").text
    assert page.count("BN-") >= 50  # a full page of the 2,000
