"""Methods and their versions: registering one with its first version, every refusal with its code
and nothing changed, versions in force before and after a new version, never retroactive,
superseded and withdrawn methods refused at later moments, and the allowed-instruments gate."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import methods
from app.analysis.methods import ParameterFacts
from app.analysis.models import MethodVersion
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from tests.analysis.conftest import calibrated_instrument
from tests.analysis.methods_fixtures import act, counts, method_facts, version_facts, with_parameter, with_version


def create(db, actor, facts=None, **kw):
    return act(db, methods.create_method, actor, facts or method_facts(), **kw)


def test_a_method_is_registered_with_its_first_version(db, technical, uv):
    facts = with_version(method_facts(" hj  535—2009 ", parameters=(
        ParameterFacts("NH3-N", "mg/L", "0.025", decimals=3),
        ParameterFacts("TN", "mg/L", "0.05", lower_limit="0.2", upper_limit="4", significant_figures=3,
                       below_mdl="nd"))), calculation="curve", instruments=[uv.asset_no],
        duplicate_rd_limits=[("1", "5"), ("0.1", "10")], spike_recovery_low="85")
    method = create(db, technical, facts)
    assert method.code == "HJ 535-2009" and method.state == "active"
    with db.reading() as session:
        assert methods.get_method(session, "hj 535-2009").id == method.id
        version = methods.version_in_force(session, method.id, utcnow())
        assert version.version == 1 and version.valid_to is None and version.calculation == "curve"
        assert version.spike_recovery_low == D("85") and version.duplicate_rd_limits == '[["1","5"],["0.1","10"]]'
        params = methods.parameters_of(session, version.id)
        assert set(params) == {"NH3-N", "TN"} and params["TN"].significant_figures == 3
        assert params["NH3-N"].lower_limit is None and methods.lower_limit_of(params["NH3-N"]) == D("0.100")
        assert methods.allowed_instrument_ids(session, version.id) == {uv.id}
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "method.created")).one()
        assert event.after_data["code"] == "HJ 535-2009" and event.after_data["instruments"] == [uv.asset_no]


@pytest.mark.parametrize("code", ["HJ/T 91-2002", "GB/T 7475-1987", "GB 11893-89", "GB/T 5750.6-2006"])
def test_codes_with_their_year_are_accepted(db, technical, code):
    assert create(db, technical, method_facts(code)).code == code


BAD = [
    ("method_code_without_year", lambda f: method_facts("HJ 535")),
    ("method_code_without_year", lambda f: method_facts("氨氮")),
    ("method_matrix_unknown", lambda f: method_facts(matrix="lava")),
    ("field_required", lambda f: method_facts(name_zh=" ")),
    ("method_parameters_required", lambda f: with_version(f, parameters=[])),
    ("method_parameter_repeated", lambda f: method_facts(parameters=(
        ParameterFacts("Cu", "mg/L", "0.01", decimals=2), ParameterFacts("cu", "mg/L", "0.01", decimals=2)))),
    ("method_mdl_not_positive", lambda f: with_parameter(f, mdl="0")),
    ("method_mdl_not_positive", lambda f: with_parameter(f, mdl="-0.1")),
    ("field_required", lambda f: with_parameter(f, mdl="")),
    ("not_a_number", lambda f: with_parameter(f, mdl="0,025")),
    ("not_a_number", lambda f: with_parameter(f, mdl="NaN")),
    ("not_a_number", lambda f: with_parameter(f, mdl="1e999")),
    ("field_required", lambda f: with_parameter(f, unit="")),
    ("method_reporting_rule", lambda f: with_parameter(f, decimals=None)),
    ("method_reporting_rule", lambda f: with_parameter(f, decimals=3, significant_figures=3)),
    ("method_reporting_rule", lambda f: with_parameter(f, decimals=7)),
    ("method_reporting_rule", lambda f: with_parameter(f, decimals=None, significant_figures=0)),
    ("not_a_number", lambda f: with_parameter(f, decimals="2.5")),
    ("method_limits_invalid", lambda f: with_parameter(f, lower_limit="0.01")),
    ("method_limits_invalid", lambda f: with_parameter(f, lower_limit="0.1", upper_limit="0.1")),
    ("method_below_mdl_style_unknown", lambda f: with_parameter(f, below_mdl="zero")),
    ("method_mdl_not_applicable", lambda f: with_parameter(f, mdl="0.01", below_mdl="none")),
    ("method_calculation_unknown", lambda f: with_version(f, calculation="guess")),
    ("method_curve_kind_unknown", lambda f: with_version(f, curve_kinds=["cubic"])),
    ("method_qc_out_of_range", lambda f: with_version(f, duplicate_rate_pct=150)),
    ("method_qc_out_of_range", lambda f: with_version(f, curve_r_min="1.5")),
    ("method_qc_out_of_range", lambda f: with_version(f, max_samples_per_batch=0)),
    ("method_qc_out_of_range", lambda f: with_version(f, blanks_per_batch="1.5")),
    ("method_recovery_range_invalid", lambda f: with_version(f, spike_recovery_low="120",
                                                             spike_recovery_high="80")),
    ("method_rd_limits_invalid", lambda f: with_version(f, duplicate_rd_limits=[("1", "150")])),
    ("method_rd_limits_invalid", lambda f: with_version(f, duplicate_rd_limits=[("1", "5"), ("1", "6")])),
    ("method_instrument_unknown", lambda f: with_version(f, instruments=["JC-NOPE-9"])),
]


@pytest.mark.parametrize("mdl", ["", "0", "0.0"])
def test_a_direct_reading_has_no_detection_limit(db, technical, mdl):
    """pH, water temperature, conductivity on a meter: the MDL is 0, nothing is ever "below" it,
    and a negative reading (water at −0.4 ℃) is a number, never "0L"."""
    from app.analysis.numbers import report_value

    facts = method_facts("HJ 1147-2020", parameters=(
        ParameterFacts("pH", "无量纲", mdl, decimals=1, below_mdl="none"),
        ParameterFacts("WT", "℃", mdl, decimals=1, below_mdl="none")))
    method = create(db, technical, facts)
    with db.reading() as session:
        params = methods.parameters_of(session, methods.version_in_force(session, method.id, utcnow()).id)
        stored = {name: (p.mdl, p.below_mdl) for name, p in params.items()}
    assert stored == {"pH": (0, "none"), "WT": (0, "none")}
    assert report_value(D("-0.42"), mdl=D(0), style="none", decimals=1, significant_figures=None) == "-0.4"
    assert report_value(D("7.45"), mdl=D(0), style="none", decimals=1, significant_figures=None) == "7.4"


@pytest.mark.parametrize(("code", "change"), BAD, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD)])
def test_each_refusal_has_its_code_and_changes_nothing(db, technical, code, change):
    before = counts(db)
    with pytest.raises(DomainError) as refused:
        create(db, technical, change(method_facts()))
    assert refused.value.code == code
    assert refused.value.message("zh") != refused.value.message("en")
    assert counts(db) == before


def test_a_code_is_registered_once_and_only_by_the_technical_manager(db, technical, users):
    create(db, technical)
    before = counts(db)
    for actor, code in ((technical, "method_code_taken"), (users["analyst"], "permission_denied"),
                        (users["inspector"], "inspector_read_only"), (users["quality_manager"], "permission_denied")):
        with pytest.raises(DomainError) as refused:
            create(db, actor, method_facts("HJ 535-2009" if actor is technical else "HJ 536-2009"))
        assert refused.value.code == code
    assert counts(db) == before


def test_versions_in_force_before_and_after_a_new_version(db, technical):
    method = create(db, technical, valid_from=utcnow() - timedelta(days=1))
    start = utcnow() + timedelta(hours=2)
    v2 = act(db, methods.new_version, technical, method, version_facts(
        ParameterFacts("NH3-N", "mg/L", "0.02", decimals=3), spike_recovery_low="85"), start, "标准修改单：检出限降低")
    assert v2.version == 2 and v2.valid_from == start
    with db.reading() as session:
        assert methods.version_in_force(session, method.id, utcnow()).version == 1
        assert methods.version_in_force(session, method.id, utcnow() - timedelta(minutes=1)).version == 1
        assert methods.version_in_force(session, method.id, start - timedelta(seconds=1)).version == 1
        assert methods.version_in_force(session, method.id, start).version == 2
        assert methods.version_in_force(session, method.id, start + timedelta(days=30)).version == 2
        v1 = session.scalars(select(MethodVersion).where(MethodVersion.method_id == method.id,
                                                         MethodVersion.version == 1)).one()
        assert v1.valid_to == start
        assert methods.parameters_of(session, v2.id)["NH3-N"].mdl == D("0.02")
        with pytest.raises(DomainError) as refused:
            methods.version_in_force(session, method.id, v1.valid_from - timedelta(seconds=1))
        assert refused.value.code == "method_not_in_force"
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "method.version_added")).one()
        assert event.after_data["reason"] == "标准修改单：检出限降低"


def test_a_new_version_is_never_retroactive(db, technical):
    method = create(db, technical)
    later = utcnow() + timedelta(days=1)
    act(db, methods.new_version, technical, method, version_facts(), later, "修订")
    before = counts(db)
    for start in (utcnow() - timedelta(days=1), later - timedelta(hours=1), later):
        with pytest.raises(DomainError) as refused:
            act(db, methods.new_version, technical, method, version_facts(), start, "修订")
        assert refused.value.code == "method_version_retroactive"
    with pytest.raises(DomainError) as refused:
        act(db, methods.new_version, technical, method, version_facts(), later + timedelta(days=1), " ")
    assert refused.value.code == "field_required"
    assert counts(db) == before


def test_a_withdrawn_method_is_refused_after_its_withdrawal_only(db, technical):
    method = create(db, technical, valid_from=utcnow() - timedelta(days=10))
    act(db, methods.withdraw_method, technical, method, "实验室不再开展该项目")
    with db.reading() as session:
        assert methods.get_method(session, method.code).state == "withdrawn"
        assert methods.version_in_force(session, method.id, utcnow() - timedelta(days=1)).version == 1
        with pytest.raises(DomainError) as refused:
            methods.version_in_force(session, method.id, utcnow() + timedelta(seconds=1))
        assert refused.value.code == "method_not_in_force" and method.code in refused.value.message("zh")
    before = counts(db)
    for call in ((methods.new_version, version_facts(), utcnow() + timedelta(hours=1), "修订"),
                 (methods.withdraw_method, "again"), (methods.supersede_method, "again")):
        with pytest.raises(DomainError) as refused:
            act(db, call[0], technical, method, *call[1:])
        assert refused.value.code == "method_not_active"
    assert counts(db) == before


def test_superseding_names_a_registered_successor(db, technical):
    old = create(db, technical, method_facts("GB 7479-87"))
    before = counts(db)
    with pytest.raises(DomainError) as refused:
        act(db, methods.supersede_method, technical, old, "被新标准替代", "HJ 535-2009")
    assert refused.value.code == "method_not_found" and counts(db) == before
    create(db, technical)
    act(db, methods.supersede_method, technical, old, "被新标准替代", "hj 535-2009")
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "method.superseded")).one()
        assert event.after_data["replaced_by"] == "HJ 535-2009" and event.after_data["versions_closed"] == [1]
        with pytest.raises(DomainError):
            methods.version_in_force(session, old.id, utcnow() + timedelta(seconds=1))


def test_withdrawing_before_a_scheduled_version_keeps_it_from_ever_coming_into_force(db, technical):
    method = create(db, technical)
    act(db, methods.new_version, technical, method, version_facts(), utcnow() + timedelta(days=5), "修订")
    act(db, methods.withdraw_method, technical, method, "停用")
    with db.reading() as session, pytest.raises(DomainError):
        methods.version_in_force(session, method.id, utcnow() + timedelta(days=6))


def test_only_the_instruments_a_version_names_are_allowed(db, technical, store, uv):
    other = calibrated_instrument(db, technical, store, "JC-ICP-001", uses=(("Cu", "HJ 700-2014"),))
    method = create(db, technical, with_version(method_facts(), instruments=[uv.asset_no]))
    open_method = create(db, technical, method_facts("HJ 700-2014"))
    with db.reading() as session:
        version = methods.version_in_force(session, method.id, utcnow())
        methods.assert_instrument_allowed(session, version, uv)
        with pytest.raises(DomainError) as refused:
            methods.assert_instrument_allowed(session, version, other)
        assert refused.value.code == "instrument_not_allowed_for_method"
        assert "JC-ICP-001" in refused.value.message("zh") and "HJ 535-2009" in refused.value.message("en")
        unrestricted = methods.version_in_force(session, open_method.id, utcnow())
        methods.assert_instrument_allowed(session, unrestricted, other)


def test_an_unknown_method(db):
    with db.reading() as session, pytest.raises(DomainError) as refused:
        methods.get_method(session, "HJ 999-2099")
    assert refused.value.code == "method_not_found" and refused.value.http_status == 404
