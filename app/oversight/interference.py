"""The interference log (干预留痕, DOMAIN.md §6): any lab user files a record of an attempt to
influence monitoring, without anyone's approval; nothing is ever edited or deleted (the tables
are append-only); follow-ups are appended supplements, from which the state is read
(filed → acknowledged → reported).

Who sees a record is decided here, once, for pages, API and exports alike: the filer sees their
own; the holders of INTERFERENCE_OVERSEE (quality manager, inspector) see every record; the lab
head (INTERFERENCE_UNRESTRICTED) every record the filer did not restrict; a lab user named as the
interferer never sees it, whatever their role. A record the reader may not see is
answered as not found (its existence is not revealed).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.config import settings_of
from app.core import audit
from app.core.db import utcnow
from app.core.files import FileStore, StoredFile, file_store
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, permissions_of, roles_at
from app.core.web import Page
from app.instruments.service import Upload
from app.oversight import interference_errors as errors
from app.oversight.models import (
    InterferenceAttachment,
    InterferenceChannel,
    InterferenceRecord,
    InterferenceRequest,
    InterferenceSupplement,
    InterferenceTarget,
    LabResponse,
    SupplementKind,
)
from app.people.models import User
from app.reports.models import Report
from app.samples.models import Sample
from app.sites.models import Site

RECORD_PREFIX = "GY"  # 干预
MAX_TARGETS = 100
MAX_ATTACHMENTS = 20
MAX_TEXT = 5000
CLOCK_SKEW = timedelta(minutes=5)  # a phone a little ahead of the server is not "the future"


class InterferenceState:
    FILED = "filed"
    ACKNOWLEDGED = "acknowledged"
    REPORTED = "reported"


STATES = (InterferenceState.FILED, InterferenceState.ACKNOWLEDGED, InterferenceState.REPORTED)
CHANNELS = tuple(c.value for c in InterferenceChannel)
REQUEST_KINDS = tuple(k.value for k in InterferenceRequest)
LAB_RESPONSES = tuple(r.value for r in LabResponse)
TARGET_TYPES = ("site", "sample", "report")

# field: (中文, English), for refusals that name the field
LABELS = {
    "interferer_name": ("干预人姓名", "the interferer's name"),
    "interferer_position": ("职务", "position"),
    "interferer_organisation": ("单位", "organisation"),
    "interferer_username": ("干预人用户名", "the interferer's username"),
    "occurred_at": ("发生时间", "the time it happened"),
    "channel": ("干预方式", "channel"),
    "request_kind": ("干预要求类别", "kind of request"),
    "what_was_asked": ("干预内容", "what was asked"),
    "lab_response": ("本室处理", "what the lab did"),
    "response_detail": ("处理说明", "details of the response"),
    "witnesses": ("见证人", "witnesses"),
    "text": ("说明", "text"),
    "reported_to": ("报告对象", "reported to"),
    "reported_on": ("报告日期", "reported on"),
}

# ---------------------------------------------------------------- attachments: what is accepted

AUDIO_MP4_BRANDS = (b"M4A ", b"M4B ", b"mp42", b"mp41", b"isom", b"iso2", b"3gp4", b"3gp5")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ATTACHMENT_TYPES = ("application/pdf", "image/jpeg", "image/png", "audio/mpeg", "audio/mp4", "audio/wav",
                    "audio/amr", DOCX)


def sniff_attachment(head: bytes) -> str | None:
    """The media type by the leading bytes (letters, photos, recordings, Word documents); a
    file's name or the browser's claim is not trusted. A zip is only a candidate DOCX until its
    contents are checked (`_is_docx`)."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if head[4:8] == b"ftyp" and head[8:12] in AUDIO_MP4_BRANDS:
        return "audio/mp4"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"PK\x03\x04"):
        return DOCX
    return None


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "word/document.xml" in names and "[Content_Types].xml" in names


def attachment_limit(session: Session) -> int:
    """Bytes one attachment may have (the app's upload limit)."""
    return settings_of(session).max_upload_mb * 1024 * 1024


def attachment_store(session: Session) -> FileStore:
    return file_store(settings_of(session).ensure_data_dir())


