"""Methods and their versions (DOMAIN.md §3 Method; issue 8 item 1).

A method is a standard with its year (HJ 535-2009); what a result depends on lives in versions:
parameters with unit, MDL and reporting rule, the calculation, the QC requirements and the
instruments allowed. A version is in force from `valid_from` to `valid_to`; a new version closes
the previous one at its start and is never retroactive, so a result analysed yesterday keeps the
version that was in force yesterday. Superseding or withdrawing a method closes its open version
at that moment: before it, the method was in force; after it, no batch can use it.

The read side (`get_method`, `version_in_force`, `parameters_of`, `allowed_instrument_ids`,
`assert_instrument_allowed`) is what batches, curves, results and imports call.

Decision: a version that names no instruments allows any instrument (the gate of calibration
still applies); once it names some, only those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.analysis import method_errors as errors
from app.analysis.models import (
    BelowMdlStyle,
    CalculationKind,
    CurveKind,
    Method,
    MethodInstrument,
    MethodParameter,
    MethodState,
    MethodVersion,
)
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.web import Page, paginate
from app.instruments.models import Instrument
from app.people.models import User
from app.samples import lab_input

MATRICES = ("water", "air", "soil", "other")
# a standard with its year: HJ 535-2009, GB 11893-89, HJ/T 91-2002, GB/T 7475-1987, GB/T 5750.6-2006
CODE_RE = re.compile(r"^[A-Z]{1,5}(/[A-Z]{1,2})? ?\d{1,5}(\.\d{1,3})*-(\d{4}|\d{2})$")
# a new version may start this much before now: the form was opened a moment ago
RETROACTIVE_TOLERANCE = timedelta(minutes=5)
MAX_PARAMETERS = 60
STATE_WORDS = {MethodState.ACTIVE.value: ("现行", "active"), MethodState.SUPERSEDED.value: ("被替代", "superseded"),
               MethodState.WITHDRAWN.value: ("作废", "withdrawn")}


# ---------------------------------------------------------------- facts


@dataclass
class ParameterFacts:
    """One parameter of a version as typed: numbers may be text, Decimal or int (never float)."""

    parameter: str
    unit: str
    mdl: Any
    lower_limit: Any = None  # blank: 4 × MDL (HJ 168-2020)
    upper_limit: Any = None
    decimals: Any = None
    significant_figures: Any = None
    below_mdl: str = BelowMdlStyle.MDL_L.value
    organic: bool = False


@dataclass
class VersionFacts:
    """A version's content; QC defaults are DOMAIN.md §4.2's, the method standard overrides."""

    parameters: Sequence[ParameterFacts]
    calculation: str = CalculationKind.DIRECT.value
    curve_kinds: Sequence[str] = (CurveKind.LINEAR.value,)
    max_samples_per_batch: Any = 20
    blanks_per_batch: Any = 2
    duplicate_rate_pct: Any = 10
    spike_rate_pct: Any = 10
    spike_recovery_low: Any = "80"
    spike_recovery_high: Any = "120"
    crm_per_batch: Any = 1
    ccv_every: Any = 20
    ccv_tolerance_pct: Any = "10"
    curve_r_min: Any = "0.999"
    curve_min_levels: Any = 5
    curve_valid_hours: Any = 24
    duplicate_rd_limits: Sequence[tuple[Any, Any]] = ()  # (level, max RD %)
    holding_rule: str = ""
    note: str = ""
    instruments: Sequence[str] = ()  # asset numbers


@dataclass
class MethodFacts:
    code: str
    name_zh: str
    version: VersionFacts
    name_en: str = ""
    matrix: str = "water"


# (column, zh, en, low, high, integer)
QC_RANGES: tuple[tuple[str, str, str, Decimal, Decimal, bool], ...] = (
    ("max_samples_per_batch", "每批最多样品数", "samples per batch", Decimal(1), Decimal(200), True),
    ("blanks_per_batch", "每批实验室空白数", "blanks per batch", Decimal(0), Decimal(10), True),
    ("duplicate_rate_pct", "平行双样比例 %", "duplicate rate %", Decimal(0), Decimal(100), True),
    ("spike_rate_pct", "加标比例 %", "spike rate %", Decimal(0), Decimal(100), True),
    ("spike_recovery_low", "加标回收率下限 %", "spike recovery low %", Decimal(0), Decimal(300), False),
    ("spike_recovery_high", "加标回收率上限 %", "spike recovery high %", Decimal(0), Decimal(300), False),
    ("crm_per_batch", "每批标准物质数", "CRMs per batch", Decimal(0), Decimal(10), True),
    ("ccv_every", "校准核查间隔（样品数，0 为不做）", "CCV every n samples (0: none)", Decimal(0), Decimal(200), True),
    ("ccv_tolerance_pct", "校准核查允许偏差 %", "CCV tolerance %", Decimal("0.1"), Decimal(100), False),
    ("curve_r_min", "校准曲线相关系数下限", "minimum curve r", Decimal("0.9"), Decimal(1), False),
    ("curve_min_levels", "校准曲线最少非零浓度点数", "minimum non-zero curve levels", Decimal(2), Decimal(20),
     True),
    ("curve_valid_hours", "校准曲线有效时长（小时）", "curve valid for (hours)", Decimal(1), Decimal(8760), True),
)


# ---------------------------------------------------------------- cleaning


def clean_code(code: str) -> str:
    """The code as the lab writes it: upper case, one space, dashes of any kind as '-'."""
    text = re.sub(r"\s+", " ", (code or "").strip().upper())
    text = re.sub(r"\s*[-—–－]\s*", "-", text)
    return re.sub(r"\s*/\s*", "/", text)


def _number(value: Any, field_zh: str, field_en: str, *, required: bool = False) -> Decimal | None:
    """A Decimal from the form; a comma decimal is refused (it would silently be a thousand)."""
    if isinstance(value, str) and "," in value:
        raise lab_input.NotANumber(field_zh=field_zh, field_en=field_en, value=value.strip()[:30])
    return lab_input.decimal(value, field_zh, field_en, required=required)


def _integer(value: Any, field_zh: str, field_en: str) -> int | None:
    number = _number(value, field_zh, field_en)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise lab_input.NotANumber(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    return int(number)


def _clean_parameter(facts: ParameterFacts) -> dict[str, Any]:
    name = lab_input.text(facts.parameter, "检测项目", "The parameter", 60, required=True)
    label_zh, label_en = f"{name} 的", f"{name}: "
    unit = lab_input.text(facts.unit, f"{label_zh}单位", f"{label_en}the unit", 16, required=True)
    style = (facts.below_mdl or "").strip()
    if style not in {s.value for s in BelowMdlStyle}:
        raise errors.BelowMdlStyleUnknown(style=style[:20] or "—")
    direct = style == BelowMdlStyle.NONE.value
    mdl = _number(facts.mdl, f"{label_zh}检出限", f"{label_en}the MDL", required=not direct)
    if direct:
        if mdl not in (None, 0):
            raise errors.MdlNotApplicable(parameter=name, value=str(facts.mdl)[:30])
        mdl = Decimal(0)
    elif mdl is None or mdl <= 0:
        raise errors.MdlNotPositive(parameter=name, value=str(facts.mdl)[:30])
    lower = _number(facts.lower_limit, f"{label_zh}测定下限", f"{label_en}the lower limit")
    upper = _number(facts.upper_limit, f"{label_zh}测定上限", f"{label_en}the upper limit")
    if (lower is not None and lower < mdl) or (upper is not None and upper <= (lower if lower is not None
                                                                               else 4 * mdl)):
        raise errors.LimitsInvalid(parameter=name)
    decimals = _integer(facts.decimals, f"{label_zh}小数位数", f"{label_en}the decimal places")
    figures = _integer(facts.significant_figures, f"{label_zh}有效数字", f"{label_en}the significant figures")
    if (decimals is None) == (figures is None) or (decimals is not None and not 0 <= decimals <= 6) \
            or (figures is not None and not 1 <= figures <= 6):
        raise errors.ReportingRuleInvalid(parameter=name)
    return {"parameter": name, "unit": unit, "mdl": mdl, "lower_limit": lower, "upper_limit": upper,
            "decimals": decimals, "significant_figures": figures, "below_mdl": style,
            "organic": bool(facts.organic)}


def _clean_rd_limits(limits: Iterable[tuple[Any, Any]]) -> list[list[str]]:
    cleaned: list[tuple[Decimal, Decimal]] = []
    for pair in limits:
        try:
            level_raw, rd_raw = pair
        except (TypeError, ValueError):
            raise errors.RdLimitsInvalid(detail=str(pair)[:40]) from None
        try:
            level = _number(level_raw, "浓度水平", "The level", required=True)
            rd = _number(rd_raw, "最大相对偏差", "The maximum RD", required=True)
        except errors.DomainError:
            raise errors.RdLimitsInvalid(detail=f"{level_raw} {rd_raw}"[:40]) from None
        if level is None or rd is None or level < 0 or not 0 < rd <= 100:
            raise errors.RdLimitsInvalid(detail=f"{level_raw} {rd_raw}"[:40])
        cleaned.append((level, rd))
    levels = [level for level, _ in cleaned]
    if len(set(levels)) != len(levels):
        raise errors.RdLimitsInvalid(detail="repeated level")
    return [[str(level), str(rd)] for level, rd in sorted(cleaned, reverse=True)]


def parse_rd_limits(text: str) -> list[tuple[str, str]]:
    """The form's lines "level max_rd" (e.g. "1 5") as pairs; the service checks the numbers."""
    pairs = []
    for line in (text or "").splitlines():
        parts = line.replace("%", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise errors.RdLimitsInvalid(detail=line.strip()[:40])
        pairs.append((parts[0], parts[1]))
    return pairs


def _clean_version(session: Session, facts: VersionFacts) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                       list[Instrument]]:
    """Everything a version holds, checked; refusals name the field."""
    if not facts.parameters:
        raise errors.ParametersRequired()
    if len(facts.parameters) > MAX_PARAMETERS:
        raise lab_input.FieldTooLong(field_zh="检测项目", field_en="The parameters", limit=MAX_PARAMETERS)
    parameters = [_clean_parameter(p) for p in facts.parameters]
    seen: set[str] = set()
    for p in parameters:
        if p["parameter"].upper() in seen:
            raise errors.ParameterRepeated(parameter=p["parameter"])
        seen.add(p["parameter"].upper())
    calculation = (facts.calculation or "").strip()
    if calculation not in {c.value for c in CalculationKind}:
        raise errors.CalculationUnknown(calculation=calculation[:30] or "—")
    kinds = []
    for kind in facts.curve_kinds or ():
        kind = (kind or "").strip()
        if kind not in {k.value for k in CurveKind}:
            raise errors.CurveKindUnknown(kind=kind[:20] or "—")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        kinds = [CurveKind.LINEAR.value]
    columns: dict[str, Any] = {"calculation": calculation, "curve_kinds": canonical_json(kinds)}
    for name, zh, en, low, high, integer in QC_RANGES:
        raw = getattr(facts, name)
        number = _number(raw, zh, en, required=True)
        if number is None or not low <= number <= high or (integer and number != number.to_integral_value()):
            raise errors.QcRequirementOutOfRange(field_zh=zh, field_en=en, low=low, high=high, value=str(raw)[:30])
        columns[name] = int(number) if integer else number
    if columns["spike_recovery_low"] >= columns["spike_recovery_high"]:
        raise errors.RecoveryRangeInvalid(low=columns["spike_recovery_low"], high=columns["spike_recovery_high"])
    columns["duplicate_rd_limits"] = canonical_json(_clean_rd_limits(facts.duplicate_rd_limits))
    columns["holding_rule"] = lab_input.text(facts.holding_rule, "保存要求", "The holding rule", 200)
    columns["note"] = lab_input.text(facts.note, "备注", "The note", 500)
    instruments = _instruments(session, facts.instruments)
    return columns, parameters, instruments


