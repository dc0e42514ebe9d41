"""The demo reference materials: what `lims demo` promises a visitor is really in the data,
entered through the services at times in the past, and loading it twice adds nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import verify_chain
from app.core.db import Database, metadata, utcnow
from app.core.errors import DomainError
from app.core.files import FileStore, StoredFile
from app.demo import load_demo
from app.people.models import User
from app.reference_materials import queries, service
from app.reference_materials.demo import COD_CERTIFICATE, MATERIALS, NH3N_CERTIFICATE, REAGENTS
from app.reference_materials.gate import assert_material_usable, check_material
from app.reference_materials.models import (
    CertifiedValue,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReferenceMaterial,
    SolutionComponent,
    StandardSolution,
    StockUnit,
)
from app.reference_materials.traceability import backward_trace, forward_traceability

D = Decimal
COUNTED = ("reference_material", "rm_lot", "rm_certified_value", "rm_unit", "rm_solution", "rm_solution_component",
           "rm_solution_device", "reagent_lot", "rm_use", "stored_file", "audit_event", "code_counter")


def load(db: Database, store: FileStore) -> None:
    with db.transaction() as session:
        load_demo(session, store, through="materials")  # the analysis demo adds its own materials


def row_counts(db: Database) -> dict[str, int]:
    with db.reading() as session:
        return {name: session.scalar(select(func.count()).select_from(metadata.tables[name])) for name in COUNTED}


def material(session, certificate_no: str) -> ReferenceMaterial:
    return session.scalars(select(ReferenceMaterial).where(ReferenceMaterial.certificate_no == certificate_no)).one()


def units_of(session, certificate_no: str) -> list[StockUnit]:
    return list(session.scalars(
        select(StockUnit).join(MaterialLot, MaterialLot.id == StockUnit.lot_id)
        .join(ReferenceMaterial, ReferenceMaterial.id == MaterialLot.material_id)
        .where(ReferenceMaterial.certificate_no == certificate_no).order_by(StockUnit.id)))


@pytest.fixture
def loaded(db: Database, store: FileStore) -> Database:
    load(db, store)
    return db


@pytest.fixture
def users_of_demo(loaded: Database) -> dict[str, User]:
    with loaded.reading() as session:
        users = {u.username: u for u in session.scalars(select(User))}
        session.expunge_all()
    return users


def test_every_demo_material_has_a_lot_with_a_real_certificate_pdf(loaded, store):
    db = loaded
    with db.reading() as session:
        materials = {m.certificate_no: m for m in session.scalars(select(ReferenceMaterial))}
        assert set(materials) == {m.certificate_no for m in MATERIALS}
        assert {m.grade for m in materials.values()} == {"gbw", "gbw_e", "gsb", "foreign"}
        lots = session.scalars(select(MaterialLot)).all()
        assert len(lots) == len(MATERIALS)
        for lot in lots:
            stored = session.get(StoredFile, lot.certificate_file_id)
            content = store.read(lot.certificate_sha256)
            assert stored.sha256 == lot.certificate_sha256 and stored.media_type == "application/pdf"
            assert content.startswith(b"%PDF-") and b"%%EOF" in content[-64:] and store.verify(lot.certificate_sha256)
            assert len(content) > 5_000  # a rendered page with embedded fonts, not a stub
            values = session.scalars(select(CertifiedValue).where(CertifiedValue.lot_id == lot.id)).all()
            for value in values:
                if value.certified:
                    assert value.expanded_uncertainty > 0 and value.coverage_factor == 2
        assert len({lot.certificate_sha256 for lot in lots}) == len(lots)
        # SRM 1640a: mass fractions, with a reference value kept apart from the certified ones
        srm = session.scalars(select(CertifiedValue).join(MaterialLot, MaterialLot.id == CertifiedValue.lot_id)
                              .where(MaterialLot.material_id == materials["SRM 1640a"].id)).all()
        assert {v.unit for v in srm} == {"μg/kg"}
        assert [v.analyte for v in srm if not v.certified] == ["Se"]
        custodian = session.scalars(select(User).where(User.username == "custodian")).one()
        assert {lot.created_by_id for lot in lots} == {custodian.id}


def test_the_two_step_nh3n_chain(loaded):
    db = loaded
    with db.reading() as session:
        working = session.scalars(select(StandardSolution).where(StandardSolution.generation == 2)).one()
        stock = session.get(StandardSolution, working.parent_solution_id)
        unit = session.get(StockUnit, stock.parent_unit_id)
        lot = session.get(MaterialLot, unit.lot_id)
        assert session.get(ReferenceMaterial, lot.material_id).certificate_no == NH3N_CERTIFICATE
        assert stock.generation == 1 and working.root_lot_id == stock.root_lot_id == lot.id
        assert (stock.aliquot, stock.final_volume, working.aliquot, working.final_volume) == (
            D("10"), D("100"), D("5"), D("500"))

        def component(solution):
            return session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == solution.id)).one()

        assert component(stock).concentration == D("100") and component(working).concentration == D("1.00")
        assert component(working).relative_u > component(stock).relative_u > D("0.004")  # U/k/c = 0.004
        trace = backward_trace(session, working)
        assert [s.solution.id for s in trace.steps] == [stock.id, working.id]
        assert trace.steps[0].parent_barcode == unit.barcode
        assert {d.tolerance for d in trace.steps[0].devices} == {D("0.020"), D("0.10")}
        assert {d.tolerance for d in trace.steps[1].devices} == {D("0.015"), D("0.25")}

        now = utcnow()
        assert check_material(session, working, now).usable
        assert working.expires_at < stock.expires_at < now + timedelta(days=30)
        usages = forward_traceability(session, lot.id)
        assert [u.record_id for u in usages if u.source == "solution"] == [stock.barcode, working.barcode]
        assert any(u.source == "use" and u.barcode == working.barcode for u in usages)  # the calibration curve
        analyst = session.scalars(select(User).where(User.username == "analyst")).one()
        assert stock.prepared_by_id == working.prepared_by_id == analyst.id


def test_the_metals_and_srm_solutions(loaded):
    db = loaded
    with db.reading() as session:
        first = session.scalars(select(StandardSolution).where(StandardSolution.generation == 1))
        solutions = {s.name: s for s in first}
        metals = next(s for name, s in solutions.items() if name.startswith("重金属"))
        srm = next(s for name, s in solutions.items() if name.startswith("SRM 1640a"))
        lines = {c.analyte: c for c in session.scalars(select(SolutionComponent)
                                                       .where(SolutionComponent.solution_id == metals.id))}
        assert set(lines) == {"Cu", "Pb", "Zn", "Cd", "Ni", "Cr"}
        assert lines["Cu"].concentration == D("100") and lines["Cu"].unit == "μg/L"
        assert lines["Cd"].concentration == D("10")
        srm_lines = {c.analyte: c for c in session.scalars(select(SolutionComponent)
                                                           .where(SolutionComponent.solution_id == srm.id))}
        assert srm.density == D("1.0075")
        # w × V_a × ρ / V_f = 85.1 μg/kg × 10 mL × 1.0075 g/mL / 100 mL
        assert srm_lines["Cu"].concentration == D("8.573825") and srm_lines["Cu"].unit == "μg/L"
        assert "Se" not in srm_lines  # a reference value is never diluted into a solution


def test_the_expired_cod_unit_is_refused_by_the_gate(loaded):
    db = loaded
    now = utcnow()
    with db.reading() as session:
        opened, sealed, disposed = units_of(session, COD_CERTIFICATE)
        assert (opened.state, sealed.state, disposed.state) == ("in_use", "received", "disposed")
        lot = session.get(MaterialLot, opened.lot_id)
        assert db.calendar.local_date(lot.expires_at) == db.calendar.today() - timedelta(days=11)
        with pytest.raises(DomainError) as caught:
            assert_material_usable(session, opened, now)
        assert caught.value.code == "material_expired" and caught.value.reason == "expired"
        assert opened.barcode in caught.value.message("zh_CN")
        # its use as a QC check came before the expiry: valid then
        (use,) = session.scalars(select(MaterialUse).where(MaterialUse.item_kind == "unit",
                                                           MaterialUse.item_id == opened.id)).all()
        assert use.used_at < lot.expires_at and check_material(session, opened, use.used_at).usable
        assert check_material(session, disposed, now).reason == "disposed"


def test_a_sealed_unit_of_the_expired_lot_is_refused_as_expired(loaded, users_of_demo):
    """Not as "not opened": that reason tells the analyst to open it, and opening it is refused
    because the lot has expired. Expiry is final; sealed is a step to take."""
    db = loaded
    now = utcnow()
    with db.reading() as session:
        sealed = units_of(session, COD_CERTIFICATE)[1]
        assert sealed.state == "received"
        sealed_id = sealed.id
        assert check_material(session, sealed, now).reason == "expired"
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        service.open_item(session, users_of_demo["analyst"], session.get(StockUnit, sealed_id), now)
    assert caught.value.code == "material_expired"


def test_the_dashboard_lists_have_something_to_show(loaded):
    db = loaded
    now = utcnow()
    with db.reading() as session:
        expiring = queries.expiring_within(session, 30, now=now)
        expired = queries.expired_in_stock(session, now=now)
        low = queries.low_stock(session, now=now)
        nh3n = {s.barcode for s in session.scalars(select(StandardSolution)) if s.name.startswith("氨氮")}
        cod_units = units_of(session, COD_CERTIFICATE)
        tp_units = units_of(session, "GSB 07-3168-2014")
        reagents = {r.name: r for r in session.scalars(select(ReagentLot))}
        expiring_codes = {row.barcode for row in expiring}
        assert nh3n <= expiring_codes
        assert {u.barcode for u in tp_units} <= expiring_codes  # a sealed lot expiring within 30 days
        expired_codes = {row.barcode for row in expired}
        assert {cod_units[0].barcode, cod_units[1].barcode, reagents["过硫酸钾"].barcode} <= expired_codes
        assert cod_units[2].barcode not in expired_codes  # disposed of: off the shelf
        assert {item.material.certificate_no for item in low} == {COD_CERTIFICATE, "SRM 1640a"}
        assert all(item.usable_units < item.min_stock_units for item in low)
        assert reagents["硫酸"].state == "in_use" and reagents["纳氏试剂"].state == "in_use"
        assert reagents["酒石酸钾钠"].state == "in_stock"
        assert set(reagents) == {r.name for r in REAGENTS}


def test_everything_was_entered_in_the_past_by_the_right_people(loaded):
    db = loaded
    now = utcnow()
    with db.reading() as session:
        names = {user_id: username for user_id, username in session.execute(select(User.id, User.username))}
        units = session.scalars(select(StockUnit)).all()
        solutions = session.scalars(select(StandardSolution)).all()
        uses = session.scalars(select(MaterialUse)).all()
        reagents = session.scalars(select(ReagentLot)).all()
        assert {names[u.received_by_id] for u in units} == {names[r.received_by_id] for r in reagents} == {"custodian"}
        assert {names[u.opened_by_id] for u in units if u.opened_by_id} == {"analyst", "technical"}
        assert {names[s.prepared_by_id] for s in solutions} == {"analyst", "technical"}
        moments = [u.received_at for u in units] + [u.opened_at for u in units if u.opened_at]
        moments += [s.prepared_at for s in solutions] + [u.used_at for u in uses] + [r.received_at for r in reagents]
        assert all(moment < now for moment in moments)
        assert min(moments) < now - timedelta(days=300)  # a history, not one afternoon


def test_demo_twice_adds_nothing_and_the_audit_chain_holds(loaded, store):
    db = loaded
    before = row_counts(db)
    assert before["rm_solution"] == 4 and before["reagent_lot"] == len(REAGENTS)

    load(db, store)

    assert row_counts(db) == before
    with db.reading() as session:
        result = verify_chain(session, None)
    assert result.ok, result.reason