# ---------------------------------------------------------------- what a filer types


@dataclass(frozen=True)
class InterferenceInput:
    """A record as filed; numbers are typed (WS01, WS01-261203-01, BG2026-0002), not ids."""

    interferer_name: str
    channel: str
    request_kind: str
    what_was_asked: str
    lab_response: str
    occurred_at: datetime | None = None
    interferer_position: str = ""
    interferer_organisation: str = ""
    interferer_username: str = ""
    response_detail: str = ""
    witnesses: str = ""
    restricted: bool = False
    site_codes: Sequence[str] = ()
    sample_nos: Sequence[str] = ()
    report_nos: Sequence[str] = ()


NUMBER_SPLIT = re.compile(r"[\s,，;；、]+")


def split_numbers(text: str) -> tuple[str, ...]:
    """Numbers typed in one box, separated by commas, spaces or new lines, each once."""
    seen: dict[str, None] = {}
    for part in NUMBER_SPLIT.split(text or ""):
        if part.strip():
            seen.setdefault(part.strip(), None)
    return tuple(seen)


def _text(value: str | None, name: str, limit: int, *, required: bool = False) -> str:
    cleaned = (value or "").strip()
    zh, en = LABELS[name]
    if required and not cleaned:
        raise errors.InterferenceFieldRequired(label_zh=zh, label_en=en)
    if len(cleaned) > limit:
        raise errors.InterferenceFieldTooLong(label_zh=zh, label_en=en, limit=limit)
    return cleaned


def _choice(value: str | None, name: str, choices: tuple[str, ...]) -> str:
    cleaned = (value or "").strip()
    zh, en = LABELS[name]
    if not cleaned:
        raise errors.InterferenceFieldRequired(label_zh=zh, label_en=en)
    if cleaned not in choices:
        raise errors.InterferenceBadChoice(label_zh=zh, label_en=en, value=cleaned[:40])
    return cleaned


# ---------------------------------------------------------------- who sees what


@dataclass(frozen=True)
class _ActorRef:
    """Who acted, kept apart from the session so a refusal can be recorded after a rollback."""

    id: int | None
    username: str


def oversees(session: Session, actor: User) -> bool:
    return Permission.INTERFERENCE_OVERSEE in permissions_of(roles_at(session, actor.id))


def _reads_unrestricted(session: Session, actor: User) -> bool:
    return Permission.INTERFERENCE_UNRESTRICTED in permissions_of(roles_at(session, actor.id))


def can_see(session: Session, actor: User, record: InterferenceRecord) -> bool:
    """§6: the interferer never; the filer their own; overseers (QM, inspector) every record;
    the lab head every record not restricted by its filer; no one else."""
    if record.interferer_user_id is not None and record.interferer_user_id == actor.id:
        return False
    if record.filed_by_id == actor.id or oversees(session, actor):
        return True
    return not record.restricted and _reads_unrestricted(session, actor)


def visible_clause(session: Session, actor: User) -> ColumnElement[bool]:
    """`can_see` as SQL, for lists, counts, trends and exports."""
    not_interferer = or_(InterferenceRecord.interferer_user_id.is_(None),
                         InterferenceRecord.interferer_user_id != actor.id)
    if oversees(session, actor):
        return not_interferer
    own = InterferenceRecord.filed_by_id == actor.id
    if _reads_unrestricted(session, actor):
        return and_(not_interferer, or_(own, InterferenceRecord.restricted.is_(False)))
    return and_(not_interferer, own)


def _find(session: Session, record_no: str) -> InterferenceRecord | None:
    number = (record_no or "").strip()[:20]
    return session.scalars(select(InterferenceRecord).where(InterferenceRecord.record_no == number)).first()


def get_record(session: Session, actor: User, record_no: str) -> InterferenceRecord:
    """The record if the actor may see it; otherwise not found, as if there were none."""
    ensure(session, actor, Permission.INTERFERENCE_READ)
    record = _find(session, record_no)
    if record is None or not can_see(session, actor, record):
        raise errors.InterferenceNotFound(record_no=(record_no or "").strip()[:20])
    return record


