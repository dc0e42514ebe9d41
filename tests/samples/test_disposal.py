"""Disposal: requested by the custodian for samples past their retention, decided by a quality
manager other than the requester, recorded by the custodian through custody; never a deletion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.core.errors import PermissionDenied
from app.samples import disposal, storage
from app.samples.lab_models import (
    CustodyEvent,
    CustodyEventContainer,
    DisposalRequest,
    DisposalRequestSample,
    DisposalState,
    HoldingClock,
)
from app.samples.models import Container, ContainerState, Sample, SampleState
from tests.samples.test_storage import refused
from tests.samples.test_storage_support import *  # noqa: F403
from tests.samples.test_storage_support import audit_actions, location_row, report, rows, sample_row


def expired(db, sample, days_ago: int = 40):
    """Reported `days_ago` days ago: the default retention (30 days) is over."""
    return report(db, sample, utcnow() - timedelta(days=days_ago))


def requested(db, users, samples, reason="留样期满"):
    with db.transaction() as session:
        request = disposal.request_disposal(session, users["custodian"], [s.sample_no for s in samples], reason)
        session.expunge(request)
    return request


def by_code(session, request):
    return disposal.disposal_by_code(session, request.code)


def test_the_whole_flow_request_approve_record(db, users, received_task, fridge):
    dt = received_task
    with db.transaction() as session:
        storage.store(session, users["custodian"], fridge.code, dt.barcodes())
    expired(db, dt.routine)
    request = requested(db, users, [dt.routine])
    assert request.code.startswith("DS") and request.state == DisposalState.REQUESTED.value
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager"], by_code(session, request), approve=True,
                                 note="同意")
    with db.transaction() as session:
        disposal.record_disposal(session, users["custodian"], by_code(session, request), method="中和后排放")
    with db.reading() as session:
        row = session.get(DisposalRequest, request.id)
        assert row.state == DisposalState.DISPOSED.value and row.method == "中和后排放"
        assert row.decided_by_id == users["quality_manager"].id and row.disposed_by_id == users["custodian"].id
        containers = session.scalars(select(Container).where(Container.sample_id == dt.routine.id)).all()
        assert len(containers) == 3 and {c.state for c in containers} == {ContainerState.DISPOSED.value}
        assert {(c.holder_id, c.location_id) for c in containers} == {(None, None)}
        event = session.scalars(select(CustodyEvent).where(CustodyEvent.kind == "disposal")).one()
        assert event.from_location_id == fridge.id and event.to_place == "disposed: 中和后排放"
        clocks = session.scalars(select(HoldingClock).where(HoldingClock.sample_id == dt.routine.id)).all()
        assert clocks and all(not c.open and c.stopped_by == "disposed" for c in clocks)
    sample = sample_row(db, dt.routine.id)
    assert sample.state == SampleState.DISPOSED.value and sample.disposed_at is not None
    assert location_row(db, fridge.id).occupied == 0
    actions = audit_actions(db)
    for action in ("disposal.requested", "disposal.approved", "custody.disposal", "sample.disposed",
                   "disposal.recorded"):
        assert action in actions
    # nothing was deleted: the sample, its containers and its custody history are all there
    assert rows(db, Sample) == 3 and rows(db, Container) == 9
    assert rows(db, CustodyEventContainer) >= 3 + 3 + 3


def test_the_requester_cannot_approve_their_own_request(db, users, received_task):
    expired(db, received_task.routine)
    with db.transaction() as session:
        # a quality manager who is also the custodian: give the QM the custodian's role for this
        from app.people import service

        service.grant_role_as_system(session, session.merge(users["quality_manager"]), "custodian", "test")
    with db.transaction() as session:
        request = disposal.request_disposal(session, users["quality_manager"], [received_task.routine.sample_no],
                                            "留样期满")
        session.expunge(request)
    refused(db, lambda s: disposal.decide_disposal(s, users["quality_manager"], by_code(s, request), approve=True),
            "disposal_self_approval")
    with db.reading() as session:
        assert session.get(DisposalRequest, request.id).state == DisposalState.REQUESTED.value
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager_2"], by_code(session, request), approve=True)


def test_a_refusal_needs_a_reason_and_frees_the_samples(db, users, received_task):
    sample = received_task.routine
    expired(db, sample)
    request = requested(db, users, [sample])
    refused(db, lambda s: disposal.decide_disposal(s, users["quality_manager"], by_code(s, request), approve=False),
            "field_required")
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager"], by_code(session, request), approve=False,
                                 note="客户要求延长留样")
    assert "disposal.refused" in audit_actions(db)
    refused(db, lambda s: disposal.record_disposal(s, users["custodian"], by_code(s, request), method="x"),
            "disposal_not_approved", CustodyEvent)
    refused(db, lambda s: disposal.decide_disposal(s, users["quality_manager_2"], by_code(s, request), approve=True),
            "disposal_already_decided")
    assert sample_row(db, sample.id).state != SampleState.DISPOSED.value
    requested(db, users, [sample])  # refused requests are closed: the sample may be proposed again


def test_samples_within_retention_or_not_reported_are_refused(db, users, received_task):
    dt = received_task
    report(db, dt.routine, utcnow() - timedelta(days=2))
    refused(db, lambda s: disposal.request_disposal(s, users["custodian"], [dt.routine.sample_no], "满"),
            "disposal_within_retention", DisposalRequest, DisposalRequestSample)
    other = next(s for s in dt.samples if s.id != dt.routine.id)
    refused(db, lambda s: disposal.request_disposal(s, users["custodian"], [other.sample_no], "满"),
            "disposal_not_reported", DisposalRequest, DisposalRequestSample)


def test_a_rejected_sample_without_report_may_be_disposed(db, users, received_task):
    sample = received_task.routine
    with db.transaction() as session:
        session.get(Sample, sample.id).state = SampleState.REJECTED.value
    request = requested(db, users, [sample], "拒收样品")
    assert request.state == DisposalState.REQUESTED.value


def test_a_sample_in_an_open_request_or_disposed_is_refused(db, users, received_task):
    sample = received_task.routine
    expired(db, sample)
    request = requested(db, users, [sample])
    error = refused(db, lambda s: disposal.request_disposal(s, users["custodian"], [sample.sample_no], "再来"),
                    "disposal_sample_in_open_request", DisposalRequest)
    assert request.code in error.message("en")
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager"], by_code(session, request), approve=True)
        disposal.record_disposal(session, users["custodian"], by_code(session, request), method="焚烧")
    refused(db, lambda s: disposal.request_disposal(s, users["custodian"], [sample.sample_no], "再来"),
            "disposal_sample_disposed", DisposalRequest)


def test_recording_before_approval_or_dated_before_it_is_refused(db, users, received_task):
    sample = received_task.routine
    expired(db, sample)
    request = requested(db, users, [sample])
    refused(db, lambda s: disposal.record_disposal(s, users["custodian"], by_code(s, request), method="焚烧"),
            "disposal_not_approved", CustodyEvent)
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager"], by_code(session, request), approve=True)
    refused(db, lambda s: disposal.record_disposal(s, users["custodian"], by_code(s, request), method="焚烧",
                                                   at=utcnow() - timedelta(hours=1)),
            "disposal_before_approval", CustodyEvent)
    refused(db, lambda s: disposal.record_disposal(s, users["custodian"], by_code(s, request), method=""),
            "field_required", CustodyEvent)
    assert sample_row(db, sample.id).state != SampleState.DISPOSED.value


def test_a_retention_extended_after_approval_stops_the_disposal(db, users, received_task):
    sample = received_task.routine
    expired(db, sample)
    request = requested(db, users, [sample])
    with db.transaction() as session:
        disposal.decide_disposal(session, users["quality_manager"], by_code(session, request), approve=True)
    report(db, sample, utcnow() - timedelta(minutes=1))  # an amended report was issued meanwhile
    refused(db, lambda s: disposal.record_disposal(s, users["custodian"], by_code(s, request), method="焚烧"),
            "disposal_within_retention", CustodyEvent)


@pytest.mark.parametrize(("numbers", "code"), [([], "disposal_no_samples"), (["NO-SUCH-1"], "sample_not_found")])
def test_bad_sample_lists_are_refused(db, users, numbers, code):
    refused(db, lambda s: disposal.request_disposal(s, users["custodian"], numbers, "满"), code, DisposalRequest)


def test_who_may_do_what(db, users, received_task):
    expired(db, received_task.routine)
    with pytest.raises(PermissionDenied), db.transaction() as session:
        disposal.request_disposal(session, users["analyst"], [received_task.routine.sample_no], "满")
    request = requested(db, users, [received_task.routine])
    with pytest.raises(PermissionDenied), db.transaction() as session:
        disposal.decide_disposal(session, users["custodian"], by_code(session, request), approve=True)
    with pytest.raises(PermissionDenied), db.transaction() as session:
        disposal.decide_disposal(session, users["inspector"], by_code(session, request), approve=True)


def test_an_unknown_code_is_not_found(db):
    for code in ("DS26-99999", "junk", ""):
        with pytest.raises(Exception) as caught, db.reading() as session:
            disposal.disposal_by_code(session, code)
        assert caught.value.code == "disposal_not_found"


def test_due_for_disposal_lists_expired_and_rejected_samples_not_in_open_requests(db, users, received_task):
    dt = received_task
    first, second, third = dt.samples
    expired(db, first)
    report(db, second, utcnow() - timedelta(days=1))
    with db.transaction() as session:
        session.get(Sample, third.id).state = SampleState.REJECTED.value
    with db.reading() as session:
        due = disposal.due_for_disposal(session, utcnow())
        assert {s.id for s in due.items} == {first.id, third.id}
    requested(db, users, [first])
    with db.reading() as session:
        assert {s.id for s in disposal.due_for_disposal(session, utcnow()).items} == {third.id}
