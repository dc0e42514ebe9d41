"""Rules A09 (time travel), A10 (holding time exceeded without a deviation), A11 (revised after
the check) and A12 (bulk off-hours and back-dated entries)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import update

from app.analysis.models import AnalysisBatch
from app.analysis.submission import signed_content
from app.core.canonical import content_hash
from app.core.db import utcnow
from app.core.signatures import ElectronicSignature
from app.oversight.rules.base import Finding, ScanWindow, rule_by_code
from app.reports.models import Report, ReportSample, ReviewAct
from app.samples.lab_models import HoldingClock, HoldingDeviation
from tests.oversight.conftest import run_rule

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")


def scan(db, code: str, window: ScanWindow | None = None, **limits: str) -> list[Finding]:
    return run_rule(db, code, window, **limits)

def kinds(found: list[Finding]) -> list[str]:
    return sorted(f.evidence.get("kind", "") for f in found)


def method(lab):
    return lab.method("HJ 535-2009", ("NH3-N", "0.025"))


# ---------------------------------------------------------------- A09


def test_a09_analysis_before_collection_or_receipt(lab, db):
    m = method(lab)
    (early,) = lab.samples(1, collected_at=lab.t(-10))  # collected after the batch started
    (unreceived,) = lab.samples(1, collected_at=lab.t(-48), received_after=timedelta(hours=28))  # received t(-20)
    (fine,) = lab.samples(1, collected_at=lab.t(-48))
    batch = lab.batch(m, started_at=lab.t(-24))
    for s in (early, unreceived, fine):
        lab.result(batch, s, "NH3-N", "0.5")

    found = {f.key: f for f in scan(db, "A09")}

    assert set(found) == {f"analysis:{batch.id}:{early.id}", f"analysis:{batch.id}:{unreceived.id}"}
    assert found[f"analysis:{batch.id}:{early.id}"].evidence["kind"] == "analysis_before_collection_and_receipt"
    f = found[f"analysis:{batch.id}:{unreceived.id}"]
    assert f.evidence["kind"] == "analysis_before_receipt" and f.sample_ids == (unreceived.id,)
    assert f.batch_id == batch.id and f.responsible_user_id == lab.users["analyst"].id
    assert unreceived.sample_no in f.summary_zh and batch.batch_no in f.summary_en


def test_a09_measurement_before_collection_in_a_batch_started_after(lab, db):
    m = method(lab)
    (s,) = lab.samples(1, collected_at=lab.t(-20))
    batch = lab.batch(m, started_at=lab.t(-18))
    lab.result(batch, s, "NH3-N", "0.5", measured_at=lab.t(-21))  # measured before it was collected
    lab.result(batch, lab.samples(1, collected_at=lab.t(-20))[0], "NH3-N", "0.5")  # fine: measured t(-17.5)

    assert [f.key for f in scan(db, "A09")] == [f"analysis:{batch.id}:{s.id}"]


def test_a09_receipt_before_collection(lab, db):
    (s,) = lab.samples(1, collected_at=lab.t(-10), received_after=timedelta(minutes=-30))
    lab.samples(1, collected_at=lab.t(-10), received_after=timedelta(minutes=1))  # a minute later: fine

    found = scan(db, "A09")
    assert [f.key for f in found] == [f"receipt:{s.id}"] and kinds(found) == ["receipt_before_collection"]
    assert found[0].responsible_user_id == lab.users["sampler"].id
    # judged by the time of receipt
    assert scan(db, "A09", ScanWindow(until=utcnow(), since=lab.t(-5))) == []


def test_a09_batch_signed_before_its_analysis(lab, db):
    m = method(lab)
    (s,) = lab.samples(1)
    batch = lab.batch(m, started_at=lab.t(-24), submitted_at=lab.t(-25))
    lab.result(batch, s, "NH3-N", "0.5", entered_at=lab.t(-25.5))
    ok = lab.batch(m, started_at=lab.t(-24), submitted_at=lab.t(-24))  # at the same moment: fine
    lab.result(ok, lab.samples(1)[0], "NH3-N", "0.5", entered_at=lab.t(-24))

    found = scan(db, "A09")
    assert [f.key for f in found] == [f"submitted:{batch.id}"] and found[0].sample_ids == (s.id,)


def test_a09_first_entries_after_an_unsigned_submission_but_not_corrections(lab, db):
    m = method(lab)
    s1, s2 = lab.samples(2)
    batch = lab.batch(m, started_at=lab.t(-24), submitted_at=lab.t(-20))
    lab.result(batch, s1, "NH3-N", "0.5", entered_at=lab.t(-19))  # entered after the signature it is under
    ok = lab.batch(m, started_at=lab.t(-24), submitted_at=lab.t(-20))
    first = lab.result(ok, s2, "NH3-N", "0.5")
    lab.result(ok, lab._position_of(ok, s2), "NH3-N", "0.6", revision=2, supersedes=first, entered_at=lab.t(-19),
               reason="dilution factor corrected")  # a correction with its reason: normal

    found = scan(db, "A09")
    assert [f.key for f in found] == [f"signature:{batch.id}:0"] and kinds(found) == ["signed_before_data"]


def _sign(db, lab, batch: AnalysisBatch, signed_at: datetime) -> ElectronicSignature:
    """An `analysed` signature over the batch's content as it is now, dated `signed_at`."""
    with db.transaction() as session:
        row = session.get(AnalysisBatch, batch.id)
        signature = ElectronicSignature(signer_id=row.analyst_id, printed_name="analyst", meaning="analysed",
                                        signed_at=signed_at, entity_type="analysis_batch", entity_id=str(row.id),
                                        content_hash=content_hash(signed_content(session, row)))
        session.add(signature)
        session.flush()
        row.signature_id = signature.id
        session.expunge(signature)
        return signature


