"""Field readings on reports (issue 9 follow-up): the sampler's signed pH, DO, water temperature
and conductivity print like results (rounded once by their method, with unit and MDL), count
among the CMA items (no registered method: outside the scope, flagged), decide the GB 3838 class
with the laboratory's results, and count as done for `results_entered`. Only signed revisions
of the field record are used; signing a new one moves the content hash."""

from __future__ import annotations

import re
import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import insert, select, update

from app.analysis import limits
from app.analysis.models import LimitSet
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.people.models import User
from app.reports.content import load_content
from app.reports.document import build_document, render_report_pdf
from app.reports.models import Report
from app.samples.field import signed_field_readings
from app.samples.models import FieldEntry, FieldEntryKind, Sample, SampleParameter, SampleState
from tests.analysis.conftest import ParameterSpec, make_method, qualify, samples_in_lab
from tests.analysis.qc_fixtures import PASSING, enter, running_batch, submit
from tests.conftest import PASSWORD, login
from tests.reports.conftest import make_report
from tests.reports.test_document import TODAY, _certificate

PH = ParameterSpec("pH", "无量纲", "0.01", 2)
DO = ParameterSpec("DO", "mg/L", "0.1", 1)


def _request(db, samples: list[Sample], *parameters: str) -> None:
    with db.transaction() as session:
        session.execute(insert(SampleParameter), [{"sample_id": s.id, "parameter": p}
                                                  for s in samples for p in parameters])


def _reading(db, sample: Sample, sampler: User, parameter: str, value: str, unit: str, *, revision: int = 1,
             at: datetime | None = None) -> int:
    """A field-test entry as the phone records it (revision 1: the record the sampler signed)."""
    with db.transaction() as session:
        row = FieldEntry(client_id=f"test-{secrets.token_hex(8)}", sample_id=sample.id,
                         kind=FieldEntryKind.FIELD_TEST.value, act_at=at or sample.collected_at, parameter=parameter,
                         value=D(value), unit=unit, payload="{}", revision=revision,
                         reason="" if revision == 1 else "读数录入错误，按仪器存储值更正", entered_by_id=sampler.id,
                         entered_at=utcnow())
        session.add(row)
        session.flush()
        return row.id


def _sign_revision(db, sample: Sample, revision: int) -> None:
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id == sample.id).values(signed_revision=revision))


def _surface_water(db, technical: User) -> int:
    with db.transaction() as session:
        limits.load_builtin_limit_sets(session, session.get(User, technical.id))
        return session.scalars(select(LimitSet.id).where(LimitSet.code == "GB 3838-2002")
                               .order_by(LimitSet.version.desc())).first()


def _field_methods(db, technical: User) -> None:
    make_method(db, technical, "HJ 1147-2020", parameters=(PH,), name_zh="水质 pH值的测定 电极法")
    make_method(db, technical, "HJ 506-2009", parameters=(DO,), name_zh="水质 溶解氧的测定 电化学探头法")


def _document(db, report_id: int, signatory: User):
    with db.reading() as session:
        row = session.get(Report, report_id)
        return build_document(session, row, load_content(session, row), signatory=signatory, approved_on=TODAY,
                              audit_seq=7, audit_hash="cd" * 32)


@dataclass(frozen=True)
class Line:
    """What a test reads of a report line, taken while its session is open."""

    field_id: int | None
    value: str | None
    method_code: str
    pending: bool
    not_analysed: str
    signed: dict
    text: str


def _lines(db, report_id: int) -> tuple[str, dict[tuple[str, str], Line]]:
    with db.reading() as session:
        content = load_content(session, session.get(Report, report_id))
        return content.content_sha256, {
            (s.sample.sample_no, line.parameter): Line(
                line.field.id if line.field else None, str(line.field.value) if line.field else None,
                line.method_code, line.pending, line.not_analysed, line.signed(), line.field_text())
            for s, line in content.lines()}


# ---------------------------------------------------------------- printed like results


