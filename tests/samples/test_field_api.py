"""The field-record JSON API with real bearer tokens: one entry or a queue (applied in order,
each recorded, duplicate or refused with its problem), Idempotency-Key for entries without a
client id, numbers as Decimal, photos (multipart, download, thumbnail), the record and the
signature; the field test usage source for instrument impact assessments."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.core import audit
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.instruments.usage import usages_between
from app.people import service as people
from app.samples.models import FieldEntry, Sample, SampleKind
from app.samples.usage import FieldTestUsages
from tests.conftest import PASSWORD
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import (
    cid,
    complete_record,
    field_test,
    jpeg_bytes,
    north_of_site,
    reload,
    scan,
)


@pytest.fixture
def api(app):
    """A client without cookies: it acts with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def bearer(db, user) -> dict[str, str]:
    with db.transaction() as session:
        token = people.create_token(session, None, user.id, "field phone", check_permission=False)[1]
    return {"Authorization": f"Bearer {token}"}


def when(minutes_ago: int = 10) -> str:
    return (utcnow() - timedelta(minutes=minutes_ago)).astimezone(utcnow().astimezone().tzinfo).isoformat()


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def entry_count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(FieldEntry))


def test_one_entry_is_recorded_once_with_its_numbers_exact(db, api, dispatched_task):
    dt = dispatched_task
    headers = bearer(db, dt.sampler)
    body = {"client_id": cid(), "sample_no": dt.routine.sample_no, "kind": "sampling", "act_at": when(),
            "gps_status": "ok", "latitude": 45.7733, "longitude": "126.617450", "accuracy_m": 6}
    first = api.post("/api/v1/field-entries", json=body, headers=headers)
    assert first.status_code == 201, first.text
    [result] = first.json()["results"]
    assert result["status"] == "recorded" and result["entry"]["details"]["latitude"] == "45.7733"
    assert result["entry"]["details"]["gps_status"] == "ok" and "submitted" not in result["entry"]["details"]
    again = api.post("/api/v1/field-entries", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["results"][0]["status"] == "duplicate"
    assert again.json()["results"][0]["entry"]["id"] == result["entry"]["id"] and entry_count(db) == 1
    with db.reading() as session:
        stored = session.get(FieldEntry, result["entry"]["id"])
        assert '"latitude":"45.7733"' in stored.payload
    changed = api.post("/api/v1/field-entries", json={**body, "gps_status": "denied", "latitude": None,
                                                      "longitude": None, "accuracy_m": None}, headers=headers)
    problem(changed, 409, "client_id_reused")


def test_a_queue_is_applied_in_order_and_a_refused_entry_loses_nothing_else(
        db, api, dispatched_task, field_instrument):
    dt = dispatched_task
    headers = bearer(db, dt.sampler)
    routine = dt.routine.sample_no
    queue = [
        {"client_id": cid(), "sample_no": routine, "kind": "sampling", "act_at": when(20), "gps_status": "denied"},
        {"client_id": cid(), "sample_no": routine, "kind": "field_test", "act_at": when(15), "parameter": "pH",
         "value": "15.2", "unit": "pH", "instrument": "XC-PH-001"},
        {"client_id": cid(), "sample_no": routine, "kind": "field_test", "act_at": when(14), "parameter": "pH",
         "value": 7.62, "unit": "pH", "instrument": "XC-PH-001"},
        {"client_id": cid(), "sample_no": routine, "kind": "container", "act_at": when(12),
         "barcode": dt.barcodes()[0], "task_code": dt.task.code},
        {"client_id": cid(), "sample_no": routine, "kind": "container", "act_at": when(11),
         "barcode": dt.barcodes()[0]},
        {"client_id": cid(), "kind": "observation"},
        "not an entry",
    ]
    response = api.post("/api/v1/field-entries", json=queue, headers={**headers, "Accept-Language": "en"})
    assert response.status_code == 200, response.text
    answer = response.json()
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["recorded", "refused", "recorded", "recorded", "duplicate", "refused", "refused"]
    assert (answer["recorded"], answer["duplicate"], answer["refused"]) == (3, 1, 3)
    out_of_range = answer["results"][1]["problem"]
    assert out_of_range["code"] == "field_value_out_of_range" and out_of_range["status"] == 422
    assert "0…14" in out_of_range["message_en"] and out_of_range["message_zh"]
    assert answer["results"][2]["entry"]["value"] == "7.62"
    assert answer["results"][4]["notice"]["code"] == "container_already_filled"
    assert answer["results"][5]["problem"]["code"] == "invalid_field_entry"
    assert "sample_no" in answer["results"][5]["problem"]["message_en"]
    assert entry_count(db) == 3
    # the refused entries' savepoints took none of the recorded ones' audit events with them
    with db.reading() as session:
        recorded = session.scalars(select(AuditEvent.after).where(AuditEvent.action == "field_entry.recorded")).all()
        assert len(recorded) == 3, recorded
        assert audit.verify_chain(session, None).ok
    # the same queue again (the network dropped before the answer came): nothing new
    again = api.post("/api/v1/field-entries", json={"entries": queue}, headers=headers).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "refused", "duplicate", "duplicate",
                                                       "duplicate", "refused", "refused"]
    assert entry_count(db) == 3


