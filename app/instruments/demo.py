"""Demo instruments: the equipment of a municipal environmental monitoring lab with a year of
metrological history, entered through the real services (so every record is audited, signed and
accepted exactly as a technical manager would do it on the pages).

What the demo shows, relative to the lab's "today": one instrument overdue (its verification
expired ten days ago), one due soon, one out of service after a failed intermediate check (with
the impact assessment waiting for the quality manager), one with a restricted certificate, the
rest in service. Idempotent: an instrument whose asset number exists is left alone.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.files import FileStore
from app.core.labtime import LabCalendar, lab_calendar
from app.demo import DEMO_PASSWORD
from app.instruments import records, service
from app.instruments.models import CalibrationRecord, Instrument
from app.people.models import User


@dataclass(frozen=True)
class Provider:
    name_zh: str
    name_en: str
    accreditation_no: str
    prefix: str  # how its certificate numbers start


HUBEI = Provider("湖北省计量测试技术研究院", "Hubei Institute of Measurement and Testing Technology", "CNAS L0587",
                 "HBJL")
WUHAN = Provider("武汉市计量测试检定（研究）所", "Wuhan Institute of Metrology and Testing", "CNAS L2371", "WHJL")
NIMTT = Provider("中国测试技术研究院", "National Institute of Measurement and Testing Technology", "CNAS L0041",
                 "CSJS")


@dataclass(frozen=True)
class Certificate:
    performed: int  # days before today
    provider: Provider
    kind: str = "verification"  # 检定; "calibration" = 校准
    valid_days: int = 365
    result: str = "pass"
    restriction: str = ""
    allowed_parameters: tuple[str, ...] = ()
    corrections: str = ""


@dataclass(frozen=True)
class CheckPlan:
    """期间核查: what is measured against what, every `every` days while the instrument is fit."""

    every: int
    standard: str
    criterion: str
    nominal: float
    tolerance: float
    decimals: int
    unit: str
    method: str = ""
    performer: str = "analyst"


@dataclass(frozen=True)
class Upkeep:
    days_ago: int
    description: str
    performed_by: str
    kind: str = "maintenance"  # or "repair"


@dataclass(frozen=True)
class FailedCheck:
    days_ago: int
    measured: str
    remarks: str


@dataclass(frozen=True)
class DemoInstrument:
    asset_no: str
    name_zh: str
    name_en: str
    model: str
    manufacturer: str
    serial_no: str
    location: str
    commissioned_on: date
    responsible: str  # demo username
    uses: tuple[tuple[str, str], ...]
    certificates: tuple[Certificate, ...]
    checks: CheckPlan
    upkeep: tuple[Upkeep, ...] = ()
    failed_check: FailedCheck | None = None
    kind: str = "laboratory"
    notes: str = ""
    first_check: int = 360  # days before today
    attachments: tuple[str, ...] = field(default_factory=tuple)  # titles of acceptance records


INSTRUMENTS = (
    DemoInstrument(
        "JC-YQ-001", "紫外可见分光光度计", "UV-Vis spectrophotometer", "UV-2600i", "岛津 Shimadzu",
        "A11665800473", "理化分析室 A201", date(2019, 4, 18), "analyst",
        (("NH3-N", "HJ 535-2009"), ("TP", "GB 11893-89"), ("TN", "HJ 636-2012"), ("Cr(VI)", "GB 7467-87")),
        (Certificate(385, HUBEI, corrections="波长示值误差 +0.3 nm（546.1 nm）"),
         Certificate(24, HUBEI, corrections="波长示值误差 +0.2 nm（546.1 nm）")),
        CheckPlan(61, "氧化钬玻璃滤光片 GBW(E)130163（536.4 nm）", "波长示值误差 ≤ ±1.0 nm", 0.0, 1.0, 1, "nm",
                  "JJG 178-2007 波长准确度"),
        upkeep=(Upkeep(200, "氘灯累计使用 2000 h，更换氘灯；更换后波长准确度核查合格。",
                       "岛津企业管理（中国）有限公司 武汉服务站"),),
    ),
    DemoInstrument(
        "JC-YQ-002", "电感耦合等离子体质谱仪", "ICP-MS", "7900", "安捷伦 Agilent", "JP19370512",
        "重金属分析室 A305", date(2020, 9, 10), "technical",
        tuple((p, "HJ 700-2014") for p in ("Pb", "Cd", "As", "Cu", "Zn", "Ni", "Cr")),
        (Certificate(350, NIMTT, kind="calibration", corrections="质量轴偏差 ≤ 0.05 amu；分辨率 0.72 amu"),
         Certificate(148, NIMTT, kind="calibration", corrections="维修后校准：质量轴偏差 ≤ 0.04 amu")),
        CheckPlan(91, "多元素混合标准溶液 GSB 04-1767-2004（Pb 10.0 μg/L）", "Pb 回收率 90%–110%", 100.0, 10.0,
                  1, "%", "HJ 700-2014", performer="technical"),
        upkeep=(Upkeep(152, "等离子体无法点燃，更换射频发生器电源板；维修后重新校准。",
                       "安捷伦科技（中国）有限公司", kind="repair"),
                Upkeep(40, "清洗采样锥、截取锥，更换蠕动泵管。", "王磊")),
    ),
    DemoInstrument(
        "JC-YQ-003", "离子色谱仪", "Ion chromatograph", "Dionex Aquion", "赛默飞世尔 Thermo Fisher",
        "19110234", "理化分析室 A203", date(2021, 3, 22), "technical",
        tuple((p, "HJ 84-2016") for p in ("F-", "Cl-", "NO3-", "SO42-")),
        (Certificate(485, WUHAN, kind="calibration"), Certificate(120, WUHAN, kind="calibration")),
        CheckPlan(61, "阴离子混合标准溶液（NO3- 5.00 mg/L）", "NO3- 相对误差 ≤ ±5%", 0.0, 5.0, 1, "%", "HJ 84-2016"),
        upkeep=(Upkeep(4, "期间核查不合格后更换阴离子抑制器并清洗保护柱；待重新校准后恢复使用。",
                       "赛默飞世尔科技（中国）有限公司"),),
        failed_check=FailedCheck(6, "-12.4", "NO3- 峰面积明显偏低，基线噪声大，疑抑制器失效"),
    ),
    DemoInstrument(
        "JC-YQ-004", "气相色谱-质谱联用仪", "GC-MS", "8890-5977B", "安捷伦 Agilent", "US2003M012",
        "有机分析室 A401", date(2020, 11, 5), "technical",
        tuple((p, "HJ 639-2012") for p in ("苯", "甲苯", "乙苯", "二甲苯", "三氯甲烷")),
        (Certificate(565, NIMTT, kind="calibration"),
         Certificate(200, NIMTT, kind="calibration", corrections="质量数示值误差 ≤ 0.1 u；信噪比 ≥ 200:1")),
        CheckPlan(91, "挥发性有机物混合标准溶液（甲苯 50.0 μg/L）", "甲苯 相对误差 ≤ ±20%", 0.0, 20.0, 1, "%",
                  "HJ 639-2012", performer="technical"),
        upkeep=(Upkeep(95, "更换进样口衬管和隔垫，清洗离子源，调谐（BFB）合格。", "王磊"),),
        attachments=("安装验收报告",),
    ),
    DemoInstrument(
        "JC-YQ-005", "原子荧光光度计", "Atomic fluorescence spectrometer", "AFS-8520", "北京海光仪器有限公司",
        "852019-0317", "理化分析室 A204", date(2019, 8, 26), "technical",
        tuple((p, "HJ 694-2014") for p in ("Hg", "As", "Se", "Sb")),
        (Certificate(425, HUBEI),
         Certificate(60, HUBEI, result="restricted",
                     restriction="砷通道检出限不满足 JJG 939-2009 要求（砷空心阴极灯能量衰减），"
                                 "限用于汞、硒、锑的测定；更换砷灯后需重新检定。",
                     allowed_parameters=("Hg", "Se", "Sb"))),
        CheckPlan(91, "汞标准溶液 GBW08617（1.00 μg/L）", "1.00 ± 0.10 μg/L", 1.0, 0.1, 3, "μg/L", "HJ 694-2014"),
    ),
    DemoInstrument(
        "JC-YQ-006", "COD 恒温加热消解器", "COD digester", "DRB200", "哈希 Hach", "1920DR0034",
        "理化分析室 A202", date(2021, 6, 1), "technical", (("COD", "HJ 828-2017"),),
        (Certificate(455, WUHAN, kind="calibration"),
         Certificate(90, WUHAN, kind="calibration", corrections="165 ℃ 点温度示值误差 +0.6 ℃")),
        CheckPlan(91, "邻苯二甲酸氢钾标准溶液（COD 500 mg/L）", "500 ± 25 mg/L", 500.0, 25.0, 0, "mg/L",
                  "HJ 828-2017"),
    ),
    DemoInstrument(
        "JC-YQ-007", "电子分析天平", "Analytical balance", "XPR205", "梅特勒-托利多 Mettler Toledo", "C125448712",
        "天平室 A206", date(2018, 12, 3), "technical",
        (("称量", "JJG 1036-2008 电子天平"), ("SS", "GB 11901-89 重量法")),
        (Certificate(710, HUBEI), Certificate(345, HUBEI)),
        CheckPlan(30, "F1 级标准砝码 200 g", "200.0000 ± 0.0005 g", 200.0, 0.0005, 4, "g", "JJG 1036-2008"),
        first_check=330,
    ),
    DemoInstrument(
        "JC-YQ-008", "实验室 pH 计", "pH meter", "FiveEasy Plus FE28", "梅特勒-托利多 Mettler Toledo", "B918123456",
        "理化分析室 A201", date(2019, 5, 9), "analyst", (("pH", "HJ 1147-2020"),),
        (Certificate(740, WUHAN), Certificate(375, WUHAN)),
        CheckPlan(91, "pH 标准缓冲溶液 GBW(E)130071（pH 6.86，25 ℃）", "6.86 ± 0.05", 6.86, 0.05, 2, "pH",
                  "HJ 1147-2020"),
    ),
    DemoInstrument(
        "JC-YQ-009", "便携式多参数水质分析仪", "Portable multiparameter meter", "HQ4300", "哈希 Hach",
        "211000012345", "现场仪器柜 / 采样车 鄂A·J0123", date(2022, 4, 15), "technical",
        (("pH", "HJ 1147-2020"), ("DO", "HJ 506-2009"), ("EC", "HJ 802-2016"), ("WT", "GB 13195-91")),
        (Certificate(395, WUHAN, kind="calibration"), Certificate(30, WUHAN, kind="calibration")),
        CheckPlan(91, "电导率标准溶液 GBW(E)130106（1413 μS/cm，25 ℃）", "1413 ± 28 μS/cm", 1413.0, 28.0, 0,
                  "μS/cm", "HJ 802-2016", performer="sampler"),
        upkeep=(Upkeep(45, "更换溶解氧传感器膜帽及电解液，饱和空气校准合格。", "张伟"),),
        kind="field", notes="现场监测使用；出车前用标准溶液校准 pH 和电导率。",
    ),
)


# ---------------------------------------------------------------- certificate PDFs


def _pdf_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def certificate_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF (Helvetica, ASCII lines) standing in for a scanned certificate."""
    text = ["BT", "/F1 16 Tf", "72 770 Td", "20 TL"]
    for i, line in enumerate(lines):
        text.append(f"({_pdf_text(line.encode('ascii', 'replace').decode())}) {'Tj' if i == 0 else chr(39)}")
        if i == 0:
            text.append("/F1 11 Tf")
    text.append("ET")
    stream = "\n".join(text).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