def test_a09_an_intact_signature_older_than_its_data_but_not_a_broken_one(lab, db):
    m = method(lab)
    s1, s2 = lab.samples(2)
    forged = lab.batch(m, started_at=lab.t(-24))
    lab.result(forged, s1, "NH3-N", "0.5", entered_at=lab.t(-10))
    signature = _sign(db, lab, forged, lab.t(-12))  # signs data entered two hours "later"
    corrected = lab.batch(m, started_at=lab.t(-24))
    first = lab.result(corrected, s2, "NH3-N", "0.5")
    _sign(db, lab, corrected, lab.t(-22))
    lab.result(corrected, lab._position_of(corrected, s2), "NH3-N", "0.6", revision=2, supersedes=first,
               entered_at=lab.t(-10), reason="transcription error corrected")  # breaks it: waits for re-signing

    found = scan(db, "A09")
    assert [f.key for f in found] == [f"signature:{forged.id}:{signature.id}"]
    assert found[0].evidence["results"] == 1 and found[0].responsible_user_id == lab.users["analyst"].id

    _sign(db, lab, corrected, lab.t(-5))  # re-signed after the correction: normal
    assert [f.key for f in scan(db, "A09")] == [f"signature:{forged.id}:{signature.id}"]


# ---------------------------------------------------------------- A10


def _clock(db, sample, hours: int | None, parameter: str = "NH3-N") -> None:
    with db.transaction() as session:
        session.execute(update(HoldingClock).where(HoldingClock.sample_id == sample.id,
                                                   HoldingClock.parameter == parameter)
                        .values(allowed_hours=hours, started_at=sample.collected_at,
                                deadline_at=None if hours is None else sample.collected_at + timedelta(hours=hours)))


def test_a10_holding_time_exceeded_without_deviation(lab, db):
    m = method(lab)
    late, in_time, excused, asap = lab.samples(4, collected_at=lab.t(-48))
    _clock(db, late, 23)
    _clock(db, in_time, 24)  # analysed exactly at the deadline: in time
    _clock(db, excused, 12)
    _clock(db, asap, None)  # "as soon as possible": the method sets it, nothing to judge
    with db.transaction() as session:
        session.add(HoldingDeviation(sample_id=excused.id, parameter="NH3-N", act="analysis",
                                     reason="sample arrived late, client agreed", recorded_at=lab.t(-30),
                                     recorded_by_id=lab.users["quality_manager"].id))
    batch = lab.batch(m, started_at=lab.t(-24))
    for s in (late, in_time, excused, asap):
        lab.result(batch, s, "NH3-N", "0.5")

    found = scan(db, "A10")

    assert [f.key for f in found] == [f"{late.id}:NH3-N:{batch.id}"]
    f = found[0]
    assert f.evidence["allowed_hours"] == 23 and f.evidence["elapsed_hours"] == "24.0"
    assert f.evidence["thresholds"] == {"allowed_hours": 23} and f.sample_ids == (late.id,)
    assert late.sample_no in f.summary_zh and batch.batch_no in f.summary_en
    assert rule_by_code("A10").blocks_issue


def test_a10_window(lab, db):
    m = method(lab)
    (s,) = lab.samples(1, collected_at=lab.t(-48))
    _clock(db, s, 12)
    batch = lab.batch(m, started_at=lab.t(-24))
    lab.result(batch, s, "NH3-N", "0.5")

    assert scan(db, "A10", ScanWindow(until=utcnow(), since=lab.t(-10))) == []
    assert len(scan(db, "A10", ScanWindow(until=utcnow(), batch_ids=(batch.id,)))) == 1


