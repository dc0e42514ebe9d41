"""The instruments JSON API with real API tokens: the list and detail, certificates, acceptance,
checks and maintenance, the status at a moment; bad input refused with problem JSON and nothing
half-saved; the inspector reads and changes nothing; query counts that do not grow."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.files import StoredFile
from app.instruments import records
from app.instruments.models import (
    CalibrationRecord,
    Instrument,
    IntermediateCheck,
    MaintenanceRecord,
)
from app.people import service as people
from app.people.models import User
from tests.conftest import PASSWORD, discount_refusals, login, make_user, refusals_so_far
from tests.instruments.conftest import PDF, calibrate, check, local_today, make_instrument

BASE = "/api/v1/instruments"


@pytest.fixture
def api(app):
    """A client without cookies: whatever it does, it does with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def token_of(db, user) -> str:
    with db.transaction() as session:
        return people.create_token(session, None, user.id, "instrument import", check_permission=False)[1]


@pytest.fixture
def users(db) -> dict[str, User]:
    """Only the roles these tests act in (each user costs a password hash)."""
    return {role: make_user(db, role.replace("_", "-"), role)
            for role in ("technical_manager", "analyst", "inspector")}


@pytest.fixture
def tokens(db, users) -> dict[str, dict[str, str]]:
    """Authorization headers for a technical manager, an analyst and an inspector."""
    return {role: {"Authorization": f"Bearer {token_of(db, users[role])}"} for role in users}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def counts(db) -> dict[str, int]:
    """Rows a refused write must not leave behind."""
    with db.reading() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (CalibrationRecord, IntermediateCheck, MaintenanceRecord, StoredFile, AuditEvent)}


def certificate_form(today: date, **changes) -> dict:
    form = {
        "kind": "calibration", "provider": "江城市计量测试研究院", "provider_accreditation_no": "CNAS L1234",
        "certificate_no": "JZ-2026-0042", "performed_on": (today - timedelta(days=3)).isoformat(),
        "valid_until": (today + timedelta(days=362)).isoformat(), "result": "pass",
        "corrections": "波长示值误差 +0.2 nm",
    }
    form.update(changes)
    return form


def post_certificate(api, headers, asset_no, form, content: bytes = PDF, name: str = "certificate.pdf"):
    return api.post(f"{BASE}/{asset_no}/calibrations", data=form, headers=headers,
                    files={"certificate": (name, content, "application/pdf")})


def check_body(when: datetime, **changes) -> dict:
    body = {
        "performed_at": when.isoformat(), "check_standard": "GBW(E)080218 氨氮标准溶液", "method": "HJ 535-2009",
        "criterion": "0.500 ± 0.010 mg/L", "measured_value": "0.5020", "unit": "mg/L", "result": "pass",
        "remarks": "", "password": PASSWORD,
    }
    body.update(changes)
    return body


# ---------------------------------------------------------------- the list


