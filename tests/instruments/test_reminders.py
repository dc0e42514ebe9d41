"""Reminders: `lims reminders` lists what is overdue or due soon (and nothing else), mails it with
--mail through a real SMTP server started here, fails clearly when the server is unreachable, and
the daily job sends the mail once per lab day, deciding from the audit trail."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner, Result

from app import cli
from app.cli import app as cli_app
from app.config import Settings
from app.core import jobs
from app.core.audit import AuditEvent
from app.core.mail import MailNotSent
from app.instruments import reminders
from app.people.models import User
from tests.conftest import make_user
from tests.instruments.conftest import calibrate, check, local_today, make_instrument

EXPECTED = ["JC-NEVER-1", "JC-OVER-1", "JC-SOON-1"]  # soonest due first; never calibrated leads
NOT_EXPECTED = ["JC-FINE-1", "JC-STOP-1"]


pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]


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
            "COLUMNS": "200"}


def mail_env(port: int) -> dict[str, str]:
    return {"LIMS_SMTP_HOST": "127.0.0.1", "LIMS_SMTP_PORT": str(port), "LIMS_MAIL_FROM": "lims@jc-lab.example",
            "LIMS_REMINDER_TO": "tm@jc-lab.example, qm@jc-lab.example"}


def lims(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def mail_settings(settings: Settings, port: int) -> Settings:
    return Settings(data_dir=settings.data_dir, database_url=settings.database_url, secret_key="test-secret-key",
                    smtp_host="127.0.0.1", smtp_port=port, mail_from="lims@jc-lab.example",
                    reminder_to="tm@jc-lab.example")


@pytest.fixture
def users(db) -> dict[str, User]:
    """Only the technical manager (each user costs a password hash)."""
    return {"technical_manager": make_user(db, "technical-manager", "technical_manager")}


@pytest.fixture
def fleet(db, technical, store) -> None:
    """One instrument in each state: overdue, due soon, never calibrated (overdue), in service,
    out of service after a failed check."""
    today = local_today(db)
    over = make_instrument(db, technical, "JC-OVER-1", name_zh="原子荧光光度计")
    calibrate(db, technical, store, over, performed_on=today - timedelta(days=370),
              valid_until=today - timedelta(days=5))
    soon = make_instrument(db, technical, "JC-SOON-1", name_zh="离子色谱仪")
    calibrate(db, technical, store, soon, performed_on=today - timedelta(days=355),
              valid_until=today + timedelta(days=10))
    make_instrument(db, technical, "JC-NEVER-1", name_zh="COD 消解器")
    fine = make_instrument(db, technical, "JC-FINE-1", name_zh="电子天平")
    calibrate(db, technical, store, fine, performed_on=today - timedelta(days=20),
              valid_until=today + timedelta(days=340))
    stop = make_instrument(db, technical, "JC-STOP-1", name_zh="pH 计")
    calibrate(db, technical, store, stop, performed_on=today - timedelta(days=355),
              valid_until=today + timedelta(days=5))  # would be due soon, but it failed a check
    check(db, technical, stop, performed_at=datetime.now(UTC) - timedelta(hours=1), result="fail")


def sent_events(db) -> list[dict]:
    """What each recorded reminder mail said (its audit event's after-data)."""
    with db.reading() as session:
        return [e.after_data for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == reminders.SENT_ACTION).order_by(AuditEvent.seq))]


def positions(text: str, names: list[str]) -> list[int]:
    return [text.index(name) for name in names]


# ---------------------------------------------------------------- the command


def test_lims_reminders_lists_overdue_and_due_soon_soonest_first(env, fleet, db, smtp, monkeypatch):
    inbox, port = smtp
    monkeypatch.setattr(cli, "console", Console(width=200))  # names and people unwrapped, whatever the runner
    result = lims({**env, **mail_env(port)}, "reminders")  # SMTP configured, yet printing sends nothing
    assert result.exit_code == 0, result.output
    out = result.output
    for asset in EXPECTED:
        assert asset in out
    for asset in NOT_EXPECTED:
        assert asset not in out
    assert positions(out, EXPECTED) == sorted(positions(out, EXPECTED))
    today = local_today(db)
    assert str(today - timedelta(days=5)) in out and str(today + timedelta(days=10)) in out  # valid until
    assert "overdue" in out and "due soon" in out and "never" in out
    assert "原子荧光光度计" in out and "用户technical-manager" in out  # name and responsible person
    assert inbox.envelopes == [] and sent_events(db) == []


def test_lims_reminders_with_nothing_due_says_so(env, db, technical, store):
    fine = make_instrument(db, technical, "JC-FINE-1")
    today = local_today(db)
    calibrate(db, technical, store, fine, performed_on=today - timedelta(days=1),
              valid_until=today + timedelta(days=300))
    result = lims(env, "reminders")
    assert result.exit_code == 0
    assert "No instruments are overdue or due soon" in result.output and "JC-FINE-1" not in result.output


