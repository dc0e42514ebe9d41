"""Analysis batches (分析批): samples due for a method, with the QC the method version requires,
laid out in the order the instrument runs them (DOMAIN.md §3 Batch, §4.2).

Building a batch takes the version in force at the time of the act, checks every sample
(in the lab, requesting the parameter with its holding clock running, not already in a batch
that has not been submitted), the instrument (allowed by the version, usable) and the analyst
(上岗证), and writes the positions: the calibration blank, the method blanks, the CRM checks,
then the samples in holding-deadline order, each chosen duplicate and spike right after its
sample, and a CCV every `ccv_every` samples and at the end.

Positions are append-only, so a standard cannot be "set" on a position afterwards. Decision:
the layout is a pure function of the version and the ordered samples (`plan_layout`), so every
position number is fixed when the batch is built. A CRM, CCV or spike position whose standard
was given at build time is written at once; one whose standard was not is left as a numbered
gap that the worksheet shows as "standard missing", and `add_standard` later writes the
position at exactly that number (the run order never changes). `start_batch` refuses while a
gap remains, so a running batch has no gaps and reruns can append after its last position.

More samples than one QC unit holds (`max_samples_per_batch`) are refused with a request to
split them: each batch carries its own QC, and which samples go together is the analyst's call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import String, and_, case, cast, exists, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.analysis import batch_errors as errors
from app.analysis import curves, methods, qualifications
from app.analysis.codes import clean_code
from app.analysis.models import (
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    BatchState,
    CalibrationCurve,
    Method,
    MethodVersion,
    PositionRole,
)
from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import next_code
from app.core.i18n import N_
from app.core.permissions import Permission, ensure
from app.core.web import Page
from app.instruments.models import Instrument
from app.instruments.service import get_instrument
from app.instruments.status import assert_instrument_usable
from app.people.models import User
from app.reference_materials.gate import assert_material_usable
from app.reference_materials.models import MaterialUse
from app.reference_materials.traceability import register_material_use_source
from app.samples import holding, lab_input
from app.samples.lab_models import HoldingClock
from app.samples.models import Sample, SampleParameter, SampleState

CODE_PREFIX = "AB"
CODE_RE = re.compile(r"^AB\d{2}-\d{5,}$")
CONSUMER = "analysis_batch"
# where a sample may come from into an analysis batch; in_analysis too, since a sample analysed
# for NH3-N by one method is still due for COD by another (its clocks say what is left)
ELIGIBLE_STATES = (SampleState.RECEIVED.value, SampleState.CONDITIONALLY_RECEIVED.value,
                   SampleState.IN_STORAGE.value, SampleState.PREPARED.value, SampleState.IN_ANALYSIS.value)
# a batch not yet submitted holds its samples for its parameters
UNSUBMITTED_STATES = (BatchState.OPEN.value, BatchState.RUNNING.value, BatchState.IMPORTED.value,
                      BatchState.QC_EVALUATED.value, BatchState.QC_FAILED.value)
BATCH_STATES = tuple(s.value for s in BatchState)
STANDARD_ROLES = (PositionRole.CRM.value, PositionRole.CCV.value, PositionRole.SPIKE.value)
ROLE_WORDS = {
    PositionRole.SAMPLE.value: ("样品", "sample"), PositionRole.METHOD_BLANK.value: ("实验室空白", "method blank"),
    PositionRole.CALIBRATION_BLANK.value: ("校准空白", "calibration blank"),
    PositionRole.DUPLICATE.value: ("平行样", "duplicate"), PositionRole.SPIKE.value: ("加标样", "spike"),
    PositionRole.CRM.value: ("有证标准物质", "CRM"), PositionRole.CCV.value: ("连续校准核查", "CCV"),
}
MAX_PARAMETERS = 40


# ---------------------------------------------------------------- the layout (pure)


@dataclass(frozen=True)
class Slot:
    """A planned position: its number in the run, its role and label, and for a sample's QC the
    number of the sample's position."""

    position: int
    role: str
    label: str
    sample_index: int | None = None  # index into the ordered samples
    of_position: int | None = None

    @property
    def needs_standard(self) -> bool:
        return self.role in STANDARD_ROLES