def test_signed_field_readings_print_on_the_report_and_decide_the_class(db, reportable, users):
    technical, sampler = users["technical_manager"], reportable.sampler
    first, second = reportable.samples
    _request(db, reportable.samples, "pH", "DO")
    _reading(db, first, sampler, "pH", "7.845", "pH")
    _reading(db, first, sampler, "DO", "4.25", "mg/L")
    _reading(db, second, sampler, "pH", "9.35", "pH", at=second.collected_at - timedelta(days=1))
    _reading(db, second, sampler, "DO", "7.80", "mg/L")
    _field_methods(db, technical)
    _certificate(db, technical, [("NH3-N", "HJ 535-2009", "water"), ("pH", "HJ 1147-2020", "water"),
                                 ("DO", "HJ 506-2009", "water")])
    report = make_report(db, reportable.preparer, reportable.samples, limit_set_id=_surface_water(db, technical))

    _, lines = _lines(db, report.id)
    ph = lines[(first.sample_no, "pH")]
    assert ph.field_id is not None and not ph.pending and ph.method_code == "HJ 1147-2020"
    assert ph.signed["value"] == "7.845" and ph.signed["field_entry_id"] == ph.field_id
    assert ph.signed["method_code"] == "HJ 1147-2020" and ph.signed["revision"] == 1 and ph.signed["mdl"] == "0.01"
    assert ph.text == "7.84"  # GB/T 8170 once: 7.845 → 7.84 (five, even kept)

    document = _document(db, report.id, reportable.signatory)
    assert document.cma_mark and not document.flagged  # every item, field ones too, in scope
    rows = {row.parameter: row for row in document.tables[0].rows}
    assert (rows["pH"].method_code, rows["pH"].unit, rows["pH"].mdl) == ("HJ 1147-2020", "无量纲", "0.01")
    assert [v.text for v in rows["pH"].values] == ["7.84", "9.35"]
    assert [v.text for v in rows["DO"].values] == ["4.2", "7.8"]
    assert [v.class_label for v in rows["DO"].values] == ["IV", "I"]
    assert [v.class_label for v in rows["pH"].values] == ["I", "劣V"]  # outside 6–9
    one, two = document.samples
    assert (one.class_label, one.determining) == ("IV", ("DO",))  # NH3-N 0.512 is III; DO 4.25 is IV
    assert (two.class_label, two.determining) == ("劣V", ("pH",))
    methods = {m.parameter: m for m in document.methods}
    assert methods["pH"].field and methods["DO"].field and not methods["NH3-N"].field
    # the reading a day before collection is a sampling date; the analysis dates stay the lab's
    with db.reading() as session:
        calendar = lab_calendar(session)
    assert document.sampling[0] == calendar.local_date(second.collected_at - timedelta(days=1))
    assert document.analysis[0] >= calendar.local_date(first.collected_at)


def test_the_pdf_prints_field_values_with_units_and_the_field_method(db, reportable, users, tmp_path):
    technical = users["technical_manager"]
    first, _ = reportable.samples
    _request(db, reportable.samples, "pH", "EC")
    for sample in reportable.samples:
        _reading(db, sample, reportable.sampler, "pH", "7.845", "pH")
        _reading(db, sample, reportable.sampler, "EC", "412", "µS/cm")
    _field_methods(db, technical)
    report = make_report(db, reportable.preparer, reportable.samples)
    with db.reading() as session:
        row = session.get(Report, report.id)
        pdf = render_report_pdf(session, row, load_content(session, row), signatory=reportable.signatory,
                                approved_on=TODAY, audit_seq=7, audit_hash="cd" * 32)
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "HJ 1147-2020" in text  # pH's method; EC has none: a field measurement (现场测定 once translated)
    assert "现场测定" in text or "Field measurement" in text
    assert "7.84" in text and "412" in text and "µS/cm" in text and "无量纲" in text
    assert "未分析" not in text and "无结果" not in text


def test_an_english_report_prints_chinese_unit_names_in_english(db, reportable, users):
    """pH's unit 无量纲 is "dimensionless" on an English report; symbols stay as they are."""
    _request(db, reportable.samples, "pH", "DO")
    for sample in reportable.samples:
        _reading(db, sample, reportable.sampler, "pH", "7.845", "pH")
        _reading(db, sample, reportable.sampler, "DO", "7.80", "mg/L")
    _field_methods(db, users["technical_manager"])
    report = make_report(db, reportable.preparer, reportable.samples, language="en")
    document = _document(db, report.id, reportable.signatory)
    rows = {row.parameter: row for row in document.tables[0].rows}
    methods = {m.parameter: m for m in document.methods}
    assert (rows["pH"].unit, methods["pH"].unit) == ("dimensionless", "dimensionless")
    assert (rows["DO"].unit, methods["DO"].unit) == ("mg/L", "mg/L")


# ---------------------------------------------------------------- signed revisions only


