"""Demo reports (issue 9 item 10): the lab's CMA certificate, the signatory's scopes and reports in
every state, entered through the report services as the demo users at the times of the acts
(app.samples.lab_demo's `DemoActs` pattern) and issued as real PAdES-signed PDFs.

- The technical manager recorded the lab's CMA certificate 231512340987 (湖北省市场监督管理局,
  2024-01-01 to 2029-12-31) with an item for every parameter of the lab's methods (the field
  methods of WT, pH, DO and EC among them) except total phosphorus (GB 11893-89), deliberately
  left out of scope: a report with TP results is issued without the CMA mark (the default setting).
- The signatory's scope for water, proposed by the technical manager and approved by the quality
  manager; a second one (air) proposed and awaiting the quality manager.
- The analysis demo leaves every river sample `in_analysis` (COD, CODMn and TN are never run):
  for the routine river samples the analyst records those "not analysed" with the reason, so the
  samples reach `results_entered` with their NH3-N (and TP) results of record and the sampler's
  signed field readings (WT, pH, DO, EC: printed with their field methods), evaluated against
  GB 3838-2002 (pH and DO have classes); no result is made up.
- Reports over those samples, oldest first: issued (zh, one en), one amended (-A1 issued with its
  reason, the original superseded), one withdrawn by the quality manager, one issued without the
  CMA mark; newer ones a draft, one returned by the checker with a reason (a draft again), one
  submitted, one checked and one reviewed, which the demo signatory can approve live.
- Rendering and signing are the issue module's own job handlers (`report.render`,
  `report.sign`), run through `job_queue.run_job` inside the demo's transaction: the PDFs in the
  store are signed with the demo lab certificate of the data dir (created here).

Idempotent: if the certificate 231512340987 is recorded, the demo is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import submission
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    LimitSet,
    Method,
    MethodParameter,
    MethodVersion,
)
from app.config import settings_of
from app.core import files as core_files
from app.core import job_queue, signatures
from app.core.db import utcnow
from app.core.files import FileStore
from app.core.labtime import lab_calendar
from app.people import service as people
from app.people.models import User
from app.reports import amendments, drafts, issue, review, scopes
from app.reports.models import Report
from app.reports.signing import ensure_demo_certificate
from app.samples import lab_demo, retention
from app.samples.demo import FIELD_TESTS
from app.samples.models import Sample, SampleKind, SampleParameter, SampleState
from app.sites.demo import DemoClock

CERTIFICATE_NO = "231512340987"
ISSUER = "湖北省市场监督管理局"
OUT_OF_SCOPE = "TP"  # GB 11893-89 total phosphorus: not on the certificate
LAB_TESTS = frozenset({"COD", "CODMn", "NH3-N", "TN", "TP"})
ROUND_TESTS = LAB_TESTS | set(FIELD_TESTS)  # what a routine river sample of the demo asks for
NOT_RUN_REASON = ("委托方书面变更本期监测项目：{p} 不再测定，只报告氨氮、总磷 / "
                  "The client changed this round's parameters in writing: {p} is no longer determined")
CLIENT = "江城市生态环境局"
SURFACE_WATER = "GB 3838-2002"  # the sections' limits (app.analysis.demo assigns their target classes)
CONTACT = "王科长 027-8888 1234"
CORRECTED_CONTACT = "王建华（监测科）027-8888 1235"


def _clock() -> DemoClock:
    return DemoClock(drafts, review, issue, amendments, scopes, signatures, core_files, retention, job_queue,
                     submission)


class _DemoTransaction:
    """The job runner's `Database` over the demo's own session: `run_job` and the handlers open
    `transaction()` / `reading()`; here both are the demo's transaction (flushed, not committed),
    so the render and sign jobs see the demo's uncommitted reports and the CLI commits all at once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        yield self.session
        self.session.flush()

    reading = transaction


@dataclass
class _Spec:
    """One demo report: what happens to it, over how many samples, in which language."""

    fate: str  # issued / amended / withdrawn / out_of_scope / draft / returned / submitted / checked / reviewed
    samples: int
    language: str = "zh"


