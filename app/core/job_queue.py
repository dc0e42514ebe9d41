"""Background jobs with progress (rendering and signing reports, scans): one small interface.

`enqueue(session, kind, entity_type, entity_id, payload, actor)` records a `Job` row in the caller's
transaction; once it commits the job runs: in-process on a worker thread in the embedded default
(SQLite), on procrastinate (a queue in the same PostgreSQL database) consumed by `lims worker`
in production, or inline right after the commit (tests). A rolled-back transaction leaves no row,
so its job never runs. The row carries state and progress so a page can poll it; the work itself
is a handler registered with `@handler(kind)` that receives the job id and reports progress
through `report_progress()`.

`run_job` claims a row (queued → running, `FOR UPDATE SKIP LOCKED` on PostgreSQL) before it runs
the handler, so a job dispatched twice (a restart, a lost defer re-sent) still runs once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, event, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core.db import Database, UTCDateTime, normalise_url, utcnow
from app.core.errors import DomainError
from app.core.event_loop import outside_event_loop

log = logging.getLogger("lims.job_queue")

MODES = ("auto", "thread", "procrastinate", "inline")
PROCRASTINATE_TASK = "lims.run_job"
PROCRASTINATE_QUEUE = "lims"
THREADS = 2  # rendering and signing are CPU-bound; the embedded machine is small
_PENDING_KEY = "lims_jobs_pending"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (Index("ix_job_entity", "entity_type", "entity_id"), Index("ix_job_state", "state"))

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)  # the handler's name, e.g. "report.issue"
    entity_type: str = Field(max_length=64)
    entity_id: str = Field(max_length=64)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    state: str = Field(default=JobState.QUEUED.value, max_length=8)
    progress: int = Field(default=0)  # 0..100
    step: str = Field(default="", max_length=60)  # what it is doing now (a message key)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    attempts: int = Field(default=0)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("app_user.id"),
                                                                     nullable=True))
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def active(self) -> bool:
        return self.state in (JobState.QUEUED.value, JobState.RUNNING.value)

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload or "{}")


JobHandler = Callable[[Database, Any, int], None]
HANDLERS: dict[str, JobHandler] = {}


def handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    """Register `fn(db, settings, job_id)` as the work of jobs of `kind`."""
    if len(kind) > 40:
        raise ValueError(f"job kind {kind!r} is longer than 40 characters")

    def register(fn: JobHandler) -> JobHandler:
        HANDLERS[kind] = fn
        return fn

    return register


def queue_mode(settings: Any) -> str:
    """Where jobs run: the setting, with "auto" resolved by the database engine."""
    mode = str(settings.job_queue).strip().lower()
    if mode not in MODES:
        raise ValueError(f"LIMS_JOB_QUEUE must be one of {', '.join(MODES)} (not {settings.job_queue!r})")
    if mode == "auto":
        backend = make_url(normalise_url(settings.resolved_database_url)).get_backend_name()
        return "procrastinate" if backend == "postgresql" else "thread"
    return mode


# ---------------------------------------------------------------- databases by URL

_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def attach(db: Database) -> Database:
    """Jobs of this database run on `db` (the app's own, with its pool); called at app start and
    by `lims worker`."""
    with _databases_lock:
        _databases[db.url] = db
    return db


def attached(settings: Any) -> Database | None:
    """The Database attached for these settings' URL, if any."""
    with _databases_lock:
        return _databases.get(normalise_url(settings.resolved_database_url))


def run_on_settings(settings: Any, job_id: int) -> None:
    """Run a job on the attached Database of its settings, or on one opened for this job alone
    (a session knows its settings, not the Database object that opened it)."""
    db = attached(settings)
    if db is not None:
        _run_logged(db, settings, job_id)
        return
    db = Database.from_settings(settings)
    try:
        _run_logged(db, settings, job_id)
    finally:
        db.dispose()


def detach(db: Database) -> None:
    with _databases_lock:
        if _databases.get(db.url) is db:
            del _databases[db.url]


# ---------------------------------------------------------------- enqueue and dispatch


def enqueue(session: Session, kind: str, entity_type: str, entity_id: Any, payload: dict[str, Any],
            actor: Any) -> Job:
    """A job row in the caller's transaction; it is dispatched once that transaction commits."""
    if kind not in HANDLERS:
        raise ValueError(f"no handler registered for job kind {kind!r}")
    job = Job(kind=kind, entity_type=entity_type, entity_id=str(entity_id),
              payload=json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str),
              created_at=utcnow(), created_by_id=getattr(actor, "id", None))
    session.add(job)
    session.flush()
    session.info.setdefault(_PENDING_KEY, []).append(job.id)
    return job


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    from app.config import settings_of

    settings = settings_of(session)
    for job_id in pending:
        dispatch(settings, job_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def dispatch(settings: Any, job_id: int, mode: str | None = None) -> None:
    """Hand a committed job to its runner. A failure to hand it over is logged, never raised: the
    caller's act is committed, and the job stays queued until `resume_jobs` sends it again."""
    try:
        mode = mode or queue_mode(settings)
        if mode == "inline":
            run_on_settings(settings, job_id)
        elif mode == "thread":
            _executor().submit(run_on_settings, settings, job_id)
        else:
            defer_to_procrastinate(settings, job_id)
    except Exception:
        log.exception("job %s could not be dispatched; it stays queued", job_id)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="lims-job")
        return _pool


