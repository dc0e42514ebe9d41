"""Demo lab life for the demo's week of samples (issue 7): custody, receipt, storage, holding
times, preparation and disposal, entered through the real services as the demo users would, at
the times the acts happened (app.samples.demo entered the week in the field; this follows the
samples from the field to the bench):

- the custodian set up the sample room two months ago: 冷藏柜 1 (0–4 °C, shelves A/B/C), 冷藏柜 2
  (0–4 °C, dark: the CODMn bottles; its shelf A is nearly full, so "storage full" shows on the
  custodian's day), 常温样品柜 (the acidified metals bottles) and 留样柜; retention rules for the
  client 江城化工 (90 days) and for soil (180 days); the lab default (30 days) is a setting;
- each day of the week the sampler scans the day's containers into a cooler, seals it and hands it
  over in one act to the driver of the sampling car (a colleague, named in words); the custodian
  opens a delivery for the cooler when it arrives in the late afternoon, scans every container,
  records the checks (arrival temperature, pH strip of the acidified bottles, intact, volume,
  label), decides and signs (`received`), then stores the bottles by scanning them into the fridges;
- one sample is accepted with conditions (its H2SO4 bottle read pH 3 on the strip: acid added at
  receipt, the quality manager agreed on the phone, reference recorded), one is rejected (a
  cracked CODMn bottle) with its retention running from the rejection;
- one day the sampler gave the bottles to the driver without recording it: the custodian received
  them from the driver, and the gap is flagged on those samples (/custody/gaps); another day the
  cooler went by courier (顺丰, its waybill) with no gap;
- yesterday's cooler is with the driver, in transit: expected today, waiting at /receipts/new
  for the demo custodian (the driver's name is on the cooler's note);
- the analyst digested three samples' metals (HJ 677-2013, Cu/Zn/Pb/Cd): 50 mL aliquots of the
  HNO3 bottles, a preparation blank, a spike of the demo metals standard, HNO3 from the reagents
  (a bottle the demo adds); closed and signed (`prepared`); an ammonia distillation (HJ 535-2009)
  is still open with one aliquot, taken after its 24 h holding time with the quality manager's
  recorded deviation (the distiller was being repaired);
- a metals round twelve days ago is not digested yet: its 14-day clocks are amber today (and the
  week's 24 h clocks red); a cooler that arrived warm five weeks ago was rejected whole, its
  retention is over and the custodian's disposal request awaits the quality manager.

The records carry the time of the act (their services are run under `DemoClock`, signatures
included); the audit trail says when the demo was loaded. Deterministic: temperatures and seal
numbers come from random.Random seeded per day. Idempotent: if the sample room's first fridge
shelf exists, the lab demo is there already.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import signatures
from app.core.db import utcnow
from app.core.files import FileStore
from app.core.labtime import lab_calendar
from app.people.models import User
from app.reference_materials import service as rm_service
from app.reference_materials.models import ReagentLot, StandardSolution
from app.samples import (
    aliquots,
    custody,
    disposal,
    holding,
    preparation,
    receipt,
    registration,
    retention,
    shipments,
    storage,
)
from app.samples.lab_models import PrepBatch, PrepKind, Shipment, StorageLocation
from app.samples.models import Container, PreservationRule, Sample, SampleKind
from app.sites import plans
from app.sites.demo import SITE_BY_CODE, DemoClock
from app.sites.models import SamplingTask, Site
from app.sites.service import version_at

D = Decimal
ROOM = "样品室"
DRIVER = "王建军（采样车驾驶员）"  # the lab's driver: a colleague, not a LIMS user
COURIER = "顺丰同城急送 运单 SF1409227533618"
LAB_DOOR = "实验室样品接收室"
DIGESTION_METHOD = "HJ 677-2013"  # 水质 金属总量的消解 硝酸消解法
METALS = ("Cu", "Zn", "Pb", "Cd")
DISTILLATION_METHOD = "HJ 535-2009"  # 水质 氨氮的测定 纳氏试剂分光光度法 (预蒸馏)
METALS_STANDARD = "重金属混合标准中间液 100 μg/L（Cd 10 μg/L）"  # app.reference_materials.demo


@dataclass(frozen=True)
class Place:
    unit: str
    shelf: str
    conditions_zh: str
    conditions_en: str
    low: str | None
    high: str | None
    capacity: int


FRIDGE_1, FRIDGE_2, CABINET, RETAINED = "冷藏柜 1", "冷藏柜 2", "常温样品柜", "留样柜"
COLD = ("冷藏 0–4 °C", "Refrigerated, 0–4 °C")
DARK = ("冷藏避光 0–4 °C（CODMn 等需避光的样品）", "Refrigerated and dark, 0–4 °C (CODMn and other dark samples)")
PLACES = (
    Place(FRIDGE_1, "A", *COLD, "0", "4", 60),
    Place(FRIDGE_1, "B", *COLD, "0", "4", 60),
    Place(FRIDGE_1, "C", *COLD, "0", "4", 60),
    Place(FRIDGE_2, "A", *DARK, "0", "4", 25),  # 23 CODMn bottles by the end of the week: nearly full
    Place(FRIDGE_2, "B", *DARK, "0", "4", 25),
    Place(CABINET, "", "常温避光（已酸化的金属样品）", "Room temperature, dark (acidified metals samples)", "10", "30",
          80),
    Place(RETAINED, "", "留样 0–4 °C（报告后留样）", "Retained samples after reporting, 0–4 °C", "0", "4", 120),
)
# where each preservation group is kept: cold in fridge 1 (a shelf per part of the week), dark in
# fridge 2, the acidified metals and mercury bottles in the cabinet
DARK_GROUPS = {"cool_dark", "bod5"}
ROOM_GROUPS = {"hno3", "hcl_hg"}


@dataclass(frozen=True)
class Day:
    """How one day's samples came to the lab."""

    days_ago: int
    route: str  # driver, courier, unrecorded (given to the driver, no hand-over recorded), in_transit
    handover: tuple[int, int]  # lab time the cooler left the sampler
    arrival: tuple[int, int] | None  # lab time it reached the lab door
    shelf: str  # the shelf of fridge 1 for its cold bottles
    warm: bool = False  # the cooler's ice packs failed


