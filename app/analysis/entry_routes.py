"""Result entry: the keyboard-first grid of a batch and its one-cell fragments.

The grid is one form: rows are the batch's positions, and each parameter has a reading and a
dilution column (inputs `r-<position id>-<column>` and `d-...`). Without JavaScript the whole
form posts (Enter submits it) and every changed cell is recorded at once, all or nothing, then
the page comes back (post/redirect/get). With htmx each cell posts alone when it changes
(`hx-params` keeps the request to that cell) and gets back just the cell with its computed value,
reported text and marks. `static/entry.js` moves Enter down a column and sends a block pasted
from a spreadsheet to the paste endpoint, which applies it from the focused cell; the paste form
works without JavaScript as well. A correction in a submitted batch needs the reason field.

The grid posts carry up to 200 positions × 10 parameters × 2 inputs, more than the 1,000 fields
Starlette parses by default: `grid_form` reads the body once with a higher limit before the CSRF
check does (which then reads the cached form).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.analysis import result_errors as errors
from app.analysis import results
from app.analysis.batches import batch_by_no
from app.analysis.models import AnalysisBatch, PositionRole
from app.analysis.names import BATCH_STATE_NAMES
from app.analysis.result_input import parse_cell, split_block
from app.core.auth import DbSession, require
from app.core.errors import DomainError, InvalidInput
from app.core.i18n import N_, current_language, gettext
from app.core.permissions import Permission
from app.core.web import attempt, render, see_other, wants_fragment
from app.people.models import User

router = APIRouter()

BASE = "/batches/{batch_no}/entry"
BatchNo = Annotated[str, Path(max_length=40)]
MAX_FIELDS = 12_000  # 200 positions × 10 parameters × 2 inputs, with room
MAX_PASTE_CELLS = 5_000
CELL_RE = re.compile(r"^([rd])-(\d{1,12})-(\d{1,3})$")

ROLE_NAMES = {
    PositionRole.SAMPLE.value: N_("Sample"), PositionRole.METHOD_BLANK.value: N_("Method blank"),
    PositionRole.CALIBRATION_BLANK.value: N_("Calibration blank"), PositionRole.DUPLICATE.value: N_("Duplicate"),
    PositionRole.SPIKE.value: N_("Spike"), PositionRole.CRM.value: N_("CRM"), PositionRole.CCV.value: N_("CCV"),
}


async def grid_form(request: Request) -> FormData:
    """The posted form, parsed once with room for a whole grid (see the module docstring)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return FormData()
    try:
        return await request.form(max_fields=MAX_FIELDS, max_files=0)
    except Exception:  # a malformed body: the CSRF guard refuses it next
        return FormData()


Form = Annotated[FormData, Depends(grid_form)]


def _text(form: FormData, name: str, limit: int = 100) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""






# ---------------------------------------------------------------- parsing the cells


@dataclass(frozen=True)
class Typed:
    """A cell as typed: its column label for messages, and the texts."""

    position_id: int
    column: int
    reading: str
    dilution: str


def column_label(grid: results.Grid, column: int, dilution: bool = False) -> str:
    parameter = grid.parameters[column]
    return f"{parameter} {gettext('dilution') if dilution else gettext('reading')}"


def row_label(grid: results.Grid, position_id: int) -> str:
    row = grid.row_of(position_id)
    return results.position_name(row.position) if row else str(position_id)


def readings_of(grid: results.Grid, typed: list[Typed], measured_at: Any) -> list[results.ReadingInput]:
    """The typed cells as readings: a cell with a reading is recorded; an empty cell is nothing,
    and a dilution without a reading is refused. The reading's row and column name any refusal."""
    readings = []
    for cell in typed:
        where = row_label(grid, cell.position_id)
        if not 0 <= cell.column < len(grid.parameters):
            raise errors.PasteOutsideGrid(row=where, column=cell.column + 1)
        value = parse_cell(cell.reading, where, column_label(grid, cell.column))
        dilution = parse_cell(cell.dilution, where, column_label(grid, cell.column, True))
        if value is None:
            if dilution is not None:
                raise errors.DilutionWithoutReading(row=where, column=column_label(grid, cell.column, True))
            continue
        readings.append(results.ReadingInput(cell.position_id, grid.parameters[cell.column], value, "",
                                             dilution if dilution is not None else Decimal(1), measured_at))
    return readings


def changed(grid: results.Grid, typed: list[Typed]) -> list[Typed]:
    """The cells of a whole-grid post that differ from what the grid showed."""
    shown = {(c.position_id, c.column): (c.reading, c.dilution) for row in grid.rows for c in row.cells}
    out = []
    for cell in typed:
        before = shown.get((cell.position_id, cell.column))
        now = (cell.reading.strip(), cell.dilution.strip())
        if before is None or (now[0] and now != before):
            out.append(cell)
    return out


