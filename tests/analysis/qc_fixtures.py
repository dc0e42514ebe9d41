"""Fixtures for the QC, corrective-action and submission tests: a running batch laid out with its
QC positions, results and a calibration curve, all written straight into their tables (the batch
and result services are other parts' work; these tests must not wait for them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.analysis import corrective, qc, submission
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    CalibrationCurve,
    CorrectiveAction,
    MethodVersion,
    NotAnalysed,
    QcEvaluation,
)
from app.core.audit import AuditEvent
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.core.signatures import ElectronicSignature
from app.instruments.models import Instrument
from app.people.models import User
from app.samples.models import Sample, SampleState
from tests.analysis.conftest import samples_in_lab

# label, role, sample index, original's label, extra columns
Layout = tuple[tuple[str, str, int | None, str | None, dict[str, Any]], ...]

STANDARD_LAYOUT: Layout = (
    ("BLK1", "method_blank", None, None, {}),
    ("S-001", "sample", 0, None, {}),
    ("S-001D", "duplicate", 0, "S-001", {}),
    ("S-002", "sample", 1, None, {}),
    ("S-002SP", "spike", 1, "S-002", {"spike_added": D("0.500"), "material_barcode": "SS26-00001"}),
    ("CRM1", "crm", None, None, {"expected_value": D("1.00"), "expected_uncertainty": D("0.05"),
                                 "material_barcode": "GBW(E)-1"}),
    ("CCV1", "ccv", None, None, {"expected_value": D("0.500"), "material_barcode": "SS26-00002"}),
)
# every check passes with these (NH3-N, MDL 0.025; duplicate limit 10 % at 0.1–1 mg/L)
PASSING = {"BLK1": "0.020", "S-001": "0.512", "S-001D": "0.498", "S-002": "0.200", "S-002SP": "0.650",
           "CRM1": "1.03", "CCV1": "0.545"}


@dataclass
class Bench:
    batch: AnalysisBatch
    positions: dict[str, BatchPosition]
    samples: list[Sample]
    method: MethodVersion
    analyst: User
    parameters: list[str] = field(default_factory=list)

    def at(self, label: str) -> BatchPosition:
        return self.positions[label]


_numbers = iter(range(1, 100_000))


def running_batch(db: Database, analyst: User, method: MethodVersion, samples: list[Sample], *,
                  parameters: tuple[str, ...] = ("NH3-N",), layout: Layout = STANDARD_LAYOUT,
                  state: str = "running", instrument: Instrument | None = None,
                  curve_r: str | None = "0.9995", curve_accepted: bool = True) -> Bench:
    """A started batch of `method` with `layout`'s positions; its samples in analysis; a curve
    attached for each parameter when `curve_r` is given (None: no curve)."""
    now = utcnow()
    with db.transaction() as session:
        batch = AnalysisBatch(batch_no=f"AB26-{next(_numbers):05d}", method_version_id=method.id,
                              parameters=canonical_json(list(parameters)), state=state, analyst_id=analyst.id,
                              instrument_id=instrument.id if instrument else None, created_at=now - timedelta(hours=2),
                              started_at=None if state == "open" else now - timedelta(hours=1))
        session.add(batch)
        session.flush()
        made: dict[str, BatchPosition] = {}
        for number, (label, role, sample_index, of_label, extra) in enumerate(layout, start=1):
            position = BatchPosition(
                batch_id=batch.id, position=number, role=role, label=label,
                sample_id=samples[sample_index].id if sample_index is not None else None,
                of_position_id=made[of_label].id if of_label else None, added_at=now - timedelta(hours=2),
                added_by_id=analyst.id, **extra)
            session.add(position)
            session.flush()
            made[label] = position
        if curve_r is not None and instrument is not None:
            for parameter in parameters:
                curve = CalibrationCurve(
                    code=f"CC26-{batch.id:03d}{parameter[:4]}", method_version_id=method.id, parameter=parameter,
                    instrument_id=instrument.id, intercept=D("0.002"), slope=D("0.198"), r=D(curve_r),
                    range_low=D("0.05"), range_high=D("2.0"), accepted=curve_accepted,
                    rejection="" if curve_accepted else "r below 0.999", concentration_unit="mg/L",
                    measured_at=now - timedelta(hours=3), valid_until=now + timedelta(hours=21),
                    made_by_id=analyst.id, recorded_at=now - timedelta(hours=3))
                session.add(curve)
                session.flush()
                session.add(BatchCurve(batch_id=batch.id, parameter=parameter, curve_id=curve.id,
                                       attached_at=now - timedelta(hours=2), attached_by_id=analyst.id))
        session.execute(update(Sample).where(Sample.id.in_([s.id for s in samples]))
                        .values(state=SampleState.IN_ANALYSIS.value))
        session.flush()
        for row in (batch, *made.values()):
            session.expunge(row)
    return Bench(batch, made, samples, method, analyst, list(parameters))


def enter(db: Database, bench: Bench, values: dict[str, str], parameter: str = "NH3-N", *,
          reason: str = "") -> None:
    """Results for positions by label (a second entry for a position is its next revision)."""
    now = utcnow()
    with db.transaction() as session:
        for label, text in values.items():
            position = session.get(BatchPosition, bench.positions[label].id) if label in bench.positions \
                else session.scalars(select(BatchPosition).where(BatchPosition.batch_id == bench.batch.id,
                                                                 BatchPosition.label == label)).one()
            last = session.scalars(select(AnalysisResult).where(
                AnalysisResult.position_id == position.id, AnalysisResult.parameter == parameter)
                .order_by(AnalysisResult.revision.desc())).first()
            session.add(AnalysisResult(
                batch_id=bench.batch.id, position_id=position.id, sample_id=position.sample_id, parameter=parameter,
                revision=(last.revision + 1) if last else 1, supersedes_id=last.id if last else None, reason=reason,
                method_version_id=bench.method.id, reading=D(text), value=D(text), unit="mg/L",
                below_mdl=D(text) < D("0.025"), measured_at=now - timedelta(minutes=30), entered_at=now,
                entered_by_id=bench.analyst.id))


def batch_of(db: Database, bench: Bench) -> AnalysisBatch:
    with db.reading() as session:
        batch = session.get(AnalysisBatch, bench.batch.id)
        session.expunge(batch)
        return batch


def call(db: Database, service: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a service in its own committed transaction; a batch argument is re-read inside it."""
    with db.transaction() as session:
        fresh = [session.get(AnalysisBatch, a.id) if isinstance(a, AnalysisBatch) else
                 session.get(Sample, a.id) if isinstance(a, Sample) else a for a in args]
        result = service(session, *fresh, **kw)
        if isinstance(result, qc.QcOutcome):
            session.flush()
            for row in result.evaluations:
                session.refresh(row)
        return result


