"""JSON API of results: reading them, and instruments posting results with idempotency keys.

Measured values travel as strings, never as JSON numbers: a float cannot carry "0.500" exactly
(as app/instruments/api.py does). An instrument posts with its API token; a retried post with the
same `Idempotency-Key` gets the first answer and records nothing twice (`idempotency.respond_once`),
and a reading's own `client_id` makes a repeated reading inside a later post harmless too. A refused
post saves nothing and lists every bad row in `errors` (row, position, parameter, code, message).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import result_errors as errors
from app.analysis import results
from app.analysis.batches import batch_by_no
from app.analysis.models import AnalysisResult, BatchPosition, ResultSource
from app.analysis.result_input import parse_cell
from app.core import i18n, idempotency
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.permissions import Permission
from app.people.models import User

router = APIRouter(tags=["analysis"])

SCOPE = "analysis.results"
MAX_POSTED = 5_000
BatchNo = Annotated[str, Path(max_length=40)]


# ---------------------------------------------------------------- shapes


class ResultOut(BaseModel):
    id: int
    position: int
    label: str
    role: str
    sample_no: str | None
    parameter: str
    reading: str
    reading_unit: str
    dilution: str
    value: str  # full precision, never a float
    unit: str
    reported: str  # GB/T 8170 once, below-MDL text of the method
    below_mdl: bool
    qualifier: str
    revision: int
    measured_at: datetime
    entered_at: datetime
    source: str


class BatchResultsOut(BaseModel):
    batch_no: str
    state: str
    items: list[ResultOut]


class RevisionOut(BaseModel):
    id: int
    revision: int
    reading: str
    dilution: str
    value: str
    reason: str
    entered_by: str
    entered_at: datetime
    source: str


class ResultDetailOut(ResultOut):
    batch_no: str
    intermediates: dict[str, Any]
    history: list[RevisionOut]


class ReadingIn(BaseModel):
    """One reading: the position by its number in the run or by its label (as the instrument's
    sequence names it), the parameter, and the reading and dilution as decimal strings."""

    model_config = ConfigDict(extra="forbid")

    position: int | None = Field(None, ge=1, le=100_000)
    label: str | None = Field(None, max_length=60)
    parameter: str = Field(max_length=60)
    reading: str = Field(max_length=60)
    unit: str = Field("", max_length=16)
    dilution: str = Field("1", max_length=30)
    measured_at: AwareDatetime | None = None
    client_id: str = Field("", max_length=64)

    @field_validator("reading", "dilution", mode="before")
    @classmethod
    def _text_not_number(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError('send the value as a string, e.g. "0.512": a JSON number loses its digits')
        return value

    @model_validator(mode="after")
    def _one_address(self) -> ReadingIn:
        if (self.position is None) == (self.label is None):
            raise ValueError("give the position number or the label, one of them")
        return self


class ResultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: list[ReadingIn] = Field(min_length=1, max_length=MAX_POSTED)
    reason: str = Field("", max_length=500)  # required once the batch was submitted


# ---------------------------------------------------------------- helpers


def result_json(result: AnalysisResult, position: BatchPosition, sample_no: str | None, reported: str) -> ResultOut:
    return ResultOut(
        id=result.id, position=position.position, label=position.label, role=position.role, sample_no=sample_no,
        parameter=result.parameter, reading=str(result.reading), reading_unit=result.reading_unit,
        dilution=str(result.dilution_factor), value=str(result.value), unit=result.unit, reported=reported,
        below_mdl=result.below_mdl, qualifier=result.qualifier, revision=result.revision,
        measured_at=result.measured_at, entered_at=result.entered_at, source=result.source)


def _problem(request: Request, error: DomainError) -> JSONResponse:
    language = i18n.current_language()
    body: dict[str, Any] = {"type": f"urn:envirolims:error:{error.code}", "status": error.http_status,
                            "title": "请求被拒绝" if i18n.is_chinese() else "Request refused",
                            "detail": error.message(language), "code": error.code, "instance": request.url.path}
    problems = getattr(error, "problems", None)
    if problems:
        body["errors"] = [p.as_json() for p in problems]
    return JSONResponse(body, status_code=error.http_status, media_type="application/problem+json")


def _readings(session: Session, batch_id: int, body: ResultsIn) -> list[results.ReadingInput]:
    """The posted readings with their positions found by number or label (one query); every
    position that is not the batch's and every unreadable number is listed at once."""
    positions = session.execute(select(BatchPosition.id, BatchPosition.position, BatchPosition.label)
                                .where(BatchPosition.batch_id == batch_id)).all()
    by_number = {number: pid for pid, number, _ in positions}
    by_label = {label.casefold(): pid for pid, _, label in positions if label}
    readings, problems = [], []
    for row, item in enumerate(body.results, start=1):
        where = item.label if item.label is not None else f"#{item.position}"
        found = by_number.get(item.position) if item.position is not None else \
            by_label.get(item.label.strip().casefold()) if item.label else None
        if found is None:
            problems.append(errors.row_problem(row, where, item.parameter, "position_not_in_batch",
                                               other=i18n.gettext("no position of this batch")))
            continue
        try:
            value = parse_cell(item.reading, row, "reading")
            dilution = parse_cell(item.dilution, row, "dilution")
        except errors.CellRefused as refused:
            problems.append(errors.RowProblem(row, where, item.parameter, refused.code, refused.message("zh"),
                                              refused.message("en")))
            continue
        if value is None:
            problems.append(errors.RowProblem(row, where, item.parameter, "not_a_number", "读数为空。",
                                              "the reading is empty."))
            continue
        readings.append(results.ReadingInput(found, item.parameter, value, item.unit.strip(),
                                             dilution if dilution is not None else Decimal(1), item.measured_at,
                                             item.client_id.strip()))
    if problems:
        raise errors.ResultsRefused(problems)
    return readings


