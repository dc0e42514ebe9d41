"""JSON API of alarms (issue 10 item 6): the list (filters, pages with the next page), one alarm
with its evidence, samples and dispositions, and a disposition as a POST, refusals as problem
JSON (no reason: 422 and audited; an inspector: 403 inspector_read_only)."""

from __future__ import annotations

from app.oversight.models import AlarmDisposition
from tests.conftest import login
from tests.oversight.test_alarm_dispositions import state_of
from tests.oversight.test_alarm_pages import some_alarms
from tests.oversight.test_anomalies import count, events, fake_rules  # noqa: F401


def test_list_and_detail(client, db, users, lab, fake_rules, count_queries):  # noqa: F811
    rows = some_alarms(db, users, lab, fake_rules, 3)
    login(client, "reviewer")
    listed = client.get("/api/v1/alarms", params={"per_page": 2})
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 3 and body["pages"] == 2 and body["next_page"] == 2 and len(body["items"]) == 2
    assert body["items"][0]["alarm_no"] == rows[-1].alarm_no  # newest first
    assert body["items"][0]["responsible"] == "analyst" and body["items"][0]["rule"] == "Z01"
    last = client.get("/api/v1/alarms", params={"per_page": 2, "page": 2}).json()
    assert last["next_page"] is None and [i["alarm_no"] for i in last["items"]] == [rows[0].alarm_no]
    assert client.get("/api/v1/alarms", params={"rule": "Z02"}).json()["total"] == 0
    assert client.get("/api/v1/alarms", params={"state": "active", "parameter": "NH3-N"}).json()["total"] == 3
    for bad in ({"per_page": 201}, {"state": "x"}, {"rule": "ZZZ"}, {"page": -1}):
        assert client.get("/api/v1/alarms", params=bad).status_code == 422
    with count_queries() as q:
        one = client.get(f"/api/v1/alarms/{rows[0].alarm_no}")
    assert one.status_code == 200 and q.count < 15
    detail = one.json()
    assert detail["evidence"] == {"key": "k0", "threshold": {"n": "3"}, "value": "0.512"}
    assert len(detail["samples"]) == 1 and detail["batch_no"] and detail["site"] == "WS01"
    assert detail["rule_title_en"] == "Test rule" and detail["blocks_issue"] is True and detail["dispositions"] == []
    missing = client.get("/api/v1/alarms/YC00-00000")
    assert missing.status_code == 404 and missing.json()["code"] == "alarm_not_found"


def test_disposition_by_post(client, db, users, lab, fake_rules):  # noqa: F811
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    token = login(client, "quality-manager")
    url = f"/api/v1/alarms/{alarm.alarm_no}/disposition"
    headers = {"x-csrf-token": token}
    no_reason = client.post(url, json={"to": "dismissed", "reason": " "}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "disposition_needs_reason"
    assert len(events(db, "oversight.disposition_refused")) == 1 and count(db, AlarmDisposition) == 0
    unknown = client.post(url, json={"to": "deleted", "reason": "x"}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_disposition"
    bad_action = client.post(url, json={"to": "confirmed", "reason": "x", "actions": ["burned"]}, headers=headers)
    assert bad_action.status_code == 422 and bad_action.json()["code"] == "unknown_action"
    for ugly in ({"to": 3}, {"reason": "x"}, {"to": "dismissed", "actions": "referred"}, [1, 2]):
        assert client.post(url, json=ugly, headers=headers).status_code == 422, ugly
    done = client.post(url, json={"to": "investigating", "reason": "核查"}, headers=headers)
    assert done.status_code == 200 and done.json()["state"] == "investigating"
    done = client.post(url, json={"to": "confirmed", "reason": "确认抄录", "actions": ["referred"]}, headers=headers)
    assert done.status_code == 200
    body = done.json()
    assert body["state"] == "confirmed"
    assert [(d["from_state"], d["to_state"], d["actions"]) for d in body["dispositions"]] == [
        ("open", "investigating", []), ("investigating", "confirmed", ["referred"])]
    assert body["dispositions"][1]["actor"] == "quality-manager"
    closed = client.post(url, json={"to": "dismissed", "reason": "再看"}, headers=headers)
    assert closed.status_code == 409 and closed.json()["code"] == "alarm_closed"


def test_an_inspector_is_refused(client, db, users, lab, fake_rules):  # noqa: F811
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    token = login(client, "inspector")
    assert client.get(f"/api/v1/alarms/{alarm.alarm_no}").status_code == 200
    answer = client.post(f"/api/v1/alarms/{alarm.alarm_no}/disposition", json={"to": "dismissed", "reason": "x"},
                         headers={"x-csrf-token": token})
    assert answer.status_code == 403 and answer.json()["code"] == "inspector_read_only"
    assert state_of(db, alarm) == "open"
    client.cookies.clear()
    login(client, "sampler")
    assert client.get("/api/v1/alarms").status_code == 403