def test_an_unsigned_revision_is_not_used_and_signing_it_moves_the_hash(db, reportable, users):
    sampler = reportable.sampler
    first, _ = reportable.samples
    _request(db, [first], "DO")
    signed = _reading(db, first, sampler, "DO", "6.10", "mg/L")
    report = make_report(db, reportable.preparer, [first])
    before, lines = _lines(db, report.id)
    assert lines[(first.sample_no, "DO")].field_id == signed

    corrected = _reading(db, first, sampler, "DO", "6.31", "mg/L", revision=2)  # entered, not yet signed
    with db.reading() as session:
        assert signed_field_readings(session, [first.id])[(first.id, "DO")].id == signed
    same, lines = _lines(db, report.id)
    assert same == before and lines[(first.sample_no, "DO")].value == "6.10"

    _sign_revision(db, first, 2)
    after, lines = _lines(db, report.id)
    line = lines[(first.sample_no, "DO")]
    assert line.field_id == corrected and line.signed["revision"] == 2 and line.text == "6.31"
    assert after != before


def test_a_sample_with_nothing_signed_has_no_reading_and_the_line_waits(db, reportable, users):
    first, _ = reportable.samples
    _request(db, [first], "pH")
    _sign_revision(db, first, 0)
    _reading(db, first, reportable.sampler, "pH", "7.20", "pH")
    report = make_report(db, reportable.preparer, [first])
    _, lines = _lines(db, report.id)
    assert lines[(first.sample_no, "pH")].pending
    with db.reading() as session:
        assert not load_content(session, session.get(Report, report.id)).complete


# ---------------------------------------------------------------- the CMA scope


def test_a_field_reading_without_a_registered_method_is_flagged_out_of_scope(db, reportable, users, settings):
    technical = users["technical_manager"]
    first, second = reportable.samples
    _request(db, reportable.samples, "WT")
    _reading(db, first, reportable.sampler, "WT", "-0.4", "°C")  # ice on the river: a value, never "L"
    _reading(db, second, reportable.sampler, "WT", "3.45", "°C")
    _certificate(db, technical, [("NH3-N", "HJ 535-2009", "water")])
    report = make_report(db, reportable.preparer, reportable.samples)

    _, lines = _lines(db, report.id)
    assert lines[(first.sample_no, "WT")].method_code == "" and lines[(first.sample_no, "WT")].signed["method_code"] \
        is None
    document = _document(db, report.id, reportable.signatory)
    wt = ("WT", "", "water")
    assert document.out_of_scope == {wt} and document.flagged == {wt}
    assert not document.cma_mark  # the default: no mark with an item outside the scope
    rows = {row.parameter: row for row in document.tables[0].rows}
    assert rows["WT"].flagged and (rows["WT"].unit, rows["WT"].mdl) == ("°C", "—")
    assert [v.text for v in rows["WT"].values] == ["-0.4", "3.45"]  # as recorded, no method to round by
    (line,) = [m for m in document.methods if m.parameter == "WT"]
    assert line.field and line.flagged and line.method_code == "" and line.mdl == "—"

    settings.cma_mark_with_flagged_items = True  # the lab's setting: the mark, the item flagged
    document = _document(db, report.id, reportable.signatory)
    assert document.cma_mark and document.flagged == {wt}


def test_a_not_analysed_reason_the_lab_recorded_stands_over_the_reading(db, reportable, users):
    from app.analysis.models import NotAnalysed

    first, _ = reportable.samples
    _request(db, [first], "pH")
    _reading(db, first, reportable.sampler, "pH", "7.20", "pH")
    with db.transaction() as session:
        session.add(NotAnalysed(sample_id=first.id, parameter="pH", reason="pH 电极校准核查不合格，读数作废",
                                recorded_at=utcnow(), recorded_by_id=reportable.analyst.id))
    report = make_report(db, reportable.preparer, [first])
    _, lines = _lines(db, report.id)
    line = lines[(first.sample_no, "pH")]
    assert line.field_id is None and line.not_analysed.startswith("pH 电极") and not line.pending


# ---------------------------------------------------------------- results_entered


