"""Calibration curves (校准曲线): standards measured on an instrument, fitted, accepted or not.

A curve is made by a method version in force at the time of measurement, for one of its
parameters, on an instrument the version allows and that was usable then. Each standard solution
goes through the reference-materials gate at the time of measurement and its use is recorded
(one use per solution per curve, which every point made from it points to). The fit is computed
here from the Decimal points (never typed): linear, or quadratic where the method allows it.

A curve that misses its acceptance (r below the method's minimum, too few non-zero levels) is
still recorded, with the reason: it is a record of what happened at the bench, but the gate
`assert_curve_usable` refuses it, as it refuses a curve used outside its validity or by another
method or parameter. Readings above the top standard are outside the curve (`in_range`): the
sample is diluted and read again.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import String, and_, func, literal, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.analysis import curve_errors as errors
from app.analysis import methods, numbers
from app.analysis.codes import clean_code
from app.analysis.models import (
    CalibrationCurve,
    CalibrationPoint,
    CurveKind,
    Method,
    MethodParameter,
    MethodVersion,
)
from app.core import audit
from app.core.codes import next_code
from app.core.db import utcnow
from app.core.i18n import N_
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.instruments.models import Instrument
from app.instruments.status import assert_instrument_usable
from app.people.models import User
from app.reference_materials.models import MaterialUse
from app.reference_materials.traceability import register_material_use_source
from app.samples import lab_input

CODE_PREFIX = "CC"
CODE_RE = re.compile(r"^CC\d{2}-\d{5,}$")
CONSUMER_KIND = "calibration_curve"
MAX_POINTS = 20
MAX_LEVEL = 99
LOWEST_EXPONENT, HIGHEST_EXPONENT = -30, 12
NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$")
SPACES = re.compile(r"[\s\u00a0\u2000-\u200b\u3000\ufeff]+")
MINIMUM_POINTS = {CurveKind.LINEAR.value: 2, CurveKind.QUADRATIC.value: 3}
KIND_WORDS = {CurveKind.LINEAR.value: ("线性", "linear"), CurveKind.QUADRATIC.value: ("二次", "quadratic")}
COLUMNS = {"level": ("序号", "the level"), "concentration": ("浓度", "the concentration"),
           "response": ("响应值", "the response")}


# ---------------------------------------------------------------- what the analyst gives


@dataclass(frozen=True)
class PointFacts:
    """One row of the curve table as typed: level, concentration, response, solution barcode."""

    level: Any
    concentration: Any
    response: Any
    solution_barcode: str = ""


@dataclass(frozen=True)
class CurveFacts:
    method_code: str
    parameter: str
    instrument: str  # asset number
    measured_at: Any
    points: Sequence[PointFacts]
    kind: str = CurveKind.LINEAR.value
    response_unit: str = ""


@dataclass(frozen=True)
class Point:
    row: int
    level: int
    concentration: Decimal
    response: Decimal
    solution_barcode: str


@dataclass
class CheckedCurve:
    """Everything a curve will be, before anything is written (also what a preview shows)."""

    method: Method
    version: MethodVersion
    parameter: MethodParameter
    instrument: Instrument
    kind: str
    measured_at: datetime
    response_unit: str
    points: list[Point]
    fit: numbers.Fit
    nonzero_levels: int
    accepted: bool
    rejection: str
    range_low: Decimal
    range_high: Decimal
    valid_until: datetime
    standards: dict[str, Any] = field(default_factory=dict)  # barcode → unit, solution or reagent


def _local(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def _cell(value: Any, row: int, column: str) -> Decimal | None:
    """A typed number: exact, with a point (a comma is refused, not guessed), finite, and of a
    size a standard or a reading can have."""
    column_zh, column_en = COLUMNS[column]
    if isinstance(value, bool | float):
        raise errors.CurveCellNotANumber(row=row, column_zh=column_zh, column_en=column_en, value=str(value)[:30])
    if isinstance(value, Decimal | int):
        text = str(value)
    else:
        text = SPACES.sub("", unicodedata.normalize("NFKC", str(value or "")))
    if not text:
        return None
    where = {"row": row, "column_zh": column_zh, "column_en": column_en, "value": text[:30]}
    if "," in text:
        raise errors.CurveCellCommaDecimal(**where)
    if len(text) > 60 or not NUMBER_RE.match(text):
        raise errors.CurveCellNotANumber(**where)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise errors.CurveCellNotANumber(**where) from None
    if not number.is_finite() or (not number.is_zero()
                                  and not LOWEST_EXPONENT <= number.adjusted() <= HIGHEST_EXPONENT):
        raise errors.CurveCellNotANumber(**where)
    return abs(number) if number.is_zero() else number


def _level(value: Any, row: int) -> int:
    text = str(value if value is not None else "").strip()
    if not re.fullmatch(r"\d{1,2}", text) or int(text) > MAX_LEVEL:
        raise errors.CurveLevelInvalid(row=row, value=text[:30] or "—")
    return int(text)


def _is_blank(facts: PointFacts) -> bool:
    return not any(str(v if v is not None else "").strip() for v in
                   (facts.level, facts.concentration, facts.response, facts.solution_barcode))


def parse_points(rows: Sequence[PointFacts]) -> list[Point]:
    """The typed rows as points in level order; empty rows are skipped; every refusal names the
    row (as numbered in the table) and the column."""
    points: list[Point] = []
    for row, facts in enumerate(rows, start=1):
        if _is_blank(facts):
            continue
        level = _level(facts.level, row)
        values = {}
        for column in ("concentration", "response"):
            number = _cell(getattr(facts, column), row, column)
            if number is None:
                column_zh, column_en = COLUMNS[column]
                raise errors.CurveCellRequired(row=row, column_zh=column_zh, column_en=column_en)
            values[column] = number
        if values["concentration"] < 0:
            raise errors.CurveConcentrationNegative(row=row, value=f"{values['concentration']:f}")
        barcode = lab_input.text(facts.solution_barcode, "标准溶液条码", "The standard's barcode", 20).upper()
        points.append(Point(row, level, values["concentration"], values["response"], barcode))
    if len(points) > MAX_POINTS:
        raise errors.CurveTooManyPoints(maximum=MAX_POINTS)
    seen: dict[int, list[int]] = {}
    for p in points:
        seen.setdefault(p.level, []).append(p.row)
    for level, rows_of in seen.items():
        if len(rows_of) > 1:
            raise errors.CurveLevelRepeated(level=level, rows=", ".join(map(str, rows_of)))
    points.sort(key=lambda p: p.level)
    for before, after in zip(points, points[1:], strict=False):
        if after.concentration <= before.concentration:
            raise errors.CurveConcentrationsNotIncreasing(level=after.level, value=f"{after.concentration:f}",
                                                          previous=f"{before.concentration:f}")
    for p in points:
        if p.concentration > 0 and not p.solution_barcode:
            raise errors.CurveStandardRequired(row=p.row, level=p.level)
    return points


def fit_points(kind: str, points: Sequence[Point]) -> numbers.Fit:
    minimum = MINIMUM_POINTS[kind]
    if len(points) < minimum:
        kind_zh, kind_en = KIND_WORDS[kind]
        raise errors.CurveTooFewPoints(kind_zh=kind_zh, kind_en=kind_en, minimum=minimum, count=len(points))
    pairs = [(p.concentration, p.response) for p in points]
    try:
        return numbers.quadratic_fit(pairs) if kind == CurveKind.QUADRATIC.value else numbers.linear_fit(pairs)
    except ValueError:
        if len({p.response for p in points}) == 1:
            raise errors.CurveResponsesFlat() from None
        kind_zh, kind_en = KIND_WORDS[kind]
        raise errors.CurveTooFewPoints(kind_zh=kind_zh, kind_en=kind_en, minimum=minimum,
                                       count=len(points)) from None


def acceptance(version: MethodVersion, fit: numbers.Fit, nonzero_levels: int) -> tuple[bool, str]:
    """Accepted iff r ≥ the method's minimum and the non-zero levels are enough (DOMAIN.md §4.2);
    otherwise the reasons, in a form that reads the same in both languages."""
    reasons = []
    if fit.r < version.curve_r_min:
        shown = numbers.round_gbt8170(fit.r, decimals=5)
        reasons.append(f"r = {shown:f} < {version.curve_r_min:f}")
    if nonzero_levels < version.curve_min_levels:
        reasons.append(f"n = {nonzero_levels} < {version.curve_min_levels}")
    return not reasons, "; ".join(reasons)


def _instrument(session: Session, asset_no: str) -> Instrument:
    cleaned = (asset_no or "").strip().upper()[:40]
    instrument = session.scalars(select(Instrument).where(func.upper(Instrument.asset_no) == cleaned)).first() \
        if cleaned else None
    if instrument is None:
        raise errors.CurveInstrumentNotFound(asset_no=cleaned or "—")
    return instrument


def _allowed_kinds(version: MethodVersion) -> list[str]:
    try:
        kinds = json.loads(version.curve_kinds or "[]")
    except ValueError:
        kinds = []
    return [k for k in kinds if k in MINIMUM_POINTS] or [CurveKind.LINEAR.value]


def check_curve(session: Session, facts: CurveFacts) -> CheckedCurve:
    """Every rule of a curve at its time of measurement, and its fit; writes nothing. The
    standards go through the reference-materials gate here too, so a preview tells the analyst
    about an expired solution before saving."""
    from app.reference_materials.gate import assert_material_usable
    from app.reference_materials.service import find_item

    measured_at = lab_input.act_time(session, facts.measured_at, "测定时间", "The time of measurement",
                                     default_now=False)
    method = methods.get_method(session, facts.method_code)
    version = methods.version_in_force(session, method.id, measured_at)
    wanted = lab_input.text(facts.parameter, "检测项目", "The parameter", 60, required=True)
    parameters = methods.parameters_of(session, version.id)
    parameter = parameters.get(wanted) or next((p for k, p in parameters.items() if k.upper() == wanted.upper()),
                                               None)
    if parameter is None:
        raise errors.CurveParameterNotInMethod(method=method.code, version=version.version, parameter=wanted,
                                               parameters=" ".join(parameters) or "—")
    kind = (facts.kind or CurveKind.LINEAR.value).strip().lower()
    allowed = _allowed_kinds(version)
    if kind not in allowed:
        raise errors.CurveKindNotAllowed(method=method.code, kind=kind[:20], allowed=", ".join(allowed))
    instrument = _instrument(session, facts.instrument)
    methods.assert_instrument_allowed(session, version, instrument)
    assert_instrument_usable(session, instrument, measured_at, parameter.parameter)
    response_unit = lab_input.text(facts.response_unit, "响应值单位", "The response unit", 16)
    points = parse_points(facts.points)
    fit = fit_points(kind, points)
    standards = {}
    for barcode in dict.fromkeys(p.solution_barcode for p in points if p.solution_barcode):
        item = find_item(session, barcode)
        assert_material_usable(session, item, measured_at)
        standards[barcode] = item
    nonzero = [p for p in points if p.concentration > 0]
    accepted, rejection = acceptance(version, fit, len(nonzero))
    return CheckedCurve(
        method=method, version=version, parameter=parameter, instrument=instrument, kind=kind,
        measured_at=measured_at, response_unit=response_unit, points=points, fit=fit, nonzero_levels=len(nonzero),
        accepted=accepted, rejection=rejection, range_low=nonzero[0].concentration,
        range_high=points[-1].concentration, valid_until=measured_at + timedelta(hours=version.curve_valid_hours),
        standards=standards)


def preview_curve(session: Session, actor: User, facts: CurveFacts) -> CheckedCurve:
    """The fit and acceptance of what was typed, without saving anything."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    return check_curve(session, facts)


