"""The sampler's phone pages and the posts of its queue: today's tasks, the task page (samples,
containers, forms), a field entry as JSON (recorded once, a repeat is a duplicate, a refusal is
problem JSON in the reader's language), the same entry as a plain form without JavaScript, photos,
signing, who may do what (CSRF, inspector, another task's sampler), query counts, and the weight
of the first load (< 100 KB of HTML, CSS and JS)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.db import utcnow
from app.samples.models import Container, FieldEntry, Sample, SampleKind, SamplePhoto
from app.sites.models import SamplingTask
from tests.conftest import PASSWORD, login, make_user
from tests.samples.conftest import DispatchedTask, dispatch, make_task
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import complete_record, jpeg_bytes, north_of_site, png_bytes

CHINESE = re.compile(r"[\u4e00-\u9fff]")
PAGE_BUDGET = 100 * 1024


def cid() -> str:
    return str(uuid.uuid4())


def iso(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def post_entry(client, token: str, body: dict, **headers):
    return client.post("/field/entries", json=body, headers={
        "X-CSRF-Token": token, "Accept": "application/json", **headers})


def scan_body(dt: DispatchedTask, barcode: str, sample: Sample | None = None, **extra) -> dict:
    return {"client_id": cid(), "kind": "container", "barcode": barcode, "task_code": dt.task.code,
            "sample_no": (sample or dt.routine).sample_no, "act_at": iso(utcnow() - timedelta(minutes=2)), **extra}


def entries(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(FieldEntry)) or 0


def container(db, barcode: str) -> Container:
    with db.reading() as session:
        row = session.scalars(select(Container).where(Container.barcode == barcode)).one()
        session.expunge(row)
        return row


@pytest.fixture
def signed_in(client, dispatched_task):
    """The task's sampler, signed in; returns the CSRF token."""
    return login(client, "sampler")


# ---------------------------------------------------------------- the pages