def _ceil_pct(rate_pct: int, n: int) -> int:
    return -(-rate_pct * n // 100)


def duplicate_count(version: MethodVersion, n: int) -> int:
    """Lab duplicates: ≥ rate % of the samples, at least one (HJ 828-2017 §12; DOMAIN.md §4.2)."""
    return min(n, max(1, _ceil_pct(version.duplicate_rate_pct, n))) if n else 0


def spike_count(version: MethodVersion, n: int) -> int:
    """Matrix spikes: rate % of the samples, at least one when the method asks for spikes."""
    if n == 0 or version.spike_rate_pct <= 0:
        return 0
    return min(n, max(1, _ceil_pct(version.spike_rate_pct, n)))


def spread(n: int, k: int, *, at_end: bool) -> set[int]:
    """`k` of `n` sample indices spread over the batch: the middle (or the last) of each of k
    equal blocks, so QC covers early and late samples alike, deterministically."""
    if k <= 0:
        return set()
    if at_end:
        return {(i + 1) * n // k - 1 for i in range(k)}
    return {(2 * i + 1) * n // (2 * k) for i in range(k)}


def plan_layout(version: MethodVersion, sample_labels: Sequence[str]) -> list[Slot]:
    """The run order of a batch of these samples (already in holding-deadline order)."""
    n = len(sample_labels)
    slots: list[Slot] = []

    def add(role: PositionRole, label: str, index: int | None = None, of: int | None = None) -> int:
        slots.append(Slot(len(slots) + 1, role.value, label, index, of))
        return len(slots)

    add(PositionRole.CALIBRATION_BLANK, "CB1")
    for i in range(version.blanks_per_batch):
        add(PositionRole.METHOD_BLANK, f"BLK{i + 1}")
    for i in range(version.crm_per_batch):
        add(PositionRole.CRM, f"CRM{i + 1}")
    duplicates = spread(n, duplicate_count(version, n), at_end=False)
    spikes = spread(n, spike_count(version, n), at_end=True)
    every, ccvs = version.ccv_every, 0
    for index, label in enumerate(sample_labels):
        own = add(PositionRole.SAMPLE, label, index)
        if index in duplicates:
            add(PositionRole.DUPLICATE, f"{label}D", index, own)
        if index in spikes:
            add(PositionRole.SPIKE, f"{label}SP", index, own)
        if every > 0 and (index + 1) % every == 0:
            ccvs += 1
            add(PositionRole.CCV, f"CCV{ccvs}")
    if every > 0 and n % every != 0:
        add(PositionRole.CCV, f"CCV{ccvs + 1}")
    return slots


# ---------------------------------------------------------------- input


@dataclass(frozen=True)
class StandardChoice:
    """The standard scanned for CRM, CCV or spike positions, with what it should read (CRM:
    certified value ± U; CCV: nominal concentration) or what it adds (spike: concentration)."""

    barcode: str
    expected_value: Any = None
    expected_uncertainty: Any = None
    spike_added: Any = None


@dataclass(frozen=True)
class _Standard:
    barcode: str
    item: Any
    expected_value: Decimal | None
    expected_uncertainty: Decimal | None
    spike_added: Decimal | None


NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,2})?$")


def parse_number(value: Any, field_zh: str, field_en: str, *, required: bool = False,
                 positive: bool = False) -> Decimal | None:
    """A Decimal from text as analysts type it; a comma, text, NaN/inf or a huge exponent is
    refused naming the field (a comma is a decimal point in some locales and a thousands
    separator in others: never guessed)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise errors.ValueRequired(field_zh=field_zh, field_en=field_en)
        return None
    if isinstance(value, bool | float):
        raise errors.InvalidNumber(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    if isinstance(value, Decimal | int):
        number = Decimal(value)
        if not number.is_finite():
            raise errors.InvalidNumber(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    else:
        text = str(value).strip()
        if "," in text or "，" in text:
            raise errors.CommaDecimal(field_zh=field_zh, field_en=field_en, value=text[:30])
        if not NUMBER_RE.match(text):
            raise errors.InvalidNumber(field_zh=field_zh, field_en=field_en, value=text[:30])
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise errors.InvalidNumber(field_zh=field_zh, field_en=field_en, value=text[:30]) from None
    if abs(number) >= Decimal("1e12"):
        raise errors.InvalidNumber(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    if positive and number <= 0:
        raise errors.NotPositive(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    return number


def _clean_standard(session: Session, role: str, choice: StandardChoice) -> _Standard:
    from app.reference_materials.service import find_item

    role_zh, role_en = ROLE_WORDS[role]
    barcode = (choice.barcode or "").strip().upper()
    if not barcode:
        raise errors.StandardBarcodeRequired(role_zh=role_zh, role_en=role_en)
    item = find_item(session, barcode)
    value = uncertainty = added = None
    if role == PositionRole.CRM.value:
        value = parse_number(choice.expected_value, "标准值", "The certified value", required=True, positive=True)
        uncertainty = parse_number(choice.expected_uncertainty, "不确定度", "The uncertainty")
        if uncertainty is not None and uncertainty < 0:
            raise errors.NotPositive(field_zh="不确定度", field_en="The uncertainty", value=str(uncertainty))
    elif role == PositionRole.CCV.value:
        value = parse_number(choice.expected_value, "核查浓度", "The CCV concentration", required=True, positive=True)
    else:
        added = parse_number(choice.spike_added, "加标浓度", "The concentration added", required=True, positive=True)
    return _Standard(item.barcode, item, value, uncertainty, added)


def clean_parameters(parameters: str | Iterable[str]) -> list[str]:
    parts = re.split(r"[\s,;，；、]+", parameters) if isinstance(parameters, str) else list(parameters)
    cleaned = list(dict.fromkeys(p.strip() for p in parts if isinstance(p, str) and p.strip()))
    if not cleaned:
        raise errors.ParametersRequired()
    if len(cleaned) > MAX_PARAMETERS:
        raise lab_input.FieldTooLong(field_zh="检测项目", field_en="The parameters", limit=MAX_PARAMETERS)
    return cleaned


def clean_sample_nos(sample_nos: str | Iterable[str]) -> list[str]:
    parts = re.split(r"[\s,;，；]+", sample_nos) if isinstance(sample_nos, str) else list(sample_nos)
    cleaned = list(dict.fromkeys(p.strip().upper()[:40] for p in parts if isinstance(p, str) and p.strip()))
    if not cleaned:
        raise errors.SamplesRequired()
    return cleaned


# ---------------------------------------------------------------- lookups


def batch_by_no(session: Session, batch_no: str) -> AnalysisBatch:
    """The batch numbered `batch_no` as typed or scanned; every page and API finds a batch here, so
    a missing one is the same 404 (`batch_not_found`) everywhere."""
    cleaned = clean_code(batch_no)
    batch = session.scalars(select(AnalysisBatch).where(AnalysisBatch.batch_no == cleaned)).first() \
        if cleaned else None
    if batch is None:
        raise errors.BatchNotFound(batch_no=cleaned[:30] or "—")
    return batch


def batch_parameters(batch: AnalysisBatch) -> list[str]:
    """The parameters the batch measures, in the order they were chosen."""
    return list(json.loads(batch.parameters or "[]"))


def locked(session: Session, batch: AnalysisBatch) -> AnalysisBatch:
    """The batch row locked for this transaction, read afresh: acts on one batch (positions,
    result revisions, QC runs) are numbered one writer at a time."""
    return session.execute(select(AnalysisBatch).where(AnalysisBatch.id == batch.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _assert_open(batch: AnalysisBatch, act_zh: str, act_en: str) -> None:
    if batch.state != BatchState.OPEN.value:
        raise errors.BatchNotOpen(batch=batch.batch_no, state=batch.state, act_zh=act_zh, act_en=act_en)


def assert_analyst(session: Session, actor: User, batch: AnalysisBatch) -> None:
    """Acts on a batch are its analyst's: the one who built it runs it to the signature."""
    if batch.analyst_id != actor.id:
        analyst = session.get(User, batch.analyst_id)
        raise errors.NotTheAnalyst(batch=batch.batch_no, analyst=analyst.printed_name if analyst else "—")


def _act_time(session: Session, batch: AnalysisBatch, at: Any, field_zh: str, field_en: str) -> datetime:
    moment = lab_input.act_time(session, at, field_zh, field_en)
    if moment < batch.created_at:
        raise errors.ActBeforeBatch(field_zh=field_zh, field_en=field_en, batch=batch.batch_no,
                                    at=lab_input.local_text(session, moment),
                                    created=lab_input.local_text(session, batch.created_at))
    return moment


def _method_code(session: Session, version: MethodVersion) -> str:
    return session.scalar(select(Method.code).where(Method.id == version.method_id)) or ""


# ---------------------------------------------------------------- samples due


def _batch_measures(parameter: Any) -> Any:
    """The batch's parameters include `parameter` (a column). They are canonical JSON, so
    `"NH3-N"` with its quotes names one element exactly; LIKE wildcards in the code are escaped."""
    escaped = func.replace(func.replace(func.replace(parameter, "\\", "\\\\"), "%", "\\%"), "_", "\\_")
    return AnalysisBatch.parameters.like(literal('%"', String) + escaped + literal('"%', String), escape="\\")


def _held_by_unsubmitted_batch() -> Any:
    """A clock's sample × parameter is in a batch not yet submitted (correlated to the clock)."""
    return exists(
        select(BatchPosition.id).join(AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id).where(
            BatchPosition.sample_id == HoldingClock.sample_id,
            AnalysisBatch.state.in_(UNSUBMITTED_STATES), _batch_measures(HoldingClock.parameter)))


def _due_conditions(parameters: Sequence[str]) -> list[Any]:
    requested = exists(select(SampleParameter.id).where(SampleParameter.sample_id == HoldingClock.sample_id,
                                                       SampleParameter.parameter == HoldingClock.parameter))
    return [HoldingClock.open.is_(True), HoldingClock.parameter.in_(list(parameters)), requested,
            ~_held_by_unsubmitted_batch(), Sample.state.in_(ELIGIBLE_STATES)]


@dataclass
class DueSample:
    """A sample waiting for analysis of some of the parameters, with their running clocks."""

    sample: Sample
    clocks: list[HoldingClock] = field(default_factory=list)

    @property
    def first_deadline(self) -> datetime | None:
        deadlines = [c.deadline_at for c in self.clocks if c.deadline_at is not None]
        return min(deadlines) if deadlines else None

    @property
    def parameters(self) -> list[str]:
        return [c.parameter for c in self.clocks]

    def reading(self, at: datetime) -> holding.ClockReading:
        """The clock that runs out first, read at `at`."""
        first = min(self.clocks, key=lambda c: (c.deadline_at is None, c.deadline_at or at, c.parameter))
        return holding.read(first, at)


def due_samples(session: Session, method_version: MethodVersion | None, parameters: Sequence[str], *,
                limit: int = 50, offset: int = 0) -> list[DueSample]:
    """Samples in the lab waiting for any of `parameters` (requested, clock running, in no
    unsubmitted batch for it), the earliest deadline first (no deadline last): one query, and
    one more when `method_version` is given to restrict `parameters` to those it measures."""
    wanted = list(parameters)
    if method_version is not None:
        wanted = [p for p in wanted if p in methods.parameters_of(session, method_version.id)]
    if not wanted:
        return []
    first = func.min(HoldingClock.deadline_at)
    ranked = (select(HoldingClock.sample_id.label("sample_id"), first.label("first_deadline"),
                     Sample.sample_no.label("sample_no"))
              .join(Sample, Sample.id == HoldingClock.sample_id).where(*_due_conditions(wanted))
              .group_by(HoldingClock.sample_id, Sample.sample_no)
              .order_by(case((first.is_(None), 1), else_=0), first, Sample.sample_no)
              .limit(max(1, min(limit, 500))).offset(max(0, offset)).subquery("ranked"))
    rows = session.execute(
        select(Sample, HoldingClock).join(ranked, ranked.c.sample_id == Sample.id)
        .join(HoldingClock, HoldingClock.sample_id == Sample.id).where(*_due_conditions(wanted))
        .order_by(case((ranked.c.first_deadline.is_(None), 1), else_=0), ranked.c.first_deadline,
                  Sample.sample_no, HoldingClock.deadline_at, HoldingClock.parameter))
    found: dict[int, DueSample] = {}
    for sample, clock in rows:
        found.setdefault(sample.id, DueSample(sample)).clocks.append(clock)
    return list(found.values())


def count_due(session: Session, parameters: Sequence[str]) -> int:
    if not parameters:
        return 0
    return session.scalar(select(func.count(func.distinct(HoldingClock.sample_id)))
                          .join(Sample, Sample.id == HoldingClock.sample_id)
                          .where(*_due_conditions(list(parameters)))) or 0


# ---------------------------------------------------------------- building


@dataclass
class _Eligible:
    sample: Sample
    parameters: list[str]  # the batch's parameters this sample is analysed for
    first_deadline: datetime | None


def _eligible_samples(session: Session, sample_nos: list[str], parameters: list[str]) -> list[_Eligible]:
    """Each named sample checked in the order given; refusals name the first sample that fails.
    Returned in holding-deadline order (no deadline last), then by sample number."""
    samples = {s.sample_no: s for s in session.scalars(select(Sample).where(Sample.sample_no.in_(sample_nos)))}
    for no in sample_nos:
        if no not in samples:
            raise errors.SampleNotFound(sample_no=no)
    ids = [s.id for s in samples.values()]
    requested: dict[int, set[str]] = {}
    for sample_id, parameter in session.execute(select(SampleParameter.sample_id, SampleParameter.parameter).where(
            SampleParameter.sample_id.in_(ids), SampleParameter.parameter.in_(parameters))):
        requested.setdefault(sample_id, set()).add(parameter)
    clocks: dict[tuple[int, str], HoldingClock] = {
        (c.sample_id, c.parameter): c for c in session.scalars(select(HoldingClock).where(
            HoldingClock.sample_id.in_(ids), HoldingClock.parameter.in_(parameters)))}
    held = {(sample_id, parameter): batch_no for sample_id, parameter, batch_no in session.execute(
        select(HoldingClock.sample_id, HoldingClock.parameter, AnalysisBatch.batch_no)
        .join(BatchPosition, BatchPosition.sample_id == HoldingClock.sample_id)
        .join(AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id)
        .where(HoldingClock.sample_id.in_(ids), HoldingClock.parameter.in_(parameters),
               AnalysisBatch.state.in_(UNSUBMITTED_STATES), _batch_measures(HoldingClock.parameter)))}
    chosen = []
    for no in sample_nos:
        sample = samples[no]
        if sample.state not in ELIGIBLE_STATES:
            raise errors.SampleNotInLab(sample_no=no, state=sample.state)
        asked = [p for p in parameters if p in requested.get(sample.id, set())]
        for parameter in asked:
            batch_no = held.get((sample.id, parameter))
            if batch_no is not None:
                raise errors.SampleAlreadyInBatch(sample_no=no, parameter=parameter, batch=batch_no)
        running = [p for p in asked if (sample.id, p) in clocks and clocks[(sample.id, p)].open]
        if not running:
            raise errors.SampleNotDue(sample_no=no, parameters=", ".join(parameters))
        deadlines = [clocks[(sample.id, p)].deadline_at for p in running if clocks[(sample.id, p)].deadline_at]
        chosen.append(_Eligible(sample, running, min(deadlines) if deadlines else None))
    return sorted(chosen, key=lambda e: (e.first_deadline is None, e.first_deadline or e.sample.collected_at,
                                         e.sample.sample_no))


def _use_standard(session: Session, actor: User, batch: AnalysisBatch, standard: _Standard, labels: list[str],
                  at: datetime) -> MaterialUse:
    """One recorded use of the standard for these positions, through the reference-materials
    gate at the time of the act."""
    from app.reference_materials.service import record_use

    return record_use(session, actor, standard.item, at, purpose=f"{batch.batch_no} {' '.join(labels)}"[:300],
                      consumer=(CONSUMER, batch.batch_no))


def _write_positions(session: Session, actor: User, batch: AnalysisBatch, slots: Sequence[Slot],
                     sample_of: Mapping[int, Sample], standard_of: Mapping[int, _Standard],
                     use_of: Mapping[str, MaterialUse], ids_by_position: dict[int, int], at: datetime) -> list[dict]:
    written = []
    for slot in slots:
        standard = standard_of.get(slot.position)
        sample = sample_of.get(slot.sample_index) if slot.sample_index is not None else None
        row = BatchPosition(
            batch_id=batch.id, position=slot.position, role=slot.role, label=slot.label,
            sample_id=sample.id if sample else None,
            of_position_id=ids_by_position.get(slot.of_position) if slot.of_position else None,
            material_use_id=use_of[standard.barcode].id if standard else None,
            material_barcode=standard.barcode if standard else "",
            expected_value=standard.expected_value if standard else None,
            expected_uncertainty=standard.expected_uncertainty if standard else None,
            spike_added=standard.spike_added if standard else None, added_at=at, added_by_id=actor.id)
        session.add(row)
        session.flush()
        ids_by_position[slot.position] = row.id
        written.append({"position": slot.position, "role": slot.role, "label": slot.label,
                        "standard": row.material_barcode or None, "expected_value": row.expected_value,
                        "expected_uncertainty": row.expected_uncertainty, "spike_added": row.spike_added})
    return written


def _standards_for(session: Session, slots: Sequence[Slot],
                   standards: Mapping[str, StandardChoice] | None) -> dict[int, _Standard]:
    """The standard of each slot that needs one and was given (by its label or its role)."""
    given = {k.strip(): v for k, v in (standards or {}).items() if v is not None and (v.barcode or "").strip()}
    for key in given:
        if key in ROLE_WORDS and key not in STANDARD_ROLES:
            raise errors.QcRoleWithoutStandard(role=key)
    cleaned: dict[str, _Standard] = {}
    found: dict[int, _Standard] = {}
    for slot in slots:
        if not slot.needs_standard:
            continue
        key = slot.label if slot.label in given else slot.role if slot.role in given else None
        if key is None:
            continue
        if key not in cleaned:
            cleaned[key] = _clean_standard(session, slot.role, given[key])
        found[slot.position] = cleaned[key]
    return found


def _assert_instrument(session: Session, version: MethodVersion, instrument: Instrument, parameters: list[str],
                       at: datetime) -> None:
    methods.assert_instrument_allowed(session, version, instrument)
    for parameter in parameters:
        assert_instrument_usable(session, instrument, at, parameter)


def build_batch(session: Session, actor: User, method_code: str, parameters: str | Iterable[str],
                sample_nos: str | Iterable[str], instrument_asset_no: str, at: Any = None, *,
                standards: Mapping[str, StandardChoice] | None = None, note: str = "") -> AnalysisBatch:
    """Build a batch of these samples for `parameters` of the method version in force at `at`
    (default now), on the instrument, with the QC the version requires. `standards` (by role
    "crm"/"ccv"/"spike", or by a position's label) fills the positions that need a standard."""
    moment = lab_input.act_time(session, at, "组批时间", "The time the batch was built")
    ensure(session, actor, Permission.ANALYSIS_RECORD, moment)
    method = methods.get_method(session, method_code)
    version = methods.version_in_force(session, method.id, moment)
    measured = methods.parameters_of(session, version.id)
    wanted = clean_parameters(parameters)
    for parameter in wanted:
        if parameter not in measured:
            raise errors.ParameterNotInMethod(method=method.code, version=version.version, parameter=parameter[:60],
                                              parameters=", ".join(measured))
    numbers = clean_sample_nos(sample_nos)
    if len(numbers) > version.max_samples_per_batch:
        raise errors.TooManySamples(method=method.code, limit=version.max_samples_per_batch, count=len(numbers))
    note = lab_input.text(note, "备注", "The note", 500)
    asset_no = (instrument_asset_no or "").strip()
    if not asset_no:
        raise errors.InstrumentRequired()
    chosen = _eligible_samples(session, numbers, wanted)
    instrument = get_instrument(session, asset_no)
    _assert_instrument(session, version, instrument, wanted, moment)
    qualifications.assert_analyst_qualified(session, actor, method.id, moment)
    slots = plan_layout(version, [e.sample.sample_no for e in chosen])
    standard_of = _standards_for(session, slots, standards)

    batch = AnalysisBatch(batch_no=next_code(session, CODE_PREFIX, moment), method_version_id=version.id,
                          parameters=canonical_json(wanted), instrument_id=instrument.id,
                          state=BatchState.OPEN.value, analyst_id=actor.id, created_at=moment, note=note)
    session.add(batch)
    session.flush()
    use_of: dict[str, MaterialUse] = {}
    for standard in {s.barcode: s for s in standard_of.values()}.values():
        labels = [slot.label for slot in slots if standard_of.get(slot.position) is standard]
        use_of[standard.barcode] = _use_standard(session, actor, batch, standard, labels, moment)
    to_write = [s for s in slots if not s.needs_standard or s.position in standard_of]
    written = _write_positions(session, actor, batch, to_write, {i: e.sample for i, e in enumerate(chosen)},
                               standard_of, use_of, {}, moment)
    audit.append(session, actor, "analysis.batch_built", "analysis_batch", batch.id, None, {
        "batch_no": batch.batch_no, "method": method.code, "method_version": version.version,
        "parameters": wanted, "instrument": instrument.asset_no, "created_at": moment, "note": note,
        "samples": {e.sample.sample_no: e.parameters for e in chosen}, "positions": written,
        "awaiting_standard": [s.label for s in slots if s.needs_standard and s.position not in standard_of]})
    return batch


# ---------------------------------------------------------------- standards added later


def plan_of(session: Session, batch: AnalysisBatch, positions: Sequence[BatchPosition] | None = None,
            version: MethodVersion | None = None) -> list[Slot]:
    """The batch's planned layout, recomputed from its sample positions (in run order)."""
    rows = positions if positions is not None else session.scalars(
        select(BatchPosition).where(BatchPosition.batch_id == batch.id).order_by(BatchPosition.position)).all()
    version = version or session.get(MethodVersion, batch.method_version_id)
    labels = [p.label for p in sorted(rows, key=lambda p: p.position)
              if p.role == PositionRole.SAMPLE.value and p.rerun_of_id is None]
    return plan_layout(version, labels)


def awaiting_standard(plan: Sequence[Slot], positions: Sequence[BatchPosition]) -> list[Slot]:
    """Planned CRM, CCV and spike positions not written yet: their standard is missing."""
    written = {p.position for p in positions}
    return [s for s in plan if s.needs_standard and s.position not in written]


def add_standard(session: Session, actor: User, batch: AnalysisBatch, target: str | int, choice: StandardChoice,
                 at: Any = None) -> list[BatchPosition]:
    """Write the positions waiting for a standard: one (`target` its position number) or every
    one of a role (`target` "crm", "ccv" or "spike"), at their planned numbers."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    batch = locked(session, batch)
    _assert_open(batch, "添加标准物质", "take a standard")
    assert_analyst(session, actor, batch)
    moment = _act_time(session, batch, at, "使用时间", "The time of use")
    positions = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                .order_by(BatchPosition.position)).all()
    missing = awaiting_standard(plan_of(session, batch, positions), positions)
    target_text = str(target).strip().lower()
    if target_text.isdigit():
        slots = [s for s in missing if s.position == int(target_text)]
        what_zh, what_en = f"第 {target_text} 位", f"position {target_text}"
    else:
        if target_text in ROLE_WORDS and target_text not in STANDARD_ROLES:
            raise errors.QcRoleWithoutStandard(role=target_text)
        slots = [s for s in missing if s.role == target_text]
        what_zh, what_en = ROLE_WORDS.get(target_text, (target_text[:20], target_text[:20]))
    if not slots:
        raise errors.NoPositionAwaitingStandard(batch=batch.batch_no, what_zh=what_zh, what_en=what_en)
    standard = _clean_standard(session, slots[0].role, choice)
    use = _use_standard(session, actor, batch, standard, [s.label for s in slots], moment)
    ids = {p.position: p.id for p in positions}
    written = _write_positions(session, actor, batch, slots, {}, {s.position: standard for s in slots},
                               {standard.barcode: use}, ids, moment)
    audit.append(session, actor, "analysis.batch_standard_added", "analysis_batch", batch.id, None, {
        "batch_no": batch.batch_no, "positions": written, "use_id": use.id, "used_at": moment})
    rows = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id,
                                                       BatchPosition.position.in_([s.position for s in slots]))
                           .order_by(BatchPosition.position)).all()
    return list(rows)


# ---------------------------------------------------------------- starting


def start_batch(session: Session, actor: User, batch: AnalysisBatch, at: Any = None) -> AnalysisBatch:
    """The analysis starts at `at`: every gate at that moment (analyst's 上岗证, instrument,
    standards, each sample's holding time unless the quality manager recorded a deviation);
    then the clocks of the batch's parameters stop and the samples are in analysis."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    batch = locked(session, batch)
    _assert_open(batch, "开始分析", "be started")
    assert_analyst(session, actor, batch)
    moment = _act_time(session, batch, at, "分析开始时间", "The start of analysis")
    positions = session.scalars(select(BatchPosition).where(BatchPosition.batch_id == batch.id)
                                .order_by(BatchPosition.position)).all()
    version = session.get(MethodVersion, batch.method_version_id)
    missing = awaiting_standard(plan_of(session, batch, positions, version), positions)
    if missing:
        raise errors.StandardsMissing(batch=batch.batch_no, labels=", ".join(s.label for s in missing))
    parameters = batch_parameters(batch)
    qualifications.assert_analyst_qualified(session, actor, version.method_id, moment)
    instrument = session.get(Instrument, batch.instrument_id)
    _assert_instrument(session, version, instrument, parameters, moment)
    from app.reference_materials.service import find_item

    for barcode in sorted({p.material_barcode for p in positions if p.material_barcode}):
        assert_material_usable(session, find_item(session, barcode), moment)
    sample_ids = list(dict.fromkeys(p.sample_id for p in positions if p.sample_id))
    samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(sample_ids)))}
    requested: dict[int, list[str]] = {}
    for sample_id, parameter in session.execute(select(SampleParameter.sample_id, SampleParameter.parameter).where(
            SampleParameter.sample_id.in_(sample_ids), SampleParameter.parameter.in_(parameters))
            .order_by(SampleParameter.parameter)):
        requested.setdefault(sample_id, []).append(parameter)
    checked = []
    for sample_id in sample_ids:
        sample = samples[sample_id]
        if sample.state not in ELIGIBLE_STATES:
            raise errors.SampleNotInLab(sample_no=sample.sample_no, state=sample.state)
        if sample.collected_at is not None and moment < sample.collected_at:
            raise errors.ActBeforeSampling(at=lab_input.local_text(session, moment), sample_no=sample.sample_no,
                                           collected=lab_input.local_text(session, sample.collected_at))
        own = requested.get(sample_id, [])
        deviations = holding.assert_within_holding_time(session, sample, own, moment, "analysis")
        checked.append((sample, own, deviations))

    for sample, own, deviations in checked:
        holding.stop_clocks(session, sample, "analysed", moment, own)
        before = sample.state
        sample.state = SampleState.IN_ANALYSIS.value
        audit.append(session, actor, "sample.analysis_started", "sample", sample.id, {"state": before}, {
            "sample_no": sample.sample_no, "state": sample.state, "batch_no": batch.batch_no,
            "parameters": own, "deviation_ids": [d.id for d in deviations], "started_at": moment})
    batch.state, batch.started_at = BatchState.RUNNING.value, moment
    session.flush()
    audit.append(session, actor, "analysis.batch_started", "analysis_batch", batch.id,
                 {"state": BatchState.OPEN.value}, {
                     "batch_no": batch.batch_no, "state": batch.state, "started_at": moment,
                     "instrument": instrument.asset_no, "samples": [s.sample_no for s, _, _ in checked]})
    return batch


