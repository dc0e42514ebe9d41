"""Read models of samples for the pages and the API: the worklist (filters, search by sample
number or container barcode, a page in three queries whatever its length) and one sample with
its site, task, people, parameters, containers and QC links (a fixed handful of queries).

Field QC samples are shown for what they are here (the link from a duplicate to its original is
visible to checkers, reviewers and the quality manager); hiding it from analysts belongs to the
analysis pages, which never list sample kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from app.core.web import Page
from app.people.models import User
from app.samples.models import Container, Sample, SampleKind, SampleParameter, SampleState
from app.samples.registration import CONTAINER_RE, clean_container_barcode, containers_of
from app.sites.models import SamplingTask, Site, SiteVersion

STATES = tuple(s.value for s in SampleState)
KINDS = tuple(k.value for k in SampleKind)


@dataclass(frozen=True)
class SampleFilters:
    q: str = ""  # a sample number (or its beginning) or a container barcode
    state: str = ""
    kind: str = ""
    day_from: date | None = None
    day_to: date | None = None
    site: str = ""  # site code
    task: str = ""  # task code

    def as_params(self) -> dict[str, str]:
        return {"q": self.q, "state": self.state, "kind": self.kind,
                "day_from": self.day_from.isoformat() if self.day_from else "",
                "day_to": self.day_to.isoformat() if self.day_to else "", "site": self.site, "task": self.task}


@dataclass(frozen=True)
class SampleRow:
    sample: Sample
    site_code: str
    site_name_zh: str
    site_name_en: str
    task_code: str
    sampler_zh: str
    sampler_en: str
    sampler_username: str = ""
    containers: list[Container] = field(default_factory=list)


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _filtered(filters: SampleFilters) -> Select:
    sampler = aliased(User)
    stmt = (select(Sample, Site.code, SiteVersion.name_zh, SiteVersion.name_en, SamplingTask.code,
                   sampler.display_name_zh, sampler.display_name_en, sampler.username)
            .outerjoin(Site, Site.id == Sample.site_id)
            .outerjoin(SiteVersion, SiteVersion.id == Site.current_version_id)
            .outerjoin(SamplingTask, SamplingTask.id == Sample.task_id)
            .outerjoin(sampler, sampler.id == Sample.sampler_id))
    conditions = []
    text = filters.q.strip()
    if text:
        code = clean_container_barcode(text)
        matches = [Sample.sample_no.like(_like_prefix(text), escape="\\"),
                   Sample.sample_no.like(_like_prefix(text.upper()), escape="\\")]
        if CONTAINER_RE.match(code):
            matches.append(Sample.id == select(Container.sample_id).where(Container.barcode == code).scalar_subquery())
        conditions.append(or_(*matches))
    if filters.state:
        conditions.append(Sample.state == filters.state)
    if filters.kind:
        conditions.append(Sample.kind == filters.kind)
    if filters.day_from:
        conditions.append(Sample.scheduled_on >= filters.day_from)
    if filters.day_to:
        conditions.append(Sample.scheduled_on <= filters.day_to)
    if filters.site.strip():
        conditions.append(func.upper(Site.code) == filters.site.strip().upper())
    if filters.task.strip():
        conditions.append(SamplingTask.code == filters.task.strip().upper())
    return stmt.where(and_(*conditions)) if conditions else stmt


def search_samples(session: Session, filters: SampleFilters, *, page: int = 1, size: int = 50) -> Page[SampleRow]:
    """A page of the worklist, newest sampling day first: count, rows, containers."""
    stmt = _filtered(filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page = max(1, min(page, max(1, -(-total // size))))
    rows = session.execute(stmt.order_by(Sample.scheduled_on.desc(), Sample.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    containers = containers_of(session, [row[0].id for row in rows]) if rows else {}
    items = [SampleRow(sample, code or "", name_zh or "", name_en or "", task or "", zh or "", en or "",
                       username or "", containers.get(sample.id, []))
             for sample, code, name_zh, name_en, task, zh, en, username in rows]
    return Page(items, page, size, total)


@dataclass(frozen=True)
class SampleDetail:
    sample: Sample
    site: Site | None
    site_version: SiteVersion | None  # bound at signing, else the site's current version
    task: SamplingTask | None
    sampler: User | None
    registered_by: User | None
    parameters: list[str]
    containers: list[Container]
    duplicate_of: str  # the original's number, for a field duplicate
    duplicates: list[str]  # numbers of this sample's field duplicates
    companions: list[tuple[str, str]]  # (number, kind) of the other samples of its task


def sample_detail(session: Session, sample: Sample) -> SampleDetail:
    """One sample and what its page shows: six queries."""
    site = site_version = task = None
    if sample.site_id is not None:
        site = session.get(Site, sample.site_id)
        version_id = sample.site_version_id or (site.current_version_id if site else None)
        site_version = session.get(SiteVersion, version_id) if version_id else None
    if sample.task_id is not None:
        task = session.get(SamplingTask, sample.task_id)
    people = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_({i for i in (sample.sampler_id, sample.registered_by_id) if i is not None})))}
    parameters = list(session.scalars(select(SampleParameter.parameter).where(SampleParameter.sample_id == sample.id)
                                      .order_by(SampleParameter.id)))
    containers = containers_of(session, [sample.id])[sample.id]
    related = [Sample.duplicate_of_id == sample.id]
    if sample.duplicate_of_id is not None:
        related.append(Sample.id == sample.duplicate_of_id)
    if sample.task_id is not None:
        related.append(Sample.task_id == sample.task_id)
    others = session.execute(select(Sample.id, Sample.sample_no, Sample.kind, Sample.duplicate_of_id)
                             .where(or_(*related), Sample.id != sample.id).order_by(Sample.sample_no)).all()
    original = next((no for i, no, _k, _d in others if i == sample.duplicate_of_id), "")
    return SampleDetail(
        sample=sample, site=site, site_version=site_version, task=task, sampler=people.get(sample.sampler_id),
        registered_by=people.get(sample.registered_by_id), parameters=parameters, containers=containers,
        duplicate_of=original, duplicates=[no for _i, no, _k, dup in others if dup == sample.id],
        companions=[(no, kind) for _i, no, kind, _d in others if sample.task_id is not None])