def _ensure_visible(session: Session, actor: User, record: InterferenceRecord) -> None:
    if not can_see(session, actor, record):
        raise errors.InterferenceNotFound(record_no=record.record_no)


# ---------------------------------------------------------------- content for the audit trail


def record_content(record: InterferenceRecord, targets: Iterable[InterferenceTarget] = (),
                   attachments: Iterable[tuple[InterferenceAttachment, StoredFile]] = ()) -> dict[str, Any]:
    return {
        "record_no": record.record_no,
        "occurred_at": record.occurred_at.astimezone(UTC).isoformat(),
        "interferer_name": record.interferer_name,
        "interferer_position": record.interferer_position,
        "interferer_organisation": record.interferer_organisation,
        "interferer_user_id": record.interferer_user_id,
        "channel": record.channel,
        "request_kind": record.request_kind,
        "what_was_asked": record.what_was_asked,
        "lab_response": record.lab_response,
        "response_detail": record.response_detail,
        "witnesses": record.witnesses,
        "restricted": record.restricted,
        "filed_by_id": record.filed_by_id,
        "targets": [{"type": t.target_type, "id": t.target_id, "label": t.label} for t in targets],
        "attachments": _attachment_content(attachments),
    }


def _attachment_content(attachments: Iterable[tuple[InterferenceAttachment, StoredFile]]) -> list[dict[str, Any]]:
    return [{"sha256": a.sha256, "filename": f.filename, "media_type": f.media_type, "size": f.size}
            for a, f in attachments]


# ---------------------------------------------------------------- filing


def _resolve_targets(session: Session, form: InterferenceInput) -> list[InterferenceTarget]:
    """Typed numbers to ids, one query per kind; every unknown number is named at once."""
    wanted = [("site", Site, Site.code, form.site_codes), ("sample", Sample, Sample.sample_no, form.sample_nos),
              ("report", Report, Report.report_no, form.report_nos)]
    total = sum(len(numbers) for *_, numbers in wanted)
    if total > MAX_TARGETS:
        raise errors.TooManyTargets(limit=MAX_TARGETS)
    targets: list[InterferenceTarget] = []
    unknown: list[str] = []
    for kind, model, column, numbers in wanted:
        cleaned = [n.strip()[:60] for n in numbers if n and n.strip()]
        if not cleaned:
            continue
        found = dict(session.execute(select(column, model.id).where(column.in_(cleaned))).all())
        for number in dict.fromkeys(cleaned):
            if number in found:
                targets.append(InterferenceTarget(target_type=kind, target_id=found[number], label=number))
            else:
                unknown.append(number)
    if unknown:
        raise errors.UnknownTargets(numbers=", ".join(unknown))
    return targets


def _store_attachments(session: Session, actor: User, record: InterferenceRecord,
                       uploads: Sequence[Upload], supplement: InterferenceSupplement | None = None
                       ) -> list[tuple[InterferenceAttachment, StoredFile]]:
    """Each upload into the content-addressed store by SHA-256, its type decided by its bytes."""
    uploads = [u for u in uploads if u is not None]
    if not uploads:
        return []
    if len(uploads) > MAX_ATTACHMENTS:
        raise errors.TooManyAttachments(limit=MAX_ATTACHMENTS)
    store, limit, now = attachment_store(session), attachment_limit(session), utcnow()
    stored: list[tuple[InterferenceAttachment, StoredFile]] = []
    for upload in uploads:
        filename = Path(upload.filename or "attachment").name[:255] or "attachment"
        head = upload.stream.read(16)
        if not head:
            raise errors.AttachmentEmpty(filename=filename[:80])
        media_type = sniff_attachment(head)
        if media_type not in ATTACHMENT_TYPES:
            raise errors.AttachmentTypeRefused(filename=filename[:80])
        sha256, size = store.put(upload.stream, limit, prefix=head)
        if media_type == DOCX and not _is_docx(store.path(sha256)):
            raise errors.AttachmentTypeRefused(filename=filename[:80])
        file_row = StoredFile(sha256=sha256, size=size, media_type=media_type, filename=filename,
                              uploaded_at=now, uploaded_by_id=actor.id)
        session.add(file_row)
        session.flush()
        attachment = InterferenceAttachment(record_id=record.id, supplement_id=supplement.id if supplement else None,
                                            file_id=file_row.id, sha256=sha256, added_at=now, added_by_id=actor.id)
        session.add(attachment)
        stored.append((attachment, file_row))
    session.flush()
    return stored