def record_curve(session: Session, actor: User, facts: CurveFacts) -> CalibrationCurve:
    """Record a curve as measured (accepted or rejected), its points, and the use of each
    standard solution at the time of measurement."""
    from app.reference_materials.service import record_use

    ensure(session, actor, Permission.ANALYSIS_RECORD)
    checked = check_curve(session, facts)
    code = next_code(session, CODE_PREFIX, checked.measured_at)
    uses: dict[str, int] = {}
    for barcode, item in checked.standards.items():
        use = record_use(session, actor, item, checked.measured_at, purpose=f"校准曲线 {code}",
                         consumer=(CONSUMER_KIND, code))
        uses[barcode] = use.id
    fit = checked.fit
    curve = CalibrationCurve(
        code=code, method_version_id=checked.version.id, parameter=checked.parameter.parameter,
        instrument_id=checked.instrument.id, kind=checked.kind, concentration_unit=checked.parameter.unit,
        response_unit=checked.response_unit, intercept=fit.intercept, slope=fit.slope, quadratic=fit.quadratic,
        r=fit.r, range_low=checked.range_low, range_high=checked.range_high, accepted=checked.accepted,
        rejection=checked.rejection, measured_at=checked.measured_at, valid_until=checked.valid_until,
        made_by_id=actor.id, recorded_at=utcnow())
    session.add(curve)
    session.flush()
    session.add_all([CalibrationPoint(curve_id=curve.id, level=p.level, concentration=p.concentration,
                                      response=p.response, solution_barcode=p.solution_barcode,
                                      material_use_id=uses.get(p.solution_barcode)) for p in checked.points])
    session.flush()
    audit.append(session, actor, "curve.recorded", "calibration_curve", curve.id, None, {
        "code": code, "method": checked.method.code, "method_version": checked.version.version,
        "parameter": curve.parameter, "instrument": checked.instrument.asset_no, "kind": curve.kind,
        "points": [[p.level, p.concentration, p.response, p.solution_barcode] for p in checked.points],
        "material_uses": uses, "intercept": fit.intercept, "slope": fit.slope, "quadratic": fit.quadratic,
        "r": fit.r, "accepted": curve.accepted, "rejection": curve.rejection, "measured_at": curve.measured_at,
        "valid_until": curve.valid_until, "range": [curve.range_low, curve.range_high]})
    return curve