# ---------------------------------------------------------------- A11


def _report(db, lab, samples, *acts: tuple[str, str, datetime]) -> Report:
    with db.transaction() as session:
        report = Report(report_no=f"BG2026-{secrets.randbelow(10 ** 6):06d}", base_no="x", title="t",
                        prepared_by_id=lab.users["analyst"].id, created_at=lab.t(-30),
                        verify_token=secrets.token_urlsafe(12))
        report.base_no = report.report_no
        session.add(report)
        session.flush()
        for i, s in enumerate(samples):
            session.add(ReportSample(report_id=report.id, sample_id=s.id, position=i + 1))
        for level, outcome, at in acts:
            session.add(ReviewAct(report_id=report.id, level=level, outcome=outcome, content_sha256="0" * 64,
                                  acted_at=at, actor_id=lab.users["checker"].id, reason="r"))
        session.flush()
        session.expunge(report)
        return report


def test_a11_revision_after_the_check_unless_it_answers_a_return(lab, db):
    m = method(lab)
    s1, s2, s3, s4, s5 = lab.samples(5)
    batch = lab.batch(m, started_at=lab.t(-24))
    firsts = {s.id: lab.result(batch, s, "NH3-N", "0.5") for s in (s1, s2, s3, s4, s5)}

    def revise(sample, at, reason):
        return lab.result(batch, lab._position_of(batch, sample), "NH3-N", "0.6", revision=2,
                          supersedes=firsts[sample.id], entered_at=at, reason=reason)

    report = _report(db, lab, [s1, s2], ("check", "signed", lab.t(-12)))
    _report(db, lab, [s3], ("check", "returned", lab.t(-12)))  # returned at check: never checked
    _report(db, lab, [s4], ("check", "signed", lab.t(-12)), ("review", "returned", lab.t(-11)))
    later = _report(db, lab, [s5], ("check", "signed", lab.t(-12)), ("review", "returned", lab.t(-11)),
                    ("check", "signed", lab.t(-9)))
    silent = revise(s1, lab.t(-10), "recalculated after the check, nobody asked")
    revise(s2, lab.t(-13), "corrected before the check")  # before the check: normal
    revise(s3, lab.t(-10), "corrected after the check returned it")
    revise(s4, lab.t(-10), "corrected as the reviewer's return asked")  # answers the return: review restarts
    after_recheck = revise(s5, lab.t(-8), "changed after the report was checked again")

    found = scan(db, "A11")

    assert sorted(f.key for f in found) == sorted([str(silent.id), str(after_recheck.id)])
    f = next(f for f in found if f.key == str(silent.id))
    assert f.evidence["report_no"] == report.report_no and f.evidence["revision"] == 2
    assert f.sample_ids == (s1.id,) and s1.sample_no in f.summary_zh and report.report_no in f.summary_en
    assert f.responsible_user_id == lab.users["analyst"].id
    assert next(f for f in found if f.key == str(after_recheck.id)).evidence["report_no"] == later.report_no


def test_a11_one_finding_per_revision_and_window(lab, db):
    m = method(lab)
    (s,) = lab.samples(1)
    batch = lab.batch(m, started_at=lab.t(-24))
    first = lab.result(batch, s, "NH3-N", "0.5")
    _report(db, lab, [s], ("check", "signed", lab.t(-12)))
    second = lab.result(batch, lab._position_of(batch, s), "NH3-N", "0.6", revision=2, supersedes=first,
                        entered_at=lab.t(-10), reason="first correction")
    third = lab.result(batch, lab._position_of(batch, s), "NH3-N", "0.7", revision=3, supersedes=second,
                       entered_at=lab.t(-5), reason="second correction")

    assert sorted(f.key for f in scan(db, "A11")) == sorted([str(second.id), str(third.id)])
    assert [f.key for f in scan(db, "A11", ScanWindow(until=utcnow(), since=lab.t(-6)))] == [str(third.id)]


# ---------------------------------------------------------------- A12