def _instruments(session: Session, asset_nos: Iterable[str]) -> list[Instrument]:
    wanted = []
    for raw in asset_nos or ():
        cleaned = (raw or "").strip()
        if cleaned and cleaned not in wanted:
            wanted.append(cleaned[:40])
    if not wanted:
        return []
    found = {i.asset_no: i for i in session.scalars(select(Instrument).where(Instrument.asset_no.in_(wanted)))}
    for asset_no in wanted:
        if asset_no not in found:
            raise errors.InstrumentUnknown(asset_no=asset_no)
    return [found[a] for a in wanted]


def _write_version(session: Session, actor: User, method: Method, number: int, valid_from: datetime,
                   columns: dict[str, Any], parameters: list[dict[str, Any]],
                   instruments: list[Instrument]) -> MethodVersion:
    version = MethodVersion(method_id=method.id, version=number, valid_from=valid_from, created_at=utcnow(),
                            created_by_id=actor.id, **columns)
    session.add(version)
    session.flush()
    session.add_all([MethodParameter(method_version_id=version.id, **p) for p in parameters])
    session.add_all([MethodInstrument(method_version_id=version.id, instrument_id=i.id) for i in instruments])
    session.flush()
    return version


def _version_record(version: MethodVersion, parameters: list[dict[str, Any]],
                    instruments: list[Instrument]) -> dict[str, Any]:
    return {"version": version.version, "valid_from": version.valid_from,
            **{name: getattr(version, name) for name, *_ in QC_RANGES},
            "calculation": version.calculation, "curve_kinds": json.loads(version.curve_kinds),
            "duplicate_rd_limits": json.loads(version.duplicate_rd_limits), "holding_rule": version.holding_rule,
            "note": version.note, "parameters": parameters, "instruments": [i.asset_no for i in instruments]}


