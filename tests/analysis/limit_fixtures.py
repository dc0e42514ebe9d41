"""Helpers for the evaluation-standard tests: the built-in standards loaded, a site of a given
kind and water body, and results of record for a sample (a submitted batch written as rows,
not through the batch and result services, so these tests do not depend on them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from app.analysis import limits
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, LimitSet, LimitValue, SiteLimitSet
from app.core.audit import AuditEvent
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.people.models import User
from app.samples.models import Sample
from app.sites.models import ChangeKind, ChangeStatus, Site, SiteChangeRequest, SiteKind, SiteStatus, SiteVersion

D = Decimal


def load_builtins(db: Database, actor: User | None) -> list[tuple[str, int]]:
    with db.transaction() as session:
        return [(s.code, s.version) for s in limits.load_builtin_limit_sets(session, actor)]


def make_site(db: Database, actor: User, code: str = "JC-W10", *, kind: SiteKind = SiteKind.SURFACE_WATER,
              water_body: str = "lake") -> Site:
    """An active site with one approved version in force since a year ago."""
    since = utcnow() - timedelta(days=365)
    with db.transaction() as session:
        site = Site(code=code, status=SiteStatus.ACTIVE.value, created_at=since, created_by_id=actor.id)
        session.add(site)
        session.flush()
        request = SiteChangeRequest(
            site_id=site.id, kind=ChangeKind.CREATE.value, status=ChangeStatus.APPROVED.value, proposed="{}",
            reason="test site", submitted_by_id=actor.id, submitted_at=since, decided_by_id=actor.id,
            decided_at=since, decision_ref="环监测〔2025〕1号", effective_from=since)
        session.add(request)
        session.flush()
        version = SiteVersion(
            site_id=site.id, version_no=1, valid_from=since, status=SiteStatus.ACTIVE.value, name_zh="东湖湖心断面",
            name_en="East Lake, centre", kind=kind.value, latitude=D("30.5590318"), longitude=D("114.3879624"),
            water_body=water_body, basin="东湖", district="武昌区", department="市生态环境局",
            change_request_id=request.id, approved_by_id=actor.id, approval_ref="环监测〔2025〕1号", created_at=since)
        session.add(version)
        session.flush()
        request.resulting_version_id = version.id
        site.current_version_id = version.id
        session.flush()
        session.expunge(site)
        return site


def assign(db: Database, actor: User, site: Site | str, code: str, target: str = "") -> SiteLimitSet:
    with db.transaction() as session:
        row = limits.assign_site(session, actor, site if isinstance(site, str) else site.code, code, target)
        session.flush()
        session.expunge(row)
        return row


_batches = iter(range(1, 100_000))


def record_results(db: Database, analyst: User, method_version_id: int, sample: Sample,
                   values: Sequence[tuple[str, str, str]], *, state: str = "submitted",
                   measured_at: datetime | None = None, revision_of: dict[str, str] | None = None) -> AnalysisBatch:
    """A batch in `state` with one sample position and a result per (parameter, value, unit);
    `revision_of` {parameter: first value} writes that value as revision 1 and `values` as 2."""
    now = utcnow()
    at = measured_at or now - timedelta(hours=1)
    parameters = [p for p, _, _ in values]
    with db.transaction() as session:
        batch = AnalysisBatch(batch_no=f"AB26-{next(_batches):05d}", method_version_id=method_version_id,
                              parameters=canonical_json(parameters), state=state, analyst_id=analyst.id,
                              created_at=now, started_at=at, submitted_at=now if state != "running" else None)
        session.add(batch)
        session.flush()
        position = BatchPosition(batch_id=batch.id, position=1, role="sample", sample_id=sample.id, label="S-1",
                                 added_at=now, added_by_id=analyst.id)
        session.add(position)
        session.flush()
        rows: list[dict[str, Any]] = []
        for parameter, value, unit in values:
            revisions = [(revision_of[parameter], 1), (value, 2)] if revision_of and parameter in revision_of \
                else [(value, 1)]
            for text, revision in revisions:
                rows.append({"batch_id": batch.id, "position_id": position.id, "sample_id": sample.id,
                             "parameter": parameter, "revision": revision, "method_version_id": method_version_id,
                             "reading": D(text), "value": D(text), "unit": unit, "measured_at": at,
                             "entered_at": now, "entered_by_id": analyst.id,
                             "reason": "transcription error" if revision > 1 else ""})
        session.execute(insert(AnalysisResult), rows)
        session.expunge(batch)
        return batch


def counts(db: Database) -> dict[str, int]:
    with db.reading() as session:
        return {name: session.scalar(select(func.count()).select_from(table)) or 0
                for name, table in (("sets", LimitSet), ("values", LimitValue), ("sites", SiteLimitSet),
                                    ("audit", AuditEvent))}
