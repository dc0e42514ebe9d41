"""Label codes (app.core.codes.next_code): prefix, two-digit lab year, a sequence per prefix and
year; and on PostgreSQL two transactions asking at the same moment never get the same code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.core.codes import CodeCounter, next_code
from app.core.db import Database
from tests.conftest import race

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def codes(db: Database, prefix: str, at: datetime, n: int = 1, **kwargs: Any) -> list[str]:
    with db.transaction() as session:
        return [next_code(session, prefix, at, **kwargs) for _ in range(n)]


def test_codes_count_up_per_prefix(db):
    assert codes(db, "RM", AT, 2) == ["RM26-00001", "RM26-00002"]
    assert codes(db, "RM", AT) == ["RM26-00003"]  # a later transaction continues
    assert codes(db, "SS", AT) == ["SS26-00001"]  # each prefix has its own sequence
    assert codes(db, "RM", AT) == ["RM26-00004"]


def test_the_sequence_restarts_each_year_and_each_year_keeps_its_own(db):
    assert codes(db, "RG", AT, 2) == ["RG26-00001", "RG26-00002"]
    assert codes(db, "RG", datetime(2027, 2, 1, tzinfo=UTC)) == ["RG27-00001"]
    assert codes(db, "RG", datetime(2025, 11, 1, tzinfo=UTC)) == ["RG25-00001"]  # a backdated receipt
    assert codes(db, "RG", AT) == ["RG26-00003"]
    with db.reading() as session:
        rows = session.execute(select(CodeCounter.year, CodeCounter.last).where(CodeCounter.prefix == "RG")
                               .order_by(CodeCounter.year)).all()
    assert [tuple(r) for r in rows] == [(2025, 1), (2026, 3), (2027, 1)]


def test_the_year_is_the_labs_local_year(db):
    # 2026-12-31 16:30 UTC is already 2027-01-01 00:30 in Asia/Shanghai
    assert codes(db, "RM", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == ["RM27-00001"]
    assert codes(db, "RM", datetime(2026, 12, 31, 15, 59, tzinfo=UTC)) == ["RM26-00001"]


def test_width_and_numbers_beyond_it(db):
    assert codes(db, "SMP", AT, width=6) == ["SMP26-000001"]
    with db.transaction() as session:
        session.add(CodeCounter(prefix="RM", year=2026, last=99_999))
    assert codes(db, "RM", AT, 2) == ["RM26-100000", "RM26-100001"]  # wider, never wrapped or cut


@pytest.mark.parametrize("prefix", ["rm", "R", "RMXYZ", "R1", "", "RM-", "R M", "ＲＭ"])
def test_bad_prefixes_are_refused_before_anything_is_written(db, prefix):
    with pytest.raises(ValueError), db.transaction() as session:
        next_code(session, prefix, AT)
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(CodeCounter)) == 0


def test_a_rolled_back_transaction_does_not_use_up_a_code(db):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.transaction() as session:
        assert next_code(session, "SS", AT) == "SS26-00001"
        raise Abort
    assert codes(db, "SS", AT) == ["SS26-00001"]


# ---------------------------------------------------------------- concurrency (PostgreSQL)

ROUNDS = 6


def test_two_transactions_at_once_get_distinct_codes(pg_db):
    db = pg_db
    handed_out: list[str] = []
    for n in range(ROUNDS):
        # even rounds: the first code of a new year (both try to create the counter row);
        # odd rounds: the row exists and both want the next number
        at = datetime(2030 + n // 2, 6, 1, tzinfo=UTC)

        def take(session, at=at):
            return next_code(session, "RM", at)

        results = race(db, take, take)
        assert not any(isinstance(r, BaseException) for r in results), results
        assert len(set(results)) == 2, results
        handed_out += results
    assert len(set(handed_out)) == 2 * ROUNDS
    with db.reading() as session:
        rows = dict(session.execute(select(CodeCounter.year, CodeCounter.last).where(CodeCounter.prefix == "RM")).all())
    assert rows == {2030 + n: 4 for n in range(ROUNDS // 2)}
    assert sorted(handed_out) == sorted(f"RM{(2030 + n) % 100:02d}-{i:05d}" for n in range(ROUNDS // 2)
                                        for i in range(1, 5))
