"""The registry pages as a technical manager, an inspector and others use them: list, register,
detail with its timeline, edit with a reason, out of service, retire, attachments, traceability,
the scan box and the dashboard worklists."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.files import StoredFile
from app.instruments import records, service
from app.instruments.models import (
    CalibrationRecord,
    Instrument,
    InstrumentAttachment,
    InstrumentUse,
    ServiceChange,
)
from app.instruments.routes import ERROR_FIELDS
from tests.conftest import login
from tests.instruments.conftest import PDF, calibrate, check, local_today, make_instrument

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def login_en(client, username: str) -> str:
    token = login(client, username)
    client.cookies.set("lims_lang", "en")
    return token


def count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def audit_actions(db, entity_type: str | None = None) -> list[str]:
    with db.reading() as session:
        stmt = select(AuditEvent.action).order_by(AuditEvent.seq)
        if entity_type:
            stmt = stmt.where(AuditEvent.entity_type == entity_type)
        return list(session.scalars(stmt))


def maintain(db, actor, instrument, *, kind: str = "maintenance", days_ago: int = 1,
             description: str = "更换氘灯，清洁样品室"):
    facts = records.MaintenanceFacts(kind=kind, performed_at=utcnow() - timedelta(days=days_ago),
                                     description=description, performed_by="岛津售后 王工")
    with db.transaction() as session:
        return records.record_maintenance(session, actor, session.get(Instrument, instrument.id), facts)


def registration(**changes) -> dict[str, str]:
    form = {
        "asset_no": "JC-ICP-002", "name_zh": "电感耦合等离子体质谱仪", "name_en": "ICP-MS", "model": "7900",
        "manufacturer": "安捷伦 Agilent", "serial_no": "JP19420123", "location": "金属室 305",
        "kind": "laboratory", "commissioned_on": "2021-06-01", "responsible_id": "",
        "uses": "Pb | HJ 700-2014\nCd | HJ 700-2014\n\nAs", "notes": "需氩气 99.999%",
    }
    form.update(changes)
    return form


# ---------------------------------------------------------------- every page renders


def test_every_registry_page_renders_for_the_technical_manager(client, db, technical, store, usage_source):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    old = calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=400),
                    valid_until=today - timedelta(days=40), certificate_no="JD-OLD")
    current = calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=30),
                        valid_until=today + timedelta(days=300), certificate_no="JD-NEW")
    with db.transaction() as session:  # a correction: the first entry becomes a superseded revision
        facts = records.CalibrationFacts(kind="verification", provider="江城市计量测试研究院",
                                         certificate_no="JD-NEW-2", performed_on=today - timedelta(days=30),
                                         valid_until=today + timedelta(days=300), result="pass",
                                         provider_accreditation_no="CNAS L1234")
        corrected = records.correct_calibration(session, technical, session.get(CalibrationRecord, current.id),
                                                facts, reason="证书编号录入错误", store=store)
    passed = check(db, technical, instrument, performed_at=utcnow() - timedelta(days=5))
    maintenance = maintain(db, technical, instrument)
    failed = check(db, technical, instrument, performed_at=utcnow() - timedelta(hours=2), result="fail",
                   measured_value="0.530")
    login_en(client, "technical-manager")

    listing = client.get("/instruments")
    assert listing.status_code == 200
    assert 'href="/instruments/JC-UV-001"' in listing.text
    assert 'data-status="out_of_service"' in listing.text  # the failed check took it out of service
    assert 'href="/instruments/new"' in listing.text and "Register instrument" in listing.text

    page = client.get("/instruments/JC-UV-001")
    assert page.status_code == 200
    text = page.text
    assert "UV-Vis spectrophotometer" in text and "A116-5501" in text and "HJ 535-2009" in text
    assert 'data-status="out_of_service"' in text and "failed intermediate check" in text
    # the open impact assessment, linked to the record pages
    assert re.search(r'href="/instruments/impact/\d+"', text)
    assert "Open impact assessments" in text
    # one timeline: certificates with their files and acceptance signatures, checks with theirs,
    # maintenance, the impact assessment and the registry's own events
    for href in (f"/instruments/calibrations/{old.id}/certificate", f"/instruments/calibrations/{corrected.id}",
                 f"/instruments/checks/{passed.id}", f"/instruments/checks/{failed.id}",
                 f"/instruments/maintenance/{maintenance.id}"):
        assert f'href="{href}"' in text, href
    assert text.count('class="signature intact"') >= 3  # two acceptances, two check signatures
    assert "Registered" in text and "Status changed" in text
    # the superseded revision is struck through, the correction carries its reason
    superseded = re.search(r'<li class="tl tl-calibration superseded">(.*?)</li>', text, re.S)
    assert superseded and "<s>Certificate JD-NEW</s>" in superseded.group(1)
    assert f'href="/instruments/calibrations/{current.id}"' in superseded.group(1)
    assert "证书编号录入错误" in text and "revision 2" in text
    assert "CNAS L1234" in text
    # actions of a technical manager
    for href in ("/instruments/JC-UV-001/calibrations/new", "/instruments/JC-UV-001/checks/new",
                 "/instruments/JC-UV-001/maintenance/new", "/instruments/JC-UV-001/edit",
                 "/instruments/JC-UV-001/traceability"):
        assert f'href="{href}"' in text, href
    assert 'action="/instruments/JC-UV-001/retire"' in text
    assert 'action="/instruments/JC-UV-001/attachments"' in text
    assert 'action="/instruments/JC-UV-001/out-of-service"' not in text  # it already is

    for url in ("/instruments/new", "/instruments/JC-UV-001/edit", "/instruments/JC-UV-001/traceability"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "csrf_token" in response.text or url.endswith("traceability")


def test_the_list_searches_filters_and_pages(client, db, technical, settings, store):
    today = local_today(db)
    uv = make_instrument(db, technical, "JC-UV-001")
    calibrate(db, technical, store, uv, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300))
    ph = make_instrument(db, technical, "XC-PH-007", kind="field", name_zh="便携式 pH 计")
    calibrate(db, technical, store, ph, performed_on=today - timedelta(days=300),
              valid_until=today + timedelta(days=10))
    make_instrument(db, technical, "JC-BAL-003", name_zh="电子天平")  # never calibrated: overdue
    login_en(client, "technical-manager")

    def assets(response) -> list[str]:
        return re.findall(r'<a href="/instruments/([^"]+)"><code>', response.text)

    assert assets(client.get("/instruments")) == ["JC-BAL-003", "JC-UV-001", "XC-PH-007"]
    assert assets(client.get("/instruments", params={"q": "ph-00"})) == ["XC-PH-007"]
    assert assets(client.get("/instruments", params={"q": "a116"})) == ["JC-BAL-003", "JC-UV-001", "XC-PH-007"]
    assert assets(client.get("/instruments", params={"q": "天平"})) == ["JC-BAL-003"]
    assert assets(client.get("/instruments", params={"status": "due_soon"})) == ["XC-PH-007"]
    assert assets(client.get("/instruments", params={"status": "overdue"})) == ["JC-BAL-003"]
    assert assets(client.get("/instruments", params={"status": "in_service"})) == ["JC-UV-001"]
    assert assets(client.get("/instruments", params={"kind": "field"})) == ["XC-PH-007"]
    assert "No instruments match." in client.get("/instruments", params={"q": "nothing-like-it"}).text
    for bad in ({"status": "broken"}, {"kind": "space"}, {"page": "0"}, {"q": "x" * 101}):
        assert client.get("/instruments", params=bad).status_code == 422, bad
    # htmx live search: the results block only
    fragment = client.get("/instruments", params={"q": "jc-uv"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<div id="results">') and assets(fragment) == ["JC-UV-001"]
    # paginated at the configured page size
    for n in range(settings.page_size):
        make_instrument(db, technical, f"P-{n:03d}")
    first = client.get("/instruments")
    assert len(assets(first)) == settings.page_size
    assert 'href="/instruments?page=2"' in first.text
    second = client.get("/instruments", params={"page": 2})
    assert len(assets(second)) == 3 and "2 / 2" in second.text
    filtered = client.get("/instruments", params={"q": "0", "kind": "laboratory"})  # 52 of 53
    assert 'href="/instruments?q=0&amp;kind=laboratory&amp;page=2"' in filtered.text


def test_an_unknown_asset_number_is_a_404_with_the_domain_message(client, users):
    login(client, "inspector")
    response = client.get("/instruments/JC-NONE-404")
    assert response.status_code == 404
    assert 'data-code="instrument_not_found"' in response.text
    assert "未找到资产编号为 JC-NONE-404 的仪器" in response.text
    client.cookies.set("lims_lang", "en")
    for url in ("/instruments/JC-NONE-404/traceability", "/instruments/JC-NONE-404/edit", "/instruments/%3Cb%3E"):
        response = client.get(url)
        assert response.status_code in (403, 404), url
    assert "No instrument with asset number JC-NONE-404." in client.get("/instruments/JC-NONE-404").text
    assert client.get("/instruments/attachments/999").status_code == 404


# ---------------------------------------------------------------- the inspector


def test_the_inspector_reads_every_registry_page_and_changes_nothing(client, db, technical, store):
    instrument = make_instrument(db, technical)
    with db.transaction() as session:
        attachment = service.add_attachment(session, technical, session.get(Instrument, instrument.id), store,
                                            service.Upload(io.BytesIO(PDF), "manual.pdf"), title="说明书",
                                            kind="manual", max_bytes=1024 * 1024)
    token = login(client, "inspector")
    for url in ("/instruments", "/instruments/JC-UV-001", "/instruments/JC-UV-001/traceability",
                f"/instruments/attachments/{attachment.id}"):
        assert client.get(url).status_code == 200, url
    page = client.get("/instruments/JC-UV-001").text
    assert 'href="/instruments/new"' not in client.get("/instruments").text
    assert "/edit" not in page and "/retire" not in page and "/checks/new" not in page
    before = audit_actions(db)
    posts = {
        "/instruments": registration(responsible_id=str(technical.id)),
        "/instruments/JC-UV-001/edit": {**registration(responsible_id=str(technical.id)), "reason": "x"},
        "/instruments/JC-UV-001/out-of-service": {"reason": "检查员试图停用"},
        "/instruments/JC-UV-001/retire": {"reason": "检查员试图报废"},
    }
    for url, form in posts.items():
        response = client.post(url, data={**form, "csrf_token": token}, headers={"Accept": "application/json"})
        assert response.status_code == 403 and response.json()["code"] == "inspector_read_only", url
    upload = client.post("/instruments/JC-UV-001/attachments", data={"title": "x", "csrf_token": token},
                         files={"file": ("a.pdf", PDF, "application/pdf")})
    assert upload.status_code == 403 and 'data-code="inspector_read_only"' in upload.text
    assert client.get("/instruments/new").status_code == 403
    assert client.get("/instruments/JC-UV-001/edit").status_code == 403
    after = audit_actions(db)  # each attempt kept in the audit trail as a refusal (issue 10), nothing else
    assert after[:len(before)] == before and after[len(before):] == ["security.inspector_refused"] * 7


# ---------------------------------------------------------------- registration


def test_registering_an_instrument(client, db, technical):
    token = login_en(client, "technical-manager")
    form = client.get("/instruments/new").text
    assert f'<option value="{technical.id}" selected>' in form  # the actor is the default responsible
    response = client.post("/instruments", data={**registration(responsible_id=str(technical.id)),
                                                 "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/instruments/JC-ICP-002"
    with db.reading() as session:
        instrument = session.scalars(select(Instrument).where(Instrument.asset_no == "JC-ICP-002")).one()
        uses = session.execute(select(InstrumentUse.parameter, InstrumentUse.method)
                               .where(InstrumentUse.instrument_id == instrument.id).order_by(InstrumentUse.id)).all()
        assert instrument.responsible_id == technical.id and instrument.location == "金属室 305"
    assert [tuple(u) for u in uses] == [("Pb", "HJ 700-2014"), ("Cd", "HJ 700-2014"), ("As", "")]
    assert "instrument.registered" in audit_actions(db, "instrument")
    page = client.get("/instruments/JC-ICP-002").text
    assert "ICP-MS" in page and "HJ 700-2014" in page and 'data-status="overdue"' in page
    assert "never calibrated" in page
    # htmx: a 204 that sends the browser to the new instrument
    response = client.post("/instruments", data={**registration(asset_no="JC-ICP-003",
                                                                responsible_id=str(technical.id)),
                                                 "csrf_token": token}, headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/instruments/JC-ICP-003"


BAD_REGISTRATIONS = {
    "duplicate asset no": ({"asset_no": "JC-UV-001"}, 409, "asset_no_taken", "already registered"),
    "malformed asset no": ({"asset_no": "JC UV#1"}, 422, "invalid_asset_no", "letters, digits"),
    "future commissioning": ({"commissioned_on": "2999-01-01"}, 422, "commissioning_in_future", "cannot be after"),
    "no parameters": ({"uses": " \n | HJ 1\n"}, 422, "no_parameters", "at least one parameter"),
    "unreadable date": ({"commissioned_on": "2021-02-30"}, 422, "invalid_date", "not a valid date"),
    "unknown responsible": ({"responsible_id": "424242"}, 422, "unknown_responsible", "active user"),
    "responsible not a number": ({"responsible_id": "boss"}, 422, "unknown_responsible", "active user"),
    "no name": ({"name_zh": "  "}, 422, "invalid_input", "name_zh"),
    "unknown kind": ({"kind": "orbital"}, 422, "invalid_input", "kind"),
}


@pytest.mark.parametrize("case", BAD_REGISTRATIONS, ids=list(BAD_REGISTRATIONS))
def test_a_refused_registration_comes_back_with_the_message_and_the_values(client, db, technical, case):
    make_instrument(db, technical, "JC-UV-001")
    changes, status, code, words = BAD_REGISTRATIONS[case]
    token = login_en(client, "technical-manager")
    before = (count(db, Instrument), count(db, InstrumentUse), len(audit_actions(db)))
    form = registration(**{"responsible_id": str(technical.id), **changes})
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post("/instruments", data={**form, "csrf_token": token}, headers=headers)
        assert response.status_code == status, response.text[:500]
        assert f'data-code="{code}"' in response.text and words in response.text
        assert ('aria-invalid="true"' in response.text) == (code in ERROR_FIELDS)  # the field it is about
        # nothing typed is lost
        assert 'value="电感耦合等离子体质谱仪"' in response.text or changes.get("name_zh")
        assert "金属室 305" in response.text and "需氩气 99.999%" in response.text
        assert f'value="{form["asset_no"]}"' in response.text
        assert form["uses"].strip() in response.text or "uses" in changes
        if headers:  # htmx swaps the form alone
            assert "<html" not in response.text and response.text.lstrip().startswith("<form")
        else:
            assert "<html" in response.text
    assert (count(db, Instrument), count(db, InstrumentUse), len(audit_actions(db))) == before


# ---------------------------------------------------------------- edit, out of service, retire


def test_editing_needs_a_reason_and_is_audited(client, db, technical, users):
    make_instrument(db, technical)
    analyst = users["analyst"]
    token = login_en(client, "technical-manager")
    form = client.get("/instruments/JC-UV-001/edit").text
    assert 'value="理化室 201"' in form and "NH3-N | HJ 535-2009" in form
    changed = {**registration(asset_no="ignored", responsible_id=str(analyst.id)), "name_zh": "紫外可见分光光度计",
               "location": "理化室 203", "uses": "NH3-N | HJ 535-2009\nTP | GB 11893-89\nNO3-N | HJ 346-2007"}
    refused = client.post("/instruments/JC-UV-001/edit", data={**changed, "reason": " ", "csrf_token": token})
    assert refused.status_code == 422 and 'data-code="reason_required"' in refused.text
    assert 'value="理化室 203"' in refused.text and "NO3-N | HJ 346-2007" in refused.text
    with db.reading() as session:
        assert session.scalars(select(Instrument.location)).one() == "理化室 201"
    response = client.post("/instruments/JC-UV-001/edit",
                           data={**changed, "reason": "搬至 203 室，责任人调整", "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/instruments/JC-UV-001"
    with db.reading() as session:
        instrument = session.scalars(select(Instrument)).one()
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "instrument.updated")).one()
        assert instrument.location == "理化室 203" and instrument.responsible_id == analyst.id
        assert instrument.asset_no == "JC-UV-001"  # never changes
        assert event.after_data["reason"] == "搬至 203 室，责任人调整"
        assert event.before_data["location"] == "理化室 201" and event.after_data["location"] == "理化室 203"
    page = client.get("/instruments/JC-UV-001").text
    assert "Registry data changed" in page and "搬至 203 室，责任人调整" in page and "NO3-N" in page
    # nothing changed is refused as such
    same = client.post("/instruments/JC-UV-001/edit", data={**changed, "reason": "again", "csrf_token": token})
    assert same.status_code == 422 and 'data-code="nothing_corrected"' in same.text


def test_taking_out_of_service_and_retiring(client, db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300))
    token = login_en(client, "technical-manager")
    assert 'data-status="in_service"' in client.get("/instruments/JC-UV-001").text
    empty = client.post("/instruments/JC-UV-001/out-of-service", data={"reason": "", "csrf_token": token})
    assert empty.status_code == 422 and 'data-code="reason_required"' in empty.text
    assert count(db, ServiceChange) == 0
    response = client.post("/instruments/JC-UV-001/out-of-service",
                           data={"reason": "光源能量不稳定", "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/instruments/JC-UV-001"
    page = client.get("/instruments/JC-UV-001").text
    assert 'data-status="out_of_service"' in page and "taken out of service by decision" in page
    assert "光源能量不稳定" in page and "Taken out of service" in page
    again = client.post("/instruments/JC-UV-001/out-of-service", data={"reason": "再次", "csrf_token": token})
    assert again.status_code == 409 and 'data-code="already_out_of_service"' in again.text
    response = client.post("/instruments/JC-UV-001/retire", data={"reason": "超过使用年限，报废", "csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/instruments/JC-UV-001"
    page = client.get("/instruments/JC-UV-001").text
    assert 'data-status="retired"' in page and "超过使用年限，报废" in page
    for action in ("/edit", "/retire", "/calibrations/new", "/checks/new", "/attachments"):
        assert f"/instruments/JC-UV-001{action}" not in page, action  # nothing more to do with it
    retired = client.post("/instruments/JC-UV-001/retire", data={"reason": "再次", "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert retired.status_code == 409 and retired.headers["HX-Retarget"] == "#messages"
    assert 'data-code="instrument_is_retired"' in retired.text
    assert [a for a in audit_actions(db) if a in ("instrument.out_of_service", "instrument.retired")] == [
        "instrument.out_of_service", "instrument.retired"]


# ---------------------------------------------------------------- attachments


def test_attachments_are_uploaded_listed_and_served_unchanged(client, db, technical, store):
    make_instrument(db, technical)
    token = login_en(client, "technical-manager")
    response = client.post("/instruments/JC-UV-001/attachments",
                           data={"title": "使用说明书", "kind": "manual", "csrf_token": token},
                           files={"file": ("说明书.pdf", PDF, "application/pdf")})
    assert response.status_code == 303 and response.headers["location"] == "/instruments/JC-UV-001"
    photo = client.post("/instruments/JC-UV-001/attachments",
                        data={"title": "铭牌照片", "kind": "other", "csrf_token": token},
                        files={"file": ("nameplate.png", PNG, "image/png")})
    assert photo.status_code == 303
    with db.reading() as session:
        rows = session.execute(select(InstrumentAttachment.id, StoredFile.sha256)
                               .join(StoredFile, StoredFile.id == InstrumentAttachment.file_id)
                               .order_by(InstrumentAttachment.id)).all()
    (manual_id, manual_sha256), (nameplate_id, _) = rows
    page = client.get("/instruments/JC-UV-001").text
    assert f'href="/instruments/attachments/{manual_id}"' in page and "使用说明书" in page and "Manual" in page
    assert "Attachment added" in page
    download = client.get(f"/instruments/attachments/{manual_id}")
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''%E8%AF%B4%E6%98%8E%E4%B9%A6.pdf" in download.headers["content-disposition"]
    image = client.get(f"/instruments/attachments/{nameplate_id}")
    assert image.headers["content-type"] == "image/png" and image.content == PNG
    # anything but PDF, PNG or JPEG is refused by its bytes, whatever it is called
    before = (count(db, InstrumentAttachment), count(db, StoredFile))
    for name, content in (("notes.pdf", b"just text"), ("macro.docx", b"PK\x03\x04 word"), ("empty.pdf", b"")):
        refused = client.post("/instruments/JC-UV-001/attachments",
                              data={"title": "x", "kind": "other", "csrf_token": token},
                              files={"file": (name, content, "application/pdf")})
        assert refused.status_code == 422, name
        assert re.search(r'data-code="(unsupported_file_type|empty_file)"', refused.text)
    assert client.post("/instruments/JC-UV-001/attachments", data={"title": "x", "kind": "photo", "csrf_token": token},
                       files={"file": ("a.pdf", PDF, "application/pdf")}).status_code == 422
    assert (count(db, InstrumentAttachment), count(db, StoredFile)) == before
    # bytes changed on disk: refused, never served
    path = store.path(manual_sha256)
    path.chmod(0o644)
    path.write_bytes(PDF + b"% tampered\n")
    tampered = client.get(f"/instruments/attachments/{manual_id}")
    assert tampered.status_code == 409 and 'data-code="attachment_altered"' in tampered.text
    assert b"tampered" not in tampered.content
    path.unlink()
    assert client.get(f"/instruments/attachments/{manual_id}").status_code == 409


# ---------------------------------------------------------------- traceability


def test_traceability_at_a_moment(client, db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=400),
              valid_until=today - timedelta(days=35), certificate_no="JD-2024-0001")
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300), certificate_no="JD-2025-0002")
    check(db, technical, instrument, performed_at=utcnow() - timedelta(days=10), measured_value="0.503")
    maintain(db, technical, instrument, days_ago=3, description="更换比色皿架")
    login_en(client, "technical-manager")

    now = client.get("/instruments/JC-UV-001/traceability")
    assert now.status_code == 200
    assert "JD-2025-0002" in now.text and "JD-2024-0001" not in now.text
    assert "江城市计量测试研究院" in now.text and "CNAS L1234" in now.text
    assert 'class="signature intact"' in now.text  # the acceptance and the check signature
    assert "0.503" in now.text and "更换比色皿架" in now.text
    assert 'data-status="in_service"' in now.text
    pdf_link = re.search(r'href="(/instruments/JC-UV-001/traceability\.pdf\?at=[^"]+)"', now.text)
    assert pdf_link

    day = (today - timedelta(days=100)).isoformat()  # the old certificate was in force then
    then = client.get("/instruments/JC-UV-001/traceability", params={"at": day})
    assert "JD-2024-0001" in then.text and "JD-2025-0002" not in then.text
    assert "0.503" not in then.text and "更换比色皿架" not in then.text
    assert f'value="{day}T23:59"' in then.text
    gap_at = f"{(today - timedelta(days=32)).isoformat()}T09:30"
    gap = client.get("/instruments/JC-UV-001/traceability", params={"at": gap_at})
    assert 'data-status="overdue"' in gap.text and "JD-2024-0001" in gap.text  # expired, shown as the last one
    assert "had expired" in gap.text and "had expired" not in then.text
    before = client.get("/instruments/JC-UV-001/traceability", params={"at": "2001-01-01"})
    assert before.status_code == 200 and "No certificate had been entered" in before.text
    for bad in ("yesterday", "2025-02-30", "2025-13-01T10:00", "0001-01-01", "2025-01-01T25:00", "2025-01-01T10"):
        response = client.get("/instruments/JC-UV-001/traceability", params={"at": bad})
        assert response.status_code == 422, bad
        assert 'data-code="invalid_moment"' in response.text and "YYYY-MM-DD" in response.text
        pdf = client.get("/instruments/JC-UV-001/traceability.pdf", params={"at": bad})
        assert pdf.status_code == 422, bad
    assert client.get("/instruments/JC-UV-001/traceability", params={"at": "x" * 40}).status_code == 422


def test_the_traceability_pdf(client, db, technical, store):
    instrument = make_instrument(db, technical, "JC/UV/001")  # a '/' in the asset number
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300), certificate_no="JD-2025-0002")
    login(client, "inspector")
    assert client.get("/instruments/JC/UV/001").status_code == 200
    response = client.get("/instruments/JC/UV/001/traceability.pdf", params={"at": "2025-06-01T10:00"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response.headers["content-disposition"] == 'inline; filename="traceability-JC-UV-001-2025-06-01.pdf"'


# ---------------------------------------------------------------- the shell: scan box and worklists


def test_scanning_an_asset_label_opens_the_instrument(client, db, technical):
    make_instrument(db, technical, "JC-UV-001")
    make_instrument(db, technical, "XC/PH/007", kind="field")
    login(client, "sampler")
    for code, target in (("JC-UV-001", "JC-UV-001"), ("jc-uv-001", "JC-UV-001"), (" XC/PH/007 ", "XC/PH/007")):
        response = client.get("/scan", params={"code": code})
        assert response.status_code == 303, code
        assert response.headers["location"] == f"/instruments/{target}"
        assert client.get(response.headers["location"]).status_code == 200
    assert client.get("/scan", params={"code": "JC-UV-999"}).status_code == 404


def test_the_dashboard_counts_instruments_due_and_what_waits_for_a_decision(client, db, users, store):
    technical, analyst = users["technical_manager"], users["analyst"]
    today = local_today(db)
    make_instrument(db, technical, "JC-BAL-003")  # never calibrated: overdue
    expired = make_instrument(db, technical, "JC-COD-004")
    calibrate(db, technical, store, expired, performed_on=today - timedelta(days=400),
              valid_until=today - timedelta(days=1))
    soon = make_instrument(db, technical, "XC-PH-007")
    calibrate(db, technical, store, soon, performed_on=today - timedelta(days=300),
              valid_until=today + timedelta(days=10))
    fine = make_instrument(db, technical, "JC-UV-001", responsible=analyst)
    calibrate(db, technical, store, fine, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300), accept=None)  # awaits the analyst's 计量确认
    other = make_instrument(db, technical, "JC-IC-005")
    calibrate(db, technical, store, other, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300), accept=None)  # awaits the technical manager's
    failing = make_instrument(db, technical, "JC-AFS-006")
    calibrate(db, technical, store, failing, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300))
    check(db, technical, failing, performed_at=utcnow() - timedelta(hours=1), result="fail")  # impact opened

    def cards(response) -> dict[str, int]:
        found = re.findall(r'<a class="worklist[^"]*" href="([^"]+)">\s*<span class="count">(\d+)</span>',
                           response.text)
        return {href.replace("&amp;", "&"): int(n) for href, n in found}

    login_en(client, "technical-manager")
    # overdue: never calibrated, expired, and two whose certificates are not yet confirmed
    mine = cards(client.get("/dashboard"))
    assert mine["/instruments?status=overdue"] == 4
    assert mine["/instruments?status=due_soon"] == 1
    assert mine["/instruments/confirmations"] == 1
    listing = client.get("/instruments?status=overdue").text
    assert len(re.findall(r'<a href="/instruments/[^"]+"><code>', listing)) == 4
    login_en(client, "analyst")
    assert cards(client.get("/dashboard")) == {"/instruments/confirmations": 1, "/holding?colour=due": 0,
                                               "/batches?mine=1&state=open,running,imported,qc_evaluated,qc_failed": 0,
                                               "/batches?mine=1&state=qc_failed": 0}
    login_en(client, "quality-manager")
    assert cards(client.get("/dashboard"))["/instruments/impact?status=open"] == 1
    login(client, "inspector")
    assert not any(href.startswith("/instruments") for href in cards(client.get("/dashboard")))
