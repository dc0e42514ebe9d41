"""What a report says, computed from the records: its header and, for every sample it covers, the
result of record of each requested parameter, or the sampler's signed field reading of it (pH,
water temperature, DO, conductivity are measured on site, never in a batch), or why there is none.

Everything downstream reads this one structure: the review checklist, every review signature
(over `content_sha256`), the printed PDF and the archive package. It is loaded in a fixed number
of queries whatever the number of samples and parameters. `signed_content()` is the canonical
form signatures bind: Decimals as text, ids and revisions included, so a revised result, a
sample added or a changed header all move the hash.

A field reading is the newest of the signed field record (`signed_field_readings`): a revision
still being written does not count, a newly signed one moves the hash. Its method is the lab's
registered method version in force at the reading's time with that parameter for the sample's
matrix; without one the line has no method (printed "field measurement", outside the CMA scope).
A "not analysed" reason the lab recorded for the parameter stands over the reading: it is the
lab's explicit decision (a probe found faulty after the record was closed), and reports that
recorded one before field readings were printed keep their content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.analysis.evaluation import current_results_of_samples
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    LimitSet,
    Method,
    MethodParameter,
    MethodState,
    MethodVersion,
    NotAnalysed,
)
from app.analysis.numbers import format_decimal, report_value
from app.core.canonical import content_hash
from app.reports.models import Report, ReportSample
from app.samples.field import FIELD_TEST_RANGES, signed_field_readings
from app.samples.lab_models import SampleReceipt
from app.samples.models import FieldEntry, Sample, SampleParameter
from app.sites.models import Site, SiteVersion

DIMENSIONLESS_FIELD_UNIT = "无量纲"  # pH as GB 3838-2002 and the reports write it


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@dataclass(frozen=True)
class ReportLine:
    """One parameter of one sample: its result of record with the method it was measured by, or
    the sampler's signed field reading (`field`, with the method registered for it, if any), or
    the reason it has none (`not_analysed`), or nothing yet (`pending`)."""

    parameter: str
    result: AnalysisResult | None = None
    rule: MethodParameter | None = None  # unit, MDL, decimals, below-MDL style of the version used
    method: Method | None = None
    method_version: MethodVersion | None = None
    batch: AnalysisBatch | None = None
    not_analysed: str = ""
    field: FieldEntry | None = None  # the signed field reading, when there is no result

    @property
    def pending(self) -> bool:
        return self.result is None and self.field is None and not self.not_analysed

    @property
    def method_code(self) -> str:
        return self.method.code if self.method else ""

    @property
    def reported(self) -> bool:
        """A value prints: a result of record or a field reading."""
        return self.result is not None or self.field is not None

    @property
    def unit(self) -> str:
        """The printed unit: the method's, else the result's or the reading's (pH → 无量纲)."""
        if self.rule is not None:
            return self.rule.unit
        if self.result is not None:
            return self.result.unit
        if self.field is not None:
            return DIMENSIONLESS_FIELD_UNIT if self.field.unit.strip().casefold() == "ph" else self.field.unit
        return ""

    def field_text(self, language: str = "zh") -> str:
        """A field reading as the report prints it: rounded once (GB/T 8170) by the method's
        decimals or significant figures when a method is registered, else as recorded. A reading
        on a scale that goes below zero (water temperature) has no detection limit; nor does a
        method registered without one."""
        entry = self.field
        if entry is None or entry.value is None:
            return ""
        rule = self.rule
        if rule is None:
            return format_decimal(entry.value)
        low = FIELD_TEST_RANGES.get(entry.parameter, (Decimal(0), Decimal(0)))[0]
        mdl = rule.mdl if rule.mdl is not None and rule.mdl > 0 and low >= 0 else None
        decimals = rule.decimals
        figures = rule.significant_figures if decimals is None else None
        return report_value(entry.value, mdl=mdl, style=rule.below_mdl, decimals=decimals,
                            significant_figures=figures, language=language)

    def _rule_facts(self) -> dict[str, Any]:
        rule = self.rule
        return {"mdl": _text(rule.mdl) if rule else None, "decimals": rule.decimals if rule else None,
                "significant_figures": rule.significant_figures if rule else None,
                "below_mdl_style": rule.below_mdl if rule else None}

    def signed(self) -> dict[str, Any]:
        r = self.result
        if r is None and self.field is not None:
            f = self.field
            return {
                "parameter": self.parameter, "field_entry_id": f.id, "revision": f.revision, "value": _text(f.value),
                "unit": f.unit, "act_at": f.act_at, "instrument_id": f.instrument_id,
                "method_version_id": self.method_version.id if self.method_version else None,
                "method_code": self.method_code or None, **self._rule_facts(),
            }
        if r is None:
            return {"parameter": self.parameter, "not_analysed": self.not_analysed or None}
        return {
            "parameter": self.parameter, "result_id": r.id, "revision": r.revision, "value": _text(r.value),
            "unit": r.unit, "below_mdl": r.below_mdl, "qualifier": r.qualifier, "measured_at": r.measured_at,
            "method_version_id": r.method_version_id, "method_code": self.method_code,
            "batch_no": self.batch.batch_no if self.batch else None, **self._rule_facts(),
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

    def field_readings(self) -> list[FieldEntry]:
        return [line.field for _, line in self.lines() if line.field is not None]

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
        """Every requested parameter has a result of record, a signed field reading or a reason it
        has none."""
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
    readings = {(sample_id, parameter.casefold()): entry
                for (sample_id, parameter), entry in signed_field_readings(session, ids).items()}
    all_results = [r for rows in results.values() for r in rows]
    batches = _by_id(session, AnalysisBatch, {r.batch_id for r in all_results})
    versions = _by_id(session, MethodVersion, {r.method_version_id for r in all_results})
    methods = _by_id(session, Method, {v.method_id for v in versions.values()})
    rules = {(rule.method_version_id, rule.parameter): rule for rule in session.scalars(
        select(MethodParameter).where(MethodParameter.method_version_id.in_(list(versions))))} if versions else {}
    matrix_of = {s.id: s.matrix for s in samples}
    field_methods = _field_methods(session, [(matrix_of[e.sample_id], e) for e in readings.values()])
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
                reason = excused.get((sample.id, parameter), "")
                reading = None if reason else readings.get((sample.id, parameter.casefold()))
                if reading is not None:
                    rule, version, method = field_methods.get(reading.id, (None, None, None))
                    lines.append(ReportLine(parameter, rule=rule, method=method, method_version=version,
                                            field=reading))
                else:
                    lines.append(ReportLine(parameter, not_analysed=reason))
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


def _field_methods(session: Session, readings: Iterable[tuple[str, FieldEntry]]
                   ) -> dict[int, tuple[MethodParameter, MethodVersion, Method]]:
    """Field entry id → the method the lab registered for its reading: a version in force at the
    reading's time (valid_from ≤ act_at < valid_to) with a MethodParameter for the parameter, of
    a method for the sample's matrix. Of several, an active method first, then the version that
    came into force last, then the lowest method id. One query for all the readings."""
    wanted = [(matrix, entry) for matrix, entry in readings]
    if not wanted:
        return {}
    times = [entry.act_at for _, entry in wanted]
    rows = session.execute(
        select(MethodParameter, MethodVersion, Method)
        .join(MethodVersion, MethodVersion.id == MethodParameter.method_version_id)
        .join(Method, Method.id == MethodVersion.method_id)
        .where(MethodParameter.parameter.in_({entry.parameter for _, entry in wanted}),
               Method.matrix.in_({matrix for matrix, _ in wanted}),
               MethodVersion.valid_from <= max(times),
               or_(MethodVersion.valid_to.is_(None), MethodVersion.valid_to > min(times)))).all()
    found: dict[int, tuple[MethodParameter, MethodVersion, Method]] = {}
    for matrix, entry in wanted:
        candidates = [(rule, version, method) for rule, version, method in rows
                      if rule.parameter == entry.parameter and method.matrix == matrix
                      and version.valid_from <= entry.act_at
                      and (version.valid_to is None or version.valid_to > entry.act_at)]
        if candidates:
            found[entry.id] = min(candidates, key=lambda c: (c[2].state != MethodState.ACTIVE.value,
                                                              -c[1].valid_from.timestamp(), c[2].id))
    return found


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(list(ids))))}


def analysis_period(content: ReportContent) -> tuple[datetime | None, datetime | None]:
    """First and last measurement over the report's results."""
    times = [r.measured_at for r in content.results()]
    return (min(times), max(times)) if times else (None, None)
