"""Background jobs with progress (rendering and signing reports, scans): one small interface.

`enqueue(session, kind, entity_type, entity_id, payload)` records a `Job` row in the caller's
transaction; once it commits the job runs: in-process on a worker thread in the embedded default
(SQLite), on procrastinate (a queue in the same PostgreSQL database) consumed by `lims worker`
in production. The row carries state and progress so a page can poll it; the work itself is a
registered handler that receives the job id and reports progress through `progress()`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (Index("ix_job_entity", "entity_type", "entity_id"), Index("ix_job_state", "state"))

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)  # the handler's name, e.g. "report.issue"
    entity_type: str = Field(max_length=64)
    entity_id: str = Field(max_length=64)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    state: str = Field(default=JobState.QUEUED.value, max_length=8)
    progress: int = Field(default=0)  # 0..100
    step: str = Field(default="", max_length=60)  # what it is doing now (a message key)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    attempts: int = Field(default=0)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("app_user.id"),
                                                                     nullable=True))
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