def evaluate(db: Database, bench: Bench, actor: User | None = None) -> list[QcEvaluation]:
    call(db, qc.evaluate_batch, actor or bench.analyst, bench.batch)
    with db.reading() as session:
        rows = qc.latest_evaluations(session, bench.batch.id)
        for row in rows:
            session.expunge(row)
        return rows


def find(evaluations: list[QcEvaluation], kind: str, label: str | None = None,
         parameter: str = "NH3-N") -> QcEvaluation:
    found = [e for e in evaluations if e.kind == kind and e.parameter == parameter
             and (label is None or qc.detail_of(e).get("label") == label)]
    assert len(found) == 1, (kind, label, [(e.kind, qc.detail_of(e).get("label")) for e in evaluations])
    return found[0]


def counts(db: Database) -> dict[str, int]:
    """Rows any act of this part writes: a refusal changes none of them."""
    with db.reading() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) for model in
                (QcEvaluation, CorrectiveAction, BatchPosition, ElectronicSignature, NotAnalysed, AuditEvent)}


def refused(db: Database, act: Callable[[], Any], code: str, *, audit_may_grow: bool = False) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        act()
    assert caught.value.code == code, (caught.value.code, caught.value.message("en"))
    after = counts(db)
    if audit_may_grow:
        before.pop("AuditEvent"), after.pop("AuditEvent")
    assert after == before
    return caught.value


def act_corrective(db: Database, actor: User, evaluation: QcEvaluation, kind: str, justification: str,
                   qualifier: str = "") -> CorrectiveAction:
    with db.transaction() as session:
        row = corrective.record_corrective_action(session, actor, evaluation.id, kind, justification, qualifier)
        session.flush()
        session.expunge(row)
        return row


def submit(db: Database, bench: Bench, password: str, actor: User | None = None) -> AnalysisBatch:
    return call(db, submission.submit_batch, actor or bench.analyst, bench.batch, password)


@pytest.fixture
def two_samples(db, users) -> list[Sample]:
    return samples_in_lab(db, users["custodian"], count=2)


@pytest.fixture
def bench(db, analyst, nh3n_method, two_samples, uv) -> Bench:
    return running_batch(db, analyst, nh3n_method, two_samples, instrument=uv)
