"""Concurrent appends never fork the chain: PostgreSQL serialises them with a transaction-level
advisory lock, SQLite with BEGIN IMMEDIATE (DESIGN.md rule 5)."""

from __future__ import annotations

import threading

import pytest

from app.core import audit
from tests.conftest import PG_URL
from tests.core.chain_tools import rows


def hammer(db, threads: int, appends: int) -> None:
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(appends):
                with db.transaction() as session:
                    audit.append(session, None, "test.concurrent", "worker", t, None,
                                 {"t": t, "i": i})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors

    events = rows(db)
    assert [e["seq"] for e in events] == list(range(1, threads * appends + 1))  # no gap, no dup
    for prev, event in zip(events, events[1:], strict=False):
        assert event["prev_hash"] == prev["hash"]
    assert sorted(e["after"] for e in events) == sorted(
        f'{{"i":{i},"t":{t}}}' for t in range(threads) for i in range(appends))
    with db.reading() as session:
        result = audit.verify_chain(session, None)
    assert result.ok and result.events == threads * appends, result.reason


@pytest.mark.postgres_only
@pytest.mark.skipif(not PG_URL, reason="set LIMS_TEST_POSTGRES_URL to run PostgreSQL tests")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_appends_on_postgresql(db):
    hammer(db, threads=8, appends=50)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_concurrent_appends_on_sqlite(db):
    hammer(db, threads=4, appends=25)
