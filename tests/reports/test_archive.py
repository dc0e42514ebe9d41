"""Record packages: an issued report's package holds the signed PDF, the original records behind
it, their e-signatures and audit events with a manifest of SHA-256 sums; `verify_package` checks
it offline and names the first bad entry; drafts and damaged stores are refused, leaving no file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.analysis.models import BatchCurve, CalibrationPoint, ImportProfile, ResultImport
from app.cli import app as cli_app
from app.config import Settings
from app.core import audit
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.files import StoredFile
from app.core.labtime import lab_calendar
from app.core.pdf import render_pdf
from app.instruments.models import CalibrationRecord, Instrument
from app.reference_materials.models import MaterialUse
from app.reports import archive
from app.reports.archive import export_package, verify_package
from app.reports.content import load_content
from app.reports.models import Report
from app.samples.lab_models import CustodyEvent, CustodyEventContainer
from app.samples.models import Container, FieldEntry, SamplePhoto
from tests.analysis import conftest as analysis_fixtures
from tests.analysis.qc_fixtures import enter
from tests.instruments.conftest import calibrate, local_today
from tests.reports.conftest import Reportable, make_report, reportable_samples

standards = analysis_fixtures.standards


@dataclass
class Issued:
    report: Report
    reportable: Reportable
    pdf: bytes
    raw: bytes
    photo_sha256: str
    lot_folder: str
    certificate_no: str  # of the calibration in force when the instrument was used
    field_test_at: str


def _stored(db, store, data: bytes, filename: str, media_type: str, user) -> StoredFile:
    sha256, size = store.put(io.BytesIO(data), 10 * 1024 * 1024)
    with db.transaction() as session:
        row = StoredFile(sha256=sha256, size=size, media_type=media_type, filename=filename,
                         uploaded_at=utcnow(), uploaded_by_id=user.id)
        session.add(row)
        session.flush()
        session.expunge(row)
        return row


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def issue(db, report: Report, store, signatory, pdf: bytes, rendered: bytes | None = None) -> Report:
    """Mark a report issued as the issue job would: its signed PDF (and the PDF the signatory
    approved, when given) stored, hashes and anchor fixed."""
    pdf_file = _stored(db, store, pdf, f"{report.report_no}.pdf", "application/pdf", signatory)
    approved = _stored(db, store, rendered, f"{report.report_no}-rendered.pdf", "application/pdf", signatory) \
        if rendered is not None else None
    with db.transaction() as session:
        row = session.get(Report, report.id)
        row.pdf_sha256 = pdf_file.sha256
        row.rendered_pdf_sha256 = approved.sha256 if approved else ""
        row.issued_at = row.approved_at = utcnow()
        row.content_sha256 = load_content(session, row).content_sha256
        row.audit_seq, row.audit_hash = audit.head(session)
        audit.append(session, signatory, "report.issued", "report", row.id, None,
                     {"pdf_sha256": row.pdf_sha256, "audit_seq": row.audit_seq})
        session.flush()
        session.expunge(row)
        return row


@pytest.fixture
def issued(db, reportable, store, standards, users, technical) -> Issued:
    """An issued report over the `reportable` samples, whose records also have a corrected result,
    a field entry and photo, a custody hand-over, an instrument import file and a calibration
    point made from a standard solution of a CRM lot."""
    bench, analyst, sample = reportable.bench, reportable.analyst, reportable.samples[0]
    today = local_today(db)  # a certificate that had expired before any of these measurements
    calibrate(db, technical, store, Instrument(id=bench.batch.instrument_id), performed_on=today - timedelta(days=500),
              valid_until=today - timedelta(days=135), certificate_no="JD-OLD-EXPIRED")
    enter(db, bench, {"S-001": "0.515"}, reason="transcription error corrected")
    raw = b"Sample,NH3-N\nS-001,0.515\nS-002,0.200\n"
    raw_file = _stored(db, store, raw, "uv_run_1203.csv", "text/csv", analyst)
    photo = _stored(db, store, _jpeg(), "field.jpg", "image/jpeg", reportable.sampler)
    now = utcnow()
    with db.transaction() as session:
        profile = ImportProfile(code="UV-CSV-ARCH", name="UV csv", created_at=now, created_by_id=analyst.id)
        session.add(profile)
        session.flush()
        session.add(ResultImport(code="IM26-09001", batch_id=bench.batch.id, profile_id=profile.id,
                                 file_id=raw_file.id, sha256=raw_file.sha256, filename=raw_file.filename,
                                 rows_total=2, rows_imported=2, imported_at=now, imported_by_id=analyst.id))
        session.add(FieldEntry(client_id="arch-field-1", sample_id=sample.id, kind="observation",
                               act_at=now - timedelta(hours=3), payload='{"weather":"晴"}',
                               entered_by_id=reportable.sampler.id, entered_at=now - timedelta(hours=3)))
        session.add(FieldEntry(client_id="arch-field-2", sample_id=sample.id, kind="field_test", parameter="pH",
                               value=Decimal("7.21"), instrument_id=reportable.bench.batch.instrument_id,
                               act_at=now - timedelta(hours=5), entered_by_id=reportable.sampler.id,
                               entered_at=now - timedelta(hours=5)))
        session.add(SamplePhoto(client_id="arch-photo-1", sample_id=sample.id, file_id=photo.id, sha256=photo.sha256,
                                size=photo.size, thumbnail_sha256=photo.sha256, width=8, height=8,
                                taken_by_id=reportable.sampler.id, uploaded_at=now - timedelta(hours=3)))
        container = Container(barcode="CT26-09000011", sample_id=sample.id, group_code="NH3N", container_type="P",
                              parameters='["NH3-N"]', created_at=now - timedelta(hours=4))
        session.add(container)
        session.flush()
        event = CustodyEvent(kind="handover", occurred_at=now - timedelta(hours=2, minutes=45),
                             from_user_id=reportable.sampler.id, to_user_id=users["custodian"].id,
                             recorded_at=now, recorded_by_id=users["custodian"].id)
        session.add(event)
        session.flush()
        session.add(CustodyEventContainer(event_id=event.id, container_id=container.id, sample_id=sample.id))
        audit.append(session, users["custodian"], "custody.handover", "custody_event", event.id, None,
                     {"containers": [container.barcode]})
        use = MaterialUse(item_kind="solution", item_id=standards.working.id, used_at=now - timedelta(hours=3),
                          purpose="calibration standard", recorded_at=now, recorded_by_id=analyst.id)
        session.add(use)
        session.flush()
        curve_id = session.scalar(select(BatchCurve.curve_id).where(BatchCurve.batch_id == bench.batch.id))
        session.add(CalibrationPoint(curve_id=curve_id, level=1, concentration=Decimal("0.10"),
                                     response=Decimal("0.022"), solution_barcode=standards.working.barcode,
                                     material_use_id=use.id))
    report = make_report(db, reportable.preparer, reportable.samples, state="issued")
    pdf = render_pdf("<p>报告</p>")
    report = issue(db, report, store, reportable.signatory, pdf, rendered=render_pdf("<p>报告（待签发）</p>"))
    with db.reading() as session:
        in_force = session.scalars(select(CalibrationRecord.certificate_no).where(
            CalibrationRecord.certificate_no != "JD-OLD-EXPIRED")).one()
        field_test_at = session.scalars(select(FieldEntry.act_at).where(FieldEntry.kind == "field_test")).one()
    return Issued(report, reportable, pdf, raw, photo.sha256, "materials/GBW(E)081601-B2309", in_force,
                  field_test_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def export(db, settings, report_no: str, out: Path, progress=None) -> archive.PackageSummary:
    with db.reading() as session:
        return export_package(session, settings, report_no, out, progress)


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json"))


def rewrite(source: Path, target: Path, change: Callable[[str, bytes], bytes | None],
            extra: dict[str, bytes] | None = None) -> Path:
    """A copy of the zip with entries changed (None drops one) and `extra` entries appended."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return target


