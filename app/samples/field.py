"""The sampler's field record: entries made on the phone, the record they fold into, the
`sampled` signature, and the day's tasks.

Each act in the field is a `FieldEntry`, append-only and keyed by the id the phone generated, so
a double tap or a queued resend is recorded once (a repeat returns the first entry; the same id
with other content is a client bug and is refused). The record is the fold of the entries: the
latest sampling time and GPS fix, the observations, the latest reading per field test, the
containers scanned. Signing binds the fold and the photos up to the last entry; anything after
a signature is the next revision and needs a reason, so the record shows the original and every
change (DOMAIN.md §3; DESIGN.md rules 4, 6, 7).

Decisions worth knowing:
- A sampling time more than five minutes ahead of the server is refused (phone clocks drift a
  little; a sample is never taken in the future). One earlier than the lab-local day before the
  sample's registration (or its scheduled day, if earlier) is refused as a typo: containers are
  registered before sampling, and one day of slack covers a round that began before midnight
  and client samples registered the morning after.
- Field-test readings are stored in the unit of the preservation table's rule; a convertible
  unit (mS/cm for µS/cm, µg/L for mg/L, ℃ for °C) is accepted and converted exactly, the value
  and unit as entered kept in the payload; anything else is refused with the unit expected.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, literal, or_, select, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from app.config import settings_of
from app.core import audit
from app.core.canonical import canonical_json, content_hash
from app.core.db import utcnow
from app.core.errors import DomainError, InvalidInput
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.core.units import IncompatibleUnits, UnknownUnit, convert
from app.instruments.models import Instrument
from app.people.models import User
from app.samples import field_errors as errors
from app.samples import usage as _usage  # noqa: F401  (registers the field-test usage source)
from app.samples.errors import SampleNotFound
from app.samples.holding import start_clocks
from app.samples.models import (
    FIELD_QC_KINDS,
    Container,
    ContainerKind,
    ContainerState,
    FieldEntry,
    FieldEntryKind,
    GpsStatus,
    PreservationRule,
    Sample,
    SampleParameter,
    SamplePhoto,
    SampleState,
)
from app.samples.registration import container_by_barcode
from app.sites.geo import distance_m, valid_position
from app.sites.models import SamplingTask, Site, SiteVersion, TaskStatus
from app.sites.service import assert_site_usable, version_at

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
FUTURE_TOLERANCE = timedelta(minutes=5)
WEATHER_CODES = ("sunny", "cloudy", "overcast", "rain", "snow", "fog", "windy")
AIR_TEMPERATURE_RANGE = (Decimal(-50), Decimal(60))
MAX_OBSERVATIONS = 2000
MAX_WEATHER = 100
MAX_JUSTIFICATION = 500
MAX_REASON = 500
MAX_ACCURACY_M = Decimal(100_000)
SIGNED_ENTITY = "sample"  # the `sampled` signature is the sample's (with its id)
# a photo this far from the sampling time or the fix is flagged on the record (not refused)
PHOTO_TIME_FLAG_S = 3600

# Physical plausibility of a field reading, in the rule's unit: a reading outside is a typo or a
# broken probe, never a result. One table, used by the service and shown on the phone.
FIELD_TEST_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "pH": (Decimal(0), Decimal(14)),
    "WT": (Decimal(-5), Decimal(50)),  # water temperature, °C
    "DO": (Decimal(0), Decimal(25)),  # mg/L
    "EC": (Decimal(0), Decimal(200_000)),  # µS/cm
    "Turbidity": (Decimal(0), Decimal(4000)),  # NTU
}

# Units a phone may send for a rule's unit, with the exact factor into it (mass concentrations
# such as mg/L go through app.core.units instead). Keys are spelled as `_unit_key` folds them.
UNIT_FACTORS: dict[str, dict[str, Decimal]] = {
    "°c": {"°c": Decimal(1), "℃": Decimal(1), "c": Decimal(1), "degc": Decimal(1), "摄氏度": Decimal(1)},
    "ph": {"ph": Decimal(1), "": Decimal(1)},
    "μs/cm": {"μs/cm": Decimal(1), "ms/cm": Decimal(1000), "ms/m": Decimal(10), "s/m": Decimal(10_000),
              "μs/m": Decimal("0.01")},
    "ntu": {"ntu": Decimal(1)},
}


def _unit_key(unit: str) -> str:
    text = (unit or "").strip().replace(" ", "").replace("µ", "μ").casefold()
    return "μ" + text[1:] if text.startswith("u") and "/" in text else text


# ---------------------------------------------------------------- input and outcome


@dataclass
class FieldEntryInput:
    """One act as the phone sends it. Numbers arrive as Decimal (or their text), never floats.

    A sampling entry's `act_at` is the sampling time: a later sampling entry (a new fix, or only a
    justification) carries the sampling time again, and the latest one stands."""

    client_id: str
    sample_no: str
    kind: FieldEntryKind | str
    act_at: datetime
    reason: str = ""
    gps_status: GpsStatus | str | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    accuracy_m: Decimal | None = None
    justification: str = ""
    weather: str = ""
    air_temperature: Decimal | None = None
    observations: str = ""
    parameter: str = ""
    value: str = ""
    unit: str = ""
    instrument: str = ""
    barcode: str = ""
    task_code: str = ""


@dataclass(frozen=True)
class FieldNotice:
    """Something the sampler should know about an accepted (or harmlessly repeated) entry."""

    code: str
    message_zh: str
    message_en: str

    def message(self, language: str) -> str:
        return self.message_zh if language.startswith("zh") else self.message_en


@dataclass(frozen=True)
class FieldEntryOutcome:
    entry: FieldEntry
    created: bool
    notice: FieldNotice | None = None


# ---------------------------------------------------------------- small helpers


def clean_client_id(client_id: str) -> str:
    text = (client_id or "").strip() if isinstance(client_id, str) else ""
    if not CLIENT_ID_RE.match(text):
        raise errors.BadClientId()
    return text


def _kind(kind: FieldEntryKind | str) -> FieldEntryKind:
    try:
        return FieldEntryKind(kind)
    except ValueError:
        raise errors.UnknownEntryKind(kind=str(kind)[:40]) from None


def _text(value: Any, field_name: str, limit: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if value is not None and not isinstance(value, str):
        raise InvalidInput(detail=f"{field_name} must be text")
    if len(text) > limit:
        raise errors.TextTooLong(field=field_name, limit=limit)
    return text


def _decimal(field_name: str, value: Any) -> Decimal | None:
    """A finite Decimal from a Decimal, an int or text; floats are refused (they round)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bool, float)):
        raise errors.BadFieldNumber(field=field_name, value=str(value)[:40])
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise errors.BadFieldNumber(field=field_name, value=str(value)[:40]) from None
    # a reading has a handful of digits; hundreds would only overflow the columns that keep them
    if not number.is_finite() or abs(number.adjusted()) > 30 or len(number.as_tuple().digits) > 24:
        raise errors.BadFieldNumber(field=field_name, value=str(value)[:40])
    return number


