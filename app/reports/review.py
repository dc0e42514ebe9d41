"""The three-level review (三级审核: 校核 → 审核 → 签发) and separation of duties (issue 9;
DOMAIN.md §2 rule 1, §3 Report).

Every act is a `ReviewAct`: signed (an e-signature over the report's content) or returned with a
reason. The state follows from the acts, never from a counter: a level holds when its latest
signed act was made over the content as it is now and no later return cancelled it. A return at
a level cancels the preparer's signature (the preparer re-submits) and the signatures of that
level and the ones after it; the earlier levels stand while the content is unchanged. So after a
return that changed nothing, review resumes at the level that returned; after a data correction
(a new result revision moves the content hash) every signature over the old content is broken
and review restarts at 校核.

The approve act (签发) is built by `app.reports.issue.approve_report`, which calls
`assert_may_act(..., ReviewLevel.APPROVE)` and `record_act`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisResult, ResultImport
from app.analysis.qualifications import assert_analyst_qualified
from app.core import audit
from app.core.canonical import canonical_json, content_hash
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, sign
from app.people.models import User
from app.reports import review_errors as errors
from app.reports.content import ReportContent, load_content
from app.reports.models import Report, ReportState, ReviewAct, ReviewLevel, ReviewOutcome

SIGNED_ENTITY = "report"
LEVELS = (ReviewLevel.COMPILE, ReviewLevel.CHECK, ReviewLevel.REVIEW, ReviewLevel.APPROVE)
RANK = {level: i for i, level in enumerate(LEVELS)}
PERMISSION = {
    ReviewLevel.COMPILE: Permission.REPORTS_PREPARE, ReviewLevel.CHECK: Permission.REPORTS_CHECK,
    ReviewLevel.REVIEW: Permission.REPORTS_REVIEW, ReviewLevel.APPROVE: Permission.REPORTS_APPROVE,
}
MEANING = {
    ReviewLevel.COMPILE: SignatureMeaning.COMPILED, ReviewLevel.CHECK: SignatureMeaning.CHECKED,
    ReviewLevel.REVIEW: SignatureMeaning.REVIEWED, ReviewLevel.APPROVE: SignatureMeaning.APPROVED,
}
LEVEL_WORDS = {
    ReviewLevel.COMPILE: ("编制", "compile"), ReviewLevel.CHECK: ("校核", "check"),
    ReviewLevel.REVIEW: ("审核", "review"), ReviewLevel.APPROVE: ("签发", "approve"),
}
# the state that says which level is awaited; None = every level holds
STATE_AWAITING = {
    ReviewLevel.COMPILE: ReportState.DRAFT, ReviewLevel.CHECK: ReportState.SUBMITTED,
    ReviewLevel.REVIEW: ReportState.CHECKED, ReviewLevel.APPROVE: ReportState.REVIEWED, None: ReportState.APPROVED,
}
REVIEW_STATES = frozenset({ReportState.DRAFT.value, ReportState.SUBMITTED.value, ReportState.CHECKED.value,
                           ReportState.REVIEWED.value})
MIN_REASON = 10
MAX_REASON = 1000
MAX_COMMENT = 1000


# ---------------------------------------------------------------- which signatures hold


def cancels(returned_at: ReviewLevel | str, signed_at: ReviewLevel | str) -> bool:
    """Whether a return at `returned_at` cancels an earlier signature at `signed_at`: the
    preparer's always, and that level's and every later one's."""
    returned, signed = ReviewLevel(returned_at), ReviewLevel(signed_at)
    return signed is ReviewLevel.COMPILE or RANK[returned] <= RANK[signed]


@dataclass(frozen=True)
class ActView:
    """One act as the history shows it: who, what, and whether its signature holds now."""

    act: ReviewAct
    actor: User
    signature: ElectronicSignature | None
    intact: bool | None  # the signature's content hash equals the content now (None: a return)
    holds: bool  # intact and not cancelled by a later return: it counts for its level

    @property
    def level(self) -> ReviewLevel:
        return ReviewLevel(self.act.level)

    @property
    def outcome(self) -> str:
        return self.act.outcome

    @property
    def reason(self) -> str:
        return self.act.reason

    @property
    def acted_at(self) -> datetime:
        return self.act.acted_at


def _acts(session: Session, report: Report) -> list[tuple[ReviewAct, User, ElectronicSignature | None]]:
    return [tuple(row) for row in session.execute(
        select(ReviewAct, User, ElectronicSignature).join(User, User.id == ReviewAct.actor_id)
        .outerjoin(ElectronicSignature, ElectronicSignature.id == ReviewAct.signature_id)
        .where(ReviewAct.report_id == report.id).order_by(ReviewAct.id))]


