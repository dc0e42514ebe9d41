"""The batches JSON API: the list's shape and pagination, one batch with its positions (planned
ones waiting for a standard too), values as strings, read by the inspector, refused without
the read permission or a sign-in."""

from __future__ import annotations

from tests.analysis.batch_fixtures import *  # noqa: F403
from tests.analysis.batch_fixtures import build, lab_samples, standards_for
from tests.conftest import login


def test_the_list_is_paginated_with_the_issue_s_fields(db, users, bench, analyst, standards, client):
    built = [build(db, analyst, lab_samples(db, users, 1, prefix=f"WS03-{i}")) for i in range(3)]
    login(client, users["inspector"].username)
    answer = client.get("/api/v1/batches?per_page=2")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 2, 3, 2)
    item = body["items"][0]
    assert item["batch_no"] == built[-1].batch_no  # newest first
    assert item["method"] == "HJ 535-2009" and item["method_version"] == 1 and item["parameters"] == ["NH3-N"]
    assert item["state"] == "open" and item["analyst"] == analyst.username and item["instrument"] == "JC-UV-001"
    assert item["qc_passed"] is None and item["started_at"] is None and item["created_at"].endswith(("Z", "+00:00"))
    assert item["samples"] == 1
    second = client.get("/api/v1/batches?per_page=2&page=2").json()
    assert [i["batch_no"] for i in second["items"]] == [built[0].batch_no]
    assert client.get("/api/v1/batches?state=running").json()["total"] == 0
    assert client.get("/api/v1/batches?per_page=0").status_code == 422


def test_one_batch_with_its_positions(db, users, bench, analyst, standards, client):
    batch = build(db, analyst, lab_samples(db, users, 2), standards={"crm": standards_for(standards)["crm"]})
    login(client, analyst.username)
    body = client.get(f"/api/v1/batches/{batch.batch_no}").json()
    assert body["batch_no"] == batch.batch_no and body["curves"] == [{"parameter": "NH3-N", "curve": None}]
    items = body["items"]
    assert [i["position"] for i in items] == list(range(1, len(items) + 1))
    crm = next(i for i in items if i["role"] == "crm")
    assert crm["expected_value"] == "1.00" and crm["expected_uncertainty"] == "0.05"
    assert crm["standard"] == standards.unit.barcode and not crm["standard_missing"]
    waiting = [i["label"] for i in items if i["standard_missing"]]
    assert waiting and all(i["role"] in ("ccv", "spike") for i in items if i["standard_missing"])
    duplicate = next(i for i in items if i["role"] == "duplicate")
    assert duplicate["of_label"] and duplicate["sample_no"] == duplicate["of_label"]
    assert body["positions"] == len(items) - len(waiting)
    assert client.get("/api/v1/batches/AB26-99999").status_code == 404


def test_the_api_needs_a_sign_in(db, client):
    assert client.get("/api/v1/batches").status_code == 401


def test_a_batch_is_found_alike_everywhere(db, users, bench, analyst, standards, client):
    """One lookup serves every page and API: a number typed in lower case with spaces finds the
    batch, and a missing one is the same refusal everywhere (404, `batch_not_found`)."""
    batch = build(db, analyst, lab_samples(db, users, 1))
    login(client, analyst.username)
    typed = f" {batch.batch_no.lower()} "
    assert client.get(f"/api/v1/batches/{typed}").json()["batch_no"] == batch.batch_no
    assert client.get(f"/api/v1/batches/{typed}/results").status_code == 200
    assert client.get(f"/batches/{typed}/entry").status_code == 200
    for api in ("/api/v1/batches/{}", "/api/v1/batches/{}/results", "/api/v1/batches/{}/qc"):
        answer = client.get(api.format("AB26-99999"))
        assert answer.status_code == 404 and answer.json()["code"] == "batch_not_found", api
    for page in ("/batches/{}", "/batches/{}/entry", "/batches/{}/qc", "/batches/{}/import"):
        answer = client.get(page.format("AB26-99999"))
        assert answer.status_code == 404 and 'data-code="batch_not_found"' in answer.text, page
