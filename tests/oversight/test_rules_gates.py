"""Anomaly rules over the gates (A14–A17), each on data that must trigger it and data that must
not (the boundary just inside), and outside the scan window."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest

from app.analysis.models import ImportProfile, ResultImport
from app.core.files import FileStore, StoredFile
from app.oversight.rules.base import ScanWindow
from app.reference_materials.models import MaterialUse
from tests.analysis.conftest import qualify
from tests.instruments.conftest import calibrate, make_instrument
from tests.oversight.conftest import run_rule
from tests.reference_materials.conftest import make_lot, make_material, open_unit, receive


def found(db, code: str, window: ScanWindow | None = None, lab=None):
    return run_rule(db, code, window)

@pytest.fixture
def store(settings) -> FileStore:
    return FileStore(settings.data_path / "files")


# ---------------------------------------------------------------- A14


def test_a14_analyst_without_a_qualification_at_the_analysis_date(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    analyst = users["analyst"]
    # valid until two days ago: the batch started yesterday is not covered
    qualify(db, analyst, method.method_id, valid_from=date.today() - timedelta(days=300),
            valid_to=date.today() - timedelta(days=3))
    site = lab.site("WS01")
    (s1,) = lab.samples(1, site=site)
    batch = lab.batch(method, analyst, started_at=lab.t(-24))
    lab.result(batch, s1, "NH3-N", "0.512")
    findings = found(db, "A14", lab=lab)
    assert [f.key for f in findings] == [f"unqualified:{batch.id}"]
    f = findings[0]
    assert f.sample_ids == (s1.id,) and f.batch_id == batch.id and f.responsible_user_id == analyst.id
    assert f.evidence["method"] == "HJ 535-2009" and f.evidence["qualifications"][0]["certificate_no"]
    assert "threshold" in f.evidence and batch.batch_no in f.summary_en


def test_a14_a_covering_qualification_and_the_analysts_own_import_do_not_trigger(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    analyst = users["analyst"]
    qualify(db, analyst, method.method_id)
    (s1,) = lab.samples(1)
    batch = lab.batch(method, analyst)
    lab.result(batch, s1, "NH3-N", "0.512", source="import")
    assert found(db, "A14", lab=lab) == []


def test_a14_revoked_before_the_act_triggers_revoked_after_does_not(db, lab, users):
    from app.analysis.models import Qualification

    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    analyst = users["analyst"]
    q = qualify(db, analyst, method.method_id)
    (s1,) = lab.samples(1)
    batch = lab.batch(method, analyst, started_at=lab.t(-24))
    lab.result(batch, s1, "NH3-N", "0.512")
    with db.transaction() as session:
        session.get(Qualification, q.id).revoked_at = lab.t(-23)  # after the start: the act stays qualified
    assert found(db, "A14", lab=lab) == []
    with db.transaction() as session:
        session.get(Qualification, q.id).revoked_at = lab.t(-25)  # before the start
    assert [f.key for f in found(db, "A14", lab=lab)] == [f"unqualified:{batch.id}"]


def test_a14_manual_entry_by_someone_else_than_the_batch_analyst(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    qualify(db, users["analyst"], method.method_id)
    s1, s2 = lab.samples(2)
    batch = lab.batch(method, users["analyst"])
    other = users["technical_manager"]
    lab.result(batch, s1, "NH3-N", "0.512", entered_by=other)
    lab.result(batch, s2, "NH3-N", "0.498", entered_by=other, source="import")  # not a manual entry
    findings = found(db, "A14", lab=lab)
    assert [f.key for f in findings] == [f"enterer:{batch.id}:{other.id}"]
    assert findings[0].evidence["results"] == 1 and findings[0].responsible_user_id == other.id


def test_a14_results_entered_before_the_window_are_not_judged(db, lab, users):
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1,) = lab.samples(1)
    batch = lab.batch(method, users["analyst"], started_at=lab.t(-24))
    lab.result(batch, s1, "NH3-N", "0.512")  # entered 23 h 20 min ago, nobody qualified
    assert found(db, "A14", ScanWindow(until=lab.now, since=lab.t(-1))) == []
    assert len(found(db, "A14", ScanWindow(until=lab.now, since=lab.t(-48)))) == 1
    assert len(found(db, "A14", ScanWindow(until=lab.now, batch_ids=(batch.id,)))) == 1


# ---------------------------------------------------------------- A15


def test_a15_measured_after_the_calibration_ran_out(db, lab, users, store):
    tm = users["technical_manager"]
    instrument = make_instrument(db, tm, "JC-UV-101")
    today = db.calendar.today()
    calibrate(db, tm, store, instrument, performed_on=today - timedelta(days=300),
              valid_until=today - timedelta(days=10))
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (late, early) = lab.samples(2)
    overdue = lab.batch(method, started_at=lab.t(-24 * 5), instrument_id=instrument.id)
    lab.result(overdue, late, "NH3-N", "0.512", instrument_id=instrument.id)
    inside = lab.batch(method, started_at=lab.t(-24 * 20), instrument_id=instrument.id)
    lab.result(inside, early, "NH3-N", "0.498", instrument_id=instrument.id)
    findings = found(db, "A15", lab=lab)
    assert [f.key for f in findings] == [f"{overdue.id}:{instrument.id}:overdue"]
    f = findings[0]
    assert f.sample_ids == (late.id,) and f.evidence["instrument"] == "JC-UV-101"
    assert f.evidence["results"] == 1 and f.evidence["calibration_due_at"]


def test_a15_the_day_the_certificate_is_valid_until_is_still_inside(db, lab, users, store):
    tm = users["technical_manager"]
    instrument = make_instrument(db, tm, "JC-UV-102")
    today = db.calendar.today()
    calibrate(db, tm, store, instrument, performed_on=today - timedelta(days=300),
              valid_until=today - timedelta(days=5))
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    s1, s2 = lab.samples(2)
    last_minute = db.calendar.start_of(today - timedelta(days=4)) - timedelta(minutes=1)
    first_minute = db.calendar.start_of(today - timedelta(days=4))
    batch = lab.batch(method, started_at=last_minute - timedelta(hours=1), instrument_id=instrument.id)
    lab.result(batch, s1, "NH3-N", "0.5", measured_at=last_minute, instrument_id=instrument.id)
    assert found(db, "A15", lab=lab) == []
    lab.result(batch, s2, "NH3-N", "0.5", measured_at=first_minute, instrument_id=instrument.id)
    findings = found(db, "A15", lab=lab)
    assert len(findings) == 1 and findings[0].sample_ids == (s2.id,)


def test_a15_never_calibrated_and_outside_the_window(db, lab, users):
    instrument = make_instrument(db, users["technical_manager"], "JC-UV-103")
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1,) = lab.samples(1)
    batch = lab.batch(method, instrument_id=instrument.id)
    lab.result(batch, s1, "NH3-N", "0.5", instrument_id=instrument.id)
    assert [f.evidence["reason"] for f in found(db, "A15", lab=lab)] == ["not_calibrated"]
    assert found(db, "A15", ScanWindow(until=lab.now, since=lab.t(-1))) == []


# ---------------------------------------------------------------- A16


def _use(db, unit, used_at, user) -> MaterialUse:
    with db.transaction() as session:
        use = MaterialUse(item_kind="unit", item_id=unit.id, used_at=used_at, purpose="CRM", recorded_at=used_at,
                          recorded_by_id=user.id)
        session.add(use)
        session.flush()
        session.expunge(use)
        return use


def test_a16_a_crm_used_after_its_opened_shelf_life(db, lab, users, store):
    tm = users["technical_manager"]
    material = make_material(db, tm, opened_shelf_life_days=10)
    lot = make_lot(db, tm, store, material)
    (unit,) = receive(db, tm, lot, received_at=lab.t(-24 * 40))
    unit = open_unit(db, tm, unit, lab.t(-24 * 20))  # expires 10 days ago
    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1, s2) = lab.samples(2)
    late = lab.batch(method, started_at=lab.t(-24 * 5))
    lab.result(late, s1, "NH3-N", "0.5")
    late_use = _use(db, unit, lab.t(-24 * 5), users["analyst"])
    lab.position(late, "crm", material_use_id=late_use.id, material_barcode=unit.barcode)
    fine = lab.batch(method, started_at=lab.t(-24 * 15))
    lab.result(fine, s2, "NH3-N", "0.5")
    fine_use = _use(db, unit, lab.t(-24 * 15), users["analyst"])
    lab.position(fine, "crm", material_use_id=fine_use.id, material_barcode=unit.barcode)
    findings = found(db, "A16", lab=lab)
    assert [f.key for f in findings] == [f"use:{late_use.id}"]
    f = findings[0]
    assert f.batch_id == late.id and f.sample_ids == (s1.id,) and f.evidence["barcode"] == unit.barcode
    assert f.evidence["threshold"] and late.batch_no in f.summary_en
    # the batch scan sees only its own uses; a window after the use sees none
    assert found(db, "A16", ScanWindow(until=lab.now, batch_ids=(fine.id,))) == []
    assert found(db, "A16", ScanWindow(until=lab.now, since=lab.t(-24))) == []


# ---------------------------------------------------------------- A17


def _imported_file(db, lab, users, store: FileStore, content: bytes):
    import io

    from app.core.db import utcnow

    method = lab.method("HJ 535-2009", ("NH3-N", "0.025"))
    (s1,) = lab.samples(1)
    batch = lab.batch(method)
    sha, size = store.put(io.BytesIO(content), 10_000)
    with db.transaction() as session:
        profile = ImportProfile(code=f"P{lab._next()}", name="generic", created_at=utcnow(),
                                created_by_id=users["technical_manager"].id)
        stored = StoredFile(sha256=sha, size=size, media_type="text/csv", filename="uv.csv", uploaded_at=utcnow())
        session.add_all([profile, stored])
        session.flush()
        row = ResultImport(code=f"IM26-{lab._next():05d}", batch_id=batch.id, profile_id=profile.id,
                           file_id=stored.id, sha256=sha, filename="uv.csv", rows_total=1, rows_imported=1,
                           imported_at=lab.t(-2), imported_by_id=users["analyst"].id)
        session.add(row)
        session.flush()
        session.expunge(row)
    position = lab.position(batch, sample=s1)
    with db.transaction() as session:
        from decimal import Decimal

        from app.analysis.models import AnalysisResult

        session.add(AnalysisResult(batch_id=batch.id, position_id=position.id, sample_id=s1.id, parameter="NH3-N",
                                   method_version_id=batch.method_version_id, reading=Decimal("0.5"),
                                   value=Decimal("0.5"), unit="mg/L", measured_at=lab.t(-3), source="import",
                                   import_id=row.id, entered_at=lab.t(-2), entered_by_id=batch.analyst_id))
    return row, s1


def test_a17_a_raw_file_changed_on_disk(db, lab, users, store):
    row, sample = _imported_file(db, lab, users, store, b"sample,NH3-N\nS-001,0.512\n")
    assert found(db, "A17", lab=lab) == []  # intact
    path = store.path(row.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"sample,NH3-N\nS-001,0.312\n")
    findings = found(db, "A17", lab=lab)
    assert [f.key for f in findings] == [f"import:{row.id}"]
    assert findings[0].sample_ids == (sample.id,) and findings[0].evidence["recorded_sha256"] == row.sha256
    assert findings[0].evidence["sha256_now"] != row.sha256
    assert found(db, "A17", ScanWindow(until=lab.now, since=lab.t(-1))) == []  # imported 2 h ago


def test_a17_a_raw_file_gone(db, lab, users, store):
    row, _ = _imported_file(db, lab, users, store, b"sample,NH3-N\nS-002,0.1\n")
    path = store.path(row.sha256)
    os.chmod(path, 0o644)
    path.unlink()
    findings = found(db, "A17", lab=lab)
    assert len(findings) == 1 and findings[0].evidence["sha256_now"] is None
