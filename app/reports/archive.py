"""Record packages (归档): everything behind an issued report in one zip that can be checked
offline, years later, without the database (issue 9 item 8; DOMAIN.md §4.7).

`export_package` writes the signed PDF, the report's computed content and review acts, and the
original records it rests on, each as the rows the lab kept (every column, every revision, never a
summary): field records and photos, custody, receipt, preparation, analytical batches with every
result revision, QC evaluations and corrective actions, calibration curves, the raw instrument
files, the calibrations of the instruments in force at the measurement times with their
certificates, and the reference-material lots behind the standards used with their certificates.
Then every e-signature and every audit event of those entities, and a manifest listing each entry's
size and SHA-256 with the retention of its record type. Files are streamed from the file store and
re-hashed on the way: a damaged store refuses the package instead of archiving bad bytes.

`verify_package` needs nothing but the zip: the manifest's own hash, every entry against the
manifest, nothing missing or added, the report PDF against the hash recorded for the report, and
each audit event's hash recomputed from its prev_hash and canonical content (the same formula as
`lims audit verify`), with the links between consecutive events.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import and_, inspect, or_, select
from sqlalchemy.orm import Session

from app import __version__
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    CalibrationCurve,
    CalibrationPoint,
    CorrectiveAction,
    Method,
    MethodParameter,
    MethodVersion,
    NotAnalysed,
    QcEvaluation,
    ResultImport,
)
from app.config import Settings
from app.core import audit
from app.core.audit import AuditEvent
from app.core.canonical import ISO_UTC, content_hash
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.files import CHUNK, FileStore, StoredFile, file_store
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    Instrument,
    InstrumentUse,
    IntermediateCheck,
    MaintenanceRecord,
    ServiceChange,
)
from app.people.models import Laboratory, User
from app.reference_materials.models import (
    CertifiedValue,
    LotStatusChange,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReferenceMaterial,
    SolutionComponent,
    SolutionDevice,
    StandardSolution,
    StockUnit,
)
from app.reference_materials.traceability import ancestors_of
from app.reports.content import load_content
from app.reports.drafts import report_by_no
from app.reports.issue import years_after
from app.reports.models import Report, ReportSample, ReportState, ReviewAct
from app.samples.lab_models import (
    CustodyEvent,
    CustodyEventContainer,
    Delivery,
    DeliveryExpected,
    DeliveryScan,
    HoldingClock,
    HoldingDeviation,
    PrepBatch,
    PrepBatchItem,
    PrepBatchMaterial,
    ReceiptCheck,
    SampleReceipt,
    Shipment,
    ShipmentScan,
)
from app.samples.models import Container, FieldEntry, Sample, SampleParameter, SamplePhoto
from app.sites.models import SamplingTask, Site, SiteVersion

FORMAT = "envirolims-record-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
EVENTS = "audit/events.jsonl"
CONTENT = "report/content.json"  # what the review signatures bind, with its hash now and at approval
CERTIFICATES = "report/lab-certificates.pem"  # the lab's signing certificates (public), for reference
ARCHIVABLE = (ReportState.ISSUED.value, ReportState.SUPERSEDED.value, ReportState.WITHDRAWN.value)
_IN_CHUNK = 500  # ids per IN (...) list
_EVENT_PAGE = 2000

# record types and the setting that fixes how long each is kept (DOMAIN.md §4.7)
REPORT_RECORDS = ("report", "signatures")
RAW_RECORDS = ("field", "custody", "receipt", "preparation", "analysis", "qc", "raw_data", "calibrations",
               "materials", "people", "audit")
_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}

Progress = Callable[[str, int, int], None]


class ReportNotArchivable(DomainError):
    code = "report_not_archivable"
    message_zh = "报告 {report_no} 处于“{state}”状态：只有已签发、已被替代或已撤回的报告才能归档。"
    message_en = "Report {report_no} is {state}: only issued, superseded or withdrawn reports are archived."


class ReportPdfMissing(DomainError):
    code = "report_pdf_missing"
    message_zh = "报告 {report_no} 没有已签名的 PDF，无法归档。"
    message_en = "Report {report_no} has no signed PDF to archive."


class StoredFileDamaged(DomainError):
    code = "stored_file_damaged"
    message_zh = "文件库中的文件 {name}（SHA-256 {sha256}）缺失或与其哈希不符，未生成归档包。"
    message_en = ("Stored file {name} (SHA-256 {sha256}) is missing or no longer matches its hash; "
                  "no package was written.")


@dataclass(frozen=True)
class PackageSummary:
    report_no: str
    path: Path
    entries: int  # entries listed in the manifest
    events: int  # audit events exported
    size: int  # bytes of the zip
    manifest_sha256: str


@dataclass(frozen=True)
class PackageCheck:
    ok: bool
    first_bad: str | None  # the entry that failed (or the archive's own name when it is no zip)
    reason: str
    entries: int  # entries listed in the manifest


# ---------------------------------------------------------------- rows as JSON


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(ISO_UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_bytes(data: Any) -> bytes:
    """Readable and stable: sorted keys, one space of indent, UTF-8 (Chinese kept as text)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1, default=_json_default).encode("utf-8")


