"""Pages of QC evaluation, corrective actions and signing a batch, and the batch's QC as JSON.

`/batches/{batch_no}/qc` shows the latest evaluation run (check, position, parameter, value,
limits, verdict, affected samples), a corrective-action form beside each failure waiting for one,
the actions recorded, and the analyst's signing form; a refusal (a failure without corrective
action, a missing result, a wrong password) is shown in the page and nothing is saved. Posts
redirect back (post/redirect/get); "Re-evaluate" through htmx swaps just the run's table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.analysis import corrective, qc, submission
from app.analysis.batches import batch_by_no
from app.analysis.models import AnalysisBatch
from app.analysis.names import BATCH_STATE_NAMES
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language
from app.core.permissions import Permission
from app.core.registry import Worklist, add_worklist
from app.core.web import attempt, is_htmx, render, see_other
from app.people.models import User

router = APIRouter()

BatchNo = Annotated[str, Path(max_length=40)]
Small = Annotated[str, Form(max_length=40)]
Text = Annotated[str, Form(max_length=2000)]
Secret = Annotated[str, Form(max_length=200)]

KIND_NAMES = {
    "blank": N_("Method blank"), "duplicate": N_("Lab duplicate"), "spike": N_("Spike recovery"),
    "crm": N_("CRM"), "ccv": N_("Calibration check (CCV)"), "curve": N_("Calibration curve"),
}
REASONS = {
    "no_result": N_("No result"), "no_result_for_original": N_("No result for the original sample"),
    "both_below_mdl": N_("Both below the MDL: not evaluated"), "no_spike_amount": N_("No spike amount recorded"),
    "no_certified_value": N_("No certified value ± uncertainty recorded"),
    "no_expected_value": N_("No expected value recorded"), "no_curve": N_("No calibration curve attached"),
    "curve_not_accepted": N_("Curve not accepted"), "rd_undefined": N_("RD undefined (sum not positive)"),
    "parameter_not_in_method": N_("Parameter not in the method"),
}


def _base(batch_no: str) -> str:
    return f"/batches/{batch_no}/qc"




def _page(request: Request, session: Session, batch: AnalysisBatch, *, error: DomainError | None = None,
          form: str = "", values: dict[str, str] | None = None, block: str | None = None) -> Response:
    view = qc.qc_view(session, batch)
    user = getattr(request.state, "user", None)
    permissions = getattr(request.state, "permissions", frozenset())
    context: dict[str, Any] = {
        "view": view, "kind_names": KIND_NAMES, "reasons": REASONS, "state_names": BATCH_STATE_NAMES,
        "qualifiers": corrective.QUALIFIERS, "allowed_qualifiers": corrective.allowed_qualifiers,
        "signature": submission.signature_view(session, batch) if batch.signature_id else None,
        "can_act": Permission.ANALYSIS_RECORD in permissions and user is not None and user.id == batch.analyst_id,
        "form_name": form, "values": values or {},
    }
    if error is not None:
        context.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, "batches/qc.html", context, block=block,
                  status_code=error.http_status if error else 200)


@router.get("/batches/{batch_no}/qc", include_in_schema=False)
def qc_page(request: Request, session: DbSession, batch_no: BatchNo, user: User = require(Permission.ANALYSIS_READ)):
    return _page(request, session, batch_by_no(session, batch_no))


def _act(request: Request, session: Session, batch_no: str, form: str, values: dict[str, str],
         act: Callable[[AnalysisBatch], Any], anchor: str = "") -> Response:
    batch = batch_by_no(session, batch_no)
    _, error = attempt(session, lambda: act(batch))
    if error is not None:
        session.expire_all()
        return _page(request, session, batch_by_no(session, batch_no), error=error, form=form, values=values)
    return see_other(request, _base(batch.batch_no) + anchor)


@router.post("/batches/{batch_no}/qc/evaluate", include_in_schema=False)
def re_evaluate(request: Request, session: DbSession, batch_no: BatchNo,
                user: User = require(Permission.ANALYSIS_RECORD)):
    """A new evaluation run; htmx gets the run's table back in place."""
    batch = batch_by_no(session, batch_no)
    _, error = attempt(session, lambda: qc.evaluate_batch(session, user, batch))
    session.expire_all()
    fresh = batch_by_no(session, batch_no)
    if is_htmx(request):
        return _page(request, session, fresh, error=error, form="evaluate", block="run")
    if error is not None:
        return _page(request, session, fresh, error=error, form="evaluate")
    return see_other(request, _base(fresh.batch_no) + "#run")


