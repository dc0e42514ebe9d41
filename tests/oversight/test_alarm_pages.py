"""The alarm pages (issue 10 item 2): the list with its filters in a fixed number of queries, an
alarm with its evidence, samples, batch and history, the quality manager's disposition forms (no
form for others), the rules page with its versions and the QM's form (out-of-range refused in the
page, audited), a scan from the page as a job, the nav entry, worklist card and sample section."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.analysis.models import AnalysisBatch
from app.oversight.models import AlarmSample, AnomalyAlarm, AnomalyRuleSetting, AnomalyScan
from app.samples.models import Sample
from tests.conftest import login, make_user
from tests.oversight.test_alarm_dispositions import dispose, state_of, steps
from tests.oversight.test_anomalies import count, events, fake_rules, raise_alarm  # noqa: F401


def some_alarms(db, users, lab, rules, n: int = 3) -> list[AnomalyAlarm]:
    site = lab.site("WS01")
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    batch = lab.batch(m, users["analyst"])
    samples = lab.samples(n, site=site)
    return [raise_alarm(db, rules["Z01"], f"k{i}", [s], responsible_user_id=users["analyst"].id, parameter="NH3-N",
                        batch_id=batch.id, site_id=site.id) for i, s in enumerate(samples)]


def test_the_list_filters_and_reads_in_fixed_queries(client, db, users, lab, fake_rules, count_queries):  # noqa: F811
    rows = some_alarms(db, users, lab, fake_rules, 3)
    raise_alarm(db, fake_rules["Z02"], "soft", [], parameter="TN")
    login(client, "reviewer")
    page = client.get("/oversight/alarms")
    assert page.status_code == 200
    assert all(a.alarm_no in page.text for a in rows) and "发现 soft" in page.text
    with count_queries() as few:
        client.get("/oversight/alarms")
    more = [raise_alarm(db, fake_rules["Z01"], f"more{i}", [], responsible_user_id=users["sampler"].id)
            for i in range(5)]
    with count_queries() as many:
        again = client.get("/oversight/alarms")
    assert many.count == few.count and more[0].alarm_no in again.text
    only = client.get("/oversight/alarms", params={"rule": "Z02"})
    assert 'data-alarm' in only.text and only.text.count('data-alarm="') == 1
    by_analyst = client.get("/oversight/alarms", params={"analyst": users["analyst"].id, "parameter": "NH3-N"})
    assert by_analyst.text.count('data-alarm="') == 3
    dispose(db, users["quality_manager"], rows[0], "dismissed", "无问题")
    assert rows[0].alarm_no not in client.get("/oversight/alarms").text  # the default: still open
    assert rows[0].alarm_no in client.get("/oversight/alarms", params={"state": "dismissed"}).text
    fragment = client.get("/oversight/alarms", params={"state": "open"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    for bad in ({"state": "gone"}, {"rule": "../x"}, {"analyst": "x"}, {"page": "0"}, {"parameter": "x" * 61}):
        assert client.get("/oversight/alarms", params=bad).status_code == 422, bad


def test_an_alarm_page_shows_evidence_samples_batch_and_history(client, db, users, lab, fake_rules,  # noqa: F811
                                                               count_queries):
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    dispose(db, users["quality_manager"], alarm, "investigating", "调阅原始记录")
    login(client, "reviewer")
    with count_queries() as q:
        page = client.get(f"/oversight/alarms/{alarm.alarm_no}")
    assert page.status_code == 200
    text = page.text
    assert "Z01" in text and "0.512" in text and "threshold" in text
    with db.reading() as session:
        sample_no = session.scalar(select(Sample.sample_no).join(AlarmSample, AlarmSample.sample_id == Sample.id))
        batch_no = session.get(AnalysisBatch, alarm.batch_id).batch_no
    assert f'href="/samples/{sample_no}"' in text and f'href="/batches/{batch_no}"' in text
    assert "调阅原始记录" in text
    assert 'action="/oversight/alarms/' not in text  # the reviewer reads, never disposes
    assert client.get("/oversight/alarms/YC99-99999").status_code == 404
    assert client.get("/oversight/alarms/" + "Y" * 30).status_code == 422
    baseline = q.count
    client.cookies.clear()
    login(client, "quality-manager")
    qm_page = client.get(f"/oversight/alarms/{alarm.alarm_no}").text
    assert f'action="/oversight/alarms/{alarm.alarm_no}/dismiss"' in qm_page
    assert f'action="/oversight/alarms/{alarm.alarm_no}/confirm"' in qm_page
    assert '/investigate"' not in qm_page  # already under investigation
    assert baseline < 25


def test_the_quality_manager_disposes_through_the_forms(client, db, users, lab, fake_rules):  # noqa: F811
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    token = login(client, "quality-manager")
    url = f"/oversight/alarms/{alarm.alarm_no}"
    empty = client.post(f"{url}/dismiss", data={"csrf_token": token, "reason": "  "})
    assert empty.status_code == 422 and 'data-code="disposition_needs_reason"' in empty.text
    assert state_of(db, alarm) == "open" and len(events(db, "oversight.disposition_refused")) == 1
    no_action = client.post(f"{url}/confirm", data={"csrf_token": token, "reason": "确有抄录"})
    assert no_action.status_code == 422 and "confirmation_needs_action" in no_action.text
    assert "确有抄录" in no_action.text  # what was typed is kept
    done = client.post(f"{url}/investigate", data={"csrf_token": token, "reason": "调查"})
    assert done.status_code == 303 and done.headers["location"] == url
    done = client.post(f"{url}/confirm", data={"csrf_token": token, "reason": "确有抄录",
                                               "actions": ["data_corrected", "report_amended"]})
    assert done.status_code == 303 and state_of(db, alarm) == "confirmed"
    assert steps(db, alarm)[-1] == ("investigating", "confirmed", "确有抄录", ["data_corrected", "report_amended"])
    closed = client.post(f"{url}/dismiss", data={"csrf_token": token, "reason": "再看"})
    assert closed.status_code == 409 and "alarm_closed" in closed.text
    assert client.post(f"{url}/dismiss", data={"reason": "无 CSRF"}).status_code == 403


def test_an_inspector_reads_alarms_but_cannot_dispose(client, db, users, lab, fake_rules):  # noqa: F811
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    token = login(client, "inspector")
    assert client.get(f"/oversight/alarms/{alarm.alarm_no}").status_code == 200
    answer = client.post(f"/oversight/alarms/{alarm.alarm_no}/dismiss", data={"csrf_token": token, "reason": "x"})
    assert answer.status_code == 403 and "inspector_read_only" in answer.text
    assert state_of(db, alarm) == "open"
    answer = client.post("/oversight/anomaly-rules/Z01", data={"csrf_token": token, "name": "n", "value": "4",
                                                               "enabled": "on", "reason": "x"})
    assert answer.status_code == 403 and count(db, AnomalyRuleSetting) == 0


def test_the_rules_page_and_the_quality_managers_settings(client, db, users, fake_rules):  # noqa: F811
    token = login(client, "quality-manager")
    page = client.get("/oversight/anomaly-rules")
    assert page.status_code == 200
    assert 'data-rule="Z01" data-version="0" data-enabled="true"' in page.text
    assert "[1, 10]" in page.text and 'action="/oversight/anomaly-rules/Z01"' in page.text
    bad = client.post("/oversight/anomaly-rules/Z01", data={"csrf_token": token, "name": ["n", "ratio"],
                                                            "value": ["11", "0.5"], "enabled": "on",
                                                            "reason": "试一下"})
    assert bad.status_code == 422 and 'data-code="threshold_out_of_range"' in bad.text
    assert count(db, AnomalyRuleSetting) == 0 and len(events(db, "oversight.rule_settings_refused")) == 1
    good = client.post("/oversight/anomaly-rules/Z01", data={"csrf_token": token, "name": ["n", "ratio"],
                                                             "value": ["4", "0.5"], "reason": "只看四对"})
    assert good.status_code == 303
    page = client.get("/oversight/anomaly-rules").text
    assert 'data-rule="Z01" data-version="1" data-enabled="false"' in page and "只看四对" in page
    assert 'name="based_on" value="1"' in page
    # a second tab still showing version 0: refused in the page, with the version now in force
    stale = client.post("/oversight/anomaly-rules/Z01", data={"csrf_token": token, "name": ["n"], "value": ["6"],
                                                              "reason": "旧页面", "based_on": "0"})
    assert stale.status_code == 409 and 'data-code="rule_setting_changed"' in stale.text
    assert count(db, AnomalyRuleSetting) == 1
    assert client.post("/oversight/anomaly-rules/Q99", data={"csrf_token": token, "reason": "x"}).status_code == 422
    client.cookies.clear()
    login(client, "reviewer")
    reviewer_page = client.get("/oversight/anomaly-rules").text
    assert "data-rule=\"Z01\"" in reviewer_page and 'action="/oversight/anomaly-rules/Z01"' in reviewer_page
    assert 'name="reason"' not in reviewer_page


def test_a_scan_from_the_page_runs_as_a_job(client, db, users, fake_rules):  # noqa: F811
    from tests.oversight.test_anomalies import finding

    fake_rules["Z01"].findings = [finding("from the page")]
    token = login(client, "quality-manager")
    answer = client.post("/oversight/anomaly-rules/scan", data={"csrf_token": token})
    assert answer.status_code == 303
    with db.reading() as session:
        scan = session.scalars(select(AnomalyScan)).one()
        assert scan.trigger == "page" and scan.started_by_id == users["quality_manager"].id
        assert json.loads(scan.counts) == {"Z01": 1, "Z02": 0}
    window, _ = fake_rules["Z01"].calls[0]
    assert (window.until - window.since).days == 30
    page = client.get("/oversight/anomaly-rules").text
    assert 'data-scan="' in page and 'data-raised="Z01">Z01 × 1<' in page and 'data-raised="Z02"' not in page
    assert len(events(db, "oversight.scan_requested")) == 1
    client.cookies.clear()
    token = login(client, "reviewer")
    assert client.post("/oversight/anomaly-rules/scan", data={"csrf_token": token}).status_code == 403


def test_nav_worklist_and_the_sample_section(client, db, users, lab, fake_rules):  # noqa: F811
    alarm = some_alarms(db, users, lab, fake_rules, 1)[0]
    login(client, "quality-manager")
    dashboard = client.get("/dashboard").text
    assert 'href="/oversight/alarms"' in dashboard and "/oversight/alarms?state=active" in dashboard
    with db.reading() as session:
        sample_no = session.scalar(select(Sample.sample_no).join(AlarmSample, AlarmSample.sample_id == Sample.id))
    page = client.get(f"/samples/{sample_no}")
    assert page.status_code == 200 and f'data-alarm="{alarm.alarm_no}"' in page.text
    client.cookies.clear()
    make_user(db, "plainsampler", "sampler")
    login(client, "plainsampler")
    page = client.get(f"/samples/{sample_no}")
    assert page.status_code == 200 and 'data-alarm="' not in page.text
    assert client.get("/oversight/alarms").status_code == 403


def test_scan_counts_read_what_a_scan_stored():
    from app.oversight.anomalies import scan_counts

    assert scan_counts('{"A01":0,"A03":2,"A12":1}') == ([("A03", 2), ("A12", 1)], [])
    assert scan_counts('{"A01":0,"failed":["Z00"]}') == ([], ["Z00"])
    assert scan_counts("") == ([], []) and scan_counts("not json") == ([], [])
