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
from app.core.labtime import DEFAULT_CALENDAR, lab_calendar
from app.reports import scopes
from app.reports.models import AccreditationCertificate, AccreditationItem, SignatoryScope
from tests.conftest import make_user, race
from tests.reports.conftest import grant_signatory_scope

TODAY = DEFAULT_CALENDAR.today()  # the lab day; tests/reports/conftest.py reads it again per test

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
    # before its start, after its end, and before the day it was approved (today)
    for day in (TODAY - timedelta(days=11), TODAY + timedelta(days=11), TODAY - timedelta(days=1)):
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


# ---------------------------------------------------------------- recording the CMA certificate


def _last_event(db) -> AuditEvent:
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
        session.expunge(event)
        return event


def _record(db, actor, no="210012345678", valid_from="2024-01-01", valid_to="2029-12-31", **kwargs):
    with db.transaction() as session:
        cert = scopes.record_certificate(session, actor, no, "黑龙江省市场监督管理局", valid_from, valid_to, **kwargs)
        session.flush()
        session.expunge(cert)
        return cert


def test_the_technical_manager_records_a_certificate(db, users):
    cert = _record(db, users["technical_manager"], no=" 2100 1234 5678 ")
    assert cert.certificate_no == "210012345678"
    event = _last_event(db)
    assert (event.action, event.entity_type, event.entity_id) == (
        "reports.cma_certificate_recorded", "accreditation_certificate", str(cert.id))
    assert '"certificate_no":"210012345678"' in event.after


@pytest.mark.parametrize(("no", "valid_from", "valid_to", "code"), [
    ("21001234567", "2024-01-01", "2029-12-31", "cma_certificate_no_invalid"),
    ("2100123456789", "2024-01-01", "2029-12-31", "cma_certificate_no_invalid"),
    ("21001234567X", "2024-01-01", "2029-12-31", "cma_certificate_no_invalid"),
    ("", "2024-01-01", "2029-12-31", "field_required"),
    ("210012345678", "2029-12-31", "2029-12-31", "cma_certificate_dates_invalid"),
    ("210012345678", "2030-01-01", "2029-12-31", "cma_certificate_dates_invalid"),
    ("210012345678", "2024-13-01", "2029-12-31", "invalid_act_time"),
])
def test_a_bad_certificate_is_refused(db, users, no, valid_from, valid_to, code):
    _refused(db, code, lambda s: scopes.record_certificate(
        s, users["technical_manager"], no, "省市场监督管理局", valid_from, valid_to))


def test_only_the_technical_manager_records_the_cma_scope(db, users):
    for role, code in (("quality_manager", "permission_denied"), ("signatory", "permission_denied"),
                       ("inspector", "inspector_read_only")):
        _refused(db, code, lambda s, role=role: scopes.record_certificate(
            s, users[role], "210012345678", "局", "2024-01-01", "2029-12-31"))
    cert = _certificate(db, users["technical_manager"], [])
    _refused(db, "permission_denied", lambda s: scopes.add_item(s, users["quality_manager"], cert, *NH3N))
    _refused(db, "permission_denied", lambda s: scopes.import_items_csv(
        s, users["quality_manager"], cert, b"parameter,method_code,matrix\nNH3-N,HJ 535-2009,water\n"))


def test_a_number_is_recorded_again_only_as_a_correction_of_its_latest_record(db, users):
    tm = users["technical_manager"]
    first = _record(db, tm)
    error = _refused(db, "cma_certificate_recorded", lambda s: scopes.record_certificate(
        s, tm, "210012345678", "局", "2024-01-01", "2029-12-31"))
    assert f"#{first.id}" in error.message("en")
    second = _record(db, tm, replaces=first.id)
    _refused(db, "cma_certificate_recorded", lambda s: scopes.record_certificate(
        s, tm, "210012345678", "局", "2024-01-01", "2029-12-31", replaces=first.id))
    assert _last_event(db).after.count(f'"replaces":{first.id}') == 1
    _refused(db, "cma_certificate_replaced", lambda s: scopes.add_item(s, tm, s.get(AccreditationCertificate,
                                                                                    first.id), *NH3N))
    assert second.id > first.id


