"""Holding-time clocks (保存期/时效): for every sample × parameter, from the sampling time to the
deadline the preservation table gives (DOMAIN.md §4.1; the method standard prevails where its
row exists). Clocks run in absolute time (UTC): "24 h" is 24 hours of elapsed time whatever the
lab's clock did meanwhile (daylight saving, time zones); they are shown in lab time.

A clock is amber from 75 % of the allowed time and red after the deadline. Field tests are
measured on site and have no clock; a rule without a holding time ("as soon as possible", the
method sets it) gives a clock without a deadline. Preparing or analysing a parameter after its
deadline needs a `HoldingDeviation` recorded by the quality manager; it travels with the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.errors import DomainError
from app.samples.lab_models import HoldingClock, HoldingDeviation
from app.samples.models import PreservationRule, Sample, SampleParameter

AMBER_FRACTION = 0.75  # issue 7: amber at 75 % of the allowed time
ACTS = ("preparation", "analysis")


class HoldingTimeExceeded(DomainError):
    code = "holding_time_exceeded"
    http_status = 409
    message_zh = ("样品 {sample_no} 的 {parameters} 已超过保存期（截止 {deadlines}）：{act_zh}前需由质量负责人"
                  "记录偏离及理由。")
    message_en = ("Sample {sample_no} is past its holding time for {parameters} (deadline {deadlines}): the "
                  "quality manager must record a deviation with its reason before {act_en}.")


class ClockColour(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"  # past the deadline
    NONE = "none"  # no deadline known (as soon as possible)
    STOPPED = "stopped"


@dataclass(frozen=True)
class ClockReading:
    """A clock read at a moment: what the worklist and the sample page show."""

    started_at: datetime
    deadline_at: datetime | None
    at: datetime
    allowed: timedelta | None
    elapsed: timedelta
    remaining: timedelta | None
    fraction: float | None  # elapsed / allowed
    colour: ClockColour


def deadline(started_at: datetime, allowed_hours: int | None) -> datetime | None:
    """The instant the holding time ends: start + allowed hours of elapsed time (aware UTC)."""
    if allowed_hours is None:
        return None
    return started_at + timedelta(hours=allowed_hours)


def amber_from(started_at: datetime, allowed_hours: int | None) -> datetime | None:
    if allowed_hours is None:
        return None
    return started_at + timedelta(hours=allowed_hours) * AMBER_FRACTION


def read_clock(started_at: datetime, allowed_hours: int | None, at: datetime, *,
               stopped_at: datetime | None = None) -> ClockReading:
    """The clock's state at `at` (or at the moment it stopped, if earlier). Pure."""
    until = min(at, stopped_at) if stopped_at is not None else at
    elapsed = until - started_at
    end = deadline(started_at, allowed_hours)
    if end is None:
        colour = ClockColour.STOPPED if stopped_at is not None and stopped_at <= at else ClockColour.NONE
        return ClockReading(started_at, None, until, None, elapsed, None, None, colour)
    allowed = end - started_at
    fraction = elapsed / allowed if allowed else 1.0
    if until > end:
        colour = ClockColour.RED
    elif until >= amber_from(started_at, allowed_hours):
        colour = ClockColour.AMBER
    else:
        colour = ClockColour.GREEN
    if stopped_at is not None and stopped_at <= at and colour != ClockColour.RED:
        colour = ClockColour.STOPPED
    return ClockReading(started_at, end, until, allowed, elapsed, end - until, fraction, colour)


def rules_by_parameter(session: Session, parameters: Iterable[str]) -> dict[str, PreservationRule]:
    """The default rule (method "") of each parameter that has one; field tests excluded."""
    wanted = {p for p in parameters}
    if not wanted:
        return {}
    rules = session.scalars(select(PreservationRule).where(
        PreservationRule.parameter.in_(wanted), PreservationRule.method == "",
        PreservationRule.field_test.is_(False)))
    return {rule.parameter: rule for rule in rules}


