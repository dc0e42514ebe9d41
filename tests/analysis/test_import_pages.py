"""The import pages: uploading a file with the form (multipart, no JavaScript) and landing on the
outcome (SHA-256, encoding, rows, the unmatched table paged, the raw file downloaded byte for
byte), a refusal shown in the form with nothing saved, who may do what (the inspector reads and
never imports; profiles are the technical manager's), the profile form with its "try with a file"
preview that saves nothing, and query counts that do not grow with the rows."""

from __future__ import annotations

import re

from tests.analysis.import_fixtures import *  # noqa: F403
from tests.analysis.import_fixtures import DATA, counts, masshunter_now
from tests.conftest import discount_refusals, login, refusals_so_far

CSV = "text/csv"


def upload(client, token, batch_no, content, profile="AGILENT-ICPMS", name="batch.csv"):
    return client.post(f"/batches/{batch_no}/import", data={"profile": profile, "csrf_token": token},
                       files={"file": (name, content, CSV)})


def test_an_analyst_imports_a_file_through_the_form(db, client, users, icpms):
    token = login(client, users["analyst"].username)
    page = client.get(f"/batches/{icpms.batch.batch_no}/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text and "AGILENT-ICPMS" in page.text
    content = masshunter_now(db)
    posted = upload(client, token, icpms.batch.batch_no, content)
    assert posted.status_code == 303, posted.text
    outcome = client.get(posted.headers["location"])
    assert outcome.status_code == 200
    assert re.search(r'data-sha256="[0-9a-f]{64}"', outcome.text) and 'data-encoding="utf-8"' in outcome.text
    assert 'data-imported="8"' in outcome.text
    assert len(re.findall(r'<tr data-row="\d+" data-reason=', outcome.text)) == 10
    assert 'data-reason="no_reading"' in outcome.text and "WS99-999999-999" in outcome.text
    raw = client.get(posted.headers["location"] + "/file")
    assert raw.status_code == 200 and raw.content == content
    assert raw.headers["content-disposition"] == 'attachment; filename="batch.csv"'
    fragment = client.get(posted.headers["location"] + "?page=1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="results"' in fragment.text
    again = client.get(f"/batches/{icpms.batch.batch_no}/import")
    assert posted.headers["location"].rsplit("/", 1)[1] in again.text  # listed among the batch's imports


def test_a_refusal_is_shown_in_the_form_and_saves_nothing(db, client, users, icpms):
    token = login(client, users["analyst"].username)
    content = masshunter_now(db).replace(b",2.637,", b',"2,637",')
    before = counts(db)
    refused = upload(client, token, icpms.batch.batch_no, content)
    assert refused.status_code == 422 and 'data-code="import_cell_problems"' in refused.text
    assert "Q (Pb 208 Conc. [ ppb ])" in refused.text and 'name="profile"' in refused.text
    assert counts(db) == before
    chromeleon = (DATA / "chromeleon_anions_gbk.csv").read_bytes()
    wrong = upload(client, token, icpms.batch.batch_no, chromeleon)
    assert wrong.status_code == 422 and 'data-code="import_unknown_layout"' in wrong.text
    no_file = client.post(f"/batches/{icpms.batch.batch_no}/import",
                          data={"profile": "AGILENT-ICPMS", "csrf_token": token},
                          files={"file": ("", b"", "application/octet-stream")})
    assert no_file.status_code == 422 and 'data-code="import_file_empty"' in no_file.text
    assert counts(db) == before


def test_the_same_file_twice_is_refused_in_the_page(db, client, users, icpms):
    token = login(client, users["analyst"].username)
    content = masshunter_now(db)
    first = upload(client, token, icpms.batch.batch_no, content)
    code = first.headers["location"].rsplit("/", 1)[1]
    second = upload(client, token, icpms.batch.batch_no, content)
    assert second.status_code == 409 and 'data-code="import_already_done"' in second.text and code in second.text


def test_an_inspector_reads_the_outcome_but_cannot_import(db, client, users, icpms):
    token = login(client, users["analyst"].username)
    location = upload(client, token, icpms.batch.batch_no, masshunter_now(db)).headers["location"]
    client.cookies.clear()
    token = login(client, users["inspector"].username)
    assert client.get(location).status_code == 200
    assert client.get(f"/batches/{icpms.batch.batch_no}/import").status_code == 403
    before, mark = counts(db), refusals_so_far(db)
    other = masshunter_now(db).replace(b"2.637", b"2.638")
    assert upload(client, token, icpms.batch.batch_no, other).status_code == 403
    assert refusals_so_far(db) - mark == 1  # the attempt kept in the audit trail, nothing else changed
    assert discount_refusals(db, counts(db), "audit_event", mark) == before
    assert client.get("/import-profiles").status_code == 200
    assert client.get("/import-profiles/new").status_code == 403


def test_the_outcome_page_queries_do_not_grow_with_the_rows(db, client, users, icpms, count_queries):
    token = login(client, users["analyst"].username)
    small = upload(client, token, icpms.batch.batch_no, masshunter_now(db)).headers["location"]
    text = masshunter_now(db).decode()
    extra = "".join(f"{900 + i:03d}SMPL.d,,Sample,,CAL-{i},1,1,1,1.0,1,1,1,1.0,1,1,1,1.0,1,1,1\n" for i in range(60))
    big = upload(client, token, icpms.batch.batch_no, (text + extra).encode()).headers["location"]
    with count_queries() as few:
        assert client.get(small).status_code == 200
    with count_queries() as many:
        assert client.get(big + "?page=2").status_code == 200
    assert many.count == few.count


PROFILE = {"code": "uv-csv", "name": "UV-2600 结果（CSV）", "file_format": "csv", "header_row": "1",
           "sample_column": "Sample ID", "layout": "long", "parameter_column": "Analyte", "value_column": "Conc",
           "unit": "mg/L", "aliases": "氨氮 = NH3-N"}
SAMPLE = "Sample ID,Analyte,Conc\nWS01-261203-001,氨氮,0.512\nWS01-261203-002,NH3-N,\"0,5\"\n".encode("gbk")


def test_the_technical_manager_tries_a_mapping_then_saves_it(db, client, users):
    token = login(client, users["technical_manager"].username)
    assert client.get("/import-profiles/new").status_code == 200
    before = counts(db)
    tried = client.post("/import-profiles/new", data={**PROFILE, "action": "preview", "csrf_token": token},
                        files={"sample_file": ("uv.csv", SAMPLE, CSV)})
    assert tried.status_code == 200 and 'data-encoding="gb18030"' in tried.text
    assert len(re.findall(r'<tr data-row="\d+">', tried.text)) == 2
    assert "row 3, column C (Conc)" in tried.text or "第 3 行 C (Conc) 列" in tried.text
    assert counts(db) == before  # a preview saves nothing
    bad = client.post("/import-profiles/new", data={**PROFILE, "value_column": "", "csrf_token": token},
                      files={"sample_file": ("", b"", "application/octet-stream")})
    assert bad.status_code == 422 and 'data-code="import_mapping_invalid"' in bad.text and 'value="uv-csv"' in bad.text
    saved = client.post("/import-profiles/new", data={**PROFILE, "csrf_token": token},
                        files={"sample_file": ("", b"", "application/octet-stream")})
    assert saved.status_code == 303
    listing = client.get("/import-profiles")
    assert 'data-profile="UV-CSV"' in listing.text and 'data-profile="AGILENT-ICPMS"' in listing.text
    edit = client.get("/import-profiles/UV-CSV/edit")
    assert edit.status_code == 200 and "氨氮 = NH3-N" in edit.text
    changed = client.post("/import-profiles/UV-CSV/edit", data={**PROFILE, "unit": "μg/L", "active": "on",
                                                               "csrf_token": token},
                          files={"sample_file": ("", b"", "application/octet-stream")})
    assert changed.status_code == 303
    assert 'value="μg/L"' in client.get("/import-profiles/UV-CSV/edit").text


def test_an_analyst_cannot_manage_profiles(db, client, users):
    token = login(client, users["analyst"].username)
    assert client.get("/import-profiles").status_code == 200
    assert client.get("/import-profiles/new").status_code == 403
    denied = client.post("/import-profiles/new", data={**PROFILE, "csrf_token": token},
                         files={"sample_file": ("", b"", "application/octet-stream")})
    assert denied.status_code == 403