# ---------------------------------------------------------------- items


@pytest.mark.parametrize(("typed", "stored"), [
    ("HJ 535-2009", "HJ 535-2009"), ("GB 7467-87", "GB 7467-87"), ("hj/t 195—2005", "HJ/T 195-2005"),
    ("GB/T 11893-1989", "GB/T 11893-1989"), ("HJ 347.2-2018", "HJ 347.2-2018")])
def test_items_name_the_method_with_its_year(db, users, typed, stored):
    tm = users["technical_manager"]
    cert = _certificate(db, tm, [])
    with db.transaction() as session:
        item = scopes.add_item(session, tm, cert, " NH3-N ", typed, "水")
        assert (item.parameter, item.method_code, item.matrix) == ("NH3-N", stored, "water")
    event = _last_event(db)
    assert (event.action, event.entity_type, event.entity_id) == ("reports.cma_item_added", "accreditation_item",
                                                                  str(item.id))


@pytest.mark.parametrize(("parameter", "method", "matrix", "code"), [
    ("NH3-N", "HJ 535", "water", "cma_method_code_year"),
    ("NH3-N", "HJ 535-209", "water", "cma_method_code_year"),
    ("NH3-N", "HJ 535-20090", "water", "cma_method_code_year"),
    ("NH3-N", "535-2009", "water", "cma_method_code_year"),
    ("NH3-N", "HJ 535-2009", "sea", "cma_matrix_invalid"),
    ("NH3-N", "HJ 535-2009", "", "cma_matrix_invalid"),
    ("", "HJ 535-2009", "water", "field_required"),
    ("=HYPERLINK(\"http://x\")", "HJ 535-2009", "water", "cma_formula_cell"),
    ("NH3-N", "=1+1", "water", "cma_formula_cell"),
    ("NH3-N", "HJ 535-2009", "@SUM(A1)", "cma_formula_cell"),
])
def test_a_bad_item_is_refused(db, users, parameter, method, matrix, code):
    cert = _certificate(db, users["technical_manager"], [])
    _refused(db, code, lambda s: scopes.add_item(s, users["technical_manager"], cert, parameter, method, matrix))


def test_an_item_is_held_once_per_certificate(db, users):
    cert = _certificate(db, users["technical_manager"], [NH3N])
    error = _refused(db, "cma_item_duplicate", lambda s: scopes.add_item(
        s, users["technical_manager"], cert, "NH3-N", "HJ 535－2009", "water"))
    assert "NH3-N (HJ 535-2009, water)" in error.message("en")


# ---------------------------------------------------------------- CSV import


def _import(db, actor, cert, data: bytes) -> list[tuple[str, str, str]]:
    with db.transaction() as session:
        certificate = session.get(AccreditationCertificate, cert.id)
        rows = scopes.import_items_csv(session, actor, certificate, data, "scope.csv")
        return [(r.parameter, r.method_code, r.matrix) for r in rows]


def _csv_refused(db, users, cert, data: bytes, code: str = "cma_csv_refused") -> DomainError:
    return _refused(db, code, lambda s: scopes.import_items_csv(
        s, users["technical_manager"], s.get(AccreditationCertificate, cert.id), data))