def safe_name(text: str) -> str:
    """A path component that cannot climb out of its folder or break on any file system."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", str(text)).strip(" .")
    return cleaned[:120] or "_"


@dataclass
class _Rows:
    """Turns rows into dicts of every column, noting the people and signatures they name."""

    users: set[int] = field(default_factory=set)
    signatures: set[int] = field(default_factory=set)

    def one(self, row: Any) -> dict[str, Any] | None:
        if row is None:
            return None
        data: dict[str, Any] = {}
        for attr in inspect(type(row)).column_attrs:
            column = attr.columns[0]
            value = getattr(row, attr.key)
            data[column.name] = value
            if value is not None:
                for fk in column.foreign_keys:
                    if fk.column.table.name == "app_user":
                        self.users.add(value)
                    elif fk.column.table.name == "e_signature":
                        self.signatures.add(value)
        return data

    def many(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        return [self.one(row) for row in rows]


def _chunks(ids: Iterable[Any]) -> Iterator[list[Any]]:
    values = sorted(set(ids), key=str)
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


def where_in(session: Session, model: Any, column: Any, ids: Iterable[Any], *order: Any) -> list[Any]:
    """Rows whose `column` is one of `ids`, a query per 500 ids (never one per row)."""
    rows: list[Any] = []
    for chunk in _chunks(i for i in ids if i is not None):
        rows += session.scalars(select(model).where(column.in_(chunk))).all()
    return sorted(rows, key=lambda r: tuple(getattr(r, c.key) for c in order)) if order else \
        sorted(rows, key=lambda r: r.id)


def _group(rows: Iterable[Any], key: str) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[getattr(row, key)].append(row)
    return grouped


# ---------------------------------------------------------------- what goes in


@dataclass(frozen=True)
class _FileEntry:
    path: str
    sha256: str
    record_type: str
    name: str  # as the lab knows it, for a refusal


@dataclass
class PackagePlan:
    """Every entry of the package, decided before a byte is written."""

    documents: list[tuple[str, str, Any]] = field(default_factory=list)  # path, record type, data
    files: list[_FileEntry] = field(default_factory=list)
    entities: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rows: _Rows = field(default_factory=_Rows)
    field_times: list[tuple[int, datetime]] = field(default_factory=list)  # field instruments, act times
    _paths: set[str] = field(default_factory=set)

    def document(self, path: str, record_type: str, data: Any) -> None:
        self._claim(path)
        self.documents.append((path, record_type, data))

    def file(self, folder: str, stored: StoredFile | None, sha256: str, record_type: str, name: str = "",
             *, exact: str = "") -> None:
        """A stored file under `folder`, named `<sha256 prefix>-<name>` (or exactly `exact`)."""
        filename = name or (stored.filename if stored else "")
        extension = Path(filename).suffix or (_EXTENSIONS.get(stored.media_type, "") if stored else "")
        stem = safe_name(Path(filename).stem) if filename else ""
        path = f"{folder}/{sha256[:16]}-{stem}{extension}" if stem else f"{folder}/{sha256}{extension}"
        path = f"{folder}/{safe_name(exact)}" if exact else path
        if path in self._paths:
            return  # the same content named the same way: one copy
        self._claim(path)
        self.files.append(_FileEntry(path, sha256, record_type, filename or sha256))

    def entity(self, entity_type: str, ids: Iterable[Any]) -> None:
        self.entities[entity_type].update(str(i) for i in ids if i is not None)

    def _claim(self, path: str) -> None:
        if path in self._paths:
            raise ValueError(f"two package entries named {path}")
        self._paths.add(path)


def _archivable_report(session: Session, report_no: str) -> Report:
    report = report_by_no(session, report_no)
    if report.state not in ARCHIVABLE or report.issued_at is None:
        raise ReportNotArchivable(report_no=report.report_no, state=report.state)
    if not report.pdf_sha256:
        raise ReportPdfMissing(report_no=report.report_no)
    return report


def _stored_files(session: Session, ids: Iterable[int | None]) -> dict[int, StoredFile]:
    return {row.id: row for row in where_in(session, StoredFile, StoredFile.id, ids)}


def _plan_report(session: Session, plan: PackagePlan, report: Report) -> list[Sample]:
    """The report row, its samples and review acts, its content now and as approved, the signed
    PDF (and the one it replaces); returns the samples it covers."""
    rows = plan.rows
    content = load_content(session, report)
    related = [session.get(Report, i) for i in (report.amends_id, report.superseded_by_id) if i]
    acts = session.scalars(select(ReviewAct).where(ReviewAct.report_id == report.id).order_by(ReviewAct.id)).all()
    placed = session.scalars(select(ReportSample).where(ReportSample.report_id == report.id)
                             .order_by(ReportSample.position)).all()
    pdf_files = where_in(session, StoredFile, StoredFile.sha256,
                          {report.pdf_sha256, report.rendered_pdf_sha256, *(r.pdf_sha256 for r in related)} - {""})
    plan.document("report/report.json", "report", {
        "report": rows.one(report), "samples": rows.many(placed), "review_acts": rows.many(acts),
        "pdf_files": rows.many(f for f in pdf_files if f.sha256 in (report.pdf_sha256, report.rendered_pdf_sha256)),
        "related_reports": [{"report_no": r.report_no, "state": r.state, "pdf_sha256": r.pdf_sha256,
                             "relation": "amends" if r.id == report.amends_id else "superseded_by"}
                            for r in related]})
    now = content.content_sha256
    plan.document(CONTENT, "report", {
        "content": content.signed_content(), "content_sha256_now": now,
        "content_sha256_approved": report.content_sha256, "unchanged_since_approval": now == report.content_sha256})
    plan.file("report", None, report.pdf_sha256, "report", exact=f"{report.report_no}.pdf")
    if report.rendered_pdf_sha256 and report.rendered_pdf_sha256 != report.pdf_sha256:
        # the exact PDF the signatory read and approved (the approval e-signature binds its hash)
        plan.file("report", None, report.rendered_pdf_sha256, "report", exact=f"{report.report_no}-for-approval.pdf")
    for other in related:
        if other.id == report.amends_id and other.pdf_sha256:  # the report this one replaces
            plan.file("report/amends", None, other.pdf_sha256, "report", exact=f"{other.report_no}.pdf")
    plan.entity("report", [report.id, *(r.id for r in related)])
    plan.entity("stored_file", [f.id for f in pdf_files])
    return [s.sample for s in content.samples]


def _plan_samples(session: Session, plan: PackagePlan, samples: list[Sample]) -> tuple[set[int], set[int]]:
    """Field, custody, receipt and preparation records of each sample (field instruments and their
    times go into `plan.field_times`); returns the sample ids and the material uses named."""
    rows = plan.rows
    ids = [s.id for s in samples]
    parameters = _group(where_in(session, SampleParameter, SampleParameter.sample_id, ids), "sample_id")
    excused = _group(where_in(session, NotAnalysed, NotAnalysed.sample_id, ids), "sample_id")
    containers = where_in(session, Container, Container.sample_id, ids)
    by_sample_containers = _group(containers, "sample_id")
    container_ids = [c.id for c in containers]
    tasks = {t.id: t for t in where_in(session, SamplingTask, SamplingTask.id, [s.task_id for s in samples])}
    sites = {t.id: t for t in where_in(session, Site, Site.id, [s.site_id for s in samples])}
    versions = {v.id: v for v in where_in(session, SiteVersion, SiteVersion.id,
                                           [s.site_version_id for s in samples])}
    entries = _group(where_in(session, FieldEntry, FieldEntry.sample_id, ids, FieldEntry.act_at, FieldEntry.id),
                     "sample_id")
    photos = where_in(session, SamplePhoto, SamplePhoto.sample_id, ids)
    photo_files = _stored_files(session, [p.file_id for p in photos])
    links = where_in(session, CustodyEventContainer, CustodyEventContainer.sample_id, ids)
    events = {e.id: e for e in where_in(session, CustodyEvent, CustodyEvent.id, [link.event_id for link in links])}
    scans = where_in(session, ShipmentScan, ShipmentScan.container_id, container_ids)
    shipments = {s.id: s for s in where_in(session, Shipment, Shipment.id, [
        *(e.shipment_id for e in events.values()), *(s.shipment_id for s in scans),
        *(c.shipment_id for c in containers)])}
    checks = where_in(session, ReceiptCheck, ReceiptCheck.sample_id, ids, ReceiptCheck.delivery_id,
                       ReceiptCheck.revision)
    receipts = {r.sample_id: r for r in where_in(session, SampleReceipt, SampleReceipt.sample_id, ids)}
    deliveries = {d.id: d for d in where_in(session, Delivery, Delivery.id, [
        *(c.delivery_id for c in checks), *(r.delivery_id for r in receipts.values())])}
    door_scans = where_in(session, DeliveryScan, DeliveryScan.container_id, container_ids)
    expected = where_in(session, DeliveryExpected, DeliveryExpected.container_id, container_ids)
    clocks = _group(where_in(session, HoldingClock, HoldingClock.sample_id, ids), "sample_id")
    deviations = _group(where_in(session, HoldingDeviation, HoldingDeviation.sample_id, ids), "sample_id")
    own_items = [*where_in(session, PrepBatchItem, PrepBatchItem.sample_id, ids),
                 *where_in(session, PrepBatchItem, PrepBatchItem.container_id, container_ids)]
    prep_batches = {b.id: b for b in where_in(session, PrepBatch, PrepBatch.id, [i.batch_id for i in own_items])}
    prep_items = _group(where_in(session, PrepBatchItem, PrepBatchItem.batch_id, prep_batches,
                                  PrepBatchItem.batch_id, PrepBatchItem.position), "batch_id")
    prep_materials = _group(where_in(session, PrepBatchMaterial, PrepBatchMaterial.batch_id, prep_batches),
                            "batch_id")

    container_sample = {c.id: c.sample_id for c in containers}
    photos_of, links_of = _group(photos, "sample_id"), _group(links, "sample_id")
    checks_of, expected_of = _group(checks, "sample_id"), _group(expected, "container_id")
    scans_of, door_scans_of = _group(scans, "container_id"), _group(door_scans, "container_id")
    for sample in samples:
        folder = f"records/samples/{safe_name(sample.sample_no)}"
        own = {c.id for c in by_sample_containers.get(sample.id, [])}
        plan.document(f"{folder}/sample.json", "field", {
            "sample": rows.one(sample), "parameters": rows.many(parameters.get(sample.id, [])),
            "not_analysed": rows.many(excused.get(sample.id, [])),
            "containers": rows.many(by_sample_containers.get(sample.id, [])),
            "task": rows.one(tasks.get(sample.task_id)), "site": rows.one(sites.get(sample.site_id)),
            "site_version": rows.one(versions.get(sample.site_version_id))})
        own_photos = photos_of.get(sample.id, [])
        plan.document(f"{folder}/field.json", "field", {
            "entries": rows.many(entries.get(sample.id, [])), "photos": rows.many(own_photos),
            "photo_files": rows.many(photo_files.get(p.file_id) for p in own_photos)})
        for photo in own_photos:
            plan.file(f"{folder}/photos", photo_files.get(photo.file_id), photo.sha256, "field")
        own_links = links_of.get(sample.id, [])
        own_events = sorted({link.event_id for link in own_links})
        own_scans = [s for c in sorted(own) for s in scans_of.get(c, [])]
        plan.document(f"{folder}/custody.json", "custody", {
            "events": rows.many(events[i] for i in own_events), "event_containers": rows.many(own_links),
            "shipments": rows.many(shipments[i] for i in sorted(
                {events[i].shipment_id for i in own_events if events[i].shipment_id}
                | {s.shipment_id for s in own_scans})),
            "shipment_scans": rows.many(own_scans)})
        own_checks = checks_of.get(sample.id, [])
        receipt = receipts.get(sample.id)
        own_deliveries = sorted({c.delivery_id for c in own_checks} | ({receipt.delivery_id} if receipt else set()))
        plan.document(f"{folder}/receipt.json", "receipt", {
            "deliveries": rows.many(deliveries[i] for i in own_deliveries),
            "expected": rows.many(e for c in sorted(own) for e in expected_of.get(c, [])),
            "scans": rows.many(s for c in sorted(own) for s in door_scans_of.get(c, [])),
            "checks": rows.many(own_checks), "receipt": rows.one(receipt),
            "holding_clocks": rows.many(clocks.get(sample.id, [])),
            "holding_deviations": rows.many(deviations.get(sample.id, []))})
        own_prep = sorted({i.batch_id for i in own_items
                           if i.sample_id == sample.id or container_sample.get(i.container_id) == sample.id})
        plan.document(f"{folder}/preparation.json", "preparation", {"batches": [
            {"batch": rows.one(prep_batches[b]), "items": rows.many(prep_items.get(b, [])),
             "materials": rows.many(prep_materials.get(b, []))} for b in own_prep]})

    plan.entity("sample", ids)
    plan.entity("sample_container", container_ids)
    plan.entity("sampling_task", [s.task_id for s in samples])
    plan.entity("site", sites)  # its versions and approved changes: where the sample was taken
    plan.entity("custody_event", events)
    plan.entity("shipment", shipments)
    plan.entity("delivery", deliveries)
    plan.entity("holding_deviation", [d.id for rows_ in deviations.values() for d in rows_])
    plan.entity("prep_batch", prep_batches)
    plan.entity("stored_file", photo_files)
    uses = {m.use_id for rows_ in prep_materials.values() for m in rows_}
    uses |= {i.spike_use_id for rows_ in prep_items.values() for i in rows_ if i.spike_use_id}
    plan.field_times += [(e.instrument_id, e.act_at) for rows_ in entries.values() for e in rows_
                         if e.instrument_id]
    return set(ids), uses


def _plan_analysis(session: Session, plan: PackagePlan,
                   sample_ids: set[int]) -> tuple[dict[int, list[datetime]], set[int]]:
    """Every batch in which a sample of the report was analysed, with all its positions (QC too),
    every result revision, QC, curves and raw files; returns instrument ids → measurement times
    and the material use ids."""
    rows = plan.rows
    batch_ids = {p.batch_id for p in where_in(session, BatchPosition, BatchPosition.sample_id, sample_ids)}
    batches = where_in(session, AnalysisBatch, AnalysisBatch.id, batch_ids)
    positions = _group(where_in(session, BatchPosition, BatchPosition.batch_id, batch_ids,
                                 BatchPosition.batch_id, BatchPosition.position), "batch_id")
    results = _group(where_in(session, AnalysisResult, AnalysisResult.batch_id, batch_ids, AnalysisResult.position_id,
                               AnalysisResult.parameter, AnalysisResult.revision), "batch_id")
    evaluations = _group(where_in(session, QcEvaluation, QcEvaluation.batch_id, batch_ids, QcEvaluation.run,
                                   QcEvaluation.id), "batch_id")
    actions = _group(where_in(session, CorrectiveAction, CorrectiveAction.batch_id, batch_ids), "batch_id")
    attached = _group(where_in(session, BatchCurve, BatchCurve.batch_id, batch_ids), "batch_id")
    all_results = [r for rows_ in results.values() for r in rows_]
    curve_ids = {c.curve_id for rows_ in attached.values() for c in rows_} | {r.curve_id for r in all_results}
    curves = {c.id: c for c in where_in(session, CalibrationCurve, CalibrationCurve.id, curve_ids)}
    points = _group(where_in(session, CalibrationPoint, CalibrationPoint.curve_id, curves, CalibrationPoint.curve_id,
                              CalibrationPoint.level), "curve_id")
    version_ids = {b.method_version_id for b in batches} | {r.method_version_id for r in all_results}
    versions = {v.id: v for v in where_in(session, MethodVersion, MethodVersion.id, version_ids)}
    methods = {m.id: m for m in where_in(session, Method, Method.id, [v.method_id for v in versions.values()])}
    rules = _group(where_in(session, MethodParameter, MethodParameter.method_version_id, versions),
                   "method_version_id")
    imports = _group(where_in(session, ResultImport, ResultImport.batch_id, batch_ids), "batch_id")
    import_files = _stored_files(session, [i.file_id for rows_ in imports.values() for i in rows_])

    times: dict[int, list[datetime]] = defaultdict(list)
    for batch in batches:
        folder = f"analysis/{safe_name(batch.batch_no)}"
        own_versions = sorted({batch.method_version_id} | {r.method_version_id for r in results.get(batch.id, [])})
        plan.document(f"{folder}/batch.json", "analysis", {
            "batch": rows.one(batch), "positions": rows.many(positions.get(batch.id, [])),
            "curves_attached": rows.many(attached.get(batch.id, [])),
            "methods": [{"method": rows.one(methods.get(versions[v].method_id)), "version": rows.one(versions[v]),
                         "parameters": rows.many(rules.get(v, []))} for v in own_versions if v in versions]})
        plan.document(f"{folder}/results.json", "analysis", {"results": rows.many(results.get(batch.id, []))})
        plan.document(f"{folder}/qc.json", "qc", {"evaluations": rows.many(evaluations.get(batch.id, [])),
                                                  "corrective_actions": rows.many(actions.get(batch.id, []))})
        own_curves = sorted({c.curve_id for c in attached.get(batch.id, [])}
                            | {r.curve_id for r in results.get(batch.id, []) if r.curve_id})
        plan.document(f"{folder}/curves.json", "analysis", {"curves": [
            {"curve": rows.one(curves[c]), "points": rows.many(points.get(c, []))} for c in own_curves]})
        own_imports = imports.get(batch.id, [])
        plan.document(f"{folder}/imports.json", "raw_data", {
            "imports": rows.many(own_imports), "files": rows.many(import_files.get(i.file_id) for i in own_imports)})
        for result_import in own_imports:
            plan.file("raw", import_files.get(result_import.file_id), result_import.sha256, "raw_data",
                      result_import.filename)
        for result in results.get(batch.id, []):
            instrument = result.instrument_id or batch.instrument_id
            if instrument:
                times[instrument].append(result.measured_at)
    for curve in curves.values():
        times[curve.instrument_id].append(curve.measured_at)

    plan.entity("analysis_batch", batch_ids)
    plan.entity("calibration_curve", curves)
    plan.entity("result_import", [i.id for rows_ in imports.values() for i in rows_])
    plan.entity("stored_file", import_files)
    plan.entity("method", methods)
    uses = {p.material_use_id for rows_ in positions.values() for p in rows_ if p.material_use_id}
    uses |= {p.material_use_id for rows_ in points.values() for p in rows_ if p.material_use_id}
    return times, uses


def _covers(times: list[datetime], start: datetime, end: datetime | None) -> bool:
    """Some measurement time t lies in [start, end)."""
    index = bisect.bisect_left(times, start)
    return index < len(times) and (end is None or times[index] < end)


def _plan_instruments(session: Session, plan: PackagePlan, times: dict[int, list[datetime]]) -> None:
    """Per instrument used: the calibrations (检定/校准) in force at some measurement time, with
    their 计量确认 and certificates, and the checks, maintenance and service changes between the
    first of them and the last measurement."""
    rows = plan.rows
    for moments in times.values():
        moments.sort()
    instruments = where_in(session, Instrument, Instrument.id, times)
    uses = _group(where_in(session, InstrumentUse, InstrumentUse.instrument_id, times), "instrument_id")
    calibrations = _group(where_in(session, CalibrationRecord, CalibrationRecord.instrument_id, times,
                                    CalibrationRecord.effective_from, CalibrationRecord.id), "instrument_id")
    others = {model: _group(where_in(session, model, model.instrument_id, times, model.effective_from, model.id),
                            "instrument_id")
              for model in (IntermediateCheck, MaintenanceRecord, ServiceChange)}
    in_force = {i: [c for c in calibrations.get(i, []) if _covers(times[i], c.effective_from, c.due_at)]
                for i in times}
    acceptances = {a.calibration_id: a for a in where_in(
        session, CalibrationAcceptance, CalibrationAcceptance.calibration_id,
        [c.id for rows_ in in_force.values() for c in rows_])}
    certificates = _stored_files(session, [c.certificate_file_id for rows_ in in_force.values() for c in rows_])
    for instrument in instruments:
        folder = f"instruments/{safe_name(instrument.asset_no)}"
        moments, kept = times[instrument.id], in_force[instrument.id]
        since = min([c.effective_from for c in kept] + moments[:1])
        until = moments[-1]

        def between(model: Any, instrument_id: int = instrument.id, since: datetime = since,
                    until: datetime = until) -> list[dict[str, Any]]:
            return rows.many(r for r in others[model].get(instrument_id, []) if since <= r.effective_from <= until)

        plan.document(f"{folder}/instrument.json", "calibrations", {
            "instrument": rows.one(instrument), "uses": rows.many(uses.get(instrument.id, []))})
        plan.document(f"{folder}/calibrations.json", "calibrations", {
            "measurements": {"first": moments[0], "last": until, "count": len(moments)},
            "calibrations": rows.many(kept), "acceptances": rows.many(acceptances.get(c.id) for c in kept),
            "intermediate_checks": between(IntermediateCheck), "maintenance": between(MaintenanceRecord),
            "service_changes": between(ServiceChange)})
        for record in kept:
            plan.file(f"{folder}/certificates", certificates.get(record.certificate_file_id),
                      record.certificate_sha256, "calibrations", f"{record.certificate_no}.pdf")
        plan.entity("instrument_calibration", [c.id for c in kept])
        plan.entity("instrument_check", [r["id"] for r in between(IntermediateCheck)])
        plan.entity("instrument_maintenance", [r["id"] for r in between(MaintenanceRecord)])
        plan.entity("instrument_service_change", [r["id"] for r in between(ServiceChange)])
    plan.entity("instrument", times)
    plan.entity("stored_file", certificates)


def _plan_materials(session: Session, plan: PackagePlan, use_ids: set[int]) -> None:
    """The lots at the root of every standard and spike used, with their certificate, certified
    values, status history, the units and the chain of solutions made from them, and the uses."""
    rows = plan.rows
    uses = where_in(session, MaterialUse, MaterialUse.id, use_ids)
    by_kind = _group(uses, "item_kind")
    solutions: dict[int, StandardSolution] = {}
    for solution_id in sorted({u.item_id for u in by_kind.get("solution", [])}):
        if solution_id not in solutions:
            solutions.update({s.id: s for s in ancestors_of(session, solution_id)})
    unit_ids = {u.item_id for u in by_kind.get("unit", [])} | {s.parent_unit_id for s in solutions.values()}
    units = {u.id: u for u in where_in(session, StockUnit, StockUnit.id, unit_ids)}
    reagents = where_in(session, ReagentLot, ReagentLot.id, [u.item_id for u in by_kind.get("reagent", [])])
    lots = where_in(session, MaterialLot, MaterialLot.id,
                     {u.lot_id for u in units.values()} | {s.root_lot_id for s in solutions.values()})
    materials = {m.id: m for m in where_in(session, ReferenceMaterial, ReferenceMaterial.id,
                                            [lot.material_id for lot in lots])}
    values = _group(where_in(session, CertifiedValue, CertifiedValue.lot_id, [lot.id for lot in lots]), "lot_id")
    changes = _group(where_in(session, LotStatusChange, LotStatusChange.lot_id, [lot.id for lot in lots]), "lot_id")
    components = _group(where_in(session, SolutionComponent, SolutionComponent.solution_id, solutions),
                        "solution_id")
    devices = _group(where_in(session, SolutionDevice, SolutionDevice.solution_id, solutions), "solution_id")
    certificates = _stored_files(session, [lot.certificate_file_id for lot in lots])
    for lot in lots:
        material = materials[lot.material_id]
        folder = f"materials/{safe_name(f'{material.certificate_no}-{lot.lot_no}')}"
        own_units = sorted((u for u in units.values() if u.lot_id == lot.id), key=lambda u: u.id)
        own_solutions = sorted((s for s in solutions.values() if s.root_lot_id == lot.id),
                               key=lambda s: (s.generation, s.id))
        items = {("unit", u.id) for u in own_units} | {("solution", s.id) for s in own_solutions}
        plan.document(f"{folder}/lot.json", "materials", {
            "material": rows.one(material), "lot": rows.one(lot), "certified_values": rows.many(values.get(lot.id, [])),
            "status_changes": rows.many(changes.get(lot.id, [])), "units": rows.many(own_units),
            "solutions": [{"solution": rows.one(s), "components": rows.many(components.get(s.id, [])),
                           "devices": rows.many(devices.get(s.id, []))} for s in own_solutions],
            "uses": rows.many(u for u in uses if (u.item_kind, u.item_id) in items)})
        plan.file(folder, certificates.get(lot.certificate_file_id), lot.certificate_sha256, "materials",
                  exact="certificate.pdf")
    if reagents:
        plan.document("materials/reagents.json", "materials", {
            "reagents": rows.many(reagents),
            "uses": rows.many(u for u in uses if u.item_kind == "reagent")})
    plan.entity("rm_use", [u.id for u in uses])
    plan.entity("rm_unit", units)
    plan.entity("rm_solution", solutions)
    plan.entity("reagent_lot", [r.id for r in reagents])
    plan.entity("rm_lot", [lot.id for lot in lots])
    plan.entity("reference_material", materials)
    plan.entity("stored_file", certificates)


def entity_conditions(entities: dict[str, set[str]], type_column: Any, id_column: Any) -> list[Any]:
    """SQL conditions naming the package's entities (type and id), a chunk of ids each."""
    return [and_(type_column == entity_type, id_column.in_(chunk))
            for entity_type, ids in sorted(entities.items()) for chunk in _chunks(ids)]


