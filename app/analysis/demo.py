"""Demo analysis and QC (issue 8): a month of a water lab's bench work, entered through the real
services as the demo users would, at the times the acts happened (app.samples.lab_demo's
`DemoClock` pattern: the records carry the time of the act, the audit trail the time of loading).

- The technical manager registered the lab's methods a year ago (HJ 535-2009 NH3-N and GB 11893-89
  TP by calibration curve on the UV-Vis, HJ 828-2017 COD read directly, HJ 700-2014 metals on the
  ICP-MS, HJ 84-2016 anions on the IC), with an HJ 168 MDL study of NH3-N (7 replicates), and
  granted the 上岗证: the analyst for every method (the COD certificate runs out within 60 days:
  the dashboard card), the checker for NH3-N and TP.
- The field methods, registered like the others so the readings the sampler signs print on the
  reports with their method, inside the CMA scope: HJ 1147-2020 pH (electrode), GB 13195-1991
  water temperature (thermometer), HJ 506-2009 dissolved oxygen (electrochemical probe) and, for
  conductivity, SL 78-1994 (conductivity meter): the lab's usual reference, 《水和废水监测分析方法》
  (第四版增补版) 3.1.9(1), has no standard number with a year, which a method code needs. They
  are direct readings with no detection limit (the standards give a range, not an MDL): MDL 0,
  printed "—"; pH to one decimal as HJ 1147-2020 asks. The sampler and the checker hold their
  上岗证.
- GB 3838-2002 and GB 3095-2012 are loaded; every demo river and lake section is assigned to
  GB 3838-2002 with its target class. The built-in import profiles are there.
- A month of river rounds (the demo sampler, two sections a working day, through the field and
  receipt services of app.samples.demo and app.samples.lab_demo): an NH3-N batch each of those
  days (curve, two blanks, duplicate, spike, QC sample, CCV; signed `analysed`), a few TP batches,
  one ICP-MS batch imported from a MassHunter batch table built here, one NH3-N batch whose spike
  recovered ~72 % (rerun after the corrective action, then signed), and the quality manager's
  baselines of the NH3-N spike and QC-sample charts from their first 20 points.
- The latest working afternoon: two ICP-MS batches of the last two weeks' metals samples (every
  round of those weeks has a metals section; metals keep 14 days), one running with
  half its results entered (the analyst's worklist) and one whose CCV failed and waits for a
  corrective action (the QC card).

Values are realistic for the rivers of the demo (NH3-N 0.1–1.6 mg/L, TP 0.03–0.3 mg/L) from
random.Random with a fixed seed. Idempotent: if HJ 535-2009 is registered, the demo is there.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import (
    batches,
    control_charts,
    corrective,
    curves,
    import_profiles,
    imports,
    limits,
    mdl,
    methods,
    qc,
    qualifications,
    results,
    submission,
)
from app.analysis.models import AnalysisBatch, BatchPosition, Method, PositionRole
from app.core import signatures
from app.core.db import utcnow
from app.core.files import FileStore
from app.core.labtime import LabCalendar, lab_calendar
from app.instruments.service import Upload
from app.people.models import User
from app.reference_materials import service as rm_service
from app.reference_materials import solutions
from app.reference_materials.models import ReferenceMaterial, StandardSolution, StockUnit
from app.samples import holding, lab_demo, lab_input, receipt, registration, shipments
from app.samples.models import Sample, SampleKind
from app.sites.demo import DemoClock
from app.sites.models import Site

D = Decimal
SEED = "envirolims-analysis-demo"

NH3N, TP, COD, METALS_METHOD, ANIONS = "HJ 535-2009", "GB 11893-89", "HJ 828-2017", "HJ 700-2014", "HJ 84-2016"
PH, WT, DO, EC = "HJ 1147-2020", "GB 13195-1991", "HJ 506-2009", "SL 78-1994"  # measured on site
FIELD_METHODS = (PH, WT, DO, EC)
FIELD_METER = "JC-YQ-009"  # app.samples.demo: the sampler's multiparameter meter
UV, ICPMS, IC, COD_DIGESTER = "JC-YQ-001", "JC-YQ-002", "JC-YQ-003", "JC-YQ-006"
METALS = ("Cu", "Zn", "Pb", "Cd")
METALS_KEEP_DAYS = 14  # HJ 493-2009: acidified metals samples
METHODS_DAYS_AGO = 400
# days ago of the oldest round: 34 days hold 24 working days whatever the weekday, 22 of them
# rounds after the lab's own two round days (app.samples.lab_demo, 38 and 12 days ago), so ≥ 22
# signed NH3-N batches. Not older: the second NH3-N stock, prepared the day before the first round
# and kept 30 days, must last until the lab's own stock is prepared 12 days ago.
OLDEST_ROUND = 41
NEWEST_ROUND = 8  # the demo week (app.samples.demo) covers the seven days after it
FAILED_SPIKE_DAYS_AGO = 19  # about: the working day nearest to it
TP_EVERY = 5  # a TP batch on every fifth day of rounds
ICPMS_LATEST = 25  # days ago: the metals round analysed on the ICP-MS is the first after it
TARGET_CLASS = {  # GB 3838-2002 class each section is managed to (水功能区划)
    "JC-W01": "II", "JC-W02": "II", "JC-W03": "II", "JC-W04": "II", "JC-W05": "II", "JC-W06": "II",
    "JC-W07": "IV", "JC-W08": "III", "JC-W09": "III", "JC-W10": "IV", "JC-W11": "IV", "JC-W12": "II",
}
ROUND_SITES = ("JC-W02", "JC-W05", "JC-W03", "JC-W08", "JC-W10", "JC-W07", "JC-W11", "JC-W12")
METALS_SITES = ("JC-W01", "JC-W06")  # their samples ask for Cu, Zn, Pb, Cd
# the sections' usual NH3-N (mg/L) and TP (mg/L): the Fu River carries the city's treated effluent
LEVELS = {"JC-W01": ("0.18", "0.08"), "JC-W02": ("0.22", "0.09"), "JC-W03": ("0.25", "0.10"),
          "JC-W04": ("0.30", "0.11"), "JC-W05": ("0.15", "0.06"), "JC-W06": ("0.20", "0.08"),
          "JC-W07": ("1.25", "0.24"), "JC-W08": ("0.55", "0.14"), "JC-W10": ("0.42", "0.07"),
          "JC-W11": ("0.75", "0.12"), "JC-W12": ("0.12", "0.03")}
# HJ 535-2009: 0–10.0 mL of the 10.0 mg/L working solution to 50 mL
NH3N_LEVELS = (("0", "0.0"), ("0.10", "0.5"), ("0.20", "1.0"), ("0.40", "2.0"), ("0.80", "4.0"), ("1.20", "6.0"),
               ("1.60", "8.0"), ("2.00", "10.0"))
# GB 11893-89: 0–15.0 mL of the 2.00 mg/L working solution to 50 mL
TP_LEVELS = (("0", "0.0"), ("0.020", "0.5"), ("0.040", "1.0"), ("0.120", "3.0"), ("0.200", "5.0"), ("0.400", "10.0"),
             ("0.600", "15.0"))
QC_SAMPLES = (
    # certificate, name, analyte, certified value, U (mg/L after the dilution the certificate prescribes)
    ("GSB 07-3164-2014", "水质 氨氮 标准样品（稀释 250 倍后测定）", "NH3-N", "1.52", "0.07", "2006134"),
    ("GSB 07-3169-2014", "水质 总磷 标准样品（稀释 250 倍后测定）", "TP", "0.236", "0.010", "2008211"),
)


def _device(role: str, name: str, tolerance: str) -> solutions.DeviceFacts:
    return solutions.DeviceFacts(role, name, D(tolerance), "mL", "A")


PIPETTE_1, PIPETTE_10 = _device("aliquot", "1 mL 单标线吸量管", "0.007"), _device("aliquot", "10 mL 单标线吸量管",
                                                                                    "0.020")
FLASK_100 = _device("final_volume", "100 mL 单标线容量瓶", "0.10")


# ---------------------------------------------------------------- time


@dataclass
class _Demo(lab_demo.DemoActs):
    """The lab's acts with the analysis demo's seeded chance and what it has set up so far."""

    rng: random.Random
    standards: dict[str, str] = field(default_factory=dict)  # key → barcode
    solutions: list[tuple[str, int, int, str]] = field(default_factory=list)  # kind, made, expires (days ago)
    methods: dict[str, Method] = field(default_factory=dict)
    metals_day: int | None = None


def _clock() -> DemoClock:
    return DemoClock(methods, mdl, qualifications, limits, import_profiles, imports, curves, batches, results, qc,
                     corrective, submission, control_charts, signatures, rm_service, solutions, holding,
                     lab_input, receipt, shipments, registration)


# ---------------------------------------------------------------- methods, people, standards


def _parameter(code: str, unit: str, mdl_value: str, decimals: int, **more: object) -> methods.ParameterFacts:
    return methods.ParameterFacts(parameter=code, unit=unit, mdl=mdl_value, decimals=decimals, **more)


def _method_facts() -> list[methods.MethodFacts]:
    return [
        methods.MethodFacts(NH3N, "水质 氨氮的测定 纳氏试剂分光光度法", methods.VersionFacts(
            [_parameter("NH3-N", "mg/L", "0.025", 3, lower_limit="0.10", upper_limit="2.0")],
            calculation="curve", duplicate_rd_limits=(("1", "5"), ("0.1", "10"), ("0", "20")),
            holding_rule="H2SO4 至 pH ≤ 2，2–5 ℃ 冷藏，24 h 内测定", instruments=(UV,),
            note="HJ 535-2009：校准曲线 8 点（0–100 μg），20 mm 比色皿，420 nm"),
            name_en="Water quality — Ammonia nitrogen — Nessler's reagent spectrophotometry"),
        methods.MethodFacts(TP, "水质 总磷的测定 钼酸铵分光光度法", methods.VersionFacts(
            [_parameter("TP", "mg/L", "0.01", 2, lower_limit="0.04", upper_limit="0.6")],
            calculation="curve", duplicate_rd_limits=(("0.1", "10"), ("0", "20")),
            holding_rule="H2SO4 至 pH ≤ 2，24 h 内测定", instruments=(UV,),
            note="GB 11893-89：过硫酸钾消解，30 mm 比色皿，700 nm；曲线 0–0.6 mg/L"),
            name_en="Water quality — Total phosphorus — Ammonium molybdate spectrophotometry"),
        methods.MethodFacts(COD, "水质 化学需氧量的测定 重铬酸盐法", methods.VersionFacts(
            [_parameter("COD", "mg/L", "4", 0, lower_limit="16", upper_limit="700")],
            spike_rate_pct=0, ccv_every=0, duplicate_rd_limits=(("0", "10"),), instruments=(COD_DIGESTER,),
            holding_rule="H2SO4 至 pH ≤ 2，2 d 内测定",
            note="HJ 828-2017：回流 2 h，硫酸亚铁铵滴定；结果直接录入（mg/L），每批 ≥ 2 个空白"),
            name_en="Water quality — Chemical oxygen demand — Dichromate method"),
        methods.MethodFacts(METALS_METHOD, "水质 65种元素的测定 电感耦合等离子体质谱法", methods.VersionFacts(
            [_parameter("Cu", "μg/L", "0.08", 2), _parameter("Zn", "μg/L", "0.67", 2),
             _parameter("Pb", "μg/L", "0.09", 2), _parameter("Cd", "μg/L", "0.05", 2),
             _parameter("As", "μg/L", "0.12", 2)],
            spike_recovery_low="70", spike_recovery_high="130", instruments=(ICPMS,),
            holding_rule="HNO3 至 pH ≤ 2，14 d 内测定",
            note="HJ 700-2014：仪器软件按内标校正后直接给出浓度（μg/L）；可由 MassHunter 批处理表导入"),
            name_en="Water quality — 65 elements — ICP-MS"),
        methods.MethodFacts(ANIONS, "水质 无机阴离子的测定 离子色谱法", methods.VersionFacts(
            [_parameter("F-", "mg/L", "0.006", 3), _parameter("Cl-", "mg/L", "0.007", 2),
             _parameter("NO3-", "mg/L", "0.016", 2), _parameter("SO42-", "mg/L", "0.018", 2)],
            instruments=(IC,), holding_rule="0–4 ℃ 冷藏，尽快测定",
            note="HJ 84-2016：仪器软件给出浓度；可由 Chromeleon 汇总报告导入"),
            name_en="Water quality — Inorganic anions — Ion chromatography"),
        *_field_method_facts(),
    ]


def _field_method(code: str, name_zh: str, name_en: str, parameter: methods.ParameterFacts,
                  note: str) -> methods.MethodFacts:
    """A reading on site with the field meter: no batch QC (blanks, spikes, CRMs, CCVs)."""
    return methods.MethodFacts(code, name_zh, methods.VersionFacts(
        [parameter], blanks_per_batch=0, duplicate_rate_pct=0, spike_rate_pct=0, crm_per_batch=0, ccv_every=0,
        instruments=(FIELD_METER,), holding_rule="现场测定 / measured on site", note=note), name_en=name_en)


def _field_method_facts() -> list[methods.MethodFacts]:
    # units as the reports print them (the field record keeps pH, °C, mg/L, µS/cm: the same scales)
    return [
        _field_method(PH, "水质 pH值的测定 电极法", "Water quality — pH — Electrode method",
                      # HJ 1147-2020: results to one decimal, with the water temperature of the reading
                      _parameter("pH", "无量纲", "", 1, below_mdl="none"),
                      "HJ 1147-2020：现场测定，读数稳定后记录，结果保留一位小数，同时记录水温"),
        _field_method(WT, "水质 水温的测定 温度计或颠倒温度计测定法",
                      "Water quality — Water temperature — Thermometer or reversing thermometer",
                      _parameter("WT", "℃", "", 1, below_mdl="none"), "GB 13195-1991：表层水温，感温 5 min 后读数"),
        _field_method(DO, "水质 溶解氧的测定 电化学探头法", "Water quality — Dissolved oxygen — Electrochemical probe",
                      _parameter("DO", "mg/L", "", 1, below_mdl="none"), "HJ 506-2009：现场测定，按水温与气压补偿"),
        _field_method(EC, "电导率的测定（电导仪法）", "Conductivity — Conductivity meter",
                      _parameter("EC", "μS/cm", "", 0, below_mdl="none"), "SL 78-1994：现场测定，25 ℃ 温度补偿"),
    ]


def _register_methods(demo: _Demo) -> None:
    technical = demo.user("technical")
    moment = demo.at(METHODS_DAYS_AGO, 10, 0)
    with demo.then(moment):
        for facts in _method_facts():
            demo.methods[facts.code] = methods.create_method(demo.session, technical, facts, valid_from=moment)
    version = methods.version_in_force(demo.session, demo.methods[NH3N].id, moment)
    study = demo.at(METHODS_DAYS_AGO - 12, 15, 0)
    replicates = [D(v) for v in ("0.104", "0.097", "0.101", "0.108", "0.095", "0.103", "0.099")]
    with demo.then(study + timedelta(hours=1)):
        mdl.record_mdl_study(demo.session, technical, version, "NH3-N", replicates, "mg/L", study,
                             note="HJ 168-2020：0.100 mg/L 低浓度加标空白 7 次平行全程序测定 / 7 replicates of a "
                                  "0.100 mg/L spiked blank through the whole procedure",
                             performed_by=demo.user("analyst"))


def _qualify(demo: _Demo) -> None:
    """上岗证 from the provincial centre; the analyst's COD certificate runs out within 60 days."""
    technical = demo.user("technical")
    start = demo.today - timedelta(days=METHODS_DAYS_AGO - 5)
    grants = [("analyst", code, start + timedelta(days=3 * 365)) for code in (NH3N, TP, METALS_METHOD, ANIONS)]
    grants += [("analyst", COD, demo.today + timedelta(days=41)), ("checker", NH3N, start + timedelta(days=3 * 365)),
               ("checker", TP, start + timedelta(days=3 * 365))]
    # field methods: the sampler measures, the checker checks the field data on the reports
    grants += [(who, code, start + timedelta(days=3 * 365)) for code in FIELD_METHODS for who in ("sampler", "checker")]
    with demo.then(demo.at(METHODS_DAYS_AGO - 5, 11, 0)):
        for n, (who, code, until) in enumerate(grants, start=1):
            qualifications.grant_qualification(
                demo.session, technical, demo.user(who), demo.methods[code], f"鄂环监上岗 {start:%Y}-{n:04d}",
                "湖北省生态环境监测中心站", start, until)