# ---------------------------------------------------------------- history through the services


@dataclass(order=True)
class _Event:
    day: date
    order: int
    act: Callable[[], None] = field(compare=False)


def _certificate_no(provider: Provider, performed_on: date, asset_no: str) -> str:
    serial = sum(map(ord, asset_no)) * 37 % 9000 + 1000
    return f"{provider.prefix}{performed_on:%Y}-{performed_on:%m%d}{serial}"


def _measured(plan: CheckPlan, rng: random.Random) -> str:
    value = plan.nominal + rng.uniform(-0.45, 0.45) * plan.tolerance
    return f"{value:.{plan.decimals}f}"


def _at(calendar: LabCalendar, day: date, hour: int = 9, minute: int = 30) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=calendar.tz)


def _history(session: Session, demo: DemoInstrument, instrument: Instrument, users: dict[str, User],
             store: FileStore, password: str) -> list[_Event]:
    calendar = lab_calendar(session)
    today = calendar.today()
    technical, responsible = users["technical"], users[demo.responsible]
    rng = random.Random(demo.asset_no)
    events: list[_Event] = []

    def certificate(cert: Certificate) -> None:
        performed_on = today - timedelta(days=cert.performed)
        number = _certificate_no(cert.provider, performed_on, demo.asset_no)
        valid_until = performed_on + timedelta(days=cert.valid_days - 1)
        facts = records.CalibrationFacts(
            kind=cert.kind, provider=cert.provider.name_zh, provider_accreditation_no=cert.provider.accreditation_no,
            certificate_no=number, performed_on=performed_on, valid_until=valid_until, result=cert.result,
            restriction=cert.restriction, allowed_parameters=cert.allowed_parameters, corrections=cert.corrections,
        )
        title = "Verification certificate" if cert.kind == "verification" else "Calibration certificate"
        pdf = certificate_pdf([
            f"{title} No. {number}", cert.provider.name_en, f"Accreditation: {cert.provider.accreditation_no}",
            f"Instrument: {demo.name_en} {demo.model}, serial {demo.serial_no} ({demo.asset_no})",
            f"Date performed: {performed_on.isoformat()}   Valid until: {valid_until.isoformat()}",
            f"Result: {cert.result}",
        ])
        record = records.record_calibration(
            session, technical, instrument, facts, store=store,
            certificate=service.Upload(io.BytesIO(pdf), f"{number}.pdf"))
        if cert.result != "fail":
            note = "限制使用，已通知相关检测人员" if cert.result == "restricted" else "满足本实验室使用要求"
            records.decide_acceptance(session, responsible, record, password, accept=True, note=note)

    for cert in demo.certificates:
        events.append(_Event(today - timedelta(days=cert.performed), 1, lambda cert=cert: certificate(cert)))

    for upkeep in demo.upkeep:
        day = today - timedelta(days=upkeep.days_ago)
        facts = records.MaintenanceFacts(kind=upkeep.kind, performed_at=_at(calendar, day, 14),
                                         description=upkeep.description, performed_by=upkeep.performed_by)
        events.append(_Event(day, 2, lambda facts=facts: records.record_maintenance(
            session, technical, instrument, facts)))

    # checks while the instrument is fit: from its first certificate to a failure or the due day
    plan = demo.checks
    first, last = demo.certificates[0], demo.certificates[-1]
    due_day = today - timedelta(days=last.performed - last.valid_days)
    stop = today - timedelta(days=demo.failed_check.days_ago) if demo.failed_check else min(today, due_day)
    performer = users[plan.performer]
    day = max(today - timedelta(days=demo.first_check), today - timedelta(days=first.performed - 7))
    while day < stop:
        facts = records.CheckFacts(
            performed_at=_at(calendar, day, 10), check_standard=plan.standard, criterion=plan.criterion,
            measured_value=_measured(plan, rng), unit=plan.unit, result="pass", method=plan.method)
        events.append(_Event(day, 3, lambda facts=facts: records.record_check(
            session, performer, instrument, facts, password)))
        day += timedelta(days=plan.every)
    if demo.failed_check:
        failed = demo.failed_check
        facts = records.CheckFacts(
            performed_at=_at(calendar, stop, 10), check_standard=plan.standard, criterion=plan.criterion,
            measured_value=failed.measured, unit=plan.unit, result="fail", method=plan.method,
            remarks=failed.remarks)
        events.append(_Event(stop, 3, lambda facts=facts: records.record_check(
            session, performer, instrument, facts, password)))
    return sorted(events)


