"""The three-level review: check and review in order as e-signatures over the content, the
checklist blocking a level, returns with a reason, and where review restarts: at the level that
returned when nothing changed, at 校核 after a data correction (the analyst re-signs the batch)."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from app.analysis import submission
from app.analysis.models import AnalysisBatch
from app.core.signatures import ElectronicSignature
from app.reports import drafts, review
from app.reports.content import load_content
from app.reports.models import Report, ReportState, ReviewAct, ReviewLevel
from tests.analysis.qc_fixtures import enter
from tests.conftest import PASSWORD
from tests.reports.test_drafts import act, audit_actions, refused, state_of, submitted

CHECK, REVIEW, APPROVE = ReviewLevel.CHECK, ReviewLevel.REVIEW, ReviewLevel.APPROVE


def resign(db, reportable) -> None:
    """The analyst signs the corrected batch again."""
    with db.transaction() as session:
        submission.resign_batch(session, reportable.analyst, session.get(AnalysisBatch, reportable.bench.batch.id),
                                PASSWORD)


def holding(db, report) -> dict[ReviewLevel, int | None]:
    """Per level, the signer of the signature that holds now (None: the level does not hold)."""
    with db.reading() as session:
        row = session.get(Report, report.id)
        signatures = review.level_signatures(session, row)
        return {level: s.signer_id if s else None for level, s in signatures.items()}


def awaited(db, report) -> ReviewLevel | None:
    with db.reading() as session:
        row = session.get(Report, report.id)
        return review.next_level(session, row, load_content(session, row))


def test_check_then_review_sign_over_the_content_in_order(db, reportable):
    report = submitted(db, reportable)
    refused(db, lambda: act(db, review.review_report, reportable.reviewer, report, PASSWORD), "review_out_of_order")
    act(db, review.check_report, reportable.checker, report, PASSWORD, comment="原始记录与数据一致")
    assert state_of(db, report) == ReportState.CHECKED.value
    refused(db, lambda: act(db, review.check_report, reportable.checker, report, PASSWORD), "review_out_of_order")
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    assert state_of(db, report) == ReportState.REVIEWED.value
    assert awaited(db, report) is APPROVE
    assert holding(db, report) == {ReviewLevel.COMPILE: reportable.preparer.id, CHECK: reportable.checker.id,
                                   REVIEW: reportable.reviewer.id, APPROVE: None}
    with db.reading() as session:
        acts = list(session.scalars(select(ReviewAct).where(ReviewAct.report_id == report.id).order_by(ReviewAct.id)))
        signatures = {s.id: s for s in session.scalars(select(ElectronicSignature).where(
            ElectronicSignature.id.in_([a.signature_id for a in acts])))}
        content = load_content(session, session.get(Report, report.id))
        assert [(a.level, a.outcome) for a in acts] == [("compile", "signed"), ("check", "signed"),
                                                        ("review", "signed")]
        assert [signatures[a.signature_id].meaning for a in acts] == ["compiled", "checked", "reviewed"]
        assert {a.content_sha256 for a in acts} == {content.content_sha256}
        assert acts[1].reason == "原始记录与数据一致"
        shown = json.loads(acts[1].checklist)
    assert [i["code"] for i in shown["items"]][:3] == ["completeness", "qc", "holding"]
    assert audit_actions(db, report)[-4:] == ["signature.checked", "reports.checked", "signature.reviewed",
                                              "reports.reviewed"]


def test_a_wrong_password_at_a_level_is_recorded_and_nothing_else_changes(db, reportable):
    report = submitted(db, reportable)
    refused(db, lambda: act(db, review.check_report, reportable.checker, report, "nope"), "wrong_signing_password",
            recorded=True)
    assert state_of(db, report) == ReportState.SUBMITTED.value


def test_a_return_that_changed_nothing_resumes_at_the_level_that_returned(db, reportable):
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    refused(db, lambda: act(db, review.return_report, reportable.reviewer, report, "太短"), "return_reason_required")
    act(db, review.return_report, reportable.reviewer, report, "请补充现场记录的照片说明后再提交")
    assert state_of(db, report) == ReportState.DRAFT.value
    assert holding(db, report)[ReviewLevel.COMPILE] is None  # the preparer re-submits
    assert holding(db, report)[CHECK] == reportable.checker.id  # the check stands
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    assert state_of(db, report) == ReportState.CHECKED.value
    assert awaited(db, report) is REVIEW
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    assert state_of(db, report) == ReportState.REVIEWED.value
    with db.reading() as session:
        row = session.get(Report, report.id)
        history = review.review_history(session, row)
        assert [(v.level.value, v.outcome, v.holds) for v in history] == [
            ("compile", "signed", False), ("check", "signed", True), ("review", "returned", False),
            ("compile", "signed", True), ("review", "signed", True)]
        assert history[2].reason == "请补充现场记录的照片说明后再提交" and history[2].actor.id == reportable.reviewer.id
    actions = audit_actions(db, report)
    assert "reports.returned" in actions


def test_a_data_correction_restarts_review_at_check(db, reportable):
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    act(db, review.return_report, reportable.signatory, report, "S-001 氨氮与原始记录不符，请核对")
    assert state_of(db, report) == ReportState.DRAFT.value
    # the analyst corrects the result (a new revision with a reason) and signs the batch again
    enter(db, reportable.bench, {"S-001": "0.521"}, reason="transcription error: 0.512 read as 0.521")
    resign(db, reportable)
    with db.reading() as session:
        history = review.review_history(session, session.get(Report, report.id))
        assert [v.intact for v in history if v.outcome == "signed"] == [False, False, False]  # over the old data
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    assert state_of(db, report) == ReportState.SUBMITTED.value
    assert awaited(db, report) is CHECK
    refused(db, lambda: act(db, review.review_report, reportable.reviewer, report, PASSWORD), "review_out_of_order")
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    assert state_of(db, report) == ReportState.REVIEWED.value


def test_a_correction_without_a_return_breaks_the_signatures_too(db, reportable):
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    enter(db, reportable.bench, {"S-002": "0.205"}, reason="recalculated: wrong dilution factor")
    assert awaited(db, report) is ReviewLevel.COMPILE
    refused(db, lambda: act(db, review.review_report, reportable.reviewer, report, PASSWORD), "review_out_of_order")


def test_return_refusals(db, users, reportable):
    report = submitted(db, reportable)
    refused(db, lambda: act(db, review.return_report, users["reviewer"], report, "不在当前环节的人退回"),
            "permission_denied")  # the report awaits check: a reviewer may not act there
    refused(db, lambda: act(db, review.return_report, reportable.analyst, report, "分析人不能退回报告的"),
            "permission_denied")
    act(db, review.return_report, reportable.checker, report, "请核对样品编号与现场记录")
    refused(db, lambda: act(db, review.return_report, reportable.checker, report, "已经是草稿了还退回"),
            "report_not_in_review")


def test_the_checklist_blocks_a_level_while_a_batch_signature_is_broken(db, reportable):
    report = submitted(db, reportable)
    # a QC result of the batch is revised: the report's own lines are unchanged (the levels still
    # hold), but the analyst's signature of the batch no longer does
    enter(db, reportable.bench, {"BLK1": "0.019"}, reason="blank re-read: cuvette was not rinsed")
    assert awaited(db, report) is CHECK
    error = refused(db, lambda: act(db, review.check_report, reportable.checker, report, PASSWORD),
                    "checklist_blocks")
    assert reportable.bench.batch.batch_no in error.message("en")


def test_comment_too_long_is_refused(db, reportable):
    report = submitted(db, reportable)
    refused(db, lambda: act(db, review.check_report, reportable.checker, report, PASSWORD, comment="x" * 1001),
            "review_comment_too_long")


def test_resign_batch_only_when_broken(db, reportable, users):
    with pytest.raises(submission.BatchSignatureIntact):
        resign(db, reportable)
    enter(db, reportable.bench, {"S-001": "0.513"}, reason="transcription error corrected")
    with db.transaction() as session, pytest.raises(Exception) as caught:
        submission.resign_batch(session, users["checker"], session.get(AnalysisBatch, reportable.bench.batch.id),
                                PASSWORD)
    assert caught.value.code == "permission_denied"
    resign(db, reportable)
    with db.reading() as session:
        batch = session.get(AnalysisBatch, reportable.bench.batch.id)
        view = submission.signature_view(session, batch)
        assert batch.state == "submitted" and view.intact and view.signature.signer_id == reportable.analyst.id
    with db.reading() as session:
        from app.core.audit import AuditEvent

        assert session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "analysis_batch")
                               .order_by(AuditEvent.seq.desc())).first() == "analysis.batch_resigned"


def test_two_checkers_at_once_sign_once(pg_db, reportable):
    """The report row is locked per act: the second checker finds the level already taken."""
    from tests.analysis.conftest import qualify
    from tests.conftest import make_user, race

    report = submitted(pg_db, reportable)
    other = make_user(pg_db, "second-checker", "checker")
    qualify(pg_db, other, reportable.method.method_id)

    def check(user):
        return lambda session: review.check_report(session, user, session.get(Report, report.id), PASSWORD)

    results = race(pg_db, check(reportable.checker), check(other))
    refusals = [r for r in results if isinstance(r, Exception)]
    assert len(refusals) == 1 and refusals[0].code == "review_out_of_order", results
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(ReviewAct).where(
            ReviewAct.report_id == report.id, ReviewAct.level == "check")) == 1


def test_reports_past_review_take_no_level_act(db, reportable):
    report = submitted(db, reportable)
    with db.transaction() as session:
        session.get(Report, report.id).state = ReportState.ISSUED.value
    refused(db, lambda: act(db, review.check_report, reportable.checker, report, PASSWORD), "report_not_in_review")
    refused(db, lambda: act(db, review.return_report, reportable.checker, report, "已出具的报告不能退回"),
            "report_not_in_review")
    with db.transaction() as session:  # sync_state leaves a report past review alone
        row = session.get(Report, report.id)
        assert review.sync_state(session, row, load_content(session, row)) == ReportState.ISSUED.value


def test_the_history_and_level_signatures_load_in_a_fixed_number_of_queries(db, reportable, count_queries):
    report = submitted(db, reportable)
    used = []
    for _ in range(2):
        with db.reading() as session:
            row = session.get(Report, report.id)
            content = load_content(session, row)
            with count_queries() as counted:
                review.level_signatures(session, row, content)
            used.append(counted.count)
        act(db, review.return_report, reportable.checker, report, "请核对现场记录中的采样时间")
        act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    assert used == [1, 1]


def test_reports_under_changed_data_are_resynced_and_audited(db, reportable, users):
    from app.core.audit import SYSTEM

    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    sample_ids = [s.id for s in reportable.samples]
    with db.transaction() as session:
        assert review.resync_reports_of_samples(session, SYSTEM, sample_ids) == []  # nothing moved
    enter(db, reportable.bench, {"S-002": "0.207"}, reason="recalculated: wrong dilution factor")
    with db.transaction() as session:
        assert review.resync_reports_of_samples(session, SYSTEM, sample_ids) == [report.report_no]
    assert state_of(db, report) == ReportState.DRAFT.value
    assert audit_actions(db, report)[-1] == "reports.state_synced"


def test_a_result_revised_through_the_service_resyncs_the_reports_above_it(db, reportable):
    """The results service tells the reports (through the core registry, not an import): a
    checked report whose data an analyst corrects goes back to the preparer, audited."""
    from app.analysis import results
    from app.people.models import User

    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    assert state_of(db, report) == ReportState.CHECKED.value
    position = reportable.bench.at("S-002")
    with db.transaction() as session:
        batch = session.get(AnalysisBatch, reportable.bench.batch.id)
        results.record_results(session, session.get(User, reportable.analyst.id), batch,
                               [results.ReadingInput(position.id, "NH3-N", D("0.0410"), "", D("1"), None, "")],
                               reason="recalculated: wrong dilution factor")
    assert state_of(db, report) == ReportState.DRAFT.value
    assert "reports.state_synced" in audit_actions(db, report)
