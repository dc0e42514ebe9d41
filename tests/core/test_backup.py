"""`lims backup` / `lims restore`: consistent online copies, verified restores, clear refusals.

Each test builds its own source (a data dir and a database loaded with `lims demo`) and empty
targets, on SQLite and, when LIMS_TEST_POSTGRES_URL is set, on scratch PostgreSQL databases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from app.cli import app as cli_app
from app.config import Settings, read_or_create_key
from app.core import audit, backup
from app.core.append_only import protect, unprotect
from app.core.db import Database, normalise_url
from tests.conftest import ENGINES, PG_URL, pg_execute

EVENTS = audit.AuditEvent.__table__
HEAD_LINE = re.compile(r"^OK (\d+) events, head ([0-9a-f]{64})$", re.M)


# ---------------------------------------------------------------- places and the CLI


pytestmark = pytest.mark.usefixtures("no_lims_env")  # tests/conftest.py


class Places:
    """Makes (data dir, database) pairs: for SQLite the default lims.db inside the data dir,
    for PostgreSQL a new empty scratch database, dropped at the end of the test."""

    def __init__(self, engine: str, root: Path, templates: SourceTemplates | None = None) -> None:
        self.engine, self.root, self.templates = engine, root, templates
        self.databases: list[str] = []

    def new(self, name: str, **extra: str) -> dict[str, str]:
        env = {"LIMS_DATA_DIR": str(self.root / name), **extra}
        if self.engine == "postgresql":
            env["LIMS_DATABASE_URL"] = self.new_pg_database()
        return env

    def new_pg_database(self, template: str | None = None) -> str:
        database = f"lims_bk_{uuid.uuid4().hex[:12]}"
        if template:
            pg_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       f"WHERE datname = '{template}' AND pid <> pg_backend_pid()")
            pg_execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
        else:
            pg_execute(f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)

    def source(self) -> dict[str, str]:
        """A copy of the session's loaded lab (see `load_lab`) to back up."""
        assert self.templates is not None
        template = self.templates.get(self.engine)
        data = self.root / "source"
        shutil.copytree(template["LIMS_DATA_DIR"], data, ignore=shutil.ignore_patterns("lims.db*"))
        env = {"LIMS_DATA_DIR": str(data)}
        if self.engine == "sqlite":
            with sqlite3.connect(Path(template["LIMS_DATA_DIR"]) / "lims.db") as original, \
                    sqlite3.connect(data / "lims.db") as copy:
                original.backup(copy)
            copy.close()
            original.close()
        else:
            env["LIMS_DATABASE_URL"] = self.new_pg_database(
                make_url(template["LIMS_DATABASE_URL"]).database)
        return env

    def drop_all(self) -> None:
        for database in self.databases:
            pg_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class SourceTemplates:
    """One loaded lab per engine, built once per session; each test backs up its own copy."""

    def __init__(self, root: Path) -> None:
        self.root, self.built, self.builders = root, {}, []

    def get(self, engine: str) -> dict[str, str]:
        if engine not in self.built:
            builder = Places(engine, self.root / engine)
            self.builders.append(builder)
            self.built[engine] = load_lab(builder.new("template"))
        return self.built[engine]

    def drop_all(self) -> None:
        for builder in self.builders:
            builder.drop_all()


@pytest.fixture(scope="session")
def source_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceTemplates]:
    templates = SourceTemplates(tmp_path_factory.mktemp("backup-sources"))
    try:
        yield templates
    finally:
        templates.drop_all()


def _places(engine: str, tmp_path: Path, templates: SourceTemplates) -> Iterator[Places]:
    made = Places(engine, tmp_path, templates)
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(params=ENGINES)
def places(request: pytest.FixtureRequest, tmp_path: Path,
           source_templates: SourceTemplates) -> Iterator[Places]:
    yield from _places(request.param, tmp_path, source_templates)


@pytest.fixture
def sqlite_places(tmp_path: Path, source_templates: SourceTemplates) -> Iterator[Places]:
    yield from _places("sqlite", tmp_path, source_templates)