def test_an_idempotency_key_stands_in_for_missing_client_ids(db, api, dispatched_task):
    dt = dispatched_task
    headers = {**bearer(db, dt.sampler), "Idempotency-Key": "queue-2026-05-01-a"}
    queue = [{"sample_no": dt.routine.sample_no, "kind": "observation", "act_at": when(), "weather": "cloudy"},
             {"sample_no": dt.routine.sample_no, "kind": "observation", "act_at": when(), "observations": "有油膜"}]
    first = api.post("/api/v1/field-entries", json=queue, headers=headers).json()
    again = api.post("/api/v1/field-entries", json=queue, headers=headers).json()
    assert [r["status"] for r in first["results"]] == ["recorded", "recorded"]
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert first["results"][0]["client_id"] != first["results"][1]["client_id"] and entry_count(db) == 2
    without = api.post("/api/v1/field-entries", json=queue[0], headers=bearer(db, dt.sampler))
    problem(without, 422, "bad_client_id")
    problem(api.post("/api/v1/field-entries", content=b"weather=rain", headers={
        **bearer(db, dt.sampler), "content-type": "application/x-www-form-urlencoded"}), 422, "json_expected")
    problem(api.post("/api/v1/field-entries", json=[{}] * 501, headers=bearer(db, dt.sampler)), 422,
            "too_many_field_entries")


def test_a_single_refused_entry_answers_with_its_problem(db, api, dispatched_task, users):
    dt = dispatched_task
    body = {"client_id": cid(), "sample_no": dt.routine.sample_no, "kind": "sampling",
            "act_at": (utcnow() + timedelta(hours=2)).isoformat(), "gps_status": "denied"}
    found = problem(api.post("/api/v1/field-entries", json=body, headers=bearer(db, dt.sampler)), 422,
                    "act_time_in_future")
    assert "实验室时间" in found["detail"]
    problem(api.post("/api/v1/field-entries", json=body, headers=bearer(db, users["inspector"])), 403,
            "inspector_read_only")
    assert api.post("/api/v1/field-entries", json=body).status_code in (401, 403)  # no token, no cookie
    assert entry_count(db) == 0


def test_photos_are_uploaded_once_and_served_with_their_thumbnail(db, api, dispatched_task, users):
    dt = dispatched_task
    headers = bearer(db, dt.sampler)
    content = jpeg_bytes(gps=north_of_site(30))
    url = f"/api/v1/samples/{dt.routine.sample_no}/photos"
    files = {"photo": ("IMG_0001.jpg", content, "image/jpeg")}
    first = api.post(url, files=files, data={"client_id": "photo-abc-001", "caption": "采样点上游"}, headers=headers)
    assert first.status_code == 201, first.text
    photo = first.json()
    assert photo["created"] and photo["caption"] == "采样点上游" and photo["exif_latitude"].startswith("45.77")
    again = api.post(url, files=files, data={"client_id": "photo-abc-001"}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == photo["id"] and not again.json()["created"]
    reader = bearer(db, users["analyst"])
    full = api.get(photo["url"], headers=reader)
    assert full.status_code == 200 and full.content == content and full.headers["content-type"] == "image/jpeg"
    assert api.get(photo["url"], headers={**reader, "If-None-Match": full.headers["etag"]}).status_code == 304
    thumb = api.get(photo["thumbnail_url"], headers=reader)
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) == 320
    other = dt.of_kind(SampleKind.FIELD_BLANK)[0]
    problem(api.get(f"/api/v1/samples/{other.sample_no}/photos/{photo['id']}", headers=reader), 404,
            "photo_not_found")
    problem(api.post(url, files={"photo": ("notes.txt", b"just text", "text/plain")},
                     data={"client_id": cid()}, headers=headers), 422, "photo_not_an_image")
    problem(api.post(url, data={"client_id": cid()}, headers=headers), 422, "photo_missing")
    keyed = api.post(url, files={"photo": ("b.png", jpeg_bytes(color=(3, 3, 3)), "image/png")},
                     headers={**headers, "Idempotency-Key": "photo-key-0001"})
    assert keyed.status_code == 201 and keyed.json()["client_id"].startswith("k")