SPECS = (
    _Spec("amended", 2), _Spec("issued", 2), _Spec("issued", 2, "en"), _Spec("withdrawn", 2),
    _Spec("out_of_scope", 2), _Spec("issued", 2),
    _Spec("returned", 2), _Spec("submitted", 1), _Spec("checked", 2), _Spec("reviewed", 1), _Spec("draft", 1),
)
FINISHED = ("amended", "issued", "withdrawn", "out_of_scope")


def load_report_demo(session: Session, users: dict[str, User], store: FileStore, password: str) -> None:
    """Certificate, scopes and reports (idempotent); see the module docstring."""
    lab = people.current_lab(session)
    settings = settings_of(session)
    ensure_demo_certificate(settings, lab.name_zh if lab is not None else "")
    if scopes.latest_record_of(session, CERTIFICATE_NO) is not None:
        return
    acts = lab_demo.DemoActs(session=session, users=users, store=store, password=password,
                             today=lab_calendar(session).today(), clock=_clock())
    _certificate_and_scopes(acts)
    ready = _samples_ready(acts)
    _reports(acts, ready)


# ---------------------------------------------------------------- CMA certificate and scopes


def _certificate_and_scopes(acts: lab_demo.DemoActs) -> None:
    session, technical, quality = acts.session, acts.user("technical"), acts.user("quality")
    items = session.execute(
        select(MethodParameter.parameter, Method.code, Method.matrix).distinct()
        .join(MethodVersion, MethodVersion.id == MethodParameter.method_version_id)
        .join(Method, Method.id == MethodVersion.method_id).order_by(Method.code, MethodParameter.parameter)).all()
    with acts.then(acts.at(300, 10, 0)):
        cert = scopes.record_certificate(session, technical, CERTIFICATE_NO, ISSUER, date(2024, 1, 1),
                                         date(2029, 12, 31), "资质认定证书（检验检测机构）扫描件存档于质量管理室")
        for parameter, code, matrix in items:
            if parameter != OUT_OF_SCOPE:
                scopes.add_item(session, technical, cert, parameter, code, matrix)
    signatory = acts.user("signatory")
    with acts.then(acts.at(120, 9, 30)):
        scope = scopes.propose_signatory_scope(
            session, technical, signatory, matrix="water", valid_from=acts.today - timedelta(days=120),
            basis="授权签字人考核通过（水质类），技术负责人提名 / passed the signatory assessment for water")
    with acts.then(acts.at(118, 14, 0)):
        scopes.approve_signatory_scope(session, quality, scope)
    with acts.then(acts.at(2, 16, 0)):
        scopes.propose_signatory_scope(
            session, technical, signatory, matrix="air", valid_from=acts.today,
            basis="环境空气项目扩项后提名为签字人 / nominated for air after the scope extension")


# ---------------------------------------------------------------- samples