def one_byte_changed(name: str) -> Callable[[str, bytes], bytes | None]:
    def change(entry: str, data: bytes) -> bytes:
        if entry != name:
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
    return change


# ---------------------------------------------------------------- export and verify


def test_the_package_holds_every_record_kind_and_verifies_intact(db, settings, issued, tmp_path):
    report, bench = issued.report, issued.reportable.bench
    seen: list[tuple[str, int, int]] = []
    summary = export(db, settings, report.report_no, tmp_path / "p.zip", lambda *a: seen.append(a))
    check = verify_package(summary.path)
    assert check.ok and check.first_bad is None, check
    assert check.entries == summary.entries
    assert seen and seen[-1][1] == seen[-1][2]  # progress reached its total

    manifest = manifest_of(summary.path)
    paths = [e["path"] for e in manifest["entries"]]
    samples = [f"records/samples/{s.sample_no}" for s in issued.reportable.samples]
    batch = f"analysis/{bench.batch.batch_no}"
    expected = {f"report/{report.report_no}.pdf", f"report/{report.report_no}-for-approval.pdf",
                "report/report.json", "report/content.json",
                f"{batch}/batch.json", f"{batch}/results.json", f"{batch}/qc.json", f"{batch}/curves.json",
                f"{batch}/imports.json", "instruments/JC-UV-001/instrument.json",
                "instruments/JC-UV-001/calibrations.json", f"{issued.lot_folder}/lot.json",
                f"{issued.lot_folder}/certificate.pdf", "signatures.json", "audit/events.jsonl", "people.json"}
    expected |= {f"{s}/{kind}.json" for s in samples for kind in ("sample", "field", "custody", "receipt",
                                                                     "preparation")}
    assert expected <= set(paths), expected - set(paths)
    assert any(p.startswith("raw/") and p.endswith("-uv_run_1203.csv") for p in paths)
    assert any(p.startswith(f"{samples[0]}/photos/") and p.endswith(".jpg") for p in paths)
    assert any(p.startswith("instruments/JC-UV-001/certificates/") for p in paths)
    for entry in manifest["entries"]:
        assert set(entry) == {"path", "size", "sha256", "record_type"}

    assert manifest["format_version"] == 1
    assert manifest["report"]["report_no"] == report.report_no
    assert manifest["report"]["pdf_sha256"] == hashlib.sha256(issued.pdf).hexdigest()
    with db.reading() as session:
        head_seq, _ = audit.head(session)
        issued_on = lab_calendar(session).local_date(report.issued_at)
    assert manifest["audit"]["head_seq"] == head_seq
    retention = manifest["retention"]
    assert retention["report"]["years"] == settings.report_retention_years == 6
    assert retention["report"]["retain_until"] == issued_on.replace(year=issued_on.year + 6).isoformat()
    assert retention["analysis"]["years"] == settings.raw_record_retention_years
    assert {e["record_type"] for e in manifest["entries"]} <= set(retention)

    with zipfile.ZipFile(summary.path) as z:
        assert z.read(f"report/{report.report_no}.pdf") == issued.pdf
        assert z.read(next(p for p in paths if p.startswith("raw/"))) == issued.raw
        results = json.loads(z.read(f"{batch}/results.json"))["results"]
        s001 = [(r["revision"], r["value"], r["reason"]) for r in results
                if r["sample_id"] == issued.reportable.samples[0].id and r["position_id"] == bench.at("S-001").id]
        assert s001 == [(1, "0.512", ""), (2, "0.515", "transcription error corrected")]
        content = json.loads(z.read("report/content.json"))
        assert content["unchanged_since_approval"] is True
        calibrations = json.loads(z.read("instruments/JC-UV-001/calibrations.json"))
        assert [c["certificate_no"] for c in calibrations["calibrations"]] == [issued.certificate_no]
        assert len(calibrations["acceptances"]) == 1
        assert calibrations["measurements"]["first"] == issued.field_test_at  # the field test counts
        custody = json.loads(z.read(f"{samples[0]}/custody.json"))
        assert [e["kind"] for e in custody["events"]] == ["handover"]
        lot = json.loads(z.read(f"{issued.lot_folder}/lot.json"))
        assert [s["solution"]["generation"] for s in lot["solutions"]] == [1, 2]  # the chain to the CRM
        assert lot["certified_values"]
        signatures = json.loads(z.read("signatures.json"))["signatures"]
        assert {"analysed", "confirmed"} <= {s["meaning"] for s in signatures}
        events = [json.loads(line) for line in z.read("audit/events.jsonl").decode().splitlines()]
        actions = {e["action"] for e in events}
        assert {"report.issued", "custody.handover", "signature.analysed", "analysis.batch_submitted"} <= actions
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        people = {p["username"] for p in json.loads(z.read("people.json"))["people"]}
        assert {"analyst", "sampler", "signatory"} <= people
        assert "password_hash" not in z.read("people.json").decode()


