"""The content-addressed file store: bytes by SHA-256, written once, type decided by content."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import func, select, text

from app.core.audit import AuditEvent
from app.core.errors import PayloadTooLarge
from app.core.files import EmptyFile, StoredFile, UnsupportedFileType, file_store, store_upload

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def upload(db, settings, content: bytes, name="certificate.pdf", allowed=("application/pdf",),
           max_bytes=20 * 1024 * 1024) -> StoredFile:
    store = file_store(settings.data_path)
    with db.transaction() as session:
        row = store_upload(session, None, store, io.BytesIO(content), name,
                           allowed_types=allowed, max_bytes=max_bytes)
        session.expunge(row)
    return row


def stored_paths(settings) -> list:
    root = settings.data_path / "files" / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def counts(db) -> tuple[int, int]:
    with db.reading() as session:
        return (session.scalar(select(func.count()).select_from(StoredFile)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def test_a_pdf_is_stored_under_its_sha256_and_recorded(db, settings):
    row = upload(db, settings, PDF, name="../../etc/GBW cert.pdf")
    sha = hashlib.sha256(PDF).hexdigest()
    assert (row.sha256, row.size, row.media_type) == (sha, len(PDF), "application/pdf")
    assert row.filename == "GBW cert.pdf"  # no directory parts from the client
    path = settings.data_path / "files" / "sha256" / sha[:2] / sha[2:]
    assert path.read_bytes() == PDF
    assert file_store(settings.data_path).verify(sha)
    with db.reading() as session:
        action, after = session.execute(
            select(AuditEvent.action, AuditEvent.after).order_by(AuditEvent.seq.desc())).first()
    assert action == "file.stored" and sha in after


def test_the_same_content_is_kept_once_and_never_overwritten(db, settings):
    first = upload(db, settings, PDF, name="a.pdf")
    second = upload(db, settings, PDF, name="b.pdf")
    assert first.sha256 == second.sha256 and first.id != second.id
    assert len(stored_paths(settings)) == 1


def test_tampered_bytes_no_longer_verify(db, settings):
    row = upload(db, settings, PDF)
    path = stored_paths(settings)[0]
    path.chmod(0o644)
    path.write_bytes(PDF + b"extra")
    assert not file_store(settings.data_path).verify(row.sha256)


@pytest.mark.parametrize("content, error", [
    (PNG, UnsupportedFileType),                      # a PNG named .pdf
    (b"<html>not a pdf</html>", UnsupportedFileType),
    (b"", EmptyFile),
])
def test_wrong_or_empty_content_is_refused_and_nothing_is_kept(db, settings, content, error):
    before = counts(db)
    with pytest.raises(error):
        upload(db, settings, content, name="certificate.pdf")
    assert counts(db) == before
    assert stored_paths(settings) == []


def test_an_oversized_file_is_refused_and_nothing_is_kept(db, settings):
    before = counts(db)
    with pytest.raises(PayloadTooLarge):
        upload(db, settings, PDF + b"x" * 5000, max_bytes=1024)
    assert counts(db) == before
    assert stored_paths(settings) == []
    assert list((settings.data_path / "files" / "incoming").iterdir()) == []


def test_an_image_is_accepted_where_images_are(db, settings):
    row = upload(db, settings, PNG, name="site.png", allowed=("image/png", "image/jpeg"))
    assert row.media_type == "image/png"


def test_stored_file_rows_are_append_only(db, settings):
    upload(db, settings, PDF)
    with db.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE stored_file SET filename = 'other.pdf'"))
    with db.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("DELETE FROM stored_file"))
