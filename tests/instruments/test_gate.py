"""The usability gate (assert_instrument_usable): one test per refusal, each naming the asset number
in both languages, and the pass. Checked at the time of measurement, not of entry."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.core.db import utcnow
from app.core.errors import DomainError
from app.instruments import errors
from app.instruments.models import Instrument, InstrumentStatus
from app.instruments.status import StatusReading, assert_instrument_usable
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401
from tests.instruments.conftest import (
    calibrate,
    check,
    local_moment,
    local_today,
    maintain,
    make_instrument,
    retire,
    start_of,
    take_out_of_service,
)

ASSET = "JC-UV-001"


def days(n: int) -> timedelta:
    return timedelta(days=n)


def gate(db, instrument: Instrument, at: datetime, parameter: str = "NH3-N") -> StatusReading:
    with db.reading() as session:
        return assert_instrument_usable(session, session.get(Instrument, instrument.id), at, parameter)


def refusal(db, instrument: Instrument, at: datetime, parameter: str = "NH3-N") -> DomainError:
    with pytest.raises(errors.InstrumentNotUsable) as caught:
        gate(db, instrument, at, parameter)
    return caught.value


def assert_refused(error: DomainError, cls: type, code: str, reason: str, db=None, at: datetime | None = None):
    assert type(error) is cls
    assert error.code == code
    assert error.reason == reason
    assert error.http_status == 409
    zh, en = error.message("zh_CN"), error.message("en")
    assert ASSET in zh and ASSET in en
    assert zh != en
    assert "{" not in zh and "{" not in en  # every placeholder filled
    if at is not None:  # the moment is shown in the lab's local time
        local = at.astimezone(db.calendar.tz).strftime("%Y-%m-%d %H:%M")
        assert local in zh and local in en


def test_an_instrument_in_calibration_passes(db, technical, calibrated):
    reading = gate(db, calibrated, utcnow())
    assert reading.status is InstrumentStatus.IN_SERVICE and reading.usable


def test_due_soon_still_passes(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(350), valid_until=today + days(5))
    assert gate(db, instrument, utcnow()).status is InstrumentStatus.DUE_SOON


def test_overdue_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    valid_until = today - days(3)
    calibrate(db, technical, store, instrument, performed_on=valid_until - days(365), valid_until=valid_until)
    at = utcnow()
    error = refusal(db, instrument, at)
    assert_refused(error, errors.InstrumentOverdue, "instrument_overdue", "overdue", db, at)
    # the message gives the due date: the start of the day after valid-until
    assert (today - days(2)).isoformat() in error.message("en")
    # the last instant of the day it is valid until still passes
    assert gate(db, instrument, local_moment(db, valid_until, 23, 59, 59)).usable
    assert_refused(refusal(db, instrument, start_of(db, valid_until + days(1))), errors.InstrumentOverdue,
                   "instrument_overdue", "overdue")


def test_never_calibrated_is_refused(db, technical):
    instrument = make_instrument(db, technical)
    at = utcnow()
    assert_refused(refusal(db, instrument, at), errors.InstrumentNeverCalibrated, "instrument_not_calibrated",
                   "not_calibrated", db, at)


def test_an_unaccepted_certificate_is_refused_as_not_calibrated(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(3), valid_until=today + days(362),
              accept=None)
    assert_refused(refusal(db, instrument, utcnow()), errors.InstrumentNeverCalibrated,
                   "instrument_not_calibrated", "not_calibrated")


CAUSES = {
    "failed_calibration": ("检定/校准不合格", "failed calibration"),
    "failed_check": ("期间核查不合格", "failed intermediate check"),
    "repair": ("维修后未重新检定/校准", "repaired, not yet recalibrated"),
    "decision": ("已决定停用", "taken out of service"),
}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_out_of_service_is_refused_naming_the_cause(db, technical, store, calibrated, cause):
    today = local_today(db)
    moment = local_moment(db, today - days(2), 10)
    if cause == "failed_calibration":
        calibrate(db, technical, store, calibrated, performed_on=today - days(2), valid_until=None, result="fail")
    elif cause == "failed_check":
        check(db, technical, calibrated, performed_at=moment, result="fail")
    elif cause == "repair":
        maintain(db, technical, calibrated, performed_at=moment, kind="repair")
    else:
        take_out_of_service(db, technical, calibrated)
    at = utcnow()
    error = refusal(db, calibrated, at)
    assert_refused(error, errors.InstrumentOutOfService, "instrument_out_of_service", "out_of_service", db, at)
    zh, en = CAUSES[cause]
    assert zh in error.message("zh_CN") and en in error.message("en")
    # before it went out of service it was usable
    assert gate(db, calibrated, local_moment(db, today - days(3), 10)).usable


def test_retired_is_refused(db, technical, calibrated):
    change = retire(db, technical, calibrated)
    at = utcnow()
    assert_refused(refusal(db, calibrated, at), errors.InstrumentRetired, "instrument_retired", "retired", db, at)
    assert gate(db, calibrated, change.effective_from - timedelta(seconds=1)).usable


def test_before_commissioning_is_refused(db, technical, store):
    today = local_today(db)
    instrument = make_instrument(db, technical, commissioned_on=today - days(30))
    calibrate(db, technical, store, instrument, performed_on=today - days(60), valid_until=today + days(300))
    at = local_moment(db, today - days(31), 9)
    error = refusal(db, instrument, at)
    assert_refused(error, errors.InstrumentNotCommissioned, "instrument_not_commissioned", "not_commissioned", db,
                   at)
    assert (today - days(30)).isoformat() in error.message("zh_CN")
    assert gate(db, instrument, start_of(db, today - days(30))).usable


def test_restricted_use_outside_the_allowed_parameters_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(10), valid_until=today + days(355),
              result="restricted", restriction="220 nm 以下波长示值误差超差", allowed_parameters=("TP",))
    at = utcnow()
    error = refusal(db, instrument, at, "NH3-N")
    assert_refused(error, errors.InstrumentRestricted, "instrument_restricted", "restricted", db, at)
    assert "220 nm 以下波长示值误差超差" in error.message("zh_CN")
    assert "NH3-N" in error.message("en")
    reading = gate(db, instrument, at, "TP")
    assert reading.restricted and reading.allowed_parameters == ("TP",)
    assert gate(db, instrument, at, " tp ").usable  # matched casefolded, stripped


def test_a_parameter_not_assigned_is_refused(db, technical, calibrated):
    at = utcnow()
    error = refusal(db, calibrated, at, "COD")
    assert_refused(error, errors.InstrumentNotAssigned, "instrument_not_assigned", "not_assigned")
    assert "COD" in error.message("zh_CN") and "COD" in error.message("en")
    assert gate(db, calibrated, at, "nh3-n").usable
    assert gate(db, calibrated, at, "Tp").usable


def test_a_measurement_made_when_valid_passes_though_overdue_now(db, technical, store):
    """Entered today for last month: the gate asks about the time of measurement."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(400), valid_until=today - days(20))
    assert_refused(refusal(db, instrument, utcnow()), errors.InstrumentOverdue, "instrument_overdue", "overdue")
    measured_at = local_moment(db, today - days(31), 14, 20)
    reading = gate(db, instrument, measured_at)
    assert reading.status is InstrumentStatus.DUE_SOON and reading.at == measured_at


def test_a_measurement_made_when_overdue_is_refused_though_valid_now(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - days(400), valid_until=today - days(40),
              certificate_no="JD-OLD")
    calibrate(db, technical, store, instrument, performed_on=today - days(10), valid_until=today + days(355),
              certificate_no="JD-NEW")
    assert gate(db, instrument, utcnow()).usable
    measured_at = local_moment(db, today - days(31), 14, 20)
    assert_refused(refusal(db, instrument, measured_at), errors.InstrumentOverdue, "instrument_overdue", "overdue",
                   db, measured_at)