def typed_cells(form: FormData) -> list[Typed]:
    cells: dict[tuple[int, int], dict[str, str]] = {}
    for name, value in form.multi_items():
        match = CELL_RE.match(name)
        if match and isinstance(value, str):
            cells.setdefault((int(match[2]), int(match[3])), {})[match[1]] = value[:100]
    return [Typed(pid, column, v.get("r", ""), v.get("d", "")) for (pid, column), v in cells.items()]


def measured_at_of(session: Session, form: FormData) -> Any:
    from app.samples import lab_input

    text = _text(form, "measured_at", 40).strip()
    return lab_input.act_time(session, text, "测定时间", "The time of measurement") if text else None


# ---------------------------------------------------------------- pages


def _page(request: Request, session: Session, batch: AnalysisBatch, *, error: DomainError | None = None,
          values: dict[str, str] | None = None, block: str | None = None, status: int | None = None) -> Response:
    grid = results.entry_grid(session, batch, current_language())
    context: dict[str, Any] = {
        "grid": grid, "role_names": ROLE_NAMES, "state_names": BATCH_STATE_NAMES, "values": values or {},
        "can_record": Permission.ANALYSIS_RECORD in getattr(request.state, "permissions", frozenset()),
    }
    if error is not None:
        context.update(refused=True, code=error.code, detail=error.message(current_language()),
                       problems=[p.message(current_language()) for p in getattr(error, "problems", [])][:50])
    return render(request, "batches/entry.html", context, block=block,
                  status_code=status or (error.http_status if error else 200))


@router.get(BASE, include_in_schema=False)
def entry_page(request: Request, session: DbSession, batch_no: BatchNo,
               user: User = require(Permission.ANALYSIS_READ)):
    """The entry grid of a batch: positions × parameters, each with reading and dilution."""
    return _page(request, session, batch_by_no(session, batch_no))


@router.post(BASE, include_in_schema=False)
def save_grid(request: Request, session: DbSession, batch_no: BatchNo, form: Form,
              user: User = require(Permission.ANALYSIS_RECORD)):
    """The whole grid (no JavaScript): every changed cell recorded at once, all or nothing."""
    batch = batch_by_no(session, batch_no)
    reason = _text(form, "reason", 600)
    typed = typed_cells(form)

    def act() -> list[Any]:
        grid = results.entry_grid(session, batch)
        readings = readings_of(grid, changed(grid, typed), measured_at_of(session, form))
        return results.record_results(session, user, batch, readings, reason=reason) if readings else []

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        values = {f"{kind}-{c.position_id}-{c.column}": (c.reading if kind == "r" else c.dilution)
                  for c in typed for kind in "rd"}
        values.update(reason=reason, measured_at=_text(form, "measured_at", 40))
        return _page(request, session, batch, error=error, values=values)
    return see_other(request, f"/batches/{batch.batch_no}/entry")


@router.post(f"{BASE}/cell", include_in_schema=False)
def save_cell(request: Request, session: DbSession, batch_no: BatchNo, form: Form,
              user: User = require(Permission.ANALYSIS_RECORD)):
    """One cell (htmx): the cell comes back with its value, reported text and marks."""
    batch = batch_by_no(session, batch_no)
    try:
        position_id, column = int(_text(form, "position", 12)), int(_text(form, "column", 3))
    except ValueError:
        raise InvalidInput(detail="position and column") from None
    typed = Typed(position_id, column, _text(form, f"r-{position_id}-{column}"),
                  _text(form, f"d-{position_id}-{column}"))
    reason = _text(form, "reason", 600)

    def act() -> list[Any]:
        grid = results.entry_grid(session, batch)
        readings = readings_of(grid, [typed], measured_at_of(session, form))
        return results.record_results(session, user, batch, readings, reason=reason) if readings else []

    _, error = attempt(session, act)
    if not wants_fragment(request):
        if error is not None:
            session.expire_all()
            return _page(request, session, batch, error=error, values={
                f"r-{position_id}-{column}": typed.reading, f"d-{position_id}-{column}": typed.dilution,
                "reason": reason})
        return see_other(request, f"/batches/{batch.batch_no}/entry")
    session.expire_all()
    grid = results.entry_grid(session, batch, current_language())
    row = grid.row_of(position_id)
    if row is None or not 0 <= column < len(grid.parameters):
        raise error or errors.PasteOutsideGrid(row=position_id, column=column + 1)
    context: dict[str, Any] = {"grid": grid, "row": row, "cell_view": row.cells[column], "role_names": ROLE_NAMES,
                               "values": {}, "can_record": True, "saved": error is None, "cell_error": None,
                               "cell_code": None, "over_range": False}
    if error is not None:
        codes = getattr(error, "codes", [error.code])
        context.update(cell_error=error.message(current_language()), cell_code=error.code,
                       over_range=any(c in ("above_calibration_range", "above_working_range") for c in codes),
                       values={f"r-{position_id}-{column}": typed.reading,
                               f"d-{position_id}-{column}": typed.dilution})
    return render(request, "batches/entry_cell.html", context, status_code=error.http_status if error else 200)


