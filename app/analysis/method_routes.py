"""Pages of methods, their versions and MDL studies (technical manager).

The list, registering a method with its first version, the method page (versions with what
changed, parameters with their MDL and reporting rule, QC requirements, allowed instruments, MDL
studies, who may analyse), a new version, an MDL study (paste replicates, preview the computed
MDL without saving, then save), superseding and withdrawing. Method codes carry spaces and may
carry '/', so the paths take `{code:path}`; the longer paths are declared before the method page.

Routes are thin: parse the form, call one service in the unit of work; a refusal re-renders the
form with the message and what was typed (nothing saved); success redirects (post/redirect/get).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import mdl, methods, qualifications
from app.analysis.models import BelowMdlStyle, CalculationKind, CurveKind, MethodVersion
from app.core.auth import DbSession, require
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.labtime import lab_calendar
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User

router = APIRouter()

BASE = "/methods"
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=100)]
Text = Annotated[str, Form(max_length=500)]
Long = Annotated[str, Form(max_length=4000)]
Name = Annotated[str, Form(max_length=200)]
Column = Annotated[list[str], Form(max_length=60)]
EMPTY_ROWS = 3

STATE_NAMES = {"active": N_("In use"), "superseded": N_("Superseded"), "withdrawn": N_("Withdrawn")}
MATRIX_NAMES = {"water": N_("Water"), "air": N_("Air"), "soil": N_("Soil"), "other": N_("Other")}
CALCULATION_NAMES = {
    CalculationKind.DIRECT.value: N_("Read directly (the instrument gives the concentration)"),
    CalculationKind.CURVE.value: N_("Calibration curve"),
    CalculationKind.CURVE_BLANK_CORRECTED.value: N_("Calibration curve, blank corrected"),
}
CURVE_NAMES = {CurveKind.LINEAR.value: N_("Linear"), CurveKind.QUADRATIC.value: N_("Quadratic")}
BELOW_MDL_NAMES = {BelowMdlStyle.MDL_L.value: N_("MDL followed by L (0.025L)"),
                   BelowMdlStyle.ND.value: N_("Not detected (ND / 未检出)"),
                   BelowMdlStyle.LT_MDL.value: N_("Less than the MDL (<0.025)"),
                   BelowMdlStyle.NONE.value: N_("No detection limit: a direct reading (pH, temperature); MDL 0")}
QC_NAMES = {
    "max_samples_per_batch": N_("Samples per batch (one QC unit)"), "blanks_per_batch": N_("Lab blanks per batch"),
    "duplicate_rate_pct": N_("Duplicates (per cent of samples)"), "spike_rate_pct": N_("Spikes (per cent of samples)"),
    "spike_recovery_low": N_("Spike recovery from (%)"), "spike_recovery_high": N_("Spike recovery to (%)"),
    "crm_per_batch": N_("CRM or QC check samples per batch"), "ccv_every": N_("CCV every n samples (0: none)"),
    "ccv_tolerance_pct": N_("CCV tolerance (%)"), "curve_r_min": N_("Curve r at least"),
    "curve_min_levels": N_("Curve non-zero levels at least"), "curve_valid_hours": N_("Curve valid for (hours)"),
}


def path_of(code: str) -> str:
    return f"{BASE}/{quote(code, safe='/')}"




def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"state_names": STATE_NAMES, "matrix_names": MATRIX_NAMES, "calculation_names": CALCULATION_NAMES,
            "curve_names": CURVE_NAMES, "below_mdl_names": BELOW_MDL_NAMES, "qc_names": QC_NAMES,
            "can_manage": Permission.METHODS_MANAGE in getattr(request.state, "permissions", frozenset()),
            "method_path": path_of, **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def method_list(request: Request, session: DbSession, q: Annotated[str, Query(max_length=60)] = "",
                matrix: Annotated[str, Query(pattern=f"^({'|'.join(methods.MATRICES)})?$")] = "",
                state: Annotated[str, Query(pattern=f"^({'|'.join(methods.METHOD_STATES)})?$")] = "",
                page: PageNo = 1, user: User = require(Permission.ANALYSIS_READ)):
    """Methods by code, searchable by code or name, filtered by matrix and state (htmx: results)."""
    size = request.app.state.settings.page_size
    found = methods.list_methods(session, q=q, matrix=matrix, state=state, page=page, size=size)
    params = {"q": q.strip(), "matrix": matrix, "state": state}
    return show(request, "methods/list.html", {
        "page": found, "filters": params, "pager_base": pager_base(BASE, params),
        "matrices": methods.MATRICES, "states": methods.METHOD_STATES}, block="results")


# ---------------------------------------------------------------- the version form


def _version_form(facts: methods.VersionFacts | None = None, **values: Any) -> dict[str, Any]:
    """What the version form shows: the facts (or defaults) as text, plus blank parameter rows."""
    facts = facts or methods.VersionFacts(parameters=[])
    rows = [{"parameter": p.parameter, "unit": p.unit, "mdl": _text(p.mdl), "lower": _text(p.lower_limit),
             "upper": _text(p.upper_limit), "decimals": _text(p.decimals), "figures": _text(p.significant_figures),
             "below": p.below_mdl, "organic": "1" if p.organic else "0"} for p in facts.parameters]
    rows += [{"parameter": "", "unit": "mg/L", "mdl": "", "lower": "", "upper": "", "decimals": "", "figures": "",
              "below": BelowMdlStyle.MDL_L.value, "organic": "0"} for _ in range(EMPTY_ROWS)]
    form = {"calculation": facts.calculation, "curve_kinds": list(facts.curve_kinds),
            **{name: _text(getattr(facts, name)) for name in methods.VersionFacts.__dataclass_fields__
               if name in QC_NAMES},
            "rd_limits": "\n".join(f"{level} {rd}" for level, rd in facts.duplicate_rd_limits),
            "holding_rule": facts.holding_rule, "note": facts.note, "instruments": " ".join(facts.instruments),
            "code": "", "name_zh": "", "name_en": "", "matrix": "water", "valid_from": "", "reason": "", **values}
    return {"form": form, "rows": rows}


def _text(value: Any) -> str:
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _facts_from_form(rows: list[dict[str, str]], form: dict[str, Any]) -> methods.VersionFacts:
    """The typed rows and fields as facts; a row with nothing in it is skipped, the rest go to
    the service, which refuses what is wrong and names it. The RD limits are parsed here, so a
    malformed line is refused before anything else."""
    parameters = [methods.ParameterFacts(
        r["parameter"], r["unit"], r["mdl"], r["lower"] or None, r["upper"] or None, r["decimals"] or None,
        r["figures"] or None, r["below"], r["organic"] == "1")
        for r in rows if any(r[k].strip() for k in ("parameter", "mdl", "lower", "upper", "decimals", "figures"))]
    return methods.VersionFacts(
        parameters=parameters, calculation=form["calculation"], curve_kinds=form["curve_kinds"],
        **{name: form[name] for name in QC_NAMES},
        duplicate_rd_limits=methods.parse_rd_limits(form["rd_limits"]), holding_rule=form["holding_rule"],
        note=form["note"], instruments=[a for a in form["instruments"].replace(",", " ").split() if a])


def _rows(p_parameter: list[str], p_unit: list[str], p_mdl: list[str], p_lower: list[str], p_upper: list[str],
          p_decimals: list[str], p_figures: list[str], p_below: list[str],
          p_organic: list[str]) -> list[dict[str, str]]:
    columns = (p_parameter, p_unit, p_mdl, p_lower, p_upper, p_decimals, p_figures, p_below, p_organic)
    length = max((len(c) for c in columns), default=0)
    names = ("parameter", "unit", "mdl", "lower", "upper", "decimals", "figures", "below", "organic")
    return [{name: (column[i] if i < len(column) else "").strip()[:60] for name, column in zip(names, columns,
                                                                                               strict=True)}
            for i in range(min(length, methods.MAX_PARAMETERS + EMPTY_ROWS))]


def _typed(calculation: str, curve_kinds: list[str], qc: dict[str, str], rd_limits: str, holding_rule: str,
           note: str, instruments: str, **more: str) -> dict[str, Any]:
    return {"calculation": calculation, "curve_kinds": curve_kinds, **qc, "rd_limits": rd_limits,
            "holding_rule": holding_rule, "note": note, "instruments": instruments, **more}


class VersionForm:
    """The version form's fields as FastAPI parameters (one dependency for both forms)."""

    def __init__(self, calculation: Small = "direct", curve_kinds: Column = [],  # noqa: B006 (FastAPI copies it)
                 max_samples_per_batch: Small = "", blanks_per_batch: Small = "", duplicate_rate_pct: Small = "",
                 spike_rate_pct: Small = "", spike_recovery_low: Small = "", spike_recovery_high: Small = "",
                 crm_per_batch: Small = "", ccv_every: Small = "", ccv_tolerance_pct: Small = "",
                 curve_r_min: Small = "", curve_min_levels: Small = "", curve_valid_hours: Small = "",
                 rd_limits: Long = "", holding_rule: Text = "", note: Text = "", instruments: Text = "",
                 p_parameter: Column = [], p_unit: Column = [], p_mdl: Column = [],  # noqa: B006
                 p_lower: Column = [], p_upper: Column = [], p_decimals: Column = [],  # noqa: B006
                 p_figures: Column = [], p_below: Column = [], p_organic: Column = []) -> None:  # noqa: B006
        qc = {"max_samples_per_batch": max_samples_per_batch, "blanks_per_batch": blanks_per_batch,
              "duplicate_rate_pct": duplicate_rate_pct, "spike_rate_pct": spike_rate_pct,
              "spike_recovery_low": spike_recovery_low, "spike_recovery_high": spike_recovery_high,
              "crm_per_batch": crm_per_batch, "ccv_every": ccv_every, "ccv_tolerance_pct": ccv_tolerance_pct,
              "curve_r_min": curve_r_min, "curve_min_levels": curve_min_levels,
              "curve_valid_hours": curve_valid_hours}
        self.form = _typed(calculation, curve_kinds, qc, rd_limits, holding_rule, note, instruments)
        self.rows = _rows(p_parameter, p_unit, p_mdl, p_lower, p_upper, p_decimals, p_figures, p_below, p_organic)

    def shown(self, **more: str) -> dict[str, Any]:
        """The form again as typed, with blank rows to add parameters."""
        blank = _version_form()["rows"][0]
        rows = [r for r in self.rows if any(r[k] for k in ("parameter", "mdl"))]
        return {"form": {**_version_form()["form"], **self.form, **more},
                "rows": rows + [dict(blank) for _ in range(EMPTY_ROWS)]}


