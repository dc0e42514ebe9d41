"""Property: whatever history the services are given, the cached columns (service_state, due_at)
say what status_at says now, and the status filter of the list selects exactly the instruments
in that status. Random histories are built through the services on SQLite, one database each."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.core.files import FileStore
from app.instruments import queries, records
from app.instruments.models import CalibrationRecord, Instrument, InstrumentStatus
from app.instruments.status import status_at, status_now
from tests.conftest import PASSWORD, make_user
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401
from tests.instruments.conftest import local_moment, make_instrument, pdf_upload, retire, take_out_of_service

days_ago = st.integers(min_value=0, max_value=420)
hour = st.integers(min_value=0, max_value=23)
certificate = st.tuples(st.just("certificate"), days_ago, st.integers(min_value=0, max_value=480),
                        st.sampled_from(["pass", "restricted", "fail"]), st.sampled_from([True, False, None]))
check = st.tuples(st.just("check"), days_ago, hour, st.sampled_from(["pass", "fail"]))
maintenance = st.tuples(st.just("maintenance"), days_ago, hour, st.sampled_from(["maintenance", "repair"]))
accept_later = st.tuples(st.just("accept_pending"))
correct = st.tuples(st.just("correct_last_certificate"), st.integers(min_value=0, max_value=480))
stop = st.tuples(st.just("out_of_service"))
end = st.tuples(st.just("retire"))
event = st.one_of(certificate, certificate, check, maintenance, accept_later, correct, stop, end)
histories = st.lists(st.lists(event, max_size=8), min_size=1, max_size=3)


@pytest.fixture
def fresh_database(sqlite_template, tmp_path_factory) -> Iterator:
    """A new migrated SQLite database (and file store) per hypothesis example."""
    made: list[Database] = []

    def make() -> tuple[Database, FileStore]:
        folder = tmp_path_factory.mktemp("history")
        shutil.copy(sqlite_template, folder / "lims.db")
        db = Database(f"sqlite:///{folder / 'lims.db'}")
        made.append(db)
        return db, FileStore(folder / "files")

    yield make
    for db in made:
        db.dispose()


def apply(db: Database, store: FileStore, actor, instrument: Instrument, n: int, step: tuple) -> None:
    """One history step through the services; refusals (retired, already out ...) are part of it."""
    today = db.calendar.today()
    kind = step[0]
    with db.transaction() as session:
        current = session.get(Instrument, instrument.id)
        if kind == "certificate":
            _, ago, validity, result, decision = step
            performed = today - timedelta(days=ago)
            facts = records.CalibrationFacts(
                kind="verification", provider="江城市计量测试研究院", certificate_no=f"JD-{instrument.id}-{n}",
                performed_on=performed, valid_until=None if result == "fail" else performed + timedelta(days=validity),
                result=result, restriction="仅限总磷" if result == "restricted" else "",
                allowed_parameters=("TP",) if result == "restricted" else ())
            record = records.record_calibration(session, actor, current, facts, store=store, certificate=pdf_upload())
            if decision is not None and result != "fail":
                records.decide_acceptance(session, actor, record, PASSWORD, accept=decision,
                                          note="" if decision else "不满足要求")
        elif kind == "check":
            _, ago, at_hour, result = step
            at = min(local_moment(db, today - timedelta(days=ago), at_hour), utcnow() - timedelta(seconds=1))
            records.record_check(session, actor, current, records.CheckFacts(
                performed_at=at, check_standard="标准溶液", criterion="±2%", measured_value="1.01", result=result),
                PASSWORD)
        elif kind == "maintenance":
            _, ago, at_hour, what = step
            at = min(local_moment(db, today - timedelta(days=ago), at_hour), utcnow() - timedelta(seconds=1))
            records.record_maintenance(session, actor, current, records.MaintenanceFacts(
                kind=what, performed_at=at, description="保养"))
        elif kind in ("accept_pending", "correct_last_certificate"):
            latest = _latest_current_certificate(session, instrument)
            if latest is None:
                return
            if kind == "accept_pending":
                records.decide_acceptance(session, actor, latest, PASSWORD, accept=True)
            else:
                facts = records.CalibrationFacts(
                    kind=latest.kind, provider=latest.provider, certificate_no=latest.certificate_no,
                    performed_on=latest.performed_on,
                    valid_until=latest.performed_on + timedelta(days=step[1]),
                    result=latest.result, restriction=latest.restriction,
                    allowed_parameters=("TP",) if latest.result == "restricted" else ())
                records.correct_calibration(session, actor, latest, facts, reason="更正", store=store)


def _latest_current_certificate(session, instrument: Instrument) -> CalibrationRecord | None:
    from sqlalchemy import select

    from app.instruments.status import not_superseded

    return session.scalars(
        select(CalibrationRecord).where(CalibrationRecord.instrument_id == instrument.id,
                                        not_superseded(CalibrationRecord))
        .order_by(CalibrationRecord.id.desc()).limit(1)).first()


def build(db: Database, store: FileStore, actor, instrument: Instrument, steps: list[tuple]) -> None:
    for n, step in enumerate(steps):
        try:
            if step[0] == "out_of_service":
                take_out_of_service(db, actor, instrument)
            elif step[0] == "retire":
                retire(db, actor, instrument)
            else:
                apply(db, store, actor, instrument, n, step)
        except DomainError:
            pass  # e.g. a retired instrument refusing the step, a correction that changes nothing


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(histories)
def test_the_cache_agrees_with_the_history(fresh_database, plan):
    db, store = fresh_database()
    actor = make_user(db, "tech-manager", "technical_manager")
    instruments = [make_instrument(db, actor, f"JC-P-{i:02d}") for i in range(len(plan))]
    for instrument, steps in zip(instruments, plan, strict=True):
        build(db, store, actor, instrument, steps)

    now = utcnow()
    with db.reading() as session:
        truth = {}
        for instrument in instruments:
            fresh = session.get(Instrument, instrument.id)
            truth[instrument.id] = status_at(session, fresh, now).status
            assert status_now(fresh, now, db.calendar) is truth[instrument.id], (fresh.service_state, fresh.due_at)
        for status in InstrumentStatus:
            page = queries.search_instruments(session, status=status.value, now=now, size=100)
            assert {row.instrument.id for row in page.items} == {i for i, s in truth.items() if s is status}
            assert page.total == len(page.items)
            assert all(row.status is status for row in page.items)


def test_search_text_is_taken_literally(db, technical):
    """'_' and '%' are LIKE wildcards; asset numbers may contain '_'."""
    make_instrument(db, technical, "JC_01")
    make_instrument(db, technical, "JC-01")
    make_instrument(db, technical, "JC-02", name_zh="100%纯水机")

    def found(q: str) -> list[str]:
        with db.reading() as session:
            return [row.instrument.asset_no for row in queries.search_instruments(session, q=q).items]

    assert found("jc_01") == ["JC_01"]
    assert found("JC-0") == ["JC-01", "JC-02"]
    assert found("%") == ["JC-02"]
    assert found("100%纯水") == ["JC-02"]
    assert found("\\") == []
    assert found("uv-2600") == ["JC-01", "JC-02", "JC_01"]  # the model, case-insensitively