def approval_content(content_sha256: str, rendered_pdf_sha256: str) -> dict[str, str]:
    """What the signatory's approval binds: the content and the exact PDF they read."""
    return {"content_sha256": content_sha256, "pdf_sha256": rendered_pdf_sha256}


def _views(rows: list[tuple[ReviewAct, User, ElectronicSignature | None]], current: str,
           rendered_pdf_sha256: str = "") -> list[ActView]:
    approved = content_hash(approval_content(current, rendered_pdf_sha256))
    views = []
    for i, (act, actor, signature) in enumerate(rows):
        if act.outcome != ReviewOutcome.SIGNED.value:
            views.append(ActView(act, actor, None, None, False))
            continue
        signed = approved if act.level == ReviewLevel.APPROVE.value else current
        intact = signature is not None and signature.content_hash == signed and act.content_sha256 == current
        cancelled = any(later.outcome == ReviewOutcome.RETURNED.value and cancels(later.level, act.level)
                        for later, _, _ in rows[i + 1:])
        views.append(ActView(act, actor, signature, intact, intact and not cancelled))
    return views


def review_history(session: Session, report: Report, content: ReportContent | None = None) -> list[ActView]:
    """Every act on the report, oldest first, each with its signature intact or broken now."""
    content = content or load_content(session, report)
    return _views(_acts(session, report), content.content_sha256, report.rendered_pdf_sha256)


def _holding(views: list[ActView]) -> dict[ReviewLevel, ElectronicSignature | None]:
    found: dict[ReviewLevel, ElectronicSignature | None] = {level: None for level in LEVELS}
    for view in views:
        if view.holds:
            found[view.level] = view.signature  # later acts come later: the latest wins
    return found


def level_signatures(session: Session, report: Report,
                     content: ReportContent | None = None) -> dict[ReviewLevel, ElectronicSignature | None]:
    """Per level, the signature of the latest signed act over the current content that no later
    return cancelled (None when the level does not hold). One query besides the content."""
    return _holding(review_history(session, report, content))


def next_level(session: Session, report: Report, content: ReportContent) -> ReviewLevel | None:
    """The first level that does not hold (compile: the preparer must sign), None when all do."""
    holding = level_signatures(session, report, content)
    return next((level for level in LEVELS if holding[level] is None), None)


def state_for(level: ReviewLevel | None) -> str:
    return STATE_AWAITING[level].value


def sync_state(session: Session, report: Report, content: ReportContent) -> str:
    """Set a report in review to the state its signatures say (draft, submitted, checked,
    reviewed; approved once every level holds) and return it. Reports past review (approved,
    issued, superseded, withdrawn) keep theirs. Writes no audit event of its own: every act that
    calls it records the state before and after."""
    if report.state not in REVIEW_STATES:
        return report.state
    state = state_for(next_level(session, report, content))
    if report.state != state:
        report.state = state
        session.flush()
    return state


# ---------------------------------------------------------------- who may act


def _words(level: ReviewLevel) -> tuple[str, str]:
    return LEVEL_WORDS[level]


def _producer_deeds(session: Session, user: User, report: Report, content: ReportContent) -> list[tuple[str, str]]:
    """What `user` did to the data or the report, as (zh, en) phrases; empty for a clean user.
    Two queries whatever the size of the report."""
    deeds: list[tuple[str, str]] = []
    sampled = [s.sample.sample_no for s in content.samples if s.sample.sampler_id == user.id]
    if sampled:
        deeds.append((f"采集了样品 {'、'.join(sampled)}", f"sampled {', '.join(sampled)}"))
    analysed = sorted(b.batch_no for b in content.batches.values() if b.analyst_id == user.id)
    if analysed:
        deeds.append((f"是分析批 {'、'.join(analysed)} 的分析人", f"was the analyst of batch {', '.join(analysed)}"))
    cells = {(line.result.position_id, line.parameter): sample.sample.sample_no
             for sample, line in content.lines() if line.result is not None}
    if cells:
        entered: list[str] = []
        imported: list[str] = []
        for position_id, parameter, revision, enterer, importer, code in session.execute(
                select(AnalysisResult.position_id, AnalysisResult.parameter, AnalysisResult.revision,
                       AnalysisResult.entered_by_id, ResultImport.imported_by_id, ResultImport.code)
                .outerjoin(ResultImport, ResultImport.id == AnalysisResult.import_id)
                .where(AnalysisResult.position_id.in_(sorted({p for p, _ in cells})),
                       or_(AnalysisResult.entered_by_id == user.id, ResultImport.imported_by_id == user.id))
                .order_by(AnalysisResult.id)):
            where = cells.get((position_id, parameter))
            if where is None:
                continue
            if enterer == user.id:
                entered.append(f"{where} {parameter} r{revision}")
            if importer == user.id and code not in imported:
                imported.append(code)
        if entered:
            shown = "、".join(entered[:5]) + ("…" if len(entered) > 5 else "")
            deeds.append((f"录入了结果 {shown}", f"entered results {shown.replace('、', ', ')}"))
        if imported:
            deeds.append((f"导入了结果（{'、'.join(imported)}）", f"imported results ({', '.join(imported)})"))
    if report.prepared_by_id == user.id:
        deeds.append(("编制了本报告", "prepared this report"))
    return deeds


