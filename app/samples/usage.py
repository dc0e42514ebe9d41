"""Field tests as a source of instrument usages: when a field meter's calibration or check
fails, the impact assessment lists every field reading made with it in the window (one query,
on the index of field entries by instrument and time)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.instruments.usage import InstrumentUsage, register_usage_source
from app.samples.models import FieldEntry, FieldEntryKind, Sample

SOURCE_NAME = "field_test"


class FieldTestUsages:
    """The `UsageSource` of the field record."""

    name = SOURCE_NAME

    def usages(self, session: Session, instrument_id: int, since: datetime | None,
               until: datetime) -> Sequence[InstrumentUsage]:
        query = (
            select(FieldEntry.id, FieldEntry.act_at, FieldEntry.parameter, FieldEntry.value, FieldEntry.unit,
                   FieldEntry.revision, Sample.sample_no)
            .join(Sample, Sample.id == FieldEntry.sample_id)
            .where(FieldEntry.instrument_id == instrument_id, FieldEntry.kind == FieldEntryKind.FIELD_TEST.value,
                   FieldEntry.act_at <= until)
            .order_by(FieldEntry.act_at, FieldEntry.id)
        )
        if since is not None:
            query = query.where(FieldEntry.act_at >= since)
        return [
            InstrumentUsage(
                source=SOURCE_NAME, record_id=str(entry_id), measured_at=act_at, parameter=parameter,
                sample_no=sample_no,
                description=f"{parameter} = {value:f} {unit}" + (f" (rev. {revision})" if revision > 1 else ""),
                url=f"/samples/{sample_no}#field-record",
            )
            for entry_id, act_at, parameter, value, unit, revision, sample_no in session.execute(query)
        ]


register_usage_source(FieldTestUsages())