def _evaluation_standards(demo: _Demo) -> None:
    technical = demo.user("technical")
    with demo.then(demo.at(METHODS_DAYS_AGO, 11, 0)):
        limits.load_builtin_limit_sets(demo.session, technical)
        import_profiles.ensure_builtin_profiles(demo.session, technical)
    with demo.then(demo.at(METHODS_DAYS_AGO, 11, 30)):
        for code, target in TARGET_CLASS.items():
            limits.assign_site(demo.session, technical, code, "GB 3838-2002", target)


def _qc_sample(demo: _Demo, certificate_no: str, name: str, analyte: str, value: str, uncertainty: str,
               lot_no: str, first: int) -> StockUnit:
    """A certified QC sample received and opened by the lab, with its certificate summary."""
    from app.reference_materials.demo import IERM, DemoLot, DemoMaterial, Value, certificate_pdf

    session, custodian = demo.session, demo.user("custodian")
    expires_on = demo.today + timedelta(days=420)
    material_facts = DemoMaterial(certificate_no, name, f"{analyte} in water, QC sample", *IERM, "水", "2–8 ℃ 冷藏",
                                  "", 90, 1, DemoLot(lot_no, 420, (Value(analyte, value, "mg/L", uncertainty),),
                                                     None, 3, "20", "mL"))  # type: ignore[arg-type]
    received = demo.at(first + 10, 10, 0)
    with demo.then(received):
        material = rm_service.register_material(session, custodian, rm_service.MaterialFacts(
            certificate_no=certificate_no, name_zh=name, name_en=material_facts.name_en, producer=IERM[0],
            matrix="水", storage_conditions="2–8 ℃ 冷藏", opened_shelf_life_days=90, min_stock_units=1))
        lot = rm_service.register_lot(
            session, custodian, material, lot_no=lot_no, expires_on=expires_on,
            values=(rm_service.ValueFacts(analyte, D(value), "mg/L", D(uncertainty), D(2)),), store=demo.store,
            certificate=Upload(io.BytesIO(certificate_pdf(material_facts, expires_on)),
                               f"{certificate_no.replace(' ', '_')}_{lot_no}.pdf"))
        units = rm_service.receive_units(session, custodian, lot, count=3, quantity=D(20), quantity_unit="mL",
                                         received_at=received)
    rm_service.open_item(session, demo.user("analyst"), units[0], demo.at(first, 8, 30))
    return units[0]