def test_the_list_is_paginated_with_each_status_now(api, db, tokens, technical, store):
    today = local_today(db)
    in_service = make_instrument(db, technical, "JC-A-001")
    calibrate(db, technical, store, in_service, performed_on=today - timedelta(days=10),
              valid_until=today + timedelta(days=300))
    due_soon = make_instrument(db, technical, "JC-A-002", kind="field", name_zh="便携式多参数水质分析仪")
    calibrate(db, technical, store, due_soon, performed_on=today - timedelta(days=350),
              valid_until=today + timedelta(days=10))
    make_instrument(db, technical, "JC-A-003")  # never calibrated: overdue

    response = api.get(BASE, params={"size": 2}, headers=tokens["analyst"])
    assert response.status_code == 200, response.text
    page = response.json()
    assert {k: page[k] for k in ("page", "size", "total", "pages")} == {"page": 1, "size": 2, "total": 3, "pages": 2}
    first = page["items"][0]
    assert first["asset_no"] == "JC-A-001" and first["status"] == "in_service"
    assert first["name_zh"] == "紫外可见分光光度计" and first["name_en"] == "UV-Vis spectrophotometer"
    assert first["kind"] == "laboratory" and first["model"] == "UV-2600" and first["location"] == "理化室 201"
    assert first["responsible"]["username"] == "technical-manager"
    assert first["responsible"]["name"] == technical.printed_name
    due = db.calendar.start_of(today + timedelta(days=301))
    assert datetime.fromisoformat(first["due_at"].replace("Z", "+00:00")) == due
    assert first["due_at"].endswith("Z") or first["due_at"].endswith("+00:00")  # UTC
    assert page["items"][1]["status"] == "due_soon"

    second = api.get(BASE, params={"size": 2, "page": 2}, headers=tokens["analyst"]).json()
    assert [(i["asset_no"], i["status"], i["due_at"]) for i in second["items"]] == [("JC-A-003", "overdue", None)]

    def assets(**params) -> list[str]:
        response = api.get(BASE, params=params, headers=tokens["inspector"])
        assert response.status_code == 200, response.text
        return [i["asset_no"] for i in response.json()["items"]]

    assert assets(status="overdue") == ["JC-A-003"]
    assert assets(status="due_soon") == ["JC-A-002"]
    assert assets(kind="field") == ["JC-A-002"]
    assert assets(q="便携") == ["JC-A-002"]
    assert assets(q="a-00", status="") == ["JC-A-001", "JC-A-002", "JC-A-003"]


@pytest.mark.parametrize("params", [{"size": "201"}, {"size": "0"}, {"page": "0"}, {"status": "broken"},
                                    {"kind": "boat"}, {"q": "x" * 101}])
def test_the_list_refuses_bad_parameters(api, tokens, params):
    problem(api.get(BASE, params=params, headers=tokens["analyst"]), 422, "validation_error")


def test_the_list_costs_the_same_queries_for_3_and_30_instruments(api, db, tokens, technical, count_queries):
    def statements() -> int:
        with count_queries() as counter:
            response = api.get(BASE, params={"size": 200}, headers=tokens["analyst"])
        assert response.status_code == 200
        return counter.count, response.json()["total"]

    for n in range(3):
        make_instrument(db, technical, f"JC-Q-{n:03d}")
    few, total = statements()
    assert total == 3
    for n in range(3, 30):
        make_instrument(db, technical, f"JC-Q-{n:03d}")
    many, total = statements()
    assert total == 30
    assert many == few


def test_anonymous_and_bad_tokens_are_refused(api, calibrated):
    problem(api.get(BASE), 401, "not_authenticated")
    problem(api.get(BASE, headers={"Authorization": "Bearer lims_nonsense"}), 401, "invalid_token")


