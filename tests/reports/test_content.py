"""The report content every level signs: loaded in a fixed number of queries; the hash moves
with a revised result, a header change or a sample added, and not otherwise."""

from __future__ import annotations

from app.reports.content import load_content
from app.reports.models import Report
from tests.analysis.qc_fixtures import enter
from tests.reports.conftest import make_report


def _summary(db, report):
    """(content hash, [(sample_no, parameter, value, method code)], complete), read in one session."""
    with db.reading() as session:
        content = load_content(session, session.get(Report, report.id))
        lines = [(s.sample.sample_no, line.parameter, str(line.result.value), line.method_code)
                 for s, line in content.lines()]
        return content.content_sha256, lines, content.complete


def test_content_holds_the_result_of_record_of_each_parameter(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    _, lines, complete = _summary(db, report)
    assert lines == [(reportable.samples[0].sample_no, "NH3-N", "0.512", "HJ 535-2009"),
                     (reportable.samples[1].sample_no, "NH3-N", "0.200", "HJ 535-2009")]
    assert complete


def test_the_hash_moves_with_a_revision_and_only_then(db, reportable):
    report = make_report(db, reportable.preparer, reportable.samples)
    first = _summary(db, report)[0]
    assert _summary(db, report)[0] == first
    enter(db, reportable.bench, {"S-001": "0.515"}, reason="transcription error corrected")
    revised, lines, _ = _summary(db, report)
    assert revised != first
    assert lines[0][2] == "0.515"


def test_content_loads_in_a_fixed_number_of_queries(db, reportable, count_queries):
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.reading() as session, count_queries() as counted:
        load_content(session, session.get(Report, report.id))
    assert counted.count <= 12
