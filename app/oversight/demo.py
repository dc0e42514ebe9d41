"""Demo oversight (issue 10 item 7): automatic-station data, planted anomalies the engine finds,
the quality manager's dispositions, one interference record and one regulator's inspection,
entered through the real services as the demo users at the times of the acts (the
`DemoActs`/`DemoClock` pattern of app.samples.lab_demo: records carry the time of the act, the
audit trail the time of loading). After the reports demo, which it leaves as it is.

- A Saturday supplementary round (河长巡查补充监测) at three class II sections of the Yangtze and
  the Han (JC-W02, JC-W03, JC-W05), received the same day. Its NH3-N batch is run that afternoon:
  the analyst typed one absorbance for the three routine samples, so they carry one
  full-precision value (A03, confirmed by the quality manager). Its TP batch was measured that
  afternoon but typed in on Monday morning from the worksheet (A12 back-dated entry).
- The technical manager imported one CSV from the automatic stations at JC-W07 and JC-W08 (hourly
  NH3-N and TP over the demo's month and a half). The readings follow the manual results within a
  few per cent, except on the morning JC-W08 was sampled on ELEVATED_DAY: the station's NH3-N
  analyser read far high after a reagent change (A13, under investigation).
- The engine's scan as `lims anomalies scan` runs it (trigger "cli") two days ago after the
  import, keeping what it finds, planted and organic (the custody gap of the lab demo's
  unrecorded hand-over: A18). The quality manager dismisses one custody-gap alarm with the
  driver's statement, confirms the A03 alarm (referred: the values are void), puts the A13 alarm
  under investigation; the rest stay open (the e2e walk disposes of one).
- The analyst files that a district official phoned asking to "re-check and lower" the NH3-N
  result of JC-W07 before the monthly report; the lab refused. A call note (PNG drawn here) is
  attached; the quality manager acknowledges it and reports it to the discipline inspection
  group of the city's ecology and environment bureau.
- The inspector draws three issued reports of the demo period with a recorded seed, records an
  observation on one of the picks, and the quality manager responds.

None of it touches the samples of the reports awaiting review (BG2026-0008 … 0010): their review
checklists are as the reports demo left them. (The demo's readings are random: on some days of
loading the quarter's last digits trip the digit-preference screen, A05, over the analyst's NH3-N
work, those reports' samples included; the quality manager dismisses it with what was checked,
and their checklists list it as dismissed.) Deterministic (random.Random with a fixed seed; the
draw's seed is recorded). Idempotent: if the interference record of the demo official exists,
the oversight demo is there.
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

from app.analysis import demo as analysis_demo
from app.analysis import results, submission
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, PositionRole
from app.core.files import FileStore
from app.core.labtime import lab_calendar
from app.instruments.service import Upload
from app.oversight import anomalies, inspections, interference, stations
from app.oversight.models import (
    AlarmSample,
    AnomalyAlarm,
    ConfirmedAction,
    FindingSeverity,
    InspectionTarget,
    InterferenceChannel,
    InterferenceRecord,
    InterferenceRequest,
    LabResponse,
)
from app.oversight.rules.base import ScanWindow
from app.people.models import User
from app.reference_materials.models import StandardSolution
from app.samples import lab_demo
from app.samples.models import Sample, SampleKind
from app.sites.demo import DemoClock
from app.sites.models import Site

D = Decimal
SEED = "envirolims-oversight-demo"

# ---------------------------------------------------------------- what the demo plants

SATURDAY_SITES = (("JC-W02", 8, 30), ("JC-W03", 9, 40), ("JC-W05", 10, 50))  # site, lab time of the visit
SATURDAY_AFTER = 9  # the newest Saturday at least this many days ago with no round of the demo sampler
STATION_SITES = ("JC-W07", "JC-W08")
STATION_PARAMETERS = ("NH3-N", "TP")
STATION_FILE = "江城市水质自动站_小时数据.csv"
ELEVATED_SITE = "JC-W08"  # the morning its station's NH3-N read far high
STATION_FROM_DAYS = 45  # readings from this many days ago …
IMPORT_DAYS_AGO = 2  # … until the import, two days ago at 10:00
SCAN_AT = (2, 17, 30)  # days ago, hour, minute: the technical manager's `lims anomalies scan`

OFFICIAL = "钱立新"
OFFICIAL_POST = "副主任"
OFFICIAL_UNIT = "江城市江岸区河湖长制办公室"
INTERFERENCE_SITE = "JC-W07"
REPORTED_TO = "江城市生态环境局纪检监察组"

INSPECTION_SEED = "sjsj-2026-jc-demo-01"
INSPECTION_TITLE = "第四季度“双随机”抽查：监测报告 / Q4 random inspection: reports"


def _clock() -> DemoClock:
    from app.analysis import batches, curves, qc

    return DemoClock(results, submission, batches, curves, qc, stations, anomalies, interference, inspections)


@dataclass
class _Oversight:
    acts: lab_demo.DemoActs

    @property
    def session(self) -> Session:
        return self.acts.session

    def user(self, name: str) -> User:
        return self.acts.user(name)


def has_oversight_demo(session: Session) -> bool:
    return session.scalars(select(InterferenceRecord.id).where(InterferenceRecord.interferer_name == OFFICIAL)
                           .limit(1)).first() is not None


def load_oversight_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """Station data, planted anomalies, the scan, dispositions, the interference record and the
    inspection (after the reports demo), unless the demo official's record exists."""
    from app.demo import DEMO_PASSWORD

    if has_oversight_demo(session):
        return
    acts = lab_demo.DemoActs(session, users, store, DEMO_PASSWORD, lab_calendar(session).today(), _clock())
    demo = _Oversight(acts)
    _saturday_round(demo)
    _station_import(demo)
    _scan(demo)
    _dispositions(demo)
    _interference(demo)
    _inspection(demo)


