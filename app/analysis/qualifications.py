"""Analyst qualifications (上岗证, 持证上岗; DOMAIN.md §2 rule 3; issue 8 item 2).

A technical manager grants a person a qualification for a method, valid on the lab-local dates
from `valid_from` to `valid_to` (both included), issued by an examining body; never to
themselves, and only to someone who works at the bench or checks (analyst, checker, reviewer,
sampler for field methods). A qualification is revoked with a reason, never deleted.

`assert_analyst_qualified` is the gate batches, result entry and checking call with the time of
the act: a qualification covers it when the act's lab-local date is inside its period and it was
not revoked at or before the act (a revocation after the act leaves the act qualified).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.analysis import method_errors as errors
from app.analysis.methods import STATE_WORDS, MethodState
from app.analysis.models import Method, Qualification
from app.core import audit
from app.core.db import utcnow
from app.core.files import StoredFile
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, roles_at
from app.core.roles import Role
from app.core.web import Page
from app.people.models import User
from app.samples import lab_input

BENCH_ROLES = frozenset({Role.ANALYST, Role.CHECKER, Role.REVIEWER, Role.SAMPLER})
STATUSES = ("valid", "expiring", "expired", "revoked", "future")
EXPIRING_DAYS = 60


def _date(value: Any, field_zh: str, field_en: str) -> date:
    if isinstance(value, datetime):
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=str(value)[:40])
    if isinstance(value, date):
        return value
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        raise lab_input.FieldRequired(field_zh=field_zh, field_en=field_en)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=text[:40]) from None
    if not 2000 <= day.year <= 2999:
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=text[:40])
    return day


def _record(q: Qualification, user: User, method: Method) -> dict[str, Any]:
    return {"user_id": user.id, "username": user.username, "method": method.code,
            "certificate_no": q.certificate_no, "issued_by": q.issued_by, "valid_from": q.valid_from,
            "valid_to": q.valid_to, "attachment_id": q.attachment_id}


def grant_qualification(session: Session, actor: User, user: User, method: Method, certificate_no: str,
                        issued_by: str, valid_from: Any, valid_to: Any,
                        attachment: StoredFile | None = None) -> Qualification:
    """Record a 上岗证 for `user` and `method` (the certificate's number, issuer and period)."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    if user.id == actor.id:
        raise errors.QualificationToSelf()
    certificate_no = lab_input.text(certificate_no, "证书编号", "The certificate number", 60, required=True)
    issued_by = lab_input.text(issued_by, "发证机构", "The issuing body", 200, required=True)
    start = _date(valid_from, "起始日期", "The start of validity")
    end = _date(valid_to, "截止日期", "The end of validity")
    if end <= start:
        raise errors.QualificationDatesInvalid(valid_from=start.isoformat(), valid_to=end.isoformat())
    state = session.scalar(select(Method.state).where(Method.id == method.id))  # as it is now, not as passed
    if state != MethodState.ACTIVE.value:
        zh, en = STATE_WORDS.get(state, (state, state))
        raise errors.MethodNotActive(method=method.code, state_zh=zh, state_en=en)
    if not user.active:
        raise errors.PersonInactive(person=user.printed_name)
    if not roles_at(session, user.id) & BENCH_ROLES:
        raise errors.QualificationNeedsBenchRole(person=user.printed_name)
    row = Qualification(user_id=user.id, method_id=method.id, certificate_no=certificate_no, issued_by=issued_by,
                        valid_from=start, valid_to=end, attachment_id=attachment.id if attachment else None,
                        granted_at=utcnow(), granted_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "qualification.granted", "qualification", row.id, None, _record(row, user, method))
    return row


def revoke_qualification(session: Session, actor: User, qualification: Qualification, reason: str) -> Qualification:
    """Revoke from now: acts before stay qualified, acts from now on are refused."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    row = session.execute(select(Qualification).where(Qualification.id == qualification.id).with_for_update()
                          .execution_options(populate_existing=True)).scalar_one()
    if row.revoked_at is not None:
        shown = row.revoked_at.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")
        raise errors.QualificationAlreadyRevoked(certificate_no=row.certificate_no, revoked_at=shown)
    reason = lab_input.text(reason, "撤销原因", "The reason for revoking", 500, required=True)
    row.revoked_at, row.revoked_by_id, row.revoke_reason = utcnow(), actor.id, reason
    session.flush()
    audit.append(session, actor, "qualification.revoked", "qualification", row.id, {"revoked_at": None},
                 {"certificate_no": row.certificate_no, "user_id": row.user_id, "method_id": row.method_id,
                  "revoked_at": row.revoked_at, "reason": reason})
    return row


# ---------------------------------------------------------------- the gate


def covering(session: Session, user_id: int, method_id: int, at: datetime) -> Qualification | None:
    """The qualification that covers the act at `at`, the one valid longest; None when none."""
    day = lab_calendar(session).local_date(at)
    return session.scalars(
        select(Qualification).where(
            Qualification.user_id == user_id, Qualification.method_id == method_id,
            Qualification.valid_from <= day, Qualification.valid_to >= day,
            or_(Qualification.revoked_at.is_(None), Qualification.revoked_at > at))
        .order_by(Qualification.valid_to.desc(), Qualification.id.desc()).limit(1)).first()


def assert_analyst_qualified(session: Session, user: User, method_id: int, at: datetime) -> Qualification:
    """DOMAIN.md §2 rule 3, at the time of the act: AnalystNotQualified unless a 上岗证 for the
    method covers the act's lab-local date and was not revoked by then."""
    found = covering(session, user.id, method_id, at)
    if found is None:
        code = session.scalar(select(Method.code).where(Method.id == method_id)) or str(method_id)
        raise errors.AnalystNotQualified(person=getattr(user, "printed_name", str(user.id)), method=code,
                                         day=lab_calendar(session).local_date(at).isoformat())
    return found


# ---------------------------------------------------------------- reading


def get_qualification(session: Session, qualification_id: int) -> Qualification:
    row = session.get(Qualification, qualification_id)
    if row is None:
        raise errors.QualificationNotFound(qualification=qualification_id)
    return row


def status_of(q: Qualification, today: date, expiring_days: int = EXPIRING_DAYS) -> str:
    if q.revoked_at is not None:
        return "revoked"
    if q.valid_to < today:
        return "expired"
    if q.valid_from > today:
        return "future"
    if q.valid_to <= today + timedelta(days=expiring_days):
        return "expiring"
    return "valid"


def _expiring_clause(today: date, within_days: int) -> Any:
    return (Qualification.revoked_at.is_(None), Qualification.valid_to >= today,
            Qualification.valid_to <= today + timedelta(days=within_days))


def qualifications_expiring(session: Session, within_days: int) -> list[Qualification]:
    """Unrevoked qualifications whose period ends within `within_days` lab days, soonest first."""
    today = lab_calendar(session).today()
    return list(session.scalars(select(Qualification).where(*_expiring_clause(today, within_days))
                                .order_by(Qualification.valid_to, Qualification.id)))


def count_expiring(session: Session, within_days: int = EXPIRING_DAYS) -> int:
    today = lab_calendar(session).today()
    return session.scalar(select(func.count()).select_from(Qualification)
                          .where(*_expiring_clause(today, within_days))) or 0


@dataclass
class QualificationRow:
    qualification: Qualification
    user: User
    method: Method
    status: str


def list_qualifications(session: Session, *, person: str = "", method: str = "", status: str = "",
                        expiring: int | None = None, page: int = 1, size: int = 25) -> Page[QualificationRow]:
    """The register, filtered by person (name or username), method code, status or 'expiring
    within n days'; two queries a page whatever its size."""
    today = lab_calendar(session).today()
    query = select(Qualification, User, Method).join(User, User.id == Qualification.user_id) \
        .join(Method, Method.id == Qualification.method_id)
    who = re.sub(r"\s+", " ", person or "").strip()[:60]
    if who:
        query = query.where(User.username.contains(who, autoescape=True)
                            | User.display_name_zh.contains(who, autoescape=True)
                            | func.upper(User.display_name_en).contains(who.upper(), autoescape=True))
    code = re.sub(r"\s+", " ", method or "").strip().upper()[:60]
    if code:
        query = query.where(func.upper(Method.code).contains(code, autoescape=True))
    if expiring is not None:
        query = query.where(*_expiring_clause(today, expiring))
    if status == "revoked":
        query = query.where(Qualification.revoked_at.is_not(None))
    elif status == "expired":
        query = query.where(Qualification.revoked_at.is_(None), Qualification.valid_to < today)
    elif status == "future":
        query = query.where(Qualification.revoked_at.is_(None), Qualification.valid_from > today)
    elif status == "expiring":
        query = query.where(*_expiring_clause(today, EXPIRING_DAYS), Qualification.valid_from <= today)
    elif status == "valid":
        query = query.where(Qualification.revoked_at.is_(None), Qualification.valid_from <= today,
                            Qualification.valid_to >= today)
    query = query.order_by(Qualification.valid_to, Qualification.id)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page = max(1, page)
    rows = session.execute(query.limit(size).offset((page - 1) * size)).all()
    items = [QualificationRow(q, u, m, status_of(q, today)) for q, u, m in rows]
    return Page(items, page, size, total)


def qualified_for(session: Session, method_id: int, at: datetime | None = None) -> list[tuple[Qualification, User]]:
    """Who may analyse by the method at `at` (default now): covering qualifications with their holders."""
    moment = at or utcnow()
    day = lab_calendar(session).local_date(moment)
    return [(q, u) for q, u in session.execute(
        select(Qualification, User).join(User, User.id == Qualification.user_id).where(
            Qualification.method_id == method_id, Qualification.valid_from <= day, Qualification.valid_to >= day,
            or_(Qualification.revoked_at.is_(None), Qualification.revoked_at > moment))
        .order_by(User.username, Qualification.valid_to))]


def bench_people(session: Session) -> list[User]:
    """Active people who may be granted a qualification now, in one query."""
    from app.people.models import RoleGrant

    now = utcnow()
    holders = select(RoleGrant.user_id).where(
        RoleGrant.status == "active", RoleGrant.role.in_([r.value for r in BENCH_ROLES]),
        RoleGrant.valid_from <= now, or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > now))
    return list(session.scalars(select(User).where(User.id.in_(holders), User.active.is_(True))
                                .order_by(User.username)))
