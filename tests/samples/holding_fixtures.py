"""Many open clocks at once, written straight into the tables (the worklist, the custodian's day
and the query-count tests need hundreds of samples without sampling each in the field)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from app.core.db import Database, utcnow
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample, SampleState


def make_clocks(db: Database, registrar_id: int, spec: list[tuple[str, int | None, timedelta]], *,
                prefix: str = "HT", state: str = SampleState.RECEIVED.value, matrix: str = "water",
                kind: str = "routine", now: datetime | None = None) -> list[str]:
    """One sample per (parameter, allowed hours, age) in `spec`, sampled `age` ago, with that
    clock open. Returns the sample numbers in order."""
    now = now or utcnow()
    numbers = [f"{prefix}-{i:06d}" for i in range(len(spec))]
    with db.transaction() as session:
        session.execute(insert(Sample), [
            {"sample_no": no, "kind": kind, "matrix": matrix, "scheduled_on": (now - age).date(), "state": state,
             "collected_at": now - age, "registered_at": now - age - timedelta(hours=1),
             "registered_by_id": registrar_id, "signed_revision": 1}
            for no, (_, _, age) in zip(numbers, spec, strict=True)])
        ids = dict(session.execute(select(Sample.sample_no, Sample.id).where(Sample.sample_no.in_(numbers))).all())
        session.execute(insert(HoldingClock), [
            {"sample_id": ids[no], "parameter": parameter, "started_at": now - age, "allowed_hours": hours,
             "deadline_at": None if hours is None else now - age + timedelta(hours=hours), "open": True}
            for no, (parameter, hours, age) in zip(numbers, spec, strict=True)])
    return numbers
