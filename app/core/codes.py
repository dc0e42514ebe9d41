"""Human-readable, scannable codes: a prefix, the two-digit year and a sequence (RM26-00012).

Every label (reference-material units, standard solutions, reagents, later samples and
containers) takes its code here. One counter row per (prefix, year), locked for the
transaction, so concurrent requests on any number of processes never hand out the same code.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core.labtime import lab_calendar

PREFIX_RE = re.compile(r"^[A-Z]{2,4}$")


class CodeCounter(SQLModel, table=True):
    __tablename__ = "code_counter"

    prefix: str = Field(primary_key=True, max_length=4)
    year: int = Field(primary_key=True)
    last: int = Field(default=0)


def next_code(session: Session, prefix: str, at: datetime, *, width: int = 5) -> str:
    """The next code of `prefix` in the lab's year of `at`."""
    return reserve_codes(session, prefix, at, 1, width=width)[0]


def reserve_codes(session: Session, prefix: str, at: datetime, count: int, *, width: int = 5) -> list[str]:
    """The next `count` codes of `prefix` in the lab's year of `at`, with one counter update
    (registering hundreds of samples takes one lock, not one per container)."""
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"bad code prefix {prefix!r}")
    if count < 1:
        raise ValueError("reserve at least one code")
    year = lab_calendar(session).local_date(at).year
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # the first code of a year: whoever comes second finds the row instead of failing on it
    session.execute(insert(CodeCounter).values(prefix=prefix, year=year, last=0).on_conflict_do_nothing())
    counter = session.execute(
        select(CodeCounter).where(CodeCounter.prefix == prefix, CodeCounter.year == year)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    first = counter.last + 1
    counter.last += count
    session.flush()
    return [f"{prefix}{year % 100:02d}-{n:0{width}d}" for n in range(first, first + count)]


def luhn_digit(digits: str) -> int:
    """The Luhn (ISO/IEC 7812) check digit of a string of digits: it catches every single
    mistyped digit and most swaps of neighbours, as scanners and keyboards make them."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def with_check_digit(code: str) -> str:
    """`code` followed by the Luhn digit of its digits (CT26-0001234 -> CT26-00012348)."""
    return code + str(luhn_digit("".join(c for c in code if c.isdigit())))


def check_digit_ok(code: str) -> bool:
    """True when the last character is the Luhn digit of the digits before it."""
    if len(code) < 2 or not code[-1].isdigit():
        return False
    return luhn_digit("".join(c for c in code[:-1] if c.isdigit())) == int(code[-1])