def _attach(session: Session, demo: DemoInstrument, instrument: Instrument, technical: User,
            store: FileStore) -> None:
    for title in demo.attachments:
        pdf = certificate_pdf([f"Acceptance record {demo.asset_no}", f"{demo.name_en} {demo.model}",
                               f"Serial {demo.serial_no}", f"Commissioned {demo.commissioned_on.isoformat()}"])
        service.add_attachment(session, technical, instrument, store, service.Upload(io.BytesIO(pdf), f"{title}.pdf"),
                               title=title, kind="acceptance", max_bytes=service.CERTIFICATE_MAX_BYTES)


def load_instrument_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """Register the demo instruments that are missing and enter their history (oldest first), as
    the demo users: the technical manager enters certificates, the responsible person accepts them
    (signing with the demo password), analysts and the sampler sign their checks."""
    existing = set(session.scalars(select(Instrument.asset_no).where(
        Instrument.asset_no.in_([d.asset_no for d in INSTRUMENTS]))))
    technical = users["technical"]
    for demo in INSTRUMENTS:
        if demo.asset_no in existing:
            continue
        instrument = service.register_instrument(
            session, technical, asset_no=demo.asset_no, name_zh=demo.name_zh, name_en=demo.name_en,
            model=demo.model, manufacturer=demo.manufacturer, serial_no=demo.serial_no, location=demo.location,
            commissioned_on=demo.commissioned_on, responsible_id=users[demo.responsible].id, uses=list(demo.uses),
            kind=demo.kind, notes=demo.notes,
        )
        _attach(session, demo, instrument, technical, store)
        for event in _history(session, demo, instrument, users, store, DEMO_PASSWORD):
            event.act()


def demo_calibrations(session: Session) -> list[CalibrationRecord]:
    """The certificates of the demo instruments (for checks on the demo data)."""
    return list(session.scalars(
        select(CalibrationRecord).join(Instrument, Instrument.id == CalibrationRecord.instrument_id)
        .where(Instrument.asset_no.in_([d.asset_no for d in INSTRUMENTS]))))