def package_signatures(session: Session, plan: PackagePlan) -> list[ElectronicSignature]:
    """The e-signatures over the package's entities and those its rows name, in a few queries."""
    sig = ElectronicSignature
    found: dict[int, ElectronicSignature] = {}
    conditions = entity_conditions(plan.entities, sig.entity_type, sig.entity_id)
    for start in range(0, len(conditions), 50):
        found.update({s.id: s for s in session.scalars(select(sig).where(or_(*conditions[start:start + 50])))})
    found.update({s.id: s for s in where_in(session, sig, sig.id, plan.rows.signatures - set(found))})
    return sorted(found.values(), key=lambda s: (s.signed_at, s.id))


def _events(session: Session, entities: dict[str, set[str]]) -> Iterator[AuditEvent]:
    """The events of `entities` in chain order, a page at a time (constant memory)."""
    conditions = entity_conditions(entities, AuditEvent.entity_type, AuditEvent.entity_id)
    if not conditions:
        return
    last = 0
    while True:
        page = session.scalars(select(AuditEvent).where(AuditEvent.seq > last, or_(*conditions))
                               .order_by(AuditEvent.seq).limit(_EVENT_PAGE)).all()
        if not page:
            return
        yield from page
        last = page[-1].seq


def event_line(event: AuditEvent) -> dict[str, Any]:
    """An event as exported: the hashed fields exactly as hashed (before/after canonical text)."""
    return {"seq": event.seq, "occurred_at": event.occurred_at.astimezone(UTC).strftime(ISO_UTC),
            "actor_id": event.actor_id, "actor": event.actor, "action": event.action,
            "entity_type": event.entity_type, "entity_id": event.entity_id, "before": event.before,
            "after": event.after, "prev_hash": event.prev_hash, "hash": event.hash}


