"""Factories for the instruments tests: an instrument in one line, a certificate PDF, a
calibration entered and accepted, a check, a fake usage source for impact assessments."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.core import audit
from app.core.audit import AuditEvent
from app.core.db import Database
from app.core.files import FileStore, file_store
from app.instruments import records, service
from app.instruments.models import (
    CalibrationAcceptance,
    CalibrationRecord,
    Instrument,
    IntermediateCheck,
    MaintenanceRecord,
    ServiceChange,
)
from app.instruments.status import StatusReading, status_at
from app.instruments.usage import InstrumentUsage, register_usage_source, unregister_usage_source
from app.people.models import User
from tests.conftest import PASSWORD

# The smallest file that is a PDF by its bytes (the store sniffs "%PDF-").
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def pdf_upload(content: bytes = PDF, name: str = "certificate.pdf") -> service.Upload:
    return service.Upload(io.BytesIO(content), name)


@pytest.fixture
def store(settings) -> FileStore:
    return file_store(settings.ensure_data_dir())


@pytest.fixture
def technical(users) -> User:
    return users["technical_manager"]


def local_today(db: Database) -> date:
    return db.calendar.today()


def make_instrument(db: Database, actor: User, asset_no: str = "JC-UV-001", *,
                    uses: tuple[tuple[str, str], ...] = (("NH3-N", "HJ 535-2009"), ("TP", "GB 11893-89")),
                    commissioned_on: date | None = None, responsible: User | None = None,
                    kind: str = "laboratory", name_zh: str = "紫外可见分光光度计") -> Instrument:
    with db.transaction() as session:
        return service.register_instrument(
            session, actor, asset_no=asset_no, name_zh=name_zh, name_en="UV-Vis spectrophotometer",
            commissioned_on=commissioned_on or local_today(db) - timedelta(days=800),
            responsible_id=(responsible or actor).id, uses=list(uses), kind=kind, model="UV-2600",
            manufacturer="岛津 Shimadzu", serial_no="A116-5501", location="理化室 201",
        )


def calibrate(db: Database, actor: User, store: FileStore, instrument: Instrument, *,
              performed_on: date, valid_until: date | None, result: str = "pass",
              certificate_no: str | None = None, accept: bool | None = True, kind: str = "verification",
              restriction: str = "", allowed_parameters: tuple[str, ...] = ()) -> CalibrationRecord:
    """Enter a certificate; accept it (as `actor`, who must be the responsible person) unless
    `accept` is None or the result is a fail."""
    facts = records.CalibrationFacts(
        kind=kind, provider="江城市计量测试研究院", provider_accreditation_no="CNAS L1234",
        certificate_no=certificate_no or f"JD-{performed_on.isoformat()}-{result}",
        performed_on=performed_on, valid_until=valid_until, result=result, restriction=restriction,
        allowed_parameters=allowed_parameters,
    )
    with db.transaction() as session:
        instrument = session.get(Instrument, instrument.id)
        record = records.record_calibration(session, actor, instrument, facts, store=store,
                                            certificate=pdf_upload())
    if accept is not None and result != "fail":
        with db.transaction() as session:
            records.decide_acceptance(session, actor, session.get(CalibrationRecord, record.id), PASSWORD,
                                      accept=accept, note="" if accept else "不满足要求")
    return record


def check(db: Database, actor: User, instrument: Instrument, *, performed_at: datetime, result: str = "pass",
          measured_value: str = "0.502") -> IntermediateCheck:
    facts = records.CheckFacts(performed_at=performed_at, check_standard="GBW(E)080218 氨氮标准溶液",
                               criterion="0.500 ± 0.010 mg/L", measured_value=measured_value, unit="mg/L",
                               result=result, method="HJ 535-2009")
    with db.transaction() as session:
        return records.record_check(session, actor, session.get(Instrument, instrument.id), facts, PASSWORD)


def start_of(db: Database, day: date) -> datetime:
    return db.calendar.start_of(day)


@pytest.fixture
def calibrated(db: Database, technical: User, store: FileStore) -> Instrument:
    """An instrument in service now: verified 100 days ago, valid for another 265 days."""
    instrument = make_instrument(db, technical)
    today = local_today(db)
    calibrate(db, technical, store, instrument, performed_on=today - timedelta(days=100),
              valid_until=today + timedelta(days=265))
    return instrument


class FakeUsageSource:
    """Stands in for field tests and analyses (later issues) in impact assessments."""

    name = "fake_analysis"

    def __init__(self) -> None:
        # not named `usages`: an instance attribute of that name would hide the protocol method
        self.recorded: list[InstrumentUsage] = []
        self.calls = 0

    def add(self, instrument: Instrument, measured_at: datetime, parameter: str = "NH3-N",
            sample_no: str = "JC01-261101-001") -> InstrumentUsage:
        usage = InstrumentUsage(self.name, str(len(self.recorded) + 1), measured_at, parameter, sample_no,
                                f"instrument {instrument.id}", f"/analysis/{len(self.recorded) + 1}")
        self.recorded.append(usage)
        return usage

    def usages_for(self, instrument_id: int) -> list[InstrumentUsage]:
        return [u for u in self.recorded if u.description == f"instrument {instrument_id}"]

    # the protocol
    def usages(self, session, instrument_id, since, until):  # noqa: ANN001
        self.calls += 1
        return [u for u in self.usages_for(instrument_id)
                if (since is None or u.measured_at >= since) and u.measured_at <= until]


@pytest.fixture
def usage_source() -> Iterator[FakeUsageSource]:
    source = FakeUsageSource()
    register_usage_source(source)
    yield source
    unregister_usage_source(source.name)




# ---------------------------------------------------------------- more factories (status, gate, records, impact)


def maintain(db: Database, actor: User, instrument: Instrument, *, performed_at: datetime,
             kind: str = "maintenance", description: str = "更换氘灯，清洁样品室") -> MaintenanceRecord:
    facts = records.MaintenanceFacts(kind=kind, performed_at=performed_at, description=description,
                                     performed_by="岛津售后 王工")
    with db.transaction() as session:
        return records.record_maintenance(session, actor, session.get(Instrument, instrument.id), facts)


def take_out_of_service(db: Database, actor: User, instrument: Instrument,
                        reason: str = "光源能量不稳定") -> ServiceChange:
    with db.transaction() as session:
        return service.take_out_of_service(session, actor, session.get(Instrument, instrument.id), reason)


def retire(db: Database, actor: User, instrument: Instrument, reason: str = "超过使用年限，报废") -> ServiceChange:
    with db.transaction() as session:
        return service.retire_instrument(session, actor, session.get(Instrument, instrument.id), reason)


def accept(db: Database, actor: User, record: CalibrationRecord, *, accepted: bool = True,
           password: str = PASSWORD) -> CalibrationAcceptance:
    with db.transaction() as session:
        return records.decide_acceptance(session, actor, session.get(CalibrationRecord, record.id), password,
                                         accept=accepted, note="" if accepted else "不满足要求")


def reading_at(db: Database, instrument: Instrument, at: datetime) -> StatusReading:
    with db.reading() as session:
        return status_at(session, session.get(Instrument, instrument.id), at)


def reload(db: Database, model: type, row_id: int) -> Any:
    """A fresh copy of a row, detached with its columns loaded."""
    with db.reading() as session:
        row = session.get(model, row_id)
        if row is not None:
            session.expunge(row)
        return row


def local_moment(db: Database, day: date, hour: int = 0, minute: int = 0, second: int = 0,
                 microsecond: int = 0) -> datetime:
    """An aware instant given as the lab's wall-clock time."""
    return datetime.combine(day, time(hour, minute, second, microsecond), tzinfo=db.calendar.tz)


def row_counts(db: Database, *tables: str) -> dict[str, int]:
    with db.reading() as session:
        return {t: session.scalar(select(func.count()).select_from(text(t))) for t in tables}


def files_on_disk(store: FileStore) -> list[Path]:
    """Every file under the store (kept content and leftovers in incoming/)."""
    return sorted(p for p in store.root.rglob("*") if p.is_file()) if store.root.exists() else []


def audit_actions(db: Database, after_seq: int = 0) -> list[str]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.seq > after_seq)
                                    .order_by(AuditEvent.seq)))


def audit_head_seq(db: Database) -> int:
    with db.reading() as session:
        return audit.head(session)[0]


def chain_ok(db: Database) -> bool:
    with db.reading() as session:
        result = audit.verify_chain(session, None)
    assert result.ok, result.reason
    return result.ok
