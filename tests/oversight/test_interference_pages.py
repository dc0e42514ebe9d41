"""The interference log over HTTP: the form (multipart, with files), the register and a record's
page (visibility as the service decides it), the follow-up forms, the edit/delete addresses that
only refuse and record, the JSON API, the XLSX and PDF exports, and the list's query count."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.i18n import gettext, use_language
from app.oversight import interference
from app.oversight.interference import InterferenceInput
from app.oversight.models import InterferenceRecord
from tests.conftest import login

PDF = b"%PDF-1.4\n% a letter\n%%EOF\n"
BASE = "/oversight/interference"


def signed_in(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    token = login(client, username)
    return client, token


def file(db, user, **changes) -> InterferenceRecord:
    values = dict(interferer_name="王某", interferer_position="科长", interferer_organisation="某县环保局",
                  channel="oral", request_kind="skip_sampling", what_was_asked="让我们下周不要去 WS01 采样",
                  lab_response="refused", occurred_at=utcnow() - timedelta(hours=3))
    values.update(changes)
    with db.transaction() as session:
        record = interference.file_interference(session, user, InterferenceInput(**values), [])
        session.expunge(record)
        return record


def events(db, action: str) -> list[AuditEvent]:
    with db.session(write=False) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def form_fields(token: str, **changes) -> dict[str, str]:
    fields = {"csrf_token": token, "interferer_name": "赵某", "interferer_position": "主任",
              "interferer_organisation": "某开发区管委会", "occurred_at": "2026-01-05T09:30", "channel": "letter",
              "request_kind": "withhold_report", "what_was_asked": "来函要求暂缓出具 1 月份的监测报告",
              "lab_response": "escalated", "response_detail": "已报告质量负责人", "witnesses": "",
              "sites": "", "samples": "", "reports": ""}
    fields.update(changes)
    return fields


# ---------------------------------------------------------------- filing through the form


def test_an_analyst_files_a_record_with_a_letter_through_the_form(app, db, users):
    client, token = signed_in(app, "analyst")
    assert client.get(f"{BASE}/new").status_code == 200
    response = client.post(f"{BASE}/new", data=form_fields(token),
                           files=[("attachments", ("来函.pdf", PDF, "application/pdf"))])
    assert response.status_code == 303, response.text
    url = response.headers["location"]
    assert re.fullmatch(rf"{BASE}/GY\d\d-\d{{5}}", url)
    page = client.get(url)
    assert page.status_code == 200 and "来函要求暂缓出具" in page.text
    sha = hashlib.sha256(PDF).hexdigest()
    assert sha in page.text
    link = re.search(rf'href="({url}/files/\d+)"', page.text).group(1)
    download = client.get(link)
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["x-content-sha256"] == sha
    with db.session(write=False) as session:
        record = session.scalars(select(InterferenceRecord)).one()
    assert record.occurred_at.hour == 1 and record.occurred_at.minute == 30  # 09:30 in Shanghai, kept in UTC


def test_a_refused_form_comes_back_as_typed(app, db, users):
    client, token = signed_in(app, "analyst")
    response = client.post(f"{BASE}/new", data=form_fields(token),
                           files=[("attachments", ("virus.exe", b"MZ\x90\x00", "application/octet-stream"))])
    assert response.status_code == 422
    assert 'data-code="interference_attachment_type"' in response.text
    assert "来函要求暂缓出具" in response.text  # what was typed is kept
    response = client.post(f"{BASE}/new", data=form_fields(token, sites="WS77, WS78"))
    assert response.status_code == 422 and "WS77, WS78" in response.text
    assert 'data-code="interference_unknown_targets"' in response.text
    response = client.post(f"{BASE}/new", data=form_fields(token, occurred_at="yesterday"))
    assert response.status_code == 422 and 'data-code="interference_bad_time"' in response.text
    response = client.post(f"{BASE}/new", data=form_fields(token, interferer_name="x" * 20000))
    assert response.status_code == 422
    with db.session(write=False) as session:
        assert session.scalar(select(func.count(InterferenceRecord.id))) == 0


def test_inspector_and_admin_cannot_file(app, db, users):
    client, token = signed_in(app, "inspector")
    response = client.post(f"{BASE}/new", data=form_fields(token))
    assert response.status_code == 403 and "inspector_read_only" in response.text
    client, token = signed_in(app, "admin")
    assert client.get(BASE).status_code == 403
    assert client.post(f"{BASE}/new", data=form_fields(token)).status_code == 403


# ---------------------------------------------------------------- visibility over HTTP


def test_pages_and_api_show_a_record_only_to_those_who_may_see_it(app, db, users):
    record = file(db, users["analyst"], interferer_username="quality-manager", restricted=True)
    url, api = f"{BASE}/{record.record_no}", f"/api/v1/interference/{record.record_no}"
    for username, seen in (("analyst", True), ("quality-manager", False), ("quality-manager-2", True),
                           ("inspector", True), ("checker", False), ("sampler", False)):
        client, _ = signed_in(app, username)
        assert client.get(url).status_code == (200 if seen else 404), username
        assert client.get(api).status_code == (200 if seen else 404), username
        listed = client.get("/api/v1/interference").json()["items"]
        assert [i["record_no"] for i in listed] == ([record.record_no] if seen else []), username
        assert (record.record_no in client.get(BASE).text) is seen, username
    client, _ = signed_in(app, "checker")
    missing = client.get(f"{BASE}/GY26-99999")
    hidden = client.get(url)
    assert missing.status_code == hidden.status_code == 404  # a hidden record looks like a missing one


# ---------------------------------------------------------------- follow-up through the page


def test_quality_manager_acknowledges_and_records_the_report(app, db, users):
    record = file(db, users["analyst"])
    url = f"{BASE}/{record.record_no}"
    client, token = signed_in(app, "quality-manager")
    page = client.get(url)
    assert 'id="acknowledge"' in page.text and 'id="report"' in page.text
    assert client.post(f"{url}/acknowledge", data={"csrf_token": token, "text": "已阅"}).status_code == 303
    again = client.post(f"{url}/acknowledge", data={"csrf_token": token})
    assert again.status_code == 409 and 'data-code="interference_already_acknowledged"' in again.text
    bad = client.post(f"{url}/reported", data={"csrf_token": token, "reported_to": "", "reported_on": "2026-01-06"})
    assert bad.status_code == 422
    ok = client.post(f"{url}/reported", data={"csrf_token": token, "reported_to": "区纪委监委",
                                              "reported_on": utcnow().date().isoformat(), "text": "书面报告"})
    assert ok.status_code == 303
    page = client.get(url)
    assert 'data-state="reported"' in page.text and "区纪委监委" in page.text
    # the filer adds a supplement with a file; sees no follow-up forms
    client, token = signed_in(app, "analyst")
    page = client.get(url)
    assert 'id="add-supplement"' in page.text and 'id="acknowledge"' not in page.text
    added = client.post(f"{url}/supplements", data={"csrf_token": token, "text": "补充：对方再次来电"},
                        files=[("attachments", ("录音.pdf", PDF, "application/pdf"))])
    assert added.status_code == 303
    assert "补充：对方再次来电" in client.get(url).text
    # the inspector sees the record but no forms, and cannot post
    client, token = signed_in(app, "inspector")
    page = client.get(url)
    assert page.status_code == 200 and 'id="add-supplement"' not in page.text and 'id="report"' not in page.text
    assert client.post(f"{url}/supplements", data={"csrf_token": token, "text": "x"}).status_code == 403


# ---------------------------------------------------------------- edit and delete: refused, recorded


@pytest.mark.parametrize("attempt", ["edit", "delete"])
def test_edit_and_delete_addresses_refuse_and_record(app, db, users, attempt):
    record = file(db, users["analyst"])
    client, token = signed_in(app, "quality-manager")
    response = client.post(f"{BASE}/{record.record_no}/{attempt}",
                           data={"csrf_token": token, "interferer_name": "someone else"})
    assert response.status_code == 409 and "interference_immutable" in response.text
    method = client.put if attempt == "edit" else client.delete
    kwargs = {"json": {"interferer_name": "x"}} if attempt == "edit" else {}
    api = method(f"/api/v1/interference/{record.record_no}", headers={"x-csrf-token": token}, **kwargs)
    assert api.status_code == 409 and api.json()["code"] == "interference_immutable"
    client, token = signed_in(app, "inspector")  # refused by the kernel, and kept there
    response = client.post(f"{BASE}/{record.record_no}/{attempt}", data={"csrf_token": token})
    assert response.status_code == 403 and 'data-code="inspector_read_only"' in response.text
    assert [e.after_data["path"] for e in events(db, "security.inspector_refused")] == [
        f"{BASE}/{record.record_no}/{attempt}"]
    client, token = signed_in(app, "admin")  # who may not touch the log
    assert client.post(f"{BASE}/{record.record_no}/{attempt}", data={"csrf_token": token}).status_code == 403
    kept = events(db, f"oversight.interference_{attempt}_refused")
    assert [e.actor for e in kept] == ["quality-manager", "quality-manager"]
    with db.session(write=False) as session:
        assert session.get(InterferenceRecord, record.id).interferer_name == "王某"


# ---------------------------------------------------------------- JSON API


def test_api_files_with_json_and_with_multipart(app, db, users, lab):
    lab.site("WS01")
    client, token = signed_in(app, "sampler")
    headers = {"x-csrf-token": token}
    body = {"interferer_name": "钱某", "occurred_at": (utcnow() - timedelta(hours=1)).isoformat(),
            "channel": "message", "request_kind": "move_site", "what_was_asked": "微信要求把点位挪到上游",
            "lab_response": "refused", "sites": ["WS01"], "restricted": True}
    created = client.post("/api/v1/interference", json=body, headers=headers)
    assert created.status_code == 201, created.text
    data = created.json()
    assert data["state"] == "filed" and data["targets"] == [{"type": "site", "number": "WS01"}] and data["restricted"]
    multipart = client.post("/api/v1/interference", headers=headers,
                            data={**{k: v for k, v in body.items() if k not in ("sites", "restricted")},
                                  "sites": "WS01", "restricted": "true"},
                            files=[("attachments", ("letter.pdf", PDF, "application/pdf"))])
    assert multipart.status_code == 201, multipart.text
    assert multipart.json()["attachment_files"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    bad = client.post("/api/v1/interference", json={**body, "sites": ["WS01", "WS404"]}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "interference_unknown_targets"
    assert "WS404" in bad.json()["detail"]
    assert client.post("/api/v1/interference", json={**body, "occurred_at": "soon"},
                       headers=headers).status_code == 422
    assert client.post("/api/v1/interference", json=[1, 2], headers=headers).status_code == 422
    assert client.post("/api/v1/interference", json={**body, "restricted": "maybe"},
                       headers=headers).status_code == 422
    number = data["record_no"]
    supplement = client.post(f"/api/v1/interference/{number}/supplements", json={"text": "补充说明"},
                             headers=headers)
    assert supplement.status_code == 201 and supplement.json()["supplements"][0]["text"] == "补充说明"
    listed = client.get("/api/v1/interference?per_page=1").json()
    assert listed["total"] == 2 and listed["pages"] == 2 and len(listed["items"]) == 1
    qm, qm_token = signed_in(app, "quality-manager")
    ack = qm.post(f"/api/v1/interference/{number}/acknowledge", json={"text": "已阅"},
                  headers={"x-csrf-token": qm_token})
    assert ack.status_code == 201 and ack.json()["state"] == "acknowledged"
    reported = qm.post(f"/api/v1/interference/{number}/reported", headers={"x-csrf-token": qm_token},
                       json={"reported_to": "市生态环境局", "reported_on": utcnow().date().isoformat()})
    assert reported.status_code == 201 and reported.json()["state"] == "reported"


# ---------------------------------------------------------------- exports


def test_xlsx_export_has_the_rows_with_formulas_escaped(app, db, users):
    from openpyxl import load_workbook

    first = file(db, users["analyst"], what_was_asked='=HYPERLINK("http://evil.example","点我")',
                 interferer_name="+cmd|' /C calc'!A0", witnesses="@SUM(1+1)")
    second = file(db, users["sampler"], what_was_asked="-2+3 改数据", interferer_name="孙某")
    with db.transaction() as session:
        record = interference.get_record(session, users["quality_manager"], second.record_no)
        interference.record_reported(session, users["quality_manager"], record, "市纪委监委", utcnow().date())
    client, _ = signed_in(app, "analyst")
    assert client.get(f"{BASE}.xlsx").status_code == 403
    client, _ = signed_in(app, "quality-manager")
    response = client.get(f"{BASE}.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    header = rows[0]
    data = {row[0]: dict(zip(header, row, strict=False)) for row in rows[1:] if row[0] and row[0].startswith("GY")}
    assert set(data) == {first.record_no, second.record_no}
    one, two = data[first.record_no], data[second.record_no]
    assert one["干预内容"] == '\'=HYPERLINK("http://evil.example","点我")'
    assert one["干预人"].startswith("'+") and one["见证人"] == "'@SUM(1+1)"
    assert two["干预内容"] == "'-2+3 改数据"
    with use_language("zh_CN"):
        assert two["状态"] == gettext("Reported to an authority") and two["报告对象"] == "市纪委监委"
        assert one["干预方式"] == gettext("Oral opinion (口头意见)")
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
    exported = events(db, "oversight.interference_exported")
    assert [(e.actor, e.after_data["format"], e.after_data["records"]) for e in exported] == [
        ("quality-manager", "xlsx", 2)]


def test_pdf_export_prints_the_register_in_chinese(app, db, users, tmp_path: Path):
    from app.instruments.service import Upload

    record = file(db, users["analyst"], what_was_asked="要求将 WS01 的化学需氧量改为达标", interferer_name="周某")
    with db.transaction() as session:
        row = interference.get_record(session, users["analyst"], record.record_no)
        interference.add_supplement(session, users["analyst"], row, "来函扫描件", [Upload(io.BytesIO(PDF), "来函.pdf")])
        interference.record_reported(session, users["quality_manager"], row, "县纪委监委", utcnow().date())
    client, _ = signed_in(app, "inspector")
    response = client.get(f"{BASE}.pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    pdf = tmp_path / "register.pdf"
    pdf.write_bytes(response.content)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert pngs and pngs[0].read_bytes().startswith(b"\x89PNG")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, timeout=60).stdout.decode()
    assert "周某" in text and "化学需氧量" in text and "inspector" in text and "县纪委监委" in text
    assert hashlib.sha256(PDF).hexdigest()[:12] in text
    assert [e.after_data["format"] for e in events(db, "oversight.interference_exported")] == ["pdf"]


# ---------------------------------------------------------------- shell and queries


def test_nav_entry_and_quality_manager_worklist(app, db, users):
    file(db, users["analyst"])
    client, _ = signed_in(app, "analyst")
    assert f'href="{BASE}"' in client.get("/dashboard").text
    client, _ = signed_in(app, "quality-manager")
    assert f'href="{BASE}?state=filed"' in client.get("/dashboard").text
    client, _ = signed_in(app, "admin")
    assert f'href="{BASE}"' not in client.get("/dashboard").text


def test_the_register_and_a_record_cost_the_same_queries_for_1_and_20_records(app, db, users, count_queries):
    client, token = signed_in(app, "quality-manager")
    file(db, users["analyst"])

    def cost(url: str) -> int:
        with count_queries() as counted:
            assert client.get(url).status_code == 200
        return counted.count

    one = cost(BASE)
    for i in range(19):
        record = file(db, users["sampler"] if i % 2 else users["analyst"], restricted=bool(i % 3))
    assert cost(BASE) == one
    assert cost(f"{BASE}.xlsx") == cost(f"{BASE}.xlsx")
    detail = cost(f"{BASE}/{record.record_no}")
    analyst, analyst_token = signed_in(app, "analyst" if record.filed_by_id == users["analyst"].id else "sampler")
    for n in range(3):
        analyst.post(f"{BASE}/{record.record_no}/supplements", data={"csrf_token": analyst_token, "text": f"第{n}次"},
                     files=[("attachments", (f"{n}.pdf", PDF + bytes([n]), "application/pdf"))])
    assert cost(f"{BASE}/{record.record_no}") == detail


def test_one_records_package_holds_the_record_the_attachments_and_their_sums(app, db, users):
    import json
    import zipfile

    client, token = signed_in(app, "analyst")
    response = client.post(f"{BASE}/new", data=form_fields(token),
                           files=[("attachments", ("../../来函.pdf", PDF, "application/pdf"))])
    url = response.headers["location"]
    number = url.rsplit("/", 1)[1]
    assert client.get(f"{url}/package.zip").status_code == 403  # the filer does not send it out
    client, _ = signed_in(app, "quality-manager")
    assert "package.zip" in client.get(url).text
    package = client.get(f"{url}/package.zip")
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    names = archive.namelist()
    assert names[0] == "record.json" and names[-1] == "SHA256SUMS"
    [attachment] = [n for n in names if n.startswith("attachments/")]
    assert ".." not in attachment and attachment.endswith("来函.pdf") and archive.read(attachment) == PDF
    record = json.loads(archive.read("record.json"))
    assert record["record_no"] == number and record["state"] == "filed" and record["filed_by"] == "analyst"
    sums = dict(line.split("  ")[::-1] for line in archive.read("SHA256SUMS").decode().splitlines())
    assert sums == {n: hashlib.sha256(archive.read(n)).hexdigest() for n in names if n != "SHA256SUMS"}
    exported = events(db, "oversight.interference_exported")
    assert [(e.actor, e.after_data["format"], e.after_data["record_no"]) for e in exported] == [
        ("quality-manager", "package", number)]
    client, _ = signed_in(app, "checker")
    assert client.get(f"{url}/package.zip").status_code == 403
