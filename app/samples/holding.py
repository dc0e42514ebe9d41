"""Holding-time clocks (保存期/时效): for every sample × parameter, from the sampling time to the
deadline the preservation table gives (DOMAIN.md §4.1; the method standard prevails where its
row exists). Clocks run in absolute time (UTC): "24 h" is 24 hours of elapsed time whatever the
lab's clock did meanwhile (daylight saving, time zones); they are shown in lab time.

A clock is amber from 75 % of the allowed time and red after the deadline. Field tests are
measured on site and have no clock; a rule without a holding time ("as soon as possible", the
method sets it) gives a clock without a deadline. Clocks belong to the sample, so its aliquots
and sub-samples (containers with a parent) run on the same clock as the container they came from.

Preparing or analysing a parameter after its deadline needs a `HoldingDeviation` recorded by the
quality manager (`record_holding_deviation`); it travels with the result. A deviation is recorded
once the deadline has passed, when the late act is needed — not in advance for a clock still
running (the gate does not stop that act, and a planned lateness is no deviation yet).

The worklist (`worklist`) reads open clocks of samples not yet analysed in deadline order on the
index (open, deadline_at, id), one page in at most three queries whatever the number of clocks:
clocks without a deadline ("as soon as possible") first, then by time left, keyset-paged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, bindparam, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from app.core import audit
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.i18n import gettext
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import holding_errors as errors
from app.samples.lab_models import HoldingClock, HoldingDeviation
from app.samples.models import PreservationRule, Sample, SampleParameter, SampleState

AMBER_FRACTION = 0.75  # issue 7: amber at 75 % of the allowed time
ACTS = ("preparation", "analysis")
ACT_NAMES = {"preparation": ("制备", "preparation"), "analysis": ("分析", "analysis")}
# a sample in one of these states is prepared or analysed no more: its clocks are not on the worklist
CLOSED_STATES = (SampleState.REJECTED.value, SampleState.DISPOSED.value, SampleState.CANCELLED.value)
# the states in which a sample has open clocks (the worklist's state filter)
CLOCK_STATES = (SampleState.COLLECTED.value, SampleState.IN_TRANSIT.value, SampleState.RECEIVED.value,
                SampleState.CONDITIONALLY_RECEIVED.value, SampleState.IN_STORAGE.value,
                SampleState.IN_PREPARATION.value, SampleState.PREPARED.value, SampleState.IN_ANALYSIS.value)
REASON_LIMIT = 500
MAX_PARAMETERS = 60


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


COLOURS = (ClockColour.RED.value, ClockColour.AMBER.value, ClockColour.GREEN.value, ClockColour.NONE.value)


@dataclass(frozen=True)
class ClockReading:
    """A clock read at a moment: what the worklist and the sample page show. Instants in UTC."""

    started_at: datetime
    deadline_at: datetime | None
    at: datetime
    allowed: timedelta | None
    elapsed: timedelta
    remaining: timedelta | None  # negative past the deadline
    fraction: float | None  # elapsed / allowed
    colour: ClockColour

    @property
    def time_left(self) -> str:
        return time_left_text(self)


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC: arithmetic on a zone-aware datetime of one zone is wall-clock
    arithmetic in Python (24 h after 01:30 on a DST day is 01:30 the next day, 23 or 25 hours
    later), so every clock computes in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a holding-time clock needs aware datetimes")
    return moment.astimezone(UTC)


def deadline(started_at: datetime, allowed_hours: int | None) -> datetime | None:
    """The instant the holding time ends: start + allowed hours of elapsed time (aware UTC)."""
    if allowed_hours is None:
        return None
    return _utc(started_at) + timedelta(hours=allowed_hours)


def amber_from(started_at: datetime, allowed_hours: int | None) -> datetime | None:
    """The instant the clock turns amber: 75 % of the allowed time elapsed."""
    if allowed_hours is None:
        return None
    return _utc(started_at) + timedelta(hours=allowed_hours) * AMBER_FRACTION


def read_clock(started_at: datetime, allowed_hours: int | None, at: datetime, *,
               stopped_at: datetime | None = None) -> ClockReading:
    """The clock's state at `at` (or at the moment it stopped, if earlier). Pure."""
    start, at = _utc(started_at), _utc(at)
    stopped = _utc(stopped_at) if stopped_at is not None else None
    until = min(at, stopped) if stopped is not None else at
    elapsed = until - start
    end = deadline(start, allowed_hours)
    if end is None:
        colour = ClockColour.STOPPED if stopped is not None and stopped <= at else ClockColour.NONE
        return ClockReading(start, None, until, None, elapsed, None, None, colour)
    allowed = end - start
    fraction = elapsed / allowed if allowed else 1.0
    if until > end:
        colour = ClockColour.RED
    elif until >= amber_from(start, allowed_hours):  # type: ignore[operator]
        colour = ClockColour.AMBER
    else:
        colour = ClockColour.GREEN
    if stopped is not None and stopped <= at and colour != ClockColour.RED:
        colour = ClockColour.STOPPED
    return ClockReading(start, end, until, allowed, elapsed, end - until, fraction, colour)