# ---------------------------------------------------------------- registering a method


@router.get(f"{BASE}/new", include_in_schema=False)
def new_method(request: Request, session: DbSession, user: User = require(Permission.METHODS_MANAGE)):
    return show(request, "methods/form.html", {**_version_form(methods.VersionFacts(parameters=[])),
                                                "mode": "method", "matrices": methods.MATRICES})


@router.post(f"{BASE}/new", include_in_schema=False)
def create_method(request: Request, session: DbSession, typed: Annotated[VersionForm, Depends()], code: Small = "",
                  name_zh: Name = "", name_en: Name = "", matrix: Small = "water", valid_from: Small = "",
                  user: User = require(Permission.METHODS_MANAGE)):
    more = {"code": code, "name_zh": name_zh, "name_en": name_en, "matrix": matrix, "valid_from": valid_from}

    def act() -> Any:
        facts = methods.MethodFacts(code=code, name_zh=name_zh, name_en=name_en, matrix=matrix,
                                    version=_facts_from_form(typed.rows, typed.form))
        return methods.create_method(session, user, facts, valid_from or None)

    method, error = attempt(session, act)
    if error is not None:
        return show(request, "methods/form.html", {**typed.shown(**more), "mode": "method",
                                                    "matrices": methods.MATRICES}, error=error)
    return see_other(request, path_of(method.code))


