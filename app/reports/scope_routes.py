"""Pages of the CMA accreditation scope and of signatory scopes (授权签字人).

`/scopes/cma`: the certificate records with their state, the scope's items (paginated, filtered
by parameter, method and matrix; by default those in force today), and for the technical manager
forms to record a certificate, add an item, import items from a CSV, or correct a certificate by
recording it again with the full list. `/scopes/signatories`: the register of signatory scopes
with their status, the proposal form, and for a chosen scope (`?scope=N`) its approval and end.
Routes are thin; a refusal re-renders the page with what was typed and nothing saved.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import methods
from app.analysis.models import Method
from app.core.auth import DbSession, csrf_guard, current_user, nul_guard, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, has_permission
from app.core.registry import NavItem, Worklist, add_nav, add_worklist
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User
from app.reports import scope_errors as errors
from app.reports import scopes
from app.reports.models import SignatoryScope

router = APIRouter()

CMA = "/scopes/cma"
SIGNATORIES = "/scopes/signatories"
PageNo = Annotated[int, Query(ge=1, le=100_000)]
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
OptionalId = Annotated[int | None, Query(ge=1, le=2_147_483_647)]
Small = Annotated[str, Form(max_length=100)]
Text = Annotated[str, Form(max_length=500)]
MATRIX_RE = f"^({'|'.join(methods.MATRICES)})?$"
CERTIFICATE_PAGE = 10

MATRIX_NAMES = {"water": N_("Water"), "air": N_("Air"), "soil": N_("Soil"), "other": N_("Other")}
CERTIFICATE_STATE_NAMES = {"in_force": N_("Currently in force"), "not_yet_valid": N_("Not yet valid"),
                           "expired": N_("Expired"), "replaced": N_("Replaced by a correction")}
CERTIFICATE_BADGES = {"in_force": "good", "not_yet_valid": "muted", "expired": "bad", "replaced": "muted"}
SCOPE_STATUS_NAMES = {"proposed": N_("Awaiting approval"), "in_force": N_("Currently in force"),
                      "not_yet_valid": N_("Not yet valid"), "expired": N_("Expired"), "ended": N_("Ended")}
SCOPE_BADGES = {"proposed": "warn", "in_force": "good", "not_yet_valid": "muted", "expired": "bad",
                "ended": "muted"}


def _show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
          block: str | None = None) -> Response:
    permissions = getattr(request.state, "permissions", frozenset())
    full = {"matrix_names": MATRIX_NAMES, "matrices": methods.MATRICES,
            "can_manage": Permission.SCOPES_MANAGE in permissions,
            "can_approve": Permission.SCOPES_APPROVE in permissions, **context}
    if error is not None:
        language = current_language()
        full.update(refused=True, code=error.code, detail=error.message(language))
        problems = getattr(error, "problems", None)
        if problems:
            full["detail"] = error.headline(language)
            full["errors"] = [{"message": (f"第 {n} 行：" if language.startswith("zh") else f"Line {n}: ")
                               + problem.message(language)} for n, problem in problems]
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


def _read_upload(upload: UploadFile | None) -> tuple[bytes, str]:
    """At most one byte more than the service accepts, so an oversized file is refused, not read."""
    if upload is None or not upload.filename:
        return b"", ""
    return upload.file.read(scopes.MAX_CSV_BYTES + 1), upload.filename[:200]


# ---------------------------------------------------------------- the CMA scope


def _cma_page(request: Request, session: Session, *, certificate: int | None = None, parameter: str = "",
              method: str = "", matrix: str = "", page: int = 1, cpage: int = 1, forms: dict[str, Any] | None = None,
              open_form: str = "", error: DomainError | None = None) -> Response:
    size = request.app.state.settings.page_size
    today = lab_calendar(session).today()
    certificates = scopes.list_certificates(session, page=cpage, size=CERTIFICATE_PAGE)
    chosen = None
    if certificate is not None:
        chosen = next((row for row in certificates.items if row.certificate.id == certificate), None) or \
            scopes.certificate_row(session, certificate)
    items = scopes.list_items(session, certificate_id=chosen.certificate.id if chosen else None, parameter=parameter,
                              method=method, matrix=matrix, in_force_on=None if chosen else today, page=page,
                              size=size)
    filters = {"certificate": chosen.certificate.id if chosen else "", "parameter": parameter.strip(),
               "method": method.strip(), "matrix": matrix}
    return _show(request, "reports/scopes_cma.html", {
        "certificates": certificates, "chosen": chosen, "items": items, "filters": filters, "today": today,
        "pager_base": pager_base(CMA, {**filters, "cpage": cpage if cpage > 1 else ""}),
        "certificate_pager_base": pager_base(CMA, {**filters, "page": page if page > 1 else ""}),
        "state_names": CERTIFICATE_STATE_NAMES, "state_badges": CERTIFICATE_BADGES,
        "forms": forms or {}, "open_form": open_form}, error=error, block="results")


@router.get(CMA, include_in_schema=False)
def cma_scope(request: Request, session: DbSession, certificate: OptionalId = None,
              parameter: Annotated[str, Query(max_length=60)] = "", method: Annotated[str, Query(max_length=60)] = "",
              matrix: Annotated[str, Query(pattern=MATRIX_RE)] = "", page: PageNo = 1, cpage: PageNo = 1,
              user: User = require(Permission.REPORTS_READ)):
    """The certificates and the items of the scope (in force today, or of one certificate record)."""
    return _cma_page(request, session, certificate=certificate, parameter=parameter, method=method, matrix=matrix,
                     page=page, cpage=cpage)


@router.get(f"{CMA}/items.csv", include_in_schema=False)
def cma_items_csv(request: Request, session: DbSession,
                  certificate: OptionalId = None,
                  user: User = require(Permission.REPORTS_READ)):
    """One certificate record's items (the start of a correction), or the scope in force today."""
    if certificate is not None:
        cert = scopes.get_certificate(session, certificate)
        text, name = scopes.items_csv(session, cert), f"cma-{cert.certificate_no}-{cert.id}.csv"
    else:
        today = lab_calendar(session).today()
        text, name = scopes.scope_in_force_csv(session, today), f"cma-scope-{today.isoformat()}.csv"
    return Response(text.encode("utf-8-sig"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"", "Cache-Control": "private, no-store"})


