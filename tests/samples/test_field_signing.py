"""Signing the field record (meaning `sampled`): refused with the list of what is missing,
refused on a wrong password (recorded, nothing else changed); on success the sample is collected
at the sampling time and bound to the site version in force then, and the task completes when
all its samples are signed. After signing a change is a revision with a reason; the record
shows the signed original and the revision; a re-signature covers the revision; a signature
whose content no longer matches shows as broken."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.core.audit import AuditEvent
from app.core.errors import DomainError, RecordedRefusal
from app.core.signatures import ElectronicSignature
from app.samples.models import FIELD_QC_KINDS, Sample, SampleKind
from app.sites.models import SamplingTask, SiteVersion, TaskStatus
from tests.conftest import make_user
from tests.core.chain_tools import unprotected
from tests.samples.field_fixtures import *  # noqa: F403
from tests.samples.field_fixtures import (
    complete_record,
    entry,
    field_test,
    jpeg_bytes,
    north_of_site,
    record,
    reload,
    sampling,
    scan,
    sign,
    upload,
    view,
)


def refused_sign(db, actor, sample, code: str, password: str | None = None) -> DomainError:
    before = reload(db, Sample, sample.id)
    with db.reading() as session:
        audit_before = session.scalar(select(func.count()).select_from(AuditEvent))
        signatures_before = session.scalar(select(func.count()).select_from(ElectronicSignature))
    with pytest.raises(DomainError) as caught:
        sign(db, actor, sample, *([password] if password else []))
    assert caught.value.code == code, caught.value
    after = reload(db, Sample, sample.id)
    assert (after.state, after.signed_revision, after.collected_at) == \
        (before.state, before.signed_revision, before.collected_at)
    with db.reading() as session:
        signatures = session.scalar(select(func.count()).select_from(ElectronicSignature))
        audit_after = session.scalar(select(func.count()).select_from(AuditEvent))
    assert signatures == signatures_before
    if not isinstance(caught.value, RecordedRefusal):
        assert audit_after == audit_before
    return caught.value


def test_an_empty_record_is_refused_with_everything_it_lacks(db, dispatched_task):
    dt = dispatched_task
    error = refused_sign(db, dt.sampler, dt.routine, "field_record_incomplete")
    english = error.message("en")
    assert "the sampling time" in english and "containers not scanned" in english
    assert "field tests DO, pH, WT" in english and "at least one photo" in english
    assert all(b in english for b in dt.barcodes())
    assert "采样时间" in error.message("zh") and "现场照片" in error.message("zh")


@pytest.mark.parametrize("left_out", ["gps_status", "containers", "field_tests", "photo", "justification"])
def test_each_missing_item_alone_refuses_signing(db, dispatched_task, store, field_instrument, left_out):
    dt = dispatched_task
    sample, sampler = dt.routine, dt.sampler
    if left_out == "gps_status":
        record(db, sampler, entry(sample, "sampling"))  # a time without any GPS status
    else:
        sampling(db, sampler, sample, metres=500 if left_out == "justification" else 20)
    tests = [("WT", "18.4", "°C"), ("pH", "7.62", "pH"), ("DO", "8.15", "mg/L")]
    for parameter, value, unit in tests[:2] if left_out == "field_tests" else tests:
        field_test(db, sampler, sample, parameter, value, unit)
    barcodes = dt.barcodes(sample)
    for barcode in barcodes[:-1] if left_out == "containers" else barcodes:
        scan(db, sampler, sample, barcode)
    if left_out != "photo":
        upload(db, sampler, store, sample, jpeg_bytes())
    error = refused_sign(db, sampler, sample, "field_record_incomplete")
    assert [m.code for m in view(db, sample).missing] == [left_out]
    if left_out == "containers":
        assert barcodes[-1] in error.message("en") and barcodes[0] not in error.message("en")
    if left_out == "field_tests":
        assert "field tests DO" in error.message("en")


def test_field_qc_samples_need_no_photo_and_no_gps(db, dispatched_task, store, field_instrument):
    dt = dispatched_task
    blank = dt.of_kind(SampleKind.FIELD_BLANK)[0]
    record(db, dt.sampler, entry(blank, "sampling"))  # no GPS status at all
    for barcode in dt.barcodes(blank):
        scan(db, dt.sampler, blank, barcode)
    assert view(db, blank).missing == []
    sign(db, dt.sampler, blank)
    assert reload(db, Sample, blank.id).state == "collected"


def test_a_wrong_password_is_refused_and_recorded_and_changes_nothing(db, dispatched_task, store, field_instrument):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    error = refused_sign(db, dt.sampler, dt.routine, "wrong_signing_password", password="not-my-password")
    assert isinstance(error, RecordedRefusal)
    assert reload(db, Sample, dt.routine.id).state == "registered"


def test_signing_collects_the_sample_at_the_sampling_time_and_the_task_completes_with_its_last_sample(
        db, dispatched_task, store, field_instrument):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    sampled_at = view(db, dt.routine).sampling_time
    signature = sign(db, dt.sampler, dt.routine)
    assert signature.meaning == "sampled" and signature.signer_id == dt.sampler.id
    sample = reload(db, Sample, dt.routine.id)
    assert sample.state == "collected" and sample.collected_at == sampled_at and sample.signed_revision == 1
    with db.reading() as session:
        version_id = session.scalars(select(SiteVersion.id).where(SiteVersion.site_id == dt.site.id)).one()
    assert sample.site_version_id == version_id
    shown = view(db, dt.routine)
    assert [s.intact for s in shown.signatures] == [True] and shown.revisions[0].signature.intact
    assert not shown.can_sign and shown.pending_revision is None
    assert reload(db, SamplingTask, dt.task.id).status == TaskStatus.IN_FIELD.value  # two samples to go
    for sample in dt.samples:
        if sample.kind in {k.value for k in FIELD_QC_KINDS}:
            complete_record(db, dt, sample, store)
            sign(db, dt.sampler, sample)
    task = reload(db, SamplingTask, dt.task.id)
    assert task.status == TaskStatus.COMPLETED.value and task.completed_at is not None
    with db.reading() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.in_(
            ("signature.sampled", "sample.collected", "task.completed")))))
    assert actions.count("signature.sampled") == 3 and actions.count("task.completed") == 1


def test_after_signing_a_change_is_a_revision_with_a_reason_and_the_record_shows_both(
        db, dispatched_task, store, field_instrument):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    first_time = view(db, dt.routine).sampling_time
    sign(db, dt.sampler, dt.routine)
    refused_sign(db, dt.sampler, dt.routine, "nothing_new_to_sign")
    with pytest.raises(DomainError) as caught:
        field_test(db, dt.sampler, dt.routine, "pH", "7.58", "pH")
    assert caught.value.code == "reason_required_after_signing"
    corrected_time = first_time - timedelta(minutes=5)
    lat, lon = north_of_site(20)
    record(db, dt.sampler, entry(dt.routine, "sampling", at=corrected_time, gps_status="ok", latitude=lat,
                                 longitude=lon, accuracy_m=5, reason="手表慢了 5 分钟，按现场照片时间更正"))
    revised = field_test(db, dt.sampler, dt.routine, "pH", "7.58", "pH", reason="复测")
    assert revised.entry.revision == 2
    shown = view(db, dt.routine)
    original, revision = shown.revisions
    assert original.signature.intact and revision.signature is None and shown.can_sign
    assert len(original.entries) == 3 + 3 + 1 + 0 and len(original.photos) == 1  # sampling, tests, scans
    assert [e.entry.kind for e in revision.entries] == ["sampling", "field_test"]
    assert revision.reasons == ["复测", "手表慢了 5 分钟，按现场照片时间更正"]
    assert shown.sampling_time == corrected_time
    assert {t.parameter: str(t.value) for t in shown.field_tests}["pH"] == "7.58"

    sign(db, dt.sampler, dt.routine)
    sample = reload(db, Sample, dt.routine.id)
    assert sample.signed_revision == 2 and sample.collected_at == corrected_time
    shown = view(db, dt.routine)
    assert [s.intact for s in shown.signatures] == [True, True]
    assert [r.signature.intact for r in shown.revisions] == [True, True] and len(shown.revisions) == 2
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "field_record.revised")) == 1


def test_a_signature_whose_content_changed_shows_as_broken(db, dispatched_task, store, field_instrument):
    """Someone with database access rewrites a signed pH reading: the signature shows broken."""
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    sign(db, dt.sampler, dt.routine)
    assert not view(db, dt.routine).broken_signatures
    with unprotected(db, "field_entry") as conn:
        conn.execute(text("UPDATE field_entry SET value = '7.00' WHERE parameter = 'pH' AND sample_id = :id"),
                     {"id": dt.routine.id})
    shown = view(db, dt.routine)
    assert [s.broken for s in shown.signatures] == [True] and shown.broken_signatures


def test_only_the_sampler_signs(db, dispatched_task, store, field_instrument, users):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    other = make_user(db, "sampler-2", "sampler")
    refused_sign(db, other, dt.routine, "not_your_sample")
    refused_sign(db, users["inspector"], dt.routine, "inspector_read_only")


def test_the_record_is_read_in_a_bounded_number_of_queries(db, dispatched_task, store, field_instrument,
                                                           count_queries):
    dt = dispatched_task
    complete_record(db, dt, dt.routine, store)
    sign(db, dt.sampler, dt.routine)
    record(db, dt.sampler, entry(dt.routine, "observation", weather="rain", reason="补记天气"))
    upload(db, dt.sampler, store, dt.routine, jpeg_bytes(color=(5, 5, 5)), reason="补拍")
    sign(db, dt.sampler, dt.routine)
    from app.samples import field

    with db.reading() as session:
        sample = session.get(Sample, dt.routine.id)
        with count_queries() as queries:
            shown = field.field_record(session, sample)
        assert len(shown.entries) == 8 and len(shown.photos) == 2 and len(shown.signatures) == 2
    # task, site, entries (with who, instrument, barcode), containers, photos, signatures,
    # requested field tests, the site version: none of them grows with the record
    assert queries.count <= 8, queries.statements
