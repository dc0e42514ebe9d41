"""Permissions, deny by default (DESIGN.md; DOMAIN.md §2 rule 4).

Every route of the app declares what it needs with `require(...)`, or is one of the few
explicitly public ones; the inspector reads everything and changes nothing, refused in the
kernel for every mutating route. The walkers here are also used by tests/test_errors.py.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.auth import PUBLIC, SAFE_METHODS, declared_permission, iter_api_routes, require
from app.core.db import utcnow
from app.core.permissions import INSPECTOR_OWN_PERMISSIONS, READ_PERMISSIONS, ROLE_PERMISSIONS, Permission
from app.core.roles import Role
from app.people import service
from app.people.models import User
from tests.conftest import PASSWORD, login

# ---------------------------------------------------------------- the allow-lists

# Open to anyone. Adding a route here is a security decision: review it.
PUBLIC_ROUTES = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/api/v1/health"),
    ("GET", "/lang/{language}"),
    # a report's status by the SHA-256 of its PDF: what the printed QR page tells anyone
    ("GET", "/api/v1/verify/{sha256}"),
    # checks an uploaded PDF against a report's record; it stores and changes nothing
    ("POST", "/verify/{token}"),
}
# The public report-verification pages (the QR code on every report points here).
PUBLIC_PREFIXES = ("/verify/",)
# Routes that are not FastAPI APIRoutes (so carry no declaration): the OpenAPI document and the
# vendored static files. Anything else of that kind is a route nobody checks.
NON_API_ROUTES = {"/api/v1/openapi.json", "/static"}
# A user's own session, language, password and tokens: every signed-in user, the inspector too.
PERSONAL_ROUTES = {
    ("POST", "/logout"),
    ("POST", "/account/language"),
    ("POST", "/account/password"),
    ("POST", "/account/tokens"),
    ("POST", "/account/tokens/{token_id}/revoke"),
}

# An inspector's own records (issue 10): inspections drawn and their findings, never a lab record.
INSPECTOR_ROUTES = {
    ("POST", "/oversight/inspections/new"),
    ("POST", "/oversight/inspections/{inspection_no}/findings"),
    ("POST", "/oversight/inspections/{inspection_no}/close"),
    ("POST", "/api/v1/inspections"),
}

KNOWN_PERMISSIONS = {p.value for p in Permission} | {PUBLIC}


# ---------------------------------------------------------------- walkers (shared)


def _flat(dependant: Any, kind: str) -> list[Any]:
    found = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        found += _flat(sub, kind)
    return found


# Path parameters named alike on pages of different kinds ({code}, {barcode}) take the object of
# the page's own kind, found by the path's prefix (the first prefix that matches).
OWN_KIND_IDS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/custody/shipments/", {"code": "shipment_code"}),
    ("/receipts/", {"code": "delivery_code"}),
    ("/api/v1/receipts/", {"code": "delivery_code"}),
    ("/storage/disposals/", {"code": "disposal_code"}),
    ("/prep/aliquots/", {"barcode": "aliquot_barcode"}),
    ("/prep/", {"code": "batch_code"}),
    ("/methods/", {"code": "method_code"}),
    ("/curves/", {"code": "curve_code"}),
    ("/limits/", {"code": "limit_code"}),
    ("/oversight/anomaly-rules/", {"code": "rule_code"}),
    ("/oversight/audit/entity/", {"entity_type": "audit_entity_type", "entity_id": "user_id"}),
)


class Endpoint:
    """One (method, path) the app serves, with what it declares and what it takes."""

    def __init__(self, method: str, route: Any) -> None:
        self.method, self.route, self.path = method, route, route.path
        self.permission = declared_permission(route.dependant)
        self.body = {f.alias: f for f in _flat(route.dependant, "body_params")}
        self.query = {f.alias: f for f in _flat(route.dependant, "query_params")}
        self.path_params = [f.alias for f in _flat(route.dependant, "path_params")]
        self.id_params = [f.alias for f in _flat(route.dependant, "path_params")
                          if f.field_info.annotation is int]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def mutating(self) -> bool:
        return self.method not in SAFE_METHODS

    @property
    def is_public(self) -> bool:
        return self.permission == PUBLIC

    def url(self, ids: dict[str, Any] | None = None, default: Any = 1) -> str:
        ids = dict(ids or {})
        for prefix, names in OWN_KIND_IDS:
            if self.path.startswith(prefix):
                ids.update({param: ids[key] for param, key in names.items() if key in ids})
                break
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(ids.get(m.group(1), default)), self.path)

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    found = [
        Endpoint(method, route)
        for route in iter_api_routes(app.routes)
        for method in sorted(route.methods or ())
    ]
    assert found, "the route walker found no routes"
    return found


def non_api_routes(routes: list[Any]) -> list[tuple[str, str]]:
    """Every route (at any depth) that is not an APIRoute: (kind, path)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            continue
        if hasattr(route, "effective_route_contexts"):
            for served in route.effective_route_contexts():
                if not isinstance(served.original_route, APIRoute):
                    inner = getattr(served, "starlette_route", None) or served.original_route
                    found.append((type(served.original_route).__name__, inner.path))
            continue
        found.append((type(route).__name__, route.path))
    return found


