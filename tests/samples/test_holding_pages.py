"""The holding-time worklist (order, filters, keyset pages, htmx, constant queries), the deviation
page and the clocks on the sample page."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update

from app.core.db import utcnow
from app.samples import holding
from app.samples.lab_models import HoldingClock, HoldingDeviation
from app.samples.models import Sample
from tests.conftest import login
from tests.samples.holding_fixtures import make_clocks
from tests.samples.lab_fixtures import *  # noqa: F403

H = timedelta(hours=1)
# parameter, allowed hours, age: red (expired), amber (>= 75 %), green, as soon as possible
SPEC = [("COD", 48, 50 * H), ("NH3-N", 24, 20 * H), ("Cu", 336, 10 * H), ("FC", None, 2 * H),
        ("TP", 24, 25 * H), ("CODMn", 48, 37 * H)]


def numbers_in(html: str) -> list[str]:
    return re.findall(r'<code>(HT-\d{6})</code>', html)


def test_the_worklist_puts_as_soon_as_possible_first_then_by_time_left(db, users, client):
    numbers = make_clocks(db, users["custodian"].id, SPEC)
    with db.reading() as session:
        page = holding.worklist(session, holding.WorklistFilters())
        assert [r.sample_no for r in page.rows] == [numbers[i] for i in (3, 0, 4, 1, 5, 2)]
        assert [r.reading.colour.value for r in page.rows] == ["none", "red", "red", "amber", "amber", "green"]
        assert page.next_cursor is None
        for row in page.rows:  # the worklist's fast reading is the clock's reading
            r = row.reading
            assert r == holding.read_clock(r.started_at, None if r.allowed is None else int(r.allowed / H), page.at)
        assert holding.count_running_out(session) == 4
        red = holding.worklist(session, holding.WorklistFilters(colour="red"))
        assert [r.sample_no for r in red.rows] == [numbers[0], numbers[4]]
        amber = holding.worklist(session, holding.WorklistFilters(colour="amber"))
        assert [r.sample_no for r in amber.rows] == [numbers[1], numbers[5]]
        green = holding.worklist(session, holding.WorklistFilters(colour="green"))
        assert [r.sample_no for r in green.rows] == [numbers[2]]
        asap = holding.worklist(session, holding.WorklistFilters(colour="none"))
        assert [r.sample_no for r in asap.rows] == [numbers[3]]
        due = holding.worklist(session, holding.WorklistFilters(colour="due"))
        assert [r.sample_no for r in due.rows] == [numbers[i] for i in (0, 4, 1, 5)]
        cu = holding.worklist(session, holding.WorklistFilters(parameter="Cu"))
        assert [r.sample_no for r in cu.rows] == [numbers[2]]
    login(client, "analyst")
    html = client.get("/holding").text
    assert numbers_in(html) == [numbers[i] for i in (3, 0, 4, 1, 5, 2)]
    assert 'data-colour="red"' in html and 'data-colour="amber"' in html and 'data-colour="green"' in html
    assert "Record deviation" not in html  # the analyst may not record one
    assert numbers_in(client.get("/holding?colour=amber").text) == [numbers[1], numbers[5]]


def test_filters_by_matrix_and_state_and_stopped_or_closed_samples_are_not_listed(db, users):
    water = make_clocks(db, users["custodian"].id, SPEC[:2])
    soil = make_clocks(db, users["custodian"].id, [("Cu", 336, H)], prefix="HS", matrix="soil", state="in_storage")
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.sample_no == water[1]).values(state="rejected"))
    with db.reading() as session:
        assert [r.sample_no for r in holding.worklist(session, holding.WorklistFilters(matrix="soil")).rows] == soil
        assert [r.sample_no for r in holding.worklist(session, holding.WorklistFilters(state="in_storage")).rows] \
            == soil
        listed = [r.sample_no for r in holding.worklist(session, holding.WorklistFilters()).rows]
        assert water[1] not in listed and water[0] in listed
        sample = session.scalars(select(Sample).where(Sample.sample_no == water[0])).one()
        holding.stop_clocks(session, sample, "analysed", utcnow())
        assert water[0] not in [r.sample_no for r in holding.worklist(session, holding.WorklistFilters()).rows]


def test_keyset_pages_follow_each_other_without_gaps_or_repeats(db, users, client):
    spec = [("COD", 48, i * H / 3) for i in range(7)] + [("FC", None, H)] * 3
    numbers = make_clocks(db, users["custodian"].id, spec)
    seen: list[str] = []
    cursor = ""
    with db.reading() as session:
        for _ in range(6):
            page = holding.worklist(session, holding.WorklistFilters(), size=3, cursor=cursor)
            seen += [r.sample_no for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    asap, timed = numbers[7:], numbers[:7]
    assert seen == asap + list(reversed(timed))  # older samples have less time left
    assert holding.parse_cursor("garbage") is None and holding.parse_cursor("d.x.y.z") is None
    login(client, "analyst")
    first = client.get("/holding", params={"after": "n.not-a-number"})
    assert first.status_code == 200 and numbers_in(first.text)[:3] == asap


def test_the_first_page_costs_the_same_queries_for_few_and_many_clocks(db, users, client, count_queries):
    login(client, "custodian")

    def cost(query: str) -> int:
        with count_queries() as counted:
            assert client.get(f"/holding{query}").status_code == 200
        return counted.count

    make_clocks(db, users["custodian"].id, SPEC[:2], prefix="HA")
    few = {q: cost(q) for q in ("", "?colour=amber", "?colour=red&matrix=water")}
    make_clocks(db, users["custodian"].id, [SPEC[i % len(SPEC)] for i in range(400)], prefix="HB")
    many = {q: cost(q) for q in few}
    assert many == few


def test_an_htmx_request_gets_the_results_block(db, users, client):
    make_clocks(db, users["custodian"].id, SPEC[:1])
    login(client, "analyst")
    fragment = client.get("/holding?colour=red", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="results">') and "<html" not in fragment.text
    assert client.get("/holding?colour=purple").status_code == 422


def _expire(db, sample, hours=60):
    """Move a sample's clocks back, as if it had been sampled `hours` ago."""
    with db.transaction() as session:
        for clock in session.scalars(select(HoldingClock).where(HoldingClock.sample_id == sample.id)):
            clock.started_at -= timedelta(hours=hours)
            clock.deadline_at = holding.deadline(clock.started_at, clock.allowed_hours)


