"""Pages of analyst qualifications (上岗证): the register, granting and revoking.

The register filters by person, method, status and "expiring within n days" (the dashboard card
links to it); granting takes the certificate's number, issuer, period and an optional scan
(stored by its SHA-256); revoking needs a reason. Routes are thin; a refusal re-renders the form
with what was typed and nothing saved.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import method_errors as errors
from app.analysis import methods, qualifications
from app.analysis.method_routes import attempt
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.files import StoredFile, file_store, store_upload
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, Worklist, add_nav, add_worklist
from app.core.web import pager_base, render, see_other
from app.people.models import User

router = APIRouter()

BASE = "/qualifications"
PageNo = Annotated[int, Query(ge=1, le=100_000)]
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Small = Annotated[str, Form(max_length=100)]
Text = Annotated[str, Form(max_length=500)]
ATTACHMENT_TYPES = ("application/pdf", "image/jpeg", "image/png")
STATUS_NAMES = {"valid": N_("Valid"), "expiring": N_("Expiring within 60 days"), "expired": N_("Expired"),
                "revoked": N_("Revoked"), "future": N_("Not yet valid")}
STATUS_BADGES = {"valid": "good", "expiring": "warn", "expired": "bad", "revoked": "muted", "future": "muted"}


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"status_names": STATUS_NAMES, "status_badges": STATUS_BADGES,
            "can_manage": Permission.METHODS_MANAGE in getattr(request.state, "permissions", frozenset()),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


@router.get(BASE, include_in_schema=False)
def register(request: Request, session: DbSession, person: Annotated[str, Query(max_length=60)] = "",
             method: Annotated[str, Query(max_length=60)] = "",
             status: Annotated[str, Query(pattern=f"^({'|'.join(qualifications.STATUSES)})?$")] = "",
             expiring: Annotated[str, Query(pattern=r"^\s*\d{0,4}\s*$")] = "", page: PageNo = 1,
             user: User = require(Permission.ANALYSIS_READ)):
    """The register of qualifications, soonest to expire first (htmx: the results only)."""
    size = request.app.state.settings.page_size
    within = int(expiring) if expiring.strip() else None
    found = qualifications.list_qualifications(session, person=person, method=method, status=status,
                                               expiring=within, page=page, size=size)
    params = {"person": person.strip(), "method": method.strip(), "status": status,
              "expiring": "" if within is None else within}
    return show(request, "qualifications/list.html", {
        "page": found, "filters": params, "pager_base": pager_base(BASE, params),
        "statuses": qualifications.STATUSES}, block="results")


def _new_form(**values: str) -> dict[str, str]:
    return {"user_id": "", "method": "", "certificate_no": "", "issued_by": "", "valid_from": "", "valid_to": "",
            **values}


def _new_page(request: Request, session: Session, form: dict[str, str], error: DomainError | None = None) -> Response:
    return show(request, "qualifications/new.html", {
        "form": form, "people": qualifications.bench_people(session), "methods": methods.active_methods(session)},
        error=error)


@router.get(f"{BASE}/new", include_in_schema=False)
def new_qualification(request: Request, session: DbSession, method: Annotated[str, Query(max_length=60)] = "",
                      user: User = require(Permission.METHODS_MANAGE)):
    return _new_page(request, session, _new_form(method=method))


def _person(session: Session, user_id: str) -> User:
    found = session.get(User, int(user_id)) if user_id.strip().isdigit() and len(user_id.strip()) < 10 else None
    if found is None:
        raise errors.PersonNotFound(person=user_id.strip()[:20] or "—")
    return found


@router.post(f"{BASE}/new", include_in_schema=False)
def grant(request: Request, session: DbSession, user_id: Small = "", method: Small = "", certificate_no: Small = "",
          issued_by: Annotated[str, Form(max_length=200)] = "", valid_from: Small = "", valid_to: Small = "",
          attachment: Annotated[UploadFile | None, File()] = None, user: User = require(Permission.METHODS_MANAGE)):
    form = _new_form(user_id=user_id, method=method, certificate_no=certificate_no, issued_by=issued_by,
                     valid_from=valid_from, valid_to=valid_to)
    settings = request.app.state.settings

    def act() -> Any:
        holder = _person(session, user_id)
        chosen = methods.get_method(session, method)
        stored = None
        if attachment is not None and attachment.filename:
            stored = store_upload(session, user, file_store(settings.ensure_data_dir()), attachment.file,
                                  attachment.filename, allowed_types=ATTACHMENT_TYPES,
                                  max_bytes=settings.max_upload_mb * 1024 * 1024)
        return qualifications.grant_qualification(session, user, holder, chosen, certificate_no, issued_by,
                                                  valid_from, valid_to, stored)

    _, error = attempt(session, act)
    if error is not None:
        return _new_page(request, session, form, error)
    return see_other(request, f"{BASE}?method={quote(methods.clean_code(method))}")


def _revoke_page(request: Request, session: Session, qualification_id: int, reason: str = "",
                 error: DomainError | None = None) -> Response:
    row = qualifications.get_qualification(session, qualification_id)
    people = methods.users_by_id(session, {row.user_id, row.granted_by_id, row.revoked_by_id})
    method = session.get(methods.Method, row.method_id)
    return show(request, "qualifications/revoke.html", {
        "q": row, "holder": people.get(row.user_id), "granted_by": people.get(row.granted_by_id),
        "revoked_by": people.get(row.revoked_by_id), "method": method, "reason": reason,
        "status": qualifications.status_of(row, lab_calendar(session).today())}, error=error)


@router.get(BASE + "/{qualification_id}/revoke", include_in_schema=False)
def revoke_page(request: Request, session: DbSession, qualification_id: RowId,
                user: User = require(Permission.METHODS_MANAGE)):
    return _revoke_page(request, session, qualification_id)


@router.post(BASE + "/{qualification_id}/revoke", include_in_schema=False)
def revoke(request: Request, session: DbSession, qualification_id: RowId, reason: Text = "",
           user: User = require(Permission.METHODS_MANAGE)):
    row = qualifications.get_qualification(session, qualification_id)
    _, error = attempt(session, lambda: qualifications.revoke_qualification(session, user, row, reason))
    if error is not None:
        session.expire_all()
        return _revoke_page(request, session, qualification_id, reason, error)
    return see_other(request, f"{BASE}/{qualification_id}/revoke")


@router.get(BASE + "/{qualification_id}/attachment", include_in_schema=False)
def attachment(request: Request, session: DbSession, qualification_id: RowId,
               user: User = require(Permission.ANALYSIS_READ)):
    """The certificate's scan, served only while its bytes still hash to what was stored."""
    row = qualifications.get_qualification(session, qualification_id)
    stored = session.scalar(select(StoredFile).where(StoredFile.id == row.attachment_id)) \
        if row.attachment_id else None
    if stored is None:
        raise errors.QualificationNotFound(qualification=qualification_id)
    store = file_store(request.app.state.settings.data_path)
    if not store.verify(stored.sha256):
        raise errors.CertificateScanAltered()
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", stored.filename).strip("_") or "certificate"
    return FileResponse(store.path(stored.sha256), media_type=stored.media_type, headers={
        "Content-Disposition": f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(stored.filename, safe='')}",
        "Cache-Control": "private, no-store"})


def _expiring_count(session: Session, user: Any) -> int:
    return qualifications.count_expiring(session, qualifications.EXPIRING_DAYS)


add_nav(NavItem("qualifications", N_("Qualifications"), BASE, Permission.ANALYSIS_READ, 53))
add_worklist(Worklist("qualifications_expiring", N_("Qualifications expiring within 60 days"),
                      Permission.METHODS_MANAGE, f"{BASE}?expiring=60", _expiring_count, 53))