def _run_logged(db: Database, settings: Any, job_id: int) -> None:
    try:
        run_job(db, settings, job_id)
    except Exception:
        log.exception("job %s could not be run", job_id)


# ---------------------------------------------------------------- running


def run_job(db: Database, settings: Any, job_id: int) -> str | None:
    """Claim the job, run its handler, record done or failed; returns the final state, or None
    when the job was not there to claim (already taken, finished, or never committed)."""
    with db.transaction() as session:
        stmt = select(Job).where(Job.id == job_id, Job.state == JobState.QUEUED.value)
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        job = session.scalars(stmt).first()
        if job is None:
            return None
        job.state, job.attempts, job.started_at = JobState.RUNNING.value, job.attempts + 1, utcnow()
        job.progress, job.step, job.error, job.finished_at = 0, "started", "", None
        kind = job.kind
    fn = HANDLERS.get(kind)
    try:
        if fn is None:
            raise LookupError(f"no handler registered for job kind {kind!r}")
        fn(db, settings, job_id)
    except DomainError as refusal:
        return _finish(db, job_id, JobState.FAILED, refusal.message(getattr(settings, "language", "zh_CN")))
    except Exception as exc:
        log.exception("job %s (%s) failed", job_id, kind)
        return _finish(db, job_id, JobState.FAILED, f"{type(exc).__name__}: {exc}")
    return _finish(db, job_id, JobState.DONE, "")


def _finish(db: Database, job_id: int, state: JobState, error: str) -> str:
    values: dict[str, Any] = {"state": state.value, "error": error[:4000], "finished_at": utcnow()}
    if state is JobState.DONE:
        values.update(progress=100, step="done")
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
    return state.value


def report_progress(db: Database, job_id: int, percent: int, step: str) -> None:
    """Progress in its own short transaction, so a polling page sees it while the job works."""
    with db.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(progress=max(0, min(100, int(percent))), step=step[:60]))


def job_by_id(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def latest_job(session: Session, entity_type: str, entity_id: Any, kinds: tuple[str, ...] = ()) -> Job | None:
    """The newest job of an entity (of one of `kinds` when given)."""
    stmt = select(Job).where(Job.entity_type == entity_type, Job.entity_id == str(entity_id))
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    return session.scalars(stmt.order_by(Job.id.desc()).limit(1)).first()


def resume_jobs(db: Database, settings: Any, mode: str | None = None) -> int:
    """Send again the jobs a stopped process left behind (at app start, and `lims worker` start).

    In thread mode the process that ran them is gone (the embedded default is one process), so a
    `running` job is queued again; procrastinate keeps its own record of jobs a worker was running
    when it died, so there only queued ones are re-sent (a duplicate is claimed once)."""
    mode = mode or queue_mode(settings)
    if mode == "inline":
        return 0
    with db.transaction() as session:
        if mode == "thread":
            session.execute(update(Job).where(Job.state == JobState.RUNNING.value)
                            .values(state=JobState.QUEUED.value, step="resumed"))
        ids = list(session.scalars(select(Job.id).where(Job.state == JobState.QUEUED.value).order_by(Job.id)))
    for job_id in ids:
        dispatch(settings, job_id, mode)
    return len(ids)


def resume_jobs_logged(db: Database, settings: Any) -> int:
    """`resume_jobs` at app start: a failure is logged, and the app starts all the same."""
    try:
        return resume_jobs(db, settings)
    except Exception:
        log.exception("queued jobs could not be resumed")
        return 0


# ---------------------------------------------------------------- procrastinate (PostgreSQL)

_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()


def conninfo(settings: Any) -> str:
    """The libpq address of the lab's PostgreSQL database (procrastinate speaks psycopg directly)."""
    url = make_url(normalise_url(settings.resolved_database_url))
    if url.get_backend_name() != "postgresql":
        raise ValueError("the procrastinate job queue needs PostgreSQL (LIMS_DATABASE_URL)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def procrastinate_app(settings: Any) -> Any:
    """A procrastinate App on the lab's database with the one task that runs a job by id."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings)))

    @app.task(name=PROCRASTINATE_TASK, queue=PROCRASTINATE_QUEUE)
    def run_lims_job(job_id: int) -> None:
        run_on_settings(settings, job_id)

    return app


def _deferring_app(settings: Any) -> Any:
    key = conninfo(settings)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            app = procrastinate_app(settings)
            app.open()
            _apps[key] = app
        return app


def defer_to_procrastinate(settings: Any, job_id: int) -> None:
    task = _deferring_app(settings).tasks[PROCRASTINATE_TASK]
    outside_event_loop(task.defer, job_id=job_id)  # procrastinate's sync API may drive a loop of its own


def close_procrastinate(settings: Any) -> None:
    """Close the deferring connection pool of these settings (app shutdown, tests)."""
    with _apps_lock:
        app = _apps.pop(conninfo(settings), None)
    if app is not None:
        app.close()


def procrastinate_schema_present(db: Database) -> bool:
    with db.reading() as session:
        return session.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None


def ensure_procrastinate_schema(db: Database, settings: Any) -> bool:
    """Apply procrastinate's schema unless it is there; True when it was applied now."""
    if procrastinate_schema_present(db):
        return False
    app = procrastinate_app(settings)
    with app.open():
        app.schema_manager.apply_schema()
    return True