def test_exporting_twice_gives_the_same_records(db, settings, issued, tmp_path):
    first = manifest_of(export(db, settings, issued.report.report_no, tmp_path / "a.zip").path)
    second = manifest_of(export(db, settings, issued.report.report_no, tmp_path / "b.zip").path)
    assert first["entries"] == second["entries"]


def test_export_needs_a_fixed_number_of_queries(db, settings, reportable, users, nh3n_method, uv, store,
                                                tmp_path, count_queries):
    """Twice the samples in twice the batches: the same number of queries."""
    small = issue(db, make_report(db, reportable.preparer, reportable.samples, state="issued"), store,
                  reportable.signatory, render_pdf("<p>1</p>"))
    _, more = reportable_samples(db, users, nh3n_method, uv, prefix="WS02-261203")
    large = issue(db, make_report(db, reportable.preparer, reportable.samples + more, state="issued"), store,
                  reportable.signatory, render_pdf("<p>2</p>"))
    counted = []
    for report in (small, large):
        with db.reading() as session, count_queries() as counter:
            export_package(session, settings, report.report_no, tmp_path / f"{report.id}.zip")
        counted.append(counter.count)
    assert counted[0] == counted[1], counted


# ---------------------------------------------------------------- tampering named


@pytest.fixture
def package(db, settings, issued, tmp_path) -> Path:
    return export(db, settings, issued.report.report_no, tmp_path / "good.zip").path


