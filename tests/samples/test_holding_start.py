"""Clocks start when the field record is signed: one per laboratory parameter, none for field tests."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.samples.lab_models import HoldingClock
from app.samples.models import SampleParameter
from tests.samples.lab_fixtures import *  # noqa: F403


def test_signing_starts_a_clock_per_laboratory_parameter_from_the_sampling_time(db, collected_task):
    dt = collected_task
    sample = dt.routine
    with db.reading() as session:
        clocks = {c.parameter: c for c in session.scalars(
            select(HoldingClock).where(HoldingClock.sample_id == sample.id))}
        requested = set(session.scalars(
            select(SampleParameter.parameter).where(SampleParameter.sample_id == sample.id)))
        session.expunge_all()
    assert clocks and set(clocks) <= requested
    assert not {"pH", "WT", "DO", "EC"} & set(clocks)  # measured on site: no clock
    for clock in clocks.values():
        assert clock.started_at == sample.collected_at and clock.open
        if clock.allowed_hours is not None:
            assert clock.deadline_at - clock.started_at == timedelta(hours=clock.allowed_hours)
