"""What an anomaly rule is (DOMAIN.md §7): a small unit with a code, configurable thresholds and
a `find` that reads the records and yields findings with their evidence. The engine
(app/oversight/anomalies.py) runs the rules, turns findings into alarms (one per fingerprint, so
a finding found again is the same alarm), records each scan and shows open alarms in the review
checklist of the samples they touch.

A rule reads in a fixed number of queries per scan (grouped in SQL, or streamed in order), never
one per result: `lims anomalies scan` runs over a million results within a bounded memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Threshold:
    """A setting of a rule, with its default and the range the quality manager may set it to."""

    name: str
    default: Decimal
    low: Decimal
    high: Decimal
    label_zh: str
    label_en: str
    integer: bool = False  # a count (n, number of pairs), not a measure


@dataclass(frozen=True)
class ScanWindow:
    """What a scan looks at. `since`/`until` bound the acts to judge (results entered, batches
    signed, receipts...) by their record time; `batch_ids` narrows a scan to the batches just
    submitted. History before `since` is still read where a rule compares with it (a site's
    earlier results, an analyst's last duplicate pairs)."""

    until: datetime
    since: datetime | None = None
    batch_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Finding:
    """One anomaly as found. `key` names it uniquely within its rule (ids of what it is about,
    sorted): the engine hashes rule code + key into the alarm's fingerprint. Evidence values are
    JSON-ready (Decimals as strings, times as ISO strings) and always include the threshold
    that was crossed."""

    key: str
    summary_zh: str
    summary_en: str
    evidence: dict[str, Any]
    sample_ids: tuple[int, ...] = ()
    batch_id: int | None = None
    parameter: str = ""
    site_id: int | None = None
    responsible_user_id: int | None = None  # whose data it is (the analyst, the enterer, the sampler)
    occurred_at: datetime | None = None  # when the anomalous act happened


Limits = dict[str, Decimal]


class AnomalyRule(ABC):
    """Subclass, set the class attributes, implement `find`, and decorate with `@register`."""

    code: ClassVar[str]  # A01
    title_zh: ClassVar[str]
    title_en: ClassVar[str]
    why_zh: ClassVar[str] = ""
    why_en: ClassVar[str] = ""
    thresholds: ClassVar[tuple[Threshold, ...]] = ()
    blocks_issue: ClassVar[bool] = True  # DOMAIN.md §7: an alarm must be disposed of before issue
    # run in the submitter's transaction when a batch is signed; False for rules that must read a
    # long history to judge one batch (they run in the scheduled and CLI scans)
    on_submission: ClassVar[bool] = True

    def defaults(self) -> Limits:
        return {t.name: t.default for t in self.thresholds}

    @abstractmethod
    def find(self, session: Session, window: ScanWindow, limits: Limits) -> Iterable[Finding]:
        """The findings inside `window` with the thresholds `limits`."""


_rules: dict[str, AnomalyRule] = {}


def register(cls: type[AnomalyRule]) -> type[AnomalyRule]:
    rule = cls()
    if rule.code in _rules and type(_rules[rule.code]) is not cls:
        raise ValueError(f"anomaly rule {rule.code} registered twice")
    _rules[rule.code] = rule
    return cls


def all_rules() -> list[AnomalyRule]:
    """Every rule, by code (importing app.oversight.rules registers them all)."""
    import app.oversight.rules  # noqa: F401

    return [_rules[code] for code in sorted(_rules)]


def rule_by_code(code: str) -> AnomalyRule | None:
    import app.oversight.rules  # noqa: F401

    return _rules.get(code)


@dataclass
class EvidenceValues:
    """Helper for evidence: Decimals and datetimes as strings, in a stable order."""

    items: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: Any) -> EvidenceValues:
        self.items[name] = jsonable(value)
        return self


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def chunked(ids: Iterable[int], size: int = 500) -> Iterator[list[int]]:
    """IN lists in slices (SQLite's variable limit; PostgreSQL plans short lists better)."""
    batch: list[int] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