def test_one_changed_byte_is_named(package, issued, tmp_path):
    name = f"analysis/{issued.reportable.bench.batch.batch_no}/results.json"
    check = verify_package(rewrite(package, tmp_path / "bad.zip", one_byte_changed(name)))
    assert (check.ok, check.first_bad) == (False, name)
    assert "SHA-256" in check.reason


def test_a_changed_pdf_is_named(package, issued, tmp_path):
    name = f"report/{issued.report.report_no}.pdf"
    check = verify_package(rewrite(package, tmp_path / "bad.zip", one_byte_changed(name)))
    assert (check.ok, check.first_bad) == (False, name)


def test_a_removed_entry_is_named(package, issued, tmp_path):
    name = f"records/samples/{issued.reportable.samples[1].sample_no}/receipt.json"
    check = verify_package(rewrite(package, tmp_path / "bad.zip", lambda n, d: None if n == name else d))
    assert (check.ok, check.first_bad) == (False, name)
    assert "missing" in check.reason


def test_an_added_entry_is_named(package, tmp_path):
    check = verify_package(rewrite(package, tmp_path / "bad.zip", lambda n, d: d,
                                   extra={"records/note.txt": b"added later"}))
    assert (check.ok, check.first_bad) == (False, "records/note.txt")
    assert "not listed" in check.reason