# ---------------------------------------------------------------- the Saturday round (A03, A12)


def _saturday(demo: _Oversight) -> int:
    """Days ago of the newest Saturday at least SATURDAY_AFTER days back with no round."""
    today = demo.acts.today
    days_ago = SATURDAY_AFTER
    while True:
        day = today - timedelta(days=days_ago)
        if day.weekday() == 5 and not analysis_demo._has_tasks(demo.session, demo.user("sampler"), day):
            return days_ago
        days_ago += 1


def _solution_in_use(session: Session, prefix: str, moment: datetime) -> str:
    """The newest working solution named `prefix…`, prepared before `moment` and not expired then."""
    rows = session.execute(select(StandardSolution.barcode, StandardSolution.prepared_at, StandardSolution.expires_at)
                           .where(StandardSolution.name.startswith(prefix))
                           .order_by(StandardSolution.prepared_at.desc())).all()
    for barcode, prepared_at, expires_at in rows:
        if _aware(prepared_at) <= moment < _aware(expires_at):
            return barcode
    raise RuntimeError(f"the demo has no {prefix} in use at {moment}")


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _analysis_demo(demo: _Oversight, days_ago: int) -> analysis_demo._Demo:
    """The analysis demo's bench helpers over the solutions and QC samples in use that day."""
    acts = demo.acts
    bench = analysis_demo._Demo(acts.session, acts.users, acts.store, acts.password, acts.today,
                                analysis_demo._clock(), random.Random(SEED))
    moment = acts.at(days_ago, 13, 0)
    bench.solutions = [
        ("nh3n", days_ago, days_ago - 1, _solution_in_use(acts.session, "氨氮标准使用液 10.0 mg/L（", moment)),
        ("tp", days_ago, days_ago - 1, _solution_in_use(acts.session, "磷标准使用液 2.00 mg/L（", moment))]
    for certificate_no, _name, analyte, *_rest in analysis_demo.QC_SAMPLES:
        unit = analysis_demo._unit_of(bench, certificate_no, 0)
        bench.standards[f"qc:{analyte}"] = unit.barcode
    return bench


