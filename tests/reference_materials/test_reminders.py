"""Reminders of reference materials: `lims reminders` prints what expires within 30 days, what
expired but is still in stock and what is low in stock after the instruments; --mail sends both
in one mail through a real SMTP server; the daily job mails once per lab day, whichever domain
the day's mail was about."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta

import pytest
from rich.console import Console
from sqlalchemy import select

from app import cli
from app.config import Settings
from app.core import jobs
from app.core.audit import AuditEvent
from app.core.mail import MailNotSent
from app.instruments import reminders as instrument_reminders
from app.people.models import User
from app.reference_materials import reminders
from tests.conftest import make_user
from tests.instruments.conftest import make_instrument
from tests.instruments.test_reminders import Inbox, free_port, lims, mail_env, mail_settings
from tests.reference_materials.test_queries import Shelf, stock_shelf

pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1 for the length of the test."""
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"LIMS_DATA_DIR": str(settings.data_dir), "LIMS_DATABASE_URL": settings.database_url,
            "COLUMNS": "250"}


@pytest.fixture
def users(db) -> dict[str, User]:
    """Only the technical manager (each user costs a password hash)."""
    return {"technical_manager": make_user(db, "technical-manager", "technical_manager")}


@pytest.fixture
def shelf(db, technical, store) -> Shelf:
    return stock_shelf(db, technical, store)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=250))  # rows unwrapped, whatever the runner