def _solution(demo: _Demo, parent: str, name: str, aliquot: str, device: solutions.DeviceFacts, output_unit: str,
              at: datetime, shelf_life_days: int, notes: str = "") -> str:
    made = solutions.prepare_solution(demo.session, demo.user("analyst"), solutions.SolutionFacts(
        parent_barcode=parent, name=name, aliquot=D(aliquot), aliquot_unit="mL", final_volume=D(100),
        final_volume_unit="mL", output_unit=output_unit, solvent="无氨水" if "氨" in name else "纯水", prepared_at=at,
        shelf_life_days=shelf_life_days, devices=(device, FLASK_100), notes=notes))
    return made.barcode


def _unit_of(demo: _Demo, certificate_no: str, index: int) -> StockUnit:
    from app.reference_materials.models import MaterialLot

    return list(demo.session.scalars(
        select(StockUnit).join(MaterialLot, MaterialLot.id == StockUnit.lot_id)
        .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id)
        .where(ReferenceMaterial.certificate_no == certificate_no).order_by(StockUnit.id)))[index]


def _standards(demo: _Demo, round_days: list[int]) -> None:
    """The standard solutions the month needs: a second unit of the NH3-N CRM opened for the
    month and its 100 mg/L stock (30 days), a 10.0 mg/L working solution each week (7 days; from
    the demo's own stock once the first expires); the TP standard sample opened and diluted each
    week; the QC samples; a metals working solution for the ICP-MS day."""
    from app.reference_materials.demo import NH3N_CERTIFICATE

    session, analyst = demo.session, demo.user("analyst")
    first = max(round_days) + 1
    unit = _unit_of(demo, NH3N_CERTIFICATE, 1)
    rm_service.open_item(session, analyst, unit, demo.at(first, 8, 10))
    stock = _solution(demo, unit.barcode, "氨氮标准贮备液 100 mg/L（第二支）", "10", PIPETTE_10, "mg/L",
                      demo.at(first, 8, 20), 30, "HJ 535-2009 6.3")
    demo_stock = session.scalars(select(StandardSolution.barcode).where(
        StandardSolution.name == "氨氮标准贮备液 100 mg/L")).first()  # app.reference_materials.demo, 12 days ago
    in_use_until = first + 1  # days ago the working solution in use expires (none in use yet)
    for start in range(first, 0, -1):  # a new one the day the last expires, through yesterday
        if start > in_use_until:
            continue
        from_stock = start > first - 30 or demo_stock is None  # else the lab's own, made 12 days ago at 09:40
        parent, parent_expiry, at = (stock, first - 30, (8, 30)) if from_stock else (demo_stock, -18, (10, 0))
        barcode = _solution(demo, parent, f"氨氮标准使用液 10.0 mg/L（{demo.today - timedelta(days=start):%m-%d}）",
                            "10", PIPETTE_10, "mg/L", demo.at(start, *at), 7, "HJ 535-2009 6.4：每周配制")
        in_use_until = max(start - 7, parent_expiry)
        demo.solutions.append(("nh3n", start, in_use_until, barcode))
    tp_unit = _unit_of(demo, "GSB 07-3168-2014", 0)
    rm_service.open_item(session, analyst, tp_unit, demo.at(first, 8, 40))
    tp_starts = list(range(first, 0, -7))
    if min(tp_starts) > 6:
        tp_starts.append(4)
    for start in tp_starts:
        name = f"磷标准使用液 2.00 mg/L（{demo.today - timedelta(days=start):%m-%d}）"
        barcode = _solution(demo, tp_unit.barcode, name, "1", PIPETTE_1, "mg/L", demo.at(start, 8, 50), 7,
                            "GB 11893-89 5.12")
        demo.solutions.append(("tp", start, start - 7, barcode))
    for certificate_no, name, analyte, value, uncertainty, lot_no in QC_SAMPLES:
        demo.standards[f"qc:{analyte}"] = _qc_sample(demo, certificate_no, name, analyte, value, uncertainty,
                                                     lot_no, first).barcode
    metals_unit = _unit_of(demo, "GBW08608", 0)  # opened by the technical manager 30 days ago
    metals_day = demo.metals_day
    if metals_day is not None:
        demo.standards["metals"] = _solution(demo, metals_unit.barcode, "重金属混合标准使用液 100 μg/L（Cd 10 μg/L）",
                                             "10", PIPETTE_10, "μg/L", demo.at(metals_day, 8, 0), 14)


