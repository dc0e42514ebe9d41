"""The factories make what the analysis tests stand on (a broken factory fails here first)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.analysis.models import MethodParameter, Qualification
from app.samples.lab_models import HoldingClock
from tests.analysis.conftest import qualify, samples_in_lab


def test_a_method_samples_a_qualification_and_standards(db, users, nh3n_method, analyst, standards, uv):
    samples = samples_in_lab(db, users["custodian"], (("NH3-N", 24), ("COD", 48)), count=4)
    qualify(db, analyst, nh3n_method.method_id)
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(HoldingClock)) == 8
        assert session.scalar(select(MethodParameter.parameter)) == "NH3-N"
        assert session.scalar(select(func.count()).select_from(Qualification)) == 1
    assert [s.sample_no for s in samples] == [f"WS01-261203-00{i}" for i in range(1, 5)]
    assert standards.working.barcode and standards.unit.barcode
