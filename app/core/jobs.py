"""Periodic jobs run by `lims serve` in-process (the embedded default).

Each job decides from the database whether it is due, so several app processes running the
scheduler at once do no harm beyond an occasional duplicate run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app.config import Settings
from app.core import audit
from app.core.db import Database, utcnow

log = logging.getLogger("lims.jobs")
CHECKPOINT_INTERVAL = timedelta(days=1)
TICK_SECONDS = 3600


def checkpoint_if_due(db: Database, settings: Settings) -> audit.AuditCheckpoint | None:
    """The daily audit checkpoint: anchor the chain head unless one was made in the last day."""
    with db.transaction() as session:
        latest = audit.latest_checkpoint(session)
        if latest is not None and utcnow() - latest.created_at < CHECKPOINT_INTERVAL:
            return None
        key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
        return audit.create_checkpoint(session, None, key, settings.resolved_audit_anchor_file)


def instrument_reminders_if_due(db: Database, settings: Settings) -> int | None:
    """The daily reminder mail, when SMTP is configured: instruments overdue or due soon, and
    reference materials expiring, expired in stock or low in stock, in one mail (due unless an
    `instrument.reminders_sent` or `material.reminders_sent` event was recorded today, lab time)."""
    from app.reference_materials.reminders import reminders_if_due

    return reminders_if_due(db, settings)


def site_versions_in_force(db: Database, settings: Settings) -> int:
    """Sites whose approved change took effect since the last tick: their status and current
    version catch up (reads never depend on it; lists and filters do)."""
    from app.sites.service import sync_site_states

    with db.transaction() as session:
        return sync_site_states(session)


def anomaly_scan_if_due(db: Database, settings: Settings) -> object | None:
    """The daily anomaly scan (issue 10): the rules over what happened since the last scheduled
    scan started (30 days back the first time), unless one started in the last 24 h."""
    from sqlalchemy import select

    from app.oversight.anomalies import scan
    from app.oversight.models import AnomalyScan
    from app.oversight.rules.base import ScanWindow

    with db.transaction() as session:
        last = session.scalars(select(AnomalyScan).where(AnomalyScan.trigger == "schedule")
                               .order_by(AnomalyScan.started_at.desc()).limit(1)).first()
        now = utcnow()
        if last is not None and now - last.started_at < timedelta(days=1):
            return None
        since = last.started_at if last is not None else now - timedelta(days=30)
        return scan(session, None, ScanWindow(until=now, since=since), trigger="schedule")


JOBS = (checkpoint_if_due, instrument_reminders_if_due, site_versions_in_force, anomaly_scan_if_due)


async def run_scheduler(db: Database, settings: Settings) -> None:
    while True:
        for job in JOBS:
            try:
                await asyncio.to_thread(job, db, settings)
            except Exception:
                log.exception("job %s failed", job.__name__)
        await asyncio.sleep(TICK_SECONDS)
