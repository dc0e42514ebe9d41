"""The record pages: certificates (检定/校准) with their PDF, 计量确认, intermediate checks,
maintenance and repair, corrections as new revisions, and the confirmation worklist.

Every refused form comes back with its message and the values typed, and leaves no row, no
stored file and no audit event behind."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.files import StoredFile
from app.core.signatures import ElectronicSignature
from app.instruments import records
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
    IntermediateCheck,
    MaintenanceRecord,
)
from app.instruments.service import row_columns
from tests.conftest import PASSWORD, discount_refusals, login, make_user, refusals_so_far
from tests.instruments.conftest import PDF, calibrate, check, local_today, make_instrument

TECHNICAL = "technical-manager"
MODELS = {"calibrations": CalibrationRecord, "stored_files": StoredFile, "audit": AuditEvent,
          "acceptances": CalibrationAcceptance, "checks": IntermediateCheck, "maintenance": MaintenanceRecord,
          "signatures": ElectronicSignature, "impacts": ImpactAssessment}


def counts(db) -> dict[str, int]:
    with db.reading() as session:
        return {name: session.scalar(select(func.count()).select_from(model)) for name, model in MODELS.items()}


def actions(db) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def load(db, model, row_id):
    with db.reading() as session:
        row = session.get(model, row_id)
        session.expunge(row)
        return row


def error_code(response) -> str | None:
    match = re.search(r'data-code="([a-z_]+)"', response.text)
    return match.group(1) if match else None


def field_value(response, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', response.text)
    return match.group(1) if match else None


def certificate_form(db, **changes) -> dict:
    today = local_today(db)
    form = {"kind": "verification", "provider": "江城市计量测试研究院", "provider_accreditation_no": "CNAS L1234",
            "certificate_no": "JD2025-0042", "performed_on": (today - timedelta(days=3)).isoformat(),
            "valid_until": (today + timedelta(days=362)).isoformat(), "result": "pass",
            "corrections": "波长示值误差 +0.3 nm"}
    form.update(changes)
    return form


def post_certificate(client, token, asset_no, form, content=PDF, name="certificate.pdf"):
    files = {"certificate": (name, content, "application/pdf")} if content is not None else None
    return client.post(f"/instruments/{asset_no}/calibrations", data={**form, "csrf_token": token}, files=files)


@pytest.fixture
def instrument(db, technical):
    return make_instrument(db, technical)


@pytest.fixture
def token(client, technical):
    return login(client, TECHNICAL)


# ---------------------------------------------------------------- certificates


def test_the_certificate_form_offers_the_instruments_parameters(client, instrument, token):
    page = client.get(f"/instruments/{instrument.asset_no}/calibrations/new")
    assert page.status_code == 200
    assert 'name="allowed_parameters" value="NH3-N"' in page.text and 'value="TP"' in page.text
    assert 'enctype="multipart/form-data"' in page.text and 'type="file" name="certificate"' in page.text
    assert field_value(page, "performed_on") == local_today(client.app.state.db).isoformat()
    assert client.get("/instruments/NO-SUCH-1/calibrations/new").status_code == 404


def test_recording_a_verification_stores_the_pdf_and_waits_for_confirmation(client, db, instrument, token, store):
    before = counts(db)
    response = post_certificate(client, token, instrument.asset_no, certificate_form(db))
    assert response.status_code == 303, response.text
    record_id = int(re.fullmatch(r"/instruments/calibrations/(\d+)", response.headers["location"]).group(1))
    after = counts(db)
    assert after["calibrations"] == before["calibrations"] + 1
    assert after["stored_files"] == before["stored_files"] + 1
    assert {"file.stored", "instrument.calibration_recorded"} <= set(actions(db)[-after["audit"] + before["audit"]:])
    record = load(db, CalibrationRecord, record_id)
    assert (record.kind, record.certificate_no, record.result) == ("verification", "JD2025-0042", "pass")
    assert store.verify(record.certificate_sha256)

    page = client.get(f"/instruments/calibrations/{record_id}")
    assert page.status_code == 200
    assert "JD2025-0042" in page.text and "CNAS L1234" in page.text and record.certificate_sha256 in page.text
    assert f'/instruments/calibrations/{record_id}/certificate' in page.text
    assert f'action="/instruments/calibrations/{record_id}/acceptance"' in page.text  # the responsible person

    pdf = client.get(f"/instruments/calibrations/{record_id}/certificate")
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline")


def test_a_restricted_certificate_keeps_the_parameters_it_may_still_serve(client, db, instrument, token):
    form = certificate_form(db, result="restricted", restriction="仅 200–400 nm 波段可用",
                            allowed_parameters=["TP"])
    response = post_certificate(client, token, instrument.asset_no, form)
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    assert "仅 200–400 nm 波段可用" in page.text and "TP" in page.text


def test_a_failed_certificate_opens_an_impact_assessment(client, db, instrument, token):
    response = post_certificate(client, token, instrument.asset_no,
                                certificate_form(db, result="fail", valid_until=""))
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    with db.reading() as session:
        assessment_id = session.scalars(select(ImpactAssessment.id)).one()
        assert session.get(Instrument, instrument.id).service_state == "out_of_service"
    assert f'href="/instruments/impact/{assessment_id}"' in page.text
    impact = client.get(f"/instruments/impact/{assessment_id}")
    assert f'href="{response.headers["location"]}"' in impact.text and "JD2025-0042" in impact.text
    assert 'action="/instruments/calibrations/' not in page.text.split('id="acceptance"')[1].split("</section>")[0]


BAD_CERTIFICATES = {
    "valid until before performed": ({"valid_until": "2020-01-01", "performed_on": "2020-02-01"}, PDF, 422,
                                     "valid_until_before_performed"),
    "not a pdf": ({}, b"PK\x03\x04 this is a zip, renamed", 422, "unsupported_file_type"),
    "over 20 MB": ({}, b"%PDF-1.4\n" + b"0" * (20 * 1024 * 1024), 413, "payload_too_large"),
    "no file": ({}, None, 422, "certificate_required"),
    "empty file": ({}, b"", 422, None),
    "malformed date": ({"performed_on": "2025-02-30"}, PDF, 422, "malformed_date"),
    "date out of range": ({"valid_until": "0001-01-01"}, PDF, 422, "malformed_date"),
    "unknown result": ({"result": "excellent"}, PDF, 422, "invalid_input"),
    "restricted without parameters": ({"result": "restricted", "restriction": "部分波段"}, PDF, 422,
                                      "restriction_required"),
    "performed in the future": ({"performed_on": "2999-01-01", "valid_until": "2999-12-31"}, PDF, 422,
                                "date_in_future"),
}


@pytest.mark.parametrize("case", list(BAD_CERTIFICATES))
def test_a_bad_certificate_comes_back_with_the_message_and_nothing_saved(client, db, instrument, token, case):
    changes, content, status, code = BAD_CERTIFICATES[case]
    before = counts(db)
    form = certificate_form(db, provider="省计量院 <b>", **changes)
    response = post_certificate(client, token, instrument.asset_no, form, content=content)
    assert response.status_code == status, response.text[:500]
    if code:
        assert error_code(response) == code
    assert 'class="alert error"' in response.text
    # the form again, with what was typed (escaped), but not the file
    assert f'action="/instruments/{instrument.asset_no}/calibrations"' in response.text
    assert field_value(response, "provider") == "省计量院 &lt;b&gt;"
    assert field_value(response, "certificate_no") == "JD2025-0042"
    assert counts(db) == before


def test_a_duplicate_certificate_number_is_refused(client, db, instrument, token):
    assert post_certificate(client, token, instrument.asset_no, certificate_form(db)).status_code == 303
    before = counts(db)
    response = post_certificate(client, token, instrument.asset_no, certificate_form(db, certificate_no="jd2025-0042"))
    assert response.status_code == 409 and error_code(response) == "duplicate_certificate_no"
    assert "jd2025-0042" in response.text
    assert counts(db) == before


def test_an_unknown_asset_number_gives_the_form_back_with_the_message(client, db, instrument, token):
    before = counts(db)
    response = post_certificate(client, token, "JC-NOPE-9", certificate_form(db))
    assert response.status_code == 404 and error_code(response) == "instrument_not_found"
    assert "JC-NOPE-9" in response.text and field_value(response, "certificate_no") == "JD2025-0042"
    assert counts(db) == before


def test_a_corrupted_certificate_file_is_not_served(client, db, instrument, token, store):
    response = post_certificate(client, token, instrument.asset_no, certificate_form(db))
    record = load(db, CalibrationRecord, int(response.headers["location"].rsplit("/", 1)[1]))
    path = store.path(record.certificate_sha256)
    path.chmod(0o644)
    path.write_bytes(PDF.replace(b"1.4", b"1.7"))
    refused = client.get(f"/instruments/calibrations/{record.id}/certificate")
    assert refused.status_code == 409 and error_code(refused) == "certificate_altered"
    assert b"1.7" not in refused.content
    path.unlink()
    assert client.get(f"/instruments/calibrations/{record.id}/certificate").status_code == 409


# ---------------------------------------------------------------- corrections


def test_a_correction_is_revision_2_with_its_reason_and_the_old_row_unchanged(client, db, instrument, token):
    first = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                .headers["location"].rsplit("/", 1)[1])
    original = row_columns(load(db, CalibrationRecord, first))
    form_page = client.get(f"/instruments/calibrations/{first}/correct")
    assert form_page.status_code == 200
    assert field_value(form_page, "certificate_no") == "JD2025-0042" and 'name="reason"' in form_page.text
    assert field_value(form_page, "provider_accreditation_no") == "CNAS L1234"

    before = counts(db)
    form = certificate_form(db, certificate_no="JD2025-0043", reason="证书编号录入错误")
    response = client.post(f"/instruments/calibrations/{first}/correct", data={**form, "csrf_token": token})
    assert response.status_code == 303, response.text[:500]
    second = int(response.headers["location"].rsplit("/", 1)[1])
    corrected = load(db, CalibrationRecord, second)
    assert (corrected.revision, corrected.supersedes_id, corrected.correction_reason) == (2, first, "证书编号录入错误")
    assert corrected.certificate_sha256 == original["certificate_sha256"]  # no new file: the old one is kept
    assert row_columns(load(db, CalibrationRecord, first)) == original
    after = counts(db)
    assert after["calibrations"] == before["calibrations"] + 1 and after["stored_files"] == before["stored_files"]
    assert "instrument.calibration_corrected" in actions(db)

    page = client.get(f"/instruments/calibrations/{second}")
    assert "证书编号录入错误" in page.text and "JD2025-0042" in page.text  # the old revision is listed
    old = client.get(f"/instruments/calibrations/{first}")
    assert f'href="/instruments/calibrations/{second}"' in old.text and 'class="alert warning"' in old.text
    assert f"/instruments/calibrations/{first}/correct" not in old.text
    # correcting the old revision leads to the current one
    assert client.get(f"/instruments/calibrations/{first}/correct").headers["location"] == (
        f"/instruments/calibrations/{second}/correct")


def test_a_correction_with_a_new_certificate_file(client, db, instrument, token):
    first = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                .headers["location"].rsplit("/", 1)[1])
    other = PDF + b"% scanned again\n"
    response = client.post(f"/instruments/calibrations/{first}/correct",
                           data={**certificate_form(db), "reason": "扫描件不清晰", "csrf_token": token},
                           files={"certificate": ("rescan.pdf", other, "application/pdf")})
    assert response.status_code == 303
    second = load(db, CalibrationRecord, int(response.headers["location"].rsplit("/", 1)[1]))
    assert client.get(f"/instruments/calibrations/{second.id}/certificate").content == other
    assert client.get(f"/instruments/calibrations/{first}/certificate").content == PDF


@pytest.mark.parametrize("changes, code", [
    ({"reason": ""}, "validation_error"),
    ({"reason": "   "}, "reason_required"),
    ({"reason": "无变化"}, "nothing_corrected"),
    ({"reason": "改有效期", "valid_until": "2001-01-01"}, "valid_until_before_performed"),
])
def test_a_refused_correction_saves_nothing(client, db, instrument, token, changes, code):
    first = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                .headers["location"].rsplit("/", 1)[1])
    before = counts(db)
    response = client.post(f"/instruments/calibrations/{first}/correct",
                           data={**certificate_form(db), **changes, "csrf_token": token})
    assert response.status_code == 422 and error_code(response) == code
    if code != "validation_error":
        assert 'name="reason"' in response.text
    assert counts(db) == before


# ---------------------------------------------------------------- 计量确认


def test_the_responsible_person_accepts_with_a_signature(client, db, instrument, token):
    record_id = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                    .headers["location"].rsplit("/", 1)[1])
    response = client.post(f"/instruments/calibrations/{record_id}/acceptance",
                           data={"decision": "accept", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    with db.reading() as session:
        acceptance = session.scalars(select(CalibrationAcceptance)).one()
        assert acceptance.decision == "accepted" and acceptance.calibration_id == record_id
        assert session.get(Instrument, instrument.id).service_state == "active"
    assert "instrument.calibration_accepted" in actions(db) and "signature.confirmed" in actions(db)
    page = client.get(f"/instruments/calibrations/{record_id}")
    assert 'class="signature intact"' in page.text
    assert f"/instruments/calibrations/{record_id}/acceptance" not in page.text  # decided once


def test_a_rejection_needs_a_note(client, db, instrument, token):
    record_id = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                    .headers["location"].rsplit("/", 1)[1])
    before = counts(db)
    response = client.post(f"/instruments/calibrations/{record_id}/acceptance",
                           data={"decision": "reject", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 422 and counts(db) == before
    response = client.post(f"/instruments/calibrations/{record_id}/acceptance",
                           data={"decision": "reject", "note": "未给出 200 nm 以下的示值误差", "password": PASSWORD,
                                 "csrf_token": token})
    assert response.status_code == 303
    assert "未给出 200 nm 以下的示值误差" in client.get(f"/instruments/calibrations/{record_id}").text


def test_acceptance_by_someone_else_is_refused(client, db, technical, instrument, store):
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=1),
                       valid_until=local_today(db) + timedelta(days=300), accept=None)
    make_user(db, "deputy-technical", "technical_manager", name_zh="李副")
    token = login(client, "deputy-technical")
    page = client.get(f"/instruments/calibrations/{record.id}")
    assert f"/instruments/calibrations/{record.id}/acceptance" not in page.text
    assert technical.printed_name in page.text  # who must confirm
    before = counts(db)
    response = client.post(f"/instruments/calibrations/{record.id}/acceptance",
                           data={"decision": "accept", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 403 and error_code(response) == "not_responsible_person"
    assert "计量确认须由该仪器的责任人" in response.text and technical.printed_name in response.text
    assert counts(db) == before


def test_a_wrong_password_does_not_sign(client, db, instrument, token):
    record_id = int(post_certificate(client, token, instrument.asset_no, certificate_form(db))
                    .headers["location"].rsplit("/", 1)[1])
    before = counts(db)
    response = client.post(f"/instruments/calibrations/{record_id}/acceptance",
                           data={"decision": "accept", "password": "not-my-password", "csrf_token": token})
    assert response.status_code in (401, 403, 409, 422)
    assert 'class="alert error"' in response.text
    after = counts(db)
    assert (after["acceptances"], after["signatures"]) == (before["acceptances"], before["signatures"])
    assert "instrument.calibration_accepted" not in actions(db)


def test_the_confirmation_worklist(client, db, technical, instrument, store, token):
    mine = calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=1),
                     valid_until=local_today(db) + timedelta(days=300), accept=None, certificate_no="JD-MINE-1")
    colleague = make_user(db, "colleague", "analyst", name_zh="王工")
    theirs = make_instrument(db, technical, "JC-PH-002", responsible=colleague, name_zh="pH 计")
    calibrate(db, technical, store, theirs, performed_on=local_today(db) - timedelta(days=1),
              valid_until=local_today(db) + timedelta(days=300), accept=None, certificate_no="JD-THEIRS-1")
    page = client.get("/instruments/confirmations")
    assert page.status_code == 200
    assert f"/instruments/calibrations/{mine.id}" in page.text and "JD-THEIRS-1" not in page.text
    everyone = client.get("/instruments/confirmations?all=true")
    assert "JD-MINE-1" in everyone.text and "JD-THEIRS-1" in everyone.text and "王工" in everyone.text
    # an analyst sees only their own, even when asking for all
    client.cookies.clear()
    login(client, "colleague")
    theirs_page = client.get("/instruments/confirmations?all=true")
    assert "JD-THEIRS-1" in theirs_page.text and "JD-MINE-1" not in theirs_page.text


# ---------------------------------------------------------------- intermediate checks


def check_form(**changes) -> dict:
    form = {"performed_at": "2025-01-02T09:30", "check_standard": "GBW(E)080218 氨氮标准溶液",
            "method": "HJ 535-2009", "criterion": "0.500 ± 0.010 mg/L", "measured_value": "0.502", "unit": "mg/L",
            "result": "pass", "remarks": "", "password": PASSWORD}
    form.update(changes)
    return form


@pytest.fixture
def checked_instrument(db, technical, store):
    """Commissioned 800 days ago and verified 100 days ago, so a check dated last week is valid."""
    instrument = make_instrument(db, technical)
    calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=100),
              valid_until=local_today(db) + timedelta(days=265))
    return instrument


def recent_local(db, days: int = 2) -> str:
    return (datetime.now(db.calendar.tz) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def test_a_passing_check_is_signed_and_its_time_is_the_labs(client, db, checked_instrument, token):
    page = client.get(f"/instruments/{checked_instrument.asset_no}/checks/new")
    assert page.status_code == 200 and 'type="datetime-local"' in page.text and 'name="password"' in page.text
    when = recent_local(db)
    before = counts(db)
    response = client.post(f"/instruments/{checked_instrument.asset_no}/checks",
                           data={**check_form(performed_at=when), "csrf_token": token})
    assert response.status_code == 303, response.text[:500]
    check_id = int(re.fullmatch(r"/instruments/checks/(\d+)", response.headers["location"]).group(1))
    row = load(db, IntermediateCheck, check_id)
    expected = datetime.strptime(when, "%Y-%m-%dT%H:%M").replace(tzinfo=db.calendar.tz).astimezone(UTC)
    assert row.effective_from == expected  # 09:30 in Shanghai is 01:30 UTC
    assert (row.measured_value, row.result) == ("0.502", "pass")
    after = counts(db)
    assert after["checks"] == before["checks"] + 1 and after["signatures"] == before["signatures"] + 1
    assert {"instrument.check_recorded", "signature.performed"} <= set(actions(db))
    shown = client.get(f"/instruments/checks/{check_id}")
    assert shown.status_code == 200
    assert 'class="signature intact"' in shown.text and when.replace("T", " ") in shown.text


def test_a_failed_check_says_the_instrument_is_out_of_service(client, db, checked_instrument, token):
    response = client.post(f"/instruments/{checked_instrument.asset_no}/checks",
                           data={**check_form(performed_at=recent_local(db), measured_value="0.531",
                                              result="fail"), "csrf_token": token})
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    with db.reading() as session:
        assessment_id = session.scalars(select(ImpactAssessment.id)).one()
        assert session.get(Instrument, checked_instrument.id).service_state == "out_of_service"
    assert f'href="/instruments/impact/{assessment_id}"' in page.text
    assert 'data-status="out_of_service"' in page.text


BAD_CHECKS = {
    "wrong password": ({"password": "not-my-password"}, None),
    "malformed time": ({"performed_at": "yesterday 9am"}, "malformed_datetime"),
    "impossible time": ({"performed_at": "2025-02-30T09:00"}, "malformed_datetime"),
    "measured value not a number": ({"measured_value": "about 0.5"}, "invalid_measured_value"),
    "in the future": ({"performed_at": "2999-01-01T09:00"}, "date_in_future"),
    "unknown result": ({"result": "maybe"}, "invalid_input"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKS))
def test_a_bad_check_comes_back_with_the_message_and_no_check(client, db, checked_instrument, token, case):
    changes, code = BAD_CHECKS[case]
    before = counts(db)
    response = client.post(f"/instruments/{checked_instrument.asset_no}/checks",
                           data={**check_form(**{"performed_at": recent_local(db), **changes}), "csrf_token": token})
    assert 400 <= response.status_code < 500
    if code:
        assert error_code(response) == code
    assert 'class="alert error"' in response.text
    assert field_value(response, "check_standard") == "GBW(E)080218 氨氮标准溶液"
    assert field_value(response, "password") is None  # the password is never sent back
    after = counts(db)
    for name in ("checks", "signatures", "impacts"):
        assert after[name] == before[name], name
    if case != "wrong password":  # a wrong signing password leaves its own trace, nothing else
        assert after == before


def test_a_check_correction_is_signed_again(client, db, checked_instrument, technical, token):
    first = check(db, technical, checked_instrument, performed_at=datetime.now(UTC) - timedelta(days=2))
    original = row_columns(load(db, IntermediateCheck, first.id))
    form_page = client.get(f"/instruments/checks/{first.id}/correct")
    assert form_page.status_code == 200 and field_value(form_page, "measured_value") == "0.502"
    assert 'name="password"' in form_page.text
    values = {"performed_at": field_value(form_page, "performed_at"), "check_standard": original["check_standard"],
              "method": original["method"], "criterion": original["criterion"], "measured_value": "0.503",
              "unit": "mg/L", "result": "pass", "reason": "读数抄错", "password": PASSWORD, "csrf_token": token}
    response = client.post(f"/instruments/checks/{first.id}/correct", data=values)
    assert response.status_code == 303, response.text[:500]
    second = load(db, IntermediateCheck, int(response.headers["location"].rsplit("/", 1)[1]))
    assert (second.revision, second.supersedes_id, second.correction_reason) == (2, first.id, "读数抄错")
    assert second.effective_from == first.effective_from  # the time shown and sent back is not shifted
    assert row_columns(load(db, IntermediateCheck, first.id)) == original
    page = client.get(f"/instruments/checks/{second.id}")
    assert "读数抄错" in page.text and page.text.count('class="badge good">') >= 1
    before = counts(db)
    refused = client.post(f"/instruments/checks/{second.id}/correct", data={**values, "password": "wrong-one"})
    assert refused.status_code >= 400 and counts(db)["checks"] == before["checks"]


# ---------------------------------------------------------------- maintenance and repair


def test_a_repair_takes_the_instrument_out_of_service(client, db, checked_instrument, token):
    page = client.get(f"/instruments/{checked_instrument.asset_no}/maintenance/new")
    assert page.status_code == 200 and 'value="repair"' in page.text
    assert "A repair takes the instrument out of service" in page.text or "维修" in page.text
    response = client.post(f"/instruments/{checked_instrument.asset_no}/maintenance",
                           data={"kind": "repair", "performed_at": recent_local(db), "description": "更换光电倍增管",
                                 "performed_by": "岛津售后 王工", "csrf_token": token})
    assert response.status_code == 303
    record = load(db, MaintenanceRecord, int(response.headers["location"].rsplit("/", 1)[1]))
    assert (record.kind, record.performed_by) == ("repair", "岛津售后 王工")
    assert load(db, Instrument, checked_instrument.id).service_state == "out_of_service"
    assert "instrument.maintenance_recorded" in actions(db)
    shown = client.get(f"/instruments/maintenance/{record.id}")
    assert "更换光电倍增管" in shown.text and 'data-status="out_of_service"' in shown.text


def test_maintenance_correction_and_refusals(client, db, checked_instrument, token):
    response = client.post(f"/instruments/{checked_instrument.asset_no}/maintenance",
                           data={"kind": "maintenance", "performed_at": recent_local(db),
                                 "description": "清洁样品室", "csrf_token": token})
    first = int(response.headers["location"].rsplit("/", 1)[1])
    original = row_columns(load(db, MaintenanceRecord, first))
    form_page = client.get(f"/instruments/maintenance/{first}/correct")
    assert form_page.status_code == 200 and "清洁样品室" in form_page.text
    before = counts(db)
    bad = client.post(f"/instruments/maintenance/{first}/correct",
                      data={"kind": "maintenance", "performed_at": "31/12/2024", "description": "清洁样品室和光路",
                            "reason": "补充", "csrf_token": token})
    assert bad.status_code == 422 and error_code(bad) == "malformed_datetime" and "清洁样品室和光路" in bad.text
    assert counts(db) == before
    good = client.post(f"/instruments/maintenance/{first}/correct",
                       data={"kind": "maintenance", "performed_at": field_value(form_page, "performed_at"),
                             "description": "清洁样品室和光路", "reason": "补充内容", "csrf_token": token})
    assert good.status_code == 303
    second = load(db, MaintenanceRecord, int(good.headers["location"].rsplit("/", 1)[1]))
    assert (second.revision, second.supersedes_id, second.description) == (2, first, "清洁样品室和光路")
    assert row_columns(load(db, MaintenanceRecord, first)) == original
    assert "补充内容" in client.get(f"/instruments/maintenance/{second.id}").text
    assert counts(db)["maintenance"] == before["maintenance"] + 1


# ---------------------------------------------------------------- who may


def record_posts(ids: dict) -> list[tuple[str, dict]]:
    return [
        (f"/instruments/{ids['asset_no']}/calibrations", {"kind": "verification", "provider": "x",
                                                          "certificate_no": "X-1", "performed_on": "2025-01-01",
                                                          "valid_until": "2026-01-01", "result": "pass"}),
        (f"/instruments/calibrations/{ids['calibration']}/correct", {"kind": "verification", "provider": "x",
                                                                     "certificate_no": "X-1", "result": "pass",
                                                                     "performed_on": "2025-01-01", "reason": "r"}),
        (f"/instruments/calibrations/{ids['calibration']}/acceptance", {"decision": "accept",
                                                                        "password": PASSWORD}),
        (f"/instruments/{ids['asset_no']}/checks", check_form()),
        (f"/instruments/checks/{ids['check']}/correct", {**check_form(), "reason": "r"}),
        (f"/instruments/{ids['asset_no']}/maintenance", {"kind": "repair", "performed_at": "2025-01-01T09:00",
                                                         "description": "d"}),
        (f"/instruments/maintenance/{ids['maintenance']}/correct", {"kind": "repair", "description": "d",
                                                                    "performed_at": "2025-01-01T09:00",
                                                                    "reason": "r"}),
    ]


def test_the_inspector_is_refused_on_every_record_post(client, db, technical, checked_instrument, store):
    with db.transaction() as session:
        instrument = session.get(Instrument, checked_instrument.id)
        maintenance = records.record_maintenance(session, technical, instrument, records.MaintenanceFacts(
            kind="maintenance", performed_at=datetime.now(UTC) - timedelta(hours=1), description="清洁"))
    calibration = calibrate(db, technical, store, checked_instrument, accept=None,
                            performed_on=local_today(db) - timedelta(days=1),
                            valid_until=local_today(db) + timedelta(days=300))
    done = check(db, technical, checked_instrument, performed_at=datetime.now(UTC) - timedelta(hours=2))
    ids = {"asset_no": checked_instrument.asset_no, "calibration": calibration.id, "check": done.id,
           "maintenance": maintenance.id}
    token = login(client, "inspector")
    before, mark = counts(db), refusals_so_far(db)
    for url, data in record_posts(ids):
        response = client.post(url, data={**data, "csrf_token": token},
                               files={"certificate": ("c.pdf", PDF, "application/pdf")} if "calibrations" in url
                               and "acceptance" not in url else None)
        assert response.status_code == 403 and error_code(response) == "inspector_read_only", url
    for url in (f"/instruments/calibrations/{calibration.id}", f"/instruments/checks/{done.id}",
                f"/instruments/maintenance/{maintenance.id}",
                f"/instruments/calibrations/{calibration.id}/certificate"):
        assert client.get(url).status_code == 200, url
    page = client.get(f"/instruments/calibrations/{calibration.id}")
    assert "/correct" not in page.text and "/acceptance" not in page.text
    assert refusals_so_far(db) - mark == len(record_posts(ids))  # each kept in the audit trail (issue 10)
    assert discount_refusals(db, counts(db), "audit", mark) == before


def test_an_analyst_records_checks_but_not_certificates(client, db, checked_instrument, users):
    token = login(client, "analyst")
    assert client.get(f"/instruments/{checked_instrument.asset_no}/calibrations/new").status_code == 403
    assert client.get(f"/instruments/{checked_instrument.asset_no}/checks/new").status_code == 200
    response = client.post(f"/instruments/{checked_instrument.asset_no}/checks",
                           data={**check_form(performed_at=recent_local(db)), "csrf_token": token})
    assert response.status_code == 303


# ---------------------------------------------------------------- query counts


def _revisions(db, technical, store, asset_no: str, n: int) -> CalibrationRecord:
    instrument = make_instrument(db, technical, asset_no)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - timedelta(days=10),
                       valid_until=local_today(db) + timedelta(days=300), accept=None)
    for i in range(1, n):
        facts = records.CalibrationFacts(
            kind="verification", provider=f"江城市计量测试研究院 {i}", certificate_no=record.certificate_no,
            performed_on=record.performed_on, valid_until=record.valid_until, result="pass")
        with db.transaction() as session:
            record = records.correct_calibration(session, technical, session.get(CalibrationRecord, record.id),
                                                 facts, reason=f"更正 {i}", store=store)
    with db.transaction() as session:
        records.decide_acceptance(session, technical, session.get(CalibrationRecord, record.id), PASSWORD,
                                  accept=True)
    return record


def test_the_certificate_page_costs_the_same_queries_with_2_or_20_revisions(client, db, technical, store, token,
                                                                             count_queries):
    few = _revisions(db, technical, store, "JC-FEW-01", 2)
    many = _revisions(db, technical, store, "JC-MANY-01", 20)
    measured = {}
    for name, record in (("few", few), ("many", many)):
        client.get(f"/instruments/calibrations/{record.id}")  # warm up
        with count_queries() as q:
            page = client.get(f"/instruments/calibrations/{record.id}")
        assert page.status_code == 200
        measured[name] = q.count
    assert page.text.count("更正 ") >= 19
    assert measured["few"] == measured["many"], measured
    assert measured["many"] <= 16, measured


def test_the_check_page_costs_the_same_queries_with_2_or_20_revisions(client, db, technical, checked_instrument,
                                                                       token, count_queries):
    measured = {}
    for n in (2, 20):
        record = check(db, technical, checked_instrument, performed_at=datetime.now(UTC) - timedelta(days=n))
        for i in range(1, n):
            facts = records.CheckFacts(performed_at=record.effective_from, check_standard="GBW(E)080218",
                                       criterion="0.500 ± 0.010 mg/L", measured_value=f"0.5{i:02d}", result="pass")
            with db.transaction() as session:
                record = records.correct_check(session, technical, session.get(IntermediateCheck, record.id), facts,
                                               PASSWORD, reason=f"更正 {i}")
        client.get(f"/instruments/checks/{record.id}")
        with count_queries() as q:
            assert client.get(f"/instruments/checks/{record.id}").status_code == 200
        measured[n] = q.count
    assert measured[2] == measured[20], measured

