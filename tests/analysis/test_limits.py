"""Limit sets as versioned data: the built-in standards load once (twice is still one version),
rows are checked before anything is written and a bad row is named by row and column, a code
loaded again is the next version (never backdated), a permit's limits come from a CSV file, sites
are assigned a standard and a target class, and only the technical manager changes any of it."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import limit_errors as errors
from app.analysis import limits
from app.analysis.models import LimitSet, SiteLimitSet
from app.core.audit import AuditEvent
from app.core.errors import DomainError, InspectorReadOnly, PermissionDenied
from app.sites.models import SiteKind
from tests.analysis.limit_fixtures import assign, counts, load_builtins, make_site

ROWS = [{"parameter": "COD", "class": "I", "high": "15", "unit": "mg/L"},
        {"parameter": "COD", "class": "II", "high": "20", "unit": "mg/L"},
        {"parameter": "DO", "class": "I", "low": "7.5", "unit": "mg/L"},
        {"parameter": "DO", "class": "II", "low": "6", "unit": "mg/L"}]


def load(db, actor, code="DB42/T 1-2026", rows=ROWS, valid_from=date(2026, 1, 1), **kw):
    facts = {"kind": "surface_water", "name_zh": "湖北省地表水地方标准", "name_en": "Hubei surface water",
             "classes": ["I", "II"], "worse_than_all": "劣II", "source": "DB42 Table 1", **kw}
    with db.transaction() as session:
        loaded = limits.load_limit_set(session, actor, code.replace("/", "-"), facts["kind"], facts["name_zh"],
                                       facts["name_en"], facts["classes"], facts["worse_than_all"], valid_from,
                                       facts["source"], rows)
        session.flush()
        session.expunge(loaded)
        return loaded


def refused(db, error_type, act, *args, **kw):
    before = counts(db)
    with pytest.raises(error_type) as caught, db.transaction() as session:
        act(session, *args, **kw)
    assert counts(db) == before
    return caught.value


# ---------------------------------------------------------------- built-ins


def test_the_builtin_standards_load_once(db, technical):
    assert load_builtins(db, technical) == [("GB 3838-2002", 1), ("GB 3095-2012", 1)]
    assert load_builtins(db, technical) == []  # twice is still one version
    with db.reading() as session:
        sets = {s.code: s for s in session.scalars(select(LimitSet))}
        gb3838 = limits.table_of(session, sets["GB 3838-2002"]).rows
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "limit_set.loaded")).all()
        assert limits.builtin_changes(session) == []
        assert len(sets) == 2 and len(events) == 2
        assert sets["GB 3838-2002"].valid_from == date(2002, 6, 1)
        assert sets["GB 3095-2012"].valid_from == date(2016, 1, 1)
        assert sets["GB 3838-2002"].worse_than_all == "劣V" and sets["GB 3838-2002"].created_by_id == technical.id
    parameters = {r.parameter for r in gb3838}
    assert len(parameters) == 23 and "WT" not in parameters  # Table 1 without the water temperature
    assert {(v.class_label, v.low, v.high) for v in gb3838 if v.parameter == "DO"} >= {("I", D("7.5"), None)}
    assert {v.water_body for v in gb3838 if v.parameter == "TP"} == {"river", "lake"}
    assert {v.water_body for v in gb3838 if v.parameter == "TN"} == {"lake"}


def test_the_builtin_codes_match_the_preservation_table(db):
    """The parameters are written as the lab writes them (the preservation table's codes)."""
    from app.samples.models import PreservationRule

    with db.reading() as session:
        known = set(session.scalars(select(PreservationRule.parameter)))
    written = {r.parameter for b in limits.BUILTINS for r in limits.builtin_rows(b)}
    # no preservation row (yet) for these: fluoride, selenium, arsenic, sulfide; CO and O3 are measured online
    assert written - known == {"F", "Se", "As", "S2-", "CO", "O3"}


def test_the_system_loads_the_builtins_under_the_operators_account(db, users):
    assert load_builtins(db, None) == [("GB 3838-2002", 1), ("GB 3095-2012", 1)]
    with db.reading() as session:
        first = min(u.id for u in users.values())
        assert {s.created_by_id for s in session.scalars(select(LimitSet))} == {first}
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "limit_set.loaded")).first()
        assert event.actor_id is None


