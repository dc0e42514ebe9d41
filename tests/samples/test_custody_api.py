"""The custody API: POST /api/v1/custody/scans (201 with the event, K converted to °C, problem
JSON for bad scans, times and temperatures; Idempotency-Key replay, reuse with another body 409,
a concurrent double submit on PostgreSQL acting once), who may post (an inspector may not), and
GET /api/v1/samples/{sample_no}/custody returning the chain per container and its gaps."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.people import service as people
from app.people.models import RoleGrant
from app.samples.lab_models import CustodyEvent, CustodyEventContainer
from tests.conftest import make_user
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes, container

URL = "/api/v1/custody/scans"


@pytest.fixture(autouse=True)
def roles_held_for_a_while(db, users):
    backdate_roles(db)


def backdate_roles(db) -> None:
    with db.transaction() as session:
        session.execute(update(RoleGrant).values(valid_from=utcnow() - timedelta(days=30)))


def bearer(db, user) -> dict[str, str]:
    with db.transaction() as session:
        token = people.create_token(session, None, user.id, "scanner", check_permission=False)[1]
    return {"Authorization": f"Bearer {token}"}


def iso(minutes_ago: int) -> str:
    return (utcnow() - timedelta(minutes=minutes_ago)).astimezone(UTC).isoformat()


def counts(db) -> tuple[int, int, int]:
    with db.reading() as session:
        return (session.scalar(select(func.count()).select_from(CustodyEvent)),
                session.scalar(select(func.count()).select_from(CustodyEventContainer)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def body(dt, **changes) -> dict:
    return {"barcodes": dt.barcodes(), "taker": "custodian", "occurred_at": iso(5),
            "cooler_temp": {"value": 277.15, "unit": "K"}, "seal_no": "F-100", "seal_intact": True,
            "place": "松花江大桥", "note": "冷藏箱", **changes}


def test_a_scan_is_recorded_and_answered_with_the_event(client, db, users, collected_task):
    dt = collected_task
    headers = {**bearer(db, dt.sampler), "Idempotency-Key": "scan-key-00000001"}
    response = client.post(URL, json=body(dt), headers=headers)
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["kind"] == "handover" and event["cooler_temp_c"] == "4"
    assert event["giver"]["username"] == "sampler" and event["taker"]["username"] == "custodian"
    assert event["taker"]["place"] == "松花江大桥" and event["seal_intact"] is True
    assert sorted(c["barcode"] for c in event["containers"]) == sorted(dt.barcodes())
    assert event["gaps"] == [] and event["client_id"].startswith("k")
    assert all(container(db, b).holder_id == users["custodian"].id for b in dt.barcodes())
    with db.reading() as session:
        assert session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq.desc())).first() == \
            "sample.in_transit"


def test_a_retry_replays_and_a_reused_key_with_another_body_is_409(client, db, users, collected_task):
    dt = collected_task
    headers = {**bearer(db, dt.sampler), "Idempotency-Key": "scan-key-00000002"}
    sent = body(dt)
    first = client.post(URL, json=sent, headers=headers)
    assert first.status_code == 201
    before = counts(db)
    again = client.post(URL, json=sent, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replay"] == "true"
    assert again.json() == first.json()
    assert counts(db) == before
    other = client.post(URL, json={**sent, "note": "另一件事"}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert counts(db) == before


@pytest.mark.parametrize(("changes", "status", "code"), [
    ({"barcodes": ["CT26-1234"]}, 422, "malformed_barcode"),
    ({"barcodes": ["RM26-00001"]}, 422, "not_a_container"),
    ({"occurred_at": "2020-01-01T00:00:00+08:00"}, 422, "act_before_sampling"),
    ({"occurred_at": (utcnow() + timedelta(hours=2)).isoformat()}, 422, "act_in_future"),
    ({"occurred_at": "2026-05-01T09:30:00"}, 422, "custody_time_without_offset"),
    ({"cooler_temp": {"value": "4000", "unit": "°C"}}, 422, "temperature_out_of_range"),
    ({"cooler_temp": {"value": "4", "unit": "rankine"}}, 422, "unknown_temperature_unit"),
    ({"taker": "sampler"}, 422, "same_party_both_sides"),
    ({"taker": "nobody-here"}, 422, "custody_user_unknown"),
    ({"taker": "checker"}, 409, "custody_taker_not_allowed"),
    ({"giver": "custodian", "taker": "analyst"}, 403, "handover_actor_not_party"),
    ({"unknown_field": 1}, 422, "invalid_custody_scan"),
    ({"barcodes": "CT26-00000001"}, 422, "invalid_custody_scan"),
    ({"note": "x" * 501}, 422, "invalid_custody_scan"),
])
def test_refusals_are_problem_json_and_change_nothing(client, db, users, collected_task, changes, status, code):
    dt = collected_task
    headers = bearer(db, dt.sampler)
    before = counts(db)
    response = client.post(URL, json=body(dt, **changes), headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert counts(db) == before


def test_an_unknown_barcode_and_a_wrong_check_digit(client, db, users, collected_task):
    dt = collected_task
    good = dt.barcodes()[0]
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    response = client.post(URL, json=body(dt, barcodes=[good, wrong]), headers=bearer(db, dt.sampler))
    assert response.status_code == 422 and response.json()["code"] == "wrong_check_digit"
    from app.core.codes import with_check_digit

    response = client.post(URL, json=body(dt, barcodes=[with_check_digit("CT26-9999999")]),
                           headers=bearer(db, dt.sampler))
    assert response.status_code == 404 and response.json()["code"] == "container_not_found"


def test_who_may_post(client, db, users, collected_task):
    dt = collected_task
    response = client.post(URL, json=body(dt, giver="inspector"), headers=bearer(db, users["inspector"]))
    assert response.status_code == 403 and response.json()["code"] == "inspector_read_only"
    response = client.post(URL, json=body(dt), headers=bearer(db, users["checker"]))
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert client.post(URL, json=body(dt)).status_code in (401, 403)  # no token: CSRF or sign-in first
    response = client.post(URL, content="barcodes=x", headers={**bearer(db, dt.sampler),
                                                               "Content-Type": "text/plain"})
    assert response.status_code == 422 and response.json()["code"] == "json_expected"


def test_the_chain_and_its_gaps(client, db, users, collected_task):
    dt = collected_task
    driver = make_user(db, "driver", "sampler")
    backdate_roles(db)
    sampler_headers = bearer(db, dt.sampler)
    assert client.post(URL, json=body(dt, taker="driver", occurred_at=iso(8)),
                       headers=sampler_headers).status_code == 201
    # the custodian writes the sampler gave them one container: the driver had it
    response = client.post(URL, json=body(dt, barcodes=dt.barcodes()[:1], giver="sampler", taker="custodian",
                                          occurred_at=iso(3)), headers=bearer(db, users["custodian"]))
    assert response.status_code == 201 and response.json()["gaps"] == dt.barcodes()[:1]
    chain = client.get(f"/api/v1/samples/{dt.routine.sample_no.lower()}/custody", headers=bearer(db, driver))
    assert chain.status_code == 200
    data = chain.json()
    assert data["sample_no"] == dt.routine.sample_no and data["custody_gap"] is True
    assert [c["barcode"] for c in data["containers"]] == dt.barcodes()
    first = data["containers"][0]
    assert first["start"]["username"] == "sampler" and first["current"]["username"] == "custodian"
    assert [link["taker"]["username"] for link in first["links"]] == ["driver", "custodian"]
    assert first["links"][0]["cooler_temp_c"] == "4" and first["links"][0]["seal_no"] == "F-100"
    [gap] = data["gaps"]
    assert gap["barcode"] == dt.barcodes()[0] and gap["reasons"] == ["not_from_holder"]
    assert gap["holder_before"]["username"] == "driver" and gap["giver"]["username"] == "sampler"
    assert client.get("/api/v1/samples/NOPE-1/custody", headers=sampler_headers).status_code == 404
    inspector = client.get(f"/api/v1/samples/{dt.routine.sample_no}/custody", headers=bearer(db, users["inspector"]))
    assert inspector.status_code == 200


def test_a_concurrent_double_submit_acts_once(client, pg_db, users, collected_task):
    dt = collected_task
    headers = {**bearer(pg_db, dt.sampler), "Idempotency-Key": "scan-race-00000001"}
    sent = body(dt, barcodes=all_barcodes(dt))
    start = threading.Barrier(2)
    answers: list = [None, None]

    def post(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = client.post(URL, json=sent, headers=headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers)
    assert sorted(a.status_code for a in answers) == [201, 201], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(CustodyEvent)) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "custody.handover")) == 1
    assert Decimal(answers[0].json()["cooler_temp_c"]) == Decimal("4")
