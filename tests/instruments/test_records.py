"""Metrological records through the services: bad input refused with nothing half-saved,
corrections as new revisions, append-only tables, acceptance (计量确认) as a signed act by the
responsible person, retirement, audit events and permissions."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.core.errors import DomainError, InspectorReadOnly, PermissionDenied
from app.core.signatures import ElectronicSignature
from app.core.signatures import check as check_signature
from app.instruments import errors, records, service
from app.instruments.models import (
    APPEND_ONLY_TABLES,
    CalibrationAcceptance,
    CalibrationRecord,
    Instrument,
    IntermediateCheck,
    MaintenanceRecord,
)
from app.instruments.service import record_content, row_columns
from app.people.models import User
from tests.conftest import PASSWORD
from tests.core.chain_tools import cheap_password_hashing, unprotected  # noqa: F401
from tests.instruments.conftest import (
    PDF,
    accept,
    audit_actions,
    audit_head_seq,
    calibrate,
    chain_ok,
    check,
    files_on_disk,
    local_moment,
    local_today,
    maintain,
    make_instrument,
    pdf_upload,
    reload,
    retire,
    row_counts,
    take_out_of_service,
)

TABLES = ("instrument", "instrument_use", "instrument_calibration", "instrument_calibration_acceptance",
          "instrument_check", "instrument_maintenance", "instrument_service_change", "instrument_attachment",
          "instrument_impact", "stored_file", "e_signature", "audit_event")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
MB = 1024 * 1024


def days(n: int) -> timedelta:
    return timedelta(days=n)


def cert_facts(db: Database, **changes: Any) -> records.CalibrationFacts:
    today = local_today(db)
    facts: dict[str, Any] = {
        "kind": "calibration", "provider": "江城市计量测试研究院", "provider_accreditation_no": "CNAS L1234",
        "certificate_no": "JZ-2026-0417", "performed_on": today - days(10), "valid_until": today + days(355),
        "result": "pass", "corrections": "吸光度示值误差 +0.002 Abs",
    }
    return records.CalibrationFacts(**{**facts, **changes})


def check_facts(db: Database, **changes: Any) -> records.CheckFacts:
    facts: dict[str, Any] = {
        "performed_at": local_moment(db, local_today(db) - days(1), 9, 30),
        "check_standard": "GBW(E)080218 氨氮标准溶液", "criterion": "0.500 ± 0.010 mg/L",
        "measured_value": "0.503", "result": "pass", "unit": "mg/L", "method": "HJ 535-2009",
    }
    return records.CheckFacts(**{**facts, **changes})


def enter_certificate(db: Database, actor: User, instrument: Instrument, store, facts: records.CalibrationFacts,
                      certificate: service.Upload | None = None) -> CalibrationRecord:
    with db.transaction() as session:
        return records.record_calibration(session, actor, session.get(Instrument, instrument.id), facts,
                                          store=store, certificate=certificate or pdf_upload())


class Saved:
    """Row counts of every table a record touches, and the files in the store."""

    def __init__(self, db: Database, store) -> None:
        self.db, self.store = db, store
        self.counts = row_counts(db, *TABLES)
        self.files = files_on_disk(store)
        self.seq = audit_head_seq(db)

    def unchanged(self, *, except_audit: list[str] | None = None) -> None:
        counts = row_counts(self.db, *TABLES)
        expected = dict(self.counts)
        expected["audit_event"] += len(except_audit or [])
        assert counts == expected
        assert files_on_disk(self.store) == self.files
        assert audit_actions(self.db, self.seq) == (except_audit or [])


def refused(db: Database, code: str, act) -> DomainError:
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, caught.value
    return caught.value


def refused_certificate(db, actor, instrument, store, code: str, facts, certificate=None) -> DomainError:
    saved = Saved(db, store)
    error = refused(db, code, lambda s: records.record_calibration(
        s, actor, s.get(Instrument, instrument.id), facts, store=store, certificate=certificate or pdf_upload()))
    saved.unchanged()
    return error


# ---------------------------------------------------------------- bad input, nothing half-saved


def test_valid_until_before_performed_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    error = refused_certificate(db, technical, instrument, store, "valid_until_before_performed",
                                cert_facts(db, performed_on=today - days(3), valid_until=today - days(4)))
    assert (today - days(4)).isoformat() in error.message("zh_CN")
    # the same day is allowed (a one-day validity is odd but possible)
    enter_certificate(db, technical, instrument, store, cert_facts(db, performed_on=today - days(3),
                                                                   valid_until=today - days(3)))


@pytest.mark.parametrize("content", [PNG, b"Certificate no. JZ-2026-0417\nresult: pass\n", b"%PD"],
                         ids=["png", "text", "truncated-magic"])
def test_a_certificate_that_is_not_a_pdf_is_refused(db, technical, store, content):
    instrument = make_instrument(db, technical)
    refused_certificate(db, technical, instrument, store, "unsupported_file_type", cert_facts(db),
                        pdf_upload(content, "certificate.pdf"))  # the name does not make it a PDF


def test_an_empty_certificate_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    refused_certificate(db, technical, instrument, store, "empty_file", cert_facts(db), pdf_upload(b""))


def test_a_certificate_over_20_mb_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    head = b"%PDF-1.4\n"
    too_big = io.BytesIO(head + b"0" * (20 * MB + 1 - len(head)))
    error = refused_certificate(db, technical, instrument, store, "payload_too_large", cert_facts(db),
                                service.Upload(too_big, "scan.pdf"))
    assert "20" in error.message("zh_CN")
    # exactly 20 MB is accepted
    record = enter_certificate(db, technical, instrument, store, cert_facts(db),
                               service.Upload(io.BytesIO(head + b"0" * (20 * MB - len(head))), "scan.pdf"))
    assert len(store.read(record.certificate_sha256)) == 20 * MB


def test_an_unknown_asset_no_is_refused(db, technical):
    make_instrument(db, technical)
    with db.reading() as session:
        with pytest.raises(errors.InstrumentNotFound) as caught:
            service.get_instrument(session, "JC-UV-999")
        assert caught.value.code == "instrument_not_found"
        assert "JC-UV-999" in caught.value.message("zh_CN") and "JC-UV-999" in caught.value.message("en")
        assert service.get_instrument(session, " JC-UV-001 ").asset_no == "JC-UV-001"


def test_a_duplicate_certificate_no_on_the_same_instrument_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    other = make_instrument(db, technical, "JC-UV-002")
    first = enter_certificate(db, technical, instrument, store, cert_facts(db, certificate_no="JZ-2026-0417"))
    error = refused_certificate(db, technical, instrument, store, "duplicate_certificate_no",
                                cert_facts(db, certificate_no=" jz-2026-0417 "))
    assert "jz-2026-0417" in error.message("en")
    # the same number on another instrument is another certificate
    enter_certificate(db, technical, other, store, cert_facts(db, certificate_no="JZ-2026-0417"))
    # a correction of the record may keep its number
    with db.transaction() as session:
        corrected = records.correct_calibration(
            session, technical, session.get(CalibrationRecord, first.id),
            cert_facts(db, certificate_no="JZ-2026-0417", provider_accreditation_no="CNAS L1235"),
            reason="认可证书号抄错", store=store)
    assert corrected.certificate_no == "JZ-2026-0417"
    # ... and the number stays taken by the corrected revision
    refused_certificate(db, technical, instrument, store, "duplicate_certificate_no",
                        cert_facts(db, certificate_no="JZ-2026-0417"))


def test_a_correction_cannot_take_another_certificates_no(db, technical, store):
    instrument = make_instrument(db, technical)
    enter_certificate(db, technical, instrument, store, cert_facts(db, certificate_no="JZ-A"))
    second = enter_certificate(db, technical, instrument, store, cert_facts(db, certificate_no="JZ-B"))
    saved = Saved(db, store)
    refused(db, "duplicate_certificate_no", lambda s: records.correct_calibration(
        s, technical, s.get(CalibrationRecord, second.id), cert_facts(db, certificate_no="jz-a"), reason="改号",
        store=store))
    saved.unchanged()


def test_a_performed_date_in_the_future_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    tomorrow = local_today(db) + days(1)
    refused_certificate(db, technical, instrument, store, "date_in_future",
                        cert_facts(db, performed_on=tomorrow, valid_until=tomorrow + days(365)))
    saved = Saved(db, store)
    later = utcnow() + timedelta(minutes=5)
    refused(db, "date_in_future", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, performed_at=later), PASSWORD))
    refused(db, "date_in_future", lambda s: records.record_maintenance(
        s, technical, s.get(Instrument, instrument.id),
        records.MaintenanceFacts(kind="maintenance", performed_at=later, description="清洁")))
    saved.unchanged()


@pytest.mark.parametrize("restriction,allowed,code", [
    ("", ("TP",), "restriction_required"),
    ("   ", ("TP",), "restriction_required"),
    ("220 nm 以下不可用", (), "restriction_required"),
    ("220 nm 以下不可用", (" ",), "restriction_required"),
    ("220 nm 以下不可用", ("TP", "COD"), "restriction_outside_uses"),
])
def test_a_restriction_needs_its_text_and_parameters_among_the_uses(db, technical, store, restriction, allowed,
                                                                    code):
    instrument = make_instrument(db, technical)
    error = refused_certificate(db, technical, instrument, store, code, cert_facts(
        db, result="restricted", restriction=restriction, allowed_parameters=allowed))
    if code == "restriction_outside_uses":
        assert error.params["parameters"] == "COD"  # only the one outside the uses
        assert "COD" in error.message("en") and "COD" in error.message("zh_CN")


def test_restricted_parameters_are_kept_as_registered_and_once(db, technical, store):
    instrument = make_instrument(db, technical)
    record = enter_certificate(db, technical, instrument, store, cert_facts(
        db, result="restricted", restriction="仅限总磷", allowed_parameters=("tp", "TP", " Tp ")))
    assert reload(db, CalibrationRecord, record.id).allowed_parameters == '["TP"]'


@pytest.mark.parametrize("value", ["abc", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "", "  ",
                                   "0,503", "1e"])
def test_a_measured_value_that_is_not_a_number_is_refused(db, technical, store, value):
    instrument = make_instrument(db, technical)
    saved = Saved(db, store)
    refused(db, "invalid_measured_value", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, measured_value=value), PASSWORD))
    saved.unchanged()


def test_a_measured_value_is_kept_as_entered(db, technical):
    instrument = make_instrument(db, technical)
    record = check(db, technical, instrument, performed_at=utcnow() - timedelta(hours=1), measured_value=" 0.5020 ")
    assert reload(db, IntermediateCheck, record.id).measured_value == "0.5020"


def test_a_wrong_signing_password_saves_no_check_and_records_the_failure(db, technical, store):
    instrument = make_instrument(db, technical)
    saved = Saved(db, store)
    error = refused(db, "wrong_signing_password", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, result="fail"), "not-my-password"))
    assert error.http_status == 403
    # no check, no impact assessment, no state change: only the failure is kept
    saved.unchanged(except_audit=["signature.failed"])
    assert reload(db, User, technical.id).failed_logins == 1
    assert reload(db, Instrument, instrument.id).service_state == "active"
    chain_ok(db)


def test_required_texts_are_required(db, technical, store):
    instrument = make_instrument(db, technical)
    refused_certificate(db, technical, instrument, store, "invalid_input", cert_facts(db, provider="  "))
    refused_certificate(db, technical, instrument, store, "invalid_input", cert_facts(db, certificate_no=""))
    refused_certificate(db, technical, instrument, store, "invalid_input", cert_facts(db, kind="guess"))
    refused_certificate(db, technical, instrument, store, "invalid_input", cert_facts(db, result="ok"))
    refused_certificate(db, technical, instrument, store, "invalid_input", cert_facts(db, valid_until=None))
    saved = Saved(db, store)
    refused(db, "invalid_input", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, criterion=""), PASSWORD))
    refused(db, "invalid_input", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, result="passed"), PASSWORD))
    refused(db, "invalid_input", lambda s: records.record_maintenance(
        s, technical, s.get(Instrument, instrument.id),
        records.MaintenanceFacts(kind="overhaul", performed_at=utcnow(), description="x")))
    saved.unchanged()


# ---------------------------------------------------------------- corrections


def test_a_correction_is_a_new_revision_and_the_old_row_stays(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    first = enter_certificate(db, technical, instrument, store, cert_facts(db))
    original = row_columns(reload(db, CalibrationRecord, first.id))
    saved = Saved(db, store)
    refused(db, "reason_required", lambda s: records.correct_calibration(
        s, technical, s.get(CalibrationRecord, first.id), cert_facts(db, valid_until=today + days(300)),
        reason="  ", store=store))
    saved.unchanged()

    with db.transaction() as session:
        corrected = records.correct_calibration(
            session, technical, session.get(CalibrationRecord, first.id), cert_facts(db, valid_until=today + days(300)),
            reason="有效期按证书第 2 页更正", store=store)
    new = reload(db, CalibrationRecord, corrected.id)
    assert (new.supersedes_id, new.revision, new.correction_reason) == (first.id, 2, "有效期按证书第 2 页更正")
    assert new.valid_until == today + days(300)
    assert new.certificate_sha256 == first.certificate_sha256  # no new file: the certificate is kept
    assert row_columns(reload(db, CalibrationRecord, first.id)) == original
    assert audit_actions(db, saved.seq) == ["instrument.calibration_corrected"]
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.seq == saved.seq + 1)).one()
        assert (event.entity_type, event.entity_id) == ("instrument_calibration", str(new.id))
        assert event.before_data["id"] == first.id
        assert event.before_data["valid_until"] == (today + days(355)).isoformat()
        assert event.after_data["valid_until"] == (today + days(300)).isoformat()
        assert event.after_data["supersedes_id"] == first.id
        assert event.after_data["correction_reason"] == "有效期按证书第 2 页更正"
    chain_ok(db)


def test_a_correction_with_a_new_certificate_file(db, technical, store):
    instrument = make_instrument(db, technical)
    first = enter_certificate(db, technical, instrument, store, cert_facts(db))
    rescanned = PDF + b"% rescanned, page 2 legible\n"
    with db.transaction() as session:
        corrected = records.correct_calibration(
            session, technical, session.get(CalibrationRecord, first.id), cert_facts(db), reason="重新扫描",
            store=store, certificate=pdf_upload(rescanned))
    assert corrected.certificate_sha256 != first.certificate_sha256
    assert store.read(corrected.certificate_sha256) == rescanned
    assert store.read(first.certificate_sha256) == PDF


def test_correcting_a_superseded_record_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    today = local_today(db)
    first = enter_certificate(db, technical, instrument, store, cert_facts(db))
    latest = first
    for n, reason in ((300, "第一次更正"), (301, "第二次更正")):
        with db.transaction() as session:
            latest = records.correct_calibration(
                session, technical, session.get(CalibrationRecord, latest.id),
                cert_facts(db, valid_until=today + days(n)), reason=reason, store=store)
    assert latest.revision == 3
    saved = Saved(db, store)
    error = refused(db, "record_superseded", lambda s: records.correct_calibration(
        s, technical, s.get(CalibrationRecord, first.id), cert_facts(db, valid_until=today + days(200)),
        reason="从旧版本更正", store=store))
    assert "3" in error.message("zh_CN")  # points at the latest revision
    saved.unchanged()


def test_a_correction_that_changes_nothing_is_refused(db, technical, store):
    instrument = make_instrument(db, technical)
    first = enter_certificate(db, technical, instrument, store, cert_facts(db))
    saved = Saved(db, store)
    refused(db, "nothing_corrected", lambda s: records.correct_calibration(
        s, technical, s.get(CalibrationRecord, first.id), cert_facts(db), reason="无变化", store=store))
    refused(db, "nothing_corrected", lambda s: records.correct_calibration(
        s, technical, s.get(CalibrationRecord, first.id), cert_facts(db), reason="同一文件", store=store,
        certificate=pdf_upload()))
    saved.unchanged()


def test_a_check_correction_is_a_signed_new_revision(db, technical, store):
    instrument = make_instrument(db, technical)
    facts = check_facts(db)
    first = check(db, technical, instrument, performed_at=facts.performed_at)
    saved = Saved(db, store)
    refused(db, "nothing_corrected", lambda s: records.correct_check(
        s, technical, s.get(IntermediateCheck, first.id), check_facts(db, measured_value="0.502"), PASSWORD,
        reason="无变化"))
    refused(db, "reason_required", lambda s: records.correct_check(
        s, technical, s.get(IntermediateCheck, first.id), check_facts(db, measured_value="0.512"), PASSWORD,
        reason=""))
    saved.unchanged()
    with db.transaction() as session:
        corrected = records.correct_check(session, technical, session.get(IntermediateCheck, first.id),
                                          check_facts(db, measured_value="0.512", result="fail"), PASSWORD,
                                          reason="读数抄错")
    assert (corrected.revision, corrected.supersedes_id, corrected.result) == (2, first.id, "fail")
    assert audit_actions(db, saved.seq) == [
        "signature.performed", "instrument.check_corrected", "instrument.impact_opened", "instrument.state_changed"]
    assert reload(db, Instrument, instrument.id).service_state == "out_of_service"
    refused(db, "record_superseded", lambda s: records.correct_check(
        s, technical, s.get(IntermediateCheck, first.id), check_facts(db, measured_value="0.499"), PASSWORD,
        reason="再改"))


def test_a_maintenance_correction_is_a_new_revision(db, technical, store):
    instrument = make_instrument(db, technical)
    at = utcnow() - timedelta(hours=3)
    first = maintain(db, technical, instrument, performed_at=at)
    facts = records.MaintenanceFacts(kind="repair", performed_at=at, description="更换氘灯，清洁样品室",
                                     performed_by="岛津售后 王工")
    refused(db, "nothing_corrected", lambda s: records.correct_maintenance(
        s, technical, s.get(MaintenanceRecord, first.id), records.MaintenanceFacts(
            kind="maintenance", performed_at=at, description="更换氘灯，清洁样品室", performed_by="岛津售后 王工"),
        reason="无变化"))
    seq = audit_head_seq(db)
    with db.transaction() as session:
        corrected = records.correct_maintenance(session, technical, session.get(MaintenanceRecord, first.id), facts,
                                                reason="实为维修")
    assert (corrected.revision, corrected.supersedes_id, corrected.kind) == (2, first.id, "repair")
    assert audit_actions(db, seq) == ["instrument.maintenance_corrected", "instrument.state_changed"]
    assert reload(db, MaintenanceRecord, first.id).kind == "maintenance"


# ---------------------------------------------------------------- append-only at the database

UPDATES = {
    "instrument_calibration": "certificate_no = 'FORGED'",
    "instrument_calibration_acceptance": "decision = 'accepted'",
    "instrument_check": "measured_value = '0.500'",
    "instrument_maintenance": "description = 'forged'",
    "instrument_service_change": "reason = 'forged'",
    "instrument_attachment": "title = 'forged'",
}


@pytest.fixture
def every_record(db, technical, store, calibrated):
    """At least one row in each append-only table (row triggers fire only on existing rows)."""
    check(db, technical, calibrated, performed_at=utcnow() - timedelta(hours=2))
    maintain(db, technical, calibrated, performed_at=utcnow() - timedelta(hours=1))
    with db.transaction() as session:
        service.add_attachment(session, technical, session.get(Instrument, calibrated.id), store,
                               pdf_upload(PDF, "manual.pdf"), title="使用说明书", kind="manual", max_bytes=MB)
    take_out_of_service(db, technical, calibrated)
    counts = row_counts(db, *APPEND_ONLY_TABLES)
    assert all(counts.values()), counts
    return counts


def table_rows(db: Database, table: str) -> list[tuple]:
    with db.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT * FROM {table} ORDER BY id")))


def refused_by_database(db: Database, sql: str) -> None:
    with pytest.raises(DBAPIError, match=r"append-only table \w+: (UPDATE|DELETE) is forbidden"), \
            db.engine.connect() as conn, conn.begin():
        conn.execute(text(sql))


def test_the_table_list_covers_every_record_table():
    assert set(UPDATES) == set(APPEND_ONLY_TABLES)


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_update_and_delete_are_refused_by_the_database(db, every_record, table):
    before = table_rows(db, table)
    refused_by_database(db, f"UPDATE {table} SET {UPDATES[table]}")
    refused_by_database(db, f"DELETE FROM {table} WHERE id = {before[0][0]}")
    refused_by_database(db, f"DELETE FROM {table}")
    assert table_rows(db, table) == before


# ---------------------------------------------------------------- acceptance (计量确认)


def test_only_the_responsible_person_may_accept(db, technical, store, users):
    instrument = make_instrument(db, technical)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - days(3),
                       valid_until=local_today(db) + days(362), accept=None)
    saved = Saved(db, store)
    for someone in (users["analyst"], users["sampler"]):  # they hold the permission, not the instrument
        error = refused(db, "not_responsible_person", lambda s, who=someone: records.decide_acceptance(
            s, who, s.get(CalibrationRecord, record.id), PASSWORD, accept=True))
        assert technical.printed_name in error.message("zh_CN")
    refused(db, "permission_denied", lambda s: records.decide_acceptance(
        s, users["quality_manager"], s.get(CalibrationRecord, record.id), PASSWORD, accept=True))
    saved.unchanged()


@pytest.mark.parametrize("role", ["quality_manager", "custodian", "reviewer", "admin", "inspector"])
def test_the_responsible_person_must_be_able_to_confirm(db, technical, store, users, role):
    """Otherwise no certificate of the instrument could ever be accepted."""
    someone = users[role]
    saved = Saved(db, store)
    error = refused(db, "unknown_responsible", lambda s: service.register_instrument(
        s, technical, asset_no="JC-PH-001", name_zh="pH 计", commissioned_on=local_today(db) - days(10),
        responsible_id=someone.id, uses=[("pH", "HJ 1147-2020")]))
    assert someone.printed_name in error.message("zh_CN") and someone.printed_name in error.message("en")
    instrument = make_instrument(db, technical)
    refused(db, "unknown_responsible", lambda s: service.update_instrument(
        s, technical, s.get(Instrument, instrument.id), reason="交接", responsible_id=someone.id))
    assert reload(db, Instrument, instrument.id).responsible_id == technical.id
    assert row_counts(db, "instrument")["instrument"] == saved.counts["instrument"] + 1


def test_the_responsible_person_may_be_an_analyst(db, technical, store, users):
    analyst = users["analyst"]
    instrument = make_instrument(db, technical, responsible=analyst)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - days(3),
                       valid_until=local_today(db) + days(362), accept=None)
    accept(db, analyst, record)
    assert reload(db, Instrument, instrument.id).due_at is not None


def test_acceptance_needs_the_password(db, technical, store):
    instrument = make_instrument(db, technical)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - days(3),
                       valid_until=local_today(db) + days(362), accept=None)
    saved = Saved(db, store)
    refused(db, "wrong_signing_password", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, record.id), "wrong-password", accept=True))
    saved.unchanged(except_audit=["signature.failed"])
    assert reload(db, Instrument, instrument.id).due_at is None


def test_a_certificate_cannot_be_decided_twice(db, technical, store):
    instrument = make_instrument(db, technical)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - days(3),
                       valid_until=local_today(db) + days(362))
    saved = Saved(db, store)
    refused(db, "already_decided", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, record.id), PASSWORD, accept=True))
    refused(db, "already_decided", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, record.id), PASSWORD, accept=False, note="改变主意"))
    saved.unchanged()


def test_a_failed_certificate_cannot_be_accepted(db, technical, store):
    instrument = make_instrument(db, technical)
    record = calibrate(db, technical, store, instrument, performed_on=local_today(db) - days(3), valid_until=None,
                       result="fail")
    saved = Saved(db, store)
    refused(db, "nothing_to_accept", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, record.id), PASSWORD, accept=True))
    saved.unchanged()


def test_a_superseded_certificate_cannot_be_accepted(db, technical, store):
    instrument = make_instrument(db, technical)
    first = enter_certificate(db, technical, instrument, store, cert_facts(db))
    with db.transaction() as session:
        records.correct_calibration(session, technical, session.get(CalibrationRecord, first.id),
                                    cert_facts(db, provider="江城市计量院"), reason="简称", store=store)
    refused(db, "record_superseded", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, first.id), PASSWORD, accept=True))


def test_a_rejection_needs_a_note(db, technical, store):
    instrument = make_instrument(db, technical)
    record = enter_certificate(db, technical, instrument, store, cert_facts(db))
    refused(db, "invalid_input", lambda s: records.decide_acceptance(
        s, technical, s.get(CalibrationRecord, record.id), PASSWORD, accept=False, note=" "))
    accept(db, technical, record, accepted=False)
    with db.reading() as session:
        decision = session.scalars(select(CalibrationAcceptance.decision)
                                   .where(CalibrationAcceptance.calibration_id == record.id)).one()
    assert decision == "rejected"


def test_the_acceptance_signature_verifies_and_breaks_when_the_certificate_changes(db, technical, store):
    instrument = make_instrument(db, technical)
    record = enter_certificate(db, technical, instrument, store, cert_facts(db))
    seq = audit_head_seq(db)
    acceptance = accept(db, technical, record)
    assert audit_actions(db, seq) == [
        "signature.confirmed", "instrument.calibration_accepted", "instrument.state_changed"]

    def view():
        with db.reading() as session:
            fresh = session.get(Instrument, instrument.id)
            cal = session.get(CalibrationRecord, record.id)
            row = session.get(CalibrationAcceptance, acceptance.id)
            signature = session.get(ElectronicSignature, row.signature_id)
            assert (signature.signer_id, signature.meaning) == (technical.id, "confirmed")
            assert (signature.entity_type, signature.entity_id) == ("instrument_calibration", str(record.id))
            return check_signature(signature, records.acceptance_content(fresh, cal, row))

    assert view().intact
    with unprotected(db, "instrument_calibration") as conn:
        conn.execute(text("UPDATE instrument_calibration SET valid_until = :d WHERE id = :id"),
                     {"d": local_today(db) + days(3000), "id": record.id})
    assert view().broken


# ---------------------------------------------------------------- retirement, audit, permissions


def test_a_retired_instrument_refuses_new_records(db, technical, store, calibrated, users):
    retire(db, technical, calibrated)
    saved = Saved(db, store)
    for act in (
        lambda s: records.record_calibration(s, technical, s.get(Instrument, calibrated.id),
                                             cert_facts(db, certificate_no="JZ-AFTER"), store=store,
                                             certificate=pdf_upload()),
        lambda s: records.record_check(s, users["analyst"], s.get(Instrument, calibrated.id), check_facts(db),
                                       PASSWORD),
        lambda s: records.record_maintenance(s, technical, s.get(Instrument, calibrated.id), records.MaintenanceFacts(
            kind="repair", performed_at=utcnow(), description="维修")),
        lambda s: service.take_out_of_service(s, technical, s.get(Instrument, calibrated.id), "停用"),
        lambda s: service.retire_instrument(s, technical, s.get(Instrument, calibrated.id), "再次报废"),
    ):
        error = refused(db, "instrument_is_retired", act)
        assert calibrated.asset_no in error.message("zh_CN")
    saved.unchanged()


def test_out_of_service_twice_is_refused(db, technical, store, calibrated):
    take_out_of_service(db, technical, calibrated)
    saved = Saved(db, store)
    refused(db, "already_out_of_service", lambda s: service.take_out_of_service(
        s, technical, s.get(Instrument, calibrated.id), "再停一次"))
    refused(db, "reason_required", lambda s: service.retire_instrument(
        s, technical, s.get(Instrument, calibrated.id), ""))
    saved.unchanged()


def test_every_act_appends_its_audit_events(db, technical, store, users):
    today = local_today(db)
    seq = audit_head_seq(db)
    instrument = make_instrument(db, technical)
    assert audit_actions(db, seq) == ["instrument.registered"]

    def acts(action) -> list[str]:
        start = audit_head_seq(db)
        action()
        return audit_actions(db, start)

    record = None

    def enter():
        nonlocal record
        record = enter_certificate(db, technical, instrument, store, cert_facts(db))

    assert acts(enter) == ["file.stored", "instrument.calibration_recorded"]
    assert acts(lambda: accept(db, technical, record)) == [
        "signature.confirmed", "instrument.calibration_accepted", "instrument.state_changed"]
    assert acts(lambda: check(db, users["analyst"], instrument, performed_at=utcnow())) == [
        "signature.performed", "instrument.check_recorded"]
    assert acts(lambda: maintain(db, users["analyst"], instrument, performed_at=utcnow())) == [
        "instrument.maintenance_recorded"]
    assert acts(lambda: check(db, users["analyst"], instrument, performed_at=utcnow(), result="fail")) == [
        "signature.performed", "instrument.check_recorded", "instrument.impact_opened", "instrument.state_changed"]
    assert acts(lambda: calibrate(db, technical, store, instrument, performed_on=today, valid_until=today + days(365),
                                  certificate_no="JZ-RECAL")) == [
        "file.stored", "instrument.calibration_recorded",
        "signature.confirmed", "instrument.calibration_accepted", "instrument.state_changed"]
    assert acts(lambda: take_out_of_service(db, technical, instrument)) == [
        "instrument.out_of_service", "instrument.state_changed"]
    assert acts(lambda: calibrate(db, technical, store, instrument, performed_on=today, valid_until=None,
                                  result="fail", certificate_no="JZ-FAIL")) == [
        "file.stored", "instrument.calibration_recorded", "instrument.impact_opened"]  # already out of service
    assert acts(lambda: retire(db, technical, instrument)) == ["instrument.retired", "instrument.state_changed"]
    chain_ok(db)
    with db.reading() as session:
        retired = session.scalars(select(AuditEvent).where(AuditEvent.action == "instrument.retired")).one()
        assert retired.actor_id == technical.id
        assert retired.after_data["reason"] == "超过使用年限，报废"
        assert retired.after_data["asset_no"] == "JC-UV-001"
        changed = session.scalars(select(AuditEvent).where(AuditEvent.action == "instrument.state_changed")
                                  .order_by(AuditEvent.seq.desc()).limit(1)).one()
        assert changed.before_data["service_state"] == "out_of_service"
        assert changed.after_data["service_state"] == "retired"


def test_the_recorded_content_is_what_the_audit_holds(db, technical, store):
    instrument = make_instrument(db, technical)
    seq = audit_head_seq(db)
    record = enter_certificate(db, technical, instrument, store, cert_facts(db))
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.seq > seq, AuditEvent.action == "instrument.calibration_recorded")).one()
        fresh = session.get(CalibrationRecord, record.id)
        from app.core.canonical import canonical_json

        assert event.after == canonical_json(record_content(session.get(Instrument, instrument.id), fresh))


MANAGE_ACTS = {
    "register": lambda s, who, inst, rec, store: service.register_instrument(
        s, who, asset_no="JC-NEW-01", name_zh="pH 计", commissioned_on=date(2024, 1, 1),
        responsible_id=who.id, uses=[("pH", "HJ 1147-2020")]),
    "update": lambda s, who, inst, rec, store: service.update_instrument(
        s, who, s.get(Instrument, inst.id), reason="搬迁", location="理化室 305"),
    "certificate": lambda s, who, inst, rec, store: records.record_calibration(
        s, who, s.get(Instrument, inst.id), cert_facts_for(s, certificate_no="JZ-X"), store=store,
        certificate=pdf_upload()),
    "correct_certificate": lambda s, who, inst, rec, store: records.correct_calibration(
        s, who, s.get(CalibrationRecord, rec.id), cert_facts_for(s, provider="别的"), reason="改", store=store),
    "out_of_service": lambda s, who, inst, rec, store: service.take_out_of_service(
        s, who, s.get(Instrument, inst.id), "停用"),
    "retire": lambda s, who, inst, rec, store: service.retire_instrument(s, who, s.get(Instrument, inst.id), "报废"),
    "attachment": lambda s, who, inst, rec, store: service.add_attachment(
        s, who, s.get(Instrument, inst.id), store, pdf_upload(), title="说明书", max_bytes=MB),
}
RECORD_ACTS = {
    "check": lambda s, who, inst, rec, store: records.record_check(
        s, who, s.get(Instrument, inst.id), _check_facts_for(s), PASSWORD),
    "maintenance": lambda s, who, inst, rec, store: records.record_maintenance(
        s, who, s.get(Instrument, inst.id),
        records.MaintenanceFacts(kind="maintenance", performed_at=utcnow(), description="清洁")),
}
CONFIRM_ACTS = {
    "accept": lambda s, who, inst, rec, store: records.decide_acceptance(
        s, who, s.get(CalibrationRecord, rec.id), PASSWORD, accept=True),
}


def cert_facts_for(session, **changes: Any) -> records.CalibrationFacts:
    from app.core.labtime import lab_calendar

    today = lab_calendar(session).today()
    return records.CalibrationFacts(**{
        "kind": "verification", "provider": "江城市计量测试研究院", "certificate_no": "JZ-P",
        "performed_on": today - days(1), "valid_until": today + days(364), "result": "pass", **changes})


def _check_facts_for(session) -> records.CheckFacts:
    return records.CheckFacts(performed_at=utcnow(), check_standard="标准溶液", criterion="±1%",
                              measured_value="1.00", result="pass")


@pytest.fixture
def subject(db, technical, store):
    """An instrument with a pending certificate."""
    instrument = make_instrument(db, technical)
    record = enter_certificate(db, technical, instrument, store, cert_facts(db))
    return instrument, record


@pytest.mark.parametrize("act", [*MANAGE_ACTS, *RECORD_ACTS, *CONFIRM_ACTS])
def test_the_inspector_is_refused_everywhere(db, store, users, subject, act):
    instrument, record = subject
    action = {**MANAGE_ACTS, **RECORD_ACTS, **CONFIRM_ACTS}[act]
    saved = Saved(db, store)
    with pytest.raises(InspectorReadOnly), db.transaction() as session:
        action(session, users["inspector"], instrument, record, store)
    saved.unchanged()


@pytest.mark.parametrize("act", list(MANAGE_ACTS))
def test_the_analyst_may_not_manage_instruments(db, store, users, subject, act):
    instrument, record = subject
    saved = Saved(db, store)
    with pytest.raises(PermissionDenied) as caught, db.transaction() as session:
        MANAGE_ACTS[act](session, users["analyst"], instrument, record, store)
    assert caught.value.code == "permission_denied"
    saved.unchanged()


@pytest.mark.parametrize("act", list(RECORD_ACTS))
def test_the_analyst_records_checks_and_maintenance(db, store, users, subject, act):
    instrument, record = subject
    with db.transaction() as session:
        RECORD_ACTS[act](session, users["analyst"], instrument, record, store)
    assert row_counts(db, f"instrument_{act}")[f"instrument_{act}"] == 1


def test_the_quality_manager_records_nothing_here(db, store, users, subject):
    instrument, record = subject
    for action in (*MANAGE_ACTS.values(), *RECORD_ACTS.values()):
        with pytest.raises(PermissionDenied), db.transaction() as session:
            action(session, users["quality_manager"], instrument, record, store)


def test_counting_helpers_see_a_saved_record(db, technical, store):
    """The 'nothing half-saved' checks above would pass vacuously if the counters saw nothing."""
    instrument = make_instrument(db, technical)
    saved = Saved(db, store)
    enter_certificate(db, technical, instrument, store, cert_facts(db))
    with pytest.raises(AssertionError):
        saved.unchanged()
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(CalibrationRecord)) == 1
    assert len(files_on_disk(store)) == len(saved.files) + 1


# ---------------------------------------------------------------- dates the lab calendar cannot handle


def test_implausible_dates_are_refused_not_crashed_on(db, technical, store):
    """Year 1 overflowed converting to UTC; valid until 9999-12-31 has no next day to fall due on."""
    from datetime import UTC, datetime

    saved = Saved(db, store)
    for day in (date(1, 1, 1), date(1899, 12, 31)):
        refused(db, "invalid_input", lambda s, day=day: service.register_instrument(
            s, technical, asset_no="JC-OLD-01", name_zh="天平", commissioned_on=day, responsible_id=technical.id,
            uses=[("pH", "")]))
    saved.unchanged()
    instrument = make_instrument(db, technical)
    refused(db, "invalid_input", lambda s: service.update_instrument(
        s, technical, s.get(Instrument, instrument.id), reason="改投用日期", commissioned_on=date(1, 1, 1)))
    today = local_today(db)
    refused_certificate(db, technical, instrument, store, "invalid_input",
                        cert_facts(db, performed_on=date(1, 1, 1), valid_until=today))
    refused_certificate(db, technical, instrument, store, "invalid_input",
                        cert_facts(db, valid_until=date(9999, 12, 31)))
    saved = Saved(db, store)
    year_one = datetime(1, 1, 1, tzinfo=db.calendar.tz)
    refused(db, "invalid_input", lambda s: records.record_check(
        s, technical, s.get(Instrument, instrument.id), check_facts(db, performed_at=year_one), PASSWORD))
    refused(db, "invalid_input", lambda s: records.record_maintenance(
        s, technical, s.get(Instrument, instrument.id), records.MaintenanceFacts(
            kind="maintenance", performed_at=datetime(1899, 12, 31, tzinfo=UTC), description="清洁")))
    saved.unchanged()
    # the bounds themselves are fine
    enter_certificate(db, technical, instrument, store, cert_facts(db, valid_until=date(2999, 12, 31)))


@pytest.mark.parametrize("asset_no", ["impact", "confirmations", "JC/status", "new", "JC-01/checks"])
def test_an_asset_number_that_a_page_address_would_shadow_is_refused(db, technical, asset_no):
    from app.instruments.errors import ReservedAssetNo

    with pytest.raises(ReservedAssetNo) as refused:
        make_instrument(db, technical, asset_no)
    assert refused.value.code == "reserved_asset_no"
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Instrument)) == 0