def _samples_ready(acts: lab_demo.DemoActs) -> list[tuple[Sample, datetime, bool]]:
    """The routine river samples whose NH3-N result is of record, oldest first, each with the
    time the analyst recorded the rest and whether it has a TP result. The analyst records the
    laboratory parameters never run not analysed the day after the last batch: COD, CODMn and TN
    (the client dropped them); WT/pH/DO/EC are the sampler's signed field readings, which count
    as done, so the sample is `results_entered`."""
    session, analyst = acts.session, acts.user("analyst")
    requested: dict[int, set[str]] = {}
    for sample_id, parameter in session.execute(select(SampleParameter.sample_id, SampleParameter.parameter).join(
            Sample, Sample.id == SampleParameter.sample_id).where(Sample.state == SampleState.IN_ANALYSIS.value)):
        requested.setdefault(sample_id, set()).add(parameter)
    done: dict[int, dict[str, datetime]] = {}
    for sample_id, parameter, signed in session.execute(
            select(AnalysisResult.sample_id, AnalysisResult.parameter, AnalysisBatch.submitted_at)
            .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
            .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
            .where(AnalysisResult.sample_id.in_(list(requested)), BatchPosition.role == "sample",
                   AnalysisBatch.state == "submitted")):
        done.setdefault(sample_id, {})[parameter] = signed
    chosen = [sample_id for sample_id, wanted in requested.items()
              if wanted == ROUND_TESTS and "NH3-N" in done.get(sample_id, {})]
    ready = []
    tz = lab_calendar(session).tz
    for sample in session.scalars(select(Sample).where(Sample.id.in_(chosen), Sample.kind == SampleKind.ROUTINE.value)
                                  .order_by(Sample.collected_at, Sample.sample_no)):
        signed = max(done[sample.id].values())
        day = signed.astimezone(tz).date() + timedelta(days=1)
        moment = datetime.combine(min(day, acts.today - timedelta(days=1)), time(9, 0), tzinfo=tz)
        with acts.then(moment):
            for parameter in sorted(LAB_TESTS - set(done[sample.id])):
                submission.record_not_analysed(session, analyst, sample, parameter, NOT_RUN_REASON.format(p=parameter))
        session.refresh(sample)
        if sample.state == SampleState.RESULTS_ENTERED.value:
            ready.append((sample, moment, "TP" in done[sample.id]))
    return ready


# ---------------------------------------------------------------- reports


def _pick(ready: list[tuple[Sample, datetime, bool]], count: int, with_tp: bool,
          newest: bool) -> list[tuple[Sample, datetime, bool]]:
    pool = [r for r in ready if r[2] == with_tp]
    picked = pool[-count:] if newest else pool[:count]
    for row in picked:
        ready.remove(row)
    return picked


def _reports(acts: lab_demo.DemoActs, ready: list[tuple[Sample, datetime, bool]]) -> None:
    finished = [s for s in SPECS if s.fate in FINISHED]
    running = [s for s in SPECS if s.fate not in FINISHED]
    planned: list[tuple[_Spec, list[tuple[Sample, datetime, bool]]]] = []
    for spec in finished:
        planned.append((spec, _pick(ready, spec.samples, spec.fate == "out_of_scope", newest=False)))
    # created in the order of their samples' dates, so report numbers follow the calendar
    planned.sort(key=lambda plan: max((moment for _, moment, _ in plan[1]), default=acts.at(0, 0)))
    later = []
    for spec in reversed(running):  # the furthest along gets the older of the newest samples
        later.append((spec, _pick(ready, spec.samples, False, newest=True)))
    planned += reversed(later)
    for spec, rows in planned:
        if rows:
            _one_report(acts, spec, rows)


