"""Demo monitoring sites and plans of 江城市 (Jiangcheng, a fictional city placed at the
Yangtze/Han confluence, 30.58 N 114.28 E), entered through the real services as the demo users
would on the pages: the technical manager proposes each site, the quality manager approves it
with the setting department's reference (文号), and the technical manager draws up the plans.

Twelve surface-water sections (the Yangtze where it enters, crosses and leaves the city, the Han
River above and at the confluence, the Fu, She and Ju tributaries, and three lakes) and three
ambient-air stations. Positions are plausible WGS-84 points on the water, not surveyed ones.
The history shows what the site pages are for: one section moved 80 m by an approved change (two
versions), one change request awaiting the quality manager, one section suspended.

Idempotent: a site whose code exists is left alone with its story, and so is a plan whose title
exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import ModuleType

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.labtime import SESSION_KEY, LabCalendar, lab_calendar
from app.people.models import User
from app.sites import plans, service
from app.sites.models import ChangeKind, Frequency, MonitoringPlan, Site, SiteKind, SiteStatus, WaterBody
from app.sites.service import SiteProposal

D = Decimal
DEPARTMENT = "江城市生态环境局"
WATER_BASICS = ("WT", "pH", "DO", "EC", "COD", "CODMn", "NH3-N", "TP", "TN")
METALS = ("Cu", "Zn", "Pb", "Cd", "Hg")
AIR = ("PM10", "PM2.5", "SO2", "NO2")
MUDDY = "muddy_river"  # the Yangtze's colour in the demo photos
# metres per degree of latitude on the mean sphere (app.sites.geo.EARTH_RADIUS_M × π / 180)
METRES_PER_DEGREE = D("111195.08")


@dataclass(frozen=True)
class DemoSite:
    code: str
    name_zh: str
    name_en: str
    kind: SiteKind
    latitude: str  # WGS-84, 7 decimals
    longitude: str
    basin: str
    district: str
    water_body: WaterBody = WaterBody.NONE
    parameters: tuple[str, ...] = WATER_BASICS
    frequency: Frequency = Frequency.MONTHLY
    water: str = "river"  # the colour of the demo photos: river, muddy_river, lake


SITES = (
    DemoSite("JC-W01", "长江纱帽断面", "Yangtze, Shamao section (inflow)", SiteKind.SURFACE_WATER,
             "30.3267412", "114.0931876", "长江", "汉南区", WaterBody.RIVER, WATER_BASICS + METALS, water=MUDDY),
    DemoSite("JC-W02", "长江杨泗港断面", "Yangtze, Yangsigang section", SiteKind.SURFACE_WATER,
             "30.5198263", "114.2661548", "长江", "汉阳区", WaterBody.RIVER, water=MUDDY),
    DemoSite("JC-W03", "长江江城关断面", "Yangtze, Jiangcheng Customs section", SiteKind.SURFACE_WATER,
             "30.5736152", "114.3049827", "长江", "江岸区", WaterBody.RIVER, water=MUDDY),
    DemoSite("JC-W04", "长江白浒山断面", "Yangtze, Baihushan section (outflow)", SiteKind.SURFACE_WATER,
             "30.6147633", "114.6078214", "长江", "新洲区", WaterBody.RIVER, WATER_BASICS + METALS, water=MUDDY),
    DemoSite("JC-W05", "汉江宗关断面", "Han River, Zongguan section", SiteKind.SURFACE_WATER,
             "30.5712418", "114.2262735", "汉江", "硚口区", WaterBody.RIVER),
    DemoSite("JC-W06", "汉江龙王庙断面", "Han River, Longwangmiao section (confluence)", SiteKind.SURFACE_WATER,
             "30.5619347", "114.2793261", "汉江", "江汉区", WaterBody.RIVER, WATER_BASICS + METALS),
    DemoSite("JC-W07", "府河谌家矶断面", "Fu River, Chenjiaji section", SiteKind.SURFACE_WATER,
             "30.6612275", "114.3394816", "府河", "江岸区", WaterBody.RIVER),
    DemoSite("JC-W08", "滠水河口断面", "She River, mouth section", SiteKind.SURFACE_WATER,
             "30.6826194", "114.4150372", "滠水", "黄陂区", WaterBody.RIVER),
    DemoSite("JC-W09", "举水新洲断面", "Ju River, Xinzhou section", SiteKind.SURFACE_WATER,
             "30.8421067", "114.8014529", "举水", "新洲区", WaterBody.RIVER),
    DemoSite("JC-W10", "东湖湖心断面", "East Lake, centre", SiteKind.SURFACE_WATER,
             "30.5590318", "114.3879624", "东湖", "武昌区", WaterBody.LAKE, water="lake"),
    DemoSite("JC-W11", "汤逊湖湖心断面", "Tangxun Lake, centre", SiteKind.SURFACE_WATER,
             "30.4150726", "114.3650183", "汤逊湖", "江夏区", WaterBody.LAKE, water="lake"),
    DemoSite("JC-W12", "梁子湖湖心断面", "Liangzi Lake, centre", SiteKind.SURFACE_WATER,
             "30.2465371", "114.5509842", "梁子湖", "江夏区", WaterBody.LAKE, water="lake"),
    DemoSite("JC-A01", "汉口花桥空气站", "Hankou Huaqiao air station", SiteKind.AMBIENT_AIR,
             "30.6163208", "114.2961475", "", "江岸区", parameters=AIR),
    DemoSite("JC-A02", "武昌紫阳空气站", "Wuchang Ziyang air station", SiteKind.AMBIENT_AIR,
             "30.5398461", "114.3029537", "", "武昌区", parameters=AIR),
    DemoSite("JC-A03", "东湖梨园空气站", "East Lake Liyuan air station", SiteKind.AMBIENT_AIR,
             "30.5896714", "114.3712386", "", "武昌区", parameters=AIR),
)
SITE_BY_CODE = {site.code: site for site in SITES}

# The stories told by the history (days before today).
CREATED_DAYS_AGO = 420
MOVED = "JC-W05"
MOVE_METRES = 80
MOVE_BEARING = 285  # west-north-west: up the Han
MOVED_DAYS_AGO = 70
MOVE_REASON = ("宗关水厂取水口改造，原断面处施工围堰影响水流，经现场踏勘断面上移 80 m 至围堰上游。"
               " / Intake works at the Zongguan waterworks: the cofferdam disturbs the flow at the old point; "
               "the section moves 80 m upstream.")
PENDING = "JC-W07"
PENDING_ADDS = ("Cu", "Zn", "Pb", "Cd")
PENDING_REASON = ("府河上游临空港经济区电镀园区投产，拟在谌家矶断面增测铜、锌、铅、镉。"
                  " / An electroplating park upstream has started production: add Cu, Zn, Pb and Cd.")
SUSPENDED = "JC-W09"
SUSPENDED_DAYS_AGO = 21
SUSPEND_REASON = ("举水新洲段河道综合整治施工，断面处围堰断流，无法安全采样，暂停监测至工程完工。"
                  " / River works on the Ju at Xinzhou dam the section: no safe sampling until they end.")


def reference(year: int, number: int) -> str:
    """The approving department's reference (文号), as the bureau writes it."""
    return f"江环监〔{year}〕{number}号"


