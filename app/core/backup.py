"""Online backup and verified restore (`lims backup DEST`, `lims restore SRC`).

A backup is a directory: the database (a SQLite copy made with the online backup API, or a
`pg_dump` custom-format archive), the data dir's files under `data/`, and `manifest.json`
listing every file with its size and SHA-256 plus the audit head (seq, hash) read from the very
snapshot that was copied. Restore checks every hash before touching anything, restores into an
empty data dir and an empty database, then recomputes the audit chain and insists its head is
the one the manifest recorded: a restore that cannot prove it is the backup fails loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import make_url

from app.config import Settings
from app.core.canonical import ISO_UTC
from app.core.db import dialect_name, utcnow

FORMAT = "envirolims-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_PREFIX = "data"
DATABASE_FILES = {"sqlite": "database.sqlite", "postgresql": "database.dump"}
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why, for a person to read."""


@dataclass
class RestoreResult:
    events: int
    head_hash: str
    files: int
    engine: str
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- small helpers


@contextmanager
def _progress(console: Console | None) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=console is None or not console.is_terminal,
    ) as progress:
        yield progress


def _warn(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(f"[yellow]warning: {escape(message)}[/yellow]")


def _copy_hashing(src: Path, dst: Path, advance: Callable[[int], None]) -> tuple[int, str]:
    """Copy src to dst (fsynced), returning (size, sha256) of the bytes actually written."""
    digest, size = hashlib.sha256(), 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as reader, dst.open("xb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
        writer.flush()
        os.fsync(writer.fileno())
    return size, digest.hexdigest()


def _hash_file(path: Path, advance: Callable[[int], None]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
    return size, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database).expanduser().resolve()


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password (for argv) and an environment carrying it."""
    parsed = make_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None).render_as_string(hide_password=False), env


def _run_pg_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{argv[0]} not found on PATH; install the PostgreSQL client tools")
    completed = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        raise BackupError(f"{what} failed ({argv[0]} exit {completed.returncode}): "
                          + " | ".join(detail[-5:]))


def _pg_connect(url: str, what: str) -> Any:
    import psycopg

    conninfo, env = _libpq(url)
    try:
        return psycopg.connect(conninfo, password=env.get("PGPASSWORD"), connect_timeout=10)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the {what} database: {exc}".strip()) from None


# ---------------------------------------------------------------- backup


@dataclass
class _Snapshot:
    revision: str
    seq: int
    head_hash: str


def create_backup(settings: Settings, dest: Path, *, console: Console | None = None) -> dict:
    """Write a consistent online backup to DEST (absent or empty); returns the manifest."""
    url = settings.resolved_database_url
    engine = dialect_name(url)
    if engine not in DATABASE_FILES:
        raise BackupError(f"cannot back up a {engine} database (SQLite and PostgreSQL only)")
    dest = Path(dest).expanduser().absolute()
    data_path = settings.data_path
    _check_destination(dest, data_path)
    created = not dest.exists()
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create {dest}: {exc}") from None
    try:
        return _write_backup(settings, url, engine, dest, console)
    except BaseException as exc:
        _discard(dest, created)
        if isinstance(exc, OSError | sqlite3.Error):
            raise BackupError(f"backup failed, nothing kept in {dest}: {exc}") from None
        raise


def _check_destination(dest: Path, data_path: Path) -> None:
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise BackupError(f"{dest} exists and is not a directory")
        if any(dest.iterdir()):
            raise BackupError(f"{dest} is not empty; a backup needs a new or empty directory")
    resolved = dest.resolve()
    if _is_within(resolved, data_path) or _is_within(data_path, resolved):
        raise BackupError(f"{dest} overlaps the data dir {data_path}; put the backup elsewhere")


def _discard(dest: Path, created: bool) -> None:
    """Remove a half-written backup so it can never be mistaken for a complete one."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _write_backup(
    settings: Settings, url: str, engine: str, dest: Path, console: Console | None
) -> dict:
    from app import __version__

    db_name = DATABASE_FILES[engine]
    files: list[dict[str, Any]] = []
    with _progress(console) as progress:
        # The database first, then the files: files are content-addressed and never
        # overwritten, so every file the snapshot refers to already exists when we copy them.
        task = progress.add_task("database snapshot", total=None)
        if engine == "sqlite":
            snapshot = _backup_sqlite(_sqlite_path(url), dest / db_name)
        else:
            snapshot = _backup_postgresql(url, dest / db_name)
        progress.update(task, total=1, completed=1)
        db_file = dest / db_name
        os.chmod(db_file, 0o600)  # password hashes and everything else: owner only
        task = progress.add_task("hashing database", total=db_file.stat().st_size)
        size, digest = _hash_file(db_file, lambda n: progress.advance(task, n))
        files.append({"path": db_name, "size": size, "sha256": digest})
        files.extend(_copy_data_dir(settings, url, engine, dest, progress, console))
    key_rel = _audit_key_in_backup(settings, files)
    if key_rel is None:
        _warn(console, f"audit key {settings.resolved_audit_key_file} is not in the backup; "
                       "keep it safe separately: restore verifies checkpoints with it")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": utcnow().strftime(ISO_UTC),
        "app_version": __version__,
        "database": {"engine": engine, "file": db_name, "alembic_revision": snapshot.revision},
        "audit": {
            "seq": snapshot.seq,
            "head_hash": snapshot.head_hash,
            "key_included": key_rel is not None,
            "key_file": key_rel,
        },
        "files": files,
    }
    tmp = dest / f".{MANIFEST_NAME}.tmp"
    with tmp.open("x", encoding="utf-8") as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest / MANIFEST_NAME)
    for directory in sorted({p.parent for p in dest.rglob("*")}, key=lambda p: -len(p.parts)):
        _fsync_dir(directory)  # the new directory entries too, deepest first
    return manifest


