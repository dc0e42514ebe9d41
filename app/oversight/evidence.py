"""A report's full evidence chain on screen (issue 10 item 3: "the inspector can open, for any
report, the full evidence chain (the same content as the archive package) on screen").

The content is the record package's, decided by the archive's own planner
(`app.reports.archive.plan_package` and the helpers that list its signatures and audit events):
nothing here chooses records again, so the screen and the zip cannot drift apart. This module only
arranges the planned documents into sections and links each record to its own page and each file
to its download. The planner's queries are batched, so the page costs the same number of queries
for a report over two samples as over six; audit events are shown a page at a time (keyset on seq).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.audit import AuditEvent
from app.core.i18n import N_
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature
from app.oversight.inspection_errors import EvidenceReportNotFound
from app.people.models import User
from app.reports.archive import (  # the archive's planner and its readers: one choice of records
    entity_conditions,
    json_bytes,
    package_signatures,
    plan_package,
    where_in,
)
from app.reports.models import Report

EVENTS_PAGE = 200

# sections in the order of the quality chain (DOMAIN.md §1), by the archive's record types
SECTIONS: tuple[tuple[str, Any], ...] = (
    ("report", N_("Report")),
    ("field", N_("Sampling and field records")),
    ("custody", N_("Custody")),
    ("receipt", N_("Receipt")),
    ("preparation", N_("Preparation")),
    ("analysis", N_("Analysis: batches, results and curves")),
    ("qc", N_("Quality control and corrective actions")),
    ("raw_data", N_("Raw instrument files")),
    ("calibrations", N_("Instruments and calibrations in force")),
    ("materials", N_("Reference materials and certificates")),
)
# columns a summary table shows, in this order, when the rows have them (the full record is below);
# "sample" and "by" are read from the row's sample id and the first person it names
SUMMARY_COLUMNS = ("report_no", "sample_no", "sample", "batch_no", "code", "barcode", "asset_no", "certificate_no",
                   "lot_no", "position", "level", "role", "label", "kind", "parameter", "revision", "value", "unit",
                   "reason", "state", "meaning", "passed", "outcome", "act_at", "acted_at", "occurred_at",
                   "measured_at", "effective_from", "due_at", "entered_at", "used_at", "issued_at", "signed_at",
                   "sha256")
MAX_SUMMARY_COLUMNS = 9
# the person a row names, in the order a row is attributed to them
PERSON_KEYS = ("actor_id", "signer_id", "entered_by_id", "recorded_by_id", "performed_by_id", "analyst_id",
               "sampler_id", "prepared_by_id", "received_by_id", "created_by_id", "decided_by_id")


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    download: bool = False


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class EvidenceDocument:
    path: str
    record_type: str
    links: list[Link]
    tables: list[Table]
    full: str  # the document as the package holds it (readable JSON)


@dataclass
class EvidenceSection:
    key: str
    title: Any
    documents: list[EvidenceDocument] = field(default_factory=list)


@dataclass(frozen=True)
class EvidenceFile:
    path: str
    sha256: str
    record_type: str
    href: str  # its download, when the lab serves it


@dataclass
class EvidenceChain:
    report: Report
    sections: list[EvidenceSection]
    files: list[EvidenceFile]
    signatures: list[ElectronicSignature]
    events: list[AuditEvent]
    events_total: int
    next_after: int | None  # the seq to continue the events after
    people: dict[int, User]


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def _links(path: str, data: dict[str, Any], files: dict[str, str]) -> list[Link]:
    """Each record's own page, and the sha256 → download of the files the document names (the
    downloads go into `files` for the file list)."""
    links: list[Link] = []
    name = path.rsplit("/", 1)[-1]
    if path == "report/report.json":
        report = data["report"]
        links.append(Link(report["report_no"], f"/reports/{_q(report['report_no'])}"))
        if report.get("pdf_sha256"):
            href = f"/reports/{_q(report['report_no'])}/report.pdf"
            files[report["pdf_sha256"]] = href
            links.append(Link("PDF", href, True))
        if report.get("rendered_pdf_sha256"):  # the PDF the signatory read and approved
            href = f"/reports/{_q(report['report_no'])}/rendered.pdf"
            files.setdefault(report["rendered_pdf_sha256"], href)
            links.append(Link(f"{report['report_no']}-for-approval.pdf", href, True))
        for other in data.get("related_reports", []):
            links.append(Link(other["report_no"], f"/reports/{_q(other['report_no'])}"))
            if other.get("pdf_sha256"):
                files.setdefault(other["pdf_sha256"], f"/reports/{_q(other['report_no'])}/report.pdf")
    elif name == "sample.json":
        sample = data["sample"]
        links.append(Link(sample["sample_no"], f"/samples/{_q(sample['sample_no'])}"))
        if data.get("site"):
            links.append(Link(data["site"]["code"], f"/sites/{_q(data['site']['code'])}"))
        if data.get("task"):
            links.append(Link(data["task"]["code"], f"/tasks/{_q(data['task']['code'])}"))
    elif name == "field.json":
        sample_no = path.split("/")[2] if path.startswith("records/samples/") else ""
        for photo in data.get("photos", []):
            href = f"/api/v1/samples/{_q(sample_no)}/photos/{photo['id']}"
            files[photo["sha256"]] = href
            links.append(Link(f"photo {photo['sha256'][:12]}", href, True))
    elif name == "custody.json":
        links += [Link(s["code"], f"/custody/shipments/{_q(s['code'])}") for s in data.get("shipments", [])]
    elif name == "receipt.json":
        links += [Link(d["code"], f"/receipts/{_q(d['code'])}") for d in data.get("deliveries", [])]
    elif name == "preparation.json":
        links += [Link(b["batch"]["code"], f"/prep/{_q(b['batch']['code'])}") for b in data.get("batches", [])]
    elif name == "batch.json":
        batch_no = data["batch"]["batch_no"]
        links += [Link(batch_no, f"/batches/{_q(batch_no)}"), Link("QC", f"/batches/{_q(batch_no)}/qc")]
    elif name == "curves.json":
        links += [Link(c["curve"]["code"], f"/curves/{_q(c['curve']['code'])}") for c in data.get("curves", [])]
    elif name == "imports.json":
        for row in data.get("imports", []):
            href = f"/imports/{_q(row['code'])}/file"
            files[row["sha256"]] = href
            links += [Link(row["code"], f"/imports/{_q(row['code'])}"), Link(row["filename"], href, True)]
    elif name == "instrument.json":
        asset_no = data["instrument"]["asset_no"]
        links.append(Link(asset_no, f"/instruments/{quote(str(asset_no))}"))
    elif name == "calibrations.json":
        for record in data.get("calibrations", []):
            href = f"/instruments/calibrations/{record['id']}/certificate"
            files[record["certificate_sha256"]] = href
            links += [Link(record["certificate_no"], f"/instruments/calibrations/{record['id']}"),
                      Link(f"{record['certificate_no']}.pdf", href, True)]
    elif name == "lot.json":
        lot = data["lot"]
        href = f"/reference-materials/lots/{lot['id']}/certificate"
        files[lot["certificate_sha256"]] = href
        label = f"{data['material']['certificate_no']} {lot['lot_no']}"
        links += [Link(label, f"/reference-materials/lots/{lot['id']}"),
                  Link("certificate.pdf", href, True)]
        links += [Link(s["solution"]["barcode"], f"/reference-materials/solutions/{_q(s['solution']['barcode'])}")
                  for s in data.get("solutions", []) if s["solution"].get("barcode")]
    return links


@dataclass(frozen=True)
class Names:
    """What a bare id in a record stands for: people by user id, samples by sample id."""

    people: dict[int, str]
    samples: dict[int, str]

    def identified(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with the sample's number and the person it names, for the summary table."""
        extra: dict[str, Any] = {}
        if "sample_no" not in row and row.get("sample_id") in self.samples:
            extra["sample"] = self.samples[row["sample_id"]]
        by = next((row[k] for k in PERSON_KEYS if row.get(k) in self.people), None)
        if by is not None:
            extra["by"] = self.people[by]
        return {**row, **extra} if extra else row