def test_a_manifest_whose_hash_is_wrong_is_named(package, tmp_path):
    def change(name: str, data: bytes) -> bytes:
        return data.replace(b'"years": 6', b'"years": 7') if name == "manifest.json" else data
    check = verify_package(rewrite(package, tmp_path / "bad.zip", change))
    assert (check.ok, check.first_bad) == (False, "manifest.json")
    missing = verify_package(rewrite(package, tmp_path / "bad2.zip",
                                     lambda n, d: None if n == "manifest.sha256" else d))
    assert (missing.ok, missing.first_bad) == (False, "manifest.json")


def _with_consistent_manifest(source: Path, target: Path, name: str, data: bytes) -> Path:
    """Replace entry `name` and update the manifest and its hash to match: only the records'
    own evidence (here the audit chain) can tell."""
    manifest = manifest_of(source)
    for entry in manifest["entries"]:
        if entry["path"] == name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()

    def change(entry: str, old: bytes) -> bytes:
        return {name: data, "manifest.json": text,
                "manifest.sha256": f"{hashlib.sha256(text).hexdigest()}  manifest.json\n".encode()}.get(entry, old)
    return rewrite(source, target, change)


def test_an_audit_event_edited_consistently_in_the_manifest_is_named_by_its_seq(package, tmp_path):
    with zipfile.ZipFile(package) as z:
        lines = z.read("audit/events.jsonl").decode().splitlines()
    events = [json.loads(line) for line in lines]
    victim = next(i for i, e in enumerate(events) if e["action"] == "report.issued")
    events[victim]["after"] = events[victim]["after"].replace('"audit_seq":', '"audit_seq":1')
    forged = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
                     for e in events).encode()
    check = verify_package(_with_consistent_manifest(package, tmp_path / "bad.zip", "audit/events.jsonl", forged))
    assert (check.ok, check.first_bad) == (False, "audit/events.jsonl")
    assert f"event {events[victim]['seq']}" in check.reason


def test_the_audit_head_printed_on_the_report_must_be_the_exported_event(package, issued, tmp_path):
    """The fixture's report anchors the custody event, which the package holds: a manifest that
    claims another head hash (rehashed consistently) is caught by the chain."""
    manifest = manifest_of(package)
    assert manifest["report"]["audit_seq"] == issued.report.audit_seq
    manifest["report"]["audit_hash"] = "f" * 64
    text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1).encode()
    forged = rewrite(package, tmp_path / "bad.zip", lambda name, data: {
        "manifest.json": text,
        "manifest.sha256": f"{hashlib.sha256(text).hexdigest()}  manifest.json\n".encode()}.get(name, data))
    check = verify_package(forged)
    assert (check.ok, check.first_bad) == (False, "audit/events.jsonl")
    assert f"event {issued.report.audit_seq}: not the audit head" in check.reason


def test_report_content_edited_consistently_in_the_manifest_is_named(package, tmp_path):
    with zipfile.ZipFile(package) as z:
        document = json.loads(z.read("report/content.json"))
    assert document["unchanged_since_approval"] is True
    document["content"]["samples"][0]["lines"][0]["value"] = "0.050"
    forged = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode()
    check = verify_package(_with_consistent_manifest(package, tmp_path / "bad.zip", "report/content.json", forged))
    assert (check.ok, check.first_bad) == (False, "report/content.json")
    assert "does not hash" in check.reason

    from app.core.canonical import content_hash
    document["content_sha256_now"] = content_hash(document["content"])  # rehashed too: not what was approved
    forged = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode()
    check = verify_package(_with_consistent_manifest(package, tmp_path / "bad2.zip", "report/content.json", forged))
    assert (check.ok, check.first_bad) == (False, "report/content.json")
    assert "approved" in check.reason


def test_a_pdf_swapped_consistently_in_the_manifest_is_named(package, issued, tmp_path):
    name = f"report/{issued.report.report_no}.pdf"
    check = verify_package(_with_consistent_manifest(package, tmp_path / "bad.zip", name, render_pdf("<p>假</p>")))
    assert (check.ok, check.first_bad) == (False, name)
    assert "recorded at issue" in check.reason


