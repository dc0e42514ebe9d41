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
from typing import Protocol

from sqlalchemy.orm import Session


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
