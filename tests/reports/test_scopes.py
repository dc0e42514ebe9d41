"""The CMA scope and signatory scopes: the lookups reports call (coverage of a report's items on
a day, the signatory gate), and the services that keep both (record, import, propose, approve,
end), each with its refusals (code + nothing changed) and its audit event."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.analysis.models import Method
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.labtime import lab_calendar
from app.reports import scopes
from app.reports.models import AccreditationCertificate, AccreditationItem, SignatoryScope
from tests.reports.conftest import grant_signatory_scope

TODAY = date.today()
NH3N = ("NH3-N", "HJ 535-2009", "water")


def _certificate(db, recorder, items, *, no="210012345678", valid_from=date(2024, 1, 1),
                 valid_to=date(2029, 12, 31)) -> AccreditationCertificate:
    """A certificate record with its items written straight into the tables."""
    with db.transaction() as session:
        cert = AccreditationCertificate(certificate_no=no, issued_by="省市场监督管理局", valid_from=valid_from,
                                        valid_to=valid_to, recorded_at=utcnow(), recorded_by_id=recorder.id)
        session.add(cert)
        session.flush()
        for parameter, code, matrix in items:
            session.add(AccreditationItem(certificate_id=cert.id, parameter=parameter, method_code=code,
                                          matrix=matrix, recorded_at=utcnow(), recorded_by_id=recorder.id))
        session.flush()
        session.expunge(cert)
        return cert


def _method(db, creator, code: str, matrix: str = "water") -> Method:
    with db.transaction() as session:
        method = Method(code=code, name_zh=code, matrix=matrix, created_at=utcnow(), created_by_id=creator.id)
        session.add(method)
        session.flush()
        session.expunge(method)
        return method


def _counts(db) -> tuple[int, ...]:
    with db.reading() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in
                     (AccreditationCertificate, AccreditationItem, SignatoryScope, AuditEvent))


def _refused(db, code: str, act) -> DomainError:
    """Run `act(session)` in a transaction; it must raise `code` and change nothing."""
    before = _counts(db)
    with pytest.raises(DomainError) as raised, db.transaction() as session:
        act(session)
    assert raised.value.code == code, raised.value
    assert _counts(db) == before
    return raised.value


# ---------------------------------------------------------------- cma_coverage, certificate_in_force


def test_coverage_is_true_only_for_items_held_by_a_certificate_in_force(db, users):
    _certificate(db, users["technical_manager"], [NH3N, ("COD", "HJ 828-2017", "water")])
    asked = [("NH3-N", "hj 535—2009", "water"), ("COD", "HJ 828-2017", "water"), ("NH3-N", "HJ 535-2009", "soil"),
             ("TP", "GB 11893-89", "water"), ("NH3-N", "HJ 535-2009", "water")]
    with db.reading() as session:
        covered = scopes.cma_coverage(session, asked, TODAY)
        assert covered == {asked[0]: True, asked[1]: True, asked[2]: False, asked[3]: False, asked[4]: True}
        assert scopes.cma_coverage(session, asked, date(2023, 12, 31)) == dict.fromkeys(asked, False)
        assert scopes.cma_coverage(session, asked, date(2030, 1, 1)) == dict.fromkeys(asked, False)
        assert scopes.cma_coverage(session, [], TODAY) == {}


def test_an_item_is_covered_when_any_certificate_in_force_holds_it(db, users):
    tm = users["technical_manager"]
    _certificate(db, tm, [NH3N], no="210012345678")
    _certificate(db, tm, [("COD", "HJ 828-2017", "water")], no="220012345678", valid_from=date(2025, 6, 1))
    with db.reading() as session:
        assert scopes.cma_coverage(session, [NH3N, ("COD", "HJ 828-2017", "water")], TODAY) == {
            NH3N: True, ("COD", "HJ 828-2017", "water"): True}
        assert scopes.cma_coverage(session, [("COD", "HJ 828-2017", "water")], date(2025, 5, 31)) == {
            ("COD", "HJ 828-2017", "water"): False}


def test_a_newer_record_of_the_same_number_replaces_the_older(db, users):
    """A wrong item is corrected by recording the certificate again: the old record stops counting."""
    tm = users["technical_manager"]
    old = _certificate(db, tm, [NH3N, ("COD", "HJ 828-2017", "soil")])
    with db.reading() as session:
        assert scopes.certificate_in_force(session, TODAY).id == old.id
    new = _certificate(db, tm, [NH3N])
    with db.reading() as session:
        assert scopes.cma_coverage(session, [NH3N, ("COD", "HJ 828-2017", "soil")], TODAY) == {
            NH3N: True, ("COD", "HJ 828-2017", "soil"): False}
        assert scopes.certificate_in_force(session, TODAY).id == new.id
        assert [c.id for c in scopes.certificates_in_force(session, TODAY)] == [new.id]


def test_certificate_in_force_is_none_without_one(db, users):
    _certificate(db, users["technical_manager"], [NH3N], valid_to=date(2024, 12, 31))
    with db.reading() as session:
        assert scopes.certificate_in_force(session, TODAY) is None
        assert scopes.certificate_in_force(session, date(2024, 12, 31)) is not None


def test_coverage_takes_one_query_whatever_the_number_of_items(db, users, count_queries):
    _certificate(db, users["technical_manager"], [NH3N])
    many = [(f"P{i}", f"HJ {100 + i}-2009", "water") for i in range(40)] + [NH3N]
    with db.reading() as session:
        with count_queries() as one:
            scopes.cma_coverage(session, [NH3N], TODAY)
        with count_queries() as forty:
            assert scopes.cma_coverage(session, many, TODAY)[NH3N] is True
    assert one.count == forty.count == 1


# ---------------------------------------------------------------- assert_signatory_in_scope


def test_a_method_scope_covers_its_parameters_and_nothing_else(db, users, nh3n_method):
    signatory, qm = users["signatory"], users["quality_manager"]
    cod = _method(db, users["technical_manager"], "HJ 828-2017")
    grant_signatory_scope(db, signatory, method_id=nh3n_method.method_id, approver=qm)
    with db.reading() as session:
        scopes.assert_signatory_in_scope(session, signatory, [("NH3-N", nh3n_method.method_id, "water")], TODAY)
        scopes.assert_signatory_in_scope(session, signatory, [], TODAY)
    error = _refused(db, "signatory_out_of_scope", lambda s: scopes.assert_signatory_in_scope(
        s, signatory, [("NH3-N", nh3n_method.method_id, "water"), ("COD", cod.id, "water")], TODAY))
    assert "COD (HJ 828-2017, water)" in error.message("en")
    assert "COD（HJ 828-2017，水）" in error.message("zh")
    assert "NH3-N" not in error.message("en")
    assert error.params["items"] == [{"parameter": "COD", "method_id": cod.id, "matrix": "water"}]


def test_matrix_and_parameter_scopes(db, users, nh3n_method):
    signatory, qm = users["signatory"], users["quality_manager"]
    soil = _method(db, users["technical_manager"], "HJ 491-2019", "soil")
    grant_signatory_scope(db, signatory, matrix="soil", approver=qm)
    grant_signatory_scope(db, signatory, method_id=nh3n_method.method_id, parameter="TN", approver=qm)
    with db.reading() as session:
        scopes.assert_signatory_in_scope(session, signatory, [("Cu", soil.id, "soil"), ("Zn", soil.id, "soil"),
                                                              ("TN", nh3n_method.method_id, "water")], TODAY)
    error = _refused(db, "signatory_out_of_scope", lambda s: scopes.assert_signatory_in_scope(
        s, signatory, [("NH3-N", nh3n_method.method_id, "water")], TODAY))
    assert "NH3-N (HJ 535-2009, water)" in error.message("en")


def test_only_approved_unended_scopes_valid_that_day_count(db, users, nh3n_method):
    signatory, qm = users["signatory"], users["quality_manager"]
    item = [("NH3-N", nh3n_method.method_id, "water")]
    scope = grant_signatory_scope(db, signatory, method_id=nh3n_method.method_id, approver=qm,
                                  valid_from=TODAY - timedelta(days=10), valid_to=TODAY + timedelta(days=10))
    with db.reading() as session:
        scopes.assert_signatory_in_scope(session, signatory, item, TODAY + timedelta(days=10))
    for day in (TODAY - timedelta(days=11), TODAY + timedelta(days=11)):
        _refused(db, "signatory_out_of_scope", lambda s, day=day: scopes.assert_signatory_in_scope(
            s, signatory, item, day))
    # ended from tomorrow: today still covered, tomorrow not
    with db.transaction() as session:
        row = session.get(SignatoryScope, scope.id)
        row.ended_at = lab_calendar(session).start_of(TODAY + timedelta(days=1))
        row.ended_by_id, row.end_reason = qm.id, "left the lab"
    with db.reading() as session:
        scopes.assert_signatory_in_scope(session, signatory, item, TODAY)
    _refused(db, "signatory_out_of_scope", lambda s: scopes.assert_signatory_in_scope(
        s, signatory, item, TODAY + timedelta(days=1)))
    # proposed but never approved: not in force
    with db.transaction() as session:
        session.add(SignatoryScope(user_id=signatory.id, method_id=nh3n_method.method_id,
                                   valid_from=TODAY - timedelta(days=5), proposed_at=utcnow(),
                                   proposed_by_id=users["technical_manager"].id))
    _refused(db, "signatory_out_of_scope", lambda s: scopes.assert_signatory_in_scope(
        s, signatory, item, TODAY + timedelta(days=1)))
    # another person's scope covers nothing for this one
    _refused(db, "signatory_out_of_scope", lambda s: scopes.assert_signatory_in_scope(
        s, users["reviewer"], item, TODAY))


def test_the_gate_takes_two_queries_at_most(db, users, nh3n_method, count_queries):
    signatory = users["signatory"]
    grant_signatory_scope(db, signatory, matrix="air", approver=users["quality_manager"])
    items = [(f"P{i}", nh3n_method.method_id, "water") for i in range(30)]
    with db.reading() as session, count_queries() as counted, pytest.raises(DomainError):
        scopes.assert_signatory_in_scope(session, signatory, items, TODAY)
    assert counted.count <= 2
