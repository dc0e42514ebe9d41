"""The printed report: what it says (`build_document`) and its PDF (`render_report_pdf`).

ISO/IEC 17025:2017 §7.8.2.1 and RB/T 214-2017 fix what a test report carries (DOMAIN.md §5):
title, lab, report number and "page x of y" on every page with an end mark, client, sites and
samples with their condition, dates of sampling, receipt, analysis and issue, method codes with
year, results with units, qualifiers and MDL rounded once per GB/T 8170, the evaluation against
the chosen standard, deviations, the statements, the people of the three levels, a QR code to
the public verification page and the audit head at issue.

Field readings (pH, water temperature, DO, conductivity from the sampler's signed record) print
like results: rounded once by their method's reporting rule (as recorded without a method), with
their unit and the MDL ("—" without one), counted among the CMA items (a reading without a
registered method is outside the scope: flagged, and the mark rule applies), listed in the methods
table as field measurements and evaluated (pH and DO have GB 3838 classes). Their date is a
sampling date; the analysis dates stay the laboratory's.

`build_document` takes every decision (the CMA mark, the flagged items, the rounding, the class
of each sample) into plain data, so the rules are tested without reading PDFs; the template
(`reports/report_pdf.html`) only lays the data out.

The PDF is rendered by WeasyPrint as PDF/A-3b (`pdf_variant="pdf/a-3b"`: XMP metadata with the
PDF/A identification, Chinese title and author intact, and an sRGB output intent; CJK text stays
text with ToUnicode maps, Noto Sans/Serif CJK SC embedded as subsets). WeasyPrint subsets with
HarfBuzz when libharfbuzz-subset is installed: the 20-sample × 25-parameter report (6 pages,
434 KB, of which the three CJK subsets are 175 + 95 + 93 KB, mostly the CFF index WeasyPrint keeps
by retaining glyph ids) rendered in 4.8 s on a loaded 2-CPU machine, against 39.6 s and the same
size with the fontTools fallback. The last page keeps `SIGNATURE_BOX` empty for the visible stamp
of the PAdES signature that app.reports.signing adds afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import segno
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis.evaluation import LAB_SAMPLE_AVERAGING, SampleEvaluation, evaluate_sample
from app.analysis.limits import LimitTable, table_from
from app.analysis.models import AnalysisResult, CorrectiveAction, LimitSet, LimitValue, MethodState
from app.analysis.results import reported_text
from app.config import settings_of
from app.core import i18n
from app.core.labtime import lab_calendar
from app.core.pdf import print_templates, render_pdf
from app.core.signatures import ElectronicSignature
from app.core.units import printed_unit
from app.people.models import Laboratory, User
from app.people.service import current_lab
from app.reports.content import ReportContent, ReportLine, ReportSampleContent, analysis_period
from app.reports.models import AccreditationCertificate, Report, ReviewAct, ReviewLevel, ReviewOutcome
from app.reports.scopes import certificate_in_force, cma_coverage
from app.samples.lab_models import HoldingDeviation, ReceiptCheck, ReceiptDecision
from app.sites.models import MonitoringPlan, SamplingTask

TEMPLATE = "reports/report_pdf.html"
PDF_VARIANT = "pdf/a-3b"

# Page geometry in points (1 mm = 72 / 25.4 pt); the template's @page rule is written from these.
MM = 72 / 25.4
PAGE_WIDTH, PAGE_HEIGHT = 210 * MM, 297 * MM  # A4
MARGIN_TOP, MARGIN_RIGHT, MARGIN_BOTTOM, MARGIN_LEFT = 28 * MM, 18 * MM, 20 * MM, 18 * MM
STAMP_WIDTH, STAMP_HEIGHT = 200, 80

SIGNATURE_BOX: tuple[int, int, int, int] = (
    int(PAGE_WIDTH - MARGIN_RIGHT - STAMP_WIDTH),  # 344
    int(MARGIN_BOTTOM) + 1,  # 57
    int(PAGE_WIDTH - MARGIN_RIGHT),  # 544
    int(MARGIN_BOTTOM) + 1 + int(STAMP_HEIGHT),  # 137
)
"""Where the visible PAdES stamp goes on the last page: (x1, y1, x2, y2) in points from the page's
bottom-left corner, inside the margins at the bottom right of the text area. The report's last
element is a blank block taller than the stamp, so no text of the last page reaches into it."""

SAMPLES_PER_TABLE = 5  # sample columns per results table (A4 portrait, one column per sample)


# ---------------------------------------------------------------- the printed data


@dataclass(frozen=True)
class PrintedValue:
    """One cell of the results table: the text a report prints, or why there is none."""

    text: str  # "0.512", "0.025L", "未检出"; "" when not analysed or pending
    qualifier: str = ""
    class_label: str = ""  # the value's class under the evaluation standard ("II", "劣V", "exceeds")
    exceeds_target: bool = False
    not_analysed: str = ""  # the reason
    pending: bool = False


@dataclass(frozen=True)
class PrintedSample:
    sample_no: str
    kind: str
    matrix: str
    site_code: str
    site_name: str
    location: str
    collected_at: datetime | None
    received_at: datetime | None
    condition: str  # ReceiptDecision value, "" when received without a recorded check
    condition_note: str  # the deviation of a conditional receipt
    class_label: str = ""  # the sample's class (single-factor), "" without an evaluation
    exceeds_target: bool | None = None
    exceedances: tuple[str, ...] = ()  # parameters worse than the target class
    determining: tuple[str, ...] = ()  # parameters at the sample's class


@dataclass(frozen=True)
class ResultRow:
    parameter: str
    method_code: str
    unit: str
    mdl: str
    flagged: bool  # outside the CMA scope (`*` + footnote)
    values: tuple[PrintedValue | None, ...]  # per sample of the table; None: not requested


@dataclass(frozen=True)
class ResultTable:
    """Up to SAMPLES_PER_TABLE samples of one matrix side by side, a row per parameter."""

    matrix: str
    samples: tuple[PrintedSample, ...]
    rows: tuple[ResultRow, ...]


@dataclass(frozen=True)
class MethodLine:
    parameter: str
    method_code: str  # with year: HJ 535-2009; "" for a field reading without a registered method
    method_name: str
    unit: str
    mdl: str
    matrix: str
    flagged: bool
    field: bool = False  # measured on site (printed with a "field" note)


@dataclass(frozen=True)
class Deviation:
    kind: str  # holding_time, conditional_receipt, qc_qualifier
    samples: tuple[str, ...]
    parameter: str
    text: str  # the reason / deviation / justification as recorded
    by: str = ""  # who allowed it (the QM for holding time; the client's consent for a receipt)
    qualifier: str = ""


@dataclass(frozen=True)
class Signer:
    level: str  # ReviewLevel value
    name: str
    on: date | None


@dataclass(frozen=True)
class Evaluation:
    code: str
    version: int
    name: str
    target_class: str
    pass_fail: bool


@dataclass(frozen=True)
class ReportDocument:
    report_no: str
    title: str
    language: str  # "zh" (bilingual labels) or "en"
    lab: Laboratory | None
    certificate_no: str  # of the certificate in force on the issue day ("" without the mark)
    cma_mark: bool
    flagged: frozenset[tuple[str, str, str]]  # (parameter, method code, matrix) marked `*`: every out-of-scope one
    out_of_scope: frozenset[tuple[str, str, str]]  # outside the scope in force, mark or not
    client_name: str
    client_contact: str
    samples: tuple[PrintedSample, ...]
    tables: tuple[ResultTable, ...]
    methods: tuple[MethodLine, ...]
    deviations: tuple[Deviation, ...]
    sampling: tuple[date | None, date | None]
    receipt: tuple[date | None, date | None]
    analysis: tuple[date | None, date | None]
    issued_on: date
    signers: tuple[Signer, ...]  # compile, check, review, approve in that order
    verify_url: str
    audit_seq: int
    audit_hash: str
    amends_no: str
    amendment_reason: str
    evaluation: Evaluation | None
    remarks: str
    retain_until: date
    sites: tuple[str, ...]
    plans: tuple[str, ...] = ()  # the monitoring plans the samples were taken under: "PL26-00003 title"


# ---------------------------------------------------------------- building it


def build_document(session: Session, report: Report, content: ReportContent, *, signatory: User,
                   approved_on: date, audit_seq: int, audit_hash: str) -> ReportDocument:
    """Everything the printed report says, decided: a fixed number of queries whatever the size."""
    settings = settings_of(session)
    calendar = lab_calendar(session)

    def day(moment: datetime | None) -> date | None:
        return calendar.local_date(moment) if moment else None

    items = {(line.parameter, line.method_code, s.sample.matrix) for s, line in content.lines() if line.reported}
    stale = {(line.parameter, line.method_code, s.sample.matrix) for s, line in content.lines()
             if line.method is not None and line.method.state != MethodState.ACTIVE.value}
    coverage = cma_coverage(session, items, approved_on)
    out_of_scope = frozenset(item for item in items if not coverage.get(item) or item in stale)
    certificate = certificate_in_force(session, approved_on)
    cma_mark = decide_cma_mark(language=report.language, items=items, out_of_scope=out_of_scope,
                               with_flagged_items=settings.cma_mark_with_flagged_items,
                               certificate=certificate)
    # out-of-scope items are marked as such whether or not the mark is printed (the rule):
    # a reader sees which results the accreditation does not cover
    flagged = out_of_scope

    evaluations = _evaluate(session, report, content, calendar)
    checks = _conditional_checks(session, content)
    samples = tuple(_printed_sample(s, evaluations.get(s.sample.id), checks.get(s.sample.id), report.language)
                    for s in content.samples)
    tables = _result_tables(content, samples, evaluations, flagged, report.language)
    first_analysed, last_analysed = analysis_period(content)
    collected = [s.sample.collected_at for s in content.samples if s.sample.collected_at]
    collected += [entry.act_at for entry in content.field_readings()]  # measured on site: sampling dates
    received = [s.sample.received_at for s in content.samples if s.sample.received_at]
    limit_set = content.limit_set
    return ReportDocument(
        report_no=report.report_no, title=report.title, language=report.language, lab=current_lab(session),
        certificate_no=certificate.certificate_no if cma_mark and certificate else "",
        cma_mark=cma_mark, flagged=flagged, out_of_scope=out_of_scope,
        client_name=report.client_name, client_contact=report.client_contact,
        samples=samples, tables=tables, methods=_method_lines(content, flagged, report.language),
        deviations=_deviations(session, content, checks),
        sampling=(day(min(collected)) if collected else None, day(max(collected)) if collected else None),
        receipt=(day(min(received)) if received else None, day(max(received)) if received else None),
        analysis=(day(first_analysed), day(last_analysed)),
        issued_on=approved_on,
        signers=_signers(session, report, content, signatory, approved_on, calendar),
        verify_url=verify_url(settings.public_base_url, report.verify_token),
        audit_seq=audit_seq, audit_hash=audit_hash,
        amends_no=content.amends.report_no if content.amends else "",
        amendment_reason=report.amendment_reason,
        evaluation=Evaluation(limit_set.code, limit_set.version,
                              i18n.pick(limit_set.name_zh, limit_set.name_en, _language(report.language)),
                              report.target_class, not limit_set.worse_than_all) if limit_set else None,
        remarks=report.remarks,
        retain_until=report.retain_until or _years_after(approved_on, settings.report_retention_years),
        sites=tuple(dict.fromkeys(s.site_code for s in samples if s.site_code)),
        plans=_plans(session, content),
    )


def decide_cma_mark(*, language: str, items: Iterable[tuple[str, str, str]],
                    out_of_scope: Iterable[tuple[str, str, str]], with_flagged_items: bool,
                    certificate: AccreditationCertificate | None) -> bool:
    """DOMAIN.md §5: the mark only on a Chinese report, with a certificate in force, when every
    item is in scope; with the lab setting, also when some are not (they are flagged), as long
    as at least one item is in scope. An English-only report never carries it."""
    items, out = set(items), set(out_of_scope)
    if language != "zh" or certificate is None or not items:
        return False
    if not out:
        return True
    return with_flagged_items and bool(items - out)


def verify_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/verify/{token}"


def _language(report_language: str) -> str:
    return "zh_CN" if report_language == "zh" else "en"


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


# ---------------------------------------------------------------- evaluation


def _evaluate(session: Session, report: Any, content: ReportContent, calendar: Any) -> dict[int, SampleEvaluation]:
    """Each sample against the report's standard, in the version in force on its sampling day
    (the report's chosen version when none was): two queries for the versions and their rows."""
    chosen = content.limit_set
    if chosen is None:
        return {}
    versions = list(session.scalars(select(LimitSet).where(LimitSet.code == chosen.code).order_by(LimitSet.version)))
    values: dict[int, list[LimitValue]] = {}
    for value in session.scalars(select(LimitValue).where(LimitValue.limit_set_id.in_([v.id for v in versions]))
                                 .order_by(LimitValue.id)):
        values.setdefault(value.limit_set_id, []).append(value)
    tables = {v.id: table_from(v, values.get(v.id, [])) for v in versions}

    def in_force(on: date | None) -> LimitTable:
        if on is not None:
            for version in reversed(versions):
                if version.valid_from <= on and (version.valid_to is None or version.valid_to > on):
                    return tables[version.id]
        return tables[chosen.id]

    evaluations = {}
    for s in content.samples:
        measured = [(line.parameter, line.result.value, line.result.unit) for line in s.lines if line.result]
        measured += [(line.parameter, line.field.value, line.field.unit) for line in s.lines
                     if line.result is None and line.field is not None and line.field.value is not None]
        if not measured:
            continue
        table = in_force(calendar.local_date(s.sample.collected_at) if s.sample.collected_at else None)
        water_body = s.site_version.water_body if s.site_version else ""
        evaluations[s.sample.id] = evaluate_sample(table, measured, water_body,
                                                   LAB_SAMPLE_AVERAGING.get(table.kind, ""),
                                                   target=report.target_class)
    return evaluations


# ---------------------------------------------------------------- samples and results


def _conditional_checks(session: Session, content: ReportContent) -> dict[int, ReceiptCheck]:
    """The receipt checks of the samples received with conditions (their deviation prints)."""
    wanted = {s.receipt.check_id: s.sample.id for s in content.samples
              if s.receipt is not None and s.receipt.decision == ReceiptDecision.ACCEPT_WITH_CONDITIONS.value}
    if not wanted:
        return {}
    return {wanted[c.id]: c for c in session.scalars(select(ReceiptCheck).where(ReceiptCheck.id.in_(list(wanted))))}


def _printed_sample(s: ReportSampleContent, evaluation: SampleEvaluation | None,
                    check: ReceiptCheck | None, language: str) -> PrintedSample:
    site_name = ""
    if s.site_version is not None:
        site_name = i18n.pick(s.site_version.name_zh, s.site_version.name_en, _language(language))
    condition = s.receipt.decision if s.receipt is not None else ""
    note = check.deviation if check is not None else ""
    exceeding = ()
    if evaluation is not None:
        exceeding = tuple(v.parameter for v in evaluation.per_parameter if v.exceeded_target and v.in_overall)
    return PrintedSample(
        sample_no=s.sample.sample_no, kind=s.sample.kind, matrix=s.sample.matrix,
        site_code=s.site.code if s.site else "", site_name=site_name, location=s.sample.location_text,
        collected_at=s.sample.collected_at, received_at=s.sample.received_at,
        condition=condition, condition_note=note,
        class_label=evaluation.overall_class if evaluation else "",
        exceeds_target=evaluation.exceeded_target if evaluation else None,
        exceedances=exceeding, determining=evaluation.determining_parameters if evaluation else ())


def _value(line: ReportLine, language: str, evaluation: SampleEvaluation | None) -> PrintedValue:
    if not line.reported:
        return PrintedValue("", not_analysed=line.not_analysed, pending=line.pending)
    judged = None
    if evaluation is not None:
        judged = next((v for v in evaluation.per_parameter if v.parameter == line.parameter), None)
    if line.result is None:
        text, qualifier = line.field_text(_language(language)), ""
    else:
        text, qualifier = reported_text(line.result, line.rule, _language(language)), line.result.qualifier
    return PrintedValue(
        text, qualifier=qualifier, class_label=judged.class_label if judged else "",
        exceeds_target=bool(judged and judged.exceeded_target and judged.in_overall))


def _row_key(line: ReportLine) -> tuple[str, str, str, str]:
    rule = line.rule
    if rule is None:
        mdl = "—" if line.result is None and line.field is not None else ""
    else:  # a direct reading (pH, temperature) has no detection limit: MDL 0, printed "—"
        mdl = format(rule.mdl, "f") if rule.mdl > 0 else "—"
    return line.parameter, line.method_code, line.unit, mdl


def _result_tables(content: ReportContent, samples: Sequence[PrintedSample], evaluations: dict[int, SampleEvaluation],
                   flagged: frozenset[tuple[str, str, str]], language: str) -> tuple[ResultTable, ...]:
    """Samples grouped by matrix, SAMPLES_PER_TABLE to a table; a row per parameter × method (unit
    and MDL) in the order of the samples' lines, then the parameters nobody in the table has a
    result for. A sample without a result for a row prints why (not analysed, no result yet) or
    "/" when it was not requested."""
    printed = {p.sample_no: p for p in samples}
    by_matrix: dict[str, list[ReportSampleContent]] = {}
    for s in content.samples:
        by_matrix.setdefault(s.sample.matrix, []).append(s)
    tables = []
    for matrix, group in by_matrix.items():
        for start in range(0, len(group), SAMPLES_PER_TABLE):
            chunk = group[start:start + SAMPLES_PER_TABLE]
            keys: dict[tuple[str, str, str, str], None] = {}
            for s in chunk:
                for line in s.lines:
                    if line.reported:
                        keys.setdefault(_row_key(line))
            measured = {k[0] for k in keys}
            for s in chunk:  # parameters nobody measured in this table: a row of their own
                for line in s.lines:
                    if not line.reported and line.parameter not in measured:
                        keys.setdefault((line.parameter, "", "", ""))
            rows = []
            for key in keys:
                parameter = key[0]
                cells: list[PrintedValue | None] = []
                for s in chunk:
                    line = next((x for x in s.lines if x.parameter == parameter
                                 and (not x.reported or _row_key(x) == key)), None)
                    cells.append(_value(line, language, evaluations.get(s.sample.id)) if line else None)
                rows.append(ResultRow(parameter, key[1], printed_unit(key[2], language), key[3],
                                      (parameter, key[1], matrix) in flagged, tuple(cells)))
            tables.append(ResultTable(matrix, tuple(printed[s.sample.sample_no] for s in chunk), tuple(rows)))
    return tuple(tables)


def _method_lines(content: ReportContent, flagged: frozenset[tuple[str, str, str]],
                  language: str) -> tuple[MethodLine, ...]:
    seen: dict[tuple[str, str, str, str, str], MethodLine] = {}
    for s, line in content.lines():
        on_site = line.result is None and line.field is not None
        if not line.reported or (line.method is None and not on_site):
            continue
        parameter, code, unit, mdl = _row_key(line)
        key = (parameter, code, unit, mdl, s.sample.matrix)
        if key not in seen:
            name = i18n.pick(line.method.name_zh, line.method.name_en, _language(language)) if line.method else ""
            seen[key] = MethodLine(parameter, code, name, printed_unit(unit, language), mdl, s.sample.matrix,
                                   (parameter, code, s.sample.matrix) in flagged, field=on_site)
    return tuple(seen.values())


def _plans(session: Session, content: ReportContent) -> tuple[str, ...]:
    """The sampling plans behind the samples (ISO/IEC 17025 §7.8.2.1: reference to the sampling
    plan), through their tasks: one query."""
    task_ids = {s.sample.task_id for s in content.samples if s.sample.task_id}
    if not task_ids:
        return ()
    rows = session.execute(select(MonitoringPlan.code, MonitoringPlan.title).distinct()
                           .join(SamplingTask, SamplingTask.plan_id == MonitoringPlan.id)
                           .where(SamplingTask.id.in_(task_ids)).order_by(MonitoringPlan.code))
    return tuple(f"{code} {title}" for code, title in rows)


# ---------------------------------------------------------------- deviations


def _deviations(session: Session, content: ReportContent, checks: dict[int, ReceiptCheck]) -> tuple[Deviation, ...]:
    """What departed from the method or the specification and how it was allowed: holding time
    exceeded with the QM's deviation, conditional receipt with the client's consent, and QC
    qualifiers with the corrective action that let the results stand. Three queries."""
    sample_ids = [s.sample.id for s in content.samples]
    if not sample_ids:
        return ()
    numbers = {s.sample.id: s.sample.sample_no for s in content.samples}
    reported = {(s.sample.id, line.parameter) for s, line in content.lines() if line.result is not None}
    found: list[Deviation] = []

    holding = [d for d in session.scalars(select(HoldingDeviation).where(HoldingDeviation.sample_id.in_(sample_ids))
                                          .order_by(HoldingDeviation.id)) if (d.sample_id, d.parameter) in reported]
    names = {u.id: u.printed_name for u in session.scalars(
        select(User).where(User.id.in_({d.recorded_by_id for d in holding})))} if holding else {}
    for d in holding:
        found.append(Deviation("holding_time", (numbers[d.sample_id],), d.parameter, d.reason,
                               names.get(d.recorded_by_id, "")))

    for sample_id in sample_ids:
        check = checks.get(sample_id)
        if check is not None:
            by = " ".join(part for part in (check.consent_by, check.consent_ref) if part)
            found.append(Deviation("conditional_receipt", (numbers[sample_id],), "", check.deviation, by))

    qualified: dict[tuple[int, str, str], list[str]] = {}
    for s, line in content.lines():
        result: AnalysisResult | None = line.result
        if result is not None and result.qualifier:
            qualified.setdefault((result.batch_id, result.qualifier, line.parameter), []).append(s.sample.sample_no)
    if qualified:
        actions: dict[tuple[int, str], CorrectiveAction] = {}
        for action in session.scalars(select(CorrectiveAction).where(
                CorrectiveAction.batch_id.in_({b for b, _, _ in qualified})).order_by(CorrectiveAction.id)):
            actions.setdefault((action.batch_id, action.qualifier), action)
        for (batch_id, qualifier, parameter), sample_nos in qualified.items():
            action = actions.get((batch_id, qualifier))
            batch = content.batches.get(batch_id)
            text = action.justification if action else ""
            found.append(Deviation("qc_qualifier", tuple(sample_nos), parameter, text,
                                   batch.batch_no if batch else "", qualifier))
    return tuple(found)


# ---------------------------------------------------------------- people


def _signers(session: Session, report: Any, content: ReportContent, signatory: User, approved_on: date,
             calendar: Any) -> tuple[Signer, ...]:
    """编制, 校核, 审核 from the latest signed act of each level whose content hash is the current
    one (a signature over older content no longer vouches for this report); 签发 is the signatory
    who is about to approve the PDF rendered here, on `approved_on`."""
    current = content.content_sha256
    latest: dict[str, tuple[ReviewAct, ElectronicSignature]] = {}
    for act, signature in session.execute(
            select(ReviewAct, ElectronicSignature)
            .join(ElectronicSignature, ElectronicSignature.id == ReviewAct.signature_id)
            .where(ReviewAct.report_id == report.id, ReviewAct.outcome == ReviewOutcome.SIGNED.value)
            .order_by(ReviewAct.acted_at, ReviewAct.id)):
        if act.content_sha256 == current:
            latest[act.level] = (act, signature)
    signers = []
    for level in (ReviewLevel.COMPILE, ReviewLevel.CHECK, ReviewLevel.REVIEW):
        found = latest.get(level.value)
        if found is not None:
            signers.append(Signer(level.value, found[1].printed_name, calendar.local_date(found[1].signed_at)))
        elif level is ReviewLevel.COMPILE:
            preparer = session.get(User, report.prepared_by_id)
            signers.append(Signer(level.value, preparer.printed_name if preparer else "", None))
        else:
            signers.append(Signer(level.value, "", None))
    signers.append(Signer(ReviewLevel.APPROVE.value, signatory.printed_name, approved_on))
    return tuple(signers)


# ---------------------------------------------------------------- QR code


def qr_svg(text: str) -> Markup:
    """Inline SVG of a QR code (error correction M, 4-module quiet zone), one <path> of runs."""
    matrix = segno.make(text, micro=False, error="m").matrix
    quiet = 4
    size = len(matrix) + 2 * quiet
    runs = []
    for y, row in enumerate(matrix, start=quiet):
        x = 0
        while x < len(row):
            if row[x]:
                end = x
                while end < len(row) and row[end]:
                    end += 1
                runs.append(f"M{x + quiet} {y}h{end - x}v1h-{end - x}z")
                x = end
            else:
                x += 1
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" class="qr" viewBox="0 0 {size} {size}" '
                  f'shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
                  f'<path fill="#000" d="{"".join(runs)}"/></svg>')


