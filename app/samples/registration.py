"""Registering samples: from a sampling task (with its field QC samples) or ad hoc for a client,
one at a time or hundreds at once; and finding a sample by number or a container by barcode.

Every sample gets its number from the lab's pattern (app.samples.numbering), its requested
parameters, and one container per preservation group (app.samples.preservation) with its own
barcode: CT + year + 7 digits + a Luhn check digit (CT26-00012348), so a mistyped or misread
scan is caught before it is looked up. Field blanks and duplicates are numbered like any sample
(the analyst is blind to what they are); within a task the numbers are dealt out in random
order, so the routine sample is not always the first. Registration is bulk all the way down:
numbers and barcodes are reserved in blocks and rows inserted with executemany, so a thousand
samples cost a handful of statements plus their audit events.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import check_digit_ok, reserve_codes, with_check_digit
from app.core.db import utcnow
from app.core.errors import DomainError, InvalidInput
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import errors
from app.samples.models import (
    Container,
    ContainerKind,
    ContainerState,
    PreservationRule,
    Sample,
    SampleKind,
    SampleParameter,
    SampleState,
)
from app.samples.numbering import lab_pattern, reserve_number_blocks
from app.samples.preservation import ContainerNeed, clean_parameters, containers_for, rules_for
from app.sites.models import (
    MATRIX_OF_KIND,
    MonitoringPlan,
    SamplingTask,
    Site,
    SiteStatus,
    SiteVersion,
    TaskStatus,
)

CONTAINER_PREFIX = "CT"
CONTAINER_WIDTH = 7
CONTAINER_RE = re.compile(r"^CT\d{2}-\d{8}$")
MAX_BULK = 10_000
MATRICES = ("water", "air", "soil", "other")
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)

# codes of other objects a scanner may meet, by shape (what it is, zh, en)
OTHER_CODES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^RM\d{2}-\d{5,}$"), "标准物质单元", "a reference-material unit"),
    (re.compile(r"^SS\d{2}-\d{5,}$"), "标准溶液", "a standard solution"),
    (re.compile(r"^RG\d{2}-\d{5,}$"), "试剂", "a reagent"),
    (re.compile(r"^TK\d{2}-\d{5,}$"), "采样任务", "a sampling task"),
    (re.compile(r"^PL\d{2}-\d{5,}$"), "监测计划", "a monitoring plan"),
)


# ---------------------------------------------------------------- lookups


def sample_by_no(session: Session, sample_no: str) -> Sample:
    """The sample numbered `sample_no` (surrounding spaces and letter case forgiven)."""
    text = (sample_no or "").strip()
    if not text or len(text) > 60:
        raise errors.SampleNotFound(sample_no=text[:60] or "—")
    found = session.scalars(select(Sample).where(Sample.sample_no.in_({text, text.upper()}))).first()
    if found is None:
        raise errors.SampleNotFound(sample_no=text)
    return found


def clean_container_barcode(text: str) -> str:
    """Upper case, whitespace removed: what a keyboard or a sloppy scanner may add."""
    return re.sub(r"\s+", "", text or "").upper()


def container_by_barcode(session: Session, text: str) -> Container:
    """The container whose label says `text`, or a refusal saying what is wrong: a wrong check
    digit (mistyped or misread), the code of another kind of object, not a barcode of ours at
    all, or a well-formed barcode that no container carries."""
    code = clean_container_barcode(text)
    if CONTAINER_RE.match(code):
        if not check_digit_ok(code):
            raise errors.WrongCheckDigit(barcode=code)
        container = session.scalars(select(Container).where(Container.barcode == code)).first()
        if container is None:
            raise errors.ContainerNotFound(barcode=code)
        return container
    shown = code[:40] or "—"
    for shape, what_zh, what_en in OTHER_CODES:
        if shape.match(code):
            raise errors.NotAContainer(barcode=code, what_zh=what_zh, what_en=what_en)
    if code and len(code) <= 60:
        raw = (text or "").strip()
        if session.scalar(select(Sample.id).where(Sample.sample_no.in_({raw, code}))) is not None:
            raise errors.NotAContainer(barcode=shown, what_zh="样品编号", what_en="a sample number")
        from app.instruments.models import Instrument

        if session.scalar(select(Instrument.id).where(func.upper(Instrument.asset_no) == code)) is not None:
            raise errors.NotAContainer(barcode=shown, what_zh="仪器设备", what_en="an instrument")
        if session.scalar(select(Site.id).where(func.upper(Site.code) == code)) is not None:
            raise errors.NotAContainer(barcode=shown, what_zh="监测点位", what_en="a monitoring site")
    raise errors.MalformedBarcode(barcode=shown)


def container_labels(session: Session, samples: Sequence[Sample]) -> list[Any]:
    """One label per container of `samples` (app.samples.labels builds them)."""
    from app.samples.labels import container_labels as labels_of

    return labels_of(session, samples)


def containers_of(session: Session, sample_ids: Sequence[int]) -> dict[int, list[Container]]:
    """The containers filled in the field for each sample, in label order: one query. Aliquots
    and sub-samples made in the lab are the preparation's (`app.samples.aliquots`)."""
    found: dict[int, list[Container]] = {sample_id: [] for sample_id in sample_ids}
    if sample_ids:
        rows = session.scalars(select(Container).where(Container.sample_id.in_(list(sample_ids)),
                                                       Container.kind == ContainerKind.CONTAINER.value)
                               .order_by(Container.sample_id, Container.position)).all()
        for row in rows:
            found[row.sample_id].append(row)
    return found