def _moment(acts: lab_demo.DemoActs, after: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    """`days` working days after `after` at hour:minute, never later than an hour ago."""
    tz = lab_calendar(acts.session).tz
    day = after.astimezone(tz).date()
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    moment = datetime.combine(day, time(hour, minute), tzinfo=tz)
    return min(moment, utcnow().astimezone(tz) - timedelta(hours=1))


def _run_jobs(acts: lab_demo.DemoActs) -> None:
    """Run the jobs the last act queued, here, in the demo's transaction (they would otherwise be
    dispatched after the commit, to a runner that cannot see this transaction until then)."""
    session = acts.session
    pending = session.info.pop(job_queue._PENDING_KEY, [])
    for job_id in pending:
        state = job_queue.run_job(_DemoTransaction(session), settings_of(session), job_id)
        if state != job_queue.JobState.DONE.value:
            job = job_queue.job_by_id(session, job_id)
            raise RuntimeError(f"demo job {job_id} ({job.kind}) ended {state}: {job.error}")


def _one_report(acts: lab_demo.DemoActs, spec: _Spec, rows: list[tuple[Sample, datetime, bool]]) -> Report:
    session, pw = acts.session, acts.password
    analyst, checker, reviewer = acts.user("analyst"), acts.user("checker"), acts.user("reviewer")
    quality = acts.user("quality")
    start = max(moment for _, moment, _ in rows)
    english = spec.language == "en"
    sites = "、".join(dict.fromkeys(s.sample_no.rsplit("-", 2)[0] for s, _, _ in rows))
    title = (f"Surface water monitoring report ({sites})" if english else f"地表水环境质量监测报告（{sites}）")
    limit_set = session.scalars(select(LimitSet.id).where(LimitSet.code == SURFACE_WATER)
                                .order_by(LimitSet.version.desc()).limit(1)).first()
    with acts.then(_moment(acts, start, 0, 14, 0)):
        report = drafts.create_report(session, analyst, title=title, client_name=CLIENT, client_contact=CONTACT,
                                      language=spec.language, limit_set_id=limit_set,
                                      sample_nos=[s.sample_no for s, _, _ in rows])
    if spec.fate == "draft":
        return report
    with acts.then(_moment(acts, start, 1, 9, 30)):
        drafts.submit_report(session, analyst, report, pw)
    if spec.fate == "returned":
        with acts.then(_moment(acts, start, 1, 15, 0)):
            review.return_report(session, checker, report,
                                 "样品编号与采样记录核对时，委托单位联系人有误，请更正后重新提交 / "
                                 "the client contact differs from the request form: correct it and submit again")
        return report
    if spec.fate == "submitted":
        return report
    with acts.then(_moment(acts, start, 2, 10, 0)):
        review.check_report(session, checker, report, pw, "与原始记录核对无误 / agrees with the raw records")
    if spec.fate == "checked":
        return report
    with acts.then(_moment(acts, start, 2, 16, 0)):
        review.review_report(session, reviewer, report, pw,
                             "方法、质控与评价符合要求 / methods, QC and evaluation in order")
    if spec.fate == "reviewed":
        return report
    _approve_and_issue(acts, report, _moment(acts, start, 3, 10, 0))
    if spec.fate == "amended":
        _amend(acts, report, _moment(acts, start, 6, 9, 0))
    elif spec.fate == "withdrawn":
        with acts.then(_moment(acts, start, 5, 11, 0)):
            amendments.withdraw_report(session, quality, report,
                                       "委托方采样计划有误，所测断面并非委托断面，报告作废 / the client's sampling "
                                       "plan named the wrong sections: the report is void", pw)
    return report


def _approve_and_issue(acts: lab_demo.DemoActs, report: Report, moment: datetime) -> None:
    session, signatory = acts.session, acts.user("signatory")
    with acts.then(moment):
        issue.request_rendering(session, signatory, report)
        _run_jobs(acts)
    with acts.then(moment + timedelta(minutes=20)):
        issue.approve_report(session, signatory, report, acts.password)
        _run_jobs(acts)
    session.refresh(report)


def _amend(acts: lab_demo.DemoActs, report: Report, moment: datetime) -> Report:
    """The client's contact was printed wrong: the QM opens -A1, the preparer corrects the header
    and the amendment goes through the three levels again."""
    session, pw = acts.session, acts.password
    analyst = acts.user("analyst")
    with acts.then(moment):
        amendment = amendments.amend_report(session, acts.user("quality"), report,
                                            "委托单位联系人及电话印刷有误，更正后重新出具 / the client's contact "
                                            "person and phone were wrong; corrected and issued again")
    with acts.then(moment + timedelta(hours=1)):
        drafts.update_header(session, analyst, amendment, title=amendment.title, client_name=amendment.client_name,
                             client_contact=CORRECTED_CONTACT, language=amendment.language,
                             limit_set_id=amendment.limit_set_id, target_class=amendment.target_class,
                             remarks=amendment.remarks)
        drafts.submit_report(session, analyst, amendment, pw)
    with acts.then(moment + timedelta(hours=3)):
        review.check_report(session, acts.user("checker"), amendment, pw, "更正内容已核对 / correction checked")
    with acts.then(moment + timedelta(hours=5)):
        review.review_report(session, acts.user("reviewer"), amendment, pw, "同意更正 / correction agreed")
    _approve_and_issue(acts, amendment, _moment(acts, moment, 1, 10, 0))
    return amendment