def test_a_signed_in_browser_session_may_use_the_api_with_its_csrf_token(client, db, users, calibrated):
    csrf = login(client, "analyst")
    assert client.get(f"{BASE}/{calibrated.asset_no}").status_code == 200
    when = datetime.now(UTC) - timedelta(hours=1)
    problem(client.post(f"{BASE}/{calibrated.asset_no}/checks", json=check_body(when)), 403, "csrf_failed")
    response = client.post(f"{BASE}/{calibrated.asset_no}/checks", json=check_body(when),
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.text


# ---------------------------------------------------------------- the detail


def test_the_detail_has_every_revision_and_the_whole_history(api, db, tokens, technical, store, calibrated):
    today = local_today(db)
    with db.transaction() as session:
        original = session.scalars(select(CalibrationRecord).where(
            CalibrationRecord.instrument_id == calibrated.id)).one()
        facts = records.CalibrationFacts(
            kind="verification", provider="江城市计量测试研究院", provider_accreditation_no="CNAS L1234",
            certificate_no="JD-corrected-001", performed_on=original.performed_on, valid_until=original.valid_until,
            result="pass")
        corrected = records.correct_calibration(session, technical, original, facts, reason="证书编号录入错误",
                                                store=store)
    with db.transaction() as session:
        records.decide_acceptance(session, technical, session.get(CalibrationRecord, corrected.id), PASSWORD,
                                  accept=True)
    check(db, technical, calibrated, performed_at=datetime.now(UTC) - timedelta(days=5), measured_value="0.5020")
    with db.transaction() as session:
        records.record_maintenance(session, technical, session.get(Instrument, calibrated.id), records.MaintenanceFacts(
            kind="maintenance", performed_at=datetime.now(UTC) - timedelta(days=2), description="更换氘灯"))

    response = api.get(f"{BASE}/{calibrated.asset_no}", headers=tokens["inspector"])
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["asset_no"] == calibrated.asset_no and detail["status"] == "in_service"
    assert detail["usable"] is True and detail["reason"] is None and detail["cause"] is None
    assert detail["calibration_id"] == corrected.id
    assert detail["commissioned_on"] == (today - timedelta(days=800)).isoformat()
    assert detail["uses"] == [{"parameter": "NH3-N", "method": "HJ 535-2009"},
                              {"parameter": "TP", "method": "GB 11893-89"}]
    by_revision = {c["revision"]: c for c in detail["calibrations"]}
    assert set(by_revision) == {1, 2}
    first, second = by_revision[1], by_revision[2]
    assert first["current"] is False and second["current"] is True
    assert second["supersedes_id"] == first["id"] and first["supersedes_id"] is None
    assert second["correction_reason"] == "证书编号录入错误" and second["certificate_no"] == "JD-corrected-001"
    assert second["certificate_sha256"] == hashlib.sha256(PDF).hexdigest()
    assert first["acceptance"]["decision"] == "accepted"
    assert second["acceptance"]["decision"] == "accepted"
    assert second["acceptance"]["decided_by"]["username"] == "technical-manager"
    assert second["acceptance"]["signature_intact"] is True
    [made] = detail["checks"]
    assert made["measured_value"] == "0.5020" and made["result"] == "pass"
    assert made["signed_by"] == technical.printed_name and made["signature_intact"] is True
    [kept] = detail["maintenance"]
    assert kept["kind"] == "maintenance" and kept["description"] == "更换氘灯" and kept["current"] is True
    assert detail["service_changes"] == [] and detail["impacts"] == []


def test_a_failed_check_shows_out_of_service_with_its_cause_and_the_impact(api, db, tokens, technical, calibrated):
    check(db, technical, calibrated, performed_at=datetime.now(UTC) - timedelta(hours=2), result="fail")
    detail = api.get(f"{BASE}/{calibrated.asset_no}", headers=tokens["analyst"]).json()
    assert detail["status"] == "out_of_service" and detail["usable"] is False
    assert detail["reason"] == "out_of_service" and detail["cause"] == "failed_check"
    [impact] = detail["impacts"]
    assert impact["trigger_type"] == "check" and impact["status"] == "open"


def test_the_detail_costs_the_same_queries_however_long_the_history(api, db, tokens, technical, store,
                                                                    count_queries):
    today = local_today(db)
    short = make_instrument(db, technical, "JC-S-001")
    calibrate(db, technical, store, short, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300))
    long = make_instrument(db, technical, "JC-L-001")
    for year in range(4, 0, -1):
        calibrate(db, technical, store, long, performed_on=today - timedelta(days=365 * year),
                  valid_until=today - timedelta(days=365 * (year - 1)) + timedelta(days=30))
    for n in range(5):
        check(db, technical, long, performed_at=datetime.now(UTC) - timedelta(days=20 + n))

    def statements(asset_no: str) -> int:
        with count_queries() as counter:
            response = api.get(f"{BASE}/{asset_no}", headers=tokens["analyst"])
        assert response.status_code == 200, response.text
        return counter.count, len(response.json()["calibrations"])

    few, calibrations = statements("JC-S-001")
    assert calibrations == 1
    many, calibrations = statements("JC-L-001")
    assert calibrations == 4
    assert many == few