@router.post("/batches/{batch_no}/qc/corrective", include_in_schema=False)
def record_corrective(request: Request, session: DbSession, batch_no: BatchNo,
                      evaluation_id: Annotated[int, Form(ge=1, le=2**62)], kind: Small = "",
                      qualifier: Small = "", justification: Text = "",
                      user: User = require(Permission.ANALYSIS_RECORD)):
    values = {"evaluation_id": str(evaluation_id), "kind": kind, "qualifier": qualifier,
              "justification": justification}
    return _act(request, session, batch_no, "corrective", values, lambda batch: corrective.record_corrective_action(
        session, user, evaluation_id, kind, justification, qualifier, batch=batch), "#actions")


@router.post("/batches/{batch_no}/qc/submit", include_in_schema=False)
def submit(request: Request, session: DbSession, batch_no: BatchNo, password: Secret = "",
           user: User = require(Permission.ANALYSIS_RECORD)):
    return _act(request, session, batch_no, "submit", {}, lambda batch: submission.submit_batch(
        session, user, batch, password), "#signature")


# ---------------------------------------------------------------- JSON


def _text(value: Any) -> str | None:
    return None if value is None else format(value, "f")


class EvaluationOut(BaseModel):
    id: int
    kind: str
    parameter: str
    position: str | None  # the position's label (a curve: its code)
    value: str | None
    limit_low: str | None
    limit_high: str | None
    passed: bool | None  # None: not evaluated (a duplicate pair below the MDL)
    reason: str | None
    affects: list[str]  # sample numbers whose results the check covers
    answered: bool


class CorrectiveOut(BaseModel):
    evaluation_id: int
    kind: str
    qualifier: str
    justification: str
    rerun_position_id: int | None
    recorded_at: str
    recorded_by: str


class QcOut(BaseModel):
    batch_no: str
    state: str
    qc_passed: bool | None
    run: int
    evaluated_at: str | None
    evaluations: list[EvaluationOut]
    corrective_actions: list[CorrectiveOut]


@router.get("/api/v1/batches/{batch_no}/qc", response_model=QcOut, tags=["analysis"])
def api_qc(session: DbSession, batch_no: BatchNo, user: User = require(Permission.ANALYSIS_READ)) -> QcOut:
    """The batch's latest QC run and its corrective actions; numbers as strings, never floats."""
    view = qc.qc_view(session, batch_by_no(session, batch_no))
    return QcOut(
        batch_no=view.batch.batch_no, state=view.batch.state, qc_passed=view.batch.qc_passed, run=view.run,
        evaluated_at=view.evaluated_at.isoformat() if view.evaluated_at else None,
        evaluations=[EvaluationOut(
            id=line.evaluation.id, kind=line.evaluation.kind, parameter=line.evaluation.parameter,
            position=line.label or None, value=_text(line.evaluation.value),
            limit_low=_text(line.evaluation.limit_low), limit_high=_text(line.evaluation.limit_high),
            passed=line.evaluation.passed, reason=line.detail.get("reason"), affects=line.detail.get("affects", []),
            answered=bool(line.actions)) for line in view.lines],
        corrective_actions=[CorrectiveOut(
            evaluation_id=a.evaluation_id, kind=a.kind, qualifier=a.qualifier, justification=a.justification,
            rerun_position_id=a.rerun_position_id, recorded_at=a.recorded_at.isoformat(),
            recorded_by=view.people[a.recorded_by_id].printed_name if a.recorded_by_id in view.people else "")
            for a, _ in view.actions],
    )


# ---------------------------------------------------------------- the dashboard


def _waiting(session: Session, user: User) -> int:
    return qc.waiting_batches(session, user.id)


add_worklist(Worklist("qc_failures", N_("QC failures waiting for a corrective action"), Permission.ANALYSIS_RECORD,
                      "/batches?mine=1&state=qc_failed", _waiting, 56))
