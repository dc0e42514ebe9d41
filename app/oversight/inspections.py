"""The regulator's inspections (双随机, issue 10 item 3): a random draw of samples, batches or
reports from a period and scope, recorded so that anyone can redo it and see it was random; the
inspector's findings on what was drawn; the lab's responses.

A draw is reproducible by construction: the population is the ids of the target records in the
period and scope, in id order; the picks are `random.Random(seed).sample(population, k)`. The
seed, the population's size and SHA-256 (of the ids joined with ",") and the picks are stored and
audited. `verify_draw` recomputes both from the records as they stand now: a record added to the
period later changes the population's hash, and the check says so rather than hiding it.

The inspector changes no lab record: the inspection and its findings are the inspector's own
records (INSPECTIONS_RECORD, held by the inspector role only); the quality manager answers the
findings (INSPECTIONS_RESPOND). Findings and responses are append-only (database triggers); only
an inspection's state and closing time change.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.analysis.methods import MATRICES
from app.analysis.models import AnalysisBatch, BatchPosition, BatchState, Method, MethodVersion
from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import next_code
from app.core.db import utcnow
from app.core.errors import InvalidInput
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.oversight.inspection_errors import (
    DrawPeriodReversed,
    DrawScopeUnknown,
    DrawSeedInvalid,
    DrawSizeOutOfRange,
    DrawTargetUnknown,
    DrawTitleRequired,
    EmptyPopulation,
    FindingNotFound,
    FindingSeverityUnknown,
    FindingTargetNotPicked,
    FindingTextRequired,
    InspectionClosed,
    InspectionNotFound,
)
from app.oversight.models import (
    FindingResponse,
    FindingSeverity,
    Inspection,
    InspectionFinding,
    InspectionState,
    InspectionTarget,
)
from app.people.models import User
from app.reports.models import Report, ReportSample, ReportState
from app.samples.models import Sample, SampleState
from app.sites.models import Site

CODE_PREFIX = "JC"  # 检查
MAX_DRAW = 200
MAX_TEXT = 4000
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)  # dates a period may name (no overflow at the end)
SEED_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SCOPE_KEYS = ("matrix", "site", "method", "state")
TARGETS = tuple(t.value for t in InspectionTarget)
SEVERITIES = tuple(s.value for s in FindingSeverity)
# a finding names one picked record by its type (the inspection's target, singular)
TARGET_TYPE = {InspectionTarget.SAMPLES.value: "sample", InspectionTarget.BATCHES.value: "batch",
               InspectionTarget.REPORTS.value: "report"}
STATES = {InspectionTarget.SAMPLES.value: tuple(s.value for s in SampleState),
          InspectionTarget.BATCHES.value: tuple(s.value for s in BatchState),
          InspectionTarget.REPORTS.value: tuple(s.value for s in ReportState)}


# ---------------------------------------------------------------- the population


def population_sha256(ids: Sequence[int]) -> str:
    """SHA-256 of the ids in order joined with "," (what anyone can recompute from a list)."""
    return hashlib.sha256(",".join(str(i) for i in ids).encode("ascii")).hexdigest()


def pick(seed: str, population: Sequence[int], size: int) -> list[int]:
    """The draw itself: Python's Mersenne Twister seeded with the seed string (seeding from a
    str hashes it with SHA-512, so the picks do not depend on the process or the platform)."""
    return random.Random(seed).sample(list(population), min(size, len(population)))


def clean_scope(session: Session, target: str, scope: dict[str, Any] | None) -> dict[str, str]:
    """The scope with blanks dropped; every key and value must name something the lab knows."""
    cleaned: dict[str, str] = {}
    for key, raw in (scope or {}).items():
        value = "" if raw is None else str(raw).strip()
        if key not in SCOPE_KEYS:
            raise DrawScopeUnknown(key=key, value=value, known_zh="可用：" + "、".join(SCOPE_KEYS),
                                   known_en="known: " + ", ".join(SCOPE_KEYS))
        if not value:
            continue
        if len(value) > 60:
            raise DrawScopeUnknown(key=key, value=value[:60], known_zh="过长", known_en="too long")
        cleaned[key] = value
    if "matrix" in cleaned and cleaned["matrix"] not in MATRICES:
        raise DrawScopeUnknown(key="matrix", value=cleaned["matrix"], known_zh="、".join(MATRICES),
                               known_en=", ".join(MATRICES))
    if "state" in cleaned and cleaned["state"] not in STATES[target]:
        raise DrawScopeUnknown(key="state", value=cleaned["state"], known_zh="、".join(STATES[target]),
                               known_en=", ".join(STATES[target]))
    if "site" in cleaned and _site_id(session, cleaned["site"]) is None:
        raise DrawScopeUnknown(key="site", value=cleaned["site"], known_zh="无此点位", known_en="no such site")
    if "method" in cleaned and _method_id(session, cleaned["method"]) is None:
        raise DrawScopeUnknown(key="method", value=cleaned["method"], known_zh="无此方法", known_en="no such method")
    return cleaned


def _site_id(session: Session, code: str) -> int | None:
    return session.scalar(select(Site.id).where(func.upper(Site.code) == code.upper()))


def _method_id(session: Session, code: str) -> int | None:
    return session.scalar(select(Method.id).where(Method.code == code))


def _analysed_with(method_id: int) -> Select:
    """Ids of samples analysed in a batch of the method (any version)."""
    return (select(BatchPosition.sample_id).join(AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id)
            .join(MethodVersion, MethodVersion.id == AnalysisBatch.method_version_id)
            .where(MethodVersion.method_id == method_id, BatchPosition.sample_id.is_not(None)))


def population_query(session: Session, target: str, period_from: date, period_to: date,
                     scope: dict[str, str]) -> Select:
    """The ids of the target records whose date (lab local) lies in the period, within the scope:
    samples by collection, batches by submission, reports by issue."""
    calendar = lab_calendar(session)
    start, end = calendar.start_of(period_from), calendar.start_of(period_to + timedelta(days=1))
    site_id = _site_id(session, scope["site"]) if "site" in scope else None
    method_id = _method_id(session, scope["method"]) if "method" in scope else None
    if target == InspectionTarget.SAMPLES.value:
        stmt = select(Sample.id).where(Sample.collected_at >= start, Sample.collected_at < end)
        if "matrix" in scope:
            stmt = stmt.where(Sample.matrix == scope["matrix"])
        if site_id is not None:
            stmt = stmt.where(Sample.site_id == site_id)
        if method_id is not None:
            stmt = stmt.where(Sample.id.in_(_analysed_with(method_id)))
        if "state" in scope:
            stmt = stmt.where(Sample.state == scope["state"])
        return stmt.order_by(Sample.id)
    if target == InspectionTarget.BATCHES.value:
        stmt = select(AnalysisBatch.id).where(AnalysisBatch.submitted_at >= start, AnalysisBatch.submitted_at < end)
        if "matrix" in scope or method_id is not None:
            stmt = (stmt.join(MethodVersion, MethodVersion.id == AnalysisBatch.method_version_id)
                    .join(Method, Method.id == MethodVersion.method_id))
            if "matrix" in scope:
                stmt = stmt.where(Method.matrix == scope["matrix"])
            if method_id is not None:
                stmt = stmt.where(Method.id == method_id)
        if site_id is not None:
            stmt = stmt.where(AnalysisBatch.id.in_(
                select(BatchPosition.batch_id).join(Sample, Sample.id == BatchPosition.sample_id)
                .where(Sample.site_id == site_id)))
        if "state" in scope:
            stmt = stmt.where(AnalysisBatch.state == scope["state"])
        return stmt.order_by(AnalysisBatch.id)
    stmt = select(Report.id).where(Report.issued_at >= start, Report.issued_at < end)
    covered = select(ReportSample.report_id).join(Sample, Sample.id == ReportSample.sample_id)
    if "matrix" in scope:
        stmt = stmt.where(Report.id.in_(covered.where(Sample.matrix == scope["matrix"])))
    if site_id is not None:
        stmt = stmt.where(Report.id.in_(covered.where(Sample.site_id == site_id)))
    if method_id is not None:
        stmt = stmt.where(Report.id.in_(select(ReportSample.report_id)
                                        .where(ReportSample.sample_id.in_(_analysed_with(method_id)))))
    if "state" in scope:
        stmt = stmt.where(Report.state == scope["state"])
    return stmt.order_by(Report.id)


def population_of(session: Session, target: str, period_from: date, period_to: date,
                  scope: dict[str, str]) -> list[int]:
    return list(session.scalars(population_query(session, target, period_from, period_to, scope)))


# ---------------------------------------------------------------- the draw


def _check_draw(title: str, target: str, period_from: date, period_to: date, size: int,
                seed: str | None) -> None:
    if not title.strip() or len(title.strip()) > 200:
        raise DrawTitleRequired()
    if target not in TARGETS:
        raise DrawTargetUnknown(target=target)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_DRAW:
        raise DrawSizeOutOfRange(size=size, maximum=MAX_DRAW)
    if not (EARLIEST <= period_from <= LATEST and EARLIEST <= period_to <= LATEST):
        raise InvalidInput(detail=f"{period_from.isoformat()} – {period_to.isoformat()}: 1900-01-01 … 2999-12-31")
    if period_from > period_to:
        raise DrawPeriodReversed(period_from=period_from.isoformat(), period_to=period_to.isoformat())
    if seed is not None and not SEED_RE.match(seed):
        raise DrawSeedInvalid()


def draw_inspection(session: Session, actor: User, *, title: str, target: str, period_from: date,
                    period_to: date, scope: dict[str, Any] | None, size: int,
                    seed: str | None = None) -> Inspection:
    """Draw `size` records at random from the population (all of them when it is smaller) and
    open the inspection on them; the seed is fresh randomness unless the inspector gives one (to
    redo a draw announced beforehand)."""
    ensure(session, actor, Permission.INSPECTIONS_RECORD)
    seed = seed.strip() if isinstance(seed, str) and seed.strip() else None
    _check_draw(title, target, period_from, period_to, size, seed)
    cleaned = clean_scope(session, target, scope)
    population = population_of(session, target, period_from, period_to, cleaned)
    if not population:
        raise EmptyPopulation(period_from=period_from.isoformat(), period_to=period_to.isoformat())
    seed = seed or secrets.token_hex(16)
    picked = pick(seed, population, size)
    now = utcnow()
    inspection = Inspection(
        inspection_no=next_code(session, CODE_PREFIX, now), title=title.strip(), target=target,
        period_from=period_from, period_to=period_to, scope=canonical_json(cleaned), seed=seed,
        population_size=len(population), population_sha256=population_sha256(population), draw_size=size,
        picked=canonical_json(picked), state=InspectionState.OPEN.value, drawn_at=now, inspector_id=actor.id)
    session.add(inspection)
    session.flush()
    audit.append(session, actor, "oversight.inspection_drawn", "inspection", inspection.id, None, {
        "inspection_no": inspection.inspection_no, "title": inspection.title, "target": target,
        "period_from": period_from.isoformat(), "period_to": period_to.isoformat(), "scope": cleaned,
        "seed": seed, "population_size": inspection.population_size,
        "population_sha256": inspection.population_sha256, "draw_size": size, "picked": picked})
    return inspection


def picked_ids(inspection: Inspection) -> list[int]:
    return [int(i) for i in json.loads(inspection.picked or "[]")]


def scope_of(inspection: Inspection) -> dict[str, str]:
    return dict(json.loads(inspection.scope or "{}"))


@dataclass(frozen=True)
class DrawCheck:
    """The draw redone from the records as they stand now."""

    population_size: int  # now
    population_sha256: str  # now
    population_matches: bool  # the same ids as at the draw
    picks: list[int]  # the seed applied to today's population
    picks_match: bool  # the same picks, in the same order

    @property
    def ok(self) -> bool:
        return self.population_matches and self.picks_match


def verify_draw(session: Session, inspection: Inspection) -> DrawCheck:
    """Recompute the population and the picks from the seed. A population that changed since
    (records added into the period later, a state moved) shows as such: the picks recomputed
    over it are shown too, and the recorded picks stay what was drawn."""
    population = population_of(session, inspection.target, inspection.period_from, inspection.period_to,
                               scope_of(inspection))
    digest = population_sha256(population)
    picks = pick(inspection.seed, population, inspection.draw_size) if population else []
    return DrawCheck(len(population), digest, digest == inspection.population_sha256, picks,
                     picks == picked_ids(inspection))


# ---------------------------------------------------------------- findings, closing, responses


def _text(text: str) -> str:
    cleaned = (text or "").strip()
    if not cleaned or len(cleaned) > MAX_TEXT:
        raise FindingTextRequired(maximum=MAX_TEXT)
    return cleaned


def _open(inspection: Inspection) -> None:
    if inspection.state != InspectionState.OPEN.value:
        raise InspectionClosed(inspection_no=inspection.inspection_no)


def record_finding(session: Session, actor: User, inspection: Inspection, target_type: str,
                   target_id: int | None, severity: str, text: str) -> InspectionFinding:
    """A finding on one picked record, or on the inspection as a whole (blank target)."""
    ensure(session, actor, Permission.INSPECTIONS_RECORD)
    _open(inspection)
    target_type = (target_type or "").strip()
    whole = not target_type and target_id is None
    if not whole and (target_type != TARGET_TYPE[inspection.target] or target_id not in picked_ids(inspection)):
        raise FindingTargetNotPicked(target_type=target_type or "-", target_id=target_id)
    if severity not in SEVERITIES:
        raise FindingSeverityUnknown(severity=severity)
    finding = InspectionFinding(inspection_id=inspection.id, target_type=target_type,
                                target_id=target_id if target_type else None, severity=severity,
                                text=_text(text), recorded_at=utcnow(), recorded_by_id=actor.id)
    session.add(finding)
    session.flush()
    audit.append(session, actor, "oversight.inspection_finding", "inspection_finding", finding.id, None, {
        "inspection_no": inspection.inspection_no, "target_type": finding.target_type,
        "target_id": finding.target_id, "severity": severity, "text": finding.text})
    return finding


def close_inspection(session: Session, actor: User, inspection: Inspection) -> Inspection:
    """Close the inspection: no more findings (the lab may still respond)."""
    ensure(session, actor, Permission.INSPECTIONS_RECORD)
    _open(inspection)
    findings = session.scalar(select(func.count(InspectionFinding.id))
                              .where(InspectionFinding.inspection_id == inspection.id)) or 0
    inspection.state = InspectionState.CLOSED.value
    inspection.closed_at = utcnow()
    session.flush()
    audit.append(session, actor, "oversight.inspection_closed", "inspection", inspection.id,
                 {"state": InspectionState.OPEN.value},
                 {"state": inspection.state, "inspection_no": inspection.inspection_no, "findings": findings})
    return inspection


def respond_to_finding(session: Session, actor: User, finding: InspectionFinding, text: str) -> FindingResponse:
    """The lab's answer to a finding (the quality manager); answers are added, never changed."""
    ensure(session, actor, Permission.INSPECTIONS_RESPOND)
    response = FindingResponse(finding_id=finding.id, text=_text(text), responded_at=utcnow(),
                               responded_by_id=actor.id)
    session.add(response)
    session.flush()
    audit.append(session, actor, "oversight.inspection_response", "inspection_response", response.id, None, {
        "finding_id": finding.id, "inspection_id": finding.inspection_id, "text": response.text})
    return response