def test_a_csv_is_imported_in_utf8_with_or_without_bom_and_in_gbk(db, users):
    tm = users["technical_manager"]
    cert = _certificate(db, tm, [])
    assert _import(db, tm, cert, b"parameter,method_code,matrix\r\nNH3-N,HJ 535-2009,water\r\n\r\n") == [NH3N]
    event = _last_event(db)
    assert (event.action, event.entity_type, event.entity_id) == (
        "reports.cma_items_imported", "accreditation_certificate", str(cert.id))
    assert '"count":1' in event.after and '"filename":"scope.csv"' in event.after
    bom = "\ufeffmatrix,parameter,method_code\nwater,COD,HJ 828-2017\n".encode()
    assert _import(db, tm, cert, bom) == [("COD", "HJ 828-2017", "water")]
    gbk = "检测项目,方法,介质\n六价铬,GB 7467-87,水\n总磷,GB/T 11893-1989,水\n".encode("gbk")
    assert _import(db, tm, cert, gbk) == [("六价铬", "GB 7467-87", "water"), ("总磷", "GB/T 11893-1989", "water")]
    with db.reading() as session:
        assert scopes.cma_coverage(session, [("六价铬", "GB 7467-87", "water")], TODAY) == {
            ("六价铬", "GB 7467-87", "water"): True}


def test_a_csv_in_another_encoding_is_refused(db, users):
    cert = _certificate(db, users["technical_manager"], [])
    _csv_refused(db, users, cert, "parameter,method_code,matrix\nNH3-N,HJ 535-2009,water\n".encode("utf-16"),
                 "cma_csv_encoding")
    _csv_refused(db, users, cert, b"parameter,method_code,matrix\n\xff\xff,HJ 535-2009,water\n", "cma_csv_encoding")


def test_a_csv_without_its_header_is_refused(db, users):
    cert = _certificate(db, users["technical_manager"], [])
    error = _csv_refused(db, users, cert, b"NH3-N,HJ 535-2009,water\nCOD,HJ 828-2017,water\n", "cma_csv_header")
    assert "parameter, method_code, matrix" in error.message("en")
    _csv_refused(db, users, cert, b"parameter,matrix\nNH3-N,water\n", "cma_csv_header")
    _csv_refused(db, users, cert, b"parameter,method_code,matrix\n", "cma_csv_empty")
    _csv_refused(db, users, cert, b"", "cma_csv_empty")


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_saved(db, users):
    cert = _certificate(db, users["technical_manager"], [])
    data = ("parameter,method_code,matrix\n"
            "NH3-N,HJ 535-2009,water\n"  # 2: fine
            "COD,HJ 828-17x,water\n"  # 3: bad year
            "TP,GB 11893,water\n"  # 4: no year
            "Pb,GB 7475-87,sea\n"  # 5: matrix
            "=cmd|' /C calc'!A0,HJ 535-2009,water\n"  # 6: formula
            "NH3-N,HJ 535—2009,water\n"  # 7: repeats line 2
            "Cd,GB 7475-87\n").encode()  # 8: a column short
    error = _csv_refused(db, users, cert, data)
    assert [(n, e.code) for n, e in error.problems] == [
        (3, "cma_method_code_year"), (4, "cma_method_code_year"), (5, "cma_matrix_invalid"), (6, "cma_formula_cell"),
        (7, "cma_csv_duplicate"), (8, "cma_csv_line")]
    assert "line 3:" in error.message("en") and "第 3 行" in error.message("zh")
    assert "repeats line 2" in error.problems[4][1].message("en")
    assert error.params["count"] == 6


def test_lines_the_certificate_already_holds_are_reported(db, users):
    cert = _certificate(db, users["technical_manager"], [NH3N])
    error = _csv_refused(db, users, cert, b"parameter,method_code,matrix\nCOD,HJ 828-2017,water\n"
                                          b"NH3-N,HJ 535-2009,water\n")
    assert [(n, e.code) for n, e in error.problems] == [(3, "cma_item_duplicate")]


def test_at_most_5000_lines(db, users):
    lines = [f"P{i},HJ {i % 900 + 100}-2009,water" for i in range(5001)]
    cert = _certificate(db, users["technical_manager"], [])
    error = _csv_refused(db, users, cert, ("parameter,method_code,matrix\n" + "\n".join(lines)).encode(),
                         "cma_csv_too_long")
    assert "5001" in error.message("en")
    assert len(scopes.parse_items_csv(("parameter,method_code,matrix\n" + "\n".join(lines[:5000])).encode())) == 5000


