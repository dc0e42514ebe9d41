"""The samples JSON API with real API tokens: registering one or a list (idempotent with an
Idempotency-Key: the same body answers the first response, another body is refused), the
paginated list with containers and barcodes (constant query count), one sample, its label PDF,
and container lookups with problem JSON for every bad barcode."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.codes import with_check_digit
from app.people import service as people
from app.samples.models import Sample, SampleKind
from tests.samples.conftest import dispatch, make_task

BASE = "/api/v1/samples"


@pytest.fixture
def api(app):
    """A client without cookies: whatever it does, it does with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def token_of(db, user) -> dict[str, str]:
    with db.transaction() as session:
        secret = people.create_token(session, None, user.id, "lims-client", check_permission=False)[1]
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def registrar_token(db, registrar) -> dict[str, str]:
    return token_of(db, registrar)


def body(**changes) -> dict:
    data = {"client_name": "江城化工有限公司", "location_text": "总排口", "parameters": ["COD", "NH3-N", "Cu"],
            "scheduled_on": "2026-03-12"}
    data.update(changes)
    return data


def count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Sample))


# ---------------------------------------------------------------- registering


def test_register_one_and_a_list(api, db, registrar_token, sampler):
    one = api.post(BASE, json=body(sampler="sampler"), headers=registrar_token)
    assert one.status_code == 201, one.text
    data = one.json()
    assert data["sample_no"] == "WT-260312-001" and data["kind"] == "client" and data["sampler"] == "sampler"
    assert [c["group_code"] for c in data["containers"]] == ["h2so4", "hno3"]
    assert all(c["barcode"].startswith("CT") and c["state"] == "issued" for c in data["containers"])
    many = api.post(BASE, json=[body(), body(client_name="乙公司", parameters=["TP"])], headers=registrar_token)
    assert many.status_code == 201
    assert [s["sample_no"] for s in many.json()["items"]] == ["WT-260312-002", "WT-260312-003"]
    assert count(db) == 3


