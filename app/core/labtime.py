"""The lab's calendar: its time zone and the warning window before a due date.

Dates on certificates ("valid until 2026-12-01") are the lab's local dates; the database keeps
UTC instants. Services convert through the calendar attached to their session, so a rule such
as "due at the start of the day after valid-until" means the same thing on every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

SESSION_KEY = "lims_lab_calendar"


@dataclass(frozen=True)
class LabCalendar:
    tz: ZoneInfo = ZoneInfo("Asia/Shanghai")
    due_soon: timedelta = timedelta(days=30)  # DOMAIN.md: warning window, an app setting

    @classmethod
    def from_settings(cls, settings: Any) -> LabCalendar:
        return cls(tz=settings.tz, due_soon=timedelta(days=settings.due_soon_days))

    def start_of(self, day: date) -> datetime:
        """The UTC instant at which the lab's local `day` begins."""
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def today(self) -> date:
        return datetime.now(self.tz).date()


DEFAULT_CALENDAR = LabCalendar()


def lab_calendar(session: Session) -> LabCalendar:
    """The calendar of the Database that opened `session` (the default one otherwise)."""
    return session.info.get(SESSION_KEY, DEFAULT_CALENDAR)