def parameters_of(session: Session, sample_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {sample_id: [] for sample_id in sample_ids}
    if sample_ids:
        rows = session.execute(select(SampleParameter.sample_id, SampleParameter.parameter)
                               .where(SampleParameter.sample_id.in_(list(sample_ids)))
                               .order_by(SampleParameter.sample_id, SampleParameter.id)).all()
        for sample_id, parameter in rows:
            found[sample_id].append(parameter)
    return found


# ---------------------------------------------------------------- the shared bulk core


@dataclass
class _Spec:
    """One sample to register, fully checked."""

    kind: SampleKind
    matrix: str
    site_code: str  # the {site} of its number
    scheduled_on: date
    parameters: list[str]
    needs: list[ContainerNeed]
    site_id: int | None = None
    task_id: int | None = None
    sampler_id: int | None = None
    client_name: str = ""
    client_contact: str = ""
    location_text: str = ""
    note: str = ""
    duplicate_of: int | None = None  # index of the original among the specs
    sample_no: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # for the audit event (task code...)


def _register(session: Session, actor: User, specs: list[_Spec], now: datetime,
              numbers: dict[tuple[str, date], list[str]] | None = None) -> list[Sample]:
    """Number, insert and audit `specs`; returns their samples in the same order. Numbers are
    reserved here unless the caller dealt them (`sample_no` set)."""
    if not specs:
        return []
    if numbers is None:
        numbers = reserve_number_blocks(
            session, [(s.site_code, s.scheduled_on, 1) for s in specs if not s.sample_no], lab_pattern(session))
    handed = {key: iter(values) for key, values in numbers.items()}
    for spec in specs:
        if not spec.sample_no:
            spec.sample_no = next(handed[(spec.site_code, spec.scheduled_on)])
    # originals first, so duplicates can point at them
    samples: list[Sample | None] = [None] * len(specs)
    originals = [i for i, spec in enumerate(specs) if spec.duplicate_of is None]
    duplicates = [i for i, spec in enumerate(specs) if spec.duplicate_of is not None]
    for wave in (originals, duplicates):
        if not wave:
            continue
        rows = [_sample_row(specs[i], samples, actor, now) for i in wave]
        # matched back by number: asking the engine to keep parameter order makes SQLite
        # insert one row per statement
        inserted = {s.sample_no: s for s in session.scalars(insert(Sample).returning(Sample), rows).all()}
        for i in wave:
            samples[i] = inserted[specs[i].sample_no]
    done: list[Sample] = [s for s in samples if s is not None]
    # Core inserts (the ORM's bulk path would rebuild every row as an object state first)
    session.execute(insert(SampleParameter.__table__), [
        {"sample_id": sample.id, "parameter": parameter}
        for sample, spec in zip(done, specs, strict=True) for parameter in spec.parameters])
    total = sum(len(spec.needs) for spec in specs)
    barcodes = iter([with_check_digit(code) for code in reserve_codes(
        session, CONTAINER_PREFIX, now, total, width=CONTAINER_WIDTH)] if total else [])
    container_rows = []
    labelled: list[list[dict[str, Any]]] = []
    listed: dict[tuple[str, ...], str] = {}  # parameters of a group as canonical JSON, once per group
    for sample, spec in zip(done, specs, strict=True):
        mine = []
        for position, need in enumerate(spec.needs, start=1):
            row = {
                "barcode": next(barcodes), "sample_id": sample.id, "position": position,
                "group_code": need.group_code, "container_type": need.container_type, "volume_ml": need.volume_ml,
                "preservative_zh": need.preservative_zh, "preservative_en": need.preservative_en,
                "parameters": listed.get(need.parameters) or listed.setdefault(
                    need.parameters, canonical_json(list(need.parameters))), "state": ContainerState.ISSUED.value,
                "created_at": now,
            }
            mine.append(row)
        container_rows.extend(mine)
        labelled.append(mine)
    if container_rows:
        session.execute(insert(Container.__table__), container_rows)
    for sample, spec, mine in zip(done, specs, labelled, strict=True):
        audit.append(session, actor, "sample.registered", "sample", sample.id, None, {
            "sample_no": sample.sample_no, "kind": sample.kind, "matrix": sample.matrix,
            "site_id": sample.site_id, "task_id": sample.task_id, "duplicate_of_id": sample.duplicate_of_id,
            "scheduled_on": sample.scheduled_on, "sampler_id": sample.sampler_id,
            "client_name": sample.client_name, "location_text": sample.location_text,
            "parameters": spec.parameters, **spec.extra,
            "containers": [[c["barcode"], c["group_code"], c["container_type"]] for c in mine],
        }, at=now)
    return done


def _sample_row(spec: _Spec, samples: list[Sample | None], actor: User, now: datetime) -> dict[str, Any]:
    original = samples[spec.duplicate_of] if spec.duplicate_of is not None else None
    return {
        "sample_no": spec.sample_no, "kind": spec.kind.value, "matrix": spec.matrix, "task_id": spec.task_id,
        "site_id": spec.site_id, "site_version_id": None,
        "duplicate_of_id": original.id if original is not None else None,
        "client_name": spec.client_name, "client_contact": spec.client_contact,
        "location_text": spec.location_text, "scheduled_on": spec.scheduled_on,
        "state": SampleState.REGISTERED.value, "sampler_id": spec.sampler_id, "collected_at": None,
        "signed_revision": 0, "note": spec.note, "registered_at": now, "registered_by_id": actor.id,
    }


class _RuleBook:
    """Preservation rules per parameter set, looked up once per distinct set."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[str, ...], dict[str, PreservationRule]] = {}
        self._needs: dict[tuple[str, ...], list[ContainerNeed]] = {}

    def rules(self, parameters: Sequence[str]) -> dict[str, PreservationRule]:
        key = tuple(p.casefold() for p in parameters)
        if key not in self._cache:
            self._cache[key] = rules_for(self.session, parameters)
        return self._cache[key]

    def needs(self, rules: dict[str, PreservationRule]) -> list[ContainerNeed]:
        """One container per preservation group of `rules` (as `rules` returned them)."""
        key = tuple(rules)
        if key not in self._needs:
            self._needs[key] = containers_for(rules.values())
        return self._needs[key]


# ---------------------------------------------------------------- sites


def assert_site_usable(session: Session, site: Site, at: datetime) -> SiteVersion:
    """The site's version in force at `at`, refused unless the site was active then; the sites
    domain's gate once it exists."""
    try:
        from app.sites.service import assert_site_usable as gate
    except ImportError:
        gate = None
    if gate is not None:
        return gate(session, site, at)
    version = session.scalars(
        select(SiteVersion).where(SiteVersion.site_id == site.id, SiteVersion.valid_from <= at)
        .order_by(SiteVersion.valid_from.desc(), SiteVersion.version_no.desc()).limit(1)).first()
    if version is None or version.status != SiteStatus.ACTIVE.value:
        status = version.status if version is not None else site.status
        raise errors.SiteNotUsable(site=site.code, day=lab_calendar(session).local_date(at).isoformat(),
                                   status=status)
    return version


def _gate_time(session: Session, day: date, now: datetime) -> datetime:
    """When a site must be usable for sampling on `day`: at the start of the day if it lies
    ahead, now if the day has begun (a site approved this morning serves today's tasks)."""
    start = lab_calendar(session).start_of(day)
    return max(start, now)


# ---------------------------------------------------------------- tasks


def dispatch_task(session: Session, actor: User, task: SamplingTask, *, at: datetime | None = None) -> list[Sample]:
    """Register the task's routine sample and its field QC samples (blanks, duplicates linked to
    the routine sample), one container per preservation group each, containers issued; the task
    becomes dispatched."""
    ensure(session, actor, Permission.SAMPLES_REGISTER)
    now = at or utcnow()
    return _dispatch(session, actor, task, now, _RuleBook(session))


def _dispatch(session: Session, actor: User, task: SamplingTask, now: datetime, book: _RuleBook) -> list[Sample]:
    # locked and re-read: of two dispatchers of one task, the second sees it dispatched
    session.execute(select(SamplingTask).where(SamplingTask.id == task.id).with_for_update()
                    .execution_options(populate_existing=True)).scalar_one()
    if task.status != TaskStatus.SCHEDULED.value:
        raise errors.TaskNotScheduled(task=task.code, status=task.status)
    if task.sampler_id is None:
        raise errors.TaskWithoutSampler(task=task.code)
    parameters = clean_parameters(json.loads(task.parameters or "[]"))
    if not parameters:
        raise errors.TaskWithoutParameters(task=task.code)
    site = session.get(Site, task.site_id)
    version = assert_site_usable(session, site, _gate_time(session, task.scheduled_on, now))
    rules = book.rules(parameters)
    matrix = MATRIX_OF_KIND.get(version.kind, "other")
    lab_parameters = list(rules)
    analysed = [p for p, rule in rules.items() if not rule.field_test]
    needs = book.needs(rules)
    common = {"matrix": matrix, "site_code": site.code, "scheduled_on": task.scheduled_on, "site_id": site.id,
              "task_id": task.id, "sampler_id": task.sampler_id, "extra": {"task": task.code}}
    specs = [_Spec(kind=SampleKind.ROUTINE, parameters=lab_parameters, needs=needs, **common)]
    # field blanks: reagent water handled and preserved like the sample, in the same containers
    specs += [_Spec(kind=SampleKind.FIELD_BLANK, parameters=analysed, needs=needs, **common)
              for _ in range(max(0, task.field_blanks))]
    specs += [_Spec(kind=SampleKind.FIELD_DUPLICATE, parameters=lab_parameters, needs=needs, duplicate_of=0, **common)
              for _ in range(max(0, task.field_duplicates))]
    numbers = reserve_number_blocks(session, [(site.code, task.scheduled_on, len(specs))], lab_pattern(session))
    dealt = list(numbers[(site.code, task.scheduled_on)])
    secrets.SystemRandom().shuffle(dealt)  # blind: the routine sample is not always the first number
    for spec, number in zip(specs, dealt, strict=True):
        spec.sample_no = number
    samples = _register(session, actor, specs, now, numbers={})
    before = {"status": task.status, "dispatched_at": None}
    task.status = TaskStatus.DISPATCHED.value
    task.dispatched_at = now
    session.add(task)
    audit.append(session, actor, "task.dispatched", "sampling_task", task.id, before, {
        "code": task.code, "status": task.status, "dispatched_at": now,
        "samples": [s.sample_no for s in samples]}, at=now)
    if task.plan_id is not None:
        from app.sites.plans import mark_plan_active

        plan = session.get(MonitoringPlan, task.plan_id)
        if plan is not None:
            mark_plan_active(session, plan, actor)
    session.flush()
    return samples


def dispatch_day(session: Session, actor: User, day: date, sampler_id: int | None = None,
                 *, at: datetime | None = None) -> list[Sample]:
    """Dispatch every scheduled task of `day` (of one sampler, if given); all or nothing."""
    ensure(session, actor, Permission.SAMPLES_REGISTER)
    now = at or utcnow()
    query = select(SamplingTask).where(SamplingTask.scheduled_on == day,
                                       SamplingTask.status == TaskStatus.SCHEDULED.value)
    if sampler_id is not None:
        query = query.where(SamplingTask.sampler_id == sampler_id)
    book = _RuleBook(session)
    samples: list[Sample] = []
    for task in session.scalars(query.order_by(SamplingTask.code)).all():
        samples += _dispatch(session, actor, task, now, book)
    return samples


def samples_of_task(session: Session, task_id: int) -> list[Sample]:
    return list(session.scalars(select(Sample).where(Sample.task_id == task_id).order_by(Sample.sample_no)).all())


# ---------------------------------------------------------------- ad hoc (client) samples


@dataclass
class AdhocSample:
    """A client sample without a plan: at a registered site or at a described place."""

    client_name: str
    parameters: list[str]
    scheduled_on: date
    client_contact: str = ""
    site_code: str = ""
    location_text: str = ""
    matrix: str = "water"
    sampler: str | None = None  # username
    note: str = ""


def _clean(value: str | None, field_name: str, limit: int, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(detail=f"{field_name} is required")
    if len(text) > limit:
        raise InvalidInput(detail=f"{field_name} is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise InvalidInput(detail=f"{field_name} contains control characters")
    return text


@dataclass
class _AdhocContext:
    """What a batch of ad hoc rows refers to, loaded in one query each."""

    sites: dict[str, Site]
    samplers: dict[str, User]
    book: _RuleBook
    now: datetime
    adhoc_code: str
    usable: dict[tuple[int, date], SiteVersion | DomainError] = field(default_factory=dict)


def _load_context(session: Session, rows: Sequence[AdhocSample], now: datetime) -> _AdhocContext:
    codes = {(r.site_code or "").strip().upper() for r in rows if (r.site_code or "").strip()}
    sites = {}
    if codes:
        sites = {s.code.upper(): s for s in session.scalars(select(Site).where(func.upper(Site.code).in_(codes)))}
    names = {(r.sampler or "").strip() for r in rows if (r.sampler or "").strip()}
    samplers = {}
    if names:
        samplers = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))}
    return _AdhocContext(sites, samplers, _RuleBook(session), now, settings_of(session).adhoc_site_code)


