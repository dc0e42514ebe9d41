"""Demo reference materials: the CRMs, standard solutions and reagents of a water lab, entered
through the real services as the demo users would on the pages — the custodian registers
materials, lots (each with its certificate PDF) and reagents and receives the units; analysts
and the technical manager open units, prepare solutions and record uses — at realistic times
in the past, relative to the lab's "today".

The materials are modelled on certificates water labs hold: a GBW(E) ammonia-nitrogen solution
(1000 mg/L), a GBW08608-style multi-element solution (Cu, Pb, Zn, Cd, Ni, Cr in μg/mL), an anion
mix (F⁻, Cl⁻, NO₃⁻, SO₄²⁻), a COD standard (potassium hydrogen phthalate), NIST SRM 1640a "Trace
Elements in Natural Water" (mass fractions in μg/kg: diluting it by volume needs its density),
and a GSB total-phosphorus standard sample. The certified values, uncertainties, lot numbers and
certificate numbers are ILLUSTRATIVE: plausible for such certificates, not copied from any; the
certificate PDFs are one-page summaries generated here and say so.

What the demo shows, relative to today: a two-step dilution chain (NH3-N 1000 mg/L → 100 mg/L
stock solution → 1.00 mg/L working solution, generation 2) and a metals intermediate solution;
an opened COD unit of a lot that expired 12 days ago (the gate refuses it; its earlier use as a
QC check was valid), with a sealed unit of it still on the shelf and one disposed of; solutions
and a sealed lot expiring within 30 days; two materials below their minimum stock; reagents
sealed, opened, and one expired on the shelf. Idempotent: a material whose certificate number
exists is left alone with everything below it, and so is a reagent whose name and lot exist.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache

from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.files import FileStore
from app.core.labtime import LabCalendar, lab_calendar
from app.core.pdf import SANS_FONTS, render_pdf
from app.instruments.service import Upload
from app.people.models import User
from app.reference_materials import service, solutions
from app.reference_materials.models import ReagentLot, ReferenceMaterial, StandardSolution, StockUnit

D = Decimal

# ---------------------------------------------------------------- what the demo holds


@dataclass(frozen=True)
class Value:
    analyte: str
    value: str
    unit: str
    expanded: str | None = None  # U
    k: str | None = "2"
    certified: bool = True


@dataclass(frozen=True)
class When:
    days_ago: int
    hour: int = 9
    minute: int = 30


@dataclass(frozen=True)
class Opening:
    unit: int  # index among the lot's units
    when: When
    by: str  # demo username


@dataclass(frozen=True)
class Preparation:
    key: str  # how later steps name this solution
    parent: str  # "unit:<index>" or the key of an earlier solution
    name: str
    aliquot: str
    final_volume: str
    devices: tuple[solutions.DeviceFacts, ...]
    output_unit: str
    solvent: str
    when: When
    shelf_life_days: int
    by: str
    density: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class Use:
    item: str  # "unit:<index>" or a solution key
    when: When
    quantity: str
    quantity_unit: str
    purpose: str
    by: str


@dataclass(frozen=True)
class Disposal:
    unit: int
    when: When
    reason: str
    by: str = "custodian"


@dataclass(frozen=True)
class DemoLot:
    lot_no: str
    expires_in_days: int  # relative to today; negative: expired
    values: tuple[Value, ...]
    received: When
    units: int
    quantity: str
    quantity_unit: str
    openings: tuple[Opening, ...] = ()
    preparations: tuple[Preparation, ...] = ()
    uses: tuple[Use, ...] = ()
    disposals: tuple[Disposal, ...] = ()


@dataclass(frozen=True)
class DemoMaterial:
    certificate_no: str
    name_zh: str
    name_en: str
    producer: str
    producer_en: str
    matrix: str
    storage_conditions: str
    hazard_notes: str
    opened_shelf_life_days: int | None
    min_stock_units: int
    lot: DemoLot


@dataclass(frozen=True)
class DemoReagent:
    name: str
    grade: str
    supplier: str
    lot_no: str
    expires_in_days: int
    received: When
    quantity: str
    quantity_unit: str
    opened_shelf_life_days: int | None = None
    storage_conditions: str = ""
    opened: tuple[When, str] | None = None  # when, by
    uses: tuple[Use, ...] = field(default_factory=tuple)


def _device(role: str, name: str, tolerance: str, unit: str = "mL", glass_class: str = "A") -> solutions.DeviceFacts:
    return solutions.DeviceFacts(role, name, D(tolerance), unit, glass_class)


PIPETTE_10 = _device("aliquot", "10 mL 单标线吸量管", "0.020")
PIPETTE_5 = _device("aliquot", "5 mL 单标线吸量管", "0.015")
FLASK_100 = _device("final_volume", "100 mL 单标线容量瓶", "0.10")
FLASK_500 = _device("final_volume", "500 mL 单标线容量瓶", "0.25")

IERM = ("生态环境部标准样品研究所",
        "Institute for Environmental Reference Materials, Ministry of Ecology and Environment")
NIM = ("中国计量科学研究院", "National Institute of Metrology, China")
NCATN = ("国家有色金属及电子材料分析测试中心",
         "National Analysis and Testing Center for Nonferrous Metals and Electronic Materials")
NIST = ("美国国家标准与技术研究院（NIST）", "National Institute of Standards and Technology (NIST)")

NH3N_CERTIFICATE = "GBW(E)083519"
COD_CERTIFICATE = "GBW(E)082057"

MATERIALS = (
    DemoMaterial(
        NH3N_CERTIFICATE, "水中氨氮溶液标准物质", "Ammonia nitrogen in water, solution", *IERM, "水（无氨水）",
        "2–8 ℃ 冷藏，避光", "", 60, 3,
        DemoLot(
            "B23050187", 400, (Value("NH3-N", "1000", "mg/L", "8"),), When(45, 10, 20), 5, "20", "mL",
            openings=(Opening(0, When(20, 9, 5), "analyst"),),
            preparations=(
                Preparation("nh3n_stock", "unit:0", "氨氮标准贮备液 100 mg/L", "10", "100", (PIPETTE_10, FLASK_100),
                            "mg/L", "无氨水", When(12, 9, 40), 30, "analyst",
                            notes="HJ 535-2009 6.3：吸取 10.00 mL 标准物质，无氨水定容至 100 mL，4 ℃ 保存。"),
                Preparation("nh3n_working", "nh3n_stock", "氨氮标准使用液 1.00 mg/L", "5", "500",
                            (PIPETTE_5, FLASK_500), "mg/L", "无氨水", When(1, 8, 50), 7, "analyst",
                            notes="HJ 535-2009 6.4：临用前由贮备液稀释。"),
            ),
            uses=(Use("nh3n_working", When(1, 9, 30), "31.5", "mL", "HJ 535-2009 校准曲线（0–10.0 mL，8 点）",
                      "analyst"),),
        ),
    ),
    DemoMaterial(
        "GBW08608", "水中铜、铅、锌、镉、镍、铬成分分析标准物质", "Cu, Pb, Zn, Cd, Ni and Cr in water", *NCATN,
        "水（1% 硝酸介质）", "室温，避光密封保存", "含硝酸，腐蚀性：开启时戴手套和护目镜。", 90, 2,
        DemoLot(
            "2023b", 500,
            (Value("Cu", "1.00", "μg/mL", "0.02"), Value("Pb", "1.00", "μg/mL", "0.02"),
             Value("Zn", "1.00", "μg/mL", "0.03"), Value("Cd", "0.100", "μg/mL", "0.003"),
             Value("Ni", "1.00", "μg/mL", "0.02"), Value("Cr", "1.00", "μg/mL", "0.02")),
            When(90, 14, 10), 3, "20", "mL",
            openings=(Opening(0, When(30, 10, 0), "technical"),),
            preparations=(
                Preparation("metals_intermediate", "unit:0", "重金属混合标准中间液 100 μg/L（Cd 10 μg/L）", "10", "100",
                            (PIPETTE_10, FLASK_100), "μg/L", "1% 硝酸（优级纯）", When(8, 10, 15), 30, "technical"),
            ),
            uses=(Use("metals_intermediate", When(7, 9, 0), "20", "mL", "HJ 700-2014 ICP-MS 校准曲线", "technical"),),
        ),
    ),
    DemoMaterial(
        "GBW(E)083023", "水中阴离子混合溶液标准物质", "Anions (F⁻, Cl⁻, NO₃⁻, SO₄²⁻) in water, solution", *NIM,
        "水", "2–8 ℃ 冷藏", "", 180, 1,
        DemoLot(
            "20230612", 300,
            (Value("F-", "100.0", "mg/L", "1.0"), Value("Cl-", "500", "mg/L", "4"),
             Value("NO3-", "500", "mg/L", "4"), Value("SO42-", "1000", "mg/L", "8")),
            When(60, 15, 0), 2, "50", "mL",
            openings=(Opening(0, When(25, 9, 15), "analyst"),),
            uses=(Use("unit:0", When(10, 10, 5), "5", "mL", "HJ 84-2016 离子色谱 校准曲线（逐级稀释）", "analyst"),),
        ),
    ),
    DemoMaterial(
        COD_CERTIFICATE, "化学需氧量（COD）溶液标准物质（邻苯二甲酸氢钾）",
        "Chemical oxygen demand (potassium hydrogen phthalate), solution", *IERM, "水", "2–8 ℃ 冷藏，避光",
        "", 120, 2,
        DemoLot(
            "B22110362", -12, (Value("COD", "500", "mg/L", "12"),), When(200, 11, 0), 3, "20", "mL",
            openings=(Opening(0, When(100, 9, 0), "analyst"),),
            uses=(Use("unit:0", When(40, 14, 30), "10", "mL", "HJ 828-2017 质控样（有证标准物质核查）", "analyst"),),
            disposals=(Disposal(2, When(5, 16, 0), "批次已过有效期，按规定报废 / the lot has expired"),),
        ),
    ),
    DemoMaterial(
        "SRM 1640a", "天然水中痕量元素", "Trace Elements in Natural Water", *NIST, "天然水（酸化）",
        "室温，密封；密度 1.0075 g/mL（22 ℃，按证书）", "含约 2% 硝酸。", 365, 2,
        DemoLot(
            "1640a-3", 600,
            (Value("As", "8.08", "μg/kg", "0.07"), Value("Cd", "3.99", "μg/kg", "0.07"),
             Value("Cu", "85.1", "μg/kg", "0.5"), Value("Pb", "12.10", "μg/kg", "0.05"),
             Value("Ni", "25.1", "μg/kg", "0.2"), Value("Zn", "55.2", "μg/kg", "0.4"),
             Value("Se", "20.1", "μg/kg", certified=False, k=None)),
            When(120, 10, 45), 1, "250", "mL",
            openings=(Opening(0, When(40, 13, 20), "technical"),),
            preparations=(
                Preparation("srm_dilution", "unit:0", "SRM 1640a 十倍稀释质控液（Cu 约 8.6 μg/L）", "10", "100",
                            (PIPETTE_10, FLASK_100), "μg/L", "2% 硝酸（优级纯）", When(6, 9, 50), 14, "technical",
                            density="1.0075", notes="密度取证书值 1.0075 g/mL（22 ℃）。"),
            ),
            uses=(Use("srm_dilution", When(6, 11, 0), "20", "mL", "HJ 700-2014 ICP-MS 有证标准物质核查", "technical"),),
        ),
    ),
    DemoMaterial(
        "GSB 07-3168-2014", "水质 总磷标准样品", "Total phosphorus in water, standard sample", *IERM, "水",
        "2–8 ℃ 冷藏", "", None, 1,
        DemoLot("201906", 20, (Value("TP", "200", "mg/L", "3"),), When(300, 10, 0), 2, "20", "mL"),
    ),
)

SINOPHARM = "国药集团化学试剂有限公司"
REAGENTS = (
    DemoReagent("纳氏试剂", "分析纯", SINOPHARM, "20240815", 160, When(40, 10, 30), "250", "mL", 90,
                "2–8 ℃，避光，密塞", opened=(When(15, 8, 40), "analyst"),
                uses=(Use("reagent", When(1, 9, 35), "12", "mL", "HJ 535-2009 显色（校准曲线与样品）", "analyst"),)),
    DemoReagent("酒石酸钾钠", "分析纯 AR", "西陇科学股份有限公司", "20240503", 700, When(30, 14, 0), "500", "g",
                storage_conditions="室温，干燥"),
    DemoReagent("硫酸", "优级纯 GR", SINOPHARM, "20231120", 900, When(90, 10, 0), "500", "mL",
                storage_conditions="阴凉通风，与碱类分开存放", opened=(When(60, 9, 10), "analyst")),
    DemoReagent("过硫酸钾", "分析纯 AR", "天津市科密欧化学试剂有限公司", "20220311", -20, When(400, 15, 30), "500", "g",
                storage_conditions="阴凉干燥，避光"),
    # digestion of metals (HJ 677-2013): the lab demo's digestion batch uses it
    DemoReagent("硝酸", "优级纯 GR", SINOPHARM, "20240322", 540, When(35, 10, 0), "500", "mL",
                storage_conditions="阴凉通风，与还原剂、碱类分开存放", opened=(When(20, 9, 0), "analyst")),
)


# ---------------------------------------------------------------- certificate PDFs


@lru_cache(maxsize=32)
def _render(html: str) -> bytes:
    return render_pdf(html)


def certificate_pdf(material: DemoMaterial, expires_on: date) -> bytes:
    """A one-page certificate summary (a genuine PDF) standing in for the producer's scan."""
    def row(label: str, value: str) -> str:
        return f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"

    def value_row(v: Value) -> str:
        cells = (v.analyte, v.value, v.expanded or "—", v.k or "—", v.unit)
        return "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"

    def head(value_label: str) -> str:
        labels = ("组分 Analyte", value_label, "扩展不确定度 U", "包含因子 k", "单位 Unit")
        return "<tr>" + "".join(f"<th>{escape(label)}</th>" for label in labels) + "</tr>"

    lot = material.lot
    certified = "".join(value_row(v) for v in lot.values if v.certified)
    reference = "".join(value_row(v) for v in lot.values if not v.certified)
    html = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><style>
