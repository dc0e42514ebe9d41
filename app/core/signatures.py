"""Electronic signatures bound to the hash of what was signed (DESIGN.md rule 6).

Signing asks for the password again. The row keeps the signer, the printed name at the time,
the meaning, the UTC time and the SHA-256 of the canonical content. Wherever a signature is
shown, its status is recomputed against the content as it is now: a mismatch shows as broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from app.core import audit
from app.core.canonical import content_hash
from app.core.db import UTCDateTime, utcnow
from app.core.errors import InvalidInput


class SignatureMeaning(StrEnum):
    SAMPLED = "sampled"
    RECEIVED = "received"
    PREPARED = "prepared"
    ANALYSED = "analysed"
    COMPILED = "compiled"  # 编制: the preparer of a report
    CHECKED = "checked"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    ISSUED = "issued"
    CONFIRMED = "confirmed"
    WITNESSED = "witnessed"
    PERFORMED = "performed"


class ElectronicSignature(SQLModel, table=True):
    __tablename__ = "e_signature"
    __table_args__ = (Index("ix_e_signature_entity", "entity_type", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    signer_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    printed_name: str = Field(sa_column=Column(String(220), nullable=False))
    meaning: str = Field(max_length=32)
    signed_at: datetime = Field(sa_type=UTCDateTime)
    entity_type: str = Field(max_length=64)
    entity_id: str = Field(max_length=64)
    content_hash: str = Field(max_length=64)


@dataclass(frozen=True)
class SignatureView:
    """A signature as displayed: who, when, what it means, and whether it still holds."""

    signature: ElectronicSignature
    intact: bool

    @property
    def broken(self) -> bool:
        return not self.intact


def sign(
    session: Session,
    signer: Any,
    password: str,
    meaning: SignatureMeaning | str,
    entity_type: str,
    entity_id: Any,
    content: Any,
) -> ElectronicSignature:
    """Sign `content` as `signer` after re-checking the password (a wrong one is audited)."""
    from app.people.service import confirm_password

    try:
        meaning = SignatureMeaning(meaning)
    except ValueError:
        raise InvalidInput(detail=f"signature meaning {meaning!r}") from None
    confirm_password(session, signer, password, purpose="signature")
    signature = ElectronicSignature(
        signer_id=signer.id,
        printed_name=signer.printed_name,
        meaning=meaning.value,
        signed_at=utcnow(),
        entity_type=entity_type,
        entity_id=str(entity_id),
        content_hash=content_hash(content),
    )
    session.add(signature)
    session.flush()
    audit.append(
        session, signer, f"signature.{meaning.value}", entity_type, entity_id, None,
        {"signature_id": signature.id, "content_hash": signature.content_hash,
         "printed_name": signature.printed_name},
    )
    return signature


def signatures_for(session: Session, entity_type: str, entity_id: Any) -> list[ElectronicSignature]:
    return list(
        session.scalars(
            select(ElectronicSignature)
            .where(
                ElectronicSignature.entity_type == entity_type,
                ElectronicSignature.entity_id == str(entity_id),
            )
            .order_by(ElectronicSignature.signed_at)
        )
    )


def check(signature: ElectronicSignature, current_content: Any) -> SignatureView:
    """Recompute the hash of what the signature claims to cover, as it is now."""
    return SignatureView(signature, content_hash(current_content) == signature.content_hash)
