"""The demo instruments: what `lims demo` promises a visitor is really in the data, entered
through the services (signed, accepted, audited), and loading it twice adds nothing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from app.core.audit import verify_chain
from app.core.db import Database, utcnow
from app.core.files import FileStore, StoredFile
from app.core.signatures import ElectronicSignature, check
from app.demo import load_demo
from app.instruments import impact, queries
from app.instruments.demo import INSTRUMENTS
from app.instruments.models import (
    APPEND_ONLY_TABLES,
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
    InstrumentStatus,
    IntermediateCheck,
    MaintenanceRecord,
)
from app.instruments.service import record_content
from app.instruments.status import status_now, statuses_at
from app.people.models import User

COUNTED = (*APPEND_ONLY_TABLES, "instrument", "instrument_use", "instrument_impact", "e_signature", "stored_file",
           "audit_event", "app_user", "role_grant")


def load(db: Database, store: FileStore) -> None:
    with db.transaction() as session:
        load_demo(session, store, through="instruments")


def row_counts(db: Database) -> dict[str, int]:
    from app.core.db import metadata

    with db.reading() as session:
        return {name: session.scalar(select(func.count()).select_from(metadata.tables[name])) for name in COUNTED}


def test_demo_instruments_show_each_status_once(db: Database, store: FileStore) -> None:
    load(db, store)
    now, today = utcnow(), db.calendar.today()
    with db.reading() as session:
        instruments = {i.asset_no: i for i in session.scalars(select(Instrument))}
        assert set(instruments) == {d.asset_no for d in INSTRUMENTS}
        at_now = statuses_at(session, now)
        readings = {asset_no: at_now[i.id] for asset_no, i in instruments.items()}
        by_status = Counter(r.status for r in readings.values())
        assert by_status == {InstrumentStatus.OVERDUE: 1, InstrumentStatus.DUE_SOON: 1,
                             InstrumentStatus.OUT_OF_SERVICE: 1, InstrumentStatus.IN_SERVICE: 6}

        overdue = next(r for r in readings.values() if r.status is InstrumentStatus.OVERDUE)
        assert overdue.reason == "overdue"  # a certificate that expired, not a missing one
        assert db.calendar.local_date(overdue.due_at) == today - timedelta(days=10)
        due_soon = next(r for r in readings.values() if r.status is InstrumentStatus.DUE_SOON)
        assert now < due_soon.due_at <= now + timedelta(days=30)
        stopped = next(a for a, r in readings.items() if r.status is InstrumentStatus.OUT_OF_SERVICE)
        assert readings[stopped].cause == "failed_check"
        restricted = [a for a, r in readings.items() if r.restricted]
        assert len(restricted) == 1 and readings[restricted[0]].status is InstrumentStatus.IN_SERVICE
        assert readings[restricted[0]].allowed_parameters  # what it may still be used for
        for reading in readings.values():
            if reading.status is InstrumentStatus.IN_SERVICE:
                assert reading.due_at > now + timedelta(days=30)

        # the cached columns (lists, worklists, reminders) say the same, through the indexed filters
        for asset_no, instrument in instruments.items():
            assert status_now(instrument, now, db.calendar) is readings[asset_no].status, asset_no
        for status in InstrumentStatus:
            assert queries.count_in_status(session, status, now) == by_status.get(status, 0), status
        found = queries.search_instruments(session, status="overdue", now=now)
        assert [row.instrument.asset_no for row in found.items] == [
            a for a, r in readings.items() if r.status is InstrumentStatus.OVERDUE]
        assert {r.instrument.asset_no for r in queries.reminders(session, now)} == {
            a for a, r in readings.items() if r.status in (InstrumentStatus.OVERDUE, InstrumentStatus.DUE_SOON)}

        # the failed check opened the one assessment waiting for the quality manager
        assert impact.open_count(session) == 1
        (assessment,) = session.scalars(select(ImpactAssessment)).all()
        assert assessment.instrument_id == instruments[stopped].id and assessment.trigger_type == "check"
        assert assessment.status == "open" and assessment.since is not None

        responsible = {u.username for u in session.scalars(select(User).where(
            User.id.in_({i.responsible_id for i in instruments.values()})))}
        assert responsible == {"technical", "analyst"}


def test_demo_history_is_a_signed_year_in_the_past(db: Database, store: FileStore) -> None:
    load(db, store)
    now, today = utcnow(), db.calendar.today()
    with db.reading() as session:
        instruments = {i.id: i for i in session.scalars(select(Instrument))}
        calibrations = session.scalars(select(CalibrationRecord)).all()
        checks = session.scalars(select(IntermediateCheck)).all()
        maintenance = session.scalars(select(MaintenanceRecord)).all()
        assert len(checks) >= 4 * len(instruments) and maintenance

        for record in [*calibrations, *checks, *maintenance]:
            assert record.effective_from <= now and record.event_day <= today  # never in the future
        for iid in instruments:
            first = min(c.effective_from for c in calibrations if c.instrument_id == iid)
            assert first <= now - timedelta(days=330)  # a year of history each
            assert any(c.instrument_id == iid for c in checks)

        acceptances = {a.calibration_id: a for a in session.scalars(select(CalibrationAcceptance))}
        for record in calibrations:
            instrument = instruments[record.instrument_id]
            stored = session.get(StoredFile, record.certificate_file_id)
            content = store.read(record.certificate_sha256)
            assert stored.sha256 == record.certificate_sha256 and stored.media_type == "application/pdf"
            assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
            assert record.certificate_no.encode() in content and store.verify(record.certificate_sha256)
            assert record.provider and record.provider_accreditation_no.startswith("CNAS L")
            acceptance = acceptances[record.id]  # 计量确认 by the responsible person
            assert acceptance.decision == "accepted" and acceptance.decided_by_id == instrument.responsible_id
            signature = session.get(ElectronicSignature, acceptance.signature_id)
            assert signature.signer_id == instrument.responsible_id
        assert len({c.certificate_sha256 for c in calibrations}) == len(calibrations)

        signatures = {(s.entity_type, s.entity_id): s for s in session.scalars(select(ElectronicSignature))}
        for record in checks:
            signature = signatures[("instrument_check", str(record.id))]
            assert signature.signer_id == record.recorded_by_id
            assert not check(signature, record_content(instruments[record.instrument_id], record)).broken


def test_demo_twice_adds_nothing_and_the_audit_chain_holds(db: Database, store: FileStore) -> None:
    load(db, store)
    before = row_counts(db)
    assert before["instrument"] == len(INSTRUMENTS) and before["instrument_calibration"] > 0

    load(db, store)

    assert row_counts(db) == before
    with db.reading() as session:
        result = verify_chain(session, None)
    assert result.ok, result.reason
    assert result.events == before["audit_event"]
