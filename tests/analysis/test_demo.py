"""The demo's analysis part (app.analysis.demo): a month of signed NH3-N batches with their QC,
a few TP batches, a spike that failed and was rerun before signing, an ICP-MS batch imported from
a MassHunter file kept by SHA-256, the quality manager's control-chart baselines, today's running
and QC-failed batches; entered through the services at the times of the acts, so the audit chain
holds; and loading it twice adds nothing.

The whole demo is loaded once per engine (module-scoped, like tests/samples/test_lab_demo.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from app.analysis import batches, control_charts, evaluation, qc, qualifications, submission
from app.analysis.demo import COD, METALS_METHOD, NH3N, TARGET_CLASS, TP
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchPosition,
    CorrectiveAction,
    MdlStudy,
    Method,
    MethodVersion,
    QcEvaluation,
    ResultImport,
    SiteLimitSet,
)
from app.core.audit import verify_chain
from app.core.db import utcnow
from app.core.files import StoredFile
from app.core.signatures import ElectronicSignature, check
from tests.conftest import ENGINES
from tests.sites.test_demo import Demo, demo_database, row_counts


@pytest.fixture(scope="module", params=ENGINES)
def analysis_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from demo_database(request, tmp_path_factory, through="analysis")


def _batches(session, code: str, state: str | None = None) -> list[AnalysisBatch]:
    query = (select(AnalysisBatch).join(MethodVersion, MethodVersion.id == AnalysisBatch.method_version_id)
             .join(Method, Method.id == MethodVersion.method_id).where(Method.code == code)
             .order_by(AnalysisBatch.created_at))
    if state is not None:
        query = query.where(AnalysisBatch.state == state)
    return list(session.scalars(query))


def test_a_month_of_signed_nh3n_batches_with_their_qc(analysis_db: Demo) -> None:
    db, analyst = analysis_db.db, analysis_db.users["analyst"]
    with db.reading() as session:
        signed = _batches(session, NH3N, "submitted")
        assert len(signed) >= 22
        days = {b.created_at.astimezone(db.calendar.tz).date() for b in signed}
        assert len(days) == len(signed)
        assert (max(days) - min(days)).days >= 25
        for batch in signed:
            assert batch.qc_passed and batch.analyst_id == analyst.id and batch.submitted_at < utcnow()
            signature = session.get(ElectronicSignature, batch.signature_id)
            assert signature.meaning == "analysed" and signature.signed_at == batch.submitted_at
            assert not check(signature, submission.signed_content(session, batch)).broken
            roles = set(session.scalars(select(BatchPosition.role).where(BatchPosition.batch_id == batch.id)))
            assert {"calibration_blank", "method_blank", "sample", "duplicate", "spike", "crm", "ccv"} <= roles
            kinds = {e.kind for e in qc.latest_evaluations(session, batch.id)}
            assert {"blank", "duplicate", "spike", "crm", "ccv", "curve"} <= kinds
        assert len(_batches(session, TP, "submitted")) >= 3
        values = session.scalars(select(AnalysisResult.value).join(BatchPosition, BatchPosition.id ==
                                 AnalysisResult.position_id).join(AnalysisBatch, AnalysisBatch.id ==
                                 AnalysisResult.batch_id).where(BatchPosition.role == "sample",
                                                                AnalysisResult.parameter == "NH3-N")).all()
        assert values and all(0 < v < 2 for v in values)


def test_a_failing_spike_was_rerun_then_the_batch_signed(analysis_db: Demo) -> None:
    with analysis_db.db.reading() as session:
        (action,) = session.scalars(select(CorrectiveAction)).all()
        assert action.kind == "rerun" and "加标回收率" in action.justification
        batch = session.get(AnalysisBatch, action.batch_id)
        assert batch.state == "submitted" and batch.qc_passed
        failed = session.get(QcEvaluation, action.evaluation_id)
        assert failed.kind == "spike" and failed.passed is False and 65 < failed.value < 80
        assert f"{round(failed.value)}%" in action.justification
        rerun = session.get(BatchPosition, action.rerun_position_id)
        latest = [e for e in qc.latest_evaluations(session, batch.id) if e.kind == "spike"]
        assert [e.position_id for e in latest] == [rerun.id] and latest[0].passed


def test_control_charts_have_history_and_a_baseline(analysis_db: Demo) -> None:
    users = analysis_db.users
    with analysis_db.db.reading() as session:
        method = session.scalars(select(Method).where(Method.code == NH3N)).one()
        for kind in ("spike", "crm"):
            baseline = control_charts.current_baseline(session, method.id, "NH3-N", kind)
            assert baseline is not None and baseline.n == 20 and baseline.std_dev > 0
            assert baseline.set_by_id == users["quality"].id
            chart = control_charts.chart(session, method.id, "NH3-N", kind)
            assert len(chart.points) >= 22 and chart.limits is not None
            inside = [p for p in chart.points if chart.limits.low_3s <= p.value <= chart.limits.high_3s]
            assert len(inside) >= len(chart.points) - 1
        spike_centre = control_charts.current_baseline(session, method.id, "NH3-N", "spike").centre
        assert 95 < spike_centre < 105


def test_an_icpms_batch_imported_from_its_masshunter_file(analysis_db: Demo) -> None:
    with analysis_db.db.reading() as session:
        (imported,) = session.scalars(select(ResultImport)).all()
        batch = session.get(AnalysisBatch, imported.batch_id)
        assert batch.state == "submitted" and _batches(session, METALS_METHOD, "submitted") == [batch]
        stored = session.get(StoredFile, imported.file_id)
        assert stored.sha256 == imported.sha256 and stored.filename.endswith("_metals_batch.csv")
        assert analysis_db.store.read(stored.sha256).startswith(b"Sample,")
        linked = session.scalar(select(func.count()).select_from(AnalysisResult).where(
            AnalysisResult.import_id == imported.id, AnalysisResult.source == "import"))
        assert linked == imported.rows_imported > 10
        assert imported.rows_total > imported.rows_imported  # the calibration rows, listed as unmatched


def test_today_a_running_batch_half_entered_and_one_waiting_for_a_corrective_action(analysis_db: Demo) -> None:
    analyst = analysis_db.users["analyst"]
    with analysis_db.db.reading() as session:
        assert batches.count_my_open(session, analyst) == 2
        assert qc.waiting_batches(session, analyst.id) == 1
        (running,) = _batches(session, METALS_METHOD, "running")
        assert submission.missing_results(session, running)
        assert session.scalar(select(func.count()).select_from(AnalysisResult).where(
            AnalysisResult.batch_id == running.id)) > 0
        (failed,) = _batches(session, METALS_METHOD, "qc_failed")
        failures = [e for e in qc.latest_evaluations(session, failed.id) if e.passed is False]
        assert [e.kind for e in failures] == ["ccv"]


def test_methods_qualifications_and_evaluation_standards(analysis_db: Demo) -> None:
    users = analysis_db.users
    with analysis_db.db.reading() as session:
        codes = set(session.scalars(select(Method.code)))
        assert {NH3N, TP, COD, METALS_METHOD, "HJ 84-2016"} <= codes
        (study,) = session.scalars(select(MdlStudy)).all()
        assert study.n == 7 and study.meets_method and study.performed_by_id == users["analyst"].id
        expiring = qualifications.qualifications_expiring(session, 60)
        assert [(q.user_id, q.method_id) for q in expiring] == [
            (users["analyst"].id, session.scalar(select(Method.id).where(Method.code == COD)))]
        assert qualifications.covering(session, users["checker"].id,
                                       session.scalar(select(Method.id).where(Method.code == NH3N)), utcnow())
        assigned = session.scalars(select(SiteLimitSet)).all()
        assert len({a.site_id for a in assigned}) == len(TARGET_CLASS)
        sample_ids = session.scalars(select(BatchPosition.sample_id).join(
            AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id).where(
            AnalysisBatch.state == "submitted", BatchPosition.role == "sample")).all()
        classes = [e.overall_class for sample_id in sample_ids[:10]
                   for e in evaluation.evaluate_results_of_sample(session, sample_id)]
        assert classes and all(c in {"I", "II", "III", "IV", "V", "劣V"} for c in classes)


def test_every_act_is_in_the_past_and_the_audit_chain_holds(analysis_db: Demo) -> None:
    now = utcnow()
    with analysis_db.db.reading() as session:
        moments = list(session.scalars(select(AnalysisResult.measured_at)))
        moments += list(session.scalars(select(AnalysisBatch.created_at)))
        assert moments and all(m < now for m in moments)
        result = verify_chain(session, None)
    assert result.ok, result.reason


def test_loading_the_demo_twice_adds_nothing_anywhere(analysis_db: Demo) -> None:
    before = row_counts(analysis_db.db)
    # at least 22 NH3-N rounds, a TP batch on every fifth, the ICP-MS round and today's two
    assert before["analysis_batch"] >= 22 + 4 + 1 + 2 and before["analysis_result"] > 300
    analysis_db.load_again()
    assert row_counts(analysis_db.db) == before


def test_the_demo_bench_day_is_a_working_afternoon_whenever_it_is_loaded():
    """Today's ICP-MS work happens at 11:30–14:30 lab time on the latest working day: loaded at
    night or at a weekend, the demo has no bulk off-hours entry (A12) of its own making."""
    from datetime import UTC, datetime

    from app.analysis.demo import last_working_afternoon
    from app.core.labtime import LabCalendar

    calendar = LabCalendar()  # Asia/Shanghai

    def at(local: str) -> datetime:
        return datetime.fromisoformat(local).replace(tzinfo=calendar.tz).astimezone(UTC)

    for now, expected in (("2026-12-02 15:00", "2026-12-02 13:30"),  # Wednesday afternoon: today
                          ("2026-12-02 14:00", "2026-12-01 13:30"),  # not an hour after: the day before
                          ("2026-12-05 03:00", "2026-12-04 13:30"),  # Saturday night: Friday
                          ("2026-12-07 09:00", "2026-12-04 13:30")):  # Monday morning: Friday
        assert last_working_afternoon(calendar, at(now)) == at(expected), now