# ---------------------------------------------------------------- retention


def retention_of(session: Session, settings: Settings, report: Report) -> dict[str, dict[str, Any]]:
    """How long each record type is kept, counted from the report's issue (DOMAIN.md §4.7)."""
    issued_on = lab_calendar(session).local_date(report.issued_at)
    kept: dict[str, dict[str, Any]] = {}
    for record_type in REPORT_RECORDS:
        years = settings.report_retention_years
        until = years_after(issued_on, years)
        if record_type == "report" and report.retain_until:
            until = report.retain_until  # as fixed at issue
        kept[record_type] = {"years": years, "from": issued_on, "retain_until": until}
    for record_type in RAW_RECORDS:
        years = settings.raw_record_retention_years
        kept[record_type] = {"years": years, "from": issued_on, "retain_until": years_after(issued_on, years)}
    return kept


# ---------------------------------------------------------------- writing


class _HashingWriter:
    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.handle.write(data)


class _Writer:
    def __init__(self, archive: zipfile.ZipFile, stamp: tuple[int, ...]) -> None:
        self.archive, self.stamp = archive, stamp
        self.entries: list[dict[str, Any]] = []

    def _info(self, path: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self.stamp[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def _listed(self, path: str, record_type: str, writer: _HashingWriter) -> None:
        self.entries.append({"path": path, "size": writer.size, "sha256": writer.digest.hexdigest(),
                             "record_type": record_type})

    def data(self, path: str, record_type: str, data: bytes) -> None:
        with self.archive.open(self._info(path), "w", force_zip64=True) as handle:
            writer = _HashingWriter(handle)
            writer.write(data)
        self._listed(path, record_type, writer)

    def stored(self, store: FileStore, entry: _FileEntry) -> None:
        """Copy a file from the store, re-hashing it: the bytes archived are the bytes recorded."""
        try:
            source = store.path(entry.sha256).open("rb")
        except (OSError, DomainError):
            raise StoredFileDamaged(name=entry.name, sha256=entry.sha256) from None
        with source, self.archive.open(self._info(entry.path), "w", force_zip64=True) as handle:
            writer = _HashingWriter(handle)
            for chunk in iter(lambda: source.read(CHUNK), b""):
                writer.write(chunk)
        if writer.digest.hexdigest() != entry.sha256:
            raise StoredFileDamaged(name=entry.name, sha256=entry.sha256)
        self._listed(entry.path, entry.record_type, writer)

    def events(self, events: Iterable[AuditEvent], on_event: Callable[[AuditEvent], None]) -> int:
        count = 0
        with self.archive.open(self._info(EVENTS), "w", force_zip64=True) as handle:
            writer = _HashingWriter(handle)
            for event in events:
                on_event(event)
                writer.write(json.dumps(event_line(event), ensure_ascii=False, sort_keys=True,
                                        separators=(",", ":")).encode("utf-8") + b"\n")
                count += 1
        self._listed(EVENTS, "audit", writer)
        return count


def plan_package(session: Session, report: Report) -> PackagePlan:
    """Decide every entry of the report's package (batched queries, no file read yet)."""
    plan = PackagePlan()
    samples = _plan_report(session, plan, report)
    sample_ids, sample_uses = _plan_samples(session, plan, samples)
    times, batch_uses = _plan_analysis(session, plan, sample_ids)
    for instrument_id, moment in plan.field_times:
        times[instrument_id].append(moment)
    _plan_instruments(session, plan, times)
    _plan_materials(session, plan, sample_uses | batch_uses)
    return plan


def export_package(session: Session, settings: Settings, report_no: str, out: Path,
                   progress: Progress | None = None) -> PackageSummary:
    """Write the record package of an issued (or superseded, or withdrawn) report to `out`.

    The zip is written beside `out` under a temporary name and moved into place only when
    complete, so a refusal (a damaged stored file) leaves no half package behind."""
    report = _archivable_report(session, report_no)
    plan = plan_package(session, report)
    store = file_store(settings.ensure_data_dir())
    rows = plan.rows
    total = len(plan.documents) + len(plan.files) + 3  # + signatures, events, people
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(label, done, total)

    generated_at = utcnow()
    head_seq, head_hash = audit.head(session)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            writer = _Writer(archive, generated_at.timetuple()[:6])
            for path, record_type, data in plan.documents:
                writer.data(path, record_type, json_bytes(data))
                step(path)
            for entry in plan.files:
                writer.stored(store, entry)
                step(entry.path)
            certificates = _lab_certificates(settings)
            if certificates:
                writer.data(CERTIFICATES, "report", b"".join(pem for _, pem in certificates))
            signatures = package_signatures(session, plan)
            writer.data("signatures.json", "signatures", json_bytes({"signatures": rows.many(signatures)}))
            step("signatures.json")
            events = writer.events(_events(session, plan.entities),
                                   lambda e: rows.users.add(e.actor_id) if e.actor_id else None)
            step(EVENTS)
            people = where_in(session, User, User.id, rows.users)
            writer.data("people.json", "people", json_bytes({"people": [
                {"id": u.id, "username": u.username, "display_name_zh": u.display_name_zh,
                 "display_name_en": u.display_name_en, "printed_name": u.printed_name} for u in people]}))
            step("people.json")
            manifest = json_bytes(_manifest(session, settings, report, generated_at, (head_seq, head_hash), events,
                                            writer.entries, [sha for sha, _ in certificates]))
            archive.writestr(writer._info(MANIFEST), manifest)
            manifest_sha = hashlib.sha256(manifest).hexdigest()
            archive.writestr(writer._info(MANIFEST_HASH), f"{manifest_sha}  {MANIFEST}\n")
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return PackageSummary(report.report_no, out, len(writer.entries), events, out.stat().st_size, manifest_sha)


def record_export(session: Session, summary: PackageSummary, operator: str) -> None:
    """Keep in the audit trail that a record package left the system: which report, when, the
    package's manifest hash (which names every entry's), and who ran the export on this machine
    (the CLI has no signed-in user: the operating-system account)."""
    report = report_by_no(session, summary.report_no)
    audit.append(session, None, "report.archive_exported", "report", report.id, None, {
        "report_no": report.report_no, "file": summary.path.name, "entries": summary.entries,
        "audit_events": summary.events, "size": summary.size, "manifest_sha256": summary.manifest_sha256,
        "operator": operator[:100]})


def _lab_certificates(settings: Settings) -> list[tuple[str, bytes]]:
    """(SHA-256 of the DER, PEM) of each certificate a report signature of this lab may chain to."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.reports.verification import trusted_certificates

    try:
        found = trusted_certificates(settings)
    except DomainError:  # a broken PKCS#12 setting: the package is still the record, without them
        return []
    return [(hashlib.sha256(der).hexdigest(), x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
            for der in found]


def _manifest(session: Session, settings: Settings, report: Report, generated_at: datetime,
              head: tuple[int, str], events: int, entries: list[dict[str, Any]],
              certificates: list[str]) -> dict[str, Any]:
    lab = session.scalars(select(Laboratory).order_by(Laboratory.id).limit(1)).first()
    related = {i: session.get(Report, i) for i in (report.amends_id, report.superseded_by_id) if i}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "generator": f"EnviroLIMS {__version__}",
        "generated_at": generated_at,
        "lab": {"name_zh": lab.name_zh, "name_en": lab.name_en, "address_zh": lab.address_zh,
                "cma_certificate_no": lab.cma_certificate_no} if lab else None,
        "report": {"report_no": report.report_no, "state": report.state, "issued_at": report.issued_at,
                   "pdf": f"report/{safe_name(f'{report.report_no}.pdf')}", "pdf_sha256": report.pdf_sha256,
                   "content_sha256": report.content_sha256, "audit_seq": report.audit_seq,
                   "audit_hash": report.audit_hash, "retain_until": report.retain_until,
                   "amends": related[report.amends_id].report_no if report.amends_id else None,
                   "superseded_by": related[report.superseded_by_id].report_no if report.superseded_by_id else None,
                   "withdrawn_at": report.withdrawn_at, "withdrawal_reason": report.withdrawal_reason,
                   "signing_certificates_sha256": certificates},
        "audit": {"head_seq": head[0], "head_hash": head[1], "events": events, "events_path": EVENTS},
        "retention": retention_of(session, settings, report),
        "entries": entries,
    }


# ---------------------------------------------------------------- offline verification


class _Bad(Exception):
    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(reason)
        self.entry, self.reason = entry, reason


_HEX64 = re.compile(r"[0-9a-f]{64}")
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError)


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except _UNREADABLE as exc:
        raise _Bad(name, f"unreadable in the archive ({exc})") from None


def _digest(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(name) as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
    except _UNREADABLE as exc:
        raise _Bad(name, f"unreadable in the archive ({exc})") from None
    return digest.hexdigest(), size


def _manifest_entries(archive: zipfile.ZipFile, names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    for needed in (MANIFEST, MANIFEST_HASH):
        if needed not in names:
            raise _Bad(MANIFEST, f"{needed} is missing")
    text = _read_member(archive, MANIFEST)
    recorded = _read_member(archive, MANIFEST_HASH).decode("ascii", "replace").split()
    if not recorded or recorded[0] != hashlib.sha256(text).hexdigest():
        raise _Bad(MANIFEST, f"its SHA-256 does not match {MANIFEST_HASH}")
    try:
        manifest = json.loads(text)
        entries = manifest["entries"]
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError("unknown package format")
        seen: set[str] = set()
        for entry in entries:
            path, size, sha = entry["path"], entry["size"], entry["sha256"]
            if not isinstance(path, str) or path in seen or path in (MANIFEST, MANIFEST_HASH):
                raise ValueError(f"entry {path!r} listed twice or reserved")
            if not isinstance(size, int) or not isinstance(sha, str) or not _HEX64.fullmatch(sha):
                raise ValueError(f"entry {path!r} has no valid size and SHA-256")
            seen.add(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise _Bad(MANIFEST, f"malformed ({exc})") from None
    return manifest, entries


def _check_events(archive: zipfile.ZipFile, anchor: tuple[Any, Any]) -> None:
    """Recompute each event's hash from its prev_hash and canonical content; consecutive events
    must link (seq n + 1 names the hash of seq n); the audit head printed on the report (`anchor`:
    seq, hash), when it is one of these events, must be that event's hash."""
    previous: dict[str, Any] | None = None
    anchor_seq, anchor_hash = anchor
    try:
        with archive.open(EVENTS) as raw:
            for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
                try:
                    event = json.loads(line)
                    seq = event["seq"]
                    at = datetime.strptime(event["occurred_at"], ISO_UTC).replace(tzinfo=UTC)
                    canonical = audit.event_canonical(seq, at, event["actor_id"], event["actor"], event["action"],
                                                      event["entity_type"], event["entity_id"], event["before"],
                                                      event["after"])
                    expected = audit.chain_hash(event["prev_hash"], canonical)
                except (ValueError, KeyError, TypeError) as exc:
                    raise _Bad(EVENTS, f"line {number} is not an audit event ({exc})") from None
                if expected != event["hash"]:
                    raise _Bad(EVENTS, f"event {seq}: its hash does not match its content and prev_hash")
                if previous is not None:
                    if not isinstance(seq, int) or seq <= previous["seq"]:
                        raise _Bad(EVENTS, f"event {seq}: out of chain order after event {previous['seq']}")
                    if seq == previous["seq"] + 1 and event["prev_hash"] != previous["hash"]:
                        raise _Bad(EVENTS, f"event {seq}: does not link to event {previous['seq']}")
                if seq == anchor_seq and event["hash"] != anchor_hash:
                    raise _Bad(EVENTS, f"event {seq}: not the audit head printed on the report")
                previous = event
    except (*_UNREADABLE, UnicodeDecodeError) as exc:
        raise _Bad(EVENTS, f"unreadable ({exc})") from None


def _check_content(archive: zipfile.ZipFile, approved: Any) -> None:
    """The report content in the package hashes (canonical JSON, as review signatures bind it) to
    the hash it states, and, unless the records changed after approval, to the approved hash."""
    try:
        document = json.loads(_read_member(archive, CONTENT))
        recomputed = content_hash(document["content"])
        stated, unchanged = document["content_sha256_now"], document["unchanged_since_approval"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Bad(CONTENT, f"malformed ({exc})") from None
    if recomputed != stated:
        raise _Bad(CONTENT, "the content does not hash to the SHA-256 it states")
    if unchanged and recomputed != approved:
        raise _Bad(CONTENT, "the content is not the content the signatory approved")


def _check_signature(archive: zipfile.ZipFile, pdf_path: str, trusted: list[bytes]) -> None:
    """The report PDF's PAdES signature: intact, over the whole file, made with one of `trusted`
    (the lab's certificates, DER), the same check as `lims report verify`."""
    from app.reports.verification import REASONS, check_signature

    outcome = check_signature(_read_member(archive, pdf_path), trusted)
    if outcome.reason_code:
        reason = REASONS.get(outcome.reason_code, ("", outcome.reason_code))[1]
        raise _Bad(pdf_path, f"digital signature: {reason}")


def verify_package(path: Path, *, trusted: Iterable[bytes] | None = None) -> PackageCheck:
    """Check a record package offline; the first bad entry is named with the reason. Given the
    lab's certificates (`trusted`, DER), the report PDF's digital signature is checked too: the
    manifest's hashes only show the package is as written, the signature shows who wrote it."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return PackageCheck(False, path.name, f"not a readable zip archive ({exc})", 0)
    entries: list[dict[str, Any]] = []
    try:
        with archive:
            names = [info.filename for info in archive.infolist()]
            twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
            if twice is not None:
                raise _Bad(twice, "appears twice in the archive")
            manifest, entries = _manifest_entries(archive, names)
            present = set(names)
            for entry in entries:
                if entry["path"] not in present:
                    raise _Bad(entry["path"], "listed in the manifest but missing from the archive")
                sha, size = _digest(archive, entry["path"])
                if size != entry["size"]:
                    raise _Bad(entry["path"], f"size {size} differs from the manifest's {entry['size']}")
                if sha != entry["sha256"]:
                    raise _Bad(entry["path"], "SHA-256 differs from the manifest")
            listed = {e["path"] for e in entries}
            extra = next((n for n in names if n not in listed and n not in (MANIFEST, MANIFEST_HASH)), None)
            if extra is not None:
                raise _Bad(extra, "in the archive but not listed in the manifest")
            report = manifest.get("report") or {}
            pdf = next((e for e in entries if e["path"] == report.get("pdf")), None)
            if pdf is None or pdf["sha256"] != report.get("pdf_sha256"):
                raise _Bad(str(report.get("pdf") or MANIFEST),
                           "the report PDF does not match the hash recorded at issue")
            if EVENTS not in listed:
                raise _Bad(EVENTS, "the audit events are not listed in the manifest")
            if CONTENT not in listed:
                raise _Bad(CONTENT, "the report content is not listed in the manifest")
            _check_content(archive, report.get("content_sha256"))
            _check_events(archive, (report.get("audit_seq"), report.get("audit_hash")))
            if trusted is not None:
                _check_signature(archive, pdf["path"], list(trusted))
    except _Bad as bad:
        return PackageCheck(False, bad.entry, bad.reason, len(entries))
    return PackageCheck(True, None, "intact", len(entries))
