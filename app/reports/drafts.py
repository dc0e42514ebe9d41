"""Report drafts (编制): choosing reportable samples, the header, the number, and the preparer's
signature that sends the report to review (issue 9; DOMAIN.md §3 Report: editable only in draft).

A sample is reportable when every requested parameter has a result of record or a "not analysed"
reason (state `results_entered`) and it is on no live report (live: any state but superseded or
withdrawn). An amendment is a new report that may cover its original's samples; the amendment
service passes `amends=` to `assert_samples_reportable`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisBatch, LimitSet
from app.analysis.submission import signature_views
from app.core import audit
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure
from app.core.signatures import SignatureMeaning, sign
from app.core.web import Page
from app.people.models import User
from app.reports import review
from app.reports import review_errors as errors
from app.reports.content import ReportContent, load_content
from app.reports.models import (
    Report,
    ReportLanguage,
    ReportSample,
    ReportState,
    ReviewLevel,
    ReviewOutcome,
)
from app.reports.numbering import next_report_no
from app.samples.models import Sample, SampleState
from app.sites.models import Site

SIGNED_ENTITY = "report"
REPORTABLE_STATES = (SampleState.RESULTS_ENTERED.value,)
DEAD_STATES = (ReportState.SUPERSEDED.value, ReportState.WITHDRAWN.value)
MAX_SAMPLES = 500
MAX_PAGE_SIZE = 200
LIMITS = {"title": 200, "client_name": 200, "client_contact": 200, "target_class": 20, "remarks": 2000}
FIELD_WORDS = {
    "title": ("报告标题", "The title"), "client_name": ("委托单位", "The client"),
    "client_contact": ("委托方联系方式", "The client contact"), "target_class": ("目标类别", "The target class"),
    "remarks": ("备注", "The remarks"),
}


# ---------------------------------------------------------------- finding


def clean_report_no(report_no: str) -> str:
    return "".join((report_no or "").split())[:40]


def report_by_no(session: Session, report_no: str) -> Report:
    """The report with this number (ReportNotFound, 404, otherwise)."""
    cleaned = clean_report_no(report_no)
    report = session.scalars(select(Report).where(Report.report_no == cleaned)).first() if cleaned else None
    if report is None:
        raise errors.ReportNotFound(report_no=cleaned or "—")
    return report


def _locked(session: Session, report: Report) -> Report:
    """The report row locked for this transaction: acts on one report go one at a time."""
    return session.execute(select(Report).where(Report.id == report.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _live_reports() -> Any:
    return select(ReportSample.sample_id, Report.report_no, Report.base_no).join(
        Report, Report.id == ReportSample.report_id).where(Report.state.not_in(DEAD_STATES))


def reportable_samples(session: Session, *, client: str = "", site: str = "", text: str = "", page: int = 1,
                       size: int = 50) -> Page[Sample]:
    """Samples ready for a report and on no live report, by sample number; filtered by client
    name, site code or a part of the sample number. Two queries (count and page)."""
    live = _live_reports().where(ReportSample.sample_id == Sample.id).exists()
    query = select(Sample).where(Sample.state.in_(REPORTABLE_STATES), ~live)
    client = " ".join((client or "").split())[:200]
    if client:
        query = query.where(Sample.client_name.contains(client, autoescape=True))
    site = "".join((site or "").split()).upper()[:20]
    if site:
        query = query.where(Sample.site_id.in_(select(Site.id).where(func.upper(Site.code) == site)))
    text = "".join((text or "").split()).upper()[:40]
    if text:
        query = query.where(func.upper(Sample.sample_no).contains(text, autoescape=True))
    size = min(max(1, size), MAX_PAGE_SIZE)
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(session.scalars(query.order_by(Sample.sample_no).limit(size).offset((page - 1) * size)))
    return Page(items, page, size, total)


def _sample_nos(sample_nos: Sequence[str] | str) -> list[str]:
    """Sample numbers as typed or scanned (a string splits on whitespace and commas), once each."""
    items = re.split(r"[\s,，;；]+", sample_nos) if isinstance(sample_nos, str) else list(sample_nos)
    cleaned = [n for n in ("".join((item or "").split())[:40] for item in items) if n]
    return list(dict.fromkeys(cleaned))


def assert_samples_reportable(session: Session, samples: Iterable[Sample], *, amends: Report | None = None,
                              report: Report | None = None) -> None:
    """Each sample is in `results_entered` and on no live report other than `report` itself or
    the original an amendment replaces (`amends`, with its own earlier amendments). Two queries."""
    samples = list(samples)
    for sample in samples:
        if sample.state not in REPORTABLE_STATES:
            raise errors.SampleNotReportable(sample_no=sample.sample_no, state=sample.state)
    ids = [s.id for s in samples]
    if not ids:
        return
    rows = session.execute(_live_reports().where(ReportSample.sample_id.in_(ids))).all()
    numbers = {s.id: s.sample_no for s in samples}
    for sample_id, report_no, base_no in rows:
        if report is not None and report_no == report.report_no:
            continue
        if amends is not None and base_no == amends.base_no:
            continue
        raise errors.SampleAlreadyReported(sample_no=numbers[sample_id], report_no=report_no)


def _samples_by_no(session: Session, numbers: list[str]) -> list[Sample]:
    if not numbers:
        raise errors.ReportNeedsSamples()
    if len(numbers) > MAX_SAMPLES:
        raise errors.TooManySamples(limit=MAX_SAMPLES, count=len(numbers))
    wanted = sorted(set(numbers) | {n.upper() for n in numbers})  # letter case forgiven, as on scanning
    found = {s.sample_no: s for s in session.scalars(select(Sample).where(Sample.sample_no.in_(wanted)))}
    missing = [n for n in numbers if n not in found and n.upper() not in found]
    if missing:
        raise errors.ReportSampleNotFound(sample_no=", ".join(missing[:10]))
    return list({s.id: s for s in (found.get(n) or found[n.upper()] for n in numbers)}.values())


# ---------------------------------------------------------------- the header


def _field(name: str, value: Any) -> str:
    text = " ".join(str(value or "").split()) if name != "remarks" else str(value or "").strip()
    if len(text) > LIMITS[name]:
        zh, en = FIELD_WORDS[name]
        raise errors.ReportFieldInvalid(field_zh=zh, field_en=en, problem_zh=f"最多 {LIMITS[name]} 个字符。",
                                        problem_en=f"at most {LIMITS[name]} characters.")
    return text


def _header(session: Session, *, title: Any, client_name: Any, client_contact: Any, language: Any,
            limit_set_id: Any, target_class: Any, remarks: Any, samples: Sequence[Sample]) -> dict[str, Any]:
    header = {name: _field(name, value) for name, value in (
        ("title", title), ("client_name", client_name), ("client_contact", client_contact),
        ("target_class", target_class), ("remarks", remarks))}
    if not header["title"]:
        raise errors.ReportFieldInvalid(field_zh="报告标题", field_en="The title", problem_zh="不能为空。",
                                        problem_en="it is required.")
    if not header["client_name"]:
        names = list(dict.fromkeys(s.client_name.strip() for s in samples if s.client_name.strip()))
        header["client_name"] = "；".join(names)[:LIMITS["client_name"]]
    if not header["client_contact"]:
        contacts = list(dict.fromkeys(s.client_contact.strip() for s in samples if s.client_contact.strip()))
        header["client_contact"] = contacts[0][:LIMITS["client_contact"]] if len(contacts) == 1 else ""
    language = (language or "").strip().lower()
    if language not in {item.value for item in ReportLanguage}:
        raise errors.InvalidReportLanguage(language=language[:10])
    header["language"] = language
    if limit_set_id in ("", None):
        header["limit_set_id"] = None
    else:
        try:
            wanted = int(limit_set_id)
        except (TypeError, ValueError):
            raise errors.LimitSetNotFound(limit_set=str(limit_set_id)[:20]) from None
        if not 0 < wanted < 2**31 or session.get(LimitSet, wanted) is None:
            raise errors.LimitSetNotFound(limit_set=str(wanted))
        header["limit_set_id"] = wanted
    return header


def _assert_draft(report: Report) -> None:
    if report.state != ReportState.DRAFT.value:
        raise errors.ReportNotEditable(report_no=report.report_no, state=report.state)


def _record(report: Report) -> dict[str, Any]:
    return {"report_no": report.report_no, "title": report.title, "client_name": report.client_name,
            "client_contact": report.client_contact, "language": report.language,
            "limit_set_id": report.limit_set_id, "target_class": report.target_class, "remarks": report.remarks,
            "state": report.state}


def create_report(session: Session, actor: User, *, title: str, client_name: str = "", client_contact: str = "",
                  language: str = "zh", limit_set_id: int | None = None, target_class: str = "",
                  remarks: str = "", sample_nos: Sequence[str] | str) -> Report:
    """A new draft over these samples, numbered by the lab's pattern; the client defaults to the
    samples' client. Audited as `reports.created`."""
    ensure(session, actor, Permission.REPORTS_PREPARE)
    samples = _samples_by_no(session, _sample_nos(sample_nos))
    assert_samples_reportable(session, samples)
    header = _header(session, title=title, client_name=client_name, client_contact=client_contact,
                     language=language, limit_set_id=limit_set_id, target_class=target_class, remarks=remarks,
                     samples=samples)
    now = utcnow()
    number = next_report_no(session, lab_calendar(session).local_date(now))
    report = Report(report_no=number, base_no=number, state=ReportState.DRAFT.value, prepared_by_id=actor.id,
                    created_at=now, verify_token=secrets.token_urlsafe(24), **header)
    session.add(report)
    session.flush()
    session.add_all([ReportSample(report_id=report.id, sample_id=s.id, position=i)
                     for i, s in enumerate(samples, start=1)])
    session.flush()
    audit.append(session, actor, "reports.created", "report", report.id, None,
                 {**_record(report), "samples": [s.sample_no for s in samples]})
    return report


