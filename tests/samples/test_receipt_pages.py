"""Receipt pages: the list (open first, htmx filter, constant queries), opening a delivery, the
working page (scans by plain form and by htmx, missing and unexpected shown at once, refusals
beside the scan box or in the sample's card), checks, signing with the password, the sample
page's receipt section, the nav item and the scan resolver; the delivery page's query count
does not grow with its containers."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.samples import receipt, registration
from app.samples.lab_models import Delivery, DeliveryScan, ReceiptCheck, Shipment
from app.samples.models import Container, Sample
from app.samples.receipt import CheckInput, DeliveryInput
from tests.conftest import PASSWORD, csrf_of, login, refusals_so_far
from tests.samples.lab_fixtures import *  # noqa: F403

HTMX = {"HX-Request": "true"}


def post(client, path, data, headers=None):
    return client.post(path, data={**data, "csrf_token": csrf_of(client)}, headers=headers)


def count(db, table) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(table))


def opened(client, dt) -> str:
    response = post(client, "/receipts/new", {"code": dt.task.code, "cooler_temp": "4", "seal_no": "F-9",
                                              "seal_intact": "yes"})
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_opening_a_delivery_by_the_form(client, db, users, collected_task):
    login(client, "custodian")
    page = client.get("/receipts/new")
    assert page.status_code == 200 and collected_task.task.code in page.text  # a task waiting
    assert 'name="code"' in page.text and "autofocus" in page.text
    code = opened(client, collected_task)
    assert re.match(r"^RC\d{2}-\d{5}$", code)
    refused = post(client, "/receipts/new", {"code": "TK26-99999", "cooler_temp": "4"})
    assert refused.status_code == 404 and 'data-code="delivery_source_unknown"' in refused.text
    assert 'value="TK26-99999"' in refused.text  # what was typed comes back
    wrong_unit = post(client, "/receipts/new", {"code": collected_task.task.code, "cooler_temp": "277",
                                                "cooler_temp_unit": "°C"})
    assert wrong_unit.status_code == 422 and "temperature_out_of_range" in wrong_unit.text
    assert count(db, Delivery) == 1


def test_scanning_by_plain_form_and_by_htmx(client, db, users, collected_task):
    login(client, "custodian")
    dt = collected_task
    code = opened(client, dt)
    page = client.get(f"/receipts/{code}")
    assert page.status_code == 200 and 'id="scan-input"' in page.text and "autofocus" in page.text
    assert page.text.count('data-barcode="') >= 18  # expected list + missing panel
    plain = post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes()[0]})
    assert plain.status_code == 303 and plain.headers["location"].endswith(f"?scanned={dt.barcodes()[0]}")
    after = client.get(plain.headers["location"]).text
    assert 'data-scan="expected"' in after and 'data-scanned="1"' in after
    fragment = post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes()[1].lower()}, HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="work"' in fragment.text
    assert 'data-scanned="2"' in fragment.text and "autofocus" in fragment.text
    repeat = post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes()[1]}, HTMX)
    assert 'data-scan="repeat"' in repeat.text and count(db, DeliveryScan) == 2
    bad = dt.barcodes()[2][:-1] + str((int(dt.barcodes()[2][-1]) + 1) % 10)
    refusal = post(client, f"/receipts/{code}/scans", {"barcode": bad}, HTMX)
    assert refusal.status_code == 422 and 'data-code="wrong_check_digit"' in refusal.text
    assert 'id="work"' in refusal.text and count(db, DeliveryScan) == 2
    plain_refusal = post(client, f"/receipts/{code}/scans", {"barcode": "nonsense"})
    assert plain_refusal.status_code == 422 and "<html" in plain_refusal.text
    assert 'data-code="malformed_barcode"' in plain_refusal.text
    assert client.get("/receipts/RC26-99999").status_code == 404
    assert post(client, "/receipts/RC26-99999/scans", {"barcode": dt.barcodes()[0]}).status_code == 404


def test_missing_and_unexpected_are_listed_at_once(client, db, users, collected_task):
    login(client, "custodian")
    dt = collected_task
    with db.transaction() as session:  # the routine sample's containers came in a cooler, handed over
        shipment = Shipment(code="SH26-000013", state="handed_over", holder_id=dt.sampler.id, created_at=utcnow(),
                            created_by_id=dt.sampler.id)
        session.add(shipment)
        session.flush()
        session.execute(update(Container).where(Container.barcode.in_(dt.barcodes())).values(shipment_id=shipment.id))
    response = post(client, "/receipts/new", {"code": "SH26-000013"})
    code = response.headers["location"].rsplit("/", 1)[1]
    other = next(s for s in dt.samples if s.id != dt.routine.id)
    post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes()[0]})
    fragment = post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes(other)[0]}, HTMX).text
    assert 'data-scan="unexpected"' in fragment
    missing = fragment.split('id="missing"')[1].split("</section>")[0]
    unexpected = fragment.split('id="unexpected"')[1].split("</section>")[0]
    assert dt.barcodes()[1] in missing and dt.barcodes()[2] in missing and dt.barcodes()[0] not in missing
    assert dt.barcodes(other)[0] in unexpected and dt.barcodes(other)[0] not in missing


def test_checks_and_signing_through_the_page(client, db, users, collected_task):
    login(client, "custodian")
    dt = collected_task
    code = opened(client, dt)
    for barcode in dt.barcodes():
        post(client, f"/receipts/{code}/scans", {"barcode": barcode})
    no_consent = post(client, f"/receipts/{code}/checks", {
        "sample_no": dt.routine.sample_no, "decision": "accept_with_conditions", "deviation": "arrived at 9 °C"}, HTMX)
    assert no_consent.status_code == 422 and 'data-code="receipt_consent_required"' in no_consent.text
    assert "arrived at 9 °C" in no_consent.text  # kept in the form
    assert count(db, ReceiptCheck) == 0
    unchecked = post(client, f"/receipts/{code}/sign", {"password": PASSWORD})
    assert unchecked.status_code == 409 and "receipt_decisions_missing" in unchecked.text
    done = post(client, f"/receipts/{code}/checks", {
        "sample_no": dt.routine.sample_no, "decision": "accept_with_conditions", "deviation": "arrived at 9 °C",
        "consent_by": "client 王工", "consent_ref": "phone 10:02", "arrival_temp": "9", "preservation_ok": "yes",
        "preservation_note": "pH 1.5", "container_intact": "yes"})
    assert done.status_code == 303 and done.headers["location"].endswith(f"#sample-{dt.routine.sample_no}")
    wrong = post(client, f"/receipts/{code}/sign", {"password": "not-it"})
    assert wrong.status_code == 403 and "wrong_signing_password" in wrong.text
    signed = post(client, f"/receipts/{code}/sign", {"password": PASSWORD}, HTMX)
    assert signed.status_code == 204 and signed.headers["HX-Redirect"] == f"/receipts/{code}"
    page = client.get(f"/receipts/{code}").text
    assert 'data-delivery-state="signed"' in page and 'id="scan-input"' not in page and "signature" in page
    sample_page = client.get(f"/samples/{dt.routine.sample_no}").text
    assert 'id="receipt"' in sample_page and "arrived at 9 °C" in sample_page and "client 王工" in sample_page
    assert post(client, f"/receipts/{code}/scans", {"barcode": dt.barcodes()[0]}).status_code == 409


def test_the_inspector_reads_but_cannot_receive(client, db, users, collected_task):
    dt = collected_task
    with db.transaction() as session:
        delivery = receipt.open_delivery(session, users["custodian"], DeliveryInput(code=dt.task.code))
    login(client, "inspector")
    assert client.get("/receipts").status_code == 200
    page = client.get(f"/receipts/{delivery.code}")
    assert page.status_code == 200 and 'id="scan-input"' not in page.text
    before, mark = count(db, AuditEvent), refusals_so_far(db)
    assert post(client, f"/receipts/{delivery.code}/scans", {"barcode": dt.barcodes()[0]}).status_code == 403
    assert post(client, "/receipts/new", {"code": dt.task.code}).status_code == 403
    # the two attempts are kept in the audit trail as refusals (issue 10), nothing else is written
    assert count(db, DeliveryScan) == 0 and count(db, AuditEvent) - before == refusals_so_far(db) - mark == 2
    assert '<a href="/receipts"' not in client.get("/dashboard").text  # the nav item is the custodian's


def test_list_nav_scan_and_htmx_fragment(client, db, users, collected_task, count_queries):
    login(client, "custodian")
    code = opened(client, collected_task)
    listing = client.get("/receipts")
    assert listing.status_code == 200 and code in listing.text and '<a href="/receipts"' in listing.text
    fragment = client.get("/receipts", params={"q": code}, headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="results"' in fragment.text
    assert code not in client.get("/receipts", params={"state": "signed"}).text
    assert client.get("/receipts", params={"state": "bogus"}).status_code == 422
    scanned = client.get("/scan", params={"code": code.lower()})
    assert scanned.status_code == 303 and scanned.headers["location"] == f"/receipts/{code}"
    with count_queries() as few:
        client.get("/receipts")
    for _ in range(5):
        with db.transaction() as session:
            receipt.open_delivery(session, users["custodian"], DeliveryInput(code=collected_task.task.code))
    with count_queries() as many:
        page = client.get("/receipts")
    assert page.text.count('data-delivery="') == 6
    assert many.count == few.count, many.statements


def _collected_client_samples(db, users, n: int) -> list[Sample]:
    """`n` client samples of the sampler with three containers each, taken 10 minutes ago (rows set
    as the field service leaves them: the field record is not what this test is about)."""
    from datetime import date

    with db.transaction() as session:
        rows = [registration.AdhocSample(client_name="江城化工", location_text="outlet", parameters=["COD", "Cu",
                                                                                                      "CODMn"],
                                         scheduled_on=date.today(), sampler="sampler") for _ in range(n)]
        samples = registration.register_adhoc_samples(session, users["custodian"], rows)
        ids = [s.id for s in samples]
        taken = utcnow() - timedelta(minutes=10)
        session.execute(update(Sample).where(Sample.id.in_(ids)).values(state="collected", collected_at=taken))
        session.execute(update(Container).where(Container.sample_id.in_(ids))
                        .values(state="filled", filled_at=taken, holder_id=users["sampler"].id))
    return samples


def _delivery_with(db, users, samples: list[Sample]) -> Delivery:
    custodian = users["custodian"]
    with db.transaction() as session:
        delivery = receipt.open_delivery(session, custodian, DeliveryInput(sampler="sampler"))
        for barcode in session.scalars(select(Container.barcode).where(
                Container.sample_id.in_([s.id for s in samples]))):
            receipt.scan_container(session, custodian, delivery, barcode)
        for sample in samples:
            receipt.record_check(session, custodian, delivery, sample.sample_no, CheckInput("accept"))
    return delivery


def test_the_delivery_page_query_count_does_not_grow_with_containers(client, db, users, count_queries):
    login(client, "custodian")
    small = _delivery_with(db, users, _collected_client_samples(db, users, 1))
    client.get(f"/receipts/{small.code}")
    with count_queries() as few:
        assert client.get(f"/receipts/{small.code}").status_code == 200
    with db.transaction() as session:
        session.execute(update(Container).where(Container.holder_id == users["sampler"].id)
                        .values(holder_id=users["analyst"].id))  # the first lot is out of the way
    large = _delivery_with(db, users, _collected_client_samples(db, users, 10))
    with count_queries() as many:
        page = client.get(f"/receipts/{large.code}")
    assert page.text.count('class="sample-card"') == 10 and 'data-scanned="30"' in page.text
    assert many.count == few.count <= 14, many.statements
    with db.transaction() as session:
        receipt.sign_delivery(session, users["custodian"], receipt.delivery_by_code(session, large.code), PASSWORD)
    with count_queries() as signed:
        assert 'data-delivery-state="signed"' in client.get(f"/receipts/{large.code}").text
    assert signed.count <= few.count + 8, signed.statements  # the signature and its content


def make_receipt_objects(db, users) -> dict[str, str]:
    """An open delivery for the permission walks (tests/test_permissions.py): its code for the
    `{code}` of /receipts/{code} and /api/v1/receipts/{code} (and their posts)."""
    _collected_client_samples(db, users, 1)
    with db.transaction() as session:
        delivery = receipt.open_delivery(session, users["custodian"], DeliveryInput(sampler=users["sampler"].username))
    return {"code": delivery.code}


def test_the_walkers_delivery_reads_for_the_inspector(client, db, users):
    code = make_receipt_objects(db, users)["code"]
    login(client, "inspector")
    assert client.get(f"/receipts/{code}").status_code == 200
    assert client.get(f"/api/v1/receipts/{code}").status_code == 200