def test_a_list_is_all_or_nothing(api, db, registrar_token):
    response = api.post(BASE, json=[body(), body(parameters=["Kryptonite"]), body(client_name="")],
                        headers=registrar_token)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "bulk_rows_invalid"
    assert "第 2 行" in problem["detail"] or "row 2" in problem["detail"]
    assert count(db) == 0


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(api, db, registrar_token):
    headers = {**registrar_token, "Idempotency-Key": "order-2026-0312-a"}
    first = api.post(BASE, json=body(), headers=headers)
    again = api.post(BASE, json=body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replay") == "true"
    assert count(db) == 1
    other = api.post(BASE, json=body(client_name="乙公司"), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert api.post(BASE, json=body(), headers={**registrar_token, "Idempotency-Key": "x"}).status_code == 422
    # a refused act leaves its key free: the corrected request with the same key is new
    bad_key = {**registrar_token, "Idempotency-Key": "order-2026-0312-b"}
    assert api.post(BASE, json=body(parameters=["Kryptonite"]), headers=bad_key).status_code == 422
    assert api.post(BASE, json=body(parameters=["Kryptonite"]), headers=bad_key).status_code == 422
    assert api.post(BASE, json=body(client_name="丙公司"), headers=bad_key).status_code == 201
    assert count(db) == 2


def test_bad_bodies_and_who_may(api, db, users, registrar_token):
    assert api.post(BASE, json={"client_name": "x"}, headers=registrar_token).status_code == 422
    assert api.post(BASE, json=body(scheduled_on="2026-02-30"), headers=registrar_token).status_code == 422
    assert api.post(BASE, content=b"not json", headers={**registrar_token, "content-type": "application/json"}
                    ).status_code == 422
    assert api.post(BASE, json=body()).status_code in (401, 403)  # no token: refused (CSRF or sign-in)
    inspector = api.post(BASE, json=body(), headers=token_of(db, users["inspector"]))
    assert inspector.status_code == 403 and inspector.json()["code"] == "inspector_read_only"
    assert api.post(BASE, json=body(), headers=token_of(db, users["analyst"])).status_code == 403
    assert count(db) == 0


# ---------------------------------------------------------------- reading


def test_list_shape_and_pages(api, db, users, dispatched_task, registrar_token):
    listed = api.get(BASE, params={"per_page": 2}, headers=registrar_token)
    assert listed.status_code == 200
    data = listed.json()
    assert data["total"] == 3 and data["pages"] == 2 and len(data["items"]) == 2
    item = data["items"][0]
    assert {"sample_no", "kind", "state", "site_code", "task_code", "scheduled_on", "containers"} <= set(item)
    assert item["site_code"] == "WS01" and item["task_code"] == dispatched_task.task.code
    assert len(item["containers"]) == 3 and all("barcode" in c for c in item["containers"])
    second = api.get(BASE, params={"per_page": 2, "page": 2}, headers=registrar_token).json()
    numbers = {i["sample_no"] for i in data["items"]} | {i["sample_no"] for i in second["items"]}
    assert numbers == {s.sample_no for s in dispatched_task.samples}
    barcode = dispatched_task.barcodes()[0]
    found = api.get(BASE, params={"q": barcode}, headers=registrar_token).json()["items"]
    assert [i["sample_no"] for i in found] == [dispatched_task.routine.sample_no]
    assert api.get(BASE, params={"state": "nonsense"}, headers=registrar_token).status_code == 422


def test_list_query_count_is_constant(api, db, users, registrar, site, sampler, registrar_token, count_queries):
    tm = users["technical_manager"]
    dispatch(db, registrar, make_task(db, tm, site, sampler=sampler), site, sampler)
    with count_queries() as few:
        api.get(BASE, headers=registrar_token)
    for _ in range(3):
        dispatch(db, registrar, make_task(db, tm, site, sampler=sampler, field_blanks=2, field_duplicates=2),
                 site, sampler)
    with count_queries() as many:
        assert len(api.get(BASE, headers=registrar_token).json()["items"]) == 16
    assert many.count == few.count, many.statements


def test_analysts_see_no_qc_kind(api, db, users, dispatched_task):
    headers = token_of(db, users["analyst"])
    items = api.get(BASE, headers=headers).json()["items"]
    assert {i["kind"] for i in items} == {None}
    duplicate = dispatched_task.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    detail = api.get(f"{BASE}/{duplicate.sample_no}", headers=headers).json()
    assert detail["kind"] is None and detail["duplicate_of"] is None


def test_one_sample(api, db, dispatched_task, registrar_token):
    duplicate = dispatched_task.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    detail = api.get(f"{BASE}/{duplicate.sample_no}", headers=registrar_token)
    assert detail.status_code == 200
    data = detail.json()
    assert data["kind"] == "field_duplicate" and data["duplicate_of"] == dispatched_task.routine.sample_no
    assert data["parameters"][:3] == ["WT", "pH", "DO"] and len(data["containers"]) == 3
    missing = api.get(f"{BASE}/WS01-000000-999", headers=registrar_token)
    assert missing.status_code == 404 and missing.json()["code"] == "sample_not_found"


def test_labels_pdf(api, db, dispatched_task, registrar_token, users):
    url = f"{BASE}/{dispatched_task.routine.sample_no}/labels.pdf"
    thermal = api.get(url, headers=registrar_token)
    assert thermal.status_code == 200 and thermal.headers["content-type"] == "application/pdf"
    assert thermal.content[:5] == b"%PDF-"
    a4 = api.get(url, params={"format": "a4", "start": 24}, headers=registrar_token)
    assert a4.status_code == 200 and a4.content[:5] == b"%PDF-"
    assert api.get(url, params={"format": "zebra"}, headers=registrar_token).status_code == 422
    assert api.get(url, params={"start": 25}, headers=registrar_token).status_code == 422
    assert api.get(f"{BASE}/WS01-000000-999/labels.pdf", headers=registrar_token).status_code == 404


def test_container_lookup_and_its_problems(api, db, users, dispatched_task, registrar_token):
    barcode = dispatched_task.barcodes()[1]
    found = api.get(f"/api/v1/containers/{barcode.lower()}", headers=registrar_token)
    assert found.status_code == 200
    data = found.json()
    assert data["barcode"] == barcode and data["group_code"] == "hno3" and data["parameters"] == ["Cu", "Zn"]
    assert data["sample"]["sample_no"] == dispatched_task.routine.sample_no
    wrong = barcode[:-1] + str((int(barcode[-1]) + 1) % 10)
    cases = {
        wrong: (422, "wrong_check_digit"),
        with_check_digit("CT26-9999999"): (404, "container_not_found"),
        "RM26-00012": (422, "not_a_container"),
        "TK26-00001": (422, "not_a_container"),
        dispatched_task.routine.sample_no: (422, "not_a_container"),
        "hello": (422, "malformed_barcode"),
        "a/b/c": (422, "malformed_barcode"),
    }
    for text, (status, code) in cases.items():
        response = api.get(f"/api/v1/containers/{text}", headers=registrar_token)
        assert response.status_code == status, (text, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code, text
    detail = api.get(f"/api/v1/containers/{dispatched_task.routine.sample_no}", headers=registrar_token).json()
    assert "样品编号" in detail["detail"] or "sample number" in detail["detail"]
