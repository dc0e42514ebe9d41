"""Report drafts: the reportable-samples list, creation with its number and refusals, header and
sample edits in draft only, and the preparer's signature (incomplete content, a broken batch
signature, a wrong password refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.analysis.models import NotAnalysed
from app.core.audit import AuditEvent
from app.core.db import Database
from app.core.errors import DomainError, RecordedRefusal
from app.core.labtime import lab_calendar
from app.core.signatures import ElectronicSignature
from app.reports import drafts, review
from app.reports.content import load_content
from app.reports.models import Report, ReportSample, ReportState, ReviewAct
from app.samples.models import Sample, SampleNumberCounter, SampleParameter, SampleState
from tests.analysis.qc_fixtures import enter
from tests.conftest import PASSWORD, make_user
from tests.reports.conftest import make_report

# ---------------------------------------------------------------- helpers shared by the report-workflow tests


def act(db: Database, service: Callable[..., Any], actor: Any, report: Report | None, *args: Any,
        **kw: Any) -> Report:
    """Run a report service in its own committed transaction (the report re-read inside it)."""
    with db.transaction() as session:
        fresh = session.get(Report, report.id) if report is not None else None
        result = service(session, actor, fresh, *args, **kw) if report is not None else service(session, actor, *args,
                                                                                                 **kw)
        session.flush()
        if isinstance(result, Report):
            session.expunge(result)
        return result


def counts(db: Database) -> dict[str, int]:
    """Rows the report acts write: a refusal changes none of them."""
    with db.reading() as session:
        made = {model.__name__: session.scalar(select(func.count()).select_from(model)) for model in
                (Report, ReportSample, ReviewAct, ElectronicSignature, AuditEvent, SampleNumberCounter)}
        made["states"] = tuple(session.scalars(select(Report.state).order_by(Report.id)))
        return made


def refused(db: Database, do: Callable[[], Any], code: str, *, recorded: bool = False) -> DomainError:
    """`do` is refused with `code` and nothing changes (a recorded refusal adds its audit event only)."""
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        do()
    assert caught.value.code == code, (caught.value.code, caught.value.message("en"))
    after = counts(db)
    if recorded:
        assert isinstance(caught.value, RecordedRefusal)
        assert after.pop("AuditEvent") > before.pop("AuditEvent")
    assert after == before
    return caught.value


def state_of(db: Database, report: Report) -> str:
    with db.reading() as session:
        return session.get(Report, report.id).state


def audit_actions(db: Database, report: Report) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.entity_type == "report", AuditEvent.entity_id == str(report.id)).order_by(AuditEvent.seq)))


def submitted(db: Database, reportable: Any) -> Report:
    """A draft over the reportable samples, created and submitted by the preparer."""
    report = act(db, drafts.create_report, reportable.preparer, None, title="地表水监测报告",
                 sample_nos=[s.sample_no for s in reportable.samples])
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    return report


def mark_reportable(db: Database, samples: list[Sample]) -> None:
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id.in_([s.id for s in samples]))
                        .values(state=SampleState.RESULTS_ENTERED.value))


# ---------------------------------------------------------------- the list of reportable samples


def test_reportable_samples_lists_results_entered_samples_on_no_live_report(db, reportable, count_queries):
    with db.reading() as session:
        page = drafts.reportable_samples(session)
        assert [s.sample_no for s in page.items] == sorted(s.sample_no for s in reportable.samples)
        assert page.total == 2
        first = reportable.samples[0].sample_no
        assert [s.sample_no for s in drafts.reportable_samples(session, text=first[-3:]).items] == [first]
        assert drafts.reportable_samples(session, client="no such client").total == 0
    report = make_report(db, reportable.preparer, reportable.samples[:1])
    with db.reading() as session:
        with count_queries() as counted:
            page = drafts.reportable_samples(session)
        assert [s.sample_no for s in page.items] == [reportable.samples[1].sample_no]
    assert counted.count <= 2
    with db.transaction() as session:  # a withdrawn report frees its samples
        session.get(Report, report.id).state = ReportState.WITHDRAWN.value
    with db.reading() as session:
        assert drafts.reportable_samples(session).total == 2


# ---------------------------------------------------------------- creating


def test_create_report_numbers_by_the_pattern_and_takes_the_client_from_the_samples(db, reportable):
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id.in_([s.id for s in reportable.samples]))
                        .values(client_name="市生态环境局"))
    report = act(db, drafts.create_report, reportable.preparer, None, title="  地表水  监测报告 ",
                 sample_nos=f"{reportable.samples[1].sample_no.lower()}, {reportable.samples[0].sample_no}")
    with db.reading() as session:
        row = session.get(Report, report.id)
        year = row.created_at.year
        assert row.report_no == f"BG{year}-0001" and row.base_no == row.report_no
        assert row.title == "地表水 监测报告" and row.client_name == "市生态环境局" and row.language == "zh"
        assert row.state == ReportState.DRAFT.value and len(row.verify_token) >= 30
        assert [s.sample_no for s in drafts.review_samples(session, row)] == \
            [reportable.samples[1].sample_no, reportable.samples[0].sample_no]
    assert audit_actions(db, report) == ["reports.created"]


def test_numbers_follow_the_lab_setting_and_a_refused_draft_leaves_no_gap(db, reportable, settings):
    settings.report_no_pattern = "R{yyMMdd}-{seq:03}"
    nos = [s.sample_no for s in reportable.samples]
    refused(db, lambda: act(db, drafts.create_report, reportable.preparer, None, title="x", language="fr",
                            sample_nos=nos[:1]), "invalid_report_language")
    first = act(db, drafts.create_report, reportable.preparer, None, title="一", sample_nos=nos[:1])
    second = act(db, drafts.create_report, reportable.preparer, None, title="二", sample_nos=nos[1:])
    with db.reading() as session:
        day = lab_calendar(session).local_date(session.get(Report, first.id).created_at)
    assert (first.report_no, second.report_no) == (f"R{day:%y%m%d}-001", f"R{day:%y%m%d}-002")


@pytest.mark.parametrize(("case", "code"), [
    ("no_samples", "report_needs_samples"), ("unknown_sample", "sample_not_found"),
    ("not_ready", "sample_not_reportable"), ("already_reported", "sample_already_reported"),
    ("no_title", "report_field_invalid"), ("bad_limit_set", "limit_set_not_found"),
    ("bad_language", "invalid_report_language"), ("not_a_preparer", "permission_denied"),
    ("site_in_pattern", "invalid_report_no_pattern"),
])
def test_create_report_refusals_change_nothing(db, users, reportable, settings, case, code):
    nos = [s.sample_no for s in reportable.samples]
    actor = reportable.preparer
    kw: dict[str, Any] = {"title": "报告", "sample_nos": nos}
    if case == "no_samples":
        kw["sample_nos"] = "  ,  "
    elif case == "unknown_sample":
        kw["sample_nos"] = [nos[0], "NOPE-1"]
    elif case == "not_ready":
        with db.transaction() as session:
            session.get(Sample, reportable.samples[1].id).state = SampleState.IN_ANALYSIS.value
    elif case == "already_reported":
        make_report(db, reportable.preparer, reportable.samples[1:])
    elif case == "no_title":
        kw["title"] = "   "
    elif case == "bad_limit_set":
        kw["limit_set_id"] = 999_999
    elif case == "bad_language":
        kw["language"] = "de"
    elif case == "not_a_preparer":
        actor = users["checker"]
    elif case == "site_in_pattern":
        settings.report_no_pattern = "{site}-{yyyy}-{seq}"
    error = refused(db, lambda: act(db, drafts.create_report, actor, None, **kw), code)
    if case == "unknown_sample":
        assert "NOPE-1" in error.message("en")
    if case in ("not_ready", "already_reported"):
        assert nos[1] in error.message("zh")


def test_report_by_no_is_a_404_for_an_unknown_number(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.reading() as session:
        assert drafts.report_by_no(session, f" {report.report_no} ").id == report.id
        with pytest.raises(DomainError) as caught:
            drafts.report_by_no(session, "BG1999-9999")
    assert caught.value.code == "report_not_found" and caught.value.http_status == 404


# ---------------------------------------------------------------- editing a draft


def test_header_and_samples_change_in_draft_only(db, reportable):
    nos = [s.sample_no for s in reportable.samples]
    report = act(db, drafts.create_report, reportable.preparer, None, title="报告", sample_nos=nos[:1])
    act(db, drafts.update_header, reportable.preparer, report, title="新标题", client_name="某公司",
        client_contact="张三 139", language="en", limit_set_id=None, target_class="III", remarks="备注\n第二行")
    act(db, drafts.add_samples, reportable.preparer, report, [nos[1], nos[0]])
    with db.reading() as session:
        row = session.get(Report, report.id)
        assert (row.title, row.client_name, row.language, row.target_class, row.remarks) == \
            ("新标题", "某公司", "en", "III", "备注\n第二行")
        assert [s.sample_no for s in drafts.review_samples(session, row)] == nos
    refused(db, lambda: act(db, drafts.remove_sample, reportable.preparer, report, "NOPE-1"), "sample_not_on_report")
    act(db, drafts.remove_sample, reportable.preparer, report, nos[0])
    refused(db, lambda: act(db, drafts.remove_sample, reportable.preparer, report, nos[1]), "report_needs_samples")
    assert audit_actions(db, report) == ["reports.created", "reports.header_updated", "reports.samples_added",
                                         "reports.sample_removed"]
    act(db, drafts.add_samples, reportable.preparer, report, nos[0])
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    refused(db, lambda: act(db, drafts.update_header, reportable.preparer, report, title="x", client_name="",
                            client_contact="", language="zh", limit_set_id=None, target_class="", remarks=""),
            "report_not_editable")
    refused(db, lambda: act(db, drafts.add_samples, reportable.preparer, report, nos[0]), "report_not_editable")
    refused(db, lambda: act(db, drafts.remove_sample, reportable.preparer, report, nos[0]), "report_not_editable")


# ---------------------------------------------------------------- submitting


def test_submit_signs_compiled_over_the_content_and_awaits_check(db, reportable):
    report = submitted(db, reportable)
    assert state_of(db, report) == ReportState.SUBMITTED.value
    with db.reading() as session:
        row = session.get(Report, report.id)
        content = load_content(session, row)
        signature = review.level_signatures(session, row, content)[review.ReviewLevel.COMPILE]
        assert signature is not None and signature.meaning == "compiled"
        assert signature.content_hash == content.content_sha256 and signature.signer_id == reportable.preparer.id
        assert review.next_level(session, row, content) is review.ReviewLevel.CHECK
        assert row.submitted_at is not None
    assert audit_actions(db, report)[-2:] == ["signature.compiled", "reports.submitted"]


def test_submit_refusals_change_nothing(db, users, reportable):
    nos = [s.sample_no for s in reportable.samples]
    report = act(db, drafts.create_report, reportable.preparer, None, title="报告", sample_nos=nos)
    refused(db, lambda: act(db, drafts.submit_report, reportable.preparer, report, "wrong password"),
            "wrong_signing_password", recorded=True)
    other = make_user(db, "other-preparer", "analyst")
    refused(db, lambda: act(db, drafts.submit_report, other, report, PASSWORD), "not_the_preparer")
    refused(db, lambda: act(db, drafts.submit_report, users["checker"], report, PASSWORD), "permission_denied")
    # a requested parameter without a result nor a reason: named
    with db.transaction() as session:
        session.add(SampleParameter(sample_id=reportable.samples[0].id, parameter="TP"))
    error = refused(db, lambda: act(db, drafts.submit_report, reportable.preparer, report, PASSWORD),
                    "report_incomplete")
    assert f"{nos[0]} TP" in error.message("en")
    with db.transaction() as session:  # a "not analysed" reason completes it
        session.add(NotAnalysed(sample_id=reportable.samples[0].id, parameter="TP", reason="样品量不足，无法分析总磷",
                                recorded_at=reportable.bench.batch.created_at, recorded_by_id=reportable.analyst.id))
    # a result revised after the analyst signed: the analyst signs the corrected batch first
    enter(db, reportable.bench, {"S-001": "0.515"}, reason="transcription error corrected")
    error = refused(db, lambda: act(db, drafts.submit_report, reportable.preparer, report, PASSWORD),
                    "batch_signature_broken")
    assert reportable.bench.batch.batch_no in error.message("en")
    from tests.reports.test_review import resign

    resign(db, reportable)
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    assert state_of(db, report) == ReportState.SUBMITTED.value
    refused(db, lambda: act(db, drafts.submit_report, reportable.preparer, report, PASSWORD), "report_not_editable")


def test_a_draft_is_not_submitted_twice_by_a_stale_state(db, reportable):
    report = submitted(db, reportable)
    assert state_of(db, report) == ReportState.SUBMITTED.value
    enter(db, reportable.bench, {"S-002": "0.210"}, reason="recalculated with the right dilution")
    with db.transaction() as session:  # the data moved: the preparer's signature no longer holds
        row = session.get(Report, report.id)
        assert review.sync_state(session, row, load_content(session, row)) == ReportState.DRAFT.value
    assert state_of(db, report) == ReportState.DRAFT.value


def test_a_rolled_back_number_is_handed_out_again(db, reportable):
    from app.reports.numbering import next_report_no

    with db.reading() as session:
        day = lab_calendar(session).today()
    with pytest.raises(RuntimeError), db.transaction() as session:
        assert next_report_no(session, day) == f"BG{day:%Y}-0001"
        raise RuntimeError("the draft failed after taking its number")
    with db.transaction() as session:
        assert next_report_no(session, day) == f"BG{day:%Y}-0001"
        assert next_report_no(session, day) == f"BG{day:%Y}-0002"


def test_concurrent_drafts_never_share_a_number(pg_db, reportable):
    from tests.conftest import race

    def create(sample):
        return lambda session: drafts.create_report(session, reportable.preparer, title="并发",
                                                    sample_nos=[sample.sample_no]).report_no

    numbers = race(pg_db, create(reportable.samples[0]), create(reportable.samples[1]))
    assert all(isinstance(n, str) for n in numbers), numbers
    assert sorted(n[-4:] for n in numbers) == ["0001", "0002"]