def _aware_utc(moment: Any) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise errors.ActTimeNotAware()
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise errors.ActTimeNotAware() from None


def local_text(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _metres(value: float) -> Decimal:
    return Decimal(f"{value:.1f}")


def _submission(actor: User, entry: FieldEntryInput, kind: FieldEntryKind, act_at: datetime) -> str:
    """The fingerprint of what was sent: a repeat with the same id must carry the same content."""
    def plain(value: Any) -> Any:
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, float):
            return repr(value)
        return value

    content = {name: plain(getattr(entry, name)) for name in (
        "sample_no", "reason", "gps_status", "latitude", "longitude", "accuracy_m", "justification", "weather",
        "air_temperature", "observations", "parameter", "value", "unit", "instrument", "barcode", "task_code")}
    content.update(kind=kind.value, act_at=act_at, actor_id=actor.id)
    return content_hash(content)


# ---------------------------------------------------------------- lookups (sites and registration)


def sample_for_update(session: Session, sample_no: str) -> Sample:
    """The sample (numbered as `sample_by_no` reads numbers), row-locked: entries and signing on
    one sample are serialised, so a revision number is never handed out twice."""
    text = (sample_no or "").strip() if isinstance(sample_no, str) else ""
    sample = session.scalars(
        select(Sample).where(Sample.sample_no.in_({text, text.upper()})).with_for_update()
        .execution_options(populate_existing=True)
    ).first() if text and len(text) <= 60 else None
    if sample is None:
        raise SampleNotFound(sample_no=text[:60] or "—")
    return sample


def _assigned_sampler(sample: Sample, task: SamplingTask | None) -> int | None:
    """The task's sampler (a reassignment moves the record with it), else the sample's."""
    if task is not None and task.sampler_id is not None:
        return task.sampler_id
    return sample.sampler_id


def _assert_sampler(sample: Sample, task: SamplingTask | None, actor: User) -> None:
    assigned = _assigned_sampler(sample, task)
    if assigned is None:
        raise errors.NoSamplerAssigned(sample_no=sample.sample_no)
    if assigned != actor.id:
        raise errors.NotYourSample(sample_no=sample.sample_no)


def _assert_open(sample: Sample, task: SamplingTask | None) -> None:
    """Registered samples take entries; a signed (collected) one takes revisions until custody
    begins."""
    open_states = {SampleState.REGISTERED.value} | ({SampleState.COLLECTED.value} if sample.signed_revision else set())
    if sample.state not in open_states:
        raise errors.FieldRecordClosed(sample_no=sample.sample_no, state=sample.state)
    if task is not None and task.status in (TaskStatus.SCHEDULED.value, TaskStatus.CANCELLED.value):
        raise errors.TaskNotInField(task_code=task.code, state=task.status)


def _reason(sample: Sample, reason: Any) -> str:
    text = _text(reason, "reason", MAX_REASON)
    if sample.signed_revision and not text:
        raise errors.ReasonRequiredAfterSigning(sample_no=sample.sample_no)
    return text


def _check_act_time(session: Session, sample: Sample, at: datetime) -> None:
    now = utcnow()
    if at > now + FUTURE_TOLERANCE:
        raise errors.ActTimeInFuture(at=local_text(session, at), now=local_text(session, now))
    calendar = lab_calendar(session)
    earliest_day = min(calendar.local_date(sample.registered_at), sample.scheduled_on) - timedelta(days=1)
    earliest = calendar.start_of(earliest_day)
    if at < earliest:
        raise errors.ActTimeTooEarly(at=local_text(session, at), earliest=local_text(session, earliest))


def _entry_by_client_id(session: Session, client_id: str) -> FieldEntry | None:
    return session.scalars(select(FieldEntry).where(FieldEntry.client_id == client_id)).first()


def _repeat(existing: FieldEntry, fingerprint: str) -> FieldEntryOutcome:
    if json.loads(existing.payload).get("submitted") != fingerprint:
        raise errors.ClientIdReused(client_id=existing.client_id)
    return FieldEntryOutcome(existing, False)


# ---------------------------------------------------------------- what each kind records


@dataclass
class _Facts:
    """The columns and payload of an entry about to be written, and what it changes besides."""

    payload: dict[str, Any]
    parameter: str = ""
    value: Decimal | None = None
    unit: str = ""
    instrument_id: int | None = None
    container: Container | None = None
    notice: FieldNotice | None = None


def _site_id(sample: Sample, task: SamplingTask | None) -> int | None:
    return sample.site_id or (task.site_id if task is not None else None)


def _sampling_facts(session: Session, sample: Sample, task: SamplingTask | None, entry: FieldEntryInput,
                    at: datetime) -> _Facts:
    raw = entry.gps_status.value if isinstance(entry.gps_status, GpsStatus) else entry.gps_status
    coordinates = (entry.latitude, entry.longitude, entry.accuracy_m)
    given = [c for c in coordinates if c is not None and not (isinstance(c, str) and not c.strip())]
    status: GpsStatus | None = None
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        try:
            status = GpsStatus(str(raw).strip())
        except ValueError:
            raise errors.GpsStatusRequired(status=str(raw)[:30]) from None
    elif given:
        raise errors.GpsStatusRequired(status="—")
    latitude = longitude = accuracy = None
    if status is GpsStatus.OK:
        latitude, longitude = _decimal("latitude", entry.latitude), _decimal("longitude", entry.longitude)
        accuracy = _decimal("accuracy_m", entry.accuracy_m)
        if latitude is None or longitude is None or accuracy is None:
            raise errors.GpsFixIncomplete()
        if not valid_position(latitude, longitude):
            raise errors.PositionOutOfRange()
        if not Decimal(0) < accuracy <= MAX_ACCURACY_M:
            raise errors.BadAccuracy()
    elif status is not None and given:
        raise errors.GpsPositionInvented(status=status.value)
    justification = _text(entry.justification, "justification", MAX_JUSTIFICATION)
    payload: dict[str, Any] = {
        "gps_status": status.value if status else None, "latitude": latitude, "longitude": longitude,
        "accuracy_m": accuracy, "justification": justification, "site_version_id": None,
        "distance_m": None, "radius_m": None, "warning": False,
    }
    notice = None
    site_id = _site_id(sample, task)
    if status is GpsStatus.OK and site_id is not None:
        version = version_at(session, site_id, at)
        if version is not None:
            radius = settings_of(session).gps_warning_radius_m
            metres = _metres(distance_m(latitude, longitude, version.latitude, version.longitude))
            warning = metres > radius
            payload.update(site_version_id=version.id, distance_m=metres, radius_m=radius, warning=warning)
            if warning and not justification:
                notice = FieldNotice(
                    "distance_needs_justification",
                    f"距点位登记位置 {metres:.0f} 米，超出 {radius} 米：签署前请说明原因。",
                    f"{metres:.0f} m from the site's registered position (over {radius} m): "
                    "justify it before signing.",
                )
    return _Facts(payload=payload, notice=notice)


