"""The method and qualification pages: the lists (htmx fragment, filters), registering a method
and a new version through the forms, refusals shown with what was typed and nothing saved, the
MDL page's preview (nothing saved) and save, granting and revoking, read-only for the inspector
(POST refused), the dashboard card, and query counts that do not grow with the rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.analysis.models import MdlStudy, Qualification
from tests.analysis.conftest import make_method, qualify
from tests.analysis.methods_fixtures import counts
from tests.conftest import discount_refusals, login, refusals_so_far

MDL_TEXT = "0.021\n0.023\n0.020\n0.024\n0.022\n0.019\n0.025"


@pytest.fixture
def as_technical(client, technical):
    return client, login(client, technical.username)


def method_form(token, **changes):
    data = {"csrf_token": token, "code": "HJ 535-2009", "name_zh": "水质 氨氮的测定 纳氏试剂分光光度法",
            "name_en": "Ammonia nitrogen", "matrix": "water", "calculation": "curve", "curve_kinds": ["linear"],
            "max_samples_per_batch": "20", "blanks_per_batch": "2", "duplicate_rate_pct": "10",
            "spike_rate_pct": "10", "spike_recovery_low": "80", "spike_recovery_high": "120", "crm_per_batch": "1",
            "ccv_every": "20", "ccv_tolerance_pct": "10", "curve_r_min": "0.999", "curve_min_levels": "5",
            "curve_valid_hours": "24", "rd_limits": "1 5\n0.1 10", "holding_rule": "24 h, H2SO4 pH<2",
            "note": "", "instruments": "JC-UV-001",
            "p_parameter": ["NH3-N", ""], "p_unit": ["mg/L", "mg/L"], "p_mdl": ["0.025", ""], "p_lower": ["", ""],
            "p_upper": ["2", ""], "p_decimals": ["3", ""], "p_figures": ["", ""], "p_below": ["mdl_l", "mdl_l"],
            "p_organic": ["0", "0"]}
    data.update(changes)
    return data


def test_registering_a_method_through_the_form(db, as_technical, uv):
    client, token = as_technical
    assert client.get("/methods/new").status_code == 200
    answer = client.post("/methods/new", data=method_form(token))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/methods/HJ%20535-2009"
    page = client.get(answer.headers["location"])
    assert page.status_code == 200 and 'data-parameter="NH3-N"' in page.text and "JC-UV-001" in page.text
    assert "0.100" in page.text and "(4×MDL)" in page.text  # the lower limit shown when left blank
    listing = client.get("/methods")
    assert 'data-method="HJ 535-2009"' in listing.text
    fragment = client.get("/methods?q=氨氮", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'data-method="HJ 535-2009"' in fragment.text
    assert 'data-method' not in client.get("/methods?matrix=soil").text.split('id="results"')[1].split("<tbody>")[0]
    assert "HJ 535-2009" not in client.get("/methods?state=withdrawn").text.split('id="results"')[1]
    assert client.get("/methods?state=bogus").status_code == 422


def test_a_refused_method_keeps_what_was_typed_and_saves_nothing(db, as_technical):
    client, token = as_technical
    before = counts(db)
    answer = client.post("/methods/new", data=method_form(token, code="HJ 535"))
    assert answer.status_code == 422 and 'data-code="method_code_without_year"' in answer.text
    assert 'value="HJ 535"' in answer.text and 'value="0.025"' in answer.text
    answer = client.post("/methods/new", data=method_form(token, p_mdl=["0,025", ""]))
    assert answer.status_code == 422 and 'data-code="not_a_number"' in answer.text and "NH3-N" in answer.text
    answer = client.post("/methods/new", data=method_form(token, rd_limits="1 5 7"))
    assert answer.status_code == 422 and 'data-code="method_rd_limits_invalid"' in answer.text
    answer = client.post("/methods/new", data=method_form(token, instruments="JC-NOPE"))
    assert answer.status_code == 422 and 'data-code="method_instrument_unknown"' in answer.text
    assert counts(db) == before


def test_a_new_version_through_the_form(db, as_technical, technical):
    client, token = as_technical
    make_method(db, technical)
    page = client.get("/methods/HJ%20535-2009/versions/new")
    assert page.status_code == 200 and 'value="NH3-N"' in page.text  # starts from the latest version
    data = method_form(token, reason="修改单", p_mdl=["0.02", ""], instruments="")
    answer = client.post("/methods/HJ%20535-2009/versions/new", data={**data, "valid_from": "2020-01-01T08:00"})
    assert answer.status_code == 422 and 'data-code="method_version_retroactive"' in answer.text
    answer = client.post("/methods/HJ%20535-2009/versions/new", data=data)
    assert answer.status_code == 303, answer.text
    page = client.get("/methods/HJ%20535-2009")
    assert 'data-version="2"' in page.text and "修改单" in page.text and "NH3-N mdl: 0.025 → 0.02" in page.text


def test_codes_with_a_slash_have_their_pages(db, as_technical, technical):
    client, _ = as_technical
    make_method(db, technical, "HJ/T 195-2005")
    assert client.get("/methods/HJ/T%20195-2005").status_code == 200
    assert client.get("/methods/HJ/T%20195-2005/mdl/new").status_code == 200
    assert client.get("/methods/HJ/T%20195-2005/versions/new").status_code == 200
    assert client.get("/methods/HJ%20999-2099").status_code == 404


def test_the_mdl_page_previews_then_saves(db, as_technical, technical):
    client, token = as_technical
    make_method(db, technical)
    base = "/methods/HJ%20535-2009/mdl/new"
    assert client.get(base).status_code == 200
    data = {"csrf_token": token, "version": "1", "parameter": "NH3-N", "unit": "mg/L", "replicates": MDL_TEXT}
    preview = client.post(base, data={**data, "action": "preview"})
    assert preview.status_code == 200 and 'id="preview-mdl"' in preview.text and "0.00679 mg/L" in preview.text
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(MdlStudy)) == 0
    refused = client.post(base, data={**data, "replicates": "0.021 0,023", "action": "preview"})
    assert refused.status_code == 422 and 'data-code="mdl_comma_decimal"' in refused.text
    refused = client.post(base, data={**data, "replicates": "0.02 0.02 0.02 0.02 0.02 0.02 0.02", "action": "save"})
    assert refused.status_code == 422 and 'data-code="mdl_no_spread"' in refused.text
    saved = client.post(base, data={**data, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("#mdl")
    page = client.get("/methods/HJ%20535-2009")
    assert "data-study=" in page.text and "0.00679 mg/L" in page.text and "3.143" in page.text


def test_granting_and_revoking_through_the_forms(db, as_technical, technical, analyst, users):
    client, token = as_technical
    make_method(db, technical)
    page = client.get("/qualifications/new")
    assert page.status_code == 200 and analyst.username in page.text
    today = db.calendar.today()
    data = {"csrf_token": token, "user_id": str(analyst.id), "method": "HJ 535-2009", "certificate_no": "HJSG-001",
            "issued_by": "省生态环境监测中心", "valid_from": today.isoformat(),
            "valid_to": (today + timedelta(days=30)).isoformat()}
    refused = client.post("/qualifications/new", data={**data, "valid_to": today.isoformat()})
    assert refused.status_code == 422 and 'data-code="qualification_dates_invalid"' in refused.text
    assert 'value="HJSG-001"' in refused.text
    refused = client.post("/qualifications/new", data={**data, "user_id": str(technical.id)})
    assert refused.status_code == 403 and 'data-code="qualification_to_self"' in refused.text
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    answer = client.post("/qualifications/new", data=data, files={"attachment": ("上岗证.pdf", pdf, "application/pdf")})
    assert answer.status_code == 303, answer.text
    register = client.get(answer.headers["location"])
    assert 'data-status="expiring"' in register.text and "HJSG-001" in register.text
    with db.reading() as session:
        row_id = session.scalars(select(Qualification.id)).one()
    scan = client.get(f"/qualifications/{row_id}/attachment")
    assert scan.status_code == 200 and scan.content == pdf
    method_page = client.get("/methods/HJ%20535-2009")
    assert f'data-user="{analyst.username}"' in method_page.text
    assert client.get("/qualifications?expiring=60").text.count("data-qualification=") == 1
    assert client.get("/qualifications?status=expired").text.count("data-qualification=") == 0
    assert client.get(f"/qualifications?person={analyst.username}&method=hj 535").text.count(
        "data-qualification=") == 1
    dashboard = client.get("/dashboard")
    assert "/qualifications?expiring=60" in dashboard.text
    refused = client.post(f"/qualifications/{row_id}/revoke", data={"csrf_token": token, "reason": " "})
    assert refused.status_code == 422 and 'data-code="field_required"' in refused.text
    answer = client.post(f"/qualifications/{row_id}/revoke", data={"csrf_token": token, "reason": "考核不合格"})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"])
    assert 'id="revoked"' in page.text and "考核不合格" in page.text and 'id="revoke"' not in page.text
    assert f'data-user="{analyst.username}"' not in client.get("/methods/HJ%20535-2009").text


def test_the_inspector_reads_and_changes_nothing(db, client, technical, users):
    version = make_method(db, technical)
    row = qualify(db, users["analyst"], version.method_id)
    token = login(client, users["inspector"].username)
    for path in ("/methods", "/methods/HJ%20535-2009", "/qualifications", f"/qualifications/{row.id}/attachment"):
        assert client.get(path).status_code in (200, 404), path
    page = client.get("/methods/HJ%20535-2009")
    assert 'id="withdraw"' not in page.text and "/versions/new" not in page.text
    for path in ("/methods/new", "/methods/HJ%20535-2009/versions/new", "/methods/HJ%20535-2009/mdl/new",
                 "/qualifications/new", f"/qualifications/{row.id}/revoke"):
        assert client.get(path).status_code == 403, path
    before, mark = counts(db), refusals_so_far(db)
    for path, data in (("/methods/new", method_form(token, code="HJ 536-2009")),
                       ("/methods/HJ%20535-2009/withdraw", {"reason": "x"}),
                       ("/methods/HJ%20535-2009/mdl/new", {"replicates": MDL_TEXT, "action": "save"}),
                       (f"/qualifications/{row.id}/revoke", {"reason": "x"})):
        answer = client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == 403 and 'data-code="inspector_read_only"' in answer.text, path
    assert refusals_so_far(db) - mark == 4  # each attempt kept in the audit trail, nothing else changed
    assert discount_refusals(db, counts(db), "AuditEvent", mark) == before


def test_withdrawing_through_the_page(db, as_technical, technical):
    client, token = as_technical
    make_method(db, technical)
    refused = client.post("/methods/HJ%20535-2009/withdraw", data={"csrf_token": token, "reason": ""})
    assert refused.status_code == 422 and 'data-code="field_required"' in refused.text
    answer = client.post("/methods/HJ%20535-2009/withdraw", data={"csrf_token": token, "reason": "停用"})
    assert answer.status_code == 303
    page = client.get("/methods/HJ%20535-2009")
    assert 'data-state="withdrawn"' in page.text and "停用" in page.text and 'id="withdraw"' not in page.text


def test_list_and_detail_query_counts_do_not_grow(db, as_technical, technical, users, count_queries):
    client, _ = as_technical
    first = make_method(db, technical)
    qualify(db, users["analyst"], first.method_id)
    pages = ("/methods", "/methods/HJ%20535-2009", "/qualifications", "/qualifications?expiring=400")
    few = {}
    for path in pages:
        with count_queries() as counted:
            assert client.get(path).status_code == 200
        few[path] = counted.count
    people = [users[r] for r in ("analyst", "checker", "reviewer", "sampler")]
    for i in range(30):
        version = make_method(db, technical, f"HJ {600 + i}-2015")
        qualify(db, people[i % 4], version.method_id)
    for i in range(3):  # more versions, studies and qualified people on the one method page
        qualify(db, people[(i + 1) % 4], first.method_id)
    for path in pages:
        with count_queries() as counted:
            assert client.get(path).status_code == 200
        assert counted.count == few[path], (path, few[path], counted.count)
    assert len(re.findall(r"data-method=", client.get("/methods").text)) >= 25
