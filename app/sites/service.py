"""Monitoring sites: proposals, change requests and their decisions, and the version in force.

A site's code is its identity; everything it is (name, kind, position, parameters and their
frequency, water body, basin, district, department, status) lives in append-only `SiteVersion`
rows. Nothing about a site changes without an approved request (no approval, no change
[HLJ 4]; an unapproved site change is tampering [175]): the technical manager proposes, a quality
manager other than the proposer decides, recording the approving department's reference. An
approval adds the next version, in force from the decision on (or later), never earlier: a
sample already taken stays bound to the version in force when it was taken.

Every act checks its permission and rules first, changes rows, and appends an audit event in the
caller's transaction; a refusal changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import settings_of
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples.models import PreservationRule
from app.samples.preservation import rules_for
from app.sites import errors
from app.sites.models import (
    MATRIX_OF_KIND,
    ChangeKind,
    ChangeStatus,
    Frequency,
    Site,
    SiteChangeRequest,
    SiteKind,
    SiteStatus,
    SiteVersion,
    SiteVersionParameter,
    WaterBody,
)

# Capital letters, digits and dashes; a letter or digit at both ends (the code is the {site} of
# sample numbers, WS01-260312-001, where a trailing dash would double the separator).
SITE_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,18}[A-Z0-9]$")
# The lab's own label codes (RM26-00012, TK26-00042 ...): a site code of that form would be
# mistaken for a label in the scan box.
LABEL_CODE_RE = re.compile(r"^[A-Z]{2,4}\d{2}-\d{5,}$")
# Words that are pages under /sites/ (and might become ones).
PAGE_WORDS = frozenset({"NEW", "MAP", "REQUESTS", "CHANGE", "EDIT", "SEARCH", "EXPORT", "API"})
MAX_DECIMALS = 7  # 1e-7 degree is about 1 cm: more is noise, not precision
MAX_PARAMETERS = 60
REASON_MAX = 1000
NOTE_MAX = 1000
REF_MAX = 120

# (zh, en) of each field, for the refusals
LABELS = {
    "code": ("点位编码", "site code"),
    "name_zh": ("中文名称", "Chinese name"),
    "name_en": ("英文名称", "English name"),
    "kind": ("点位类型", "site kind"),
    "latitude": ("纬度", "latitude"),
    "longitude": ("经度", "longitude"),
    "water_body": ("水体类型", "water body"),
    "basin": ("流域/河流", "basin or river"),
    "district": ("行政区", "district"),
    "department": ("责任部门", "responsible department"),
    "parameter": ("监测项目", "parameter"),
    "frequency": ("监测频次", "frequency"),
    "request_kind": ("申请类型", "kind of request"),
    "reason": ("申请理由", "reason"),
    "decision_ref": ("批准文号", "decision reference"),
    "note": ("说明", "note"),
}
STATUS_TEXT = {
    SiteStatus.PROPOSED: ("待批准", "proposed"),
    SiteStatus.ACTIVE: ("启用", "active"),
    SiteStatus.SUSPENDED: ("暂停", "suspended"),
    SiteStatus.DECOMMISSIONED: ("已撤销", "decommissioned"),
}
CHANGE_KIND_TEXT = {
    ChangeKind.CREATE: ("新设点位", "create"),
    ChangeKind.CHANGE: ("变更", "change"),
    ChangeKind.SUSPEND: ("暂停", "suspend"),
    ChangeKind.REACTIVATE: ("恢复", "reactivate"),
    ChangeKind.DECOMMISSION: ("撤销", "decommission"),
}
CHANGE_STATUS_TEXT = {
    ChangeStatus.SUBMITTED: ("待决定", "awaiting decision"),
    ChangeStatus.APPROVED: ("已批准", "approved"),
    ChangeStatus.REJECTED: ("已驳回", "rejected"),
    ChangeStatus.WITHDRAWN: ("已撤回", "withdrawn"),
}
MATRIX_TEXT = {"water": ("水质", "water"), "air": ("环境空气", "air"), "soil": ("土壤", "soil")}
# the site statuses from which each kind of request may be made, and the status it leads to
ALLOWED_FROM: dict[ChangeKind, tuple[SiteStatus, ...]] = {
    ChangeKind.CREATE: (SiteStatus.PROPOSED,),
    ChangeKind.CHANGE: (SiteStatus.ACTIVE, SiteStatus.SUSPENDED),
    ChangeKind.SUSPEND: (SiteStatus.ACTIVE,),
    ChangeKind.REACTIVATE: (SiteStatus.SUSPENDED,),
    ChangeKind.DECOMMISSION: (SiteStatus.ACTIVE, SiteStatus.SUSPENDED),
}
STATUS_AFTER = {
    ChangeKind.CREATE: SiteStatus.ACTIVE,
    ChangeKind.SUSPEND: SiteStatus.SUSPENDED,
    ChangeKind.REACTIVATE: SiteStatus.ACTIVE,
    ChangeKind.DECOMMISSION: SiteStatus.DECOMMISSIONED,
}
# the descriptive fields of a version, in the order pages show them
VERSION_FIELDS = ("status", "name_zh", "name_en", "kind", "latitude", "longitude", "water_body", "basin",
                  "district", "department")


@dataclass
class SiteProposal:
    """A site as proposed: the complete version asked for. Parameters are (parameter, frequency)."""

    name_zh: str
    name_en: str
    kind: str
    latitude: Decimal
    longitude: Decimal
    water_body: str = ""
    basin: str = ""
    district: str = ""
    department: str = ""
    parameters: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- cleaning input


def _label(name: str) -> dict[str, str]:
    zh, en = LABELS[name]
    return {"label_zh": zh, "label_en": en[0].upper() + en[1:]}


def clean_text(value: Any, name: str, limit: int, *, required: bool = False) -> str:
    text = (value if isinstance(value, str) else "" if value is None else str(value)).strip()
    if required and not text:
        raise errors.FieldRequired(**_label(name))
    if len(text) > limit:
        raise errors.FieldTooLong(limit=limit, **_label(name))
    return text


def clean_choice(value: Any, choices: type, name: str) -> str:
    try:
        return choices(value if isinstance(value, str) else str(value)).value
    except ValueError:
        zh, en = LABELS[name]
        raise errors.UnknownChoice(label_zh=zh, label_en=en, value=str(value)[:40]) from None


def clean_reason(reason: Any) -> str:
    text = clean_text(reason, "reason", REASON_MAX)
    if not text:
        raise errors.ReasonRequired()
    return text


def clean_site_code(session: Session, code: Any) -> str:
    """A new site's code: upper-cased, of the allowed form, not a page word, not the code of
    client samples (their numbers would collide), not shaped like a label barcode."""
    text = (code if isinstance(code, str) else "").strip().upper()
    if not text:
        raise errors.FieldRequired(**_label("code"))
    if not SITE_CODE_RE.match(text):
        raise errors.MalformedSiteCode(site_code=text[:30])
    if text in PAGE_WORDS or LABEL_CODE_RE.match(text) or text == settings_of(session).adhoc_site_code.upper():
        raise errors.ReservedSiteCode(site_code=text)
    return text


def parse_coordinate(value: Any, name: str) -> Decimal:
    """A WGS-84 coordinate in decimal degrees, exactly as typed (never through a float)."""
    zh, en = LABELS[name]
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        raw = str(value).strip().replace("°", "")
        if not raw:
            raise errors.FieldRequired(**_label(name))
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise errors.BadCoordinate(label_zh=zh, label_en=en, value=raw[:30] or "—") from None
    else:  # a float has already lost the digits that were typed
        raise errors.BadCoordinate(label_zh=zh, label_en=en, value=str(value)[:30])
    if not number.is_finite():
        raise errors.BadCoordinate(label_zh=zh, label_en=en, value=str(value)[:30])
    limit = 90 if name == "latitude" else 180
    if not -limit <= number <= limit:
        raise errors.CoordinateOutOfRange(label_zh=zh, label_en=en, value=str(value)[:30])
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        quantum = Decimal(1).scaleb(-MAX_DECIMALS)
        if number != number.quantize(quantum):
            raise errors.TooManyDecimals(label_zh=zh, label_en=en, value=str(value)[:30])
        number = number.quantize(quantum)  # only zeros dropped
    elif isinstance(exponent, int) and exponent > 0:
        number = number.quantize(Decimal(1))  # 1E+2 -> 100
    return number + 0 if number.is_zero() else number  # no "-0"


def clean_parameters(session: Session, parameters: Iterable[Any], kind: str) -> list[tuple[str, str]]:
    """(parameter, frequency) pairs: each parameter known to the preservation table (written as
    the table writes it), of the matrix the site's kind yields, given once, with a frequency."""
    pairs: list[tuple[str, str]] = []
    for item in parameters:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise errors.FieldRequired(**_label("frequency"))
        parameter = clean_text(item[0], "parameter", 60)
        if not parameter:
            continue
        pairs.append((parameter, clean_choice(item[1], Frequency, "frequency")))
    if len(pairs) > MAX_PARAMETERS:
        raise errors.TooManyParameters(limit=MAX_PARAMETERS)
    seen: set[str] = set()
    for parameter, _ in pairs:
        if parameter.casefold() in seen:
            raise errors.DuplicateParameter(parameter=parameter)
        seen.add(parameter.casefold())
    rules = rules_for(session, [p for p, _ in pairs])  # UnknownParameter for any not in the table
    by_folded: dict[str, PreservationRule] = {name.casefold(): rule for name, rule in rules.items()}
    matrix = MATRIX_OF_KIND[SiteKind(kind)]
    if matrix != "other":
        foreign = [by_folded[p.casefold()] for p, _ in pairs if by_folded[p.casefold()].matrix != matrix]
        if foreign:
            zh, en = MATRIX_TEXT.get(foreign[0].matrix, (foreign[0].matrix, foreign[0].matrix))
            raise errors.ParameterNotForKind(parameters="、".join(r.parameter for r in foreign),
                                             matrix_zh=zh, matrix_en=en)
    return [(by_folded[p.casefold()].parameter, f) for p, f in pairs]