def _adhoc_spec(session: Session, row: AdhocSample, ctx: _AdhocContext) -> _Spec:
    client_name = _clean(row.client_name, "client name", 200, required=True)
    client_contact = _clean(row.client_contact, "client contact", 200)
    location_text = _clean(row.location_text, "location", 300)
    note = _clean(row.note, "note", 500)
    matrix = (row.matrix or "water").strip().lower()
    if matrix not in MATRICES:
        raise InvalidInput(detail=f"matrix must be one of {', '.join(MATRICES)}")
    if not isinstance(row.scheduled_on, date) or not EARLIEST_DAY <= row.scheduled_on <= LATEST_DAY:
        raise InvalidInput(detail=f"sampling day must be between {EARLIEST_DAY} and {LATEST_DAY}")
    parameters = clean_parameters(row.parameters or [])
    if not parameters:
        raise errors.NoParameters()
    if len(parameters) > 60:
        raise InvalidInput(detail="at most 60 parameters per sample")
    rules = ctx.book.rules(parameters)
    foreign = [p for p, rule in rules.items() if rule.matrix != matrix]
    if foreign:
        raise errors.MixedMatrix(parameters="、".join(foreign), matrix=matrix)
    site: Site | None = None
    code = (row.site_code or "").strip()
    if code:
        site = ctx.sites.get(code.upper())
        if site is None:
            raise errors.SiteCodeUnknown(site=code[:30])
        key = (site.id, row.scheduled_on)
        if key not in ctx.usable:
            try:
                ctx.usable[key] = assert_site_usable(session, site, _gate_time(session, row.scheduled_on, ctx.now))
            except DomainError as refusal:
                ctx.usable[key] = refusal
        if isinstance(ctx.usable[key], DomainError):
            raise ctx.usable[key]
    elif not location_text:
        raise errors.LocationRequired()
    sampler_id = None
    if (row.sampler or "").strip():
        user = ctx.samplers.get(row.sampler.strip())
        if user is None or not user.active:
            raise errors.SamplerUnknown(username=row.sampler.strip()[:40])
        sampler_id = user.id
    return _Spec(
        kind=SampleKind.CLIENT, matrix=matrix, site_code=site.code if site else ctx.adhoc_code,
        scheduled_on=row.scheduled_on, parameters=list(rules), needs=ctx.book.needs(rules),
        site_id=site.id if site else None, sampler_id=sampler_id, client_name=client_name,
        client_contact=client_contact, location_text=location_text, note=note)


