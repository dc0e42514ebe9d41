"""Method detection limit studies (HJ 168-2020; DOMAIN.md §4.3; issue 8 item 1).

The lab verifies a method's MDL before first use from n ≥ 7 replicate low-level samples carried
through the whole procedure: S is their standard deviation, MDL = t(n−1, 0.99) × S, and the lower
limit of determination is 4 × MDL. The numbers are computed here from the replicates, never
typed; the study keeps the replicates (canonical JSON of their exact text) and is append-only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import method_errors as errors
from app.analysis import numbers
from app.analysis.methods import parameters_of
from app.analysis.models import MdlStudy, Method, MethodParameter, MethodVersion
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import lab_input

MIN_REPLICATES = 7  # HJ 168-2020
MAX_REPLICATES = 50
LIMIT = Decimal("1e12")


@dataclass(frozen=True)
class MdlNumbers:
    n: int
    mean: Decimal
    std_dev: Decimal
    t_value: Decimal
    mdl: Decimal
    lower_limit: Decimal


def parse_replicates(text: str) -> list[Decimal]:
    """Replicates pasted one per line or separated by spaces/tabs/semicolons; a comma is refused
    (a comma decimal, or a list the reader cannot tell from one), naming the value."""
    tokens = [t for t in re.split(r"[\s;；]+", text or "") if t]
    if len(tokens) > MAX_REPLICATES:
        raise errors.MdlTooManyReplicates(limit=MAX_REPLICATES, n=len(tokens))
    values = []
    for position, token in enumerate(tokens, start=1):
        shown = token[:30]
        if "," in token or "，" in token:
            raise errors.MdlCommaDecimal(position=position, value=shown)
        try:
            number = Decimal(token)
        except InvalidOperation:
            raise errors.MdlReplicateInvalid(position=position, value=shown) from None
        if not number.is_finite() or abs(number) >= LIMIT:
            raise errors.MdlReplicateInvalid(position=position, value=shown)
        values.append(number)
    return values


def compute(replicates: list[Decimal]) -> MdlNumbers:
    """HJ 168-2020: mean, S (n − 1), t(n−1, 0.99), MDL = t × S, lower limit = 4 × MDL."""
    for position, value in enumerate(replicates, start=1):
        if not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= LIMIT:
            raise errors.MdlReplicateInvalid(position=position, value=str(value)[:30])
    n = len(replicates)
    if n < MIN_REPLICATES:
        raise errors.MdlTooFewReplicates(n=n)
    if n > MAX_REPLICATES:
        raise errors.MdlTooManyReplicates(limit=MAX_REPLICATES, n=n)
    s = numbers.std_dev(replicates)
    if s.is_zero():
        raise errors.MdlNoSpread(n=n)
    t = numbers.t_one_sided_99(n - 1)
    mdl = t * s
    return MdlNumbers(n, numbers.mean(replicates), s, t, mdl, 4 * mdl)


def _parameter(session: Session, version: MethodVersion, parameter: str) -> MethodParameter:
    found = parameters_of(session, version.id).get((parameter or "").strip())
    if found is None:
        code = session.scalar(select(Method.code).where(Method.id == version.method_id)) or ""
        raise errors.MdlParameterUnknown(method=code, version=version.version, parameter=(parameter or "—")[:60])
    return found


def preview(session: Session, version: MethodVersion, parameter: str, replicates: list[Decimal],
            unit: str) -> tuple[MdlNumbers, bool]:
    """The numbers a study would record and whether they meet the method's MDL; saves nothing."""
    found = _parameter(session, version, parameter)
    unit_text = (unit or "").strip()
    if unit_text != found.unit:
        raise errors.MdlUnitMismatch(unit=unit_text[:16] or "—", parameter=found.parameter, expected=found.unit)
    result = compute(replicates)
    return result, result.mdl <= found.mdl


def record_mdl_study(session: Session, actor: User, version: MethodVersion, parameter: str,
                     replicates: list[Decimal], unit: str, performed_at: Any, note: str = "", *,
                     performed_by: User | None = None) -> MdlStudy:
    """Record a validation of `parameter` under `version`: the numbers are computed from the
    replicates; `meets_method` says whether the lab's MDL is at most the method's."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    note = lab_input.text(note, "备注", "The note", 500)
    moment = lab_input.act_time(session, performed_at, "测定时间", "The time of the study")
    result, meets = preview(session, version, parameter, replicates, unit)
    study = MdlStudy(
        method_version_id=version.id, parameter=parameter.strip(),
        replicates=canonical_json([str(v) for v in replicates]),
        unit=unit.strip(), n=result.n, mean=result.mean, std_dev=result.std_dev, t_value=result.t_value,
        mdl=result.mdl, lower_limit=result.lower_limit, meets_method=meets, performed_at=moment,
        performed_by_id=(performed_by or actor).id, recorded_at=utcnow(), recorded_by_id=actor.id, note=note)
    session.add(study)
    session.flush()
    audit.append(session, actor, "method.mdl_study_recorded", "method", version.method_id, None, {
        "study_id": study.id, "version": version.version, "parameter": study.parameter,
        "replicates": [str(v) for v in replicates], "unit": study.unit, "n": result.n, "mean": result.mean,
        "std_dev": result.std_dev, "t_value": result.t_value, "mdl": result.mdl, "lower_limit": result.lower_limit,
        "meets_method": meets, "performed_at": moment, "performed_by_id": study.performed_by_id, "note": note})
    return study


def studies_of(session: Session, version_ids: list[int]) -> list[MdlStudy]:
    """Studies of the versions, newest first (one query)."""
    if not version_ids:
        return []
    return list(session.scalars(select(MdlStudy).where(MdlStudy.method_version_id.in_(version_ids))
                                .order_by(MdlStudy.performed_at.desc(), MdlStudy.id.desc())))


def replicates_of(study: MdlStudy) -> list[Decimal]:
    return [Decimal(v) for v in json.loads(study.replicates)]


def shown(value: Decimal, figures: int = 3) -> str:
    """A computed number for the page: rounded once to `figures` significant figures."""
    return numbers.format_decimal(numbers.round_gbt8170(value, significant_figures=figures))