@router.post(f"{CMA}/certificates", include_in_schema=False)
def record_certificate(request: Request, session: DbSession, certificate_no: Small = "",
                       issued_by: Annotated[str, Form(max_length=200)] = "", valid_from: Small = "",
                       valid_to: Small = "", note: Text = "", user: User = require(Permission.SCOPES_MANAGE)):
    row, error = attempt(session, lambda: scopes.record_certificate(session, user, certificate_no, issued_by,
                                                                      valid_from, valid_to, note))
    if error is not None:
        form = {"certificate_no": certificate_no, "issued_by": issued_by, "valid_from": valid_from,
                "valid_to": valid_to, "note": note}
        return _cma_page(request, session, forms={"certificate": form}, open_form="certificate", error=error)
    return see_other(request, f"{CMA}?certificate={row.id}")


@router.post(CMA + "/certificates/{certificate_id}/items", include_in_schema=False)
def add_item(request: Request, session: DbSession, certificate_id: RowId, parameter: Small = "",
             method_code: Small = "", matrix: Small = "", user: User = require(Permission.SCOPES_MANAGE)):
    cert = scopes.get_certificate(session, certificate_id)
    _, error = attempt(session, lambda: scopes.add_item(session, user, cert, parameter, method_code, matrix))
    if error is not None:
        session.expire_all()
        form = {"parameter": parameter, "method_code": method_code, "matrix": matrix}
        return _cma_page(request, session, certificate=certificate_id, forms={"item": form}, open_form="item",
                         error=error)
    return see_other(request, f"{CMA}?certificate={certificate_id}")