def update_header(session: Session, actor: User, report: Report, *, title: str, client_name: str,
                  client_contact: str, language: str, limit_set_id: int | None, target_class: str,
                  remarks: str) -> Report:
    """Replace the draft's header (the form sends all of it). Audited with before and after."""
    ensure(session, actor, Permission.REPORTS_PREPARE)
    report = _locked(session, report)
    _assert_draft(report)
    samples = review_samples(session, report)
    header = _header(session, title=title, client_name=client_name, client_contact=client_contact,
                     language=language, limit_set_id=limit_set_id, target_class=target_class, remarks=remarks,
                     samples=samples)
    before = _record(report)
    for name, value in header.items():
        setattr(report, name, value)
    session.flush()
    after = _record(report)
    changed = [k for k in after if after[k] != before[k]]
    audit.append(session, actor, "reports.header_updated", "report", report.id,
                 {k: before[k] for k in changed}, {"report_no": report.report_no, **{k: after[k] for k in changed}})
    return report


def review_samples(session: Session, report: Report) -> list[Sample]:
    """The samples of a report, in print order."""
    return list(session.scalars(select(Sample).join(ReportSample, ReportSample.sample_id == Sample.id)
                                .where(ReportSample.report_id == report.id).order_by(ReportSample.position)))


def add_samples(session: Session, actor: User, report: Report, sample_nos: Sequence[str] | str) -> Report:
    """Add reportable samples to a draft, after the ones it has. Audited."""
    ensure(session, actor, Permission.REPORTS_PREPARE)
    report = _locked(session, report)
    _assert_draft(report)
    present = review_samples(session, report)
    have = {s.sample_no.upper() for s in present}
    wanted = [n for n in _sample_nos(sample_nos) if n.upper() not in have]
    if len(present) + len(wanted) > MAX_SAMPLES:
        raise errors.TooManySamples(limit=MAX_SAMPLES, count=len(present) + len(wanted))
    samples = _samples_by_no(session, wanted)
    assert_samples_reportable(session, samples, report=report,
                              amends=session.get(Report, report.amends_id) if report.amends_id else None)
    last = session.scalar(select(func.max(ReportSample.position)).where(ReportSample.report_id == report.id)) or 0
    session.add_all([ReportSample(report_id=report.id, sample_id=s.id, position=last + i)
                     for i, s in enumerate(samples, start=1)])
    session.flush()
    audit.append(session, actor, "reports.samples_added", "report", report.id, None,
                 {"report_no": report.report_no, "samples": [s.sample_no for s in samples]})
    return report


