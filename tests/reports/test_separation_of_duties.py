"""Separation of duties (DOMAIN.md §2 rule 1), every combination: whoever sampled a sample of the
report, analysed a batch of its results, entered any revision of them (an older one only
included), imported them, prepared the report, or signed it at another level may not check,
review or approve it — refused with `self_review_forbidden` naming what they did, and nothing
changes. A person without such a hand passes; the role and the 上岗证 count at the time of the act."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis.models import AnalysisResult, BatchPosition, ImportProfile, ResultImport
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.files import StoredFile
from app.people import service as people
from app.people.models import User
from app.reports import drafts, review
from app.reports.content import load_content
from app.reports.models import Report, ReviewLevel
from tests.analysis.conftest import qualify
from tests.conftest import PASSWORD, make_user
from tests.reports.test_drafts import act, counts, refused, submitted
from tests.reports.test_review import resign

CHECK, REVIEW, APPROVE = ReviewLevel.CHECK, ReviewLevel.REVIEW, ReviewLevel.APPROVE
LEVEL_ROLE = {CHECK: "checker", REVIEW: "reviewer", APPROVE: "signatory"}
KINDS = ("sampler", "analyst", "older_revision_enterer", "importer", "preparer", "checker", "reviewer")
# a person may act again at their own level (after a restart): those pairs are not conflicts
SAME_LEVEL = {("checker", CHECK), ("reviewer", REVIEW)}
DEEDS = {"sampler": "sampled", "analyst": "was the analyst of batch", "older_revision_enterer": "entered results",
         "importer": "imported results", "preparer": "prepared this report", "checker": "at the check level",
         "reviewer": "at the review level"}


def grant(db, user: User, *roles: str) -> None:
    with db.transaction() as session:
        for role in roles:
            people.grant_role_as_system(session, session.get(User, user.id), role, "test",
                                        valid_from=utcnow() - timedelta(days=365))


def revise(db, reportable, label: str, value: str, entered_by: User, *, import_id: int | None = None) -> None:
    """A new revision of a batch position's NH3-N result, entered by `entered_by` (from an import)."""
    with db.transaction() as session:
        position = session.get(BatchPosition, reportable.bench.positions[label].id)
        last = session.scalars(select(AnalysisResult).where(AnalysisResult.position_id == position.id)
                               .order_by(AnalysisResult.revision.desc())).first()
        session.add(AnalysisResult(
            batch_id=position.batch_id, position_id=position.id, sample_id=position.sample_id, parameter="NH3-N",
            revision=last.revision + 1, supersedes_id=last.id, reason="corrected after a re-reading",
            method_version_id=last.method_version_id, reading=D(value), value=D(value), unit="mg/L",
            below_mdl=False, measured_at=last.measured_at, entered_at=utcnow(), entered_by_id=entered_by.id,
            source="import" if import_id else "manual", import_id=import_id))


def an_import(db, importer: User, batch_id: int) -> int:
    now = utcnow()
    with db.transaction() as session:
        stored = StoredFile(sha256="a" * 64, size=10, media_type="text/csv", filename="run.csv", uploaded_at=now,
                            uploaded_by_id=importer.id)
        profile = ImportProfile(code="SOD-CSV", name="generic csv", created_at=now, created_by_id=importer.id)
        session.add_all([stored, profile])
        session.flush()
        row = ResultImport(code="IM26-09999", batch_id=batch_id, profile_id=profile.id, file_id=stored.id,
                           sha256="a" * 64, filename="run.csv", rows_total=1, rows_imported=1, imported_at=now,
                           imported_by_id=importer.id)
        session.add(row)
        session.flush()
        return row.id


@dataclass
class Cast:
    report: Report
    producers: dict[str, User]


