"""The site pages as a technical manager, a quality manager and an inspector use them: the list
with its search and filters, proposing a site and a change by form, the request beside the
version it would replace, approval with the reference, rejection with a note, withdrawal, the
version history with its differences, the map drawn on a grid or on tiles, the dashboard worklist
and the scan box. A refused form shows its message with what was typed and saves nothing; the
inspector reads every page and is refused every post. Pages cost a fixed number of queries."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.sites import views
from app.sites.geo import distance_m
from app.sites.models import Site, SiteChangeRequest, SiteVersion
from tests.conftest import login, make_user, refusals_so_far
from tests.sites.conftest import D, change_site, make_site, proposal, reading


@pytest.fixture
def tm(users):
    return users["technical_manager"]


@pytest.fixture
def qm(users):
    return users["quality_manager"]


def login_en(client, username: str) -> str:
    token = login(client, username)
    client.cookies.set("lims_lang", "en")
    return token


def count(db, model) -> int:
    with reading(db) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def state(db) -> tuple[int, ...]:
    return tuple(count(db, m) for m in (Site, SiteVersion, SiteChangeRequest, AuditEvent))


def site_form(**changes) -> dict:
    form = {
        "code": "WS01", "name_zh": "黄浦江松浦大桥断面", "name_en": "Huangpu River, Songpu Bridge",
        "kind": "surface_water", "latitude": "30.9543210", "longitude": "121.4567890", "water_body": "river",
        "basin": "黄浦江", "district": "松江区", "department": "市生态环境局监测处",
        "parameter": ["pH", "COD", "", ""], "frequency": ["monthly", "quarterly", "monthly", "monthly"],
        "reason": "新设国控断面",
    }
    form.update(changes)
    return form


def open_request(db) -> SiteChangeRequest:
    with reading(db) as session:
        return session.scalars(select(SiteChangeRequest).where(SiteChangeRequest.status == "submitted")).one()


# ---------------------------------------------------------------- proposing and deciding by form


def test_a_site_is_proposed_by_form_approved_by_another_and_shown_with_its_version(client, db, tm, qm):
    token = login_en(client, "technical-manager")
    page = client.get("/sites/new")
    assert page.status_code == 200 and 'name="latitude"' in page.text and "COD ·" in page.text
    response = client.post("/sites/new", data={**site_form(code="ws01"), "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/sites/WS01"
    page = client.get("/sites/WS01")
    assert page.status_code == 200 and "Proposed" in page.text and "黄浦江松浦大桥断面" in page.text
    change = open_request(db)
    assert f'data-open-request="{change.id}"' in page.text

    # the proposer sees the request but no decision form
    page = client.get(f"/sites/requests/{change.id}")
    assert page.status_code == 200 and f'action="/sites/requests/{change.id}/approve"' not in page.text
    assert f'action="/sites/requests/{change.id}/withdraw"' in page.text

    client.cookies.clear()
    token = login_en(client, "quality-manager")
    page = client.get(f"/sites/requests/{change.id}")
    assert f'action="/sites/requests/{change.id}/approve"' in page.text
    assert "No approved version" in page.text and page.text.count("data-changed") >= 10
    response = client.post(f"/sites/requests/{change.id}/approve",
                           data={"decision_ref": "环监字〔2026〕12号", "note": "", "effective_from": "",
                                 "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == f"/sites/requests/{change.id}"
    page = client.get("/sites/WS01").text
    assert "Approved version in force" in page and 'data-status="active"' in page
    assert "环监字〔2026〕12号" in page and 'data-version="1"' in page and "30.9543210" in page
    assert "<code>pH</code>" in page and "Quarterly" in page


def test_a_refused_form_shows_the_message_with_what_was_typed_and_saves_nothing(client, db, tm):
    token = login_en(client, "technical-manager")
    before = state(db)
    cases = [
        (site_form(latitude="95.5"), "coordinate_out_of_range", 'value="95.5"'),
        (site_form(longitude="121.123456789"), "coordinate_too_precise", 'value="121.123456789"'),
        (site_form(latitude="north"), "bad_coordinate", 'value="north"'),
        (site_form(code="new"), "reserved_site_code", 'value="new"'),
        (site_form(code="W"), "malformed_site_code", 'name_zh'),
        (site_form(reason=" "), "site_reason_required", "黄浦江松浦大桥断面"),
        (site_form(parameter=["PM2.5"], frequency=["weekly"]), "parameter_not_for_kind", "PM2.5"),
        (site_form(parameter=["Kryptonite"], frequency=["weekly"]), "unknown_parameter", 'value="Kryptonite" selected'),
        (site_form(parameter=["COD", "cod"], frequency=["weekly", "weekly"]), "duplicate_site_parameter", "COD"),
        (site_form(kind="volcano"), "unknown_choice", "黄浦江"),
    ]
    for form, code, kept in cases:
        response = client.post("/sites/new", data={**form, "csrf_token": token})
        assert response.status_code == 422, (code, response.status_code)
        assert f'data-code="{code}"' in response.text, (code, response.text[:2000])
        assert kept in response.text, code
    assert state(db) == before
    client.post("/sites/new", data={**site_form(), "csrf_token": token})
    response = client.post("/sites/new", data={**site_form(code="ws01"), "csrf_token": token})
    assert response.status_code == 409 and 'data-code="duplicate_site_code"' in response.text


def test_a_change_is_proposed_from_the_prefilled_form_and_the_history_shows_what_changed(client, db, tm, qm):
    site = make_site(db, tm, qm)
    token = login_en(client, "technical-manager")
    page = client.get("/sites/WS01/change")
    assert page.status_code == 200
    assert 'value="30.9543210"' in page.text and 'value="黄浦江"' in page.text
    assert '<option value="NH3-N" selected>' in page.text and 'value="suspend"' in page.text
    assert 'value="reactivate"' not in page.text
    form = site_form(latitude="30.9550000", parameter=["pH", "COD", "TN"],
                     frequency=["weekly", "monthly", "monthly"], reason="桥梁改建，断面下移 80 米")
    form.pop("code")
    response = client.post("/sites/WS01/change", data={**form, "request_kind": "change", "csrf_token": token})
    assert response.status_code == 303
    change = open_request(db)
    assert response.headers["location"] == f"/sites/requests/{change.id}"

    page = client.get(f"/sites/requests/{change.id}").text
    rows = re.findall(r'<tr class="changed" data-(?:field|parameter)="([^"]+)"', page)
    assert set(rows) == {"latitude", "pH", "TN", "NH3-N", "TP"}
    moved = distance_m(D("30.9543210"), D("121.4567890"), D("30.9550000"), D("121.4567890"))
    assert f'data-moved-m="{moved:.0f}"' in page and 70 < moved < 80  # 0.000679 degrees north

    client.cookies.clear()
    token = login_en(client, "quality-manager")
    client.post(f"/sites/requests/{change.id}/approve",
                data={"decision_ref": "环监字〔2026〕30号", "csrf_token": token})
    page = client.get("/sites/WS01").text
    history = page[page.index('id="history"'):]
    v2 = history[history.index('data-version="2"'):history.index('data-version="1"')]
    assert 'data-field="latitude"' in v2 and "30.9543210" in v2 and "30.9550000" in v2
    assert 'data-parameter="TN"' in v2 and "added" in v2 and 'data-parameter="TP"' in v2 and "dropped" in v2
    assert 'data-parameter="COD"' not in v2  # monthly before and after
    assert "in force" in v2 and "桥梁改建" in v2
    with reading(db) as session:
        assert session.get(Site, site.id).current_version_id is not None


def test_suspension_is_requested_with_a_reason_and_a_rejection_needs_a_note(client, db, tm, qm):
    make_site(db, tm, qm)
    token = login_en(client, "technical-manager")
    before = state(db)
    response = client.post("/sites/WS01/change", data={"request_kind": "suspend", "reason": "", "csrf_token": token})
    assert response.status_code == 422 and 'data-code="site_reason_required"' in response.text
    assert state(db) == before
    response = client.post("/sites/WS01/change", data={"request_kind": "suspend", "reason": "河道清淤，暂停三个月",
                                                       "csrf_token": token})
    assert response.status_code == 303
    response = client.post("/sites/WS01/change", data={"request_kind": "decommission", "reason": "x",
                                                       "csrf_token": token})
    assert response.status_code == 409 and 'data-code="site_request_open"' in response.text
    change = open_request(db)

    client.cookies.clear()
    token = login_en(client, "quality-manager")
    before = state(db)
    for data, code in (({"decision_ref": "", "note": ""}, "site_rejection_note_required"),):
        response = client.post(f"/sites/requests/{change.id}/reject", data={**data, "csrf_token": token})
        assert response.status_code == 422 and f'data-code="{code}"' in response.text
    for data, code in (({"decision_ref": " "}, "site_decision_ref_required"),
                       ({"decision_ref": "环监字〔2026〕31号", "effective_from": "2020-01-01T08:00"},
                        "site_change_retroactive"),
                       ({"decision_ref": "环监字〔2026〕31号", "effective_from": "soon"}, "malformed_datetime")):
        response = client.post(f"/sites/requests/{change.id}/approve", data={**data, "csrf_token": token})
        assert response.status_code == 422 and f'data-code="{code}"' in response.text, code
        assert data["decision_ref"] in response.text
    assert state(db) == before
    response = client.post(f"/sites/requests/{change.id}/reject",
                           data={"note": "清淤期间仍需监测", "csrf_token": token})
    assert response.status_code == 303
    page = client.get(f"/sites/requests/{change.id}").text
    assert 'data-request-status="rejected"' in page and "清淤期间仍需监测" in page
    assert f'action="/sites/requests/{change.id}/approve"' not in page
    response = client.post(f"/sites/requests/{change.id}/approve",
                           data={"decision_ref": "环监字〔2026〕31号", "csrf_token": token})
    assert response.status_code == 409 and 'data-code="site_request_decided"' in response.text


def test_a_future_effective_time_is_accepted_and_shown_as_upcoming(client, db, tm, qm):
    site = make_site(db, tm, qm)
    with db.transaction() as session:
        from app.sites import service

        service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                               reason="汛期停测")
    change = open_request(db)
    token = login_en(client, "quality-manager")
    later = (utcnow() + timedelta(days=3)).astimezone(db.calendar.tz).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/sites/requests/{change.id}/approve",
                           data={"decision_ref": "环监字〔2026〕40号", "effective_from": later, "csrf_token": token})
    assert response.status_code == 303
    page = client.get("/sites/WS01").text
    assert "takes effect later" in page and 'data-status="active"' in page.split('id="history"')[0]


def test_the_proposer_withdraws_and_a_quality_manager_who_proposed_cannot_decide(client, db, qm):
    both = make_user(db, "tm-qm", "technical_manager", "quality_manager")
    token = login_en(client, "tm-qm")
    client.post("/sites/new", data={**site_form(), "csrf_token": token})
    change = open_request(db)
    page = client.get(f"/sites/requests/{change.id}").text
    assert "another quality manager decides it" in page and "/approve" not in page
    before = state(db)
    response = client.post(f"/sites/requests/{change.id}/approve", data={"decision_ref": "环监字〔2026〕1号",
                                                                           "csrf_token": token})
    assert response.status_code == 409 and 'data-code="site_self_approval"' in response.text
    assert state(db) == before

    client.cookies.clear()
    other = login_en(client, "technical-manager")
    response = client.post(f"/sites/requests/{change.id}/withdraw", data={"note": "", "csrf_token": other})
    assert response.status_code == 403 and both.id
    client.cookies.clear()
    token = login_en(client, "tm-qm")
    response = client.post(f"/sites/requests/{change.id}/withdraw", data={"note": "编码有误", "csrf_token": token})
    assert response.status_code == 303
    page = client.get("/sites/WS01").text
    assert 'data-request-status="withdrawn"' in page and "Propose this site again" in page
    page = client.get("/sites/WS01/change?kind=create").text
    assert 'name="request_kind" value="create"' in page and 'value="30.9543210"' in page


# ---------------------------------------------------------------- lists, search, scan, dashboard


def test_the_list_searches_by_code_name_and_basin_and_filters_by_kind_and_status(client, db, tm, qm):
    make_site(db, tm, qm, "WS01")
    make_site(db, tm, qm, "WS02", name_zh="苏州河浙江路桥", basin="苏州河")
    make_site(db, tm, qm, "AQ01", kind="ambient_air", water_body="", name_zh="徐汇上师大站", basin="",
              parameters=[("PM2.5", "weekly")])
    site = make_site(db, tm, qm, "WS03", name_zh="淀山湖中心", water_body="lake", basin="淀山湖")
    change_site(db, tm, qm, site, kind="suspend")
    with db.transaction() as session:
        from app.sites import service

        service.propose_site(session, tm, code="GW01", proposal=proposal(kind="groundwater", name_zh="青浦地下水井"),
                             reason="新设")
    login_en(client, "sampler")

    def codes(query: str = "") -> list[str]:
        page = client.get(f"/sites{query}")
        assert page.status_code == 200, page.text[:500]
        return re.findall(r'<tr data-site="([^"]+)"', page.text)

    assert codes() == ["AQ01", "GW01", "WS01", "WS02", "WS03"]
    assert codes("?q=ws0") == ["WS01", "WS02", "WS03"]
    assert codes("?q=苏州河") == ["WS02"]
    assert codes("?q=青浦") == ["GW01"]  # a proposed site is found by its proposed name
    assert codes("?kind=ambient_air") == ["AQ01"]
    assert codes("?status=suspended") == ["WS03"]
    assert codes("?status=proposed") == ["GW01"]
    assert codes("?status=active&kind=surface_water") == ["WS01", "WS02"]
    assert codes("?q=%25") == [] and codes("?q=_") == []
    fragment = client.get("/sites?q=ws", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    assert client.get("/sites?kind=volcano").status_code == 422
    assert client.get("/sites?status=gone").status_code == 422


def test_requests_list_is_the_quality_managers_worklist(client, db, tm, qm):
    site = make_site(db, tm, qm)
    make_site(db, tm, qm, "WS02")
    with db.transaction() as session:
        from app.sites import service

        service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None, reason="施工")
    login_en(client, "quality-manager")
    dashboard = client.get("/dashboard").text
    card = re.search(r'<a class="worklist has-work" href="/sites/requests">\s*<span class="count">(\d+)</span>',
                     dashboard)
    assert card and card.group(1) == "1"
    page = client.get("/sites/requests").text
    assert len(re.findall(r'<tr data-request="', page)) == 1 and "施工" in page
    assert len(re.findall(r'<tr data-request="', client.get("/sites/requests?status=approved").text)) == 2
    assert len(re.findall(r'<tr data-request="', client.get("/sites/requests?status=all").text)) == 3
    assert client.get("/sites/requests?status=open").status_code == 422
    assert 'href="/sites"' in dashboard  # the nav entry
    client.cookies.clear()
    login_en(client, "technical-manager")
    assert 'href="/sites/requests"' not in client.get("/dashboard").text  # not theirs to decide


def test_a_site_code_in_the_scan_box_opens_the_site(client, db, tm, qm):
    make_site(db, tm, qm, "HP-01")
    login_en(client, "sampler")
    response = client.get("/scan", params={"code": " hp-01 "})
    assert response.status_code == 303 and response.headers["location"] == "/sites/HP-01"
    assert client.get("/scan", params={"code": "HP-02"}).status_code == 404
    response = client.get("/sites/hp-01")
    assert response.status_code == 303 and response.headers["location"] == "/sites/HP-01"
    assert client.get("/sites/NOPE").status_code == 404
    assert client.get("/sites/" + "x" * 65).status_code == 422


# ---------------------------------------------------------------- the inspector


def test_the_inspector_reads_every_site_page_and_is_refused_every_post(client, db, tm, qm):
    site = make_site(db, tm, qm)
    with db.transaction() as session:
        from app.sites import service

        change = service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                                        reason="施工")
    token = login_en(client, "inspector")
    for url in ("/sites", "/sites/map", "/sites/requests", f"/sites/requests/{change.id}", "/sites/WS01",
                "/api/v1/sites", "/api/v1/sites/WS01"):
        assert client.get(url).status_code == 200, url
    for url in ("/sites/new", "/sites/WS01/change"):
        response = client.get(url)
        assert response.status_code == 403 and "inspector_read_only" in response.text, url
    before, mark = state(db), refusals_so_far(db)
    posts = {
        "/sites/new": site_form(code="WS09"),
        "/sites/WS01/change": {"request_kind": "decommission", "reason": "x"},
        f"/sites/requests/{change.id}/approve": {"decision_ref": "环监字〔2026〕1号"},
        f"/sites/requests/{change.id}/reject": {"note": "no"},
        f"/sites/requests/{change.id}/withdraw": {"note": "no"},
    }
    for url, data in posts.items():
        response = client.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 403, (url, response.status_code)
        assert "inspector_read_only" in response.text
    kept = refusals_so_far(db) - mark  # each attempt kept in the audit trail as a refusal (issue 10)
    assert kept == len(posts) and state(db) == (*before[:-1], before[-1] + kept)


# ---------------------------------------------------------------- the map


def test_without_tiles_the_map_is_an_svg_grid_that_needs_no_javascript(client, db, tm, qm):
    make_site(db, tm, qm, "WS01", latitude=D("31.2304"), longitude=D("121.4737"))
    make_site(db, tm, qm, "WS02", latitude=D("31.10"), longitude=D("121.30"), name_en="<b>Dianshan</b>")
    make_site(db, tm, qm, "AQ01", kind="ambient_air", water_body="", latitude=D("31.16"), longitude=D("121.43"),
              parameters=[("PM10", "weekly")])
    suspended = make_site(db, tm, qm, "WS03", latitude=D("31.3"), longitude=D("121.5"))
    change_site(db, tm, qm, suspended, kind="suspend")
    login_en(client, "sampler")
    page = client.get("/sites/map")
    assert page.status_code == 200
    html = page.text
    assert "<svg" in html and "leaflet" not in html and "<script src=\"/static/sites-map.js" not in html
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert re.findall(r'<a href="/sites/([^"]+)" data-site', svg) == ["AQ01", "WS01", "WS02"]  # active only
    assert 'data-kind="ambient_air"' in svg and views.KIND_COLOURS["ambient_air"] in svg
    assert "<b>" not in svg and "&lt;b&gt;Dianshan&lt;/b&gt;" in svg
    meridians = re.findall(r'<text class="meridian"[^>]*>([^<]+)</text>', svg)
    parallels = re.findall(r'<text class="parallel"[^>]*>([^<]+)</text>', svg)
    assert len(meridians) >= 3 and all(m.endswith("°E") for m in meridians)
    assert len(parallels) >= 3 and all(p.endswith("°N") for p in parallels)
    # points lie inside the plot, north up and east right
    points = {code: (float(x), float(y)) for x, y, code in
              re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"[^>]*/>\s*<text[^>]*>([^<]+)</text>', svg)}
    assert points["WS01"][0] > points["WS02"][0] and points["WS01"][1] < points["WS02"][1]
    assert "WS03" not in svg


def test_with_a_tile_server_the_map_uses_leaflet_with_the_points_as_json(app, client, db, tm, qm):
    app.state.settings.map_tile_url = "/tiles/{z}/{x}/{y}.png"
    app.state.settings.map_tile_attribution = "© 市测绘院"
    make_site(db, tm, qm, "WS01", name_en="Section</script><script>alert(1)</script>")
    login_en(client, "sampler")
    html = client.get("/sites/map").text
    assert "<svg" not in html
    assert '<script src="/static/vendor/leaflet/leaflet.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css">' in html
    assert 'data-tile-url="/tiles/{z}/{x}/{y}.png"' in html and 'data-attribution="© 市测绘院"' in html
    data = re.search(r'<script type="application/json" id="site-points">(.*?)</script>', html, re.S).group(1)
    assert "</script>" not in data and "\\u003c/script>" in data
    import json

    [point] = json.loads(data)
    assert point == {"code": "WS01", "name": "Section</script><script>alert(1)</script>", "kind": "surface_water",
                     "lat": "30.9543210", "lon": "121.4567890", "colour": views.KIND_COLOURS["surface_water"],
                     "url": "/sites/WS01"}
    # only this page loads Leaflet
    assert "leaflet" not in client.get("/sites").text
    assert client.get("/static/sites-map.js").status_code == 200


def test_an_empty_map_says_so(client, users):
    login_en(client, "sampler")
    assert "No active sites yet." in client.get("/sites/map").text


@pytest.mark.parametrize(("span", "lines", "step"),
                         [(1.0, 5, 0.2), (0.05, 5, 0.01), (12.0, 6, 2.0), (0.0116, 5, 0.005)])
def test_grid_steps_are_round_numbers(span, lines, step):
    assert views.nice_step(span, lines) == pytest.approx(step)


def test_the_grid_keeps_one_scale_and_a_lone_site_gets_a_grid_around_it():
    def point(code, lat, lon, kind="surface_water"):
        return views.MapPoint(code, code, code, kind, D(lat), D(lon))

    grid = views.grid_map([point("A", "45.0", "126.0")])
    assert grid.meridians and grid.parallels and len(grid.points) == 1
    placed = grid.points[0]
    assert grid.left < placed.x < grid.left + grid.plot_width and grid.top < placed.y < grid.top + grid.plot_height
    # a degree of longitude near 60°N is about half a degree of latitude on the plot
    grid = views.grid_map([point("A", "60.0", "10.0"), point("B", "61.0", "12.0")])
    a, b = grid.points
    assert (b.x - a.x) / (a.y - b.y) == pytest.approx(2 * math.cos(math.radians(60.5)), rel=0.005)
    assert views.grid_map([]) is None
    south = views.grid_map([point("S", "-33.9", "18.4"), point("T", "-34.1", "18.6")])
    assert all(p.label.endswith("°S") for p in south.parallels)
    west = views.grid_map([point("W", "40.7", "-74.0"), point("X", "40.8", "-73.9")])
    assert all(m.label.endswith("°W") for m in west.meridians)


# ---------------------------------------------------------------- query counts


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up (role cache, templates)
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def test_the_list_map_and_requests_pages_cost_the_same_for_few_and_many_sites(client, db, tm, qm, count_queries):
    def sites(first: int, last: int) -> None:
        for n in range(first, last):
            site = make_site(db, tm, qm, f"WS{n:02d}")
            change_site(db, tm, qm, site, basin=f"河{n}")
            with db.transaction() as session:
                from app.sites import service

                service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                                       reason=f"施工 {n}")
            with db.transaction() as session:
                from app.sites import service

                service.propose_site(session, tm, code=f"GW{n:02d}", proposal=proposal(kind="groundwater"),
                                     reason="新设")

    sites(0, 2)
    login_en(client, "quality-manager")
    urls = ("/sites", "/sites?q=ws&status=active", "/sites?status=proposed", "/sites/map", "/sites/requests",
            "/sites/requests?status=all", "/api/v1/sites")
    few = {url: statements(client, count_queries, url) for url in urls}
    sites(2, 12)
    assert client.get("/sites").text.count('<tr data-site="') == 24
    assert client.get("/sites/requests").text.count('<tr data-request="') == 24
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert max(many.values()) <= 8, many


def test_the_site_and_request_pages_cost_the_same_for_few_and_many_versions(client, db, tm, qm, count_queries):
    t0 = utcnow() - timedelta(days=200)
    site = make_site(db, tm, qm, since=t0)

    def versions(n: int, start: int) -> None:
        for i in range(start, start + n):
            change_site(db, tm, qm, site, at=t0 + timedelta(days=i + 1), basin=f"河段 {i}",
                        parameters=[("pH", "monthly"), ("COD", "weekly" if i % 2 else "monthly")])

    versions(2, 0)
    with db.transaction() as session:
        from app.sites import service

        change = service.propose_change(session, tm, session.get(Site, site.id), kind="change",
                                        proposal=proposal(basin="新河段"), reason="x")
    login_en(client, "quality-manager")
    urls = ("/sites/WS01", f"/sites/requests/{change.id}", "/api/v1/sites/WS01")
    few = [statements(client, count_queries, url) for url in urls]
    with db.transaction() as session:
        from app.sites import service

        service.withdraw_change(session, tm, session.get(SiteChangeRequest, change.id))
    versions(12, 2)
    with db.transaction() as session:
        from app.sites import service

        change2 = service.propose_change(session, tm, session.get(Site, site.id), kind="change",
                                         proposal=proposal(basin="更新河段"), reason="y")
    assert client.get("/sites/WS01").text.count('data-version="') == 15
    many = [statements(client, count_queries, url.replace(f"/{change.id}", f"/{change2.id}")) for url in urls]
    assert many == few
    assert max(many) <= 9, many


# ---------------------------------------------------------------- bad input never gives a 5xx


@pytest.mark.parametrize("actor", ["technical-manager", "quality-manager"])
def test_malformed_input_to_every_site_route_as_those_allowed_gives_a_4xx(app, db, tm, qm, actor):
    """The shared fuzz test posts as an admin and a quality manager; here the technical manager
    (who may propose) and the quality manager (who may decide) send the same garbage to every site
    route, on a real site and a real open request, so the parsing behind the permission is reached."""
    from fastapi.testclient import TestClient

    from tests.test_errors import BAD_IDS, leak_in, malformed_forms
    from tests.test_permissions import endpoints

    site = make_site(db, tm, qm)
    with db.transaction() as session:
        from app.sites import service

        change = service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                                        reason="施工")
    client = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    token = login(client, actor)
    objects = {"site_code": "WS01", "site_request_id": change.id}
    failures = []
    for endpoint in endpoints(app):
        if not endpoint.path.startswith(("/sites", "/api/v1/sites")):
            continue
        url = endpoint.url(objects)
        sends = [("query", {"params": {name: "☃" * 200 for name in endpoint.query}})]
        if endpoint.mutating:
            sends += [(label, {"data": form}) for label, form in malformed_forms(endpoint).items()]
            sends.append(("json", {"json": {f: "x" * 5000 for f in endpoint.body}}))
        for bad in BAD_IDS if endpoint.id_params else ():
            sends.append((f"id {bad}", {"url": endpoint.url(default=bad)}))
        for label, kwargs in sends:
            target = kwargs.pop("url", url)
            response = client.request(endpoint.method, target, headers={"X-CSRF-Token": token}, **kwargs)
            if response.status_code >= 500 or (response.status_code >= 400 and leak_in(response.text)):
                failures.append((endpoint, label, response.status_code, response.text[:200]))
    assert not failures, "\n".join(map(str, failures))
    with reading(db) as session:
        assert session.get(SiteChangeRequest, change.id).status in ("submitted", "rejected", "withdrawn")