def remove_sample(session: Session, actor: User, report: Report, sample_no: str) -> Report:
    """Take a sample off a draft (a report keeps at least one). Audited."""
    ensure(session, actor, Permission.REPORTS_PREPARE)
    report = _locked(session, report)
    _assert_draft(report)
    number = "".join((sample_no or "").split())[:40]
    present = review_samples(session, report)
    sample = next((s for s in present if s.sample_no.upper() == number.upper()), None)
    if sample is None:
        raise errors.SampleNotOnReport(sample_no=number or "—", report_no=report.report_no)
    if len(present) == 1:
        raise errors.ReportNeedsSamples()
    row = session.scalars(select(ReportSample).where(ReportSample.report_id == report.id,
                                                     ReportSample.sample_id == sample.id)).one()
    session.delete(row)
    session.flush()
    audit.append(session, actor, "reports.sample_removed", "report", report.id, {"sample_no": sample.sample_no},
                 {"report_no": report.report_no})
    return report


# ---------------------------------------------------------------- submitting (编制 signed)


def pending_lines(content: ReportContent) -> list[str]:
    """'S-001 NH3-N' for every requested parameter without a result of record or a reason."""
    return [f"{s.sample.sample_no} {line.parameter}" for s, line in content.lines() if line.pending]


def broken_batches(session: Session, content: ReportContent) -> list[AnalysisBatch]:
    """Batches of the report's results whose analyst signature no longer holds (or is missing);
    every batch checked in a fixed number of queries."""
    batches = sorted(content.batches.values(), key=lambda b: b.batch_no)
    views = signature_views(session, batches)
    return [b for b in batches if views[b.id] is None or views[b.id].broken]