def _observation_facts(entry: FieldEntryInput) -> _Facts:
    weather = _text(entry.weather, "weather", MAX_WEATHER)
    if weather.casefold() in WEATHER_CODES:
        weather = weather.casefold()
    temperature = _decimal("air_temperature", entry.air_temperature)
    low, high = AIR_TEMPERATURE_RANGE
    if temperature is not None and not low <= temperature <= high:
        raise errors.AirTemperatureOutOfRange(value=decimal_text(temperature))
    observations = _text(entry.observations, "observations", MAX_OBSERVATIONS)
    if not weather and temperature is None and not observations:
        raise errors.EmptyObservation()
    return _Facts(payload={"weather": weather, "air_temperature": temperature, "observations": observations})


def field_test_rules(session: Session) -> dict[str, PreservationRule]:
    """Casefolded parameter → the field-test rule (the default row over a method's own)."""
    rules: dict[str, PreservationRule] = {}
    for rule in session.scalars(select(PreservationRule).where(PreservationRule.field_test.is_(True))
                                .order_by(PreservationRule.method)):
        rules.setdefault(rule.parameter.casefold(), rule)
    return rules


def reading_in_rule_unit(rule: PreservationRule, value: Decimal, unit: str) -> Decimal:
    """`value` in `unit` expressed in the rule's unit, exactly; a unit that cannot be converted
    is refused naming the unit expected."""
    wanted, given = _unit_key(rule.unit), _unit_key(unit)
    if given == wanted or not given:
        return value
    factors = UNIT_FACTORS.get(wanted)
    if factors is not None:
        if given in factors:
            return value * factors[given]
    else:
        try:
            return convert(value, unit, rule.unit)
        except (UnknownUnit, IncompatibleUnits):
            pass
    raise errors.WrongFieldUnit(parameter=rule.parameter, unit=unit.strip()[:20], expected=rule.unit)


def _field_test_facts(session: Session, sample: Sample, entry: FieldEntryInput, at: datetime) -> _Facts:
    from app.instruments.service import get_instrument
    from app.instruments.status import assert_instrument_usable

    asked = _text(entry.parameter, "parameter", 60)
    rule = field_test_rules(session).get(asked.casefold())
    if rule is None:
        raise errors.NotAFieldTest(parameter=asked or "—")
    requested = {p.casefold() for p in session.scalars(
        select(SampleParameter.parameter).where(SampleParameter.sample_id == sample.id))}
    if rule.parameter.casefold() not in requested:
        raise errors.FieldTestNotRequested(parameter=rule.parameter, sample_no=sample.sample_no)
    entered = _decimal("value", entry.value)
    if entered is None:
        raise errors.BadFieldNumber(field="value", value="—")
    entered_unit = _text(entry.unit, "unit", 20)
    value = reading_in_rule_unit(rule, entered, entered_unit)
    bounds = FIELD_TEST_RANGES.get(rule.parameter)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise errors.FieldValueOutOfRange(parameter=rule.parameter, value=decimal_text(value), unit=rule.unit,
                                          low=decimal_text(bounds[0]), high=decimal_text(bounds[1]))
    asset_no = _text(entry.instrument, "instrument", 40)
    if not asset_no:
        raise errors.FieldInstrumentRequired()
    instrument = get_instrument(session, asset_no)
    reading = assert_instrument_usable(session, instrument, at, rule.parameter)
    return _Facts(
        payload={"entered_value": entered, "entered_unit": entered_unit or rule.unit,
                 "instrument": instrument.asset_no, "instrument_status": reading.status.value,
                 "calibration_id": reading.calibration_id, "due_at": reading.due_at},
        parameter=rule.parameter, value=value, unit=rule.unit, instrument_id=instrument.id,
    )


FILLABLE = (ContainerState.PREPARED.value, ContainerState.ISSUED.value)


def _container_facts(session: Session, sample: Sample, task: SamplingTask | None,
                     entry: FieldEntryInput) -> _Facts:
    scanned = _text(entry.barcode, "barcode", 60)
    if not scanned:
        raise errors.BarcodeRequired()
    container = container_by_barcode(session, scanned)
    task_code = _text(entry.task_code, "task_code", 20)
    if container.sample_id != sample.id or (task_code and (task is None or task.code != task_code)):
        owner = session.get(Sample, container.sample_id)
        owner_task = session.get(SamplingTask, owner.task_id) if owner and owner.task_id else None
        names = {"barcode": container.barcode, "owner_sample": owner.sample_no if owner else "—",
                 "owner_task": owner_task.code if owner_task else "—"}
        if container.sample_id != sample.id:
            raise errors.ContainerOfAnotherSample(sample_no=sample.sample_no, **names)
        raise errors.ContainerOfAnotherTask(task_code=task_code, **names)
    if container.state not in FILLABLE and container.state != ContainerState.FILLED.value:
        raise errors.ContainerWrongState(barcode=container.barcode, state=container.state)
    return _Facts(payload={"barcode": container.barcode, "scanned": scanned}, container=container)


def _already_filled(session: Session, container: Container) -> FieldEntryOutcome | None:
    """A second scan of a filled container: the first scan stands; nothing is recorded."""
    if container.state != ContainerState.FILLED.value:
        return None
    first = session.scalars(select(FieldEntry).where(FieldEntry.container_id == container.id)
                            .order_by(FieldEntry.id).limit(1)).first()
    if first is None:
        return None
    filled = container.filled_at or first.act_at
    return FieldEntryOutcome(first, False, FieldNotice(
        "container_already_filled",
        f"容器 {container.barcode} 已于 {filled.astimezone(UTC):%Y-%m-%d %H:%M} UTC 扫描装样，无需重复扫描。",
        f"Container {container.barcode} was already scanned as filled ({filled.astimezone(UTC):%Y-%m-%d %H:%M} UTC).",
    ))