def _working(demo: _Demo, kind: str, days_ago: int) -> str:
    """The working solution in use on that day: the newest prepared on or before it, not expired."""
    usable = [(start, barcode) for k, start, expiry, barcode in demo.solutions
              if k == kind and start >= days_ago > expiry]
    return min(usable)[1]


# ---------------------------------------------------------------- the month's river rounds


@dataclass
class _Round:
    """One working day's samples in the lab: the two sections' routine samples and field QC."""

    days_ago: int
    samples: list[Sample]
    sites: dict[int, str]  # sample id → site code
    received_at: datetime

    def with_parameter(self, session: Session, parameter: str) -> list[Sample]:
        asked = registration.parameters_of(session, [s.id for s in self.samples])
        return [s for s in self.samples if parameter in asked.get(s.id, [])]


def _has_tasks(session: Session, sampler: User, day: date) -> bool:
    from app.sites.models import SamplingTask

    return session.scalars(select(SamplingTask.id).where(
        SamplingTask.sampler_id == sampler.id, SamplingTask.scheduled_on == day).limit(1)).first() is not None


def round_days(session: Session, today: date, sampler: User) -> list[int]:
    """Working days from OLDEST_ROUND to NEWEST_ROUND days ago on which the demo sampler has no
    other round (the demo's own rounds keep their days), newest last."""
    days = []
    for days_ago in range(OLDEST_ROUND, NEWEST_ROUND - 1, -1):
        day = today - timedelta(days=days_ago)
        if day.weekday() < 5 and not _has_tasks(session, sampler, day):
            days.append(days_ago)
    return days


