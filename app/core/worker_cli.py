"""`lims worker`: consumes the job queue in production (issue 9).

With PostgreSQL, jobs (report rendering and signing) are procrastinate tasks in the lab's own
database; this command runs the procrastinate worker that takes them. It applies procrastinate's
schema first if it is missing, and re-sends the jobs a stopped process left queued. With SQLite
the app runs jobs on its own threads and no worker is needed.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True, soft_wrap=True)


def load_job_handlers() -> None:
    """Import the modules that register job handlers (the worker serves no pages)."""
    import app.oversight.anomalies  # noqa: F401  anomaly_scan
    import app.reports.issue  # noqa: F401  report.render, report.sign


def worker(
    concurrency: int = typer.Option(1, "--concurrency", min=1, max=16,
                                    help="Jobs run at once (rendering is CPU-bound: one per CPU)."),
    once: bool = typer.Option(False, "--once", help="Run the jobs waiting now, then exit."),
) -> None:
    """Run the background job worker (PostgreSQL, procrastinate)."""
    from app.config import get_settings
    from app.core import job_queue
    from app.core.db import Database

    try:
        settings = get_settings()
        settings.ensure_data_dir()
        job_queue.conninfo(settings)
    except Exception as exc:  # invalid LIMS_* values, or not PostgreSQL
        err.print(f"[red]{escape(str(exc))}[/red] (with SQLite the app runs jobs itself)")
        raise typer.Exit(2) from None
    load_job_handlers()
    db = job_queue.attach(Database.from_settings(settings))
    try:
        if job_queue.ensure_procrastinate_schema(db, settings):
            err.print("applied the procrastinate schema")
        resent = job_queue.resume_jobs(db, settings, "procrastinate")
        if resent:
            err.print(f"re-sent {resent} queued job(s)")
        job_queue.procrastinate_app(settings).run_worker(
            queues=[job_queue.PROCRASTINATE_QUEUE], wait=not once, concurrency=concurrency)
    finally:
        job_queue.close_procrastinate(settings)
        job_queue.detach(db)
        db.dispose()