def submit_report(session: Session, preparer: User, report: Report, password: str) -> Report:
    """The preparer signs the content (`compiled`) and the report goes to 校核. Refused while a
    line is pending or a batch's analyst signature is broken (the analyst re-signs first)."""
    ensure(session, preparer, Permission.REPORTS_PREPARE)
    report = _locked(session, report)
    content = load_content(session, report)
    review.sync_state(session, report, content)  # a stale state (data moved) is corrected first
    _assert_draft(report)
    if preparer.id != report.prepared_by_id:
        owner = session.get(User, report.prepared_by_id)
        raise errors.NotThePreparer(preparer=owner.printed_name if owner else "—", report_no=report.report_no)
    if not content.samples:
        raise errors.ReportNeedsSamples()
    pending = pending_lines(content)
    if pending:
        raise errors.ReportIncomplete(pending="; ".join(pending[:20]) + (" …" if len(pending) > 20 else ""))
    broken = broken_batches(session, content)
    if broken:
        raise errors.BatchSignatureBroken(batches=", ".join(b.batch_no for b in broken))
    review.assert_may_act(session, preparer, report, content, ReviewLevel.COMPILE)
    signature = sign(session, preparer, password, SignatureMeaning.COMPILED, SIGNED_ENTITY, report.id,
                     content.signed_content())
    act = review.record_act(session, preparer, report, content, ReviewLevel.COMPILE, ReviewOutcome.SIGNED,
                            signature=signature)
    before = report.state
    report.submitted_at = act.acted_at
    state = review.sync_state(session, report, content)
    audit.append(session, preparer, "reports.submitted", "report", report.id, {"state": before}, {
        "report_no": report.report_no, "state": state, "signature_id": signature.id,
        "content_sha256": act.content_sha256, "review_act_id": act.id})
    return report