# ---------------------------------------------------------------- the gate


def assert_curve_usable(session: Session, curve: CalibrationCurve, at: datetime, version_id: int,
                        parameter: str) -> None:
    """The gate for batches and results, at the time of the analysis: the curve is of this
    method version and parameter, was accepted, was made before `at` and is still valid then."""
    shown = {"curve": curve.code, "at": _local(session, at)}
    if curve.method_version_id != version_id:
        row = session.execute(select(Method.code, MethodVersion.version).join(
            MethodVersion, MethodVersion.method_id == Method.id).where(MethodVersion.id == curve.method_version_id)
        ).first()
        raise errors.CurveOtherMethod(curve_method=f"{row.code} v{row.version}" if row else "—", **shown)
    if curve.parameter != parameter:
        raise errors.CurveOtherParameter(curve_parameter=curve.parameter, parameter=parameter, **shown)
    if not curve.accepted:
        raise errors.CurveRejected(rejection=curve.rejection or "—", **shown)
    if at < curve.measured_at:
        raise errors.CurveMadeAfter(measured_at=_local(session, curve.measured_at), **shown)
    if at > curve.valid_until:
        raise errors.CurveExpired(valid_until=_local(session, curve.valid_until), **shown)


def _term(value: Decimal) -> str:
    return numbers.format_decimal(numbers.round_gbt8170(value, significant_figures=5))