def test_a_formula_cell_is_refused_not_evaluated(db, users):
    cert = _certificate(db, users["technical_manager"], [])
    for cell in ("=1+1", "+SUM(A1:A2)", "-2+3", "@SUM(A1)", " =HYPERLINK(\"http://evil\")"):
        data = f'parameter,method_code,matrix\n"{cell}",HJ 535-2009,water\n'.encode()
        error = _csv_refused(db, users, cert, data)
        assert [(n, e.code) for n, e in error.problems] == [(2, "cma_formula_cell")], cell


# ---------------------------------------------------------------- correcting a certificate


def test_a_correction_replaces_the_scope_in_one_act(db, users):
    tm = users["technical_manager"]
    old = _certificate(db, tm, [NH3N, ("COD", "HJ 828-2017", "soil")])
    with db.reading() as session:
        exported = scopes.items_csv(session, session.get(AccreditationCertificate, old.id))
    assert exported.splitlines() == ["parameter,method_code,matrix", "COD,HJ 828-2017,soil",
                                     "NH3-N,HJ 535-2009,water"]
    corrected = exported.replace("COD,HJ 828-2017,soil", "COD,HJ 828-2017,water").encode()
    # a bad list records nothing: the old record still counts
    _refused(db, "cma_csv_refused", lambda s: scopes.replace_certificate(
        s, tm, s.get(AccreditationCertificate, old.id), "局", "2024-01-01", "2029-12-31",
        corrected + b"TP,GB 11893,water\n"))
    with db.transaction() as session:
        new = scopes.replace_certificate(session, tm, session.get(AccreditationCertificate, old.id), "局",
                                         "2024-01-01", "2029-12-31", corrected, "更正：COD 为水质")
        assert new.certificate_no == old.certificate_no
    with db.reading() as session:
        assert scopes.cma_coverage(session, [("COD", "HJ 828-2017", "soil"), ("COD", "HJ 828-2017", "water"),
                                             NH3N], TODAY) == {("COD", "HJ 828-2017", "soil"): False,
                                                               ("COD", "HJ 828-2017", "water"): True, NH3N: True}
        states = {row.certificate.id: row.state for row in scopes.list_certificates(session).items}
    assert states == {old.id: "replaced", new.id: "in_force"}


# ---------------------------------------------------------------- signatory scopes


def _propose(db, actor, person, **kwargs) -> SignatoryScope:
    values = {"valid_from": TODAY.isoformat(), "basis": "CMA 2025 现场评审", **kwargs}
    with db.transaction() as session:
        row = scopes.propose_signatory_scope(session, actor, person, **values)
        session.flush()
        session.expunge(row)
        return row


def _approve(db, actor, scope) -> SignatoryScope:
    with db.transaction() as session:
        row = scopes.approve_signatory_scope(session, actor, session.get(SignatoryScope, scope.id))
        session.expunge(row)
        return row


def _end(db, actor, scope, reason="调离", end_on=None) -> SignatoryScope:
    with db.transaction() as session:
        row = scopes.end_signatory_scope(session, actor, session.get(SignatoryScope, scope.id), reason,
                                         (end_on or TODAY).isoformat())
        session.expunge(row)
        return row


def _in_scope(db, user, method_id, on: date | None = None) -> bool:
    try:
        with db.reading() as session:
            scopes.assert_signatory_in_scope(session, user, [("NH3-N", method_id, "water")], on or TODAY)
    except DomainError as error:
        assert error.code == "signatory_out_of_scope"
        return False
    return True


