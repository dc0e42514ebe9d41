"""The entry grid: it renders positions × parameters with a constant number of queries (200 × 10
as 3 × 1); one cell posts alone through htmx and comes back as a small fragment with its value;
refusals come back in the cell and save nothing; without JavaScript the whole form saves the
changed cells; a pasted block applies from the focused cell, all or nothing; a correction of a
submitted batch asks for a reason; a cell's history; who may do what."""

from __future__ import annotations

import re
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import results
from app.analysis.models import AnalysisResult
from tests.analysis.conftest import ParameterSpec, make_method, samples_in_lab
from tests.analysis.result_fixtures import *  # noqa: F403
from tests.analysis.result_fixtures import counts, reading, record, running_batch, submit
from tests.conftest import login

HX = {"HX-Request": "true"}


@pytest.fixture
def as_analyst(client, analyst):
    return client, login(client, analyst.username)


def cell_data(token, position, value, dilution="", column=0, **extra):
    return {"csrf_token": token, "position": str(position.id), "column": str(column),
            f"r-{position.id}-{column}": value, f"d-{position.id}-{column}": dilution, **extra}


def current(db, running):
    with db.reading() as session:
        found = results.current_results(session, running.batch.id)
        for r in found.values():
            session.expunge(r)
        return found


def test_the_grid_renders_rows_and_columns(db, as_analyst, analyst, batch):
    client, _ = as_analyst
    record(db, analyst, batch, [reading(batch.at("S-002"), "0.009")])
    page = client.get(f"/batches/{batch.batch.batch_no}/entry")
    assert page.status_code == 200 and "<html" in page.text
    assert len(re.findall(r'<tr data-position="\d+"', page.text)) == 5  # 2 blanks + 3 samples
    s2 = batch.at("S-002")
    assert f'name="r-{s2.id}-0" value="0.009"' in page.text
    assert 'data-reported="0.025L"' in page.text and 'data-mark="below_mdl"' in page.text
    assert "/static/entry.js" in page.text and 'id="paste-form"' in page.text


def test_the_grid_query_count_does_not_grow(db, as_analyst, analyst, technical, users, uv, count_queries):
    """200 positions × 10 parameters, every cell with a result, as few queries as 3 × 1."""
    client, _ = as_analyst
    names = [f"P{i}" for i in range(10)]
    version = make_method(db, technical, "HJ 999-2026", calculation="direct",
                          parameters=tuple(ParameterSpec(n) for n in names), instruments=(uv,))
    small_samples = samples_in_lab(db, users["custodian"], count=3, prefix="WS01-261201")
    small = running_batch(db, analyst, version, small_samples, parameters=names[:1], blanks=0)
    record(db, analyst, small, [reading(p, "0.5", "P0") for p in small.positions])
    big_samples = samples_in_lab(db, users["custodian"], count=200, prefix="WS01-261202")
    big = running_batch(db, analyst, version, big_samples, parameters=names, blanks=0)
    record(db, analyst, big, [reading(p, "0.5", n) for p in big.positions for n in names])
    with count_queries() as few:
        assert client.get(f"/batches/{small.batch.batch_no}/entry").status_code == 200
    with count_queries() as many:
        page = client.get(f"/batches/{big.batch.batch_no}/entry")
    assert page.status_code == 200 and page.text.count('class="entry-cell') == 2000
    assert many.count == few.count


def test_one_cell_posts_alone_and_returns_a_small_fragment(db, as_analyst, batch):
    client, token = as_analyst
    s1 = batch.at("S-001")
    answer = client.post(f"/batches/{batch.batch.batch_no}/entry/cell", data=cell_data(token, s1, "0.205", "2"),
                         headers=HX)
    assert answer.status_code == 200, answer.text
    assert "<html" not in answer.text and answer.text.lstrip().startswith("<td") and len(answer.text) < 4000
    assert 'data-reported="2.000"' in answer.text and "data-saved" in answer.text
    assert current(db, batch)[(s1.id, "NH3-N")].value == D("2.0")


def test_a_refused_cell_comes_back_with_its_message_and_saves_nothing(db, as_analyst, batch):
    client, token = as_analyst
    s1 = batch.at("S-001")
    before = counts(db)
    answer = client.post(f"/batches/{batch.batch.batch_no}/entry/cell", data=cell_data(token, s1, "1,5"), headers=HX)
    assert answer.status_code == 422 and "<html" not in answer.text
    assert 'data-code="comma_decimal"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'value="1,5"' in answer.text  # what was typed stays in the cell
    over = client.post(f"/batches/{batch.batch.batch_no}/entry/cell", data=cell_data(token, s1, "0.505"), headers=HX)
    assert over.status_code == 422 and 'data-mark="over_range"' in over.text
    assert counts(db) == before