# Two extra rounds of the demo sampler (entered like the week's, app.samples.demo): a cooler that
# arrived warm five weeks ago (rejected, retention over) and a metals round twelve days ago.
OLD_VISIT = ("JC-W08", 38, 10, 20)
METALS_VISIT = ("JC-W06", 12, 9, 50)
# this morning's rounds, waiting at the lab door (sampled three to two hours before the load)
FRESH_SITES = ("JC-W08", "JC-W02", "JC-W05")
DAYS = (
    Day(38, "driver", (11, 5), (17, 50), "", warm=True),
    Day(12, "driver", (10, 40), (16, 20), "A"),
    Day(7, "driver", (11, 40), (16, 35), "A"),
    Day(6, "driver", (11, 55), (16, 50), "A"),
    Day(5, "driver", (10, 30), (16, 10), "B"),
    Day(4, "courier", (15, 10), (17, 40), "B"),
    Day(3, "unrecorded", (10, 40), (17, 30), "C"),
    Day(2, "driver", (11, 5), (16, 45), "C"),
    Day(1, "in_transit", (10, 25), None, ""),
)
CONDITIONAL = (6, "JC-W05", SampleKind.ROUTINE.value)  # day, site, kind: the H2SO4 bottle at pH 3
REJECTED = (5, "JC-W10", SampleKind.FIELD_DUPLICATE.value)  # the cracked CODMn bottle
DIGESTED = ((6, "JC-W06"), (4, "JC-W01"), (4, "JC-W04"))  # routine samples whose metals are digested
SPIKED = (4, "JC-W04")
LATE = (2, "JC-W11")  # routine sample whose NH3-N is distilled late, with a deviation


@dataclass(frozen=True)
class DemoHno3:
    name: str = "硝酸"
    grade: str = "优级纯 GR"
    supplier: str = "国药集团化学试剂有限公司"
    lot_no: str = "20240322"


HNO3 = DemoHno3()


# ---------------------------------------------------------------- time