# ---------------------------------------------------------------- recording an entry


def entry_content(entry: FieldEntry) -> dict[str, Any]:
    """Everything of an entry, as its audit event and the signature bind it."""
    return {c.name: getattr(entry, c.name) for c in FieldEntry.__table__.columns}


def record_field_entry(session: Session, actor: User, entry: FieldEntryInput) -> FieldEntryOutcome:
    """Record one act in the field, once: a repeat of the same client id returns the first entry
    (created False) and changes nothing; the same id with other content is refused."""
    ensure(session, actor, Permission.FIELD_RECORD)
    client_id = clean_client_id(entry.client_id)
    kind = _kind(entry.kind)
    at = _aware_utc(entry.act_at)
    fingerprint = _submission(actor, entry, kind, at)
    existing = _entry_by_client_id(session, client_id)
    if existing is not None:
        return _repeat(existing, fingerprint)

    sample = sample_for_update(session, entry.sample_no)
    existing = _entry_by_client_id(session, client_id)  # a twin that held the lock before us
    if existing is not None:
        return _repeat(existing, fingerprint)
    task = session.get(SamplingTask, sample.task_id) if sample.task_id else None
    _assert_sampler(sample, task, actor)
    _assert_open(sample, task)
    reason = _reason(sample, entry.reason)
    _check_act_time(session, sample, at)
    if kind is FieldEntryKind.SAMPLING:
        facts = _sampling_facts(session, sample, task, entry, at)
    elif kind is FieldEntryKind.OBSERVATION:
        facts = _observation_facts(entry)
    elif kind is FieldEntryKind.FIELD_TEST:
        facts = _field_test_facts(session, sample, entry, at)
    else:
        facts = _container_facts(session, sample, task, entry)
        repeat = _already_filled(session, facts.container)
        if repeat is not None:
            return repeat

    facts.payload["submitted"] = fingerprint
    row = FieldEntry(
        client_id=client_id, sample_id=sample.id, kind=kind.value, act_at=at, parameter=facts.parameter,
        value=facts.value, unit=facts.unit, instrument_id=facts.instrument_id,
        container_id=facts.container.id if facts.container is not None else None,
        payload=canonical_json(facts.payload), revision=sample.signed_revision + 1, reason=reason,
        entered_by_id=actor.id, entered_at=utcnow(),
    )
    try:
        with audit.savepoint(session):
            session.add(row)
            session.flush()
    except IntegrityError:
        # a twin with the same client id committed first (two taps, two connections)
        twin = _entry_by_client_id(session, client_id)
        if twin is None:
            raise
        return _repeat(twin, fingerprint)

    audit.append(session, actor, "field_entry.recorded", "sample", sample.id, None,
                 {"sample_no": sample.sample_no, **entry_content(row)})
    container = facts.container
    if container is not None and container.state in FILLABLE:
        before = {"state": container.state, "filled_at": container.filled_at, "holder_id": container.holder_id}
        container.state, container.filled_at = ContainerState.FILLED.value, at
        # custody starts with the sampler who filled it; the container is full
        container.holder_id, container.remaining = actor.id, Decimal(container.volume_ml)
        audit.append(session, actor, "container.filled", "sample_container", container.id, before,
                     {"barcode": container.barcode, "state": container.state, "filled_at": at,
                      "holder_id": actor.id, "field_entry_id": row.id})
    if task is not None and task.status == TaskStatus.DISPATCHED.value:
        task.status = TaskStatus.IN_FIELD.value
        audit.append(session, actor, "task.in_field", "sampling_task", task.id,
                     {"status": TaskStatus.DISPATCHED.value}, {"status": task.status, "code": task.code})
    session.flush()
    return FieldEntryOutcome(row, True, facts.notice)


# ---------------------------------------------------------------- the fold


@dataclass(frozen=True)
class MissingItem:
    """One thing the record lacks before it can be signed."""

    code: str
    message_zh: str
    message_en: str

    def message(self, language: str) -> str:
        return self.message_zh if language.startswith("zh") else self.message_en


def missing_items(
    *, kind: str, has_site: bool, has_sampling: bool, gps_status: str | None, warning: bool,
    justified: bool, unfilled: Sequence[str], missing_tests: Sequence[str], photos: int, photo_required: bool,
) -> list[MissingItem]:
    """What signing still needs (pure: the record and the day's task list share it). Field QC
    samples (blanks, duplicates) need no GPS and no photo."""
    qc = kind in {k.value for k in FIELD_QC_KINDS}
    found = []
    if not has_sampling:
        found.append(MissingItem("sampling_time", "采样时间", "the sampling time"))
    elif not qc and gps_status is None:
        found.append(MissingItem("gps_status", "定位状态（位置或无法定位的原因）",
                                 "the GPS status (a position, or why there is none)"))
    if warning and not justified:
        found.append(MissingItem("justification", "超出点位半径的说明", "a justification for the distance to the site"))
    if unfilled:
        found.append(MissingItem("containers", "未扫描装样的容器 " + "、".join(unfilled),
                                 "containers not scanned as filled: " + ", ".join(unfilled)))
    if missing_tests:
        found.append(MissingItem("field_tests", "现场测试 " + "、".join(missing_tests),
                                 "field tests " + ", ".join(missing_tests)))
    if photo_required and not qc and has_site and photos == 0:
        found.append(MissingItem("photo", "至少一张现场照片", "at least one photo"))
    return found


@dataclass(frozen=True)
class EntryView:
    entry: FieldEntry
    data: dict[str, Any]  # the payload
    entered_by: str  # printed name
    instrument: str = ""  # asset number of a field test's instrument
    barcode: str = ""  # of a container scan


@dataclass(frozen=True)
class GpsView:
    status: str
    latitude: Decimal | None
    longitude: Decimal | None
    accuracy_m: Decimal | None
    distance_m: Decimal | None  # to the site version in force at the sampling time
    radius_m: int | None
    warning: bool
    justification: str
    at: datetime  # of the entry that gave it


@dataclass(frozen=True)
class FieldTestView:
    parameter: str
    value: Decimal | None
    unit: str
    instrument: str
    at: datetime
    revision: int
    entered_value: str
    entered_unit: str
    readings: int  # how many readings were entered (the latest stands)


