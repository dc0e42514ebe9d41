"""The batch pages: the list (htmx fragment, filters, mine, constant queries), building a batch
through the form (due samples by deadline, first N due, a refusal keeps what was typed), the
worksheet (missing standards added by scanning, start, a curve refusal in the page), the run
sequence, who may do what (the inspector reads, never posts), the dashboard card and scanning."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.analysis.models import AnalysisBatch, BatchPosition
from tests.analysis.batch_fixtures import *  # noqa: F403
from tests.analysis.batch_fixtures import build, lab_samples, positions_of, standards_for
from tests.conftest import login

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def as_analyst(client, analyst):
    return client, login(client, analyst.username)


def batch_count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(AnalysisBatch))


def test_the_list_page_filters_and_its_fragment(db, users, bench, analyst, standards, as_analyst, count_queries):
    client, _ = as_analyst
    first = build(db, analyst, lab_samples(db, users, 2, prefix="WS01-A"))
    with count_queries() as few:
        page = client.get("/batches")
    assert page.status_code == 200 and "<html" in page.text and CHINESE.search(page.text)
    assert re.findall(r'data-batch="(AB[^"]+)"', page.text) == [first.batch_no]
    second = build(db, analyst, lab_samples(db, users, 2, prefix="WS01-B"), standards=standards_for(standards))
    for i in range(4):
        build(db, analyst, lab_samples(db, users, 1, prefix=f"WS01-C{i}"))
    with count_queries() as many:
        assert client.get("/batches").status_code == 200
    assert many.count == few.count
    from app.analysis.batches import start_batch
    from tests.analysis.batch_fixtures import run
    run(db, lambda s: start_batch(s, analyst, s.get(AnalysisBatch, second.id)))
    fragment = client.get("/batches?state=running", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    assert re.findall(r'data-batch="(AB[^"]+)"', fragment.text) == [second.batch_no]
    mine = client.get("/batches?mine=1&state=open,running,imported,qc_evaluated,qc_failed")
    assert len(re.findall(r'data-batch="(AB[^"]+)"', mine.text)) == 6
    assert re.findall(r'data-batch=', client.get("/batches?method=HJ 999-2020").text) == []
    assert len(re.findall(r'data-batch=', client.get("/batches?method=hj 535-2009&analyst=analyst").text)) == 6
    assert client.get("/batches?mine=7").status_code == 422
    assert client.get("/batches?state=bogus").status_code == 200  # an unknown state filters nothing out


def test_building_through_the_form(db, users, bench, analyst, standards, as_analyst):
    client, token = as_analyst
    samples = lab_samples(db, users, 3)
    assert client.get("/batches/new").status_code == 200
    page = client.get("/batches/new?method=HJ 535-2009")
    assert page.status_code == 200 and 'id="build-form"' in page.text and "JC-UV-001" in page.text
    shown = re.findall(r'data-sample="([^"]+)"', page.text)
    assert shown == [s.sample_no for s in reversed(samples)]  # the oldest, earliest deadline first
    answer = client.post("/batches/new", data={
        "csrf_token": token, "method": "HJ 535-2009", "parameters": ["NH3-N"], "first_n": "2",
        "instrument": "JC-UV-001", "crm_barcode": standards.unit.barcode, "crm_value": "1.00", "crm_u": "0.05",
        "ccv_barcode": standards.working.barcode, "ccv_value": "0.500", "spike_barcode": standards.working.barcode,
        "spike_added": "0.2"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/batches/AB")
    sheet = client.get(answer.headers["location"])
    assert sheet.status_code == 200 and 'id="missing-standards"' not in sheet.text
    assert samples[2].sample_no in sheet.text and samples[1].sample_no in sheet.text
    assert samples[0].sample_no not in sheet.text  # not among the first two due


def test_a_refused_build_keeps_what_was_typed_and_saves_nothing(db, users, bench, analyst, standards, as_analyst):
    client, token = as_analyst
    samples = lab_samples(db, users, 2)
    answer = client.post("/batches/new", data={
        "csrf_token": token, "method": "HJ 535-2009", "parameters": ["NH3-N"],
        "samples": [s.sample_no for s in samples], "instrument": "JC-UV-001",
        "crm_barcode": standards.unit.barcode, "crm_value": "1,00"})
    assert answer.status_code == 422 and 'data-code="batch_comma_decimal"' in answer.text
    assert 'value="1,00"' in answer.text and f'value="{samples[0].sample_no}" aria-label' in answer.text
    assert batch_count(db) == 0
    answer = client.post("/batches/new", data={"csrf_token": token, "method": "HJ 535-2009",
                                               "parameters": ["NH3-N"], "instrument": "JC-UV-001"})
    assert answer.status_code == 422 and 'data-code="batch_samples_required"' in answer.text
    assert batch_count(db) == 0


def test_the_worksheet_adds_standards_and_starts(db, users, bench, analyst, standards, as_analyst, count_queries):
    client, token = as_analyst
    batch = build(db, analyst, lab_samples(db, users, 3))
    with count_queries() as counted:
        page = client.get(f"/batches/{batch.batch_no}")
    assert page.status_code == 200 and 'id="missing-standards"' in page.text and counted.count < 30
    for link in ("entry", "qc", "import", "sequence.csv"):
        assert f"/batches/{batch.batch_no}/{link}" in page.text
    assert 'data-role="crm"' in page.text and 'class="qc missing"' in page.text
    answer = client.post(f"/batches/{batch.batch_no}/start", data={"csrf_token": token})
    assert answer.status_code == 409 and 'data-code="batch_standards_missing"' in answer.text
    for target, data in (("crm", {"expected_value": "1.00", "expected_uncertainty": "0.05",
                                  "barcode": standards.unit.barcode}),
                         ("ccv", {"expected_value": "0.5", "barcode": standards.working.barcode}),
                         ("spike", {"spike_added": "0.2", "barcode": standards.working.barcode})):
        answer = client.post(f"/batches/{batch.batch_no}/standards", data={"csrf_token": token, "target": target,
                                                                           **data})
        assert answer.status_code == 303, answer.text
    assert all(p.role not in ("crm", "ccv", "spike") or p.material_barcode for p in positions_of(db, batch))
    answer = client.post(f"/batches/{batch.batch_no}/curves", data={"csrf_token": token, "parameter": "NH3-N",
                                                                    "curve": "CC26-99999"})
    assert answer.status_code == 404 and 'data-code="curve_not_found"' in answer.text
    assert 'value="CC26-99999"' in answer.text
    answer = client.post(f"/batches/{batch.batch_no}/start", data={"csrf_token": token})
    assert answer.status_code == 303
    page = client.get(f"/batches/{batch.batch_no}")
    assert 'data-state="running"' in page.text and 'action="/batches/' + batch.batch_no + '/start"' not in page.text
    csv_answer = client.get(f"/batches/{batch.batch_no}/sequence.csv")
    assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    assert "CB1" in csv_answer.text and "CCV1" in csv_answer.text
    assert client.get("/batches/AB26-99999").status_code == 404


def test_the_inspector_reads_and_never_posts(db, users, bench, analyst, client):
    batch = build(db, analyst, lab_samples(db, users, 1))
    token = login(client, users["inspector"].username)
    assert client.get("/batches").status_code == 200
    assert client.get(f"/batches/{batch.batch_no}").status_code == 200
    assert client.get(f"/batches/{batch.batch_no}/sequence.csv").status_code == 200
    assert client.get("/batches/new").status_code == 403
    for path in ("/batches/new", f"/batches/{batch.batch_no}/start", f"/batches/{batch.batch_no}/standards",
                 f"/batches/{batch.batch_no}/curves"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403
    with db.reading() as session:
        assert session.get(AnalysisBatch, batch.id).state == "open"
        assert session.scalar(select(func.count()).select_from(BatchPosition)) == len(positions_of(db, batch))


def test_the_dashboard_card_and_scanning_a_batch_number(db, users, bench, analyst, as_analyst):
    client, _ = as_analyst
    batch = build(db, analyst, lab_samples(db, users, 1))
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200 and "/batches?mine=1&amp;state=open" in dashboard.text
    assert 'href="/batches"' in dashboard.text  # the nav entry
    answer = client.get(f"/scan?code={batch.batch_no.lower()}")
    assert answer.status_code in (302, 303) and answer.headers["location"] == f"/batches/{batch.batch_no}"