def _other_levels(session: Session, user: User, report: Report, level: ReviewLevel) -> list[ReviewLevel]:
    rows = session.scalars(select(ReviewAct.level).where(
        ReviewAct.report_id == report.id, ReviewAct.actor_id == user.id,
        ReviewAct.outcome == ReviewOutcome.SIGNED.value, ReviewAct.level != level.value).distinct())
    return sorted({ReviewLevel(r) for r in rows}, key=RANK.get)


def duties_conflict(session: Session, user: User, report: Report, content: ReportContent,
                    level: ReviewLevel) -> list[tuple[str, str]]:
    """Why `user` may not act at `level` (DOMAIN.md §2 rule 1), as (zh, en) phrases: produced the
    data (sampled, analysed, entered any revision, imported), prepared the report, or signed it at
    another level (even a signature broken since). Empty when the user is clean."""
    level = ReviewLevel(level)
    if level is ReviewLevel.COMPILE:
        return []
    deeds = _producer_deeds(session, user, report, content)
    for other in _other_levels(session, user, report, level):
        if other is ReviewLevel.COMPILE and report.prepared_by_id == user.id:
            continue  # said already
        zh, en = _words(other)
        deeds.append((f"在本报告的{zh}环节签过名", f"signed this report at the {en} level"))
    return deeds


def assert_may_act(session: Session, user: User, report: Report, content: ReportContent,
                   level: ReviewLevel) -> None:
    """The gate of every level, at the time of the act: (1) the role for the level; (2)
    separation of duties (SelfReviewForbidden naming what the user did); (3) for 校核, a 上岗证
    for every method of the report; (4) the report awaits this level (ReviewOutOfOrder)."""
    level = ReviewLevel(level)
    now = utcnow()
    if report.state not in REVIEW_STATES:
        raise errors.ReportNotInReview(report_no=report.report_no, state=report.state)
    ensure(session, user, PERMISSION[level], at=now)
    deeds = duties_conflict(session, user, report, content, level)
    if deeds:
        zh, en = _words(level)
        raise errors.SelfReviewForbidden(person=user.printed_name, report_no=report.report_no, level_zh=zh,
                                         level_en=en, did_zh="；".join(d[0] for d in deeds),
                                         did_en="; ".join(d[1] for d in deeds))
    if level is ReviewLevel.CHECK:
        for method_id in sorted({line.method.id for _, line in content.lines() if line.method is not None}):
            assert_analyst_qualified(session, user, method_id, now)
    awaited = next_level(session, report, content)
    if awaited is not level:
        zh, en = _words(level)
        if awaited is None:
            awaited_zh, awaited_en = "出具", "issue"
        else:
            awaited_zh, awaited_en = _words(awaited)
        raise errors.ReviewOutOfOrder(report_no=report.report_no, level_zh=zh, level_en=en,
                                      awaited_zh=awaited_zh, awaited_en=awaited_en)


# ---------------------------------------------------------------- acts


def record_act(session: Session, actor: User, report: Report, content: ReportContent, level: ReviewLevel,
               outcome: ReviewOutcome, *, signature: ElectronicSignature | None = None, reason: str = "",
               checklist: Any = None) -> ReviewAct:
    """Append the act (the approve level's service uses it too)."""
    act = ReviewAct(report_id=report.id, level=ReviewLevel(level).value, outcome=ReviewOutcome(outcome).value,
                    content_sha256=content.content_sha256, signature_id=signature.id if signature else None,
                    reason=reason, checklist=canonical_json(checklist if checklist is not None else {}),
                    acted_at=utcnow(), actor_id=actor.id)
    session.add(act)
    session.flush()
    return act


