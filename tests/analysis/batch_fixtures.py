"""Helpers of the batch tests: build a batch through the service in one line, run a service in
its own transaction, count what a refusal must leave unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.analysis import batches
from app.analysis.batches import StandardChoice
from app.analysis.models import AnalysisBatch, BatchPosition
from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.people.models import User
from app.reference_materials.models import MaterialUse
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample
from tests.analysis.conftest import qualify, samples_in_lab


def run(db: Database, act: Callable[[Any], Any]) -> Any:
    """`act(session)` in its own transaction; ORM rows returned are detached with their values."""
    with db.transaction() as session:
        result = act(session)
        session.flush()
        for row in result if isinstance(result, list) else [result]:
            if hasattr(row, "__table__"):
                session.refresh(row)
                session.expunge(row)
        return result


def standards_for(standards: Any) -> dict[str, StandardChoice]:
    """Every standard a default NH3-N batch needs: the working solution as CCV and spike, the
    CRM unit as CRM."""
    return {
        "crm": StandardChoice(standards.unit.barcode, "1.00", "0.05"),
        "ccv": StandardChoice(standards.working.barcode, "0.500"),
        "spike": StandardChoice(standards.working.barcode, spike_added="0.200"),
    }


def build(db: Database, analyst: User, samples: list[Sample], *, method: str = "HJ 535-2009",
          parameters: Any = ("NH3-N",), instrument: str = "JC-UV-001", at: datetime | None = None,
          standards: dict[str, StandardChoice] | None = None) -> AnalysisBatch:
    return run(db, lambda s: batches.build_batch(
        s, analyst, method, parameters, [x.sample_no for x in samples], instrument,
        at or utcnow() - timedelta(minutes=30), standards=standards))


def snapshot(db: Database) -> tuple[int, ...]:
    """What a refusal must not change: batches, positions, material uses, clocks open, audit."""
    with db.reading() as session:
        return (
            session.scalar(select(func.count()).select_from(AnalysisBatch)),
            session.scalar(select(func.count()).select_from(BatchPosition)),
            session.scalar(select(func.count()).select_from(MaterialUse)),
            session.scalar(select(func.count()).select_from(HoldingClock).where(HoldingClock.open.is_(True))),
            session.scalar(select(func.count()).select_from(AuditEvent)),
            session.scalar(select(func.count()).select_from(Sample).where(Sample.state == "in_analysis")),
        )


def refused(db: Database, act: Callable[[Any], Any], code: str) -> Any:
    """The act is refused with `code` and changes nothing."""
    from app.core.errors import DomainError

    before = snapshot(db)
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, (caught.value.code, caught.value.message("en"))
    assert snapshot(db) == before
    return caught.value


def positions_of(db: Database, batch: AnalysisBatch) -> list[BatchPosition]:
    with db.reading() as session:
        rows = list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                    .order_by(BatchPosition.position)))
        for row in rows:
            session.expunge(row)
        return rows


@pytest.fixture
def bench(db, users, analyst, nh3n_method, standards):
    """The NH3-N method on the UV instrument, the analyst qualified for it, standards ready."""
    qualify(db, analyst, nh3n_method.method_id)
    return nh3n_method


def lab_samples(db: Database, users: dict[str, User], count: int, **kwargs: Any) -> list[Sample]:
    return samples_in_lab(db, users["custodian"], count=count, **kwargs)