def plausible_form(endpoint: Endpoint) -> dict[str, str]:
    """Values a real form would send: the refusal must not depend on the input being wrong."""
    values = {
        "active": "false", "approve": "true", "language": "en", "role": "analyst",
        "password": PASSWORD, "current_password": PASSWORD, "new_password": "a-new-Password-77",
        "username": "new-person", "display_name_zh": "新同事", "display_name_en": "New Person",
        "name_zh": "检测中心", "name": "import script", "reason": "reorganisation",
        "note": "basis: training record 12", "cma_certificate_no": "201912345678",
        "next": "/dashboard",
    }
    return {name: values.get(name, "plausible value") for name in endpoint.body}


def audit_count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def problem(response) -> dict:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()


def make_objects(db, users, data_path: Path | None = None) -> dict[str, Any]:
    """Existing rows for every kind of id a path names: a user, a role grant awaiting a
    decision, an active grant, an API token, an audit event, and an instrument with a
    certificate, a failed check (and the impact assessment it opened), maintenance and an
    attachment. With `data_path` (the app's), the stored files can be served."""
    with db.transaction() as session:
        target = service.create_user(session, None, "target-person", "目标", PASSWORD,
                                     check_permission=False)
        admin = service.get_user(session, users["admin"].id)
        proposed = service.propose_role(session, admin, target.id, "analyst")
        active = service.grant_role_as_system(session, target, "sampler", "test")
        token, _ = service.create_token(session, None, target.id, "probe",
                                        check_permission=False)
        people = {"user_id": target.id, "grant_id": proposed.id, "active_grant_id": active.id,
                  "token_id": token.id, "seq": 1}
    from tests.samples.field_fixtures import make_field_objects

    data_path = data_path if data_path is not None else Path(tempfile.mkdtemp())  # photos need a store
    found = {**people, **make_instrument_objects(db, users["technical_manager"], data_path),
             **make_material_objects(db, users["technical_manager"], data_path),
             **make_site_objects(db, users), **make_plan_objects(db, users),
             **make_field_objects(db, users, data_path), **make_lab_objects(db, users)}
    return {**found, **make_analysis_objects(db, users, data_path, found["barcode"]),
            **make_report_objects(db, users, data_path), **make_oversight_objects(db, users, data_path)}