def test_damaged_compressed_bytes_name_their_entry(package, issued, tmp_path):
    """A byte flipped inside the zip itself (no rewrite): the entry is unreadable or mismatched,
    and named either way, never a crash."""
    name = f"report/{issued.report.report_no}.pdf"
    with zipfile.ZipFile(package) as z:
        info = z.getinfo(name)
    data = bytearray(package.read_bytes())
    header = info.header_offset
    start = header + 30 + int.from_bytes(data[header + 26:header + 28], "little") + \
        int.from_bytes(data[header + 28:header + 30], "little")
    data[start + info.compress_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    check = verify_package(damaged)
    assert (check.ok, check.first_bad) == (False, name), check


def test_an_entry_stored_twice_is_named(package, tmp_path):
    with zipfile.ZipFile(package) as z:
        people = z.read("people.json")
    with pytest.warns(UserWarning):
        twice = rewrite(package, tmp_path / "twice.zip", lambda n, d: d, extra={"people.json": people})
    check = verify_package(twice)
    assert (check.ok, check.first_bad) == (False, "people.json")
    assert "twice" in check.reason


def test_a_file_that_is_no_zip_is_bad(tmp_path):
    path = tmp_path / "notes.zip"
    path.write_bytes(b"%PDF-1.7 not a zip")
    check = verify_package(path)
    assert (check.ok, check.first_bad) == (False, "notes.zip")
    assert not verify_package(tmp_path / "absent.zip").ok


def test_an_amendment_carries_the_pdf_it_replaces_and_the_original_names_it(db, settings, issued, store,
                                                                             tmp_path):
    original = issued.report
    amendment = make_report(db, issued.reportable.preparer, issued.reportable.samples, state="issued",
                            report_no=f"{original.report_no}-A1")
    with db.transaction() as session:
        row = session.get(Report, amendment.id)
        row.amends_id, row.revision, row.amendment_reason = original.id, 1, "采样时间更正"
    amendment = issue(db, amendment, store, issued.reportable.signatory, render_pdf("<p>更正报告</p>"))
    with db.transaction() as session:
        old = session.get(Report, original.id)
        old.state, old.superseded_by_id = "superseded", amendment.id

    new_package = export(db, settings, amendment.report_no, tmp_path / "a1.zip").path
    assert verify_package(new_package).ok
    with zipfile.ZipFile(new_package) as z:
        assert z.read(f"report/amends/{original.report_no}.pdf") == issued.pdf
    assert manifest_of(new_package)["report"]["amends"] == original.report_no

    old_package = export(db, settings, original.report_no, tmp_path / "a0.zip").path
    assert verify_package(old_package).ok
    described = manifest_of(old_package)["report"]
    assert (described["state"], described["superseded_by"]) == ("superseded", amendment.report_no)


def test_a_withdrawn_report_is_archived_with_its_reason(db, settings, issued, users, tmp_path):
    with db.transaction() as session:
        row = session.get(Report, issued.report.id)
        row.state, row.withdrawn_at, row.withdrawal_reason = "withdrawn", utcnow(), "委托方样品信息有误"
        row.withdrawn_by_id = users["quality_manager"].id
    package = export(db, settings, issued.report.report_no, tmp_path / "w.zip").path
    assert verify_package(package).ok
    described = manifest_of(package)["report"]
    assert (described["state"], described["withdrawal_reason"]) == ("withdrawn", "委托方样品信息有误")


def test_retention_counts_years_from_the_lab_day_of_issue(db, settings):
    from datetime import UTC, date, datetime

    settings.raw_record_retention_years = 10
    # 2028-02-28 17:00 UTC is 29 February in Shanghai; six years on there is no 29 February
    report = Report(report_no="BG2028-0001", issued_at=datetime(2028, 2, 28, 17, tzinfo=UTC), retain_until=None)
    with db.reading() as session:
        kept = archive.retention_of(session, settings, report)
    assert kept["report"] == {"years": 6, "from": date(2028, 2, 29), "retain_until": date(2034, 2, 28)}
    assert kept["analysis"] == {"years": 10, "from": date(2028, 2, 29), "retain_until": date(2038, 2, 28)}
    assert set(kept) == set(archive.REPORT_RECORDS + archive.RAW_RECORDS)
    report.retain_until = date(2035, 1, 1)  # as fixed at issue, it prevails for the report itself
    with db.reading() as session:
        assert archive.retention_of(session, settings, report)["report"]["retain_until"] == date(2035, 1, 1)


@pytest.fixture(scope="module")
def lab_signing(tmp_path_factory) -> tuple[Path, bytes, list[bytes]]:
    """The demo signing folder of a lab, a PDF it signed, and its certificates (DER)."""
    from app.reports.signing import DEMO_DIR, lab_signer, sign_report_pdf
    from app.reports.verification import trusted_certificates

    folder = tmp_path_factory.mktemp("lab")
    lab = Settings(data_dir=folder / "var", database_url=f"sqlite:///{folder}/unused.db", secret_key="x")
    signed = sign_report_pdf(render_pdf("<p>报告</p>"), lab_signer(lab, lab_name="市生态环境监测中心"),
                             report_no="BG2026-0001", signatory_name="张三", language="zh")
    return lab.data_dir / DEMO_DIR, signed, trusted_certificates(lab)


def test_the_report_signature_is_checked_against_the_lab_certificate(db, settings, reportable, store, tmp_path,
                                                                     lab_signing, package):
    from app.reports.signing import DEMO_DIR

    folder, signed, trusted = lab_signing
    shutil.copytree(folder, settings.ensure_data_dir() / DEMO_DIR)
    report = issue(db, make_report(db, reportable.preparer, reportable.samples, state="issued"), store,
                   reportable.signatory, signed)
    path = export(db, settings, report.report_no, tmp_path / "signed.zip").path
    with zipfile.ZipFile(path) as z:
        pem = z.read("report/lab-certificates.pem")
    assert manifest_of(path)["report"]["signing_certificates_sha256"] == [hashlib.sha256(trusted[0]).hexdigest()]

    assert verify_package(path, trusted=trusted).ok
    pdf_name = f"report/{report.report_no}.pdf"
    stranger = verify_package(path, trusted=[])
    assert (stranger.ok, stranger.first_bad) == (False, pdf_name)
    assert "not made with this lab's certificate" in stranger.reason
    unsigned = verify_package(package, trusted=trusted)  # the fixture's report PDF carries no signature
    assert not unsigned.ok and "no digital signature" in unsigned.reason
    assert verify_package(package).ok  # without certificates only the package's integrity is checked

    env = {"COLUMNS": "200"}
    (tmp_path / "lab.pem").write_bytes(pem)
    done = CliRunner().invoke(cli_app, ["archive", "verify", str(path), "-c", str(tmp_path / "lab.pem")], env=env)
    assert (done.exit_code, done.output.strip()) == (0, f"intact ({len(manifest_of(path)['entries'])} entries)")
    failed = CliRunner().invoke(cli_app, ["archive", "verify", str(package), "-c", str(tmp_path / "lab.pem")],
                                env=env)
    unsigned_pdf = manifest_of(package)["report"]["pdf"]
    assert failed.exit_code == 1 and failed.output.startswith(f"FAIL: {unsigned_pdf}: digital signature")
    (tmp_path / "junk.pem").write_text("not a certificate")
    junk = CliRunner().invoke(cli_app, ["archive", "verify", str(path), "-c", str(tmp_path / "junk.pem")], env=env)
    assert junk.exit_code == 2


# ---------------------------------------------------------------- refusals


def _counts(db) -> dict[str, int]:
    with db.reading() as session:
        return {"events": session.scalar(select(func.count()).select_from(AuditEvent)),
                "files": session.scalar(select(func.count()).select_from(StoredFile))}


@pytest.mark.parametrize("state", ["draft", "reviewed", "approved"])
def test_a_report_not_yet_issued_is_refused_and_nothing_is_written(db, settings, reportable, tmp_path, state):
    report = make_report(db, reportable.preparer, reportable.samples, state=state)
    before = _counts(db)
    with pytest.raises(DomainError) as caught:
        export(db, settings, report.report_no, tmp_path / "p.zip")
    assert caught.value.code == "report_not_archivable"
    assert report.report_no in caught.value.message("en") and "归档" in caught.value.message("zh_CN")
    assert list(tmp_path.iterdir()) == [] or not any(p.name.endswith(".zip") or ".part" in p.name
                                                     for p in tmp_path.iterdir())
    assert _counts(db) == before


def test_an_unknown_report_is_not_found(db, settings, tmp_path):
    with pytest.raises(DomainError) as caught:
        export(db, settings, "BG1999-9999", tmp_path / "p.zip")
    assert (caught.value.code, caught.value.http_status) == ("report_not_found", 404)
    assert not (tmp_path / "p.zip").exists()


def test_a_damaged_stored_file_is_refused_by_name_and_leaves_no_package(db, settings, issued, store, tmp_path):
    path = store.path(issued.photo_sha256)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DomainError) as caught:
        export(db, settings, issued.report.report_no, out / "p.zip")
    assert caught.value.code == "stored_file_damaged"
    assert "field.jpg" in caught.value.message("en") and issued.photo_sha256 in caught.value.message("en")
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(settings, monkeypatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("LIMS_"):
            monkeypatch.delenv(name)
    return {"LIMS_DATA_DIR": str(settings.data_dir), "LIMS_DATABASE_URL": settings.database_url, "COLUMNS": "200"}


def lims(env: dict[str, str], *args: str):
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_cli_exports_refuses_to_overwrite_and_verifies(cli_env, db, issued, tmp_path):
    out = tmp_path / "pkg.zip"
    done = lims(cli_env, "archive", "export", issued.report.report_no, "-o", str(out))
    assert done.exit_code == 0, done.output
    assert issued.report.report_no in done.output and out.exists()
    entries = len(manifest_of(out)["entries"])

    again = lims(cli_env, "archive", "export", issued.report.report_no, "-o", str(out))
    assert again.exit_code == 1 and "--force" in again.output
    forced = lims(cli_env, "archive", "export", issued.report.report_no, "-o", str(out), "--force")
    assert forced.exit_code == 0, forced.output

    verified = lims(cli_env, "archive", "verify", str(out))
    assert (verified.exit_code, verified.output.strip()) == (0, f"intact ({entries} entries)")
    # each export is kept in the audit trail: which package (its manifest hash) and who ran it
    with db.reading() as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "report.archive_exported")
                                   .order_by(AuditEvent.seq)).all()
        recorded = [e.after_data for e in exported]
        assert audit.verify_chain(session, None).ok
    assert len(recorded) == 2 and all(r["report_no"] == issued.report.report_no for r in recorded)
    assert recorded[-1]["manifest_sha256"] == hashlib.sha256(zipfile.ZipFile(out).read("manifest.json")).hexdigest()
    assert "@" in recorded[-1]["operator"] and recorded[-1]["file"] == "pkg.zip"

    name = f"records/samples/{issued.reportable.samples[0].sample_no}/field.json"
    bad = rewrite(out, tmp_path / "bad.zip", one_byte_changed(name))
    failed = lims(cli_env, "archive", "verify", str(bad))
    assert failed.exit_code == 1
    assert failed.output.startswith(f"FAIL: {name}: ")


def test_cli_refuses_a_draft_with_the_reason(cli_env, db, reportable, tmp_path):
    report = make_report(db, reportable.preparer, reportable.samples)
    out = tmp_path / "pkg.zip"
    result = lims(cli_env, "archive", "export", report.report_no, "-o", str(out))
    assert result.exit_code == 1
    assert "only issued, superseded or withdrawn reports are archived" in " ".join(result.output.split())
    assert not out.exists()