# ---------------------------------------------------------------- rendering


def report_html(document: ReportDocument, *, tz: Any) -> str:
    """The report's HTML in its language (what WeasyPrint prints; the benchmark's baseline)."""
    with i18n.use_language(_language(document.language)):
        return print_templates().get_template(TEMPLATE).render(
            doc=document, tz=tz, lang=i18n.current_language(), qr=qr_svg(document.verify_url),
            page={"width": PAGE_WIDTH, "height": PAGE_HEIGHT, "top": MARGIN_TOP, "right": MARGIN_RIGHT,
                  "bottom": MARGIN_BOTTOM, "left": MARGIN_LEFT, "stamp_width": STAMP_WIDTH,
                  "stamp_height": STAMP_HEIGHT},
            samples_per_table=SAMPLES_PER_TABLE)


def render_report_pdf(session: Session, report: Report, content: ReportContent, *, signatory: User,
                      approved_on: date, audit_seq: int, audit_hash: str) -> bytes:
    """The report as PDF/A-3b, for the signatory to read and approve (then signed by PAdES)."""
    document = build_document(session, report, content, signatory=signatory, approved_on=approved_on,
                              audit_seq=audit_seq, audit_hash=audit_hash)
    return render_pdf(report_html(document, tz=lab_calendar(session).tz), pdf_variant=PDF_VARIANT)