def register_adhoc_sample(session: Session, actor: User, data: AdhocSample, *, at: datetime | None = None) -> Sample:
    """One client sample; refusals are the row's own errors."""
    ensure(session, actor, Permission.SAMPLES_REGISTER)
    now = at or utcnow()
    spec = _adhoc_spec(session, data, _load_context(session, [data], now))
    return _register(session, actor, [spec], now)[0]


def register_adhoc_samples(session: Session, actor: User, rows: Sequence[AdhocSample], *,
                           row_numbers: Sequence[int] | None = None, at: datetime | None = None) -> list[Sample]:
    """Many client samples at once, all or nothing: every bad row is reported with its number
    (1, 2, ... or the `row_numbers` given, e.g. a CSV's lines), and nothing is registered while
    any row is bad."""
    ensure(session, actor, Permission.SAMPLES_REGISTER)
    if not rows:
        raise InvalidInput(detail="no samples to register")
    if len(rows) > MAX_BULK:
        raise errors.TooManySamples(limit=MAX_BULK, count=len(rows))
    now = at or utcnow()
    ctx = _load_context(session, rows, now)
    specs: list[_Spec] = []
    problems: list[tuple[int, str, str]] = []
    numbers = list(row_numbers) if row_numbers is not None else list(range(1, len(rows) + 1))
    for number, row in zip(numbers, rows, strict=True):
        try:
            specs.append(_adhoc_spec(session, row, ctx))
        except DomainError as refusal:
            problems.append((number, refusal.message("zh"), refusal.message("en")))
    if problems:
        raise errors.BulkRowsInvalid(problems)
    return _register(session, actor, specs, now)