def make_oversight_objects(db, users, data_path: Path) -> dict[str, Any]:
    """Issue 10: an interference record with an attachment, an anomaly alarm, and an inspection
    over the issued report with a finding (make_report_objects runs first)."""
    from app.instruments.service import Upload
    from app.oversight import inspections, interference
    from app.oversight.models import AlarmSample, AnomalyAlarm
    from app.samples.models import Sample

    now = utcnow()
    with db.transaction() as session:
        filer = session.get(User, users["analyst"].id)
        record = interference.file_interference(
            session, filer, interference.InterferenceInput(
                interferer_name="某区领导", channel="phone", request_kind="alter_data",
                what_was_asked="要求降低氨氮结果", lab_response="refused", occurred_at=now - timedelta(hours=2)),
            [Upload(io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "note.pdf")])
        attachment_id = interference.record_detail(session, filer, record.record_no).attachments[0][0].id
        alarm = AnomalyAlarm(alarm_no="YC26-99999", rule_code="A06", rule_version=0, fingerprint="f" * 64,
                             summary_zh="氨氮大于总氮", summary_en="NH3-N above TN", evidence="{}", parameter="NH3-N",
                             responsible_user_id=users["analyst"].id, raised_at=now)
        session.add(alarm)
        session.flush()
        sample_id = session.scalars(select(Sample.id).order_by(Sample.id)).first()
        if sample_id is not None:
            session.add(AlarmSample(alarm_id=alarm.id, sample_id=sample_id))
        inspector = session.get(User, users["inspector"].id)
        today = db.calendar.today()
        drawn = inspections.draw_inspection(session, inspector, title="双随机抽查", target="reports",
                                            period_from=today - timedelta(days=2), period_to=today + timedelta(days=1),
                                            scope=None, size=1, seed="0" * 32)
        report_id = json.loads(drawn.picked)[0]
        finding = inspections.record_finding(session, inspector, drawn, "report", report_id, "observation",
                                             "原始记录可追溯")
        return {"record_no": record.record_no, "attachment_id": attachment_id, "alarm_no": alarm.alarm_no,
                "inspection_no": drawn.inspection_no, "finding_id": finding.id, "rule_code": "A06",
                "audit_entity_type": "app_user"}


def make_report_objects(db, users, data_path: Path) -> dict[str, Any]:
    """Issue 9: an issued report whose rendered and signed PDFs are in the store (so the PDF
    routes serve them), and a CMA certificate."""
    from app.core.files import file_store
    from app.core.pdf import render_pdf
    from app.reports.models import AccreditationCertificate, Report
    from tests.reports.conftest import make_report

    store = file_store(data_path)
    pdf = render_pdf("<p>检测报告 BG-OBJ</p>")
    sha256, _ = store.put(io.BytesIO(pdf), max_bytes=len(pdf) + 1)
    report = make_report(db, users["analyst"], [], state="issued", report_no="BG2026-OBJ1")
    with db.transaction() as session:
        row = session.get(Report, report.id)
        row.rendered_pdf_sha256 = row.pdf_sha256 = sha256
        row.issued_at = utcnow()
        certificate = AccreditationCertificate(
            certificate_no="231512340987", issued_by="省市场监督管理局", valid_from=utcnow().date(),
            valid_to=utcnow().date() + timedelta(days=365), recorded_at=utcnow(),
            recorded_by_id=users["technical_manager"].id)
        session.add(certificate)
        session.flush()
        return {"report_no": row.report_no, "token": row.verify_token, "sha256": sha256,
                "certificate_id": certificate.id}