def _locked(session: Session, report: Report) -> Report:
    return session.execute(select(Report).where(Report.id == report.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _comment(comment: str) -> str:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise errors.CommentTooLong(maximum=MAX_COMMENT)
    return text


def _sign_level(session: Session, actor: User, report: Report, password: str, comment: str,
                level: ReviewLevel, action: str) -> Report:
    from app.reports.checklist import compute_checklist

    report = _locked(session, report)
    content = load_content(session, report)
    assert_may_act(session, actor, report, content, level)
    text = _comment(comment)
    checklist = compute_checklist(session, report, content)
    if checklist.blocking:
        failing = checklist.failures()
        raise errors.ChecklistBlocks(items_zh="；".join(item.summary("zh") for item in failing),
                                     items_en="; ".join(item.summary("en") for item in failing))
    signature = sign(session, actor, password, MEANING[level], SIGNED_ENTITY, report.id, content.signed_content())
    act = record_act(session, actor, report, content, level, ReviewOutcome.SIGNED, signature=signature,
                     reason=text, checklist=checklist.as_record())
    before = report.state
    state = sync_state(session, report, content)
    audit.append(session, actor, action, "report", report.id, {"state": before}, {
        "report_no": report.report_no, "level": level.value, "state": state, "signature_id": signature.id,
        "content_sha256": act.content_sha256, "review_act_id": act.id, "comment": text,
        "checklist": checklist.summary_record()})
    return report


def check_report(session: Session, checker: User, report: Report, password: str, comment: str = "") -> Report:
    """校核: the checker signs (`checked`) over the content, seeing a checklist without failures."""
    return _sign_level(session, checker, report, password, comment, ReviewLevel.CHECK, "reports.checked")


def review_report(session: Session, reviewer: User, report: Report, password: str, comment: str = "") -> Report:
    """审核: the reviewer signs (`reviewed`) over the content, seeing a checklist without failures."""
    return _sign_level(session, reviewer, report, password, comment, ReviewLevel.REVIEW, "reports.reviewed")


def return_report(session: Session, actor: User, report: Report, reason: str) -> Report:
    """Send the report back from the awaited level with a reason (whoever may act at that level,
    a signatory included); it is a draft again and the preparer re-submits after corrections."""
    report = _locked(session, report)
    content = load_content(session, report)
    if report.state not in REVIEW_STATES:
        raise errors.ReportNotInReview(report_no=report.report_no, state=report.state)
    awaited = next_level(session, report, content)
    if awaited in (None, ReviewLevel.COMPILE):
        raise errors.ReportNotInReview(report_no=report.report_no, state=state_for(awaited))
    assert_may_act(session, actor, report, content, awaited)
    text = " ".join((reason or "").split())
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise errors.ReturnReasonRequired(minimum=MIN_REASON, maximum=MAX_REASON)
    act = record_act(session, actor, report, content, awaited, ReviewOutcome.RETURNED, reason=text)
    before = report.state
    state = sync_state(session, report, content)
    audit.append(session, actor, "reports.returned", "report", report.id, {"state": before}, {
        "report_no": report.report_no, "level": awaited.value, "state": state, "reason": text,
        "content_sha256": act.content_sha256, "review_act_id": act.id})
    return report


def resync_reports_of_samples(session: Session, actor: Any, sample_ids: list[int]) -> list[str]:
    """After data under reports in review changed (a result revised, a batch re-signed), set each
    such report to the state its signatures now say, audited as `reports.state_synced`; returns
    the numbers of the reports that moved. Review acts resync on their own; this keeps the stored
    state (which worklists filter on) honest in between."""
    from app.reports.models import ReportSample

    if not sample_ids:
        return []
    reports = list(session.scalars(
        select(Report).where(Report.state.in_(REVIEW_STATES), Report.id.in_(
            select(ReportSample.report_id).where(ReportSample.sample_id.in_(list(sample_ids)))))
        .order_by(Report.id).with_for_update()))
    moved = []
    for report in reports:
        before = report.state
        content = load_content(session, report)
        state = sync_state(session, report, content)
        if state != before:
            audit.append(session, actor, "reports.state_synced", "report", report.id, {"state": before},
                         {"report_no": report.report_no, "state": state, "content_sha256": content.content_sha256})
            moved.append(report.report_no)
    return moved
