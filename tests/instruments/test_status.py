"""status_at: what an instrument's history says about it at any moment (app/instruments/status.py).

Every test builds the history through the services, then reads the status at chosen instants,
past ones included: the status is a function of the history, not of a stored state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core.db import Database, utcnow
from app.core.labtime import LabCalendar
from app.instruments import records, service
from app.instruments.models import CalibrationRecord, Instrument, InstrumentStatus
from app.instruments.status import status_at, status_now, statuses_at
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401
from tests.instruments.conftest import (
    accept,
    calibrate,
    check,
    local_moment,
    local_today,
    maintain,
    make_instrument,
    pdf_upload,
    reading_at,
    reload,
    retire,
    start_of,
    take_out_of_service,
)

IN_SERVICE, DUE_SOON, OVERDUE = InstrumentStatus.IN_SERVICE, InstrumentStatus.DUE_SOON, InstrumentStatus.OVERDUE
OUT, RETIRED = InstrumentStatus.OUT_OF_SERVICE, InstrumentStatus.RETIRED


def days(n: int) -> timedelta:
    return timedelta(days=n)


def cached_status(db: Database, instrument: Instrument) -> InstrumentStatus:
    """The status the list shows, from the cached columns."""
    return status_now(reload(db, Instrument, instrument.id), utcnow(), db.calendar)


# ---------------------------------------------------------------- calibration and acceptance


def test_never_calibrated_is_overdue_not_calibrated(db, technical):
    instrument = make_instrument(db, technical)
    reading = reading_at(db, instrument, utcnow())
    assert reading.status is OVERDUE
    assert reading.reason == "not_calibrated"
    assert reading.calibration_id is None and reading.due_at is None
    assert not reading.usable
    assert cached_status(db, instrument) is OVERDUE


def test_a_passing_certificate_counts_only_once_accepted(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    record = calibrate(db, technical, store, instrument, performed_on=today - days(10),
                       valid_until=today + days(355), accept=None)
    pending = reading_at(db, instrument, utcnow())
    assert (pending.status, pending.reason) == (OVERDUE, "not_calibrated")
    assert cached_status(db, instrument) is OVERDUE

    accept(db, technical, record)
    reading = reading_at(db, instrument, utcnow())
    assert reading.status is IN_SERVICE and reading.usable and reading.reason is None
    assert reading.calibration_id == record.id
    assert reading.due_at == start_of(db, today + days(356))
    assert not reading.restricted
    assert cached_status(db, instrument) is IN_SERVICE


def test_a_rejected_certificate_does_not_count(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(10), valid_until=today + days(355),
              accept=False)
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.reason) == (OVERDUE, "not_calibrated")


def test_inside_the_due_soon_window(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    record = calibrate(db, technical, store, instrument, performed_on=today - days(300),
                       valid_until=today + days(10))
    due = start_of(db, today + days(11))
    reading = reading_at(db, instrument, utcnow())
    assert reading.status is DUE_SOON and reading.usable and reading.reason is None
    assert reading.due_at == due and reading.calibration_id == record.id
    assert cached_status(db, instrument) is DUE_SOON
    # the window opens exactly 30 days (the default) before the due instant
    assert db.calendar.due_soon == days(30)
    assert reading_at(db, instrument, due - days(30)).status is DUE_SOON
    assert reading_at(db, instrument, due - days(30) - timedelta(microseconds=1)).status is IN_SERVICE


def test_the_due_soon_window_is_the_calendars(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(300), valid_until=today + days(45))
    assert reading_at(db, instrument, utcnow()).status is IN_SERVICE
    wide = Database(db.url, calendar=LabCalendar(tz=db.calendar.tz, due_soon=days(60)))
    try:
        assert reading_at(wide, instrument, utcnow()).status is DUE_SOON
        assert cached_status(wide, instrument) is DUE_SOON
    finally:
        wide.dispose()


def test_valid_until_is_inclusive_in_the_labs_time_zone(db, technical, store):
    """Valid until D: usable all of local day D, overdue from local midnight starting D+1.
    In Asia/Shanghai (UTC+8) that midnight is 16:00 UTC on D."""
    assert db.calendar.tz.key == "Asia/Shanghai"
    instrument = make_instrument(db, technical)
    today = local_today(db)
    valid_until = today - days(10)
    calibrate(db, technical, store, instrument, performed_on=valid_until - days(365), valid_until=valid_until)
    last_instant = local_moment(db, valid_until, 23, 59, 59, 999999)
    first_overdue = local_moment(db, valid_until + days(1))
    assert first_overdue == datetime.combine(valid_until, datetime.min.time(), tzinfo=UTC) + timedelta(hours=16)

    before = reading_at(db, instrument, last_instant)
    assert before.status is DUE_SOON and before.usable
    assert before.due_at == first_overdue
    after = reading_at(db, instrument, first_overdue)
    assert (after.status, after.reason) == (OVERDUE, "overdue")
    assert after.due_at == first_overdue
    # the same instants given in UTC
    assert reading_at(db, instrument, first_overdue.astimezone(UTC) - timedelta(microseconds=1)).usable
    assert not reading_at(db, instrument, first_overdue.astimezone(UTC)).usable
    assert reading_at(db, instrument, utcnow()).status is OVERDUE
    assert cached_status(db, instrument) is OVERDUE


def test_a_certificate_counts_from_the_start_of_the_day_performed(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    performed = today - days(20)
    calibrate(db, technical, store, instrument, performed_on=performed, valid_until=today + days(345))
    assert reading_at(db, instrument, local_moment(db, performed)).status is IN_SERVICE
    early = reading_at(db, instrument, local_moment(db, performed) - timedelta(microseconds=1))
    assert (early.status, early.reason) == (OVERDUE, "not_calibrated")


# ---------------------------------------------------------------- failures, repairs, decisions


def test_a_failed_certificate_takes_the_instrument_out_at_once(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    failed = calibrate(db, technical, store, instrument, performed_on=today - days(5), valid_until=None,
                       result="fail", accept=None)
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.reason, reading.cause) == (OUT, "out_of_service", "failed_calibration")
    assert reading.since == start_of(db, today - days(5))
    assert cached_status(db, instrument) is OUT
    # before the failing certificate's day, the earlier certificate was in force
    assert reading_at(db, instrument, start_of(db, today - days(5)) - timedelta(seconds=1)).status is IN_SERVICE
    # a failed certificate needs (and takes) no acceptance
    with db.transaction() as session:
        refused = _raises(lambda: records.decide_acceptance(
            session, technical, session.get(CalibrationRecord, failed.id), "correct-horse-42", accept=True))
    assert refused.code == "nothing_to_accept"


def _raises(action):
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - returned for the caller to inspect
        return exc
    raise AssertionError("no refusal")


def test_a_failed_check_holds_until_a_later_accepted_passing_certificate(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    failed_at = local_moment(db, today - days(20), 10)
    check(db, technical, instrument, performed_at=failed_at, result="fail", measured_value="0.531")
    assert reading_at(db, instrument, failed_at - timedelta(seconds=1)).status is IN_SERVICE
    out = reading_at(db, instrument, failed_at)
    assert (out.status, out.cause, out.since) == (OUT, "failed_check", failed_at)

    # a later passing check does not restore it
    check(db, technical, instrument, performed_at=local_moment(db, today - days(18), 9), result="pass")
    assert reading_at(db, instrument, utcnow()).cause == "failed_check"
    assert cached_status(db, instrument) is OUT
    # neither does a later certificate the responsible person rejected, nor one not yet accepted
    calibrate(db, technical, store, instrument, performed_on=today - days(15), valid_until=today + days(350),
              certificate_no="JD-REJECTED", accept=False)
    pending = calibrate(db, technical, store, instrument, performed_on=today - days(10),
                        valid_until=today + days(355), certificate_no="JD-PENDING", accept=None)
    assert reading_at(db, instrument, utcnow()).status is OUT
    assert cached_status(db, instrument) is OUT

    accept(db, technical, pending)
    now = reading_at(db, instrument, utcnow())
    assert (now.status, now.calibration_id) == (IN_SERVICE, pending.id)
    assert cached_status(db, instrument) is IN_SERVICE
    # history is unchanged: between the failure and the certificate it was out of service
    assert reading_at(db, instrument, start_of(db, today - days(10)) - timedelta(seconds=1)).status is OUT


def test_a_repair_holds_until_recalibrated(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    repaired_at = local_moment(db, today - days(7), 14, 30)
    maintain(db, technical, instrument, performed_at=repaired_at, kind="repair", description="更换光电倍增管")
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.cause) == (OUT, "repair")
    assert cached_status(db, instrument) is OUT
    check(db, technical, instrument, performed_at=local_moment(db, today - days(6), 9), result="pass")
    assert reading_at(db, instrument, utcnow()).cause == "repair"

    calibrate(db, technical, store, instrument, performed_on=today - days(5), valid_until=today + days(360))
    assert reading_at(db, instrument, utcnow()).status is IN_SERVICE
    assert reading_at(db, instrument, repaired_at + timedelta(hours=1)).status is OUT


def test_plain_maintenance_changes_nothing(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(100), valid_until=today + days(265))
    now = utcnow()
    before = reading_at(db, instrument, now)
    maintain(db, technical, instrument, performed_at=now - timedelta(hours=2))
    assert reading_at(db, instrument, now) == before
    assert before.status is IN_SERVICE
    assert cached_status(db, instrument) is IN_SERVICE


def test_a_decision_takes_it_out_of_service(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(100), valid_until=today + days(265))
    change = take_out_of_service(db, technical, instrument)
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.reason, reading.cause) == (OUT, "out_of_service", "decision")
    assert reading.since == change.effective_from
    assert cached_status(db, instrument) is OUT
    assert reading_at(db, instrument, change.effective_from - timedelta(seconds=1)).status is IN_SERVICE
    # a check does not bring it back; an accepted certificate entered afterwards does
    check(db, technical, instrument, performed_at=utcnow(), result="pass")
    assert reading_at(db, instrument, utcnow()).status is OUT
    calibrate(db, technical, store, instrument, performed_on=today, valid_until=today + days(365))
    assert reading_at(db, instrument, utcnow()).status is IN_SERVICE
    assert cached_status(db, instrument) is IN_SERVICE


def test_retirement_is_terminal(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(100), valid_until=today + days(265))
    change = retire(db, technical, instrument)
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.reason) == (RETIRED, "retired")
    assert cached_status(db, instrument) is RETIRED
    assert reading_at(db, instrument, change.effective_from - timedelta(seconds=1)).status is IN_SERVICE
    assert reading_at(db, instrument, utcnow() + days(3650)).status is RETIRED


def test_retirement_outranks_a_later_passing_certificate(db, technical, store, monkeypatch):
    """A certificate dated after the retirement (accepted afterwards) does not revive it."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    pending = calibrate(db, technical, store, instrument, performed_on=today - days(5),
                        valid_until=today + days(360), accept=None)
    retired_at = local_moment(db, today - days(10), 9)
    monkeypatch.setattr(service, "utcnow", lambda: retired_at)  # the retirement was entered late
    retire(db, technical, instrument)
    monkeypatch.undo()
    accept(db, technical, pending)
    reading = reading_at(db, instrument, utcnow())
    assert reading.status is RETIRED
    assert reading_at(db, instrument, start_of(db, today - days(5))).status is RETIRED
    assert cached_status(db, instrument) is RETIRED