@dataclass
class DemoActs:
    """The demo's acts at the times they happened: `at` a lab-local moment some days ago, `then`
    the services run at it, `user` a demo user by role. The analysis demo builds on it too."""

    session: Session
    users: dict[str, User]
    store: FileStore
    password: str
    today: date
    clock: DemoClock

    def at(self, days_ago: int, hour: int, minute: int = 0) -> datetime:
        day = self.today - timedelta(days=days_ago)
        return datetime.combine(day, time(hour, minute), tzinfo=lab_calendar(self.session).tz)

    @contextmanager
    def then(self, moment: datetime) -> Iterator[None]:
        """Services that stamp their records with their own clock see the time of the act."""
        with self.clock.at(moment, self.session):
            yield

    def user(self, name: str) -> User:
        return self.users[name]


def _clock() -> DemoClock:
    return DemoClock(custody, receipt, shipments, signatures, preparation, aliquots, retention, storage, disposal,
                     holding, rm_service, plans)


# ---------------------------------------------------------------- setting up


def _set_up_storage(lab: DemoActs) -> dict[tuple[str, str], StorageLocation]:
    custodian = lab.user("custodian")
    made = {}
    moment = lab.at(60, 14, 30)
    with lab.then(moment):
        for place in PLACES:
            made[(place.unit, place.shelf)] = storage.create_location(lab.session, custodian, storage.LocationInput(
                room=ROOM, unit=place.unit, shelf=place.shelf, conditions_zh=place.conditions_zh,
                conditions_en=place.conditions_en, temp_min=place.low, temp_max=place.high, capacity=place.capacity,
            ), at=moment)
        retention.create_rule(lab.session, custodian, client_name="江城化工", days=90,
                              note="委托合同约定：报告发出后留样 90 天 / kept 90 days after the report, by contract")
        retention.create_rule(lab.session, custodian, matrix="soil", days=180,
                              note="土壤样品留样 180 天（风干样品可长期保存）/ soil samples are kept 180 days")
    return made


def _hno3(lab: DemoActs) -> ReagentLot:
    """Nitric acid for digestion, received five weeks ago and opened by the analyst."""
    found = lab.session.scalars(select(ReagentLot).where(ReagentLot.name == HNO3.name,
                                                         ReagentLot.lot_no == HNO3.lot_no)).first()
    if found is not None:
        return found
    reagent = rm_service.register_reagent(lab.session, lab.user("custodian"), rm_service.ReagentFacts(
        name=HNO3.name, grade=HNO3.grade, supplier=HNO3.supplier, lot_no=HNO3.lot_no,
        expires_on=lab.today + timedelta(days=540), received_at=lab.at(35, 10, 0), quantity=D("500"),
        quantity_unit="mL", opened_shelf_life_days=None, storage_conditions="阴凉通风，与还原剂、碱类分开存放",
    ))
    rm_service.open_item(lab.session, lab.user("analyst"), reagent, lab.at(20, 9, 0))
    return reagent


# ---------------------------------------------------------------- the extra field rounds


def _extra_rounds(lab: DemoActs) -> None:
    from app.samples import demo as field_demo

    _enter_rounds(lab, tuple(field_demo.Visit(site, days_ago, hour, minute) for site, days_ago, hour, minute in
                             (OLD_VISIT, METALS_VISIT)))


def _enter_rounds(lab: DemoActs, visits: tuple[Any, ...]) -> list[Sample]:
    """Rounds of the demo sampler entered as the week's are (app.samples.demo): scheduled,
    dispatched the afternoon before, sampled and signed at the visit's time."""
    from app.samples import demo as field_demo

    session = lab.session
    sites = {s.code: s for s in session.scalars(select(Site).where(Site.code.in_({v.site for v in visits})))}
    tasks = field_demo._schedule(session, DemoClock(plans), visits, sites, lab.user("technical"), lab.user("sampler"))
    rules = {r.parameter: r for r in session.scalars(select(PreservationRule).where(
        PreservationRule.parameter.in_(field_demo.FIELD_TESTS), PreservationRule.method == ""))}
    taken: list[Sample] = []
    for visit, task in tasks.items():
        samples = field_demo._dispatch(session, lab.user("custodian"), task, the_day_before=True)
        start = field_demo._local(session, task.scheduled_on, visit.hour, visit.minute)
        version = version_at(session, task.site_id, start)
        if version is None:
            raise RuntimeError(f"demo site {visit.site} had no version at {start}")
        field_demo._sample_round(field_demo._Round(session, lab.user("sampler"), lab.store, lab.password, visit,
                                                   SITE_BY_CODE[visit.site], version, start, rules), samples)
        taken += samples
    return taken


