"""Demo field sampling: a week of completed sampling rounds of the demo sampler at the demo river
sections, today's dispatched tasks waiting on the phone, and tasks in the coming days, entered
through the real services as the demo users would:

- the technical manager schedules each monthly visit three days ahead (extra tasks: the quarter's
  plan holds the quarterly full rounds), which spreads the field QC over the sampler's day (a
  field blank and a field duplicate per day);
- the custodian dispatches the task the afternoon before (samples, containers, labels);
- the sampler records in the field at the times the acts happened: the sampling time with the
  phone's GPS fix (within ~30 m of the section; one sample 350 m downstream with a
  justification), weather and observations, WT/pH/DO/EC read with the field meter JC-YQ-009
  (calibrated, so the gate passes), every container scanned, one or two photos of the routine
  sample (JPEGs with EXIF time and position, app.samples.demo_photos), and signs (meaning
  `sampled`, the demo password). One signed record gets a corrected DO reading with its reason
  and is signed again, so the record shows both revisions.

The records are entered "now" (the entries' entered_at, the signatures, the audit trail); what
happened in the field carries the time it happened. Readings are plausible for the season
(water temperature follows the year; DO from saturation at that temperature), deterministic for
a site and day.

Idempotent: if the demo sampler has any task outside a plan, the field demo is there already.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.files import FileStore
from app.core.labtime import lab_calendar
from app.people.models import User
from app.samples import field, photos, registration
from app.samples.demo_photos import Scene, field_photo
from app.samples.field import FieldEntryInput
from app.samples.models import FieldEntryKind, GpsStatus, PreservationRule, Sample, SampleKind
from app.sites import plans
from app.sites.demo import SITE_BY_CODE, DemoClock, DemoSite, offset
from app.sites.models import SamplingTask, Site, SiteVersion
from app.sites.service import version_at

D = Decimal
FIELD_METER = "JC-YQ-009"  # app.instruments.demo: calibrated for WT, pH, DO, EC
FIELD_TESTS = ("WT", "pH", "DO", "EC")


@dataclass(frozen=True)
class Visit:
    """One sampling task of the demo sampler: where, which day, from what time."""

    site: str
    days_ago: int  # 0 today; negative: a day ahead
    hour: int
    minute: int
    away_m: int = 0  # sampled this far from the section (with `justification`)
    justification: str = ""
    corrected: str = ""  # a field test mistyped, corrected after signing (the next revision)


# The week: one or two sections a day, the sampler's field batch of that day.
WEEK = (
    Visit("JC-W02", 7, 9, 10), Visit("JC-W03", 7, 10, 45),
    Visit("JC-W05", 6, 9, 25), Visit("JC-W06", 6, 11, 5),
    Visit("JC-W10", 5, 9, 40, corrected="DO"),
    Visit("JC-W01", 4, 9, 5), Visit("JC-W04", 4, 14, 20),
    Visit("JC-W07", 3, 9, 50, away_m=350, justification="桥面施工，改在下游 350 m 处采样"),
    Visit("JC-W11", 2, 10, 15),
    Visit("JC-W12", 1, 9, 30),
)
TODAY = (Visit("JC-W03", 0, 9, 0), Visit("JC-W06", 0, 10, 30), Visit("JC-W10", 0, 14, 0))
COMING = (Visit("JC-W01", -1, 9, 0), Visit("JC-W04", -1, 14, 0), Visit("JC-A01", -2, 9, 0))

# conductivity of each water, µS/cm (the Fu River carries the city's treated effluent)
CONDUCTIVITY = {"长江": 330, "汉江": 290, "府河": 560, "滠水": 380, "举水": 320, "东湖": 420, "汤逊湖": 390,
                "梁子湖": 260}
OBSERVATIONS = {
    "muddy_river": "水体浑浊，呈黄褐色，无异味，无漂浮物；水流较急，在主流处采表层水（水面下 0.5 m）。",
    "river": "水体微浑，呈浅黄绿色，无异味，无明显漂浮物；水流平缓，采表层水（水面下 0.5 m）。",
    "lake": "湖水清澈，略带绿色，无异味，岸边少量水草；乘船至湖心，采水面下 0.5 m。",
}
WEATHER = ("sunny", "cloudy", "overcast")
BLANK_NOTE = "全程序空白：实验室无氨纯水带至现场，与样品同样开盖、加保存剂、装箱。"


# ---------------------------------------------------------------- readings for the season


def water_temperature(day: date, rng: random.Random) -> Decimal:
    """About 8 °C in late January to 29 °C in late July (the middle Yangtze), ± a little."""
    phase = 2 * math.pi * (day.timetuple().tm_yday - 118) / 365
    return D(f"{18.5 + 10.5 * math.sin(phase) + rng.uniform(-0.6, 0.6):.1f}")


def air_temperature(day: date, hour: int, rng: random.Random) -> Decimal:
    phase = 2 * math.pi * (day.timetuple().tm_yday - 115) / 365
    return D(f"{16.5 + 12 * math.sin(phase) + (hour - 9) * 0.6 + rng.uniform(-2.5, 2.5):.1f}")


def oxygen_saturation(temperature: Decimal) -> float:
    """Dissolved oxygen at saturation in fresh water at sea level, mg/L (APHA 4500-O fit)."""
    t = float(temperature)
    return 14.652 - 0.41022 * t + 0.007991 * t * t - 0.000077774 * t ** 3


@dataclass(frozen=True)
class Readings:
    values: dict[str, Decimal]
    weather: str
    air: Decimal


def readings_for(demo: DemoSite, day: date, hour: int) -> Readings:
    """Plausible readings at `demo` on `day`, the same every time the demo is loaded that day."""
    rng = random.Random(f"{demo.code}|{day.isoformat()}")
    wt = water_temperature(day, rng)
    if demo.basin == "府河":  # a tributary under pressure: lower oxygen, more salts
        ph, do_factor = rng.uniform(7.2, 7.7), rng.uniform(0.62, 0.76)
    elif demo.water == "lake":  # algae lift pH and oxygen by day
        ph, do_factor = rng.uniform(7.9, 8.6), rng.uniform(0.95, 1.12)
    else:
        ph, do_factor = rng.uniform(7.5, 8.1), rng.uniform(0.86, 0.99)
    ec = CONDUCTIVITY.get(demo.basin, 350) * rng.uniform(0.93, 1.07)
    return Readings(
        values={"WT": wt, "pH": D(f"{ph:.2f}"), "DO": D(f"{oxygen_saturation(wt) * do_factor:.2f}"),
                "EC": D(f"{ec:.0f}")},
        weather=rng.choice(WEATHER), air=air_temperature(day, hour, rng),
    )


def mistyped(value: Decimal) -> Decimal:
    """A plausible slip of the thumb: the last two digits swapped (or, if they are the same, the
    units off by one)."""
    text = f"{value}"
    swapped = text[:-2] + text[-1] + text[-2] if text[-2].isdigit() else text
    return D(swapped) if swapped != text else value - 1


def correction_reason(parameter: str, entered: Decimal, stored: Decimal, unit: str) -> str:
    return (f"{parameter} 读数录入错误：仪器存储值 {stored} {unit} 误录为 {entered}，按仪器存储数据更正。"
            f" / {parameter} mistyped: the meter stored {stored} {unit}, {entered} was entered; corrected from"
            " the meter's log.")


def duplicate_readings(readings: Readings, rng: random.Random) -> dict[str, Decimal]:
    """The duplicate's own readings: the same water, within the meter's repeatability."""
    values = readings.values
    return {"WT": values["WT"], "pH": values["pH"] + D(rng.choice((-1, 0, 1))) / 100,
            "DO": values["DO"] + D(rng.randint(-8, 8)) / 100, "EC": values["EC"] + rng.randint(-4, 4)}


# ---------------------------------------------------------------- entering a round


@dataclass
class _Round:
    """What the sampler does at one task: the acts in order, at the times they happened."""

    session: Session
    sampler: User
    store: FileStore
    password: str
    visit: Visit
    demo: DemoSite
    version: SiteVersion
    start: datetime
    rules: dict[str, PreservationRule]

    def entry(self, sample: Sample, suffix: str, kind: FieldEntryKind, minutes: float, **facts: Any) -> None:
        outcome = field.record_field_entry(self.session, self.sampler, FieldEntryInput(
            client_id=f"demo-{sample.sample_no}-{suffix}", sample_no=sample.sample_no, kind=kind,
            act_at=self.start + timedelta(minutes=minutes), **facts))
        if not outcome.created:
            raise RuntimeError(f"demo entry {sample.sample_no} {suffix} was there already")

    def sampling(self, sample: Sample, minutes: float, position: tuple[Decimal, Decimal], accuracy: Decimal,
                 justification: str = "") -> None:
        latitude, longitude = position
        self.entry(sample, "sampling", FieldEntryKind.SAMPLING, minutes, gps_status=GpsStatus.OK,
                   latitude=latitude, longitude=longitude, accuracy_m=accuracy, justification=justification,
                   task_code="")

    def tests(self, sample: Sample, values: dict[str, Decimal], minutes: float) -> None:
        for i, parameter in enumerate(FIELD_TESTS):
            rule = self.rules[parameter]
            self.entry(sample, f"test-{parameter}", FieldEntryKind.FIELD_TEST, minutes + 2 * i, parameter=parameter,
                       value=f"{values[parameter]}", unit=rule.unit, instrument=FIELD_METER)

    def containers(self, sample: Sample, barcodes: list[str], minutes: float) -> None:
        for i, barcode in enumerate(barcodes):
            self.entry(sample, f"ct{i + 1}", FieldEntryKind.CONTAINER, minutes + i, barcode=barcode)

    def photo(self, sample: Sample, n: int, minutes: float, position: tuple[Decimal, Decimal], caption: str) -> None:
        taken = self.start + timedelta(minutes=minutes)
        scene = Scene(self.demo.code, self.demo.name_zh, taken, position[0], position[1], self.demo.water, caption)
        tz = lab_calendar(self.session).tz
        data = field_photo(scene, tz=tz, seed=n)
        outcome = photos.add_photo(self.session, self.sampler, self.store, sample_no=sample.sample_no,
                                   client_id=f"demo-{sample.sample_no}-photo{n}", stream=io.BytesIO(data),
                                   filename=f"IMG_{taken.astimezone(tz):%Y%m%d_%H%M%S}.jpg", caption=caption)
        if not outcome.created:
            raise RuntimeError(f"demo photo {n} of {sample.sample_no} was there already")

    def sign(self, sample: Sample) -> None:
        field.sign_field_record(self.session, self.sampler, sample, self.password)


def _barcodes(session: Session, samples: list[Sample]) -> dict[int, list[str]]:
    found = registration.containers_of(session, [s.id for s in samples])
    return {sample_id: [c.barcode for c in containers] for sample_id, containers in found.items()}


def _sample_round(work: _Round, samples: list[Sample]) -> None:
    """The routine sample first (position, observations, field tests, containers, photos), then
    its duplicate and the day's blank, each signed when complete."""
    session, visit, demo = work.session, work.visit, work.demo
    rng = random.Random(f"{demo.code}|{work.start.isoformat()}|gps")
    site_position = (work.version.latitude, work.version.longitude)
    if visit.away_m:
        position = offset(*site_position, visit.away_m, 65)  # downstream, to the north-east
    else:
        position = offset(*site_position, rng.uniform(4, 28), rng.uniform(0, 360))
    accuracy = D(f"{rng.uniform(3, 8):.1f}")
    day = lab_calendar(session).local_date(work.start)
    readings = readings_for(demo, day, visit.hour)
    barcodes = _barcodes(session, samples)
    by_kind: dict[str, list[Sample]] = {}
    for sample in samples:
        by_kind.setdefault(sample.kind, []).append(sample)

    for sample in by_kind.get(SampleKind.ROUTINE.value, []):
        work.sampling(sample, 0, position, accuracy, visit.justification)
        work.photo(sample, 1, 1, offset(*position, rng.uniform(1, 4), rng.uniform(0, 360)),
                   "采样点 / sampling point")
        work.entry(sample, "observation", FieldEntryKind.OBSERVATION, 3, weather=readings.weather,
                   air_temperature=readings.air, observations=OBSERVATIONS[demo.water])
        entered = dict(readings.values)
        if visit.corrected:
            entered[visit.corrected] = mistyped(readings.values[visit.corrected])
        work.tests(sample, entered, 5)
        work.containers(sample, barcodes[sample.id], 14)
        if rng.random() < 0.6:
            work.photo(sample, 2, 19, offset(*position, rng.uniform(1, 4), rng.uniform(0, 360)),
                       "样品瓶已装样、加保存剂 / containers filled and preserved")
        work.sign(sample)
    for sample in by_kind.get(SampleKind.FIELD_DUPLICATE.value, []):
        work.sampling(sample, 1, position, accuracy, visit.justification)
        work.tests(sample, duplicate_readings(readings, rng), 6)
        work.containers(sample, barcodes[sample.id], 18)
        work.sign(sample)
    for sample in by_kind.get(SampleKind.FIELD_BLANK.value, []):
        work.sampling(sample, 2, position, accuracy, visit.justification)
        work.entry(sample, "observation", FieldEntryKind.OBSERVATION, 4, weather=readings.weather,
                   air_temperature=readings.air, observations=BLANK_NOTE)
        work.containers(sample, barcodes[sample.id], 22)
        work.sign(sample)
    if visit.corrected:
        parameter, rule = visit.corrected, work.rules[visit.corrected]
        stored = readings.values[parameter]
        reason = correction_reason(parameter, mistyped(stored), stored, rule.unit)
        for sample in by_kind.get(SampleKind.ROUTINE.value, []):
            work.entry(sample, f"test-{parameter}-r2", FieldEntryKind.FIELD_TEST, 5 + 2 * FIELD_TESTS.index(parameter),
                       parameter=parameter, value=f"{stored}", unit=rule.unit, instrument=FIELD_METER, reason=reason)
            work.sign(sample)


