"""The results JSON API with real API tokens: current results of a batch, one result with its
intermediates and history, an instrument posting readings (strings, never JSON numbers) by
position number or label, idempotent with its key, refusals listed per row with nothing saved;
and the instrument usage source of analysis results."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient

from app.core.db import utcnow
from app.instruments.usage import usages_between
from app.people import service as people
from tests.analysis.conftest import samples_in_lab
from tests.analysis.result_fixtures import attach_curve, counts, reading, record, running_batch, submit


@pytest.fixture
def api(app):
    with TestClient(app, follow_redirects=False) as client:
        yield client


def bearer(db, user) -> dict[str, str]:
    with db.transaction() as session:
        token = people.create_token(session, None, user.id, "UV-2600 results", check_permission=False)[1]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def batch(db, users, analyst, nh3n_method, uv):
    running = running_batch(db, analyst, nh3n_method, samples_in_lab(db, users["custodian"], count=3), instrument=uv)
    attach_curve(db, analyst, running, uv)
    return running


def url(running) -> str:
    return f"/api/v1/batches/{running.batch.batch_no}/results"


def test_an_instrument_posts_results_once_per_key(db, api, analyst, batch):
    headers = {**bearer(db, analyst), "Idempotency-Key": "uv2600-run-0042"}
    body = {"results": [{"label": "S-001", "parameter": "NH3-N", "reading": "0.205", "unit": "Abs", "dilution": "2",
                         "measured_at": (utcnow() - timedelta(minutes=5)).isoformat()},
                        {"position": 2, "parameter": "NH3-N", "reading": "0.009"}]}
    first = api.post(url(batch), json=body, headers=headers)
    assert first.status_code == 201, first.text
    items = first.json()["items"]
    assert [(i["label"], D(i["value"]), i["reported"], i["source"]) for i in items] == [
        ("S-001", D("2.0"), "2.000", "api"), ("BLK2", D("0.02"), "0.025L", "api")]
    assert items[1]["below_mdl"] is True
    before = counts(db)
    again = api.post(url(batch), json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json() and again.headers["Idempotent-Replay"] == "true"
    assert counts(db) == before


def test_json_numbers_are_refused_for_measured_values(db, api, analyst, batch):
    headers = bearer(db, analyst)
    before = counts(db)
    answer = api.post(url(batch), json={"results": [{"position": 3, "parameter": "NH3-N", "reading": 0.205}]},
                      headers=headers)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "results.0.reading"
    assert counts(db) == before


def test_a_bad_row_refuses_the_post_and_lists_every_row(db, api, analyst, batch):
    headers = bearer(db, analyst)
    before = counts(db)
    answer = api.post(url(batch), json={"results": [
        {"label": "S-001", "parameter": "NH3-N", "reading": "0.205"},
        {"label": "S-999", "parameter": "NH3-N", "reading": "0.205"},
        {"label": "S-002", "parameter": "NH3-N", "reading": "1,5"},
    ]}, headers=headers)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "results_refused"
    assert [(e["row"], e["code"]) for e in problem["errors"]] == [(2, "position_not_in_batch"), (3, "comma_decimal")]
    over = api.post(url(batch), json={"results": [{"label": "S-001", "parameter": "NH3-N", "reading": "0.505"}]},
                    headers=headers)
    assert over.status_code == 422 and over.json()["errors"][0]["code"] == "above_calibration_range"
    assert counts(db) == before


def test_token_auth_and_permissions(db, api, users, batch):
    body = {"results": [{"position": 3, "parameter": "NH3-N", "reading": "0.205"}]}
    assert api.post(url(batch), json=body).status_code == 403  # no token, no session: the CSRF guard refuses
    assert api.get(url(batch)).status_code == 401
    assert api.post(url(batch), json=body, headers={"Authorization": "Bearer lims_nonsense"}).status_code == 401
    assert api.post(url(batch), json=body, headers=bearer(db, users["inspector"])).status_code == 403
    assert api.get(url(batch), headers=bearer(db, users["inspector"])).status_code == 200


def test_reading_current_results_and_one_result_with_its_history(db, api, analyst, users, batch):
    s1 = batch.at("S-001")
    [first] = record(db, analyst, batch, [reading(s1, "0.205")])
    submit(db, batch)
    [second] = record(db, analyst, batch, [reading(s1, "0.215")], reason="重新测定")
    headers = bearer(db, users["reviewer"])
    listed = api.get(url(batch), headers=headers).json()
    assert listed["state"] == "submitted"
    assert [(i["id"], i["revision"], D(i["value"])) for i in listed["items"]] == [(second.id, 2, D("1.05"))]
    detail = api.get(f"/api/v1/results/{second.id}", headers=headers).json()
    assert detail["intermediates"]["curve"]["slope"] == "0.2" and D(detail["intermediates"]["value"]) == D("1.05")
    assert [(h["revision"], h["reason"]) for h in detail["history"]] == [(1, ""), (2, "重新测定")]
    assert detail["sample_no"].endswith("-001") and detail["batch_no"] == batch.batch.batch_no
    missing = api.get("/api/v1/results/999999", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "result_not_found"
    assert api.get(f"/api/v1/results/{2**31}", headers=headers).status_code == 422  # past a database integer
    assert first.id != second.id


def test_an_impact_assessment_lists_the_results_measured_with_the_instrument(db, analyst, batch, uv):
    record(db, analyst, batch, [reading(batch.at("S-001"), "0.205"), reading(batch.at("S-002"), "0.305")])
    with db.reading() as session:
        found = [u for u in usages_between(session, uv.id, utcnow() - timedelta(days=1), utcnow())
                 if u.source == "analysis"]
        assert [u.parameter for u in found] == ["NH3-N", "NH3-N"]
        assert found[0].sample_no.endswith("-001") and found[0].url.endswith("/entry")
        assert "1.0" in found[0].description
        assert usages_between(session, uv.id, None, utcnow() - timedelta(days=1)) == [] or all(
            u.source != "analysis" for u in usages_between(session, uv.id, None, utcnow() - timedelta(days=1)))