@dataclass(frozen=True)
class PhotoView:
    photo: SamplePhoto
    taken_by: str
    time_difference_s: int | None  # EXIF time − sampling time
    distance_m: int | None  # EXIF position to the GPS fix
    flagged: bool  # far from the record in time or space


@dataclass
class RevisionView:
    number: int  # 1: the original record
    entries: list[EntryView] = field(default_factory=list)
    photos: list[PhotoView] = field(default_factory=list)
    signature: SignatureView | None = None

    @property
    def reasons(self) -> list[str]:
        return sorted({e.entry.reason for e in self.entries if e.entry.reason}
                      | {p.photo.reason for p in self.photos if p.photo.reason})


@dataclass
class FieldRecordView:
    """The field record of one sample as its entries fold it."""

    sample: Sample
    task: SamplingTask | None
    site: Site | None
    site_version: SiteVersion | None  # in force at the sampling time
    entries: list[EntryView]
    sampling_time: datetime | None
    gps: GpsView | None
    justification: str
    weather: str
    air_temperature: Decimal | None
    observations: list[EntryView]
    field_tests: list[FieldTestView]
    requested_field_tests: list[str]
    containers: list[Container]
    photos: list[PhotoView]
    revisions: list[RevisionView]
    signatures: list[SignatureView]
    missing: list[MissingItem]
    radius_m: int

    @property
    def signed(self) -> bool:
        return self.sample.signed_revision > 0

    @property
    def pending_revision(self) -> RevisionView | None:
        """The revision being written (not yet signed), if it has anything in it."""
        number = self.sample.signed_revision + 1
        for revision in self.revisions:
            if revision.number == number and (revision.entries or revision.photos):
                return revision
        return None

    @property
    def can_sign(self) -> bool:
        return not self.missing and self.pending_revision is not None

    @property
    def broken_signatures(self) -> list[SignatureView]:
        return [s for s in self.signatures if s.broken]


def _fold(entries: Sequence[EntryView]) -> dict[str, Any]:
    """The record's current values from entries in order: the latest of each stands."""
    sampling = [e for e in entries if e.entry.kind == FieldEntryKind.SAMPLING.value]
    with_gps = [e for e in sampling if e.data.get("gps_status")]
    # a fix is justified by its own entry or a later one (not by what explained an earlier fix)
    since_fix = sampling[sampling.index(with_gps[-1]):] if with_gps else sampling
    justification = next((e.data["justification"] for e in reversed(since_fix) if e.data.get("justification")), "")
    tests: dict[str, list[EntryView]] = {}
    for e in entries:
        if e.entry.kind == FieldEntryKind.FIELD_TEST.value:
            tests.setdefault(e.entry.parameter, []).append(e)
    observations = [e for e in entries if e.entry.kind == FieldEntryKind.OBSERVATION.value]
    return {
        "sampling": sampling[-1] if sampling else None,
        "gps": with_gps[-1] if with_gps else None,
        "justification": justification,
        "tests": tests,
        "observations": observations,
        "weather": next((e.data["weather"] for e in reversed(observations) if e.data.get("weather")), ""),
        "air_temperature": next((Decimal(e.data["air_temperature"]) for e in reversed(observations)
                                 if e.data.get("air_temperature") is not None), None),
        "filled": [e.data.get("barcode", "") for e in entries if e.entry.kind == FieldEntryKind.CONTAINER.value],
    }


def _gps_view(gps: EntryView | None, justification: str) -> GpsView | None:
    if gps is None:
        return None
    data = gps.data

    def number(key: str) -> Decimal | None:
        return None if data.get(key) is None else Decimal(data[key])

    return GpsView(status=data["gps_status"], latitude=number("latitude"), longitude=number("longitude"),
                   accuracy_m=number("accuracy_m"), distance_m=number("distance_m"), radius_m=data.get("radius_m"),
                   warning=bool(data.get("warning")), justification=justification, at=gps.entry.act_at)


def photo_content(photo: SamplePhoto) -> dict[str, Any]:
    return {c.name: getattr(photo, c.name) for c in SamplePhoto.__table__.columns}


def signed_content(sample: Sample, task_code: str, site_code: str, revision: int,
                   entries: Sequence[FieldEntry], photos: Sequence[SamplePhoto]) -> dict[str, Any]:
    """What the n-th `sampled` signature binds: the entries and photos of revisions 1..n (the
    fold up to the last entry signed) and the fold's values."""
    mine = sorted((e for e in entries if e.revision <= revision), key=lambda e: e.id)
    pictures = sorted((p for p in photos if p.revision <= revision), key=lambda p: p.id)
    views = [EntryView(e, json.loads(e.payload), "") for e in mine]
    folded = _fold(views)
    sampling, gps = folded["sampling"], folded["gps"]
    return {
        "sample_no": sample.sample_no, "kind": sample.kind, "task": task_code, "site": site_code,
        "revision": revision, "last_entry_id": mine[-1].id if mine else None,
        "entries": [entry_content(e) for e in mine],
        "photos": [photo_content(p) for p in pictures],
        "fold": {
            "sampling_time": sampling.entry.act_at if sampling else None,
            "gps": gps.entry.payload if gps else None,
            "justification": folded["justification"],
            "field_tests": {p: [decimal_text(t[-1].entry.value), t[-1].entry.unit, t[-1].entry.instrument_id]
                            for p, t in folded["tests"].items()},
            "containers_filled": sorted(folded["filled"]),
        },
    }


def _photo_view(photo: SamplePhoto, taken_by: str, sampling_time: datetime | None,
                gps: GpsView | None, radius: int) -> PhotoView:
    seconds = distance = None
    if photo.exif_taken_at is not None and sampling_time is not None:
        seconds = int((photo.exif_taken_at - sampling_time).total_seconds())
    if (photo.exif_latitude is not None and gps is not None and gps.latitude is not None
            and photo.exif_longitude is not None):
        distance = round(distance_m(photo.exif_latitude, photo.exif_longitude, gps.latitude, gps.longitude))
    flagged = (seconds is not None and abs(seconds) > PHOTO_TIME_FLAG_S) or (distance is not None and distance > radius)
    return PhotoView(photo, taken_by, seconds, distance, flagged)


def field_record(session: Session, sample: Sample) -> FieldRecordView:
    """The fold of a sample's entries with its photos, containers, revisions and signatures
    (each signature checked against the content it claims to bind): `field_records` of one."""
    return field_records(session, [sample])[sample.id]