def make_analysis_objects(db, users, data_path: Path, solution_barcode: str) -> dict[str, Any]:
    """Issue 8: an ICP-MS batch with an instrument file imported into it (its results, the
    import), the method with a qualification whose scan is stored, an NH3-N calibration curve,
    the built-in limit sets and a chart address."""
    from app.analysis import curves, imports, limits, qualifications
    from app.analysis.models import AnalysisBatch, AnalysisResult, Method
    from app.core.files import file_store, store_upload
    from tests.analysis.conftest import calibrated_instrument, make_method
    from tests.analysis.curve_fixtures import facts
    from tests.analysis.import_fixtures import icpms_batch, masshunter_now
    from tests.reference_materials.conftest import prepare

    store = file_store(data_path)
    technical, analyst = users["technical_manager"], users["analyst"]
    icpms = icpms_batch(db, users, store, prefix="OBJ-ICP")
    with db.transaction() as session:
        batch = session.get(AnalysisBatch, icpms.batch.id)
        imported = imports.import_file(session, session.get(User, analyst.id), batch, "AGILENT-ICPMS",
                                       "batch.csv", masshunter_now(db), store)
        result_id = session.scalar(select(AnalysisResult.id).where(AnalysisResult.batch_id == batch.id))
        method = session.get(Method, icpms.method.method_id)
        scan = store_upload(session, technical, store, io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "certificate.pdf",
                            allowed_types=("application/pdf",), max_bytes=1024 * 1024)
        today = db.calendar.today()
        qualification = qualifications.grant_qualification(
            session, session.get(User, technical.id), session.get(User, analyst.id), method, "HJSG-OBJ-1",
            "省生态环境监测中心", today - timedelta(days=30), today + timedelta(days=300), attachment=scan)
        limits.load_builtin_limit_sets(session, session.get(User, technical.id))
        method_code, import_code, qualification_id = method.code, imported.code, qualification.id
    uv = calibrated_instrument(db, technical, store, "JC-OBJ-UV")
    make_method(db, technical, "HJ 535-2009", calculation="curve", instruments=(uv,))
    standard = prepare(db, technical, solution_barcode, name="氨氮标准使用液")
    with db.transaction() as session:
        curve = curves.record_curve(session, session.get(User, analyst.id),
                                    facts(standard.barcode, instrument="JC-OBJ-UV"))
        curve_code = curve.code
    return {"batch_no": icpms.batch.batch_no, "import_code": import_code, "result_id": result_id,
            "method_code": method_code, "qualification_id": qualification_id, "curve_code": curve_code,
            "limit_code": "GB 3838-2002", "parameter": "Pb", "kind": "spike", "profile_code": "AGILENT-ICPMS"}


def make_lab_objects(db, users) -> dict[str, Any]:
    """Issue 7: a stored container in a storage location and a disposal request (from the storage
    tests' factory), an aliquot taken from that container, an open preparation batch, a cooler,
    and a delivery opened for it."""
    from app.samples import aliquots, preparation, receipt, registration, shipments
    from app.samples.models import Container, ContainerState, SampleState
    from tests.samples.test_storage_support import make_storage_objects

    stored = make_storage_objects(db, users)
    with db.transaction() as session:
        sampler, custodian = session.get(User, users["sampler"].id), session.get(User, users["custodian"].id)
        [brought] = registration.register_adhoc_samples(session, custodian, [registration.AdhocSample(
            client_name="权限检查委托单位", parameters=["COD"], scheduled_on=db.calendar.today(),
            location_text="厂区总排口", sampler="sampler")])
        taken = utcnow() - timedelta(hours=2)
        brought.state, brought.collected_at = SampleState.COLLECTED.value, taken  # as if signed in the field
        for container in session.scalars(select(Container).where(Container.sample_id == brought.id)):
            container.state, container.filled_at, container.holder_id = ContainerState.FILLED.value, taken, sampler.id
        session.flush()
        delivery = receipt.open_delivery(session, custodian, receipt.DeliveryInput(sampler="sampler"))
        analyst = session.get(User, users["analyst"].id)
        aliquot = aliquots.make_aliquot(session, analyst, stored["barcode"], "10", "mL")
        batch = preparation.open_batch(session, analyst, "digestion", "HJ 677-2013", "Cu Zn")
        shipment = shipments.create_shipment(session, sampler)
        return {"delivery_code": delivery.code, "location_code": stored["location_code"],
                "disposal_code": stored["code"], "aliquot_barcode": aliquot.barcode, "batch_code": batch.code,
                "shipment_code": shipment.code}


def make_site_objects(db, users) -> dict[str, Any]:
    """A site with a suspension request awaiting its decision."""
    from app.sites import service as sites
    from app.sites.models import Site
    from tests.sites.conftest import make_site

    site = make_site(db, users["technical_manager"], users["quality_manager"], "OBJ-01")
    with db.transaction() as session:
        request = sites.propose_change(session, users["technical_manager"], session.get(Site, site.id),
                                       kind="suspend", proposal=None, reason="施工")
    return {"site_code": site.code, "site_request_id": request.id}


