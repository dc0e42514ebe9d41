"""Helpers of the curve and control-chart tests: a curve's typed rows, recording it through the
service, and control-chart points written straight into their tables (the QC evaluator is
another piece; a chart only reads its rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal as D
from typing import Any

from sqlalchemy import func, insert, select

from app.analysis import curves
from app.analysis.models import (
    AnalysisBatch,
    CalibrationCurve,
    CalibrationPoint,
    MethodVersion,
    QcEvaluation,
)
from app.core.audit import AuditEvent
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.people.models import User
from app.reference_materials.models import MaterialUse

# HJ 535-2009 style: 0–2.0 mg/L NH3-N read at 420 nm (level, concentration, absorbance)
GOOD_ROWS = (
    ("0", "0", "0.005"), ("1", "0.10", "0.031"), ("2", "0.20", "0.058"), ("3", "0.50", "0.139"),
    ("4", "1.00", "0.274"), ("5", "1.50", "0.409"), ("6", "2.00", "0.546"),
)
# the same standards with a reading gone astray at level 4: r < 0.999
POOR_ROWS = GOOD_ROWS[:4] + (("4", "1.00", "0.330"),) + GOOD_ROWS[5:]


def rows(barcode: str, table: Sequence[tuple[str, str, str]] = GOOD_ROWS) -> list[curves.PointFacts]:
    return [curves.PointFacts(level, conc, resp, barcode if conc not in ("0", "0.0") else "")
            for level, conc, resp in table]


def facts(barcode: str, *, table: Sequence[tuple[str, str, str]] = GOOD_ROWS, **changes: Any) -> curves.CurveFacts:
    values: dict[str, Any] = {"method_code": "HJ 535-2009", "parameter": "NH3-N", "instrument": "JC-UV-001",
                              "measured_at": utcnow() - timedelta(minutes=1), "points": rows(barcode, table),
                              "kind": "linear", "response_unit": "Abs"}
    values.update(changes)
    return curves.CurveFacts(**values)


def record(db: Database, actor: User, curve_facts: curves.CurveFacts) -> CalibrationCurve:
    with db.transaction() as session:
        curve = curves.record_curve(session, actor, curve_facts)
        session.flush()
        session.expunge(curve)
        return curve


def counts(db: Database) -> tuple[int, int, int, int]:
    """Curves, points, material uses and audit events: a refusal changes none of them."""
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (CalibrationCurve, CalibrationPoint, MaterialUse, AuditEvent))


# ---------------------------------------------------------------- control-chart points


def make_batch(db: Database, version: MethodVersion, analyst: User, batch_no: str, *,
               state: str = "submitted", at: datetime | None = None, parameters: Sequence[str] = ("NH3-N",)) -> int:
    moment = at or utcnow() - timedelta(days=1)
    with db.transaction() as session:
        return session.execute(insert(AnalysisBatch).values(
            batch_no=batch_no, method_version_id=version.id, parameters=canonical_json(list(parameters)),
            state=state, analyst_id=analyst.id, created_at=moment, started_at=moment,
            submitted_at=moment if state in ("submitted", "closed") else None,
            qc_passed=True).returning(AnalysisBatch.id)).scalar_one()


def chart_points(db: Database, version: MethodVersion, analyst: User, values: Sequence[str | D], *,
                 kind: str = "spike", parameter: str = "NH3-N", start: datetime | None = None,
                 state: str = "submitted", prefix: str = "AB26-9", run: int = 1) -> list[int]:
    """One batch per value, a day apart (oldest first), each with one evaluation of `kind`;
    returns the evaluation ids in run order. Written with two statements whatever the count."""
    first = start or utcnow() - timedelta(days=len(values) + 1)
    with db.transaction() as session:
        session.execute(insert(AnalysisBatch), [
            {"batch_no": f"{prefix}{i:04d}", "method_version_id": version.id,
             "parameters": canonical_json([parameter]), "state": state, "analyst_id": analyst.id,
             "created_at": first + timedelta(days=i), "started_at": first + timedelta(days=i),
             "submitted_at": first + timedelta(days=i, hours=2), "qc_passed": True}
            for i in range(len(values))])
        batch_ids = dict(session.execute(select(AnalysisBatch.batch_no, AnalysisBatch.id)
                                         .where(AnalysisBatch.batch_no.like(f"{prefix}%"))).all())
        session.execute(insert(QcEvaluation), [
            {"batch_id": batch_ids[f"{prefix}{i:04d}"], "run": run, "method_id": version.method_id,
             "parameter": parameter, "kind": kind, "value": D(str(v)), "limit_low": D("80"),
             "limit_high": D("120"), "passed": True, "detail": "{}",
             "evaluated_at": first + timedelta(days=i, hours=1)}
            for i, v in enumerate(values)])
        return list(session.scalars(select(QcEvaluation.id).where(QcEvaluation.batch_id.in_(batch_ids.values()))
                                    .order_by(QcEvaluation.evaluated_at)))


def evaluate_again(db: Database, batch_no: str, value: str, *, run: int = 2) -> int:
    """A re-evaluation of a batch: a new run whose numbers replace the earlier run's."""
    with db.transaction() as session:
        old = session.execute(select(QcEvaluation).join(AnalysisBatch, AnalysisBatch.id == QcEvaluation.batch_id)
                              .where(AnalysisBatch.batch_no == batch_no)).scalars().first()
        return session.execute(insert(QcEvaluation).values(
            batch_id=old.batch_id, run=run, method_id=old.method_id, parameter=old.parameter, kind=old.kind,
            value=D(value), passed=True, detail="{}", evaluated_at=old.evaluated_at + timedelta(minutes=30))
            .returning(QcEvaluation.id)).scalar_one()