def field_records(session: Session, samples: Iterable[Sample]) -> dict[int, FieldRecordView]:
    """The field records of many samples (a task's), by sample id, in a fixed number of queries
    whatever the number of samples: each kind of row is read for all of them at once and the
    per-sample fold is done in memory, so a task page does not cost a record's reads per sample."""
    by_id = {s.id: s for s in samples}
    if not by_id:
        return {}
    ids = list(by_id)
    task_ids = {s.task_id for s in by_id.values() if s.task_id}
    tasks = _rows_by_id(session, SamplingTask, task_ids)
    sites = _rows_by_id(session, Site, {sid for s in by_id.values() if (sid := _site_id(s, tasks.get(s.task_id)))})

    entered_by = aliased(User)
    entries: dict[int, list[EntryView]] = defaultdict(list)
    for e, zh, en, asset, barcode in session.execute(
        select(FieldEntry, entered_by.display_name_zh, entered_by.display_name_en, Instrument.asset_no,
               Container.barcode)
        .join(entered_by, entered_by.id == FieldEntry.entered_by_id)
        .outerjoin(Instrument, Instrument.id == FieldEntry.instrument_id)
        .outerjoin(Container, Container.id == FieldEntry.container_id)
        .where(FieldEntry.sample_id.in_(ids)).order_by(FieldEntry.id)
    ):
        entries[e.sample_id].append(EntryView(e, json.loads(e.payload), _printed(zh, en), asset or "", barcode or ""))
    containers: dict[int, list[Container]] = defaultdict(list)
    for c in session.scalars(select(Container).where(Container.sample_id.in_(ids),
                                                     Container.kind == ContainerKind.CONTAINER.value)
                             .order_by(Container.position, Container.id)):  # the field's, not the lab's aliquots
        containers[c.sample_id].append(c)
    taken_by = aliased(User)
    photo_rows: dict[int, list[tuple[SamplePhoto, str]]] = defaultdict(list)
    for p, zh, en in session.execute(
        select(SamplePhoto, taken_by.display_name_zh, taken_by.display_name_en)
        .join(taken_by, taken_by.id == SamplePhoto.taken_by_id)
        .where(SamplePhoto.sample_id.in_(ids)).order_by(SamplePhoto.id)
    ):
        photo_rows[p.sample_id].append((p, _printed(zh, en)))
    signatures: dict[int, list[ElectronicSignature]] = defaultdict(list)
    for signature in session.scalars(
        select(ElectronicSignature).where(ElectronicSignature.entity_type == SIGNED_ENTITY,
                                          ElectronicSignature.entity_id.in_([str(i) for i in ids]),
                                          ElectronicSignature.meaning == SignatureMeaning.SAMPLED.value)
        .order_by(ElectronicSignature.signed_at, ElectronicSignature.id)
    ):
        signatures[int(signature.entity_id)].append(signature)
    requested: dict[int, set[str]] = defaultdict(set)
    for sample_id, parameter in session.execute(
        select(SampleParameter.sample_id, PreservationRule.parameter).select_from(SampleParameter)
        .join(PreservationRule, PreservationRule.parameter == SampleParameter.parameter)
        .where(SampleParameter.sample_id.in_(ids), PreservationRule.field_test.is_(True))
    ):
        requested[sample_id].add(parameter)

    folds = {i: _fold(entries[i]) for i in ids}
    sampling_times = {i: (f["sampling"].entry.act_at if f["sampling"] else None) for i, f in folds.items()}
    versions = _site_versions(session, by_id.values(), tasks, sites, sampling_times)
    settings = settings_of(session)
    return {i: _record_view(sample, tasks.get(sample.task_id), sites.get(_site_id(sample, tasks.get(sample.task_id))),
                            versions.get(i), entries[i], folds[i], containers[i], photo_rows[i], signatures[i],
                            sorted(requested[i], key=str.casefold), settings.gps_warning_radius_m,
                            settings.field_photo_required)
            for i, sample in by_id.items()}


def _rows_by_id(session: Session, model: type[Any], ids: Iterable[int]) -> dict[int, Any]:
    """Rows by id: those the session already holds (loaded, not expired) as they are, the rest in
    one query, so a page that has read the task and its site does not read them again."""
    wanted = {row_id for row_id in ids if row_id is not None}
    found: dict[int, Any] = {}
    for row_id in wanted:
        row = session.identity_map.get(identity_key(model, row_id))
        if row is not None and not sa_inspect(row).expired_attributes:
            found[row_id] = row
    rest = wanted - set(found)
    if rest:
        found.update({row.id: row for row in session.scalars(select(model).where(model.id.in_(rest)))})
    return found


def _site_versions(session: Session, samples: Iterable[Sample], tasks: dict[int, SamplingTask],
                   sites: dict[int, Site], sampling_times: dict[int, datetime | None]) -> dict[int, SiteVersion]:
    """The site version each sample's record is read against, by sample id, in one query: the one
    bound at signing, else the one in force at the sampling time (now, before sampling), picked
    as `sites.service.version_at` does (the latest valid_from not after it, then version_no)."""
    bound: dict[int, int] = {}
    in_force: dict[int, int] = {}
    for sample in samples:
        site_id = _site_id(sample, tasks.get(sample.task_id))
        if site_id not in sites:
            continue
        if sample.site_version_id:
            bound[sample.id] = sample.site_version_id
        else:
            in_force[sample.id] = site_id
    if not bound and not in_force:
        return {}
    rows = list(session.scalars(select(SiteVersion).where(
        or_(SiteVersion.id.in_(set(bound.values())), SiteVersion.site_id.in_(set(in_force.values()))))))
    by_id = {v.id: v for v in rows}
    found = {sample_id: by_id[version_id] for sample_id, version_id in bound.items() if version_id in by_id}
    now = utcnow()
    for sample_id, site_id in in_force.items():
        at = sampling_times.get(sample_id) or now
        candidates = [v for v in rows if v.site_id == site_id and v.valid_from <= at]
        if candidates:
            found[sample_id] = max(candidates, key=lambda v: (v.valid_from, v.version_no))
    return found