def test_today_lists_the_samplers_tasks_with_progress_and_a_day_switcher(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    page = client.get("/field")
    assert page.status_code == 200
    assert f'href="/field/tasks/{dt.task.code}"' in page.text
    assert "WS01" in page.text and "松花江大桥断面" in page.text
    total = sum(len(c) for c in dt.containers.values())
    client.cookies.set("lims_lang", "en")
    page = client.get("/field")
    assert f"0 of {total} containers scanned" in page.text
    assert "0 of 3 samples signed" in page.text
    today = db.calendar.today()
    assert f'href="/field?day={(today - timedelta(days=1)).isoformat()}"' in page.text
    assert f'href="/field?day={(today + timedelta(days=1)).isoformat()}"' in page.text
    # another day has none of today's tasks
    tomorrow = client.get(f"/field?day={(today + timedelta(days=1)).isoformat()}")
    assert tomorrow.status_code == 200 and dt.task.code not in tomorrow.text
    # the slim layout: no Pico, no htmx; the signed-in user, the language switch, the full app
    assert "pico" not in page.text and "htmx" not in page.text
    assert "/static/field.css" in page.text and "/static/field.js" in page.text
    assert 'action="/account/language"' in page.text and 'href="/dashboard"' in page.text
    assert 'id="messages"' in page.text and '<span class="who">Sampler</span>' in page.text


@pytest.mark.parametrize("day", ["2026-13-01", "yesterday", "2026-1-1"])
def test_a_bad_day_is_refused_with_a_message(client, dispatched_task, signed_in, day):
    response = client.get("/field", params={"day": day})
    assert response.status_code == 422


def test_the_task_page_shows_each_sample_its_kind_and_containers(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert page.status_code == 200, page.text
    text = page.text
    for sample in dt.samples:
        assert f'id="sample-{sample.sample_no}"' in text
        for barcode in dt.barcodes(sample):
            assert f'data-barcode="{barcode}" data-sample="{sample.sample_no}"' in text
    # the sampler knows which is the blank and which the duplicate (the analyst will not)
    assert "全程序空白" in text or "Field blank" in text
    assert "现场平行" in text or "Field duplicate" in text
    # the scan box takes a keyboard-wedge scanner; the camera scanner is only loaded on demand
    assert re.search(r'<input id="scan-input" name="barcode"[^>]*autofocus', text)
    assert "html5-qrcode.min.js" not in re.sub(r'data-qr-src="[^"]*"', "", text)
    assert 'data-camera="#scan-input"' in text
    # the position the sampler goes to, and the radius of the warning
    assert 'data-site-lat="45.773210"' in text and 'data-radius="200"' in text
    assert 'capture="environment"' in text and 'accept="image/*"' in text
    # what is missing before signing, per sample
    assert 'data-missing="sampling_time"' in text


def test_an_unknown_task_is_a_404(client, dispatched_task, signed_in):
    response = client.get("/field/tasks/TK99-99999")
    assert response.status_code == 404


def test_the_inspector_reads_the_task_page_without_forms(client, dispatched_task):
    login(client, "inspector")
    page = client.get(f"/field/tasks/{dispatched_task.task.code}")
    assert page.status_code == 200
    assert 'id="scan-form"' not in page.text and 'action="/field/entries"' not in page.text
    assert dispatched_task.routine.sample_no in page.text


def test_an_analyst_reads_the_task_page_blind_to_field_qc(client, dispatched_task):
    """Field blanks and duplicates are coded like ordinary samples so the analyst stays blind
    (DOMAIN.md §3): the page names none of them to an analyst."""
    login(client, "analyst")
    client.cookies.set("lims_lang", "en")
    page = client.get(f"/field/tasks/{dispatched_task.task.code}")
    assert page.status_code == 200
    for word in ("Field blank", "Field duplicate", "Routine sample", "Reagent water"):
        assert word not in page.text
    assert page.text.count('<span class="badge kind">Sample</span>') == len(dispatched_task.samples)


# ---------------------------------------------------------------- entries from the queue (JSON)


def test_a_scan_is_recorded_once_and_a_repeat_is_a_duplicate(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    barcode = dt.barcodes()[0]
    body = scan_body(dt, barcode)
    first = post_entry(client, signed_in, body)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "recorded" and first.json()["client_id"] == body["client_id"]
    assert container(db, barcode).state == "filled"
    again = post_entry(client, signed_in, body)  # the queue resends after a lost answer
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["entry_id"] == first.json()["entry_id"]
    assert entries(db) == 1
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert f'<li data-barcode="{barcode}" data-sample="{dt.routine.sample_no}" class="filled">' in page.text


def test_a_scan_without_a_sample_number_finds_its_sample(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    blank = dt.of_kind(SampleKind.FIELD_BLANK)[0]
    barcode = dt.barcodes(blank)[0]
    response = post_entry(client, signed_in, {**scan_body(dt, barcode), "sample_no": ""})
    assert response.status_code == 201, response.text
    assert response.json()["sample_no"] == blank.sample_no
    assert container(db, barcode).state == "filled"


@pytest.mark.parametrize("language, expect_chinese", [("zh_CN", True), ("en", False)])
def test_a_refusal_is_problem_json_in_the_readers_language(client, db, dispatched_task, signed_in, language,
                                                           expect_chinese):
    dt = dispatched_task
    client.cookies.set("lims_lang", language)
    good = dt.barcodes()[0]
    wrong_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    response = post_entry(client, signed_in, scan_body(dt, wrong_digit))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "wrong_check_digit"
    assert bool(CHINESE.search(problem["detail"])) is expect_chinese
    assert problem["message_zh"] and problem["message_en"]
    assert entries(db) == 0 and container(db, good).state == "issued"


def test_a_container_of_another_task_is_refused_naming_its_task(client, db, users, dispatched_task, signed_in,
                                                                  registrar, site, sampler):
    dt = dispatched_task
    other = dispatch(db, registrar, make_task(db, users["technical_manager"], site, sampler=sampler), site, sampler)
    foreign = other.barcodes()[0]
    response = post_entry(client, signed_in, scan_body(dt, foreign))
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "container_of_another_sample"
    assert other.routine.sample_no in problem["detail"]
    assert entries(db) == 0


def test_sampling_beyond_the_radius_answers_with_the_distance_and_the_warning(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    latitude, longitude = north_of_site(450)
    response = post_entry(client, signed_in, {
        "client_id": cid(), "kind": "sampling", "sample_no": dt.routine.sample_no, "task_code": dt.task.code,
        "act_at": iso(utcnow() - timedelta(minutes=1)), "gps_status": "ok", "latitude": str(latitude),
        "longitude": str(longitude), "accuracy_m": "6.5"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["warning"] is True and 440 <= Decimal(body["distance_m"]) <= 460
    assert body["notice"]["code"] == "distance_needs_justification"
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert 'data-missing="justification"' in page.text
    assert 'data-gps="ok"' in page.text and "6.5" in page.text


def test_gps_refused_by_the_user_is_recorded_as_such(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    response = post_entry(client, signed_in, {
        "client_id": cid(), "kind": "sampling", "sample_no": dt.routine.sample_no, "task_code": dt.task.code,
        "act_at": iso(utcnow()), "gps_status": "denied"})
    assert response.status_code == 201, response.text
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert 'data-gps="denied"' in page.text


@pytest.mark.parametrize("body, code", [
    ({"kind": "sampling", "act_at": "yesterday at noon", "gps_status": "denied"}, "malformed_act_time"),
    ({"kind": "sampling", "act_at": "2026-05-01T09:30:00", "gps_status": "denied"}, "act_time_without_offset"),
    ({"kind": "field_test", "parameter": "pH", "value": 7.2, "unit": "pH", "instrument": "XC-PH-001"},
     "malformed_field_entry"),
    ({"kind": "sampling", "gps_status": "ok", "latitude": "45.7", "longitude": "126.6"}, "gps_fix_incomplete"),
    ({"kind": "teleport"}, "unknown_field_entry_kind"),
    ({"kind": "container", "client_id": "x"}, "bad_client_id"),
])
def test_malformed_entries_are_refused_as_problem_json(client, db, dispatched_task, signed_in, body, code):
    dt = dispatched_task
    sent = {"client_id": cid(), "sample_no": dt.routine.sample_no, "act_at": iso(utcnow()), **body}
    response = post_entry(client, signed_in, sent)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert entries(db) == 0


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_an_entry_is_refused(client, dispatched_task, signed_in, content):
    response = client.post("/field/entries", content=content, headers={
        "X-CSRF-Token": signed_in, "Accept": "application/json", "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "malformed_field_entry"


def test_an_entry_needs_the_csrf_token(client, db, dispatched_task, signed_in):
    response = client.post("/field/entries", json=scan_body(dispatched_task, dispatched_task.barcodes()[0]),
                           headers={"Accept": "application/json"})
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    assert entries(db) == 0


def test_the_inspector_is_refused_every_field_post(client, db, dispatched_task):
    token = login(client, "inspector")
    dt = dispatched_task
    response = post_entry(client, token, scan_body(dt, dt.barcodes()[0]))
    assert response.status_code == 403 and response.json()["code"] == "inspector_read_only"
    photo = client.post("/field/photos", data={"sample_no": dt.routine.sample_no, "client_id": cid()},
                        files={"photo": ("p.jpg", jpeg_bytes(), "image/jpeg")},
                        headers={"X-CSRF-Token": token, "Accept": "application/json"})
    assert photo.status_code == 403
    sign = client.post(f"/field/samples/{dt.routine.sample_no}/sign", data={"password": PASSWORD, "csrf_token": token})
    assert sign.status_code == 403
    assert entries(db) == 0


def test_the_sampler_of_another_task_is_refused(client, db, dispatched_task):
    make_user(db, "sampler-2", "sampler")
    token = login(client, "sampler-2")
    dt = dispatched_task
    response = post_entry(client, token, scan_body(dt, dt.barcodes()[0]))
    assert response.status_code == 403 and response.json()["code"] == "not_your_sample"
    assert entries(db) == 0
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert page.status_code == 200 and 'id="scan-form"' not in page.text  # read only for them


# ---------------------------------------------------------------- without JavaScript


def test_a_plain_form_scan_goes_back_to_the_task_page(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    barcode = dt.barcodes()[1]
    response = client.post("/field/entries", data={
        "csrf_token": signed_in, "kind": "container", "task_code": dt.task.code, "client_id": cid(),
        "barcode": barcode.lower()})
    assert response.status_code == 303
    assert response.headers["location"] == f"/field/tasks/{dt.task.code}#sample-{dt.routine.sample_no}"
    assert container(db, barcode).state == "filled"


def test_a_plain_form_refusal_shows_the_task_page_with_the_message(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    response = client.post("/field/entries", data={
        "csrf_token": signed_in, "kind": "container", "task_code": dt.task.code, "client_id": cid(),
        "barcode": "RM26-00012"})
    assert response.status_code == 422
    assert 'data-code="not_a_container"' in response.text and 'id="scan-form"' in response.text
    assert entries(db) == 0


def test_a_plain_form_for_several_samples_records_one_entry_each(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    form = {"csrf_token": signed_in, "kind": "observation", "task_code": dt.task.code, "client_id": uuid.uuid4().hex,
            "weather": "cloudy", "air_temperature": "21.5", "observations": "水色微黄",
            "sample_no": [s.sample_no for s in dt.samples]}
    assert client.post("/field/entries", data=form).status_code == 303
    assert entries(db) == len(dt.samples)
    assert client.post("/field/entries", data=form).status_code == 303  # the same form again: recorded once
    assert entries(db) == len(dt.samples)


# ---------------------------------------------------------------- photos and signing


def test_a_photo_is_stored_once_by_its_client_id(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    client_id = cid()
    form = {"sample_no": dt.routine.sample_no, "client_id": client_id, "caption": "断面上游"}
    headers = {"X-CSRF-Token": signed_in, "Accept": "application/json"}
    content = jpeg_bytes(gps=north_of_site(15))
    first = client.post("/field/photos", data=form, files={"photo": ("p.jpg", content, "image/jpeg")},
                        headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "recorded" and first.json()["thumbnail_url"]
    again = client.post("/field/photos", data=form, files={"photo": ("p.jpg", content, "image/jpeg")},
                        headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(SamplePhoto)) == 1
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert first.json()["thumbnail_url"] in page.text


def test_a_file_that_is_not_a_photo_is_refused(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    response = client.post("/field/photos", data={"sample_no": dt.routine.sample_no, "client_id": cid()},
                           files={"photo": ("notes.txt", b"just text", "text/plain")},
                           headers={"X-CSRF-Token": signed_in, "Accept": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "photo_not_an_image"
    png = client.post("/field/photos", data={"sample_no": dt.routine.sample_no, "client_id": cid()},
                      files={"photo": ("p.png", png_bytes(), "image/png")},
                      headers={"X-CSRF-Token": signed_in, "Accept": "application/json"})
    assert png.status_code == 201


def test_signing_a_complete_record_and_a_wrong_password(client, db, dispatched_task, signed_in, store,
                                                        field_instrument):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    page = client.get(f"/field/tasks/{dt.task.code}")
    assert f'action="/field/samples/{dt.routine.sample_no}/sign"' in page.text
    wrong = client.post(f"/field/samples/{dt.routine.sample_no}/sign",
                        data={"password": "not-my-password", "csrf_token": signed_in})
    assert wrong.status_code in (401, 403, 409, 422) and 'id="scan-form"' in wrong.text
    assert 'class="alert error"' in wrong.text
    right = client.post(f"/field/samples/{dt.routine.sample_no}/sign",
                        data={"password": PASSWORD, "csrf_token": signed_in})
    assert right.status_code == 303
    assert right.headers["location"].startswith(f"/field/tasks/{dt.task.code}?signed={dt.routine.sample_no}")
    with db.reading() as session:
        assert session.scalars(select(Sample.state).where(Sample.id == dt.routine.id)).one() == "collected"
    shown = client.get(right.headers["location"])
    assert "已签署" in shown.text or "signed" in shown.text


def test_signing_an_incomplete_record_lists_what_is_missing(client, db, dispatched_task, signed_in):
    dt = dispatched_task
    response = client.post(f"/field/samples/{dt.routine.sample_no}/sign",
                           data={"password": PASSWORD, "csrf_token": signed_in})
    assert response.status_code == 409
    assert 'data-code="field_record_incomplete"' in response.text
    with db.reading() as session:
        assert session.scalars(select(Sample.state).where(Sample.id == dt.routine.id)).one() == "registered"


# ---------------------------------------------------------------- queries and weight


def test_query_counts_of_the_pages_do_not_grow_with_the_work_done(client, db, dispatched_task, signed_in,
                                                                 count_queries):
    dt = dispatched_task
    with count_queries() as before:
        assert client.get(f"/field/tasks/{dt.task.code}").status_code == 200
    for barcode in dt.barcodes():
        post_entry(client, signed_in, scan_body(dt, barcode))
    post_entry(client, signed_in, {"client_id": cid(), "kind": "observation", "sample_no": dt.routine.sample_no,
                                   "act_at": iso(utcnow()), "weather": "sunny", "observations": "清澈"})
    with count_queries() as after:
        assert client.get(f"/field/tasks/{dt.task.code}").status_code == 200
    assert after.count == before.count
    assert after.count <= 16, after.statements  # 15 today: the frame and the records, none per sample
    with count_queries() as today:
        assert client.get("/field").status_code == 200
    assert today.count <= 8, today.statements


def test_the_task_page_costs_the_same_queries_for_one_sample_as_for_five(client, db, users, site, sampler,
                                                                       registrar, dispatched_task, signed_in,
                                                                       count_queries):
    """The field records of a task's samples are read together (field_records), not one by one."""
    manager = users["technical_manager"]
    one = dispatch(db, registrar, make_task(db, manager, site, sampler=sampler), site, sampler)
    five = dispatch(db, registrar, make_task(db, manager, site, sampler=sampler, field_blanks=2,
                                             field_duplicates=2), site, sampler)
    assert (len(one.samples), len(five.samples)) == (1, 5)
    for dt in (one, five):  # with entries on every sample, so every per-sample read has rows
        for sample in dt.samples:
            post_entry(client, signed_in, scan_body(dt, dt.barcodes(sample)[0], sample))
    counts = {}
    for dt in (one, dispatched_task, five):
        with count_queries() as seen:
            assert client.get(f"/field/tasks/{dt.task.code}").status_code == 200
        counts[len(dt.samples)] = seen.count
    assert counts[1] == counts[3] == counts[5], counts


def test_the_first_load_of_the_task_page_is_under_100_kb(client, dispatched_task, signed_in):
    """HTML + every stylesheet and script the page references (html5-qrcode is loaded only when
    the camera button is tapped, photos are not part of the first load)."""
    page = client.get(f"/field/tasks/{dispatched_task.task.code}")
    total = len(page.content)
    assets = (re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
              + re.findall(r'<script src="([^"]+)"', page.text))
    assert set(assets) == {"/static/field.css", "/static/field.js", "/static/vendor/idb-keyval/umd.js"}
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        total += len(response.content)
    assert total < PAGE_BUDGET, f"first load is {total} bytes"


def test_the_field_pages_need_sign_in(client, dispatched_task):
    response = client.get("/field")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_a_task_of_another_day_is_reachable_from_its_day(client, db, users, site, sampler, registrar, signed_in):
    tomorrow = db.calendar.today() + timedelta(days=1)
    task = make_task(db, users["technical_manager"], site, sampler=sampler, scheduled_on=tomorrow)
    dispatch(db, registrar, task, site, sampler)
    page = client.get(f"/field?day={tomorrow.isoformat()}")
    assert task.code in page.text
    with db.reading() as session:
        assert session.get(SamplingTask, task.id).status == "dispatched"
