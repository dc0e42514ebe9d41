"""Preparation batches (制备批): digestion, extraction, filtration, drying and sieving, distillation.

A batch is opened by an analyst for a method (with its year) and the parameters it prepares for;
positions are added by scanning: a sample's aliquot (amount taken, final volume), a preparation
blank (reagents only, through the whole procedure), a spike (an aliquot with a known amount of a
standard added). Reagents, acids and reference materials used are scanned too. Every standard or
reagent goes through the reference-materials gate at the time of use (`record_use` calls
`assert_material_usable`): an expired or quarantined standard is refused with its reason.

Adding a sample's aliquot checks its holding time for the batch's parameters at the time of the
act; past the deadline it needs the quality manager's recorded deviation, which the position
keeps. The first position of a sample puts it `in_preparation`; the preparer closes the batch by
signing it (meaning `prepared`) over its canonical content, and samples whose positions are all in
closed batches become `prepared`. Positions and materials are append-only (DOMAIN.md §3).

Decision: a whole field container may be put into a batch as well as an aliquot (a 100 mL bottle
digested entirely is common); what matters is that its sample is in the lab, the container was
not used up, and it was not put in a batch before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.canonical import canonical_json
from app.core.codes import reserve_codes, with_check_digit
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.core.signatures import ElectronicSignature, SignatureMeaning, SignatureView, check, sign
from app.core.web import Page, paginate
from app.people.models import User
from app.samples import aliquots, holding, lab_input
from app.samples import prep_errors as errors
from app.samples.custody import Party, record_custody
from app.samples.lab_models import (
    CustodyKind,
    HoldingClock,
    HoldingDeviation,
    PrepBatch,
    PrepBatchItem,
    PrepBatchMaterial,
    PrepBatchState,
    PrepItemRole,
    PrepKind,
)
from app.samples.models import Container, ContainerKind, ContainerState, Sample, SampleState
from app.samples.preservation import rules_for
from app.samples.registration import container_by_barcode

CODE_PREFIX = "PB"
CODE_RE = re.compile(r"^PB\d{2}-\d{6}$")
SIGNED_ENTITY = "prep_batch"
# a method standard with its year: HJ 677-2013, GB 7467-87, HJ/T 195-2005, GB/T 5750.6—2006
METHOD_RE = re.compile(r"^\S.*[-—–]\s?(\d{4}|\d{2})$")
MAX_PARAMETERS = 40
BEFORE_THE_LAB = frozenset({SampleState.REGISTERED.value, SampleState.COLLECTED.value, SampleState.IN_TRANSIT.value,
                            SampleState.CANCELLED.value})
STARTS_PREPARATION = frozenset({SampleState.RECEIVED.value, SampleState.CONDITIONALLY_RECEIVED.value,
                                SampleState.IN_STORAGE.value})


@dataclass(frozen=True)
class QcRule:
    """What a batch must hold before it is closed: preparation blanks always (DOMAIN.md §3 prep
    batch: "prep blank + spike inside"; HJ 828-2017 §12 asks for lab blanks in every batch), and
    spikes when it holds samples, for the procedures where recovery through the procedure is what
    the spike proves (digestion and extraction lose analyte; filtration, drying and sieving,
    distillation are checked by their methods' own QC). Lab defaults; the method may ask more."""

    blanks: int
    spikes_with_samples: int


QC_RULES: dict[str, QcRule] = {
    PrepKind.DIGESTION.value: QcRule(blanks=1, spikes_with_samples=1),  # e.g. HJ 677-2013 §9
    PrepKind.EXTRACTION.value: QcRule(blanks=1, spikes_with_samples=1),
    PrepKind.FILTRATION.value: QcRule(blanks=1, spikes_with_samples=0),
    PrepKind.DRYING_SIEVING.value: QcRule(blanks=1, spikes_with_samples=0),
    PrepKind.DISTILLATION.value: QcRule(blanks=1, spikes_with_samples=0),
    PrepKind.OTHER.value: QcRule(blanks=1, spikes_with_samples=0),
}
KIND_WORDS = {
    PrepKind.DIGESTION.value: ("消解", "digestion"), PrepKind.EXTRACTION.value: ("萃取", "extraction"),
    PrepKind.FILTRATION.value: ("过滤", "filtration"),
    PrepKind.DRYING_SIEVING.value: ("风干过筛", "drying and sieving"),
    PrepKind.DISTILLATION.value: ("蒸馏", "distillation"), PrepKind.OTHER.value: ("其他", "other"),
}


# ---------------------------------------------------------------- lookups


def clean_code(code: str) -> str:
    return re.sub(r"\s+", "", code or "").upper()


def batch_by_code(session: Session, code: str) -> PrepBatch:
    cleaned = clean_code(code)
    batch = session.scalars(select(PrepBatch).where(PrepBatch.code == cleaned)).first() if cleaned else None
    if batch is None:
        raise errors.PrepBatchNotFound(batch=cleaned[:30] or "—")
    return batch


def batch_parameters(batch: PrepBatch) -> list[str]:
    return list(json.loads(batch.parameters or "[]"))


def _locked(session: Session, batch: PrepBatch) -> PrepBatch:
    return session.execute(select(PrepBatch).where(PrepBatch.id == batch.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _assert_open(batch: PrepBatch) -> None:
    if batch.state != PrepBatchState.OPEN.value:
        raise errors.PrepBatchClosed(batch=batch.code)


def _act_time(session: Session, batch: PrepBatch, at: Any, field_zh: str, field_en: str) -> datetime:
    moment = lab_input.act_time(session, at, field_zh, field_en)
    if moment < batch.opened_at:
        raise errors.PrepActBeforeOpening(field_zh=field_zh, field_en=field_en, batch=batch.code,
                                          at=lab_input.local_text(session, moment),
                                          opened=lab_input.local_text(session, batch.opened_at))
    return moment


# ---------------------------------------------------------------- opening


def split_parameters(text: str | Iterable[str]) -> list[str]:
    parts = re.split(r"[\s,;，；、/]+", text) if isinstance(text, str) else list(text)
    return [p for p in parts if p and p.strip()]


def open_batch(session: Session, actor: User, kind: PrepKind | str, method: str, parameters: str | Iterable[str],
               at: Any = None, note: str = "") -> PrepBatch:
    """Open a preparation batch of `kind` for `method` and `parameters` at `at` (default now)."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    kind_value = kind.value if isinstance(kind, PrepKind) else str(kind or "").strip()
    if kind_value not in QC_RULES:
        raise errors.PrepKindUnknown(kind=kind_value[:30] or "—")
    method_text = lab_input.text(method, "方法", "The method", 60, required=True)
    method_text = re.sub(r"\s+", " ", method_text)
    if not METHOD_RE.match(method_text):
        raise errors.PrepMethodWithoutYear(method=method_text)
    wanted = split_parameters(parameters)
    if not wanted:
        raise errors.PrepParametersRequired()
    if len(wanted) > MAX_PARAMETERS:
        raise lab_input.FieldTooLong(field_zh="检测项目", field_en="The parameters", limit=MAX_PARAMETERS)
    chosen = list(rules_for(session, wanted))  # unknown parameters refused, named as in the table
    note = lab_input.text(note, "备注", "The note", 500)
    moment = lab_input.act_time(session, at, "开始时间", "The time the batch was opened")
    code = with_check_digit(reserve_codes(session, CODE_PREFIX, moment, 1)[0])
    batch = PrepBatch(code=code, kind=kind_value, method=method_text, parameters=canonical_json(chosen),
                      state=PrepBatchState.OPEN.value, note=note, opened_at=moment, opened_by_id=actor.id)
    session.add(batch)
    session.flush()
    audit.append(session, actor, "prep.batch_opened", "prep_batch", batch.id, None, {
        "code": code, "kind": kind_value, "method": method_text, "parameters": chosen, "opened_at": moment,
        "note": note})
    return batch


# ---------------------------------------------------------------- positions


def _next_position(session: Session, batch: PrepBatch) -> int:
    return (session.scalar(select(func.max(PrepBatchItem.position)).where(PrepBatchItem.batch_id == batch.id))
            or 0) + 1


@dataclass
class _Taken:
    container: Container
    sample: Sample
    amount: Decimal
    unit: str
    final_volume_ml: Decimal | None
    deviations: list[HoldingDeviation]
    parameters: list[str]


def _take(session: Session, actor: User, batch: PrepBatch, barcode: str, amount: Any, unit: Any,
          final_volume_ml: Any, at: datetime) -> _Taken:
    """Check a scanned aliquot (or container) for a position of `batch` at `at` and take the
    amount from it; every refusal before anything changes."""
    found = container_by_barcode(session, barcode)
    container = aliquots.locked_container(session, found)
    sample = session.get(Sample, container.sample_id)
    aliquots.assert_sample_in_lab(sample)
    aliquots.assert_container_usable(container)
    used = session.execute(
        select(PrepBatchItem.position, PrepBatch.code).join(PrepBatch, PrepBatch.id == PrepBatchItem.batch_id)
        .where(PrepBatchItem.container_id == container.id)).first()
    if used is not None:
        raise errors.ContainerAlreadyInBatch(barcode=container.barcode, batch=used.code, position=used.position)
    wanted = batch_parameters(batch)
    holds = list(json.loads(container.parameters or "[]"))
    common = [p for p in wanted if p in holds]
    if not common:
        raise errors.ContainerNotForBatch(barcode=container.barcode, container_parameters=" ".join(holds) or "—",
                                          batch_parameters=" ".join(wanted))
    left = aliquots.left_in(container)
    unit_text = aliquots.clean_unit(unit or aliquots.unit_of(container))
    if unit_text != aliquots.unit_of(container):
        raise errors.AliquotUnitMismatch(barcode=container.barcode, parent_unit=aliquots.unit_of(container),
                                         unit=unit_text)
    taken = lab_input.decimal(amount, "取样量", "The amount taken", positive=True)
    if taken is None:
        taken = left  # the whole aliquot
    if taken <= 0 or taken > left:
        raise errors.AliquotExceedsRemaining(barcode=container.barcode, remaining=f"{left:f}", amount=f"{taken:f}",
                                             unit=unit_text)
    final = lab_input.decimal(final_volume_ml, "定容体积", "The final volume", positive=True)
    lab_input.not_before_sampling(session, at, sample, "制备时间", "The time of preparation")
    aliquots.not_before_receipt(session, at, sample, "制备时间", "The time of preparation")
    deviations = holding.assert_within_holding_time(session, sample, common, at, "preparation")
    return _Taken(container, sample, taken, unit_text, final, deviations, common)


def _commit_taken(session: Session, actor: User, taken: _Taken, at: datetime) -> dict[str, Any]:
    """Take the amount off the container, put it into the analyst's hands, start the sample's
    preparation; returns what the audit event says about it."""
    container, sample = taken.container, taken.sample
    container.remaining = aliquots.left_in(container) - taken.amount
    if container.remaining == 0:
        container.state = ContainerState.EMPTIED.value
    if (container.holder_id, container.location_id) != (actor.id, None):
        record_custody(session, actor, [container], CustodyKind.TAKE_OUT,
                       giver=Party(user_id=container.holder_id, location_id=container.location_id),
                       taker=Party(user_id=actor.id), occurred_at=at, note="preparation")
    state_before = sample.state
    if sample.state in STARTS_PREPARATION:
        sample.state = SampleState.IN_PREPARATION.value
    return {"sample_no": sample.sample_no, "sample_state": [state_before, sample.state],
            "container_remaining": container.remaining, "container_state": container.state}


def _add_item(session: Session, actor: User, batch: PrepBatch, role: PrepItemRole, at: datetime, *,
              taken: _Taken | None = None, spike_use_id: int | None = None, spike_amount: Decimal | None = None,
              spike_unit: str = "", final_volume_ml: Decimal | None = None,
              extra: dict[str, Any] | None = None) -> PrepBatchItem:
    item = PrepBatchItem(
        batch_id=batch.id, position=_next_position(session, batch), role=role.value,
        container_id=taken.container.id if taken else None, sample_id=taken.sample.id if taken else None,
        amount=taken.amount if taken else None, amount_unit=taken.unit if taken else "",
        final_volume_ml=taken.final_volume_ml if taken else final_volume_ml, spike_use_id=spike_use_id,
        spike_amount=spike_amount, spike_unit=spike_unit,
        deviation_id=taken.deviations[0].id if taken and taken.deviations else None,
        added_at=at, added_by_id=actor.id,
    )
    session.add(item)
    session.flush()
    audit.append(session, actor, "prep.item_added", "prep_batch", batch.id, None, {
        "batch": batch.code, "position": item.position, "role": role.value,
        "barcode": taken.container.barcode if taken else None, "amount": item.amount, "unit": item.amount_unit,
        "final_volume_ml": item.final_volume_ml, "spike_use_id": spike_use_id, "spike_amount": spike_amount,
        "spike_unit": spike_unit, "parameters": taken.parameters if taken else [],
        "deviation_ids": [d.id for d in taken.deviations] if taken else [], "added_at": at, **(extra or {}),
    })
    return item


def add_sample(session: Session, actor: User, batch: PrepBatch, barcode: str, amount: Any = None, unit: Any = "",
               final_volume_ml: Any = None, at: Any = None) -> PrepBatchItem:
    """Put a sample's aliquot (or container) into the batch: `amount` of it (default: all that is
    left) made up to `final_volume_ml`, at `at` (the time of the act), within its holding time."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    batch = _locked(session, batch)
    _assert_open(batch)
    moment = _act_time(session, batch, at, "制备时间", "The time of preparation")
    taken = _take(session, actor, batch, barcode, amount, unit, final_volume_ml, moment)
    extra = _commit_taken(session, actor, taken, moment)
    return _add_item(session, actor, batch, PrepItemRole.SAMPLE, moment, taken=taken, extra=extra)


def add_blank(session: Session, actor: User, batch: PrepBatch, final_volume_ml: Any = None,
              at: Any = None) -> PrepBatchItem:
    """A preparation blank: the reagents only, carried through the whole procedure."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    batch = _locked(session, batch)
    _assert_open(batch)
    moment = _act_time(session, batch, at, "制备时间", "The time of preparation")
    final = lab_input.decimal(final_volume_ml, "定容体积", "The final volume", positive=True)
    return _add_item(session, actor, batch, PrepItemRole.PREP_BLANK, moment, final_volume_ml=final)


def _use_material(session: Session, actor: User, batch: PrepBatch, barcode: str, quantity: Any, unit: Any,
                  purpose: str, at: datetime, *, required: bool) -> tuple[PrepBatchMaterial, Decimal | None, str]:
    from app.reference_materials.service import clean_barcode, find_item, record_use

    text = (barcode or "").strip()
    if required and not text:
        raise errors.StandardRequired()
    amount = lab_input.decimal(quantity, "用量", "The amount used", required=required, positive=True)
    unit_text = lab_input.text(unit, "单位", "The unit", 20, required=amount is not None)
    purpose = lab_input.text(purpose, "用途", "The purpose", 200)
    item = find_item(session, clean_barcode(text))
    use = record_use(session, actor, item, at, quantity=amount, quantity_unit=unit_text if amount is not None else "",
                     purpose=purpose or f"制备批 {batch.code}", consumer=(SIGNED_ENTITY, batch.code))
    material = PrepBatchMaterial(batch_id=batch.id, use_id=use.id, barcode=item.barcode, purpose=purpose,
                                 added_at=at, added_by_id=actor.id)
    session.add(material)
    session.flush()
    return material, amount, use.quantity_unit


def add_spike(session: Session, actor: User, batch: PrepBatch, barcode: str, standard_barcode: str,
              spike_amount: Any, spike_unit: Any, amount: Any = None, unit: Any = "", final_volume_ml: Any = None,
              at: Any = None) -> PrepBatchItem:
    """A spike (加标): an aliquot with `spike_amount` of the standard `standard_barcode` added. The
    standard's use goes through the reference-materials gate at the time of the act."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    batch = _locked(session, batch)
    _assert_open(batch)
    moment = _act_time(session, batch, at, "制备时间", "The time of preparation")
    if not (standard_barcode or "").strip() or lab_input.decimal(spike_amount, "加标量", "The spike amount") is None:
        raise errors.StandardRequired()
    taken = _take(session, actor, batch, barcode, amount, unit, final_volume_ml, moment)
    material, added, added_unit = _use_material(session, actor, batch, standard_barcode, spike_amount, spike_unit,
                                                f"加标 spike {batch.code}", moment, required=True)
    extra = _commit_taken(session, actor, taken, moment)
    extra["standard"] = material.barcode
    return _add_item(session, actor, batch, PrepItemRole.SPIKE, moment, taken=taken, spike_use_id=material.use_id,
                     spike_amount=added, spike_unit=added_unit, extra=extra)


def add_material(session: Session, actor: User, batch: PrepBatch, barcode: str, quantity: Any = None,
                 unit: Any = "", purpose: str = "", at: Any = None) -> PrepBatchMaterial:
    """A reagent, acid or reference material used by the batch (scanned), through the gate."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    batch = _locked(session, batch)
    _assert_open(batch)
    moment = _act_time(session, batch, at, "使用时间", "The time of use")
    material, amount, amount_unit = _use_material(session, actor, batch, barcode, quantity, unit, purpose, moment,
                                                  required=False)
    audit.append(session, actor, "prep.material_added", "prep_batch", batch.id, None, {
        "batch": batch.code, "barcode": material.barcode, "use_id": material.use_id, "quantity": amount,
        "unit": amount_unit, "purpose": material.purpose, "used_at": moment})
    return material


# ---------------------------------------------------------------- closing and signing


def missing_qc(session: Session, batch: PrepBatch) -> list[tuple[str, str]]:
    """What the batch still lacks by its kind's rule: (zh, en) phrases, empty when complete."""
    rule = QC_RULES[batch.kind]
    counts = dict(session.execute(select(PrepBatchItem.role, func.count()).where(PrepBatchItem.batch_id == batch.id)
                                  .group_by(PrepBatchItem.role)).all())
    missing = []
    blanks = counts.get(PrepItemRole.PREP_BLANK.value, 0)
    if blanks < rule.blanks:
        missing.append((f"制备空白（至少 {rule.blanks} 个，现有 {blanks} 个）",
                        f"preparation blanks (at least {rule.blanks}, {blanks} so far)"))
    samples, spikes = counts.get(PrepItemRole.SAMPLE.value, 0), counts.get(PrepItemRole.SPIKE.value, 0)
    if samples and spikes < rule.spikes_with_samples:
        word_zh = KIND_WORDS[batch.kind][0]
        missing.append((f"加标样（{word_zh}批有样品时至少 {rule.spikes_with_samples} 个，现有 {spikes} 个）",
                        f"spikes (a {KIND_WORDS[batch.kind][1]} batch with samples needs at least "
                        f"{rule.spikes_with_samples}, {spikes} so far)"))
    return missing


def batch_content(session: Session, batch: PrepBatch) -> dict[str, Any]:
    """What the preparer's signature binds: the batch, every position with its amounts, spikes
    and deviations, and every material used with its amount (canonical, Decimals as text)."""
    from app.reference_materials.models import MaterialUse

    items = session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)
                            .order_by(PrepBatchItem.position)).all()
    materials = session.scalars(select(PrepBatchMaterial).where(PrepBatchMaterial.batch_id == batch.id)
                                .order_by(PrepBatchMaterial.id)).all()
    container_ids = {i.container_id for i in items if i.container_id}
    sample_ids = {i.sample_id for i in items if i.sample_id}
    barcodes = dict(session.execute(select(Container.id, Container.barcode).where(
        Container.id.in_(container_ids))).all()) if container_ids else {}
    numbers = dict(session.execute(select(Sample.id, Sample.sample_no).where(
        Sample.id.in_(sample_ids))).all()) if sample_ids else {}
    use_ids = [m.use_id for m in materials]
    uses = {u.id: u for u in session.scalars(select(MaterialUse).where(MaterialUse.id.in_(use_ids)))} if use_ids \
        else {}
    return {
        "code": batch.code, "kind": batch.kind, "method": batch.method, "parameters": batch_parameters(batch),
        "opened_at": batch.opened_at, "opened_by_id": batch.opened_by_id,
        "items": [{
            "position": i.position, "role": i.role, "barcode": barcodes.get(i.container_id),
            "sample_no": numbers.get(i.sample_id), "amount": i.amount, "unit": i.amount_unit,
            "final_volume_ml": i.final_volume_ml, "spike_use_id": i.spike_use_id, "spike_amount": i.spike_amount,
            "spike_unit": i.spike_unit, "deviation_id": i.deviation_id, "added_at": i.added_at,
        } for i in items],
        "materials": [{
            "barcode": m.barcode, "use_id": m.use_id, "purpose": m.purpose, "used_at": uses[m.use_id].used_at,
            "quantity": uses[m.use_id].quantity, "unit": uses[m.use_id].quantity_unit,
        } for m in materials],
    }


