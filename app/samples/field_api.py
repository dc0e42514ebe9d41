"""The field-record JSON API (bearer token or the phone's session): field entries one at a time
or as a queued list, photos, the record as it folds, and the sampler's signature.

Entries are idempotent on their own `client_id` (the phone makes one per act); an entry sent
without one takes an id derived from the request's `Idempotency-Key` and its position, so a
retried request maps to the same ids. A list is applied in order, each entry on its own: the
answer says per entry whether it was recorded, a duplicate of one recorded before, or refused
and why; one refused entry never loses the others. Numbers travel as strings or JSON numbers
(read as Decimal, never through a float) and come back as strings; times are ISO 8601 with
their offset.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.auth import DbSession, require
from app.core.db import committing
from app.core.errors import DomainError, InvalidInput
from app.core.files import StoredFile, file_store
from app.core.i18n import current_language
from app.core.idempotency import clean_key
from app.core.permissions import Permission, has_permission
from app.people.models import User
from app.samples import field, photos
from app.samples import field_errors as errors
from app.samples.models import SamplePhoto
from app.samples.registration import sample_by_no

router = APIRouter(tags=["field record"])

BASE = "/api/v1/samples"
MAX_ENTRIES = 500
SampleNo = Annotated[str, Path(max_length=60)]
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
# who may know which samples are field QC (the analyst stays blind): as the samples API
QC_READERS = (Permission.SITES_MANAGE, Permission.SAMPLES_REGISTER, Permission.FIELD_RECORD,
              Permission.SITES_APPROVE, Permission.AUDIT_READ)
IMMUTABLE = "private, max-age=31536000, immutable"


def text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


# ---------------------------------------------------------------- entries in


class FieldEntryIn(BaseModel):
    """One act in the field, as the phone queued it."""

    model_config = ConfigDict(extra="ignore")

    client_id: str | None = Field(None, max_length=64, description="8–64 of A–Z a–z 0–9 - _, made by the phone")
    sample_no: str = Field(max_length=60)
    kind: str = Field(max_length=20, description="sampling, observation, field_test or container")
    act_at: datetime = Field(description="when it happened, ISO 8601 with its offset")
    reason: str = Field("", max_length=500, description="required after the record was signed")
    gps_status: str | None = Field(None, max_length=20, description="ok, denied, unavailable, unsupported")
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    accuracy_m: Decimal | None = None
    justification: str = Field("", max_length=500)
    weather: str = Field("", max_length=100)
    air_temperature: Decimal | None = None
    observations: str = Field("", max_length=2000)
    parameter: str = Field("", max_length=60)
    value: Decimal | Annotated[str, Field(max_length=60)] = Field("", description="the reading as text, e.g. \"7.62\"")
    unit: str = Field("", max_length=20)
    instrument: str = Field("", max_length=40, description="the field instrument's asset number")
    barcode: str = Field("", max_length=60)
    task_code: str = Field("", max_length=20)

    def entry(self, client_id: str) -> field.FieldEntryInput:
        value = self.value if isinstance(self.value, str) else f"{self.value:f}"
        return field.FieldEntryInput(
            client_id=client_id, sample_no=self.sample_no, kind=self.kind, act_at=self.act_at, reason=self.reason,
            gps_status=self.gps_status, latitude=self.latitude, longitude=self.longitude,
            accuracy_m=self.accuracy_m, justification=self.justification, weather=self.weather,
            air_temperature=self.air_temperature, observations=self.observations, parameter=self.parameter,
            value=value, unit=self.unit, instrument=self.instrument, barcode=self.barcode,
            task_code=self.task_code,
        )


class NotJson(InvalidInput):
    code = "json_expected"
    message_zh = "请求体应为 JSON：一条现场记录（对象）或按顺序排列的多条（数组）。"
    message_en = "A JSON body is expected: one field entry (an object) or several in order (an array)."


class TooManyEntries(InvalidInput):
    code = "too_many_field_entries"
    message_zh = "一次最多提交 {limit} 条现场记录（本次 {count} 条）。"
    message_en = "At most {limit} field entries can be sent at once (this was {count})."


class EntryNotValid(InvalidInput):
    code = "invalid_field_entry"
    message_zh = "现场记录的字段无效：{fields}。"
    message_en = "Invalid fields in the field entry: {fields}."


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


async def posted_json(request: Request) -> Any:
    """The body as JSON with its numbers as Decimal (JSON numbers never pass through a float)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise NotJson()
    try:
        raw = await request.body()
    except RuntimeError:  # a form body already read by the guards
        raise NotJson() from None
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise NotJson() from None