@pytest.mark.parametrize("method, suffix", [
    ("GET", ""), ("GET", "/status"), ("POST", "/checks"), ("POST", "/maintenance"),
    ("POST", "/calibrations/1/acceptance"),
])
def test_an_unknown_asset_number_is_a_404_problem(api, tokens, users, method, suffix):
    body = {"GET": None, "/checks": check_body(datetime.now(UTC)),
            "/maintenance": {"kind": "maintenance", "performed_at": datetime.now(UTC).isoformat(),
                             "description": "x"},
            "/calibrations/1/acceptance": {"accept": True, "note": "", "password": PASSWORD}}
    response = api.request(method, f"{BASE}/NO-SUCH-1{suffix}", headers=tokens["technical_manager"],
                           json=body.get(suffix) if method == "POST" else None)
    found = problem(response, 404, "instrument_not_found")
    assert "NO-SUCH-1" in found["detail"]


def test_an_unknown_asset_number_is_a_404_for_a_certificate_too(api, db, tokens):
    before = counts(db)
    problem(post_certificate(api, tokens["technical_manager"], "NO-SUCH-1", certificate_form(local_today(db))),
            404, "instrument_not_found")
    assert counts(db) == before


def test_asset_numbers_with_a_slash_are_reachable(api, db, tokens, technical):
    make_instrument(db, technical, "JC/UV/007")
    assert api.get(f"{BASE}/JC/UV/007", headers=tokens["analyst"]).json()["asset_no"] == "JC/UV/007"
    assert api.get(f"{BASE}/JC/UV/007/status", headers=tokens["analyst"]).json()["reason"] == "not_calibrated"


# ---------------------------------------------------------------- certificates and acceptance


def test_a_certificate_is_entered_then_accepted_by_the_responsible_person(api, db, tokens, technical, users):
    today = local_today(db)
    make_instrument(db, technical, "JC-C-001")
    headers = tokens["technical_manager"]
    response = post_certificate(api, headers, "JC-C-001", certificate_form(today))
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["revision"] == 1 and record["current"] is True and record["supersedes_id"] is None
    assert record["certificate_no"] == "JZ-2026-0042" and record["kind"] == "calibration"
    assert record["certificate_sha256"] == hashlib.sha256(PDF).hexdigest()
    assert record["certificate_filename"] == "certificate.pdf"
    assert record["valid_until"] == (today + timedelta(days=362)).isoformat()
    assert record["acceptance"] is None
    # not yet accepted (计量确认): not in service
    assert api.get(f"{BASE}/JC-C-001/status", headers=headers).json()["usable"] is False

    url = f"{BASE}/JC-C-001/calibrations/{record['id']}/acceptance"
    wrong = api.post(url, json={"accept": True, "note": "", "password": "wrong-password"}, headers=headers)
    assert 400 <= wrong.status_code < 500 and wrong.json()["code"] != "already_decided", wrong.text
    response = api.post(url, json={"accept": True, "note": "满足 HJ 535 要求", "password": PASSWORD},
                        headers=headers)
    assert response.status_code == 201, response.text
    accepted = response.json()["acceptance"]
    assert accepted["decision"] == "accepted" and accepted["decided_by"]["username"] == "technical-manager"
    status = api.get(f"{BASE}/JC-C-001/status", params={"parameter": "NH3-N"}, headers=headers).json()
    assert status["usable"] is True and status["calibration"] == "JZ-2026-0042"
    problem(api.post(url, json={"accept": True, "note": "", "password": PASSWORD}, headers=headers),
            409, "already_decided")