def _enter_saturday(demo: _Oversight, days_ago: int) -> analysis_demo._Round:
    """Sampled in the morning, brought in by the driver at noon, received at half past one."""
    from app.samples import demo as field_demo
    from app.samples import registration

    session, acts = demo.session, demo.acts
    lab = lab_demo.DemoActs(session, acts.users, acts.store, acts.password, acts.today, lab_demo._clock())
    visits = tuple(field_demo.Visit(site, days_ago, hour, minute) for site, hour, minute in SATURDAY_SITES)
    samples = lab_demo._enter_rounds(lab, visits)
    codes = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_({s.site_id for s in samples}))).all())
    found = lab_demo._DaySamples(lab_demo.Day(days_ago, "driver", (12, 10), (13, 30), ""), samples,
                                 {s.id: codes[s.site_id] for s in samples},
                                 registration.containers_of(session, [s.id for s in samples]))
    rng = random.Random(f"{SEED}|round|{days_ago}")
    cooler, deliverer = lab_demo._send(lab, found, rng)
    lab_demo._receive(lab, found, cooler, deliverer, rng)
    for sample in samples:
        session.refresh(sample)
    accepted = [s for s in samples if s.state != "rejected"]
    return analysis_demo._Round(days_ago, accepted, found.sites, acts.at(days_ago, 14, 0))


def _sample_of(session: Session, position: BatchPosition, positions: dict[int, BatchPosition]) -> int | None:
    if position.sample_id is not None:
        return position.sample_id
    if position.of_position_id is not None:
        return positions[position.of_position_id].sample_id
    return None


def _saturday_round(demo: _Oversight) -> None:
    days_ago = _saturday(demo)
    bench_demo = _analysis_demo(demo, days_ago)
    day = _enter_saturday(demo, days_ago)
    session = demo.session
    kinds = {s.id: s.kind for s in day.samples}
    # NH3-N: the three routine samples get one absorbance (the analyst copied the first line)
    samples = day.with_parameter(session, "NH3-N")
    bench = analysis_demo._curve_batch(bench_demo, "NH3-N", day, samples, demo.acts.at(days_ago, 14, 40))
    positions = analysis_demo._positions(session, bench.batch)
    by_id = {p.id: p for p in positions}
    routine = [p for p in positions if p.role == PositionRole.SAMPLE.value
               and kinds.get(p.sample_id) == SampleKind.ROUTINE.value]
    copied = bench.truth[routine[0].id]
    shift = {p.sample_id: copied - bench.truth[p.id] for p in routine}
    rng = random.Random(f"{SEED}|nh3n|{days_ago}")
    copied_reading = analysis_demo._absorbance(bench.curve, copied, rng)
    readings = []
    moment = bench.measured
    for p in positions:
        sample_id = _sample_of(session, p, by_id)
        if p in routine:
            reading = copied_reading
        else:  # the field duplicates, the QC duplicate and spikes of those sections follow the copy
            truth = bench.truth[p.id]
            if sample_id in shift and p.role != PositionRole.SAMPLE.value:
                truth += shift[sample_id]
            elif kinds.get(sample_id) == SampleKind.FIELD_DUPLICATE.value:
                site = day.sites[sample_id]
                twin = next(r for r in routine if day.sites[r.sample_id] == site)
                truth += shift[twin.sample_id]
            reading = analysis_demo._absorbance(bench.curve, truth, rng)
            if reading == copied_reading and kinds.get(sample_id) == SampleKind.FIELD_DUPLICATE.value:
                reading += D("0.002")  # the field duplicate was read, not copied
        readings.append(results.ReadingInput(position_id=p.id, parameter="NH3-N", reading=reading,
                                             measured_at=moment))
        moment += timedelta(seconds=90)
    with demo.acts.then(moment + timedelta(minutes=4)):
        results.record_results(session, demo.user("analyst"), bench.batch, readings)
    _submit(demo, bench.batch, moment + timedelta(minutes=25))
    # TP: measured that afternoon, typed in from the worksheet on Monday morning
    samples = day.with_parameter(session, "TP")
    bench = analysis_demo._curve_batch(bench_demo, "TP", day, samples, demo.acts.at(days_ago, 15, 50))
    rng = random.Random(f"{SEED}|tp|{days_ago}")
    readings = []
    moment = bench.measured
    for p in analysis_demo._positions(session, bench.batch):
        readings.append(results.ReadingInput(position_id=p.id, parameter="TP",
                                             reading=analysis_demo._absorbance(bench.curve, bench.truth[p.id], rng),
                                             measured_at=moment))
        moment += timedelta(seconds=90)
    monday = demo.acts.at(days_ago - 2, 9, 20)
    with demo.acts.then(monday):
        results.record_results(session, demo.user("analyst"), bench.batch, readings)
    _submit(demo, bench.batch, monday + timedelta(minutes=25))


