"""Automatic-station CSV import (issue 10): all lines or none, every bad line named in one
refusal, the same file twice refused, the raw file kept by SHA-256, one audit event; the ugly
files (GBK, BOM, binary, formulas, huge, unknown site, repeated readings)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.errors import PermissionDenied
from app.core.files import StoredFile, file_store
from app.oversight import station_errors as errors
from app.oversight.models import StationImport, StationReading
from app.oversight.stations import ReadingFilter, import_station_csv, list_imports, list_readings

GOOD = ("site_code,parameter,measured_at,value,unit\n"
        "WS01,NH3-N,2026-11-30 08:00,0.512,mg/L\n"
        "WS01,NH3-N,2026-11-30T09:00:00+08:00,0.498,mg/L\n"
        "ws02,COD,2026-11-30 08:00,15.2,mg/L\n")


def _import(db, user, content: bytes, filename: str = "stations.csv"):
    with db.transaction() as session:
        return import_station_csv(session, user, filename, content)


def _counts(db) -> tuple[int, int, int]:
    with db.reading() as session:
        return (session.scalar(select(func.count()).select_from(StationImport)),
                session.scalar(select(func.count()).select_from(StationReading)),
                session.scalar(select(func.count()).select_from(StoredFile)))


@pytest.fixture
def sites(lab):
    return lab.site("WS01"), lab.site("WS02")


def test_a_good_file_imports_every_line_keeps_the_raw_file_and_one_audit_event(db, users, sites, settings):
    tm = users["technical_manager"]
    done = _import(db, tm, GOOD.encode())
    with db.reading() as session:
        readings = list(session.scalars(select(StationReading).order_by(StationReading.id)))
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "station_import")))
        stored = session.get(StoredFile, session.get(StationImport, done.id).file_id)
        assert done.rows == 3 and done.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
        assert [r.value for r in readings] == [Decimal("0.512"), Decimal("0.498"), Decimal("15.2")]
        # "2026-11-30 08:00" is lab time (Asia/Shanghai): 00:00 UTC; the ISO offset is honoured
        assert readings[0].measured_at == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
        assert readings[1].measured_at == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
        assert readings[2].site_id == sites[1].id  # site codes compare without case
        assert len(events) == 1 and events[0].action == "station.imported"
        assert '"rows":3' in events[0].after
        assert file_store(settings.data_path).read(stored.sha256) == GOOD.encode()


def test_chinese_headers_in_gbk_and_utf8_with_bom(db, users, sites):
    text = "站点,项目,时间,数值,单位\nWS01,氨氮,2026-11-30 10:00,0.5,mg/L\n"
    assert _import(db, users["technical_manager"], text.encode("gbk")).rows == 1
    text2 = text.replace("10:00", "11:00")
    assert _import(db, users["technical_manager"], b"\xef\xbb\xbf" + text2.encode()).rows == 1
    with db.reading() as session:
        assert set(session.scalars(select(StationReading.parameter))) == {"氨氮"}


def test_every_bad_line_is_named_in_one_refusal_and_nothing_is_imported(db, users, sites):
    content = ("site_code,parameter,measured_at,value,unit\n"
               "WS01,NH3-N,2026-11-30 08:00,0.512,mg/L\n"
               "WS99,NH3-N,2026-11-30 08:00,0.5,mg/L\n"      # line 3: unknown site
               "WS01,NH3-N,2026-11-30 09:00,=1+1,mg/L\n"      # line 4: a formula is text
               "WS01,NH3-N,30/11/2026 9am,0.5,mg/L\n"         # line 5: bad time
               "WS01,,2026-11-30 10:00,0.5,mg/L\n"            # line 6: empty parameter
               "WS01,NH3-N,2026-11-30 08:00,0.6,mg/L\n"       # line 7: repeats line 2
               "WS01,NH3-N,2026-11-30 11:00,1,5,mg/L\n")      # line 8: comma decimal → extra cell
    before = _counts(db)
    with pytest.raises(errors.StationRowsRefused) as refused:
        _import(db, users["technical_manager"], content.encode())
    lines = sorted({p.row_no for p in refused.value.problems})
    assert lines == [3, 4, 5, 6, 7, 8]
    codes = {(p.row_no, p.code) for p in refused.value.problems}
    assert {(3, "unknown_site"), (4, "not_a_number"), (5, "bad_time"), (6, "empty"),
            (7, "repeated_in_file")} <= codes
    assert "3, 4, 5, 6, 7, 8" in refused.value.message("en")
    assert _counts(db) == before


def test_the_same_file_twice_is_refused(db, users, sites):
    _import(db, users["technical_manager"], GOOD.encode())
    before = _counts(db)
    with pytest.raises(errors.StationFileAlreadyImported):
        _import(db, users["technical_manager"], GOOD.encode(), "again.csv")
    assert _counts(db) == before


def test_a_reading_already_imported_from_another_file_is_refused(db, users, sites):
    _import(db, users["technical_manager"], GOOD.encode())
    other = GOOD.replace("15.2", "15.3")  # different bytes, same site, parameter and times
    with pytest.raises(errors.StationRowsRefused) as refused:
        _import(db, users["technical_manager"], other.encode())
    assert {p.code for p in refused.value.problems} == {"already_recorded"}


@pytest.mark.parametrize("content, error", [
    (b"", errors.StationFileEmpty),
    (b"site_code,parameter,measured_at,value,unit\n", errors.StationFileEmpty),
    (b"site,when,value\nWS01,2026-11-30 08:00,1\n", errors.StationColumnsMissing),
    (b"\x00\x01\x02\xff\xfe\x00binary", errors.StationFileEncoding),
    (b"\xc3\x28\x80\x81\xfe\xff garbage \x00", errors.StationFileEncoding),
])
def test_ugly_files_are_refused_with_a_clear_error(db, users, sites, content, error):
    before = _counts(db)
    with pytest.raises(error) as refused:
        _import(db, users["technical_manager"], content)
    assert refused.value.http_status in (409, 413, 422)
    assert _counts(db) == before


def test_a_huge_file_is_refused_413_before_it_is_read(db, users, sites):
    with db.transaction() as session, pytest.raises(errors.StationFileTooLarge) as refused:
        import_station_csv(session, users["technical_manager"], "big.csv", b"x" * 2048, max_bytes=1024)
    assert refused.value.http_status == 413
    assert _counts(db)[0] == 0


def test_a_future_time_is_refused(db, users, sites):
    content = "site_code,parameter,measured_at,value,unit\nWS01,NH3-N,2999-01-01 08:00,0.5,mg/L\n"
    with pytest.raises(errors.StationRowsRefused) as refused:
        _import(db, users["technical_manager"], content.encode())
    assert refused.value.problems[0].code == "future_time"


def test_only_who_may_import_station_data(db, users, sites):
    for role in ("analyst", "inspector"):
        with pytest.raises(PermissionDenied):
            _import(db, users[role], GOOD.encode())
    assert _counts(db)[0] == 0


def test_lists_filter_and_paginate(db, users, sites):
    _import(db, users["technical_manager"], GOOD.encode())
    with db.reading() as session:
        page = list_readings(session, ReadingFilter(site_code="ws01"), 1, 1)
        assert page.total == 2 and len(page.items) == 1 and page.items[0].site_code == "WS01"
        assert page.items[0].reading.value == Decimal("0.498")  # the latest first
        assert list_readings(session, ReadingFilter(parameter="COD"), 1, 10).total == 1
        imports = list_imports(session, 1, 10)
        assert imports.total == 1 and imports.items[0].filename == "stations.csv"