def test_only_the_responsible_person_accepts_and_only_their_instruments_record(api, db, tokens, technical,
                                                                              users, store):
    today = local_today(db)
    mine = make_instrument(db, technical, "JC-R-001", responsible=users["analyst"])
    record = calibrate(db, technical, store, mine, performed_on=today - timedelta(days=1),
                       valid_until=today + timedelta(days=300), accept=None)
    other = make_instrument(db, technical, "JC-R-002")
    body = {"accept": True, "note": "", "password": PASSWORD}
    problem(api.post(f"{BASE}/JC-R-001/calibrations/{record.id}/acceptance", json=body,
                     headers=tokens["technical_manager"]), 403, "not_responsible_person")
    # the record exists, but not under that asset number
    problem(api.post(f"{BASE}/{other.asset_no}/calibrations/{record.id}/acceptance", json=body,
                     headers=tokens["analyst"]), 404, "instrument_record_not_found")
    problem(api.post(f"{BASE}/JC-R-001/calibrations/999999/acceptance", json=body, headers=tokens["analyst"]),
            404, "instrument_record_not_found")
    response = api.post(f"{BASE}/JC-R-001/calibrations/{record.id}/acceptance",
                        json={"accept": False, "note": "", "password": PASSWORD}, headers=tokens["analyst"])
    problem(response, 422, "invalid_input")  # a rejection needs its note
    response = api.post(f"{BASE}/JC-R-001/calibrations/{record.id}/acceptance",
                        json={"accept": False, "note": "不确定度不满足要求", "password": PASSWORD},
                        headers=tokens["analyst"])
    assert response.status_code == 201 and response.json()["acceptance"]["decision"] == "rejected"
    problem(api.post(f"{BASE}/JC-R-001/calibrations/{record.id}/acceptance",
                     json={"accept": "yes", "password": PASSWORD}, headers=tokens["analyst"]),
            422, "validation_error")


@pytest.mark.parametrize("label", ["valid until before performed", "not a pdf", "over 20 MB", "duplicate number",
                                   "future date", "restricted without parameters", "no file", "year 1",
                                   "year 9999"])
def test_bad_certificates_are_refused_and_nothing_is_half_saved(api, db, tokens, technical, label):
    today = local_today(db)
    make_instrument(db, technical, "JC-B-001")
    headers = tokens["technical_manager"]
    first = post_certificate(api, headers, "JC-B-001", certificate_form(today, certificate_no="JZ-DUP-1"))
    assert first.status_code == 201, first.text
    before = counts(db)
    form, content = certificate_form(today), PDF
    expected: tuple[int, str]
    if label == "valid until before performed":
        form["valid_until"] = (today - timedelta(days=4)).isoformat()
        expected = (422, "valid_until_before_performed")
    elif label == "not a pdf":
        content = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
        expected = (422, "unsupported_file_type")
    elif label == "over 20 MB":
        content = PDF + b"0" * (20 * 1024 * 1024)
        expected = (413, "payload_too_large")
    elif label == "duplicate number":
        form["certificate_no"] = "jz-dup-1"  # the same number, whatever its case
        expected = (409, "duplicate_certificate_no")
    elif label == "future date":
        form["performed_on"] = (today + timedelta(days=2)).isoformat()
        expected = (422, "date_in_future")
    elif label in ("year 1", "year 9999"):  # would overflow the lab calendar: refused as input
        form["performed_on" if label == "year 1" else "valid_until"] = "0001-01-01" if label == "year 1" \
            else "9999-12-31"
        expected = (422, "validation_error")
    elif label == "restricted without parameters":
        form.update(result="restricted", restriction="仅可用于 ≥ 0.1 mg/L")
        expected = (422, "restriction_required")
    else:
        response = api.post(f"{BASE}/JC-B-001/calibrations", data=form, headers=headers)
        problem(response, 422, "validation_error")
        assert counts(db) == before
        return
    body = problem(post_certificate(api, headers, "JC-B-001", form, content), *expected)
    assert body["detail"]
    assert counts(db) == before