def _table(name: str, rows: list[Any], names: Names) -> Table | None:
    rows = [names.identified(r) for r in rows if isinstance(r, dict)]
    if not rows:
        return None
    present = set().union(*(r.keys() for r in rows))
    columns = [c for c in SUMMARY_COLUMNS if c in present][:MAX_SUMMARY_COLUMNS] or sorted(present - {"by"})[:6]
    if "by" in present:
        columns.append("by")
    return Table(name, columns, [[r.get(c) for c in columns] for r in rows])


def _tables(data: dict[str, Any], names: Names) -> list[Table]:
    """A summary table per list of records in the document (nested ones, such as a lot's
    solutions or a preparation batch's items, are flattened under their key)."""
    tables: list[Table] = []
    for key, value in data.items():
        if isinstance(value, dict) and value and not isinstance(next(iter(value.values())), list | dict):
            table = _table(key, [value], names)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if all(all(isinstance(x, dict | list) or x is None for x in v.values()) for v in value):
                for inner in sorted({k for v in value for k in v}):
                    found = [x for v in value for x in (v.get(inner) if isinstance(v.get(inner), list)
                                                        else [v.get(inner)]) if x]
                    table = _table(f"{key}.{inner}", found, names)
                    if table:
                        tables.append(table)
                continue
            table = _table(key, value, names)
        else:
            continue
        if table:
            tables.append(table)
    return tables


