"""Metrological records: verification and calibration certificates with their acceptance
(计量确认), intermediate checks (期间核查), maintenance and repair.

All append-only: a correction is a new revision that supersedes the old one, with a reason. A
failing certificate or check, or a repair, takes the instrument out of service at once and, for
a failure, opens an impact assessment in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.files import FileStore, store_upload
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.signatures import SignatureMeaning, sign
from app.instruments import errors
from app.instruments.models import (
    AcceptanceDecision,
    CalibrationAcceptance,
    CalibrationRecord,
    CheckResult,
    ConfirmationKind,
    ConfirmationResult,
    ImpactAssessment,
    Instrument,
    IntermediateCheck,
    MaintenanceKind,
    MaintenanceRecord,
)
from app.instruments.service import (
    CERTIFICATE_MAX_BYTES,
    CERTIFICATE_TYPES,
    Upload,
    clean_choice,
    clean_reason,
    clean_text,
    lock_instrument,
    record_content,
    refresh_state,
    refuse_future,
    refuse_if_retired,
    refuse_implausible_day,
    row_columns,
    successor_of,
    uses_of,
)
from app.instruments.status import not_superseded
from app.instruments.usage import use_check_standard
from app.people.models import User

# ---------------------------------------------------------------- calibration and verification


@dataclass(frozen=True)
class CalibrationFacts:
    """What a certificate says (the form's fields, already parsed)."""

    kind: str
    provider: str
    certificate_no: str
    performed_on: date
    result: str
    valid_until: date | None = None
    provider_accreditation_no: str = ""
    restriction: str = ""
    allowed_parameters: tuple[str, ...] = ()
    corrections: str = ""


def _checked_facts(session: Session, instrument: Instrument, facts: CalibrationFacts) -> dict[str, Any]:
    calendar = lab_calendar(session)
    kind = clean_choice(facts.kind, ConfirmationKind, "kind")
    result = clean_choice(facts.result, ConfirmationResult, "result")
    refuse_implausible_day(facts.performed_on, "performed_on")
    if facts.performed_on > calendar.today():
        raise errors.DateInFuture(what_zh="检定/校准日期", what_en="The date performed")
    valid_until = facts.valid_until
    if result != ConfirmationResult.FAIL.value and valid_until is None:
        raise InvalidInput(detail="valid_until is required for a passing certificate")
    if valid_until is None:
        valid_until = facts.performed_on
    refuse_implausible_day(valid_until, "valid_until")
    if valid_until < facts.performed_on:
        raise errors.ValidUntilBeforePerformed(valid_until=valid_until.isoformat(),
                                               performed_on=facts.performed_on.isoformat())
    restriction, allowed = "", []
    if result == ConfirmationResult.RESTRICTED.value:
        restriction = clean_text(facts.restriction, "restriction", 2000, required=False)
        allowed = sorted({p.strip() for p in facts.allowed_parameters if p.strip()})
        if not restriction or not allowed:
            raise errors.RestrictionRequired()
        assigned = {p.casefold(): p for p, _ in uses_of(session, instrument)}
        outside = [p for p in allowed if p.casefold() not in assigned]
        if outside:
            raise errors.RestrictionOutsideUses(parameters=", ".join(outside))
        allowed = sorted({assigned[p.casefold()] for p in allowed})  # "tp" and "TP" are one parameter
    return {
        "kind": kind, "result": result,
        "provider": clean_text(facts.provider, "provider", 200),
        "provider_accreditation_no": clean_text(facts.provider_accreditation_no, "provider_accreditation_no", 60,
                                           required=False),
        "certificate_no": clean_text(facts.certificate_no, "certificate_no", 80),
        "performed_on": facts.performed_on, "valid_until": valid_until,
        "effective_from": calendar.start_of(facts.performed_on), "event_day": facts.performed_on,
        "due_at": calendar.start_of(date.fromordinal(valid_until.toordinal() + 1)),
        "restriction": restriction, "allowed_parameters": canonical_json(allowed),
        "corrections": clean_text(facts.corrections, "corrections", 4000, required=False),
    }


def _refuse_duplicate_certificate(session: Session, instrument: Instrument, certificate_no: str,
                                  replacing: CalibrationRecord | None) -> None:
    newer = select(CalibrationRecord.supersedes_id).where(CalibrationRecord.supersedes_id.is_not(None))
    stmt = select(func.count()).where(
        CalibrationRecord.instrument_id == instrument.id,
        func.lower(CalibrationRecord.certificate_no) == certificate_no.lower(),
        CalibrationRecord.id.not_in(newer),
    )
    if replacing is not None:
        stmt = stmt.where(CalibrationRecord.id != replacing.id)
    if session.scalar(stmt):
        raise errors.DuplicateCertificateNo(certificate_no=certificate_no)


def record_calibration(
    session: Session, actor: User, instrument: Instrument, facts: CalibrationFacts, *,
    store: FileStore, certificate: Upload,
) -> CalibrationRecord:
    """Enter a certificate. A pass or restricted result counts once the responsible person accepts
    it (计量确认); a fail takes the instrument out of service at once and opens an impact
    assessment. The certificate must be a PDF of at most 20 MB, kept by its SHA-256."""
    ensure(session, actor, Permission.INSTRUMENTS_MANAGE)
    lock_instrument(session, instrument)
    refuse_if_retired(instrument)
    checked = _checked_facts(session, instrument, facts)
    _refuse_duplicate_certificate(session, instrument, checked["certificate_no"], None)
    stored = store_upload(session, actor, store, certificate.stream, certificate.filename,
                          allowed_types=CERTIFICATE_TYPES, max_bytes=CERTIFICATE_MAX_BYTES)
    record = CalibrationRecord(
        instrument_id=instrument.id, revision=1, certificate_file_id=stored.id, certificate_sha256=stored.sha256,
        recorded_at=utcnow(), recorded_by_id=actor.id, **checked,
    )
    return _land_calibration(session, actor, instrument, record, "instrument.calibration_recorded", None)


def correct_calibration(
    session: Session, actor: User, record: CalibrationRecord, facts: CalibrationFacts, *, reason: str,
    store: FileStore, certificate: Upload | None = None,
) -> CalibrationRecord:
    """A correction is a new revision pointing at the old one, with a reason; the old one stays.
    A corrected passing certificate must be accepted again: the acceptance bound the old content."""
    instrument, reason = _open_correction(session, actor, record, Permission.INSTRUMENTS_MANAGE, reason)
    checked = _checked_facts(session, instrument, facts)
    _refuse_duplicate_certificate(session, instrument, checked["certificate_no"], record)
    file_id, sha256 = record.certificate_file_id, record.certificate_sha256
    if certificate is not None:
        stored = store_upload(session, actor, store, certificate.stream, certificate.filename,
                              allowed_types=CERTIFICATE_TYPES, max_bytes=CERTIFICATE_MAX_BYTES)
        file_id, sha256 = stored.id, stored.sha256
    corrected = _revision_of(record, actor, reason, checked | {"certificate_sha256": sha256},
                             certificate_file_id=file_id)
    return _land_calibration(session, actor, instrument, corrected, "instrument.calibration_corrected",
                             record_content(instrument, record))


def _land_calibration(session: Session, actor: User, instrument: Instrument, record: CalibrationRecord,
                      action: str, before: dict[str, Any] | None) -> CalibrationRecord:
    session.add(record)
    session.flush()
    audit.append(session, actor, action, "instrument_calibration", record.id, before,
                 record_content(instrument, record))
    if record.result == ConfirmationResult.FAIL.value:
        open_impact_assessment(session, actor, instrument, "calibration", record.id, record.effective_from)
    refresh_state(session, actor, instrument)
    return record


def _refuse_superseded(session: Session, model: type, record: Any) -> None:
    newer = successor_of(session, model, record)
    if newer is not None:
        latest = newer
        while (following := successor_of(session, model, latest)) is not None:
            latest = following
        raise errors.RecordSuperseded(revision=latest.revision)


def _open_correction(session: Session, actor: User, record: Any, permission: Permission,
                     reason: str) -> tuple[Instrument, str]:
    """What every correction checks first: the right, a reason, and that it corrects the latest
    revision (under the instrument's row lock, so two concurrent corrections cannot both land)."""
    ensure(session, actor, permission)
    reason = clean_reason(reason)
    instrument = session.get(Instrument, record.instrument_id)
    lock_instrument(session, instrument)
    _refuse_superseded(session, type(record), record)
    return instrument, reason


def _revision_of(record: Any, actor: User, reason: str, checked: dict[str, Any], **extra: Any) -> Any:
    """The next revision of `record` carrying the corrected facts (and `extra` columns, which do
    not count as a change); refuses a correction that changes none of the facts."""
    if all(getattr(record, k) == v for k, v in checked.items()):
        raise errors.NothingCorrected()
    return type(record)(instrument_id=record.instrument_id, revision=record.revision + 1,
                        supersedes_id=record.id, correction_reason=reason, recorded_at=utcnow(),
                        recorded_by_id=actor.id, **checked, **extra)


def decide_acceptance(
    session: Session, actor: User, record: CalibrationRecord, password: str, *, accept: bool, note: str = "",
) -> CalibrationAcceptance:
    """计量确认: the responsible person signs that the certificate meets (or does not meet) the
    lab's requirements for the instrument's uses. Accepting puts the instrument in calibration."""
    ensure(session, actor, Permission.INSTRUMENTS_CONFIRM)
    instrument = session.get(Instrument, record.instrument_id)
    lock_instrument(session, instrument)
    if actor.id != instrument.responsible_id:
        responsible = session.get(User, instrument.responsible_id)
        raise errors.NotResponsiblePerson(responsible=responsible.printed_name if responsible else "?")
    _refuse_superseded(session, CalibrationRecord, record)
    if record.result == ConfirmationResult.FAIL.value:
        raise errors.NothingToAccept()
    if session.scalar(select(func.count()).where(CalibrationAcceptance.calibration_id == record.id)):
        raise errors.AlreadyDecided()
    decision = AcceptanceDecision.ACCEPTED if accept else AcceptanceDecision.REJECTED
    note = clean_text(note, "note", 500, required=not accept)
    content = {**record_content(instrument, record), "decision": decision.value, "note": note}
    signature = sign(session, actor, password, SignatureMeaning.CONFIRMED, "instrument_calibration", record.id,
                     content)
    acceptance = CalibrationAcceptance(
        calibration_id=record.id, decision=decision.value, note=note, signature_id=signature.id,
        decided_by_id=actor.id, decided_at=signature.signed_at,
    )
    session.add(acceptance)
    session.flush()
    audit.append(session, actor, f"instrument.calibration_{decision.value}", "instrument_calibration", record.id,
                 None, {"acceptance_id": acceptance.id, "decision": decision.value, "note": note,
                        "signature_id": signature.id})
    refresh_state(session, actor, instrument)
    return acceptance


def acceptance_content(instrument: Instrument, record: CalibrationRecord,
                       acceptance: CalibrationAcceptance) -> dict[str, Any]:
    """What the acceptance signature bound (to recheck it wherever it is shown)."""
    return {**record_content(instrument, record), "decision": acceptance.decision, "note": acceptance.note}


# ---------------------------------------------------------------- intermediate checks


@dataclass(frozen=True)
class CheckFacts:
    performed_at: datetime
    check_standard: str
    criterion: str
    measured_value: str
    result: str
    method: str = ""
    unit: str = ""
    remarks: str = ""
    standard_barcode: str = ""  # the RM unit or standard solution used (scanned), optional


def _decimal_text(value: str | Decimal) -> str:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise errors.InvalidMeasuredValue() from None
    if not number.is_finite():
        raise errors.InvalidMeasuredValue()
    return str(number)


def _checked_check(session: Session, facts: CheckFacts) -> dict[str, Any]:
    refuse_future(facts.performed_at, "核查时间", "The time of the check")
    return {
        "effective_from": facts.performed_at,
        "event_day": lab_calendar(session).local_date(facts.performed_at),
        "check_standard": clean_text(facts.check_standard, "check_standard", 200),
        "method": clean_text(facts.method, "method", 200, required=False),
        "criterion": clean_text(facts.criterion, "criterion", 200),
        "measured_value": _decimal_text(facts.measured_value),
        "unit": clean_text(facts.unit, "unit", 30, required=False),
        "result": clean_choice(facts.result, CheckResult, "result"),
        "remarks": clean_text(facts.remarks, "remarks", 500, required=False),
        "standard_barcode": clean_text(facts.standard_barcode, "standard_barcode", 20, required=False).upper(),
    }


def record_check(session: Session, actor: User, instrument: Instrument, facts: CheckFacts,
                 password: str) -> IntermediateCheck:
    """期间核查, signed by whoever performed it. A fail takes the instrument out of service and
    opens an impact assessment."""
    ensure(session, actor, Permission.INSTRUMENTS_RECORD)
    lock_instrument(session, instrument)
    refuse_if_retired(instrument)
    check = IntermediateCheck(instrument_id=instrument.id, revision=1, recorded_at=utcnow(),
                              recorded_by_id=actor.id, **_checked_check(session, facts))
    return _land_check(session, actor, instrument, check, password, "instrument.check_recorded", None)


def correct_check(session: Session, actor: User, record: IntermediateCheck, facts: CheckFacts, password: str,
                  *, reason: str) -> IntermediateCheck:
    instrument, reason = _open_correction(session, actor, record, Permission.INSTRUMENTS_RECORD, reason)
    corrected = _revision_of(record, actor, reason, _checked_check(session, facts))
    return _land_check(session, actor, instrument, corrected, password, "instrument.check_corrected",
                       record_content(instrument, record), used_before=record)


def _land_check(session: Session, actor: User, instrument: Instrument, check: IntermediateCheck, password: str,
                action: str, before: dict[str, Any] | None,
                used_before: IntermediateCheck | None = None) -> IntermediateCheck:
    session.add(check)
    session.flush()
    moved = used_before is None or (used_before.standard_barcode, used_before.effective_from) != (
        check.standard_barcode, check.effective_from)
    if check.standard_barcode and moved:  # a correction that keeps standard and time used it once
        use_check_standard(session, actor, check.standard_barcode, check.effective_from, check.id)
    sign(session, actor, password, SignatureMeaning.PERFORMED, "instrument_check", check.id,
         record_content(instrument, check))
    audit.append(session, actor, action, "instrument_check", check.id, before, record_content(instrument, check))
    if check.result == CheckResult.FAIL.value:
        open_impact_assessment(session, actor, instrument, "check", check.id, check.effective_from)
    refresh_state(session, actor, instrument)
    return check


# ---------------------------------------------------------------- maintenance and repair


@dataclass(frozen=True)
class MaintenanceFacts:
    kind: str
    performed_at: datetime
    description: str
    performed_by: str = ""


def _checked_maintenance(session: Session, facts: MaintenanceFacts) -> dict[str, Any]:
    refuse_future(facts.performed_at, "维护/维修时间", "The time of the maintenance")
    return {
        "kind": clean_choice(facts.kind, MaintenanceKind, "kind"),
        "effective_from": facts.performed_at,
        "event_day": lab_calendar(session).local_date(facts.performed_at),
        "description": clean_text(facts.description, "description", 4000),
        "performed_by": clean_text(facts.performed_by, "performed_by", 200, required=False),
    }


def record_maintenance(session: Session, actor: User, instrument: Instrument,
                       facts: MaintenanceFacts) -> MaintenanceRecord:
    """Maintenance leaves the status alone; a repair takes the instrument out of service until a
    later passing calibration is accepted."""
    ensure(session, actor, Permission.INSTRUMENTS_RECORD)
    lock_instrument(session, instrument)
    refuse_if_retired(instrument)
    record = MaintenanceRecord(instrument_id=instrument.id, revision=1, recorded_at=utcnow(),
                               recorded_by_id=actor.id, **_checked_maintenance(session, facts))
    return _land_maintenance(session, actor, instrument, record, "instrument.maintenance_recorded", None)


def correct_maintenance(session: Session, actor: User, record: MaintenanceRecord, facts: MaintenanceFacts, *,
                        reason: str) -> MaintenanceRecord:
    instrument, reason = _open_correction(session, actor, record, Permission.INSTRUMENTS_RECORD, reason)
    corrected = _revision_of(record, actor, reason, _checked_maintenance(session, facts))
    return _land_maintenance(session, actor, instrument, corrected, "instrument.maintenance_corrected",
                             record_content(instrument, record))


def _land_maintenance(session: Session, actor: User, instrument: Instrument, record: MaintenanceRecord,
                      action: str, before: dict[str, Any] | None) -> MaintenanceRecord:
    session.add(record)
    session.flush()
    audit.append(session, actor, action, "instrument_maintenance", record.id, before,
                 record_content(instrument, record))
    refresh_state(session, actor, instrument)
    return record


# ---------------------------------------------------------------- impact assessment


def last_shown_fit(
    session: Session, instrument_id: int, before: datetime, excluding: tuple[str, int]
) -> datetime | None:
    """The latest passing evidence (accepted calibration or passing check) before a failure."""


    calibrations = (
        select(func.max(CalibrationRecord.effective_from))
        .join(CalibrationAcceptance, CalibrationAcceptance.calibration_id == CalibrationRecord.id)
        .where(CalibrationRecord.instrument_id == instrument_id, CalibrationRecord.effective_from <= before,
               CalibrationRecord.result != ConfirmationResult.FAIL.value,
               CalibrationAcceptance.decision == AcceptanceDecision.ACCEPTED.value,
               not_superseded(CalibrationRecord))
    )
    checks = select(func.max(IntermediateCheck.effective_from)).where(
        IntermediateCheck.instrument_id == instrument_id, IntermediateCheck.effective_from <= before,
        IntermediateCheck.result == CheckResult.PASS.value, not_superseded(IntermediateCheck),
        *([IntermediateCheck.id != excluding[1]] if excluding[0] == "check" else []),
    )
    found = [session.scalar(calibrations), session.scalar(checks)]
    found = [moment for moment in found if moment is not None]
    return max(found) if found else None


def open_impact_assessment(session: Session, actor: User, instrument: Instrument, trigger_type: str,
                           trigger_id: int, until: datetime) -> ImpactAssessment:
    since = last_shown_fit(session, instrument.id, until, (trigger_type, trigger_id))
    assessment = ImpactAssessment(
        instrument_id=instrument.id, trigger_type=trigger_type, trigger_id=trigger_id, since=since, until=until,
        status="open", opened_at=utcnow(),
    )
    session.add(assessment)
    session.flush()
    audit.append(session, actor, "instrument.impact_opened", "instrument_impact", assessment.id, None,
                 {"asset_no": instrument.asset_no, **row_columns(assessment)})
    return assessment

