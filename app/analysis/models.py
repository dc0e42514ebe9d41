"""Analysis and quality control: methods, qualifications, batches, calibration curves, results,
QC evaluations, control-chart baselines, instrument-import profiles and evaluation standards
(issue 8; DOMAIN.md §3, §4.2–§4.6).

Methods are versioned: a `MethodVersion` carries everything a result depends on (parameters with
unit, MDL, reporting rule; QC requirements; allowed instruments) and a result keeps the version
it used. Results are append-only revisions per batch position × parameter: a correction is a new
row with a reason pointing to the one it replaces, and the current value is the highest revision.
Every intermediate value of the calculation is kept with the result (canonical JSON). QC
evaluations are recomputed on submission as a new evaluation run; a failure needs a corrective
action (a rerun position or a justified qualifier) before the results it affects can be
submitted. Evaluation standards (GB 3838-2002, GB 3095-2012, permit limits) are data.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import DecimalText, UTCDateTime


def _fk(target: str, *, nullable: bool = False, index: bool = False) -> Column:
    return Column(Integer, ForeignKey(target), nullable=nullable, index=index)


def _text(default: str = "") -> Column:
    return Column(Text, nullable=False, server_default=default)


# ---------------------------------------------------------------- methods


class MethodState(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"  # a newer version (or a newer standard) replaces it from valid_to
    WITHDRAWN = "withdrawn"


class CalculationKind(StrEnum):
    """How a raw reading becomes a result (DOMAIN.md §3 Method)."""

    DIRECT = "direct"  # the instrument reads the concentration (pH meter, ICP-MS software)
    CURVE = "curve"  # response → concentration through the batch's calibration curve
    CURVE_BLANK_CORRECTED = "curve_blank_corrected"  # (response − mean blank response) → curve


class BelowMdlStyle(StrEnum):
    """How a value below the MDL is reported (DOMAIN.md §4.3); the raw value is always kept."""

    MDL_L = "mdl_l"  # "0.025L" (HJ/T 91-2002, water)
    ND = "nd"  # "ND" / 未检出 (soil, air)
    LT_MDL = "lt_mdl"  # "<0.025"
    # a direct reading with no detection limit (pH, water temperature, conductivity on a meter):
    # the MDL is 0, no value is "below" it, the report prints "—" in the MDL column
    NONE = "none"


class Method(SQLModel, table=True):
    """A method standard as the lab knows it: the code with its year identifies it (HJ 535-2009);
    its content lives in versions."""

    __tablename__ = "analysis_method"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60, unique=True)  # HJ 535-2009
    name_zh: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    matrix: str = Field(max_length=16)  # water, soil, air... (samples' matrix values)
    state: str = Field(default=MethodState.ACTIVE.value, max_length=12, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class MethodVersion(SQLModel, table=True):
    """One version of a method's configuration, in force from `valid_from` until `valid_to`
    (None: open). Never edited once a result used it; a change is a new version."""

    __tablename__ = "method_version"
    __table_args__ = (UniqueConstraint("method_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    method_id: int = Field(sa_column=_fk("analysis_method.id", index=True))
    version: int
    valid_from: datetime = Field(sa_type=UTCDateTime)
    valid_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    calculation: str = Field(default=CalculationKind.DIRECT.value, max_length=24)
    curve_kinds: str = Field(default='["linear"]', sa_column=_text('["linear"]'))  # JSON: linear, quadratic
    # QC requirements (DOMAIN.md §4.2 defaults; the method standard overrides)
    max_samples_per_batch: int = Field(default=20)  # one QC unit (GJW-03-SSG-005)
    blanks_per_batch: int = Field(default=2)  # HJ 828-2017 §12
    duplicate_rate_pct: int = Field(default=10)  # ≥ 10 %, at least one
    spike_rate_pct: int = Field(default=10)  # 10–20 %
    spike_recovery_low: Decimal = Field(default=Decimal("80"), sa_type=DecimalText)
    spike_recovery_high: Decimal = Field(default=Decimal("120"), sa_type=DecimalText)
    crm_per_batch: int = Field(default=1)
    ccv_every: int = Field(default=20)  # a continuing calibration check every n samples (0: none)
    ccv_tolerance_pct: Decimal = Field(default=Decimal("10"), sa_type=DecimalText)
    curve_r_min: Decimal = Field(default=Decimal("0.999"), sa_type=DecimalText)
    curve_min_levels: int = Field(default=5)  # non-zero levels
    curve_valid_hours: int = Field(default=24)  # a curve serves batches this long after it is made
    # duplicate RD limits as canonical JSON [[level, max_rd_pct], ...] (DOMAIN.md §4.2 fallback)
    duplicate_rd_limits: str = Field(default="[]", sa_column=_text("[]"))
    holding_rule: str = Field(default="", max_length=200)  # text from the standard, shown to analysts
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class MethodParameter(SQLModel, table=True):
    """A parameter a method version measures, with its unit, limits and reporting rule."""

    __tablename__ = "method_parameter"
    __table_args__ = (UniqueConstraint("method_version_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    method_version_id: int = Field(sa_column=_fk("method_version.id", index=True))
    parameter: str = Field(max_length=60, index=True)  # NH3-N, COD, Pb (the preservation table's codes)
    unit: str = Field(max_length=16)  # mg/L, µg/L, mg/kg, µg/m³
    mdl: Decimal = Field(sa_type=DecimalText)  # method detection limit (HJ 168-2020)
    lower_limit: Decimal | None = Field(default=None, sa_type=DecimalText)  # 测定下限; None: 4 × MDL
    upper_limit: Decimal | None = Field(default=None, sa_type=DecimalText)  # top of the working range
    decimals: int | None = Field(default=None)  # reporting: decimal places...
    significant_figures: int | None = Field(default=None)  # ...or significant figures
    below_mdl: str = Field(default=BelowMdlStyle.MDL_L.value, max_length=8)
    organic: bool = Field(default=False)  # CCV default tolerance 20 % instead of 10 %


class MethodInstrument(SQLModel, table=True):
    """An instrument a method version allows."""

    __tablename__ = "method_instrument"
    __table_args__ = (UniqueConstraint("method_version_id", "instrument_id"),)

    id: int | None = Field(default=None, primary_key=True)
    method_version_id: int = Field(sa_column=_fk("method_version.id", index=True))
    instrument_id: int = Field(sa_column=_fk("instrument.id", index=True))


class MdlStudy(SQLModel, table=True):
    """A method validation: the lab's MDL per HJ 168-2020 from n ≥ 7 replicates, computed
    (MDL = t(n−1, 0.99) × S), never typed. Append-only."""

    __tablename__ = "mdl_study"

    id: int | None = Field(default=None, primary_key=True)
    method_version_id: int = Field(sa_column=_fk("method_version.id", index=True))
    parameter: str = Field(max_length=60)
    replicates: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list of Decimal strings
    unit: str = Field(max_length=16)
    n: int
    mean: Decimal = Field(sa_type=DecimalText)
    std_dev: Decimal = Field(sa_type=DecimalText)
    t_value: Decimal = Field(sa_type=DecimalText)
    mdl: Decimal = Field(sa_type=DecimalText)
    lower_limit: Decimal = Field(sa_type=DecimalText)  # 4 × MDL
    meets_method: bool  # the lab's MDL ≤ the method's
    performed_at: datetime = Field(sa_type=UTCDateTime)
    performed_by_id: int = Field(sa_column=_fk("app_user.id"))
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))
    note: str = Field(default="", max_length=500)


class Qualification(SQLModel, table=True):
    """上岗证: a person may analyse (and check) by a method from `valid_from` to `valid_to`.
    Revoked, never deleted."""

    __tablename__ = "qualification"
    __table_args__ = (Index("ix_qualification_user_method", "user_id", "method_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_column=_fk("app_user.id"))
    method_id: int = Field(sa_column=_fk("analysis_method.id", index=True))
    certificate_no: str = Field(max_length=60)
    issued_by: str = Field(max_length=200)  # the examining body
    valid_from: date = Field(sa_column=Column(Date, nullable=False))
    valid_to: date = Field(sa_column=Column(Date, nullable=False))
    attachment_id: int | None = Field(default=None, sa_column=_fk("stored_file.id", nullable=True))
    granted_at: datetime = Field(sa_type=UTCDateTime)
    granted_by_id: int = Field(sa_column=_fk("app_user.id"))
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by_id: int | None = Field(default=None, sa_column=_fk("app_user.id", nullable=True))
    revoke_reason: str = Field(default="", max_length=500)


# ---------------------------------------------------------------- calibration curves


class CurveKind(StrEnum):
    LINEAR = "linear"
    QUADRATIC = "quadratic"


class CalibrationCurve(SQLModel, table=True):
    """A calibration curve made from standard solutions on an instrument. The fit is computed
    from the points (Decimal) and kept; accepted when the method's r and levels are met."""

    __tablename__ = "calibration_curve"
    __table_args__ = (Index("ix_calibration_curve_lookup", "method_version_id", "parameter", "instrument_id"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # CC26-00001
    method_version_id: int = Field(sa_column=_fk("method_version.id"))
    parameter: str = Field(max_length=60)
    instrument_id: int = Field(sa_column=_fk("instrument.id"))
    kind: str = Field(default=CurveKind.LINEAR.value, max_length=12)
    concentration_unit: str = Field(max_length=16)
    response_unit: str = Field(default="", max_length=16)  # Abs, counts, µS·min
    # y = a + b·x (+ c·x²): response from concentration
    intercept: Decimal = Field(sa_type=DecimalText)
    slope: Decimal = Field(sa_type=DecimalText)
    quadratic: Decimal | None = Field(default=None, sa_type=DecimalText)
    r: Decimal = Field(sa_type=DecimalText)  # correlation coefficient (linear) or √R² (quadratic)
    range_low: Decimal = Field(sa_type=DecimalText)  # lowest non-zero standard
    range_high: Decimal = Field(sa_type=DecimalText)  # top standard: above it the sample is diluted
    accepted: bool
    rejection: str = Field(default="", max_length=300)  # why the curve failed its acceptance
    measured_at: datetime = Field(sa_type=UTCDateTime)
    valid_until: datetime = Field(sa_type=UTCDateTime)
    made_by_id: int = Field(sa_column=_fk("app_user.id"))
    recorded_at: datetime = Field(sa_type=UTCDateTime)


class CalibrationPoint(SQLModel, table=True):
    """A standard of the curve: concentration from its solution, response read. Append-only."""

    __tablename__ = "calibration_point"
    __table_args__ = (UniqueConstraint("curve_id", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    curve_id: int = Field(sa_column=_fk("calibration_curve.id", index=True))
    level: int  # 0 = the zero standard (reagent blank of the curve)
    concentration: Decimal = Field(sa_type=DecimalText)
    response: Decimal = Field(sa_type=DecimalText)
    solution_barcode: str = Field(default="", max_length=20)
    material_use_id: int | None = Field(default=None, sa_column=_fk("rm_use.id", nullable=True))


# ---------------------------------------------------------------- batches


class BatchState(StrEnum):
    """DOMAIN.md §3 Batch."""

    OPEN = "open"  # positions being laid out
    RUNNING = "running"  # analysis started (the holding clocks stop here)
    IMPORTED = "imported"  # results came from an instrument file
    QC_EVALUATED = "qc_evaluated"  # every QC passed or has a corrective action
    QC_FAILED = "qc_failed"  # a QC failure waits for its corrective action
    SUBMITTED = "submitted"  # signed by the analyst (meaning `analysed`); goes to review
    CLOSED = "closed"


class PositionRole(StrEnum):
    SAMPLE = "sample"
    METHOD_BLANK = "method_blank"  # 实验室空白
    CALIBRATION_BLANK = "calibration_blank"
    DUPLICATE = "duplicate"  # 平行双样: a second analysis of `of_position`
    SPIKE = "spike"  # 加标: `of_position` with a known amount added
    CRM = "crm"  # 有证标准物质 / QC check sample with a certified value ± U
    CCV = "ccv"  # continuing calibration verification (mid-level standard)


class AnalysisBatch(SQLModel, table=True):
    __tablename__ = "analysis_batch"
    __table_args__ = (Index("ix_analysis_batch_state_created", "state", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_no: str = Field(max_length=20, unique=True)  # AB26-00001
    method_version_id: int = Field(sa_column=_fk("method_version.id", index=True))
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    instrument_id: int | None = Field(default=None, sa_column=_fk("instrument.id", nullable=True, index=True))
    state: str = Field(default=BatchState.OPEN.value, max_length=16)
    analyst_id: int = Field(sa_column=_fk("app_user.id", index=True))
    created_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # analysis start
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signature_id: int | None = Field(default=None, sa_column=_fk("e_signature.id", nullable=True))
    qc_passed: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    note: str = Field(default="", max_length=500)


class BatchCurve(SQLModel, table=True):
    """The calibration curve a batch uses for a parameter."""

    __tablename__ = "batch_curve"
    __table_args__ = (UniqueConstraint("batch_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("analysis_batch.id", index=True))
    parameter: str = Field(max_length=60)
    curve_id: int = Field(sa_column=_fk("calibration_curve.id", index=True))
    attached_at: datetime = Field(sa_type=UTCDateTime)
    attached_by_id: int = Field(sa_column=_fk("app_user.id"))


class BatchPosition(SQLModel, table=True):
    """A place in the instrument's run: a sample, or QC the method requires. Append-only; a
    rerun is a new position pointing to the one it repeats."""

    __tablename__ = "batch_position"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("analysis_batch.id", index=True))
    position: int
    role: str = Field(max_length=20)
    sample_id: int | None = Field(default=None, sa_column=_fk("sample.id", nullable=True, index=True))
    container_id: int | None = Field(default=None, sa_column=_fk("sample_container.id", nullable=True))
    of_position_id: int | None = Field(default=None, sa_column=_fk("batch_position.id", nullable=True))
    rerun_of_id: int | None = Field(default=None, sa_column=_fk("batch_position.id", nullable=True))
    label: str = Field(default="", max_length=60)  # what the instrument's sequence calls it: BLK1, S-003D
    # CRM, CCV and spike: the standard used (through the reference-materials gate)
    material_use_id: int | None = Field(default=None, sa_column=_fk("rm_use.id", nullable=True))
    material_barcode: str = Field(default="", max_length=20)
    expected_value: Decimal | None = Field(default=None, sa_type=DecimalText)  # certified or nominal
    expected_uncertainty: Decimal | None = Field(default=None, sa_type=DecimalText)  # U (k=2)
    spike_added: Decimal | None = Field(default=None, sa_type=DecimalText)  # concentration added
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- results


class ResultSource(StrEnum):
    MANUAL = "manual"  # typed in the grid
    IMPORT = "import"  # from an instrument file
    API = "api"  # posted by an instrument with its token


class AnalysisResult(SQLModel, table=True):
    """A result revision of one position × parameter. Append-only: a correction is a new
    revision with a reason, and the first entry stays."""

    __tablename__ = "analysis_result"
    __table_args__ = (
        UniqueConstraint("position_id", "parameter", "revision"),
        Index("ix_analysis_result_batch", "batch_id", "parameter"),
        Index("ix_analysis_result_sample", "sample_id", "parameter"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("analysis_batch.id"))
    position_id: int = Field(sa_column=_fk("batch_position.id"))
    sample_id: int | None = Field(default=None, sa_column=_fk("sample.id", nullable=True))
    parameter: str = Field(max_length=60)
    revision: int = Field(default=1)
    supersedes_id: int | None = Field(default=None, sa_column=_fk("analysis_result.id", nullable=True))
    reason: str = Field(default="", max_length=500)  # required from revision 2
    method_version_id: int = Field(sa_column=_fk("method_version.id"))
    instrument_id: int | None = Field(default=None, sa_column=_fk("instrument.id", nullable=True, index=True))
    curve_id: int | None = Field(default=None, sa_column=_fk("calibration_curve.id", nullable=True))
    reading: Decimal = Field(sa_type=DecimalText)  # what the instrument gave (response or concentration)
    reading_unit: str = Field(default="", max_length=16)
    dilution_factor: Decimal = Field(default=Decimal("1"), sa_type=DecimalText)
    value: Decimal = Field(sa_type=DecimalText)  # full precision, in `unit`; rounded only when reported
    unit: str = Field(max_length=16)
    intermediates: str = Field(default="{}", sa_column=_text("{}"))  # canonical JSON of every step
    below_mdl: bool = Field(default=False)
    qualifier: str = Field(default="", max_length=20)  # a QC qualifier that travels to the report
    measured_at: datetime = Field(sa_type=UTCDateTime, index=True)
    source: str = Field(default=ResultSource.MANUAL.value, max_length=8)
    import_id: int | None = Field(default=None, sa_column=_fk("result_import.id", nullable=True, index=True))
    client_id: str = Field(default="", max_length=64)  # idempotency of instrument posts
    entered_at: datetime = Field(sa_type=UTCDateTime)
    entered_by_id: int = Field(sa_column=_fk("app_user.id", index=True))


class NotAnalysed(SQLModel, table=True):
    """A requested parameter of a sample that will have no result, with the reason (DOMAIN.md §3:
    results_entered needs a result or a "not analysed" reason for each). Append-only."""

    __tablename__ = "not_analysed"
    __table_args__ = (UniqueConstraint("sample_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(sa_column=_fk("sample.id"))
    parameter: str = Field(max_length=60)
    reason: str = Field(max_length=500)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- QC


class QcKind(StrEnum):
    BLANK = "blank"
    DUPLICATE = "duplicate"
    SPIKE = "spike"
    CRM = "crm"
    CCV = "ccv"
    CURVE = "curve"


class QcEvaluation(SQLModel, table=True):
    """One QC check of a batch in one evaluation run, with the numbers it was judged on.
    Append-only: a re-evaluation is a new run."""

    __tablename__ = "qc_evaluation"
    __table_args__ = (
        Index("ix_qc_evaluation_batch_run", "batch_id", "run"),
        Index("ix_qc_evaluation_chart", "method_id", "parameter", "kind", "evaluated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("analysis_batch.id"))
    run: int
    method_id: int = Field(sa_column=_fk("analysis_method.id"))  # for control charts across versions
    parameter: str = Field(max_length=60)
    kind: str = Field(max_length=12)
    position_id: int | None = Field(default=None, sa_column=_fk("batch_position.id", nullable=True))
    curve_id: int | None = Field(default=None, sa_column=_fk("calibration_curve.id", nullable=True))
    value: Decimal | None = Field(default=None, sa_type=DecimalText)  # RD %, recovery %, deviation %, result, r
    limit_low: Decimal | None = Field(default=None, sa_type=DecimalText)
    limit_high: Decimal | None = Field(default=None, sa_type=DecimalText)
    passed: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))  # None: not evaluated
    detail: str = Field(default="{}", sa_column=_text("{}"))  # canonical JSON: inputs and rule
    evaluated_at: datetime = Field(sa_type=UTCDateTime)


class CorrectiveKind(StrEnum):
    RERUN = "rerun"  # a new batch position repeats the failed one
    QUALIFIER = "qualifier"  # a justified qualifier flag that travels to the report


class CorrectiveAction(SQLModel, table=True):
    """What the analyst did about a failed QC check. Append-only."""

    __tablename__ = "corrective_action"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(sa_column=_fk("analysis_batch.id", index=True))
    evaluation_id: int = Field(sa_column=_fk("qc_evaluation.id", index=True))
    kind: str = Field(max_length=12)
    qualifier: str = Field(default="", max_length=20)  # e.g. "Q-SPK": spike recovery outside limits
    justification: str = Field(max_length=1000)
    rerun_position_id: int | None = Field(default=None, sa_column=_fk("batch_position.id", nullable=True))
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(sa_column=_fk("app_user.id"))


class ControlBaseline(SQLModel, table=True):
    """The centre and standard deviation of a Shewhart chart, from a chosen baseline of at least
    20 points; a new baseline replaces the older one from `set_at` (both kept)."""

    __tablename__ = "control_baseline"
    __table_args__ = (Index("ix_control_baseline_chart", "method_id", "parameter", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    method_id: int = Field(sa_column=_fk("analysis_method.id"))
    parameter: str = Field(max_length=60)
    kind: str = Field(max_length=12)  # QcKind: what is charted (spike recovery, CRM result, duplicate RD...)
    centre: Decimal = Field(sa_type=DecimalText)
    std_dev: Decimal = Field(sa_type=DecimalText)
    n: int
    first_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime)
    evaluation_ids: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON list
    set_at: datetime = Field(sa_type=UTCDateTime)
    set_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- instrument data import


class ImportProfile(SQLModel, table=True):
    """How an instrument's export maps to samples, parameters and units. Built-in profiles have
    a `builtin` key and their parser in code; generic ones keep their column mapping as JSON."""

    __tablename__ = "import_profile"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=200)
    builtin: str = Field(default="", max_length=40)  # key of a parser in code; "" = generic mapping
    file_format: str = Field(default="csv", max_length=8)  # csv, xlsx
    mapping: str = Field(default="{}", sa_column=_text("{}"))  # canonical JSON (generic profiles)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class ResultImport(SQLModel, table=True):
    """One import of an instrument file into a batch. The raw file is in the file store by its
    SHA-256; the rows that matched nothing are kept here, listed, never dropped."""

    __tablename__ = "result_import"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)  # IM26-00001
    batch_id: int = Field(sa_column=_fk("analysis_batch.id", index=True))
    profile_id: int = Field(sa_column=_fk("import_profile.id"))
    file_id: int = Field(sa_column=_fk("stored_file.id"))
    sha256: str = Field(max_length=64, index=True)
    filename: str = Field(max_length=255)
    rows_total: int
    rows_imported: int
    unmatched: str = Field(default="[]", sa_column=_text("[]"))  # canonical JSON: row, reason, cells
    imported_at: datetime = Field(sa_type=UTCDateTime)
    imported_by_id: int = Field(sa_column=_fk("app_user.id"))


# ---------------------------------------------------------------- evaluation against standards


class LimitSet(SQLModel, table=True):
    """A versioned set of limits: GB 3838-2002 classes, GB 3095-2012 grades, a permit."""

    __tablename__ = "limit_set"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=60)  # GB 3838-2002
    version: int = Field(default=1)
    kind: str = Field(max_length=16)  # surface_water, ambient_air, discharge
    name_zh: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    classes: str = Field(sa_column=Column(Text, nullable=False))  # JSON list, best first: I..V, 1..2
    worse_than_all: str = Field(default="", max_length=20)  # "劣V"; "" for a pass/fail limit
    valid_from: date = Field(sa_column=Column(Date, nullable=False))
    valid_to: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    source: str = Field(default="", max_length=200)  # "GB 3838-2002 Table 1"
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int = Field(sa_column=_fk("app_user.id"))


class LimitValue(SQLModel, table=True):
    """The limit of one class for one parameter: an upper bound, a lower bound (DO) or a range
    (pH), optionally for one water body (TP: river vs lake/reservoir) or averaging period."""

    __tablename__ = "limit_value"
    __table_args__ = (Index("ix_limit_value_set_parameter", "limit_set_id", "parameter"),)

    id: int | None = Field(default=None, primary_key=True)
    limit_set_id: int = Field(sa_column=_fk("limit_set.id"))
    parameter: str = Field(max_length=60)
    class_label: str = Field(max_length=20)
    low: Decimal | None = Field(default=None, sa_type=DecimalText)
    high: Decimal | None = Field(default=None, sa_type=DecimalText)
    unit: str = Field(max_length=16)
    water_body: str = Field(default="", max_length=12)  # "" any; river; lake (lakes and reservoirs)
    averaging: str = Field(default="", max_length=12)  # "" or 1h, 24h, 8h, annual


class SiteLimitSet(SQLModel, table=True):
    """Which limit set evaluates a site's results (and the class it should meet)."""

    __tablename__ = "site_limit_set"
    __table_args__ = (UniqueConstraint("site_id", "limit_set_code"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(sa_column=_fk("site.id", index=True))
    limit_set_code: str = Field(max_length=60)
    target_class: str = Field(default="", max_length=20)
    assigned_at: datetime = Field(sa_type=UTCDateTime)
    assigned_by_id: int = Field(sa_column=_fk("app_user.id"))


APPEND_ONLY_TABLES = (
    "mdl_study", "calibration_point", "batch_position", "analysis_result", "not_analysed", "qc_evaluation",
    "corrective_action", "limit_value", "control_baseline",
)
