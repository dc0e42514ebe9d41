"""Sample numbers under concurrent registration on PostgreSQL: many writers on the same site and
day get distinct numbers without gaps; bulk registrations locking several counters never
deadlock; two dispatchers of the same task cannot both dispatch it."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import select

from app.samples import registration
from app.samples.models import Container, Sample
from app.samples.registration import AdhocSample
from app.sites.models import SamplingTask
from tests.conftest import race
from tests.samples.conftest import make_task

DAY = date(2026, 3, 12)
THREADS, EACH = 8, 25


def _row(site_code: str = "WS01", client: str = "甲公司") -> AdhocSample:
    return AdhocSample(client_name=client, parameters=["COD", "Cu"], scheduled_on=DAY, site_code=site_code)


def test_eight_threads_times_25_registrations_get_001_to_200(pg_db, registrar, site):
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def register_many() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(EACH):
                with pg_db.transaction() as session:
                    registration.register_adhoc_sample(session, registrar, _row())
        except BaseException as exc:  # reported to the test thread
            failures.append(exc)

    threads = [threading.Thread(target=register_many) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads) and not failures, failures
    with pg_db.reading() as session:
        numbers = sorted(session.scalars(select(Sample.sample_no)).all())
        barcodes = session.scalars(select(Container.barcode)).all()
    assert numbers == [f"WS01-260312-{n:03d}" for n in range(1, THREADS * EACH + 1)]
    assert len(set(barcodes)) == len(barcodes) == 2 * THREADS * EACH


def test_bulk_registrations_over_the_same_counters_in_opposite_orders_do_not_deadlock(pg_db, registrar, users):
    from tests.samples.conftest import make_site

    make_site(pg_db, users["technical_manager"], "WS01")
    make_site(pg_db, users["technical_manager"], "WS02")
    forward = [_row("WS01")] * 40 + [_row("WS02")] * 40
    backward = [_row("WS02")] * 40 + [_row("WS01")] * 40
    results = race(pg_db, *[lambda s, rows=rows: len(registration.register_adhoc_samples(s, registrar, rows))
                            for rows in (forward, backward, forward, backward)])
    assert results == [80, 80, 80, 80], results
    with pg_db.reading() as session:
        numbers = session.scalars(select(Sample.sample_no)).all()
    for code in ("WS01", "WS02"):
        assert sorted(n for n in numbers if n.startswith(code)) == [f"{code}-260312-{n:03d}" for n in range(1, 161)]


def test_a_task_is_dispatched_once_when_two_dispatch_it_together(pg_db, registrar, users, site, sampler):
    task = make_task(pg_db, users["technical_manager"], site, sampler=sampler, field_blanks=1)

    def dispatch(session):
        return len(registration.dispatch_task(session, registrar, session.get(SamplingTask, task.id)))

    results = race(pg_db, dispatch, dispatch)
    outcomes = sorted(str(r) if isinstance(r, int) else type(r).__name__ for r in results)
    assert outcomes == ["2", "TaskNotScheduled"], results
    with pg_db.reading() as session:
        assert len(session.scalars(select(Sample)).all()) == 2
