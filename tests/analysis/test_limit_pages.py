"""The evaluation-standard pages: the list (htmx fragment, kind filter, query count), a standard's
table with its versions, loading the built-ins, importing a permit from a CSV upload (a refusal
names the row and column and keeps what was typed), assigning a site, and the inspector who
reads every page and changes nothing."""

from __future__ import annotations

import re

import pytest

from app.analysis import limits
from tests.analysis.limit_fixtures import counts, load_builtins, make_site
from tests.conftest import discount_refusals, login, refusals_so_far

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def as_technical(client, technical):
    return client, login(client, technical.username)


def test_the_list_and_its_fragment(db, as_technical, technical):
    client, token = as_technical
    page = client.get("/limits")
    assert page.status_code == 200 and 'action="/limits/builtin"' in page.text and CHINESE.search(page.text)
    assert client.post("/limits/builtin", data={"csrf_token": token}).status_code == 303
    page = client.get("/limits")
    assert re.findall(r'data-limit-set="([^"]+)"', page.text) == ["GB 3095-2012", "GB 3838-2002"]
    assert 'action="/limits/builtin"' not in page.text  # nothing left to load
    fragment = client.get("/limits?kind=ambient_air", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.findall(r'data-limit-set="([^"]+)"', fragment.text) == ["GB 3095-2012"]
    assert client.get("/limits?kind=bogus").status_code == 422


def test_the_list_query_count_does_not_grow(db, as_technical, technical, count_queries):
    client, _ = as_technical
    load_builtins(db, technical)
    with count_queries() as few:
        assert client.get("/limits").status_code == 200
    for i in range(4):
        with db.transaction() as session:
            for limit in (b"50", b"40"):
                limits.import_permit_limits(session, technical, f"PW-{i}", f"排口 {i}",
                                            b"parameter,limit,unit\nCOD," + limit + b",mg/L\n")
    with count_queries() as many:
        page = client.get("/limits")
    assert page.status_code == 200 and len(re.findall(r'data-version="', page.text)) == 10
    assert many.count == few.count


def test_a_standard_shows_its_table_and_versions(db, as_technical, technical):
    client, _ = as_technical
    load_builtins(db, technical)
    page = client.get("/limits/GB%203838-2002")
    assert page.status_code == 200 and "GB 3838-2002 Table 1" in page.text
    assert re.findall(r'<th data-class="([^"]+)"', page.text) == ["I", "II", "III", "IV", "V"]
    assert re.findall(r'data-parameter="TP" data-water-body="(\w+)"', page.text) == ["river", "lake"]
    assert "≥ 7.5" in page.text and "6–9" in page.text
    assert client.get("/limits/GB%203838-2002?version=1").status_code == 200
    assert client.get("/limits/GB%203838-2002?version=2").status_code == 404
    assert client.get("/limits/nothing").status_code == 404


def test_a_permit_is_imported_through_the_form(db, as_technical):
    client, token = as_technical
    assert client.get("/limits/import").status_code == 200
    answer = client.post("/limits/import", data={"csrf_token": token, "code": "PW-001", "name": "江城化工总排口",
                                                 "valid_from": "2026-01-01"},
                         files={"file": ("permit.csv", b"parameter,limit,unit\nCOD,50,mg/L\npH,6-9,\xe6\x97\xa0\n")})
    assert answer.status_code == 303 and answer.headers["location"] == "/limits/PW-001"
    page = client.get("/limits/PW-001")
    assert page.status_code == 200 and "≤ 50" in page.text and "6–9" in page.text


def test_a_refused_import_names_the_row_and_keeps_the_form(db, as_technical):
    client, token = as_technical
    before = counts(db)
    answer = client.post("/limits/import", data={"csrf_token": token, "code": "PW-001", "name": "江城化工总排口"},
                         files={"file": ("permit.csv", b"parameter,limit,unit\nCOD,50,mg/L\nNH3-N,abc,mg/L\n")})
    assert answer.status_code == 422 and 'data-code="limit_row_invalid"' in answer.text
    assert "3" in re.search(r'data-code="limit_row_invalid">\s*<p>([^<]+)', answer.text).group(1)
    assert 'value="江城化工总排口"' in answer.text
    missing = client.post("/limits/import", data={"csrf_token": token, "code": "PW-001", "name": "排口"})
    assert missing.status_code == 422 and 'data-code="limit_file_invalid"' in missing.text
    assert counts(db) == before


def test_a_site_is_assigned_through_the_form(db, as_technical, technical):
    client, token = as_technical
    load_builtins(db, technical)
    make_site(db, technical, "JC-W10")
    page = client.get("/limits/sites")
    assert page.status_code == 200 and 'value="JC-W10"' in page.text
    answer = client.post("/limits/sites", data={"csrf_token": token, "site": "JC-W10",
                                                "limit_set_code": "GB 3838-2002", "target_class": "III"})
    assert answer.status_code == 303
    assert 'data-site="JC-W10" data-limit-set="GB 3838-2002"' in client.get("/limits/sites").text
    assert "JC-W10" in client.get("/limits/GB%203838-2002").text
    refused = client.post("/limits/sites", data={"csrf_token": token, "site": "JC-W10",
                                                 "limit_set_code": "GB 3095-2012", "target_class": "2"})
    assert refused.status_code == 409 and 'data-code="limit_set_wrong_kind_for_site"' in refused.text


def test_the_inspector_reads_and_changes_nothing(db, client, users, technical):
    load_builtins(db, technical)
    make_site(db, technical, "JC-W10")
    token = login(client, users["inspector"].username)
    for url in ("/limits", "/limits/GB%203838-2002", "/limits/sites"):
        page = client.get(url)
        assert page.status_code == 200 and 'action="/limits/sites"' not in page.text, url
    assert client.get("/limits/import").status_code == 403
    before, mark = counts(db), refusals_so_far(db)
    for url, data in (("/limits/builtin", {}), ("/limits/sites", {"site": "JC-W10", "limit_set_code": "GB 3838-2002"}),
                      ("/limits/import", {"code": "PW-1", "name": "x"})):
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 403, url
    assert refusals_so_far(db) - mark == 3  # each attempt kept in the audit trail, nothing else changed
    assert discount_refusals(db, counts(db), "audit", mark) == before


def test_the_nav_names_the_standards(db, client, users):
    login(client, users["analyst"].username)  # the analyst reads the standards too
    assert 'href="/limits"' in client.get("/dashboard").text