def test_a_sample_waiting_only_for_field_readings_moves_on_when_they_are_signed(db, users, nh3n_method, uv):
    analyst, sampler = users["analyst"], users["sampler"]
    qualify(db, analyst, nh3n_method.method_id)
    samples = samples_in_lab(db, users["custodian"], count=2, prefix="WS09-261203")
    _request(db, samples, "pH", "DO")
    for sample in samples:
        _reading(db, sample, sampler, "pH", "7.62", "pH")
    _reading(db, samples[0], sampler, "DO", "8.1", "mg/L")
    _reading(db, samples[1], sampler, "DO", "8.3", "mg/L", revision=2)  # in the revision not yet signed
    bench = running_batch(db, analyst, nh3n_method, samples, instrument=uv)
    enter(db, bench, PASSING)
    submit(db, bench, PASSWORD)
    with db.reading() as session:
        states = {s.sample_no: s.state for s in session.scalars(select(Sample).where(
            Sample.id.in_([s.id for s in samples])))}
        moved = session.scalars(select(AuditEvent.entity_id).where(
            AuditEvent.action == "sample.results_entered")).all()
    assert states == {samples[0].sample_no: SampleState.RESULTS_ENTERED.value,
                      samples[1].sample_no: SampleState.IN_ANALYSIS.value}
    assert [str(m) for m in moved] == [str(samples[0].id)]


# ---------------------------------------------------------------- queries


def test_content_with_field_readings_loads_in_the_same_queries_for_one_and_four_samples(
        db, reportable, users, count_queries):
    more = samples_in_lab(db, users["custodian"], count=2, prefix="WS08-261203")
    samples = [*reportable.samples, *more]
    _request(db, samples, "pH", "DO", "WT")
    for sample in samples:
        _reading(db, sample, reportable.sampler, "pH", "7.5", "pH")
        _reading(db, sample, reportable.sampler, "DO", "7.9", "mg/L")
        _reading(db, sample, reportable.sampler, "WT", "12.5", "°C")
    _field_methods(db, users["technical_manager"])
    one = make_report(db, reportable.preparer, samples[:1])
    four = make_report(db, reportable.preparer, samples)
    counts = []
    for report in (one, four):
        with db.reading() as session, count_queries() as counted:
            content = load_content(session, session.get(Report, report.id))
            assert all(line.field is not None for _, line in content.lines() if line.parameter != "NH3-N")
        counts.append(counted.count)
    assert counts[0] == counts[1] <= 14


# ---------------------------------------------------------------- the report's page


def test_the_report_page_shows_the_field_readings(db, reportable, users, client):
    first, _ = reportable.samples
    _request(db, [first], "pH", "WT")
    ph = _reading(db, first, reportable.sampler, "pH", "7.845", "pH")
    _reading(db, first, reportable.sampler, "WT", "12.5", "°C")
    _field_methods(db, users["technical_manager"])
    report = make_report(db, reportable.preparer, [first])
    login(client, users["checker"].username)
    page = client.get(f"/reports/{report.report_no}")
    assert page.status_code == 200
    cell = re.search(rf'data-field-entry="{ph}"><strong>([^<]+)</strong>', page.text)
    assert cell is not None and cell.group(1) == "7.84"
    row = re.search(r'data-parameter="WT".*?</tr>', page.text, re.S).group(0)
    assert "12.5" in row and "°C" in row and "data-pending" not in row


def test_of_readings_in_one_signed_revision_the_latest_stands(db, reportable):
    first, second = reportable.samples
    _reading(db, first, reportable.sampler, "DO", "6.0", "mg/L")
    latest = _reading(db, first, reportable.sampler, "DO", "6.2", "mg/L")
    other = _reading(db, second, reportable.sampler, "DO", "7.0", "mg/L")
    with db.reading() as session:
        found = {key: entry.id for key, entry in signed_field_readings(session, [first.id, second.id]).items()}
        assert signed_field_readings(session, []) == {}
    assert found == {(first.id, "DO"): latest, (second.id, "DO"): other}


def test_the_signatory_scope_covers_the_field_methods_too(db, reportable, users):
    """签发 within scope: a field reading's method is a reported item the signatory's scope must
    cover, like a laboratory result's."""
    from app.reports.content import load_content
    from app.reports.issue import scope_items
    from app.reports.models import Report

    first, _ = reportable.samples
    _request(db, [first], "pH")
    _reading(db, first, reportable.sampler, "pH", "7.2", "pH")
    _field_methods(db, users["technical_manager"])
    report = make_report(db, reportable.preparer, [first])
    with db.reading() as session:
        items = scope_items(load_content(session, session.get(Report, report.id)))
    assert {(parameter, matrix) for parameter, _, matrix in items} == {("NH3-N", "water"), ("pH", "water")}