@router.post(CMA + "/certificates/{certificate_id}/import", include_in_schema=False)
def import_items(request: Request, session: DbSession, certificate_id: RowId,
                 file: Annotated[UploadFile | None, File()] = None, user: User = require(Permission.SCOPES_MANAGE)):
    cert = scopes.get_certificate(session, certificate_id)
    data, filename = _read_upload(file)
    _, error = attempt(session, lambda: scopes.import_items_csv(session, user, cert, data, filename))
    if error is not None:
        session.expire_all()
        return _cma_page(request, session, certificate=certificate_id, open_form="import", error=error)
    return see_other(request, f"{CMA}?certificate={certificate_id}")


@router.post(CMA + "/certificates/{certificate_id}/correct", include_in_schema=False)
def correct_certificate(request: Request, session: DbSession, certificate_id: RowId,
                        issued_by: Annotated[str, Form(max_length=200)] = "", valid_from: Small = "",
                        valid_to: Small = "", note: Text = "", file: Annotated[UploadFile | None, File()] = None,
                        user: User = require(Permission.SCOPES_MANAGE)):
    old = scopes.get_certificate(session, certificate_id)
    data, filename = _read_upload(file)
    row, error = attempt(session, lambda: scopes.replace_certificate(session, user, old, issued_by, valid_from,
                                                                       valid_to, data, note, filename))
    if error is not None:
        session.expire_all()
        form = {"issued_by": issued_by, "valid_from": valid_from, "valid_to": valid_to, "note": note}
        return _cma_page(request, session, certificate=certificate_id, forms={"correct": form},
                         open_form="correct", error=error)
    return see_other(request, f"{CMA}?certificate={row.id}")


# ---------------------------------------------------------------- signatory scopes


def _signatories_page(request: Request, session: Session, *, person: str = "", method: str = "", matrix: str = "",
                      status: str = "", page: int = 1, scope: int | None = None,
                      form: dict[str, str] | None = None, end_form: dict[str, str] | None = None,
                      open_form: str = "", error: DomainError | None = None) -> Response:
    size = request.app.state.settings.page_size
    found = scopes.list_signatory_scopes(session, person=person, method=method, matrix=matrix, status=status,
                                         page=page, size=size)
    filters = {"person": person.strip(), "method": method.strip(), "matrix": matrix, "status": status}
    can_manage = Permission.SCOPES_MANAGE in getattr(request.state, "permissions", frozenset())
    return _show(request, "reports/scopes_signatories.html", {
        "page": found, "filters": filters, "pager_base": pager_base(SIGNATORIES, filters),
        "statuses": scopes.SCOPE_STATUSES, "status_names": SCOPE_STATUS_NAMES, "status_badges": SCOPE_BADGES,
        "chosen": scopes.scope_view(session, scope) if scope is not None else None,
        "people": scopes.signatories_now(session) if can_manage else [],
        "methods": methods.active_methods(session) if can_manage else [],
        "form": {"user_id": "", "matrix": "", "method": "", "parameter": "", "valid_from": "", "valid_to": "",
                 "basis": "", **(form or {})},
        "end_form": {"reason": "", "end_on": lab_calendar(session).today().isoformat(), **(end_form or {})},
        "may_end": scopes.may_end_by_permissions(getattr(request.state, "permissions", frozenset())),
        "open_form": open_form}, error=error, block="results")


@router.get(SIGNATORIES, include_in_schema=False)
def signatory_scopes(request: Request, session: DbSession, person: Annotated[str, Query(max_length=60)] = "",
                     method: Annotated[str, Query(max_length=60)] = "",
                     matrix: Annotated[str, Query(pattern=MATRIX_RE)] = "",
                     status: Annotated[str, Query(pattern=f"^({'|'.join(scopes.SCOPE_STATUSES)})?$")] = "",
                     scope: OptionalId = None, page: PageNo = 1,
                     user: User = require(Permission.REPORTS_READ)):
    """The register of signatory scopes; `scope=N` opens one with its approval and end."""
    return _signatories_page(request, session, person=person, method=method, matrix=matrix, status=status,
                             page=page, scope=scope)


