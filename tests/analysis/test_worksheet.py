"""The worksheet read model: positions in run order with the places waiting for a standard, the
current (highest) revision of each result, a query count that does not grow from 20 samples to
200 samples × 10 parameters, and a run-sequence CSV in which no cell can start a formula."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal as D

from sqlalchemy import insert, select

from app.analysis import worksheet
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition
from app.core.db import utcnow
from tests.analysis.batch_fixtures import *  # noqa: F403
from tests.analysis.batch_fixtures import build, lab_samples, standards_for
from tests.analysis.conftest import ParameterSpec, calibrated_instrument, make_method, qualify

TEN = tuple(f"P{i:02d}" for i in range(10))


def add_results(db, batch, analyst, *, revisions: int = 1) -> None:
    """A result for every position × parameter of the batch (revision 1..`revisions`)."""
    with db.transaction() as session:
        positions = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)).all()
        parameters = json.loads(batch.parameters)
        now = utcnow()
        session.execute(insert(AnalysisResult), [
            {"batch_id": batch.id, "position_id": p.id, "sample_id": p.sample_id, "parameter": name,
             "revision": revision, "reason": "" if revision == 1 else "转录错误更正",
             "method_version_id": batch.method_version_id, "reading": D("0.1") * revision,
             "value": D("0.1") * revision, "unit": "mg/L", "measured_at": now, "entered_at": now,
             "entered_by_id": analyst.id}
            for p in positions for name in parameters for revision in range(1, revisions + 1)])


def sheet_of(db, batch):
    with db.reading() as session:
        sheet = worksheet.worksheet(session, session.get(AnalysisBatch, batch.id))
        return sheet, worksheet.sequence_csv(sheet)


def test_the_worksheet_shows_waiting_places_and_current_results(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 4)
    batch = build(db, analyst, samples, standards={"ccv": standards_for(standards)["ccv"]})
    add_results(db, batch, analyst, revisions=2)
    with db.reading() as session:
        sheet = worksheet.worksheet(session, session.get(AnalysisBatch, batch.id))
        assert [line.position for line in sheet.lines] == list(range(1, len(sheet.lines) + 1))
        missing = [line.label for line in sheet.missing]
        assert missing[0] == "CRM1" and missing[1].endswith("SP") and sheet.missing_roles == ["crm", "spike"]
        written = [line for line in sheet.lines if line.row]
        assert all(line.results["NH3-N"].revision == 2 and line.results["NH3-N"].value == D("0.2")
                   for line in written)
        assert not any(line.results for line in sheet.missing)
        first = next(line for line in sheet.lines if line.role == "sample")
        assert first.deadline is not None and sheet.reading(first) is not None
        assert first.sample.sample_no == samples[-1].sample_no  # the oldest sample runs first
        ccv = next(line for line in sheet.lines if line.role == "ccv")
        assert ccv.standard == standards.working.barcode and ccv.expected_value == D("0.500")
        duplicate = next(line for line in sheet.lines if line.role == "duplicate")
        assert duplicate.of_label and duplicate.label == f"{duplicate.of_label}D"


def test_the_worksheet_query_count_is_constant_up_to_200_samples_by_10_parameters(db, users, analyst, technical,
                                                                                   store, count_queries):
    instrument = calibrated_instrument(db, technical, store, "JC-ICP-001", uses=tuple((p, "HJ 700-2014") for p in TEN))
    method = make_method(db, technical, "HJ 700-2014", parameters=tuple(ParameterSpec(p) for p in TEN),
                         instruments=(instrument,), max_samples_per_batch=200, ccv_every=10)
    qualify(db, analyst, method.method_id)
    small = lab_samples(db, users, 20, prefix="WS02-S", parameters=tuple((p, 72) for p in TEN))
    large = lab_samples(db, users, 200, prefix="WS02-L", parameters=tuple((p, 72) for p in TEN))
    counts = []
    for samples in (small, large):
        batch = build(db, analyst, samples, method="HJ 700-2014", parameters=TEN, instrument="JC-ICP-001",
                      at=utcnow() - timedelta(minutes=10))
        add_results(db, batch, analyst, revisions=2)
        with db.reading() as session:
            row = session.get(AnalysisBatch, batch.id)
            with count_queries() as counted:
                sheet = worksheet.worksheet(session, row)
            counts.append(counted.count)
            assert sum(1 for line in sheet.lines if line.role == "sample") == len(samples)
            assert sum(len(line.results) for line in sheet.lines) == 10 * sum(1 for line in sheet.lines if line.row)
    assert counts[0] == counts[1] <= 10


def test_the_run_sequence_csv_runs_no_formula(db, users, bench, analyst, standards):
    samples = lab_samples(db, users, 2, prefix="=HYPERLINK(1)")
    batch = build(db, analyst, samples, standards=standards_for(standards))
    sheet, body = sheet_of(db, batch)
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["position", "label", "role", "sample_no", "standard", "expected_value"]
    assert [r[0] for r in rows[1:]] == [str(line.position) for line in sheet.lines]
    sample_rows = [r for r in rows[1:] if r[2] == "sample"]
    assert sample_rows and all(r[1].startswith("'=") and r[3].startswith("'=") for r in sample_rows)
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    assert worksheet.safe_cell("-1") == "'-1" and worksheet.safe_cell("@SUM") == "'@SUM"
    assert worksheet.safe_cell("CB1") == "CB1"