def _sites_of_day(n: int, days_ago: int) -> tuple[str, str]:
    """Two sections a day; a metals section (Cu, Zn, Pb, Cd asked) every other day, and every day
    of the last METALS_KEEP_DAYS: those samples wait for today's ICP-MS batches, whichever weekday
    the demo is loaded on and however the rounds fall."""
    first = ROUND_SITES[n % len(ROUND_SITES)]
    metals = n % 2 == 0 or days_ago < METALS_KEEP_DAYS
    second = METALS_SITES[(n // 2) % len(METALS_SITES)] if metals else ROUND_SITES[(n + 3) % len(ROUND_SITES)]
    return first, second


def _enter_round(demo: _Demo, lab: lab_demo.DemoActs, n: int, days_ago: int) -> _Round:
    """Sampled in the morning, the cooler to the lab with the driver at noon, received and signed
    by the custodian at half past one (app.samples.lab_demo's acts)."""
    from app.samples import demo as field_demo

    first, second = _sites_of_day(n, days_ago)
    visits = (field_demo.Visit(first, days_ago, 8, 40), field_demo.Visit(second, days_ago, 10, 5))
    samples = lab_demo._enter_rounds(lab, visits)
    codes = dict(demo.session.execute(select(Site.id, Site.code).where(
        Site.id.in_({s.site_id for s in samples}))).all())
    found = lab_demo._DaySamples(lab_demo.Day(days_ago, "driver", (11, 50), (13, 25), ""), samples,
                                 {s.id: codes[s.site_id] for s in samples},
                                 registration.containers_of(demo.session, [s.id for s in samples]))
    rng = random.Random(f"{SEED}|round|{days_ago}")
    cooler, deliverer = lab_demo._send(lab, found, rng)
    lab_demo._receive(lab, found, cooler, deliverer, rng)
    for sample in samples:
        demo.session.refresh(sample)
    accepted = [s for s in samples if s.state != "rejected"]
    return _Round(days_ago, accepted, found.sites, demo.at(days_ago, 14, 0))


# ---------------------------------------------------------------- a batch at the bench


@dataclass(frozen=True)
class _Curve:
    """How a day's photometer responds: absorbance = intercept + slope × concentration."""

    intercept: Decimal
    slope: Decimal
    levels: tuple[tuple[str, str], ...]
    ccv: str  # the CCV's nominal concentration
    qc_key: str


NOTES = {"NH3-N": "纳氏试剂分光光度法，20 mm 比色皿，420 nm", "TP": "钼酸铵分光光度法，30 mm 比色皿，700 nm"}
CURVES = {
    "NH3-N": (NH3N, "nh3n", NH3N_LEVELS, "1.00", D("0.004"), D("0.395")),
    "TP": (TP, "tp", TP_LEVELS, "0.200", D("0.003"), D("0.628")),
}


def _true_value(demo: _Demo, day: _Round, sample: Sample, parameter: str, rng: random.Random) -> Decimal:
    """The concentration in the bottle: the section's usual level ± its day-to-day spread; the
    field blank near zero; the field duplicate as its routine sample."""
    index = 0 if parameter == "NH3-N" else 1
    if sample.kind == SampleKind.FIELD_BLANK.value:
        return D("0.008") if parameter == "NH3-N" else D("0.003")
    base = D(LEVELS.get(day.sites[sample.id], ("0.30", "0.10"))[index])
    rnd = random.Random(f"{SEED}|{day.days_ago}|{day.sites[sample.id]}|{parameter}")
    value = base * D(f"{rnd.uniform(0.7, 1.35):.3f}")
    if sample.kind == SampleKind.FIELD_DUPLICATE.value:
        value *= D(f"{rng.uniform(0.97, 1.03):.3f}")
    return min(value, D("1.60") if parameter == "NH3-N" else D("0.45"))


def _absorbance(curve: _Curve, concentration: Decimal, rng: random.Random) -> Decimal:
    noise = D(f"{rng.uniform(-0.0015, 0.0015):.4f}")
    return (curve.intercept + curve.slope * concentration + noise).quantize(D("0.001"))


def _spike_added(parameter: str, level: Decimal) -> Decimal:
    """0.5–2 × the sample's content, the total within the curve (DOMAIN.md §4.2)."""
    if parameter == "NH3-N":
        return D("0.200") if level < D("0.25") or level > D("1.2") else D("0.500")
    return D("0.040") if level < D("0.08") else D("0.100")


def _positions(session: Session, batch: AnalysisBatch) -> list[BatchPosition]:
    return list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                .order_by(BatchPosition.position)))


@dataclass
class _Bench:
    batch: AnalysisBatch
    truth: dict[int, Decimal]  # position id → concentration in the cuvette
    curve: _Curve
    measured: datetime


def _curve_batch(demo: _Demo, parameter: str, day: _Round, samples: list[Sample], start: datetime, *,
                 spike_recovery: Decimal | None = None) -> _Bench:
    """Curve, batch with its QC, started, curve attached: ready for the readings."""
    method_code, kind, levels, ccv, intercept, slope = CURVES[parameter]
    session, analyst = demo.session, demo.user("analyst")
    rng = random.Random(f"{SEED}|{parameter}|{start.isoformat()}")
    curve = _Curve(intercept + D(f"{rng.uniform(-0.002, 0.002):.4f}"),
                   slope * D(f"{rng.uniform(0.985, 1.015):.4f}"), levels, ccv, f"qc:{parameter}")
    working = _working(demo, kind, day.days_ago)
    with demo.then(start + timedelta(minutes=5)):
        made = curves.record_curve(session, analyst, curves.CurveFacts(
            method_code=method_code, parameter=parameter, instrument=UV, measured_at=start,
            points=[curves.PointFacts(n, c, _absorbance(curve, D(c), rng), working if D(c) > 0 else "")
                    for n, (c, _ml) in enumerate(levels, start=1)], response_unit="A"))
    built = start + timedelta(minutes=15)
    qc_sample = demo.standards[curve.qc_key]
    certified = {"NH3-N": ("1.52", "0.07"), "TP": ("0.236", "0.010")}[parameter]
    with demo.then(built):
        batch = batches.build_batch(
            session, analyst, method_code, [parameter], [s.sample_no for s in samples], UV, built,
            standards={"crm": batches.StandardChoice(qc_sample, *certified),
                       "ccv": batches.StandardChoice(working, ccv)},
            note=NOTES[parameter])
    truth_of_sample = {s.id: _true_value(demo, day, s, parameter, rng) for s in samples}
    by_label = {p.label: p for p in _positions(session, batch)}
    for slot in batches.awaiting_standard(batches.plan_of(session, batch), list(by_label.values())):
        original = by_label[slot.label[:-2]]
        added = _spike_added(parameter, truth_of_sample[original.sample_id])
        with demo.then(built + timedelta(minutes=2)):
            batches.add_standard(session, analyst, batch, slot.position,
                                 batches.StandardChoice(working, spike_added=added), built + timedelta(minutes=2))
    started = start + timedelta(minutes=25)
    with demo.then(started):
        batches.start_batch(session, analyst, batch, started)
        batches.attach_curve(session, analyst, batch, parameter, made.code, started)
    truth: dict[int, Decimal] = {}
    positions = _positions(session, batch)
    ids = {p.id: p for p in positions}
    for p in positions:
        truth[p.id] = _position_truth(p, ids, truth_of_sample, curve, rng, spike_recovery, parameter)
    return _Bench(batch, truth, curve, started + timedelta(minutes=10))


