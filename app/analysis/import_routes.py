"""Pages of instrument data import: uploading an export into a batch, the import's outcome (its
file, SHA-256, encoding, rows imported and the unmatched rows with their reasons, the raw file),
and import profiles (the list; a generic profile's column mapping with a "try with a file"
preview that saves nothing).

Routes are thin: parse the form, call one service in the unit of work; a refusal re-renders the
form with the message and what was chosen (nothing saved); a success redirects (post/redirect/
get). Every page works without JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import import_errors as errors
from app.analysis import import_profiles as profiles
from app.analysis import imports
from app.analysis.batches import batch_by_no
from app.analysis.codes import clean_code
from app.analysis.import_parsers import validate_mapping
from app.analysis.models import ImportProfile
from app.core.auth import DbSession, require
from app.core.canonical import canonical_json
from app.core.errors import DomainError
from app.core.files import file_store
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.web import Page, attempt, pager_base, render, see_other
from app.people.models import User

router = APIRouter()

PROFILES = "/import-profiles"
Code = Annotated[str, Path(max_length=40)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=200)]
Lines = Annotated[str, Form(max_length=8000)]
Upload = Annotated[UploadFile | None, File()]

REASON_NAMES = {
    "no_sample_label": N_("No sample label"),
    "position_not_found": N_("No such sample or position in this batch"),
    "ambiguous_position": N_("Matches several positions: use the position label"),
    "parameter_not_in_batch": N_("The batch does not measure this parameter"),
    "no_reading": N_("No number (n.a., <0.000...)"),
}






def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"reason_names": REASON_NAMES, **context}
    if error is not None:
        language = current_language()
        full.update(refused=True, code=error.code, detail=error.message(language),
                    errors=[{"message": p.text(language)} for p in getattr(error, "problems", [])[1:30]
                            if hasattr(p, "text")])
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


def read_upload(request: Request, upload: UploadFile | None) -> tuple[str, bytes]:
    """The file's name and at most the limit plus one byte (the service refuses what is larger)."""
    if upload is None or isinstance(upload, str) or not (upload.filename or "").strip():
        raise errors.ImportFileEmpty()
    limit = request.app.state.settings.max_upload_mb * 1024 * 1024
    return upload.filename or "import", upload.file.read(limit + 1)


# ---------------------------------------------------------------- importing into a batch


def _import_page(request: Request, session: Session, batch_no: str, *, chosen: str = "",
                 error: DomainError | None = None) -> Response:
    batch = batch_by_no(session, batch_no)
    return show(request, "batches/import.html", {
        "batch": batch, "choices": profiles.choices(session), "chosen": chosen,
        "earlier": imports.imports_of_batch(session, batch),
        "max_mb": request.app.state.settings.max_upload_mb,
    }, error=error)


@router.get("/batches/{batch_no}/import", include_in_schema=False)
def import_form(request: Request, session: DbSession, batch_no: Code,
                user: User = require(Permission.ANALYSIS_RECORD)):
    return _import_page(request, session, batch_no)


@router.post("/batches/{batch_no}/import", include_in_schema=False)
def import_upload(request: Request, session: DbSession, batch_no: Code, profile: Small = "", file: Upload = None,
                  user: User = require(Permission.ANALYSIS_RECORD)):
    batch = batch_by_no(session, batch_no)
    store = file_store(request.app.state.settings.ensure_data_dir())

    def act() -> Any:
        filename, content = read_upload(request, file)
        return imports.import_file(session, user, batch, profile, filename, content, store)

    done, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _import_page(request, session, batch_no, chosen=profile, error=error)
    return see_other(request, f"/imports/{done.code}")


# ---------------------------------------------------------------- an import's outcome


@router.get("/imports/{import_code}", include_in_schema=False)
def import_page(request: Request, session: DbSession, import_code: Code, page: PageNo = 1,
                user: User = require(Permission.ANALYSIS_READ)):
    """The outcome; the unmatched rows are paged (a file may hold thousands)."""
    view = imports.import_view(session, imports.import_by_code(session, import_code))
    size = request.app.state.settings.page_size
    rows = view.unmatched
    shown = Page(rows[(page - 1) * size: page * size], page, size, len(rows))
    return show(request, "imports/show.html", {
        "view": view, "page": shown, "pager_base": pager_base(f"/imports/{view.result_import.code}", {}),
    }, block="unmatched")