def file_interference(session: Session, actor: User, form: InterferenceInput,
                      attachments: Sequence[Upload] = ()) -> InterferenceRecord:
    """File a record (§6): any lab user, no approval, nothing can hold it back."""
    ensure(session, actor, Permission.INTERFERENCE_FILE)
    now = utcnow()
    occurred_at = form.occurred_at
    if occurred_at is None:
        zh, en = LABELS["occurred_at"]
        raise errors.InterferenceFieldRequired(label_zh=zh, label_en=en)
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=lab_calendar(session).tz)
    if occurred_at > now + CLOCK_SKEW:
        raise errors.InterferenceInFuture()
    if occurred_at.year < 1900:
        raise errors.InterferenceBadTime(value=occurred_at.isoformat()[:32])
    interferer_user_id = None
    username = _text(form.interferer_username, "interferer_username", 64).lower()
    if username:
        interferer_user_id = session.scalars(select(User.id).where(func.lower(User.username) == username)).first()
        if interferer_user_id is None:
            raise errors.UnknownInterfererUser(username=username[:64])
    record = InterferenceRecord(
        record_no="",
        occurred_at=occurred_at,
        interferer_name=_text(form.interferer_name, "interferer_name", 100, required=True),
        interferer_position=_text(form.interferer_position, "interferer_position", 100),
        interferer_organisation=_text(form.interferer_organisation, "interferer_organisation", 200),
        interferer_user_id=interferer_user_id,
        channel=_choice(form.channel, "channel", CHANNELS),
        request_kind=_choice(form.request_kind, "request_kind", REQUEST_KINDS),
        what_was_asked=_text(form.what_was_asked, "what_was_asked", MAX_TEXT, required=True),
        lab_response=_choice(form.lab_response, "lab_response", LAB_RESPONSES),
        response_detail=_text(form.response_detail, "response_detail", MAX_TEXT),
        witnesses=_text(form.witnesses, "witnesses", 500),
        restricted=bool(form.restricted),
        filed_at=now,
        filed_by_id=actor.id,
    )
    targets = _resolve_targets(session, form)
    if len([u for u in attachments if u is not None]) > MAX_ATTACHMENTS:
        raise errors.TooManyAttachments(limit=MAX_ATTACHMENTS)
    from app.core.codes import next_code

    record.record_no = next_code(session, RECORD_PREFIX, now)
    session.add(record)
    session.flush()
    for target in targets:
        target.record_id = record.id
        session.add(target)
    stored = _store_attachments(session, actor, record, attachments)
    session.flush()
    audit.append(session, actor, "oversight.interference_filed", "interference_record", record.id, None,
                 record_content(record, targets, stored))
    return record


# ---------------------------------------------------------------- additions


def state_of(kinds: Iterable[str]) -> str:
    """The state read from the supplements' kinds (filed → acknowledged → reported)."""
    kinds = set(kinds)
    if SupplementKind.REPORTED.value in kinds:
        return InterferenceState.REPORTED
    if SupplementKind.ACKNOWLEDGED.value in kinds:
        return InterferenceState.ACKNOWLEDGED
    return InterferenceState.FILED


def current_state(session: Session, record: InterferenceRecord) -> str:
    return state_of(session.scalars(select(InterferenceSupplement.kind).where(
        InterferenceSupplement.record_id == record.id)).all())


def _supplement(session: Session, actor: User, record: InterferenceRecord, kind: SupplementKind, text: str,
                *, reported_to: str = "", reported_on: date | None = None) -> InterferenceSupplement:
    row = InterferenceSupplement(record_id=record.id, kind=kind.value, text=text, reported_to=reported_to,
                                 reported_on=reported_on, recorded_at=utcnow(), recorded_by_id=actor.id)
    session.add(row)
    session.flush()
    return row