def lims(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli_app, list(args), env=env, input=input)
    # A refusal is a clean exit with a message, never a Python traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def squash(text: str) -> str:
    """Rich wraps long messages at the console width; compare without whitespace."""
    return re.sub(r"\s+", "", text)


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(data_dir=Path(env["LIMS_DATA_DIR"]), database_url=env.get("LIMS_DATABASE_URL"),
                    audit_key_file=env.get("LIMS_AUDIT_KEY_FILE"))


def database_of(env: dict[str, str]) -> Database:
    return Database(settings_of(env).resolved_database_url)


def verified_head(env: dict[str, str]) -> tuple[int, str]:
    result = lims(env, "audit", "verify")
    assert result.exit_code == 0, result.output
    match = HEAD_LINE.search(result.stdout)
    assert match, result.stdout
    return int(match.group(1)), match.group(2)


def add_events(env: dict[str, str], n: int) -> None:
    db = database_of(env)
    try:
        for i in range(n):
            with db.transaction() as session:
                audit.append(session, None, "test.event", "sample", i, None, {"i": i})
    finally:
        db.dispose()


def load_lab(env: dict[str, str]) -> dict[str, str]:
    """A lab in use: demo data, a new user, a checkpoint (creates audit.key), a few more
    events, the cookie key and two files in the content-addressed store."""
    assert lims(env, "demo", "--no-serve").exit_code == 0
    assert lims(env, "user", "add", "backup-user", "--role", "analyst", "--password-stdin",
                input="a-long-password-1\n").exit_code == 0
    assert lims(env, "audit", "checkpoint").exit_code == 0
    add_events(env, 3)
    data = Path(env["LIMS_DATA_DIR"])
    read_or_create_key(data / "secret.key")
    for content in (b"photo of site W-01 \x00\xff", os.urandom(70_000)):
        digest = hashlib.sha256(content).hexdigest()
        path = data / "files" / "sha256" / digest[:2] / digest[2:]
        path.parent.mkdir(parents=True, exist_ok=True)  # the demo's certificates share the fan-out folders
        path.write_bytes(content)
    return env


def data_files(data_dir: Path) -> dict[str, bytes]:
    """Every file of a data dir but the live SQLite database."""
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not p.name.startswith("lims.db")
    }


def read_manifest(dest: Path) -> dict:
    return json.loads((dest / "manifest.json").read_text())


def write_manifest(dest: Path, manifest: dict) -> None:
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_restored(target: dict[str, str]) -> None:
    data = Path(target["LIMS_DATA_DIR"])
    assert not data.exists() or not any(data.iterdir())
    url = target.get("LIMS_DATABASE_URL")
    if url:
        import psycopg

        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain) as conn:
            tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_schema = 'public'").fetchone()[0]
        assert tables == 0


# ---------------------------------------------------------------- round trip