def _fresh_cooler(lab: DemoActs) -> None:
    """This morning's rounds at three sections, sampled three to two hours before the demo was
    loaded, in one cooler with the driver and just at the lab door: every clock has time left, so
    the demo user can receive it as it is."""
    from app.samples import demo as field_demo

    session = lab.session
    tz = lab_calendar(session).tz
    visits = []
    for n, site in enumerate(FRESH_SITES):
        start = (utcnow() - timedelta(minutes=180 - 30 * n)).astimezone(tz)
        visits.append(field_demo.Visit(site, (lab.today - start.date()).days, start.hour, start.minute))
    samples = _enter_rounds(lab, tuple(visits))
    sampler = lab.user("sampler")
    barcodes = [c.barcode for cs in registration.containers_of(session, [s.id for s in samples]).values() for c in cs]
    packed = utcnow() - timedelta(minutes=100)
    handed = packed + timedelta(minutes=10)
    with lab.then(packed):
        cooler = shipments.create_shipment(session, sampler, at=packed,
                                           note=f"交{DRIVER}带回，已到实验室门口 / with the driver, at the lab door")
        shipments.pack(session, sampler, cooler, barcodes)
        shipments.seal_shipment(session, sampler, cooler, "F-300117")
    with lab.then(handed):
        shipments.hand_over_shipment(session, sampler, cooler, taker_place=DRIVER, occurred_at=handed,
                                     cooler_temp_c=D("3.6"), seal_intact=True,
                                     note="冰袋 4 个 / 4 ice packs")


# ---------------------------------------------------------------- a day's samples to the lab


@dataclass
class _DaySamples:
    day: Day
    samples: list[Sample]
    sites: dict[int, str]  # sample id → site code
    containers: dict[int, list[Container]]

    def barcodes(self) -> list[str]:
        return [c.barcode for s in self.samples for c in self.containers[s.id]]

    def find(self, site: str, kind: str = SampleKind.ROUTINE.value) -> Sample:
        return next(s for s in self.samples if self.sites[s.id] == site and s.kind == kind)


def _day_samples(lab: DemoActs, day: Day) -> _DaySamples:
    session = lab.session
    tasks = list(session.scalars(select(SamplingTask).where(
        SamplingTask.sampler_id == lab.user("sampler").id, SamplingTask.plan_id.is_(None),
        SamplingTask.scheduled_on == lab.today - timedelta(days=day.days_ago)).order_by(SamplingTask.id)))
    samples = list(session.scalars(select(Sample).where(Sample.task_id.in_([t.id for t in tasks]))
                                   .order_by(Sample.collected_at, Sample.sample_no)))
    codes = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_({s.site_id for s in samples}))).all())
    return _DaySamples(day, samples, {s.id: codes[s.site_id] for s in samples},
                       registration.containers_of(session, [s.id for s in samples]))


def _send(lab: DemoActs, found: _DaySamples, rng: random.Random) -> tuple[Shipment | None, str]:
    """The sampler packs the day's containers into a sealed cooler and hands it over (to the
    driver or a courier) in one act; returns the cooler and who brings it to the lab."""
    day = found.day
    sampler = lab.user("sampler")
    if day.route == "unrecorded":
        return None, DRIVER
    session = lab.session
    packed_at = lab.at(day.days_ago, *day.handover) - timedelta(minutes=12)
    seal = f"F-{rng.randint(100000, 999999)}"
    note = {"in_transit": f"交{DRIVER}带回实验室 / with the driver Wang Jianjun",
            "courier": "同城急送至实验室 / same-day courier to the lab"}.get(day.route, "")
    with lab.then(packed_at):
        cooler = shipments.create_shipment(session, sampler, note=note, at=packed_at)
        shipments.pack(session, sampler, cooler, found.barcodes())
        shipments.seal_shipment(session, sampler, cooler, seal)
    handed = lab.at(day.days_ago, *day.handover)
    taker = COURIER if day.route == "courier" else DRIVER
    temp = D(f"{rng.uniform(3.0, 5.0):.1f}")
    with lab.then(handed):
        shipments.hand_over_shipment(session, sampler, cooler, taker_place=taker, place="", occurred_at=handed,
                                     cooler_temp_c=temp, seal_intact=True,
                                     note="冰袋 4 个，样品瓶直立、间隙填充 / 4 ice packs, bottles upright and padded")
    return cooler, (f"{COURIER}（骑手送达）" if day.route == "courier" else DRIVER)