def test_a_scope_counts_once_proposed_and_approved(db, users, nh3n_method):
    tm, qm, signatory = users["technical_manager"], users["quality_manager"], users["signatory"]
    with db.reading() as session:
        method = session.get(Method, nh3n_method.method_id)
        session.expunge(method)
    scope = _propose(db, tm, signatory, method=method, parameter="NH3-N", matrix="water")
    event = _last_event(db)
    assert (event.action, event.entity_type, event.entity_id) == (
        "reports.signatory_scope_proposed", "signatory_scope", str(scope.id))
    assert not _in_scope(db, signatory, method.id)
    _approve(db, qm, scope)
    assert _last_event(db).action == "reports.signatory_scope_approved"
    assert _in_scope(db, signatory, method.id)
    with db.reading() as session:
        assert scopes.scope_status(session.get(SignatoryScope, scope.id), TODAY, utcnow()) == "in_force"


def test_proposing_needs_the_technical_manager_and_a_signatory(db, users, nh3n_method):
    tm = users["technical_manager"]
    for role, code in (("quality_manager", "permission_denied"), ("signatory", "permission_denied"),
                       ("inspector", "inspector_read_only")):
        _refused(db, code, lambda s, role=role: scopes.propose_signatory_scope(
            s, users[role], users["signatory"], valid_from=TODAY.isoformat(), basis="x"))
    _refused(db, "signatory_role_missing", lambda s: scopes.propose_signatory_scope(
        s, tm, users["reviewer"], valid_from=TODAY.isoformat(), basis="CMA"))


def test_the_role_is_checked_at_the_scope_start_when_that_is_later(db, users):
    from app.people import service
    from app.people.models import RoleGrant

    future = make_user(db, "future-signatory", "analyst")
    with db.transaction() as session:
        grant = service.grant_role_as_system(session, session.get(type(future), future.id), "signatory", "test")
        grant.valid_from = lab_calendar(session).start_of(TODAY + timedelta(days=30))
        session.flush()
        assert session.get(RoleGrant, grant.id).valid_from > utcnow()
    _refused(db, "signatory_role_missing", lambda s: scopes.propose_signatory_scope(
        s, users["technical_manager"], future, valid_from=TODAY.isoformat(), basis="CMA"))
    _propose(db, users["technical_manager"], future, valid_from=(TODAY + timedelta(days=30)).isoformat())


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"valid_to": (TODAY - timedelta(days=1)).isoformat()}, "signatory_scope_dates_invalid"),
    ({"basis": " "}, "field_required"),
    ({"valid_from": "2026-02-30"}, "invalid_act_time"),
    ({"matrix": "sea"}, "cma_matrix_invalid"),
    ({"parameter": "=1+1"}, "cma_formula_cell"),
])
def test_a_bad_proposal_is_refused(db, users, kwargs, code):
    values = {"valid_from": TODAY.isoformat(), "basis": "CMA", **kwargs}
    _refused(db, code, lambda s: scopes.propose_signatory_scope(s, users["technical_manager"], users["signatory"],
                                                                **values))


def test_a_proposal_names_what_the_method_measures(db, users, nh3n_method):
    tm = users["technical_manager"]
    with db.reading() as session:
        method = session.get(Method, nh3n_method.method_id)
        session.expunge(method)
    _refused(db, "signatory_scope_matrix_mismatch", lambda s: scopes.propose_signatory_scope(
        s, tm, users["signatory"], method=method, matrix="soil", valid_from=TODAY.isoformat(), basis="CMA"))
    _refused(db, "signatory_scope_parameter_unknown", lambda s: scopes.propose_signatory_scope(
        s, tm, users["signatory"], method=method, parameter="COD", valid_from=TODAY.isoformat(), basis="CMA"))


