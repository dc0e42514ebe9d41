"""Lots, stock and the two-step dilution chain through the services (both engines)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.errors import DomainError
from app.reference_materials import service
from app.reference_materials.gate import assert_material_usable, check_material
from app.reference_materials.models import MaterialUse, SolutionComponent, StandardSolution, StockUnit
from app.reference_materials.traceability import backward_trace, count_forward, forward_traceability
from tests.reference_materials.conftest import (
    D,
    ago,
    make_lot,
    make_material,
    open_unit,
    prepare,
    receive,
)


def refused(db, code: str, act) -> DomainError:
    with pytest.raises(DomainError) as caught, db.transaction() as session:
        act(session)
    assert caught.value.code == code, caught.value
    return caught.value


def test_grade_follows_the_certificate_number():
    assert service.grade_of("GBW08608").value == "gbw"
    assert service.grade_of("GBW(E)081601").value == "gbw_e"
    assert service.grade_of("GSB 07-3164-2014").value == "gsb"
    assert service.grade_of("SRM 1640a").value == "foreign"
    assert service.grade_of("XYZ-1").value == "other"


def test_units_get_barcodes_and_opening_sets_the_in_use_expiry(db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=90)
    lot = make_lot(db, technical, store, material, expires_on=date.today() + timedelta(days=40))
    units = receive(db, technical, lot, count=3)
    assert [u.barcode[:2] for u in units] == ["RM"] * 3
    assert len({u.barcode for u in units}) == 3
    opened = open_unit(db, technical, units[0], ago(days=1))
    # the certificate's expiry (40 days) comes before opening + 90 days
    assert opened.expires_at == lot.expires_at
    assert opened.state == "in_use" and opened.opened_by_id == technical.id


def test_short_stability_after_opening_wins(db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=7)
    lot = make_lot(db, technical, store, material)
    unit = receive(db, technical, lot)[0]
    opened_at = ago(days=3)
    opened = open_unit(db, technical, unit, opened_at)
    assert opened.expires_at == opened_at + timedelta(days=7)


def test_two_step_dilution_propagates_uncertainty(db, technical, opened_unit):
    stock = prepare(db, technical, opened_unit.barcode, aliquot="10", final_volume="100", prepared_at=ago(days=10))
    working = prepare(db, technical, stock.barcode, aliquot="10", final_volume="100", prepared_at=ago(days=5),
                      name="氨氮标准使用液", output_unit="μg/mL")
    with db.reading() as session:
        first = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == stock.id)).one()
        second = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == working.id)).one()
        assert first.concentration == D("100")
        assert second.concentration == D("10") and second.unit == "μg/mL"
        assert second.relative_u > first.relative_u > D("0.0035")
        trace = backward_trace(session, session.get(StandardSolution, working.id))
        assert [s.solution.barcode for s in trace.steps] == [stock.barcode, working.barcode]
        assert trace.lot.lot_no == "B2309" and trace.unit.barcode == opened_unit.barcode
        assert [line.component for line in trace.steps[1].results[0].budget] == ["parent", "aliquot", "final_volume"]
        unit = session.get(StockUnit, opened_unit.id)
        assert unit.remaining == D("10")  # 20 mL less the 10 mL aliquot
        assert working.root_lot_id == unit.lot_id and working.generation == 2
        usages = forward_traceability(session, unit.lot_id)
        assert [u.record_id for u in usages] == [stock.barcode, working.barcode]
        assert count_forward(session, unit.lot_id) == 2


def test_solution_expiry_is_the_earliest_of_parent_and_own_shelf_life(db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=15)
    lot = make_lot(db, technical, store, material)
    unit = open_unit(db, technical, receive(db, technical, lot)[0], ago(days=10))
    solution = prepare(db, technical, unit.barcode, prepared_at=ago(days=9), shelf_life_days=30)
    assert solution.expires_at == unit.expires_at  # parent expires in 5 days, before 30 - 9


def test_gate_refuses_sealed_expired_used_up_and_disposed(db, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=5)
    lot = make_lot(db, technical, store, material)
    sealed, expiring, finished, binned = receive(db, technical, lot, count=4, received_at=ago(days=60))
    with db.reading() as session:
        assert check_material(session, session.get(StockUnit, sealed.id), ago(days=1)).reason == "not_opened"
    expiring = open_unit(db, technical, expiring, ago(days=30))
    with db.reading() as session:
        unit = session.get(StockUnit, expiring.id)
        # usable when it was used, refused now: the gate looks at the time of use
        assert check_material(session, unit, ago(days=28)).usable
        assert check_material(session, unit, ago(days=1)).reason == "expired"
        assert check_material(session, unit, ago(days=59)).reason == "not_opened"
        assert check_material(session, unit, ago(days=61)).reason == "not_received"
    finished = open_unit(db, technical, finished, ago(days=2))
    with db.transaction() as session:
        service.record_use(session, technical, session.get(StockUnit, finished.id), ago(days=1),
                           quantity=D("20"), quantity_unit="mL", purpose="CRM check")
    with db.reading() as session:
        unit = session.get(StockUnit, finished.id)
        assert unit.state == "used_up" and unit.remaining == 0
        assert check_material(session, unit, ago(hours=1)).reason == "used_up"
    with db.transaction() as session:
        service.dispose_item(session, technical, session.get(StockUnit, binned.id), reason="瓶口破损", at=ago(hours=2))
    refused(db, "material_disposed",
            lambda s: assert_material_usable(s, s.get(StockUnit, binned.id), ago(hours=1)))


def test_withdrawn_lot_refuses_its_solutions_from_the_effective_time(db, technical, users, opened_unit):
    solution = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=10))
    with db.transaction() as session:
        lot = service.get_lot(session, opened_unit.lot_id)
        service.change_lot_status(session, users["quality_manager"], lot, "withdrawn", reason="生产方撤销证书",
                                  effective_at=ago(days=5))
    with db.reading() as session:
        s = session.get(StandardSolution, solution.id)
        assert check_material(session, s, ago(days=6)).usable
        assert check_material(session, s, ago(days=4)).reason == "withdrawn"


def test_bad_input_saves_nothing(db, technical, store, opened_unit):
    def counts():
        with db.reading() as session:
            return (session.scalar(select(func.count()).select_from(StandardSolution)),
                    session.scalar(select(func.count()).select_from(MaterialUse)),
                    session.scalar(select(func.count()).select_from(AuditEvent)))

    before = counts()
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, opened_unit.barcode, aliquot="0")
    assert caught.value.code == "non_positive_amount"
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, opened_unit.barcode, aliquot="10", final_volume="5")
    assert caught.value.code == "aliquot_exceeds_final_volume"
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, "RM26-99999")
    assert caught.value.code == "item_not_found"
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, "not a barcode")
    assert caught.value.code == "item_not_found"
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, opened_unit.barcode, aliquot="30", final_volume="100")  # 20 mL in the unit
    assert caught.value.code == "insufficient_quantity"
    assert counts() == before
    material = make_material(db, technical, "GBW08608")
    with pytest.raises(DomainError) as caught:
        make_lot(db, technical, store, material, values=(service.ValueFacts("Cu", D("1.00"), "mg/L"),))
    assert caught.value.code == "uncertainty_required"
    with pytest.raises(DomainError) as caught:
        make_lot(db, technical, store, material, values=(service.ValueFacts("Cu", D("1.00"), "mg/m3", D("0.02"),
                                                                            D("2")),))
    assert caught.value.code == "unknown_unit"


def test_mass_fraction_parent_needs_a_density(db, technical, store):
    material = make_material(db, technical, "SRM 1640a", name_zh="天然水中痕量元素")
    lot = make_lot(db, technical, store, material, lot_no="1640a-07",
                   values=(service.ValueFacts("As", D("8.010"), "μg/kg", D("0.067"), D("2")),))
    unit = open_unit(db, technical, receive(db, technical, lot, quantity="250")[0])
    with pytest.raises(DomainError) as caught:
        prepare(db, technical, unit.barcode, output_unit="μg/L")
    assert caught.value.code == "density_required"
    solution = prepare(db, technical, unit.barcode, output_unit="μg/L", density=Decimal("1.0000"))
    with db.reading() as session:
        component = session.scalars(select(SolutionComponent).where(SolutionComponent.solution_id == solution.id)).one()
        assert component.concentration == Decimal("0.801")


def test_an_intermediate_check_with_a_scanned_standard_passes_the_gate_and_is_traced(db, technical, store,
                                                                                      opened_unit):
    from app.instruments import records
    from app.instruments import service as instruments
    from app.instruments.models import IntermediateCheck
    from tests.conftest import PASSWORD

    solution = prepare(db, technical, opened_unit.barcode, prepared_at=ago(days=10), shelf_life_days=5)
    with db.transaction() as session:
        instrument = instruments.register_instrument(
            session, technical, asset_no="JC-UV-009", name_zh="紫外可见分光光度计", commissioned_on=date(2024, 1, 1),
            responsible_id=technical.id, uses=[("NH3-N", "HJ 535-2009")])

    def facts(at, barcode):
        return records.CheckFacts(performed_at=at, check_standard="氨氮标准使用液", criterion="100 ± 2 mg/L",
                                  measured_value="100.4", result="pass", standard_barcode=barcode)

    with db.transaction() as session:  # within the solution's 5 days: the use is recorded
        check = records.record_check(session, technical, session.merge(instrument),
                                     facts(ago(days=8), solution.barcode.lower()), PASSWORD)
    assert check.standard_barcode == solution.barcode
    with db.reading() as session:
        uses = forward_traceability(session, opened_unit.lot_id)
        assert [(u.source, u.barcode) for u in uses] == [("solution", opened_unit.barcode), ("use", solution.barcode)]
    # after its expiry the standard is refused and nothing of the check is kept
    refused(db, "material_expired", lambda s: records.record_check(
        s, technical, s.merge(instrument), facts(ago(days=2), solution.barcode), PASSWORD))
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(IntermediateCheck)) == 1
