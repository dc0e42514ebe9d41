"""Analysis results as a source of instrument usages: when an instrument's calibration or check
fails, the impact assessment lists every result measured with it in the window (one query, on
the result's instrument index and its time of measurement). Every revision is listed: a
superseded value was still a measurement made with the instrument."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition
from app.instruments.usage import InstrumentUsage, register_usage_source
from app.samples.models import Sample

SOURCE_NAME = "analysis"


class AnalysisResultUsages:
    """The `UsageSource` of analysis results."""

    name = SOURCE_NAME

    def usages(self, session: Session, instrument_id: int, since: datetime | None,
               until: datetime) -> Sequence[InstrumentUsage]:
        query = (
            select(AnalysisResult.id, AnalysisResult.measured_at, AnalysisResult.parameter, AnalysisResult.value,
                   AnalysisResult.unit, AnalysisResult.revision, AnalysisBatch.batch_no, BatchPosition.label,
                   Sample.sample_no)
            .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
            .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
            .outerjoin(Sample, Sample.id == AnalysisResult.sample_id)
            .where(AnalysisResult.instrument_id == instrument_id, AnalysisResult.measured_at <= until)
            .order_by(AnalysisResult.measured_at, AnalysisResult.id)
        )
        if since is not None:
            query = query.where(AnalysisResult.measured_at >= since)
        return [
            InstrumentUsage(
                source=SOURCE_NAME, record_id=str(result_id), measured_at=measured_at, parameter=parameter,
                sample_no=sample_no or "",
                description=f"{batch_no} {label}: {parameter} = {value:f} {unit}"
                + (f" (rev. {revision})" if revision > 1 else ""),
                url=f"/batches/{batch_no}/entry",
            )
            for result_id, measured_at, parameter, value, unit, revision, batch_no, label, sample_no
            in session.execute(query)
        ]


register_usage_source(AnalysisResultUsages())