def _supplement_content(record: InterferenceRecord, row: InterferenceSupplement, state_before: str, state_after: str,
                        attachments: Iterable[tuple[InterferenceAttachment, StoredFile]] = ()) -> dict[str, Any]:
    return {"record_no": record.record_no, "supplement_id": row.id, "kind": row.kind, "text": row.text,
            "reported_to": row.reported_to, "reported_on": row.reported_on.isoformat() if row.reported_on else None,
            "state_before": state_before, "state": state_after, "attachments": _attachment_content(attachments)}


def add_supplement(session: Session, actor: User, record: InterferenceRecord, text: str,
                   attachments: Sequence[Upload] = ()) -> InterferenceSupplement:
    """More facts or a correction, appended (the record itself never changes): its filer or the
    quality manager."""
    ensure(session, actor, Permission.INTERFERENCE_FILE)
    _ensure_visible(session, actor, record)
    if record.filed_by_id != actor.id:
        ensure(session, actor, Permission.INTERFERENCE_FOLLOW_UP)
    text = _text(text, "text", MAX_TEXT, required=True)
    state = current_state(session, record)
    row = _supplement(session, actor, record, SupplementKind.SUPPLEMENT, text)
    stored = _store_attachments(session, actor, record, attachments, row)
    audit.append(session, actor, "oversight.interference_supplemented", "interference_record", record.id,
                 {"state": state}, _supplement_content(record, row, state, state, stored))
    return row


def acknowledge(session: Session, actor: User, record: InterferenceRecord, text: str = "") -> InterferenceSupplement:
    """The quality manager has read the record (filed → acknowledged)."""
    ensure(session, actor, Permission.INTERFERENCE_FOLLOW_UP)
    _ensure_visible(session, actor, record)
    state = current_state(session, record)
    if state != InterferenceState.FILED:
        raise errors.AlreadyAcknowledged(record_no=record.record_no)
    row = _supplement(session, actor, record, SupplementKind.ACKNOWLEDGED, _text(text, "text", MAX_TEXT))
    audit.append(session, actor, "oversight.interference_acknowledged", "interference_record", record.id,
                 {"state": state}, _supplement_content(record, row, state, InterferenceState.ACKNOWLEDGED))
    return row


def record_reported(session: Session, actor: User, record: InterferenceRecord, reported_to: str,
                    reported_on: date | None, text: str = "") -> InterferenceSupplement:
    """The quality manager reported the record to an authority (the Party committee, the higher
    environmental authority, discipline inspection): to whom, when, by whom (→ reported). A record
    may be reported to several authorities, one supplement each."""
    ensure(session, actor, Permission.INTERFERENCE_FOLLOW_UP)
    _ensure_visible(session, actor, record)
    reported_to = _text(reported_to, "reported_to", 200, required=True)
    if reported_on is None:
        zh, en = LABELS["reported_on"]
        raise errors.InterferenceFieldRequired(label_zh=zh, label_en=en)
    if reported_on > lab_calendar(session).today() + timedelta(days=1):
        raise errors.InterferenceInFuture()
    state = current_state(session, record)
    row = _supplement(session, actor, record, SupplementKind.REPORTED, _text(text, "text", MAX_TEXT),
                      reported_to=reported_to, reported_on=reported_on)
    audit.append(session, actor, "oversight.interference_reported", "interference_record", record.id,
                 {"state": state}, _supplement_content(record, row, state, InterferenceState.REPORTED))
    return row


# ---------------------------------------------------------------- no edit, no delete


def refuse_change(session: Session, actor: User, record_no: str, attempt: str) -> NoReturn:
    """Every attempt to edit or delete a record is refused and the attempt kept in the audit
    trail (issue 10, bad input); the database triggers refuse it too, should anyone go around."""
    if attempt not in ("edit", "delete"):
        raise ValueError(attempt)
    record = _find(session, record_no)
    number = (record_no or "").strip()[:20]
    if record is None:
        raise errors.InterferenceNotFound(record_no=number)
    who, record_id, visible = _ActorRef(actor.id, actor.username), record.id, can_see(session, actor, record)

    def keep(s: Session) -> None:
        audit.append(s, who, f"oversight.interference_{attempt}_refused", "interference_record", record_id, None,
                     {"record_no": number, "attempt": attempt})

    if not visible:
        raise errors.HiddenInterferenceRefused(record=keep, record_no=number)
    raise errors.InterferenceImmutable(record=keep, record_no=number)


