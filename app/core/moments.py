"""The `at` of API queries ("was it usable at ..."): one ISO 8601 instant with its offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from app.core.db import utcnow
from app.core.errors import InvalidInput

EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)
# "+08:00" sent unencoded in a query string arrives as " 08:00": read it as the offset it was
OFFSET_SENT_AS_SPACE = re.compile(r"(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?) (\d{2}(:?\d{2})?)$")


class InvalidMoment(InvalidInput):
    code = "invalid_time"
    message_zh = ("时间 at 无效：请使用带时区的 ISO 8601 时间（例如 2026-05-01T09:30:00+08:00 或 "
                  "2026-05-01T01:30:00Z），年份在 1900–2999 之间；查询串中的 + 写作 %2B。")
    message_en = ("Invalid time `at`: give an ISO 8601 time with its offset (e.g. 2026-05-01T09:30:00+08:00 or "
                  "2026-05-01T01:30:00Z) between the years 1900 and 2999; write + as %2B in a query string.")


def parse_moment(raw: str | None) -> datetime:
    """`at` as an aware UTC instant (now when absent). A time without its offset is refused: the
    question is about one instant, and "09:30" alone does not name one."""
    if raw is None or not raw.strip():
        return utcnow()
    cleaned = OFFSET_SENT_AS_SPACE.sub(r"\1+\4", raw.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidMoment() from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidMoment()
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidMoment() from None
    if not EARLIEST <= moment < LATEST:
        raise InvalidMoment()
    return moment
