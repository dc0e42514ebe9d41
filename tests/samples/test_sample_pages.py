"""Sample pages: the worklist (filters, search by number or barcode, htmx fragment, constant
query count), the sample page (containers, parameters, QC links only for those who see QC),
ad hoc registration one and in bulk (CSV with row errors, N alike), label printing, scanning,
and the inspector refused on every form."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.samples.models import Container, Sample, SampleKind
from tests.conftest import csrf_of, login
from tests.samples.conftest import dispatch, make_site, make_task
from tests.samples.lab_fixtures import *  # noqa: F403


def sample_count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Sample))


def post(client, path, data, files=None):
    return client.post(path, data={**data, "csrf_token": csrf_of(client)}, files=files)


# ---------------------------------------------------------------- the worklist


def test_worklist_lists_filters_and_searches(client, db, users, dispatched_task):
    login(client, "custodian")
    d = dispatched_task
    page = client.get("/samples")
    assert page.status_code == 200
    for sample in d.samples:
        assert sample.sample_no in page.text
    assert d.barcodes()[0] in page.text
    assert '<a href="/samples"' in page.text  # the nav item
    blank = d.of_kind(SampleKind.FIELD_BLANK)[0]
    only_blank = client.get("/samples", params={"kind": "field_blank"}).text
    assert blank.sample_no in only_blank and d.routine.sample_no not in only_blank
    by_barcode = client.get("/samples", params={"q": d.barcodes(blank)[1].lower()}).text
    assert blank.sample_no in by_barcode and d.routine.sample_no not in by_barcode
    by_number = client.get("/samples", params={"q": d.routine.sample_no}).text
    assert d.routine.sample_no in by_number and blank.sample_no not in by_number
    day = d.task.scheduled_on.isoformat()
    assert d.routine.sample_no in client.get("/samples", params={"day_from": day, "day_to": day}).text
    assert "WS01-" not in client.get("/samples", params={"day_from": "2000-01-01", "day_to": "2000-01-02"}).text
    assert d.routine.sample_no in client.get("/samples", params={"site": "ws01", "task": d.task.code}).text
    assert "WS01-" not in client.get("/samples", params={"state": "received"}).text
    # a filter that is not a date is no filter, a bad state is refused like any bad query
    assert client.get("/samples", params={"day_from": "yesterday"}).status_code == 200
    assert client.get("/samples", params={"state": "bogus"}).status_code == 422
    fragment = client.get("/samples", params={"q": "WS01"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text


def test_analysts_are_blind_to_field_qc(client, db, users, dispatched_task):
    login(client, "analyst")
    page = client.get("/samples").text
    assert dispatched_task.routine.sample_no in page
    assert 'data-kind="field_blank"' not in page and 'name="kind"' not in page
    duplicate = dispatched_task.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    detail = client.get(f"/samples/{duplicate.sample_no}").text
    assert "data-kind=" not in detail and f'/samples/{dispatched_task.routine.sample_no}"><code>' in detail
    assert "Field duplicate of" not in detail and "现场平行样" not in detail
    # the kind filter is ignored for them
    assert dispatched_task.routine.sample_no in client.get("/samples", params={"kind": "field_blank"}).text


def test_worklist_query_count_does_not_grow_with_rows(client, db, users, registrar, site, sampler, count_queries):
    login(client, "custodian")
    tm = users["technical_manager"]
    dispatch(db, registrar, make_task(db, tm, site, sampler=sampler), site, sampler)
    client.get("/samples")
    with count_queries() as few:
        assert client.get("/samples").status_code == 200
    for _ in range(4):
        dispatch(db, registrar, make_task(db, tm, site, sampler=sampler, field_blanks=2, field_duplicates=2),
                 site, sampler)
    with count_queries() as many:
        page = client.get("/samples")
    assert page.text.count('href="/samples/WS01-') >= 21
    assert many.count == few.count <= 6, many.statements  # user, roles, count, rows, containers


# ---------------------------------------------------------------- one sample


def test_sample_page_shows_containers_parameters_and_links(client, db, users, dispatched_task, count_queries):
    login(client, "custodian")
    d = dispatched_task
    duplicate = d.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    with count_queries() as q:
        page = client.get(f"/samples/{duplicate.sample_no.lower()}")
    assert page.status_code == 200
    # user and roles, the sample, its page (6), the field record, the evaluation (no results: one
    # query); the anomaly alarms are not read for a custodian (no ALARMS_READ)
    assert q.count <= 19, q.statements
    assert not any("anomaly_alarm" in s for s in q.statements), q.statements
    text = page.text
    for barcode in d.barcodes(duplicate):
        assert f'id="container-{barcode}"' in text
    assert "COD NH3-N TP" in text and "CODMn" in text and "WS01" in text and d.task.code in text
    assert f'href="/samples/{d.routine.sample_no}"' in text and 'data-kind="field_duplicate"' in text
    assert f"/samples/{duplicate.sample_no}/labels.pdf" in text
    assert 'id="field-record"' in text
    assert client.get("/samples/WS01-000000-999").status_code == 404


def test_scanning_a_container_or_a_number_opens_the_sample(client, db, users, dispatched_task):
    login(client, "sampler")
    d = dispatched_task
    barcode = d.barcodes()[2]
    hit = client.get("/scan", params={"code": barcode.lower()})
    assert hit.status_code == 303 and hit.headers["location"] == f"/samples/{d.routine.sample_no}#container-{barcode}"
    hit = client.get("/scan", params={"code": d.routine.sample_no})
    assert hit.status_code == 303 and hit.headers["location"] == f"/samples/{d.routine.sample_no}"
    wrong = barcode[:-1] + str((int(barcode[-1]) + 1) % 10)
    refused = client.get("/scan", params={"code": wrong})
    assert refused.status_code == 422 and "wrong_check_digit" in refused.text


# ---------------------------------------------------------------- registering from the pages


def adhoc_form(**changes) -> dict:
    data = {"client_name": "江城化工有限公司", "client_contact": "王工", "location_text": "总排口",
            "matrix": "water", "parameters": ["COD", "NH3-N", "Cu"], "scheduled_on": "2026-03-12",
            "sampler": "", "note": ""}
    data.update(changes)
    return data


def test_register_a_client_sample_from_the_form(client, db, users):
    login(client, "custodian")
    form = client.get("/samples/new")
    assert form.status_code == 200 and 'name="parameters" value="COD"' in form.text
    response = post(client, "/samples/new", adhoc_form(sampler="sampler"))
    assert response.status_code == 303 and response.headers["location"] == "/samples/WT-260312-001"
    page = client.get("/samples/WT-260312-001").text
    assert "江城化工有限公司" in page and page.count('id="container-CT') == 2


def test_a_refused_form_keeps_what_was_typed_and_saves_nothing(client, db, users):
    login(client, "custodian")
    response = post(client, "/samples/new", adhoc_form(parameters=["COD", "PM2.5"], client_contact="李四 139"))
    assert response.status_code == 422 and 'data-code="mixed_matrix"' in response.text
    assert 'value="李四 139"' in response.text and 'value="COD" checked' in response.text
    assert post(client, "/samples/new", adhoc_form(scheduled_on="12/03/2026")).status_code == 422
    assert post(client, "/samples/new", adhoc_form(site_code="NOPE")).status_code == 422
    assert sample_count(db) == 0


CSV_OK = ("client_name,client_contact,site_code,location_text,matrix,parameters,scheduled_on,sampler,note\n"
          "甲公司,张三,,1号排口,water,COD;NH3-N,2026-03-12,,\n"
          "乙公司,李四,,2号排口,water,Cu Zn,2026-03-12,sampler,加急\n")


def test_bulk_csv_registers_every_row(client, db, users):
    login(client, "custodian")
    assert client.get("/samples/bulk").status_code == 200
    response = post(client, "/samples/bulk", {"mode": "csv"},
                    files={"csv_file": ("samples.csv", CSV_OK.encode("utf-8"), "text/csv")})
    assert response.status_code == 200, response.text
    assert "WT-260312-001" in response.text and "WT-260312-002" in response.text
    assert sample_count(db) == 2


def test_bulk_csv_from_excel_in_gbk_is_read(client, db, users):
    login(client, "custodian")
    response = post(client, "/samples/bulk", {"mode": "csv"},
                    files={"csv_file": ("samples.csv", CSV_OK.encode("gb18030"), "text/csv")})
    assert response.status_code == 200 and sample_count(db) == 2


def test_bulk_csv_with_bad_rows_lists_them_and_registers_nothing(client, db, users):
    login(client, "custodian")
    bad = CSV_OK + "丙公司,,,3号排口,water,Kryptonite,2026-03-12,,\n丁公司,,,4号排口,water,COD,2026-02-30,,\n"
    response = post(client, "/samples/bulk", {"mode": "csv"},
                    files={"csv_file": ("samples.csv", bad.encode(), "text/csv")})
    assert response.status_code == 422
    rows = re.findall(r'data-row="(\d+)"', response.text)
    assert rows == ["5"]  # the date is refused while reading the file, before any other check
    bad = CSV_OK + "丙公司,,,3号排口,water,Kryptonite,2026-03-12,,\n戊公司,,,,water,COD,2026-03-12,,\n"
    response = post(client, "/samples/bulk", {"mode": "csv"},
                    files={"csv_file": ("samples.csv", bad.encode(), "text/csv")})
    assert re.findall(r'data-row="(\d+)"', response.text) == ["4", "5"]
    assert "Kryptonite" in response.text
    assert post(client, "/samples/bulk", {"mode": "csv"},
                files={"csv_file": ("x.csv", b"\xff\xfe\x00junk", "text/csv")}).status_code == 422
    assert post(client, "/samples/bulk", {"mode": "csv"}).status_code == 422
    assert sample_count(db) == 0


def test_bulk_alike_registers_n_samples(client, db, users):
    login(client, "custodian")
    response = post(client, "/samples/bulk", {"mode": "alike", "count": "12", **adhoc_form()})
    assert response.status_code == 200 and "WT-260312-012" in response.text
    assert sample_count(db) == 12
    assert post(client, "/samples/bulk", {"mode": "alike", "count": "0", **adhoc_form()}).status_code == 422
    assert post(client, "/samples/bulk", {"mode": "alike", "count": "abc", **adhoc_form()}).status_code == 422
    assert sample_count(db) == 12


# ---------------------------------------------------------------- labels


def test_print_labels_for_a_task_or_for_numbers(client, db, users, dispatched_task):
    login(client, "custodian")
    assert client.get("/samples/labels", params={"task": dispatched_task.task.code}).status_code == 200
    pdf = post(client, "/samples/labels", {"task": dispatched_task.task.code.lower(), "format": "a4", "start": "3"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    numbers = "\n".join(s.sample_no for s in dispatched_task.samples[:2])
    pdf = post(client, "/samples/labels", {"samples": numbers, "format": "thermal", "start": "1"})
    assert pdf.content[:5] == b"%PDF-"
    refused = post(client, "/samples/labels", {"samples": "WS01-000000-999", "format": "thermal", "start": "1"})
    assert refused.status_code == 404 and 'data-code="sample_not_found"' in refused.text
    refused = post(client, "/samples/labels", {"task": dispatched_task.task.code, "format": "a4", "start": "30"})
    assert refused.status_code == 422 and "invalid_label_position" in refused.text
    assert post(client, "/samples/labels", {"format": "a4", "start": "1"}).status_code == 422
    single = client.get(f"/samples/{dispatched_task.routine.sample_no}/labels.pdf", params={"format": "a4"})
    assert single.status_code == 200 and single.content[:5] == b"%PDF-"


# ---------------------------------------------------------------- who may


@pytest.mark.parametrize("username", ["inspector", "analyst", "sampler"])
def test_only_registrars_register_or_print(client, db, users, dispatched_task, username):
    login(client, username)
    for path in ("/samples/new", "/samples/bulk", "/samples/labels"):
        response = client.get(path)
        assert response.status_code == 403, path
        if username == "inspector":
            assert "inspector_read_only" in response.text
    assert post(client, "/samples/new", adhoc_form()).status_code == 403
    assert post(client, "/samples/bulk", {"mode": "alike", "count": "2", **adhoc_form()}).status_code == 403
    assert post(client, "/samples/labels", {"task": dispatched_task.task.code}).status_code == 403
    assert client.get("/samples").status_code == 200
    assert client.get(f"/samples/{dispatched_task.routine.sample_no}").status_code == 200
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Container)) == 9


def test_ad_hoc_at_a_suspended_site_is_refused_on_the_page(client, db, users):
    from app.sites.models import SiteStatus

    make_site(db, users["technical_manager"], "WS09", status=SiteStatus.SUSPENDED)
    login(client, "custodian")
    response = post(client, "/samples/new", adhoc_form(site_code="WS09", location_text=""))
    assert response.status_code == 409 and 'aria-invalid="true"' in response.text
    assert sample_count(db) == 0


def test_sample_page_costs_the_same_however_long_its_lab_life(client, db, users, collected_task, count_queries):
    """The lab sections (receipt, clocks, custody chain, storage, preparation) read in a fixed
    number of queries: more hand-overs and aliquots do not add any."""
    from app.people.models import User
    from app.samples import aliquots, handover
    from tests.samples.test_prep_fixtures import hno3_container, receive_all

    dt = receive_all(db, collected_task, users["custodian"])
    custodian, analyst = users["custodian"], users["analyst"]
    barcodes = dt.barcodes()

    def more_life(rounds: int) -> None:
        with db.transaction() as session:
            for _ in range(rounds):
                handover.hand_over(session, custodian, barcodes, giver_id=custodian.id, taker_id=analyst.id)
                handover.hand_over(session, custodian, barcodes, giver_id=analyst.id, taker_id=custodian.id)
                aliquots.make_aliquot(session, session.get(User, analyst.id), hno3_container(dt).barcode, "20", "mL")

    login(client, "custodian")
    url = f"/samples/{dt.routine.sample_no}"
    more_life(1)
    with count_queries() as short:
        assert client.get(url).status_code == 200
    more_life(4)
    with count_queries() as long:
        page = client.get(url)
    assert page.status_code == 200 and page.text.count('id="aliquot-CT') == 5
    assert long.count == short.count, long.statements
