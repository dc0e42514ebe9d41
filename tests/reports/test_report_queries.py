"""A report's checks read its analysis batches together: the signed content of many batches is
the one-batch content byte for byte (a rerun with its corrective action, a revised result, a batch
never evaluated), and the checklist, the broken-batch check and the report page run the same
number of queries for a report over one batch as over four (no query per batch)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.analysis import qc, submission
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, CorrectiveAction
from app.core.canonical import canonical_json, content_hash
from app.core.db import Database, utcnow
from app.oversight import anomalies
from app.people.models import User
from app.reference_materials.models import MaterialUse
from app.reports import checklist, drafts
from app.reports.content import load_content
from app.reports.models import Report
from tests.analysis.conftest import qualify, samples_in_lab
from tests.analysis.qc_fixtures import (
    PASSING,
    STANDARD_LAYOUT,
    Bench,
    act_corrective,
    enter,
    evaluate,
    find,
    running_batch,
    submit,
)
from tests.conftest import PASSWORD, login, make_user
from tests.reference_materials.conftest import make_lot, make_material, open_unit, receive
from tests.reports.conftest import make_report

SAMPLE_ROW = '<tr data-sample="'


# ---------------------------------------------------------------- the signed content of many batches


def _one_batch_reading(session, batch: AnalysisBatch) -> dict:
    """The content as the one-batch readers give it (qc.current_results, qc.latest_evaluations and
    queries on this batch alone), laid out as signed: the reference the batched reading must equal."""
    positions = list(session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                     .order_by(BatchPosition.position)))
    from app.samples.models import Sample

    sample_nos = dict(session.execute(select(Sample.id, Sample.sample_no).where(
        Sample.id.in_({p.sample_id for p in positions if p.sample_id}))).all())
    actions = list(session.scalars(select(CorrectiveAction).where(CorrectiveAction.batch_id == batch.id)
                                   .order_by(CorrectiveAction.id)))
    return submission._content(batch, positions, sample_nos, qc.current_results(session, batch.id).values(),
                               qc.latest_evaluations(session, batch.id), actions)


def _bench(db: Database, users, method, uv, prefix: str, layout=STANDARD_LAYOUT) -> Bench:
    samples = samples_in_lab(db, users["custodian"], count=2, prefix=prefix)
    return running_batch(db, users["analyst"], method, samples, instrument=uv, layout=layout)


def test_many_batches_read_together_sign_the_same_content_as_one_by_one(db, users, nh3n_method, uv,
                                                                       count_queries):
    qualify(db, users["analyst"], nh3n_method.method_id)
    plain = _bench(db, users, nh3n_method, uv, "WS11-261204")
    enter(db, plain, PASSING)
    submit(db, plain, PASSWORD)
    # a spike that failed, answered by a rerun whose result passed
    rerun = _bench(db, users, nh3n_method, uv, "WS12-261204")
    enter(db, rerun, {**PASSING, "S-002SP": "0.590"})
    act_corrective(db, rerun.analyst, find(evaluate(db, rerun), "spike"), "rerun",
                   "spike recovery low: matrix interference suspected, re-measured")
    enter(db, rerun, {"S-002SP-R1": "0.650"})
    submit(db, rerun, PASSWORD)
    # a result revised after signing
    revised = _bench(db, users, nh3n_method, uv, "WS13-261204")
    enter(db, revised, PASSING)
    submit(db, revised, PASSWORD)
    enter(db, revised, {"S-001": "0.515"}, reason="transcription error corrected")
    # results entered, never evaluated nor signed
    unsigned = _bench(db, users, nh3n_method, uv, "WS14-261204")
    enter(db, unsigned, PASSING)
    ids = [b.batch.id for b in (plain, rerun, revised, unsigned)]
    with db.reading() as session:
        batches = [session.get(AnalysisBatch, i) for i in ids]
        with count_queries() as all_four:
            together = submission.signed_contents(session, batches)
        with count_queries() as just_one:
            submission.signed_contents(session, batches[:1])
        assert sorted(together) == sorted(ids)
        for batch in batches:
            alone = canonical_json(submission.signed_content(session, batch))
            assert canonical_json(together[batch.id]) == alone == canonical_json(_one_batch_reading(session, batch))
        by_id = {b.id: together[b.id] for b in batches}
        assert by_id[rerun.batch.id]["corrective_actions"][0]["rerun_position"] == len(rerun.positions) + 1
        assert by_id[rerun.batch.id]["positions"][-1]["rerun_of"] == rerun.at("S-002SP").position
        assert by_id[rerun.batch.id]["qc_run"] >= 2
        assert [(r["parameter"], r["revision"], r["value"]) for r in by_id[revised.batch.id]["results"]
                if r["position"] == revised.at("S-001").position] == [("NH3-N", 2, "0.515")]
        assert by_id[unsigned.batch.id]["qc_run"] == 0 and by_id[unsigned.batch.id]["evaluations"] == []
        with count_queries() as views_counted:
            views = submission.signature_views(session, batches)
        assert views[plain.batch.id].intact and views[rerun.batch.id].intact
        assert views[revised.batch.id].broken and views[unsigned.batch.id] is None
        assert views[plain.batch.id].signature.content_hash == content_hash(together[plain.batch.id])
        assert submission.signature_view(session, batches[2]).broken
    assert all_four.count == just_one.count == 5, (all_four.statements, just_one.statements)
    assert views_counted.count == 6, views_counted.statements  # the signatures, then the five


# ---------------------------------------------------------------- a report over one batch and over four


def _analysed_batch(db: Database, users, method, uv, prefix: str, use_id: int) -> list:
    """Two samples in a QC-passed batch signed by users['analyst'], its CRM a unit of a lot in
    stock; the second sample measured after the first, as a run goes: the
    instrument is judged at the first and the last measurement of the report whatever the number
    of batches (and before each change of its record), so every report here has two moments."""
    layout = tuple((label, role, index, of, {**extra, "material_use_id": use_id} if label == "CRM1" else extra)
                   for label, role, index, of, extra in STANDARD_LAYOUT)
    bench = _bench(db, users, method, uv, prefix, layout)
    enter(db, bench, {label: value for label, value in PASSING.items() if label != "S-002"})
    enter(db, bench, {"S-002": PASSING["S-002"]})  # measured at its own (later) moment
    submit(db, bench, PASSWORD)
    return bench.samples


def _reports(db: Database, users, method, uv, technical, store) -> tuple[Report, Report, User]:
    """A report over one batch and one over four, every batch using the same CRM unit. The analyst
    enters 22 results in seconds: whenever the suite runs in the evening or at a weekend that is a
    bulk off-hours entry (A12), so the rule is switched off here to keep every checklist item ok."""
    with db.transaction() as session:
        anomalies.set_rule_settings(session, users["quality_manager"], "A12", enabled=False, thresholds={},
                                    reason="fixture data entered at the suite's wall-clock hour")
    qualify(db, users["analyst"], method.method_id)
    lot = make_lot(db, technical, store, make_material(db, technical))
    unit = open_unit(db, technical, receive(db, technical, lot)[0])
    with db.transaction() as session:
        use = MaterialUse(item_kind="unit", item_id=unit.id, used_at=utcnow() - timedelta(hours=2), purpose="CRM",
                          recorded_at=utcnow(), recorded_by_id=users["analyst"].id)
        session.add(use)
        session.flush()
        use_id = use.id
    preparer = make_user(db, "preparer", "analyst")
    one = make_report(db, preparer, _analysed_batch(db, users, method, uv, "WS21-261204", use_id))
    samples = []
    for n in range(22, 26):
        samples += _analysed_batch(db, users, method, uv, f"WS{n}-261204", use_id)
    return one, make_report(db, preparer, samples), preparer


def test_the_checklist_and_the_broken_batch_check_do_not_grow_with_the_batches(db, users, nh3n_method, uv,
                                                                              technical, store, count_queries):
    one, four, _ = _reports(db, users, nh3n_method, uv, technical, store)
    used, broken_used = [], []
    for report, batches in ((one, 1), (four, 4)):
        with db.reading() as session:
            row = session.get(Report, report.id)
            content = load_content(session, row)
            assert len(content.batches) == batches
            with count_queries() as counted:
                found = checklist.compute_checklist(session, row, content)
            used.append(counted.count)
            assert {i.code: i.status for i in found.items} == dict.fromkeys(
                [i.code for i in found.items], "ok"), found.as_record()
            with count_queries() as counted:
                assert drafts.broken_batches(session, content) == []
            broken_used.append(counted.count)
    assert used[0] == used[1], used
    assert broken_used[0] == broken_used[1] == 6, broken_used
    # a result revised after signing: the same queries, and the batch is named
    batch_id = next(iter(_batch_ids(db, four)))
    with db.transaction() as session:
        position = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch_id,
                                                               BatchPosition.label == "S-001")).one()
        last = session.scalars(select(AnalysisResult).where(AnalysisResult.position_id == position.id)).one()
        session.add(AnalysisResult(
            batch_id=batch_id, position_id=position.id, sample_id=position.sample_id, parameter=last.parameter,
            revision=2, supersedes_id=last.id, reason="transcription error corrected",
            method_version_id=last.method_version_id, reading=last.reading, value=last.value + 1, unit=last.unit,
            below_mdl=False, measured_at=last.measured_at, entered_at=utcnow(), entered_by_id=last.entered_by_id))
    with db.reading() as session:
        row = session.get(Report, four.id)
        content = load_content(session, row)
        with count_queries() as counted:
            found = checklist.compute_checklist(session, row, content)
        assert found.by_code()["analyst_signatures"].status == "fail"
        with count_queries() as broken_counted:
            assert [b.id for b in drafts.broken_batches(session, content)] == [batch_id]
    # the signatures cost the same; the revisions item now reads the history and who entered it
    assert counted.count == used[1] + 2 and broken_counted.count == 6, (counted.count, used, broken_counted.count)


def _batch_ids(db: Database, report: Report) -> list[int]:
    with db.reading() as session:
        return sorted(load_content(session, session.get(Report, report.id)).batches)


def test_the_report_page_runs_the_same_queries_over_one_batch_as_over_four(db, users, nh3n_method, uv,
                                                                           technical, store, client, count_queries):
    one, four, _ = _reports(db, users, nh3n_method, uv, technical, store)
    for reader in ("inspector", "checker"):  # reads only; may check (no form on a draft)
        login(client, users[reader].username)
        counts = []
        for report, samples in ((one, 2), (four, 8)):
            with count_queries() as counted:
                page = client.get(f"/reports/{report.report_no}")
            assert page.status_code == 200 and page.text.count(SAMPLE_ROW) == samples
            assert 'id="checklist"' in page.text and 'data-check="materials"' in page.text
            counts.append(counted.count)
        assert counts[0] == counts[1], (reader, counts)


def test_the_batched_analyst_and_standard_items_decide_as_the_gates_do(db, users, nh3n_method, uv, technical,
                                                                        store):
    """The qualifications and the lot status changes read once are judged as `covering` and
    `check_material` judge them one batch at a time, at the boundaries too (a revocation at the
    very start of a batch; a lot quarantined from one batch's start and released at the next)."""
    from app.analysis.models import Qualification
    from app.analysis.qualifications import covering
    from app.reference_materials.gate import check_material
    from app.reference_materials.models import LotStatusChange, StockUnit

    _, four, _ = _reports(db, users, nh3n_method, uv, technical, store)
    analyst = users["analyst"]

    def judged(code: str) -> tuple[list[str], list[str]]:
        with db.reading() as session:
            row = session.get(Report, four.id)
            content = load_content(session, row)
            shown = " | ".join(checklist.compute_checklist(session, row, content).by_code()[code].lines("en"))
            batches = sorted(content.batches.values(), key=lambda b: b.batch_no)
            if code == "analysts":
                refused = [b.batch_no for b in batches
                           if covering(session, analyst.id, nh3n_method.method_id, b.started_at) is None]
            else:
                unit = session.scalars(select(StockUnit)).one()
                refused = [b.batch_no for b in batches if not check_material(session, unit, b.started_at).usable]
            return [b.batch_no for b in batches if f"{b.batch_no}" in shown], refused

    with db.reading() as session:
        starts = sorted(load_content(session, session.get(Report, four.id)).batches.values(),
                        key=lambda b: b.batch_no)
        starts = [(b.batch_no, b.started_at) for b in starts]
    assert judged("analysts") == ([], [])
    with db.transaction() as session:
        for q in session.scalars(select(Qualification).where(Qualification.user_id == analyst.id)):
            q.revoked_at, q.revoked_by_id, q.revoke_reason = starts[2][1], technical.id, "examination failed"
    named, refused = judged("analysts")
    assert named == refused == [no for no, _ in starts[2:]]
    assert judged("materials") == ([], [])
    with db.transaction() as session:
        lot_id = session.scalars(select(StockUnit.lot_id)).one()
        session.add_all([
            LotStatusChange(lot_id=lot_id, status="quarantined", reason="suspected contamination",
                            effective_at=starts[1][1], recorded_at=utcnow(), recorded_by_id=technical.id),
            LotStatusChange(lot_id=lot_id, status="active", reason="released after verification",
                            effective_at=starts[2][1], recorded_at=utcnow(), recorded_by_id=technical.id)])
    named, refused = judged("materials")
    assert named == refused == [starts[1][0]]
