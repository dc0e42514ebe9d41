"""The quality manager's dashboard: the numbers on the page are the planted data, the trends
have a point per lab month, the page reads in a fixed number of queries, and only the quality
manager, inspectors and the lab head see it. Alarms, interference records and inspections are written straight
into their tables (their services are tested on their own)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from app.core.db import Database, utcnow
from app.core.errors import PermissionDenied
from app.core.files import file_store
from app.core.labtime import LabCalendar
from app.oversight import dashboard
from app.oversight.models import (
    AnomalyAlarm,
    FindingResponse,
    Inspection,
    InspectionFinding,
    InterferenceRecord,
    InterferenceSupplement,
)
from app.oversight.rules.base import rule_by_code
from tests.conftest import login
from tests.instruments.conftest import make_instrument
from tests.reference_materials.conftest import make_lot, make_material, receive

_n = iter(range(1, 10_000))


def add(db: Database, *rows) -> list:
    with db.transaction() as session:
        for row in rows:
            session.add(row)
        session.flush()
        ids = [row.id for row in rows]
    return ids


def alarm(rule: str, state: str = "open", *, responsible=None, raised_at: datetime | None = None) -> AnomalyAlarm:
    n = next(_n)
    return AnomalyAlarm(alarm_no=f"YC26-{n:05d}", rule_code=rule, rule_version=0, fingerprint=f"fp{n:061d}",
                        summary_zh="测试", summary_en="test", evidence="{}", state=state,
                        responsible_user_id=responsible.id if responsible else None,
                        raised_at=raised_at or utcnow())


def interference(db: Database, filer, *, filed_at: datetime | None = None, interferer=None,
                 restricted: bool = False) -> int:
    n = next(_n)
    (record_id,) = add(db, InterferenceRecord(
        record_no=f"GY26-{n:05d}", occurred_at=utcnow() - timedelta(days=1), interferer_name="某领导",
        interferer_user_id=interferer.id if interferer else None, channel="phone", request_kind="alter_data",
        what_was_asked="改数据", lab_response="refused", filed_at=filed_at or utcnow(), filed_by_id=filer.id,
        restricted=restricted))
    return record_id


def supplement(db: Database, record_id: int, kind: str, by) -> None:
    add(db, InterferenceSupplement(record_id=record_id, kind=kind, text=kind, recorded_at=utcnow(),
                                   recorded_by_id=by.id))


def inspection(db: Database, inspector, *, state: str = "open", findings: int = 0, answered: int = 0,
               responder=None) -> None:
    n = next(_n)
    (inspection_id,) = add(db, Inspection(
        inspection_no=f"JC26-{n:05d}", title=f"检查 {n}", target="samples", period_from=date(2026, 1, 1),
        period_to=date(2026, 6, 30), scope="{}", seed="s", population_size=10, population_sha256="0" * 64,
        draw_size=2, picked="[1,2]", state=state, drawn_at=utcnow(), inspector_id=inspector.id))
    ids = add(db, *[InspectionFinding(inspection_id=inspection_id, severity="minor", text="问题",
                                      recorded_at=utcnow(), recorded_by_id=inspector.id) for _ in range(findings)])
    add(db, *[FindingResponse(finding_id=i, text="已整改", responded_at=utcnow(), responded_by_id=responder.id)
              for i in ids[:answered]])


def months_of(db: Database) -> list[datetime]:
    return dashboard.month_starts(db.calendar, utcnow())


def in_month(bounds: list[datetime], index: int) -> datetime:
    return bounds[index] + timedelta(days=3, hours=5)


# ---------------------------------------------------------------- months


def test_month_starts_are_lab_months_across_a_year_end():
    calendar = LabCalendar()
    bounds = dashboard.month_starts(calendar, datetime.fromisoformat("2026-01-31T17:00:00+00:00"))  # Feb 1, 01:00 CST
    assert len(bounds) == 13
    assert [calendar.local_date(b) for b in (bounds[0], bounds[-2], bounds[-1])] == [
        date(2025, 3, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert bounds[-2].isoformat() == "2026-01-31T16:00:00+00:00"  # lab midnight, in UTC


# ---------------------------------------------------------------- the numbers


@pytest.fixture
def busy(db, users, lab, settings):
    """A lab with something in every card and trend."""
    analyst, qm, inspector = users["analyst"], users["quality_manager"], users["inspector"]
    bounds = months_of(db)
    add(db, alarm("A06", responsible=analyst), alarm("A06", "investigating", responsible=analyst),
        alarm("A06", "dismissed", responsible=analyst), alarm("Z99", responsible=users["checker"]),
        alarm("Z99"),
        alarm("A06", "confirmed", raised_at=in_month(bounds, 9)),
        alarm("A06", "dismissed", raised_at=in_month(bounds, 9)),
        alarm("A06", "confirmed", raised_at=in_month(bounds, 0)),
        alarm("A06", "confirmed", raised_at=bounds[0] - timedelta(days=2)))  # before the 12 months
    filed = interference(db, analyst)
    acknowledged = interference(db, analyst, filed_at=in_month(bounds, 10))
    supplement(db, acknowledged, "acknowledged", qm)
    reported = interference(db, analyst, filed_at=in_month(bounds, 10))
    supplement(db, reported, "acknowledged", qm)
    supplement(db, reported, "reported", qm)
    supplement(db, filed, "supplement", analyst)  # more facts: still filed
    interference(db, analyst, interferer=qm)  # names the quality manager: not counted for them
    interference(db, analyst, filed_at=in_month(bounds, 10), restricted=True)  # not for the lab head
    inspection(db, inspector, findings=3, answered=1, responder=qm)
    inspection(db, inspector, findings=0)
    inspection(db, inspector, state="closed", findings=2)
    make_instrument(db, users["technical_manager"], "JC-UV-009")  # never calibrated: overdue
    material = make_material(db, users["technical_manager"])
    store = file_store(settings.ensure_data_dir())
    lot = make_lot(db, users["technical_manager"], store, material, expires_on=date.today() + timedelta(days=10))
    receive(db, users["technical_manager"], lot, count=2)
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    batch = lab.batch(method, analyst, started_at=utcnow() - timedelta(hours=30))
    (s1,) = lab.samples(1)
    first = lab.result(batch, s1, "NH3-N", "0.5")
    lab.result(batch, s1, "NH3-N", "0.6", revision=2, supersedes=first, reason="转录错误",
               entered_at=batch.submitted_at + timedelta(hours=1))
    lab.qc(batch, "blank", "NH3-N", "0.2", passed=False, evaluated_at=in_month(bounds, 8))
    lab.qc(batch, "blank", "NH3-N", "0.0", passed=True, evaluated_at=in_month(bounds, 8))
    lab.qc(batch, "duplicate", "NH3-N", "30", passed=False, evaluated_at=in_month(bounds, 8))
    return {"bounds": bounds, "batch": batch}


def test_the_dashboard_counts_what_was_planted(db, users, busy):
    with db.reading() as session:
        view = dashboard.quality_dashboard(session, users["quality_manager"])
        by_rule = {r.code: (r.open, r.investigating) for r in view.alarms_by_rule}
        assert by_rule == {"A06": (1, 1), "Z99": (2, 0)}
        rule = rule_by_code("A06")
        a06 = next(r for r in view.alarms_by_rule if r.code == "A06")
        assert a06.title_en == (rule.title_en if rule else "A06")
        assert next(r for r in view.alarms_by_rule if r.code == "Z99").title_en == "Z99"
        assert [(a.username, a.count) for a in view.alarms_by_analyst] == [
            (users["analyst"].username, 2), (users["checker"].username, 1), ("", 1)]
        assert (view.interference.filed, view.interference.acknowledged, view.interference.reported) == (2, 1, 1)
        assert [(i.findings, i.awaiting) for i in view.inspections] == [(0, 0), (3, 2)]
        assert view.findings_awaiting == 2
        assert [line.asset_no for line in view.instruments] == ["JC-UV-009"]
        assert len(view.materials.expiring) == 2
        trends = {t.key: {s.key: s.counts for s in t.series} for t in view.trends}
    assert all(len(c) == 12 for t in trends.values() for c in t.values())
    assert trends["alarms"]["raised"][9] == 2 and trends["alarms"]["confirmed"][9] == 1
    assert trends["alarms"]["raised"][0] == 1 and trends["alarms"]["confirmed"][0] == 1
    assert trends["alarms"]["raised"][11] == 5  # the five raised now
    assert sum(trends["alarms"]["raised"]) == 8  # the one before the window is left out
    # the record naming the quality manager is not in their trend either
    assert trends["interference"]["filed"][10] == 3 and sum(trends["interference"]["filed"]) == 4
    assert trends["qc_failures"]["failed"] == [0] * 8 + [2] + [0] * 3
    assert sum(trends["revised"]["revised"]) == 1


def test_the_inspector_sees_the_interference_record_naming_the_quality_manager(db, users, busy):
    with db.reading() as session:
        view = dashboard.quality_dashboard(session, users["inspector"])
    assert (view.interference.filed, sum(_trend(view, "interference")["filed"])) == (3, 5)


def test_the_lab_head_counts_only_the_records_not_restricted(db, users, busy):
    with db.reading() as session:
        view = dashboard.quality_dashboard(session, users["lab_head"])
    assert (view.interference.filed, view.interference.acknowledged, view.interference.reported) == (2, 1, 1)
    assert _trend(view, "interference")["filed"][10] == 2 and sum(_trend(view, "interference")["filed"]) == 4


def _trend(view, key: str) -> dict[str, list[int]]:
    return next({s.key: s.counts for s in t.series} for t in view.trends if t.key == key)


def test_the_page_shows_the_numbers_and_a_point_per_month(client, db, users, busy):
    login(client, users["inspector"].username)
    page = client.get("/oversight/quality")
    assert page.status_code == 200, page.text
    text = page.text
    assert '<tr data-rule="A06">' in text and 'data-open="1"' in text and 'data-investigating="1"' in text
    assert 'href="/oversight/alarms?state=open&amp;rule=A06"' in text
    assert f'href="/oversight/alarms?state=open&amp;analyst={users["analyst"].username}"' in text
    assert re.search(r'data-card="alarms"><span class="count">4<', text)
    assert re.search(r'data-card="findings_awaiting"><span class="count">2<', text)
    assert re.search(r'data-card="instruments_overdue"><span class="count">1<', text)
    assert re.search(r'data-card="materials_expiring"><span class="count">2<', text)
    assert re.search(r'<tr data-state="reported">.*?<td class="num">1</td>', text, re.S)
    assert 'data-asset="JC-UV-009"' in text
    for key, series in (("alarms", ("raised", "confirmed")), ("interference", ("filed",)),
                        ("qc_failures", ("failed",)), ("revised", ("revised",))):
        figure = text.split(f'data-trend="{key}"')[1].split("</figure>")[0]
        assert figure.count("<svg") == 1 and "<title>" in figure and 'role="img" aria-label="' in figure
        for name in series:
            assert figure.count(f'class="point point-{name}"') == 12, (key, name)
    assert 'data-chain="ok"' in text


def test_the_page_runs_the_same_queries_empty_and_busy(client, db, users, lab, settings, count_queries):
    login(client, users["quality_manager"].username)
    with count_queries() as empty:
        assert client.get("/oversight/quality").status_code == 200
    bounds = months_of(db)
    add(db, *[alarm(f"A0{i % 9 + 1}", responsible=users["analyst"] if i % 2 else users["checker"],
                    raised_at=in_month(bounds, i % 12)) for i in range(40)])
    for _ in range(5):
        record = interference(db, users["analyst"])
        supplement(db, record, "acknowledged", users["quality_manager"])
    for _ in range(3):
        inspection(db, users["inspector"], findings=2, answered=1, responder=users["quality_manager"])
    make_instrument(db, users["technical_manager"], "JC-UV-101")
    make_instrument(db, users["technical_manager"], "JC-UV-102")
    with count_queries() as busy:
        page = client.get("/oversight/quality")
    assert page.status_code == 200 and 'data-asset="JC-UV-102"' in page.text
    assert empty.count == busy.count, (empty.count, busy.count)
    assert busy.count <= 25, busy.statements


def test_only_the_quality_manager_and_inspectors(client, db, users):
    for role, status in (("analyst", 403), ("technical_manager", 403), ("admin", 403), ("inspector", 200),
                         ("quality_manager", 200), ("lab_head", 200)):
        login(client, users[role].username)
        assert client.get("/oversight/quality").status_code == status, role
    with db.reading() as session, pytest.raises(PermissionDenied):
        dashboard.quality_dashboard(session, users["analyst"])


def test_the_empty_page(client, users):
    login(client, users["quality_manager"].username)
    page = client.get("/oversight/quality")
    assert page.status_code == 200
    assert page.text.count('class="point point-raised"') == 12
    assert "Quality dashboard" in page.text or "质量" in page.text
