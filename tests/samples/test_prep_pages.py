"""The preparation pages: the batch list (htmx fragment, filters, paging), opening a batch, the
aliquot page with its label, the batch page's forms (sample, blank, spike, material, close and
sign) without JavaScript, refusals shown in the page with nothing saved, who may do what, the
sample page's section, scanning a batch code, and query counts that do not grow with the rows."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.core.registry import _resolvers
from app.samples.lab_models import PrepBatch, PrepBatchItem
from tests.conftest import PASSWORD, login, make_user
from tests.samples.test_prep_fixtures import *  # noqa: F403
from tests.samples.test_prep_fixtures import act, aliquot, counts, hno3_container, open_batch

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def as_analyst(client, analyst):
    token = login(client, analyst.username)
    return client, token


def positions(db, batch) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(PrepBatchItem).where(
            PrepBatchItem.batch_id == batch.id))


def test_the_list_page_and_its_htmx_fragment(db, as_analyst, analyst):
    client, _ = as_analyst
    open_batch(db, analyst)
    closed = open_batch(db, analyst, "filtration", "HJ 700-2014", "Cu")
    act(db, "add_blank", analyst, closed)
    act(db, "close_batch", analyst, closed, PASSWORD)
    page = client.get("/prep")
    assert page.status_code == 200 and "<html" in page.text and CHINESE.search(page.text)
    codes = re.findall(r'data-batch="(PB[^"]+)"', page.text)
    assert len(codes) == 2 and codes[1] == closed.code  # open first
    fragment = client.get("/prep?state=closed", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    assert re.findall(r'data-batch="(PB[^"]+)"', fragment.text) == [closed.code]
    assert re.findall(r'data-batch="(PB[^"]+)"', client.get("/prep?kind=digestion").text) != [closed.code]
    assert client.get("/prep?state=bogus").status_code == 422
    assert re.findall(r'data-batch="(PB[^"]+)"', client.get(f"/prep?q={closed.code.lower()}").text) == [closed.code]
    assert re.findall(r'data-batch="(PB[^"]+)"', client.get("/prep?q=HJ 700").text) == [closed.code]
    assert client.get("/prep?q=%25_").status_code == 200


def test_the_list_query_count_does_not_grow(db, as_analyst, analyst, count_queries):
    client, _ = as_analyst
    open_batch(db, analyst)
    with count_queries() as few:
        assert client.get("/prep").status_code == 200
    for _ in range(6):
        batch = open_batch(db, analyst)
        act(db, "add_blank", analyst, batch)
    with count_queries() as many:
        assert client.get("/prep").status_code == 200
    assert many.count == few.count


def test_opening_a_batch_through_the_form(db, as_analyst):
    client, token = as_analyst
    assert client.get("/prep/new").status_code == 200
    answer = client.post("/prep/new", data={"csrf_token": token, "kind": "digestion", "method": "HJ 677-2013",
                                            "parameters": "Cu Zn Pb Cd"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/prep/PB")
    page = client.get(answer.headers["location"])
    assert page.status_code == 200 and "HJ 677-2013" in page.text and 'id="scan-sample"' in page.text


def test_a_refused_opening_keeps_what_was_typed(db, as_analyst):
    client, token = as_analyst
    answer = client.post("/prep/new", data={"csrf_token": token, "kind": "digestion", "method": "HJ 677",
                                            "parameters": "Cu Zn"})
    assert answer.status_code == 422 and 'data-code="prep_method_without_year"' in answer.text
    assert 'value="HJ 677"' in answer.text and 'value="Cu Zn"' in answer.text
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(PrepBatch)) == 0


def test_the_aliquot_page_makes_an_aliquot_and_links_its_label(db, in_lab, as_analyst):
    client, token = as_analyst
    assert client.get("/prep/aliquots/new").status_code == 200
    parent = hno3_container(in_lab)
    answer = client.post("/prep/aliquots/new", data={"csrf_token": token, "parent": parent.barcode.lower(),
                                                     "amount": "50", "unit": "mL", "kind": "aliquot"})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"])
    barcode = re.search(r'data-barcode="(CT[^"]+)"', page.text).group(1)
    assert parent.barcode in page.text and f"/prep/aliquots/{barcode}/label.pdf" in page.text
    label = client.get(f"/prep/aliquots/{barcode}/label.pdf")
    assert label.status_code == 200 and label.content.startswith(b"%PDF")
    assert client.get(f"/prep/aliquots/{parent.barcode}/label.pdf").status_code == 404  # not an aliquot
    assert client.get("/prep/aliquots/new?made=garbage").status_code == 200
    sample = client.get(f"/samples/{in_lab.routine.sample_no}")
    assert 'id="prep"' in sample.text and barcode in sample.text


def test_a_refused_aliquot_is_shown_at_the_scanner(db, in_lab, as_analyst):
    client, token = as_analyst
    parent = hno3_container(in_lab)
    before = counts(db)
    answer = client.post("/prep/aliquots/new", data={"csrf_token": token, "parent": parent.barcode,
                                                     "amount": "99999", "unit": "mL"})
    assert answer.status_code == 409 and 'data-code="aliquot_exceeds_remaining"' in answer.text
    assert 'value="99999"' in answer.text
    for bad in ("CT26-0000", "x" * 100):
        answer = client.post("/prep/aliquots/new", data={"csrf_token": token, "parent": bad, "amount": "5"})
        assert answer.status_code == 422 and "alert error" in answer.text
    answer = client.post("/prep/aliquots/new", data={"csrf_token": token, "parent": "x" * 500, "amount": "5"})
    assert answer.status_code == 422  # longer than the form allows: refused at the edge
    assert counts(db) == before


def test_the_batch_page_forms_without_javascript(db, in_lab, as_analyst, analyst, standards):
    client, token = as_analyst
    batch = open_batch(db, analyst)
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    spiked = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    base = f"/prep/{batch.code}"
    for path, data in ((f"{base}/samples", {"barcode": made, "final_volume": "50"}),
                       (f"{base}/blanks", {"final_volume": "50"}),
                       (f"{base}/spikes", {"barcode": spiked, "standard": standards["cu"], "spike_amount": "0.5",
                                           "spike_unit": "mL", "final_volume": "50"}),
                       (f"{base}/materials", {"barcode": standards["hno3"], "quantity": "5", "unit": "mL",
                                              "purpose": "硝酸消解"})):
        answer = client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith(base)
    page = client.get(base)
    assert page.text.count('data-role="') == 3 and standards["hno3"] in page.text and 'id="holding"' in page.text
    assert 'id="missing-qc"' not in page.text
    answer = client.post(f"{base}/close", data={"csrf_token": token, "password": "nope"})
    assert answer.status_code == 403 and 'data-code="wrong_signing_password"' in answer.text
    answer = client.post(f"{base}/close", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 303
    page = client.get(base)
    assert 'id="signature"' in page.text and 'id="scan-sample"' not in page.text and 'id="close"' not in page.text
    sample = client.get(f"/samples/{in_lab.routine.sample_no}")
    assert batch.code in sample.text


def test_refusals_in_the_batch_page_keep_the_typing_and_save_nothing(db, in_lab, as_analyst, analyst, standards):
    client, token = as_analyst
    batch = open_batch(db, analyst)
    made = aliquot(db, analyst, hno3_container(in_lab).barcode, "50").barcode
    before = counts(db)
    answer = client.post(f"/prep/{batch.code}/samples", data={"csrf_token": token, "barcode": made, "amount": "80"})
    assert answer.status_code == 409 and 'data-code="aliquot_exceeds_remaining"' in answer.text
    assert f'value="{made}"' in answer.text and 'value="80"' in answer.text
    answer = client.post(f"/prep/{batch.code}/spikes", data={
        "csrf_token": token, "barcode": made, "standard": standards["expired"], "spike_amount": "0.5"})
    assert answer.status_code == 409 and 'data-code="material_expired"' in answer.text
    assert 'data-reason="expired"' in answer.text
    answer = client.post(f"/prep/{batch.code}/close", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 409 and 'data-code="prep_batch_incomplete"' in answer.text
    assert counts(db) == before
    assert client.post(f"/prep/{batch.code}/blanks", data={"final_volume": "50"}).status_code == 403  # no CSRF


def test_who_may_do_what(db, client, analyst, users):
    batch = open_batch(db, analyst)
    act(db, "add_blank", analyst, batch)
    other = make_user(db, "analyst-2", "analyst")
    token = login(client, other.username)
    page = client.get(f"/prep/{batch.code}")
    assert page.status_code == 200 and 'action="/prep/' + batch.code + '/close"' not in page.text
    answer = client.post(f"/prep/{batch.code}/close", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 403 and 'data-code="prep_not_the_preparer"' in answer.text
    client.cookies.clear()
    token = login(client, users["inspector"].username)
    assert client.get(f"/prep/{batch.code}").status_code == 200
    assert client.get("/prep/new").status_code == 403
    assert client.post(f"/prep/{batch.code}/blanks", data={"csrf_token": token}).status_code == 403
    assert positions(db, batch) == 1


def test_unknown_batches_and_scanning_a_batch_code(db, as_analyst, analyst):
    client, _ = as_analyst
    assert client.get("/prep/PB26-999999").status_code == 404
    assert client.get("/prep/" + "x" * 41).status_code == 422
    batch = open_batch(db, analyst)
    with db.reading() as session:
        from app.core.permissions import Permission

        hit = _resolvers["prep_batch"](session, analyst, frozenset({Permission.SAMPLES_READ}), batch.code.lower())
        assert hit is not None and hit.url == f"/prep/{batch.code}"
        assert _resolvers["prep_batch"](session, analyst, frozenset({Permission.SAMPLES_READ}), "PB26-999999") is None


def test_the_batch_page_query_count_does_not_grow_with_positions(db, in_lab, as_analyst, analyst, standards,
                                                                 count_queries):
    client, _ = as_analyst
    batch = open_batch(db, analyst)
    first = aliquot(db, analyst, hno3_container(in_lab).barcode, "10").barcode
    act(db, "add_sample", analyst, batch, first)
    act(db, "add_blank", analyst, batch)
    act(db, "add_material", analyst, batch, standards["hno3"], "1", "mL")
    with count_queries() as few:
        assert client.get(f"/prep/{batch.code}").status_code == 200
    for sample in in_lab.samples:
        for _ in range(2):
            act(db, "add_sample", analyst, batch, aliquot(db, analyst, hno3_container(in_lab, sample).barcode,
                                                          "10").barcode)
        act(db, "add_spike", analyst, batch, aliquot(db, analyst, hno3_container(in_lab, sample).barcode,
                                                     "10").barcode, standards["cu"], "0.1", "mL")
        act(db, "add_blank", analyst, batch)
        act(db, "add_material", analyst, batch, standards["hno3"], "1", "mL")
    with count_queries() as many:
        assert client.get(f"/prep/{batch.code}").status_code == 200
    assert many.count == few.count


def test_the_sample_page_section_query_count(db, in_lab, as_analyst, analyst, count_queries):
    client, _ = as_analyst
    batch = open_batch(db, analyst)
    act(db, "add_sample", analyst, batch, aliquot(db, analyst, hno3_container(in_lab).barcode, "10").barcode)
    with count_queries() as few:
        assert client.get(f"/samples/{in_lab.routine.sample_no}").status_code == 200
    for _ in range(4):
        act(db, "add_sample", analyst, batch, aliquot(db, analyst, hno3_container(in_lab).barcode, "10").barcode)
    other = open_batch(db, analyst)
    act(db, "add_sample", analyst, other, aliquot(db, analyst, hno3_container(in_lab).barcode, "10").barcode)
    with count_queries() as many:
        assert client.get(f"/samples/{in_lab.routine.sample_no}").status_code == 200
    assert many.count == few.count