def _record_view(sample: Sample, task: SamplingTask | None, site: Site | None, version: SiteVersion | None,
                 entries: list[EntryView], folded: dict[str, Any], containers: list[Container],
                 photo_rows: list[tuple[SamplePhoto, str]], signatures: list[ElectronicSignature],
                 requested: list[str], radius: int, photo_required: bool) -> FieldRecordView:
    """One sample's record from its rows (no queries)."""
    sampling = folded["sampling"]
    sampling_time = sampling.entry.act_at if sampling else None
    gps = _gps_view(folded["gps"], folded["justification"])
    photos = [_photo_view(p, taken_by, sampling_time, gps, radius) for p, taken_by in photo_rows]

    task_code, site_code = (task.code if task else ""), (site.code if site else "")
    checked = []
    for number, signature in enumerate(signatures, start=1):
        content = signed_content(sample, task_code, site_code, number, [e.entry for e in entries],
                                 [p.photo for p in photos])
        checked.append(check(signature, content))
    revisions: dict[int, RevisionView] = {}
    for number in range(1, sample.signed_revision + 1):
        revisions[number] = RevisionView(number, signature=checked[number - 1] if number <= len(checked) else None)
    for e in entries:
        revisions.setdefault(e.entry.revision, RevisionView(e.entry.revision)).entries.append(e)
    for p in photos:
        revisions.setdefault(p.photo.revision, RevisionView(p.photo.revision)).photos.append(p)

    tests = [_test_view(parameter, readings) for parameter, readings in folded["tests"].items()]
    done = {t.parameter.casefold() for t in tests}
    unfilled = [c.barcode for c in containers if c.state in FILLABLE]
    missing = missing_items(
        kind=sample.kind, has_site=site is not None, has_sampling=sampling is not None,
        gps_status=gps.status if gps else None, warning=bool(gps and gps.warning),
        justified=bool(folded["justification"]), unfilled=unfilled,
        missing_tests=[p for p in requested if p.casefold() not in done], photos=len(photos),
        photo_required=photo_required,
    )
    return FieldRecordView(
        sample=sample, task=task, site=site, site_version=version, entries=entries, sampling_time=sampling_time,
        gps=gps, justification=folded["justification"], weather=folded["weather"],
        air_temperature=folded["air_temperature"], observations=folded["observations"], field_tests=tests,
        requested_field_tests=requested, containers=containers, photos=photos,
        revisions=[revisions[n] for n in sorted(revisions)], signatures=checked, missing=missing, radius_m=radius,
    )


def _printed(zh: str, en: str) -> str:
    return f"{zh} ({en})" if en and en != zh else zh


def _test_view(parameter: str, readings: list[EntryView]) -> FieldTestView:
    latest = readings[-1]
    return FieldTestView(parameter=parameter, value=latest.entry.value, unit=latest.entry.unit,
                         instrument=latest.instrument, at=latest.entry.act_at, revision=latest.entry.revision,
                         entered_value=str(latest.data.get("entered_value", "")),
                         entered_unit=str(latest.data.get("entered_unit", "")), readings=len(readings))


# ---------------------------------------------------------------- signing


def sign_field_record(session: Session, actor: User, sample: Sample, password: str) -> ElectronicSignature:
    """The sampler signs (meaning `sampled`) what the record holds now: the sample becomes
    `collected` at the sampling time and is bound to the site version in force then. A record
    signed before is signed again only when a revision added something."""
    ensure(session, actor, Permission.FIELD_RECORD)
    sample = sample_for_update(session, sample.sample_no)
    task = session.get(SamplingTask, sample.task_id) if sample.task_id else None
    _assert_sampler(sample, task, actor)
    _assert_open(sample, task)
    record = field_record(session, sample)
    if record.pending_revision is None and sample.signed_revision:
        raise errors.NothingNewToSign(sample_no=sample.sample_no)
    if record.missing:
        raise errors.FieldRecordIncomplete(
            sample_no=sample.sample_no, missing_zh="；".join(m.message_zh for m in record.missing),
            missing_en="; ".join(m.message_en for m in record.missing))
    sampled_at = record.sampling_time
    version = assert_site_usable(session, record.site, sampled_at) if record.site is not None else None
    revision = sample.signed_revision + 1
    content = signed_content(sample, task.code if task else "", record.site.code if record.site else "",
                             revision, [e.entry for e in record.entries], [p.photo for p in record.photos])
    signature = sign(session, actor, password, SignatureMeaning.SAMPLED, SIGNED_ENTITY, sample.id, content)
    before = {"state": sample.state, "collected_at": sample.collected_at, "site_version_id": sample.site_version_id,
              "signed_revision": sample.signed_revision}
    sample.state = SampleState.COLLECTED.value
    sample.collected_at = sampled_at
    sample.site_version_id = version.id if version is not None else None
    sample.signed_revision = revision
    audit.append(session, actor, "sample.collected" if revision == 1 else "field_record.revised", "sample",
                 sample.id, before,
                 {"sample_no": sample.sample_no, "state": sample.state, "collected_at": sampled_at,
                  "site_version_id": sample.site_version_id, "signed_revision": revision,
                  "signature_id": signature.id})
    start_clocks(session, [sample])  # holding times run from the sampling time (DOMAIN.md §4.1)
    if task is not None and task.status != TaskStatus.COMPLETED.value:
        _complete_task_when_all_signed(session, actor, task)
    session.flush()
    return signature


def _complete_task_when_all_signed(session: Session, actor: User, task: SamplingTask) -> None:
    session.flush()
    unsigned = session.scalars(select(Sample.id).where(
        Sample.task_id == task.id, Sample.signed_revision == 0,
        Sample.state != SampleState.CANCELLED.value).limit(1)).first()
    if unsigned is None:
        before = {"status": task.status}
        task.status, task.completed_at = TaskStatus.COMPLETED.value, utcnow()
        audit.append(session, actor, "task.completed", "sampling_task", task.id, before,
                     {"status": task.status, "code": task.code, "completed_at": task.completed_at})


# ---------------------------------------------------------------- the sampler's day


@dataclass(frozen=True)
class SamplerSample:
    sample: Sample
    containers: list[Container]
    missing: list[MissingItem]

    @property
    def signed(self) -> bool:
        return self.sample.signed_revision > 0


@dataclass(frozen=True)
class SamplerTask:
    task: SamplingTask
    site_code: str
    site_name_zh: str
    site_name_en: str
    latitude: Decimal | None
    longitude: Decimal | None
    samples: list[SamplerSample]

    @property
    def missing(self) -> list[tuple[str, MissingItem]]:
        """(sample number, what it lacks) over the task's unsigned samples."""
        return [(s.sample.sample_no, m) for s in self.samples if not s.signed for m in s.missing]


TASK_ORDER = {TaskStatus.IN_FIELD.value: 0, TaskStatus.DISPATCHED.value: 0, TaskStatus.COMPLETED.value: 1}


