"""Inspections by the regulator (双随机, issue 10 item 3): a draw is reproducible from its seed and
its population hash; a record added to the period later shows as a changed population; only the
inspector draws and records findings (on picked records, while open); the quality manager
answers, the inspector cannot; refusals change nothing; pages and API in a fixed number of queries."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.errors import InspectorReadOnly, PermissionDenied
from app.oversight import inspections
from app.oversight.inspection_errors import (
    DrawPeriodReversed,
    DrawScopeUnknown,
    DrawSizeOutOfRange,
    EmptyPopulation,
    FindingTargetNotPicked,
    InspectionClosed,
)
from app.oversight.models import FindingResponse, Inspection, InspectionFinding
from tests.conftest import login

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def period(db, lab):
    """Lab-local dates around the samples (collected two days ago)."""
    today = db.calendar.today()
    return today - timedelta(days=10), today


@pytest.fixture
def population(lab):
    """Twelve water samples at WS01 collected two days ago, and three at WS02."""
    ws01, ws02 = lab.site("WS01"), lab.site("WS02")
    first = lab.samples(12, site=ws01, collected_at=lab.t(-48))
    other = lab.samples(3, site=ws02, collected_at=lab.t(-50))
    return {"WS01": sorted(s.id for s in first), "WS02": sorted(s.id for s in other)}


def draw(db, actor, period, **changes):
    args = {"title": "2026 年第四季度双随机抽查", "target": "samples", "period_from": period[0],
            "period_to": period[1], "scope": {}, "size": 5, "seed": None, **changes}
    with db.transaction() as session:
        inspection = inspections.draw_inspection(session, actor, **args)
        session.flush()
        session.expunge(inspection)
        return inspection


def count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def events(db, action: str) -> list[SimpleNamespace]:
    with db.reading() as session:
        return [SimpleNamespace(entity_type=e.entity_type, entity_id=e.entity_id, actor_id=e.actor_id,
                                after_data=e.after_data)
                for e in session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                         .order_by(AuditEvent.seq))]


# ---------------------------------------------------------------- the draw


def test_a_draw_is_reproducible_from_its_seed_and_verifies(db, users, population, period):
    inspector = users["inspector"]
    inspection = draw(db, inspector, period)
    ids = sorted(population["WS01"] + population["WS02"])
    picked = json.loads(inspection.picked)
    assert len(inspection.seed) == 32 and inspection.inspection_no.startswith("JC")
    assert inspection.population_size == 15
    assert inspection.population_sha256 == hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    # anyone can redo it with the standard library alone
    assert picked == random.Random(inspection.seed).sample(ids, 5)
    with db.reading() as session:
        check = inspections.verify_draw(session, session.get(Inspection, inspection.id))
    assert check.ok and check.population_matches and check.picks_match and check.picks == picked
    # the same seed again: the same picks
    again = draw(db, inspector, period, seed=inspection.seed, title="复核")
    assert json.loads(again.picked) == picked and again.population_sha256 == inspection.population_sha256
    # another seed: a different draw (of these 15 choose 5, a collision is 1 in 360 360)
    assert json.loads(draw(db, inspector, period, seed="another-seed").picked) != picked
    drawn = events(db, "oversight.inspection_drawn")[0]
    after = drawn.after_data
    assert (drawn.entity_type, drawn.entity_id, drawn.actor_id) == ("inspection", str(inspection.id), inspector.id)
    assert after["seed"] == inspection.seed and after["picked"] == picked
    assert after["population_size"] == 15 and after["population_sha256"] == inspection.population_sha256


def test_the_scope_narrows_the_population(db, users, population, period):
    inspection = draw(db, users["inspector"], period, scope={"site": "ws02", "matrix": "water"}, size=10)
    assert inspection.population_size == 3
    assert sorted(json.loads(inspection.picked)) == population["WS02"]  # fewer than asked: all of them
    assert json.loads(inspection.scope) == {"matrix": "water", "site": "ws02"}


def test_a_record_added_into_the_period_later_changes_the_population(db, users, lab, population, period):
    inspection = draw(db, users["inspector"], period)
    lab.samples(1, site=None, collected_at=lab.t(-30))  # collected in the period, entered after the draw
    with db.reading() as session:
        check = inspections.verify_draw(session, session.get(Inspection, inspection.id))
    assert not check.population_matches and not check.ok
    assert check.population_size == 16 and check.population_sha256 != inspection.population_sha256


@pytest.mark.parametrize(("changes", "error"), [
    ({"size": 0}, DrawSizeOutOfRange), ({"size": 201}, DrawSizeOutOfRange),
    ({"scope": {"site": "NOPE"}}, DrawScopeUnknown), ({"scope": {"colour": "red"}}, DrawScopeUnknown),
    ({"scope": {"matrix": "plasma"}}, DrawScopeUnknown), ({"scope": {"state": "issued"}}, DrawScopeUnknown),
    ({"scope": {"method": "HJ 0-0000"}}, DrawScopeUnknown),
])
def test_bad_draws_are_refused_and_change_nothing(db, users, population, period, changes, error):
    with pytest.raises(error):
        draw(db, users["inspector"], period, **changes)
    assert count(db, Inspection) == 0 and not events(db, "oversight.inspection_drawn")


def test_an_empty_population_and_a_reversed_period_are_refused(db, users, population, period):
    with pytest.raises(EmptyPopulation):
        draw(db, users["inspector"], period, target="reports")  # no report was issued
    with pytest.raises(DrawPeriodReversed):
        draw(db, users["inspector"], (period[1], period[0]))
    assert count(db, Inspection) == 0


def test_only_the_inspector_draws(db, users, population, period):
    with pytest.raises(PermissionDenied):
        draw(db, users["analyst"], period)
    with pytest.raises(PermissionDenied) as refused:
        draw(db, users["quality_manager"], period)
    assert refused.value.code == "permission_denied"
    assert count(db, Inspection) == 0


# ---------------------------------------------------------------- findings and responses


def finding(db, actor, inspection, target_type, target_id, severity="minor", text="现场记录缺少采样人签名"):
    with db.transaction() as session:
        row = inspections.record_finding(session, actor, session.get(Inspection, inspection.id), target_type,
                                         target_id, severity, text)
        session.flush()
        session.expunge(row)
        return row


def test_findings_only_on_picked_records_while_open(db, users, population, period):
    inspector = users["inspector"]
    inspection = draw(db, inspector, period)
    picked = json.loads(inspection.picked)
    not_picked = next(i for i in population["WS01"] + population["WS02"] if i not in picked)
    with pytest.raises(FindingTargetNotPicked):
        finding(db, inspector, inspection, "sample", not_picked)
    with pytest.raises(FindingTargetNotPicked):
        finding(db, inspector, inspection, "report", picked[0])  # a sample draw names samples
    assert count(db, InspectionFinding) == 0
    on_pick = finding(db, inspector, inspection, "sample", picked[0], "major")
    whole = finding(db, inspector, inspection, "", None, "observation", "整体：质控记录完整")
    assert (whole.target_type, whole.target_id) == ("", None)
    recorded = events(db, "oversight.inspection_finding")
    assert [e.entity_id for e in recorded] == [str(on_pick.id), str(whole.id)]
    assert recorded[0].after_data["target_id"] == picked[0]
    with db.transaction() as session:
        inspections.close_inspection(session, inspector, session.get(Inspection, inspection.id))
    with pytest.raises(InspectionClosed):
        finding(db, inspector, inspection, "", None)
    with db.transaction() as session, pytest.raises(InspectionClosed):
        inspections.close_inspection(session, inspector, session.get(Inspection, inspection.id))
    assert count(db, InspectionFinding) == 2
    assert [e.after_data["state"] for e in events(db, "oversight.inspection_closed")] == ["closed"]


def test_the_quality_manager_responds_and_the_inspector_cannot(app, db, client, users, population, period):
    inspection = draw(db, users["inspector"], period)
    row = finding(db, users["inspector"], inspection, "", None)
    url = f"/oversight/inspections/{inspection.inspection_no}/findings/{row.id}/responses"
    token = login(client, "inspector")
    refused = client.post(url, data={"text": "已整改", "csrf_token": token}, headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.json()["code"] == "inspector_read_only"
    with db.transaction() as session, pytest.raises(InspectorReadOnly):
        inspections.respond_to_finding(session, users["inspector"], session.get(InspectionFinding, row.id), "x")
    assert count(db, FindingResponse) == 0
    assert events(db, "security.inspector_refused")[-1].after_data["path"] == url
    client.post("/logout", data={"csrf_token": token})

    token = login(client, "quality-manager")
    answered = client.post(url, data={"text": "已补签并培训采样人员", "csrf_token": token})
    assert answered.status_code == 303
    page = client.get(f"/oversight/inspections/{inspection.inspection_no}")
    assert "已补签并培训采样人员" in page.text
    assert 'id="finding-form"' not in page.text  # the quality manager records no findings
    responded = events(db, "oversight.inspection_response")
    assert len(responded) == 1 and responded[0].actor_id == users["quality_manager"].id
    empty = client.post(url, data={"text": "   ", "csrf_token": token})
    assert empty.status_code == 422 and 'data-code="finding_text_required"' in empty.text
    assert count(db, FindingResponse) == 1
    # the quality manager cannot draw
    denied = client.post("/api/v1/inspections", json={"title": "t", "target": "samples", "period_from": "2026-01-01",
                                                      "period_to": "2026-12-31", "size": 3},
                         headers={"X-CSRF-Token": token})
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"


# ---------------------------------------------------------------- pages and API


def test_the_inspector_draws_on_the_page_and_records_a_finding(db, client, users, population, period):
    token = login(client, "inspector")
    assert client.get("/oversight/inspections/new").status_code == 200
    form = {"title": "抽查", "target": "samples", "period_from": period[0].isoformat(),
            "period_to": period[1].isoformat(), "size": "4", "seed": "announced-2026-Q4", "site": "WS01",
            "csrf_token": token}
    drawn = client.post("/oversight/inspections/new", data=form)
    assert drawn.status_code == 303, drawn.text
    with db.reading() as session:
        inspection = session.scalars(select(Inspection)).one()
        session.expunge(inspection)
    assert drawn.headers["location"] == f"/oversight/inspections/{inspection.inspection_no}"
    picked = json.loads(inspection.picked)
    assert picked == random.Random("announced-2026-Q4").sample(population["WS01"], 4)
    page = client.get(drawn.headers["location"])
    assert "announced-2026-Q4" in page.text and inspection.population_sha256 in page.text
    assert 'data-verify="ok"' in page.text and 'id="finding-form"' in page.text
    recorded = client.post(f"/oversight/inspections/{inspection.inspection_no}/findings",
                           data={"target": f"sample:{picked[1]}", "severity": "minor", "text": "保存温度未记录",
                                 "csrf_token": token})
    assert recorded.status_code == 303
    outside = next(i for i in population["WS02"])
    refused = client.post(f"/oversight/inspections/{inspection.inspection_no}/findings",
                          data={"target": f"sample:{outside}", "severity": "minor", "text": "x", "csrf_token": token})
    assert refused.status_code == 422 and 'data-code="finding_target_not_picked"' in refused.text
    bad = client.post("/oversight/inspections/new", data={**form, "size": "0"})
    assert bad.status_code == 422 and 'data-code="draw_size_out_of_range"' in bad.text
    bad_date = client.post("/oversight/inspections/new", data={**form, "period_from": "2026-13-45"})
    assert bad_date.status_code == 422
    assert count(db, Inspection) == 1 and count(db, InspectionFinding) == 1
    closed = client.post(f"/oversight/inspections/{inspection.inspection_no}/close", data={"csrf_token": token})
    assert closed.status_code == 303
    listing = client.get("/oversight/inspections")
    assert inspection.inspection_no in listing.text


def test_the_api_draws_lists_and_shows_with_the_verify_result(db, client, users, population, period):
    token = login(client, "inspector")
    body = {"title": "API 抽查", "target": "samples", "period_from": period[0].isoformat(),
            "period_to": period[1].isoformat(), "scope": {"site": "WS01"}, "size": 3}
    created = client.post("/api/v1/inspections", json=body, headers={"X-CSRF-Token": token})
    assert created.status_code == 201, created.text
    data = created.json()
    assert data["picked"] == random.Random(data["seed"]).sample(population["WS01"], 3)
    assert data["verify"]["ok"] is True and data["population_size"] == 12
    assert [p["id"] for p in data["picks"]] == data["picked"]
    listed = client.get("/api/v1/inspections").json()
    assert listed["total"] == 1 and listed["items"][0]["inspection_no"] == data["inspection_no"]
    one = client.get(f"/api/v1/inspections/{data['inspection_no']}").json()
    assert one["population_sha256"] == data["population_sha256"] and one["findings"] == []
    assert client.get("/api/v1/inspections/JC26-99999").status_code == 404
    for bad in ({**body, "size": 0}, {**body, "size": 500}, {**body, "scope": {"site": "XX99"}},
                {**body, "period_from": period[1].isoformat(), "period_to": period[0].isoformat()},
                {**body, "target": "people"}, {**body, "seed": "has spaces"}, {**body, "period_from": "soon"},
                {**body, "period_to": "9999-12-31"}, {**body, "scope": {"site": ["WS01"]}}, {**body, "size": "many"}):
        refused = client.post("/api/v1/inspections", json=bad, headers={"X-CSRF-Token": token})
        assert refused.status_code == 422, (bad, refused.text)
    assert count(db, Inspection) == 1
    client.post("/logout", data={"csrf_token": token})
    token = login(client, "analyst")
    denied = client.post("/api/v1/inspections", json=body, headers={"X-CSRF-Token": token})
    assert denied.status_code == 403
    assert client.get("/api/v1/inspections").status_code == 403  # analysts do not read inspections
    assert count(db, Inspection) == 1


def test_the_inspection_page_and_list_take_a_fixed_number_of_queries(db, client, users, population, period,
                                                                      count_queries):
    inspector = users["inspector"]
    small, large = draw(db, inspector, period, size=2), draw(db, inspector, period, size=10)
    finding(db, inspector, small, "", None)
    for pick in json.loads(large.picked)[:6]:
        row = finding(db, inspector, large, "sample", pick)
        with db.transaction() as session:
            inspections.respond_to_finding(session, users["quality_manager"], session.get(InspectionFinding, row.id),
                                           "已整改")
    login(client, "inspector")
    counted = []
    for inspection in (small, large):
        with count_queries() as counter:
            assert client.get(f"/oversight/inspections/{inspection.inspection_no}").status_code == 200
        counted.append(counter.count)
    assert counted[0] == counted[1], counted
    with count_queries() as one:
        client.get("/oversight/inspections")
    for _ in range(3):
        draw(db, inspector, period)
    with count_queries() as four:
        client.get("/oversight/inspections")
    assert one.count == four.count


def test_batches_are_drawn_by_submission_and_reports_by_issue(db, users, lab, period):
    """Batches by their submission date within a method, site or state; reports by their issue
    date within the samples they cover; records outside the period are not in the population."""
    from app.reports.models import Report
    from tests.reports.conftest import make_report

    nh3n, cod = lab.method("HJ 535-2009", ("NH3-N", "0.025")), lab.method("HJ 828-2017", ("COD", "4"))
    site = lab.site("WS07")
    s1, s2 = lab.samples(2, site=site, collected_at=lab.t(-72))
    in_period = [lab.batch(nh3n, submitted_at=lab.t(-20)) for _ in range(3)]
    lab.result(in_period[0], s1, "NH3-N", "0.51")
    lab.batch(nh3n, started_at=lab.t(-24 * 40), submitted_at=lab.t(-24 * 40))  # before the period
    other = lab.batch(cod, submitted_at=lab.t(-20), parameters=("COD",))
    lab.batch(nh3n, submitted_at=lab.t(-20), state="open")
    inspector = users["inspector"]
    by_method = draw(db, inspector, period, target="batches", scope={"method": "HJ 535-2009", "state": "submitted"},
                     size=10)
    assert sorted(json.loads(by_method.picked)) == sorted(b.id for b in in_period)
    at_site = draw(db, inspector, period, target="batches", scope={"site": "WS07"}, size=10)
    assert json.loads(at_site.picked) == [in_period[0].id]
    assert other.id in json.loads(draw(db, inspector, period, target="batches", size=10).picked)

    covered = make_report(db, users["analyst"], [s1], state="issued")
    elsewhere = make_report(db, users["analyst"], [], state="issued")
    old = make_report(db, users["analyst"], [s2], state="issued")
    with db.transaction() as session:
        for report, when in ((covered, lab.t(-5)), (elsewhere, lab.t(-5)), (old, lab.t(-24 * 60))):
            session.get(Report, report.id).issued_at = when
    reports = draw(db, inspector, period, target="reports", size=10)
    assert sorted(json.loads(reports.picked)) == sorted([covered.id, elsewhere.id])
    by_site = draw(db, inspector, period, target="reports", scope={"site": "WS07", "method": "HJ 535-2009"},
                   size=10)
    assert json.loads(by_site.picked) == [covered.id]
    with db.reading() as session:
        view = inspections.inspection_view(session, users["quality_manager"], session.get(Inspection, by_site.id))
        assert [(p.label, p.evidence_href) for p in view.picks] == [
            (covered.report_no, f"/oversight/evidence/{covered.report_no}")]
