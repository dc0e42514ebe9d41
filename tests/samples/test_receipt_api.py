"""The receipt JSON API: open a delivery, scans one at a time, checks, signing with the password,
reading a delivery; idempotency keys (a retry answers the first response, another body with the
same key is refused); refusals as problem JSON changing nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.people import service as people
from app.samples.lab_models import Delivery, DeliveryScan, ReceiptCheck, SampleReceipt
from tests.conftest import PASSWORD
from tests.samples.lab_fixtures import *  # noqa: F403
from tests.samples.lab_fixtures import all_barcodes

BASE = "/api/v1/receipts"


@pytest.fixture
def api(app):
    with TestClient(app, follow_redirects=False) as client:
        yield client


def token_of(db, user) -> dict[str, str]:
    with db.transaction() as session:
        secret = people.create_token(session, None, user.id, "scanner-station", check_permission=False)[1]
    return {"Authorization": f"Bearer {secret}"}


def count(db, table) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_a_cooler_received_through_the_api(db, api, users, collected_task):
    dt = collected_task
    auth = token_of(db, users["custodian"])
    opened = api.post(BASE, json={"code": dt.task.code, "cooler_temp": "3.8", "seal_no": "F-7", "seal_intact": True},
                      headers={**auth, "Idempotency-Key": "open-0001"})
    assert opened.status_code == 201, opened.text
    code = opened.json()["code"]
    assert opened.json()["cooler_temp_c"] == "3.8" and len(opened.json()["missing"]) == 9
    again = api.post(BASE, json={"code": dt.task.code, "cooler_temp": "3.8", "seal_no": "F-7", "seal_intact": True},
                     headers={**auth, "Idempotency-Key": "open-0001"})
    assert again.status_code == 201 and again.headers["Idempotent-Replay"] == "true"
    assert again.json()["code"] == code and count(db, Delivery) == 1
    barcodes = all_barcodes(dt)
    for n, barcode in enumerate(barcodes[:-1]):
        scanned = api.post(f"{BASE}/{code}/scans", json={"barcode": barcode}, headers={**auth, "Idempotency-Key":
                                                                                       f"scan-{n:04d}"})
        assert scanned.status_code == 201 and scanned.json()["expected"] is True
    retry = api.post(f"{BASE}/{code}/scans", json={"barcode": barcodes[0]}, headers={**auth, "Idempotency-Key":
                                                                                     "scan-0000"})
    assert retry.status_code == 201 and retry.headers["Idempotent-Replay"] == "true"
    rescan = api.post(f"{BASE}/{code}/scans", json={"barcode": barcodes[0]}, headers=auth)
    assert rescan.status_code == 200 and rescan.json()["created"] is False
    conflict = api.post(f"{BASE}/{code}/scans", json={"barcode": barcodes[1]}, headers={**auth, "Idempotency-Key":
                                                                                        "scan-0000"})
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    assert count(db, DeliveryScan) == 8
    shown = api.get(f"{BASE}/{code}", headers=auth).json()
    assert shown["scanned"] == 8 and shown["missing"] == [barcodes[-1]] and shown["unexpected"] == []
    for sample in dt.samples:
        decided = api.post(f"{BASE}/{code}/checks", json={"sample_no": sample.sample_no, "decision": "accept",
                                                         "arrival_temp": 4, "preservation_ok": True},
                           headers={**auth, "Idempotency-Key": f"check-{sample.id:05d}"})
        assert decided.status_code == 201 and decided.json()["arrival_temp_c"] == "4"
    assert count(db, ReceiptCheck) == 3
    wrong = api.post(f"{BASE}/{code}/sign", json={"password": "nope"}, headers=auth)
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_signing_password"
    signed = api.post(f"{BASE}/{code}/sign", json={"password": PASSWORD}, headers=auth)
    assert signed.status_code == 200 and signed.json()["state"] == "signed"
    assert {s["state"] for s in signed.json()["samples"]} == {"received"}
    assert count(db, SampleReceipt) == 3


@pytest.mark.parametrize(("barcode", "status", "code"), [
    ("CT26-0000001", 422, "malformed_barcode"),
    ("no-such-thing", 422, "malformed_barcode"),
    ("TK26-00001", 422, "not_a_container"),
])
def test_bad_scans_are_problem_json_and_change_nothing(db, api, users, collected_task, barcode, status, code):
    auth = token_of(db, users["custodian"])
    delivery = api.post(BASE, json={"sampler": "sampler"}, headers=auth).json()["code"]
    before = count(db, AuditEvent)
    answer = api.post(f"{BASE}/{delivery}/scans", json={"barcode": barcode}, headers={**auth,
                                                                                     "Idempotency-Key": "bad-scan-1"})
    assert answer.status_code == status and answer.json()["code"] == code
    assert count(db, DeliveryScan) == 0 and count(db, AuditEvent) == before
    # the key was not used up by the refusal: a good scan may take it
    good = api.post(f"{BASE}/{delivery}/scans", json={"barcode": collected_task.barcodes()[0]},
                    headers={**auth, "Idempotency-Key": "bad-scan-1"})
    assert good.status_code == 201


def test_refusals_of_the_api(db, api, users, collected_task):
    auth = token_of(db, users["custodian"])
    assert api.post(BASE, json={}, headers=auth).json()["code"] == "delivery_source_required"
    assert api.post(BASE, json={"sampler": "sampler", "cooler_temp": "300"}, headers=auth).json()["code"] == \
        "temperature_out_of_range"
    assert api.post(BASE, json={"sampler": "sampler", "cooler_temp": 4.5, "cooler_temp_unit": "°X"},
                    headers=auth).json()["code"] == "unknown_temperature_unit"
    assert api.get(f"{BASE}/RC26-99999", headers=auth).status_code == 404
    assert api.post(f"{BASE}/RC26-99999/scans", json={"barcode": "x"}, headers=auth).status_code == 404
    delivery = api.post(BASE, json={"sampler": "sampler"}, headers=auth).json()["code"]
    no_reason = api.post(f"{BASE}/{delivery}/checks", json={"sample_no": collected_task.routine.sample_no,
                                                            "decision": "reject"}, headers=auth)
    assert no_reason.status_code == 409 and no_reason.json()["code"] == "receipt_sample_not_scanned"
    analyst = token_of(db, users["analyst"])
    assert api.post(BASE, json={"sampler": "sampler"}, headers=analyst).status_code == 403
    assert api.get(f"{BASE}/{delivery}", headers=analyst).status_code == 200
    assert api.post(f"{BASE}/{delivery}/sign", json={"password": PASSWORD}, headers=auth).json()["code"] == \
        "receipt_nothing_scanned"