def _position_truth(p: BatchPosition, ids: dict[int, BatchPosition], truth_of_sample: dict[int, Decimal],
                    curve: _Curve, rng: random.Random, spike_recovery: Decimal | None, parameter: str) -> Decimal:
    role = p.role
    sample_id = p.sample_id or (ids[p.of_position_id].sample_id if p.of_position_id else None)
    if role in (PositionRole.CALIBRATION_BLANK.value, PositionRole.METHOD_BLANK.value):
        return D("0.003") if parameter == "NH3-N" else D("0.002")
    if role == PositionRole.SAMPLE.value:
        return truth_of_sample[p.sample_id]
    if role == PositionRole.DUPLICATE.value:
        return truth_of_sample[sample_id] * D(f"{rng.uniform(0.975, 1.025):.4f}")
    if role == PositionRole.SPIKE.value:
        recovery = spike_recovery if spike_recovery is not None else D(f"{rng.gauss(1.0, 0.03):.3f}")
        recovery = min(max(recovery, D("0.6")), D("1.09")) if spike_recovery is None else recovery
        return truth_of_sample[sample_id] + p.spike_added * recovery
    if role == PositionRole.CRM.value:
        deviation = min(max(rng.gauss(0, 0.012), -0.03), 0.03)
        return p.expected_value * D(f"{1 + deviation:.4f}")
    return p.expected_value * D(f"{1 + min(max(rng.gauss(0, 0.02), -0.05), 0.05):.4f}")  # CCV


def _read(demo: _Demo, bench: _Bench, positions: list[BatchPosition], parameter: str, *,
          reason: str = "") -> datetime:
    """The readings of `positions` in run order, 90 s apart, entered at once from the worksheet."""
    rng = random.Random(f"{SEED}|read|{bench.batch.batch_no}|{len(positions)}")
    absorbances = {p.id: _absorbance(bench.curve, bench.truth[p.id], rng) for p in positions}
    for p in positions:
        if p.role == PositionRole.SPIKE.value and p.of_position_id in absorbances:
            absorbances[p.id] = _spike_absorbance(bench, p, absorbances, rng)
    readings = []
    moment = bench.measured
    for p in positions:
        readings.append(results.ReadingInput(position_id=p.id, parameter=parameter, reading=absorbances[p.id],
                                             measured_at=moment))
        moment += timedelta(seconds=90)
    with demo.then(moment + timedelta(minutes=3)):
        results.record_results(demo.session, demo.user("analyst"), bench.batch, readings, reason=reason)
    bench.measured = moment + timedelta(minutes=5)
    return moment + timedelta(minutes=5)


def _spike_absorbance(bench: _Bench, spike: BatchPosition, absorbances: dict[int, Decimal],
                      rng: random.Random) -> Decimal:
    """The spike's reading, read again while the noise of two readings would take a spike that
    truly recovered 85–115 % outside 80–120 % (a small TP spike, 0.040 mg/L, is about 0.025 A):
    the demo's QC fails only where it means to (the failing spike, 72 %)."""
    original, added, slope = spike.of_position_id, spike.spike_added, bench.curve.slope
    truly = (bench.truth[spike.id] - bench.truth[original]) / added
    reading = absorbances[spike.id]
    if not D("0.85") <= truly <= D("1.15"):
        return reading
    for _ in range(50):
        measured = (reading - absorbances[original]) / slope / added
        if D("0.85") <= measured <= D("1.15"):
            break
        reading = _absorbance(bench.curve, bench.truth[spike.id], rng)
    return reading


def _submit(demo: _Demo, batch: AnalysisBatch, at: datetime) -> None:
    with demo.then(at):
        submission.submit_batch(demo.session, demo.user("analyst"), batch, demo.password, at=at)


def _signed_curve_batch(demo: _Demo, parameter: str, day: _Round, start: datetime, *,
                        failing_spike: bool = False) -> AnalysisBatch | None:
    samples = day.with_parameter(demo.session, parameter)
    if not samples:
        return None
    bench = _curve_batch(demo, parameter, day, samples, start,
                         spike_recovery=D("0.72") if failing_spike else None)
    done = _read(demo, bench, _positions(demo.session, bench.batch), parameter)
    if failing_spike:
        done = _rerun_spike(demo, bench, parameter, done)
    _submit(demo, bench.batch, done + timedelta(minutes=20))
    return bench.batch


def _rerun_spike(demo: _Demo, bench: _Bench, parameter: str, at: datetime) -> datetime:
    """The spike recovered 72 %: QC fails; the analyst finds the spiked tube was not mixed before
    colour development, reruns the spike (a new position), and it passes."""
    session, analyst = demo.session, demo.user("analyst")
    with demo.then(at):
        outcome = qc.evaluate_batch(session, analyst, bench.batch, at)
    failed = [e for e in outcome.failures if e.kind == "spike"]
    recovery = round(failed[0].value)
    answered = at + timedelta(minutes=10)
    with demo.then(answered):
        action = corrective.record_corrective_action(
            session, analyst, failed[0].id, "rerun",
            f"加标回收率 {recovery}%，低于 80%–120%。检查发现加标样比色管显色前未充分摇匀，"
            f"取同一样品重新加标（同一标准使用液）测定。/ Spike recovery {recovery} %, below 80–120 %: "
            "the spiked tube was not mixed before colour development; the sample is spiked again from the same "
            "working solution and measured again.", at=answered, batch=bench.batch)
    rerun = session.get(BatchPosition, action.rerun_position_id)
    original = session.get(BatchPosition, rerun.of_position_id)
    rng = random.Random(f"{SEED}|rerun|{bench.batch.batch_no}")
    unspiked = bench.truth[original.id]
    bench.truth[rerun.id] = unspiked + rerun.spike_added * D(f"{rng.uniform(0.96, 1.02):.3f}")
    bench.measured = answered + timedelta(minutes=40)
    return _read(demo, bench, [rerun], parameter)


