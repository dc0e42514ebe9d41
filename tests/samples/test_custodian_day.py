"""The custodian's day: expected, received and rejected today, custody gaps, holding times running
out, storage full — counts, first rows, constant queries, the page and the dashboard cards.

Receipts are written straight into the tables (a signed delivery, its checks, the signature and the
sample receipt), so these tests do not depend on how the receipt service gets there."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import update

from app.core.db import Database, utcnow
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature
from app.samples import custodian_day
from app.samples.lab_models import Delivery, ReceiptCheck, SampleReceipt, StorageLocation
from app.samples.models import Sample
from tests.conftest import login
from tests.samples.holding_fixtures import make_clocks
from tests.samples.lab_fixtures import *  # noqa: F403

H = timedelta(hours=1)
_codes = iter(range(1, 10_000))


def receive(db: Database, custodian, sample_id: int, decision: str, at: datetime, *, reason: str = "") -> None:
    """A signed receipt of one sample at `at`, as the receipt service leaves it."""
    n = next(_codes)
    with db.transaction() as session:
        delivery = Delivery(code=f"RC26-{n:05d}", state="signed", arrived_at=at, opened_at=at,
                            opened_by_id=custodian.id, signed_at=at)
        session.add(delivery)
        session.flush()
        check = ReceiptCheck(delivery_id=delivery.id, sample_id=sample_id, decision=decision, reject_reason=reason,
                             recorded_at=at, recorded_by_id=custodian.id)
        signature = ElectronicSignature(signer_id=custodian.id, printed_name="样品管理员", meaning="received",
                                        signed_at=at, entity_type="delivery", entity_id=str(delivery.id),
                                        content_hash=hashlib.sha256(str(n).encode()).hexdigest())
        session.add_all([check, signature])
        session.flush()
        session.add(SampleReceipt(sample_id=sample_id, delivery_id=delivery.id, check_id=check.id, decision=decision,
                                  received_at=at, received_by_id=custodian.id, signature_id=signature.id))
        session.execute(update(Sample).where(Sample.id == sample_id).values(
            received_at=at, state="rejected" if decision == "reject" else "received"))


def location(db: Database, actor, code: str, capacity: int | None, occupied: int, *, active: bool = True) -> None:
    with db.transaction() as session:
        session.add(StorageLocation(code=code, room="样品间", unit=code, capacity=capacity, occupied=occupied,
                                    active=active, created_at=utcnow(), created_by_id=actor.id))


def noon_today(db: Database) -> tuple[datetime, datetime]:
    with db.reading() as session:
        cal = lab_calendar(session)
        start = cal.start_of(cal.local_date(utcnow()))
    return start, start + 12 * H


def day_of(db: Database, at: datetime) -> custodian_day.CustodianDay:
    with db.reading() as session:
        day = custodian_day.custodian_day(session, at)
        session.expunge_all()
        return day


def test_each_block_counts_what_it_should(db, users, collected_task):
    custodian = users["custodian"]
    start, noon = noon_today(db)
    routine, blank, duplicate = collected_task.samples
    before = day_of(db, noon)
    assert before.expected.count == 3 and before.received.count == before.rejected.count == 0
    receive(db, custodian, routine.id, "accept_with_conditions", start + 2 * H)
    receive(db, custodian, blank.id, "reject", start + 3 * H, reason="容器破损")
    receive(db, custodian, duplicate.id, "accept", start - 2 * H)  # yesterday in lab time
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id == routine.id).values(custody_gap=True))
    location(db, custodian, "LC-A", 10, 9)  # 90 %
    location(db, custodian, "LC-B", 10, 8)  # 80 %: not shown
    location(db, custodian, "LC-C", None, 100)  # not limited
    location(db, custodian, "LC-D", 4, 4)  # full
    location(db, custodian, "LC-E", 1, 1, active=False)
    make_clocks(db, custodian.id, [("COD", 48, 50 * H), ("NH3-N", 24, 20 * H), ("Cu", 336, H)], now=noon)

    day = day_of(db, noon)
    assert day.day == lab_calendar_day(db, noon)
    assert day.expected.count == 0  # all three were received (or rejected)
    assert (day.received.count, [r.sample_no for r in day.received.rows]) == (1, [routine.sample_no])
    assert day.received.rows[0].decision == "accept_with_conditions"
    assert (day.rejected.count, day.rejected.rows[0].reject_reason) == (1, "容器破损")
    assert (day.gaps.count, [r.sample_no for r in day.gaps.rows]) == (1, [routine.sample_no])
    assert day.running_out.count == 2 and [r.parameter for r in day.running_out.rows] == ["COD", "NH3-N"]
    assert day.storage_full.count == 2 and [loc.code for loc in day.storage_full.rows] == ["LC-D", "LC-A"]


def lab_calendar_day(db: Database, at: datetime):
    with db.reading() as session:
        return lab_calendar(session).local_date(at)


def test_expected_means_on_the_way_or_to_be_sampled_today_and_not_received(db, users, collected_task):
    custodian = users["custodian"]
    start, noon = noon_today(db)
    today = lab_calendar_day(db, noon)
    make_clocks(db, custodian.id, [("COD", 48, H)], prefix="RG", state="registered")
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.sample_no == "RG-000000").values(scheduled_on=today))
    make_clocks(db, custodian.id, [("COD", 48, H)], prefix="TM", state="registered")
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.sample_no == "TM-000000").values(
            scheduled_on=today + timedelta(days=1)))
    make_clocks(db, custodian.id, [("COD", 48, H)], prefix="IT", state="in_transit")
    day = day_of(db, noon)
    listed = {r.sample_no for r in day.expected.rows}
    assert day.expected.count == 5 and "TM-000000" not in listed
    assert {"RG-000000", "IT-000000"} <= listed


def test_the_day_costs_the_same_queries_for_few_and_many_rows(db, users, collected_task, count_queries):
    custodian = users["custodian"]
    start, noon = noon_today(db)

    def cost() -> int:
        with count_queries() as counted:
            day_of(db, noon)
        return counted.count

    few = cost()
    for i, sample in enumerate(collected_task.samples):
        receive(db, custodian, sample.id, "reject" if i else "accept", start + H)
    make_clocks(db, custodian.id, [("COD", 48, 47 * H)] * 30, now=noon)
    make_clocks(db, custodian.id, [("COD", 48, 47 * H)] * 30, prefix="GP", state="in_transit", now=noon)
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.sample_no.like("GP-%")).values(custody_gap=True))
    for i in range(12):
        location(db, custodian, f"LC-{i:02d}", 5, 5)
    assert cost() == few
    day = day_of(db, noon)
    assert day.gaps.count == 30 and len(day.gaps.rows) == custodian_day.FIRST_ROWS and day.gaps.more == 25


def test_the_page_is_the_custodians_and_links_onwards(db, users, client, collected_task):
    custodian = users["custodian"]
    start, _ = noon_today(db)
    receive(db, custodian, collected_task.samples[1].id, "reject", start + timedelta(seconds=1), reason="标签不清")
    location(db, custodian, "LC26-00001", 2, 2)
    login(client, "custodian")
    page = client.get("/custodian")
    assert page.status_code == 200
    for anchor in ('id="expected"', 'id="received"', 'id="rejected"', 'id="gaps"', 'id="holding"',
                   'id="storage-full"', 'href="/custody/gaps"', 'href="/storage/LC26-00001"', "标签不清"):
        assert anchor in page.text, anchor
    assert 'data-count="2"' in page.text  # two samples still expected
    dashboard = client.get("/dashboard").text
    assert "/custodian#expected" in dashboard and "/holding?colour=due" in dashboard
    assert 'href="/custodian"' in dashboard or "/custodian" in dashboard  # the nav item
    client.cookies.clear()
    login(client, "analyst")
    assert client.get("/custodian").status_code == 403
    assert "/holding?colour=due" in client.get("/dashboard").text  # the analyst's card
