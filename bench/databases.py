"""Scratch databases: a fresh, migrated database per timed side, removed afterwards."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.core.db import dialect_name, normalise_url
from app.core.migrate import upgrade

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1/postgres"
_SHORTHANDS = {"postgres": DEFAULT_POSTGRES_URL, "postgresql": DEFAULT_POSTGRES_URL}


def resolve_server_url(url: str | None) -> str | None:
    """None/"sqlite" -> SQLite in a temp dir; "postgresql" -> the local server as postgres."""
    if url is None or url.strip() in ("", "sqlite", "sqlite://"):
        return None
    return normalise_url(_SHORTHANDS.get(url.strip(), url.strip()))


def engine_label(server_url: str | None) -> str:
    if server_url is None:
        return "sqlite (temp dir)"
    parsed = make_url(server_url)
    return f"{parsed.get_backend_name()} ({parsed.host or 'local'})"


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """Yield the URL of a new database migrated to head; drop it on the way out.

    SQLite: a file in a new temp dir (next to the given file's directory if a path was given).
    PostgreSQL: `lims_bench_<random>` created on the server named by the URL.
    """
    if server_url is None or dialect_name(server_url) == "sqlite":
        parent = None
        if server_url is not None:
            path = make_url(server_url).database
            parent = str(Path(path).resolve().parent) if path and path != ":memory:" else None
        with tempfile.TemporaryDirectory(prefix="lims_bench_", dir=parent) as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    if dialect_name(server_url) != "postgresql":
        raise ValueError(f"unsupported database for benches: {server_url}")
    name = f"lims_bench_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