def derived_client_id(user: User, key: str, index: int) -> str:
    """The client id of the `index`-th entry of a request sent with `key` and no client ids."""
    return "k" + hashlib.sha256(f"{user.id}:{key}:{index}".encode()).hexdigest()[:40]


def _parsed(item: Any) -> FieldEntryIn:
    if not isinstance(item, dict):
        raise EntryNotValid(fields="—")
    try:
        return FieldEntryIn.model_validate(item)
    except ValidationError as invalid:
        names = sorted({".".join(str(p) for p in e["loc"]) or "—" for e in invalid.errors()})
        raise EntryNotValid(fields=", ".join(names)[:300]) from None


def _notice(notice: field.FieldNotice | None, language: str) -> dict[str, str] | None:
    return None if notice is None else {"code": notice.code, "message": notice.message(language)}


def entry_json(entry: Any) -> dict[str, Any]:
    payload = json.loads(entry.payload)
    payload.pop("submitted", None)
    return {"id": entry.id, "client_id": entry.client_id, "kind": entry.kind, "act_at": entry.act_at,
            "parameter": entry.parameter, "value": text(entry.value), "unit": entry.unit, "revision": entry.revision,
            "reason": entry.reason, "entered_at": entry.entered_at, "details": payload}


def _apply(session: Session, user: User, item: Any, index: int, key: str | None,
           language: str) -> dict[str, Any]:
    """One entry of a request, on its own savepoint: recorded, duplicate or refused."""
    answer: dict[str, Any] = {"index": index, "client_id": None, "sample_no": None, "status": "refused",
                              "entry": None, "notice": None, "problem": None}
    try:
        parsed = _parsed(item)
        client_id = parsed.client_id or (derived_client_id(user, key, index) if key is not None else "")
        answer.update(client_id=client_id, sample_no=parsed.sample_no)
        with audit.savepoint(session):
            outcome = field.record_field_entry(session, user, parsed.entry(client_id))
    except DomainError as refusal:
        answer["problem"] = field.entry_problem(refusal, language)
        return answer
    answer.update(status="recorded" if outcome.created else "duplicate", entry=entry_json(outcome.entry),
                  notice=_notice(outcome.notice, language))
    return answer


@router.post("/api/v1/field-entries", status_code=200,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "oneOf": [FieldEntryIn.model_json_schema(), {"type": "array",
                                                              "items": FieldEntryIn.model_json_schema()}]}}}}})
def api_record_field_entries(
    session: DbSession, user: User = require(Permission.FIELD_RECORD),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    body: Any = Depends(posted_json),  # after the permission: a stranger learns nothing of the body's shape
) -> Any:
    """Record one field entry (an object: 201 recorded, 200 duplicate, the refusal's problem
    otherwise) or a queue of them (an array or {"entries": [...]}: 200 with one result per
    entry, in order)."""
    key = clean_key(idempotency_key) if idempotency_key is not None else None
    language = current_language()
    if isinstance(body, dict) and isinstance(body.get("entries"), list):
        body = body["entries"]
    if isinstance(body, dict):
        parsed = _parsed(body)
        client_id = parsed.client_id or (derived_client_id(user, key, 0) if key is not None else "")
        with committing(session):
            outcome = field.record_field_entry(session, user, parsed.entry(client_id))
            result = {"index": 0, "client_id": client_id, "sample_no": parsed.sample_no,
                      "status": "recorded" if outcome.created else "duplicate", "entry": entry_json(outcome.entry),
                      "notice": _notice(outcome.notice, language), "problem": None}
        return JSONResponse(_summary([result]), status_code=201 if outcome.created else 200)
    if not isinstance(body, list):
        raise NotJson()
    if len(body) > MAX_ENTRIES:
        raise TooManyEntries(limit=MAX_ENTRIES, count=len(body))
    with committing(session):
        results = [_apply(session, user, item, index, key, language) for index, item in enumerate(body)]
    return JSONResponse(_summary(results))


