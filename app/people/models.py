"""People: the laboratory, its users, their role grants and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class Laboratory(SQLModel, table=True):
    """The lab this installation serves; names and CMA number print on every report."""

    __tablename__ = "laboratory"

    id: int | None = Field(default=None, primary_key=True)
    name_zh: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    address_zh: str = Field(default="", max_length=300)
    address_en: str = Field(default="", max_length=300)
    cma_certificate_no: str = Field(default="", max_length=12)
    phone: str = Field(default="", max_length=50)


class User(SQLModel, table=True):
    """A person who acts in the system. Deactivated, never deleted (lifetime responsibility)."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name_zh: str = Field(max_length=100)
    display_name_en: str = Field(default="", max_length=100)
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    language: str = Field(default="zh_CN", max_length=8)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    session_epoch: int = Field(default=0)
    created_at: datetime = Field(sa_type=UTCDateTime)
    deactivated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def printed_name(self) -> str:
        """The name as it is printed beside a signature: 张三 (Zhang San)."""
        if self.display_name_en and self.display_name_en != self.display_name_zh:
            return f"{self.display_name_zh} ({self.display_name_en})"
        return self.display_name_zh


class RoleGrant(SQLModel, table=True):
    """A role held by a user for a period. Two people: admin proposes, quality manager approves."""

    __tablename__ = "role_grant"
    __table_args__ = (Index("ix_role_grant_user_status", "user_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False))
    role: str = Field(max_length=32)
    status: str = Field(default="proposed", max_length=16, index=True)
    valid_from: datetime = Field(sa_type=UTCDateTime)
    valid_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    proposed_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=True)
    )
    proposed_at: datetime = Field(sa_type=UTCDateTime)
    decided_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=True)
    )
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str = Field(default="", sa_column=Column(String(500), nullable=False, server_default=""))


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API or an instrument. Only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=False, index=True)
    )
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=True)
    )
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("app_user.id"), nullable=True)
    )