# ---------------------------------------------------------------- curves


def attach_curve(session: Session, actor: User, batch: AnalysisBatch, parameter: str, curve_code: str,
                 at: Any = None) -> BatchCurve:
    """The calibration curve the batch uses for `parameter`: through the curve gate at `at`, made
    on the batch's instrument. Replaced only while no result was computed with the old one."""
    ensure(session, actor, Permission.ANALYSIS_RECORD)
    batch = locked(session, batch)
    if batch.state not in (BatchState.OPEN.value, BatchState.RUNNING.value):
        raise errors.BatchNotRunning(batch=batch.batch_no, state=batch.state)
    assert_analyst(session, actor, batch)
    moment = _act_time(session, batch, at, "挂接时间", "The time the curve is attached")
    parameters = batch_parameters(batch)
    parameter = (parameter or "").strip()
    if parameter not in parameters:
        raise errors.ParameterNotInBatch(batch=batch.batch_no, parameter=parameter[:60] or "—",
                                         parameters=", ".join(parameters))
    curve = curves.curve_by_code(session, curve_code)
    if batch.instrument_id is not None and curve.instrument_id != batch.instrument_id:
        instrument = session.get(Instrument, curve.instrument_id)
        raise errors.CurveNotForBatch(
            curve=curve.code, batch=batch.batch_no,
            reason_zh=f"该曲线在仪器 {instrument.asset_no if instrument else '—'} 上绘制，不是本批所用仪器",
            reason_en=f"it was made on instrument {instrument.asset_no if instrument else '—'}, not the batch's")
    curves.assert_curve_usable(session, curve, moment, batch.method_version_id, parameter)
    existing = session.scalars(select(BatchCurve).where(BatchCurve.batch_id == batch.id,
                                                        BatchCurve.parameter == parameter)).first()
    before = None
    if existing is not None:
        old = session.get(CalibrationCurve, existing.curve_id)
        used = session.scalar(select(func.count()).select_from(AnalysisResult).where(
            AnalysisResult.batch_id == batch.id, AnalysisResult.parameter == parameter,
            AnalysisResult.curve_id == existing.curve_id))
        if used:
            raise errors.CurveInUse(batch=batch.batch_no, parameter=parameter, curve=old.code if old else "—")
        before = {"parameter": parameter, "curve": old.code if old else None}
        existing.curve_id, existing.attached_at, existing.attached_by_id = curve.id, moment, actor.id
        row = existing
    else:
        row = BatchCurve(batch_id=batch.id, parameter=parameter, curve_id=curve.id, attached_at=moment,
                         attached_by_id=actor.id)
        session.add(row)
    session.flush()
    audit.append(session, actor, "analysis.batch_curve_attached", "analysis_batch", batch.id, before, {
        "batch_no": batch.batch_no, "parameter": parameter, "curve": curve.code, "attached_at": moment})
    return row