def checked_content(session: Session, proposal: SiteProposal, status: SiteStatus) -> dict[str, Any]:
    """The complete version a proposal asks for, validated: what the request stores and what an
    approval turns into the next version."""
    if not isinstance(proposal, SiteProposal):
        raise errors.ProposalRequired()
    kind = clean_choice(proposal.kind, SiteKind, "kind")
    return {
        "status": status.value,
        "name_zh": clean_text(proposal.name_zh, "name_zh", 200, required=True),
        "name_en": clean_text(proposal.name_en, "name_en", 200),
        "kind": kind,
        "latitude": parse_coordinate(proposal.latitude, "latitude"),
        "longitude": parse_coordinate(proposal.longitude, "longitude"),
        "water_body": clean_choice(proposal.water_body or "", WaterBody, "water_body"),
        "basin": clean_text(proposal.basin, "basin", 120),
        "district": clean_text(proposal.district, "district", 120),
        "department": clean_text(proposal.department, "department", 200),
        "parameters": clean_parameters(session, proposal.parameters or [], kind),
    }


# ---------------------------------------------------------------- versions and their content


def version_content(version: SiteVersion, parameters: Sequence[SiteVersionParameter]) -> dict[str, Any]:
    """A version as the content a request proposes (same keys), for comparison and the audit."""
    data: dict[str, Any] = {name: getattr(version, name) for name in VERSION_FIELDS}
    data["parameters"] = [(p.parameter, p.frequency) for p in parameters]
    return data