def make_plan_objects(db, users) -> dict[str, Any]:
    """A monitoring plan approved with its tasks: its code and its first task's code."""
    from app.sites import plans
    from app.sites.models import Site
    from tests.sites.conftest import make_site

    technical, quality = users["technical_manager"], users["quality_manager"]
    site = make_site(db, technical, quality, "WS90")
    today = db.calendar.today()
    with db.transaction() as session:
        plan = plans.create_plan(session, technical, title="权限检查计划", period_start=today,
                                 period_end=today + timedelta(days=30))
        plans.add_plan_line(session, technical, plan, site=session.get(Site, site.id), parameters=["COD"],
                            frequency="weekly", day_in_period=7, sampler=users["sampler"])
        [task, *_] = plans.approve_plan(session, technical, plan)
        return {"plan_code": plan.code, "task_code": task.code}


def make_material_objects(db, technical, data_path: Path | None) -> dict[str, Any]:
    """A material with a lot, an opened unit and a solution prepared from it (a solution's
    barcode serves the item pages too: they redirect it to the solution's page)."""
    from app.core.files import file_store
    from tests.reference_materials.conftest import make_lot, make_material, open_unit, prepare, receive

    store = file_store(data_path if data_path is not None else Path(tempfile.mkdtemp()))
    material = make_material(db, technical)
    lot = make_lot(db, technical, store, material)
    unit = open_unit(db, technical, receive(db, technical, lot)[0])
    solution = prepare(db, technical, unit.barcode)
    return {"material_id": material.id, "lot_id": lot.id, "barcode": solution.barcode}


def make_instrument_objects(db, technical, data_path: Path | None) -> dict[str, Any]:
    from app.core.files import file_store
    from app.instruments import records
    from app.instruments import service as instruments
    from app.instruments.models import ImpactAssessment

    store = file_store(data_path if data_path is not None else Path(tempfile.mkdtemp()))
    today = db.calendar.today()
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    with db.transaction() as session:
        instrument = instruments.register_instrument(
            session, technical, asset_no="JC-OBJ-001", name_zh="紫外可见分光光度计",
            commissioned_on=today - timedelta(days=400), responsible_id=technical.id,
            uses=[("NH3-N", "HJ 535-2009")])
        calibration = records.record_calibration(
            session, technical, instrument, records.CalibrationFacts(
                kind="verification", provider="江城市计量测试研究院", certificate_no="JD-OBJ-1",
                performed_on=today - timedelta(days=30), valid_until=today + timedelta(days=300),
                result="pass"),
            store=store, certificate=instruments.Upload(io.BytesIO(pdf), "certificate.pdf"))
        records.decide_acceptance(session, technical, calibration, PASSWORD, accept=True)
        check = records.record_check(session, technical, instrument, records.CheckFacts(
            performed_at=db.calendar.start_of(today - timedelta(days=2)), check_standard="GBW(E)080218",
            criterion="0.500 ± 0.010 mg/L", measured_value="0.530", result="fail"), PASSWORD)
        maintenance = records.record_maintenance(session, technical, instrument, records.MaintenanceFacts(
            kind="maintenance", performed_at=db.calendar.start_of(today - timedelta(days=1)),
            description="清洁样品室"))
        attachment = instruments.add_attachment(
            session, technical, instrument, store, instruments.Upload(io.BytesIO(pdf), "manual.pdf"),
            title="使用说明书", kind="manual", max_bytes=1024 * 1024)
        assessment = session.scalars(select(ImpactAssessment).where(
            ImpactAssessment.instrument_id == instrument.id)).one()
        return {"asset_no": instrument.asset_no, "calibration_id": calibration.id, "check_id": check.id,
                "maintenance_id": maintenance.id, "assessment_id": assessment.id,
                "attachment_id": attachment.id}


@pytest.fixture
def objects(db, users, settings) -> dict[str, Any]:
    return make_objects(db, users, settings.ensure_data_dir())


# ---------------------------------------------------------------- deny by default


def test_every_route_declares_a_permission_or_is_on_the_public_allow_list(app):
    undeclared, unknown, unlisted_public = [], [], []
    for endpoint in endpoints(app):
        if endpoint.permission is None:
            undeclared.append(endpoint)
        elif endpoint.permission not in KNOWN_PERMISSIONS:
            unknown.append((endpoint, endpoint.permission))
        elif endpoint.is_public and endpoint.key not in PUBLIC_ROUTES and not (
            endpoint.path.startswith(PUBLIC_PREFIXES)
        ):
            unlisted_public.append(endpoint)
    assert not undeclared, f"routes without require()/public(): {undeclared}"
    assert not unknown, f"routes declaring an unknown permission: {unknown}"
    assert not unlisted_public, f"public() routes not on the allow-list: {unlisted_public}"


