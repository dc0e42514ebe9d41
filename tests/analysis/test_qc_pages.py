"""The QC page: the latest run with its verdicts, re-evaluation as an htmx fragment or a plain
post, a corrective action through the form, signing through the form with refusals shown in the
page and nothing saved, the signature block after signing, the JSON API, the dashboard card, who
may post, and a query count that does not grow with the checks."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.analysis.models import CorrectiveAction, QcEvaluation
from tests.analysis.conftest import samples_in_lab
from tests.analysis.qc_fixtures import *  # noqa: F403
from tests.analysis.qc_fixtures import PASSING, Layout, batch_of, enter, evaluate, find, running_batch
from tests.conftest import PASSWORD, login

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def as_analyst(client, analyst):
    return client, login(client, analyst.username)


def rows(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_the_page_shows_the_latest_run(db, bench, as_analyst):
    client, _ = as_analyst
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    evaluate(db, bench)
    page = client.get(f"/batches/{bench.batch.batch_no}/qc")
    assert page.status_code == 200 and "<html" in page.text and CHINESE.search(page.text)
    assert len(re.findall(r'data-evaluation="\d+"', page.text)) == 6
    assert len(re.findall(r'data-passed="fail"', page.text)) == 1
    assert 'class="corrective"' in page.text and "S-002SP" in page.text and "78.00" in page.text
    assert 'data-state="qc_failed"' in page.text


def test_re_evaluate_returns_the_run_as_a_fragment(db, bench, as_analyst):
    client, token = as_analyst
    enter(db, bench, PASSING)
    answer = client.post(f"/batches/{bench.batch.batch_no}/qc/evaluate", data={"csrf_token": token},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "<html" not in answer.text and 'id="run"' in answer.text
    assert len(re.findall(r'data-passed="pass"', answer.text)) == 6
    plain = client.post(f"/batches/{bench.batch.batch_no}/qc/evaluate", data={"csrf_token": token})
    assert plain.status_code == 303 and plain.headers["location"].endswith("/qc#run")
    assert rows(db, QcEvaluation) == 12


def test_a_corrective_action_through_the_form(db, bench, as_analyst):
    client, token = as_analyst
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    spike = find(evaluate(db, bench), "spike")
    url = f"/batches/{bench.batch.batch_no}/qc/corrective"
    short = client.post(url, data={"csrf_token": token, "evaluation_id": spike.id, "kind": "qualifier",
                                   "qualifier": "S", "justification": "short"})
    assert short.status_code == 422 and 'data-code="justification_too_short"' in short.text
    assert ">short</textarea>" in short.text and rows(db, CorrectiveAction) == 0
    done = client.post(url, data={"csrf_token": token, "evaluation_id": spike.id, "kind": "qualifier",
                                  "qualifier": "S", "justification": "matrix interference confirmed by dilution"})
    assert done.status_code == 303 and done.headers["location"].endswith("#actions")
    page = client.get(f"/batches/{bench.batch.batch_no}/qc")
    assert 'data-action="qualifier"' in page.text and 'data-state="qc_evaluated"' in page.text


def test_signing_through_the_form_with_refusals_in_the_page(db, bench, as_analyst):
    client, token = as_analyst
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    url = f"/batches/{bench.batch.batch_no}/qc/submit"
    blocked = client.post(url, data={"csrf_token": token, "password": PASSWORD})
    assert blocked.status_code == 409 and 'data-code="qc_failure_unresolved"' in blocked.text
    assert rows(db, QcEvaluation) == 0 and batch_of(db, bench).state == "running"
    enter(db, bench, {"S-002SP": "0.650"})
    wrong = client.post(url, data={"csrf_token": token, "password": "not-my-password"})
    assert wrong.status_code == 403 and 'data-code="wrong_signing_password"' in wrong.text
    assert batch_of(db, bench).signature_id is None
    signed = client.post(url, data={"csrf_token": token, "password": PASSWORD})
    assert signed.status_code == 303
    page = client.get(f"/batches/{bench.batch.batch_no}/qc")
    assert 'class="signature intact"' in page.text and 'type="password"' not in page.text
    assert "Re-evaluate" not in page.text and "重新评价" not in page.text


def test_the_json_api(db, bench, client, analyst):
    enter(db, bench, {**PASSING, "S-002SP": "0.590"})
    evaluate(db, bench)
    login(client, analyst.username)
    answer = client.get(f"/api/v1/batches/{bench.batch.batch_no}/qc")
    assert answer.status_code == 200
    body = answer.json()
    assert body["batch_no"] == bench.batch.batch_no and body["run"] == 1 and body["qc_passed"] is False
    spike = next(e for e in body["evaluations"] if e["kind"] == "spike")
    assert spike["value"] == "78.00" and spike["limit_low"] == "80" and spike["passed"] is False
    assert spike["affects"] == [bench.samples[1].sample_no] and spike["answered"] is False
    assert all(isinstance(e["value"], str | None) for e in body["evaluations"])
    assert client.get("/api/v1/batches/AB99-99999/qc").status_code == 404


def test_the_dashboard_card_counts_batches_waiting(db, bench, as_analyst):
    client, _ = as_analyst
    enter(db, bench, {**PASSING, "BLK1": "0.030"})
    evaluate(db, bench)
    page = client.get("/dashboard")
    assert page.status_code == 200 and "/batches?mine=1&amp;state=qc_failed" in page.text


def test_an_inspector_reads_but_cannot_post(db, bench, client, users):
    enter(db, bench, PASSING)
    token = login(client, users["inspector"].username)
    assert client.get(f"/batches/{bench.batch.batch_no}/qc").status_code == 200
    for path in ("evaluate", "submit"):
        answer = client.post(f"/batches/{bench.batch.batch_no}/qc/{path}",
                             data={"csrf_token": token, "password": PASSWORD})
        assert answer.status_code == 403
    assert rows(db, QcEvaluation) == 0


def test_the_page_query_count_does_not_grow_with_the_checks(db, analyst, nh3n_method, users, uv, as_analyst,
                                                            count_queries):
    client, _ = as_analyst

    def bench_of(n: int, prefix: str):
        samples = samples_in_lab(db, users["custodian"], count=n, prefix=prefix)
        layout: Layout = (("BLK1", "method_blank", None, None, {}),
                          *((f"S-{i:03d}", "sample", i, None, {}) for i in range(n)),
                          *((f"S-{i:03d}D", "duplicate", i, f"S-{i:03d}", {}) for i in range(n)))
        made = running_batch(db, analyst, nh3n_method, samples, layout=layout, instrument=uv)
        enter(db, made, {"BLK1": "0.030", **{f"S-{i:03d}": "0.5" for i in range(n)},
                         **{f"S-{i:03d}D": "0.4" for i in range(n)}})
        evaluate(db, made)
        return made

    small, large = bench_of(2, "WS05"), bench_of(12, "WS06")
    with count_queries() as few:
        assert client.get(f"/batches/{small.batch.batch_no}/qc").status_code == 200
    with count_queries() as many:
        assert client.get(f"/batches/{large.batch.batch_no}/qc").status_code == 200
    assert many.count == few.count
