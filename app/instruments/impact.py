"""Impact assessment after a failed calibration or check, and the quality manager's disposition.

The list of affected measurements is asked of every registered `UsageSource` for the window from
the instrument's last passing evidence to now (to the decision, once decided). The disposition is
signed over the assessment *and* that list, so a measurement added to the window afterwards shows
the signature as broken: the decision did not cover it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.core.web import Page
from app.instruments import errors
from app.instruments.models import Disposition, ImpactAssessment, Instrument
from app.instruments.service import clean_choice, clean_text
from app.instruments.usage import InstrumentUsage, usages_between
from app.people.models import User


@dataclass(frozen=True)
class ImpactView:
    assessment: ImpactAssessment
    instrument: Instrument
    usages: list[InstrumentUsage]
    signature: SignatureView | None


def get_assessment(session: Session, assessment_id: int) -> ImpactAssessment:
    assessment = session.get(ImpactAssessment, assessment_id)
    if assessment is None:
        raise errors.RecordNotFound()
    return assessment


def window_end(assessment: ImpactAssessment) -> datetime:
    return assessment.decided_at or utcnow()


def affected_usages(session: Session, assessment: ImpactAssessment) -> list[InstrumentUsage]:
    return usages_between(session, assessment.instrument_id, assessment.since, window_end(assessment))


def signed_content(instrument: Instrument, assessment: ImpactAssessment,
                   usages: list[InstrumentUsage]) -> dict[str, Any]:
    return {
        "asset_no": instrument.asset_no, "assessment_id": assessment.id,
        "trigger": [assessment.trigger_type, assessment.trigger_id],
        "since": assessment.since, "until": assessment.until,
        "disposition": assessment.disposition, "justification": assessment.justification,
        "usages": [u.signed_content() for u in usages],
    }


def view_assessment(session: Session, assessment: ImpactAssessment) -> ImpactView:
    instrument = session.get(Instrument, assessment.instrument_id)
    usages = affected_usages(session, assessment)
    signature = None
    if assessment.signature_id is not None:
        row = session.get(ElectronicSignature, assessment.signature_id)
        signature = check(row, signed_content(instrument, assessment, usages))
    return ImpactView(assessment, instrument, usages, signature)


def decide_impact(
    session: Session, actor: User, assessment: ImpactAssessment, password: str, *, disposition: str,
    justification: str,
) -> ImpactAssessment:
    """The quality manager's signed disposition over the assessment and the affected list."""
    ensure(session, actor, Permission.INSTRUMENTS_DISPOSE)
    session.refresh(assessment, with_for_update=True)
    if assessment.status != "open":
        raise errors.ImpactAlreadyDecided()
    disposition = clean_choice(disposition, Disposition, "disposition")
    if not (justification or "").strip():
        raise errors.JustificationRequired()
    justification = clean_text(justification, "justification", 4000)
    instrument = session.get(Instrument, assessment.instrument_id)
    before = {"status": assessment.status}
    now = utcnow()
    assessment.status, assessment.disposition, assessment.justification = "closed", disposition, justification
    assessment.decided_by_id, assessment.decided_at = actor.id, now
    usages = affected_usages(session, assessment)
    signature = sign(session, actor, password, SignatureMeaning.REVIEWED, "instrument_impact", assessment.id,
                     signed_content(instrument, assessment, usages))
    assessment.signature_id = signature.id
    session.flush()
    audit.append(session, actor, "instrument.impact_decided", "instrument_impact", assessment.id, before,
                 {"status": "closed", "disposition": disposition, "justification": justification,
                  "usages": len(usages), "signature_id": signature.id})
    return assessment


def list_assessments(session: Session, *, status: str, page: int, size: int) -> Page[Any]:
    """Assessments with their instrument, newest first (one query plus the count)."""
    where = [ImpactAssessment.status == status] if status in ("open", "closed") else []
    stmt = (
        select(ImpactAssessment, Instrument).join(Instrument, Instrument.id == ImpactAssessment.instrument_id)
        .where(*where).order_by(ImpactAssessment.opened_at.desc(), ImpactAssessment.id.desc())
    )
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(ImpactAssessment).where(*where)) or 0
    rows = session.execute(stmt.limit(size).offset((page - 1) * size)).all()
    return Page([(row[0], row[1]) for row in rows], page, size, total)


def open_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(ImpactAssessment.status == "open")) or 0


CSV_HEADER = ("asset_no", "assessment_id", "source", "record_id", "measured_at_local", "parameter", "sample_no",
              "description")


def impact_csv(session: Session, view: ImpactView) -> str:
    """The affected list for the quality manager's spreadsheet (UTF-8 with BOM, so Excel reads
    Chinese correctly)."""
    tz = lab_calendar(session).tz
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for usage in view.usages:
        writer.writerow([
            view.instrument.asset_no, view.assessment.id, _csv_safe(usage.source), _csv_safe(usage.record_id),
            usage.measured_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), _csv_safe(usage.parameter),
            _csv_safe(usage.sample_no), _csv_safe(usage.description),
        ])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(text: str) -> str:
    """Cells starting with = + - @ (or a tab or CR before one) would run as formulas in a
    spreadsheet (CSV injection). Every text a usage source supplies is escaped: sample numbers and
    parameters come from other domains' records, not only descriptions."""
    return "'" + text if text[:1] in FORMULA_STARTS else text