def _submit(demo: _Oversight, batch: AnalysisBatch, at: datetime) -> None:
    """Signed under this demo's clock, so the anomaly scan on submission raises its alarms at
    the time of the signature."""
    with demo.acts.then(at):
        submission.submit_batch(demo.session, demo.user("analyst"), batch, demo.acts.password, at=at)


# ---------------------------------------------------------------- the automatic stations (A13)


def _manual(session: Session, site_code: str, parameter: str) -> list[tuple[datetime, Decimal]]:
    """The routine samples' current results at a site, by collection time."""
    rows = session.execute(
        select(Sample.collected_at, AnalysisResult.value, AnalysisResult.revision, AnalysisResult.id)
        .join(Sample, Sample.id == AnalysisResult.sample_id).join(Site, Site.id == Sample.site_id)
        .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
        .where(Site.code == site_code, AnalysisResult.parameter == parameter, Sample.kind == SampleKind.ROUTINE.value,
               BatchPosition.role == PositionRole.SAMPLE.value, Sample.collected_at.is_not(None))
        .order_by(Sample.collected_at, AnalysisResult.revision.desc(), AnalysisResult.id.desc())).all()
    latest: dict[datetime, Decimal] = {}
    for collected_at, value, _revision, _id in rows:
        latest.setdefault(_aware(collected_at), value)
    return sorted(latest.items())


def _level(points: list[tuple[datetime, Decimal]], moment: datetime, usual: Decimal) -> Decimal:
    """The river's level at `moment`: the manual results joined by straight lines."""
    if not points:
        return usual
    if moment <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= moment <= t1:
            share = D(str((moment - t0).total_seconds() / max((t1 - t0).total_seconds(), 1)))
            return v0 + (v1 - v0) * share
    return points[-1][1]


def _pending_report_samples() -> Any:
    from app.reports.models import Report, ReportSample

    return select(ReportSample.sample_id).join(Report, Report.id == ReportSample.report_id).where(
        Report.state.in_(("draft", "submitted", "checked", "reviewed")))


def _elevated_moment(session: Session) -> datetime | None:
    """When the newest routine JC-W08 sample outside the reports under way was collected."""
    moment = session.scalar(
        select(Sample.collected_at).join(Site, Site.id == Sample.site_id)
        .join(AnalysisResult, AnalysisResult.sample_id == Sample.id)
        .where(Site.code == ELEVATED_SITE, Sample.kind == SampleKind.ROUTINE.value, AnalysisResult.parameter == "NH3-N",
               Sample.id.not_in(_pending_report_samples()))
        .order_by(Sample.collected_at.desc()).limit(1))
    return _aware(moment) if moment is not None else None


USUAL = {("JC-W07", "NH3-N"): D("1.25"), ("JC-W07", "TP"): D("0.24"), ("JC-W08", "NH3-N"): D("0.55"),
         ("JC-W08", "TP"): D("0.14")}