def test_the_record_and_the_signature_through_the_api(db, api, dispatched_task, store, field_instrument, users):
    dt = dispatched_task
    headers = bearer(db, dt.sampler)
    record_url = f"/api/v1/samples/{dt.routine.sample_no}/field-record"
    empty = api.get(record_url, headers=headers).json()
    assert empty["can_sign"] is False and {m["code"] for m in empty["missing"]} >= {"sampling_time", "photo"}
    problem(api.post(f"/api/v1/samples/{dt.routine.sample_no}/sign", json={"password": PASSWORD}, headers=headers),
            409, "field_record_incomplete")
    complete_record(db, dt, dt.routine, store)
    problem(api.post(f"/api/v1/samples/{dt.routine.sample_no}/sign", json={"password": "wrong"}, headers=headers),
            403, "wrong_signing_password")
    signed = api.post(f"/api/v1/samples/{dt.routine.sample_no}/sign", json={"password": PASSWORD}, headers=headers)
    assert signed.status_code == 201, signed.text
    assert signed.json()["state"] == "collected" and signed.json()["signature"]["meaning"] == "sampled"
    shown = api.get(record_url, headers=bearer(db, users["analyst"])).json()
    assert shown["kind"] is None  # the analyst stays blind to what is field QC
    assert shown["signed_revision"] == 1 and shown["revisions"][0]["signature"]["intact"] is True
    assert {t["parameter"]: t["value"] for t in shown["field_tests"]} == {"WT": "18.4", "pH": "7.62", "DO": "8.15"}
    assert shown["gps"]["status"] == "ok" and Decimal(shown["gps"]["distance_m"]) < 25
    assert api.get(record_url, headers=headers).json()["kind"] == "routine"
    problem(api.get("/api/v1/samples/NOPE-1/field-record", headers=headers), 404, "sample_not_found")


def test_the_samples_page_shows_the_field_record(db, client, dispatched_task, store, field_instrument):
    from tests.conftest import login

    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    login(client, "sampler")
    page = client.get(f"/samples/{dt.routine.sample_no}")
    assert page.status_code == 200, page.text
    assert 'id="field-record-' in page.text and "XC-PH-001" in page.text and "/thumbnail" in page.text
    assert 'data-missing' not in page.text


def test_field_tests_are_listed_for_an_instruments_impact_assessment_in_one_query(
        db, dispatched_task, field_instrument, count_queries):
    dt = dispatched_task
    field_test(db, dt.sampler, dt.routine, "pH", "7.62", "pH")
    field_test(db, dt.sampler, dt.routine, "WT", "18.4", "°C")
    scan(db, dt.sampler, dt.routine, dt.barcodes()[0])
    with db.reading() as session:
        with count_queries() as queries:
            found = FieldTestUsages().usages(session, field_instrument.id, None, utcnow())
        assert queries.count == 1
        assert [(u.source, u.parameter, u.sample_no) for u in found] == [
            ("field_test", "pH", dt.routine.sample_no), ("field_test", "WT", dt.routine.sample_no)]
        assert found[0].description == "pH = 7.62 pH" and found[0].url.startswith("/samples/")
        assert FieldTestUsages().usages(session, field_instrument.id, utcnow(), utcnow()) == []
        assert {u.source for u in usages_between(session, field_instrument.id, None, utcnow())} == {"field_test"}
    assert reload(db, Sample, dt.routine.id).kind == SampleKind.ROUTINE.value
