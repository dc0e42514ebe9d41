"""Fast factories for the oversight tests: lab records written straight into their tables (a
method, sites, samples, batches with positions, results, QC evaluations), so a rule's test states
exactly the data that must or must not trigger it. The services that make these records in real
life have their own tests; the rules only read them.

    lab = LabRecords(db, users)
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"), ("TN", "0.05"))
    site = lab.site("WS01")
    s1, s2 = lab.samples(2, site=site, collected_at=lab.t(-48))
    batch = lab.batch(m, lab.users["analyst"], started_at=lab.t(-24))
    lab.result(batch, s1, "NH3-N", "0.512")          # a sample position and its result
    dup = lab.qc_position(batch, "duplicate", of=s1)  # a QC position
    lab.qc(batch, "duplicate", "NH3-N", "0.00")       # a QC evaluation (RD %)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    BatchState,
    MethodVersion,
    PositionRole,
    QcEvaluation,
)
from app.core.db import Database, utcnow
from app.oversight.rules.base import Finding, ScanWindow, rule_by_code
from app.people.models import User
from app.samples.models import Sample
from app.sites.models import Site
from tests.analysis.conftest import ParameterSpec, make_method, samples_in_lab

D = Decimal


@dataclass
class LabRecords:
    db: Database
    users: dict[str, User]
    now: datetime = field(default_factory=utcnow)
    _counter: int = 0

    def t(self, hours: float) -> datetime:
        """A moment `hours` from the factory's now (negative: in the past)."""
        return self.now + timedelta(hours=hours)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    # ------------------------------------------------------------ reference data

    def method(self, code: str, *parameters: tuple[str, str], matrix: str = "water") -> MethodVersion:
        """A method version in force, with (parameter, MDL) pairs in mg/L."""
        specs = tuple(ParameterSpec(p, "mg/L", mdl, 3) for p, mdl in parameters) or (ParameterSpec("NH3-N"),)
        return make_method(self.db, self.users["technical_manager"], code, parameters=specs, matrix=matrix)

    def site(self, code: str) -> Site:
        with self.db.transaction() as session:
            site = Site(code=code, status="active", created_at=self.now,
                        created_by_id=self.users["technical_manager"].id)
            session.add(site)
            session.flush()
            session.expunge(site)
            return site

    # ------------------------------------------------------------ samples

    def samples(self, count: int, *, site: Site | None = None, collected_at: datetime | None = None,
                received_after: timedelta = timedelta(hours=1), parameters: tuple[str, ...] = ("NH3-N",),
                kind: str = "routine", state: str = "results_entered", sampler: User | None = None) -> list[Sample]:
        """`count` samples collected at `collected_at` (default 48 h ago) and received an hour later."""
        n = self._next()
        collected = collected_at or self.t(-48)
        rows = samples_in_lab(self.db, self.users["custodian"], tuple((p, None) for p in parameters), count=count,
                              prefix=f"{site.code if site else 'XX'}-{n:04d}", state=state, kind=kind,
                              site_id=site.id if site else None, ages=tuple(self.now - collected for _ in range(count)))
        with self.db.transaction() as session:
            for s in rows:
                row = session.get(Sample, s.id)
                row.collected_at = s.collected_at = collected  # exactly (samples_in_lab reads its own clock)
                row.received_at = collected + received_after
                row.sampler_id = (sampler or self.users["sampler"]).id
                s.received_at, s.sampler_id = row.received_at, row.sampler_id
        return rows

    # ------------------------------------------------------------ batches and results

    def batch(self, method: MethodVersion, analyst: User | None = None, *, started_at: datetime | None = None,
              submitted_at: datetime | None = None, parameters: tuple[str, ...] = ("NH3-N",),
              state: str = BatchState.SUBMITTED.value, instrument_id: int | None = None) -> AnalysisBatch:
        n = self._next()
        started = started_at or self.t(-24)
        with self.db.transaction() as session:
            batch = AnalysisBatch(batch_no=f"AB26-{n:05d}", method_version_id=method.id,
                                  parameters="[" + ",".join(f'"{p}"' for p in parameters) + "]",
                                  instrument_id=instrument_id, state=state,
                                  analyst_id=(analyst or self.users["analyst"]).id,
                                  created_at=started - timedelta(hours=1),
                                  started_at=started, submitted_at=submitted_at or started + timedelta(hours=2))
            session.add(batch)
            session.flush()
            session.expunge(batch)
            return batch

    def position(self, batch: AnalysisBatch, role: str = PositionRole.SAMPLE.value, *, sample: Sample | None = None,
                 of: BatchPosition | None = None, **columns: Any) -> BatchPosition:
        with self.db.transaction() as session:
            count = len(session.query(BatchPosition).filter(BatchPosition.batch_id == batch.id).all())
            row = BatchPosition(batch_id=batch.id, position=count + 1, role=role,
                                sample_id=sample.id if sample else None, of_position_id=of.id if of else None,
                                label=f"P{count + 1}", added_at=batch.created_at, added_by_id=batch.analyst_id,
                                **columns)
            session.add(row)
            session.flush()
            session.expunge(row)
            return row

    def qc_position(self, batch: AnalysisBatch, role: str, *, of: BatchPosition | None = None,
                    **columns: Any) -> BatchPosition:
        return self.position(batch, role, of=of, **columns)

    def result(self, batch: AnalysisBatch, where: Sample | BatchPosition, parameter: str, value: str, *,
               unit: str = "mg/L", measured_at: datetime | None = None, entered_at: datetime | None = None,
               entered_by: User | None = None, revision: int = 1, supersedes: AnalysisResult | None = None,
               reason: str = "", below_mdl: bool = False, qualifier: str = "", source: str = "manual",
               instrument_id: int | None = None) -> AnalysisResult:
        """A result of a sample (a new sample position in the batch, or the one given) or of a QC
        position. Measured 30 min after the batch started and entered 10 min later, unless given."""
        position = where if isinstance(where, BatchPosition) else self._position_of(batch, where)
        measured = measured_at or batch.started_at + timedelta(minutes=30)
        with self.db.transaction() as session:
            row = AnalysisResult(batch_id=batch.id, position_id=position.id, sample_id=position.sample_id,
                                 parameter=parameter, revision=revision,
                                 supersedes_id=supersedes.id if supersedes else None, reason=reason,
                                 method_version_id=batch.method_version_id, instrument_id=instrument_id,
                                 reading=D(value), value=D(value), unit=unit, below_mdl=below_mdl,
                                 qualifier=qualifier, measured_at=measured,
                                 entered_at=entered_at or measured + timedelta(minutes=10), source=source,
                                 entered_by_id=(entered_by.id if entered_by else batch.analyst_id))
            session.add(row)
            session.flush()
            session.expunge(row)
            return row

    def _position_of(self, batch: AnalysisBatch, sample: Sample) -> BatchPosition:
        with self.db.transaction() as session:
            existing = session.query(BatchPosition).filter(
                BatchPosition.batch_id == batch.id, BatchPosition.sample_id == sample.id,
                BatchPosition.role == PositionRole.SAMPLE.value).first()
            if existing is not None:
                session.expunge(existing)
                return existing
        return self.position(batch, sample=sample)

    def qc(self, batch: AnalysisBatch, kind: str, parameter: str, value: str | None, *, passed: bool | None = True,
           position: BatchPosition | None = None, run: int = 1, limit_low: str | None = None,
           limit_high: str | None = None, detail: str = "{}", evaluated_at: datetime | None = None) -> QcEvaluation:
        """A QC evaluation of the batch: value is RD % (duplicate), recovery % (spike), the result
        (blank, CRM), deviation % (CCV)."""
        with self.db.transaction() as session:
            from app.analysis.models import MethodVersion as MV

            method_id = session.get(MV, batch.method_version_id).method_id
            row = QcEvaluation(batch_id=batch.id, run=run, method_id=method_id, parameter=parameter, kind=kind,
                               position_id=position.id if position else None,
                               value=None if value is None else D(value),
                               limit_low=None if limit_low is None else D(limit_low),
                               limit_high=None if limit_high is None else D(limit_high), passed=passed,
                               detail=detail, evaluated_at=evaluated_at or batch.submitted_at or self.now)
            session.add(row)
            session.flush()
            session.expunge(row)
            return row


def run_rule(db: Database, code: str, window: ScanWindow | None = None, **limits: Any) -> list[Finding]:
    """One rule's findings on the records as they stand, with its default thresholds unless
    `limits` overrides them, in a window ending a few minutes from now unless one is given."""
    rule = rule_by_code(code)
    assert rule is not None, code
    settings = rule.defaults() | {name: D(str(value)) for name, value in limits.items()}
    with db.reading() as session:
        return list(rule.find(session, window or ScanWindow(until=utcnow() + timedelta(minutes=5)), settings))


@pytest.fixture
def lab(db, users) -> LabRecords:
    return LabRecords(db, users)