def test_a_restricted_certificate_through_the_api_restricts_the_gate(api, db, tokens, technical):
    today = local_today(db)
    make_instrument(db, technical, "JC-X-001")
    headers = tokens["technical_manager"]
    form = certificate_form(today, result="restricted", restriction="总磷波段超差，仅用于氨氮")
    response = api.post(f"{BASE}/JC-X-001/calibrations", headers=headers,
                        data={**form, "allowed_parameters": ["NH3-N"]},
                        files={"certificate": ("c.pdf", PDF, "application/pdf")})
    assert response.status_code == 201, response.text
    assert response.json()["allowed_parameters"] == ["NH3-N"]
    api.post(f"{BASE}/JC-X-001/calibrations/{response.json()['id']}/acceptance",
             json={"accept": True, "note": "", "password": PASSWORD}, headers=headers)
    status = api.get(f"{BASE}/JC-X-001/status", params={"parameter": "TP"}, headers=headers).json()
    assert (status["usable"], status["reason"]) == (False, "restricted")
    status = api.get(f"{BASE}/JC-X-001/status", params={"parameter": "NH3-N"}, headers=headers).json()
    assert (status["usable"], status["reason"]) == (True, None)


# ---------------------------------------------------------------- checks and maintenance


def test_a_check_is_recorded_signed_and_its_value_kept_as_text(api, db, tokens, calibrated):
    when = datetime.now(UTC).astimezone(db.calendar.tz) - timedelta(hours=3)
    response = api.post(f"{BASE}/{calibrated.asset_no}/checks", json=check_body(when),
                        headers=tokens["analyst"])
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["measured_value"] == "0.5020" and made["result"] == "pass" and made["revision"] == 1
    assert made["recorded_by"]["username"] == "analyst" and made["signature_intact"] is True
    assert datetime.fromisoformat(made["performed_at"].replace("Z", "+00:00")) == when
    with db.reading() as session:
        stored = session.get(IntermediateCheck, made["id"])
        assert stored.measured_value == "0.5020" and stored.recorded_by_id is not None


@pytest.mark.parametrize("changes, status, code", [
    ({"measured_value": 0.502}, 422, "validation_error"),  # a JSON number: refused, never rounded
    ({"measured_value": 1}, 422, "validation_error"),
    ({"measured_value": "about half"}, 422, "invalid_measured_value"),
    ({"measured_value": "NaN"}, 422, "invalid_measured_value"),
    ({"performed_at": "2026-01-05T10:00:00"}, 422, "validation_error"),  # no offset
    ({"performed_at": "yesterday"}, 422, "validation_error"),
    ({"performed_at": "0001-01-01T00:00:00+14:00"}, 422, "validation_error"),
    ({"result": "maybe"}, 422, "validation_error"),
    ({"criterion": "x" * 201}, 422, "validation_error"),
    ({"unexpected": "field"}, 422, "validation_error"),
    ({"check_standard": "   "}, 422, "invalid_input"),
])
def test_bad_checks_are_refused_and_nothing_is_saved(api, db, tokens, calibrated, changes, status, code):
    before = counts(db)
    body = check_body(datetime.now(UTC) - timedelta(hours=1), **changes)
    response = api.post(f"{BASE}/{calibrated.asset_no}/checks", json=body, headers=tokens["analyst"])
    found = problem(response, status, code)
    if "measured_value" in changes and code == "validation_error":
        assert "measured_value" in found["detail"]
    assert counts(db) == before


def test_a_check_with_a_wrong_password_saves_no_check(api, db, tokens, calibrated):
    before = counts(db)
    response = api.post(f"{BASE}/{calibrated.asset_no}/checks",
                        json=check_body(datetime.now(UTC) - timedelta(hours=1), password="not-my-password"),
                        headers=tokens["analyst"])
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    after = counts(db)
    assert after["IntermediateCheck"] == before["IntermediateCheck"]


