"""Pages and API for sign-in, one's own account, users, role grants, tokens and the lab."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, or_, select

from app.core.auth import DbSession, end_session, optional_user, public, require, start_session
from app.core.db import committing, utcnow
from app.core.errors import DomainError, NotFound
from app.core.i18n import N_, current_language
from app.core.middleware import LANGUAGE_COOKIE
from app.core.permissions import Permission, roles_at
from app.core.registry import NavItem, ScanHit, Worklist, add_nav, add_scan_resolver, add_worklist
from app.core.roles import Role
from app.core.web import paginate, render, see_other
from app.people import service
from app.people.models import ApiToken, RoleGrant, User
from app.shell.routes import _safe_back

router = APIRouter()
Text = Annotated[str, Form(max_length=200)]
Secret = Annotated[str, Form(max_length=256)]
OptionalText = Annotated[str, Form(max_length=500)]
# An id in a URL is an INTEGER primary key: anything outside its range names nothing, and is
# refused here rather than overflowing the database driver (a 500 on both engines).
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]


# ---------------------------------------------------------------- sign-in


@router.get("/login", include_in_schema=False, dependencies=[public()])
def login_page(request: Request, session: DbSession, next: str = "/dashboard",
               expired: int = 0):
    if optional_user(request, session) is not None:
        return RedirectResponse(_safe_back(next), status_code=303)
    return render(request, "people/login.html", {"next": _safe_back(next), "expired": expired})


@router.post("/login", include_in_schema=False, dependencies=[public()])
def login(request: Request, session: DbSession, username: Text, password: Secret,
          next: Annotated[str, Form(max_length=500)] = "/dashboard"):
    settings = request.app.state.settings
    try:
        with committing(session):
            user = service.authenticate(
                session, username, password, max_failures=settings.login_max_failures,
                lock_minutes=settings.login_lock_minutes,
            )
    except DomainError as error:
        return render(
            request, "people/login.html",
            {"next": _safe_back(next), "error": error.message(current_language()),
             "username": username[:64]},
            status_code=error.http_status,
        )
    start_session(request, user)
    response = RedirectResponse(_safe_back(next), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, user.language, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, session: DbSession, user: User = require(Permission.OWN_ACCOUNT)):
    with committing(session):
        service.record_logout(session, user)
    end_session(request)
    return RedirectResponse("/login", status_code=303)


# ---------------------------------------------------------------- one's own account


def _account_context(session, user: User) -> dict:
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc()).limit(50)
    ).all()
    grants = session.scalars(
        select(RoleGrant).where(RoleGrant.user_id == user.id).order_by(RoleGrant.id.desc())
    ).all()
    return {"tokens": tokens, "grants": grants, "roles": sorted(roles_at(session, user.id))}


@router.get("/account", include_in_schema=False)
def account(request: Request, session: DbSession, user: User = require(Permission.OWN_ACCOUNT)):
    return render(request, "people/account.html", _account_context(session, user))


@router.post("/account/language", include_in_schema=False)
def set_language(request: Request, session: DbSession,
                 language: Annotated[str, Form(max_length=8)],
                 next: Annotated[str, Form(max_length=500)] = "/dashboard",
                 user: User = require(Permission.OWN_ACCOUNT)):
    with committing(session):
        service.set_language(session, user, language)
    response = see_other(request, _safe_back(next))
    response.set_cookie(LANGUAGE_COOKIE, user.language, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/account/password", include_in_schema=False)
def change_password(request: Request, session: DbSession, current_password: Secret,
                    new_password: Secret, user: User = require(Permission.OWN_ACCOUNT)):
    with committing(session):
        service.change_own_password(session, user, current_password, new_password)
    start_session(request, user)  # this session survives; every other one ends
    return render(request, "people/account.html",
                  {**_account_context(session, user), "notice": N_("Password changed.")})


@router.post("/account/tokens", include_in_schema=False)
def create_own_token(request: Request, session: DbSession, name: Text,
                     user: User = require(Permission.OWN_ACCOUNT)):
    with committing(session):
        _, token = service.create_token(session, user, user.id, name)
    return render(request, "people/account.html",
                  {**_account_context(session, user), "new_token": token})


@router.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
def revoke_own_token(request: Request, session: DbSession, token_id: RowId,
                     user: User = require(Permission.OWN_ACCOUNT)):
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(what_zh="API 令牌", what_en="API token")
    with committing(session):
        service.revoke_token(session, user, token_id)
    return see_other(request, "/account")


# ---------------------------------------------------------------- users (admin)


@router.get("/people/users", include_in_schema=False)
def users(request: Request, session: DbSession, q: str = Query("", max_length=64),
          page: int = Query(1, ge=1, le=100000), user: User = require(Permission.USERS_READ)):
    stmt = select(User).order_by(User.username)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(or_(func.lower(User.username).like(like),
                              User.display_name_zh.like(f"%{q.strip()}%"),
                              func.lower(User.display_name_en).like(like)))
    result = paginate(session, stmt, page, request.app.state.settings.page_size)
    roles_by_user = _roles_held_now(session, [u.id for u in result.items])
    return render(request, "people/users.html",
                  {"page": result, "q": q, "roles_by_user": roles_by_user}, block="results")


@router.get("/people/users/new", include_in_schema=False)
def new_user_form(request: Request, user: User = require(Permission.USERS_MANAGE)):
    return render(request, "people/user_new.html", {})


@router.post("/people/users", include_in_schema=False)
def create_user(request: Request, session: DbSession, username: Text, display_name_zh: Text,
                password: Secret, display_name_en: Annotated[str, Form(max_length=200)] = "",
                language: Annotated[str, Form(max_length=8)] = "zh_CN",
                user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        created = service.create_user(session, user, username, display_name_zh, password,
                                      display_name_en=display_name_en, language=language)
    return see_other(request, f"/people/users/{created.id}")


def _roles_held_now(session, user_ids: list[int]) -> dict[int, list[str]]:
    """The roles in force now for a page of users, in one query: approved grants whose period
    covers now (one that ends next month counts; one that starts next week does not yet)."""
    if not user_ids:
        return {}
    now = utcnow()
    rows = session.execute(
        select(RoleGrant.user_id, RoleGrant.role).where(
            RoleGrant.user_id.in_(user_ids), RoleGrant.status == "active",
            RoleGrant.valid_from <= now, or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > now),
        ).order_by(RoleGrant.role)
    ).all()
    roles: dict[int, list[str]] = {}
    for user_id, role in rows:
        roles.setdefault(user_id, []).append(role)
    return roles



@router.get("/people/users/{user_id}", include_in_schema=False)
def user_detail(request: Request, session: DbSession, user_id: RowId,
                user: User = require(Permission.USERS_READ)):
    person = service.get_user(session, user_id)
    grants = session.scalars(
        select(RoleGrant).where(RoleGrant.user_id == person.id).order_by(RoleGrant.id.desc())
    ).all()
    people_ids = {g.proposed_by_id for g in grants} | {g.decided_by_id for g in grants}
    people = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_([i for i in people_ids if i]))
    )} if any(people_ids) else {}
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == person.id).order_by(ApiToken.id.desc())
    ).all()
    return render(request, "people/user_detail.html", {
        "person": person, "grants": grants, "people": people, "tokens": tokens,
        "roles": list(Role), "current_roles": sorted(roles_at(session, person.id)),
    })


@router.post("/people/users/{user_id}/names", include_in_schema=False)
def rename_user(request: Request, session: DbSession, user_id: RowId, display_name_zh: Text,
                display_name_en: Annotated[str, Form(max_length=200)] = "",
                user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        service.update_user_names(session, user, user_id, display_name_zh, display_name_en)
    return see_other(request, f"/people/users/{user_id}")


@router.post("/people/users/{user_id}/active", include_in_schema=False)
def set_active(request: Request, session: DbSession, user_id: RowId,
               active: Annotated[bool, Form()], reason: OptionalText,
               user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        service.set_active(session, user, user_id, active, reason)
    return see_other(request, f"/people/users/{user_id}")


@router.post("/people/users/{user_id}/password", include_in_schema=False)
def reset_password(request: Request, session: DbSession, user_id: RowId, new_password: Secret,
                   user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        service.reset_password(session, user, user_id, new_password)
    return see_other(request, f"/people/users/{user_id}")


@router.post("/people/users/{user_id}/roles", include_in_schema=False)
def propose_role(request: Request, session: DbSession, user_id: RowId,
                 role: Annotated[str, Form(max_length=32)],
                 note: Annotated[str, Form(max_length=500)] = "",
                 user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        service.propose_role(session, user, user_id, role, note=note)
    return see_other(request, f"/people/users/{user_id}")


@router.post("/people/users/{user_id}/tokens", include_in_schema=False)
def create_token_for_user(request: Request, session: DbSession, user_id: RowId, name: Text,
                          user: User = require(Permission.TOKENS_MANAGE)):
    with committing(session):
        row, token = service.create_token(session, user, user_id, name)
    return render(request, "people/token_created.html", {"row": row, "token": token})


@router.post("/people/tokens/{token_id}/revoke", include_in_schema=False)
def revoke_token(request: Request, session: DbSession, token_id: RowId,
                 user: User = require(Permission.TOKENS_MANAGE)):
    with committing(session):
        row = service.revoke_token(session, user, token_id)
    return see_other(request, f"/people/users/{row.user_id}")


# ---------------------------------------------------------------- role grants (QM decides)


@router.get("/people/roles", include_in_schema=False)
def pending_grants(request: Request, session: DbSession,
                   user: User = require(Permission.USERS_READ)):
    grants = session.scalars(
        select(RoleGrant).where(RoleGrant.status == "proposed").order_by(RoleGrant.id).limit(200)
    ).all()
    ids = {g.user_id for g in grants} | {g.proposed_by_id for g in grants if g.proposed_by_id}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    return render(request, "people/grants.html", {"grants": grants, "people": people})


@router.post("/people/roles/{grant_id}/decision", include_in_schema=False)
def decide_grant(request: Request, session: DbSession, grant_id: RowId,
                 approve: Annotated[bool, Form()],
                 note: Annotated[str, Form(max_length=500)] = "",
                 user: User = require(Permission.ROLES_APPROVE)):
    with committing(session):
        service.decide_role(session, user, grant_id, approve, note)
    return see_other(request, "/people/roles")


@router.post("/people/roles/{grant_id}/end", include_in_schema=False)
def end_grant(request: Request, session: DbSession, grant_id: RowId, reason: OptionalText,
              user: User = require(Permission.USERS_MANAGE)):
    with committing(session):
        grant = service.end_role(session, user, grant_id, reason)
    return see_other(request, f"/people/users/{grant.user_id}")


# ---------------------------------------------------------------- the laboratory profile


@router.get("/people/lab", include_in_schema=False)
def lab(request: Request, session: DbSession, user: User = require(Permission.LAB_READ)):
    return render(request, "people/lab.html", {"lab": service.current_lab(session)})


@router.post("/people/lab", include_in_schema=False)
def save_lab(request: Request, session: DbSession, name_zh: Text,
             name_en: Annotated[str, Form(max_length=200)] = "",
             address_zh: Annotated[str, Form(max_length=300)] = "",
             address_en: Annotated[str, Form(max_length=300)] = "",
             cma_certificate_no: Annotated[str, Form(max_length=20)] = "",
             phone: Annotated[str, Form(max_length=50)] = "",
             user: User = require(Permission.LAB_MANAGE)):
    with committing(session):
        service.save_lab(session, user, name_zh=name_zh, name_en=name_en, address_zh=address_zh,
                         address_en=address_en, cma_certificate_no=cma_certificate_no, phone=phone)
    return see_other(request, "/people/lab")


# ---------------------------------------------------------------- JSON API


def user_json(session, person: User) -> dict:
    return {
        "id": person.id, "username": person.username,
        "display_name_zh": person.display_name_zh, "display_name_en": person.display_name_en,
        "active": person.active, "language": person.language,
        "roles": sorted(r.value for r in roles_at(session, person.id)),
    }


@router.get("/api/v1/me", tags=["people"])
def api_me(session: DbSession, user: User = require(Permission.DASHBOARD_VIEW)) -> dict:
    return user_json(session, user)


@router.get("/api/v1/users", tags=["people"])
def api_users(request: Request, session: DbSession, page: int = Query(1, ge=1, le=100000),
              user: User = require(Permission.USERS_READ)) -> dict:
    result = paginate(session, select(User).order_by(User.id), page,
                      request.app.state.settings.page_size)
    roles = _roles_held_now(session, [u.id for u in result.items])
    return {
        "page": result.page, "pages": result.pages, "total": result.total,
        "items": [{"id": u.id, "username": u.username, "display_name_zh": u.display_name_zh,
                   "display_name_en": u.display_name_en, "active": u.active,
                   "roles": sorted(roles.get(u.id, ()))} for u in result.items],
    }


# ---------------------------------------------------------------- shell contributions


def _pending_grants_count(session, user: User) -> int:
    return session.scalar(
        select(func.count(RoleGrant.id)).where(
            RoleGrant.status == "proposed", RoleGrant.user_id != user.id,
            or_(RoleGrant.proposed_by_id.is_(None), RoleGrant.proposed_by_id != user.id),
        )
    ) or 0


def _scan_username(session, user, permissions, code: str) -> ScanHit | None:
    if Permission.USERS_READ not in permissions:
        return None
    person = service.find_user(session, code) if service.USERNAME_RE.match(code.lower()) else None
    return ScanHit(f"/people/users/{person.id}", person.username) if person else None


add_nav(
    NavItem("users", N_("Users"), "/people/users", Permission.USERS_READ, 80),
    NavItem("lab", N_("Laboratory"), "/people/lab", Permission.LAB_READ, 90),
)
add_worklist(
    Worklist("role_grants", N_("Role grants awaiting your approval"), Permission.ROLES_APPROVE,
             "/people/roles", _pending_grants_count, 10),
)
add_scan_resolver("username", _scan_username)