# ---------------------------------------------------------------- the list


@dataclass
class BatchRow:
    batch: AnalysisBatch
    method_code: str
    version: int
    analyst: User | None
    instrument: Instrument | None
    positions: int
    samples: int

    @property
    def parameters(self) -> list[str]:
        return batch_parameters(self.batch)


def clean_states(state: str | Iterable[str]) -> list[str]:
    parts = state.split(",") if isinstance(state, str) else list(state)
    return [s.strip() for s in parts if s.strip() in BATCH_STATES]


def list_batches(session: Session, *, states: Sequence[str] = (), method: str = "", analyst: str = "",
                 mine: User | None = None, page: int = 1, size: int = 25) -> Page[BatchRow]:
    """Batches, newest first, filtered by state(s), method code, analyst (user name) or the
    reader's own: a page costs five queries whatever its size."""
    query = (select(AnalysisBatch, MethodVersion.version, Method.code)
             .join(MethodVersion, MethodVersion.id == AnalysisBatch.method_version_id)
             .join(Method, Method.id == MethodVersion.method_id))
    if states:
        query = query.where(AnalysisBatch.state.in_(list(states)))
    code = methods.clean_code(method)[:60] if method else ""
    if code:
        query = query.where(Method.code == code)
    if analyst.strip():
        query = query.join(User, User.id == AnalysisBatch.analyst_id).where(User.username == analyst.strip()[:64])
    if mine is not None:
        query = query.where(AnalysisBatch.analyst_id == mine.id)
    page, size = max(1, page), max(1, size)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.execute(query.order_by(AnalysisBatch.created_at.desc(), AnalysisBatch.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    batches = [r[0] for r in rows]
    ids = [b.id for b in batches]
    counts: dict[int, tuple[int, int]] = {}
    if ids:
        for batch_id, positions, samples in session.execute(
            select(BatchPosition.batch_id, func.count(), func.count(func.distinct(BatchPosition.sample_id)))
            .where(BatchPosition.batch_id.in_(ids)).group_by(BatchPosition.batch_id)):
            counts[batch_id] = (positions, samples)
    people = methods.users_by_id(session, {b.analyst_id for b in batches})
    instrument_ids = {b.instrument_id for b in batches if b.instrument_id}
    instruments = {i.id: i for i in session.scalars(select(Instrument).where(Instrument.id.in_(instrument_ids)))} \
        if instrument_ids else {}
    items = [BatchRow(b, code_, version, people.get(b.analyst_id), instruments.get(b.instrument_id),
                      *counts.get(b.id, (0, 0))) for b, version, code_ in rows]
    return Page(items, page, size, total)


def count_my_open(session: Session, user: Any) -> int:
    """The dashboard card: this analyst's batches not yet submitted."""
    return session.scalar(select(func.count()).select_from(AnalysisBatch).where(
        AnalysisBatch.analyst_id == user.id, AnalysisBatch.state.in_(UNSUBMITTED_STATES))) or 0


# ---------------------------------------------------------------- forward traceability


class BatchPositionSource:
    """Batch positions (CRM, CCV, spike) whose standard came from a lot: the forward trace of a
    withdrawn certificate names the batch and the position."""

    name = "analysis_batch_position"
    title = N_("QC standard in an analysis batch")
    consumer_kind = CONSUMER

    @staticmethod
    def href(record_id: str) -> str:
        return f"/batches/{record_id.split('#')[0]}"

    def usage_select(self, items: CTE) -> Select:
        record = AnalysisBatch.batch_no + literal("#", String) + cast(BatchPosition.position, String)
        return (select(literal(self.name, String).label("source"), record.label("record_id"),
                       MaterialUse.used_at.label("used_at"), items.c.barcode.label("barcode"),
                       BatchPosition.label.label("description"))
                .join(MaterialUse, MaterialUse.id == BatchPosition.material_use_id)
                .join(items, and_(MaterialUse.item_kind == items.c.item_kind, MaterialUse.item_id == items.c.item_id))
                .join(AnalysisBatch, AnalysisBatch.id == BatchPosition.batch_id))


register_material_use_source(BatchPositionSource())