def offset(latitude: Decimal, longitude: Decimal, metres: float, bearing_deg: float) -> tuple[Decimal, Decimal]:
    """The point `metres` away on `bearing_deg` (0 north, 90 east), to 7 decimals (about 1 cm)."""
    bearing = math.radians(bearing_deg)
    north = metres * math.cos(bearing) / float(METRES_PER_DEGREE)
    east = metres * math.sin(bearing) / (float(METRES_PER_DEGREE) * math.cos(math.radians(float(latitude))))
    step = D("0.0000001")
    return (latitude + D(f"{north:.7f}")).quantize(step), (longitude + D(f"{east:.7f}")).quantize(step)


def moved_position(site: DemoSite, metres: int = MOVE_METRES) -> tuple[Decimal, Decimal]:
    """`metres` upstream of the registered position (the Han runs west to east at Zongguan)."""
    return offset(D(site.latitude), D(site.longitude), metres, MOVE_BEARING)


def lab_moment(session: Session, days_ago: int, hour: int, minute: int = 0) -> datetime:
    calendar = lab_calendar(session)
    return datetime.combine(calendar.today() - timedelta(days=days_ago), time(hour, minute), tzinfo=calendar.tz)


def quarter_of(day: date) -> tuple[date, date]:
    """The first and last day of `day`'s quarter."""
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = date(day.year, first_month, 1)
    end = (date(day.year + 1, 1, 1) if first_month == 10 else date(day.year, first_month + 3, 1)) - timedelta(days=1)
    return start, end


def existing_codes(session: Session) -> set[str]:
    return set(session.scalars(select(Site.code).where(Site.code.in_([s.code for s in SITES]))))


def existing_plan_titles(session: Session, titles: list[str]) -> set[str]:
    return set(session.scalars(select(MonitoringPlan.title).where(MonitoringPlan.title.in_(titles))))