def pasted_cells(grid: results.Grid, start_position: int, start_column: int, block: str) -> list[Typed]:
    """A spreadsheet block laid on the grid from the focused cell: rows go down the positions,
    columns go right along reading, dilution, reading, dilution... as the grid shows them."""
    rows = split_block(block)
    if sum(len(r) for r in rows) > MAX_PASTE_CELLS:
        raise errors.PasteTooLarge(limit=MAX_PASTE_CELLS)
    ids = [r.position.id for r in grid.rows]
    if start_position not in ids:
        raise errors.PasteOutsideGrid(row=start_position, column=start_column + 1)
    first = ids.index(start_position)
    width = 2 * len(grid.parameters)
    cells: dict[tuple[int, int], dict[str, str]] = {}
    for i, line in enumerate(rows):
        for j, text in enumerate(line):
            if not text.strip():
                continue
            row, col = first + i, start_column + j
            if row >= len(ids) or not 0 <= col < width:
                raise errors.PasteOutsideGrid(row=i + 1, column=j + 1)
            cells.setdefault((ids[row], col // 2), {})["d" if col % 2 else "r"] = text
    current = {(c.position_id, c.column): c for r in grid.rows for c in r.cells}
    typed = []
    for (pid, column), texts in cells.items():
        shown = current[(pid, column)]
        reading = texts.get("r", shown.reading)  # a pasted dilution re-reads the current reading
        dilution = texts.get("d", shown.dilution if "r" not in texts else "")
        typed.append(Typed(pid, column, reading, dilution))
    return typed


@router.post(f"{BASE}/paste", include_in_schema=False)
def paste_block(request: Request, session: DbSession, batch_no: BatchNo, form: Form,
                user: User = require(Permission.ANALYSIS_RECORD)):
    """A block pasted from a spreadsheet (tab-separated rows), applied from the focused cell, all
    or nothing."""
    batch = batch_by_no(session, batch_no)
    block = _text(form, "block", 200_000)
    reason = _text(form, "reason", 600)
    try:
        start_position, start_column = int(_text(form, "start_position", 12)), int(_text(form, "start_column", 3))
    except ValueError:
        start_position, start_column = -1, 0

    def act() -> list[Any]:
        grid = results.entry_grid(session, batch)
        readings = readings_of(grid, pasted_cells(grid, start_position, start_column, block),
                               measured_at_of(session, form))
        if not readings:
            raise errors.NoReadings()
        return results.record_results(session, user, batch, readings, reason=reason)

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        values = {"block": block, "reason": reason, "start_position": str(start_position),
                  "start_column": str(start_column), "measured_at": _text(form, "measured_at", 40)}
        if wants_fragment(request):
            return render(request, "_error.html", {"code": error.code, "detail": error.message(current_language())},
                          status_code=error.http_status, headers={"HX-Retarget": "#messages",
                                                                  "HX-Reswap": "innerHTML"})
        return _page(request, session, batch, error=error, values=values)
    if wants_fragment(request):
        session.expire_all()
        return _page(request, session, batch, block="grid")
    return see_other(request, f"/batches/{batch.batch_no}/entry")


@router.get(f"{BASE}/history", include_in_schema=False)
def cell_history(request: Request, session: DbSession, batch_no: BatchNo,
                 position: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                 parameter: Annotated[str, Query(max_length=60)] = "",
                 user: User = require(Permission.ANALYSIS_READ)):
    """Every revision of a cell: the value, who entered it, when, from where and why. Without a
    cell, every correction of the batch (revisions after the first)."""
    batch = batch_by_no(session, batch_no)
    if position is None or not parameter.strip():
        return render(request, "batches/entry_history.html", {
            "batch": batch, "history": None, "corrections": results.batch_corrections(session, batch),
            "role_names": ROLE_NAMES}, block="history")
    history = results.cell_history(session, batch, position, parameter.strip(), current_language())
    return render(request, "batches/entry_history.html", {"batch": batch, "history": history, "corrections": None,
                                                          "role_names": ROLE_NAMES}, block="history")