def test_backup_and_restore_round_trip(places: Places, tmp_path: Path) -> None:
    source = places.source()
    head = verified_head(source)
    dest = tmp_path / "backup"

    made = lims(source, "backup", str(dest))

    assert made.exit_code == 0, made.output
    manifest = read_manifest(dest)
    assert manifest["format_version"] == backup.FORMAT_VERSION
    assert manifest["database"]["engine"] == places.engine
    assert manifest["database"]["alembic_revision"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", manifest["created_at"])
    assert (manifest["audit"]["seq"], manifest["audit"]["head_hash"]) == head
    assert manifest["audit"]["key_included"] is True
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json"}
    for path, entry in listed.items():
        assert entry["size"] == (dest / path).stat().st_size
        assert entry["sha256"] == sha256_of(dest / path)
    assert "data/audit.key" in listed and "data/secret.key" in listed
    assert not any(p.startswith("data/lims.db") for p in listed)  # the live db is not copied

    target = places.new("restored")
    restored = lims(target, "restore", str(dest))

    assert restored.exit_code == 0, restored.output
    assert f"OK {head[0]} events, head {head[1]}" in restored.stdout
    assert verified_head(target) == head
    assert data_files(Path(target["LIMS_DATA_DIR"])) == data_files(Path(source["LIMS_DATA_DIR"]))
    key = Path(target["LIMS_DATA_DIR"]) / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # The restored lab works: its users sign in with their passwords.
    from app.people import service

    db = database_of(target)
    try:
        with db.transaction() as session:
            assert service.authenticate(session, "backup-user", "a-long-password-1")
    finally:
        db.dispose()


def test_backup_through_the_installed_command(sqlite_places: Places, tmp_path: Path) -> None:
    """The real `lims` entry point: exit codes and messages as an operator sees them."""
    lims_bin = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lims"
    if not lims_bin.exists():
        pytest.skip("no .venv/bin/lims")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMS_")}
    env.update(sqlite_places.source())
    done = subprocess.run([lims_bin, "backup", tmp_path / "b"], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([lims_bin, "backup", tmp_path / "b"], env=env, capture_output=True,
                           text=True)
    assert again.returncode == 1
    assert "not empty" in again.stderr and "Traceback" not in again.stderr


# ---------------------------------------------------------------- consistency under load


class Appender(threading.Thread):
    """Keeps appending audit events, one committed transaction each, until stopped."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.db = database_of(env)
        self.committed = 0
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.db.transaction() as session:
                    audit.append(session, None, "test.load", "sample", self.committed, None,
                                 {"n": self.committed})
                with self.progress:
                    self.committed += 1
                    self.progress.notify_all()
        except BaseException as exc:  # surfaced by wait_for/finish
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int) -> None:
        with self.progress:
            reached = self.progress.wait_for(
                lambda: self.committed >= count or self.error is not None, timeout=60)
        assert self.error is None, self.error
        assert reached, "the appender made no progress"

    def finish(self) -> None:
        self.stop.set()
        self.join(60)
        self.db.dispose()
        assert self.error is None, self.error


def test_backup_is_consistent_while_events_are_appended(
    places: Places, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = places.source()
    appender = Appender(source)
    appender.start()
    appender.wait_for(5)
    after_snapshot: list[int] = []
    copy_data_dir = backup._copy_data_dir

    def copy_while_writing(*args, **kwargs):
        # The database snapshot is taken; make sure more events land before the backup ends,
        # so a head read from the live database instead of the snapshot would be caught.
        after_snapshot.append(appender.committed)
        appender.wait_for(appender.committed + 5)
        return copy_data_dir(*args, **kwargs)

    monkeypatch.setattr(backup, "_copy_data_dir", copy_while_writing)
    try:
        made = lims(source, "backup", str(tmp_path / "backup"))
    finally:
        appender.finish()
    assert made.exit_code == 0, made.output
    assert after_snapshot

    manifest = read_manifest(tmp_path / "backup")
    live_seq, _ = verified_head(source)
    assert live_seq > manifest["audit"]["seq"]  # writes went on during the backup

    target = places.new("restored")
    restored = lims(target, "restore", str(tmp_path / "backup"))
    assert restored.exit_code == 0, restored.output
    assert verified_head(target) == (manifest["audit"]["seq"], manifest["audit"]["head_hash"])


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("victim", ["database", "data/audit.key", "store"])
def test_tampered_backup_is_refused_and_nothing_restored(
    places: Places, tmp_path: Path, victim: str
) -> None:
    source = places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    manifest = read_manifest(dest)
    if victim == "database":
        name = manifest["database"]["file"]
    elif victim == "store":
        name = next(e["path"] for e in manifest["files"] if e["path"].startswith("data/files/"))
    else:
        name = victim
    path = dest / name
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01  # one flipped bit, same size
    path.write_bytes(bytes(content))

    target = places.new("restored")
    refused = lims(target, "restore", str(dest))

    assert refused.exit_code == 1
    assert squash(name) in squash(refused.output)
    assert squash("nothing restored") in squash(refused.output)
    assert_nothing_restored(target)


def test_truncated_file_is_refused(sqlite_places: Places, tmp_path: Path) -> None:
    source = sqlite_places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    with (dest / "database.sqlite").open("r+b") as f:
        f.truncate(4096)
    target = {"LIMS_DATA_DIR": str(tmp_path / "restored")}
    refused = lims(target, "restore", str(dest))
    assert refused.exit_code == 1
    assert squash("database.sqlite has 4096 bytes") in squash(refused.output)
    assert_nothing_restored(target)


def test_restore_into_non_empty_data_dir_is_refused(places: Places, tmp_path: Path) -> None:
    source = places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    target = places.new("restored")
    data = Path(target["LIMS_DATA_DIR"])
    data.mkdir()
    (data / "notes.txt").write_text("keep me")

    refused = lims(target, "restore", str(dest))

    assert refused.exit_code == 1
    assert squash("is not empty (notes.txt)") in squash(refused.output)
    assert [p.name for p in data.iterdir()] == ["notes.txt"]
    assert (data / "notes.txt").read_text() == "keep me"


def test_restore_into_non_empty_database_is_refused(places: Places, tmp_path: Path) -> None:
    source = places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    if places.engine == "sqlite":
        existing = tmp_path / "elsewhere" / "lims.db"
        existing.parent.mkdir()
        existing.write_bytes(b"")
        target = {"LIMS_DATA_DIR": str(tmp_path / "restored"),
                  "LIMS_DATABASE_URL": f"sqlite:///{existing}"}
        expected = "already exists"
    else:  # the source database itself: certainly not empty
        target = {"LIMS_DATA_DIR": str(tmp_path / "restored"),
                  "LIMS_DATABASE_URL": source["LIMS_DATABASE_URL"]}
        expected = "is not empty"
    head = verified_head(source)

    refused = lims(target, "restore", str(dest))

    assert refused.exit_code == 1
    assert squash(expected) in squash(refused.output)
    assert not any(Path(target["LIMS_DATA_DIR"]).iterdir())
    assert verified_head(source) == head


@pytest.mark.skipif(not PG_URL, reason="needs LIMS_TEST_POSTGRES_URL")
def test_cross_engine_restore_is_refused(sqlite_places: Places, tmp_path: Path) -> None:
    source = sqlite_places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    pg = Places("postgresql", tmp_path)
    try:
        target = pg.new("restored")
        refused = lims(target, "restore", str(dest))
        assert refused.exit_code == 1
        assert squash("cross-engine restore is not supported") in squash(refused.output)
        assert_nothing_restored(target)
    finally:
        pg.drop_all()


def test_bad_destinations_and_sources_give_clear_messages(
    sqlite_places: Places, tmp_path: Path
) -> None:
    source = sqlite_places.source()
    target = {"LIMS_DATA_DIR": str(tmp_path / "restored")}

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    result = lims(source, "backup", str(busy))
    assert result.exit_code == 1
    assert squash("is not empty") in squash(result.output)
    assert [p.name for p in busy.iterdir()] == ["something"]

    inside = Path(source["LIMS_DATA_DIR"]) / "backups" / "today"
    result = lims(source, "backup", str(inside))
    assert result.exit_code == 1
    assert squash("overlaps the data dir") in squash(result.output)

    empty = tmp_path / "empty"
    empty.mkdir()
    result = lims(source, "backup", str(empty))  # an empty directory is fine
    assert result.exit_code == 0, result.output

    no_manifest = tmp_path / "no-manifest"
    no_manifest.mkdir()
    result = lims(target, "restore", str(no_manifest))
    assert result.exit_code == 1
    assert squash("has no manifest.json") in squash(result.output)

    shutil.copytree(empty, tmp_path / "broken")
    (tmp_path / "broken" / "manifest.json").write_text('{"format": "envirolims-backup", ')
    result = lims(target, "restore", str(tmp_path / "broken"))
    assert result.exit_code == 1
    assert squash("is not valid JSON") in squash(result.output)

    shutil.copytree(empty, tmp_path / "escape")
    manifest = read_manifest(tmp_path / "escape")
    manifest["files"].append({"path": "data/../../etc/owned", "size": 1, "sha256": "0" * 64})
    write_manifest(tmp_path / "escape", manifest)
    result = lims(target, "restore", str(tmp_path / "escape"))
    assert result.exit_code == 1
    assert squash("unsafe path") in squash(result.output)

    result = lims(target, "restore", str(tmp_path / "does-not-exist"))
    assert result.exit_code == 1
    assert squash("is not a directory") in squash(result.output)
    assert_nothing_restored(target)


# ---------------------------------------------------------------- a rewritten chain


def rewrite_backup_database(dest: Path, engine: str, places: Places, how: str) -> None:
    """Edit audit_event inside the backup's database (triggers dropped), as someone with the
    backup in hand could, then fix the manifest's size and SHA-256 so the files look intact."""
    manifest = read_manifest(dest)
    db_file = dest / manifest["database"]["file"]
    if engine == "sqlite":
        url = f"sqlite:///{db_file}"
    else:
        url = places.new_pg_database()
        pg_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={pg_url}", str(db_file)],
                       check=True, capture_output=True)
    engine_ = create_engine(normalise_url(url))
    with engine_.begin() as conn:
        unprotect(conn, "audit_event")
        with Session(bind=conn) as session:
            events = session.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.seq)).all()
            if how == "rewritten":  # the last event changed and its hash recomputed: a valid chain
                last = events[-1]
                after = json.dumps({"forged": True}, separators=(",", ":"))
                canonical = audit.event_canonical(
                    last.seq, last.occurred_at, last.actor_id, last.actor, last.action,
                    last.entity_type, last.entity_id, last.before, after)
                values = {"after": after, "hash": audit.chain_hash(last.prev_hash, canonical)}
                target_seq = last.seq
            else:  # an event in the middle changed, hashes left alone: a broken chain
                target_seq = events[len(events) // 2].seq
                values = {"after": json.dumps({"forged": True}, separators=(",", ":"))}
        conn.execute(update(EVENTS).where(EVENTS.c.seq == target_seq).values(**values))
        protect(conn, "audit_event")
    engine_.dispose()
    if engine == "postgresql":
        db_file.unlink()
        subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={db_file}",
                        f"--dbname={pg_url}"], check=True, capture_output=True)
    for entry in manifest["files"]:
        if entry["path"] == manifest["database"]["file"]:
            entry["size"], entry["sha256"] = db_file.stat().st_size, sha256_of(db_file)
    write_manifest(dest, manifest)


