"""The registry pages cost a fixed number of SQL statements, however many instruments there are
and however long an instrument's history is (DESIGN.md rule 10)."""

from __future__ import annotations

import io
from datetime import timedelta

from app.core.db import utcnow
from app.instruments import records, service
from app.instruments.models import Instrument
from tests.conftest import login
from tests.instruments.conftest import PDF, calibrate, check, local_today, make_instrument


def statements(client, count_queries, url: str) -> int:
    client.get(url)  # warm-up (role cache, templates)
    with count_queries() as counter:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return counter.count


def test_the_list_costs_the_same_for_3_and_30_instruments(client, db, technical, store, count_queries):
    today = local_today(db)
    for n in range(3):
        instrument = make_instrument(db, technical, f"JC-A-{n:03d}")
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=30),
              valid_until=today + timedelta(days=300))
    login(client, "technical-manager")
    few = {url: statements(client, count_queries, url)
           for url in ("/instruments", "/instruments?status=in_service&q=jc", "/instruments?kind=laboratory")}
    for n in range(3, 30):
        instrument = make_instrument(db, technical, f"JC-A-{n:03d}")
        if n % 3 == 0:
            calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=300 + n),
                      valid_until=today + timedelta(days=n))
    page = client.get("/instruments").text
    assert page.count('<a href="/instruments/JC-A-') == 2 * 30  # asset no. and name
    many = {url: statements(client, count_queries, url) for url in few}
    assert many == few
    assert max(many.values()) <= 6


def test_the_detail_page_costs_the_same_for_2_and_20_records(client, db, technical, store, count_queries):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=200),
              valid_until=today + timedelta(days=160), certificate_no="JD-1")
    check(db, technical, instrument, performed_at=utcnow() - timedelta(days=100))
    login(client, "technical-manager")
    urls = ("/instruments/JC-UV-001", "/instruments/JC-UV-001/traceability")
    few = {url: statements(client, count_queries, url) for url in urls}

    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=20),
              valid_until=today + timedelta(days=340), certificate_no="JD-2")
    for n in range(9):
        check(db, technical, instrument, performed_at=utcnow() - timedelta(days=90 - n * 9),
              result="fail" if n == 4 else "pass")  # the failure opens an impact assessment
    with db.transaction() as session:
        row = session.get(Instrument, instrument.id)
        for n in range(6):
            records.record_maintenance(session, technical, row, records.MaintenanceFacts(
                kind="repair" if n == 2 else "maintenance", performed_at=utcnow() - timedelta(days=80 - n * 10),
                description=f"保养 {n}"))
        service.add_attachment(session, technical, row, store, service.Upload(io.BytesIO(PDF), "manual.pdf"),
                               title="说明书", kind="manual", max_bytes=1024 * 1024)
    page = client.get("/instruments/JC-UV-001").text
    assert page.count('<li class="tl tl-') >= 20
    many = {url: statements(client, count_queries, url) for url in urls}
    assert many == few
    assert many["/instruments/JC-UV-001"] <= 18