def test_the_public_allow_list_is_exactly_what_is_public(app):
    """The allow-list does not rot: each entry exists and is public (a login page behind a
    permission would lock everybody out; a stale entry would silently allow a future route)."""
    public = {e.key for e in endpoints(app)
              if e.is_public and not (e.method == "GET" and e.path.startswith(PUBLIC_PREFIXES))}
    assert public == PUBLIC_ROUTES


def test_no_route_escapes_the_walker(app):
    """Routes that are not APIRoutes carry no declaration: only the OpenAPI document and the
    static files may be of that kind."""
    others = non_api_routes(app.routes)
    assert {path for _, path in others} == NON_API_ROUTES, others


def test_every_mutating_route_declares_a_mutating_permission(app):
    wrong = [
        (e, e.permission) for e in endpoints(app)
        if e.mutating and (e.permission in READ_PERMISSIONS or (e.is_public and e.key not in PUBLIC_ROUTES))
    ]
    assert not wrong, f"POST/PUT/PATCH/DELETE routes declaring a read permission: {wrong}"


def test_the_walker_sees_prefixes_and_router_level_declarations():
    """A router included with a prefix and a permission on include_router: the walker reports
    the path as served and the permission declared there."""
    router = APIRouter()

    @router.get("/thing/{thing_id}")
    def thing(thing_id: int) -> dict:
        return {}

    app = FastAPI()
    app.include_router(router, prefix="/domain", dependencies=[require(Permission.LAB_READ)])
    [endpoint] = endpoints(app)
    assert endpoint.path == "/domain/thing/{thing_id}"
    assert endpoint.permission == Permission.LAB_READ.value


def test_every_non_public_route_refuses_an_anonymous_visitor(app, client, objects):
    """The declarations are enforced: no page, fragment or API answer without signing in."""
    csrf = client.get("/login")  # an anonymous session with a CSRF token, like a browser's
    token = re.search(r'name="csrf-token" content="([^"]+)"', csrf.text).group(1)
    leaks = []
    for endpoint in endpoints(app):
        if endpoint.is_public:
            continue
        url = endpoint.url(objects)
        response = client.request(endpoint.method, url, data=plausible_form(endpoint) or None,
                                  headers={"X-CSRF-Token": token})
        if url.startswith("/api/"):
            ok = response.status_code == 401 and problem(response)["code"] == "not_authenticated"
        else:
            ok = response.status_code == 303 and response.headers["location"].startswith("/login?next=")
        if not ok:
            leaks.append((endpoint, response.status_code))
    assert not leaks, leaks


def test_a_user_without_the_permission_is_refused_on_every_route(app, client, users, objects):
    """Deny by default for signed-in users too: the sampler holds only the everyday
    permissions; every other route answers 403 permission_denied and changes nothing."""
    token = login(client, "sampler")
    sampler_has = ROLE_PERMISSIONS[Role.SAMPLER]
    before = audit_count(app.state.db)
    wrong = []
    checked = 0
    for endpoint in endpoints(app):
        if endpoint.is_public or Permission(endpoint.permission) in sampler_has:
            continue
        response = client.request(
            endpoint.method, endpoint.url(objects), data=plausible_form(endpoint) or None,
            headers={"X-CSRF-Token": token, "Accept": "application/json"},
        )
        checked += 1
        if response.status_code != 403 or problem(response)["code"] != "permission_denied":
            wrong.append((endpoint, response.status_code, response.text[:200]))
    assert checked >= 10
    assert not wrong, wrong
    assert audit_count(app.state.db) == before


# ---------------------------------------------------------------- the inspector


