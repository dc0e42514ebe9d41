"""Oversight records of the audit trail itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class AuditReview(SQLModel, table=True):
    """A quality manager's signed review of the trail up to one event (Part 11 style review).

    The signature covers (seq, head_hash, outcome); if the chain is later rewritten the hash at
    that seq changes and the signature shows as broken.
    """

    __tablename__ = "audit_review"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(max_length=64)
    chain_ok: bool
    events: int = Field(sa_column=Column(BigInteger, nullable=False))
    note: str = Field(default="", sa_column=Column(String(1000), nullable=False))
    reviewed_at: datetime = Field(sa_type=UTCDateTime)
    reviewer_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    signature_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("e_signature.id"), nullable=True)
    )

    def signed_content(self, head_hash_now: str | None) -> dict[str, object]:
        """What the signature binds, with the hash the chain holds at `seq` today."""
        return {
            "seq": self.seq,
            "head_hash": head_hash_now,
            "chain_ok": self.chain_ok,
            "events": self.events,
            "note": self.note,
        }