def _check_of(lab: DemoActs, found: _DaySamples, sample: Sample, arrival: Decimal,
              rng: random.Random) -> receipt.CheckInput:
    day = found.day
    groups = {c.group_code for c in found.containers[sample.id]}
    strips = [f"{name} 瓶 pH {rng.choice(('1', '1', '2'))}" for group, name in (("h2so4", "H2SO4"), ("hno3", "HNO3"))
              if group in groups]
    temp = arrival + D(rng.randint(-3, 3)) / 10
    site = found.sites[sample.id]
    ok = dict(arrival_temp=f"{temp}", preservation_ok=True, preservation_note="pH 试纸：" + "，".join(strips),
              container_intact=True, volume_sufficient=True, label_legible=True)
    if day.warm:
        return receipt.CheckInput(
            decision="reject", **{**ok, "preservation_ok": False,
                                  "preservation_note": f"到样温度 {temp} °C，超出 0–5 °C 冷藏要求"},
            reject_reason=(f"运输箱冰袋失效，到样温度 {temp} °C，超出 0–5 °C 冷藏要求，样品不能代表采样时的状态，拒收；"
                           "已通知技术负责人。/ The ice packs failed: the samples arrived at "
                           f"{temp} °C, above 0–5 °C; rejected."))
    if (day.days_ago, site, sample.kind) == CONDITIONAL:
        when = lab.at(day.days_ago, *day.arrival) + timedelta(minutes=14)  # type: ignore[misc]
        local = when.astimezone(lab_calendar(lab.session).tz)
        return receipt.CheckInput(
            decision="accept_with_conditions",
            **{**ok, "preservation_ok": False,
               "preservation_note": "H2SO4 瓶 pH 试纸读数 3；接收时补加 H2SO4（1+1）1.0 mL 至 pH ≤ 2"},
            deviation=("H2SO4 保存瓶到样时 pH 3（现场加酸不足），接收时补加硫酸至 pH ≤ 2；COD、NH3-N、TP、TN 结果"
                       "须注明此偏离。/ The H2SO4 bottle arrived at pH 3 (too little acid in the field) and was "
                       "acidified to pH ≤ 2 at receipt; COD, NH3-N, TP and TN results carry this note."),
            consent_by="李静（质量负责人）/ Li Jing, quality manager",
            consent_ref=f"电话确认 {local:%Y-%m-%d %H:%M}；偏离记录 QD-{local:%y}-047")
    if (day.days_ago, site, sample.kind) == REJECTED:
        return receipt.CheckInput(
            decision="reject", **{**ok, "container_intact": False, "volume_sufficient": False},
            reject_reason=("CODMn 样品瓶（500 mL 棕色玻璃瓶）瓶身裂纹，到样时已渗漏约一半，样品量不足且可能受污染，"
                           "拒收；已通知采样员张伟。/ The CODMn bottle (500 mL amber glass) is cracked and half "
                           "of it leaked: too little sample, possibly contaminated; rejected."))
    return receipt.CheckInput(decision="accept", **ok)


def _receive(lab: DemoActs, found: _DaySamples, cooler: Shipment | None, deliverer: str, rng: random.Random) -> None:
    """The custodian opens the delivery, scans every container, checks each sample, decides and signs."""
    day = found.day
    session, custodian = lab.session, lab.user("custodian")
    arrived = lab.at(day.days_ago, *day.arrival)  # type: ignore[misc]
    arrival = D(f"{rng.uniform(3.2, 4.8):.1f}") if not day.warm else D(f"{rng.uniform(14.0, 15.5):.1f}")
    opened = arrived + timedelta(minutes=3)
    note = ""
    if day.route == "unrecorded":
        note = "采样员未记录与司机的交接，司机直接送达 / the sampler did not record handing the bottles to the driver"
    elif day.warm:
        note = "到样时冰袋已融化 / the ice packs had melted"
    with lab.then(opened):
        delivery = receipt.open_delivery(session, custodian, receipt.DeliveryInput(
            code=cooler.code if cooler is not None else _task_code(lab, found), delivered_by_name=deliverer,
            arrived_at=arrived, cooler_temp=f"{arrival}", seal_no=cooler.seal_no if cooler is not None else "",
            seal_intact=True if cooler is not None else None, note=note))
    scanned = opened + timedelta(minutes=1)
    for n, barcode in enumerate(found.barcodes()):
        moment = scanned + timedelta(seconds=20 * n)
        with lab.then(moment):
            receipt.scan_container(session, custodian, delivery, barcode, at=moment)
    checked = scanned + timedelta(minutes=8)
    for n, sample in enumerate(found.samples):
        with lab.then(checked + timedelta(minutes=2 * n)):
            receipt.record_check(session, custodian, delivery, sample.sample_no,
                                 _check_of(lab, found, sample, arrival, rng))
    signed = checked + timedelta(minutes=2 * len(found.samples) + 4)
    with lab.then(signed):  # a rejected sample is kept from its rejection (the receipt starts its retention)
        receipt.sign_delivery(session, custodian, delivery, lab.password)