# ---------------------------------------------------------------- the register


@dataclass(frozen=True)
class RegisterFilter:
    state: str = ""
    channel: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def params(self) -> dict[str, str]:
        return {"state": self.state, "channel": self.channel,
                "date_from": self.date_from.isoformat() if self.date_from else "",
                "date_to": self.date_to.isoformat() if self.date_to else ""}


@dataclass(frozen=True)
class RegisterRow:
    record: InterferenceRecord
    filer: User
    state: str
    attachments: int
    targets: int


def _has_kind(kind: SupplementKind) -> ColumnElement[bool]:
    return exists().where(InterferenceSupplement.record_id == InterferenceRecord.id,
                          InterferenceSupplement.kind == kind.value)


def state_expression() -> ColumnElement[str]:
    return case((_has_kind(SupplementKind.REPORTED), InterferenceState.REPORTED),
                (_has_kind(SupplementKind.ACKNOWLEDGED), InterferenceState.ACKNOWLEDGED),
                else_=InterferenceState.FILED)


def _register(session: Session, actor: User, filters: RegisterFilter):
    if filters.state and filters.state not in STATES:
        raise errors.InterferenceBadChoice(label_zh="状态", label_en="state", value=filters.state[:20])
    if filters.channel and filters.channel not in CHANNELS:
        raise errors.InterferenceBadChoice(label_zh="干预方式", label_en="channel", value=filters.channel[:20])
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise errors.InterferenceBadChoice(label_zh="期间", label_en="period",
                                           value=f"{filters.date_from} > {filters.date_to}")
    filer = aliased(User)
    state = state_expression().label("state")
    attachments = (select(func.count(InterferenceAttachment.id))
                   .where(InterferenceAttachment.record_id == InterferenceRecord.id)
                   .correlate(InterferenceRecord).scalar_subquery())
    targets = (select(func.count(InterferenceTarget.id)).where(InterferenceTarget.record_id == InterferenceRecord.id)
               .correlate(InterferenceRecord).scalar_subquery())
    stmt = (select(InterferenceRecord, filer, state, attachments.label("attachments"), targets.label("targets"))
            .join(filer, filer.id == InterferenceRecord.filed_by_id)
            .where(visible_clause(session, actor))
            .order_by(InterferenceRecord.occurred_at.desc(), InterferenceRecord.id.desc()))
    if filters.state:
        stmt = stmt.where(state_expression() == filters.state)
    if filters.channel:
        stmt = stmt.where(InterferenceRecord.channel == filters.channel)
    calendar = lab_calendar(session)
    if filters.date_from:
        stmt = stmt.where(InterferenceRecord.occurred_at >= calendar.start_of(filters.date_from))
    if filters.date_to:
        stmt = stmt.where(InterferenceRecord.occurred_at < calendar.start_of(filters.date_to + timedelta(days=1)))
    return stmt


def list_records(session: Session, actor: User, filters: RegisterFilter = RegisterFilter(), page: int = 1,
                 size: int = 50) -> Page[RegisterRow]:
    """What the reader may see, newest first: one query for the page and one for the count."""
    ensure(session, actor, Permission.INTERFERENCE_READ)
    stmt = _register(session, actor, filters)
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(size).offset((page - 1) * size)).all()
    return Page([RegisterRow(r, u, s, a, t) for r, u, s, a, t in rows], page, size, total)


def to_acknowledge(session: Session, actor: User) -> int:
    """The quality manager's worklist: visible records nobody has acknowledged yet."""
    if Permission.INTERFERENCE_FOLLOW_UP not in permissions_of(roles_at(session, actor.id)):
        return 0
    stmt = (select(func.count(InterferenceRecord.id)).where(visible_clause(session, actor))
            .where(~_has_kind(SupplementKind.ACKNOWLEDGED), ~_has_kind(SupplementKind.REPORTED)))
    return session.scalar(stmt) or 0