def close_batch(session: Session, actor: User, batch: PrepBatch, password: str) -> PrepBatch:
    """The preparer signs the batch (`prepared`) and closes it; samples whose positions are all in
    closed batches are `prepared`. Only who opened it; a wrong password changes nothing."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    batch = _locked(session, batch)
    _assert_open(batch)
    if batch.opened_by_id != actor.id:
        preparer = session.get(User, batch.opened_by_id)
        raise errors.NotThePreparer(batch=batch.code, preparer=preparer.printed_name if preparer else "—")
    missing = missing_qc(session, batch)
    if missing:
        raise errors.PrepBatchIncomplete(batch=batch.code, missing_zh="；".join(m[0] for m in missing),
                                         missing_en="; ".join(m[1] for m in missing))
    content = batch_content(session, batch)
    signature = sign(session, actor, password, SignatureMeaning.PREPARED, SIGNED_ENTITY, batch.id, content)
    now = utcnow()
    batch.state, batch.closed_at, batch.signature_id = PrepBatchState.CLOSED.value, now, signature.id
    session.flush()
    prepared = _mark_prepared(session, batch)
    audit.append(session, actor, "prep.batch_closed", "prep_batch", batch.id, {"state": PrepBatchState.OPEN.value}, {
        "code": batch.code, "state": batch.state, "closed_at": now, "signature_id": signature.id,
        "content_hash": signature.content_hash, "samples_prepared": prepared})
    return batch


def _mark_prepared(session: Session, batch: PrepBatch) -> list[str]:
    sample_ids = set(session.scalars(select(PrepBatchItem.sample_id).where(
        PrepBatchItem.batch_id == batch.id, PrepBatchItem.sample_id.is_not(None))))
    if not sample_ids:
        return []
    still_open = set(session.scalars(
        select(PrepBatchItem.sample_id).join(PrepBatch, PrepBatch.id == PrepBatchItem.batch_id)
        .where(PrepBatchItem.sample_id.in_(sample_ids), PrepBatch.state == PrepBatchState.OPEN.value)))
    done = []
    for sample in session.scalars(select(Sample).where(Sample.id.in_(sample_ids - still_open))
                                  .order_by(Sample.sample_no)):
        if sample.state == SampleState.IN_PREPARATION.value:
            sample.state = SampleState.PREPARED.value
            done.append(sample.sample_no)
    session.flush()
    return done


# ---------------------------------------------------------------- reading: the list


@dataclass
class BatchRow:
    batch: PrepBatch
    opened_by: User | None
    positions: int
    samples: int

    @property
    def parameters(self) -> list[str]:
        return batch_parameters(self.batch)


BATCH_STATES = tuple(s.value for s in PrepBatchState)
BATCH_KINDS = tuple(k.value for k in PrepKind)


def list_batches(session: Session, *, state: str = "", kind: str = "", q: str = "", page: int = 1,
                 size: int = 25) -> Page[BatchRow]:
    """Batches, open ones first, newest first; a page costs four queries whatever its size."""
    query = select(PrepBatch)
    if state in BATCH_STATES:
        query = query.where(PrepBatch.state == state)
    if kind in BATCH_KINDS:
        query = query.where(PrepBatch.kind == kind)
    text = re.sub(r"\s+", " ", q or "").strip().upper()[:30]
    if text:
        query = query.where(func.upper(PrepBatch.code).contains(text, autoescape=True)
                            | func.upper(PrepBatch.method).contains(text, autoescape=True))
    query = query.order_by(case((PrepBatch.state == PrepBatchState.OPEN.value, 0), else_=1),
                           PrepBatch.opened_at.desc(), PrepBatch.id.desc())
    found = paginate(session, query, page, size)
    ids = [b.id for b in found.items]
    counts: dict[int, tuple[int, int]] = {}
    if ids:
        for batch_id, positions, samples in session.execute(
            select(PrepBatchItem.batch_id, func.count(), func.count(func.distinct(PrepBatchItem.sample_id)))
            .where(PrepBatchItem.batch_id.in_(ids)).group_by(PrepBatchItem.batch_id)
        ):
            counts[batch_id] = (positions, samples)
    people = _users(session, {b.opened_by_id for b in found.items})
    rows = [BatchRow(b, people.get(b.opened_by_id), *counts.get(b.id, (0, 0))) for b in found.items]
    return Page(rows, found.page, found.size, found.total)


def _users(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))} if wanted else {}


# ---------------------------------------------------------------- reading: one batch


@dataclass
class ItemLine:
    item: PrepBatchItem
    container: Container | None
    sample: Sample | None
    added_by: User | None
    standard: str = ""  # the spike standard's barcode
    deviation: HoldingDeviation | None = None


@dataclass
class MaterialLine:
    material: PrepBatchMaterial
    used_at: datetime
    quantity: Decimal | None
    unit: str
    added_by: User | None


@dataclass
class SampleHolding:
    sample: Sample
    clocks: list[tuple[HoldingClock, holding.ClockReading]]


@dataclass
class BatchView:
    batch: PrepBatch
    opened_by: User | None
    items: list[ItemLine]
    materials: list[MaterialLine]
    holding: list[SampleHolding]
    missing: list[tuple[str, str]]
    signature: SignatureView | None
    signer: User | None = None
    parameters: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.batch.state == PrepBatchState.OPEN.value


def batch_view(session: Session, batch: PrepBatch, at: datetime | None = None) -> BatchView:
    """The batch page's read model in a fixed number of queries, however many positions."""
    from app.reference_materials.models import MaterialUse

    now = at or utcnow()
    items = list(session.scalars(select(PrepBatchItem).where(PrepBatchItem.batch_id == batch.id)
                                 .order_by(PrepBatchItem.position)))
    materials = list(session.scalars(select(PrepBatchMaterial).where(PrepBatchMaterial.batch_id == batch.id)
                                     .order_by(PrepBatchMaterial.id)))
    container_ids = {i.container_id for i in items if i.container_id}
    containers = {c.id: c for c in session.scalars(select(Container).where(Container.id.in_(container_ids)))} \
        if container_ids else {}
    sample_ids = {i.sample_id for i in items if i.sample_id}
    samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(sample_ids)))} if sample_ids else {}
    deviation_ids = {i.deviation_id for i in items if i.deviation_id}
    deviations = {d.id: d for d in session.scalars(select(HoldingDeviation).where(
        HoldingDeviation.id.in_(deviation_ids)))} if deviation_ids else {}
    use_ids = [m.use_id for m in materials]
    uses = {u.id: u for u in session.scalars(select(MaterialUse).where(MaterialUse.id.in_(use_ids)))} if use_ids \
        else {}
    signature_row = session.get(ElectronicSignature, batch.signature_id) if batch.signature_id else None
    people = _users(session, {batch.opened_by_id, *(i.added_by_id for i in items), *(m.added_by_id for m in materials),
                              signature_row.signer_id if signature_row else None})
    standard_of = {m.use_id: m.barcode for m in materials}
    lines = [ItemLine(i, containers.get(i.container_id), samples.get(i.sample_id), people.get(i.added_by_id),
                      standard_of.get(i.spike_use_id, "") if i.spike_use_id else "", deviations.get(i.deviation_id))
             for i in items]
    material_lines = [MaterialLine(m, uses[m.use_id].used_at, uses[m.use_id].quantity, uses[m.use_id].quantity_unit,
                                   people.get(m.added_by_id)) for m in materials]
    wanted = set(batch_parameters(batch))
    clocks = holding.clocks_for(session, sample_ids)
    sample_holding = [
        SampleHolding(samples[sid], [
            (c, holding.read(c, now))
            for c in clocks.get(sid, []) if c.parameter in wanted])
        for sid in sorted(sample_ids, key=lambda s: samples[s].sample_no)]
    signature = check(signature_row, batch_content(session, batch)) if signature_row else None
    missing = missing_qc(session, batch) if batch.state == PrepBatchState.OPEN.value else []
    return BatchView(batch, people.get(batch.opened_by_id), lines, material_lines, sample_holding, missing, signature,
                     people.get(signature_row.signer_id) if signature_row else None, batch_parameters(batch))


