"""Evaluation against standards: the class of one value (GB 3838-2002 classes, DO as a lower
bound, pH as a range, TP by water body, µg/L converted; GB 3095-2012 grades by averaging period;
a permit's pass or fail), a sample's overall class and the parameters that determine it, and the
evaluation of a sample's results of record against its site's standard in the version in force
on the day it was collected, in a constant number of queries."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from app.analysis import evaluation, limits
from app.analysis.evaluation import evaluate_sample, evaluate_value
from app.analysis.limits import BUILTINS, LimitTable, builtin_rows
from app.analysis.models import LimitSet
from app.samples.models import Sample
from tests.analysis.conftest import make_method, samples_in_lab
from tests.analysis.limit_fixtures import assign, load_builtins, make_site, record_results


def builtin_table(code: str) -> LimitTable:
    b = next(b for b in BUILTINS if b.code == code)
    return LimitTable(b.code, 1, b.kind, b.classes, b.worse_than_all, tuple(builtin_rows(b)))


GB3838 = builtin_table("GB 3838-2002")
GB3095 = builtin_table("GB 3095-2012")


@pytest.mark.parametrize(("parameter", "value", "unit", "water_body", "expected"), [
    ("NH3-N", "0.15", "mg/L", "", "I"),
    ("NH3-N", "0.150000001", "mg/L", "", "II"),  # compared whole: no rounding to 0.15 first
    ("NH3-N", "0.16", "mg/L", "", "II"),
    ("NH3-N", "1.0", "mg/L", "river", "III"),
    ("NH3-N", "2.0", "mg/L", "", "V"),
    ("NH3-N", "2.01", "mg/L", "", "劣V"),
    ("DO", "7.5", "mg/L", "", "I"),
    ("DO", "7.49", "mg/L", "", "II"),
    ("DO", "2", "mg/L", "", "V"),
    ("DO", "1.9", "mg/L", "", "劣V"),
    ("pH", "7.2", "无量纲", "", "I"),
    ("pH", "9", "", "", "I"),
    ("pH", "5.9", "无量纲", "", "劣V"),
    ("pH", "9.1", "pH", "", "劣V"),
    ("TP", "0.05", "mg/L", "river", "II"),
    ("TP", "0.05", "mg/L", "lake", "III"),
    ("TP", "0.05", "mg/L", "reservoir", "III"),
    ("TN", "0.9", "mg/L", "lake", "III"),
    ("Hg", "0.05", "µg/L", "", "I"),  # 0.00005 mg/L
    ("Hg", "0.08", "ug/L", "", "III"),
    ("Hg", "0.00008", "mg/L", "", "III"),
    ("Hg", "2", "μg/L", "", "劣V"),
    ("CODMn", "6", "mg/L", "", "III"),
    ("COD", "15", "mg/L", "", "I"),
    ("Cr6+", "0.06", "mg/L", "", "V"),
    ("FC", "2000", "个/L", "", "II"),
])
def test_gb3838_single_factor_class(parameter, value, unit, water_body, expected):
    found = evaluate_value(GB3838, parameter, D(value), unit, water_body)
    assert found.class_label == expected and found.evaluated
    assert found.exceeded_target is (expected == "劣V")  # without a target only 劣V misses


@pytest.mark.parametrize(("parameter", "value", "unit", "water_body", "reason"), [
    ("TP", "0.05", "mg/L", "", "water_body"),  # river or lake decides the column
    ("TN", "0.9", "mg/L", "river", "no_limit"),  # GB 3838 limits TN in lakes and reservoirs only
    ("EC", "300", "µS/cm", "river", "no_limit"),
    ("Hg", "0.08", "mg/kg", "", "unit"),  # a solid's content cannot be compared with a water limit
    ("COD", "15", "furlongs", "", "unit"),
])
def test_values_that_cannot_be_evaluated_say_why(parameter, value, unit, water_body, reason):
    found = evaluate_value(GB3838, parameter, D(value), unit, water_body)
    assert found.class_label == "" and found.not_evaluated == reason and found.rank is None


def test_the_target_class_decides_what_is_exceeded():
    assert evaluate_value(GB3838, "NH3-N", D("1.2"), "mg/L", target="III").exceeded_target is True
    found = evaluate_value(GB3838, "NH3-N", D("1.0"), "mg/L", target="III")
    assert found.exceeded_target is False and found.limit_text == "≤ 1.0 mg/L"
    assert evaluate_value(GB3838, "DO", D("4"), "mg/L", target="III").limit_text == "≥ 5 mg/L"
    assert evaluate_value(GB3838, "pH", D("7"), "", target="II").limit_text == "6–9"


def test_gb3095_grade_2_pm25_24h():
    at_limit = evaluate_value(GB3095, "PM2.5", D("75"), "µg/m³", averaging="24h", target="2")
    above = evaluate_value(GB3095, "PM2.5", D("76"), "μg/m3", averaging="24h", target="2")
    assert (at_limit.class_label, at_limit.exceeded_target) == ("2", False)
    assert (above.class_label, above.exceeded_target, above.limit_text) == ("超二级", True, "≤ 75 μg/m³")
    assert evaluate_value(GB3095, "PM2.5", D("35"), "μg/m³", averaging="24h").class_label == "1"
    assert evaluate_value(GB3095, "PM2.5", D("15"), "μg/m³", averaging="annual").class_label == "1"
    assert evaluate_value(GB3095, "PM2.5", D("35"), "μg/m³", averaging="annual").class_label == "2"
    assert evaluate_value(GB3095, "PM2.5", D("50"), "μg/m³").not_evaluated == "averaging"
    assert evaluate_value(GB3095, "CO", D("3"), "mg/m³", averaging="24h").class_label == "1"
    assert evaluate_value(GB3095, "CO", D("3000"), "μg/m³", averaging="24h").not_evaluated == "unit"
    assert evaluate_value(GB3095, "O3", D("101"), "μg/m³", averaging="8h").class_label == "2"
    assert evaluate_value(GB3095, "O3", D("161"), "μg/m³", averaging="8h").class_label == "超二级"


PERMIT = LimitTable("PW-001", 1, "discharge", ("limit",), "", (
    limits.LimitRow("COD", "limit", None, D("50"), "mg/L"),
    limits.LimitRow("pH", "limit", D("6"), D("9"), "无量纲")))


def test_a_permit_is_pass_or_fail():
    assert evaluate_value(PERMIT, "COD", D("50"), "mg/L").class_label == "complies"
    found = evaluate_value(PERMIT, "COD", D("50.01"), "mg/L")
    assert (found.class_label, found.exceeded_target, found.limit_text) == ("exceeds", True, "≤ 50 mg/L")
    assert evaluate_value(PERMIT, "pH", D("5.5"), "").class_label == "exceeds"
    sample = evaluate_sample(PERMIT, [("COD", D("60"), "mg/L"), ("pH", D("7"), "")])
    assert (sample.overall_class, sample.exceeded_target, sample.determining_parameters) == \
        ("exceeds", True, ("COD",))
    clean = evaluate_sample(PERMIT, [("COD", D("20"), "mg/L"), ("pH", D("7"), "")])
    assert (clean.overall_class, clean.exceeded_target, clean.determining_parameters) == ("complies", False, ())


def test_the_sample_class_is_the_worst_and_names_what_determines_it():
    values = [("pH", D("7.4"), ""), ("DO", D("6.5"), "mg/L"), ("NH3-N", D("1.2"), "mg/L"),
              ("TP", D("0.08"), "mg/L"), ("CODMn", D("3"), "mg/L")]
    found = evaluate_sample(GB3838, values, "lake", target="III")
    assert found.overall_class == "IV" and found.determining_parameters == ("NH3-N", "TP")  # a tie lists both
    assert found.exceeded_target is True
    assert [v.class_label for v in found.per_parameter] == ["I", "II", "IV", "IV", "II"]
    single = evaluate_sample(GB3838, values[:2] + [("NH3-N", D("0.4"), "mg/L")], "lake", target="III")
    assert (single.overall_class, single.determining_parameters, single.exceeded_target) == ("II", ("DO", "NH3-N"),
                                                                                             False)


def test_routine_evaluation_leaves_out_tn_and_fecal_coliforms():
    values = [("NH3-N", D("0.1"), "mg/L"), ("TN", D("1.8"), "mg/L"), ("FC", D("30000"), "个/L")]
    found = evaluate_sample(GB3838, values, "lake")
    assert found.overall_class == "I" and found.determining_parameters == ()  # all in the best class
    tn = next(v for v in found.per_parameter if v.parameter == "TN")
    assert tn.class_label == "V" and not tn.in_overall
    assert evaluate_sample(GB3838, values, "lake", routine=False).overall_class == "V"
    assert evaluation.ROUTINE_EXCLUDED_SOURCE


def test_nothing_evaluated_gives_no_class():
    found = evaluate_sample(GB3838, [("EC", D("300"), "µS/cm")], "river")
    assert found.overall_class == "" and found.exceeded_target is None and len(found.per_parameter) == 1


@given(st.decimals(min_value=D("0"), max_value=D("5"), places=4))
def test_a_higher_ammonia_value_never_gets_a_better_class(value):
    lower = evaluate_value(GB3838, "NH3-N", value, "mg/L")
    higher = evaluate_value(GB3838, "NH3-N", value + D("0.0001"), "mg/L")
    assert higher.rank >= lower.rank
    assert evaluate_value(GB3838, "NH3-N", value * 1000, "µg/L").rank == lower.rank  # the unit changes nothing


# ---------------------------------------------------------------- from the database


@pytest.fixture
def lake(db, technical):
    load_builtins(db, technical)
    site = make_site(db, technical, "JC-W10", water_body="lake")
    assign(db, technical, site, "GB 3838-2002", "III")
    return site


@pytest.fixture
def water_method(db, technical):
    return make_method(db, technical, "HJ 535-2009")


def lake_sample(db, technical, site, prefix="JC-W10-261203"):
    [sample] = samples_in_lab(db, technical, (("NH3-N", 24), ("TP", 24)), count=1, prefix=prefix, site_id=site.id)
    return sample


def test_a_sample_is_evaluated_against_its_site_standard(db, technical, analyst, lake, water_method):
    sample = lake_sample(db, technical, lake)
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.2", "mg/L"), ("TP", "0.08", "mg/L"),
                                                          ("DO", "6.5", "mg/L")])
    with db.reading() as session:
        [found] = evaluation.evaluate_results_of_sample(session, sample.id)
    assert (found.limit_set_code, found.limit_set_version, found.target_class) == ("GB 3838-2002", 1, "III")
    assert found.overall_class == "IV" and found.determining_parameters == ("NH3-N", "TP")
    assert found.exceeded_target is True


def test_only_results_of_record_count(db, technical, analyst, lake, water_method):
    sample = lake_sample(db, technical, lake)
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.8", "mg/L")], state="running")
    with db.reading() as session:
        assert evaluation.evaluate_results_of_sample(session, sample.id) == []  # not submitted yet
        assert evaluation.evaluation_section(session, session.get(Sample, sample.id)) is None
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "0.4", "mg/L")],
                   revision_of={"NH3-N": "1.4"})  # corrected after entry: the highest revision counts
    with db.reading() as session:
        [found] = evaluation.evaluate_results_of_sample(session, sample.id)
    assert found.overall_class == "II" and [v.value for v in found.per_parameter] == [D("0.4")]


def test_the_latest_measured_result_of_a_parameter_counts(db, technical, analyst, lake, water_method):
    sample = lake_sample(db, technical, lake)
    earlier = record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.8", "mg/L")],
                             measured_at=db.calendar.start_of(db.calendar.today()) - timedelta(hours=20))
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "0.9", "mg/L")])
    with db.reading() as session:
        [found] = evaluation.evaluate_results_of_sample(session, sample.id)
    assert [v.value for v in found.per_parameter] == [D("0.9")] and earlier.batch_no


def test_a_site_without_a_standard_has_no_evaluation(db, technical, analyst, water_method):
    load_builtins(db, technical)
    site = make_site(db, technical, "JC-W11")
    sample = lake_sample(db, technical, site, prefix="JC-W11-261203")
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "0.4", "mg/L")])
    with db.reading() as session:
        assert evaluation.evaluate_results_of_sample(session, sample.id) == []
        section = evaluation.evaluation_section(session, session.get(Sample, sample.id))
    assert section is not None and section.unassigned and section.results == 1


def test_an_old_sample_keeps_the_version_it_was_evaluated_under(db, technical, analyst, lake, water_method,
                                                                 monkeypatch):
    old = lake_sample(db, technical, lake, prefix="JC-W10-261101")
    with db.transaction() as session:
        session.execute(update(Sample).where(Sample.id == old.id).values(
            collected_at=db.calendar.start_of(db.calendar.today() - timedelta(days=30)) + timedelta(hours=3)))
    record_results(db, analyst, water_method.id, old, [("NH3-N", "0.12", "mg/L")])
    with db.reading() as session:
        [before] = evaluation.evaluate_results_of_sample(session, old.id)
    assert (before.limit_set_version, before.overall_class) == (1, "I")

    # the shipped file changes (NH3-N class I tightened, say): version 2 from today
    original = limits.builtin_rows
    changed = [limits.LimitRow("NH3-N", "I", None, D("0.1"), "mg/L") if (r.parameter, r.class_label) == ("NH3-N", "I")
               else r for r in original(BUILTINS[0])]
    monkeypatch.setattr(limits, "builtin_rows", lambda b: changed if b is BUILTINS[0] else original(b))
    assert load_builtins(db, technical) == [("GB 3838-2002", 2)]
    new = lake_sample(db, technical, lake, prefix="JC-W10-261204")
    with db.transaction() as session:  # collected today in the lab's calendar, even just after its midnight
        session.execute(update(Sample).where(Sample.id == new.id).values(
            collected_at=db.calendar.start_of(db.calendar.today())))
    record_results(db, analyst, water_method.id, new, [("NH3-N", "0.12", "mg/L")])
    with db.reading() as session:
        [again] = evaluation.evaluate_results_of_sample(session, old.id)
        [today] = evaluation.evaluate_results_of_sample(session, new.id)
        versions = {s.version: (s.valid_from, s.valid_to) for s in session.scalars(
            select(LimitSet).where(LimitSet.code == "GB 3838-2002"))}
    assert (again.limit_set_version, again.overall_class) == (1, "I")
    assert (today.limit_set_version, today.overall_class) == (2, "II")
    assert versions == {1: (date(2002, 6, 1), db.calendar.today()), 2: (db.calendar.today(), None)}


def test_the_sample_section_reads_a_constant_number_of_queries(db, technical, analyst, lake, water_method,
                                                               count_queries):
    sample = lake_sample(db, technical, lake)
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.2", "mg/L")])
    with db.reading() as session:
        row = session.get(Sample, sample.id)
        with count_queries() as few:
            evaluation.evaluation_section(session, row)
    for i in range(5):
        record_results(db, analyst, water_method.id, sample, [("TP", f"0.0{i + 1}", "mg/L"), ("DO", "6", "mg/L"),
                                                              ("CODMn", "3", "mg/L"), ("pH", "7", "")])
    with db.reading() as session:
        row = session.get(Sample, sample.id)
        with count_queries() as many:
            section = evaluation.evaluation_section(session, row)
    assert many.count == few.count <= 6
    assert len(section.evaluations[0].per_parameter) == 5


def test_the_sample_section_renders(app, db, technical, analyst, lake, water_method):
    sample = lake_sample(db, technical, lake)
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.2", "mg/L"), ("TP", "0.08", "mg/L"),
                                                          ("TN", "1.1", "mg/L")])
    with db.reading() as session:
        section = evaluation.evaluation_section(session, session.get(Sample, sample.id))
    html = app.state.templates.get_template("evaluation/_sample_section.html").render(lab={"evaluation": section})
    assert 'data-overall="IV"' in html and 'data-determining="NH3-N"' in html and 'data-determining="TP"' in html
    assert 'data-parameter="TN"' in html and 'data-version="1"' in html and "GB%203838-2002" in html


def test_the_sample_page_shows_the_evaluation_after_its_own_sections(client, db, technical, analyst, lake,
                                                                     water_method):
    from tests.conftest import login

    sample = lake_sample(db, technical, lake)
    login(client, "inspector")
    before = client.get(f"/samples/{sample.sample_no}")
    assert before.status_code == 200 and 'id="evaluation"' not in before.text  # no results: nothing said
    record_results(db, analyst, water_method.id, sample, [("NH3-N", "1.2", "mg/L"), ("TP", "0.08", "mg/L")])
    page = client.get(f"/samples/{sample.sample_no}")
    assert page.status_code == 200 and 'data-overall="IV"' in page.text
    assert page.text.index('id="evaluation"') > page.text.index('id="field-record"')