def equation(fit: numbers.Fit) -> str:
    """y = a + b·x (+ c·x²) with five significant figures each, for reading (the full values stay)."""
    text = f"y = {_term(fit.intercept)} {'−' if fit.slope < 0 else '+'} {_term(abs(fit.slope))}x"
    if fit.quadratic is not None:
        text += f" {'−' if fit.quadratic < 0 else '+'} {_term(abs(fit.quadratic))}x²"
    return text


def fit_of(curve: CalibrationCurve) -> numbers.Fit:
    return numbers.Fit(curve.intercept, curve.slope, curve.quadratic, curve.r)


def in_range(curve: CalibrationCurve, concentration: Decimal) -> bool:
    """Whether a concentration read from the curve is within it: above the top standard it is
    not, and the sample is diluted and read again (low values are judged by the MDL, not here)."""
    return concentration <= curve.range_high


# ---------------------------------------------------------------- reading


def curve_by_code(session: Session, code: str) -> CalibrationCurve:
    cleaned = clean_code(code)
    curve = session.scalars(select(CalibrationCurve).where(CalibrationCurve.code == cleaned)).first() \
        if cleaned else None
    if curve is None:
        raise errors.CurveNotFound(curve=cleaned[:30] or "—")
    return curve


@dataclass
class CurveRow:
    curve: CalibrationCurve
    method_code: str
    version: int
    asset_no: str
    made_by: User | None


ACCEPTED_CHOICES = ("yes", "no")


def _listing() -> Select:
    return (select(CalibrationCurve, Method.code, MethodVersion.version, Instrument.asset_no, User)
            .join(MethodVersion, MethodVersion.id == CalibrationCurve.method_version_id)
            .join(Method, Method.id == MethodVersion.method_id)
            .join(Instrument, Instrument.id == CalibrationCurve.instrument_id)
            .outerjoin(User, User.id == CalibrationCurve.made_by_id))


