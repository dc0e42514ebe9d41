"""What a report says, computed from the records: its header and, for every sample it covers, the
result of record of each requested parameter (or why there is none).

Everything downstream reads this one structure: the review checklist, every review signature
(over `content_sha256`), the printed PDF and the archive package. It is loaded in a fixed number
of queries whatever the number of samples and parameters. `signed_content()` is the canonical
form signatures bind: Decimals as text, ids and revisions included, so a revised result, a
sample added or a changed header all move the hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis.evaluation import current_results_of_samples
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    LimitSet,
    Method,
    MethodParameter,
    MethodVersion,
    NotAnalysed,
)
from app.core.canonical import content_hash
from app.reports.models import Report, ReportSample
from app.samples.lab_models import SampleReceipt
from app.samples.models import Sample, SampleParameter
from app.sites.models import Site, SiteVersion


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@dataclass(frozen=True)
class ReportLine:
    """One parameter of one sample: its result of record with the method it was measured by, or
    the reason it has none (`not_analysed`), or nothing yet (`pending`)."""

    parameter: str
    result: AnalysisResult | None = None
    rule: MethodParameter | None = None  # unit, MDL, decimals, below-MDL style of the version used
    method: Method | None = None
    method_version: MethodVersion | None = None
    batch: AnalysisBatch | None = None
    not_analysed: str = ""

    @property
    def pending(self) -> bool:
        return self.result is None and not self.not_analysed

    @property
    def method_code(self) -> str:
        return self.method.code if self.method else ""

    def signed(self) -> dict[str, Any]:
        r, rule = self.result, self.rule
        if r is None:
            return {"parameter": self.parameter, "not_analysed": self.not_analysed or None}
        return {
            "parameter": self.parameter, "result_id": r.id, "revision": r.revision, "value": _text(r.value),
            "unit": r.unit, "below_mdl": r.below_mdl, "qualifier": r.qualifier, "measured_at": r.measured_at,
            "method_version_id": r.method_version_id, "method_code": self.method_code,
            "batch_no": self.batch.batch_no if self.batch else None,
            "mdl": _text(rule.mdl) if rule else None, "decimals": rule.decimals if rule else None,
            "significant_figures": rule.significant_figures if rule else None,
            "below_mdl_style": rule.below_mdl if rule else None,
        }


@dataclass(frozen=True)
class ReportSampleContent:
    sample: Sample
    site: Site | None
    site_version: SiteVersion | None
    receipt: SampleReceipt | None
    lines: tuple[ReportLine, ...]

    def signed(self) -> dict[str, Any]:
        s = self.sample
        return {
            "sample_id": s.id, "sample_no": s.sample_no, "kind": s.kind, "matrix": s.matrix,
            "site": self.site.code if self.site else None,
            "site_version_id": self.site_version.id if self.site_version else None,
            "location": s.location_text, "collected_at": s.collected_at, "received_at": s.received_at,
            "receipt_decision": self.receipt.decision if self.receipt else None,
            "lines": [line.signed() for line in self.lines],
        }


@dataclass(frozen=True)
class ReportContent:
    report: Report
    samples: tuple[ReportSampleContent, ...]
    limit_set: LimitSet | None
    amends: Report | None
    batches: dict[int, AnalysisBatch] = field(default_factory=dict)

    def lines(self) -> list[tuple[ReportSampleContent, ReportLine]]:
        return [(s, line) for s in self.samples for line in s.lines]

    def results(self) -> list[AnalysisResult]:
        return [line.result for _, line in self.lines() if line.result is not None]

    def signed_content(self) -> dict[str, Any]:
        r = self.report
        return {
            "report_no": r.report_no, "revision": r.revision,
            "amends": self.amends.report_no if self.amends else None, "amendment_reason": r.amendment_reason,
            "title": r.title, "client_name": r.client_name, "client_contact": r.client_contact,
            "language": r.language, "remarks": r.remarks, "target_class": r.target_class,
            "limit_set": {"code": self.limit_set.code, "version": self.limit_set.version} if self.limit_set else None,
            "samples": [s.signed() for s in self.samples],
        }

    @property
    def content_sha256(self) -> str:
        return content_hash(self.signed_content())

    @property
    def complete(self) -> bool:
        """Every requested parameter has a result of record or a reason it has none."""
        return bool(self.samples) and not any(line.pending for _, line in self.lines())


def report_samples(session: Session, report_id: int) -> list[Sample]:
    return list(session.scalars(select(Sample).join(ReportSample, ReportSample.sample_id == Sample.id)
                                .where(ReportSample.report_id == report_id).order_by(ReportSample.position)))


def load_content(session: Session, report: Report) -> ReportContent:
    """The report's content as the records stand now, in a fixed number of queries."""
    samples = report_samples(session, report.id)
    ids = [s.id for s in samples]
    requested: dict[int, list[str]] = {}
    if ids:
        for sample_id, parameter in session.execute(
                select(SampleParameter.sample_id, SampleParameter.parameter)
                .where(SampleParameter.sample_id.in_(ids)).order_by(SampleParameter.id)):
            requested.setdefault(sample_id, []).append(parameter)
    results = current_results_of_samples(session, ids)
    excused = {(row.sample_id, row.parameter): row.reason for row in session.scalars(
        select(NotAnalysed).where(NotAnalysed.sample_id.in_(ids)))} if ids else {}
    all_results = [r for rows in results.values() for r in rows]
    batches = _by_id(session, AnalysisBatch, {r.batch_id for r in all_results})
    versions = _by_id(session, MethodVersion, {r.method_version_id for r in all_results})
    methods = _by_id(session, Method, {v.method_id for v in versions.values()})
    rules = {(rule.method_version_id, rule.parameter): rule for rule in session.scalars(
        select(MethodParameter).where(MethodParameter.method_version_id.in_(list(versions))))} if versions else {}
    site_versions = _by_id(session, SiteVersion, {s.site_version_id for s in samples if s.site_version_id})
    sites = _by_id(session, Site, {s.site_id for s in samples if s.site_id})
    receipts = {r.sample_id: r for r in session.scalars(
        select(SampleReceipt).where(SampleReceipt.sample_id.in_(ids)))} if ids else {}

    made = []
    for sample in samples:
        by_parameter = {r.parameter: r for r in results.get(sample.id, [])}
        parameters = list(requested.get(sample.id, []))
        parameters += [p for p in by_parameter if p not in parameters]  # measured beyond the request
        lines = []
        for parameter in parameters:
            result = by_parameter.get(parameter)
            if result is None:
                lines.append(ReportLine(parameter, not_analysed=excused.get((sample.id, parameter), "")))
                continue
            version = versions.get(result.method_version_id)
            lines.append(ReportLine(parameter, result, rules.get((result.method_version_id, parameter)),
                                    methods.get(version.method_id) if version else None, version,
                                    batches.get(result.batch_id)))
        made.append(ReportSampleContent(sample, sites.get(sample.site_id) if sample.site_id else None,
                                        site_versions.get(sample.site_version_id) if sample.site_version_id else None,
                                        receipts.get(sample.id), tuple(lines)))
    limit_set = session.get(LimitSet, report.limit_set_id) if report.limit_set_id else None
    amends = session.get(Report, report.amends_id) if report.amends_id else None
    return ReportContent(report, tuple(made), limit_set, amends, batches)


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(list(ids))))}


def analysis_period(content: ReportContent) -> tuple[datetime | None, datetime | None]:
    """First and last measurement over the report's results."""
    times = [r.measured_at for r in content.results()]
    return (min(times), max(times)) if times else (None, None)