# ---------------------------------------------------------------- reading


def get_inspection(session: Session, actor: User, inspection_no: str, *, for_update: bool = False) -> Inspection:
    ensure(session, actor, Permission.INSPECTIONS_READ)
    stmt = select(Inspection).where(Inspection.inspection_no == inspection_no)
    if for_update:
        stmt = stmt.with_for_update()
    inspection = session.scalars(stmt).first()
    if inspection is None:
        raise InspectionNotFound(inspection_no=inspection_no)
    return inspection


def get_finding(session: Session, actor: User, inspection: Inspection, finding_id: int) -> InspectionFinding:
    ensure(session, actor, Permission.INSPECTIONS_READ)
    finding = session.get(InspectionFinding, finding_id)
    if finding is None or finding.inspection_id != inspection.id:
        raise FindingNotFound(finding_id=finding_id)
    return finding


@dataclass(frozen=True)
class InspectionRow:
    inspection: Inspection
    inspector: User
    findings: int


def list_inspections(session: Session, actor: User, *, state: str = "", page: int = 1,
                     size: int = 50) -> Page[InspectionRow]:
    """Newest draw first; two queries whatever the page holds."""
    ensure(session, actor, Permission.INSPECTIONS_READ)
    findings = (select(func.count(InspectionFinding.id)).where(InspectionFinding.inspection_id == Inspection.id)
                .correlate(Inspection).scalar_subquery())
    stmt = (select(Inspection, User, findings.label("findings")).join(User, User.id == Inspection.inspector_id)
            .order_by(Inspection.drawn_at.desc(), Inspection.id.desc()))
    if state:
        stmt = stmt.where(Inspection.state == state)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(size).offset((max(1, page) - 1) * size)).all()
    return Page([InspectionRow(i, u, n) for i, u, n in rows], max(1, page), size, total)


