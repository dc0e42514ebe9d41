"""Report workload: a surface-water monitoring report of N samples × the 25 parameters of a river
round (the 23 of GB 3838-2002 Table 1, water temperature and conductivity), ready for approval.

Written straight into the tables, as the test factories do, the same way into every database:
the lab profile; the cast (analyst, preparer, checker, reviewer, signatory through the people
service); a CMA certificate whose scope holds every (parameter, method, water) but those named
in `out_of_scope`; four river sections; one method per standard (ICP-MS HJ 700-2014 for six
metals) and one submitted batch per method with every sample; results with full precision
(some below the MDL, NH3-N beyond class III at one section); GB 3838-2002 loaded through the
limits service; the report over the samples, evaluated against class III, with the compile,
check and review signatures over its current content; one holding-time deviation by the QM.

Used by the `report_render` bench and by tests/reports/test_document.py (a multi-page report);
once per database (the cast has fixed user names).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from app.analysis.limits import load_builtin_limit_sets
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    LimitSet,
    Method,
    MethodParameter,
    MethodVersion,
)
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.core.signatures import ElectronicSignature
from app.people import service as people
from app.people.models import Laboratory, User
from app.reports.content import load_content
from app.reports.models import (
    AccreditationCertificate,
    AccreditationItem,
    Report,
    ReportSample,
    ReviewAct,
    ReviewLevel,
    ReviewOutcome,
)
from app.samples.lab_models import HoldingDeviation
from app.samples.models import Sample, SampleParameter
from app.sites.models import MonitoringPlan, SamplingTask, Site, SiteChangeRequest, SiteVersion

PASSWORD = "bench-password-42"
CERTIFICATE_NO = "231512340567"

# standard code -> (name, [(parameter, unit, MDL, decimals, below-MDL style)])
METHODS: dict[str, tuple[str, list[tuple[str, str, str, int, str]]]] = {
    "GB 13195-1991": ("水质 水温的测定 温度计或颠倒温度计测定法", [("WT", "℃", "0.1", 1, "mdl_l")]),
    "HJ 1147-2020": ("水质 pH值的测定 电极法", [("pH", "无量纲", "0.01", 2, "mdl_l")]),
    "HJ 506-2009": ("水质 溶解氧的测定 电化学探头法", [("DO", "mg/L", "0.1", 1, "mdl_l")]),
    "HJ 802-2016": ("水质 电导率的测定 电极法", [("Cond", "μS/cm", "1", 0, "mdl_l")]),
    "GB 11892-1989": ("水质 高锰酸盐指数的测定", [("CODMn", "mg/L", "0.5", 1, "mdl_l")]),
    "HJ 828-2017": ("水质 化学需氧量的测定 重铬酸盐法", [("COD", "mg/L", "4", 0, "mdl_l")]),
    "HJ 505-2009": ("水质 五日生化需氧量（BOD5）的测定 稀释与接种法", [("BOD5", "mg/L", "0.5", 1, "mdl_l")]),
    "HJ 535-2009": ("水质 氨氮的测定 纳氏试剂分光光度法", [("NH3-N", "mg/L", "0.025", 3, "mdl_l")]),
    "GB 11893-1989": ("水质 总磷的测定 钼酸铵分光光度法", [("TP", "mg/L", "0.01", 2, "mdl_l")]),
    "HJ 636-2012": ("水质 总氮的测定 碱性过硫酸钾消解紫外分光光度法", [("TN", "mg/L", "0.05", 2, "mdl_l")]),
    "HJ 700-2014": ("水质 65种元素的测定 电感耦合等离子体质谱法", [
        ("Cu", "mg/L", "0.00008", 5, "mdl_l"), ("Zn", "mg/L", "0.00067", 5, "mdl_l"),
        ("Se", "mg/L", "0.00041", 5, "mdl_l"), ("As", "mg/L", "0.00012", 5, "mdl_l"),
        ("Cd", "mg/L", "0.00005", 5, "mdl_l"), ("Pb", "mg/L", "0.00009", 5, "mdl_l")]),
    "HJ 694-2014": ("水质 汞、砷、硒、铋和锑的测定 原子荧光法", [("Hg", "mg/L", "0.00004", 5, "mdl_l")]),
    "HJ 84-2016": ("水质 无机阴离子的测定 离子色谱法", [("F", "mg/L", "0.006", 3, "mdl_l")]),
    "GB 7467-1987": ("水质 六价铬的测定 二苯碳酰二肼分光光度法", [("Cr6+", "mg/L", "0.004", 3, "mdl_l")]),
    "HJ 484-2009": ("水质 氰化物的测定 容量法和分光光度法", [("CN", "mg/L", "0.004", 3, "mdl_l")]),
    "HJ 503-2009": ("水质 挥发酚的测定 4-氨基安替比林分光光度法", [("VPhenol", "mg/L", "0.0003", 4, "mdl_l")]),
    "HJ 970-2018": ("水质 石油类的测定 紫外分光光度法", [("Oil", "mg/L", "0.01", 2, "mdl_l")]),
    "GB 7494-1987": ("水质 阴离子表面活性剂的测定 亚甲蓝分光光度法", [("LAS", "mg/L", "0.05", 2, "mdl_l")]),
    "HJ 1226-2021": ("水质 硫化物的测定 亚甲基蓝分光光度法", [("S2-", "mg/L", "0.003", 3, "mdl_l")]),
    "HJ 347.2-2018": ("水质 粪大肠菌群的测定 多管发酵法", [("FC", "个/L", "20", 0, "mdl_l")]),
}
PARAMETERS = [p for _, (_, params) in METHODS.items() for p, *_ in params]
# typical river values (the base a sample's value varies around), in the method's unit
TYPICAL = {"WT": "12.35", "pH": "7.826", "DO": "7.415", "Cond": "412.6", "CODMn": "3.35", "COD": "14.5",
           "BOD5": "2.45", "NH3-N": "0.3125", "TP": "0.0851", "TN": "1.265", "Cu": "0.002345",
           "Zn": "0.008715", "Se": "0.00031", "As": "0.001125", "Cd": "0.00004", "Pb": "0.000865",
           "Hg": "0.00002", "F": "0.3855", "Cr6+": "0.0065", "CN": "0.002", "VPhenol": "0.00085",
           "Oil": "0.0125", "LAS": "0.035", "S2-": "0.0075", "FC": "1650"}
SITES = (("WS01", "松花江 朱顺屯断面", "Zhushuntun section"), ("WS02", "松花江 大顶子山断面", "Dadingzishan section"),
         ("WS03", "阿什河 阿什河口断面", "Ashi river mouth"), ("WS04", "呼兰河 呼兰河口断面", "Hulan river mouth"))


@dataclass(frozen=True)
class ReportWorld:
    report_id: int
    report_no: str
    signatory: User
    preparer: User
    checker: User
    reviewer: User
    analyst: User
    quality_manager: User


def _user(session, username: str, zh: str, en: str, role: str, since) -> User:
    user = people.create_user(session, None, username, zh, PASSWORD, display_name_en=en, check_permission=False)
    people.grant_role_as_system(session, user, role, "bench", valid_from=since)
    return user


def _value(parameter: str, sample: int) -> Decimal:
    """A value near the typical one, varying by sample; a few below the MDL, NH3-N of every
    fourth sample beyond class III (1.0 mg/L)."""
    base = Decimal(TYPICAL[parameter])
    factor = Decimal(80 + (sample * 37 + len(parameter) * 11) % 45) / 100
    if parameter == "NH3-N" and sample % 4 == 3:
        factor = Decimal("4.15")
    return base * factor


def make_report_world(db: Database, *, samples: int = 20, language: str = "zh",
                      out_of_scope: tuple[str, ...] = (), report_no: str = "BG2026-0099",
                      limit_set: bool = True) -> ReportWorld:
    now = utcnow()
    collected = now - timedelta(days=3)
    year_ago = now - timedelta(days=365)
    with db.transaction() as session:
        if session.scalars(select(Laboratory).limit(1)).first() is None:
            session.add(Laboratory(
                name_zh="黑龙江省哈尔滨生态环境监测中心", name_en="Harbin Ecological Environment Monitoring Centre",
                address_zh="哈尔滨市南岗区学府路 1 号", address_en="1 Xuefu Road, Nangang District, Harbin",
                cma_certificate_no=CERTIFICATE_NO, phone="0451-8600 0000"))
        technical = _user(session, "rw-technical", "郑技术", "Zheng Jishu", "technical_manager", year_ago)
        analyst = _user(session, "rw-analyst", "王分析", "Wang Fenxi", "analyst", year_ago)
        preparer = _user(session, "rw-preparer", "李编制", "Li Bianzhi", "analyst", year_ago)
        checker = _user(session, "rw-checker", "赵校核", "Zhao Jiaohe", "checker", year_ago)
        reviewer = _user(session, "rw-reviewer", "钱审核", "Qian Shenhe", "reviewer", year_ago)
        signatory = _user(session, "rw-signatory", "孙签发", "Sun Qianfa", "signatory", year_ago)
        quality = _user(session, "rw-quality", "周质量", "Zhou Zhiliang", "quality_manager", year_ago)
        session.flush()

        certificate = AccreditationCertificate(certificate_no=CERTIFICATE_NO, issued_by="黑龙江省市场监督管理局",
                                               valid_from=(now - timedelta(days=700)).date(),
                                               valid_to=(now + timedelta(days=1000)).date(),
                                               recorded_at=now, recorded_by_id=technical.id)
        session.add(certificate)
        session.flush()
        session.execute(insert(AccreditationItem), [
            {"certificate_id": certificate.id, "parameter": p, "method_code": code, "matrix": "water",
             "recorded_at": now, "recorded_by_id": technical.id}
            for code, (_, params) in METHODS.items() for p, *_ in params if p not in out_of_scope])

        versions = _sites(session, technical, now)
        tasks = _plan(session, technical, versions, collected, now)
        sample_rows = _samples(session, analyst, versions, tasks, samples, collected, now)
        _batches(session, technical, analyst, sample_rows, collected, now)
        session.add(HoldingDeviation(sample_id=sample_rows[1].id, parameter="BOD5", act="analysis",
                                     reason="培养箱故障，超出保存时间 4 小时后分析；结果仅供参考",
                                     deadline_at=collected + timedelta(hours=12), recorded_at=now,
                                     recorded_by_id=quality.id))

        chosen = None
        if limit_set:
            load_builtin_limit_sets(session)
            chosen = session.scalars(select(LimitSet).where(LimitSet.code == "GB 3838-2002")).first()
        report = Report(report_no=report_no, base_no=report_no, title="2026年12月松花江哈尔滨段地表水例行监测报告",
                        client_name="哈尔滨市生态环境局", client_contact="刘女士 0451-8765 4321", language=language,
                        limit_set_id=chosen.id if chosen else None, target_class="III" if chosen else "",
                        remarks="", state="reviewed", prepared_by_id=preparer.id, created_at=now,
                        verify_token=secrets.token_urlsafe(24))
        session.add(report)
        session.flush()
        session.execute(insert(ReportSample), [{"report_id": report.id, "sample_id": s.id, "position": i}
                                               for i, s in enumerate(sample_rows, start=1)])
        session.flush()
        content_hash = load_content(session, report).content_sha256
        for offset, (level, meaning, user) in enumerate(((ReviewLevel.COMPILE, "compiled", preparer),
                                                         (ReviewLevel.CHECK, "checked", checker),
                                                         (ReviewLevel.REVIEW, "reviewed", reviewer))):
            at = now - timedelta(hours=3 - offset)
            signature = ElectronicSignature(signer_id=user.id, printed_name=user.printed_name, meaning=meaning,
                                            signed_at=at, entity_type="report", entity_id=str(report.id),
                                            content_hash=content_hash)
            session.add(signature)
            session.flush()
            session.add(ReviewAct(report_id=report.id, level=level.value, outcome=ReviewOutcome.SIGNED.value,
                                  content_sha256=content_hash, signature_id=signature.id, acted_at=at,
                                  actor_id=user.id))
        session.flush()
        cast = [signatory, preparer, checker, reviewer, analyst, quality]
        for row in cast:
            session.refresh(row)
            session.expunge(row)
        return ReportWorld(report.id, report_no, *cast)


def _sites(session, technical: User, now) -> list[SiteVersion]:
    versions = []
    for code, zh, en in SITES:
        site = Site(code=code, status="active", created_at=now, created_by_id=technical.id)
        session.add(site)
        session.flush()
        request = SiteChangeRequest(site_id=site.id, kind="create", status="approved", proposed="{}",
                                    reason="bench", submitted_by_id=technical.id, submitted_at=now,
                                    decided_by_id=technical.id, decided_at=now)
        session.add(request)
        session.flush()
        version = SiteVersion(site_id=site.id, version_no=1, valid_from=now - timedelta(days=400), status="active",
                              name_zh=zh, name_en=en, kind="surface_water", latitude=Decimal("45.8"),
                              longitude=Decimal("126.6"), water_body="river", basin="松花江",
                              change_request_id=request.id, approved_by_id=technical.id,
                              approval_ref="哈环函〔2025〕12号", created_at=now)
        session.add(version)
        session.flush()
        site.current_version_id = version.id
        versions.append(version)
    return versions


def _plan(session, technical: User, versions: list[SiteVersion], collected, now) -> list[SamplingTask]:
    """The approved monitoring plan of the month and a task per section on the sampling day."""
    plan = MonitoringPlan(code="PL26-00012", title="2026年12月松花江哈尔滨段例行监测计划",
                          period_start=collected.date().replace(day=1),
                          period_end=collected.date() + timedelta(days=27),
                          status="active", created_by_id=technical.id, created_at=now, approved_by_id=technical.id,
                          approved_at=now)
    session.add(plan)
    session.flush()
    tasks = [SamplingTask(code=f"TK26-{90000 + i:05d}", plan_id=plan.id, site_id=v.site_id,
                          scheduled_on=collected.date(), status="completed", parameters=canonical_json(PARAMETERS),
                          created_at=now, created_by_id=technical.id) for i, v in enumerate(versions)]
    session.add_all(tasks)
    session.flush()
    return tasks


def _samples(session, analyst: User, versions: list[SiteVersion], tasks: list[SamplingTask], count: int, collected,
             now) -> list[Sample]:
    numbers = []
    rows = []
    for i in range(count):
        version = versions[i % len(versions)]
        code = SITES[i % len(SITES)][0]
        number = f"{code}-{collected.strftime('%y%m%d')}-{i // len(SITES) + 1:03d}"
        numbers.append(number)
        rows.append({"sample_no": number, "kind": "routine", "matrix": "water", "scheduled_on": collected.date(),
                     "state": "results_entered", "site_id": version.site_id, "site_version_id": version.id,
                     "task_id": tasks[i % len(versions)].id,
                     "collected_at": collected + timedelta(minutes=20 * i),
                     "received_at": collected + timedelta(hours=4, minutes=20 * i),
                     "registered_at": collected - timedelta(days=1), "registered_by_id": analyst.id,
                     "signed_revision": 1})
    session.execute(insert(Sample), rows)
    found = {s.sample_no: s for s in session.scalars(select(Sample).where(Sample.sample_no.in_(numbers)))}
    ordered = [found[n] for n in numbers]
    session.execute(insert(SampleParameter), [{"sample_id": s.id, "parameter": p}
                                              for s in ordered for p in PARAMETERS])
    return ordered


def _batches(session, technical: User, analyst: User, samples: list[Sample], collected, now) -> None:
    for k, (code, (name, params)) in enumerate(METHODS.items()):
        method = Method(code=code, name_zh=name, name_en="", matrix="water", created_at=now,
                        created_by_id=technical.id)
        session.add(method)
        session.flush()
        version = MethodVersion(method_id=method.id, version=1, valid_from=now - timedelta(days=365),
                                calculation="direct", created_at=now, created_by_id=technical.id)
        session.add(version)
        session.flush()
        session.execute(insert(MethodParameter), [
            {"method_version_id": version.id, "parameter": p, "unit": unit, "mdl": Decimal(mdl), "decimals": decimals,
             "below_mdl": style, "organic": False} for p, unit, mdl, decimals, style in params])
        started = collected + timedelta(hours=6, minutes=10 * k)
        batch = AnalysisBatch(batch_no=f"AB26-{90000 + k:05d}", method_version_id=version.id,
                              parameters=canonical_json([p for p, *_ in params]), state="submitted",
                              analyst_id=analyst.id, created_at=started - timedelta(hours=1), started_at=started,
                              submitted_at=started + timedelta(hours=3), qc_passed=True)
        session.add(batch)
        session.flush()
        session.execute(insert(BatchPosition), [
            {"batch_id": batch.id, "position": i + 1, "role": "sample", "sample_id": s.id, "label": s.sample_no,
             "added_at": started, "added_by_id": analyst.id} for i, s in enumerate(samples)])
        positions = {p.sample_id: p.id for p in session.scalars(
            select(BatchPosition).where(BatchPosition.batch_id == batch.id))}
        results = []
        for i, s in enumerate(samples):
            for p, unit, mdl, _, _ in params:
                value = _value(p, i)
                results.append({"batch_id": batch.id, "position_id": positions[s.id], "sample_id": s.id,
                                "parameter": p, "method_version_id": version.id, "reading": value, "value": value,
                                "unit": unit, "below_mdl": value < Decimal(mdl),
                                "measured_at": started + timedelta(minutes=2 * i), "entered_at": started,
                                "entered_by_id": analyst.id})
        session.execute(insert(AnalysisResult), results)


def report_of(db: Database, world: ReportWorld) -> Report:
    with db.reading() as session:
        report = session.get(Report, world.report_id)
        session.expunge(report)
        return report