# ---------------------------------------------------------------- metals on the ICP-MS

METAL_LEVELS = {"Cu": (1.5, 4.0), "Zn": (3.0, 15.0), "Pb": (0.3, 2.0), "Cd": (0.02, 0.12)}
SRM_DILUTION = "SRM 1640a 十倍稀释质控液（Cu 约 8.6 μg/L）"  # app.reference_materials.demo
METALS_INTERMEDIATE = "重金属混合标准中间液 100 μg/L（Cd 10 μg/L）"


def _metals_standards(demo: _Demo, days_ago: int) -> tuple[str, str]:
    """The QC sample (SRM 1640a diluted ten times) and the metals working solution in use that day."""
    session = demo.session
    if days_ago <= 6:  # the materials demo prepared both within their shelf lives
        srm = session.scalars(select(StandardSolution.barcode).where(StandardSolution.name == SRM_DILUTION)).one()
        metals = session.scalars(select(StandardSolution.barcode).where(
            StandardSolution.name == METALS_INTERMEDIATE)).one()
        return srm, metals
    unit = _unit_of(demo, "SRM 1640a", 0)
    made = solutions.prepare_solution(session, demo.user("analyst"), solutions.SolutionFacts(
        parent_barcode=unit.barcode, name=f"SRM 1640a 十倍稀释质控液（{demo.today - timedelta(days=days_ago):%m-%d}）",
        aliquot=D(10), aliquot_unit="mL", final_volume=D(100), final_volume_unit="mL", output_unit="μg/L",
        solvent="2% 硝酸（优级纯）", prepared_at=demo.at(days_ago, 8, 10), shelf_life_days=14,
        devices=(PIPETTE_10, FLASK_100), density=D("1.0075"), notes="密度取证书值 1.0075 g/mL（22 ℃）。"))
    return made.barcode, demo.standards["metals"]


def _metal_truth(p: BatchPosition, parameter: str, rng: random.Random) -> Decimal | None:
    """What the ICP-MS reads at a position (μg/L); None: not measured for this element there."""
    if p.role in (PositionRole.CALIBRATION_BLANK.value, PositionRole.METHOD_BLANK.value):
        return D(f"{rng.uniform(0.0, 0.03):.4f}")
    if p.role in (PositionRole.CRM.value, PositionRole.CCV.value, PositionRole.SPIKE.value) and parameter != "Cu":
        return None
    low, high = METAL_LEVELS[parameter]
    rnd = random.Random(f"{SEED}|metal|{p.sample_id}|{parameter}")
    sample = D(f"{rnd.uniform(low, high):.4f}")
    if p.role == PositionRole.SAMPLE.value:
        return sample
    if p.role == PositionRole.DUPLICATE.value:
        return sample * D(f"{rng.uniform(0.97, 1.03):.4f}")
    if p.role == PositionRole.SPIKE.value:
        return sample + p.spike_added * D(f"{rng.uniform(0.92, 1.06):.3f}")
    return p.expected_value * D(f"{rng.uniform(0.97, 1.03):.4f}")  # CRM, CCV


def _icpms_batch(demo: _Demo, samples: list[Sample], days_ago: int, built: datetime) -> AnalysisBatch:
    session, analyst = demo.session, demo.user("analyst")
    srm, metals = _metals_standards(demo, days_ago)
    with demo.then(built):
        batch = batches.build_batch(
            session, analyst, METALS_METHOD, METALS, [s.sample_no for s in samples], ICPMS, built,
            standards={"crm": batches.StandardChoice(srm, "8.57", "0.43"),
                       "ccv": batches.StandardChoice(metals, "100"),
                       "spike": batches.StandardChoice(metals, spike_added="10.0")},
            note="QC 样：SRM 1640a 十倍稀释，Cu 8.57 μg/L（85.1 μg/kg × 1.0075 g/mL ÷ 10），实验室控制限 ±5%；"
                 "加标与 CCV 以 Cu 评价。/ QC sample SRM 1640a diluted 10×; spike and CCV judged on Cu.")
    started = built + timedelta(minutes=20)
    with demo.then(started):
        batches.start_batch(session, analyst, batch, started)
    return batch