@pytest.mark.parametrize("how", ["rewritten", "altered"])
def test_restore_reports_a_chain_changed_after_the_manifest(
    places: Places, tmp_path: Path, how: str
) -> None:
    source = places.source()
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    rewrite_backup_database(dest, places.engine, places, how)
    target = places.new("restored")

    refused = lims(target, "restore", str(dest))

    assert refused.exit_code == 1
    out = squash(refused.output)
    if how == "rewritten":
        assert squash("does not match the manifest") in out
    else:
        assert squash("FAILED verification at seq") in out
    assert squash("left in the data dir") in out
    # Left in place for forensics: the files and the database are there.
    assert (Path(target["LIMS_DATA_DIR"]) / "audit.key").exists()
    verify = lims(target, "audit", "verify")
    assert verify.exit_code == (0 if how == "rewritten" else 1)


# ---------------------------------------------------------------- the audit key


def test_audit_key_outside_the_data_dir_is_not_copied_and_restore_uses_the_configured_one(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "keys" / "audit.key"
    source = {"LIMS_DATA_DIR": str(tmp_path / "source"), "LIMS_AUDIT_KEY_FILE": str(key_file)}
    assert lims(source, "demo", "--no-serve").exit_code == 0
    assert lims(source, "audit", "checkpoint").exit_code == 0
    dest = tmp_path / "backup"
    assert lims(source, "backup", str(dest)).exit_code == 0
    manifest = read_manifest(dest)
    assert manifest["audit"]["key_included"] is False
    assert not any("audit.key" in entry["path"] for entry in manifest["files"])

    good = {"LIMS_DATA_DIR": str(tmp_path / "good"), "LIMS_AUDIT_KEY_FILE": str(key_file)}
    assert lims(good, "restore", str(dest)).exit_code == 0

    wrong_key = tmp_path / "other" / "audit.key"
    read_or_create_key(wrong_key)
    wrong = {"LIMS_DATA_DIR": str(tmp_path / "wrong"), "LIMS_AUDIT_KEY_FILE": str(wrong_key)}
    refused = lims(wrong, "restore", str(dest))
    assert refused.exit_code == 1
    assert squash("invalid signature") in squash(refused.output)
