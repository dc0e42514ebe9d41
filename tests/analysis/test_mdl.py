"""MDL studies (HJ 168-2020): the numbers computed from the replicates (n = 7 worked by hand),
whether they meet the method's MDL, and the refusals (fewer than 7, all equal, wrong unit, a
parameter the version does not measure, comma decimals and text), each changing nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import mdl
from app.analysis.models import MdlStudy
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from tests.analysis.conftest import ParameterSpec, make_method
from tests.analysis.methods_fixtures import act, counts

REPLICATES = [D(v) for v in ["0.021", "0.023", "0.020", "0.024", "0.022", "0.019", "0.025"]]
# by hand: mean 0.022; deviations −1 +1 −2 +2 0 −3 +3 (×0.001); Σd² = 28e-6; S² = 28e-6 / 6
S = (D("28e-6") / 6).sqrt()


@pytest.fixture
def version(db, technical):
    return make_method(db, technical)  # NH3-N, mg/L, MDL 0.025


def test_seven_replicates_give_the_mdl_by_hj_168(db, technical, analyst, version):
    performed = utcnow() - timedelta(days=2)
    study = act(db, mdl.record_mdl_study, technical, version, "NH3-N", REPLICATES, "mg/L", performed,
                "低浓度加标样品 7 次全程序测定", performed_by=analyst)
    assert study.n == 7 and study.mean == D("0.022") and study.t_value == D("3.143")
    assert abs(study.std_dev - S) < D("1e-20")
    assert study.mdl == D("3.143") * study.std_dev and abs(study.mdl - D("0.0067897")) < D("1e-7")
    assert study.lower_limit == 4 * study.mdl
    assert study.meets_method is True  # 0.0068 ≤ 0.025
    assert study.performed_by_id == analyst.id and study.recorded_by_id == technical.id
    with db.reading() as session:
        saved = session.get(MdlStudy, study.id)
        assert json.loads(saved.replicates) == [str(v) for v in REPLICATES]
        assert mdl.replicates_of(saved) == REPLICATES and saved.mdl == study.mdl
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "method.mdl_study_recorded")).one()
        assert event.after_data["mdl"] == str(study.mdl) and event.after_data["meets_method"] is True
    assert mdl.shown(study.mdl) == "0.00679"


def test_a_lab_mdl_above_the_methods_does_not_meet_it(db, technical):
    version = make_method(db, technical, "HJ 536-2009", parameters=(ParameterSpec("NH3-N", mdl="0.005"),))
    study = act(db, mdl.record_mdl_study, technical, version, "NH3-N", REPLICATES, "mg/L", None)
    assert study.meets_method is False


def test_more_replicates_take_their_own_t(db, technical, version):
    values = [*REPLICATES, D("0.022")]
    numbers = mdl.compute(values)
    assert numbers.n == 8 and numbers.t_value == D("2.998") and numbers.mdl == D("2.998") * numbers.std_dev


@pytest.mark.parametrize(("replicates", "unit", "parameter", "code"), [
    (REPLICATES[:6], "mg/L", "NH3-N", "mdl_too_few_replicates"),
    ([D("0.02")] * 7, "mg/L", "NH3-N", "mdl_no_spread"),
    (REPLICATES, "µg/L", "NH3-N", "mdl_unit_mismatch"),
    (REPLICATES, "mg/L", "TP", "mdl_parameter_unknown"),
    ([*REPLICATES[:6], D("NaN")], "mg/L", "NH3-N", "mdl_replicate_invalid"),
    ([*REPLICATES[:6], 0.02], "mg/L", "NH3-N", "mdl_replicate_invalid"),  # a float never enters
])
def test_refusals_change_nothing(db, technical, version, replicates, unit, parameter, code):
    before = counts(db)
    with pytest.raises(DomainError) as refused:
        act(db, mdl.record_mdl_study, technical, version, parameter, replicates, unit, None)
    assert refused.value.code == code and refused.value.message("zh")
    assert counts(db) == before


def test_only_the_technical_manager_records_a_study(db, users, version):
    before = counts(db)
    for actor, code in ((users["analyst"], "permission_denied"), (users["inspector"], "inspector_read_only")):
        with pytest.raises(DomainError) as refused:
            act(db, mdl.record_mdl_study, actor, version, "NH3-N", REPLICATES, "mg/L", None)
        assert refused.value.code == code
    assert counts(db) == before


def test_a_study_cannot_be_dated_in_the_future(db, technical, version):
    with pytest.raises(DomainError) as refused:
        act(db, mdl.record_mdl_study, technical, version, "NH3-N", REPLICATES, "mg/L", utcnow() + timedelta(days=1))
    assert refused.value.code == "act_in_future"


def test_pasted_replicates_are_read_one_per_line_or_by_spaces():
    assert mdl.parse_replicates("0.021\n0.023 \t0.020\r\n\n0.024;0.022  0.019\n0.025\n") == REPLICATES
    assert mdl.parse_replicates("") == []


@pytest.mark.parametrize(("text", "code", "position"), [
    ("0.021 0,023 0.020", "mdl_comma_decimal", "2"),
    ("0.021,0.023", "mdl_comma_decimal", "1"),
    ("0.021 abc", "mdl_replicate_invalid", "2"),
    ("0.021 inf", "mdl_replicate_invalid", "2"),
    ("1e999", "mdl_replicate_invalid", "1"),
    ("=SUM(A1:A7)", "mdl_replicate_invalid", "1"),
    (" ".join(["0.1"] * 51), "mdl_too_many_replicates", None),
])
def test_pasted_replicates_that_are_not_numbers_are_named(text, code, position):
    with pytest.raises(DomainError) as refused:
        mdl.parse_replicates(text)
    assert refused.value.code == code
    if position:
        assert f"第 {position} 个" in refused.value.message("zh")
        assert f"Replicate {position}" in refused.value.message("en")