def events(db, action: str) -> list[dict]:
    with db.reading() as session:
        return [e.after_data for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# ---------------------------------------------------------------- the command


def test_lims_reminders_prints_the_three_material_lists_after_the_instruments(env, db, shelf, wide, smtp):
    inbox, port = smtp
    result = lims({**env, **mail_env(port)}, "reminders")  # configured, yet printing sends nothing
    assert result.exit_code == 0, result.output
    out = result.output
    for barcode in shelf.expiring | shelf.expired:
        assert barcode in out, barcode
    for barcode in shelf.gone | shelf.fresh:
        assert barcode not in out, barcode
    for certificate_no in shelf.low_stock:
        assert certificate_no in out
    assert "GBW08615" not in out  # copper has the one unit it asks for
    assert out.index("No instruments are overdue or due soon") < out.index("expiring within 30 days")
    assert out.index("30 天内到期") < out.index("已过期仍在库") < out.index("库存不足")
    # the expiring list: the lot expiring in 10 days, its certificate, the state and the days left
    expiring_part = out[out.index("expiring within 30 days"):out.index("已过期仍在库")]
    assert "GBW(E)081601 B2301" in expiring_part and "sealed 未开封" in expiring_part
    assert str(db.calendar.today() + timedelta(days=10)) in expiring_part
    assert "水中铅成分分析标准物质" in out and "水中镉成分分析标准物质" in out
    assert inbox.envelopes == [] and events(db, reminders.SENT_ACTION) == []


def test_lims_reminders_with_nothing_to_remind_of_says_so_for_both(env, db, technical, store):
    result = lims(env, "reminders")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "No instruments are overdue or due soon" in out
    assert "No reference materials, standard solutions or reagents are expiring within 30 days" in out
    assert "没有即将到期、已过期仍在库或库存不足的标准物质" in out


def test_lims_reminders_mail_carries_the_materials(env, db, shelf, smtp):
    inbox, port = smtp
    result = lims({**env, **mail_env(port)}, "reminders", "--mail")
    assert result.exit_code == 0, result.output
    count = len(shelf.expiring) + len(shelf.expired) + len(shelf.low_stock)
    assert (f"mailed 0 instrument(s) and {count} reference material reminder(s) to tm@jc-lab.example, "
            "qm@jc-lab.example") in flat(result.output)
    [message] = inbox.messages()
    assert message["Subject"].startswith("标准物质提醒 Reference material reminders")
    assert (f"{len(shelf.expiring)} 即将到期 expiring, {len(shelf.expired)} 过期在库 expired in stock, "
            f"2 库存不足 low stock") in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    chinese, english = body.split("-" * 60)
    for barcode in shelf.expiring | shelf.expired:
        assert barcode in chinese and barcode in english
    for barcode in shelf.gone | shelf.fresh:
        assert barcode not in body
    assert "[30 天内到期]" in chinese and "[已过期仍在库]" in chinese and "[库存不足] GBW08619" in chinese
    assert "剩余 10 天" in chinese and "已过期 5 天" in chinese  # the lot expiring in 10 days, the one 5 days ago
    assert "10 days left" in english and "expired 5 days ago" in english
    assert "[low stock] GBW08619" in english and "2 usable unit(s), minimum 3" in english
    assert body.endswith("-- EnviroLIMS\n") and body.count("-- EnviroLIMS") == 1
    [event] = events(db, reminders.SENT_ACTION)
    assert set(event["expiring"]) == shelf.expiring and set(event["expired_in_stock"]) == shelf.expired
    assert set(event["low_stock"]) == shelf.low_stock and event["message_id"] == message["Message-ID"]
    assert events(db, instrument_reminders.SENT_ACTION) == []  # no instrument was in the mail


def test_one_mail_carries_instruments_and_materials(env, db, technical, shelf, smtp):
    inbox, port = smtp
    make_instrument(db, technical, "JC-NEVER-1", name_zh="COD 消解器")  # never calibrated: overdue
    result = lims({**env, **mail_env(port)}, "reminders", "--mail")
    assert result.exit_code == 0, result.output
    assert "mailed 1 instrument(s) and" in flat(result.output)
    [message] = inbox.messages()
    assert "1 已超期 overdue, 0 即将到期 due soon" in message["Subject"]
    assert "标准物质 reference materials:" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert body.index("JC-NEVER-1") < body.index(shelf.units["sealed"])  # instruments first
    assert "从未检定/校准" in body and "标准物质、标准溶液与试剂提醒" in body
    assert body.count("-- EnviroLIMS") == 1 and body.endswith("-- EnviroLIMS\n")
    [instrument_event] = events(db, instrument_reminders.SENT_ACTION)
    [material_event] = events(db, reminders.SENT_ACTION)
    assert instrument_event["overdue"] == ["JC-NEVER-1"] and instrument_event["due_soon"] == []
    assert instrument_event["message_id"] == material_event["message_id"] == message["Message-ID"]


def test_an_unreachable_smtp_server_fails_clearly_and_records_nothing(env, db, shelf, wide):
    port = free_port()  # nothing listens there
    result = lims({**env, **mail_env(port)}, "reminders", "--mail")
    assert result.exit_code == 1
    out = flat(result.output)
    assert f"The mail could not be sent through 127.0.0.1:{port}" in out and "Traceback" not in out
    assert shelf.units["sealed"] in out  # the lists were still printed
    assert events(db, reminders.SENT_ACTION) == []


def test_mail_without_smtp_configured_is_refused_with_exit_2(env, db, shelf):
    result = lims(env, "reminders", "--mail")
    assert result.exit_code == 2 and "LIMS_SMTP_HOST" in result.output
    assert events(db, reminders.SENT_ACTION) == []


# ---------------------------------------------------------------- the daily job


def at(db, day, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=db.calendar.tz)


def test_the_daily_job_mails_the_materials_once_per_lab_day(db, settings, shelf, smtp):
    inbox, port = smtp
    configured = mail_settings(settings, port)
    today = db.calendar.today()
    count = len(shelf.expiring) + len(shelf.expired) + len(shelf.low_stock)
    assert reminders.reminders_if_due(db, settings, now=at(db, today, 9)) is None  # SMTP not configured
    assert reminders.reminders_if_due(db, configured, now=at(db, today, 7)) is None  # before 08:00
    assert reminders.reminders_if_due(db, configured, now=at(db, today, 9)) == count
    assert reminders.reminders_if_due(db, configured, now=at(db, today, 15)) is None  # already sent today
    tomorrow = today + timedelta(days=1)
    assert reminders.reminders_if_due(db, configured, now=at(db, tomorrow, 8)) is not None
    assert len(inbox.envelopes) == 2 and len(events(db, reminders.SENT_ACTION)) == 2


def test_the_scheduler_runs_the_combined_job(db, settings, monkeypatch):
    called = []
    monkeypatch.setattr(reminders, "reminders_if_due", lambda db, settings: called.append(settings) or 7)
    assert jobs.instrument_reminders_if_due in jobs.JOBS
    assert jobs.instrument_reminders_if_due(db, settings) == 7
    assert called == [settings]


def test_a_mail_of_either_domain_counts_as_todays_mail(env, db, settings, technical, store, smtp):
    inbox, port = smtp
    configured = mail_settings(settings, port)
    make_instrument(db, technical, "JC-NEVER-1")
    today = db.calendar.today()
    # an instruments-only mail sent today (as the instruments' own sender records it)
    with db.reading() as session:
        lines = instrument_reminders.reminder_lines(session)
    instrument_reminders.send_reminders(db, configured, lines, now=at(db, today, 9))
    stock_shelf(db, technical, store)
    assert reminders.reminders_if_due(db, configured, now=at(db, today, 11)) is None
    assert len(inbox.envelopes) == 1
    # tomorrow both domains go out in one mail, and a manual mail later that day is the day's mail
    tomorrow = today + timedelta(days=1)
    assert reminders.reminders_if_due(db, configured, now=at(db, tomorrow, 9)) > 1
    assert len(inbox.envelopes) == 2
    assert reminders.reminders_if_due(db, configured, now=at(db, tomorrow, 10)) is None


def test_a_failed_send_is_retried_at_the_next_tick(db, settings, shelf, smtp):
    inbox, port = smtp
    nine = at(db, db.calendar.today(), 9)
    with pytest.raises(MailNotSent):
        reminders.reminders_if_due(db, mail_settings(settings, free_port()), now=nine)
    assert events(db, reminders.SENT_ACTION) == []
    assert reminders.reminders_if_due(db, mail_settings(settings, port), now=nine + timedelta(hours=1)) is not None
    assert len(inbox.envelopes) == 1


def test_nothing_to_remind_of_sends_nothing(db, settings, technical, store, smtp):
    inbox, port = smtp
    from tests.reference_materials.conftest import make_lot, make_material, receive

    material = make_material(db, technical, min_stock_units=1)
    receive(db, technical, make_lot(db, technical, store, material))  # one usable unit, far from expiry
    assert reminders.reminders_if_due(db, mail_settings(settings, port), now=at(db, db.calendar.today(), 9)) is None
    assert inbox.envelopes == []
