"""The automatic-station page and API: who may read and import, a refused upload names every bad
line and changes nothing, a huge upload is a clear 413, and the page's queries do not grow with
the readings shown."""

from __future__ import annotations

from sqlalchemy import func, select

from app.oversight.models import StationImport, StationReading
from app.oversight.stations import import_station_csv
from tests.conftest import login

GOOD = ("site_code,parameter,measured_at,value,unit\n"
        "WS01,NH3-N,2026-11-30 08:00,0.512,mg/L\n"
        "WS01,COD,2026-11-30 08:00,15.2,mg/L\n")


def _count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def _upload(client, token: str, content: bytes, name: str = "stations.csv", url: str = "/oversight/stations/import"):
    return client.post(url, data={"csrf_token": token}, files={"file": (name, content, "text/csv")},
                       headers={"X-CSRF-Token": token})


def test_import_through_the_page_then_read_it(client, db, users, lab):
    lab.site("WS01")
    token = login(client, "technical-manager")
    response = _upload(client, token, GOOD.encode())
    assert response.status_code == 303 and response.headers["location"].startswith("/oversight/stations?imported=")
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and 'data-imported="' in page.text
    assert page.text.count('<tr data-reading="') == 2 and "stations.csv" in page.text
    only_cod = client.get("/oversight/stations?parameter=COD")
    assert only_cod.text.count('<tr data-reading="') == 1
    fragment = client.get("/oversight/stations?site=WS01", headers={"HX-Request": "true"})
    assert fragment.text.count('<tr data-reading="') == 2 and "<html" not in fragment.text


def test_a_refused_upload_names_every_bad_line_and_imports_nothing(client, db, users, lab):
    lab.site("WS01")
    token = login(client, "technical-manager")
    bad = GOOD + "WS99,NH3-N,2026-11-30 09:00,0.5,mg/L\nWS01,NH3-N,2026-11-30 10:00,=1+1,mg/L\n"
    response = _upload(client, token, bad.encode())
    assert response.status_code == 422
    assert 'data-code="station_rows_refused"' in response.text
    assert "WS99" in response.text and "=1+1" in response.text
    assert _count(db, StationImport) == 0 and _count(db, StationReading) == 0


def test_bad_encoding_and_the_same_file_twice_are_clear_errors(client, db, users, lab):
    lab.site("WS01")
    token = login(client, "technical-manager")
    assert _upload(client, token, b"\x00\x01\xfe\xff\x00garbage").status_code == 422
    assert _upload(client, token, GOOD.encode()).status_code == 303
    again = _upload(client, token, GOOD.encode(), "copy.csv")
    assert again.status_code == 409 and 'data-code="station_file_already_imported"' in again.text
    assert _count(db, StationImport) == 1


def test_a_huge_upload_is_refused_413(client, db, users, lab):
    token = login(client, "technical-manager")
    huge = b"site_code,parameter,measured_at,value,unit\n" + b"WS01,NH3-N,2026-11-30 08:00,0.5,mg/L\n" * 600_000
    assert len(huge) > 20 * 1024 * 1024
    response = _upload(client, token, huge)
    assert response.status_code == 413
    assert _count(db, StationImport) == 0


def test_who_may_read_and_who_may_import(client, db, users, lab):
    login(client, "analyst")
    assert client.get("/oversight/stations").status_code == 403  # analysts do not read alarms
    client.cookies.clear()
    token = login(client, "checker")
    page = client.get("/oversight/stations")
    assert page.status_code == 200 and 'id="station-form"' not in page.text
    assert _upload(client, token, GOOD.encode()).status_code == 403
    client.cookies.clear()
    token = login(client, "inspector")
    assert client.get("/oversight/stations").status_code == 200
    assert _upload(client, token, GOOD.encode()).status_code == 403
    assert _count(db, StationImport) == 0


def test_api_import_and_list(client, db, users, lab):
    lab.site("WS01")
    token = login(client, "technical-manager")
    response = _upload(client, token, GOOD.encode(), url="/api/v1/station-readings/import")
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 2
    listed = client.get("/api/v1/station-readings?site=WS01&per_page=1")
    body = listed.json()
    assert listed.status_code == 200 and body["total"] == 2 and body["pages"] == 2 and len(body["items"]) == 1
    assert client.get("/api/v1/station-readings?parameter=COD").json()["items"][0]["value"] == "15.2"
    refused = _upload(client, token, (GOOD.replace("0.512", "abc").replace("15.2", "1.0") + "").encode(),
                      url="/api/v1/station-readings/import")
    assert refused.status_code == 422
    assert refused.json()["code"] == "station_rows_refused"
    assert [(e["line"], e["code"]) for e in refused.json()["errors"]] == [(2, "not_a_number"),
                                                                          (3, "already_recorded")]
    assert client.get("/api/v1/station-readings?since=2026-11-30T00:00:00").status_code == 422  # no offset


def test_the_page_runs_the_same_queries_for_few_or_many_readings(client, db, users, lab, count_queries):
    lab.site("WS01")
    lab.site("WS02")
    with db.transaction() as session:
        import_station_csv(session, users["technical_manager"], "a.csv", GOOD.encode())
    login(client, "technical-manager")
    client.get("/oversight/stations")
    with count_queries() as few:
        assert client.get("/oversight/stations").status_code == 200
    rows = "".join(f"WS02,NH3-N,2026-11-{d:02d} {h:02d}:00,0.{h}{d},mg/L\n" for d in range(1, 21) for h in range(10))
    with db.transaction() as session:
        import_station_csv(session, users["technical_manager"], "b.csv",
                           ("site_code,parameter,measured_at,value,unit\n" + rows).encode())
    with count_queries() as many:
        page = client.get("/oversight/stations")
    assert page.status_code == 200 and page.text.count('<tr data-reading="') >= 20
    assert many.count == few.count and many.count <= 14
