"""Aliquots (分取样) and sub-samples (子样): parts of a container taken at the bench, each a
`Container` with its own barcode from the containers' series, linked to its parent.

The parent's `remaining` goes down by what was taken, under a row lock, so two analysts taking
aliquots of the same bottle at once cannot take more than there is. Amounts are Decimals in the
parent's unit (containers are measured in mL; a soil sub-sample may be in g and its own aliquots
then in g too): a mass from a volume is refused rather than converted with a guessed density.
An aliquot is of the same sample, so it runs on the sample's holding-time clocks (clocks are per
sample and parameter). The new aliquot passes into the analyst's hands by a custody take-out from
whoever held the parent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import audit
from app.core.barcodes import Label, THERMAL_50x30, render_labels
from app.core.codes import reserve_codes, with_check_digit
from app.core.db import utcnow
from app.core.i18n import is_chinese
from app.core.permissions import Permission, ensure
from app.people.models import User
from app.samples import lab_input
from app.samples import prep_errors as errors
from app.samples.custody import Party, record_custody
from app.samples.lab_models import CustodyKind
from app.samples.models import Container, ContainerKind, ContainerState, Sample, SampleState
from app.samples.registration import CONTAINER_PREFIX, CONTAINER_WIDTH, container_by_barcode

UNITS = {"ml": "mL", "g": "g"}
# a sample at the bench: received (also with conditions), stored, or already in preparation
IN_LAB_STATES = frozenset({SampleState.RECEIVED.value, SampleState.CONDITIONALLY_RECEIVED.value,
                           SampleState.IN_STORAGE.value, SampleState.IN_PREPARATION.value})
CLOSED_CONTAINER_STATES = frozenset({ContainerState.EMPTIED.value, ContainerState.DISPOSED.value,
                                     ContainerState.REJECTED.value})
STATE_WORDS = {
    SampleState.REGISTERED.value: ("已登记、未采样", "registered, not yet sampled"),
    SampleState.COLLECTED.value: ("已采样、未送达实验室", "collected, not yet at the lab"),
    SampleState.IN_TRANSIT.value: ("运输中、未接收", "in transit, not yet received"),
    SampleState.PREPARED.value: ("已制备", "prepared"),
    SampleState.CANCELLED.value: ("已取消", "cancelled"),
}
CONTAINER_STATE_WORDS = {
    ContainerState.EMPTIED.value: ("用完", "used up"),
    ContainerState.DISPOSED.value: ("处置", "disposed of"),
    ContainerState.REJECTED.value: ("拒收", "rejected"),
}


def assert_sample_in_lab(sample: Sample) -> None:
    """Refuse a sample that is not at the bench, saying why (rejected, disposed, not received)."""
    if sample.state == SampleState.REJECTED.value:
        raise errors.SampleRejected(sample_no=sample.sample_no)
    if sample.state == SampleState.DISPOSED.value:
        raise errors.SampleDisposed(sample_no=sample.sample_no)
    if sample.state not in IN_LAB_STATES:
        zh, en = STATE_WORDS.get(sample.state, (sample.state, sample.state))
        raise errors.SampleNotInLab(sample_no=sample.sample_no, state_zh=zh, state_en=en)


def assert_container_usable(container: Container) -> None:
    if container.state in CLOSED_CONTAINER_STATES:
        zh, en = CONTAINER_STATE_WORDS[container.state]
        raise errors.ContainerUnusable(barcode=container.barcode, state_zh=zh, state_en=en)


def clean_unit(unit: Any) -> str:
    text = (unit if isinstance(unit, str) else "").strip()
    found = UNITS.get(text.casefold())
    if found is None:
        raise errors.AliquotUnitUnknown(unit=text[:12] or "—")
    return found


def unit_of(container: Container) -> str:
    """What a container is measured in: its own unit, or mL for a container filled in the field."""
    return container.amount_unit or "mL"


def left_in(container: Container) -> Decimal:
    """What is left in a container, in its unit (a field container filled before `remaining`
    was kept counts its nominal volume)."""
    if container.remaining is not None:
        return container.remaining
    return Decimal(container.volume_ml or 0)


def clean_kind(kind: ContainerKind | str) -> ContainerKind:
    try:
        chosen = ContainerKind(kind)
    except ValueError:
        raise errors.AliquotKindUnknown(kind=str(kind)[:20]) from None
    if chosen == ContainerKind.CONTAINER:
        raise errors.AliquotKindUnknown(kind=chosen.value)
    return chosen


def not_before_receipt(session: Session, moment: datetime, sample: Sample, field_zh: str, field_en: str) -> None:
    if sample.received_at is not None and moment < sample.received_at:
        raise errors.ActBeforeReceipt(field_zh=field_zh, field_en=field_en, at=lab_input.local_text(session, moment),
                                      sample_no=sample.sample_no,
                                      received=lab_input.local_text(session, sample.received_at))


def locked_container(session: Session, container: Container) -> Container:
    """The container's row, locked for the transaction and read afresh (what another transaction
    committed meanwhile counts)."""
    return session.execute(
        select(Container).where(Container.id == container.id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def make_aliquot(session: Session, actor: User, parent_barcode: str, amount: Any, unit: Any, at: Any = None,
                 kind: ContainerKind | str = ContainerKind.ALIQUOT, note: str = "") -> Container:
    """Take `amount` `unit` of the container (or aliquot) scanned as `parent_barcode` into a new
    aliquot (or sub-sample) with its own barcode, at `at` (the time of the act; default now)."""
    ensure(session, actor, Permission.SAMPLES_PREPARE)
    chosen = clean_kind(kind)
    parent = locked_container(session, container_by_barcode(session, parent_barcode))
    sample = session.get(Sample, parent.sample_id)
    assert_sample_in_lab(sample)
    assert_container_usable(parent)
    taken_unit = clean_unit(unit)
    if taken_unit != unit_of(parent):
        raise errors.AliquotUnitMismatch(barcode=parent.barcode, parent_unit=unit_of(parent), unit=taken_unit)
    taken = lab_input.decimal(amount, "分取量", "The amount", required=True, positive=True)
    left = left_in(parent)
    if taken > left:
        raise errors.AliquotExceedsRemaining(barcode=parent.barcode, remaining=f"{left:f}", amount=f"{taken:f}",
                                             unit=taken_unit)
    moment = lab_input.act_time(session, at, "分取时间", "The time of the aliquot")
    lab_input.not_before_sampling(session, moment, sample, "分取时间", "The time of the aliquot")
    not_before_receipt(session, moment, sample, "分取时间", "The time of the aliquot")
    note = lab_input.text(note, "备注", "The note", 500)
    now = utcnow()
    barcode = with_check_digit(reserve_codes(session, CONTAINER_PREFIX, now, 1, width=CONTAINER_WIDTH)[0])
    position = (session.scalar(select(func.max(Container.position)).where(Container.sample_id == sample.id)) or 0) + 1
    aliquot = Container(
        barcode=barcode, sample_id=sample.id, position=position, group_code=parent.group_code,
        container_type=parent.container_type, volume_ml=0, preservative_zh=parent.preservative_zh,
        preservative_en=parent.preservative_en, parameters=parent.parameters, state=ContainerState.RECEIVED.value,
        filled_at=moment, created_at=now, kind=chosen.value, parent_id=parent.id, amount=taken,
        amount_unit=taken_unit, remaining=taken,
    )
    before = {"remaining": left, "state": parent.state}
    parent.remaining = left - taken
    if parent.remaining == 0:
        parent.state = ContainerState.EMPTIED.value
    session.add(aliquot)
    session.flush()
    _take_into_hands(session, actor, parent, aliquot, moment)
    audit.append(session, actor, f"sample.{chosen.value}_made", "sample_container", aliquot.id, before, {
        "barcode": aliquot.barcode, "sample_no": sample.sample_no, "parent": parent.barcode, "kind": chosen.value,
        "amount": taken, "unit": taken_unit, "made_at": moment, "parent_remaining": parent.remaining,
        "parent_state": parent.state, "note": note,
    })
    return aliquot


def _take_into_hands(session: Session, actor: User, parent: Container, aliquot: Container, at: datetime) -> None:
    """The aliquot is born where the parent is and taken by the analyst: a take-out from the
    parent's holder (a person or a storage place). Born in the analyst's own hands (they hold the
    parent already), it comes from the parent itself, named as the place."""
    if (parent.holder_id, parent.location_id) in ((actor.id, None), (None, None)):
        giver = Party(place=f"分取自 {parent.barcode} / aliquot of {parent.barcode}")
    else:
        giver = Party(user_id=parent.holder_id, location_id=parent.location_id)
    record_custody(session, actor, [aliquot], CustodyKind.TAKE_OUT, giver=giver, taker=Party(user_id=actor.id),
                   new=True, occurred_at=at, note=f"aliquot {aliquot.barcode} of {parent.barcode}")


# ---------------------------------------------------------------- reading and labels


def aliquot_by_barcode(session: Session, barcode: str) -> Container:
    container = container_by_barcode(session, barcode)
    if container.kind == ContainerKind.CONTAINER.value:
        raise errors.NotAnAliquot(barcode=container.barcode)
    return container


def parent_of(session: Session, aliquot: Container) -> Container | None:
    return session.get(Container, aliquot.parent_id) if aliquot.parent_id else None


def sample_of(session: Session, container: Container) -> Sample:
    return session.get(Sample, container.sample_id)


def aliquot_label(session: Session, aliquot: Container) -> Label:
    """The aliquot's label: its barcode, the sample number, the parent, the amount and the day."""
    import json

    sample = session.get(Sample, aliquot.sample_id)
    parent = session.get(Container, aliquot.parent_id) if aliquot.parent_id else None
    zh = is_chinese()
    kind = {"aliquot": ("分取样", "Aliquot"), "sub_sample": ("子样", "Sub-sample")}.get(aliquot.kind, ("", ""))
    day = lab_input.local_text(session, aliquot.filled_at or aliquot.created_at)
    parameters = " ".join(json.loads(aliquot.parameters or "[]"))
    lines = (
        (f"{kind[0]} 取自 {parent.barcode}" if zh else f"{kind[1]} of {parent.barcode}") if parent else kind[0 if zh
                                                                                                             else 1],
        f"{aliquot.amount:f} {aliquot.amount_unit} · {parameters}"[:48],
        (f"分取 {day}" if zh else f"Taken {day}"),
    )
    return Label(code=aliquot.barcode, title=sample.sample_no, lines=lines)


def aliquot_label_pdf(session: Session, aliquot: Container) -> bytes:
    return render_labels([aliquot_label(session, aliquot)], THERMAL_50x30)