def test_a_changed_builtin_file_becomes_version_2(db, technical, monkeypatch):
    load_builtins(db, technical)
    original = limits.builtin_rows
    changed = [r for r in original(limits.BUILTINS[1]) if r.parameter != "CO"]
    monkeypatch.setattr(limits, "builtin_rows", lambda b: changed if b is limits.BUILTINS[1] else original(b))
    with db.reading() as session:
        assert limits.builtin_changes(session) == ["GB 3095-2012"]
    assert load_builtins(db, technical) == [("GB 3095-2012", 2)]
    assert load_builtins(db, technical) == []
    today = db.calendar.today()
    with db.reading() as session:
        assert limits.limit_set_in_force(session, "GB 3095-2012", today).version == 2
        assert limits.limit_set_in_force(session, "GB 3095-2012", today - timedelta(days=1)).version == 1
        assert len(limits.table_of(session, limits.limit_set_version(session, "GB 3095-2012", 1)).rows) == 28
        assert len(limits.table_of(session, limits.limit_set_version(session, "GB 3095-2012", 2)).rows) == 24
        with pytest.raises(errors.LimitSetNotInForce):
            limits.limit_set_in_force(session, "GB 3095-2012", date(2015, 12, 31))
        with pytest.raises(errors.LimitSetNotFound):
            limits.limit_set_in_force(session, "GB 9999-2099", today)


# ---------------------------------------------------------------- loading a set


def test_a_set_loaded_again_is_the_next_version_never_backdated(db, technical):
    first = load(db, technical)
    second = load(db, technical, rows=ROWS[:2], valid_from=date(2026, 7, 1))
    assert (first.version, second.version) == (1, 2)
    with db.reading() as session:
        v1 = limits.limit_set_version(session, "DB42-T 1-2026", 1)
        assert v1.valid_to == date(2026, 7, 1)
        assert limits.limit_set_in_force(session, "DB42-T 1-2026", date(2026, 6, 30)).version == 1
        assert limits.limit_set_in_force(session, "DB42-T 1-2026", date(2026, 7, 1)).version == 2
        events = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "limit_set"))]
    assert events == ["limit_set.loaded", "limit_set.superseded", "limit_set.loaded"]
    error = refused(db, errors.LimitSetBackdated, limits.load_limit_set, technical, "DB42-T 1-2026", "surface_water",
                    "x", "", ["I"], "", date(2026, 3, 1), "", [{"parameter": "COD", "class": "I", "high": "1",
                                                              "unit": "mg/L"}])
    assert error.code == "limit_set_backdated" and "2026-07-01" in error.message("en")


@pytest.mark.parametrize(("row", "column", "words"), [
    ({"parameter": "COD", "class": "I", "high": "1,5", "unit": "mg/L"}, "high", "comma"),
    ({"parameter": "COD", "class": "I", "high": "abc", "unit": "mg/L"}, "high", "not a number"),
    ({"parameter": "COD", "class": "I", "high": "NaN", "unit": "mg/L"}, "high", "not a number"),
    ({"parameter": "COD", "class": "I", "high": "Infinity", "unit": "mg/L"}, "high", "not a number"),
    ({"parameter": "COD", "class": "I", "high": "1e9999", "unit": "mg/L"}, "high", "not a number"),
    ({"parameter": "COD", "class": "I", "high": "1e99", "unit": "mg/L"}, "high", "range"),
    ({"parameter": "COD", "class": "I", "high": "-1", "unit": "mg/L"}, "high", "negative"),
    ({"parameter": "COD", "class": "I", "low": "9", "high": "6", "unit": "mg/L"}, "low", "above the upper"),
    ({"parameter": "COD", "class": "I", "unit": "mg/L"}, "high", "lower or an upper"),
    ({"parameter": "COD", "class": "VI", "high": "1", "unit": "mg/L"}, "class", "not a class"),
    ({"parameter": "COD", "class": "I", "high": "1", "unit": ""}, "unit", "empty"),
    ({"parameter": "", "class": "I", "high": "1", "unit": "mg/L"}, "parameter", "empty"),
    ({"parameter": "=HYPERLINK(\"x\")", "class": "I", "high": "1", "unit": "mg/L"}, "parameter", "formula"),
    ({"parameter": "TP", "class": "I", "high": "1", "unit": "mg/L", "water_body": "sea"}, "water_body", "not valid"),
    ({"parameter": "SO2", "class": "I", "high": "1", "unit": "mg/L", "averaging": "2h"}, "averaging", "not valid"),
    ({"parameter": "COD", "class": "II", "high": "20", "unit": "μg/L"}, "unit", "one unit"),
])
def test_a_bad_row_is_refused_naming_its_row_and_column(db, technical, row, column, words):
    error = refused(db, errors.LimitRowInvalid, limits.load_limit_set, technical, "DB42-X", "surface_water", "测试",
                    "", ["I", "II"], "劣II", date(2026, 1, 1), "", [ROWS[0], row])
    assert error.code == "limit_row_invalid" and error.params["row"] == 2 and error.params["column"] == column
    assert words in error.message("en") and "第 2 行" in error.message("zh")


