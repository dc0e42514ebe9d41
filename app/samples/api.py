"""The samples JSON API (/api/v1/samples, /api/v1/containers): register client samples (one or a
list, idempotent with an `Idempotency-Key` header), list them with their containers' barcodes,
one sample, its label PDF, and a container by its barcode with clear problem JSON for a wrong
check digit, another object's code, a malformed or an unknown barcode.

Thin like the pages: the read models are in `queries`, the acts in `registration`. Who sees what
a field QC sample is follows the pages (analysts stay blind): `kind` and `duplicate_of` are
null for them. Field records and photos are app.samples.field's API.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.auth import DbSession, require
from app.core.permissions import Permission, has_permission
from app.people.models import User
from app.samples import labels, queries, registration
from app.samples.models import Container, Sample
from app.samples.registration import AdhocSample

router = APIRouter(tags=["samples"])

BASE = "/api/v1/samples"
MAX_PAGE_SIZE = 200
MAX_POSTED = 1000
SCOPE = "samples.register"
QC_READERS = (Permission.SITES_MANAGE, Permission.SAMPLES_REGISTER, Permission.FIELD_RECORD,
              Permission.SITES_APPROVE, Permission.AUDIT_READ)
SampleNo = Annotated[str, Path(max_length=60)]


# ---------------------------------------------------------------- shapes


class SampleIn(BaseModel):
    """A client (ad hoc) sample: at a registered site (`site_code`) or at a described place."""

    client_name: str = Field(max_length=200)
    client_contact: str = Field("", max_length=200)
    site_code: str = Field("", max_length=20)
    location_text: str = Field("", max_length=300)
    matrix: str = Field("water", max_length=16)
    parameters: list[Annotated[str, Field(max_length=60)]] = Field(max_length=60)
    scheduled_on: date
    sampler: str | None = Field(None, max_length=64, description="the sampler's username; none if delivered")
    note: str = Field("", max_length=500)

    def adhoc(self) -> AdhocSample:
        return AdhocSample(client_name=self.client_name, client_contact=self.client_contact,
                           site_code=self.site_code, location_text=self.location_text, matrix=self.matrix,
                           parameters=list(self.parameters), scheduled_on=self.scheduled_on,
                           sampler=self.sampler, note=self.note)


class ContainerOut(BaseModel):
    barcode: str
    position: int
    group_code: str
    container_type: str
    volume_ml: int
    preservative_zh: str
    preservative_en: str
    parameters: list[str]
    state: str
    filled_at: datetime | None


class SampleOut(BaseModel):
    sample_no: str
    kind: str | None  # routine, field_blank, field_duplicate, client; null for those kept blind
    state: str
    matrix: str
    site_code: str | None
    task_code: str | None
    scheduled_on: date
    sampler: str | None  # username
    client_name: str
    location_text: str
    collected_at: datetime | None
    registered_at: datetime
    containers: list[ContainerOut]


class SampleDetailOut(SampleOut):
    parameters: list[str]
    duplicate_of: str | None  # a field duplicate's original; null for those kept blind
    client_contact: str
    note: str
    site_version: int | None  # the version of the site in force when sampled (once signed)


class SamplePage(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int
    items: list[SampleOut]


class SampleList(BaseModel):
    items: list[SampleOut]


class ContainerLookupOut(ContainerOut):
    sample: SampleOut


def container_json(container: Container) -> ContainerOut:
    return ContainerOut(
        barcode=container.barcode, position=container.position, group_code=container.group_code,
        container_type=container.container_type, volume_ml=container.volume_ml,
        preservative_zh=container.preservative_zh, preservative_en=container.preservative_en,
        parameters=json.loads(container.parameters or "[]"), state=container.state,
        filled_at=container.filled_at)


def sample_json(row: queries.SampleRow, sees_qc: bool) -> SampleOut:
    s = row.sample
    return SampleOut(
        sample_no=s.sample_no, kind=s.kind if sees_qc else None, state=s.state, matrix=s.matrix,
        site_code=row.site_code or None, task_code=row.task_code or None, scheduled_on=s.scheduled_on,
        sampler=row.sampler_username or None, client_name=s.client_name, location_text=s.location_text,
        collected_at=s.collected_at, registered_at=s.registered_at,
        containers=[container_json(c) for c in row.containers])


def sees_qc(session: Session, user: User) -> bool:
    return any(has_permission(session, user.id, permission) for permission in QC_READERS)


def rows_of(session: Session, samples: list[Sample]) -> list[queries.SampleRow]:
    """The list rows of freshly registered samples (three queries whatever their number)."""
    from sqlalchemy import select

    from app.sites.models import SamplingTask, Site

    containers = registration.containers_of(session, [s.id for s in samples])
    site_ids = {s.site_id for s in samples if s.site_id}
    sites = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_(site_ids))).all()) if site_ids else {}
    task_ids = {s.task_id for s in samples if s.task_id}
    tasks = dict(session.execute(select(SamplingTask.id, SamplingTask.code)
                                 .where(SamplingTask.id.in_(task_ids))).all()) if task_ids else {}
    sampler_ids = {s.sampler_id for s in samples if s.sampler_id}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(sampler_ids))).all()) \
        if sampler_ids else {}
    return [queries.SampleRow(s, sites.get(s.site_id, ""), "", "", tasks.get(s.task_id, ""), "", "",
                              names.get(s.sampler_id, ""), containers[s.id]) for s in samples]


# ---------------------------------------------------------------- registering


@router.post(BASE, status_code=201, response_model=SampleOut | SampleList)
def api_register_samples(
    request: Request, session: DbSession, body: SampleIn | Annotated[list[SampleIn], Field(max_length=MAX_POSTED)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    user: User = require(Permission.SAMPLES_REGISTER),
) -> Any:
    """Register one client sample (an object) or many (a list, all or nothing). With an
    `Idempotency-Key`, a repeat with the same body answers the first response again, and the
    same key with another body is refused (409)."""
    many = isinstance(body, list)
    rows = body if many else [body]
    payload = [row.model_dump(mode="json") for row in rows] if many else rows[0].model_dump(mode="json")

    def register() -> tuple[int, Any]:
        samples = registration.register_adhoc_samples(session, user, [r.adhoc() for r in rows])
        qc = sees_qc(session, user)
        listed = [sample_json(row, qc) for row in rows_of(session, samples)]
        answer = SampleList(items=listed) if many else listed[0]
        return 201, answer.model_dump(mode="json")

    return idempotency.respond_once(request, session, SCOPE, idempotency_key, user.id, payload, register)


# ---------------------------------------------------------------- reading


@router.get(BASE, response_model=SamplePage)
def api_samples(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    q: str = Query("", max_length=60, description="a sample number (or its beginning) or a container barcode"),
    state: str = Query("", max_length=24, pattern=f"^(|{'|'.join(queries.STATES)})$"),
    kind: str = Query("", max_length=20, pattern=f"^(|{'|'.join(queries.KINDS)})$"),
    site: str = Query("", max_length=20), task: str = Query("", max_length=20),
    day_from: date | None = None, day_to: date | None = None,
    user: User = require(Permission.SAMPLES_READ),
) -> SamplePage:
    """Samples, newest sampling day first, each with its containers and their barcodes."""
    qc = sees_qc(session, user)
    per_page = per_page or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    filters = queries.SampleFilters(q=q, state=state, kind=kind if qc else "", day_from=day_from, day_to=day_to,
                                    site=site, task=task)
    result = queries.search_samples(session, filters, page=page, size=per_page)
    return SamplePage(page=result.page, per_page=result.size, total=result.total, pages=result.pages,
                      items=[sample_json(row, qc) for row in result.items])


@router.get("/api/v1/containers/{container_barcode:path}", response_model=ContainerLookupOut)
def api_container(session: DbSession, container_barcode: Annotated[str, Path(max_length=200)],
                  user: User = require(Permission.SAMPLES_READ)) -> ContainerLookupOut:
    """A container by the barcode on its label (case and spaces forgiven), with its sample.
    422 wrong_check_digit, not_a_container (names what the code is), malformed_barcode;
    404 container_not_found."""
    container = registration.container_by_barcode(session, container_barcode)
    sample = session.get(Sample, container.sample_id)
    row = rows_of(session, [sample])[0]
    return ContainerLookupOut(**container_json(container).model_dump(), sample=sample_json(row, sees_qc(session, user)))


@router.get(f"{BASE}/{{sample_no}}/labels.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def api_sample_labels(
    session: DbSession, sample_no: SampleNo,
    format: str = Query("thermal", pattern="^(thermal|a4)$"),  # noqa: A002 - the parameter's public name
    start: int = Query(1, ge=1, le=24, description="first free position of the first A4 sheet"),
    user: User = require(Permission.SAMPLES_REGISTER),
) -> Response:
    """The sample's container labels: 50 x 30 mm thermal labels or an A4 sheet of 24."""
    sample = registration.sample_by_no(session, sample_no)
    data = labels.labels_pdf(session, [sample], format, start=start)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="labels-{sample.sample_no}.pdf"'})


@router.get(f"{BASE}/{{sample_no}}", response_model=SampleDetailOut)
def api_sample(session: DbSession, sample_no: SampleNo,
               user: User = require(Permission.SAMPLES_READ)) -> SampleDetailOut:
    """One sample with its parameters and containers."""
    sample = registration.sample_by_no(session, sample_no)
    detail = queries.sample_detail(session, sample)
    qc = sees_qc(session, user)
    row = queries.SampleRow(sample, detail.site.code if detail.site else "", "", "",
                            detail.task.code if detail.task else "", "", "",
                            detail.sampler.username if detail.sampler else "", detail.containers)
    base = sample_json(row, qc).model_dump()
    return SampleDetailOut(
        **base, parameters=detail.parameters, duplicate_of=(detail.duplicate_of or None) if qc else None,
        client_contact=sample.client_contact, note=sample.note,
        site_version=detail.site_version.version_no if detail.site_version and sample.site_version_id else None)