# ---------------------------------------------------------------- routes


@router.get("/api/v1/batches/{batch_no}/results", response_model=BatchResultsOut)
def api_batch_results(request: Request, session: DbSession, batch_no: BatchNo,
                      user: User = require(Permission.ANALYSIS_READ)) -> BatchResultsOut:
    """The batch's current results (the highest revision of each position × parameter)."""
    batch = batch_by_no(session, batch_no)
    grid = results.entry_grid(session, batch, i18n.current_language())
    items = [result_json(c.result, row.position, row.sample_no or None, c.reported)
             for row in grid.rows for c in row.cells if c.result is not None]
    return BatchResultsOut(batch_no=batch.batch_no, state=batch.state, items=items)


@router.get("/api/v1/results/{result_id}", response_model=ResultDetailOut)
def api_result(session: DbSession, result_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
               user: User = require(Permission.ANALYSIS_READ)) -> ResultDetailOut:
    """One result revision with every intermediate value of its calculation and the cell's history."""
    from app.analysis.models import AnalysisBatch
    from app.samples.models import Sample

    result = session.get(AnalysisResult, result_id)
    if result is None:
        raise errors.ResultNotFound(result_id=result_id)
    batch = session.get(AnalysisBatch, result.batch_id)
    position = session.get(BatchPosition, result.position_id)
    sample_no = session.scalar(select(Sample.sample_no).where(Sample.id == result.sample_id)) \
        if result.sample_id else None
    history = results.cell_history(session, batch, position.id, result.parameter, i18n.current_language())
    reported = next(e.reported for e in history.entries if e.result.id == result.id)
    base = result_json(result, position, sample_no, reported).model_dump()
    return ResultDetailOut(**base, batch_no=batch.batch_no, intermediates=json.loads(result.intermediates or "{}"),
                           history=[RevisionOut(id=e.result.id, revision=e.result.revision,
                                                reading=str(e.result.reading), dilution=str(e.result.dilution_factor),
                                                value=str(e.result.value), reason=e.result.reason,
                                                entered_by=e.entered_by, entered_at=e.result.entered_at,
                                                source=e.result.source) for e in history.entries])


@router.post("/api/v1/batches/{batch_no}/results", status_code=201, response_model=BatchResultsOut)
def api_post_results(request: Request, session: DbSession, batch_no: BatchNo, body: ResultsIn,
                     idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                     user: User = require(Permission.ANALYSIS_RECORD)) -> Any:
    """Results from an instrument (or any client with a token), all or nothing. With an
    `Idempotency-Key`, a repeat with the same body answers the first response again."""
    batch = batch_by_no(session, batch_no)
    payload = {"batch_no": batch.batch_no, **body.model_dump(mode="json")}

    def post() -> tuple[int, Any]:
        readings = _readings(session, batch.id, body)
        written = results.record_results(session, user, batch, readings, source=ResultSource.API.value,
                                         reason=body.reason)
        grid = results.entry_grid(session, batch, i18n.current_language())
        rows = {r.position.id: r for r in grid.rows}
        items = []
        for r in written:
            row = rows[r.position_id]
            cell = next(c for c in row.cells if c.parameter == r.parameter)
            items.append(result_json(r, row.position, row.sample_no or None,
                                     results.reported_text(r, grid.rules.get(r.parameter), i18n.current_language())
                                     if cell.result is None or cell.result.id != r.id else cell.reported))
        return 201, BatchResultsOut(batch_no=batch.batch_no, state=batch.state, items=items).model_dump(mode="json")

    try:
        return idempotency.respond_once(request, session, SCOPE, idempotency_key, user.id, payload, post)
    except errors.ResultsRefused as refused:
        return _problem(request, refused)