def masshunter_table(session: Session, batch: AnalysisBatch, first: datetime, rng: random.Random) -> bytes:
    """The batch table as MassHunter 4.x exports it (two header rows; calibration rows first,
    then one row per position named by its label), for the import service to read."""
    tz = lab_calendar(session).tz
    channels = (("63", "Cu"), ("66", "Zn"), ("111", "Cd"), ("208", "Pb"))
    head = ["Sample", "", "", "", "", ""]
    columns = ["Data File", "Acq. Date-Time", "Type", "Level", "Sample Name", "Dil."]
    for mass, element in channels:
        head += [f"{mass}  {element}  [ He ]", "", "", ""]
        columns += ["CPS", "CPS RSD", "Conc. [ ppb ]", "Conc. RSD"]
    head += ["115  In  [ He ]", ""]
    columns += ["CPS", "CPS RSD"]
    lines = [",".join(head), ",".join(columns)]
    moment = first
    rows: list[tuple[str, str, str, dict[str, Decimal | None]]] = [
        ("CalBlk", "1", "Cal Blank", {e: D(0) for _, e in channels}),
        *[("CalStd", str(n + 2), f"Std {level} ppb", {e: D(level) for _, e in channels})
          for n, level in enumerate(("1", "5", "10", "50", "100"))]]
    for p in _positions(session, batch):
        rows.append(("Sample", "", p.label, {e: _metal_truth(p, e, rng) for _, e in channels}))
    for n, (kind, level, name, values) in enumerate(rows, start=1):
        cells = [f"{n:03d}{'SMPL' if kind == 'Sample' else 'CALS'}.d", f"{moment.astimezone(tz):%Y/%m/%d %H:%M:%S}",
                 kind, level, name, "1"]
        for _, element in channels:
            value = values[element]
            if value is None:
                cells += ["", "", "", ""]
            else:
                cps = value * 1800 + D(rng.randint(5, 40))
                cells += [f"{cps:.2f}", f"{rng.uniform(0.6, 3.5):.1f}", f"{value:.4f}", f"{rng.uniform(0.6, 4):.1f}"]
        cells += [f"{rng.uniform(240000, 256000):.1f}", f"{rng.uniform(0.7, 1.6):.1f}"]
        lines.append(",".join(cells))
        moment += timedelta(seconds=208)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _imported_icpms_batch(demo: _Demo, day: _Round) -> AnalysisBatch | None:
    """The metals of one round on the ICP-MS: the batch table exported from MassHunter, imported
    (the raw file kept by SHA-256), then signed."""
    samples = day.with_parameter(demo.session, "Cu")
    if not samples:
        return None
    built = demo.at(day.days_ago, 14, 30)
    batch = _icpms_batch(demo, samples, day.days_ago, built)
    rng = random.Random(f"{SEED}|masshunter|{batch.batch_no}")
    first = built + timedelta(minutes=40)
    content = masshunter_table(demo.session, batch, first, rng)
    imported = first + timedelta(hours=2)
    with demo.then(imported):
        imports.import_file(demo.session, demo.user("analyst"), batch, "AGILENT-ICPMS",
                            f"{demo.today - timedelta(days=day.days_ago):%Y%m%d}_metals_batch.csv", content,
                            demo.store)
    _submit(demo, batch, imported + timedelta(minutes=30))
    return batch


def last_working_afternoon(calendar: LabCalendar, now: datetime) -> datetime:
    """13:30 lab time on the latest working day (Monday to Friday) whose afternoon work, an hour
    of it, is over by `now`: the demo's bench work of "today" happens in working hours whenever
    the demo is loaded, so no bulk off-hours entry (A12) depends on the hour of loading."""
    day = calendar.local_date(now)
    while True:
        moment = datetime.combine(day, time(13, 30), tzinfo=calendar.tz).astimezone(UTC)
        if day.weekday() < 5 and moment + timedelta(hours=1) <= now:
            return moment
        day -= timedelta(days=1)


def _metals_today(demo: _Demo, rounds: list[_Round]) -> None:
    """The latest working day at the ICP-MS (the metals keep 14 days): one batch running with half
    its results typed in (the analyst's worklist), one whose CCV read 14 % high and waits for a
    corrective action (the QC worklist card)."""
    session, analyst = demo.session, demo.user("analyst")
    afternoon = last_working_afternoon(lab_calendar(session), utcnow())
    waiting = [s for r in rounds if r.days_ago < METALS_KEEP_DAYS and r.received_at <= afternoon - timedelta(hours=3)
               for s in r.with_parameter(session, "Cu")]
    if len(waiting) < 2:
        return
    halves = (waiting[: len(waiting) // 2], waiting[len(waiting) // 2:])
    for n, samples in enumerate(halves):
        built = afternoon - timedelta(hours=2 - n * 2)
        batch = _icpms_batch(demo, samples, 0, built)
        positions = _positions(session, batch)
        rng = random.Random(f"{SEED}|today|{n}")
        measured = built + timedelta(minutes=30)
        readings = []
        chosen = positions if n == 0 else positions[: len(positions) // 2]
        for p in chosen:
            for element in METALS:
                value = _metal_truth(p, element, rng)
                if value is None:
                    continue
                if n == 0 and p.role == PositionRole.CCV.value:
                    value = p.expected_value * D("1.14")
                readings.append(results.ReadingInput(position_id=p.id, parameter=element, reading=value.quantize(
                    D("0.0001")), measured_at=measured))
            measured += timedelta(seconds=200)
        with demo.then(measured):
            results.record_results(session, analyst, batch, readings)
        if n == 0:
            with demo.then(measured + timedelta(minutes=5)):
                qc.evaluate_batch(session, analyst, batch, measured + timedelta(minutes=5))


# ---------------------------------------------------------------- baselines and loading


def _baselines(demo: _Demo, at: datetime) -> None:
    """The quality manager sets the NH3-N spike and QC-sample charts' limits from their first 20 points."""
    method = demo.methods[NH3N]
    with demo.then(at):
        for kind in ("spike", "crm"):
            control_charts.set_baseline_from(demo.session, demo.user("quality"), method, "NH3-N", kind, first=20)


def has_analysis_demo(session: Session) -> bool:
    return session.scalars(select(Method.id).where(Method.code == NH3N).limit(1)).first() is not None


def load_analysis_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """The month of analysis after the lab demo (app.demo.load_demo calls it last)."""
    from app.demo import DEMO_PASSWORD

    if has_analysis_demo(session):
        return
    today = lab_calendar(session).today()
    demo = _Demo(session, users, store, DEMO_PASSWORD, today, _clock(), random.Random(SEED))
    _register_methods(demo)
    _qualify(demo)
    _evaluation_standards(demo)
    days = round_days(session, today, users["sampler"])
    # the metals round on the ICP-MS: a day with a metals section, after the GBW08608 unit was opened
    demo.metals_day = next((d for n, d in enumerate(days) if n % 2 == 0 and d <= ICPMS_LATEST), None)
    _standards(demo, days)
    lab = lab_demo.DemoActs(session, users, store, DEMO_PASSWORD, today, lab_demo._clock())
    rounds = []
    failing = min(days, key=lambda d: abs(d - FAILED_SPIKE_DAYS_AGO)) if days else None
    signed = 0
    for n, days_ago in enumerate(days):
        day = _enter_round(demo, lab, n, days_ago)
        rounds.append(day)
        if _signed_curve_batch(demo, "NH3-N", day, demo.at(days_ago, 14, 30), failing_spike=days_ago == failing):
            signed += 1
        if n % TP_EVERY == 2:
            _signed_curve_batch(demo, "TP", day, demo.at(days_ago, 16, 10))
        if days_ago == demo.metals_day:
            _imported_icpms_batch(demo, day)
        if signed == 20:
            _baselines(demo, demo.at(days_ago, 17, 30))
    _metals_today(demo, rounds)
