"""Calibration curves: the fit against a calculation on fractions, acceptance, a rejected curve
kept but unusable, each refusal of recording (nothing saved), the curve gate, and the lot's
forward traceability listing the curve."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from fractions import Fraction

import pytest
from sqlalchemy import select

from app.analysis import curve_errors, curves
from app.analysis.models import CalibrationPoint, MethodVersion
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.reference_materials.models import MaterialUse
from app.reference_materials.traceability import forward_traceability
from tests.analysis.conftest import NH3N, calibrated_instrument, make_method
from tests.analysis.curve_fixtures import GOOD_ROWS, POOR_ROWS, counts, facts, record, rows
from tests.reference_materials.conftest import ago, prepare


def exact_line(table):
    """Least squares and r² on fractions, written out plainly."""
    pts = [(Fraction(c), Fraction(r)) for _, c, r in table]
    n = len(pts)
    sx, sy = sum(x for x, _ in pts), sum(y for _, y in pts)
    sxx, syy = sum(x * x for x, _ in pts), sum(y * y for _, y in pts)
    sxy = sum(x * y for x, y in pts)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    intercept = (sy - slope * sx) / n
    r2 = (n * sxy - sx * sy) ** 2 / ((n * sxx - sx * sx) * (n * syy - sy * sy))
    return intercept, slope, r2


def close(decimal_value: D, exact: Fraction, tolerance: str = "1e-20") -> bool:
    return abs(Fraction(decimal_value) - exact) < Fraction(D(tolerance))


def refused(db, actor, curve_facts, code: str) -> DomainError:
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        record(db, actor, curve_facts)
    assert caught.value.code == code, caught.value
    assert counts(db) == before
    return caught.value


@pytest.fixture
def ready(db, analyst, nh3n_method, standards):
    return standards


def test_a_good_curve_is_recorded_fitted_and_accepted(db, analyst, ready):
    at = utcnow() - timedelta(minutes=3)
    curve = record(db, analyst, facts(ready.working.barcode, measured_at=at))
    intercept, slope, r2 = exact_line(GOOD_ROWS)
    assert close(curve.slope, slope) and close(curve.intercept, intercept) and close(curve.r ** 2, r2, "1e-18")
    assert curve.accepted and curve.rejection == "" and curve.r >= D("0.999")
    assert curve.code.startswith("CC") and curves.CODE_RE.match(curve.code)
    assert (curve.range_low, curve.range_high) == (D("0.10"), D("2.00"))
    assert curve.valid_until == at + timedelta(hours=24) and curve.concentration_unit == "mg/L"
    with db.reading() as session:
        points = session.scalars(select(CalibrationPoint).where(CalibrationPoint.curve_id == curve.id)
                                 .order_by(CalibrationPoint.level)).all()
        uses = session.scalars(select(MaterialUse).where(MaterialUse.consumer_id == curve.code)).all()
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "curve.recorded")).one()
        assert [p.level for p in points] == list(range(7))
        assert len(uses) == 1 and uses[0].consumer_kind == "calibration_curve" and uses[0].used_at == at
        assert {p.material_use_id for p in points[1:]} == {uses[0].id} and points[0].material_use_id is None
        assert event.after_data["code"] == curve.code and event.actor_id == analyst.id
        curves.assert_curve_usable(session, curve, at + timedelta(hours=1), curve.method_version_id, "NH3-N")


def test_a_quadratic_fit_matches_the_normal_equations_on_fractions(db, analyst, technical, uv, standards):
    make_method(db, technical, "HJ 999-2020", instruments=(uv,), curve_kinds='["linear", "quadratic"]',
                parameters=(NH3N,))
    table = (("0", "0", "0.002"), ("1", "0.5", "0.150"), ("2", "1.0", "0.290"), ("3", "2.0", "0.540"),
             ("4", "3.0", "0.760"), ("5", "4.0", "0.950"))
    curve = record(db, analyst, facts(standards.working.barcode, table=table, method_code="HJ 999-2020",
                                      kind="quadratic"))
    pts = [(Fraction(c), Fraction(r)) for _, c, r in table]
    s = [sum(x ** k for x, _ in pts) for k in range(5)]
    t = [sum(y * x ** k for x, y in pts) for k in range(3)]

    def det(m):
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    matrix = [[s[i + j] for j in range(3)] for i in range(3)]
    whole = det(matrix)
    solution = []
    for col in range(3):
        replaced = [[t[i] if j == col else matrix[i][j] for j in range(3)] for i in range(3)]
        solution.append(det(replaced) / whole)
    a, b, c = solution
    assert close(curve.intercept, a) and close(curve.slope, b) and close(curve.quadratic, c)
    mean_y = sum(y for _, y in pts) / len(pts)
    r2 = 1 - sum((y - (a + b * x + c * x * x)) ** 2 for x, y in pts) / sum((y - mean_y) ** 2 for _, y in pts)
    assert close(curve.r ** 2, r2, "1e-18") and curve.accepted and curve.kind == "quadratic"


def test_a_curve_below_its_r_is_kept_rejected_and_unusable(db, analyst, ready):
    curve = record(db, analyst, facts(ready.working.barcode, table=POOR_ROWS))
    assert not curve.accepted and curve.rejection.startswith("r = 0.99") and "< 0.999" in curve.rejection
    with db.reading() as session, pytest.raises(curve_errors.CurveNotUsable) as caught:
        curves.assert_curve_usable(session, curve, utcnow(), curve.method_version_id, "NH3-N")
    assert caught.value.code == "curve_not_usable" and caught.value.reason == "rejected"


def test_too_few_non_zero_levels_is_recorded_as_rejected(db, analyst, ready):
    curve = record(db, analyst, facts(ready.working.barcode, table=GOOD_ROWS[:5]))  # 4 non-zero levels < 5
    assert not curve.accepted and curve.rejection == "n = 4 < 5" and curve.r > D("0.999")


def test_the_gate_refuses_expired_made_after_other_method_and_parameter(db, analyst, technical, uv, ready):
    at = utcnow() - timedelta(hours=2)
    curve = record(db, analyst, facts(ready.working.barcode, measured_at=at))
    other = make_method(db, technical, "HJ 536-2009", instruments=(uv,))
    with db.reading() as session:
        version = curve.method_version_id
        cases = [
            (at + timedelta(hours=24, seconds=1), version, "NH3-N", "expired"),
            (at - timedelta(minutes=1), version, "NH3-N", "made_after"),
            (at + timedelta(hours=1), other.id, "NH3-N", "other_method"),
            (at + timedelta(hours=1), version, "TP", "other_parameter"),
        ]
        for moment, version_id, parameter, reason in cases:
            with pytest.raises(curve_errors.CurveNotUsable) as caught:
                curves.assert_curve_usable(session, curve, moment, version_id, parameter)
            assert caught.value.code == "curve_not_usable" and caught.value.reason == reason
            assert caught.value.message("zh") != caught.value.message("en")
        curves.assert_curve_usable(session, curve, at, version, "NH3-N")  # at the moment it was made
        curves.assert_curve_usable(session, curve, at + timedelta(hours=24), version, "NH3-N")  # its last moment
    assert curves.in_range(curve, D("2.00")) and not curves.in_range(curve, D("2.0001"))
    fit = curves.fit_of(curve)
    assert (fit.intercept, fit.slope, fit.quadratic, fit.r) == (curve.intercept, curve.slope, None, curve.r)


def test_an_expired_standard_is_refused_and_nothing_is_saved(db, analyst, technical, ready):
    old = prepare(db, technical, ready.stock.barcode, prepared_at=ago(days=5), shelf_life_days=2, name="过期使用液")
    error = refused(db, analyst, facts(old.barcode), "material_expired")
    assert old.barcode in error.message("en")


def test_a_standard_prepared_after_the_measurement_is_refused(db, analyst, ready):
    refused(db, analyst, facts(ready.working.barcode, measured_at=utcnow() - timedelta(days=11)),
            "material_not_yet_available")


def test_an_instrument_the_method_does_not_allow_is_refused(db, analyst, technical, store, ready):
    calibrated_instrument(db, technical, store, "JC-UV-002")
    refused(db, analyst, facts(ready.working.barcode, instrument="JC-UV-002"), "instrument_not_allowed_for_method")
    refused(db, analyst, facts(ready.working.barcode, instrument="JC-NOPE"), "curve_instrument_not_found")


def test_an_instrument_out_of_calibration_at_the_measurement_is_refused(db, analyst, ready):
    """The instrument gate is asked at the time of measurement: 200 days ago, before its last
    verification, the instrument was not usable (checked before the standards)."""
    before = counts(db)
    with pytest.raises(DomainError) as caught:
        record(db, analyst, facts(ready.working.barcode, measured_at=utcnow() - timedelta(days=200)))
    assert caught.value.code.startswith("instrument_") and getattr(caught.value, "reason", "")
    assert counts(db) == before


def test_the_method_version_parameter_and_kind_are_checked(db, analyst, ready):
    barcode = ready.working.barcode
    refused(db, analyst, facts(barcode, method_code="HJ 000-2000"), "method_not_found")
    refused(db, analyst, facts(barcode, measured_at=utcnow() - timedelta(days=400)), "method_not_in_force")
    refused(db, analyst, facts(barcode, parameter="TP"), "curve_parameter_not_in_method")
    refused(db, analyst, facts(barcode, kind="quadratic"), "curve_kind_not_allowed")
    refused(db, analyst, facts(barcode, measured_at=utcnow() + timedelta(hours=1)), "act_in_future")


@pytest.mark.parametrize(("table", "code"), [
    ((("0", "0", "0.005"), ("1", "0,10", "0.031")), "curve_cell_comma_decimal"),
    ((("0", "0", "0.005"), ("1", "0.10", "abc")), "curve_cell_not_a_number"),
    ((("0", "0", "0.005"), ("1", "0.10", "NaN")), "curve_cell_not_a_number"),
    ((("0", "0", "0.005"), ("1", "0.10", "1e999")), "curve_cell_not_a_number"),
    ((("0", "0", "0.005"), ("1", "0.10", "=1+1")), "curve_cell_not_a_number"),
    ((("0", "0", "0.005"), ("1", "", "0.031")), "curve_cell_required"),
    ((("0", "0", "0.005"), ("x", "0.10", "0.031")), "curve_level_invalid"),
    ((("0", "0", "0.005"), ("1", "0.10", "0.031"), ("1", "0.20", "0.058")), "curve_level_repeated"),
    ((("0", "0", "0.005"), ("1", "0.20", "0.031"), ("2", "0.20", "0.058")), "curve_concentrations_not_increasing"),
    ((("0", "0", "0.005"), ("1", "-0.1", "0.031")), "curve_concentration_negative"),
    ((("1", "0.10", "0.031"),), "curve_too_few_points"),
    ((("0", "0", "0.05"), ("1", "0.1", "0.05"), ("2", "0.2", "0.05")), "curve_responses_flat"),
])
def test_bad_rows_are_refused_naming_the_row(db, analyst, ready, table, code):
    error = refused(db, analyst, facts(ready.working.barcode, table=table), code)
    assert error.http_status == 422


def test_a_non_zero_level_needs_its_standard_and_blank_rows_are_skipped(db, analyst, ready):
    points = rows(ready.working.barcode)
    points[3] = curves.PointFacts("3", "0.50", "0.139", "")
    error = refused(db, analyst, facts("", points=points), "curve_standard_required")
    assert "Row 4" in error.message("en") and "第 4 行" in error.message("zh")
    padded = [curves.PointFacts("", "", "", ""), *rows(ready.working.barcode), curves.PointFacts(" ", "", "", "")]
    assert record(db, analyst, facts("", points=padded)).accepted


def test_an_unknown_standard_barcode_is_refused(db, analyst, ready):
    refused(db, analyst, facts("SS26-99999"), "item_not_found")


def test_only_analysts_record_curves(db, users, ready):
    refused(db, users["inspector"], facts(ready.working.barcode), "inspector_read_only")
    refused(db, users["custodian"], facts(ready.working.barcode), "permission_denied")


def test_a_preview_fits_without_saving(db, analyst, ready):
    before = counts(db)
    with db.transaction() as session:
        checked = curves.preview_curve(session, analyst, facts(ready.working.barcode, table=POOR_ROWS))
    assert not checked.accepted and checked.fit.r < D("0.999") and checked.nonzero_levels == 6
    assert counts(db) == before


def test_the_lots_forward_list_shows_the_curve(db, analyst, ready):
    curve = record(db, analyst, facts(ready.working.barcode))
    with db.reading() as session:
        lot_id = ready.unit.lot_id
        everything = forward_traceability(session, lot_id)
        found = [u for u in everything if u.source == "calibration_curve"]
    assert [(u.record_id, u.barcode) for u in found] == [(curve.code, ready.working.barcode)]
    assert found[0].description == "NH3-N mg/L" and found[0].url == f"/curves/{curve.code}"
    # listed once: the use the curve recorded is not listed again as a plain use
    assert not [u for u in everything if u.source == "use" and u.barcode == ready.working.barcode
                and u.used_at == found[0].used_at]


def test_a_later_version_of_the_method_serves_curves_measured_after_it(db, analyst, technical, uv, ready):
    """The version is the one in force at the measurement, not now."""
    with db.transaction() as session:
        first = session.scalars(select(MethodVersion)).one()
        start = utcnow() - timedelta(hours=3)
        first.valid_to = start
        second = MethodVersion(method_id=first.method_id, version=2, valid_from=start, created_at=start,
                               created_by_id=technical.id, curve_r_min=D("0.999999"))
        session.add(second)
        session.flush()
        from app.analysis.models import MethodInstrument, MethodParameter
        session.add(MethodInstrument(method_version_id=second.id, instrument_id=uv.id))
        session.add(MethodParameter(method_version_id=second.id, parameter="NH3-N", unit="mg/L", mdl=D("0.025"),
                                    decimals=3))
        second_id = second.id
    older = record(db, analyst, facts(ready.working.barcode, measured_at=utcnow() - timedelta(hours=4)))
    newer = record(db, analyst, facts(ready.working.barcode))
    assert older.method_version_id != second_id and newer.method_version_id == second_id
    assert older.accepted and not newer.accepted and "< 0.999999" in newer.rejection