# ---------------------------------------------------------------- the sample page's section


@dataclass
class AliquotLine:
    container: Container
    parent_barcode: str


@dataclass
class SampleBatchLine:
    batch: PrepBatch
    item: PrepBatchItem
    barcode: str
    signature: ElectronicSignature | None


@dataclass
class PrepSection:
    aliquots: list[AliquotLine]
    batches: list[SampleBatchLine]


def prep_section(session: Session, sample: Sample) -> Any:
    """What the sample's page shows of this part (None: nothing to show): its aliquots and
    sub-samples with what is left, and the preparation batches it went through. A sample not yet at
    the lab has neither (no query)."""
    if sample.state in BEFORE_THE_LAB:
        return None
    containers = {c.id: c for c in session.scalars(select(Container).where(Container.sample_id == sample.id))}
    parts = sorted((c for c in containers.values() if c.kind != ContainerKind.CONTAINER.value),
                   key=lambda c: c.position)
    rows = session.execute(
        select(PrepBatchItem, PrepBatch).join(PrepBatch, PrepBatch.id == PrepBatchItem.batch_id)
        .where(PrepBatchItem.sample_id == sample.id).order_by(PrepBatch.opened_at, PrepBatchItem.position)).all()
    if not parts and not rows:
        return None
    signature_ids = {b.signature_id for _, b in rows if b.signature_id}
    signatures = {s.id: s for s in session.scalars(select(ElectronicSignature).where(
        ElectronicSignature.id.in_(signature_ids)))} if signature_ids else {}
    return PrepSection(
        [AliquotLine(c, containers[c.parent_id].barcode if c.parent_id in containers else "") for c in parts],
        [SampleBatchLine(b, i, containers[i.container_id].barcode if i.container_id in containers else "",
                         signatures.get(b.signature_id)) for i, b in rows])