@dataclass(frozen=True)
class _DayCalendar(LabCalendar):
    """The lab's calendar on a fixed day: "today" for a service that checks dates against it."""

    day: date = date.min

    def today(self) -> date:
        return self.day


class DemoClock:
    """The time of the act for services that read the clock themselves (`utcnow()` in their
    module, the session's lab calendar for "today") instead of taking it as an argument: the
    demo's history happened in the past, so while it is entered those services see the moment it
    happened. Their audit events keep the real time of entry (app.core.audit reads its own
    clock), and permissions and roles are checked now: the trail says when the demo was loaded,
    the records say when the acts happened."""

    def __init__(self, *modules: ModuleType) -> None:
        self.modules = modules

    @contextmanager
    def at(self, moment: datetime, session: Session | None = None) -> Iterator[None]:
        instant = moment.astimezone(UTC)
        saved = [(module, module.utcnow) for module in self.modules if hasattr(module, "utcnow")]
        calendar = lab_calendar(session) if session is not None else None
        had_calendar = session is not None and SESSION_KEY in session.info
        try:
            for module, _ in saved:
                module.utcnow = lambda: instant  # type: ignore[attr-defined]
            if session is not None and calendar is not None:
                session.info[SESSION_KEY] = _DayCalendar(tz=calendar.tz, due_soon=calendar.due_soon,
                                                         day=calendar.local_date(instant))
            yield
        finally:
            for module, original in saved:
                module.utcnow = original  # type: ignore[attr-defined]
            if session is not None:
                if had_calendar:
                    session.info[SESSION_KEY] = calendar
                else:
                    session.info.pop(SESSION_KEY, None)


def proposal_of(demo: DemoSite, *, latitude: Decimal | None = None, longitude: Decimal | None = None,
                parameters: tuple[str, ...] | None = None) -> SiteProposal:
    return SiteProposal(
        name_zh=demo.name_zh, name_en=demo.name_en, kind=demo.kind.value,
        latitude=latitude if latitude is not None else D(demo.latitude),
        longitude=longitude if longitude is not None else D(demo.longitude),
        water_body=demo.water_body.value, basin=demo.basin, district=demo.district, department=DEPARTMENT,
        parameters=[(p, demo.frequency.value) for p in (parameters or demo.parameters)],
    )


def _create(session: Session, clock: DemoClock, demo: DemoSite, technical: User, quality: User) -> Site:
    """Proposed by the technical manager, approved five days later by the quality manager with the
    bureau's reference, in force from the decision."""
    air = demo.kind is SiteKind.AMBIENT_AIR
    with clock.at(lab_moment(session, CREATED_DAYS_AGO + 5, 10, 30)):
        request = service.propose_site(
            session, technical, code=demo.code, proposal=proposal_of(demo),
            reason=("按《江城市“十四五”生态环境监测网络建设方案》设置的环境空气质量手工监测点位。"
                    if air else "按《江城市“十四五”生态环境监测网络建设方案》设置的地表水监测断面。"),
        )
    decided = lab_moment(session, CREATED_DAYS_AGO, 15, 0)
    with clock.at(decided):
        service.decide_change(session, quality, request, approve=True,
                              decision_ref=reference(decided.year, 32 if air else 31),
                              note="同意按方案设置。/ Approved as planned.")
    return session.get(Site, request.site_id)


def _tell_the_story(session: Session, clock: DemoClock, demo: DemoSite, site: Site, technical: User,
                    quality: User) -> None:
    """The later history of the sites that have one: moved, suspended, a change awaiting decision."""
    if demo.code == MOVED:
        latitude, longitude = moved_position(demo)
        with clock.at(lab_moment(session, MOVED_DAYS_AGO + 6, 9, 20)):
            request = service.propose_change(session, technical, site, kind=ChangeKind.CHANGE,
                                             proposal=proposal_of(demo, latitude=latitude, longitude=longitude),
                                             reason=MOVE_REASON)
        decided = lab_moment(session, MOVED_DAYS_AGO, 16, 10)
        with clock.at(decided):
            service.decide_change(session, quality, request, approve=True, decision_ref=reference(decided.year, 58),
                                  note="经现场核实同意上移。/ Verified on site.")
    elif demo.code == SUSPENDED:
        with clock.at(lab_moment(session, SUSPENDED_DAYS_AGO + 2, 11, 0)):
            request = service.propose_change(session, technical, site, kind=ChangeKind.SUSPEND, proposal=None,
                                             reason=SUSPEND_REASON)
        decided = lab_moment(session, SUSPENDED_DAYS_AGO, 9, 0)
        with clock.at(decided):
            service.decide_change(session, quality, request, approve=True, decision_ref=reference(decided.year, 77),
                                  note="工程完工后申请恢复。/ Reactivate when the works end.")
    elif demo.code == PENDING:
        with clock.at(lab_moment(session, 2, 14, 40)):
            service.propose_change(session, technical, site, kind=ChangeKind.CHANGE,
                                   proposal=proposal_of(demo, parameters=demo.parameters + PENDING_ADDS),
                                   reason=PENDING_REASON)


