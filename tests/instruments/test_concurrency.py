"""Two people acting on one instrument at the same moment: the instrument row lock makes the
second wait and then see what the first did (PostgreSQL; SQLite has a single writer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.core.db import Database
from app.core.errors import DomainError
from app.instruments import impact, records
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
)
from app.people.models import User
from tests.conftest import PASSWORD, race
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401
from tests.instruments.conftest import calibrate, chain_ok, check, local_today, make_instrument, pdf_upload

ROUNDS = 4  # each round is a fresh race: more chances for the two to overlap


def one_wins(results: list[Any], code: str) -> Any:
    errors = [r for r in results if isinstance(r, BaseException)]
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and len(errors) == 1, results
    assert isinstance(errors[0], DomainError) and errors[0].code == code, repr(errors[0])
    return winners[0]


def count(db: Database, stmt) -> int:
    with db.reading() as session:
        return session.scalar(stmt)


def facts(db: Database, certificate_no: str, valid_days: int = 355) -> records.CalibrationFacts:
    today = local_today(db)
    return records.CalibrationFacts(kind="verification", provider="江城市计量测试研究院", certificate_no=certificate_no,
                                    performed_on=today - timedelta(days=10),
                                    valid_until=today + timedelta(days=valid_days), result="pass")


def test_the_same_certificate_no_submitted_twice_at_once(pg_db, technical, store, users):
    db = pg_db
    instrument = make_instrument(db, technical)
    for n in range(ROUNDS):
        number = f"JZ-2026-{n:04d}"

        def submit(session, number=number):
            return records.record_calibration(session, session.get(User, technical.id),
                                              session.get(Instrument, instrument.id), facts(db, number),
                                              store=store, certificate=pdf_upload())

        one_wins(race(db, submit, submit), "duplicate_certificate_no")
        assert count(db, select(func.count()).where(CalibrationRecord.certificate_no == number)) == 1
    chain_ok(db)


def test_two_acceptances_at_once(pg_db, technical, store):
    db = pg_db
    instrument = make_instrument(db, technical)
    for n in range(ROUNDS):
        record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=10),
                           valid_until=local_today(db) + timedelta(days=355), certificate_no=f"JZ-A-{n}",
                           accept=None)

        def decide(session, record=record):
            return records.decide_acceptance(session, session.get(User, technical.id),
                                             session.get(CalibrationRecord, record.id), PASSWORD, accept=True)

        one_wins(race(db, decide, decide), "already_decided")
        assert count(db, select(func.count()).where(CalibrationAcceptance.calibration_id == record.id)) == 1
    chain_ok(db)


def test_two_corrections_of_one_record_at_once(pg_db, technical, store):
    db = pg_db
    instrument = make_instrument(db, technical)
    for n in range(ROUNDS):
        record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=10),
                           valid_until=local_today(db) + timedelta(days=355), certificate_no=f"JZ-C-{n}")

        def corrector(valid_days: int, record=record, n=n):
            def correct(session):
                return records.correct_calibration(session, session.get(User, technical.id),
                                                   session.get(CalibrationRecord, record.id),
                                                   facts(db, f"JZ-C-{n}", valid_days), reason="有效期更正",
                                                   store=store)
            return correct

        winner = one_wins(race(db, corrector(300), corrector(301)), "record_superseded")
        revisions = count(db, select(func.count()).where(CalibrationRecord.supersedes_id == record.id))
        assert revisions == 1 and winner.revision == 2
    chain_ok(db)


def test_two_impact_decisions_at_once(pg_db, technical, users):
    db = pg_db
    instrument = make_instrument(db, technical)
    check(db, technical, instrument, performed_at=db.calendar.start_of(local_today(db)), result="fail")
    with db.reading() as session:
        assessment_id = session.scalars(select(ImpactAssessment.id)).one()

    def decider(who: User, disposition: str):
        def decide(session):
            return impact.decide_impact(session, session.get(User, who.id),
                                        session.get(ImpactAssessment, assessment_id), PASSWORD,
                                        disposition=disposition, justification="复核后决定")
        return decide

    winner = one_wins(race(db, decider(users["quality_manager"], "retest"),
                           decider(users["quality_manager_2"], "no_effect")), "impact_already_decided")
    with db.reading() as session:
        assert session.get(ImpactAssessment, assessment_id).disposition == winner.disposition
    chain_ok(db)