# ---------------------------------------------------------------- CSV for bulk registration

CSV_COLUMNS = ("client_name", "client_contact", "site_code", "location_text", "matrix", "parameters",
               "scheduled_on", "sampler", "note")
MAX_CSV_ROWS = 2000


def parse_adhoc_csv(text: str) -> tuple[list[AdhocSample], list[int]]:
    """Rows of a CSV with a header row (columns as CSV_COLUMNS; parameters separated by ';' or
    spaces) and their row numbers, counting the header as row 1 as a spreadsheet shows them;
    blank rows are skipped."""
    try:
        return _parse_csv(csv.reader(io.StringIO(text.lstrip("\ufeff").replace("\x00", ""))))
    except csv.Error as exc:
        raise errors.BulkRowsInvalid([(0, f"CSV 格式错误：{exc}", f"not a readable CSV: {exc}")]) from None


def _parse_csv(reader: Any) -> tuple[list[AdhocSample], list[int]]:
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in ("client_name", "parameters", "scheduled_on") if c not in header]
    if missing:
        raise errors.BulkRowsInvalid([(1, f"缺少列：{', '.join(missing)}", f"missing columns: {', '.join(missing)}")])
    rows: list[AdhocSample] = []
    numbers: list[int] = []
    problems: list[tuple[int, str, str]] = []
    for number, cells in enumerate(reader, start=2):
        record = dict(zip(header, cells, strict=False))
        if number - 1 > MAX_CSV_ROWS:
            raise errors.TooManySamples(limit=MAX_CSV_ROWS, count=f"> {MAX_CSV_ROWS}")
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue
        day_text = (record.get("scheduled_on") or "").strip()
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            problems.append((number, f"采样日期 “{day_text[:20]}” 不是 YYYY-MM-DD 格式。",
                             f"sampling day “{day_text[:20]}” is not a YYYY-MM-DD date."))
            continue
        rows.append(AdhocSample(
            client_name=record.get("client_name") or "", client_contact=record.get("client_contact") or "",
            site_code=record.get("site_code") or "", location_text=record.get("location_text") or "",
            matrix=(record.get("matrix") or "water").strip() or "water",
            parameters=split_parameters(record.get("parameters") or ""), scheduled_on=day,
            sampler=(record.get("sampler") or "").strip() or None, note=record.get("note") or ""))
        numbers.append(number)
    if problems:
        raise errors.BulkRowsInvalid(problems)
    return rows, numbers


def split_parameters(text: str) -> list[str]:
    return [p for p in re.split(r"[;,，；、\s]+", text or "") if p]


# ---------------------------------------------------------------- convenience for pages


def sample_search_filter(text: str) -> Any:
    """A WHERE clause finding a sample by its number or by one of its containers' barcodes."""
    code = clean_container_barcode(text)
    raw = (text or "").strip()
    by_container = select(Container.sample_id).where(Container.barcode == code).scalar_subquery()
    return or_(Sample.sample_no.in_({raw, code}), Sample.id == by_container)