@dataclass(frozen=True)
class PickedRecord:
    id: int
    label: str  # the sample, batch or report number (or "#id" when the record is gone)
    href: str
    evidence_href: str = ""  # reports: the evidence chain


@dataclass
class FindingView:
    finding: InspectionFinding
    recorded_by: User | None
    target: PickedRecord | None
    responses: list[tuple[FindingResponse, User | None]] = field(default_factory=list)


@dataclass
class InspectionView:
    inspection: Inspection
    inspector: User | None
    scope: dict[str, str]
    picks: list[PickedRecord]
    check: DrawCheck
    findings: list[FindingView]


def picked_records(session: Session, inspection: Inspection) -> list[PickedRecord]:
    """The picks in draw order with their numbers and pages (one query)."""
    ids = picked_ids(inspection)
    if not ids:
        return []
    if inspection.target == InspectionTarget.SAMPLES.value:
        labels = dict(session.execute(select(Sample.id, Sample.sample_no).where(Sample.id.in_(ids))).all())
        base = "/samples/"
    elif inspection.target == InspectionTarget.BATCHES.value:
        labels = dict(session.execute(select(AnalysisBatch.id, AnalysisBatch.batch_no)
                                      .where(AnalysisBatch.id.in_(ids))).all())
        base = "/batches/"
    else:
        labels = dict(session.execute(select(Report.id, Report.report_no).where(Report.id.in_(ids))).all())
        base = "/reports/"
    evidence = inspection.target == InspectionTarget.REPORTS.value
    return [PickedRecord(i, labels.get(i, f"#{i}"), f"{base}{labels[i]}" if i in labels else "",
                         f"/oversight/evidence/{labels[i]}" if evidence and i in labels else "") for i in ids]


