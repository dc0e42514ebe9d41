"""The audit viewer, checkpoints and signed reviews of the trail."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request

from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.i18n import N_
from app.core.permissions import Permission
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.web import query_string, render, see_other
from app.oversight import service
from app.oversight.service import AuditFilter
from app.people.models import User

router = APIRouter()


def _filters(entity_type: str, entity_id: str, actor: str, action: str,
             date_from: date | None, date_to: date | None) -> AuditFilter:
    return AuditFilter(entity_type.strip(), entity_id.strip(), actor.strip(), action.strip(),
                       date_from, date_to)


FilterText = Annotated[str, Query(max_length=100)]
# Audit seq is a BIGINT: larger numbers name no event and would overflow the driver (a 500).
MAX_SEQ = 2**63 - 1


@router.get("/oversight/audit", include_in_schema=False)
def audit_viewer(request: Request, session: DbSession, entity_type: FilterText = "",
                 entity_id: FilterText = "", actor: FilterText = "", action: FilterText = "",
                 date_from: date | None = None, date_to: date | None = None,
                 before: int | None = Query(None, ge=1, le=MAX_SEQ),
                 user: User = require(Permission.AUDIT_READ)):
    filters = _filters(entity_type, entity_id, actor, action, date_from, date_to)
    page = service.list_events(session, user, filters, request.app.state.settings.tz, before,
                               limit=request.app.state.settings.page_size)
    params = {"entity_type": filters.entity_type, "entity_id": filters.entity_id,
              "actor": filters.actor, "action": filters.action,
              "date_from": date_from.isoformat() if date_from else "",
              "date_to": date_to.isoformat() if date_to else ""}
    next_url = (f"/oversight/audit?{query_string(params, before=page.next_cursor)}"
                if page.next_cursor else None)
    return render(request, "oversight/audit.html",
                  {"page": page, "filters": params, "next_url": next_url}, block="results")


@router.get("/oversight/audit/integrity", include_in_schema=False)
def integrity(request: Request, session: DbSession, user: User = require(Permission.AUDIT_READ)):
    return render(request, "oversight/integrity.html", {
        "checkpoints": service.recent_checkpoints(session, user),
        "reviews": service.recent_reviews(session, user),
    })


@router.get("/oversight/audit/{seq}", include_in_schema=False)
def audit_event(request: Request, session: DbSession, seq: Annotated[int, Path(ge=1, le=MAX_SEQ)],
                user: User = require(Permission.AUDIT_READ)):
    event = service.get_event(session, user, seq)
    return render(request, "oversight/audit_event.html", {"event": event})


@router.post("/oversight/audit/checkpoint", include_in_schema=False)
def checkpoint(request: Request, session: DbSession,
               user: User = require(Permission.AUDIT_CHECKPOINT)):
    with committing(session):
        service.make_checkpoint(session, user, request.app.state.settings)
    return see_other(request, "/oversight/audit/integrity")


@router.post("/oversight/audit/review", include_in_schema=False)
def review(request: Request, session: DbSession, password: Annotated[str, Form(max_length=256)],
           note: Annotated[str, Form(max_length=1000)] = "",
           user: User = require(Permission.AUDIT_REVIEW)):
    with committing(session):
        service.review_trail(session, user, password, note, request.app.state.settings)
    return see_other(request, "/oversight/audit/integrity")


@router.get("/api/v1/audit/events", tags=["audit"])
def api_audit_events(request: Request, session: DbSession, entity_type: FilterText = "",
                     entity_id: FilterText = "", actor: FilterText = "", action: FilterText = "",
                     date_from: date | None = None, date_to: date | None = None,
                     before: int | None = Query(None, ge=1, le=MAX_SEQ),
                     limit: int = Query(50, ge=1, le=500),
                     user: User = require(Permission.AUDIT_READ)) -> dict:
    filters = _filters(entity_type, entity_id, actor, action, date_from, date_to)
    page = service.list_events(session, user, filters, request.app.state.settings.tz, before,
                               limit)
    return {
        "next_before": page.next_cursor,
        "items": [{
            "seq": e.seq, "occurred_at": e.occurred_at.isoformat(), "actor": e.actor,
            "actor_id": e.actor_id, "action": e.action, "entity_type": e.entity_type,
            "entity_id": e.entity_id, "before": e.before_data, "after": e.after_data,
            "prev_hash": e.prev_hash, "hash": e.hash,
        } for e in page.items],
    }


AUDIT_CODE_RE = re.compile(r"^(?:AUD-?(\d{1,18})|([0-9a-f]{12,64}))$", re.IGNORECASE)


def _scan_audit(session, user, permissions, code: str) -> ScanHit | None:
    if Permission.AUDIT_READ not in permissions:
        return None
    match = AUDIT_CODE_RE.match(code)
    if not match:
        return None
    if match.group(1):
        event = session.get(service.AuditEvent, int(match.group(1)))
    else:
        event = service.find_event_by_hash(session, match.group(2))
    return ScanHit(f"/oversight/audit/{event.seq}", f"AUD-{event.seq}") if event else None


REVIEW_INTERVAL_DAYS = 7


def _review_due(session, user: User) -> int:
    """1 when no signed review of the trail was made in the last week (a nudge, not a gate)."""
    from datetime import timedelta

    from app.core.db import utcnow

    reviews = service.recent_reviews(session, user, limit=1)
    recent = reviews and utcnow() - reviews[0].review.reviewed_at < timedelta(days=REVIEW_INTERVAL_DAYS)
    return 0 if recent else 1


add_nav(
    NavItem("audit", N_("Audit trail"), "/oversight/audit", Permission.AUDIT_READ, 70),
    NavItem("integrity", N_("Integrity"), "/oversight/audit/integrity", Permission.AUDIT_READ, 71),
)
add_worklist(
    Worklist("audit_review", N_("Audit trail review due"), Permission.AUDIT_REVIEW,
             "/oversight/audit/integrity", _review_due, 20),
)
add_scan_resolver("audit", _scan_audit)
