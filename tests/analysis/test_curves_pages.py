"""The curve pages: the list (htmx fragment, filters, query count), recording a curve through the
form (preview saves nothing, save redirects to the curve), a refused table keeping what was typed,
the curve's page with its plot and standards, and who may do what."""

from __future__ import annotations

import re

import pytest

from tests.analysis.curve_fixtures import GOOD_ROWS, POOR_ROWS, counts, facts, record
from tests.conftest import login, refusals_so_far

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def as_analyst(client, analyst, nh3n_method, standards):
    return client, login(client, analyst.username)


def form(token, barcode, table=GOOD_ROWS, **changes):
    data = {"csrf_token": token, "method": "HJ 535-2009", "parameter": "NH3-N", "instrument": "JC-UV-001",
            "kind": "linear", "measured_at": "", "response_unit": "Abs", "action": "save",
            "level": [r[0] for r in table], "concentration": [r[1] for r in table],
            "response": [r[2] for r in table], "barcode": [barcode if r[1] != "0" else "" for r in table]}
    data.update(changes)
    return data


def now_local(client) -> str:
    page = client.get("/curves/new")
    return re.search(r'name="measured_at" required value="([^"]+)"', page.text).group(1)


def test_recording_a_curve_through_the_form(db, as_analyst, standards):
    client, token = as_analyst
    page = client.get("/curves/new")
    assert page.status_code == 200 and page.text.count('name="concentration"') == 8
    at = now_local(client)
    before = counts(db)
    preview = client.post("/curves/new", data=form(token, standards.working.barcode, measured_at=at,
                                                   action="preview"))
    assert preview.status_code == 200 and 'id="preview"' in preview.text and "<svg" in preview.text
    assert 'data-accepted="yes"' in preview.text and "0.99999" in preview.text
    assert counts(db) == before
    saved = client.post("/curves/new", data=form(token, standards.working.barcode, measured_at=at))
    assert saved.status_code == 303 and re.fullmatch(r"/curves/CC\d{2}-\d{5}", saved.headers["location"])
    curve = client.get(saved.headers["location"])
    assert curve.status_code == 200 and 'data-state="valid"' in curve.text
    assert 'id="equation"' in curve.text and "<svg" in curve.text and 'class="fit"' in curve.text
    assert f'href="/reference-materials/solutions/{standards.working.barcode}"' in curve.text
    assert curve.text.count("data-level=") == 7 and CHINESE.search(curve.text)


def test_a_rejected_curve_is_saved_and_shown_as_unusable(db, as_analyst, standards):
    client, token = as_analyst
    saved = client.post("/curves/new", data=form(token, standards.working.barcode, POOR_ROWS,
                                                 measured_at=now_local(client)))
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert 'data-state="rejected"' in page.text and 'id="rejection"' in page.text


def test_a_comma_decimal_is_refused_naming_the_row_and_keeps_the_table(db, as_analyst, standards):
    client, token = as_analyst
    table = list(GOOD_ROWS)
    table[2] = ("2", "0,20", "0.058")
    before = counts(db)
    answer = client.post("/curves/new", data=form(token, standards.working.barcode, table,
                                                  measured_at=now_local(client)))
    assert answer.status_code == 422 and 'data-code="curve_cell_comma_decimal"' in answer.text
    assert "第 3 行" in answer.text or "Row 3" in answer.text
    assert 'value="0,20"' in answer.text and 'value="HJ 535-2009"' in answer.text
    assert counts(db) == before


def test_an_expired_standard_is_refused_in_the_page(db, as_analyst, technical, standards):
    from tests.reference_materials.conftest import ago, prepare

    client, token = as_analyst
    old = prepare(db, technical, standards.stock.barcode, prepared_at=ago(days=5), shelf_life_days=2)
    before = counts(db)
    answer = client.post("/curves/new", data=form(token, old.barcode, measured_at=now_local(client)))
    assert answer.status_code == 409 and 'data-code="material_expired"' in answer.text
    assert 'data-reason="' in answer.text and counts(db) == before


def test_the_list_filters_and_its_fragment(db, as_analyst, analyst, standards):
    client, _ = as_analyst
    good = record(db, analyst, facts(standards.working.barcode))
    poor = record(db, analyst, facts(standards.working.barcode, table=POOR_ROWS))
    page = client.get("/curves")
    assert page.status_code == 200 and set(re.findall(r'data-curve="([^"]+)"', page.text)) == {good.code, poor.code}
    fragment = client.get("/curves?accepted=no", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and re.findall(r'data-curve="([^"]+)"', fragment.text) == [poor.code]
    assert re.findall(r'data-curve="([^"]+)"', client.get("/curves?accepted=yes&method=hj 535").text) == [good.code]
    assert re.findall(r'data-curve="([^"]+)"', client.get("/curves?instrument=JC-UV-9").text) == []
    assert re.findall(r'data-curve="([^"]+)"', client.get("/curves?parameter=nh3-n").text) != []
    assert client.get("/curves?accepted=maybe").status_code == 422
    assert client.get("/curves?method=%25_").status_code == 200


def test_list_and_curve_pages_cost_the_same_queries_whatever_the_rows(db, as_analyst, analyst, standards,
                                                                      count_queries):
    client, _ = as_analyst
    first = record(db, analyst, facts(standards.working.barcode, table=GOOD_ROWS[:3]))
    with count_queries() as few:
        assert client.get("/curves").status_code == 200
    with count_queries() as small:
        assert client.get(f"/curves/{first.code}").status_code == 200
    for _ in range(5):
        last = record(db, analyst, facts(standards.working.barcode))
    with count_queries() as many:
        assert client.get("/curves").status_code == 200
    with count_queries() as large:
        assert client.get(f"/curves/{last.code}").status_code == 200
    assert many.count == few.count and large.count == small.count


def test_an_inspector_reads_but_cannot_record(db, client, users, analyst, standards, nh3n_method):
    curve = record(db, analyst, facts(standards.working.barcode))
    token = login(client, users["inspector"].username)
    assert client.get("/curves").status_code == 200
    assert client.get(f"/curves/{curve.code}").status_code == 200
    assert client.get("/curves/new").status_code == 403
    before, mark = counts(db), refusals_so_far(db)
    answer = client.post("/curves/new", data=form(token, standards.working.barcode))
    assert answer.status_code == 403 and refusals_so_far(db) - mark == 1  # the attempt is kept in the audit trail
    assert counts(db) == (*before[:3], before[3] + 1)  # and nothing else changed
    assert client.get("/curves/CC26-99999").status_code == 404


def test_the_nav_and_a_scanned_curve_code(db, as_analyst, analyst, standards):
    from app.core.registry import _resolvers

    client, _ = as_analyst
    curve = record(db, analyst, facts(standards.working.barcode))
    assert 'href="/curves"' in client.get("/curves").text
    from app.core.permissions import Permission

    with db.reading() as session:
        hit = _resolvers["calibration_curve"](session, analyst, frozenset({Permission.ANALYSIS_READ}),
                                              curve.code.lower())
        assert hit is not None and hit.url == f"/curves/{curve.code}"
        assert _resolvers["calibration_curve"](session, analyst, frozenset(), curve.code) is None