def test_the_same_scope_twice_for_an_overlapping_period_is_refused(db, users):
    tm, signatory = users["technical_manager"], users["signatory"]
    first = _propose(db, tm, signatory, matrix="air", valid_to=(TODAY + timedelta(days=100)).isoformat())
    _refused(db, "signatory_scope_duplicate", lambda s: scopes.propose_signatory_scope(
        s, tm, signatory, matrix="air", valid_from=(TODAY + timedelta(days=50)).isoformat(), basis="CMA"))
    _propose(db, tm, signatory, matrix="air", valid_from=(TODAY + timedelta(days=101)).isoformat())
    _propose(db, tm, signatory, matrix="soil")
    _end(db, tm, first)
    _propose(db, tm, signatory, matrix="air", valid_to=(TODAY + timedelta(days=100)).isoformat())


def test_approval_by_a_different_person_than_the_proposer_and_the_signatory(db, users):
    both = make_user(db, "tm-qm", "technical_manager", "quality_manager")
    signing_qm = make_user(db, "qm-signatory", "quality_manager", "signatory")
    own = _propose(db, both, users["signatory"], matrix="air")
    _refused(db, "signatory_scope_self_approval", lambda s: scopes.approve_signatory_scope(
        s, both, s.get(SignatoryScope, own.id)))
    for_self = _propose(db, users["technical_manager"], signing_qm, matrix="air")
    _refused(db, "signatory_scope_own", lambda s: scopes.approve_signatory_scope(
        s, signing_qm, s.get(SignatoryScope, for_self.id)))
    for role, code in (("technical_manager", "permission_denied"), ("inspector", "inspector_read_only")):
        _refused(db, code, lambda s, role=role: scopes.approve_signatory_scope(
            s, users[role], s.get(SignatoryScope, own.id)))
    _approve(db, users["quality_manager"], own)
    _refused(db, "signatory_scope_already_approved", lambda s: scopes.approve_signatory_scope(
        s, users["quality_manager_2"], s.get(SignatoryScope, own.id)))


def test_an_ended_or_expired_proposal_cannot_be_approved(db, users):
    tm, qm = users["technical_manager"], users["quality_manager"]
    ended = _propose(db, tm, users["signatory"], matrix="air")
    _end(db, tm, ended, "提议有误")
    _refused(db, "signatory_scope_ended", lambda s: scopes.approve_signatory_scope(
        s, qm, s.get(SignatoryScope, ended.id)))
    old = _propose(db, tm, users["signatory"], matrix="soil", valid_from="2024-01-01", valid_to="2024-12-31")
    _refused(db, "signatory_scope_expired", lambda s: scopes.approve_signatory_scope(
        s, qm, s.get(SignatoryScope, old.id)))


def test_either_manager_ends_a_scope_from_a_day_on(db, users, nh3n_method):
    tm, qm, signatory = users["technical_manager"], users["quality_manager"], users["signatory"]
    by_method = _propose(db, tm, signatory, matrix="water")
    _approve(db, qm, by_method)
    assert _in_scope(db, signatory, nh3n_method.method_id, TODAY + timedelta(days=3))
    _end(db, qm, by_method, "授权到期前调岗", TODAY + timedelta(days=3))
    event = _last_event(db)
    assert (event.action, event.entity_type) == ("reports.signatory_scope_ended", "signatory_scope")
    assert '"reason":"授权到期前调岗"' in event.after
    assert _in_scope(db, signatory, nh3n_method.method_id, TODAY + timedelta(days=2))
    assert not _in_scope(db, signatory, nh3n_method.method_id, TODAY + timedelta(days=3))
    _refused(db, "signatory_scope_ended", lambda s: scopes.end_signatory_scope(
        s, tm, s.get(SignatoryScope, by_method.id), "again", TODAY.isoformat()))
    other = _propose(db, tm, signatory, matrix="air")
    _approve(db, qm, other)
    _end(db, tm, other)
    with db.reading() as session:
        assert scopes.scope_status(session.get(SignatoryScope, other.id), TODAY, utcnow()) == "ended"
        assert session.get(SignatoryScope, other.id) is not None  # kept, never deleted


