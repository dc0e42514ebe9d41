"""Control charts: the points (signed batches only, the latest evaluation run, across method
versions), baselines (≥ 20 points, mean and sample SD, newest wins, who may set one), Westgard
flags on the chart, the SVG, and a query count that does not grow with the points."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from app.analysis import control_charts, curve_errors, numbers, svg_plot
from app.analysis.models import ControlBaseline, Method
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from tests.analysis.curve_fixtures import chart_points, evaluate_again

# 25 spike recoveries (%) around 100 with some spread
BASE = [D(v) for v in ("98", "101", "103", "97", "100", "99", "102", "96", "104", "100", "98", "101", "99", "102",
                       "100", "97", "103", "101", "99", "100", "98", "102", "100", "99", "101")]


def method_of(db, version) -> Method:
    with db.reading() as session:
        method = session.get(Method, version.method_id)
        session.expunge(method)
        return method


def baselines(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(ControlBaseline))


def test_points_are_signed_batches_latest_run_in_time_order(db, analyst, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, ["95", "105", "100"])
    chart_points(db, nh3n_method, analyst, ["50"], state="qc_evaluated", prefix="AB26-8")  # not signed
    chart_points(db, nh3n_method, analyst, ["7"], kind="duplicate", prefix="AB26-7")  # another kind
    rerun = evaluate_again(db, "AB26-90001", "102")
    with db.reading() as session:
        chart = control_charts.chart(session, nh3n_method.method_id, "NH3-N", "spike")
    assert [p.evaluation_id for p in chart.points] == [ids[0], rerun, ids[2]]
    assert [p.value for p in chart.points] == [D("95"), D("102"), D("100")]
    assert chart.baseline is None and chart.limits is None and all(not p.flags for p in chart.points)
    with db.reading() as session:
        since = control_charts.chart(session, nh3n_method.method_id, "NH3-N", "spike",
                                     since=chart.points[1].evaluated_at)
    assert [p.value for p in since.points] == [D("102"), D("100")]


def test_a_baseline_of_twenty_points_sets_the_limits_and_flags(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, [*BASE, "107", "108", "99", "113"])
    method = method_of(db, nh3n_method)
    with db.transaction() as session:
        baseline = control_charts.set_baseline(session, technical, method, "NH3-N", "spike", ids[:25])
        assert baseline.centre == numbers.mean(BASE) and baseline.std_dev == numbers.std_dev(BASE)
        assert baseline.n == 25
    with db.reading() as session:
        chart = control_charts.chart(session, method.id, "NH3-N", "spike")
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "control_chart.baseline_set")).one()
        assert event.after_data["n"] == 25 and event.actor_id == technical.id
    limits = chart.limits
    assert limits.centre == D("100") and limits.high_3s == limits.centre + 3 * limits.sd
    # s ≈ 2.0: 107 and 108 are beyond +2s in a row (2-2s), 113 beyond +3s (1-3s)
    flags = {i: set(p.flags) for i, p in chart.flagged}
    assert flags[27] >= {"2-2s"} and flags[29] >= {"1-3s"}
    assert all(not p.flags for p in chart.points[:25])
    svg = control_charts.chart_svg(chart, y_label="回收率 %")
    assert svg.startswith("<svg") and 'viewBox="0 0 640 380"' in svg
    assert svg.count('class="limit-3s"') == 2 and svg.count('class="limit-2s"') == 2
    assert svg.count("point flagged") == len(chart.flagged) and "2-2s" in svg and "回收率 %" in svg


def test_fewer_than_twenty_points_are_refused(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, BASE[:19])
    method = method_of(db, nh3n_method)
    with db.transaction() as session, pytest.raises(curve_errors.BaselineTooFewPoints) as caught:
        control_charts.set_baseline(session, technical, method, "NH3-N", "spike", ids + ids[:3])  # repeats count once
    assert caught.value.code == "baseline_too_few_points" and baselines(db) == 0


def test_points_of_another_chart_or_unsigned_batches_are_refused(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, BASE[:20])
    other = chart_points(db, nh3n_method, analyst, ["5"], kind="duplicate", prefix="AB26-7")
    unsigned = chart_points(db, nh3n_method, analyst, ["100"], state="running", prefix="AB26-6")
    method = method_of(db, nh3n_method)
    for extra in (other, unsigned):
        with db.transaction() as session, pytest.raises(curve_errors.BaselinePointNotInChart) as caught:
            control_charts.set_baseline(session, technical, method, "NH3-N", "spike", ids[1:] + extra)
        assert str(extra[0]) in caught.value.message("en")
    assert baselines(db) == 0


def test_a_baseline_without_spread_is_refused(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, ["100"] * 20)
    with db.transaction() as session, pytest.raises(DomainError) as caught:
        control_charts.set_baseline(session, technical, method_of(db, nh3n_method), "NH3-N", "spike", ids)
    assert caught.value.code == "baseline_no_spread" and baselines(db) == 0


def test_only_qc_rules_holders_set_baselines(db, analyst, users, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, BASE)
    method = method_of(db, nh3n_method)
    for who, code in ((analyst, "permission_denied"), (users["inspector"], "inspector_read_only")):
        with db.transaction() as session, pytest.raises(DomainError) as caught:
            control_charts.set_baseline(session, who, method, "NH3-N", "spike", ids)
        assert caught.value.code == code
    with db.transaction() as session:
        control_charts.set_baseline(session, users["quality_manager"], method, "NH3-N", "spike", ids)
    assert baselines(db) == 1


def test_the_newest_baseline_wins_and_the_older_is_kept(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, [*BASE, *(v + 10 for v in BASE)])
    method = method_of(db, nh3n_method)
    with db.transaction() as session:
        control_charts.set_baseline(session, technical, method, "NH3-N", "spike", ids[:25])
    with db.transaction() as session:
        newer = control_charts.set_baseline_from(session, technical, method, "NH3-N", "spike",
                                                 since=utcnow() - timedelta(days=26))
        assert newer.n == 25
    with db.reading() as session:
        chart = control_charts.chart(session, method.id, "NH3-N", "spike")
    assert chart.limits.centre == D("110") and baselines(db) == 2


def test_a_baseline_from_the_first_n_points(db, analyst, technical, nh3n_method):
    ids = chart_points(db, nh3n_method, analyst, BASE)
    method = method_of(db, nh3n_method)
    with db.transaction() as session:
        baseline = control_charts.set_baseline_from(session, technical, method, "NH3-N", "spike", first=20)
        assert baseline.n == 20 and baseline.centre == numbers.mean(BASE[:20])
        assert baseline.evaluation_ids == "[" + ",".join(map(str, ids[:20])) + "]"
    with db.transaction() as session, pytest.raises(DomainError) as caught:
        control_charts.set_baseline_from(session, technical, method, "NH3-N", "spike", first=30)
    assert caught.value.code == "baseline_too_few_points"
    with db.transaction() as session, pytest.raises(DomainError) as caught:
        control_charts.set_baseline_from(session, technical, method, "NH3-N", "spike")
    assert caught.value.code == "baseline_choice_invalid"


def test_a_chart_spans_the_methods_versions(db, analyst, technical, nh3n_method):
    """Points of every version of a method share its chart (the lab's history does not restart)."""
    from app.analysis.models import MethodVersion

    with db.transaction() as session:
        second = MethodVersion(method_id=nh3n_method.method_id, version=2, valid_from=utcnow(),
                               created_at=utcnow(), created_by_id=technical.id)
        session.add(second)
        session.flush()
        session.expunge(second)
    chart_points(db, nh3n_method, analyst, ["99", "101"])
    chart_points(db, second, analyst, ["100"], prefix="AB26-5", start=utcnow() - timedelta(hours=5))
    with db.reading() as session:
        assert len(control_charts.chart(session, nh3n_method.method_id, "NH3-N", "spike").points) == 3


def test_an_unknown_kind_is_refused(db, nh3n_method):
    with db.reading() as session, pytest.raises(DomainError) as caught:
        control_charts.chart(session, nh3n_method.method_id, "NH3-N", "bogus")
    assert caught.value.code == "chart_kind_unknown"


def test_the_chart_and_the_list_cost_the_same_queries_for_10_or_100_points(db, analyst, technical, nh3n_method,
                                                                          count_queries):
    method = method_of(db, nh3n_method)
    ids = chart_points(db, nh3n_method, analyst, BASE[:10], prefix="AB26-1")
    with db.transaction() as session:
        control_charts.set_baseline(session, technical, method, "NH3-N", "spike",
                                    ids + chart_points(db, nh3n_method, analyst, BASE[:10], prefix="AB26-2"))

    def measure():
        with count_queries() as counted, db.reading() as session:
            chart = control_charts.chart(session, method.id, "NH3-N", "spike")
            control_charts.list_charts(session)
            svg_plot.chart_svg(chart)
        return counted.count, len(chart.points)

    few, n_few = measure()
    chart_points(db, nh3n_method, analyst, [BASE[i % 25] for i in range(80)], prefix="AB26-3",
                 start=utcnow() - timedelta(days=90))
    chart_points(db, nh3n_method, analyst, ["5"] * 5, kind="duplicate", prefix="AB26-4")
    many, n_many = measure()
    assert (n_few, n_many) == (20, 100) and few == many


def test_the_list_of_charts(db, analyst, technical, nh3n_method):
    chart_points(db, nh3n_method, analyst, BASE)
    chart_points(db, nh3n_method, analyst, ["5", "6"], kind="duplicate", prefix="AB26-7")
    chart_points(db, nh3n_method, analyst, ["5"], kind="crm", prefix="AB26-6", state="open")  # no signed batch
    with db.reading() as session:
        page = control_charts.list_charts(session)
    assert [(c.kind, c.count, c.baseline) for c in page.items] == [("duplicate", 2, None), ("spike", 25, None)]
    assert page.items[0].href == "/charts/HJ%20535-2009/NH3-N/duplicate"
    assert control_charts.chart_href("HJ/T 91-2002", "pH", "crm") == "/charts/HJ/T%2091-2002/pH/crm"
    assert re.fullmatch(r"/charts/.+", page.items[1].href)
