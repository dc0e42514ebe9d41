"""Factories for the report tests: samples whose NH3-N results were analysed, QC-passed and signed
(`analysed`) by an analyst through the real services, and a report draft over them written
straight into its tables (the report services' own tests go through the services).

`reportable` gives the usual cast: the analyst who produced the data, a sampler, the preparer,
and a checker, a reviewer and a signatory who had no hand in it (each qualified or in scope as
the level needs: the checker holds a 上岗证 for the method, the signatory a scope for it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import update

from app.analysis.models import MethodVersion
from app.core.db import Database, utcnow
from app.core.labtime import DEFAULT_CALENDAR
from app.people.models import User
from app.reports.models import Report, ReportSample, ReportState, SignatoryScope
from app.samples.models import Sample
from tests.analysis import conftest as analysis_fixtures
from tests.analysis.conftest import qualify, samples_in_lab
from tests.analysis.qc_fixtures import PASSING, Bench, enter, running_batch, submit
from tests.conftest import PASSWORD, make_user

# the analysis fixtures these build on (a method version, a calibrated UV-Vis, the file store)
analyst = analysis_fixtures.analyst
technical = analysis_fixtures.technical
store = analysis_fixtures.store
uv = analysis_fixtures.uv
nh3n_method = analysis_fixtures.nh3n_method

__all__ = ["Reportable", "make_report", "grant_signatory_scope", "reportable_samples"]


@pytest.fixture(autouse=True)
def _lab_today(request: pytest.FixtureRequest) -> None:
    """A module here that keeps the lab day (Asia/Shanghai, not the machine's) in a module-level
    TODAY reads it again as each test starts, not only at collection: a run that crosses the lab's
    midnight (16:00 UTC) would otherwise ask for yesterday's scopes. A module that pins TODAY to a
    fixed date says so with `TODAY_IS_FIXED = True`."""
    module = request.module
    if hasattr(module, "TODAY") and not getattr(module, "TODAY_IS_FIXED", False):
        module.TODAY = DEFAULT_CALENDAR.today()


@dataclass
class Reportable:
    bench: Bench
    samples: list[Sample]
    method: MethodVersion
    analyst: User
    sampler: User
    preparer: User
    checker: User
    reviewer: User
    signatory: User


def reportable_samples(db: Database, users: dict[str, User], method: MethodVersion, instrument,
                       *, prefix: str = "WS01-261203") -> tuple[Bench, list[Sample]]:
    """Two samples collected by users['sampler'], analysed for NH3-N in a batch that passed QC
    and was signed by users['analyst'] (a qualified analyst)."""
    analyst, sampler = users["analyst"], users["sampler"]
    qualify(db, analyst, method.method_id)
    samples = samples_in_lab(db, users["custodian"], count=2, prefix=prefix)
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id.in_([s.id for s in samples])).values(sampler_id=sampler.id))
    for s in samples:
        s.sampler_id = sampler.id
    bench = running_batch(db, analyst, method, samples, instrument=instrument)
    enter(db, bench, PASSING)
    submit(db, bench, PASSWORD)
    return bench, samples


def grant_signatory_scope(db: Database, signatory: User, *, method_id: int | None = None, matrix: str = "",
                          parameter: str = "", valid_from: date | None = None, valid_to: date | None = None,
                          approver: User | None = None) -> SignatoryScope:
    """An approved signatory scope, in force from a year ago unless given."""
    now = utcnow()
    with db.transaction() as session:
        row = SignatoryScope(user_id=signatory.id, matrix=matrix, method_id=method_id, parameter=parameter,
                             valid_from=valid_from or date.today() - timedelta(days=365), valid_to=valid_to,
                             basis="CMA 2025", proposed_at=now, proposed_by_id=(approver or signatory).id,
                             approved_at=now, approved_by_id=(approver or signatory).id)
        session.add(row)
        session.flush()
        session.expunge(row)
        return row


_numbers = iter(range(1, 100_000))


def make_report(db: Database, preparer: User, samples: list[Sample], *, state: str = ReportState.DRAFT.value,
                title: str = "地表水监测报告", client_name: str = "市生态环境局", language: str = "zh",
                limit_set_id: int | None = None, report_no: str | None = None) -> Report:
    """A report draft (or a report in `state`) over `samples`, written straight into its tables."""
    number = report_no or f"BG2026-{next(_numbers):04d}"
    with db.transaction() as session:
        report = Report(report_no=number, base_no=number, title=title, client_name=client_name, language=language,
                        limit_set_id=limit_set_id, state=state, prepared_by_id=preparer.id, created_at=utcnow(),
                        verify_token=secrets.token_urlsafe(24))
        session.add(report)
        session.flush()
        for position, sample in enumerate(samples, start=1):
            session.add(ReportSample(report_id=report.id, sample_id=sample.id, position=position))
        session.flush()
        session.expunge(report)
        return report


@pytest.fixture
def reportable(db, users, nh3n_method, uv) -> Reportable:
    bench, samples = reportable_samples(db, users, nh3n_method, uv)
    checker, reviewer, signatory = users["checker"], users["reviewer"], users["signatory"]
    qualify(db, checker, nh3n_method.method_id)
    grant_signatory_scope(db, signatory, method_id=nh3n_method.method_id, approver=users["quality_manager"])
    preparer = make_user(db, "preparer", "analyst")
    return Reportable(bench, samples, nh3n_method, users["analyst"], users["sampler"], preparer,
                      checker, reviewer, signatory)
