"""Helpers of the import tests: an ICP-MS method (direct reading, μg/L) on a calibrated ICP-MS, a
running batch written straight into its tables (the batch service is another part's), the sample
MassHunter export with its acquisition times moved to just now, and counts of what a refused
import must leave unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import count as counter
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, ImportProfile, MethodVersion, ResultImport
from app.core.audit import AuditEvent
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.core.files import StoredFile
from app.instruments.models import Instrument
from app.people.models import User
from app.samples.models import Sample
from tests.analysis.conftest import ParameterSpec, calibrated_instrument, make_method, samples_in_lab

DATA = Path(__file__).parent / "data"
METALS = ("As", "Cd", "Pb")
_numbers = counter(1)
ICPMS_METHOD = "HJ 700-2014"


@dataclass
class Icpms:
    batch: AnalysisBatch
    positions: dict[str, BatchPosition]  # by label
    samples: list[Sample]
    method: MethodVersion
    instrument: Instrument


def icpms_batch(db: Database, users: dict[str, User], store, *, parameters: tuple[str, ...] = METALS,
                state: str = "running", prefix: str = "WS01-261203", count: int = 2,
                like: Icpms | None = None) -> Icpms:
    """Batch of HJ 700-2014 (As, Cd, Pb by ICP-MS, read directly in μg/L): BLK1, then one position
    per sample labelled S-001..., started three hours ago; on the method and instrument of `like`."""
    technical, analyst = users["technical_manager"], users["analyst"]
    if like is None:
        instrument = calibrated_instrument(db, technical, store, "JC-ICPMS-001",
                                           uses=tuple((p, ICPMS_METHOD) for p in METALS))
        method = make_method(db, technical, ICPMS_METHOD, name_zh="水质 65种元素的测定 电感耦合等离子体质谱法",
                             parameters=tuple(ParameterSpec(p, "μg/L", "0.05", 3) for p in METALS),
                             calculation="direct", instruments=(instrument,))
    else:
        instrument, method = like.instrument, like.method
    samples = samples_in_lab(db, users["custodian"], tuple((p, None) for p in METALS), count=count, prefix=prefix)
    now = utcnow()
    with db.transaction() as session:
        batch = AnalysisBatch(batch_no=f"AB26-7{next(_numbers):04d}", method_version_id=method.id,
                              parameters=canonical_json(list(parameters)), instrument_id=instrument.id, state=state,
                              analyst_id=analyst.id, created_at=now - timedelta(hours=4),
                              started_at=None if state == "open" else now - timedelta(hours=3))
        session.add(batch)
        session.flush()
        rows = [{"role": "method_blank", "label": "BLK1", "sample_id": None}]
        rows += [{"role": "sample", "label": f"S-{s.sample_no[-3:]}", "sample_id": s.id} for s in samples]
        session.execute(insert(BatchPosition), [
            {**row, "batch_id": batch.id, "position": i + 1, "added_at": batch.created_at,
             "added_by_id": analyst.id} for i, row in enumerate(rows)])
        positions = {p.label: p for p in session.scalars(select(BatchPosition).where(
            BatchPosition.batch_id == batch.id))}
        for row in (batch, *positions.values()):
            session.expunge(row)
    return Icpms(batch, positions, samples, method, instrument)


def masshunter_now(db: Database, text: str | None = None) -> bytes:
    """The sample MassHunter export with its acquisitions moved to two hours ago (lab time): after
    the batch started, before now."""
    base = (utcnow() - timedelta(hours=2)).astimezone(db.calendar.tz)
    text = text if text is not None else (DATA / "masshunter_batch.csv").read_text(encoding="utf-8")
    return text.replace("2026/03/04 09:", base.strftime("%Y/%m/%d %H:")).encode("utf-8")


def counts(db: Database) -> dict[str, int]:
    with db.reading() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in (
            AnalysisResult, ResultImport, StoredFile, AuditEvent, ImportProfile)}


def batch_state(db: Database, batch: AnalysisBatch) -> str:
    with db.reading() as session:
        return session.get(AnalysisBatch, batch.id).state


@pytest.fixture
def icpms(db, users, store) -> Icpms:
    return icpms_batch(db, users, store)
