"""Reminders of instruments overdue or due soon: the list `lims reminders` prints and the mail
sent with `lims reminders --mail` or, once a lab day, by the scheduler of `lims serve`.

A mail that went out is recorded as the audit event `instrument.reminders_sent` with its lab
day; the daily job reads the latest one (an indexed lookup by entity) to decide whether today's
mail is still due, so several app processes or a manual `--mail` do not mail twice in a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core import audit, mail
from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.core.labtime import lab_calendar
from app.instruments.models import InstrumentStatus
from app.instruments.queries import reminders

SENT_ACTION = "instrument.reminders_sent"
ENTITY_TYPE, ENTITY_ID = "instrument_reminders", "mail"
SEND_FROM_HOUR = 8  # the daily mail goes out at the scheduler's first tick after 08:00 lab time

STATUS_TEXT = {
    InstrumentStatus.OVERDUE: ("已超期", "overdue"),
    InstrumentStatus.DUE_SOON: ("即将到期", "due soon"),
}


@dataclass(frozen=True)
class ReminderLine:
    """One instrument to remind about, in the lab's calendar."""

    asset_no: str
    name_zh: str
    name_en: str
    status: InstrumentStatus
    valid_until: date | None  # the last lab day of the certificate in force; None: never calibrated
    days_left: int | None  # days of validity left after today; negative: days overdue
    responsible: str  # printed name
    location: str

    @property
    def name(self) -> str:
        return f"{self.name_zh} ({self.name_en})" if self.name_en and self.name_en != self.name_zh else self.name_zh

    def when_zh(self) -> str:
        if self.valid_until is None:
            return "从未检定/校准"
        if self.days_left is not None and self.days_left < 0:
            return f"有效期至 {self.valid_until}（已超期 {-self.days_left} 天）"
        return f"有效期至 {self.valid_until}（剩余 {self.days_left} 天）"

    def when_en(self) -> str:
        if self.valid_until is None:
            return "never calibrated"
        if self.days_left is not None and self.days_left < 0:
            return f"valid until {self.valid_until} (overdue by {-self.days_left} days)"
        return f"valid until {self.valid_until} ({self.days_left} days left)"


def reminder_lines(session: Session, now: datetime | None = None) -> list[ReminderLine]:
    """Overdue and due-soon instruments, soonest due first (never calibrated ones lead)."""
    now = now or utcnow()
    calendar = lab_calendar(session)
    today = calendar.local_date(now)
    lines = []
    for reminder in reminders(session, now):
        instrument = reminder.instrument
        valid_until = None
        if instrument.due_at is not None:  # due at the start of the day after the last valid day
            valid_until = calendar.local_date(instrument.due_at) - timedelta(days=1)
        lines.append(ReminderLine(
            asset_no=instrument.asset_no, name_zh=instrument.name_zh, name_en=instrument.name_en,
            status=reminder.status, valid_until=valid_until,
            days_left=(valid_until - today).days if valid_until else None,
            responsible=reminder.responsible.printed_name, location=instrument.location,
        ))
    return lines


def _count(lines: list[ReminderLine], status: InstrumentStatus) -> int:
    return sum(1 for line in lines if line.status is status)


def subject(lines: list[ReminderLine], today: date) -> str:
    overdue, due_soon = _count(lines, InstrumentStatus.OVERDUE), _count(lines, InstrumentStatus.DUE_SOON)
    return (f"仪器检定/校准提醒 Instrument calibration reminders {today}: "
            f"{overdue} 已超期 overdue, {due_soon} 即将到期 due soon")


