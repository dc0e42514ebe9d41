"""The storage pages: locations with occupancy (htmx filter by room), one location with its
contents and a scan box, moves by scan, "where is sample X" in one scan (and a location's label in
the top scan box), retention rules, disposal requests; query counts that do not grow with rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.samples import storage
from app.samples.lab_models import CustodyEvent, DisposalRequest, DisposalState, RetentionRule, StorageLocation
from app.samples.models import SampleState
from tests.conftest import login
from tests.samples.lab_fixtures import container
from tests.samples.test_storage_support import *  # noqa: F403
from tests.samples.test_storage_support import (
    location_row,
    make_location,
    make_storage_objects,
    report,
    rows,
    sample_row,
)


def form(token: str, **fields) -> dict:
    return {"csrf_token": token, **fields}


@pytest.fixture
def custodian(client, users):
    return login(client, "custodian")


# ---------------------------------------------------------------- locations


def test_the_storage_list_shows_occupancy_and_filters_by_room_with_htmx(client, db, users, received_task, custodian):
    fridge = make_location(db, users["custodian"], capacity=10)
    make_location(db, users["custodian"], room="样品室 202", unit="柜 1")
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, received_task.barcodes())
    page = client.get("/storage")
    assert page.status_code == 200
    assert 'href="/storage"' in page.text  # the nav item
    assert f'href="/storage/{fridge.code}"' in page.text and "<meter" in page.text
    assert 'data-occupied="3"' in page.text and "autofocus" in page.text
    fragment = client.get("/storage", params={"room": "样品室 202"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="results"' in fragment.text and fridge.code not in fragment.text and "柜 1" in fragment.text


def test_a_location_is_created_from_the_form(client, db, custodian):
    response = client.post("/storage/new", data=form(custodian, room="样品室 101", unit="冰箱 A", shelf="2",
                                                     temp_min="0", temp_max="4", capacity="40",
                                                     conditions_zh="冷藏", conditions_en="cooled"))
    assert response.status_code == 303
    code = response.headers["location"].rsplit("/", 1)[1]
    assert storage.LOCATION_RE.match(code)
    page = client.get(f"/storage/{code}")
    assert page.status_code == 200 and "0–4 °C" in page.text and 'id="store-here"' in page.text


def test_a_refused_location_form_keeps_what_was_typed(client, db, custodian):
    response = client.post("/storage/new", data=form(custodian, room="R", unit="F", temp_min="8", temp_max="2"))
    assert response.status_code == 422
    assert 'data-code="storage_temperature_range_inverted"' in response.text and 'value="F"' in response.text
    assert rows(db, StorageLocation) == 0


def test_storing_by_scan_on_the_location_page(client, db, users, received_task, custodian, fridge):
    dt = received_task
    response = client.post(f"/storage/{fridge.code}/store", data=form(custodian, barcodes="\n".join(dt.barcodes())))
    assert response.status_code == 200 and 'id="move-result"' in response.text
    for barcode in dt.barcodes():
        assert f'id="where-{barcode}"' in response.text
    assert location_row(db, fridge.id).occupied == 3
    # a container not received: refused at the scanner, nothing changed
    events = rows(db, CustodyEvent)
    refused = client.post(f"/storage/{fridge.code}/store", data=form(custodian, barcodes="CT26-000"))
    assert refused.status_code == 422 and 'data-code="malformed_barcode"' in refused.text
    assert rows(db, CustodyEvent) == events


def test_deactivating_a_location_from_its_page(client, db, users, received_task, custodian, fridge):
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, received_task.barcodes()[:1])
    response = client.post(f"/storage/{fridge.code}/deactivate", data=form(custodian))
    assert response.status_code == 409 and 'data-code="storage_location_not_empty"' in response.text
    empty = make_location(db, users["custodian"], unit="空柜")
    assert client.post(f"/storage/{empty.code}/deactivate", data=form(custodian)).status_code == 303
    assert not location_row(db, empty.id).active


def test_an_unknown_location_is_404(client, custodian):
    assert client.get("/storage/LC26-999999").status_code in (404, 422)
    assert client.get("/storage/nothing").status_code == 422


def test_location_labels_are_a_pdf(client, db, users, custodian, fridge):
    one = client.get(f"/storage/{fridge.code}/label.pdf")
    assert one.status_code == 200 and one.content.startswith(b"%PDF")
    sheet = client.get("/storage/labels.pdf")
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")


# ---------------------------------------------------------------- query counts


def test_the_location_list_costs_the_same_for_few_or_many_locations(client, db, users, custodian, count_queries):
    make_location(db, users["custodian"], unit="U0")
    client.get("/storage")
    with count_queries() as few:
        assert client.get("/storage").status_code == 200
    for n in range(1, 8):
        make_location(db, users["custodian"], unit=f"U{n}", capacity=n + 1)
    with count_queries() as many:
        assert client.get("/storage").status_code == 200
    assert few.count == many.count


def test_the_location_page_costs_the_same_for_few_or_many_containers(client, db, users, received_task, custodian,
                                                                      fridge, count_queries):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes(dt.samples[0]))
    client.get(f"/storage/{fridge.code}")
    with count_queries() as few:
        assert client.get(f"/storage/{fridge.code}").status_code == 200
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes(dt.samples[1]) + dt.barcodes(dt.samples[2]))
    with db.transaction() as session:
        storage.take_out(session, users["analyst"], dt.barcodes(dt.samples[2])[:1])
        storage.give_back(session, users["analyst"], dt.barcodes(dt.samples[2])[:1], location_code=fridge.code)
    with count_queries() as many:
        page = client.get(f"/storage/{fridge.code}")
        assert page.status_code == 200 and page.text.count('id="where-') == 9
    assert few.count == many.count


def test_the_disposal_list_costs_the_same_for_few_or_many(client, db, users, received_task, custodian,
                                                          count_queries):
    from app.samples import disposal

    dt = received_task
    for sample in dt.samples:
        report(db, sample, utcnow() - timedelta(days=40))
    with db.transaction() as session:
        disposal.request_disposal(session, users["custodian"], [dt.samples[0].sample_no], "满")
    client.get("/storage/disposals")
    with count_queries() as few:
        assert client.get("/storage/disposals").status_code == 200
    with db.transaction() as session:
        for sample in dt.samples[1:]:
            disposal.request_disposal(session, users["custodian"], [sample.sample_no], "满")
    with count_queries() as many:
        assert client.get("/storage/disposals").status_code == 200
    assert few.count == many.count


# ---------------------------------------------------------------- where is it


def test_where_is_answers_in_one_scan(client, db, users, received_task, custodian, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes()[:1])
    page = client.get("/storage/find", params={"code": dt.barcodes()[0]})
    assert page.status_code == 200
    assert re.search(r'<input type="search" name="code"[^>]*autofocus', page.text)
    assert f'data-where="{fridge.code}"' in page.text and 'data-where="custodian"' in page.text
    assert 'class="scanned"' in page.text and dt.routine.sample_no in page.text
    by_number = client.get("/storage/find", params={"code": dt.routine.sample_no})
    assert by_number.status_code == 200 and by_number.text.count('id="where-') == 3
    unknown = client.get("/storage/find", params={"code": "nothing-like-this"})
    assert unknown.status_code == 200 and 'data-code="storage_code_unknown"' in unknown.text
    good = dt.barcodes()[0]
    misread = client.get("/storage/find", params={"code": good[:-1] + str((int(good[-1]) + 1) % 10)})
    assert misread.status_code == 422 and 'data-code="wrong_check_digit"' in misread.text
    to_location = client.get("/storage/find", params={"code": fridge.code.lower()}, follow_redirects=False)
    assert to_location.status_code == 303 and to_location.headers["location"] == f"/storage/{fridge.code}"


def test_a_location_label_in_the_top_scan_box_opens_the_location(client, db, custodian, fridge):
    response = client.get("/scan", params={"code": fridge.code}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/storage/{fridge.code}"


def test_the_sample_page_shows_where_it_is(client, db, users, received_task, custodian, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    page = client.get(f"/samples/{dt.routine.sample_no}")
    assert page.status_code == 200 and 'id="storage"' in page.text
    assert f'data-where="{fridge.code}"' in page.text


# ---------------------------------------------------------------- moves


def test_the_move_page_stores_takes_out_and_gives_back(client, db, users, received_task, custodian, fridge):
    dt = received_task
    page = client.get("/storage/move", params={"location": fridge.code})
    assert page.status_code == 200 and 'id="store-form"' in page.text
    # the scanner's Enter after the location's label: the location is kept, the containers box waits
    first = client.post("/storage/store", data=form(custodian, location_code=fridge.code.lower(), barcodes=""))
    assert first.status_code == 200 and 'data-code=' not in first.text
    assert re.search(r'<textarea name="barcodes"[^>]*autofocus', first.text) and f'value="{fridge.code}"' in first.text
    wrong = client.post("/storage/store", data=form(custodian, location_code="LC26-0", barcodes=""))
    assert wrong.status_code == 422 and 'data-code="not_a_location_code"' in wrong.text
    stored = client.post("/storage/store", data=form(custodian, location_code=fridge.code,
                                                     barcodes=" ".join(dt.barcodes())))
    assert stored.status_code == 200 and 'id="move-result"' in stored.text
    assert f'value="{fridge.code}"' in stored.text  # the location stays for the next shelf
    analyst = login(client, "analyst")
    page = client.get("/storage/move")
    assert page.status_code == 200 and 'id="store-form"' not in page.text and 'value="custodian"' in page.text
    out = client.post("/storage/take-out", data=form(analyst, barcodes=dt.barcodes()[0], note="消解"))
    assert out.status_code == 200 and container(db, dt.barcodes()[0]).holder_id == users["analyst"].id
    back = client.post("/storage/give-back", data=form(analyst, barcodes=dt.barcodes()[0], custodian="custodian"))
    assert back.status_code == 200 and container(db, dt.barcodes()[0]).holder_id == users["custodian"].id
    again = client.post("/storage/give-back", data=form(analyst, barcodes=dt.barcodes()[0],
                                                        location_code=fridge.code))
    assert again.status_code == 409 and 'data-code="container_not_with_you"' in again.text
    assert client.post("/storage/store", data=form(analyst, location_code=fridge.code,
                                                   barcodes=dt.barcodes()[0])).status_code == 403


def test_a_full_location_is_refused_at_the_scanner(client, db, users, received_task, custodian):
    small = make_location(db, users["custodian"], unit="小", capacity=2)
    response = client.post("/storage/store", data=form(custodian, location_code=small.code,
                                                       barcodes="\n".join(received_task.barcodes())))
    assert response.status_code == 409 and 'data-code="location_full"' in response.text
    assert location_row(db, small.id).occupied == 0


def test_the_inspector_reads_but_cannot_move(client, db, users, received_task, fridge):
    token = login(client, "inspector")
    assert client.get("/storage").status_code == 200
    assert client.get(f"/storage/{fridge.code}").status_code == 200
    assert client.post(f"/storage/{fridge.code}/store", data=form(token, barcodes="x")).status_code == 403


# ---------------------------------------------------------------- retention


def test_retention_rules_page(client, db, users, custodian):
    page = client.get("/storage/retention")
    assert page.status_code == 200 and "30" in page.text
    assert client.post("/storage/retention", data=form(custodian, client_name="江城化工", days="90")).status_code == 303
    with db.reading() as session:
        rule_id = str(session.scalars(select(RetentionRule.id)).one())
    bad = client.post("/storage/retention", data=form(custodian, client_name="江城化工", days="60"))
    assert bad.status_code == 409 and 'data-code="retention_rule_exists"' in bad.text
    assert client.post("/storage/retention/change", data=form(custodian, rule=rule_id, days="120")).status_code \
        == 303
    assert "江城化工" in client.get("/storage/retention").text
    assert client.post("/storage/retention/remove", data=form(custodian, rule=rule_id)).status_code == 303
    assert rows(db, RetentionRule) == 0
    gone = client.post("/storage/retention/remove", data=form(custodian, rule=rule_id))
    assert gone.status_code == 404


# ---------------------------------------------------------------- disposal


def test_the_disposal_pages_request_decide_and_record(client, db, users, received_task, custodian, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    report(db, dt.routine, utcnow() - timedelta(days=40))
    new = client.get("/storage/disposals/new")
    assert new.status_code == 200 and f'value="{dt.routine.sample_no}"' in new.text
    created = client.post("/storage/disposals/new", data=form(custodian, samples=[dt.routine.sample_no],
                                                                reason="留样期满"))
    assert created.status_code == 303
    code = created.headers["location"].rsplit("/", 1)[1]
    page = client.get(f"/storage/disposals/{code}")
    assert page.status_code == 200 and 'id="decide-form"' not in page.text  # the custodian does not decide
    listing = client.get("/storage/disposals", params={"state": "requested"}, headers={"HX-Request": "true"})
    assert listing.status_code == 200 and code in listing.text and "<html" not in listing.text
    qm = login(client, "quality-manager")
    page = client.get(f"/storage/disposals/{code}")
    assert 'id="decide-form"' in page.text
    assert client.post(f"/storage/disposals/{code}/decide", data=form(qm, decision="approve", note="同意")) \
        .status_code == 303
    custodian = login(client, "custodian")
    page = client.get(f"/storage/disposals/{code}")
    assert 'id="record-form"' in page.text
    done = client.post(f"/storage/disposals/{code}/record", data=form(custodian, method="中和后排放"))
    assert done.status_code == 303
    assert sample_row(db, dt.routine.id).state == SampleState.DISPOSED.value
    sample_page = client.get(f"/samples/{dt.routine.sample_no}")
    assert code in sample_page.text and 'data-disposal-state="disposed"' in sample_page.text


def test_a_disposal_within_retention_is_refused_on_the_form(client, db, users, received_task, custodian):
    dt = received_task
    report(db, dt.routine, utcnow() - timedelta(days=1))
    response = client.post("/storage/disposals/new", data=form(custodian, more=dt.routine.sample_no, reason="满"))
    assert response.status_code == 409 and 'data-code="disposal_within_retention"' in response.text
    assert rows(db, DisposalRequest) == 0


def test_self_approval_is_refused_on_the_page(client, db, users, received_task):
    from app.people import service
    from app.samples import disposal

    report(db, received_task.routine, utcnow() - timedelta(days=40))
    with db.transaction() as session:
        qm = session.merge(users["quality_manager"])
        service.grant_role_as_system(session, qm, "custodian", "test")
    with db.transaction() as session:
        request = disposal.request_disposal(session, users["quality_manager"], [received_task.routine.sample_no], "满")
        code = request.code
    token = login(client, "quality-manager")
    page = client.get(f"/storage/disposals/{code}")
    assert 'id="decide-form"' not in page.text
    response = client.post(f"/storage/disposals/{code}/decide", data=form(token, decision="approve"))
    assert response.status_code == 409 and 'data-code="disposal_self_approval"' in response.text
    with db.reading() as session:
        assert session.scalars(select(DisposalRequest)).one().state == DisposalState.REQUESTED.value


def test_an_unknown_disposal_is_404(client, custodian):
    assert client.get("/storage/disposals/DS26-99999").status_code == 404


def test_the_walker_objects_can_be_made_and_their_pages_answer(client, db, users):
    made = make_storage_objects(db, users)
    assert storage.LOCATION_RE.match(made["location_code"]) and made["code"].startswith("DS")
    login(client, "inspector")
    for path in (f"/storage/{made['location_code']}", f"/storage/disposals/{made['code']}",
                 f"/storage/find?code={made['barcode']}", f"/samples/{made['sample_no']}"):
        assert client.get(path).status_code == 200, path