# ---------------------------------------------------------------- scheduling and dispatching


def _local(session: Session, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=lab_calendar(session).tz)


def _schedule(session: Session, clock: DemoClock, visits: tuple[Visit, ...], sites: dict[str, Site],
              technical: User, sampler: User) -> dict[Visit, SamplingTask]:
    """Each visit scheduled by the technical manager three days ahead (or now, for today's and
    the coming days': scheduling in the past is refused, and rightly so)."""
    today = lab_calendar(session).today()
    tasks = {}
    for visit in visits:
        day = today - timedelta(days=visit.days_ago)
        site = sites[visit.site]
        if visit.days_ago > 0:
            with clock.at(_local(session, day - timedelta(days=3), 10, 20), session):
                tasks[visit] = plans.schedule_task(session, technical, site=site, scheduled_on=day, sampler=sampler,
                                                   parameters=[])
        else:
            tasks[visit] = plans.schedule_task(session, technical, site=site, scheduled_on=day, sampler=sampler,
                                               parameters=[])
    return tasks


def _dispatch(session: Session, custodian: User, task: SamplingTask, *, the_day_before: bool) -> list[Sample]:
    """The custodian registers the samples and issues the containers: the afternoon before for
    the week's rounds, now for today's."""
    at = _local(session, task.scheduled_on - timedelta(days=1), 16, 30) if the_day_before else None
    return registration.dispatch_task(session, custodian, task, at=at)