def mail_body(lines: list[ReminderLine], today: date, tz_name: str, lab: tuple[str, str] | None = None) -> str:
    """Plain text, Chinese first, then English: one line per instrument."""
    overdue, due_soon = _count(lines, InstrumentStatus.OVERDUE), _count(lines, InstrumentStatus.DUE_SOON)
    lab_zh, lab_en = lab or ("", "")
    zh = [f"{lab_zh + ' ' if lab_zh else ''}仪器检定/校准到期提醒（{today}，{tz_name}）",
          f"已超期 {overdue} 台，即将到期 {due_soon} 台（按到期先后排列）。", ""]
    zh += [f"[{STATUS_TEXT[line.status][0]}] {line.asset_no} {line.name_zh} — {line.when_zh()} — "
           f"责任人：{line.responsible}" + (f" — {line.location}" if line.location else "") for line in lines]
    zh += ["", "请尽快安排检定/校准及计量确认；超期仪器不得使用。"]
    en = [f"{lab_en + ': ' if lab_en else ''}Instrument calibration reminder ({today}, {tz_name})",
          f"{overdue} overdue, {due_soon} due soon (soonest due first).", ""]
    en += [f"[{STATUS_TEXT[line.status][1]}] {line.asset_no} {line.name_en or line.name_zh} — {line.when_en()} — "
           f"responsible: {line.responsible}" + (f" — {line.location}" if line.location else "") for line in lines]
    en += ["", "Arrange verification or calibration and its confirmation; overdue instruments must not be used."]
    return "\n".join([*zh, "", "-" * 60, "", *en, "", "-- EnviroLIMS"]) + "\n"


def _lab_names(session: Session) -> tuple[str, str] | None:
    from app.people.service import current_lab

    lab = current_lab(session)
    return (lab.name_zh, lab.name_en) if lab is not None else None


def last_sent(session: Session) -> AuditEvent | None:
    """The latest reminder mail recorded (served by the audit trail's entity index)."""
    return session.scalars(
        select(AuditEvent).where(AuditEvent.entity_type == ENTITY_TYPE, AuditEvent.entity_id == ENTITY_ID,
                                 AuditEvent.action == SENT_ACTION)
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()


def _day_of(event: AuditEvent) -> date:
    """The lab day a recorded reminder mail was for."""
    try:
        return date.fromisoformat(event.after_data["day"])
    except (TypeError, KeyError, ValueError):
        return date.min


def send_reminders(db: Database, settings: Settings, lines: list[ReminderLine], now: datetime | None = None) -> None:
    """Mail `lines` to LIMS_REMINDER_TO, then record the sending in the audit trail.
    Raises `MailNotConfigured` / `MailNotSent`; nothing is recorded when the mail did not go."""
    if not settings.mail_configured:
        raise mail.MailNotConfigured()
    now = now or utcnow()
    calendar = db.calendar
    today = calendar.local_date(now)
    with db.reading() as session:
        lab = _lab_names(session)
    recipients = settings.reminder_recipients
    message = mail.build_message(settings.mail_from, recipients, subject(lines, today),
                                 mail_body(lines, today, str(calendar.tz), lab))
    mail.send(settings, message)  # outside any transaction: a slow server holds no lock
    with db.transaction() as session:
        audit.append(session, None, SENT_ACTION, ENTITY_TYPE, ENTITY_ID, None, {
            "day": today.isoformat(), "recipients": recipients, "message_id": message["Message-ID"],
            "overdue": [line.asset_no for line in lines if line.status is InstrumentStatus.OVERDUE],
            "due_soon": [line.asset_no for line in lines if line.status is InstrumentStatus.DUE_SOON],
        })


def reminders_if_due(db: Database, settings: Settings, *, now: datetime | None = None) -> int | None:
    """The daily job: when mail is configured, it is past SEND_FROM_HOUR lab time, no reminder
    mail was recorded today (lab day) and something is overdue or due soon, mail the list.
    Returns how many instruments were mailed, or None when nothing was sent."""
    if not settings.mail_configured:
        return None
    now = now or utcnow()
    calendar = db.calendar
    local = now.astimezone(calendar.tz)
    if local.hour < SEND_FROM_HOUR:
        return None
    with db.reading() as session:
        latest = last_sent(session)
        if latest is not None and _day_of(latest) >= local.date():
            return None
        lines = reminder_lines(session, now)
    if not lines:
        return None
    send_reminders(db, settings, lines, now)
    return len(lines)
