"""Reports and their review: accreditation (CMA) scope, signatory scopes, reports with the
samples they cover, the three review levels, issue (PDF + digital signature), amendments,
withdrawal and retention (issue 9; DOMAIN.md §2, §3 Report, §5).

A report's content is computed, not stored: its header plus the current result revision of every
parameter of every sample it covers (app/reports/content.py). Each review act is an electronic
signature over the SHA-256 of that content; when a result is revised, the content hash moves and
every signature over the old hash shows as broken, so review restarts at the first level whose
signature no longer holds. At issue the content hash, the rendered PDF (stored by SHA-256, never
regenerated) and the audit head are fixed on the report row. An issued report is never changed:
an amendment is a new report that supersedes it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


def _text(default: str = "") -> Column:
    return Column(Text, nullable=False, server_default=default)


# ---------------------------------------------------------------- accreditation (CMA) scope


class AccreditationCertificate(SQLModel, table=True):
    """The lab's 资质认定 (CMA) certificate: its 12-digit number and validity. A re-assessment
    or a scope extension is a new certificate row; the scope in force on a day is the union of
    the items of the certificates valid that day."""

    __tablename__ = "accreditation_certificate"

    id: int | None = Field(default=None, primary_key=True)
    certificate_no: str = Field(max_length=12, index=True)
    issued_by: str = Field(max_length=200)  # the 市场监督管理局 that issued it
    valid_from: date = Field(sa_column=Column(Date, nullable=False))
    valid_to: date = Field(sa_column=Column(Date, nullable=False))
    note: str = Field(default="", max_length=500)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class AccreditationItem(SQLModel, table=True):
    """One line of the scope: parameter × method (code with year) × matrix. Append-only; an item
    leaves the scope with its certificate."""

    __tablename__ = "accreditation_item"
    __table_args__ = (
        UniqueConstraint("certificate_id", "parameter", "method_code", "matrix"),
        Index("ix_accreditation_item_lookup", "parameter", "method_code", "matrix"),
    )

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(sa_column=_fk("accreditation_certificate.id", index=True))
    parameter: str = Field(max_length=60)
    method_code: str = Field(max_length=60)  # HJ 535-2009: the year names the version
    matrix: str = Field(max_length=16)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- signatory scope


class SignatoryScope(SQLModel, table=True):
    """授权签字人 scope: a person may approve (签发) reports for a matrix (field), a method, or one
    parameter of it, from `valid_from` to `valid_to`. Proposed by the technical manager, in force
    once a different person (the quality manager) approves it; ended, never deleted."""

    __tablename__ = "signatory_scope"
    __table_args__ = (Index("ix_signatory_scope_user", "user_id", "valid_from"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=_fk("app_user.id"))
    matrix: str = Field(default="", max_length=16)  # "" = any matrix
    method_id: int | None = Field(default=None, sa_column=_fk("analysis_method.id", nullable=True))  # None = any
    parameter: str = Field(default="", max_length=60)  # "" = every parameter of the method / matrix
    valid_from: date = Field(sa_column=Column(Date, nullable=False))
    valid_to: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    basis: str = Field(default="", max_length=300)  # e.g. the CMA assessment that fixed it
    proposed_at: datetime = Field(sa_type=UTCDateTime)
    proposed_by_id: int = Field(sa_column=_fk("app_user.id"))
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    end_reason: str = Field(default="", max_length=500)


# ---------------------------------------------------------------- reports


class ReportState(StrEnum):
    """DOMAIN.md §3 Report, with the waits between the levels named after what is awaited."""

    DRAFT = "draft"  # being prepared (编制), or returned by a level with a reason
    SUBMITTED = "submitted"  # signed by the preparer (`compiled`); awaits 校核
    CHECKED = "checked"  # awaits 审核
    REVIEWED = "reviewed"  # awaits 签发
    APPROVED = "approved"  # 签发 signed; rendering and digital signing run (or failed: retry)
    ISSUED = "issued"  # the signed PDF is stored; never changed again
    SUPERSEDED = "superseded"  # an amendment replaced it
    WITHDRAWN = "withdrawn"  # the quality manager withdrew it, with a reason


class ReportLanguage(StrEnum):
    ZH = "zh"  # Chinese (bilingual labels): the CMA mark may be printed
    EN = "en"  # English only: never the CMA mark (DOMAIN.md §5)


class Report(SQLModel, table=True):
    __tablename__ = "report"
    __table_args__ = (Index("ix_report_state_created", "state", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    report_no: str = Field(max_length=40, unique=True)  # BG2026-0012, an amendment BG2026-0012-A1
    base_no: str = Field(max_length=40, index=True)  # the original's number
    revision: int = Field(default=0)  # 0 = original; n = amendment An
    amends_id: int | None = Field(default=None, sa_column=_fk("report.id", nullable=True))
    amendment_reason: str = Field(default="", sa_column=_text(""))  # what changed and why
    title: str = Field(max_length=200)
    client_name: str = Field(default="", max_length=200)
    client_contact: str = Field(default="", max_length=200)
    language: str = Field(default=ReportLanguage.ZH.value, max_length=4)
    limit_set_id: int | None = Field(default=None, sa_column=_fk("limit_set.id", nullable=True))
    target_class: str = Field(default="", max_length=20)
    remarks: str = Field(default="", sa_column=_text(""))  # the preparer's notes printed under the results
    state: str = Field(default=ReportState.DRAFT.value, max_length=12)
    prepared_by_id: int = Field(sa_column=_fk("app_user.id", index=True))
    created_at: datetime = Field(sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # rendered for the signatory to read and approve: the approval e-signature binds this PDF's
    # SHA-256 with the content hash; the PAdES-signed file is then `pdf_sha256`
    rendered_pdf_sha256: str = Field(default="", max_length=64)
    rendered_content_sha256: str = Field(default="", max_length=64)
    rendered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rendered_for_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # fixed at issue
    issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    content_sha256: str = Field(default="", max_length=64)  # what the signatory approved
    pdf_sha256: str = Field(default="", max_length=64, index=True)  # the signed PDF in the file store
    verify_token: str = Field(max_length=40, unique=True)  # /verify/{token}, printed as a QR code
    audit_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    audit_hash: str = Field(default="", max_length=64)
    cma_mark: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    retain_until: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    issue_attempts: int = Field(default=0)
    issue_error: str = Field(default="", sa_column=_text(""))  # the last failed rendering or signing
    # after issue
    superseded_by_id: int | None = Field(default=None, sa_column=_fk("report.id", nullable=True))
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    withdrawal_reason: str = Field(default="", sa_column=_text(""))


class ReportSample(SQLModel, table=True):
    """A sample a report covers, in the order it is printed."""

    __tablename__ = "report_sample"
    __table_args__ = (UniqueConstraint("report_id", "sample_id"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(sa_column=_fk("report.id", index=True))
    sample_id: int = Field(sa_column=_fk("sample.id", index=True))
    position: int


class ReviewLevel(StrEnum):
    """The three levels (三级审核) in order; `compile` is the preparer's own signature."""

    COMPILE = "compile"  # 编制, meaning `compiled`
    CHECK = "check"  # 校核, meaning `checked`
    REVIEW = "review"  # 审核, meaning `reviewed`
    APPROVE = "approve"  # 签发, meaning `approved`


class ReviewOutcome(StrEnum):
    SIGNED = "signed"
    RETURNED = "returned"


class ReviewAct(SQLModel, table=True):
    """One act on a report at one level: signed (with its e-signature over the content hash) or
    returned with a reason. Append-only: the report's history of review."""

    __tablename__ = "review_act"
    __table_args__ = (Index("ix_review_act_report", "report_id", "acted_at"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(sa_column=_fk("report.id"))
    level: str = Field(max_length=8)
    outcome: str = Field(max_length=8)
    content_sha256: str = Field(max_length=64)  # the content as the actor saw it
    signature_id: int | None = Field(default=None, sa_column=_fk("e_signature.id", nullable=True))
    reason: str = Field(default="", sa_column=_text(""))  # why it was returned; a comment when signed
    checklist: str = Field(default="{}", sa_column=_text("{}"))  # canonical JSON: the checklist shown
    acted_at: datetime = Field(sa_type=UTCDateTime)
    actor_id: int = Field(sa_column=_fk("app_user.id", index=True))


APPEND_ONLY_TABLES = ("accreditation_item", "review_act")