def has_field_demo(session: Session, sampler: User) -> bool:
    return session.scalars(select(SamplingTask.id).where(
        SamplingTask.sampler_id == sampler.id, SamplingTask.plan_id.is_(None)).limit(1)).first() is not None


def load_field_demo(session: Session, users: dict[str, User], store: FileStore, password: str) -> None:
    """The week of completed rounds, today's dispatched tasks and the coming days' tasks of the
    demo sampler, unless the sampler has extra tasks already."""
    technical, custodian, sampler = users["technical"], users["custodian"], users["sampler"]
    if has_field_demo(session, sampler):
        return
    codes = {v.site for v in (*WEEK, *TODAY, *COMING)}
    sites = {s.code: s for s in session.scalars(select(Site).where(Site.code.in_(codes)))}
    clock = DemoClock(plans)
    week = _schedule(session, clock, WEEK, sites, technical, sampler)
    today_tasks = _schedule(session, clock, TODAY, sites, technical, sampler)
    _schedule(session, clock, COMING, sites, technical, sampler)
    rules = {r.parameter: r for r in session.scalars(select(PreservationRule).where(
        PreservationRule.parameter.in_(FIELD_TESTS), PreservationRule.method == ""))}
    for visit, task in week.items():
        samples = _dispatch(session, custodian, task, the_day_before=True)
        start = _local(session, task.scheduled_on, visit.hour, visit.minute)
        version = version_at(session, task.site_id, start)
        if version is None:
            raise RuntimeError(f"demo site {visit.site} had no version at {start}")
        _sample_round(_Round(session, sampler, store, password, visit, SITE_BY_CODE[visit.site], version, start,
                             rules), samples)
    for task in today_tasks.values():
        _dispatch(session, custodian, task, the_day_before=False)


def load_sampling_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """Sites, plans and a week in the field (app.demo.load_demo calls this last)."""
    from app.demo import DEMO_PASSWORD
    from app.sites.demo import load_plan_demo, load_site_demo

    load_site_demo(session, users)
    load_plan_demo(session, users)
    load_field_demo(session, users, store, DEMO_PASSWORD)