def _task_code(lab: DemoActs, found: _DaySamples) -> str:
    task = lab.session.get(SamplingTask, found.samples[0].task_id)
    return task.code


def _store(lab: DemoActs, found: _DaySamples, places: dict[tuple[str, str], StorageLocation]) -> None:
    """The custodian scans the accepted bottles into the fridges and the cabinet, a shelf at a time."""
    day = found.day
    moment = lab.at(day.days_ago, *day.arrival) + timedelta(minutes=40)  # type: ignore[misc]
    accepted = [s for s in found.samples if s.state != "rejected"]
    by_place: dict[tuple[str, str], list[str]] = {}
    for sample in accepted:
        for container in found.containers[sample.id]:
            if container.group_code in DARK_GROUPS:
                place = (FRIDGE_2, "A")
            elif container.group_code in ROOM_GROUPS:
                place = (CABINET, "")
            else:
                place = (FRIDGE_1, day.shelf)
            by_place.setdefault(place, []).append(container.barcode)
    for n, (place, barcodes) in enumerate(by_place.items()):
        at = moment + timedelta(minutes=3 * n)
        with lab.then(at):
            storage.store(lab.session, lab.user("custodian"), places[place].code, barcodes, at=at)


def _day(lab: DemoActs, day: Day, places: dict[tuple[str, str], StorageLocation]) -> _DaySamples:
    found = _day_samples(lab, day)
    if not found.samples:
        raise RuntimeError(f"the demo has no samples {day.days_ago} days ago")
    rng = random.Random(f"lab-demo|{lab.today - timedelta(days=day.days_ago)}")
    cooler, deliverer = _send(lab, found, rng)
    if day.arrival is None:
        return found
    _receive(lab, found, cooler, deliverer, rng)
    for sample in found.samples:
        lab.session.refresh(sample)
    _store(lab, found, places)
    return found


# ---------------------------------------------------------------- preparation


def _bottle(found: _DaySamples, site: str, group: str) -> Container:
    sample = found.find(site)
    return next(c for c in found.containers[sample.id] if c.group_code == group)


def _digestion(lab: DemoActs, days: dict[int, _DaySamples], hno3: ReagentLot) -> PrepBatch:
    """Three samples' metals digested three days ago with a blank and a spike; signed."""
    session, analyst = lab.session, lab.user("analyst")
    standard = session.scalars(select(StandardSolution).where(StandardSolution.name == METALS_STANDARD)).one()
    opened = lab.at(3, 8, 40)
    with lab.then(opened):
        batch = preparation.open_batch(session, analyst, PrepKind.DIGESTION, DIGESTION_METHOD, METALS, at=opened,
                                       note="电热板消解，硝酸体系：取样 50.0 mL，加 HNO3 5.0 mL，消解后定容至 50.0 mL。"
                                            " / Hot-plate nitric acid digestion, 50.0 mL to 50.0 mL.")
    moment = opened + timedelta(minutes=5)
    taken = []
    for days_ago, site in (*DIGESTED, SPIKED):
        bottle = _bottle(days[days_ago], site, "hno3")
        with lab.then(moment):
            taken.append(aliquots.make_aliquot(session, analyst, bottle.barcode, "50.0", "mL", at=moment,
                                               note="消解用 / for digestion"))
        moment += timedelta(minutes=3)
    for aliquot in taken[:-1]:
        with lab.then(moment):
            preparation.add_sample(session, analyst, batch, aliquot.barcode, final_volume_ml="50.0", at=moment)
        moment += timedelta(minutes=2)
    with lab.then(moment):
        preparation.add_spike(session, analyst, batch, taken[-1].barcode, standard.barcode, "0.50", "mL",
                              final_volume_ml="50.0", at=moment)
        moment += timedelta(minutes=3)
    with lab.then(moment):
        preparation.add_blank(session, analyst, batch, final_volume_ml="50.0", at=moment)
        moment += timedelta(minutes=2)
    with lab.then(moment):
        preparation.add_material(session, analyst, batch, hno3.barcode, "25", "mL",
                                 purpose="消解用硝酸，每份 5.0 mL / nitric acid, 5.0 mL a position", at=moment)
    with lab.then(lab.at(3, 15, 20)):
        preparation.close_batch(session, analyst, batch, lab.password)
    return batch