def read(clock: HoldingClock, at: datetime) -> ClockReading:
    return read_clock(clock.started_at, clock.allowed_hours, at, stopped_at=clock.stopped_at)


def duration_text(span: timedelta) -> str:
    """A duration in days, hours and minutes, in the reader's language ("1 d 3 h", "3 h 20 min")."""
    minutes = int(abs(span).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return gettext("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return gettext("%(h)d h %(m)d min") % {"h": hours, "m": mins}
    return gettext("%(m)d min") % {"m": mins}


def lab_time_text(moment: datetime, tz: tzinfo) -> str:
    """An instant in lab time to the minute; with its UTC offset when the wall time alone is
    ambiguous (the hour repeated when daylight saving ends), so it reads back as one instant."""
    local = _utc(moment).astimezone(tz)
    shown = local.strftime("%Y-%m-%d %H:%M")
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.strftime("%z")
        shown += f" UTC{offset[:3]}:{offset[3:]}"
    return shown


def parse_lab_time(text: str, tz: tzinfo) -> datetime:
    """The instant `lab_time_text` shows (aware UTC); a wall time without an offset is lab time."""
    value = text.strip()
    if " UTC" in value:
        local, offset = value.split(" UTC", 1)
        moment = datetime.strptime(f"{local} {offset.replace(':', '')}", "%Y-%m-%d %H:%M %z")
    else:
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    return moment.astimezone(UTC)


def time_left_text(reading: ClockReading) -> str:
    if reading.remaining is None:
        return gettext("as soon as possible")
    if reading.remaining < timedelta(0):
        return gettext("%(span)s overdue") % {"span": duration_text(reading.remaining)}
    return gettext("%(span)s left") % {"span": duration_text(reading.remaining)}


# ---------------------------------------------------------------- starting and stopping


def rules_by_parameter(session: Session, parameters: Iterable[str],
                       methods: Mapping[str, str] | None = None) -> dict[str, PreservationRule]:
    """The rule of each parameter that has one, field tests excluded: the method's own row when
    the method is known (`methods`: parameter → method code with its year) and has a row, else
    the default row (method "")."""
    wanted = set(parameters)
    if not wanted:
        return {}
    chosen = {p: m for p, m in (methods or {}).items() if p in wanted and m}
    rules = session.scalars(select(PreservationRule).where(
        PreservationRule.parameter.in_(wanted), PreservationRule.method.in_({"", *chosen.values()}),
        PreservationRule.field_test.is_(False)))
    found: dict[str, PreservationRule] = {}
    for rule in rules:
        if rule.method and chosen.get(rule.parameter) != rule.method:
            continue  # another parameter's method
        if rule.method or rule.parameter not in found:
            found[rule.parameter] = rule
    return found


def start_clocks(session: Session, samples: Sequence[Sample], *,
                 methods: Mapping[str, str] | None = None) -> list[HoldingClock]:
    """Make (or, while nothing has stopped them, re-time) the clocks of collected samples: one per
    requested parameter with a laboratory rule. Idempotent; a revised sampling time moves the
    start and the deadline of the open clocks, and a method made known (`methods`) whose row
    differs re-times them by its holding time. Derived data: the audit trail has the sampling act."""
    collected = [s for s in samples if s.collected_at is not None]
    if not collected:
        return []
    ids = [s.id for s in collected]
    parameters = session.execute(
        select(SampleParameter.sample_id, SampleParameter.parameter).where(SampleParameter.sample_id.in_(ids))
        .order_by(SampleParameter.sample_id, SampleParameter.parameter)
    ).all()
    rules = rules_by_parameter(session, {p for _, p in parameters}, methods)
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
        elif clock.open and (clock.started_at != start or clock.rule_id != rule.id):
            clock.rule_id, clock.allowed_hours = rule.id, rule.holding_hours
            clock.started_at, clock.deadline_at = start, deadline(start, rule.holding_hours)
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


# ---------------------------------------------------------------- the gate and deviations


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


def _clean_parameters(parameters: Iterable[str]) -> list[str]:
    cleaned = list(dict.fromkeys(p.strip() for p in parameters if isinstance(p, str) and p.strip()))
    if not cleaned:
        raise errors.DeviationParametersRequired()
    if len(cleaned) > MAX_PARAMETERS or any(len(p) > 60 for p in cleaned):
        raise errors.DeviationParametersRequired()
    return cleaned


def record_holding_deviation(session: Session, actor: User, sample: Sample, parameters: Iterable[str], act: str,
                             reason: str, *, at: datetime | None = None) -> list[HoldingDeviation]:
    """The quality manager allows `act` ("preparation" or "analysis") of these parameters of a
    sample after their holding time, with the reason (append-only, audited). Only for clocks
    already past their deadline at `at` (now): the deviation is recorded when the late act is
    needed. One deviation per parameter; the gate then lets the act through and returns them."""
    from app.samples.lab_input import local_text, text

    at = at or utcnow()
    ensure(session, actor, Permission.HOLDING_DEVIATION, at)
    if sample.state in CLOSED_STATES:
        from app.samples.names import STATE_NAMES

        raise errors.DeviationSampleClosed(sample_no=sample.sample_no, state=str(STATE_NAMES.get(sample.state,
                                                                                                  sample.state)))
    if act not in ACTS:
        raise errors.DeviationActUnknown(act=str(act)[:20])
    cleaned_reason = text(reason, "偏离理由", "The reason", REASON_LIMIT, required=True)
    wanted = _clean_parameters(parameters)
    clocks = {c.parameter: c for c in session.scalars(select(HoldingClock).where(
        HoldingClock.sample_id == sample.id, HoldingClock.parameter.in_(wanted)))}
    act_zh, act_en = ACT_NAMES[act]
    if unknown := [p for p in wanted if p not in clocks]:
        raise errors.DeviationNoClock(sample_no=sample.sample_no, parameters=", ".join(unknown))
    if endless := [p for p in wanted if clocks[p].deadline_at is None]:
        raise errors.DeviationNoDeadline(sample_no=sample.sample_no, parameters=", ".join(endless))
    if running := [p for p in wanted if at <= clocks[p].deadline_at]:  # type: ignore[operator]
        raise errors.DeviationNotDue(sample_no=sample.sample_no, parameters=", ".join(running),
                                     deadlines=", ".join(local_text(session, clocks[p].deadline_at)  # type: ignore
                                                         for p in running), act_zh=act_zh, act_en=act_en)
    recorded = deviations_for(session, sample.id, wanted, act)
    if again := [p for p in wanted if p in recorded and recorded[p].deadline_at == clocks[p].deadline_at]:
        raise errors.DeviationExists(sample_no=sample.sample_no, parameters=", ".join(again), act_zh=act_zh,
                                     act_en=act_en)
    made = []
    for parameter in wanted:
        deviation = HoldingDeviation(sample_id=sample.id, parameter=parameter, act=act, reason=cleaned_reason,
                                     deadline_at=clocks[parameter].deadline_at, recorded_at=at,
                                     recorded_by_id=actor.id)
        session.add(deviation)
        made.append(deviation)
    session.flush()
    for deviation in made:
        audit.append(session, actor, "holding.deviation_recorded", "holding_deviation", deviation.id, None,
                     {"sample_id": sample.id, "sample_no": sample.sample_no, "parameter": deviation.parameter,
                      "act": act, "reason": cleaned_reason, "deadline_at": deviation.deadline_at}, at=at)
    return made


@dataclass(frozen=True)
class DeviationView:
    deviation: HoldingDeviation
    recorded_by_zh: str
    recorded_by_en: str

    @property
    def act_name(self) -> tuple[str, str]:
        return ACT_NAMES.get(self.deviation.act, (self.deviation.act, self.deviation.act))


def deviations_of_samples(session: Session, sample_ids: Iterable[int]) -> dict[int, list[DeviationView]]:
    """Every holding-time deviation of these samples with who recorded it, by sample (one query)."""
    ids = list(set(sample_ids))
    result: dict[int, list[DeviationView]] = {i: [] for i in ids}
    if not ids:
        return result
    rows = session.execute(
        select(HoldingDeviation, User.display_name_zh, User.display_name_en)
        .join(User, User.id == HoldingDeviation.recorded_by_id)
        .where(HoldingDeviation.sample_id.in_(ids))
        .order_by(HoldingDeviation.sample_id, HoldingDeviation.parameter, HoldingDeviation.id))
    for deviation, name_zh, name_en in rows:
        result[deviation.sample_id].append(DeviationView(deviation, name_zh, name_en or ""))
    return result


def deviations_of_sample(session: Session, sample_id: int) -> list[DeviationView]:
    """The sample's holding-time deviations (for its page, review and the report)."""
    return deviations_of_samples(session, [sample_id])[sample_id]


# ---------------------------------------------------------------- the worklist


@dataclass(frozen=True)
class WorklistFilters:
    colour: str = ""  # red, amber, green, none ("" any); "due" = amber or red (the dashboards)
    parameter: str = ""
    matrix: str = ""
    state: str = ""

    def as_params(self) -> dict[str, str]:
        return {"colour": self.colour, "parameter": self.parameter, "matrix": self.matrix, "state": self.state}


@dataclass(frozen=True)
class WorklistRow:
    clock_id: int
    sample_no: str
    kind: str
    state: str
    matrix: str
    parameter: str
    reading: ClockReading


@dataclass
class WorklistPage:
    rows: list[WorklistRow]
    next_cursor: str | None
    at: datetime
    first: bool = True
    filters: WorklistFilters = field(default_factory=WorklistFilters)


def rule_hours(session: Session) -> list[int]:
    """The holding times the preservation table knows (a handful): clocks copy their rule's."""
    return sorted(h for h in session.scalars(
        select(PreservationRule.holding_hours).where(PreservationRule.holding_hours.is_not(None)).distinct()))


_CLOCK = HoldingClock.__table__.c  # type: ignore[attr-defined]
_SAMPLE = Sample.__table__.c  # type: ignore[attr-defined]
_STATEMENTS: dict[tuple[Any, ...], Any] = {}  # built once per shape, bound per call: a page is two round trips


def _due_by(hours: Iterable[int]) -> ColumnElement[bool]:
    """Amber or red at :at: the deadline is within a quarter of the clock's allowed time. One
    range on the deadline per holding time of the table (bound as :due_<h> = at + h/4), so the
    index still serves it."""
    terms = [and_(_CLOCK.allowed_hours == h, _CLOCK.deadline_at <= bindparam(f"due_{h}")) for h in hours]
    return or_(*terms) if terms else false()


def _colour_condition(colour: str, hours: tuple[int, ...]) -> ColumnElement[bool] | None:
    at = bindparam("at")
    if colour == ClockColour.RED.value:
        return _CLOCK.deadline_at < at
    if colour == ClockColour.AMBER.value:
        return and_(_CLOCK.deadline_at >= at, _due_by(hours))
    if colour == ClockColour.GREEN.value:
        return and_(_CLOCK.deadline_at >= at, ~_due_by(hours))
    if colour == "due":
        return or_(_CLOCK.deadline_at < at, _due_by(hours))
    return None


def _statement(group: str, filters: WorklistFilters, hours: tuple[int, ...], after: bool) -> Any:
    """The SELECT of one group ("n": without deadline, by id; "d": by deadline, id) for these
    filters, with bind parameters; cached by its shape."""
    key = (group, bool(filters.parameter), bool(filters.matrix), bool(filters.state), filters.colour, hours, after)
    found = _STATEMENTS.get(key)
    if found is not None:
        return found
    query = (select(_CLOCK.id, _CLOCK.parameter, _CLOCK.started_at, _CLOCK.allowed_hours, _CLOCK.deadline_at,
                    _SAMPLE.sample_no, _SAMPLE.kind, _SAMPLE.state, _SAMPLE.matrix)
             .join_from(HoldingClock.__table__, Sample.__table__, _SAMPLE.id == _CLOCK.sample_id)  # type: ignore
             .where(_CLOCK.open == true(), _SAMPLE.state.not_in(CLOSED_STATES)))
    if filters.parameter:
        query = query.where(_CLOCK.parameter == bindparam("parameter"))
    if filters.matrix:
        query = query.where(_SAMPLE.matrix == bindparam("matrix"))
    if filters.state:
        query = query.where(_SAMPLE.state == bindparam("state"))
    if group == "n":
        query = query.where(_CLOCK.deadline_at.is_(None))
        if after:
            query = query.where(_CLOCK.id > bindparam("after_id"))
        query = query.order_by(_CLOCK.id)
    else:
        query = query.where(_CLOCK.deadline_at.is_not(None))
        condition = _colour_condition(filters.colour, hours)
        if condition is not None:
            query = query.where(condition)
        if after:
            query = query.where(or_(_CLOCK.deadline_at > bindparam("after_at"),
                                    and_(_CLOCK.deadline_at == bindparam("after_at"),
                                         _CLOCK.id > bindparam("after_id"))))
        query = query.order_by(_CLOCK.deadline_at, _CLOCK.id)
    query = query.limit(bindparam("limit", type_=Integer, literal_execute=True))
    _STATEMENTS[key] = query
    return query


def _parameters(filters: WorklistFilters, at: datetime, hours: tuple[int, ...], limit: int,
                position: tuple[str, datetime | None, int] | None) -> dict[str, Any]:
    values: dict[str, Any] = {"at": at, "limit": limit, "parameter": filters.parameter, "matrix": filters.matrix,
                              "state": filters.state}
    values.update({f"due_{h}": at + timedelta(hours=h) / 4 for h in hours})
    if position is not None:
        values.update({"after_at": position[1], "after_id": position[2]})
    return values


def _cursor_of(row: Any) -> str:
    if row.deadline_at is None:
        return f"n.{row.id}"
    moment = _utc(row.deadline_at)
    return f"d.{moment.strftime('%Y%m%dT%H%M%S.%f')}.{row.id}"


def parse_cursor(cursor: str) -> tuple[str, datetime | None, int] | None:
    """("n", None, id) in the as-soon-as-possible group, ("d", deadline, id) after it; anything
    else is the first page (a list never refuses its address)."""
    parts = (cursor or "").split(".")
    try:
        if len(parts) == 2 and parts[0] == "n":
            return "n", None, int(parts[1])
        if len(parts) == 4 and parts[0] == "d":
            moment = datetime.strptime(f"{parts[1]}.{parts[2]}", "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
            return "d", moment, int(parts[3])
    except (ValueError, OverflowError):
        return None
    return None


def _reading_of(row: Any, at: datetime) -> ClockReading:
    """`read_clock` of a worklist row (open clocks: nothing stopped), without re-checking zones."""
    start, end = row.started_at, row.deadline_at
    elapsed = at - start
    if end is None:
        return ClockReading(start, None, at, None, elapsed, None, None, ClockColour.NONE)
    allowed = end - start
    if at > end:
        colour = ClockColour.RED
    elif at >= start + allowed * AMBER_FRACTION:
        colour = ClockColour.AMBER
    else:
        colour = ClockColour.GREEN
    return ClockReading(start, end, at, allowed, elapsed, end - at, elapsed / allowed if allowed else 1.0, colour)


def worklist(session: Session, filters: WorklistFilters, *, at: datetime | None = None, size: int = 50,
             cursor: str = "") -> WorklistPage:
    """One page of open clocks of samples not yet analysed: those without a deadline first, then
    by deadline (time left, ascending; expired first), each read at `at`. A fixed number of
    queries (the holding times of the table when filtering by amber, green or due; the
    as-soon-as-possible group unless filtered out; the deadline group unless filtered out), each
    an index range in (open, deadline_at, id) order."""
    at = _utc(at or utcnow())
    position = parse_cursor(cursor)
    hours = tuple(rule_hours(session)) if filters.colour in (ClockColour.AMBER.value, ClockColour.GREEN.value,
                                                             "due") else ()
    connection = session.connection()
    rows: list[Any] = []
    if filters.colour in ("", ClockColour.NONE.value) and (position is None or position[0] == "n"):
        statement = _statement("n", filters, (), position is not None)
        rows += connection.execute(statement, _parameters(filters, at, (), size + 1, position)).all()
    if filters.colour != ClockColour.NONE.value:  # even when the first group filled the page: fixed cost
        after = position if position is not None and position[0] == "d" else None
        statement = _statement("d", filters, hours, after is not None)
        rows += connection.execute(statement, _parameters(filters, at, hours, max(1, size + 1 - len(rows)),
                                                          after)).all()
    more = len(rows) > size
    rows = rows[:size]
    shown = [WorklistRow(r.id, r.sample_no, r.kind, r.state, r.matrix, r.parameter, _reading_of(r, at))
             for r in rows]
    return WorklistPage(shown, _cursor_of(rows[-1]) if more and rows else None, at, position is None, filters)


def count_running_out(session: Session, at: datetime | None = None) -> int:
    """Open clocks of samples not yet analysed that are amber or red at `at` (the dashboards)."""
    at = _utc(at or utcnow())
    hours = tuple(rule_hours(session))
    query = (select(func.count()).select_from(HoldingClock).join(Sample, Sample.id == HoldingClock.sample_id)
             .where(HoldingClock.open == true(), Sample.state.not_in(CLOSED_STATES),
                    HoldingClock.deadline_at.is_not(None),
                    _colour_condition("due", hours)))  # type: ignore[arg-type]
    return session.scalar(query, _parameters(WorklistFilters(), at, hours, 0, None)) or 0


def worklist_parameters(session: Session) -> list[str]:
    """The parameters a clock can have (laboratory rows of the preservation table), for the filter."""
    return sorted(set(session.scalars(select(PreservationRule.parameter)
                                      .where(PreservationRule.field_test.is_(False)))))


# ---------------------------------------------------------------- the sample page


@dataclass(frozen=True)
class ClockRow:
    clock: HoldingClock
    reading: ClockReading
    deviations: list[DeviationView]


@dataclass(frozen=True)
class ClockSection:
    sample_no: str
    rows: list[ClockRow]
    deviations: list[DeviationView]
    at: datetime
    closed: bool  # rejected, disposed or cancelled: no deviation can be recorded

    @property
    def late(self) -> list[str]:
        """Parameters past their deadline and still open (a deviation may be recorded)."""
        return [r.clock.parameter for r in self.rows if r.reading.colour == ClockColour.RED]


def clock_section(session: Session, sample: Sample) -> Any:
    """The sample's clocks with colour and time left, and its deviations (two queries); None when
    it has neither (not yet collected, or only field tests)."""
    clocks = clocks_for(session, [sample.id])[sample.id]
    deviations = deviations_of_sample(session, sample.id) if clocks else []
    if not clocks and not deviations:
        return None
    at = utcnow()
    by_parameter: dict[str, list[DeviationView]] = {}
    for view in deviations:
        by_parameter.setdefault(view.deviation.parameter, []).append(view)
    rows = [ClockRow(c, read(c, at), by_parameter.get(c.parameter, [])) for c in clocks]
    return ClockSection(sample.sample_no, rows, deviations, at, sample.state in CLOSED_STATES)
