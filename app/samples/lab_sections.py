"""The lab part of a sample's page, a section per module: custody chain, receipt, holding-time
clocks, storage and retention, preparation. Each returns what its template shows, or None."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.samples.chain import custody_section
from app.samples.holding import clock_section
from app.samples.models import Sample
from app.samples.preparation import prep_section
from app.samples.receipt import receipt_section
from app.samples.storage import storage_section


def lab_sections(session: Session, sample: Sample) -> dict[str, Any]:
    return {
        "receipt": receipt_section(session, sample),
        "clocks": clock_section(session, sample),
        "custody": custody_section(session, sample),
        "storage": storage_section(session, sample),
        "prep": prep_section(session, sample),
    }