def _person(session: Session, user_id: str) -> User:
    text = user_id.strip()
    found = session.get(User, int(text)) if text.isdigit() and len(text) < 10 else None
    if found is None:
        raise errors.PersonNotFound(person=text[:20] or "—")
    return found


def _method(session: Session, code: str) -> Method | None:
    if not code.strip():
        return None
    try:
        return methods.get_method(session, code)
    except DomainError:
        raise errors.ScopeMethodNotFound(method=methods.clean_code(code)[:60]) from None


@router.post(SIGNATORIES, include_in_schema=False)
def propose(request: Request, session: DbSession, user_id: Small = "", matrix: Small = "", method: Small = "",
            parameter: Small = "", valid_from: Small = "", valid_to: Small = "",
            basis: Annotated[str, Form(max_length=300)] = "", user: User = require(Permission.SCOPES_MANAGE)):
    row, error = attempt(session, lambda: scopes.propose_signatory_scope(
        session, user, _person(session, user_id), matrix=matrix, method=_method(session, method),
        parameter=parameter, valid_from=valid_from, valid_to=valid_to, basis=basis))
    if error is not None:
        form = {"user_id": user_id, "matrix": matrix, "method": method, "parameter": parameter,
                "valid_from": valid_from, "valid_to": valid_to, "basis": basis}
        return _signatories_page(request, session, form=form, open_form="propose", error=error)
    return see_other(request, f"{SIGNATORIES}?scope={row.id}")


def _scope(session: Session, scope_id: int) -> SignatoryScope:
    return scopes.get_scope(session, scope_id)


@router.post(SIGNATORIES + "/{scope_id}/approve", include_in_schema=False)
def approve(request: Request, session: DbSession, scope_id: RowId, user: User = require(Permission.SCOPES_APPROVE)):
    row = _scope(session, scope_id)
    _, error = attempt(session, lambda: scopes.approve_signatory_scope(session, user, row))
    if error is not None:
        session.expire_all()
        return _signatories_page(request, session, scope=scope_id, error=error)
    return see_other(request, f"{SIGNATORIES}?scope={scope_id}")


def require_either_manager() -> Any:
    """The technical manager (SCOPES_MANAGE) or the quality manager (SCOPES_APPROVE) may end a
    scope. Declared as SCOPES_MANAGE (a mutating permission: the route walkers and the kernel
    refuse an inspector, who holds neither); SCOPES_APPROVE is accepted as well."""

    def dependency(request: Request, session: DbSession, _csrf: None = Depends(csrf_guard),
                   _nul: None = Depends(nul_guard)) -> User:
        user = current_user(request, session)
        if not has_permission(session, user.id, Permission.SCOPES_APPROVE):
            ensure(session, user, Permission.SCOPES_MANAGE)
        return user

    dependency.lims_permission = Permission.SCOPES_MANAGE  # type: ignore[attr-defined]
    return Depends(dependency)


@router.post(SIGNATORIES + "/{scope_id}/end", include_in_schema=False)
def end(request: Request, session: DbSession, scope_id: RowId, reason: Text = "", end_on: Small = "",
        user: User = require_either_manager()):
    row = _scope(session, scope_id)
    _, error = attempt(session, lambda: scopes.end_signatory_scope(session, user, row, reason, end_on))
    if error is not None:
        session.expire_all()
        return _signatories_page(request, session, scope=scope_id, end_form={"reason": reason, "end_on": end_on},
                                 open_form="end", error=error)
    return see_other(request, f"{SIGNATORIES}?scope={scope_id}")


def _awaiting(session: Session, user: Any) -> int:
    return scopes.count_awaiting_approval(session, user)


add_nav(NavItem("cma_scope", N_("CMA scope"), CMA, Permission.REPORTS_READ, 72),
        NavItem("signatory_scopes", N_("Signatory scopes"), SIGNATORIES, Permission.REPORTS_READ, 73))
add_worklist(Worklist("signatory_scopes_awaiting", N_("Signatory scopes awaiting approval"),
                      Permission.SCOPES_APPROVE, f"{SIGNATORIES}?status=proposed", _awaiting, 73))