@page {{ size: A4; margin: 20mm; }}
body {{ font-family: {SANS_FONTS}; font-size: 10.5pt; color: #111; }}
h1 {{ font-size: 16pt; margin: 0 0 2mm; }} h2 {{ font-size: 11.5pt; margin: 6mm 0 2mm; }}
.en {{ color: #555; font-size: 9pt; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 0.5pt solid #888; padding: 1.5mm 2mm; text-align: left; }}
th {{ background: #f0f0f0; }}
table.facts th {{ width: 32%; }}
table.values {{ table-layout: fixed; }}
table.values td:nth-child(n+2), table.values th:nth-child(n+2) {{ text-align: right; }}
.note {{ margin-top: 8mm; font-size: 8.5pt; color: #555; }}
</style></head><body>
<h1>标准物质证书（摘要）<br><span class="en">Certificate of reference material (summary)</span></h1>
<table class="facts">
{row("标准物质编号 Certificate No.", material.certificate_no)}
{row("名称 Name", f"{material.name_zh} / {material.name_en}")}
{row("研制单位 Producer", f"{material.producer} / {material.producer_en}")}
{row("批号 Lot", lot.lot_no)}
{row("有效期至 Valid until", expires_on.isoformat())}
{row("基体 Matrix", material.matrix)}
{row("保存条件 Storage", material.storage_conditions)}
</table>
<h2>认定值 Certified values</h2>
<table class="values">{head("认定值 Value")}{certified}</table>
{f'<h2>参考值（非认定值）Reference values (not certified)</h2><table class="values">{head("参考值 Value")}'
  f'{reference}</table>' if reference else ''}
<p class="note">演示数据：量值为示意，参照此类证书编制，并非任何证书原文。<br>
Demo data: illustrative values modelled on such certificates, not copied from any certificate.</p>
</body></html>"""
    return _render(html)


# ---------------------------------------------------------------- entering it


def _at(calendar: LabCalendar, when: When) -> datetime:
    return datetime.combine(calendar.today() - timedelta(days=when.days_ago), time(when.hour, when.minute),
                            tzinfo=calendar.tz)


def _file_name(material: DemoMaterial) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{material.certificate_no}_{material.lot.lot_no}") + ".pdf"


def _enter_material(session: Session, demo: DemoMaterial, users: dict[str, User], store: FileStore) -> None:
    calendar = lab_calendar(session)
    custodian = users["custodian"]
    lot_facts = demo.lot
    material = service.register_material(session, custodian, service.MaterialFacts(
        certificate_no=demo.certificate_no, name_zh=demo.name_zh, name_en=demo.name_en, producer=demo.producer,
        matrix=demo.matrix, storage_conditions=demo.storage_conditions, hazard_notes=demo.hazard_notes,
        opened_shelf_life_days=demo.opened_shelf_life_days, min_stock_units=demo.min_stock_units,
    ))
    expires_on = calendar.today() + timedelta(days=lot_facts.expires_in_days)
    values = tuple(service.ValueFacts(v.analyte, D(v.value), v.unit, D(v.expanded) if v.expanded else None,
                                      D(v.k) if v.k else None, v.certified) for v in lot_facts.values)
    lot = service.register_lot(
        session, custodian, material, lot_no=lot_facts.lot_no, expires_on=expires_on, values=values, store=store,
        certificate=Upload(io.BytesIO(certificate_pdf(demo, expires_on)), _file_name(demo)),
    )
    units = service.receive_units(session, custodian, lot, count=lot_facts.units, quantity=D(lot_facts.quantity),
                                  quantity_unit=lot_facts.quantity_unit, received_at=_at(calendar, lot_facts.received))
    items: dict[str, StockUnit | StandardSolution] = {f"unit:{i}": unit for i, unit in enumerate(units)}

    def opening(step: Opening) -> None:
        service.open_item(session, users[step.by], units[step.unit], _at(calendar, step.when))

    def preparation(step: Preparation) -> None:
        items[step.key] = solutions.prepare_solution(session, users[step.by], solutions.SolutionFacts(
            parent_barcode=items[step.parent].barcode, name=step.name, aliquot=D(step.aliquot), aliquot_unit="mL",
            final_volume=D(step.final_volume), final_volume_unit="mL", output_unit=step.output_unit,
            solvent=step.solvent, prepared_at=_at(calendar, step.when), shelf_life_days=step.shelf_life_days,
            devices=step.devices, density=D(step.density) if step.density else None, notes=step.notes,
        ))

    def use(step: Use) -> None:
        service.record_use(session, users[step.by], items[step.item], _at(calendar, step.when),
                           quantity=D(step.quantity), quantity_unit=step.quantity_unit, purpose=step.purpose)

    def disposal(step: Disposal) -> None:
        service.dispose_item(session, users[step.by], units[step.unit], reason=step.reason,
                             at=_at(calendar, step.when))

    acts = [(_at(calendar, s.when), 0, lambda s=s: opening(s)) for s in lot_facts.openings]
    acts += [(_at(calendar, s.when), 1, lambda s=s: preparation(s)) for s in lot_facts.preparations]
    acts += [(_at(calendar, s.when), 2, lambda s=s: use(s)) for s in lot_facts.uses]
    acts += [(_at(calendar, s.when), 3, lambda s=s: disposal(s)) for s in lot_facts.disposals]
    for _, _, act in sorted(acts, key=lambda a: (a[0], a[1])):  # in the order they happened
        act()


def _enter_reagent(session: Session, demo: DemoReagent, users: dict[str, User]) -> None:
    calendar = lab_calendar(session)
    reagent = service.register_reagent(session, users["custodian"], service.ReagentFacts(
        name=demo.name, grade=demo.grade, supplier=demo.supplier, lot_no=demo.lot_no,
        expires_on=calendar.today() + timedelta(days=demo.expires_in_days), received_at=_at(calendar, demo.received),
        quantity=D(demo.quantity), quantity_unit=demo.quantity_unit,
        opened_shelf_life_days=demo.opened_shelf_life_days, storage_conditions=demo.storage_conditions,
    ))
    if demo.opened is not None:
        when, by = demo.opened
        service.open_item(session, users[by], reagent, _at(calendar, when))
    for step in demo.uses:
        service.record_use(session, users[step.by], reagent, _at(calendar, step.when), quantity=D(step.quantity),
                           quantity_unit=step.quantity_unit, purpose=step.purpose)


def load_material_demo(session: Session, users: dict[str, User], store: FileStore) -> None:
    """Register the demo materials and reagents that are missing, with their history, as the
    demo users (the custodian receives; analysts and the technical manager open, prepare, use)."""
    existing = set(session.scalars(select(ReferenceMaterial.certificate_no).where(
        ReferenceMaterial.certificate_no.in_([m.certificate_no for m in MATERIALS]))))
    for demo in MATERIALS:
        if demo.certificate_no not in existing:
            _enter_material(session, demo, users, store)
    have = {(name, lot_no) for name, lot_no in session.execute(select(ReagentLot.name, ReagentLot.lot_no).where(
        ReagentLot.name.in_([r.name for r in REAGENTS])))}
    for reagent in REAGENTS:
        if (reagent.name, reagent.lot_no) not in have:
            _enter_reagent(session, reagent, users)
