"""create_app(settings) -> FastAPI: one app serving pages (Jinja2 + htmx) and /api/v1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from app import __version__
from app.config import Settings, get_settings
from app.core import handlers
from app.core.db import Database
from app.core.middleware import (
    BodySizeLimitMiddleware,
    LanguageMiddleware,
    SecurityHeadersMiddleware,
    tile_image_source,
)
from app.core.web import STATIC_DIR, build_templates

SESSION_COOKIE = "lims_session"
SESSION_MAX_AGE = 12 * 3600  # absolute cap; the idle timeout is enforced per request


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from app.core import job_queue

        job_queue.queue_mode(settings)  # a wrong LIMS_JOB_QUEUE stops the start
        job_queue.attach(app.state.db)
        await asyncio.to_thread(job_queue.resume_jobs_logged, app.state.db, settings)
        task = None
        if settings.run_jobs:
            from app.core.jobs import run_scheduler

            task = asyncio.create_task(run_scheduler(app.state.db, settings))
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            job_queue.detach(app.state.db)
            app.state.db.dispose()

    app = FastAPI(
        title="EnviroLIMS",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database.from_settings(settings)
    app.state.templates = build_templates(settings)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.add_middleware(LanguageMiddleware, default=settings.language)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_mb * 1024 * 1024)
    tiles = tile_image_source(settings.map_tile_url)
    app.add_middleware(SecurityHeadersMiddleware, extra_img_sources=(tiles,) if tiles else ())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    from app.analysis import (
        batch_api,
        batch_routes,
        chart_routes,
        curve_routes,
        entry_routes,
        import_routes,
        limit_routes,
        method_routes,
        qc_routes,
        qualification_routes,
        result_api,
    )
    from app.instruments.api import router as instruments_api_router
    from app.instruments.record_routes import router as instrument_records_router
    from app.instruments.routes import router as instruments_router
    from app.oversight import (
        alarm_routes,
        dashboard_routes,
        explorer_routes,
        inspection_routes,
        interference_routes,
        station_routes,
    )
    from app.oversight.routes import router as oversight_router
    from app.people.routes import router as people_router
    from app.reference_materials.api import router as materials_api_router
    from app.reference_materials.routes import router as materials_router
    from app.reference_materials.solution_routes import router as solutions_router
    from app.reports import issue_routes, report_api, report_routes, review_routes, scope_routes, verify_routes
    from app.samples.api import router as samples_api_router
    from app.samples.custody_api import router as custody_api_router
    from app.samples.custody_routes import router as custody_router
    from app.samples.field_api import router as field_api_router
    from app.samples.field_routes import router as field_router
    from app.samples.holding_routes import router as holding_router
    from app.samples.prep_routes import router as prep_router
    from app.samples.receipt_api import router as receipt_api_router
    from app.samples.receipt_routes import router as receipt_router
    from app.samples.routes import router as samples_router
    from app.samples.storage_routes import router as storage_router
    from app.shell.routes import router as shell_router
    from app.sites.api import router as sites_api_router
    from app.sites.plan_routes import router as plans_router
    from app.sites.routes import router as sites_router

    app.include_router(shell_router)
    app.include_router(people_router)
    # oversight (issue 10) before the audit viewer, whose /oversight/audit/{seq} takes any segment
    for module in (explorer_routes, dashboard_routes, interference_routes, alarm_routes, station_routes,
                   inspection_routes):
        app.include_router(module.router)
    app.include_router(oversight_router)
    # The record pages first: the registry's /instruments/{asset_no:path} would match their paths.
    app.include_router(instrument_records_router)
    app.include_router(instruments_router)
    app.include_router(instruments_api_router)
    app.include_router(solutions_router)
    app.include_router(materials_router)
    app.include_router(materials_api_router)
    app.include_router(field_router)
    app.include_router(field_api_router)
    # the lab part of samples (issue 7) before /samples/{sample_no} so its pages are not shadowed
    for lab_router in (custody_router, custody_api_router, receipt_router, receipt_api_router, holding_router,
                       storage_router, prep_router):
        app.include_router(lab_router)
    app.include_router(samples_router)
    app.include_router(samples_api_router)
    app.include_router(sites_router)
    app.include_router(sites_api_router)
    app.include_router(plans_router)
    # analysis (issue 8): the pages under a batch (entry, QC) before the batch page itself
    for module in (entry_routes, qc_routes, import_routes, batch_routes, batch_api, result_api, curve_routes,
                   chart_routes, method_routes, qualification_routes, limit_routes):
        app.include_router(module.router)
    # reports (issue 9): the pages under a report before the report page itself
    for module in (review_routes, issue_routes, report_api, verify_routes, scope_routes, report_routes):
        app.include_router(module.router)
    handlers.install(app)
    return app