def _summary(results: list[dict[str, Any]]) -> Any:
    counts = {status: sum(1 for r in results if r["status"] == status) for status in ("recorded", "duplicate",
                                                                                      "refused")}
    return json.loads(json.dumps({"results": results, **counts}, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# ---------------------------------------------------------------- photos


def photo_json(sample_no: str, photo: SamplePhoto, created: bool | None = None) -> dict[str, Any]:
    url = f"{BASE}/{sample_no}/photos/{photo.id}"
    data = {
        "id": photo.id, "client_id": photo.client_id, "sample_no": sample_no, "sha256": photo.sha256,
        "size": photo.size, "width": photo.width, "height": photo.height, "caption": photo.caption,
        "exif_taken_at": photo.exif_taken_at, "exif_latitude": text(photo.exif_latitude),
        "exif_longitude": text(photo.exif_longitude), "time_difference_s": photo.time_difference_s,
        "distance_m": photo.distance_m, "revision": photo.revision, "reason": photo.reason,
        "uploaded_at": photo.uploaded_at, "url": url, "thumbnail_url": f"{url}/thumbnail",
    }
    if created is not None:
        data["created"] = created
    return data


class PhotoMissing(InvalidInput):
    code = "photo_missing"
    message_zh = "请附上照片文件（表单字段 photo）。"
    message_en = "Attach the photo file (form field `photo`)."


@router.post(f"{BASE}/{{sample_no}}/photos", status_code=201)
def api_add_photo(
    request: Request, session: DbSession, sample_no: SampleNo,
    photo: UploadFile | None = File(None, description="a JPEG or PNG, at most max_photo_mb"),
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    caption: Annotated[str, Form(max_length=300)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    user: User = require(Permission.FIELD_RECORD),
) -> Any:
    """Add a photo to the sample's field record (multipart). Idempotent on `client_id` (or the
    `Idempotency-Key`): a repeat with the same bytes answers 200 with the photo kept first."""
    if photo is None or not hasattr(photo, "file"):
        raise PhotoMissing()
    if not client_id and idempotency_key is not None:
        client_id = derived_client_id(user, clean_key(idempotency_key), 0)
    store = file_store(request.app.state.settings.ensure_data_dir())
    with committing(session):
        outcome = photos.add_photo(session, user, store, sample_no=sample_no, client_id=client_id or "",
                                   stream=photo.file, filename=photo.filename or "photo", caption=caption,
                                   reason=reason)
        number = sample_by_no(session, sample_no).sample_no
        data = photo_json(number, outcome.photo, outcome.created)
    return JSONResponse(json.loads(json.dumps(data, default=_json_default)),
                        status_code=201 if outcome.created else 200)


def _photo_of(session: Session, sample_no: str, photo_id: int) -> tuple[SamplePhoto, StoredFile]:
    sample = sample_by_no(session, sample_no)
    found = session.execute(select(SamplePhoto, StoredFile).join(StoredFile, StoredFile.id == SamplePhoto.file_id)
                            .where(SamplePhoto.id == photo_id, SamplePhoto.sample_id == sample.id)).first()
    if found is None:
        raise errors.PhotoNotFound()
    return found[0], found[1]


def _image(request: Request, sha256: str, media_type: str) -> Response:
    if request.headers.get("if-none-match") == f'"{sha256}"':
        return Response(status_code=304, headers={"ETag": f'"{sha256}"', "Cache-Control": IMMUTABLE})
    store = file_store(request.app.state.settings.data_path)
    try:
        content = store.read(sha256)
    except OSError:
        raise errors.PhotoNotFound() from None
    return Response(content, media_type=media_type, headers={"ETag": f'"{sha256}"', "Cache-Control": IMMUTABLE})


@router.get(f"{BASE}/{{sample_no}}/photos/{{photo_id}}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def api_photo(request: Request, session: DbSession, sample_no: SampleNo, photo_id: RowId,
              user: User = require(Permission.SAMPLES_READ)) -> Response:
    """The photo as uploaded (its bytes never change: it is stored by its SHA-256)."""
    photo, stored = _photo_of(session, sample_no, photo_id)
    return _image(request, photo.sha256, stored.media_type)


@router.get(f"{BASE}/{{sample_no}}/photos/{{photo_id}}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def api_photo_thumbnail(request: Request, session: DbSession, sample_no: SampleNo, photo_id: RowId,
                        user: User = require(Permission.SAMPLES_READ)) -> Response:
    """A JPEG of at most 320 px, turned upright."""
    photo, _ = _photo_of(session, sample_no, photo_id)
    return _image(request, photo.thumbnail_sha256, "image/jpeg")


# ---------------------------------------------------------------- the record and the signature


def _signature_json(view: Any) -> dict[str, Any] | None:
    if view is None:
        return None
    sig = view.signature
    return {"id": sig.id, "printed_name": sig.printed_name, "meaning": sig.meaning, "signed_at": sig.signed_at,
            "content_hash": sig.content_hash, "intact": view.intact}


def record_json(record: field.FieldRecordView, sees_qc: bool, language: str) -> dict[str, Any]:
    sample, gps = record.sample, record.gps
    return {
        "sample_no": sample.sample_no, "kind": sample.kind if sees_qc else None, "state": sample.state,
        "task": record.task.code if record.task else None, "site": record.site.code if record.site else None,
        "site_version": None if record.site_version is None else {
            "id": record.site_version.id, "version_no": record.site_version.version_no,
            "name_zh": record.site_version.name_zh, "name_en": record.site_version.name_en,
            "latitude": text(record.site_version.latitude), "longitude": text(record.site_version.longitude)},
        "signed_revision": sample.signed_revision, "collected_at": sample.collected_at,
        "sampling_time": record.sampling_time,
        "gps": None if gps is None else {
            "status": gps.status, "latitude": text(gps.latitude), "longitude": text(gps.longitude),
            "accuracy_m": text(gps.accuracy_m), "distance_m": text(gps.distance_m), "radius_m": gps.radius_m,
            "warning": gps.warning, "at": gps.at},
        "justification": record.justification, "weather": record.weather,
        "air_temperature": text(record.air_temperature),
        "observations": [{"at": o.entry.act_at, "text": o.data.get("observations", "")}
                         for o in record.observations if o.data.get("observations")],
        "field_tests": [{"parameter": t.parameter, "value": text(t.value), "unit": t.unit, "instrument": t.instrument,
                         "measured_at": t.at, "revision": t.revision, "entered_value": t.entered_value,
                         "entered_unit": t.entered_unit, "readings": t.readings} for t in record.field_tests],
        "requested_field_tests": record.requested_field_tests,
        "containers": [{"barcode": c.barcode, "state": c.state, "filled_at": c.filled_at} for c in record.containers],
        "photos": [{**photo_json(sample.sample_no, p.photo), "flagged": p.flagged,
                    "time_difference_s": p.time_difference_s, "distance_m": p.distance_m} for p in record.photos],
        "revisions": [{"number": r.number, "reasons": r.reasons, "signature": _signature_json(r.signature),
                       "entries": [{**entry_json(e.entry), "entered_by": e.entered_by} for e in r.entries],
                       "photo_ids": [p.photo.id for p in r.photos]} for r in record.revisions],
        "missing": [{"code": m.code, "message": m.message(language)} for m in record.missing],
        "can_sign": record.can_sign,
    }


@router.get(f"{BASE}/{{sample_no}}/field-record")
def api_field_record(session: DbSession, sample_no: SampleNo,
                     user: User = require(Permission.SAMPLES_READ)) -> Any:
    """The field record as its entries fold it, with every revision and signature (checked)."""
    sample = sample_by_no(session, sample_no)
    record = field.field_record(session, sample)
    sees_qc = any(has_permission(session, user.id, p) for p in QC_READERS)
    data = record_json(record, sees_qc, current_language())
    return JSONResponse(json.loads(json.dumps(data, default=_json_default, ensure_ascii=False)))


class SignIn(BaseModel):
    password: str = Field(max_length=200)


@router.post(f"{BASE}/{{sample_no}}/sign", status_code=201)
def api_sign_field_record(session: DbSession, sample_no: SampleNo, body: SignIn,
                          user: User = require(Permission.FIELD_RECORD)) -> Any:
    """The sampler signs the record (meaning `sampled`), giving the password again."""
    with committing(session):
        sample = sample_by_no(session, sample_no)
        signature = field.sign_field_record(session, user, sample, body.password)
        data = {"sample_no": sample.sample_no, "state": sample.state, "collected_at": sample.collected_at,
                "signed_revision": sample.signed_revision,
                "signature": {"id": signature.id, "printed_name": signature.printed_name,
                              "meaning": signature.meaning, "signed_at": signature.signed_at,
                              "content_hash": signature.content_hash}}
    return JSONResponse(json.loads(json.dumps(data, default=_json_default, ensure_ascii=False)), status_code=201)