def _late_distillation(lab: DemoActs, days: dict[int, _DaySamples]) -> PrepBatch:
    """Yesterday: NH3-N of a sample past its 24 h, allowed by the quality manager; the batch is open."""
    session, analyst = lab.session, lab.user("analyst")
    days_ago, site = LATE
    sample = days[days_ago].find(site)
    allowed = lab.at(1, 13, 40)
    with lab.then(allowed):
        holding.record_holding_deviation(
            session, lab.user("quality"), sample, ["NH3-N"], "preparation",
            "氨氮蒸馏装置冷凝管破裂，12 小时后修复，预蒸馏超出 24 h 保存期；样品已加 H2SO4 至 pH ≤ 2 并 0–4 °C 冷藏，"
            "结果报告注明。/ The distiller's condenser broke and was repaired after 12 h: distillation is past the "
            "24 h holding time; the sample was acidified to pH ≤ 2 and kept at 0–4 °C; the report says so.",
            at=allowed)
    opened = lab.at(1, 14, 0)
    with lab.then(opened):
        batch = preparation.open_batch(session, analyst, PrepKind.DISTILLATION, DISTILLATION_METHOD, ["NH3-N"],
                                       at=opened, note="预蒸馏：取样 250 mL，硼酸吸收液 50 mL / 250 mL distilled")
    taken_at = opened + timedelta(minutes=5)
    bottle = _bottle(days[days_ago], site, "h2so4")
    with lab.then(taken_at):
        aliquot = aliquots.make_aliquot(session, analyst, bottle.barcode, "250", "mL", at=taken_at,
                                        note="氨氮预蒸馏 / NH3-N distillation")
    added = taken_at + timedelta(minutes=5)
    with lab.then(added):
        preparation.add_sample(session, analyst, batch, aliquot.barcode, final_volume_ml="250", at=added)
    return batch


# ---------------------------------------------------------------- disposal


def _dispose_old(lab: DemoActs, old: _DaySamples) -> None:
    """The cooler rejected five weeks ago: retention over, disposal requested two days ago."""
    moment = lab.at(2, 10, 30)
    with lab.then(moment):
        disposal.request_disposal(
            lab.session, lab.user("custodian"), [s.sample_no for s in old.samples],
            "拒收样品自拒收起留存 30 天已满，申请处置：酸化水样中和后排入实验室废水处理系统。/ Rejected samples, "
            "kept 30 days from their rejection: neutralise the acidified water and drain it to the lab's treatment.",
            at=moment)


# ---------------------------------------------------------------- loading


def has_lab_demo(session: Session) -> bool:
    return session.scalars(select(StorageLocation.id).where(
        StorageLocation.room == ROOM, StorageLocation.unit == FRIDGE_1, StorageLocation.shelf == "A")
        .limit(1)).first() is not None


def load_lab_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """The week's samples from the field to the bench (after app.samples.demo.load_sampling_demo),
    unless the sample room is set up already."""
    from app.demo import DEMO_PASSWORD

    if has_lab_demo(session):
        return
    lab = DemoActs(session, users, store, DEMO_PASSWORD, lab_calendar(session).today(), _clock())
    places = _set_up_storage(lab)
    hno3 = _hno3(lab)
    _extra_rounds(lab)
    days = {day.days_ago: _day(lab, day, places) for day in DAYS}
    _digestion(lab, days, hno3)
    _late_distillation(lab, days)
    _dispose_old(lab, days[OLD_VISIT[1]])
    _fresh_cooler(lab)