# what else the stations measure (no laboratory result to compare with: the field meter reads
# WT/pH/DO/EC, and the client dropped CODMn and TN): site's usual level, unit, decimals, diurnal swing
MORE = {"WT": ({"JC-W07": "16.5", "JC-W08": "15.8"}, "℃", 1, "0.05"),
        "pH": ({"JC-W07": "7.62", "JC-W08": "7.85"}, "无量纲", 2, "0.01"),
        "DO": ({"JC-W07": "6.8", "JC-W08": "8.4"}, "mg/L", 2, "0.08"),
        "EC": ({"JC-W07": "468", "JC-W08": "322"}, "μS/cm", 0, "0.02"),
        "CODMn": ({"JC-W07": "5.2", "JC-W08": "3.4"}, "mg/L", 2, "0.03"),
        "TN": ({"JC-W07": "3.10", "JC-W08": "1.45"}, "mg/L", 3, "0.03")}
STATION_PARAMETERS = (*STATION_PARAMETERS, *MORE)


def station_csv(demo: _Oversight, until: datetime) -> tuple[bytes, datetime | None]:
    """The stations' hourly readings as their software exports them (GBK would do as well; UTF-8
    with BOM here), and the hour the JC-W08 NH3-N analyser read far high (None without a sample)."""
    session, tz = demo.session, lab_calendar(demo.session).tz
    first = demo.acts.at(STATION_FROM_DAYS, 0, 0)
    hours = int((until - first).total_seconds() // 3600)
    elevated_sample = _elevated_moment(session)
    elevated_hour = None
    lines = ["站点,项目,时间,数值,单位"]
    for site in STATION_SITES:
        for parameter in STATION_PARAMETERS:
            rng = random.Random(f"{SEED}|station|{site}|{parameter}")
            if parameter in MORE:
                lines += _more_lines(site, parameter, first, hours, rng, tz)
                continue
            points = _manual(session, site, parameter)
            for n in range(hours + 1):
                moment = first + timedelta(hours=n)
                local = moment.astimezone(tz)
                daily = D(str(1 + 0.04 * ((local.hour - 14) % 24 - 12) / 12))  # a little lower at night
                near = any(abs(moment - t) <= timedelta(hours=2) for t, _ in points)
                noise = D(f"{rng.uniform(0.97, 1.03) if near else rng.uniform(0.93, 1.07):.4f}")
                value = _level(points, moment, USUAL[(site, parameter)]) * (D(1) if near else daily) * noise
                if (site == ELEVATED_SITE and parameter == "NH3-N" and elevated_sample is not None
                        and abs(moment - elevated_sample) <= timedelta(minutes=90)):
                    value = value * D("2.6")  # after the reagent change: far high for three hours
                    elevated_hour = elevated_hour or moment
                lines.append(f"{site},{parameter},{local:%Y-%m-%d %H:%M},{value.quantize(D('0.001'))},mg/L")
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"), elevated_hour


def _more_lines(site: str, parameter: str, first: datetime, hours: int, rng: random.Random, tz) -> list[str]:  # noqa: ANN001
    """Hourly readings of a parameter no laboratory result is compared with: the usual level,
    a day-to-day drift, a swing over the day (warmest and most oxygen in the afternoon)."""
    usual, unit, decimals, swing = MORE[parameter]
    level, step = D(usual[site]), D(1).scaleb(-decimals)
    lines = []
    drift = D(1)
    for n in range(hours + 1):
        moment = first + timedelta(hours=n)
        local = moment.astimezone(tz)
        if local.hour == 0:
            drift = min(max(drift * D(f"{rng.uniform(0.985, 1.015):.4f}"), D("0.9")), D("1.1"))
        phase = D(str(math.cos((local.hour - 15) / 24 * 2 * math.pi)))
        value = level * drift * (1 + D(swing) * phase) * D(f"{rng.uniform(0.995, 1.005):.4f}")
        lines.append(f"{site},{parameter},{local:%Y-%m-%d %H:%M},{value.quantize(step)},{unit}")
    return lines


def _station_import(demo: _Oversight) -> None:
    moment = demo.acts.at(IMPORT_DAYS_AGO, 10, 0)
    content, _ = station_csv(demo, moment - timedelta(hours=1))
    with demo.acts.then(moment):
        stations.import_station_csv(demo.session, demo.user("technical"), STATION_FILE, content,
                                    store=demo.acts.store)


# ---------------------------------------------------------------- the scan and the dispositions


def _scan(demo: _Oversight) -> None:
    """What `lims anomalies scan` does (trigger "cli", no --since), run after the import."""
    moment = demo.acts.at(*SCAN_AT)
    with demo.acts.then(moment):
        anomalies.scan(demo.session, None, ScanWindow(until=moment.astimezone(lab_calendar(demo.session).tz)),
                       trigger="cli")


def _alarms(session: Session, code: str) -> list[AnomalyAlarm]:
    return list(session.scalars(select(AnomalyAlarm).where(AnomalyAlarm.rule_code == code)
                                .order_by(AnomalyAlarm.alarm_no)))


def _routine_alarm(session: Session, alarms: list[AnomalyAlarm]) -> AnomalyAlarm | None:
    """The first alarm of the list that touches a routine sample."""
    for alarm in alarms:
        kinds = session.scalars(select(Sample.kind).join(AlarmSample, AlarmSample.sample_id == Sample.id)
                                .where(AlarmSample.alarm_id == alarm.id)).all()
        if SampleKind.ROUTINE.value in kinds:
            return alarm
    return alarms[0] if alarms else None


def _dispositions(demo: _Oversight) -> None:
    session, quality = demo.session, demo.user("quality")
    gaps = _alarms(session, "A18")
    if gaps:
        with demo.acts.then(demo.acts.at(1, 9, 40)):
            anomalies.dismiss_alarm(
                session, quality, gaps[0],
                "已核实：采样车驾驶员王建军书面说明当日 10:40 从采样员张伟处接过样品箱并直接送达实验室，箱体封存完好、"
                "到样温度合格，仅漏记交接；已补充交接说明并提醒采样员现场登记交接。样品代表性不受影响。/ Checked: the "
                "driver Wang Jianjun stated in writing that he took the cooler from the sampler at 10:40 and brought "
                "it straight to the lab; cooler intact, arrival temperature in range, only the hand-over was not "
                "recorded. Statement filed, the sampler reminded to record hand-overs.")
    copies = _alarms(session, "A03")
    if copies:
        alarm = copies[0]
        with demo.acts.then(demo.acts.at(1, 10, 30)):
            anomalies.investigate_alarm(session, quality, alarm,
                                        "调取批次原始记录与分光光度计打印条 / pulling the batch's worksheet and "
                                        "the photometer's printout")
        with demo.acts.then(demo.acts.at(1, 15, 10)):
            anomalies.confirm_alarm(
                session, quality, alarm,
                "分光光度计打印条显示三个样品吸光度各不相同，工作单上三行为抄录同一行所致。三个样品已超过 24 h 保存期，"
                "不能重测：本批氨氮结果作废、不予报出；分析人员停止独立出具数据，由技术负责人组织再培训和复核。"
                "/ The photometer printout shows three different absorbances: the worksheet copied one line three "
                "times. The samples are past their 24 h holding time and cannot be rerun: the batch's NH3-N results "
                "are void and not reported; the analyst is referred to the technical manager for retraining.",
                [ConfirmedAction.REFERRED.value])
    for screen in _alarms(session, "A05"):  # not planted: the demo's random readings, by chance
        with demo.acts.then(demo.acts.at(1, 16, 20)):
            anomalies.dismiss_alarm(
                session, quality, screen,
                "已核查：本季度该分析员各批次的分光光度计打印条与工作单逐行比对，吸光度与录入一致，校准曲线和质控均合格。"
                "末位数字检验是筛查（p < 0.01，约百分之一的季度会偶然触发），未发现编造迹象。/ Checked: the quarter's "
                "worksheets compared line by line with the photometer printouts; absorbances as entered, curves and "
                "QC in order. The digit test is a screen (p < 0.01: about one quarter in a hundred by chance); no "
                "sign of invented numbers.")
    station = _routine_alarm(session, _alarms(session, "A13"))
    if station is not None:
        with demo.acts.then(demo.acts.at(1, 11, 15)):
            anomalies.investigate_alarm(
                session, quality, station,
                "已通知自动站运维单位核查氨氮分析仪当日的试剂更换、标液核查和零点/跨度记录；手工样品留样复核中。"
                "/ The station's operator is asked for the NH3-N analyser's reagent change, standard check and "
                "zero/span records of that day; the manual sample's retained bottle is being checked.")


# ---------------------------------------------------------------- the interference record


def call_note_png(lines: list[str]) -> bytes:
    """A photo-like scan of the analyst's handwritten-style call note (Pillow; the CJK face when
    the server has one, else the Latin lines only)."""
    from PIL import Image, ImageDraw

    from app.samples.demo_photos import _font

    width, height = 900, 60 + 44 * len(lines)
    image = Image.new("RGB", (width, height), (250, 248, 238))
    draw = ImageDraw.Draw(image)
    for y in range(58, height, 44):
        draw.line((30, y + 8, width - 30, y + 8), fill=(196, 210, 228), width=1)
    font, cjk = _font(24, True)
    y = 24
    for line in lines:
        text = line if cjk else line.split(" / ")[-1]
        if not cjk and not text.isascii():
            text = "".join(c for c in text if c.isascii())
        draw.text((40, y), text, fill=(40, 44, 60), font=font)
        y += 44
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _interference_sample(session: Session) -> Sample | None:
    """The JC-W07 routine sample with the highest NH3-N result not in a report under review."""
    pending = _pending_report_samples()
    rows = session.execute(
        select(Sample, AnalysisResult.value).join(AnalysisResult, AnalysisResult.sample_id == Sample.id)
        .join(Site, Site.id == Sample.site_id).join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
        .where(Site.code == INTERFERENCE_SITE, Sample.kind == SampleKind.ROUTINE.value,
               AnalysisResult.parameter == "NH3-N", BatchPosition.role == PositionRole.SAMPLE.value,
               Sample.id.not_in(pending))).all()
    best = max(rows, key=lambda row: D(row[1]), default=None)
    return best[0] if best else None


def _interference(demo: _Oversight) -> None:
    session, acts = demo.session, demo.acts
    sample = _interference_sample(session)
    tz = lab_calendar(session).tz
    collected = _aware(sample.collected_at).astimezone(tz) if sample is not None else acts.at(20, 9, 0)
    day = collected.date() + timedelta(days=3)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    called = datetime.combine(day, time(10, 20), tzinfo=tz)
    value = session.scalar(select(AnalysisResult.value).where(
        AnalysisResult.sample_id == sample.id, AnalysisResult.parameter == "NH3-N")
        .order_by(AnalysisResult.revision.desc())) if sample is not None else None
    shown = f"{D(value).quantize(D('0.01'))} mg/L" if value is not None else "—"
    sample_no = sample.sample_no if sample is not None else ""
    note = call_note_png([
        f"电话记录 / Call note   {called:%Y-%m-%d %H:%M}",
        f"来电：{OFFICIAL_UNIT} {OFFICIAL_POST} {OFFICIAL}（办公室座机）",
        f"事由：府河谌家矶断面 {sample_no} 氨氮 {shown}",
        "要求“复核一下，看能不能往下调一调”，月报前定下来",
        "答复：数据按原始记录出具，不能调整；如有异议请书面提出",
        "在场：杨洋（复核人，免提通话）    记录人：陈晨",
    ])
    form = interference.InterferenceInput(
        interferer_name=OFFICIAL, interferer_position=OFFICIAL_POST, interferer_organisation=OFFICIAL_UNIT,
        channel=InterferenceChannel.PHONE.value, request_kind=InterferenceRequest.ALTER_DATA.value,
        occurred_at=called,
        what_was_asked=(f"来电称府河谌家矶断面（{INTERFERENCE_SITE}）{collected:%m 月 %d 日}氨氮结果 {shown}"
                        "“偏高，影响本月考核”，要求实验室在月报报送前“复核一下，往下调一调”，并问能否按上月数据报。"
                        "/ Called about the "
                        f"NH3-N result {shown} of the Fu River, Chenjiaji section ({INTERFERENCE_SITE}) of "
                        f"{collected:%Y-%m-%d}: \"too high, it hurts this month's assessment\"; asked the lab to "
                        "\"re-check and lower it\" before the monthly report, or to report last month's figure."),
        lab_response=LabResponse.REFUSED.value,
        response_detail=("当场答复：结果依据原始记录和质控结果出具，实验室不能按要求调整数据；如对结果有异议，请以书面"
                         "形式向中心提出复测申请。随即报告质量负责人。/ Answered on the spot: results follow the raw "
                         "records and QC; the lab does not change data on request; a written request for a retest "
                         "can be made to the centre. Reported to the quality manager at once."),
        witnesses="杨洋（复核人，免提通话在场）/ Yang Yang, checker (present, speakerphone)",
        site_codes=(INTERFERENCE_SITE,), sample_nos=(sample_no,) if sample_no else ())
    analyst, quality = demo.user("analyst"), demo.user("quality")
    with acts.then(called + timedelta(minutes=40)):
        record = interference.file_interference(session, analyst, form, [Upload(io.BytesIO(note),
                                                                                "电话记录_call_note.png")])
    with acts.then(called + timedelta(hours=4)):
        interference.acknowledge(session, quality, record,
                                 "已阅，已向中心主任报告；请检测室对该样品原始记录封存备查。/ Read; reported to the "
                                 "centre's director; the sample's raw records are sealed for inspection.")
    reported_on = called.date() + timedelta(days=1)
    with acts.then(datetime.combine(reported_on, time(15, 30), tzinfo=tz)):
        interference.record_reported(session, quality, record, REPORTED_TO, reported_on,
                                     "以书面报告并附电话记录、样品原始记录复印件报送。/ Reported in writing with the "
                                     "call note and copies of the sample's raw records.")


# ---------------------------------------------------------------- the inspection


def inspection_period(today: date) -> tuple[date, date]:
    return today - timedelta(days=STATION_FROM_DAYS), today - timedelta(days=3)


def _inspection(demo: _Oversight) -> None:
    session, acts = demo.session, demo.acts
    period_from, period_to = inspection_period(acts.today)
    inspector, quality = demo.user("inspector"), demo.user("quality")
    with acts.then(acts.at(1, 9, 0)):
        inspection = inspections.draw_inspection(
            session, inspector, title=INSPECTION_TITLE, target=InspectionTarget.REPORTS.value,
            period_from=period_from, period_to=period_to, scope={}, size=3, seed=INSPECTION_SEED)
    picked = inspections.picked_ids(inspection)
    with acts.then(acts.at(1, 14, 30)):
        finding = inspections.record_finding(
            session, inspector, inspection, "report", picked[0], FindingSeverity.OBSERVATION.value,
            "报告与原始记录、质控记录一致，证据链完整；但样品接收记录中运输箱到样温度仅记录一次，建议在交接单上同时记录"
            "装箱温度，便于追溯。/ The report agrees with the raw and QC records and its evidence chain is complete; "
            "the receipt records the cooler temperature once only: record the packing temperature on the hand-over "
            "too, for traceability.")
    with acts.then(acts.at(1, 16, 40)):
        inspections.respond_to_finding(
            session, quality, finding,
            "接受。已修订《样品运输与交接作业指导书》，交接单增加“装箱温度”栏，自下月起执行。/ Accepted: the sample "
            "transport and hand-over instruction is revised with a packing-temperature field, in force next month.")
