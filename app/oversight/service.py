"""The audit trail as an object of oversight: filtering it, anchoring it, reviewing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core import audit
from app.core.audit import AuditCheckpoint, AuditEvent
from app.core.db import utcnow
from app.core.errors import InvalidInput, NotFound
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.core.web import KeysetPage
from app.oversight.models import AuditReview
from app.people.models import User


@dataclass(frozen=True)
class AuditFilter:
    entity_type: str = ""
    entity_id: str = ""
    actor: str = ""
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None


def list_events(
    session: Session, actor: User, filters: AuditFilter, tz: ZoneInfo,
    before_seq: int | None = None, limit: int = 50,
) -> KeysetPage[AuditEvent]:
    """Newest first, keyset-paginated on seq; dates are the lab's local calendar days."""
    ensure(session, actor, Permission.AUDIT_READ)
    audit.flush_pending(session)
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit + 1)
    if filters.entity_type:
        stmt = stmt.where(AuditEvent.entity_type == filters.entity_type)
    if filters.entity_id:
        stmt = stmt.where(AuditEvent.entity_id == filters.entity_id)
    if filters.actor:
        stmt = stmt.where(AuditEvent.actor == filters.actor.strip().lower())
    if filters.action:
        stmt = stmt.where(AuditEvent.action.startswith(filters.action.strip()))
    if filters.date_from:
        stmt = stmt.where(AuditEvent.occurred_at >= datetime.combine(filters.date_from, time(), tz))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time(), tz)
        stmt = stmt.where(AuditEvent.occurred_at < end)
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise InvalidInput(detail="起始日期晚于结束日期 / the start date is after the end date")
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    rows = session.scalars(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return KeysetPage(rows, rows[-1].seq if more and rows else None)


def get_event(session: Session, actor: User, seq: int) -> AuditEvent:
    ensure(session, actor, Permission.AUDIT_READ)
    event = session.get(AuditEvent, seq)
    if event is None:
        raise NotFound(what_zh=f"审计事件 {seq}", what_en=f"Audit event {seq}")
    return event


def find_event_by_hash(session: Session, prefix: str) -> AuditEvent | None:
    return session.scalars(
        select(AuditEvent).where(AuditEvent.hash.startswith(prefix.lower())).limit(1)
    ).first()


def _audit_key(settings: Settings) -> bytes:
    return audit.read_or_create_audit_key(settings.resolved_audit_key_file)


def make_checkpoint(session: Session, actor: User, settings: Settings) -> AuditCheckpoint:
    ensure(session, actor, Permission.AUDIT_CHECKPOINT)
    return audit.create_checkpoint(
        session, actor, _audit_key(settings), settings.resolved_audit_anchor_file
    )


def review_trail(
    session: Session, actor: User, password: str, note: str, settings: Settings
) -> AuditReview:
    """Verify the whole chain, then sign that it was reviewed up to the current head."""
    ensure(session, actor, Permission.AUDIT_REVIEW)
    result = audit.verify_chain(
        session, _audit_key(settings), anchors=audit.read_anchors(settings.resolved_audit_anchor_file)
    )
    review = AuditReview(
        seq=result.events, head_hash=result.head_hash, chain_ok=result.ok, events=result.events,
        note=note.strip()[:1000], reviewed_at=utcnow(), reviewer_id=actor.id,
    )
    signature = sign(session, actor, password, SignatureMeaning.REVIEWED, "audit_review",
                     f"seq:{review.seq}", review.signed_content(review.head_hash))
    review.signature_id = signature.id
    session.add(review)
    session.flush()
    audit.append(session, actor, "audit.reviewed", "audit_review", review.id, None,
                 {"seq": review.seq, "head_hash": review.head_hash, "chain_ok": review.chain_ok,
                  "signature_id": signature.id})
    return review


@dataclass(frozen=True)
class ReviewView:
    review: AuditReview
    signature: SignatureView | None


def recent_reviews(session: Session, actor: User, limit: int = 20) -> list[ReviewView]:
    """Reviews with their signature status recomputed against the chain as it is now."""
    ensure(session, actor, Permission.AUDIT_READ)
    reviews = session.scalars(
        select(AuditReview).order_by(AuditReview.id.desc()).limit(limit)
    ).all()
    if not reviews:
        return []
    signatures = {s.id: s for s in session.scalars(select(ElectronicSignature).where(
        ElectronicSignature.id.in_([r.signature_id for r in reviews if r.signature_id])))}
    hashes = dict(session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_([r.seq for r in reviews]))
    ).all())
    views = []
    for review in reviews:
        sig = signatures.get(review.signature_id)
        now_hash = hashes.get(review.seq, audit.GENESIS_HASH if review.seq == 0 else None)
        views.append(ReviewView(review, check(sig, review.signed_content(now_hash)) if sig else None))
    return views


def recent_checkpoints(session: Session, actor: User, limit: int = 20) -> list[AuditCheckpoint]:
    ensure(session, actor, Permission.AUDIT_READ)
    return list(session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)
    ))
