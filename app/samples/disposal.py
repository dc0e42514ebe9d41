"""Disposal of samples whose retention is over (DOMAIN.md §3 retained → disposed; §4.7: disposal
needs the quality manager's approval and leaves a log; nothing is deleted).

The custodian requests it for samples past their retention (a rejected sample may go without a
report); a quality manager other than the requester approves or refuses; after approval the
custodian records how and when it was done: one custody event per holder or location, to the
place "disposed: <method>", the containers and samples become `disposed` and the holding-time
clocks stop. Every row stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.codes import next_code
from app.core.i18n import N_
from app.core.permissions import Permission, ensure
from app.core.web import Page, paginate
from app.people.models import User
from app.samples import lab_input
from app.samples import storage_errors as se
from app.samples.custody import CLOSED_CONTAINER_STATES, Party, record_custody
from app.samples.holding import stop_clocks
from app.samples.lab_models import CustodyKind, DisposalRequest, DisposalRequestSample, DisposalState
from app.samples.models import Container, ContainerState, Sample, SampleState
from app.samples.registration import sample_by_no
from app.samples.storage import UNRECORDED

DISPOSAL_PREFIX = "DS"
DISPOSAL_RE = re.compile(r"^DS\d{2}-\d{5,9}$")
MAX_SAMPLES = 1000
OPEN_STATES = (DisposalState.REQUESTED.value, DisposalState.APPROVED.value)
STATE_NAMES = {
    DisposalState.REQUESTED.value: ("待批准", N_("Awaiting approval")),
    DisposalState.APPROVED.value: ("已批准，待处置", N_("Approved, to be disposed of")),
    DisposalState.REFUSED.value: ("已拒绝", N_("Refused")),
    DisposalState.DISPOSED.value: ("已处置", N_("Disposed of")),
}


def _state_names(state: str) -> dict[str, str]:
    zh, en = STATE_NAMES.get(state, (state, state))
    return {"state_zh": zh, "state_en": str(en).lower()}


def disposal_by_code(session: Session, code: str | None) -> DisposalRequest:
    text = re.sub(r"\s+", "", code or "").upper()
    request = session.scalars(select(DisposalRequest).where(DisposalRequest.code == text)).first() \
        if DISPOSAL_RE.match(text) else None
    if request is None:
        raise se.DisposalNotFound(request_code=text[:40] or "—")
    return request


def samples_of(session: Session, request: DisposalRequest) -> list[Sample]:
    return list(session.scalars(select(Sample).join(DisposalRequestSample, DisposalRequestSample.sample_id == Sample.id)
                                .where(DisposalRequestSample.request_id == request.id).order_by(Sample.sample_no)))


def _open_requests(session: Session, sample_ids: Iterable[int]) -> dict[int, str]:
    """The open request (its code) each of these samples is in: one query."""
    ids = list(set(sample_ids))
    if not ids:
        return {}
    rows = session.execute(select(DisposalRequestSample.sample_id, DisposalRequest.code)
                           .join(DisposalRequest, DisposalRequest.id == DisposalRequestSample.request_id)
                           .where(DisposalRequestSample.sample_id.in_(ids), DisposalRequest.state.in_(OPEN_STATES)))
    return dict(rows.all())


def _check_disposable(session: Session, sample: Sample, at: datetime, open_in: dict[int, str]) -> None:
    if sample.state == SampleState.DISPOSED.value:
        raise se.SampleAlreadyDisposed(sample_no=sample.sample_no)
    if sample.id in open_in:
        raise se.SampleInOpenDisposal(sample_no=sample.sample_no, request_code=open_in[sample.id])
    if sample.retain_until is None:
        if sample.state != SampleState.REJECTED.value:
            raise se.SampleNotReported(sample_no=sample.sample_no)
    elif sample.retain_until > at:
        raise se.SampleWithinRetention(sample_no=sample.sample_no,
                                       until=lab_input.local_text(session, sample.retain_until))


def request_disposal(session: Session, actor: User, sample_nos: Sequence[str], reason: Any,
                     at: Any = None) -> DisposalRequest:
    """The custodian proposes samples past their retention for disposal."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    moment = lab_input.act_time(session, at, "申请时间", "The time of the request")
    why = lab_input.text(reason, "处置理由", "The reason", 500, required=True)
    numbers = list(dict.fromkeys(n.strip() for n in sample_nos if n and n.strip()))
    if not numbers:
        raise se.NothingToDispose()
    if len(numbers) > MAX_SAMPLES:
        raise se.TooManyForDisposal(limit=MAX_SAMPLES, count=len(numbers))
    samples = list({s.id: s for s in (sample_by_no(session, n) for n in numbers)}.values())
    open_in = _open_requests(session, [s.id for s in samples])
    for sample in samples:
        _check_disposable(session, sample, moment, open_in)
    request = DisposalRequest(code=next_code(session, DISPOSAL_PREFIX, moment), reason=why, requested_at=moment,
                              requested_by_id=actor.id)
    session.add(request)
    session.flush()
    session.add_all([DisposalRequestSample(request_id=request.id, sample_id=s.id) for s in samples])
    session.flush()
    audit.append(session, actor, "disposal.requested", "disposal_request", request.id, None, {
        "code": request.code, "reason": why, "requested_at": moment,
        "samples": sorted(s.sample_no for s in samples)})
    return request