def load_site_demo(session: Session, users: dict[str, User]) -> None:
    """Propose and approve the demo sites that are missing, with their later history, as the
    technical manager (proposes) and the quality manager (decides)."""
    technical, quality = users["technical"], users["quality"]
    clock = DemoClock(service)
    have = existing_codes(session)
    for demo in SITES:
        if demo.code in have:
            continue
        site = _create(session, clock, demo, technical, quality)
        _tell_the_story(session, clock, demo, site, technical, quality)


# ---------------------------------------------------------------- plans


def plan_titles(today: date) -> tuple[str, str]:
    """The titles of this quarter's plan and the next quarter's draft."""
    def title(day: date) -> str:
        return f"{day.year}年第{(day.month - 1) // 3 + 1}季度地表水与环境空气监测计划"

    _, end = quarter_of(today)
    return title(today), title(end + timedelta(days=1))


def _planned_days(today: date, start: date, end: date, count: int) -> list[date]:
    """`count` days spread over what is left of the quarter from three days ahead (the demo's
    own tasks fill today and the next two days), so the plan generates no task in the past."""
    first = max(start, today + timedelta(days=3))
    if first > end:
        first = max(start, min(today + timedelta(days=1), end))
    span = (end - first).days + 1
    return [first + timedelta(days=i * span // count) for i in range(count)]


def _plannable(session: Session) -> list[tuple[DemoSite, Site]]:
    sites = {s.code: s for s in session.scalars(select(Site).where(Site.code.in_([d.code for d in SITES])))}
    return [(demo, sites[demo.code]) for demo in SITES
            if demo.code in sites and sites[demo.code].status == SiteStatus.ACTIVE.value]


def _current_plan(session: Session, clock: DemoClock, title: str, technical: User, sampler: User) -> None:
    """This quarter's plan, drawn up and approved before the quarter began: each active site
    once in what is left of the quarter (a quarterly round of every parameter the site monitors)."""
    today = lab_calendar(session).today()
    start, end = quarter_of(today)
    sites = _plannable(session)
    days = _planned_days(today, start, end, len(sites))
    with clock.at(datetime.combine(start - timedelta(days=6), time(9, 30), tzinfo=lab_calendar(session).tz)):
        plan = plans.create_plan(session, technical, title=title, period_start=start, period_end=end,
                                 note="按《江城市生态环境监测方案》：各断面和空气站本季度全项监测一次，月度常规采样另行下达。")
        for (demo, site), day in zip(sites, days, strict=True):
            plans.add_plan_line(session, technical, plan, site=site, parameters=list(demo.parameters),
                                frequency=Frequency.QUARTERLY, day_in_period=(day - start).days + 1,
                                sampler=sampler)
    with clock.at(datetime.combine(start - timedelta(days=4), time(15, 0), tzinfo=lab_calendar(session).tz)):
        plans.approve_plan(session, technical, plan)


def _next_plan(session: Session, title: str, technical: User, sampler: User) -> None:
    """Next quarter's plan, still a draft: every active site monthly."""
    today = lab_calendar(session).today()
    start, end = quarter_of(quarter_of(today)[1] + timedelta(days=1))
    plan = plans.create_plan(session, technical, title=title, period_start=start, period_end=end,
                             note="草稿：待与市生态环境局核对断面后批准。")
    for i, (demo, site) in enumerate(_plannable(session)):
        day = 15 if demo.kind is SiteKind.AMBIENT_AIR else 8 + i
        plans.add_plan_line(session, technical, plan, site=site, parameters=[], frequency=Frequency.MONTHLY,
                            day_in_period=day, sampler=sampler)


def load_plan_demo(session: Session, users: dict[str, User]) -> None:
    """This quarter's plan (approved, its tasks generated) and next quarter's (a draft), unless a
    plan of the same title exists."""
    technical, sampler = users["technical"], users["sampler"]
    current, following = plan_titles(lab_calendar(session).today())
    have = existing_plan_titles(session, [current, following])
    if current not in have:
        _current_plan(session, DemoClock(plans), current, technical, sampler)
    if following not in have:
        _next_plan(session, following, technical, sampler)
