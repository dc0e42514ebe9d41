"""The instrument traceability statement as a PDF, for an assessor or a client.

It is printed from the same read model as the traceability page (queries.traceability_at): the
certificate in force at the moment asked about, its 计量确认 with the signature rechecked against
the record as it is now, the last intermediate check, maintenance since the certificate, and the
audit chain head at the time of printing, so a paper copy can be tied back to the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from app.core import audit
from app.core.labtime import lab_calendar
from app.core.pdf import print_context, render_document
from app.instruments.models import Instrument, InstrumentStatus
from app.instruments.queries import Traceability, traceability_at

TEMPLATE = "instruments/traceability_pdf.html"


@dataclass(frozen=True)
class CertificateState:
    """How the certificate shown relates to the moment: in force, expired (overdue), or only the
    latest before the moment (none in force: not yet confirmed, rejected, failed)."""

    key: str  # in_force / expired / not_in_force / none
    valid_until: date | None = None


def certificate_state(trace: Traceability) -> CertificateState:
    if trace.calibration is None:
        return CertificateState("none")
    valid_until = trace.calibration.valid_until
    if trace.calibration_in_force and trace.reading.status is InstrumentStatus.OVERDUE:
        return CertificateState("expired", valid_until)
    if trace.calibration_in_force:
        return CertificateState("in_force", valid_until)
    return CertificateState("not_in_force", valid_until)


def traceability_context(session: Session, instrument: Instrument, at: datetime) -> dict:
    trace = traceability_at(session, instrument, at)
    calendar = lab_calendar(session)
    seq, head_hash = audit.head(session)
    last_valid_day = None
    if trace.reading.due_at is not None:  # the due instant is the start of the day after valid-until
        last_valid_day = calendar.local_date(trace.reading.due_at) - timedelta(days=1)
    return {
        **print_context(session),
        "trace": trace,
        "instrument": instrument,
        "certificate": certificate_state(trace),
        "last_valid_day": last_valid_day,
        "due_soon_days": calendar.due_soon.days,
        "audit_seq": seq,
        "audit_head": head_hash,
    }


def traceability_pdf(session: Session, instrument: Instrument, at: datetime, *, language: str) -> bytes:
    """The traceability statement of `instrument` at the (timezone-aware) moment `at`."""
    return render_document(TEMPLATE, traceability_context(session, instrument, at), language=language)