def decide_disposal(session: Session, actor: User, request: DisposalRequest, *, approve: bool, note: Any = "",
                    at: Any = None) -> DisposalRequest:
    """A quality manager other than the requester approves or refuses (a refusal says why)."""
    ensure(session, actor, Permission.DISPOSAL_APPROVE)
    moment = lab_input.act_time(session, at, "决定时间", "The time of the decision")
    text = lab_input.text(note, "决定说明", "The note on the decision", 500, required=not approve)
    request = _locked(session, request)
    if request.state != DisposalState.REQUESTED.value:
        raise se.DisposalNotRequested(request_code=request.code, **_state_names(request.state))
    if request.requested_by_id == actor.id:
        raise se.DisposalSelfApproval()
    if moment < request.requested_at:
        raise se.DecisionBeforeRequest(at=lab_input.local_text(session, moment),
                                       requested=lab_input.local_text(session, request.requested_at))
    before = request.state
    request.state = (DisposalState.APPROVED if approve else DisposalState.REFUSED).value
    request.decided_at, request.decided_by_id, request.decision_note = moment, actor.id, text
    session.flush()
    audit.append(session, actor, "disposal.approved" if approve else "disposal.refused", "disposal_request",
                 request.id, {"code": request.code, "state": before},
                 {"code": request.code, "state": request.state, "decided_at": moment, "note": text})
    return request