def proposal_of(request: SiteChangeRequest) -> dict[str, Any]:
    """The content a request proposes, with coordinates back as Decimals."""
    data = json.loads(request.proposed)
    data["latitude"], data["longitude"] = Decimal(data["latitude"]), Decimal(data["longitude"])
    data["parameters"] = [(p, f) for p, f in data.get("parameters", [])]
    return data


def proposal_from_content(content: dict[str, Any]) -> SiteProposal:
    return SiteProposal(
        name_zh=content["name_zh"], name_en=content["name_en"], kind=content["kind"],
        latitude=content["latitude"], longitude=content["longitude"], water_body=content["water_body"],
        basin=content["basin"], district=content["district"], department=content["department"],
        parameters=list(content["parameters"]),
    )


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal versions: the same fields, coordinates equal as numbers, the same parameters at the
    same frequencies in any order."""
    for name in VERSION_FIELDS:
        if name in ("latitude", "longitude"):
            if Decimal(a[name]) != Decimal(b[name]):
                return False
        elif a[name] != b[name]:
            return False
    return sorted(map(tuple, a["parameters"])) == sorted(map(tuple, b["parameters"]))


def _request_snapshot(request: SiteChangeRequest) -> dict[str, Any]:
    return {
        "id": request.id, "site_id": request.site_id, "kind": request.kind, "status": request.status,
        "reason": request.reason, "proposed": json.loads(request.proposed),
        "submitted_by_id": request.submitted_by_id, "submitted_at": request.submitted_at,
        "decided_by_id": request.decided_by_id, "decided_at": request.decided_at,
        "decision_ref": request.decision_ref, "decision_note": request.decision_note,
        "effective_from": request.effective_from, "resulting_version_id": request.resulting_version_id,
    }


def _version_snapshot(version: SiteVersion, parameters: Sequence[SiteVersionParameter]) -> dict[str, Any]:
    return {
        "id": version.id, "version_no": version.version_no, "valid_from": version.valid_from,
        "approval_ref": version.approval_ref, "approved_by_id": version.approved_by_id,
        "change_request_id": version.change_request_id, **version_content(version, parameters),
    }


# ---------------------------------------------------------------- reading


def site_by_code(session: Session, code: str) -> Site:
    text = (code if isinstance(code, str) else "").strip().upper()
    if not SITE_CODE_RE.match(text):
        raise errors.SiteNotFound(site_code=text[:30] or "—")
    site = session.scalars(select(Site).where(Site.code == text)).first()
    if site is None:
        raise errors.SiteNotFound(site_code=text)
    return site


def request_by_id(session: Session, request_id: int) -> SiteChangeRequest:
    request = session.get(SiteChangeRequest, request_id)
    if request is None:
        raise errors.ChangeRequestNotFound()
    return request


def _in_force(at: datetime) -> Any:
    """Versions in force at `at`, newest first (a later version number wins a tie)."""
    return SiteVersion.valid_from <= at, (SiteVersion.valid_from.desc(), SiteVersion.version_no.desc())


def version_at(session: Session, site_id: int, at: datetime) -> SiteVersion | None:
    """The version in force at `at`: the latest valid_from not after it; None before version 1."""
    where, order = _in_force(at)
    return session.scalars(
        select(SiteVersion).where(SiteVersion.site_id == site_id, where).order_by(*order).limit(1)
    ).first()


def versions_at(session: Session, site_ids: Iterable[int], at: datetime) -> dict[int, SiteVersion]:
    """The version in force at `at` of each site, in one query (sites without one are absent)."""
    ids = sorted({i for i in site_ids if i is not None})
    if not ids:
        return {}
    where, order = _in_force(at)
    ranked = (
        select(SiteVersion.id, func.row_number().over(partition_by=SiteVersion.site_id, order_by=order).label("rank"))
        .where(SiteVersion.site_id.in_(ids), where)
        .subquery()
    )
    rows = session.scalars(
        select(SiteVersion).join(ranked, ranked.c.id == SiteVersion.id).where(ranked.c.rank == 1)
    ).all()
    return {version.site_id: version for version in rows}


def current_version(session: Session, site: Site) -> SiteVersion | None:
    """The version in force now."""
    return version_at(session, site.id, utcnow())


def latest_version(session: Session, site_id: int) -> SiteVersion | None:
    """The newest approved version, even one that takes effect later: what a new request builds on."""
    return session.scalars(
        select(SiteVersion).where(SiteVersion.site_id == site_id).order_by(SiteVersion.version_no.desc()).limit(1)
    ).first()


def parameters_of(session: Session, version_id: int) -> list[SiteVersionParameter]:
    return list(session.scalars(
        select(SiteVersionParameter).where(SiteVersionParameter.site_version_id == version_id)
        .order_by(SiteVersionParameter.id)
    ))


def parameters_of_versions(session: Session, version_ids: Iterable[int]) -> dict[int, list[SiteVersionParameter]]:
    """The parameters of many versions in one query."""
    ids = sorted({i for i in version_ids if i is not None})
    found: dict[int, list[SiteVersionParameter]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(select(SiteVersionParameter).where(
                SiteVersionParameter.site_version_id.in_(ids)).order_by(SiteVersionParameter.id)):
            found[row.site_version_id].append(row)
    return found


def open_request_of(session: Session, site_id: int) -> SiteChangeRequest | None:
    return session.scalars(select(SiteChangeRequest).where(
        SiteChangeRequest.site_id == site_id, SiteChangeRequest.status == ChangeStatus.SUBMITTED.value)
        .order_by(SiteChangeRequest.id).limit(1)).first()


def count_open_requests(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SiteChangeRequest).where(
        SiteChangeRequest.status == ChangeStatus.SUBMITTED.value)) or 0


def status_at(session: Session, site: Site, at: datetime) -> SiteStatus:
    version = version_at(session, site.id, at)
    return SiteStatus(version.status) if version else SiteStatus.PROPOSED


def _local(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def assert_site_usable(session: Session, site: Site, at: datetime) -> SiteVersion:
    """The gate of sampling: the version in force at the time of the act must be active. Returns
    that version (the one a sample taken at `at` is bound to)."""
    version = version_at(session, site.id, at)
    if version is None:
        raise errors.SiteNotYetActive(site_code=site.code, at=_local(session, at))
    if version.status != SiteStatus.ACTIVE.value:
        zh, en = STATUS_TEXT[SiteStatus(version.status)]
        raise errors.SiteNotActive(site_code=site.code, at=_local(session, at), status_zh=zh, status_en=en,
                                   version_no=version.version_no)
    return version


# ---------------------------------------------------------------- the site row follows its versions


def _lock(session: Session, row: Any) -> None:
    """Serialise acts on one row (a row lock on PostgreSQL; SQLite has a single writer)."""
    session.refresh(row, with_for_update=True)


def _sync(session: Session, site: Site, now: datetime) -> None:
    """Site.status and current_version_id mirror the version in force now; an approval that took
    effect later than its decision catches up here (and in `sync_site_states`)."""
    version = version_at(session, site.id, now)
    status = version.status if version else SiteStatus.PROPOSED.value
    version_id = version.id if version else None
    if (site.status, site.current_version_id) != (status, version_id):
        before = {"status": site.status, "current_version_id": site.current_version_id}
        site.status, site.current_version_id = status, version_id
        audit.append(session, None, "site.version_in_force", "site", site.id, before,
                     {"status": status, "current_version_id": version_id})


def sync_site_states(session: Session, now: datetime | None = None) -> int:
    """For the scheduler: bring every site whose approved version has since come into force up to
    date. Returns how many changed."""
    now = now or utcnow()
    sites = list(session.scalars(select(Site).where(Site.status != SiteStatus.DECOMMISSIONED.value)))
    in_force = versions_at(session, [s.id for s in sites], now)
    changed = 0
    for site in sites:
        version = in_force.get(site.id)
        if version is not None and site.current_version_id != version.id:
            _lock(session, site)
            _sync(session, site, now)
            changed += 1
    return changed


# ---------------------------------------------------------------- proposing


def propose_site(session: Session, actor: User, *, code: str, proposal: SiteProposal,
                 reason: str) -> SiteChangeRequest:
    """A new site: the Site row (status proposed, no version) and its `create` request."""
    ensure(session, actor, Permission.SITES_MANAGE)
    code = clean_site_code(session, code)
    reason = clean_reason(reason)
    content = checked_content(session, proposal, SiteStatus.ACTIVE)
    if session.scalar(select(func.count()).select_from(Site).where(Site.code == code)):
        raise errors.DuplicateSiteCode(site_code=code)
    now = utcnow()
    site = Site(code=code, status=SiteStatus.PROPOSED.value, created_at=now, created_by_id=actor.id)
    session.add(site)
    session.flush()
    request = _submit(session, actor, site, ChangeKind.CREATE, content, reason, now)
    audit.append(session, actor, "site.proposed", "site", site.id, None,
                 {"code": site.code, "status": site.status, "request": _request_snapshot(request)})
    return request


def propose_change(session: Session, actor: User, site: Site, *, kind: ChangeKind | str,
                   proposal: SiteProposal | None, reason: str) -> SiteChangeRequest:
    """A change of what the site is (`change`, with the complete proposed version), or of its
    status (suspend, reactivate, decommission: the latest version with the new status), or a new
    `create` request for a site whose first one was rejected or withdrawn."""
    ensure(session, actor, Permission.SITES_MANAGE)
    kind = ChangeKind(clean_choice(kind, ChangeKind, "request_kind"))
    reason = clean_reason(reason)
    now = utcnow()
    _lock(session, site)
    _sync(session, site, now)
    already = open_request_of(session, site.id)
    if already is not None:
        raise errors.RequestAlreadyOpen(site_code=site.code, request_id=already.id)
    latest = latest_version(session, site.id)
    status = SiteStatus(latest.status) if latest else SiteStatus.PROPOSED
    if status not in ALLOWED_FROM[kind]:
        status_zh, status_en = STATUS_TEXT[status]
        kind_zh, kind_en = CHANGE_KIND_TEXT[kind]
        raise errors.ChangeNotAllowed(site_code=site.code, status_zh=status_zh, status_en=status_en,
                                      kind_zh=kind_zh, kind_en=kind_en)
    if kind in (ChangeKind.CREATE, ChangeKind.CHANGE):
        if proposal is None:
            raise errors.ProposalRequired()
        content = checked_content(session, proposal, STATUS_AFTER.get(kind, status))
        if latest is not None and same_content(content, version_content(latest, parameters_of(session, latest.id))):
            raise errors.NothingChanged()
    else:
        content = version_content(latest, parameters_of(session, latest.id))
        content["status"] = STATUS_AFTER[kind].value
    request = _submit(session, actor, site, kind, content, reason, now)
    audit.append(session, actor, "site.change_proposed", "site", site.id, None, _request_snapshot(request))
    return request


def _submit(session: Session, actor: User, site: Site, kind: ChangeKind, content: dict[str, Any], reason: str,
            now: datetime) -> SiteChangeRequest:
    request = SiteChangeRequest(
        site_id=site.id, kind=kind.value, status=ChangeStatus.SUBMITTED.value, proposed=canonical_json(content),
        reason=reason, submitted_by_id=actor.id, submitted_at=now,
    )
    session.add(request)
    session.flush()
    return request


# ---------------------------------------------------------------- deciding


def _lock_request(session: Session, request: SiteChangeRequest) -> Site:
    """Lock the site, then the request (the order propose_change locks in), and refuse a request
    that is no longer open: of two concurrent decisions only the first finds it submitted."""
    site = session.get(Site, request.site_id)
    _lock(session, site)
    _lock(session, request)
    if request.status != ChangeStatus.SUBMITTED.value:
        zh, en = CHANGE_STATUS_TEXT[ChangeStatus(request.status)]
        raise errors.RequestAlreadyDecided(status_zh=zh, status_en=en)
    return site


def decide_change(session: Session, actor: User, request: SiteChangeRequest, *, approve: bool, decision_ref: str,
                  note: str = "", effective_from: datetime | None = None) -> SiteChangeRequest:
    """Approve (with the approving department's reference: the next version, in force from
    `effective_from`, by default now and never earlier) or reject (with a note). The decider is
    never the proposer."""
    ensure(session, actor, Permission.SITES_APPROVE)
    ref = clean_text(decision_ref, "decision_ref", REF_MAX)
    note = clean_text(note, "note", NOTE_MAX)
    now = utcnow()
    site = _lock_request(session, request)
    if request.submitted_by_id == actor.id:
        raise errors.DeciderIsProposer()
    if not approve:
        if not note:
            raise errors.RejectionNoteRequired()
        before = _request_snapshot(request)
        _close(request, actor, ChangeStatus.REJECTED, now, ref=ref, note=note)
        session.flush()
        audit.append(session, actor, "site.change_rejected", "site", site.id, before, _request_snapshot(request))
        return request
    if not ref:
        raise errors.DecisionRefRequired()
    latest = latest_version(session, site.id)
    effective = _effective_from(session, latest, effective_from, now)
    content = proposal_of(request)
    # what is approved is checked again: the preservation table may have changed since
    checked = checked_content(session, proposal_from_content(content), SiteStatus(content["status"]))
    version = SiteVersion(
        site_id=site.id, version_no=(latest.version_no + 1) if latest else 1, valid_from=effective,
        status=checked["status"], name_zh=checked["name_zh"], name_en=checked["name_en"], kind=checked["kind"],
        latitude=checked["latitude"], longitude=checked["longitude"], water_body=checked["water_body"],
        basin=checked["basin"], district=checked["district"], department=checked["department"],
        change_request_id=request.id, approved_by_id=actor.id, approval_ref=ref, created_at=now,
    )
    session.add(version)
    session.flush()
    parameters = [SiteVersionParameter(site_version_id=version.id, parameter=p, frequency=f)
                  for p, f in checked["parameters"]]
    session.add_all(parameters)
    before = {"request": _request_snapshot(request),
              "version": _version_snapshot(latest, parameters_of(session, latest.id)) if latest else None}
    _close(request, actor, ChangeStatus.APPROVED, now, ref=ref, note=note)
    request.effective_from = effective
    request.resulting_version_id = version.id
    session.flush()
    audit.append(session, actor, "site.change_approved", "site", site.id, before,
                 {"request": _request_snapshot(request), "version": _version_snapshot(version, parameters)})
    _sync(session, site, now)
    return request


def _effective_from(session: Session, latest: SiteVersion | None, effective_from: datetime | None,
                    now: datetime) -> datetime:
    """Never before the decision (no retroactive change), never before the latest version."""
    if effective_from is None:
        return now
    if effective_from.tzinfo is None:
        raise ValueError("effective_from must be an aware datetime")
    if effective_from < now:
        raise errors.RetroactiveChange(now=_local(session, now))
    if latest is not None and effective_from < latest.valid_from:
        raise errors.EffectiveBeforeLatest(version_no=latest.version_no, valid_from=_local(session, latest.valid_from))
    return effective_from


def _close(request: SiteChangeRequest, actor: User, status: ChangeStatus, now: datetime, *, ref: str = "",
           note: str = "") -> None:
    request.status = status.value
    request.decided_by_id = actor.id
    request.decided_at = now
    request.decision_ref = ref
    request.decision_note = note


def withdraw_change(session: Session, actor: User, request: SiteChangeRequest, note: str = "") -> SiteChangeRequest:
    """The proposer takes back a request that has not been decided."""
    ensure(session, actor, Permission.SITES_MANAGE)
    note = clean_text(note, "note", NOTE_MAX)
    site = _lock_request(session, request)
    if request.submitted_by_id != actor.id:
        raise errors.NotTheProposer()
    before = _request_snapshot(request)
    _close(request, actor, ChangeStatus.WITHDRAWN, utcnow(), note=note)
    session.flush()
    audit.append(session, actor, "site.change_withdrawn", "site", site.id, before, _request_snapshot(request))
    return request
