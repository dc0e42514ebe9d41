"""The control-chart pages: the list, a chart addressed by a method code with a slash and spaces,
the baseline form (first N points or a date range; refusals in the page, nothing saved), who may
set a baseline, and query counts that do not grow with the points."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.analysis.control_charts import chart_href
from app.analysis.models import ControlBaseline
from app.core.db import utcnow
from tests.analysis.conftest import make_method
from tests.analysis.curve_fixtures import chart_points
from tests.analysis.test_control_charts import BASE
from tests.conftest import login

SLASHED = "HJ/T 91-2002"


@pytest.fixture
def slashed(db, technical, uv):
    return make_method(db, technical, SLASHED, instruments=(uv,))


def baselines(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(ControlBaseline))


def test_the_list_and_a_chart_with_a_slashed_method_code(db, client, analyst, slashed):
    chart_points(db, slashed, analyst, BASE)
    login(client, analyst.username)
    page = client.get("/charts")
    assert page.status_code == 200 and 'data-chart="HJ/T 91-2002|NH3-N|spike"' in page.text
    href = chart_href(SLASHED, "NH3-N", "spike")
    assert href == "/charts/HJ/T%2091-2002/NH3-N/spike" and f'href="{href}"' in page.text
    chart = client.get(href)
    assert chart.status_code == 200 and "<svg" in chart.text and 'id="count">25' in chart.text
    assert 'class="series"' in chart.text and 'id="baseline"' not in chart.text  # an analyst sets none
    fragment = client.get("/charts?kind=duplicate", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "data-chart=" not in fragment.text
    assert client.get("/charts?kind=bogus").status_code == 422
    assert client.get("/charts/HJ/T%2091-2002/NH3-N/bogus").status_code == 422
    assert client.get("/charts/HJ%20000-2000/NH3-N/spike").status_code == 404
    since = (utcnow() - timedelta(days=5)).date().isoformat()
    recent = client.get(f"{href}?since={since}")
    assert recent.status_code == 200 and int(re.search(r'id="count">(\d+)', recent.text).group(1)) < 25


def test_setting_a_baseline_from_the_first_n_points(db, client, users, analyst, slashed):
    chart_points(db, slashed, analyst, [*BASE, "107", "108", "99", "113"])
    token = login(client, users["technical_manager"].username)
    href = chart_href(SLASHED, "NH3-N", "spike")
    assert 'id="baseline"' in client.get(href).text
    answer = client.post("/charts/baseline", data={"csrf_token": token, "method": SLASHED, "parameter": "NH3-N",
                                                   "kind": "spike", "choice": "first", "first": "25"})
    assert answer.status_code == 303 and answer.headers["location"] == href + "#baseline"
    page = client.get(href)
    assert 'id="centre">100' in page.text and page.text.count('class="limit-3s"') == 2
    assert 'data-rule="2-2s"' in page.text and 'data-rule="1-3s"' in page.text
    assert baselines(db) == 1


def test_a_baseline_from_a_date_range_and_refusals_in_the_page(db, client, users, analyst, slashed):
    chart_points(db, slashed, analyst, BASE)
    token = login(client, users["quality_manager"].username)
    post = {"csrf_token": token, "method": SLASHED, "parameter": "NH3-N", "kind": "spike"}
    too_few = client.post("/charts/baseline", data={**post, "choice": "first", "first": "10"})
    assert too_few.status_code == 422 and 'data-code="baseline_too_few_points"' in too_few.text
    assert 'value="10"' in too_few.text
    bad = client.post("/charts/baseline", data={**post, "choice": "first", "first": "many"})
    assert bad.status_code == 422 and 'data-code="baseline_choice_invalid"' in bad.text
    bad_date = client.post("/charts/baseline", data={**post, "choice": "range", "date_from": "01/05/2026"})
    assert bad_date.status_code == 422 and 'data-code="baseline_choice_invalid"' in bad_date.text
    assert baselines(db) == 0
    start = (utcnow() - timedelta(days=40)).date().isoformat()
    done = client.post("/charts/baseline", data={**post, "choice": "range", "date_from": start, "date_to": ""})
    assert done.status_code == 303 and baselines(db) == 1


def test_only_qc_rules_holders_post_a_baseline(db, client, users, analyst, slashed):
    chart_points(db, slashed, analyst, BASE)
    for who in (analyst, users["inspector"]):
        client.cookies.clear()
        token = login(client, who.username)
        answer = client.post("/charts/baseline", data={"csrf_token": token, "method": SLASHED, "parameter": "NH3-N",
                                                       "kind": "spike", "choice": "first", "first": "20"})
        assert answer.status_code == 403
        assert client.get(chart_href(SLASHED, "NH3-N", "spike")).status_code == 200
    assert baselines(db) == 0


def test_chart_pages_cost_the_same_queries_for_10_or_100_points(db, client, users, analyst, slashed,
                                                               count_queries):
    chart_points(db, slashed, analyst, BASE[:10], prefix="AB26-1")
    login(client, users["technical_manager"].username)
    href = chart_href(SLASHED, "NH3-N", "spike")
    with count_queries() as few_chart:
        assert client.get(href).status_code == 200
    with count_queries() as few_list:
        assert client.get("/charts").status_code == 200
    chart_points(db, slashed, analyst, [BASE[i % 25] for i in range(90)], prefix="AB26-2",
                 start=utcnow() - timedelta(days=200))
    with count_queries() as many_chart:
        page = client.get(href)
    with count_queries() as many_list:
        assert client.get("/charts").status_code == 200
    assert 'id="count">100' in page.text
    assert many_chart.count == few_chart.count and many_list.count == few_list.count


def test_the_chart_prints_as_a_pdf_with_its_limits_and_flags(db, client, users, analyst, slashed, tmp_path):
    import subprocess

    chart_points(db, slashed, analyst, [*BASE, "107", "108", "99", "113"])
    token = login(client, users["technical_manager"].username)
    client.post("/charts/baseline", data={"csrf_token": token, "method": SLASHED, "parameter": "NH3-N",
                                          "kind": "spike", "choice": "first", "first": "25"})
    href = chart_href(SLASHED, "NH3-N", "spike")
    assert f'href="{href}.pdf"' in client.get(href).text
    printed = client.get(href + ".pdf")
    assert printed.status_code == 200 and printed.headers["content-type"] == "application/pdf"
    assert printed.content.startswith(b"%PDF")
    (tmp_path / "chart.pdf").write_bytes(printed.content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "chart.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "质控图" in text and "HJ/T 91-2002" in text and "2-2s" in text and "1-3s" in text
    assert "+3s" in text and "−3s" in text  # the SVG's limit labels are drawn in the PDF
    assert client.get(chart_href(SLASHED, "NH3-N", "bogus") + ".pdf").status_code == 422
