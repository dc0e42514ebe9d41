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
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"bad code prefix {prefix!r}")
    year = lab_calendar(session).local_date(at).year
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # the first code of a year: whoever comes second finds the row instead of failing on it
    session.execute(insert(CodeCounter).values(prefix=prefix, year=year, last=0).on_conflict_do_nothing())
    counter = session.execute(
        select(CodeCounter).where(CodeCounter.prefix == prefix, CodeCounter.year == year)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    counter.last += 1
    session.flush()
    return f"{prefix}{year % 100:02d}-{counter.last:0{width}d}"