def test_a_failed_check_through_the_api_takes_the_instrument_out_of_service(api, db, tokens, calibrated):
    response = api.post(f"{BASE}/{calibrated.asset_no}/checks",
                        json=check_body(datetime.now(UTC) - timedelta(hours=1), measured_value="0.530",
                                        result="fail"), headers=tokens["analyst"])
    assert response.status_code == 201, response.text
    status = api.get(f"{BASE}/{calibrated.asset_no}/status", headers=tokens["analyst"]).json()
    assert (status["status"], status["usable"], status["reason"]) == ("out_of_service", False, "out_of_service")


def test_maintenance_and_repairs_are_recorded(api, db, tokens, calibrated):
    when = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                        json={"kind": "maintenance", "performed_at": when, "description": "清洁样品室",
                              "performed_by": "岛津售后 王工"}, headers=tokens["analyst"])
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "maintenance" and response.json()["performed_by"] == "岛津售后 王工"
    assert api.get(f"{BASE}/{calibrated.asset_no}/status", headers=tokens["analyst"]).json()["usable"] is True
    response = api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                        json={"kind": "repair", "performed_at": when, "description": "更换光源"},
                        headers=tokens["analyst"])
    assert response.status_code == 201
    assert api.get(f"{BASE}/{calibrated.asset_no}/status", headers=tokens["analyst"]).json()["status"] \
        == "out_of_service"
    before = counts(db)
    problem(api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                     json={"kind": "polish", "performed_at": when, "description": "x"}, headers=tokens["analyst"]),
            422, "validation_error")
    problem(api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                     json={"kind": "maintenance", "performed_at": when, "description": ""},
                     headers=tokens["analyst"]), 422, "invalid_input")
    problem(api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                     json={"kind": "maintenance", "performed_at": "0001-01-01T00:00:00+14:00", "description": "x"},
                     headers=tokens["analyst"]), 422, "validation_error")
    assert counts(db) == before


# ---------------------------------------------------------------- who may do what


def test_the_inspector_reads_everything_and_writes_nothing(api, db, tokens, calibrated):
    headers = tokens["inspector"]
    for url in (BASE, f"{BASE}/{calibrated.asset_no}", f"{BASE}/{calibrated.asset_no}/status"):
        assert api.get(url, headers=headers).status_code == 200, url
    with db.reading() as session:
        record_id = session.scalars(select(CalibrationRecord.id)).first()
    before, mark = counts(db), refusals_so_far(db)
    when = datetime.now(UTC) - timedelta(hours=1)
    refused = [
        api.post(f"{BASE}/{calibrated.asset_no}/checks", json=check_body(when), headers=headers),
        api.post(f"{BASE}/{calibrated.asset_no}/maintenance",
                 json={"kind": "maintenance", "performed_at": when.isoformat(), "description": "x"}, headers=headers),
        post_certificate(api, headers, calibrated.asset_no, certificate_form(local_today(db))),
        api.post(f"{BASE}/{calibrated.asset_no}/calibrations/{record_id}/acceptance",
                 json={"accept": True, "note": "", "password": PASSWORD}, headers=headers),
    ]
    for response in refused:
        problem(response, 403, "inspector_read_only")
    assert refusals_so_far(db) - mark == len(refused)  # each kept in the audit trail (issue 10)
    assert discount_refusals(db, counts(db), "AuditEvent", mark) == before


def test_an_analyst_may_record_checks_but_not_certificates(api, db, tokens, calibrated):
    problem(post_certificate(api, tokens["analyst"], calibrated.asset_no, certificate_form(local_today(db))),
            403, "permission_denied")


# ---------------------------------------------------------------- status at a moment


@pytest.fixture
def lapsed(db, technical, store) -> Instrument:
    """Verified 400 days ago, valid until 20 days ago: fine last month, overdue now."""
    instrument = make_instrument(db, technical, "JC-T-001")
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=400),
              valid_until=today - timedelta(days=20), certificate_no="JD-2025-0777")
    return instrument


