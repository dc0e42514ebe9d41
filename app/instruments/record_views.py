"""Read models for the record pages: a record with all its revisions, their signatures and
acceptances, and the impact assessment a failure opened. Each costs a fixed number of queries,
however many revisions or measurements there are (tests assert it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.files import FileStore, StoredFile
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature, SignatureView, check
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
    InstrumentStatus,
    IntermediateCheck,
)
from app.instruments.records import acceptance_content
from app.instruments.service import get_record, record_content
from app.instruments.status import status_now
from app.people.models import User

TRIGGER_TYPES = {CalibrationRecord: "calibration", IntermediateCheck: "check"}
SIGNED_TABLES = {IntermediateCheck: "instrument_check"}


class CertificateAltered(DomainError):
    """The bytes on disk no longer hash to the SHA-256 the record keeps: never serve them."""

    code = "certificate_altered"
    message_zh = "证书文件已缺失或被改动（SHA-256 不再一致），不能提供。请联系质量负责人。"
    message_en = ("The certificate file is missing or has been altered (its SHA-256 no longer matches) "
                  "and cannot be served. Tell the quality manager.")


@dataclass
class Revision:
    record: Any
    recorded_by: User | None
    current: bool
    signature: SignatureView | None = None  # a check: signed by whoever performed it
    acceptance: CalibrationAcceptance | None = None  # a certificate: 计量确认
    acceptance_signature: SignatureView | None = None
    decided_by: User | None = None
    file: StoredFile | None = None

    @property
    def allowed_parameters(self) -> list[str]:
        return json.loads(getattr(self.record, "allowed_parameters", "[]") or "[]")


@dataclass
class RecordHistory:
    """One record as the lab sees it: the revision asked for, and its whole chain."""

    instrument: Instrument
    responsible: User | None
    status: InstrumentStatus
    viewed: Revision
    revisions: list[Revision]  # newest first
    impact: ImpactAssessment | None = None  # opened by the failure this record reports
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> Revision:
        return self.revisions[0]


def _lineage(session: Session, model: type, record: Any) -> list[Any]:
    """Every revision of `record`'s chain, newest first: one query for the links of the
    instrument's records of that kind, one for the rows of the chain."""
    links = dict(session.execute(
        select(model.id, model.supersedes_id).where(model.instrument_id == record.instrument_id)
    ).all())
    newer = {old: new for new, old in links.items() if old is not None}
    root = record.id
    while links.get(root) is not None:
        root = links[root]
    chain = [root]
    while chain[-1] in newer:
        chain.append(newer[chain[-1]])
    rows = {r.id: r for r in session.scalars(select(model).where(model.id.in_(chain)))}
    return [rows[i] for i in reversed(chain)]


def _users(session: Session, ids: set[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def record_history(session: Session, model: type, record_id: int) -> RecordHistory:
    """The record page of a calibration, an intermediate check or a maintenance record."""
    record = get_record(session, model, record_id)
    instrument = session.get(Instrument, record.instrument_id)
    chain = _lineage(session, model, record)
    ids = [r.id for r in chain]
    acceptances: dict[int, CalibrationAcceptance] = {}
    signatures: dict[int, ElectronicSignature] = {}
    files: dict[int, StoredFile] = {}
    if model is CalibrationRecord:
        acceptances = {a.calibration_id: a for a in session.scalars(
            select(CalibrationAcceptance).where(CalibrationAcceptance.calibration_id.in_(ids)))}
        signature_ids = [a.signature_id for a in acceptances.values()]
        if signature_ids:
            signatures = {s.id: s for s in session.scalars(
                select(ElectronicSignature).where(ElectronicSignature.id.in_(signature_ids)))}
        files = {f.id: f for f in session.scalars(
            select(StoredFile).where(StoredFile.id.in_({r.certificate_file_id for r in chain})))}
    elif model in SIGNED_TABLES:
        rows = session.scalars(select(ElectronicSignature).where(
            ElectronicSignature.entity_type == SIGNED_TABLES[model],
            ElectronicSignature.entity_id.in_([str(i) for i in ids])))
        signatures = {int(s.entity_id): s for s in rows}
    people = _users(session, {instrument.responsible_id} | {r.recorded_by_id for r in chain}
                    | {a.decided_by_id for a in acceptances.values()})
    revisions = []
    for position, row in enumerate(chain):
        revision = Revision(row, people.get(row.recorded_by_id), current=position == 0)
        if model is CalibrationRecord:
            revision.file = files.get(row.certificate_file_id)
            acceptance = acceptances.get(row.id)
            if acceptance is not None:
                revision.acceptance = acceptance
                revision.decided_by = people.get(acceptance.decided_by_id)
                signed = signatures.get(acceptance.signature_id)
                if signed is not None:
                    revision.acceptance_signature = check(signed, acceptance_content(instrument, row, acceptance))
        elif row.id in signatures:
            revision.signature = check(signatures[row.id], record_content(instrument, row))
        revisions.append(revision)
    impact = None
    if model in TRIGGER_TYPES and any(r.result == "fail" for r in chain):
        impact = session.scalars(select(ImpactAssessment).where(
            ImpactAssessment.trigger_type == TRIGGER_TYPES[model], ImpactAssessment.trigger_id.in_(ids))
            .order_by(ImpactAssessment.id.desc()).limit(1)).first()
    viewed = next(r for r in revisions if r.record.id == record.id)
    return RecordHistory(instrument, people.get(instrument.responsible_id),
                         status_now(instrument, utcnow(), lab_calendar(session)), viewed, revisions, impact)


def certificate_file(session: Session, store: FileStore, record: CalibrationRecord) -> StoredFile:
    """The certificate's stored file, after checking its bytes still hash to what was stored."""
    stored = session.get(StoredFile, record.certificate_file_id)
    if stored is None or stored.sha256 != record.certificate_sha256 or not store.verify(stored.sha256):
        raise CertificateAltered()
    return stored


@dataclass(frozen=True)
class ImpactPage:
    trigger: Any  # the failed calibration or check
    decided_by: User | None
    window_end: datetime


def impact_page(session: Session, assessment: ImpactAssessment) -> ImpactPage:
    model = CalibrationRecord if assessment.trigger_type == "calibration" else IntermediateCheck
    trigger = session.get(model, assessment.trigger_id)
    decided_by = session.get(User, assessment.decided_by_id) if assessment.decided_by_id else None
    return ImpactPage(trigger, decided_by, assessment.decided_at or utcnow())