def inspection_view(session: Session, actor: User, inspection: Inspection) -> InspectionView:
    """Everything the inspection's page shows, in a fixed number of queries."""
    ensure(session, actor, Permission.INSPECTIONS_READ)
    picks = picked_records(session, inspection)
    findings = list(session.scalars(select(InspectionFinding).where(InspectionFinding.inspection_id == inspection.id)
                                    .order_by(InspectionFinding.recorded_at, InspectionFinding.id)))
    responses = list(session.scalars(select(FindingResponse).where(
        FindingResponse.finding_id.in_([f.id for f in findings])).order_by(FindingResponse.responded_at,
                                                                          FindingResponse.id))) if findings else []
    user_ids = {inspection.inspector_id} | {f.recorded_by_id for f in findings} | {r.responded_by_id for r in responses}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}
    by_id = {p.id: p for p in picks}
    views = {f.id: FindingView(f, people.get(f.recorded_by_id), by_id.get(f.target_id) if f.target_type else None)
             for f in findings}
    for response in responses:
        views[response.finding_id].responses.append((response, people.get(response.responded_by_id)))
    return InspectionView(inspection, people.get(inspection.inspector_id), scope_of(inspection), picks,
                          verify_draw(session, inspection), list(views.values()))


def scope_choices(session: Session) -> dict[str, list[str]]:
    """What the draw form offers: matrices, site codes, method codes (short lists) and states."""
    return {"matrix": list(MATRICES),
            "site": list(session.scalars(select(Site.code).order_by(Site.code).limit(500))),
            "method": list(session.scalars(select(Method.code).order_by(Method.code).limit(500))),
            **{f"state_{t}": list(v) for t, v in STATES.items()}}
