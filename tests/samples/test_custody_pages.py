"""Custody pages: hand-over by scanning (plain form without JavaScript, htmx scan rows, a double
tap recorded once, refusals on the page with what was typed), coolers (list with its htmx
fragment, new, pack and take out by htmx, seal, hand over, label), the list of custody gaps, the
sample page's custody section, the header scan box opening a cooler, who may do what, and query
counts that do not grow with the rows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.core.codes import with_check_digit
from app.core.db import utcnow
from app.people.models import RoleGrant
from app.samples import handover
from app.samples.chain import custody_chain
from app.samples.lab_models import CustodyEvent, Shipment
from app.samples.models import Sample, SampleState
from tests.conftest import login, make_user
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes, container, refreshed


@pytest.fixture(autouse=True)
def roles_held_for_a_while(db, users):
    backdate_roles(db)


def backdate_roles(db) -> None:
    with db.transaction() as session:
        session.execute(update(RoleGrant).values(valid_from=utcnow() - timedelta(days=30)))


def events(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(CustodyEvent)) or 0


def htmx(token: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": token}


def new_cooler(client, token: str) -> str:
    response = client.post("/custody/shipments/new", data={"csrf_token": token, "note": "蓝色冷藏箱"})
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


# ---------------------------------------------------------------- hand-over


def test_the_handover_page_is_a_phone_friendly_scan_form(client, db, collected_task):
    login(client, "sampler")
    page = client.get("/custody/handover")
    assert page.status_code == 200
    text = page.text
    assert 'name="viewport" content="width=device-width' in text
    assert re.search(r'<input id="scan-code" name="code"[^>]*autofocus', text)
    assert 'hx-post="/custody/handover/scan"' in text
    assert '<textarea name="barcodes"' in text  # without JavaScript: a list of barcodes
    assert 'name="csrf_token"' in text and 'name="client_id" value="web-' in text
    assert '<option value="custodian"' in text and '<option value="checker"' not in text
    assert 'href="/custody/handover"' in text  # the nav item


def test_a_plain_form_hands_over_and_a_double_tap_is_recorded_once(client, db, users, collected_task):
    dt = collected_task
    token = login(client, "sampler")
    barcodes = all_barcodes(dt)
    form = {"csrf_token": token, "barcodes": "\n".join(barcodes[:5]), "barcode": barcodes[5:],
            "giver": "sampler", "taker": "custodian", "temp_value": "39.2", "temp_unit": "°F", "seal_no": "F-9",
            "seal_intact": "1", "note": "冷藏", "client_id": "web-doubletap-0001"}
    first = client.post("/custody/handover", data=form)
    assert first.status_code == 303, first.text
    assert first.headers["location"].startswith("/custody/handover?done=")
    again = client.post("/custody/handover", data=form)
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    assert events(db) == 1
    with db.reading() as session:
        event = session.scalars(select(CustodyEvent)).one()
        assert (event.cooler_temp_c, event.seal_intact, event.to_user_id) == (Decimal("4"), True, users["custodian"].id)
    assert all(container(db, b).holder_id == users["custodian"].id for b in barcodes)
    done = client.get(first.headers["location"])
    assert 'id="handover-done"' in done.text and "9" in done.text


def test_a_refused_handover_comes_back_with_what_was_typed(client, db, collected_task):
    dt = collected_task
    token = login(client, "sampler")
    good = dt.barcodes()[0]
    response = client.post("/custody/handover", data={
        "csrf_token": token, "barcodes": f"{good}\nCT26-1234", "giver": "sampler", "taker": "custodian",
        "note": "保留这段文字", "client_id": "web-refused-0001"})
    assert response.status_code == 422
    assert 'data-code="malformed_barcode"' in response.text
    assert "保留这段文字" in response.text and good in response.text
    response = client.post("/custody/handover", data={
        "csrf_token": token, "barcodes": good, "giver": "sampler", "taker": "custodian", "temp_value": "4000",
        "client_id": "web-refused-0002"})
    assert response.status_code == 422 and 'data-code="temperature_out_of_range"' in response.text
    response = client.post("/custody/handover", data={
        "csrf_token": token, "barcodes": good, "giver": "custodian", "taker": "analyst",
        "client_id": "web-refused-0003"})
    assert response.status_code == 403 and 'data-code="handover_actor_not_party"' in response.text
    assert events(db) == 0


def test_scanning_adds_rows_by_htmx_and_says_a_bad_scan_at_once(client, db, collected_task):
    dt = collected_task
    token = login(client, "sampler")
    barcode = dt.barcodes()[0]
    row = client.post("/custody/handover/scan", data={"code": barcode.lower()}, headers=htmx(token))
    assert row.status_code == 200
    assert f'<li id="scanned-{barcode}">' in row.text
    assert f'name="barcode" value="{barcode}"' in row.text and dt.routine.sample_no in row.text
    assert 'id="scan-form"' in row.text and 'hx-swap-oob="true"' in row.text  # the box comes back empty
    assert "<html" not in row.text
    wrong = barcode[:-1] + str((int(barcode[-1]) + 1) % 10)
    bad = client.post("/custody/handover/scan", data={"code": wrong}, headers=htmx(token))
    assert bad.status_code == 422
    assert bad.headers["HX-Retarget"] == "#scan-message"
    assert 'data-code="wrong_check_digit"' in bad.text
    plain = client.post("/custody/handover/scan", data={"code": barcode, "csrf_token": token})
    assert plain.status_code == 200 and f'value="{barcode}"' in plain.text and "<html" in plain.text
    assert events(db) == 0


def test_who_may_open_the_handover_page(client, db, collected_task):
    token = login(client, "inspector")
    assert client.get("/custody/handover").status_code == 403
    posted = client.post("/custody/handover", data={"csrf_token": token, "barcodes": collected_task.barcodes()[0],
                                                    "giver": "inspector", "taker": "custodian"})
    assert posted.status_code == 403 and 'data-code="inspector_read_only"' in posted.text
    assert events(db) == 0
    assert client.get("/custody/shipments").status_code == 200  # reading is allowed
    assert client.get("/custody/gaps").status_code == 200


# ---------------------------------------------------------------- coolers


def test_a_cooler_is_packed_by_htmx_sealed_and_handed_over(client, db, users, collected_task):
    dt = collected_task
    token = login(client, "sampler")
    code = new_cooler(client, token)
    page = client.get(f"/custody/shipments/{code}")
    assert page.status_code == 200 and f'href="/custody/shipments/{code}/label.pdf"' in page.text
    assert re.search(r'<input id="pack-code" name="barcodes"[^>]*autofocus', page.text)
    barcodes = all_barcodes(dt)
    for barcode in barcodes:
        packed = client.post(f"/custody/shipments/{code}/pack", data={"barcodes": barcode}, headers=htmx(token))
        assert packed.status_code == 200 and "<html" not in packed.text
        assert f'id="packed-{barcode}"' in packed.text
    out = client.post(f"/custody/shipments/{code}/unpack", data={"barcodes": barcodes[0]}, headers=htmx(token))
    assert f'id="packed-{barcodes[0]}"' not in out.text
    other = new_cooler(client, token)
    refused = client.post(f"/custody/shipments/{other}/pack", data={"barcodes": barcodes[1]}, headers=htmx(token))
    assert refused.status_code == 409 and 'data-code="container_in_other_shipment"' in refused.text
    sealed = client.post(f"/custody/shipments/{code}/seal", data={"seal_no": "F-42", "csrf_token": token})
    assert sealed.status_code == 303
    sealed_page = client.get(f"/custody/shipments/{code}").text
    assert 'name="seal_no" maxlength="40" value="F-42"' in sealed_page
    assert 'name="seal_intact" value="1" checked' in sealed_page  # a broken seal is said, not assumed
    label = client.get(f"/custody/shipments/{code}/label.pdf")
    assert label.status_code == 200 and label.content.startswith(b"%PDF")
    handed = client.post(f"/custody/shipments/{code}/handover", data={
        "taker": "custodian", "temp_value": "277.15", "temp_unit": "K", "seal_no": "F-42", "seal_intact": "1",
        "client_id": "web-cooler-0001"}, headers=htmx(token))
    assert handed.status_code == 200, handed.text
    assert 'data-state="handed_over"' in handed.text and "<html" not in handed.text  # the head is swapped too
    with db.reading() as session:
        shipment = session.scalars(select(Shipment).where(Shipment.code == code)).one()
        assert (shipment.state, shipment.holder_id) == ("handed_over", users["custodian"].id)
        event = session.scalars(select(CustodyEvent)).one()
        assert (event.cooler_temp_c, event.seal_no, event.shipment_id) == (Decimal("4"), "F-42", shipment.id)
    page = client.get(f"/custody/shipments/{code}")
    assert "F-42" in page.text and 'id="pack-code"' not in page.text
    assert {s.state for s in refreshed(db, dt).samples} == {SampleState.IN_TRANSIT.value}


def test_the_cooler_list_filters_by_htmx_and_its_queries_do_not_grow(client, db, users, collected_task,
                                                                       count_queries):
    token = login(client, "sampler")
    code = new_cooler(client, token)
    client.get("/custody/shipments")
    with count_queries() as few:
        assert client.get("/custody/shipments").status_code == 200
    for _ in range(6):
        new_cooler(client, token)
    with count_queries() as many:
        page = client.get("/custody/shipments")
    assert page.text.count('href="/custody/shipments/SH') == 7
    assert many.count == few.count <= 6, many.statements
    fragment = client.get("/custody/shipments?state=packing", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    found = client.get(f"/custody/shipments?q={code.lower()}", headers={"HX-Request": "true"})
    assert found.text.count('href="/custody/shipments/SH') == 1
    none = client.get("/custody/shipments?state=delivered")
    assert 'href="/custody/shipments/SH' not in none.text
    assert client.get("/custody/shipments?state=nonsense").status_code == 422


def test_scanning_a_cooler_label_in_the_header_opens_it(client, db, collected_task):
    token = login(client, "sampler")
    code = new_cooler(client, token)
    response = client.get(f"/scan?code={code.lower()}")
    assert response.status_code == 303 and response.headers["location"] == f"/custody/shipments/{code}"
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    response = client.get(f"/scan?code={wrong}")
    assert response.status_code == 422 and "shipment_wrong_check_digit" in response.text
    assert client.get(f"/custody/shipments/{with_check_digit('SH26-99999')}").status_code == 404
    assert client.get("/custody/shipments/nonsense").status_code == 404


def test_the_cooler_page_query_count_does_not_grow_with_containers(client, db, users, collected_task,
                                                                   count_queries):
    dt = collected_task
    token = login(client, "sampler")
    code = new_cooler(client, token)
    barcodes = all_barcodes(dt)
    client.post(f"/custody/shipments/{code}/pack", data={"barcodes": barcodes[0], "csrf_token": token})
    with count_queries() as few:
        client.get(f"/custody/shipments/{code}")
    client.post(f"/custody/shipments/{code}/pack", data={"barcodes": "\n".join(barcodes[1:]), "csrf_token": token})
    with count_queries() as many:
        page = client.get(f"/custody/shipments/{code}")
    assert page.text.count('id="packed-CT') == len(barcodes)
    assert many.count == few.count, many.statements


# ---------------------------------------------------------------- gaps and the sample page


def _gap(db, users, dt) -> None:
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    with db.transaction() as session:
        handover.hand_over(session, session.merge(dt.sampler), dt.barcodes(), giver_id=dt.sampler.id,
                           taker_id=driver.id, occurred_at=utcnow() - timedelta(minutes=5))
    with db.transaction() as session:  # the custodian writes the sampler gave it: the driver had it
        custodian = session.merge(users["custodian"])
        handover.hand_over(session, custodian, dt.barcodes()[:1], giver_id=dt.sampler.id,
                           taker_id=custodian.id, occurred_at=utcnow() - timedelta(minutes=2))


def test_the_sample_page_shows_the_chain_with_the_gap_flagged(client, db, users, collected_task):
    dt = collected_task
    _gap(db, users, dt)
    login(client, "custodian")
    page = client.get(f"/samples/{dt.routine.sample_no}")
    assert page.status_code == 200
    text = page.text
    assert '<section id="custody">' in text and "data-custody-gap" in text
    assert text.count('<tr class="gap"') == 1
    for barcode in dt.barcodes():
        assert f'id="custody-{barcode}"' in text
    blank = [s for s in dt.samples if s.id != dt.routine.id][0]
    other = client.get(f"/samples/{blank.sample_no}")
    assert '<section id="custody">' in other.text and "data-custody-gap" not in other.text


def test_the_gap_list_shows_samples_with_gaps(client, db, users, collected_task, count_queries):
    dt = collected_task
    login(client, "custodian")
    empty = client.get("/custody/gaps")
    assert empty.status_code == 200 and 'href="/samples/' not in empty.text
    _gap(db, users, dt)
    with count_queries() as q:
        page = client.get("/custody/gaps")
    assert f'href="/samples/{dt.routine.sample_no}#custody"' in page.text
    assert page.text.count('href="/samples/') == 1
    assert q.count <= 6, q.statements
    fragment = client.get("/custody/gaps?page=1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="results"' in fragment.text


def test_the_chain_reads_in_two_queries_whatever_the_number_of_events(db, users, collected_task, count_queries):
    dt = collected_task
    analyst, custodian = users["analyst"], users["custodian"]

    def read() -> int:
        with db.reading() as session:
            sample = session.get(Sample, dt.routine.id)
            with count_queries() as q:
                chain = custody_chain(session, sample)
                assert all(link.giver.kind for c in chain.containers for link in c.links)
            return q.count

    one = read()
    with db.transaction() as session:
        handover.hand_over(session, session.merge(dt.sampler), dt.barcodes(), giver_id=dt.sampler.id,
                           taker_id=custodian.id, occurred_at=utcnow() - timedelta(minutes=9))
    few = read()
    for n in range(4):
        giver, taker = (custodian, analyst) if n % 2 == 0 else (analyst, custodian)
        with db.transaction() as session:
            handover.hand_over(session, session.merge(giver), dt.barcodes(), giver_id=giver.id, taker_id=taker.id,
                               occurred_at=utcnow() - timedelta(minutes=8 - n))
    many = read()
    assert one == few == many <= 2