def start_clocks(session: Session, samples: Sequence[Sample]) -> list[HoldingClock]:
    """Make (or, while nothing has stopped them, re-time) the clocks of collected samples: one per
    requested parameter with a laboratory rule. Idempotent; a revised sampling time moves the
    start and the deadline of the open clocks. Derived data: the audit trail has the sampling act."""
    collected = [s for s in samples if s.collected_at is not None]
    if not collected:
        return []
    ids = [s.id for s in collected]
    parameters = session.execute(
        select(SampleParameter.sample_id, SampleParameter.parameter).where(SampleParameter.sample_id.in_(ids))
    ).all()
    rules = rules_by_parameter(session, {p for _, p in parameters})
    existing = {(c.sample_id, c.parameter): c for c in session.scalars(
        select(HoldingClock).where(HoldingClock.sample_id.in_(ids)))}
    started = {s.id: s.collected_at for s in collected}
    clocks = []
    for sample_id, parameter in parameters:
        rule = rules.get(parameter)
        if rule is None:
            continue
        clock = existing.get((sample_id, parameter))
        start = started[sample_id]
        if clock is None:
            clock = HoldingClock(sample_id=sample_id, parameter=parameter, rule_id=rule.id, started_at=start,
                                 allowed_hours=rule.holding_hours, deadline_at=deadline(start, rule.holding_hours))
            session.add(clock)
        elif clock.open and clock.started_at != start:
            clock.started_at, clock.deadline_at = start, deadline(start, clock.allowed_hours)
        clocks.append(clock)
    session.flush()
    return clocks


def stop_clocks(session: Session, sample: Sample, reason: str, at: datetime,
                parameters: Iterable[str] | None = None) -> None:
    """Stop the open clocks of a sample (rejected, cancelled, disposed) or of some of its
    parameters (analysed). Derived data; the act that stops them is audited by its caller."""
    query = update(HoldingClock).where(HoldingClock.sample_id == sample.id, HoldingClock.open.is_(True))
    if parameters is not None:
        query = query.where(HoldingClock.parameter.in_(list(parameters)))
    session.execute(query.values(open=False, stopped_at=at, stopped_by=reason))


def clocks_for(session: Session, sample_ids: Iterable[int]) -> dict[int, list[HoldingClock]]:
    """The clocks of these samples, by sample, in deadline order (one query)."""
    ids = list(set(sample_ids))
    result: dict[int, list[HoldingClock]] = {i: [] for i in ids}
    if not ids:
        return result
    for clock in session.scalars(select(HoldingClock).where(HoldingClock.sample_id.in_(ids))
                                 .order_by(HoldingClock.deadline_at, HoldingClock.parameter)):
        result[clock.sample_id].append(clock)
    return result


def deviations_for(session: Session, sample_id: int, parameters: Iterable[str],
                   act: str) -> dict[str, HoldingDeviation]:
    """The latest deviation recorded for each of these parameters of a sample and this act."""
    found: dict[str, HoldingDeviation] = {}
    for deviation in session.scalars(
        select(HoldingDeviation).where(HoldingDeviation.sample_id == sample_id,
                                       HoldingDeviation.parameter.in_(list(parameters)),
                                       HoldingDeviation.act == act).order_by(HoldingDeviation.id)
    ):
        found[deviation.parameter] = deviation
    return found


def assert_within_holding_time(session: Session, sample: Sample, parameters: Iterable[str], at: datetime,
                               act: str) -> list[HoldingDeviation]:
    """The gate for preparing or analysing `parameters` of `sample` at `at` (the time of the act):
    refused past a deadline unless a deviation for that parameter and act was recorded. Returns
    the deviations that allow it, to be linked to what is recorded."""
    from app.samples.lab_input import local_text

    wanted = list(dict.fromkeys(parameters))
    late = [c for c in session.scalars(select(HoldingClock).where(
        HoldingClock.sample_id == sample.id, HoldingClock.parameter.in_(wanted)).order_by(HoldingClock.parameter))
        if c.deadline_at is not None and at > c.deadline_at]
    if not late:
        return []
    excused = deviations_for(session, sample.id, [c.parameter for c in late], act)
    missing = [c for c in late if c.parameter not in excused]
    if missing:
        act_zh, act_en = {"preparation": ("制备", "preparing"), "analysis": ("分析", "analysing")}[act]
        raise HoldingTimeExceeded(
            sample_no=sample.sample_no, parameters=", ".join(c.parameter for c in missing),
            deadlines=", ".join(local_text(session, c.deadline_at) for c in missing), act_zh=act_zh, act_en=act_en)
    return list(excused.values())


def clock_section(session: Session, sample: Sample) -> Any:
    """What the sample's page shows of this part (None: nothing to show)."""
    return None