def test_lims_reminders_mail_sends_the_list_to_a_real_smtp_server(env, fleet, db, smtp):
    inbox, port = smtp
    result = lims({**env, **mail_env(port)}, "reminders", "--mail")
    assert result.exit_code == 0, result.output
    assert "mailed 3 instrument(s) to tm@jc-lab.example, qm@jc-lab.example" in re.sub(r"\s+", " ", result.output)
    [envelope] = inbox.envelopes
    assert sorted(envelope.rcpt_tos) == ["qm@jc-lab.example", "tm@jc-lab.example"]
    assert envelope.mail_from == "lims@jc-lab.example"
    [message] = inbox.messages()
    assert "2 已超期 overdue, 1 即将到期 due soon" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    for asset in EXPECTED:
        assert asset in body
    for asset in NOT_EXPECTED:
        assert asset not in body
    assert "已超期 5 天" in body and "overdue by 5 days" in body  # zh and en
    assert "从未检定/校准" in body and "never calibrated" in body
    assert positions(body, EXPECTED) == sorted(positions(body, EXPECTED))
    [event] = sent_events(db)
    assert event["overdue"] == ["JC-NEVER-1", "JC-OVER-1"] and event["due_soon"] == ["JC-SOON-1"]
    assert event["recipients"] == ["tm@jc-lab.example", "qm@jc-lab.example"]


def test_lims_reminders_mail_without_smtp_configured_is_refused(env, fleet, db):
    result = lims(env, "reminders", "--mail")
    assert result.exit_code == 2
    assert "LIMS_SMTP_HOST" in result.output and "Traceback" not in result.output
    assert sent_events(db) == []


def test_an_unreachable_smtp_server_is_a_clear_error_and_nothing_is_recorded(env, fleet, db):
    port = free_port()  # nothing listens there
    result = lims({**env, **mail_env(port)}, "reminders", "--mail")
    assert result.exit_code == 1
    out = re.sub(r"\s+", " ", result.output)
    assert f"The mail could not be sent through 127.0.0.1:{port}" in out
    assert "邮件未能通过" in out
    assert "Traceback" not in out and "Error:" not in out
    assert "JC-OVER-1" in out  # the list was still printed
    assert sent_events(db) == []


# ---------------------------------------------------------------- the daily job


def test_the_daily_job_mails_once_per_lab_day(db, settings, fleet, smtp):
    inbox, port = smtp
    configured = mail_settings(settings, port)
    assert jobs.instrument_reminders_if_due in jobs.JOBS
    today = local_today(db)

    def at(day, hour: int) -> datetime:
        return datetime.combine(day, time(hour), tzinfo=db.calendar.tz)

    assert reminders.reminders_if_due(db, settings, now=at(today, 9)) is None  # SMTP not configured
    assert reminders.reminders_if_due(db, configured, now=at(today, 7)) is None  # before 08:00 lab time
    assert inbox.envelopes == []
    assert reminders.reminders_if_due(db, configured, now=at(today, 9)) == 3
    assert reminders.reminders_if_due(db, configured, now=at(today, 10)) is None  # already sent today
    assert reminders.reminders_if_due(db, configured, now=at(today, 23)) is None
    assert len(inbox.envelopes) == 1
    tomorrow = today + timedelta(days=1)
    assert reminders.reminders_if_due(db, configured, now=at(tomorrow, 7)) is None
    assert reminders.reminders_if_due(db, configured, now=at(tomorrow, 8)) == 3
    assert reminders.reminders_if_due(db, configured, now=at(tomorrow, 12)) is None
    assert len(inbox.envelopes) == 2 and len(sent_events(db)) == 2
    assert all("JC-OVER-1" in m.get_body(("plain",)).get_content() for m in inbox.messages())


def test_a_manual_mail_counts_as_todays_mail(env, db, settings, fleet, smtp):
    inbox, port = smtp
    assert lims({**env, **mail_env(port)}, "reminders", "--mail").exit_code == 0
    late_today = datetime.combine(local_today(db), time(23), tzinfo=db.calendar.tz)
    assert reminders.reminders_if_due(db, mail_settings(settings, port), now=late_today) is None
    assert len(inbox.envelopes) == 1


def test_a_failed_send_is_retried_at_the_next_tick(db, settings, fleet, smtp):
    inbox, port = smtp
    today = local_today(db)
    nine = datetime.combine(today, time(9), tzinfo=db.calendar.tz)
    with pytest.raises(MailNotSent):
        reminders.reminders_if_due(db, mail_settings(settings, free_port()), now=nine)
    assert sent_events(db) == []
    assert reminders.reminders_if_due(db, mail_settings(settings, port), now=nine + timedelta(hours=1)) == 3
    assert len(inbox.envelopes) == 1


def test_nothing_due_sends_nothing(db, settings, technical, store, smtp):
    inbox, port = smtp
    fine = make_instrument(db, technical, "JC-FINE-1")
    today = local_today(db)
    calibrate(db, technical, store, fine, performed_on=today - timedelta(days=1),
              valid_until=today + timedelta(days=300))
    nine = datetime.combine(today, time(9), tzinfo=db.calendar.tz)
    assert reminders.reminders_if_due(db, mail_settings(settings, port), now=nine) is None
    assert inbox.envelopes == [] and sent_events(db) == []