def test_ending_refusals(db, users):
    tm = users["technical_manager"]
    scope = _propose(db, tm, users["signatory"], matrix="air")
    _refused(db, "signatory_scope_end_in_past", lambda s: scopes.end_signatory_scope(
        s, tm, s.get(SignatoryScope, scope.id), "调离", (TODAY - timedelta(days=1)).isoformat()))
    _refused(db, "field_required", lambda s: scopes.end_signatory_scope(
        s, tm, s.get(SignatoryScope, scope.id), " ", TODAY.isoformat()))
    for role, code in (("signatory", "permission_denied"), ("reviewer", "permission_denied"),
                       ("inspector", "inspector_read_only")):
        _refused(db, code, lambda s, role=role: scopes.end_signatory_scope(
            s, users[role], s.get(SignatoryScope, scope.id), "调离", TODAY.isoformat()))


def test_the_register_filters_by_status_and_counts_what_awaits_approval(db, users):
    tm, qm = users["technical_manager"], users["quality_manager"]
    proposed = _propose(db, tm, users["signatory"], matrix="air")
    in_force = _propose(db, tm, users["signatory"], matrix="soil")
    _approve(db, qm, in_force)
    later = _propose(db, tm, users["signatory"], matrix="water", valid_from=(TODAY + timedelta(days=9)).isoformat())
    _approve(db, qm, later)
    with db.reading() as session:
        def ids(status):
            return [r.scope.id for r in scopes.list_signatory_scopes(session, status=status).items]
        assert ids("proposed") == [proposed.id]
        assert ids("in_force") == [in_force.id]
        assert ids("not_yet_valid") == [later.id]
        assert ids("ended") == [] and ids("expired") == []
        assert [r.scope.id for r in scopes.list_signatory_scopes(session, matrix="air").items] == [proposed.id]
        assert scopes.count_awaiting_approval(session, qm) == 1
        assert scopes.count_awaiting_approval(session, tm) == 0  # their own proposal


# ---------------------------------------------------------------- concurrency (PostgreSQL)


def test_two_concurrent_imports_of_one_line_only_one_saves_it(pg_db, users):
    tm = users["technical_manager"]
    cert = _certificate(pg_db, tm, [])
    data = b"parameter,method_code,matrix\nNH3-N,HJ 535-2009,water\n"

    def load(session):
        return len(scopes.import_items_csv(session, tm, session.get(AccreditationCertificate, cert.id), data))

    results = race(pg_db, load, load)
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(refused) == 1 and refused[0].code == "cma_csv_refused", results
    assert refused[0].problems[0][1].code == "cma_item_duplicate"
    assert _counts(pg_db)[1] == 1


def test_two_concurrent_corrections_only_one_replaces_the_record(pg_db, users):
    tm = users["technical_manager"]
    cert = _certificate(pg_db, tm, [NH3N])
    data = b"parameter,method_code,matrix\nCOD,HJ 828-2017,water\n"

    def correct(session):
        return scopes.replace_certificate(session, tm, session.get(AccreditationCertificate, cert.id), "局",
                                          "2024-01-01", "2029-12-31", data).id

    results = race(pg_db, correct, correct)
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(refused) == 1 and refused[0].code == "cma_certificate_recorded", results
    assert _counts(pg_db)[0] == 2


def test_two_concurrent_approvals_only_one_counts(pg_db, users):
    scope = _propose(pg_db, users["technical_manager"], users["signatory"], matrix="air")

    def approve(qm):
        return lambda session: scopes.approve_signatory_scope(session, qm, session.get(SignatoryScope, scope.id)).id

    results = race(pg_db, approve(users["quality_manager"]), approve(users["quality_manager_2"]))
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(refused) == 1 and refused[0].code == "signatory_scope_already_approved", results
    with pg_db.reading() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "reports.signatory_scope_approved")) == 1