def list_curves(session: Session, *, method: str = "", parameter: str = "", instrument: str = "",
                accepted: str = "", page: int = 1, size: int = 25) -> Page[CurveRow]:
    """Curves, newest measurement first; two queries a page whatever its size."""
    query = _listing()
    method_text = re.sub(r"\s+", " ", method or "").strip().upper()[:60]
    if method_text:
        query = query.where(func.upper(Method.code).contains(method_text, autoescape=True))
    parameter_text = (parameter or "").strip().upper()[:60]
    if parameter_text:
        query = query.where(func.upper(CalibrationCurve.parameter) == parameter_text)
    instrument_text = (instrument or "").strip().upper()[:40]
    if instrument_text:
        query = query.where(func.upper(Instrument.asset_no).contains(instrument_text, autoescape=True))
    if accepted in ACCEPTED_CHOICES:
        query = query.where(CalibrationCurve.accepted.is_(accepted == "yes"))
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.execute(query.order_by(CalibrationCurve.measured_at.desc(), CalibrationCurve.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    return Page([CurveRow(c, code, version, asset_no, user) for c, code, version, asset_no, user in rows],
                page, size, total)


@dataclass
class StandardLine:
    barcode: str
    item_kind: str  # unit, solution, reagent (which page shows it)
    use_id: int
    used_at: datetime
    levels: list[int]


@dataclass
class CurveView:
    curve: CalibrationCurve
    method: Method
    version: MethodVersion
    instrument: Instrument
    made_by: User | None
    points: list[CalibrationPoint]
    standards: list[StandardLine]

    @property
    def fit(self) -> numbers.Fit:
        return fit_of(self.curve)


def curve_view(session: Session, curve: CalibrationCurve) -> CurveView:
    """A curve with its method, instrument, points and the standards used, in five queries."""
    version, method, instrument, made_by = session.execute(
        select(MethodVersion, Method, Instrument, User)
        .join(Method, Method.id == MethodVersion.method_id)
        .join(Instrument, Instrument.id == curve.instrument_id)
        .outerjoin(User, User.id == curve.made_by_id)
        .where(MethodVersion.id == curve.method_version_id)).one()
    points = list(session.scalars(select(CalibrationPoint).where(CalibrationPoint.curve_id == curve.id)
                                  .order_by(CalibrationPoint.level)))
    use_ids = {p.material_use_id for p in points if p.material_use_id}
    uses = {u.id: u for u in session.scalars(select(MaterialUse).where(MaterialUse.id.in_(use_ids)))} \
        if use_ids else {}
    standards: dict[int, StandardLine] = {}
    for p in points:
        use = uses.get(p.material_use_id or 0)
        if use is None:
            continue
        line = standards.setdefault(use.id, StandardLine(p.solution_barcode, use.item_kind, use.id, use.used_at, []))
        line.levels.append(p.level)
    return CurveView(curve, method, version, instrument, made_by, points, list(standards.values()))


def curve_choices(session: Session) -> list[tuple[str, list[str]]]:
    """Methods in force with their parameters, for the form's lists (two queries)."""
    now = utcnow()
    rows = session.execute(
        select(Method.code, MethodParameter.parameter)
        .join(MethodVersion, MethodVersion.method_id == Method.id)
        .join(MethodParameter, MethodParameter.method_version_id == MethodVersion.id)
        .where(MethodVersion.valid_from <= now,
               (MethodVersion.valid_to.is_(None)) | (MethodVersion.valid_to > now))
        .order_by(Method.code, MethodParameter.parameter)).all()
    choices: dict[str, list[str]] = {}
    for code, parameter in rows:
        choices.setdefault(code, [])
        if parameter not in choices[code]:
            choices[code].append(parameter)
    return list(choices.items())


# ---------------------------------------------------------------- forward traceability


class CurveUses:
    """The lots' forward lists show the curves that used their solutions (one UNION ALL branch)."""

    name = CONSUMER_KIND
    title = N_("Calibration curve")
    consumer_kind = CONSUMER_KIND

    @staticmethod
    def href(record_id: str) -> str:
        return f"/curves/{record_id}"

    def usage_select(self, items: CTE) -> Select:
        curve = aliased(CalibrationCurve)
        return (
            select(literal(CONSUMER_KIND).label("source"), curve.code.cast(String).label("record_id"),
                   MaterialUse.used_at.label("used_at"), items.c.barcode.label("barcode"),
                   (curve.parameter + literal(" ") + curve.concentration_unit).label("description"))
            .select_from(MaterialUse)
            .join(items, and_(MaterialUse.item_kind == items.c.item_kind, MaterialUse.item_id == items.c.item_id))
            .join(curve, curve.code == MaterialUse.consumer_id)
            .where(MaterialUse.consumer_kind == CONSUMER_KIND)
        )


register_material_use_source(CurveUses())