def _locked(session: Session, request: DisposalRequest) -> DisposalRequest:
    return session.execute(select(DisposalRequest).where(DisposalRequest.id == request.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def record_disposal(session: Session, actor: User, request: DisposalRequest, *, method: Any,
                    at: Any = None) -> DisposalRequest:
    """The custodian records the approved disposal: how and when. Never a deletion."""
    ensure(session, actor, Permission.STORAGE_MANAGE)
    moment = lab_input.act_time(session, at, "处置时间", "The time of disposal")
    how = lab_input.text(method, "处置方式", "The method of disposal", 180, required=True)
    request = _locked(session, request)
    if request.state != DisposalState.APPROVED.value:
        raise se.DisposalNotApproved(request_code=request.code, **_state_names(request.state))
    if request.decided_at is not None and moment < request.decided_at:
        raise se.DisposalBeforeDecision(at=lab_input.local_text(session, moment),
                                        approved=lab_input.local_text(session, request.decided_at))
    samples = samples_of(session, request)
    for sample in samples:  # a later report (an amendment) may have extended the retention meanwhile
        if sample.state == SampleState.DISPOSED.value:
            raise se.SampleAlreadyDisposed(sample_no=sample.sample_no)
        if sample.retain_until is not None and sample.retain_until > moment:
            raise se.SampleWithinRetention(sample_no=sample.sample_no,
                                           until=lab_input.local_text(session, sample.retain_until))
    containers = list(session.scalars(select(Container).where(Container.sample_id.in_([s.id for s in samples]))
                                      .order_by(Container.id)))
    live = [c for c in containers if c.state not in CLOSED_CONTAINER_STATES]
    groups: dict[Party, list[Container]] = {}
    for container in live:
        giver = (Party(user_id=container.holder_id) if container.holder_id is not None else
                 Party(location_id=container.location_id) if container.location_id is not None else
                 Party(place=UNRECORDED))
        groups.setdefault(giver, []).append(container)
    taker = Party(place=f"disposed: {how}"[:200])
    for giver, group in groups.items():
        record_custody(session, actor, group, CustodyKind.DISPOSAL, giver=giver, taker=taker, occurred_at=moment,
                       note=f"{request.code}", allow_closed=False)
    for container in live:
        container.state = ContainerState.DISPOSED.value
    for sample in samples:
        before = sample.state
        sample.state, sample.disposed_at = SampleState.DISPOSED.value, moment
        stop_clocks(session, sample, "disposed", moment)
        audit.append(session, actor, "sample.disposed", "sample", sample.id,
                     {"sample_no": sample.sample_no, "state": before},
                     {"sample_no": sample.sample_no, "state": sample.state, "disposed_at": moment,
                      "disposal": request.code, "method": how})
    request.state, request.disposed_at, request.disposed_by_id, request.method = (
        DisposalState.DISPOSED.value, moment, actor.id, how)
    session.flush()
    audit.append(session, actor, "disposal.recorded", "disposal_request", request.id,
                 {"code": request.code, "state": DisposalState.APPROVED.value},
                 {"code": request.code, "state": request.state, "disposed_at": moment, "method": how,
                  "containers": sorted(c.barcode for c in live)})
    return request


# ---------------------------------------------------------------- reading


def due_for_disposal(session: Session, at: datetime, *, page: int = 1, size: int = 50) -> Page[Sample]:
    """Samples whose retention is over (or rejected ones), not disposed, in no open request."""
    in_open = (select(DisposalRequestSample.sample_id)
               .join(DisposalRequest, DisposalRequest.id == DisposalRequestSample.request_id)
               .where(DisposalRequest.state.in_(OPEN_STATES)))
    query = (select(Sample).where(Sample.state != SampleState.DISPOSED.value, Sample.id.not_in(in_open),
                                  ((Sample.retain_until.is_not(None)) & (Sample.retain_until <= at))
                                  | ((Sample.retain_until.is_(None)) & (Sample.state == SampleState.REJECTED.value)))
             .order_by(Sample.retain_until, Sample.sample_no))
    return paginate(session, query, page, size)


@dataclass
class DisposalRow:
    request: DisposalRequest
    samples: int
    requested_by: User | None
    decided_by: User | None


def search_disposals(session: Session, *, state: str = "", page: int = 1, size: int = 50) -> Page[DisposalRow]:
    """Disposal requests, newest first, with their sample counts and people (four queries)."""
    query = select(DisposalRequest)
    if state:
        query = query.where(DisposalRequest.state == state)
    found = paginate(session, query.order_by(DisposalRequest.requested_at.desc(), DisposalRequest.id.desc()),
                     page, size)
    ids = [r.id for r in found.items]
    counts = dict(session.execute(select(DisposalRequestSample.request_id, func.count())
                                  .where(DisposalRequestSample.request_id.in_(ids))
                                  .group_by(DisposalRequestSample.request_id)).all()) if ids else {}
    people_ids = {r.requested_by_id for r in found.items} | {r.decided_by_id for r in found.items if r.decided_by_id}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(people_ids)))} if people_ids else {}
    rows = [DisposalRow(r, counts.get(r.id, 0), people.get(r.requested_by_id), people.get(r.decided_by_id))
            for r in found.items]
    return Page(rows, found.page, found.size, found.total)


def people_of(session: Session, request: DisposalRequest) -> dict[str, User | None]:
    ids = {i for i in (request.requested_by_id, request.decided_by_id, request.disposed_by_id) if i}
    found = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}
    return {"requested_by": found.get(request.requested_by_id), "decided_by": found.get(request.decided_by_id),
            "disposed_by": found.get(request.disposed_by_id)}


def requests_of_sample(session: Session, sample: Sample) -> list[DisposalRequest]:
    """The disposal requests a sample was in, oldest first (one query)."""
    return list(session.scalars(select(DisposalRequest)
                                .join(DisposalRequestSample, DisposalRequestSample.request_id == DisposalRequest.id)
                                .where(DisposalRequestSample.sample_id == sample.id)
                                .order_by(DisposalRequest.requested_at, DisposalRequest.id)))


def open_count(session: Session, state: str) -> int:
    return session.scalar(select(func.count()).select_from(DisposalRequest)
                          .where(DisposalRequest.state == state)) or 0
