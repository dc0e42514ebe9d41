"""Rules for users, sign-in, role grants and API tokens. Every change appends an audit event."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.audit import Actor
from app.core.db import utcnow
from app.core.errors import InvalidInput, NotFound
from app.core.passwords import DUMMY_HASH, check_password_policy, hash_password, needs_rehash, verify_password
from app.core.permissions import Permission, ensure, forget_roles
from app.core.roles import Role
from app.people.errors import (
    AccountInactive,
    AccountLocked,
    GrantAlreadyHeld,
    GrantNotPending,
    InvalidCredentials,
    InvalidUsername,
    SelfGrantForbidden,
    TokenAlreadyRevoked,
    UnknownRole,
    UsernameTaken,
    WrongSigningPassword,
)
from app.people.models import ApiToken, Laboratory, RoleGrant, User

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
TOKEN_PREFIX = "lims_"
LANGUAGES = ("zh_CN", "en")


def user_snapshot(user: User) -> dict[str, Any]:
    """What the audit trail records of a user (never the password hash)."""
    return {
        "username": user.username,
        "display_name_zh": user.display_name_zh,
        "display_name_en": user.display_name_en,
        "active": user.active,
        "language": user.language,
        "failed_logins": user.failed_logins,
        "locked_until": user.locked_until,
        "session_epoch": user.session_epoch,
    }


def grant_snapshot(grant: RoleGrant) -> dict[str, Any]:
    return {
        "user_id": grant.user_id,
        "role": grant.role,
        "status": grant.status,
        "valid_from": grant.valid_from,
        "valid_to": grant.valid_to,
        "proposed_by_id": grant.proposed_by_id,
        "decided_by_id": grant.decided_by_id,
        "note": grant.note,
    }


# ---------------------------------------------------------------- users


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(what_zh="用户", what_en="User")
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username.strip().lower())).first()


def _validate_names(display_name_zh: str, display_name_en: str) -> tuple[str, str]:
    zh, en = display_name_zh.strip(), display_name_en.strip()
    if not zh:
        raise InvalidInput(detail="显示名（中文）不能为空 / the Chinese display name is required")
    if len(zh) > 100 or len(en) > 100:
        raise InvalidInput(detail="显示名过长 / display name longer than 100 characters")
    return zh, en


def create_user(
    session: Session,
    actor: Actor | None,
    username: str,
    display_name_zh: str,
    password: str,
    *,
    display_name_en: str = "",
    language: str = "zh_CN",
    check_permission: bool = True,
) -> User:
    """Register a person. The CLI bootstrap calls this as the system (check_permission=False)."""
    if check_permission:
        ensure(session, actor, Permission.USERS_MANAGE)
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise InvalidUsername()
    zh, en = _validate_names(display_name_zh, display_name_en)
    if language not in LANGUAGES:
        raise InvalidInput(detail=f"language {language!r}")
    check_password_policy(username, password)
    if find_user(session, username) is not None:
        raise UsernameTaken(username=username)
    user = User(
        username=username,
        display_name_zh=zh,
        display_name_en=en,
        password_hash=hash_password(password),
        language=language,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    audit.append(session, actor, "user.created", "user", user.id, None, user_snapshot(user))
    return user


def update_user_names(
    session: Session, actor: Actor, user_id: int, display_name_zh: str, display_name_en: str
) -> User:
    ensure(session, actor, Permission.USERS_MANAGE)
    user = get_user(session, user_id)
    before = user_snapshot(user)
    user.display_name_zh, user.display_name_en = _validate_names(display_name_zh, display_name_en)
    session.flush()
    audit.append(session, actor, "user.renamed", "user", user.id, before, user_snapshot(user))
    return user


def set_active(session: Session, actor: Actor, user_id: int, active: bool, reason: str) -> User:
    """Deactivate (or reactivate) an account; deactivation ends all its sessions."""
    ensure(session, actor, Permission.USERS_MANAGE)
    if not reason.strip():
        raise InvalidInput(detail="原因不能为空 / a reason is required")
    user = get_user(session, user_id)
    if user.id == actor.id and not active:
        raise InvalidInput(detail="不能停用自己的账户 / you cannot deactivate your own account")
    before = user_snapshot(user)
    if user.active == active:
        return user
    user.active = active
    user.deactivated_at = None if active else utcnow()
    user.session_epoch += 1
    session.flush()
    action = "user.reactivated" if active else "user.deactivated"
    audit.append(
        session, actor, action, "user", user.id, before, {**user_snapshot(user), "reason": reason}
    )
    return user


def change_own_password(
    session: Session, user: User, current_password: str, new_password: str
) -> User:
    confirm_password(session, user, current_password, purpose="password_change")
    return _set_password(session, user, user, new_password, "user.password_changed")


def reset_password(session: Session, actor: Actor | None, user_id: int, new_password: str, *,
                   check_permission: bool = True) -> User:
    """An administrator (or the CLI, as the system) sets a new password and unlocks the account."""
    if check_permission:
        ensure(session, actor, Permission.USERS_MANAGE)
    user = get_user(session, user_id)
    return _set_password(session, actor, user, new_password, "user.password_reset")


def _set_password(
    session: Session, actor: Actor | None, user: User, new_password: str, action: str
) -> User:
    check_password_policy(user.username, new_password)
    before = user_snapshot(user)
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    user.session_epoch += 1  # every other session of this user ends
    session.flush()
    audit.append(session, actor, action, "user", user.id, before, user_snapshot(user))
    return user


def set_language(session: Session, user: User, language: str) -> User:
    if language not in LANGUAGES:
        raise InvalidInput(detail=f"language {language!r}")
    if user.language == language:
        return user
    before = user_snapshot(user)
    user.language = language
    session.flush()
    audit.append(session, user, "user.language_set", "user", user.id, before, user_snapshot(user))
    return user


# ---------------------------------------------------------------- sign-in and re-authentication


def _register_failure(
    session: Session, user_id: int, purpose: str, max_failures: int, lock_minutes: int
) -> None:
    """Count a failed password; the `max_failures`-th in a row locks the account."""
    user = get_user(session, user_id)
    before = user_snapshot(user)
    user.failed_logins += 1
    locked = user.failed_logins >= max_failures
    if locked:
        user.locked_until = utcnow() + timedelta(minutes=lock_minutes)
        user.failed_logins = 0
    session.flush()
    audit.append(
        session, user, f"{purpose}.failed", "user", user.id, before,
        {**user_snapshot(user), "purpose": purpose},
    )
    if locked:
        audit.append(
            session, user, "user.locked", "user", user.id, None,
            {"locked_until": user.locked_until, "after_failures": max_failures},
        )


def _failure_recorder(user_id: int, purpose: str, max_failures: int, lock_minutes: int):
    return lambda session: _register_failure(session, user_id, purpose, max_failures, lock_minutes)


def _refusal_recorder(user_id: int | None, action: str, details: dict[str, Any]):
    def record(session: Session) -> None:
        actor = get_user(session, user_id) if user_id is not None else None
        audit.append(session, actor, action, "user", user_id if user_id is not None else "-",
                     None, details)

    return record


def _refuse_if_unusable(user: User, purpose: str, now: datetime) -> None:
    if not user.active:
        raise AccountInactive(record=_refusal_recorder(
            user.id, f"{purpose}.refused", {"reason": "inactive"}))
    if user.locked_until and user.locked_until > now:
        raise AccountLocked(
            until=user.locked_until.strftime("%Y-%m-%d %H:%M UTC"),
            record=_refusal_recorder(user.id, f"{purpose}.refused",
                                     {"reason": "locked", "locked_until": user.locked_until}),
        )


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    max_failures: int = 5,
    lock_minutes: int = 15,
) -> User:
    """Sign-in. Failures are recorded; the 5th in a row locks the account for 15 minutes."""
    now = utcnow()
    user = find_user(session, username) if username.strip() else None
    if user is None:
        verify_password(DUMMY_HASH, password)  # same cost as a real check
        raise InvalidCredentials(record=_refusal_recorder(
            None, "login.unknown_user", {"username": username.strip()[:64]}))
    if not user.active and not verify_password(user.password_hash, password):
        # Only someone who knows the password learns that the account is deactivated; anyone
        # else gets the answer an unknown username gets (no confirming which accounts exist).
        raise InvalidCredentials(record=_refusal_recorder(
            user.id, "login.refused", {"reason": "inactive"}))
    _refuse_if_unusable(user, "login", now)
    if not verify_password(user.password_hash, password):
        raise InvalidCredentials(
            record=_failure_recorder(user.id, "login", max_failures, lock_minutes))
    before = user_snapshot(user)
    user.failed_logins = 0
    user.locked_until = None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)  # e.g. a demo user's cheap hash
    session.flush()
    audit.append(session, user, "login.succeeded", "user", user.id, before, user_snapshot(user))
    return user


def confirm_password(
    session: Session,
    user: User,
    password: str,
    *,
    purpose: str = "signature",
    max_failures: int = 5,
    lock_minutes: int = 15,
) -> None:
    """Re-authentication for a signed act or a password change; failures count toward the lock.

    A wrong password undoes the whole act it was meant to sign (see RecordedRefusal)."""
    _refuse_if_unusable(user, purpose, utcnow())
    if not verify_password(user.password_hash, password):
        raise WrongSigningPassword(
            record=_failure_recorder(user.id, purpose, max_failures, lock_minutes))
    if user.failed_logins:
        user.failed_logins = 0
        session.flush()


def record_logout(session: Session, user: User) -> None:
    audit.append(session, user, "logout", "user", user.id, None, None)


# ---------------------------------------------------------------- role grants (two people)


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UnknownRole(role=role) from None


def _open_grant_exists(session: Session, user_id: int, role: Role, now: datetime) -> bool:
    return session.scalar(
        select(func.count(RoleGrant.id)).where(
            RoleGrant.user_id == user_id,
            RoleGrant.role == role.value,
            or_(
                RoleGrant.status == "proposed",
                (RoleGrant.status == "active")
                & or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > now),
            ),
        )
    ) > 0


def propose_role(
    session: Session,
    actor: Actor,
    user_id: int,
    role: str,
    *,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    note: str = "",
) -> RoleGrant:
    """An admin proposes; the grant takes effect only after a quality manager approves."""
    ensure(session, actor, Permission.USERS_MANAGE)
    wanted = _role(role)
    user = get_user(session, user_id)
    if user.id == actor.id:
        raise SelfGrantForbidden()
    now = utcnow()
    start = valid_from or now
    if valid_to is not None and valid_to <= start:
        raise InvalidInput(detail="有效期结束须晚于开始 / the end must be after the start")
    if _open_grant_exists(session, user.id, wanted, now):
        raise GrantAlreadyHeld(role=wanted.value)
    grant = RoleGrant(
        user_id=user.id, role=wanted.value, status="proposed", valid_from=start,
        valid_to=valid_to, proposed_by_id=actor.id, proposed_at=now, note=note.strip()[:500],
    )
    session.add(grant)
    session.flush()
    audit.append(session, actor, "role.proposed", "role_grant", grant.id, None,
                 grant_snapshot(grant))
    return grant


def decide_role(
    session: Session, actor: Actor, grant_id: int, approve: bool, note: str = ""
) -> RoleGrant:
    ensure(session, actor, Permission.ROLES_APPROVE)
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise NotFound(what_zh="角色授权", what_en="Role grant")
    if grant.status != "proposed":
        raise GrantNotPending()
    if actor.id in (grant.user_id, grant.proposed_by_id):
        raise SelfGrantForbidden()
    if not approve and not note.strip():
        raise InvalidInput(detail="拒绝须说明原因 / a refusal needs a reason")
    before = grant_snapshot(grant)
    grant.status = "active" if approve else "rejected"
    grant.decided_by_id = actor.id
    grant.decided_at = utcnow()
    if approve and grant.valid_from < grant.decided_at:
        # Not in force before the second person said yes: roles are evaluated at the time of
        # an act, and between proposal and approval the role was not held.
        grant.valid_from = grant.decided_at
    if note.strip():
        grant.note = (grant.note + "\n" + note.strip()).strip()[:500]
    session.flush()
    forget_roles(session)
    action = "role.approved" if approve else "role.rejected"
    audit.append(session, actor, action, "role_grant", grant.id, before, grant_snapshot(grant))
    return grant


def end_role(session: Session, actor: Actor, grant_id: int, reason: str) -> RoleGrant:
    """End an active grant now; the row stays as the record of the period it covered."""
    ensure(session, actor, Permission.USERS_MANAGE)
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise NotFound(what_zh="角色授权", what_en="Role grant")
    if not reason.strip():
        raise InvalidInput(detail="原因不能为空 / a reason is required")
    now = utcnow()
    if grant.status != "active" or (grant.valid_to is not None and grant.valid_to <= now):
        raise GrantNotPending()
    before = grant_snapshot(grant)
    grant.valid_to = now
    grant.note = (grant.note + "\n" + reason.strip()).strip()[:500]
    session.flush()
    forget_roles(session)
    audit.append(session, actor, "role.ended", "role_grant", grant.id, before,
                 grant_snapshot(grant))
    return grant


def grant_role_as_system(session: Session, user: User, role: str, note: str, *,
                         valid_from: datetime | None = None) -> RoleGrant:
    """Bootstrap only (CLI `lims user add`, demo data): the operator of the server is the
    second person; recorded in the trail as the system. `valid_from` (not after now) states
    since when the person has held the role, for staff whose earlier work is being entered."""
    wanted = _role(role)
    now = utcnow()
    if _open_grant_exists(session, user.id, wanted, now):
        raise GrantAlreadyHeld(role=wanted.value)
    grant = RoleGrant(
        user_id=user.id, role=wanted.value, status="active", valid_from=min(valid_from or now, now), proposed_at=now,
        decided_at=now, note=note,
    )
    session.add(grant)
    session.flush()
    forget_roles(session)
    audit.append(session, None, "role.granted_by_system", "role_grant", grant.id, None,
                 grant_snapshot(grant))
    return grant


# ---------------------------------------------------------------- API tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, actor: Actor | None, user_id: int, name: str, *, check_permission: bool = True
) -> tuple[ApiToken, str]:
    """Returns the row and the token itself; the token is shown once and never stored."""
    user = get_user(session, user_id)
    if check_permission:
        own = actor is not None and actor.id == user.id
        ensure(session, actor, Permission.OWN_ACCOUNT if own else Permission.TOKENS_MANAGE)
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput(detail="令牌名称须为 1–100 个字符 / a token name is 1–100 characters")
    if not user.active:
        raise AccountInactive()
    secret = secrets.token_urlsafe(32)
    token = f"{TOKEN_PREFIX}{secret}"
    row = ApiToken(
        user_id=user.id, name=name, prefix=token[:12], token_hash=_token_hash(token),
        created_at=utcnow(), created_by_id=actor.id if actor else None,
    )
    session.add(row)
    session.flush()
    audit.append(session, actor, "token.created", "api_token", row.id, None,
                 {"user_id": user.id, "name": name, "prefix": row.prefix})
    return row, token


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(what_zh="API 令牌", what_en="API token")
    ensure(session, actor, Permission.OWN_ACCOUNT if row.user_id == actor.id
           else Permission.TOKENS_MANAGE)
    if row.revoked_at is not None:
        raise TokenAlreadyRevoked()
    row.revoked_at = utcnow()
    row.revoked_by_id = actor.id
    session.flush()
    audit.append(session, actor, "token.revoked", "api_token", row.id, None,
                 {"user_id": row.user_id, "name": row.name, "prefix": row.prefix})
    return row


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a presented bearer token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    # one query: every API request (scanners, instruments) pays for it
    return session.scalars(
        select(User).join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _token_hash(token), ApiToken.revoked_at.is_(None), User.active.is_(True))
    ).first()


# ---------------------------------------------------------------- the laboratory


def lab_snapshot(lab: Laboratory) -> dict[str, Any]:
    return lab.model_dump(exclude={"id"})


def current_lab(session: Session) -> Laboratory | None:
    return session.scalars(select(Laboratory).order_by(Laboratory.id).limit(1)).first()


CMA_RE = re.compile(r"^\d{12}$")


def save_lab(session: Session, actor: Actor | None, *, check_permission: bool = True,
             **fields: str) -> Laboratory:
    """Create or update the lab profile (name, address, 12-digit CMA certificate number)."""
    if check_permission:
        ensure(session, actor, Permission.LAB_MANAGE)
    clean = {k: (v or "").strip() for k, v in fields.items()}
    if not clean.get("name_zh"):
        raise InvalidInput(detail="实验室名称（中文）不能为空 / the lab's Chinese name is required")
    cma = clean.get("cma_certificate_no", "")
    if cma and not CMA_RE.match(cma):
        raise InvalidInput(detail="CMA 证书编号须为 12 位数字 / the CMA number has 12 digits")
    lab = current_lab(session)
    before = lab_snapshot(lab) if lab else None
    if lab is None:
        lab = Laboratory(**clean)
        session.add(lab)
    else:
        for key, value in clean.items():
            setattr(lab, key, value)
    session.flush()
    audit.append(session, actor, "lab.saved", "laboratory", lab.id, before, lab_snapshot(lab))
    return lab

