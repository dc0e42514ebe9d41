"""Where instruments were used: the protocol later domains implement for impact assessments.

When a calibration or check fails, the quality manager must see everything measured with the
instrument since it was last shown fit. Field tests (samples) and analyses (analysis) record
which instrument they used and when; each registers a `UsageSource` here, and the impact
assessment asks every registered source. The instruments domain never imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.core.errors import InvalidInput


@dataclass(frozen=True)
class InstrumentUsage:
    """One measurement made with an instrument."""

    source: str  # the registering source's name, e.g. "field_test", "analysis"
    record_id: str
    measured_at: datetime
    parameter: str
    sample_no: str = ""
    description: str = ""
    url: str = ""

    def signed_content(self) -> dict[str, str | datetime]:
        """What a disposition signs of this usage (its identity and time)."""
        return {"source": self.source, "record_id": self.record_id, "measured_at": self.measured_at,
                "parameter": self.parameter, "sample_no": self.sample_no}


class UsageSource(Protocol):
    name: str

    def usages(
        self, session: Session, instrument_id: int, since: datetime | None, until: datetime
    ) -> Sequence[InstrumentUsage]:
        """Measurements with the instrument in [since, until] (since None: from the start).
        One query per source: the assessment lists thousands of measurements at once."""
        ...


_sources: dict[str, UsageSource] = {}


class CheckStandardUse(Protocol):
    def __call__(self, session: Session, actor: Any, barcode: str, at: datetime, check_id: int) -> str:
        """Check that the standard with `barcode` was usable at `at` (raising its domain error
        otherwise), record its use by the check, and return the barcode as stored."""
        ...


_check_standard: list[CheckStandardUse] = []


def register_check_standard_use(handler: CheckStandardUse) -> None:
    """The reference-materials domain plugs its gate in here; instruments never import it."""
    _check_standard[:] = [handler]


def use_check_standard(session: Session, actor: Any, barcode: str, at: datetime, check_id: int) -> str:
    if not _check_standard:
        raise InvalidInput(detail="reference materials are not available to check the standard's barcode")
    return _check_standard[0](session, actor, barcode, at, check_id)


def register_usage_source(source: UsageSource) -> None:
    _sources[source.name] = source


def unregister_usage_source(name: str) -> None:
    _sources.pop(name, None)


def usages_between(
    session: Session, instrument_id: int, since: datetime | None, until: datetime
) -> list[InstrumentUsage]:
    found: list[InstrumentUsage] = []
    for source in _sources.values():
        found.extend(source.usages(session, instrument_id, since, until))
    return sorted(found, key=lambda u: (u.measured_at, u.source, u.record_id))