def test_before_commissioning_it_is_not_in_service(db, technical, store):
    today = local_today(db)
    commissioned = today - days(100)
    instrument = make_instrument(db, technical, commissioned_on=commissioned)
    # verified on acceptance, before it was commissioned
    calibrate(db, technical, store, instrument, performed_on=commissioned - days(20),
              valid_until=commissioned + days(345))
    early = reading_at(db, instrument, start_of(db, commissioned) - timedelta(microseconds=1))
    assert (early.status, early.reason, early.cause) == (OUT, "not_commissioned", "not_commissioned")
    assert not early.usable
    assert reading_at(db, instrument, start_of(db, commissioned)).status is IN_SERVICE


def test_same_day_a_certificate_entered_after_a_failed_check_restores(db, technical, store):
    """A certificate has a date, no time: on the same local day the one entered later decides."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    day = today - days(3)
    check(db, technical, instrument, performed_at=local_moment(db, day, 10), result="fail")
    assert reading_at(db, instrument, utcnow()).status is OUT
    record = calibrate(db, technical, store, instrument, performed_on=day, valid_until=day + days(365),
                       certificate_no="JD-SAME-DAY")
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.calibration_id) == (IN_SERVICE, record.id)
    assert reading_at(db, instrument, local_moment(db, day, 11)).status is IN_SERVICE
    assert cached_status(db, instrument) is IN_SERVICE


def test_a_certificate_from_the_day_before_a_failed_check_does_not_restore(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(200), valid_until=today + days(165))
    day = today - days(3)
    check(db, technical, instrument, performed_at=local_moment(db, day, 10), result="fail")
    calibrate(db, technical, store, instrument, performed_on=day - days(1), valid_until=day + days(364),
              certificate_no="JD-DAY-BEFORE")
    assert reading_at(db, instrument, utcnow()).cause == "failed_check"
    assert cached_status(db, instrument) is OUT


def test_the_status_at_a_historical_moment(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    old = calibrate(db, technical, store, instrument, performed_on=today - days(420),
                    valid_until=today - days(56))
    new = calibrate(db, technical, store, instrument, performed_on=today - days(40), valid_until=today + days(325))

    a_year_ago = reading_at(db, instrument, local_moment(db, today - days(365), 9))
    assert (a_year_ago.status, a_year_ago.calibration_id) == (IN_SERVICE, old.id)
    assert a_year_ago.due_at == start_of(db, today - days(55))
    lapsed = reading_at(db, instrument, local_moment(db, today - days(45), 9))
    assert (lapsed.status, lapsed.reason, lapsed.calibration_id) == (OVERDUE, "overdue", old.id)
    before_any = reading_at(db, instrument, local_moment(db, today - days(500), 9))
    assert before_any.reason == "not_calibrated"
    now = reading_at(db, instrument, utcnow())
    assert (now.status, now.calibration_id) == (IN_SERVICE, new.id)


def test_a_restricted_certificate_is_in_service_with_its_restriction(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    record = calibrate(db, technical, store, instrument, performed_on=today - days(30), valid_until=today + days(335),
                       result="restricted", restriction="220 nm 以下波长不准", allowed_parameters=("tp",))
    reading = reading_at(db, instrument, utcnow())
    assert reading.status is IN_SERVICE and reading.restricted
    assert reading.restriction == "220 nm 以下波长不准"
    assert reading.allowed_parameters == ("TP",)  # as registered
    assert reading.calibration_id == record.id


# ---------------------------------------------------------------- many at once, corrections


def test_statuses_at_equals_status_at_one_by_one(db, technical, store):
    today = local_today(db)
    never = make_instrument(db, technical, "JC-A-01")
    fine = make_instrument(db, technical, "JC-A-02")
    calibrate(db, technical, store, fine, performed_on=today - days(100), valid_until=today + days(265))
    soon = make_instrument(db, technical, "JC-A-03")
    calibrate(db, technical, store, soon, performed_on=today - days(340), valid_until=today + days(20))
    failed = make_instrument(db, technical, "JC-A-04")
    calibrate(db, technical, store, failed, performed_on=today - days(300), valid_until=today + days(65))
    check(db, technical, failed, performed_at=local_moment(db, today - days(50), 15), result="fail")
    stopped = make_instrument(db, technical, "JC-A-05")
    calibrate(db, technical, store, stopped, performed_on=today - days(400), valid_until=today - days(40))
    take_out_of_service(db, technical, stopped)
    gone = make_instrument(db, technical, "JC-A-06", commissioned_on=today - days(200))
    calibrate(db, technical, store, gone, performed_on=today - days(190), valid_until=today + days(175),
              result="restricted", restriction="仅限总磷", allowed_parameters=("TP",))
    retire(db, technical, gone)
    instruments = [never, fine, soon, failed, stopped, gone]
    moments = [utcnow(), local_moment(db, today - days(60), 12), local_moment(db, today - days(250), 8),
               local_moment(db, today - days(395), 8), utcnow() + days(30)]
    with db.reading() as session:
        for at in moments:
            together = statuses_at(session, at, [session.get(Instrument, i.id) for i in instruments])
            everything = statuses_at(session, at)
            one_by_one = {i.id: status_at(session, session.get(Instrument, i.id), at) for i in instruments}
            assert together == one_by_one
            assert everything == one_by_one
        now = statuses_at(session, moments[0])
    assert [now[i.id].status for i in instruments] == [OVERDUE, IN_SERVICE, DUE_SOON, OUT, OUT, RETIRED]


def test_statuses_at_of_no_instruments_is_empty(db):
    with db.reading() as session:
        assert statuses_at(session, utcnow(), []) == {}


def test_a_corrected_passing_certificate_needs_acceptance_again(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    record = calibrate(db, technical, store, instrument, performed_on=today - days(30), valid_until=today + days(335))
    assert reading_at(db, instrument, utcnow()).status is IN_SERVICE
    facts = records.CalibrationFacts(
        kind="verification", provider="江城市计量测试研究院", provider_accreditation_no="CNAS L1234",
        certificate_no=record.certificate_no, performed_on=today - days(30), valid_until=today + days(20),
        result="pass",
    )
    with db.transaction() as session:
        corrected = records.correct_calibration(session, technical, session.get(CalibrationRecord, record.id), facts,
                                                reason="有效期抄错", store=store, certificate=pdf_upload())
    pending = reading_at(db, instrument, utcnow())
    assert (pending.status, pending.reason) == (OVERDUE, "not_calibrated")  # the old acceptance bound the old text
    assert cached_status(db, instrument) is OVERDUE
    accept(db, technical, corrected)
    reading = reading_at(db, instrument, utcnow())
    assert (reading.status, reading.calibration_id) == (DUE_SOON, corrected.id)
    assert reading.due_at == start_of(db, today + days(21))
