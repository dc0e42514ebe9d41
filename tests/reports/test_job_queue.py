"""The job queue: a job runs only after its transaction commits (inline, on a thread, on
procrastinate with PostgreSQL), is claimed once, records progress, failure and its error, and a
job left behind by a stopped process runs when the app starts again."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core import job_queue
from app.core.errors import DomainError
from app.core.event_loop import outside_event_loop
from app.core.job_queue import Job, JobState, enqueue, handler, run_job
from app.main import create_app

calls: list[tuple[str, int]] = []


class BenchBusy(DomainError):
    code = "bench_busy"
    message_zh = "工作台忙：{what}"
    message_en = "The bench is busy: {what}"


@handler("test.echo")
def _echo(db, settings, job_id: int) -> None:
    with db.reading() as session:
        assert session.get(Job, job_id).state == JobState.RUNNING.value
    job_queue.report_progress(db, job_id, 50, "halfway")
    calls.append(("echo", job_id))


@handler("test.refuse")
def _refuse(db, settings, job_id: int) -> None:
    raise BenchBusy(what="spectrometer")


@handler("test.crash")
def _crash(db, settings, job_id: int) -> None:
    raise RuntimeError("the lamp burnt out")


@pytest.fixture(autouse=True)
def _no_calls():
    calls.clear()
    yield
    calls.clear()


def _job(db, job_id: int) -> Job:
    with db.reading() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def _enqueue(db, kind: str = "test.echo", user=None) -> int:
    with db.transaction() as session:
        return enqueue(session, kind, "bench", 7, {"why": "test"}, user).id


def _wait(db, job_id: int, seconds: float = 60) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = _job(db, job_id)
        if job.state in (JobState.DONE.value, JobState.FAILED.value):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.state}")


def test_inline_job_runs_after_commit_with_progress(db, settings, users):
    settings.job_queue = "inline"
    job_id = _enqueue(db, user=users["analyst"])
    job = _job(db, job_id)
    assert calls == [("echo", job_id)]
    assert (job.state, job.progress, job.step, job.attempts, job.error) == ("done", 100, "done", 1, "")
    assert job.created_by_id == users["analyst"].id and job.data == {"why": "test"}
    assert job.started_at and job.finished_at


def test_a_rolled_back_job_never_runs(db, settings):
    settings.job_queue = "inline"
    with pytest.raises(RuntimeError), db.transaction() as session:
        enqueue(session, "test.echo", "bench", 7, {}, None)
        raise RuntimeError("the act failed")
    with db.transaction() as session:  # a later commit does not pick it up either
        session.execute(select(1))
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert calls == []


def test_a_job_is_claimed_once(db, settings):
    settings.job_queue = "inline"
    job_id = _enqueue(db)
    assert run_job(db, settings, job_id) is None  # done already: nothing to claim
    assert calls == [("echo", job_id)] and _job(db, job_id).attempts == 1


def test_failures_are_recorded_with_their_reason(db, settings):
    settings.job_queue = "inline"
    refused, crashed = _enqueue(db, "test.refuse"), _enqueue(db, "test.crash")
    job = _job(db, refused)
    assert (job.state, job.error) == ("failed", "工作台忙：spectrometer")
    job = _job(db, crashed)
    assert (job.state, job.error) == ("failed", "RuntimeError: the lamp burnt out")


def test_unknown_kind_and_bad_mode_are_refused(db, settings):
    with pytest.raises(ValueError), db.transaction() as session:
        enqueue(session, "no.such.job", "bench", 1, {}, None)
    settings.job_queue = "celery"
    with pytest.raises(ValueError, match="LIMS_JOB_QUEUE"):
        job_queue.queue_mode(settings)
    settings.job_queue = "auto"
    assert job_queue.queue_mode(settings) == ("procrastinate" if db.dialect == "postgresql" else "thread")


def test_thread_job_runs_in_the_background(db, settings):
    settings.job_queue = "thread"
    job_id = _enqueue(db)
    job = _wait(db, job_id)
    assert job.state == "done" and calls == [("echo", job_id)]


def test_jobs_left_by_a_stopped_process_run_at_start(settings, database_url):
    settings.job_queue = "thread"
    app = create_app(settings)
    db = app.state.db
    try:
        with db.transaction() as session:  # as a killed process left them: one running, one queued
            session.add(Job(kind="test.echo", entity_type="bench", entity_id="1", state="running", attempts=1,
                            created_at=job_queue.utcnow()))
            session.add(Job(kind="test.echo", entity_type="bench", entity_id="2", created_at=job_queue.utcnow()))
            session.flush()
            ids = [j.id for j in session.scalars(select(Job).order_by(Job.id))]
        with TestClient(app):
            jobs = [_wait(db, job_id) for job_id in ids]
        assert [(j.state, j.attempts) for j in jobs] == [("done", 2), ("done", 1)]
        assert sorted(calls) == sorted(("echo", job_id) for job_id in ids)
    finally:
        db.dispose()


def test_procrastinate_worker_runs_the_job(pg_db, settings):
    """PostgreSQL: the job is deferred to procrastinate after the commit and a worker runs it."""
    settings.job_queue = "procrastinate"
    job_queue.attach(pg_db)
    try:
        assert job_queue.ensure_procrastinate_schema(pg_db, settings) is True
        assert job_queue.ensure_procrastinate_schema(pg_db, settings) is False
        job_id = _enqueue(pg_db)
        assert _job(pg_db, job_id).state == "queued" and calls == []  # waits for a worker
        worker_app = job_queue.procrastinate_app(settings)

        async def work() -> None:
            async with worker_app.open_async():
                await worker_app.run_worker_async(queues=[job_queue.PROCRASTINATE_QUEUE], wait=False)

        outside_event_loop(asyncio.run, work())  # not inside a loop a browser test left running
        job = _job(pg_db, job_id)
        assert (job.state, job.attempts) == ("done", 1) and calls == [("echo", job_id)]
    finally:
        job_queue.close_procrastinate(settings)
        job_queue.detach(pg_db)


def test_lims_worker_applies_the_schema_and_runs_what_was_left_queued(pg_db, settings, monkeypatch, caplog):
    """PostgreSQL: a job whose hand-over failed (no procrastinate schema yet) stays queued; `lims
    worker --once` applies the schema, re-sends it and runs it."""
    from typer.testing import CliRunner

    from app.cli import app as cli

    settings.job_queue = "procrastinate"
    assert not job_queue.procrastinate_schema_present(pg_db)
    job_id = _enqueue(pg_db)
    assert _job(pg_db, job_id).state == "queued" and "could not be dispatched" in caplog.text
    job_queue.close_procrastinate(settings)
    monkeypatch.setenv("LIMS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LIMS_DATA_DIR", str(settings.data_path))
    result = CliRunner().invoke(cli, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert job_queue.procrastinate_schema_present(pg_db)
    job = _job(pg_db, job_id)
    assert (job.state, job.attempts) == ("done", 1) and calls == [("echo", job_id)]


def test_lims_worker_needs_postgresql(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from app.cli import app as cli

    monkeypatch.setenv("LIMS_DATABASE_URL", f"sqlite:///{tmp_path / 'lims.db'}")
    monkeypatch.setenv("LIMS_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["worker", "--once"])
    assert result.exit_code == 2 and "PostgreSQL" in result.output
