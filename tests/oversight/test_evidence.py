"""A report's evidence chain on screen (issue 10 item 3): the record package's content (samples,
field records and photos, custody, every result revision, QC, curves, raw files, calibrations in
force with certificates, material lots, signatures, audit events) with links to each record's page
and file downloads; for inspectors and the quality manager; the same number of queries for a
report over two samples as over six."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.core.errors import PermissionDenied
from app.core.pdf import render_pdf
from app.instruments.models import CalibrationRecord
from app.oversight import evidence
from app.oversight.inspection_errors import EvidenceReportNotFound
from app.people.models import User
from app.reports.archive import plan_package
from app.reports.models import Report, ReviewAct
from tests.conftest import login
from tests.reports.conftest import (  # noqa: F401 (fixtures)
    analyst,
    make_report,
    nh3n_method,
    reportable,
    reportable_samples,
    store,
    technical,
    uv,
)
from tests.reports.test_archive import issue, issued, standards  # noqa: F401 (fixtures)


def test_the_evidence_page_shows_the_records_behind_the_report(db, client, issued):  # noqa: F811
    report, bench = issued.report, issued.reportable.bench
    login(client, "inspector")
    page = client.get(f"/oversight/evidence/{report.report_no}")
    assert page.status_code == 200, page.text
    html = page.text
    for sample in issued.reportable.samples:  # the samples, linked to their pages
        assert f'href="/samples/{sample.sample_no}"' in html
        assert f'data-document="records/samples/{sample.sample_no}/custody.json"' in html
    assert f'href="/batches/{bench.batch.batch_no}"' in html
    # every revision of the corrected result, with its reason
    assert "transcription error corrected" in html and "0.512" in html and "0.515" in html
    # the calibration in force (not the expired one), its page and certificate download
    assert issued.certificate_no in html and "JD-OLD-EXPIRED" not in html
    with db.reading() as session:
        calibration_id = session.scalars(select(CalibrationRecord.id).where(
            CalibrationRecord.certificate_no == issued.certificate_no)).one()
    certificate = f"/instruments/calibrations/{calibration_id}/certificate"
    assert f'href="{certificate}"' in html
    assert client.get(certificate).status_code == 200
    # the raw instrument file, the photo, the CRM lot and its certificate
    assert 'href="/imports/IM26-09001/file"' in html
    assert client.get("/imports/IM26-09001/file").content == issued.raw
    assert issued.photo_sha256 in html and "/photos/" in html
    assert 'data-section="materials"' in html and "/reference-materials/lots/" in html
    # signatures and audit events of those records
    assert 'data-signature="' in html
    for action in ("report.issued", "custody.handover", "analysis.batch_submitted"):
        assert f"<code>{action}</code>" in html, action
    assert f'href="/reports/{report.report_no}/report.pdf"' in html


def test_the_evidence_has_what_the_package_has(db, users, issued):  # noqa: F811
    """The same documents and files as the archive package (its planner decides both)."""
    with db.reading() as session:
        chain = evidence.evidence_chain(session, users["quality_manager"], issued.report.report_no)
        plan = plan_package(session, session.get(Report, issued.report.id))
        planned_paths = [path for path, _, _ in plan.documents]
        planned_files = sorted(f.path for f in plan.files)
    shown = [d.path for s in chain.sections for d in s.documents]
    assert sorted(shown) == sorted(planned_paths)
    assert sorted(f.path for f in chain.files) == planned_files
    assert all(f.href for f in chain.files), [f for f in chain.files if not f.href]  # every file downloadable
    assert chain.events_total == len(chain.events) and chain.next_after is None


def test_the_summary_tables_say_which_sample_and_who(db, users, issued):  # noqa: F811
    """A review act is read by its level, time and person; a report's sample by its number, not
    its database id (the full record with every id stays below each table)."""
    with db.transaction() as session:
        for level, who in (("check", "checker"), ("review", "reviewer")):
            session.add(ReviewAct(report_id=issued.report.id, level=level, outcome="signed", content_sha256="0" * 64,
                                  acted_at=utcnow(), actor_id=users[who].id))
    with db.reading() as session:
        chain = evidence.evidence_chain(session, users["quality_manager"], issued.report.report_no)
        report = session.get(Report, issued.report.id)
        acts = session.scalars(select(ReviewAct).where(ReviewAct.report_id == report.id).order_by(ReviewAct.id)).all()
        names = [session.get(User, a.actor_id).printed_name for a in acts]
        levels = [a.level for a in acts]
        sample_nos = [s.sample_no for s in issued.reportable.samples]
    document = next(d for s in chain.sections for d in s.documents if d.path == "report/report.json")
    tables = {t.name: t for t in document.tables}
    review = tables["review_acts"]
    assert {"level", "outcome", "acted_at", "by"} <= set(review.columns), review.columns
    rows = [dict(zip(review.columns, row, strict=True)) for row in review.rows]
    assert [r["level"] for r in rows] == levels and [r["by"] for r in rows] == names
    assert names[-2:] == [users["checker"].printed_name, users["reviewer"].printed_name]
    placed = tables["samples"]
    assert "sample" in placed.columns, placed.columns
    shown = [dict(zip(placed.columns, row, strict=True))["sample"] for row in placed.rows]
    assert sorted(shown) == sorted(sample_nos)


def test_audit_events_come_a_page_at_a_time(db, users, issued):  # noqa: F811
    with db.reading() as session:
        first = evidence.evidence_chain(session, users["inspector"], issued.report.report_no, events_limit=3)
        second = evidence.evidence_chain(session, users["inspector"], issued.report.report_no,
                                         events_after=first.next_after, events_limit=3)
        assert len(first.events) == 3 and first.next_after == first.events[-1].seq
        assert second.events[0].seq > first.events[-1].seq
        assert first.events_total == second.events_total > 6


def test_who_may_open_the_evidence(db, client, users, reportable):  # noqa: F811
    draft = make_report(db, reportable.preparer, reportable.samples)  # any report, a draft too
    with db.reading() as session:
        with pytest.raises(PermissionDenied):
            evidence.evidence_chain(session, users["analyst"], draft.report_no)
        with pytest.raises(EvidenceReportNotFound):
            evidence.evidence_chain(session, users["inspector"], "BG2026-9999")
        chain = evidence.evidence_chain(session, users["quality_manager"], draft.report_no)
    assert all(f.sha256 for f in chain.files)  # a draft has no signed PDF to list
    token = login(client, "analyst")
    assert client.get(f"/oversight/evidence/{draft.report_no}").status_code == 403
    client.post("/logout", data={"csrf_token": token})
    login(client, "quality-manager")
    page = client.get(f"/oversight/evidence/{draft.report_no}")
    assert page.status_code == 200 and reportable.samples[0].sample_no in page.text
    assert client.get("/oversight/evidence/BG2026-9999").status_code == 404


def test_the_evidence_takes_the_same_queries_for_two_samples_as_for_six(db, client, users, reportable, store,  # noqa: F811
                                                                         nh3n_method, uv, count_queries):  # noqa: F811
    small = issue(db, make_report(db, reportable.preparer, reportable.samples, state="issued"), store,
                  reportable.signatory, render_pdf("<p>2</p>"))
    more = [s for prefix in ("WS02-261203", "WS03-261203")
            for s in reportable_samples(db, users, nh3n_method, uv, prefix=prefix)[1]]
    large = issue(db, make_report(db, reportable.preparer, reportable.samples + more, state="issued"), store,
                  reportable.signatory, render_pdf("<p>6</p>"))
    services, pages = [], []
    login(client, "inspector")
    for report in (small, large):
        with db.reading() as session, count_queries() as counter:
            chain = evidence.evidence_chain(session, users["inspector"], report.report_no)
        services.append(counter.count)
        assert len([d for s in chain.sections for d in s.documents if d.path.endswith("/sample.json")]) in (2, 6)
        with count_queries() as counter:
            assert client.get(f"/oversight/evidence/{report.report_no}").status_code == 200
        pages.append(counter.count)
    assert services[0] == services[1], services
    assert pages[0] == pages[1], pages


def test_a_report_over_no_samples_still_opens(db, client, users):
    """The evidence of an odd report (issued over no samples, no PDF) opens rather than failing."""
    report = make_report(db, users["analyst"], [], state="issued", report_no="BG2026-EMPTY")
    login(client, "inspector")
    page = client.get(f"/oversight/evidence/{report.report_no}")
    assert page.status_code == 200, page.text
    assert 'data-document="report/report.json"' in page.text