@pytest.fixture
def cast(db, users, reportable) -> Cast:
    """A report checked and reviewed (it awaits approval), with one person of each producer kind,
    each also holding every review role and a 上岗证, so only the separation of duties can refuse."""
    enterer = make_user(db, "older-enterer", "analyst")
    importer = make_user(db, "importer", "analyst")
    revise(db, reportable, "S-001", "0.530", enterer)  # an older revision by someone else...
    revise(db, reportable, "S-001", "0.512", reportable.analyst)  # ...superseded by the analyst's
    revise(db, reportable, "S-002", "0.200", reportable.analyst, import_id=an_import(db, importer,
                                                                                     reportable.bench.batch.id))
    resign(db, reportable)
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    producers = {"sampler": reportable.sampler, "analyst": reportable.analyst, "older_revision_enterer": enterer,
                 "importer": importer, "preparer": reportable.preparer, "checker": reportable.checker,
                 "reviewer": reportable.reviewer}
    for kind, user in producers.items():
        grant(db, user, *[role for role in LEVEL_ROLE.values() if role != kind])
        qualify(db, user, reportable.method.method_id)
    return Cast(report, producers)


def _attempt(db, user: User, report: Report, level: ReviewLevel) -> None:
    if level is CHECK:
        act(db, review.check_report, user, report, PASSWORD)
    elif level is REVIEW:
        act(db, review.review_report, user, report, PASSWORD)
    else:  # the approve act is the issue service's; its gate is this one
        with db.reading() as session:
            row = session.get(Report, report.id)
            review.assert_may_act(session, session.get(User, user.id), row, load_content(session, row), level)


@pytest.mark.parametrize(("kind", "level"), [(k, lv) for k in KINDS for lv in (CHECK, REVIEW, APPROVE)
                                             if (k, lv) not in SAME_LEVEL], ids=lambda v: getattr(v, "value", v))
def test_a_producer_may_not_act_at_any_other_level(db, cast, kind, level):
    user = cast.producers[kind]
    error = refused(db, lambda: _attempt(db, user, cast.report, level), "self_review_forbidden")
    assert DEEDS[kind] in error.message("en"), error.message("en")
    assert cast.report.report_no in error.message("zh")


def test_the_older_revision_and_the_import_are_named(db, cast):
    error = refused(db, lambda: _attempt(db, cast.producers["older_revision_enterer"], cast.report, APPROVE),
                    "self_review_forbidden")
    assert "r2" in error.message("en") and "r3" not in error.message("en")
    error = refused(db, lambda: _attempt(db, cast.producers["importer"], cast.report, APPROVE), "self_review_forbidden")
    assert "IM26-09999" in error.message("en")


def test_clean_people_pass_each_level(db, users, reportable):
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    _attempt(db, reportable.signatory, report, APPROVE)  # no refusal


def test_one_person_at_two_levels_even_after_their_signature_broke(db, users, reportable):
    """The checker's signature is broken by a correction; they may still not review the report."""
    report = submitted(db, reportable)
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    grant(db, reportable.checker, "reviewer")
    revise(db, reportable, "S-001", "0.514", reportable.analyst)
    resign(db, reportable)
    act(db, drafts.submit_report, reportable.preparer, report, PASSWORD)
    other = make_user(db, "second-checker", "checker")
    qualify(db, other, reportable.method.method_id)
    act(db, review.check_report, other, report, PASSWORD)
    refused(db, lambda: act(db, review.review_report, reportable.checker, report, PASSWORD), "self_review_forbidden")


def test_a_checker_needs_a_qualification_for_every_method_at_the_time(db, users, reportable):
    report = submitted(db, reportable)
    unqualified = make_user(db, "new-checker", "checker")
    refused(db, lambda: act(db, review.check_report, unqualified, report, PASSWORD), "analyst_not_qualified")
    refused(db, lambda: act(db, review.check_report, users["reviewer"], report, PASSWORD), "permission_denied")


def test_a_role_that_ended_no_longer_counts(db, users, reportable):
    from app.people.models import RoleGrant

    report = submitted(db, reportable)
    with db.transaction() as session:
        for grant_row in session.scalars(select(RoleGrant).where(RoleGrant.user_id == reportable.checker.id)):
            grant_row.valid_to = utcnow() - timedelta(minutes=1)
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        act(db, review.check_report, reportable.checker, report, PASSWORD)
    assert caught.value.code == "permission_denied"
    assert counts(db) == before