def test_without_javascript_the_whole_form_saves_the_changed_cells(db, as_analyst, analyst, batch):
    client, token = as_analyst
    s1, s2, blk = batch.at("S-001"), batch.at("S-002"), batch.at("BLK1")
    record(db, analyst, batch, [reading(s2, "0.105")])
    form = {"csrf_token": token, f"r-{s1.id}-0": "0.205", f"d-{s1.id}-0": "", f"r-{s2.id}-0": "0.105",
            f"d-{s2.id}-0": "", f"r-{blk.id}-0": "", f"d-{blk.id}-0": "", "measured_at": ""}
    answer = client.post(f"/batches/{batch.batch.batch_no}/entry", data=form)
    assert answer.status_code == 303 and answer.headers["location"].endswith("/entry")
    now = current(db, batch)
    assert now[(s1.id, "NH3-N")].value == D("1.0") and now[(s2.id, "NH3-N")].revision == 1  # unchanged: no revision
    assert (blk.id, "NH3-N") not in now
    before = counts(db)
    bad = client.post(f"/batches/{batch.batch.batch_no}/entry", data={**form, f"r-{blk.id}-0": "abc",
                                                                        f"r-{s1.id}-0": "0.305"})
    assert bad.status_code == 422 and "BLK1" in bad.text and 'value="abc"' in bad.text
    assert counts(db) == before


def test_a_pasted_block_applies_from_the_focused_cell_all_or_nothing(db, as_analyst, batch):
    client, token = as_analyst
    s1, s2 = batch.at("S-001"), batch.at("S-002")
    url = f"/batches/{batch.batch.batch_no}/entry/paste"
    form = {"csrf_token": token, "start_position": str(s1.id), "start_column": "0", "block": "0.205\t2\r\n0.305\t\r\n"}
    answer = client.post(url, data=form, headers=HX)
    assert answer.status_code == 200 and 'id="grid"' in answer.text and "<html" not in answer.text
    now = current(db, batch)
    assert now[(s1.id, "NH3-N")].value == D("2.0") and now[(s2.id, "NH3-N")].value == D("1.5")
    before = counts(db)
    refused = client.post(url, data={**form, "block": "0.215\n1,5"})
    assert refused.status_code == 422 and "S-002" in refused.text and 'data-code="comma_decimal"' in refused.text
    past = client.post(url, data={**form, "block": "0.1\n0.1\n0.1\n0.1"})
    assert past.status_code == 422 and 'data-code="paste_outside_grid"' in past.text
    assert counts(db) == before


def test_a_submitted_batch_asks_for_a_reason(db, as_analyst, analyst, batch):
    client, token = as_analyst
    s1 = batch.at("S-001")
    record(db, analyst, batch, [reading(s1, "0.205")])
    submit(db, batch)
    page = client.get(f"/batches/{batch.batch.batch_no}/entry")
    assert 'id="entry-reason"' in page.text
    url = f"/batches/{batch.batch.batch_no}/entry/cell"
    refused = client.post(url, data=cell_data(token, s1, "0.215"), headers=HX)
    assert refused.status_code == 422 and 'data-code="reason_required"' in refused.text
    answer = client.post(url, data=cell_data(token, s1, "0.215", reason="空白吸光度偏高，重测"), headers=HX)
    assert answer.status_code == 200 and "r2" in answer.text
    history = client.get(f"/batches/{batch.batch.batch_no}/entry/history",
                         params={"position": s1.id, "parameter": "NH3-N"})
    assert history.status_code == 200 and "空白吸光度偏高，重测" in history.text
    assert len(re.findall(r'<tr data-revision="\d"', history.text)) == 2
    corrections = client.get(f"/batches/{batch.batch.batch_no}/entry/history")
    assert corrections.status_code == 200 and "data-corrections" in corrections.text
    assert re.findall(r'<tr data-revision="(\d)"', corrections.text) == ["2"]


def test_who_may_read_and_who_may_enter(db, client, users, batch):
    login(client, users["inspector"].username)
    assert client.get(f"/batches/{batch.batch.batch_no}/entry").status_code == 200
    token = login(client, users["inspector"].username)
    s1 = batch.at("S-001")
    answer = client.post(f"/batches/{batch.batch.batch_no}/entry/cell", data=cell_data(token, s1, "0.205"),
                         headers=HX)
    assert answer.status_code == 403
    with client.app.state.db.reading() as session:
        assert session.scalar(select(AnalysisResult.id)) is None
    assert client.get("/batches/AB26-00000/entry").status_code == 404