def test_set_level_refusals_change_nothing(db, technical):
    one = [ROWS[0]]
    cases = [
        (errors.LimitSetCodeInvalid, ("", "surface_water", "名", "", ["I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetCodeInvalid, ("A/B", "surface_water", "名", "", ["I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetCodeInvalid, ("sites", "surface_water", "名", "", ["I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetKindUnknown, ("X1", "soil", "名", "", ["I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetNameRequired, ("X1", "surface_water", " ", "", ["I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetClassesInvalid, ("X1", "surface_water", "名", "", [], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetClassesInvalid, ("X1", "surface_water", "名", "", ["I", "I"], "", date(2026, 1, 1), "", one)),
        (errors.LimitSetClassesInvalid, ("X1", "surface_water", "名", "", ["I"], "I", date(2026, 1, 1), "", one)),
        (errors.LimitRowsRequired, ("X1", "surface_water", "名", "", ["I"], "", date(2026, 1, 1), "", [])),
        (errors.LimitRowDuplicate, ("X1", "surface_water", "名", "", ["I"], "", date(2026, 1, 1), "", one + one)),
    ]
    for error_type, args in cases:
        refused(db, error_type, limits.load_limit_set, technical, *args)


@pytest.mark.parametrize("role", ["analyst", "quality_manager", "inspector"])
def test_only_the_technical_manager_loads_standards(db, users, role):
    expected = InspectorReadOnly if role == "inspector" else PermissionDenied
    refused(db, expected, limits.load_limit_set, users[role], "X1", "surface_water", "名", "", ["I"], "",
            date(2026, 1, 1), "", [ROWS[0]])
    refused(db, expected, limits.load_builtin_limit_sets, users[role])
    refused(db, expected, limits.import_permit_limits, users[role], "PW-1", "排口",
            b"parameter,limit,unit\nCOD,50,mg/L\n")


# ---------------------------------------------------------------- permits


def test_a_permit_csv_is_imported_as_a_pass_fail_set(db, technical):
    data = "parameter,limit,unit\nCOD,50,mg/L\nNH3-N,5,mg/L\n\npH,6-9,无量纲\n".encode("gb18030")
    with db.transaction() as session:
        permit = limits.import_permit_limits(session, technical, "91420100MA4K-001P", "江城化工总排口", data,
                                             valid_from="2026-01-01")
        table = limits.table_of(session, permit)
    assert (permit.kind, permit.version, permit.worse_than_all, table.classes) == ("discharge", 1, "", ("limit",))
    assert {(r.parameter, r.low, r.high) for r in table.rows} == {("COD", None, D("50")), ("NH3-N", None, D("5")),
                                                                   ("pH", D("6"), D("9"))}


@pytest.mark.parametrize(("data", "error_type", "words"), [
    (b"", errors.LimitFileInvalid, "empty"),
    (b"name,value\nCOD,50\n", errors.LimitFileInvalid, "missing columns: parameter, limit, unit"),
    (b"parameter,limit,unit\nCOD,50,mg/L\nNH3-N,1,5,mg/L\n", errors.LimitRowInvalid, "Row 3, column \u201c4\u201d"),
    (b"parameter,limit,unit\nNH3-N,1,5,mg/L\n", errors.LimitRowInvalid, "comma as decimal mark"),
    (b"parameter,limit,unit\nCOD,50\n", errors.LimitRowInvalid, "Row 2, column \u201cunit\u201d"),
    (b"parameter,limit,unit\nCOD,fifty,mg/L\n", errors.LimitRowInvalid, "Row 2, column \u201chigh\u201d"),
    (b"parameter,limit,unit\n=cmd|' /C calc'!A0,50,mg/L\n", errors.LimitRowInvalid, "formula"),
    (b"parameter,limit,unit\nCOD,50,mg/L\n\nCOD,60,mg/L\n", errors.LimitRowDuplicate, "Row 4 repeats row 2"),
    (b"parameter,limit,unit\n", errors.LimitRowsRequired, "No limit rows"),
    (b"\x00\x01binary", errors.LimitFileInvalid, "not a text file"),
    (b"parameter,limit,unit\n" + b"COD,50,mg/L\n" * 100_000, errors.LimitFileInvalid, "larger than"),
])
def test_a_bad_permit_file_is_refused_with_its_row_and_column(db, technical, data, error_type, words):
    error = refused(db, error_type, limits.import_permit_limits, technical, "PW-1", "排口", data)
    assert words in error.message("en")


def test_a_permit_date_is_checked(db, technical):
    refused(db, errors.LimitDateInvalid, limits.import_permit_limits, technical, "PW-1", "排口",
            b"parameter,limit,unit\nCOD,50,mg/L\n", valid_from="2026-13-01")


# ---------------------------------------------------------------- sites


def test_a_site_is_assigned_its_standard_and_target_class(db, technical):
    load_builtins(db, technical)
    site = make_site(db, technical, "JC-W10")
    first = assign(db, technical, site, "GB 3838-2002", "III")
    again = assign(db, technical, "jc-w10", "GB 3838-2002", "II")
    assert first.id == again.id and again.target_class == "II"
    with db.reading() as session:
        assert [(a.site.code, a.row.target_class) for a in limits.site_assignments(session)] == [("JC-W10", "II")]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "limit_set.site_assigned")).all()
        assert len(events) == 2 and events[0].before_data is None and events[1].before_data["target_class"] == "III"


def test_site_assignment_refusals_change_nothing(db, technical, users):
    load_builtins(db, technical)
    water = make_site(db, technical, "JC-W10")
    air = make_site(db, technical, "JC-A01", kind=SiteKind.AMBIENT_AIR, water_body="")
    refused(db, errors.SiteNotFound, limits.assign_site, technical, "JC-W99", "GB 3838-2002", "III")
    refused(db, errors.LimitSetNotFound, limits.assign_site, technical, water.code, "GB 9999-2099", "")
    refused(db, errors.TargetClassUnknown, limits.assign_site, technical, water.code, "GB 3838-2002", "VI")
    error = refused(db, errors.LimitSetWrongKindForSite, limits.assign_site, technical, air.code, "GB 3838-2002", "")
    assert "环境空气" in error.message("zh")
    refused(db, InspectorReadOnly, limits.assign_site, users["inspector"], water.code, "GB 3838-2002", "III")
    refused(db, PermissionDenied, limits.assign_site, users["analyst"], water.code, "GB 3838-2002", "III")
    assert assign(db, technical, air, "GB 3095-2012", "2").target_class == "2"
    with db.reading() as session:
        assert session.scalars(select(SiteLimitSet)).all()[0].site_id == air.id


def test_every_refusal_has_both_languages():
    for error_type in vars(errors).values():
        if isinstance(error_type, type) and issubclass(error_type, DomainError) \
                and error_type.__module__ == errors.__name__:
            assert any("\u4e00" <= c <= "\u9fff" for c in error_type.message_zh), error_type
            assert error_type.message_en and error_type.code, error_type
            assert error_type(standard="X").code == error_type.code  # a parameter never hides the code
