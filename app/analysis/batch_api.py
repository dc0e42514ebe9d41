"""JSON API of analysis batches (/api/v1/batches): the list, paginated like the other /api/v1
lists, and one batch with its positions in run order. Read-only (ANALYSIS_READ); values travel as
strings, never JSON numbers, so "0.500" keeps its digits. Times are ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from app.analysis import batches, worksheet
from app.core.auth import DbSession, require
from app.core.permissions import Permission
from app.people.models import User

router = APIRouter(tags=["analysis batches"])

BASE = "/api/v1/batches"
MAX_PAGE_SIZE = 200


def text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


class BatchOut(BaseModel):
    batch_no: str
    method: str  # the method code with its year (HJ 535-2009)
    method_version: int
    parameters: list[str]
    state: str
    analyst: str | None  # user name
    instrument: str | None  # asset number
    qc_passed: bool | None  # null until QC was evaluated
    positions: int
    samples: int
    created_at: datetime
    started_at: datetime | None


class BatchPage(BaseModel):
    page: int
    per_page: int
    size: int
    total: int
    pages: int
    items: list[BatchOut]


class PositionOut(BaseModel):
    position: int
    label: str
    role: str
    sample_no: str | None
    of_label: str | None  # the sample a duplicate or spike belongs to
    standard: str | None  # barcode of the CRM, CCV or spike standard
    expected_value: str | None
    expected_uncertainty: str | None
    spike_added: str | None
    standard_missing: bool  # a planned position waiting for its standard (open batches)


class CurveOut(BaseModel):
    parameter: str
    curve: str | None


class BatchDetailOut(BatchOut):
    curves: list[CurveOut]
    items: list[PositionOut]


def batch_json(row: batches.BatchRow) -> BatchOut:
    b = row.batch
    return BatchOut(batch_no=b.batch_no, method=row.method_code, method_version=row.version,
                    parameters=row.parameters, state=b.state, analyst=row.analyst.username if row.analyst else None,
                    instrument=row.instrument.asset_no if row.instrument else None, qc_passed=b.qc_passed,
                    positions=row.positions, samples=row.samples, created_at=b.created_at, started_at=b.started_at)


@router.get(BASE, response_model=BatchPage)
def api_batches(
    request: Request, session: DbSession,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    size: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE, description="the same as per_page"),
    state: str = Query("", max_length=200, description="one state or several separated by commas"),
    method: str = Query("", max_length=60),
    analyst: str = Query("", max_length=64),
    user: User = require(Permission.ANALYSIS_READ),
) -> BatchPage:
    """Analysis batches, newest first."""
    per_page = per_page or size or min(request.app.state.settings.page_size, MAX_PAGE_SIZE)
    found = batches.list_batches(session, states=batches.clean_states(state), method=method, analyst=analyst,
                                 page=page, size=per_page)
    return BatchPage(page=found.page, per_page=found.size, size=found.size, total=found.total, pages=found.pages,
                     items=[batch_json(row) for row in found.items])


@router.get(f"{BASE}/{{batch_no}}", response_model=BatchDetailOut)
def api_batch(session: DbSession, batch_no: str = Path(max_length=40),
              user: User = require(Permission.ANALYSIS_READ)) -> BatchDetailOut:
    """One batch with its positions in run order (planned ones waiting for a standard too)."""
    batch = batches.batch_by_no(session, batch_no)
    sheet = worksheet.worksheet(session, batch)
    sample_ids = {line.sample.id for line in sheet.lines if line.sample and line.row}
    return BatchDetailOut(
        batch_no=batch.batch_no, method=sheet.method.code, method_version=sheet.version.version,
        parameters=sheet.parameters, state=batch.state, analyst=sheet.analyst.username if sheet.analyst else None,
        instrument=sheet.instrument.asset_no if sheet.instrument else None, qc_passed=batch.qc_passed,
        positions=sum(1 for line in sheet.lines if line.row), samples=len(sample_ids), created_at=batch.created_at,
        started_at=batch.started_at,
        curves=[CurveOut(parameter=c.parameter, curve=c.curve.code if c.curve else None) for c in sheet.curves],
        items=[PositionOut(
            position=line.position, label=line.label, role=line.role,
            sample_no=line.sample.sample_no if line.sample else None,
            of_label=line.of_label or None, standard=line.standard or None,
            expected_value=text(line.row.expected_value) if line.row else None,
            expected_uncertainty=text(line.row.expected_uncertainty) if line.row else None,
            spike_added=text(line.row.spike_added) if line.row else None,
            standard_missing=line.missing_standard) for line in sheet.lines])
