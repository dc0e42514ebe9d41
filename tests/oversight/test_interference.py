"""The interference log's services (干预留痕, DOMAIN.md §6): filing by any lab role and by no one
else, the visibility matrix, additions only (supplement, acknowledged, reported), edits and
deletes refused and recorded (and refused by the database itself), attachments by SHA-256."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError, InspectorReadOnly, PermissionDenied
from app.core.files import StoredFile
from app.instruments.service import Upload
from app.oversight import interference
from app.oversight.interference import InterferenceInput, RegisterFilter
from app.oversight.models import InterferenceAttachment, InterferenceRecord, InterferenceSupplement, InterferenceTarget
from tests.reports.conftest import make_report

LAB_ROLES = ("sampler", "custodian", "analyst", "checker", "reviewer", "signatory", "quality_manager",
             "technical_manager")
PDF = b"%PDF-1.4\n% a letter from the district office\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00photo"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32
AMR = b"#!AMR\n" + b"\x3c" * 40
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 32
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 20


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def form(**changes) -> InterferenceInput:
    values = dict(interferer_name="张某", interferer_position="副局长", interferer_organisation="某区政府",
                  channel="phone", request_kind="alter_data", what_was_asked="要求把 WS01 的氨氮结果改低一些",
                  lab_response="refused", occurred_at=utcnow() - timedelta(hours=2), response_detail="当场拒绝",
                  witnesses="李四")
    values.update(changes)
    return InterferenceInput(**values)


def file(db, user, attachments=(), **changes) -> InterferenceRecord:
    with db.transaction() as session:
        record = interference.file_interference(session, user, form(**changes), list(attachments))
        session.expunge(record)
        return record


def events(db, action: str) -> list[AuditEvent]:
    with db.session(write=False) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def count(db, model) -> int:
    with db.session(write=False) as session:
        return session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- filing


@pytest.mark.parametrize("role", LAB_ROLES)
def test_every_lab_role_files_a_record_without_approval(db, users, role):
    record = file(db, users[role])
    assert record.record_no.startswith("GY") and record.filed_by_id == users[role].id
    filed = events(db, "oversight.interference_filed")
    assert len(filed) == 1 and filed[0].entity_id == str(record.id)
    assert filed[0].after_data["what_was_asked"] == "要求把 WS01 的氨氮结果改低一些"
    with db.session(write=False) as session:
        assert interference.current_state(session, record) == "filed"


@pytest.mark.parametrize(("role", "error"), [("inspector", InspectorReadOnly), ("admin", PermissionDenied)])
def test_inspector_and_admin_cannot_file(db, users, role, error):
    with pytest.raises(error) as refused:
        file(db, users[role])
    assert refused.value.code == ("inspector_read_only" if role == "inspector" else "permission_denied")
    assert count(db, InterferenceRecord) == 0


def test_record_numbers_follow_one_another(db, users):
    first, second = file(db, users["analyst"]), file(db, users["sampler"])
    assert first.record_no[:5] == second.record_no[:5]
    assert int(second.record_no[-5:]) == int(first.record_no[-5:]) + 1


@pytest.mark.parametrize(("changes", "code"), [
    ({"interferer_name": "  "}, "interference_field_required"),
    ({"what_was_asked": ""}, "interference_field_required"),
    ({"occurred_at": None}, "interference_field_required"),
    ({"occurred_at": utcnow() + timedelta(days=1)}, "interference_in_future"),
    ({"channel": "telepathy"}, "interference_bad_choice"),
    ({"request_kind": ""}, "interference_field_required"),
    ({"lab_response": "ignored"}, "interference_bad_choice"),
    ({"interferer_name": "x" * 101}, "interference_field_too_long"),
    ({"interferer_username": "nobody-here"}, "interference_unknown_user"),
    ({"site_codes": ("NOPE",) * 101}, "interference_too_many_targets"),
])
def test_bad_filings_are_refused_and_nothing_is_written(db, users, changes, code):
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], **changes)
    assert refused.value.code == code and refused.value.http_status == 422
    assert count(db, InterferenceRecord) == 0
    assert events(db, "oversight.interference_filed") == []


def test_affected_numbers_resolve_to_ids_and_unknown_ones_are_listed(db, users, lab):
    site = lab.site("WS01")
    (sample,) = lab.samples(1, site=site)
    report = make_report(db, users["analyst"], [sample])
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], site_codes=("WS01", "WS99"), sample_nos=(sample.sample_no, "XX-1"),
             report_nos=(report.report_no,))
    assert refused.value.code == "interference_unknown_targets"
    assert "WS99" in str(refused.value) and "XX-1" in str(refused.value) and "WS01," not in str(refused.value)
    record = file(db, users["analyst"], site_codes=("WS01",), sample_nos=(sample.sample_no,),
                  report_nos=(report.report_no,))
    with db.session(write=False) as session:
        targets = session.scalars(select(InterferenceTarget).where(InterferenceTarget.record_id == record.id)
                                  .order_by(InterferenceTarget.id)).all()
    assert [(t.target_type, t.target_id, t.label) for t in targets] == [
        ("site", site.id, "WS01"), ("sample", sample.id, sample.sample_no), ("report", report.id, report.report_no)]
    assert events(db, "oversight.interference_filed")[-1].after_data["targets"][0]["label"] == "WS01"


def test_split_numbers_takes_commas_spaces_and_chinese_separators():
    assert interference.split_numbers("WS01, WS02 WS03，WS04、WS01\nWS05") == ("WS01", "WS02", "WS03", "WS04", "WS05")


# ---------------------------------------------------------------- attachments


def test_attachments_are_stored_by_sha256_and_named_in_the_audit_event(db, users):
    uploads = [Upload(io.BytesIO(PDF), "letter.pdf"), Upload(io.BytesIO(JPEG), "photo.jpg"),
               Upload(io.BytesIO(WAV), "call.wav"), Upload(io.BytesIO(AMR), "call.amr"),
               Upload(io.BytesIO(M4A), "call.m4a"), Upload(io.BytesIO(MP3), "call.mp3"),
               Upload(io.BytesIO(docx_bytes()), "note.docx")]
    record = file(db, users["analyst"], uploads)
    with db.session(write=False) as session:
        rows = session.execute(select(InterferenceAttachment, StoredFile)
                               .join(StoredFile, StoredFile.id == InterferenceAttachment.file_id)
                               .where(InterferenceAttachment.record_id == record.id)
                               .order_by(InterferenceAttachment.id)).all()
        store = interference.attachment_store(session)
        assert [f.media_type for _, f in rows] == ["application/pdf", "image/jpeg", "audio/wav", "audio/amr",
                                                   "audio/mp4", "audio/mpeg", interference.DOCX]
        assert rows[0][0].sha256 == hashlib.sha256(PDF).hexdigest() == rows[0][1].sha256
        assert store.read(rows[0][0].sha256) == PDF and all(store.verify(a.sha256) for a, _ in rows)
    filed = events(db, "oversight.interference_filed")[-1].after_data
    assert [a["sha256"] for a in filed["attachments"]] == [a.sha256 for a, _ in rows]
    assert events(db, "file.stored") == []  # one event: the filing, with its hashes


@pytest.mark.parametrize(("content", "name", "code"), [
    (b"MZ\x90\x00 an executable", "letter.pdf", "interference_attachment_type"),
    (b"<html><script>alert(1)</script>", "photo.jpg", "interference_attachment_type"),
    (b"PK\x03\x04 not really a zip", "note.docx", "interference_attachment_type"),
    (b"", "empty.pdf", "interference_attachment_empty"),
])
def test_attachments_of_other_types_are_refused_clearly(db, users, content, name, code):
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], [Upload(io.BytesIO(content), name)])
    assert refused.value.code == code and refused.value.http_status == 422
    assert name in str(refused.value)
    assert count(db, InterferenceRecord) == 0 and count(db, InterferenceAttachment) == 0


def test_a_zip_that_is_not_a_word_document_is_refused(db, users):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.exe", "MZ")
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], [Upload(io.BytesIO(buffer.getvalue()), "note.docx")])
    assert refused.value.code == "interference_attachment_type"


def test_oversize_attachments_are_refused(db, users, monkeypatch):
    monkeypatch.setattr(interference, "attachment_limit", lambda session: 1024)
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], [Upload(io.BytesIO(PDF + b"0" * 2000), "big.pdf")])
    assert refused.value.code == "payload_too_large" and refused.value.http_status == 413
    assert count(db, InterferenceRecord) == 0


def test_too_many_attachments_are_refused(db, users):
    uploads = [Upload(io.BytesIO(PDF), f"{i}.pdf") for i in range(interference.MAX_ATTACHMENTS + 1)]
    with pytest.raises(DomainError) as refused:
        file(db, users["analyst"], uploads)
    assert refused.value.code == "interference_too_many_attachments"


# ---------------------------------------------------------------- who sees what


def visible(db, user, record: InterferenceRecord) -> bool:
    with db.session(write=False) as session:
        try:
            interference.get_record(session, user, record.record_no)
            seen = True
        except DomainError as error:
            assert error.code == "interference_not_found" and error.http_status == 404
            seen = False
        listed = [r.record.record_no for r in interference.list_records(session, user).items]
        assert (record.record_no in listed) == seen, "the list and the record disagree"
        return seen


def test_visibility_matrix(db, users):
    plain = file(db, users["analyst"])
    restricted = file(db, users["analyst"], restricted=True)
    by_qm = file(db, users["sampler"], interferer_username="quality-manager")
    for record in (plain, restricted):
        assert visible(db, users["analyst"], record)  # the filer, restricted or not
        assert visible(db, users["quality_manager"], record)
        assert visible(db, users["inspector"], record)
        for other in ("sampler", "checker", "reviewer", "signatory", "technical_manager", "custodian"):
            assert not visible(db, users[other], record)
    # the lab head: every record the filer did not restrict (§6), theirs too when restricted
    assert visible(db, users["lab_head"], plain) and not visible(db, users["lab_head"], restricted)
    own_restricted = file(db, users["lab_head"], restricted=True)
    assert visible(db, users["lab_head"], own_restricted)
    assert not visible(db, users["lab_head"], file(db, users["analyst"], interferer_username="lab-head"))
    # a record naming a lab user: never visible to them, even as quality manager
    assert not visible(db, users["quality_manager"], by_qm)
    assert visible(db, users["quality_manager_2"], by_qm)
    assert visible(db, users["inspector"], by_qm)
    assert visible(db, users["sampler"], by_qm)


def test_the_interferer_does_not_see_even_a_record_they_were_told_of(db, users):
    record = file(db, users["analyst"], interferer_username="Technical-Manager")
    assert record.interferer_user_id == users["technical_manager"].id
    assert not visible(db, users["technical_manager"], record)


def test_the_admin_reads_nothing_of_the_log(db, users):
    file(db, users["analyst"])
    with db.session(write=False) as session, pytest.raises(PermissionDenied):
        interference.list_records(session, users["admin"])


# ---------------------------------------------------------------- additions only


def with_record(db, user, record_no, act):
    with db.transaction() as session:
        record = interference.get_record(session, user, record_no)
        return act(session, record)


def test_filer_supplements_the_qm_acknowledges_and_reports(db, users):
    record = file(db, users["analyst"])
    with_record(db, users["analyst"], record.record_no,
                lambda s, r: interference.add_supplement(s, users["analyst"], r, "他又打来电话",
                                                         [Upload(io.BytesIO(PDF), "second-letter.pdf")]))
    with_record(db, users["quality_manager"], record.record_no,
                lambda s, r: interference.acknowledge(s, users["quality_manager"], r, "已阅"))
    with db.session(write=False) as session:
        assert interference.current_state(session, record) == "acknowledged"
    today = utcnow().date()
    with_record(db, users["quality_manager"], record.record_no,
                lambda s, r: interference.record_reported(s, users["quality_manager"], r, "市纪委监委", today,
                                                          "书面报告"))
    with db.session(write=False) as session:
        detail = interference.record_detail(session, users["inspector"], record.record_no)
    assert detail.state == "reported"
    assert [s.kind for s, _ in detail.supplements] == ["supplement", "acknowledged", "reported"]
    assert detail.reported[0].reported_to == "市纪委监委" and detail.reported[0].reported_on == today
    assert detail.attachments[0][0].supplement_id == detail.supplements[0][0].id
    assert [e.after_data["state"] for e in events(db, "oversight.interference_reported")] == ["reported"]
    assert len(events(db, "oversight.interference_supplemented")) == 1
    assert len(events(db, "oversight.interference_acknowledged")) == 1


def test_follow_up_refusals(db, users):
    record = file(db, users["analyst"])
    # an analyst who did not file it does not even see it
    with pytest.raises(DomainError) as refused:
        with_record(db, users["checker"], record.record_no, lambda s, r: None)
    assert refused.value.code == "interference_not_found"
    # the filer cannot acknowledge or report
    with pytest.raises(PermissionDenied):
        with_record(db, users["analyst"], record.record_no,
                    lambda s, r: interference.acknowledge(s, users["analyst"], r))
    # the inspector reads, never writes
    with pytest.raises(InspectorReadOnly):
        with_record(db, users["inspector"], record.record_no,
                    lambda s, r: interference.add_supplement(s, users["inspector"], r, "note"))
    # a supplement needs text; a report needs the authority and the day
    with pytest.raises(DomainError) as refused:
        with_record(db, users["analyst"], record.record_no,
                    lambda s, r: interference.add_supplement(s, users["analyst"], r, "  "))
    assert refused.value.code == "interference_field_required"
    for to, on in (("", utcnow().date()), ("市生态环境局", None)):
        with pytest.raises(DomainError) as refused:
            with_record(db, users["quality_manager"], record.record_no,
                        lambda s, r, to=to, on=on: interference.record_reported(s, users["quality_manager"], r, to, on))
        assert refused.value.code == "interference_field_required"
    with_record(db, users["quality_manager"], record.record_no,
                lambda s, r: interference.acknowledge(s, users["quality_manager"], r))
    with pytest.raises(DomainError) as refused:
        with_record(db, users["quality_manager_2"], record.record_no,
                    lambda s, r: interference.acknowledge(s, users["quality_manager_2"], r))
    assert refused.value.code == "interference_already_acknowledged"
    assert count(db, InterferenceSupplement) == 1


def test_the_interferer_as_quality_manager_cannot_follow_up(db, users):
    record = file(db, users["analyst"], interferer_username="quality-manager")
    with db.transaction() as session:
        row = session.get(InterferenceRecord, record.id)
        with pytest.raises(DomainError) as refused:
            interference.acknowledge(session, users["quality_manager"], row)
    assert refused.value.code == "interference_not_found"
    with_record(db, users["quality_manager_2"], record.record_no,
                lambda s, r: interference.acknowledge(s, users["quality_manager_2"], r))


def test_worklist_counts_records_to_acknowledge(db, users):
    first = file(db, users["analyst"])
    file(db, users["sampler"])
    file(db, users["sampler"], interferer_username="quality-manager")
    with db.session(write=False) as session:
        assert interference.to_acknowledge(session, users["quality_manager"]) == 2
        assert interference.to_acknowledge(session, users["quality_manager_2"]) == 3
        assert interference.to_acknowledge(session, users["analyst"]) == 0
        assert interference.to_acknowledge(session, users["inspector"]) == 0
    with_record(db, users["quality_manager"], first.record_no,
                lambda s, r: interference.acknowledge(s, users["quality_manager"], r))
    with db.session(write=False) as session:
        assert interference.to_acknowledge(session, users["quality_manager"]) == 1


def test_register_filters_by_state_channel_and_period(db, users):
    old = file(db, users["analyst"], channel="letter", occurred_at=utcnow() - timedelta(days=40))
    new = file(db, users["analyst"], channel="phone")
    with_record(db, users["quality_manager"], new.record_no,
                lambda s, r: interference.acknowledge(s, users["quality_manager"], r))
    today = utcnow().date()

    def numbers(**filters):
        with db.session(write=False) as session:
            page = interference.list_records(session, users["quality_manager"], RegisterFilter(**filters))
            return [row.record.record_no for row in page.items]

    assert numbers() == [new.record_no, old.record_no]
    assert numbers(state="filed") == [old.record_no]
    assert numbers(state="acknowledged") == [new.record_no]
    assert numbers(channel="letter") == [old.record_no]
    assert numbers(date_from=today - timedelta(days=10)) == [new.record_no]
    assert numbers(date_to=today - timedelta(days=30)) == [old.record_no]
    with pytest.raises(DomainError):
        numbers(state="deleted")


# ---------------------------------------------------------------- no edit, no delete


@pytest.mark.parametrize("attempt", ["edit", "delete"])
@pytest.mark.parametrize("role", ["analyst", "quality_manager", "inspector", "admin"])
def test_edit_and_delete_are_refused_and_the_attempt_is_recorded(db, users, attempt, role):
    record = file(db, users["analyst"])
    from app.core.db import committing

    with db.session(write=True) as session, pytest.raises(DomainError) as refused, committing(session):
        interference.refuse_change(session, users[role], record.record_no, attempt)
    expected = ("interference_immutable", 409) if role != "admin" else ("interference_not_found", 404)
    assert (refused.value.code, refused.value.http_status) == expected
    kept = events(db, f"oversight.interference_{attempt}_refused")
    assert len(kept) == 1 and kept[0].actor_id == users[role].id and kept[0].entity_id == str(record.id)
    with db.session(write=False) as session:
        row = session.get(InterferenceRecord, record.id)
        assert row.interferer_name == "张某" and row.what_was_asked == record.what_was_asked


@pytest.mark.parametrize("statement", [
    "UPDATE interference_record SET interferer_name = 'nobody'",
    "DELETE FROM interference_record",
    "UPDATE interference_supplement SET text = 'x'",
    "DELETE FROM interference_attachment",
    "DELETE FROM interference_target",
])
def test_the_database_refuses_update_and_delete(db, users, lab, statement):
    lab.site("WS01")
    record = file(db, users["analyst"], [Upload(io.BytesIO(PDF), "a.pdf")], site_codes=("WS01",))
    with_record(db, users["analyst"], record.record_no,
                lambda s, r: interference.add_supplement(s, users["analyst"], r, "more"))
    with pytest.raises(DBAPIError) as refused, db.transaction() as session:
        session.execute(text(statement))
    assert "append-only" in str(refused.value)
    with db.session(write=False) as session:
        assert session.get(InterferenceRecord, record.id).interferer_name == "张某"