@router.get("/imports/{import_code}/file", include_in_schema=False)
def import_file_download(request: Request, session: DbSession, import_code: Code,
                         user: User = require(Permission.ANALYSIS_READ)):
    """The raw file as it was uploaded, byte for byte."""
    view = imports.import_view(session, imports.import_by_code(session, import_code))
    store = file_store(request.app.state.settings.ensure_data_dir())
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", view.file.filename) or "import"
    return Response(store.read(view.file.sha256), media_type=view.file.media_type, headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store"})


# ---------------------------------------------------------------- profiles


@router.get(PROFILES, include_in_schema=False)
def profile_list(request: Request, session: DbSession, page: PageNo = 1,
                 user: User = require(Permission.ANALYSIS_READ)):
    rows = profiles.list_profiles(session)
    made = {p.code for p in rows}
    builtins = [b for b in profiles.BUILTINS if b.code not in made]  # not used yet: no row so far
    size = request.app.state.settings.page_size
    shown = Page(rows[(page - 1) * size: page * size], page, size, len(rows))
    return show(request, "imports/profiles.html", {
        "page": shown, "pager_base": pager_base(PROFILES, {}), "pending_builtins": builtins,
        "builtin_notes": {b.builtin: b.note for b in profiles.BUILTINS},
        "can_manage": Permission.METHODS_MANAGE in getattr(request.state, "permissions", frozenset()),
    })


@dataclass
class ProfileForm:
    """What the mapping form sends, kept as typed so a refusal shows it again."""

    code: str = ""
    name: str = ""
    file_format: str = "csv"
    header_row: str = "1"
    sheet: str = ""
    sample_column: str = ""
    layout: str = "long"
    parameter_column: str = ""
    value_column: str = ""
    wide_columns: str = ""
    unit_column: str = ""
    unit: str = ""
    measured_at_column: str = ""
    measured_at_format: str = ""
    dilution_column: str = ""
    dilution_applied: bool = False
    aliases: str = ""
    active: bool = True

    @classmethod
    def of(cls, profile: ImportProfile) -> ProfileForm:
        mapping = profiles.mapping_of(profile)
        pairs = lambda d: "\n".join(f"{k} = {v}" for k, v in d.items())  # noqa: E731
        return cls(code=profile.code, name=profile.name, file_format=mapping.get("format", "csv"),
                   header_row=str(mapping.get("header_row", 1)), sheet=mapping.get("sheet", ""),
                   sample_column=mapping.get("sample_column", ""),
                   layout="wide" if mapping.get("wide_columns") else "long",
                   parameter_column=mapping.get("parameter_column", ""), value_column=mapping.get("value_column", ""),
                   wide_columns=pairs(mapping.get("wide_columns", {})), unit_column=mapping.get("unit_column", ""),
                   unit=mapping.get("unit", ""), measured_at_column=mapping.get("measured_at_column", ""),
                   measured_at_format=mapping.get("measured_at_format", ""),
                   dilution_column=mapping.get("dilution_column", ""),
                   dilution_applied=bool(mapping.get("dilution_applied")), aliases=pairs(mapping.get("aliases", {})),
                   active=profile.active)

    def mapping(self) -> dict[str, Any]:
        """The mapping JSON the service checks; "a = b" lines become objects."""
        raw: dict[str, Any] = {"format": self.file_format, "header_row": self.header_row.strip() or "1"}
        for name in ("sheet", "sample_column", "unit_column", "unit", "measured_at_column", "measured_at_format",
                     "dilution_column"):
            if getattr(self, name).strip():
                raw[name] = getattr(self, name).strip()
        if self.layout == "wide":
            raw["wide_columns"] = _pairs("wide_columns", self.wide_columns)
        else:
            for name in ("parameter_column", "value_column"):
                if getattr(self, name).strip():
                    raw[name] = getattr(self, name).strip()
        if self.aliases.strip():
            raw["aliases"] = _pairs("aliases", self.aliases)
        if self.dilution_applied:
            raw["dilution_applied"] = True
        return raw


def _pairs(name: str, text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        left, sep, right = line.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise errors.InvalidMapping(field=name, detail_zh=f"第 {number} 行应写作“文件中的名称 = 检测项目”",
                                        detail_en=f"line {number} should read “name in the file = parameter”")
        found[left.strip()] = right.strip()
    return found


def _form(code: str, name: str, file_format: str, header_row: str, sheet: str, sample_column: str, layout: str,
          parameter_column: str, value_column: str, wide_columns: str, unit_column: str, unit: str,
          measured_at_column: str, measured_at_format: str, dilution_column: str, dilution_applied: str,
          aliases: str, active: str) -> ProfileForm:
    return ProfileForm(code, name, file_format if file_format in ("csv", "xlsx") else "csv", header_row, sheet,
                       sample_column, "wide" if layout == "wide" else "long", parameter_column, value_column,
                       wide_columns, unit_column, unit, measured_at_column, measured_at_format, dilution_column,
                       bool(dilution_applied), aliases, bool(active))


@dataclass
class Preview:
    encoding: str
    rows: list[Any]
    total: int
    problems: list[str]


def _preview(form: ProfileForm, upload: UploadFile | None, request: Request) -> Preview:
    """The file read with the mapping as typed; nothing saved."""
    mapping = validate_mapping(form.mapping())
    _, content = read_upload(request, upload)
    trial = ImportProfile(code=clean_code(form.code) or "PREVIEW", name=form.name, builtin="",
                          file_format=mapping["format"], mapping=canonical_json(mapping))
    parsed, rows = imports.preview(trial, content)
    language = current_language()
    return Preview(parsed.encoding, rows, len(parsed.rows), [p.text(language) for p in parsed.problems[:30]])


def _profile_page(request: Request, form: ProfileForm, *, editing: ImportProfile | None = None,
                  error: DomainError | None = None, preview: Preview | None = None) -> Response:
    return show(request, "imports/profile_form.html", {"form": form, "editing": editing, "preview": preview},
                error=error)


def _profile_post(request: Request, session: Session, user: User, form: ProfileForm, action: str,
                  sample_file: UploadFile | None, save: Callable[[], ImportProfile],
                  editing: ImportProfile | None = None) -> Response:
    if action == "preview":
        try:
            preview = _preview(form, sample_file, request)
        except DomainError as error:
            return _profile_page(request, form, editing=editing, error=error)
        return _profile_page(request, form, editing=editing, preview=preview)
    saved, error = attempt(session, save)
    if error is not None:
        session.expire_all()
        return _profile_page(request, form, editing=editing, error=error)
    return see_other(request, f"{PROFILES}#{saved.code}")


@router.get(f"{PROFILES}/new", include_in_schema=False)
def new_profile(request: Request, session: DbSession, user: User = require(Permission.METHODS_MANAGE)):
    return _profile_page(request, ProfileForm())


@router.post(f"{PROFILES}/new", include_in_schema=False)
def create_profile(request: Request, session: DbSession, code: Small = "", name: Small = "", file_format: Small = "csv",
                   header_row: Small = "1", sheet: Small = "", sample_column: Small = "", layout: Small = "long",
                   parameter_column: Small = "", value_column: Small = "", wide_columns: Lines = "",
                   unit_column: Small = "", unit: Small = "", measured_at_column: Small = "",
                   measured_at_format: Small = "", dilution_column: Small = "", dilution_applied: Small = "",
                   aliases: Lines = "", action: Small = "save", sample_file: Upload = None,
                   user: User = require(Permission.METHODS_MANAGE)):
    form = _form(code, name, file_format, header_row, sheet, sample_column, layout, parameter_column, value_column,
                 wide_columns, unit_column, unit, measured_at_column, measured_at_format, dilution_column,
                 dilution_applied, aliases, "on")
    return _profile_post(request, session, user, form, action, sample_file, lambda: profiles.create_profile(
        session, user, form.code, form.name, form.mapping()))


@router.get(f"{PROFILES}/{{profile_code}}/edit", include_in_schema=False)
def edit_profile(request: Request, session: DbSession, profile_code: Code,
                 user: User = require(Permission.METHODS_MANAGE)):
    profile = profiles.profile_by_code(session, profile_code)
    if profile.builtin:
        raise errors.BuiltinProfileReadOnly(which=profile.code)
    return _profile_page(request, ProfileForm.of(profile), editing=profile)


@router.post(f"{PROFILES}/{{profile_code}}/edit", include_in_schema=False)
def update_profile(request: Request, session: DbSession, profile_code: Code, name: Small = "",
                   file_format: Small = "csv", header_row: Small = "1", sheet: Small = "",
                   sample_column: Small = "", layout: Small = "long",
                   parameter_column: Small = "", value_column: Small = "", wide_columns: Lines = "",
                   unit_column: Small = "", unit: Small = "", measured_at_column: Small = "",
                   measured_at_format: Small = "", dilution_column: Small = "", dilution_applied: Small = "",
                   aliases: Lines = "", active: Small = "", action: Small = "save", sample_file: Upload = None,
                   user: User = require(Permission.METHODS_MANAGE)):
    profile = profiles.profile_by_code(session, profile_code)
    form = _form(profile.code, name, file_format, header_row, sheet, sample_column, layout, parameter_column,
                 value_column, wide_columns, unit_column, unit, measured_at_column, measured_at_format,
                 dilution_column, dilution_applied, aliases, active)
    return _profile_post(request, session, user, form, action, sample_file, lambda: profiles.update_profile(
        session, user, profile, form.name, form.mapping(), active=form.active), editing=profile)

