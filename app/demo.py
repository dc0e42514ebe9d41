"""Realistic demo data: one lab, one user per role, as a new lab would set itself up, and the
lab's instruments with a year of history (app.instruments.demo)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.files import FileStore
from app.core.passwords import demo_hashing
from app.core.roles import Role
from app.people import service
from app.people.models import User

DEMO_PASSWORD = "envirolims-demo"


@dataclass(frozen=True)
class DemoUser:
    username: str
    name_zh: str
    name_en: str
    role: Role


DEMO_USERS = (
    DemoUser("admin", "周建国", "Zhou Jianguo", Role.ADMIN),
    DemoUser("quality", "李静", "Li Jing", Role.QUALITY_MANAGER),
    DemoUser("technical", "王磊", "Wang Lei", Role.TECHNICAL_MANAGER),
    DemoUser("sampler", "张伟", "Zhang Wei", Role.SAMPLER),
    DemoUser("custodian", "刘芳", "Liu Fang", Role.CUSTODIAN),
    DemoUser("analyst", "陈晨", "Chen Chen", Role.ANALYST),
    DemoUser("checker", "杨洋", "Yang Yang", Role.CHECKER),
    DemoUser("reviewer", "赵敏", "Zhao Min", Role.REVIEWER),
    DemoUser("signatory", "黄志强", "Huang Zhiqiang", Role.SIGNATORY),
    DemoUser("inspector", "孙丽", "Sun Li", Role.INSPECTOR),
    DemoUser("head", "吴国华", "Wu Guohua", Role.LAB_HEAD),
)


DEMO_PARTS = ("instruments", "materials", "sampling", "lab", "analysis", "reports", "oversight")


def load_demo(session: Session, store: FileStore, *, through: str = DEMO_PARTS[-1]) -> list[DemoUser]:
    """Idempotent: returns the demo logins; creates whatever is missing. Files (certificate
    PDFs) go to `store`. `through` stops after a part (a domain's demo tests load up to theirs,
    so what later parts add cannot blur what they check)."""
    parts = DEMO_PARTS[:DEMO_PARTS.index(through) + 1]
    if service.current_lab(session) is None:
        service.save_lab(
            session, None, check_permission=False,
            name_zh="江城市生态环境监测中心", name_en="Jiangcheng Ecological Environment Monitoring Centre",
            address_zh="江城市滨江路 88 号", address_en="88 Binjiang Road, Jiangcheng",
            cma_certificate_no="231512340987", phone="027-8888 0000",
        )
    users: dict[str, User] = {}
    for demo in DEMO_USERS:
        user = service.find_user(session, demo.username)
        if user is None:
            with demo_hashing():
                user = service.create_user(
                    session, None, demo.username, demo.name_zh, DEMO_PASSWORD,
                    display_name_en=demo.name_en, check_permission=False,
                )
            # staff of long standing: the demo enters the last weeks' work, checked at its own time
            service.grant_role_as_system(session, user, demo.role, "demo data",
                                         valid_from=utcnow() - timedelta(days=730))
        users[demo.username] = user
    # A second role proposed by the admin and awaiting the quality manager: the QM's worklist.
    analyst = users["analyst"]
    from sqlalchemy import select

    from app.people.models import RoleGrant

    pending = session.scalars(select(RoleGrant).where(
        RoleGrant.user_id == analyst.id, RoleGrant.role == Role.SAMPLER.value)).first()
    if pending is None:
        service.propose_role(session, users["admin"], analyst.id, Role.SAMPLER.value,
                             note="现场采样轮岗 / field sampling rotation")
    from app.instruments.demo import load_instrument_demo  # it signs with DEMO_PASSWORD from here

    load_instrument_demo(session, users, store)
    if "materials" not in parts:
        return list(DEMO_USERS)
    from app.reference_materials.demo import load_material_demo

    load_material_demo(session, users, store)
    if "sampling" not in parts:
        return list(DEMO_USERS)
    from app.samples.demo import load_sampling_demo  # sites, plans, a week in the field

    load_sampling_demo(session, users, store)
    if "lab" not in parts:
        return list(DEMO_USERS)
    from app.samples.lab_demo import load_lab_demo  # the week's samples from the field to the bench

    load_lab_demo(session, users, store)
    if "analysis" not in parts:
        return list(DEMO_USERS)
    from app.analysis.demo import load_analysis_demo  # a month of batches, QC and control charts

    load_analysis_demo(session, users, store)
    if "reports" not in parts:
        return list(DEMO_USERS)
    from app.reports.demo import load_report_demo  # CMA scope, signatory scopes, reports in every state

    load_report_demo(session, users, store, DEMO_PASSWORD)
    if "oversight" not in parts:
        return list(DEMO_USERS)
    from app.oversight.demo import load_oversight_demo  # stations, planted anomalies, interference, inspection

    load_oversight_demo(session, users, store)
    return list(DEMO_USERS)