def tasks_for_sampler(session: Session, sampler: User, day: date) -> list[SamplerTask]:
    """The sampler's tasks of the lab-local `day`: open ones (dispatched, in the field) first,
    then completed, with the site (its current version), samples, containers and what each
    sample still lacks. Two queries: the tasks with everything hanging off them, and the facts
    the missing lists are made of."""
    version = aliased(SiteVersion)
    rows = session.execute(
        select(SamplingTask, Site.code, version.name_zh, version.name_en, version.latitude, version.longitude,
               Sample, Container)
        .join(Site, Site.id == SamplingTask.site_id)
        .outerjoin(version, version.id == Site.current_version_id)
        .outerjoin(Sample, and_(Sample.task_id == SamplingTask.id, Sample.state != SampleState.CANCELLED.value))
        .outerjoin(Container, Container.sample_id == Sample.id)
        .where(SamplingTask.sampler_id == sampler.id, SamplingTask.scheduled_on == day,
               SamplingTask.status.in_(tuple(TASK_ORDER)))
        .order_by(SamplingTask.id, Sample.id, Container.position, Container.id)
    ).all()
    tasks: dict[int, tuple] = {}
    samples: dict[int, dict[int, tuple[Sample, list[Container]]]] = defaultdict(dict)
    for task, code, name_zh, name_en, latitude, longitude, sample, container in rows:
        tasks.setdefault(task.id, (task, code, name_zh or "", name_en or "", latitude, longitude))
        if sample is not None:
            entry = samples[task.id].setdefault(sample.id, (sample, []))
            if container is not None:
                entry[1].append(container)
    sample_ids = [s.id for per_task in samples.values() for s, _ in per_task.values()]
    facts = _signing_facts(session, sample_ids)
    photo_required = settings_of(session).field_photo_required
    result = []
    for task_id, (task, code, name_zh, name_en, latitude, longitude) in tasks.items():
        listed = []
        for sample, containers in samples[task_id].values():
            fact = facts.get(sample.id, _SampleFacts())
            listed.append(SamplerSample(sample, containers, missing_items(
                kind=sample.kind, has_site=True, has_sampling=fact.sampling, gps_status=fact.gps_status,
                warning=fact.warning, justified=fact.justified,
                unfilled=[c.barcode for c in containers if c.state in FILLABLE],
                missing_tests=sorted(fact.requested_tests - fact.tests_done, key=str.casefold), photos=fact.photos,
                photo_required=photo_required)))
        result.append(SamplerTask(task, code, name_zh, name_en, latitude, longitude, listed))
    return sorted(result, key=lambda t: (TASK_ORDER[t.task.status], t.site_code, t.task.code))


@dataclass
class _SampleFacts:
    """What the day's list needs of a sample to say what it still lacks."""

    sampling: bool = False
    gps_status: str | None = None
    warning: bool = False
    justified: bool = False
    photos: int = 0
    requested_tests: set[str] = field(default_factory=set)
    tests_done: set[str] = field(default_factory=set)


def _signing_facts(session: Session, sample_ids: Iterable[int]) -> dict[int, _SampleFacts]:
    """What signing looks at, for many samples in one UNION ALL: sampling and field-test entries,
    photos, requested field tests."""
    ids = list(sample_ids)
    if not ids:
        return {}
    entries = select(FieldEntry.sample_id.label("sample_id"), FieldEntry.kind.label("what"),
                     FieldEntry.parameter.label("parameter"), FieldEntry.payload.label("payload"),
                     FieldEntry.id.label("ordering")).where(
        FieldEntry.sample_id.in_(ids),
        FieldEntry.kind.in_((FieldEntryKind.SAMPLING.value, FieldEntryKind.FIELD_TEST.value)))
    photos = select(SamplePhoto.sample_id, literal("photo"), literal(""), literal("{}"), SamplePhoto.id).where(
        SamplePhoto.sample_id.in_(ids))
    requested = select(SampleParameter.sample_id, literal("requested"), SampleParameter.parameter, literal("{}"),
                       SampleParameter.id).join(
        PreservationRule, and_(PreservationRule.parameter == SampleParameter.parameter,
                               PreservationRule.field_test.is_(True))).where(SampleParameter.sample_id.in_(ids))
    union = union_all(entries, photos, requested).subquery()
    found: dict[int, _SampleFacts] = defaultdict(_SampleFacts)
    for sample_id, what, parameter, payload, _ in session.execute(
            select(union).order_by(union.c.sample_id, union.c.what, union.c.ordering)):
        fact = found[sample_id]
        if what == FieldEntryKind.SAMPLING.value:
            data = json.loads(payload)
            fact.sampling = True
            if data.get("gps_status"):  # a new fix: only its own or a later justification counts
                fact.gps_status, fact.warning, fact.justified = data["gps_status"], bool(data.get("warning")), False
            fact.justified = fact.justified or bool(data.get("justification"))
        elif what == FieldEntryKind.FIELD_TEST.value:
            fact.tests_done.add(parameter)
        elif what == "photo":
            fact.photos += 1
        else:
            fact.requested_tests.add(parameter)
    return found


def entry_problem(error: DomainError, language: str) -> dict[str, Any]:
    """A refusal as the API and the phone show it."""
    return {"code": error.code, "status": error.http_status, "message": error.message(language),
            "message_zh": error.message("zh"), "message_en": error.message("en")}


__all__ = [
    "FIELD_TEST_RANGES", "FieldEntryInput", "FieldEntryOutcome", "FieldNotice", "FieldRecordView", "MissingItem",
    "SamplerSample", "SamplerTask", "entry_problem", "field_record", "field_records", "missing_items",
    "record_field_entry", "sign_field_record", "tasks_for_sampler",
]


def signed_field_readings(session: Session, sample_ids: Iterable[int]) -> dict[tuple[int, str], FieldEntry]:
    """(sample id, parameter) → the field-test reading the sampler's signature stands behind: of
    the entries of a signed revision (revision <= the sample's signed_revision), the highest
    revision, then the latest entry. An entry of the revision being written is not the record's
    until it is signed. One query whatever the number of samples."""
    ids = sorted({i for i in sample_ids if i is not None})
    if not ids:
        return {}
    found: dict[tuple[int, str], FieldEntry] = {}
    for entry in session.scalars(
        select(FieldEntry).join(Sample, Sample.id == FieldEntry.sample_id)
        .where(FieldEntry.sample_id.in_(ids), FieldEntry.kind == FieldEntryKind.FIELD_TEST.value,
               FieldEntry.revision <= Sample.signed_revision)
        .order_by(FieldEntry.sample_id, FieldEntry.parameter, FieldEntry.revision, FieldEntry.id)
    ):
        found[(entry.sample_id, entry.parameter)] = entry  # in order: the last one stands
    return found
