"""The review checklist, computed from the records: each item passes on clean data and turns to
warn or fail on its own cause (QC failure unresolved or qualified, holding time exceeded with or
without a deviation, instrument out of service at measurement, analyst without a 上岗证 at the
start, broken batch signature, custody gap, revised results, pending lines), registered sources
add items, and the query count does not grow with the number of samples."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select, update

from app.analysis.models import AnalysisBatch, CorrectiveAction, QcEvaluation, Qualification
from app.core.db import utcnow
from app.instruments.models import ServiceChange
from app.reports import checklist
from app.reports.content import load_content
from app.reports.models import Report
from app.samples.lab_models import HoldingClock, HoldingDeviation
from app.samples.models import Sample, SampleParameter
from tests.analysis.qc_fixtures import enter
from tests.reports.conftest import make_report


def compute(db, report) -> checklist.Checklist:
    with db.reading() as session:
        row = session.get(Report, report.id)
        return checklist.compute_checklist(session, row, load_content(session, row))


def statuses(found: checklist.Checklist) -> dict[str, str]:
    return {i.code: i.status for i in found.items}


def details(found: checklist.Checklist, code: str) -> str:
    return " | ".join(found.by_code()[code].lines("en"))


CODES = ["completeness", "qc", "holding", "instruments", "materials", "analysts", "analyst_signatures", "custody",
         "receipt", "revisions", "alarms"]  # the last one registered by app.oversight.anomalies


def test_clean_data_passes_every_item(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    found = compute(db, report)
    assert [i.code for i in found.items] == CODES
    assert statuses(found) == dict.fromkeys(CODES, "ok")
    assert not found.blocking


def test_pending_lines_fail_completeness(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.transaction() as session:
        session.add(SampleParameter(sample_id=reportable.samples[0].id, parameter="TP"))
    found = compute(db, report)
    assert statuses(found)["completeness"] == "fail" and found.blocking
    assert f"{reportable.samples[0].sample_no} TP" in details(found, "completeness")


def _failed_check(db, reportable) -> QcEvaluation:
    with db.transaction() as session:
        last = session.scalars(select(QcEvaluation).where(QcEvaluation.batch_id == reportable.bench.batch.id)
                               .order_by(QcEvaluation.run.desc(), QcEvaluation.id)).first()
        row = QcEvaluation(batch_id=last.batch_id, run=last.run + 1, method_id=last.method_id, parameter="NH3-N",
                           kind="spike", position_id=reportable.bench.positions["S-002SP"].id, value=D("62.5"),
                           limit_low=D("80"), limit_high=D("120"), passed=False, detail='{"label":"S-002SP"}',
                           evaluated_at=utcnow())
        session.add(row)
        session.flush()
        session.expunge(row)
        return row


def test_an_unresolved_qc_failure_fails_and_a_qualifier_warns(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    failed = _failed_check(db, reportable)
    found = compute(db, report)
    assert statuses(found)["qc"] == "fail"
    assert "S-002SP" in details(found, "qc") and "no corrective action" in details(found, "qc")
    with db.transaction() as session:
        session.add(CorrectiveAction(batch_id=failed.batch_id, evaluation_id=failed.id, kind="qualifier",
                                     qualifier="Q-SPK", justification="matrix interference documented",
                                     recorded_at=utcnow(), recorded_by_id=reportable.analyst.id))
    found = compute(db, report)
    assert statuses(found)["qc"] == "warn"
    assert "qualifier Q-SPK" in details(found, "qc")


def test_holding_time_exceeded_fails_and_a_deviation_warns(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    sample = reportable.samples[0]
    with db.transaction() as session:
        started = session.get(AnalysisBatch, reportable.bench.batch.id).started_at
        session.execute(update(HoldingClock).where(HoldingClock.sample_id == sample.id)
                        .values(deadline_at=started - timedelta(hours=1)))
    found = compute(db, report)
    assert statuses(found)["holding"] == "fail"
    assert f"{sample.sample_no} NH3-N" in details(found, "holding")
    with db.transaction() as session:
        session.add(HoldingDeviation(sample_id=sample.id, parameter="NH3-N", act="analysis",
                                     reason="instrument repair delayed the analysis", recorded_at=utcnow(),
                                     recorded_by_id=reportable.analyst.id))
    found = compute(db, report)
    assert statuses(found)["holding"] == "warn"
    assert "instrument repair delayed" in details(found, "holding")


def test_an_instrument_out_of_service_at_measurement_fails(db, reportable, uv):
    report = make_report(db, reportable.preparer, reportable.samples)
    moment = utcnow() - timedelta(hours=3)
    with db.transaction() as session:
        session.add(ServiceChange(instrument_id=uv.id, action="out_of_service", reason="lamp failure",
                                  effective_from=moment, event_day=moment.date(), recorded_at=utcnow(),
                                  recorded_by_id=reportable.analyst.id))
    found = compute(db, report)
    assert statuses(found)["instruments"] == "fail"
    assert uv.asset_no in details(found, "instruments")


def test_an_analyst_without_a_qualification_at_the_start_fails(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.transaction() as session:
        started = session.get(AnalysisBatch, reportable.bench.batch.id).started_at
        session.execute(update(Qualification).where(Qualification.user_id == reportable.analyst.id)
                        .values(revoked_at=started - timedelta(minutes=5), revoked_by_id=reportable.analyst.id,
                                revoke_reason="test"))
    found = compute(db, report)
    assert statuses(found)["analysts"] == "fail"
    assert reportable.bench.batch.batch_no in details(found, "analysts")


def test_a_broken_batch_signature_fails(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    enter(db, reportable.bench, {"BLK1": "0.019"}, reason="blank re-read after rinsing")
    found = compute(db, report)
    assert statuses(found)["analyst_signatures"] == "fail"
    assert "re-sign the corrected batch" in details(found, "analyst_signatures")


def test_custody_gap_and_revisions_warn(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id == reportable.samples[1].id).values(custody_gap=True))
    enter(db, reportable.bench, {"S-001": "0.515"}, reason="transcription error corrected")
    found = compute(db, report)
    assert statuses(found)["custody"] == "warn"
    assert reportable.samples[1].sample_no in details(found, "custody")
    assert statuses(found)["revisions"] == "warn"
    text = details(found, "revisions")
    assert "0.512 → 0.515 mg/L" in text and "transcription error corrected" in text and "revision 2" in text
    assert not any(i.failed for i in found.items if i.code in ("custody", "revisions"))


def test_registered_sources_add_items(db, reportable, monkeypatch):
    monkeypatch.setattr(checklist, "CHECKLIST_SOURCES", [])
    report = make_report(db, reportable.preparer, reportable.samples)
    assert "alarms" not in statuses(compute(db, report))

    def alarms(session, report, content):
        return [checklist.item("alarms", "fail", [("A03 未处置", "A03 open")], title="Open anomaly alarms",
                               title_zh="未处置的异常报警")]

    assert checklist.add_checklist_source(alarms) is alarms
    checklist.add_checklist_source(alarms)
    found = compute(db, report)
    assert [i.code for i in found.items] == [*CODES[:-1], "alarms"]
    assert found.blocking and found.by_code()["alarms"].summary("zh").startswith("未处置的异常报警")
    with pytest.raises(ValueError):
        checklist.item("x", "maybe")


def test_the_query_count_does_not_grow_with_the_samples(db, reportable, count_queries):
    one = make_report(db, reportable.preparer, reportable.samples[:1])
    both = make_report(db, reportable.preparer, reportable.samples)
    enter(db, reportable.bench, {"S-001": "0.515", "S-002": "0.205"}, reason="transcription error corrected")
    used = []
    for report in (one, both):
        with db.reading() as session:
            row = session.get(Report, report.id)
            content = load_content(session, row)
            with count_queries() as counted:
                found = checklist.compute_checklist(session, row, content)
            used.append(counted.count)
            assert statuses(found)["revisions"] == "warn"
    assert used[0] == used[1] and used[1] <= 25, used


def test_a_standard_not_usable_at_the_time_of_use_fails(db, users, reportable, technical, store, nh3n_method, uv):
    """A CRM unit received after the batch started cannot have been used in it."""
    from app.reference_materials.models import MaterialUse
    from tests.analysis.conftest import samples_in_lab
    from tests.analysis.qc_fixtures import PASSING, STANDARD_LAYOUT, running_batch, submit
    from tests.conftest import PASSWORD
    from tests.reference_materials.conftest import make_lot, make_material, receive

    lot = make_lot(db, technical, store, make_material(db, technical))
    unit = receive(db, technical, lot, received_at=utcnow() - timedelta(minutes=10))[0]
    with db.transaction() as session:
        use = MaterialUse(item_kind="unit", item_id=unit.id, used_at=utcnow() - timedelta(hours=2), purpose="CRM",
                          recorded_at=utcnow(), recorded_by_id=reportable.analyst.id)
        session.add(use)
        session.flush()
        use_id = use.id
    layout = tuple((label, role, index, of, {**extra, "material_use_id": use_id} if label == "CRM1" else extra)
                   for label, role, index, of, extra in STANDARD_LAYOUT)
    samples = samples_in_lab(db, users["custodian"], count=2, prefix="WS02-261203")
    bench = running_batch(db, reportable.analyst, nh3n_method, samples, instrument=uv, layout=layout)
    enter(db, bench, PASSING)
    submit(db, bench, PASSWORD)
    report = make_report(db, reportable.preparer, samples)
    found = compute(db, report)
    assert statuses(found)["materials"] == "fail"
    assert f"{bench.batch.batch_no} CRM1" in details(found, "materials") and unit.barcode in details(found, "materials")
    assert statuses(compute(db, make_report(db, reportable.preparer, reportable.samples)))["materials"] == "ok"


def test_a_qc_failure_answered_by_a_rerun_is_listed_but_passes(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    failed = _failed_check(db, reportable)
    with db.transaction() as session:
        session.add(CorrectiveAction(batch_id=failed.batch_id, evaluation_id=failed.id, kind="rerun",
                                     justification="spike re-prepared and rerun", recorded_at=utcnow(),
                                     recorded_by_id=reportable.analyst.id))
    found = compute(db, report)
    assert statuses(found)["qc"] == "ok"
    assert "rerun: spike re-prepared" in details(found, "qc")


def test_a_conditional_receipt_warns_with_its_deviation(db, reportable, users):
    from app.core.signatures import ElectronicSignature
    from app.samples.lab_models import Delivery, ReceiptCheck, SampleReceipt

    custodian, sample = users["custodian"], reportable.samples[1]
    report = make_report(db, reportable.preparer, reportable.samples)
    now = utcnow()
    with db.transaction() as session:
        signature = ElectronicSignature(signer_id=custodian.id, printed_name=custodian.printed_name,
                                        meaning="received", signed_at=now, entity_type="delivery", entity_id="1",
                                        content_hash="0" * 64)
        delivery = Delivery(code="RC26-09998", state="signed", arrived_at=now, opened_at=now,
                            opened_by_id=custodian.id)
        session.add_all([signature, delivery])
        session.flush()
        check = ReceiptCheck(delivery_id=delivery.id, sample_id=sample.id, decision="accept_with_conditions",
                             deviation="arrived at 9 °C, above 0–4 °C", consent_by="client Liu",
                             consent_ref="phone 2026-12-03", recorded_at=now, recorded_by_id=custodian.id)
        session.add(check)
        session.flush()
        session.add(SampleReceipt(sample_id=sample.id, delivery_id=delivery.id, check_id=check.id,
                                  decision="accept_with_conditions", received_at=now, received_by_id=custodian.id,
                                  signature_id=signature.id))
    found = compute(db, report)
    assert statuses(found)["receipt"] == "warn" and not found.blocking
    assert f"{sample.sample_no}: received with conditions: arrived at 9 °C" in details(found, "receipt")
    assert "agreed by client Liu" in details(found, "receipt")