def _local(days_back_to: int, hour: int, minute: int = 0) -> datetime:
    """The latest lab-local moment at `hour`:`minute` on weekday `days_back_to` (0 Monday) before now − 1 day."""
    moment = (datetime.now(SHANGHAI) - timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    while moment.weekday() != days_back_to:
        moment -= timedelta(days=1)
    return moment.astimezone(ZoneInfo("UTC"))


def _entries(lab, m, start: datetime, count: int, every: timedelta, analyst=None):
    samples = lab.samples(count, collected_at=start - timedelta(hours=30))
    batch = lab.batch(m, analyst, started_at=start - timedelta(hours=2))
    rows = [lab.result(batch, s, "NH3-N", "0.5", measured_at=start - timedelta(hours=1), entered_at=start + i * every)
            for i, s in enumerate(samples)]
    return batch, rows


def test_a12_bulk_entry_at_night(lab, db):
    m = method(lab)
    night = _local(2, 22)  # a Wednesday, 22:00 lab time
    batch, rows = _entries(lab, m, night, 20, timedelta(seconds=90))  # 20 within 28.5 min

    found = scan(db, "A12")

    assert [f.key for f in found] == [f"bulk:{lab.users['analyst'].id}:{rows[0].id}"]
    f = found[0]
    assert f.evidence["results"] == 20 and f.evidence["kind"] == "bulk_off_hours"
    assert f.evidence["thresholds"] == {"bulk_count": "20", "bulk_minutes": "30", "day_start": "8", "day_end": "18"}
    assert len(f.sample_ids) == 20 and f.responsible_user_id == lab.users["analyst"].id
    assert batch.batch_no in f.summary_en and "22:00" in f.summary_zh
    # on submission: the batch's enterers around the time they entered it
    assert [x.key for x in scan(db, "A12", ScanWindow(until=utcnow(), batch_ids=(batch.id,)))] == [f.key]
    other = lab.batch(m, started_at=lab.t(-3))
    assert scan(db, "A12", ScanWindow(until=utcnow(), batch_ids=(other.id,))) == []


def test_a12_not_bulk_inside_the_working_day_or_below_the_count_or_spread_out(lab, db):
    m = method(lab)
    _entries(lab, m, _local(2, 9), 25, timedelta(seconds=60))  # Wednesday morning: working hours
    _entries(lab, m, _local(1, 20), 19, timedelta(seconds=60))  # Tuesday night, only 19
    _entries(lab, m, _local(3, 19), 20, timedelta(seconds=100))  # Thursday night, 20 over 31.7 min

    assert scan(db, "A12") == []
    assert len(scan(db, "A12", bulk_count="19")) == 2  # the setting is used


def test_a12_weekend_daytime_counts_and_the_window(lab, db):
    m = method(lab)
    saturday = _local(5, 10)
    _, rows = _entries(lab, m, saturday, 22, timedelta(seconds=30))

    found = scan(db, "A12")
    assert len(found) == 1 and found[0].evidence["results"] == 22
    since = rows[-1].entered_at + timedelta(minutes=1)
    assert scan(db, "A12", ScanWindow(until=utcnow(), since=since)) == []


def test_a12_back_dated_entries(lab, db):
    m = method(lab)
    s1, s2, s3 = lab.samples(3, collected_at=lab.t(-60))
    batch = lab.batch(m, started_at=lab.t(-40))
    back = lab.result(batch, s1, "NH3-N", "0.5", measured_at=lab.t(-30), entered_at=lab.t(-5))  # 25 h later
    lab.result(batch, s2, "NH3-N", "0.5", measured_at=lab.t(-29), entered_at=lab.t(-5))  # exactly 24 h: fine
    first = lab.result(batch, s3, "NH3-N", "0.5", measured_at=lab.t(-30), entered_at=lab.t(-29.5))
    lab.result(batch, lab._position_of(batch, s3), "NH3-N", "0.6", revision=2, supersedes=first,
               measured_at=lab.t(-30), entered_at=lab.t(-2), reason="a correction keeps the measurement time")

    found = [f for f in scan(db, "A12") if f.evidence["kind"] == "backdated"]

    assert [f.key for f in found] == [f"backdate:{batch.id}:{lab.users['analyst'].id}"]
    f = found[0]
    assert f.evidence["result_ids"] == [back.id] and f.evidence["max_lag_hours"] == "25.0"
    assert f.evidence["thresholds"] == {"backdate_hours": "24"} and f.sample_ids == (s1.id,)
    assert scan(db, "A12", ScanWindow(until=utcnow(), since=lab.t(-4))) == []


def test_timing_rules_read_windows_of_one_batch(lab, db):
    """On submission the engine scans only the submitted batch."""
    m = method(lab)
    (s,) = lab.samples(1, collected_at=lab.t(-10))
    batch = lab.batch(m, started_at=lab.t(-24))
    lab.result(batch, s, "NH3-N", "0.5")
    other = lab.batch(m, started_at=lab.t(-24))
    window = ScanWindow(until=utcnow(), batch_ids=(other.id,))
    assert scan(db, "A09", window) == []
    assert len(scan(db, "A09", ScanWindow(until=utcnow(), batch_ids=(batch.id,)))) == 1