# ---------------------------------------------------------------- one record, in full


@dataclass
class RecordDetail:
    record: InterferenceRecord
    filer: User
    interferer_user: User | None
    state: str
    targets: list[InterferenceTarget]
    supplements: list[tuple[InterferenceSupplement, User]]
    attachments: list[tuple[InterferenceAttachment, StoredFile, User]]
    reported: list[InterferenceSupplement] = field(default_factory=list)


def _details(session: Session, records: Sequence[InterferenceRecord]) -> dict[int, RecordDetail]:
    """Full details of many records in a fixed number of queries (pages, exports, the API)."""
    if not records:
        return {}
    ids = [r.id for r in records]
    user_ids = {r.filed_by_id for r in records} | {r.interferer_user_id for r in records if r.interferer_user_id}
    targets = session.scalars(select(InterferenceTarget).where(InterferenceTarget.record_id.in_(ids))
                              .order_by(InterferenceTarget.id)).all()
    recorder = aliased(User)
    supplements = session.execute(
        select(InterferenceSupplement, recorder).join(recorder, recorder.id == InterferenceSupplement.recorded_by_id)
        .where(InterferenceSupplement.record_id.in_(ids)).order_by(InterferenceSupplement.id)).all()
    adder = aliased(User)
    attachments = session.execute(
        select(InterferenceAttachment, StoredFile, adder)
        .join(StoredFile, StoredFile.id == InterferenceAttachment.file_id)
        .join(adder, adder.id == InterferenceAttachment.added_by_id)
        .where(InterferenceAttachment.record_id.in_(ids)).order_by(InterferenceAttachment.id)).all()
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    out = {r.id: RecordDetail(r, users[r.filed_by_id], users.get(r.interferer_user_id or -1), "", [], [], [])
           for r in records}
    for target in targets:
        out[target.record_id].targets.append(target)
    for supplement, user in supplements:
        out[supplement.record_id].supplements.append((supplement, user))
        if supplement.kind == SupplementKind.REPORTED.value:
            out[supplement.record_id].reported.append(supplement)
    for attachment, stored, user in attachments:
        out[attachment.record_id].attachments.append((attachment, stored, user))
    for detail in out.values():
        detail.state = state_of(s.kind for s, _ in detail.supplements)
    return out


def record_detail(session: Session, actor: User, record_no: str) -> RecordDetail:
    record = get_record(session, actor, record_no)
    return _details(session, [record])[record.id]


def attachment_of(session: Session, actor: User, record_no: str, attachment_id: int
                  ) -> tuple[InterferenceAttachment, StoredFile]:
    """An attachment of a record the actor may see (else not found)."""
    record = get_record(session, actor, record_no)
    row = session.execute(select(InterferenceAttachment, StoredFile)
                          .join(StoredFile, StoredFile.id == InterferenceAttachment.file_id)
                          .where(InterferenceAttachment.id == attachment_id,
                                 InterferenceAttachment.record_id == record.id)).first()
    if row is None:
        raise errors.InterferenceNotFound(record_no=record.record_no)
    return row[0], row[1]


EXPORT_LIMIT = 10_000


def register_for_export(session: Session, actor: User, filters: RegisterFilter) -> list[RecordDetail]:
    """Every record the overseer may see under the filters, in full (oldest first, as a
    register reads), in a fixed number of queries."""
    ensure(session, actor, Permission.INTERFERENCE_OVERSEE)
    stmt = _register(session, actor, filters).order_by(None).order_by(InterferenceRecord.occurred_at,
                                                                      InterferenceRecord.id)
    records = [row[0] for row in session.execute(stmt.limit(EXPORT_LIMIT)).all()]
    details = _details(session, records)
    return [details[r.id] for r in records]


def record_export(session: Session, actor: User, filters: RegisterFilter, fmt: str, count: int) -> None:
    """An export leaves its trace: who took which part of the register, in which format."""
    audit.append(session, actor, "oversight.interference_exported", "interference_register", fmt, None,
                 {"format": fmt, "records": count, "filters": filters.params()})