# ---------------------------------------------------------------- changing


def create_method(session: Session, actor: User, facts: MethodFacts, valid_from: Any = None) -> Method:
    """Register a method standard with its first version, in force from `valid_from` (default now)."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    code = clean_code(lab_input.text(facts.code, "方法编号", "The method code", 60, required=True))
    if not CODE_RE.match(code):
        raise errors.MethodCodeWithoutYear(method=code)
    name_zh = lab_input.text(facts.name_zh, "方法名称", "The method's name", 200, required=True)
    name_en = lab_input.text(facts.name_en, "英文名称", "The English name", 200)
    matrix = (facts.matrix or "").strip()
    if matrix not in MATRICES:
        raise errors.MatrixUnknown(matrix=matrix[:20] or "—")
    columns, parameters, instruments = _clean_version(session, facts.version)
    if session.scalar(select(Method.id).where(Method.code == code)) is not None:
        raise errors.MethodCodeTaken(method=code)
    start = _start(session, valid_from)
    method = Method(code=code, name_zh=name_zh, name_en=name_en, matrix=matrix, state=MethodState.ACTIVE.value,
                    created_at=utcnow(), created_by_id=actor.id)
    session.add(method)
    session.flush()
    version = _write_version(session, actor, method, 1, start, columns, parameters, instruments)
    audit.append(session, actor, "method.created", "method", method.id, None, {
        "code": code, "name_zh": name_zh, "name_en": name_en, "matrix": matrix,
        **_version_record(version, parameters, instruments)})
    return method


def _start(session: Session, valid_from: Any) -> datetime:
    """When a version takes effect: a time given (lab local without an offset), default now;
    the future is allowed (a standard announced ahead), the past only within the tolerance."""
    if valid_from is None or (isinstance(valid_from, str) and not valid_from.strip()):
        return utcnow()
    if isinstance(valid_from, datetime):
        moment = valid_from if valid_from.tzinfo else valid_from.replace(tzinfo=lab_calendar(session).tz)
    else:
        try:
            moment = datetime.fromisoformat(str(valid_from).strip())
        except ValueError:
            raise lab_input.InvalidActTime(field_zh="生效时间", field_en="The start of validity",
                                           value=str(valid_from)[:40]) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=lab_calendar(session).tz)
    return moment.astimezone(utcnow().tzinfo)


def _locked(session: Session, method: Method) -> Method:
    return session.execute(select(Method).where(Method.id == method.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _assert_active(method: Method) -> None:
    if method.state != MethodState.ACTIVE.value:
        zh, en = STATE_WORDS.get(method.state, (method.state, method.state))
        raise errors.MethodNotActive(method=method.code, state_zh=zh, state_en=en)


def versions_of(session: Session, method_id: int) -> list[MethodVersion]:
    return list(session.scalars(select(MethodVersion).where(MethodVersion.method_id == method_id)
                                .order_by(MethodVersion.version)))


def new_version(session: Session, actor: User, method: Method, facts: VersionFacts, valid_from: Any,
                reason: str) -> MethodVersion:
    """A changed configuration from `valid_from` (now or later, after the previous version's
    start); the previous version ends there. Results keep the version they used."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    method = _locked(session, method)
    _assert_active(method)
    reason = lab_input.text(reason, "修订原因", "The reason for the change", 500, required=True)
    columns, parameters, instruments = _clean_version(session, facts)
    start = _start(session, valid_from)
    versions = versions_of(session, method.id)
    previous = versions[-1]
    if start < utcnow() - RETROACTIVE_TOLERANCE or start <= previous.valid_from:
        tz = lab_calendar(session).tz
        raise errors.VersionRetroactive(valid_from=start.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                                        previous=previous.valid_from.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
    closed_before = previous.valid_to
    if previous.valid_to is None or previous.valid_to > start:
        previous.valid_to = start
    version = _write_version(session, actor, method, previous.version + 1, start, columns, parameters, instruments)
    audit.append(session, actor, "method.version_added", "method", method.id,
                 {"version": previous.version, "valid_to": closed_before},
                 {"code": method.code, "reason": reason, "previous_valid_to": previous.valid_to,
                  **_version_record(version, parameters, instruments)})
    return version


def _retire(session: Session, actor: User, method: Method, state: MethodState, reason: str, at: Any,
            replaced_by: str = "") -> Method:
    method = _locked(session, method)
    _assert_active(method)
    reason = lab_input.text(reason, "原因", "The reason", 500, required=True)
    moment = _start(session, at)
    if moment < utcnow() - RETROACTIVE_TOLERANCE:
        tz = lab_calendar(session).tz
        raise errors.VersionRetroactive(valid_from=moment.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                                        previous=utcnow().astimezone(tz).strftime("%Y-%m-%d %H:%M"))
    closed = []
    for version in versions_of(session, method.id):
        end = max(moment, version.valid_from)  # a version not begun yet never comes into force
        if version.valid_to is None or version.valid_to > end:
            version.valid_to = end
            closed.append(version.version)
    method.state = state.value
    session.flush()
    audit.append(session, actor, f"method.{state.value}", "method", method.id, {"state": MethodState.ACTIVE.value},
                 {"code": method.code, "state": state.value, "at": moment, "reason": reason,
                  "replaced_by": replaced_by, "versions_closed": closed})
    return method


def supersede_method(session: Session, actor: User, method: Method, reason: str, replaced_by: str = "",
                     at: Any = None) -> Method:
    """A newer standard replaces the method from `at` (default now), e.g. HJ 535-2009 by its
    successor; `replaced_by` names it when it is registered."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    successor = ""
    if (replaced_by or "").strip():
        successor = get_method(session, replaced_by).code
        if successor == method.code:
            raise errors.MethodCodeTaken(method=successor)
    return _retire(session, actor, method, MethodState.SUPERSEDED, reason, at, successor)


def withdraw_method(session: Session, actor: User, method: Method, reason: str, at: Any = None) -> Method:
    """The lab stops using the method from `at` (default now)."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    return _retire(session, actor, method, MethodState.WITHDRAWN, reason, at)


# ---------------------------------------------------------------- the read side other parts call


def get_method(session: Session, code: str) -> Method:
    cleaned = clean_code(code or "")[:60]
    method = session.scalars(select(Method).where(Method.code == cleaned)).first() if cleaned else None
    if method is None:
        raise errors.MethodNotFound(method=cleaned or "—")
    return method


def version_in_force(session: Session, method_id: int, at: datetime) -> MethodVersion:
    """The version in force at `at` (the time of the act); MethodNotInForce when none: not yet
    in force, or superseded or withdrawn by then."""
    version = session.scalars(
        select(MethodVersion).where(MethodVersion.method_id == method_id, MethodVersion.valid_from <= at,
                                    or_(MethodVersion.valid_to.is_(None), MethodVersion.valid_to > at))
        .order_by(MethodVersion.version.desc()).limit(1)).first()
    if version is None:
        code = session.scalar(select(Method.code).where(Method.id == method_id)) or str(method_id)
        raise errors.MethodNotInForce(method=code,
                                      at=at.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M"))
    return version


def parameters_of(session: Session, version_id: int) -> dict[str, MethodParameter]:
    rows = session.scalars(select(MethodParameter).where(MethodParameter.method_version_id == version_id)
                           .order_by(MethodParameter.id))
    return {p.parameter: p for p in rows}


def allowed_instrument_ids(session: Session, version_id: int) -> set[int]:
    return set(session.scalars(select(MethodInstrument.instrument_id)
                               .where(MethodInstrument.method_version_id == version_id)))


def assert_instrument_allowed(session: Session, version: MethodVersion, instrument: Instrument) -> None:
    """The instrument is one the version names (a version naming none allows any)."""
    allowed = allowed_instrument_ids(session, version.id)
    if allowed and instrument.id not in allowed:
        code = session.scalar(select(Method.code).where(Method.id == version.method_id)) or ""
        raise errors.InstrumentNotAllowed(asset_no=instrument.asset_no, method=code, version=version.version)


def lower_limit_of(parameter: MethodParameter) -> Decimal:
    """测定下限: the one given, else 4 × MDL (HJ 168-2020)."""
    return parameter.lower_limit if parameter.lower_limit is not None else 4 * parameter.mdl


# ---------------------------------------------------------------- pages: the list


@dataclass
class MethodRow:
    method: Method
    version: MethodVersion | None  # in force now
    parameters: list[MethodParameter]


METHOD_STATES = tuple(s.value for s in MethodState)


def list_methods(session: Session, *, q: str = "", matrix: str = "", state: str = "", page: int = 1,
                 size: int = 25) -> Page[MethodRow]:
    """Methods by code; a page costs four queries whatever its size."""
    query = select(Method)
    if matrix in MATRICES:
        query = query.where(Method.matrix == matrix)
    if state in METHOD_STATES:
        query = query.where(Method.state == state)
    text = re.sub(r"\s+", " ", q or "").strip()[:60]
    if text:
        query = query.where(func.upper(Method.code).contains(text.upper(), autoescape=True)
                            | Method.name_zh.contains(text, autoescape=True)
                            | func.upper(Method.name_en).contains(text.upper(), autoescape=True))
    found = paginate(session, query.order_by(Method.code), page, size)
    ids = [m.id for m in found.items]
    now = utcnow()
    current: dict[int, MethodVersion] = {}
    if ids:
        for v in session.scalars(select(MethodVersion).where(
                MethodVersion.method_id.in_(ids), MethodVersion.valid_from <= now,
                or_(MethodVersion.valid_to.is_(None), MethodVersion.valid_to > now))):
            current[v.method_id] = v
    latest_ids = {v.id for v in current.values()}
    by_version: dict[int, list[MethodParameter]] = {}
    if latest_ids:
        for p in session.scalars(select(MethodParameter).where(MethodParameter.method_version_id.in_(latest_ids))
                                 .order_by(MethodParameter.id)):
            by_version.setdefault(p.method_version_id, []).append(p)
    rows = [MethodRow(m, current.get(m.id), by_version.get(current[m.id].id, []) if m.id in current else [])
            for m in found.items]
    return Page(rows, found.page, found.size, found.total)


# ---------------------------------------------------------------- pages: one method


@dataclass
class VersionLine:
    version: MethodVersion
    parameters: list[MethodParameter]
    instruments: list[Instrument]
    changes: list[str]  # what differs from the previous version
    reason: str
    created_by: User | None
    in_force: bool


@dataclass
class MethodView:
    method: Method
    versions: list[VersionLine]  # newest first
    current: VersionLine | None
    retirement: dict[str, Any] | None  # the superseded/withdrawn event's facts
    created_by: User | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latest(self) -> VersionLine:
        return self.versions[0]


def _changes(before: VersionLine | None, after: MethodVersion, parameters: list[MethodParameter],
             instruments: list[Instrument]) -> list[str]:
    if before is None:
        return []
    changes = []
    for name in ("calculation", "curve_kinds", *(n for n, *_ in QC_RANGES), "duplicate_rd_limits", "holding_rule"):
        old, new = getattr(before.version, name), getattr(after, name)
        if str(old) != str(new):
            changes.append(f"{name}: {old} → {new}")
    old_params = {p.parameter: p for p in before.parameters}
    new_params = {p.parameter: p for p in parameters}
    for name in sorted(set(old_params) | set(new_params)):
        if name not in old_params:
            changes.append(f"+ {name}")
        elif name not in new_params:
            changes.append(f"− {name}")
        else:
            for column in ("unit", "mdl", "lower_limit", "upper_limit", "decimals", "significant_figures",
                           "below_mdl", "organic"):
                old, new = getattr(old_params[name], column), getattr(new_params[name], column)
                if str(old) != str(new):
                    changes.append(f"{name} {column}: {old} → {new}")
    old_assets = {i.asset_no for i in before.instruments}
    new_assets = {i.asset_no for i in instruments}
    changes += [f"+ {a}" for a in sorted(new_assets - old_assets)] + [f"− {a}" for a in sorted(old_assets - new_assets)]
    return changes


def method_view(session: Session, method: Method, at: datetime | None = None) -> MethodView:
    """The method page's read model in a fixed number of queries, however many versions."""
    from app.core.audit import AuditEvent

    now = at or utcnow()
    versions = versions_of(session, method.id)
    ids = [v.id for v in versions]
    parameters: dict[int, list[MethodParameter]] = {}
    for p in session.scalars(select(MethodParameter).where(MethodParameter.method_version_id.in_(ids))
                             .order_by(MethodParameter.id)):
        parameters.setdefault(p.method_version_id, []).append(p)
    instruments: dict[int, list[Instrument]] = {}
    for link, instrument in session.execute(
            select(MethodInstrument, Instrument).join(Instrument, Instrument.id == MethodInstrument.instrument_id)
            .where(MethodInstrument.method_version_id.in_(ids)).order_by(Instrument.asset_no)):
        instruments.setdefault(link.method_version_id, []).append(instrument)
    events = session.scalars(select(AuditEvent).where(
        AuditEvent.entity_type == "method", AuditEvent.entity_id == str(method.id),
        AuditEvent.action.in_(("method.version_added", "method.superseded", "method.withdrawn")))
        .order_by(AuditEvent.seq)).all()
    reasons = {e.after_data.get("version"): e.after_data.get("reason", "") for e in events
               if e.action == "method.version_added"}
    retirement = next((e.after_data for e in events if e.action != "method.version_added"), None)
    people = users_by_id(session, {method.created_by_id, *(v.created_by_id for v in versions)})
    lines: list[VersionLine] = []
    for v in versions:
        in_force = v.valid_from <= now and (v.valid_to is None or v.valid_to > now)
        line = VersionLine(v, parameters.get(v.id, []), instruments.get(v.id, []),
                           _changes(lines[-1] if lines else None, v, parameters.get(v.id, []),
                                    instruments.get(v.id, [])),
                           reasons.get(v.version, ""), people.get(v.created_by_id), in_force)
        lines.append(line)
    current = next((line for line in lines if line.in_force), None)
    return MethodView(method, list(reversed(lines)), current, retirement, people.get(method.created_by_id))


def users_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))} if wanted else {}


def facts_of(session: Session, version: MethodVersion) -> VersionFacts:
    """A version's content as facts: the new-version form starts from it."""
    params = list(parameters_of(session, version.id).values())
    assets = list(session.scalars(select(Instrument.asset_no).join(
        MethodInstrument, MethodInstrument.instrument_id == Instrument.id)
        .where(MethodInstrument.method_version_id == version.id).order_by(Instrument.asset_no)))
    return VersionFacts(
        parameters=[ParameterFacts(p.parameter, p.unit, p.mdl, p.lower_limit, p.upper_limit, p.decimals,
                                   p.significant_figures, p.below_mdl, p.organic) for p in params],
        calculation=version.calculation, curve_kinds=json.loads(version.curve_kinds),
        **{name: getattr(version, name) for name, *_ in QC_RANGES},
        duplicate_rd_limits=[tuple(pair) for pair in json.loads(version.duplicate_rd_limits)],
        holding_rule=version.holding_rule, note=version.note, instruments=assets)


def active_methods(session: Session) -> list[Method]:
    return list(session.scalars(select(Method).where(Method.state == MethodState.ACTIVE.value)
                                .order_by(Method.code)))