def test_a_measurement_last_month_was_valid_though_the_instrument_is_overdue_now(api, db, tokens, lapsed):
    headers = tokens["analyst"]
    today = local_today(db)
    last_month = datetime.combine(today - timedelta(days=30), time(10, 0), tzinfo=db.calendar.tz)
    then = api.get(f"{BASE}/JC-T-001/status", params={"at": last_month.isoformat(), "parameter": "NH3-N"},
                   headers=headers).json()
    assert then["asset_no"] == "JC-T-001" and then["parameter"] == "NH3-N"
    assert then["usable"] is True and then["reason"] is None and then["message"] is None
    assert then["status"] == "due_soon"  # within 30 days of its due date
    assert then["calibration"] == "JD-2025-0777"
    assert datetime.fromisoformat(then["at"].replace("Z", "+00:00")) == last_month
    due = db.calendar.start_of(today - timedelta(days=19))
    assert datetime.fromisoformat(then["due_at"].replace("Z", "+00:00")) == due

    now = api.get(f"{BASE}/JC-T-001/status", headers=headers).json()
    assert (now["status"], now["usable"], now["reason"]) == ("overdue", False, "overdue")
    assert now["calibration"] is None and now["message"]
    assert abs(datetime.fromisoformat(now["at"].replace("Z", "+00:00")) - datetime.now(UTC)) < timedelta(hours=1)
    with_parameter = api.get(f"{BASE}/JC-T-001/status", params={"parameter": "NH3-N"}, headers=headers).json()
    assert with_parameter["reason"] == "overdue"


def test_a_naive_time_is_read_as_lab_time(api, db, tokens, lapsed):
    """Valid until the end of its last local day: 23:30 lab time on that day is still fine,
    the same wall-clock time in UTC is already the next lab day."""
    last_day = local_today(db) - timedelta(days=20)
    wall = datetime.combine(last_day, time(23, 30))
    headers = tokens["analyst"]
    local = api.get(f"{BASE}/JC-T-001/status", params={"at": wall.isoformat()}, headers=headers).json()
    assert local["usable"] is True
    assert datetime.fromisoformat(local["at"].replace("Z", "+00:00")) == wall.replace(tzinfo=db.calendar.tz)
    utc = api.get(f"{BASE}/JC-T-001/status", params={"at": wall.isoformat() + "+00:00"}, headers=headers).json()
    assert (utc["usable"], utc["reason"]) == (False, "overdue")


def test_the_gate_reasons_with_a_parameter(api, db, tokens, calibrated, technical):
    headers = tokens["analyst"]
    status = api.get(f"{BASE}/{calibrated.asset_no}/status", params={"parameter": "COD"}, headers=headers).json()
    assert (status["status"], status["usable"], status["reason"]) == ("in_service", False, "not_assigned")
    assert "COD" in status["message"]
    status = api.get(f"{BASE}/{calibrated.asset_no}/status", params={"parameter": "nh3-n"}, headers=headers).json()
    assert (status["usable"], status["reason"]) == (True, None)
    before_commissioning = datetime.combine(local_today(db) - timedelta(days=900), time(9))
    status = api.get(f"{BASE}/{calibrated.asset_no}/status", params={"at": before_commissioning.isoformat()},
                     headers=headers).json()
    assert (status["usable"], status["reason"]) == (False, "not_commissioned")


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00:00", "0001-01-01T00:00:00+14:00",
                                "9999-12-31T23:59:59-12:00", "x" * 300])
def test_an_unreadable_or_absurd_time_is_a_422_problem(api, tokens, calibrated, at):
    response = api.get(f"{BASE}/{calibrated.asset_no}/status", params={"at": at}, headers=tokens["analyst"])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] in ("validation_error", "invalid_time")
