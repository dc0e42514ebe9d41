"""The acts on a report from its page: the preparer's header, samples and signature (编制), the
check (校核) and technical review (审核) signatures, returning a report with a reason at the level
it awaits, and the reviewer's worklist (/review).

Routes are thin: one service call each (app.reports.drafts / review) in the unit of work. A
refusal re-renders the report's page with the message and what was typed (a wrong password is
recorded and the act rolled back); htmx gets the page's actions section back; success redirects
(post/redirect/get). Return is one route per level, since each level's permission guards it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.analysis.models import AnalysisBatch, AnalysisResult, ResultImport
from app.core.auth import DbSession, require
from app.core.i18n import N_
from app.core.permissions import Permission, permissions_of, roles_at
from app.core.registry import NavItem, Worklist, add_nav, add_worklist
from app.core.web import Page, attempt, is_htmx, pager_base, see_other
from app.people.models import User
from app.reports import drafts, review
from app.reports.models import Report, ReportSample, ReportState, ReviewAct, ReviewLevel, ReviewOutcome
from app.reports.report_routes import (
    BASE,
    LimitSetId,
    Many,
    PageNo,
    Remarks,
    ReportNo,
    Small,
    header_form,
    report_page,
    show,
)
from app.samples.models import Sample

router = APIRouter()

SampleNo = Annotated[str, Path(max_length=40)]
Secret = Annotated[str, Form(max_length=200)]
Comment = Annotated[str, Form(max_length=1000)]
Reason = Annotated[str, Form(max_length=2000)]


def _act(request: Request, session: Session, report_no: str, form_name: str, values: dict[str, Any],
         act: Callable[[Report], Any], *, anchor: str = "", header: dict[str, Any] | None = None) -> Response:
    """Run one act on the report; on refusal show the page (htmx: its actions) with the message."""
    report = drafts.report_by_no(session, report_no)
    _, error = attempt(session, lambda: act(report))
    if error is not None:
        session.expire_all()
        return report_page(request, session, report_no, error=error, form_name=form_name, values=values,
                           header=header, block="actions")
    # htmx follows HX-Redirect by assigning the address: to the same page plus an anchor it would
    # only scroll, leaving the old state on screen; so htmx gets the page itself (reloaded)
    return see_other(request, f"{BASE}/{report.report_no}" + ("" if is_htmx(request) else anchor))


# ---------------------------------------------------------------- the draft (编制)


@router.post(f"{BASE}/{{report_no}}/header", include_in_schema=False)
def save_header(request: Request, session: DbSession, report_no: ReportNo, title: Small = "",
                client_name: Small = "", client_contact: Small = "",
                language: Annotated[str, Form(max_length=4)] = "zh", limit_set: LimitSetId = "",
                target_class: Annotated[str, Form(max_length=20)] = "", remarks: Remarks = "",
                user: User = require(Permission.REPORTS_PREPARE)):
    header = header_form(title=title, client_name=client_name, client_contact=client_contact, language=language,
                         limit_set=limit_set, target_class=target_class, remarks=remarks)
    return _act(request, session, report_no, "header", {}, lambda report: drafts.update_header(
        session, user, report, title=title, client_name=client_name, client_contact=client_contact,
        language=language, limit_set_id=limit_set or None, target_class=target_class, remarks=remarks),
        header=header)


@router.post(f"{BASE}/{{report_no}}/samples", include_in_schema=False)
def add_samples(request: Request, session: DbSession, report_no: ReportNo, samples: Many = [],  # noqa: B006
                user: User = require(Permission.REPORTS_PREPARE)):
    chosen = list(dict.fromkeys(s.strip() for s in samples if s.strip()))
    return _act(request, session, report_no, "samples", {"samples": chosen},
                lambda report: drafts.add_samples(session, user, report, chosen), anchor="#results")


@router.post(f"{BASE}/{{report_no}}/samples/{{sample_no}}/remove", include_in_schema=False)
def remove_sample(request: Request, session: DbSession, report_no: ReportNo, sample_no: SampleNo,
                  user: User = require(Permission.REPORTS_PREPARE)):
    return _act(request, session, report_no, "remove", {"sample_no": sample_no},
                lambda report: drafts.remove_sample(session, user, report, sample_no), anchor="#results")


@router.post(f"{BASE}/{{report_no}}/submit", include_in_schema=False)
def submit(request: Request, session: DbSession, report_no: ReportNo, password: Secret = "",
           user: User = require(Permission.REPORTS_PREPARE)):
    """The preparer signs as compiled; the report goes to 校核."""
    return _act(request, session, report_no, "submit", {},
                lambda report: drafts.submit_report(session, user, report, password), anchor="#history")


# ---------------------------------------------------------------- the levels (校核, 审核)


@router.post(f"{BASE}/{{report_no}}/check", include_in_schema=False)
def check(request: Request, session: DbSession, report_no: ReportNo, password: Secret = "", comment: Comment = "",
          user: User = require(Permission.REPORTS_CHECK)):
    return _act(request, session, report_no, "sign", {"comment": comment},
                lambda report: review.check_report(session, user, report, password, comment), anchor="#history")


@router.post(f"{BASE}/{{report_no}}/review", include_in_schema=False)
def technical_review(request: Request, session: DbSession, report_no: ReportNo, password: Secret = "",
                     comment: Comment = "", user: User = require(Permission.REPORTS_REVIEW)):
    return _act(request, session, report_no, "sign", {"comment": comment},
                lambda report: review.review_report(session, user, report, password, comment), anchor="#history")


def _return(request: Request, session: Session, report_no: str, user: User, reason: str) -> Response:
    return _act(request, session, report_no, "return", {"reason": reason},
                lambda report: review.return_report(session, user, report, reason), anchor="#history")


@router.post(f"{BASE}/{{report_no}}/check/return", include_in_schema=False)
def return_at_check(request: Request, session: DbSession, report_no: ReportNo, reason: Reason = "",
                    user: User = require(Permission.REPORTS_CHECK)):
    return _return(request, session, report_no, user, reason)


@router.post(f"{BASE}/{{report_no}}/review/return", include_in_schema=False)
def return_at_review(request: Request, session: DbSession, report_no: ReportNo, reason: Reason = "",
                     user: User = require(Permission.REPORTS_REVIEW)):
    return _return(request, session, report_no, user, reason)


@router.post(f"{BASE}/{{report_no}}/approve/return", include_in_schema=False)
def return_at_approval(request: Request, session: DbSession, report_no: ReportNo, reason: Reason = "",
                       user: User = require(Permission.REPORTS_APPROVE)):
    return _return(request, session, report_no, user, reason)


# ---------------------------------------------------------------- the worklist (/review)

# the state in which a report awaits each level, and the permission that acts there
AWAITED = ((ReportState.SUBMITTED.value, ReviewLevel.CHECK, Permission.REPORTS_CHECK),
           (ReportState.CHECKED.value, ReviewLevel.REVIEW, Permission.REPORTS_REVIEW),
           (ReportState.REVIEWED.value, ReviewLevel.APPROVE, Permission.REPORTS_APPROVE))


@dataclass(frozen=True)
class WorkRow:
    report: Report
    preparer: User
    samples: int

    @property
    def level(self) -> str:
        return next(level.value for state, level, _ in AWAITED if state == self.report.state)


def _awaiting(user: User, permissions: frozenset[Permission]) -> Select | None:
    """Reports awaiting a level this user holds, without those separation of duties keeps from
    them (the same producers as review.duties_conflict: sampled a sample, analysed, entered or
    imported a result of its samples, prepared it, or signed it at another level). The service
    still decides at the act; this only keeps the list to what the user can take up."""
    states = [state for state, _, permission in AWAITED if permission in permissions]
    if not states:
        return None
    of_report = ReportSample.report_id == Report.id
    awaited_level = case(*((Report.state == state, level.value) for state, level, _ in AWAITED), else_="")
    signed_elsewhere = select(ReviewAct.id).where(
        ReviewAct.report_id == Report.id, ReviewAct.actor_id == user.id,
        ReviewAct.outcome == ReviewOutcome.SIGNED.value, ReviewAct.level != awaited_level).exists()
    sampled = select(ReportSample.id).join(Sample, Sample.id == ReportSample.sample_id).where(
        of_report, Sample.sampler_id == user.id).exists()
    produced = (select(AnalysisResult.id)
                .join(ReportSample, ReportSample.sample_id == AnalysisResult.sample_id)
                .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
                .outerjoin(ResultImport, ResultImport.id == AnalysisResult.import_id)
                .where(of_report, or_(AnalysisResult.entered_by_id == user.id, AnalysisBatch.analyst_id == user.id,
                                      ResultImport.imported_by_id == user.id)).exists())
    return select(Report).where(and_(Report.state.in_(states), Report.prepared_by_id != user.id,
                                     ~signed_elsewhere, ~sampled, ~produced))


def awaiting_review(session: Session, user: User, permissions: frozenset[Permission], *, page: int = 1,
                    size: int = 50) -> Page[WorkRow]:
    """The reports awaiting this user's level, oldest submission first: two queries whatever
    the number of reports."""
    query = _awaiting(user, permissions)
    if query is None:
        return Page([], page, size, 0)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    samples = (select(func.count(ReportSample.id)).where(ReportSample.report_id == Report.id)
               .correlate(Report).scalar_subquery())
    rows = session.execute(
        query.add_columns(User, samples).join(User, User.id == Report.prepared_by_id)
        .order_by(Report.submitted_at, Report.id).limit(size).offset((page - 1) * size)).all()
    return Page([WorkRow(r, u, n) for r, u, n in rows], page, size, total)


def count_awaiting(session: Session, user: User) -> int:
    """The dashboard card: how many reports await this user's level."""
    query = _awaiting(user, permissions_of(roles_at(session, user.id)))
    return 0 if query is None else session.scalar(select(func.count()).select_from(query.subquery())) or 0


@router.get("/review", include_in_schema=False)
def worklist(request: Request, session: DbSession, page: PageNo = 1, user: User = require(Permission.REPORTS_READ)):
    """Reports awaiting my level: 校核 for checkers, 审核 for reviewers, 签发 for signatories."""
    permissions: frozenset[Permission] = request.state.permissions
    found = awaiting_review(session, user, permissions, page=page, size=request.app.state.settings.page_size)
    return show(request, "reports/review_worklist.html", {
        "page": found, "pager_base": pager_base("/review", {}),
        "levels": [level.value for _, level, permission in AWAITED if permission in permissions]}, block="results")


add_nav(NavItem("review", N_("Review"), "/review", Permission.REPORTS_CHECK, 71),
        NavItem("review_as_reviewer", N_("Review"), "/review", Permission.REPORTS_REVIEW, 71),
        NavItem("review_as_signatory", N_("Review"), "/review", Permission.REPORTS_APPROVE, 71))
add_worklist(*(Worklist(f"reports_awaiting_{level.value}", N_("Reports awaiting your review"), permission, "/review",
                        count_awaiting, 70) for _, level, permission in AWAITED))