def _events_page(session: Session, entities: dict[str, set[str]], after: int,
                 limit: int) -> tuple[list[AuditEvent], int]:
    """One page of the package's audit events after `after` (chain order) and how many in all,
    with the archive's own entity conditions."""
    conditions = entity_conditions(entities, AuditEvent.entity_type, AuditEvent.entity_id)
    if not conditions:
        return [], 0
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(or_(*conditions))) or 0
    page = list(session.scalars(select(AuditEvent).where(AuditEvent.seq > after, or_(*conditions))
                                .order_by(AuditEvent.seq).limit(limit + 1)))
    return page, total


def evidence_chain(session: Session, actor: User, report_no: str, *, events_after: int = 0,
                   events_limit: int = EVENTS_PAGE) -> EvidenceChain:
    """Everything the record package of the report would hold, arranged for the screen."""
    ensure(session, actor, Permission.AUDIT_READ)
    ensure(session, actor, Permission.REPORTS_READ)
    audit.flush_pending(session)
    report = session.scalars(select(Report).where(Report.report_no == report_no)).first()
    if report is None:
        raise EvidenceReportNotFound(report_no=report_no)
    plan = plan_package(session, report)
    signatures = package_signatures(session, plan)
    events, total = _events_page(session, plan.entities, max(0, events_after), events_limit)
    next_after = events[events_limit - 1].seq if len(events) > events_limit else None
    events = events[:events_limit]
    user_ids = set(plan.rows.users) | {e.actor_id for e in events if e.actor_id} | {s.signer_id for s in signatures}
    people = {u.id: u for u in where_in(session, User, User.id, user_ids)}
    names = Names({i: u.printed_name for i, u in people.items()},
                  {d["sample"]["id"]: d["sample"]["sample_no"] for p, _, d in plan.documents
                   if p.endswith("/sample.json") and isinstance(d.get("sample"), dict)})
    downloads: dict[str, str] = {}
    sections = {key: EvidenceSection(key, title) for key, title in SECTIONS}
    for path, record_type, data in plan.documents:
        document = EvidenceDocument(path, record_type, _links(path, data, downloads), _tables(data, names),
                                    json_bytes(data).decode("utf-8"))
        sections.setdefault(record_type, EvidenceSection(record_type, record_type)).documents.append(document)
    # a report not yet issued has no signed PDF: the planner still names its place, with no hash
    files = [EvidenceFile(f.path, f.sha256, f.record_type, downloads.get(f.sha256, "")) for f in plan.files
             if f.sha256]
    return EvidenceChain(report, [s for s in sections.values() if s.documents], files, signatures, events, total,
                         next_after, people)