def _read_snapshot(execute: Callable[[str], Any]) -> _Snapshot:
    """Alembic revision and audit head, read through `execute` inside the copied snapshot."""
    try:
        revision_row = execute("SELECT version_num FROM alembic_version")
    except Exception:
        revision_row = None
    if not revision_row:
        raise BackupError("the database has no schema (no alembic_version); "
                          "nothing to back up — run `lims db upgrade` first")
    head = execute("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    from app.core.audit import GENESIS_HASH

    seq, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
    return _Snapshot(str(revision_row[0]), seq, head_hash)


def _backup_sqlite(db_path: Path, target: Path) -> _Snapshot:
    """SQLite's online backup API: one step, so the copy is one consistent read snapshot
    (under WAL, writers carry on meanwhile). The head is then read from the copy itself."""
    if not db_path.is_file():
        raise BackupError(f"database file {db_path} not found")
    source = sqlite3.connect(f"file:{quote(str(db_path))}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # self-contained: no -wal beside it
            check = copy.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the database copy fails SQLite's integrity check: {check}")
            return _read_snapshot(lambda sql: copy.execute(sql).fetchone())
        finally:
            copy.close()
    finally:
        source.close()


def _backup_postgresql(url: str, target: Path) -> _Snapshot:
    """pg_dump runs on a snapshot exported by our own REPEATABLE READ transaction, so the
    audit head we read there is exactly the head inside the dump."""
    import psycopg

    conninfo, env = _libpq(url)
    conn = _pg_connect(url, "source")
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]

            def execute(sql: str) -> Any:
                with conn.transaction():  # a savepoint: a missing table must not end the txn
                    return conn.execute(sql).fetchone()

            snapshot = _read_snapshot(execute)
            _run_pg_tool(
                ["pg_dump", "--format=custom", "--no-owner", f"--snapshot={snapshot_id}",
                 f"--file={target}", f"--dbname={conninfo}"],
                env, "pg_dump",
            )
        return snapshot
    except psycopg.Error as exc:
        raise BackupError(f"reading the source database failed: {exc}") from None
    finally:
        conn.close()


def _copy_data_dir(
    settings: Settings, url: str, engine: str, dest: Path, progress: Progress,
    console: Console | None,
) -> list[dict[str, Any]]:
    """Copy the data dir's regular files (not the live SQLite database) into DEST/data/."""
    data_path = settings.data_path
    skip: set[Path] = set()
    if engine == "sqlite":
        db_path = _sqlite_path(url)
        skip = {db_path} | {Path(f"{db_path}{suffix}") for suffix in SQLITE_SIDE_FILES}
    sources: list[tuple[Path, int]] = []
    if data_path.is_dir():
        for root, dirs, names in os.walk(data_path):
            dirs.sort()
            for name in sorted(names):
                path = Path(root) / name
                if path in skip:
                    continue
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    _warn(console, f"skipped {path}: not a regular file")
                    continue
                sources.append((path, info.st_size))
    task = progress.add_task("copying files", total=sum(size for _, size in sources))
    entries: list[dict[str, Any]] = []
    for path, _ in sources:
        rel = PurePosixPath(DATA_PREFIX, *path.relative_to(data_path).parts)
        try:
            size, digest = _copy_hashing(path, dest / rel, lambda n: progress.advance(task, n))
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            _warn(console, f"skipped {path}: it vanished during the backup")
            continue
        os.chmod(dest / rel, mode)
        entries.append({"path": str(rel), "size": size, "sha256": digest, "mode": f"{mode:04o}"})
    return entries


def _audit_key_in_backup(settings: Settings, files: list[dict[str, Any]]) -> str | None:
    key_file, data_path = settings.resolved_audit_key_file, settings.data_path
    if not _is_within(key_file, data_path):
        return None
    rel = str(PurePosixPath(DATA_PREFIX, *key_file.relative_to(data_path).parts))
    return rel if any(entry["path"] == rel for entry in files) else None


# ---------------------------------------------------------------- restore


def read_manifest(src: Path) -> dict[str, Any]:
    """Load and sanity-check SRC/manifest.json (format, version, safe relative paths)."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise BackupError(f"{src} is not a directory (a backup is a directory)")
    path = src / MANIFEST_NAME
    if not path.is_file():
        raise BackupError(f"{src} has no {MANIFEST_NAME}: not an EnviroLIMS backup, "
                          "or an incomplete one")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}); the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not an EnviroLIMS backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"backup format version {manifest.get('format_version')!r} is not "
                          f"supported (this version reads {FORMAT_VERSION})")
    try:
        _check_manifest_shape(manifest)
    except KeyError as exc:
        raise BackupError(f"{path} is incomplete: missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BackupError(f"{path} is malformed: {exc}") from None
    return manifest


def _check_manifest_shape(manifest: dict[str, Any]) -> None:
    database, audit = manifest["database"], manifest["audit"]
    if database["engine"] not in DATABASE_FILES or database["file"] != DATABASE_FILES[
        database["engine"]
    ]:
        raise ValueError(f"unknown database {database['engine']!r} / {database['file']!r}")
    int(audit["seq"])
    if len(str(audit["head_hash"])) != 64:
        raise ValueError("audit head_hash is not a SHA-256")
    seen: set[str] = set()
    for entry in manifest["files"]:
        rel = PurePosixPath(entry["path"])
        if rel.is_absolute() or ".." in rel.parts or "\\" in entry["path"] or not rel.parts:
            raise ValueError(f"unsafe path {entry['path']!r}")
        if entry["path"] != database["file"] and rel.parts[0] != DATA_PREFIX:
            raise ValueError(f"unexpected file {entry['path']!r}")
        if entry["path"] in seen:
            raise ValueError(f"file {entry['path']!r} listed twice")
        seen.add(entry["path"])
        int(entry["size"]), str(entry["sha256"])
        if "mode" in entry:
            int(entry["mode"], 8)
    if database["file"] not in seen:
        raise ValueError(f"the database file {database['file']!r} is not listed")


def restore_backup(settings: Settings, src: Path, *, console: Console | None = None) -> RestoreResult:
    """Restore SRC into an empty data dir and an empty database, then prove the audit head."""
    src = Path(src).expanduser().absolute()
    manifest = read_manifest(src)
    url = settings.resolved_database_url
    engine, backup_engine = dialect_name(url), manifest["database"]["engine"]
    if engine != backup_engine:
        raise BackupError(f"this is a {backup_engine} backup and the target database is "
                          f"{engine}: cross-engine restore is not supported")
    _check_empty_data_dir(settings.data_path)
    if engine == "sqlite":
        _check_sqlite_target(_sqlite_path(url))
    else:
        _check_postgresql_target(url)
    warnings: list[str] = []
    try:
        with _progress(console) as progress:
            _verify_files(src, manifest, progress, warnings)
            # The database first: it is restored atomically (one transaction, or a rename), so
            # a refusal there (wrong server version, permissions) leaves everything untouched.
            task = progress.add_task("restoring database", total=None)
            db_file = src / manifest["database"]["file"]
            if engine == "sqlite":
                _restore_sqlite(db_file, _sqlite_path(url), manifest)
            else:
                _run_pg_tool(
                    ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction",
                     f"--dbname={_libpq(url)[0]}", str(db_file)],
                    _libpq(url)[1], "pg_restore",
                )
            progress.update(task, total=1, completed=1)
            restored = _restore_files(src, manifest, settings.data_path, progress)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"restore failed: {exc}") from None
    result = _prove_head(settings, url, manifest, console, warnings)
    result.files = restored
    for message in warnings:
        _warn(console, message)
    return result


def _check_empty_data_dir(data_path: Path) -> None:
    if data_path.exists():
        if not data_path.is_dir():
            raise BackupError(f"data dir {data_path} exists and is not a directory")
        entries = sorted(p.name for p in data_path.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise BackupError(f"data dir {data_path} is not empty ({shown}); "
                              "restore only into an empty data dir")


def _check_sqlite_target(db_path: Path) -> None:
    for candidate in [db_path, *(Path(f"{db_path}{s}") for s in SQLITE_SIDE_FILES)]:
        if candidate.exists():
            raise BackupError(f"target database file {candidate} already exists; "
                              "restore only into a new database")


def _check_postgresql_target(url: str) -> None:
    conn = _pg_connect(url, "target")
    try:
        relations = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
        ).fetchone()[0]
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    finally:
        conn.close()
    if relations or functions:
        name = make_url(url).database
        raise BackupError(f"target database {name} is not empty ({relations} tables/sequences/"
                          f"indexes, {functions} functions); restore only into an empty database")


def _verify_files(src: Path, manifest: dict[str, Any], progress: Progress,
                  warnings: list[str]) -> None:
    """Every listed file must exist with its size and SHA-256; otherwise restore nothing."""
    entries = manifest["files"]
    task = progress.add_task("checking backup", total=sum(int(e["size"]) for e in entries))
    problems: list[str] = []
    for entry in entries:
        path = src / entry["path"]
        if path.is_symlink() or not path.is_file():
            problems.append(f"{entry['path']} is missing")
            continue
        size, digest = _hash_file(path, lambda n: progress.advance(task, n))
        if size != int(entry["size"]):
            problems.append(f"{entry['path']} has {size} bytes, the manifest says {entry['size']}")
        elif digest != entry["sha256"]:
            problems.append(f"{entry['path']} does not match its SHA-256 in the manifest")
    if problems:
        raise BackupError("backup is damaged or was altered, nothing restored: "
                          + "; ".join(problems))
    listed = {entry["path"] for entry in entries} | {MANIFEST_NAME}
    for root, _dirs, names in os.walk(src):
        for name in names:
            rel = PurePosixPath(*Path(root, name).relative_to(src).parts)
            if str(rel) not in listed:
                warnings.append(f"{rel} in the backup is not in the manifest; not restored")


def _restore_files(src: Path, manifest: dict[str, Any], data_path: Path,
                   progress: Progress) -> int:
    entries = [e for e in manifest["files"] if PurePosixPath(e["path"]).parts[0] == DATA_PREFIX]
    task = progress.add_task("restoring files", total=sum(int(e["size"]) for e in entries))
    data_path.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        rel = PurePosixPath(entry["path"]).relative_to(DATA_PREFIX)
        target = data_path.joinpath(*rel.parts)
        _, digest = _copy_hashing(src / entry["path"], target, lambda n: progress.advance(task, n))
        if digest != entry["sha256"]:  # changed between the check and the copy
            raise BackupError(f"{entry['path']} changed while it was being restored")
        if "mode" in entry:
            os.chmod(target, int(entry["mode"], 8))
    return len(entries)


def _restore_sqlite(db_file: Path, target: Path, manifest: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.restoring")
    staging.unlink(missing_ok=True)
    _, digest = _copy_hashing(db_file, staging, lambda n: None)
    db_entry = next(e for e in manifest["files"] if e["path"] == manifest["database"]["file"])
    if digest != db_entry["sha256"]:
        staging.unlink(missing_ok=True)
        raise BackupError(f"{db_entry['path']} changed while it was being restored")
    os.replace(staging, target)
    _fsync_dir(target.parent)


def _audit_key(settings: Settings, manifest: dict[str, Any], warnings: list[str]) -> bytes | None:
    """The configured key; failing that, the key restored from the backup."""
    configured = settings.resolved_audit_key_file
    if configured.is_file():
        return configured.read_text().strip().encode("ascii")
    key_rel = manifest["audit"].get("key_file")
    if manifest["audit"].get("key_included") and key_rel:
        restored = settings.data_path.joinpath(*PurePosixPath(key_rel).relative_to(DATA_PREFIX).parts)
        if restored.is_file():
            warnings.append(f"configured audit key {configured} not found; checkpoints verified "
                            f"with the key restored to {restored}")
            return restored.read_text().strip().encode("ascii")
    warnings.append(f"audit key {configured} not found and not in the backup; "
                    "checkpoint signatures were not checked")
    return None


def _prove_head(settings: Settings, url: str, manifest: dict[str, Any],
                console: Console | None, warnings: list[str]) -> RestoreResult:
    """Recompute the restored chain; its head must be the manifest's, or the restore fails."""
    from app.core import audit
    from app.core.db import Database
    from app.core.migrate import current_revision

    key = _audit_key(settings, manifest, warnings)
    db = Database(url)
    try:
        revision = current_revision(db.engine)
        with db.reading() as session, _progress(console) as progress:
            task = progress.add_task("verifying audit chain", total=audit.count_events(session))
            result = audit.verify_chain(
                session, key, lambda n: progress.advance(task, n),
                [a for a in audit.read_anchors(settings.resolved_audit_anchor_file)
                 if a.seq <= int(manifest["audit"]["seq"])],  # later anchors postdate the backup
            )
    except BackupError:
        raise
    except Exception as exc:
        raise BackupError(f"the restored database cannot be read: {exc}") from None
    finally:
        db.dispose()
    where = f"data dir {settings.data_path} and database {make_url(url).database}"
    if not result.ok:
        raise BackupError(f"restored audit chain FAILED verification at seq {result.first_bad_seq}"
                          f": {result.reason}. The restored data was left in the {where} for "
                          "investigation; do not put it into service.")
    expected = manifest["audit"]
    if (result.events, result.head_hash) != (int(expected["seq"]), expected["head_hash"]):
        raise BackupError(f"restored audit head (seq {result.events}, {result.head_hash}) does "
                          f"not match the manifest (seq {expected['seq']}, {expected['head_hash']})"
                          f": the database was altered after the backup. The restored data was "
                          f"left in the {where} for investigation; do not put it into service.")
    if revision != manifest["database"]["alembic_revision"]:
        warnings.append(f"restored schema revision {revision} differs from the manifest's "
                        f"{manifest['database']['alembic_revision']}")
    _warn_unknown_revision(revision, warnings)
    return RestoreResult(result.events, result.head_hash, 0, manifest["database"]["engine"],
                         warnings)


def _warn_unknown_revision(revision: str | None, warnings: list[str]) -> None:
    from alembic.script import ScriptDirectory

    from app.core.migrate import alembic_config

    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception:
        warnings.append(f"schema revision {revision} is unknown to this version of EnviroLIMS "
                        "(a backup from a newer version?); upgrade the application before use")