# ---------------------------------------------------------------- a new version


def _latest(session: Session, method_id: int) -> MethodVersion:
    return methods.versions_of(session, method_id)[-1]


@router.get(BASE + "/{code:path}/versions/new", include_in_schema=False)
def new_version_page(request: Request, session: DbSession, code: str,
                     user: User = require(Permission.METHODS_MANAGE)):
    method = methods.get_method(session, code)
    facts = methods.facts_of(session, _latest(session, method.id))
    return show(request, "methods/form.html", {**_version_form(facts), "mode": "version", "method": method})


@router.post(BASE + "/{code:path}/versions/new", include_in_schema=False)
def add_version(request: Request, session: DbSession, code: str, typed: Annotated[VersionForm, Depends()],
                valid_from: Small = "", reason: Text = "", user: User = require(Permission.METHODS_MANAGE)):
    method = methods.get_method(session, code)
    _, error = attempt(session, lambda: methods.new_version(
        session, user, method, _facts_from_form(typed.rows, typed.form), valid_from or None, reason))
    if error is not None:
        session.expire_all()
        return show(request, "methods/form.html", {**typed.shown(valid_from=valid_from, reason=reason),
                                                    "mode": "version", "method": method}, error=error)
    return see_other(request, path_of(method.code) + "#versions")


# ---------------------------------------------------------------- an MDL study


def _mdl_page(request: Request, session: Session, method: Any, form: dict[str, str], *,
              error: DomainError | None = None, result: mdl.MdlNumbers | None = None,
              meets: bool | None = None) -> Response:
    versions = methods.versions_of(session, method.id)
    chosen = next((v for v in versions if str(v.version) == form.get("version")), versions[-1])
    parameters = list(methods.parameters_of(session, chosen.id).values())
    return show(request, "methods/mdl.html", {
        "method": method, "versions": versions, "chosen": chosen, "parameters": parameters, "form": form,
        "result": result, "meets": meets, "shown": mdl.shown,
        "method_mdl": next((p.mdl for p in parameters if p.parameter == form.get("parameter")), None)}, error=error)