def test_the_exceptions_for_the_inspector_are_exactly_the_personal_routes(app):
    """Only `account.own` routes (own session, language, password, tokens) let an inspector
    change anything, and `account.own` is never a lab record. POST /login is public."""
    personal = {e.key for e in endpoints(app) if e.permission == Permission.OWN_ACCOUNT.value and e.mutating}
    assert personal == PERSONAL_ROUTES
    own = {e.key for e in endpoints(app)
           if e.permission in {p.value for p in INSPECTOR_OWN_PERMISSIONS} and e.mutating}
    assert own == INSPECTOR_ROUTES
    public_mutating = {e.key for e in endpoints(app) if e.is_public and e.mutating}
    assert public_mutating == {("POST", "/login"), ("POST", "/verify/{token}")}


def test_the_inspector_changes_nothing_on_any_mutating_route(app, client, users, objects):
    token = login(client, "inspector")
    db = app.state.db
    before = audit_count(db)
    refused, wrong = [], []
    for endpoint in endpoints(app):
        if (not endpoint.mutating or endpoint.key in PERSONAL_ROUTES | INSPECTOR_ROUTES
                or endpoint.is_public):
            continue
        ids = {**objects, "grant_id": objects["grant_id"]}
        if endpoint.path.endswith("/end"):
            ids["grant_id"] = objects["active_grant_id"]  # an active grant is what one ends
        form = {**plausible_form(endpoint), "csrf_token": token}
        url = endpoint.url(ids)
        response = client.request(endpoint.method, url, data=form,
                                  headers={"X-CSRF-Token": token, "Accept": "application/json"})
        if response.status_code == 403 and problem(response)["code"] == "inspector_read_only":
            refused.append((endpoint.method, url.split("?")[0]))
        else:
            wrong.append((endpoint, response.status_code, response.text[:300]))
    assert not wrong, wrong
    assert len(refused) >= 10
    # Each attempt is kept as a refusal (issue 10: refused, audited), and nothing else changed.
    assert audit_count(db) - before == len(refused), "a refused act left a trace of a change"
    with db.reading() as session:
        kept = [(e.action, e.after_data["method"], e.after_data["path"]) for e in session.scalars(
            select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(len(refused)))]
    assert {action for action, _, _ in kept} == {"security.inspector_refused"}
    assert sorted((method, path) for _, method, path in kept) == sorted(refused)
    # The same refusal as a browser sees it: a page with the localised message and the code.
    page = client.post(f"/people/users/{objects['user_id']}/names",
                       data={"display_name_zh": "改名", "csrf_token": token})
    assert page.status_code == 403
    assert 'data-code="inspector_read_only"' in page.text
    assert "监管检查员为只读角色" in page.text
    # Still signed in: the refusals did not end the session.
    assert client.get("/api/v1/me").json()["username"] == "inspector"


def test_the_inspector_may_change_their_own_language(client, users):
    token = login(client, "inspector")
    response = client.post("/account/language", data={"language": "en", "csrf_token": token})
    assert response.status_code == 303
    assert client.get("/api/v1/me").json()["language"] == "en"


def test_the_inspector_reads_every_page(app, client, users, objects):
    """Every GET whose permission is a read permission answers 200 to an inspector (audit
    trail, users, lab, integrity, a user, an audit event, the APIs); GETs that belong to a
    change (the new-user form) are refused as read-only."""
    login(client, "inspector")
    wrong = []
    pages = 0
    for endpoint in endpoints(app):
        if endpoint.method != "GET" or endpoint.is_public:
            continue
        params = {"code": "AUD-1"} if "code" in endpoint.query else None
        response = client.get(endpoint.url(objects), params=params)
        if Permission(endpoint.permission) in READ_PERMISSIONS | {Permission.OWN_ACCOUNT} | INSPECTOR_OWN_PERMISSIONS:
            expected_ok = response.status_code == 200 or (
                response.status_code == 303 and not response.headers["location"].startswith("/login")
            )
            pages += response.status_code == 200
        else:
            expected_ok = response.status_code == 403 and "inspector_read_only" in response.text
        if not expected_ok:
            wrong.append((endpoint, response.status_code))
    assert not wrong, wrong
    assert pages >= 10
    for path in ("/oversight/audit", "/people/users", "/people/lab", "/oversight/audit/integrity"):
        assert client.get(path).status_code == 200, path
