"""Factories for the result tests: a running batch written straight into its tables (the batch
service is another part's), a calibration curve with round numbers attached to it, a submitted
batch by a direct UPDATE (analysis_batch is not append-only), and a reading in one call.

The curve is y = 0.005 + 0.2·x (Abs against mg/L), top standard 2.0 mg/L, so readings convert by
hand: 0.205 Abs → 1.0 mg/L; 0.505 Abs → 2.5 mg/L (above the top standard); 0.009 Abs → 0.02 mg/L
(below an MDL of 0.025)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D
from itertools import count
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from app.analysis import results
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    CalibrationCurve,
    MethodVersion,
)
from app.core.audit import AuditEvent
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.instruments.models import Instrument
from app.people.models import User
from app.samples.models import Sample
from tests.analysis.conftest import samples_in_lab

_numbers = count(1)


@dataclass
class Running:
    batch: AnalysisBatch
    positions: list[BatchPosition]  # in run order

    def at(self, label: str) -> BatchPosition:
        return next(p for p in self.positions if p.label == label)


def running_batch(db: Database, analyst: User, version: MethodVersion, samples: Sequence[Sample], *,
                  instrument: Instrument | None = None, parameters: Sequence[str] = ("NH3-N",), blanks: int = 2,
                  started_ago: timedelta = timedelta(hours=1), state: str = "running",
                  extra_roles: Sequence[str] = ()) -> Running:
    """A started batch: `blanks` method blanks BLK1.., then one position per sample labelled
    S-<sample no>, then positions of `extra_roles` (duplicate/spike of the first sample, crm, ccv)."""
    now = utcnow()
    number = next(_numbers)
    with db.transaction() as session:
        batch = AnalysisBatch(batch_no=f"AB26-9{number:04d}", method_version_id=version.id,
                              parameters=canonical_json(list(parameters)),
                              instrument_id=instrument.id if instrument else None, state=state,
                              analyst_id=analyst.id, created_at=now - started_ago - timedelta(minutes=10),
                              started_at=now - started_ago)
        session.add(batch)
        session.flush()
        rows: list[dict[str, Any]] = []
        for i in range(blanks):
            rows.append({"role": "method_blank", "label": f"BLK{i + 1}", "sample_id": None})
        for s in samples:
            rows.append({"role": "sample", "label": f"S-{s.sample_no[-3:]}", "sample_id": s.id})
        for role in extra_roles:
            first = samples[0]
            suffix = {"duplicate": "D", "spike": "SP"}.get(role, "")
            label = f"S-{first.sample_no[-3:]}{suffix}" if suffix else role.upper() + "1"
            rows.append({"role": role, "label": label, "sample_id": first.id if suffix else None})
        session.execute(insert(BatchPosition), [
            {**row, "batch_id": batch.id, "position": i + 1, "added_at": batch.created_at,
             "added_by_id": analyst.id} for i, row in enumerate(rows)])
        positions = list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                         .order_by(BatchPosition.position)))
        for p in positions:
            session.expunge(p)
        session.expunge(batch)
        return Running(batch, positions)


def attach_curve(db: Database, analyst: User, running: Running, instrument: Instrument, *,
                 parameter: str = "NH3-N", made_ago: timedelta = timedelta(hours=2),
                 valid_hours: int = 24, accepted: bool = True, intercept: str = "0.005", slope: str = "0.2",
                 range_high: str = "2.0", concentration_unit: str = "mg/L", response_unit: str = "Abs",
                 quadratic: str | None = None) -> CalibrationCurve:
    """A curve y = intercept + slope·x written straight into its table and attached to the batch."""
    now = utcnow()
    made = now - made_ago
    with db.transaction() as session:
        curve = CalibrationCurve(
            code=f"CC26-9{next(_numbers):04d}", method_version_id=running.batch.method_version_id,
            parameter=parameter, instrument_id=instrument.id, kind="quadratic" if quadratic else "linear",
            concentration_unit=concentration_unit, response_unit=response_unit, intercept=D(intercept),
            slope=D(slope), quadratic=D(quadratic) if quadratic else None, r=D("0.9998"), range_low=D("0.1"),
            range_high=D(range_high), accepted=accepted, rejection="" if accepted else "r < 0.999",
            measured_at=made, valid_until=made + timedelta(hours=valid_hours), made_by_id=analyst.id,
            recorded_at=made)
        session.add(curve)
        session.flush()
        session.add(BatchCurve(batch_id=running.batch.id, parameter=parameter, curve_id=curve.id, attached_at=now,
                               attached_by_id=analyst.id))
        session.flush()
        session.expunge(curve)
        return curve


def submit(db: Database, running: Running) -> None:
    """The batch as the analyst's signature leaves it (part G signs; here a direct UPDATE)."""
    with db.transaction() as session:
        session.execute(update(AnalysisBatch).where(AnalysisBatch.id == running.batch.id)
                        .values(state="submitted", submitted_at=utcnow()))


def set_state(db: Database, running: Running, state: str) -> None:
    with db.transaction() as session:
        session.execute(update(AnalysisBatch).where(AnalysisBatch.id == running.batch.id).values(state=state))


def reading(position: BatchPosition, value: str, parameter: str = "NH3-N", *, unit: str = "",
            dilution: str = "1", at: datetime | None = None, client_id: str = "") -> results.ReadingInput:
    return results.ReadingInput(position.id, parameter, D(value), unit, D(dilution), at, client_id)


def record(db: Database, actor: User, running: Running, readings: Sequence[results.ReadingInput],
           **options: Any) -> list[AnalysisResult]:
    with db.transaction() as session:
        batch = session.get(AnalysisBatch, running.batch.id)
        written = results.record_results(session, actor, batch, readings, **options)
        for r in written:
            session.expunge(r)
        return written


def counts(db: Database) -> dict[str, int]:
    """Rows a refused entry must not leave behind."""
    with db.reading() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (AnalysisResult, AuditEvent)}


# ---------------------------------------------------------------- fixtures (the entry and result tests share them)


@pytest.fixture
def samples(db, users) -> list[Sample]:
    """Three samples in the lab asking for NH3-N."""
    return samples_in_lab(db, users["custodian"], count=3)


@pytest.fixture
def batch(db, analyst, nh3n_method, uv, samples) -> Running:
    """A running NH3-N batch of those samples on the UV-Vis with its curve attached."""
    running = running_batch(db, analyst, nh3n_method, samples, instrument=uv)
    attach_curve(db, analyst, running, uv)
    return running