def test_the_quality_manager_records_a_deviation_on_its_page(db, users, client, collected_task):
    sample = collected_task.routine
    _expire(db, sample)
    csrf = login(client, "quality-manager")
    form = client.get(f"/holding/{sample.sample_no}/deviation?parameter=COD")
    assert form.status_code == 200 and 'value="COD" checked' in form.text
    listed = client.get("/holding?colour=red").text
    assert f"/holding/{sample.sample_no}/deviation?parameter=COD" in listed

    refused = client.post(f"/holding/{sample.sample_no}/deviation",
                          data={"parameters": ["COD"], "act": "analysis", "reason": " ", "csrf_token": csrf})
    assert refused.status_code == 422 and 'data-code="field_required"' in refused.text
    not_due = client.post(f"/holding/{sample.sample_no}/deviation",
                          data={"parameters": ["Cu"], "act": "analysis", "reason": "x", "csrf_token": csrf})
    assert not_due.status_code == 409 and 'data-code="holding_deviation_not_due"' in not_due.text
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(HoldingDeviation)) == 0

    done = client.post(f"/holding/{sample.sample_no}/deviation",
                       data={"parameters": ["COD", "NH3-N"], "act": "preparation", "reason": "消解炉故障，延迟制备",
                             "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/samples/{sample.sample_no}#clocks"
    with db.reading() as session:
        assert sorted(session.scalars(select(HoldingDeviation.parameter))) == ["COD", "NH3-N"]
    page = client.get(f"/samples/{sample.sample_no}")
    assert page.status_code == 200 and 'id="clocks"' in page.text and "消解炉故障，延迟制备" in page.text
    assert 'data-parameter="COD" data-colour="red"' in page.text


def test_the_deviation_page_is_for_the_quality_manager_only(db, users, client, collected_task):
    sample = collected_task.routine
    csrf = login(client, "analyst")
    assert client.get(f"/holding/{sample.sample_no}/deviation").status_code == 403
    assert client.post(f"/holding/{sample.sample_no}/deviation",
                       data={"parameters": ["COD"], "act": "analysis", "reason": "x", "csrf_token": csrf}
                       ).status_code == 403
    login(client, "quality-manager")
    assert client.get("/holding/NO-SUCH-SAMPLE/deviation").status_code == 404


def test_the_sample_page_shows_its_clocks_in_a_fixed_number_of_queries(db, users, client, collected_task):
    sample = collected_task.routine
    login(client, "analyst")
    page = client.get(f"/samples/{sample.sample_no}")
    assert 'id="clocks"' in page.text and 'data-parameter="COD" data-colour="green"' in page.text
    assert 'data-parameter="pH"' not in page.text  # measured on site: no clock
    with db.reading() as session:
        s = session.get(Sample, sample.id)
        assert holding.clock_section(session, s).rows
        blank = session.get(Sample, collected_task.samples[1].id)

        def queries(target) -> int:
            from sqlalchemy import event
            seen = []

            def before(*args):
                seen.append(1)
            event.listen(db.engine, "before_cursor_execute", before)
            try:
                holding.clock_section(session, target)
            finally:
                event.remove(db.engine, "before_cursor_execute", before)
            return len(seen)

        assert queries(s) == queries(blank) == 2