@router.get(BASE + "/{code:path}/mdl/new", include_in_schema=False)
def new_mdl_study(request: Request, session: DbSession, code: str, user: User = require(Permission.METHODS_MANAGE)):
    method = methods.get_method(session, code)
    latest = _latest(session, method.id)
    first = next(iter(methods.parameters_of(session, latest.id).values()), None)
    form = {"version": str(latest.version), "parameter": first.parameter if first else "",
            "unit": first.unit if first else "", "replicates": "", "performed_at": "", "note": ""}
    return _mdl_page(request, session, method, form)


@router.post(BASE + "/{code:path}/mdl/new", include_in_schema=False)
def record_mdl_study(request: Request, session: DbSession, code: str, version: Small = "", parameter: Small = "",
                     unit: Small = "", replicates: Long = "", performed_at: Small = "", note: Text = "",
                     action: Small = "preview", user: User = require(Permission.METHODS_MANAGE)):
    """Preview computes and shows the numbers without saving; save records the study."""
    method = methods.get_method(session, code)
    form = {"version": version, "parameter": parameter, "unit": unit, "replicates": replicates,
            "performed_at": performed_at, "note": note}
    chosen = next((v for v in methods.versions_of(session, method.id) if str(v.version) == version.strip()), None)
    if chosen is None:
        chosen = _latest(session, method.id)
        form["version"] = str(chosen.version)

    if action != "save":
        try:
            result, meets = mdl.preview(session, chosen, parameter, mdl.parse_replicates(replicates), unit)
        except DomainError as error:
            return _mdl_page(request, session, method, form, error=error)
        return _mdl_page(request, session, method, form, result=result, meets=meets)
    _, error = attempt(session, lambda: mdl.record_mdl_study(
        session, user, chosen, parameter, mdl.parse_replicates(replicates), unit, performed_at or None, note))
    if error is not None:
        return _mdl_page(request, session, method, form, error=error)
    return see_other(request, path_of(method.code) + "#mdl")


# ---------------------------------------------------------------- superseding and withdrawing


@router.post(BASE + "/{code:path}/supersede", include_in_schema=False)
def supersede(request: Request, session: DbSession, code: str, reason: Text = "", replaced_by: Small = "",
              user: User = require(Permission.METHODS_MANAGE)):
    method = methods.get_method(session, code)
    _, error = attempt(session, lambda: methods.supersede_method(session, user, method, reason, replaced_by))
    if error is not None:
        session.expire_all()
        return _method_page(request, session, method.code, error=error, values={"replaced_by": replaced_by,
                                                                                 "supersede_reason": reason})
    return see_other(request, path_of(method.code))


@router.post(BASE + "/{code:path}/withdraw", include_in_schema=False)
def withdraw(request: Request, session: DbSession, code: str, reason: Text = "",
             user: User = require(Permission.METHODS_MANAGE)):
    method = methods.get_method(session, code)
    _, error = attempt(session, lambda: methods.withdraw_method(session, user, method, reason))
    if error is not None:
        session.expire_all()
        return _method_page(request, session, method.code, error=error, values={"withdraw_reason": reason})
    return see_other(request, path_of(method.code))


# ---------------------------------------------------------------- the method page


def _method_page(request: Request, session: Session, code: str, *, error: DomainError | None = None,
                 values: dict[str, str] | None = None) -> Response:
    method = methods.get_method(session, code)
    view = methods.method_view(session, method)
    studies = mdl.studies_of(session, [line.version.id for line in view.versions])
    qualified = qualifications.qualified_for(session, method.id)
    people = methods.users_by_id(session, {s.performed_by_id for s in studies})
    numbers = {line.version.id: line.version.version for line in view.versions}
    return show(request, "methods/detail.html", {
        "view": view, "studies": studies, "study_people": people, "version_numbers": numbers,
        "qualified": qualified, "shown": mdl.shown, "lower_limit_of": methods.lower_limit_of, "values": values or {},
        "today": lab_calendar(session).local_date(utcnow())}, error=error)


@router.get(BASE + "/{code:path}", include_in_schema=False)
def method_page(request: Request, session: DbSession, code: str, user: User = require(Permission.ANALYSIS_READ)):
    return _method_page(request, session, code)


add_nav(NavItem("methods", N_("Methods"), BASE, Permission.ANALYSIS_READ, 52))
