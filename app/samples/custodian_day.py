"""The custodian's day (issue 7 item 6): what waits at the lab door and in the stores today.

Six blocks, each a count and its first few rows with links: samples expected (collected or in
transit, or scheduled for today, and not yet received), received today and rejected today (the
signed receipts by their time in the lab's today), custody gaps, holding times running out (amber
or red clocks) and storage locations full or nearly so (90 %). Read-only queries straight on the
tables, two per block whatever the number of rows (the holding block reuses the worklist's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.samples import holding
from app.samples.lab_models import Delivery, ReceiptCheck, ReceiptDecision, SampleReceipt, StorageLocation
from app.samples.models import Sample, SampleState
from app.sites.models import SamplingTask

FIRST_ROWS = 5
FULL_PERCENT = 90  # a location at or above this share of its capacity is shown as (nearly) full
ACCEPTED = (ReceiptDecision.ACCEPT.value, ReceiptDecision.ACCEPT_WITH_CONDITIONS.value)
EXPECTED_STATES = (SampleState.COLLECTED.value, SampleState.IN_TRANSIT.value)
NO_GAP_SHOWN = (SampleState.DISPOSED.value, SampleState.CANCELLED.value)


@dataclass(frozen=True)
class Block:
    count: int
    rows: list[Any]

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.rows))


@dataclass(frozen=True)
class CustodianDay:
    day: date
    at: datetime
    expected: Block
    received: Block
    rejected: Block
    gaps: Block
    running_out: Block
    storage_full: Block


def expected_condition(day: date) -> Any:
    """Not yet received, and collected or on its way, or due to be sampled today."""
    return and_(Sample.received_at.is_(None),
                or_(Sample.state.in_(EXPECTED_STATES),
                    and_(Sample.state == SampleState.REGISTERED.value, Sample.scheduled_on == day)))


def expected_today(session: Session, day: date, limit: int = FIRST_ROWS) -> Block:
    query = (select(Sample.sample_no, Sample.kind, Sample.state, Sample.scheduled_on, Sample.collected_at,
                    SamplingTask.code.label("task_code"))
             .outerjoin(SamplingTask, SamplingTask.id == Sample.task_id)
             .where(expected_condition(day)))
    count = session.scalar(select(func.count()).select_from(Sample).where(expected_condition(day))) or 0
    rows = session.execute(query.order_by(Sample.collected_at.is_(None), Sample.collected_at, Sample.sample_no)
                           .limit(limit)).all()
    return Block(count, list(rows))


def _receipts(session: Session, start: datetime, end: datetime, decisions: tuple[str, ...], limit: int) -> Block:
    where = and_(SampleReceipt.received_at >= start, SampleReceipt.received_at < end,
                 SampleReceipt.decision.in_(decisions))
    count = session.scalar(select(func.count()).select_from(SampleReceipt).where(where)) or 0
    rows = session.execute(
        select(Sample.sample_no, Sample.kind, SampleReceipt.decision, SampleReceipt.received_at,
               Delivery.code.label("delivery_code"), ReceiptCheck.reject_reason, ReceiptCheck.deviation)
        .join(Sample, Sample.id == SampleReceipt.sample_id)
        .join(Delivery, Delivery.id == SampleReceipt.delivery_id)
        .join(ReceiptCheck, ReceiptCheck.id == SampleReceipt.check_id)
        .where(where).order_by(SampleReceipt.received_at.desc(), SampleReceipt.id.desc()).limit(limit)).all()
    return Block(count, list(rows))


def custody_gaps(session: Session, limit: int = FIRST_ROWS) -> Block:
    where = and_(Sample.custody_gap.is_(True), Sample.state.not_in(NO_GAP_SHOWN))
    count = session.scalar(select(func.count()).select_from(Sample).where(where)) or 0
    rows = session.execute(select(Sample.sample_no, Sample.kind, Sample.state).where(where)
                           .order_by(Sample.sample_no.desc()).limit(limit)).all()
    return Block(count, list(rows))


def running_out(session: Session, at: datetime, limit: int = FIRST_ROWS) -> Block:
    count = holding.count_running_out(session, at)
    page = holding.worklist(session, holding.WorklistFilters(colour="due"), at=at, size=limit)
    return Block(count, list(page.rows))


def _full() -> Any:
    return and_(StorageLocation.active.is_(True), StorageLocation.capacity.is_not(None),
                StorageLocation.capacity > 0,
                StorageLocation.occupied * 100 >= StorageLocation.capacity * FULL_PERCENT)


def storage_full(session: Session, limit: int = FIRST_ROWS) -> Block:
    where = _full()
    count = session.scalar(select(func.count()).select_from(StorageLocation).where(where)) or 0
    rows = session.scalars(select(StorageLocation).where(where)
                           .order_by((StorageLocation.occupied * 1000 / StorageLocation.capacity).desc(),
                                     StorageLocation.code).limit(limit)).all()
    return Block(count, list(rows))


def custodian_day(session: Session, at: datetime | None = None, limit: int = FIRST_ROWS) -> CustodianDay:
    """The six blocks at `at` (now), today being the lab's local day: a fixed number of queries."""
    at = at or utcnow()
    calendar = lab_calendar(session)
    day = calendar.local_date(at)
    start = calendar.start_of(day)
    end = calendar.start_of(day + timedelta(days=1))
    return CustodianDay(
        day=day, at=at,
        expected=expected_today(session, day, limit),
        received=_receipts(session, start, end, ACCEPTED, limit),
        rejected=_receipts(session, start, end, (ReceiptDecision.REJECT.value,), limit),
        gaps=custody_gaps(session, limit),
        running_out=running_out(session, at, limit),
        storage_full=storage_full(session, limit),
    )


def count_expected(session: Session, user: Any = None) -> int:
    """The dashboard card: samples expected at the lab and not yet received."""
    day = lab_calendar(session).local_date(utcnow())
    return session.scalar(select(func.count()).select_from(Sample).where(expected_condition(day))) or 0


def count_storage_full(session: Session, user: Any = None) -> int:
    return session.scalar(select(func.count()).select_from(StorageLocation).where(_full())) or 0
