"""Engines, sessions and the unit of work.

SQLite is the embedded default: WAL, foreign keys on, and write transactions opened with
BEGIN IMMEDIATE so that two writers never race on a stale snapshot (the audit chain relies on
it). PostgreSQL is the production engine (psycopg 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

WRITE_OPTION = "lims_write"


def utcnow() -> datetime:
    """The current instant, aware, in UTC, at microsecond precision."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC on every engine; always hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class DecimalText(TypeDecorator):
    """A Decimal kept exactly as text on every engine (SQLite has no exact decimal type, and a
    fixed NUMERIC scale would round a diluted concentration); always hands back a Decimal.
    Compare and sum such values in Python, not in SQL."""

    impl = String(60)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"a finite Decimal expected, not {value!r}")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def dialect_name(url: str) -> str:
    return make_url(url).get_backend_name()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Without it the row deleted by INSERT OR REPLACE skips the append-only DELETE triggers.
        cursor.execute("PRAGMA recursive_triggers=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if dialect_name(url) == "sqlite":
        path = make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and its session factories; owned by the app or the CLI command."""

    def __init__(self, url: str, *, calendar: Any = None, settings: Any = None, **engine_kwargs: Any) -> None:
        from app.config import SESSION_SETTINGS_KEY
        from app.core.labtime import DEFAULT_CALENDAR, SESSION_KEY

        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.dialect = self.engine.dialect.name
        self.calendar = calendar or DEFAULT_CALENDAR
        info = {SESSION_KEY: self.calendar}
        if settings is not None:
            info[SESSION_SETTINGS_KEY] = settings
        write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False, info=info)
        self._write = sessionmaker(bind=write_engine, expire_on_commit=False, info=info)

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        """The app's and the CLI's database: the configured URL and the lab's calendar."""
        from app.core.labtime import LabCalendar

        return cls(settings.resolved_database_url, calendar=LabCalendar.from_settings(settings), settings=settings)

    def session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write session that commits once at the end (or rolls back on error)."""
        with self.session(write=True) as session, committing(session):
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.session(write=False) as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """The unit of work: the change and its audit events land together or not at all.

    A `RecordedRefusal` (a wrong password, say) undoes the act but keeps its record: the
    transaction is rolled back, the refusal's record is written and committed on its own, and
    the error travels on.
    """
    from app.core.errors import RecordedRefusal

    try:
        yield session
    except RecordedRefusal as refusal:
        session.rollback()
        if refusal.record is not None:
            refusal.record(session)
            session.commit()
        raise
    except BaseException:
        session.rollback()
        raise
    else:
        session.commit()
