"""The content-addressed file store: certificates, photos, raw instrument files, PDFs.

Bytes live under `<data dir>/files/sha256/ab/cdef...`, named by their SHA-256, written once and
never overwritten; a `stored_file` row records each upload (name, media type, who, when) and is
itself append-only. A file is checked by recomputing its hash (`verify_stored`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core import audit
from app.core.db import UTCDateTime, utcnow
from app.core.errors import InvalidInput, PayloadTooLarge

CHUNK = 1024 * 1024

# Leading bytes of the types the lab stores; the name or the browser's claim is not trusted.
MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}


class UnsupportedFileType(InvalidInput):
    code = "unsupported_file_type"
    message_zh = "文件类型不符：需要 {expected}。"
    message_en = "Wrong file type: {expected} expected."


class EmptyFile(InvalidInput):
    code = "empty_file"
    message_zh = "文件为空。"
    message_en = "The file is empty."


class StoredFile(SQLModel, table=True):
    """One upload of some content; the content itself is shared by hash."""

    __tablename__ = "stored_file"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    media_type: str = Field(max_length=100)
    filename: str = Field(sa_column=Column(String(255), nullable=False))
    uploaded_at: datetime = Field(sa_type=UTCDateTime)
    uploaded_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=True)
    )


def sniff_media_type(head: bytes) -> str | None:
    for media_type, signatures in MAGIC.items():
        if any(head.startswith(signature) for signature in signatures):
            return media_type
    return None


class FileStore:
    """Bytes by SHA-256 under `root`; `put` streams, hashes and refuses what is too large."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput(detail="not a SHA-256")
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def put(self, stream: BinaryIO, max_bytes: int, prefix: bytes = b"") -> tuple[str, int]:
        """Store `prefix` + the stream; returns (sha256, size). Existing content is kept."""
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        handle, temp_name = tempfile.mkstemp(dir=incoming)
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in itertools.chain((prefix,), iter(lambda: stream.read(CHUNK), b"")):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(limit_mb=max_bytes // (1024 * 1024))
                    digest.update(chunk)
                    out.write(chunk)
            sha256 = digest.hexdigest()
            target = self.path(sha256)
            if target.exists():
                temp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                temp.chmod(0o444)
                os.replace(temp, target)
            return sha256, size
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def verify(self, sha256: str) -> bool:
        """True when the bytes on disk still hash to their name."""
        path = self.path(sha256)
        if not path.exists():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest() == sha256


def store_upload(
    session: Session,
    actor: audit.Actor | None,
    store: FileStore,
    stream: BinaryIO,
    filename: str,
    *,
    allowed_types: Iterable[str],
    max_bytes: int,
) -> StoredFile:
    """Keep an uploaded file whose content is one of `allowed_types` (by its bytes)."""
    allowed = tuple(allowed_types)
    head = stream.read(16)  # the type is decided before a byte is kept
    if not head:
        raise EmptyFile()
    media_type = sniff_media_type(head)
    if media_type not in allowed:
        raise UnsupportedFileType(expected=", ".join(allowed))
    sha256, size = store.put(stream, max_bytes, prefix=head)
    row = StoredFile(
        sha256=sha256, size=size, media_type=media_type,
        filename=Path(filename or "upload").name[:255] or "upload",
        uploaded_at=utcnow(), uploaded_by_id=actor.id if actor else None,
    )
    session.add(row)
    session.flush()
    audit.append(session, actor, "file.stored", "stored_file", row.id, None,
                 {"sha256": sha256, "size": size, "media_type": media_type,
                  "filename": row.filename})
    return row


def file_store(data_path: Path) -> FileStore:
    return FileStore(data_path / "files")
