"""The preservation table applied: which containers a set of parameters needs.

Parameters whose rules share a `group_code` share one container (same preservative); its type is
the most restrictive of theirs (glass where one needs glass, "P/G" where either will do) and its
volume the sum of their needs, rounded up to a bottle size. Field tests need no container.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.samples.models import PreservationRule

BOTTLE_SIZES_ML = (50, 100, 250, 500, 1000, 2000, 5000)
# "P/G" accepts either; any more specific type wins over it
EITHER = "P/G"


class UnknownParameter(InvalidInput):
    code = "unknown_parameter"
    message_zh = "参数 {parameters} 不在样品保存表中；请先在保存表中登记。"
    message_en = "Parameter {parameters} is not in the preservation table; add it there first."


class ConflictingContainers(InvalidInput):
    code = "conflicting_containers"
    message_zh = "保存表中同组 {group} 的容器类型相互矛盾（{types}）。"
    message_en = "The preservation table gives conflicting container types for group {group} ({types})."


@dataclass(frozen=True)
class ContainerNeed:
    group_code: str
    container_type: str
    volume_ml: int
    preservative_zh: str
    preservative_en: str
    parameters: tuple[str, ...]


def clean_parameters(parameters: Iterable[str]) -> list[str]:
    """Stripped, without blanks and repeats, in the order given."""
    seen: dict[str, str] = {}
    for parameter in parameters:
        text = (parameter or "").strip()
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return list(seen.values())


def rules_for(session: Session, parameters: Iterable[str], method: str = "") -> dict[str, PreservationRule]:
    """The rule of each parameter (a method's own row over the default), keyed by the
    parameter as registered in the table; unknown parameters are refused together."""
    wanted = clean_parameters(parameters)
    if not wanted:
        return {}
    folded = {p.casefold() for p in wanted}
    rows = session.scalars(select(PreservationRule).where(PreservationRule.method.in_(("", method)))).all()
    found: dict[str, PreservationRule] = {}
    for row in rows:
        key = row.parameter.casefold()
        if key in folded and (key not in found or row.method):
            found[key] = row
    missing = [p for p in wanted if p.casefold() not in found]
    if missing:
        raise UnknownParameter(parameters="、".join(missing))
    return {found[p.casefold()].parameter: found[p.casefold()] for p in wanted}


def bottle_size(volume_ml: int) -> int:
    """The smallest usual bottle holding `volume_ml` (whole multiples of 5 L beyond)."""
    for size in BOTTLE_SIZES_ML:
        if volume_ml <= size:
            return size
    return -(-volume_ml // 5000) * 5000


def _container_type(group: str, types: Sequence[str]) -> str:
    specific = sorted({t for t in types if t != EITHER})
    if len(specific) > 1:
        raise ConflictingContainers(group=group, types=", ".join(specific))
    return specific[0] if specific else EITHER


def containers_for(rules: Iterable[PreservationRule]) -> list[ContainerNeed]:
    """One container per preservation group, in the order the groups first appear."""
    groups: dict[str, list[PreservationRule]] = {}
    for rule in rules:
        if not rule.field_test:
            groups.setdefault(rule.group_code, []).append(rule)
    needs = []
    for group, members in groups.items():
        first = members[0]
        volume = sum(m.volume_ml for m in members)
        needs.append(ContainerNeed(
            group_code=group,
            container_type=_container_type(group, [m.container_type for m in members]),
            volume_ml=bottle_size(volume) if volume else 0,
            preservative_zh=first.preservative_zh,
            preservative_en=first.preservative_en,
            parameters=tuple(m.parameter for m in members),
        ))
    return needs


def field_tests_of(rules: Iterable[PreservationRule]) -> list[PreservationRule]:
    return [rule for rule in rules if rule.field_test]
